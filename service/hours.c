/* hours.c: opening hours (see hours.h for the formats). Parsing is pure;
 * the time zone is read once from its TZif file into struct hl_hours_zone
 * and evaluated with calendar arithmetic of our own. We do not set TZ and
 * use localtime_r/mktime instead because the zone would then be global to
 * the process (other modules, and a test building two servers, would
 * share it), mktime is slow and takes glibc's zone lock on every call, and
 * changing TZ once threads run is a data race. Reading the file ourselves
 * also lets a bad or leap-second zone stop start-up instead of silently
 * becoming UTC. */
#include "hours.h"
#include "common.h"
#include "config.h"
#include "inbox.h"
#include "server.h"
#include "session.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY_MIN 1440
#define DAY_S 86400
#define ZONEINFO "/usr/share/zoneinfo"
#define ZONE_FILE_MAX 65536
#define T_LIMIT_MS (INT64_C(100000) * 365 * DAY_S * 1000) /* 100000 years */

static const char *const day_names[7] = {"sun", "mon", "tue", "wed",
					  "thu", "fri", "sat"};

/* ---- calendar (proleptic Gregorian, days since 1970-01-01) --------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool leap_year(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int64_t y, int m)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30,
				      31, 31, 30, 31, 30, 31};

	return mdays[m - 1] + (m == 2 && leap_year(y));
}

/* Days from 1970-01-01 to y-m-d (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The date of day z since 1970-01-01 (civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t z)
{
	int64_t w = (z + 4) % 7;

	return (int)(w < 0 ? w + 7 : w);
}

/* ---- schedule parsing ------------------------------------------------------ */

static int day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && strncasecmp(s, day_names[i], 3) == 0)
			return i;
	return -1;
}

