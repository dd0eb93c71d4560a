/* common.h: status codes, small macros and limits shared by every module. */
#ifndef HL_COMMON_H
#define HL_COMMON_H

#include <stddef.h>
#include <stdint.h>

/*
 * Status returns: 0 is success, a negative HL_E* value is failure. A function
 * that takes a callback and returns an error never calls that callback.
 */
enum hl_status {
	HL_OK = 0,
	HL_ENOMEM = -1,   /* allocation failed */
	HL_EINVAL = -2,   /* invalid argument or input */
	HL_ERANGE = -3,   /* value or size out of the allowed range */
	HL_EIO = -4,      /* operating-system I/O error */
	HL_ESTORE = -5,   /* the database reported an error */
	HL_ESCHEMA = -6,  /* database schema is newer than this program */
	HL_ENOTFOUND = -7,/* no such object */
	HL_ECLOSED = -8,  /* the target was closed or is shutting down */
	HL_EFULL = -9,    /* a bounded queue or buffer is full */
	HL_ECONSTRAINT = -10, /* a store constraint was violated (e.g. duplicate) */
};

/* The wall clock in unix milliseconds (CLOCK_REALTIME). */
int64_t hl_now_ms(void);

/* Room for any int64_t in decimal ("-9223372036854775808"), no NUL. */
#define HL_I64_DIGITS 20

/* Writes v in decimal to out (no NUL) and returns how many characters:
 * what snprintf("%lld") gives, without its cost on the hot paths. */
size_t hl_fmt_i64(char out[HL_I64_DIGITS], int64_t v);

/* Big-endian 64-bit integers, as every Helpline byte format uses them. */
static inline void hl_put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static inline uint64_t hl_get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}
/* The simulated clock's offset (ms) in test builds (HL_TEST_HOOKS and the
 * HL_TEST_CLOCK_SKEW_MS environment variable); always 0 otherwise. */
int64_t hl_clock_skew_ms(void);

/* Returns a static, human-readable description of an HL_E* status. */
const char *hl_strerror(int status);

/* Formats a message into err (errlen bytes, NUL-terminated) when the caller
 * gave room for one; does nothing when err is NULL or errlen is 0. */
void hl_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Lowers the calling thread's scheduling priority (nice 19) for CPU-heavy
 * background work on libuv's threadpool (statistics, evidence checks): where the
 * threadpool shares a core with the event loop, chats keep their latency.
 * Linux applies nice to one thread when given its id. Best effort: where
 * the system refuses (the shipped systemd unit filters @resources), the
 * work simply runs at the loop's priority. Nice only rises, so a thread
 * stays at 19 for whatever work it runs later, all of it background work.
 */
void hl_thread_background(void);

/* Reads exactly len bytes from fd, retrying on EINTR and short reads.
 * Returns 0, or -1 with errno set (errno 0 when the input ended first). */
int hl_read_full(int fd, unsigned char *buf, size_t len);

/* Writes exactly len bytes to fd, retrying on EINTR and short writes.
 * Returns 0, or -1 with errno set. */
int hl_write_full(int fd, const unsigned char *buf, size_t len);

#define HL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Recovers the enclosing struct from a pointer to one of its members. */
#define hl_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#ifndef HL_VERSION
#define HL_VERSION "0.0.0-dev"
#endif

#endif
