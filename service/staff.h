/* staff.h: owns staff accounts and their sessions in the database: create,
 * enrol, credentials, state, sessions, with every change audited. Every
 * function here runs inside a store job (the writer thread of helplined, or
 * helplinectl's own store) and uses the store's prepared statements. */
#ifndef HL_STAFF_H
#define HL_STAFF_H

#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "totp.h"

/* Role bits (staff.roles). */
#define HL_STAFF_COUNSELLOR 1u
#define HL_STAFF_SUPERVISOR 2u
#define HL_STAFF_ADMIN 4u

#define HL_STAFF_USERNAME_MAX 32
#define HL_STAFF_NAME_MAX 64        /* display name, bytes of UTF-8 */
#define HL_STAFF_LIST_MAX 128       /* languages / skills, comma-separated */
#define HL_ENROL_CODE_LEN 24        /* "XXXX-XXXX-XXXX-XXXX-XXXX" (100 bits) */
#define HL_ENROL_TTL_S (72 * 3600)  /* an enrolment code lives 72 hours */

enum hl_staff_state {
	HL_STAFF_PENDING = 0, /* created; waiting for enrolment */
	HL_STAFF_ACTIVE,
	HL_STAFF_DISABLED,
};

/* A staff row as the daemon keeps it in memory. Credentials stay in their
 * stored (hashed or sealed) form. */
struct hl_staff {
	int64_t id;
	char username[HL_STAFF_USERNAME_MAX + 1];
	char display_name[HL_STAFF_NAME_MAX + 1];
	unsigned roles;                     /* HL_STAFF_* bits */
	char languages[HL_STAFF_LIST_MAX + 1];
	char skills[HL_STAFF_LIST_MAX + 1];
	int capacity;
	enum hl_staff_state state;
	char pw_hash[crypto_pwhash_STRBYTES];  /* "" when none */
	unsigned char totp_sealed[HL_TOTP_SECRET_BYTES + HL_SEAL_OVERHEAD];
	bool has_totp;
	uint64_t totp_last_step;
	int failed_logins;
	int64_t locked_until;               /* unix seconds */
};

/* Fields for a new account. */
struct hl_staff_new {
	const char *username;      /* [a-z0-9._-], 3..32, starts with a letter */
	const char *display_name;  /* 1..64 bytes, UTF-8, no control chars */
	unsigned roles;            /* non-zero subset of HL_STAFF_* */
	const char *languages;     /* "" or comma-separated [a-z]{2,3}(-[A-Za-z0-9]+)? */
	const char *skills;        /* "" or comma-separated [a-z0-9_]+ */
	int capacity;              /* 0..20 */
};

/* Validates n (no database access). Returns 0 or HL_EINVAL with the
 * offending field name in *field. */
int hl_staff_validate(const struct hl_staff_new *n, const char **field);

/*
 * Creates a pending account and a one-time enrolment code (written to
 * code, HL_ENROL_CODE_LEN + 1 bytes; only its keyed hash is stored, valid
 * HL_ENROL_TTL_S). Audited as "staff.create" by actor (0 = helplinectl).
 * Returns 0 with *id_out set, HL_ECONSTRAINT when the username exists,
 * HL_EINVAL for invalid fields, HL_ESTORE.
 */
int hl_staff_create(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		    const struct hl_staff_new *n, int64_t actor, int64_t now,
		    int64_t *id_out, char *code);

/* Reads one account by id or username into out. 0, HL_ENOTFOUND, HL_ESTORE. */
int hl_staff_get(sqlite3_stmt *const *stmts, int64_t id, struct hl_staff *out);
int hl_staff_get_by_username(sqlite3_stmt *const *stmts, const char *username,
			     struct hl_staff *out);

/* Calls fn for every account in id order. Returns 0 or HL_ESTORE. */
int hl_staff_each(sqlite3_stmt *const *stmts,
		  void (*fn)(const struct hl_staff *s, void *arg), void *arg);

/*
 * Finds the pending enrolment for code (keyed hash match, not expired: a
 * code made at t is valid while now < t + HL_ENROL_TTL_S). code is taken as
 * typed: case-insensitive, with or without dashes and spaces. Returns 0 with
 * *out filled, or HL_ENOTFOUND (malformed, unknown, used, expired, or the
 * account is disabled: indistinguishable to the caller).
 */
