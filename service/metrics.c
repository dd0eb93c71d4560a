/* metrics.c: the counters, histograms and gauges, the 1 s metrics tick and
 * their Prometheus text exposition. */
#include "metrics.h"
#include "common.h"
#include "contact.h"
#include "log.h"
#include "server.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds a young person waits for a counsellor. */
static const double wait_le[] = {5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};
/* Seconds a job spends going through the store's writer. */
static const double store_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				  0.1, 0.25, 0.5, 1, 2.5, 5};
/* How often the tick runs, and the store probe with it. */
#define TICK_MS 1000

static const char *const close_names[HL_CLOSE__COUNT] = {
	"going_away", "unsupported_data", "policy", "too_big", "try_later",
	"internal",
};
static const char *const proto_names[2] = {"helpline.contact.v1",
					   "helpline.staff.v1"};
static const char *const login_failure_names[HL_LOGIN__COUNT] = {
	"unknown_user", "bad_password", "bad_totp", "code_reused", "locked",
	"disabled", "not_enrolled", "other",
};
static const char *const risk_names[4] = {"standard", "elevated", "high",
					  "immediate"};

void hl_histogram_init(struct hl_histogram *h, const double *le, uint32_t n)
{
	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = n > HL_HIST_BUCKETS_MAX ? HL_HIST_BUCKETS_MAX : n;
}

void hl_histogram_observe(struct hl_histogram *h, double v)
{
	uint32_t i = 0;

	if (!(v > 0))
		v = 0; /* also NaN */
	while (i < h->n && v > h->le[i])
		i++;
	h->bucket[i]++;
	h->count++;
	h->sum += v;
}

void hl_metrics_init(struct hl_metrics *m)
{
	memset(m, 0, sizeof(*m));
	hl_histogram_init(&m->queue_wait, wait_le, HL_ARRAY_LEN(wait_le));
	hl_histogram_init(&m->store_latency, store_le, HL_ARRAY_LEN(store_le));
}

void hl_metrics_login_failed(struct hl_metrics *m, const char *reason)
{
	int i = 0;

	while (i < HL_LOGIN_OTHER && strcmp(reason, login_failure_names[i]) != 0)
		i++;
	m->login_failures[i]++;
}

/* ---- the tick: queue waits and the store probe ------------------------ */

