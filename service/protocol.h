/* protocol.h: owns the wire codec: one WebSocket text frame (JSON) <-> one
 * typed, validated client message, and the encoding of replies. It never
 * touches libwebsockets; docs/protocol.md is the specification. */
#ifndef HL_PROTOCOL_H
#define HL_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Max nesting of arrays/objects in a frame; the root object is depth 1. */
#define HL_PROTO_MAX_DEPTH 16
/* Commas between members and elements in one message, all levels together. */
#define HL_PROTO_MAX_COMMAS 256
/* Max length in bytes of a client request id. */
#define HL_PROTO_ID_MAX 64
/* The protocol version this server speaks (hello.version). */
#define HL_PROTO_VERSION 1
/* Longest evidence.sign bundle the codec takes: bundle.h's
 * HL_BUNDLE_MAX_BYTES (the daemon's own limit, evidence.max_bundle, is
 * applied by the handler). */
#define HL_PROTO_BUNDLE_MAX (64 * 1024 * 1024)
/* Longest referral package (sealed) the codec takes, in base64url
 * characters: a bundle of HL_PROTO_BUNDLE_MAX plus the referral document
 * and the seal (referral.c holds it to evidence.max_bundle). */
#define HL_PROTO_SEALED_MAX ((HL_PROTO_BUNDLE_MAX + 131072) / 3 * 4 + 4)

/*
 * Stable error code strings sent in {"type":"error","code":...}. The order
 * of the enum is not part of the wire format; the names are.
 */
enum hl_err_code {
	HL_ERR_BAD_JSON,        /* "bad_json": not parseable JSON (incl. trailing garbage, NUL escape \u0000, lone surrogates) */
	HL_ERR_BAD_UTF8,        /* "bad_utf8" */
	HL_ERR_TOO_LARGE,       /* "too_large": frame over the size limit passed to decode, or over HL_PROTO_MAX_COMMAS */
	HL_ERR_TOO_DEEP,        /* "too_deep": nesting over HL_PROTO_MAX_DEPTH (pre-scan before parsing: O(n), no recursion) */
	HL_ERR_NOT_OBJECT,      /* "not_object": root is not a JSON object */
	HL_ERR_DUPLICATE_KEY,   /* "duplicate_key" */
	HL_ERR_BAD_TYPE,        /* "bad_type": "type" missing or not a string */
	HL_ERR_UNKNOWN_TYPE,    /* "unknown_type" */
	HL_ERR_BAD_ID,          /* "bad_id": "id" missing, not a string, empty, longer than HL_PROTO_ID_MAX, or not [A-Za-z0-9._:-] */
	HL_ERR_MISSING_FIELD,   /* "missing_field" */
	HL_ERR_BAD_FIELD,       /* "bad_field": wrong JSON type, out of range, too long/short, or a string failing its charset */
	HL_ERR_UNKNOWN_FIELD,   /* "unknown_field": a key the message type does not define */
	HL_ERR_FORBIDDEN,       /* "forbidden": message type not allowed for this role/connection */
	HL_ERR_BAD_STATE,       /* "bad_state": e.g. a second hello, or a request before hello */
	HL_ERR_RATE_LIMITED,    /* "rate_limited" */
	HL_ERR_STORE_FAILED,    /* "store_failed": the database could not store it; nothing was acknowledged */
	HL_ERR_BUSY,            /* "busy": server overloaded, retry later */
	HL_ERR_SHUTTING_DOWN,   /* "shutting_down" */
	HL_ERR_INTERNAL,        /* "internal" */
	HL_ERR_AUTH_FAILED,     /* "auth_failed": login or enrolment refused; one reply for every reason */
	HL_ERR_AUTH_REQUIRED,   /* "auth_required": log in (or resume) first */
	HL_ERR_REAUTH_REQUIRED, /* "reauth_required": enter a TOTP code again (auth.reauth) first */
	HL_ERR_NOT_FOUND,       /* "not_found": no such object (e.g. staff id) */
	HL_ERR_CONFLICT,        /* "conflict": already exists (e.g. username taken) */
	HL_ERR_CLOSED,          /* "closed": the line is closed now (line.status says when it opens) */
	HL_ERR_EXPIRED,         /* "expired": an offer (or challenge) that is no longer valid */
	HL_ERR_HANDOVER_REQUIRED, /* "handover_required": shift.end while still holding chats */
	HL_ERR_BAD_ENVELOPE,    /* "bad_envelope": a chat message that is not a valid end-to-end envelope for this conversation and sender */
	HL_ERR_STALE_EPOCH,     /* "stale_epoch": sealed with keys that are not the conversation's current ones */
	HL_ERR_BAD_COUNTER,     /* "bad_counter": not the next message counter (gap, duplicate or replay) */
	HL_ERR_BAD_HANDSHAKE,   /* "bad_handshake": a hello or accept that does not verify */
	HL_ERR__COUNT
};

