/* protocol.c: strict JSON frame decoder driven by per-type field tables,
 * and the reply encoder. See docs/protocol.md for the wire rules. */
#include "protocol.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* ---- names ---------------------------------------------------------- */

/* Wire name and the generic human text of each error code. */
static const struct {
	const char *name;
	const char *text;
} err_codes[HL_ERR__COUNT] = {
	[HL_ERR_BAD_JSON] = {"bad_json", "frame is not valid JSON"},
	[HL_ERR_BAD_UTF8] = {"bad_utf8", "frame is not valid UTF-8"},
	[HL_ERR_TOO_LARGE] = {"too_large", "frame is too large"},
	[HL_ERR_TOO_DEEP] = {"too_deep", "frame is nested too deeply"},
	[HL_ERR_NOT_OBJECT] = {"not_object", "frame is not a JSON object"},
	[HL_ERR_DUPLICATE_KEY] = {"duplicate_key", "duplicate object key"},
	[HL_ERR_BAD_TYPE] = {"bad_type", "type must be a string"},
	[HL_ERR_UNKNOWN_TYPE] = {"unknown_type", "unknown message type"},
	[HL_ERR_BAD_ID] = {"bad_id", "id must be 1-64 characters of A-Z a-z 0-9 . _ : -"},
	[HL_ERR_MISSING_FIELD] = {"missing_field", "a required field is missing"},
	[HL_ERR_BAD_FIELD] = {"bad_field", "a field has an invalid value"},
	[HL_ERR_UNKNOWN_FIELD] = {"unknown_field", "unknown field for this message type"},
	[HL_ERR_FORBIDDEN] = {"forbidden", "not allowed"},
	[HL_ERR_BAD_STATE] = {"bad_state", "not allowed in the current state"},
	[HL_ERR_RATE_LIMITED] = {"rate_limited", "too many requests; slow down"},
	[HL_ERR_STORE_FAILED] = {"store_failed", "could not be stored; nothing was saved"},
	[HL_ERR_BUSY] = {"busy", "server busy; retry later"},
	[HL_ERR_SHUTTING_DOWN] = {"shutting_down", "server is shutting down"},
	[HL_ERR_INTERNAL] = {"internal", "internal error"},
	[HL_ERR_AUTH_FAILED] = {"auth_failed", "username, password or code is wrong"},
	[HL_ERR_AUTH_REQUIRED] = {"auth_required", "log in first"},
	[HL_ERR_REAUTH_REQUIRED] = {"reauth_required", "enter a code from your authenticator app again"},
	[HL_ERR_NOT_FOUND] = {"not_found", "no such object"},
	[HL_ERR_CONFLICT] = {"conflict", "already exists"},
	[HL_ERR_CLOSED] = {"closed", "the line is closed now"},
	[HL_ERR_EXPIRED] = {"expired", "this is no longer valid"},
	[HL_ERR_HANDOVER_REQUIRED] = {"handover_required", "hand over your chats first"},
	[HL_ERR_BAD_ENVELOPE] = {"bad_envelope", "not a valid end-to-end envelope for this chat"},
	[HL_ERR_STALE_EPOCH] = {"stale_epoch", "sealed with old keys: seal it again with the newest"},
	[HL_ERR_BAD_COUNTER] = {"bad_counter", "not the next message counter"},
	[HL_ERR_BAD_HANDSHAKE] = {"bad_handshake", "the key exchange does not verify"},
};

const char *hl_err_code_name(enum hl_err_code code)
{
	if ((unsigned)code >= HL_ERR__COUNT)
		return err_codes[HL_ERR_INTERNAL].name;
	return err_codes[code].name;
}

/* ---- field tables --------------------------------------------------- */

/* The JSON kind a field must have. */
enum field_kind {
	FK_STRING,  /* JSON string; min/max bound its length in bytes */
	FK_INT,     /* JSON integer (not real, not boolean); min/max bound it */
};

/* Extra rule for the bytes of a string field (jansson has already proved
 * every string is valid UTF-8 without NUL). */
enum charset {
	CS_UTF8,      /* any valid UTF-8 */
	CS_PRINTABLE, /* printable ASCII 0x20-0x7e */
	CS_TOKEN,     /* [A-Za-z0-9._:-], as for request ids */
};

/*
 * One field of a message type. The decoded value is stored at offset in
 * struct hl_msg: a const char * for FK_STRING, an int64_t for FK_INT. An
 * absent optional field leaves it NULL / 0.
 */
struct field_spec {
	const char *name;
	enum field_kind kind;
	bool required;
	int64_t min, max;   /* string: byte length; integer: value */
	enum charset cs;    /* FK_STRING only */
	size_t offset;
};

/*
 * One message type. check, when set, runs after every field passed its
 * row (for rules that span fields); it fills err and returns false to
 * reject.
 */
struct msg_spec {
	const char *name;
	const struct field_spec *fields;
	size_t nfields;
	bool (*check)(struct hl_msg *m, struct hl_proto_error *err);
	bool flat;   /* may be decoded without jansson (decode_flat): its
		      * fields are strings and its handler never reads root */
};

#define MSG_FIELD(member) offsetof(struct hl_msg, u.member)

static const struct field_spec hello_fields[] = {
	{"version", FK_INT, true, 1, 1000, CS_UTF8, MSG_FIELD(hello.version)},
	{"client", FK_STRING, false, 1, 64, CS_PRINTABLE, MSG_FIELD(hello.client)},
};

static const struct field_spec ping_fields[] = {
	{"data", FK_STRING, false, 0, 64, CS_UTF8, MSG_FIELD(ping.data)},
};

static const struct field_spec login_fields[] = {
	{"username", FK_STRING, true, 1, 64, CS_PRINTABLE, MSG_FIELD(login.username)},
	{"password", FK_STRING, true, 1, 1024, CS_UTF8, MSG_FIELD(login.password)},
	{"totp", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(login.totp)},
};

static const struct field_spec resume_fields[] = {
	{"token", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(resume.token)},
};

static const struct field_spec reauth_fields[] = {
	{"totp", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(reauth.totp)},
};

static const struct field_spec enrol_begin_fields[] = {
	{"code", FK_STRING, true, 1, 64, CS_PRINTABLE, MSG_FIELD(enrol.code)},
};

static const struct field_spec enrol_finish_fields[] = {
	{"code", FK_STRING, true, 1, 64, CS_PRINTABLE, MSG_FIELD(enrol.code)},
	{"password", FK_STRING, true, 1, 1024, CS_UTF8, MSG_FIELD(enrol.password)},
	{"totp", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(enrol.totp)},
};

static const struct field_spec presence_fields[] = {
	{"status", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(presence.status)},
};

static const struct field_spec staff_create_fields[] = {
	{"username", FK_STRING, true, 1, 64, CS_PRINTABLE, MSG_FIELD(create.username)},
	{"display_name", FK_STRING, true, 1, 64, CS_UTF8, MSG_FIELD(create.display_name)},
	{"roles", FK_STRING, true, 1, 64, CS_PRINTABLE, MSG_FIELD(create.roles)},
	{"languages", FK_STRING, false, 0, 128, CS_PRINTABLE, MSG_FIELD(create.languages)},
	{"skills", FK_STRING, false, 0, 128, CS_PRINTABLE, MSG_FIELD(create.skills)},
	{"capacity", FK_INT, false, 0, 20, CS_UTF8, MSG_FIELD(create.capacity)},
};

