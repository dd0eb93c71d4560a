/* test_stats.c: statistics without personal data (service/stats.c) on a
 * database made by the real migrations, with conversations inserted by plain
 * SQL at known times: range checks and date parsing, the counts (answered,
 * unanswered, open; risk, age band, tags once per conversation, outcomes),
 * nearest-rank percentiles and the histogram's edges, day and hour
 * bucketing at the edges of the range and of periods, malformed ids and the
 * cap on distinct ids, the JSON shape and the CSV (exact text, quoting), a
 * read-only reader beside an open write transaction (WAL), the query plan
 * (index, no sort), and that no conversation id or unaggregated column
 * reaches any output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"
#include "stats.h"
#include "store.h"
#include "testutil.h"

#define D0 1795305600000LL  /* 2026-11-22T00:00:00Z */
#define DAY HL_STATS_DAY_MS
#define HOUR HL_STATS_HOUR_MS
#define MINUTE (60LL * 1000)
#define SEC 1000LL
#define NONE (-1LL)          /* a NULL time */

/* ---- fixture ------------------------------------------------------------ */

static struct hl_test_store E;
static sqlite3 *W;           /* the test's writable connection */

static int group_setup(void **state)
{
	(void)state;
	return hl_test_group_begin("stats", HL_LOG_ERROR);
}

/* A database through the real migrations (the store opens and closes it),
 * then a plain connection of the test's own to insert rows. */
static int test_setup(void **state)
{
	(void)state;
	hl_test_store_open(&E, "stats", 7);
	hl_test_store_close(&E);
	assert_int_equal(sqlite3_open_v2(E.path, &W, SQLITE_OPEN_READWRITE,
					 NULL), SQLITE_OK);
	sqlite3_busy_timeout(W, 5000);
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	assert_int_equal(sqlite3_close(W), SQLITE_OK);
	W = NULL;
	return 0;
}

