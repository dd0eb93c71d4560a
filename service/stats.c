/* stats.c: statistics without personal data (stats.h). The query core
 * (hl_stats_compute and the JSON / CSV writers) runs on whatever thread
 * calls it, on a connection of the caller's; hl_stats_get runs it for the
 * daemon on the libuv threadpool so the event loop never waits on disk.
 *
 * One SELECT reads only the columns the aggregates need, in created_at
 * order (the conversation_by_created index gives that order without a
 * sort), so each period is complete when the next begins: its durations are
 * sorted for the percentiles and the buffers reused. Memory is therefore
 * bounded by the busiest period, not by the range. */
#include "stats.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "common.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "session.h"

/* Slots of the name hash: a power of two, at most half full. */
#define NAME_SLOTS (2 * HL_STATS_NAMES_MAX)
/* Indexes of the names interned first. */
#define NAME_INVALID 0u  /* "invalid": a malformed id, or one over the cap */
#define NAME_NONE 1u     /* "none": no outcome yet */

static const char *const by_names[] = {"day", "hour"};
static const char *const risk_names[HL_STATS_RISK_N] = {
	"standard", "elevated", "high", "immediate",
};
static const char *const age_names[HL_STATS_AGE_N] = {
	"u13", "13_15", "16_17", "18p", "none",
};
static const char *const hist_names[HL_STATS_HIST_N] = {
	"lt1m", "1m_5m", "5m_15m", "15m_60m", "ge60m",
};
/* Lower edges (seconds) of the histogram bins after the first. */
static const uint32_t hist_edges[HL_STATS_HIST_N - 1] = {60, 300, 900, 3600};

/* Only the columns the aggregates need; never the id. */
const char hl_stats_sql[] =
	"SELECT created_at, accepted_at, ended_at, risk, age_band, topics, "
	"tags, outcome FROM conversation "
	"WHERE created_at >= ?1 AND created_at < ?2 ORDER BY created_at";

int64_t hl_stats_period_ms(enum hl_stats_by by)
{
	return by == HL_STATS_BY_HOUR ? HL_STATS_HOUR_MS : HL_STATS_DAY_MS;
}

const char *hl_stats_by_name(enum hl_stats_by by)
{
	return by == HL_STATS_BY_HOUR ? by_names[1] : by_names[0];
}

const char *hl_stats_risk_name(int risk)
{
	return risk >= 0 && risk < HL_STATS_RISK_N ? risk_names[risk] : "?";
}

const char *hl_stats_age_name(int band)
{
	return band >= 0 && band < HL_STATS_AGE_N ? age_names[band] : "?";
}

const char *hl_stats_hist_name(int bin)
{
	return bin >= 0 && bin < HL_STATS_HIST_N ? hist_names[bin] : "?";
}

int hl_stats_by_parse(const char *s, enum hl_stats_by *by)
{
	if (s && strcmp(s, "day") == 0)
		*by = HL_STATS_BY_DAY;
	else if (s && strcmp(s, "hour") == 0)
		*by = HL_STATS_BY_HOUR;
	else
		return HL_EINVAL;
	return 0;
}

int hl_stats_check_range(int64_t from, int64_t to, enum hl_stats_by by,
			 const char **field)
{
	int64_t p = hl_stats_period_ms(by);
	int64_t most = by == HL_STATS_BY_HOUR ? HL_STATS_MAX_HOURS
					      : HL_STATS_MAX_DAYS;
	const char *bad = NULL;

	if (from < 0 || from % p != 0)
		bad = "from";
	else if (to <= from || to % p != 0 || (to - from) / p > most)
		bad = "to";
	if (field)
		*field = bad;
	return bad ? HL_EINVAL : 0;
}

/* ---- interning tag and outcome ids -------------------------------------- */

/* An id as helplined writes them: 1..32 of [a-z0-9_]. */
static bool name_ok(const char *p, size_t n)
{
	if (n < 1 || n > HL_STATS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '_'))
			return false;
	}
	return true;
}

static uint32_t name_hash(const char *p, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 16777619u;
	}
	return h;
}

/* The index of the id p[0..n) in st->names, adding it when new. Malformed
 * ids, and new ones once HL_STATS_NAMES_MAX are known, are NAME_INVALID. */
