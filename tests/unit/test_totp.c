/* test_totp.c: HOTP against RFC 4226 Appendix D, TOTP against every SHA-1
 * row of RFC 6238 Appendix B, the verification window (±1 step, never a
 * used step, exact 6-digit format), base32 against RFC 4648 §10 and round
 * trips, and the otpauth:// URI byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "totp.h"

/* The RFC 4226 / RFC 6238 SHA-1 test secret. */
static const unsigned char rfc_secret[] = "12345678901234567890";
#define RFC_LEN 20

static void test_hotp_rfc4226(void **state)
{
	static const uint32_t expect[10] = {755224, 287082, 359152, 969429,
					    338314, 254676, 287922, 162583,
					    399871, 520489};

	(void)state;
	for (uint64_t c = 0; c < 10; c++)
		assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, c, 6),
				 expect[c]);
}

static void test_totp_rfc6238_sha1(void **state)
{
	static const struct {
		int64_t t;
		uint64_t step;
		uint32_t code;
	} rows[] = {
		{59, 0x1, 94287082},
		{1111111109, 0x23523EC, 7081804},
		{1111111111, 0x23523ED, 14050471},
		{1234567890, 0x273EF07, 89005924},
		{2000000000, 0x3F940AA, 69279037},
		{20000000000, 0x27BC86AA, 65353130},
	};
	char buf[16];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(rows); i++) {
		uint64_t step = hl_totp_step(rows[i].t);

		assert_int_equal(step, rows[i].step);
		assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, step, 8),
				 rows[i].code);
	}
	/* The leading zero of 07081804 is part of the code. */
	snprintf(buf, sizeof(buf), "%08u",
		 (unsigned)hl_totp_hotp(rfc_secret, RFC_LEN,
					hl_totp_step(1111111109), 8));
	assert_string_equal(buf, "07081804");
	/* 6 and 7 digits are the same value modulo 10^6 and 10^7. */
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 1, 6), 287082);
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 1, 7), 4287082);
}

static void test_step_edges(void **state)
{
	(void)state;
	assert_int_equal(hl_totp_step(0), 0);
	assert_int_equal(hl_totp_step(29), 0);
	assert_int_equal(hl_totp_step(30), 1);
	assert_int_equal(hl_totp_step(-1), 0);
	assert_int_equal(hl_totp_step(INT64_MIN), 0);
	assert_int_equal(hl_totp_step(INT64_MAX), (uint64_t)INT64_MAX / 30);
}

static void test_hotp_bad_digits(void **state)
{
	(void)state;
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 0, 5), UINT32_MAX);
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 0, 9), UINT32_MAX);
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 0, 0), UINT32_MAX);
	assert_int_equal(hl_totp_hotp(rfc_secret, RFC_LEN, 0, -6), UINT32_MAX);
	/* An empty secret is valid HMAC input (and gives some code). */
	assert_true(hl_totp_hotp(rfc_secret, 0, 0, 6) < 1000000);
	assert_true(hl_totp_hotp(NULL, 0, 0, 6) < 1000000);
}

/* The 6-digit code of step, as a person would type it. */
static void code_at(uint64_t step, char out[7])
{
	snprintf(out, 7, "%06u",
		 (unsigned)hl_totp_hotp(rfc_secret, RFC_LEN, step, 6));
}

#define NOW 1111111111 /* step 37037037, 1 s into it */

