/* evidence_msg.c: evidence.sign and evidence.material (see evidence_msg.h). One request goes
 * loop (who may ask) -> uv threadpool (hl_evidence_check: the bundle
 * verifies, is of the conversation and of now) -> writer (the store job:
 * hl_evidence_countersign compares it with the database, signs and audits
 * "evidence.signed" in one transaction) -> loop (the reply). A refusal at
 * any step is answered with its code and audited by a job of its own. */
#include "evidence_msg.h"
#include "audit.h"
#include "auth.h"
#include "common.h"
#include "conversation.h"
#include "escalation.h"
#include "evidence.h"
#include "log.h"
#include "referral.h"
#include "server.h"
#include "session.h"
#include "staff.h"
#include "store.h"
#include "trust.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frame overhead allowed around a bundle: type, id, conversation. */
#define FRAME_ENVELOPE 4096

/* One evidence.sign in flight. Owned by the step running it. */
struct sign_job {
	uv_work_t work;                  /* the check on the threadpool */
	struct hl_store_job job;         /* the countersigning on the writer */
	struct hl_server *srv;
	struct hl_session *s;            /* referenced until freed */
	char id[HL_PROTO_ID_MAX + 1];    /* the request id */
	unsigned char *bundle;           /* malloc'd copy; freed after the check */
	struct hl_evidence_request q;    /* q.bundle points at bundle */
	struct hl_bundle_report rep;     /* filled by the check */
	struct hl_evidence_result res;
	int status;                      /* hl_evidence_check's return */
};

static void job_free(struct sign_job *j)
{
	hl_bundle_report_free(&j->rep);
	sodium_memzero(j->res.sig, sizeof(j->res.sig));
	if (j->bundle) {
		/* Disclosed message bodies: do not leave them in freed memory. */
		sodium_memzero(j->bundle, j->q.len);
		free(j->bundle);
	}
	if (j->s)
		hl_session_unref(j->s);
	free(j);
}

static bool is_supervisor(struct hl_session *s)
{
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);

	return st && (st->row.roles & HL_STAFF_SUPERVISOR);
}

size_t hl_evidence_frame_max(struct hl_session *s)
{
	const struct hl_config *cfg = &s->srv->cfg;
	size_t big = 2 * cfg->evidence_max_bundle + FRAME_ENVELOPE;
	/* referral.create / update: the sealed package in base64url, the
	 * staff copy and the other fields. */
	size_t ref = (hl_referral_sealed_max(s->srv) + 2) / 3 * 4 + 87384 +
		     FRAME_ENVELOPE;

	if (ref > big)
		big = ref;

	if (s->role != HL_ROLE_STAFF || !s->staff_id || !is_supervisor(s) ||
	    big <= cfg->ws_max_message)
		return cfg->ws_max_message;
	return big;
}

static enum hl_err_code code_of(const char *code)
{
	if (code && strcmp(code, "forbidden") == 0)
		return HL_ERR_FORBIDDEN;
	if (code && strcmp(code, "bad_state") == 0)
		return HL_ERR_BAD_STATE;
	return HL_ERR_BAD_FIELD;
}

/* Audits a refusal of request (a message type) and answers it. why is the
 * verifier's or ours; it is cut to printable ASCII so that no byte of the
 * bundle reaches the reply unescaped. */
static void refuse_req(struct hl_server *srv, struct hl_session *s,
		       const char *request, const char *id, int64_t conv,
		       enum hl_err_code code, const char *why,
		       const char *field)
{
	char detail[160], text[256];
	size_t i;

	for (i = 0; why && why[i] && i < sizeof(text) - 1; i++)
		text[i] = why[i] >= 0x20 && why[i] < 0x7f ? why[i] : '?';
	text[i] = '\0';
	snprintf(detail, sizeof(detail),
		 "{\"request\":\"%s\",\"conversation\":%lld,"
		 "\"error\":\"%s\"}", request, (long long)conv,
		 hl_err_code_name(code));
	hl_warn("evidence.refused", "staff=%lld conv=%lld code=%s",
		(long long)(s ? s->staff_id : 0), (long long)conv,
		hl_err_code_name(code));
	hl_escalation_audit(srv, s ? s->staff_id : 0, "escalation.refused",
			    detail);
	if (s && s->wsi)
		hl_session_error(s, id, code, why ? text : NULL, field);
}

