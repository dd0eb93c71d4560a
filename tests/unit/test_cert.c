/* test_cert.c: certificates: a known-answer body encoding, sign/verify
 * round trip, every tampered byte rejected, wrong issuer, wrong role,
 * validity boundaries, malformed lengths and field rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <string.h>

#include "cert.h"
#include "common.h"

/* The body of cert_fixture(), written out by hand (and cross-checked with
 * Python's struct.pack): magic, role 3, subject "42", sign_pk 00..1f,
 * box_pk 20..3f, not_before -2, not_after 1700000000, all big-endian. */
static const char kat_body_hex[] =
	"68656c706c696e652d636572742d763103023432000102030405060708090a0b"
	"0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b"
	"2c2d2e2f303132333435363738393a3b3c3d3e3ffffffffffffffffe00000000"
	"6553f100";

static void cert_fixture(struct hl_cert *c)
{
	memset(c, 0, sizeof(*c));
	c->role = HL_CERT_COUNSELLOR_DEVICE;
	c->subject_len = 2;
	memcpy(c->subject, "42", 2);
	for (int i = 0; i < 32; i++) {
		c->sign_pk[i] = (unsigned char)i;
		c->box_pk[i] = (unsigned char)(32 + i);
	}
	c->not_before = -2;
	c->not_after = 1700000000;
}

/* A fixed issuer key pair (deterministic signatures). */
static void issuer(unsigned char pk[32], unsigned char sk[64], int which)
{
	unsigned char seed[32];

	memset(seed, which, sizeof(seed));
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, seed), 0);
}

/* Encodes and signs c with issuer 1. */
static size_t make_signed(const struct hl_cert *c, unsigned char *out,
			  size_t cap)
{
	unsigned char pk[32], sk[64], body[HL_CERT_BODY_MAX];
	size_t blen, len;

	issuer(pk, sk, 1);
	assert_int_equal(hl_cert_encode(c, body, sizeof(body), &blen), 0);
	assert_int_equal(hl_cert_sign(body, blen, sk, out, cap, &len), 0);
	assert_int_equal(len, blen + HL_CERT_SIG_BYTES);
	return len;
}

static void test_known_answer_body(void **state)
{
	struct hl_cert c;
	unsigned char body[HL_CERT_BODY_MAX], want[HL_CERT_BODY_MAX];
	size_t len, wlen;

	(void)state;
	cert_fixture(&c);
	assert_int_equal(sodium_hex2bin(want, sizeof(want), kat_body_hex,
					strlen(kat_body_hex), NULL, &wlen,
					NULL), 0);
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), 0);
	assert_int_equal(len, wlen);
	assert_int_equal(len, 100);
	assert_memory_equal(body, want, len);
}

static void test_round_trip(void **state)
{
	struct hl_cert c, got;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX];
	size_t len;

	(void)state;
	cert_fixture(&c);
	issuer(pk, sk, 1);
	len = make_signed(&c, cert, sizeof(cert));
	assert_int_equal(hl_cert_verify(cert, len, pk, 0,
					HL_CERT_COUNSELLOR_DEVICE, &got), 0);
	assert_int_equal(got.role, c.role);
	assert_int_equal(got.subject_len, 2);
	assert_string_equal(got.subject, "42");
	assert_memory_equal(got.sign_pk, c.sign_pk, 32);
	assert_memory_equal(got.box_pk, c.box_pk, 32);
	assert_int_equal(got.not_before, -2);
	assert_int_equal(got.not_after, 1700000000);
	/* out may be NULL. */
	assert_int_equal(hl_cert_verify(cert, len, pk, 0,
					HL_CERT_COUNSELLOR_DEVICE, NULL), 0);
}

static void test_stamp_and_longest_subject(void **state)
{
	struct hl_cert c, got;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX];
	size_t len;

	(void)state;
	issuer(pk, sk, 1);
	cert_fixture(&c);
	c.role = HL_CERT_STAMP;
	memset(c.box_pk, 0, sizeof(c.box_pk));
	c.subject_len = 5;
	memcpy(c.subject, "stamp", 5);
	len = make_signed(&c, cert, sizeof(cert));
	assert_int_equal(hl_cert_verify(cert, len, pk, 100, HL_CERT_STAMP,
					&got), 0);
	assert_string_equal(got.subject, "stamp");

	cert_fixture(&c);
	c.role = HL_CERT_SUPERVISOR_DEVICE;
	c.subject_len = HL_CERT_SUBJECT_MAX;
	memset(c.subject, 'x', HL_CERT_SUBJECT_MAX);
	len = make_signed(&c, cert, sizeof(cert));
	assert_int_equal(len, HL_CERT_MAX);
	assert_int_equal(hl_cert_verify(cert, len, pk, 0,
					HL_CERT_SUPERVISOR_DEVICE, &got), 0);
	assert_int_equal(strlen(got.subject), HL_CERT_SUBJECT_MAX);
}

