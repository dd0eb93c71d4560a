/* hours.c: opening hours (see hours.h for the formats). Parsing is pure;
 * evaluation uses the process's local time zone, set once at start-up
 * (hl_hours_use_timezone) before any thread runs, so localtime_r and
 * mktime give wall-clock times with daylight saving handled by the C
 * library's own zoneinfo reader. */
#include "hours.h"
#include "common.h"
#include "config.h"
#include "inbox.h"
#include "server.h"
#include "session.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DAY_MIN 1440
#define LOOKAHEAD_DAYS 400

static const char *const day_names[7] = {"sun", "mon", "tue", "wed",
					  "thu", "fri", "sat"};

/* ---- parsing -------------------------------------------------------------- */

static int day_index(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && strncmp(s, day_names[i], 3) == 0)
			return i;
	return -1;
}

/* "HH:MM" (00:00-24:00) -> minutes, or -1. */
static int hhmm(const char *s, size_t n)
{
	int h, m;

	if (n != 5 || !isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]) ||
	    s[2] != ':' || !isdigit((unsigned char)s[3]) || !isdigit((unsigned char)s[4]))
		return -1;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (m > 59 || h > 24 || (h == 24 && m != 0))
		return -1;
	return h * 60 + m;
}

/* Adds the range token "HH:MM-HH:MM" to d. 0 or -1. */
static int add_range(struct hl_hours_day *d, const char *s, size_t n)
{
	const char *dash = memchr(s, '-', n);
	int a, b;

	if (!dash || d->n == HL_HOURS_RANGES)
		return -1;
	a = hhmm(s, (size_t)(dash - s));
	b = hhmm(dash + 1, n - (size_t)(dash - s) - 1);
	if (a < 0 || b < 0 || a == DAY_MIN)
		return -1;
	if (b <= a)
		b += DAY_MIN; /* past midnight */
	if (b - a > DAY_MIN)
		return -1;
	d->r[d->n].start = a;
	d->r[d->n].end = b;
	d->n++;
	return 0;
}

static int cmp_range(const void *x, const void *y)
{
	const int *a = x, *b = y;

	return (a[0] > b[0]) - (a[0] < b[0]);
}

static void sort_day(struct hl_hours_day *d)
{
	qsort(d->r, (size_t)d->n, sizeof(d->r[0]), cmp_range);
}

/* Splits text on commas into trimmed entries; calls fn for each. */
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
			hl_set_err(err, errlen, "%s has an empty entry", what);
			return HL_EINVAL;
		}
		if (fn(h, e, err, errlen) != 0)
			return HL_EINVAL;
	}
	return 0;
}

/* Reads the ranges after the first token of an entry into d. */
static int ranges(struct hl_hours_day *d, char *rest, const char *entry,
		  char *err, size_t errlen)
{
	char *save = NULL;
	int n = 0;

	for (char *tok = strtok_r(rest, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save), n++)
		if (add_range(d, tok, strlen(tok)) != 0) {
			hl_set_err(err, errlen, "\"%s\": \"%s\" is not a range "
				   "HH:MM-HH:MM (or too many ranges)", entry, tok);
			return HL_EINVAL;
		}
	if (n == 0) {
		hl_set_err(err, errlen, "\"%s\": give one or more ranges "
			   "HH:MM-HH:MM", entry);
		return HL_EINVAL;
	}
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
	if (strcmp(e, "daily") == 0) {
		from = 1;
		to = 0;
	} else if (dash) {
		from = day_index(e, (size_t)(dash - e));
		to = day_index(dash + 1, strlen(dash + 1));
	} else {
		from = to = day_index(e, strlen(e));
	}
	if (from < 0 || to < 0) {
		hl_set_err(err, errlen, "\"%s\": days are mon tue wed thu fri sat "
			   "sun, a range like mon-fri, or daily", entry);
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
		sort_day(day);
		if (d == to)
			break;
	}
	return 0;
}

