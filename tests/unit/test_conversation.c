/* test_conversation.c: conversations, events and resume sessions on a real
 * store (temporary database, writer thread, uv loop): intake validation,
 * seqs 1..N in order, duplicate client ids re-acknowledged with the original
 * seq and no new row, the same id from another sender, contact views that
 * never show staff events, resuming after any seq with bounded pages, the
 * payload cap, the lifecycle's allowed and illegal transitions, messages
 * refused once ended, wrap-up, resume sessions (put, find, expiry, touch,
 * delete, sweep) and that the database holds only their hash, the open
 * conversations and last_seq after a restart, the query plans the module
 * relies on, and 10,000 appends across 100 conversations staying gapless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "conversation.h"
#include "e2e.h"
#include "keys.h"
#include "log.h"
#include "staff.h"
#include "store.h"
#include "testutil.h"

#define T0 1700000000000LL  /* the tests' "now", unix ms */
#define DAY_MS (24LL * 3600 * 1000)

/* ---- fixture ------------------------------------------------------------ */

static struct hl_test_store E;

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("conversation", HL_LOG_ERROR);
}

static void env_open(void)
{
	hl_test_store_reopen(&E, 9);
}

static void env_close(void)
{
	hl_test_store_close(&E);
}

static int test_setup(void **state)
{
	(void)state;
	hl_test_store_open(&E, "conv", 9);
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	env_close();
	return 0;
}

/* A plain read-only connection of the test's own. */
static sqlite3 *plain(void)
{
	return hl_test_plain(E.path);
}

/* The single integer an SQL query returns (bound with a if it has ?1). */
static int64_t query1(const char *sql, int64_t a)
{
	sqlite3 *db = plain();
	sqlite3_stmt *s;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_bind_parameter_count(s) > 0)
		sqlite3_bind_int64(s, 1, a);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static int64_t event_rows(int64_t conv)
{
	return query1("SELECT count(*) FROM event WHERE conversation_id=?1",
		      conv);
}

/* ---- what the callbacks saw (written on the writer thread) -------------- */

#define SEEN_MAX 256

struct seen {
	int n;                               /* events (or conversations) */
	int stop_after;                      /* > 0: return HL_EFULL then */
	int64_t seq[SEEN_MAX], at[SEEN_MAX];
	enum hl_event_vis vis[SEEN_MAX];
	size_t len[SEEN_MAX];                /* payload bytes */
	unsigned char digest[SEEN_MAX][32];  /* BLAKE2b of the payload */
	char kind[SEEN_MAX][HL_EVENT_KIND_MAX + 1];
	char sender[SEEN_MAX][HL_EVENT_SENDER_MAX + 1];
	char client[SEEN_MAX][HL_EVENT_CLIENT_ID_MAX + 1]; /* "" = NULL */
	char list[4096];                     /* "1,2,3" or "id:state,..." */
};

static struct seen S;

static void list_add(const char *fmt, ...)
{
	size_t len = strlen(S.list);
	va_list ap;

	if (len && len + 1 < sizeof(S.list))
		S.list[len++] = ',';
	va_start(ap, fmt);
	vsnprintf(S.list + len, sizeof(S.list) - len, fmt, ap);
	va_end(ap);
}

static int see_event(const struct hl_event *ev, void *arg)
{
	struct seen *s = arg;
	int i = s->n;

	if (i >= SEEN_MAX || (s->stop_after > 0 && i >= s->stop_after))
		return HL_EFULL;
	s->seq[i] = ev->seq;
	s->at[i] = ev->at;
	s->vis[i] = ev->visibility;
	s->len[i] = ev->payload_len;
	crypto_generichash(s->digest[i], 32, ev->payload, ev->payload_len,
			   NULL, 0);
	snprintf(s->kind[i], sizeof(s->kind[i]), "%s", ev->kind);
	snprintf(s->sender[i], sizeof(s->sender[i]), "%s", ev->sender);
	snprintf(s->client[i], sizeof(s->client[i]), "%s",
		 ev->client_id ? ev->client_id : "");
	list_add("%lld", (long long)ev->seq);
	s->n++;
	return 0;
}

static int see_conv(const struct hl_conv *c, void *arg)
{
	struct seen *s = arg;

	if (s->stop_after > 0 && s->n >= s->stop_after)
		return HL_EFULL;
	s->seq[s->n < SEEN_MAX ? s->n : 0] = c->last_seq;
	list_add("%lld:%s", (long long)c->id, hl_conv_state_name(c->state));
	s->n++;
	return 0;
}

/* ---- operations, each run as one store job ------------------------------ */

enum op_kind {
	OP_STAFF, OP_CREATE, OP_GET, OP_APPEND, OP_SINCE, OP_SET_STATE,
	OP_WRAP, OP_EACH_OPEN, OP_S_PUT, OP_S_FIND, OP_S_TOUCH, OP_S_DELETE,
	OP_S_EXPIRE, OP_PLAN, OP_TRANSFER, OP_SUPERVISOR, OP_RECEIPT,
	OP_APPEND_FAIL, OP_DEDUPE, OP_WAIT, OP_TAIL_OK, OP_BUMP, OP_EPOCH,
	OP_HEADS,
};

/* OP_WAIT holds the writer until this is set (so the jobs submitted after
 * it form one batch). */
static _Atomic int gate;

struct op {
	struct hl_store_job job;
	enum op_kind kind;
	bool done;
	int status;
	/* inputs */
	int64_t conv, now, counsellor, expires, after, to_staff, delivered, read;
	int risk;
	bool contact;
	struct hl_conv_intake in;
	struct hl_event_new ev;
	enum hl_conv_state to;
	const char *outcome, *tags, *username;
	enum hl_stmt stmt;
	bool contact_view;
	size_t max;
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	/* outputs */
	struct hl_event_result res;
	struct hl_conv row;
	int64_t id;
	int count;
	char plan[1024];
};

/* EXPLAIN QUERY PLAN of one of the store's statements, on the writer's own
 * connection (inside a job, so on the writer thread). */
static int explain(sqlite3 *db, sqlite3_stmt *const *stmts, enum hl_stmt which,
		   char *out, size_t cap)
{
	char sql[2048];
	sqlite3_stmt *s = NULL;
	size_t len = 0;
	int rc;

	snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s",
		 sqlite3_sql(stmts[which]));
	out[0] = '\0';
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	while (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW && len < cap)
		len += (size_t)snprintf(out + len, cap - len, "%s;",
					sqlite3_column_text(s, 3));
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? 0 : HL_ESTORE;
}

/* Writer thread: no cmocka asserts here. */
static int op_exec(struct hl_store_job *job, sqlite3 *db,
		   sqlite3_stmt *const *stmts)
{
	struct op *o = hl_container_of(job, struct op, job);
	struct hl_staff_new n = {
		.username = o->username, .display_name = "Counsellor",
		.roles = HL_STAFF_COUNSELLOR, .languages = "en", .skills = "",
		.capacity = 2,
	};
	char code[HL_ENROL_CODE_LEN + 1];

	switch (o->kind) {
	case OP_STAFF:
		return hl_staff_create(stmts, &E.keys, &n, 0, o->now / 1000,
				       &o->id, code);
	case OP_CREATE:
		return hl_conv_create(stmts, &o->in, o->risk, o->now, &o->id);
	case OP_GET:
		return hl_conv_get(stmts, o->conv, &o->row);
	case OP_APPEND:
		return hl_event_append(stmts, o->conv, &o->ev, o->now, &o->res);
	case OP_APPEND_FAIL: {
		/* Appends, then fails the job: its savepoint takes the event
		 * back (as when a later step of a real job fails). As an
		 * append-only job it opens that savepoint itself (store.h);
		 * with o->count it does not, and its whole batch fails. */
		int st = o->job.append_only && o->count == 0
				 ? hl_store_job_savepoint(stmts)
				 : 0;

		if (st == 0)
			st = hl_event_append(stmts, o->conv, &o->ev, o->now,
					     &o->res);
		return st != 0 ? st : HL_ECONSTRAINT;
	}
	case OP_DEDUPE: {
		/* The writer's client-id memory: with o->count > 0 it starts
		 * again empty with that many units; its counters either way. */
		struct hl_dedupe *d = hl_store_dedupe(stmts);

		if (o->count > 0) {
			hl_dedupe_free(d);
			if (hl_dedupe_init(d, (size_t)o->count) != 0)
				return HL_EINVAL;
		}
		o->after = (int64_t)d->loads;
		o->delivered = (int64_t)d->evictions;
		o->read = (int64_t)d->nconvs;
		o->counsellor = (int64_t)d->units; /* (an output here) */
		return 0;
	}
	case OP_HEADS: {
		/* The writer's ring of recent heads: emptied with o->count;
		 * its answers either way. */
		struct hl_heads *h = hl_store_heads(stmts);

		if (o->count > 0)
			hl_heads_free(h);
		o->after = (int64_t)h->hits;
		o->delivered = (int64_t)h->misses;
		return 0;
	}
	case OP_WAIT:
		while (!gate)
			uv_sleep(1);
		return 0;
	case OP_TAIL_OK: {
		/* 1 when o->conv's row has the last event's seq and chain. */
		sqlite3_stmt *q = NULL;
		int rc = sqlite3_prepare_v2(
			db,
			"SELECT count(*) FROM conversation c WHERE id=?1 AND "
			"last_seq=(SELECT max(seq) FROM event WHERE "
			"conversation_id=?1) AND chain_head=(SELECT chain FROM "
			"event WHERE conversation_id=?1 ORDER BY seq DESC "
			"LIMIT 1)",
			-1, &q, NULL);

		o->count = -1;
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, o->conv);
			if (sqlite3_step(q) == SQLITE_ROW)
				o->count = sqlite3_column_int(q, 0);
		}
		sqlite3_finalize(q);
		return o->count < 0 ? HL_ESTORE : 0;
	}
	case OP_BUMP: {
		/* Changes a row behind the tails' back (what no real
		 * append-only job may do), then appends. */
		sqlite3_stmt *q = NULL;
		int rc = sqlite3_prepare_v2(
			db, "UPDATE conversation SET last_seq=last_seq+100 "
			    "WHERE id=?1", -1, &q, NULL);

		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, o->conv);
			rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK
							    : SQLITE_ERROR;
		}
		sqlite3_finalize(q);
		return rc == SQLITE_OK ? 0 : HL_ESTORE;
	}
	case OP_EPOCH: {
		/* Starts epoch o->after with both counters at 0, as an
		 * accept does (without one: these tests are about what
		 * comes after). */
		sqlite3_stmt *q = NULL;
		int rc = sqlite3_prepare_v2(
			db, "UPDATE conversation SET e2e_epoch=?2, "
			    "e2e_next_contact=0, e2e_next_staff=0 WHERE id=?1",
			-1, &q, NULL);

		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, o->conv);
			sqlite3_bind_int64(q, 2, o->after);
			rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK
							    : SQLITE_ERROR;
		}
		sqlite3_finalize(q);
		return rc == SQLITE_OK ? 0 : HL_ESTORE;
	}
	case OP_SINCE:
		return hl_event_since(stmts, o->conv, o->after,
				      o->contact_view, o->max, see_event, &S);
	case OP_SET_STATE:
		return hl_conv_set_state(stmts, o->conv, o->to, o->counsellor,
					 o->now);
	case OP_WRAP:
		return hl_conv_wrap_up(stmts, o->conv, o->outcome, o->tags,
				       o->now);
	case OP_EACH_OPEN:
		return hl_conv_each_open(stmts, see_conv, &S);
	case OP_S_PUT:
		return hl_contact_session_put(stmts, o->hash, o->conv, o->now,
					      o->expires);
	case OP_S_FIND:
		return hl_contact_session_find(stmts, o->hash, o->now,
					       &o->conv);
	case OP_S_TOUCH:
		return hl_contact_session_touch(stmts, o->hash, o->now,
						o->expires);
	case OP_S_DELETE:
		return hl_contact_session_delete(stmts, o->hash);
	case OP_S_EXPIRE:
		return hl_contact_session_expire(stmts, o->now, &o->count);
	case OP_PLAN:
		return explain(db, stmts, o->stmt, o->plan, sizeof(o->plan));
	case OP_TRANSFER:
		return hl_conv_transfer(stmts, o->conv, o->counsellor, o->to_staff,
					o->now);
	case OP_SUPERVISOR:
		return hl_conv_set_supervisor(stmts, o->conv, o->counsellor);
	case OP_RECEIPT:
		return hl_conv_receipt(stmts, o->conv, o->contact, o->delivered,
				       o->read);
	}
	return HL_EINVAL;
}

