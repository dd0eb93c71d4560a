/* test_store.c: the store's writer thread on a real uv loop: group commit
 * and completion order, per-job rollback, constraint failures, statement
 * hygiene between jobs, queue limits, close, commit failures (commit hook,
 * lock held by another connection, disk full and fsync errors through a
 * fault-injecting VFS) and durability of acknowledged jobs across SIGKILL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "store.h"
#include "testutil.h"

/* ---- temporary files ---------------------------------------------------- */

static void make_path(char *buf, size_t cap, const char *name)
{
	hl_test_path(buf, cap, name);
}

static int group_setup(void **state)
{
	(void)state;
	/* Commit failures are logged at error level, on purpose. */
	return hl_test_group_begin("store", HL_LOG_ERROR);
}

/* ---- plain SQLite, outside the store ------------------------------------ */

static sqlite3 *plain_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
					 NULL), SQLITE_OK);
	return db;
}

/* 1 when meta holds key, else 0. */
static int plain_has_key(sqlite3 *db, const char *key)
{
	sqlite3_stmt *s;
	int v;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM meta "
					    "WHERE key=?1", -1, &s, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* ---- jobs --------------------------------------------------------------- */

/* What a test job does on the writer thread. */
enum mode {
	M_PUT,          /* insert meta k<id> */
	M_PUT_FAIL,     /* insert k<id>, then return HL_EINVAL */
	M_NOT_NULL,     /* insert k<id> with a NULL value: constraint */
	M_BLOCK,        /* wait at the gate (holds the writer) */
	M_HOOK_FAIL,    /* insert k<id>; make this batch's COMMIT fail */
	M_GET_EARLY,    /* step META_GET to a row and return mid-step */
	M_BIND_ONLY,    /* bind both META_PUT values and never step */
	M_PUT_KEY_ONLY, /* bind only ?1 of META_PUT and step */
	M_FK_DEFERRED,  /* leave a deferred foreign key unresolved */
	M_ARM_FAULT,    /* insert k<id>; arm the VFS fault for the commit */
	M_HAS,          /* look up k<id>: sets found */
};

struct tjob {
	struct hl_store_job job;
	int id;
	enum mode mode;
	int done_calls;
	int status;
	int found;
};

/* Completion log of the current test: job ids in done order. */
static int *done_order;
static int done_count, done_cap;

static void reset_log(int cap)
{
	free(done_order);
	done_order = calloc((size_t)cap, sizeof(*done_order));
	assert_non_null(done_order);
	done_count = 0;
	done_cap = cap;
}

/* The gate M_BLOCK waits at, opened by the test thread. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open, gate_entered;

/* Fault injection (see the VFS below), armed on the writer thread. */
enum fault { FAULT_NONE, FAULT_WRITE_FULL, FAULT_FSYNC };
static _Atomic int fault_armed;
static int fault_kind;
static _Atomic int commit_hook_fired;

static int fail_commit_once(void *arg)
{
	(void)arg;
	/* Non-zero turns the COMMIT into a rollback. */
	return atomic_exchange(&commit_hook_fired, 1) == 0;
}

static void key_of(char *buf, size_t cap, int id)
{
	snprintf(buf, cap, "k%d", id);
}

/* Inserts k<id>=v through the store's statement. Returns an SQLite code. */
static int put(sqlite3_stmt *const *stmts, int id)
{
	char key[32];

	key_of(key, sizeof(key), id);
	sqlite3_bind_text(stmts[HL_STMT_META_PUT], 1, key, -1,
			  SQLITE_TRANSIENT);
	sqlite3_bind_text(stmts[HL_STMT_META_PUT], 2, "v", -1, SQLITE_STATIC);
	return sqlite3_step(stmts[HL_STMT_META_PUT]);
}

/* Runs on the writer thread: no cmocka asserts here. */
static int tjob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct tjob *t = hl_container_of(job, struct tjob, job);
	sqlite3_stmt *get = stmts[HL_STMT_META_GET];
	sqlite3_stmt *putst = stmts[HL_STMT_META_PUT];
	char key[32];
	int rc;

	switch (t->mode) {
	case M_PUT:
		return hl_store_sqlite_status(put(stmts, t->id));
	case M_PUT_FAIL:
		if (put(stmts, t->id) != SQLITE_DONE)
			return HL_ESTORE;
		return HL_EINVAL;
	case M_NOT_NULL:
		key_of(key, sizeof(key), t->id);
		sqlite3_bind_text(putst, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_null(putst, 2);
		return hl_store_sqlite_status(sqlite3_step(putst));
	case M_BLOCK:
		pthread_mutex_lock(&gate_mu);
		gate_entered = true;
		pthread_cond_broadcast(&gate_cv);
		while (!gate_open)
			pthread_cond_wait(&gate_cv, &gate_mu);
		pthread_mutex_unlock(&gate_mu);
		return 0;
	case M_HOOK_FAIL:
		atomic_store(&commit_hook_fired, 0);
		sqlite3_commit_hook(db, fail_commit_once, NULL);
		return hl_store_sqlite_status(put(stmts, t->id));
	case M_GET_EARLY:
		key_of(key, sizeof(key), t->id);
		sqlite3_bind_text(get, 1, key, -1, SQLITE_TRANSIENT);
		return sqlite3_step(get) == SQLITE_ROW ? 0 : HL_ENOTFOUND;
	case M_BIND_ONLY:
		key_of(key, sizeof(key), t->id);
		sqlite3_bind_text(putst, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(putst, 2, "stale", -1, SQLITE_STATIC);
		return 0;
	case M_PUT_KEY_ONLY:
		key_of(key, sizeof(key), t->id);
		sqlite3_bind_text(putst, 1, key, -1, SQLITE_TRANSIENT);
		return hl_store_sqlite_status(sqlite3_step(putst));
	case M_FK_DEFERRED:
		rc = sqlite3_exec(db, "INSERT INTO child(parent) VALUES(424242)",
				  NULL, NULL, NULL);
		return hl_store_sqlite_status(rc);
	case M_ARM_FAULT:
		rc = put(stmts, t->id);
		atomic_store(&fault_armed, 1);
		return hl_store_sqlite_status(rc);
	case M_HAS:
		key_of(key, sizeof(key), t->id);
		sqlite3_bind_text(get, 1, key, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(get);
		t->found = rc == SQLITE_ROW;
		return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : HL_ESTORE;
	}
	return HL_EINVAL;
}

static void tjob_done(struct hl_store_job *job, int status)
{
	struct tjob *t = hl_container_of(job, struct tjob, job);

	t->done_calls++;
	t->status = status;
	if (done_count < done_cap)
		done_order[done_count] = t->id;
	done_count++;
}

static void tjob_init(struct tjob *t, int id, enum mode mode)
{
	memset(t, 0, sizeof(*t));
	t->job.exec = tjob_exec;
	t->job.done = tjob_done;
	t->id = id;
	t->mode = mode;
}

/* Runs the loop until done_count reaches target. */
static void run_until(uv_loop_t *loop, int target)
{
	while (done_count < target)
		uv_run(loop, UV_RUN_ONCE);
}

/* Submits a job that holds the writer inside its batch until
 * unblock_writer(), and returns once the writer is holding. Jobs submitted
 * meanwhile form the next batch, in order. */
static void block_writer(struct hl_store *st, struct tjob *blocker, int id)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = false;
	gate_entered = false;
	pthread_mutex_unlock(&gate_mu);
	tjob_init(blocker, id, M_BLOCK);
	assert_int_equal(hl_store_submit(st, &blocker->job), 0);
	pthread_mutex_lock(&gate_mu);
	while (!gate_entered)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void unblock_writer(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = true;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

/* The store and loop a test left open when an assert failed (longjmp):
 * test_teardown closes them, so the writer thread cannot outlive the test.
 * Tests keep their store, loop and jobs in static storage for this. */
static struct hl_store *live_st;
static uv_loop_t *live_loop;

static void open_store(struct hl_store *st, uv_loop_t *loop, const char *path,
		       const struct hl_store_opts *opts)
{
	char err[512];
	int rc;

	assert_int_equal(uv_loop_init(loop), 0);
	live_loop = loop;
	live_st = st;
	rc = hl_store_open(st, loop, path, opts, err, sizeof(err));
	if (rc != 0)
		fail_msg("hl_store_open: %s (%s)", hl_strerror(rc), err);
	assert_int_equal(hl_store_ping(st), 0);
}

/* Closes the store and checks the loop ends with no handle left. */
static void close_store(struct hl_store *st, uv_loop_t *loop)
{
	hl_store_close(st);
	live_st = NULL;
	assert_int_equal(hl_store_ping(st), HL_ECLOSED);
	assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(loop), 0);
	live_loop = NULL;
}

/* ---- tests -------------------------------------------------------------- */

enum { N_MANY = 10000 };

static void test_group_commit_many_in_order(void **state)
{
	struct hl_store_stats stats;
	static struct hl_store st;
	struct tjob *jobs;
	char path[4200], key[32];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "many");
	open_store(&st, &loop, path, NULL);
	jobs = calloc(N_MANY, sizeof(*jobs));
	assert_non_null(jobs);
	reset_log(N_MANY);
	for (int i = 0; i < N_MANY; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	/* Never from inside submit. */
	assert_int_equal(done_count, 0);
	run_until(&loop, N_MANY);
	for (int i = 0; i < N_MANY; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, 0);
		assert_int_equal(done_order[i], i);
	}
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.jobs_submitted, N_MANY);
	assert_int_equal(stats.jobs_committed, N_MANY);
	assert_int_equal(stats.jobs_failed, 0);
	assert_int_equal(stats.commit_failures, 0);
	assert_int_equal(stats.queued, 0);
	assert_true(stats.batches < N_MANY);
	assert_true(stats.max_batch > 1);
	assert_true(stats.max_batch <= 4096);
	close_store(&st, &loop);
	for (int i = 0; i < N_MANY; i++)
		assert_int_equal(jobs[i].done_calls, 1);

	db = plain_open(path);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM meta"), N_MANY);
	for (int i = 0; i < N_MANY; i += 997) {
		key_of(key, sizeof(key), i);
		assert_int_equal(plain_has_key(db, key), 1);
	}
	sqlite3_close(db);
	free(jobs);
}

static void test_batch_max_is_respected(void **state)
{
	struct hl_store_opts o = {.batch_max = 7};
	struct hl_store_stats stats;
	static struct tjob blocker, jobs[50];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "batchmax");
	open_store(&st, &loop, path, &o);
	reset_log(64);
	block_writer(&st, &blocker, 1000);
	for (int i = 0; i < 50; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	unblock_writer();
	run_until(&loop, 51);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.max_batch, 7);
	assert_int_equal(stats.batches, 1 + (50 + 6) / 7);
	for (int i = 0; i < 50; i++)
		assert_int_equal(done_order[i + 1], i);
	close_store(&st, &loop);
}

