/* test_vectors.c: the C side of the known-answer vectors shared with the
 * JavaScript side, so the two implementations can never drift apart
 * unnoticed: tests/vectors/crypto.json (libsodium itself; tests/integration/
 * vendor.test.mjs runs the same file through the vendored libsodium.js) and
 * tests/vectors/e2e.json (Helpline's own formats, written by
 * client-web/js/e2e.js through tests/vectors/make-e2e.mjs, reproduced here
 * by service/e2e.c and cert.c). */
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

#include "cert.h"
#include "e2e.h"
#include "trust.h"

static json_t *V, *X;

static size_t unhex(const char *h, unsigned char *out, size_t cap)
{
	size_t n = 0;

	assert_int_equal(sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL), 0);
	return n;
}

static void same(const unsigned char *b, size_t n, const char *want,
		 const char *what)
{
	char hex[2 * 2048 + 1];

	assert_true(n <= 2048);
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

#define O(o, k) json_object_get(o, k)

/* Decodes a hex member into a fresh buffer of its length (freed by the
 * caller). */
static unsigned char *hexdup(json_t *o, const char *k, size_t *len)
{
	const char *h = S(o, k);
	unsigned char *b;

	assert_non_null(h);
	b = malloc(strlen(h) / 2 + 1);
	assert_non_null(b);
	*len = unhex(h, b, strlen(h) / 2 + 1);
	return b;
}

static void seed_sign(json_t *seeds, const char *k, unsigned char pk[32],
		      unsigned char sk[64])
{
	unsigned char s[32];

	unhex(S(seeds, k), s, 32);
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, s), 0);
}

static void seed_box(json_t *seeds, const char *k, unsigned char pk[32],
		     unsigned char sk[32])
{
	unsigned char s[32];

	unhex(S(seeds, k), s, 32);
	assert_int_equal(crypto_box_seed_keypair(pk, sk, s), 0);
}

/* Builds a certificate body with cert.c from the JS side's fields. */
static void cert_from(int role, const unsigned char sign_pk[32],
		      const unsigned char box_pk[32], int64_t nb, int64_t na,
		      const unsigned char issuer_sk[64], const char *want_body,
		      const char *want_cert, const char *want_subject)
{
	struct hl_cert c;
	unsigned char body[HL_CERT_BODY_MAX], cert[HL_CERT_MAX];
	size_t bl, cl;

	memset(&c, 0, sizeof(c));
	c.role = (uint8_t)role;
	hl_trust_device_subject(sign_pk, c.subject);
	assert_string_equal(c.subject, want_subject);
	c.subject_len = (uint8_t)strlen(c.subject);
	memcpy(c.sign_pk, sign_pk, 32);
	memcpy(c.box_pk, box_pk, 32);
	c.not_before = nb;
	c.not_after = na;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &bl), 0);
	same(body, bl, want_body, "certificate body");
	assert_int_equal(hl_cert_sign(body, bl, issuer_sk, cert, sizeof(cert), &cl), 0);
	same(cert, cl, want_cert, "signed certificate");
}

