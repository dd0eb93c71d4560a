/* hours.h: owns the line's opening hours: a weekly schedule plus dated
 * exceptions, in wall-clock time of the configured time zone, and the
 * line.status reply that tells a young person's page whether the line is
 * open and when it next opens or closes.
 *
 * Formats (config keys hours.weekly and hours.exceptions):
 *   weekly:     "mon-fri 09:00-22:00, sat-sun 12:00-20:00, fri 18:00-02:00"
 *               days: mon tue wed thu fri sat sun, a range "mon-fri" (may
 *               wrap: "fri-mon"), or "daily"; then one or more HH:MM-HH:MM
 *               ranges; 24:00 may end a range; a range that ends at or
 *               before its start runs past midnight into the next day. A
 *               day may be named in several entries; its ranges add up.
 *               Empty: open all the time.
 *   exceptions: "2026-12-25 closed, 2026-12-24 09:00-14:00"; a dated entry
 *               replaces that date's weekly ranges. A range past midnight
 *               (the day before's, or the exception's own) still runs into
 *               the next day.
 * Times are wall-clock times in hours.timezone (an IANA name, default UTC):
 * a 09:00 opening is 09:00 local on both sides of a daylight-saving change.
 *
 * The zone is read once from its TZif file (RFC 8536) into struct
 * hl_hours_zone: the transition table plus the POSIX TZ rule of its footer
 * for instants past the table. Evaluation is pure arithmetic on that copy:
 * no process-wide TZ, no localtime/mktime, so any thread may call it and
 * tests need no environment.
 */
#ifndef HL_HOURS_H
#define HL_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct hl_session;
struct hl_config;

#define HL_HOURS_RANGES 8          /* most ranges one day or date has */
#define HL_HOURS_EXCEPTIONS 128    /* most dated exceptions */
#define HL_HOURS_TRANSITIONS 1024  /* most transitions of a zone (tzdata: 310) */
#define HL_HOURS_TYPES 64          /* most local time types of a zone (tzdata: 18) */
#define HL_HOURS_LOOKAHEAD 400     /* days hl_hours_open looks ahead */

/* Ranges of one day, in minutes after local midnight, sorted by start;
 * start < 1440, start < end <= start + 1440 (end past 1440: next day). */
struct hl_hours_day {
	int n;                          /* ranges in use */
	struct {
		int start, end;
	} r[HL_HOURS_RANGES];
};

/* One change of a POSIX TZ rule ("M3.5.0/1"): a day of the year and the
 * local time of day it happens at. */
struct hl_hours_rule {
	char kind;     /* 'J': day a (1-365, Feb 29 never counted); 'D': day a
			* (0-365, counting Feb 29); 'M': month a, week b (1-4,
			* 5 = last), weekday c (0 = Sunday) */
	int a, b, c;
	int32_t time;  /* seconds after local midnight (may be <0 or >24h) */
};

/* A time zone: the UT offset at any instant. */
struct hl_hours_zone {
	int ntrans;                              /* transitions in the table */
	int64_t trans[HL_HOURS_TRANSITIONS];     /* unix seconds, ascending */
	uint8_t type[HL_HOURS_TRANSITIONS];      /* utoff index from trans[i] */
	int32_t utoff[HL_HOURS_TYPES];           /* seconds east of UT, per type */
	int32_t before;                          /* utoff before trans[0] */
	bool rule;        /* the POSIX rule decides from the last transition on
			   * (or always, with no table) */
	bool rule_dst;    /* the rule has daylight saving (start, end used) */
	int32_t std_off;  /* the rule's standard offset, seconds east of UT */
	int32_t dst_off;  /* its daylight-saving offset */
	struct hl_hours_rule start, end; /* daylight saving starts, ends */
};

