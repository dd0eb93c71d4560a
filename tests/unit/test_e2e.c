/* test_e2e.c: the C side of end-to-end encryption (e2e.h): envelope
 * lengths and fields, seal/open round trip, every tampered byte refused, a
 * commitment that does not match the body refused, the hash chain's
 * sensitivity to every field, low-order keys, the accept (a real chain:
 * root -> admin device -> counsellor device) with each way it can be wrong,
 * revocations, device requests and return-code keys; and (catalogue item
 * 13) that input of a wrong length is refused before any libsodium call,
 * counted by wrappers of libsodium's functions defined here. The
 * byte-for-byte agreement with the JavaScript side is test_vectors.c's job. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <sodium.h>
#include <string.h>

#include "cert.h"
#include "common.h"
#include "e2e.h"

/* ---- libsodium calls, counted ------------------------------------------
 * These definitions take the place of libsodium's for helpline_core's code
 * linked into this program (the executable's symbol wins), count each
 * call and pass it on to the real function (dlsym RTLD_NEXT). */

static int sodium_calls;
static int verify_calls; /* crypto_sign_verify_detached alone */

#define REAL(name) \
	static __typeof__(name) *real; \
	if (!real) \
		*(void **)&real = dlsym(RTLD_NEXT, #name); \
	sodium_calls++

int crypto_sign_verify_detached(const unsigned char *sig, const unsigned char *m,
				unsigned long long mlen, const unsigned char *pk)
{
	REAL(crypto_sign_verify_detached);
	verify_calls++;
	return real(sig, m, mlen, pk);
}

int crypto_scalarmult(unsigned char *q, const unsigned char *n,
		      const unsigned char *p)
{
	REAL(crypto_scalarmult);
	return real(q, n, p);
}

int crypto_generichash(unsigned char *out, size_t outlen,
		       const unsigned char *in, unsigned long long inlen,
		       const unsigned char *key, size_t keylen)
{
	REAL(crypto_generichash);
	return real(out, outlen, in, inlen, key, keylen);
}

int crypto_generichash_init(crypto_generichash_state *state,
			    const unsigned char *key, const size_t keylen,
			    const size_t outlen)
{
	REAL(crypto_generichash_init);
	return real(state, key, keylen, outlen);
}

/* ---- helpers ---------------------------------------------------------- */

static void seeded_sign(unsigned char pk[32], unsigned char sk[64], int seed)
{
	unsigned char s[32];

	memset(s, seed, sizeof(s));
	assert_int_equal(crypto_sign_seed_keypair(pk, sk, s), 0);
}

static void seeded_box(unsigned char pk[32], unsigned char sk[32], int seed)
{
	unsigned char s[32];

	memset(s, seed, sizeof(s));
	assert_int_equal(crypto_box_seed_keypair(pk, sk, s), 0);
}

/* Makes a signed certificate. */
static size_t make_cert(int role, const char *subject,
			const unsigned char sign_pk[32],
			const unsigned char box_pk[32], int64_t nb, int64_t na,
			const unsigned char issuer_sk[64], unsigned char *out)
{
	struct hl_cert c;
	unsigned char body[HL_CERT_BODY_MAX];
	size_t blen, len;

	memset(&c, 0, sizeof(c));
	c.role = (uint8_t)role;
	c.subject_len = (uint8_t)strlen(subject);
	memcpy(c.subject, subject, c.subject_len);
	memcpy(c.sign_pk, sign_pk, 32);
	memcpy(c.box_pk, box_pk, 32);
	c.not_before = nb;
	c.not_after = na;
	assert_int_equal(hl_cert_encode(&c, body, sizeof(body), &blen), 0);
	assert_int_equal(hl_cert_sign(body, blen, issuer_sk, out, HL_CERT_MAX,
				      &len), 0);
	return len;
}

/* A whole trust chain and a handshake to check. */
struct world {
	unsigned char root_pk[32], root_sk[64];
	unsigned char admin_pk[32], admin_sk[64], admin_box[32], admin_boxsk[32];
	unsigned char dev_pk[32], dev_sk[64], dev_box[32], dev_boxsk[32];
	unsigned char issuer[HL_CERT_MAX], cert[HL_CERT_MAX];
	size_t issuer_len, cert_len;
	unsigned char young_pk[32], young_sk[32], staff_pk[32], staff_sk[32];
	unsigned char payload[1024];
	size_t payload_len;
};

#define NOW 1800000000
#define CONV 77
#define HELLO 5

static void sign_accept(struct world *w, uint64_t conv, int64_t hello)
{
	struct hl_e2e_accept a = {
		.hello_seq = (uint64_t)hello, .kx_pk = w->staff_pk,
		.cert = w->cert, .cert_len = w->cert_len,
		.issuer = w->issuer, .issuer_len = w->issuer_len,
	};
	unsigned char t[32], sig[64];

	hl_e2e_transcript(conv, (uint64_t)hello, w->young_pk, w->staff_pk,
			  w->cert, w->cert_len, w->issuer, w->issuer_len, t);
	crypto_sign_detached(sig, NULL, t, 32, w->dev_sk);
	a.sig = sig;
	assert_int_equal(hl_e2e_accept_encode(&a, w->payload, sizeof(w->payload),
					      &w->payload_len), 0);
}

static void make_world(struct world *w, int dev_role)
{
	memset(w, 0, sizeof(*w));
	seeded_sign(w->root_pk, w->root_sk, 1);
	seeded_sign(w->admin_pk, w->admin_sk, 2);
	seeded_box(w->admin_box, w->admin_boxsk, 3);
	seeded_sign(w->dev_pk, w->dev_sk, 4);
	seeded_box(w->dev_box, w->dev_boxsk, 5);
	w->issuer_len = make_cert(HL_CERT_ADMIN_DEVICE, "dev:admin", w->admin_pk,
				  w->admin_box, NOW - 100, NOW + 100,
				  w->root_sk, w->issuer);
	w->cert_len = make_cert(dev_role, "dev:counsellor", w->dev_pk,
				w->dev_box, NOW - 100, NOW + 100, w->admin_sk,
				w->cert);
	seeded_box(w->young_pk, w->young_sk, 6);
	seeded_box(w->staff_pk, w->staff_sk, 7);
	sign_accept(w, CONV, HELLO);
}

static const unsigned mask = (1u << HL_CERT_COUNSELLOR_DEVICE) |
			     (1u << HL_CERT_SUPERVISOR_DEVICE);

static int verify(struct world *w, uint64_t conv, hl_e2e_revoked_fn rev,
		  void *arg)
{
	struct hl_e2e_accept a;
	struct hl_cert dev;

	return hl_e2e_accept_verify(w->payload, w->payload_len, conv,
				    w->young_pk, w->root_pk, NOW, mask, NULL,
				    rev, arg, NULL, &a, &dev);
}

/* ---- envelopes --------------------------------------------------------- */

static size_t seal_fixture(unsigned char *out, size_t cap,
			   const unsigned char *body, size_t body_len)
{
	unsigned char mk[32], kf[32], nonce[24], head[32];
	struct hl_e2e_seal_in in = {
		.dir = HL_E2E_TO_STAFF, .conv = CONV, .epoch = 9, .n = 3,
		.seen_seq = 8, .seen_head = head, .mk = mk, .kf = kf,
		.nonce = nonce,
	};
	size_t len = 0;

	memset(mk, 0x11, 32);
	memset(kf, 0x22, 32);
	memset(nonce, 0x33, 24);
	memset(head, 0x44, 32);
	assert_int_equal(hl_e2e_seal(&in, body, body_len, out, cap, &len), 0);
	return len;
}

static void test_seal_open(void **state)
{
	static const unsigned char body[] = "\x01hello, are you there?";
	unsigned char env[2048], out[1024], kf[32], mk[32];
	struct hl_e2e_header h;
	size_t len, n = 0;

	(void)state;
	len = seal_fixture(env, sizeof(env), body, sizeof(body) - 1);
	assert_int_equal(len, HL_E2E_ENV_MIN);
	assert_int_equal(hl_e2e_header_parse(env, len, &h), 0);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.dir, HL_E2E_TO_STAFF);
	assert_int_equal(h.conv, CONV);
	assert_int_equal(h.epoch, 9);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.seen_seq, 8);
	assert_int_equal(h.seen_head[0], 0x44);
	assert_int_equal(h.nonce[0], 0x33);
	assert_int_equal(h.ct_len, len - HL_E2E_HEADER);
	memset(mk, 0x11, 32);
	assert_int_equal(hl_e2e_open(env, len, mk, out, sizeof(out), &n, kf), 0);
	assert_int_equal(n, sizeof(body) - 1);
	assert_memory_equal(out, body, n);
	assert_int_equal(kf[0], 0x22);

	/* Every byte matters: header (bound as associated data or checked
	 * via the commitment), nonce and ciphertext. */
	for (size_t i = 0; i < len; i++) {
		env[i] ^= 0x01;
		if (hl_e2e_header_parse(env, len, &h) == 0)
			assert_int_not_equal(hl_e2e_open(env, len, mk, out,
							 sizeof(out), &n, kf),
					     0);
		env[i] ^= 0x01;
	}
	/* The wrong message key. */
	mk[0] ^= 1;
	assert_int_not_equal(hl_e2e_open(env, len, mk, out, sizeof(out), &n, kf), 0);
}

