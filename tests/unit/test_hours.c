/* test_hours.c: opening hours: parsing (good and bad), open/closed and the
 * next change at many instants, ranges past midnight, merging, exceptions,
 * the week wrapping round, daylight-saving changes in Europe/London, and
 * the zone reader itself (TZif files and POSIX TZ rules) checked against
 * glibc's localtime_r over two centuries for a set of awkward zones. */
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

/* Unix ms of a UT date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm t = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
		       .tm_hour = h, .tm_min = mi};

	return (int64_t)timegm(&t) * 1000;
}

static struct hl_hours H;

static void parse_ok(const char *weekly, const char *exc)
{
	char err[256] = "";

	if (hl_hours_parse(&H, weekly, exc, err, sizeof(err)) != 0)
		fail_msg("parse failed: %s", err);
}

static void zone(const char *name)
{
	char err[256] = "";

	if (hl_hours_set_timezone(&H, name, err, sizeof(err)) != 0)
		fail_msg("zone %s: %s", name, err);
	assert_string_equal(H.timezone, name);
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
	assert_string_equal(H.timezone, "UTC");
	parse_ok("", "");
	assert_true(H.always);
	parse_ok("mon-fri 09:00-22:00, sat-sun 12:00-20:00", NULL);
	assert_false(H.always);
	assert_int_equal(H.week[1].n, 1);
	assert_int_equal(H.week[1].r[0].start, 540);
	assert_int_equal(H.week[1].r[0].end, 1320);
	assert_int_equal(H.week[0].r[0].start, 720);
	assert_int_equal(H.week[6].r[0].end, 1200);
	/* Several ranges, repeated days, sorted by start; case does not matter. */
	parse_ok("mon 13:00-17:00 09:00-12:00, Daily 20:00-24:00, MON 07:00-08:00",
		 NULL);
	assert_int_equal(H.week[1].n, 4);
	assert_int_equal(H.week[1].r[0].start, 420);
	assert_int_equal(H.week[1].r[1].start, 540);
	assert_int_equal(H.week[1].r[3].end, 1440);
	assert_int_equal(H.week[3].n, 1);
	/* A wrapping day range, ranges past midnight, exceptions sorted. */
	parse_ok("fri-mon 18:00-02:00 \t, wed 00:00-00:00",
		 "2026-12-25 closed, 2026-12-24 09:00-14:00,2026-01-01 CLOSED");
	assert_int_equal(H.week[5].r[0].end, 1440 + 120);
	assert_int_equal(H.week[1].n, 1);
	assert_int_equal(H.week[2].n, 0);
	assert_int_equal(H.week[3].r[0].end, 1440); /* equal ends: 24 hours */
	assert_int_equal(H.nexc, 3);
	assert_int_equal(H.exc[0].date, 20260101);
	assert_int_equal(H.exc[1].date, 20261224);
	assert_int_equal(H.exc[1].day.n, 1);
	assert_int_equal(H.exc[2].day.n, 0);
	parse_ok(NULL, "2026-12-25 closed"); /* open except that date */
	assert_false(H.always);
	assert_int_equal(H.week[4].r[0].end, 1440);
	parse_ok("mon 01:00-02:00 03:00-04:00 05:00-06:00 07:00-08:00 "
		 "09:00-10:00 11:00-12:00 13:00-14:00 15:00-16:00", NULL);
	assert_int_equal(H.week[1].n, 8);
	parse_ok(NULL, "2028-02-29 closed"); /* a leap day */

	parse_bad("mon", NULL, "expected days then ranges");
	parse_bad("mun 09:00-10:00", NULL, "\"mun\" is not a day");
	parse_bad("mon-fry 09:00-10:00", NULL, "\"mon-fry\" is not a day");
	parse_bad("mon- 09:00-10:00", NULL, "is not a day");
	parse_bad("monday 09:00-10:00", NULL, "is not a day");
	parse_bad("mon 9:00-10:00", NULL, "\"9:00-10:00\" is not a range");
	parse_bad("mon 9-5", NULL, "\"9-5\" is not a range");
	parse_bad("mon 09:60-10:00", NULL, "not a range");
	parse_bad("mon 24:00-10:00", NULL, "not a range");
	parse_bad("mon 09:00-24:01", NULL, "not a range");
	parse_bad("mon 09:00-25:00", NULL, "not a range");
	parse_bad("mon 09:00", NULL, "\"09:00\" is not a range");
	parse_bad("mon 09:00-10:00-11:00", NULL, "not a range");
	parse_bad("mon 09.00-10.00", NULL, "not a range");
	parse_bad("mon 09:00 - 10:00", NULL, "\"09:00\" is not a range");
	parse_bad("mon 09:00-10:00,,tue 09:00-10:00", NULL, "empty entry");
	parse_bad("mon 09:00-10:00,", NULL, "empty entry");
	parse_bad(" ", NULL, "empty entry");
	parse_bad("mon 09:00-10:00; tue 09:00-10:00", NULL, "not a range");
	parse_bad("mon 01:00-02:00 03:00-04:00 05:00-06:00 07:00-08:00 "
		  "09:00-10:00 11:00-12:00 13:00-14:00 15:00-16:00 "
		  "17:00-18:00", NULL, "\"17:00-18:00\" is one range too many");
	parse_bad("mon 01:00-02:00 03:00-04:00 05:00-06:00 07:00-08:00 "
		  "09:00-10:00, daily 11:00-12:00 13:00-14:00 15:00-16:00 "
		  "17:00-18:00", NULL, "more than 8 ranges on mon");
	parse_bad(NULL, "2026-02-30 closed", "\"2026-02-30\" is not a date");
	parse_bad(NULL, "2027-02-29 closed", "is not a date");
	parse_bad(NULL, "2026-13-01 closed", "is not a date");
	parse_bad(NULL, "2026-00-10 closed", "is not a date");
	parse_bad(NULL, "1999-12-31 closed", "is not a date");
	parse_bad(NULL, "2026-1-011 closed", "is not a date");
	parse_bad(NULL, "2026-+1-01 closed", "is not a date");
	parse_bad(NULL, "2026/12/25 closed", "is not a date");
	parse_bad(NULL, "25-12-2026 closed", "is not a date");
	parse_bad(NULL, "2026-12-25closed", "is not a date");
	parse_bad(NULL, "2026-12-25", "YYYY-MM-DD then");
	parse_bad(NULL, "2026-12-25 shut", "\"shut\" is not a range");
	parse_bad(NULL, "2026-12-25 closed 09:00-10:00", "\"closed\" is not a range");
	parse_bad(NULL, "2026-12-25 closed, 2026-12-25 09:00-10:00",
		  "2026-12-25 is given twice");
	parse_bad(NULL, "mon 09:00-10:00", "is not a date");
	parse_bad("mon 09:00-10:00", "2026-12-25 closed,", "empty entry");
}

