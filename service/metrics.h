/* metrics.h: owns the daemon's counters and their text exposition. */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

/* Why the server closed a WebSocket, for counting. */
enum hl_close_kind {
	HL_CLOSE_GOING_AWAY,   /* 1001 shutdown */
	HL_CLOSE_UNSUPPORTED,  /* 1003 binary frame */
	HL_CLOSE_POLICY,       /* 1008 */
	HL_CLOSE_TOO_BIG,      /* 1009 */
	HL_CLOSE_TRY_LATER,    /* 1013 */
	HL_CLOSE_INTERNAL,     /* 1011 */
	HL_CLOSE__COUNT
};

/*
 * Counters. Loop thread only (no atomics needed). They count events, never
 * who caused them.
 */
struct hl_metrics {
	uint64_t errors[HL_ERR__COUNT];      /* error replies sent, by code */
	uint64_t closes[HL_CLOSE__COUNT];    /* server-initiated closes */
	uint64_t ws_opened[2];               /* by role: 0 contact, 1 staff */
	uint64_t ws_current[2];              /* open now, by role */
	uint64_t frames_in;                  /* complete messages received */
	uint64_t frames_out;                 /* frames written */
	uint64_t bytes_in;                   /* payload bytes of frames_in */
	uint64_t bytes_out;                  /* payload bytes of frames_out */
	uint64_t upgrades_refused;           /* WebSocket upgrades refused */
	uint64_t http_requests;              /* plain HTTP requests answered */
	uint64_t offers;                     /* chats offered to a counsellor */
	uint64_t offers_expired;             /* offers nobody answered in time */
	uint64_t chats_taken;                /* chats a counsellor took or accepted */
	uint64_t transfers;                  /* chats transferred */
	uint64_t alerts;                     /* supervisor alerts raised */
	uint64_t chat_messages;              /* chat.send messages stored (not retries) */
};

/*
 * Formats every counter in Prometheus text exposition format into buf (cap
 * bytes, NUL-terminated). extra is appended verbatim (may be NULL). Returns
 * the length, or a value >= cap if the buffer was too small.
 */
size_t hl_metrics_format(const struct hl_metrics *m, const char *extra,
			 char *buf, size_t cap);

#endif
