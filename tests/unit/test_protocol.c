/* test_protocol.c: known-answer vectors for the JSON frame codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "common.h"
#include "protocol.h"

#define MAX 65536
/* A 64-byte id using every allowed character class. */
#define ID64 "0123456789abcdefABCDEF._:-" "01234567890123456789012345678901234567"

/* A literal with its exact length (so embedded NUL bytes count). */
#define B(s) s, sizeof(s) - 1

/* ---- decode error vectors ------------------------------------------- */

/* One frame that must be rejected: expected code, id and field in the
 * error ("" when none). */
struct bad_vec {
	const char *name;
	const char *in;
	size_t len;
	enum hl_err_code code;
	const char *id;
	const char *field;
};

#define P(body) "{\"type\":\"ping\",\"id\":\"1\"" body "}"
#define H(body) "{\"type\":\"hello\",\"id\":\"h1\"" body "}"

static const struct bad_vec bad_vecs[] = {
	/* Parse level. */
	{"empty", B(""), HL_ERR_BAD_JSON, "", ""},
	{"whitespace only", B(" \t\r\n "), HL_ERR_BAD_JSON, "", ""},
	{"trailing garbage", B(P("") " x"), HL_ERR_BAD_JSON, "", ""},
	{"two objects", B(P("") "{}"), HL_ERR_BAD_JSON, "", ""},
	{"unterminated", B("{\"type\":\"ping\",\"id\":\"1\""), HL_ERR_BAD_JSON, "", ""},
	{"trailing comma", B(P(",")), HL_ERR_BAD_JSON, "", ""},
	{"single quotes", B("{'type':'ping','id':'1'}"), HL_ERR_BAD_JSON, "", ""},
	{"BOM", B("\xef\xbb\xbf" P("")), HL_ERR_BAD_JSON, "", ""},
	{"raw NUL between members", B("{\"type\":\"ping\",\0\"id\":\"1\"}"), HL_ERR_BAD_JSON, "", ""},
	{"raw NUL inside string", B(P(",\"data\":\"a\0b\"")), HL_ERR_BAD_JSON, "", ""},
	{"raw NUL after object", B(P("") "\0"), HL_ERR_BAD_JSON, "", ""},
	{"escaped NUL in value", B(P(",\"data\":\"\\u0000\"")), HL_ERR_BAD_JSON, "", ""},
	{"escaped NUL in key", B(P(",\"d\\u0000\":\"\"")), HL_ERR_BAD_JSON, "", ""},
	{"lone high surrogate", B(P(",\"data\":\"\\ud800\"")), HL_ERR_BAD_JSON, "", ""},
	{"lone low surrogate", B(P(",\"data\":\"\\udc00x\"")), HL_ERR_BAD_JSON, "", ""},
	{"high surrogate + non-low", B(P(",\"data\":\"\\ud800\\u0041\"")), HL_ERR_BAD_JSON, "", ""},
	{"raw control char in string", B(P(",\"data\":\"a\nb\"")), HL_ERR_BAD_JSON, "", ""},
	{"bad escape", B(P(",\"data\":\"\\x41\"")), HL_ERR_BAD_JSON, "", ""},
	{"real overflow 1e400", B(H(",\"version\":1e400")), HL_ERR_BAD_JSON, "", ""},
	{"integer overflow", B(H(",\"version\":99999999999999999999")), HL_ERR_BAD_JSON, "", ""},
	{"negative integer overflow", B(H(",\"version\":-99999999999999999999")), HL_ERR_BAD_JSON, "", ""},
	{"NaN literal", B(H(",\"version\":NaN")), HL_ERR_BAD_JSON, "", ""},
	{"leading zero", B(H(",\"version\":01")), HL_ERR_BAD_JSON, "", ""},
	/* UTF-8. */
	{"byte 0xff in string", B(P(",\"data\":\"\xff\"")), HL_ERR_BAD_UTF8, "", ""},
	{"byte 0xff after object", B(P("") "\xff"), HL_ERR_BAD_UTF8, "", ""},
	{"overlong NUL c0 80", B(P(",\"data\":\"\xc0\x80\"")), HL_ERR_BAD_UTF8, "", ""},
	{"overlong slash e0 80 af", B(P(",\"data\":\"\xe0\x80\xaf\"")), HL_ERR_BAD_UTF8, "", ""},
	{"truncated 3-byte sequence", B(P(",\"data\":\"\xe2\x82\"")), HL_ERR_BAD_UTF8, "", ""},
	{"truncated at end of frame", B("{\"type\":\"ping\",\"id\":\"1\",\"data\":\"\xe2"), HL_ERR_BAD_UTF8, "", ""},
	{"lone continuation byte", B(P(",\"data\":\"\x80\"")), HL_ERR_BAD_UTF8, "", ""},
	{"UTF-8 encoded surrogate", B(P(",\"data\":\"\xed\xa0\x80\"")), HL_ERR_BAD_UTF8, "", ""},
	{"code point over U+10FFFF", B(P(",\"data\":\"\xf4\x90\x80\x80\"")), HL_ERR_BAD_UTF8, "", ""},
	/* Root. */
	{"array root", B("[]"), HL_ERR_NOT_OBJECT, "", ""},
	{"string root", B("\"x\""), HL_ERR_NOT_OBJECT, "", ""},
	{"number root", B("1"), HL_ERR_NOT_OBJECT, "", ""},
	{"null root", B("null"), HL_ERR_NOT_OBJECT, "", ""},
	{"true root", B(" true "), HL_ERR_NOT_OBJECT, "", ""},
	/* Duplicates: reported whatever the key, before any other check. */
	{"duplicate type", B("{\"type\":\"ping\",\"type\":\"ping\",\"id\":\"1\"}"), HL_ERR_DUPLICATE_KEY, "", ""},
	{"duplicate id", B("{\"type\":\"ping\",\"id\":\"1\",\"id\":\"2\"}"), HL_ERR_DUPLICATE_KEY, "", ""},
	{"duplicate nested key", B(P(",\"data\":{\"a\":1,\"a\":1}")), HL_ERR_DUPLICATE_KEY, "", ""},
	/* type. */
	{"empty object", B("{}"), HL_ERR_BAD_TYPE, "", "type"},
	{"type missing, id kept", B("{\"id\":\"7\"}"), HL_ERR_BAD_TYPE, "7", "type"},
	{"type number", B("{\"type\":1,\"id\":\"7\"}"), HL_ERR_BAD_TYPE, "7", "type"},
	{"type null", B("{\"type\":null,\"id\":\"7\"}"), HL_ERR_BAD_TYPE, "7", "type"},
	{"type array", B("{\"type\":[\"ping\"],\"id\":\"7\"}"), HL_ERR_BAD_TYPE, "7", "type"},
	{"type before bad id", B("{\"type\":false,\"id\":\"\"}"), HL_ERR_BAD_TYPE, "", "type"},
	{"unknown type, id kept", B("{\"type\":\"nope\",\"id\":\"abc\"}"), HL_ERR_UNKNOWN_TYPE, "abc", "type"},
	{"unknown type, bad id", B("{\"type\":\"nope\",\"id\":\"a b\"}"), HL_ERR_UNKNOWN_TYPE, "", "type"},
	{"type is case-sensitive", B("{\"type\":\"PING\",\"id\":\"1\"}"), HL_ERR_UNKNOWN_TYPE, "1", "type"},
	{"type empty", B("{\"type\":\"\",\"id\":\"1\"}"), HL_ERR_UNKNOWN_TYPE, "1", "type"},
	{"type prefix", B("{\"type\":\"pin\",\"id\":\"1\"}"), HL_ERR_UNKNOWN_TYPE, "1", "type"},
	{"type with suffix", B("{\"type\":\"pingx\",\"id\":\"1\"}"), HL_ERR_UNKNOWN_TYPE, "1", "type"},
	{"reply type from client", B("{\"type\":\"error\",\"id\":\"1\"}"), HL_ERR_UNKNOWN_TYPE, "1", "type"},
	/* id. */
	{"id missing", B("{\"type\":\"ping\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id empty", B("{\"type\":\"ping\",\"id\":\"\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id number", B("{\"type\":\"ping\",\"id\":1}"), HL_ERR_BAD_ID, "", "id"},
	{"id null", B("{\"type\":\"ping\",\"id\":null}"), HL_ERR_BAD_ID, "", "id"},
	{"id space", B("{\"type\":\"ping\",\"id\":\"a b\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id slash", B("{\"type\":\"ping\",\"id\":\"a/b\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id non-ASCII", B("{\"type\":\"ping\",\"id\":\"\xc3\xa9\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id newline escape", B("{\"type\":\"ping\",\"id\":\"a\\nb\"}"), HL_ERR_BAD_ID, "", "id"},
	{"id 65 bytes", B("{\"type\":\"ping\",\"id\":\"" "0123456789012345678901234567890123456789012345678901234567890123" "4\"}"), HL_ERR_BAD_ID, "", "id"},
	/* Unknown fields: any key outside "type", "id" and the table. */
	{"unknown field", B(P(",\"x\":1")), HL_ERR_UNKNOWN_FIELD, "1", "x"},
	{"unknown field null", B(P(",\"extra_2\":null")), HL_ERR_UNKNOWN_FIELD, "1", "extra_2"},
	{"field of another type", B(P(",\"version\":1")), HL_ERR_UNKNOWN_FIELD, "1", "version"},
	{"unknown key not echoed", B(P(",\"a b\":1")), HL_ERR_UNKNOWN_FIELD, "1", ""},
	{"long unknown key not echoed", B(P(",\"abcdefghijklmnopqrstuvwxyz789012\":1")), HL_ERR_UNKNOWN_FIELD, "1", ""},
	{"31-byte unknown key echoed", B(P(",\"abcdefghijklmnopqrstuvwxyz78901\":1")), HL_ERR_UNKNOWN_FIELD, "1", "abcdefghijklmnopqrstuvwxyz78901"},
	{"key case matters", B(H(",\"Version\":1")), HL_ERR_UNKNOWN_FIELD, "h1", "Version"},
	{"unknown before missing", B(H(",\"verison\":1")), HL_ERR_UNKNOWN_FIELD, "h1", "verison"},
	/* staff.colleagues has no fields: any key but type and id is refused. */
	{"colleagues unknown field", B("{\"type\":\"staff.colleagues\",\"id\":\"c1\",\"x\":1}"), HL_ERR_UNKNOWN_FIELD, "c1", "x"},
	{"colleagues field of another type", B("{\"type\":\"staff.colleagues\",\"id\":\"c1\",\"staff_id\":2}"), HL_ERR_UNKNOWN_FIELD, "c1", "staff_id"},
	{"colleagues null field", B("{\"type\":\"staff.colleagues\",\"id\":\"c1\",\"on\":null}"), HL_ERR_UNKNOWN_FIELD, "c1", "on"},
	{"colleagues bad id", B("{\"type\":\"staff.colleagues\",\"id\":\"\"}"), HL_ERR_BAD_ID, "", "id"},
	{"colleagues case-sensitive", B("{\"type\":\"staff.Colleagues\",\"id\":\"c1\"}"), HL_ERR_UNKNOWN_TYPE, "c1", "type"},
	/* escalation.*: required fields, kinds and bounds. */
	{"raise no reason", B("{\"type\":\"escalation.raise\",\"id\":\"e1\",\"conversation\":\"4\",\"urgency\":\"urgent\"}"), HL_ERR_MISSING_FIELD, "e1", "reason"},
	{"raise urgency number", B("{\"type\":\"escalation.raise\",\"id\":\"e1\",\"conversation\":\"4\",\"reason\":\"life_at_risk\",\"urgency\":1}"), HL_ERR_BAD_FIELD, "e1", "urgency"},
	{"raise note not base64url", B("{\"type\":\"escalation.raise\",\"id\":\"e1\",\"conversation\":\"4\",\"reason\":\"life_at_risk\",\"urgency\":\"urgent\",\"note\":\"a b\"}"), HL_ERR_BAD_FIELD, "e1", "note"},
	{"claim id zero", B("{\"type\":\"escalation.claim\",\"id\":\"e2\",\"escalation\":0}"), HL_ERR_BAD_FIELD, "e2", "escalation"},
	{"claim id string", B("{\"type\":\"escalation.claim\",\"id\":\"e2\",\"escalation\":\"1\"}"), HL_ERR_BAD_FIELD, "e2", "escalation"},
	{"decide no decision", B("{\"type\":\"escalation.decide\",\"id\":\"e3\",\"escalation\":1}"), HL_ERR_MISSING_FIELD, "e3", "decision"},
	{"evidence no bundle", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":\"4\"}"), HL_ERR_MISSING_FIELD, "v1", "bundle"},
	{"evidence no conversation", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"bundle\":\"{}\"}"), HL_ERR_MISSING_FIELD, "v1", "conversation"},
	{"evidence bundle empty", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":\"4\",\"bundle\":\"\"}"), HL_ERR_BAD_FIELD, "v1", "bundle"},
	{"evidence bundle as object", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":\"4\",\"bundle\":{}}"), HL_ERR_BAD_FIELD, "v1", "bundle"},
	{"evidence conversation number", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":4,\"bundle\":\"{}\"}"), HL_ERR_BAD_FIELD, "v1", "conversation"},
	{"evidence conversation too long", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":\"123456789012345678901\",\"bundle\":\"{}\"}"), HL_ERR_BAD_FIELD, "v1", "conversation"},
	{"referral no kind", B("{\"type\":\"referral.create\",\"id\":\"v1\",\"escalation\":3}"), HL_ERR_MISSING_FIELD, "v1", "kind"},
	{"referral consent_asked 2", B("{\"type\":\"referral.create\",\"id\":\"v1\",\"escalation\":3,\"kind\":\"police\",\"legal_basis\":\"consent\",\"urgency\":\"urgent\",\"consent_asked\":2,\"identity_included\":0,\"identity_reason\":\"not_needed\"}"), HL_ERR_BAD_FIELD, "v1", "consent_asked"},
	{"referral identity as bool", B("{\"type\":\"referral.create\",\"id\":\"v1\",\"escalation\":3,\"kind\":\"police\",\"legal_basis\":\"consent\",\"urgency\":\"urgent\",\"consent_asked\":0,\"identity_included\":false,\"identity_reason\":\"not_needed\"}"), HL_ERR_BAD_FIELD, "v1", "identity_included"},
	{"referral sealed without sealed_to", B("{\"type\":\"referral.create\",\"id\":\"v1\",\"escalation\":3,\"kind\":\"police\",\"legal_basis\":\"consent\",\"urgency\":\"urgent\",\"consent_asked\":0,\"identity_included\":0,\"identity_reason\":\"not_needed\",\"sealed\":\"AAAA\"}"), HL_ERR_MISSING_FIELD, "v1", "sealed_to"},
	{"referral sealed not base64url", B("{\"type\":\"referral.create\",\"id\":\"v1\",\"escalation\":3,\"kind\":\"police\",\"legal_basis\":\"consent\",\"urgency\":\"urgent\",\"consent_asked\":0,\"identity_included\":0,\"identity_reason\":\"not_needed\",\"sealed\":\"AA+A\",\"sealed_to\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"), HL_ERR_BAD_FIELD, "v1", "sealed"},
	{"referral digest short", B("{\"type\":\"referral.update\",\"id\":\"v1\",\"referral\":3,\"revision\":1,\"legal_basis\":\"consent\",\"urgency\":\"urgent\",\"consent_asked\":0,\"identity_included\":0,\"identity_reason\":\"not_needed\",\"bundle_digest\":\"AAAA\"}"), HL_ERR_BAD_FIELD, "v1", "bundle_digest"},
	{"referral approve no revision", B("{\"type\":\"referral.approve\",\"id\":\"v1\",\"referral\":3}"), HL_ERR_MISSING_FIELD, "v1", "revision"},
	{"referral download offset negative", B("{\"type\":\"referral.download\",\"id\":\"v1\",\"referral\":3,\"offset\":-1}"), HL_ERR_BAD_FIELD, "v1", "offset"},
	{"referral get unknown", B("{\"type\":\"referral.get\",\"id\":\"v1\",\"referral\":3,\"sealed\":\"AA\"}"), HL_ERR_UNKNOWN_FIELD, "v1", "sealed"},
	{"material no conversation", B("{\"type\":\"evidence.material\",\"id\":\"v1\"}"), HL_ERR_MISSING_FIELD, "v1", "conversation"},
	{"material bundle", B("{\"type\":\"evidence.material\",\"id\":\"v1\",\"conversation\":\"4\",\"bundle\":\"{}\"}"), HL_ERR_UNKNOWN_FIELD, "v1", "bundle"},
	{"evidence unknown field", B("{\"type\":\"evidence.sign\",\"id\":\"v1\",\"conversation\":\"4\",\"bundle\":\"{}\",\"sig\":\"AA\"}"), HL_ERR_UNKNOWN_FIELD, "v1", "sig"},
	{"list takes no fields", B("{\"type\":\"escalation.list\",\"id\":\"e4\",\"escalation\":1}"), HL_ERR_UNKNOWN_FIELD, "e4", "escalation"},
	{"wrap escalation negative", B("{\"type\":\"key.wrap\",\"id\":\"w1\",\"sealed\":\"AA\",\"sig\":\"" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" "\",\"escalation\":-1}"), HL_ERR_BAD_FIELD, "w1", "escalation"},
	/* hello fields. */
	{"hello version missing", B(H("")), HL_ERR_MISSING_FIELD, "h1", "version"},
	{"hello version string", B(H(",\"version\":\"1\"")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version real", B(H(",\"version\":1.0")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version exponent", B(H(",\"version\":1e0")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version true", B(H(",\"version\":true")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version null", B(H(",\"version\":null")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version array", B(H(",\"version\":[1]")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version 0", B(H(",\"version\":0")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version -1", B(H(",\"version\":-1")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version 1001", B(H(",\"version\":1001")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version int64 max", B(H(",\"version\":9223372036854775807")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello version int64 min", B(H(",\"version\":-9223372036854775808")), HL_ERR_BAD_FIELD, "h1", "version"},
	{"hello client empty", B(H(",\"version\":1,\"client\":\"\"")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client number", B(H(",\"version\":1,\"client\":5")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client null", B(H(",\"version\":1,\"client\":null")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client non-ASCII", B(H(",\"version\":1,\"client\":\"caf\\u00e9\"")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client tab", B(H(",\"version\":1,\"client\":\"a\\tb\"")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client DEL", B(H(",\"version\":1,\"client\":\"a\\u007f\"")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello client 65 bytes", B(H(",\"version\":1,\"client\":\"" "0123456789012345678901234567890123456789012345678901234567890123" "4\"")), HL_ERR_BAD_FIELD, "h1", "client"},
	{"hello first bad field wins", B(H(",\"client\":\"\",\"version\":0")), HL_ERR_BAD_FIELD, "h1", "version"},
	/* ping fields. */
	{"ping data number", B(P(",\"data\":1")), HL_ERR_BAD_FIELD, "1", "data"},
	{"ping data object", B(P(",\"data\":{}")), HL_ERR_BAD_FIELD, "1", "data"},
	{"ping data null", B(P(",\"data\":null")), HL_ERR_BAD_FIELD, "1", "data"},
	{"ping data 65 bytes", B(P(",\"data\":\"" "0123456789012345678901234567890123456789012345678901234567890123" "4\"")), HL_ERR_BAD_FIELD, "1", "data"},
	{"ping data 66 bytes as 33 e-acute", B(P(",\"data\":\"" "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" "\"")), HL_ERR_BAD_FIELD, "1", "data"},
	/* Nesting. Depth 16 is allowed; 17 is not. */
	{"depth 16 reaches field check", B(P(",\"data\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]")), HL_ERR_BAD_FIELD, "1", "data"},
	{"depth 17 rejected", B(P(",\"data\":[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]")), HL_ERR_TOO_DEEP, "", ""},
	{"depth 17 of objects", B(P(",\"data\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}}}}}}}}")), HL_ERR_TOO_DEEP, "", ""},
	{"depth checked before syntax", B("[[[[[[[[[[[[[[[[[ garbage"), HL_ERR_TOO_DEEP, "", ""},
	{"depth checked before UTF-8", B("\xff[[[[[[[[[[[[[[[[["), HL_ERR_TOO_DEEP, "", ""},
	{"closers do not go below zero", B("]]]]]]]]]]{{{{{{{{{{{{{{{{{"), HL_ERR_TOO_DEEP, "", ""},
	{"stray closer then shallow", B("] {}"), HL_ERR_BAD_JSON, "", ""},
};

