/* test_audit.c: the audit hash chain. Entries are appended with
 * hl_audit_append on a database migrated with the embedded migrations and
 * the store's own two statements (same SQL as store.c), then the table is
 * tampered with in plain SQL, the way someone with the database file
 * would, and hl_audit_verify must name the first broken row exactly. Also:
 * a known-answer vector for the encoding (computed independently with
 * Python's hashlib.blake2b), validation of entries, columns of the wrong
 * type, the limits of the chain (appends and truncation by a writer), and
 * appends running as real store jobs on the writer thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "common.h"
#include "log.h"
#include "migrations.h"
#include "store.h"
#include "testutil.h"

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("audit", HL_LOG_OFF);
}

/* ---- a database with the audit table and the store's statements -------- */

/* The SQL of HL_STMT_AUDIT_LAST and HL_STMT_AUDIT_INSERT in store.c. */
static const char last_sql[] =
	"SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1";
static const char insert_sql[] =
	"INSERT INTO audit(seq, at, actor, action, target, detail, "
	"prev_hash, entry_hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/* A non-STRICT audit table with no declared types: what someone who
 * rebuilt the table could leave behind, so that columns can hold any type. */
static const char loose_schema[] =
	"CREATE TABLE audit (seq INTEGER PRIMARY KEY, at, actor, action, "
	"target, detail, prev_hash, entry_hash)";

struct fx {
	sqlite3 *db;
	sqlite3_stmt *stmts[HL_STMT__COUNT]; /* only the two audit ones */
};

/* Copies the 32-byte blob that sql selects. */
static void query_hash(sqlite3 *db, const char *sql,
		       unsigned char out[HL_AUDIT_HASH_BYTES])
{
	sqlite3_stmt *s;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(s, 0), HL_AUDIT_HASH_BYTES);
	memcpy(out, sqlite3_column_blob(s, 0), HL_AUDIT_HASH_BYTES);
	sqlite3_finalize(s);
}

/* Opens a new database file: migrated with the embedded migrations (the
 * real STRICT audit table), or with loose_schema when loose is set. */
