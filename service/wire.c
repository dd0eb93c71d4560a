/* wire.c: chat.ack and chat.event as JSON text without a jansson tree
 * (see wire.h). */
#include "wire.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
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
static void str(struct out *o, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			o->bad = true;
			return;
		}
	}
	put(o, "\"", 1);
	put(o, s, n);
	put(o, "\"", 1);
}

static void num(struct out *o, int64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%" PRId64, v);

	put(o, b, (size_t)n);
}

static void b64(struct out *o, const void *p, size_t len)
{
	size_t n = sodium_base64_ENCODED_LEN(len, B64); /* with the NUL */

	if (o->bad || n + 2 >= o->cap - o->len) {
		o->bad = true;
		return;
	}
	o->p[o->len++] = '"';
	sodium_bin2base64(o->p + o->len, n, p, len, B64);
	o->len += n - 1;
	o->p[o->len++] = '"';
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
		str(&o, payload_b64);
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
