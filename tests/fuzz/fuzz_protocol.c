/* fuzz_protocol.c: libFuzzer driver for the frame decoder and the reply
 * encoder. Beyond "no crash, no leak" it checks the codec's promises:
 * decoded values obey their rules, a frame taken by the flat fast path
 * decodes the same through jansson, every error reply encodes, and what we
 * encode always parses back as JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "protocol.h"

#define MAX_LEN 65536
#define HEADROOM 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

static int token_ok(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

/* Encodes reply and checks the output re-parses as a JSON object (it is
 * not a client type, so the decoder must get past parsing to the type). */
static void encode_and_reparse(json_t *reply)
{
	unsigned char *out = NULL;
	size_t len = 0;
	struct hl_msg m;
	struct hl_proto_error e;
	int rc;

	check(reply != NULL);
	rc = hl_proto_encode(reply, HEADROOM, &out, &len);
	check(rc == 0);
	check(out[HEADROOM + len] == '\0');
	rc = hl_proto_decode((const char *)out + HEADROOM, len, SIZE_MAX, &m,
			     &e);
	if (rc == 0) {
		hl_msg_release(&m);
	} else {
		check(e.code != HL_ERR_BAD_JSON && e.code != HL_ERR_BAD_UTF8 &&
		      e.code != HL_ERR_NOT_OBJECT &&
		      e.code != HL_ERR_DUPLICATE_KEY);
	}
	free(out);
	json_decref(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hl_msg m;
	struct hl_proto_error e;
	json_t *reply;

	if (hl_proto_decode((const char *)data, size, MAX_LEN, &m, &e) != 0) {
		check((unsigned)e.code < HL_ERR__COUNT);
		check(e.message[0] != '\0');
		check(e.id[0] == '\0' || token_ok(e.id, 1, HL_PROTO_ID_MAX));
		check(m.root == NULL && m.flat == NULL);
		hl_msg_release(&m);
		encode_and_reparse(hl_proto_error_reply(e.id, e.code, e.message,
							e.field));
		return 0;
	}

	/* A tree, or a frame decoded flat (no tree): then jansson's path
	 * must give the same message. */
	check((m.root != NULL) != (m.flat != NULL));
	if (m.flat) {
		struct hl_msg j;
		const char *a[2], *b[2];

		check(hl_proto_decode_json((const char *)data, size, MAX_LEN,
					   &j, &e) == 0);
		check(j.type == m.type && strcmp(j.id, m.id) == 0);
		a[0] = m.u.chat.conversation;
		a[1] = m.u.chat.payload;
		b[0] = j.u.chat.conversation;
		b[1] = j.u.chat.payload;
		for (size_t i = 0; i < 2; i++)
			check((!a[i] && !b[i]) ||
			      (a[i] && b[i] && strcmp(a[i], b[i]) == 0));
		hl_msg_release(&j);
	}
	check(token_ok(m.id, 1, HL_PROTO_ID_MAX));
	reply = hl_proto_reply(m.type == HL_MSG_HELLO ? "welcome" : "pong",
			       m.id);
	check(reply != NULL);
	switch (m.type) {
	case HL_MSG_HELLO: {
		const char *c = m.u.hello.client;

		check(m.u.hello.version >= 1 && m.u.hello.version <= 1000);
		if (c) {
			size_t n = strlen(c), i;

			check(n >= 1 && n <= 64);
			for (i = 0; i < n; i++)
				check(c[i] >= 0x20 && c[i] <= 0x7e);
		}
		json_object_set_new(reply, "version",
				    json_integer(m.u.hello.version));
		break;
	}
	case HL_MSG_PING:
		if (m.u.ping.data) {
			check(strlen(m.u.ping.data) <= 64);
			json_object_set(reply, "data",
					json_object_get(m.root, "data"));
		}
		break;
	case HL_MSG__COUNT:
		abort();
	default: {
		/* The other types' fields are all bounded strings (<= 1024
		 * bytes) or integers: check what the codec let through. */
		const char *k;
		json_t *v;

		json_object_foreach(m.root, k, v) {
			check(json_is_string(v) || json_is_integer(v));
			if (json_is_string(v))
				check(json_string_length(v) <= 1024);
		}
		break;
	}
	}
	hl_msg_release(&m);
	encode_and_reparse(reply);
	return 0;
}