static void fx_open(struct fx *f, int loose)
{
	char path[4200], err[512];

	memset(f, 0, sizeof(*f));
	hl_test_path(path, sizeof(path), "audit");
	assert_int_equal(sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
	if (loose) {
		hl_test_exec(f->db, loose_schema);
	} else if (hl_store_migrate(f->db, hl_migrations, hl_migrations_count,
				    err, sizeof(err)) != 0) {
		fail_msg("migrate: %s", err);
	}
	assert_int_equal(sqlite3_prepare_v2(f->db, last_sql, -1,
					    &f->stmts[HL_STMT_AUDIT_LAST],
					    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(f->db, insert_sql, -1,
					    &f->stmts[HL_STMT_AUDIT_INSERT],
					    NULL), SQLITE_OK);
}

static void fx_close(struct fx *f)
{
	for (int i = 0; i < HL_STMT__COUNT; i++)
		sqlite3_finalize(f->stmts[i]);
	assert_int_equal(sqlite3_close(f->db), SQLITE_OK);
}

#define T0 1700000000000LL

/*
 * Appends entries first..last (inclusive), entry i being: at T0 + i*1000;
 * actor NULL when i % 3 == 0, else i; action "test.append"; target NULL
 * unless i % 5 == 0 (then 100 + i); detail {"i":i}, or NULL (stored '')
 * when i % 7 == 0. One transaction, as a store batch would be.
 */
static void append_range(struct fx *f, int first, int last)
{
	char detail[32];
	int64_t seq;

	hl_test_exec(f->db, "BEGIN IMMEDIATE");
	for (int i = first; i <= last; i++) {
		struct hl_audit_entry e = {
			.at_ms = T0 + (int64_t)i * 1000,
			.actor = i % 3 == 0 ? 0 : i,
			.action = "test.append",
			.target = i % 5 == 0 ? 100 + i : 0,
			.detail = i % 7 == 0 ? NULL : detail,
		};

		snprintf(detail, sizeof(detail), "{\"i\":%d}", i);
		seq = -1;
		assert_int_equal(hl_audit_append(f->stmts, &e, &seq), 0);
		assert_int_equal(seq, i);
	}
	hl_test_exec(f->db, "COMMIT");
}

/* Opens a database with 100 entries. */
static void fx_open_100(struct fx *f)
{
	fx_open(f, 0);
	append_range(f, 1, 100);
}

/* Verifies and expects a break at first_bad with exactly why. */
static void expect_broken(sqlite3 *db, int64_t first_bad, const char *why,
			  int64_t rows)
{
	struct hl_audit_report r;

	assert_int_equal(hl_audit_verify(db, &r), HL_EINVAL);
	assert_int_equal(r.first_bad, first_bad);
	assert_string_equal(r.why, why);
	assert_int_equal(r.rows, rows);
}

static void expect_intact(sqlite3 *db, int64_t rows)
{
	struct hl_audit_report r;

	assert_int_equal(hl_audit_verify(db, &r), 0);
	assert_int_equal(r.first_bad, 0);
	assert_int_equal(r.rows, rows);
}

static const char edited[] = "entry_hash does not match the row (row edited)";
static const char bad_column[] =
	"a column holds a value append never writes (row edited)";

/* ---- the encoding ------------------------------------------------------- */

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/*
 * Known answers, computed outside this code base with Python:
 *   blake2b(b"helpline-audit-v1" + prev + pack(">qqq", seq, at, actor) +
 *           pack(">I", len(action)) + action + pack(">q", target) +
 *           pack(">I", len(detail)) + detail, digest_size=32)
 * A change here breaks every existing audit log: it needs a new label.
 */
static void test_hash_known_answers(void **state)
{
	unsigned char prev[HL_AUDIT_HASH_BYTES], out[HL_AUDIT_HASH_BYTES];
	unsigned char again[HL_AUDIT_HASH_BYTES];
	char h[2 * HL_AUDIT_HASH_BYTES + 1];

	(void)state;
	/* 1: the first entry of a log: zero prev, no actor, target, detail. */
	memset(prev, 0, sizeof(prev));
	hl_audit_hash(prev, 1, 1700000000000LL, 0, "login.ok", 0, "", out);
	hex(out, sizeof(out), h);
	assert_string_equal(h, "db7a89e0fe38dc56e92edfc7303be8e0"
			       "f39b3c28a999da3dbe107f00acf64154");
	/* NULL detail is the same as "". */
	hl_audit_hash(prev, 1, 1700000000000LL, 0, "login.ok", 0, NULL, again);
	assert_memory_equal(out, again, sizeof(out));

	/* 2: prev 0x11 * 32, seq 2, at 1700000000123, actor 7,
	 * "staff.disable", target 12, detail {"reason":"left"}. */
	memset(prev, 0x11, sizeof(prev));
	hl_audit_hash(prev, 2, 1700000000123LL, 7, "staff.disable", 12,
		      "{\"reason\":\"left\"}", out);
	hex(out, sizeof(out), h);
	assert_string_equal(h, "56672e5d7d98a4dcc3d1d4fbc45b37c6"
			       "0990e7be7ab9ca06b9e37c150ca25524");
	/* Stable: the same inputs give the same hash. */
	hl_audit_hash(prev, 2, 1700000000123LL, 7, "staff.disable", 12,
		      "{\"reason\":\"left\"}", again);
	assert_memory_equal(out, again, sizeof(out));

	/* 3: negative numbers are two's complement: zero prev, seq 1, at -1,
	 * actor -2, "a", target -3, "x". */
	memset(prev, 0, sizeof(prev));
	hl_audit_hash(prev, 1, -1, -2, "a", -3, "x", out);
	hex(out, sizeof(out), h);
	assert_string_equal(h, "c7faa8007adb79f56eb4975e9563c17b"
			       "75c9cae2a66864944cf1880cb2e584ac");
}

static void test_hash_fields_are_separated(void **state)
{
	unsigned char prev[HL_AUDIT_HASH_BYTES] = {0};
	unsigned char a[HL_AUDIT_HASH_BYTES], b[HL_AUDIT_HASH_BYTES];

	(void)state;
	/* Length prefixes: moving bytes from action to detail changes it. */
	hl_audit_hash(prev, 1, 5, 0, "ab", 0, "c", a);
	hl_audit_hash(prev, 1, 5, 0, "a", 0, "bc", b);
	assert_memory_not_equal(a, b, sizeof(a));
	/* Actor and target are not interchangeable. */
	hl_audit_hash(prev, 1, 5, 3, "x", 0, "", a);
	hl_audit_hash(prev, 1, 5, 0, "x", 3, "", b);
	assert_memory_not_equal(a, b, sizeof(a));
	/* prev is covered. */
	hl_audit_hash(prev, 1, 5, 0, "x", 0, "", a);
	prev[31] = 1;
	hl_audit_hash(prev, 1, 5, 0, "x", 0, "", b);
	assert_memory_not_equal(a, b, sizeof(a));
}

/* ---- append ------------------------------------------------------------- */

static void test_append_100_verifies(void **state)
{
	unsigned char last[HL_AUDIT_HASH_BYTES], zero[HL_AUDIT_HASH_BYTES];
	struct hl_audit_report r;
	struct fx f;

	(void)state;
	fx_open_100(&f);
	memset(&r, 0xee, sizeof(r));
	assert_int_equal(hl_audit_verify(f.db, &r), 0);
	assert_int_equal(r.rows, 100);
	assert_int_equal(r.first_bad, 0);
	assert_string_equal(r.why, "");
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=100", last);
	assert_memory_equal(r.head, last, HL_AUDIT_HASH_BYTES);

	/* Stored as the schema says: 0 ids as NULL, NULL detail as ''. */
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit WHERE "
				   "actor IS NULL"), 33);
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit WHERE "
				   "target IS NOT NULL"), 20);
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit WHERE "
				   "detail = ''"), 14);
	assert_int_equal(hl_test_query_int(f.db, "SELECT min(seq) FROM audit"), 1);
	assert_int_equal(hl_test_query_int(f.db, "SELECT max(seq) FROM audit"), 100);
	memset(zero, 0, sizeof(zero));
	query_hash(f.db, "SELECT prev_hash FROM audit WHERE seq=1", last);
	assert_memory_equal(last, zero, sizeof(zero));
	/* Each prev_hash is the entry_hash before it. */
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit a JOIN "
				   "audit b ON b.seq = a.seq + 1 WHERE "
				   "b.prev_hash = a.entry_hash"), 99);
	/* report may be NULL. */
	assert_int_equal(hl_audit_verify(f.db, NULL), 0);
	fx_close(&f);
}

