/* contact.h: owns young people's side of the service inside helplined: their
 * anonymous contact sessions (resume secrets), intake, and the live waiting
 * line with coalesced position updates. The staff side of a conversation
 * (offers, chat relay) builds on the conversations kept here. */
#ifndef HL_CONTACT_H
#define HL_CONTACT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "conversation.h"
#include "keys.h"
#include "protocol.h"
#include "queue.h"
#include "taxonomy.h"

struct hl_server;
struct hl_session;

/* A conversation that is not over, as the loop holds it. */
struct hl_conv_live {
	int64_t id;                     /* conversation id */
	enum hl_conv_state state;       /* mirrors the database row */
	int risk;                       /* risk class at intake */
	struct hl_queue_entry qe;       /* its place in the queue (qe.id = id) */
	struct hl_session *contact;     /* the young person's socket, or NULL */
	int64_t counsellor_id;          /* staff id chatting with them, 0 = none */
	bool busy;                      /* a take, end or requeue is in flight */
	int64_t lost_since_ms;          /* counsellor has no socket since; 0 = present */
	unsigned char resume_hash[HL_TOKEN_HASH_BYTES]; /* of the resume secret */
	bool have_resume;               /* resume_hash is set */
	struct hl_conv_live *next;      /* the server's list of live conversations */
};

/* The young people's side of the server (embedded in struct hl_server). */
struct hl_contacts {
	struct hl_server *srv;
	struct hl_queue queue;          /* the waiting line */
	struct hl_conv_live *convs;     /* every conversation not yet ended */
	uv_timer_t tick;                /* 1 s: position updates */
	bool tick_open;
	int init_status;                /* start-up load: 0 running, 1 ok, <0 */
};

/* Loads the open conversations (restart: the queue is rebuilt in its old
 * order) and starts the position tick. Runs the loop until loaded
 * (start-up only). Returns 0 or HL_ESTORE / HL_ENOMEM. */
int hl_contacts_init(struct hl_contacts *c, struct hl_server *srv);
void hl_contacts_stop(struct hl_contacts *c);
void hl_contacts_free(struct hl_contacts *c);

/* A contact socket closed: the conversation stays (the young person may
 * resume); the socket is detached. */
void hl_contacts_on_closed(struct hl_contacts *c, struct hl_session *s);

/* A counsellor's last socket closed (gone) or one came back (!gone): their
 * active chats start, or stop, their grace period. */
void hl_contacts_staff_presence(struct hl_contacts *c, int64_t staff_id,
				bool gone);

/* Handlers. */
void hl_contact_start(struct hl_session *s, const struct hl_msg *m);
void hl_contact_resume(struct hl_session *s, const struct hl_msg *m);
void hl_contact_leave(struct hl_session *s, const struct hl_msg *m);
void hl_queue_stats(struct hl_session *s, const struct hl_msg *m);
void hl_queue_take(struct hl_session *s, const struct hl_msg *m);
void hl_chat_send(struct hl_session *s, const struct hl_msg *m);
void hl_chat_sync(struct hl_session *s, const struct hl_msg *m);
void hl_chat_end(struct hl_session *s, const struct hl_msg *m);
/* chat.typing: relayed to the other party, not stored. */
void hl_chat_signal(struct hl_session *s, const struct hl_msg *m);
/* chat.delivered / chat.read: stored receipts (high-water marks), relayed. */
void hl_chat_receipt(struct hl_session *s, const struct hl_msg *m);
void hl_chat_transfer(struct hl_session *s, const struct hl_msg *m);
void hl_chat_join(struct hl_session *s, const struct hl_msg *m);
void hl_chat_tag(struct hl_session *s, const struct hl_msg *m);
void hl_chat_wrapup(struct hl_session *s, const struct hl_msg *m);

#endif
