/* e2e.h: owns the byte formats of end-to-end encryption that the C side
 * must compute or check (docs/crypto.md "Wire formats (v1)"): the message
 * envelope's header, the per-conversation hash chain, the handshake's
 * transcript and accept payload, certificate chains, checkpoints,
 * revocations, device requests, and (for evidence and for the shared
 * known-answer vectors) chain keys, sealing and opening, key-wrap
 * plaintexts and return-code keys. The server never holds a message key;
 * seal/open are here so the C verifier and the vectors can prove the two
 * implementations identical. Any thread; the caller has called
 * sodium_init(). Integers on the wire are big-endian. */
#ifndef HL_E2E_H
#define HL_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cert.h"

#define HL_E2E_KEY 32        /* every public key, chain key and hash */
#define HL_E2E_SIG 64        /* Ed25519 signature */
#define HL_E2E_NONCE 24      /* XChaCha20 nonce */
#define HL_E2E_HEADER 118    /* envelope bytes before the ciphertext */
#define HL_E2E_AD_HEADER 94  /* header bytes bound as associated data */
#define HL_E2E_PAD 256       /* body padding block */
/* Ciphertext = AEAD(kf ‖ padded body): 32 + 256k + 16 bytes. */
#define HL_E2E_CT_MIN (HL_E2E_KEY + HL_E2E_PAD + 16)
#define HL_E2E_ENV_MIN (HL_E2E_HEADER + HL_E2E_CT_MIN)

enum hl_e2e_dir {
	HL_E2E_TO_STAFF = 1,    /* written by the young person */
	HL_E2E_TO_CONTACT = 2,  /* written by a member of staff */
};

/* An envelope's header, as parsed (pointers into the envelope). */
struct hl_e2e_header {
	uint8_t version;
	uint8_t dir;
	uint64_t conv;
	uint64_t epoch;
	uint32_t n;
	uint64_t seen_seq;
	const unsigned char *seen_head;  /* 32 bytes */
	const unsigned char *commitment; /* 32 bytes */
	const unsigned char *nonce;      /* 24 bytes */
	const unsigned char *ct;         /* the AEAD ciphertext */
	size_t ct_len;
};

/*
 * Parses an envelope (len bytes): the length must be HL_E2E_HEADER + 48 +
 * 256k with k >= 1, the version 1 and the direction 1 or 2. Returns 0 and
 * fills *h, or HL_EINVAL (h zeroed).
 */
int hl_e2e_header_parse(const unsigned char *env, size_t len,
			struct hl_e2e_header *h);

/*
 * The hash chain: out = H("helpline-chain-v1" ‖ prev ‖ u64 conv ‖ u64 seq ‖
 * i64 at ‖ u8 len(kind) ‖ kind ‖ u8 len(sender) ‖ sender ‖ u8 staff_only ‖
 * H(payload)). prev NULL means 32 zero bytes (the first event). kind and
 * sender are at most 255 bytes. Returns 0 or HL_EINVAL.
 */
int hl_e2e_chain_head(const unsigned char *prev, uint64_t conv, uint64_t seq,
		      int64_t at, const char *kind, const char *sender,
		      bool staff_only, const void *payload, size_t payload_len,
		      unsigned char out[HL_E2E_KEY]);

/* The same from the payload's hash H(payload) (32 bytes) instead of the
 * payload: what a verifier does for an event whose payload an evidence
 * bundle withholds (docs/evidence.md). 0 or HL_EINVAL. */
int hl_e2e_chain_head_h(const unsigned char *prev, uint64_t conv, uint64_t seq,
			int64_t at, const char *kind, const char *sender,
			bool staff_only,
			const unsigned char payload_hash[HL_E2E_KEY],
			unsigned char out[HL_E2E_KEY]);

/* The handshake's transcript hash T (docs/crypto.md). */
void hl_e2e_transcript(uint64_t conv, uint64_t hello_seq,
		       const unsigned char young_pk[HL_E2E_KEY],
		       const unsigned char staff_pk[HL_E2E_KEY],
		       const unsigned char *cert, size_t cert_len,
		       const unsigned char *issuer, size_t issuer_len,
		       unsigned char out[HL_E2E_KEY]);

