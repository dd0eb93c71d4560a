/* testutil.h: helpers shared by the C unit tests: a per-run temporary
 * directory under $HL_TEST_TMP (ctest sets it; /tmp otherwise). */
#ifndef HL_TESTUTIL_H
#define HL_TESTUTIL_H

#include <stddef.h>

/* Creates "<HL_TEST_TMP>/<prefix>.XXXXXX". Returns 0 or -1. */
int hl_test_tmpdir_make(const char *prefix);

/* Removes the directory and the files in it. */
void hl_test_tmpdir_remove(void);

/* Writes a new unique "<dir>/<name>-N.db" path into buf. */
void hl_test_path(char *buf, size_t cap, const char *name);

/* The directory made by hl_test_tmpdir_make. */
const char *hl_test_tmpdir(void);

#endif