static void test_verify_window(void **state)
{
	uint64_t s = hl_totp_step(NOW), m;
	char c[7];

	(void)state;
	/* The codes of the five steps around now are all different, so each
	 * assertion below is about the step, not a coincidence. */
	for (int i = -2; i <= 2; i++) {
		char d[7];

		code_at(s + (uint64_t)(int64_t)i, c);
		for (int j = i + 1; j <= 2; j++) {
			code_at(s + (uint64_t)(int64_t)j, d);
			assert_string_not_equal(c, d);
		}
	}
	for (int i = -1; i <= 1; i++) {
		code_at(s + (uint64_t)(int64_t)i, c);
		m = 0;
		assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, 0,
						&m), 0);
		assert_int_equal(m, s + (uint64_t)(int64_t)i);
	}
	m = 12345;
	code_at(s - 2, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, 0, &m),
			 HL_EINVAL);
	code_at(s + 2, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, 0, &m),
			 HL_EINVAL);
	assert_int_equal(m, 12345); /* untouched on failure */
	/* At the last second of the step the window is the same. */
	code_at(s - 1, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c,
					(int64_t)(s * 30 + 29), 0, &m), 0);
	assert_int_equal(m, s - 1);
	/* A code one digit off, in any position, is refused: all six digits
	 * are compared. (None of these equals another step's code.) */
	for (int i = -1; i <= 1; i++) {
		for (int pos = 0; pos < 6; pos++) {
			char w[7], d[7];
			int clash = 0;

			code_at(s + (uint64_t)(int64_t)i, w);
			w[pos] = (char)('0' + (w[pos] - '0' + 1) % 10);
			for (int j = -1; j <= 1; j++) {
				code_at(s + (uint64_t)(int64_t)j, d);
				clash |= strcmp(w, d) == 0;
			}
			assert_false(clash);
			assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, w,
							NOW, 0, &m),
					 HL_EINVAL);
		}
	}
	/* Another secret's code is refused. */
	code_at(s, c);
	assert_int_equal(hl_totp_verify((const unsigned char *)"x", 1, c, NOW,
					0, &m), HL_EINVAL);
}

static void test_verify_replay(void **state)
{
	uint64_t s = hl_totp_step(NOW), m = 0;
	char c[7];

	(void)state;
	/* A code accepted once (last_step = its step) is refused after. */
	code_at(s, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, 0, &m), 0);
	assert_int_equal(m, s);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, m, &m),
			 HL_EINVAL);
	/* So is an older code still inside the window ... */
	code_at(s - 1, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, s, &m),
			 HL_EINVAL);
	/* ... but the next one is accepted. */
	code_at(s + 1, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, s, &m), 0);
	assert_int_equal(m, s + 1);
	/* After s+1 was used (clock ahead), even the current step is done. */
	code_at(s, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, s + 1,
					&m), HL_EINVAL);
	/* last_step = s-1 still lets s through. */
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, s - 1,
					&m), 0);
	assert_int_equal(m, s);
}

static void test_verify_format(void **state)
{
	static const char *const bad[] = {
		"", "1", "12345", "1234567", "12345678", "12345a", "a23456",
		" 123456", "123456 ", "12 456", "-12345", "+12345", "123\n56",
		"12345\xd9", "\xef\xbc\x91\xef\xbc\x92", "0x1234", "1e5000",
	};
	uint64_t s = hl_totp_step(NOW), m;
	char c[7], longer[8];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++)
		assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, bad[i],
						NOW, 0, &m), HL_EINVAL);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, NULL, NOW, 0, &m),
			 HL_EINVAL);
	/* The right code with anything after it is refused. */
	code_at(s, c);
	snprintf(longer, sizeof(longer), "%s0", c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, longer, NOW, 0,
					&m), HL_EINVAL);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, NOW, 0, NULL),
			 HL_EINVAL);
}

static void test_verify_near_epoch(void **state)
{
	uint64_t m = 99;
	char c[7];

	(void)state;
	/* now < 30 is step 0: there is no step -1, and step 0 itself is
	 * "used" when last_step is 0 (the column's default). */
	code_at(1, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, 10, 0, &m), 0);
	assert_int_equal(m, 1);
	code_at(0, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, 10, 0, &m),
			 HL_EINVAL);
	/* A code whose value is that of the wrapped step UINT64_MAX must not
	 * be accepted either. */
	code_at(UINT64_MAX, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, 10, 0, &m),
			 HL_EINVAL);
	code_at(1, c);
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, -100, 0, &m),
			 0);
	/* Step 1 at now = 30: step 0 is below the window only by last_step. */
	assert_int_equal(hl_totp_verify(rfc_secret, RFC_LEN, c, 30, 0, &m), 0);
	assert_int_equal(m, 1);
}

