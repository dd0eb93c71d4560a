/* test_migrations.c: schema migrations and connection settings of store.c:
 * fresh and repeated opens, custom lists, a newer database refused untouched,
 * a failing migration rolled back whole, bad lists, and the writer
 * connection's journal mode, synchronous level and foreign keys.
 *
 * The store prepares statements on the embedded schema's tables at open, so
 * every custom list that must open starts with the embedded migrations
 * (with_embedded) and adds the test's own above them, from version OWN. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "store.h"
#include "testutil.h"

static void make_path(char *buf, size_t cap, const char *name)
{
	hl_test_path(buf, cap, name);
}

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("migrations", HL_LOG_WARN);
}

/* The newest embedded schema version. */
static int newest_version(void)
{
	return hl_migrations[hl_migrations_count - 1].version;
}

/* Versions of the tests' own migrations: OWN + n, above every embedded
 * one (checked by with_embedded). */
enum { OWN = 1000, MIG_MAX = 64 };

/* Writes the embedded migrations followed by own[0..n-1] into out (MIG_MAX
 * entries) and returns how many that is. */
static size_t with_embedded(struct hl_migration *out,
			    const struct hl_migration *own, size_t n)
{
	assert_true(hl_migrations_count + n <= MIG_MAX);
	for (size_t i = 0; i < hl_migrations_count; i++)
		out[i] = hl_migrations[i];
	for (size_t i = 0; i < n; i++) {
		assert_true(own[i].version > newest_version());
		out[hl_migrations_count + i] = own[i];
	}
	return hl_migrations_count + n;
}

/* The store and loop a test left open when an assert failed (longjmp):
 * test_teardown closes them, so the writer thread cannot outlive the test.
 * Tests keep their store and loop in static storage for this. */
static struct hl_store *live_st;
static uv_loop_t *live_loop;

static int test_teardown(void **state)
{
	(void)state;
	if (live_st)
		hl_store_close(live_st);
	if (live_loop) {
		uv_run(live_loop, UV_RUN_DEFAULT);
		uv_loop_close(live_loop);
	}
	live_st = NULL;
	live_loop = NULL;
	return 0;
}

/* Opens path with plain SQLite, outside the store. */
static sqlite3 *plain_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	return db;
}

static int path_int(const char *path, const char *sql)
{
	sqlite3 *db = plain_open(path);
	int v = (int)hl_test_query_int(db, sql);

	sqlite3_close(db);
	return v;
}

static int table_exists(const char *path, const char *name)
{
	char sql[200];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
		 "name='%s'", name);
	return path_int(path, sql);
}

/* Opens a store on a fresh loop (no jobs), for migration tests. */
static int open_store(struct hl_store *st, uv_loop_t *loop, const char *path,
		      const struct hl_migration *m, size_t n, char *err,
		      size_t errlen)
{
	struct hl_store_opts o;

	memset(&o, 0, sizeof(o));
	o.migrations = m;
	o.migrations_count = n;
	assert_int_equal(uv_loop_init(loop), 0);
	live_loop = loop;
	live_st = st;
	return hl_store_open(st, loop, path, m ? &o : NULL, err, errlen);
}

/* Closes the store and checks the loop ends with no handle left. */
static void close_store(struct hl_store *st, uv_loop_t *loop)
{
	hl_store_close(st);
	hl_store_close(st); /* idempotent */
	live_st = NULL;
	assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(loop), 0);
	live_loop = NULL;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void test_fresh_db_gets_newest_version_and_tables(void **state)
{
	static const char *const tables[] = {
		"meta", "staff", "staff_session", "audit", "org_key",
	};
	char path[4200], wal[4300], err[512];
	static struct hl_store st;
	struct stat sb;
	static uv_loop_t loop;

	(void)state;
	/* schema/0001_init.sql, 0002_staff.sql, ... in order. */
	assert_true(hl_migrations_count >= 2);
	assert_int_equal(hl_migrations[0].version, 1);
	assert_string_equal(hl_migrations[0].name, "init");
	assert_int_equal(hl_migrations[1].version, 2);
	assert_string_equal(hl_migrations[1].name, "staff");
	make_path(path, sizeof(path), "fresh");
	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), 0);
	assert_int_equal(st.schema_version, newest_version());
	/* Private files: the database and its WAL. */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	close_store(&st, &loop);

	assert_int_equal(path_int(path, "PRAGMA user_version"),
			 newest_version());
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		assert_int_equal(table_exists(path, tables[i]), 1);
}

static void test_reopen_is_noop(void **state)
{
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "reopen");
	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), 0);
	close_store(&st, &loop);
	db = plain_open(path);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO meta VALUES('k','v')",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), 0);
	assert_int_equal(st.schema_version, newest_version());
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"),
			 newest_version());
	assert_int_equal(path_int(path, "SELECT count(*) FROM meta"), 1);
}