static void test_append_row_matches_documented_hash(void **state)
{
	unsigned char prev[HL_AUDIT_HASH_BYTES] = {0};
	unsigned char want[HL_AUDIT_HASH_BYTES], got[HL_AUDIT_HASH_BYTES];
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	append_range(&f, 1, 5);
	/* Entry 1: actor 1, no target, {"i":1}. */
	hl_audit_hash(prev, 1, T0 + 1000, 1, "test.append", 0, "{\"i\":1}",
		      want);
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=1", got);
	assert_memory_equal(want, got, sizeof(want));
	/* Entry 3: NULL actor hashes as 0. Entry 5: target 105. */
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=2", prev);
	hl_audit_hash(prev, 3, T0 + 3000, 0, "test.append", 0, "{\"i\":3}",
		      want);
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=3", got);
	assert_memory_equal(want, got, sizeof(want));
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=4", prev);
	hl_audit_hash(prev, 5, T0 + 5000, 5, "test.append", 105, "{\"i\":5}",
		      want);
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=5", got);
	assert_memory_equal(want, got, sizeof(want));
	fx_close(&f);
}

static void test_append_time_defaults_to_now(void **state)
{
	struct hl_audit_entry e = {.action = "login.ok", .actor = 4};
	struct timespec ts;
	int64_t before, after, at;
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	before = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	assert_int_equal(hl_audit_append(f.stmts, &e, NULL), 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	after = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	at = hl_test_query_int(f.db, "SELECT at FROM audit WHERE seq=1");
	assert_true(at >= before && at <= after);
	expect_intact(f.db, 1);
	fx_close(&f);
}

static void test_append_invalid_entries(void **state)
{
	static const char *const bad_actions[] = {
		"", "Login.ok", "login ok", "login-ok", "login.ok\n",
		"login/ok", "lögin", "login.ok;drop",
		/* 65 bytes */
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	char detail[1026];
	struct hl_audit_entry e = {.at_ms = T0, .action = "ok"};
	int64_t seq = 777;
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	append_range(&f, 1, 3);
	for (size_t i = 0; i < HL_ARRAY_LEN(bad_actions); i++) {
		e.action = bad_actions[i];
		assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_EINVAL);
	}
	e.action = NULL;
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_EINVAL);
	assert_int_equal(hl_audit_append(f.stmts, NULL, &seq), HL_EINVAL);
	e.action = "ok";
	memset(detail, 'd', 1025);
	detail[1025] = '\0';
	e.detail = detail;
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_EINVAL);
	e.detail = NULL;
	e.at_ms = -1;
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_EINVAL);
	assert_int_equal(seq, 777);
	/* Nothing was inserted. */
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit"), 3);

	/* The limits themselves are accepted: 64-byte action, 1024-byte
	 * detail, and the whole alphabet. */
	e.at_ms = T0;
	e.action = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
	detail[1024] = '\0';
	e.detail = detail;
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), 0);
	assert_int_equal(seq, 4);
	e.action = "abc.xyz_0123456789";
	e.detail = "";
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), 0);
	assert_int_equal(seq, 5);
	expect_intact(f.db, 5);
	fx_close(&f);
}

