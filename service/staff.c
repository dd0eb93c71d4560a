/* staff.c: staff accounts and their sessions in the database, through the
 * store's prepared statements, each change audited in the same transaction.
 *
 * Every function runs inside a store job (the caller's transaction and
 * savepoint): when one fails half-way, the job returns the error and the
 * store rolls back whatever it had done, audit row included. Statements are
 * bound, stepped, reset and cleared here on every path, so nothing a
 * function bound can reach the next user of the statement.
 *
 * Secrets never reach SQL or the audit detail: enrolment codes and session
 * tokens only as their keyed hash (keys.h), TOTP secrets only sealed, and
 * passwords never at all (the caller passes the Argon2id string). */
#include "staff.h"
#include "audit.h"
#include "common.h"
#include "log.h"
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The columns of HL_STMT_STAFF_GET / _GET_BY_USERNAME / _ALL / _FIND_ENROL. */
enum {
	COL_ID,
	COL_USERNAME,
	COL_DISPLAY_NAME,
	COL_ROLES,
	COL_LANGUAGES,
	COL_SKILLS,
	COL_CAPACITY,
	COL_STATE,
	COL_PW_HASH,
	COL_TOTP_SEALED,
	COL_TOTP_LAST_STEP,
	COL_FAILED_LOGINS,
	COL_LOCKED_UNTIL,
};

#define CODE_CHARS 20  /* 20 base32 characters: 100 bits */
#define ROLES_ALL (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR | HL_STAFF_ADMIN)
#define REASON_MAX 32

_Static_assert(HL_ENROL_CODE_LEN == CODE_CHARS + CODE_CHARS / 4 - 1,
	       "code is five dash-separated groups of four");

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* Resets a statement and clears its bindings. */
static void finish(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Status for a step that should have ended with SQLITE_DONE or a row. */
static int step_status(int rc)
{
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	       hl_store_sqlite_status(rc);
}

/* Appends one audit entry at now (seconds). detail may be NULL. */
static int audit(sqlite3_stmt *const *stmts, int64_t now, int64_t actor,
		 const char *action, int64_t target, const char *detail)
{
	struct hl_audit_entry e = {
		.at_ms = now * 1000,
		.actor = actor,
		.action = action,
		.target = target,
		.detail = detail,
	};

	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

/* ---- validation --------------------------------------------------------- */

static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c)
{
	return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z');
}

static int username_ok(const char *u)
{
	size_t n;

	if (!u)
		return 0;
	n = strlen(u);
	if (n < 3 || n > HL_STAFF_USERNAME_MAX ||
	    !is_lower((unsigned char)u[0]))
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)u[i];

		if (!is_lower(c) && !is_digit(c) && c != '.' && c != '_' &&
		    c != '-')
			return 0;
	}
	return 1;
}

/*
 * 1..64 bytes of well-formed UTF-8 (shortest form, no surrogates, at most
 * U+10FFFF) without control characters (C0, DEL, C1).
 */
static int display_name_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (!s)
		return 0;
	n = strlen(s);
	if (n < 1 || n > HL_STAFF_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len;

		if (p[i] < 0x80) {
			cp = p[i];
			len = 1;
		} else if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			cp = p[i] & 0x1f;
			len = 2;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			cp = p[i] & 0x0f;
			len = 3;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			cp = p[i] & 0x07;
			len = 4;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return 0;
		i += len;
	}
	return 1;
}

/* "" or comma-separated [a-z]{2,3}(-[A-Za-z0-9]{1,8})?, at most 128 bytes. */
static int languages_ok(const char *s)
{
	size_t n, i = 0;

	if (!s)
		return 1;
	n = strlen(s);
	if (n > HL_STAFF_LIST_MAX)
		return 0;
	while (i < n) {
		size_t k = 0;

		while (i + k < n && is_lower((unsigned char)s[i + k]))
			k++;
		if (k < 2 || k > 3)
			return 0;
		i += k;
		if (i < n && s[i] == '-') {
			i++;
			k = 0;
			while (i + k < n && is_alnum((unsigned char)s[i + k]))
				k++;
			if (k < 1 || k > 8)
				return 0;
			i += k;
		}
		if (i == n)
			break;
		if (s[i] != ',' || i + 1 == n)
			return 0;
		i++;
	}
	return 1;
}

