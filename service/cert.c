/* cert.c: Helpline certificates: canonical body encoding, Ed25519 signing
 * by an issuer, and verification (length, fields, signature, role, time).
 * The caller has called sodium_init() (hl_keys_load does). Any thread. */
#include "cert.h"
#include "common.h"

#include <sodium.h>
#include <string.h>

/* Offsets inside the body. */
enum {
	OFF_ROLE = HL_CERT_MAGIC_LEN,
	OFF_SUBJECT_LEN = OFF_ROLE + 1,
	OFF_SUBJECT = OFF_SUBJECT_LEN + 1,
	/* After the subject: sign_pk, box_pk, not_before, not_after. */
};

_Static_assert(sizeof(HL_CERT_MAGIC) - 1 == HL_CERT_MAGIC_LEN,
	       "the magic is 16 bytes without its NUL");
_Static_assert(HL_CERT_FIXED_BYTES == 98, "certificate layout changed");

static void put_i64(unsigned char *p, int64_t v)
{
	hl_put_be64(p, (uint64_t)v);
}

static int64_t get_i64(const unsigned char *p)
{
	uint64_t u = hl_get_be64(p);

	/* Two's complement back to signed without implementation-defined
	 * conversion of out-of-range values. */
	if (u <= (uint64_t)INT64_MAX)
		return (int64_t)u;
	return -(int64_t)(~u) - 1;
}

static int role_known(int role)
{
	return role >= HL_CERT_STAMP && role <= HL_CERT_EVIDENCE;
}

/* The rules every body obeys, whether being written or read. */
static int fields_ok(int role, const unsigned char *subject, size_t subject_len,
		     const unsigned char box_pk[HL_CERT_KEY_BYTES],
		     int64_t not_before, int64_t not_after)
{
	static const unsigned char zero[HL_CERT_KEY_BYTES];

	if (!role_known(role))
		return 0;
	if (subject_len < 1 || subject_len > HL_CERT_SUBJECT_MAX ||
	    memchr(subject, '\0', subject_len))
		return 0;
	/* The service's keys only sign: they have no box key. */
	if ((role == HL_CERT_STAMP || role == HL_CERT_EVIDENCE) &&
	    memcmp(box_pk, zero, sizeof(zero)) != 0)
		return 0;
	return not_after >= not_before;
}

/*
 * Parses a body of exactly len bytes into out (may be NULL). Returns 0 or
 * HL_EINVAL; checks structure and field rules, not signature or time.
 */
static int parse_body(const unsigned char *b, size_t len, struct hl_cert *out)
{
	const unsigned char *p;
	size_t slen;
	int64_t nb, na;

	if (len < HL_CERT_FIXED_BYTES + 1 || len > HL_CERT_BODY_MAX)
		return HL_EINVAL;
	if (memcmp(b, HL_CERT_MAGIC, HL_CERT_MAGIC_LEN) != 0)
		return HL_EINVAL;
	slen = b[OFF_SUBJECT_LEN];
	if (len != HL_CERT_FIXED_BYTES + slen)
		return HL_EINVAL;
	p = b + OFF_SUBJECT + slen;  /* sign_pk */
	nb = get_i64(p + 2 * HL_CERT_KEY_BYTES);
	na = get_i64(p + 2 * HL_CERT_KEY_BYTES + 8);
	if (!fields_ok(b[OFF_ROLE], b + OFF_SUBJECT, slen,
		       p + HL_CERT_KEY_BYTES, nb, na))
		return HL_EINVAL;
	if (out) {
		memset(out, 0, sizeof(*out));
		out->role = b[OFF_ROLE];
		out->subject_len = (uint8_t)slen;
		memcpy(out->subject, b + OFF_SUBJECT, slen);
		memcpy(out->sign_pk, p, HL_CERT_KEY_BYTES);
		memcpy(out->box_pk, p + HL_CERT_KEY_BYTES, HL_CERT_KEY_BYTES);
		out->not_before = nb;
		out->not_after = na;
	}
	return 0;
}

int hl_cert_encode(const struct hl_cert *c, unsigned char *out, size_t cap,
		   size_t *len_out)
{
	unsigned char *p;
	size_t len;

	if (!c || !out || !len_out)
		return HL_EINVAL;
	if (!fields_ok(c->role, (const unsigned char *)c->subject,
		       c->subject_len, c->box_pk, c->not_before, c->not_after))
		return HL_EINVAL;
	len = HL_CERT_FIXED_BYTES + c->subject_len;
	if (cap < len)
		return HL_ERANGE;
	memcpy(out, HL_CERT_MAGIC, HL_CERT_MAGIC_LEN);
	out[OFF_ROLE] = c->role;
	out[OFF_SUBJECT_LEN] = c->subject_len;
	memcpy(out + OFF_SUBJECT, c->subject, c->subject_len);
	p = out + OFF_SUBJECT + c->subject_len;
	memcpy(p, c->sign_pk, HL_CERT_KEY_BYTES);
	memcpy(p + HL_CERT_KEY_BYTES, c->box_pk, HL_CERT_KEY_BYTES);
	put_i64(p + 2 * HL_CERT_KEY_BYTES, c->not_before);
	put_i64(p + 2 * HL_CERT_KEY_BYTES + 8, c->not_after);
	*len_out = len;
	return 0;
}

int hl_cert_sign(const unsigned char *body, size_t body_len,
		 const unsigned char issuer_sk[64], unsigned char *out,
		 size_t cap, size_t *len_out)
{
	if (!body || !issuer_sk || !out || !len_out)
		return HL_EINVAL;
	if (parse_body(body, body_len, NULL) != 0)
		return HL_EINVAL;
	if (cap < body_len + HL_CERT_SIG_BYTES)
		return HL_ERANGE;
	memmove(out, body, body_len);
	if (crypto_sign_detached(out + body_len, NULL, out, body_len,
				 issuer_sk) != 0)
		return HL_EINVAL;
	*len_out = body_len + HL_CERT_SIG_BYTES;
	return 0;
}

int hl_cert_parse(const unsigned char *cert, size_t len, struct hl_cert *out)
{
	memset(out, 0, sizeof(*out));
	if (!cert || len < HL_CERT_SIG_BYTES ||
	    parse_body(cert, len - HL_CERT_SIG_BYTES, out) != 0) {
		memset(out, 0, sizeof(*out));
		return HL_EINVAL;
	}
	return 0;
}

bool hl_cert_valid_at(const struct hl_cert *c, int64_t now)
{
	return now >= c->not_before && now <= c->not_after;
}

int hl_cert_verify(const unsigned char *cert, size_t len,
		   const unsigned char issuer_pk[HL_CERT_KEY_BYTES],
		   int64_t now, int expected_role, struct hl_cert *out)
{
	struct hl_cert c;
	size_t body_len;
	int rc = HL_EINVAL;

	memset(&c, 0, sizeof(c));
	if (!cert || !issuer_pk || len < HL_CERT_SIG_BYTES)
		goto out;
	body_len = len - HL_CERT_SIG_BYTES;
	if (parse_body(cert, body_len, &c) != 0)
		goto out;
	if (crypto_sign_verify_detached(cert + body_len, cert, body_len,
					issuer_pk) != 0)
		goto out;
	if (c.role != expected_role)
		goto out;
	if (!hl_cert_valid_at(&c, now))
		goto out;
	rc = 0;
out:
	if (out) {
		if (rc == 0)
			*out = c;
		else
			memset(out, 0, sizeof(*out));
	}
	return rc;
}