static void test_every_tampered_byte_fails(void **state)
{
	struct hl_cert c, got;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX];
	size_t len;

	(void)state;
	cert_fixture(&c);
	issuer(pk, sk, 1);
	len = make_signed(&c, cert, sizeof(cert));
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			cert[i] ^= (unsigned char)(1u << bit);
			memset(&got, 0xaa, sizeof(got));
			assert_int_equal(hl_cert_verify(cert, len, pk, 0,
					HL_CERT_COUNSELLOR_DEVICE, &got),
					HL_EINVAL);
			/* Nothing of a rejected certificate is handed out. */
			assert_int_equal(got.role, 0);
			assert_int_equal(got.subject[0], '\0');
			cert[i] ^= (unsigned char)(1u << bit);
		}
	}
	assert_int_equal(hl_cert_verify(cert, len, pk, 0,
					HL_CERT_COUNSELLOR_DEVICE, &got), 0);
}

static void test_wrong_issuer(void **state)
{
	struct hl_cert c;
	unsigned char pk2[32], sk2[64], cert[HL_CERT_MAX];
	size_t len;

	(void)state;
	cert_fixture(&c);
	len = make_signed(&c, cert, sizeof(cert));  /* by issuer 1 */
	issuer(pk2, sk2, 2);
	assert_int_equal(hl_cert_verify(cert, len, pk2, 0,
					HL_CERT_COUNSELLOR_DEVICE, NULL),
			 HL_EINVAL);
}

static void test_wrong_role(void **state)
{
	struct hl_cert c;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX];
	size_t len;

	(void)state;
	cert_fixture(&c);
	issuer(pk, sk, 1);
	len = make_signed(&c, cert, sizeof(cert));
	for (int role = 0; role <= 5; role++) {
		if (role == HL_CERT_COUNSELLOR_DEVICE)
			continue;
		assert_int_equal(hl_cert_verify(cert, len, pk, 0, role, NULL),
				 HL_EINVAL);
	}
}

static void test_validity_boundaries(void **state)
{
	struct hl_cert c;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX];
	size_t len;
	const int r = HL_CERT_ADMIN_DEVICE;

	(void)state;
	cert_fixture(&c);
	c.role = r;
	c.not_before = 1000;
	c.not_after = 2000;
	issuer(pk, sk, 1);
	len = make_signed(&c, cert, sizeof(cert));
	assert_int_equal(hl_cert_verify(cert, len, pk, 999, r, NULL), HL_EINVAL);
	assert_int_equal(hl_cert_verify(cert, len, pk, 1000, r, NULL), 0);
	assert_int_equal(hl_cert_verify(cert, len, pk, 1500, r, NULL), 0);
	assert_int_equal(hl_cert_verify(cert, len, pk, 2000, r, NULL), 0);
	assert_int_equal(hl_cert_verify(cert, len, pk, 2001, r, NULL), HL_EINVAL);
	assert_int_equal(hl_cert_verify(cert, len, pk, INT64_MIN, r, NULL),
			 HL_EINVAL);
	assert_int_equal(hl_cert_verify(cert, len, pk, INT64_MAX, r, NULL),
			 HL_EINVAL);

	/* A one-second certificate (not_before == not_after) is legal. */
	c.not_before = c.not_after = 5000;
	len = make_signed(&c, cert, sizeof(cert));
	assert_int_equal(hl_cert_verify(cert, len, pk, 5000, r, NULL), 0);
	assert_int_equal(hl_cert_verify(cert, len, pk, 4999, r, NULL), HL_EINVAL);
	assert_int_equal(hl_cert_verify(cert, len, pk, 5001, r, NULL), HL_EINVAL);
}