/* "" or comma-separated [a-z0-9_]+, at most 128 bytes. */
static int skills_ok(const char *s)
{
	size_t n, i = 0;

	if (!s)
		return 1;
	n = strlen(s);
	if (n > HL_STAFF_LIST_MAX)
		return 0;
	while (i < n) {
		size_t k = 0;

		while (i + k < n && (is_lower((unsigned char)s[i + k]) ||
				     is_digit((unsigned char)s[i + k]) ||
				     s[i + k] == '_'))
			k++;
		if (k == 0)
			return 0;
		i += k;
		if (i == n)
			break;
		if (s[i] != ',' || i + 1 == n)
			return 0;
		i++;
	}
	return 1;
}

int hl_staff_validate(const struct hl_staff_new *n, const char **field)
{
	const char *bad = NULL;

	if (!n)
		bad = "account";
	else if (!username_ok(n->username))
		bad = "username";
	else if (!display_name_ok(n->display_name))
		bad = "display_name";
	else if (n->roles == 0 || (n->roles & ~ROLES_ALL))
		bad = "roles";
	else if (!languages_ok(n->languages))
		bad = "languages";
	else if (!skills_ok(n->skills))
		bad = "skills";
	else if (n->capacity < 0 || n->capacity > 20)
		bad = "capacity";
	if (field)
		*field = bad;
	return bad ? HL_EINVAL : 0;
}

/* A login failure reason as it goes into the audit detail: [a-z0-9_.-],
 * 1..32 bytes, so it needs no JSON escaping. */
static int reason_ok(const char *r)
{
	size_t n;

	if (!r)
		return 0;
	n = strlen(r);
	if (n < 1 || n > REASON_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)r[i];

		if (!is_lower(c) && !is_digit(c) && c != '_' && c != '.' &&
		    c != '-')
			return 0;
	}
	return 1;
}

/* An Argon2id string as crypto_pwhash_str writes it. */
static int pw_hash_ok(const char *h)
{
	size_t n;

	if (!h)
		return 0;
	n = strnlen(h, crypto_pwhash_STRBYTES);
	return n < crypto_pwhash_STRBYTES &&
	       strncmp(h, crypto_pwhash_STRPREFIX,
		       sizeof(crypto_pwhash_STRPREFIX) - 1) == 0;
}

/* ---- enrolment codes ---------------------------------------------------- */