static const struct field_spec staff_list_fields[] = {
	{"after", FK_INT, false, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(target.after)},
};

static const struct field_spec set_state_fields[] = {
	{"staff_id", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(target.staff_id)},
	{"state", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(target.state)},
};

static const struct field_spec reset_fields[] = {
	{"staff_id", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(target.staff_id)},
	{"what", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(target.what)},
};

static const struct field_spec revoke_fields[] = {
	{"staff_id", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(target.staff_id)},
};

static const struct field_spec contact_start_fields[] = {
	{"topics", FK_STRING, false, 0, 256, CS_PRINTABLE, MSG_FIELD(start.topics)},
	{"flags", FK_STRING, false, 0, 128, CS_PRINTABLE, MSG_FIELD(start.flags)},
	{"age_band", FK_STRING, false, 1, 8, CS_TOKEN, MSG_FIELD(start.age_band)},
	{"language", FK_STRING, false, 1, 16, CS_TOKEN, MSG_FIELD(start.language)},
};

static const struct field_spec contact_resume_fields[] = {
	{"resume", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(cresume.resume)},
	{"last_seq", FK_INT, true, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(cresume.last_seq)},
};

static const struct field_spec chat_send_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"payload", FK_STRING, true, 1, 87384, CS_TOKEN, MSG_FIELD(chat.payload)},
};

static const struct field_spec chat_sync_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"last_seq", FK_INT, true, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(chat.last_seq)},
};

static const struct field_spec chat_read_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"seq", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(chat.last_seq)},
};

static const struct field_spec chat_end_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
};

static const struct field_spec chat_delivered_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"seq", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(chat.last_seq)},
};

static const struct field_spec conv_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
};

static const struct field_spec chat_transfer_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"to", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(chat.to)},
	{"note", FK_STRING, false, 1, 87384, CS_TOKEN, MSG_FIELD(chat.payload)},
};

static const struct field_spec chat_tag_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"tags", FK_STRING, true, 0, 256, CS_PRINTABLE, MSG_FIELD(chat.tags)},
};

static const struct field_spec chat_wrapup_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(chat.conversation)},
	{"outcome", FK_STRING, true, 1, 32, CS_TOKEN, MSG_FIELD(chat.outcome)},
	{"tags", FK_STRING, false, 0, 256, CS_PRINTABLE, MSG_FIELD(chat.tags)},
	{"notes", FK_STRING, false, 1, 87384, CS_TOKEN, MSG_FIELD(chat.payload)},
};

static const struct field_spec watch_fields[] = {
	{"on", FK_INT, true, 0, 1, CS_UTF8, MSG_FIELD(watch.on)},
};

static const struct field_spec stats_fields[] = {
	{"from", FK_INT, true, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(stats.from)},
	{"to", FK_INT, true, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(stats.to)},
	{"by", FK_STRING, true, 3, 4, CS_TOKEN, MSG_FIELD(stats.by)},
};

static const struct field_spec inbox_post_fields[] = {
	{"return_pk", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(inbox.return_pk)},
	{"reply_pk", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(inbox.reply_pk)},
	{"sealed", FK_STRING, true, 1, 87384, CS_TOKEN, MSG_FIELD(inbox.sealed)},
};

static const struct field_spec inbox_challenge_fields[] = {
	{"return_pk", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(inbox.return_pk)},
};

static const struct field_spec return_fields[] = {
	{"return_pk", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(inbox.return_pk)},
	{"signature", FK_STRING, true, 86, 86, CS_TOKEN, MSG_FIELD(inbox.signature)},
};

/* after: the next of the page before (a message id for inbox.fetch; an
 * opaque position for inbox.list). */
static const struct field_spec inbox_fetch_fields[] = {
	{"return_pk", FK_STRING, true, 43, 43, CS_TOKEN, MSG_FIELD(inbox.return_pk)},
	{"signature", FK_STRING, true, 86, 86, CS_TOKEN, MSG_FIELD(inbox.signature)},
	{"after", FK_INT, false, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(inbox.after)},
};

static const struct field_spec inbox_list_fields[] = {
	{"after", FK_INT, false, 0, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(inbox.after)},
};

static const struct field_spec inbox_open_fields[] = {
	{"message", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(inbox.message)},
};

static const struct field_spec inbox_reply_fields[] = {
	{"message", FK_INT, true, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(inbox.message)},
	{"reply", FK_STRING, true, 1, 87384, CS_TOKEN, MSG_FIELD(inbox.reply)},
};

#define B64_KEY 43  /* base64url of 32 bytes */
#define B64_SIG 86  /* base64url of 64 bytes */
#define B64_CERT 400 /* base64url of a certificate (at most 290 bytes) */
#define ID_MAX INT64_C(9007199254740991)

static const struct field_spec e2e_hello_fields[] = {
	{"kx_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.kx_pk)},
};

static const struct field_spec e2e_accept_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(e2e.conversation)},
	{"hello", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.hello)},
	{"kx_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.kx_pk)},
	{"cert", FK_STRING, true, 1, B64_CERT, CS_TOKEN, MSG_FIELD(e2e.cert)},
	{"issuer", FK_STRING, true, 1, B64_CERT, CS_TOKEN, MSG_FIELD(e2e.issuer)},
	{"sig", FK_STRING, true, B64_SIG, B64_SIG, CS_TOKEN, MSG_FIELD(e2e.sig)},
};

static const struct field_spec device_register_fields[] = {
	{"sign_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.sign_pk)},
	{"box_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.box_pk)},
	{"sig", FK_STRING, true, B64_SIG, B64_SIG, CS_TOKEN, MSG_FIELD(e2e.sig)},
};

/* after: how many were read already (revocations are only ever added, at
 * the end of their order). */
static const struct field_spec revocations_fields[] = {
	{"after", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.after)},
	{"hashes", FK_STRING, false, 43, 87, CS_TOKEN, MSG_FIELD(e2e.hashes)},
};

static const struct field_spec device_list_fields[] = {
	{"staff_id", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.staff_id)},
	{"after", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.after)},
};

static const struct field_spec device_certify_fields[] = {
	{"device", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.device)},
	{"cert", FK_STRING, true, 1, B64_CERT, CS_TOKEN, MSG_FIELD(e2e.cert)},
	{"issuer", FK_STRING, true, 1, B64_CERT, CS_TOKEN, MSG_FIELD(e2e.issuer)},
};

static const struct field_spec device_revoke_fields[] = {
	{"device", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.device)},
	{"revocation", FK_STRING, true, 1, 200, CS_TOKEN, MSG_FIELD(e2e.revocation)},
	{"issuer", FK_STRING, true, 1, B64_CERT, CS_TOKEN, MSG_FIELD(e2e.issuer)},
};

