/* stats.c: statistics. STUB (being written). */
#include "stats.h"
#include "session.h"

void hl_stats_get(struct hl_session *s, const struct hl_msg *m)
{
	hl_session_error(s, m->id, HL_ERR_INTERNAL, "not available yet", NULL);
}