int hl_staff_code_normalise(const char *code, char out[21])
{
	size_t n = 0;

	out[0] = '\0';
	if (!code)
		return HL_EINVAL;
	for (const char *p = code; *p; p++) {
		int c = (unsigned char)*p;

		if (c == '-' || c == ' ')
			continue;
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		if (!((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')) ||
		    n == CODE_CHARS) {
			sodium_memzero(out, CODE_CHARS + 1);
			return HL_EINVAL;
		}
		out[n++] = (char)c;
	}
	if (n != CODE_CHARS) {
		sodium_memzero(out, CODE_CHARS + 1);
		return HL_EINVAL;
	}
	out[n] = '\0';
	return 0;
}

/* The keyed hash of a typed code, or HL_EINVAL when it cannot be a code. */
static int code_hash(const struct hl_keys *keys, const char *code,
		     unsigned char hash[HL_TOKEN_HASH_BYTES])
{
	char norm[CODE_CHARS + 1];

	if (hl_staff_code_normalise(code, norm) != 0)
		return HL_EINVAL;
	hl_keys_hash_token(keys, norm, CODE_CHARS, hash);
	sodium_memzero(norm, sizeof(norm));
	return 0;
}

/* Makes a fresh code: code (HL_ENROL_CODE_LEN + 1 bytes) gets the grouped
 * form shown to people, hash its keyed hash. */
static void code_new(const struct hl_keys *keys, char *code,
		     unsigned char hash[HL_TOKEN_HASH_BYTES])
{
	char raw[CODE_CHARS + 1];
	size_t o = 0;

	for (size_t i = 0; i < CODE_CHARS; i++) {
		raw[i] = b32_alphabet[randombytes_uniform(32)];
		if (i > 0 && i % 4 == 0)
			code[o++] = '-';
		code[o++] = raw[i];
	}
	raw[CODE_CHARS] = '\0';
	code[o] = '\0';
	hl_keys_hash_token(keys, raw, CODE_CHARS, hash);
	sodium_memzero(raw, sizeof(raw));
}

/* ---- rows --------------------------------------------------------------- */

const char *hl_staff_state_name(enum hl_staff_state state)
{
	switch (state) {
	case HL_STAFF_PENDING: return "pending";
	case HL_STAFF_ACTIVE: return "active";
	case HL_STAFF_DISABLED: return "disabled";
	}
	return "?";
}

static int state_parse(const unsigned char *t, enum hl_staff_state *out)
{
	if (!t)
		return HL_ESTORE;
	if (strcmp((const char *)t, "pending") == 0)
		*out = HL_STAFF_PENDING;
	else if (strcmp((const char *)t, "active") == 0)
		*out = HL_STAFF_ACTIVE;
	else if (strcmp((const char *)t, "disabled") == 0)
		*out = HL_STAFF_DISABLED;
	else
		return HL_ESTORE;
	return 0;
}


/* Reads the current row of a staff SELECT into out. 0 or HL_ESTORE. */
static int read_row(sqlite3_stmt *s, struct hl_staff *out)
{
	const void *blob;
	int n;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(s, COL_ID);
	if (hl_store_column_text(s, COL_USERNAME, out->username, sizeof(out->username)) ||
	    hl_store_column_text(s, COL_DISPLAY_NAME, out->display_name,
		      sizeof(out->display_name)) ||
	    hl_store_column_text(s, COL_LANGUAGES, out->languages,
		      sizeof(out->languages)) ||
	    hl_store_column_text(s, COL_SKILLS, out->skills, sizeof(out->skills)) ||
	    hl_store_column_text(s, COL_PW_HASH, out->pw_hash, sizeof(out->pw_hash)) ||
	    state_parse(sqlite3_column_text(s, COL_STATE), &out->state) != 0)
		return HL_ESTORE;
	out->roles = (unsigned)sqlite3_column_int(s, COL_ROLES);
	out->capacity = sqlite3_column_int(s, COL_CAPACITY);
	blob = sqlite3_column_blob(s, COL_TOTP_SEALED);
	n = sqlite3_column_bytes(s, COL_TOTP_SEALED);
	if (blob && n == (int)sizeof(out->totp_sealed)) {
		memcpy(out->totp_sealed, blob, sizeof(out->totp_sealed));
		out->has_totp = true;
	} else if (blob || n != 0) {
		/* Not something enrol wrote: treat as no TOTP (login fails). */
		hl_warn("staff.bad_totp_column", "staff=%" PRId64 " bytes=%d",
			out->id, n);
	}
	out->totp_last_step = (uint64_t)sqlite3_column_int64(s,
							    COL_TOTP_LAST_STEP);
	out->failed_logins = sqlite3_column_int(s, COL_FAILED_LOGINS);
	out->locked_until = sqlite3_column_int64(s, COL_LOCKED_UNTIL);
	return 0;
}

/* Steps a bound staff SELECT expecting at most one row. Finishes s. */
static int get_one(sqlite3_stmt *s, struct hl_staff *out)
{
	int rc = sqlite3_step(s), status;

	if (rc == SQLITE_ROW)
		status = read_row(s, out);
	else if (rc == SQLITE_DONE)
		status = HL_ENOTFOUND;
	else
		status = hl_store_sqlite_status(rc);
	finish(s);
	return status;
}

/* ---- accounts ----------------------------------------------------------- */

int hl_staff_create(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		    const struct hl_staff_new *n, int64_t actor, int64_t now,
		    int64_t *id_out, char *code)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_INSERT];
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	char fresh[HL_ENROL_CODE_LEN + 1];
	char detail[64];
	int64_t id = 0;
	int rc, status;

	if (!keys || !code || hl_staff_validate(n, NULL) != 0)
		return HL_EINVAL;
	code_new(keys, fresh, hash);
	sqlite3_bind_text(s, 1, n->username, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, n->display_name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, (int)n->roles);
	sqlite3_bind_text(s, 4, n->languages ? n->languages : "", -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(s, 5, n->skills ? n->skills : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, n->capacity);
	sqlite3_bind_blob(s, 7, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_int64(s, 8, now + HL_ENROL_TTL_S);
	sqlite3_bind_int64(s, 9, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ESTORE :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status == 0) {
		snprintf(detail, sizeof(detail), "{\"roles\":%u}", n->roles);
		status = audit(stmts, now, actor, "staff.create", id, detail);
	}
	if (status == 0) {
		memcpy(code, fresh, sizeof(fresh));
		if (id_out)
			*id_out = id;
	}
	sodium_memzero(fresh, sizeof(fresh));
	sodium_memzero(hash, sizeof(hash));
	return status;
}

int hl_staff_get(sqlite3_stmt *const *stmts, int64_t id, struct hl_staff *out)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_GET];

	sqlite3_bind_int64(s, 1, id);
	return get_one(s, out);
}

