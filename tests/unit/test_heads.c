/* test_heads.c: the store writer's ring of recent chain heads: it answers
 * for the last HL_HEADS_RING events of a chain it was given whole, and
 * never when its entry at the conversation's last event is not that
 * event's head (a rolled-back append, another conversation in the slot,
 * a chain it did not see), nor for seqs outside what it holds. A rolled-
 * back append followed by the real one keeps the entries before it.
 * (conversation.c's use of it, through a real store, is tested in
 * test_conversation.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "heads.h"

#define N 100

/* A chain: h[k] = H(h[k - 1] ‖ tag ‖ k); h[0] is unused. */
static void chain(unsigned char h[N + 1][32], int tag)
{
	unsigned char in[32 + 2];

	for (int k = 1; k <= N; k++) {
		if (k == 1)
			memset(in, 0, 32);
		else
			memcpy(in, h[k - 1], 32);
		in[32] = (unsigned char)tag;
		in[33] = (unsigned char)k;
		crypto_generichash(h[k], 32, in, sizeof(in), NULL, 0);
	}
}

/* Two chains that share nothing, made once (group_setup). */
static unsigned char h[N + 1][32], other[N + 1][32];

static int group_setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	chain(h, 1);
	chain(other, 2);
	return 0;
}

static void put(struct hl_heads *hs, int64_t conv, unsigned char c[N + 1][32],
		int from, int to)
{
	for (int k = from; k <= to; k++)
		hl_heads_put(hs, conv, k, k > 1 ? c[k - 1] : NULL, c[k]);
}

static void test_recent_heads(void **state)
{
	static struct hl_heads hs;
	unsigned char out[32];

	(void)state;
	put(&hs, 7, h, 1, 50);
	/* The last HL_HEADS_RING events, checked against the head of 50. */
	for (int k = 50 - HL_HEADS_RING + 1; k <= 50; k++) {
		assert_true(hl_heads_get(&hs, 7, 50, h[50], k, out));
		assert_memory_equal(out, h[k], 32);
	}
	assert_false(hl_heads_get(&hs, 7, 50, h[50], 50 - HL_HEADS_RING, out));
	assert_false(hl_heads_get(&hs, 7, 50, h[50], 51, out));
	assert_false(hl_heads_get(&hs, 7, 50, h[50], 0, out));
	/* The real last event is older (the newest put was taken back): the
	 * ring answers as of it. */
	assert_true(hl_heads_get(&hs, 7, 45, h[45], 40, out));
	assert_memory_equal(out, h[40], 32);
	assert_false(hl_heads_get(&hs, 7, 45, h[45], 46, out));
	/* Not the conversation's head: never. */
	assert_false(hl_heads_get(&hs, 7, 50, h[49], 45, out));
	assert_false(hl_heads_get(&hs, 7, 51, h[50], 45, out));
	assert_false(hl_heads_get(&hs, 8, 50, h[50], 45, out));
	assert_int_equal(hs.hits, HL_HEADS_RING + 1);
	hl_heads_free(&hs);
	assert_false(hl_heads_get(&hs, 7, 50, h[50], 45, out));
	assert_int_equal(hs.hits, 0);
	assert_int_equal(hs.misses, 1);
}

static void test_taken_back(void **state)
{
	static struct hl_heads hs;
	unsigned char out[32];

	(void)state;
	put(&hs, 7, h, 1, 20);
	/* 21 and 22 written, then taken back (a failed batch): */
	hl_heads_put(&hs, 7, 21, h[20], other[21]);
	hl_heads_put(&hs, 7, 22, other[21], other[22]);
	assert_false(hl_heads_get(&hs, 7, 22, h[22], 21, out));
	assert_true(hl_heads_get(&hs, 7, 20, h[20], 18, out));
	assert_memory_equal(out, h[18], 32);
	/* the real 21 follows 20, and replaces what came after it */
	hl_heads_put(&hs, 7, 21, h[20], h[21]);
	assert_true(hl_heads_get(&hs, 7, 21, h[21], 21, out));
	assert_memory_equal(out, h[21], 32);
	assert_true(hl_heads_get(&hs, 7, 21, h[21], 5, out));
	assert_memory_equal(out, h[5], 32);
	assert_false(hl_heads_get(&hs, 7, 22, other[22], 21, out));
	assert_false(hl_heads_get(&hs, 7, 22, h[22], 22, out));
	hl_heads_free(&hs);
}

static void test_starts_again(void **state)
{
	static struct hl_heads hs;
	unsigned char out[32];

	(void)state;
	/* Events it never saw (written without a put, or before a restart):
	 * the ring starts again at the head the next put chained from. */
	put(&hs, 7, h, 1, 10);
	hl_heads_put(&hs, 7, 31, h[30], h[31]);
	assert_true(hl_heads_get(&hs, 7, 31, h[31], 30, out));
	assert_memory_equal(out, h[30], 32);
	assert_false(hl_heads_get(&hs, 7, 31, h[31], 10, out));
	assert_false(hl_heads_get(&hs, 7, 31, h[31], 29, out));
	/* A put whose previous head differs from the ring's entry there (a
	 * chain it was not given whole): the entries before are dropped. */
	hl_heads_put(&hs, 7, 32, other[31], other[32]);
	assert_false(hl_heads_get(&hs, 7, 32, other[32], 30, out));
	assert_true(hl_heads_get(&hs, 7, 32, other[32], 31, out));
	assert_memory_equal(out, other[31], 32);
	/* A conversation whose id came back after it was deleted: a first
	 * event (no previous head) drops everything. */
	hl_heads_put(&hs, 7, 1, NULL, other[1]);
	assert_false(hl_heads_get(&hs, 7, 32, other[32], 31, out));
	assert_true(hl_heads_get(&hs, 7, 1, other[1], 1, out));
	hl_heads_free(&hs);
}

static void test_slots_shared(void **state)
{
	static struct hl_heads hs;
	unsigned char out[32];
	int64_t a = 1, b;
	bool replaced = false;

	(void)state;
	/* More conversations than slots: some share one, and the newer
	 * replaces the older, which then never answers. */
	put(&hs, a, h, 1, 5);
	for (b = 2; b < 4 * HL_HEADS_SLOTS && !replaced; b++) {
		put(&hs, b, other, 1, 5);
		replaced = !hl_heads_get(&hs, a, 5, h[5], 3, out);
	}
	assert_true(replaced);
	b--;
	assert_true(hl_heads_get(&hs, b, 5, other[5], 3, out));
	assert_memory_equal(out, other[3], 32);
	hl_heads_free(&hs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_recent_heads),
		cmocka_unit_test(test_taken_back),
		cmocka_unit_test(test_starts_again),
		cmocka_unit_test(test_slots_shared),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