/* Returns the wire name of code ("bad_json", ...); "internal" for a value
 * out of range. Static storage; thread-safe. */
const char *hl_err_code_name(enum hl_err_code code);

/* Client message types. */
enum hl_msg_type {
	HL_MSG_HELLO,
	HL_MSG_PING,
	HL_MSG_AUTH_LOGIN,        /* "auth.login" */
	HL_MSG_AUTH_RESUME,       /* "auth.resume" */
	HL_MSG_AUTH_LOGOUT,       /* "auth.logout" */
	HL_MSG_AUTH_REAUTH,       /* "auth.reauth" */
	HL_MSG_AUTH_ENROL_BEGIN,  /* "auth.enrol_begin" */
	HL_MSG_AUTH_ENROL_FINISH, /* "auth.enrol_finish" */
	HL_MSG_PRESENCE_SET,      /* "presence.set" */
	HL_MSG_STAFF_CREATE,      /* "staff.create" */
	HL_MSG_STAFF_LIST,        /* "staff.list" */
	HL_MSG_STAFF_SET_STATE,   /* "staff.set_state" */
	HL_MSG_STAFF_RESET,       /* "staff.reset" */
	HL_MSG_STAFF_REVOKE,      /* "staff.revoke_sessions" */
	HL_MSG_STAFF_COLLEAGUES,  /* "staff.colleagues": whom a chat can go to */
	HL_MSG_CONTACT_START,     /* "contact.start" */
	HL_MSG_CONTACT_RESUME,    /* "contact.resume" */
	HL_MSG_CONTACT_LEAVE,     /* "contact.leave" */
	HL_MSG_QUEUE_STATS,       /* "queue.stats" */
	HL_MSG_QUEUE_TAKE,        /* "queue.take" */
	HL_MSG_CHAT_SEND,         /* "chat.send" */
	HL_MSG_CHAT_SYNC,         /* "chat.sync" */
	HL_MSG_CHAT_END,          /* "chat.end" */
	HL_MSG_CHAT_TYPING,       /* "chat.typing" */
	HL_MSG_CHAT_READ,         /* "chat.read" */
	HL_MSG_CHAT_NOTE,         /* "chat.note": staff-only, never to the contact */
	HL_MSG_CHAT_DELIVERED,    /* "chat.delivered": receipt, stored */
	HL_MSG_CHAT_TRANSFER,     /* "chat.transfer" */
	HL_MSG_CHAT_JOIN,         /* "chat.join": a supervisor joins as a third party */
	HL_MSG_CHAT_TAG,          /* "chat.tag": internal triage tags */
	HL_MSG_CHAT_WRAPUP,       /* "chat.wrapup" */
	HL_MSG_OFFER_ACCEPT,      /* "offer.accept" */
	HL_MSG_OFFER_DECLINE,     /* "offer.decline" */
	HL_MSG_QUEUE_LIST,        /* "queue.list" */
	HL_MSG_QUEUE_PICK,        /* "queue.pick" */
	HL_MSG_QUEUE_WATCH,       /* "queue.watch": supervisor view pushes on/off */
	HL_MSG_SHIFT_START,       /* "shift.start" */
	HL_MSG_SHIFT_END,         /* "shift.end" */
	HL_MSG_LINE_STATUS,       /* "line.status": open now? next opening */
	HL_MSG_STATS_GET,         /* "stats.get" */
	HL_MSG_INBOX_POST,        /* "inbox.post": a young person leaves a message */
	HL_MSG_INBOX_CHALLENGE,   /* "inbox.challenge" */
	HL_MSG_INBOX_FETCH,       /* "inbox.fetch": read the thread back (return code) */
	HL_MSG_INBOX_LIST,        /* "inbox.list": staff */
	HL_MSG_INBOX_OPEN,        /* "inbox.open": staff marks one read */
	HL_MSG_INBOX_REPLY,       /* "inbox.reply": staff */
	HL_MSG_E2E_HELLO,         /* "e2e.hello": a young person's kx key */
	HL_MSG_E2E_ACCEPT,        /* "e2e.accept": a device answers the hello */
	HL_MSG_E2E_ORG,           /* "e2e.org": the organisation's public keys */
	HL_MSG_DEVICE_REGISTER,   /* "device.register": staff device keys */
	HL_MSG_DEVICE_LIST,       /* "device.list" */
	HL_MSG_DEVICE_CERTIFY,    /* "device.certify": admin */
	HL_MSG_DEVICE_REVOKE,     /* "device.revoke": admin */
	HL_MSG_DEVICE_REVOCATIONS,/* "device.revocations" */
	HL_MSG_KEY_WRAP,          /* "key.wrap": store a key wrap */
	HL_MSG_KEY_WRAPS,         /* "key.wraps": the wraps for my devices */
	HL_MSG_CONTACT_SET_RETURN,/* "contact.set_return": return-code keys */
	HL_MSG_CONTACT_RETURN,    /* "contact.return": come back with the code */
	HL_MSG_ESCALATION_RAISE,  /* "escalation.raise": a counsellor escalates */
	HL_MSG_ESCALATION_LIST,   /* "escalation.list" */
	HL_MSG_ESCALATION_CLAIM,  /* "escalation.claim": a supervisor takes it */
	HL_MSG_ESCALATION_DECIDE, /* "escalation.decide": the claimer decides */
	HL_MSG_EVIDENCE_SIGN,     /* "evidence.sign": countersign an evidence bundle */
	HL_MSG_EVIDENCE_MATERIAL, /* "evidence.material": checkpoints and audit entries for a bundle */
	HL_MSG_REFERRAL_CREATE,   /* "referral.create": a draft police/safeguarding referral */
	HL_MSG_REFERRAL_UPDATE,   /* "referral.update": edit a draft (clears approvals) */
	HL_MSG_REFERRAL_APPROVE,  /* "referral.approve": one of the two approvals */
	HL_MSG_REFERRAL_LIST,     /* "referral.list" */
	HL_MSG_REFERRAL_GET,      /* "referral.get": one, with the staff copy */
	HL_MSG_REFERRAL_RETRY,    /* "referral.retry": deliver a failed one again */
	HL_MSG_REFERRAL_DOWNLOAD, /* "referral.download": the sealed delivery file */
	HL_MSG__COUNT
};

