/* test_queue.c: order by risk then time with ageing, positions, returning
 * to the front, language matching, honest estimates, and coalesced
 * position updates for a queue of 10,000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "queue.h"

#define MIN (60 * 1000)

static struct hl_queue_entry *mk(uint64_t id, enum hl_risk risk,
				 const char *lang)
{
	struct hl_queue_entry *e = calloc(1, sizeof(*e));

	e->id = id;
	e->risk = risk;
	if (lang)
		strcpy(e->language, lang);
	return e;
}

static void test_order_risk_then_time_with_ageing(void **state)
{
	struct hl_queue q;
	struct hl_queue_entry *a = mk(1, HL_RISK_STANDARD, NULL),
			      *b = mk(2, HL_RISK_HIGH, NULL),
			      *c = mk(3, HL_RISK_STANDARD, NULL),
			      *d = mk(4, HL_RISK_IMMEDIATE, NULL),
			      *old = mk(5, HL_RISK_STANDARD, NULL);

	(void)state;
	hl_queue_init(&q, 0, 10 * MIN);
	/* old has waited 25 minutes: more than high's 2 x 10 min ageing. */
	assert_int_equal(hl_queue_push(&q, old, 0), 0);
	assert_int_equal(hl_queue_push(&q, a, 25 * MIN), 0);
	assert_int_equal(hl_queue_push(&q, b, 25 * MIN + 1000), 0);
	assert_int_equal(hl_queue_push(&q, c, 25 * MIN + 2000), 0);
	assert_int_equal(hl_queue_push(&q, d, 25 * MIN + 3000), 0);
	/* d (immediate) first; then old (aged past high); b; a; c. */
	assert_int_equal(hl_queue_position(&q, d), 1);
	assert_int_equal(hl_queue_position(&q, old), 2);
	assert_int_equal(hl_queue_position(&q, b), 3);
	assert_int_equal(hl_queue_position(&q, a), 4);
	assert_int_equal(hl_queue_position(&q, c), 5);
	assert_ptr_equal(hl_queue_next_for(&q, ""), d);
	uint32_t counts[HL_RISK__COUNT];
	hl_queue_counts(&q, counts);
	assert_int_equal(counts[0], 3);
	assert_int_equal(counts[2], 1);
	assert_int_equal(counts[3], 1);
	assert_int_equal(hl_queue_longest_wait_ms(&q, 30 * MIN), 30 * MIN);

	hl_queue_remove(&q, d, true, 26 * MIN);
	assert_int_equal(hl_queue_position(&q, d), 0);
	assert_int_equal(hl_queue_position(&q, old), 1);
	assert_int_equal(hl_queue_position(&q, c), 4);
	assert_int_equal(hl_queue_push(&q, a, 0), HL_EINVAL); /* already queued */
	hl_queue_remove(&q, d, false, 0); /* not queued: no-op */
	assert_int_equal(hl_queue_length(&q), 4);
	hl_queue_free(&q);
	free(a); free(b); free(c); free(d); free(old);
}

static void test_cap_and_bad_input(void **state)
{
	struct hl_queue q;
	struct hl_queue_entry *e[3];

	(void)state;
	hl_queue_init(&q, 2, MIN);
	for (int i = 0; i < 3; i++)
		e[i] = mk((uint64_t)i + 1, HL_RISK_STANDARD, NULL);
	assert_int_equal(hl_queue_push(&q, e[0], 0), 0);
	assert_int_equal(hl_queue_push(&q, e[1], 1), 0);
	assert_int_equal(hl_queue_push(&q, e[2], 2), HL_EFULL);
	assert_false(e[2]->queued);
	e[2]->risk = (enum hl_risk)7;
	hl_queue_remove(&q, e[0], false, 0);
	assert_int_equal(hl_queue_push(&q, e[2], 3), HL_EINVAL);
	hl_queue_free(&q);
	for (int i = 0; i < 3; i++)
		free(e[i]);
}

static void test_push_front_returns_ahead_of_its_class(void **state)
{
	struct hl_queue q;
	struct hl_queue_entry *lost = mk(1, HL_RISK_STANDARD, NULL),
			      *s1 = mk(2, HL_RISK_STANDARD, NULL),
			      *s2 = mk(3, HL_RISK_STANDARD, NULL),
			      *hi = mk(4, HL_RISK_HIGH, NULL);

	(void)state;
	hl_queue_init(&q, 1, 10 * MIN);
	assert_int_equal(hl_queue_push(&q, lost, 0), 0);
	hl_queue_remove(&q, lost, true, 1000); /* offered to a counsellor */
	assert_int_equal(hl_queue_push(&q, s1, 2000), 0);
	/* The cap (1) does not apply to someone who was being served. */
	assert_int_equal(hl_queue_push_front(&q, lost), 0);
	hl_queue_remove(&q, s1, false, 0);
	q.max = 0;
	assert_int_equal(hl_queue_push(&q, s1, -5 * MIN), 0); /* joined long ago */
	assert_int_equal(hl_queue_push(&q, s2, 3000), 0);
	assert_int_equal(hl_queue_push(&q, hi, 4000), 0);
	assert_int_equal(hl_queue_position(&q, hi), 1);
	assert_int_equal(hl_queue_position(&q, lost), 2);
	assert_int_equal(hl_queue_position(&q, s1), 3);
	assert_int_equal(hl_queue_position(&q, s2), 4);
	hl_queue_free(&q);
	free(lost); free(s1); free(s2); free(hi);
}

