/* conversation.h: owns conversations, their numbered events and young
 * people's resume sessions in the database. Every function here runs inside
 * a store job (on the store's writer thread, in the batch's transaction and
 * the job's savepoint) and uses the store's prepared statements; none keeps
 * state between calls. Times are unix milliseconds, passed in by the caller
 * (the loop's clock in helplined, fixed values in tests).
 *
 * Nothing stored here identifies a young person: the intake holds only what
 * they chose to tell (optional tags, an age band, a language), event payloads
 * are ciphertext, and a resume session is kept as a keyed hash.
 *
 * Errors and the job's savepoint: HL_EINVAL, HL_ERANGE, HL_ENOTFOUND and
 * HL_ECLOSED (and a duplicate append) are decided before anything is
 * written, so a job that makes several calls may carry on after them. Any
 * other error (HL_ESTORE, HL_ECONSTRAINT, HL_ENOMEM) may leave a call half
 * done: the job must then return that error, so the store rolls its
 * savepoint back. (An SQLite I/O error can end the whole transaction; a
 * statement run after it would autocommit, which is why nothing here tries
 * to undo a half-done step itself.) An append-only job (store.h) has no
 * savepoint until hl_event_append opens one (hl_store_job_savepoint), which
 * it does before its first write whenever it will write more than the
 * event's row: most appends write that one row and need none. */
#ifndef HL_CONVERSATION_H
#define HL_CONVERSATION_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keys.h"
#include "queue.h" /* enum hl_risk: HL_RISK_STANDARD .. HL_RISK_IMMEDIATE */

struct hl_e2e_chains; /* e2e.h */

#define HL_CONV_TAGS_MAX 256     /* topics / wrap-up tags, bytes */
#define HL_CONV_TAG_MAX 32       /* one tag id, bytes */
#define HL_CONV_LANGUAGE_MAX 16  /* a language tag, bytes */
#define HL_CONV_OUTCOME_MAX 32   /* a wrap-up outcome code, bytes */
#define HL_EVENT_KIND_MAX 32     /* event.kind, bytes */
#define HL_EVENT_SENDER_MAX 32   /* event.sender, bytes ("staff:" + int64) */
#define HL_EVENT_CLIENT_ID_MAX 64 /* event.client_id: the wire's request id */
#define HL_EVENT_PAYLOAD_MAX 65536 /* event.payload, bytes */

/* The lifecycle of a conversation (conversation.state). */
enum hl_conv_state {
	HL_CONV_QUEUED = 0, /* waiting for a counsellor */
	HL_CONV_OFFERED,    /* offered to one counsellor, not yet accepted */
	HL_CONV_ACTIVE,     /* a counsellor is chatting with the young person */
	HL_CONV_ENDED,      /* over; the counsellor may still wrap it up */
	HL_CONV_WRAPPED,    /* wrap-up recorded; nothing more happens */
};

/* Intake age bands (conversation.age_band). */
enum hl_age_band {
	HL_AGE_NONE = 0, /* not given (stored NULL) */
	HL_AGE_U13,      /* under 13: 'u13' */
	HL_AGE_13_15,    /* '13_15' */
	HL_AGE_16_17,    /* '16_17' */
	HL_AGE_18P,      /* 18 or over: '18p' */
};

/* Who may see an event (event.visibility). */
enum hl_event_vis {
	HL_VIS_ALL = 0, /* 'all': the young person and staff */
	HL_VIS_STAFF,   /* 'staff': internal (notes, tags, transfers); never
			 * returned by a contact view */
};

/* What a young person chose to tell before connecting; all optional. */
struct hl_conv_intake {
	const char *topics;    /* NULL or "" = none; else comma-separated tag
				* ids, each [a-z0-9_]{1,32}, at most
				* HL_CONV_TAGS_MAX bytes in all */
	enum hl_age_band age_band; /* HL_AGE_NONE when not given */
	bool danger_now;       /* "I'm in danger right now" */
	const char *language;  /* NULL = not given; else [a-z]{2,3} optionally
				* followed by "-" and 1..8 of [A-Za-z0-9]
				* ("en", "pt-BR") */
};

