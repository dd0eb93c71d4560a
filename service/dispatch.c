/* dispatch.c: message type -> handler, role and state checks, and the
 * connection-level handlers (hello, ping). */
#include "dispatch.h"
#include "common.h"
#include "log.h"
#include "server.h"

#define ROLE_CONTACT (1u << HL_ROLE_CONTACT)
#define ROLE_STAFF (1u << HL_ROLE_STAFF)
#define ROLE_ANY (ROLE_CONTACT | ROLE_STAFF)

typedef void (*handler_fn)(struct hl_session *s, const struct hl_msg *m);

/* One row per message type. */
struct route {
	handler_fn fn;
	unsigned roles;     /* ROLE_* bits allowed to send it */
	bool before_hello;  /* allowed before hello */
};

static void on_hello(struct hl_session *s, const struct hl_msg *m);
static void on_ping(struct hl_session *s, const struct hl_msg *m);

static const struct route routes[HL_MSG__COUNT] = {
	[HL_MSG_HELLO] = {on_hello, ROLE_ANY, true},
	[HL_MSG_PING] = {on_ping, ROLE_ANY, false},
};

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