static void test_malformed_lengths(void **state)
{
	struct hl_cert c;
	unsigned char pk[32], sk[64], cert[HL_CERT_MAX + 8], body[HL_CERT_MAX];
	size_t len, blen;
	const int r = HL_CERT_COUNSELLOR_DEVICE;

	(void)state;
	cert_fixture(&c);
	issuer(pk, sk, 1);
	len = make_signed(&c, cert, sizeof(cert));
	/* Every shorter length and a few longer ones. */
	for (size_t l = 0; l < len; l++)
		assert_int_equal(hl_cert_verify(cert, l, pk, 0, r, NULL),
				 HL_EINVAL);
	memset(cert + len, 0, 8);
	for (size_t l = len + 1; l <= len + 8; l++)
		assert_int_equal(hl_cert_verify(cert, l, pk, 0, r, NULL),
				 HL_EINVAL);
	assert_int_equal(hl_cert_verify(NULL, len, pk, 0, r, NULL), HL_EINVAL);

	/* A subject_len that disagrees with the length, even when validly
	 * signed by the issuer, is malformed. */
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &blen), 0);
	body[HL_CERT_MAGIC_LEN + 1] = 3;
	crypto_sign_detached(body + blen, NULL, body, blen, sk);
	assert_int_equal(hl_cert_verify(body, blen + 64, pk, 0, r, NULL),
			 HL_EINVAL);
	body[HL_CERT_MAGIC_LEN + 1] = 0;
	crypto_sign_detached(body + blen, NULL, body, blen, sk);
	assert_int_equal(hl_cert_verify(body, blen + 64, pk, 0, r, NULL),
			 HL_EINVAL);
	/* Nor does signing accept it. */
	assert_int_equal(hl_cert_sign(body, blen, sk, cert, sizeof(cert), &len),
			 HL_EINVAL);
	assert_int_equal(hl_cert_sign(body, 0, sk, cert, sizeof(cert), &len),
			 HL_EINVAL);
}

static void test_field_rules(void **state)
{
	struct hl_cert c;
	unsigned char body[HL_CERT_BODY_MAX], pk[32], sk[64], out[HL_CERT_MAX];
	size_t len = 12345;

	(void)state;
	cert_fixture(&c);
	c.role = 0;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	c.role = HL_CERT_EVIDENCE + 1;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	cert_fixture(&c);
	c.subject_len = 0;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	c.subject_len = HL_CERT_SUBJECT_MAX + 1;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	cert_fixture(&c);
	c.subject[1] = '\0';  /* NUL inside subject_len bytes */
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	cert_fixture(&c);
	c.role = HL_CERT_STAMP;  /* box_pk not zero */
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	c.role = HL_CERT_EVIDENCE;  /* nor on an evidence certificate */
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	cert_fixture(&c);
	c.not_after = c.not_before - 1;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &len), HL_EINVAL);
	cert_fixture(&c);
	assert_int_equal(hl_cert_encode(&c, body, 99, &len), HL_ERANGE);
	assert_int_equal(len, 12345);  /* untouched on failure */
	assert_int_equal(hl_cert_encode(&c, body, 100, &len), 0);
	assert_int_equal(len, 100);
	issuer(pk, sk, 1);
	assert_int_equal(hl_cert_sign(body, len, sk, out, len + 63, &len),
			 HL_ERANGE);
}

static void test_sign_in_place(void **state)
{
	struct hl_cert c;
	unsigned char pk[32], sk[64], buf[HL_CERT_MAX];
	size_t blen, len;

	(void)state;
	cert_fixture(&c);
	issuer(pk, sk, 1);
	assert_int_equal(hl_cert_encode(&c, buf, sizeof(buf), &blen), 0);
	assert_int_equal(hl_cert_sign(buf, blen, sk, buf, sizeof(buf), &len), 0);
	assert_int_equal(hl_cert_verify(buf, len, pk, 0,
					HL_CERT_COUNSELLOR_DEVICE, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer_body),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_stamp_and_longest_subject),
		cmocka_unit_test(test_every_tampered_byte_fails),
		cmocka_unit_test(test_wrong_issuer),
		cmocka_unit_test(test_wrong_role),
		cmocka_unit_test(test_validity_boundaries),
		cmocka_unit_test(test_malformed_lengths),
		cmocka_unit_test(test_field_rules),
		cmocka_unit_test(test_sign_in_place),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
