/* totp.c: RFC 4226 HOTP and RFC 6238 TOTP over OpenSSL's HMAC-SHA1, RFC 4648
 * base32, and otpauth:// URIs for authenticator apps. Buffers that held a
 * secret, an HMAC or an expected code are wiped before returning. */
#include "totp.h"
#include "common.h"
#include "log.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SHA1_BYTES 20

/* 10^digits for the digit counts HOTP allows here (RFC 4226 §5.3 asks for
 * at least 6; 10^9 would no longer fit the 31-bit truncated value well). */
static const uint32_t pow10_tab[] = {1000000u, 10000000u, 100000000u};

uint64_t hl_totp_step(int64_t unix_seconds)
{
	/* RFC 6238 uses T0 = 0 and counts whole steps; a time before 1970 has
	 * no step of its own, so it is step 0 rather than a huge wrapped
	 * value. */
	if (unix_seconds < 0)
		return 0;
	return (uint64_t)unix_seconds / HL_TOTP_STEP;
}

/* HOTP with an error channel, so that an HMAC failure can never be mistaken
 * for the code 000000. Returns 0 and sets *value, or -1. */
static int hotp(const unsigned char *secret, size_t len, uint64_t counter,
		int digits, uint32_t *value)
{
	static const unsigned char empty_key[1];
	unsigned char msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	unsigned int off;
	uint32_t bin;
	int i, ok;

	if (digits < 6 || digits > 8 || len > INT_MAX)
		return -1;
	for (i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)(counter & 0xff);
		counter >>= 8;
	}
	/* HMAC() is the one-shot interface OpenSSL 3 keeps undeprecated.
	 * OpenSSL wants a non-NULL key even when it is empty. */
	ok = HMAC(EVP_sha1(), secret && len ? secret : empty_key, (int)len,
		  msg, sizeof(msg), mac, &mac_len) != NULL &&
	     mac_len == SHA1_BYTES;
	if (ok) {
		/* RFC 4226 §5.3 dynamic truncation: the low nibble of the last
		 * byte picks 4 bytes; the top bit is dropped so the value is
		 * the same whether read as signed or unsigned. */
		off = mac[SHA1_BYTES - 1] & 0x0f;
		bin = ((uint32_t)(mac[off] & 0x7f) << 24) |
		      ((uint32_t)mac[off + 1] << 16) |
		      ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
		*value = bin % pow10_tab[digits - 6];
		bin = 0;
	}
	sodium_memzero(mac, sizeof(mac));
	return ok ? 0 : -1;
}

uint32_t hl_totp_hotp(const unsigned char *secret, size_t len,
		      uint64_t counter, int digits)
{
	uint32_t v;

	if (hotp(secret, len, counter, digits, &v) != 0)
		return UINT32_MAX;
	return v;
}

int hl_totp_verify(const unsigned char *secret, size_t len, const char *code,
		   int64_t now, uint64_t last_step, uint64_t *matched_step)
{
	char expect[HL_TOTP_DIGITS + 1];
	uint64_t step, s;
	uint32_t v = 0;
	int i, found = 0, failed = 0;

	if (!code || !matched_step)
		return HL_EINVAL;
	for (i = 0; i < HL_TOTP_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return HL_EINVAL; /* also stops at a short code's NUL */
	if (code[HL_TOTP_DIGITS] != '\0')
		return HL_EINVAL;

	step = hl_totp_step(now);
	/* now-1 first: the likeliest match when a person types a code just as
	 * it rolls over. Step 0 has no predecessor. */
	for (i = -1; i <= 1 && !found; i++) {
		if (i < 0 && step == 0)
			continue;
		s = step + (uint64_t)(int64_t)i;
		if (s <= last_step)
			continue; /* already used, or older than one that was */
		if (hotp(secret, len, s, HL_TOTP_DIGITS, &v) != 0) {
			failed = 1;
			break;
		}
		snprintf(expect, sizeof(expect), "%06u", (unsigned)v);
		if (sodium_memcmp(expect, code, HL_TOTP_DIGITS) == 0) {
			found = 1;
			*matched_step = s;
		}
	}
	sodium_memzero(expect, sizeof(expect));
	sodium_memzero(&v, sizeof(v));
	if (failed)
		hl_error("totp.hmac_failed", "digits=%d", HL_TOTP_DIGITS);
	return found ? 0 : HL_EINVAL;
}

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

size_t hl_base32_encode(const unsigned char *in, size_t len, char *out,
			size_t outcap)
{
	size_t need, i, o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (len > (SIZE_MAX - 4) / 8) {
		if (outcap > 0)
			out[0] = '\0';
		return 0;
	}
	need = (len * 8 + 4) / 5;
	if (outcap < need + 1) {
		if (outcap > 0)
			out[0] = '\0';
		return 0;
	}
	for (i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out[o++] = b32_alphabet[(acc >> bits) & 31];
		}
		acc &= (1u << bits) - 1; /* keep only the unused bits */
	}
	if (bits > 0)
		out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
	out[o] = '\0';
	acc = 0;
	return o;
}

