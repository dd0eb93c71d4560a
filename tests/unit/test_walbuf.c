/* test_walbuf.c: the WAL write buffer (walbuf.h) under a real SQLite
 * database: every commit is visible, whole, to another connection on the
 * plain VFS at once; writes are gathered (far fewer writes below than
 * SQLite made); a transaction bigger than the page cache (frames spilled,
 * read back and rewritten before COMMIT) commits or rolls back whole; a
 * buffer too small for a frame still stores everything; and a process that
 * dies mid-transaction with frames in its buffer leaves every committed
 * transaction and nothing else; and, at the file level, overwrites inside
 * the buffer, writes away from it, and pieces the unix VFS takes whole. (Failed writes below the buffer, through
 * the store, are tested in test_store.c's commit faults.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "testutil.h"
#include "walbuf.h"

#define ROW_BYTES 3000

/* A writer through w, as the store opens its own: WAL, synchronous=FULL
 * (or as given). */
static sqlite3 *open_writer_sync(struct hl_walbuf *w, const char *path,
				 const char *sync)
{
	char sql[64];
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
					 SQLITE_OPEN_CREATE,
					 hl_walbuf_name(w)), SQLITE_OK);
	hl_test_exec(db, "PRAGMA journal_mode=WAL");
	snprintf(sql, sizeof(sql), "PRAGMA synchronous=%s", sync);
	hl_test_exec(db, sql);
	hl_test_exec(db, "CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, "
		    "txn INTEGER NOT NULL, v BLOB NOT NULL)");
	return db;
}

static sqlite3 *open_writer(struct hl_walbuf *w, const char *path)
{
	return open_writer_sync(w, path, "FULL");
}

/* Appends rows rows of ROW_BYTES to transaction txn, without COMMIT. */
static void insert_rows(sqlite3 *db, int txn, int rows)
{
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t (txn, v) VALUES "
					    "(?1, randomblob(?2))", -1, &st,
					    NULL), SQLITE_OK);
	for (int i = 0; i < rows; i++) {
		sqlite3_bind_int(st, 1, txn);
		sqlite3_bind_int(st, 2, ROW_BYTES);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
}

/* 40 commits of 20 rows, each checked from the plain reader right after
 * its COMMIT returns. */
static void commits_case(size_t max_bytes, bool expect_gathered,
			 const char *sync)
{
	struct hl_walbuf_stats s;
	struct hl_walbuf *w;
	char path[4200];
	sqlite3 *db, *rd;

	hl_test_path(path, sizeof(path), "commits");
	assert_int_equal(hl_walbuf_open(&w, NULL, max_bytes), 0);
	db = open_writer_sync(w, path, sync);
	rd = hl_test_plain(path);
	for (int txn = 1; txn <= 40; txn++) {
		hl_test_exec(db, "BEGIN IMMEDIATE");
		insert_rows(db, txn, 20);
		hl_test_exec(db, "COMMIT");
		assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"),
				 20 * txn);
		assert_int_equal(hl_test_query_int(rd, "SELECT sum(length(v)) FROM t "
					   "WHERE txn = (SELECT max(txn) FROM t)"),
				 20 * ROW_BYTES);
	}
	hl_walbuf_stats(w, &s);
	assert_true(s.writes > 0);
	assert_true(s.bytes > (uint64_t)40 * 20 * ROW_BYTES);
	if (expect_gathered)
		/* Two writes per frame from SQLite; a few per commit below. */
		assert_true(s.flushes * 20 < s.writes);
	else
		assert_true(s.flushes * 2 >= s.writes);
	hl_test_assert_integrity(rd);
	sqlite3_close(rd);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	hl_walbuf_close(w);

	rd = hl_test_plain(path);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 800);
	hl_test_assert_integrity(rd);
	sqlite3_close(rd);
}

static void test_commits_visible(void **state)
{
	(void)state;
	commits_case(16u << 20, true, "FULL");
}

/* Commits that do not sync the WAL: what publishes the frames (the WAL
 * index's header, behind xShmBarrier) writes them first. */
static void test_commits_unsynced(void **state)
{
	(void)state;
	commits_case(16u << 20, true, "NORMAL");
}

static void test_small_buffer(void **state)
{
	(void)state;
	/* Smaller than a frame (24 + 4096 bytes): pages go straight down. */
	commits_case(4096, false, "FULL");
}

/* A transaction of ~3 MB through a 10-page cache: SQLite spills pages to
 * the WAL before COMMIT, reads them back and rewrites some (the UPDATE);
 * it commits whole. A second one like it rolls back and leaves nothing. */
