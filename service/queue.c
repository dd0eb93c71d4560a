/* queue.c: the waiting line: a sorted array of entry pointers. Inserts and
 * removals are O(n) memmoves, which for the 10,000 people a very busy
 * helpline might have waiting is a few microseconds; lookups by entry are
 * O(1) through the entry's own index. */
#include "queue.h"
#include "common.h"

#include <stdlib.h>
#include <string.h>

void hl_queue_init(struct hl_queue *q, uint32_t max, int64_t ageing_ms)
{
	memset(q, 0, sizeof(*q));
	q->max = max;
	q->ageing_ms = ageing_ms > 0 ? ageing_ms : 1;
}

void hl_queue_free(struct hl_queue *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		q->v[i]->queued = false;
	free(q->v);
	q->v = NULL;
	q->n = q->cap = 0;
}

/* a before b? Ties on key are broken by id so the order is total. */
static bool before(const struct hl_queue_entry *a, const struct hl_queue_entry *b)
{
	return a->key < b->key || (a->key == b->key && a->id < b->id);
}

static void mark_changed(struct hl_queue *q, uint32_t from)
{
	if (!q->changed || from < q->changed_from)
		q->changed_from = from;
	q->changed = true;
}

static void reindex(struct hl_queue *q, uint32_t from)
{
	for (uint32_t i = from; i < q->n; i++)
		q->v[i]->index = i;
}

static int insert(struct hl_queue *q, struct hl_queue_entry *e)
{
	uint32_t lo = 0, hi = q->n;

	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 64;
		void *p = realloc(q->v, cap * sizeof(*q->v));
		if (!p)
			return HL_ENOMEM;
		q->v = p;
		q->cap = cap;
	}
	while (lo < hi) { /* first position whose entry is not before e */
		uint32_t mid = lo + (hi - lo) / 2;
		if (before(q->v[mid], e))
			lo = mid + 1;
		else
			hi = mid;
	}
	memmove(&q->v[lo + 1], &q->v[lo], (q->n - lo) * sizeof(*q->v));
	q->v[lo] = e;
	q->n++;
	e->queued = true;
	reindex(q, lo);
	mark_changed(q, lo);
	return HL_OK;
}

int hl_queue_push(struct hl_queue *q, struct hl_queue_entry *e, int64_t now_ms)
{
	if (e->queued || (unsigned)e->risk >= HL_RISK__COUNT)
		return HL_EINVAL;
	if (q->max && q->n >= q->max)
		return HL_EFULL;
	e->enqueued_ms = now_ms;
	e->key = now_ms - (int64_t)e->risk * q->ageing_ms;
	e->told_position = 0;
	e->told_estimate_s = -1;
	return insert(q, e);
}

int hl_queue_push_front(struct hl_queue *q, struct hl_queue_entry *e)
{
	int64_t key;

	if (e->queued || (unsigned)e->risk >= HL_RISK__COUNT)
		return HL_EINVAL;
	/* Ahead of everyone of its class who is waiting now: their keys are
	 * at least (their enqueue time - risk * ageing), and nobody can have
	 * joined before this person's own enqueue time minus one ageing. */
	key = e->enqueued_ms - (int64_t)e->risk * q->ageing_ms - q->ageing_ms;
	for (uint32_t i = 0; i < q->n; i++)
		if (q->v[i]->risk == e->risk && q->v[i]->key <= key)
			key = q->v[i]->key - 1;
	e->key = key;
	e->told_position = 0; /* back in the queue: tell them where they are */
	e->told_estimate_s = -1;
	return insert(q, e);
}

void hl_queue_remove(struct hl_queue *q, struct hl_queue_entry *e, bool served,
		     int64_t now_ms)
{
	uint32_t i = e->index;

	if (!e->queued || i >= q->n || q->v[i] != e)
		return;
	memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof(*q->v));
	q->n--;
	e->queued = false;
	reindex(q, i);
	mark_changed(q, i);
	if (served) {
		q->served_ms[q->served_next] = now_ms;
		q->served_next = (q->served_next + 1) % HL_QUEUE_SAMPLES;
		if (q->served_n < HL_QUEUE_SAMPLES)
			q->served_n++;
		mark_changed(q, 0); /* the service rate moved every estimate */
	}
}

