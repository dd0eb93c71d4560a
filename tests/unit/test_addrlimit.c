/* test_addrlimit.c: the per-address connection cap: network lists (parse,
 * host bits, errors, IPv4-mapped matching), counting per IPv4 address and
 * per IPv6 /64, uncounted networks, the daily key change (old tags still
 * release, the key is new), and the open-addressing table against a
 * reference model under random acquire/release (backward-shift deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addrlimit.h"
#include "common.h"

#define DAY 86400

/* Fills ss with the address text (IPv4 or IPv6, port 4242). */
static const struct sockaddr *sa(struct sockaddr_storage *ss, const char *text)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(4242);
		assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(4242);
		assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

static void test_nets_parse(void **state)
{
	struct hl_nets n;
	char why[128];
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(hl_nets_parse("127.0.0.0/8, ::1 10.1.2.3/16,fd00::/8",
				       &n, why, sizeof(why)), 0);
	assert_int_equal(n.count, 4);
	assert_int_equal(n.net[0].family, AF_INET);
	assert_int_equal(n.net[0].prefix, 8);
	assert_int_equal(n.net[1].family, AF_INET6);
	assert_int_equal(n.net[1].prefix, 128);
	/* Host bits are cleared: 10.1.2.3/16 is 10.1.0.0/16. */
	assert_int_equal(n.net[2].addr[2], 0);
	assert_int_equal(n.net[2].addr[3], 0);
	assert_true(hl_nets_contain(&n, sa(&ss, "127.9.9.9")));
	assert_true(hl_nets_contain(&n, sa(&ss, "10.1.200.7")));
	assert_false(hl_nets_contain(&n, sa(&ss, "10.2.0.1")));
	assert_true(hl_nets_contain(&n, sa(&ss, "::1")));
	assert_false(hl_nets_contain(&n, sa(&ss, "::2")));
	assert_true(hl_nets_contain(&n, sa(&ss, "fd12:3456::1")));
	assert_false(hl_nets_contain(&n, sa(&ss, "2001:db8::1")));
	/* An IPv4-mapped IPv6 peer matches IPv4 networks. */
	assert_true(hl_nets_contain(&n, sa(&ss, "::ffff:127.0.0.1")));
	assert_false(hl_nets_contain(&n, sa(&ss, "::ffff:192.0.2.1")));

	assert_int_equal(hl_nets_parse(" none", &n, why, sizeof(why)), 0);
	assert_int_equal(n.count, 0);
	assert_false(hl_nets_contain(&n, sa(&ss, "127.0.0.1")));

	/* /0 matches its whole family and nothing else. */
	assert_int_equal(hl_nets_parse("0.0.0.0/0", &n, why, sizeof(why)), 0);
	assert_true(hl_nets_contain(&n, sa(&ss, "203.0.113.9")));
	assert_false(hl_nets_contain(&n, sa(&ss, "2001:db8::1")));
	/* A prefix that is not a multiple of 8. */
	assert_int_equal(hl_nets_parse("192.0.2.128/25", &n, why, sizeof(why)), 0);
	assert_true(hl_nets_contain(&n, sa(&ss, "192.0.2.200")));
	assert_false(hl_nets_contain(&n, sa(&ss, "192.0.2.127")));
}

static void test_nets_parse_errors(void **state)
{
	static const char *bad[] = {
		"", " , ", "localhost", "127.0.0.1/33", "::1/129", "10.0.0.0/",
		"10.0.0.0/-1", "10.0.0.0/8x", "1.2.3.4.5", "/8",
		"1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 "
		"9.9.9.9 10.1.1.1 11.1.1.1 12.1.1.1 13.1.1.1 14.1.1.1 15.1.1.1 "
		"16.1.1.1 17.1.1.1",
	};
	struct hl_nets n = {.count = 7};
	char why[128];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(hl_nets_parse(bad[i], &n, why, sizeof(why)), -1);
		assert_true(strncmp(why, "expected", 8) == 0);
		assert_int_equal(n.count, 7); /* untouched on error */
	}
}

