/* stats.h: owns statistics without personal data: counts and time
 * distributions over conversations, per UTC day or hour, for the stats.get
 * request and `helplinectl stats`. One query core serves both; what leaves
 * it is only ever aggregated: never a conversation id or a row.
 *
 * What is counted, per period (the UTC day or hour of created_at, i.e. when
 * the young person joined the queue), from table conversation only:
 *   conversations  every conversation created in the period;
 *   answered       those a counsellor accepted (accepted_at set);
 *   unanswered     those that ended without ever being accepted;
 *   open           those neither accepted nor ended yet (still waiting), so
 *                  answered + unanswered + open = conversations;
 *   by risk class, by age band (incl. "none"), by tag (intake topics and
 *   wrap-up tags, each tag once per conversation), by outcome (incl. "none"
 *   for not wrapped up yet);
 *   wait   = accepted_at - created_at of answered conversations;
 *   handle = ended_at - accepted_at of answered conversations that ended;
 * each distribution as count, p50, p90, max (whole seconds, nearest rank)
 * and a histogram (<1 min, 1-5, 5-15, 15-60, >=60 min). */
#ifndef HL_STATS_H
#define HL_STATS_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "protocol.h"

struct hl_session;

#define HL_STATS_DAY_MS (86400LL * 1000)
#define HL_STATS_HOUR_MS (3600LL * 1000)
#define HL_STATS_MAX_DAYS 366  /* most periods of a by-day request */
#define HL_STATS_MAX_HOURS 744 /* most periods of a by-hour request (31 days) */
#define HL_STATS_NAME_MAX 32   /* longest tag or outcome id counted as itself */
#define HL_STATS_NAMES_MAX 1024 /* distinct tag and outcome ids kept; more are
				 * counted as "invalid" */

/* The period length. */
enum hl_stats_by {
	HL_STATS_BY_DAY,   /* UTC days */
	HL_STATS_BY_HOUR,  /* UTC hours */
};

/* Histogram bins of a distribution, in order: [0,1) min, [1,5), [5,15),
 * [15,60), [60,inf). Wire names: hl_stats_hist_name. */
enum { HL_STATS_HIST_N = 5 };
/* Risk classes 0..3: standard, elevated, high, immediate. */
enum { HL_STATS_RISK_N = 4 };
/* Age bands: u13, 13_15, 16_17, 18p, none (not given). */
enum { HL_STATS_AGE_N = 5 };

/* One duration distribution of one period, in whole seconds (a duration is
 * rounded down to the second; a negative one, from a clock step, is 0). */
struct hl_stats_dist {
	uint32_t count;                 /* durations in the distribution */
	uint32_t p50, p90;              /* nearest rank: the smallest value that
					 * at least 50% / 90% are at or below;
					 * 0 when count is 0 */
	uint32_t max;                   /* the largest; 0 when count is 0 */
	uint32_t hist[HL_STATS_HIST_N]; /* counts per bin (enum above) */
};

/* The aggregates of one period. */
struct hl_stats_period {
	int64_t start;                  /* unix ms: the UTC day or hour's start */
	uint32_t conversations;         /* created in the period */
	uint32_t answered;              /* of those: accepted at some time */
	uint32_t unanswered;            /* ended without being accepted */
	uint32_t open;                  /* neither accepted nor ended yet */
	uint32_t by_risk[HL_STATS_RISK_N]; /* risk class 0..3 */
	uint32_t by_age[HL_STATS_AGE_N];   /* age band, "none" last */
	uint32_t *tags;                 /* conversations per name index
					 * (hl_stats.names); tags_len entries;
					 * NULL when none */
	uint32_t *outcomes;             /* the same for outcomes ("none"
					 * counts the not wrapped up) */
	uint32_t tags_len, outcomes_len; /* entries of tags / outcomes */
	struct hl_stats_dist wait;      /* accepted_at - created_at */
	struct hl_stats_dist handle;    /* ended_at - accepted_at */
};

/* A tag or outcome id counted by some period: [a-z0-9_]{1,32}, or
 * "invalid" for anything else a database row held. */
struct hl_stats_name {
	char s[HL_STATS_NAME_MAX + 1];
};

/*
 * The result of hl_stats_compute. Zero it before the call; release it with
 * hl_stats_free. All fields are read-only for the caller. The
 * working buffers are private.
 */
struct hl_stats {
	int64_t from, to;               /* unix ms, [from, to), as asked */
	enum hl_stats_by by;            /* the period length */
	uint32_t nperiods;              /* (to - from) / period length */
	struct hl_stats_period *periods; /* nperiods, in time order; those with
					 * conversations == 0 are empty */
	struct hl_stats_name *names;    /* interned tag / outcome ids */
	uint32_t nnames;                /* entries of names */
	uint64_t rows;                  /* conversations read */
	/* private */
	uint32_t *slots;                /* name hash: index + 1, 0 = empty */
	uint32_t *wait_v, *handle_v;    /* durations of the current period */
	size_t wait_n, handle_n, wait_cap, handle_cap;
};

