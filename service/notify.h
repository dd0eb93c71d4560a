/* notify.h: owns the daemon's side of systemd's service notification
 * protocol (sd_notify(3) without libsystemd): READY=1, STATUS=, WATCHDOG=1,
 * RELOADING=1 and STOPPING=1 as datagrams to $NOTIFY_SOCKET. */
#ifndef HL_NOTIFY_H
#define HL_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

/* Fills buf (cap bytes, NUL-terminated) with the one-line STATUS= text. */
typedef void (*hl_notify_status_fn)(void *arg, char *buf, size_t cap);

/*
 * The notification socket and its two timers. Everything is a no-op when
 * $NOTIFY_SOCKET is unset (not under systemd, or Type= is not notify).
 * Loop thread only.
 */
struct hl_notify {
	int fd;                        /* unix datagram socket, or -1 */
	struct sockaddr_un addr;       /* $NOTIFY_SOCKET ('@' -> abstract) */
	socklen_t addrlen;
	uint64_t watchdog_usec;        /* $WATCHDOG_USEC for us, or 0 */
	uv_timer_t watchdog;           /* WATCHDOG=1 every watchdog_usec / 2 */
	uv_timer_t status;             /* STATUS= every HL_NOTIFY_STATUS_MS */
	bool timers_open;
	hl_notify_status_fn status_fn; /* may be NULL: no periodic STATUS= */
	void *status_arg;
	uint64_t sent, send_failed;    /* datagrams, for tests and logs */
};

/* How often STATUS= is refreshed. */
#define HL_NOTIFY_STATUS_MS 5000

/*
 * Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (the watchdog is
 * ours only when WATCHDOG_PID is unset or our pid) and opens a
 * non-blocking datagram socket. Never fails the start: an unusable
 * NOTIFY_SOCKET is logged and notification is off. n must be zeroed.
 */
void hl_notify_init(struct hl_notify *n);

/* True when there is somewhere to send notifications. */
bool hl_notify_enabled(const struct hl_notify *n);

/*
 * Sends one datagram (e.g. "READY=1\nSTATUS=..."), never blocking: if the
 * receiver's queue is full it is dropped and counted. 0 or HL_E*; 0 and
 * nothing sent when disabled.
 */
int hl_notify_send(struct hl_notify *n, const char *msg);

/*
 * Sends READY=1 with a first STATUS=, then starts the watchdog timer (if
 * systemd asked for one) and the STATUS= timer on loop. status_fn (may be
 * NULL) and arg must outlive hl_notify_stop. 0 or HL_E*.
 */
int hl_notify_ready(struct hl_notify *n, uv_loop_t *loop,
		    hl_notify_status_fn status_fn, void *arg);

/* Sends STOPPING=1 (with a STATUS= line) and stops the timers (closing
 * them; their memory is n's, no close callback). Idempotent. */
void hl_notify_stopping(struct hl_notify *n, const char *status);

/* Closes the timers if still open and the socket. */
void hl_notify_free(struct hl_notify *n);

#endif
