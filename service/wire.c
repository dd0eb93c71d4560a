/* wire.c: chat.ack and chat.event as JSON text without a jansson tree
 * (see wire.h). */
#include "wire.h"
#include "common.h"

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define CHAIN_LEN 32

/* What every reply below adds around its variable parts, with room. */
#define FIXED_MAX 512

size_t hl_wire_max(size_t len)
{
	return FIXED_MAX + sodium_base64_ENCODED_LEN(len, B64) +
	       sodium_base64_ENCODED_LEN(CHAIN_LEN, B64);
}

struct out {
	char *p;
	size_t len, cap;
	bool bad;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->bad || n >= o->cap - o->len) {
		o->bad = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void lit(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A JSON string of printable ASCII that needs no escaping; anything else
 * is left to jansson (o->bad). */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Whether any of the 8 bytes in x is below 0x20, 0x7f or above, '"' or
 * '\\' (word-at-a-time: "has a zero byte" is (v - ONES) & ~v & HIGHS, and
 * "has a byte below n" for n <= 128 is (x - n * ONES) & ~x & HIGHS). */
static bool word_needs_escape(uint64_t x)
{
	uint64_t q = x ^ (0x22 * ONES), b = x ^ (0x5c * ONES),
		 d = x ^ (0x7f * ONES);

	return ((x & HIGHS) | ((x - 0x20 * ONES) & ~x & HIGHS) |
		((q - ONES) & ~q & HIGHS) | ((b - ONES) & ~b & HIGHS) |
		((d - ONES) & ~d & HIGHS)) != 0;
}

static void str(struct out *o, const char *s)
{
	size_t n = strlen(s), i = 0;
	bool bad = false;

	/* Eight bytes at a time: a base64 payload is a few hundred, and
	 * this check was half the time of writing an event. */
	for (; i + 8 <= n; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, 8);
		bad |= word_needs_escape(x);
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		bad |= c < 0x20 || c >= 0x7f || c == '"' || c == '\\';
	}
	if (bad) {
		o->bad = true;
		return;
	}
	put(o, "\"", 1);
	put(o, s, n);
	put(o, "\"", 1);
}

/* v in decimal (snprintf was a tenth of building an event). */
static void num(struct out *o, int64_t v)
{
	char b[HL_I64_DIGITS];

	put(o, b, hl_fmt_i64(b, v));
}

/* base64url without padding, as sodium_bin2base64 writes it, but with a
 * table: what is encoded here (chain heads, ciphertext) is public, and
 * libsodium's constant-time encoder was ~0.8% of the relay's CPU for the
 * two chain heads of every message. test_wire.c compares the two. */
static void b64(struct out *o, const void *p, size_t len)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *b = p;
	size_t n = sodium_base64_ENCODED_LEN(len, B64); /* with the NUL */
	char *d;
	size_t i = 0;

	if (o->bad || n + 2 >= o->cap - o->len) {
		o->bad = true;
		return;
	}
	d = o->p + o->len;
	*d++ = '"';
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 |
			     b[i + 2];

		*d++ = abc[v >> 18];
		*d++ = abc[(v >> 12) & 63];
		*d++ = abc[(v >> 6) & 63];
		*d++ = abc[v & 63];
	}
	if (len - i == 1) {
		*d++ = abc[b[i] >> 2];
		*d++ = abc[(b[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)b[i] << 8 | b[i + 1];

		*d++ = abc[v >> 10];
		*d++ = abc[(v >> 4) & 63];
		*d++ = abc[(v & 15) << 2];
	}
	*d++ = '"';
	o->len = (size_t)(d - o->p);
}

/* The base64url text of len bytes, as hl_proto_b64_decode accepts it: its
 * alphabet needs no escape, so only its length is checked (a text of any
 * other length is not what the caller says it is). */
static void b64_text(struct out *o, const char *text, size_t len)
{
	size_t n = (len * 4 + 2) / 3; /* no padding */

	if (strnlen(text, n + 1) != n) {
		o->bad = true;
		return;
	}
	put(o, "\"", 1);
	put(o, text, n);
	put(o, "\"", 1);
}

static size_t done(struct out *o)
{
	if (o->bad || o->len >= o->cap)
		return 0;
	o->p[o->len] = '\0';
	return o->len;
}

size_t hl_wire_ack(char *buf, size_t cap, const char *type, const char *id,
		   int64_t seq, int64_t at, const unsigned char *chain,
		   bool duplicate)
{
	struct out o = {.p = buf, .cap = cap};

	lit(&o, "{\"type\":");
	str(&o, type);
	if (id && id[0]) {
		lit(&o, ",\"id\":");
		str(&o, id);
	}
	lit(&o, ",\"seq\":");
	num(&o, seq);
	lit(&o, ",\"at\":");
	num(&o, at);
	if (chain) {
		lit(&o, ",\"chain\":");
		b64(&o, chain, CHAIN_LEN);
	}
	if (duplicate)
		lit(&o, ",\"duplicate\":true");
	lit(&o, "}");
	return done(&o);
}

size_t hl_wire_event(char *buf, size_t cap, int64_t conv_id, int64_t seq,
		     int64_t at, const char *kind, const char *from,
		     const void *payload, size_t len, const char *payload_b64,
		     const unsigned char *chain)
{
	struct out o = {.p = buf, .cap = cap};

	lit(&o, "{\"type\":\"chat.event\",\"conversation\":\"");
	num(&o, conv_id);
	lit(&o, "\",\"seq\":");
	num(&o, seq);
	lit(&o, ",\"at\":");
	num(&o, at);
	lit(&o, ",\"kind\":");
	str(&o, kind);
	lit(&o, ",\"from\":");
	str(&o, from);
	if (len && payload_b64) {
		lit(&o, ",\"payload\":");
		b64_text(&o, payload_b64, len);
	} else if (len) {
		lit(&o, ",\"payload\":");
		b64(&o, payload, len);
	}
	if (chain) {
		lit(&o, ",\"chain\":");
		b64(&o, chain, CHAIN_LEN);
	}
	lit(&o, "}");
	return done(&o);
}
