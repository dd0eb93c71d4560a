/* referral.c: referrals, the two-person rule and partner delivery (see
 * referral.h). Every database step is a store job; statements are prepared
 * per job (referrals are rare, and this keeps their SQL in one place).
 * Refusals decided on the writer roll the job's savepoint back, so they are
 * audited afterwards by a job of their own (hl_escalation_audit).
 *
 * Delivery: a timer on the loop starts each due attempt with a store job
 * (the row becomes "sent", attempts + 1, a lease as next_attempt_at, the
 * envelope built from the stored ciphertext), the POST runs on delivery.c's
 * thread, and its outcome is recorded by a second store job (acknowledged,
 * failed, or the next attempt's time with back-off and jitter) and pushed
 * to the staff involved. */
#include "referral.h"
#include "audit.h"
#include "auth.h"
#include "common.h"
#include "conversation.h"
#include "escalation.h"
#include "log.h"
#include "row.h"
#include "server.h"
#include "session.h"
#include "staff.h"
#include "store.h"
#include "taxonomy.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 200
#define TICK_MS 250
#define COPY_MAX 65536          /* staff_copy, bytes */
#define PACKAGE_EXTRA (65536 + 4096 + crypto_box_SEALBYTES) /* document + JSON + seal */
#define IN_FLIGHT_MAX 4         /* attempts under way at once */
#define STORE_RETRY_MS 5000     /* after a store error, try again this much later */
#define CHUNK_MAX 196608        /* download: bytes of sealed per reply */

/* ---- the pure part -------------------------------------------------------------- */

const char *const hl_ref_kinds[] = {"police", "safeguarding", NULL};
const char *const hl_ref_states[] = {"draft", "approved", "sent",
				     "acknowledged", "failed", NULL};
const char *const hl_ref_legal_bases[] = {
	"consent", "vital_interests", "legal_obligation", "public_task",
	"legitimate_interests", NULL,
};
const char *const hl_ref_urgencies[] = {"routine", "urgent", "immediate", NULL};
const char *const hl_ref_answers[] = {"yes", "no", "not_sure", "no_answer", NULL};
const char *const hl_ref_identity_reasons[] = {
	"consent", "life_at_risk", "no_consent", "not_needed", "not_known", NULL,
};
enum { ID_CONSENT = 0, ID_LIFE = 1 };
enum { ANSWER_YES = 0 };

int hl_ref_code(const char *const *list, const char *s)
{
	for (int i = 0; s && list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return i;
	return -1;
}

const char *hl_ref_check(const struct hl_msg_referral *x,
			 struct hl_ref_fields *out, const char **field)
{
	memset(out, 0, sizeof(*out));
	out->consent_answer = -1;
	if ((out->legal_basis = hl_ref_code(hl_ref_legal_bases, x->legal_basis)) < 0) {
		*field = "legal_basis";
		return "legal_basis must be consent, vital_interests, "
		       "legal_obligation, public_task or legitimate_interests";
	}
	if ((out->urgency = hl_ref_code(hl_ref_urgencies, x->urgency)) < 0) {
		*field = "urgency";
		return "urgency must be immediate, urgent or routine";
	}
	out->consent_asked = x->consent_asked == 1;
	if (out->consent_asked) {
		if ((out->consent_answer = hl_ref_code(hl_ref_answers,
						       x->consent_answer)) < 0) {
			*field = "consent_answer";
			return "consent_answer must be yes, no, not_sure or no_answer when "
			       "consent was asked";
		}
		if (x->consent_seq < 1) {
			*field = "consent_seq";
			return "consent_seq must be the chat seq of the consent "
			       "question when consent was asked";
		}
		out->consent_seq = x->consent_seq;
	} else if (x->consent_answer || x->consent_seq) {
		*field = x->consent_answer ? "consent_answer" : "consent_seq";
		return "consent_answer and consent_seq need consent_asked 1";
	}
	out->identity_included = x->identity_included == 1;
	out->identity_reason = hl_ref_code(hl_ref_identity_reasons,
					   x->identity_reason);
	if (out->identity_reason < 0) {
		*field = "identity_reason";
		return "identity_reason must be consent, life_at_risk, "
		       "no_consent, not_needed or not_known";
	}
	if (out->identity_included && out->identity_reason != ID_CONSENT &&
	    out->identity_reason != ID_LIFE) {
		*field = "identity_reason";
		return "the child's identity may be included only with their "
		       "consent or when life is at risk";
	}
	if (!out->identity_included && (out->identity_reason == ID_CONSENT ||
					out->identity_reason == ID_LIFE)) {
		*field = "identity_reason";
		return "identity_reason consent or life_at_risk says why the "
		       "identity is included: with identity_included 0 give "
		       "no_consent, not_needed or not_known";
	}
	if (out->identity_reason == ID_CONSENT &&
	    out->consent_answer != ANSWER_YES) {
		*field = "identity_reason";
		return "identity_reason consent needs consent_asked 1 and "
		       "consent_answer yes";
	}
	return NULL;
}

enum hl_ref_slot hl_ref_approval_slot(int64_t who, int64_t claimer,
				      int64_t raiser, int64_t holder,
				      int64_t counsellor_ok,
				      int64_t supervisor_ok)
{
	if (who <= 0)
		return HL_REF_SLOT_NONE;
	if (who == counsellor_ok || who == supervisor_ok)
		return HL_REF_SLOT_TWICE;
	if (who == claimer)
		return supervisor_ok ? HL_REF_SLOT_TAKEN : HL_REF_SLOT_SUPERVISOR;
	if (who == raiser || who == holder)
		return counsellor_ok ? HL_REF_SLOT_TAKEN : HL_REF_SLOT_COUNSELLOR;
	return HL_REF_SLOT_NONE;
}

/* Copies the first printable ASCII of s (len bytes) into out, others as '?'. */
static void printable(char *out, size_t cap, const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; s && i < len && n + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];

		out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (cap)
		out[n] = '\0';
}

enum hl_ref_outcome hl_ref_classify(bool transport_ok, const char *why_in,
				    long status, const char *body, size_t len,
				    char *ack, size_t ack_cap, char *why,
				    size_t why_cap)
{
	char text[160];

	if (ack_cap)
		ack[0] = '\0';
	if (!transport_ok) {
		printable(text, sizeof(text), why_in, why_in ? strlen(why_in) : 0);
		snprintf(why, why_cap, "no answer from the partner: %s", text);
		return HL_REF_OUT_RETRY;
	}
	printable(text, sizeof(text), body, len);
	if (status >= 200 && status <= 299) {
		json_t *j = body && len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
		const char *a = json_string_value(json_object_get(j, "ack_id"));
		size_t n = a ? strlen(a) : 0, i;
		bool ok = n >= 1 && n <= 128 && n < ack_cap;

		for (i = 0; ok && i < n; i++)
			ok = a[i] >= 0x20 && a[i] < 0x7f;
		if (ok) {
			memcpy(ack, a, n + 1);
			snprintf(why, why_cap, "acknowledged (%ld)", status);
		} else {
			snprintf(why, why_cap, "the partner answered %ld without "
				 "an ack_id", status);
		}
		json_decref(j);
		return ok ? HL_REF_OUT_ACK : HL_REF_OUT_RETRY;
	}
	if (status == 408 || status == 425 || status == 429 ||
	    (status >= 500 && status <= 599)) {
		snprintf(why, why_cap, "the partner answered %ld: %.120s", status,
			 text);
		return HL_REF_OUT_RETRY;
	}
	if (status >= 400 && status <= 499)
		snprintf(why, why_cap, "the partner refused it (%ld): %.120s",
			 status, text);
	else
		snprintf(why, why_cap, "the partner answered %ld (redirects are "
			 "not followed)", status);
	return HL_REF_OUT_FAIL;
}