static void op_done(struct hl_store_job *job, int status)
{
	struct op *o = hl_container_of(job, struct op, job);

	o->status = status;
	o->done = true;
}

static void op_init(struct op *o, enum op_kind kind)
{
	memset(o, 0, sizeof(*o));
	o->kind = kind;
	o->now = T0;
	o->job.exec = op_exec;
	o->job.done = op_done;
}

/* Runs o as one job and returns its status. */
static int run(struct op *o)
{
	o->done = false;
	assert_int_equal(hl_store_submit(&E.st, &o->job), 0);
	while (!o->done)
		uv_run(&E.loop, UV_RUN_ONCE);
	return o->status;
}

/* Runs ops[0..n) as one batch: behind a job that holds the writer until
 * all are queued. Their statuses are in each op. */
static void run_batch_of(struct op **ops, size_t n)
{
	struct op w;
	size_t i;
	bool all;

	op_init(&w, OP_WAIT);
	gate = 0;
	assert_int_equal(hl_store_submit(&E.st, &w.job), 0);
	for (i = 0; i < n; i++) {
		ops[i]->done = false;
		assert_int_equal(hl_store_submit(&E.st, &ops[i]->job), 0);
	}
	gate = 1;
	do {
		uv_run(&E.loop, UV_RUN_ONCE);
		for (all = w.done, i = 0; i < n && all; i++)
			all = ops[i]->done;
	} while (!all);
}

/* run_batch_of the n ops of array o. */
static void run_ops(struct op *o, size_t n)
{
	struct op *p[16];

	assert_true(n <= 16);
	for (size_t i = 0; i < n; i++)
		p[i] = &o[i];
	run_batch_of(p, n);
}

/* Runs the n ops of o as one batch, which must fail as a whole: one
 * commit failure, and every job HL_ESTORE. */
static void batch_fails(struct op *o, size_t n)
{
	struct hl_store_stats st0, st1;

	hl_store_stats(&E.st, &st0);
	run_ops(o, n);
	hl_store_stats(&E.st, &st1);
	assert_int_equal(st1.commit_failures - st0.commit_failures, 1);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(o[i].status, HL_ESTORE);
}

/* An op appending a contact message text to conv, as chat.send's job does
 * (append_only). */
static void tail_msg(struct op *o, int64_t conv, const char *client_id,
		     const char *text)
{
	op_init(o, OP_APPEND);
	o->job.append_only = true;
	o->conv = conv;
	o->ev.kind = "msg";
	o->ev.sender = "contact";
	o->ev.visibility = HL_VIS_ALL;
	o->ev.client_id = client_id;
	o->ev.payload = text;
	o->ev.payload_len = strlen(text);
}

/* 1 when conv's row has its last event's seq and chain head. */
static int tail_ok(int64_t conv)
{
	struct op o;

	op_init(&o, OP_TAIL_OK);
	o.conv = conv;
	assert_int_equal(run(&o), 0);
	return o.count;
}

/* ---- helpers ------------------------------------------------------------ */

static int64_t staff(const char *username)
{
	struct op o;

	op_init(&o, OP_STAFF);
	o.username = username;
	assert_int_equal(run(&o), 0);
	return o.id;
}

static int64_t create_at(int64_t now)
{
	struct op o;

	op_init(&o, OP_CREATE);
	o.now = now;
	assert_int_equal(run(&o), 0);
	assert_true(o.id > 0);
	return o.id;
}

static int64_t create(void)
{
	return create_at(T0);
}

static struct hl_conv get(int64_t conv)
{
	struct op o;

	op_init(&o, OP_GET);
	o.conv = conv;
	assert_int_equal(run(&o), 0);
	return o.row;
}

/* Appends an event; res (may be NULL) receives the result. */
/* Appends ev to conv at now in a job of its own; the job's status. */
static int append_event(int64_t conv, const struct hl_event_new *ev,
			int64_t now, struct hl_event_result *res)
{
	struct op o;

	op_init(&o, OP_APPEND);
	o.conv = conv;
	o.ev = *ev;
	o.now = now;
	run(&o);
	if (res)
		*res = o.res;
	return o.status;
}

static int append_full(int64_t conv, const char *kind, const char *sender,
		       enum hl_event_vis vis, const char *client_id,
		       const void *payload, size_t len, int64_t now,
		       struct hl_event_result *res)
{
	struct hl_event_new ev = {
		.kind = kind, .sender = sender, .visibility = vis,
		.client_id = client_id, .payload = payload, .payload_len = len,
	};

	return append_event(conv, &ev, now, res);
}

/* Like append_full, in a job that then fails (so is rolled back). */
static int append_then_fail(int64_t conv, const char *sender,
			    const char *client_id, const char *text,
			    struct hl_event_result *res)
{
	struct op o;

	op_init(&o, OP_APPEND_FAIL);
	o.conv = conv;
	o.ev.kind = "msg";
	o.ev.sender = sender;
	o.ev.visibility = HL_VIS_ALL;
	o.ev.client_id = client_id;
	o.ev.payload = text;
	o.ev.payload_len = strlen(text);
	run(&o);
	if (res)
		*res = o.res;
	return o.status;
}

/* The writer's client-id memory (OP_DEDUPE): units > 0 restarts it with
 * that many; returns conversations loaded, sets evictions and held. */
static int64_t dedupe(int units, int64_t *evictions, int64_t *held)
{
	struct op o;

	op_init(&o, OP_DEDUPE);
	o.count = units;
	assert_int_equal(run(&o), 0);
	if (evictions)
		*evictions = o.delivered;
	if (held)
		*held = o.read;
	return o.after;
}

/* A contact-visible message with a short text payload; returns its seq. */
static int64_t msg(int64_t conv, const char *sender, const char *client_id,
		   const char *text)
{
	struct hl_event_result r;

	assert_int_equal(append_full(conv, "msg", sender, HL_VIS_ALL,
				     client_id, text, strlen(text), T0, &r), 0);
	assert_false(r.duplicate);
	return r.seq;
}

/* Runs since() into S and returns its status; S.list holds the seqs. */
static int since(int64_t conv, int64_t after, bool contact_view, size_t max)
{
	struct op o;

	memset(&S, 0, sizeof(S));
	op_init(&o, OP_SINCE);
	o.conv = conv;
	o.after = after;
	o.contact_view = contact_view;
	o.max = max;
	return run(&o);
}

static int set_state(int64_t conv, enum hl_conv_state to, int64_t counsellor,
		     int64_t now)
{
	struct op o;

	op_init(&o, OP_SET_STATE);
	o.conv = conv;
	o.to = to;
	o.counsellor = counsellor;
	o.now = now;
	return run(&o);
}

static int wrap(int64_t conv, const char *outcome, const char *tags)
{
	struct op o;

	op_init(&o, OP_WRAP);
	o.conv = conv;
	o.outcome = outcome;
	o.tags = tags;
	return run(&o);
}

static int transfer(int64_t conv, int64_t from, int64_t to)
{
	struct op o;

	op_init(&o, OP_TRANSFER);
	o.conv = conv;
	o.counsellor = from;
	o.to_staff = to;
	return run(&o);
}

static int supervise(int64_t conv, int64_t sup)
{
	struct op o;

	op_init(&o, OP_SUPERVISOR);
	o.conv = conv;
	o.counsellor = sup;
	return run(&o);
}

static int receipt(int64_t conv, bool contact, int64_t delivered, int64_t read)
{
	struct op o;

	op_init(&o, OP_RECEIPT);
	o.conv = conv;
	o.contact = contact;
	o.delivered = delivered;
	o.read = read;
	return run(&o);
}

static struct hl_conv get_row(int64_t conv)
{
	struct op o;

	op_init(&o, OP_GET);
	o.conv = conv;
	assert_int_equal(run(&o), 0);
	return o.row;
}

static int each_open(void)
{
	struct op o;

	memset(&S, 0, sizeof(S));
	op_init(&o, OP_EACH_OPEN);
	return run(&o);
}

/* ---- tests: conversations ----------------------------------------------- */

static void test_create_and_get(void **state)
{
	struct op o;
	struct hl_conv c;
	int64_t id;

	(void)state;
	op_init(&o, OP_CREATE);
	o.in.topics = "sextortion,money_demanded";
	o.in.age_band = HL_AGE_13_15;
	o.in.danger_now = true;
	o.in.language = "pt-BR";
	o.risk = HL_RISK_HIGH;
	o.now = T0 + 5;
	assert_int_equal(run(&o), 0);
	id = o.id;
	c = get(id);
	assert_int_equal(c.id, id);
	assert_int_equal(c.created_at, T0 + 5);
	assert_int_equal(c.state_at, T0 + 5);
	assert_int_equal(c.ended_at, 0);
	assert_int_equal(c.state, HL_CONV_QUEUED);
	assert_int_equal(c.risk, HL_RISK_HIGH);
	assert_string_equal(c.topics, "sextortion,money_demanded");
	assert_int_equal(c.age_band, HL_AGE_13_15);
	assert_true(c.danger_now);
	assert_string_equal(c.language, "pt-BR");
	assert_int_equal(c.counsellor_id, 0);
	assert_int_equal(c.last_seq, 0);
	assert_string_equal(c.outcome, "");
	assert_string_equal(c.tags, "");
	/* Stored as the schema says: NULLs for what was not given. */
	assert_int_equal(query1("SELECT age_band='13_15' FROM conversation "
				"WHERE id=?1", id), 1);

	/* Nothing given: NULL intake. */
	op_init(&o, OP_CREATE);
	o.in = (struct hl_conv_intake){ 0 };
	assert_int_equal(run(&o), 0);
	c = get(o.id);
	assert_string_equal(c.topics, "");
	assert_int_equal(c.age_band, HL_AGE_NONE);
	assert_false(c.danger_now);
	assert_string_equal(c.language, "");
	assert_int_equal(c.risk, HL_RISK_STANDARD);
	assert_int_equal(query1("SELECT (age_band IS NULL) + (language IS NULL)"
				" + (counsellor_id IS NULL) + (ended_at IS NULL)"
				" + (outcome IS NULL) + (tags IS NULL) FROM "
				"conversation WHERE id=?1", o.id), 6);

	/* Malformed intake: refused, nothing written. */
	{
		static const char *const bad_topics[] = {
			",a", "a,", "a,,b", "Sextortion", "a b", "a;b",
			"abcdefghijabcdefghijabcdefghijabc", /* 33 */
		};
		static const char *const bad_lang[] = {
			"", "e", "english", "EN", "en-", "en_GB",
			"en-abcdefghi", "en-GB-x",
		};
		int64_t before = query1("SELECT count(*) FROM conversation", 0);
		char long_list[300];

		for (size_t i = 0; i < HL_ARRAY_LEN(bad_topics); i++) {
			op_init(&o, OP_CREATE);
			o.in.topics = bad_topics[i];
			assert_int_equal(run(&o), HL_EINVAL);
		}
		for (size_t i = 0; i < HL_ARRAY_LEN(bad_lang); i++) {
			op_init(&o, OP_CREATE);
			o.in.language = bad_lang[i];
			assert_int_equal(run(&o), HL_EINVAL);
		}
		/* 257 bytes of valid tags: over the list cap. */
		memset(long_list, 'a', sizeof(long_list));
		for (size_t i = 8; i < 257; i += 9)
			long_list[i] = ',';
		long_list[257] = '\0';
		op_init(&o, OP_CREATE);
		o.in.topics = long_list;
		assert_int_equal(run(&o), HL_EINVAL);
		long_list[256] = '\0';
		long_list[255] = 'a';
		o.in.topics = long_list;  /* 256 bytes: accepted */
		assert_int_equal(run(&o), 0);
		before++;
		op_init(&o, OP_CREATE);
		o.risk = 4;
		assert_int_equal(run(&o), HL_EINVAL);
		o.risk = -1;
		assert_int_equal(run(&o), HL_EINVAL);
		op_init(&o, OP_CREATE);
		o.in.age_band = (enum hl_age_band)5;
		assert_int_equal(run(&o), HL_EINVAL);
		assert_int_equal(query1("SELECT count(*) FROM conversation", 0),
				 before);
	}

	op_init(&o, OP_GET);
	o.conv = 999999;
	assert_int_equal(run(&o), HL_ENOTFOUND);
}

