/* test_wire.c: wire.c's hand-written chat.ack / e2e.ack / chat.event are
 * byte for byte what hl_proto_encode writes for the same jansson object,
 * over payload lengths 0..1000 and 65536, extreme integers, ids with and
 * without, duplicates; strings that would need escaping and buffers too
 * small are refused (0) rather than written wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "wire.h"

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* jansson's bytes for obj (consumed). */
static char *encoded(json_t *obj, size_t *len)
{
	unsigned char *out = NULL;

	assert_int_equal(hl_proto_encode(obj, 0, &out, len), 0);
	json_decref(obj);
	return (char *)out;
}

static json_t *ack_tree(const char *type, const char *id, int64_t seq,
			int64_t at, const unsigned char *chain, bool dup)
{
	json_t *r = hl_proto_reply(type, id);

	json_object_set_new(r, "seq", json_integer(seq));
	json_object_set_new(r, "at", json_integer(at));
	if (chain)
		json_object_set_new(r, "chain", hl_proto_b64_json(chain, 32));
	if (dup)
		json_object_set_new(r, "duplicate", json_true());
	return r;
}

static json_t *event_tree(int64_t conv, int64_t seq, int64_t at,
			  const char *kind, const char *from,
			  const unsigned char *payload, size_t len,
			  const unsigned char *chain)
{
	json_t *o = hl_proto_reply("chat.event", NULL);
	char idstr[24];

	snprintf(idstr, sizeof(idstr), "%lld", (long long)conv);
	json_object_set_new(o, "conversation", json_string(idstr));
	json_object_set_new(o, "seq", json_integer(seq));
	json_object_set_new(o, "at", json_integer(at));
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "from", json_string(from));
	if (len)
		json_object_set_new(o, "payload", hl_proto_b64_json(payload, len));
	if (chain)
		json_object_set_new(o, "chain", hl_proto_b64_json(chain, 32));
	return o;
}

static void test_ack_matches_jansson(void **state)
{
	static const char *const ids[] = {NULL, "", "a", "m-1", "x:y.z_0",
					  "0123456789abcdef0123456789abcdef"};
	static const int64_t nums[] = {0, 1, 1733300000000, INT64_MAX,
				       INT64_MIN, -1};
	unsigned char chain[32];
	char buf[512];

	(void)state;
	randombytes_buf(chain, sizeof(chain));
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++)
			for (int dup = 0; dup < 2; dup++) {
				const char *type = k % 2 ? "e2e.ack" : "chat.ack";
				const unsigned char *c = dup ? NULL : chain;
				size_t want_len, n;
				char *want = encoded(
					ack_tree(type, ids[i], nums[k],
						 nums[(k + 1) % 6], c, dup),
					&want_len);

				n = hl_wire_ack(buf, sizeof(buf), type, ids[i],
						nums[k], nums[(k + 1) % 6], c,
						dup);
				assert_int_equal(n, want_len);
				assert_memory_equal(buf, want, n);
				assert_int_equal(buf[n], '\0');
				free(want);
			}
}

static void test_event_matches_jansson(void **state)
{
	static const char *const froms[] = {"contact", "counsellor",
					    "system", "staff:42"};
	unsigned char *payload = malloc(65536), chain[32];
	size_t cap = hl_wire_max(65536);
	char *buf = malloc(cap);

	(void)state;
	assert_non_null(payload);
	assert_non_null(buf);
	randombytes_buf(payload, 65536);
	randombytes_buf(chain, sizeof(chain));
	for (size_t len = 0; len <= 1001; len += len < 8 ? 1 : 97)
		for (size_t f = 0; f < 4; f++) {
			const unsigned char *c = (len + f) % 3 ? chain : NULL;
			size_t want_len, n;
			char *want = encoded(event_tree(7 + (int64_t)len,
							(int64_t)len + 1,
							1733300000123, "msg",
							froms[f], payload, len, c),
					     &want_len);

			assert_true(want_len < hl_wire_max(len));
			n = hl_wire_event(buf, hl_wire_max(len),
					  7 + (int64_t)len, (int64_t)len + 1,
					  1733300000123, "msg", froms[f],
					  payload, len, NULL, c);
			assert_int_equal(n, want_len);
			assert_memory_equal(buf, want, n);
			/* The same with the payload's text relayed as is. */
			if (len) {
				size_t tl = sodium_base64_ENCODED_LEN(len, B64);
				char *text = malloc(tl);
				unsigned char *back = NULL;
				size_t blen = 0;

				assert_non_null(text);
				sodium_bin2base64(text, tl, payload, len, B64);
				assert_int_equal(hl_proto_b64_decode(text, 65536, &back,
								     &blen), 0);
				assert_int_equal(blen, len);
				free(back);
				memset(buf, 0, hl_wire_max(len));
				n = hl_wire_event(buf, hl_wire_max(len),
						  7 + (int64_t)len, (int64_t)len + 1,
						  1733300000123, "msg", froms[f],
						  payload, len, text, c);
				assert_int_equal(n, want_len);
				assert_memory_equal(buf, want, n);
				free(text);
			}
			free(want);
		}
	{
		size_t want_len, n;
		char *want = encoded(event_tree(INT64_MAX, INT64_MAX, INT64_MIN,
						"note", "staff:9223372036854775807",
						payload, 65536, chain),
				     &want_len);

		n = hl_wire_event(buf, cap, INT64_MAX, INT64_MAX, INT64_MIN,
				  "note", "staff:9223372036854775807", payload,
				  65536, NULL, chain);
		assert_int_equal(n, want_len);
		assert_memory_equal(buf, want, n);
		free(want);
	}
	free(buf);
	free(payload);
}