static void test_language_matching(void **state)
{
	struct hl_queue q;
	struct hl_queue_entry *cy = mk(1, HL_RISK_STANDARD, "cy"),
			      *any = mk(2, HL_RISK_STANDARD, ""),
			      *pl = mk(3, HL_RISK_STANDARD, "pl");

	(void)state;
	hl_queue_init(&q, 0, MIN);
	hl_queue_push(&q, cy, 0);
	hl_queue_push(&q, any, 1);
	hl_queue_push(&q, pl, 2);
	assert_ptr_equal(hl_queue_next_for(&q, "en"), any);
	assert_ptr_equal(hl_queue_next_for(&q, "en,cy"), cy);
	assert_ptr_equal(hl_queue_next_for(&q, "c"), any); /* no prefix match */
	assert_ptr_equal(hl_queue_next_for(&q, ""), cy);
	hl_queue_remove(&q, any, false, 0);
	assert_null(hl_queue_next_for(&q, "en"));
	assert_ptr_equal(hl_queue_next_for(&q, "de,pl"), pl);
	hl_queue_free(&q);
	free(cy); free(any); free(pl);
}

static void test_estimates_are_honest(void **state)
{
	struct hl_queue q;
	struct hl_queue_entry *e[6];

	(void)state;
	hl_queue_init(&q, 0, MIN);
	for (int i = 0; i < 6; i++) {
		e[i] = mk((uint64_t)i + 1, HL_RISK_STANDARD, NULL);
		hl_queue_push(&q, e[i], i);
	}
	/* No history: unknown, not an invented number. */
	assert_int_equal(hl_queue_estimate_s(&q, 1, 0), -1);
	hl_queue_remove(&q, e[0], true, 0);
	hl_queue_remove(&q, e[1], true, 2 * MIN);
	assert_int_equal(hl_queue_estimate_s(&q, 1, 2 * MIN), -1); /* 2 served */
	hl_queue_remove(&q, e[2], true, 4 * MIN);
	/* One served every 2 minutes: position 3 waits about 6 minutes. */
	assert_int_equal(hl_queue_estimate_s(&q, 3, 4 * MIN), 6 * 60);
	/* Rounded up to whole minutes. */
	assert_int_equal(hl_queue_estimate_s(&q, 1, 4 * MIN), 2 * 60);
	/* History older than an hour no longer counts. */
	assert_int_equal(hl_queue_estimate_s(&q, 1, 70 * MIN), -1);
	hl_queue_free(&q);
	for (int i = 0; i < 6; i++)
		free(e[i]);
}

static void test_display_position(void **state)
{
	(void)state;
	assert_int_equal(hl_queue_display_position(1), 1);
	assert_int_equal(hl_queue_display_position(20), 20);
	assert_int_equal(hl_queue_display_position(21), 25);
	assert_int_equal(hl_queue_display_position(100), 100);
	assert_int_equal(hl_queue_display_position(101), 150);
	assert_int_equal(hl_queue_display_position(1000), 1000);
	assert_int_equal(hl_queue_display_position(1001), 1500);
	assert_int_equal(hl_queue_display_position(9999), 10000);
}

static size_t calls;
static void count_cb(struct hl_queue_entry *e, uint32_t pos, int64_t est,
		     void *arg)
{
	(void)e; (void)pos; (void)est; (void)arg;
	calls++;
}

static void test_coalesced_updates_10000(void **state)
{
	enum { N = 10000 };
	struct hl_queue q;
	struct hl_queue_entry *e = calloc(N, sizeof(*e));
	size_t told;

	(void)state;
	hl_queue_init(&q, 0, 10 * MIN);
	for (int i = 0; i < N; i++) {
		e[i].id = (uint64_t)i + 1;
		e[i].risk = HL_RISK_STANDARD;
		assert_int_equal(hl_queue_push(&q, &e[i], i), 0);
	}
	/* Everyone is told once, however many joined since the last tick. */
	told = hl_queue_poll_changes(&q, N, count_cb, NULL);
	assert_int_equal(told, N);
	assert_int_equal(hl_queue_poll_changes(&q, N, count_cb, NULL), 0);

	/* Someone leaves from the middle: only people behind them whose
	 * shown position changed are told (exact positions up to 20, buckets
	 * beyond), not all 10,000. */
	hl_queue_remove(&q, &e[5000], false, N);
	told = hl_queue_poll_changes(&q, N, count_cb, NULL);
	assert_true(told < 200);
	assert_int_equal(e[5001].told_position, hl_queue_display_position(5001));

	/* One served at the front with no estimate yet: positions 1..20
	 * change exactly, plus the few crossing a bucket boundary. */
	hl_queue_remove(&q, &e[0], true, N + 1);
	told = hl_queue_poll_changes(&q, N + 1, count_cb, NULL);
	assert_true(told >= 20 && told < 300);
	assert_int_equal(e[1].told_position, 1);
	hl_queue_free(&q);
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_risk_then_time_with_ageing),
		cmocka_unit_test(test_cap_and_bad_input),
		cmocka_unit_test(test_push_front_returns_ahead_of_its_class),
		cmocka_unit_test(test_language_matching),
		cmocka_unit_test(test_estimates_are_honest),
		cmocka_unit_test(test_display_position),
		cmocka_unit_test(test_coalesced_updates_10000),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