static void test_decode_bad_vectors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < HL_ARRAY_LEN(bad_vecs); i++) {
		const struct bad_vec *v = &bad_vecs[i];
		struct hl_msg m;
		struct hl_proto_error e;
		int rc;

		print_message("  vector: %s\n", v->name);
		memset(&m, 0xa5, sizeof(m));
		rc = hl_proto_decode(v->in, v->len, MAX, &m, &e);
		assert_int_equal(rc, HL_EINVAL);
		assert_string_equal(hl_err_code_name(e.code),
				    hl_err_code_name(v->code));
		assert_string_equal(e.id, v->id);
		assert_string_equal(e.field, v->field);
		assert_true(e.message[0] != '\0');
		/* On failure out is zeroed and owns nothing. */
		assert_null(m.root);
		assert_null(m.id);
		hl_msg_release(&m);
	}
}

/* The message never quotes the client's input, nor does field except for
 * an unknown key of the safe charset (the client's own key name). */
static void test_error_message_does_not_echo_input(void **state)
{
	static const char *const ins[] = {
		"{\"type\":\"SECRETWORD\",\"id\":\"1\"}",
		"{\"type\":\"ping\",\"id\":\"1\",\"SECRETWORD\":1}",
		"{\"type\":\"ping\",\"id\":\"1\",\"data\":SECRETWORD}",
		"{\"type\":\"ping\",\"id\":\"1\",\"data\":\"SECRETWORD"
		"SECRETWORDSECRETWORDSECRETWORDSECRETWORDSECRETWORDSECRETWORD\"}",
		"{\"type\":\"hello\",\"id\":\"1\",\"version\":1,"
		"\"client\":\"SECRETWORD\\n\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < HL_ARRAY_LEN(ins); i++) {
		struct hl_msg m;
		struct hl_proto_error e;

		assert_int_equal(hl_proto_decode(ins[i], strlen(ins[i]), MAX,
						 &m, &e),
				 HL_EINVAL);
		assert_null(strstr(e.message, "SECRET"));
		if (e.code == HL_ERR_UNKNOWN_FIELD)
			assert_string_equal(e.field, "SECRETWORD");
		else
			assert_null(strstr(e.field, "SECRET"));
	}
}