static void test_names(void **state)
{
	enum hl_conv_state st;
	enum hl_age_band ab;

	(void)state;
	for (int i = HL_CONV_QUEUED; i <= HL_CONV_WRAPPED; i++) {
		assert_int_equal(hl_conv_state_parse(hl_conv_state_name(
			(enum hl_conv_state)i), &st), 0);
		assert_int_equal(st, i);
	}
	assert_string_equal(hl_conv_state_name((enum hl_conv_state)9), "?");
	assert_int_equal(hl_conv_state_parse("Queued", &st), HL_EINVAL);
	for (int i = HL_AGE_U13; i <= HL_AGE_18P; i++) {
		assert_int_equal(hl_age_band_parse(hl_age_band_name(
			(enum hl_age_band)i), &ab), 0);
		assert_int_equal(ab, i);
	}
	assert_null(hl_age_band_name(HL_AGE_NONE));
	assert_int_equal(hl_age_band_parse(NULL, &ab), 0);
	assert_int_equal(ab, HL_AGE_NONE);
	assert_int_equal(hl_age_band_parse("12", &ab), HL_EINVAL);
	assert_true(hl_conv_tags_ok(""));
	assert_true(hl_conv_tags_ok("a,b_c,9"));
	assert_false(hl_conv_tags_ok(NULL));
	assert_false(hl_conv_tags_ok(","));
}

/* ---- tests: events ------------------------------------------------------ */

static void test_append_in_order(void **state)
{
	static const char *const texts[] = { "a", "bb", "ccc", "dddd", "e" };
	struct hl_event_result r;
	unsigned char want[32];
	int64_t conv;

	(void)state;
	conv = create();
	for (int i = 0; i < 5; i++) {
		assert_int_equal(append_full(conv, "msg", i % 2 ? "staff:4" :
					     "contact", HL_VIS_ALL, NULL,
					     texts[i], strlen(texts[i]),
					     T0 + 100 + i, &r), 0);
		assert_int_equal(r.seq, i + 1);
		assert_int_equal(r.at, T0 + 100 + i);
		assert_false(r.duplicate);
	}
	/* An empty payload (a receipt) is stored as NULL and read back empty. */
	assert_int_equal(append_full(conv, "receipt", "contact", HL_VIS_ALL,
				     NULL, NULL, 0, T0 + 200, &r), 0);
	assert_int_equal(r.seq, 6);
	assert_int_equal(get(conv).last_seq, 6);
	assert_int_equal(query1("SELECT count(*) FROM event WHERE "
				"conversation_id=?1 AND payload IS NULL", conv),
			 1);

	assert_int_equal(since(conv, 0, false, 100), 0);
	assert_string_equal(S.list, "1,2,3,4,5,6");
	for (int i = 0; i < 5; i++) {
		assert_int_equal(S.at[i], T0 + 100 + i);
		assert_string_equal(S.kind[i], "msg");
		assert_string_equal(S.sender[i], i % 2 ? "staff:4" : "contact");
		assert_int_equal(S.vis[i], HL_VIS_ALL);
		assert_string_equal(S.client[i], "");
		assert_int_equal(S.len[i], strlen(texts[i]));
		crypto_generichash(want, 32, (const unsigned char *)texts[i],
				   strlen(texts[i]), NULL, 0);
		assert_memory_equal(S.digest[i], want, 32);
	}
	assert_string_equal(S.kind[5], "receipt");
	assert_int_equal(S.len[5], 0);

	/* Another conversation has its own numbering. */
	assert_int_equal(msg(create(), "contact", NULL, "x"), 1);
	assert_int_equal(get(conv).last_seq, 6);
}

static void test_duplicate_client_id(void **state)
{
	struct hl_event_result r;
	int64_t conv, other;

	(void)state;
	conv = create();
	other = create();
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "m-1",
				     "hello", 5, T0 + 10, &r), 0);
	assert_int_equal(r.seq, 1);
	assert_int_equal(msg(conv, "staff:3", "s1", "hi"), 2);

	/* The retry, later and with another body: the original seq and time,
	 * flagged duplicate, and no row added. */
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "m-1",
				     "hello again", 11, T0 + 999, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 1);
	assert_int_equal(r.at, T0 + 10);
	assert_int_equal(event_rows(conv), 2);
	assert_int_equal(get(conv).last_seq, 2);
	assert_int_equal(since(conv, 0, false, 10), 0);
	assert_string_equal(S.list, "1,2");
	assert_int_equal(S.len[0], 5);
	assert_string_equal(S.client[0], "m-1");

	/* The same id from another sender is another message... */
	assert_int_equal(msg(conv, "staff:3", "m-1", "x"), 3);
	/* ...and so is the same sender and id in another conversation. */
	assert_int_equal(msg(other, "contact", "m-1", "x"), 1);
	/* A retry of the staff message is a duplicate too. */
	assert_int_equal(append_full(conv, "msg", "staff:3", HL_VIS_ALL, "s1",
				     "hi", 2, T0 + 5000, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 2);
	/* The duplicate check spans kinds: the id names the request. */
	assert_int_equal(append_full(conv, "receipt", "contact", HL_VIS_ALL,
				     "m-1", NULL, 0, T0, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 1);
	/* Events without a client id are never duplicates of each other. */
	assert_int_equal(msg(conv, "contact", NULL, "same"), 4);
	assert_int_equal(msg(conv, "contact", NULL, "same"), 5);
	assert_int_equal(event_rows(conv), 5);
	assert_int_equal(event_rows(other), 1);
}

/* A retry is recognised without an index (0008): from the writer's memory
 * after a restart (loaded from the events), never from an append that was
 * rolled back (even when its seq went to another event), and with memory
 * for only a few conversations at a time. */
static void test_duplicate_without_index(void **state)
{
	struct hl_event_result r;
	int64_t conv, c[6], ev, held, loads;
	char id[16];

	(void)state;
	conv = create();
	assert_int_equal(msg(conv, "contact", "a", "one"), 1);

	/* Appended and taken back: not a duplicate, nothing remembered
	 * wrongly, and its seq is the next event's. */
	assert_int_equal(append_then_fail(conv, "contact", "b", "two", &r),
			 HL_ECONSTRAINT);
	assert_int_equal(r.seq, 2);
	assert_int_equal(event_rows(conv), 1);
	assert_int_equal(msg(conv, "contact", "c", "three"), 2);
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "b",
				     "two", 3, T0 + 1, &r), 0);
	assert_false(r.duplicate);
	assert_int_equal(r.seq, 3);
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "c",
				     "three", 5, T0 + 2, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 2);

	/* After a restart the memory is empty and loaded from the events. */
	env_close();
	env_open();
	assert_int_equal(dedupe(0, NULL, &held), 0);
	assert_int_equal(held, 0);
	for (int i = 0; i < 3; i++) {
		static const char *const ids[] = {"a", "c", "b"};
		static const int64_t seqs[] = {1, 2, 3};

		assert_int_equal(append_full(conv, "msg", "contact",
					     HL_VIS_ALL, ids[i], "x", 1,
					     T0 + 9, &r), 0);
		assert_true(r.duplicate);
		assert_int_equal(r.seq, seqs[i]);
	}
	assert_int_equal(dedupe(0, NULL, &held), 1); /* loaded once */
	assert_int_equal(event_rows(conv), 3);

	/* Memory for about two conversations: six of them, each retried
	 * after the others pushed it out, are still recognised. */
	dedupe(2 * HL_DEDUPE_CONV_UNITS + 8, NULL, NULL);
	for (int k = 0; k < 6; k++) {
		c[k] = create();
		for (int i = 0; i < 4; i++) {
			snprintf(id, sizeof(id), "m%d.%d", k, i);
			assert_int_equal(msg(c[k], i % 2 ? "staff:1" : "contact",
					     id, "hi"), i + 1);
		}
	}
	for (int k = 0; k < 6; k++) {
		for (int i = 3; i >= 0; i--) {
			snprintf(id, sizeof(id), "m%d.%d", k, i);
			assert_int_equal(append_full(c[k], "msg",
						     i % 2 ? "staff:1"
							   : "contact",
						     HL_VIS_ALL, id, "hi", 2,
						     T0, &r), 0);
			assert_true(r.duplicate);
			assert_int_equal(r.seq, i + 1);
		}
		/* The same id from the other side is a new message. */
		snprintf(id, sizeof(id), "m%d.0", k);
		assert_int_equal(msg(c[k], "staff:1", id, "new"), 5);
		assert_int_equal(event_rows(c[k]), 5);
	}
	loads = dedupe(0, &ev, &held);
	assert_true(ev > 0);
	assert_true(held <= 3);
	assert_true(loads >= 12); /* each loaded when made and again */
}

/* A new conversation whose keys are agreed (epoch 1, counters 0), as after
 * a handshake. */
static int64_t create_in_epoch(void)
{
	struct op o;

	op_init(&o, OP_EPOCH);
	o.conv = create();
	o.after = 1;
	assert_int_equal(run(&o), 0);
	return o.conv;
}

/* A young person's envelope n of epoch 1 in conv, sent as client_id, that
 * says it was written after seeing event seen_seq (0: none) with head
 * seen_head, in env (HL_E2E_ENV_MIN bytes) as the event *ev to append. */
static void make_envelope(int64_t conv, uint32_t n, const char *client_id,
			  int64_t seen_seq, const unsigned char *seen_head,
			  unsigned char *env, struct hl_event_new *ev)
{
	static const unsigned char body[] = "\x01are you there?";
	unsigned char key[32], nonce[24];
	struct hl_e2e_seal_in in = {
		.dir = HL_E2E_TO_STAFF, .conv = (uint64_t)conv, .epoch = 1,
		.n = n, .mk = key, .kf = key, .nonce = nonce,
		.seen_seq = (uint64_t)seen_seq, .seen_head = seen_head,
	};

	*ev = (struct hl_event_new){
		.kind = "msg", .sender = "contact", .visibility = HL_VIS_ALL,
		.client_id = client_id, .payload = env,
		.e2e = HL_EV_ENVELOPE, .dir = HL_E2E_TO_STAFF,
	};
	memset(key, 0x11, sizeof(key));
	memset(nonce, (int)n, sizeof(nonce));
	assert_int_equal(hl_e2e_seal(&in, body, sizeof(body) - 1, env,
				     HL_E2E_ENV_MIN, &ev->payload_len), 0);
}