static void test_append_refuses_broken_head(void **state)
{
	struct hl_audit_entry e = {.at_ms = T0, .action = "x"};
	int64_t seq = 0;
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	append_range(&f, 1, 3);
	hl_test_exec(f.db, "UPDATE audit SET entry_hash = zeroblob(31) WHERE seq=3");
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_ESTORE);
	assert_int_equal(hl_test_query_int(f.db, "SELECT count(*) FROM audit"), 3);
	/* The statements were reset: once the head is repaired (here by
	 * deleting it), appending works again. */
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq=3");
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), 0);
	assert_int_equal(seq, 3);
	expect_intact(f.db, 3);
	fx_close(&f);
}

static void test_append_constraint_failure_resets(void **state)
{
	struct hl_audit_entry e = {.at_ms = T0, .action = "x"};
	int64_t seq = 0;
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	append_range(&f, 1, 2);
	/* A trigger makes the insert fail: the error is HL_ESTORE and the
	 * statements are usable afterwards. */
	hl_test_exec(f.db, "CREATE TEMP TRIGGER no_insert BEFORE INSERT ON audit "
		   "BEGIN SELECT RAISE(ABORT, 'read only'); END");
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), HL_ESTORE);
	hl_test_exec(f.db, "DROP TRIGGER no_insert");
	assert_int_equal(hl_audit_append(f.stmts, &e, &seq), 0);
	assert_int_equal(seq, 3);
	expect_intact(f.db, 3);
	fx_close(&f);
}

/* 1 when neither statement is mid-step nor holds a bound value, so nothing
 * of this append can reach the next user of the statements. */
static int stmts_clean(struct fx *f)
{
	sqlite3_stmt *ins = f->stmts[HL_STMT_AUDIT_INSERT];
	char *sql = sqlite3_expanded_sql(ins);
	int clean;

	assert_non_null(sql);
	clean = strstr(sql, "VALUES(NULL, NULL, NULL, NULL, NULL, NULL, "
			    "NULL, NULL)") != NULL &&
		!sqlite3_stmt_busy(ins) &&
		!sqlite3_stmt_busy(f->stmts[HL_STMT_AUDIT_LAST]);
	sqlite3_free(sql);
	return clean;
}

static void test_append_leaves_statements_clean(void **state)
{
	struct hl_audit_entry e = {.at_ms = T0, .action = "x", .actor = 9,
				   .target = 8, .detail = "{}"};
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	assert_int_equal(hl_audit_append(f.stmts, &e, NULL), 0);
	assert_true(stmts_clean(&f));
	/* And after a database error in the insert. */
	hl_test_exec(f.db, "CREATE TEMP TRIGGER no_insert BEFORE INSERT ON audit "
		   "BEGIN SELECT RAISE(ABORT, 'read only'); END");
	assert_int_equal(hl_audit_append(f.stmts, &e, NULL), HL_ESTORE);
	assert_true(stmts_clean(&f));
	fx_close(&f);
}

