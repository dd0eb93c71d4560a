/* audit.h: owns the append-only audit log and its BLAKE2b hash chain. */
#ifndef HL_AUDIT_H
#define HL_AUDIT_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#define HL_AUDIT_HASH_BYTES 32

/* One audit entry to append. Strings are NUL-terminated; detail is short
 * JSON (or "") and never holds secrets, message text or addresses. */
struct hl_audit_entry {
	int64_t at_ms;       /* unix milliseconds; 0 = now */
	int64_t actor;       /* staff id, or 0 for system/anonymous (stored NULL) */
	const char *action;  /* dotted name, e.g. "login.fail" */
	int64_t target;      /* staff id acted on, or 0 (stored NULL) */
	const char *detail;  /* may be NULL (stored '') */
};

/*
 * The canonical encoding hashed for a row:
 *   entry_hash = BLAKE2b-256( "helpline-audit-v1" || prev_hash(32) ||
 *                u64be(seq) || i64be(at) || i64be(actor or 0) ||
 *                u32be(len) action || i64be(target or 0) || u32be(len) detail )
 * prev_hash of seq 1 is 32 zero bytes. Exposed for tests and verifiers.
 */
void hl_audit_hash(const unsigned char prev[HL_AUDIT_HASH_BYTES], int64_t seq,
		   int64_t at, int64_t actor, const char *action,
		   int64_t target, const char *detail,
		   unsigned char out[HL_AUDIT_HASH_BYTES]);

/*
 * Appends e to the audit table, chained to the current last row, using the
 * store's prepared statements HL_STMT_AUDIT_LAST and HL_STMT_AUDIT_INSERT
 * (store.h). Must run inside a write transaction (a store job on the
 * writer thread; helplinectl runs its work as store jobs too), so the last
 * row cannot change underneath it, whichever process appends. Returns 0
 * and sets *seq_out (may be NULL), or HL_ESTORE.
 */
int hl_audit_append(sqlite3_stmt *const *stmts, const struct hl_audit_entry *e,
		    int64_t *seq_out);

/* Result of hl_audit_verify. */
struct hl_audit_report {
	int64_t rows;        /* rows checked */
	int64_t first_bad;   /* seq of the first broken link, 0 if none */
	char why[160];       /* what is wrong at first_bad */
	unsigned char head[HL_AUDIT_HASH_BYTES]; /* last entry_hash (zeros if empty) */
};

/*
 * Walks the whole chain in seq order, recomputing every hash. Detects an
 * edited row (hash mismatch), a deleted or inserted row (seq gap, or
 * prev_hash not the previous entry_hash) and reordering. Returns 0 when the
 * chain is intact, HL_EINVAL when broken (report filled), HL_ESTORE on a
 * database error.
 */
int hl_audit_verify(sqlite3 *db, struct hl_audit_report *report);

#endif