int hl_staff_get_by_username(sqlite3_stmt *const *stmts, const char *username,
			     struct hl_staff *out)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_GET_BY_USERNAME];

	if (!username)
		return HL_ENOTFOUND;
	sqlite3_bind_text(s, 1, username, -1, SQLITE_STATIC);
	return get_one(s, out);
}

int hl_staff_each(sqlite3_stmt *const *stmts,
		  void (*fn)(const struct hl_staff *s, void *arg), void *arg)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_ALL];
	struct hl_staff row;
	int rc, status = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		status = read_row(s, &row);
		if (status != 0)
			break;
		fn(&row, arg);
	}
	if (status == 0 && rc != SQLITE_DONE)
		status = HL_ESTORE;
	finish(s);
	sodium_memzero(&row, sizeof(row));
	return status;
}

int hl_staff_find_enrolment(sqlite3_stmt *const *stmts,
			    const struct hl_keys *keys, const char *code,
			    int64_t now, struct hl_staff *out)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_FIND_ENROL];
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	int status;

	if (!keys || code_hash(keys, code, hash) != 0)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	status = get_one(s, out);
	sodium_memzero(hash, sizeof(hash));
	return status;
}

int hl_staff_enrol(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		   int64_t id, const char *code, const char *pw_hash,
		   const unsigned char secret[HL_TOTP_SECRET_BYTES],
		   uint64_t confirmed_step, int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_ENROL];
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	unsigned char sealed[HL_TOTP_SECRET_BYTES + HL_SEAL_OVERHEAD];
	char ad[32];
	int rc, status;

	if (!keys || !secret || !pw_hash_ok(pw_hash) ||
	    confirmed_step > (uint64_t)INT64_MAX)
		return HL_EINVAL;
	if (code_hash(keys, code, hash) != 0)
		return HL_ENOTFOUND;
	snprintf(ad, sizeof(ad), "totp:%" PRId64, id);
	hl_keys_seal(keys, secret, HL_TOTP_SECRET_BYTES, ad, sealed);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_blob(s, 2, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_text(s, 3, pw_hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 4, sealed, sizeof(sealed), SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (int64_t)confirmed_step);
	sqlite3_bind_int64(s, 6, now);
	rc = sqlite3_step(s);
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ENOTFOUND :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status == 0)
		status = audit(stmts, now, id, "staff.enrol", id, NULL);
	sodium_memzero(hash, sizeof(hash));
	return status;
}