static void test_cap_per_ipv4_address(void **state)
{
	struct hl_addrlimit a;
	struct hl_nets loop;
	struct sockaddr_storage ss;
	uint64_t tags[3];

	(void)state;
	assert_int_equal(hl_nets_parse("127.0.0.0/8", &loop, NULL, 0), 0);
	assert_int_equal(hl_addrlimit_init(&a, 3, 100, &loop), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.7"), 1000));
		tags[i] = hl_addrlimit_acquire(&a, sa(&ss, "192.0.2.7"), 1000);
		assert_true(tags[i] != 0);
	}
	assert_int_equal(tags[0], tags[1]);
	assert_false(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.7"), 1000));
	/* The same address mapped into IPv6 is the same address. */
	assert_false(hl_addrlimit_allows(&a, sa(&ss, "::ffff:192.0.2.7"), 1000));
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.8"), 1000));
	/* Uncounted: always allowed, never counted. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(hl_addrlimit_acquire(&a, sa(&ss, "127.0.0.1"),
						      1000), 0);
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "127.0.0.1"), 1000));
	hl_addrlimit_release(&a, tags[2]);
	assert_int_equal(hl_addrlimit_count(&a, sa(&ss, "192.0.2.7"), 1000), 2);
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.7"), 1000));
	hl_addrlimit_release(&a, tags[1]);
	hl_addrlimit_release(&a, tags[0]);
	assert_int_equal(a.used, 0);
	/* A stray release of a freed tag, or of 0, changes nothing. */
	hl_addrlimit_release(&a, tags[0]);
	hl_addrlimit_release(&a, 0);
	assert_int_equal(a.used, 0);
	hl_addrlimit_free(&a);
}

static void test_cap_per_ipv6_64(void **state)
{
	struct hl_addrlimit a;
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(hl_addrlimit_init(&a, 2, 100, NULL), 0);
	hl_addrlimit_acquire(&a, sa(&ss, "2001:db8:0:7::1"), 5);
	hl_addrlimit_acquire(&a, sa(&ss, "2001:db8:0:7:ffff::2"), 5);
	/* Any address in the same /64 is the same address. */
	assert_false(hl_addrlimit_allows(&a, sa(&ss, "2001:db8:0:7::99"), 5));
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "2001:db8:0:8::1"), 5));
	assert_int_equal(hl_addrlimit_count(&a, sa(&ss, "2001:db8:0:7::3"), 5), 2);
	/* IPv6 and IPv4 never share a count, whatever their bytes. */
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "32.1.13.184"), 5));
	hl_addrlimit_free(&a);
}

static void test_no_cap(void **state)
{
	struct hl_addrlimit a;
	struct sockaddr_storage ss;

	(void)state;
	assert_int_equal(hl_addrlimit_init(&a, 0, 100, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		assert_true(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.1"), 1));
		assert_int_equal(hl_addrlimit_acquire(&a, sa(&ss, "192.0.2.1"), 1), 0);
	}
	hl_addrlimit_free(&a);
}

/* The failure budget: 4 in a burst over 60 s (one back every 15 s), per
 * address, uncounted addresses never barred, a cap of 0 leaves it on. */
static void test_failure_budget(void **state)
{
	struct hl_addrlimit a;
	struct hl_nets loop;
	struct sockaddr_storage ss;
	uint64_t t, u, l;
	int64_t now = 1000 * (int64_t)DAY * 1000 + 5000; /* ms */

	(void)state;
	assert_int_equal(hl_nets_parse("127.0.0.0/8", &loop, NULL, 0), 0);
	assert_int_equal(hl_addrlimit_init(&a, 0, 100, &loop), 0);
	assert_int_equal(hl_addrlimit_set_failures(&a, 4, 60, 100), 0);
	t = hl_addrlimit_acquire(&a, sa(&ss, "192.0.2.7"), now / 1000);
	u = hl_addrlimit_acquire(&a, sa(&ss, "192.0.2.8"), now / 1000);
	l = hl_addrlimit_acquire(&a, sa(&ss, "127.0.0.1"), now / 1000);
	assert_true(t != 0 && u != 0 && t != u);
	assert_int_equal(l, 0);
	/* The cap is off: acquire counted nothing, allows always. */
	assert_int_equal(hl_addrlimit_count(&a, sa(&ss, "192.0.2.7"), now / 1000), 0);
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "192.0.2.7"), now / 1000));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 0);
		assert_true(hl_addrlimit_failed(&a, t, now));
	}
	/* Spent: one more is 15 s away; the neighbour and loopback are not
	 * affected. */
	assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 15000);
	assert_int_equal(hl_addrlimit_barred_ms(&a, t, now + 14999), 1);
	assert_int_equal(hl_addrlimit_barred_ms(&a, u, now), 0);
	for (int i = 0; i < 100; i++)
		assert_true(hl_addrlimit_failed(&a, l, now));
	assert_int_equal(hl_addrlimit_barred_ms(&a, l, now), 0);
	/* 15 s later exactly one more try. */
	now += 15000;
	assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 0);
	assert_true(hl_addrlimit_failed(&a, t, now));
	assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 15000);
	/* After a whole quiet window the full burst is back. */
	now += 60000;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 0);
		assert_true(hl_addrlimit_failed(&a, t, now));
	}
	assert_true(hl_addrlimit_barred_ms(&a, t, now) > 0);
	/* A new UTC day: a new key, and yesterday's budget is forgotten. */
	now = (now / (DAY * 1000) + 1) * DAY * 1000;
	t = hl_addrlimit_acquire(&a, sa(&ss, "192.0.2.7"), now / 1000);
	assert_int_equal(hl_addrlimit_barred_ms(&a, t, now), 0);
	hl_addrlimit_free(&a);
}

/* A table full of live entries refuses to track more (counted), and a
 * sweep makes room once entries have refilled. */
