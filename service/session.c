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
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * lws 4.1.6 writes a close frame for this value (its private
 * LWS_WRITE_CLOSE, reserved in the public enum's numbering). We need it
 * because the documented path lost close frames (see on_writeable);
 * tests/integration/ws.test.mjs checks every close code arrives, so an lws
 * upgrade that changes this is caught.
 */
#define HL_LWS_WRITE_CLOSE ((enum lws_write_protocol)4)

/* Frames written per WRITEABLE callback before yielding to other sockets. */
#define WRITE_BATCH 16

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
	struct hl_frame *f = s->out_head, *next;

	for (; f; f = next) {
		next = f->next;
		free(f->data);
		free(f);
	}
	s->out_head = s->out_tail = NULL;
	s->out_bytes = 0;
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

int hl_session_send(struct hl_session *s, const json_t *obj)
{
	struct hl_frame *f;

	if (!s->wsi || s->close_pending)
		return HL_ECLOSED;
	f = calloc(1, sizeof(*f));
	if (!f)
		return HL_ENOMEM;
	if (hl_proto_encode(obj, LWS_PRE, &f->data, &f->len) != 0) {
		free(f);
		return HL_ENOMEM;
	}
	if (s->out_tail)
		s->out_tail->next = f;
	else
		s->out_head = f;
	s->out_tail = f;
	s->out_bytes += f->len;
	if (s->out_bytes > s->srv->cfg.ws_outq_max) {
		/* A reader this slow resumes later from its last seq; holding
		 * unbounded output for it would let one client exhaust memory. */
		free_queue(s);
		hl_session_close(s, 1008, "too slow");
		return HL_EFULL;
	}
	lws_callback_on_writable(s->wsi);
	return HL_OK;
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

/* Decodes and dispatches one complete message. */
static void handle_message(struct hl_session *s, const char *buf, size_t len)
{
	struct hl_msg msg;
	struct hl_proto_error err;

	s->srv->metrics.frames_in++;
	s->srv->metrics.bytes_in += len;
	if (hl_proto_decode(buf, len, hl_evidence_frame_max(s), &msg, &err)) {
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
	size_t max = hl_evidence_frame_max(s);

	if (s->close_pending)
		return 0; /* draining towards our close: ignore input */
	if (binary) {
		hl_session_close(s, 1003, "binary frames not accepted");
		return 0;
	}
	if (first)
		s->rx_len = 0;
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
	int n = 0;

	while (s->out_head && n < WRITE_BATCH && !lws_partial_buffered(wsi)) {
		struct hl_frame *f = s->out_head;

		if (lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT) <
		    (int)f->len)
			return -1;
		s->srv->metrics.frames_out++;
		s->srv->metrics.bytes_out += f->len;
		s->out_head = f->next;
		if (!s->out_head)
			s->out_tail = NULL;
		s->out_bytes -= f->len;
		free(f->data);
		free(f);
		n++;
	}
	if (s->out_head || lws_partial_buffered(wsi)) {
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