static void refuse(struct hl_server *srv, struct hl_session *s,
		   const char *id, int64_t conv, enum hl_err_code code,
		   const char *why, const char *field)
{
	refuse_req(srv, s, "evidence.sign", id, conv, code, why, field);
}

/* The conversation a request names, if the caller is a supervisor;
 * otherwise answers (a refusal of a non-supervisor is audited) and returns
 * 0. what ends "may have its evidence ...". */
static int64_t supervisor_conv(struct hl_session *s, const struct hl_msg *m,
			       const char *request, const char *what)
{
	int64_t conv = hl_conv_id_parse(m->u.evidence.conversation);
	char why[128];

	if (!conv) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "conversation must be a conversation id",
				 "conversation");
		return 0;
	}
	if (!is_supervisor(s)) {
		snprintf(why, sizeof(why), "only the supervisor who claimed an "
			 "escalation of this conversation may have its "
			 "evidence %s", what);
		refuse_req(s->srv, s, request, m->id, conv, HL_ERR_FORBIDDEN,
			   why, "type");
		return 0;
	}
	return conv;
}

/* ---- the writer: compare with the database, sign, audit ------------------ */

static int sign_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct sign_job *j = hl_container_of(job, struct sign_job, job);

	return hl_evidence_countersign(db, stmts, &j->q, &j->rep, &j->res);
}

static void sign_done(struct hl_store_job *job, int status)
{
	struct sign_job *j = hl_container_of(job, struct sign_job, job);
	struct hl_session *s = j->s;
	json_t *r;

	if (status == HL_EINVAL && j->res.code) {
		refuse(j->srv, s, j->id, j->q.conversation, code_of(j->res.code),
		       j->res.why, code_of(j->res.code) == HL_ERR_BAD_FIELD
					 ? "bundle" : "conversation");
		job_free(j);
		return;
	}
	if (status != 0) {
		hl_error("evidence.sign_failed", "staff=%lld conv=%lld status=%d",
			 (long long)j->q.staff_id, (long long)j->q.conversation,
			 status);
		if (s && s->wsi)
			hl_session_error(s, j->id, status == HL_EFULL
						   ? HL_ERR_BUSY : HL_ERR_STORE_FAILED,
					 NULL, NULL);
		job_free(j);
		return;
	}
	hl_warn("evidence.signed", "staff=%lld conv=%lld events=%zu "
		"disclosed=%zu", (long long)j->q.staff_id,
		(long long)j->q.conversation, j->rep.events, j->rep.nmessages);
	if (s && s->wsi) {
		char conv[24];

		snprintf(conv, sizeof(conv), "%lld", (long long)j->q.conversation);
		r = hl_proto_reply("evidence.signed", j->id);
		if (r) {
			json_object_set_new(r, "conversation", json_string(conv));
			json_object_set_new(r, "digest", hl_proto_b64_json(
				j->res.digest, sizeof(j->res.digest)));
			json_object_set_new(r, "sig", hl_proto_b64_json(
				j->res.sig, sizeof(j->res.sig)));
			hl_session_send(s, r);
			json_decref(r);
		} else {
			hl_session_error(s, j->id, HL_ERR_INTERNAL, NULL, NULL);
		}
	}
	job_free(j);
}

/* ---- the threadpool: the bundle itself ----------------------------------- */

static void check_work(uv_work_t *req)
{
	struct sign_job *j = hl_container_of(req, struct sign_job, work);

	j->status = hl_evidence_check(&j->q, &j->rep, &j->res);
}