/* Runs [blocker] then the given modes (ids base..base+n-1) in `batches`
 * batches (1: together; n: one each, as the store does for a while after a
 * failed commit), and returns with every job done. */
static void run_batches_from(struct hl_store *st, uv_loop_t *loop,
			     struct tjob *jobs, const enum mode *modes, int n,
			     int base, int batches)
{
	struct hl_store_stats before, after;
	static struct tjob blocker;

	reset_log(n + 1);
	hl_store_stats(st, &before);
	block_writer(st, &blocker, 1000);
	for (int i = 0; i < n; i++) {
		tjob_init(&jobs[i], base + i, modes[i]);
		assert_int_equal(hl_store_submit(st, &jobs[i].job), 0);
	}
	unblock_writer();
	run_until(loop, n + 1);
	assert_int_equal(blocker.status, 0);
	for (int i = 0; i < n; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(done_order[i + 1], base + i);
	}
	/* Really that many batches after the blocker's. */
	hl_store_stats(st, &after);
	assert_int_equal(after.batches, before.batches + 1 + (uint64_t)batches);
}

static void run_batch_from(struct hl_store *st, uv_loop_t *loop,
			   struct tjob *jobs, const enum mode *modes, int n,
			   int base)
{
	run_batches_from(st, loop, jobs, modes, n, base, 1);
}