static const struct field_spec key_wrap_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(e2e.conversation)},
	{"to_device", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.to_device)},
	{"from_device", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.from_device)},
	{"sealed", FK_STRING, true, 1, 87384, CS_TOKEN, MSG_FIELD(e2e.sealed)},
	{"sig", FK_STRING, true, B64_SIG, B64_SIG, CS_TOKEN, MSG_FIELD(e2e.sig)},
	{"escalation", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.escalation)},
};

static const struct field_spec escalation_raise_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(esc.conversation)},
	{"reason", FK_STRING, true, 1, 32, CS_TOKEN, MSG_FIELD(esc.reason)},
	{"urgency", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(esc.urgency)},
	{"note", FK_STRING, false, 1, 87384, CS_TOKEN, MSG_FIELD(esc.note)},
};

static const struct field_spec escalation_claim_fields[] = {
	{"escalation", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(esc.escalation)},
};

static const struct field_spec evidence_sign_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(evidence.conversation)},
	{"bundle", FK_STRING, true, 1, HL_PROTO_BUNDLE_MAX, CS_UTF8, MSG_FIELD(evidence.bundle)},
};

static const struct field_spec evidence_material_fields[] = {
	{"conversation", FK_STRING, true, 1, 20, CS_TOKEN, MSG_FIELD(evidence.conversation)},
	{"after", FK_INT, false, 1, INT64_C(9007199254740991), CS_UTF8, MSG_FIELD(evidence.after)},
};

#define REF_EDIT_FIELDS \
	{"legal_basis", FK_STRING, true, 1, 32, CS_TOKEN, MSG_FIELD(ref.legal_basis)}, \
	{"urgency", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(ref.urgency)}, \
	{"consent_asked", FK_INT, true, 0, 1, CS_UTF8, MSG_FIELD(ref.consent_asked)}, \
	{"consent_answer", FK_STRING, false, 1, 16, CS_TOKEN, MSG_FIELD(ref.consent_answer)}, \
	{"consent_seq", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.consent_seq)}, \
	{"identity_included", FK_INT, true, 0, 1, CS_UTF8, MSG_FIELD(ref.identity_included)}, \
	{"identity_reason", FK_STRING, true, 1, 32, CS_TOKEN, MSG_FIELD(ref.identity_reason)}, \
	{"tags", FK_STRING, false, 0, 256, CS_PRINTABLE, MSG_FIELD(ref.tags)}, \
	{"bundle_digest", FK_STRING, false, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(ref.bundle_digest)}, \
	{"sealed", FK_STRING, false, 1, HL_PROTO_SEALED_MAX, CS_TOKEN, MSG_FIELD(ref.sealed)}, \
	{"sealed_to", FK_STRING, false, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(ref.sealed_to)}, \
	{"staff_copy", FK_STRING, false, 1, 87384, CS_TOKEN, MSG_FIELD(ref.staff_copy)}

static const struct field_spec referral_create_fields[] = {
	{"escalation", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.escalation)},
	{"kind", FK_STRING, true, 1, 16, CS_TOKEN, MSG_FIELD(ref.kind)},
	REF_EDIT_FIELDS,
};

static const struct field_spec referral_update_fields[] = {
	{"referral", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.referral)},
	{"revision", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.revision)},
	REF_EDIT_FIELDS,
};

static const struct field_spec referral_approve_fields[] = {
	{"referral", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.referral)},
	{"revision", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.revision)},
};

static const struct field_spec referral_one_fields[] = {
	{"referral", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.referral)},
};

static const struct field_spec referral_download_fields[] = {
	{"referral", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.referral)},
	{"offset", FK_INT, false, 0, ID_MAX, CS_UTF8, MSG_FIELD(ref.offset)},
};

static const struct field_spec escalation_list_fields[] = {
	{"before", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(esc.before)},
};

static const struct field_spec referral_list_fields[] = {
	{"escalation", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(ref.escalation)},
};

