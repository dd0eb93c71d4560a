/* ws_client.c: see ws_client.h. */
#define _GNU_SOURCE
#include "ws_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum wsc_state { WSC_CONNECTING, WSC_UPGRADING, WSC_OPEN, WSC_CLOSING };

struct buf {
	char *p;
	size_t len, cap;
};

struct wsc {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct wsc_loop *wl;
	void *user;
	enum wsc_state state;
	bool writing, dirty, closed_cb_done;
	int close_code, http_status;
	char close_reason[124];
	struct buf in, out, wbuf, msg; /* msg: reassembly of fragments */
	uint32_t rng;
	struct wsc *next_dirty;
	char *upgrade;
};

struct wsc_loop {
	uv_loop_t *loop;
	struct wsc_callbacks cb;
	uv_prepare_t prepare;
	uv_check_t check;
	struct wsc *dirty;
	size_t open;
	char rbuf[256 * 1024];
	bool rbuf_busy;
};

static void die_oom(void)
{
	fprintf(stderr, "helpline-bench: out of memory\n");
	abort();
}

static void buf_reserve(struct buf *b, size_t extra)
{
	size_t cap;

	if (b->len + extra <= b->cap)
		return;
	cap = b->cap ? b->cap * 2 : 512;
	while (cap < b->len + extra)
		cap *= 2;
	b->p = realloc(b->p, cap);
	if (!b->p)
		die_oom();
	b->cap = cap;
}

static void buf_put(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_consume(struct buf *b, size_t n)
{
	memmove(b->p, b->p + n, b->len - n);
	b->len -= n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static void flush_all(struct wsc_loop *wl);
static void on_prepare(uv_prepare_t *h) { flush_all(h->data); }
static void on_check(uv_check_t *h) { flush_all(h->data); }

struct wsc_loop *wsc_loop_new(uv_loop_t *loop, const struct wsc_callbacks *cb)
{
	struct wsc_loop *wl = calloc(1, sizeof(*wl));

	if (!wl)
		die_oom();
	wl->loop = loop;
	wl->cb = *cb;
	uv_prepare_init(loop, &wl->prepare);
	uv_check_init(loop, &wl->check);
	wl->prepare.data = wl->check.data = wl;
	uv_prepare_start(&wl->prepare, on_prepare);
	uv_check_start(&wl->check, on_check);
	uv_unref((uv_handle_t *)&wl->prepare);
	uv_unref((uv_handle_t *)&wl->check);
	return wl;
}

static void loop_handle_closed(uv_handle_t *h)
{
	(void)h;
}

void wsc_loop_free(struct wsc_loop *wl)
{
	uv_close((uv_handle_t *)&wl->prepare, loop_handle_closed);
	uv_close((uv_handle_t *)&wl->check, loop_handle_closed);
	uv_run(wl->loop, UV_RUN_NOWAIT);
	free(wl);
}

size_t wsc_loop_open_count(const struct wsc_loop *wl)
{
	return wl->open;
}

void *wsc_user(const struct wsc *c) { return c->user; }
void wsc_set_user(struct wsc *c, void *user) { c->user = user; }
bool wsc_is_open(const struct wsc *c) { return c->state == WSC_OPEN; }
size_t wsc_pending(const struct wsc *c) { return c->out.len + c->wbuf.len; }

static void mark_dirty(struct wsc *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->next_dirty = c->wl->dirty;
	c->wl->dirty = c;
}

static void on_closed(uv_handle_t *h)
{
	struct wsc *c = h->data;
	struct wsc_loop *wl = c->wl;

	wl->open--;
	if (wl->cb.on_close)
		wl->cb.on_close(c, c->close_code, c->http_status, c->close_reason);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->wbuf);
	buf_free(&c->msg);
	free(c->upgrade);
	free(c);
}

/* Closes the TCP handle once; on_close is called from its close callback. */
static void hard_close(struct wsc *c, int code)
{
	if (c->closed_cb_done)
		return;
	c->closed_cb_done = true;
	c->close_code = code;
	c->state = WSC_CLOSING;
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_write(uv_write_t *req, int status)
{
	struct wsc *c = req->data;

	c->writing = false;
	c->wbuf.len = 0;
	if (status < 0) {
		if (!c->closed_cb_done)
			hard_close(c, 1006);
		return;
	}
	if (c->out.len)
		mark_dirty(c);
}

static void flush_one(struct wsc *c)
{
	uv_buf_t b;
	int n;
	struct buf t;

	if (c->closed_cb_done || c->writing || !c->out.len)
		return;
	b = uv_buf_init(c->out.p, (unsigned)c->out.len);
	n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == UV_EAGAIN || n == UV_ENOSYS)
		n = 0;
	if (n < 0) {
		hard_close(c, 1006);
		return;
	}
	buf_consume(&c->out, (size_t)n);
	if (!c->out.len)
		return;
	/* The rest goes with uv_write from wbuf; out collects what follows. */
	t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	c->out.len = 0;
	c->writing = true;
	c->wreq.data = c;
	b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
		c->writing = false;
		hard_close(c, 1006);
	}
}

