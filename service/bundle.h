/* bundle.h: owns evidence bundles as a verifier sees them (docs/evidence.md):
 * their canonical JSON encoding, the digest and the two signatures over it,
 * and every check an offline verifier makes of a bundle held in memory. Pure:
 * no database, no network, no clock (every time checked is one the bundle
 * carries, signed). jansson and libsodium only; the byte formats inside are
 * e2e.h's, cert.h's and audit.h's. Any thread; the caller has called
 * sodium_init(). */
#ifndef HL_BUNDLE_H
#define HL_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stdio.h>

#include "cert.h"

#define HL_BUNDLE_FORMAT "helpline-evidence-v1"
/* What the supervisor's device and the service's EVIDENCE key sign: the
 * label (no NUL) ‖ the 32-byte digest. */
#define HL_BUNDLE_SUPERVISOR_LABEL "helpline-evidence-supervisor-v1"
#define HL_BUNDLE_SERVICE_LABEL "helpline-evidence-service-v1"
#define HL_BUNDLE_DIGEST 32
#define HL_BUNDLE_SIG_MSG_MAX (32 + HL_BUNDLE_DIGEST)

/* Bounds: a file over these is refused before any crypto is done. */
#define HL_BUNDLE_MAX_BYTES (64u << 20)   /* the whole file */
#define HL_BUNDLE_MAX_DEPTH 32            /* nesting of arrays and objects */
#define HL_BUNDLE_MAX_EVENTS 100000
#define HL_BUNDLE_MAX_LIST 10000          /* audit, revocations, devices */
#define HL_BUNDLE_MAX_BODY 65536          /* a disclosed message body */

/* Which signature. */
enum hl_bundle_signer {
	HL_BUNDLE_BY_SUPERVISOR = 0,
	HL_BUNDLE_BY_SERVICE = 1,
};

/*
 * The canonical encoding of v (docs/evidence.md "Canonical JSON"): no
 * whitespace; object keys sorted bytewise, each 1-64 printable ASCII
 * characters other than '"' and '\'; strings with only '"', '\' and the
 * control characters escaped (\b \t \n \f \r, else \u00xx in lower-case
 * hex); integers only, within +-(2^53 - 1). Writes a malloc'd buffer (not
 * NUL-terminated; free() it) to *out and its length to *len. Returns 0,
 * HL_EINVAL (a value outside that space: a real number, a bad key, nesting
 * over HL_BUNDLE_MAX_DEPTH; why names it when not NULL) or HL_ENOMEM.
 */
int hl_bundle_canonical(const json_t *v, char **out, size_t *len,
			char *why, size_t why_len);

/* The digest: BLAKE2b-256 (crypto_generichash, unkeyed) of the canonical
 * encoding of the body, len bytes. */
void hl_bundle_digest(const void *canonical_body, size_t len,
		      unsigned char out[HL_BUNDLE_DIGEST]);

/* What signer signs: its label ‖ digest, written to out; returns the
 * length. */
size_t hl_bundle_sig_msg(enum hl_bundle_signer signer,
			 const unsigned char digest[HL_BUNDLE_DIGEST],
			 unsigned char out[HL_BUNDLE_SIG_MSG_MAX]);

/* One line of a verdict: a named check that passed, or one thing that
 * failed. */
struct hl_bundle_line {
	bool ok;
	char check[32];   /* e.g. "chain", "message", "evidence signature" */
	char text[256];   /* what was checked, or what is wrong */
};

/* A disclosed message, for printing. */
struct hl_bundle_message {
	int64_t seq, at;
	char sender[40];  /* "contact" or "staff:<id>" */
	bool card;        /* a safety card: text is its id */
	int type;         /* the body type: 1 text, 2 card, 3 consent question,
			   * 4 consent answer, 5 hash report (text: its JSON) */
	bool ok;          /* its opening verified */
	char *text;       /* malloc'd, NUL-terminated UTF-8 (may hold controls) */
};

/* An audit entry the bundle carries, by its hash. */
struct hl_bundle_audit_ref {
	int64_t seq;
	unsigned char entry_hash[32];
};

/* The verdict. Fields other than lines are meaningful when parsed. */
struct hl_bundle_report {
	bool verified;        /* every check passed */
	bool parsed;          /* the file was read as a bundle */
	bool root_given;      /* checked against a root key given by the caller */
	unsigned char root_pk[32];        /* the key checked against */
	unsigned char digest[HL_BUNDLE_DIGEST]; /* recomputed */
	int64_t conversation;
	int64_t created_at;   /* unix ms: the time certificates are checked at */
	size_t events, withheld, accepts, checkpoints, audit, revocations;
	size_t failures;      /* failed checks, counted even when not listed */
	struct hl_bundle_line *lines;     /* malloc'd, nlines long */
	size_t nlines, cap;
	size_t omitted;       /* failure lines not kept (over 200) */
	struct hl_bundle_message *messages; /* malloc'd, nmessages long */
	size_t nmessages;
	/* What a countersigning service compares with its own records
	 * (evidence.c): */
	bool evidence_missing;  /* the only thing wrong may be this */
	unsigned char signer_cert[HL_CERT_MAX]; /* the supervisor's device */
	size_t signer_cert_len;
	unsigned char last_head[32];   /* the chain head at the last event */
	struct hl_bundle_audit_ref *audit_refs; /* malloc'd, audit long */
};

/*
 * Verifies the bundle file data (len bytes) and fills *r (the caller frees
 * it with hl_bundle_report_free, whatever the result). root_pk is the
 * organisation root key to check against; NULL checks against the key the
 * bundle carries (r->root_given false: a court must then compare it with
 * the one the helpline publishes). Makes every check of docs/evidence.md
 * "What the verifier checks", reporting each failure rather than stopping
 * at the first, so that an edit is named (a message, the chain, a
 * checkpoint) as well as caught by the digest. Returns 0 when the bundle
 * verifies, HL_EINVAL when it does not, HL_ENOMEM.
 */
int hl_bundle_verify(const void *data, size_t len,
		     const unsigned char *root_pk, struct hl_bundle_report *r);

void hl_bundle_report_free(struct hl_bundle_report *r);

/*
 * Prints r as helplinectl verify-bundle shows it: a summary (conversation,
 * times, counts, the root key's fingerprint and, when it came from the
 * bundle, the warning that a court must compare it with the published
 * one), every check with "ok" or "FAIL", the disclosed messages (with
 * control characters escaped), and the verdict line. Returns nothing; write
 * errors are the caller's to check with ferror.
 */
void hl_bundle_report_print(const struct hl_bundle_report *r, FILE *out);

#endif