static void test_long_body_pads_to_blocks(void **state)
{
	unsigned char body[600], env[4096];
	size_t len;

	(void)state;
	memset(body, 'x', sizeof(body));
	/* 600 bytes -> 768 padded (sodium_pad always adds at least one
	 * byte). */
	len = seal_fixture(env, sizeof(env), body, sizeof(body));
	assert_int_equal(len, HL_E2E_HEADER + 32 + 768 + 16);
	len = seal_fixture(env, sizeof(env), body, 255);
	assert_int_equal(len, HL_E2E_HEADER + 32 + 256 + 16);
	len = seal_fixture(env, sizeof(env), body, 256);
	assert_int_equal(len, HL_E2E_HEADER + 32 + 512 + 16);
}

/* A sender who commits to one body and encrypts another is caught by the
 * recipient's recomputation of the commitment. */
static void test_commitment_must_match(void **state)
{
	unsigned char mk[32], kf[32], env[2048], out[512], kf2[32];
	unsigned char ad[15 + HL_E2E_AD_HEADER], pt[32 + 256];
	unsigned long long ct_len;
	size_t len, n, padded;
	static const unsigned char honest[] = "\x01" "I will pay", evil[] = "\x01" "I never said";

	(void)state;
	len = seal_fixture(env, sizeof(env), honest, sizeof(honest) - 1);
	memset(mk, 0x11, 32);
	memset(kf, 0x22, 32);
	/* Re-encrypt another body under the same header (same commitment). */
	memcpy(pt, kf, 32);
	memcpy(pt + 32, evil, sizeof(evil) - 1);
	assert_int_equal(sodium_pad(&padded, pt + 32, sizeof(evil) - 1, 256, 256), 0);
	memcpy(ad, "helpline-msg-v1", 15);
	memcpy(ad + 15, env, HL_E2E_AD_HEADER);
	crypto_aead_xchacha20poly1305_ietf_encrypt(env + HL_E2E_HEADER, &ct_len,
						   pt, 32 + padded, ad,
						   sizeof(ad), NULL, env + 94,
						   mk);
	assert_int_equal(HL_E2E_HEADER + ct_len, len);
	assert_int_not_equal(hl_e2e_open(env, len, mk, out, sizeof(out), &n, kf2), 0);
}

