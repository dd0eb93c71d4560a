/* inbox.c: the out-of-hours inbox. STUB (being written). */
#include "inbox.h"
#include "common.h"
#include "session.h"

int hl_inbox_init(struct hl_inbox *ib, struct hl_server *srv)
{
	ib->srv = srv;
	return HL_OK;
}

void hl_inbox_free(struct hl_inbox *ib)
{
	(void)ib;
}

const char *hl_inbox_public_key(const struct hl_inbox *ib)
{
	(void)ib;
	return NULL;
}

static void todo(struct hl_session *s, const struct hl_msg *m)
{
	hl_session_error(s, m->id, HL_ERR_INTERNAL, "not available yet", NULL);
}

void hl_inbox_post(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
void hl_inbox_challenge(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
void hl_inbox_fetch(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
void hl_inbox_list(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
void hl_inbox_open(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
void hl_inbox_reply(struct hl_session *s, const struct hl_msg *m) { todo(s, m); }
