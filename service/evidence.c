/* evidence.c: the EVIDENCE key: its certificate, and countersigning an
 * evidence bundle once the database confirms it (docs/evidence.md). */
#include "evidence.h"
#include "audit.h"
#include "common.h"
#include "escalation.h"
#include "trust.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

int hl_evidence_make_key(const unsigned char root_sk[64], int64_t now_s,
			 int64_t valid_s, unsigned char pk[32],
			 unsigned char sk[64], unsigned char cert[HL_CERT_MAX],
			 size_t *cert_len)
{
	struct hl_cert c;
	unsigned char body[HL_CERT_BODY_MAX];
	size_t body_len;

	if (valid_s < 0 || now_s > INT64_MAX - valid_s)
		return HL_EINVAL;
	crypto_sign_keypair(pk, sk);
	memset(&c, 0, sizeof(c));
	c.role = HL_CERT_EVIDENCE;
	c.subject_len = (uint8_t)strlen("evidence");
	memcpy(c.subject, "evidence", c.subject_len);
	memcpy(c.sign_pk, pk, 32);
	c.not_before = now_s;
	c.not_after = now_s + valid_s;
	if (hl_cert_encode(&c, body, sizeof(body), &body_len) != 0 ||
	    hl_cert_sign(body, body_len, root_sk, cert, HL_CERT_MAX,
			 cert_len) != 0) {
		sodium_memzero(sk, 64);
		return HL_EINVAL;
	}
	return 0;
}

void hl_evidence_sign_digest(const unsigned char sk[64],
			     const unsigned char digest[HL_BUNDLE_DIGEST],
			     unsigned char sig[64])
{
	unsigned char m[HL_BUNDLE_SIG_MSG_MAX];
	size_t n = hl_bundle_sig_msg(HL_BUNDLE_BY_SERVICE, digest, m);

	crypto_sign_detached(sig, NULL, m, n, sk);
}

static int refuse(struct hl_evidence_result *res, const char *code,
		  const char *why)
{
	/* A long reason is cut: it is for people, not for parsing. */
	size_t n = strlen(why);

	res->code = code;
	if (n >= sizeof(res->why))
		n = sizeof(res->why) - 1;
	memcpy(res->why, why, n);
	res->why[n] = '\0';
	return HL_EINVAL;
}

/* The stored blob of one row: 1 when it equals want (32 bytes), 0 when it
 * differs or there is no row, or HL_ESTORE. Prepared per call: countersigning
 * is rare (a few times per escalation). */
static int stored_equals(sqlite3 *db, const char *sql, int64_t a, int64_t b,
			 bool two, const unsigned char want[32])
{
	sqlite3_stmt *st = NULL;
	int rc, out = 0;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return HL_ESTORE;
	sqlite3_bind_int64(st, 1, a);
	if (two)
		sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		out = sqlite3_column_bytes(st, 0) == 32 &&
		      sodium_memcmp(sqlite3_column_blob(st, 0), want, 32) == 0;
	else if (rc != SQLITE_DONE)
		out = HL_ESTORE;
	sqlite3_finalize(st);
	return out;
}

int hl_evidence_check(const struct hl_evidence_request *q,
		      struct hl_bundle_report *rep,
		      struct hl_evidence_result *res)
{
	int64_t skew;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(rep, 0, sizeof(*rep));
	if (!q->root_pk || !q->evidence_sk)
		return refuse(res, "bad_state", "the service has no EVIDENCE "
			      "key (run helplinectl evidence-key)");
	rc = hl_bundle_verify(q->bundle, q->len, q->root_pk, rep);
	if (rc == HL_ENOMEM)
		return rc;
	if (!rep->parsed || (rep->failures && !(rep->failures == 1 &&
						rep->evidence_missing))) {
		for (size_t i = 0; i < rep->nlines; i++) {
			if (!rep->lines[i].ok && !(rep->evidence_missing &&
				strcmp(rep->lines[i].check,
				       "evidence signature") == 0)) {
				char why[300];

				snprintf(why, sizeof(why), "the bundle does not "
					 "verify: %s: %.200s",
					 rep->lines[i].check,
					 rep->lines[i].text);
				return refuse(res, "bad_field", why);
			}
		}
		return refuse(res, "bad_field", "the bundle does not verify");
	}
	if (rep->conversation != q->conversation)
		return refuse(res, "bad_field", "the bundle is of another "
			      "conversation");
	skew = rep->created_at - q->now_ms;
	if (skew > HL_EVIDENCE_SKEW_MS || skew < -HL_EVIDENCE_SKEW_MS)
		return refuse(res, "bad_field", "the bundle's created_at is not "
			      "now (more than 10 minutes from the service's "
			      "clock)");
	memcpy(res->digest, rep->digest, sizeof(res->digest));
	return 0;
}

int hl_evidence_countersign(sqlite3 *db, sqlite3_stmt *const *stmts,
			    const struct hl_evidence_request *q,
			    const struct hl_bundle_report *rep,
			    struct hl_evidence_result *res)
{
	struct hl_audit_entry e;
	int64_t device, owner;
	char detail[160], hex[65];
	int rc;

	res->code = NULL;
	res->why[0] = '\0';
	if (!q->root_pk || !q->evidence_sk || !rep->parsed)
		return refuse(res, "bad_state", "the bundle was not checked "
			      "(hl_evidence_check)");
	rc = hl_escalation_reader(db, q->conversation, q->staff_id);
	if (rc < 0)
		return rc;
	if (rc != HL_ESC_READER_CLAIMER)
		return refuse(res, "forbidden", "only the supervisor who "
			      "claimed an escalation of this conversation may "
			      "have its evidence signed");
	rc = hl_trust_live_device(stmts, rep->signer_cert,
				  rep->signer_cert_len, &device, &owner);
	if (rc == HL_ESTORE)
		return rc;
	if (rc != 0 || owner != q->staff_id)
		return refuse(res, "forbidden", "the bundle is not signed by "
			      "one of your live devices");
	rc = stored_equals(db, "SELECT chain FROM event WHERE conversation_id "
			   "= ?1 AND seq = ?2", q->conversation,
			   (int64_t)rep->events, true, rep->last_head);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return refuse(res, "bad_field", "the bundle's chain is not the "
			      "stored record of this conversation");
	for (size_t i = 0; i < rep->audit; i++) {
		rc = stored_equals(db, "SELECT entry_hash FROM audit WHERE "
				   "seq = ?1", rep->audit_refs[i].seq, 0, false,
				   rep->audit_refs[i].entry_hash);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			char why[120];

			snprintf(why, sizeof(why), "audit entry %" PRId64 " is "
				 "not the stored one", rep->audit_refs[i].seq);
			return refuse(res, "bad_field", why);
		}
	}
	memcpy(res->digest, rep->digest, sizeof(res->digest));
	hl_evidence_sign_digest(q->evidence_sk, rep->digest, res->sig);
	snprintf(detail, sizeof(detail),
		 "{\"conversation\":%" PRId64 ",\"digest\":\"%s\"}",
		 q->conversation,
		 sodium_bin2hex(hex, sizeof(hex), rep->digest, 32));
	memset(&e, 0, sizeof(e));
	e.at_ms = q->now_ms;
	e.actor = q->staff_id;
	e.action = "evidence.signed";
	e.detail = detail;
	if (hl_audit_append(stmts, &e, NULL) != 0) {
		sodium_memzero(res->sig, sizeof(res->sig));
		return HL_ESTORE;
	}
	return 0;
}