static void run_one_batch(struct hl_store *st, uv_loop_t *loop,
			  struct tjob *jobs, const enum mode *modes, int n)
{
	run_batch_from(st, loop, jobs, modes, n, 0);
}

/* Looks k<id> up through the store (so while it is still open). */
static int store_has(struct hl_store *st, uv_loop_t *loop, int id)
{
	static struct tjob t;
	int target = done_count + 1;

	tjob_init(&t, id, M_HAS);
	assert_int_equal(hl_store_submit(st, &t.job), 0);
	run_until(loop, target);
	assert_int_equal(t.status, 0);
	return t.found;
}

static void test_failing_job_rolls_back_only_itself(void **state)
{
	static const enum mode modes[] = {M_PUT, M_PUT_FAIL, M_PUT};
	struct hl_store_stats stats;
	static struct tjob jobs[3];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "rollback");
	open_store(&st, &loop, path, NULL);
	run_one_batch(&st, &loop, jobs, modes, 3);
	assert_int_equal(jobs[0].status, 0);
	assert_int_equal(jobs[1].status, HL_EINVAL);
	assert_int_equal(jobs[2].status, 0);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.batches, 2);
	assert_int_equal(stats.max_batch, 3);
	assert_int_equal(stats.jobs_committed, 3);
	assert_int_equal(stats.jobs_failed, 1);
	close_store(&st, &loop);

	db = plain_open(path);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k1"), 0);
	assert_int_equal(plain_has_key(db, "k2"), 1);
	sqlite3_close(db);
}