/* Returns the wire name of t ("hello", "ping"); "unknown" out of range. */
const char *hl_msg_type_name(enum hl_msg_type t);

/* {"type":"hello"}: the first message on every connection. */
struct hl_msg_hello {
	int64_t version;       /* required integer 1..1000: the version the client speaks (the server, not the codec, requires == 1) */
	const char *client;    /* optional, 1..64 bytes of printable ASCII (0x20-0x7e), e.g. "helpline-web/0.1"; NULL if absent */
};

/* {"type":"ping"}: answered with a pong. */
struct hl_msg_ping {
	const char *data;      /* optional, 0..64 bytes of any UTF-8, echoed in the pong; NULL if absent */
};

/* A decoded client message. Strings point into root and live until
 * hl_msg_release. */
/* auth.login: every field is checked again by auth.c; the codec only bounds them. */
struct hl_msg_auth_login {
	const char *username;  /* 1..64 printable ASCII */
	const char *password;  /* 1..1024 bytes UTF-8 */
	const char *totp;      /* 1..16 token chars (auth.c wants 6 digits) */
};
struct hl_msg_auth_resume {
	const char *token;     /* 43 chars: base64url of 32 bytes */
};
struct hl_msg_auth_reauth {
	const char *totp;
};
struct hl_msg_auth_enrol {
	const char *code;      /* enrolment code, 1..64 printable ASCII */
	const char *password;  /* enrol_finish only: 1..1024 bytes UTF-8 */
	const char *totp;      /* enrol_finish only */
};
struct hl_msg_presence {
	const char *status;    /* "available", "busy", "away", "offline" */
};
struct hl_msg_staff_create {
	const char *username, *display_name, *roles, *languages, *skills;
	int64_t capacity;      /* -1 when absent */
};
struct hl_msg_staff_target {
	int64_t staff_id;      /* 1..2^53 */
	const char *state;     /* staff.set_state: "active" or "disabled" */
	const char *what;      /* staff.reset: "password" or "totp" */
	int64_t after;         /* staff.list: a page's next; 0 */
};

