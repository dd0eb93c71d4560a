/* audit.c: appending to the audit table as a BLAKE2b hash chain, and
 * walking the chain to prove that no row was edited, deleted or moved. */
#include "audit.h"
#include "common.h"
#include "log.h"
#include "store.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Domain separation: a hash made for anything else never equals an audit
 * entry hash, and a future encoding gets a new label. No NUL is hashed. */
static const char audit_label[] = "helpline-audit-v1";

#define ACTION_MAX 64
#define DETAIL_MAX 1024

_Static_assert(HL_AUDIT_HASH_BYTES >= crypto_generichash_BYTES_MIN &&
		       HL_AUDIT_HASH_BYTES <= crypto_generichash_BYTES_MAX,
	       "audit hash size");

static void put_be64(unsigned char b[8], uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static void put_be32(unsigned char b[4], uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

static void update_be64(crypto_generichash_state *st, uint64_t v)
{
	unsigned char b[8];

	put_be64(b, v);
	crypto_generichash_update(st, b, sizeof(b));
}

/* Length-prefixed, so that moving bytes between action and detail changes
 * the hash. */
static void update_str(crypto_generichash_state *st, const char *s,
		       size_t len)
{
	unsigned char b[4];

	put_be32(b, (uint32_t)len);
	crypto_generichash_update(st, b, sizeof(b));
	crypto_generichash_update(st, (const unsigned char *)s, len);
}

/* hl_audit_hash with explicit string lengths (the verifier has them from
 * SQLite). Lengths are below 2^32: SQLite's limit is 1e9 bytes. */
static void audit_hash_n(const unsigned char prev[HL_AUDIT_HASH_BYTES],
			 int64_t seq, int64_t at, int64_t actor,
			 const char *action, size_t action_len, int64_t target,
			 const char *detail, size_t detail_len,
			 unsigned char out[HL_AUDIT_HASH_BYTES])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, HL_AUDIT_HASH_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)audit_label,
				  sizeof(audit_label) - 1);
	crypto_generichash_update(&st, prev, HL_AUDIT_HASH_BYTES);
	/* Signed values as their two's complement bit pattern. */
	update_be64(&st, (uint64_t)seq);
	update_be64(&st, (uint64_t)at);
	update_be64(&st, (uint64_t)actor);
	update_str(&st, action, action_len);
	update_be64(&st, (uint64_t)target);
	update_str(&st, detail, detail_len);
	crypto_generichash_final(&st, out, HL_AUDIT_HASH_BYTES);
}

void hl_audit_hash(const unsigned char prev[HL_AUDIT_HASH_BYTES], int64_t seq,
		   int64_t at, int64_t actor, const char *action,
		   int64_t target, const char *detail,
		   unsigned char out[HL_AUDIT_HASH_BYTES])
{
	if (!action)
		action = "";
	if (!detail)
		detail = "";
	audit_hash_n(prev, seq, at, actor, action, strlen(action), target,
		     detail, strlen(detail), out);
}

/* Actions are dotted lower-case names ("login.fail"): a closed alphabet
 * keeps them greppable and free of anything a person typed. */
static int action_ok(const char *a)
{
	size_t n = 0;

	if (!a)
		return 0;
	for (; a[n]; n++) {
		char c = a[n];

		if (n >= ACTION_MAX)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_'))
			return 0;
	}
	return n > 0;
}

/* Binds an id, or NULL for 0 ("nobody"), as the schema stores it. */
static int bind_id(sqlite3_stmt *s, int col, int64_t id)
{
	return id ? sqlite3_bind_int64(s, col, id) : sqlite3_bind_null(s, col);
}

