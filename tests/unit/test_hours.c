/* test_hours.c: opening hours: parsing (good and bad), open/closed and the
 * next change at many instants, ranges past midnight, exceptions, the week
 * wrapping round, and daylight-saving changes in Europe/London. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "hours.h"

/* Unix ms of a local wall time in the process's zone. */
static int64_t local(int y, int mo, int d, int h, int mi)
{
	struct tm t = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		       .tm_hour = h, .tm_min = mi, .tm_isdst = -1};

	return (int64_t)mktime(&t) * 1000;
}

static struct hl_hours H;

static void parse_ok(const char *weekly, const char *exc)
{
	char err[256] = "";

	if (hl_hours_parse(&H, weekly, exc, err, sizeof(err)) != 0)
		fail_msg("parse failed: %s", err);
}

static void parse_bad(const char *weekly, const char *exc, const char *want)
{
	char err[256] = "";

	if (hl_hours_parse(&H, weekly, exc, err, sizeof(err)) != HL_EINVAL)
		fail_msg("accepted: \"%s\" / \"%s\"", weekly ? weekly : "",
			 exc ? exc : "");
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_parse(void **state)
{
	(void)state;
	parse_ok(NULL, NULL);
	assert_true(H.always);
	parse_ok("", "");
	assert_true(H.always);
	parse_ok("mon-fri 09:00-22:00, sat-sun 12:00-20:00", NULL);
	assert_false(H.always);
	assert_int_equal(H.week[1].n, 1);
	assert_int_equal(H.week[1].r[0].start, 540);
	assert_int_equal(H.week[1].r[0].end, 1320);
	assert_int_equal(H.week[0].r[0].start, 720);
	parse_ok("mon 13:00-17:00 09:00-12:00, daily 20:00-24:00", NULL);
	assert_int_equal(H.week[1].n, 3);
	assert_int_equal(H.week[1].r[0].start, 540); /* sorted */
	assert_int_equal(H.week[3].n, 1);
	parse_ok("fri-mon 18:00-02:00", "2026-12-25 closed, 2026-12-24 09:00-14:00");
	assert_int_equal(H.week[5].r[0].end, 1440 + 120);
	assert_int_equal(H.week[1].n, 1);
	assert_int_equal(H.week[2].n, 0);
	assert_int_equal(H.nexc, 2);
	parse_ok(NULL, "2026-12-25 closed"); /* open except that date */
	assert_false(H.always);
	assert_int_equal(H.week[4].r[0].end, 1440);

	parse_bad("mon", NULL, "expected days then ranges");
	parse_bad("mun 09:00-10:00", NULL, "days are");
	parse_bad("mon 9:00-10:00", NULL, "not a range");
	parse_bad("mon 09:60-10:00", NULL, "not a range");
	parse_bad("mon 24:00-10:00", NULL, "not a range");
	parse_bad("mon 09:00-24:01", NULL, "not a range");
	parse_bad("mon 09:00", NULL, "not a range");
	parse_bad("mon 09:00-10:00,,tue 09:00-10:00", NULL, "empty entry");
	parse_bad("mon 01:00-02:00 03:00-04:00 05:00-06:00 07:00-08:00 "
		  "09:00-10:00 11:00-12:00 13:00-14:00 15:00-16:00 "
		  "17:00-18:00", NULL, "not a range");
	parse_bad(NULL, "2026-02-30 closed", "YYYY-MM-DD");
	parse_bad(NULL, "2026-12-25", "YYYY-MM-DD");
	parse_bad(NULL, "25-12-2026 closed", "YYYY-MM-DD");
	parse_bad(NULL, "2026-12-25 shut", "not a range");
	parse_bad(NULL, "2026-12-25 closed, 2026-12-25 closed", "twice");
}

static void test_timezone_names(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(hl_hours_timezone_ok("UTC", err, sizeof(err)), 0);
	assert_int_equal(hl_hours_timezone_ok("Europe/London", err, sizeof(err)), 0);
	assert_int_equal(hl_hours_timezone_ok("Europe/Nowhere", err, sizeof(err)), HL_EINVAL);
	assert_int_equal(hl_hours_timezone_ok("../etc/passwd", err, sizeof(err)), HL_EINVAL);
	assert_int_equal(hl_hours_timezone_ok("/etc/localtime", err, sizeof(err)), HL_EINVAL);
	assert_int_equal(hl_hours_timezone_ok("Europe/London;x", err, sizeof(err)), HL_EINVAL);
	assert_int_equal(hl_hours_timezone_ok("", err, sizeof(err)), HL_EINVAL);
}

/* Asserts the state at local time and the next change (local). */
static void expect(int y, int mo, int d, int h, int mi, bool open,
		   int64_t change)
{
	int64_t closes = -1, opens = -1;
	bool got = hl_hours_open(&H, local(y, mo, d, h, mi), &closes, &opens);

	if (got != open)
		fail_msg("%04d-%02d-%02d %02d:%02d: open=%d, want %d", y, mo, d,
			 h, mi, got, open);
	if ((open ? closes : opens) != change)
		fail_msg("%04d-%02d-%02d %02d:%02d: next change %lld, want %lld",
			 y, mo, d, h, mi, (long long)(open ? closes : opens),
			 (long long)change);
	assert_int_equal(open ? opens : closes, 0);
}

static void test_weekly(void **state)
{
	(void)state;
	hl_hours_use_timezone("UTC");
	/* 2026-11-23 is a Monday. */
	parse_ok("mon-fri 09:00-22:00, sat-sun 12:00-20:00", NULL);
	expect(2026, 11, 23, 8, 59, false, local(2026, 11, 23, 9, 0));
	expect(2026, 11, 23, 9, 0, true, local(2026, 11, 23, 22, 0));
	expect(2026, 11, 23, 21, 59, true, local(2026, 11, 23, 22, 0));
	expect(2026, 11, 23, 22, 0, false, local(2026, 11, 24, 9, 0));
	expect(2026, 11, 27, 23, 0, false, local(2026, 11, 28, 12, 0)); /* Fri night */
	expect(2026, 11, 29, 19, 0, true, local(2026, 11, 29, 20, 0)); /* Sunday */
	expect(2026, 11, 29, 20, 30, false, local(2026, 11, 30, 9, 0)); /* wraps to Monday */
	/* Past midnight, and touching ranges merge. */
	parse_ok("fri 18:00-02:00, sat 02:00-04:00, mon 22:00-24:00, tue 00:00-01:00", NULL);
	expect(2026, 11, 27, 17, 0, false, local(2026, 11, 27, 18, 0));
	expect(2026, 11, 28, 1, 0, true, local(2026, 11, 28, 4, 0));
	expect(2026, 11, 28, 4, 0, false, local(2026, 11, 30, 22, 0));
	expect(2026, 11, 30, 23, 0, true, local(2026, 12, 1, 1, 0));
	/* Open all the time: no change. */
	parse_ok("daily 00:00-24:00", NULL);
	expect(2026, 11, 23, 3, 0, true, 0);
	parse_ok(NULL, NULL);
	expect(2026, 11, 23, 3, 0, true, 0);
}

static void test_exceptions(void **state)
{
	(void)state;
	hl_hours_use_timezone("UTC");
	parse_ok("daily 09:00-22:00", "2026-12-25 closed, 2026-12-26 closed, "
		 "2026-12-24 09:00-14:00, 2026-12-31 18:00-02:00");
	expect(2026, 12, 24, 13, 0, true, local(2026, 12, 24, 14, 0));
	expect(2026, 12, 24, 15, 0, false, local(2026, 12, 27, 9, 0)); /* over Christmas */
	expect(2026, 12, 31, 17, 0, false, local(2026, 12, 31, 18, 0));
	expect(2026, 12, 31, 23, 0, true, local(2027, 1, 1, 2, 0)); /* New Year's Eve */
	/* Closed for ever after the last exception: opens_at 0. */
	parse_ok(NULL, "2026-12-25 closed");
	expect(2026, 12, 25, 12, 0, false, local(2026, 12, 26, 0, 0));
}

static void test_dst_london(void **state)
{
	(void)state;
	hl_hours_use_timezone("Europe/London");
	parse_ok("daily 09:00-17:00", NULL);
	/* Clocks go forward 2026-03-29 01:00 GMT: 09:00 is 08:00 UTC after. */
	expect(2026, 3, 28, 18, 0, false, local(2026, 3, 29, 9, 0));
	assert_int_equal(local(2026, 3, 29, 9, 0) - local(2026, 3, 28, 9, 0),
			 23LL * 3600 * 1000);
	expect(2026, 3, 29, 9, 0, true, local(2026, 3, 29, 17, 0));
	/* Clocks go back 2026-10-25 02:00 BST. */
	expect(2026, 10, 24, 18, 0, false, local(2026, 10, 25, 9, 0));
	assert_int_equal(local(2026, 10, 25, 9, 0) - local(2026, 10, 24, 9, 0),
			 25LL * 3600 * 1000);
	/* A range through the skipped hour on the spring day still works. */
	parse_ok("sun 00:30-03:00", NULL);
	expect(2026, 3, 29, 0, 45, true, local(2026, 3, 29, 3, 0));
	hl_hours_use_timezone("UTC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_timezone_names),
		cmocka_unit_test(test_weekly),
		cmocka_unit_test(test_exceptions),
		cmocka_unit_test(test_dst_london),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