/* contact.start: the optional intake. Lists are comma-separated ids of
 * client-web/taxonomy.json; contact.c checks them. */
struct hl_msg_contact_start {
	const char *topics;    /* tag ids, 0..256 printable ASCII; NULL if absent */
	const char *flags;     /* risk flag ids, 0..128; NULL if absent */
	const char *age_band;  /* "u13", "13_15", "16_17", "18p"; NULL if absent */
	const char *language;  /* e.g. "en", "pt-BR"; NULL if absent */
};
struct hl_msg_contact_resume {
	const char *resume;    /* 43 chars: base64url of the 32-byte secret */
	int64_t last_seq;      /* highest conversation seq the client has */
};

/* chat.*, offer.*, queue.pick: one conversation. conversation is required
 * from staff (a decimal id) and must be absent or the socket's own from a
 * contact. */
struct hl_msg_chat {
	const char *conversation; /* 1..20 digits; NULL if absent */
	const char *payload;      /* chat.send/note: base64url, 1..87384 chars;
				   * chat.transfer: the handover note;
				   * chat.wrapup: the encrypted notes (NULL if absent) */
	int64_t last_seq;         /* chat.sync; chat.read/delivered: the seq */
	int64_t to;               /* chat.transfer: staff id */
	const char *tags;         /* chat.tag, chat.wrapup: comma-separated tag ids */
	const char *outcome;      /* chat.wrapup: an outcome id of taxonomy.json */
};

/* queue.watch */
struct hl_msg_watch {
	int64_t on;               /* 1: push the supervisor view; 0: stop */
};

/* stats.get */
struct hl_msg_stats {
	int64_t from, to;         /* unix ms, [from, to) */
	const char *by;           /* "day" or "hour" */
};

/* inbox.* */
struct hl_msg_inbox {
	const char *return_pk;    /* 43 chars: base64url of 32 bytes */
	const char *reply_pk;     /* inbox.post: 43 chars */
	const char *sealed;       /* inbox.post: base64url ciphertext */
	const char *signature;    /* inbox.fetch: 86 chars: base64url of 64 bytes */
	int64_t message;          /* inbox.open / inbox.reply: message id */
	const char *reply;        /* inbox.reply: base64url ciphertext */
	int64_t after;            /* inbox.fetch / inbox.list: a page's next; 0 */
};

/* e2e.*, device.*, key.*: binary fields are base64url without padding. */
struct hl_msg_e2e {
	const char *conversation; /* as hl_msg_chat's; NULL if absent */
	const char *kx_pk;        /* e2e.hello / accept: 43 chars */
	int64_t hello;            /* e2e.accept: the hello's seq */
	const char *cert;         /* e2e.accept / device.certify */
	const char *issuer;       /* the admin device's certificate */
	const char *sig;          /* 86 chars: a 64-byte signature */
	const char *sign_pk;      /* device.register: 43 chars */
	const char *box_pk;       /* device.register: 43 chars */
	int64_t device;           /* device.certify / revoke: device id */
	int64_t staff_id;         /* device.list: 0 = every member of staff */
	int64_t after;            /* device.list / revocations / key.wraps: a page's next; 0 */
	const char *revocation;   /* device.revoke: the signed statement */
	const char *hashes;       /* device.revocations: 1 or 2 certificate
				   * hashes, base64url, joined by '.' */
	const char *sealed;       /* key.wrap: the sealed box */
	int64_t to_device;        /* key.wrap: recipient (0 = return key) */
	int64_t from_device;      /* key.wrap: the wrapping device (staff) */
	int64_t escalation;       /* key.wrap: the escalation it is for; 0 = none */
};

/* escalation.*: codes are checked by escalation.c. */
struct hl_msg_escalation {
	const char *conversation; /* escalation.raise: 1..20 digits */
	const char *reason;       /* escalation.raise: a reason code */
	const char *urgency;      /* escalation.raise: immediate, urgent, routine */
	const char *note;         /* raise: sealed note, base64url; NULL if absent */
	int64_t escalation;       /* claim / decide: the escalation id */
	const char *decision;     /* escalation.decide: a decision code */
	const char *reasons;      /* decide: sealed reasons, base64url; NULL if absent */
	int64_t before;           /* escalation.list: a page's next; 0 = newest */
};