/* The same, appended. */
static int envelope_seen(int64_t conv, uint32_t n, const char *client_id,
			 int64_t seen_seq, const unsigned char *seen_head,
			 struct hl_event_result *res)
{
	unsigned char env[HL_E2E_ENV_MIN];
	struct hl_event_new ev;

	make_envelope(conv, n, client_id, seen_seq, seen_head, env, &ev);
	return append_event(conv, &ev, T0, res);
}

static int envelope(int64_t conv, uint32_t n, const char *client_id,
		    struct hl_event_result *res)
{
	return envelope_seen(conv, n, client_id, 0, NULL, res);
}

/* An envelope's seen_seq and seen_head must name a stored event and its
 * chain head: the last event's head is checked against the conversation's
 * own (no read), an older one against the stored event, and a head of
 * another seq, a made-up head or a seq beyond the last are refused. */
static void test_envelope_seen_head(void **state)
{
	unsigned char heads[4][32], wrong[32];
	struct hl_event_result r;
	int64_t conv;

	(void)state;
	conv = create_in_epoch();
	assert_int_equal(envelope(conv, 0, "e0", &r), 0);
	memcpy(heads[1], r.chain, 32);
	assert_int_equal(envelope_seen(conv, 1, "e1", 1, heads[1], &r), 0);
	assert_int_equal(r.seq, 2);
	memcpy(heads[2], r.chain, 32);
	/* The last event (2), then an older one (1) after it. */
	assert_int_equal(envelope_seen(conv, 2, "e2", 2, heads[2], &r), 0);
	memcpy(heads[3], r.chain, 32);
	assert_int_equal(envelope_seen(conv, 3, "e3", 1, heads[1], &r), 0);
	assert_int_equal(r.seq, 4);
	/* Refused: the last seq with an older head, an older seq with the
	 * last head, a made-up head, a seq beyond the last. */
	memcpy(wrong, heads[3], 32);
	wrong[31] ^= 1;
	assert_int_equal(envelope_seen(conv, 4, "x1", 4, heads[3], &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, 4, "x2", 3, heads[1], &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, 4, "x3", 3, wrong, &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, 4, "x4", 5, heads[3], &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, 4, "e4", 3, heads[3], &r), 0);
	assert_int_equal(r.seq, 5);
	assert_int_equal(event_rows(conv), 5);
}

/* The writer's ring of recent heads (OP_HEADS): with clear, emptied;
 * returns its hits and sets *misses. */
static int64_t heads(bool clear, int64_t *misses)
{
	struct op o;

	op_init(&o, OP_HEADS);
	o.count = clear;
	assert_int_equal(run(&o), 0);
	if (misses)
		*misses = o.delivered;
	return o.after;
}

/* A seen head a few events behind the last is checked against the
 * writer's ring of recent heads (no read) with the same answers as a read:
 * accepted when it is the stored head, refused when not; older ones, and
 * every one after the ring was emptied, are read. An event taken back (a
 * failed job) leaves nothing in the ring that answers for it. */
