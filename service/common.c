/* common.c: descriptions of status codes. */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stdio.h>

const char *hl_strerror(int status)
{
	switch (status) {
	case HL_OK: return "ok";
	case HL_ENOMEM: return "out of memory";
	case HL_EINVAL: return "invalid argument";
	case HL_ERANGE: return "out of range";
	case HL_EIO: return "I/O error";
	case HL_ESTORE: return "database error";
	case HL_ESCHEMA: return "database schema is newer than this program";
	case HL_ENOTFOUND: return "not found";
	case HL_ECLOSED: return "closed";
	case HL_EFULL: return "queue full";
	case HL_ECONSTRAINT: return "constraint violated";
	}
	return "unknown status";
}

void hl_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#ifdef HL_TEST_HOOKS
/* Test builds only (cmake -DHL_TEST_HOOKS=ON): HL_TEST_CLOCK_SKEW_MS moves
 * the service's clock, so a test can restart the daemon "days later". Read
 * once; constant afterwards. */
static pthread_once_t skew_once = PTHREAD_ONCE_INIT;
static int64_t skew_ms;

static void skew_read(void)
{
	const char *v = getenv("HL_TEST_CLOCK_SKEW_MS");

	skew_ms = v ? strtoll(v, NULL, 10) : 0;
}

int64_t hl_clock_skew_ms(void)
{
	pthread_once(&skew_once, skew_read);
	return skew_ms;
}
#else
int64_t hl_clock_skew_ms(void)
{
	return 0;
}
#endif

size_t hl_fmt_i64(char out[HL_I64_DIGITS], int64_t v)
{
	char b[HL_I64_DIGITS];
	size_t i = sizeof(b);
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		b[--i] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		b[--i] = '-';
	memcpy(out, b + i, sizeof(b) - i);
	return sizeof(b) - i;
}

int64_t hl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
	       hl_clock_skew_ms();
}

void hl_thread_background(void)
{
	/* A thread id is a pid_t; id_t is what setpriority takes. */
	id_t tid = (id_t)syscall(SYS_gettid);

	if (getpriority(PRIO_PROCESS, tid) < 19)
		(void)setpriority(PRIO_PROCESS, tid, 19);
}

int hl_read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = 0;
			return -1;
		}
		got += (size_t)n;
	}
	return 0;
}

int hl_write_full(int fd, const unsigned char *buf, size_t len)
{
	size_t put = 0;

	while (put < len) {
		ssize_t n = write(fd, buf + put, len - put);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		put += (size_t)n;
	}
	return 0;
}