/* A conversation row as read back. Strings are copies, "" when NULL. */
struct hl_conv {
	int64_t id;                /* conversation id */
	int64_t created_at;        /* unix ms */
	int64_t ended_at;          /* unix ms; 0 while not ended */
	enum hl_conv_state state;  /* where it is in the lifecycle */
	int64_t state_at;          /* unix ms of the last change of state */
	int risk;                  /* risk class, an enum hl_risk value (queue.h) */
	char topics[HL_CONV_TAGS_MAX + 1];     /* intake tags, "" = none */
	enum hl_age_band age_band; /* HL_AGE_NONE when not given */
	bool danger_now;           /* intake flag */
	char language[HL_CONV_LANGUAGE_MAX + 1]; /* "" = not given */
	int64_t counsellor_id;     /* staff id offered to / holding it; 0 = none */
	int64_t last_seq;          /* highest event seq; 0 = no events */
	char outcome[HL_CONV_OUTCOME_MAX + 1]; /* wrap-up outcome, "" = none */
	char tags[HL_CONV_TAGS_MAX + 1];       /* wrap-up tags, "" = none */
	int64_t accepted_at;       /* unix ms first accepted; 0 = never */
	int64_t supervisor_id;     /* supervisor joined as third party; 0 = none */
	int transfers;             /* times transferred */
	int64_t contact_delivered, contact_read; /* receipts: highest seq */
	int64_t staff_delivered, staff_read;
};

/* An event to append. Pointers are borrowed for the call only. */
struct hl_event_new {
	const char *kind;      /* [a-z0-9_.]{1,32}: "msg", "system", "receipt",
				* "note", ...; kind "msg" is refused once the
				* conversation has ended */
	const char *sender;    /* "contact", "system" or "staff:<id>" (id a
				* positive decimal without leading zeros, so
				* one sender has one spelling) */
	enum hl_event_vis visibility; /* "contact" may only send HL_VIS_ALL */
	const char *client_id; /* NULL, or the sender's request id: 1..64 of
				* A-Z a-z 0-9 . _ : - (the wire's id rule) */
	const void *payload;   /* opaque ciphertext; may be NULL when
				* payload_len is 0 */
	size_t payload_len;    /* 0..HL_EVENT_PAYLOAD_MAX; 0 is stored NULL */
	/* End-to-end encryption (docs/crypto.md): what the payload is and
	 * so what hl_event_append checks before storing it. */
	enum hl_event_e2e {
		HL_EV_OPAQUE = 0, /* not checked (system events, notes, and
				   * messages under chat.envelopes = opaque) */
		HL_EV_ENVELOPE,   /* a message envelope from direction dir */
		HL_EV_HELLO,      /* a young person's 32-byte kx public key */
		HL_EV_ACCEPT,     /* a device's answer to the latest hello */
	} e2e;
	uint8_t dir;                 /* HL_EV_ENVELOPE: enum hl_e2e_dir */
	const unsigned char *root_pk;/* HL_EV_ACCEPT: the organisation root
				      * (NULL: none configured, refused) */
	int64_t now_s;               /* HL_EV_ACCEPT: certificate validity */
	unsigned roles_mask;         /* HL_EV_ACCEPT: 1 << allowed cert role */
	struct hl_e2e_chains *chains;/* HL_EV_ACCEPT: chains verified before
				      * (the writer's own), or NULL */
	/* Checkpoints: with stamp_sk set, the chain head after this event is
	 * signed and stored (table checkpoint) when its seq is a multiple of
	 * checkpoint_every, or when checkpoint_now (the conversation ends). */
	const unsigned char *stamp_sk; /* Ed25519 secret key, or NULL */
	int checkpoint_every;          /* >= 1 */
	bool checkpoint_now;
};

/* Why hl_event_append refused an end-to-end payload (it returned
 * HL_EINVAL). */
enum hl_event_refusal {
	HL_REFUSE_NONE = 0,
	HL_REFUSE_ENVELOPE,   /* malformed, wrong direction or conversation,
			       * or a seen_seq/seen_head that does not match */
	HL_REFUSE_EPOCH,      /* not the current epoch (or no keys yet) */
	HL_REFUSE_COUNTER,    /* not the next counter */
	HL_REFUSE_HANDSHAKE,  /* bad hello or accept */
};