static uint32_t name_index(struct hl_stats *st, const char *p, size_t n)
{
	uint32_t i;

	if (!name_ok(p, n))
		return NAME_INVALID;
	for (i = name_hash(p, n) & (NAME_SLOTS - 1); st->slots[i];
	     i = (i + 1) & (NAME_SLOTS - 1)) {
		const char *s = st->names[st->slots[i] - 1].s;

		if (memcmp(s, p, n) == 0 && s[n] == '\0')
			return st->slots[i] - 1;
	}
	if (st->nnames == HL_STATS_NAMES_MAX)
		return NAME_INVALID;
	memcpy(st->names[st->nnames].s, p, n);
	st->names[st->nnames].s[n] = '\0';
	st->slots[i] = ++st->nnames;
	return st->nnames - 1;
}

/* Adds one to (*v)[idx], growing the array (zero-filled). */
static int bump(uint32_t **v, uint32_t *len, uint32_t idx)
{
	if (idx >= *len) {
		uint32_t n = *len ? *len * 2 : 16;
		uint32_t *p;

		while (n <= idx)
			n *= 2;
		if (n > HL_STATS_NAMES_MAX)
			n = HL_STATS_NAMES_MAX;
		p = realloc(*v, n * sizeof(*p));
		if (!p)
			return HL_ENOMEM;
		memset(p + *len, 0, (n - *len) * sizeof(*p));
		*v = p;
		*len = n;
	}
	(*v)[idx]++;
	return 0;
}

/* ---- durations ---------------------------------------------------------- */

/* Appends a duration of ms milliseconds (as whole seconds) to a buffer and
 * its bin to d's histogram. */
static int push_duration(uint32_t **v, size_t *n, size_t *cap,
			 struct hl_stats_dist *d, int64_t ms)
{
	uint32_t s;
	int bin = 0;

	if (ms < 0)
		ms = 0; /* a clock stepped back: count it as no time */
	s = ms / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ms / 1000);
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		uint32_t *p = realloc(*v, c * sizeof(*p));

		if (!p)
			return HL_ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = s;
	while (bin < HL_STATS_HIST_N - 1 && s >= hist_edges[bin])
		bin++;
	d->hist[bin]++;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* The nearest-rank percentile pct of n sorted values. */
static uint32_t rank(const uint32_t *v, size_t n, unsigned pct)
{
	size_t r = (n * pct + 99) / 100; /* ceil(n * pct / 100), >= 1 */

	return v[r - 1];
}

/* Sets count, p50, p90 and max of d from the n durations in v (sorted
 * here), and empties the buffer. */
static void dist_finish(struct hl_stats_dist *d, uint32_t *v, size_t *n)
{
	d->count = (uint32_t)*n;
	if (*n) {
		qsort(v, *n, sizeof(*v), cmp_u32);
		d->p50 = rank(v, *n, 50);
		d->p90 = rank(v, *n, 90);
		d->max = v[*n - 1];
	}
	*n = 0;
}

static void period_finish(struct hl_stats *st, struct hl_stats_period *p)
{
	if (!p)
		return;
	dist_finish(&p->wait, st->wait_v, &st->wait_n);
	dist_finish(&p->handle, st->handle_v, &st->handle_n);
}

/* ---- the query ---------------------------------------------------------- */

/* Counts each id of the comma-separated list once per conversation: mark
 * holds, per name index, the number of the last row that counted it. */
static int count_tags(struct hl_stats *st, struct hl_stats_period *p,
		      uint32_t *mark, uint32_t row, const char *list)
{
	const char *q = list;

	while (q && *q) {
		size_t n = strcspn(q, ",");
		uint32_t idx;

		if (n) {
			idx = name_index(st, q, n);
			if (mark[idx] != row) {
				mark[idx] = row;
				if (bump(&p->tags, &p->tags_len, idx) != 0)
					return HL_ENOMEM;
			}
		}
		q += n;
		if (*q == ',')
			q++;
	}
	return 0;
}

static int age_band(const char *s)
{
	if (!s)
		return HL_STATS_AGE_N - 1;
	for (int i = 0; i < HL_STATS_AGE_N - 1; i++)
		if (strcmp(s, age_names[i]) == 0)
			return i;
	return HL_STATS_AGE_N - 1; /* not written by helplined: "none" */
}