/* What would need escaping is not written (the caller builds a tree). */
static void test_refuses_escapes(void **state)
{
	static const char *const bad[] = {"a\"b", "a\\b", "a\nb", "\x01",
					  "caf\xc3\xa9", "\x7f"};
	char buf[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hl_wire_ack(buf, sizeof(buf), "chat.ack",
					     bad[i], 1, 2, NULL, false),
				 0);
		assert_int_equal(hl_wire_event(buf, sizeof(buf), 1, 2, 3,
					       bad[i], "contact", NULL, 0, NULL, NULL),
				 0);
		assert_int_equal(hl_wire_event(buf, sizeof(buf), 1, 2, 3, "msg",
					       bad[i], NULL, 0, NULL, NULL),
				 0);
	}
}

/* Every byte value at every position of strings long enough for the
 * word-at-a-time check (and its tail) is refused exactly when JSON would
 * need it escaped (or it is not ASCII), the rest written as is. */
static void test_every_byte_everywhere(void **state)
{
	char s[40], buf[1024];

	(void)state;
	for (int c = 1; c < 256; c++) {
		bool esc = c < 0x20 || c >= 0x7f || c == '"' || c == '\\';

		for (size_t len = 1; len < sizeof(s); len += 3)
			for (size_t at = 0; at < len; at++) {
				size_t n;

				memset(s, 'A', len);
				s[len] = '\0';
				s[at] = (char)c;
				n = hl_wire_event(buf, sizeof(buf), 1, 2, 3,
						  "msg", s, NULL, 0, NULL,
						  NULL);
				if (esc) {
					assert_int_equal(n, 0);
					continue;
				}
				assert_true(n > len);
				assert_non_null(strstr(buf, s));
			}
	}
}

/* A payload's text is written as given when it has the length of len
 * bytes' base64url, and refused at any other length (never read past its
 * NUL). */
static void test_payload_text_length(void **state)
{
	static const char text[] = "QUJDREVGR0g"; /* 8 bytes: 11 characters */
	char buf[512];
	size_t n;

	(void)state;
	n = hl_wire_event(buf, sizeof(buf), 1, 2, 3, "msg", "contact",
			  "ABCDEFGH", 8, text, NULL);
	assert_true(n > 0);
	assert_non_null(strstr(buf, ",\"payload\":\"QUJDREVGR0g\"}"));
	for (size_t len = 1; len < 20; len++)
		if (len != 8)
			assert_int_equal(hl_wire_event(buf, sizeof(buf), 1, 2, 3,
						       "msg", "contact",
						       "ABCDEFGHIJKLMNOPQRST",
						       len, text, NULL),
					 0);
}

/* A buffer one byte short of text + NUL is refused, never overrun. */
static void test_too_small(void **state)
{
	unsigned char chain[32] = {0}, payload[300] = {0};
	char buf[1024];
	size_t n, m;

	(void)state;
	n = hl_wire_ack(buf, sizeof(buf), "chat.ack", "id-1", 5, 6, chain,
			false);
	assert_true(n > 0);
	assert_int_equal(hl_wire_ack(buf, n, "chat.ack", "id-1", 5, 6, chain,
				     false),
			 0);
	assert_int_equal(hl_wire_ack(buf, n + 1, "chat.ack", "id-1", 5, 6,
				     chain, false),
			 n);
	m = hl_wire_event(buf, sizeof(buf), 1, 2, 3, "msg", "contact", payload,
			  sizeof(payload), NULL, chain);
	assert_true(m > 0);
	for (size_t cap = 0; cap <= m; cap++)
		assert_int_equal(hl_wire_event(buf, cap, 1, 2, 3, "msg",
					       "contact", payload,
					       sizeof(payload), NULL, chain),
				 0);
	assert_int_equal(hl_wire_event(buf, m + 1, 1, 2, 3, "msg", "contact",
				       payload, sizeof(payload), NULL, chain),
			 m);
}

/* Relaying a payload's text as received (contact.c) is only the same as
 * encoding its bytes because the decoder takes canonical text alone:
 * padding, spare bits set, or characters outside base64url are refused. */
static void test_decoder_is_canonical(void **state)
{
	static const char *const bad[] = {"QR", "QQ==", "QQ=", "Q", "QUJ",
					  "QUJD=", "QU+D", "QU/D", "QU D",
					  "QUJDRB", "QUJDRA\n"};
	unsigned char *out = NULL;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = hl_proto_b64_decode(bad[i], 64, &out, &len);

		if (rc == 0) {
			/* Accepted: then it must be canonical. */
			size_t tl = sodium_base64_ENCODED_LEN(len, B64);
			char text[64];

			sodium_bin2base64(text, tl, out, len, B64);
			assert_string_equal(text, bad[i]);
			free(out);
			out = NULL;
		}
	}
	assert_int_equal(hl_proto_b64_decode("QR", 64, &out, &len) == 0, 0);
	assert_int_equal(hl_proto_b64_decode("QUJDRB", 64, &out, &len) == 0, 0);
	assert_int_equal(hl_proto_b64_decode("QQ", 64, &out, &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(out[0], 'A');
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ack_matches_jansson),
		cmocka_unit_test(test_event_matches_jansson),
		cmocka_unit_test(test_refuses_escapes),
		cmocka_unit_test(test_every_byte_everywhere),
		cmocka_unit_test(test_payload_text_length),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_decoder_is_canonical),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
