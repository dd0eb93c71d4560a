/* testutil.h: helpers shared by the C unit tests: a per-run temporary
 * directory under $HL_TEST_TMP (ctest sets it; /tmp otherwise). */
#ifndef HL_TESTUTIL_H
#define HL_TESTUTIL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "keys.h"
#include "store.h"

/* A store on a loop of its own, for tests that run store jobs. */
struct hl_test_store {
	uv_loop_t loop;        /* the loop completions run on */
	struct hl_store st;    /* the store under test */
	struct hl_keys keys;   /* keys from a fixed master (key_byte repeated) */
	char path[4096];       /* the database file */
	bool open;             /* st and loop need closing */
};

/* A test group's start: sets the log level (enum hl_log_level), initialises
 * libsodium and makes the temporary directory. Returns 0 or -1. */
int hl_test_group_begin(const char *prefix, int log_level);

/* A cmocka group teardown: removes the temporary directory. */
int hl_test_group_teardown(void **state);

/* Creates "<HL_TEST_TMP>/<prefix>.XXXXXX". Returns 0 or -1. */
int hl_test_tmpdir_make(const char *prefix);

/* Removes the directory and the files in it. */
void hl_test_tmpdir_remove(void);

/* Writes a new unique "<dir>/<name>-N.db" path into buf. */
void hl_test_path(char *buf, size_t cap, const char *name);

/* The directory made by hl_test_tmpdir_make. */
const char *hl_test_tmpdir(void);

/* Opens e on a new "<name>-N.db" in the temporary directory, with keys
 * from a master of key_byte repeated. Fails the test on error (cmocka). */
void hl_test_store_open(struct hl_test_store *e, const char *name,
			unsigned char key_byte);

/* Reopens e's database (same path) after hl_test_store_close. */
void hl_test_store_reopen(struct hl_test_store *e, unsigned char key_byte);

/* Closes e (store, loop, keys); a no-op when not open. */
void hl_test_store_close(struct hl_test_store *e);

/* Runs sql on db; fails the test (cmocka) with SQLite's message if it fails. */
void hl_test_exec(sqlite3 *db, const char *sql);

/* The first column of sql's first row as an integer; -1 when no row. */
int64_t hl_test_query_int(sqlite3 *db, const char *sql);

/* Fails the test unless PRAGMA integrity_check says "ok". */
void hl_test_assert_integrity(sqlite3 *db);

/* A plain read-only connection to path of the test's own. */
sqlite3 *hl_test_plain(const char *path);

#endif