/* ---- verify: tampering -------------------------------------------------- */

static void test_verify_empty(void **state)
{
	unsigned char zero[HL_AUDIT_HASH_BYTES] = {0};
	struct hl_audit_report r;
	struct fx f;

	(void)state;
	fx_open(&f, 0);
	memset(&r, 0xee, sizeof(r));
	assert_int_equal(hl_audit_verify(f.db, &r), 0);
	assert_int_equal(r.rows, 0);
	assert_int_equal(r.first_bad, 0);
	assert_memory_equal(r.head, zero, sizeof(zero));
	fx_close(&f);
}

static void test_edit_detail(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET detail = '{\"i\":0}' WHERE seq=37");
	expect_broken(f.db, 37, edited, 100);
	fx_close(&f);
}

static void test_edit_at(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET at = at + 1 WHERE seq=37");
	expect_broken(f.db, 37, edited, 100);
	fx_close(&f);
}

static void test_edit_action_and_target(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET action = 'test.appenD' WHERE seq=60");
	expect_broken(f.db, 60, edited, 100);
	hl_test_exec(f.db, "UPDATE audit SET target = 1 WHERE seq=41");
	expect_broken(f.db, 41, edited, 100);
	fx_close(&f);
}

static void test_edit_actor_null_to_1(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	assert_int_equal(hl_test_query_int(f.db, "SELECT actor IS NULL FROM audit "
				   "WHERE seq=42"), 1);
	hl_test_exec(f.db, "UPDATE audit SET actor = 1 WHERE seq=42");
	expect_broken(f.db, 42, edited, 100);
	fx_close(&f);
}

static void test_edit_actor_null_to_0(void **state)
{
	struct fx f;

	(void)state;
	/* 0 hashes like NULL, so it is refused as a value append never
	 * writes rather than missed. */
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET actor = 0 WHERE seq=42");
	expect_broken(f.db, 42, bad_column, 100);
	fx_close(&f);
}

static void test_delete_row(void **state)
{
	struct fx f;

	(void)state;
	/* Defined: a gap is reported at the row found in the missing one's
	 * place, and why names the missing seq. */
	fx_open_100(&f);
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq=50");
	expect_broken(f.db, 51, "seq 50 missing (row deleted)", 99);
	fx_close(&f);
}

static void test_delete_rows(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq BETWEEN 50 AND 52");
	expect_broken(f.db, 53, "seq 50..52 missing (rows deleted)", 97);
	fx_close(&f);
}

static void test_delete_first_row(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq=1");
	expect_broken(f.db, 2, "seq 1 missing (row deleted)", 99);
	fx_close(&f);
}

static void test_delete_and_renumber(void **state)
{
	struct fx f;

	(void)state;
	/* Closing the gap by renumbering leaves a broken link instead. */
	fx_open_100(&f);
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq=50");
	hl_test_exec(f.db, "UPDATE audit SET seq = -seq WHERE seq > 50");
	hl_test_exec(f.db, "UPDATE audit SET seq = -seq - 1 WHERE seq < 0");
	expect_broken(f.db, 50, "prev_hash does not match entry 49", 99);
	fx_close(&f);
}

/* Swaps the seq of rows a and b. */
static void swap_rows(sqlite3 *db, int a, int b)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "UPDATE audit SET seq = -1 WHERE seq=%d;"
		 "UPDATE audit SET seq = %d WHERE seq=%d;"
		 "UPDATE audit SET seq = %d WHERE seq=-1;", a, a, b, b);
	hl_test_exec(db, sql);
}

static void test_reorder(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	swap_rows(f.db, 10, 20);
	expect_broken(f.db, 10, "prev_hash does not match entry 9", 100);
	swap_rows(f.db, 10, 20); /* back: intact again */
	expect_intact(f.db, 100);
	swap_rows(f.db, 31, 30); /* neighbours */
	expect_broken(f.db, 30, "prev_hash does not match entry 29", 100);
	fx_close(&f);
}