/* "HH:MM" (00:00-24:00) -> minutes, or -1. */
static int hhmm(const char *s, size_t n)
{
	int h, m;

	if (n != 5 || !isdigit((unsigned char)s[0]) ||
	    !isdigit((unsigned char)s[1]) || s[2] != ':' ||
	    !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* Parses the range token "HH:MM-HH:MM" into start and end minutes (end
 * past 1440 when it runs past midnight). 0 or -1. */
static int parse_range(const char *s, int *start, int *end)
{
	const char *dash = strchr(s, '-');
	int a, b;

	if (!dash)
		return -1;
	a = hhmm(s, (size_t)(dash - s));
	b = hhmm(dash + 1, strlen(dash + 1));
	if (a < 0 || b < 0 || a == DAY_MIN)
		return -1;
	if (b <= a)
		b += DAY_MIN; /* past midnight; "09:00-09:00" is 24 hours */
	*start = a;
	*end = b;
	return 0;
}

static int cmp_range(const void *x, const void *y)
{
	const int *a = x, *b = y;

	return (a[0] > b[0]) - (a[0] < b[0]);
}

/* Splits text on commas into trimmed entries; calls fn for each. The
 * entries are edited in a copy, never in text. */
static int each_entry(const char *text, const char *what,
		      int (*fn)(struct hl_hours *h, char *entry, char *err,
				size_t errlen),
		      struct hl_hours *h, char *err, size_t errlen)
{
	char buf[4096], *next;

	if (strlen(text) >= sizeof(buf)) {
		hl_set_err(err, errlen, "%s is too long", what);
		return HL_EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", text);
	for (char *e = buf; e; e = next) {
		char *end, *comma = strchr(e, ',');

		next = comma ? comma + 1 : NULL;
		if (comma)
			*comma = '\0';
		while (*e == ' ' || *e == '\t')
			e++;
		end = e + strlen(e);
		while (end > e && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*e) {
			hl_set_err(err, errlen, "an empty entry (two commas, or "
				   "one at an end)");
			return HL_EINVAL;
		}
		if (fn(h, e, err, errlen) != 0)
			return HL_EINVAL;
	}
	return 0;
}

/* Reads the whitespace-separated ranges of rest into d (which may already
 * hold ranges), sorted. entry names the whole entry in messages. */
static int ranges(struct hl_hours_day *d, char *rest, const char *entry,
		  char *err, size_t errlen)
{
	char *save = NULL;
	int n = 0;

	for (char *tok = strtok_r(rest, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save), n++) {
		int a, b;

		if (parse_range(tok, &a, &b) != 0) {
			hl_set_err(err, errlen, "\"%s\": \"%s\" is not a range "
				   "HH:MM-HH:MM (00:00 to 24:00)", entry, tok);
			return HL_EINVAL;
		}
		if (d->n == HL_HOURS_RANGES) {
			hl_set_err(err, errlen, "\"%s\": \"%s\" is one range too "
				   "many (at most %d a day)", entry, tok,
				   HL_HOURS_RANGES);
			return HL_EINVAL;
		}
		d->r[d->n].start = a;
		d->r[d->n].end = b;
		d->n++;
	}
	if (n == 0) {
		hl_set_err(err, errlen, "\"%s\": give one or more ranges "
			   "HH:MM-HH:MM", entry);
		return HL_EINVAL;
	}
	qsort(d->r, (size_t)d->n, sizeof(d->r[0]), cmp_range);
	return 0;
}

static int weekly_entry(struct hl_hours *h, char *e, char *err, size_t errlen)
{
	char entry[128], *sp = strpbrk(e, " \t"), *dash;
	int from, to;
	struct hl_hours_day one = {0};

	snprintf(entry, sizeof(entry), "%s", e);
	if (!sp) {
		hl_set_err(err, errlen, "\"%s\": expected days then ranges, "
			   "e.g. \"mon-fri 09:00-22:00\"", entry);
		return HL_EINVAL;
	}
	*sp = '\0';
	dash = strchr(e, '-');
	if (strcasecmp(e, "daily") == 0) {
		from = 1;
		to = 0;
	} else if (dash) {
		from = day_index(e, (size_t)(dash - e));
		to = day_index(dash + 1, strlen(dash + 1));
	} else {
		from = to = day_index(e, strlen(e));
	}
	if (from < 0 || to < 0) {
		hl_set_err(err, errlen, "\"%s\": \"%s\" is not a day: days are "
			   "mon tue wed thu fri sat sun, a range like mon-fri, or "
			   "daily", entry, e);
		return HL_EINVAL;
	}
	if (ranges(&one, sp + 1, entry, err, errlen) != 0)
		return HL_EINVAL;
	for (int d = from;; d = (d + 1) % 7) {
		struct hl_hours_day *day = &h->week[d];

		if (day->n + one.n > HL_HOURS_RANGES) {
			hl_set_err(err, errlen, "\"%s\": more than %d ranges on %s",
				   entry, HL_HOURS_RANGES, day_names[d]);
			return HL_EINVAL;
		}
		memcpy(&day->r[day->n], one.r, (size_t)one.n * sizeof(one.r[0]));
		day->n += one.n;
		qsort(day->r, (size_t)day->n, sizeof(day->r[0]), cmp_range);
		if (d == to)
			break;
	}
	return 0;
}

/* "YYYY-MM-DD" (exactly that, a real date, years 2000-2999) -> yyyymmdd,
 * or -1. */
static int parse_date(const char *s)
{
	int y, m, d;

	for (int i = 0; i < 10; i++)
		if ((i == 4 || i == 7) ? s[i] != '-' : !isdigit((unsigned char)s[i]))
			return -1;
	if (s[10] != '\0')
		return -1;
	y = atoi(s);
	m = atoi(s + 5);
	d = atoi(s + 8);
	if (y < 2000 || y > 2999 || m < 1 || m > 12 || d < 1 ||
	    d > month_days(y, m))
		return -1;
	return y * 10000 + m * 100 + d;
}

static int exception_entry(struct hl_hours *h, char *e, char *err,
			   size_t errlen)
{
	char entry[128], *sp = strpbrk(e, " \t");
	struct hl_hours_day *day;
	int date;

	snprintf(entry, sizeof(entry), "%s", e);
	if (sp)
		*sp = '\0';
	date = parse_date(e);
	if (date < 0 || !sp) {
		hl_set_err(err, errlen, "\"%s\": expected a date YYYY-MM-DD then "
			   "\"closed\" or ranges HH:MM-HH:MM%s%s%s", entry,
			   date < 0 ? " (\"" : "", date < 0 ? e : "",
			   date < 0 ? "\" is not a date)" : "");
		return HL_EINVAL;
	}
	for (int i = 0; i < h->nexc; i++)
		if (h->exc[i].date == date) {
			hl_set_err(err, errlen, "\"%s\": %s is given twice", entry, e);
			return HL_EINVAL;
		}
	if (h->nexc == HL_HOURS_EXCEPTIONS) {
		hl_set_err(err, errlen, "\"%s\": at most %d exceptions", entry,
			   HL_HOURS_EXCEPTIONS);
		return HL_EINVAL;
	}
	day = &h->exc[h->nexc].day;
	memset(day, 0, sizeof(*day));
	sp++;
	while (*sp == ' ' || *sp == '\t')
		sp++;
	if (strcasecmp(sp, "closed") != 0 &&
	    ranges(day, sp, entry, err, errlen) != 0)
		return HL_EINVAL;
	h->exc[h->nexc].date = date;
	h->nexc++;
	return 0;
}

static int cmp_exc(const void *x, const void *y)
{
	const int *a = x, *b = y; /* date is the first member */

	return (*a > *b) - (*a < *b);
}

static void zone_utc(struct hl_hours_zone *z)
{
	memset(z, 0, sizeof(*z));
}

int hl_hours_parse(struct hl_hours *h, const char *weekly,
		   const char *exceptions, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->timezone, sizeof(h->timezone), "UTC");
	zone_utc(&h->zone);
	if ((!weekly || !*weekly) && (!exceptions || !*exceptions)) {
		h->always = true;
		return 0;
	}
	if (!weekly || !*weekly) {
		/* Only exceptions: open all day on every other day. */
		for (int d = 0; d < 7; d++) {
			h->week[d].n = 1;
			h->week[d].r[0].start = 0;
			h->week[d].r[0].end = DAY_MIN;
		}
	} else if (each_entry(weekly, "hours.weekly", weekly_entry, h, err,
			      errlen) != 0) {
		return HL_EINVAL;
	}
	if (exceptions && *exceptions &&
	    each_entry(exceptions, "hours.exceptions", exception_entry, h, err,
		       errlen) != 0)
		return HL_EINVAL;
	qsort(h->exc, (size_t)h->nexc, sizeof(h->exc[0]), cmp_exc);
	return 0;
}

/* ---- POSIX TZ strings (the TZif footer) ------------------------------------ */

/* Skips a zone abbreviation: "<...>" or three or more letters. NULL if
 * there is none. */
static const char *tz_name(const char *p)
{
	const char *q = p;

	if (*p == '<') {
		for (q = p + 1; *q && *q != '>'; q++)
			if (!isalnum((unsigned char)*q) && *q != '+' && *q != '-')
				return NULL;
		return *q == '>' && q - p - 1 >= 3 ? q + 1 : NULL;
	}
	while (isalpha((unsigned char)*q))
		q++;
	return q - p >= 3 ? q : NULL;
}

/* Reads up to digits digits as a number in [0, max]. */
static const char *tz_num(const char *p, int digits, int max, int *out)
{
	int n = 0, i = 0;

	for (; i < digits && isdigit((unsigned char)p[i]); i++)
		n = n * 10 + (p[i] - '0');
	if (i == 0 || n > max)
		return NULL;
	*out = n;
	return p + i;
}

/* [+-]hh[:mm[:ss]] with hh at most maxh -> seconds. */
static const char *tz_hms(const char *p, int maxh, int32_t *out)
{
	int sign = 1, h, m = 0, s = 0;

	if (*p == '+' || *p == '-')
		sign = *p++ == '-' ? -1 : 1;
	if (!(p = tz_num(p, 3, maxh, &h)))
		return NULL;
	if (*p == ':' && !(p = tz_num(p + 1, 2, 59, &m)))
		return NULL;
	if (*p == ':' && !(p = tz_num(p + 1, 2, 59, &s)))
		return NULL;
	*out = sign * (h * 3600 + m * 60 + s);
	return p;
}

/* Jn, n or Mm.w.d, then an optional /time (default 02:00). */
static const char *tz_rule(const char *p, struct hl_hours_rule *r)
{
	memset(r, 0, sizeof(*r));
	if (*p == 'J') {
		r->kind = 'J';
		p = tz_num(p + 1, 3, 365, &r->a);
		if (p && r->a < 1)
			return NULL;
	} else if (*p == 'M') {
		r->kind = 'M';
		if (!(p = tz_num(p + 1, 2, 12, &r->a)) || r->a < 1 || *p != '.' ||
		    !(p = tz_num(p + 1, 1, 5, &r->b)) || r->b < 1 || *p != '.' ||
		    !(p = tz_num(p + 1, 1, 6, &r->c)))
			return NULL;
	} else {
		r->kind = 'D';
		p = tz_num(p, 3, 365, &r->a);
	}
	if (!p)
		return NULL;
	r->time = 7200;
	if (*p == '/')
		p = tz_hms(p + 1, 167, &r->time); /* RFC 8536 §3.3.1 */
	return p;
}

/* Parses tz into z's rule fields (the table is left alone). */
static int tz_parse(struct hl_hours_zone *z, const char *tz)
{
	const char *p = tz_name(tz);
	int32_t off;

	if (!p || !(p = tz_hms(p, 24, &off)))
		return -1;
	z->rule = true;
	z->rule_dst = false;
	z->std_off = -off; /* POSIX offsets count west */
	z->dst_off = z->std_off;
	if (!*p)
		return 0;
	if (!(p = tz_name(p)))
		return -1;
	z->rule_dst = true;
	z->dst_off = z->std_off + 3600;
	if (*p && *p != ',') {
		if (!(p = tz_hms(p, 24, &off)))
			return -1;
		z->dst_off = -off;
	}
	if (!*p) /* no rule: POSIX leaves it open; the US rule, as glibc */
		p = ",M3.2.0,M11.1.0";
	if (*p != ',' || !(p = tz_rule(p + 1, &z->start)) || *p != ',' ||
	    !(p = tz_rule(p + 1, &z->end)) || *p)
		return -1;
	return 0;
}

int hl_hours_zone_posix(struct hl_hours_zone *z, const char *tz, char *err,
			size_t errlen)
{
	zone_utc(z);
	if (tz_parse(z, tz) != 0) {
		zone_utc(z);
		hl_set_err(err, errlen, "\"%s\" is not a POSIX TZ string", tz);
		return HL_EINVAL;
	}
	return 0;
}

/* The unix second of rule r in year y, as local wall time (not yet less
 * the offset in force). */
static int64_t rule_wall(int64_t y, const struct hl_hours_rule *r)
{
	int64_t day;

	if (r->kind == 'J') {
		day = days_from_civil(y, 1, 1) + r->a - 1 +
		      (leap_year(y) && r->a >= 60);
	} else if (r->kind == 'D') {
		day = days_from_civil(y, 1, 1) + r->a;
	} else {
		int64_t first = days_from_civil(y, r->a, 1);
		int d = (r->c - weekday(first) + 7) % 7 + (r->b - 1) * 7;

		while (d >= month_days(y, r->a))
			d -= 7; /* week 5: the last one */
		day = first + d;
	}
	return day * DAY_S + r->time;
}

/* The offset the rule gives at t: the state set by the latest start or
 * end at or before t among the year's and its neighbours' (a start wins a
 * tie, so "0/0,J365/25" is daylight saving all year, RFC 8536 §3.3.1). */
static int32_t rule_offset(const struct hl_hours_zone *z, int64_t t)
{
	int64_t y, best = INT64_MIN;
	int m, d;
	bool dst = false;

	if (!z->rule_dst)
		return z->std_off;
	civil_from_days(floor_div(t + z->std_off, DAY_S), &y, &m, &d);
	for (int64_t yy = y - 1; yy <= y + 1; yy++) {
		int64_t s = rule_wall(yy, &z->start) - z->std_off;
		int64_t e = rule_wall(yy, &z->end) - z->dst_off;

		if (e <= t && e > best) {
			best = e;
			dst = false;
		}
		if (s <= t && s >= best) {
			best = s;
			dst = true;
		}
	}
	return dst ? z->dst_off : z->std_off;
}

/* ---- TZif files ---------------------------------------------------------------- */

static int64_t be32(const unsigned char *p)
{
	return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			 (uint32_t)p[2] << 8 | (uint32_t)p[3]);
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)(uint32_t)be32(p) << 32 |
			 (uint64_t)(uint32_t)be32(p + 4));
}

