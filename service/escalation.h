/* escalation.h: owns escalations (docs/escalation.md): a counsellor raises
 * one on a chat they hold (active, or ended and not yet forgotten), on-shift
 * supervisors are alerted live and re-alerted while an urgent one waits, a
 * supervisor claims it and alone may then read the chat (after entering a
 * TOTP code again) with the keys the counsellor's client wraps to their
 * devices, and the claimer records the decision. Rows live in table
 * escalation (schema/0006); the undecided ones are also held in memory for
 * the alert timer and the loop-side access checks. Every change, read and
 * refusal is in the audit chain.
 *
 * The escalation note and the decision's reasons are sealed by the staff
 * client with the conversation's note key: the server stores ciphertext. */
#ifndef HL_ESCALATION_H
#define HL_ESCALATION_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <jansson.h>

#include "protocol.h"

struct hl_server;
struct hl_session;

/* Urgency: how often an unclaimed escalation re-alerts. */
enum hl_esc_urgency {
	HL_ESC_ROUTINE = 0, /* alerted once */
	HL_ESC_URGENT,      /* re-alerted every 5 x escalation.realert s */
	HL_ESC_IMMEDIATE,   /* re-alerted every escalation.realert s */
};

enum hl_esc_state { HL_ESC_OPEN = 0, HL_ESC_CLAIMED, HL_ESC_DECIDED };

/* An undecided escalation as the loop holds it. */
struct hl_esc_live {
	int64_t id, conv_id;
	int64_t raised_by;          /* staff id of the counsellor */
	int64_t claimed_by;         /* 0 while open */
	int64_t raised_at;          /* unix ms */
	enum hl_esc_urgency urgency;
	enum hl_esc_state state;    /* OPEN or CLAIMED */
	int64_t last_alert_ms;      /* when supervisors were last alerted */
	json_t *obj;                /* the wire object (owned reference) */
	struct hl_esc_live *next;
};

/* Embedded in struct hl_server. */
struct hl_escalations {
	struct hl_server *srv;
	struct hl_esc_live *live;   /* undecided, newest first */
	uv_timer_t timer;           /* re-alerts */
	bool timer_open;
	int init_status;            /* start-up load: 0 running, 1 ok, <0 */
};

/* Loads the undecided escalations (runs the loop until done: start-up only)
 * and starts the re-alert timer. 0 or an HL_E* status. */
int hl_escalations_init(struct hl_escalations *e, struct hl_server *srv);
void hl_escalations_stop(struct hl_escalations *e);
void hl_escalations_free(struct hl_escalations *e);

/* The undecided escalation with id esc / on conversation conv_id, or NULL. */
const struct hl_esc_live *hl_escalation_get(const struct hl_escalations *e,
					    int64_t esc);
const struct hl_esc_live *hl_escalation_of_conv(const struct hl_escalations *e,
						int64_t conv_id);

/* Who staff_id is to conversation conv_id by its escalations, on the
 * store's writer (any connection): HL_ESC_READER_CLAIMER (claimed one, any
 * state: the supervisor who handles it reads until it is purged), or
 * HL_ESC_READER_HOLDER (holds the conversation as its counsellor and an
 * escalation on it is undecided: lets the counsellor of an ended chat fetch
 * its keys and wrap them to the claimer; or a referral of it is a draft and
 * staff_id raised its escalation or holds the chat: they read it to review
 * and approve the referral), else HL_ESC_READER_NONE; a
 * negative HL_E* status on a database error. */
enum { HL_ESC_READER_NONE = 0, HL_ESC_READER_CLAIMER = 1, HL_ESC_READER_HOLDER = 2 };
int hl_escalation_reader(sqlite3 *db, int64_t conv_id, int64_t staff_id);

/* Appends an audit entry (a refusal, say) in a store job of its own, so it
 * commits although the request it is about changed nothing. detail is
 * short JSON built by the caller from ids and codes only. */
void hl_escalation_audit(struct hl_server *srv, int64_t actor,
			 const char *action, const char *detail);

/* Handlers (dispatch.c). */
void hl_escalation_raise(struct hl_session *s, const struct hl_msg *m);
void hl_escalation_list(struct hl_session *s, const struct hl_msg *m);
void hl_escalation_claim(struct hl_session *s, const struct hl_msg *m);
void hl_escalation_decide(struct hl_session *s, const struct hl_msg *m);

#endif
