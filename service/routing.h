/* routing.h: owns how waiting young people reach counsellors: automatic
 * offers to the best available counsellor on shift (least loaded, language,
 * skills), the offer watchdog (timeout -> next counsellor, the first set
 * away, supervisors alerted), taking the next chat or picking one from the
 * queue list, and the supervisors' live view (queue, counsellors, alerts). */
#ifndef HL_ROUTING_H
#define HL_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol.h"

struct hl_server;
struct hl_session;
struct hl_contacts;

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

void hl_offer_accept(struct hl_session *s, const struct hl_msg *m);
void hl_offer_decline(struct hl_session *s, const struct hl_msg *m);
void hl_queue_list(struct hl_session *s, const struct hl_msg *m);
void hl_queue_pick(struct hl_session *s, const struct hl_msg *m);
void hl_queue_watch(struct hl_session *s, const struct hl_msg *m);

#endif
