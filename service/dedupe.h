/* dedupe.h: the store writer's memory of the client ids stored in each
 * conversation, so a retried request (the same sender and client id) is
 * recognised without an index on the event table.
 *
 * Why not an index: with many conversations busy at once, a unique index on
 * (conversation, sender, client id) costs every group commit one dirty page
 * per conversation and sender it touches (the ids of one conversation sit
 * together, so each conversation's new ids land on their own leaf), about as
 * much WAL as the events themselves; see docs/performance.md.
 *
 * What is remembered: for each conversation loaded (conversation.c loads
 * all of its stored client ids the first time one is looked up; a fresh
 * envelope, most of a service's traffic, is never looked up), a 64-bit
 * keyed hash (crypto_shorthash under a random per-process key) of
 * sender + client id, with the event's seq. The memory is a hint that is
 * never trusted alone: every candidate seq is checked against the stored
 * event, so an entry left by a rolled-back job, an id that collides, or a
 * deleted conversation is only a wasted read. What must hold, and what
 * conversation.c keeps: every stored id of a loaded conversation's events
 * up to its upto (hl_dedupe_upto) is in its set. Ids of later events (fresh
 * envelopes are stored without a put) are read in when one is next looked
 * up, once the event at upto is found unchanged (its chain head: the hash
 * chain then vouches for every event before it); otherwise, and when a
 * conversation cannot be kept whole (no memory), it is forgotten and loaded
 * again when next needed.
 *
 * Memory is bounded: past max_units (one unit per id, and
 * HL_DEDUPE_CONV_UNITS per conversation) the least recently used
 * conversations are forgotten. Writer thread only; no locking.
 */
#ifndef HL_DEDUPE_H
#define HL_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

/* What one conversation counts for against max_units, besides its ids. */
#define HL_DEDUPE_CONV_UNITS 8
#define HL_DEDUPE_HEAD 32 /* a chain head */

struct hl_dedupe_conv;

struct hl_dedupe {
	struct hl_dedupe_conv **buckets;  /* by conversation id, chained */
	size_t nbuckets;                  /* a power of two, or 0 */
	size_t nconvs;                    /* conversations loaded */
	struct hl_dedupe_conv *newest, *oldest; /* least recently used last */
	size_t units, max_units;          /* see above */
	uint64_t loads, evictions;        /* conversations loaded, forgotten
					   * to stay within max_units */
	unsigned char key[crypto_shorthash_KEYBYTES];
};

/* Sets d up empty with a fresh random key; max_units >= 1. Returns 0 or
 * HL_EINVAL. Allocates nothing until used. */
int hl_dedupe_init(struct hl_dedupe *d, size_t max_units);

/* Frees everything; d may then be initialised again. Safe on a zeroed d. */
void hl_dedupe_free(struct hl_dedupe *d);

/* The hash that stands for (sender, client_id); never 0. */
uint64_t hl_dedupe_key(const struct hl_dedupe *d, const char *sender,
		       const char *client_id);

/* The loaded set of conv_id (and it becomes the most recently used), or
 * NULL when it is not loaded. */
struct hl_dedupe_conv *hl_dedupe_get(struct hl_dedupe *d, int64_t conv_id);

/* Starts an empty set for conv_id (forgetting one it had) that the caller
 * fills with every stored id; NULL when out of memory. May forget other
 * conversations to make room, never this one. */
struct hl_dedupe_conv *hl_dedupe_start(struct hl_dedupe *d, int64_t conv_id);

/* Adds (key, seq) to c. Returns 0, or HL_ENOMEM after forgetting c (which
 * must then not be used). May forget other conversations, never c. */
int hl_dedupe_put(struct hl_dedupe *d, struct hl_dedupe_conv *c, uint64_t key,
		  int64_t seq);

/* Forgets conv_id if it is loaded. */
void hl_dedupe_forget(struct hl_dedupe *d, int64_t conv_id);

/* Walks the seqs stored under key in c: start with *pos = 0; returns true
 * with *seq set for each candidate, false when there are no more. c must
 * not change during the walk. */
bool hl_dedupe_next(const struct hl_dedupe_conv *c, uint64_t key, size_t *pos,
		    int64_t *seq);

/* The seq up to which c holds every stored id (0 when just started), and
 * (head not NULL) in *head the chain head of that event as it was then
 * (NULL: unknown). */
int64_t hl_dedupe_upto(const struct hl_dedupe_conv *c,
		       const unsigned char **head);

/* c now holds every stored id up to seq upto, whose chain head is head
 * (NULL: unknown). */
void hl_dedupe_set_upto(struct hl_dedupe_conv *c, int64_t upto,
			const unsigned char *head);

/* How many ids c holds. */
size_t hl_dedupe_count(const struct hl_dedupe_conv *c);

#endif