/* Exact human texts: they say which rule failed, naming spec fields only. */
static void test_error_messages(void **state)
{
	static const struct {
		const char *in;
		const char *message;
	} vecs[] = {
		{H(",\"version\":1.0"), "version must be an integer"},
		{H(",\"version\":5.5"), "version must be an integer"},
		{H(",\"version\":false"), "version must be an integer"},
		{H(",\"version\":0"), "version must be from 1 to 1000"},
		{H(""), "version is required"},
		{H(",\"version\":1,\"client\":\"\""), "client must be 1 to 64 bytes long"},
		{H(",\"version\":1,\"client\":\"\\u00e9\""), "client has characters that are not allowed"},
		{H(",\"version\":1,\"client\":1"), "client must be a string"},
		{P(",\"zz\":1"), "unknown field for ping"},
		{"{\"id\":\"1\"}", "type is missing"},
		{"{\"type\":2,\"id\":\"1\"}", "type must be a string"},
		{"{\"type\":\"ping\"}", "id is missing"},
		{"{\"type\":\"ping\",\"id\":7}", "id must be a string"},
		{"{\"type\":\"ping\",\"id\":\"\"}", "id must be 1-64 characters of A-Z a-z 0-9 . _ : -"},
		{"[[[[[[[[[[[[[[[[[", "frame nests deeper than 16 levels"},
		{"{\"a\":1,\"a\":1}", "duplicate object key (near byte 10)"},
		{"{\"a\":1} x", "frame is not valid JSON (near byte 9)"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < HL_ARRAY_LEN(vecs); i++) {
		struct hl_msg m;
		struct hl_proto_error e;

		assert_int_equal(hl_proto_decode(vecs[i].in, strlen(vecs[i].in),
						 MAX, &m, &e),
				 HL_EINVAL);
		assert_string_equal(e.message, vecs[i].message);
	}
}

/* ---- size limit ---------------------------------------------------- */

static void test_too_large(void **state)
{
	const char frame[] = "{\"type\":\"ping\",\"id\":\"1\"}";
	size_t n = sizeof(frame) - 1;
	struct hl_msg m;
	struct hl_proto_error e;
	char *big;

	(void)state;
	/* Exactly at the limit decodes; one byte over does not. */
	assert_int_equal(hl_proto_decode(frame, n, n, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_PING);
	hl_msg_release(&m);
	assert_int_equal(hl_proto_decode(frame, n, n - 1, &m, &e), HL_EINVAL);
	assert_int_equal(e.code, HL_ERR_TOO_LARGE);
	assert_string_equal(e.id, "");

	/* Oversize garbage is rejected on size alone, before parsing. */
	big = malloc(MAX + 1);
	assert_non_null(big);
	memset(big, '[', MAX + 1);
	assert_int_equal(hl_proto_decode(big, MAX + 1, MAX, &m, &e),
			 HL_EINVAL);
	assert_int_equal(e.code, HL_ERR_TOO_LARGE);
	assert_null(m.root);
	free(big);
}

/* At most HL_PROTO_MAX_COMMAS commas between members and elements, all
 * levels together, counted before parsing; commas inside strings do not
 * count, and nesting is judged first. */
static void test_too_many_members(void **state)
{
	char frame[8192];
	struct hl_msg m;
	struct hl_proto_error e;
	size_t n;

	(void)state;
	for (int extra = HL_PROTO_MAX_COMMAS - 2; extra <= HL_PROTO_MAX_COMMAS;
	     extra++) {
		/* 2 commas of type/id/first key, then extra more. */
		n = (size_t)snprintf(frame, sizeof(frame),
				     "{\"type\":\"ping\",\"id\":\"q\",\"k0\":0");
		for (int i = 1; i <= extra - 1; i++)
			n += (size_t)snprintf(frame + n, sizeof(frame) - n,
					      ",\"k%d\":0", i);
		n += (size_t)snprintf(frame + n, sizeof(frame) - n, "}");
		assert_int_equal(hl_proto_decode(frame, n, MAX, &m, &e), HL_EINVAL);
		/* 2 + (extra - 1) commas: at the cap the keys are parsed (and
		 * refused as unknown), one more and the frame is not parsed. */
		assert_string_equal(hl_err_code_name(e.code),
				    extra + 1 <= HL_PROTO_MAX_COMMAS ? "unknown_field"
								      : "too_large");
		if (e.code == HL_ERR_TOO_LARGE)
			assert_string_equal(e.id, "");
	}
	/* Commas inside a string are text. */
	n = (size_t)snprintf(frame, sizeof(frame), "{\"type\":\"ping\",\"id\":\"c\",\"x\":\"");
	memset(frame + n, ',', 1000);
	n += 1000;
	n += (size_t)snprintf(frame + n, sizeof(frame) - n, "\"}");
	assert_int_equal(hl_proto_decode(frame, n, MAX, &m, &e), HL_EINVAL);
	assert_string_equal(hl_err_code_name(e.code), "unknown_field");
	/* Too deep wins over too many. */
	n = 0;
	for (int i = 0; i < 20; i++)
		frame[n++] = '[';
	memset(frame + n, ',', 400);
	n += 400;
	assert_int_equal(hl_proto_decode(frame, n, MAX, &m, &e), HL_EINVAL);
	assert_string_equal(hl_err_code_name(e.code), "too_deep");
}

/* ---- hostile shapes ------------------------------------------------- */

/* Builds n copies of unit followed by tail into a malloc'd buffer. */
static char *repeat(const char *unit, size_t n, const char *tail,
		    size_t *len)
{
	size_t ul = strlen(unit), tl = strlen(tail), i;
	char *p = malloc(ul * n + tl + 1);

	assert_non_null(p);
	for (i = 0; i < n; i++)
		memcpy(p + i * ul, unit, ul);
	memcpy(p + n * ul, tail, tl + 1);
	*len = ul * n + tl;
	return p;
}

static void expect_code(const char *buf, size_t len, size_t max_len,
			enum hl_err_code code)
{
	struct hl_msg m;
	struct hl_proto_error e;

	assert_int_equal(hl_proto_decode(buf, len, max_len, &m, &e),
			 HL_EINVAL);
	assert_string_equal(hl_err_code_name(e.code), hl_err_code_name(code));
	assert_null(m.root);
}

static void test_deep_nesting_100k(void **state)
{
	size_t len;
	char *p;
	clock_t t0 = clock();

	(void)state;
	/* No size limit, so only the depth pre-scan stands in the way. */
	p = repeat("[", 100000, "", &len);
	expect_code(p, len, SIZE_MAX, HL_ERR_TOO_DEEP);
	free(p);

	p = repeat("{\"a\":", 100000, "1", &len);
	expect_code(p, len, SIZE_MAX, HL_ERR_TOO_DEEP);
	free(p);

	/* Well-formed and closed: still too deep. */
	{
		char *q = malloc(200001);

		assert_non_null(q);
		memset(q, '[', 100000);
		memset(q + 100000, ']', 100000);
		expect_code(q, 200000, SIZE_MAX, HL_ERR_TOO_DEEP);
		free(q);
	}

	/* A long but shallow frame is scanned fully: 300,000 elements are
	 * too many to parse; 200 are parsed (and not an object). */
	p = repeat(",[]", 300000, "]", &len);
	p[0] = '[';  /* "[[],[],...,[]]" */
	expect_code(p, len, SIZE_MAX, HL_ERR_TOO_LARGE);
	free(p);
	p = repeat(",[]", 200, "]", &len);
	p[0] = '[';
	expect_code(p, len, SIZE_MAX, HL_ERR_NOT_OBJECT);
	free(p);

	/* Generous bound: O(n) work is milliseconds even under sanitizers. */
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0);
}

/* Brackets inside strings, escaped quotes included, do not count. */
static void test_depth_ignores_strings(void **state)
{
	static const char in[] =
		"{\"type\":\"ping\",\"id\":\"1\",\"data\":"
		"\"\\\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{\\\\\"}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(in, sizeof(in) - 1, MAX, &m, &e), 0);
	assert_string_equal(m.u.ping.data,
			    "\"[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{\\");
	hl_msg_release(&m);
}

static void test_many_keys(void **state)
{
	struct hl_msg m;
	struct hl_proto_error e;
	char *buf = malloc(MAX);
	size_t len, i, keys = 0;

	(void)state;
	assert_non_null(buf);
	/* ~60 KB of small distinct keys after a valid header: refused by
	 * their number before parsing. */
	len = (size_t)sprintf(buf, "{\"type\":\"ping\",\"id\":\"k\"");
	for (i = 0; len < 60000; i++, keys++)
		len += (size_t)sprintf(buf + len, ",\"k%zu\":0", i);
	buf[len++] = '}';
	assert_true(keys > 5000);
	expect_code(buf, len, MAX, HL_ERR_TOO_LARGE);

	/* As many as may be parsed: the first unknown one is named. */
	len = (size_t)sprintf(buf, "{\"type\":\"ping\",\"id\":\"k\"");
	for (i = 0; i < HL_PROTO_MAX_COMMAS - 2; i++)
		len += (size_t)sprintf(buf + len, ",\"k%zu\":0", i);
	buf[len++] = '}';
	assert_int_equal(hl_proto_decode(buf, len, MAX, &m, &e), HL_EINVAL);
	assert_int_equal(e.code, HL_ERR_UNKNOWN_FIELD);
	assert_string_equal(e.field, "k0");  /* the first, in frame order */
	assert_string_equal(e.id, "k");

	/* The same with a duplicate as the very last key (one key fewer, to
	 * stay within the count). */
	len = (size_t)sprintf(buf, "{\"type\":\"ping\",\"id\":\"k\"");
	for (i = 0; i < HL_PROTO_MAX_COMMAS - 3; i++)
		len += (size_t)sprintf(buf + len, ",\"k%zu\":0", i);
	len += (size_t)sprintf(buf + len, ",\"k7\":0}");
	expect_code(buf, len, MAX, HL_ERR_DUPLICATE_KEY);

	/* Cut before the duplicate and renamed "type": the type is judged
	 * before any field. */
	buf[len - 8] = '}';
	memcpy(buf, "{\"tipe\"", 7);
	expect_code(buf, len - 7, MAX, HL_ERR_BAD_TYPE);
	free(buf);
}

/* ---- decode success vectors ----------------------------------------- */

static void test_decode_hello(void **state)
{
	static const char in[] = "{\"type\":\"hello\",\"id\":\"1\",\"version\":1,"
				 "\"client\":\"helpline-web/0.1\"}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(in, sizeof(in) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_HELLO);
	assert_string_equal(m.id, "1");
	assert_int_equal(m.u.hello.version, 1);
	assert_string_equal(m.u.hello.client, "helpline-web/0.1");
	assert_non_null(m.root);
	hl_msg_release(&m);
	assert_null(m.root);
	hl_msg_release(&m); /* twice is harmless */
}

static void test_decode_hello_edges(void **state)
{
	/* Key order is free; whitespace allowed; version 1000 and 64-byte
	 * printable client accepted; client absent -> NULL. */
	static const char a[] =
		" \r\n\t{ \"client\" : \" ~!\\\"#$%&'()*+,-./0123456789:;<=>?@"
		"ABCDEFGHIJKLMNOPQRSTUVWX[\\\\]^_`\" , \"version\":1000,"
		"\"id\":\"" ID64 "\",\"type\":\"hello\"}\n";
	static const char b[] = "{\"type\":\"hello\",\"id\":\"z\",\"version\":2}";
	static const char c[] = "{\"type\":\"hello\",\"id\":\"z\",\"version\":-0}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(a, sizeof(a) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_HELLO);
	assert_int_equal(strlen(m.id), HL_PROTO_ID_MAX);
	assert_string_equal(m.id, ID64);
	assert_int_equal(m.u.hello.version, 1000);
	assert_int_equal(strlen(m.u.hello.client), 64);
	assert_string_equal(m.u.hello.client,
			    " ~!\"#$%&'()*+,-./0123456789:;<=>?@"
			    "ABCDEFGHIJKLMNOPQRSTUVWX[\\]^_`");
	hl_msg_release(&m);

	/* The codec accepts any version in range; the server checks == 1. */
	assert_int_equal(hl_proto_decode(b, sizeof(b) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.u.hello.version, 2);
	assert_null(m.u.hello.client);
	hl_msg_release(&m);

	/* -0 is the integer 0: out of range. */
	assert_int_equal(hl_proto_decode(c, sizeof(c) - 1, MAX, &m, &e),
			 HL_EINVAL);
	assert_int_equal(e.code, HL_ERR_BAD_FIELD);
	assert_string_equal(e.field, "version");
}

static void test_decode_ping(void **state)
{
	static const char none[] = "{\"type\":\"ping\",\"id\":\"p-1\"}";
	static const char empty[] =
		"{\"id\":\"p.2\",\"data\":\"\",\"type\":\"ping\"}";
	/* 32 x U+00E9 = 64 bytes; an escaped surrogate pair; escapes. */
	static const char utf[] =
		"{\"type\":\"ping\",\"id\":\"p:3\",\"data\":\""
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		"\"}";
	static const char esc[] =
		"{\"type\":\"ping\",\"id\":\"p_4\","
		"\"data\":\"\\ud83d\\ude00 \\u00e9\\n\\t\\\"\\/<b>\"}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(none, sizeof(none) - 1, MAX, &m, &e),
			 0);
	assert_int_equal(m.type, HL_MSG_PING);
	assert_string_equal(m.id, "p-1");
	assert_null(m.u.ping.data);
	hl_msg_release(&m);

	assert_int_equal(
		hl_proto_decode(empty, sizeof(empty) - 1, MAX, &m, &e), 0);
	assert_string_equal(m.id, "p.2");
	assert_non_null(m.u.ping.data);
	assert_string_equal(m.u.ping.data, "");
	hl_msg_release(&m);

	assert_int_equal(hl_proto_decode(utf, sizeof(utf) - 1, MAX, &m, &e),
			 0);
	assert_int_equal(strlen(m.u.ping.data), 64);
	assert_memory_equal(m.u.ping.data, "\xc3\xa9\xc3\xa9", 4);
	hl_msg_release(&m);

	assert_int_equal(hl_proto_decode(esc, sizeof(esc) - 1, MAX, &m, &e),
			 0);
	assert_string_equal(m.id, "p_4");
	assert_string_equal(m.u.ping.data,
			    "\xf0\x9f\x98\x80 \xc3\xa9\n\t\"/<b>");
	hl_msg_release(&m);
}

/* staff.colleagues: no fields; type and id in any order. */
static void test_decode_colleagues(void **state)
{
	static const char a[] = "{\"type\":\"staff.colleagues\",\"id\":\"c-1\"}";
	static const char b[] = " {\"id\":\"c-2\" , \"type\":\"staff.colleagues\"} ";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(a, sizeof(a) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_STAFF_COLLEAGUES);
	assert_string_equal(m.id, "c-1");
	hl_msg_release(&m);
	assert_int_equal(hl_proto_decode(b, sizeof(b) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_STAFF_COLLEAGUES);
	assert_string_equal(m.id, "c-2");
	hl_msg_release(&m);
}

/* escalation.raise and decide: every field lands where the handler reads it. */
static void test_decode_escalation(void **state)
{
	static const char a[] = "{\"type\":\"escalation.raise\",\"id\":\"r\",\"conversation\":\"12\",\"reason\":\"sextortion_threat\",\"urgency\":\"immediate\",\"note\":\"AQID\"}";
	static const char b[] = "{\"type\":\"escalation.decide\",\"id\":\"d\",\"escalation\":7,\"decision\":\"police_referral\"}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(a, sizeof(a) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_ESCALATION_RAISE);
	assert_string_equal(m.u.esc.conversation, "12");
	assert_string_equal(m.u.esc.reason, "sextortion_threat");
	assert_string_equal(m.u.esc.urgency, "immediate");
	assert_string_equal(m.u.esc.note, "AQID");
	hl_msg_release(&m);
	assert_int_equal(hl_proto_decode(b, sizeof(b) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_ESCALATION_DECIDE);
	assert_int_equal(m.u.esc.escalation, 7);
	assert_string_equal(m.u.esc.decision, "police_referral");
	assert_null(m.u.esc.reasons);
	hl_msg_release(&m);
}

/* evidence.sign: the bundle arrives as the file's text, escapes undone. */
static void test_decode_evidence(void **state)
{
	static const char a[] = "{\"type\":\"evidence.sign\",\"id\":\"s\",\"conversation\":\"12\",\"bundle\":\"{\\\"body\\\":{\\\"note\\\":\\\"\\\\n \\u00fc\\\"}}\\n\"}";
	struct hl_msg m;
	struct hl_proto_error e;

	(void)state;
	assert_int_equal(hl_proto_decode(a, sizeof(a) - 1, MAX, &m, &e), 0);
	assert_int_equal(m.type, HL_MSG_EVIDENCE_SIGN);
	assert_string_equal(m.u.evidence.conversation, "12");
	assert_string_equal(m.u.evidence.bundle,
			    "{\"body\":{\"note\":\"\\n \xc3\xbc\"}}\n");
	hl_msg_release(&m);
}

/* The buffer is used by length only: bytes after len are never read. */
static void test_decode_uses_len_only(void **state)
{
	static const char in[] = "{\"type\":\"ping\",\"id\":\"1\"}GARBAGE";
	struct hl_msg m;
	struct hl_proto_error e;
	char *exact;
	size_t n = strlen("{\"type\":\"ping\",\"id\":\"1\"}");

	(void)state;
	assert_int_equal(hl_proto_decode(in, n, MAX, &m, &e), 0);
	assert_string_equal(m.id, "1");
	hl_msg_release(&m);

	/* A heap copy with no NUL after it: ASan catches any over-read. */
	exact = malloc(n);
	assert_non_null(exact);
	memcpy(exact, in, n);
	assert_int_equal(hl_proto_decode(exact, n, MAX, &m, &e), 0);
	hl_msg_release(&m);
	exact[n - 1] = '\\';
	assert_int_equal(hl_proto_decode(exact, n, MAX, &m, &e), HL_EINVAL);
	assert_int_equal(e.code, HL_ERR_BAD_JSON);
	free(exact);
}

/* ---- names ---------------------------------------------------------- */

static void test_names(void **state)
{
	static const char *const want[HL_ERR__COUNT] = {
		[HL_ERR_BAD_JSON] = "bad_json",
		[HL_ERR_BAD_UTF8] = "bad_utf8",
		[HL_ERR_TOO_LARGE] = "too_large",
		[HL_ERR_TOO_DEEP] = "too_deep",
		[HL_ERR_NOT_OBJECT] = "not_object",
		[HL_ERR_DUPLICATE_KEY] = "duplicate_key",
		[HL_ERR_BAD_TYPE] = "bad_type",
		[HL_ERR_UNKNOWN_TYPE] = "unknown_type",
		[HL_ERR_BAD_ID] = "bad_id",
		[HL_ERR_MISSING_FIELD] = "missing_field",
		[HL_ERR_BAD_FIELD] = "bad_field",
		[HL_ERR_UNKNOWN_FIELD] = "unknown_field",
		[HL_ERR_FORBIDDEN] = "forbidden",
		[HL_ERR_BAD_STATE] = "bad_state",
		[HL_ERR_RATE_LIMITED] = "rate_limited",
		[HL_ERR_STORE_FAILED] = "store_failed",
		[HL_ERR_BUSY] = "busy",
		[HL_ERR_SHUTTING_DOWN] = "shutting_down",
		[HL_ERR_INTERNAL] = "internal",
		[HL_ERR_AUTH_FAILED] = "auth_failed",
		[HL_ERR_AUTH_REQUIRED] = "auth_required",
		[HL_ERR_REAUTH_REQUIRED] = "reauth_required",
		[HL_ERR_NOT_FOUND] = "not_found",
		[HL_ERR_CONFLICT] = "conflict",
		[HL_ERR_CLOSED] = "closed",
		[HL_ERR_EXPIRED] = "expired",
		[HL_ERR_HANDOVER_REQUIRED] = "handover_required",
		[HL_ERR_BAD_ENVELOPE] = "bad_envelope",
		[HL_ERR_STALE_EPOCH] = "stale_epoch",
		[HL_ERR_BAD_COUNTER] = "bad_counter",
		[HL_ERR_BAD_HANDSHAKE] = "bad_handshake",
	};
	static const char *const types[HL_MSG__COUNT] = {
		[HL_MSG_HELLO] = "hello",
		[HL_MSG_PING] = "ping",
		[HL_MSG_AUTH_LOGIN] = "auth.login",
		[HL_MSG_AUTH_RESUME] = "auth.resume",
		[HL_MSG_AUTH_LOGOUT] = "auth.logout",
		[HL_MSG_AUTH_REAUTH] = "auth.reauth",
		[HL_MSG_AUTH_ENROL_BEGIN] = "auth.enrol_begin",
		[HL_MSG_AUTH_ENROL_FINISH] = "auth.enrol_finish",
		[HL_MSG_PRESENCE_SET] = "presence.set",
		[HL_MSG_STAFF_CREATE] = "staff.create",
		[HL_MSG_STAFF_LIST] = "staff.list",
		[HL_MSG_STAFF_SET_STATE] = "staff.set_state",
		[HL_MSG_STAFF_RESET] = "staff.reset",
		[HL_MSG_STAFF_REVOKE] = "staff.revoke_sessions",
		[HL_MSG_STAFF_COLLEAGUES] = "staff.colleagues",
		[HL_MSG_CONTACT_START] = "contact.start",
		[HL_MSG_CONTACT_RESUME] = "contact.resume",
		[HL_MSG_CONTACT_LEAVE] = "contact.leave",
		[HL_MSG_QUEUE_STATS] = "queue.stats",
		[HL_MSG_QUEUE_TAKE] = "queue.take",
		[HL_MSG_CHAT_SEND] = "chat.send",
		[HL_MSG_CHAT_SYNC] = "chat.sync",
		[HL_MSG_CHAT_END] = "chat.end",
		[HL_MSG_CHAT_TYPING] = "chat.typing",
		[HL_MSG_CHAT_READ] = "chat.read",
		[HL_MSG_CHAT_NOTE] = "chat.note",
		[HL_MSG_CHAT_DELIVERED] = "chat.delivered",
		[HL_MSG_CHAT_TRANSFER] = "chat.transfer",
		[HL_MSG_CHAT_JOIN] = "chat.join",
		[HL_MSG_CHAT_TAG] = "chat.tag",
		[HL_MSG_CHAT_WRAPUP] = "chat.wrapup",
		[HL_MSG_OFFER_ACCEPT] = "offer.accept",
		[HL_MSG_OFFER_DECLINE] = "offer.decline",
		[HL_MSG_QUEUE_LIST] = "queue.list",
		[HL_MSG_QUEUE_PICK] = "queue.pick",
		[HL_MSG_QUEUE_WATCH] = "queue.watch",
		[HL_MSG_SHIFT_START] = "shift.start",
		[HL_MSG_SHIFT_END] = "shift.end",
		[HL_MSG_LINE_STATUS] = "line.status",
		[HL_MSG_STATS_GET] = "stats.get",
		[HL_MSG_INBOX_POST] = "inbox.post",
		[HL_MSG_INBOX_CHALLENGE] = "inbox.challenge",
		[HL_MSG_INBOX_FETCH] = "inbox.fetch",
		[HL_MSG_INBOX_LIST] = "inbox.list",
		[HL_MSG_INBOX_OPEN] = "inbox.open",
		[HL_MSG_INBOX_REPLY] = "inbox.reply",
		[HL_MSG_E2E_HELLO] = "e2e.hello",
		[HL_MSG_E2E_ACCEPT] = "e2e.accept",
		[HL_MSG_E2E_ORG] = "e2e.org",
		[HL_MSG_DEVICE_REGISTER] = "device.register",
		[HL_MSG_DEVICE_LIST] = "device.list",
		[HL_MSG_DEVICE_CERTIFY] = "device.certify",
		[HL_MSG_DEVICE_REVOKE] = "device.revoke",
		[HL_MSG_DEVICE_REVOCATIONS] = "device.revocations",
		[HL_MSG_KEY_WRAP] = "key.wrap",
		[HL_MSG_KEY_WRAPS] = "key.wraps",
		[HL_MSG_CONTACT_SET_RETURN] = "contact.set_return",
		[HL_MSG_CONTACT_RETURN] = "contact.return",
		[HL_MSG_ESCALATION_RAISE] = "escalation.raise",
		[HL_MSG_ESCALATION_LIST] = "escalation.list",
		[HL_MSG_ESCALATION_CLAIM] = "escalation.claim",
		[HL_MSG_ESCALATION_DECIDE] = "escalation.decide",
		[HL_MSG_EVIDENCE_SIGN] = "evidence.sign",
		[HL_MSG_EVIDENCE_MATERIAL] = "evidence.material",
		[HL_MSG_REFERRAL_CREATE] = "referral.create",
		[HL_MSG_REFERRAL_UPDATE] = "referral.update",
		[HL_MSG_REFERRAL_APPROVE] = "referral.approve",
		[HL_MSG_REFERRAL_LIST] = "referral.list",
		[HL_MSG_REFERRAL_GET] = "referral.get",
		[HL_MSG_REFERRAL_RETRY] = "referral.retry",
		[HL_MSG_REFERRAL_DOWNLOAD] = "referral.download",
	};
	int i;

	(void)state;
	for (i = 0; i < HL_ERR__COUNT; i++) {
		assert_non_null(want[i]);
		assert_string_equal(hl_err_code_name((enum hl_err_code)i),
				    want[i]);
	}
	assert_string_equal(hl_err_code_name(HL_ERR__COUNT), "internal");
	assert_string_equal(hl_err_code_name((enum hl_err_code)-1),
			    "internal");
	for (i = 0; i < HL_MSG__COUNT; i++) {
		assert_non_null(types[i]);
		assert_string_equal(hl_msg_type_name((enum hl_msg_type)i),
				    types[i]);
	}
	assert_string_equal(hl_msg_type_name(HL_MSG__COUNT), "unknown");
	assert_string_equal(hl_msg_type_name((enum hl_msg_type)-1),
			    "unknown");
}

/* ---- encoding ------------------------------------------------------- */

/* Encodes obj with headroom, checks the exact bytes, releases obj. */
static void expect_encoding(json_t *obj, size_t headroom, const char *want)
{
	unsigned char *out = NULL;
	size_t len = 0;

	assert_non_null(obj);
	assert_int_equal(hl_proto_encode(obj, headroom, &out, &len), 0);
	assert_non_null(out);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out + headroom, want, len);
	assert_int_equal(out[headroom + len], '\0');
	free(out);
	json_decref(obj);
}

static void test_encode_reply(void **state)
{
	(void)state;
	expect_encoding(hl_proto_reply("pong", "7"), 0,
			"{\"type\":\"pong\",\"id\":\"7\"}");
	expect_encoding(hl_proto_reply("pong", NULL), 0, "{\"type\":\"pong\"}");
	expect_encoding(hl_proto_reply("pong", ""), 16, "{\"type\":\"pong\"}");
	/* LWS_PRE-sized headroom. */
	expect_encoding(hl_proto_reply("welcome", "a:b"), 16,
			"{\"type\":\"welcome\",\"id\":\"a:b\"}");
	/* Invalid UTF-8 never makes it into an object. */
	assert_null(hl_proto_reply("pong\xff", "1"));
	assert_null(hl_proto_reply("pong", "\xc0\x80"));
}

static void test_encode_insertion_order(void **state)
{
	json_t *o = hl_proto_reply("welcome", "1");

	(void)state;
	assert_non_null(o);
	assert_int_equal(json_object_set_new(o, "protocol",
					     json_string("helpline.contact.v1")),
			 0);
	assert_int_equal(json_object_set_new(o, "version", json_integer(1)), 0);
	assert_int_equal(json_object_set_new(o, "max_message",
					     json_integer(65536)),
			 0);
	assert_int_equal(json_object_set_new(o, "ok", json_true()), 0);
	assert_int_equal(json_object_set_new(o, "none", json_null()), 0);
	assert_int_equal(json_object_set_new(o, "a", json_pack("[i,s]", -5, "")),
			 0);
	expect_encoding(o, 8,
			"{\"type\":\"welcome\",\"id\":\"1\",\"protocol\":"
			"\"helpline.contact.v1\",\"version\":1,\"max_message\":"
			"65536,\"ok\":true,\"none\":null,\"a\":[-5,\"\"]}");
}

static void test_encode_error_reply(void **state)
{
	(void)state;
	expect_encoding(
		hl_proto_error_reply("3", HL_ERR_BAD_FIELD,
				     "unsupported protocol version; this server speaks 1",
				     "version"),
		16,
		"{\"type\":\"error\",\"id\":\"3\",\"code\":\"bad_field\","
		"\"message\":\"unsupported protocol version; this server "
		"speaks 1\",\"field\":\"version\"}");
	/* No id, no field. */
	expect_encoding(hl_proto_error_reply(NULL, HL_ERR_BAD_JSON,
					     "frame is not valid JSON", ""),
			0,
			"{\"type\":\"error\",\"code\":\"bad_json\","
			"\"message\":\"frame is not valid JSON\"}");
	expect_encoding(hl_proto_error_reply("", HL_ERR_BUSY, "later", NULL), 0,
			"{\"type\":\"error\",\"code\":\"busy\","
			"\"message\":\"later\"}");
	/* NULL message: the code's generic text. */
	expect_encoding(hl_proto_error_reply("9", HL_ERR_RATE_LIMITED, NULL,
					     NULL),
			0,
			"{\"type\":\"error\",\"id\":\"9\",\"code\":"
			"\"rate_limited\",\"message\":\"too many requests; "
			"slow down\"}");
	/* Out-of-range code: sent as internal. */
	expect_encoding(hl_proto_error_reply("9", HL_ERR__COUNT, "x", NULL), 0,
			"{\"type\":\"error\",\"id\":\"9\",\"code\":\"internal\","
			"\"message\":\"x\"}");
}

/* Quotes, backslash, every control class and non-ASCII are escaped to
 * valid JSON; UTF-8 passes through unchanged; '/' is not escaped. */
static void test_encode_escaping(void **state)
{
	(void)state;
	expect_encoding(
		hl_proto_error_reply("1", HL_ERR_INTERNAL,
				     "q\"b\\s/n\nr\rt\tb\bf\f"
				     "\x01\x1f\x7f \xc3\xa9\xe2\x9c\x93"
				     "\xf0\x9f\x98\x80<script>",
				     NULL),
		4,
		"{\"type\":\"error\",\"id\":\"1\",\"code\":\"internal\","
		"\"message\":\"q\\\"b\\\\s/n\\nr\\rt\\tb\\bf\\f"
		"\\u0001\\u001F\x7f \xc3\xa9\xe2\x9c\x93"
		"\xf0\x9f\x98\x80<script>\"}");
}

static void test_encode_large_and_roundtrip(void **state)
{
	json_t *o = hl_proto_reply("pong", "big");
	char *s = malloc(100001);
	unsigned char *out = NULL;
	size_t len = 0, i;

	(void)state;
	assert_non_null(o);
	assert_non_null(s);
	for (i = 0; i < 100000; i++)
		s[i] = (char)('a' + i % 26);
	s[100000] = '\0';
	assert_int_equal(json_object_set_new(o, "data", json_string(s)), 0);
	/* Grows its buffer many times over the initial size. */
	assert_int_equal(hl_proto_encode(o, 16, &out, &len), 0);
	assert_int_equal(len, strlen("{\"type\":\"pong\",\"id\":\"big\",\"data\":\"\"}") + 100000);
	assert_memory_equal(out + 16, "{\"type\":\"pong\",\"id\":\"big\",\"data\":\"abc", 37);
	/* s[99999] is 'a' + 99999 % 26 = 'd'. */
	assert_memory_equal(out + 16 + len - 5, "bcd\"}", 5);
	assert_int_equal(out[16 + len], '\0');
	free(out);
	free(s);
	json_decref(o);

	/* A decoded ping's data echoed in a pong encodes back byte-exactly. */
	{
		static const char in[] = "{\"type\":\"ping\",\"id\":\"r\",\"data\":"
					 "\"\\u00e9\\\"\\n\\u0001\"}";
		struct hl_msg m;
		struct hl_proto_error e;
		json_t *pong;

		assert_int_equal(hl_proto_decode(in, sizeof(in) - 1, MAX, &m, &e),
				 0);
		pong = hl_proto_reply("pong", m.id);
		assert_non_null(pong);
		assert_int_equal(json_object_set(pong, "data",
						 json_object_get(m.root, "data")),
				 0);
		hl_msg_release(&m);
		expect_encoding(pong, 0,
				"{\"type\":\"pong\",\"id\":\"r\",\"data\":"
				"\"\xc3\xa9\\\"\\n\\u0001\"}");
	}
}

static void test_encode_rejects(void **state)
{
	static unsigned char sentinel[1];
	unsigned char *out = sentinel;
	size_t len = 99;
	json_t *arr = json_array();
	json_t *o = json_object();

	(void)state;
	assert_int_equal(hl_proto_encode(NULL, 0, &out, &len), HL_EINVAL);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_int_equal(hl_proto_encode(arr, 0, &out, &len), HL_EINVAL);
	assert_null(out);
	/* A string built without the UTF-8 check cannot be serialised. */
	assert_int_equal(json_object_set_new(o, "s",
					     json_stringn_nocheck("\xff", 1)),
			 0);
	assert_int_equal(hl_proto_encode(o, 16, &out, &len), HL_EINVAL);
	assert_null(out);
	json_decref(arr);
	json_decref(o);
}

/* hl_proto_parse (long strings set aside while jansson parses the rest)
 * gives exactly json_loadb's tree, key order included, or its error with
 * the same text and position, on frames built around long strings. */
static void check_parse_same(const char *frame, size_t len)
{
	json_error_t e1, e2;
	json_t *a = hl_proto_parse(frame, len, &e1);
	json_t *b = json_loadb(len ? frame : "", len,
			       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e2);

	if (!b) {
		assert_null(a);
		assert_string_equal(e1.text, e2.text);
		assert_int_equal(e1.position, e2.position);
		assert_int_equal(e1.line, e2.line);
		assert_int_equal(e1.column, e2.column);
		return;
	}
	assert_non_null(a);
	assert_true(json_equal(a, b));
	if (json_is_object(a)) {
		char *da = json_dumps(a, JSON_COMPACT), *db = json_dumps(b, JSON_COMPACT);

		assert_string_equal(da, db);
		free(da);
		free(db);
	}
	json_decref(a);
	json_decref(b);
}

static void test_parse_long_strings_same_as_jansson(void **state)
{
	static const char *const shapes[] = {
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"%s\"}",
		"{\"payload\":\"%s\",\"type\":\"chat.send\",\"id\":\"m1\"}",
		" \n{ \"payload\" : \"%s\" , \"id\":\"m1\" }\t",
		"{\"a\":\"%s\",\"b\":\"%s\",\"c\":[\"%s\"],\"d\":{\"e\":\"%s\"}}",
		"{\"payload\":\"%s\",\"payload\":\"%s\"}",             /* duplicate */
		"{\"payload\":\"%s\",\"x\":}",                          /* bad after */
		"{\"payload\":\"%s\",\"x\":1,}",
		"{\"payload\":\"%s\"",                                   /* unterminated */
		"{\"payload\":\"%s",
		"[\"%s\",\"%s\"]",                                       /* not an object */
		"\"%s\"",
		"{\"k\":[1,{\"z\":\"%s\"}],\"v\":\"%s\"}",
		"{\"%s\":\"%s\"}",                                       /* long key */
		"{\"p\":\"%s\",\"q\":\"%s\",\"r\":\"%s\",\"s\":\"%s\",\"t\":\"%s\","
		"\"u\":\"%s\",\"v\":\"%s\",\"w\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
		"{\"payload\":\"%s\"} trailing",
		"{\"payload\":\"%s\",\"n\":\"\\u0041\"}",               /* a backslash */
		"{\"payload\":\"%s\",\"n\":null,\"t\":true,\"f\":-1.5e3}",
	};
	/* Long string bodies: plain, with characters jansson must judge. */
	static const char *const fills[] = {"A", "-_09az", "caf\xc3\xa9", "\x01",
					    "\x7f", "\xff", "/", " "};
	char body[600], frame[8192];

	(void)state;
	for (size_t f = 0; f < sizeof(fills) / sizeof(fills[0]); f++)
		for (size_t blen = 100; blen <= 520; blen += 70) {
			size_t fl = strlen(fills[f]), k = 0;

			while (k + fl < blen) {
				memcpy(body + k, fills[f], fl);
				k += fl;
			}
			body[k] = '\0';
			for (size_t sh = 0; sh < sizeof(shapes) / sizeof(shapes[0]);
			     sh++) {
				int n;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
				n = snprintf(frame, sizeof(frame), shapes[sh], body,
					     body, body, body, body, body, body,
					     body, body, body);
#pragma GCC diagnostic pop
				assert_true(n > 0 && (size_t)n < sizeof(frame));
				check_parse_same(frame, (size_t)n);
				/* Every prefix of some frames, too. */
				if (sh == 0 && blen == 170)
					for (int cut = 0; cut < n; cut += 7)
						check_parse_same(frame, (size_t)cut);
			}
		}
}

static void assert_same_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_true(a == b);
	else
		assert_string_equal(a, b);
}

/* Decodes frame both ways (hl_proto_decode, which tries the flat fast
 * path first, and jansson alone) and checks they agree: the same result,
 * the same error (code, field, id, message), the same fields. Returns
 * whether the fast path took it. */
static bool check_decode_same(const char *frame, size_t len)
{
	struct hl_msg a, b;
	struct hl_proto_error ea, eb;
	int ra = hl_proto_decode(frame, len, 100000, &a, &ea);
	int rb = hl_proto_decode_json(frame, len, 100000, &b, &eb);
	bool flat = ra == 0 && a.flat != NULL;

	assert_int_equal(ra, rb);
	if (ra != 0) {
		assert_int_equal(ea.code, eb.code);
		assert_string_equal(ea.field, eb.field);
		assert_string_equal(ea.id, eb.id);
		assert_string_equal(ea.message, eb.message);
		assert_null(a.flat);
		assert_null(a.root);
		return false;
	}
	assert_int_equal(a.type, b.type);
	assert_string_equal(a.id, b.id);
	assert_non_null(b.root);
	assert_null(b.flat);
	if (flat) {
		assert_null(a.root);
		assert_true(a.type == HL_MSG_CHAT_SEND ||
			    a.type == HL_MSG_CHAT_TYPING);
		assert_same_or_null(a.u.chat.conversation,
				    b.u.chat.conversation);
		assert_same_or_null(a.u.chat.payload, b.u.chat.payload);
		assert_int_equal(a.u.chat.last_seq, b.u.chat.last_seq);
		assert_int_equal(a.u.chat.to, b.u.chat.to);
		assert_null(a.u.chat.tags);
		assert_null(a.u.chat.outcome);
	} else {
		assert_non_null(a.root);
	}
	hl_msg_release(&a);
	hl_msg_release(&b);
	assert_null(a.flat);
	return flat;
}

/* The flat fast path (chat.send, chat.typing without jansson) takes the
 * frames a chat is made of and decodes them as jansson's path does; every
 * other frame, and every frame one byte away from those (changed, deleted,
 * or cut short), decodes or fails exactly as through jansson alone. */
static void test_decode_flat_same_as_json(void **state)
{
	static const char *const flat[] = {
		"{\"type\":\"chat.send\",\"id\":\"m1.7\",\"conversation\":\"12\","
		"\"payload\":\"QUJD-_x\"}",
		" {\n\"payload\" : \"QUJD\" ,\t\"id\":\"a:b\", \"type\":\"chat.send\"}\r\n",
		"{\"id\":\"x\",\"type\":\"chat.send\",\"payload\":\"A\"}",
		"{\"type\":\"chat.typing\",\"id\":\"t1\",\"conversation\":\"3\"}",
		"{\"type\":\"chat.typing\",\"id\":\"t1\"}",
		"{\"type\":\"chat.send\",\"id\":\"m\",\"conversation\":\"abc\","
		"\"payload\":\"QUJD\"}",
	};
	static const char *const other[] = {
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\",\"x\":\"y\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"\"}",
		"{\"type\":\"chat.send\",\"id\":\"\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m!\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"id\":\"m2\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\",\"payload\":\"QUJE\"}",
		"{\"type\":\"chat.send\",\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"conversation\":"
		"\"123456789012345678901\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"conversation\":12,"
		"\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QU\\/JD\"}",
		"{\"type\":\"chat.send\",\"id\":\"m\\u0031\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.sync\",\"id\":\"m1\",\"conversation\":\"1\"}",
		"{\"type\":\"ping\",\"id\":\"p\",\"data\":\"x\"}",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\"} x",
		"{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\",}",
		"\xef\xbb\xbf{\"type\":\"chat.send\",\"id\":\"m1\",\"payload\":\"QUJD\"}",
		"{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\",\"e\":\"5\","
		"\"f\":\"6\",\"g\":\"7\",\"type\":\"chat.send\",\"id\":\"m1\"}",
		"{}",
		"{\"id\":\"m1\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.send\",\"payload\":\"QUJD\"}",
		"{\"type\":\"chat.sent\",\"id\":\"m1\",\"payload\":\"QUJD\"}",
		"[\"chat.send\"]",
		"",
	};
	static const char subs[] = {'"', '\\', ',', ':', '{', '}', ' ', 'a',
				    '0', '\0', (char)0x80, '!', 'x'};
	char frame[512];
	size_t i, k, c, n, took = 0;

	(void)state;
	for (i = 0; i < sizeof(flat) / sizeof(flat[0]); i++)
		assert_true(check_decode_same(flat[i], strlen(flat[i])));
	for (i = 0; i < sizeof(other) / sizeof(other[0]); i++)
		assert_false(check_decode_same(other[i], strlen(other[i])));
	/* A NUL inside: still only the frame's len bytes count. */
	assert_false(check_decode_same("{\"type\":\"chat.send\",\"id\":\"m\0\","
				       "\"payload\":\"QUJD\"}", 47));
	for (i = 0; i < sizeof(flat) / sizeof(flat[0]); i++) {
		n = strlen(flat[i]);
		assert_true(n < sizeof(frame));
		for (k = 0; k < n; k++) {
			for (c = 0; c < sizeof(subs); c++) {
				memcpy(frame, flat[i], n);
				frame[k] = subs[c];
				took += check_decode_same(frame, n);
			}
			/* byte k deleted; cut short at k */
			memcpy(frame, flat[i], k);
			memcpy(frame + k, flat[i] + k + 1, n - k - 1);
			took += check_decode_same(frame, n - 1);
			took += check_decode_same(flat[i], k);
		}
	}
	/* Many of the near misses are still good frames the fast path takes
	 * (a changed id or payload character, a space). */
	assert_true(took > 100);
}

/* hl_proto_b64_decode accepts exactly what libsodium's base64url (no
 * padding, nothing ignored) decoder accepts, with the same bytes: random
 * text over the alphabet plus characters it must refuse, every length to
 * 700, and every spare-bit pattern of the short tails. */
static void test_b64_decode_same_as_libsodium(void **state)
{
	static const char chars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		"=+/ .\n";
	char text[701];
	unsigned char want[600];

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t tl = (size_t)(round % 700);
		bool plain = round % 3 != 0;
		unsigned char *got = NULL;
		size_t n = 0, wn = 0;
		int ok, wok;

		for (size_t i = 0; i < tl; i++)
			text[i] = chars[randombytes_uniform(plain ? 64 : sizeof(chars) - 1)];
		/* Now and then a single stray character among valid ones. */
		if (!plain && tl && round % 2)
			for (size_t i = 0; i < tl; i++)
				text[i] = chars[randombytes_uniform(64)];
		if (!plain && tl && round % 2)
			text[randombytes_uniform((uint32_t)tl)] =
				chars[64 + randombytes_uniform(sizeof(chars) - 65)];
		text[tl] = '\0';
		ok = hl_proto_b64_decode(text, sizeof(want), &got, &n) == 0;
		wok = tl > 0 &&
		      sodium_base642bin(want, sizeof(want), text, tl, NULL, &wn,
					NULL,
					sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
		      wn > 0;
		assert_int_equal(ok, wok);
		if (ok) {
			assert_int_equal(n, wn);
			assert_memory_equal(got, want, n);
			free(got);
		}
	}
	/* The tails: every last character after "QU" and "QUJ". */
	for (int k = 0; k < 64; k++) {
		char t2[4] = {'Q', chars[k], 0, 0}, t3[5] = {'Q', 'U', chars[k], 0, 0};
		char *const ts[] = {t2, t3};

		for (int x = 0; x < 2; x++) {
			unsigned char *got = NULL;
			size_t n = 0, wn = 0;
			int ok = hl_proto_b64_decode(ts[x], 16, &got, &n) == 0;
			int wok = sodium_base642bin(want, sizeof(want), ts[x],
						    strlen(ts[x]), NULL, &wn, NULL,
						    sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0;

			assert_int_equal(ok, wok);
			if (ok) {
				assert_int_equal(n, wn);
				assert_memory_equal(got, want, n);
				free(got);
			}
		}
	}
}

/* Every byte value, against the alphabets written out by hand: in an id
 * (token characters: the fast path takes the frame exactly when it is one,
 * and jansson's path agrees) and in each position of base64url text
 * (libsodium's alphabet). protocol.c looks both up in one table. */
static void test_every_byte_in_tokens(void **state)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char frame[128], text[16];
	unsigned char want[16];

	(void)state;
	for (int c = 1; c < 256; c++) {
		bool token = c < 128 && (strchr(b64, c) || c == '.' || c == ':');
		bool in_b64 = c < 128 && strchr(b64, c) != NULL;
		int n = snprintf(frame, sizeof(frame),
				 "{\"type\":\"chat.typing\",\"id\":\"a%cb\"}", c);

		assert_true(n > 0 && (size_t)n < sizeof(frame));
		/* '"' ends the id early and '\\' escapes: neither is a token,
		 * and neither frame is flat; the rest differ only by c. */
		assert_int_equal(check_decode_same(frame, (size_t)n), token);
		for (size_t pos = 0; pos < 8; pos++) {
			unsigned char *got = NULL;
			size_t len = 0, wn = 0;
			int ok, wok;

			memcpy(text, "QUJDREVG", 8);
			text[pos] = (char)c;
			text[8] = '\0';
			ok = hl_proto_b64_decode(text, sizeof(want), &got, &len) == 0;
			wok = sodium_base642bin(want, sizeof(want), text, 8, NULL,
						&wn, NULL,
						sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0;
			/* Debian's libsodium 1.0.18 takes every byte from 0x80
			 * as '_': those are refused here, as base64url says. */
			if (c < 128)
				assert_int_equal(ok, wok);
			assert_int_equal(ok, in_b64);
			if (ok) {
				assert_int_equal(len, wn);
				assert_memory_equal(got, want, len);
				free(got);
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_bad_vectors),
		cmocka_unit_test(test_parse_long_strings_same_as_jansson),
		cmocka_unit_test(test_decode_flat_same_as_json),
		cmocka_unit_test(test_b64_decode_same_as_libsodium),
		cmocka_unit_test(test_every_byte_in_tokens),
		cmocka_unit_test(test_error_message_does_not_echo_input),
		cmocka_unit_test(test_error_messages),
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_too_many_members),
		cmocka_unit_test(test_deep_nesting_100k),
		cmocka_unit_test(test_depth_ignores_strings),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_decode_hello),
		cmocka_unit_test(test_decode_hello_edges),
		cmocka_unit_test(test_decode_ping),
		cmocka_unit_test(test_decode_colleagues),
		cmocka_unit_test(test_decode_escalation),
		cmocka_unit_test(test_decode_evidence),
		cmocka_unit_test(test_decode_uses_len_only),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_encode_reply),
		cmocka_unit_test(test_encode_insertion_order),
		cmocka_unit_test(test_encode_error_reply),
		cmocka_unit_test(test_encode_escaping),
		cmocka_unit_test(test_encode_large_and_roundtrip),
		cmocka_unit_test(test_encode_rejects),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
