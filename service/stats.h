/* stats.h: owns statistics without personal data: counts and time
 * distributions over conversations, per day or hour, for stats.get and
 * `helplinectl stats`. STUB (being written). */
#ifndef HL_STATS_H
#define HL_STATS_H

#include "protocol.h"

struct hl_session;

void hl_stats_get(struct hl_session *s, const struct hl_msg *m);

#endif