/* The six counts of a TZif header: isutcnt isstdcnt leapcnt timecnt
 * typecnt charcnt. -1 if one is negative. */
static int tzif_counts(const unsigned char *hdr, int64_t c[6])
{
	for (int i = 0; i < 6; i++)
		if ((c[i] = be32(hdr + 20 + 4 * i)) < 0)
			return -1;
	return 0;
}

/* Bytes of a data block with times of tsize bytes. */
static uint64_t tzif_block(const int64_t c[6], int tsize)
{
	return (uint64_t)c[3] * (uint64_t)(tsize + 1) + (uint64_t)c[4] * 6 +
	       (uint64_t)c[5] + (uint64_t)c[2] * (uint64_t)(tsize + 4) +
	       (uint64_t)c[1] + (uint64_t)c[0];
}

#define BAD(...) do { hl_set_err(err, errlen, __VA_ARGS__); goto bad; } while (0)

int hl_hours_zone_parse(struct hl_hours_zone *z, const unsigned char *buf,
			size_t len, char *err, size_t errlen)
{
	const unsigned char *p = buf, *end = buf + len;
	int64_t c[6];
	uint64_t size;
	int tsize = 4;
	unsigned char version;

	zone_utc(z);
	if (len < 44 || memcmp(buf, "TZif", 4) != 0)
		BAD("not a TZif file");
	version = buf[4];
	if (version != 0 && version < '2')
		BAD("unknown TZif version");
	if (tzif_counts(buf, c) != 0)
		BAD("bad TZif header");
	size = tzif_block(c, 4);
	if (version >= '2') { /* skip the 32-bit block for the 64-bit one */
		if (size > len - 44 || len - 44 - size < 44 ||
		    memcmp(buf + 44 + size, "TZif", 4) != 0)
			BAD("truncated TZif file");
		p = buf + 44 + size;
		if (tzif_counts(p, c) != 0)
			BAD("bad TZif header");
		tsize = 8;
	}
	p += 44;
	size = tzif_block(c, tsize);
	if (size > (uint64_t)(end - p))
		BAD("truncated TZif file");
	if (c[2] != 0)
		BAD("zones with leap seconds (right/...) are not supported");
	if (c[4] < 1 || c[4] > HL_HOURS_TYPES || c[3] > HL_HOURS_TRANSITIONS ||
	    (c[0] != 0 && c[0] != c[4]) || (c[1] != 0 && c[1] != c[4]))
		BAD("TZif counts out of range");
	z->ntrans = (int)c[3];
	for (int i = 0; i < z->ntrans; i++, p += tsize) {
		z->trans[i] = tsize == 8 ? be64(p) : be32(p);
		if (i > 0 && z->trans[i] <= z->trans[i - 1])
			BAD("TZif transitions out of order");
	}
	for (int i = 0; i < z->ntrans; i++, p++) {
		if (*p >= c[4])
			BAD("TZif transition type out of range");
		z->type[i] = *p;
	}
	for (int i = 0; i < c[4]; i++, p += 6) {
		int64_t off = be32(p);

		/* RFC 8536: -25:59:59 to +25:59:59. */
		if (off < -93599 || off > 93599 || p[4] > 1 || p[5] >= c[5])
			BAD("TZif time type out of range");
		z->utoff[i] = (int32_t)off;
	}
	p += c[5] + c[1] + c[0]; /* abbreviations, std/wall, UT/local */
	z->before = z->utoff[0];
	if (version >= '2') {
		const unsigned char *nl;
		char tz[128];

		if (p == end || *p != '\n' ||
		    !(nl = memchr(p + 1, '\n', (size_t)(end - p - 1))))
			BAD("TZif footer missing");
		if ((size_t)(nl - p - 1) >= sizeof(tz))
			BAD("TZif footer too long");
		memcpy(tz, p + 1, (size_t)(nl - p - 1));
		tz[nl - p - 1] = '\0';
		if (strlen(tz) != (size_t)(nl - p - 1) ||
		    (*tz && tz_parse(z, tz) != 0))
			BAD("TZif footer is not a POSIX TZ string");
	}
	return 0;
bad:
	zone_utc(z);
	return HL_EINVAL;
}