static void test_envelope_seen_ring(void **state)
{
	unsigned char h[48][32], wrong[32], gone[32], env[HL_E2E_ENV_MIN];
	struct hl_event_result r;
	struct op o;
	int64_t conv, hits, misses, m;
	uint32_t n = 0;
	char id[16];

	(void)state;
	conv = create_in_epoch();
	for (int k = 1; k <= 40; k++) {
		snprintf(id, sizeof(id), "r%d", k);
		assert_int_equal(envelope(conv, n++, id, &r), 0);
		assert_int_equal(r.seq, k);
		memcpy(h[k], r.chain, 32);
	}
	hits = heads(false, &misses);
	/* A few behind the last: from the ring, as a read would say. */
	assert_int_equal(envelope_seen(conv, n++, "s1", 37, h[37], &r), 0);
	assert_int_equal(r.seq, 41);
	memcpy(h[41], r.chain, 32);
	memcpy(wrong, h[38], 32);
	wrong[0] ^= 1;
	assert_int_equal(envelope_seen(conv, n, "x1", 38, wrong, &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, n, "x2", 38, h[37], &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(heads(false, &m), hits + 3);
	assert_int_equal(m, misses);
	/* Older than the ring holds: read, same answers. */
	assert_int_equal(envelope_seen(conv, n, "x3", 3, h[4], &r), HL_EINVAL);
	assert_int_equal(envelope_seen(conv, n++, "s2", 3, h[3], &r), 0);
	assert_int_equal(r.seq, 42);
	memcpy(h[42], r.chain, 32);
	assert_int_equal(heads(false, &m), hits + 3);
	assert_int_equal(m, misses + 2);

	/* Emptied (a restart): read until the ring has the events again. */
	heads(true, NULL);
	assert_int_equal(envelope_seen(conv, n, "x4", 40, wrong, &r), HL_EINVAL);
	assert_int_equal(envelope_seen(conv, n++, "s3", 40, h[40], &r), 0);
	assert_int_equal(r.seq, 43);
	memcpy(h[43], r.chain, 32);
	assert_int_equal(heads(false, &m), 0);
	assert_int_equal(m, 2);
	assert_int_equal(envelope_seen(conv, n++, "s4", 42, h[42], &r), 0);
	memcpy(h[44], r.chain, 32);
	assert_int_equal(heads(false, NULL), 1); /* 42: the head 43 chained from */

	/* Event 45 written and taken back: its head never answers. */
	op_init(&o, OP_APPEND_FAIL);
	o.conv = conv;
	make_envelope(conv, n, "gone", 0, NULL, env, &o.ev);
	assert_true(run(&o) < 0);
	assert_int_equal(event_rows(conv), 44);
	memcpy(gone, o.res.chain, 32);
	hits = heads(false, &misses);
	assert_int_equal(envelope_seen(conv, n, "x5", 45, gone, &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, n++, "s5", 43, h[43], &r), 0);
	assert_int_equal(r.seq, 45);
	assert_memory_not_equal(r.chain, gone, 32);
	memcpy(h[45], r.chain, 32);
	assert_int_equal(heads(false, NULL), hits + 1);
	assert_int_equal(envelope_seen(conv, n, "x6", 45, gone, &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_ENVELOPE);
	assert_int_equal(envelope_seen(conv, n++, "s6", 44, h[44], &r), 0);
	assert_int_equal(heads(false, NULL), hits + 2);
	assert_int_equal(event_rows(conv), 46);
}

/* An envelope with the next counter of the current epoch cannot be a
 * retry, so it is stored without loading the conversation's client ids;
 * anything else (a retry, a stale counter) is still looked up, and the
 * memory, once loaded, keeps up with the fresh envelopes after it. */
static void test_fresh_envelope_needs_no_lookup(void **state)
{
	struct hl_event_result r;
	int64_t conv, loads;

	(void)state;
	conv = create_in_epoch();
	loads = dedupe(1000, NULL, NULL);
	assert_int_equal(loads, 0);

	assert_int_equal(envelope(conv, 0, "e0", &r), 0);
	assert_false(r.duplicate);
	assert_int_equal(r.seq, 1);
	assert_int_equal(envelope(conv, 1, "e1", &r), 0);
	assert_false(r.duplicate);
	assert_int_equal(r.seq, 2);
	assert_int_equal(dedupe(0, NULL, NULL), 0); /* nothing looked up */

	/* Retries (the same bytes) are found, and cost one load. */
	assert_int_equal(envelope(conv, 0, "e0", &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 1);
	assert_int_equal(envelope(conv, 1, "e1", &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 2);
	assert_int_equal(dedupe(0, NULL, NULL), 1);

	/* A fresh one after the load is remembered: its retry is found
	 * without loading again. */
	assert_int_equal(envelope(conv, 2, "e2", &r), 0);
	assert_false(r.duplicate);
	assert_int_equal(r.seq, 3);
	assert_int_equal(envelope(conv, 2, "e2", &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 3);
	assert_int_equal(dedupe(0, NULL, NULL), 1);

	/* A stale counter under a new id is looked up, then refused. */
	assert_int_equal(envelope(conv, 1, "e9", &r), HL_EINVAL);
	assert_int_equal(r.refusal, HL_REFUSE_COUNTER);
	/* The next counter under an id used before is a new message (a
	 * retry would carry its old counter). */
	assert_int_equal(envelope(conv, 3, "e0", &r), 0);
	assert_false(r.duplicate);
	assert_int_equal(r.seq, 4);
	assert_int_equal(event_rows(conv), 4);
}

/* Envelope n sent again as client_id: re-acknowledged as event seq. */
static void retried(int64_t conv, uint32_t n, const char *client_id,
		    int64_t seq)
{
	struct hl_event_result r;

	assert_int_equal(envelope(conv, n, client_id, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, seq);
}

/* The writer's client-id units now (OP_DEDUPE). */
static int64_t dedupe_units(void)
{
	struct op o;

	op_init(&o, OP_DEDUPE);
	assert_int_equal(run(&o), 0);
	return o.counsellor;
}

/* Once a conversation's ids are loaded, fresh envelopes are not put into
 * the writer's memory: the next look-up reads in the ids stored since,
 * after checking that the event it held them up to is unchanged. When
 * that event was taken back, or another stands at its seq, the
 * conversation is loaded again, and no stored id is ever missed. */
static void test_ids_read_in_later(void **state)
{
	unsigned char env[HL_E2E_ENV_MIN];
	struct hl_event_result r;
	struct op o;
	int64_t conv, loads, units;

	(void)state;
	conv = create_in_epoch();
	loads = dedupe(1000, NULL, NULL);
	assert_int_equal(envelope(conv, 0, "e0", &r), 0);
	retried(conv, 0, "e0", 1); /* loads */
	assert_int_equal(dedupe(0, NULL, NULL), loads + 1);
	units = dedupe_units();
	for (uint32_t k = 1; k <= 5; k++) {
		char id[8];
		snprintf(id, sizeof(id), "e%u", k);
		assert_int_equal(envelope(conv, k, id, &r), 0);
		assert_false(r.duplicate);
	}
	assert_int_equal(dedupe_units(), units); /* nothing put */
	/* Retries of them are found, read in without a new load. */
	retried(conv, 3, "e3", 4);
	assert_int_equal(dedupe_units(), units + 5);
	retried(conv, 5, "e5", 6);
	assert_int_equal(dedupe(0, NULL, NULL), loads + 1);
	/* A note (looked up, so put) keeps the memory current. */
	assert_int_equal(msg(conv, "staff:1", "n1", "a note"), 7);
	assert_int_equal(dedupe_units(), units + 6);

	/* Fresh envelopes 8 and 9; 9 is taken back and another event takes
	 * its seq: the memory held up to 7, which is unchanged, so 8 and the
	 * new 9 are read in. */
	assert_int_equal(envelope(conv, 6, "e6", &r), 0);
	assert_int_equal(r.seq, 8);
	op_init(&o, OP_APPEND_FAIL);
	o.conv = conv;
	make_envelope(conv, 7, "gone", 0, NULL, env, &o.ev);
	assert_true(run(&o) < 0);
	assert_int_equal(envelope(conv, 7, "e7", &r), 0);
	assert_int_equal(r.seq, 9);
	retried(conv, 7, "e7", 9);
	retried(conv, 6, "e6", 8);
	assert_int_equal(dedupe(0, NULL, NULL), loads + 1);

	/* Looked-up event 10 (a note) is put, then taken back, and another
	 * event stands at 10: the memory's event 10 is not the stored one, so
	 * the conversation is loaded again, and the new 10 is found. */
	op_init(&o, OP_APPEND_FAIL);
	o.conv = conv;
	o.ev = (struct hl_event_new){ .kind = "note", .sender = "staff:1",
				      .visibility = HL_VIS_STAFF,
				      .client_id = "n-gone",
				      .payload = (const unsigned char *)"x",
				      .payload_len = 1 };
	assert_true(run(&o) < 0);
	assert_int_equal(envelope(conv, 8, "e8", &r), 0);
	assert_int_equal(r.seq, 10);
	retried(conv, 8, "e8", 10);
	assert_int_equal(dedupe(0, NULL, NULL), loads + 2);
	assert_int_equal(msg(conv, "staff:1", "n-gone", "now stored"), 11);
	assert_int_equal(event_rows(conv), 11);
}

/* Append-only jobs (chat messages) of one batch share their
 * conversation's row in the writer's memory (convtail.h): every other job
 * still sees the row as if each append had written it, a failed append
 * changes nothing, and the rows are right after the batch. */
static void test_tails(void **state)
{
	struct op o[12];
	struct hl_store_stats st0, st1;
	int64_t a, b;
	size_t n = 0;

	(void)state;
	a = create();
	b = create();
	assert_int_equal(msg(a, "contact", "a0", "before"), 1);

	tail_msg(&o[n++], a, "a1", "one");           /* a: 2 */
	tail_msg(&o[n++], a, "a2", "two");           /* a: 3 */
	tail_msg(&o[n++], b, "b1", "one");           /* b: 1 */
	op_init(&o[n], OP_RECEIPT);                  /* reads a's last_seq */
	o[n].conv = a;
	o[n].contact = false;
	o[n].delivered = o[n].read = 3;
	n++;
	tail_msg(&o[n++], a, "a3", "three");         /* a: 4 */
	op_init(&o[n], OP_APPEND_FAIL);              /* a: 5, taken back */
	o[n].job.append_only = true;
	o[n].conv = a;
	o[n].ev = o[0].ev;
	o[n].ev.client_id = "gone";
	n++;
	tail_msg(&o[n++], a, "gone", "four");        /* a: 5 (not a dup) */
	tail_msg(&o[n++], a, "a1", "again");         /* duplicate of 2 */
	op_init(&o[n], OP_APPEND);                   /* a plain job: a: 6 */
	o[n].conv = a;
	o[n].ev = o[0].ev;
	o[n].ev.client_id = "plain";
	n++;
	tail_msg(&o[n++], a, "a5", "five");          /* a: 7 */
	tail_msg(&o[n++], b, "b2", "two");           /* b: 2 */
	hl_store_stats(&E.st, &st0);
	run_ops(o, n);
	hl_store_stats(&E.st, &st1);
	/* The gate, then ours (or all in one, had the writer not woken
	 * before they were queued). */
	assert_in_range(st1.batches - st0.batches, 1, 2);

	assert_int_equal(o[0].status, 0);
	assert_int_equal(o[0].res.seq, 2);
	assert_int_equal(o[1].res.seq, 3);
	assert_int_equal(o[2].res.seq, 1);
	assert_int_equal(o[3].status, 0); /* seq 3 is known: no ERANGE */
	assert_int_equal(o[4].res.seq, 4);
	assert_int_equal(o[5].status, HL_ECONSTRAINT);
	assert_int_equal(o[6].status, 0);
	assert_false(o[6].res.duplicate);
	assert_int_equal(o[6].res.seq, 5);
	assert_int_equal(o[7].status, 0);
	assert_true(o[7].res.duplicate);
	assert_int_equal(o[7].res.seq, 2);
	assert_int_equal(o[8].status, 0);
	assert_int_equal(o[8].res.seq, 6);
	assert_int_equal(o[9].res.seq, 7);
	assert_int_equal(o[10].res.seq, 2);
	assert_int_equal(get_row(a).last_seq, 7);
	assert_int_equal(get_row(b).last_seq, 2);
	assert_int_equal(get_row(a).staff_delivered, 3);
	assert_int_equal(tail_ok(a), 1);
	assert_int_equal(tail_ok(b), 1);
	assert_int_equal(event_rows(a), 7);
	/* The chain goes on from the tails' heads. */
	assert_int_equal(msg(a, "contact", "after", "eight"), 8);
	assert_int_equal(tail_ok(a), 1);

	/* A state change between appends of one batch is seen by the next
	 * append: ended refuses messages. */
	n = 0;
	tail_msg(&o[n++], b, "b3", "three");
	op_init(&o[n], OP_SET_STATE);
	o[n].conv = b;
	o[n].to = HL_CONV_ENDED;
	n++;
	tail_msg(&o[n++], b, "b4", "four");
	run_ops(o, n);
	assert_int_equal(o[0].res.seq, 3);
	assert_int_equal(o[1].status, 0);
	assert_int_equal(o[2].status, HL_ECLOSED);
	assert_int_equal(get_row(b).last_seq, 3);
	assert_int_equal(tail_ok(b), 1);

	/* A row that is not as its tail read it (changed behind its back)
	 * fails the whole batch: nothing of it is stored or acknowledged. */
	n = 0;
	tail_msg(&o[n++], a, "x1", "x");
	op_init(&o[n], OP_BUMP);
	o[n].job.append_only = true;
	o[n].conv = a;
	n++;
	tail_msg(&o[n++], a, "x2", "y");
	batch_fails(o, n);
	assert_int_equal(get_row(a).last_seq, 8);
	assert_int_equal(event_rows(a), 8);
	assert_int_equal(tail_ok(a), 1);
	/* And the next append carries on from the stored row. */
	assert_int_equal(msg(a, "contact", "x1", "x"), 9);
	assert_int_equal(tail_ok(a), 1);
}

/* An append-only job runs without a savepoint until hl_event_append opens
 * one (store.h): when the append also writes a checkpoint and that write
 * fails, the event is taken back and the batch's other appends stand; an
 * append-only job that writes and then fails without one fails its whole
 * batch rather than leave half of itself stored. */
static void test_append_only_savepoint(void **state)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	struct op o[4];
	sqlite3 *db;
	int64_t a;
	size_t n = 0;

	(void)state;
	crypto_sign_keypair(pk, sk);
	a = create();
	assert_int_equal(msg(a, "contact", "a0", "before"), 1);
	assert_int_equal(sqlite3_open_v2(E.path, &db, SQLITE_OPEN_READWRITE,
					 NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	hl_test_exec(db, "CREATE TRIGGER no_checkpoint BEFORE INSERT ON "
			 "checkpoint BEGIN SELECT RAISE(ABORT, 'no'); END");

	tail_msg(&o[n++], a, "k1", "one");           /* a: 2 */
	tail_msg(&o[n], a, "k2", "two");             /* a: 3, taken back */
	o[n].ev.stamp_sk = sk;
	o[n].ev.checkpoint_every = 32;
	o[n].ev.checkpoint_now = true;
	n++;
	tail_msg(&o[n++], a, "k3", "three");         /* a: 3 */
	run_ops(o, n);
	assert_int_equal(o[0].status, 0);
	assert_int_equal(o[0].res.seq, 2);
	assert_true(o[1].status < 0);
	assert_int_equal(o[2].status, 0);
	assert_int_equal(o[2].res.seq, 3);
	assert_int_equal(event_rows(a), 3);
	assert_int_equal(get_row(a).last_seq, 3);
	assert_int_equal(tail_ok(a), 1);
	assert_int_equal(query1("SELECT count(*) FROM event WHERE "
				"conversation_id=?1 AND client_id='k2'", a),
			 0);

	/* Written, then failed, with no savepoint: the whole batch goes. */
	n = 0;
	tail_msg(&o[n++], a, "k4", "four");
	op_init(&o[n], OP_APPEND_FAIL);
	o[n].job.append_only = true;
	o[n].count = 1; /* without hl_store_job_savepoint */
	o[n].conv = a;
	o[n].ev = o[0].ev;
	o[n].ev.client_id = "k5";
	n++;
	batch_fails(o, n);
	assert_int_equal(event_rows(a), 3);
	assert_int_equal(tail_ok(a), 1);
	assert_int_equal(msg(a, "contact", "k4", "four"), 4);
	hl_test_exec(db, "DROP TRIGGER no_checkpoint");
	sqlite3_close(db);
}

static void test_contact_view(void **state)
{
	struct hl_event_result r;
	int64_t conv;

	(void)state;
	conv = create();
	msg(conv, "contact", "c1", "hi");                         /* 1 */
	assert_int_equal(append_full(conv, "note", "staff:2", HL_VIS_STAFF,
				     "n1", "internal", 8, T0, &r), 0); /* 2 */
	msg(conv, "staff:2", "s1", "hello");                      /* 3 */
	assert_int_equal(append_full(conv, "tag", "staff:2", HL_VIS_STAFF,
				     NULL, "t", 1, T0, &r), 0);        /* 4 */
	assert_int_equal(append_full(conv, "transfer", "system", HL_VIS_STAFF,
				     NULL, NULL, 0, T0, &r), 0);       /* 5 */
	assert_int_equal(append_full(conv, "system", "system", HL_VIS_ALL,
				     NULL, NULL, 0, T0, &r), 0);       /* 6 */
	assert_int_equal(r.seq, 6);

	assert_int_equal(since(conv, 0, true, 100), 0);
	assert_string_equal(S.list, "1,3,6");
	for (int i = 0; i < S.n; i++)
		assert_int_equal(S.vis[i], HL_VIS_ALL);
	assert_int_equal(since(conv, 0, false, 100), 0);
	assert_string_equal(S.list, "1,2,3,4,5,6");
	assert_int_equal(S.vis[1], HL_VIS_STAFF);
	assert_string_equal(S.kind[1], "note");
	/* max counts what the contact is shown, and resuming after a staff
	 * event's seq works too. */
	assert_int_equal(since(conv, 0, true, 2), 0);
	assert_string_equal(S.list, "1,3");
	assert_int_equal(since(conv, 3, true, 1), 0);
	assert_string_equal(S.list, "6");
	assert_int_equal(since(conv, 2, true, 100), 0);
	assert_string_equal(S.list, "3,6");
	assert_int_equal(since(conv, 4, true, 100), 0);
	assert_string_equal(S.list, "6");

	/* A young person's own events cannot be made internal. */
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_STAFF,
				     NULL, "x", 1, T0, &r), HL_EINVAL);
	assert_int_equal(get(conv).last_seq, 6);
}

static void test_since_resume(void **state)
{
	int64_t conv;
	char want[64];

	(void)state;
	conv = create();
	for (int i = 0; i < 10; i++)
		msg(conv, "contact", NULL, "m");

	assert_int_equal(since(conv, 0, false, 100), 0);
	assert_string_equal(S.list, "1,2,3,4,5,6,7,8,9,10");
	/* Exactly after every seq, the last one included. */
	for (int k = 1; k <= 10; k++) {
		size_t len = 0;

		want[0] = '\0';
		for (int j = k + 1; j <= 10; j++)
			len += (size_t)snprintf(want + len, sizeof(want) - len,
						"%s%d", len ? "," : "", j);
		assert_int_equal(since(conv, k, k % 2 == 0, 100), 0);
		assert_string_equal(S.list, want);
		assert_int_equal(S.n, 10 - k);
	}
	assert_int_equal(since(conv, 11, false, 100), 0);
	assert_int_equal(S.n, 0);

	/* Pages of 3: the caller resumes after the last seq it got. */
	{
		int64_t after = 0;
		char all[64] = "";
		int pages = 0;

		do {
			assert_int_equal(since(conv, after, true, 3), 0);
			if (S.n > 0) {
				size_t l = strlen(all), m = strlen(S.list);

				assert_true(l + 1 + m < sizeof(all));
				if (l)
					all[l++] = ',';
				memcpy(all + l, S.list, m + 1);
				after = S.seq[S.n - 1];
			}
			pages++;
		} while (S.n == 3);
		assert_string_equal(all, "1,2,3,4,5,6,7,8,9,10");
		assert_int_equal(pages, 4);
	}

	/* Bounds and stops. */
	assert_int_equal(since(conv, 0, false, 0), 0);
	assert_int_equal(S.n, 0);
	assert_int_equal(since(conv, -1, false, 10), HL_EINVAL);
	assert_int_equal(S.n, 0);
	memset(&S, 0, sizeof(S));
	{
		struct op o;

		op_init(&o, OP_SINCE);
		o.conv = conv;
		o.max = 100;
		S.stop_after = 4;
		assert_int_equal(run(&o), HL_EFULL);
		assert_string_equal(S.list, "1,2,3,4");
	}
	/* An unknown conversation has no events. */
	assert_int_equal(since(424242, 0, false, 10), 0);
	assert_int_equal(S.n, 0);
	/* The statement was reset: a fresh walk starts from the beginning. */
	assert_int_equal(since(conv, 8, false, 10), 0);
	assert_string_equal(S.list, "9,10");
}

static void test_payload_cap(void **state)
{
	unsigned char *big = malloc(HL_EVENT_PAYLOAD_MAX + 1);
	unsigned char want[32];
	struct hl_event_result r;
	int64_t conv;

	(void)state;
	assert_non_null(big);
	randombytes_buf(big, HL_EVENT_PAYLOAD_MAX + 1);
	conv = create();
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "big",
				     big, HL_EVENT_PAYLOAD_MAX, T0, &r), 0);
	assert_int_equal(r.seq, 1);
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL,
				     "bigger", big, HL_EVENT_PAYLOAD_MAX + 1,
				     T0, &r), HL_ERANGE);
	/* Refused before anything was written. */
	assert_int_equal(get(conv).last_seq, 1);
	assert_int_equal(event_rows(conv), 1);
	/* A payload pointer is needed when there are bytes. */
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, NULL,
				     NULL, 1, T0, &r), HL_EINVAL);

	assert_int_equal(since(conv, 0, true, 10), 0);
	assert_int_equal(S.n, 1);
	assert_int_equal(S.len[0], HL_EVENT_PAYLOAD_MAX);
	crypto_generichash(want, 32, big, HL_EVENT_PAYLOAD_MAX, NULL, 0);
	assert_memory_equal(S.digest[0], want, 32);
	/* The next append still gets the next seq. */
	assert_int_equal(msg(conv, "contact", NULL, "after"), 2);
	free(big);
}

