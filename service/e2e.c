/* e2e.c: the byte formats of end-to-end encryption (docs/crypto.md "Wire
 * formats (v1)"), mirrored byte for byte by client-web/js/e2e.js and
 * checked against the same known-answer vectors (tests/vectors/e2e.json). */
#include "e2e.h"
#include "common.h"

#include <sodium.h>
#include <string.h>

#define LABEL(s) (const unsigned char *)(s), sizeof(s) - 1


static void put_u32(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint32_t get_u32(const unsigned char *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static void put_u16(unsigned char *p, size_t v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

static size_t get_u16(const unsigned char *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

/* Feeds a big-endian integer to a hash state. */
static void hash_u64(crypto_generichash_state *st, uint64_t v)
{
	unsigned char b[8];

	hl_put_be64(b, v);
	crypto_generichash_update(st, b, sizeof(b));
}

/* ---- envelope header -------------------------------------------------- */

int hl_e2e_header_parse(const unsigned char *env, size_t len,
			struct hl_e2e_header *h)
{
	memset(h, 0, sizeof(*h));
	if (!env || len < HL_E2E_ENV_MIN ||
	    (len - HL_E2E_HEADER - HL_E2E_KEY - 16) % HL_E2E_PAD != 0)
		return HL_EINVAL;
	if (env[0] != 1 || (env[1] != HL_E2E_TO_STAFF &&
			    env[1] != HL_E2E_TO_CONTACT))
		return HL_EINVAL;
	h->version = env[0];
	h->dir = env[1];
	h->conv = hl_get_be64(env + 2);
	h->epoch = hl_get_be64(env + 10);
	h->n = get_u32(env + 18);
	h->seen_seq = hl_get_be64(env + 22);
	h->seen_head = env + 30;
	h->commitment = env + 62;
	h->nonce = env + 94;
	h->ct = env + HL_E2E_HEADER;
	h->ct_len = len - HL_E2E_HEADER;
	return 0;
}

/* ---- hash chain ------------------------------------------------------- */

int hl_e2e_chain_head(const unsigned char *prev, uint64_t conv, uint64_t seq,
		      int64_t at, const char *kind, const char *sender,
		      bool staff_only, const void *payload, size_t payload_len,
		      unsigned char out[HL_E2E_KEY])
{
	unsigned char ph[HL_E2E_KEY];

	crypto_generichash(ph, sizeof(ph), payload_len ? payload : NULL,
			   payload_len, NULL, 0);
	return hl_e2e_chain_head_h(prev, conv, seq, at, kind, sender,
				   staff_only, ph, out);
}

int hl_e2e_chain_head_h(const unsigned char *prev, uint64_t conv, uint64_t seq,
			int64_t at, const char *kind, const char *sender,
			bool staff_only,
			const unsigned char ph[HL_E2E_KEY],
			unsigned char out[HL_E2E_KEY])
{
	static const unsigned char zero[HL_E2E_KEY];
	unsigned char b;
	size_t kl = kind ? strlen(kind) : 0, sl = sender ? strlen(sender) : 0;
	crypto_generichash_state st;

	if (!kind || !sender || kl > 255 || sl > 255)
		return HL_EINVAL;
	crypto_generichash_init(&st, NULL, 0, HL_E2E_KEY);
	crypto_generichash_update(&st, LABEL("helpline-chain-v1"));
	crypto_generichash_update(&st, prev ? prev : zero, HL_E2E_KEY);
	hash_u64(&st, conv);
	hash_u64(&st, seq);
	hash_u64(&st, (uint64_t)at);
	b = (unsigned char)kl;
	crypto_generichash_update(&st, &b, 1);
	crypto_generichash_update(&st, (const unsigned char *)kind, kl);
	b = (unsigned char)sl;
	crypto_generichash_update(&st, &b, 1);
	crypto_generichash_update(&st, (const unsigned char *)sender, sl);
	b = staff_only ? 1 : 0;
	crypto_generichash_update(&st, &b, 1);
	crypto_generichash_update(&st, ph, HL_E2E_KEY);
	crypto_generichash_final(&st, out, HL_E2E_KEY);
	return 0;
}

/* ---- handshake -------------------------------------------------------- */

void hl_e2e_transcript(uint64_t conv, uint64_t hello_seq,
		       const unsigned char young_pk[HL_E2E_KEY],
		       const unsigned char staff_pk[HL_E2E_KEY],
		       const unsigned char *cert, size_t cert_len,
		       const unsigned char *issuer, size_t issuer_len,
		       unsigned char out[HL_E2E_KEY])
{
	crypto_generichash_state st;
	unsigned char l[2];

	crypto_generichash_init(&st, NULL, 0, HL_E2E_KEY);
	crypto_generichash_update(&st, LABEL("helpline-hs-v1"));
	hash_u64(&st, conv);
	hash_u64(&st, hello_seq);
	crypto_generichash_update(&st, young_pk, HL_E2E_KEY);
	crypto_generichash_update(&st, staff_pk, HL_E2E_KEY);
	put_u16(l, cert_len);
	crypto_generichash_update(&st, l, 2);
	crypto_generichash_update(&st, cert, cert_len);
	put_u16(l, issuer_len);
	crypto_generichash_update(&st, l, 2);
	crypto_generichash_update(&st, issuer, issuer_len);
	crypto_generichash_final(&st, out, HL_E2E_KEY);
}

int hl_e2e_accept_encode(const struct hl_e2e_accept *a, unsigned char *out,
			 size_t cap, size_t *len_out)
{
	size_t need;

	if (!a->cert || !a->issuer || a->cert_len == 0 ||
	    a->cert_len > HL_CERT_MAX || a->issuer_len == 0 ||
	    a->issuer_len > HL_CERT_MAX)
		return HL_EINVAL;
	need = 8 + HL_E2E_KEY + 2 + a->cert_len + 2 + a->issuer_len +
	       HL_E2E_SIG;
	if (cap < need)
		return HL_ERANGE;
	hl_put_be64(out, a->hello_seq);
	memcpy(out + 8, a->kx_pk, HL_E2E_KEY);
	out += 8 + HL_E2E_KEY;
	put_u16(out, a->cert_len);
	memcpy(out + 2, a->cert, a->cert_len);
	out += 2 + a->cert_len;
	put_u16(out, a->issuer_len);
	memcpy(out + 2, a->issuer, a->issuer_len);
	out += 2 + a->issuer_len;
	memcpy(out, a->sig, HL_E2E_SIG);
	*len_out = need;
	return 0;
}

int hl_e2e_accept_parse(const unsigned char *p, size_t len,
			struct hl_e2e_accept *a)
{
	size_t off = 8 + HL_E2E_KEY;

	memset(a, 0, sizeof(*a));
	if (!p || len < off + 2)
		return HL_EINVAL;
	a->hello_seq = hl_get_be64(p);
	a->kx_pk = p + 8;
	a->cert_len = get_u16(p + off);
	off += 2;
	if (a->cert_len == 0 || a->cert_len > HL_CERT_MAX ||
	    len - off < a->cert_len + 2)
		goto bad;
	a->cert = p + off;
	off += a->cert_len;
	a->issuer_len = get_u16(p + off);
	off += 2;
	if (a->issuer_len == 0 || a->issuer_len > HL_CERT_MAX ||
	    len - off != a->issuer_len + HL_E2E_SIG)
		goto bad;
	a->issuer = p + off;
	a->sig = p + off + a->issuer_len;
	return 0;
bad:
	memset(a, 0, sizeof(*a));
	return HL_EINVAL;
}

bool hl_e2e_kx_pk_ok(const unsigned char pk[HL_E2E_KEY])
{
	/* The u-coordinates (mod p = 2^255 - 19, little-endian) of the points
	 * of order dividing 8 on Curve25519 and of order dividing 4 on its
	 * twist: exactly the keys whose product with any clamped scalar (a
	 * multiple of the cofactor) is the identity. Worked out with an x-only
	 * ladder from random points times the group order, and checked in
	 * test_e2e.c against libsodium's crypto_scalarmult. Comparing costs
	 * nothing; the scalar multiplication that checked this before cost as
	 * much as a signature check, twice a handshake. */
	static const unsigned char low[][HL_E2E_KEY] = {
		{0}, /* 0 */
		{1}, /* 1 */
		{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
		 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
		 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
		{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
		 0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
		 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
		{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, /* p-1 */
	};
	unsigned char u[HL_E2E_KEY];
	bool high = true;

	/* X25519 ignores the top bit and reduces: p .. 2^255 - 1 are
	 * 0 .. 18. */
	memcpy(u, pk, HL_E2E_KEY);
	u[31] &= 0x7f;
	for (int i = 1; i < 31; i++)
		high = high && u[i] == 0xff;
	if (high && u[31] == 0x7f && u[0] >= 0xed) {
		unsigned char v = (unsigned char)(u[0] - 0xed);

		memset(u, 0, sizeof(u));
		u[0] = v;
	}
	for (size_t i = 0; i < sizeof(low) / sizeof(low[0]); i++)
		if (memcmp(u, low[i], HL_E2E_KEY) == 0)
			return false;
	return true;
}

void hl_e2e_cert_hash(const unsigned char *cert, size_t len,
		      unsigned char out[HL_E2E_KEY])
{
	crypto_generichash(out, HL_E2E_KEY, cert, len, NULL, 0);
}

/* The set of chains for this chain; *key is its entry. */
static size_t chain_set(const unsigned char root_pk[HL_E2E_KEY],
			 const unsigned char issuer_hash[HL_E2E_KEY],
			 const unsigned char cert_hash[HL_E2E_KEY],
			 unsigned char key[HL_E2E_KEY])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, HL_E2E_KEY);
	crypto_generichash_update(&st, LABEL("helpline-chain-cache-v1"));
	crypto_generichash_update(&st, root_pk, HL_E2E_KEY);
	crypto_generichash_update(&st, issuer_hash, HL_E2E_KEY);
	crypto_generichash_update(&st, cert_hash, HL_E2E_KEY);
	crypto_generichash_final(&st, key, HL_E2E_KEY);
	return ((size_t)key[0] | (size_t)key[1] << 8) % HL_E2E_CHAIN_SETS;
}

/* Whether chains holds key in set. */
static bool chain_known(const struct hl_e2e_chains *chains, size_t set,
			const unsigned char key[HL_E2E_KEY])
{
	for (unsigned w = 0; w < HL_E2E_CHAIN_WAYS; w++)
		if ((chains->set[set].used & (1u << w)) &&
		    sodium_memcmp(chains->set[set].key[w], key, HL_E2E_KEY) == 0)
			return true;
	return false;
}

static void chain_remember(struct hl_e2e_chains *chains, size_t set,
			   const unsigned char key[HL_E2E_KEY])
{
	unsigned w = chains->set[set].next;

	memcpy(chains->set[set].key[w], key, HL_E2E_KEY);
	chains->set[set].used |= (uint8_t)(1u << w);
	chains->set[set].next = (uint8_t)((w + 1) % HL_E2E_CHAIN_WAYS);
	chains->misses++;
}

int hl_e2e_chain_verify(const unsigned char *cert, size_t cert_len,
			const unsigned char *issuer, size_t issuer_len,
			const unsigned char root_pk[HL_E2E_KEY], int64_t now,
			unsigned roles_mask, const char *subject,
			hl_e2e_revoked_fn revoked, void *arg,
			struct hl_e2e_chains *chains, struct hl_cert *device)
{
	struct hl_cert admin, dev;
	unsigned char ih[HL_E2E_KEY], ch[HL_E2E_KEY], key[HL_E2E_KEY];
	bool hashed = false, known = false;
	size_t set = 0;

	if (device)
		memset(device, 0, sizeof(*device));
	/* Both parse and the role is one asked for before any crypto (so a
	 * malformed chain costs nothing), and one signature check of the
	 * device's certificate, under its own role. */
	if (!cert || !issuer ||
	    hl_cert_parse(issuer, issuer_len, &admin) != 0 ||
	    admin.role != HL_CERT_ADMIN_DEVICE ||
	    hl_cert_parse(cert, cert_len, &dev) != 0 ||
	    (dev.role != HL_CERT_COUNSELLOR_DEVICE &&
	     dev.role != HL_CERT_SUPERVISOR_DEVICE) ||
	    !(roles_mask & (1u << dev.role)) ||
	    !hl_cert_valid_at(&admin, now) || !hl_cert_valid_at(&dev, now))
		return HL_EINVAL;
	if (chains) {
		hl_e2e_cert_hash(issuer, issuer_len, ih);
		hl_e2e_cert_hash(cert, cert_len, ch);
		hashed = true;
		set = chain_set(root_pk, ih, ch, key);
		known = chain_known(chains, set, key);
	}
	if (known) {
		chains->hits++;
	} else {
		if (hl_cert_verify(issuer, issuer_len, root_pk, now,
				   HL_CERT_ADMIN_DEVICE, &admin) != 0 ||
		    hl_cert_verify(cert, cert_len, admin.sign_pk, now, dev.role,
				   &dev) != 0)
			return HL_EINVAL;
		if (chains)
			chain_remember(chains, set, key);
	}
	if (subject && strcmp(subject, dev.subject) != 0)
		return HL_EINVAL;
	if (revoked) {
		if (!hashed) {
			hl_e2e_cert_hash(issuer, issuer_len, ih);
			hl_e2e_cert_hash(cert, cert_len, ch);
		}
		if (revoked(ih, arg) || revoked(ch, arg))
			return HL_EINVAL;
	}
	if (device)
		*device = dev;
	return 0;
}

int hl_e2e_accept_verify(const unsigned char *payload, size_t len,
			 uint64_t conv, const unsigned char young_pk[HL_E2E_KEY],
			 const unsigned char root_pk[HL_E2E_KEY], int64_t now,
			 unsigned roles_mask, const char *subject,
			 hl_e2e_revoked_fn revoked, void *arg,
			 struct hl_e2e_chains *chains,
			 struct hl_e2e_accept *a, struct hl_cert *device)
{
	struct hl_cert dev;
	unsigned char t[HL_E2E_KEY];

	if (hl_e2e_accept_parse(payload, len, a) != 0)
		return HL_EINVAL;
	if (!hl_e2e_kx_pk_ok(a->kx_pk) ||
	    hl_e2e_chain_verify(a->cert, a->cert_len, a->issuer, a->issuer_len,
				root_pk, now, roles_mask, subject, revoked, arg,
				chains, &dev) != 0)
		return HL_EINVAL;
	hl_e2e_transcript(conv, a->hello_seq, young_pk, a->kx_pk, a->cert,
			  a->cert_len, a->issuer, a->issuer_len, t);
	if (crypto_sign_verify_detached(a->sig, t, sizeof(t), dev.sign_pk) != 0)
		return HL_EINVAL;
	if (device)
		*device = dev;
	return 0;
}

/* ---- checkpoints, revocations, device requests ------------------------ */

void hl_e2e_checkpoint_msg(uint64_t conv, uint64_t seq,
			   const unsigned char head[HL_E2E_KEY], int64_t at,
			   unsigned char out[HL_E2E_CHECKPOINT_MSG])
{
	memcpy(out, "helpline-checkpoint-v1", 22);
	hl_put_be64(out + 22, conv);
	hl_put_be64(out + 30, seq);
	memcpy(out + 38, head, HL_E2E_KEY);
	hl_put_be64(out + 38 + HL_E2E_KEY, (uint64_t)at);
}

int hl_e2e_revocation_verify(const unsigned char *r, size_t len,
			     const unsigned char signer_pk[HL_E2E_KEY],
			     unsigned char hash[HL_E2E_KEY], int64_t *at)
{
	const size_t body = HL_E2E_REVOCATION - HL_E2E_SIG;
	uint64_t u;

	if (!r || len != HL_E2E_REVOCATION ||
	    memcmp(r, "helpline-revoke-v1", 18) != 0 ||
	    crypto_sign_verify_detached(r + body, r, body, signer_pk) != 0)
		return HL_EINVAL;
	memcpy(hash, r + 18, HL_E2E_KEY);
	u = hl_get_be64(r + 18 + HL_E2E_KEY);
	*at = u <= (uint64_t)INT64_MAX ? (int64_t)u : -1;
	return *at < 0 ? HL_EINVAL : 0;
}

int hl_e2e_device_request_verify(uint64_t staff_id,
				 const unsigned char sign_pk[HL_E2E_KEY],
				 const unsigned char box_pk[HL_E2E_KEY],
				 const unsigned char sig[HL_E2E_SIG])
{
	unsigned char m[HL_E2E_DEVICE_REQUEST];

	memcpy(m, "helpline-device-v1", 18);
	hl_put_be64(m + 18, staff_id);
	memcpy(m + 26, sign_pk, HL_E2E_KEY);
	memcpy(m + 26 + HL_E2E_KEY, box_pk, HL_E2E_KEY);
	if (!hl_e2e_kx_pk_ok(box_pk))
		return HL_EINVAL;
	return crypto_sign_verify_detached(sig, m, sizeof(m), sign_pk) == 0
		       ? 0
		       : HL_EINVAL;
}

/* ---- client-side computations ----------------------------------------- */

void hl_e2e_root(const unsigned char kx_key[HL_E2E_KEY], uint8_t dir,
		 const unsigned char t[HL_E2E_KEY],
		 unsigned char out[HL_E2E_KEY])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, kx_key, HL_E2E_KEY, HL_E2E_KEY);
	crypto_generichash_update(&st, LABEL("helpline-root-v1"));
	crypto_generichash_update(&st, &dir, 1);
	crypto_generichash_update(&st, t, HL_E2E_KEY);
	crypto_generichash_final(&st, out, HL_E2E_KEY);
}

void hl_e2e_chain_step(const unsigned char ck[HL_E2E_KEY],
		       unsigned char mk[HL_E2E_KEY],
		       unsigned char next[HL_E2E_KEY])
{
	unsigned char tmp[HL_E2E_KEY];

	crypto_kdf_derive_from_key(mk, HL_E2E_KEY, 1, "hlmsgkey", ck);
	crypto_kdf_derive_from_key(tmp, HL_E2E_KEY, 2, "hlchain1", ck);
	memcpy(next, tmp, HL_E2E_KEY);
	sodium_memzero(tmp, sizeof(tmp));
}

void hl_e2e_commit(uint64_t conv, uint8_t dir, uint64_t epoch, uint32_t n,
		   const unsigned char *body, size_t body_len,
		   const unsigned char kf[HL_E2E_KEY],
		   unsigned char out[HL_E2E_KEY])
{
	crypto_auth_hmacsha512256_state st;
	unsigned char b[8];

	crypto_auth_hmacsha512256_init(&st, kf, HL_E2E_KEY);
	crypto_auth_hmacsha512256_update(&st, LABEL("helpline-frank-v1"));
	hl_put_be64(b, conv);
	crypto_auth_hmacsha512256_update(&st, b, 8);
	crypto_auth_hmacsha512256_update(&st, &dir, 1);
	hl_put_be64(b, epoch);
	crypto_auth_hmacsha512256_update(&st, b, 8);
	put_u32(b, n);
	crypto_auth_hmacsha512256_update(&st, b, 4);
	crypto_auth_hmacsha512256_update(&st, body, body_len);
	crypto_auth_hmacsha512256_final(&st, out);
}

/* "helpline-msg-v1" ‖ the first 94 header bytes. */
static void make_ad(const unsigned char *env, unsigned char ad[15 + 94])
{
	memcpy(ad, "helpline-msg-v1", 15);
	memcpy(ad + 15, env, HL_E2E_AD_HEADER);
}

int hl_e2e_seal(const struct hl_e2e_seal_in *in, const unsigned char *body,
		size_t body_len, unsigned char *out, size_t cap,
		size_t *len_out)
{
	unsigned char ad[15 + HL_E2E_AD_HEADER];
	unsigned char *pt;
	size_t padded, pt_len, need;
	unsigned long long ct_len;

	if (!in->mk || !in->kf || !in->nonce || !body ||
	    (in->dir != HL_E2E_TO_STAFF && in->dir != HL_E2E_TO_CONTACT) ||
	    body_len > 65536)
		return HL_EINVAL;
	padded = (body_len / HL_E2E_PAD + 1) * HL_E2E_PAD;
	pt_len = HL_E2E_KEY + padded;
	need = HL_E2E_HEADER + pt_len + 16;
	if (cap < need)
		return HL_ERANGE;
	pt = sodium_malloc(pt_len);
	if (!pt)
		return HL_ENOMEM;
	memcpy(pt, in->kf, HL_E2E_KEY);
	memcpy(pt + HL_E2E_KEY, body, body_len);
	if (sodium_pad(&padded, pt + HL_E2E_KEY, body_len, HL_E2E_PAD,
		       padded) != 0) {
		sodium_free(pt);
		return HL_EINVAL;
	}
	out[0] = 1;
	out[1] = in->dir;
	hl_put_be64(out + 2, in->conv);
	hl_put_be64(out + 10, in->epoch);
	put_u32(out + 18, in->n);
	hl_put_be64(out + 22, in->seen_seq);
	if (in->seen_head)
		memcpy(out + 30, in->seen_head, HL_E2E_KEY);
	else
		memset(out + 30, 0, HL_E2E_KEY);
	hl_e2e_commit(in->conv, in->dir, in->epoch, in->n, body, body_len,
		      in->kf, out + 62);
	memcpy(out + 94, in->nonce, HL_E2E_NONCE);
	make_ad(out, ad);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		out + HL_E2E_HEADER, &ct_len, pt, HL_E2E_KEY + padded, ad,
		sizeof(ad), NULL, in->nonce, in->mk);
	sodium_free(pt);
	*len_out = HL_E2E_HEADER + (size_t)ct_len;
	return 0;
}

int hl_e2e_open(const unsigned char *env, size_t len,
		const unsigned char mk[HL_E2E_KEY], unsigned char *body,
		size_t cap, size_t *body_len, unsigned char kf[HL_E2E_KEY])
{
	struct hl_e2e_header h;
	unsigned char ad[15 + HL_E2E_AD_HEADER], c[HL_E2E_KEY];
	unsigned char *pt;
	unsigned long long pt_len;
	size_t unpadded;
	int rc = HL_EINVAL;

	if (hl_e2e_header_parse(env, len, &h) != 0)
		return HL_EINVAL;
	pt = sodium_malloc(h.ct_len);
	if (!pt)
		return HL_ENOMEM;
	make_ad(env, ad);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    pt, &pt_len, NULL, h.ct, h.ct_len, ad, sizeof(ad), h.nonce,
		    mk) != 0 ||
	    pt_len < HL_E2E_KEY + HL_E2E_PAD ||
	    sodium_unpad(&unpadded, pt + HL_E2E_KEY, pt_len - HL_E2E_KEY,
			 HL_E2E_PAD) != 0 ||
	    unpadded > cap)
		goto out;
	hl_e2e_commit(h.conv, h.dir, h.epoch, h.n, pt + HL_E2E_KEY, unpadded,
		      pt, c);
	if (sodium_memcmp(c, h.commitment, HL_E2E_KEY) != 0)
		goto out;
	memcpy(body, pt + HL_E2E_KEY, unpadded);
	memcpy(kf, pt, HL_E2E_KEY);
	*body_len = unpadded;
	rc = 0;
out:
	sodium_free(pt);
	return rc;
}

int hl_e2e_return_keys(const char *code, unsigned char sign_pk[32],
		       unsigned char sign_sk[64], unsigned char box_pk[32],
		       unsigned char box_sk[32], unsigned char seed[32])
{
	unsigned char salt[crypto_pwhash_SALTBYTES], sub[32];

	crypto_generichash(salt, sizeof(salt),
			   (const unsigned char *)"helpline-return-code-v1",
			   23, NULL, 0);
	if (crypto_pwhash(seed, 32, code, strlen(code), salt,
			  crypto_pwhash_OPSLIMIT_INTERACTIVE,
			  crypto_pwhash_MEMLIMIT_INTERACTIVE,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return HL_ENOMEM;
	crypto_kdf_derive_from_key(sub, 32, 1, "hlreturn", seed);
	crypto_sign_seed_keypair(sign_pk, sign_sk, sub);
	crypto_kdf_derive_from_key(sub, 32, 2, "hlreturn", seed);
	crypto_box_seed_keypair(box_pk, box_sk, sub);
	sodium_memzero(sub, sizeof(sub));
	return 0;
}