static bool valid_date(int y, int m, int d)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int max;

	if (y < 2000 || y > 2999 || m < 1 || m > 12 || d < 1)
		return false;
	max = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
	return d <= max;
}

static int exception_entry(struct hl_hours *h, char *e, char *err, size_t errlen)
{
	char entry[128], *sp = strpbrk(e, " \t");
	int y, m, d, date;
	char tail;

	snprintf(entry, sizeof(entry), "%s", e);
	if (!sp || sscanf(e, "%4d-%2d-%2d%c", &y, &m, &d, &tail) != 4 ||
	    sp - e != 10 || !valid_date(y, m, d)) {
		hl_set_err(err, errlen, "\"%s\": expected YYYY-MM-DD then "
			   "\"closed\" or ranges", entry);
		return HL_EINVAL;
	}
	date = y * 10000 + m * 100 + d;
	for (int i = 0; i < h->nexc; i++)
		if (h->exc[i].date == date) {
			hl_set_err(err, errlen, "\"%s\": that date is given twice", entry);
			return HL_EINVAL;
		}
	if (h->nexc == HL_HOURS_EXCEPTIONS) {
		hl_set_err(err, errlen, "at most %d exceptions", HL_HOURS_EXCEPTIONS);
		return HL_EINVAL;
	}
	h->exc[h->nexc].date = date;
	memset(&h->exc[h->nexc].day, 0, sizeof(h->exc[h->nexc].day));
	while (*sp == ' ' || *sp == '\t')
		sp++;
	if (strcmp(sp, "closed") != 0 &&
	    ranges(&h->exc[h->nexc].day, sp, entry, err, errlen) != 0)
		return HL_EINVAL;
	sort_day(&h->exc[h->nexc].day);
	h->nexc++;
	return 0;
}

int hl_hours_parse(struct hl_hours *h, const char *weekly,
		   const char *exceptions, char *err, size_t errlen)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->timezone, sizeof(h->timezone), "UTC");
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
	return 0;
}

int hl_hours_timezone_ok(const char *name, char *err, size_t errlen)
{
	char path[256];
	struct stat st;

	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p)) {
			hl_set_err(err, errlen, "a time zone is an IANA name like "
				   "Europe/London");
			return HL_EINVAL;
		}
	if (!*name || name[0] == '/' || strstr(name, "..") || strlen(name) > 63) {
		hl_set_err(err, errlen, "a time zone is an IANA name like "
			   "Europe/London");
		return HL_EINVAL;
	}
	if (strcmp(name, "UTC") == 0)
		return 0;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		hl_set_err(err, errlen, "no time zone %s in /usr/share/zoneinfo "
			   "(is tzdata installed?)", name);
		return HL_EINVAL;
	}
	return 0;
}

void hl_hours_use_timezone(const char *name)
{
	char tz[80];

	/* ":" + name reads /usr/share/zoneinfo/<name> (glibc). */
	snprintf(tz, sizeof(tz), ":%s", name && *name ? name : "UTC");
	setenv("TZ", tz, 1);
	tzset();
}

int hl_hours_init(struct hl_hours *h, const struct hl_config *cfg, char *err,
		  size_t errlen)
{
	char why[256];

	if (hl_hours_parse(h, cfg->hours_weekly, cfg->hours_exceptions, why,
			   sizeof(why)) != 0) {
		hl_set_err(err, errlen, "config: hours: %s", why);
		return HL_EINVAL;
	}
	snprintf(h->timezone, sizeof(h->timezone), "%s",
		 cfg->hours_timezone[0] ? cfg->hours_timezone : "UTC");
	return 0;
}

/* ---- evaluation -------------------------------------------------------------- */

static const struct hl_hours_day *day_for(const struct hl_hours *h, int date,
					  int wday)
{
	for (int i = 0; i < h->nexc; i++)
		if (h->exc[i].date == date)
			return &h->exc[i].day;
	return &h->week[wday];
}