static void exec(const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(W, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

/* One conversation. Times NONE are NULL; strings NULL are NULL (topics
 * NULL is ''). The state follows the times, as conversation.c would set
 * it. Returns its id. */
static int64_t add_id(int64_t id, int64_t created, int64_t accepted,
		      int64_t ended, int risk, const char *topics,
		      const char *age, const char *tags, const char *outcome)
{
	sqlite3_stmt *s;
	const char *state = outcome ? "wrapped" : ended != NONE ? "ended" :
			    accepted != NONE ? "active" : "queued";

	assert_int_equal(sqlite3_prepare_v2(W,
		"INSERT INTO conversation(id, created_at, accepted_at, "
		"ended_at, state, state_at, risk, topics, age_band, tags, "
		"outcome, language, danger_now) "
		"VALUES(?1, ?2, ?3, ?4, ?5, ?2, ?6, ?7, ?8, ?9, ?10, 'xx-YY', 1)",
		-1, &s, NULL), SQLITE_OK);
	if (id)
		sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, created);
	if (accepted != NONE)
		sqlite3_bind_int64(s, 3, accepted);
	if (ended != NONE)
		sqlite3_bind_int64(s, 4, ended);
	sqlite3_bind_text(s, 5, state, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, risk);
	sqlite3_bind_text(s, 7, topics ? topics : "", -1, SQLITE_STATIC);
	if (age)
		sqlite3_bind_text(s, 8, age, -1, SQLITE_STATIC);
	if (tags)
		sqlite3_bind_text(s, 9, tags, -1, SQLITE_STATIC);
	if (outcome)
		sqlite3_bind_text(s, 10, outcome, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		fail_msg("insert: %s", sqlite3_errmsg(W));
	sqlite3_finalize(s);
	return sqlite3_last_insert_rowid(W);
}

static int64_t add(int64_t created, int64_t accepted, int64_t ended,
		   int risk, const char *topics, const char *age,
		   const char *tags, const char *outcome)
{
	return add_id(0, created, accepted, ended, risk, topics, age, tags,
		      outcome);
}

/* An answered, ended conversation with a wait and a handling time. */
static void add_timed(int64_t created, int64_t wait_ms, int64_t handle_ms)
{
	add(created, created + wait_ms, created + wait_ms + handle_ms, 0,
	    NULL, NULL, NULL, NULL);
}

/* Computes [from, to) on a read-only connection; asserts success. */
static void compute(int64_t from, int64_t to, enum hl_stats_by by,
		    struct hl_stats *st)
{
	sqlite3 *db = hl_test_plain(E.path);
	char err[256] = "";

	memset(st, 0, sizeof(*st));
	if (hl_stats_compute(db, from, to, by, st, err, sizeof(err)) != 0)
		fail_msg("compute: %s", err);
	sqlite3_close(db);
}

static uint32_t name_count(const struct hl_stats *st, const uint32_t *v,
			   uint32_t len, const char *name)
{
	for (uint32_t i = 0; i < st->nnames; i++)
		if (strcmp(st->names[i].s, name) == 0)
			return i < len ? v[i] : 0;
	return 0;
}

#define TAG(st, p, name) name_count(st, (p)->tags, (p)->tags_len, name)
#define OUTCOME(st, p, name) \
	name_count(st, (p)->outcomes, (p)->outcomes_len, name)

/* The CSV of st as a string (malloc'd). */
static char *csv_of(const struct hl_stats *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(hl_stats_write_csv(st, f), 0);
	fclose(f);
	return buf;
}

/* The JSON of st, compact, as a string (malloc'd). */
static char *json_of(const struct hl_stats *st)
{
	json_t *j = hl_stats_to_json(st);
	char *s;

	assert_non_null(j);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

/* ---- ranges and dates --------------------------------------------------- */

static void test_range_checks(void **state)
{
	const char *f;

	(void)state;
	assert_int_equal(hl_stats_check_range(D0, D0 + DAY, HL_STATS_BY_DAY,
					      &f), 0);
	assert_null(f);
	assert_int_equal(hl_stats_check_range(D0, D0 + 366 * DAY,
					      HL_STATS_BY_DAY, &f), 0);
	assert_int_equal(hl_stats_check_range(D0, D0 + 367 * DAY,
					      HL_STATS_BY_DAY, &f), HL_EINVAL);
	assert_string_equal(f, "to");
	assert_int_equal(hl_stats_check_range(D0, D0, HL_STATS_BY_DAY, &f),
			 HL_EINVAL);
	assert_string_equal(f, "to");
	assert_int_equal(hl_stats_check_range(D0 + DAY, D0, HL_STATS_BY_DAY,
					      &f), HL_EINVAL);
	assert_string_equal(f, "to");
	/* Not a UTC midnight / whole hour. */
	assert_int_equal(hl_stats_check_range(D0 + HOUR, D0 + DAY,
					      HL_STATS_BY_DAY, &f), HL_EINVAL);
	assert_string_equal(f, "from");
	assert_int_equal(hl_stats_check_range(D0, D0 + DAY + 1,
					      HL_STATS_BY_DAY, &f), HL_EINVAL);
	assert_string_equal(f, "to");
	assert_int_equal(hl_stats_check_range(D0 + HOUR, D0 + 2 * HOUR,
					      HL_STATS_BY_HOUR, &f), 0);
	assert_int_equal(hl_stats_check_range(D0 + 1, D0 + HOUR,
					      HL_STATS_BY_HOUR, &f), HL_EINVAL);
	assert_string_equal(f, "from");
	assert_int_equal(hl_stats_check_range(D0, D0 + 744 * HOUR,
					      HL_STATS_BY_HOUR, &f), 0);
	assert_int_equal(hl_stats_check_range(D0, D0 + 745 * HOUR,
					      HL_STATS_BY_HOUR, &f), HL_EINVAL);
	assert_string_equal(f, "to");
	assert_int_equal(hl_stats_check_range(-DAY, D0, HL_STATS_BY_DAY, &f),
			 HL_EINVAL);
	assert_string_equal(f, "from");
	assert_int_equal(hl_stats_check_range(0, DAY, HL_STATS_BY_DAY, NULL),
			 0);
}

static void test_by_and_names(void **state)
{
	enum hl_stats_by by = HL_STATS_BY_HOUR;

	(void)state;
	assert_int_equal(hl_stats_by_parse("day", &by), 0);
	assert_int_equal(by, HL_STATS_BY_DAY);
	assert_int_equal(hl_stats_by_parse("hour", &by), 0);
	assert_int_equal(by, HL_STATS_BY_HOUR);
	assert_int_equal(hl_stats_by_parse("week", &by), HL_EINVAL);
	assert_int_equal(hl_stats_by_parse("Day", &by), HL_EINVAL);
	assert_int_equal(hl_stats_by_parse("", &by), HL_EINVAL);
	assert_int_equal(hl_stats_by_parse(NULL, &by), HL_EINVAL);
	assert_string_equal(hl_stats_by_name(HL_STATS_BY_DAY), "day");
	assert_string_equal(hl_stats_risk_name(3), "immediate");
	assert_string_equal(hl_stats_age_name(4), "none");
	assert_string_equal(hl_stats_hist_name(0), "lt1m");
	assert_string_equal(hl_stats_hist_name(4), "ge60m");
	assert_string_equal(hl_stats_hist_name(5), "?");
}

static void test_parse_day(void **state)
{
	static const char *const bad[] = {
		"", "2026-11-2", "2026-11-222", "2026/11/22", "2026-13-01",
		"2026-00-10", "2026-11-00", "2026-11-31", "2023-02-29",
		"2100-02-29", "1969-12-31", "+026-11-22", "2026-1a-22",
		"2026-11-22T00:00:00Z", " 2026-11-22", "2026-11-22 ",
	};
	int64_t ms = -1;

	(void)state;
	assert_int_equal(hl_stats_parse_day("2026-11-22", &ms), 0);
	assert_int_equal(ms, D0);
	assert_int_equal(hl_stats_parse_day("2024-02-29", &ms), 0);
	assert_int_equal(ms, 1709164800000LL);
	assert_int_equal(hl_stats_parse_day("2000-02-29", &ms), 0);
	assert_int_equal(ms, 951782400000LL);
	assert_int_equal(hl_stats_parse_day("1970-01-01", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(hl_stats_parse_day("9999-12-31", &ms), 0);
	assert_int_equal(ms, 253402214400000LL);
	for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++) {
		ms = 42;
		assert_int_equal(hl_stats_parse_day(bad[i], &ms), HL_EINVAL);
		assert_int_equal(ms, 42);
	}
	assert_int_equal(hl_stats_parse_day(NULL, &ms), HL_EINVAL);
}

/* compute refuses what check_range refuses, with nothing to leak. */
static void test_compute_refuses_bad_range(void **state)
{
	sqlite3 *db = hl_test_plain(E.path);
	struct hl_stats st;

	(void)state;
	memset(&st, 0, sizeof(st));
	assert_int_equal(hl_stats_compute(db, D0, D0, HL_STATS_BY_DAY, &st,
					  NULL, 0), HL_EINVAL);
	hl_stats_free(&st);
	assert_int_equal(hl_stats_compute(db, D0 + 1, D0 + DAY,
					  HL_STATS_BY_DAY, &st, NULL, 0),
			 HL_EINVAL);
	hl_stats_free(&st);
	hl_stats_free(&st); /* twice is safe */
	sqlite3_close(db);
}

/* ---- counts ------------------------------------------------------------- */

static void test_empty(void **state)
{
	struct hl_stats st;
	char *s;

	(void)state;
	compute(D0, D0 + 7 * DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.nperiods, 7);
	assert_int_equal(st.rows, 0);
	for (uint32_t i = 0; i < st.nperiods; i++) {
		assert_int_equal(st.periods[i].start, D0 + (int64_t)i * DAY);
		assert_int_equal(st.periods[i].conversations, 0);
	}
	s = json_of(&st);
	assert_string_equal(s, "[]");
	free(s);
	s = csv_of(&st);
	assert_string_equal(s, "period_start,metric,key,value\n");
	free(s);
	hl_stats_free(&st);
}

static void test_counts(void **state)
{
	struct hl_stats st;
	const struct hl_stats_period *p;
	uint32_t sum;

	(void)state;
	/* Answered and wrapped up. */
	add(D0 + 1 * HOUR, D0 + 1 * HOUR + 30 * SEC, D0 + 2 * HOUR, 2,
	    "sextortion,bullying", "13_15", "sextortion,self_harm",
	    "report_remove");
	/* Answered, ended, not wrapped up. */
	add(D0 + 2 * HOUR, D0 + 2 * HOUR + 2 * MINUTE, D0 + 3 * HOUR, 0,
	    "bullying", "u13", NULL, NULL);
	/* Answered, still active. */
	add(D0 + 3 * HOUR, D0 + 3 * HOUR + 10 * MINUTE, NONE, 1, "", NULL, NULL,
	    NULL);
	/* Left the queue unanswered. */
	add(D0 + 4 * HOUR, NONE, D0 + 4 * HOUR + 5 * MINUTE, 3,
	    "suicidal_thoughts", "16_17", NULL, NULL);
	add(D0 + 5 * HOUR, NONE, D0 + 5 * HOUR + 1 * MINUTE, 0, NULL, "18p",
	    NULL, NULL);
	/* Still waiting. */
	add(D0 + 6 * HOUR, NONE, NONE, 3, "sextortion", "13_15", NULL, NULL);
	/* Unanswered yet wrapped (a counsellor recorded the outcome). */
	add(D0 + 7 * HOUR, NONE, D0 + 7 * HOUR + 1 * SEC, 0, NULL, NULL,
	    "other", "disconnected");

	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.nperiods, 1);
	assert_int_equal(st.rows, 7);
	p = &st.periods[0];
	assert_int_equal(p->start, D0);
	assert_int_equal(p->conversations, 7);
	assert_int_equal(p->answered, 3);
	assert_int_equal(p->unanswered, 3);
	assert_int_equal(p->open, 1);
	assert_int_equal(p->answered + p->unanswered + p->open,
			 p->conversations);
	assert_int_equal(p->by_risk[0], 3);
	assert_int_equal(p->by_risk[1], 1);
	assert_int_equal(p->by_risk[2], 1);
	assert_int_equal(p->by_risk[3], 2);
	assert_int_equal(p->by_age[0], 1); /* u13 */
	assert_int_equal(p->by_age[1], 2); /* 13_15 */
	assert_int_equal(p->by_age[2], 1); /* 16_17 */
	assert_int_equal(p->by_age[3], 1); /* 18p */
	assert_int_equal(p->by_age[4], 2); /* none */
	/* Intake topics and wrap-up tags, once per conversation. */
	assert_int_equal(TAG(&st, p, "sextortion"), 2);
	assert_int_equal(TAG(&st, p, "bullying"), 2);
	assert_int_equal(TAG(&st, p, "self_harm"), 1);
	assert_int_equal(TAG(&st, p, "suicidal_thoughts"), 1);
	assert_int_equal(TAG(&st, p, "other"), 1);
	assert_int_equal(TAG(&st, p, "none"), 0);
	assert_int_equal(TAG(&st, p, "invalid"), 0);
	assert_int_equal(OUTCOME(&st, p, "report_remove"), 1);
	assert_int_equal(OUTCOME(&st, p, "disconnected"), 1);
	assert_int_equal(OUTCOME(&st, p, "none"), 5);
	sum = 0;
	for (uint32_t i = 0; i < p->outcomes_len; i++)
		sum += p->outcomes[i];
	assert_int_equal(sum, p->conversations);
	/* Waits of the answered three; handling of the two that ended. */
	assert_int_equal(p->wait.count, 3);
	assert_int_equal(p->wait.p50, 120);
	assert_int_equal(p->wait.p90, 600);
	assert_int_equal(p->wait.max, 600);
	assert_int_equal(p->wait.hist[0], 1);
	assert_int_equal(p->wait.hist[1], 1);
	assert_int_equal(p->wait.hist[2], 1);
	assert_int_equal(p->handle.count, 2);
	assert_int_equal(p->handle.p50, 3600 - 120);
	assert_int_equal(p->handle.max, 3600 - 30);
	assert_int_equal(p->handle.hist[3], 2);
	hl_stats_free(&st);
}

/* Nearest rank: the smallest value with at least pct% at or below it. */
static void test_percentiles(void **state)
{
	struct hl_stats st;
	const struct hl_stats_period *p;

	(void)state;
	/* Day 0: waits 1..10 s, inserted out of order. */
	for (int i = 10; i >= 1; i--)
		add_timed(D0 + i * SEC, i * SEC, 0);
	/* Day 1: one wait. */
	add_timed(D0 + DAY, 42 * SEC + 999, 7 * SEC);
	/* Day 2: two waits. */
	add_timed(D0 + 2 * DAY, 10 * SEC, 0);
	add_timed(D0 + 2 * DAY + 1, 20 * SEC, 0);
	/* Day 3: 100 waits of 0..99 s. */
	for (int i = 0; i < 100; i++)
		add_timed(D0 + 3 * DAY + i, (99 - i) * SEC, 0);
	/* Day 4: answered nobody. */
	add(D0 + 4 * DAY, NONE, NONE, 0, NULL, NULL, NULL, NULL);

	compute(D0, D0 + 5 * DAY, HL_STATS_BY_DAY, &st);
	p = &st.periods[0];
	assert_int_equal(p->wait.count, 10);
	assert_int_equal(p->wait.p50, 5);
	assert_int_equal(p->wait.p90, 9);
	assert_int_equal(p->wait.max, 10);
	p = &st.periods[1];
	assert_int_equal(p->wait.count, 1);
	assert_int_equal(p->wait.p50, 42); /* whole seconds, rounded down */
	assert_int_equal(p->wait.p90, 42);
	assert_int_equal(p->wait.max, 42);
	assert_int_equal(p->handle.p50, 7);
	p = &st.periods[2];
	assert_int_equal(p->wait.p50, 10);
	assert_int_equal(p->wait.p90, 20);
	p = &st.periods[3];
	assert_int_equal(p->wait.count, 100);
	assert_int_equal(p->wait.p50, 49);
	assert_int_equal(p->wait.p90, 89);
	assert_int_equal(p->wait.max, 99);
	p = &st.periods[4];
	assert_int_equal(p->conversations, 1);
	assert_int_equal(p->wait.count, 0);
	assert_int_equal(p->wait.p50, 0);
	assert_int_equal(p->wait.max, 0);
	assert_int_equal(p->handle.count, 0);
	hl_stats_free(&st);
}

/* Each bin holds [lower, upper) in whole seconds; negative durations (a
 * clock step) are 0. */
static void test_histogram_edges(void **state)
{
	static const struct {
		int64_t ms;
		int bin;
	} cases[] = {
		{0, 0}, {59999, 0}, {60000, 1}, {299999, 1}, {300000, 2},
		{899999, 2}, {900000, 3}, {3599999, 3}, {3600000, 4},
		{86400000LL * 3, 4}, {-5000, 0},
	};
	struct hl_stats st;
	const struct hl_stats_period *p;
	uint32_t want[HL_STATS_HIST_N] = {0};

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
		add_timed(D0 + (int64_t)i, cases[i].ms, cases[i].ms);
		want[cases[i].bin]++;
	}
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	p = &st.periods[0];
	for (int b = 0; b < HL_STATS_HIST_N; b++) {
		assert_int_equal(p->wait.hist[b], want[b]);
		assert_int_equal(p->handle.hist[b], want[b]);
	}
	assert_int_equal(p->wait.max, 3 * 86400);
	hl_stats_free(&st);
}

/* ---- periods ------------------------------------------------------------ */

static void test_day_buckets(void **state)
{
	struct hl_stats st;

	(void)state;
	add(D0 - 1, NONE, NONE, 0, NULL, NULL, NULL, NULL);        /* before */
	add(D0, NONE, NONE, 0, NULL, NULL, NULL, NULL);            /* day 0 */
	add(D0 + DAY - 1, NONE, NONE, 0, NULL, NULL, NULL, NULL);  /* day 0 */
	add(D0 + DAY, NONE, NONE, 0, NULL, NULL, NULL, NULL);      /* day 1 */
	add(D0 + 3 * DAY - 1, NONE, NONE, 0, NULL, NULL, NULL, NULL); /* 2 */
	add(D0 + 3 * DAY, NONE, NONE, 0, NULL, NULL, NULL, NULL);  /* after */
	/* A wait that crosses midnight counts on the day it started. */
	add(D0 + DAY - SEC, D0 + DAY + MINUTE, NONE, 0, NULL, NULL, NULL, NULL);

	compute(D0, D0 + 3 * DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.nperiods, 3);
	assert_int_equal(st.rows, 5);
	assert_int_equal(st.periods[0].conversations, 3);
	assert_int_equal(st.periods[0].wait.count, 1);
	assert_int_equal(st.periods[0].wait.max, 61);
	assert_int_equal(st.periods[1].conversations, 1);
	assert_int_equal(st.periods[1].wait.count, 0);
	assert_int_equal(st.periods[2].conversations, 1);
	assert_int_equal(st.periods[2].start, D0 + 2 * DAY);
	hl_stats_free(&st);

	/* The day before and after alone. */
	compute(D0 - DAY, D0, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.periods[0].conversations, 1);
	hl_stats_free(&st);
	compute(D0 + 3 * DAY, D0 + 4 * DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.periods[0].conversations, 1);
	hl_stats_free(&st);
}

static void test_hour_buckets(void **state)
{
	struct hl_stats st;
	char *js;

	(void)state;
	add(D0 + HOUR - 1, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	add(D0 + HOUR, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	add(D0 + 2 * HOUR - 1, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	add(D0 + 23 * HOUR + 59 * MINUTE, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	add(D0 + DAY, NONE, NONE, 0, NULL, NULL, NULL, NULL);

	compute(D0 + HOUR, D0 + DAY, HL_STATS_BY_HOUR, &st);
	assert_int_equal(st.nperiods, 23);
	assert_int_equal(st.rows, 3);
	assert_int_equal(st.periods[0].start, D0 + HOUR);
	assert_int_equal(st.periods[0].conversations, 2);
	assert_int_equal(st.periods[22].start, D0 + 23 * HOUR);
	assert_int_equal(st.periods[22].conversations, 1);
	for (int i = 1; i < 22; i++)
		assert_int_equal(st.periods[i].conversations, 0);
	/* Only the two non-empty hours are reported. */
	js = json_of(&st);
	assert_non_null(strstr(js, "\"start\":1795309200000"));
	assert_non_null(strstr(js, "\"start\":1795388400000"));
	{
		json_t *arr = json_loads(js, 0, NULL);

		assert_int_equal(json_array_size(arr), 2);
		json_decref(arr);
	}
	free(js);
	hl_stats_free(&st);

	/* A whole 31 days by hour, the longest range. */
	compute(D0, D0 + 744 * HOUR, HL_STATS_BY_HOUR, &st);
	assert_int_equal(st.nperiods, 744);
	assert_int_equal(st.rows, 5);
	assert_int_equal(st.periods[24].conversations, 1);
	hl_stats_free(&st);
}

/* ---- ids ---------------------------------------------------------------- */

static void test_malformed_ids(void **state)
{
	struct hl_stats st;
	const struct hl_stats_period *p;
	char *csv;

	(void)state;
	/* Not written by helplined: upper case, spaces, quotes, empty list
	 * entries, an id over 32 bytes. */
	add(D0, NONE, NONE, 0, "Bad Tag,ok_tag,,ok_tag,", NULL,
	    "x\"y,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,ok_tag", "Weird,Outcome");
	add(D0 + 1, NONE, NONE, 0, ",", NULL, "", "");
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	p = &st.periods[0];
	assert_int_equal(TAG(&st, p, "ok_tag"), 1);
	assert_int_equal(TAG(&st, p, "invalid"), 1); /* once per conversation */
	assert_int_equal(OUTCOME(&st, p, "invalid"), 2);
	for (uint32_t i = 0; i < st.nnames; i++)
		assert_null(strpbrk(st.names[i].s, " \",ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
	csv = csv_of(&st);
	assert_null(strstr(csv, "Bad"));
	assert_null(strstr(csv, "Weird"));
	assert_non_null(strstr(csv, "2026-11-22T00:00:00Z,tag,invalid,1\n"));
	free(csv);
	hl_stats_free(&st);
}

/* More distinct ids than HL_STATS_NAMES_MAX: the rest count as invalid. */
static void test_name_cap(void **state)
{
	struct hl_stats st;
	const struct hl_stats_period *p;
	char tag[16];
	uint32_t sum = 0;
	int n = HL_STATS_NAMES_MAX + 100;

	(void)state;
	exec("BEGIN");
	for (int i = 0; i < n; i++) {
		snprintf(tag, sizeof(tag), "t%d", i);
		add(D0 + i, NONE, NONE, 0, tag, NULL, NULL, NULL);
	}
	exec("COMMIT");
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	p = &st.periods[0];
	assert_int_equal(st.nnames, HL_STATS_NAMES_MAX);
	for (uint32_t i = 0; i < p->tags_len; i++)
		sum += p->tags[i];
	assert_int_equal(sum, n);
	/* "invalid" and "none" were interned first. */
	assert_int_equal(TAG(&st, p, "invalid"), n - (HL_STATS_NAMES_MAX - 2));
	assert_int_equal(TAG(&st, p, "t0"), 1);
	hl_stats_free(&st);
}

/* ---- output ------------------------------------------------------------- */

static void test_json_shape(void **state)
{
	struct hl_stats st;
	json_t *arr, *p, *w;
	const char *key;
	json_t *v;
	char *js;
	static const char *const keys[] = {
		"start", "conversations", "answered", "unanswered", "open",
		"by_risk", "by_age_band", "by_tag", "by_outcome", "wait_s",
		"handle_s",
	};

	(void)state;
	add(D0 + 5 * MINUTE, D0 + 6 * MINUTE, D0 + 20 * MINUTE, 2, "grooming", "u13",
	    "grooming,sextortion", "safety_plan");
	add(D0 + 10 * MINUTE, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	compute(D0, D0 + 2 * DAY, HL_STATS_BY_DAY, &st);
	js = json_of(&st);
	arr = json_loads(js, 0, NULL);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 1); /* day 2 had nobody */
	p = json_array_get(arr, 0);
	assert_int_equal(json_object_size(p), HL_ARRAY_LEN(keys));
	for (size_t i = 0; i < HL_ARRAY_LEN(keys); i++)
		assert_non_null(json_object_get(p, keys[i]));
	assert_int_equal(json_integer_value(json_object_get(p, "start")), D0);
	assert_int_equal(json_object_size(json_object_get(p, "by_risk")), 4);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(p, "by_risk"), "high")), 1);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(p, "by_risk"), "immediate")), 0);
	assert_int_equal(json_object_size(json_object_get(p, "by_age_band")),
			 5);
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(p, "by_age_band"), "none")), 1);
	/* Only the non-zero tags and outcomes, in name order. */
	assert_non_null(strstr(js, "\"by_tag\":{\"grooming\":1,\"sextortion\":1}"));
	assert_non_null(strstr(js, "\"by_outcome\":{\"none\":1,\"safety_plan\":1}"));
	w = json_object_get(p, "wait_s");
	assert_int_equal(json_integer_value(json_object_get(w, "count")), 1);
	assert_int_equal(json_integer_value(json_object_get(w, "p50")), 60);
	assert_int_equal(json_integer_value(json_object_get(w, "p90")), 60);
	assert_int_equal(json_integer_value(json_object_get(w, "max")), 60);
	assert_non_null(strstr(js, "\"histogram\":{\"lt1m\":0,\"1m_5m\":1,"
				   "\"5m_15m\":0,\"15m_60m\":0,\"ge60m\":0}"));
	w = json_object_get(p, "handle_s");
	assert_int_equal(json_integer_value(json_object_get(w, "p50")), 14 * 60);
	/* Every value is a number or an object of numbers: nothing else. */
	json_object_foreach(p, key, v)
		assert_true(json_is_integer(v) || json_is_object(v));
	json_decref(arr);
	free(js);
	hl_stats_free(&st);

	/* An empty distribution has null p50/p90/max. */
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	st.periods[0].wait = (struct hl_stats_dist){0};
	js = json_of(&st);
	assert_non_null(strstr(js, "\"wait_s\":{\"count\":0,\"p50\":null,"
				   "\"p90\":null,\"max\":null,"));
	free(js);
	hl_stats_free(&st);
}