static void test_failure_table_full(void **state)
{
	struct hl_addrlimit a;
	struct sockaddr_storage ss;
	char ip[32];
	int64_t now = 777 * (int64_t)DAY * 1000;
	uint32_t tracked = 0;

	(void)state;
	assert_int_equal(hl_addrlimit_init(&a, 0, 1, NULL), 0);
	assert_int_equal(hl_addrlimit_set_failures(&a, 2, 10, 1), 0);
	assert_int_equal(a.fail_mask + 1, 1024);
	for (int i = 0; i < 2000; i++) {
		uint64_t tag;

		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 250, i % 250);
		tag = hl_addrlimit_acquire(&a, sa(&ss, ip), now / 1000);
		if (hl_addrlimit_failed(&a, tag, now))
			tracked++;
	}
	assert_int_equal(tracked, 512);
	assert_int_equal(a.fail_untracked, 2000 - 512);
	/* 5 s on (one failure refills in 5 s), every entry is whole again:
	 * the next new address is tracked after a sweep. */
	now += 5000;
	assert_true(hl_addrlimit_failed(&a, hl_addrlimit_acquire(&a,
		    sa(&ss, "192.0.2.99"), now / 1000), now));
	assert_int_equal(a.fail_used, 1);
	hl_addrlimit_free(&a);
}

static void test_daily_key(void **state)
{
	struct hl_addrlimit a;
	struct sockaddr_storage ss;
	unsigned char key0[16];
	uint64_t old[2], fresh;
	int64_t t0 = 20000 * (int64_t)DAY + DAY - 1; /* 23:59:59 UTC */

	(void)state;
	assert_int_equal(hl_addrlimit_init(&a, 2, 100, NULL), 0);
	old[0] = hl_addrlimit_acquire(&a, sa(&ss, "198.51.100.4"), t0);
	old[1] = hl_addrlimit_acquire(&a, sa(&ss, "198.51.100.4"), t0);
	memcpy(key0, a.key, sizeof(key0));
	assert_false(hl_addrlimit_allows(&a, sa(&ss, "198.51.100.4"), t0));
	/* One second later it is a new UTC day: a new key, a new tag. */
	assert_true(hl_addrlimit_allows(&a, sa(&ss, "198.51.100.4"), t0 + 1));
	assert_memory_not_equal(a.key, key0, sizeof(key0));
	fresh = hl_addrlimit_acquire(&a, sa(&ss, "198.51.100.4"), t0 + 1);
	assert_true(fresh != 0 && fresh != old[0]);
	/* Yesterday's connections still release under the tags they hold. */
	hl_addrlimit_release(&a, old[0]);
	hl_addrlimit_release(&a, old[1]);
	hl_addrlimit_release(&a, fresh);
	assert_int_equal(a.used, 0);
	/* The same day keeps the same key. */
	memcpy(key0, a.key, sizeof(key0));
	hl_addrlimit_allows(&a, sa(&ss, "198.51.100.4"), t0 + DAY);
	assert_memory_equal(a.key, key0, sizeof(key0));
	hl_addrlimit_free(&a);
}

/* Random acquires and releases over more addresses than a small table's
 * home slots, checked against plain counters after every step. */
static void test_table_model(void **state)
{
	enum { N = 40, STEPS = 200000 };
	struct hl_addrlimit a;
	struct sockaddr_storage ss[N];
	uint32_t want[N] = {0};
	uint64_t tag[N] = {0};
	unsigned seed = 12345;

	(void)state;
	/* 16 connections at most → 64 slots: 40 addresses collide often. */
	assert_int_equal(hl_addrlimit_init(&a, 1000000, 16, NULL), 0);
	assert_int_equal(a.mask, 63);
	for (int i = 0; i < N; i++) {
		char text[32];

		snprintf(text, sizeof(text), "203.0.113.%d", i + 1);
		sa(&ss[i], text);
	}
	for (int step = 0; step < STEPS; step++) {
		int i = (int)((seed = seed * 1103515245u + 12345u) >> 16) % N;
		int up = (seed >> 8) & 1;

		if (up || want[i] == 0) {
			uint64_t t = hl_addrlimit_acquire(
				&a, (const struct sockaddr *)&ss[i], 7);

			if (want[i] == 0 && a.used > a.mask)
				fail();
			if (t == 0) { /* table full: every slot but one in use */
				assert_int_equal(want[i], 0);
				continue;
			}
			tag[i] = t;
			want[i]++;
		} else {
			hl_addrlimit_release(&a, tag[i]);
			want[i]--;
		}
		if (step % 97 == 0)
			for (int k = 0; k < N; k++)
				assert_int_equal(hl_addrlimit_count(
					&a, (const struct sockaddr *)&ss[k], 7),
					want[k]);
	}
	for (int k = 0; k < N; k++)
		while (want[k]--)
			hl_addrlimit_release(&a, tag[k]);
	assert_int_equal(a.used, 0);
	for (uint32_t s = 0; s <= a.mask; s++)
		assert_true(a.tags[s] == 0 && a.counts[s] == 0);
	hl_addrlimit_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nets_parse),
		cmocka_unit_test(test_nets_parse_errors),
		cmocka_unit_test(test_cap_per_ipv4_address),
		cmocka_unit_test(test_cap_per_ipv6_64),
		cmocka_unit_test(test_no_cap),
		cmocka_unit_test(test_daily_key),
		cmocka_unit_test(test_failure_budget),
		cmocka_unit_test(test_failure_table_full),
		cmocka_unit_test(test_table_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