static int fail(struct hl_proto_error *err, enum hl_err_code code,
		const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* sealed and sealed_to come together. */
static bool check_referral(struct hl_msg *m, struct hl_proto_error *err)
{
	if (!m->u.ref.sealed == !m->u.ref.sealed_to)
		return true;
	fail(err, HL_ERR_MISSING_FIELD, m->u.ref.sealed ? "sealed_to" : "sealed",
	     "sealed and sealed_to go together");
	return false;
}

static const struct field_spec escalation_decide_fields[] = {
	{"escalation", FK_INT, true, 1, ID_MAX, CS_UTF8, MSG_FIELD(esc.escalation)},
	{"decision", FK_STRING, true, 1, 32, CS_TOKEN, MSG_FIELD(esc.decision)},
	{"reasons", FK_STRING, false, 1, 87384, CS_TOKEN, MSG_FIELD(esc.reasons)},
};

static const struct field_spec set_return_fields[] = {
	{"sign_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.sign_pk)},
	{"box_pk", FK_STRING, true, B64_KEY, B64_KEY, CS_TOKEN, MSG_FIELD(e2e.box_pk)},
};

static const struct field_spec key_wraps_fields[] = {
	{"conversation", FK_STRING, false, 1, 20, CS_TOKEN, MSG_FIELD(e2e.conversation)},
	{"after", FK_INT, false, 1, ID_MAX, CS_UTF8, MSG_FIELD(e2e.after)},
};

/* staff.create's capacity is optional: -1 tells the handler it was absent. */
static bool check_staff_create(struct hl_msg *m, struct hl_proto_error *err)
{
	(void)err;
	if (!json_object_get(m->root, "capacity"))
		m->u.create.capacity = -1;
	return true;
}

#define SPEC(name, fields, check) {name, fields, HL_ARRAY_LEN(fields), check, false}
#define SPEC_FLAT(name, fields) {name, fields, HL_ARRAY_LEN(fields), NULL, true}
#define SPEC_EMPTY(name) {name, NULL, 0, NULL, false}

static const struct msg_spec msg_specs[HL_MSG__COUNT] = {
	[HL_MSG_HELLO] = SPEC("hello", hello_fields, NULL),
	[HL_MSG_PING] = SPEC("ping", ping_fields, NULL),
	[HL_MSG_AUTH_LOGIN] = SPEC("auth.login", login_fields, NULL),
	[HL_MSG_AUTH_RESUME] = SPEC("auth.resume", resume_fields, NULL),
	[HL_MSG_AUTH_LOGOUT] = SPEC_EMPTY("auth.logout"),
	[HL_MSG_AUTH_REAUTH] = SPEC("auth.reauth", reauth_fields, NULL),
	[HL_MSG_AUTH_ENROL_BEGIN] = SPEC("auth.enrol_begin", enrol_begin_fields, NULL),
	[HL_MSG_AUTH_ENROL_FINISH] = SPEC("auth.enrol_finish", enrol_finish_fields, NULL),
	[HL_MSG_PRESENCE_SET] = SPEC("presence.set", presence_fields, NULL),
	[HL_MSG_STAFF_CREATE] = SPEC("staff.create", staff_create_fields, check_staff_create),
	[HL_MSG_STAFF_LIST] = SPEC("staff.list", staff_list_fields, NULL),
	[HL_MSG_STAFF_SET_STATE] = SPEC("staff.set_state", set_state_fields, NULL),
	[HL_MSG_STAFF_RESET] = SPEC("staff.reset", reset_fields, NULL),
	[HL_MSG_STAFF_REVOKE] = SPEC("staff.revoke_sessions", revoke_fields, NULL),
	[HL_MSG_STAFF_COLLEAGUES] = SPEC_EMPTY("staff.colleagues"),
	[HL_MSG_CONTACT_START] = SPEC("contact.start", contact_start_fields, NULL),
	[HL_MSG_CONTACT_RESUME] = SPEC("contact.resume", contact_resume_fields, NULL),
	[HL_MSG_CONTACT_LEAVE] = SPEC_EMPTY("contact.leave"),
	[HL_MSG_QUEUE_STATS] = SPEC_EMPTY("queue.stats"),
	[HL_MSG_QUEUE_TAKE] = SPEC_EMPTY("queue.take"),
	[HL_MSG_CHAT_SEND] = SPEC_FLAT("chat.send", chat_send_fields),
	[HL_MSG_CHAT_SYNC] = SPEC("chat.sync", chat_sync_fields, NULL),
	[HL_MSG_CHAT_END] = SPEC("chat.end", chat_end_fields, NULL),
	[HL_MSG_CHAT_TYPING] = SPEC_FLAT("chat.typing", chat_end_fields),
	[HL_MSG_CHAT_READ] = SPEC("chat.read", chat_read_fields, NULL),
	[HL_MSG_CHAT_NOTE] = SPEC("chat.note", chat_send_fields, NULL),
	[HL_MSG_CHAT_DELIVERED] = SPEC("chat.delivered", chat_delivered_fields, NULL),
	[HL_MSG_CHAT_TRANSFER] = SPEC("chat.transfer", chat_transfer_fields, NULL),
	[HL_MSG_CHAT_JOIN] = SPEC("chat.join", conv_fields, NULL),
	[HL_MSG_CHAT_TAG] = SPEC("chat.tag", chat_tag_fields, NULL),
	[HL_MSG_CHAT_WRAPUP] = SPEC("chat.wrapup", chat_wrapup_fields, NULL),
	[HL_MSG_OFFER_ACCEPT] = SPEC("offer.accept", conv_fields, NULL),
	[HL_MSG_OFFER_DECLINE] = SPEC("offer.decline", conv_fields, NULL),
	[HL_MSG_QUEUE_LIST] = SPEC_EMPTY("queue.list"),
	[HL_MSG_QUEUE_PICK] = SPEC("queue.pick", conv_fields, NULL),
	[HL_MSG_QUEUE_WATCH] = SPEC("queue.watch", watch_fields, NULL),
	[HL_MSG_SHIFT_START] = SPEC_EMPTY("shift.start"),
	[HL_MSG_SHIFT_END] = SPEC_EMPTY("shift.end"),
	[HL_MSG_LINE_STATUS] = SPEC_EMPTY("line.status"),
	[HL_MSG_STATS_GET] = SPEC("stats.get", stats_fields, NULL),
	[HL_MSG_INBOX_POST] = SPEC("inbox.post", inbox_post_fields, NULL),
	[HL_MSG_INBOX_CHALLENGE] = SPEC("inbox.challenge", inbox_challenge_fields, NULL),
	[HL_MSG_INBOX_FETCH] = SPEC("inbox.fetch", inbox_fetch_fields, NULL),
	[HL_MSG_INBOX_LIST] = SPEC("inbox.list", inbox_list_fields, NULL),
	[HL_MSG_INBOX_OPEN] = SPEC("inbox.open", inbox_open_fields, NULL),
	[HL_MSG_INBOX_REPLY] = SPEC("inbox.reply", inbox_reply_fields, NULL),
	[HL_MSG_E2E_HELLO] = SPEC("e2e.hello", e2e_hello_fields, NULL),
	[HL_MSG_E2E_ACCEPT] = SPEC("e2e.accept", e2e_accept_fields, NULL),
	[HL_MSG_E2E_ORG] = SPEC_EMPTY("e2e.org"),
	[HL_MSG_DEVICE_REGISTER] = SPEC("device.register", device_register_fields, NULL),
	[HL_MSG_DEVICE_LIST] = SPEC("device.list", device_list_fields, NULL),
	[HL_MSG_DEVICE_CERTIFY] = SPEC("device.certify", device_certify_fields, NULL),
	[HL_MSG_DEVICE_REVOKE] = SPEC("device.revoke", device_revoke_fields, NULL),
	[HL_MSG_DEVICE_REVOCATIONS] = SPEC("device.revocations", revocations_fields, NULL),
	[HL_MSG_KEY_WRAP] = SPEC("key.wrap", key_wrap_fields, NULL),
	[HL_MSG_KEY_WRAPS] = SPEC("key.wraps", key_wraps_fields, NULL),
	[HL_MSG_CONTACT_SET_RETURN] = SPEC("contact.set_return", set_return_fields, NULL),
	[HL_MSG_CONTACT_RETURN] = SPEC("contact.return", return_fields, NULL),
	[HL_MSG_ESCALATION_RAISE] = SPEC("escalation.raise", escalation_raise_fields, NULL),
	[HL_MSG_ESCALATION_LIST] = SPEC("escalation.list", escalation_list_fields, NULL),
	[HL_MSG_ESCALATION_CLAIM] = SPEC("escalation.claim", escalation_claim_fields, NULL),
	[HL_MSG_ESCALATION_DECIDE] = SPEC("escalation.decide", escalation_decide_fields, NULL),
	[HL_MSG_EVIDENCE_SIGN] = SPEC("evidence.sign", evidence_sign_fields, NULL),
	[HL_MSG_EVIDENCE_MATERIAL] = SPEC("evidence.material", evidence_material_fields, NULL),
	[HL_MSG_REFERRAL_CREATE] = SPEC("referral.create", referral_create_fields, check_referral),
	[HL_MSG_REFERRAL_UPDATE] = SPEC("referral.update", referral_update_fields, check_referral),
	[HL_MSG_REFERRAL_APPROVE] = SPEC("referral.approve", referral_approve_fields, NULL),
	[HL_MSG_REFERRAL_LIST] = SPEC("referral.list", referral_list_fields, NULL),
	[HL_MSG_REFERRAL_GET] = SPEC("referral.get", referral_one_fields, NULL),
	[HL_MSG_REFERRAL_RETRY] = SPEC("referral.retry", referral_one_fields, NULL),
	[HL_MSG_REFERRAL_DOWNLOAD] = SPEC("referral.download", referral_download_fields, NULL),
};

const char *hl_msg_type_name(enum hl_msg_type t)
{
	if ((unsigned)t >= HL_MSG__COUNT)
		return "unknown";
	return msg_specs[t].name;
}

/* ---- decoding ------------------------------------------------------- */

/* Fills err and returns HL_EINVAL. fmt/field come from this file (spec
 * names), never from the client. field may be NULL. */
static int fail(struct hl_proto_error *err, enum hl_err_code code,
		const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct hl_proto_error *err, enum hl_err_code code,
		const char *field, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	if (field)
		snprintf(err->field, sizeof(err->field), "%s", field);
	else
		err->field[0] = '\0';
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	} else {
		snprintf(err->message, sizeof(err->message), "%s",
			 err_codes[code].text);
	}
	return HL_EINVAL;
}

/*
 * The shape checks before parsing: nesting never exceeding
 * HL_PROTO_MAX_DEPTH (HL_ERR_TOO_DEEP), and at most HL_PROTO_MAX_COMMAS
 * commas between members and elements, all levels together
 * (HL_ERR_TOO_LARGE: no message type has more than a few dozen fields, and
 * parsing a supervisor's 9 MB frame of a million keys held the event loop
 * for seconds). It tracks string literals (a backslash skips the next
 * byte) the way jansson's lexer does, so for any prefix jansson accepts,
 * jansson's depth is never deeper than the one counted here; where the two
 * could disagree jansson has already stopped with a syntax error. O(len),
 * no recursion; nesting is judged first (it stops at the first byte past
 * the limit), so a frame too deep is too_deep however many commas it has.
 * Returns the error code, or HL_ERR__COUNT when the frame passes both.
 */
static enum hl_err_code shape_check(const char *buf, size_t len)
{
	unsigned depth = 0;
	size_t commas = 0;
	bool in_str = false;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = buf[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > HL_PROTO_MAX_DEPTH)
				return HL_ERR_TOO_DEEP;
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		case ',':
			commas++;
			break;
		default:
			break;
		}
	}
	return commas > HL_PROTO_MAX_COMMAS ? HL_ERR_TOO_LARGE : HL_ERR__COUNT;
}