static void test_constraint_violation(void **state)
{
	static const enum mode modes[] = {M_PUT, M_NOT_NULL, M_PUT};
	static struct tjob jobs[3];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "constraint");
	open_store(&st, &loop, path, NULL);
	run_one_batch(&st, &loop, jobs, modes, 3);
	assert_int_equal(jobs[0].status, 0);
	assert_int_equal(jobs[1].status, HL_ECONSTRAINT);
	assert_int_equal(jobs[2].status, 0);
	close_store(&st, &loop);

	db = plain_open(path);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k1"), 0);
	assert_int_equal(plain_has_key(db, "k2"), 1);
	sqlite3_close(db);
}

static void test_deferred_fk_charged_to_its_job(void **state)
{
	struct hl_migration migs[64];
	struct hl_store_opts o;
	static const enum mode modes[] = {M_PUT, M_FK_DEFERRED, M_PUT};
	struct hl_store_stats stats;
	static struct tjob jobs[3];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	/* The embedded schema (the store's statements need its tables), then
	 * a deferred foreign key of our own. */
	assert_true(hl_migrations_count < sizeof(migs) / sizeof(migs[0]));
	for (size_t i = 0; i < hl_migrations_count; i++)
		migs[i] = hl_migrations[i];
	migs[hl_migrations_count] = (struct hl_migration){
		hl_migrations[hl_migrations_count - 1].version + 1, "fk",
		"CREATE TABLE parent(id INTEGER PRIMARY KEY);"
		"CREATE TABLE child(parent INTEGER REFERENCES parent(id) "
		"DEFERRABLE INITIALLY DEFERRED);"};
	memset(&o, 0, sizeof(o));
	o.migrations = migs;
	o.migrations_count = hl_migrations_count + 1;
	make_path(path, sizeof(path), "fk");
	open_store(&st, &loop, path, &o);
	run_one_batch(&st, &loop, jobs, modes, 3);
	assert_int_equal(jobs[0].status, 0);
	assert_int_equal(jobs[1].status, HL_ECONSTRAINT);
	assert_int_equal(jobs[2].status, 0);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 0);
	close_store(&st, &loop);

	db = plain_open(path);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k2"), 1);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM child"), 0);
	sqlite3_close(db);
}

static void test_statements_reset_between_jobs(void **state)
{
	/* k0 exists first. In one batch: a job leaves META_GET mid-row;
	 * another binds and steps META_PUT with a value; the next binds only
	 * the key and must see NULL for the value (NOT NULL fails), not the
	 * previous job's; the last binds META_PUT and never steps it. In the
	 * batch after, a job binding only the key must not get that value
	 * either. */
	static const enum mode first[] = {M_PUT};
	static const enum mode modes[] = {M_GET_EARLY, M_PUT, M_PUT,
					  M_PUT_KEY_ONLY, M_PUT, M_BIND_ONLY};
	static const enum mode last[] = {M_PUT_KEY_ONLY};
	struct hl_store_stats stats;
	static struct tjob jobs[6];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "reset");
	open_store(&st, &loop, path, NULL);
	run_one_batch(&st, &loop, jobs, first, 1);
	run_one_batch(&st, &loop, jobs, modes, 6);
	assert_int_equal(jobs[0].status, 0);
	assert_int_equal(jobs[1].status, 0);
	assert_int_equal(jobs[2].status, 0);
	assert_int_equal(jobs[3].status, HL_ECONSTRAINT);
	assert_int_equal(jobs[4].status, 0);
	assert_int_equal(jobs[5].status, 0);
	run_batch_from(&st, &loop, jobs, last, 1, 6);
	assert_int_equal(jobs[0].status, HL_ECONSTRAINT);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 0);
	close_store(&st, &loop);

	db = plain_open(path);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k1"), 1);
	assert_int_equal(plain_has_key(db, "k2"), 1);
	assert_int_equal(plain_has_key(db, "k3"), 0);
	assert_int_equal(plain_has_key(db, "k4"), 1);
	assert_int_equal(plain_has_key(db, "k5"), 0);
	assert_int_equal(plain_has_key(db, "k6"), 0);
	sqlite3_close(db);
}

static void test_queue_full(void **state)
{
	struct hl_store_opts o = {.queue_max = 4};
	struct hl_store_stats stats;
	static struct tjob blocker, jobs[6];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "full");
	open_store(&st, &loop, path, &o);
	reset_log(8);
	block_writer(&st, &blocker, 1000);
	for (int i = 0; i < 4; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	tjob_init(&jobs[4], 4, M_PUT);
	assert_int_equal(hl_store_submit(&st, &jobs[4].job), HL_EFULL);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.queued, 4);
	unblock_writer();
	run_until(&loop, 5);
	/* Room again. */
	tjob_init(&jobs[5], 5, M_PUT);
	assert_int_equal(hl_store_submit(&st, &jobs[5].job), 0);
	run_until(&loop, 6);
	close_store(&st, &loop);
	assert_int_equal(jobs[4].done_calls, 0);
	assert_int_equal(jobs[5].status, 0);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.jobs_submitted, 6);
}

