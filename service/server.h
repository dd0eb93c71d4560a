/* server.h: owns the daemon: the one server struct with all shared mutable
 * state, the libuv loop, the libwebsockets context, signals and shutdown. */
#ifndef HL_SERVER_H
#define HL_SERVER_H

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "contact.h"
#include "hours.h"
#include "inbox.h"
#include "keepalive.h"
#include "trust.h"
#include "escalation.h"
#include "referral.h"
#include "retention.h"
#include "taxonomy.h"
#include "keys.h"
#include "metrics.h"
#include "notify.h"
#include "store.h"

struct hl_session;

/* A command-line setting (key as in the config file), applied over the
 * config file at start and again when SIGHUP re-reads it. */
struct hl_server_override {
	const char *key, *value;
};

/*
 * Everything the daemon shares. Built by hl_server_init, run by
 * hl_server_run, torn down by hl_server_free. Loop thread only, except the
 * store's internals.
 */
struct hl_server {
	struct hl_config cfg;            /* final configuration (a copy) */
	uv_loop_t loop;                  /* owned; lws runs on it as a foreign loop */
	struct lws_context *lws;         /* NULL after destruction */
	struct lws_vhost *vhost;         /* the main listening vhost */
	struct lws_vhost *metrics_vhost; /* metrics.listen's, or NULL */
	struct lws_protocols metrics_protocols[2]; /* http, terminator */
	int metrics_bound_port;          /* its port, 0 when none */
	struct lws_protocols protocols[4]; /* http, contact, staff, terminator */
	struct hl_keepalive keepalive;   /* ours: pings and hang-ups (keepalive.h) */
	uv_timer_t keepalive_timer;      /* advances it once a second */
	uv_signal_t sig_int, sig_term;   /* SIGINT / SIGTERM start shutdown */
	uv_signal_t sig_hup;             /* SIGHUP re-reads the config file */
	struct hl_notify notify;         /* systemd notification (notify.h) */
	/* Set by the caller before hl_server_init (both may be NULL/0); they
	 * must outlive the server. */
	const char *config_file;         /* the --config file, or NULL */
	const struct hl_server_override *overrides;
	int noverrides;
	struct hl_config cfg_loaded;     /* cfg as loaded, before run-time defaults */
	uv_work_t reload_req;            /* SIGHUP's re-read on the threadpool */
	struct hl_config reload_cfg;     /* its result */
	int reload_rc;
	char reload_err[256];
	bool reload_busy;
	uv_timer_t stop_timer;           /* polls shutdown progress */
	uint64_t stop_deadline_ms;       /* uv_now at which shutdown stops waiting */
	struct hl_store store;           /* the database */
	struct hl_keys keys;             /* the server's secret keys (keys.h) */
	bool keys_loaded;
	struct hl_auth auth;             /* staff accounts and sessions */
	bool auth_ready;
	bool inbox_ready;               /* hl_inbox_init succeeded */
	struct hl_taxonomy taxonomy;     /* triage tags and flags (taxonomy.json) */
	struct hl_contacts contacts;     /* young people and the queue */
	struct hl_hours hours;           /* opening hours (hours.*) */
	struct hl_inbox inbox;           /* out-of-hours messages */
	struct hl_trust trust;           /* org keys, devices, wraps (trust.h) */
	struct hl_escalations esc;       /* escalations to supervisors (escalation.h) */
	bool esc_ready;                  /* hl_escalations_init succeeded */
	struct hl_referrals ref;         /* referrals and their delivery (referral.h) */
	bool ref_ready;                  /* hl_referrals_init succeeded */
	int stats_inflight;              /* stats.get queries on the threadpool */
	struct hl_metrics metrics;       /* counters */
	struct hl_retention retention;   /* the purge timer (retention.h) */
	struct hl_addrlimit addrs;       /* per-address connection counts */
	struct hl_session *sessions;     /* live WebSocket sessions (list) */
	struct hl_session *flush_head;   /* sessions with output to send */
	uv_check_t flush_check;          /* sends it after each poll (session.c) */
	uv_idle_t flush_idle;            /* started while flush_head is set: the
					  * next poll does not block */
	uint32_t session_count;          /* length of sessions */
	int bound_port;                  /* the port actually listened on */
	uint64_t started_ms;             /* uv_now at start, for uptime */
	bool loop_open;                  /* uv_loop_init succeeded */
	bool stopping;                   /* shutdown started: refuse new work */
	bool lws_destroyed;              /* first lws_context_destroy done */
	bool handles_open;               /* our uv handles need closing */
	int exit_status;                 /* 0 unless start-up failed */
};

/*
 * Prepares srv from cfg (copied): initialises the loop, opens the store
 * (migrating it), creates the lws context listening on cfg's address and
 * installs signal handlers. Returns 0, or a negative HL_E* status after
 * logging why; on failure call hl_server_free. srv must be zeroed first.
 */
int hl_server_init(struct hl_server *srv, const struct hl_config *cfg);

/* Runs the loop until shutdown completes. Returns the process exit status
 * (0 after a clean shutdown). */
int hl_server_run(struct hl_server *srv);

/*
 * Starts a clean shutdown: new connections and requests are refused,
 * every WebSocket gets close 1001 "server shutting down", then the lws
 * context is destroyed, the store flushed and closed, and the loop ends.
 * Idempotent. Loop thread.
 */
void hl_server_stop(struct hl_server *srv);

/* Releases everything init created (after run, or after a failed init). */
void hl_server_free(struct hl_server *srv);

/* Milliseconds since start. */
uint64_t hl_server_uptime_ms(const struct hl_server *srv);

/* --- used by session.c and http.c --- */
void hl_server_session_add(struct hl_server *srv, struct hl_session *s);
void hl_server_session_remove(struct hl_server *srv, struct hl_session *s);

/* Drops wsi's TCP connection without a close frame, from outside an lws
 * callback: lws closes it (and calls CLOSED) within this loop iteration. */
void hl_server_drop(struct hl_server *srv, struct lws *wsi);

#endif