/*
 * Parsing with the long strings set aside.
 *
 * jansson's lexer reads a string a character at a time through its UTF-8
 * decoder: in the relay profile, parsing a chat.send's 400-character
 * base64 payload was most of the cost of the whole frame. So the long
 * string values of the root object are cut out of a copy of the frame
 * (leaving ""), the rest is parsed by jansson as before, and the cut
 * strings are put back into the tree as they were. Only when that is
 * surely the same tree: no backslash anywhere in the frame (so every
 * string is literal and ends at the next quote, and keys are as written),
 * the root an object, the cut strings printable ASCII (nothing for
 * jansson's UTF-8 or control-character checks to refuse). Anything else,
 * and any parse error (whose position must be the frame's own), goes
 * through json_loadb on the frame itself. test_protocol.c compares the
 * two on a corpus of frames.
 */
#define LONG_STRING 128
#define LONG_MAX_CUTS 8

struct cut {
	size_t key, key_len; /* the member's name: offset, length */
	size_t at, len;      /* its value's text, between the quotes */
};

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds the root object's long string values; false if the frame is not
 * one this applies to. */
static bool find_cuts(const char *buf, size_t len, struct cut *cuts,
		      int *ncuts)
{
	unsigned depth = 0;
	size_t i = 0, key = 0, key_len = 0;
	bool after_colon = false;

	*ncuts = 0;
	if (memchr(buf, '\\', len))
		return false;
	while (i < len && is_ws(buf[i]))
		i++;
	if (i == len || buf[i] != '{')
		return false;
	for (; i < len; i++) {
		char c = buf[i];

		if (c == '"') {
			const char *q = memchr(buf + i + 1, '"', len - i - 1);
			size_t at = i + 1, n;

			if (!q)
				return false;
			n = (size_t)(q - (buf + at));
			if (depth == 1 && !after_colon) {
				key = at;
				key_len = n;
			} else if (depth == 1 && n >= LONG_STRING) {
				bool plain = true;

				for (size_t k = at; k < at + n && plain; k++)
					plain = buf[k] >= 0x20 && buf[k] < 0x7f;
				if (plain) {
					if (*ncuts == LONG_MAX_CUTS)
						return *ncuts > 0;
					cuts[*ncuts] = (struct cut){key, key_len,
								    at, n};
					(*ncuts)++;
				}
			}
			after_colon = false;
			i = (size_t)(q - buf);
			continue;
		}
		switch (c) {
		case '{':
		case '[':
			depth++;
			after_colon = false;
			break;
		case '}':
		case ']':
			if (depth > 0)
				depth--;
			after_colon = false;
			break;
		case ':':
			after_colon = depth == 1;
			break;
		default:
			if (!is_ws(c))
				after_colon = false;
			break;
		}
	}
	return *ncuts > 0;
}

json_t *hl_proto_parse(const char *buf, size_t len, json_error_t *jerr)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
	struct cut cuts[LONG_MAX_CUTS];
	int ncuts;
	char *copy;
	size_t n = 0, from = 0;
	json_t *root;

	if (!find_cuts(buf, len, cuts, &ncuts) || !(copy = malloc(len)))
		return json_loadb(len ? buf : "", len, flags, jerr);
	for (int k = 0; k < ncuts; k++) {
		memcpy(copy + n, buf + from, cuts[k].at - from);
		n += cuts[k].at - from;
		from = cuts[k].at + cuts[k].len;
	}
	memcpy(copy + n, buf + from, len - from);
	n += len - from;
	root = json_loadb(copy, n, flags, jerr);
	free(copy);
	if (!root || !json_is_object(root))
		goto slow;
	for (int k = 0; k < ncuts; k++) {
		char key[256];
		json_t *v;

		if (cuts[k].key_len >= sizeof(key))
			goto slow;
		memcpy(key, buf + cuts[k].key, cuts[k].key_len);
		key[cuts[k].key_len] = '\0';
		v = json_object_get(root, key);
		/* The member must be there, "" (it was cut), and named
		 * without a NUL (jansson keys are C strings). */
		if (!v || !json_is_string(v) || json_string_length(v) != 0 ||
		    strlen(key) != cuts[k].key_len ||
		    json_object_set_new_nocheck(
			    root, key,
			    json_stringn_nocheck(buf + cuts[k].at, cuts[k].len)) != 0)
			goto slow;
	}
	return root;
slow:
	json_decref(root);
	return json_loadb(buf, len, flags, jerr);
}

/*
 * What each byte is in the token alphabet [A-Za-z0-9._:-] (what ids,
 * conversation ids, base64url and message types are made of): its
 * base64url value 0..63, TOKEN_ONLY for '.' and ':', NOT_TOKEN for every
 * other byte. One load per character instead of a chain of comparisons:
 * the relay's payloads (~400 characters) are scanned by decode_flat and
 * then decoded, and the comparisons were ~6% of its CPU (docs/performance.md).
 * test_protocol.c checks every byte against the alphabet.
 */
enum { TOKEN_ONLY = 64, NOT_TOKEN = 0xff };
#define X NOT_TOKEN
#define T TOKEN_ONLY
static const unsigned char token_value[256] = {
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,  62,   T,   X,
	 52,  53,  54,  55,  56,  57,  58,  59,  60,  61,   T,   X,   X,   X,   X,   X,
	  X,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
	 15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,   X,   X,   X,   X,  63,
	  X,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
	 41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
	  X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,   X,
};
#undef X
#undef T

static bool token_char(unsigned char c)
{
	return token_value[c] != NOT_TOKEN;
}