static void test_closed_and_never_opened(void **state)
{
	struct hl_store_stats stats;
	static struct hl_store st;
	static struct tjob t;
	char path[4200];
	static uv_loop_t loop;

	(void)state;
	/* A zeroed, never-opened store. */
	memset(&st, 0, sizeof(st));
	tjob_init(&t, 0, M_PUT);
	assert_int_equal(hl_store_submit(&st, &t.job), HL_ECLOSED);
	assert_int_equal(hl_store_ping(&st), HL_ECLOSED);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.jobs_submitted, 0);
	hl_store_close(&st);

	make_path(path, sizeof(path), "closed");
	open_store(&st, &loop, path, NULL);
	reset_log(4);
	/* Invalid jobs are refused, done never called. */
	t.job.exec = NULL;
	assert_int_equal(hl_store_submit(&st, &t.job), HL_EINVAL);
	hl_store_close(&st);
	tjob_init(&t, 0, M_PUT);
	assert_int_equal(hl_store_submit(&st, &t.job), HL_ECLOSED);
	hl_store_close(&st);
	close_store(&st, &loop);
	assert_int_equal(t.done_calls, 0);
	assert_int_equal(done_count, 0);
}

static void test_close_commits_pending(void **state)
{
	enum { N = 1000 };
	struct hl_store_stats stats;
	static struct hl_store st;
	struct tjob *jobs;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "pending");
	open_store(&st, &loop, path, NULL);
	jobs = calloc(N, sizeof(*jobs));
	assert_non_null(jobs);
	reset_log(N);
	for (int i = 0; i < N; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	hl_store_close(&st);
	/* Every done ran inside close, in order, committed. */
	assert_int_equal(done_count, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_int_equal(jobs[i].status, 0);
		assert_int_equal(done_order[i], i);
	}
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.jobs_committed, N);
	close_store(&st, &loop);
	free(jobs);

	db = plain_open(path);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM meta"), N);
	sqlite3_close(db);
}

/* Chained jobs: each done submits the next; job 5's done closes the store,
 * and the rest are still answered, in order, inside that close. */
static struct hl_store *chain_store;
static struct tjob chain_jobs[20];
static int chain_submit_status[20];

static void chain_done(struct hl_store_job *job, int status)
{
	struct tjob *t = hl_container_of(job, struct tjob, job);

	tjob_done(job, status);
	if (t->id + 1 < 20) {
		tjob_init(&chain_jobs[t->id + 1], t->id + 1, M_PUT);
		chain_jobs[t->id + 1].job.done = chain_done;
		chain_submit_status[t->id + 1] =
			hl_store_submit(chain_store, &chain_jobs[t->id + 1].job);
	}
	if (t->id == 5)
		hl_store_close(chain_store);
}

static void test_done_may_submit_and_close(void **state)
{
	static struct hl_store st;
	static struct tjob extra[3];
	char path[4200];
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "chain");
	open_store(&st, &loop, path, NULL);
	chain_store = &st;
	reset_log(32);
	/* Three more queued behind job 0 so that close has work left. */
	tjob_init(&chain_jobs[0], 0, M_PUT);
	chain_jobs[0].job.done = chain_done;
	assert_int_equal(hl_store_submit(&st, &chain_jobs[0].job), 0);
	run_until(&loop, 1);
	for (int i = 0; i < 3; i++) {
		tjob_init(&extra[i], 100 + i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &extra[i].job), 0);
	}
	while (hl_store_ping(&st) == 0)
		uv_run(&loop, UV_RUN_ONCE);
	/* Jobs 1..5 ran; 6 was submitted by 5's done before the close, so it
	 * committed too; 7 was refused. */
	for (int i = 1; i <= 6; i++) {
		assert_int_equal(chain_submit_status[i], 0);
		assert_int_equal(chain_jobs[i].done_calls, 1);
		assert_int_equal(chain_jobs[i].status, 0);
	}
	assert_int_equal(chain_submit_status[7], HL_ECLOSED);
	assert_int_equal(chain_jobs[7].done_calls, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(extra[i].done_calls, 1);
		assert_int_equal(extra[i].status, 0);
	}
	/* Submission order: 0, 1, extras and the rest of the chain
	 * interleaved as submitted; ids 0..6 appear in order. */
	for (int i = 1, last = -1; i < done_count; i++) {
		if (done_order[i] < 100) {
			assert_true(done_order[i] > last);
			last = done_order[i];
		}
	}
	assert_int_equal(done_count, 7 + 3);
	close_store(&st, &loop);
}