#undef BAD

/* ---- zone evaluation ---------------------------------------------------------- */

int32_t hl_hours_zone_offset(const struct hl_hours_zone *z, int64_t t)
{
	int lo = 0, hi = z->ntrans - 1;

	if (z->ntrans == 0)
		return z->rule ? rule_offset(z, t) : z->before;
	if (t < z->trans[0])
		return z->before;
	while (lo < hi) { /* the last transition at or before t */
		int mid = lo + (hi - lo + 1) / 2;

		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (lo == z->ntrans - 1 && z->rule)
		return rule_offset(z, t);
	return z->utoff[z->type[lo]];
}

int64_t hl_hours_zone_utc(const struct hl_hours_zone *z, int64_t wall)
{
	/* The offsets a day either side (zones are at most 26 hours from UT)
	 * are the candidates: a wall time is valid under an offset if the
	 * instant it gives has that offset. This assumes at most one change
	 * within a day or so of wall, true of every zone in tzdata. */
	int32_t before = hl_hours_zone_offset(z, wall - DAY_S);
	int32_t after = hl_hours_zone_offset(z, wall + DAY_S);
	int64_t t1 = wall - before, t2 = wall - after, lo, hi;
	bool ok1 = t1 + hl_hours_zone_offset(z, t1) == wall;
	bool ok2 = t2 + hl_hours_zone_offset(z, t2) == wall;

	if (ok1 && ok2)
		return t1 < t2 ? t1 : t2; /* repeated: the earlier */
	if (ok1 || ok2)
		return ok1 ? t1 : t2;
	/* Skipped: find the jump, the first instant whose clock reads past
	 * wall (between t2 and t1). */
	lo = t1 < t2 ? t1 : t2;
	hi = t1 < t2 ? t2 : t1;
	if (lo + hl_hours_zone_offset(z, lo) > wall ||
	    hi + hl_hours_zone_offset(z, hi) <= wall)
		return t1; /* not a simple jump; cannot happen with tzdata */
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;

		if (mid + hl_hours_zone_offset(z, mid) > wall)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/* ---- time zone names and files ------------------------------------------------- */

/* A relative IANA-style name: parts split by '/', each starting with a
 * capital letter, then letters, digits and "_+-". No "..", no leading
 * '/', nothing like "localtime" or "posixrules". */
static bool zone_name_ok(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len >= sizeof(((struct hl_hours *)0)->timezone))
		return false;
	for (const char *p = name; *p; p++) {
		if (p == name || p[-1] == '/') {
			if (!isupper((unsigned char)*p))
				return false;
		} else if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p)) {
			return false;
		}
	}
	return name[len - 1] != '/';
}

