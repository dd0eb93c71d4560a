/* contact.h: owns young people's side of the service inside helplined: their
 * anonymous contact sessions (resume secrets), intake, and the live waiting
 * line with coalesced position updates. The staff side of a conversation
 * (offers, chat relay) builds on the conversations kept here. */
#ifndef HL_CONTACT_H
#define HL_CONTACT_H

#include <stdbool.h>
#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "conversation.h"
#include "keys.h"
#include "protocol.h"
#include "queue.h"
#include "routing.h"
#include "taxonomy.h"

struct hl_auth_staff;
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
	int64_t supervisor_id;          /* supervisor third party, 0 = none */
	bool busy;                      /* a take, offer, end or requeue is in flight */
	int64_t created_at;             /* unix ms: joined the queue */
	char topics[HL_CONV_TAGS_MAX + 1]; /* intake tags ("" = none) */
	enum hl_age_band age_band;      /* intake */
	bool danger_now;                /* intake */
	/* An automatic offer (routing.c): the conversation stays in the queue,
	 * in state OFFERED, until accepted, declined or timed out. */
	int64_t offer_staff;            /* offered to, 0 = no live offer */
	int64_t offer_expires_ms;       /* unix ms */
	struct { int64_t staff_id, at_ms; } passed[8]; /* declined / let lapse */
	bool alerted_wait;              /* supervisors were told it waits long */
	int64_t lost_since_ms;          /* counsellor has no socket since; 0 = present */
	unsigned char resume_hash[HL_TOKEN_HASH_BYTES]; /* of the resume secret */
	bool have_resume;               /* resume_hash is set */
	struct hl_conv_live *next;      /* the server's list of live conversations */
	struct hl_conv_live *prev;      /* (so a conversation leaves it at once) */
	struct hl_conv_live *chain;     /* the next in its bucket of by_id */
};

/* The young people's side of the server (embedded in struct hl_server). */
struct hl_contacts {
	struct hl_server *srv;
	struct hl_queue queue;          /* the waiting line */
	struct hl_conv_live *convs;     /* every conversation not yet ended */
	struct hl_conv_live **by_id;    /* the same by id: nbuckets chains */
	size_t nbuckets, nconvs;        /* nbuckets a power of two */
	uv_timer_t tick;                /* 1 s: position updates */
	bool tick_open;
	int init_status;                /* start-up load: 0 running, 1 ok, <0 */
	struct hl_routing routing;      /* offers, alerts, the supervisors' view */
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

/* ---- for routing.c and shift.c ---- */

/* The live conversation with this id, or NULL. */
struct hl_conv_live *hl_contacts_find(struct hl_contacts *c, int64_t id);
/* The staff id v counts towards the load of: whoever it is offered to,
 * or the counsellor holding it (or taking it right now); 0 = nobody. */
int64_t hl_contacts_load_holder(const struct hl_conv_live *v);
/* Active chats held by staff_id plus live offers to them. */
int hl_contacts_load_of(struct hl_contacts *c, int64_t staff_id);
/* A new JSON array of the ids (strings) of the active chats staff_id holds. */
json_t *hl_contacts_held(struct hl_contacts *c, int64_t staff_id);
/* Offers queued conversation v to staff_id (stored, then queue.offer is
 * pushed to them). v must be QUEUED and not busy. */
void hl_contacts_offer(struct hl_contacts *c, struct hl_conv_live *v,
		       int64_t staff_id);
/* Takes back the live offer of v (why: "timeout", "declined", "withdrawn",
 * "disconnected"): v waits again at its place; the counsellor is told with
 * offer.withdrawn unless they declined. */
void hl_contacts_unoffer(struct hl_contacts *c, struct hl_conv_live *v,
			 const char *why);
/* Takes back every live offer to staff_id ("withdrawn"). */
void hl_contacts_withdraw_offers(struct hl_contacts *c, int64_t staff_id);
/* Gives v to the counsellor of socket s (queue.take, queue.pick,
 * offer.accept): stored, then queue.taken answers request id. */
void hl_contacts_take(struct hl_session *s, const char *id,
		      struct hl_conv_live *v);
/* Whether an account can be handed a chat by chat.transfer now. */
enum hl_transfer_target {
	HL_TRANSFER_OK,          /* yes */
	HL_TRANSFER_NO_SUCH,     /* no such active counsellor or supervisor */
	HL_TRANSFER_UNAVAILABLE, /* not on shift, not connected, or at capacity */
};
/* The one rule for a transfer's target (chat.transfer refuses, and
 * staff.colleagues reports can_take): st is the account (NULL: none),
 * load its active chats plus live offers as hl_contacts_load_of counts
 * them. Whether st is the sender is the caller's check. Pure. */
enum hl_transfer_target hl_contacts_transfer_target(const struct hl_auth_staff *st,
						    int load);
/* Was staff_id passed over for v (declined or let lapse) recently? */
bool hl_contacts_passed(const struct hl_conv_live *v, int64_t staff_id,
			int64_t now_ms, int64_t window_ms);

/* Handlers. */
void hl_contact_start(struct hl_session *s, const struct hl_msg *m);
void hl_contact_resume(struct hl_session *s, const struct hl_msg *m);
void hl_contact_leave(struct hl_session *s, const struct hl_msg *m);
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

/* e2e.hello (young person) and e2e.accept (the counsellor's device): the
 * handshake, stored as conversation events (docs/crypto.md). */
void hl_e2e_hello(struct hl_session *s, const struct hl_msg *m);
void hl_e2e_accept(struct hl_session *s, const struct hl_msg *m);

/* The id of the open conversation named by conversation (a young person:
 * their own; NULL allowed) when s is one of its parties; otherwise answers
 * forbidden and returns 0. */
/* The chat that ended on this young person's connection (or came back to
 * it ended, by contact.return), which stays readable there (chat.sync,
 * key.wraps) until another starts or is resumed on it, when conversation
 * names it or is absent; else 0. */
int64_t hl_contact_ended_conv(const struct hl_session *s,
			      const char *conversation);

int64_t hl_contact_party(struct hl_session *s, const struct hl_msg *m,
			 const char *conversation);

/* contact.set_return and contact.return: return codes (docs/crypto.md). */
void hl_contact_set_return(struct hl_session *s, const struct hl_msg *m);
void hl_contact_return(struct hl_session *s, const struct hl_msg *m);

#endif