static void test_event_validation(void **state)
{
	static const char *const bad_kind[] = {
		"", "MSG", "m sg", "msg\n", "k-1",
		"abcdefghijabcdefghijabcdefghijabc", /* 33 */
	};
	static const char *const bad_sender[] = {
		"", "Contact", "contact ", "staff", "staff:", "staff:0",
		"staff:07", "staff:-1", "staff:1a", "staff:9223372036854775808",
		"staff:18446744073709551616", "system:1", "anonymous",
	};
	static const char *const bad_client[] = {
		"", "a b", "a/b", "\xc3\xa9",
		"0123456789012345678901234567890123456789012345678901234567890123"
		"4", /* 65 */
	};
	struct hl_event_result r;
	int64_t conv;

	(void)state;
	conv = create();
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_kind); i++)
		assert_int_equal(append_full(conv, bad_kind[i], "contact",
					     HL_VIS_ALL, NULL, "x", 1, T0, &r),
				 HL_EINVAL);
	assert_int_equal(append_full(conv, NULL, "contact", HL_VIS_ALL, NULL,
				     "x", 1, T0, &r), HL_EINVAL);
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_sender); i++)
		assert_int_equal(append_full(conv, "msg", bad_sender[i],
					     HL_VIS_ALL, NULL, "x", 1, T0, &r),
				 HL_EINVAL);
	assert_int_equal(append_full(conv, "msg", NULL, HL_VIS_ALL, NULL, "x",
				     1, T0, &r), HL_EINVAL);
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_client); i++)
		assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL,
					     bad_client[i], "x", 1, T0, &r),
				 HL_EINVAL);
	assert_int_equal(append_full(conv, "msg", "contact",
				     (enum hl_event_vis)2, NULL, "x", 1, T0,
				     &r), HL_EINVAL);
	assert_int_equal(event_rows(conv), 0);
	assert_int_equal(get(conv).last_seq, 0);

	/* The limits themselves are accepted. */
	assert_int_equal(append_full(conv, "key.wrap_self", "staff:"
				     "9223372036854775807", HL_VIS_STAFF,
				     "0123456789012345678901234567890123456789"
				     "012345678901234567890123", "x", 1, T0,
				     &r), 0);
	assert_int_equal(r.seq, 1);
	assert_int_equal(append_full(conv, "abcdefghijabcdefghijabcdefghijab",
				     "system", HL_VIS_ALL, "A.Z_a:z-9", "x",
				     1, T0, &r), 0);
	assert_int_equal(r.seq, 2);
	/* Unknown conversation: nothing to append to, whatever the kind. */
	assert_int_equal(append_full(777, "msg", "contact", HL_VIS_ALL, "q",
				     "x", 1, T0, &r), HL_ENOTFOUND);
	assert_int_equal(append_full(777, "system", "system", HL_VIS_ALL, NULL,
				     "x", 1, T0, &r), HL_ENOTFOUND);
	assert_int_equal(query1("SELECT count(*) FROM event WHERE "
				"conversation_id=777", 0), 0);
}

/* ---- tests: lifecycle --------------------------------------------------- */

/* A new conversation brought to state `st` by legal steps, offered to and
 * held by counsellor c. */
static int64_t conv_in(enum hl_conv_state st, int64_t c)
{
	int64_t conv = create();

	if (st == HL_CONV_QUEUED)
		return conv;
	if (st == HL_CONV_OFFERED || st == HL_CONV_ACTIVE) {
		assert_int_equal(set_state(conv, HL_CONV_OFFERED, c, T0 + 1), 0);
		if (st == HL_CONV_ACTIVE)
			assert_int_equal(set_state(conv, HL_CONV_ACTIVE, c,
						   T0 + 2), 0);
		return conv;
	}
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, c, T0 + 1), 0);
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, 0, T0 + 2), 0);
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 3), 0);
	if (st == HL_CONV_WRAPPED)
		assert_int_equal(set_state(conv, HL_CONV_WRAPPED, 0, T0 + 4),
				 0);
	return conv;
}

static void test_state_transitions(void **state)
{
	/* ok[from][to], as conversation.h lists them. */
	static const bool ok[5][5] = {
		/* to: queued offered active ended wrapped */
		[HL_CONV_QUEUED] = { 0, 1, 0, 1, 0 },
		[HL_CONV_OFFERED] = { 1, 0, 1, 1, 0 },
		[HL_CONV_ACTIVE] = { 1, 0, 0, 1, 0 },
		[HL_CONV_ENDED] = { 0, 0, 0, 0, 1 },
		[HL_CONV_WRAPPED] = { 0, 0, 0, 0, 0 },
	};
	int64_t a, b, conv;
	struct hl_conv c;

	(void)state;
	a = staff("anna");
	b = staff("ben");
	for (int from = 0; from < 5; from++) {
		for (int to = 0; to < 5; to++) {
			int rc;

			conv = conv_in((enum hl_conv_state)from, a);
			rc = set_state(conv, (enum hl_conv_state)to, a, T0 + 50);
			if (rc != (ok[from][to] ? 0 : HL_EINVAL))
				fail_msg("%s -> %s: got %d",
					 hl_conv_state_name(
						 (enum hl_conv_state)from),
					 hl_conv_state_name(
						 (enum hl_conv_state)to), rc);
			c = get(conv);
			assert_int_equal(c.state, ok[from][to] ? to : from);
			if (ok[from][to])
				assert_int_equal(c.state_at, T0 + 50);
		}
	}

	/* The counsellor: set by the offer, kept on accept and end, cleared
	 * when the conversation goes back to the queue. */
	conv = create();
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, 0, T0), HL_EINVAL);
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, a, T0 + 10), 0);
	c = get(conv);
	assert_int_equal(c.counsellor_id, a);
	assert_int_equal(c.state_at, T0 + 10);
	/* Only the one it was offered to may accept. */
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, b, T0 + 11),
			 HL_EINVAL);
	assert_int_equal(get(conv).state, HL_CONV_OFFERED);
	assert_int_equal(set_state(conv, HL_CONV_QUEUED, 0, T0 + 12), 0);
	c = get(conv);
	assert_int_equal(c.counsellor_id, 0);
	assert_int_equal(c.state, HL_CONV_QUEUED);
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, b, T0 + 13), 0);
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, b, T0 + 14), 0);
	assert_int_equal(get(conv).counsellor_id, b);
	/* Counsellor lost: back in the queue, nobody holds it. */
	assert_int_equal(set_state(conv, HL_CONV_QUEUED, 0, T0 + 15), 0);
	assert_int_equal(get(conv).counsellor_id, 0);
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, a, T0 + 16), 0);
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, 0, T0 + 17), 0);
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 18), 0);
	c = get(conv);
	assert_int_equal(c.state, HL_CONV_ENDED);
	assert_int_equal(c.counsellor_id, a);
	assert_int_equal(c.ended_at, T0 + 18);
	assert_int_equal(c.created_at, T0);
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 19), HL_EINVAL);
	assert_int_equal(get(conv).ended_at, T0 + 18);

	/* Ended while still queued: nobody ever held it. */
	conv = create();
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 20), 0);
	c = get(conv);
	assert_int_equal(c.counsellor_id, 0);
	assert_int_equal(c.ended_at, T0 + 20);

	/* No such conversation; no such staff; no such state. */
	assert_int_equal(set_state(5555, HL_CONV_ENDED, 0, T0), HL_ENOTFOUND);
	conv = create();
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, 987654, T0),
			 HL_ECONSTRAINT);
	assert_int_equal(get(conv).state, HL_CONV_QUEUED);
	assert_int_equal(set_state(conv, (enum hl_conv_state)7, a, T0),
			 HL_EINVAL);
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, -3, T0), HL_EINVAL);
}

static void test_closed_refuses_messages(void **state)
{
	struct hl_event_result r;
	struct hl_conv c;
	int64_t a, conv;

	(void)state;
	a = staff("cara");
	conv = conv_in(HL_CONV_ACTIVE, a);
	assert_int_equal(msg(conv, "contact", "c1", "help"), 1);
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 100), 0);

	/* New messages from either side are refused, nothing written. */
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "c2",
				     "more", 4, T0 + 101, &r), HL_ECLOSED);
	assert_int_equal(append_full(conv, "msg", "staff:1", HL_VIS_ALL, NULL,
				     "bye", 3, T0 + 101, &r), HL_ECLOSED);
	assert_int_equal(get(conv).last_seq, 1);
	assert_int_equal(event_rows(conv), 1);
	/* A retry of a message stored before the end is re-acknowledged. */
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "c1",
				     "help", 4, T0 + 102, &r), 0);
	assert_true(r.duplicate);
	assert_int_equal(r.seq, 1);
	/* Other kinds still go in: the end notice, a wrap-up note. */
	assert_int_equal(append_full(conv, "system", "system", HL_VIS_ALL, NULL,
				     NULL, 0, T0 + 103, &r), 0);
	assert_int_equal(r.seq, 2);
	assert_int_equal(append_full(conv, "note", "staff:1", HL_VIS_STAFF,
				     "n1", "n", 1, T0 + 104, &r), 0);
	assert_int_equal(r.seq, 3);

	/* Wrap-up: validated, only from ended, only once. */
	assert_int_equal(wrap(conv, "", "a"), HL_EINVAL);
	assert_int_equal(wrap(conv, NULL, "a"), HL_EINVAL);
	assert_int_equal(wrap(conv, "Advice Given", ""), HL_EINVAL);
	assert_int_equal(wrap(conv, "advice", "a,,b"), HL_EINVAL);
	assert_int_equal(wrap(conv, "advice_given", "sextortion,reported"), 0);
	c = get(conv);
	assert_int_equal(c.state, HL_CONV_WRAPPED);
	assert_string_equal(c.outcome, "advice_given");
	assert_string_equal(c.tags, "sextortion,reported");
	assert_int_equal(c.state_at, T0);
	assert_int_equal(c.ended_at, T0 + 100);
	assert_int_equal(c.counsellor_id, a);
	assert_int_equal(wrap(conv, "other", NULL), HL_EINVAL);
	assert_string_equal(get(conv).outcome, "advice_given");
	assert_int_equal(append_full(conv, "msg", "contact", HL_VIS_ALL, "c3",
				     "x", 1, T0 + 200, &r), HL_ECLOSED);
	assert_int_equal(append_full(conv, "note", "staff:1", HL_VIS_STAFF,
				     NULL, "n", 1, T0 + 201, &r), 0);
	assert_int_equal(r.seq, 4);

	/* Not ended yet, or not there. */
	assert_int_equal(wrap(conv_in(HL_CONV_ACTIVE, a), "x", ""), HL_EINVAL);
	assert_int_equal(wrap(create(), "x", ""), HL_EINVAL);
	assert_int_equal(wrap(31337, "x", ""), HL_ENOTFOUND);
	/* Wrapped with tags NULL: stored as ''. */
	conv = conv_in(HL_CONV_ENDED, a);
	assert_int_equal(wrap(conv, "no_contact", NULL), 0);
	assert_string_equal(get(conv).tags, "");
}

