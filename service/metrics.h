/* metrics.h: owns the daemon's counters, histograms and gauges and their
 * Prometheus text exposition (GET /metrics). */
#ifndef HL_METRICS_H
#define HL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "protocol.h"
#include "store.h"

struct hl_server;

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

/* Why a staff login failed, for counting (the reason codes auth.c logs;
 * hl_metrics_login_failed maps them). Never who. */
enum hl_login_failure {
	HL_LOGIN_UNKNOWN_USER,
	HL_LOGIN_BAD_PASSWORD,
	HL_LOGIN_BAD_TOTP,
	HL_LOGIN_CODE_REUSED,   /* the TOTP step was used meanwhile */
	HL_LOGIN_LOCKED,
	HL_LOGIN_DISABLED,
	HL_LOGIN_NOT_ENROLLED,
	HL_LOGIN_OTHER,         /* unreadable secret, out of memory, ... */
	HL_LOGIN__COUNT
};

/* Most finite buckets of a histogram. */
#define HL_HIST_BUCKETS_MAX 16

/*
 * A Prometheus histogram of observations in base units (seconds, jobs).
 * le[0..n-1] are the ascending finite upper bounds; bucket[i] counts the
 * observations <= le[i] and > le[i-1] (not cumulative: the exposition adds
 * them up); bucket[n] counts those above every bound (+Inf).
 */
struct hl_histogram {
	const double *le;
	uint32_t n;
	uint64_t bucket[HL_HIST_BUCKETS_MAX + 1];
	uint64_t count;
	double sum;
};

/* Sets the bounds (n <= HL_HIST_BUCKETS_MAX, ascending) and zeroes h. */
void hl_histogram_init(struct hl_histogram *h, const double *le, uint32_t n);
/* Records one observation (negative values count as 0). */
void hl_histogram_observe(struct hl_histogram *h, double v);

/* A conversation the wait tracker saw waiting (internal to metrics.c). */
struct hl_metrics_wait {
	int64_t id;          /* conversation id: memory only, never exposed */
	int64_t enqueued_ms; /* when it joined the queue (unix ms) */
};

/*
 * Counters. Loop thread only (no atomics needed). They count events, never
 * who caused them: no label ever holds an id, a name or an address.
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
	uint64_t writes;                     /* socket writes of queued frames */
	uint64_t writes_partial;             /* of those, the socket took part */
	uint64_t pings;                      /* keep-alive pings sent */
	uint64_t hangups;                    /* connections hung up: pings unanswered */
	uint64_t upgrades_refused;           /* WebSocket upgrades refused */
	uint64_t upgrades_refused_address;   /* ... of them by the per-address cap */
	uint64_t secrets_failed;             /* wrong secrets (codes, tokens, passwords) */
	uint64_t secrets_barred;             /* tries refused unchecked: address over budget */
	uint64_t http_requests;              /* plain HTTP requests answered */
	uint64_t offers;                     /* chats offered to a counsellor */
	uint64_t offers_expired;             /* offers nobody answered in time */
	uint64_t chats_taken;                /* chats a counsellor took or accepted */
	uint64_t transfers;                  /* chats transferred */
	uint64_t alerts;                     /* supervisor alerts raised */
	uint64_t chat_messages;              /* chat.send messages stored (not retries) */
	uint64_t logins;                     /* staff logins that started a session */
	uint64_t login_failures[HL_LOGIN__COUNT]; /* failed logins, by reason */

	/* Sampled by the metrics tick (hl_metrics_start), see metrics.c. */
	struct hl_histogram queue_wait;      /* seconds from queue to a counsellor */
	uint64_t queue_left;                 /* left the queue without a counsellor */
	struct hl_histogram store_latency;   /* seconds: probe job submit -> done */
	uint64_t store_probe_failed;         /* probe jobs that failed */
	uint64_t retention_purged;           /* conversations purged (retention.c) */
	uint64_t retention_runs;             /* retention batches run */

	/* Tick state (loop thread). */
	struct hl_server *srv;
	uv_timer_t tick;
	bool tick_open;
	struct hl_metrics_wait *waiting;     /* sorted by id */
	uint32_t nwaiting, capwaiting;
	struct hl_store_job probe;
	bool probe_inflight;
	uint64_t probe_started_ns;           /* uv_hrtime at submit */
};

/* Values read at scrape time from the rest of the server. */
struct hl_metrics_gauges {
	uint32_t queue_by_risk[4];           /* standard, elevated, high, immediate */
	double longest_wait_s;
	uint32_t esc_open, esc_claimed;      /* undecided escalations */
	uint32_t staff_sessions;             /* staff sessions live */
	uint32_t conv_live;                  /* conversations not yet ended */
	struct hl_store_stats store;
	double uptime_s;
	int retention_days;                  /* configured policy */
	int retention_escalated_days;
};

/* Zeroes m's counters and sets the histograms' bounds. */
void hl_metrics_init(struct hl_metrics *m);

/* Starts the 1 s tick (queue wait sampling, store probe). Loop thread,
 * after the store and contacts are up. 0 or HL_E*. */
int hl_metrics_start(struct hl_metrics *m, struct hl_server *srv);
/* Stops the tick (a probe in flight is left to the store's close). */
void hl_metrics_stop(struct hl_metrics *m);
/* Frees the tracker's memory (after the loop has ended). */
void hl_metrics_free(struct hl_metrics *m);

/* Counts a failed login under its auth.c reason code ("bad_password",
 * "unknown_user", "bad_totp", "code_reused", "locked", "disabled",
 * "not_enrolled"; anything else counts as "other"). Loop thread. */
void hl_metrics_login_failed(struct hl_metrics *m, const char *reason);

/* Reads the gauges from srv. Loop thread. */
void hl_metrics_gauges(struct hl_server *srv, struct hl_metrics_gauges *g);

/*
 * Formats every metric in Prometheus text exposition format (0.0.4) into
 * buf (cap bytes, NUL-terminated when cap > 0). Returns the length, or a
 * value >= cap if the buffer was too small.
 */
size_t hl_metrics_format(const struct hl_metrics *m,
			 const struct hl_metrics_gauges *g, char *buf,
			 size_t cap);

#endif