/* The one SELECT hl_stats_compute runs (?1 from, ?2 to), exposed so tests
 * can check its query plan. */
extern const char hl_stats_sql[];

/* The length of a period of by in ms. */
int64_t hl_stats_period_ms(enum hl_stats_by by);

/* Wire / CSV names. Static storage. */
const char *hl_stats_by_name(enum hl_stats_by by);     /* "day", "hour" */
const char *hl_stats_risk_name(int risk);              /* "standard", ... */
const char *hl_stats_age_name(int band);               /* "u13", ..., "none" */
const char *hl_stats_hist_name(int bin);               /* "lt1m", ... */

/* "day" / "hour" -> *by. Returns 0, or HL_EINVAL for anything else. */
int hl_stats_by_parse(const char *s, enum hl_stats_by *by);

/*
 * Checks a range before any work: from and to must be multiples of the
 * period (UTC midnights by day, whole hours by hour), 0 <= from < to, and
 * span at most HL_STATS_MAX_DAYS days by day or HL_STATS_MAX_HOURS hours by
 * hour. Returns 0, or HL_EINVAL with *field naming the offending request
 * field ("from" or "to"; static storage) when field is not NULL. Pure.
 */
int hl_stats_check_range(int64_t from, int64_t to, enum hl_stats_by by,
			 const char **field);

/*
 * Computes the statistics of the conversations with created_at in
 * [from, to) into out (zeroed by the caller), with one streaming SELECT in
 * created_at order on db, which the caller owns and may open read-only
 * (only the caller's thread may use it during the call). Returns 0;
 * HL_EINVAL for a range hl_stats_check_range refuses; HL_ENOMEM; or
 * HL_ESTORE when SQLite fails, with a message in err (errlen bytes; may be
 * NULL). On failure out still needs hl_stats_free. Any thread; blocks on
 * disk, so never the loop thread.
 */
int hl_stats_compute(sqlite3 *db, int64_t from, int64_t to,
		     enum hl_stats_by by, struct hl_stats *out, char *err,
		     size_t errlen);

/* Releases what hl_stats_compute allocated and zeroes st. Safe on a zeroed
 * struct and twice. */
void hl_stats_free(struct hl_stats *st);

/*
 * The periods with at least one conversation, as the JSON array of the
 * stats reply (docs/protocol.md §5.11): [{start, conversations, answered,
 * unanswered, open, by_risk, by_age_band, by_tag, by_outcome, wait_s,
 * handle_s}, ...]. by_risk and by_age_band hold every key; by_tag and
 * by_outcome only the non-zero ones, in name order. Returns a new
 * reference, or NULL on ENOMEM. Any thread (jansson objects of its own).
 */
json_t *hl_stats_to_json(const struct hl_stats *st);

/*
 * Writes the same as CSV to f in the long ("tidy") form: a header line
 * "period_start,metric,key,value", then one line per number of each
 * non-empty period (docs/helplinectl.md lists the metrics), period_start in
 * ISO 8601 UTC (2026-11-22T00:00:00Z). Lines end in LF (a Unix tool's
 * output; RFC 4180 readers accept it); a field is quoted, with its quotes
 * doubled, only when it holds a comma, a quote, CR or LF. Returns 0, or
 * HL_EIO when a write fails.
 */
int hl_stats_write_csv(const struct hl_stats *st, FILE *f);

/* Writes field to f as one CSV field (RFC 4180 quoting when needed).
 * Returns 0 or HL_EIO. */
int hl_stats_csv_field(FILE *f, const char *field);

/*
 * Parses a calendar date "YYYY-MM-DD" (exactly that form, a real day, year
 * 1970..9999) into the unix ms of its UTC midnight. Returns 0 or HL_EINVAL.
 */
int hl_stats_parse_day(const char *s, int64_t *ms);

/* Most stats.get queries on the threadpool at once (the daemon's whole
 * server); more get busy, so dashboards cannot take every threadpool thread
 * from Argon2id logins. */
#define HL_STATS_INFLIGHT 2

/*
 * The stats.get handler (supervisor or admin; dispatch checks the role).
 * Validates the range (bad_field with field "from", "to" or "by"), then runs
 * the query on the libuv threadpool on a read-only connection of its own,
 * holding a reference on s, and replies "stats"; or bad_field "to" when the
 * reply would be over ws.outq_max bytes, busy when it does not fit in the
 * connection's output queue now or HL_STATS_INFLIGHT queries are running,
 * store_failed when SQLite fails. Loop thread.
 */
void hl_stats_get(struct hl_session *s, const struct hl_msg *m);

#endif