static void test_replace_last_entry_hash(void **state)
{
	unsigned char stored[HL_AUDIT_HASH_BYTES];
	struct hl_audit_report r;
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET entry_hash = randomblob(32) WHERE "
		   "seq=100");
	expect_broken(f.db, 100, edited, 100);
	/* The head reported is the stored one, for comparing with a
	 * checkpoint. */
	assert_int_equal(hl_audit_verify(f.db, &r), HL_EINVAL);
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=100", stored);
	assert_memory_equal(r.head, stored, sizeof(stored));
	fx_close(&f);
}

static void test_replace_middle_hashes(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET entry_hash = randomblob(32) WHERE "
		   "seq=60");
	expect_broken(f.db, 60, edited, 100);
	fx_close(&f);

	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET prev_hash = randomblob(32) WHERE seq=20");
	expect_broken(f.db, 20, "prev_hash does not match entry 19", 100);
	fx_close(&f);

	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET prev_hash = randomblob(32) WHERE seq=1");
	expect_broken(f.db, 1, "prev_hash of the first entry is not zero",
		      100);
	fx_close(&f);
}

static void test_edit_with_recomputed_hash(void **state)
{
	unsigned char prev[HL_AUDIT_HASH_BYTES], h[HL_AUDIT_HASH_BYTES];
	sqlite3_stmt *s;
	struct fx f;

	(void)state;
	/* Someone who knows the algorithm edits row 37 and fixes its own
	 * hash: the link to row 38 still breaks. */
	fx_open_100(&f);
	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=36", prev);
	hl_audit_hash(prev, 37, T0 + 37000, 37, "test.append", 0, "{}", h);
	assert_int_equal(sqlite3_prepare_v2(f.db, "UPDATE audit SET detail = "
					    "'{}', entry_hash = ?1 WHERE "
					    "seq=37", -1, &s, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(s, 1, h, sizeof(h), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
	expect_broken(f.db, 38, "prev_hash does not match entry 37", 100);
	fx_close(&f);
}

static void test_detail_with_hidden_nul(void **state)
{
	struct fx f;

	(void)state;
	/* Bytes after a NUL would be invisible to a C-string hash: such a
	 * value is refused outright. */
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET detail = detail || char(0) || 'forged' "
		   "WHERE seq=12");
	expect_broken(f.db, 12, bad_column, 100);
	fx_close(&f);
}

static void test_seq_zero_inserted(void **state)
{
	struct fx f;

	(void)state;
	fx_open_100(&f);
	hl_test_exec(f.db, "INSERT INTO audit SELECT 0, at, actor, action, target, "
		   "detail, prev_hash, entry_hash FROM audit WHERE seq=1");
	expect_broken(f.db, 0, "seq 0 out of range (expected 1)", 101);
	fx_close(&f);
}

/* The limit documented in audit.h: a writer with database access who
 * knows the algorithm can append (or truncate) and the chain still
 * verifies; only a head checkpoint kept elsewhere shows it. */
static void test_forged_append_verifies(void **state)
{
	unsigned char prev[HL_AUDIT_HASH_BYTES], h[HL_AUDIT_HASH_BYTES];
	unsigned char head100[HL_AUDIT_HASH_BYTES];
	struct hl_audit_report r;
	sqlite3_stmt *s;
	struct fx f;

	(void)state;
	fx_open_100(&f);
	assert_int_equal(hl_audit_verify(f.db, &r), 0);
	memcpy(head100, r.head, sizeof(head100));

	query_hash(f.db, "SELECT entry_hash FROM audit WHERE seq=100", prev);
	hl_audit_hash(prev, 101, T0 + 101000, 0, "forged.entry", 0, "", h);
	assert_int_equal(sqlite3_prepare_v2(f.db, insert_sql, -1, &s, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(s, 1, 101);
	sqlite3_bind_int64(s, 2, T0 + 101000);
	sqlite3_bind_null(s, 3);
	sqlite3_bind_text(s, 4, "forged.entry", -1, SQLITE_STATIC);
	sqlite3_bind_null(s, 5);
	sqlite3_bind_text(s, 6, "", -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 7, prev, sizeof(prev), SQLITE_STATIC);
	sqlite3_bind_blob(s, 8, h, sizeof(h), SQLITE_STATIC);
	assert_int_equal(sqlite3_step(s), SQLITE_DONE);
	sqlite3_finalize(s);
	assert_int_equal(hl_audit_verify(f.db, &r), 0);
	assert_int_equal(r.rows, 101);
	assert_memory_equal(r.head, h, sizeof(h));

	/* Truncation verifies too; only the head moved. */
	hl_test_exec(f.db, "DELETE FROM audit WHERE seq >= 100");
	assert_int_equal(hl_audit_verify(f.db, &r), 0);
	assert_int_equal(r.rows, 99);
	assert_memory_not_equal(r.head, head100, sizeof(head100));
	fx_close(&f);
}

/* ---- verify: columns of the wrong type ---------------------------------- */

static void test_wrong_types_are_broken_rows(void **state)
{
	static const struct {
		const char *sql;   /* applied to row 3 of 5 */
		const char *why;
	} cases[] = {
		{"UPDATE audit SET entry_hash = 'text' WHERE seq=3", NULL},
		{"UPDATE audit SET entry_hash = NULL WHERE seq=3", NULL},
		{"UPDATE audit SET entry_hash = 7 WHERE seq=3", NULL},
		{"UPDATE audit SET prev_hash = NULL WHERE seq=3", NULL},
		{"UPDATE audit SET prev_hash = zeroblob(33) WHERE seq=3", NULL},
		{"UPDATE audit SET at = NULL WHERE seq=3", bad_column},
		{"UPDATE audit SET at = 'soon' WHERE seq=3", bad_column},
		{"UPDATE audit SET at = 1.5 WHERE seq=3", bad_column},
		{"UPDATE audit SET actor = 'abc' WHERE seq=3", bad_column},
		{"UPDATE audit SET target = x'01' WHERE seq=3", bad_column},
		{"UPDATE audit SET action = NULL WHERE seq=3", bad_column},
		{"UPDATE audit SET action = 12 WHERE seq=3", bad_column},
		{"UPDATE audit SET detail = NULL WHERE seq=3", bad_column},
		{"UPDATE audit SET detail = x'7b7d' WHERE seq=3", bad_column},
	};
	static const char bad_blob[] =
		"prev_hash or entry_hash is not a 32-byte blob (row edited)";
	unsigned char zero[HL_AUDIT_HASH_BYTES] = {0};
	struct hl_audit_report r;
	struct fx f;

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
		fx_open(&f, 1);
		append_range(&f, 1, 5);
		expect_intact(f.db, 5);
		hl_test_exec(f.db, cases[i].sql);
		expect_broken(f.db, 3, cases[i].why ? cases[i].why : bad_blob,
			      5);
		fx_close(&f);
	}
	/* The last row's hash not a blob: broken, head reported as zeros. */
	fx_open(&f, 1);
	append_range(&f, 1, 5);
	hl_test_exec(f.db, "UPDATE audit SET entry_hash = 'x' WHERE seq=5");
	assert_int_equal(hl_audit_verify(f.db, &r), HL_EINVAL);
	assert_int_equal(r.first_bad, 5);
	assert_memory_equal(r.head, zero, sizeof(zero));
	fx_close(&f);
}

static void test_wrong_size_blob_strict(void **state)
{
	struct fx f;

	(void)state;
	/* The STRICT table takes a blob of any size: still refused. */
	fx_open_100(&f);
	hl_test_exec(f.db, "UPDATE audit SET entry_hash = zeroblob(31) WHERE seq=8");
	expect_broken(f.db, 8, "prev_hash or entry_hash is not a 32-byte blob "
		      "(row edited)", 100);
	fx_close(&f);
}

static void test_verify_without_table(void **state)
{
	struct hl_audit_report r;
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(hl_audit_verify(db, &r), HL_ESTORE);
	assert_int_equal(r.first_bad, 0);
	assert_non_null(strstr(r.why, "no such table"));
	sqlite3_close(db);
}

/* ---- appends as store jobs ---------------------------------------------- */

struct ajob {
	struct hl_store_job job;
	int id;        /* detail {"job":id} */
	int fail;      /* append, then fail: the savepoint undoes the row */
	int status;    /* from done */
	int64_t seq;   /* from append */
};

static int done_count;

static int ajob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct ajob *a = hl_container_of(job, struct ajob, job);
	struct hl_audit_entry e = {.action = "job.run", .actor = a->id};
	char detail[32];
	int rc;

	(void)db;
	snprintf(detail, sizeof(detail), "{\"job\":%d}", a->id);
	e.detail = detail;
	rc = hl_audit_append(stmts, &e, &a->seq);
	if (rc != 0)
		return rc;
	return a->fail ? HL_EINVAL : 0;
}

static void ajob_done(struct hl_store_job *job, int status)
{
	struct ajob *a = hl_container_of(job, struct ajob, job);

	a->status = status;
	done_count++;
}

static void test_append_in_store_jobs(void **state)
{
	enum { N = 40 };
	struct ajob jobs[N];
	struct hl_store st;
	struct hl_audit_report r;
	char path[4200], err[512];
	uv_loop_t loop;
	sqlite3 *db;
	int rc;

	(void)state;
	hl_test_path(path, sizeof(path), "store");
	assert_int_equal(uv_loop_init(&loop), 0);
	rc = hl_store_open(&st, &loop, path, NULL, err, sizeof(err));
	if (rc != 0)
		fail_msg("hl_store_open: %s (%s)", hl_strerror(rc), err);
	memset(jobs, 0, sizeof(jobs));
	done_count = 0;
	/* Submitted together, so most share a batch: each append must see
	 * the uncommitted rows of the jobs before it, and a failed job's row
	 * must vanish without breaking the chain of those after it. */
	for (int i = 0; i < N; i++) {
		jobs[i].job.exec = ajob_exec;
		jobs[i].job.done = ajob_done;
		jobs[i].id = i + 1;
		jobs[i].fail = i % 10 == 4;
		assert_int_equal(hl_store_submit(&st, &jobs[i].job), 0);
	}
	while (done_count < N)
		uv_run(&loop, UV_RUN_ONCE);
	hl_store_close(&st);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);

	for (int i = 0, want = 1; i < N; i++) {
		if (jobs[i].fail) {
			assert_int_equal(jobs[i].status, HL_EINVAL);
			continue;
		}
		assert_int_equal(jobs[i].status, 0);
		assert_int_equal(jobs[i].seq, want++);
	}
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY,
					 NULL), SQLITE_OK);
	assert_int_equal(hl_audit_verify(db, &r), 0);
	assert_int_equal(r.rows, N - 4);
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM audit WHERE "
				   "detail = '{\"job\":5}'"), 0);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_known_answers),
		cmocka_unit_test(test_hash_fields_are_separated),
		cmocka_unit_test(test_append_100_verifies),
		cmocka_unit_test(test_append_row_matches_documented_hash),
		cmocka_unit_test(test_append_time_defaults_to_now),
		cmocka_unit_test(test_append_invalid_entries),
		cmocka_unit_test(test_append_refuses_broken_head),
		cmocka_unit_test(test_append_constraint_failure_resets),
		cmocka_unit_test(test_append_leaves_statements_clean),
		cmocka_unit_test(test_verify_empty),
		cmocka_unit_test(test_edit_detail),
		cmocka_unit_test(test_edit_at),
		cmocka_unit_test(test_edit_action_and_target),
		cmocka_unit_test(test_edit_actor_null_to_1),
		cmocka_unit_test(test_edit_actor_null_to_0),
		cmocka_unit_test(test_delete_row),
		cmocka_unit_test(test_delete_rows),
		cmocka_unit_test(test_delete_first_row),
		cmocka_unit_test(test_delete_and_renumber),
		cmocka_unit_test(test_reorder),
		cmocka_unit_test(test_replace_last_entry_hash),
		cmocka_unit_test(test_replace_middle_hashes),
		cmocka_unit_test(test_edit_with_recomputed_hash),
		cmocka_unit_test(test_detail_with_hidden_nul),
		cmocka_unit_test(test_seq_zero_inserted),
		cmocka_unit_test(test_forged_append_verifies),
		cmocka_unit_test(test_wrong_types_are_broken_rows),
		cmocka_unit_test(test_wrong_size_blob_strict),
		cmocka_unit_test(test_verify_without_table),
		cmocka_unit_test(test_append_in_store_jobs),
	};

	return cmocka_run_group_tests(tests, group_setup, hl_test_group_teardown);
}
