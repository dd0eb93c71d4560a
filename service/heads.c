/* heads.c: see heads.h. */
#include "heads.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct hl_heads_ring {
	int64_t conv_id;
	int64_t last;  /* seq of the newest entry */
	unsigned n;    /* entries: seqs last - n + 1 .. last */
	unsigned char head[HL_HEADS_RING][HL_HEADS_KEY]; /* by seq % RING */
};

static size_t slot_of(int64_t conv_id)
{
	uint64_t x = (uint64_t)conv_id * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(x >> 32) % HL_HEADS_SLOTS;
}

void hl_heads_free(struct hl_heads *h)
{
	for (size_t i = 0; i < HL_HEADS_SLOTS; i++) {
		free(h->slots[i]);
		h->slots[i] = NULL;
	}
	h->hits = h->misses = 0;
}

/* The ring's head at seq, or NULL when seq is not in it. */
static unsigned char *at(struct hl_heads_ring *r, int64_t seq)
{
	if (r->n == 0 || seq > r->last || seq <= r->last - (int64_t)r->n ||
	    seq < 1)
		return NULL;
	return r->head[(uint64_t)seq % HL_HEADS_RING];
}

void hl_heads_put(struct hl_heads *h, int64_t conv_id, int64_t seq,
		  const unsigned char *prev,
		  const unsigned char head[HL_HEADS_KEY])
{
	struct hl_heads_ring **slot = &h->slots[slot_of(conv_id)];
	struct hl_heads_ring *r = *slot;
	unsigned char *p;

	if (seq < 1)
		return;
	if (!r) {
		r = *slot = calloc(1, sizeof(*r));
		if (!r)
			return;
	}
	if (r->conv_id != conv_id) {
		r->conv_id = conv_id;
		r->n = 0;
	}
	p = prev ? at(r, seq - 1) : NULL;
	if (p && memcmp(p, prev, HL_HEADS_KEY) == 0) {
		/* Follows an entry: what was after it is dropped. */
		r->n -= (unsigned)(r->last - (seq - 1));
	} else if (prev && seq > 1) {
		/* Starts again at the head it was chained from. */
		r->n = 1;
		memcpy(r->head[(uint64_t)(seq - 1) % HL_HEADS_RING], prev,
		       HL_HEADS_KEY);
	} else {
		r->n = 0;
	}
	r->last = seq;
	memcpy(r->head[(uint64_t)seq % HL_HEADS_RING], head, HL_HEADS_KEY);
	if (r->n < HL_HEADS_RING)
		r->n++;
}

bool hl_heads_get(struct hl_heads *h, int64_t conv_id, int64_t last_seq,
		  const unsigned char last_head[HL_HEADS_KEY], int64_t seq,
		  unsigned char out[HL_HEADS_KEY])
{
	struct hl_heads_ring *r = h->slots[slot_of(conv_id)];
	unsigned char *l, *p;

	if (!r || r->conv_id != conv_id || seq > last_seq ||
	    !(l = at(r, last_seq)) || !(p = at(r, seq)) ||
	    sodium_memcmp(l, last_head, HL_HEADS_KEY) != 0) {
		h->misses++;
		return false;
	}
	memcpy(out, p, HL_HEADS_KEY);
	h->hits++;
	return true;
}
