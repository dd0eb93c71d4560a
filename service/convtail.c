/* convtail.c: the writer's per-batch copy of conversation tails
 * (convtail.h). */
#include "convtail.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(int64_t conv_id, size_t cap)
{
	uint64_t h = (uint64_t)conv_id * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(h >> 32) & (cap - 1);
}

struct hl_convtail *hl_convtail_get(struct hl_convtails *t, int64_t conv_id)
{
	size_t i;

	if (t->cap == 0 || conv_id <= 0)
		return NULL;
	for (i = slot_of(conv_id, t->cap);; i = (i + 1) & (t->cap - 1)) {
		if (t->slots[i].conv_id == conv_id)
			return &t->slots[i];
		if (t->slots[i].conv_id == 0)
			return NULL;
	}
}

/* Doubles the table (at least 64 slots), keeping the order of used. */
static int grow(struct hl_convtails *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64, k, i;
	struct hl_convtail *slots;
	uint32_t *used;

	if (cap > UINT32_MAX)
		return -1;
	slots = calloc(cap, sizeof(*slots));
	used = malloc(cap / 2 * sizeof(*used));
	if (!slots || !used) {
		free(slots);
		free(used);
		return -1;
	}
	for (k = 0; k < t->n; k++) {
		const struct hl_convtail *old = &t->slots[t->used[k]];

		for (i = slot_of(old->conv_id, cap); slots[i].conv_id;
		     i = (i + 1) & (cap - 1))
			;
		slots[i] = *old;
		used[k] = (uint32_t)i;
	}
	free(t->slots);
	free(t->used);
	t->slots = slots;
	t->used = used;
	t->cap = cap;
	return 0;
}

struct hl_convtail *hl_convtail_add(struct hl_convtails *t, int64_t conv_id)
{
	size_t i;

	if (conv_id <= 0)
		return NULL;
	/* At most half full, so probes stay short and used[] fits. */
	if ((t->n + 1) * 2 > t->cap && grow(t) != 0)
		return NULL;
	for (i = slot_of(conv_id, t->cap); t->slots[i].conv_id;
	     i = (i + 1) & (t->cap - 1))
		;
	memset(&t->slots[i], 0, sizeof(t->slots[i]));
	t->slots[i].conv_id = conv_id;
	t->used[t->n++] = (uint32_t)i;
	return &t->slots[i];
}

struct hl_convtail *hl_convtail_at(struct hl_convtails *t, size_t i)
{
	return i < t->n ? &t->slots[t->used[i]] : NULL;
}

void hl_convtail_touch(struct hl_convtails *t, struct hl_convtail *tail)
{
	if (tail->job == t->job)
		return;
	tail->job = t->job;
	tail->prev = tail->ch;
	tail->prev_dirty = tail->dirty;
}

void hl_convtail_begin_job(struct hl_convtails *t)
{
	t->job++;
}

void hl_convtail_undo_job(struct hl_convtails *t)
{
	for (size_t k = 0; k < t->n; k++) {
		struct hl_convtail *tail = &t->slots[t->used[k]];

		if (tail->job != t->job)
			continue;
		tail->ch = tail->prev;
		tail->dirty = tail->prev_dirty;
		tail->job = 0;
	}
}

void hl_convtail_clear(struct hl_convtails *t)
{
	for (size_t k = 0; k < t->n; k++)
		t->slots[t->used[k]].conv_id = 0;
	t->n = 0;
}

void hl_convtail_free(struct hl_convtails *t)
{
	free(t->slots);
	free(t->used);
	memset(t, 0, sizeof(*t));
}