/* ---- tests: resume sessions --------------------------------------------- */

static void secret_hash(const unsigned char secret[32],
			unsigned char out[HL_TOKEN_HASH_BYTES])
{
	hl_keys_hash_token(&E.keys, secret, 32, out);
}

static int s_put(const unsigned char *hash, int64_t conv, int64_t now,
		 int64_t expires)
{
	struct op o;

	op_init(&o, OP_S_PUT);
	memcpy(o.hash, hash, HL_TOKEN_HASH_BYTES);
	o.conv = conv;
	o.now = now;
	o.expires = expires;
	return run(&o);
}

static int s_find(const unsigned char *hash, int64_t now, int64_t *conv)
{
	struct op o;

	op_init(&o, OP_S_FIND);
	memcpy(o.hash, hash, HL_TOKEN_HASH_BYTES);
	o.now = now;
	o.conv = -1;
	run(&o);
	if (o.status == 0 && conv)
		*conv = o.conv;
	return o.status;
}

static int s_touch(const unsigned char *hash, int64_t now, int64_t expires)
{
	struct op o;

	op_init(&o, OP_S_TOUCH);
	memcpy(o.hash, hash, HL_TOKEN_HASH_BYTES);
	o.now = now;
	o.expires = expires;
	return run(&o);
}

static int s_delete(const unsigned char *hash)
{
	struct op o;

	op_init(&o, OP_S_DELETE);
	memcpy(o.hash, hash, HL_TOKEN_HASH_BYTES);
	return run(&o);
}

static int s_expire(int64_t now)
{
	struct op o;

	op_init(&o, OP_S_EXPIRE);
	o.now = now;
	assert_int_equal(run(&o), 0);
	return o.count;
}

static void test_contact_sessions(void **state)
{
	unsigned char sec1[32], sec2[32], sec3[32];
	unsigned char h1[HL_TOKEN_HASH_BYTES], h2[HL_TOKEN_HASH_BYTES];
	unsigned char h3[HL_TOKEN_HASH_BYTES];
	int64_t c1, c2, got = 0;

	(void)state;
	randombytes_buf(sec1, sizeof(sec1));
	randombytes_buf(sec2, sizeof(sec2));
	randombytes_buf(sec3, sizeof(sec3));
	secret_hash(sec1, h1);
	secret_hash(sec2, h2);
	secret_hash(sec3, h3);
	c1 = create();
	c2 = create();

	assert_int_equal(s_put(h1, c1, T0, T0 + DAY_MS), 0);
	assert_int_equal(s_put(h2, c2, T0, T0 + 1000), 0);
	assert_int_equal(s_find(h1, T0 + 1, &got), 0);
	assert_int_equal(got, c1);
	assert_int_equal(s_find(h2, T0 + 999, &got), 0);
	assert_int_equal(got, c2);
	/* Expired at expires_at exactly. */
	assert_int_equal(s_find(h2, T0 + 1000, &got), HL_ENOTFOUND);
	assert_int_equal(s_find(h3, T0, &got), HL_ENOTFOUND);
	/* Touch: last_seen, and a new expiry when given. */
	assert_int_equal(s_touch(h2, T0 + 500, T0 + 5000), 0);
	assert_int_equal(s_find(h2, T0 + 4999, &got), 0);
	assert_int_equal(query1("SELECT last_seen FROM contact_session WHERE "
				"conversation_id=?1", c2), T0 + 500);
	assert_int_equal(s_touch(h2, T0 + 600, 0), 0);
	assert_int_equal(query1("SELECT last_seen FROM contact_session WHERE "
				"conversation_id=?1", c2), T0 + 600);
	assert_int_equal(query1("SELECT expires_at FROM contact_session WHERE "
				"conversation_id=?1", c2), T0 + 5000);
	assert_int_equal(s_find(h2, T0 + 4999, &got), 0);
	assert_int_equal(s_touch(h2, T0 + 5000, T0 + 9000), HL_ENOTFOUND);
	assert_int_equal(s_find(h2, T0 + 5000, &got), HL_ENOTFOUND);
	assert_int_equal(s_touch(h3, T0, 0), HL_ENOTFOUND);

	/* A retried put refreshes; the hash of another conversation, an
	 * unknown conversation or an expiry not after now are refused. */
	assert_int_equal(s_put(h1, c1, T0 + 10, T0 + 2 * DAY_MS), 0);
	assert_int_equal(s_find(h1, T0 + DAY_MS + 1, &got), 0);
	assert_int_equal(s_put(h1, c2, T0, T0 + DAY_MS), HL_ECONSTRAINT);
	assert_int_equal(s_find(h1, T0, &got), 0);
	assert_int_equal(got, c1);
	assert_int_equal(s_put(h3, 999999, T0, T0 + DAY_MS), HL_ECONSTRAINT);
	assert_int_equal(s_put(h3, c1, T0, T0), HL_EINVAL);
	assert_int_equal(s_find(h3, T0 - 1, &got), HL_ENOTFOUND);
	assert_int_equal(query1("SELECT count(*) FROM contact_session", 0), 2);
	assert_int_equal(query1("SELECT last_seen FROM contact_session WHERE "
				"conversation_id=?1", c1), T0 + 10);

	/* Sweep: only the expired one goes. Delete: once. */
	assert_int_equal(s_expire(T0 + 5000), 1);
	assert_int_equal(s_expire(T0 + 5000), 0);
	assert_int_equal(s_find(h1, T0 + 5000, &got), 0);
	assert_int_equal(s_delete(h1), 0);
	assert_int_equal(s_find(h1, T0, &got), HL_ENOTFOUND);
	assert_int_equal(s_delete(h1), HL_ENOTFOUND);
	assert_int_equal(query1("SELECT count(*) FROM contact_session", 0), 0);
	sodium_memzero(sec1, sizeof(sec1));
}

/* 1 when needle occurs in the file at path (a missing file has nothing). */
static int file_has(const char *path, const void *needle, size_t len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long n;
	int found = 0;

	if (!f)
		return 0;
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	for (size_t i = 0; !found && len <= (size_t)n && i <= (size_t)n - len;
	     i++)
		found = memcmp(buf + i, needle, len) == 0;
	free(buf);
	return found;
}

static void test_only_hash_stored(void **state)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	unsigned char secret[32], hash[HL_TOKEN_HASH_BYTES];
	char p[4200];
	int64_t conv, got = 0;

	(void)state;
	randombytes_buf(secret, sizeof(secret));
	secret_hash(secret, hash);
	conv = create();
	assert_int_equal(s_put(hash, conv, T0, T0 + DAY_MS), 0);
	assert_int_equal(s_touch(hash, T0 + 1, T0 + 2 * DAY_MS), 0);
	env_close();  /* checkpoints: everything is in the main file now */

	for (size_t i = 0; i < HL_ARRAY_LEN(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", E.path, sfx[i]);
		if (file_has(p, secret, sizeof(secret)))
			fail_msg("the raw resume secret is in %s", p);
	}
	/* The method works: the hash is there. */
	assert_true(file_has(E.path, hash, sizeof(hash)));

	env_open();
	assert_int_equal(s_find(hash, T0 + DAY_MS, &got), 0);
	assert_int_equal(got, conv);
	sodium_memzero(secret, sizeof(secret));
}

/* ---- tests: restart ----------------------------------------------------- */

static void test_restart_each_open(void **state)
{
	int64_t a, c[7];
	char want[256];
	struct hl_conv got;

	(void)state;
	a = staff("dev");
	/* Created out of id order, so created order is what is checked. */
	c[0] = create_at(T0 + 300);                /* queued */
	c[1] = create_at(T0 + 100);                /* offered */
	c[2] = create_at(T0 + 200);                /* active */
	c[3] = create_at(T0 + 50);                 /* ended */
	c[4] = create_at(T0 + 100);                /* queued, same time as c1 */
	c[5] = create_at(T0 + 10);                 /* wrapped */
	c[6] = create_at(T0 + 400);                /* queued again */
	assert_int_equal(set_state(c[1], HL_CONV_OFFERED, a, T0 + 500), 0);
	assert_int_equal(set_state(c[2], HL_CONV_OFFERED, a, T0 + 500), 0);
	assert_int_equal(set_state(c[2], HL_CONV_ACTIVE, a, T0 + 501), 0);
	assert_int_equal(set_state(c[3], HL_CONV_ENDED, 0, T0 + 502), 0);
	assert_int_equal(set_state(c[5], HL_CONV_ENDED, 0, T0 + 503), 0);
	assert_int_equal(wrap(c[5], "abandoned", ""), 0);
	assert_int_equal(set_state(c[6], HL_CONV_OFFERED, a, T0 + 504), 0);
	assert_int_equal(set_state(c[6], HL_CONV_QUEUED, 0, T0 + 505), 0);
	for (int i = 0; i < 7; i++)
		msg(c[2], i % 2 ? "staff:1" : "contact", NULL, "m");
	msg(c[0], "contact", "x", "m");
	assert_int_equal(append_full(c[3], "system", "system", HL_VIS_ALL,
				     NULL, NULL, 0, T0 + 600, NULL), 0);

	env_close();
	env_open();  /* the restart */

	assert_int_equal(each_open(), 0);
	/* c1 and c4 share created_at: id breaks the tie. */
	assert_true(c[1] < c[4]);
	snprintf(want, sizeof(want),
		 "%lld:offered,%lld:queued,%lld:active,%lld:queued,"
		 "%lld:queued",
		 (long long)c[1], (long long)c[4], (long long)c[2],
		 (long long)c[0], (long long)c[6]);
	assert_string_equal(S.list, want);
	assert_int_equal(S.n, 5);
	assert_int_equal(S.seq[2], 7);  /* c2's last_seq, as rebuilt */
	assert_int_equal(S.seq[3], 1);

	/* last_seq survived: the next append continues the numbering. */
	got = get(c[2]);
	assert_int_equal(got.last_seq, 7);
	assert_int_equal(got.state, HL_CONV_ACTIVE);
	assert_int_equal(got.counsellor_id, a);
	assert_int_equal(msg(c[2], "contact", NULL, "after restart"), 8);
	assert_int_equal(msg(c[0], "contact", "x2", "m"), 2);
	assert_int_equal(since(c[2], 6, true, 10), 0);
	assert_string_equal(S.list, "7,8");
	assert_int_equal(get(c[6]).counsellor_id, 0);

	/* A callback can stop the walk; its status comes back. */
	memset(&S, 0, sizeof(S));
	S.stop_after = 2;
	{
		struct op o;

		op_init(&o, OP_EACH_OPEN);
		assert_int_equal(run(&o), HL_EFULL);
	}
	assert_int_equal(S.n, 2);
}

