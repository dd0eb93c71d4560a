/* log.c: one escaped line per event, written with a single write(2). */
#include "log.h"
#include "common.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum hl_log_level log_level = HL_LOG_INFO;
static FILE *log_stream;
static int log_json;

void hl_log_set_level(enum hl_log_level level) { log_level = level; }
enum hl_log_level hl_log_get_level(void) { return log_level; }
void hl_log_set_stream(FILE *stream) { log_stream = stream; }
void hl_log_set_json(int json) { log_json = json != 0; }

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

const char *hl_log_level_name(enum hl_log_level level)
{
	if ((unsigned)level >= HL_ARRAY_LEN(level_names))
		return "?";
	return level_names[level];
}

int hl_log_parse_level(const char *name, enum hl_log_level *out)
{
	for (size_t i = 0; i < HL_ARRAY_LEN(level_names); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*out = (enum hl_log_level)i;
			return HL_OK;
		}
	}
	return HL_EINVAL;
}

size_t hl_log_escape(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			if (o + 1 >= cap)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 >= cap)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
	return o;
}

static void write_line(const char *line, size_t n)
{
	FILE *out = log_stream ? log_stream : stderr;

	if (out == stderr) {
		/* One write per line keeps lines whole when threads log. */
		ssize_t w = write(STDERR_FILENO, line, n);
		(void)w;
	} else {
		fwrite(line, 1, n, out);
		fflush(out);
	}
}

/* Output buffer that never overflows (the line is cut instead). */
struct jbuf {
	char *p;
	size_t n, cap; /* cap leaves room for "}\n" */
};

static void jput(struct jbuf *b, const char *s, size_t len)
{
	if (b->n + len > b->cap)
		len = b->cap - b->n;
	memcpy(b->p + b->n, s, len);
	b->n += len;
}

/* A JSON string of src[0..len), quotes included; escapes never split. */
static void jstr(struct jbuf *b, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";

	if (b->n + 2 > b->cap)
		return;
	b->p[b->n++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char e[6];
		size_t el = 0;

		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			el = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			e[0] = (char)c;
			el = 1;
		} else {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			el = 6;
		}
		if (b->n + el + 1 > b->cap)
			break;
		memcpy(b->p + b->n, e, el);
		b->n += el;
	}
	b->p[b->n++] = '"';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static bool is_number(const char *v, size_t len)
{
	size_t i = v[0] == '-';

	if (len == i || len - i > 15 || (v[i] == '0' && len - i > 1))
		return false;
	for (; i < len; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	return true;
}

/*
 * Fields "k=v k2=\"quoted v\" ..." as JSON members. A token that is not
 * key=value ends the parse: it and the rest of the text go into "msg".
 */
static void jfields(struct jbuf *b, const char *f, size_t len)
{
	size_t i = 0;
	bool had_msg = false;

	while (i < len) {
		size_t k0, k1, v0, v1;
		bool quoted = false;

		while (i < len && f[i] == ' ')
			i++;
		if (i == len)
			break;
		k0 = i;
		while (i < len && is_key_char(f[i]))
			i++;
		k1 = i;
		if (k1 == k0 || i == len || f[i] != '=')
			goto rest;
		i++;
		if (i < len && f[i] == '"') {
			/* To the closing quote that ends the token. */
			size_t j = i + 1;

			while (j < len && !(f[j] == '"' && (j + 1 == len || f[j + 1] == ' ')))
				j++;
			if (j == len)
				goto rest;
			v0 = i + 1;
			v1 = j;
			i = j + 1;
			quoted = true;
		} else {
			v0 = i;
			while (i < len && f[i] != ' ')
				i++;
			v1 = i;
		}
		had_msg |= k1 - k0 == 3 && memcmp(f + k0, "msg", 3) == 0;
		jput(b, ",", 1);
		jstr(b, f + k0, k1 - k0);
		jput(b, ":", 1);
		if (!quoted && is_number(f + v0, v1 - v0))
			jput(b, f + v0, v1 - v0);
		else
			jstr(b, f + v0, v1 - v0);
		continue;
rest:
		if (had_msg)
			jput(b, ",\"rest\":", 8);
		else
			jput(b, ",\"msg\":", 7);
		jstr(b, f + k0, len - k0);
		return;
	}
}

static size_t json_line(char *line, size_t cap, const char *stamp,
			enum hl_log_level level, const char *event,
			const char *fields, size_t flen)
{
	struct jbuf b = {line, 0, cap - 2};
	const char *lv = hl_log_level_name(level);

	jput(&b, "{\"time\":", 8);
	jstr(&b, stamp, strlen(stamp));
	jput(&b, ",\"level\":", 9);
	jstr(&b, lv, strlen(lv));
	jput(&b, ",\"event\":", 9);
	jstr(&b, event, strlen(event));
	if (fields)
		jfields(&b, fields, flen);
	line[b.n++] = '}';
	line[b.n++] = '\n';
	return b.n;
}

void hl_vlog(enum hl_log_level level, const char *event, const char *fmt,
	     va_list ap)
{
	char raw[1024], line[1200];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;

	if (level < log_level || level >= HL_LOG_OFF)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_json) {
		char stamp[40], jline[12288]; /* fits 1023 bytes of fields, each escaped to 6 */
		size_t sn = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

		snprintf(stamp + sn, sizeof(stamp) - sn, ".%03ldZ",
			 ts.tv_nsec / 1000000L);
		k = vsnprintf(raw, sizeof(raw), fmt, ap);
		n = json_line(jline, sizeof(jline), stamp, level, event,
			      k > 0 ? raw : NULL,
			      k > 0 ? ((size_t)k < sizeof(raw) ? (size_t)k
							       : sizeof(raw) - 1)
				    : 0);
		write_line(jline, n);
		return;
	}
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s ",
		     ts.tv_nsec / 1000000L, hl_log_level_name(level));
	n += (size_t)k;
	n += hl_log_escape(line + n, sizeof(line) - n, event, strlen(event));
	k = vsnprintf(raw, sizeof(raw), fmt, ap);
	if (k > 0) {
		size_t rl = (size_t)k < sizeof(raw) ? (size_t)k : sizeof(raw) - 1;
		if (n + 1 < sizeof(line))
			line[n++] = ' ';
		n += hl_log_escape(line + n, sizeof(line) - n - 1, raw, rl);
	}
	line[n++] = '\n';
	write_line(line, n);
}

void hl_log(enum hl_log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	hl_vlog(level, event, fmt, ap);
	va_end(ap);
}
