/* dedupe.c: per-conversation sets of client-id hashes (open addressing,
 * linear probing, never deleted from: a set is dropped whole), found through
 * a chained table by conversation id and kept in least-recently-used order
 * for eviction. */
#include "dedupe.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

struct slot {
	uint64_t key; /* 0: empty */
	int64_t seq;
};

struct hl_dedupe_conv {
	int64_t id;
	struct hl_dedupe_conv *chain;        /* next in its bucket */
	struct hl_dedupe_conv *newer, *older; /* recency list */
	struct slot *slots;                  /* cap of them */
	size_t cap, n;                       /* cap a power of two, or 0 */
	int64_t upto;                        /* see hl_dedupe_upto */
	bool has_head;
	unsigned char head[HL_DEDUPE_HEAD];
};

int hl_dedupe_init(struct hl_dedupe *d, size_t max_units)
{
	if (!d || max_units < 1 || sodium_init() < 0)
		return HL_EINVAL;
	memset(d, 0, sizeof(*d));
	d->max_units = max_units;
	crypto_shorthash_keygen(d->key);
	return 0;
}

void hl_dedupe_free(struct hl_dedupe *d)
{
	struct hl_dedupe_conv *c, *next;

	if (!d)
		return;
	for (c = d->newest; c; c = next) {
		next = c->older;
		free(c->slots);
		free(c);
	}
	free(d->buckets);
	sodium_memzero(d->key, sizeof(d->key));
	memset(d, 0, sizeof(*d));
}

uint64_t hl_dedupe_key(const struct hl_dedupe *d, const char *sender,
		       const char *client_id)
{
	unsigned char in[128], out[crypto_shorthash_BYTES];
	size_t a = strlen(sender), b = strlen(client_id);
	uint64_t k = 0;

	/* sender and client id are at most 32 and 64 bytes (conversation.h);
	 * a longer pair is hashed in two steps rather than cut. */
	if (a + 1 + b <= sizeof(in)) {
		memcpy(in, sender, a);
		in[a] = 0;
		memcpy(in + a + 1, client_id, b);
		crypto_shorthash(out, in, a + 1 + b, d->key);
	} else {
		unsigned char h[crypto_generichash_BYTES];
		crypto_generichash_state st;

		crypto_generichash_init(&st, NULL, 0, sizeof(h));
		crypto_generichash_update(&st, (const unsigned char *)sender,
					  a + 1);
		crypto_generichash_update(&st, (const unsigned char *)client_id,
					  b);
		crypto_generichash_final(&st, h, sizeof(h));
		crypto_shorthash(out, h, sizeof(h), d->key);
	}
	for (size_t i = 0; i < sizeof(out); i++)
		k |= (uint64_t)out[i] << (8 * i);
	return k ? k : 1;
}

static size_t bucket_of(const struct hl_dedupe *d, int64_t id)
{
	uint64_t h = (uint64_t)id * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(h >> 32) & (d->nbuckets - 1);
}

static struct hl_dedupe_conv *lookup(const struct hl_dedupe *d, int64_t id)
{
	struct hl_dedupe_conv *c;

	if (d->nbuckets == 0)
		return NULL;
	for (c = d->buckets[bucket_of(d, id)]; c; c = c->chain)
		if (c->id == id)
			return c;
	return NULL;
}

static void unlink_lru(struct hl_dedupe *d, struct hl_dedupe_conv *c)
{
	if (c->newer)
		c->newer->older = c->older;
	else
		d->newest = c->older;
	if (c->older)
		c->older->newer = c->newer;
	else
		d->oldest = c->newer;
	c->newer = c->older = NULL;
}

static void push_newest(struct hl_dedupe *d, struct hl_dedupe_conv *c)
{
	c->older = d->newest;
	c->newer = NULL;
	if (d->newest)
		d->newest->newer = c;
	else
		d->oldest = c;
	d->newest = c;
}

static void drop(struct hl_dedupe *d, struct hl_dedupe_conv *c)
{
	struct hl_dedupe_conv **p = &d->buckets[bucket_of(d, c->id)];

	while (*p != c)
		p = &(*p)->chain;
	*p = c->chain;
	unlink_lru(d, c);
	d->units -= c->n + HL_DEDUPE_CONV_UNITS;
	d->nconvs--;
	free(c->slots);
	free(c);
}

/* Forgets the least recently used conversations, never keep, until the
 * units fit. */
static void make_room(struct hl_dedupe *d, const struct hl_dedupe_conv *keep)
{
	struct hl_dedupe_conv *c = d->oldest, *newer;

	while (d->units > d->max_units && c) {
		newer = c->newer;
		if (c != keep) {
			drop(d, c);
			d->evictions++;
		}
		c = newer;
	}
}