static void test_commit_hook_failure_fails_whole_batch(void **state)
{
	static const enum mode modes[] = {M_PUT, M_HOOK_FAIL, M_PUT};
	static const enum mode after[] = {M_PUT};
	struct hl_store_stats stats;
	static struct tjob jobs[3];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "hook");
	open_store(&st, &loop, path, NULL);
	run_one_batch(&st, &loop, jobs, modes, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jobs[i].status, HL_ESTORE);
	assert_int_equal(atomic_load(&commit_hook_fired), 1);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 1);
	assert_int_equal(stats.jobs_failed, 3);

	/* The next batch commits normally (ids reuse 0: k0 must be absent
	 * before, so look first). */
	assert_int_equal(store_has(&st, &loop, 0), 0);
	assert_int_equal(store_has(&st, &loop, 1), 0);
	run_one_batch(&st, &loop, jobs, after, 1);
	assert_int_equal(jobs[0].status, 0);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 1);
	close_store(&st, &loop);

	db = plain_open(path);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k1"), 0);
	assert_int_equal(plain_has_key(db, "k2"), 0);
	sqlite3_close(db);
}

static void test_locked_by_other_connection_then_recovers(void **state)
{
	struct hl_store_opts o = {.busy_timeout_ms = 20};
	struct hl_store_stats stats;
	static struct tjob jobs[5];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *other;

	(void)state;
	make_path(path, sizeof(path), "busy");
	open_store(&st, &loop, path, &o);
	other = plain_open(path);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL,
				      NULL), SQLITE_OK);
	reset_log(8);
	for (int i = 0; i < 3; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	run_until(&loop, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jobs[i].status, HL_ESTORE);
	hl_store_stats(&st, &stats);
	assert_true(stats.commit_failures >= 1);
	assert_int_equal(hl_store_ping(&st), 0);

	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	for (int i = 3; i < 5; i++) {
		tjob_init(&jobs[i], i, M_PUT);
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	run_until(&loop, 5);
	assert_int_equal(jobs[3].status, 0);
	assert_int_equal(jobs[4].status, 0);
	close_store(&st, &loop);

	assert_int_equal(plain_has_key(other, "k0"), 0);
	assert_int_equal(plain_has_key(other, "k3"), 1);
	assert_int_equal(plain_has_key(other, "k4"), 1);
	sqlite3_close(other);
}

/* ---- a VFS that fails WAL writes or syncs on demand ---------------------- */

struct ffile {
	sqlite3_file base;   /* our methods */
	sqlite3_file *real;  /* the wrapped file, allocated right after */
	int is_wal;          /* faults hit only the WAL */
	int pad;
};

static sqlite3_vfs *real_vfs;

#define REAL(f) (((struct ffile *)(void *)(f))->real)

static int f_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}