static void test_custom_migrations_apply_in_order_only_pending(void **state)
{
	/* Each step depends on the one before; re-running any (the embedded
	 * ones included) would fail (CREATE TABLE without IF NOT EXISTS) or
	 * duplicate a row. */
	static const struct hl_migration own[] = {
		{OWN + 2, "t", "CREATE TABLE t(a INTEGER NOT NULL);"},
		{OWN + 5, "t_row", "INSERT INTO t VALUES(1);"},
		{OWN + 10, "t_b", "ALTER TABLE t ADD COLUMN b INTEGER;"
				  "UPDATE t SET b = a + 1;"},
	};
	struct hl_migration three[MIG_MAX];
	size_t n = with_embedded(three, own, 3);
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "custom");
	assert_int_equal(open_store(&st, &loop, path, three, n - 1, err,
				    sizeof(err)), 0);
	assert_int_equal(st.schema_version, OWN + 5);
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"), OWN + 5);
	assert_int_equal(path_int(path, "SELECT count(*) FROM t"), 1);

	assert_int_equal(open_store(&st, &loop, path, three, n, err,
				    sizeof(err)), 0);
	assert_int_equal(st.schema_version, OWN + 10);
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"), OWN + 10);
	assert_int_equal(path_int(path, "SELECT count(*) FROM t"), 1);
	assert_int_equal(path_int(path, "SELECT b FROM t"), 2);
}

static void test_newer_db_refused_untouched(void **state)
{
	char path[4200], wal[4300], err[512], supports[64];
	char *before, *after;
	size_t n_before, n_after;
	static struct hl_store st;
	struct stat sb;
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "newer");
	db = plain_open(path);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE future(x);"
				      "PRAGMA user_version=99;", NULL, NULL,
				      NULL), SQLITE_OK);
	sqlite3_close(db);
	before = read_file(path, &n_before);

	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), HL_ESCHEMA);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "schema version 99"));
	snprintf(supports, sizeof(supports), "supports (%d)",
		 newest_version());
	assert_non_null(strstr(err, supports));
	assert_non_null(strstr(err, "upgrade helplined"));
	/* Nothing to close, and the loop has no handle of ours. */
	assert_int_equal(hl_store_ping(&st), HL_ECLOSED);
	close_store(&st, &loop);

	after = read_file(path, &n_after);
	assert_int_equal(n_before, n_after);
	assert_memory_equal(before, after, n_before);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_int_not_equal(stat(wal, &sb), 0);
	assert_int_equal(path_int(path, "PRAGMA user_version"), 99);
	assert_int_equal(table_exists(path, "meta"), 0);
	free(before);
	free(after);

	/* hl_store_migrate itself says the same. */
	db = plain_open(path);
	assert_int_equal(hl_store_migrate(db, hl_migrations,
					  hl_migrations_count, err,
					  sizeof(err)), HL_ESCHEMA);
	assert_non_null(strstr(err, "99"));
	sqlite3_close(db);
}

static void test_failing_migration_rolls_back_all(void **state)
{
	static const struct hl_migration own[] = {
		{OWN + 2, "a", "CREATE TABLE a(x);"},
		{OWN + 3, "b", "CREATE TABLE b(x); INSERT INTO a VALUES(1);"},
		{OWN + 4, "broken", "CREATE TABLE c(x); CREATE TABLEX oops;"},
	};
	struct hl_migration bad[MIG_MAX];
	size_t n = with_embedded(bad, own, 3);
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;

	(void)state;
	/* On a fresh database: nothing at all is applied, not even the
	 * embedded migrations before the broken one. */
	make_path(path, sizeof(path), "broken");
	assert_int_equal(open_store(&st, &loop, path, bad, n, err,
				    sizeof(err)), HL_ESTORE);
	assert_non_null(strstr(err, "1004_broken"));
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"), 0);
	assert_int_equal(table_exists(path, "meta"), 0);
	assert_int_equal(table_exists(path, "staff"), 0);
	assert_int_equal(table_exists(path, "a"), 0);
	assert_int_equal(table_exists(path, "c"), 0);

	/* On a database at version OWN + 2: it stays there, without b. */
	assert_int_equal(open_store(&st, &loop, path, bad, n - 2, err,
				    sizeof(err)), 0);
	close_store(&st, &loop);
	assert_int_equal(open_store(&st, &loop, path, bad, n, err,
				    sizeof(err)), HL_ESTORE);
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"), OWN + 2);
	assert_int_equal(table_exists(path, "a"), 1);
	assert_int_equal(table_exists(path, "b"), 0);
	assert_int_equal(path_int(path, "SELECT count(*) FROM a"), 0);
}