/* What hl_event_append did. */
struct hl_event_result {
	int64_t seq;     /* the event's seq (the original one for a duplicate) */
	int64_t at;      /* its stored time (the original one for a duplicate) */
	bool duplicate;  /* true: (sender, client_id) was already stored;
			  * nothing was written, re-acknowledge, do not
			  * deliver again */
	unsigned char chain[32]; /* the chain head after it (zeros for a
				  * duplicate or an event from before 0005) */
	enum hl_event_refusal refusal; /* set when HL_EINVAL came from an
					* end-to-end check */
	const char *why;               /* and a human-readable reason */
};

/* A stored event, as passed to an hl_event_fn. Pointers are valid only
 * during the call. */
struct hl_event {
	int64_t conv_id;           /* the conversation */
	int64_t seq;               /* 1, 2, 3, ... */
	int64_t at;                /* unix ms, server time */
	const char *kind;          /* as appended */
	const char *sender;        /* as appended */
	enum hl_event_vis visibility; /* who may see it */
	const char *client_id;     /* NULL when none */
	const void *payload;       /* NULL when payload_len is 0 */
	size_t payload_len;        /* bytes of payload */
	const unsigned char *chain;/* 32 bytes, NULL before 0005 */
};

/* Called once per event by hl_event_since, on the writer thread. Returns 0
 * to go on, or a negative HL_E* status to stop (hl_event_since returns it;
 * a positive value also stops, and the walk returns 0). Must not call into
 * this module (the statement is mid-step). */
typedef int (*hl_event_fn)(const struct hl_event *ev, void *arg);

/* Called once per conversation by hl_conv_each_open, with the same rules. */
typedef int (*hl_conv_fn)(const struct hl_conv *conv, void *arg);

/* A conversation id as the wire spells it (a positive decimal without
 * leading zeros, within int64) -> the id; 0 for anything else. */
int64_t hl_conv_id_parse(const char *str);

/* ---- conversations ------------------------------------------------------ */

/*
 * Creates a conversation in state queued with the intake in (NULL: nothing
 * given) and risk class risk (an enum hl_risk value of queue.h),
 * created_at = state_at = now_ms, last_seq 0. Returns 0 with *id_out set
 * (id_out may be NULL), HL_EINVAL (a malformed intake field or a risk
 * outside 0..HL_RISK__COUNT - 1; nothing written), HL_ESTORE.
 */
int hl_conv_create(sqlite3_stmt *const *stmts, const struct hl_conv_intake *in,
		   int risk, int64_t now_ms, int64_t *id_out);

/* Reads conversation conv_id into out. 0, HL_ENOTFOUND, HL_ESTORE (also for
 * a row this module could not have written). */
int hl_conv_get(sqlite3_stmt *const *stmts, int64_t conv_id,
		struct hl_conv *out);

/*
 * Calls fn for every open conversation (queued, offered or active) in the
 * order they were created (created_at, then id), to rebuild the in-memory
 * queue after a restart. Returns 0 after the last, fn's negative status if
 * it stopped the walk, or HL_ESTORE (possibly after some calls).
 */
int hl_conv_each_open(sqlite3_stmt *const *stmts, hl_conv_fn fn, void *arg);

/*
 * Moves conv_id to state `to` at now_ms, if the lifecycle allows it:
 *   queued  -> offered   counsellor_id (> 0) is stored: the one it is
 *                        offered to
 *   offered -> active    counsellor_id must be 0 or the offered one (it
 *                        stays); another counsellor cannot accept
 *   offered -> queued    the offer timed out; counsellor cleared
 *   active  -> queued    the counsellor was lost; counsellor cleared
 *   queued, offered, active -> ended   ended_at = now_ms; counsellor kept
 *   ended   -> wrapped   (hl_conv_wrap_up also records the outcome)
 * Every other pair, the same state included, is HL_EINVAL: a retried
 * request after HL_ESTORE must look at the state first. counsellor_id is
 * ignored for targets other than offered and active. state_at = now_ms.
 * Returns 0, HL_EINVAL (illegal transition, bad arguments), HL_ENOTFOUND
 * (no such conversation), HL_ECONSTRAINT (counsellor_id is not a staff
 * id), HL_ESTORE.
 */
int hl_conv_set_state(sqlite3_stmt *const *stmts, int64_t conv_id,
		      enum hl_conv_state to, int64_t counsellor_id,
		      int64_t now_ms);

/*
 * Records the wrap-up of an ended conversation and moves it to wrapped:
 * outcome is a code [a-z0-9_]{1,32}; tags "" or a comma-separated tag list
 * as for the intake's topics (NULL is ""). Returns 0, HL_EINVAL (bad outcome
 * or tags, or the conversation is not ended: a wrap-up is recorded once),
 * HL_ENOTFOUND, HL_ESTORE.
 */
