/* session.h: owns one WebSocket connection's state: role, message
 * reassembly, the capped output queue and closing. Handlers talk to a
 * session through these functions and never touch libwebsockets. */
#ifndef HL_SESSION_H
#define HL_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keepalive.h"
#include "protocol.h"

struct lws;
struct hl_server;
struct hl_conv_live;

/* Which WebSocket subprotocol a connection speaks. */
enum hl_role {
	HL_ROLE_CONTACT = 0, /* helpline.contact.v1: an anonymous young person */
	HL_ROLE_STAFF = 1,   /* helpline.staff.v1: a member of staff */
};

/*
 * A connection. Allocated by the server when the WebSocket is established;
 * lws' per-session data holds only a pointer to it. It may outlive its
 * socket while work for it is in flight (refs > 0): wsi is then NULL and
 * sends are dropped. Freed when the socket is gone and refs reach 0.
 */
struct hl_session {
	struct hl_server *srv;      /* owner */
	struct lws *wsi;            /* NULL once the socket closed */
	struct hl_session *prev, *next; /* the server's list of live sessions */
	uint64_t id;                /* random, pseudonymous; used in logs */
	char id_str[17];            /* id as 16 lower-case hex digits */
	enum hl_role role;
	bool greeted;               /* hello accepted */
	int refs;                   /* in-flight work holding the session */
	uint64_t addr_tag;          /* its per-address count (addrlimit.h), or 0 */
	struct hl_ka_link ka;       /* its keep-alive schedule (keepalive.h) */

	unsigned char *rx;          /* reassembly buffer for a fragmented message */
	size_t rx_len, rx_cap;

	/* Output: whole WebSocket frames (header and text) queued back to
	 * back after LWS_PRE bytes of headroom, sent in one write when the
	 * loop iteration ends (see hl_session_flush_all). */
	unsigned char *out;         /* malloc'd: LWS_PRE + out_cap, or NULL */
	size_t out_len, out_cap;    /* bytes queued / room after the headroom */
	uint32_t out_frames;        /* frames in out */
	size_t out_text;            /* their payload bytes (for metrics) */
	bool flush_queued;          /* on the server's flush list (holds a ref) */
	struct hl_session *flush_next;

	/* Staff authentication (helpline.staff.v1 only; see auth.h). */
	int64_t staff_id;           /* authenticated account, 0 if none */
	struct hl_session *staff_next; /* the account's next socket (auth.c) */
	unsigned char token_hash[32]; /* hash of the session token in use */
	size_t sess_hint, staff_hint; /* auth.c: where its session and account
				       * were last found (checked before use) */
	int auth_failures;          /* failed logins/enrolments on this socket */
	bool auth_busy;             /* a login/enrolment is in flight */
	int64_t last_active;        /* unix s of the last authenticated request */
	int64_t enrol_staff_id;     /* enrol_begin accepted a code for this id */
	unsigned char enrol_secret[20]; /* TOTP secret offered; wiped after */
	char enrol_code[96];        /* the code enrol_begin accepted; wiped after */

	/* Young person (helpline.contact.v1 only; see contact.h). */
	struct hl_conv_live *conv;  /* their conversation, or NULL */
	bool contact_busy;          /* a start/resume/leave is in flight */
	int64_t ended_conv;         /* the chat that ended while this socket held
				     * it: still readable by chat.sync here
				     * (what a resume just before the end had
				     * yet to fetch), 0 = none */

	/* Every connection: request budget (ws.rate / ws.burst). */
	double rate_tokens;         /* requests it may send now */
	int64_t rate_at_ms;         /* when rate_tokens was last refilled */
	int rate_refused;           /* refused in a row; ws.burst more closes */

	bool watching;              /* supervisor: receives queue.view pushes */
	bool shift_busy;            /* a shift.start / shift.end is in flight */

	bool close_pending;         /* send close_code/reason after the queue */
	bool close_sent;            /* our close frame is written; awaiting echo */
	uint16_t close_code;
	char close_reason[64];      /* ASCII, at most 123 bytes on the wire */
};

