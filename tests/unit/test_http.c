/* test_http.c: the pure helpers of http.c: path safety, MIME types, page
 * aliases and the subprotocol choice that gates upgrades. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http.h"

static void test_path_ok(void **state)
{
	static const char *const good[] = {
		"/index.html", "/style.css", "/js/app.js", "/a/b/c-d_e.f.js",
		"/libsodium/sodium.wasm",
	};
	static const char *const bad[] = {
		"", "index.html", "/", "//x.js", "/a//b.js", "/../x", "/a/../x",
		"/./x", "/.git/config", "/a/.hidden", "/x/", "/a b.html",
		"/a%2e.html", "/a\\b.html", "/a?b.html", "/\xc3\xa9.html",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(hl_http_path_ok(good[i]), 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (hl_http_path_ok(bad[i]))
			fail_msg("path accepted: %s", bad[i]);
	}
	char longp[600];
	longp[0] = '/';
	for (int i = 1; i < 599; i++)
		longp[i] = 'a';
	longp[599] = '\0';
	assert_int_equal(hl_http_path_ok(longp), 0);
}

static void test_mime(void **state)
{
	(void)state;
	assert_string_equal(hl_http_mime_type("/index.html"), "text/html; charset=utf-8");
	assert_string_equal(hl_http_mime_type("/a.js"), "text/javascript; charset=utf-8");
	assert_string_equal(hl_http_mime_type("/a.mjs"), "text/javascript; charset=utf-8");
	assert_string_equal(hl_http_mime_type("/a.css"), "text/css; charset=utf-8");
	assert_string_equal(hl_http_mime_type("/x.wasm"), "application/wasm");
	assert_string_equal(hl_http_mime_type("/t.json"), "application/json");
	assert_null(hl_http_mime_type("/x.sh"));
	assert_null(hl_http_mime_type("/README"));
	assert_null(hl_http_mime_type("/a.html.bak"));
	assert_null(hl_http_mime_type("/dir.js/file"));
}

static void test_alias(void **state)
{
	static const char *const unchanged[] = {
		"/index.html", "/console.html", "/consoles", "/console.htm",
		"/console//", "//console", "/Console", "/console/x", "/js/console",
		"", "/healthz",
	};
	(void)state;
	assert_string_equal(hl_http_alias("/"), "/index.html");
	assert_string_equal(hl_http_alias("/console"), "/console.html");
	assert_string_equal(hl_http_alias("/console/"), "/console.html");
	for (size_t i = 0; i < sizeof(unchanged) / sizeof(unchanged[0]); i++)
		assert_ptr_equal(hl_http_alias(unchanged[i]), unchanged[i]);
	/* What an alias maps to is itself a servable file. */
	assert_int_equal(hl_http_path_ok(hl_http_alias("/console")), 1);
	assert_string_equal(hl_http_mime_type(hl_http_alias("/console/")),
			    "text/html; charset=utf-8");
}

static void test_pick_subprotocol(void **state)
{
	(void)state;
	assert_int_equal(hl_http_pick_subprotocol("helpline.contact.v1"), 0);
	assert_int_equal(hl_http_pick_subprotocol("helpline.staff.v1"), 1);
	assert_int_equal(hl_http_pick_subprotocol("chat, helpline.staff.v1"), 1);
	assert_int_equal(hl_http_pick_subprotocol(" helpline.contact.v1 ,helpline.staff.v1"), 0);
	assert_int_equal(hl_http_pick_subprotocol("helpline.staff.v1,helpline.contact.v1"), 1);
	assert_int_equal(hl_http_pick_subprotocol(""), -1);
	assert_int_equal(hl_http_pick_subprotocol("http"), -1);
	assert_int_equal(hl_http_pick_subprotocol("helpline.contact.v10"), -1);
	assert_int_equal(hl_http_pick_subprotocol("xhelpline.contact.v1"), -1);
	assert_int_equal(hl_http_pick_subprotocol("helpline.contact.v"), -1);
	assert_int_equal(hl_http_pick_subprotocol(",,,"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_ok),
		cmocka_unit_test(test_mime),
		cmocka_unit_test(test_alias),
		cmocka_unit_test(test_pick_subprotocol),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