static void check_after(uv_work_t *req, int status)
{
	struct sign_job *j = hl_container_of(req, struct sign_job, work);
	struct hl_session *s = j->s;
	int rc;

	/* The report keeps what the writer needs; the file is done with. */
	sodium_memzero(j->bundle, j->q.len);
	free(j->bundle);
	j->bundle = NULL;
	j->q.bundle = NULL;
	if (status == UV_ECANCELED || j->srv->stopping) {
		if (s && s->wsi)
			hl_session_error(s, j->id, HL_ERR_SHUTTING_DOWN,
					 "server is shutting down", NULL);
		job_free(j);
		return;
	}
	if (j->status == HL_EINVAL) {
		refuse(j->srv, s, j->id, j->q.conversation, code_of(j->res.code),
		       j->res.why, code_of(j->res.code) == HL_ERR_BAD_FIELD
					 ? "bundle" : NULL);
		job_free(j);
		return;
	}
	if (j->status != 0) {
		hl_error("evidence.check_failed", "conv=%lld status=%d",
			 (long long)j->q.conversation, j->status);
		if (s && s->wsi)
			hl_session_error(s, j->id, HL_ERR_INTERNAL, NULL, NULL);
		job_free(j);
		return;
	}
	if (!s->wsi) {
		/* Nobody to give the signature to: sign nothing, audit nothing. */
		job_free(j);
		return;
	}
	j->job.exec = sign_exec;
	j->job.done = sign_done;
	rc = hl_store_submit(&j->srv->store, &j->job);
	if (rc != 0) {
		if (s && s->wsi)
			hl_session_error(s, j->id, rc == HL_EFULL ? HL_ERR_BUSY
							  : HL_ERR_STORE_FAILED,
					 NULL, NULL);
		job_free(j);
	}
}

/* ---- the loop: who may ask ------------------------------------------------ */

void hl_evidence_sign(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_server *srv = s->srv;
	const struct hl_msg_evidence *x = &m->u.evidence;
	int64_t conv = supervisor_conv(s, m, "evidence.sign", "signed");
	size_t len = strlen(x->bundle); /* jansson strings hold no NUL */
	struct sign_job *j;
	char why[128];

	if (!conv)
		return;
	if (!hl_auth_fresh(s)) {
		refuse(srv, s, m->id, conv, HL_ERR_REAUTH_REQUIRED,
		       "enter a code from your authenticator app (auth.reauth) "
		       "to have evidence signed", NULL);
		return;
	}
	if (len > srv->cfg.evidence_max_bundle) {
		snprintf(why, sizeof(why), "the bundle is larger than "
			 "evidence.max_bundle (%zu bytes)",
			 srv->cfg.evidence_max_bundle);
		refuse(srv, s, m->id, conv, HL_ERR_BAD_FIELD, why, "bundle");
		return;
	}
	if (!hl_trust_root(&srv->trust) || !hl_trust_evidence_sk(&srv->trust)) {
		refuse(srv, s, m->id, conv, HL_ERR_BAD_STATE,
		       "the service has no EVIDENCE key (run helplinectl "
		       "evidence-key)", NULL);
		return;
	}
	if (!(j = calloc(1, sizeof(*j))) || !(j->bundle = malloc(len))) {
		free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, "out of memory", NULL);
		return;
	}
	memcpy(j->bundle, x->bundle, len);
	j->srv = srv;
	j->s = s;
	hl_session_ref(s);
	snprintf(j->id, sizeof(j->id), "%s", m->id);
	j->q.bundle = j->bundle;
	j->q.len = len;
	j->q.conversation = conv;
	j->q.staff_id = s->staff_id;
	j->q.now_ms = hl_now_ms();
	j->q.root_pk = hl_trust_root(&srv->trust);
	j->q.evidence_sk = hl_trust_evidence_sk(&srv->trust);
	if (uv_queue_work(&srv->loop, &j->work, check_work, check_after) != 0) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL,
				 "cannot start the check", NULL);
		job_free(j);
	}
}

/* ---- evidence.material ---------------------------------------------------- */

/* One evidence.material in flight (a store job). */
struct material_job {
	struct hl_store_job job;
	struct hl_server *srv;
	struct hl_session *s;            /* referenced until freed */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t conv, staff_id, now;
	bool fresh;                      /* the caller's TOTP is fresh */
	enum hl_err_code refusal;        /* set with HL_EINVAL */
	json_t *checkpoints, *audit;     /* the answer's arrays */
	int64_t after;                   /* the page's start (a cursor) */
	size_t budget, used;             /* the page's bytes */
	bool more;                       /* more are left after this page */
	int64_t next;                    /* the next page's after */
};