/* evidence.sign, evidence.material: checked by evidence_msg.c and evidence.c. */
struct hl_msg_evidence {
	const char *conversation; /* 1..20 digits */
	const char *bundle;       /* evidence.sign: the bundle file's text,
				   * 1..HL_PROTO_BUNDLE_MAX bytes of UTF-8 (the
				   * handler holds it to evidence.max_bundle) */
	int64_t after;            /* evidence.material: a page's next; 0 */
};

/* referral.*: codes and rules are checked by referral.c. Absent optional
 * strings are NULL, absent integers 0. */
struct hl_msg_referral {
	int64_t escalation;       /* create: required; list: optional filter */
	int64_t referral;         /* update, approve, get, retry, download */
	int64_t revision;         /* update, approve: the revision acted on */
	const char *kind;         /* create: police, safeguarding */
	const char *legal_basis;  /* create, update: a legal-basis code */
	const char *urgency;      /* create, update: immediate, urgent, routine */
	int64_t consent_asked;    /* create, update: 0 or 1 */
	const char *consent_answer; /* yes, no, not_sure, no_answer; NULL if absent */
	int64_t consent_seq;      /* the chat seq of the question; 0 if absent */
	int64_t identity_included;/* 0 or 1 */
	const char *identity_reason; /* consent, life_at_risk, no_consent, ... */
	const char *tags;         /* comma-separated tag ids; NULL if absent */
	const char *bundle_digest;/* 43 chars: base64url of 32 bytes */
	const char *sealed;       /* base64url: the package sealed to the partner */
	const char *sealed_to;    /* 43 chars: the partner key it was sealed to */
	const char *staff_copy;   /* base64url: the staff's sealed copy */
	int64_t offset;           /* download: byte offset into sealed */
};

struct hl_msg {
	enum hl_msg_type type;
	const char *id;            /* the client request id, always set on success */
	union {
		struct hl_msg_hello hello;
		struct hl_msg_ping ping;
		struct hl_msg_auth_login login;
		struct hl_msg_auth_resume resume;
		struct hl_msg_auth_reauth reauth;
		struct hl_msg_auth_enrol enrol;
		struct hl_msg_presence presence;
		struct hl_msg_staff_create create;
		struct hl_msg_staff_target target;
		struct hl_msg_contact_start start;
		struct hl_msg_contact_resume cresume;
		struct hl_msg_chat chat;
		struct hl_msg_watch watch;
		struct hl_msg_stats stats;
		struct hl_msg_inbox inbox;
		struct hl_msg_e2e e2e;
		struct hl_msg_escalation esc;
		struct hl_msg_evidence evidence;
		struct hl_msg_referral ref;
	} u;                       /* the member named by type */
	json_t *root;              /* owned; private (handlers may read, never
				    * modify); NULL for a type decoded flat
				    * (chat.send, chat.typing: see protocol.c) */
	char *flat;                /* owned; private: the strings of a frame
				    * decoded flat */
};

/*
 * Why a decode failed. id is copied out when the frame had a valid id, so
 * the error reply can carry it ("" otherwise). field names the offending key
 * when relevant ("" otherwise); for unknown_field it is the client's key
 * only when that key is 1..31 bytes of [A-Za-z0-9_], else "". message is a
 * short human text that never quotes the client's input (field names from
 * the spec only).
 */
struct hl_proto_error {
	enum hl_err_code code;
	char id[HL_PROTO_ID_MAX + 1];
	char field[32];
	char message[128];
};

/*
 * Decodes one frame of len bytes (not NUL-terminated; may contain any bytes).
 * Frames over max_len bytes fail with HL_ERR_TOO_LARGE without parsing.
 * Returns 0 and fills *out (call hl_msg_release later), or HL_EINVAL and
 * fills *err (out is zeroed and needs no release). Checks run in this
 * order: size, depth pre-scan, parse, root object, type, id, unknown keys,
 * then the type's fields in table order. Pure: no globals, thread-safe.
 */