static void flush_all(struct wsc_loop *wl)
{
	struct wsc *c;

	while ((c = wl->dirty)) {
		wl->dirty = c->next_dirty;
		c->dirty = false;
		flush_one(c);
	}
}

static uint32_t rng_next(struct wsc *c)
{
	uint32_t x = c->rng;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return c->rng = x;
}

static void put_frame(struct wsc *c, int opcode, const char *data, size_t len)
{
	unsigned char h[14];
	size_t hl = 0;
	uint32_t key = rng_next(c);
	unsigned char k[4];
	char *dst;

	memcpy(k, &key, 4);
	h[hl++] = (unsigned char)(0x80 | opcode);
	if (len < 126) {
		h[hl++] = (unsigned char)(0x80 | len);
	} else if (len < 65536) {
		h[hl++] = 0x80 | 126;
		h[hl++] = (unsigned char)(len >> 8);
		h[hl++] = (unsigned char)len;
	} else {
		h[hl++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
	}
	memcpy(h + hl, k, 4);
	hl += 4;
	buf_reserve(&c->out, hl + len);
	memcpy(c->out.p + c->out.len, h, hl);
	dst = c->out.p + c->out.len + hl;
	{
		size_t i = 0;
		uint64_t k8;
		unsigned char kk[8] = { k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3] };

		memcpy(&k8, kk, 8);
		for (; i + 8 <= len; i += 8) {
			uint64_t v;
			memcpy(&v, data + i, 8);
			v ^= k8;
			memcpy(dst + i, &v, 8);
		}
		for (; i < len; i++)
			dst[i] = (char)(data[i] ^ k[i & 3]);
	}
	c->out.len += hl + len;
	mark_dirty(c);
}

void wsc_flush(struct wsc *c)
{
	flush_one(c); /* still on the dirty list: flush_all finds nothing */
}

void wsc_send_text(struct wsc *c, const char *data, size_t len)
{
	if (c->state != WSC_OPEN)
		return;
	put_frame(c, 1, data, len);
}

void wsc_close(struct wsc *c, int code)
{
	unsigned char p[2] = { (unsigned char)(code >> 8), (unsigned char)code };

	if (c->closed_cb_done)
		return;
	if (c->state == WSC_OPEN) {
		put_frame(c, 8, (const char *)p, 2);
		flush_one(c);
	}
	hard_close(c, code);
}

