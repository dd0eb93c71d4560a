/* test_keepalive.c: the keep-alive wheel: a silent connection is pinged
 * when ping_ms have passed and hung up when hangup_ms have, not a second
 * earlier and at most one later; any frame heard puts that off; an answer
 * to a ping cancels the hang-up; removal stops everything; a stalled loop
 * catches up without hanging up a ping it has only just sent; a callback
 * may remove other links of the slot being handled; and 0 turns it off.
 * (The daemon's use of it, over real sockets, is tested in
 * tests/integration/keepalive.test.mjs.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "keepalive.h"

#define N 1000

struct conn {
	struct hl_ka_link ka; /* first: a link is its conn */
	int pings, hangups;
	uint64_t last_ping_ms, hangup_ms;
	struct conn *victim; /* removed by its hang-up callback, if set */
};

static uint64_t now; /* the fake clock the callbacks record */

static void on_ping(struct hl_keepalive *k, struct hl_ka_link *l)
{
	struct conn *c = (struct conn *)l;

	(void)k;
	c->pings++;
	c->last_ping_ms = now;
}

static void on_hangup(struct hl_keepalive *k, struct hl_ka_link *l)
{
	struct conn *c = (struct conn *)l;

	c->hangups++;
	c->hangup_ms = now;
	assert_null(l->pprev); /* already out */
	hl_keepalive_remove(k, l); /* harmless */
	if (c->victim)
		hl_keepalive_remove(k, &c->victim->ka);
}

/* Advances the clock to `to` in steps of step ms. */
static void run_to(struct hl_keepalive *k, uint64_t to, uint64_t step)
{
	while (now < to) {
		now = now + step > to ? to : now + step;
		hl_keepalive_advance(k, now);
	}
}

static void test_init(void **state)
{
	struct hl_keepalive k;

	(void)state;
	assert_int_equal(hl_keepalive_init(&k, 30000, 30000, 0, on_ping,
					   on_hangup, NULL), HL_EINVAL);
	assert_int_equal(hl_keepalive_init(&k, 30000, 70500, 0, on_ping,
					   on_hangup, NULL), HL_EINVAL);
	assert_int_equal(hl_keepalive_init(&k, 1500, 70000, 0, on_ping,
					   on_hangup, NULL), HL_EINVAL);
	assert_int_equal(hl_keepalive_init(&k, 30000, 70000, 0, NULL,
					   on_hangup, NULL), HL_EINVAL);
	assert_int_equal(hl_keepalive_init(&k, 30000, 70000, 0, on_ping,
					   on_hangup, NULL), HL_OK);
	hl_keepalive_free(&k);
}

static void test_off(void **state)
{
	struct hl_keepalive k;
	struct conn c = {0};

	(void)state;
	now = 5000;
	assert_int_equal(hl_keepalive_init(&k, 0, 0, now, NULL, NULL, NULL),
			 HL_OK);
	hl_keepalive_add(&k, &c.ka, now);
	run_to(&k, 1000000, 1000);
	hl_keepalive_seen(&k, &c.ka, now);
	hl_keepalive_remove(&k, &c.ka);
	assert_int_equal(c.pings, 0);
	assert_int_equal(c.hangups, 0);
	assert_int_equal(k.count, 0);
	hl_keepalive_free(&k);
}

/* Silent: pinged at 30 s, hung up at 70 s, each within a second after. */
static void test_silent(void **state)
{
	struct hl_keepalive k;
	struct conn c = {0};

	(void)state;
	now = 1234567;
	assert_int_equal(hl_keepalive_init(&k, 30000, 70000, now, on_ping,
					   on_hangup, NULL), HL_OK);
	hl_keepalive_add(&k, &c.ka, now);
	assert_int_equal(k.count, 1);
	run_to(&k, 1234567 + 29999, 100);
	assert_int_equal(c.pings, 0);
	run_to(&k, 1234567 + 31000, 100);
	assert_int_equal(c.pings, 1);
	assert_true(c.last_ping_ms >= 1234567 + 30000);
	assert_true(c.last_ping_ms <= 1234567 + 31000);
	run_to(&k, 1234567 + 69999, 100);
	assert_int_equal(c.hangups, 0);
	run_to(&k, 1234567 + 71000, 100);
	assert_int_equal(c.hangups, 1);
	assert_int_equal(c.pings, 1);
	assert_true(c.hangup_ms >= 1234567 + 70000);
	assert_int_equal(k.count, 0);
	run_to(&k, 1234567 + 500000, 1000);
	assert_int_equal(c.pings, 1);
	assert_int_equal(c.hangups, 1);
	hl_keepalive_free(&k);
}

/* Frames heard put the ping off; an answer to a ping cancels the
 * hang-up and the next ping comes ping_ms after the answer. */