static void test_csv_exact(void **state)
{
	struct hl_stats st;
	char *csv;
	static const char want[] =
		"period_start,metric,key,value\n"
		"2026-11-22T10:00:00Z,conversations,,2\n"
		"2026-11-22T10:00:00Z,answered,,1\n"
		"2026-11-22T10:00:00Z,unanswered,,1\n"
		"2026-11-22T10:00:00Z,open,,0\n"
		"2026-11-22T10:00:00Z,risk,standard,1\n"
		"2026-11-22T10:00:00Z,risk,elevated,0\n"
		"2026-11-22T10:00:00Z,risk,high,1\n"
		"2026-11-22T10:00:00Z,risk,immediate,0\n"
		"2026-11-22T10:00:00Z,age_band,u13,0\n"
		"2026-11-22T10:00:00Z,age_band,13_15,1\n"
		"2026-11-22T10:00:00Z,age_band,16_17,0\n"
		"2026-11-22T10:00:00Z,age_band,18p,0\n"
		"2026-11-22T10:00:00Z,age_band,none,1\n"
		"2026-11-22T10:00:00Z,tag,cyberbullying,1\n"
		"2026-11-22T10:00:00Z,tag,sextortion,1\n"
		"2026-11-22T10:00:00Z,outcome,none,1\n"
		"2026-11-22T10:00:00Z,outcome,support_given,1\n"
		"2026-11-22T10:00:00Z,wait_s_count,,1\n"
		"2026-11-22T10:00:00Z,wait_s_p50,,300\n"
		"2026-11-22T10:00:00Z,wait_s_p90,,300\n"
		"2026-11-22T10:00:00Z,wait_s_max,,300\n"
		"2026-11-22T10:00:00Z,wait_hist,lt1m,0\n"
		"2026-11-22T10:00:00Z,wait_hist,1m_5m,0\n"
		"2026-11-22T10:00:00Z,wait_hist,5m_15m,1\n"
		"2026-11-22T10:00:00Z,wait_hist,15m_60m,0\n"
		"2026-11-22T10:00:00Z,wait_hist,ge60m,0\n"
		"2026-11-22T10:00:00Z,handle_s_count,,1\n"
		"2026-11-22T10:00:00Z,handle_s_p50,,3900\n"
		"2026-11-22T10:00:00Z,handle_s_p90,,3900\n"
		"2026-11-22T10:00:00Z,handle_s_max,,3900\n"
		"2026-11-22T10:00:00Z,handle_hist,lt1m,0\n"
		"2026-11-22T10:00:00Z,handle_hist,1m_5m,0\n"
		"2026-11-22T10:00:00Z,handle_hist,5m_15m,0\n"
		"2026-11-22T10:00:00Z,handle_hist,15m_60m,0\n"
		"2026-11-22T10:00:00Z,handle_hist,ge60m,1\n"
		"2026-11-22T12:00:00Z,conversations,,1\n"
		"2026-11-22T12:00:00Z,answered,,0\n"
		"2026-11-22T12:00:00Z,unanswered,,0\n"
		"2026-11-22T12:00:00Z,open,,1\n"
		"2026-11-22T12:00:00Z,risk,standard,0\n"
		"2026-11-22T12:00:00Z,risk,elevated,0\n"
		"2026-11-22T12:00:00Z,risk,high,0\n"
		"2026-11-22T12:00:00Z,risk,immediate,1\n"
		"2026-11-22T12:00:00Z,age_band,u13,1\n"
		"2026-11-22T12:00:00Z,age_band,13_15,0\n"
		"2026-11-22T12:00:00Z,age_band,16_17,0\n"
		"2026-11-22T12:00:00Z,age_band,18p,0\n"
		"2026-11-22T12:00:00Z,age_band,none,0\n"
		"2026-11-22T12:00:00Z,outcome,none,1\n"
		"2026-11-22T12:00:00Z,wait_s_count,,0\n"
		"2026-11-22T12:00:00Z,wait_hist,lt1m,0\n"
		"2026-11-22T12:00:00Z,wait_hist,1m_5m,0\n"
		"2026-11-22T12:00:00Z,wait_hist,5m_15m,0\n"
		"2026-11-22T12:00:00Z,wait_hist,15m_60m,0\n"
		"2026-11-22T12:00:00Z,wait_hist,ge60m,0\n"
		"2026-11-22T12:00:00Z,handle_s_count,,0\n"
		"2026-11-22T12:00:00Z,handle_hist,lt1m,0\n"
		"2026-11-22T12:00:00Z,handle_hist,1m_5m,0\n"
		"2026-11-22T12:00:00Z,handle_hist,5m_15m,0\n"
		"2026-11-22T12:00:00Z,handle_hist,15m_60m,0\n"
		"2026-11-22T12:00:00Z,handle_hist,ge60m,0\n";

	(void)state;
	add(D0 + 10 * HOUR, D0 + 10 * HOUR + 5 * MINUTE,
	    D0 + 11 * HOUR + 10 * MINUTE, 2, "sextortion", "13_15",
	    "cyberbullying,sextortion", "support_given");
	add(D0 + 10 * HOUR + 59 * MINUTE, NONE, D0 + 11 * HOUR, 0, NULL, NULL,
	    NULL, NULL);
	add(D0 + 12 * HOUR, NONE, NONE, 3, NULL, "u13", NULL, NULL);
	compute(D0, D0 + DAY, HL_STATS_BY_HOUR, &st);
	csv = csv_of(&st);
	assert_string_equal(csv, want);
	free(csv);
	hl_stats_free(&st);
}

