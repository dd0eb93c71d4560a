/* auth.h: owns staff authentication inside helplined: the in-memory copy of
 * accounts and sessions, login and enrolment (Argon2id on the uv threadpool,
 * bounded), TOTP, session lifetime, presence, account administration over
 * helpline.staff.v1, and picking up changes helplinectl commits. */
#ifndef HL_AUTH_H
#define HL_AUTH_H

#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "keys.h"
#include "pwhash.h"
#include "protocol.h"
#include "staff.h"

struct hl_server;
struct hl_session;
struct pw_job;

/* What a member of staff has said about their availability. */
enum hl_presence {
	HL_PRESENCE_OFFLINE = 0,
	HL_PRESENCE_AVAILABLE,
	HL_PRESENCE_BUSY,
	HL_PRESENCE_AWAY,
};

/* One account as the daemon holds it. */
struct hl_auth_staff {
	struct hl_staff row;        /* the database row (credentials stay sealed/hashed) */
	enum hl_presence presence;  /* in memory only */
	int connections;            /* authenticated sockets open now */
	struct hl_session *sockets; /* those sockets (linked by staff_next) */
	bool on_shift;              /* clocked in (shift.c; stored in shift) */
	int64_t shift_started_at;   /* unix ms, while on shift */
	int64_t last_offer_ms;      /* last offer made to them (routing.c) */
};

/* One staff session (a copy of a staff_session row). */
struct hl_auth_session {
	unsigned char token_hash[HL_TOKEN_HASH_BYTES];
	int64_t staff_id;
	int64_t created_at, expires_at, last_seen, reauth_at; /* unix s */
	int64_t persisted_seen;     /* last_seen as last written to the database */
};

/* The authentication state of the server (embedded in struct hl_server). */
struct hl_auth {
	struct hl_server *srv;
	struct hl_auth_staff *staff;   /* sorted by nothing; small (hundreds) */
	size_t nstaff, capstaff;
	struct hl_auth_session *sess;
	size_t nsess, capsess;
	char dummy_hash[crypto_pwhash_STRBYTES]; /* verified for unknown users */
	struct hl_pwhash pwhash;       /* the Argon2id worker processes */
	int inflight;                  /* Argon2id jobs at the workers */
	struct pw_job *wait_head, *wait_tail; /* waiting for a slot */
	int waiting;
	uint64_t last_tag;             /* the address of the job started last */
	uv_timer_t timer;              /* 1 s: expiry sweep, change poll */
	bool timer_open;
	int64_t data_version;          /* last PRAGMA data_version seen */
	bool poll_busy;                /* a poll/reload job is in flight */
	uint64_t local_changes;        /* bumped by every local account write */
	bool stopping;
	int init_status;               /* start-up load: 0 running, 1 ok, <0 failed */
};

/*
 * Loads accounts and sessions (runs the loop until the load job is done:
 * start-up only) and starts the sweep timer. Returns 0 or HL_ESTORE.
 */
int hl_auth_init(struct hl_auth *a, struct hl_server *srv);

/* Stops the timer; in-flight threadpool jobs finish and are dropped. */
void hl_auth_stop(struct hl_auth *a);

/* Frees memory (after the loop has ended). */
void hl_auth_free(struct hl_auth *a);

/* A socket closed: update presence and connection counts. */
void hl_auth_on_closed(struct hl_auth *a, struct hl_session *s);

/* Handlers (dispatch.c routes to them). */
void hl_auth_login(struct hl_session *s, const struct hl_msg *m);
void hl_auth_resume(struct hl_session *s, const struct hl_msg *m);
void hl_auth_logout(struct hl_session *s, const struct hl_msg *m);
void hl_auth_reauth(struct hl_session *s, const struct hl_msg *m);
void hl_auth_enrol_begin(struct hl_session *s, const struct hl_msg *m);
void hl_auth_enrol_finish(struct hl_session *s, const struct hl_msg *m);
void hl_auth_presence(struct hl_session *s, const struct hl_msg *m);
void hl_auth_staff_create(struct hl_session *s, const struct hl_msg *m);
void hl_auth_staff_list(struct hl_session *s, const struct hl_msg *m);
void hl_auth_staff_set_state(struct hl_session *s, const struct hl_msg *m);
void hl_auth_staff_reset(struct hl_session *s, const struct hl_msg *m);
void hl_auth_staff_revoke(struct hl_session *s, const struct hl_msg *m);

/* The role names of a staff role mask as a new JSON array, in the order
 * counsellor, supervisor, admin (the caller owns the reference). */
struct json_t *hl_auth_roles_json(unsigned roles);

/* "offline", "available", "busy", "away". */
const char *hl_presence_name(enum hl_presence p);

/* The cached account with this id, or NULL. The pointer is valid only
 * until the next change to the account list (do not keep it). */
struct hl_auth_staff *hl_auth_staff_by_id(struct hl_auth *a, int64_t id);

/* Sends obj to every authenticated socket of staff_id (none: a no-op). */
void hl_auth_send_staff(struct hl_auth *a, int64_t staff_id, const json_t *obj);
/* The same for a serialised message (hl_session_send_text). */
void hl_auth_send_staff_text(struct hl_auth *a, int64_t staff_id,
			     const char *text, size_t len);

/* Sets a member of staff's presence and tells every socket of theirs with
 * a pushed {"type":"presence","status":...,"reason":...} (reason may be
 * NULL). Becoming available lets routing offer them chats. */
void hl_auth_set_presence(struct hl_auth *a, struct hl_auth_staff *st,
			  enum hl_presence p, const char *reason);

/* The account behind an authenticated socket, or NULL. */
struct hl_auth_staff *hl_auth_staff_of(struct hl_auth *a,
				       const struct hl_session *s);

/* Called by dispatch for every request on an authenticated socket: checks
 * the session is still valid and marks activity. Returns false (after
 * closing the socket) when it is not. */
bool hl_auth_touch(struct hl_auth *a, struct hl_session *s);

/* Whether s's session entered a TOTP code again (auth.reauth) within
 * auth.reauth_window seconds: required to read an escalated chat. */
bool hl_auth_fresh(struct hl_session *s);

#endif