int hl_proto_decode(const char *buf, size_t len, size_t max_len,
		    struct hl_msg *out, struct hl_proto_error *err);

/* The same through jansson only, without the fast path for flat frames
 * (chat.send, chat.typing) that hl_proto_decode tries first: the two give
 * the same result on every frame the fast path takes (test_protocol.c). */
int hl_proto_decode_json(const char *buf, size_t len, size_t max_len,
			 struct hl_msg *out, struct hl_proto_error *err);

/* Releases a decoded message and zeroes it. Safe on a zeroed msg and safe
 * to call twice. */
void hl_msg_release(struct hl_msg *msg);

/* Returns a new object {"type": type, "id": id} (id omitted when NULL or
 * ""), or NULL on ENOMEM or if a string is not valid UTF-8. The caller owns
 * the reference. */
json_t *hl_proto_reply(const char *type, const char *id);

/* Marks reply as one page of a list: "more": more, and "next": next (where
 * the next page starts, as the request's cursor field) when more. */
void hl_proto_page(json_t *reply, bool more, int64_t next);

/* Whether an item of bytes (about its size as sent) still fits a page of
 * budget bytes (hl_session_page_budget) holding *used so far; the first
 * always does, so a page holds at least one. Counts it into *used when it
 * fits. */
bool hl_proto_page_fits(size_t *used, size_t budget, size_t bytes);

/*
 * Returns a new object {"type":"error","id":id,"code":name,"message":message,
 * "field":field}: id omitted when NULL or "", field omitted when NULL or "",
 * message replaced by a generic text for the code when NULL. NULL on
 * ENOMEM. The caller owns the reference.
 */
json_t *hl_proto_error_reply(const char *id, enum hl_err_code code,
			     const char *message, const char *field);

/*
 * Parses a frame as json_loadb(buf, len, JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY, jerr) does — the same tree, or NULL with the same error
 * — but faster for frames carrying long plain strings (see protocol.c).
 * Exposed for its test. The caller owns the result.
 */
json_t *hl_proto_parse(const char *buf, size_t len, json_error_t *jerr);

/*
 * Serialises obj as hl_proto_encode does (compact, insertion order, UTF-8
 * as is), handing the text to put in chunks: for callers that build the
 * bytes in their own buffer (session.c's output). Returns 0, or -1 when obj
 * is not an object, holds invalid UTF-8, or put returned non-zero.
 */
int hl_proto_dump(const json_t *obj,
		  int (*put)(const char *chunk, size_t size, void *arg),
		  void *arg);

/*
 * Serialises the object obj compactly (keys in insertion order) into a new
 * malloc'd buffer of headroom + *len + 1 bytes: the JSON starts at
 * (*out + headroom) and is NUL-terminated; *len excludes headroom and NUL.
 * The headroom bytes are left uninitialised (it is for LWS_PRE). Output is
 * always valid UTF-8 JSON. Returns 0; HL_ENOMEM; or HL_EINVAL if obj is not
 * an object or holds a string that is not valid UTF-8 (a caller bug). On
 * failure *out is NULL. The caller frees *out.
 */
int hl_proto_encode(const json_t *obj, size_t headroom, unsigned char **out,
		    size_t *len);

/*
 * Decodes a base64url (no padding) wire field into a new malloc'd buffer:
 * 0 with *out and *len (1..max bytes), or -1 when it is not base64url, is
 * empty or is longer than max (nothing allocated then). The caller frees.
 */
int hl_proto_b64_decode(const char *text, size_t max, unsigned char **out,
			size_t *len);

/* The same, and *text_out set to a copy of text that lives in the same
 * allocation, after the bytes: freeing *out frees both. A relayed payload
 * is sent on as the text it came in as (canonical, so the same as encoding
 * the bytes again), and one allocation is one malloc and free less per
 * message. */
int hl_proto_b64_decode_keep(const char *text, size_t max, unsigned char **out,
			     size_t *len, char **text_out);

/* Decodes base64url text (no padding) into out (cap bytes): true when it
 * decodes to 1..cap bytes (*len set). With exact, only cap bytes will do. */
bool hl_proto_b64_into(const char *text, unsigned char *out, size_t cap,
		       size_t *len, bool exact);

/* A JSON string of base64url (no padding) of len bytes; NULL on failure. */
json_t *hl_proto_b64_json(const void *p, size_t len);

#endif
