/* wip_stubs.c: handlers being written this session (removed as they land). */
#include "contact.h"
#include "routing.h"
#include "shift.h"
#include "session.h"

#define TODO(fn) \
	void fn(struct hl_session *s, const struct hl_msg *m) \
	{ hl_session_error(s, m->id, HL_ERR_INTERNAL, "not available yet", NULL); }
TODO(hl_chat_receipt)
TODO(hl_chat_transfer)
TODO(hl_chat_join)
TODO(hl_chat_tag)
TODO(hl_chat_wrapup)
TODO(hl_offer_accept)
TODO(hl_offer_decline)
TODO(hl_queue_list)
TODO(hl_queue_pick)
TODO(hl_queue_watch)
TODO(hl_shift_start)
TODO(hl_shift_end)
