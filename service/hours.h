/* hours.h: owns the line's opening hours: a weekly schedule plus dated
 * exceptions in the configured time zone, and the line.status reply that
 * tells a young person's page whether the line is open and when it next
 * opens. STUB: always open (being written). */
#ifndef HL_HOURS_H
#define HL_HOURS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

struct hl_session;

struct hl_hours {
	bool always; /* no schedule: open all the time */
};

struct hl_config;

/* Builds the schedule from the configuration (hours.* keys). 0, or
 * HL_EINVAL with a message in err naming the key. */
int hl_hours_init(struct hl_hours *h, const struct hl_config *cfg, char *err,
		  size_t errlen);

/* Whether the line is open at t_ms (unix ms). *closes_at (when open) and
 * *opens_at (when closed) are set to the next change, 0 when there is
 * none (always open / never opens again). Either pointer may be NULL. */
bool hl_hours_open(const struct hl_hours *h, int64_t t_ms, int64_t *closes_at,
		   int64_t *opens_at);

/* line.status handler (both protocols). */
void hl_line_status(struct hl_session *s, const struct hl_msg *m);

#endif