int hl_staff_totp_secret(const struct hl_keys *keys, const struct hl_staff *s,
			 unsigned char secret[HL_TOTP_SECRET_BYTES])
{
	char ad[32];

	if (!keys || !s || !s->has_totp)
		return HL_EINVAL;
	snprintf(ad, sizeof(ad), "totp:%" PRId64, s->id);
	if (hl_keys_open(keys, s->totp_sealed, sizeof(s->totp_sealed), ad,
			 secret) != 0) {
		sodium_memzero(secret, HL_TOTP_SECRET_BYTES);
		return HL_EINVAL;
	}
	return 0;
}

int hl_staff_login_ok(sqlite3_stmt *const *stmts, int64_t id, uint64_t step,
		      const char *new_pw_hash,
		      const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		      int64_t now, int64_t expires_at)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_LOGIN_OK];
	sqlite3_stmt *ins = stmts[HL_STMT_SESSION_INSERT];
	int rc, status;

	if (!token_hash || step > (uint64_t)INT64_MAX ||
	    (new_pw_hash && !pw_hash_ok(new_pw_hash)) || expires_at <= now)
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, (int64_t)step);
	if (new_pw_hash)
		sqlite3_bind_text(s, 3, new_pw_hash, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 3);
	sqlite3_bind_int64(s, 4, now);
	rc = sqlite3_step(s);
	/* No row: the step was not above the stored one (a replay that raced
	 * another login), or the account is gone or no longer active. */
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_EINVAL :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status != 0)
		return status;

	sqlite3_bind_blob(ins, 1, token_hash, HL_TOKEN_HASH_BYTES,
			  SQLITE_STATIC);
	sqlite3_bind_int64(ins, 2, id);
	sqlite3_bind_int64(ins, 3, now);
	sqlite3_bind_int64(ins, 4, expires_at);
	status = step_status(sqlite3_step(ins));
	finish(ins);
	if (status != 0)
		return status;
	return audit(stmts, now, id, "login.ok", id, NULL);
}

int hl_staff_login_failed(sqlite3_stmt *const *stmts, int64_t id,
			  const char *reason, int max_failures, int64_t lock_s,
			  int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_LOGIN_FAIL];
	char detail[64];
	int64_t failures = 0, locked_until = 0, target = 0;
	int rc, status = 0;

	if (!reason_ok(reason) || max_failures < 1 || lock_s < 0)
		return HL_EINVAL;
	if (id != 0) {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int(s, 2, max_failures);
		sqlite3_bind_int64(s, 3, now + lock_s);
		sqlite3_bind_int64(s, 4, now);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			target = id;
			failures = sqlite3_column_int64(s, 0);
			locked_until = sqlite3_column_int64(s, 1);
		}
		status = step_status(rc);
		finish(s);
		if (status != 0)
			return status;
	}
	snprintf(detail, sizeof(detail), "{\"reason\":\"%s\"}", reason);
	status = audit(stmts, now, 0, "login.fail", target, detail);
	if (status == 0 && target != 0 && failures >= max_failures) {
		snprintf(detail, sizeof(detail),
			 "{\"failures\":%" PRId64 ",\"until\":%" PRId64 "}",
			 failures, locked_until);
		status = audit(stmts, now, 0, "login.lockout", target, detail);
	}
	return status;
}

int hl_staff_totp_used(sqlite3_stmt *const *stmts, int64_t id, uint64_t step,
		       int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_TOTP_USED];
	struct hl_staff row;
	int rc, status;

	if (step > (uint64_t)INT64_MAX)
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, (int64_t)step);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_EINVAL :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status == HL_EINVAL) {
		/* Tell a missing account from a replay or an inactive one. */
		status = hl_staff_get(stmts, id, &row);
		sodium_memzero(&row, sizeof(row));
		return status == 0 ? HL_EINVAL : status;
	}
	if (status != 0)
		return status;
	return audit(stmts, now, id, "reauth.ok", id, NULL);
}