/* Reads and parses the zone file of a checked name into z. */
static int zone_load(struct hl_hours_zone *z, const char *name, char *err,
		     size_t errlen)
{
	char path[128], why[160];
	unsigned char *buf = NULL;
	struct stat st;
	size_t got = 0;
	int fd, rc = HL_EINVAL;

	if (!zone_name_ok(name)) {
		hl_set_err(err, errlen, "\"%s\" is not a time zone name: use an "
			   "IANA name like Europe/London or UTC", name);
		return HL_EINVAL;
	}
	if (strcmp(name, "UTC") == 0) { /* needs no tzdata */
		zone_utc(z);
		return 0;
	}
	snprintf(path, sizeof(path), ZONEINFO "/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			hl_set_err(err, errlen, "no time zone \"%s\" in " ZONEINFO
				   " (is tzdata installed?)", name);
		else
			hl_set_err(err, errlen, "time zone \"%s\": cannot open %s: %s",
				   name, path, strerror(errno));
		return HL_EINVAL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > ZONE_FILE_MAX) {
		hl_set_err(err, errlen, "time zone \"%s\": %s is not a zone file",
			   name, path);
		goto out;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		rc = HL_ENOMEM;
		hl_set_err(err, errlen, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			hl_set_err(err, errlen, "time zone \"%s\": cannot read %s",
				   name, path);
			goto out;
		}
		got += (size_t)n;
	}
	if (hl_hours_zone_parse(z, buf, got, why, sizeof(why)) != 0) {
		hl_set_err(err, errlen, "time zone \"%s\": %s", name, why);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

int hl_hours_set_timezone(struct hl_hours *h, const char *name, char *err,
			  size_t errlen)
{
	struct hl_hours_zone *z = malloc(sizeof(*z));
	int rc;

	if (!z) {
		hl_set_err(err, errlen, "out of memory");
		return HL_ENOMEM;
	}
	rc = zone_load(z, name, err, errlen);
	if (rc == 0 && h) {
		h->zone = *z;
		snprintf(h->timezone, sizeof(h->timezone), "%s", name);
	}
	free(z);
	return rc;
}

int hl_hours_timezone_ok(const char *name, char *err, size_t errlen)
{
	return hl_hours_set_timezone(NULL, name, err, errlen);
}

int hl_hours_init(struct hl_hours *h, const struct hl_config *cfg, char *err,
		  size_t errlen)
{
	char why[256];
	const char *tz = cfg->hours_timezone[0] ? cfg->hours_timezone : "UTC";

	if (hl_hours_parse(h, cfg->hours_weekly, cfg->hours_exceptions, why,
			   sizeof(why)) != 0 ||
	    hl_hours_set_timezone(h, tz, why, sizeof(why)) != 0) {
		hl_set_err(err, errlen, "config: hours: %s", why);
		return HL_EINVAL;
	}
	return 0;
}

/* ---- opening hours ------------------------------------------------------------- */

/* The ranges in force on local day z: its exception, or its weekday's. */
static const struct hl_hours_day *day_for(const struct hl_hours *h, int64_t z)
{
	int64_t y;
	int m, d, key, lo = 0, hi = h->nexc - 1;

	civil_from_days(z, &y, &m, &d);
	key = (int)y * 10000 + m * 100 + d;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (h->exc[mid].date == key)
			return &h->exc[mid].day;
		if (h->exc[mid].date < key)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return &h->week[weekday(z)];
}

bool hl_hours_open(const struct hl_hours *h, int64_t t_ms, int64_t *closes_at,
		   int64_t *opens_at)
{
	/* Boundaries are whole seconds, so the second t_ms falls in decides. */
	int64_t t = floor_div(t_ms, 1000), today, midnight, cur_s = 0, cur_e = 0;
	bool want = closes_at || opens_at, have = false, decided = false;

	if (closes_at)
		*closes_at = 0;
	if (opens_at)
		*opens_at = 0;
	if (h->always)
		return true;
	if (t_ms < -T_LIMIT_MS || t_ms > T_LIMIT_MS)
		return false; /* no overflow for absurd instants */
	/* Each day's ranges start within that day, in order, and the wall to
	 * instant mapping never goes backwards, so walking day by day gives
	 * the ranges in order of start. Merge the ones that touch or overlap;
	 * the first merged interval that ends after t decides. Start from
	 * yesterday for its ranges past midnight. */
	today = floor_div(t + hl_hours_zone_offset(&h->zone, t), DAY_S);
	for (int64_t z = today - 1; z <= today + HL_HOURS_LOOKAHEAD && !decided;
	     z++) {
		const struct hl_hours_day *day = day_for(h, z);

		midnight = hl_hours_zone_utc(&h->zone, (z + 1) * DAY_S);
		for (int i = 0; i < day->n; i++) {
			int64_t s = hl_hours_zone_utc(&h->zone, z * DAY_S +
						      day->r[i].start * 60);
			int64_t e = hl_hours_zone_utc(&h->zone, z * DAY_S +
						      day->r[i].end * 60);

			if (e <= s)
				continue; /* wholly inside a skipped hour */
			if (have && s <= cur_e) {
				if (e > cur_e)
					cur_e = e;
				continue;
			}
			if (have && cur_e > t) {
				decided = true;
				break;
			}
			have = true;
			cur_s = s;
			cur_e = e;
		}
		/* Later days' ranges start at the next midnight or after: one
		 * that ends before it is whole. Without wanting the next
		 * change, knowing where t falls is enough. */
		if (!decided && have && cur_e > t && (cur_e < midnight || !want))
			decided = true;
	}
	if (!have || cur_e <= t)
		return false; /* does not open within the look-ahead */
	if (cur_s <= t) {
		if (closes_at && decided) /* else: open past the look-ahead */
			*closes_at = cur_e * 1000;
		return true;
	}
	if (opens_at)
		*opens_at = cur_s * 1000;
	return false;
}

/* ---- line.status ---------------------------------------------------------------- */

void hl_line_status(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_server *srv = s->srv;
	int64_t closes = 0, opens = 0;
	bool open = hl_hours_open(&srv->hours, hl_now_ms(), &closes, &opens);
	const char *pk = hl_inbox_public_key(&srv->inbox);
	json_t *r = hl_proto_reply("line.status", m->id);

	json_object_set_new(r, "open", json_boolean(open));
	json_object_set_new(r, "closes_at",
			    open && closes ? json_integer(closes) : json_null());
	json_object_set_new(r, "opens_at",
			    !open && opens ? json_integer(opens) : json_null());
	json_object_set_new(r, "queue_full",
			    json_boolean(hl_queue_length(&srv->contacts.queue) >=
					 (uint32_t)srv->cfg.queue_max));
	json_object_set_new(r, "inbox", json_boolean(pk != NULL));
	json_object_set_new(r, "inbox_pk", pk ? json_string(pk) : json_null());
	json_object_set_new(r, "timezone", json_string(srv->hours.timezone));
	hl_session_send(s, r);
	json_decref(r);
}