static void test_migration_must_not_commit(void **state)
{
	static const struct hl_migration sneaky[] = {
		{1, "init", "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL,"
			    " value TEXT NOT NULL) STRICT; COMMIT;"},
	};
	char path[4200], err[512];
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "commit");
	db = plain_open(path);
	assert_int_equal(hl_store_migrate(db, sneaky, 1, err, sizeof(err)),
			 HL_ESTORE);
	assert_non_null(strstr(err, "0001_init"));
	assert_int_equal(hl_test_query_int(db, "PRAGMA user_version"), 0);
	sqlite3_close(db);
}

#define FAMILY_SQL "CREATE TABLE parent(id INTEGER PRIMARY KEY, n TEXT);" \
		   "CREATE TABLE child(pid INTEGER NOT NULL " \
		   "REFERENCES parent(id));" \
		   "INSERT INTO parent VALUES(1, 'a');" \
		   "INSERT INTO child VALUES(1);"

static void test_migration_may_rebuild_referenced_table(void **state)
{
	/* SQLite's 12-step table rebuild: impossible with foreign keys
	 * enforced (DROP TABLE parent would delete a referenced row). */
	static const struct hl_migration own[] = {
		{OWN + 2, "family", FAMILY_SQL},
		{OWN + 3, "rebuild",
		 "CREATE TABLE parent_new(id INTEGER PRIMARY KEY, "
		 "n TEXT NOT NULL DEFAULT '');"
		 "INSERT INTO parent_new SELECT id, coalesce(n, '') FROM parent;"
		 "DROP TABLE parent;"
		 "ALTER TABLE parent_new RENAME TO parent;"},
	};
	struct hl_migration rebuild[MIG_MAX];
	size_t n = with_embedded(rebuild, own, 2);
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "rebuild");
	assert_int_equal(open_store(&st, &loop, path, rebuild, n - 1, err,
				    sizeof(err)), 0);
	close_store(&st, &loop);
	assert_int_equal(open_store(&st, &loop, path, rebuild, n, err,
				    sizeof(err)), 0);
	close_store(&st, &loop);
	db = plain_open(path);
	assert_int_equal(hl_test_query_int(db, "PRAGMA user_version"), OWN + 3);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM "
				   "pragma_foreign_key_check"), 0);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM child JOIN "
				   "parent ON parent.id = child.pid"), 1);
	sqlite3_close(db);
}

static void test_migration_breaking_foreign_key_rolls_back(void **state)
{
	static const struct hl_migration own[] = {
		{OWN + 2, "family", FAMILY_SQL},
		{OWN + 3, "orphan", "INSERT INTO child VALUES(42);"},
	};
	struct hl_migration orphan[MIG_MAX];
	size_t n = with_embedded(orphan, own, 2);
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "orphan");
	assert_int_equal(open_store(&st, &loop, path, orphan, n, err,
				    sizeof(err)), HL_ESTORE);
	assert_non_null(strstr(err, "child"));
	assert_non_null(strstr(err, "foreign key"));
	close_store(&st, &loop);
	assert_int_equal(path_int(path, "PRAGMA user_version"), 0);
	assert_int_equal(table_exists(path, "child"), 0);
}

static void test_double_quoted_strings_rejected(void **state)
{
	/* Outside the store, SQLite would take "x" as the string 'x'. */
	static const struct hl_migration own[] = {
		{OWN + 2, "dqs", "INSERT INTO meta VALUES(\"k\", \"v\");"},
	};
	struct hl_migration dqs[MIG_MAX];
	size_t n = with_embedded(dqs, own, 1);
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;

	(void)state;
	make_path(path, sizeof(path), "dqs");
	assert_int_equal(open_store(&st, &loop, path, dqs, n, err,
				    sizeof(err)), HL_ESTORE);
	assert_non_null(strstr(err, "1002_dqs"));
	close_store(&st, &loop);
}