/* The 5-bit value of a base32 character, either case, or -1. */
static int b32_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

int hl_base32_decode(const char *in, unsigned char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, chars = 0;
	uint32_t acc = 0;
	int bits = 0, v, rc = 0;

	for (; *p; p++) {
		if (*p == ' ' || *p == '=')
			continue;
		v = b32_value(*p);
		if (v < 0) {
			rc = -1;
			break;
		}
		chars++;
		acc = (acc << 5) | (uint32_t)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap || o >= INT_MAX) {
				rc = -1;
				break;
			}
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* 1, 3 or 6 characters left over cannot come from any encoder: the
	 * input was cut short (a mistyped or truncated secret). The unused
	 * low bits of a valid tail are ignored, as authenticator apps do. */
	if (rc == 0 && (chars % 8 == 1 || chars % 8 == 3 || chars % 8 == 6))
		rc = -1;
	acc = 0;
	if (rc != 0) {
		sodium_memzero(out, o);
		return -1;
	}
	return (int)o;
}

/* Appends to a bounded string; once something did not fit, stays failed. */
struct sbuf {
	char *p;     /* the caller's buffer */
	size_t cap;  /* its size */
	size_t len;  /* characters written, excluding the NUL */
	int full;    /* set when an append did not fit */
};

static void sb_putc(struct sbuf *b, char c)
{
	if (b->full || b->len + 1 >= b->cap) {
		b->full = 1;
		return;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	while (*s)
		sb_putc(b, *s++);
}

/* RFC 3986 percent-encoding of everything but the unreserved characters,
 * so that a ':', '&', '?', '#' or space in an issuer or account name cannot
 * change the URI's structure. */
static void sb_put_pct(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;

	for (; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		    *p == '_' || *p == '~') {
			sb_putc(b, (char)*p);
		} else {
			sb_putc(b, '%');
			sb_putc(b, hex[*p >> 4]);
			sb_putc(b, hex[*p & 15]);
		}
	}
}

int hl_totp_uri(const char *issuer, const char *account,
		const unsigned char *secret, size_t len, char *out,
		size_t outcap)
{
	struct sbuf b = {out, outcap, 0, 0};
	size_t n;

	if (!issuer || !account || (!secret && len) || !out || outcap == 0)
		return HL_EINVAL;
	out[0] = '\0';
	sb_puts(&b, "otpauth://totp/");
	sb_put_pct(&b, issuer);
	sb_putc(&b, ':');
	sb_put_pct(&b, account);
	sb_puts(&b, "?secret=");
	if (!b.full) {
		/* Encoded straight into out: no second copy of the secret. */
		n = hl_base32_encode(secret, len, out + b.len, outcap - b.len);
		if (n == 0 && len > 0)
			b.full = 1;
		b.len += n;
	}
	sb_puts(&b, "&issuer=");
	sb_put_pct(&b, issuer);
	sb_puts(&b, "&algorithm=SHA1&digits=6&period=30");
	if (b.full) {
		/* A truncated URI may still hold part of the secret. */
		sodium_memzero(out, outcap);
		return HL_ERANGE;
	}
	return 0;
}