static void test_parse_limits(void **state)
{
	char text[8192], err[256];
	size_t n = 0;

	(void)state;
	/* HL_HOURS_EXCEPTIONS dates fit; one more is refused. */
	for (int i = 0; i <= HL_HOURS_EXCEPTIONS; i++) {
		n += (size_t)snprintf(text + n, sizeof(text) - n, "%s%d-%02d-%02d closed",
				      i ? "," : "", 2030 + i / 300, 1 + i % 300 / 28,
				      1 + i % 28);
		if (i == HL_HOURS_EXCEPTIONS - 1) {
			parse_ok(NULL, text);
			assert_int_equal(H.nexc, HL_HOURS_EXCEPTIONS);
		}
	}
	assert_int_equal(hl_hours_parse(&H, NULL, text, err, sizeof(err)),
			 HL_EINVAL);
	assert_non_null(strstr(err, "at most"));
	/* Too long a text. */
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	assert_int_equal(hl_hours_parse(&H, text, NULL, err, sizeof(err)),
			 HL_EINVAL);
	assert_non_null(strstr(err, "hours.weekly is too long"));
}

static void test_timezone_names(void **state)
{
	static const char *const good[] = {
		"UTC", "Europe/London", "America/Argentina/Buenos_Aires",
		"Etc/GMT+5", "Etc/GMT-14", "EST5EDT", "Asia/Kolkata",
	};
	static const char *const bad[] = {
		"Europe/Nowhere", "../etc/passwd", "Europe/../Europe/London",
		"/etc/localtime", "/usr/share/zoneinfo/UTC", "localtime",
		"posixrules", "posix/Europe/London", "right/Europe/London",
		"Europe//London", "Europe/London/", "Europe/London;x",
		"Europe/London ", "Europe", "", "zone.tab", "Europe/london",
		"Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (hl_hours_timezone_ok(good[i], err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i], err);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (hl_hours_timezone_ok(bad[i], err, sizeof(err)) != HL_EINVAL)
			fail_msg("accepted %s", bad[i]);
		assert_true(err[0] != '\0');
	}
	/* A failed load leaves the schedule's zone alone. */
	parse_ok(NULL, NULL);
	zone("Europe/London");
	assert_int_equal(hl_hours_set_timezone(&H, "Mars/Olympus", err,
					       sizeof(err)), HL_EINVAL);
	assert_string_equal(H.timezone, "Europe/London");
	assert_non_null(strstr(err, "Mars/Olympus"));
	assert_int_equal(hl_hours_zone_offset(&H.zone, utc(2026, 7, 1, 0, 0) / 1000),
			 3600);
}