static void test_header_lengths(void **state)
{
	unsigned char env[HL_E2E_ENV_MIN + 512];
	struct hl_e2e_header h;

	(void)state;
	memset(env, 0, sizeof(env));
	env[0] = 1;
	env[1] = 1;
	assert_int_equal(hl_e2e_header_parse(env, HL_E2E_ENV_MIN, &h), 0);
	assert_int_equal(hl_e2e_header_parse(env, HL_E2E_ENV_MIN + 256, &h), 0);
	assert_int_equal(hl_e2e_header_parse(env, HL_E2E_ENV_MIN + 512, &h), 0);
	for (size_t len = 0; len < sizeof(env); len++)
		if (len != HL_E2E_ENV_MIN && len != HL_E2E_ENV_MIN + 256 &&
		    len != HL_E2E_ENV_MIN + 512)
			assert_int_equal(hl_e2e_header_parse(env, len, &h),
					 HL_EINVAL);
	env[0] = 2;
	assert_int_equal(hl_e2e_header_parse(env, HL_E2E_ENV_MIN, &h), HL_EINVAL);
	env[0] = 1;
	for (int d = 0; d < 256; d++) {
		env[1] = (unsigned char)d;
		assert_int_equal(hl_e2e_header_parse(env, HL_E2E_ENV_MIN, &h),
				 d == 1 || d == 2 ? 0 : HL_EINVAL);
	}
	assert_int_equal(hl_e2e_header_parse(NULL, HL_E2E_ENV_MIN, &h), HL_EINVAL);
}

