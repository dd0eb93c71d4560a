/* dispatch.c: message type -> handler, role and state checks, and the
 * connection-level handlers (hello, ping). */
#include "dispatch.h"
#include "auth.h"
#include "contact.h"
#include "escalation.h"
#include "evidence_msg.h"
#include "referral.h"
#include "hours.h"
#include "inbox.h"
#include "routing.h"
#include "shift.h"
#include "stats.h"
#include "trust.h"
#include "common.h"
#include "log.h"
#include "server.h"

#define ROLE_CONTACT (1u << HL_ROLE_CONTACT)
#define ROLE_STAFF (1u << HL_ROLE_STAFF)
#define ROLE_ANY (ROLE_CONTACT | ROLE_STAFF)

typedef void (*handler_fn)(struct hl_session *s, const struct hl_msg *m);

/* Who must be logged in to send a type (staff connections only). */
enum need {
	NEED_NONE,    /* anyone who said hello */
	NEED_ANON,    /* a staff socket that is not logged in (login, enrol) */
	NEED_STAFF,   /* any logged-in member of staff */
	NEED_ADMIN,   /* a logged-in admin */
	NEED_SUPER,   /* a logged-in supervisor or admin */
};

/* One row per message type. */
struct route {
	handler_fn fn;
	unsigned roles;     /* ROLE_* bits allowed to send it */
	bool before_hello;  /* allowed before hello */
	enum need need;     /* authentication required */
};

static void on_hello(struct hl_session *s, const struct hl_msg *m);
static void on_ping(struct hl_session *s, const struct hl_msg *m);

static const struct route routes[HL_MSG__COUNT] = {
	[HL_MSG_HELLO] = {on_hello, ROLE_ANY, true, NEED_NONE},
	[HL_MSG_PING] = {on_ping, ROLE_ANY, false, NEED_NONE},
	[HL_MSG_AUTH_LOGIN] = {hl_auth_login, ROLE_STAFF, false, NEED_ANON},
	[HL_MSG_AUTH_RESUME] = {hl_auth_resume, ROLE_STAFF, false, NEED_ANON},
	[HL_MSG_AUTH_ENROL_BEGIN] = {hl_auth_enrol_begin, ROLE_STAFF, false, NEED_ANON},
	[HL_MSG_AUTH_ENROL_FINISH] = {hl_auth_enrol_finish, ROLE_STAFF, false, NEED_ANON},
	[HL_MSG_AUTH_LOGOUT] = {hl_auth_logout, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_AUTH_REAUTH] = {hl_auth_reauth, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_PRESENCE_SET] = {hl_auth_presence, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_STAFF_LIST] = {hl_auth_staff_list, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_STAFF_CREATE] = {hl_auth_staff_create, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_STAFF_SET_STATE] = {hl_auth_staff_set_state, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_STAFF_RESET] = {hl_auth_staff_reset, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_STAFF_REVOKE] = {hl_auth_staff_revoke, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_STAFF_COLLEAGUES] = {hl_staff_colleagues, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_CONTACT_START] = {hl_contact_start, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_CONTACT_RESUME] = {hl_contact_resume, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_CONTACT_LEAVE] = {hl_contact_leave, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_QUEUE_STATS] = {hl_queue_stats, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_QUEUE_TAKE] = {hl_queue_take, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_CHAT_SEND] = {hl_chat_send, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_SYNC] = {hl_chat_sync, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_END] = {hl_chat_end, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_TYPING] = {hl_chat_signal, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_READ] = {hl_chat_receipt, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_NOTE] = {hl_chat_send, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_CHAT_DELIVERED] = {hl_chat_receipt, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CHAT_TRANSFER] = {hl_chat_transfer, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_CHAT_JOIN] = {hl_chat_join, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_CHAT_TAG] = {hl_chat_tag, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_CHAT_WRAPUP] = {hl_chat_wrapup, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_OFFER_ACCEPT] = {hl_offer_accept, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_OFFER_DECLINE] = {hl_offer_decline, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_QUEUE_LIST] = {hl_queue_list, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_QUEUE_PICK] = {hl_queue_pick, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_QUEUE_WATCH] = {hl_queue_watch, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_SHIFT_START] = {hl_shift_start, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_SHIFT_END] = {hl_shift_end, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_LINE_STATUS] = {hl_line_status, ROLE_ANY, false, NEED_NONE},
	[HL_MSG_STATS_GET] = {hl_stats_get, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_INBOX_POST] = {hl_inbox_post, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_INBOX_CHALLENGE] = {hl_inbox_challenge, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_INBOX_FETCH] = {hl_inbox_fetch, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_INBOX_LIST] = {hl_inbox_list, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_INBOX_OPEN] = {hl_inbox_open, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_INBOX_REPLY] = {hl_inbox_reply, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_E2E_HELLO] = {hl_e2e_hello, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_E2E_ACCEPT] = {hl_e2e_accept, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_E2E_ORG] = {hl_trust_org, ROLE_ANY, false, NEED_NONE},
	[HL_MSG_DEVICE_REGISTER] = {hl_device_register, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_DEVICE_LIST] = {hl_device_list, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_DEVICE_CERTIFY] = {hl_device_certify, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_DEVICE_REVOKE] = {hl_device_revoke, ROLE_STAFF, false, NEED_ADMIN},
	[HL_MSG_DEVICE_REVOCATIONS] = {hl_device_revocations, ROLE_ANY, false, NEED_NONE},
	[HL_MSG_KEY_WRAP] = {hl_key_wrap, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_KEY_WRAPS] = {hl_key_wraps, ROLE_ANY, false, NEED_STAFF},
	[HL_MSG_CONTACT_SET_RETURN] = {hl_contact_set_return, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_CONTACT_RETURN] = {hl_contact_return, ROLE_CONTACT, false, NEED_NONE},
	[HL_MSG_ESCALATION_RAISE] = {hl_escalation_raise, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_ESCALATION_LIST] = {hl_escalation_list, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_ESCALATION_CLAIM] = {hl_escalation_claim, ROLE_STAFF, false, NEED_SUPER},
	[HL_MSG_ESCALATION_DECIDE] = {hl_escalation_decide, ROLE_STAFF, false, NEED_SUPER},
	/* NEED_STAFF: the handler checks the role itself, so that a
	 * counsellor's attempt is audited. */
	[HL_MSG_EVIDENCE_SIGN] = {hl_evidence_sign, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_EVIDENCE_MATERIAL] = {hl_evidence_material, ROLE_STAFF, false, NEED_STAFF},
	/* Referrals: who may act is the referral's people (referral.c). */
	[HL_MSG_REFERRAL_CREATE] = {hl_referral_create, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_UPDATE] = {hl_referral_update, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_APPROVE] = {hl_referral_approve, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_LIST] = {hl_referral_list, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_GET] = {hl_referral_get, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_RETRY] = {hl_referral_retry, ROLE_STAFF, false, NEED_STAFF},
	[HL_MSG_REFERRAL_DOWNLOAD] = {hl_referral_download, ROLE_STAFF, false, NEED_STAFF},
};

