/* test_vectors.c: the C side of the known-answer vectors shared with the
 * JavaScript side (tests/vectors/crypto.json; tests/integration/
 * vendor.test.mjs runs the same file through the vendored libsodium.js), so
 * the two implementations can never drift apart unnoticed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *V;

static size_t unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = 0;

	assert_int_equal(sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL), 0);
	return n;
}

static void same(const unsigned char *b, size_t n, const char *want,
		 const char *what)
{
	char hex[2 * 256 + 1];

	assert_true(n <= 256);
	sodium_bin2hex(hex, sizeof(hex), b, n);
	if (strcmp(hex, want) != 0)
		fail_msg("%s: got %s, want %s", what, hex, want);
}

#define S(o, k) json_string_value(json_object_get(o, k))
#define I(o, k) json_integer_value(json_object_get(o, k))

static void test_all(void **state)
{
	unsigned char a[256], b[256], c[256], d[256], e[256];
	size_t i, na, nb, nc, nd;
	json_t *v;

	(void)state;
	json_array_foreach(json_object_get(V, "generichash"), i, v) {
		na = unhex(S(v, "input"), a, sizeof(a));
		nb = S(v, "key") ? unhex(S(v, "key"), b, sizeof(b)) : 0;
		assert_int_equal(crypto_generichash(c, (size_t)I(v, "outlen"), a, na,
						    nb ? b : NULL, nb), 0);
		same(c, (size_t)I(v, "outlen"), S(v, "out"), S(v, "name"));
	}
	json_array_foreach(json_object_get(V, "kdf"), i, v) {
		unhex(S(v, "key"), a, sizeof(a));
		assert_int_equal(crypto_kdf_derive_from_key(c, (size_t)I(v, "outlen"),
			(uint64_t)I(v, "subkey_id"), S(v, "context"), a), 0);
		same(c, (size_t)I(v, "outlen"), S(v, "out"), S(v, "name"));
	}
	json_array_foreach(json_object_get(V, "aead_xchacha20poly1305"), i, v) {
		unsigned long long cl, ml;

		unhex(S(v, "key"), a, sizeof(a));
		unhex(S(v, "nonce"), b, sizeof(b));
		nc = unhex(S(v, "ad"), c, sizeof(c));
		nd = unhex(S(v, "message"), d, sizeof(d));
		assert_int_equal(crypto_aead_xchacha20poly1305_ietf_encrypt(
			e, &cl, d, nd, c, nc, NULL, b, a), 0);
		same(e, (size_t)cl, S(v, "ciphertext"), S(v, "name"));
		e[0] ^= 1; /* a tampered ciphertext is refused */
		assert_int_not_equal(crypto_aead_xchacha20poly1305_ietf_decrypt(
			d, &ml, NULL, e, cl, c, nc, b, a), 0);
	}
	json_array_foreach(json_object_get(V, "sign"), i, v) {
		unsigned char pk[32], sk[64], sig[64];

		unhex(S(v, "seed"), a, sizeof(a));
		nb = unhex(S(v, "message"), b, sizeof(b));
		assert_int_equal(crypto_sign_seed_keypair(pk, sk, a), 0);
		same(pk, 32, S(v, "pk"), S(v, "name"));
		assert_int_equal(crypto_sign_detached(sig, NULL, b, nb, sk), 0);
		same(sig, 64, S(v, "signature"), S(v, "name"));
	}
	json_array_foreach(json_object_get(V, "auth"), i, v) {
		unhex(S(v, "key"), a, sizeof(a));
		nb = unhex(S(v, "message"), b, sizeof(b));
		assert_int_equal(crypto_auth(c, b, nb, a), 0);
		same(c, 32, S(v, "mac"), S(v, "name"));
	}
	json_array_foreach(json_object_get(V, "kx"), i, v) {
		unsigned char cpk[32], csk[32], spk[32], ssk[32], rx[32], tx[32];

		unhex(S(v, "client_seed"), a, sizeof(a));
		unhex(S(v, "server_seed"), b, sizeof(b));
		assert_int_equal(crypto_kx_seed_keypair(cpk, csk, a), 0);
		assert_int_equal(crypto_kx_seed_keypair(spk, ssk, b), 0);
		assert_int_equal(crypto_kx_client_session_keys(rx, tx, cpk, csk, spk), 0);
		same(rx, 32, S(v, "client_rx"), S(v, "name"));
		same(tx, 32, S(v, "client_tx"), S(v, "name"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_all)};
	const char *schema = getenv("HL_SCHEMA_DIR");
	char path[4096];
	json_error_t err;

	if (sodium_init() < 0 || !schema)
		return 1;
	snprintf(path, sizeof(path), "%s/../tests/vectors/crypto.json", schema);
	V = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!V) {
		fprintf(stderr, "cannot read %s: %s\n", path, err.text);
		return 1;
	}
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	json_decref(V);
	return rc;
}
