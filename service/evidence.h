/* evidence.h: owns the service's EVIDENCE key and what it signs
 * (docs/evidence.md): making the key and its root-signed certificate
 * (helplinectl init / evidence-key), and countersigning an evidence bundle
 * built by a supervisor's client, after checking it against the
 * database. The key is sealed at rest under the server key file (org_key
 * evidence_sk_sealed, associated data "evidence_sk") and opened at start-up
 * by trust.c (hl_trust_evidence_sk); its certificate is org_key
 * evidence_cert, published in e2e.org as evidence_cert.
 *
 * The protocol message `evidence.sign` (docs/protocol.md §5.14) is
 * evidence_msg.c: it checks the caller (a supervisor with a fresh TOTP) and
 * evidence.max_bundle on the loop, runs hl_evidence_check on the uv
 * threadpool and hl_evidence_countersign in a store job on the writer,
 * answers evidence.signed {conversation, digest, sig} (the client sets
 * signatures.evidence = sig: client-web/js/bundle.js withServiceSignature)
 * and audits every refusal as "escalation.refused". */
#ifndef HL_EVIDENCE_H
#define HL_EVIDENCE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "bundle.h"
#include "cert.h"

#define HL_EVIDENCE_VALID_S (730LL * 86400)  /* certificate: 2 years */
#define HL_EVIDENCE_SKEW_MS (10LL * 60 * 1000) /* created_at vs now */

/*
 * Makes a new EVIDENCE key pair and its certificate (role
 * HL_CERT_EVIDENCE, subject "evidence", no box key, valid from now_s for
 * valid_s seconds) signed with the root's 64-byte secret key. pk (32),
 * sk (64; the caller wipes it) and cert (HL_CERT_MAX, *cert_len) are
 * filled. 0 or HL_EINVAL.
 */
int hl_evidence_make_key(const unsigned char root_sk[64], int64_t now_s,
			 int64_t valid_s, unsigned char pk[32],
			 unsigned char sk[64], unsigned char cert[HL_CERT_MAX],
			 size_t *cert_len);

/* sig = Ed25519(sk, HL_BUNDLE_SERVICE_LABEL ‖ digest). */
void hl_evidence_sign_digest(const unsigned char sk[64],
			     const unsigned char digest[HL_BUNDLE_DIGEST],
			     unsigned char sig[64]);

/* A request to countersign. Pointers are borrowed for the call. */
struct hl_evidence_request {
	const unsigned char *bundle;   /* the bundle file */
	size_t len;
	int64_t conversation;          /* what the request names */
	int64_t staff_id;              /* the caller */
	int64_t now_ms;                /* the daemon's clock */
	const unsigned char *root_pk;  /* hl_trust_root() */
	const unsigned char *evidence_sk; /* hl_trust_evidence_sk() */
};

/* Its outcome. */
struct hl_evidence_result {
	unsigned char sig[64];         /* on success */
	unsigned char digest[HL_BUNDLE_DIGEST];
	const char *code;              /* on refusal: "forbidden", "bad_field",
					* "bad_state" (static) */
	char why[256];                 /* on refusal: for the error message */
};

/*
 * The pure half, on any thread (the uv threadpool: verifying a large
 * bundle takes a while, and neither the loop nor the writer should wait):
 * fills *rep (free it with hl_bundle_report_free whatever the result) and
 * checks that
 *   - the service has its root and EVIDENCE keys (else bad_state);
 *   - the bundle verifies under the service's root with nothing wrong but
 *     the missing EVIDENCE signature (bad_field, why = the first failed
 *     check), and is of q->conversation (bad_field);
 *   - its created_at is within HL_EVIDENCE_SKEW_MS of q->now_ms
 *     (bad_field): so the EVIDENCE signature also vouches for the time
 *     the bundle's certificates are checked at.
 * Returns 0, HL_EINVAL (refused: res->code, res->why) or HL_ENOMEM.
 */
int hl_evidence_check(const struct hl_evidence_request *q,
		      struct hl_bundle_report *rep,
		      struct hl_evidence_result *res);

/*
 * The store half, on the writer inside a write transaction (a store job),
 * with rep from a successful hl_evidence_check of the same q: countersigns
 * when
 *   - q->staff_id claimed an escalation on q->conversation
 *     (hl_escalation_reader; forbidden otherwise);
 *   - the bundle's signing device is a live device of q->staff_id
 *     (forbidden);
 *   - its chain head at its last event is the one stored for that event,
 *     and every audit entry it carries is the stored row of that seq
 *     (bad_field): the bundle is this database's record, not one that
 *     merely verifies.
 * Then signs the digest and appends the audit entry "evidence.signed"
 * (actor q->staff_id, detail {"conversation":N,"digest":"<hex>"}). Returns
 * 0 (res->sig, res->digest), HL_EINVAL (refused: res->code, res->why;
 * nothing written) or HL_ESTORE.
 */
int hl_evidence_countersign(sqlite3 *db, sqlite3_stmt *const *stmts,
			    const struct hl_evidence_request *q,
			    const struct hl_bundle_report *rep,
			    struct hl_evidence_result *res);

#endif