static void test_non_increasing_versions_einval(void **state)
{
	static const struct hl_migration dup[] = {
		{1, "a", "CREATE TABLE a(x);"},
		{1, "b", "CREATE TABLE b(x);"},
	};
	static const struct hl_migration down[] = {
		{2, "a", "CREATE TABLE a(x);"},
		{1, "b", "CREATE TABLE b(x);"},
	};
	static const struct hl_migration zero[] = {
		{0, "a", "CREATE TABLE a(x);"},
	};
	char path[4200], err[512];
	static struct hl_store st;
	struct stat sb;
	static uv_loop_t loop;
	sqlite3 *db;

	(void)state;
	make_path(path, sizeof(path), "einval");
	assert_int_equal(open_store(&st, &loop, path, dup, 2, err,
				    sizeof(err)), HL_EINVAL);
	assert_non_null(strstr(err, "strictly increasing"));
	close_store(&st, &loop);
	assert_int_equal(open_store(&st, &loop, path, down, 2, err,
				    sizeof(err)), HL_EINVAL);
	close_store(&st, &loop);
	assert_int_equal(open_store(&st, &loop, path, zero, 1, err,
				    sizeof(err)), HL_EINVAL);
	close_store(&st, &loop);
	/* Refused before the file was created. */
	assert_int_not_equal(stat(path, &sb), 0);

	db = plain_open(path);
	assert_int_equal(hl_store_migrate(db, dup, 2, err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_store_migrate(db, down, 2, err, sizeof(err)),
			 HL_EINVAL);
	assert_int_equal(hl_test_query_int(db, "PRAGMA user_version"), 0);
	/* An empty list on an empty database is nothing to do. */
	assert_int_equal(hl_store_migrate(db, NULL, 0, err, sizeof(err)), 0);
	sqlite3_close(db);
}

static void test_not_a_database(void **state)
{
	char path[4200], err[512];
	static struct hl_store st;
	static uv_loop_t loop;
	FILE *f;

	(void)state;
	make_path(path, sizeof(path), "garbage");
	f = fopen(path, "wb");
	assert_non_null(f);
	for (int i = 0; i < 4096; i++)
		fputc('x', f);
	fclose(f);
	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), HL_ESTORE);
	assert_non_null(strstr(err, path));
	close_store(&st, &loop);

	/* A missing directory is an OS error. */
	snprintf(path, sizeof(path), "%s/no/such/dir.db", hl_test_tmpdir());
	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), HL_EIO);
	assert_non_null(strstr(err, path));
	close_store(&st, &loop);
}

/* What the settings job saw on the writer's own connection. */
struct settings_job {
	struct hl_store_job job;
	char journal[16];
	int synchronous, foreign_keys, done_calls, status;
};

static int settings_exec(struct hl_store_job *job, sqlite3 *db,
			 sqlite3_stmt *const *stmts)
{
	struct settings_job *sj = hl_container_of(job, struct settings_job,
						  job);
	sqlite3_stmt *s;

	(void)stmts;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL) ==
	    SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		snprintf(sj->journal, sizeof(sj->journal), "%s",
			 (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	/* No cmocka asserts here: this is the writer thread. */
	if (sqlite3_prepare_v2(db, "SELECT synchronous, foreign_keys FROM "
			       "pragma_synchronous, pragma_foreign_keys", -1,
			       &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		sj->synchronous = sqlite3_column_int(s, 0);
		sj->foreign_keys = sqlite3_column_int(s, 1);
	}
	sqlite3_finalize(s);
	return 0;
}

static void settings_done(struct hl_store_job *job, int status)
{
	struct settings_job *sj = hl_container_of(job, struct settings_job,
						  job);

	sj->done_calls++;
	sj->status = status;
}

static void test_writer_connection_settings(void **state)
{
	char path[4200], err[512];
	struct settings_job sj;
	static struct hl_store st;
	static uv_loop_t loop;
	sqlite3 *db;
	sqlite3_stmt *s;

	(void)state;
	make_path(path, sizeof(path), "settings");
	assert_int_equal(open_store(&st, &loop, path, NULL, 0, err,
				    sizeof(err)), 0);
	memset(&sj, 0, sizeof(sj));
	sj.job.exec = settings_exec;
	sj.job.done = settings_done;
	assert_int_equal(hl_store_submit(&st, &sj.job), 0);
	while (sj.done_calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(sj.status, 0);
	assert_string_equal(sj.journal, "wal");
	assert_int_equal(sj.synchronous, 2); /* FULL */
	assert_int_equal(sj.foreign_keys, 1);

	/* WAL is persistent: a second connection sees it too. */
	db = plain_open(path);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s,
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(db);
	close_store(&st, &loop);
	assert_int_equal(sj.done_calls, 1);
}

#define T(f) cmocka_unit_test_teardown(f, test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fresh_db_gets_newest_version_and_tables),
		T(test_reopen_is_noop),
		T(test_custom_migrations_apply_in_order_only_pending),
		T(test_newer_db_refused_untouched),
		T(test_failing_migration_rolls_back_all),
		T(test_migration_must_not_commit),
		T(test_migration_may_rebuild_referenced_table),
		T(test_migration_breaking_foreign_key_rolls_back),
		T(test_double_quoted_strings_rejected),
		T(test_non_increasing_versions_einval),
		T(test_not_a_database),
		T(test_writer_connection_settings),
	};

	return cmocka_run_group_tests(tests, group_setup, hl_test_group_teardown);
}