static void test_csv_quoting(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", ""},
		{"plain_id", "plain_id"},
		{"a,b", "\"a,b\""},
		{"say \"hi\"", "\"say \"\"hi\"\"\""},
		{"two\nlines", "\"two\nlines\""},
		{"cr\rhere", "\"cr\rhere\""},
		{"\"", "\"\"\"\""},
		{"=cmd()", "=cmd()"},
	};

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(cases); i++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		assert_int_equal(hl_stats_csv_field(f, cases[i].in), 0);
		fclose(f);
		assert_string_equal(buf, cases[i].out);
		free(buf);
	}
}

/* A write error is reported, not swallowed. */
static void test_csv_write_error(void **state)
{
	struct hl_stats st;
	FILE *f = fopen("/dev/full", "w");

	(void)state;
	if (!f)
		skip();
	add(D0, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(hl_stats_write_csv(&st, f), HL_EIO);
	fclose(f);
	hl_stats_free(&st);
}

/* No conversation id and none of the columns that are not aggregated
 * (language, danger_now, the id) reach the JSON or the CSV. */
static void test_nothing_per_conversation(void **state)
{
	struct hl_stats st;
	char *js, *csv;

	(void)state;
	add_id(4242424242LL, D0 + 3, D0 + 5, D0 + 7, 1, "grooming", "u13",
	       NULL, "safety_plan");
	add_id(3131313131LL, D0 + HOUR, NONE, NONE, 0, NULL, NULL, NULL,
	       NULL);
	compute(D0, D0 + DAY, HL_STATS_BY_HOUR, &st);
	js = json_of(&st);
	csv = csv_of(&st);
	assert_null(strstr(js, "4242424242"));
	assert_null(strstr(js, "3131313131"));
	assert_null(strstr(csv, "4242424242"));
	assert_null(strstr(csv, "3131313131"));
	assert_null(strstr(js, "xx-YY"));
	assert_null(strstr(csv, "xx-YY"));
	assert_null(strstr(js, "\"id\""));
	assert_null(strstr(js, "conversation\""));
	assert_null(strstr(js, "danger"));
	assert_null(strstr(csv, "danger"));
	assert_null(strstr(js, "language"));
	free(js);
	free(csv);
	hl_stats_free(&st);
}

/* ---- the database ------------------------------------------------------- */

/* WAL: a read-only reader computes on its snapshot while another
 * connection holds an open write transaction. */
static void test_reads_beside_a_writer(void **state)
{
	struct hl_stats st;

	(void)state;
	add(D0, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	exec("BEGIN IMMEDIATE");
	add(D0 + 1, NONE, NONE, 0, NULL, NULL, NULL, NULL);
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.periods[0].conversations, 1);
	hl_stats_free(&st);
	exec("COMMIT");
	compute(D0, D0 + DAY, HL_STATS_BY_DAY, &st);
	assert_int_equal(st.periods[0].conversations, 2);
	hl_stats_free(&st);
}

/* A database without the table (not migrated) is a store error with a
 * message, not a crash. */
static void test_store_error(void **state)
{
	char path[4096], err[256] = "";
	struct hl_stats st;
	sqlite3 *db;

	(void)state;
	hl_test_path(path, sizeof(path), "empty");
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	memset(&st, 0, sizeof(st));
	assert_int_equal(hl_stats_compute(db, D0, D0 + DAY, HL_STATS_BY_DAY,
					  &st, err, sizeof(err)), HL_ESTORE);
	assert_non_null(strstr(err, "conversation"));
	hl_stats_free(&st);
	sqlite3_close(db);
}

/* The query walks conversation_by_created in order: no table scan, no
 * sort. */
static void test_query_plan(void **state)
{
	sqlite3 *db = hl_test_plain(E.path);
	sqlite3_stmt *s;
	char sql[1024], plan[2048] = "";

	(void)state;
	snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s", hl_stats_sql);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		strncat(plan, (const char *)sqlite3_column_text(s, 3),
			sizeof(plan) - strlen(plan) - 2);
		strcat(plan, ";");
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	assert_non_null(strstr(plan, "conversation_by_created"));
	assert_null(strstr(plan, "TEMP B-TREE"));
	assert_null(strstr(plan, "SCAN conversation;"));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_range_checks),
		cmocka_unit_test(test_by_and_names),
		cmocka_unit_test(test_parse_day),
		cmocka_unit_test(test_csv_quoting),
		T(test_compute_refuses_bad_range),
		T(test_empty),
		T(test_counts),
		T(test_percentiles),
		T(test_histogram_edges),
		T(test_day_buckets),
		T(test_hour_buckets),
		T(test_malformed_ids),
		T(test_name_cap),
		T(test_json_shape),
		T(test_csv_exact),
		T(test_csv_write_error),
		T(test_nothing_per_conversation),
		T(test_reads_beside_a_writer),
		T(test_store_error),
		T(test_query_plan),
	};
#undef T
	return cmocka_run_group_tests(tests, group_setup,
				      hl_test_group_teardown);
}