/* Adds the current row of q (hl_stats_sql's columns) to its period. */
static int add_row(struct hl_stats *st, sqlite3_stmt *q, uint32_t *mark,
		   struct hl_stats_period **cur)
{
	int64_t p_ms = hl_stats_period_ms(st->by);
	int64_t created = sqlite3_column_int64(q, 0);
	bool accepted = sqlite3_column_type(q, 1) != SQLITE_NULL;
	bool ended = sqlite3_column_type(q, 2) != SQLITE_NULL;
	int64_t acc = sqlite3_column_int64(q, 1);
	int64_t end = sqlite3_column_int64(q, 2);
	int64_t risk = sqlite3_column_int64(q, 3);
	const char *outcome;
	struct hl_stats_period *p;
	uint32_t row;
	int rc;

	if (created < st->from || created >= st->to)
		return HL_ESTORE; /* the WHERE clause rules it out */
	p = &st->periods[(created - st->from) / p_ms];
	if (*cur && p < *cur)
		return HL_ESTORE; /* not in created_at order after all */
	if (p != *cur) {
		period_finish(st, *cur); /* created_at order: it is complete */
		*cur = p;
	}
	row = (uint32_t)++st->rows;
	if (row == 0) { /* wrapped: start the marks afresh */
		memset(mark, 0, HL_STATS_NAMES_MAX * sizeof(*mark));
		row = 1;
	}
	p->conversations++;
	if (accepted) {
		p->answered++;
		rc = push_duration(&st->wait_v, &st->wait_n, &st->wait_cap,
				   &p->wait, acc - created);
		if (rc == 0 && ended)
			rc = push_duration(&st->handle_v, &st->handle_n,
					   &st->handle_cap, &p->handle,
					   end - acc);
		if (rc != 0)
			return rc;
	} else if (ended) {
		p->unanswered++;
	} else {
		p->open++;
	}
	p->by_risk[risk < 0 ? 0 : risk >= HL_STATS_RISK_N ?
		   HL_STATS_RISK_N - 1 : risk]++;
	p->by_age[age_band((const char *)sqlite3_column_text(q, 4))]++;
	rc = count_tags(st, p, mark, row,
			(const char *)sqlite3_column_text(q, 5));
	if (rc == 0)
		rc = count_tags(st, p, mark, row,
				(const char *)sqlite3_column_text(q, 6));
	if (rc != 0)
		return rc;
	outcome = (const char *)sqlite3_column_text(q, 7);
	return bump(&p->outcomes, &p->outcomes_len,
		    outcome ? name_index(st, outcome, strlen(outcome))
			    : NAME_NONE);
}

int hl_stats_compute(sqlite3 *db, int64_t from, int64_t to,
		     enum hl_stats_by by, struct hl_stats *out, char *err,
		     size_t errlen)
{
	struct hl_stats_period *cur = NULL;
	sqlite3_stmt *q = NULL;
	uint32_t *mark = NULL;
	int rc, src;

	out->from = from;
	out->to = to;
	out->by = by;
	if (hl_stats_check_range(from, to, by, NULL) != 0) {
		hl_set_err(err, errlen, "bad range");
		return HL_EINVAL;
	}
	out->nperiods = (uint32_t)((to - from) / hl_stats_period_ms(by));
	out->periods = calloc(out->nperiods, sizeof(*out->periods));
	out->names = calloc(HL_STATS_NAMES_MAX, sizeof(*out->names));
	out->slots = calloc(NAME_SLOTS, sizeof(*out->slots));
	mark = calloc(HL_STATS_NAMES_MAX, sizeof(*mark));
	if (!out->periods || !out->names || !out->slots || !mark) {
		rc = HL_ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < out->nperiods; i++)
		out->periods[i].start = from + (int64_t)i * hl_stats_period_ms(by);
	/* Interned first, so their indexes are fixed. */
	name_index(out, "invalid", 7);
	name_index(out, "none", 4);

	src = sqlite3_prepare_v2(db, hl_stats_sql, -1, &q, NULL);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(q, 1, from);
	if (src == SQLITE_OK)
		src = sqlite3_bind_int64(q, 2, to);
	if (src != SQLITE_OK) {
		hl_set_err(err, errlen, "cannot query conversations: %s",
			   sqlite3_errmsg(db));
		rc = src == SQLITE_NOMEM ? HL_ENOMEM : HL_ESTORE;
		goto out;
	}
	rc = 0;
	while (rc == 0 && (src = sqlite3_step(q)) == SQLITE_ROW)
		rc = add_row(out, q, mark, &cur);
	if (rc == 0 && src != SQLITE_DONE) {
		hl_set_err(err, errlen, "cannot read conversations: %s",
			   sqlite3_errmsg(db));
		rc = src == SQLITE_NOMEM ? HL_ENOMEM : HL_ESTORE;
	} else if (rc == HL_ESTORE) {
		hl_set_err(err, errlen, "rows came outside the range or out "
			   "of order");
	} else if (rc != 0) {
		hl_set_err(err, errlen, "%s", hl_strerror(rc));
	}
	period_finish(out, cur);
out:
	sqlite3_finalize(q);
	free(mark);
	return rc;
}