int64_t hl_ref_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
			  uint32_t rnd)
{
	int64_t d = base_ms > 0 ? base_ms : 1;
	int64_t half;

	for (int i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	half = d / 2;
	return d - half + (half > 0 ? (int64_t)(rnd % (uint64_t)(half + 1)) : 0);
}

/* ---- jobs -------------------------------------------------------------------------- */

enum rjob_kind {
	RJ_LOAD, RJ_CREATE, RJ_UPDATE, RJ_APPROVE, RJ_LIST, RJ_GET, RJ_RETRY,
	RJ_DOWNLOAD, RJ_BEGIN, RJ_RESULT,
};

static const char *const requests[] = {
	"load", "referral.create", "referral.update", "referral.approve",
	"referral.list", "referral.get", "referral.retry", "referral.download",
	"begin", "result",
};

struct ref_job {
	struct hl_store_job job;
	enum rjob_kind kind;
	struct hl_referrals *r;
	struct hl_session *s;          /* referenced, or NULL */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t now, staff_id, esc_id, ref_id, revision, offset;
	int ref_kind;                  /* RJ_CREATE: index of hl_ref_kinds */
	struct hl_ref_fields f;
	char tags[260];
	unsigned char digest[32];
	bool has_digest;
	unsigned char *sealed;         /* malloc'd */
	size_t sealed_len;
	unsigned char sealed_to[32];
	unsigned char *copy;           /* malloc'd staff copy */
	size_t copy_len;
	/* A refusal decided in exec: answered and audited in done. */
	enum hl_err_code refusal;
	const char *why, *field;
	char whybuf[200];
	json_t *out;                   /* the referral object, or the list */
	json_t *extra;                 /* RJ_GET: staff_copy; RJ_DOWNLOAD: chunk */
	int64_t total;                 /* RJ_DOWNLOAD: bytes of sealed */
	bool approved_now;             /* RJ_APPROVE: the second approval */
	const char *slot;              /* RJ_APPROVE: "counsellor"/"supervisor" */
	bool skip;                     /* RJ_BEGIN: nothing to deliver now */
	bool settled;                  /* RJ_RESULT: acknowledged or failed */
	int64_t next_due;              /* RJ_RESULT / RJ_BEGIN: pending's new due */
	/* delivery */
	int attempt;
	char *body;                    /* RJ_BEGIN: the envelope, malloc'd */
	size_t body_len;
	int outcome;                   /* RJ_RESULT: enum hl_ref_outcome */
	long http;
	char ack[130];
	char err[300];
	struct hl_ref_pending *loaded; /* RJ_LOAD */
};

/* One attempt on the HTTP thread. */
struct attempt {
	struct hl_delivery_req req;
	struct hl_referrals *r;
	int64_t ref_id;
	int attempt;
	char *body;
};

/* ---- the wire object ---------------------------------------------------------------- */

#define ROW_SQL \
	"SELECT r.id, r.escalation_id, r.conversation_id, r.kind, r.state, " \
	"r.revision, r.legal_basis, r.urgency, r.consent_asked, " \
	"r.consent_answer, r.consent_seq, r.identity_included, " \
	"r.identity_reason, r.tags, r.bundle_digest, length(r.sealed), " \
	"r.sealed_to, r.staff_copy IS NOT NULL, r.created_by, r.created_at, " \
	"r.updated_at, r.counsellor_ok_by, r.counsellor_ok_at, " \
	"r.supervisor_ok_by, r.supervisor_ok_at, r.approved_at, r.attempts, " \
	"r.next_attempt_at, r.sent_at, r.last_error, r.ack_id, r.acked_at, " \
	"e.raised_by, e.claimed_by, c.counsellor_id FROM referral r " \
	"JOIN escalation e ON e.id = r.escalation_id " \
	"JOIN conversation c ON c.id = r.conversation_id "

/* The ids in a row that make a member of staff one of its people. */
struct parties {
	int64_t raiser, claimer, holder, creator, counsellor_ok, supervisor_ok;
	int state;
	int64_t revision;
	bool sealed, digest;
	int kind;
};

static json_t *approval(sqlite3_stmt *st, int by)
{
	if (sqlite3_column_type(st, by) == SQLITE_NULL)
		return json_null();
	return json_pack("{s:I, s:I}", "by", (json_int_t)sqlite3_column_int64(st, by),
			 "at", (json_int_t)sqlite3_column_int64(st, by + 1));
}

static json_t *row_json(sqlite3_stmt *st, struct parties *p)
{
	json_t *o = json_object();
	char conv[24];

	snprintf(conv, sizeof(conv), "%lld", (long long)sqlite3_column_int64(st, 2));
	json_object_set_new(o, "referral", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "escalation", json_integer(sqlite3_column_int64(st, 1)));
	json_object_set_new(o, "conversation", json_string(conv));
	json_object_set_new(o, "kind", hl_row_text(st, 3));
	json_object_set_new(o, "state", hl_row_text(st, 4));
	json_object_set_new(o, "revision", hl_row_int(st, 5));
	json_object_set_new(o, "legal_basis", hl_row_text(st, 6));
	json_object_set_new(o, "urgency", hl_row_text(st, 7));
	json_object_set_new(o, "consent", json_pack("{s:b, s:o, s:o}",
		"asked", sqlite3_column_int(st, 8) == 1,
		"answer", hl_row_text(st, 9), "seq", hl_row_int(st, 10)));
	json_object_set_new(o, "identity", json_pack("{s:b, s:o}",
		"included", sqlite3_column_int(st, 11) == 1,
		"reason", hl_row_text(st, 12)));
	json_object_set_new(o, "tags", hl_row_text(st, 13));
	json_object_set_new(o, "bundle_digest", hl_row_b64(st, 14));
	json_object_set_new(o, "sealed_bytes", hl_row_int(st, 15));
	json_object_set_new(o, "sealed_to", hl_row_b64(st, 16));
	json_object_set_new(o, "staff_copy", json_boolean(sqlite3_column_int(st, 17)));
	json_object_set_new(o, "created_by", hl_row_int(st, 18));
	json_object_set_new(o, "created_at", hl_row_int(st, 19));
	json_object_set_new(o, "updated_at", hl_row_int(st, 20));
	json_object_set_new(o, "approvals", json_pack("{s:o, s:o}",
		"counsellor", approval(st, 21), "supervisor", approval(st, 23)));
	json_object_set_new(o, "approved_at", hl_row_int(st, 25));
	json_object_set_new(o, "delivery", json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}",
		"attempts", hl_row_int(st, 26), "next_attempt_at", hl_row_int(st, 27),
		"sent_at", hl_row_int(st, 28), "last_error", hl_row_text(st, 29),
		"ack_id", hl_row_text(st, 30), "acked_at", hl_row_int(st, 31)));
	json_object_set_new(o, "raised_by", hl_row_int(st, 32));
	json_object_set_new(o, "claimed_by", hl_row_int(st, 33));
	json_object_set_new(o, "counsellor", hl_row_int(st, 34));
	if (p) {
		p->kind = hl_ref_code(hl_ref_kinds, (const char *)sqlite3_column_text(st, 3));
		p->state = hl_ref_code(hl_ref_states, (const char *)sqlite3_column_text(st, 4));
		p->revision = sqlite3_column_int64(st, 5);
		p->digest = sqlite3_column_type(st, 14) != SQLITE_NULL;
		p->sealed = sqlite3_column_type(st, 15) != SQLITE_NULL;
		p->creator = sqlite3_column_int64(st, 18);
		p->counsellor_ok = sqlite3_column_int64(st, 21);
		p->supervisor_ok = sqlite3_column_int64(st, 23);
		p->raiser = sqlite3_column_int64(st, 32);
		p->claimer = sqlite3_column_int64(st, 33);
		p->holder = sqlite3_column_int64(st, 34);
	}
	return o;
}