/* ---- the zone reader against glibc ---------------------------------------- */

static int32_t libc_offset(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	assert_non_null(localtime_r(&tt, &tm));
	return (int32_t)tm.tm_gmtoff;
}

/* Every 7h13m of [from, to) and a second either side of every transition
 * in the table: our offset equals glibc's for the TZ already set, and
 * hl_hours_zone_utc inverts it (the earlier instant where the wall time
 * repeats). */
static void compare(const struct hl_hours_zone *z, const char *what,
		    int64_t from, int64_t to)
{
	int64_t t = from;
	int k = 0;

	for (;;) {
		int32_t ours, theirs;
		int64_t wall, back;

		if (k < z->ntrans * 3) {
			t = z->trans[k / 3] + k % 3 - 1;
			k++;
		} else if ((t = (k == z->ntrans * 3 ? from : t + 25980)) >= to) {
			break;
		} else {
			k = z->ntrans * 3 + 1;
		}
		ours = hl_hours_zone_offset(z, t);
		theirs = libc_offset(t);
		if (ours != theirs)
			fail_msg("%s at %lld: offset %d, glibc %d", what,
				 (long long)t, ours, theirs);
		wall = t + ours;
		back = hl_hours_zone_utc(z, wall);
		if (back > t || back + hl_hours_zone_offset(z, back) != wall)
			fail_msg("%s: wall %lld of %lld maps back to %lld", what,
				 (long long)wall, (long long)t, (long long)back);
	}
}

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static void test_zone_files(void **state)
{
	static const char *const zones[] = {
		"Europe/London", "America/New_York", "Australia/Sydney",
		"Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu",
		"Pacific/Chatham", "Pacific/Apia", "America/Sao_Paulo",
		"America/Nuuk", "Africa/Casablanca", "Asia/Gaza",
		"Antarctica/Troll", "America/Santiago", "Europe/Dublin",
		"Etc/GMT+5", "UTC", "Asia/Tehran", "Pacific/Kiritimati",
	};
	struct hl_hours_zone *z = malloc(sizeof(*z));
	char err[256], tz[80];

	(void)state;
	assert_non_null(z);
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		parse_ok(NULL, NULL);
		zone(zones[i]);
		*z = H.zone;
		snprintf(tz, sizeof(tz), ":%s", zones[i]);
		set_tz(tz);
		/* 1900 to 2200: the table, then the footer's rule. */
		compare(z, zones[i], -2208988800LL, 7258118400LL);
	}
	set_tz("UTC");
	/* The footer alone (a slim file's future) gives the same. */
	assert_int_equal(hl_hours_zone_posix(z, "GMT0BST,M3.5.0/1,M10.5.0", err,
					     sizeof(err)), 0);
	set_tz(":Europe/London");
	compare(z, "London rule", 1577836800LL /* 2020 */, 4102444800LL);
	set_tz("UTC");
	free(z);
}

