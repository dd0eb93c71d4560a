/* routing.h: owns how waiting young people reach counsellors: automatic
 * offers to the best available counsellor on shift (least loaded, language,
 * skills), the offer watchdog (timeout -> next counsellor, the first set
 * away, supervisors alerted), taking the next chat or picking one from the
 * queue list, the supervisors' live view (queue, counsellors, alerts) and
 * the list of colleagues a counsellor can hand a chat to. */
#ifndef HL_ROUTING_H
#define HL_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

#include <uv.h>

struct hl_server;
struct hl_session;
struct hl_contacts;

#define HL_ALERTS_KEPT 32

/* An alert for supervisors, as kept in memory for the live view. */
struct hl_alert {
	int64_t at;                  /* unix ms */
	char kind[32];               /* "offer_timeout", "counsellor_lost", ... */
	int64_t staff_id;            /* 0 = none */
	int64_t conv_id;             /* 0 = none */
	char detail[96];             /* human text, never client input */
};

/* Routing state (embedded in struct hl_contacts). */
struct hl_routing {
	uv_timer_t kick;             /* 0 ms: route on the next loop turn */
	bool kick_open, kick_armed;
	struct hl_alert alerts[HL_ALERTS_KEPT]; /* ring, newest at next - 1 */
	unsigned nalerts, next_alert;
	char *last_view;             /* last queue.view pushed (JSON text) */
};

/* Starts / stops the routing timer (contact.c's init and stop call them);
 * free releases memory after the loop ended. */
void hl_routing_init(struct hl_contacts *c);
void hl_routing_stop(struct hl_contacts *c);
void hl_routing_free(struct hl_contacts *c);

/* Something changed that may let a chat be offered (someone joined the
 * queue, a counsellor became available or freed capacity): offers are
 * made on the next loop turn. */
void hl_routing_kick(struct hl_contacts *c);

/* Called every second by contact.c's tick: offer timeouts, offers, and the
 * supervisors' view when it changed. */
void hl_routing_tick(struct hl_contacts *c, int64_t now_ms);

/* Raises an alert for supervisors (kind: "offer_timeout", ...): stored,
 * pushed to watching supervisors. */
void hl_routing_alert(struct hl_contacts *c, const char *kind,
		      int64_t staff_id, int64_t conv_id, const char *detail);

void hl_queue_stats(struct hl_session *s, const struct hl_msg *m);
void hl_queue_take(struct hl_session *s, const struct hl_msg *m);
void hl_offer_accept(struct hl_session *s, const struct hl_msg *m);
void hl_offer_decline(struct hl_session *s, const struct hl_msg *m);
void hl_queue_list(struct hl_session *s, const struct hl_msg *m);
void hl_queue_pick(struct hl_session *s, const struct hl_msg *m);
void hl_queue_watch(struct hl_session *s, const struct hl_msg *m);
/* staff.colleagues: the other counsellors and supervisors on shift or
 * connected, each with can_take (chat.transfer would accept them now). */
void hl_staff_colleagues(struct hl_session *s, const struct hl_msg *m);

#endif