/* A page's cursor: where it ends, as pos * 2 + part. Part 0 is the
 * checkpoints (pos: the last seq read), part 1 the audit entries (pos:
 * the last audit seq read); every checkpoint comes before any entry. */
#define PART_CHECKPOINTS 0
#define PART_AUDIT 1
/* About what one row costs as sent, besides its blobs and text. */
#define MATERIAL_ROW_BYTES 160

static void material_free(struct material_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	json_decref(j->checkpoints);
	json_decref(j->audit);
	free(j);
}

static json_t *col_b64(sqlite3_stmt *st, int i)
{
	json_t *v = hl_proto_b64_json(sqlite3_column_blob(st, i),
				      (size_t)sqlite3_column_bytes(st, i));

	return v ? v : json_null();
}

/* Whether a row of bytes still fits the page (the first always does);
 * sets more when it does not. */
static bool page_room(struct material_job *j, size_t bytes)
{
	if (!hl_proto_page_fits(&j->used, j->budget, bytes)) {
		j->more = true;
		return false;
	}
	return true;
}

/* The conversation's signed checkpoints after seq `after`, in seq order. */
static int read_checkpoints(sqlite3 *db, struct material_job *j, int64_t after)
{
	sqlite3_stmt *st = NULL;
	int rc;

	/* Prepared per request: rare (a few times per escalation). */
	if (sqlite3_prepare_v2(db, "SELECT seq, at, head, signature FROM "
			       "checkpoint WHERE conversation_id = ?1 AND seq > ?2 "
			       "ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->conv);
	sqlite3_bind_int64(st, 2, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);

		if (!page_room(j, MATERIAL_ROW_BYTES +
			       ((size_t)sqlite3_column_bytes(st, 2) +
				(size_t)sqlite3_column_bytes(st, 3)) * 4 / 3)) {
			rc = SQLITE_DONE;
			break;
		}
		json_array_append_new(j->checkpoints, json_pack(
			"{s:I, s:I, s:o, s:o}",
			"seq", (json_int_t)seq,
			"at", (json_int_t)sqlite3_column_int64(st, 1),
			"head", col_b64(st, 2), "sig", col_b64(st, 3)));
		j->next = seq * 2 + PART_CHECKPOINTS;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

/* The audit entries of the conversation's escalations after audit seq
 * `after`, in seq order: json_extract over the escalation.* rows (a scan
 * of the audit table; rare, and bounded by it). */
static int read_audit(sqlite3 *db, struct material_job *j, int64_t after)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT seq, at, coalesce(actor, 0), action, "
			       "coalesce(target, 0), detail, prev_hash, entry_hash "
			       "FROM audit WHERE seq > ?2 AND action LIKE "
			       "'escalation.%' AND json_valid(detail) AND "
			       "json_extract(detail, '$.conversation') = ?1 "
			       "ORDER BY seq", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->conv);
	sqlite3_bind_int64(st, 2, after);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);

		if (!page_room(j, MATERIAL_ROW_BYTES +
			       (size_t)sqlite3_column_bytes(st, 3) +
			       (size_t)sqlite3_column_bytes(st, 5) * 2 +
			       ((size_t)sqlite3_column_bytes(st, 6) +
				(size_t)sqlite3_column_bytes(st, 7)) * 4 / 3)) {
			rc = SQLITE_DONE;
			break;
		}
		json_array_append_new(j->audit, json_pack(
			"{s:I, s:I, s:I, s:s, s:I, s:s, s:o, s:o}",
			"seq", (json_int_t)seq,
			"at", (json_int_t)sqlite3_column_int64(st, 1),
			"actor", (json_int_t)sqlite3_column_int64(st, 2),
			"action", (const char *)sqlite3_column_text(st, 3),
			"target", (json_int_t)sqlite3_column_int64(st, 4),
			"detail", (const char *)sqlite3_column_text(st, 5),
			"prev_hash", col_b64(st, 6), "entry_hash", col_b64(st, 7)));
		j->next = seq * 2 + PART_AUDIT;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static int material_exec(struct hl_store_job *job, sqlite3 *db,
			 sqlite3_stmt *const *stmts)
{
	struct material_job *j = hl_container_of(job, struct material_job, job);
	char detail[80];
	struct hl_audit_entry a = {
		.at_ms = j->now, .actor = j->staff_id,
		.action = "evidence.material", .detail = detail,
	};
	int rc = hl_escalation_reader(db, j->conv, j->staff_id);

	if (rc < 0)
		return rc;
	if (rc != HL_ESC_READER_CLAIMER || !j->fresh) {
		j->refusal = rc != HL_ESC_READER_CLAIMER ? HL_ERR_FORBIDDEN
							 : HL_ERR_REAUTH_REQUIRED;
		return HL_EINVAL;
	}
	if ((j->after & 1) == PART_CHECKPOINTS) {
		rc = read_checkpoints(db, j, j->after >> 1);
		if (rc == 0 && !j->more)
			rc = read_audit(db, j, 0);
	} else {
		rc = read_audit(db, j, j->after >> 1);
	}
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"conversation\":%lld}",
		 (long long)j->conv);
	return hl_audit_append(stmts, &a, NULL) == 0 ? 0 : HL_ESTORE;
}

