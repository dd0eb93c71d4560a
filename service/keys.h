/* keys.h: owns the server's secret key file and everything derived from it:
 * the keyed hash of session tokens and enrolment codes, and the sealing of
 * TOTP secrets and the service's private keys at rest. */
#ifndef HL_KEYS_H
#define HL_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define HL_KEY_BYTES 32          /* master key and every subkey */
#define HL_TOKEN_BYTES 32        /* session token */
#define HL_TOKEN_HASH_BYTES 32   /* keyed BLAKE2b of a token or code */
/* Sealed value = 24-byte nonce || XChaCha20-Poly1305 ciphertext || 16-byte tag */
#define HL_SEAL_OVERHEAD (24 + 16)

/*
 * The server's secret: a 32-byte master key read from a file that lives
 * beside the database (never in it), mode 0600. Subkeys are derived with
 * crypto_kdf_derive_from_key, context "hlkeys01", one id per use.
 */
struct hl_keys {
	unsigned char master[HL_KEY_BYTES];
	unsigned char token_key[HL_KEY_BYTES];  /* id 1: token/code hashing */
	unsigned char seal_key[HL_KEY_BYTES];   /* id 2: sealing at rest */
};

/*
 * Loads the key file at path, or creates it (32 random bytes, O_EXCL, mode
 * 0600) when create is non-zero and it does not exist. A file of the wrong
 * size or readable by group/others is refused. Returns 0, HL_ENOTFOUND (no
 * file and !create), HL_EIO or HL_EINVAL with a message in err. Calls
 * sodium_init. keys must be wiped with hl_keys_wipe.
 */
int hl_keys_load(struct hl_keys *keys, const char *path, int create,
		 char *err, size_t errlen);

/*
 * Fills keys from a master key held in memory (master may be keys->master)
 * and derives the subkeys exactly as hl_keys_load does. For tests and tools
 * that must reproduce the server's keys without its file. Calls
 * sodium_init. Returns 0, or HL_EINVAL (keys zeroed) when libsodium cannot
 * start. keys must be wiped with hl_keys_wipe.
 */
int hl_keys_from_master(struct hl_keys *keys,
			const unsigned char master[HL_KEY_BYTES]);

/* Zeroes every key (sodium_memzero). */
void hl_keys_wipe(struct hl_keys *keys);

/* out = keyed BLAKE2b-256(token_key, "tok" || data). For session tokens
 * and enrolment codes: the database holds only this. */
void hl_keys_hash_token(const struct hl_keys *keys, const void *data,
			size_t len, unsigned char out[HL_TOKEN_HASH_BYTES]);

/*
 * Seals plain (len bytes) under seal_key with XChaCha20-Poly1305, binding
 * the associated data ad (e.g. "totp:<staff id>") so a sealed value cannot
 * be moved to another row. out must hold len + HL_SEAL_OVERHEAD bytes.
 * ad is its characters without the NUL; NULL is the same as "". A fresh
 * random nonce is used each time, so sealing the same value twice gives
 * different bytes.
 */
void hl_keys_seal(const struct hl_keys *keys, const void *plain, size_t len,
		  const char *ad, unsigned char *out);

/* Opens a sealed value of sealed_len bytes into out (sealed_len -
 * HL_SEAL_OVERHEAD bytes). Returns 0, or HL_EINVAL when it does not
 * authenticate (wrong key, wrong ad, edited, shorter than
 * HL_SEAL_OVERHEAD); out is then all zeros. */
int hl_keys_open(const struct hl_keys *keys, const unsigned char *sealed,
		 size_t sealed_len, const char *ad, unsigned char *out)
	__attribute__((warn_unused_result));

#endif
