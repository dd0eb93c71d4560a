/* keepalive.h: owns the WebSocket keep-alive schedule: when each
 * connection is next pinged, and when one that stopped answering is hung
 * up (ws.ping_interval).
 *
 * A connection is pinged once it has received nothing for ping_ms, and
 * hung up once it has then received nothing for hangup_ms in all since
 * its last frame. Any frame it sends (a pong, a message) counts.
 *
 * The schedule is a wheel of one-second slots, so adding, removing and
 * hearing from a connection cost O(1) whatever the number of connections.
 * libwebsockets 4.1.6 keeps its own keep-alive timers in one sorted list,
 * walked on every insertion, i.e. on every new connection and every pong
 * (docs/performance.md item 28); the server gives lws a policy with its
 * pings off and uses this instead.
 *
 * Hearing from a connection is one store to its link: nothing moves
 * until its slot comes round, when it is moved to the slot of its real
 * deadline. Only a pong (any frame) to an outstanding ping moves it at
 * once. Times are the caller's monotonic milliseconds (uv_now). Loop
 * thread only. */
#ifndef HL_KEEPALIVE_H
#define HL_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

/* One connection's place in the schedule, embedded in its session. */
struct hl_ka_link {
	struct hl_ka_link *next;
	struct hl_ka_link **pprev; /* what points at this one; NULL: not in */
	uint64_t seen_ms;          /* when it last sent a frame */
	uint64_t due;              /* the second it is next looked at */
	bool pinged;               /* a ping is out, and nothing heard since */
};

struct hl_keepalive;

/* Called for a link whose connection is to be pinged now. */
typedef void hl_ka_ping_fn(struct hl_keepalive *k, struct hl_ka_link *l);
/* Called for a link whose connection is to be hung up now; the link has
 * already left the schedule. */
typedef void hl_ka_hangup_fn(struct hl_keepalive *k, struct hl_ka_link *l);

struct hl_keepalive {
	uint64_t ping_ms;           /* 0: no pings, no hang-ups */
	uint64_t hangup_ms;         /* > ping_ms */
	struct hl_ka_link **slots;  /* nslots lists, slot = second % nslots */
	uint64_t nslots;
	uint64_t done;              /* every second up to this one is handled */
	struct hl_ka_link *pending; /* the slot being handled */
	uint32_t count;             /* links in the schedule */
	hl_ka_ping_fn *ping;
	hl_ka_hangup_fn *hangup;
	void *arg;                  /* the caller's, for the callbacks */
};

/*
 * Prepares k: ping after ping_ms of silence, hang up after hangup_ms
 * (both whole seconds, hangup_ms > ping_ms; ping_ms 0 turns it off, and
 * then every other call does nothing). Returns 0, HL_EINVAL or HL_ENOMEM.
 */
int hl_keepalive_init(struct hl_keepalive *k, uint64_t ping_ms,
		      uint64_t hangup_ms, uint64_t now_ms, hl_ka_ping_fn *ping,
		      hl_ka_hangup_fn *hangup, void *arg);
void hl_keepalive_free(struct hl_keepalive *k);

/* A new connection, heard from now. l must not be in a schedule. */
void hl_keepalive_add(struct hl_keepalive *k, struct hl_ka_link *l,
		      uint64_t now_ms);

/* Takes l out (it may already be out). */
void hl_keepalive_remove(struct hl_keepalive *k, struct hl_ka_link *l);

/* The connection answered a ping: out of the ping's slot, into its next. */
void hl_keepalive_answered(struct hl_keepalive *k, struct hl_ka_link *l);

/* The connection sent a frame now (call for every frame received). */
static inline void hl_keepalive_seen(struct hl_keepalive *k,
				     struct hl_ka_link *l, uint64_t now_ms)
{
	l->seen_ms = now_ms;
	if (l->pinged)
		hl_keepalive_answered(k, l);
}

/* Pings and hangs up whatever is due by now_ms. Call about once a second;
 * after a longer gap it catches up. */
void hl_keepalive_advance(struct hl_keepalive *k, uint64_t now_ms);

#endif
