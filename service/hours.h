/* hours.h: owns the line's opening hours: a weekly schedule plus dated
 * exceptions, in local time of the configured time zone, and the
 * line.status reply that tells a young person's page whether the line is
 * open and when it next opens or closes.
 *
 * Formats (config keys hours.weekly and hours.exceptions):
 *   weekly:     "mon-fri 09:00-22:00, sat-sun 12:00-20:00, fri 18:00-02:00"
 *               days: mon tue wed thu fri sat sun, a range "mon-fri" (may
 *               wrap: "fri-mon"), or "daily"; one or more HH:MM-HH:MM
 *               ranges each; 24:00 may end a range; a range that ends at
 *               or before its start runs past midnight into the next day.
 *               Empty: open all the time.
 *   exceptions: "2026-12-25 closed, 2026-12-24 09:00-14:00"; a dated entry
 *               replaces that date's weekly ranges (a range past midnight
 *               still spills into the next day).
 * Times are wall-clock times in hours.timezone (an IANA name, default UTC):
 * a 09:00 opening is 09:00 local on both sides of a daylight-saving change.
 */
#ifndef HL_HOURS_H
#define HL_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct hl_session;
struct hl_config;

#define HL_HOURS_RANGES 8       /* most ranges one day or date has */
#define HL_HOURS_EXCEPTIONS 64  /* most dated exceptions */

/* Ranges of one day, minutes from local midnight; end may pass 1440. */
struct hl_hours_day {
	int n;
	struct { int start, end; } r[HL_HOURS_RANGES];
};

struct hl_hours {
	bool always;                       /* no weekly schedule: always open */
	struct hl_hours_day week[7];       /* 0 = Sunday, as struct tm */
	int nexc;
	struct {
		int date;                  /* yyyymmdd */
		struct hl_hours_day day;
	} exc[HL_HOURS_EXCEPTIONS];
	char timezone[64];                 /* as configured, for line.status */
};

/* Parses the two texts into h (either may be NULL or ""). 0, or
 * HL_EINVAL with a message in err naming the offending entry. Pure. */
int hl_hours_parse(struct hl_hours *h, const char *weekly,
		   const char *exceptions, char *err, size_t errlen);

/* Checks an IANA time zone name ("Europe/London"): a safe relative name
 * that exists under /usr/share/zoneinfo. 0 or HL_EINVAL with err. */
int hl_hours_timezone_ok(const char *name, char *err, size_t errlen);

/* Makes name the process's local time zone (TZ). Call once at start-up,
 * before any thread starts; localtime_r/mktime are safe afterwards. */
void hl_hours_use_timezone(const char *name);

/* Builds the schedule from the configuration (hours.* keys). 0, or
 * HL_EINVAL with a message in err. */
int hl_hours_init(struct hl_hours *h, const struct hl_config *cfg, char *err,
		  size_t errlen);

/* Whether the line is open at t_ms (unix ms). When open, *closes_at is the
 * next closing (0: never); when closed, *opens_at the next opening (0: not
 * within 400 days). Either pointer may be NULL. */
bool hl_hours_open(const struct hl_hours *h, int64_t t_ms, int64_t *closes_at,
		   int64_t *opens_at);

/* line.status handler (both protocols). */
void hl_line_status(struct hl_session *s, const struct hl_msg *m);

#endif
