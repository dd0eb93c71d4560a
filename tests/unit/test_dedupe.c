/* test_dedupe.c: the store writer's memory of client ids: keys (stable,
 * never 0, sender and id kept apart, a new key per instance), sets that
 * grow without losing entries, equal keys (a collision) all walked,
 * forgetting, and eviction of the least recently used conversations within
 * max_units, never the one in use. (conversation.c's use of it, through a
 * real store, is tested in test_conversation.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "dedupe.h"

/* The seqs stored under key in c, in walk order, into out; returns count. */
static size_t walk(const struct hl_dedupe_conv *c, uint64_t key,
		   int64_t *out, size_t cap)
{
	size_t pos = 0, n = 0;
	int64_t seq;

	while (hl_dedupe_next(c, key, &pos, &seq))
		if (n < cap)
			out[n++] = seq;
	return n;
}

static void test_keys(void **state)
{
	struct hl_dedupe a, b;
	char id[65];

	(void)state;
	assert_int_equal(hl_dedupe_init(&a, 100), 0);
	assert_int_equal(hl_dedupe_init(&b, 100), 0);
	assert_int_equal(hl_dedupe_init(&a, 0), HL_EINVAL);
	assert_int_equal(hl_dedupe_init(&a, 100), 0);
	/* Stable, and the sender is not run into the id. */
	assert_true(hl_dedupe_key(&a, "contact", "m-1") ==
		    hl_dedupe_key(&a, "contact", "m-1"));
	assert_true(hl_dedupe_key(&a, "contact", "m-1") !=
		    hl_dedupe_key(&a, "staff:3", "m-1"));
	assert_true(hl_dedupe_key(&a, "ab", "c") !=
		    hl_dedupe_key(&a, "a", "bc"));
	/* Another instance has another key. */
	assert_true(hl_dedupe_key(&a, "contact", "m-1") !=
		    hl_dedupe_key(&b, "contact", "m-1"));
	/* The longest sender and id still hash, and never to 0. */
	memset(id, 'x', 64);
	id[64] = '\0';
	assert_true(hl_dedupe_key(&a, "staff:9223372036854775807", id) != 0);
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%d", i);
		assert_true(hl_dedupe_key(&a, "contact", id) != 0);
	}
	hl_dedupe_free(&a);
	hl_dedupe_free(&b);
	hl_dedupe_free(&b); /* twice is harmless */
}

static void test_sets(void **state)
{
	struct hl_dedupe d;
	struct hl_dedupe_conv *c;
	int64_t seqs[4];
	char id[16];

	(void)state;
	assert_int_equal(hl_dedupe_init(&d, 1u << 20), 0);
	assert_null(hl_dedupe_get(&d, 7));
	c = hl_dedupe_start(&d, 7);
	assert_non_null(c);
	assert_ptr_equal(hl_dedupe_get(&d, 7), c);
	assert_int_equal(walk(c, 12345, seqs, 4), 0);
	/* Many ids: the set grows and keeps every one. */
	for (int i = 1; i <= 5000; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		assert_int_equal(hl_dedupe_put(&d, c, hl_dedupe_key(&d,
					       "contact", id), i), 0);
	}
	assert_int_equal(hl_dedupe_count(c), 5000);
	for (int i = 1; i <= 5000; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		assert_int_equal(walk(c, hl_dedupe_key(&d, "contact", id),
				      seqs, 4), 1);
		assert_int_equal(seqs[0], i);
	}
	snprintf(id, sizeof(id), "m%d", 5001);
	assert_int_equal(walk(c, hl_dedupe_key(&d, "contact", id), seqs, 4), 0);
	/* Equal keys (a collision, or a seq taken back and reused): every
	 * candidate is walked; the caller checks each. */
	assert_int_equal(hl_dedupe_put(&d, c, 99, 10), 0);
	assert_int_equal(hl_dedupe_put(&d, c, 99, 20), 0);
	assert_int_equal(walk(c, 99, seqs, 4), 2);
	assert_true((seqs[0] == 10 && seqs[1] == 20) ||
		    (seqs[0] == 20 && seqs[1] == 10));
	/* Another conversation is separate. */
	assert_non_null(hl_dedupe_start(&d, 8));
	assert_int_equal(walk(hl_dedupe_get(&d, 8), 99, seqs, 4), 0);
	assert_int_equal(d.units, 5002 + 2 * HL_DEDUPE_CONV_UNITS);
	/* Forgotten, and started again empty. */
	hl_dedupe_forget(&d, 7);
	assert_null(hl_dedupe_get(&d, 7));
	assert_int_equal(d.units, HL_DEDUPE_CONV_UNITS);
	hl_dedupe_forget(&d, 7); /* not loaded: nothing */
	c = hl_dedupe_start(&d, 8);
	assert_int_equal(hl_dedupe_count(c), 0);
	assert_int_equal(d.nconvs, 1);
	assert_int_equal(d.loads, 3);
	hl_dedupe_free(&d);
}