int hl_staff_find_enrolment(sqlite3_stmt *const *stmts,
			    const struct hl_keys *keys, const char *code,
			    int64_t now, struct hl_staff *out);

/*
 * Finishes enrolment of account id: stores pw_hash (crypto_pwhash_str
 * output, computed by the caller off the loop) and the TOTP secret sealed
 * with ad "totp:<id>", sets totp_last_step to the step the person just
 * confirmed, clears the enrolment code, sets state active (a disabled
 * account stays disabled) and resets failures and any lock. The code must
 * still be id's valid code at now. Audited "staff.enrol" (actor = target =
 * id). Returns 0, HL_ENOTFOUND (code no longer valid), HL_EINVAL (pw_hash
 * not an Argon2id string), HL_ESTORE.
 */
int hl_staff_enrol(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		   int64_t id, const char *code, const char *pw_hash,
		   const unsigned char secret[HL_TOTP_SECRET_BYTES],
		   uint64_t confirmed_step, int64_t now);

/* Opens the sealed TOTP secret of s. 0 or HL_EINVAL. */
int hl_staff_totp_secret(const struct hl_keys *keys, const struct hl_staff *s,
			 unsigned char secret[HL_TOTP_SECRET_BYTES])
	__attribute__((warn_unused_result));

/*
 * Records a successful login of id: stores totp_last_step = step (only if
 * greater than the stored one, else HL_EINVAL: a replay that raced),
 * resets failures and the lock, optionally replaces pw_hash (rehash; NULL =
 * keep), inserts a session row for token_hash with the given absolute
 * expiry (created_at = last_seen = now; reauth_at = 0: sensitive
 * operations ask for a TOTP code again after login, see docs/auth.md),
 * and audits "login.ok". HL_EINVAL also when the account no
 * longer exists or is not active (disabled or reset meanwhile), when
 * expires_at <= now or new_pw_hash is not an Argon2id string; nothing is
 * written then. Returns 0, HL_EINVAL, HL_ECONSTRAINT (token hash already
 * used), HL_ESTORE.
 */
int hl_staff_login_ok(sqlite3_stmt *const *stmts, int64_t id, uint64_t step,
		      const char *new_pw_hash,
		      const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		      int64_t now, int64_t expires_at);

/*
 * Records a failed login: for a known id, increments failed_logins and, at
 * max_failures, sets locked_until = now + lock_s and audits "login.lockout";
 * always audits "login.fail" (actor NULL, target id or NULL for an unknown
 * username; detail holds the reason code, never the password or code).
 * "login.fail" comes first, then "login.lockout" ({"failures":N,"until":T}).
 * Every further failure while failed_logins >= max_failures locks again from
 * now (a successful login or an admin reset clears the count). reason is a
 * code of 1..32 characters [a-z0-9_.-] (e.g. "bad_totp"), since it goes into
 * the detail as is; max_failures >= 1, lock_s >= 0. An id that does not
 * exist is audited like an unknown username. Returns 0, HL_EINVAL (bad
 * reason or limits; nothing written) or HL_ESTORE.
 */
int hl_staff_login_failed(sqlite3_stmt *const *stmts, int64_t id,
			  const char *reason, int max_failures, int64_t lock_s,
			  int64_t now);

/* Records that id's TOTP code for step was used (re-authentication):
 * totp_last_step = step if greater, else HL_EINVAL (a replay that raced, or
 * the account is not active). Audited "reauth.ok" (actor = target = id).
 * 0, HL_EINVAL, HL_ENOTFOUND, HL_ESTORE. */
int hl_staff_totp_used(sqlite3_stmt *const *stmts, int64_t id, uint64_t step,
		       int64_t now);

/* Sets state (active/disabled); disabling deletes every session of the
 * account. Enabling makes it active only when it has both credentials
 * (pw_hash and TOTP), else pending: "active" always means enrolled.
 * Audited "staff.disable"/"staff.enable" with detail {"state":S,
 * "sessions":N}. 0, HL_EINVAL (state pending), HL_ENOTFOUND, HL_ESTORE. */
int hl_staff_set_state(sqlite3_stmt *const *stmts, int64_t id,
		       enum hl_staff_state state, int64_t actor, int64_t now);