static void test_spilled_transaction(void **state)
{
	struct hl_walbuf *w;
	char path[4200];
	sqlite3 *db, *rd;

	(void)state;
	hl_test_path(path, sizeof(path), "spill");
	assert_int_equal(hl_walbuf_open(&w, NULL, 16u << 20), 0);
	db = open_writer(w, path);
	hl_test_exec(db, "PRAGMA cache_size=10");
	rd = hl_test_plain(path);

	hl_test_exec(db, "BEGIN IMMEDIATE");
	insert_rows(db, 1, 1000);
	hl_test_exec(db, "UPDATE t SET txn = 2 WHERE k % 3 = 0");
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM t WHERE txn = 2"),
			 333);
	/* Not yet visible. */
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 0);
	hl_test_exec(db, "COMMIT");
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 1000);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t WHERE txn = 2"),
			 333);
	assert_int_equal(hl_test_query_int(rd, "SELECT sum(length(v)) FROM t"),
			 1000 * ROW_BYTES);

	hl_test_exec(db, "BEGIN IMMEDIATE");
	insert_rows(db, 3, 1000);
	hl_test_exec(db, "DELETE FROM t WHERE txn = 1");
	hl_test_exec(db, "ROLLBACK");
	assert_int_equal(hl_test_query_int(db, "SELECT count(*) FROM t"), 1000);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 1000);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t WHERE txn = 1"),
			 667);

	/* Hot pages spilled, changed again and spilled again, between
	 * inserts that keep the cache under pressure: SQLite rewrites their
	 * frames in place, in the buffer. */
	hl_test_exec(db, "PRAGMA cache_size=40");
	hl_test_exec(db, "BEGIN IMMEDIATE");
	for (int i = 0; i < 300; i++) {
		char sql[128];

		insert_rows(db, 5, 3);
		snprintf(sql, sizeof(sql), "UPDATE t SET txn = %d WHERE k <= 3",
			 100 + i);
		hl_test_exec(db, sql);
	}
	hl_test_exec(db, "COMMIT");
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t WHERE txn = "
				   "399"), 3);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t WHERE txn = 5"),
			 900);
	hl_test_assert_integrity(rd);
	hl_test_exec(db, "DELETE FROM t WHERE k > 1000");

	/* And the WAL still works after it: a small commit, a checkpoint. */
	hl_test_exec(db, "BEGIN IMMEDIATE");
	insert_rows(db, 4, 5);
	hl_test_exec(db, "COMMIT");
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 1005);
	sqlite3_close(rd);
	hl_test_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	hl_test_assert_integrity(db);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	hl_walbuf_close(w);
}

/* A child commits 10 transactions, starts an 11th bigger than nothing but
 * the buffer holds, and dies without closing anything. */
