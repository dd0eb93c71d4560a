/* addrlimit.h: the per-address WebSocket connection cap.
 *
 * Addresses are never stored: each is reduced to a 64-bit keyed hash
 * (crypto_shorthash) under a random key that is replaced, and the old one
 * wiped, at the first connection of each UTC day. The table of hashes and
 * counts lives only in memory. IPv6 addresses count per /64 (one
 * household or phone gets a whole /64, so counting single addresses would
 * be no cap at all); IPv4-mapped IPv6 addresses count as IPv4. Addresses in
 * the uncounted list (by default loopback, where a reverse proxy connects
 * from, and which does its own per-address limiting) are not counted.
 *
 * A connection keeps the hash it was counted under, so it is released
 * correctly after a key change; for the rest of the day after a change an
 * address can hold up to twice the cap (its old connections under the old
 * hash, new ones under the new).
 *
 * The same tags carry a budget of failed attempts to prove a secret (a
 * return code, a resume token, a staff password or enrolment code): each
 * address may fail `failures` times in a burst, after which it earns one
 * more attempt every window/failures seconds (a GCRA: each entry is the
 * time its budget is whole again). Entries live only in memory and are
 * dropped with the key each UTC day, and when they have fully decayed. */
#ifndef HL_ADDRLIMIT_H
#define HL_ADDRLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HL_NETS_MAX 16

/* One network: an IPv4 or IPv6 prefix. */
struct hl_net {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t prefix; /* 0..32 or 0..128 */
	uint8_t addr[16];
};

/* A list of networks, e.g. server.uncounted_addresses. */
struct hl_nets {
	struct hl_net net[HL_NETS_MAX];
	int count;
};

/*
 * Parses a comma- or space-separated list of addresses and CIDR prefixes
 * ("127.0.0.0/8, ::1, 10.1.0.0/16"), or "none" for an empty list, into
 * out. Returns 0, or -1 with the reason in why.
 */
int hl_nets_parse(const char *text, struct hl_nets *out, char *why,
		  size_t whylen);

/* True when the address sa (AF_INET or AF_INET6; an IPv4-mapped IPv6
 * address matches IPv4 networks) is inside one of nets. */
bool hl_nets_contain(const struct hl_nets *nets, const struct sockaddr *sa);

struct hl_addrlimit {
	int limit;                 /* most connections per address; 0: no cap */
	struct hl_nets uncounted;  /* never counted */
	uint64_t *tags;            /* open addressing; 0 = empty slot */
	uint32_t *counts;
	uint32_t mask;             /* slots - 1 (slots is a power of two) */
	uint32_t used;             /* slots in use */
	unsigned char key[16];     /* today's hash key (crypto_shorthash) */
	int64_t key_day;           /* UTC day of key; -1 before the first */
	/* failed-attempt budget (off when fail_limit is 0) */
	int fail_limit;            /* failures in a burst */
	int64_t fail_window_ms;    /* time for a spent budget to refill */
	uint64_t *fail_tags;       /* open addressing; 0 = empty slot */
	int64_t *fail_full_at;     /* unix ms when the budget is whole again */
	uint32_t fail_mask;        /* slots - 1 */
	uint32_t fail_used;
	int64_t fail_swept_ms;     /* last sweep of refilled entries */
	uint64_t fail_untracked;   /* failures not counted: table full */
};

/* Prepares a cap of limit connections per address (0 turns it off) for at
 * most max_connections open at once. Returns 0 or HL_ENOMEM. */
int hl_addrlimit_init(struct hl_addrlimit *a, int limit, int max_connections,
		      const struct hl_nets *uncounted);

/* Wipes the key and frees the table. */
void hl_addrlimit_free(struct hl_addrlimit *a);

/*
 * The gate at upgrade time: true when a connection from sa may open now
 * (uncounted, or below the cap). now_s is the wall clock in unix seconds
 * (its UTC day picks the key).
 */
bool hl_addrlimit_allows(struct hl_addrlimit *a, const struct sockaddr *sa,
			 int64_t now_s);

/*
 * Counts a connection from sa that has opened. Returns its tag to hand to
 * hl_addrlimit_release when it closes (and to the failed-attempt calls),
 * or 0 when it is not counted (uncounted address, neither the cap nor the
 * failure budget on, an address family that is neither IPv4 nor IPv6).
 * Never refuses: the gate is hl_addrlimit_allows.
 */
uint64_t hl_addrlimit_acquire(struct hl_addrlimit *a, const struct sockaddr *sa,
			      int64_t now_s);

/*
 * Turns on the failed-attempt budget: `failures` (0 turns it off) in a
 * burst, refilled over window_s seconds, for about max_connections
 * addresses at once. Call after hl_addrlimit_init. Returns 0 or HL_ENOMEM.
 */
int hl_addrlimit_set_failures(struct hl_addrlimit *a, int failures,
			      int window_s, int max_connections);

/*
 * Milliseconds until the address tagged tag (from hl_addrlimit_acquire)
 * may try a secret again; 0 when it may now. Tag 0 (uncounted) and a
 * budget that is off always give 0.
 */
int64_t hl_addrlimit_barred_ms(struct hl_addrlimit *a, uint64_t tag,
			       int64_t now_ms);

/* Counts one failed attempt for tag. Returns false when it could not be
 * counted (the table is full of live entries: counted in fail_untracked). */
bool hl_addrlimit_failed(struct hl_addrlimit *a, uint64_t tag, int64_t now_ms);

/* Releases one connection counted under tag (0 does nothing). */
void hl_addrlimit_release(struct hl_addrlimit *a, uint64_t tag);

/* Connections currently counted under the tag sa has now (for tests). */
uint32_t hl_addrlimit_count(struct hl_addrlimit *a, const struct sockaddr *sa,
			    int64_t now_s);

#endif