/* The instant of local wall time "minutes after midnight" of the date in
 * noon (a normalised struct tm at 12:00 of that date). */
static int64_t at(const struct tm *noon, int minutes)
{
	struct tm x = *noon;

	x.tm_hour = 0;
	x.tm_min = minutes;
	x.tm_sec = 0;
	x.tm_isdst = -1;
	return (int64_t)mktime(&x);
}

bool hl_hours_open(const struct hl_hours *h, int64_t t_ms, int64_t *closes_at,
		   int64_t *opens_at)
{
	time_t now = (time_t)(t_ms / 1000);
	int64_t t = (int64_t)now, cur_s = -1, cur_e = -1;
	bool done = false;
	struct tm lt;

	if (closes_at)
		*closes_at = 0;
	if (opens_at)
		*opens_at = 0;
	if (h->always)
		return true;
	localtime_r(&now, &lt);
	/* Ranges in order of start (each day's start is before 24:00, so day
	 * by day and then by start is time order), merged when they touch or
	 * overlap; the first merged interval that ends after t decides. From
	 * yesterday, for its ranges past midnight. */
	for (int d = -1; d <= LOOKAHEAD_DAYS && !done; d++) {
		struct tm noon = lt;
		const struct hl_hours_day *day;

		noon.tm_mday += d;
		noon.tm_hour = 12;
		noon.tm_min = noon.tm_sec = 0;
		noon.tm_isdst = -1;
		if (mktime(&noon) == (time_t)-1)
			return false;
		day = day_for(h, (noon.tm_year + 1900) * 10000 +
				 (noon.tm_mon + 1) * 100 + noon.tm_mday,
			      noon.tm_wday);
		for (int i = 0; i < day->n; i++) {
			int64_t s = at(&noon, day->r[i].start),
				e = at(&noon, day->r[i].end);

			if (e <= s)
				continue; /* a range lost in a DST gap */
			if (cur_s >= 0 && s <= cur_e) {
				if (e > cur_e)
					cur_e = e;
				continue;
			}
			if (cur_s >= 0 && cur_e > t) {
				done = true;
				break;
			}
			cur_s = s;
			cur_e = e;
		}
		/* Nothing from a later day can touch an interval that ends
		 * before the next midnight. */
		if (!done && cur_s >= 0 && cur_e > t && at(&noon, DAY_MIN) > cur_e)
			done = true;
	}
	if (cur_s < 0 || cur_e <= t)
		return false; /* never opens again within the look-ahead */
	if (t >= cur_s) {
		if (closes_at && done) /* else: open past the look-ahead */
			*closes_at = cur_e * 1000;
		return true;
	}
	if (opens_at)
		*opens_at = cur_s * 1000;
	return false;
}

/* ---- line.status --------------------------------------------------------------- */

void hl_line_status(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_server *srv = s->srv;
	int64_t closes = 0, opens = 0;
	bool open = hl_hours_open(&srv->hours, hl_now_ms(), &closes, &opens);
	const char *pk = hl_inbox_public_key(&srv->inbox);
	json_t *r = hl_proto_reply("line.status", m->id);

	json_object_set_new(r, "open", json_boolean(open));
	json_object_set_new(r, "closes_at", open && closes ? json_integer(closes)
							    : json_null());
	json_object_set_new(r, "opens_at", !open && opens ? json_integer(opens)
							   : json_null());
	json_object_set_new(r, "queue_full", json_boolean(
		hl_queue_length(&srv->contacts.queue) >= (uint32_t)srv->cfg.queue_max));
	json_object_set_new(r, "inbox", json_boolean(pk != NULL));
	json_object_set_new(r, "inbox_pk", pk ? json_string(pk) : json_null());
	json_object_set_new(r, "timezone", json_string(srv->hours.timezone));
	hl_session_send(s, r);
	json_decref(r);
}