static int f_write(sqlite3_file *f, const void *buf, int amt,
		   sqlite3_int64 off)
{
	struct ffile *p = (struct ffile *)(void *)f;

	if (p->is_wal && atomic_load(&fault_armed) &&
	    fault_kind == FAULT_WRITE_FULL)
		return SQLITE_FULL;
	return p->real->pMethods->xWrite(p->real, buf, amt, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
	struct ffile *p = (struct ffile *)(void *)f;

	if (p->is_wal && atomic_load(&fault_armed) &&
	    fault_kind == FAULT_FSYNC)
		return SQLITE_IOERR_FSYNC;
	return p->real->pMethods->xSync(p->real, flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int f_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int f_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int f_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
		     void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

static int f_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods f_methods = {
	3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock,
	f_unlock, f_check_reserved, f_fcntl, f_sector, f_devchar, f_shm_map,
	f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch, f_unfetch,
};

static int v_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		  int flags, int *out_flags)
{
	struct ffile *p = (struct ffile *)(void *)f;
	int rc;

	(void)vfs;
	p->real = (sqlite3_file *)(void *)(p + 1);
	p->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
	rc = real_vfs->xOpen(real_vfs, name, p->real, flags, out_flags);
	p->base.pMethods = p->real->pMethods ? &f_methods : NULL;
	return rc;
}

static int v_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	(void)vfs;
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int v_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int v_full(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int v_random(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xRandomness(real_vfs, n, out);
}

static int v_sleep(sqlite3_vfs *vfs, int us)
{
	(void)vfs;
	return real_vfs->xSleep(real_vfs, us);
}

static int v_time(sqlite3_vfs *vfs, double *out)
{
	(void)vfs;
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int v_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	return real_vfs->xGetLastError(real_vfs, n, out);
}

static int v_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	(void)vfs;
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs faulty_vfs;

/* Makes the faulty VFS the default, so the store opens through it. */
static void faulty_vfs_install(void)
{
	real_vfs = sqlite3_vfs_find(NULL);
	assert_non_null(real_vfs);
	memset(&faulty_vfs, 0, sizeof(faulty_vfs));
	faulty_vfs.iVersion = 2;
	faulty_vfs.szOsFile = (int)sizeof(struct ffile) + real_vfs->szOsFile;
	faulty_vfs.mxPathname = real_vfs->mxPathname;
	faulty_vfs.zName = "hl_faulty";
	faulty_vfs.xOpen = v_open;
	faulty_vfs.xDelete = v_delete;
	faulty_vfs.xAccess = v_access;
	faulty_vfs.xFullPathname = v_full;
	faulty_vfs.xRandomness = v_random;
	faulty_vfs.xSleep = v_sleep;
	faulty_vfs.xCurrentTime = v_time;
	faulty_vfs.xGetLastError = v_last_error;
	faulty_vfs.xCurrentTimeInt64 = v_time64;
	assert_int_equal(sqlite3_vfs_register(&faulty_vfs, 1), SQLITE_OK);
}

static void faulty_vfs_remove(void)
{
	sqlite3_vfs_unregister(&faulty_vfs);
	assert_ptr_equal(sqlite3_vfs_find(NULL), real_vfs);
}

/* A batch whose COMMIT hits an I/O fault: every job of it fails with
 * HL_ESTORE, the writer keeps going, and once the fault is gone the next
 * batch commits; the database stays sound. */
static void commit_fault_case(int kind, const char *name)
{
	static const enum mode modes[] = {M_PUT, M_ARM_FAULT, M_PUT};
	static const enum mode after[] = {M_PUT, M_PUT};
	struct hl_store_stats stats;
	static struct tjob jobs[3];
	static struct hl_store st;
	char path[4200];
	static uv_loop_t loop;
	sqlite3 *db;

	faulty_vfs_install();
	fault_kind = kind;
	atomic_store(&fault_armed, 0);
	make_path(path, sizeof(path), name);
	open_store(&st, &loop, path, NULL);
	run_one_batch(&st, &loop, jobs, modes, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(jobs[i].status, HL_ESTORE);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 1);
	assert_int_equal(hl_store_ping(&st), 0);

	/* Space returns. */
	atomic_store(&fault_armed, 0);
	assert_int_equal(store_has(&st, &loop, 0), 0);
	assert_int_equal(store_has(&st, &loop, 1), 0);
	/* Still just after a failed commit: each job in a batch of its own,
	 * so that one that cannot be stored fails alone. */
	run_batches_from(&st, &loop, jobs, after, 2, 0, 2);
	assert_int_equal(jobs[0].status, 0);
	assert_int_equal(jobs[1].status, 0);
	assert_int_equal(store_has(&st, &loop, 1), 1);
	hl_store_stats(&st, &stats);
	assert_int_equal(stats.commit_failures, 1);
	close_store(&st, &loop);
	faulty_vfs_remove();

	db = plain_open(path);
	hl_test_assert_integrity(db);
	assert_int_equal(plain_has_key(db, "k0"), 1);
	assert_int_equal(plain_has_key(db, "k1"), 1);
	assert_int_equal(plain_has_key(db, "k2"), 0);
	sqlite3_close(db);
}

static void test_disk_full_on_commit_recovers(void **state)
{
	(void)state;
	commit_fault_case(FAULT_WRITE_FULL, "diskfull");
}

static void test_fsync_error_on_commit_recovers(void **state)
{
	(void)state;
	commit_fault_case(FAULT_FSYNC, "fsync");
}

/* ---- crash durability --------------------------------------------------- */

enum { CRASH_INFLIGHT = 64, CRASH_ACKS = 3000, CRASH_MAX = 1 << 20 };

static struct hl_store crash_st;
static struct tjob crash_jobs[CRASH_INFLIGHT];
static int crash_next_id, crash_fd;

static void crash_done(struct hl_store_job *job, int status)
{
	struct tjob *t = hl_container_of(job, struct tjob, job);
	uint32_t id = (uint32_t)t->id;

	if (status != 0)
		_exit(10);
	/* Acknowledged: tell the parent (8 bytes or fewer: atomic). */
	if (write(crash_fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
		_exit(11);
	tjob_init(t, crash_next_id++, M_PUT);
	t->job.done = crash_done;
	if (hl_store_submit(&crash_st, &t->job) != 0)
		_exit(12);
}

/* The child: keeps CRASH_INFLIGHT inserts in flight until it is killed. */
static void crash_child(const char *path, int fd)
{
	char err[512];
	static uv_loop_t loop;

	crash_fd = fd;
	if (uv_loop_init(&loop) != 0 ||
	    hl_store_open(&crash_st, &loop, path, NULL, err, sizeof(err)) != 0)
		_exit(13);
	for (int i = 0; i < CRASH_INFLIGHT; i++) {
		tjob_init(&crash_jobs[i], crash_next_id++, M_PUT);
		crash_jobs[i].job.done = crash_done;
		if (hl_store_submit(&crash_st, &crash_jobs[i].job) != 0)
			_exit(14);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	_exit(15);
}

static void test_acknowledged_survive_sigkill(void **state)
{
	struct pollfd pfd;
	unsigned char *acked;
	uint32_t ids[256];
	char path[4200], key[32];
	static struct hl_store st;
	static uv_loop_t loop;
	size_t have = 0;
	int fds[2], status, nacks = 0;
	bool killed = false;
	sqlite3 *db;
	pid_t pid;
	ssize_t r;

	(void)state;
	make_path(path, sizeof(path), "crash");
	acked = calloc(CRASH_MAX, 1);
	assert_non_null(acked);
	assert_int_equal(pipe(fds), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		crash_child(path, fds[1]);
	}
	close(fds[1]);

	for (;;) {
		pfd.fd = fds[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 30000) <= 0) {
			kill(pid, SIGKILL);
			fail_msg("child stalled after %d acks", nacks);
		}
		r = read(fds[0], (char *)ids + have, sizeof(ids) - have);
		if (r < 0 && errno == EINTR)
			continue;
		assert_true(r >= 0);
		if (r == 0)
			break;
		have += (size_t)r;
		for (size_t i = 0; i + 4 <= have; i += 4) {
			assert_true(ids[i / 4] < CRASH_MAX);
			acked[ids[i / 4]] = 1;
			nacks++;
		}
		/* Records are 4 bytes and written whole. */
		assert_int_equal(have % 4, 0);
		have = 0;
		if (!killed && nacks >= CRASH_ACKS) {
			/* Mid-stream: the writer is always busy committing. */
			assert_int_equal(kill(pid, SIGKILL), 0);
			killed = true;
		}
	}
	close(fds[0]);
	assert_true(killed);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	db = plain_open(path);
	hl_test_assert_integrity(db);
	for (uint32_t i = 0; i < CRASH_MAX; i++) {
		if (!acked[i])
			continue;
		key_of(key, sizeof(key), (int)i);
		assert_int_equal(plain_has_key(db, key), 1);
	}
	/* Some in-flight inserts may have committed unacknowledged; never
	 * the other way round. */
	assert_true(hl_test_query_int(db, "SELECT count(*) FROM meta") >= nacks);
	sqlite3_close(db);

	/* And the store itself opens it again. */
	open_store(&st, &loop, path, NULL);
	close_store(&st, &loop);
	free(acked);
}

static void test_sqlite_status_mapping(void **state)
{
	(void)state;
	assert_int_equal(hl_store_sqlite_status(SQLITE_OK), 0);
	assert_int_equal(hl_store_sqlite_status(SQLITE_DONE), 0);
	assert_int_equal(hl_store_sqlite_status(SQLITE_ROW), 0);
	assert_int_equal(hl_store_sqlite_status(SQLITE_CONSTRAINT_UNIQUE),
			 HL_ECONSTRAINT);
	assert_int_equal(hl_store_sqlite_status(SQLITE_NOMEM), HL_ENOMEM);
	assert_int_equal(hl_store_sqlite_status(SQLITE_IOERR_FSYNC),
			 HL_ESTORE);
	assert_int_equal(hl_store_sqlite_status(SQLITE_BUSY), HL_ESTORE);
}

static int test_teardown(void **state)
{
	(void)state;
	/* After a failed assert: let a blocked writer go, then close. */
	unblock_writer();
	if (live_st)
		hl_store_close(live_st);
	if (live_loop) {
		uv_run(live_loop, UV_RUN_DEFAULT);
		uv_loop_close(live_loop);
	}
	live_st = NULL;
	live_loop = NULL;
	free(done_order);
	done_order = NULL;
	done_count = done_cap = 0;
	return 0;
}

#define T(f) cmocka_unit_test_teardown(f, test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_group_commit_many_in_order),
		T(test_batch_max_is_respected),
		T(test_failing_job_rolls_back_only_itself),
		T(test_constraint_violation),
		T(test_deferred_fk_charged_to_its_job),
		T(test_statements_reset_between_jobs),
		T(test_queue_full),
		T(test_closed_and_never_opened),
		T(test_close_commits_pending),
		T(test_done_may_submit_and_close),
		T(test_commit_hook_failure_fails_whole_batch),
		T(test_locked_by_other_connection_then_recovers),
		T(test_disk_full_on_commit_recovers),
		T(test_fsync_error_on_commit_recovers),
		T(test_acknowledged_survive_sigkill),
		T(test_sqlite_status_mapping),
	};

	return cmocka_run_group_tests(tests, group_setup, hl_test_group_teardown);
}
