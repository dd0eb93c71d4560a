/* keepalive.c: the keep-alive wheel (see keepalive.h). */
#include "keepalive.h"
#include "common.h"

#include <stdlib.h>

/* The first whole second at or after ms. */
static uint64_t second_at(uint64_t ms)
{
	return ms / 1000 + (ms % 1000 != 0);
}

static void link_in(struct hl_keepalive *k, struct hl_ka_link *l,
		    uint64_t due)
{
	struct hl_ka_link **head = &k->slots[due % k->nslots];

	l->due = due;
	l->next = *head;
	if (l->next)
		l->next->pprev = &l->next;
	*head = l;
	l->pprev = head;
}

static void link_out(struct hl_ka_link *l)
{
	*l->pprev = l->next;
	if (l->next)
		l->next->pprev = l->pprev;
	l->next = NULL;
	l->pprev = NULL;
}

int hl_keepalive_init(struct hl_keepalive *k, uint64_t ping_ms,
		      uint64_t hangup_ms, uint64_t now_ms, hl_ka_ping_fn *ping,
		      hl_ka_hangup_fn *hangup, void *arg)
{
	uint64_t span;

	*k = (struct hl_keepalive){.ping = ping, .hangup = hangup, .arg = arg,
				   .done = now_ms / 1000};
	if (ping_ms == 0)
		return HL_OK;
	if (ping_ms % 1000 || hangup_ms % 1000 || hangup_ms <= ping_ms ||
	    !ping || !hangup)
		return HL_EINVAL;
	/* Every deadline is at most span ahead, so a slot holds (almost)
	 * only links due in its own second; a longer one would still be
	 * right, only looked at more than once. */
	span = ping_ms > hangup_ms - ping_ms ? ping_ms : hangup_ms - ping_ms;
	k->nslots = span / 1000 + 2;
	k->slots = calloc(k->nslots, sizeof(*k->slots));
	if (!k->slots)
		return HL_ENOMEM;
	k->ping_ms = ping_ms;
	k->hangup_ms = hangup_ms;
	return HL_OK;
}

void hl_keepalive_free(struct hl_keepalive *k)
{
	free(k->slots);
	k->slots = NULL;
	k->ping_ms = 0;
}

void hl_keepalive_add(struct hl_keepalive *k, struct hl_ka_link *l,
		      uint64_t now_ms)
{
	l->seen_ms = now_ms;
	l->pinged = false;
	l->next = NULL;
	l->pprev = NULL;
	if (!k->ping_ms)
		return;
	link_in(k, l, second_at(now_ms + k->ping_ms));
	k->count++;
}

void hl_keepalive_remove(struct hl_keepalive *k, struct hl_ka_link *l)
{
	if (!l->pprev)
		return;
	link_out(l);
	k->count--;
}

void hl_keepalive_answered(struct hl_keepalive *k, struct hl_ka_link *l)
{
	l->pinged = false;
	if (!l->pprev)
		return;
	link_out(l);
	link_in(k, l, second_at(l->seen_ms + k->ping_ms));
}

/* One link whose slot has come round at now_ms (second now_s). */
static void handle(struct hl_keepalive *k, struct hl_ka_link *l,
		   uint64_t now_ms, uint64_t now_s)
{
	uint64_t due;

	if (l->due > now_s) {
		/* A later turn of the wheel. */
		link_in(k, l, l->due);
		return;
	}
	if (l->pinged) {
		/* Nothing heard since the ping (hearing anything would have
		 * moved it): hang up. */
		k->count--;
		k->hangup(k, l);
		return;
	}
	if (l->seen_ms + k->ping_ms > now_ms) {
		/* Heard from since it was scheduled: to its real deadline. */
		link_in(k, l, second_at(l->seen_ms + k->ping_ms));
		return;
	}
	l->pinged = true;
	/* A ping goes out at most a second late, so this is its deadline...
	 * unless the loop stalled and it has passed already: the ping still
	 * gets (within a second) its time to be answered. */
	due = l->seen_ms + k->hangup_ms;
	if (due < now_ms + k->hangup_ms - k->ping_ms - 1000)
		due = now_ms + k->hangup_ms - k->ping_ms - 1000;
	link_in(k, l, second_at(due));
	k->ping(k, l);
}

void hl_keepalive_advance(struct hl_keepalive *k, uint64_t now_ms)
{
	uint64_t now_s = now_ms / 1000, t;

	if (!k->ping_ms || now_s <= k->done)
		return;
	t = k->done + 1;
	if (now_s - k->done > k->nslots)
		t = now_s - k->nslots + 1; /* each slot once */
	for (; t <= now_s; t++) {
		struct hl_ka_link **head = &k->slots[t % k->nslots];
		struct hl_ka_link *l;

		/* The slot's list is taken whole, so links moved back into
		 * it are not met again this turn; a callback may remove any
		 * link, this list's included. */
		k->pending = *head;
		*head = NULL;
		if (k->pending)
			k->pending->pprev = &k->pending;
		while ((l = k->pending) != NULL) {
			link_out(l);
			handle(k, l, now_ms, now_s);
		}
	}
	k->done = now_s;
}