static void test_base32_rfc4648(void **state)
{
	static const char *const in[] = {"", "f", "fo", "foo", "foob",
					 "fooba", "foobar"};
	static const char *const out[] = {"", "MY", "MZXQ", "MZXW6",
					  "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI"};
	char enc[64];
	unsigned char dec[32];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(in); i++) {
		size_t n = strlen(in[i]);

		assert_int_equal(hl_base32_encode((const unsigned char *)in[i],
						  n, enc, sizeof(enc)),
				 strlen(out[i]));
		assert_string_equal(enc, out[i]);
		assert_int_equal(hl_base32_decode(out[i], dec, sizeof(dec)),
				 (int)n);
		assert_memory_equal(dec, in[i], n);
	}
	/* The RFC's padded forms decode too. */
	assert_int_equal(hl_base32_decode("MY======", dec, sizeof(dec)), 1);
	assert_int_equal(hl_base32_decode("MZXW6YQ=", dec, sizeof(dec)), 4);
	assert_memory_equal(dec, "foob", 4);
	/* The RFC 4226 secret as apps show it. */
	assert_int_equal(hl_base32_encode(rfc_secret, RFC_LEN, enc,
					  sizeof(enc)), 32);
	assert_string_equal(enc, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

static void test_base32_lenient_input(void **state)
{
	unsigned char dec[32];

	(void)state;
	/* Lower case and the spaces apps print between groups. */
	assert_int_equal(hl_base32_decode("gezd gnbv gy3t qojq gezd gnbv "
					  "gy3t qojq", dec, sizeof(dec)), 20);
	assert_memory_equal(dec, rfc_secret, 20);
	assert_int_equal(hl_base32_decode("mZxW6yTbOi", dec, sizeof(dec)), 6);
	assert_memory_equal(dec, "foobar", 6);
	assert_int_equal(hl_base32_decode("   ", dec, sizeof(dec)), 0);
}

static void test_base32_bad_input(void **state)
{
	static const char *const bad[] = {
		"MZXW1", "MZXW0", "MZXW8", "MZ!W6", "MZXW6-", "MZ\tXW6",
		"MZXW6\n", "\xc3\x84", "M", "MZX", "MZXW6Y", "MZXW6YTBO",
	};
	unsigned char dec[32];

	(void)state;
	for (size_t i = 0; i < HL_ARRAY_LEN(bad); i++) {
		memset(dec, 0xee, sizeof(dec));
		assert_int_equal(hl_base32_decode(bad[i], dec, sizeof(dec)),
				 -1);
	}
	/* Whatever was decoded before the bad character is wiped. */
	assert_int_equal(hl_base32_decode("MZXW6YTBOI!", dec, sizeof(dec)),
			 -1);
	for (int i = 0; i < 6; i++)
		assert_int_equal(dec[i], 0);
	/* Output overflow. */
	assert_int_equal(hl_base32_decode("MZXW6YTBOI", dec, 5), -1);
	assert_int_equal(hl_base32_decode("MZXW6YTBOI", dec, 6), 6);
	assert_int_equal(hl_base32_decode("MY", dec, 0), -1);
}

static void test_base32_round_trips(void **state)
{
	unsigned char in[64], dec[64];
	char enc[128];

	(void)state;
	for (size_t len = 0; len <= sizeof(in); len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = (unsigned char)(i * 37 + len * 11 + 0x80);
		assert_int_equal(hl_base32_encode(in, len, enc, sizeof(enc)),
				 (len * 8 + 4) / 5);
		assert_int_equal(hl_base32_decode(enc, dec, sizeof(dec)),
				 (int)len);
		assert_memory_equal(dec, in, len);
	}
	/* All bytes 0x00 and 0xff. */
	memset(in, 0, 20);
	hl_base32_encode(in, 20, enc, sizeof(enc));
	assert_string_equal(enc, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	memset(in, 0xff, 20);
	hl_base32_encode(in, 20, enc, sizeof(enc));
	assert_string_equal(enc, "77777777777777777777777777777777");
}

static void test_base32_encode_small_buffer(void **state)
{
	char enc[8];

	(void)state;
	/* "foobar" needs 10 characters and the NUL. */
	memset(enc, 'x', sizeof(enc));
	assert_int_equal(hl_base32_encode((const unsigned char *)"foobar", 6,
					  enc, sizeof(enc)), 0);
	assert_string_equal(enc, "");
	/* Exactly enough room: 5 characters and the NUL. */
	assert_int_equal(hl_base32_encode((const unsigned char *)"foo", 3,
					  enc, 6), 5);
	assert_string_equal(enc, "MZXW6");
	assert_int_equal(hl_base32_encode((const unsigned char *)"foo", 3,
					  enc, 5), 0);
	assert_int_equal(hl_base32_encode((const unsigned char *)"foo", 3,
					  enc, 0), 0);
}

#define URI_EXPECT                                                        \
	"otpauth://totp/Helpline%20UK:jo%20smith%3Anight"                 \
	"?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Helpline%20UK"   \
	"&algorithm=SHA1&digits=6&period=30"

static void test_uri_exact(void **state)
{
	char uri[256];

	(void)state;
	assert_int_equal(hl_totp_uri("Helpline UK", "jo smith:night",
				     rfc_secret, RFC_LEN, uri, sizeof(uri)),
			 0);
	assert_string_equal(uri, URI_EXPECT);
	/* Unreserved characters pass through, everything else is %XX. */
	assert_int_equal(hl_totp_uri("A-z.0_~", "a/b?c&d=e#f%g+h\xc3\xa9",
				     (const unsigned char *)"f", 1, uri,
				     sizeof(uri)), 0);
	assert_string_equal(uri, "otpauth://totp/A-z.0_~:"
			    "a%2Fb%3Fc%26d%3De%23f%25g%2Bh%C3%A9"
			    "?secret=MY&issuer=A-z.0_~"
			    "&algorithm=SHA1&digits=6&period=30");
}

static void test_uri_buffer_bounds(void **state)
{
	size_t need = strlen(URI_EXPECT) + 1;
	char uri[256];

	(void)state;
	assert_int_equal(hl_totp_uri("Helpline UK", "jo smith:night",
				     rfc_secret, RFC_LEN, uri, need), 0);
	assert_string_equal(uri, URI_EXPECT);
	/* One byte short anywhere: ERANGE, and no part of the secret is left
	 * in the buffer. */
	for (size_t cap = 1; cap < need; cap++) {
		memset(uri, 'x', sizeof(uri));
		assert_int_equal(hl_totp_uri("Helpline UK", "jo smith:night",
					     rfc_secret, RFC_LEN, uri, cap),
				 HL_ERANGE);
		for (size_t i = 0; i < cap; i++)
			assert_int_equal(uri[i], 0);
	}
	assert_int_equal(hl_totp_uri("i", "a", rfc_secret, RFC_LEN, uri, 0),
			 HL_EINVAL);
	assert_int_equal(hl_totp_uri(NULL, "a", rfc_secret, RFC_LEN, uri,
				     sizeof(uri)), HL_EINVAL);
	assert_int_equal(hl_totp_uri("i", NULL, rfc_secret, RFC_LEN, uri,
				     sizeof(uri)), HL_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hotp_rfc4226),
		cmocka_unit_test(test_totp_rfc6238_sha1),
		cmocka_unit_test(test_step_edges),
		cmocka_unit_test(test_hotp_bad_digits),
		cmocka_unit_test(test_verify_window),
		cmocka_unit_test(test_verify_replay),
		cmocka_unit_test(test_verify_format),
		cmocka_unit_test(test_verify_near_epoch),
		cmocka_unit_test(test_base32_rfc4648),
		cmocka_unit_test(test_base32_lenient_input),
		cmocka_unit_test(test_base32_bad_input),
		cmocka_unit_test(test_base32_round_trips),
		cmocka_unit_test(test_base32_encode_small_buffer),
		cmocka_unit_test(test_uri_exact),
		cmocka_unit_test(test_uri_buffer_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
