/* referral.h: owns referrals (docs/escalation.md "Referrals",
 * docs/protocol.md §5.15): a police or safeguarding referral of a claimed
 * or decided escalation, its two-person approval (the counsellor who raised
 * or holds the chat, and the supervisor who claimed it, each with a fresh
 * TOTP), and its delivery to the partner endpoint ([referral] partner_url)
 * with retries, back-off and durable states, resumed after a restart. Rows
 * live in table referral (schema/0007); every change, download and refusal
 * is in the audit chain.
 *
 * The server never holds a referral's personal content in plaintext: the
 * staff browser seals the package (the referral document and the evidence
 * bundle) to the partner's public key ([referral] partner_key) with
 * crypto_box_seal, and a copy for staff with the conversation's note key;
 * the server stores and relays the ciphertexts and enforces its rules on
 * the few coded fields it is given. The HTTP client is delivery.c. */
#ifndef HL_REFERRAL_H
#define HL_REFERRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "delivery.h"
#include "protocol.h"

struct hl_server;
struct hl_session;

/* ---- the pure part (unit-tested: tests/unit/test_referral.c) ------------- */

/* Code lists, NULL-terminated, in the order of their enum values. */
extern const char *const hl_ref_kinds[];            /* police, safeguarding */
extern const char *const hl_ref_states[];           /* enum hl_ref_state */
extern const char *const hl_ref_legal_bases[];      /* consent, vital_interests, ... */
extern const char *const hl_ref_urgencies[];        /* routine, urgent, immediate */
extern const char *const hl_ref_answers[];          /* yes, no, not_sure, no_answer */
extern const char *const hl_ref_identity_reasons[]; /* consent, life_at_risk, no_consent, not_needed, not_known */

enum hl_ref_state {
	HL_REF_DRAFT = 0, HL_REF_APPROVED, HL_REF_SENT, HL_REF_ACKED,
	HL_REF_FAILED,
};

/* The index of s in list, or -1 (also for NULL). */
int hl_ref_code(const char *const *list, const char *s);

/* The coded fields of a referral as checked by hl_ref_check. */
struct hl_ref_fields {
	int legal_basis, urgency;   /* indexes into the lists above */
	bool consent_asked;
	int consent_answer;         /* -1 when not asked */
	int64_t consent_seq;        /* 0 when not asked or not given */
	bool identity_included;
	int identity_reason;
};

/*
 * Checks the coded fields of a referral.create / referral.update (x) and
 * fills *out. Returns NULL when they are valid, else a static reason for a
 * bad_field error with *field naming the field. The rules:
 *   - legal_basis, urgency, identity_reason are codes of their lists;
 *   - consent_asked 1 needs consent_answer (a code) and consent_seq (the
 *     chat seq of the question); consent_asked 0 allows neither;
 *   - the child's identity is included only with identity_reason consent
 *     (and then consent_answer must be yes) or life_at_risk; when it is
 *     not included, the reason is no_consent, not_needed or not_known.
 * Pure.
 */
const char *hl_ref_check(const struct hl_msg_referral *x,
			 struct hl_ref_fields *out, const char **field);

/* Which approval a member of staff may give. */
enum hl_ref_slot {
	HL_REF_SLOT_COUNSELLOR,  /* the counsellor's (raised it or holds the chat) */
	HL_REF_SLOT_SUPERVISOR,  /* the supervisor's (claimed the escalation) */
	HL_REF_SLOT_TWICE,       /* they already approved this revision */
	HL_REF_SLOT_TAKEN,       /* their side was approved by someone else */
	HL_REF_SLOT_NONE,        /* not a party: forbidden */
};

/*
 * The two-person rule: who (a staff id) approving a referral whose
 * escalation was claimed by claimer and raised by raiser, on a chat held by
 * holder (0 = nobody), with the approvals counsellor_ok / supervisor_ok
 * given so far (staff ids, 0 = not yet). The claimer approves as the
 * supervisor, else the raiser or holder as the counsellor; no one approves
 * twice (so the two approvals are always two accounts). Pure.
 */