/* Doubles the bucket table when conversations outnumber buckets. */
static int grow_buckets(struct hl_dedupe *d)
{
	size_t n = d->nbuckets ? d->nbuckets * 2 : 64;
	struct hl_dedupe_conv **b = calloc(n, sizeof(*b));
	struct hl_dedupe_conv *c, *next;
	size_t old = d->nbuckets;
	struct hl_dedupe_conv **ob = d->buckets;

	if (!b)
		return HL_ENOMEM;
	d->buckets = b;
	d->nbuckets = n;
	for (size_t i = 0; i < old; i++) {
		for (c = ob[i]; c; c = next) {
			size_t k = bucket_of(d, c->id);

			next = c->chain;
			c->chain = b[k];
			b[k] = c;
		}
	}
	free(ob);
	return 0;
}

struct hl_dedupe_conv *hl_dedupe_get(struct hl_dedupe *d, int64_t conv_id)
{
	struct hl_dedupe_conv *c = lookup(d, conv_id);

	if (c && d->newest != c) {
		unlink_lru(d, c);
		push_newest(d, c);
	}
	return c;
}

struct hl_dedupe_conv *hl_dedupe_start(struct hl_dedupe *d, int64_t conv_id)
{
	struct hl_dedupe_conv *c;
	size_t k;

	hl_dedupe_forget(d, conv_id);
	if (d->nconvs >= d->nbuckets && grow_buckets(d) != 0 &&
	    d->nbuckets == 0)
		return NULL; /* no table at all yet */
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->id = conv_id;
	k = bucket_of(d, conv_id);
	c->chain = d->buckets[k];
	d->buckets[k] = c;
	push_newest(d, c);
	d->nconvs++;
	d->units += HL_DEDUPE_CONV_UNITS;
	d->loads++;
	make_room(d, c);
	return c;
}

void hl_dedupe_forget(struct hl_dedupe *d, int64_t conv_id)
{
	struct hl_dedupe_conv *c = lookup(d, conv_id);

	if (c)
		drop(d, c);
}

static void insert_slot(struct slot *slots, size_t cap, uint64_t key,
			int64_t seq)
{
	size_t i = (size_t)key & (cap - 1);

	while (slots[i].key != 0)
		i = (i + 1) & (cap - 1);
	slots[i].key = key;
	slots[i].seq = seq;
}

int hl_dedupe_put(struct hl_dedupe *d, struct hl_dedupe_conv *c, uint64_t key,
		  int64_t seq)
{
	if (key == 0)
		key = 1;
	/* At most 3/4 full, so a probe for an absent key ends soon. */
	if ((c->n + 1) * 4 > c->cap * 3) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct slot *s;

		if (cap > SIZE_MAX / sizeof(*s) ||
		    !(s = calloc(cap, sizeof(*s)))) {
			drop(d, c);
			return HL_ENOMEM;
		}
		for (size_t i = 0; i < c->cap; i++)
			if (c->slots[i].key != 0)
				insert_slot(s, cap, c->slots[i].key,
					    c->slots[i].seq);
		free(c->slots);
		c->slots = s;
		c->cap = cap;
	}
	insert_slot(c->slots, c->cap, key, seq);
	c->n++;
	d->units++;
	make_room(d, c);
	return 0;
}

bool hl_dedupe_next(const struct hl_dedupe_conv *c, uint64_t key, size_t *pos,
		    int64_t *seq)
{
	size_t start, i;

	if (!c || c->cap == 0)
		return false;
	start = (size_t)key & (c->cap - 1);
	while (*pos < c->cap) {
		i = (start + *pos) & (c->cap - 1);
		(*pos)++;
		if (c->slots[i].key == 0)
			return false;
		if (c->slots[i].key == key) {
			*seq = c->slots[i].seq;
			return true;
		}
	}
	return false;
}

int64_t hl_dedupe_upto(const struct hl_dedupe_conv *c,
		       const unsigned char **head)
{
	if (head)
		*head = c->has_head ? c->head : NULL;
	return c->upto;
}

void hl_dedupe_set_upto(struct hl_dedupe_conv *c, int64_t upto,
			const unsigned char *head)
{
	c->upto = upto;
	c->has_head = head != NULL;
	if (head)
		memcpy(c->head, head, HL_DEDUPE_HEAD);
}

size_t hl_dedupe_count(const struct hl_dedupe_conv *c)
{
	return c ? c->n : 0;
}