/* Deletes every session of staff_id; *count gets how many. */
static int delete_sessions(sqlite3_stmt *const *stmts, int64_t staff_id,
			   int *count)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_DELETE_STAFF];
	int rc, n = 0;

	sqlite3_bind_int64(s, 1, staff_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		n++;
	finish(s);
	*count = n;
	return step_status(rc);
}

int hl_staff_set_state(sqlite3_stmt *const *stmts, int64_t id,
		       enum hl_staff_state state, int64_t actor, int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_SET_STATE];
	enum hl_staff_state got = HL_STAFF_PENDING;
	char detail[64];
	int rc, status, ended = 0;

	if (state != HL_STAFF_ACTIVE && state != HL_STAFF_DISABLED)
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, hl_staff_state_name(state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		status = state_parse(sqlite3_column_text(s, 0), &got);
	else
		status = rc == SQLITE_DONE ? HL_ENOTFOUND :
			 hl_store_sqlite_status(rc);
	finish(s);
	if (status != 0)
		return status;
	if (state == HL_STAFF_DISABLED) {
		status = delete_sessions(stmts, id, &ended);
		if (status != 0)
			return status;
	}
	/* Enabling an account that never finished enrolment leaves it
	 * pending: "active" always means it has both credentials. */
	snprintf(detail, sizeof(detail), "{\"state\":\"%s\",\"sessions\":%d}",
		 hl_staff_state_name(got), ended);
	return audit(stmts, now, actor, state == HL_STAFF_DISABLED ?
		     "staff.disable" : "staff.enable", id, detail);
}

int hl_staff_reset(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		   int64_t id, bool password, bool totp, int64_t actor,
		   int64_t now, char *code)
{
	sqlite3_stmt *s = stmts[HL_STMT_STAFF_RESET];
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	char fresh[HL_ENROL_CODE_LEN + 1];
	char detail[64];
	int rc, status, ended = 0;

	if (!keys || !code || (!password && !totp))
		return HL_EINVAL;
	code_new(keys, fresh, hash);
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int(s, 2, password);
	sqlite3_bind_int(s, 3, totp);
	sqlite3_bind_blob(s, 4, hash, sizeof(hash), SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, now + HL_ENROL_TTL_S);
	sqlite3_bind_int64(s, 6, now);
	rc = sqlite3_step(s);
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ENOTFOUND :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status == 0)
		status = delete_sessions(stmts, id, &ended);
	snprintf(detail, sizeof(detail), "{\"sessions\":%d}", ended);
	if (status == 0 && password)
		status = audit(stmts, now, actor, "staff.reset_password", id,
			       detail);
	if (status == 0 && totp)
		status = audit(stmts, now, actor, "staff.reset_totp", id,
			       detail);
	if (status == 0)
		memcpy(code, fresh, sizeof(fresh));
	sodium_memzero(fresh, sizeof(fresh));
	sodium_memzero(hash, sizeof(hash));
	return status;
}

/* ---- sessions ----------------------------------------------------------- */

int hl_session_find(sqlite3_stmt *const *stmts,
		    const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		    int64_t *staff_id, int64_t *expires_at, int64_t *last_seen,
		    int64_t *reauth_at)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_FIND];
	int rc, status;

	if (!token_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, token_hash, HL_TOKEN_HASH_BYTES, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (staff_id)
			*staff_id = sqlite3_column_int64(s, 0);
		if (expires_at)
			*expires_at = sqlite3_column_int64(s, 1);
		if (last_seen)
			*last_seen = sqlite3_column_int64(s, 2);
		if (reauth_at)
			*reauth_at = sqlite3_column_int64(s, 3);
		status = 0;
	} else {
		status = rc == SQLITE_DONE ? HL_ENOTFOUND :
			 hl_store_sqlite_status(rc);
	}
	finish(s);
	return status;
}