static void test_eviction(void **state)
{
	struct hl_dedupe d;
	struct hl_dedupe_conv *c;
	int64_t s;

	(void)state;
	/* Room for three conversations of two ids each. */
	assert_int_equal(hl_dedupe_init(&d, 3 * (HL_DEDUPE_CONV_UNITS + 2)),
			 0);
	for (int64_t k = 1; k <= 3; k++) {
		c = hl_dedupe_start(&d, k);
		assert_int_equal(hl_dedupe_put(&d, c, 100 + (uint64_t)k, 1), 0);
		assert_int_equal(hl_dedupe_put(&d, c, 200 + (uint64_t)k, 2), 0);
	}
	assert_int_equal(d.evictions, 0);
	/* Using 1 makes 2 the least recently used: the fourth pushes it
	 * out. */
	assert_non_null(hl_dedupe_get(&d, 1));
	c = hl_dedupe_start(&d, 4);
	assert_int_equal(hl_dedupe_put(&d, c, 104, 1), 0);
	assert_int_equal(hl_dedupe_put(&d, c, 204, 2), 0);
	assert_null(hl_dedupe_get(&d, 2));
	assert_non_null(hl_dedupe_get(&d, 1));
	assert_non_null(hl_dedupe_get(&d, 3));
	assert_non_null(hl_dedupe_get(&d, 4));
	assert_int_equal(d.evictions, 1);
	assert_true(d.units <= d.max_units);
	/* One conversation bigger than the whole budget is kept while in
	 * use; the others go. */
	c = hl_dedupe_start(&d, 5);
	for (int i = 0; i < 100; i++)
		assert_int_equal(hl_dedupe_put(&d, c, 1000 + (uint64_t)i, i),
				 0);
	assert_ptr_equal(hl_dedupe_get(&d, 5), c);
	assert_int_equal(d.nconvs, 1);
	assert_int_equal(hl_dedupe_count(c), 100);
	for (int i = 0; i < 100; i++) {
		size_t pos = 0;

		assert_true(hl_dedupe_next(c, 1000 + (uint64_t)i, &pos, &s));
		assert_int_equal(s, i);
	}
	/* Many conversations: the bucket table grows, lookups hold. */
	hl_dedupe_free(&d);
	assert_int_equal(hl_dedupe_init(&d, 1u << 20), 0);
	for (int64_t k = 1; k <= 3000; k++) {
		c = hl_dedupe_start(&d, k * 7919);
		assert_int_equal(hl_dedupe_put(&d, c, (uint64_t)k, k), 0);
	}
	for (int64_t k = 1; k <= 3000; k++) {
		size_t pos = 0;

		c = hl_dedupe_get(&d, k * 7919);
		assert_non_null(c);
		assert_true(hl_dedupe_next(c, (uint64_t)k, &pos, &s));
		assert_int_equal(s, k);
	}
	assert_null(hl_dedupe_get(&d, 3));
	hl_dedupe_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_sets),
		cmocka_unit_test(test_eviction),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