/* Reads referral id into j->out (and *p). 0, HL_ENOTFOUND or HL_ESTORE. */
static int read_row(sqlite3 *db, struct ref_job *j, int64_t id, struct parties *p)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, ROW_SQL "WHERE r.id = ?1", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_decref(j->out);
		j->out = row_json(st, p);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? HL_ENOTFOUND : HL_ESTORE;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- helpers on the writer ------------------------------------------------------------ */

static int refuse(struct ref_job *j, enum hl_err_code code, const char *why,
		  const char *field)
{
	j->refusal = code;
	j->why = why;
	j->field = field;
	return HL_EINVAL;
}

static int audit(sqlite3_stmt *const *stmts, const struct ref_job *j,
		 int64_t actor, const char *action, const char *detail)
{
	struct hl_audit_entry a = {
		.at_ms = j->now, .actor = actor, .action = action, .detail = detail,
	};

	return hl_audit_append(stmts, &a, NULL) == 0 ? 0 : HL_ESTORE;
}

static bool involved(const struct parties *p, int64_t who)
{
	return who && (who == p->claimer || who == p->raiser || who == p->holder);
}

static bool reader(const struct parties *p, int64_t who)
{
	return involved(p, who) || (who && (who == p->creator ||
					   who == p->counsellor_ok ||
					   who == p->supervisor_ok));
}

/* 1 when the service countersigned a bundle of digest for conv (its
 * evidence.signed audit entry), 0 when not, or HL_ESTORE. */
