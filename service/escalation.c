/* escalation.c: raising, listing, claiming and deciding escalations, the
 * live alerts and re-alerts (see escalation.h). Every database step is a
 * store job; statements are prepared per job (escalations are rare, and
 * this keeps their SQL in one place). Refusals decided on the writer
 * thread roll the job's savepoint back, so they are audited afterwards by a
 * job of their own (hl_escalation_audit). */
#include "escalation.h"
#include "audit.h"
#include "auth.h"
#include "common.h"
#include "contact.h"
#include "conversation.h"
#include "log.h"
#include "routing.h"
#include "row.h"
#include "server.h"
#include "session.h"
#include "staff.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX 200
#define TICK_MS 1000
#define RECENT_MS (7 * 86400 * INT64_C(1000)) /* decided ones listed for a week */
#define SEALED_MAX 65536

static const char *const reasons[] = {
	"life_at_risk", "sextortion_threat", "position_of_trust",
	"harming_others", "asks_for_police", NULL,
};
static const char *const urgencies[] = {"routine", "urgent", "immediate", NULL};
static const char *const decisions[] = {
	"no_further_action", "safeguarding_referral", "police_referral", NULL,
};
static const char *const states[] = {"open", "claimed", "decided", NULL};

static int code_index(const char *const *list, const char *s)
{
	for (int i = 0; s && list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return i;
	return -1;
}

enum ejob_kind { EJ_LOAD, EJ_RAISE, EJ_LIST, EJ_CLAIM, EJ_DECIDE, EJ_AUDIT };

struct esc_job {
	struct hl_store_job job;
	enum ejob_kind kind;
	struct hl_escalations *e;
	struct hl_session *s;          /* referenced, or NULL */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t now, staff_id, conv_id, esc_id;
	bool supervisor;               /* EJ_LIST: the caller sees all */
	int64_t before;                /* EJ_LIST: older than this id; 0 = all */
	size_t budget;                 /* EJ_LIST: the page's bytes */
	bool more;                     /* EJ_LIST: older ones are left */
	int64_t next;                  /* EJ_LIST: the page's last id */
	int reason, urgency, decision;
	unsigned char *blob;           /* sealed note / reasons, malloc'd */
	size_t blob_len;
	bool again;                    /* EJ_CLAIM: already the caller's */
	/* A refusal decided in exec: answered and audited in done. */
	enum hl_err_code refusal;
	const char *why, *field;
	char action[40];               /* EJ_AUDIT */
	char detail[256];              /* EJ_AUDIT, and refusals' detail */
	json_t *out;                   /* the escalation object, or the list */
	struct hl_esc_live *loaded;    /* EJ_LOAD: the undecided ones */
};

/* ---- the wire object -------------------------------------------------------- */

#define ROW_SQL \
	"SELECT e.id, e.conversation_id, e.reason, e.urgency, e.state, " \
	"e.raised_by, r.display_name, e.raised_at, e.note, e.claimed_by, " \
	"s.display_name, e.claimed_at, e.decision, e.reasons, e.decided_at, " \
	"c.risk, c.topics, c.age_band, c.state, c.counsellor_id FROM escalation e " \
	"JOIN conversation c ON c.id = e.conversation_id " \
	"LEFT JOIN staff r ON r.id = e.raised_by " \
	"LEFT JOIN staff s ON s.id = e.claimed_by "

static json_t *row_json(sqlite3_stmt *st)
{
	static const char *const risks[] = {"standard", "elevated", "high", "immediate"};
	json_t *o = json_object();
	char conv[24];
	int risk = sqlite3_column_int(st, 15);

	snprintf(conv, sizeof(conv), "%lld", (long long)sqlite3_column_int64(st, 1));
	json_object_set_new(o, "escalation", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "conversation", json_string(conv));
	json_object_set_new(o, "reason", hl_row_text(st, 2));
	json_object_set_new(o, "urgency", hl_row_text(st, 3));
	json_object_set_new(o, "state", hl_row_text(st, 4));
	json_object_set_new(o, "raised_by", hl_row_int(st, 5));
	json_object_set_new(o, "raised_by_name", hl_row_text(st, 6));
	json_object_set_new(o, "raised_at", hl_row_int(st, 7));
	json_object_set_new(o, "note", hl_row_b64(st, 8));
	json_object_set_new(o, "claimed_by", hl_row_int(st, 9));
	json_object_set_new(o, "claimed_by_name", hl_row_text(st, 10));
	json_object_set_new(o, "claimed_at", hl_row_int(st, 11));
	json_object_set_new(o, "decision", hl_row_text(st, 12));
	json_object_set_new(o, "reasons", hl_row_b64(st, 13));
	json_object_set_new(o, "decided_at", hl_row_int(st, 14));
	json_object_set_new(o, "risk", json_string(risks[risk >= 0 && risk < 4 ? risk : 0]));
	json_object_set_new(o, "topics", hl_row_text(st, 16));
	json_object_set_new(o, "age_band", hl_row_text(st, 17));
	json_object_set_new(o, "conversation_state", hl_row_text(st, 18));
	json_object_set_new(o, "counsellor", hl_row_int(st, 19));
	return o;
}

/* Reads escalation id into j->out. 0, HL_ENOTFOUND or HL_ESTORE. */
static int read_row(sqlite3 *db, struct esc_job *j, int64_t id)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, ROW_SQL "WHERE e.id = ?1", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		json_decref(j->out);
		j->out = row_json(st);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? HL_ENOTFOUND : HL_ESTORE;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- helpers on the writer ---------------------------------------------------- */

static int refuse(struct esc_job *j, enum hl_err_code code, const char *why,
		  const char *field)
{
	j->refusal = code;
	j->why = why;
	j->field = field;
	return HL_EINVAL;
}

static int audit_job(sqlite3_stmt *const *stmts, const struct esc_job *j,
		     const char *action, const char *detail)
{
	struct hl_audit_entry a = {
		.at_ms = j->now, .actor = j->staff_id, .action = action,
		.detail = detail,
	};

	return hl_audit_append(stmts, &a, NULL) == 0 ? 0 : HL_ESTORE;
}

int hl_escalation_reader(sqlite3 *db, int64_t conv_id, int64_t staff_id)
{
	sqlite3_stmt *st = NULL;
	int rc, out = HL_ESC_READER_NONE;

	if (sqlite3_prepare_v2(db,
			       "SELECT (SELECT count(*) FROM escalation WHERE "
			       "conversation_id = ?1 AND claimed_by = ?2), "
			       "(SELECT count(*) FROM escalation e JOIN conversation c "
			       "ON c.id = e.conversation_id WHERE e.conversation_id = ?1 "
			       "AND e.state != 'decided' AND c.counsellor_id = ?2), "
			       /* A referral of it in draft awaits the approval
				* of the counsellor who raised the escalation or
				* holds the chat: they read it to review it. */
			       "(SELECT count(*) FROM referral r JOIN escalation e "
			       "ON e.id = r.escalation_id JOIN conversation c "
			       "ON c.id = r.conversation_id WHERE r.conversation_id = ?1 "
			       "AND r.state = 'draft' AND (e.raised_by = ?2 OR "
			       "c.counsellor_id = ?2))",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, conv_id);
	sqlite3_bind_int64(st, 2, staff_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int64(st, 0) > 0)
			out = HL_ESC_READER_CLAIMER;
		else if (sqlite3_column_int64(st, 1) > 0 ||
			 sqlite3_column_int64(st, 2) > 0)
			out = HL_ESC_READER_HOLDER;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? out : HL_ESTORE;
}

static int do_load(sqlite3 *db, struct esc_job *j)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, ROW_SQL "WHERE e.state != 'decided' ORDER BY e.id",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct hl_esc_live *l = calloc(1, sizeof(*l));

		if (!l) {
			sqlite3_finalize(st);
			return HL_ENOMEM;
		}
		l->id = sqlite3_column_int64(st, 0);
		l->conv_id = sqlite3_column_int64(st, 1);
		l->urgency = code_index(urgencies, (const char *)sqlite3_column_text(st, 3));
		if ((int)l->urgency < 0)
			l->urgency = HL_ESC_ROUTINE;
		l->state = code_index(states, (const char *)sqlite3_column_text(st, 4)) == 1
				   ? HL_ESC_CLAIMED : HL_ESC_OPEN;
		l->raised_by = sqlite3_column_int64(st, 5);
		l->raised_at = sqlite3_column_int64(st, 7);
		l->claimed_by = sqlite3_column_int64(st, 9);
		l->last_alert_ms = 0; /* alert again after a restart */
		l->obj = row_json(st);
		l->next = j->loaded;
		j->loaded = l;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

static int do_raise(sqlite3 *db, sqlite3_stmt *const *stmts, struct esc_job *j)
{
	struct hl_conv conv;
	sqlite3_stmt *st = NULL;
	char detail[160];
	int rc = hl_conv_get(stmts, j->conv_id, &conv);

	if (rc == HL_ENOTFOUND || (rc == 0 && conv.counsellor_id != j->staff_id))
		return refuse(j, HL_ERR_FORBIDDEN,
			      "you can escalate only a chat you hold",
			      "conversation");
	if (rc != 0)
		return rc;
	if (conv.state != HL_CONV_ACTIVE && conv.state != HL_CONV_ENDED &&
	    conv.state != HL_CONV_WRAPPED)
		return refuse(j, HL_ERR_BAD_STATE,
			      "the chat has not started yet", "conversation");
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM escalation WHERE "
				   "conversation_id = ?1 AND state != 'decided'",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->conv_id);
	rc = sqlite3_step(st) == SQLITE_ROW ? (int)sqlite3_column_int64(st, 0) : -1;
	sqlite3_finalize(st);
	if (rc < 0)
		return HL_ESTORE;
	if (rc > 0)
		return refuse(j, HL_ERR_CONFLICT,
			      "this chat already has an escalation waiting for a "
			      "decision", "conversation");
	if (sqlite3_prepare_v2(db, "INSERT INTO escalation(conversation_id, reason, "
				   "urgency, raised_by, raised_at, note) VALUES(?1, "
				   "?2, ?3, ?4, ?5, ?6)", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->conv_id);
	sqlite3_bind_text(st, 2, reasons[j->reason], -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, urgencies[j->urgency], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->staff_id);
	sqlite3_bind_int64(st, 5, j->now);
	if (j->blob)
		sqlite3_bind_blob(st, 6, j->blob, (int)j->blob_len, SQLITE_STATIC);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	j->esc_id = sqlite3_last_insert_rowid(db);
	snprintf(detail, sizeof(detail),
		 "{\"escalation\":%lld,\"conversation\":%lld,\"reason\":\"%s\","
		 "\"urgency\":\"%s\"}", (long long)j->esc_id,
		 (long long)j->conv_id, reasons[j->reason], urgencies[j->urgency]);
	rc = audit_job(stmts, j, "escalation.raise", detail);
	return rc != 0 ? rc : read_row(db, j, j->esc_id);
}

/* state and claimed_by of escalation j->esc_id into *state / *claimer. */
static int get_state(sqlite3 *db, struct esc_job *j, int *state, int64_t *claimer)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT state, claimed_by, conversation_id FROM "
				   "escalation WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->esc_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*state = code_index(states, (const char *)sqlite3_column_text(st, 0));
		*claimer = sqlite3_column_int64(st, 1);
		j->conv_id = sqlite3_column_int64(st, 2);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? HL_ENOTFOUND : HL_ESTORE;
	}
	sqlite3_finalize(st);
	return rc;
}