/* ---- the hash chain ------------------------------------------------------ */

static void test_chain_head(void **state)
{
	unsigned char a[32], b[32], prev[32];
	static const unsigned char p[] = {1, 2, 3};

	(void)state;
	memset(prev, 9, 32);
	assert_int_equal(hl_e2e_chain_head(prev, 1, 2, 3, "msg", "contact",
					   false, p, 3, a), 0);
	assert_int_equal(hl_e2e_chain_head(prev, 1, 2, 3, "msg", "contact",
					   false, p, 3, b), 0);
	assert_memory_equal(a, b, 32);
#define DIFFERS(...)                                                        \
	do {                                                                \
		assert_int_equal(hl_e2e_chain_head(__VA_ARGS__, b), 0);     \
		assert_memory_not_equal(a, b, 32);                          \
	} while (0)
	DIFFERS(NULL, 1, 2, 3, "msg", "contact", false, p, 3);
	DIFFERS(prev, 2, 2, 3, "msg", "contact", false, p, 3);
	DIFFERS(prev, 1, 3, 3, "msg", "contact", false, p, 3);
	DIFFERS(prev, 1, 2, 4, "msg", "contact", false, p, 3);
	DIFFERS(prev, 1, 2, 3, "note", "contact", false, p, 3);
	DIFFERS(prev, 1, 2, 3, "msg", "system", false, p, 3);
	DIFFERS(prev, 1, 2, 3, "msg", "contact", true, p, 3);
	DIFFERS(prev, 1, 2, 3, "msg", "contact", false, p, 2);
	DIFFERS(prev, 1, 2, 3, "msg", "contact", false, NULL, 0);
	/* Length prefixes: moving a byte between kind and sender changes it. */
	assert_int_equal(hl_e2e_chain_head(prev, 1, 2, 3, "ab", "c", false, p,
					   3, a), 0);
	DIFFERS(prev, 1, 2, 3, "a", "bc", false, p, 3);
#undef DIFFERS
}

/* ---- keys and the handshake ------------------------------------------------ */

/* The points of small order on Curve25519 (and their non-canonical
 * twins): a Diffie-Hellman with any of them is all zero. */
static const char *const low_order[] = {
	"0000000000000000000000000000000000000000000000000000000000000000",
	"0100000000000000000000000000000000000000000000000000000000000000",
	"e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
	"5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
	"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
};
#define N_LOW_ORDER (sizeof(low_order) / sizeof(low_order[0]))

static void test_low_order_keys(void **state)
{
	unsigned char pk[32], sk[32];

	(void)state;
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		assert_int_equal(sodium_hex2bin(pk, 32, low_order[i], 64, NULL,
						NULL, NULL), 0);
		assert_false(hl_e2e_kx_pk_ok(pk));
	}
	for (int i = 0; i < 20; i++) {
		crypto_kx_keypair(pk, sk);
		assert_true(hl_e2e_kx_pk_ok(pk));
	}
}

/* The check compares with a list: it must refuse exactly the keys whose
 * X25519 product with a clamped scalar is the identity (libsodium's
 * crypto_scalarmult then fails). Every encoding near the list's (each
 * byte changed, the top bit set, p .. 2^255 - 1) and random keys. */
static int scalarmult_ok(const unsigned char pk[32])
{
	static const unsigned char scalar[32] = {0x48, 0x65, 0x6c, 0x70, 9};
	unsigned char q[32];

	return crypto_scalarmult(q, scalar, pk) == 0;
}

