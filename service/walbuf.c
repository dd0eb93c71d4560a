/* walbuf.c: a VFS that writes a transaction's WAL frames in a few large
 * writes (walbuf.h says why and what stays the same). */
#include "walbuf.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define WALBUF_FIRST (64 * 1024) /* the first buffer; doubled as needed */
#define WALBUF_PIECE (124 * 1024) /* most bytes per write below */

struct wb_file;

struct hl_walbuf {
	sqlite3_vfs vfs;        /* ours, registered under name */
	sqlite3_vfs *real;      /* the VFS below */
	char name[48];
	size_t max;             /* most bytes buffered per WAL file */
	struct wb_file *wals;   /* the open WAL files */
	struct hl_walbuf_stats stats;
};

/* One open file: ours, followed in memory by the real VFS's. */
struct wb_file {
	sqlite3_file base;
	struct hl_walbuf *w;
	sqlite3_file *real;
	bool wal;               /* a WAL: writes are buffered */
	struct wb_file *next;   /* in w->wals */
	unsigned char *buf;
	size_t cap, len;        /* buf holds len bytes for the file at off */
	sqlite3_int64 off;
	int err;                /* a failed write no call could report yet */
};

/* Writes n bytes at off with the VFS below, in pieces it takes whole: the
 * unix VFS writes at most 128 KiB - 1 bytes per call (seekAndWriteFd masks
 * the count with 0x1ffff) and calls a larger write that came out short a
 * full disk. */
static int write_below(struct wb_file *f, const void *p, size_t n,
		       sqlite3_int64 off)
{
	const unsigned char *b = p;
	size_t piece;
	int rc = SQLITE_OK;

	while (n > 0 && rc == SQLITE_OK) {
		piece = n < WALBUF_PIECE ? n : WALBUF_PIECE;
		f->w->stats.flushes++;
		f->w->stats.bytes += piece;
		rc = f->real->pMethods->xWrite(f->real, b, (int)piece, off);
		b += piece;
		off += (sqlite3_int64)piece;
		n -= piece;
	}
	return rc;
}

/* Writes what is buffered; then the buffer is empty, whatever the outcome
 * (a failed write fails the transaction: SQLite forgets its frames). */
static int flush(struct wb_file *f)
{
	int rc;

	if (f->err) {
		rc = f->err;
		f->err = 0;
		f->len = 0;
		return rc;
	}
	if (f->len == 0)
		return SQLITE_OK;
	rc = write_below(f, f->buf, f->len, f->off);
	f->len = 0;
	return rc;
}

/* Room for need bytes in f->buf, within w->max. */
static bool reserve(struct wb_file *f, size_t need)
{
	size_t cap = f->cap ? f->cap : WALBUF_FIRST;
	unsigned char *p;

	if (need > f->w->max)
		return false;
	if (need <= f->cap)
		return true;
	while (cap < need)
		cap *= 2;
	if (cap > f->w->max)
		cap = f->w->max;
	p = realloc(f->buf, cap);
	if (!p)
		return false;
	f->buf = p;
	f->cap = cap;
	return true;
}

/* Before anything that must find the file as SQLite wrote it. */
static int settle(struct wb_file *f)
{
	return f->wal ? flush(f) : SQLITE_OK;
}

static int wb_write(sqlite3_file *file, const void *p, int n,
		    sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)file;
	size_t at;
	int rc;

	if (!f->wal)
		return f->real->pMethods->xWrite(f->real, p, n, off);
	f->w->stats.writes++;
	if (n <= 0)
		return f->real->pMethods->xWrite(f->real, p, n, off);
	if (f->err)
		return flush(f);
	/* Within or right after what is buffered: into the buffer (a frame
	 * rewritten in the same transaction is overwritten in place). */
	if (f->len && off >= f->off &&
	    (size_t)(off - f->off) <= f->len) {
		at = (size_t)(off - f->off);
		if (reserve(f, at + (size_t)n)) {
			memcpy(f->buf + at, p, (size_t)n);
			if (at + (size_t)n > f->len)
				f->len = at + (size_t)n;
			return SQLITE_OK;
		}
	}
	rc = flush(f);
	if (rc != SQLITE_OK)
		return rc;
	if (!reserve(f, (size_t)n))
		return write_below(f, p, (size_t)n, off);
	memcpy(f->buf, p, (size_t)n);
	f->len = (size_t)n;
	f->off = off;
	return SQLITE_OK;
}

static int wb_read(sqlite3_file *file, void *p, int n, sqlite3_int64 off)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, p, n,
								off);
}

static int wb_close(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file;
	struct wb_file **pp;
	int rc = SQLITE_OK, rc2;

	if (f->wal) {
		rc = flush(f);
		for (pp = &f->w->wals; *pp; pp = &(*pp)->next)
			if (*pp == f) {
				*pp = f->next;
				break;
			}
		free(f->buf);
		f->buf = NULL;
		f->cap = 0;
	}
	rc2 = f->real->pMethods->xClose(f->real);
	return rc != SQLITE_OK ? rc : rc2;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real,
								    size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real,
								    size);
}

static int wb_lock(sqlite3_file *file, int lock)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xLock(f->real, lock);
}

static int wb_unlock(sqlite3_file *file, int lock)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xUnlock(f->real, lock);
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real,
								       op, arg);
}

