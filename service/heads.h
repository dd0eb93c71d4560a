/* heads.h: the store writer's memory of the last chain heads of the
 * conversations it wrote to lately, so that an envelope's seen_head a few
 * events behind the conversation's last (a client that sent several
 * messages before the other side's reached it) is checked without reading
 * that event back.
 *
 * What makes it safe to trust without a read: each conversation's ring
 * holds consecutive events, every one put with the head it was chained
 * from (crypto.md "Server checks and the hash chain"), and a put whose
 * previous head is not the ring's newest starts the ring again. So within
 * a ring head[k + 1] = H(head[k] ‖ ...). hl_heads_get answers only when the
 * ring's entry at the conversation's real last seq is the real head (which
 * the writer holds: convtail.h, or the conversation's row); by the hash
 * chain every entry before it is then the stored head too. Entries left by
 * a job or batch that was rolled back, by a deleted conversation whose id
 * came back, or by anything that wrote events without a put therefore
 * never answer: the caller reads the event instead, as without this.
 *
 * Bounded: HL_HEADS_SLOTS rings of HL_HEADS_RING heads, a conversation's
 * ring in the slot its id hashes to (another conversation there replaces
 * it). Writer thread only; no locking.
 */
#ifndef HL_HEADS_H
#define HL_HEADS_H

#include <stdbool.h>
#include <stdint.h>

#define HL_HEADS_RING 32   /* heads kept per conversation */
#define HL_HEADS_SLOTS 1024 /* conversations kept */
#define HL_HEADS_KEY 32

struct hl_heads_ring;

struct hl_heads {
	struct hl_heads_ring *slots[HL_HEADS_SLOTS]; /* allocated when used */
	uint64_t hits, misses; /* hl_heads_get's answers, for tests */
};

/* Frees every ring; h is then empty and may be used again. */
void hl_heads_free(struct hl_heads *h);

/* Event seq of conv_id was written with chain head head, chained from
 * prev (the head of seq - 1; NULL for the first event). Keeps nothing
 * when out of memory. */
void hl_heads_put(struct hl_heads *h, int64_t conv_id, int64_t seq,
		  const unsigned char *prev,
		  const unsigned char head[HL_HEADS_KEY]);

/* The head of event seq of conv_id, when its ring holds it and the ring's
 * entry at last_seq is last_head (the conversation's last event and head
 * now): true with out set. false otherwise: read the event. */
bool hl_heads_get(struct hl_heads *h, int64_t conv_id, int64_t last_seq,
		  const unsigned char last_head[HL_HEADS_KEY], int64_t seq,
		  unsigned char out[HL_HEADS_KEY]);

#endif