static int do_claim(sqlite3 *db, sqlite3_stmt *const *stmts, struct esc_job *j)
{
	sqlite3_stmt *st = NULL;
	char detail[96];
	int64_t claimer = 0;
	int state = 0, rc = get_state(db, j, &state, &claimer);

	if (rc == HL_ENOTFOUND)
		return refuse(j, HL_ERR_NOT_FOUND, "no escalation with that id",
			      "escalation");
	if (rc != 0)
		return rc;
	if (state == HL_ESC_DECIDED)
		return refuse(j, HL_ERR_BAD_STATE, "this escalation has been decided",
			      "escalation");
	if (state == HL_ESC_CLAIMED && claimer != j->staff_id)
		return refuse(j, HL_ERR_CONFLICT,
			      "another supervisor has claimed this escalation",
			      "escalation");
	if (state == HL_ESC_CLAIMED) {
		j->again = true;
		return read_row(db, j, j->esc_id);
	}
	if (sqlite3_prepare_v2(db, "UPDATE escalation SET state = 'claimed', "
				   "claimed_by = ?2, claimed_at = ?3 WHERE id = ?1 "
				   "AND state = 'open'", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->esc_id);
	sqlite3_bind_int64(st, 2, j->staff_id);
	sqlite3_bind_int64(st, 3, j->now);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail), "{\"escalation\":%lld,\"conversation\":%lld}",
		 (long long)j->esc_id, (long long)j->conv_id);
	rc = audit_job(stmts, j, "escalation.claim", detail);
	return rc != 0 ? rc : read_row(db, j, j->esc_id);
}

