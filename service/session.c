/* session.c: one WebSocket connection: reassembly, decode, the capped output
 * queue, and closes that always reach the client with their code. */
#include "session.h"
#include "common.h"
#include "dispatch.h"
#include "evidence_msg.h"
#include "log.h"
#include "server.h"

#include <libwebsockets.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

/*
 * lws 4.1.6 writes a close frame for this value (its private
 * LWS_WRITE_CLOSE, reserved in the public enum's numbering). We need it
 * because the documented path lost close frames (see on_writeable);
 * tests/integration/ws.test.mjs checks every close code arrives, so an lws
 * upgrade that changes this is caught.
 */
#define HL_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* The longest WebSocket frame header a server writes (RFC 6455 §5.2). */
#define FRAME_HDR_MAX 10

const char *hl_role_name(enum hl_role role)
{
	return role == HL_ROLE_STAFF ? "staff" : "contact";
}

struct hl_session *hl_session_new(struct hl_server *srv, struct lws *wsi,
				  enum hl_role role)
{
	struct hl_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->srv = srv;
	s->wsi = wsi;
	s->role = role;
	s->refs = 1; /* held by the socket until on_closed */
	randombytes_buf(&s->id, sizeof(s->id));
	snprintf(s->id_str, sizeof(s->id_str), "%016llx",
		 (unsigned long long)s->id);
	hl_server_session_add(srv, s);
	return s;
}

static void free_queue(struct hl_session *s)
{
	free(s->out);
	s->out = NULL;
	s->out_len = s->out_cap = s->out_text = 0;
	s->out_frames = 0;
}

static void session_free(struct hl_session *s)
{
	sodium_memzero(s->enrol_secret, sizeof(s->enrol_secret));
	sodium_memzero(s->enrol_code, sizeof(s->enrol_code));
	free_queue(s);
	free(s->rx);
	free(s);
}

void hl_session_ref(struct hl_session *s)
{
	s->refs++;
}

void hl_session_unref(struct hl_session *s)
{
	if (--s->refs == 0)
		session_free(s);
}

static enum hl_close_kind close_kind(uint16_t code)
{
	switch (code) {
	case 1001: return HL_CLOSE_GOING_AWAY;
	case 1003: return HL_CLOSE_UNSUPPORTED;
	case 1009: return HL_CLOSE_TOO_BIG;
	case 1013: return HL_CLOSE_TRY_LATER;
	case 1011: return HL_CLOSE_INTERNAL;
	default: return HL_CLOSE_POLICY;
	}
}

void hl_session_close(struct hl_session *s, uint16_t code, const char *reason)
{
	if (!s->wsi || s->close_pending)
		return;
	s->close_pending = true;
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	s->srv->metrics.closes[close_kind(code)]++;
	hl_info("conn.closing", "conn=%s code=%u reason=\"%s\"", s->id_str,
		(unsigned)code, s->close_reason);
	lws_callback_on_writable(s->wsi);
}

/* Makes room for more bytes of output; false on ENOMEM. */
static bool out_reserve(struct hl_session *s, size_t more)
{
	size_t cap = s->out_cap ? s->out_cap : 1024;
	unsigned char *p;

	if (more > SIZE_MAX / 4 - s->out_len)
		return false;
	if (s->out_len + more <= s->out_cap)
		return true;
	while (cap < s->out_len + more)
		cap *= 2;
	p = realloc(s->out, LWS_PRE + cap);
	if (!p)
		return false;
	s->out = p;
	s->out_cap = cap;
	return true;
}

static int out_put(const char *chunk, size_t size, void *arg)
{
	struct hl_session *s = arg;

	if (!out_reserve(s, size))
		return -1;
	memcpy(s->out + LWS_PRE + s->out_len, chunk, size);
	s->out_len += size;
	return 0;
}

static void on_flush_idle(uv_idle_t *h)
{
	(void)h; /* only there so that the loop's next poll does not wait */
}

/* Caps the queue and puts s on the flush list. */
static int queued(struct hl_session *s)
{
	struct hl_server *srv = s->srv;

	if (s->out_len > srv->cfg.ws_outq_max) {
		/* A reader this slow resumes later from its last seq; holding
		 * unbounded output for it would let one client exhaust memory. */
		free_queue(s);
		hl_session_close(s, 1008, "too slow");
		return HL_EFULL;
	}
	if (!s->flush_queued) {
		s->flush_queued = true;
		hl_session_ref(s);
		if (!srv->flush_head)
			uv_idle_start(&srv->flush_idle, on_flush_idle);
		s->flush_next = srv->flush_head;
		srv->flush_head = s;
	}
	return HL_OK;
}