/* ---- tests: query plans ------------------------------------------------- */

static void plan_of(enum hl_stmt which, char *out, size_t cap)
{
	struct op o;

	op_init(&o, OP_PLAN);
	o.stmt = which;
	assert_int_equal(run(&o), 0);
	snprintf(out, cap, "%s", o.plan);
}

static void assert_plan(enum hl_stmt which, const char *needle)
{
	char plan[1024];

	plan_of(which, plan, sizeof(plan));
	if (!strstr(plan, needle))
		fail_msg("statement %d: plan \"%s\" lacks \"%s\"", (int)which,
			 plan, needle);
	/* A full table scan reads "SCAN t" alone; a walk of a (partial)
	 * index reads "SCAN t USING INDEX i", which is what we want. */
	if (strstr(plan, "SCAN event;") || strstr(plan, "SCAN conversation;") ||
	    strstr(plan, "SCAN contact_session;") || strstr(plan, "TEMP B-TREE"))
		fail_msg("statement %d scans or sorts: %s", (int)which, plan);
}

static void test_query_plans(void **state)
{
	(void)state;
	/* The appends' hot path and resume touch only index ranges. */
	/* Client ids have no index (0008): a retry is found through the
	 * writer's memory, checked by (conversation, seq), loaded (and, out
	 * of memory, walked) by conversation. */
	assert_plan(HL_STMT_EVENT_CLIENT_AT, "(conversation_id=? AND seq=?)");
	assert_plan(HL_STMT_EVENT_CLIENT_IDS, "(conversation_id=? AND seq>?)");
	assert_plan(HL_STMT_EVENT_FIND_CLIENT, "(conversation_id=?)");
	assert_plan(HL_STMT_EVENT_SINCE, "(conversation_id=? AND seq>?)");
	assert_plan(HL_STMT_CONV_STATE, "USING INTEGER PRIMARY KEY");
	assert_plan(HL_STMT_CONV_SET_SEQ, "USING INTEGER PRIMARY KEY");
	assert_plan(HL_STMT_CONV_OPEN, "USING INDEX conversation_open");
	assert_plan(HL_STMT_CONTACT_FIND, "USING PRIMARY KEY");
	assert_plan(HL_STMT_CONTACT_EXPIRE, "contact_session_by_expiry");
}

/* ---- tests: many appends ------------------------------------------------ */

#define N_CONV 100
#define N_JOBS 10000

static void test_many_appends_gapless(void **state)
{
	static const unsigned char oversize[HL_EVENT_PAYLOAD_MAX + 1];
	struct op *ops = calloc(N_JOBS, sizeof(*ops));
	char (*ids)[16] = calloc(N_JOBS, sizeof(*ids));
	int64_t conv[N_CONV], want[N_CONV];
	int64_t stored = 0, dups = 0, refused = 0;
	struct hl_store_stats stats;
	size_t pending = N_JOBS;

	(void)state;
	assert_non_null(ops);
	assert_non_null(ids);
	for (int i = 0; i < N_CONV; i++) {
		conv[i] = create();
		want[i] = 0;
	}
	/* All 10,000 jobs are queued before the loop runs, so the writer
	 * takes them in large batches (group commit). Every 10th is a retry
	 * of an id sent 100 jobs earlier (same conversation), every 37th is
	 * refused for its size: neither may leave a gap or a second row. */
	for (int j = 0; j < N_JOBS; j++) {
		struct op *o = &ops[j];
		int k = j % N_CONV;

		op_init(o, OP_APPEND);
		o->conv = conv[k];
		o->now = T0 + j;
		o->ev.kind = "msg";
		o->ev.sender = j % 3 ? "contact" : "staff:1";
		o->ev.visibility = HL_VIS_ALL;
		if (j % 10 == 5 && j >= N_CONV) {
			/* A retry of the first job of this residue (j %
			 * N_CONV): same conversation, sender and id. */
			memcpy(ids[j], ids[k], sizeof(ids[j])); /* j != k */
			o->ev.client_id = ids[j];
			o->ev.sender = ops[k].ev.sender;
		} else {
			snprintf(ids[j], sizeof(ids[j]), "id-%d", j);
			o->ev.client_id = ids[j];
		}
		if (j % 37 == 36) {
			o->ev.payload = oversize;
			o->ev.payload_len = sizeof(oversize);
		} else {
			o->ev.payload = ids[j];
			o->ev.payload_len = 4;
		}
		assert_int_equal(hl_store_submit(&E.st, &o->job), 0);
	}
	while (pending > 0) {
		uv_run(&E.loop, UV_RUN_ONCE);
		pending = 0;
		for (int j = 0; j < N_JOBS; j++)
			pending += !ops[j].done;
	}
	for (int j = 0; j < N_JOBS; j++) {
		struct op *o = &ops[j];
		int k = j % N_CONV;

		if (j % 37 == 36 && o->status == HL_ERANGE) {
			refused++;
			continue;
		}
		assert_int_equal(o->status, 0);
		if (o->res.duplicate) {
			/* Re-acknowledged with the original's seq. */
			assert_true(j % 10 == 5 && j >= N_CONV);
			assert_int_equal(o->res.seq, ops[k].res.seq);
			dups++;
		} else {
			assert_int_equal(o->res.seq, ++want[k]);
			stored++;
		}
	}
	assert_int_equal(stored + dups + refused, N_JOBS);
	assert_true(dups > 800);
	assert_true(refused > 200);
	assert_int_equal(query1("SELECT count(*) FROM event", 0), stored);
	/* Per conversation: seqs are exactly 1..last_seq. */
	for (int i = 0; i < N_CONV; i++) {
		struct hl_conv c = get(conv[i]);

		assert_int_equal(c.last_seq, want[i]);
		assert_int_equal(event_rows(conv[i]), want[i]);
	}
	assert_int_equal(query1(
		"SELECT count(*) FROM conversation c WHERE last_seq <> "
		"(SELECT count(*) FROM event e WHERE e.conversation_id=c.id) "
		"OR last_seq <> (SELECT coalesce(max(seq), 0) FROM event e "
		"WHERE e.conversation_id=c.id)", 0), 0);
	assert_int_equal(query1(
		"SELECT count(*) FROM event e WHERE seq > 1 AND NOT EXISTS "
		"(SELECT 1 FROM event p WHERE p.conversation_id="
		"e.conversation_id AND p.seq=e.seq-1)", 0), 0);
	/* Paged resume through one conversation sees every seq once. */
	{
		int64_t after = 0, next = 1;

		do {
			assert_int_equal(since(conv[7], after, true, 37), 0);
			for (int i = 0; i < S.n; i++)
				assert_int_equal(S.seq[i], next++);
			if (S.n > 0)
				after = S.seq[S.n - 1];
		} while (S.n == 37);
		assert_int_equal(next - 1, want[7]);
	}
	hl_store_stats(&E.st, &stats);
	print_message("10000 appends: %lld stored, %lld duplicates, %lld "
		      "refused; %llu batches, largest %u\n", (long long)stored,
		      (long long)dups, (long long)refused,
		      (unsigned long long)stats.batches, stats.max_batch);
	free(ids);
	free(ops);
}

/* Transfer, supervisor, receipts and accepted_at (schema 0004). */
static void test_routing_columns(void **state)
{
	int64_t a = staff("ann"), b = staff("bob"), sup = staff("sue");
	int64_t conv = create();
	struct hl_conv row;

	(void)state;
	/* accepted_at is set by the first accept only. */
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, a, T0 + 1000), 0);
	assert_int_equal(get_row(conv).accepted_at, 0);
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, a, T0 + 2000), 0);
	assert_int_equal(get_row(conv).accepted_at, T0 + 2000);
	/* Transfer: only from the holder, to someone else, while active. */
	assert_int_equal(transfer(conv, b, a), HL_EINVAL);
	assert_int_equal(transfer(conv, a, a), HL_EINVAL);
	assert_int_equal(transfer(conv, a, b), 0);
	row = get_row(conv);
	assert_int_equal(row.counsellor_id, b);
	assert_int_equal(row.transfers, 1);
	assert_int_equal(transfer(conv, a, b), HL_EINVAL); /* not a's any more */
	/* A requeue and a new accept keep the first accepted_at. */
	assert_int_equal(set_state(conv, HL_CONV_QUEUED, 0, T0 + 3000), 0);
	assert_int_equal(set_state(conv, HL_CONV_OFFERED, a, T0 + 4000), 0);
	assert_int_equal(set_state(conv, HL_CONV_ACTIVE, a, T0 + 5000), 0);
	assert_int_equal(get_row(conv).accepted_at, T0 + 2000);
	/* Supervisor: set and cleared while open. */
	assert_int_equal(supervise(conv, sup), 0);
	assert_int_equal(get_row(conv).supervisor_id, sup);
	assert_int_equal(supervise(conv, 0), 0);
	assert_int_equal(get_row(conv).supervisor_id, 0);
	/* Receipts: never past the last event, never lowered. */
	msg(conv, "contact", "m1", "one");
	msg(conv, "contact", "m2", "two");
	assert_int_equal(receipt(conv, false, 3, 0), HL_ERANGE);
	assert_int_equal(receipt(conv, false, 2, 1), 0);
	assert_int_equal(receipt(conv, false, 1, 0), 0);
	row = get_row(conv);
	assert_int_equal(row.staff_delivered, 2);
	assert_int_equal(row.staff_read, 1);
	assert_int_equal(row.contact_delivered, 0);
	assert_int_equal(receipt(conv, true, 2, 2), 0);
	assert_int_equal(get_row(conv).contact_read, 2);
	assert_int_equal(receipt(999999, true, 0, 0), HL_ENOTFOUND);
	/* Ended: no transfer, no supervisor. */
	assert_int_equal(set_state(conv, HL_CONV_ENDED, 0, T0 + 6000), 0);
	assert_int_equal(transfer(conv, a, b), HL_EINVAL);
	assert_int_equal(supervise(conv, sup), HL_EINVAL);
}

static void test_id_parse(void **state)
{
	(void)state;
	assert_int_equal(hl_conv_id_parse("1"), 1);
	assert_int_equal(hl_conv_id_parse("9223372036854775807"), INT64_MAX);
	assert_int_equal(hl_conv_id_parse("9223372036854775808"), 0);
	assert_int_equal(hl_conv_id_parse("0"), 0);
	assert_int_equal(hl_conv_id_parse("012"), 0);
	assert_int_equal(hl_conv_id_parse("-1"), 0);
	assert_int_equal(hl_conv_id_parse("1a"), 0);
	assert_int_equal(hl_conv_id_parse(""), 0);
	assert_int_equal(hl_conv_id_parse(NULL), 0);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
	const struct CMUnitTest tests[] = {
		T(test_create_and_get),
		T(test_names),
		T(test_append_in_order),
		T(test_duplicate_client_id),
		T(test_duplicate_without_index),
		T(test_fresh_envelope_needs_no_lookup),
		T(test_tails),
		T(test_append_only_savepoint),
		T(test_envelope_seen_head),
		T(test_envelope_seen_ring),
		T(test_ids_read_in_later),
		T(test_contact_view),
		T(test_since_resume),
		T(test_payload_cap),
		T(test_event_validation),
		T(test_state_transitions),
		T(test_closed_refuses_messages),
		T(test_contact_sessions),
		T(test_only_hash_stored),
		T(test_restart_each_open),
		T(test_query_plans),
		T(test_many_appends_gapless),
		T(test_routing_columns),
		T(test_id_parse),
	};
#undef T

	return cmocka_run_group_tests(tests, group_setup, hl_test_group_teardown);
}