/*
 * Admin resets: clears the password (reset_password) or the TOTP secret
 * (reset_totp), deletes every session, and issues a new enrolment code
 * (written to code, HL_ENROL_CODE_LEN + 1 bytes, only on success; any
 * earlier code stops working) with which the person sets a new password
 * and TOTP. Also clears failures and the lock, and sets state pending (a
 * disabled account stays disabled). Audited "staff.reset_password" /
 * "staff.reset_totp" (both, in that order, when both are cleared) with
 * detail {"sessions":N}. Returns 0, HL_EINVAL (neither password nor totp),
 * HL_ENOTFOUND, HL_ESTORE.
 */
int hl_staff_reset(sqlite3_stmt *const *stmts, const struct hl_keys *keys,
		   int64_t id, bool password, bool totp, int64_t actor,
		   int64_t now, char *code);

/* Sessions. */
/* Looks a session up by token hash: 0 with *staff_id, *expires_at,
 * *last_seen, *reauth_at set, or HL_ENOTFOUND. */
int hl_session_find(sqlite3_stmt *const *stmts,
		    const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		    int64_t *staff_id, int64_t *expires_at, int64_t *last_seen,
		    int64_t *reauth_at);
/* Updates last_seen (and reauth_at when non-zero). Not audited: activity,
 * not a change of rights. 0, HL_ENOTFOUND, HL_ESTORE. */
int hl_session_touch(sqlite3_stmt *const *stmts,
		     const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		     int64_t last_seen, int64_t reauth_at);
/* Deletes one session (logout; audited "logout" by its staff). 0,
 * HL_ENOTFOUND, HL_ESTORE. */
int hl_session_delete(sqlite3_stmt *const *stmts,
		      const unsigned char token_hash[HL_TOKEN_HASH_BYTES],
		      int64_t now);
/* Deletes all sessions of staff_id (audited "sessions.revoke" by actor,
 * detail {"count":N}, even when N is 0); *count_out = how many (may be
 * NULL). 0 or HL_ESTORE; an unknown staff_id simply has no sessions. */
int hl_session_revoke_all(sqlite3_stmt *const *stmts, int64_t staff_id,
			  int64_t actor, int64_t now, int *count_out);
/* Calls fn for each session of staff_id (0 = all), oldest first. fn must
 * not call into this module (the statement is mid-step). 0 or HL_ESTORE. */
int hl_session_each(sqlite3_stmt *const *stmts, int64_t staff_id,
		    void (*fn)(int64_t staff_id, int64_t created_at,
			       int64_t last_seen, int64_t expires_at, void *arg),
		    void *arg);
/* Deletes sessions past expires_at (expires_at <= now) or idle beyond
 * idle_s (last_seen < now - idle_s; idle_s <= 0: no idle limit). When any
 * were deleted, audits "sessions.expire" ({"count":N}, actor and target
 * NULL); a sweep that ends nothing writes nothing. 0 or HL_ESTORE. */
int hl_session_expire(sqlite3_stmt *const *stmts, int64_t now, int64_t idle_s);

/* ---- additions (helplinectl and tests) ---------------------------------- */

/* One staff_session row. token_hash is the keyed hash, never the token. */
struct hl_session_row {
	unsigned char token_hash[HL_TOKEN_HASH_BYTES];
	int64_t staff_id;
	int64_t created_at, last_seen, expires_at, reauth_at; /* unix seconds */
};

/* As hl_session_each, with the whole row (helplinectl prints a short prefix
 * of the hash to tell sessions apart). 0 or HL_ESTORE. */
int hl_session_each_row(sqlite3_stmt *const *stmts, int64_t staff_id,
			void (*fn)(const struct hl_session_row *row, void *arg),
			void *arg);

/* "pending", "active" or "disabled" (static strings). */
const char *hl_staff_state_name(enum hl_staff_state state);

/*
 * Normalises a typed enrolment code: letters upper-cased, '-' and spaces
 * dropped; the result must be exactly 20 characters of A-Z2-7. Writes it
 * (NUL-terminated) to out, 21 bytes. Returns 0 or HL_EINVAL. Exposed for
 * tests; callers pass codes as typed to the functions above.
 */
int hl_staff_code_normalise(const char *code, char out[21]);

#endif
