/* evidence_msg.h: owns the evidence.sign message (docs/protocol.md §5.14,
 * docs/evidence.md): a claiming supervisor, with a fresh TOTP, sends the
 * bundle their client built and signed; the daemon checks it (the uv
 * threadpool), compares it with its own records and countersigns it with
 * the EVIDENCE key (a store job on the writer), and answers with the
 * signature. The checks themselves are evidence.c's. */
#ifndef HL_EVIDENCE_MSG_H
#define HL_EVIDENCE_MSG_H

#include <stddef.h>

#include "protocol.h"

struct hl_session;

/*
 * The handler (dispatch.c, NEED_STAFF: the role is checked here so that a
 * counsellor's attempt is audited). Answers evidence.signed or an error;
 * every refusal after the codec's is audited as "escalation.refused" with
 * {"request":"evidence.sign","conversation":N,"error":code}. Loop thread.
 */
void hl_evidence_sign(struct hl_session *s, const struct hl_msg *m);

/*
 * evidence.material {conversation} (dispatch.c, NEED_STAFF): what a
 * claiming supervisor's client needs besides chat.sync to build a bundle
 * of the conversation: its STAMP checkpoints and the audit entries of its
 * escalations (action "escalation.*" whose detail names the
 * conversation), answered as evidence.material {conversation,
 * checkpoints, audit}. Only the supervisor who claimed an escalation of
 * the conversation, with a fresh TOTP, as for reading it by chat.sync;
 * each answer is audited as "evidence.material" and each refusal as
 * "escalation.refused" {"request":"evidence.material",...}. Loop thread.
 */
void hl_evidence_material(struct hl_session *s, const struct hl_msg *m);

/*
 * The largest frame s may send: ws.max_message, or for a logged-in
 * supervisor the larger of 2 x evidence.max_bundle + 4096 (a bundle is a
 * JSON string inside the frame, and escaping can at most double a
 * canonical bundle: it holds no raw control characters) and a
 * referral.create / update carrying a sealed package of
 * hl_referral_sealed_max bytes in base64url plus a staff copy, when that
 * is larger than ws.max_message. For session.c's
 * reassembly and hl_proto_decode; loop thread.
 */
size_t hl_evidence_frame_max(struct hl_session *s);

#endif
