/* testutil.c: the unit tests' temporary directory. */
#include "testutil.h"

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
	snprintf(buf, cap, "%s/%s-%d.db", tmp_dir, name, file_seq++);
}

const char *hl_test_tmpdir(void)
{
	return tmp_dir;
}