void hl_stats_free(struct hl_stats *st)
{
	if (st->periods)
		for (uint32_t i = 0; i < st->nperiods; i++) {
			free(st->periods[i].tags);
			free(st->periods[i].outcomes);
		}
	free(st->periods);
	free(st->names);
	free(st->slots);
	free(st->wait_v);
	free(st->handle_v);
	memset(st, 0, sizeof(*st));
}

/* ---- output ------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b)
{
	const struct hl_stats_name *x = *(const struct hl_stats_name *const *)a;
	const struct hl_stats_name *y = *(const struct hl_stats_name *const *)b;

	return strcmp(x->s, y->s);
}

/* The names in name order (a new array of st->nnames pointers into
 * st->names; free it), or NULL on ENOMEM. */
static const struct hl_stats_name **sorted_names(const struct hl_stats *st)
{
	const struct hl_stats_name **v = malloc((st->nnames ? st->nnames : 1) *
						sizeof(*v));

	if (!v)
		return NULL;
	for (uint32_t i = 0; i < st->nnames; i++)
		v[i] = &st->names[i];
	qsort(v, st->nnames, sizeof(*v), cmp_name);
	return v;
}

static uint32_t count_of(const uint32_t *v, uint32_t len, uint32_t idx)
{
	return idx < len ? v[idx] : 0;
}

/* Sets key of o to v (consumed); false when either is NULL or it fails. */
static bool set(json_t *o, const char *key, json_t *v)
{
	if (!o) {
		json_decref(v);
		return false;
	}
	return json_object_set_new(o, key, v) == 0;
}

