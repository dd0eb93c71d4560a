/* ws_client.h: a minimal RFC 6455 client over libuv TCP for helpline-bench.
 *
 * Text messages only (what Helpline speaks), client frames masked, server
 * pings answered, fragmented server messages reassembled. Writes are
 * batched: wsc_send_text() appends a frame to the connection's buffer and
 * every connection written to is flushed once per loop iteration (a
 * uv_prepare and a uv_check handle), so all of a connection's frames of one
 * iteration go out in one write, unless wsc_flush() sends them sooner.
 * Loopback only: the address is always 127.0.0.1. */
#ifndef HL_BENCH_WS_CLIENT_H
#define HL_BENCH_WS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct wsc;
struct wsc_loop;

struct wsc_callbacks {
	void (*on_open)(struct wsc *c);                           /* 101 received */
	void (*on_text)(struct wsc *c, const char *data, size_t len);
	/* Called once, then the wsc is freed. code: the close code the server
	 * sent, 1006 for a connection lost without one, or a negative libuv
	 * error / -1 (upgrade refused) before on_open; http_status is the
	 * refused upgrade's status (0 otherwise); reason: the close frame's
	 * reason text ("" if none). */
	void (*on_close)(struct wsc *c, int code, int http_status, const char *reason);
};

struct wsc_loop *wsc_loop_new(uv_loop_t *loop, const struct wsc_callbacks *cb);
void wsc_loop_free(struct wsc_loop *wl); /* after every wsc has closed */
size_t wsc_loop_open_count(const struct wsc_loop *wl);

/* Connects to 127.0.0.1:port and upgrades /ws with subprotocol protocol
 * (and Origin origin if not NULL). Returns NULL on immediate failure. */
struct wsc *wsc_connect(struct wsc_loop *wl, int port, const char *protocol,
			const char *origin, void *user);
void *wsc_user(const struct wsc *c);
void wsc_set_user(struct wsc *c, void *user);
bool wsc_is_open(const struct wsc *c);

/* Queues one masked text frame; flushed at the end of this loop iteration. */
void wsc_send_text(struct wsc *c, const char *data, size_t len);
/* Hands what is queued to the kernel now, without waiting for the end of
 * the loop iteration (a fixed rate's sends). */
void wsc_flush(struct wsc *c);
/* Sends a close frame (if open) and closes the TCP connection. */
void wsc_close(struct wsc *c, int code);
/* Bytes queued but not yet handed to the kernel. */
size_t wsc_pending(const struct wsc *c);

#endif