static void material_done(struct hl_store_job *job, int status)
{
	struct material_job *j = hl_container_of(job, struct material_job, job);
	struct hl_session *s = j->s;
	json_t *r;
	char conv[24];

	if (status == HL_EINVAL && j->refusal) {
		refuse_req(j->srv, s, "evidence.material", j->id, j->conv,
			   j->refusal, j->refusal == HL_ERR_FORBIDDEN
			   ? "only the supervisor who claimed an escalation of "
			     "this conversation may have its evidence material"
			   : "enter a code from your authenticator app "
			     "(auth.reauth) to read this conversation",
			   j->refusal == HL_ERR_FORBIDDEN ? "conversation" : NULL);
		material_free(j);
		return;
	}
	if (!s || !s->wsi) {
		material_free(j);
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, status == HL_EFULL ? HL_ERR_BUSY
							      : HL_ERR_STORE_FAILED,
				 NULL, NULL);
		material_free(j);
		return;
	}
	snprintf(conv, sizeof(conv), "%lld", (long long)j->conv);
	r = hl_proto_reply("evidence.material", j->id);
	if (r) {
		json_object_set_new(r, "conversation", json_string(conv));
		json_object_set(r, "checkpoints", j->checkpoints);
		json_object_set(r, "audit", j->audit);
		hl_proto_page(r, j->more, j->next);
		hl_session_send(s, r);
		json_decref(r);
	} else {
		hl_session_error(s, j->id, HL_ERR_INTERNAL, NULL, NULL);
	}
	material_free(j);
}

void hl_evidence_material(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_server *srv = s->srv;
	int64_t conv = supervisor_conv(s, m, "evidence.material", "material");
	struct material_job *j;
	int rc;

	if (!conv)
		return;
	if (!(j = calloc(1, sizeof(*j))) || !(j->checkpoints = json_array()) ||
	    !(j->audit = json_array())) {
		if (j)
			json_decref(j->checkpoints);
		free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, "out of memory", NULL);
		return;
	}
	j->job.exec = material_exec;
	j->job.done = material_done;
	j->srv = srv;
	j->s = s;
	hl_session_ref(s);
	snprintf(j->id, sizeof(j->id), "%s", m->id);
	j->conv = conv;
	j->staff_id = s->staff_id;
	j->now = hl_now_ms();
	j->fresh = hl_auth_fresh(s);
	j->after = m->u.evidence.after;
	j->budget = hl_session_page_budget(s);
	rc = hl_store_submit(&srv->store, &j->job);
	if (rc != 0) {
		hl_session_error(s, m->id, rc == HL_EFULL ? HL_ERR_BUSY
							  : HL_ERR_STORE_FAILED,
				 NULL, NULL);
		material_free(j);
	}
}
