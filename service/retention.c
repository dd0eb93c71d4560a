/* retention.c: the purge job and its timer. */
#include "retention.h"
#include "audit.h"
#include "common.h"
#include "log.h"
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_MS (86400LL * 1000)
/* Pause between batches while more is due, so chat jobs go first. */
#define NEXT_BATCH_MS 200

/* Conversations with something left to purge. */
#define HAS_CONTENT                                                           \
	"(EXISTS (SELECT 1 FROM event WHERE conversation_id = c.id) OR "      \
	"EXISTS (SELECT 1 FROM key_wrap WHERE conversation_id = c.id) OR "    \
	"EXISTS (SELECT 1 FROM checkpoint WHERE conversation_id = c.id) OR "  \
	"EXISTS (SELECT 1 FROM contact_session WHERE conversation_id = c.id) " \
	"OR c.return_sign_pk IS NOT NULL OR c.return_box_pk IS NOT NULL OR "  \
	"EXISTS (SELECT 1 FROM escalation WHERE conversation_id = c.id AND "  \
	"(note IS NOT NULL OR reasons IS NOT NULL)))"

static const char *const select_sql[2] = {
	/* Never escalated, ended before ?1. */
	"SELECT c.id FROM conversation c WHERE c.ended_at IS NOT NULL AND "
	"c.ended_at < ?1 AND NOT EXISTS (SELECT 1 FROM escalation e WHERE "
	"e.conversation_id = c.id) AND " HAS_CONTENT " LIMIT ?2",
	/* Escalated, every escalation decided before ?1, no referral on its
	 * way to the partner. */
	"SELECT c.id FROM conversation c WHERE c.ended_at IS NOT NULL AND "
	"EXISTS (SELECT 1 FROM escalation e WHERE e.conversation_id = c.id) "
	"AND NOT EXISTS (SELECT 1 FROM escalation e WHERE e.conversation_id = "
	"c.id AND (e.state != 'decided' OR e.decided_at >= ?1)) AND NOT EXISTS "
	"(SELECT 1 FROM referral r WHERE r.conversation_id = c.id AND r.state "
	"IN ('draft', 'approved', 'sent')) AND " HAS_CONTENT " LIMIT ?2",
};

static const char *const purge_sql[] = {
	"DELETE FROM event WHERE conversation_id = ?1",
	"DELETE FROM key_wrap WHERE conversation_id = ?1",
	"DELETE FROM checkpoint WHERE conversation_id = ?1",
	"DELETE FROM contact_session WHERE conversation_id = ?1",
	"UPDATE conversation SET return_sign_pk = NULL, return_box_pk = NULL "
	"WHERE id = ?1",
	"UPDATE escalation SET note = NULL, reasons = NULL WHERE "
	"conversation_id = ?1",
};

static int purge_one(sqlite3 *db, int64_t id)
{
	for (size_t i = 0; i < HL_ARRAY_LEN(purge_sql); i++) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, purge_sql[i], -1, &st, NULL);

		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, id);
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return hl_store_sqlite_status(rc);
	}
	return 0;
}

/* Writer thread: one batch, in the writer's transaction. */
static int retention_exec(struct hl_store_job *job, sqlite3 *db,
			  sqlite3_stmt *const *stmts)
{
	struct hl_retention_job *j =
		hl_container_of(job, struct hl_retention_job, job);
	int left = j->batch;

	j->purged = j->purged_escalated = 0;
	for (int k = 0; k < 2 && left > 0; k++) {
		int64_t ids[256];
		int n = 0, rc;
		sqlite3_stmt *st = NULL;
		int want = left < (int)HL_ARRAY_LEN(ids) ? left
							  : (int)HL_ARRAY_LEN(ids);

		rc = sqlite3_prepare_v2(db, select_sql[k], -1, &st, NULL);
		if (rc != SQLITE_OK)
			return hl_store_sqlite_status(rc);
		sqlite3_bind_int64(st, 1, k == 0 ? j->cut_ms : j->cut_esc_ms);
		sqlite3_bind_int(st, 2, want);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < want)
			ids[n++] = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			return hl_store_sqlite_status(rc);
		for (int i = 0; i < n; i++) {
			rc = purge_one(db, ids[i]);
			if (rc != 0)
				return rc;
		}
		if (k == 0)
			j->purged = n;
		else
			j->purged_escalated = n;
		left -= n;
	}
	if (j->purged + j->purged_escalated > 0) {
		char detail[96];
		struct hl_audit_entry e = {
			.at_ms = j->now_ms, .action = "retention.purge",
			.detail = detail,
		};

		snprintf(detail, sizeof(detail),
			 "{\"conversations\":%d,\"escalated\":%d}", j->purged,
			 j->purged_escalated);
		if (hl_audit_append(stmts, &e, NULL) != 0)
			return HL_ESTORE;
	}
	return 0;
}

static void on_timer(uv_timer_t *t);

static void retention_done(struct hl_store_job *job, int status)
{
	struct hl_retention_job *j =
		hl_container_of(job, struct hl_retention_job, job);
	struct hl_retention *r = j->r;
	struct hl_server *srv = r->srv;
	int n = j->purged + j->purged_escalated;
	bool more;

	r->busy = false;
	if (status != 0) {
		hl_warn("retention.failed", "status=%d", status);
		n = 0;
	} else {
		srv->metrics.retention_runs++;
		srv->metrics.retention_purged += (uint64_t)n;
		if (n > 0)
			hl_info("retention.purged", "conversations=%d escalated=%d",
				j->purged, j->purged_escalated);
	}
	if (!r->timer_open || srv->stopping)
		return;
	more = status == 0 && n >= j->batch;
	uv_timer_start(&r->timer, on_timer,
		       more ? NEXT_BATCH_MS
			    : (uint64_t)srv->cfg.retention_interval * 1000, 0);
}

static void on_timer(uv_timer_t *t)
{
	struct hl_retention *r = t->data;
	struct hl_server *srv = r->srv;
	struct hl_retention_job *j = &r->job;

	if (r->busy || srv->stopping)
		return;
	memset(j, 0, sizeof(*j));
	j->job.exec = retention_exec;
	j->job.done = retention_done;
	j->r = r;
	j->now_ms = hl_now_ms();
	j->cut_ms = j->now_ms - (int64_t)srv->cfg.retention_days * DAY_MS;
	j->cut_esc_ms =
		j->now_ms - (int64_t)srv->cfg.retention_escalated_days * DAY_MS;
	j->batch = srv->cfg.retention_batch;
	if (hl_store_submit(&srv->store, &j->job) == 0) {
		r->busy = true;
		return;
	}
	/* Store full or closing: try again at the next interval. */
	uv_timer_start(&r->timer, on_timer,
		       (uint64_t)srv->cfg.retention_interval * 1000, 0);
}

int hl_retention_start(struct hl_retention *r, struct hl_server *srv)
{
	int first = srv->cfg.retention_interval < 60 ? srv->cfg.retention_interval
						     : 60;

	r->srv = srv;
	if (uv_timer_init(&srv->loop, &r->timer) != 0)
		return HL_EIO;
	r->timer.data = r;
	r->timer_open = true;
	uv_timer_start(&r->timer, on_timer, (uint64_t)first * 1000, 0);
	return HL_OK;
}

void hl_retention_stop(struct hl_retention *r)
{
	if (!r->timer_open)
		return;
	r->timer_open = false;
	uv_close((uv_handle_t *)&r->timer, NULL);
}
