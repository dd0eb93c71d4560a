/* common.c: descriptions of status codes. */
#include "common.h"

#include <time.h>

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

int64_t hl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