/* An accept payload, parsed (pointers into it). */
struct hl_e2e_accept {
	uint64_t hello_seq;
	const unsigned char *kx_pk;
	const unsigned char *cert;
	size_t cert_len;
	const unsigned char *issuer;
	size_t issuer_len;
	const unsigned char *sig;
};

/* Writes u64 hello_seq ‖ kx_pk ‖ u16 len ‖ cert ‖ u16 len ‖ issuer ‖ sig
 * to out (cap bytes) and its length to *len_out. 0, HL_EINVAL, HL_ERANGE. */
int hl_e2e_accept_encode(const struct hl_e2e_accept *a, unsigned char *out,
			 size_t cap, size_t *len_out);
/* Parses an accept payload: exact length, certificate lengths within
 * HL_CERT_MAX. 0 or HL_EINVAL. */
int hl_e2e_accept_parse(const unsigned char *p, size_t len,
			struct hl_e2e_accept *a);

/* true when pk is a usable X25519 public key: not all zero and not of low
 * order (a Diffie-Hellman with it would give the all-zero secret). */
bool hl_e2e_kx_pk_ok(const unsigned char pk[HL_E2E_KEY]);

/* Looks a certificate hash up in a revocation list: true = revoked. */
typedef bool (*hl_e2e_revoked_fn)(const unsigned char hash[HL_E2E_KEY],
				  void *arg);

/*
 * Chains whose two signatures verified, so that a device's next handshake
 * (every accept carries its certificate and its issuer's) does not verify
 * them again: two of an accept's three Ed25519 verifications. An entry is
 * H(root_pk ‖ H(issuer) ‖ H(cert)): the same bytes under the same root
 * verify the same way. All that can change (validity at now, the roles
 * asked for, the subject, revocation) is checked on every use. A fixed
 * table of HL_E2E_CHAIN_SETS sets of HL_E2E_CHAIN_WAYS entries, each set
 * refilled in turn (an eviction only costs a check); for one thread.
 */
#define HL_E2E_CHAIN_SETS 256
#define HL_E2E_CHAIN_WAYS 4
struct hl_e2e_chains {
	struct {
		unsigned char key[HL_E2E_CHAIN_WAYS][HL_E2E_KEY];
		uint8_t used;      /* bit w: key[w] holds an entry */
		uint8_t next;      /* the way to refill next */
	} set[HL_E2E_CHAIN_SETS];
	uint64_t hits, misses;
};

/*
 * Verifies a device chain: issuer is an admin device certificate (role 2)
 * under root_pk, cert a counsellor or supervisor device certificate under
 * the issuer's signing key whose role is one of roles_mask's bits
 * (1 << role), both valid at now (unix seconds), the device's subject equal
 * to subject when not NULL, and neither certificate's hash revoked
 * (revoked may be NULL). chains (may be NULL) remembers the signatures
 * checked. Returns 0 and fills *device (may be NULL), or HL_EINVAL.
 */
int hl_e2e_chain_verify(const unsigned char *cert, size_t cert_len,
			const unsigned char *issuer, size_t issuer_len,
			const unsigned char root_pk[HL_E2E_KEY], int64_t now,
			unsigned roles_mask, const char *subject,
			hl_e2e_revoked_fn revoked, void *arg,
			struct hl_e2e_chains *chains, struct hl_cert *device)
	__attribute__((warn_unused_result));

/* H(cert): how revocations and wraps name a certificate. */
void hl_e2e_cert_hash(const unsigned char *cert, size_t len,
		      unsigned char out[HL_E2E_KEY]);

/*
 * Verifies an accept for conversation conv against the hello it answers
 * (young_pk): the payload parses, the staff kx key is usable, the chain
 * verifies as hl_e2e_chain_verify with subject (and chains), and the
 * signature over T is the device's. Returns 0 (and *device), or HL_EINVAL.
 */
int hl_e2e_accept_verify(const unsigned char *payload, size_t len,
			 uint64_t conv, const unsigned char young_pk[HL_E2E_KEY],
			 const unsigned char root_pk[HL_E2E_KEY], int64_t now,
			 unsigned roles_mask, const char *subject,
			 hl_e2e_revoked_fn revoked, void *arg,
			 struct hl_e2e_chains *chains,
			 struct hl_e2e_accept *a, struct hl_cert *device)
	__attribute__((warn_unused_result));

/* Checkpoints: the signed message is "helpline-checkpoint-v1" ‖ u64 conv ‖
 * u64 seq ‖ head ‖ i64 at (70 + 22 bytes). */