bool hl_queue_in_list(const char *tag, const char *list)
{
	size_t n = strlen(tag);

	for (const char *p = list; *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncmp(p, tag, n) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

bool hl_queue_speaks(const char *langs, const char *lang)
{
	return !lang[0] || !langs || !langs[0] || hl_queue_in_list(lang, langs);
}

struct hl_queue_entry *hl_queue_first(const struct hl_queue *q,
				      const char *langs,
				      bool (*skip)(const struct hl_queue_entry *e,
						   void *arg),
				      void *arg)
{
	for (uint32_t i = 0; i < q->n; i++) {
		const struct hl_queue_entry *e = q->v[i];

		if (skip && skip(e, arg))
			continue;
		if (hl_queue_speaks(langs, e->language))
			return q->v[i];
	}
	return NULL;
}

struct hl_queue_entry *hl_queue_next_for(const struct hl_queue *q,
					 const char *langs)
{
	return hl_queue_first(q, langs, NULL, NULL);
}

uint32_t hl_queue_position(const struct hl_queue *q,
			   const struct hl_queue_entry *e)
{
	if (!e->queued || e->index >= q->n || q->v[e->index] != e)
		return 0;
	return e->index + 1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The median gap between the people served in the last hour (ms, at
 * least 1 s), or -1 with fewer than 3 of them. */
static int64_t service_gap_ms(const struct hl_queue *q, int64_t now_ms)
{
	int64_t t[HL_QUEUE_SAMPLES], gaps[HL_QUEUE_SAMPLES];
	uint32_t n = 0, g = 0;

	for (uint32_t k = 0; k < q->served_n; k++) { /* oldest first */
		uint32_t i = (q->served_next + HL_QUEUE_SAMPLES - q->served_n + k) %
			     HL_QUEUE_SAMPLES;
		if (now_ms - q->served_ms[i] <= 3600 * 1000)
			t[n++] = q->served_ms[i];
	}
	if (n < 3)
		return -1;
	for (uint32_t k = 1; k < n; k++)
		gaps[g++] = t[k] - t[k - 1];
	qsort(gaps, g, sizeof(gaps[0]), cmp_i64);
	return gaps[g / 2] < 1000 ? 1000 : gaps[g / 2];
}

/* pos people at one per gap, in whole minutes rounded up; -1 unknown. */
static int64_t estimate(int64_t gap_ms, uint32_t pos)
{
	int64_t est;

	if (gap_ms < 0 || pos == 0)
		return -1;
	est = gap_ms * (int64_t)pos / 1000;
	return (est + 59) / 60 * 60;
}

int64_t hl_queue_estimate_s(const struct hl_queue *q, uint32_t pos,
			    int64_t now_ms)
{
	return estimate(service_gap_ms(q, now_ms), pos);
}

uint32_t hl_queue_length(const struct hl_queue *q)
{
	return q->n;
}

void hl_queue_counts(const struct hl_queue *q, uint32_t *counts)
{
	memset(counts, 0, HL_RISK__COUNT * sizeof(*counts));
	for (uint32_t i = 0; i < q->n; i++)
		counts[q->v[i]->risk]++;
}

int64_t hl_queue_longest_wait_ms(const struct hl_queue *q, int64_t now_ms)
{
	int64_t longest = 0;

	for (uint32_t i = 0; i < q->n; i++)
		if (now_ms - q->v[i]->enqueued_ms > longest)
			longest = now_ms - q->v[i]->enqueued_ms;
	return longest;
}

uint32_t hl_queue_display_position(uint32_t pos)
{
	uint32_t step = pos <= 20 ? 1 : pos <= 100 ? 5 : pos <= 1000 ? 50 : 500;

	return (pos + step - 1) / step * step;
}

size_t hl_queue_poll_changes(struct hl_queue *q, int64_t now_ms,
			     void (*fn)(struct hl_queue_entry *e,
					uint32_t position, int64_t estimate_s,
					void *arg),
			     void *arg)
{
	size_t told = 0;
	int64_t gap;

	if (!q->changed)
		return 0;
	gap = service_gap_ms(q, now_ms);
	for (uint32_t i = q->changed_from; i < q->n; i++) {
		struct hl_queue_entry *e = q->v[i];
		uint32_t shown = hl_queue_display_position(i + 1);
		int64_t est = estimate(gap, shown);

		if (shown == e->told_position && est == e->told_estimate_s)
			continue;
		e->told_position = shown;
		e->told_estimate_s = est;
		fn(e, shown, est, arg);
		told++;
	}
	q->changed = false;
	q->changed_from = 0;
	return told;
}
