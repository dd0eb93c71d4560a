/* log.h: owns the daemon's log output: levels, one line per event, escaping. */
#ifndef HL_LOG_H
#define HL_LOG_H

#include <stdarg.h>
#include <stdio.h>

enum hl_log_level {
	HL_LOG_DEBUG = 0,
	HL_LOG_INFO,
	HL_LOG_WARN,
	HL_LOG_ERROR,
	HL_LOG_OFF,
};

/*
 * The log level and sink are the one piece of process-wide state outside the
 * server struct: they are set once at start-up, before any thread starts, and
 * only read afterwards.
 *
 * Log lines carry event names, pseudonymous ids, codes and sizes only: never
 * message bodies, tokens, keys, IP addresses or user agents. Every byte of a
 * line outside printable ASCII (CR, LF, ESC, ...) and the backslash are
 * written as \xNN so no logged field can forge or corrupt a line.
 */

/* Sets the minimum level that is written. */
void hl_log_set_level(enum hl_log_level level);

/* Returns the current minimum level. */
enum hl_log_level hl_log_get_level(void);

/*
 * Chooses the line format: 0 text (the default, above), 1 JSON: one object
 * per line, {"time":"...","level":"...","event":"...", then the fields},
 * where each key=value field becomes a member (a value of digits a number,
 * anything else a string; a quoted value is unquoted) and text that is not
 * key=value goes, with the rest of the text, into "msg" (or "rest" when
 * a msg field came before). Strings are JSON-escaped, and every byte
 * outside printable ASCII is written as \u00XX, so a line is always one
 * valid JSON object on one line.
 */
void hl_log_set_json(int json);

/* Redirects output (default stderr). The stream is not owned. */
void hl_log_set_stream(FILE *stream);

/* Parses "debug", "info", "warn", "error" or "off". Returns 0 or HL_EINVAL. */
int hl_log_parse_level(const char *name, enum hl_log_level *out);

/* Returns the lower-case name of a level. */
const char *hl_log_level_name(enum hl_log_level level);

/*
 * Writes one line: "<UTC time> <level> <event> <formatted fields>". The event
 * is a dotted name such as "conn.open"; fields are "key=value" pairs.
 * Thread-safe (one write per line).
 */
void hl_log(enum hl_log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* va_list form of hl_log. */
void hl_vlog(enum hl_log_level level, const char *event, const char *fmt,
	     va_list ap) __attribute__((format(printf, 3, 0)));

/*
 * Escapes src (len bytes) into dst (cap bytes, always NUL-terminated when
 * cap > 0) with the rule above. Returns the length written, excluding NUL.
 */
size_t hl_log_escape(char *dst, size_t cap, const char *src, size_t len);

#define hl_debug(ev, ...) hl_log(HL_LOG_DEBUG, ev, __VA_ARGS__)
#define hl_info(ev, ...) hl_log(HL_LOG_INFO, ev, __VA_ARGS__)
#define hl_warn(ev, ...) hl_log(HL_LOG_WARN, ev, __VA_ARGS__)
#define hl_error(ev, ...) hl_log(HL_LOG_ERROR, ev, __VA_ARGS__)

#endif