static int wb_sector_size(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xSectorSize(f->real);
}

static int wb_device_chars(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xDeviceCharacteristics(f->real);
}

static int wb_shm_map(sqlite3_file *file, int pg, int pgsz, int extend,
		      void volatile **pp)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xShmMap(f->real, pg, pgsz, extend, pp);
}

static int wb_shm_lock(sqlite3_file *file, int off, int n, int flags)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xShmLock(f->real, off, n, flags);
}

/* SQLite calls this (on the main database) around every change of the WAL
 * index's header, e.g. when a commit makes its frames visible: whatever
 * is buffered goes to the file first. A failure is kept for the WAL's
 * next call, which can report it. */
static void wb_shm_barrier(sqlite3_file *file)
{
	struct wb_file *f = (struct wb_file *)file, *wal;
	int rc;

	for (wal = f->w->wals; wal; wal = wal->next)
		if (wal->len) {
			rc = flush(wal);
			if (rc != SQLITE_OK)
				wal->err = rc;
		}
	f->real->pMethods->xShmBarrier(f->real);
}

static int wb_shm_unmap(sqlite3_file *file, int del)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xShmUnmap(f->real, del);
}

static int wb_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **pp)
{
	struct wb_file *f = (struct wb_file *)file;
	int rc = settle(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n,
								 pp);
}

static int wb_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
	struct wb_file *f = (struct wb_file *)file;

	return f->real->pMethods->xUnfetch(f->real, off, p);
}

static const sqlite3_io_methods wb_io = {
	.iVersion = 3,
	.xClose = wb_close,
	.xRead = wb_read,
	.xWrite = wb_write,
	.xTruncate = wb_truncate,
	.xSync = wb_sync,
	.xFileSize = wb_file_size,
	.xLock = wb_lock,
	.xUnlock = wb_unlock,
	.xCheckReservedLock = wb_check_reserved,
	.xFileControl = wb_file_control,
	.xSectorSize = wb_sector_size,
	.xDeviceCharacteristics = wb_device_chars,
	.xShmMap = wb_shm_map,
	.xShmLock = wb_shm_lock,
	.xShmBarrier = wb_shm_barrier,
	.xShmUnmap = wb_shm_unmap,
	.xFetch = wb_fetch,
	.xUnfetch = wb_unfetch,
};

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name,
		   sqlite3_file *file, int flags, int *out_flags)
{
	struct hl_walbuf *w = vfs->pAppData;
	struct wb_file *f = (struct wb_file *)file;
	int rc;

	memset(f, 0, sizeof(*f));
	f->w = w;
	f->real = (sqlite3_file *)(f + 1);
	rc = w->real->xOpen(w->real, name, f->real, flags, out_flags);
	/* SQLite calls xClose only on a file whose pMethods is set. */
	if (!f->real->pMethods) {
		f->base.pMethods = NULL;
		return rc;
	}
	f->base.pMethods = &wb_io;
	if (flags & SQLITE_OPEN_WAL) {
		f->wal = true;
		f->next = w->wals;
		w->wals = f;
	}
	return rc;
}

static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	struct hl_walbuf *w = vfs->pAppData;

	return w->real->xDelete(w->real, name, sync);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	struct hl_walbuf *w = vfs->pAppData;

	return w->real->xAccess(w->real, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			    char *out)
{
	struct hl_walbuf *w = vfs->pAppData;

	return w->real->xFullPathname(w->real, name, n, out);
}

int hl_walbuf_open(struct hl_walbuf **out, const char *below,
		   size_t max_bytes)
{
	sqlite3_vfs *real;
	struct hl_walbuf *w;

	*out = NULL;
	if (max_bytes < 4096 || max_bytes > (size_t)1 << 30)
		return HL_EINVAL;
	if (sqlite3_initialize() != SQLITE_OK)
		return HL_ESTORE;
	real = sqlite3_vfs_find(below);
	if (!real)
		return HL_ESTORE;
	w = calloc(1, sizeof(*w));
	if (!w)
		return HL_ENOMEM;
	snprintf(w->name, sizeof(w->name), "hl-walbuf-%p", (void *)w);
	w->real = real;
	w->max = max_bytes;
	/* Everything but files and names is the real VFS's own. */
	w->vfs = *real;
	w->vfs.pNext = NULL;
	w->vfs.zName = w->name;
	w->vfs.pAppData = w;
	w->vfs.szOsFile = (int)sizeof(struct wb_file) + real->szOsFile;
	w->vfs.xOpen = wb_open;
	w->vfs.xDelete = wb_delete;
	w->vfs.xAccess = wb_access;
	w->vfs.xFullPathname = wb_full_pathname;
	if (sqlite3_vfs_register(&w->vfs, 0) != SQLITE_OK) {
		free(w);
		return HL_ESTORE;
	}
	*out = w;
	return 0;
}

const char *hl_walbuf_name(const struct hl_walbuf *w)
{
	return w->name;
}

void hl_walbuf_stats(const struct hl_walbuf *w, struct hl_walbuf_stats *out)
{
	*out = w->stats;
}

void hl_walbuf_close(struct hl_walbuf *w)
{
	if (!w)
		return;
	sqlite3_vfs_unregister(&w->vfs);
	free(w);
}