/*
 * Queues obj (not consumed; the caller keeps its reference) as one text
 * frame and asks for a write. Returns 0, HL_ECLOSED when the socket is gone
 * or closing (dropped silently by design: the client resumes), or HL_ENOMEM.
 * A connection whose queue grows past ws.outq_max is closed with 1008
 * "too slow".
 */
int hl_session_send(struct hl_session *s, const json_t *obj);

/* The same for a message already serialised (len bytes of JSON text, one
 * object, valid UTF-8: wire.c's). */
int hl_session_send_text(struct hl_session *s, const char *text, size_t len);

/* The bytes one page of a paged reply (history, lists) may take after its
 * first item: a quarter of ws.outq_max, so that the page, what is queued
 * already and live frames beside it fit the queue. */
size_t hl_session_page_budget(const struct hl_session *s);
/* The same for a push to every supervisor (escalation re-alerts). */
size_t hl_server_page_budget(const struct hl_server *srv);

/* Queues a WebSocket ping (payload "hl") behind the frames already queued.
 * Returns 0, HL_ECLOSED or HL_ENOMEM (as hl_session_send). */
int hl_session_send_ping(struct hl_session *s);

/*
 * Sends {"type":"error",...} for the request id (may be NULL or "") and
 * counts it in the server's metrics: the one path every error reply takes.
 * message is human text that never quotes client input. field may be NULL.
 */
void hl_session_error(struct hl_session *s, const char *id,
		      enum hl_err_code code, const char *message,
		      const char *field);

/* The same, with the members of extra (an object; consumed; may be NULL)
 * added to the reply, e.g. the conversations a handover must cover. */
void hl_session_error_with(struct hl_session *s, const char *id,
			   enum hl_err_code code, const char *message,
			   const char *field, json_t *extra);

/*
 * The gate before checking a secret a client offers (a return code, a
 * resume token, a staff password or enrolment code): true to go ahead.
 * When this connection's address has spent its budget of failures
 * (server.failed_attempts_per_address), answers rate_limited with
 * retry_after (seconds), counts it as a failure of this connection, and
 * returns false without the secret being looked at.
 */
bool hl_session_may_try_secret(struct hl_session *s, const char *id);

/* Wrong secrets one connection may offer before it is closed with 1008
 * "too many failed attempts". */
#define HL_SESSION_MAX_FAILURES 5

/* Counts a wrong secret against this connection (auth_failures) and its
 * address's budget. */
void hl_session_secret_failed(struct hl_session *s);

/* A wrong secret refused: counts it (hl_session_secret_failed), answers
 * code with message, and closes the connection once it has failed
 * HL_SESSION_MAX_FAILURES times. */
void hl_session_secret_refused(struct hl_session *s, const char *id,
			       enum hl_err_code code, const char *message);

/*
 * Closes the connection with a WebSocket close code and a short ASCII
 * reason, after frames already queued. Further sends are dropped. Counted
 * in metrics. Safe to call more than once (the first reason wins).
 */
void hl_session_close(struct hl_session *s, uint16_t code, const char *reason);

/* Takes / drops a reference for work in flight. The last unref of a closed
 * session frees it. Loop thread only. */
void hl_session_ref(struct hl_session *s);
void hl_session_unref(struct hl_session *s);

/* Returns "contact" or "staff". */
const char *hl_role_name(enum hl_role role);

/* --- used by server.c (the lws glue) only --- */

/* Creates a session for wsi. NULL on ENOMEM. */
struct hl_session *hl_session_new(struct hl_server *srv, struct lws *wsi,
				  enum hl_role role);
/* Feeds one received chunk; dispatches complete messages. Returns 0 to keep
 * the connection, -1 when lws must close it now (close reason already set). */
int hl_session_on_receive(struct hl_session *s, const void *in, size_t len,
			  bool binary, bool first, bool final);
/* Writes queued frames. Returns 0, or -1 to close (close frame sent). */
int hl_session_on_writeable(struct hl_session *s);
/* Sends every connection's queued frames, each connection's in one write
 * (the server's uv_check handle calls it once per loop iteration). */
void hl_session_flush_all(struct hl_server *srv);
/* The socket is gone: detach from wsi and drop the socket's reference. */
void hl_session_on_closed(struct hl_session *s);

#endif