static void test_death_mid_transaction(void **state)
{
	char path[4200];
	sqlite3 *rd;
	pid_t pid;
	int status;

	(void)state;
	hl_test_path(path, sizeof(path), "death");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct hl_walbuf *w;
		struct hl_walbuf_stats s;
		sqlite3 *db;

		if (hl_walbuf_open(&w, NULL, 16u << 20) != 0)
			_exit(2);
		db = open_writer(w, path);
		for (int txn = 1; txn <= 10; txn++) {
			hl_test_exec(db, "BEGIN IMMEDIATE");
			insert_rows(db, txn, 30);
			hl_test_exec(db, "COMMIT");
		}
		hl_test_exec(db, "BEGIN IMMEDIATE");
		insert_rows(db, 11, 300);
		/* Frames of txn 11 were handed to the buffer and not (all)
		 * written: writes made stayed ahead of the bytes below. */
		hl_walbuf_stats(w, &s);
		_exit(s.writes > 0 ? 0 : 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	rd = hl_test_plain(path);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t"), 300);
	assert_int_equal(hl_test_query_int(rd, "SELECT count(*) FROM t "
					   "WHERE txn = 11"),
			 0);
	assert_int_equal(hl_test_query_int(rd, "SELECT max(txn) FROM t"), 10);
	hl_test_assert_integrity(rd);
	sqlite3_close(rd);
}

/* The file level, through the VFS's own methods on a file opened as a WAL:
 * writes after, inside (overwriting) and away from what is buffered, a
 * buffer bigger than the VFS below takes in one write, and reads, sizes
 * and syncs that see every byte. */
static void test_file_level(void **state)
{
	enum { BIG = 300 * 1000 };
	static unsigned char want[BIG + 8192], got[BIG + 8192], chunk[4096];
	struct hl_walbuf_stats s;
	struct hl_walbuf *w;
	sqlite3_vfs *vfs;
	sqlite3_file *f;
	sqlite3_int64 size;
	char path[4200];
	size_t at = 0;
	int out = 0;
	FILE *fp;

	(void)state;
	hl_test_path(path, sizeof(path), "file");
	assert_int_equal(hl_walbuf_open(&w, NULL, 1u << 20), 0);
	vfs = sqlite3_vfs_find(hl_walbuf_name(w));
	assert_non_null(vfs);
	f = calloc(1, (size_t)vfs->szOsFile);
	assert_non_null(f);
	assert_int_equal(vfs->xOpen(vfs, path, f, SQLITE_OPEN_READWRITE |
				    SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL,
				    &out), SQLITE_OK);

	/* Frames as SQLite writes them: 24 bytes, then 4096, over 300 kB. */
	while (at + 24 + sizeof(chunk) <= BIG) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (unsigned char)(at + i * 7);
		memcpy(want + at, chunk, 24);
		assert_int_equal(f->pMethods->xWrite(f, chunk, 24,
						     (sqlite3_int64)at),
				 SQLITE_OK);
		at += 24;
		memcpy(want + at, chunk, sizeof(chunk));
		assert_int_equal(f->pMethods->xWrite(f, chunk, sizeof(chunk),
						     (sqlite3_int64)at),
				 SQLITE_OK);
		at += sizeof(chunk);
	}
	/* Overwrite inside, and past the end of, what is buffered. */
	memset(chunk, 0xAB, sizeof(chunk));
	memcpy(want + 1000, chunk, 100);
	assert_int_equal(f->pMethods->xWrite(f, chunk, 100, 1000), SQLITE_OK);
	memcpy(want + at - 50, chunk, 100);
	assert_int_equal(f->pMethods->xWrite(f, chunk, 100,
					     (sqlite3_int64)(at - 50)),
			 SQLITE_OK);
	at += 50;
	hl_walbuf_stats(w, &s);
	assert_int_equal(s.flushes, 0); /* all still in the buffer */
	/* The size sees it, and the file has it. */
	assert_int_equal(f->pMethods->xFileSize(f, &size), SQLITE_OK);
	assert_int_equal(size, (sqlite3_int64)at);
	hl_walbuf_stats(w, &s);
	/* In pieces the unix VFS takes whole (< 128 KiB each). */
	assert_int_equal(s.flushes, (at + 124 * 1024 - 1) / (124 * 1024));
	assert_int_equal(s.bytes, at);

	/* A write away from the buffer; a read of it flushes first. */
	memset(chunk, 0xCD, sizeof(chunk));
	memcpy(want + at + 4096, chunk, 10);
	assert_int_equal(f->pMethods->xWrite(f, chunk, 10,
					     (sqlite3_int64)(at + 4096)),
			 SQLITE_OK);
	memset(got, 0, sizeof(got));
	assert_int_equal(f->pMethods->xRead(f, got, 10,
					    (sqlite3_int64)(at + 4096)),
			 SQLITE_OK);
	assert_memory_equal(got, chunk, 10);
	/* And one more, written by the sync. */
	memcpy(want + 5, chunk, 3);
	assert_int_equal(f->pMethods->xWrite(f, chunk, 3, 5), SQLITE_OK);
	assert_int_equal(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);

	fp = fopen(path, "rb");
	assert_non_null(fp);
	memset(got, 0, sizeof(got));
	assert_int_equal(fread(got, 1, sizeof(got), fp), at + 4096 + 10);
	fclose(fp);
	assert_memory_equal(got, want, at + 4096 + 10);

	assert_int_equal(f->pMethods->xClose(f), SQLITE_OK);
	free(f);
	hl_walbuf_close(w);
}

static void test_arguments(void **state)
{
	struct hl_walbuf *a, *b;

	(void)state;
	assert_int_equal(hl_walbuf_open(&a, NULL, 100), HL_EINVAL);
	assert_null(a);
	assert_int_equal(hl_walbuf_open(&a, "no-such-vfs", 1 << 20),
			 HL_ESTORE);
	assert_int_equal(hl_walbuf_open(&a, NULL, 1 << 20), 0);
	assert_int_equal(hl_walbuf_open(&b, hl_walbuf_name(a), 1 << 20), 0);
	assert_string_not_equal(hl_walbuf_name(a), hl_walbuf_name(b));
	assert_non_null(sqlite3_vfs_find(hl_walbuf_name(b)));
	/* Never the default. */
	assert_ptr_not_equal(sqlite3_vfs_find(NULL),
			     sqlite3_vfs_find(hl_walbuf_name(a)));
	hl_walbuf_close(b);
	hl_walbuf_close(a);
	assert_null(sqlite3_vfs_find("no-such-vfs"));
	hl_walbuf_close(NULL);
}

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("walbuf", HL_LOG_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_file_level),
		cmocka_unit_test(test_commits_visible),
		cmocka_unit_test(test_commits_unsynced),
		cmocka_unit_test(test_small_buffer),
		cmocka_unit_test(test_spilled_transaction),
		cmocka_unit_test(test_death_mid_transaction),
	};

	return cmocka_run_group_tests(tests, group_setup,
				      hl_test_group_teardown);
}