static int do_decide(sqlite3 *db, sqlite3_stmt *const *stmts, struct esc_job *j)
{
	sqlite3_stmt *st = NULL;
	char detail[128];
	int64_t claimer = 0;
	int state = 0, rc = get_state(db, j, &state, &claimer);

	if (rc == HL_ENOTFOUND)
		return refuse(j, HL_ERR_NOT_FOUND, "no escalation with that id",
			      "escalation");
	if (rc != 0)
		return rc;
	if (state == HL_ESC_DECIDED)
		return refuse(j, HL_ERR_CONFLICT, "this escalation has been decided",
			      "escalation");
	if (claimer != j->staff_id)
		return refuse(j, HL_ERR_FORBIDDEN,
			      "only the supervisor who claimed it decides",
			      "escalation");
	if (sqlite3_prepare_v2(db, "UPDATE escalation SET state = 'decided', "
				   "decision = ?2, reasons = ?3, decided_at = ?4 "
				   "WHERE id = ?1", -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->esc_id);
	sqlite3_bind_text(st, 2, decisions[j->decision], -1, SQLITE_STATIC);
	if (j->blob)
		sqlite3_bind_blob(st, 3, j->blob, (int)j->blob_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, j->now);
	rc = hl_store_step_done(st);
	sqlite3_finalize(st);
	if (rc != 0)
		return rc;
	snprintf(detail, sizeof(detail),
		 "{\"escalation\":%lld,\"conversation\":%lld,\"decision\":\"%s\"}",
		 (long long)j->esc_id, (long long)j->conv_id, decisions[j->decision]);
	rc = audit_job(stmts, j, "escalation.decide", detail);
	return rc != 0 ? rc : read_row(db, j, j->esc_id);
}

/*
 * One page of the list, newest first: up to LIST_MAX and, after the first,
 * up to j->budget bytes as sent (a quarter of ws.outq_max; notes and
 * reasons are up to 64 KiB each, and a page bigger than the reader's queue
 * would close it as too slow on every try).
 */
static int do_list(sqlite3 *db, struct esc_job *j)
{
	sqlite3_stmt *st = NULL;
	size_t used = 0, n;
	json_t *o;
	int rc;

	if (sqlite3_prepare_v2(db, j->supervisor
			       ? ROW_SQL "WHERE (e.state != 'decided' OR e.decided_at >= ?2 "
				 "OR e.claimed_by = ?1) AND e.id < ?4 "
				 "ORDER BY e.id DESC LIMIT ?3"
			       : ROW_SQL "WHERE (e.raised_by = ?1 OR (c.counsellor_id = ?1 "
				 "AND e.state != 'decided')) AND e.id < ?4 "
				 "ORDER BY e.id DESC LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, j->staff_id);
	if (j->supervisor)
		sqlite3_bind_int64(st, 2, j->now - RECENT_MS);
	sqlite3_bind_int(st, 3, LIST_MAX + 1); /* one more: more */
	sqlite3_bind_int64(st, 4, j->before ? j->before : INT64_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (json_array_size(j->out) == LIST_MAX) {
			j->more = true;
			break;
		}
		if (!(o = row_json(st))) {
			sqlite3_finalize(st);
			return HL_ENOMEM;
		}
		n = json_dumpb(o, NULL, 0, JSON_COMPACT);
		if (!hl_proto_page_fits(&used, j->budget, n)) {
			json_decref(o);
			j->more = true;
			break;
		}
		json_array_append_new(j->out, o);
		j->next = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : HL_ESTORE;
}

static int ejob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct esc_job *j = hl_container_of(job, struct esc_job, job);

	switch (j->kind) {
	case EJ_LOAD:
		return do_load(db, j);
	case EJ_RAISE:
		return do_raise(db, stmts, j);
	case EJ_LIST:
		return do_list(db, j);
	case EJ_CLAIM:
		return do_claim(db, stmts, j);
	case EJ_DECIDE:
		return do_decide(db, stmts, j);
	case EJ_AUDIT:
		return audit_job(stmts, j, j->action, j->detail);
	}
	return HL_EINVAL;
}

/* ---- on the loop ------------------------------------------------------------------ */

static void ejob_free(struct esc_job *j)
{
	while (j->loaded) {
		struct hl_esc_live *l = j->loaded;

		j->loaded = l->next;
		json_decref(l->obj);
		free(l);
	}
	if (j->s)
		hl_session_unref(j->s);
	json_decref(j->out);
	free(j->blob);
	free(j);
}

static struct hl_esc_live *find_live(struct hl_escalations *e, int64_t id)
{
	for (struct hl_esc_live *l = e->live; l; l = l->next)
		if (l->id == id)
			return l;
	return NULL;
}

const struct hl_esc_live *hl_escalation_get(const struct hl_escalations *e,
					    int64_t esc)
{
	for (const struct hl_esc_live *l = e->live; l; l = l->next)
		if (l->id == esc)
			return l;
	return NULL;
}

const struct hl_esc_live *hl_escalation_of_conv(const struct hl_escalations *e,
						int64_t conv_id)
{
	for (const struct hl_esc_live *l = e->live; l; l = l->next)
		if (l->conv_id == conv_id)
			return l;
	return NULL;
}

static bool is_supervisor(struct hl_server *srv, int64_t staff_id)
{
	struct hl_auth_staff *st = hl_auth_staff_by_id(&srv->auth, staff_id);

	return st && (st->row.roles & HL_STAFF_SUPERVISOR);
}

/*
 * Pushes {type: "escalation", escalation: obj, alert, why} to every
 * logged-in supervisor (alert true, when asked, only for those on shift;
 * for everyone if no supervisor is on shift), and to the counsellor who
 * raised it and the one holding the chat now (never an alert for them).
 */
static void push(struct hl_escalations *e, json_t *obj, bool alert, const char *why)
{
	struct hl_server *srv = e->srv;
	bool any_on_shift = false;
	json_int_t raised = json_integer_value(json_object_get(obj, "raised_by"));
	json_int_t holder = json_integer_value(json_object_get(obj, "counsellor"));
	json_t *base = json_pack("{s:s, s:O, s:s}", "type", "escalation",
				 "escalation", obj, "why", why);
	json_t *on = json_deep_copy(base), *off = json_deep_copy(base);

	if (!base || !on || !off)
		goto out;
	json_object_set_new(on, "alert", json_boolean(alert));
	json_object_set_new(off, "alert", json_false());
	for (size_t i = 0; i < srv->auth.nstaff; i++) {
		const struct hl_auth_staff *st = &srv->auth.staff[i];

		if ((st->row.roles & HL_STAFF_SUPERVISOR) && st->on_shift &&
		    st->connections > 0)
			any_on_shift = true;
	}
	for (struct hl_session *x = srv->sessions; x; x = x->next) {
		struct hl_auth_staff *st;

		if (x->role != HL_ROLE_STAFF || !x->staff_id)
			continue;
		st = hl_auth_staff_by_id(&srv->auth, x->staff_id);
		if (!st)
			continue;
		if (st->row.roles & HL_STAFF_SUPERVISOR)
			hl_session_send(x, (st->on_shift || !any_on_shift) ? on : off);
		else if (x->staff_id == raised || x->staff_id == holder)
			hl_session_send(x, off);
	}
out:
	json_decref(base);
	json_decref(on);
	json_decref(off);
}

/* Keeps the in-memory copy of an undecided escalation in step with obj. */
static struct hl_esc_live *track(struct hl_escalations *e, json_t *obj, int64_t now)
{
	int64_t id = json_integer_value(json_object_get(obj, "escalation"));
	const char *state = json_string_value(json_object_get(obj, "state"));
	struct hl_esc_live *l = find_live(e, id), **pp;

	if (state && strcmp(state, "decided") == 0) {
		for (pp = &e->live; *pp; pp = &(*pp)->next)
			if (*pp == l) {
				*pp = l->next;
				json_decref(l->obj);
				free(l);
				break;
			}
		return NULL;
	}
	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return NULL;
		l->id = id;
		l->conv_id = hl_conv_id_parse(json_string_value(
			json_object_get(obj, "conversation")));
		l->raised_by = json_integer_value(json_object_get(obj, "raised_by"));
		l->raised_at = json_integer_value(json_object_get(obj, "raised_at"));
		l->urgency = code_index(urgencies, json_string_value(
			json_object_get(obj, "urgency")));
		if ((int)l->urgency < 0)
			l->urgency = HL_ESC_ROUTINE;
		l->last_alert_ms = now;
		l->next = e->live;
		e->live = l;
	}
	json_decref(l->obj);
	l->obj = json_incref(obj);
	l->claimed_by = json_integer_value(json_object_get(obj, "claimed_by"));
	l->state = l->claimed_by ? HL_ESC_CLAIMED : HL_ESC_OPEN;
	return l;
}

static void answer(struct esc_job *j, const char *type, const char *key)
{
	json_t *r;

	if (!j->s || !j->s->wsi)
		return;
	r = hl_proto_reply(type, j->id);
	json_object_set(r, key, j->out);
	hl_session_send(j->s, r);
	json_decref(r);
}

static void ejob_done(struct hl_store_job *job, int status)
{
	struct esc_job *j = hl_container_of(job, struct esc_job, job);
	struct hl_escalations *e = j->e;
	struct hl_session *s = j->s;
	char detail[200];

	if (j->kind == EJ_LOAD) {
		if (status == 0) {
			e->live = j->loaded;
			j->loaded = NULL;
		}
		e->init_status = status == 0 ? 1 : status;
		ejob_free(j);
		return;
	}
	if (j->kind == EJ_AUDIT) {
		if (status != 0)
			hl_error("escalation.audit_failed", "action=%s status=%d",
				 j->action, status);
		ejob_free(j);
		return;
	}
	if (status == HL_EINVAL && j->why) {
		hl_warn("escalation.refused", "staff=%lld kind=%d code=%s",
			(long long)j->staff_id, (int)j->kind,
			hl_err_code_name(j->refusal));
		snprintf(detail, sizeof(detail),
			 "{\"request\":\"%s\",\"escalation\":%lld,\"conversation\":%lld,"
			 "\"error\":\"%s\"}",
			 j->kind == EJ_RAISE ? "raise" : j->kind == EJ_CLAIM ? "claim"
										   : "decide",
			 (long long)j->esc_id, (long long)j->conv_id,
			 hl_err_code_name(j->refusal));
		hl_escalation_audit(e->srv, j->staff_id, "escalation.refused", detail);
		if (s && s->wsi)
			hl_session_error(s, j->id, j->refusal, j->why, j->field);
		ejob_free(j);
		return;
	}
	if (status != 0) {
		if (s && s->wsi)
			hl_session_error(s, j->id, status == HL_EFULL ? HL_ERR_BUSY
							      : HL_ERR_STORE_FAILED,
					 NULL, NULL);
		ejob_free(j);
		return;
	}
	switch (j->kind) {
	case EJ_RAISE:
		hl_warn("escalation.raised", "escalation=%lld conv=%lld staff=%lld "
			"urgency=%s", (long long)j->esc_id, (long long)j->conv_id,
			(long long)j->staff_id, urgencies[j->urgency]);
		track(e, j->out, hl_now_ms());
		answer(j, "escalation.raised", "escalation");
		push(e, j->out, true, "raised");
		snprintf(detail, sizeof(detail), "escalation %lld: %s, %s",
			 (long long)j->esc_id, reasons[j->reason], urgencies[j->urgency]);
		hl_routing_alert(&e->srv->contacts, "escalation", j->staff_id,
				 j->conv_id, detail);
		break;
	case EJ_CLAIM:
		answer(j, "escalation.claimed", "escalation");
		if (!j->again) {
			hl_info("escalation.claimed", "escalation=%lld staff=%lld",
				(long long)j->esc_id, (long long)j->staff_id);
			track(e, j->out, hl_now_ms());
			push(e, j->out, false, "claimed");
		}
		break;
	case EJ_DECIDE:
		hl_info("escalation.decided", "escalation=%lld staff=%lld decision=%s",
			(long long)j->esc_id, (long long)j->staff_id,
			decisions[j->decision]);
		track(e, j->out, hl_now_ms());
		answer(j, "escalation.decided", "escalation");
		push(e, j->out, false, "decided");
		break;
	case EJ_LIST: {
		json_t *r;

		if (!s || !s->wsi)
			break;
		r = hl_proto_reply("escalation.list", j->id);
		json_object_set(r, "escalations", j->out);
		hl_proto_page(r, j->more, j->next);
		hl_session_send(s, r);
		json_decref(r);
		break;
	}
	default:
		break;
	}
	ejob_free(j);
}

static struct esc_job *ejob_new(struct hl_escalations *e, enum ejob_kind kind,
				struct hl_session *s, const char *id)
{
	struct esc_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->job.exec = ejob_exec;
	j->job.done = ejob_done;
	j->kind = kind;
	j->e = e;
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

static void submit(struct esc_job *j)
{
	int rc = hl_store_submit(&j->e->srv->store, &j->job);

	if (rc == 0)
		return;
	if (j->s && j->s->wsi)
		hl_session_error(j->s, j->id, rc == HL_EFULL ? HL_ERR_BUSY
							  : HL_ERR_STORE_FAILED,
				 NULL, NULL);
	else if (j->kind == EJ_AUDIT)
		hl_error("escalation.audit_failed", "action=%s status=%d", j->action, rc);
	ejob_free(j);
}

void hl_escalation_audit(struct hl_server *srv, int64_t actor,
			 const char *action, const char *detail)
{
	struct esc_job *j = ejob_new(&srv->esc, EJ_AUDIT, NULL, NULL);

	if (!j) {
		hl_error("escalation.audit_failed", "action=%s status=nomem", action);
		return;
	}
	j->staff_id = actor;
	snprintf(j->action, sizeof(j->action), "%s", action);
	snprintf(j->detail, sizeof(j->detail), "%s", detail ? detail : "");
	submit(j);
}

/* ---- re-alerts ----------------------------------------------------------------- */

/* Whether l is due a re-alert at now. */
static bool realert_due(const struct hl_escalations *e, const struct hl_esc_live *l,
			int64_t now)
{
	int64_t every = (int64_t)e->srv->cfg.escalation_realert * 1000;

	if (l->state != HL_ESC_OPEN || l->urgency == HL_ESC_ROUTINE)
		return false;
	return now - l->last_alert_ms >= (l->urgency == HL_ESC_IMMEDIATE ? every
								      : 5 * every);
}

/* Re-alerts the due escalations, longest unalerted first, up to a quarter
 * of ws.outq_max bytes a tick (as a page of a list is; at least one): each
 * push goes to every supervisor and may carry a note of 64 KiB, and after a
 * restart every open one is due at once. The rest stay due for the next
 * tick, so a backlog is spread over ticks and none is starved. */
static void on_tick(uv_timer_t *t)
{
	struct hl_escalations *e = t->data;
	int64_t now = hl_now_ms();
	size_t budget = hl_server_page_budget(e->srv), used = 0;
	char detail[96];

	for (;;) {
		struct hl_esc_live *l = NULL;
		size_t bytes;

		for (struct hl_esc_live *x = e->live; x; x = x->next)
			if (realert_due(e, x, now) &&
			    (!l || x->last_alert_ms < l->last_alert_ms))
				l = x;
		if (!l)
			return;
		bytes = json_dumpb(l->obj, NULL, 0, JSON_COMPACT) + 64;
		if (!hl_proto_page_fits(&used, budget, bytes))
			return;
		l->last_alert_ms = now;
		push(e, l->obj, true, "waiting");
		snprintf(detail, sizeof(detail), "escalation %lld unclaimed for %lld s",
			 (long long)l->id, (long long)((now - l->raised_at) / 1000));
		hl_routing_alert(&e->srv->contacts, "escalation_waiting", l->raised_by,
				 l->conv_id, detail);
	}
}

int hl_escalations_init(struct hl_escalations *e, struct hl_server *srv)
{
	struct esc_job *j;

	memset(e, 0, sizeof(*e));
	e->srv = srv;
	if (!(j = ejob_new(e, EJ_LOAD, NULL, NULL)))
		return HL_ENOMEM;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		ejob_free(j);
		return HL_ESTORE;
	}
	while (e->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	if (e->init_status != 1)
		return e->init_status;
	uv_timer_init(&srv->loop, &e->timer);
	e->timer.data = e;
	uv_timer_start(&e->timer, on_tick, TICK_MS, TICK_MS);
	e->timer_open = true;
	return 0;
}

void hl_escalations_stop(struct hl_escalations *e)
{
	if (e->timer_open) {
		e->timer_open = false;
		uv_close((uv_handle_t *)&e->timer, NULL);
	}
}

void hl_escalations_free(struct hl_escalations *e)
{
	while (e->live) {
		struct hl_esc_live *l = e->live;

		e->live = l->next;
		json_decref(l->obj);
		free(l);
	}
}

/* ---- handlers -------------------------------------------------------------------- */

/* Decodes an optional sealed text field into j->blob. false after
 * answering bad_field (j freed). */
static bool sealed_field(struct hl_session *s, const struct hl_msg *m,
			 struct esc_job *j, const char *text, const char *field)
{
	char why[80];

	if (!text || hl_proto_b64_decode(text, SEALED_MAX, &j->blob, &j->blob_len) == 0)
		return true;
	snprintf(why, sizeof(why), "%s must be a sealed note: base64url, at most "
		 "65536 bytes", field);
	hl_session_error(s, m->id, HL_ERR_BAD_FIELD, why, field);
	ejob_free(j);
	return false;
}

void hl_escalation_raise(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_msg_escalation *x = &m->u.esc;
	int64_t conv = hl_conv_id_parse(x->conversation);
	int reason = code_index(reasons, x->reason);
	int urgency = code_index(urgencies, x->urgency);
	struct esc_job *j;

	if (!conv) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "conversation must be a conversation id", "conversation");
		return;
	}
	if (reason < 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "reason must be life_at_risk, sextortion_threat, "
				 "position_of_trust, harming_others or asks_for_police",
				 "reason");
		return;
	}
	if (urgency < 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "urgency must be immediate, urgent or routine",
				 "urgency");
		return;
	}
	if (!(j = ejob_new(&s->srv->esc, EJ_RAISE, s, m->id))) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	if (!sealed_field(s, m, j, x->note, "note"))
		return;
	j->conv_id = conv;
	j->reason = reason;
	j->urgency = urgency;
	submit(j);
}

