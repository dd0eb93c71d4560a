/* notify.c: systemd's notification protocol over a unix datagram socket
 * (sd_notify(3), "the documented socket protocol"), and the watchdog and
 * STATUS= timers. */
#include "notify.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parses a decimal unsigned value; false unless the whole string is one. */
static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (uint64_t)v;
	return true;
}

void hl_notify_init(struct hl_notify *n)
{
	const char *path = getenv("NOTIFY_SOCKET");
	const char *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;
	uint64_t v;

	n->fd = -1;
	if (!path || !*path)
		return;
	len = strlen(path);
	/* A filesystem path, or '@' for a name in the abstract namespace
	 * (sun_path then starts with NUL and is not NUL-terminated). Other
	 * forms (vsock:) are not supported. */
	if ((path[0] != '/' && path[0] != '@') ||
	    len >= sizeof(n->addr.sun_path) || (path[0] == '@' && len < 2)) {
		hl_warn("notify.socket_unsupported", "len=%zu", len);
		return;
	}
	memset(&n->addr, 0, sizeof(n->addr));
	n->addr.sun_family = AF_UNIX;
	memcpy(n->addr.sun_path, path, len);
	if (path[0] == '@') {
		n->addr.sun_path[0] = '\0';
		n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
					 len + 1);
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0) {
		hl_warn("notify.socket_failed", "errno=%d", errno);
		return;
	}
	if (parse_u64(wd, &v) && v > 0) {
		uint64_t pid;

		if (!wpid || (parse_u64(wpid, &pid) && pid == (uint64_t)getpid()))
			n->watchdog_usec = v;
	}
	hl_info("notify.enabled", "watchdog_ms=%" PRIu64,
		n->watchdog_usec / 1000);
}

bool hl_notify_enabled(const struct hl_notify *n)
{
	return n->fd >= 0;
}

int hl_notify_send(struct hl_notify *n, const char *msg)
{
	ssize_t w;

	if (n->fd < 0)
		return HL_OK;
	/* MSG_DONTWAIT as well as O_NONBLOCK: the loop must never wait on
	 * systemd. MSG_NOSIGNAL: a vanished receiver is an error, not a
	 * signal. */
	w = sendto(n->fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
		   (const struct sockaddr *)&n->addr, n->addrlen);
	if (w < 0) {
		/* Logged once in a while only: under a stuck receiver this
		 * would otherwise repeat every tick. */
		if (n->send_failed++ % 100 == 0)
			hl_warn("notify.send_failed", "errno=%d failures=%" PRIu64,
				errno, n->send_failed);
		return HL_EIO;
	}
	n->sent++;
	return HL_OK;
}

/* STATUS=<status_fn's text> */
static void send_status(struct hl_notify *n, const char *prefix)
{
	char line[256], msg[320];

	line[0] = '\0';
	if (n->status_fn)
		n->status_fn(n->status_arg, line, sizeof(line));
	/* STATUS= is one line: anything after a newline would be read as
	 * another assignment. */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix ? prefix : "", line);
	hl_notify_send(n, msg);
}

static void on_watchdog(uv_timer_t *t)
{
	hl_notify_send(t->data, "WATCHDOG=1");
}

static void on_status(uv_timer_t *t)
{
	send_status(t->data, NULL);
}

int hl_notify_ready(struct hl_notify *n, uv_loop_t *loop,
		    hl_notify_status_fn status_fn, void *arg)
{
	n->status_fn = status_fn;
	n->status_arg = arg;
	if (n->fd < 0)
		return HL_OK;
	send_status(n, "READY=1\n");
	if (uv_timer_init(loop, &n->watchdog) != 0)
		return HL_EIO;
	if (uv_timer_init(loop, &n->status) != 0) {
		uv_close((uv_handle_t *)&n->watchdog, NULL);
		return HL_EIO;
	}
	n->watchdog.data = n->status.data = n;
	n->timers_open = true;
	if (n->watchdog_usec) {
		/* Half the interval, as sd_watchdog_enabled(3) advises; at
		 * least 1 ms. The ping comes from the loop itself, so a loop
		 * that stops turning stops the pings. */
		uint64_t ms = n->watchdog_usec / 2000;

		if (ms == 0)
			ms = 1;
		uv_timer_start(&n->watchdog, on_watchdog, ms, ms);
	}
	if (status_fn)
		uv_timer_start(&n->status, on_status, HL_NOTIFY_STATUS_MS,
			       HL_NOTIFY_STATUS_MS);
	return HL_OK;
}

static void close_timers(struct hl_notify *n)
{
	if (!n->timers_open)
		return;
	n->timers_open = false;
	uv_close((uv_handle_t *)&n->watchdog, NULL);
	uv_close((uv_handle_t *)&n->status, NULL);
}

void hl_notify_stopping(struct hl_notify *n, const char *status)
{
	char msg[320];

	close_timers(n);
	if (n->fd < 0)
		return;
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s",
		 status ? status : "stopping");
	hl_notify_send(n, msg);
}

void hl_notify_free(struct hl_notify *n)
{
	close_timers(n);
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
}