static void test_heard(void **state)
{
	struct hl_keepalive k;
	struct conn c = {0};

	(void)state;
	now = 0;
	assert_int_equal(hl_keepalive_init(&k, 30000, 70000, now, on_ping,
					   on_hangup, NULL), HL_OK);
	hl_keepalive_add(&k, &c.ka, now);
	run_to(&k, 20000, 250);
	hl_keepalive_seen(&k, &c.ka, now); /* a message at 20 s */
	run_to(&k, 49999, 250);
	assert_int_equal(c.pings, 0);
	run_to(&k, 51000, 250);
	assert_int_equal(c.pings, 1);
	assert_true(c.last_ping_ms >= 50000 && c.last_ping_ms <= 51000);
	run_to(&k, 60000, 250);
	hl_keepalive_seen(&k, &c.ka, now); /* the pong, at 60 s */
	assert_false(c.ka.pinged);
	run_to(&k, 89999, 250);
	assert_int_equal(c.pings, 1);
	run_to(&k, 91000, 250);
	assert_int_equal(c.pings, 2);
	run_to(&k, 200000, 250); /* silent from then on */
	assert_int_equal(c.hangups, 1);
	assert_true(c.hangup_ms >= 60000 + 70000 &&
		    c.hangup_ms <= 60000 + 71000);
	hl_keepalive_free(&k);
}

/* Many connections opened over time, some answering every ping, some
 * silent, some removed: each gets exactly what its own times say. */
static void test_many(void **state)
{
	struct hl_keepalive k;
	struct conn *c = calloc(N, sizeof(*c));
	uint64_t opened[N];
	size_t next = 0;

	(void)state;
	assert_non_null(c);
	now = 7;
	assert_int_equal(hl_keepalive_init(&k, 5000, 12000, now, on_ping,
					   on_hangup, NULL), HL_OK);
	while (now < 200000) {
		now += 37;
		if (next < N && now % 3 == 0) {
			opened[next] = now;
			hl_keepalive_add(&k, &c[next].ka, now);
			next++;
		}
		for (size_t i = 0; i < next; i++) {
			/* Even ones answer a ping 2 s after it. */
			if (i % 2 == 0 && c[i].ka.pinged &&
			    now >= c[i].last_ping_ms + 2000)
				hl_keepalive_seen(&k, &c[i].ka, now);
		}
		/* Every tenth is closed 3 s after it opened. */
		for (size_t i = 1; i < next; i += 10)
			if (now >= opened[i] + 3000)
				hl_keepalive_remove(&k, &c[i].ka);
		hl_keepalive_advance(&k, now);
	}
	assert_int_equal(next, N);
	for (size_t i = 0; i < N; i++) {
		if (i % 2 == 0) {
			assert_int_equal(c[i].hangups, 0);
			assert_true(c[i].pings >= 2);
		} else if (i % 10 == 1) {
			assert_int_equal(c[i].pings, 0);
			assert_int_equal(c[i].hangups, 0);
		} else {
			/* Within a second, and one 37 ms step of the clock. */
			assert_int_equal(c[i].pings, 1);
			assert_int_equal(c[i].hangups, 1);
			assert_true(c[i].last_ping_ms >= opened[i] + 5000);
			assert_true(c[i].last_ping_ms < opened[i] + 6000 + 37);
			assert_true(c[i].hangup_ms >= opened[i] + 12000);
			assert_true(c[i].hangup_ms < opened[i] + 13000 + 37);
		}
	}
	/* Left in: the even ones. */
	assert_int_equal(k.count, N / 2);
	hl_keepalive_free(&k);
	free(c);
}

/* A loop stalled for 10 minutes: each link is pinged once, and hung up
 * only after the ping has had hangup_ms - ping_ms (less at most a second)
 * to be answered. */
static void test_stall(void **state)
{
	struct hl_keepalive k;
	struct conn c[3];

	(void)state;
	memset(c, 0, sizeof(c));
	now = 1000;
	assert_int_equal(hl_keepalive_init(&k, 30000, 70000, now, on_ping,
					   on_hangup, NULL), HL_OK);
	for (int i = 0; i < 3; i++)
		hl_keepalive_add(&k, &c[i].ka, now + 1000 * (uint64_t)i);
	now += 600000;
	hl_keepalive_advance(&k, now);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].pings, 1);
		assert_int_equal(c[i].hangups, 0);
	}
	run_to(&k, now + 10000, 1000);
	hl_keepalive_seen(&k, &c[0].ka, now);
	run_to(&k, now + 28000, 1000); /* 38 s after the pings */
	assert_int_equal(c[1].hangups, 0);
	run_to(&k, now + 3000, 1000);
	assert_int_equal(c[0].hangups, 0);
	assert_int_equal(c[1].hangups, 1);
	assert_int_equal(c[2].hangups, 1);
	hl_keepalive_free(&k);
}

/* Hang-ups of one second's slot that remove other links of it. */
static void test_remove_in_callback(void **state)
{
	struct hl_keepalive k;
	struct conn c[6];

	(void)state;
	memset(c, 0, sizeof(c));
	now = 0;
	assert_int_equal(hl_keepalive_init(&k, 1000, 2000, now, on_ping,
					   on_hangup, NULL), HL_OK);
	for (int i = 0; i < 6; i++)
		hl_keepalive_add(&k, &c[i].ka, now);
	/* In pairs, each one's hang-up removes the other: whichever of a
	 * pair comes first, the other is never hung up. */
	for (int i = 0; i < 3; i++) {
		c[i].victim = &c[5 - i];
		c[5 - i].victim = &c[i];
	}
	run_to(&k, 10000, 100);
	for (int i = 0; i < 6; i++)
		assert_int_equal(c[i].pings, 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(c[i].hangups + c[5 - i].hangups, 1);
	assert_int_equal(k.count, 0);
	hl_keepalive_free(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_silent),
		cmocka_unit_test(test_heard),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_remove_in_callback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