/*
 * A frame is built in place: its text goes after room for the longest
 * header (RFC 6455 §5.2: 2 + 8 bytes) and is then moved back against the
 * header it needs. A server's frames are unmasked; one text frame, FIN
 * set, no extensions (none are negotiated).
 */
static int frame_begin(struct hl_session *s, size_t hint, size_t *start)
{
	if (!s->wsi || s->close_pending)
		return HL_ECLOSED;
	if (!out_reserve(s, FRAME_HDR_MAX + hint))
		return HL_ENOMEM;
	*start = s->out_len;
	s->out_len += FRAME_HDR_MAX;
	return HL_OK;
}

static int frame_end(struct hl_session *s, size_t start)
{
	size_t len = s->out_len - start - FRAME_HDR_MAX;
	size_t hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
	unsigned char *f = s->out + LWS_PRE + start;

	memmove(f + hdr, f + FRAME_HDR_MAX, len);
	f[0] = 0x81; /* FIN, text */
	if (hdr == 2) {
		f[1] = (unsigned char)len;
	} else if (hdr == 4) {
		f[1] = 126;
		f[2] = (unsigned char)(len >> 8);
		f[3] = (unsigned char)len;
	} else {
		f[1] = 127;
		for (int i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	}
	s->out_len = start + hdr + len;
	s->out_frames++;
	s->out_text += len;
	return queued(s);
}

int hl_session_send(struct hl_session *s, const json_t *obj)
{
	size_t start;
	int rc = frame_begin(s, 512, &start);

	if (rc != HL_OK)
		return rc;
	if (hl_proto_dump(obj, out_put, s) != 0) {
		s->out_len = start;
		return HL_ENOMEM;
	}
	return frame_end(s, start);
}

int hl_session_send_text(struct hl_session *s, const char *text, size_t len)
{
	size_t start;
	int rc = frame_begin(s, len, &start);

	if (rc != HL_OK)
		return rc;
	out_put(text, len, s); /* the room is reserved */
	return frame_end(s, start);
}

size_t hl_server_page_budget(const struct hl_server *srv)
{
	return srv->cfg.ws_outq_max / 4;
}

size_t hl_session_page_budget(const struct hl_session *s)
{
	return hl_server_page_budget(s->srv);
}

int hl_session_send_ping(struct hl_session *s)
{
	/* FIN, ping, 2 bytes. Not empty: lws 4.1.6 passes a pong to
	 * LWS_CALLBACK_RECEIVE_PONG only when it has a payload, and that is
	 * how the answer is heard. */
	static const char ping[4] = {(char)0x89, 2, 'h', 'l'};

	if (!s->wsi || s->close_pending)
		return HL_ECLOSED;
	if (out_put(ping, sizeof(ping), s) != 0)
		return HL_ENOMEM;
	return queued(s);
}

/*
 * Writes all of s's queued frames with one lws_write. LWS_WRITE_HTTP makes
 * lws send the bytes as they are (its ws role passes them to
 * lws_issue_raw): the frames are already framed. What the socket does not
 * take, lws keeps and sends first when it is writable again, asking for
 * POLLOUT itself; until then lws_partial_buffered() is true and nothing
 * more is written (so frames never interleave). This is lws 4.1.6
 * behaviour outside its documented API (DESIGN.md §10.7):
 * tests/integration/ws.test.mjs forces partial sends and checks that every
 * frame arrives once and in order. Returns 0, or -1 on a socket error.
 */
static int write_out(struct hl_session *s)
{
	if (lws_write(s->wsi, s->out + LWS_PRE, s->out_len, LWS_WRITE_HTTP) <
	    (int)s->out_len)
		return -1;
	s->srv->metrics.writes++;
	s->srv->metrics.writes_partial += lws_partial_buffered(s->wsi) != 0;
	s->srv->metrics.frames_out += s->out_frames;
	s->srv->metrics.bytes_out += s->out_text;
	/* Freed, not kept: an idle connection holds no output buffer. */
	free_queue(s);
	return 0;
}

void hl_session_flush_all(struct hl_server *srv)
{
	struct hl_session *s = srv->flush_head, *next;

	srv->flush_head = NULL;
	uv_idle_stop(&srv->flush_idle);
	for (; s; s = next) {
		next = s->flush_next;
		s->flush_next = NULL;
		s->flush_queued = false;
		if (s->wsi && s->out_len) {
			if (s->close_pending || lws_partial_buffered(s->wsi))
				/* on_writeable sends it, in order, then
				 * the close frame */
				lws_callback_on_writable(s->wsi);
			else if (write_out(s) != 0)
				/* Outside a callback we cannot return -1. */
				hl_server_drop(srv, s->wsi);
		}
		hl_session_unref(s);
	}
}

void hl_session_error(struct hl_session *s, const char *id,
		      enum hl_err_code code, const char *message,
		      const char *field)
{
	hl_session_error_with(s, id, code, message, field, NULL);
}

void hl_session_error_with(struct hl_session *s, const char *id,
			   enum hl_err_code code, const char *message,
			   const char *field, json_t *extra)
{
	json_t *reply;

	if ((unsigned)code >= HL_ERR__COUNT)
		code = HL_ERR_INTERNAL;
	s->srv->metrics.errors[code]++;
	hl_debug("conn.error", "conn=%s code=%s", s->id_str,
		 hl_err_code_name(code));
	reply = hl_proto_error_reply(id, code, message, field);
	if (reply) {
		if (extra)
			json_object_update_missing(reply, extra);
		hl_session_send(s, reply);
		json_decref(reply);
	}
	json_decref(extra);
}

bool hl_session_may_try_secret(struct hl_session *s, const char *id)
{
	struct hl_server *srv = s->srv;
	int64_t wait = hl_addrlimit_barred_ms(&srv->addrs, s->addr_tag,
					      hl_now_ms());
	int64_t secs = (wait + 999) / 1000;
	char text[128];

	if (!wait)
		return true;
	srv->metrics.secrets_barred++;
	/* Never the address, nor its hash. */
	hl_warn("conn.secret_barred", "conn=%s retry_after=%lld", s->id_str,
		(long long)secs);
	snprintf(text, sizeof(text),
		 "too many failed attempts from your network; try again in "
		 "%lld minute%s", (long long)((secs + 59) / 60),
		 (secs + 59) / 60 == 1 ? "" : "s");
	hl_session_error_with(s, id, HL_ERR_RATE_LIMITED, text, NULL,
			      json_pack("{sI}", "retry_after", (json_int_t)secs));
	if (++s->auth_failures >= HL_SESSION_MAX_FAILURES)
		hl_session_close(s, 1008, "too many failed attempts");
	return false;
}

void hl_session_secret_failed(struct hl_session *s)
{
	s->auth_failures++;
	s->srv->metrics.secrets_failed++;
	if (!hl_addrlimit_failed(&s->srv->addrs, s->addr_tag, hl_now_ms()))
		hl_warn("conn.secret_untracked",
			"conn=%s why=failure table full", s->id_str);
}

void hl_session_secret_refused(struct hl_session *s, const char *id,
			       enum hl_err_code code, const char *message)
{
	hl_session_secret_failed(s);
	hl_session_error(s, id, code, message, NULL);
	if (s->auth_failures >= HL_SESSION_MAX_FAILURES)
		hl_session_close(s, 1008, "too many failed attempts");
}

/*
 * The connection's request budget: a token bucket refilled at ws.rate per
 * second up to ws.burst. Returns true to go ahead. Over budget the request
 * is refused with rate_limited (answered, so the client knows); a client
 * that goes on sending a further ws.burst requests without one getting
 * through is closed with 1008. Every message counts, valid or not.
 */
static bool within_rate(struct hl_session *s, const char *id)
{
	const struct hl_config *cfg = &s->srv->cfg;
	struct timespec ts;
	int64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (s->rate_at_ms == 0)
		s->rate_tokens = cfg->ws_burst;
	else
		s->rate_tokens += (double)(now - s->rate_at_ms) * cfg->ws_rate / 1000.0;
	if (s->rate_tokens > cfg->ws_burst)
		s->rate_tokens = cfg->ws_burst;
	s->rate_at_ms = now;
	if (s->rate_tokens >= 1.0) {
		s->rate_tokens -= 1.0;
		s->rate_refused = 0;
		return true;
	}
	if (++s->rate_refused > cfg->ws_burst) {
		hl_warn("conn.rate_closed", "conn=%s", s->id_str);
		hl_session_close(s, 1008, "rate limit");
		return false;
	}
	if (s->rate_refused == 1)
		hl_info("conn.rate_limited", "conn=%s", s->id_str);
	hl_session_error(s, id, HL_ERR_RATE_LIMITED,
			 "too many requests; slow down", NULL);
	return false;
}

/* The largest message s may send, as far as one of len bytes needs to
 * know: hl_evidence_frame_max is never below ws.max_message, so a message
 * within that is within it too, without looking up the member of staff
 * behind s for every chat message (0.3% of the relay's CPU). */
static size_t frame_max(struct hl_session *s, size_t len)
{
	size_t plain = s->srv->cfg.ws_max_message;

	return len <= plain ? plain : hl_evidence_frame_max(s);
}

/* Decodes and dispatches one complete message. */
static void handle_message(struct hl_session *s, const char *buf, size_t len)
{
	struct hl_msg msg;
	struct hl_proto_error err;

	s->srv->metrics.frames_in++;
	s->srv->metrics.bytes_in += len;
	if (hl_proto_decode(buf, len, frame_max(s, len), &msg, &err)) {
		if (within_rate(s, err.id))
			hl_session_error(s, err.id, err.code, err.message,
					 err.field);
		return;
	}
	if (within_rate(s, msg.id)) {
		if (s->srv->stopping)
			hl_session_error(s, msg.id, HL_ERR_SHUTTING_DOWN,
					 "server is shutting down", NULL);
		else
			hl_dispatch(s, &msg);
	}
	hl_msg_release(&msg);
}

int hl_session_on_receive(struct hl_session *s, const void *in, size_t len,
			  bool binary, bool first, bool final)
{
	size_t max;

	if (s->close_pending)
		return 0; /* draining towards our close: ignore input */
	if (binary) {
		hl_session_close(s, 1003, "binary frames not accepted");
		return 0;
	}
	if (first)
		s->rx_len = 0;
	max = frame_max(s, s->rx_len + len);
	if (first && final) {
		/* Common case: the whole message in one chunk, no copy. */
		if (len > max) {
			hl_session_close(s, 1009, "message too big");
			return 0;
		}
		handle_message(s, in, len);
		return 0;
	}
	if (len > max - s->rx_len) {
		free(s->rx);
		s->rx = NULL;
		s->rx_len = s->rx_cap = 0;
		hl_session_close(s, 1009, "message too big");
		return 0;
	}
	if (s->rx_len + len > s->rx_cap) {
		size_t cap = s->rx_cap ? s->rx_cap : 1024;
		unsigned char *p;

		while (cap < s->rx_len + len)
			cap *= 2;
		if (cap > max)
			cap = max;
		p = realloc(s->rx, cap);
		if (!p) {
			hl_session_close(s, 1011, "out of memory");
			return 0;
		}
		s->rx = p;
		s->rx_cap = cap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	if (final) {
		handle_message(s, (const char *)s->rx, s->rx_len);
		s->rx_len = 0;
		if (s->rx_cap > 4096) { /* don't pin big buffers on idle sockets */
			free(s->rx);
			s->rx = NULL;
			s->rx_cap = 0;
		}
	}
	return 0;
}

int hl_session_on_writeable(struct hl_session *s)
{
	struct lws *wsi = s->wsi;

	if (s->out_len && !lws_partial_buffered(wsi) && write_out(s) != 0)
		return -1;
	if (s->out_len || lws_partial_buffered(wsi)) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (s->close_pending && !s->close_sent) {
		/*
		 * Write the close frame ourselves and let lws finish the
		 * handshake when the peer echoes it. lws 4.1.6 lost the frame
		 * when we set lws_close_reason() and returned -1 here (the
		 * peer saw 1006; DESIGN.md §10.5), so that path is not used.
		 */
		unsigned char buf[LWS_PRE + 2 + sizeof(s->close_reason)];
		size_t rl = strlen(s->close_reason);

		buf[LWS_PRE] = (unsigned char)(s->close_code >> 8);
		buf[LWS_PRE + 1] = (unsigned char)(s->close_code & 0xff);
		memcpy(buf + LWS_PRE + 2, s->close_reason, rl);
		if (lws_write(wsi, buf + LWS_PRE, 2 + rl, HL_LWS_WRITE_CLOSE) < 0)
			return -1;
		s->close_sent = true;
		/* A peer that never answers is dropped after this long. */
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 3);
	}
	return 0;
}

void hl_session_on_closed(struct hl_session *s)
{
	hl_server_session_remove(s->srv, s);
	s->wsi = NULL;
	free_queue(s);
	hl_session_unref(s);
}