int hl_session_touch(sqlite3_stmt *const *stmts,
		     const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		     int64_t last_seen, int64_t reauth_at)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_TOUCH];
	int rc;

	if (!token_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, token_hash, HL_TOKEN_HASH_BYTES, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, last_seen);
	sqlite3_bind_int64(s, 3, reauth_at);
	rc = sqlite3_step(s);
	finish(s);
	/* Not audited: activity, not a change of anyone's rights. */
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ENOTFOUND :
	       hl_store_sqlite_status(rc);
}

int hl_session_delete(sqlite3_stmt *const *stmts,
		      const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		      int64_t now)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_DELETE];
	int64_t staff_id = 0;
	int rc, status;

	if (!token_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, token_hash, HL_TOKEN_HASH_BYTES, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		staff_id = sqlite3_column_int64(s, 0);
	status = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? HL_ENOTFOUND :
		 hl_store_sqlite_status(rc);
	finish(s);
	if (status != 0)
		return status;
	return audit(stmts, now, staff_id, "logout", staff_id, NULL);
}

int hl_session_revoke_all(sqlite3_stmt *const *stmts, int64_t staff_id,
			  int64_t actor, int64_t now, int *count_out)
{
	char detail[64];
	int status, n = 0;

	status = delete_sessions(stmts, staff_id, &n);
	if (status != 0)
		return status;
	snprintf(detail, sizeof(detail), "{\"count\":%d}", n);
	status = audit(stmts, now, actor, "sessions.revoke", staff_id, detail);
	if (status == 0 && count_out)
		*count_out = n;
	return status;
}

int hl_session_each_row(sqlite3_stmt *const *stmts, int64_t staff_id,
			void (*fn)(const struct hl_session_row *row, void *arg),
			void *arg)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_LIST];
	struct hl_session_row row;
	int rc;

	sqlite3_bind_int64(s, 1, staff_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&row, 0, sizeof(row));
		if (sqlite3_column_bytes(s, 0) == HL_TOKEN_HASH_BYTES)
			memcpy(row.token_hash, sqlite3_column_blob(s, 0),
			       HL_TOKEN_HASH_BYTES);
		row.staff_id = sqlite3_column_int64(s, 1);
		row.created_at = sqlite3_column_int64(s, 2);
		row.last_seen = sqlite3_column_int64(s, 3);
		row.expires_at = sqlite3_column_int64(s, 4);
		row.reauth_at = sqlite3_column_int64(s, 5);
		fn(&row, arg);
	}
	finish(s);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}

/* Adapts hl_session_each's callback to hl_session_each_row. */
struct each_adapter {
	void (*fn)(int64_t staff_id, int64_t created_at, int64_t last_seen,
		   int64_t expires_at, void *arg);
	void *arg;
};

static void each_adapt(const struct hl_session_row *row, void *arg)
{
	struct each_adapter *a = arg;

	a->fn(row->staff_id, row->created_at, row->last_seen, row->expires_at,
	      a->arg);
}

int hl_session_each(sqlite3_stmt *const *stmts, int64_t staff_id,
		    void (*fn)(int64_t staff_id, int64_t created_at,
			       int64_t last_seen, int64_t expires_at, void *arg),
		    void *arg)
{
	struct each_adapter a = { .fn = fn, .arg = arg };

	return hl_session_each_row(stmts, staff_id, each_adapt, &a);
}

int hl_session_expire(sqlite3_stmt *const *stmts, int64_t now, int64_t idle_s)
{
	sqlite3_stmt *s = stmts[HL_STMT_SESSION_EXPIRE];
	char detail[64];
	int rc, n = 0;

	sqlite3_bind_int64(s, 1, now);
	/* Idle: last_seen more than idle_s ago; idle_s <= 0 means no limit. */
	sqlite3_bind_int64(s, 2, idle_s > 0 ? now - idle_s : INT64_MIN);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		n++;
	finish(s);
	if (rc != SQLITE_DONE)
		return hl_store_sqlite_status(rc);
	if (n == 0)
		return 0;  /* a sweep that ended nothing leaves no trace */
	snprintf(detail, sizeof(detail), "{\"count\":%d}", n);
	return audit(stmts, now, 0, "sessions.expire", 0, detail);
}