static struct hl_metrics_wait *wait_find(struct hl_metrics *m, int64_t id,
					 uint32_t *at)
{
	uint32_t lo = 0, hi = m->nwaiting;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (m->waiting[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return lo < m->nwaiting && m->waiting[lo].id == id ? &m->waiting[lo]
							    : NULL;
}

static int wait_insert(struct hl_metrics *m, uint32_t at, int64_t id,
		       int64_t enqueued_ms)
{
	if (m->nwaiting == m->capwaiting) {
		uint32_t cap = m->capwaiting ? m->capwaiting * 2 : 64;
		void *p = realloc(m->waiting, cap * sizeof(*m->waiting));
		if (!p)
			return HL_ENOMEM;
		m->waiting = p;
		m->capwaiting = cap;
	}
	memmove(&m->waiting[at + 1], &m->waiting[at],
		(m->nwaiting - at) * sizeof(*m->waiting));
	m->waiting[at].id = id;
	m->waiting[at].enqueued_ms = enqueued_ms;
	m->nwaiting++;
	return HL_OK;
}

/*
 * Samples the queue: a conversation seen waiting at one tick and with a
 * counsellor at a later one is observed in queue_wait (to the tick, so
 * within a second); one that is gone or ended instead counts in queue_left.
 * Ids stay in memory here, never in a metric.
 */
static void sample_waits(struct hl_metrics *m)
{
	struct hl_server *srv = m->srv;
	int64_t now = hl_now_ms();
	uint32_t keep = 0, at;

	/* enqueued_ms < 0 marks "not seen this tick" (INT64_MIN: done); the
	 * array stays sorted by id throughout. */
	for (uint32_t i = 0; i < m->nwaiting; i++)
		m->waiting[i].enqueued_ms = -1 - m->waiting[i].enqueued_ms;
	for (struct hl_conv_live *v = srv->contacts.convs; v; v = v->next) {
		struct hl_metrics_wait *w = wait_find(m, v->id, &at);

		if (v->qe.queued) {
			if (w)
				w->enqueued_ms = v->qe.enqueued_ms;
			else if (wait_insert(m, at, v->id, v->qe.enqueued_ms) != 0)
				return;
		} else if (w) {
			int64_t enq = -1 - w->enqueued_ms;

			if (v->state == HL_CONV_ACTIVE)
				hl_histogram_observe(&m->queue_wait,
						     (double)(now - enq) / 1000.0);
			else
				m->queue_left++;
			w->enqueued_ms = INT64_MIN; /* dropped below */
		}
	}
	for (uint32_t i = 0; i < m->nwaiting; i++) {
		struct hl_metrics_wait *w = &m->waiting[i];

		if (w->enqueued_ms == INT64_MIN)
			continue;
		if (w->enqueued_ms < 0) {
			m->queue_left++; /* gone from the live list */
			continue;
		}
		m->waiting[keep++] = *w;
	}
	m->nwaiting = keep;
}

static int probe_exec(struct hl_store_job *job, sqlite3 *db,
		      sqlite3_stmt *const *stmts)
{
	(void)job;
	(void)db;
	(void)stmts;
	return 0;
}

static void probe_done(struct hl_store_job *job, int status)
{
	struct hl_metrics *m = hl_container_of(job, struct hl_metrics, probe);

	m->probe_inflight = false;
	if (status != 0) {
		m->store_probe_failed++;
		return;
	}
	hl_histogram_observe(&m->store_latency,
			     (double)(uv_hrtime() - m->probe_started_ns) / 1e9);
}

static void on_tick(uv_timer_t *t)
{
	struct hl_metrics *m = t->data;

	if (m->srv->stopping)
		return;
	sample_waits(m);
	if (!m->probe_inflight) {
		memset(&m->probe, 0, sizeof(m->probe));
		m->probe.exec = probe_exec;
		m->probe.done = probe_done;
		m->probe_started_ns = uv_hrtime();
		if (hl_store_submit(&m->srv->store, &m->probe) == 0)
			m->probe_inflight = true;
		else
			m->store_probe_failed++;
	}
}

int hl_metrics_start(struct hl_metrics *m, struct hl_server *srv)
{
	m->srv = srv;
	if (uv_timer_init(&srv->loop, &m->tick) != 0)
		return HL_EIO;
	m->tick.data = m;
	m->tick_open = true;
	uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
	return HL_OK;
}

void hl_metrics_stop(struct hl_metrics *m)
{
	if (!m->tick_open)
		return;
	m->tick_open = false;
	uv_close((uv_handle_t *)&m->tick, NULL);
}

void hl_metrics_free(struct hl_metrics *m)
{
	free(m->waiting);
	m->waiting = NULL;
	m->nwaiting = m->capwaiting = 0;
}

void hl_metrics_gauges(struct hl_server *srv, struct hl_metrics_gauges *g)
{
	uint32_t counts[HL_RISK__COUNT];

	memset(g, 0, sizeof(*g));
	hl_queue_counts(&srv->contacts.queue, counts);
	for (int i = 0; i < 4 && i < HL_RISK__COUNT; i++)
		g->queue_by_risk[i] = counts[i];
	g->longest_wait_s =
		(double)hl_queue_longest_wait_ms(&srv->contacts.queue,
						 hl_now_ms()) / 1000.0;
	for (const struct hl_esc_live *e = srv->esc.live; e; e = e->next) {
		if (e->state == HL_ESC_CLAIMED)
			g->esc_claimed++;
		else
			g->esc_open++;
	}
	g->staff_sessions = (uint32_t)srv->auth.nsess;
	for (struct hl_conv_live *v = srv->contacts.convs; v; v = v->next)
		g->conv_live++;
	hl_store_stats(&srv->store, &g->store);
	g->uptime_s = (double)hl_server_uptime_ms(srv) / 1000.0;
	g->retention_days = srv->cfg.retention_days;
	g->retention_escalated_days = srv->cfg.retention_escalated_days;
}

/* ---- exposition ------------------------------------------------------- */

struct out {
	char *buf;
	size_t cap, off;
};

/* Appends to the buffer, tracking the length even past cap. */
static void put(struct out *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(o->off < o->cap ? o->buf + o->off : NULL,
		      o->off < o->cap ? o->cap - o->off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->off += (size_t)n;
}

static void head(struct out *o, const char *name, const char *type,
		 const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(struct out *o, const char *name, const char *type,
		const char *help, uint64_t v)
{
	head(o, name, type, help);
	put(o, "%s %" PRIu64 "\n", name, v);
}

static void one_f(struct out *o, const char *name, const char *help, double v)
{
	head(o, name, "gauge", help);
	put(o, "%s %.3f\n", name, v);
}

/* A double as Prometheus reads it (shortest exact-enough form). */
static void put_le(struct out *o, double v)
{
	put(o, "%.6g", v);
}

/* A histogram from its parts: n bounds, n + 1 non-cumulative buckets. */
static void histogram_raw(struct out *o, const char *name, const char *help,
			  const double *le, uint32_t n, const uint64_t *bucket,
			  double sum)
{
	uint64_t cum = 0;

	head(o, name, "histogram", help);
	for (uint32_t i = 0; i < n; i++) {
		cum += bucket[i];
		put(o, "%s_bucket{le=\"", name);
		put_le(o, le[i]);
		put(o, "\"} %" PRIu64 "\n", cum);
	}
	cum += bucket[n];
	put(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
	/* _count is the +Inf bucket by definition. */
	put(o, "%s_sum %.6f\n%s_count %" PRIu64 "\n", name, sum, name, cum);
}

static void histogram(struct out *o, const char *name, const char *help,
		      const struct hl_histogram *h)
{
	histogram_raw(o, name, help, h->le, h->n, h->bucket, h->sum);
}

size_t hl_metrics_format(const struct hl_metrics *m,
			 const struct hl_metrics_gauges *g, char *buf,
			 size_t cap)
{
	struct out o = {buf, cap, 0};

	if (cap)
		buf[0] = '\0';
	/* Connections and traffic. */
	head(&o, "helpline_ws_connections", "gauge",
	     "WebSocket connections open now, by subprotocol.");
	for (int i = 0; i < 2; i++)
		put(&o, "helpline_ws_connections{protocol=\"%s\"} %" PRIu64 "\n",
		    proto_names[i], m->ws_current[i]);
	head(&o, "helpline_ws_connections_opened_total", "counter",
	     "WebSocket connections accepted, by subprotocol.");
	for (int i = 0; i < 2; i++)
		put(&o, "helpline_ws_connections_opened_total{protocol=\"%s\"} %"
			PRIu64 "\n", proto_names[i], m->ws_opened[i]);
	head(&o, "helpline_ws_closes_total", "counter",
	     "WebSocket connections closed by the server, by reason.");
	for (int i = 0; i < HL_CLOSE__COUNT; i++)
		put(&o, "helpline_ws_closes_total{reason=\"%s\"} %" PRIu64 "\n",
		    close_names[i], m->closes[i]);
	one(&o, "helpline_ws_upgrades_refused_total", "counter",
	    "WebSocket upgrades refused (wrong path, subprotocol, origin, "
	    "capacity, per-address cap, shutdown).", m->upgrades_refused);
	one(&o, "helpline_ws_upgrades_refused_per_address_total", "counter",
	    "WebSocket upgrades refused because one address (an IPv6 /64) "
	    "held server.max_connections_per_address.",
	    m->upgrades_refused_address);
	one(&o, "helpline_secrets_failed_total", "counter",
	    "Wrong secrets offered (return codes, resume tokens, staff "
	    "passwords and enrolment codes).", m->secrets_failed);
	one(&o, "helpline_secrets_barred_total", "counter",
	    "Tries at a secret refused unchecked because the address had "
	    "spent server.failed_attempts_per_address.", m->secrets_barred);
	one(&o, "helpline_ws_messages_received_total", "counter",
	    "Complete WebSocket messages received.", m->frames_in);
	one(&o, "helpline_ws_messages_sent_total", "counter",
	    "WebSocket frames written.", m->frames_out);
	one(&o, "helpline_ws_received_bytes_total", "counter",
	    "Payload bytes of the messages received.", m->bytes_in);
	one(&o, "helpline_ws_sent_bytes_total", "counter",
	    "Payload bytes of the frames written.", m->bytes_out);
	one(&o, "helpline_ws_writes_total", "counter",
	    "Writes of a connection's queued frames (all of them at once).",
	    m->writes);
	one(&o, "helpline_ws_writes_partial_total", "counter",
	    "Of those, writes the socket took only part of (a slow reader; "
	    "the rest follows when it is writable).", m->writes_partial);
	one(&o, "helpline_ws_pings_total", "counter",
	    "Keep-alive pings sent to connections silent for "
	    "ws.ping_interval.", m->pings);
	one(&o, "helpline_ws_keepalive_hangups_total", "counter",
	    "Connections hung up because nothing came back from them for "
	    "twice ws.ping_interval plus 10 s.", m->hangups);
	one(&o, "helpline_http_requests_total", "counter",
	    "Plain HTTP requests answered.", m->http_requests);
	head(&o, "helpline_errors_total", "counter",
	     "Error replies sent, by protocol error code.");
	for (int i = 0; i < HL_ERR__COUNT; i++)
		put(&o, "helpline_errors_total{code=\"%s\"} %" PRIu64 "\n",
		    hl_err_code_name((enum hl_err_code)i), m->errors[i]);

	/* The queue and chats. */
	head(&o, "helpline_queue_length", "gauge",
	     "Young people waiting now, by risk class.");
	for (int i = 0; i < 4; i++)
		put(&o, "helpline_queue_length{risk=\"%s\"} %u\n", risk_names[i],
		    g ? g->queue_by_risk[i] : 0);
	one_f(&o, "helpline_queue_longest_wait_seconds",
	      "The longest current wait in the queue.",
	      g ? g->longest_wait_s : 0);
	histogram(&o, "helpline_queue_wait_seconds",
		  "Time from joining the queue to a counsellor (sampled each "
		  "second).", &m->queue_wait);
	one(&o, "helpline_queue_left_total", "counter",
	    "Young people who left the queue before a counsellor took the chat.",
	    m->queue_left);
	one(&o, "helpline_conversations_live", "gauge",
	    "Conversations not yet ended (waiting, offered or active).",
	    g ? g->conv_live : 0);
	one(&o, "helpline_offers_total", "counter",
	    "Chats offered to a counsellor.", m->offers);
	one(&o, "helpline_offers_expired_total", "counter",
	    "Offers that timed out unanswered.", m->offers_expired);
	one(&o, "helpline_chats_taken_total", "counter",
	    "Chats a counsellor accepted, took or picked.", m->chats_taken);
	one(&o, "helpline_transfers_total", "counter", "Chats transferred.",
	    m->transfers);
	one(&o, "helpline_alerts_total", "counter", "Supervisor alerts raised.",
	    m->alerts);
	one(&o, "helpline_chat_messages_total", "counter",
	    "Chat messages stored and relayed (retries not counted).",
	    m->chat_messages);
	head(&o, "helpline_escalations_open", "gauge",
	     "Undecided escalations, by state.");
	put(&o, "helpline_escalations_open{state=\"open\"} %u\n"
		"helpline_escalations_open{state=\"claimed\"} %u\n",
	    g ? g->esc_open : 0, g ? g->esc_claimed : 0);
	one(&o, "helpline_staff_sessions", "gauge",
	    "Staff login sessions live now.", g ? g->staff_sessions : 0);
	one(&o, "helpline_logins_total", "counter",
	    "Staff logins that started a session.", m->logins);
	head(&o, "helpline_login_failures_total", "counter",
	     "Failed staff logins, by reason.");
	for (int i = 0; i < HL_LOGIN__COUNT; i++)
		put(&o, "helpline_login_failures_total{reason=\"%s\"} %" PRIu64
			"\n", login_failure_names[i], m->login_failures[i]);

	/* The store. */
	if (g) {
		one(&o, "helpline_store_jobs_committed_total", "counter",
		    "Store jobs committed.", g->store.jobs_committed);
		one(&o, "helpline_store_jobs_failed_total", "counter",
		    "Store jobs that failed.", g->store.jobs_failed);
		one(&o, "helpline_store_batches_total", "counter",
		    "Store transactions committed or attempted (jobs / batches "
		    "is the mean batch size).", g->store.batches);
		one(&o, "helpline_store_commit_failures_total", "counter",
		    "Store transactions whose BEGIN or COMMIT failed.",
		    g->store.commit_failures);
		one(&o, "helpline_store_checkpoints_total", "counter",
		    "WAL checkpoints run by the checkpointer thread, beside "
		    "the writer.", g->store.checkpoints);
		one(&o, "helpline_store_writer_checkpoints_total", "counter",
		    "WAL checkpoints the writer ran itself, between batches, "
		    "because the WAL had passed its hard limit.",
		    g->store.checkpoints_inline);
		one(&o, "helpline_store_checkpoint_failures_total", "counter",
		    "WAL checkpoints that failed (other than busy).",
		    g->store.checkpoint_failures);
		one(&o, "helpline_store_wal_bytes_total", "counter",
		    "Bytes the store's writer wrote to the WAL (per job: what "
		    "a message costs the disk).", g->store.wal_bytes);
		one(&o, "helpline_store_queued_jobs", "gauge",
		    "Store jobs waiting for the writer now.", g->store.queued);
		one(&o, "helpline_store_batch_max_jobs", "gauge",
		    "The largest store batch since start.", g->store.max_batch);
		histogram_raw(&o, "helpline_store_commit_seconds",
			      "Time the store's writer spent on each batch's "
			      "transaction, BEGIN to COMMIT with its fsync.",
			      hl_store_commit_le, HL_STORE_COMMIT_LE_N,
			      g->store.commit_bucket, g->store.commit_seconds_sum);
		histogram_raw(&o, "helpline_store_batch_jobs",
			      "Jobs in each store batch (one transaction).",
			      hl_store_size_le, HL_STORE_SIZE_LE_N,
			      g->store.size_bucket, (double)g->store.size_jobs_sum);
	}
	histogram(&o, "helpline_store_write_latency_seconds",
		  "Time for a probe job submitted each second to go through "
		  "the store's writer (queue wait and its batch's commit).",
		  &m->store_latency);
	one(&o, "helpline_store_probe_failures_total", "counter",
	    "Probe jobs the store refused or failed.", m->store_probe_failed);

	/* Retention and the process. */
	one(&o, "helpline_retention_purged_conversations_total", "counter",
	    "Conversations deleted by the retention policy.",
	    m->retention_purged);
	one(&o, "helpline_retention_batches_total", "counter",
	    "Retention batches run.", m->retention_runs);
	if (g) {
		one(&o, "helpline_retention_days", "gauge",
		    "Days an ended conversation is kept (retention.days).",
		    (uint64_t)g->retention_days);
		one_f(&o, "helpline_uptime_seconds", "Seconds since start.",
		      g->uptime_s);
	}
	head(&o, "helpline_build_info", "gauge", "The version running.");
	put(&o, "helpline_build_info{version=\"%s\"} 1\n", HL_VERSION);
	return o.off;
}