int hl_audit_append(sqlite3_stmt *const *stmts, const struct hl_audit_entry *e,
		    int64_t *seq_out)
{
	sqlite3_stmt *last = stmts[HL_STMT_AUDIT_LAST];
	sqlite3_stmt *ins = stmts[HL_STMT_AUDIT_INSERT];
	unsigned char prev[HL_AUDIT_HASH_BYTES] = {0};
	unsigned char hash[HL_AUDIT_HASH_BYTES];
	const char *detail;
	int64_t seq = 0, at;
	int rc, status = HL_ESTORE;

	if (!e || !action_ok(e->action) || e->at_ms < 0)
		return HL_EINVAL;
	detail = e->detail ? e->detail : "";
	if (strlen(detail) > DETAIL_MAX)
		return HL_EINVAL;
	at = e->at_ms ? e->at_ms : hl_now_ms();

	rc = sqlite3_step(last);
	if (rc == SQLITE_ROW) {
		/* Chaining to a head that is not a 32-byte hash would make
		 * every later entry unverifiable: refuse loudly instead. */
		if (sqlite3_column_type(last, 0) != SQLITE_INTEGER ||
		    sqlite3_column_type(last, 1) != SQLITE_BLOB ||
		    sqlite3_column_bytes(last, 1) != HL_AUDIT_HASH_BYTES) {
			hl_error("audit.bad_head", "seq=%lld",
				 (long long)sqlite3_column_int64(last, 0));
			goto out;
		}
		seq = sqlite3_column_int64(last, 0);
		memcpy(prev, sqlite3_column_blob(last, 1), HL_AUDIT_HASH_BYTES);
	} else if (rc != SQLITE_DONE) {
		goto out;
	}
	if (seq < 0 || seq == INT64_MAX)
		goto out;
	seq++;

	hl_audit_hash(prev, seq, at, e->actor, e->action, e->target, detail,
		      hash);
	/* SQLITE_STATIC is safe: everything bound outlives the step, and the
	 * bindings are cleared before this function returns. */
	if (sqlite3_bind_int64(ins, 1, seq) != SQLITE_OK ||
	    sqlite3_bind_int64(ins, 2, at) != SQLITE_OK ||
	    bind_id(ins, 3, e->actor) != SQLITE_OK ||
	    sqlite3_bind_text(ins, 4, e->action, -1, SQLITE_STATIC) !=
		    SQLITE_OK ||
	    bind_id(ins, 5, e->target) != SQLITE_OK ||
	    sqlite3_bind_text(ins, 6, detail, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(ins, 7, prev, HL_AUDIT_HASH_BYTES,
			      SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(ins, 8, hash, HL_AUDIT_HASH_BYTES,
			      SQLITE_STATIC) != SQLITE_OK)
		goto out;
	if (sqlite3_step(ins) != SQLITE_DONE)
		goto out;
	if (seq_out)
		*seq_out = seq;
	status = 0;
out:
	sqlite3_reset(last);
	sqlite3_clear_bindings(last);
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	return status;
}

/* Columns of the verifier's query. */
enum { C_SEQ, C_AT, C_ACTOR, C_ACTION, C_TARGET, C_DETAIL, C_PREV, C_HASH };

/* An id column: NULL reads as 0; a stored 0 or any non-integer is refused,
 * because append never writes them and the hash could not tell NULL from 0
 * (so such an edit would otherwise go unnoticed). Returns 0 or -1. */
static int read_id(sqlite3_stmt *s, int col, int64_t *out)
{
	switch (sqlite3_column_type(s, col)) {
	case SQLITE_NULL:
		*out = 0;
		return 0;
	case SQLITE_INTEGER:
		*out = sqlite3_column_int64(s, col);
		return *out != 0 ? 0 : -1;
	default:
		return -1;
	}
}

/* A text column with no NUL inside: the hash covers C strings, so a NUL
 * followed by more bytes would hide those bytes from it. Returns 0 or -1. */
static int read_text(sqlite3_stmt *s, int col, const char **out, size_t *len)
{
	const char *t;
	int n;

	if (sqlite3_column_type(s, col) != SQLITE_TEXT)
		return -1;
	t = (const char *)sqlite3_column_text(s, col);
	n = sqlite3_column_bytes(s, col);
	if (!t || n < 0 || memchr(t, '\0', (size_t)n))
		return -1;
	*out = t;
	*len = (size_t)n;
	return 0;
}

/* A 32-byte blob column, or NULL. */
static const unsigned char *read_hash(sqlite3_stmt *s, int col)
{
	if (sqlite3_column_type(s, col) != SQLITE_BLOB ||
	    sqlite3_column_bytes(s, col) != HL_AUDIT_HASH_BYTES)
		return NULL;
	return sqlite3_column_blob(s, col);
}

/*
 * Checks one row against the previous entry hash and the expected seq.
 * Returns 0 when the row is sound, else -1 with the problem in why. The
 * seq gap is checked first, then the link, then the row's own hash, so a
 * moved row is reported as a broken link and an edited one as a mismatch.
 */
static int check_row(sqlite3_stmt *s, int64_t expect,
		     const unsigned char prev[HL_AUDIT_HASH_BYTES],
		     char *why, size_t whylen)
{
	const unsigned char *row_prev, *row_hash;
	unsigned char calc[HL_AUDIT_HASH_BYTES];
	const char *action, *detail;
	size_t action_len, detail_len;
	int64_t seq, at, actor, target;

	/* The type first: reading a value converts it in place. */
	if (sqlite3_column_type(s, C_SEQ) != SQLITE_INTEGER) {
		snprintf(why, whylen, "seq is not an integer");
		return -1;
	}
	seq = sqlite3_column_int64(s, C_SEQ);
	if (seq == expect + 1) {
		snprintf(why, whylen, "seq %lld missing (row deleted)",
			 (long long)expect);
		return -1;
	}
	if (seq > expect) {
		snprintf(why, whylen, "seq %lld..%lld missing (rows deleted)",
			 (long long)expect, (long long)(seq - 1));
		return -1;
	}
	if (seq < expect) {
		/* Only a seq below 1 gets here: seq is the primary key and
		 * the query orders by it. */
		snprintf(why, whylen, "seq %lld out of range (expected %lld)",
			 (long long)seq, (long long)expect);
		return -1;
	}
	if (sqlite3_column_type(s, C_AT) != SQLITE_INTEGER ||
	    read_id(s, C_ACTOR, &actor) != 0 ||
	    read_text(s, C_ACTION, &action, &action_len) != 0 ||
	    read_id(s, C_TARGET, &target) != 0 ||
	    read_text(s, C_DETAIL, &detail, &detail_len) != 0) {
		snprintf(why, whylen, "a column holds a value append never "
			 "writes (row edited)");
		return -1;
	}
	at = sqlite3_column_int64(s, C_AT);
	row_prev = read_hash(s, C_PREV);
	row_hash = read_hash(s, C_HASH);
	if (!row_prev || !row_hash) {
		snprintf(why, whylen, "prev_hash or entry_hash is not a "
			 "%d-byte blob (row edited)", HL_AUDIT_HASH_BYTES);
		return -1;
	}
	if (sodium_memcmp(row_prev, prev, HL_AUDIT_HASH_BYTES) != 0) {
		if (seq == 1)
			snprintf(why, whylen, "prev_hash of the first entry "
				 "is not zero");
		else
			snprintf(why, whylen, "prev_hash does not match "
				 "entry %lld", (long long)(seq - 1));
		return -1;
	}
	audit_hash_n(prev, seq, at, actor, action, action_len, target, detail,
		     detail_len, calc);
	if (sodium_memcmp(calc, row_hash, HL_AUDIT_HASH_BYTES) != 0) {
		snprintf(why, whylen, "entry_hash does not match the row "
			 "(row edited)");
		return -1;
	}
	return 0;
}

int hl_audit_verify(sqlite3 *db, struct hl_audit_report *report)
{
	static const char sql[] = "SELECT seq, at, actor, action, target, "
				  "detail, prev_hash, entry_hash FROM audit "
				  "ORDER BY seq";
	struct hl_audit_report local;
	struct hl_audit_report *r = report ? report : &local;
	unsigned char prev[HL_AUDIT_HASH_BYTES] = {0};
	const unsigned char *h;
	sqlite3_stmt *s = NULL;
	int64_t expect = 1;
	int rc, broken = 0;

	memset(r, 0, sizeof(*r));
	/* One statement is one read transaction: the walk sees a single
	 * snapshot even while the server appends (WAL). */
	rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		snprintf(r->why, sizeof(r->why), "cannot read the audit "
			 "table: %s", sqlite3_errmsg(db));
		return HL_ESTORE;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		r->rows++;
		if (!broken) {
			if (check_row(s, expect, prev, r->why,
				      sizeof(r->why)) != 0) {
				broken = 1;
				r->first_bad = sqlite3_column_int64(s, C_SEQ);
			} else {
				memcpy(prev, sqlite3_column_blob(s, C_HASH),
				       HL_AUDIT_HASH_BYTES);
				expect++;
			}
		}
		/* The head is the last row as stored, intact or not, so a
		 * broken chain's head can still be compared to a checkpoint. */
		h = read_hash(s, C_HASH);
		if (h)
			memcpy(r->head, h, HL_AUDIT_HASH_BYTES);
		else
			memset(r->head, 0, HL_AUDIT_HASH_BYTES);
	}
	if (rc != SQLITE_DONE) {
		snprintf(r->why, sizeof(r->why), "reading the audit table "
			 "failed: %s", sqlite3_errmsg(db));
		r->first_bad = 0;
		sqlite3_finalize(s);
		return HL_ESTORE;
	}
	sqlite3_finalize(s);
	return broken ? HL_EINVAL : 0;
}