static json_t *dist_json(const struct hl_stats_dist *d)
{
	json_t *o = json_object(), *h = json_object();
	bool ok = true;

	ok &= set(o, "count", json_integer(d->count));
	ok &= set(o, "p50", d->count ? json_integer(d->p50) : json_null());
	ok &= set(o, "p90", d->count ? json_integer(d->p90) : json_null());
	ok &= set(o, "max", d->count ? json_integer(d->max) : json_null());
	for (int i = 0; i < HL_STATS_HIST_N; i++)
		ok &= set(h, hist_names[i], json_integer(d->hist[i]));
	ok &= set(o, "histogram", json_incref(h));
	json_decref(h);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* {name: count} of the non-zero entries of v, in name order. */
static json_t *names_json(const struct hl_stats_name **order, uint32_t n,
			  const struct hl_stats_name *base, const uint32_t *v,
			  uint32_t len)
{
	json_t *o = json_object();

	for (uint32_t i = 0; o && i < n; i++) {
		uint32_t c = count_of(v, len, (uint32_t)(order[i] - base));

		if (c && !set(o, order[i]->s, json_integer(c))) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *period_json(const struct hl_stats *st,
			   const struct hl_stats_period *p,
			   const struct hl_stats_name **order)
{
	json_t *o = json_object(), *r = json_object(), *a = json_object();
	bool ok = true;

	ok &= set(o, "start", json_integer(p->start));
	ok &= set(o, "conversations", json_integer(p->conversations));
	ok &= set(o, "answered", json_integer(p->answered));
	ok &= set(o, "unanswered", json_integer(p->unanswered));
	ok &= set(o, "open", json_integer(p->open));
	for (int i = 0; i < HL_STATS_RISK_N; i++)
		ok &= set(r, risk_names[i], json_integer(p->by_risk[i]));
	for (int i = 0; i < HL_STATS_AGE_N; i++)
		ok &= set(a, age_names[i], json_integer(p->by_age[i]));
	ok &= set(o, "by_risk", json_incref(r));
	ok &= set(o, "by_age_band", json_incref(a));
	ok &= set(o, "by_tag", names_json(order, st->nnames, st->names,
					  p->tags, p->tags_len));
	ok &= set(o, "by_outcome", names_json(order, st->nnames, st->names,
					      p->outcomes, p->outcomes_len));
	ok &= set(o, "wait_s", dist_json(&p->wait));
	ok &= set(o, "handle_s", dist_json(&p->handle));
	json_decref(r);
	json_decref(a);
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *hl_stats_to_json(const struct hl_stats *st)
{
	const struct hl_stats_name **order = sorted_names(st);
	json_t *arr = order ? json_array() : NULL;

	for (uint32_t i = 0; arr && i < st->nperiods; i++) {
		const struct hl_stats_period *p = &st->periods[i];

		if (p->conversations &&
		    json_array_append_new(arr, period_json(st, p, order)) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	free(order);
	return arr;
}

int hl_stats_csv_field(FILE *f, const char *field)
{
	if (strpbrk(field, ",\"\r\n") == NULL)
		return fputs(field, f) < 0 ? HL_EIO : 0;
	if (fputc('"', f) == EOF)
		return HL_EIO;
	for (const char *p = field; *p; p++)
		if ((*p == '"' && fputc('"', f) == EOF) || fputc(*p, f) == EOF)
			return HL_EIO;
	return fputc('"', f) == EOF ? HL_EIO : 0;
}

/* One line: period_start,metric,key,value. */
static void csv_line(FILE *f, const char *start, const char *metric,
		     const char *key, uint32_t value)
{
	fputs(start, f);
	fputc(',', f);
	hl_stats_csv_field(f, metric);
	fputc(',', f);
	hl_stats_csv_field(f, key);
	fprintf(f, ",%" PRIu32 "\n", value);
}

static void csv_dist(FILE *f, const char *start, const char *name,
		     const struct hl_stats_dist *d)
{
	char m[32];

	snprintf(m, sizeof(m), "%s_s_count", name);
	csv_line(f, start, m, "", d->count);
	if (d->count) {
		snprintf(m, sizeof(m), "%s_s_p50", name);
		csv_line(f, start, m, "", d->p50);
		snprintf(m, sizeof(m), "%s_s_p90", name);
		csv_line(f, start, m, "", d->p90);
		snprintf(m, sizeof(m), "%s_s_max", name);
		csv_line(f, start, m, "", d->max);
	}
	snprintf(m, sizeof(m), "%s_hist", name);
	for (int i = 0; i < HL_STATS_HIST_N; i++)
		csv_line(f, start, m, hist_names[i], d->hist[i]);
}

static void csv_names(FILE *f, const char *start, const char *metric,
		      const struct hl_stats *st,
		      const struct hl_stats_name **order, const uint32_t *v,
		      uint32_t len)
{
	for (uint32_t i = 0; i < st->nnames; i++) {
		uint32_t c = count_of(v, len, (uint32_t)(order[i] - st->names));

		if (c)
			csv_line(f, start, metric, order[i]->s, c);
	}
}

int hl_stats_write_csv(const struct hl_stats *st, FILE *f)
{
	const struct hl_stats_name **order = sorted_names(st);

	if (!order)
		return HL_ENOMEM;
	fputs("period_start,metric,key,value\n", f);
	for (uint32_t i = 0; i < st->nperiods; i++) {
		const struct hl_stats_period *p = &st->periods[i];
		time_t t = (time_t)(p->start / 1000);
		char start[32];
		struct tm tm;

		if (!p->conversations)
			continue;
		if (!gmtime_r(&t, &tm) ||
		    strftime(start, sizeof(start), "%Y-%m-%dT%H:%M:%SZ",
			     &tm) == 0)
			snprintf(start, sizeof(start), "%" PRId64, p->start);
		csv_line(f, start, "conversations", "", p->conversations);
		csv_line(f, start, "answered", "", p->answered);
		csv_line(f, start, "unanswered", "", p->unanswered);
		csv_line(f, start, "open", "", p->open);
		for (int k = 0; k < HL_STATS_RISK_N; k++)
			csv_line(f, start, "risk", risk_names[k], p->by_risk[k]);
		for (int k = 0; k < HL_STATS_AGE_N; k++)
			csv_line(f, start, "age_band", age_names[k],
				 p->by_age[k]);
		csv_names(f, start, "tag", st, order, p->tags, p->tags_len);
		csv_names(f, start, "outcome", st, order, p->outcomes,
			  p->outcomes_len);
		csv_dist(f, start, "wait", &p->wait);
		csv_dist(f, start, "handle", &p->handle);
	}
	free(order);
	return fflush(f) == 0 && !ferror(f) ? 0 : HL_EIO;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int hl_stats_parse_day(const char *s, int64_t *ms)
{
	static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30,
					   31, 31, 30, 31, 30, 31};
	unsigned y = 0, m, d, dim;

	if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return HL_EINVAL;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return HL_EINVAL;
	for (int i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (y < 1970 || m < 1 || m > 12)
		return HL_EINVAL;
	dim = mdays[m - 1] +
	      (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
	if (d < 1 || d > dim)
		return HL_EINVAL;
	*ms = days_from_civil(y, m, d) * HL_STATS_DAY_MS;
	return 0;
}

/* ---- stats.get in the daemon -------------------------------------------- */

/* One stats.get on the threadpool. The worker fills the result fields; the
 * loop thread reads them in stats_after. */
struct stats_job {
	uv_work_t req;
	struct hl_session *s;          /* referenced until stats_after */
	char id[HL_PROTO_ID_MAX + 1];  /* the request id */
	char db[HL_CONFIG_PATH_MAX + 32]; /* the database, opened read-only */
	int64_t from, to;              /* the range, checked */
	enum hl_stats_by by;
	size_t max_bytes;              /* largest reply: ws.outq_max */
	/* worker results */
	int status;                    /* 0, HL_ERANGE (reply too large),
					* HL_ENOMEM or HL_ESTORE */
	json_t *reply;                 /* the "stats" reply when status is 0 */
	size_t reply_bytes;            /* its encoded size */
	uint64_t rows;                 /* conversations read */
	uint32_t periods;              /* non-empty periods in the reply */
	uint64_t took_us;              /* time on the worker */
	char err[256];                 /* why it failed, for the log */
};

static void stats_work(uv_work_t *req)
{
	struct stats_job *j = hl_container_of(req, struct stats_job, req);
	uint64_t t0 = uv_hrtime();
	struct hl_stats st;
	json_t *periods = NULL;
	sqlite3 *db = NULL;
	int src;

	hl_thread_background();
	memset(&st, 0, sizeof(st));
	/* Its own read-only connection: in WAL mode it reads a consistent
	 * snapshot while the store's writer commits. Only this thread uses it
	 * (NOMUTEX: no lock per column read, ~10% of the time). */
	src = sqlite3_open_v2(j->db, &db,
			      SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (src != SQLITE_OK) {
		snprintf(j->err, sizeof(j->err), "cannot open the database: %s",
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
		j->status = HL_ESTORE;
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	j->status = hl_stats_compute(db, j->from, j->to, j->by, &st, j->err,
				     sizeof(j->err));
	j->rows = st.rows;
	if (j->status != 0)
		goto out;
	periods = hl_stats_to_json(&st);
	j->reply = hl_proto_reply("stats", j->id);
	if (!periods || !set(j->reply, "by", json_string(hl_stats_by_name(j->by))) ||
	    !set(j->reply, "from", json_integer(j->from)) ||
	    !set(j->reply, "to", json_integer(j->to))) {
		j->status = HL_ENOMEM;
		goto out;
	}
	j->periods = (uint32_t)json_array_size(periods);
	if (!set(j->reply, "periods", periods)) {
		periods = NULL;
		j->status = HL_ENOMEM;
		goto out;
	}
	periods = NULL;
	/* The size without building the text (jansson computes it). */
	j->reply_bytes = json_dumpb(j->reply, NULL, 0, JSON_COMPACT);
	if (j->reply_bytes == 0)
		j->status = HL_ENOMEM;
	else if (j->reply_bytes > j->max_bytes)
		j->status = HL_ERANGE;
out:
	if (j->status != 0) {
		json_decref(j->reply);
		j->reply = NULL;
	}
	json_decref(periods);
	hl_stats_free(&st);
	sqlite3_close(db);
	j->took_us = (uv_hrtime() - t0) / 1000;
}

static void stats_after(uv_work_t *req, int status)
{
	struct stats_job *j = hl_container_of(req, struct stats_job, req);
	struct hl_session *s = j->s;

	s->srv->stats_inflight--;
	if (status == UV_ECANCELED)
		j->status = HL_ECLOSED;
	if (!s->wsi) {
		/* The socket went away meanwhile: nobody to answer. */
	} else if (j->status == 0 &&
		   s->out_len + j->reply_bytes > s->srv->cfg.ws_outq_max) {
		hl_session_error(s, j->id, HL_ERR_BUSY,
				 "your connection is still receiving; try "
				 "again shortly", NULL);
	} else if (j->status == 0) {
		hl_session_send(s, j->reply);
		hl_info("stats.get", "conn=%s by=%s hours=%" PRId64 " rows=%"
			PRIu64 " periods=%" PRIu32 " bytes=%zu us=%" PRIu64,
			s->id_str, hl_stats_by_name(j->by),
			(int64_t)((j->to - j->from) / HL_STATS_HOUR_MS), j->rows,
			j->periods, j->reply_bytes, j->took_us);
	} else if (j->status == HL_ERANGE) {
		hl_session_error(s, j->id, HL_ERR_BAD_FIELD,
				 "too much for one reply: ask for a shorter "
				 "range", "to");
	} else if (j->status == HL_ENOMEM) {
		hl_session_error(s, j->id, HL_ERR_INTERNAL, "out of memory",
				 NULL);
	} else if (j->status == HL_ECLOSED) {
		hl_session_error(s, j->id, HL_ERR_SHUTTING_DOWN,
				 "the server is shutting down", NULL);
	} else {
		hl_warn("stats.failed", "conn=%s status=%s why=%s", s->id_str,
			hl_strerror(j->status), j->err);
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED,
				 "could not read the statistics; try again",
				 NULL);
	}
	json_decref(j->reply);
	hl_session_unref(s);
	free(j);
}

void hl_stats_get(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_msg_stats *q = &m->u.stats;
	const char *field = NULL;
	struct stats_job *j;
	enum hl_stats_by by;

	if (hl_stats_by_parse(q->by, &by) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "by must be day or hour", "by");
		return;
	}
	if (hl_stats_check_range(q->from, q->to, by, &field) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 by == HL_STATS_BY_DAY ?
				 "from and to must be UTC midnights, from < "
				 "to, at most 366 days apart" :
				 "from and to must be whole UTC hours, from "
				 "< to, at most 31 days apart", field);
		return;
	}
	if (s->srv->stats_inflight >= HL_STATS_INFLIGHT) {
		hl_session_error(s, m->id, HL_ERR_BUSY,
				 "statistics are being computed for others; "
				 "try again shortly", NULL);
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j || hl_config_db_path(&s->srv->cfg, j->db, sizeof(j->db)) != 0) {
		free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL,
				 "cannot start the query", NULL);
		return;
	}
	j->s = s;
	snprintf(j->id, sizeof(j->id), "%s", m->id);
	j->from = q->from;
	j->to = q->to;
	j->by = by;
	/* A bigger reply could never be queued (hl_session_send would close
	 * the connection as too slow). */
	j->max_bytes = s->srv->cfg.ws_outq_max;
	hl_session_ref(s);
	s->srv->stats_inflight++;
	if (uv_queue_work(&s->srv->loop, &j->req, stats_work,
			  stats_after) != 0) {
		s->srv->stats_inflight--;
		free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL,
				 "cannot start the query", NULL);
		hl_session_unref(s);
	}
}