/* Returns true when the len bytes of s all satisfy cs. */
static bool charset_ok(const char *s, size_t len, enum charset cs)
{
	size_t i;

	if (cs == CS_UTF8)
		return true;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (cs) {
		case CS_UTF8:
			break;
		case CS_PRINTABLE:
			if (c < 0x20 || c > 0x7e)
				return false;
			break;
		case CS_TOKEN:
			if (!token_char(c))
				return false;
			break;
		}
	}
	return true;
}

/* Returns true when key is 1..sizeof(hl_proto_error.field)-1 bytes of
 * [A-Za-z0-9_], i.e. safe to echo in an error reply and a log line. */
static bool key_echoable(const char *key, size_t len)
{
	size_t i;

	if (len == 0 || len >= sizeof(((struct hl_proto_error *)0)->field))
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* Maps a jansson load error to our code and fills err. Jansson's text is
 * not used: it quotes the input. */
static int fail_parse(struct hl_proto_error *err, const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_invalid_utf8:
		return fail(err, HL_ERR_BAD_UTF8, NULL,
			    "frame is not valid UTF-8 (near byte %d)",
			    jerr->position);
	case json_error_duplicate_key:
		return fail(err, HL_ERR_DUPLICATE_KEY, NULL,
			    "duplicate object key (near byte %d)",
			    jerr->position);
	case json_error_out_of_memory:
		return fail(err, HL_ERR_INTERNAL, NULL, "out of memory");
	default:
		return fail(err, HL_ERR_BAD_JSON, NULL,
			    "frame is not valid JSON (near byte %d)",
			    jerr->position);
	}
}

/* Validates the common "id" member; on success copies it into err->id so
 * that any later error reply carries it. */
static int decode_id(json_t *root, struct hl_msg *out,
		     struct hl_proto_error *err)
{
	json_t *v = json_object_get(root, "id");
	size_t n;

	if (!v)
		return fail(err, HL_ERR_BAD_ID, "id", "id is missing");
	if (!json_is_string(v))
		return fail(err, HL_ERR_BAD_ID, "id", "id must be a string");
	n = json_string_length(v);
	if (n < 1 || n > HL_PROTO_ID_MAX ||
	    !charset_ok(json_string_value(v), n, CS_TOKEN))
		return fail(err, HL_ERR_BAD_ID, "id", NULL);
	out->id = json_string_value(v);
	memcpy(err->id, out->id, n);
	err->id[n] = '\0';
	return 0;
}

/* Returns the message type named name (len bytes), or NULL. */
static const struct msg_spec *find_spec(const char *name, size_t len)
{
	for (unsigned t = 0; t < HL_MSG__COUNT; t++)
		if (strlen(msg_specs[t].name) == len &&
		    memcmp(msg_specs[t].name, name, len) == 0)
			return &msg_specs[t];
	return NULL;
}

/* Returns the field row named key (len bytes) in spec, or NULL. */
static const struct field_spec *find_field(const struct msg_spec *spec,
					   const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < spec->nfields; i++) {
		const char *name = spec->fields[i].name;

		if (strlen(name) == len && memcmp(name, key, len) == 0)
			return &spec->fields[i];
	}
	return NULL;
}

/* Validates one present value against its row and stores it in out. */
static int decode_field(const struct field_spec *f, json_t *v,
			struct hl_msg *out, struct hl_proto_error *err)
{
	char *slot = (char *)out + f->offset;

	switch (f->kind) {
	case FK_STRING: {
		size_t n;
		const char *s;

		if (!json_is_string(v))
			return fail(err, HL_ERR_BAD_FIELD, f->name,
				    "%s must be a string", f->name);
		n = json_string_length(v);
		s = json_string_value(v);
		if ((int64_t)n < f->min || (int64_t)n > f->max)
			return fail(err, HL_ERR_BAD_FIELD, f->name,
				    "%s must be %lld to %lld bytes long",
				    f->name, (long long)f->min,
				    (long long)f->max);
		if (!charset_ok(s, n, f->cs))
			return fail(err, HL_ERR_BAD_FIELD, f->name,
				    "%s has characters that are not allowed",
				    f->name);
		memcpy(slot, &s, sizeof(s));
		return 0;
	}
	case FK_INT: {
		int64_t x;

		/* json_is_integer excludes reals and booleans. */
		if (!json_is_integer(v))
			return fail(err, HL_ERR_BAD_FIELD, f->name,
				    "%s must be an integer", f->name);
		x = (int64_t)json_integer_value(v);
		if (x < f->min || x > f->max)
			return fail(err, HL_ERR_BAD_FIELD, f->name,
				    "%s must be from %lld to %lld", f->name,
				    (long long)f->min, (long long)f->max);
		memcpy(slot, &x, sizeof(x));
		return 0;
	}
	}
	return fail(err, HL_ERR_INTERNAL, NULL, NULL);
}

/* Strict check of the members of root against spec, then fill. */
static int decode_fields(const struct msg_spec *spec, json_t *root,
			 struct hl_msg *out, struct hl_proto_error *err)
{
	const char *key;
	json_t *v;
	size_t i;
	int rc;

	/* Every key must be "type", "id" or in the table. Keys never hold
	 * NUL (jansson rejects it), so strlen on them is exact. */
	json_object_foreach(root, key, v) {
		size_t n = strlen(key);

		if (strcmp(key, "type") == 0 || strcmp(key, "id") == 0 ||
		    find_field(spec, key, n))
			continue;
		return fail(err, HL_ERR_UNKNOWN_FIELD,
			    key_echoable(key, n) ? key : NULL,
			    "unknown field for %s", spec->name);
	}
	for (i = 0; i < spec->nfields; i++) {
		const struct field_spec *f = &spec->fields[i];

		v = json_object_get(root, f->name);
		if (!v) {
			if (f->required)
				return fail(err, HL_ERR_MISSING_FIELD, f->name,
					    "%s is required", f->name);
			continue;
		}
		rc = decode_field(f, v, out, err);
		if (rc < 0)
			return rc;
	}
	if (spec->check && !spec->check(out, err))
		return HL_EINVAL;
	return 0;
}

#define FLAT_MAX 8 /* members of a frame decode_flat takes */

struct flat_member {
	size_t key, key_len, val, val_len; /* offsets into the frame */
	const struct field_spec *fs;       /* its row (NULL: type or id) */
};

/* Reads a string of token characters at buf[*i] (the opening quote):
 * 1 with its offset and length, *i past the closing quote; 0 for
 * anything else (an escape, another character, the end). */
static int flat_string(const char *buf, size_t len, size_t *i, size_t *at,
		       size_t *n)
{
	size_t j = *i;

	if (j >= len || buf[j] != '"')
		return 0;
	*at = ++j;
	while (j < len && token_char((unsigned char)buf[j]))
		j++;
	if (j >= len || buf[j] != '"')
		return 0;
	*n = j - *at;
	*i = j + 1;
	return 1;
}

static size_t flat_ws(const char *buf, size_t len, size_t i)
{
	while (i < len && is_ws(buf[i]))
		i++;
	return i;
}

