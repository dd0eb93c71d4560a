/* testutil.c: the unit tests' temporary directory and store fixture. */
#include "testutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[4096];
static int file_seq;

int hl_test_tmpdir_make(const char *prefix)
{
	const char *base = getenv("HL_TEST_TMP");

	if (!base || !*base)
		base = "/tmp";
	if (mkdir(base, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/%s.XXXXXX", base, prefix);
	return mkdtemp(tmp_dir) ? 0 : -1;
}

void hl_test_tmpdir_remove(void)
{
	char p[4096 + 512];
	struct dirent *e;
	DIR *d = opendir(tmp_dir);

	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmp_dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmp_dir);
}

void hl_test_path(char *buf, size_t cap, const char *name)
{
	int n = snprintf(buf, cap, "%s/%s-%d.db", tmp_dir, name, file_seq++);

	if (n < 0 || (size_t)n >= cap)
		abort(); /* a test bug: the temporary path does not fit */
}

const char *hl_test_tmpdir(void)
{
	return tmp_dir;
}

void hl_test_store_reopen(struct hl_test_store *e, unsigned char key_byte)
{
	char err[512];
	unsigned char master[HL_KEY_BYTES];

	assert_int_equal(uv_loop_init(&e->loop), 0);
	if (hl_store_open(&e->st, &e->loop, e->path, NULL, err, sizeof(err)) != 0)
		fail_msg("hl_store_open: %s", err);
	e->open = true;
	memset(master, key_byte, sizeof(master));
	assert_int_equal(hl_keys_from_master(&e->keys, master), 0);
}

void hl_test_store_open(struct hl_test_store *e, const char *name,
			unsigned char key_byte)
{
	memset(e, 0, sizeof(*e));
	hl_test_path(e->path, sizeof(e->path), name);
	hl_test_store_reopen(e, key_byte);
}

void hl_test_store_close(struct hl_test_store *e)
{
	if (!e->open)
		return;
	hl_store_close(&e->st);
	assert_int_equal(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&e->loop), 0);
	hl_keys_wipe(&e->keys);
	e->open = false;
}

sqlite3 *hl_test_plain(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL),
			 SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

void hl_test_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fail_msg("%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
	}
}

int64_t hl_test_query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

void hl_test_assert_integrity(sqlite3 *db)
{
	sqlite3_stmt *s;

	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
					    &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
	sqlite3_finalize(s);
}

int hl_test_group_begin(const char *prefix, int log_level)
{
	hl_log_set_level((enum hl_log_level)log_level);
	if (sodium_init() < 0)
		return -1;
	return hl_test_tmpdir_make(prefix);
}

int hl_test_group_teardown(void **state)
{
	(void)state;
	hl_test_tmpdir_remove();
	return 0;
}