enum hl_ref_slot hl_ref_approval_slot(int64_t who, int64_t claimer,
				      int64_t raiser, int64_t holder,
				      int64_t counsellor_ok,
				      int64_t supervisor_ok);

/* What a delivery attempt came to. */
enum hl_ref_outcome {
	HL_REF_OUT_ACK,    /* 2xx with an ack_id: acknowledged */
	HL_REF_OUT_RETRY,  /* try again later (network, 408, 425, 429, 5xx, no ack_id) */
	HL_REF_OUT_FAIL,   /* permanent: another 4xx, a redirect, 1xx */
};

/*
 * Classifies an attempt: transport_ok false (no HTTP answer; why_in the
 * transport's error), else the HTTP status and the first len bytes of the
 * response body. On ACK, ack (ack_cap bytes) receives the body's "ack_id"
 * (1..128 printable ASCII characters, else the answer is not an
 * acknowledgement). why (why_cap bytes) always receives a reason in
 * printable ASCII for people. Pure.
 */
enum hl_ref_outcome hl_ref_classify(bool transport_ok, const char *why_in,
				    long status, const char *body, size_t len,
				    char *ack, size_t ack_cap, char *why,
				    size_t why_cap);

/*
 * The wait before the next attempt after `attempt` attempts failed
 * (1..): base_ms doubled per attempt, at most max_ms, then "equal
 * jitter": half of it plus rnd's share of the other half. Pure.
 */
int64_t hl_ref_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms,
			  uint32_t rnd);

/* ---- the module -------------------------------------------------------------- */

/* A referral waiting for delivery, as the loop holds it. */
struct hl_ref_pending {
	int64_t id;
	int64_t due_ms;            /* unix ms of the next attempt */
	bool in_flight;            /* an attempt is under way */
	struct hl_ref_pending *next;
};

/* Embedded in struct hl_server. */
struct hl_referrals {
	struct hl_server *srv;
	struct hl_ref_pending *pending; /* approved / sent, not yet settled */
	int in_flight;                  /* attempts under way */
	unsigned char partner_pk[32];   /* [referral] partner_key */
	bool has_partner_key;
	bool deliver;                   /* [referral] partner_url is set */
	struct hl_delivery http;        /* the HTTP client thread */
	bool http_started;
	uv_timer_t timer;               /* starts due attempts */
	bool timer_open;
	int init_status;                /* start-up load: 0 running, 1 ok, <0 */
};

/* Decodes the partner key, loads the pending deliveries (runs the loop
 * until done: start-up only), starts the HTTP thread (when partner_url is
 * set) and the timer. 0 or an HL_E* status. */
int hl_referrals_init(struct hl_referrals *r, struct hl_server *srv);
/* Stops the timer and the HTTP thread (an attempt under way is abandoned:
 * its row stays "sent" and is retried after its lease on the next start).
 * Before the store closes. Idempotent. */
void hl_referrals_stop(struct hl_referrals *r);
void hl_referrals_free(struct hl_referrals *r);

/* Handlers (dispatch.c, NEED_STAFF: the roles are checked by the rules). */
void hl_referral_create(struct hl_session *s, const struct hl_msg *m);
void hl_referral_update(struct hl_session *s, const struct hl_msg *m);
void hl_referral_approve(struct hl_session *s, const struct hl_msg *m);
void hl_referral_list(struct hl_session *s, const struct hl_msg *m);
void hl_referral_get(struct hl_session *s, const struct hl_msg *m);
void hl_referral_retry(struct hl_session *s, const struct hl_msg *m);
void hl_referral_download(struct hl_session *s, const struct hl_msg *m);

/* The largest sealed package referral.create / update take, in bytes:
 * evidence.max_bundle plus room for the document and the seal. */
size_t hl_referral_sealed_max(const struct hl_server *srv);

#endif