static void test_posix_rules(void **state)
{
	static const char *const good[] = {
		"GMT0BST,M3.5.0/1,M10.5.0",
		"EST5EDT,M3.2.0,M11.1.0",
		"<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
		"IST-2IDT,M3.4.4/26,M10.5.0",        /* times past 24h */
		"<-03>3<-02>,M3.5.0/-2,M10.5.0/-1",  /* negative times */
		"<-01>1<+00>,M3.5.0/0,M10.5.0/1",
		"CET-1CEST,J60/2,J300/3",            /* Julian, no leap day */
		"XXX3YYY,59/2,300/2",                /* zero-based, leap day */
		"NZST-12NZDT,M9.5.0,M4.1.0/3",
		"<+0545>-5:45",
		"<+1345>-13:45<+1445>,M9.5.0/2:45,M4.1.0/3:45",
		"AAA-1:30:15BBB-2:30:30,M4.1.0/1:02:03,M9.5.6/23:59:59",
		"UTC0",
	};
	static const char *const bad[] = {
		"", "GMT", "GM0", "0", "GMT+", "GMT25", "<AB>1", "<A B>1", "<ABC1",
		"GMT0BST,M3.5.0", "GMT0BST,M13.1.0,M10.5.0",
		"GMT0BST,M3.6.0,M10.5.0", "GMT0BST,M3.0.0,M10.5.0",
		"GMT0BST,M3.5.7,M10.5.0", "GMT0BST,J0,J10", "GMT0BST,J366,J10",
		"GMT0BST,366,10", "GMT0BST,M3.5.0/168,M10.5.0",
		"GMT0BST,M3.5.0/1:60,M10.5.0", "GMT0BST,M3.5.0,M10.5.0,",
		"GMT0BST,M3.5.0,M10.5.0x", "GMT0 BST", "GMT0BST1BST2",
	};
	struct hl_hours_zone *z = malloc(sizeof(*z));
	char err[256];

	(void)state;
	assert_non_null(z);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (hl_hours_zone_posix(z, good[i], err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i], err);
		set_tz(good[i]);
		compare(z, good[i], 946684800LL /* 2000 */, 4102444800LL /* 2100 */);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (hl_hours_zone_posix(z, bad[i], err, sizeof(err)) != HL_EINVAL)
			fail_msg("accepted %s", bad[i]);
	/* Without a rule, the US one (glibc would read posixrules instead). */
	assert_int_equal(hl_hours_zone_posix(z, "EST5EDT", err, sizeof(err)), 0);
	assert_int_equal(hl_hours_zone_offset(z, utc(2026, 3, 8, 6, 59) / 1000), -5 * 3600);
	assert_int_equal(hl_hours_zone_offset(z, utc(2026, 3, 8, 7, 0) / 1000), -4 * 3600);
	assert_int_equal(hl_hours_zone_offset(z, utc(2026, 11, 1, 5, 59) / 1000), -4 * 3600);
	assert_int_equal(hl_hours_zone_offset(z, utc(2026, 11, 1, 6, 0) / 1000), -5 * 3600);
	/* Daylight saving all year (RFC 8536 §3.3.1's example). */
	assert_int_equal(hl_hours_zone_posix(z, "EST5EDT,0/0,J365/25", err,
					     sizeof(err)), 0);
	for (int64_t t = 946684800LL; t < 4102444800LL; t += 86400 * 7 + 3599)
		assert_int_equal(hl_hours_zone_offset(z, t), -4 * 3600);
	set_tz("UTC");
	free(z);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = malloc(65536);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static void test_tzif_malformed(void **state)
{
	struct hl_hours_zone *z = malloc(sizeof(*z));
	unsigned char *buf, v1[128] = {0};
	size_t len;
	char err[256];

	(void)state;
	assert_non_null(z);
	buf = slurp("/usr/share/zoneinfo/Europe/London", &len);
	assert_int_equal(hl_hours_zone_parse(z, buf, len, err, sizeof(err)), 0);
	assert_true(z->rule && z->rule_dst);
	/* Every truncation fails cleanly. */
	for (size_t n = 0; n < len; n++)
		if (hl_hours_zone_parse(z, buf, n, err, sizeof(err)) != HL_EINVAL)
			fail_msg("accepted %zu of %zu bytes", n, len);
	/* Flipped bytes never crash (the sanitizers watch), whatever they give. */
	for (size_t n = 0; n < len; n++) {
		unsigned char *copy = malloc(len);

		assert_non_null(copy);
		memcpy(copy, buf, len);
		copy[n] ^= (unsigned char)(0x5a + n);
		if (hl_hours_zone_parse(z, copy, len, err, sizeof(err)) == 0)
			(void)hl_hours_zone_utc(z, 1000000000 +
						       hl_hours_zone_offset(z, 1000000000));
		free(copy);
	}
	buf[0] = 'X';
	assert_int_equal(hl_hours_zone_parse(z, buf, len, err, sizeof(err)), HL_EINVAL);
	assert_non_null(strstr(err, "not a TZif file"));
	free(buf);
	/* Leap seconds are refused. */
	buf = slurp("/usr/share/zoneinfo/right/Europe/London", &len);
	assert_int_equal(hl_hours_zone_parse(z, buf, len, err, sizeof(err)), HL_EINVAL);
	assert_non_null(strstr(err, "leap seconds"));
	free(buf);
	/* A version 1 file (no footer): two types, one transition at 10^9. */
	memcpy(v1, "TZif", 4);
	put32(v1 + 20 + 4 * 3, 1); /* timecnt */
	put32(v1 + 20 + 4 * 4, 2); /* typecnt */
	put32(v1 + 20 + 4 * 5, 4); /* charcnt */
	put32(v1 + 44, 1000000000);
	v1[48] = 1;
	put32(v1 + 49, (uint32_t)-18000);
	put32(v1 + 55, 3600);
	v1[59] = 0;
	v1[60] = 2;
	memcpy(v1 + 61, "AA\0B", 4);
	assert_int_equal(hl_hours_zone_parse(z, v1, 65, err, sizeof(err)), 0);
	assert_int_equal(hl_hours_zone_offset(z, 999999999), -18000);
	assert_int_equal(hl_hours_zone_offset(z, 1000000000), 3600);
	assert_int_equal(hl_hours_zone_offset(z, 4000000000LL), 3600);
	/* ...and with a designation index out of range. */
	v1[60] = 4;
	assert_int_equal(hl_hours_zone_parse(z, v1, 65, err, sizeof(err)), HL_EINVAL);
	free(z);
}

/* ---- opening hours ------------------------------------------------------------ */

/* Asserts the state at t and the next change (0: none). */
static void expect_at(int64_t t, bool open, int64_t change)
{
	int64_t closes = -1, opens = -1;
	bool got = hl_hours_open(&H, t, &closes, &opens);
	time_t s = (time_t)(t / 1000);
	char when[40];

	strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", gmtime(&s));
	if (got != open)
		fail_msg("%s: open=%d, want %d", when, got, open);
	if ((open ? closes : opens) != change)
		fail_msg("%s: next change %lld, want %lld", when,
			 (long long)(open ? closes : opens), (long long)change);
	assert_int_equal(open ? opens : closes, 0);
	/* The cheap question gives the same answer. */
	assert_int_equal(hl_hours_open(&H, t, NULL, NULL), open);
	assert_int_equal(hl_hours_open(&H, t, &closes, NULL), open);
	assert_int_equal(hl_hours_open(&H, t, NULL, &opens), open);
}

#define expect(y, mo, d, h, mi, open, change) \
	expect_at(utc(y, mo, d, h, mi), open, change)

static void test_weekly(void **state)
{
	(void)state;
	/* 2026-11-23 is a Monday. */
	parse_ok("mon-fri 09:00-22:00, sat-sun 12:00-20:00", NULL);
	expect(2026, 11, 23, 8, 59, false, utc(2026, 11, 23, 9, 0));
	expect_at(utc(2026, 11, 23, 9, 0) - 1, false, utc(2026, 11, 23, 9, 0));
	expect(2026, 11, 23, 9, 0, true, utc(2026, 11, 23, 22, 0));
	expect(2026, 11, 23, 21, 59, true, utc(2026, 11, 23, 22, 0));
	expect_at(utc(2026, 11, 23, 22, 0) - 1, true, utc(2026, 11, 23, 22, 0));
	expect(2026, 11, 23, 22, 0, false, utc(2026, 11, 24, 9, 0));
	expect(2026, 11, 27, 23, 0, false, utc(2026, 11, 28, 12, 0)); /* Fri night */
	expect(2026, 11, 28, 0, 0, false, utc(2026, 11, 28, 12, 0));
	expect(2026, 11, 29, 19, 0, true, utc(2026, 11, 29, 20, 0)); /* Sunday */
	expect(2026, 11, 29, 20, 30, false, utc(2026, 11, 30, 9, 0)); /* wraps */
	/* Before 1970 works too: 1969-12-29 was a Monday. */
	expect(1969, 12, 29, 10, 0, true, utc(1969, 12, 29, 22, 0));
	/* Several ranges in a day. */
	parse_ok("mon 09:00-12:00 13:00-17:00", NULL);
	expect(2026, 11, 23, 12, 30, false, utc(2026, 11, 23, 13, 0));
	expect(2026, 11, 23, 11, 0, true, utc(2026, 11, 23, 12, 0));
	expect(2026, 11, 23, 17, 0, false, utc(2026, 11, 30, 9, 0));
	expect(2026, 11, 24, 9, 0, false, utc(2026, 11, 30, 9, 0));
	/* Overlapping ranges and repeated entries merge. */
	parse_ok("mon 09:00-12:00 11:00-14:00, mon 14:00-15:00, mon 08:00-09:30",
		 NULL);
	expect(2026, 11, 23, 8, 0, true, utc(2026, 11, 23, 15, 0));
	expect(2026, 11, 23, 7, 0, false, utc(2026, 11, 23, 8, 0));
	/* Past midnight, and touching ranges across midnight merge. */
	parse_ok("fri 18:00-02:00, sat 02:00-04:00, mon 22:00-24:00, "
		 "tue 00:00-01:00", NULL);
	expect(2026, 11, 27, 17, 0, false, utc(2026, 11, 27, 18, 0));
	expect(2026, 11, 27, 23, 59, true, utc(2026, 11, 28, 4, 0));
	expect(2026, 11, 28, 1, 0, true, utc(2026, 11, 28, 4, 0));
	expect(2026, 11, 28, 4, 0, false, utc(2026, 11, 30, 22, 0));
	expect(2026, 11, 30, 23, 0, true, utc(2026, 12, 1, 1, 0));
	expect(2026, 12, 1, 0, 30, true, utc(2026, 12, 1, 1, 0));
	/* Sunday night into Monday: the week wraps. */
	parse_ok("sun 20:00-08:00", NULL);
	expect(2026, 11, 30, 7, 0, true, utc(2026, 11, 30, 8, 0)); /* Mon 07:00 */
	expect(2026, 11, 30, 8, 0, false, utc(2026, 12, 6, 20, 0));
	/* Round the clock every day: never closes. */
	parse_ok("daily 00:00-24:00", NULL);
	expect(2026, 11, 23, 3, 0, true, 0);
	parse_ok("daily 12:00-12:00", NULL);
	expect(2026, 11, 23, 3, 0, true, 0);
	parse_ok(NULL, NULL);
	expect(2026, 11, 23, 3, 0, true, 0);
	/* Round the clock except Sunday 03:00-04:00. */
	parse_ok("mon-sat 00:00-24:00, sun 00:00-03:00 04:00-24:00", NULL);
	expect(2026, 11, 23, 3, 0, true, utc(2026, 11, 29, 3, 0));
	expect(2026, 11, 29, 3, 30, false, utc(2026, 11, 29, 4, 0));
	/* Absurd instants answer without overflowing. */
	assert_false(hl_hours_open(&H, INT64_MAX, NULL, NULL));
	assert_false(hl_hours_open(&H, INT64_MIN, NULL, NULL));
}

static void test_exceptions(void **state)
{
	(void)state;
	parse_ok("daily 09:00-22:00", "2026-12-25 closed, 2026-12-26 closed, "
		 "2026-12-24 09:00-14:00, 2026-12-31 18:00-02:00");
	expect(2026, 12, 24, 13, 0, true, utc(2026, 12, 24, 14, 0));
	expect(2026, 12, 24, 15, 0, false, utc(2026, 12, 27, 9, 0)); /* over Christmas */
	expect(2026, 12, 25, 12, 0, false, utc(2026, 12, 27, 9, 0));
	expect(2026, 12, 31, 17, 0, false, utc(2026, 12, 31, 18, 0));
	expect(2026, 12, 31, 23, 0, true, utc(2027, 1, 1, 2, 0)); /* New Year's Eve */
	expect(2027, 1, 1, 2, 0, false, utc(2027, 1, 1, 9, 0));
	/* An exception's range past midnight runs into the next day's hours. */
	parse_ok("daily 09:00-22:00", "2026-12-31 18:00-09:30");
	expect(2026, 12, 31, 20, 0, true, utc(2027, 1, 1, 22, 0));
	/* The day before's range past midnight still spills into a closed date. */
	parse_ok("fri 18:00-02:00", "2026-11-28 closed, 2026-11-27 closed");
	expect(2026, 11, 28, 1, 0, false, utc(2026, 12, 4, 18, 0));
	parse_ok("fri 18:00-02:00", "2026-11-28 closed");
	expect(2026, 11, 28, 1, 0, true, utc(2026, 11, 28, 2, 0));
	/* A long holiday: the next opening is after it. */
	parse_ok("mon-fri 09:00-17:00", "2026-12-21 closed, 2026-12-22 closed, "
		 "2026-12-23 closed, 2026-12-24 closed, 2026-12-25 closed, "
		 "2026-12-28 closed, 2026-12-29 closed, 2026-12-30 closed, "
		 "2026-12-31 closed, 2027-01-01 closed");
	expect(2026, 12, 18, 17, 0, false, utc(2027, 1, 4, 9, 0));
	/* Open all the time but for a date: it closes at that midnight. */
	parse_ok(NULL, "2026-12-25 closed");
	expect(2026, 12, 20, 12, 0, true, utc(2026, 12, 25, 0, 0));
	expect(2026, 12, 25, 12, 0, false, utc(2026, 12, 26, 0, 0));
	expect(2026, 12, 26, 12, 0, true, 0); /* never closes again */
	/* Closed for ever after the last special opening: opens_at 0. */
	parse_ok("sun 10:00-11:00", "2026-12-27 closed");
	expect(2026, 12, 20, 12, 0, false, utc(2027, 1, 3, 10, 0));
}

/* Dates "from + 7k days" for k < n, closed, as exceptions text. */
static void closed_days(char *text, size_t cap, int64_t from_ms, int n, int step)
{
	size_t len = 0;

	text[0] = '\0';
	for (int k = 0; k < n; k++) {
		time_t tt = (time_t)(from_ms / 1000 + (int64_t)k * step * 86400);
		struct tm tm;

		gmtime_r(&tt, &tm);
		len += (size_t)snprintf(text + len, cap - len, "%s%04d-%02d-%02d closed",
					k ? "," : "", tm.tm_year + 1900,
					tm.tm_mon + 1, tm.tm_mday);
	}
}

static void test_lookahead(void **state)
{
	char text[4096];

	(void)state;
	/* 128 days closed from Monday 2026-11-23 (to Tuesday 2027-03-30):
	 * the next opening is the Monday after. */
	closed_days(text, sizeof(text), utc(2026, 11, 23, 0, 0), 128, 1);
	parse_ok("mon 09:00-10:00", text);
	expect(2026, 11, 23, 12, 0, false, utc(2027, 4, 5, 9, 0));
	/* Open on Mondays only, the next 57 closed: opens 399 days ahead. */
	closed_days(text, sizeof(text), utc(2026, 11, 23, 0, 0), 57, 7);
	parse_ok("mon 09:00-10:00", text);
	expect(2026, 11, 23, 12, 0, false, utc(2026, 11, 23, 9, 0) + 57LL * 7 * 86400000);
	/* The next 58 closed: 406 days ahead is past the look-ahead (0). */
	closed_days(text, sizeof(text), utc(2026, 11, 23, 0, 0), 58, 7);
	parse_ok("mon 09:00-10:00", text);
	expect(2026, 11, 23, 12, 0, false, 0);
	/* Open now and for more than 400 days: no closing (0). */
	parse_ok("daily 00:00-24:00", "2028-12-25 closed");
	expect(2026, 11, 23, 12, 0, true, 0);
	parse_ok("daily 00:00-24:00", "2027-12-25 closed");
	expect(2026, 11, 23, 12, 0, true, utc(2027, 12, 25, 0, 0));
}

static void test_dst_london(void **state)
{
	(void)state;
	parse_ok("daily 09:00-17:00", NULL);
	zone("Europe/London");
	/* Winter: 09:00 GMT is 09:00 UT. */
	expect(2026, 1, 15, 8, 59, false, utc(2026, 1, 15, 9, 0));
	expect(2026, 1, 15, 16, 0, true, utc(2026, 1, 15, 17, 0));
	/* Clocks go forward 2026-03-29 01:00 GMT: 09:00 BST is 08:00 UT. */
	expect(2026, 3, 28, 18, 0, false, utc(2026, 3, 29, 8, 0));
	expect(2026, 3, 29, 8, 30, true, utc(2026, 3, 29, 16, 0));
	expect(2026, 3, 29, 7, 59, false, utc(2026, 3, 29, 8, 0));
	/* Clocks go back 2026-10-25 02:00 BST: 09:00 GMT is 09:00 UT. */
	expect(2026, 10, 24, 8, 30, true, utc(2026, 10, 24, 16, 0));
	expect(2026, 10, 24, 17, 0, false, utc(2026, 10, 25, 9, 0));
	expect(2026, 10, 25, 8, 30, false, utc(2026, 10, 25, 9, 0));
	/* Overnight across the changes: 7 real hours in spring, 9 in autumn. */
	parse_ok("sat 22:00-06:00", NULL);
	zone("Europe/London");
	expect(2026, 3, 28, 23, 0, true, utc(2026, 3, 29, 5, 0));
	expect(2026, 10, 24, 20, 0, false, utc(2026, 10, 24, 21, 0));
	expect(2026, 10, 25, 3, 0, true, utc(2026, 10, 25, 6, 0));
	/* A range reaching into the skipped hour closes at the jump, one
	 * starting in it opens at the jump, one wholly inside never opens. */
	parse_ok("sun 00:30-01:30", NULL);
	zone("Europe/London");
	expect(2026, 3, 29, 0, 45, true, utc(2026, 3, 29, 1, 0));
	parse_ok("sun 01:30-03:00", NULL);
	zone("Europe/London");
	expect(2026, 3, 29, 0, 45, false, utc(2026, 3, 29, 1, 0));
	expect(2026, 3, 29, 1, 0, true, utc(2026, 3, 29, 2, 0));
	parse_ok("sun 01:15-01:45", NULL);
	zone("Europe/London");
	expect(2026, 3, 28, 12, 0, false, utc(2026, 4, 5, 0, 15));
	/* The repeated hour: 01:30 is its first time (BST). */
	parse_ok("sun 01:30-03:00", NULL);
	zone("Europe/London");
	expect(2026, 10, 25, 0, 0, false, utc(2026, 10, 25, 0, 30));
	expect(2026, 10, 25, 1, 30, true, utc(2026, 10, 25, 3, 0));
	/* Dates are London dates: closed for 2026-07-01 means 23:00 UT the
	 * evening before to 23:00 UT on the day. */
	parse_ok(NULL, "2026-07-01 closed, 2026-12-25 closed");
	zone("Europe/London");
	expect(2026, 6, 30, 12, 0, true, utc(2026, 6, 30, 23, 0));
	expect(2026, 6, 30, 23, 0, false, utc(2026, 7, 1, 23, 0));
	expect(2026, 12, 25, 0, 0, false, utc(2026, 12, 26, 0, 0));
	/* Beyond the file's table (2037), the footer's rule keeps it right:
	 * the last Sunday of March 2050 is the 27th. */
	parse_ok("daily 09:00-17:00", NULL);
	zone("Europe/London");
	expect(2050, 3, 26, 18, 0, false, utc(2050, 3, 27, 8, 0));
	expect(2050, 10, 29, 18, 0, false, utc(2050, 10, 30, 9, 0));
}

static void test_other_zones(void **state)
{
	(void)state;
	/* Sydney: clocks go back 2026-04-05 03:00 AEDT, forward 2026-10-04
	 * 02:00 AEST. 09:00 local is 22:00 UT (AEDT) or 23:00 UT (AEST). */
	parse_ok("daily 09:00-17:00", NULL);
	zone("Australia/Sydney");
	expect(2026, 4, 4, 12, 0, false, utc(2026, 4, 4, 23, 0));
	expect(2026, 10, 3, 12, 0, false, utc(2026, 10, 3, 22, 0));
	/* Kathmandu is +05:45. */
	zone("Asia/Kathmandu");
	expect(2026, 11, 23, 3, 0, false, utc(2026, 11, 23, 3, 15));
	/* New York, with an overnight range on the autumn change (2026-11-01
	 * 02:00 EDT): 22:00 EDT = 02:00 UT to 06:00 EST = 11:00 UT. */
	parse_ok("sat 22:00-06:00", NULL);
	zone("America/New_York");
	expect(2026, 11, 1, 3, 0, true, utc(2026, 11, 1, 11, 0));
}

static void test_cost(void **state)
{
	struct timespec a, b;
	int64_t t = utc(2026, 11, 23, 12, 0), closes, opens;
	double ms;

	(void)state;
	/* The worst case: open round the clock, so the whole look-ahead is
	 * walked to find no closing. It stays well under a millisecond or two
	 * even under the sanitizers; without wanting the change it is a few
	 * days' work. */
	parse_ok("daily 00:00-12:00 12:00-24:00", NULL);
	zone("Europe/London");
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 100; i++)
		assert_true(hl_hours_open(&H, t + i, &closes, &opens));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("hl_hours_open, 400 days: %.3f ms a call\n", ms / 100);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 10000; i++)
		assert_true(hl_hours_open(&H, t + i, NULL, NULL));
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	print_message("hl_hours_open, open or not: %.4f ms a call\n", ms / 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_timezone_names),
		cmocka_unit_test(test_zone_files),
		cmocka_unit_test(test_posix_rules),
		cmocka_unit_test(test_tzif_malformed),
		cmocka_unit_test(test_weekly),
		cmocka_unit_test(test_exceptions),
		cmocka_unit_test(test_lookahead),
		cmocka_unit_test(test_dst_london),
		cmocka_unit_test(test_other_zones),
		cmocka_unit_test(test_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
