/* shift.c: staff clock in and out. A shift is a stored row (who, from,
 * until); the daemon keeps "on shift" on the cached account. Only staff on
 * shift get offers; a counsellor holding chats cannot clock out until they
 * have handed them over (chat.transfer) or ended them. */
#include "shift.h"
#include "auth.h"
#include "common.h"
#include "contact.h"
#include "log.h"
#include "routing.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct shift_job {
	struct hl_store_job job;
	struct hl_session *s;
	char id[HL_PROTO_ID_MAX + 1];
	int64_t staff_id;
	int64_t now;
	bool start;
};

static int shift_exec(struct hl_store_job *job, sqlite3 *db,
		      sqlite3_stmt *const *stmts)
{
	struct shift_job *j = hl_container_of(job, struct shift_job, job);
	sqlite3_stmt *st = stmts[j->start ? HL_STMT_SHIFT_START : HL_STMT_SHIFT_END];
	int rc;

	(void)db;
	sqlite3_bind_int64(st, 1, j->staff_id);
	sqlite3_bind_int64(st, 2, j->now);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return HL_ECONSTRAINT; /* an open shift already (unique index) */
	return rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
}

static void reply(struct hl_session *s, const char *id,
		  const struct hl_auth_staff *st, int64_t ended_at)
{
	json_t *r = hl_proto_reply("shift", id);

	json_object_set_new(r, "on_shift", json_boolean(st->on_shift));
	json_object_set_new(r, "started_at", st->shift_started_at
		? json_integer(st->shift_started_at) : json_null());
	if (ended_at)
		json_object_set_new(r, "ended_at", json_integer(ended_at));
	json_object_set_new(r, "presence",
			    json_string(hl_presence_name(st->presence)));
	hl_session_send(s, r);
	json_decref(r);
}

static void shift_done(struct hl_store_job *job, int status)
{
	struct shift_job *j = hl_container_of(job, struct shift_job, job);
	struct hl_session *s = j->s;
	struct hl_auth *a = &s->srv->auth;
	struct hl_auth_staff *st = hl_auth_staff_by_id(a, j->staff_id);

	s->shift_busy = false;
	if (status != 0 || !st) {
		if (s->wsi)
			hl_session_error(s, j->id, status == HL_ECONSTRAINT
					 ? HL_ERR_BAD_STATE : HL_ERR_STORE_FAILED,
					 status == HL_ECONSTRAINT ? "you are already on shift"
							     : NULL, NULL);
	} else if (j->start) {
		st->on_shift = true;
		st->shift_started_at = j->now;
		hl_info("shift.started", "staff=%lld", (long long)j->staff_id);
		/* Clocking in means ready for chats. */
		hl_auth_set_presence(a, st, HL_PRESENCE_AVAILABLE, "shift started");
		if (s->wsi)
			reply(s, j->id, st, 0);
	} else {
		st->on_shift = false;
		hl_info("shift.ended", "staff=%lld", (long long)j->staff_id);
		hl_auth_set_presence(a, st, HL_PRESENCE_AWAY, "shift ended");
		if (s->wsi)
			reply(s, j->id, st, j->now);
		st->shift_started_at = 0;
	}
	hl_session_unref(s);
	free(j);
}

static void submit(struct hl_session *s, const struct hl_msg *m, bool start)
{
	struct shift_job *j = calloc(1, sizeof(*j));
	int rc;

	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->job.exec = shift_exec;
	j->job.done = shift_done;
	j->s = s;
	j->start = start;
	j->staff_id = s->staff_id;
	j->now = hl_now_ms();
	snprintf(j->id, sizeof(j->id), "%s", m->id);
	hl_session_ref(s);
	s->shift_busy = true;
	rc = hl_store_submit(&s->srv->store, &j->job);
	if (rc != 0) {
		s->shift_busy = false;
		hl_session_unref(s);
		free(j);
		hl_session_error(s, m->id, rc == HL_EFULL ? HL_ERR_BUSY
							  : HL_ERR_SHUTTING_DOWN,
				 NULL, NULL);
	}
}

void hl_shift_start(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);

	if (!(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR))) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only counsellors and supervisors work shifts",
				 "type");
		return;
	}
	if (st->on_shift || s->shift_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you are already on shift", NULL);
		return;
	}
	submit(s, m, true);
}

void hl_shift_end(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);
	json_t *held;

	if (!st->on_shift || s->shift_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you are not on shift", NULL);
		return;
	}
	held = hl_contacts_held(&s->srv->contacts, s->staff_id);
	if (json_array_size(held) > 0) {
		json_t *extra = json_object();

		json_object_set_new(extra, "conversations", held);
		hl_session_error_with(s, m->id, HL_ERR_HANDOVER_REQUIRED,
				      "hand over or end your active chats "
				      "before you clock out", NULL, extra);
		return;
	}
	json_decref(held);
	/* Offers waiting for them go to someone else now. */
	hl_contacts_withdraw_offers(&s->srv->contacts, s->staff_id);
	submit(s, m, false);
}

/* ---- start-up ------------------------------------------------------------ */

struct load_job {
	struct hl_store_job job;
	struct hl_auth *a;
	int64_t (*rows)[2];
	size_t n, cap;
	int status;                 /* 0 running, 1 ok, <0 failed */
};

static int load_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct load_job *j = hl_container_of(job, struct load_job, job);
	sqlite3_stmt *st = stmts[HL_STMT_SHIFT_OPEN];
	int rc, status = 0;

	(void)db;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (j->n == j->cap) {
			size_t cap = j->cap ? j->cap * 2 : 32;
			void *p = realloc(j->rows, cap * sizeof(*j->rows));

			if (!p) {
				status = HL_ENOMEM;
				break;
			}
			j->rows = p;
			j->cap = cap;
		}
		j->rows[j->n][0] = sqlite3_column_int64(st, 0);
		j->rows[j->n][1] = sqlite3_column_int64(st, 1);
		j->n++;
	}
	if (status == 0 && rc != SQLITE_DONE)
		status = hl_store_sqlite_status(rc);
	sqlite3_reset(st);
	return status;
}

static void load_done(struct hl_store_job *job, int status)
{
	struct load_job *j = hl_container_of(job, struct load_job, job);

	if (status != 0) {
		j->status = status < 0 ? status : HL_ESTORE;
		return;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct hl_auth_staff *st = hl_auth_staff_by_id(j->a, j->rows[i][0]);

		if (st) {
			st->on_shift = true;
			st->shift_started_at = j->rows[i][1];
		}
	}
	hl_info("shifts.loaded", "open=%zu", j->n);
	j->status = 1;
}

int hl_shifts_load(struct hl_server *srv)
{
	struct load_job j = {0};
	int rc;

	j.job.exec = load_exec;
	j.job.done = load_done;
	j.a = &srv->auth;
	rc = hl_store_submit(&srv->store, &j.job);
	if (rc != 0)
		return rc;
	while (j.status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	free(j.rows);
	return j.status == 1 ? 0 : j.status;
}