void hl_escalation_list(struct hl_session *s, const struct hl_msg *m)
{
	struct esc_job *j = ejob_new(&s->srv->esc, EJ_LIST, s, m->id);
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);

	if (!j || !(j->out = json_array())) {
		if (j)
			ejob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->supervisor = st && (st->row.roles & (HL_STAFF_SUPERVISOR | HL_STAFF_ADMIN));
	j->before = m->u.esc.before;
	j->budget = hl_session_page_budget(s);
	submit(j);
}

void hl_escalation_claim(struct hl_session *s, const struct hl_msg *m)
{
	struct esc_job *j;
	char detail[96];

	if (!is_supervisor(s->srv, s->staff_id)) {
		snprintf(detail, sizeof(detail),
			 "{\"request\":\"claim\",\"escalation\":%lld,\"error\":\"forbidden\"}",
			 (long long)m->u.esc.escalation);
		hl_escalation_audit(s->srv, s->staff_id, "escalation.refused", detail);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only a supervisor can claim an escalation", "type");
		return;
	}
	if (!(j = ejob_new(&s->srv->esc, EJ_CLAIM, s, m->id))) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->esc_id = m->u.esc.escalation;
	submit(j);
}

void hl_escalation_decide(struct hl_session *s, const struct hl_msg *m)
{
	int decision = code_index(decisions, m->u.esc.decision);
	struct esc_job *j;

	if (decision < 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "decision must be no_further_action, "
				 "safeguarding_referral or police_referral",
				 "decision");
		return;
	}
	if (!(j = ejob_new(&s->srv->esc, EJ_DECIDE, s, m->id))) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	if (!sealed_field(s, m, j, m->u.esc.reasons, "reasons"))
		return;
	j->esc_id = m->u.esc.escalation;
	j->decision = decision;
	submit(j);
}