int hl_conv_wrap_up(sqlite3_stmt *const *stmts, int64_t conv_id,
		    const char *outcome, const char *tags, int64_t now_ms);

/* Moves an active conversation from counsellor from_staff to to_staff
 * (transfers + 1). 0; HL_EINVAL when it is not active with from_staff or
 * the ids are bad; HL_ESTORE. */
int hl_conv_transfer(sqlite3_stmt *const *stmts, int64_t conv_id,
		     int64_t from_staff, int64_t to_staff, int64_t now_ms);

/* Sets (supervisor_id > 0) or clears (0) the supervisor third party of an
 * open conversation. 0; HL_EINVAL when it is not open or not found. */
int hl_conv_set_supervisor(sqlite3_stmt *const *stmts, int64_t conv_id,
			   int64_t supervisor_id);

/* Raises the receipt marks of the young person (contact) or of staff to
 * delivered / read (never lowers them). 0; HL_ERANGE when a value is past
 * the conversation's last seq; HL_ENOTFOUND; HL_EINVAL; HL_ESTORE. */
int hl_conv_receipt(sqlite3_stmt *const *stmts, int64_t conv_id, bool contact,
		    int64_t delivered, int64_t read);

/* ---- events ------------------------------------------------------------- */

/*
 * Appends e to conversation conv_id at now_ms with seq = last_seq + 1, and
 * sets last_seq to it, in the caller's job: seqs stay 1, 2, 3, ... without
 * gaps as long as the job returns any error this reports (see the top of
 * this file).
 *
 * When e->client_id is set and (sender, client_id) is already stored in
 * this conversation, nothing is written and the result is 0 with
 * out->duplicate = true and the ORIGINAL seq and at: the caller
 * re-acknowledges without delivering again. This is checked before the
 * state and end-to-end checks, so a retry of a message stored before the
 * conversation ended is still re-acknowledged; the kind and payload of a
 * retry are not compared. The same client_id from another sender is
 * another event. One exception, which needs no look-up: an envelope
 * (HL_EV_ENVELOPE) in the current epoch with its direction's next counter
 * cannot have been stored (a retry is the same bytes, whose counter is
 * below next), so it is new whatever its client_id.
 *
 * Returns 0 (out filled; out may be NULL), HL_EINVAL (a malformed field,
 * or sender "contact" with HL_VIS_STAFF), HL_ERANGE (payload_len over
 * HL_EVENT_PAYLOAD_MAX), HL_ENOTFOUND (no such conversation), HL_ECLOSED
 * (kind "msg" to an ended or wrapped conversation; other kinds, such as a
 * system notice or a wrap-up note, are still accepted), HL_ESTORE.
 *
 * Every event extends the conversation's hash chain (out->chain). By
 * e->e2e, and after the duplicate check: an envelope must parse, come from
 * e->dir, name this conversation and the current epoch, carry the next
 * counter of its direction, and a seen_seq/seen_head that match what is
 * stored; a hello must be a usable kx key (it becomes the latest hello); an
 * accept must answer the latest hello and verify (hl_e2e_accept_verify,
 * subject = the sender's staff id), and starts a new epoch numbered by its
 * seq with both counters at 0. A refusal is HL_EINVAL with out->refusal and
 * out->why set, before anything is written.
 */
int hl_event_append(sqlite3_stmt *const *stmts, int64_t conv_id,
		    const struct hl_event_new *e, int64_t now_ms,
		    struct hl_event_result *out);

/*
 * Calls fn for the events of conv_id with seq > after_seq, in seq order, at
 * most max of them (max 0: none). With contact_view, only events of
 * visibility 'all' are passed (and counted against max): this is the only
 * way events should reach a young person's socket. A caller that got max
 * events asks again after the last seq it got. Returns 0 (an unknown
 * conversation simply has no events), HL_EINVAL (after_seq < 0 or fn NULL;
 * fn not called), fn's negative status if it stopped the walk, or HL_ESTORE
 * (possibly after some calls).
 */
/*
 * Writes every conversation row that appends of append-only jobs changed
 * only in the writer's memory (convtail.h) and forgets them all. store.c
 * calls it before any other job of the batch and before COMMIT. Returns 0,
 * or HL_ESTORE (and the batch must not commit: a row was not as read).
 */