struct hl_hours {
	bool always;                       /* no hours configured: always open */
	struct hl_hours_day week[7];       /* 0 = Sunday */
	int nexc;                          /* exceptions in use */
	struct {
		int date;                  /* yyyymmdd */
		struct hl_hours_day day;   /* n == 0: closed that date */
	} exc[HL_HOURS_EXCEPTIONS];        /* sorted by date */
	char timezone[64];                 /* IANA name, for line.status */
	struct hl_hours_zone zone;         /* that zone's offsets */
};

/* Parses the two texts into h (either may be NULL or ""), with the zone
 * set to UTC. 0, or HL_EINVAL with a message in err naming the offending
 * entry and token. Pure; h is fully overwritten. */
int hl_hours_parse(struct hl_hours *h, const char *weekly,
		   const char *exceptions, char *err, size_t errlen);

/* Loads the IANA zone name ("Europe/London") into h->zone and h->timezone.
 * 0, or HL_EINVAL (bad name, missing or malformed file) with err; h is
 * unchanged on error; h may be NULL to only check. Reads a file: call at
 * start-up, not on the loop. */
int hl_hours_set_timezone(struct hl_hours *h, const char *name, char *err,
			  size_t errlen);

/* Checks an IANA zone name the way hl_hours_set_timezone would load it:
 * a safe relative name (each part starts with a capital letter; letters,
 * digits, "_+-" only) whose file under /usr/share/zoneinfo is valid TZif
 * without leap seconds. "UTC" is accepted even without tzdata. 0 or
 * HL_EINVAL with err. */
int hl_hours_timezone_ok(const char *name, char *err, size_t errlen);

/* Parses a TZif file's bytes (RFC 8536, versions 1-4) into z. 0 or
 * HL_EINVAL with err (malformed, too big for the caps, leap seconds).
 * Pure. */
int hl_hours_zone_parse(struct hl_hours_zone *z, const unsigned char *buf,
			size_t len, char *err, size_t errlen);

/* Makes z the zone described by a POSIX TZ string alone ("GMT0BST,M3.5.0/1,
 * M10.5.0", "<+0530>-5:30"). 0 or HL_EINVAL with err. Pure. */
int hl_hours_zone_posix(struct hl_hours_zone *z, const char *tz, char *err,
			size_t errlen);

/* UT offset (seconds east) of z at unix second t. Pure. */
int32_t hl_hours_zone_offset(const struct hl_hours_zone *z, int64_t t);

/* The unix second at which z's clocks read wall (seconds since 1970-01-01
 * 00:00 of local wall time). A wall time that occurs twice (clocks going
 * back) gives the earlier; one that never occurs (clocks going forward)
 * gives the instant of the jump, so a range reaching into the gap still
 * opens or closes then. Nondecreasing in wall. Pure. */
int64_t hl_hours_zone_utc(const struct hl_hours_zone *z, int64_t wall);

/* Builds the schedule from the configuration (hours.* keys): parses the
 * texts and loads the zone. 0, or HL_EINVAL with a message in err. Reads
 * the zone file: call at start-up. */
int hl_hours_init(struct hl_hours *h, const struct hl_config *cfg, char *err,
		  size_t errlen);

/* Whether the line is open at t_ms (unix ms). When open, *closes_at is the
 * next closing (unix ms; 0: not within HL_HOURS_LOOKAHEAD days); when
 * closed, *opens_at the next opening (0: not within HL_HOURS_LOOKAHEAD
 * days); the other is set to 0. Either pointer may be NULL, and with both
 * NULL it only answers open or not (cheaper: contact.start). Ranges that
 * touch or overlap, on one day or across midnight, count as one opening.
 * Pure; any thread. */
bool hl_hours_open(const struct hl_hours *h, int64_t t_ms, int64_t *closes_at,
		   int64_t *opens_at);

/* line.status handler (both protocols): open now, the next change, whether
 * the queue is full and whether the inbox takes messages. Loop thread. */
void hl_line_status(struct hl_session *s, const struct hl_msg *m);

#endif
