/* log.c: one escaped line per event, written with a single write(2). */
#include "log.h"
#include "common.h"

#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum hl_log_level log_level = HL_LOG_INFO;
static FILE *log_stream;

void hl_log_set_level(enum hl_log_level level) { log_level = level; }
enum hl_log_level hl_log_get_level(void) { return log_level; }
void hl_log_set_stream(FILE *stream) { log_stream = stream; }

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

void hl_log(enum hl_log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	hl_vlog(level, event, fmt, ap);
	va_end(ap);
}