static void test_low_order_keys_as_libsodium(void **state)
{
	unsigned char pk[32], v[32];
	int refused = 0;

	(void)state;
	for (size_t i = 0; i < N_LOW_ORDER; i++) {
		assert_int_equal(sodium_hex2bin(v, 32, low_order[i], 64, NULL,
						NULL, NULL), 0);
		for (int top = 0; top < 2; top++) {
			memcpy(pk, v, 32);
			pk[31] |= (unsigned char)(top << 7);
			assert_int_equal(hl_e2e_kx_pk_ok(pk), scalarmult_ok(pk));
			refused += !hl_e2e_kx_pk_ok(pk);
			for (int b = 0; b < 32; b++)
				for (int d = -1; d <= 1; d += 2) {
					memcpy(pk, v, 32);
					pk[31] |= (unsigned char)(top << 7);
					pk[b] = (unsigned char)(pk[b] + d);
					assert_int_equal(hl_e2e_kx_pk_ok(pk),
							 scalarmult_ok(pk));
				}
		}
	}
	/* 14 encodings of 5 points: each listed value with either top bit. */
	assert_int_equal(refused, 14);
	for (int x = 0; x < 19; x++) { /* p + x, x = 0..18 */
		memset(pk, 0xff, 32);
		pk[0] = (unsigned char)(0xed + x);
		pk[31] = 0x7f;
		assert_int_equal(hl_e2e_kx_pk_ok(pk), scalarmult_ok(pk));
	}
	for (int i = 0; i < 2000; i++) {
		randombytes_buf(pk, 32);
		assert_int_equal(hl_e2e_kx_pk_ok(pk), scalarmult_ok(pk));
	}
}

static void test_accept_verifies(void **state)
{
	struct world w;
	struct hl_e2e_accept a;
	struct hl_cert dev;

	(void)state;
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	assert_int_equal(hl_e2e_accept_verify(w.payload, w.payload_len, CONV,
					      w.young_pk, w.root_pk, NOW, mask,
					      "dev:counsellor", NULL, NULL, NULL,
					      &a, &dev), 0);
	assert_int_equal(a.hello_seq, HELLO);
	assert_memory_equal(a.kx_pk, w.staff_pk, 32);
	assert_memory_equal(dev.sign_pk, w.dev_pk, 32);
	/* Supervisors' devices too. */
	make_world(&w, HL_CERT_SUPERVISOR_DEVICE);
	assert_int_equal(verify(&w, CONV, NULL, NULL), 0);
}

static void test_accept_refusals(void **state)
{
	struct world w;
	struct hl_e2e_accept a;
	unsigned char other[32];

	(void)state;
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	/* Another conversation (a replayed accept). */
	assert_int_equal(verify(&w, CONV + 1, NULL, NULL), HL_EINVAL);
	/* A server that swaps the young person's key is caught: the
	 * signature covers the key the young person actually sent. */
	memcpy(other, w.young_pk, 32);
	w.young_pk[0] ^= 1;
	assert_int_equal(verify(&w, CONV, NULL, NULL), HL_EINVAL);
	memcpy(w.young_pk, other, 32);
	/* Every byte of the payload matters. */
	for (size_t i = 0; i < w.payload_len; i++) {
		w.payload[i] ^= 0x80;
		assert_int_equal(verify(&w, CONV, NULL, NULL), HL_EINVAL);
		w.payload[i] ^= 0x80;
	}
	assert_int_equal(verify(&w, CONV, NULL, NULL), 0);
	/* Truncated or extended. */
	assert_int_equal(hl_e2e_accept_parse(w.payload, w.payload_len - 1, &a),
			 HL_EINVAL);
	assert_int_equal(hl_e2e_accept_parse(w.payload, w.payload_len + 1, &a),
			 HL_EINVAL);
	assert_int_equal(hl_e2e_accept_parse(w.payload, 10, &a), HL_EINVAL);
	/* Subject mismatch. */
	assert_int_equal(hl_e2e_accept_verify(w.payload, w.payload_len, CONV,
					      w.young_pk, w.root_pk, NOW, mask,
					      "dev:someone-else", NULL, NULL, NULL,
					      &a, NULL), HL_EINVAL);
	/* Expired (the device certificate ends at NOW + 100). */
	assert_int_equal(hl_e2e_accept_verify(w.payload, w.payload_len, CONV,
					      w.young_pk, w.root_pk, NOW + 101,
					      mask, NULL, NULL, NULL, NULL, &a,
					      NULL), HL_EINVAL);
	/* Another root. */
	memcpy(other, w.admin_pk, 32);
	assert_int_equal(hl_e2e_accept_verify(w.payload, w.payload_len, CONV,
					      w.young_pk, other, NOW, mask,
					      NULL, NULL, NULL, NULL, &a, NULL),
			 HL_EINVAL);
	/* Wrong role: an admin device cannot answer a young person, and a
	 * mask without supervisors refuses a supervisor's device. */
	make_world(&w, HL_CERT_ADMIN_DEVICE);
	assert_int_equal(verify(&w, CONV, NULL, NULL), HL_EINVAL);
	make_world(&w, HL_CERT_SUPERVISOR_DEVICE);
	assert_int_equal(hl_e2e_accept_verify(w.payload, w.payload_len, CONV,
					      w.young_pk, w.root_pk, NOW,
					      1u << HL_CERT_COUNSELLOR_DEVICE,
					      NULL, NULL, NULL, NULL, &a, NULL),
			 HL_EINVAL);
	/* A device certificate signed by the root directly (skipping the
	 * admin device) does not chain. */
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	w.cert_len = make_cert(HL_CERT_COUNSELLOR_DEVICE, "dev:counsellor",
			       w.dev_pk, w.dev_box, NOW - 100, NOW + 100,
			       w.root_sk, w.cert);
	sign_accept(&w, CONV, HELLO);
	assert_int_equal(verify(&w, CONV, NULL, NULL), HL_EINVAL);
	/* A low-order staff key. */
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	memset(w.staff_pk, 0, 32);
	sign_accept(&w, CONV, HELLO);
	assert_int_equal(verify(&w, CONV, NULL, NULL), HL_EINVAL);
}