int hl_conv_tails_flush(sqlite3_stmt *const *stmts);

int hl_event_since(sqlite3_stmt *const *stmts, int64_t conv_id,
		   int64_t after_seq, bool contact_view, size_t max,
		   hl_event_fn fn, void *arg);

/* ---- young people's resume sessions ------------------------------------- */

/*
 * Stores a resume session: resume_hash is hl_keys_hash_token() of the
 * random secret given to the young person's device (the secret itself is
 * never passed here), for conversation conv_id, created and last seen at
 * now_ms, usable while now < expires_at_ms. Putting the same hash for the
 * same conversation again (a retry) refreshes last_seen and expires_at.
 * Returns 0, HL_EINVAL (expires_at_ms <= now_ms), HL_ECONSTRAINT (the hash
 * belongs to another conversation, or conv_id does not exist), HL_ESTORE.
 */
/*
 * Return codes (docs/crypto.md): stores the return code's public keys on
 * conv_id, once. 0; HL_ECONSTRAINT when it has them already or the signing
 * key belongs to another conversation; HL_ENOTFOUND; HL_ESTORE.
 */
int hl_conv_set_return(sqlite3_stmt *const *stmts, int64_t conv_id,
		       const unsigned char sign_pk[32],
		       const unsigned char box_pk[32]);
/* The conversation whose return signing key is sign_pk: 0 and *conv_id,
 * HL_ENOTFOUND, HL_ESTORE. */
int hl_conv_by_return(sqlite3_stmt *const *stmts,
		      const unsigned char sign_pk[32], int64_t *conv_id);
/* Ends every resume session of conv_id (a young person came back with
 * their return code and gets a new one). 0 or HL_ESTORE. */
int hl_contact_session_drop_conv(sqlite3_stmt *const *stmts, int64_t conv_id);

int hl_contact_session_put(sqlite3_stmt *const *stmts,
			   const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			   int64_t conv_id, int64_t now_ms,
			   int64_t expires_at_ms);

/* Looks a live session up: 0 with *conv_id set (may be NULL), or
 * HL_ENOTFOUND (unknown, or expired: expires_at <= now_ms), HL_ESTORE. */
int hl_contact_session_find(sqlite3_stmt *const *stmts,
			    const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			    int64_t now_ms, int64_t *conv_id);

/* Marks a live session used at now_ms, and moves its expiry to
 * expires_at_ms when that is > 0 (0 keeps it). 0, HL_ENOTFOUND (unknown or
 * expired), HL_ESTORE. */
int hl_contact_session_touch(sqlite3_stmt *const *stmts,
			     const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			     int64_t now_ms, int64_t expires_at_ms);

/* Deletes one session (expired or not). 0, HL_ENOTFOUND, HL_ESTORE. */
int hl_contact_session_delete(sqlite3_stmt *const *stmts,
			      const unsigned char resume_hash[HL_TOKEN_HASH_BYTES]);

/* Deletes every session with expires_at <= now_ms; *count_out (may be NULL)
 * gets how many. 0 or HL_ESTORE. */
int hl_contact_session_expire(sqlite3_stmt *const *stmts, int64_t now_ms,
			      int *count_out);

/* ---- names -------------------------------------------------------------- */

/* "queued", "offered", "active", "ended", "wrapped" (static strings; "?"
 * for a value outside the enum). */
const char *hl_conv_state_name(enum hl_conv_state state);

/* Parses a state name into *out. 0 or HL_EINVAL. */
int hl_conv_state_parse(const char *name, enum hl_conv_state *out);

/* "u13", "13_15", "16_17", "18p" (static strings); NULL for HL_AGE_NONE or
 * a value outside the enum. */
const char *hl_age_band_name(enum hl_age_band band);

/* Parses an age band name into *out; NULL parses as HL_AGE_NONE. 0 or
 * HL_EINVAL. */
int hl_age_band_parse(const char *name, enum hl_age_band *out);

/* 1 when s is "" or a comma-separated list of tag ids [a-z0-9_]{1,32}, at
 * most HL_CONV_TAGS_MAX bytes (intake topics, wrap-up tags); else 0. For
 * the protocol layer to validate with the same rule. */
int hl_conv_tags_ok(const char *s);

#endif