/* Parses frames in [p, p+n); returns bytes consumed (whole frames only). */
static size_t parse_frames(struct wsc *c, const char *p, size_t n)
{
	size_t off = 0;

	while (!c->closed_cb_done && n - off >= 2) {
		const unsigned char *u = (const unsigned char *)p + off;
		int fin = u[0] & 0x80, op = u[0] & 15, masked = u[1] & 0x80;
		uint64_t len = u[1] & 127;
		size_t hl = 2;

		if (len == 126) {
			if (n - off < 4)
				break;
			len = ((uint64_t)u[2] << 8) | u[3];
			hl = 4;
		} else if (len == 127) {
			if (n - off < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | u[2 + i];
			hl = 10;
		}
		if (masked)
			hl += 4;
		if (n - off < hl + len)
			break;
		{
			char *data = (char *)p + off + hl;
			if (masked) {
				const unsigned char *k = u + hl - 4;
				for (uint64_t i = 0; i < len; i++)
					data[i] ^= (char)k[i & 3];
			}
			off += hl + (size_t)len;
			if (op == 9) {
				put_frame(c, 10, data, (size_t)len);
			} else if (op == 8) {
				int code = len >= 2 ? (((unsigned char)data[0] << 8) |
						       (unsigned char)data[1])
						    : 1005;
				size_t rl = len > 2 ? (size_t)len - 2 : 0;
				if (rl >= sizeof(c->close_reason))
					rl = sizeof(c->close_reason) - 1;
				memcpy(c->close_reason, data + 2, rl);
				c->close_reason[rl] = 0;
				wsc_close(c, code);
				return off;
			} else if (op == 1 || op == 2 || op == 0) {
				if (fin && op != 0 && !c->msg.len) {
					c->wl->cb.on_text(c, data, (size_t)len);
				} else {
					buf_put(&c->msg, data, (size_t)len);
					if (fin) {
						c->wl->cb.on_text(c, c->msg.p, c->msg.len);
						c->msg.len = 0;
					}
				}
			}
		}
	}
	return off;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct wsc *c = h->data;
	struct wsc_loop *wl = c->wl;

	(void)hint;
	if (!wl->rbuf_busy) {
		wl->rbuf_busy = true;
		*b = uv_buf_init(wl->rbuf, sizeof(wl->rbuf));
	} else { /* not expected: libuv reads one stream at a time */
		buf_reserve(&c->in, 65536);
		*b = uv_buf_init(c->in.p + c->in.len, 65536);
	}
}

static void handle_upgrade(struct wsc *c)
{
	char *end = memmem(c->in.p, c->in.len, "\r\n\r\n", 4);
	size_t hlen;

	if (!end) {
		if (c->in.len > 16384)
			hard_close(c, -1);
		return;
	}
	hlen = (size_t)(end - c->in.p) + 4;
	if (c->in.len < 12 || memcmp(c->in.p, "HTTP/1.1 101", 12) != 0 ||
	    !memmem(c->in.p, hlen, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28)) {
		if (c->in.len >= 12 && memcmp(c->in.p, "HTTP/1.1 ", 9) == 0)
			c->http_status = atoi(c->in.p + 9);
		hard_close(c, -1);
		return;
	}
	buf_consume(&c->in, hlen);
	c->state = WSC_OPEN;
	if (c->wl->cb.on_open)
		c->wl->cb.on_open(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct wsc *c = s->data;
	struct wsc_loop *wl = c->wl;
	bool shared = b->base == wl->rbuf;

	if (shared)
		wl->rbuf_busy = false;
	if (nread < 0) {
		hard_close(c, c->state == WSC_OPEN ? 1006 : (int)nread);
		return;
	}
	if (nread == 0 || c->closed_cb_done)
		return;
	if (!shared) {
		c->in.len += (size_t)nread;
	} else if (c->in.len || c->state != WSC_OPEN) {
		buf_put(&c->in, b->base, (size_t)nread);
	} else {
		/* Fast path: frames parsed straight from the shared buffer. */
		size_t used = parse_frames(c, b->base, (size_t)nread);
		if (!c->closed_cb_done && used < (size_t)nread)
			buf_put(&c->in, b->base + used, (size_t)nread - used);
		return;
	}
	if (c->state == WSC_UPGRADING)
		handle_upgrade(c);
	if (c->state == WSC_OPEN && c->in.len) {
		size_t used = parse_frames(c, c->in.p, c->in.len);
		if (!c->closed_cb_done)
			buf_consume(&c->in, used);
	}
}

static void on_connect(uv_connect_t *req, int status)
{
	struct wsc *c = req->data;

	if (c->closed_cb_done)
		return;
	if (status < 0) {
		hard_close(c, status);
		return;
	}
	c->state = WSC_UPGRADING;
	uv_tcp_nodelay(&c->tcp, 1);
	buf_put(&c->out, c->upgrade, strlen(c->upgrade));
	free(c->upgrade);
	c->upgrade = NULL;
	mark_dirty(c);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		hard_close(c, -1);
}

struct wsc *wsc_connect(struct wsc_loop *wl, int port, const char *protocol,
			const char *origin, void *user)
{
	struct wsc *c = calloc(1, sizeof(*c));
	struct sockaddr_in addr;
	char req[512];
	static uint32_t seed = 2463534242u;

	if (!c)
		die_oom();
	c->wl = wl;
	c->user = user;
	c->rng = (seed += 0x9e3779b9u) | 1;
	snprintf(req, sizeof(req),
		 "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
		 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n%s%s%s\r\n",
		 port, protocol, origin ? "Origin: " : "", origin ? origin : "",
		 origin ? "\r\n" : "");
	c->upgrade = strdup(req);
	if (!c->upgrade)
		die_oom();
	if (uv_tcp_init(wl->loop, &c->tcp) != 0) {
		free(c->upgrade);
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	c->creq.data = c;
	wl->open++;
	uv_ip4_addr("127.0.0.1", port, &addr);
	if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr,
			   on_connect) != 0) {
		hard_close(c, -1);
		return c;
	}
	return c;
}