/* Revocation by certificate hash: of the device, or of its issuer. */
static unsigned char revoked_hash[32];
static bool revoked_fn(const unsigned char h[32], void *arg)
{
	(void)arg;
	return memcmp(h, revoked_hash, 32) == 0;
}

/* An accept checked with a cache of chains, counting signature checks. */
static int cached(struct world *w, struct hl_e2e_chains *chains,
		  const unsigned char *root, int64_t now, unsigned roles,
		  const char *subject, int *verifies)
{
	struct hl_e2e_accept a;
	int rc;

	verify_calls = 0;
	rc = hl_e2e_accept_verify(w->payload, w->payload_len, CONV, w->young_pk,
				  root, now, roles, subject, revoked_fn, NULL,
				  chains, &a, NULL);
	*verifies = verify_calls;
	return rc;
}

/* A chain verified once is not verified again; all that can change is. */
static void test_chain_cache(void **state)
{
	struct hl_e2e_chains *chains = calloc(1, sizeof(*chains));
	struct world w, sup;
	unsigned char other[32];
	int n;

	(void)state;
	assert_non_null(chains);
	memset(revoked_hash, 0, 32);
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	/* The first time: both certificates and T; then T alone. */
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n), 0);
	assert_int_equal(n, 1);
	assert_true(chains->hits == 1 && chains->misses == 1);
	/* Known, yet refused: out of its validity, a role not asked for,
	 * another subject, revoked (the device, or its issuer). */
	assert_int_equal(cached(&w, chains, w.root_pk, NOW + 101, mask, NULL, &n),
			 HL_EINVAL);
	assert_int_equal(n, 0);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW,
				1u << HL_CERT_SUPERVISOR_DEVICE, NULL, &n),
			 HL_EINVAL);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, "dev:other", &n),
			 HL_EINVAL);
	hl_e2e_cert_hash(w.cert, w.cert_len, revoked_hash);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n),
			 HL_EINVAL);
	hl_e2e_cert_hash(w.issuer, w.issuer_len, revoked_hash);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n),
			 HL_EINVAL);
	memset(revoked_hash, 0, 32);
	/* Under another root the same bytes are not known: checked, refused. */
	memcpy(other, w.admin_pk, 32);
	assert_int_equal(cached(&w, chains, other, NOW, mask, NULL, &n), HL_EINVAL);
	assert_int_equal(n, 1);
	/* A certificate with a forged signature is another entry: checked,
	 * refused and not remembered. */
	w.cert[w.cert_len - 1] ^= 1;
	sign_accept(&w, CONV, HELLO);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n),
			 HL_EINVAL);
	assert_int_equal(n, 2);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n),
			 HL_EINVAL);
	assert_int_equal(n, 2);
	w.cert[w.cert_len - 1] ^= 1;
	sign_accept(&w, CONV, HELLO);
	assert_int_equal(cached(&w, chains, w.root_pk, NOW, mask, NULL, &n), 0);
	assert_int_equal(n, 1);
	/* A supervisor's device: its certificate is checked once, under its
	 * own role (not once per role the mask allows). */
	make_world(&sup, HL_CERT_SUPERVISOR_DEVICE);
	assert_int_equal(cached(&sup, NULL, sup.root_pk, NOW, mask, NULL, &n), 0);
	assert_int_equal(n, 3);
	free(chains);
}

