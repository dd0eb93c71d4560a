/* inbox.h: owns the out-of-hours inbox inside helplined: a young person
 * leaves a message sealed to the team inbox key and later reads the reply
 * with their return code; counsellors list, open and answer. STUB (being
 * written). */
#ifndef HL_INBOX_H
#define HL_INBOX_H

#include "protocol.h"

struct hl_server;
struct hl_session;

struct hl_inbox {
	struct hl_server *srv;
};

int hl_inbox_init(struct hl_inbox *ib, struct hl_server *srv);
void hl_inbox_free(struct hl_inbox *ib);

/* The team inbox public key as base64url, or NULL when none is set. */
const char *hl_inbox_public_key(const struct hl_inbox *ib);

void hl_inbox_post(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_challenge(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_fetch(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_list(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_open(struct hl_session *s, const struct hl_msg *m);
void hl_inbox_reply(struct hl_session *s, const struct hl_msg *m);

#endif
