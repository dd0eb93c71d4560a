/* walbuf.h: a SQLite VFS over another that gathers the WAL's writes of a
 * transaction in memory and hands them to the file system in a few large
 * writes (124 KiB each at most), just before the WAL is synced.
 *
 * Why: SQLite writes each WAL frame as two pwrite calls (its 24-byte header,
 * then the page), so a group commit of a few hundred dirty pages was a few
 * hundred system calls, and on this project's virtual machines a system
 * call is dear: the store writer spent about half its time in the kernel at
 * 20k msgs/s (docs/performance.md). The bytes, their order in the file and
 * the moment they are durable are unchanged: everything buffered is written
 * before the WAL is synced, read, truncated, measured or closed, and before
 * the connection publishes new frames in the WAL index (xShmBarrier of the
 * main database), so no reader, in this process or another, can see a frame
 * that is not in the file. What can differ is only the order in which
 * unsynced bytes reach the page cache, which a crash could scramble anyway.
 *
 * Only files SQLite opens as a WAL are buffered; everything else goes
 * straight through. One instance serves one connection (the store writer):
 * it is not thread-safe.
 */
#ifndef HL_WALBUF_H
#define HL_WALBUF_H

#include <stddef.h>
#include <stdint.h>

struct hl_walbuf;

struct hl_walbuf_stats {
	uint64_t writes;   /* xWrite calls on WAL files */
	uint64_t flushes;  /* writes handed to the VFS below */
	uint64_t bytes;    /* bytes those carried */
};

/* Registers a new VFS (not the default) over the VFS named below (NULL:
 * the default), buffering up to max_bytes per WAL file (grown as needed;
 * a larger write goes straight through). Returns 0 or HL_ENOMEM /
 * HL_ESTORE. */
int hl_walbuf_open(struct hl_walbuf **out, const char *below,
		   size_t max_bytes);

/* The name to pass to sqlite3_open_v2. */
const char *hl_walbuf_name(const struct hl_walbuf *w);

void hl_walbuf_stats(const struct hl_walbuf *w, struct hl_walbuf_stats *out);

/* Unregisters and frees; after every connection using it is closed. NULL
 * is fine. */
void hl_walbuf_close(struct hl_walbuf *w);

#endif