/*
 * The fast path of hl_proto_decode, for the frames that make up a busy
 * chat (chat.send, chat.typing): one object of at most FLAT_MAX members,
 * every key and value a string of token characters (so no escapes, no
 * UTF-8, nothing jansson could read differently), no key twice, of a type
 * marked flat, with an id and fields that pass their rows. Such a frame
 * decodes to what jansson's path gives, without a tree: the strings are
 * NUL-terminated in a copy of the frame (out->flat), out->root is NULL.
 * Returns 1 when decoded, 0 when the frame is anything else (nothing is
 * kept): the jansson path then decodes it or says exactly what is wrong.
 * test_protocol.c compares the two paths on a corpus.
 */
static int decode_flat(const char *buf, size_t len, struct hl_msg *out)
{
	struct flat_member m[FLAT_MAX];
	const struct msg_spec *spec = NULL;
	const struct flat_member *type = NULL, *id = NULL;
	size_t n = 0, i = flat_ws(buf, len, 0), k, f;
	bool seen[FLAT_MAX] = {false};
	char *copy;

	if (i >= len || buf[i] != '{')
		return 0;
	i = flat_ws(buf, len, i + 1);
	for (;;) {
		if (n == FLAT_MAX ||
		    !flat_string(buf, len, &i, &m[n].key, &m[n].key_len))
			return 0;
		i = flat_ws(buf, len, i);
		if (i >= len || buf[i] != ':')
			return 0;
		i = flat_ws(buf, len, i + 1);
		if (!flat_string(buf, len, &i, &m[n].val, &m[n].val_len))
			return 0;
		m[n].fs = NULL;
		for (k = 0; k < n; k++)
			if (m[k].key_len == m[n].key_len &&
			    memcmp(buf + m[k].key, buf + m[n].key,
				   m[n].key_len) == 0)
				return 0; /* a duplicate key */
		n++;
		i = flat_ws(buf, len, i);
		if (i < len && buf[i] == ',') {
			i = flat_ws(buf, len, i + 1);
			continue;
		}
		if (i < len && buf[i] == '}')
			break;
		return 0;
	}
	if (flat_ws(buf, len, i + 1) != len)
		return 0;
	for (k = 0; k < n; k++) {
		if (m[k].key_len == 4 && memcmp(buf + m[k].key, "type", 4) == 0)
			type = &m[k];
		else if (m[k].key_len == 2 && memcmp(buf + m[k].key, "id", 2) == 0)
			id = &m[k];
	}
	if (!type || !id || id->val_len < 1 || id->val_len > HL_PROTO_ID_MAX)
		return 0;
	spec = find_spec(buf + type->val, type->val_len);
	if (!spec || !spec->flat || spec->nfields > FLAT_MAX)
		return 0;
	/* Every other member a string field of the spec, within its length
	 * (token characters pass every charset); every required one there. */
	for (k = 0; k < n; k++) {
		const struct field_spec *fs;

		if (&m[k] == type || &m[k] == id)
			continue;
		fs = m[k].fs = find_field(spec, buf + m[k].key, m[k].key_len);
		if (!fs || fs->kind != FK_STRING ||
		    (int64_t)m[k].val_len < fs->min ||
		    (int64_t)m[k].val_len > fs->max)
			return 0;
		seen[fs - spec->fields] = true;
	}
	for (f = 0; f < spec->nfields; f++)
		if (spec->fields[f].required && !seen[f])
			return 0;
	copy = malloc(len + 1);
	if (!copy)
		return 0;
	memcpy(copy, buf, len);
	copy[len] = '\0';
	out->type = (enum hl_msg_type)(spec - msg_specs);
	for (k = 0; k < n; k++) {
		const char *v = copy + m[k].val;

		copy[m[k].val + m[k].val_len] = '\0'; /* the closing quote */
		if (&m[k] == id)
			out->id = v;
		else if (m[k].fs)
			memcpy((char *)out + m[k].fs->offset, &v, sizeof(v));
	}
	out->flat = copy;
	return 1;
}

int hl_proto_decode(const char *buf, size_t len, size_t max_len,
		    struct hl_msg *out, struct hl_proto_error *err)
{
	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	if (len > max_len)
		return fail(err, HL_ERR_TOO_LARGE, NULL,
			    "frame is larger than %zu bytes", max_len);
	if (decode_flat(buf, len, out))
		return 0;
	return hl_proto_decode_json(buf, len, max_len, out, err);
}

int hl_proto_decode_json(const char *buf, size_t len, size_t max_len,
			 struct hl_msg *out, struct hl_proto_error *err)
{
	json_error_t jerr;
	json_t *root, *type;
	const struct msg_spec *spec = NULL;
	int id_rc, rc;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));

	if (len > max_len)
		return fail(err, HL_ERR_TOO_LARGE, NULL,
			    "frame is larger than %zu bytes", max_len);
	switch (shape_check(buf, len)) {
	case HL_ERR_TOO_DEEP:
		return fail(err, HL_ERR_TOO_DEEP, NULL,
			    "frame nests deeper than %d levels",
			    HL_PROTO_MAX_DEPTH);
	case HL_ERR_TOO_LARGE:
		return fail(err, HL_ERR_TOO_LARGE, NULL,
			    "frame has more than %d members and elements",
			    HL_PROTO_MAX_COMMAS + 1);
	default:
		break;
	}

	/* Without JSON_ALLOW_NUL jansson rejects \u0000; with DECODE_ANY a
	 * scalar root parses, so it gets not_object rather than bad_json. */
	root = hl_proto_parse(buf, len, &jerr);
	if (!root)
		return fail_parse(err, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return fail(err, HL_ERR_NOT_OBJECT, NULL, NULL);
	}

	/* The id is checked before the type is judged, so that an error
	 * about the type can still carry the id; its own error is reported
	 * after the type's. */
	id_rc = decode_id(root, out, err);

	type = json_object_get(root, "type");
	if (!type || !json_is_string(type)) {
		rc = fail(err, HL_ERR_BAD_TYPE, "type",
			  type ? "type must be a string" : "type is missing");
		goto fail;
	}
	spec = find_spec(json_string_value(type), json_string_length(type));
	if (!spec) {
		rc = fail(err, HL_ERR_UNKNOWN_TYPE, "type", NULL);
		goto fail;
	}
	if (id_rc < 0) {
		/* decode_id already filled err. */
		rc = id_rc;
		goto fail;
	}
	out->type = (enum hl_msg_type)(spec - msg_specs);
	out->root = root; /* check hooks may read it; cleared again on failure */
	rc = decode_fields(spec, root, out, err);
	if (rc < 0)
		goto fail;
	return 0;

fail:
	json_decref(root);
	memset(out, 0, sizeof(*out));
	return rc;
}

void hl_msg_release(struct hl_msg *msg)
{
	if (!msg)
		return;
	json_decref(msg->root);
	free(msg->flat);
	memset(msg, 0, sizeof(*msg));
}

/* ---- encoding ------------------------------------------------------- */

