/* test_log.c: log lines are one per event, levelled, and escaped so no
 * field can forge or corrupt a line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "log.h"

static void test_escape(void **state)
{
	char out[64];
	size_t n;

	(void)state;
	n = hl_log_escape(out, sizeof(out), "ok text", 7);
	assert_int_equal(n, 7);
	assert_string_equal(out, "ok text");
	n = hl_log_escape(out, sizeof(out), "a\r\nb\x1b[31m\\", 10);
	assert_string_equal(out, "a\\x0d\\x0ab\\x1b[31m\\x5c");
	assert_int_equal(n, strlen(out));
	/* NUL and high bytes inside the given length are escaped too. */
	n = hl_log_escape(out, sizeof(out), "x\0\xff", 3);
	assert_string_equal(out, "x\\x00\\xff");
	/* Truncation never splits an escape and always terminates. */
	n = hl_log_escape(out, 6, "\n\n\n", 3);
	assert_string_equal(out, "\\x0a");
	assert_int_equal(n, 4);
	assert_int_equal(hl_log_escape(out, 0, "abc", 3), 0);
}

static void test_levels(void **state)
{
	enum hl_log_level l;

	(void)state;
	assert_int_equal(hl_log_parse_level("debug", &l), 0);
	assert_int_equal(l, HL_LOG_DEBUG);
	assert_int_equal(hl_log_parse_level("WARN", &l), 0);
	assert_int_equal(l, HL_LOG_WARN);
	assert_int_equal(hl_log_parse_level("off", &l), 0);
	assert_int_equal(l, HL_LOG_OFF);
	assert_int_equal(hl_log_parse_level("verbose", &l), HL_EINVAL);
	assert_string_equal(hl_log_level_name(HL_LOG_ERROR), "error");
}

static void test_line(void **state)
{
	char buf[2048];
	FILE *f = tmpfile();

	(void)state;
	assert_non_null(f);
	hl_log_set_stream(f);
	hl_log_set_level(HL_LOG_INFO);
	hl_debug("not.shown", "x=%d", 1);
	hl_info("conn.open", "conn=%s reason=\"%s\"", "00ff", "evil\ninjected 2026 error fake");
	hl_log_set_level(HL_LOG_OFF);
	hl_error("also.not.shown", "x=1");
	hl_log_set_stream(NULL);
	hl_log_set_level(HL_LOG_INFO);
	rewind(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	/* Exactly one line, with the time, level, event and escaped fields. */
	assert_non_null(strchr(buf, '\n'));
	assert_int_equal(strchr(buf, '\n') - buf, (long)n - 1);
	assert_non_null(strstr(buf, "Z info conn.open conn=00ff reason=\"evil\\x0ainjected 2026 error fake\"\n"));
	assert_null(strstr(buf, "not.shown"));
	assert_int_equal(buf[4], '-');
	assert_int_equal(buf[10], 'T');
}

/* Writes one JSON line through hl_log and returns it (static buffer). */
static const char *json_line_of(const char *event, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static const char *json_line_of(const char *event, const char *fmt, ...)
{
	static char buf[4096];
	FILE *f = tmpfile();
	va_list ap;
	size_t n;

	assert_non_null(f);
	hl_log_set_stream(f);
	hl_log_set_json(1);
	hl_log_set_level(HL_LOG_DEBUG);
	va_start(ap, fmt);
	hl_vlog(HL_LOG_WARN, event, fmt, ap);
	va_end(ap);
	hl_log_set_json(0);
	hl_log_set_stream(NULL);
	hl_log_set_level(HL_LOG_INFO);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	/* One line, ending in a newline, with no other newline or control
	 * byte and nothing outside printable ASCII. */
	assert_true(n > 2);
	assert_int_equal(buf[n - 1], '\n');
	for (size_t i = 0; i + 1 < n; i++)
		assert_true((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f);
	return buf;
}

static void test_json(void **state)
{
	const char *l;

	(void)state;
	l = json_line_of("conn.open", "conn=00ff role=staff n=42 neg=-7 big=01");
	assert_true(strncmp(l, "{\"time\":\"", 9) == 0);
	assert_non_null(strstr(l, "Z\",\"level\":\"warn\",\"event\":\"conn.open\","
			       "\"conn\":\"00ff\",\"role\":\"staff\",\"n\":42,"
			       "\"neg\":-7,\"big\":\"01\"}\n"));
	/* Quoted values are unquoted; quotes, backslashes, CR/LF, ESC and
	 * high bytes are escaped so nothing can forge a line or a member. */
	l = json_line_of("lws", "msg=\"evil\r\n{\\\"level\\\":\\\"error\\\"}\x1b[31m\xc3\xa9\" code=3");
	assert_non_null(strstr(l, ",\"msg\":\"evil\\u000d\\u000a{\\\\\\\"level"));
	assert_non_null(strstr(l, "\\u001b[31m\\u00c3\\u00a9\",\"code\":3}\n"));
	/* Text that is not key=value goes into msg. */
	l = json_line_of("x.y", "plain words here");
	assert_non_null(strstr(l, "\"event\":\"x.y\",\"msg\":\"plain words here\"}\n"));
	l = json_line_of("x.y", "msg=\"a\" then junk");
	assert_non_null(strstr(l, "\"msg\":\"a\",\"rest\":\"then junk\"}\n"));
	/* An unterminated quote: the rest is text, still valid JSON. */
	l = json_line_of("x.y", "k=\"open");
	assert_non_null(strstr(l, "\"msg\":\"k=\\\"open\"}\n"));
	/* No fields at all. */
	l = json_line_of("server.stopped", "%s", "");
	assert_non_null(strstr(l, "\"event\":\"server.stopped\"}\n"));
	/* A line longer than the buffer is cut but stays one closed object. */
	{
		char big[3000];
		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		l = json_line_of("x.y", "v=%s", big);
		assert_int_equal(l[strlen(l) - 2], '}');
	}
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(hl_strerror(HL_OK), "ok");
	assert_string_equal(hl_strerror(HL_ESCHEMA), "database schema is newer than this program");
	assert_string_equal(hl_strerror(-999), "unknown status");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