static void test_e2e(void **state)
{
	json_t *seeds = O(X, "seeds"), *certs = O(X, "certs"), *hs = O(X, "handshake");
	unsigned char root_pk[32], root_sk[64], apk[32], ask[64], abox[32], aboxsk[32];
	unsigned char dpk[32], dsk[64], dbox[32], dboxsk[32];
	unsigned char ypk[32], ysk[32], spk[32], ssk[32], rx[32], tx[32];
	unsigned char t[32], r1[32], r2[32], ck[32], mk[32], next[32], out[2048];
	unsigned char *cert, *issuer, *payload, *env, *body, *pl;
	size_t cert_len, issuer_len, payload_len, env_len, body_len, len, n, i;
	struct hl_e2e_accept a;
	struct hl_cert dev;
	int64_t now = (int64_t)I(X, "now");
	json_t *v;

	(void)state;
	seed_sign(seeds, "root_sign", root_pk, root_sk);
	seed_sign(seeds, "admin_sign", apk, ask);
	seed_box(seeds, "admin_box", abox, aboxsk);
	seed_sign(seeds, "device_sign", dpk, dsk);
	seed_box(seeds, "device_box", dbox, dboxsk);
	same(root_pk, 32, S(certs, "root_pk"), "root_pk");
	cert_from(HL_CERT_ADMIN_DEVICE, apk, abox, now - 100, now + 100, root_sk,
		  S(certs, "issuer_body"), S(certs, "issuer"),
		  S(certs, "admin_subject"));
	cert_from(HL_CERT_COUNSELLOR_DEVICE, dpk, dbox, now - 100, now + 100, ask,
		  S(certs, "cert_body"), S(certs, "cert"),
		  S(certs, "device_subject"));
	cert = hexdup(certs, "cert", &cert_len);
	issuer = hexdup(certs, "issuer", &issuer_len);
	hl_e2e_cert_hash(cert, cert_len, t);
	same(t, 32, S(certs, "cert_hash"), "cert hash");

	/* The handshake: transcript, the accept payload, and what the server
	 * checks of it; then the young person's roots. */
	unhex(S(seeds, "young_kx"), t, 32);
	assert_int_equal(crypto_kx_seed_keypair(ypk, ysk, t), 0);
	unhex(S(seeds, "staff_kx"), t, 32);
	assert_int_equal(crypto_kx_seed_keypair(spk, ssk, t), 0);
	hl_e2e_transcript((uint64_t)I(hs, "conv"), (uint64_t)I(hs, "hello_seq"),
			  ypk, spk, cert, cert_len, issuer, issuer_len, t);
	same(t, 32, S(hs, "transcript"), "transcript");
	payload = hexdup(hs, "accept_payload", &payload_len);
	assert_int_equal(hl_e2e_accept_verify(payload, payload_len,
					      (uint64_t)I(hs, "conv"), ypk,
					      root_pk, now,
					      1u << HL_CERT_COUNSELLOR_DEVICE,
					      S(certs, "device_subject"), NULL,
					      NULL, NULL, &a, &dev), 0);
	same(a.sig, 64, S(hs, "signature"), "handshake signature");
	assert_int_equal(hl_e2e_accept_encode(&a, out, sizeof(out), &len), 0);
	same(out, len, S(hs, "accept_payload"), "accept payload");
	assert_int_equal(crypto_kx_client_session_keys(rx, tx, ypk, ysk, spk), 0);
	hl_e2e_root(tx, 1, t, r1);
	hl_e2e_root(rx, 2, t, r2);
	same(r1, 32, S(hs, "root1"), "root1");
	same(r2, 32, S(hs, "root2"), "root2");
	/* The device's side gets the same roots. */
	assert_int_equal(crypto_kx_server_session_keys(rx, tx, spk, ssk, ypk), 0);
	hl_e2e_root(rx, 1, t, out);
	assert_memory_equal(out, r1, 32);

	memcpy(ck, r1, 32);
	json_array_foreach(O(X, "chain_keys"), i, v) {
		same(ck, 32, S(v, "ck"), "chain key");
		hl_e2e_chain_step(ck, mk, next);
		same(mk, 32, S(v, "mk"), "message key");
		memcpy(ck, next, 32);
	}

	json_array_foreach(O(X, "envelopes"), i, v) {
		unsigned char kf[32], nonce[24], head[32], c[32], kf2[32];
		struct hl_e2e_seal_in in = {
			.dir = (uint8_t)I(v, "dir"), .conv = (uint64_t)I(v, "conv"),
			.epoch = (uint64_t)I(v, "epoch"), .n = (uint32_t)I(v, "n"),
			.seen_seq = (uint64_t)I(v, "seen_seq"), .mk = mk,
			.kf = kf, .nonce = nonce,
		};
		struct hl_e2e_header h;

		unhex(S(v, "mk"), mk, 32);
		unhex(S(v, "kf"), kf, 32);
		unhex(S(v, "nonce"), nonce, 24);
		if (in.seen_seq) {
			unhex(S(v, "seen_head"), head, 32);
			in.seen_head = head;
		}
		body = hexdup(v, "body", &body_len);
		hl_e2e_commit(in.conv, in.dir, in.epoch, in.n, body, body_len, kf, c);
		same(c, 32, S(v, "commitment"), "commitment");
		assert_int_equal(hl_e2e_seal(&in, body, body_len, out, sizeof(out),
					     &len), 0);
		same(out, len, S(v, "envelope"), "envelope");
		env = hexdup(v, "envelope", &env_len);
		assert_int_equal(hl_e2e_header_parse(env, env_len, &h), 0);
		assert_int_equal(h.n, in.n);
		assert_int_equal(hl_e2e_open(env, env_len, mk, out, sizeof(out),
					     &n, kf2), 0);
		assert_int_equal(n, body_len);
		assert_memory_equal(out, body, n);
		assert_memory_equal(kf2, kf, 32);
		free(body);
		free(env);
	}

	{
		json_t *ch = O(X, "chain_heads");
		unsigned char prev[32], head[32];
		bool first = true;

		json_array_foreach(O(ch, "events"), i, v) {
			pl = hexdup(v, "payload", &len);
			assert_int_equal(hl_e2e_chain_head(
				first ? NULL : prev, (uint64_t)I(ch, "conv"),
				(uint64_t)I(v, "seq"), (int64_t)I(v, "at"),
				S(v, "kind"), S(v, "sender"),
				strcmp(S(v, "visibility"), "staff") == 0, pl, len,
				head), 0);
			same(head, 32, S(v, "head"), "chain head");
			memcpy(prev, head, 32);
			first = false;
			free(pl);
		}
	}
	{
		json_t *cp = O(X, "checkpoint");
		unsigned char head[32], m[HL_E2E_CHECKPOINT_MSG], stpk[32], stsk[64];
		unsigned char sig[64];

		unhex(S(cp, "head"), head, 32);
		hl_e2e_checkpoint_msg((uint64_t)I(cp, "conv"), (uint64_t)I(cp, "seq"),
				      head, (int64_t)I(cp, "at"), m);
		same(m, sizeof(m), S(cp, "message"), "checkpoint message");
		seed_sign(seeds, "stamp_sign", stpk, stsk);
		same(stpk, 32, S(cp, "stamp_pk"), "stamp pk");
		crypto_sign_detached(sig, NULL, m, sizeof(m), stsk);
		same(sig, 64, S(cp, "signature"), "checkpoint signature");
	}
	{
		json_t *r = O(X, "revocation");
		unsigned char h[32];
		int64_t at = 0;

		pl = hexdup(r, "statement", &len);
		assert_int_equal(hl_e2e_revocation_verify(pl, len, apk, h, &at), 0);
		same(h, 32, S(certs, "cert_hash"), "revoked hash");
		assert_int_equal(at, I(r, "at"));
		free(pl);
	}
	{
		json_t *d = O(X, "device_request");
		unsigned char sig[64];

		unhex(S(d, "signature"), sig, 64);
		assert_int_equal(hl_e2e_device_request_verify(
			(uint64_t)I(d, "staff_id"), dpk, dbox, sig), 0);
		same(dpk, 32, S(d, "sign_pk"), "device sign_pk");
	}
	{
		json_t *rc = O(X, "return_code");
		unsigned char spk2[32], ssk2[64], bpk[32], bsk[32], seed[32];

		assert_int_equal(hl_e2e_return_keys(S(rc, "code"), spk2, ssk2, bpk,
						    bsk, seed), 0);
		same(seed, 32, S(rc, "seed"), "return seed");
		same(spk2, 32, S(rc, "sign_pk"), "return sign_pk");
		same(bpk, 32, S(rc, "box_pk"), "return box_pk");
	}
	free(cert);
	free(issuer);
	free(payload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_all),
					   cmocka_unit_test(test_e2e)};
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
	snprintf(path, sizeof(path), "%s/../tests/vectors/e2e.json", schema);
	X = json_load_file(path, JSON_REJECT_DUPLICATES, &err);
	if (!X) {
		fprintf(stderr, "cannot read %s: %s\n", path, err.text);
		return 1;
	}
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	json_decref(V);
	json_decref(X);
	return rc;
}