#define HL_E2E_CHECKPOINT_MSG (22 + 8 + 8 + HL_E2E_KEY + 8)
void hl_e2e_checkpoint_msg(uint64_t conv, uint64_t seq,
			   const unsigned char head[HL_E2E_KEY], int64_t at,
			   unsigned char out[HL_E2E_CHECKPOINT_MSG]);

/* Revocations: "helpline-revoke-v1" ‖ H(cert) ‖ i64 at ‖ signature. */
#define HL_E2E_REVOCATION (18 + HL_E2E_KEY + 8 + HL_E2E_SIG)
/* Checks a revocation's length, label and signature by signer_pk; fills
 * hash and *at. 0 or HL_EINVAL. */
int hl_e2e_revocation_verify(const unsigned char *r, size_t len,
			     const unsigned char signer_pk[HL_E2E_KEY],
			     unsigned char hash[HL_E2E_KEY], int64_t *at)
	__attribute__((warn_unused_result));

/* Device requests: "helpline-device-v1" ‖ u64 staff ‖ sign_pk ‖ box_pk,
 * signed by sign_pk (proof of possession). 0 or HL_EINVAL. */
#define HL_E2E_DEVICE_REQUEST (18 + 8 + 2 * HL_E2E_KEY)
int hl_e2e_device_request_verify(uint64_t staff_id,
				 const unsigned char sign_pk[HL_E2E_KEY],
				 const unsigned char box_pk[HL_E2E_KEY],
				 const unsigned char sig[HL_E2E_SIG])
	__attribute__((warn_unused_result));

/* ---- client-side computations (vectors, evidence verification) ---- */

/* The two chain roots from a crypto_kx session key pair and T: root1 keyed
 * by the young person's tx (= the device's rx), root2 by the other. */
void hl_e2e_root(const unsigned char kx_key[HL_E2E_KEY], uint8_t dir,
		 const unsigned char t[HL_E2E_KEY],
		 unsigned char out[HL_E2E_KEY]);

/* One step of a chain: mk = kdf(ck, 1, "hlmsgkey"), next = kdf(ck, 2,
 * "hlchain1"). next may alias ck. */
void hl_e2e_chain_step(const unsigned char ck[HL_E2E_KEY],
		       unsigned char mk[HL_E2E_KEY],
		       unsigned char next[HL_E2E_KEY]);

/* The franking commitment over body (body_len bytes) with kf. */
void hl_e2e_commit(uint64_t conv, uint8_t dir, uint64_t epoch, uint32_t n,
		   const unsigned char *body, size_t body_len,
		   const unsigned char kf[HL_E2E_KEY],
		   unsigned char out[HL_E2E_KEY]);

/* What seal needs besides the body. */
struct hl_e2e_seal_in {
	uint8_t dir;
	uint64_t conv, epoch, seen_seq;
	uint32_t n;
	const unsigned char *seen_head; /* NULL = zeros */
	const unsigned char *mk;        /* message key */
	const unsigned char *kf;        /* franking key */
	const unsigned char *nonce;     /* 24 bytes */
};

/* Seals body into an envelope in out (cap bytes); *len_out its length.
 * 0, HL_EINVAL, HL_ERANGE. */
int hl_e2e_seal(const struct hl_e2e_seal_in *in, const unsigned char *body,
		size_t body_len, unsigned char *out, size_t cap,
		size_t *len_out);

/* Opens an envelope with its message key: decrypts, unpads, checks the
 * commitment. body (cap bytes) receives the body, kf the franking key.
 * 0 or HL_EINVAL (nothing of the body is kept on failure). */
int hl_e2e_open(const unsigned char *env, size_t len,
		const unsigned char mk[HL_E2E_KEY], unsigned char *body,
		size_t cap, size_t *body_len, unsigned char kf[HL_E2E_KEY])
	__attribute__((warn_unused_result));

/* Return codes: the code (normalised text) → seed (Argon2id, INTERACTIVE)
 * → signing and box key pairs. Returns 0 or HL_ENOMEM (pwhash memory). */
int hl_e2e_return_keys(const char *code, unsigned char sign_pk[32],
		       unsigned char sign_sk[64], unsigned char box_pk[32],
		       unsigned char box_sk[32], unsigned char seed[32]);

#endif
