/* cert.h: owns Helpline certificates: the canonical encoding of a public
 * key binding (role, subject, keys, validity) and its Ed25519 signature by
 * an issuer (the organisation root, or an admin device that chains to it). */
#ifndef HL_CERT_H
#define HL_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A certificate is the canonical body followed by a 64-byte Ed25519
 * signature by the issuer over exactly those body bytes. Body, big-endian:
 *
 *   "helpline-cert-v1"      16 bytes, no NUL
 *   role                    u8 (enum hl_cert_role)
 *   subject_len             u8, 1..64
 *   subject                 subject_len bytes, no NUL ("stamp", or a staff
 *                           id in decimal)
 *   sign_pk                 32 bytes, Ed25519 public key
 *   box_pk                  32 bytes, X25519 public key (all zero for
 *                           HL_CERT_STAMP and HL_CERT_EVIDENCE, which
 *                           have no box key)
 *   not_before              i64, unix seconds
 *   not_after               i64, unix seconds, >= not_before
 *
 * A certificate is valid at time now when not_before <= now <= not_after
 * (both ends inclusive, as X.509's validity period).
 */
#define HL_CERT_MAGIC "helpline-cert-v1"
#define HL_CERT_MAGIC_LEN 16
#define HL_CERT_SUBJECT_MAX 64
#define HL_CERT_KEY_BYTES 32
#define HL_CERT_SIG_BYTES 64
/* Body bytes other than the subject. */
#define HL_CERT_FIXED_BYTES \
	(HL_CERT_MAGIC_LEN + 1 + 1 + 2 * HL_CERT_KEY_BYTES + 8 + 8)
#define HL_CERT_BODY_MAX (HL_CERT_FIXED_BYTES + HL_CERT_SUBJECT_MAX)
/* Largest signed certificate (body || signature). */
#define HL_CERT_MAX (HL_CERT_BODY_MAX + HL_CERT_SIG_BYTES)

/* What the certified keys may be used for. Values are part of the encoding. */
enum hl_cert_role {
	HL_CERT_STAMP = 1,         /* the service's checkpoint signing key */
	HL_CERT_ADMIN_DEVICE = 2,  /* an admin's device: certifies staff ones */
	HL_CERT_COUNSELLOR_DEVICE = 3,
	HL_CERT_SUPERVISOR_DEVICE = 4,
	HL_CERT_EVIDENCE = 5,      /* the service's evidence-bundle signing key
				    * (docs/evidence.md); no box key */
};

/* The fields of a certificate body. */
struct hl_cert {
	uint8_t role;                             /* enum hl_cert_role */
	uint8_t subject_len;                      /* 1..HL_CERT_SUBJECT_MAX */
	char subject[HL_CERT_SUBJECT_MAX + 1];    /* NUL-terminated copy */
	unsigned char sign_pk[HL_CERT_KEY_BYTES]; /* Ed25519 */
	unsigned char box_pk[HL_CERT_KEY_BYTES];  /* X25519; zeros for stamp */
	int64_t not_before;                       /* unix seconds */
	int64_t not_after;                        /* unix seconds, inclusive */
};

/*
 * Writes the canonical body of c to out (cap bytes; HL_CERT_BODY_MAX is
 * always enough) and its length to *len_out. subject_len is taken from c,
 * and the subject's first subject_len bytes must contain no NUL. Returns 0,
 * HL_EINVAL for fields that do not make a valid certificate (unknown role,
 * subject length 0 or over 64, a NUL in the subject, a non-zero box key on a
 * stamp or evidence certificate, not_after < not_before) or HL_ERANGE when cap is too
 * small. Writes nothing on failure.
 */
int hl_cert_encode(const struct hl_cert *c, unsigned char *out, size_t cap,
		   size_t *len_out);

/*
 * Signs a body made by hl_cert_encode (body_len bytes) with the issuer's
 * Ed25519 secret key (libsodium's 64-byte form): out (cap bytes, at least
 * body_len + HL_CERT_SIG_BYTES) receives body || signature and *len_out its
 * length; out may be body itself (signing in place). Returns 0, HL_EINVAL
 * when body is not a well-formed body (the same checks as hl_cert_verify's,
 * bar time and signature), or HL_ERANGE when cap is too small. Does not keep
 * issuer_sk. The caller has called sodium_init().
 */
int hl_cert_sign(const unsigned char *body, size_t body_len,
		 const unsigned char issuer_sk[64], unsigned char *out,
		 size_t cap, size_t *len_out);

/*
 * Reads the fields of a signed certificate (len bytes) without checking its
 * signature, role or time: exact length for its subject, magic and the field
 * rules of hl_cert_encode. For diagnostics (an offline verifier saying
 * which check failed) and for checks before the signature's
 * (hl_e2e_chain_verify); never act on a certificate whose bytes
 * hl_cert_verify has not accepted. Returns 0 and fills *out, or HL_EINVAL
 * (out zeroed).
 */
int hl_cert_parse(const unsigned char *cert, size_t len, struct hl_cert *out);

/* not_before <= now <= not_after (unix seconds). */
bool hl_cert_valid_at(const struct hl_cert *c, int64_t now);

/*
 * Checks a signed certificate (len bytes): exact length for its subject,
 * magic, field rules as hl_cert_encode, the issuer's signature, the role
 * equal to expected_role, and not_before <= now <= not_after. Returns 0
 * and fills *out (may be NULL), or HL_EINVAL for any failure (out is then
 * zeroed), without saying which: a caller must not act on a partly checked
 * certificate.
 */
int hl_cert_verify(const unsigned char *cert, size_t len,
		   const unsigned char issuer_pk[HL_CERT_KEY_BYTES],
		   int64_t now, int expected_role, struct hl_cert *out)
	__attribute__((warn_unused_result));

#endif
