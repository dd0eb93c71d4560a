/* totp.h: owns one-time codes: RFC 6238 TOTP (HMAC-SHA1, 30 s, 6 digits,
 * what authenticator apps expect), base32 for secrets, otpauth:// URIs. */
#ifndef HL_TOTP_H
#define HL_TOTP_H

#include <stddef.h>
#include <stdint.h>

#define HL_TOTP_SECRET_BYTES 20  /* 160-bit secret, as RFC 4226 recommends */
#define HL_TOTP_STEP 30          /* seconds */
#define HL_TOTP_DIGITS 6

/* The RFC 6238 time step for unix time t (seconds): floor(t / 30); 0 for a
 * time before 1970. */
uint64_t hl_totp_step(int64_t unix_seconds);

/* RFC 4226 HOTP value of secret at counter, truncated to digits (6..8)
 * decimal digits. Uses OpenSSL's HMAC-SHA1 (libsodium has no SHA-1).
 * Returns UINT32_MAX (never a valid code) for digits outside 6..8 or when
 * OpenSSL fails. Any thread. */
uint32_t hl_totp_hotp(const unsigned char *secret, size_t len,
		      uint64_t counter, int digits);

/*
 * Checks a 6-digit code typed by a person against secret at unix time now,
 * accepting steps now-1, now, now+1 (clock drift) but never a step <=
 * last_step (each code is accepted once). code must be exactly 6 ASCII
 * digits. On success returns 0 and sets *matched_step (the caller stores it
 * as the new last_step); otherwise HL_EINVAL. Compares in constant time.
 * Steps are tried in the order now-1, now, now+1 and the first match wins.
 * Any thread.
 */
int hl_totp_verify(const unsigned char *secret, size_t len, const char *code,
		   int64_t now, uint64_t last_step, uint64_t *matched_step)
	__attribute__((warn_unused_result));

/* RFC 4648 base32 without padding (A-Z2-7), as authenticator apps take it.
 * out holds at least (len*8+4)/5 + 1 bytes. Returns the length written;
 * when outcap is smaller, writes "" (if outcap > 0) and returns 0. */
size_t hl_base32_encode(const unsigned char *in, size_t len, char *out,
			size_t outcap);

/* Decodes base32 (case-insensitive, spaces and '=' padding ignored) into out
 * (cap bytes). Returns the decoded length or -1 on a bad character,
 * overflow, or a character count no encoder produces (1, 3 or 6 left over
 * after the last group of 8: a truncated secret); on -1 the bytes written to
 * out are zeroed. Unused low bits of the last character are ignored. */
int hl_base32_decode(const char *in, unsigned char *out, size_t cap);

/*
 * Writes "otpauth://totp/<issuer>:<account>?secret=<b32>&issuer=<issuer>
 * &algorithm=SHA1&digits=6&period=30" with issuer and account
 * percent-encoded: every byte but A-Z a-z 0-9 - . _ ~ becomes %XX (upper
 * case hex), so the ':' between them is the only literal one. Returns 0,
 * HL_ERANGE when out is too small (out is then wiped: it held part of the
 * secret), or HL_EINVAL for a NULL argument or outcap 0.
 */
int hl_totp_uri(const char *issuer, const char *account,
		const unsigned char *secret, size_t len, char *out,
		size_t outcap);

#endif