static int countersigned(sqlite3 *db, int64_t conv, const unsigned char digest[32])
{
	sqlite3_stmt *st = NULL;
	char detail[160], hex[65];
	int rc;

	snprintf(detail, sizeof(detail), "{\"conversation\":%" PRId64 ",\"digest\":\"%s\"}",
		 conv, sodium_bin2hex(hex, sizeof(hex), digest, 32));
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM audit WHERE action = "
			       "'evidence.signed' AND detail = ?1 LIMIT 1", -1,
			       &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_text(st, 1, detail, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

/* The checks of create and update that need the database: the consent
 * question is a seq of the chat, the bundle was countersigned. */
static int check_stored(sqlite3 *db, struct ref_job *j, int64_t conv)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (j->f.consent_seq) {
		if (sqlite3_prepare_v2(db, "SELECT last_seq FROM conversation "
				       "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, conv);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			sqlite3_finalize(st);
			return HL_ESTORE;
		}
		rc = j->f.consent_seq > sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc)
			return refuse(j, HL_ERR_BAD_FIELD, "consent_seq is not a seq "
				      "of this chat", "consent_seq");
	}
	if (j->has_digest) {
		rc = countersigned(db, conv, j->digest);
		if (rc < 0)
			return rc;
		if (rc == 0)
			return refuse(j, HL_ERR_BAD_FIELD, "bundle_digest is not "
				      "the digest of a bundle the service "
				      "countersigned for this conversation "
				      "(evidence.sign)", "bundle_digest");
	}
	return 0;
}

/* Binds the editable fields from ?3 on (create and update share them). */
static void bind_fields(sqlite3_stmt *st, const struct ref_job *j)
{
	sqlite3_bind_text(st, 3, hl_ref_legal_bases[j->f.legal_basis], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, hl_ref_urgencies[j->f.urgency], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, j->f.consent_asked);
	if (j->f.consent_answer >= 0)
		sqlite3_bind_text(st, 6, hl_ref_answers[j->f.consent_answer], -1,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 6);
	if (j->f.consent_seq)
		sqlite3_bind_int64(st, 7, j->f.consent_seq);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int(st, 8, j->f.identity_included);
	sqlite3_bind_text(st, 9, hl_ref_identity_reasons[j->f.identity_reason], -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(st, 10, j->tags, -1, SQLITE_STATIC);
	if (j->has_digest)
		sqlite3_bind_blob(st, 11, j->digest, 32, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 11);
	if (j->sealed) {
		sqlite3_bind_blob(st, 12, j->sealed, (int)j->sealed_len, SQLITE_STATIC);
		sqlite3_bind_blob(st, 13, j->sealed_to, 32, SQLITE_STATIC);
	} else {
		sqlite3_bind_null(st, 12);
		sqlite3_bind_null(st, 13);
	}
	if (j->copy)
		sqlite3_bind_blob(st, 14, j->copy, (int)j->copy_len, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 14);
	sqlite3_bind_int64(st, 15, j->now);
}

static int do_create(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	sqlite3_stmt *st = NULL;
	int64_t conv, raiser, claimer, holder;
	const char *state, *decision;
	char detail[200];
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT e.conversation_id, e.state, e.decision, "
			       "e.raised_by, coalesce(e.claimed_by, 0), "
			       "coalesce(c.counsellor_id, 0) FROM escalation e "
			       "JOIN conversation c ON c.id = e.conversation_id "
			       "WHERE e.id = ?1", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->esc_id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? refuse(j, HL_ERR_NOT_FOUND, "no such "
						  "escalation", "escalation")
					 : HL_ESTORE;
	}
	conv = sqlite3_column_int64(st, 0);
	state = (const char *)sqlite3_column_text(st, 1);
	decision = (const char *)sqlite3_column_text(st, 2);
	raiser = sqlite3_column_int64(st, 3);
	claimer = sqlite3_column_int64(st, 4);
	holder = sqlite3_column_int64(st, 5);
	rc = 0;
	if (j->staff_id != claimer && j->staff_id != raiser && j->staff_id != holder)
		rc = refuse(j, HL_ERR_FORBIDDEN, "only the supervisor who claimed "
			    "the escalation or the counsellor of the chat may "
			    "refer it", "escalation");
	else if (!state || strcmp(state, "open") == 0)
		rc = refuse(j, HL_ERR_BAD_STATE, "the escalation must be claimed "
			    "first", "escalation");
	else if (decision && strcmp(decision, "no_further_action") == 0)
		rc = refuse(j, HL_ERR_BAD_STATE, "the escalation was decided: no "
			    "further action", "escalation");
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	if ((rc = check_stored(db, j, conv)) != 0)
		return rc;
	if (sqlite3_prepare_v2(db, "INSERT INTO referral (escalation_id, "
			       "conversation_id, legal_basis, urgency, "
			       "consent_asked, consent_answer, consent_seq, "
			       "identity_included, identity_reason, tags, "
			       "bundle_digest, sealed, sealed_to, staff_copy, "
			       "created_at, updated_at, kind, created_by) VALUES "
			       "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
			       "?13, ?14, ?15, ?15, ?16, ?17)", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->esc_id);
	sqlite3_bind_int64(st, 2, conv);
	bind_fields(st, j);
	sqlite3_bind_text(st, 16, hl_ref_kinds[j->ref_kind], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 17, j->staff_id);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	j->ref_id = sqlite3_last_insert_rowid(db);
	snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"escalation\":%lld,"
		 "\"conversation\":%lld,\"kind\":\"%s\"}", (long long)j->ref_id,
		 (long long)j->esc_id, (long long)conv, hl_ref_kinds[j->ref_kind]);
	if ((rc = audit(stmts, j, j->staff_id, "referral.create", detail)) != 0)
		return rc;
	return read_row(db, j, j->ref_id, NULL);
}

/* Reads the referral and checks the caller may act on it: 0 with *p, or a
 * refusal. */
static int load_for(sqlite3 *db, struct ref_job *j, struct parties *p,
		    bool act)
{
	int rc = read_row(db, j, j->ref_id, p);

	if (rc == HL_ENOTFOUND)
		return refuse(j, HL_ERR_NOT_FOUND, "no such referral", "referral");
	if (rc != 0)
		return rc;
	if (act ? !involved(p, j->staff_id) : !reader(p, j->staff_id))
		return refuse(j, HL_ERR_FORBIDDEN, "only the supervisor who "
			      "claimed the escalation and the counsellor of the "
			      "chat may do this", "referral");
	return 0;
}

static int do_update(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	sqlite3_stmt *st = NULL;
	char detail[160];
	int64_t conv;
	bool reset;
	int rc = load_for(db, j, &p, true);

	if (rc != 0)
		return rc;
	if (p.state != HL_REF_DRAFT)
		return refuse(j, HL_ERR_BAD_STATE, "only a draft referral can be "
			      "edited", "referral");
	if (p.revision != j->revision) {
		snprintf(j->whybuf, sizeof(j->whybuf), "the referral is at revision "
			 "%lld now: read it again", (long long)p.revision);
		return refuse(j, HL_ERR_CONFLICT, j->whybuf, "revision");
	}
	conv = hl_conv_id_parse(json_string_value(json_object_get(j->out, "conversation")));
	if ((rc = check_stored(db, j, conv)) != 0)
		return rc;
	reset = p.counsellor_ok || p.supervisor_ok;
	if (sqlite3_prepare_v2(db, "UPDATE referral SET legal_basis = ?3, "
			       "urgency = ?4, consent_asked = ?5, "
			       "consent_answer = ?6, consent_seq = ?7, "
			       "identity_included = ?8, identity_reason = ?9, "
			       "tags = ?10, bundle_digest = ?11, sealed = ?12, "
			       "sealed_to = ?13, staff_copy = ?14, updated_at = ?15, "
			       "revision = revision + 1, counsellor_ok_by = NULL, "
			       "counsellor_ok_at = NULL, supervisor_ok_by = NULL, "
			       "supervisor_ok_at = NULL WHERE id = ?1 AND "
			       "revision = ?2 AND state = 'draft'", -1, &st,
			       NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->ref_id);
	sqlite3_bind_int64(st, 2, j->revision);
	bind_fields(st, j);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"revision\":%lld,"
		 "\"approvals_reset\":%s}", (long long)j->ref_id,
		 (long long)j->revision + 1, reset ? "true" : "false");
	if ((rc = audit(stmts, j, j->staff_id, "referral.update", detail)) != 0)
		return rc;
	return read_row(db, j, j->ref_id, NULL);
}

static int do_approve(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	sqlite3_stmt *st = NULL;
	enum hl_ref_slot slot;
	char detail[160];
	int rc = read_row(db, j, j->ref_id, &p);

	if (rc == HL_ENOTFOUND)
		return refuse(j, HL_ERR_NOT_FOUND, "no such referral", "referral");
	if (rc != 0)
		return rc;
	slot = hl_ref_approval_slot(j->staff_id, p.claimer, p.raiser, p.holder,
				    p.counsellor_ok, p.supervisor_ok);
	if (slot == HL_REF_SLOT_NONE)
		return refuse(j, HL_ERR_FORBIDDEN, "only the counsellor who raised "
			      "or holds the chat and the supervisor who claimed "
			      "the escalation may approve", "referral");
	if (p.state != HL_REF_DRAFT)
		return refuse(j, HL_ERR_BAD_STATE, "the referral is already "
			      "approved", "referral");
	if (p.revision != j->revision) {
		snprintf(j->whybuf, sizeof(j->whybuf), "the referral is at revision "
			 "%lld now: read it again before approving",
			 (long long)p.revision);
		return refuse(j, HL_ERR_CONFLICT, j->whybuf, "revision");
	}
	if (slot == HL_REF_SLOT_TWICE)
		return refuse(j, HL_ERR_CONFLICT, "you have already approved this "
			      "referral: the second approval must be another "
			      "person's", "referral");
	if (slot == HL_REF_SLOT_TAKEN)
		return refuse(j, HL_ERR_CONFLICT, "this side of the referral is "
			      "already approved by someone else", "referral");
	if (!p.sealed)
		return refuse(j, HL_ERR_BAD_STATE, "the referral has no package "
			      "sealed to the partner yet (referral.update with "
			      "sealed)", "referral");
	if (p.kind == 0 && !p.digest)
		return refuse(j, HL_ERR_BAD_STATE, "a police referral needs its "
			      "countersigned evidence bundle (bundle_digest)",
			      "referral");
	{
		json_t *b = json_object_get(j->out, "sealed_to");
		unsigned char pk[32];
		size_t n;

		if (!j->r->has_partner_key || !json_is_string(b) ||
		    !hl_proto_b64_into(json_string_value(b), pk, 32, &n, true) ||
		    sodium_memcmp(pk, j->r->partner_pk, 32) != 0)
			return refuse(j, HL_ERR_BAD_STATE, "the package is sealed "
				      "to a key that is not the configured "
				      "partner key: seal it again", "referral");
	}
	j->slot = slot == HL_REF_SLOT_SUPERVISOR ? "supervisor" : "counsellor";
	j->approved_now = (slot == HL_REF_SLOT_SUPERVISOR && p.counsellor_ok) ||
			  (slot == HL_REF_SLOT_COUNSELLOR && p.supervisor_ok);
	if (sqlite3_prepare_v2(db, slot == HL_REF_SLOT_SUPERVISOR
			       ? "UPDATE referral SET supervisor_ok_by = ?2, "
				 "supervisor_ok_at = ?3 WHERE id = ?1"
			       : "UPDATE referral SET counsellor_ok_by = ?2, "
				 "counsellor_ok_at = ?3 WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->ref_id);
	sqlite3_bind_int64(st, 2, j->staff_id);
	sqlite3_bind_int64(st, 3, j->now);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"revision\":%lld,"
		 "\"as\":\"%s\"}", (long long)j->ref_id, (long long)j->revision,
		 j->slot);
	if ((rc = audit(stmts, j, j->staff_id, "referral.approve", detail)) != 0)
		return rc;
	if (j->approved_now) {
		if (sqlite3_prepare_v2(db, "UPDATE referral SET state = 'approved', "
				       "approved_at = ?2, next_attempt_at = ?3 "
				       "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->ref_id);
		sqlite3_bind_int64(st, 2, j->now);
		if (j->r->deliver)
			sqlite3_bind_int64(st, 3, j->now);
		else
			sqlite3_bind_null(st, 3);
		rc = hl_store_step_done(st);
		sqlite3_finalize(st);
		if (rc != 0)
			return rc;
		snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"revision\":"
			 "%lld,\"counsellor\":%lld,\"supervisor\":%lld}",
			 (long long)j->ref_id, (long long)j->revision,
			 (long long)(slot == HL_REF_SLOT_COUNSELLOR ? j->staff_id
								    : p.counsellor_ok),
			 (long long)(slot == HL_REF_SLOT_SUPERVISOR ? j->staff_id
								    : p.supervisor_ok));
		if ((rc = audit(stmts, j, j->staff_id, "referral.approved", detail)) != 0)
			return rc;
	}
	return read_row(db, j, j->ref_id, NULL);
}

static int do_list(sqlite3 *db, struct ref_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, ROW_SQL "WHERE (?2 = 0 OR r.escalation_id = ?2) "
			       "AND ?1 IN (e.raised_by, e.claimed_by, "
			       "c.counsellor_id, r.created_by, r.counsellor_ok_by, "
			       "r.supervisor_ok_by) ORDER BY r.id DESC LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->staff_id);
	sqlite3_bind_int64(st, 2, j->esc_id);
	sqlite3_bind_int(st, 3, LIST_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(j->out, row_json(st, NULL));
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

/* One blob column of the referral (whole, or bytes [off, off+n) of it with
 * n > 0) as base64url into *out (json null when NULL); *total its length. */
static int read_blob(sqlite3 *db, int64_t id, const char *col, int64_t off,
		     int64_t n, json_t **out, int64_t *total)
{
	sqlite3_stmt *st = NULL;
	char sql[160];
	int rc;

	snprintf(sql, sizeof(sql), n > 0
		 ? "SELECT substr(%s, ?2 + 1, ?3), length(%s) FROM referral WHERE id = ?1"
		 : "SELECT %s, length(%s) FROM referral WHERE id = ?1", col, col);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	if (n > 0) {
		sqlite3_bind_int64(st, 2, off);
		sqlite3_bind_int64(st, 3, n);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = hl_row_b64(st, 0);
		if (total)
			*total = sqlite3_column_int64(st, 1);
		rc = 0;
	} else {
		rc = HL_ESTORE;
	}
	sqlite3_finalize(st);
	return rc;
}

static int do_get(sqlite3 *db, struct ref_job *j)
{
	struct parties p;
	int rc = load_for(db, j, &p, false);

	if (rc != 0)
		return rc;
	return read_blob(db, j->ref_id, "staff_copy", 0, 0, &j->extra, NULL);
}

static int do_retry(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	sqlite3_stmt *st = NULL;
	char detail[80];
	int rc = load_for(db, j, &p, true);

	if (rc != 0)
		return rc;
	if (p.state != HL_REF_FAILED)
		return refuse(j, HL_ERR_BAD_STATE, "only a failed referral can be "
			      "sent again", "referral");
	if (!j->r->deliver)
		return refuse(j, HL_ERR_BAD_STATE, "no partner endpoint is "
			      "configured ([referral] partner_url): download it",
			      "referral");
	if (sqlite3_prepare_v2(db, "UPDATE referral SET state = 'sent', "
			       "attempts = 0, next_attempt_at = ?2, "
			       "last_error = NULL WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->ref_id);
	sqlite3_bind_int64(st, 2, j->now);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld}", (long long)j->ref_id);
	if ((rc = audit(stmts, j, j->staff_id, "referral.retry", detail)) != 0)
		return rc;
	return read_row(db, j, j->ref_id, NULL);
}

static int do_download(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	char detail[80];
	int64_t chunk = (int64_t)j->r->srv->cfg.ws_outq_max / 2 / 4 * 3;
	int rc = load_for(db, j, &p, false);

	if (rc != 0)
		return rc;
	if (p.state == HL_REF_DRAFT)
		return refuse(j, HL_ERR_BAD_STATE, "a referral can be downloaded "
			      "once both approvals are given", "referral");
	if (chunk > CHUNK_MAX)
		chunk = CHUNK_MAX;
	if (chunk < 1024)
		chunk = 1024;
	if ((rc = read_blob(db, j->ref_id, "sealed", j->offset, chunk, &j->extra,
			    &j->total)) != 0)
		return rc;
	if (j->offset > j->total)
		return refuse(j, HL_ERR_BAD_FIELD, "offset is past the end of the "
			      "sealed package", "offset");
	if (j->offset > 0)
		return 0;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld}", (long long)j->ref_id);
	return audit(stmts, j, j->staff_id, "referral.download", detail);
}

/* The delivery envelope (docs/escalation.md): what is POSTed and what
 * referral.download's file is. */
static char *envelope(const json_t *obj, json_t *sealed, int64_t id,
		      size_t *len)
{
	json_t *e = json_pack("{s:s, s:I, s:O, s:O, s:O, s:O, s:O, s:O, s:O}",
			      "format", "helpline-referral-delivery-v1",
			      "referral", (json_int_t)id,
			      "revision", json_object_get(obj, "revision"),
			      "kind", json_object_get(obj, "kind"),
			      "urgency", json_object_get(obj, "urgency"),
			      "approved_at", json_object_get(obj, "approved_at"),
			      "bundle_digest", json_object_get(obj, "bundle_digest"),
			      "sealed_to", json_object_get(obj, "sealed_to"),
			      "sealed", sealed);
	char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;

	json_decref(e);
	*len = text ? strlen(text) : 0;
	return text;
}

static int do_begin(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	sqlite3_stmt *st = NULL;
	json_t *sealed = NULL;
	char detail[80];
	int64_t lease = ((int64_t)j->r->srv->cfg.referral_timeout +
			 j->r->srv->cfg.referral_connect_timeout + 5) * 1000;
	int rc = read_row(db, j, j->ref_id, &p);

	if (rc == HL_ENOTFOUND || (rc == 0 && p.state != HL_REF_APPROVED &&
				   p.state != HL_REF_SENT)) {
		j->skip = true;
		return 0;
	}
	if (rc != 0)
		return rc;
	j->attempt = (int)json_integer_value(json_object_get(
		json_object_get(j->out, "delivery"), "attempts")) + 1;
	if (sqlite3_prepare_v2(db, "UPDATE referral SET state = 'sent', "
			       "attempts = ?2, sent_at = coalesce(sent_at, ?3), "
			       "next_attempt_at = ?4 WHERE id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->ref_id);
	sqlite3_bind_int(st, 2, j->attempt);
	sqlite3_bind_int64(st, 3, j->now);
	sqlite3_bind_int64(st, 4, j->now + lease);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"attempt\":%d}",
		 (long long)j->ref_id, j->attempt);
	if ((rc = audit(stmts, j, 0, "referral.send", detail)) != 0)
		return rc;
	if ((rc = read_row(db, j, j->ref_id, NULL)) != 0)
		return rc;
	if ((rc = read_blob(db, j->ref_id, "sealed", 0, 0, &sealed, NULL)) != 0)
		return rc;
	j->body = envelope(j->out, sealed, j->ref_id, &j->body_len);
	json_decref(sealed);
	j->next_due = j->now + lease;
	return j->body ? 0 : HL_ENOMEM;
}

static int do_result(sqlite3 *db, sqlite3_stmt *const *stmts, struct ref_job *j)
{
	struct parties p;
	sqlite3_stmt *st = NULL;
	char detail[120], why[300];
	const char *action;
	int rc = read_row(db, j, j->ref_id, &p);

	if (rc == HL_ENOTFOUND || (rc == 0 && p.state != HL_REF_SENT)) {
		j->settled = true;
		return rc == HL_ENOTFOUND ? 0 : rc;
	}
	if (rc != 0)
		return rc;
	snprintf(why, sizeof(why), "%s", j->err);
	if (j->outcome == HL_REF_OUT_RETRY &&
	    j->attempt >= j->r->srv->cfg.referral_attempts) {
		j->outcome = HL_REF_OUT_FAIL;
		snprintf(why, sizeof(why), "gave up after %d attempts: %.240s",
			 j->attempt, j->err);
	}
	if (j->outcome == HL_REF_OUT_ACK) {
		action = "referral.acknowledged";
		rc = sqlite3_prepare_v2(db, "UPDATE referral SET state = "
					"'acknowledged', ack_id = ?2, acked_at = ?3, "
					"next_attempt_at = NULL, last_error = NULL "
					"WHERE id = ?1", -1, &st, NULL);
	} else if (j->outcome == HL_REF_OUT_FAIL) {
		action = "referral.failed";
		rc = sqlite3_prepare_v2(db, "UPDATE referral SET state = 'failed', "
					"last_error = ?2, next_attempt_at = NULL "
					"WHERE id = ?1", -1, &st, NULL);
	} else {
		action = "referral.attempt_failed";
		j->next_due = j->now + hl_ref_backoff_ms(
			j->attempt, (int64_t)j->r->srv->cfg.referral_backoff * 1000,
			(int64_t)j->r->srv->cfg.referral_backoff_max * 1000,
			randombytes_random());
		rc = sqlite3_prepare_v2(db, "UPDATE referral SET last_error = ?2, "
					"next_attempt_at = ?3 WHERE id = ?1", -1,
					&st, NULL);
	}
	if (rc != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->ref_id);
	if (j->outcome == HL_REF_OUT_ACK) {
		sqlite3_bind_text(st, 2, j->ack, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->now);
	} else {
		sqlite3_bind_text(st, 2, why, -1, SQLITE_STATIC);
		if (j->outcome == HL_REF_OUT_RETRY)
			sqlite3_bind_int64(st, 3, j->next_due);
	}
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	j->settled = j->outcome != HL_REF_OUT_RETRY;
	snprintf(detail, sizeof(detail), "{\"referral\":%lld,\"attempt\":%d,"
		 "\"http\":%ld}", (long long)j->ref_id, j->attempt, j->http);
	if ((rc = audit(stmts, j, 0, action, detail)) != 0)
		return rc;
	return read_row(db, j, j->ref_id, NULL);
}

static int do_load(sqlite3 *db, struct ref_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT id, coalesce(next_attempt_at, 0) FROM "
			       "referral WHERE state IN ('approved', 'sent') "
			       "ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct hl_ref_pending *q = calloc(1, sizeof(*q));

		if (!q) {
			sqlite3_finalize(st);
			return HL_ENOMEM;
		}
		q->id = sqlite3_column_int64(st, 0);
		q->due_ms = sqlite3_column_int64(st, 1);
		q->next = j->loaded;
		j->loaded = q;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static int rjob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct ref_job *j = hl_container_of(job, struct ref_job, job);

	switch (j->kind) {
	case RJ_LOAD:
		return do_load(db, j);
	case RJ_CREATE:
		return do_create(db, stmts, j);
	case RJ_UPDATE:
		return do_update(db, stmts, j);
	case RJ_APPROVE:
		return do_approve(db, stmts, j);
	case RJ_LIST:
		return do_list(db, j);
	case RJ_GET:
		return do_get(db, j);
	case RJ_RETRY:
		return do_retry(db, stmts, j);
	case RJ_DOWNLOAD:
		return do_download(db, stmts, j);
	case RJ_BEGIN:
		return do_begin(db, stmts, j);
	case RJ_RESULT:
		return do_result(db, stmts, j);
	}
	return HL_EINVAL;
}

/* ---- on the loop -------------------------------------------------------------------- */

static void rjob_free(struct ref_job *j)
{
	while (j->loaded) {
		struct hl_ref_pending *q = j->loaded;

		j->loaded = q->next;
		free(q);
	}
	if (j->s)
		hl_session_unref(j->s);
	json_decref(j->out);
	json_decref(j->extra);
	free(j->sealed);
	free(j->copy);
	free(j->body);
	free(j);
}

static struct hl_ref_pending *find_pending(struct hl_referrals *r, int64_t id)
{
	for (struct hl_ref_pending *q = r->pending; q; q = q->next)
		if (q->id == id)
			return q;
	return NULL;
}

static void set_pending(struct hl_referrals *r, int64_t id, int64_t due)
{
	struct hl_ref_pending *q = find_pending(r, id);

	if (!q) {
		if (!(q = calloc(1, sizeof(*q)))) {
			hl_error("referral.pending_lost", "referral=%lld", (long long)id);
			return;
		}
		q->id = id;
		q->next = r->pending;
		r->pending = q;
	}
	q->due_ms = due;
}

static void drop_pending(struct hl_referrals *r, int64_t id)
{
	for (struct hl_ref_pending **pp = &r->pending; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct hl_ref_pending *q = *pp;

			*pp = q->next;
			free(q);
			return;
		}
}

/* Pushes {type: "referral", referral: obj, why} to the staff involved. */
static void push(struct hl_referrals *r, json_t *obj, const char *why)
{
	static const char *const who[] = {"raised_by", "claimed_by", "counsellor",
					  "created_by", NULL};
	json_t *msg = json_pack("{s:s, s:O, s:s}", "type", "referral",
				"referral", obj, "why", why);
	json_t *ap = json_object_get(obj, "approvals");
	int64_t ids[6];
	int n = 0;

	if (!msg)
		return;
	for (int i = 0; who[i]; i++)
		ids[n++] = json_integer_value(json_object_get(obj, who[i]));
	ids[n++] = json_integer_value(json_object_get(json_object_get(ap, "counsellor"), "by"));
	ids[n++] = json_integer_value(json_object_get(json_object_get(ap, "supervisor"), "by"));
	for (struct hl_session *x = r->srv->sessions; x; x = x->next) {
		if (x->role != HL_ROLE_STAFF || !x->staff_id)
			continue;
		for (int i = 0; i < n; i++)
			if (ids[i] == x->staff_id) {
				hl_session_send(x, msg);
				break;
			}
	}
	json_decref(msg);
}

static void answer(struct ref_job *j, const char *type, const char *key)
{
	json_t *rep;

	if (!j->s || !j->s->wsi)
		return;
	rep = hl_proto_reply(type, j->id);
	json_object_set(rep, key, j->out);
	if (j->kind == RJ_GET)
		json_object_set(rep, "staff_copy", j->extra ? j->extra : json_null());
	if (j->kind == RJ_DOWNLOAD) {
		char name[64];

		snprintf(name, sizeof(name), "helpline-referral-%lld.json",
			 (long long)j->ref_id);
		json_object_set_new(rep, "name", json_string(name));
		json_object_set_new(rep, "offset", json_integer(j->offset));
		json_object_set_new(rep, "total", json_integer(j->total));
		json_object_set(rep, "sealed", j->extra ? j->extra : json_string(""));
	}
	hl_session_send(j->s, rep);
	json_decref(rep);
}

static void submit(struct ref_job *j);
static void start_due(struct hl_referrals *r);

static void on_http_done(struct hl_delivery_req *req, void *arg)
{
	struct attempt *a = hl_container_of(req, struct attempt, req);
	struct hl_referrals *r = arg;
	struct hl_ref_pending *q = find_pending(r, a->ref_id);
	struct ref_job *j;

	r->in_flight--;
	if (r->srv->stopping || !r->http_started) {
		/* Abandoned: the row's lease brings it back after a restart. */
		free(a->body);
		free(a);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		if (q) {
			q->in_flight = false;
			q->due_ms = hl_now_ms() + STORE_RETRY_MS;
		}
		free(a->body);
		free(a);
		return;
	}
	j->job.exec = rjob_exec;
	j->kind = RJ_RESULT;
	j->r = r;
	j->now = hl_now_ms();
	j->ref_id = a->ref_id;
	j->attempt = a->attempt;
	j->http = req->transport_ok ? req->status : 0;
	j->outcome = hl_ref_classify(req->transport_ok, req->err, req->status,
				     req->resp, req->resp_len, j->ack,
				     sizeof(j->ack), j->err, sizeof(j->err));
	hl_info("referral.attempt", "referral=%lld attempt=%d http=%ld outcome=%d",
		(long long)a->ref_id, a->attempt, j->http, j->outcome);
	free(a->body);
	free(a);
	submit(j);
}

static void begin_done(struct ref_job *j, int status)
{
	struct hl_referrals *r = j->r;
	struct hl_ref_pending *q = find_pending(r, j->ref_id);
	struct attempt *a;

	if (status != 0 || j->skip) {
		if (j->skip || !q) {
			drop_pending(r, j->ref_id);
		} else {
			q->in_flight = false;
			q->due_ms = hl_now_ms() + STORE_RETRY_MS;
		}
		return;
	}
	push(r, j->out, "sent");
	if (!r->http_started || !(a = calloc(1, sizeof(*a)))) {
		if (q) {
			q->in_flight = false;
			q->due_ms = j->next_due;
		}
		return;
	}
	a->r = r;
	a->ref_id = j->ref_id;
	a->attempt = j->attempt;
	a->body = j->body;
	j->body = NULL;
	a->req.url = r->srv->cfg.referral_partner_url;
	a->req.body = (unsigned char *)a->body;
	a->req.body_len = j->body_len;
	snprintf(a->req.idempotency_key, sizeof(a->req.idempotency_key),
		 "helpline-referral-%lld-r%lld", (long long)j->ref_id,
		 (long long)json_integer_value(json_object_get(j->out, "revision")));
	a->req.connect_timeout_s = r->srv->cfg.referral_connect_timeout;
	a->req.timeout_s = r->srv->cfg.referral_timeout;
	r->in_flight++;
	hl_delivery_submit(&r->http, &a->req);
}

static void result_done(struct ref_job *j, int status)
{
	struct hl_referrals *r = j->r;
	struct hl_ref_pending *q = find_pending(r, j->ref_id);
	const char *state;

	if (status != 0) {
		hl_error("referral.result_failed", "referral=%lld status=%d",
			 (long long)j->ref_id, status);
		if (q) {
			q->in_flight = false;
			q->due_ms = hl_now_ms() + STORE_RETRY_MS;
		}
		return;
	}
	if (j->settled || !q) {
		drop_pending(r, j->ref_id);
	} else {
		q->in_flight = false;
		q->due_ms = j->next_due;
	}
	if (!j->out)
		return;
	state = json_string_value(json_object_get(j->out, "state"));
	if (state && strcmp(state, "acknowledged") == 0)
		hl_warn("referral.acknowledged", "referral=%lld attempt=%d",
			(long long)j->ref_id, j->attempt);
	else if (state && strcmp(state, "failed") == 0)
		hl_warn("referral.failed", "referral=%lld attempt=%d http=%ld",
			(long long)j->ref_id, j->attempt, j->http);
	push(r, j->out, state && strcmp(state, "sent") == 0 ? "retrying" : state);
}

static void rjob_done(struct hl_store_job *job, int status)
{
	struct ref_job *j = hl_container_of(job, struct ref_job, job);
	struct hl_referrals *r = j->r;
	struct hl_session *s = j->s;
	char detail[200];

	switch (j->kind) {
	case RJ_LOAD:
		if (status == 0) {
			r->pending = j->loaded;
			j->loaded = NULL;
		}
		r->init_status = status == 0 ? 1 : status;
		rjob_free(j);
		return;
	case RJ_BEGIN:
		begin_done(j, status);
		rjob_free(j);
		return;
	case RJ_RESULT:
		result_done(j, status);
		rjob_free(j);
		return;
	default:
		break;
	}
	if (status == HL_EINVAL && j->why) {
		hl_warn("referral.refused", "staff=%lld request=%s code=%s",
			(long long)j->staff_id, requests[j->kind],
			hl_err_code_name(j->refusal));
		snprintf(detail, sizeof(detail),
			 "{\"request\":\"%s\",\"referral\":%lld,\"escalation\":%lld,"
			 "\"error\":\"%s\"}", requests[j->kind], (long long)j->ref_id,
			 (long long)j->esc_id, hl_err_code_name(j->refusal));
		hl_escalation_audit(r->srv, j->staff_id, "referral.refused", detail);
		if (s && s->wsi)
			hl_session_error(s, j->id, j->refusal, j->why, j->field);
		rjob_free(j);
		return;
	}
	if (status != 0) {
		if (s && s->wsi)
			hl_session_error(s, j->id, status == HL_EFULL ? HL_ERR_BUSY
							      : HL_ERR_STORE_FAILED,
					 NULL, NULL);
		rjob_free(j);
		return;
	}
	switch (j->kind) {
	case RJ_CREATE:
		hl_info("referral.created", "referral=%lld escalation=%lld staff=%lld",
			(long long)j->ref_id, (long long)j->esc_id,
			(long long)j->staff_id);
		answer(j, "referral.created", "referral");
		push(r, j->out, "created");
		break;
	case RJ_UPDATE:
		answer(j, "referral.updated", "referral");
		push(r, j->out, "updated");
		break;
	case RJ_APPROVE:
		hl_warn("referral.approve", "referral=%lld staff=%lld as=%s both=%d",
			(long long)j->ref_id, (long long)j->staff_id, j->slot,
			j->approved_now);
		answer(j, "referral.approved", "referral");
		push(r, j->out, j->approved_now ? "approved" : "approval");
		if (j->approved_now && r->deliver) {
			set_pending(r, j->ref_id, j->now);
			start_due(r);
		}
		break;
	case RJ_LIST:
		answer(j, "referral.list", "referrals");
		break;
	case RJ_GET:
		answer(j, "referral.get", "referral");
		break;
	case RJ_RETRY:
		answer(j, "referral.retried", "referral");
		push(r, j->out, "retry");
		set_pending(r, j->ref_id, j->now);
		start_due(r);
		break;
	case RJ_DOWNLOAD:
		answer(j, "referral.download", "referral");
		break;
	default:
		break;
	}
	rjob_free(j);
}

static struct ref_job *rjob_new(struct hl_referrals *r, enum rjob_kind kind,
				struct hl_session *s, const char *id)
{
	struct ref_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->job.exec = rjob_exec;
	j->job.done = rjob_done;
	j->kind = kind;
	j->r = r;
	j->now = hl_now_ms();
	if (s) {
		j->s = s;
		j->staff_id = s->staff_id;
		hl_session_ref(s);
	}
	if (id)
		snprintf(j->id, sizeof(j->id), "%s", id);
	return j;
}

static void submit(struct ref_job *j)
{
	int rc;

	j->job.done = rjob_done;
	rc = hl_store_submit(&j->r->srv->store, &j->job);
	if (rc == 0)
		return;
	if (j->kind == RJ_BEGIN || j->kind == RJ_RESULT) {
		struct hl_ref_pending *q = find_pending(j->r, j->ref_id);

		if (q) {
			q->in_flight = false;
			q->due_ms = hl_now_ms() + STORE_RETRY_MS;
		}
	} else if (j->s && j->s->wsi) {
		hl_session_error(j->s, j->id, rc == HL_EFULL ? HL_ERR_BUSY
							  : HL_ERR_STORE_FAILED,
				 NULL, NULL);
	}
	rjob_free(j);
}

/* Starts every due attempt, up to IN_FLIGHT_MAX under way. */
static void start_due(struct hl_referrals *r)
{
	int64_t now = hl_now_ms();
	int busy = 0;

	if (!r->deliver || !r->http_started || r->srv->stopping)
		return;
	for (struct hl_ref_pending *q = r->pending; q; q = q->next)
		busy += q->in_flight;
	for (struct hl_ref_pending *q = r->pending; q && busy < IN_FLIGHT_MAX;
	     q = q->next) {
		struct ref_job *j;

		if (q->in_flight || q->due_ms > now)
			continue;
		if (!(j = rjob_new(r, RJ_BEGIN, NULL, NULL)))
			return;
		j->ref_id = q->id;
		q->in_flight = true;
		busy++;
		submit(j);
	}
}

static void on_tick(uv_timer_t *t)
{
	start_due(t->data);
}

int hl_referrals_init(struct hl_referrals *r, struct hl_server *srv)
{
	struct ref_job *j;
	size_t n;
	int rc;

	memset(r, 0, sizeof(*r));
	r->srv = srv;
	if (srv->cfg.referral_partner_key[0]) {
		if (!hl_proto_b64_into(srv->cfg.referral_partner_key, r->partner_pk,
				       32, &n, true))
			return HL_EINVAL;
		r->has_partner_key = true;
	}
	r->deliver = srv->cfg.referral_partner_url[0] != '\0';
	if (!(j = rjob_new(r, RJ_LOAD, NULL, NULL)))
		return HL_ENOMEM;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		rjob_free(j);
		return HL_ESTORE;
	}
	while (r->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	if (r->init_status != 1)
		return r->init_status;
	if (r->deliver) {
		rc = hl_delivery_start(&r->http, &srv->loop, on_http_done, r);
		if (rc != 0)
			return rc;
		r->http_started = true;
	}
	uv_timer_init(&srv->loop, &r->timer);
	r->timer.data = r;
	uv_timer_start(&r->timer, on_tick, TICK_MS, TICK_MS);
	r->timer_open = true;
	n = 0;
	for (struct hl_ref_pending *q = r->pending; q; q = q->next)
		n++;
	hl_info("referral.ready", "partner_url=%s partner_key=%s pending=%zu",
		r->deliver ? "set" : "none", r->has_partner_key ? "set" : "none", n);
	return 0;
}

void hl_referrals_stop(struct hl_referrals *r)
{
	if (r->timer_open) {
		r->timer_open = false;
		uv_close((uv_handle_t *)&r->timer, NULL);
	}
	if (r->http_started) {
		r->http_started = false;
		hl_delivery_stop(&r->http);
	}
}

void hl_referrals_free(struct hl_referrals *r)
{
	while (r->pending) {
		struct hl_ref_pending *q = r->pending;

		r->pending = q->next;
		free(q);
	}
}

size_t hl_referral_sealed_max(const struct hl_server *srv)
{
	return srv->cfg.evidence_max_bundle + PACKAGE_EXTRA;
}

/* ---- handlers ------------------------------------------------------------------------ */

/* Answers and audits a refusal decided on the loop. */
static void refuse_now(struct hl_session *s, const struct hl_msg *m,
		       enum hl_err_code code, const char *why, const char *field)
{
	char detail[200];

	snprintf(detail, sizeof(detail),
		 "{\"request\":\"%s\",\"referral\":%lld,\"escalation\":%lld,"
		 "\"error\":\"%s\"}", hl_msg_type_name(m->type),
		 (long long)m->u.ref.referral, (long long)m->u.ref.escalation,
		 hl_err_code_name(code));
	hl_escalation_audit(s->srv, s->staff_id, "referral.refused", detail);
	hl_session_error(s, m->id, code, why, field);
}

/* The loop's checks of create / update: fills j, or answers (j freed) and
 * returns false. */
static bool prepare_edit(struct hl_session *s, const struct hl_msg *m,
			 struct ref_job *j)
{
	const struct hl_msg_referral *x = &m->u.ref;
	struct hl_referrals *r = &s->srv->ref;
	const char *why, *field = NULL;
	size_t n;

	if ((why = hl_ref_check(x, &j->f, &field)) != NULL)
		goto refused_field;
	if (x->tags) {
		char buf[260], *save = NULL, *tok;

		snprintf(buf, sizeof(buf), "%s", x->tags);
		for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
			if (!hl_taxonomy_find(&s->srv->taxonomy, tok, HL_TAX_TAG)) {
				why = "tags must be tag ids of taxonomy.json, "
				      "comma-separated";
				field = "tags";
				goto refused_field;
			}
		snprintf(j->tags, sizeof(j->tags), "%s", x->tags);
	}
	if (x->bundle_digest) {
		if (!hl_proto_b64_into(x->bundle_digest, j->digest, 32, &n, true)) {
			why = "bundle_digest must be base64url of 32 bytes";
			field = "bundle_digest";
			goto refused_field;
		}
		j->has_digest = true;
	}
	if (x->sealed) {
		if (!r->has_partner_key) {
			refuse_now(s, m, HL_ERR_BAD_STATE, "no partner key is "
				   "configured ([referral] partner_key)", "sealed");
			rjob_free(j);
			return false;
		}
		if (!hl_proto_b64_into(x->sealed_to, j->sealed_to, 32, &n, true) ||
		    sodium_memcmp(j->sealed_to, r->partner_pk, 32) != 0) {
			why = "sealed_to is not the configured partner key";
			field = "sealed_to";
			goto refused_field;
		}
		if (hl_proto_b64_decode(x->sealed, hl_referral_sealed_max(s->srv),
					&j->sealed, &j->sealed_len) != 0 ||
		    j->sealed_len <= crypto_box_SEALBYTES) {
			why = "sealed must be base64url of a sealed box, at most "
			      "evidence.max_bundle + 69680 bytes";
			field = "sealed";
			goto refused_field;
		}
	}
	if (x->staff_copy && hl_proto_b64_decode(x->staff_copy, COPY_MAX, &j->copy,
						 &j->copy_len) != 0) {
		why = "staff_copy must be base64url, at most 65536 bytes";
		field = "staff_copy";
		goto refused_field;
	}
	return true;
refused_field:
	refuse_now(s, m, HL_ERR_BAD_FIELD, why, field);
	rjob_free(j);
	return false;
}

static struct ref_job *new_or_fail(struct hl_session *s, const struct hl_msg *m,
				   enum rjob_kind kind)
{
	struct ref_job *j = rjob_new(&s->srv->ref, kind, s, m->id);

	if (!j)
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
	return j;
}

void hl_referral_create(struct hl_session *s, const struct hl_msg *m)
{
	int kind = hl_ref_code(hl_ref_kinds, m->u.ref.kind);
	struct ref_job *j;

	if (kind < 0) {
		refuse_now(s, m, HL_ERR_BAD_FIELD, "kind must be police or "
			   "safeguarding", "kind");
		return;
	}
	if (!(j = new_or_fail(s, m, RJ_CREATE)))
		return;
	if (!prepare_edit(s, m, j))
		return;
	j->ref_kind = kind;
	j->esc_id = m->u.ref.escalation;
	submit(j);
}

void hl_referral_update(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j = new_or_fail(s, m, RJ_UPDATE);

	if (!j || !prepare_edit(s, m, j))
		return;
	j->ref_id = m->u.ref.referral;
	j->revision = m->u.ref.revision;
	submit(j);
}

void hl_referral_approve(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j;

	if (!hl_auth_fresh(s)) {
		refuse_now(s, m, HL_ERR_REAUTH_REQUIRED, "enter a code from your "
			   "authenticator app (auth.reauth) to approve a "
			   "referral", NULL);
		return;
	}
	if (!(j = new_or_fail(s, m, RJ_APPROVE)))
		return;
	j->ref_id = m->u.ref.referral;
	j->revision = m->u.ref.revision;
	submit(j);
}

void hl_referral_list(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j = new_or_fail(s, m, RJ_LIST);

	if (!j)
		return;
	if (!(j->out = json_array())) {
		rjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->esc_id = m->u.ref.escalation;
	submit(j);
}

void hl_referral_get(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j = new_or_fail(s, m, RJ_GET);

	if (!j)
		return;
	j->ref_id = m->u.ref.referral;
	submit(j);
}

void hl_referral_retry(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j = new_or_fail(s, m, RJ_RETRY);

	if (!j)
		return;
	j->ref_id = m->u.ref.referral;
	submit(j);
}

void hl_referral_download(struct hl_session *s, const struct hl_msg *m)
{
	struct ref_job *j = new_or_fail(s, m, RJ_DOWNLOAD);

	if (!j)
		return;
	j->ref_id = m->u.ref.referral;
	j->offset = m->u.ref.offset;
	submit(j);
}
