/* audit.h: owns the append-only audit log and its BLAKE2b hash chain.
 *
 * What the chain proves, and what it does not: anyone who can write the
 * database and knows this (public) algorithm can append a well-formed entry
 * at the end, or delete entries from the end, and the chain still verifies.
 * It detects edits, deletions, insertions and reordering *before the head*.
 * The answer to forged appends and truncation is outside the database: head
 * checkpoints (seq, entry_hash) signed with the service's key and exported
 * elsewhere; a verifier compares the chain against the latest checkpoint. */
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
 * The label is hashed without its NUL; integers are big-endian two's
 * complement; lengths are strlen; NULL action or detail hash as "".
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
 * and sets *seq_out (may be NULL); HL_EINVAL (nothing written) when action
 * is empty, longer than 64 bytes or not [a-z0-9._], detail is longer than
 * 1024 bytes, or at_ms is negative; HL_ESTORE on a database error or when
 * the last row's entry_hash is not a 32-byte blob (chaining to it would
 * make every later entry unverifiable). Both statements are reset and their
 * bindings cleared on every path.
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
 * database error (why says which).
 *
 * Checks per row, in this order, the first failure being reported:
 *   - seq is the expected one (1, 2, ...). A gap is reported at the row
 *     found in the missing one's place: after deleting row 50, first_bad is
 *     51 and why is "seq 50 missing (row deleted)". (A row with seq < 1 is
 *     reported with its own seq, which may be 0: trust the return value.)
 *   - every column has the type append writes: integer at; actor and
 *     target NULL or a non-zero integer (a stored 0 would hash like NULL);
 *     text action and detail without NUL bytes; 32-byte blob hashes.
 *     Anything else (NULL, text where a number belongs) is a broken row.
 *   - prev_hash equals the previous row's entry_hash (zeros for seq 1):
 *     "prev_hash does not match entry N". A row moved to another seq fails
 *     here, at the lower of two swapped rows.
 *   - entry_hash equals the recomputed hash: "entry_hash does not match the
 *     row (row edited)".
 * rows counts every row, also after the first broken one; head is the last
 * row's stored entry_hash (zeros if empty or not a 32-byte blob), so a
 * checkpoint can be compared with it. report may be NULL. Runs in one
 * SELECT, i.e. on one snapshot, on any connection (helplinectl's own).
 */
int hl_audit_verify(sqlite3 *db, struct hl_audit_report *report);

#endif
