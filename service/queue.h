/* queue.h: owns the waiting line of young people: its order (risk class,
 * then waiting time, with ageing), each one's position, an honest wait
 * estimate, and which positions changed since they were last told. Pure
 * logic: no I/O and no clock of its own (the caller passes now), so it is
 * exact to test. */
#ifndef HL_QUEUE_H
#define HL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Risk classes, lowest to highest (DESIGN.md §4). */
enum hl_risk {
	HL_RISK_STANDARD = 0,
	HL_RISK_ELEVATED = 1,
	HL_RISK_HIGH = 2,
	HL_RISK_IMMEDIATE = 3,
};
#define HL_RISK__COUNT 4

/*
 * One waiting young person. The caller allocates it (usually inside its
 * conversation object) and keeps it alive while queued.
 *
 * Order: by key = enqueued_ms - risk * ageing_ms, smallest first. With
 * ageing_ms = 10 minutes, a "high" contact (risk 2) is served before a
 * "standard" one unless the standard one has waited 20 minutes longer:
 * nobody waits for ever behind a stream of higher-risk contacts, and the
 * order of two waiting people never changes while both wait (the key is
 * fixed at entry), so positions only move when someone joins ahead or
 * leaves ahead.
 */
struct hl_queue_entry {
	uint64_t id;              /* the caller's id (conversation id) */
	enum hl_risk risk;
	int64_t enqueued_ms;      /* when the person joined */
	int64_t key;              /* sort key, fixed at push */
	char language[17];        /* preferred language tag (<= 16 bytes), "" = any */
	uint32_t index;           /* position in the array, 0-based (internal) */
	uint32_t told_position;   /* last position sent (1-based), 0 = never */
	int64_t told_estimate_s;  /* last estimate sent, -1 = never / unknown */
	bool queued;              /* in a queue now */
};

/* The queue. Caller-allocated; init/free around use. */
struct hl_queue {
	struct hl_queue_entry **v; /* sorted by (key, id) */
	uint32_t n, cap;
	uint32_t max;              /* cap on waiting people (0 = no cap) */
	int64_t ageing_ms;         /* see struct hl_queue_entry */
	/* Recent service: when people left the front to a counsellor, for
	 * the wait estimate (ring buffer of the last HL_QUEUE_SAMPLES). */
	int64_t served_ms[32];
	uint32_t served_n, served_next;
	uint32_t changed_from;     /* lowest index whose position changed */
	bool changed;              /* some position changed since last poll */
};
#define HL_QUEUE_SAMPLES 32

/* Initialises an empty queue. max: most people waiting (0 = unlimited);
 * ageing_ms > 0. No allocation until the first push. */
void hl_queue_init(struct hl_queue *q, uint32_t max, int64_t ageing_ms);

/* Frees the queue's array (entries belong to the caller). */
void hl_queue_free(struct hl_queue *q);

/*
 * Adds e (id, risk, language filled by the caller) at now_ms. Returns 0,
 * HL_EFULL when max people are already waiting (the caller offers the
 * "very busy" route), HL_EINVAL if e is already queued or risk is out of
 * range, HL_ENOMEM.
 */
int hl_queue_push(struct hl_queue *q, struct hl_queue_entry *e, int64_t now_ms);

/*
 * Adds e back at the front of its risk class (a counsellor's chat that
 * returns to the queue after they were lost, or an offer nobody took): it
 * keeps its original enqueued_ms and is placed as if it had been waiting
 * ageing_ms longer than anyone of its class. Same returns as push, except
 * that the cap does not apply (the person was already being served).
 */
int hl_queue_push_front(struct hl_queue *q, struct hl_queue_entry *e);

/* Removes e (left the queue, or taken by a counsellor: pass served=true
 * to count it towards the wait estimate at now_ms). No-op if not queued. */
void hl_queue_remove(struct hl_queue *q, struct hl_queue_entry *e,
		     bool served, int64_t now_ms);

/* The first waiting entry a counsellor speaking the languages in langs
 * (comma-separated tags, "" = any) may take: the first in order whose
 * language is "" or in langs. NULL if none. */
struct hl_queue_entry *hl_queue_next_for(const struct hl_queue *q,
					 const char *langs);

/* The same, skipping entries for which skip(e, arg) is true (e.g. one
 * already offered to a counsellor). skip may be NULL. */
struct hl_queue_entry *hl_queue_first(const struct hl_queue *q,
				      const char *langs,
				      bool (*skip)(const struct hl_queue_entry *e,
						   void *arg),
				      void *arg);

/* Is tag one of the comma-separated list ("en" in "cy,en")? */
bool hl_queue_in_list(const char *tag, const char *list);

/* May someone speaking langs (comma-separated; "" = any) serve a person
 * who asked for lang ("" = any)? */
bool hl_queue_speaks(const char *langs, const char *lang);

/* 1-based position of e, 0 if not queued. */
uint32_t hl_queue_position(const struct hl_queue *q,
			   const struct hl_queue_entry *e);

/*
 * Honest wait estimate for position pos, in seconds, from the recent
 * service rate: the median gap between the last served people times pos,
 * rounded up to a whole minute. -1 when there is not enough history (fewer
 * than 3 served in the last hour): the page then says "we don't know yet"
 * instead of inventing a number.
 */
int64_t hl_queue_estimate_s(const struct hl_queue *q, uint32_t pos,
			    int64_t now_ms);

/* Number waiting, and waiting per risk class (counts[HL_RISK__COUNT]). */
uint32_t hl_queue_length(const struct hl_queue *q);
void hl_queue_counts(const struct hl_queue *q, uint32_t *counts);

/* Longest current wait in ms (0 when empty). */
int64_t hl_queue_longest_wait_ms(const struct hl_queue *q, int64_t now_ms);

/*
 * The position shown to a young person: exact up to 20, then rounded up to
 * 5 (to 100), 50 (to 1,000) and 500 beyond ("about 4,500 people"). Small
 * moves far back in a long queue then change nothing that is shown.
 */
uint32_t hl_queue_display_position(uint32_t pos);

/*
 * Coalesced position updates: calls fn for every queued entry whose shown
 * position (hl_queue_display_position) or estimate (whole minutes) differs
 * from what it was last told, updating its told_* fields, and returns how
 * many. The caller runs this from a timer (say once a second), so a burst
 * of joins and leaves costs each waiting person at most one message per
 * tick; entries ahead of the first change are not visited at all, and in a
 * queue of 10,000 one person served at the front tells only those whose
 * shown number actually changed.
 */
size_t hl_queue_poll_changes(struct hl_queue *q, int64_t now_ms,
			     void (*fn)(struct hl_queue_entry *e,
					uint32_t position, int64_t estimate_s,
					void *arg),
			     void *arg);

#endif