static void test_revocation(void **state)
{
	struct world w;
	unsigned char r[HL_E2E_REVOCATION], h[32];
	int64_t at = 0;

	(void)state;
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	memset(revoked_hash, 0, 32);
	assert_int_equal(verify(&w, CONV, revoked_fn, NULL), 0);
	hl_e2e_cert_hash(w.cert, w.cert_len, revoked_hash);
	assert_int_equal(verify(&w, CONV, revoked_fn, NULL), HL_EINVAL);
	hl_e2e_cert_hash(w.issuer, w.issuer_len, revoked_hash);
	assert_int_equal(verify(&w, CONV, revoked_fn, NULL), HL_EINVAL);

	/* A revocation statement signed by the admin device. */
	memcpy(r, "helpline-revoke-v1", 18);
	hl_e2e_cert_hash(w.cert, w.cert_len, r + 18);
	memset(r + 50, 0, 8);
	r[57] = 42;
	crypto_sign_detached(r + 58, NULL, r, 58, w.admin_sk);
	assert_int_equal(hl_e2e_revocation_verify(r, sizeof(r), w.admin_pk, h,
						  &at), 0);
	assert_memory_equal(h, r + 18, 32);
	assert_int_equal(at, 42);
	assert_int_equal(hl_e2e_revocation_verify(r, sizeof(r), w.root_pk, h,
						  &at), HL_EINVAL);
	assert_int_equal(hl_e2e_revocation_verify(r, sizeof(r) - 1, w.admin_pk,
						  h, &at), HL_EINVAL);
	r[20] ^= 1;
	assert_int_equal(hl_e2e_revocation_verify(r, sizeof(r), w.admin_pk, h,
						  &at), HL_EINVAL);
}

static void test_device_request(void **state)
{
	unsigned char pk[32], sk[64], box[32], boxsk[32], m[HL_E2E_DEVICE_REQUEST];
	unsigned char sig[64];

	(void)state;
	seeded_sign(pk, sk, 8);
	seeded_box(box, boxsk, 9);
	memcpy(m, "helpline-device-v1", 18);
	memset(m + 18, 0, 8);
	m[25] = 12; /* staff id 12 */
	memcpy(m + 26, pk, 32);
	memcpy(m + 58, box, 32);
	crypto_sign_detached(sig, NULL, m, sizeof(m), sk);
	assert_int_equal(hl_e2e_device_request_verify(12, pk, box, sig), 0);
	/* Another member of staff cannot claim it. */
	assert_int_equal(hl_e2e_device_request_verify(13, pk, box, sig), HL_EINVAL);
	box[0] ^= 1;
	assert_int_equal(hl_e2e_device_request_verify(12, pk, box, sig), HL_EINVAL);
	memset(box, 0, 32);
	assert_int_equal(hl_e2e_device_request_verify(12, pk, box, sig), HL_EINVAL);
}

static void test_checkpoint_message(void **state)
{
	unsigned char head[32], m[HL_E2E_CHECKPOINT_MSG];

	(void)state;
	memset(head, 0xab, 32);
	hl_e2e_checkpoint_msg(0x0102030405060708ull, 9, head, 10, m);
	assert_memory_equal(m, "helpline-checkpoint-v1", 22);
	assert_int_equal(m[22], 1);
	assert_int_equal(m[29], 8);
	assert_int_equal(m[37], 9);
	assert_int_equal(m[38], 0xab);
	assert_int_equal(m[HL_E2E_CHECKPOINT_MSG - 1], 10);
}