/* Checks r->need for s. Answers and returns false when not met. */
static bool authorised(struct hl_session *s, const struct route *r,
		       const struct hl_msg *m)
{
	struct hl_auth *a = &s->srv->auth;
	struct hl_auth_staff *st;
	unsigned want = 0;

	if (r->need == NEED_NONE || s->role == HL_ROLE_CONTACT)
		return true; /* needs are about staff; contacts are anonymous */
	if (r->need == NEED_ANON)
		return true; /* handlers refuse when already logged in */
	if (!s->staff_id) {
		hl_session_error(s, m->id, HL_ERR_AUTH_REQUIRED, "log in first",
				 NULL);
		return false;
	}
	if (!hl_auth_touch(a, s))
		return false;
	st = hl_auth_staff_of(a, s);
	if (r->need == NEED_ADMIN)
		want = HL_STAFF_ADMIN;
	else if (r->need == NEED_SUPER)
		want = HL_STAFF_ADMIN | HL_STAFF_SUPERVISOR;
	if (want && !(st->row.roles & want)) {
		char detail[96];

		hl_warn("auth.forbidden", "conn=%s staff=%lld type=%s",
			s->id_str, (long long)s->staff_id,
			hl_msg_type_name(m->type));
		/* Staff reaching for another role's operations are audited,
		 * not only logged (at most ws.rate rows a second a socket). */
		snprintf(detail, sizeof(detail),
			 "{\"request\":\"%s\",\"error\":\"forbidden\"}",
			 hl_msg_type_name(m->type));
		hl_escalation_audit(s->srv, s->staff_id, "auth.forbidden", detail);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "your role does not allow this", "type");
		return false;
	}
	return true;
}

void hl_dispatch(struct hl_session *s, const struct hl_msg *m)
{
	const struct route *r;

	if ((unsigned)m->type >= HL_MSG__COUNT || !routes[m->type].fn) {
		hl_session_error(s, m->id, HL_ERR_UNKNOWN_TYPE,
				 "unknown message type", "type");
		return;
	}
	r = &routes[m->type];
	if (!(r->roles & (1u << s->role))) {
		if (s->role == HL_ROLE_CONTACT) {
			hl_warn("conn.forbidden_type", "conn=%s type=%s",
				s->id_str, hl_msg_type_name(m->type));
			hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
					 "message type not allowed on this protocol",
					 "type");
			hl_session_close(s, 1008, "message type not allowed");
		} else {
			hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
					 "message type not allowed for your role",
					 "type");
		}
		return;
	}
	if (!r->before_hello && !s->greeted) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "send hello first", NULL);
		return;
	}
	if (!authorised(s, r, m))
		return;
	r->fn(s, m);
}

static void on_hello(struct hl_session *s, const struct hl_msg *m)
{
	json_t *reply;

	if (s->greeted) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "hello was already accepted", NULL);
		return;
	}
	if (m->u.hello.version != HL_PROTO_VERSION) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "unsupported protocol version; this server speaks 1",
				 "version");
		return;
	}
	reply = hl_proto_reply("welcome", m->id);
	if (!reply) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, "out of memory", NULL);
		return;
	}
	json_object_set_new(reply, "protocol",
			    json_string(s->role == HL_ROLE_STAFF
						? "helpline.staff.v1"
						: "helpline.contact.v1"));
	json_object_set_new(reply, "version", json_integer(HL_PROTO_VERSION));
	json_object_set_new(reply, "server", json_string("helplined/" HL_VERSION));
	json_object_set_new(reply, "max_message",
			    json_integer((json_int_t)s->srv->cfg.ws_max_message));
	json_object_set_new(reply, "session", json_string(s->id_str));
	if (hl_session_send(s, reply) == 0)
		s->greeted = true;
	json_decref(reply);
	hl_debug("conn.hello", "conn=%s role=%s", s->id_str, hl_role_name(s->role));
}

static void on_ping(struct hl_session *s, const struct hl_msg *m)
{
	json_t *reply = hl_proto_reply("pong", m->id);

	if (!reply) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, "out of memory", NULL);
		return;
	}
	if (m->u.ping.data)
		json_object_set(reply, "data",
				json_object_get(m->root, "data"));
	hl_session_send(s, reply);
	json_decref(reply);
}