json_t *hl_proto_reply(const char *type, const char *id)
{
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	if (json_object_set_new(obj, "type", json_string(type)) < 0)
		goto fail;
	if (id && id[0] && json_object_set_new(obj, "id", json_string(id)) < 0)
		goto fail;
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

void hl_proto_page(json_t *reply, bool more, int64_t next)
{
	json_object_set_new(reply, "more", json_boolean(more));
	if (more)
		json_object_set_new(reply, "next", json_integer(next));
}

bool hl_proto_page_fits(size_t *used, size_t budget, size_t bytes)
{
	if (*used > 0 && *used + bytes > budget)
		return false;
	*used += bytes;
	return true;
}

json_t *hl_proto_error_reply(const char *id, enum hl_err_code code,
			     const char *message, const char *field)
{
	json_t *obj = hl_proto_reply("error", id);

	if ((unsigned)code >= HL_ERR__COUNT)
		code = HL_ERR_INTERNAL;
	if (!message)
		message = err_codes[code].text;
	if (!obj)
		return NULL;
	if (json_object_set_new(obj, "code",
				json_string(hl_err_code_name(code))) < 0 ||
	    json_object_set_new(obj, "message", json_string(message)) < 0)
		goto fail;
	if (field && field[0] &&
	    json_object_set_new(obj, "field", json_string(field)) < 0)
		goto fail;
	return obj;
fail:
	json_decref(obj);
	return NULL;
}

/* Growing output buffer for json_dump_callback; data[0..headroom) is left
 * for the caller. */
struct outbuf {
	unsigned char *data;
	size_t headroom;
	size_t len;    /* JSON bytes written after the headroom */
	size_t cap;    /* bytes available after the headroom, excluding NUL */
	bool nomem;
};

static int outbuf_put(const char *chunk, size_t size, void *arg)
{
	struct outbuf *b = arg;

	if (size > b->cap - b->len) {
		size_t cap = b->cap;
		unsigned char *p;

		while (size > cap - b->len) {
			if (cap > (SIZE_MAX - b->headroom - 1) / 2)
				goto nomem;
			cap *= 2;
		}
		p = realloc(b->data, b->headroom + cap + 1);
		if (!p)
			goto nomem;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->headroom + b->len, chunk, size);
	b->len += size;
	return 0;
nomem:
	b->nomem = true;
	return -1;
}

int hl_proto_dump(const json_t *obj,
		  int (*put)(const char *chunk, size_t size, void *arg),
		  void *arg)
{
	if (!json_is_object(obj))
		return -1;
	/* No JSON_ENSURE_ASCII: UTF-8 goes out as is; jansson escapes '"',
	 * '\\' and control characters, and fails on invalid UTF-8. */
	return json_dump_callback(obj, put, arg, JSON_COMPACT) < 0 ? -1 : 0;
}

int hl_proto_encode(const json_t *obj, size_t headroom, unsigned char **out,
		    size_t *len)
{
	struct outbuf b = {.headroom = headroom, .cap = 256};

	*out = NULL;
	*len = 0;
	if (!json_is_object(obj))
		return HL_EINVAL;
	if (headroom > SIZE_MAX / 2)
		return HL_ENOMEM;
	b.data = malloc(headroom + b.cap + 1);
	if (!b.data)
		return HL_ENOMEM;
	if (hl_proto_dump(obj, outbuf_put, &b) != 0) {
		free(b.data);
		return b.nomem ? HL_ENOMEM : HL_EINVAL;
	}
	b.data[headroom + b.len] = '\0';
	*out = b.data;
	*len = b.len;
	return 0;
}

/* One base64url character's value, or -1. */
static int b64url_value(unsigned char c)
{
	return token_value[c] < TOKEN_ONLY ? token_value[c] : -1;
}

/*
 * Decodes tl characters of base64url without padding into out (room for
 * tl / 4 * 3 + 2 bytes): what sodium_base642bin accepts for that variant
 * with nothing ignored — alphabet characters only, no length of 4k + 1,
 * zero spare bits (so only canonical text) — but a table lookup
 * (token_value) rather than libsodium's constant-time code, which is
 * meant for secrets: payloads are ciphertext, and decoding them was 6% of
 * the relay's CPU. test_protocol.c compares the two on random input and
 * on every byte. (Debian's libsodium 1.0.18 also takes any byte from 0x80
 * as '_'; this does not. Fields reach libsodium only as CS_TOKEN.)
 */
static int b64url_decode(const char *text, size_t tl, unsigned char *out,
			 size_t *n)
{
	const unsigned char *t = (const unsigned char *)text;
	size_t i = 0, o = 0;
	int a, b, c, d;

	for (; i + 4 <= tl; i += 4) {
		a = token_value[t[i]];
		b = token_value[t[i + 1]];
		c = token_value[t[i + 2]];
		d = token_value[t[i + 3]];
		if ((a | b | c | d) >= TOKEN_ONLY) /* each 0..63, or not */
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		out[o++] = (unsigned char)((c & 0x03) << 6 | d);
	}
	switch (tl - i) {
	case 0:
		break;
	case 2:
		a = b64url_value(t[i]);
		b = b64url_value(t[i + 1]);
		if ((a | b) < 0 || (b & 0x0f) != 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		break;
	case 3:
		a = b64url_value(t[i]);
		b = b64url_value(t[i + 1]);
		c = b64url_value(t[i + 2]);
		if ((a | b | c) < 0 || (c & 0x03) != 0)
			return -1;
		out[o++] = (unsigned char)(a << 2 | b >> 4);
		out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
		break;
	default:
		return -1; /* 4k + 1 characters: not an encoding */
	}
	*n = o;
	return 0;
}

/* hl_proto_b64_decode, and with keep a copy of the text after the bytes
 * (at *text_out) in the same allocation. */
static int b64_decode(const char *text, size_t max, unsigned char **out,
		      size_t *len, char **text_out)
{
	size_t tl = strlen(text), cap = tl / 4 * 3 + 3, n = 0;
	unsigned char *b;

	if (tl == 0 || tl / 4 * 3 > max)
		return -1; /* empty, or surely longer than max */
	b = malloc(text_out ? cap + tl + 1 : cap);
	if (!b)
		return -1;
	if (b64url_decode(text, tl, b, &n) != 0 || n == 0 || n > max) {
		free(b);
		return -1;
	}
	if (text_out) {
		memcpy(b + cap, text, tl + 1);
		*text_out = (char *)b + cap;
	}
	*out = b;
	*len = n;
	return 0;
}

int hl_proto_b64_decode(const char *text, size_t max, unsigned char **out,
			size_t *len)
{
	return b64_decode(text, max, out, len, NULL);
}

int hl_proto_b64_decode_keep(const char *text, size_t max, unsigned char **out,
			     size_t *len, char **text_out)
{
	return b64_decode(text, max, out, len, text_out);
}

bool hl_proto_b64_into(const char *text, unsigned char *out, size_t cap,
		       size_t *len, bool exact)
{
	size_t n = 0;

	if (sodium_base642bin(out, cap, text, strlen(text), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n == 0 || (exact && n != cap))
		return false;
	if (len)
		*len = n;
	return true;
}

json_t *hl_proto_b64_json(const void *p, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(
		len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *b = malloc(n);
	json_t *o;

	if (!b)
		return NULL;
	sodium_bin2base64(b, n, p, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	o = json_string(b);
	free(b);
	return o;
}