static void test_return_keys(void **state)
{
	unsigned char spk[32], ssk[64], bpk[32], bsk[32], seed[32];
	unsigned char spk2[32], ssk2[64], bpk2[32], bsk2[32], seed2[32];

	(void)state;
	assert_int_equal(hl_e2e_return_keys("abacus abdomen abdominal abide "
					    "abiding ability", spk, ssk, bpk,
					    bsk, seed), 0);
	assert_int_equal(hl_e2e_return_keys("abacus abdomen abdominal abide "
					    "abiding ability", spk2, ssk2, bpk2,
					    bsk2, seed2), 0);
	assert_memory_equal(spk, spk2, 32);
	assert_memory_equal(bpk, bpk2, 32);
	assert_int_equal(hl_e2e_return_keys("abacus abdomen abdominal abide "
					    "abiding abilities", spk2, ssk2, bpk2,
					    bsk2, seed2), 0);
	assert_memory_not_equal(spk, spk2, 32);
	assert_memory_not_equal(seed, seed2, 32);
	assert_true(hl_e2e_kx_pk_ok(bpk));
}

/* Catalogue item 13: an accept, a certificate chain or a revocation of
 * any wrong length is refused with no libsodium call at all; the right
 * length reaches libsodium (so the counting works). */
static void test_lengths_before_sodium(void **state)
{
	struct world w;
	struct hl_e2e_accept a;
	struct hl_cert dev;
	unsigned char r[HL_E2E_REVOCATION + 64], h[32];
	int64_t at;

	(void)state;
	make_world(&w, HL_CERT_COUNSELLOR_DEVICE);
	for (size_t len = 0; len < sizeof(w.payload); len++) {
		if (len == w.payload_len)
			continue;
		sodium_calls = 0;
		assert_int_equal(hl_e2e_accept_verify(w.payload, len, CONV,
						      w.young_pk, w.root_pk, NOW,
						      mask, NULL, NULL, NULL, NULL,
						      &a, &dev), HL_EINVAL);
		assert_int_equal(sodium_calls, 0);
	}
	sodium_calls = 0;
	assert_int_equal(verify(&w, CONV, NULL, NULL), 0);
	assert_true(sodium_calls >= 3); /* two certificates and T */

	for (size_t len = 0; len < sizeof(w.cert); len++) {
		if (len == w.cert_len)
			continue;
		sodium_calls = 0;
		assert_int_equal(hl_e2e_chain_verify(w.cert, len, w.issuer,
						     w.issuer_len, w.root_pk,
						     NOW, mask, NULL, NULL, NULL,
						     NULL, &dev), HL_EINVAL);
		/* The issuer may be checked first; the device's own
		 * certificate of the wrong length never is. */
		assert_true(sodium_calls <= 1);
		sodium_calls = 0;
		assert_int_equal(hl_e2e_chain_verify(w.cert, w.cert_len, w.issuer,
						     len == w.issuer_len ? 0 : len,
						     w.root_pk, NOW, mask, NULL,
						     NULL, NULL, NULL, &dev),
				 HL_EINVAL);
		assert_int_equal(sodium_calls, 0);
	}

	memset(r, 0, sizeof(r));
	memcpy(r, "helpline-revoke-v1", 18);
	for (size_t len = 0; len < sizeof(r); len++) {
		if (len == HL_E2E_REVOCATION)
			continue;
		sodium_calls = 0;
		assert_int_equal(hl_e2e_revocation_verify(r, len, w.admin_pk, h,
							  &at), HL_EINVAL);
		assert_int_equal(sodium_calls, 0);
	}
	sodium_calls = 0;
	assert_int_equal(hl_e2e_revocation_verify(r, HL_E2E_REVOCATION,
						  w.admin_pk, h, &at), HL_EINVAL);
	assert_int_equal(sodium_calls, 1); /* the signature check, failed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_long_body_pads_to_blocks),
		cmocka_unit_test(test_commitment_must_match),
		cmocka_unit_test(test_header_lengths),
		cmocka_unit_test(test_chain_head),
		cmocka_unit_test(test_low_order_keys),
		cmocka_unit_test(test_low_order_keys_as_libsodium),
		cmocka_unit_test(test_accept_verifies),
		cmocka_unit_test(test_accept_refusals),
		cmocka_unit_test(test_chain_cache),
		cmocka_unit_test(test_revocation),
		cmocka_unit_test(test_lengths_before_sodium),
		cmocka_unit_test(test_device_request),
		cmocka_unit_test(test_checkpoint_message),
		cmocka_unit_test(test_return_keys),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
