/* server.c: the daemon's loop: lws on our own libuv loop, the WebSocket
 * callback glue, signals and clean shutdown. */
#include "server.h"
#include "shift.h"
#include "common.h"
#include "http.h"
#include "log.h"
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* How long shutdown waits for clients to take their close frames. */
#define STOP_GRACE_MS 2000
/* Chunk size lws hands to RECEIVE; messages are reassembled up to
 * ws.max_message by session.c. */
#define RX_CHUNK 4096
/* The most lws sends in one send() (session.c writes a connection's queued
 * frames as one buffer; lws keeps what the socket did not take). */
#define TX_CHUNK (256 * 1024)

/* Keep-alive is ours (keepalive.h): lws gets a policy with no pings and
 * no hang-up, so it keeps no timer per connection (without a policy it
 * would ping every 300 s on its own). */
static const lws_retry_bo_t no_lws_keepalive = {0};

/* lws per-session data: only a pointer to our own session (STYLE.md #5). */
struct shim {
	struct hl_session *s;
};

uint64_t hl_server_uptime_ms(const struct hl_server *srv)
{
	return uv_now((uv_loop_t *)&srv->loop) - srv->started_ms;
}

void hl_server_session_add(struct hl_server *srv, struct hl_session *s)
{
	s->prev = NULL;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->session_count++;
	hl_keepalive_add(&srv->keepalive, &s->ka, uv_now(&srv->loop));
	srv->metrics.ws_opened[s->role]++;
	srv->metrics.ws_current[s->role]++;
}

void hl_server_session_remove(struct hl_server *srv, struct hl_session *s)
{
	hl_keepalive_remove(&srv->keepalive, &s->ka);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	srv->session_count--;
	srv->metrics.ws_current[s->role]--;
}

static struct hl_server *lws_to_srv(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

void hl_server_drop(struct hl_server *srv, struct lws *wsi)
{
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	/* lws 4.1.6 on libuv runs its due timers (this one included) only
	 * after it has served a socket, and does not re-arm its uv timer for
	 * one set from outside: on a quiet server the close came up to 15 s
	 * later. Its wake-up pipe is such a socket. */
	lws_cancel_service(srv->lws);
}

static struct hl_session *ka_session(struct hl_ka_link *l)
{
	return (struct hl_session *)((char *)l -
				     offsetof(struct hl_session, ka));
}

static void on_keepalive_ping(struct hl_keepalive *k, struct hl_ka_link *l)
{
	struct hl_server *srv = k->arg;

	if (hl_session_send_ping(ka_session(l)) == 0)
		srv->metrics.pings++;
}

/* Nothing came back for the hang-up time: the peer is presumed gone (a
 * phone that lost its network), so no close frame is written; CLOSED
 * cleans up as usual. */
static void on_keepalive_hangup(struct hl_keepalive *k, struct hl_ka_link *l)
{
	struct hl_server *srv = k->arg;
	struct hl_session *s = ka_session(l);

	if (!s->wsi)
		return;
	srv->metrics.hangups++;
	hl_info("conn.hangup", "conn=%s why=\"no answer to pings\"", s->id_str);
	hl_server_drop(srv, s->wsi);
}

/* A frame came from s (a message or a pong): its keep-alive restarts. */
static void heard(struct hl_session *s)
{
	hl_keepalive_seen(&s->srv->keepalive, &s->ka, uv_now(&s->srv->loop));
}

/* Just after each whole second of uv_now, when the wheel's next slot is
 * due (a repeating timer would drift by however late each tick ran). */
static void on_keepalive_tick(uv_timer_t *t)
{
	struct hl_server *srv = t->data;
	uint64_t now = uv_now(&srv->loop);

	hl_keepalive_advance(&srv->keepalive, now);
	uv_timer_start(t, on_keepalive_tick, 1000 - now % 1000, 0);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
		       void *user, void *in, size_t len)
{
	struct shim *shim = user;
	struct hl_server *srv;
	const struct lws_protocols *proto;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		srv = lws_context_user(lws_get_context(wsi));
		proto = lws_get_protocol(wsi);
		/* lws hands back its vhost's copy of the protocol table, so
		 * compare names, not pointers. */
		shim->s = hl_session_new(srv, wsi,
					 proto && strcmp(proto->name,
							 srv->protocols[2].name) == 0
						 ? HL_ROLE_STAFF
						 : HL_ROLE_CONTACT);
		if (!shim->s)
			return -1;
		{
			struct sockaddr_storage peer;

			if (hl_http_peer(wsi, &peer) == 0)
				shim->s->addr_tag = hl_addrlimit_acquire(
					&srv->addrs,
					(const struct sockaddr *)&peer,
					hl_now_ms() / 1000);
		}
		hl_info("conn.open", "conn=%s role=%s", shim->s->id_str,
			hl_role_name(shim->s->role));
		return 0;

	case LWS_CALLBACK_RECEIVE:
		if (!shim->s)
			return -1;
		heard(shim->s);
		return hl_session_on_receive(shim->s, in, len,
					     lws_frame_is_binary(wsi),
					     lws_is_first_fragment(wsi),
					     lws_is_final_fragment(wsi));

	case LWS_CALLBACK_RECEIVE_PONG:
		if (shim->s)
			heard(shim->s);
		return 0;

	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!shim->s)
			return -1;
		return hl_session_on_writeable(shim->s);

	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (shim->s)
			hl_debug("conn.peer_close", "conn=%s len=%zu",
				 shim->s->id_str, len);
		return 0;

	case LWS_CALLBACK_CLOSED:
		if (shim->s) {
			hl_info("conn.closed", "conn=%s", shim->s->id_str);
			hl_addrlimit_release(&lws_to_srv(wsi)->addrs,
					     shim->s->addr_tag);
			shim->s->addr_tag = 0;
			hl_auth_on_closed(&lws_to_srv(wsi)->auth, shim->s);
			hl_contacts_on_closed(&lws_to_srv(wsi)->contacts, shim->s);
			hl_session_on_closed(shim->s);
			shim->s = NULL;
		}
		return 0;

	default:
		return 0;
	}
}

/* lws' own log lines go through ours. lws may mention peer addresses in
 * them, so only errors are taken and anything that looks like an address
 * is masked before it is written (anonymity: DESIGN.md §5). */
static void lws_log_emit(int level, const char *line)
{
	char clean[512];
	size_t o = 0;

	(void)level;
	for (const char *p = line; *p && o + 8 < sizeof(clean);) {
		if ((*p >= '0' && *p <= '9') || *p == ':') {
			const char *q = p;
			int dots = 0, colons = 0;

			while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f') ||
			       (*q >= 'A' && *q <= 'F') || *q == '.' || *q == ':') {
				dots += *q == '.';
				colons += *q == ':';
				q++;
			}
			if (dots >= 3 || colons >= 2) {
				memcpy(clean + o, "<addr>", 6);
				o += 6;
				p = q;
				continue;
			}
		}
		if (*p != '\n')
			clean[o++] = *p;
		p++;
	}
	clean[o] = '\0';
	hl_warn("lws", "msg=\"%s\"", clean);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* lws sizes its fd table from the soft limit at context creation
	 * (DESIGN.md §10.3). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			hl_warn("server.rlimit", "errno=%d", errno);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct hl_server *srv = h->data;

	hl_info("server.signal", "signal=%d", signum);
	hl_server_stop(srv);
}

/* SIGHUP, on the threadpool: reads the config file as at start (defaults,
 * file, command-line settings, checks). Touches only reload_*. */
static void reload_work(uv_work_t *w)
{
	struct hl_server *srv = w->data;
	struct hl_config *c = &srv->reload_cfg;
	char *err = srv->reload_err;
	size_t cap = sizeof(srv->reload_err);

	hl_config_defaults(c);
	err[0] = '\0';
	srv->reload_rc = srv->config_file
				 ? hl_config_load_file(c, srv->config_file, err, cap)
				 : 0;
	for (int i = 0; srv->reload_rc == 0 && i < srv->noverrides; i++)
		srv->reload_rc = hl_config_set(c, srv->overrides[i].key,
					       srv->overrides[i].value, err, cap);
	if (srv->reload_rc == 0)
		srv->reload_rc = hl_config_finish(c, err, cap);
}

/*
 * SIGHUP's result, on the loop. Nothing is applied while running: every
 * key is read by some module at start (listeners, the store, limits
 * copied into sessions and timers), and log.level is read by the store's
 * writer and threadpool jobs without a lock. So a reload checks the file
 * and says whether a restart is needed to apply it (docs/operations.md).
 */
static void reload_done(uv_work_t *w, int status)
{
	struct hl_server *srv = w->data;
	bool changed;
	char msg[400];

	srv->reload_busy = false;
	if (status != 0 || srv->stopping)
		return;
	if (srv->reload_rc != 0) {
		/* The message names the file and key, never a value that
		 * could be a secret (config.c echoes at most a short escaped
		 * prefix of a bad value). */
		hl_warn("config.reload_failed", "msg=\"%s\"", srv->reload_err);
		snprintf(msg, sizeof(msg), "STATUS=config file has errors; "
			 "still running with the config loaded at start");
		hl_notify_send(&srv->notify, msg);
		return;
	}
	changed = memcmp(&srv->reload_cfg, &srv->cfg_loaded,
			 sizeof(srv->reload_cfg)) != 0;
	hl_info("config.reload", "valid=1 changed=%d restart_needed=%d",
		changed, changed);
	if (changed)
		hl_notify_send(&srv->notify, "STATUS=config file changed; "
			       "restart helplined to apply it");
}

static void on_sighup(uv_signal_t *h, int signum)
{
	struct hl_server *srv = h->data;

	(void)signum;
	hl_info("server.signal", "signal=%d", signum);
	if (srv->stopping || srv->reload_busy)
		return;
	srv->reload_req.data = srv;
	if (uv_queue_work(&srv->loop, &srv->reload_req, reload_work,
			  reload_done) == 0)
		srv->reload_busy = true;
}

/* STATUS= text for systemctl status (notify.c asks every few seconds). */
static void notify_status(void *arg, char *buf, size_t cap)
{
	struct hl_server *srv = arg;
	uint32_t counts[HL_RISK__COUNT], waiting = 0;

	hl_queue_counts(&srv->contacts.queue, counts);
	for (int i = 0; i < HL_RISK__COUNT; i++)
		waiting += counts[i];
	snprintf(buf, cap, "serving: %u connections, %u waiting, %u staff "
		 "sessions", srv->session_count, waiting,
		 (unsigned)srv->auth.nsess);
}

/* After each poll: every connection's output of this iteration goes out
 * in one write (DESIGN.md §10.7). */
static void on_flush_check(uv_check_t *h)
{
	hl_session_flush_all(h->data);
}

/* Closes our own uv handles (memory is in srv: no close callback). */
static void close_handles(struct hl_server *srv)
{
	if (!srv->handles_open)
		return;
	srv->handles_open = false;
	hl_session_flush_all(srv); /* drops the flush list's references */
	uv_close((uv_handle_t *)&srv->flush_check, NULL);
	uv_close((uv_handle_t *)&srv->flush_idle, NULL);
	uv_close((uv_handle_t *)&srv->sig_int, NULL);
	uv_close((uv_handle_t *)&srv->sig_term, NULL);
	uv_close((uv_handle_t *)&srv->sig_hup, NULL);
	uv_close((uv_handle_t *)&srv->stop_timer, NULL);
	uv_close((uv_handle_t *)&srv->keepalive_timer, NULL);
}

/* Final step of shutdown, from a uv callback (DESIGN.md §10.2). */
static void finish_stop(struct hl_server *srv)
{
	hl_auth_stop(&srv->auth);
	hl_contacts_stop(&srv->contacts);
	hl_escalations_stop(&srv->esc);
	hl_referrals_stop(&srv->ref);
	hl_metrics_stop(&srv->metrics);
	hl_retention_stop(&srv->retention);
	if (srv->lws && !srv->lws_destroyed) {
		srv->lws_destroyed = true;
		lws_context_destroy(srv->lws);
	}
	hl_store_close(&srv->store);
	close_handles(srv);
}

static void on_stop_timer(uv_timer_t *t)
{
	struct hl_server *srv = t->data;

	/* Finish once every client has taken its close frame and gone, or
	 * when the grace period is over. */
	if (srv->session_count == 0 ||
	    uv_now(&srv->loop) >= srv->stop_deadline_ms)
		finish_stop(srv);
}

void hl_server_stop(struct hl_server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	hl_info("server.stopping", "connections=%u", srv->session_count);
	{
		char st[128];

		snprintf(st, sizeof(st), "shutting down: closing %u connections",
			 srv->session_count);
		hl_notify_stopping(&srv->notify, st);
	}
	for (struct hl_session *s = srv->sessions; s; s = s->next)
		hl_session_close(s, 1001, "server shutting down");
	srv->stop_deadline_ms = uv_now(&srv->loop) + STOP_GRACE_MS;
	uv_timer_start(&srv->stop_timer, on_stop_timer, 0, 20);
}

/* lws takes a non-numeric iface for an interface name: "localhost" would
 * be looked up as a NIC and fail, so it is given as 127.0.0.1. */
static const char *info_iface(const struct hl_server *srv)
{
	return strcmp(srv->cfg.listen_host, "localhost") == 0
		       ? "127.0.0.1"
		       : srv->cfg.listen_host;
}

static int ensure_state_dir(const char *dir)
{
	struct stat sb;

	if (stat(dir, &sb) == 0)
		return S_ISDIR(sb.st_mode) ? 0 : -1;
	if (mkdir(dir, 0700) != 0) {
		hl_error("server.state_dir", "errno=%d msg=\"%s\"", errno,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Checks that host:port can be bound, so the common start-up failures (port
 * taken, address not on this host) are reported before lws is involved:
 * lws 4.1.6 on libuv, when its listening vhost fails, tears itself down in
 * a way that leaves the loop unusable (running it crashed in the unloaded
 * uv plugin). Returns 0 or an errno value.
 */
static int probe_listen(const char *host, int port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err = 0;

	memset(&ss, 0, sizeof(ss));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return EINVAL;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return EINVAL;
		len = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		err = errno;
	close(fd);
	return err;
}

/* metrics.listen: a second vhost that serves /metrics and /healthz only
 * (http.c checks which vhost a request came in on). */
static int start_metrics_vhost(struct hl_server *srv)
{
	struct lws_context_creation_info vi;
	const char *h = srv->cfg.metrics_host;

	srv->metrics_protocols[0] = srv->protocols[0];
	memset(&srv->metrics_protocols[1], 0, sizeof(srv->metrics_protocols[1]));
	memset(&vi, 0, sizeof(vi));
	vi.port = srv->cfg.metrics_port;
	vi.iface = strcmp(h, "localhost") == 0 ? "127.0.0.1" : h;
	vi.protocols = srv->metrics_protocols;
	vi.vhost_name = "metrics";
	vi.options = LWS_SERVER_OPTION_LIBUV;
	if (strchr(h, ':') == NULL)
		vi.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	vi.timeout_secs = 10;
	vi.server_string = "helplined";
	srv->metrics_vhost = lws_create_vhost(srv->lws, &vi);
	if (!srv->metrics_vhost ||
	    (srv->metrics_bound_port =
		     lws_get_vhost_listen_port(srv->metrics_vhost)) <= 0) {
		fprintf(stderr, "helplined: cannot listen on %s:%d "
				"(metrics.listen)\n",
			h, srv->cfg.metrics_port);
		srv->metrics_vhost = NULL;
		return -1;
	}
	return 0;
}

int hl_server_init(struct hl_server *srv, const struct hl_config *cfg)
{
	struct lws_context_creation_info info;
	char dbpath[HL_CONFIG_PATH_MAX + 32], err[512];
	char keypath[HL_CONFIG_PATH_MAX + 32];
	struct hl_store_opts sopts;
	int rc;

	srv->cfg = *cfg;
	srv->cfg_loaded = *cfg;
	srv->exit_status = 1;
	hl_notify_init(&srv->notify);
	hl_metrics_init(&srv->metrics);
	if (uv_loop_init(&srv->loop) != 0)
		return HL_EIO;
	srv->loop_open = true;
	srv->started_ms = uv_now(&srv->loop);

	if (hl_config_db_path(&srv->cfg, dbpath, sizeof(dbpath)) != 0)
		return HL_EINVAL;
	if (!srv->cfg.db_path[0] && ensure_state_dir(srv->cfg.state_dir) != 0) {
		fprintf(stderr, "helplined: cannot create state directory %s\n",
			srv->cfg.state_dir);
		return HL_EIO;
	}
	memset(&sopts, 0, sizeof(sopts));
	sopts.batch_max = srv->cfg.store_batch_max;
	sopts.queue_max = srv->cfg.store_queue_max;
	if (hl_config_key_path(&srv->cfg, keypath, sizeof(keypath)) != 0) {
		fprintf(stderr, "helplined: key file path too long\n");
		return HL_EINVAL;
	}
	rc = hl_keys_load(&srv->keys, keypath, 1, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "helplined: %s\n", err);
		return rc;
	}
	srv->keys_loaded = true;
	rc = hl_store_open(&srv->store, &srv->loop, dbpath, &sopts, err,
			   sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "helplined: %s\n", err);
		return rc;
	}

	uv_signal_init(&srv->loop, &srv->sig_int);
	uv_signal_init(&srv->loop, &srv->sig_term);
	uv_signal_init(&srv->loop, &srv->sig_hup);
	uv_timer_init(&srv->loop, &srv->stop_timer);
	uv_check_init(&srv->loop, &srv->flush_check);
	uv_idle_init(&srv->loop, &srv->flush_idle);
	uv_timer_init(&srv->loop, &srv->keepalive_timer);
	srv->keepalive_timer.data = srv;
	srv->sig_int.data = srv->sig_term.data = srv->stop_timer.data = srv;
	srv->sig_hup.data = srv->flush_check.data = srv->flush_idle.data = srv;
	srv->handles_open = true;
	/* Neither keeps the loop alive: they only serve sockets that do. */
	uv_unref((uv_handle_t *)&srv->flush_check);
	uv_unref((uv_handle_t *)&srv->flush_idle);
	uv_check_start(&srv->flush_check, on_flush_check);
	uv_signal_start(&srv->sig_int, on_signal, SIGINT);
	uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
	uv_signal_start(&srv->sig_hup, on_sighup, SIGHUP);

	{
		char tpath[HL_CONFIG_PATH_MAX + 32];

		snprintf(tpath, sizeof(tpath), "%s/taxonomy.json",
			 srv->cfg.web_root);
		rc = hl_taxonomy_load(&srv->taxonomy, tpath, err, sizeof(err));
		if (rc != 0) {
			fprintf(stderr, "helplined: %s\n", err);
			return rc;
		}
	}
	rc = hl_addrlimit_init(&srv->addrs, srv->cfg.max_connections_per_address,
			       srv->cfg.max_connections,
			       &srv->cfg.uncounted_addresses);
	if (rc == 0)
		rc = hl_addrlimit_set_failures(
			&srv->addrs, srv->cfg.failed_attempts_per_address,
			srv->cfg.failed_attempts_window,
			srv->cfg.max_connections);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot allocate the per-address "
			"connection table\n");
		return rc;
	}
	rc = hl_hours_init(&srv->hours, &srv->cfg, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "helplined: %s\n", err);
		return rc;
	}
	rc = hl_auth_init(&srv->auth, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load staff accounts: %s\n",
			hl_strerror(rc));
		return rc;
	}
	srv->auth_ready = true;
	rc = hl_shifts_load(srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load shifts: %s\n",
			hl_strerror(rc));
		return rc;
	}
	rc = hl_contacts_init(&srv->contacts, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load open conversations: %s\n",
			hl_strerror(rc));
		return rc;
	}
	rc = hl_inbox_init(&srv->inbox, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load the inbox: %s\n",
			hl_strerror(rc));
		return rc;
	}
	srv->inbox_ready = true;
	if (hl_clock_skew_ms() != 0)
		hl_warn("server.clock_skew", "ms=%lld (test build: simulated "
			"clock)", (long long)hl_clock_skew_ms());
	rc = hl_trust_init(&srv->trust, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load the organisation keys: %s\n",
			hl_strerror(rc));
		return rc;
	}
	rc = hl_escalations_init(&srv->esc, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot load escalations: %s\n",
			hl_strerror(rc));
		return rc;
	}
	srv->esc_ready = true;
	rc = hl_referrals_init(&srv->ref, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot start referrals: %s\n",
			hl_strerror(rc));
		return rc;
	}
	srv->ref_ready = true;
	rc = hl_metrics_start(&srv->metrics, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot start metrics: %s\n",
			hl_strerror(rc));
		return rc;
	}
	rc = hl_retention_start(&srv->retention, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot start retention: %s\n",
			hl_strerror(rc));
		return rc;
	}

	srv->protocols[0] = (struct lws_protocols){
		.name = "http",
		.callback = hl_http_callback,
		.per_session_data_size = hl_http_pss_size()};
	srv->protocols[1] = (struct lws_protocols){
		.name = "helpline.contact.v1",
		.callback = ws_callback,
		.per_session_data_size = sizeof(struct shim),
		.rx_buffer_size = RX_CHUNK,
		.tx_packet_size = TX_CHUNK};
	srv->protocols[2] = (struct lws_protocols){
		.name = "helpline.staff.v1",
		.callback = ws_callback,
		.per_session_data_size = sizeof(struct shim),
		.rx_buffer_size = RX_CHUNK,
		.tx_packet_size = TX_CHUNK};

	rc = hl_keepalive_init(&srv->keepalive,
			       (uint64_t)srv->cfg.ws_ping_interval * 1000,
			       ((uint64_t)srv->cfg.ws_ping_interval * 2 + 10) * 1000,
			       uv_now(&srv->loop), on_keepalive_ping,
			       on_keepalive_hangup, srv);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot start keep-alive: %s\n",
			hl_strerror(rc));
		return rc;
	}
	if (srv->cfg.ws_ping_interval) {
		uv_timer_start(&srv->keepalive_timer, on_keepalive_tick,
			       1000 - uv_now(&srv->loop) % 1000, 0);
		uv_unref((uv_handle_t *)&srv->keepalive_timer);
	}

	if (srv->cfg.metrics_host[0]) {
		const char *mh = strcmp(srv->cfg.metrics_host, "localhost") == 0
					 ? "127.0.0.1"
					 : srv->cfg.metrics_host;

		rc = probe_listen(mh, srv->cfg.metrics_port);
		if (rc != 0) {
			fprintf(stderr, "helplined: cannot listen on %s:%d "
					"(metrics.listen): %s\n",
				srv->cfg.metrics_host, srv->cfg.metrics_port,
				strerror(rc));
			return HL_EIO;
		}
	}
	rc = probe_listen(info_iface(srv), srv->cfg.listen_port);
	if (rc != 0) {
		fprintf(stderr, "helplined: cannot listen on %s:%d: %s\n",
			srv->cfg.listen_host, srv->cfg.listen_port, strerror(rc));
		return HL_EIO;
	}
	raise_fd_limit();
	/* Before lws_create_context, or start-up notices go to stderr
	 * (DESIGN.md §10.9). */
	lws_set_log_level(LLL_ERR, lws_log_emit);

	memset(&info, 0, sizeof(info));
	info.port = srv->cfg.listen_port;
	/* lws takes a non-numeric iface for an interface name: "localhost"
	 * would be looked up as a NIC and fail. */
	info.iface = info_iface(srv);
	info.protocols = srv->protocols;
	/* Security headers are http.c's own (one list, no duplicates). */
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (strchr(srv->cfg.listen_host, ':') == NULL)
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.foreign_loops = (void *[]){&srv->loop};
	info.user = srv;
	info.timeout_secs = 10; /* slow or stalled HTTP handshakes */
	info.max_http_header_data = 4096;
	info.max_http_header_pool = 64;
	info.server_string = "helplined";
	info.retry_and_idle_policy = &no_lws_keepalive;
	srv->lws = lws_create_context(&info);
	if (!srv->lws) {
		fprintf(stderr, "helplined: cannot listen on %s:%d "
				"(address in use, or not an address of this host?)\n",
			srv->cfg.listen_host, srv->cfg.listen_port);
		return HL_EIO;
	}
	/* lws returns a context even when the listening vhost failed (e.g.
	 * the port is taken): without the vhost there is nothing to serve. */
	srv->vhost = lws_get_vhost_by_name(srv->lws, "default");
	srv->bound_port = srv->vhost ? lws_get_vhost_listen_port(srv->vhost) : -1;
	if (srv->bound_port <= 0) {
		/* lws has already torn itself down (see probe_listen); running
		 * or destroying it again is unsafe, so exit without cleanup. */
		fprintf(stderr, "helplined: cannot listen on %s:%d\n",
			srv->cfg.listen_host, srv->cfg.listen_port);
		_exit(1);
	}
	if (!srv->cfg.allowed_origins_set)
		hl_config_default_origins(&srv->cfg, srv->bound_port);
	if (srv->cfg.metrics_host[0] && start_metrics_vhost(srv) != 0)
		return HL_EIO;
	srv->exit_status = 0;
	return HL_OK;
}

int hl_server_run(struct hl_server *srv)
{
	const char *h = srv->cfg.listen_host;
	int v6 = strchr(h, ':') != NULL;

	hl_info("server.listening", "url=http://%s%s%s:%d/ version=%s",
		v6 ? "[" : "", h, v6 ? "]" : "", srv->bound_port, HL_VERSION);
	if (srv->metrics_vhost) {
		int mv6 = strchr(srv->cfg.metrics_host, ':') != NULL;

		hl_info("metrics.listening", "url=http://%s%s%s:%d/metrics",
			mv6 ? "[" : "", srv->cfg.metrics_host, mv6 ? "]" : "",
			srv->metrics_bound_port);
	}
	/* Listening, the store open and migrated, everything loaded: tell
	 * systemd (Type=notify) and start the watchdog pings. */
	if (hl_notify_ready(&srv->notify, &srv->loop, notify_status, srv) != 0)
		hl_warn("notify.timers_failed", "status=%d", -1);
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	hl_info("server.stopped", "status=%d", srv->exit_status);
	return srv->exit_status;
}

static void on_free_timer(uv_timer_t *t)
{
	finish_stop(t->data);
}

void hl_server_free(struct hl_server *srv)
{
	if (!srv->loop_open)
		return;
	if (srv->lws) {
		/* lws on a foreign loop must first be destroyed from inside a
		 * loop callback (after a failed start nothing has done that
		 * yet), then once more after the loop has ended (DESIGN.md
		 * §10.2); destroying it from outside the loop crashed in a
		 * close callback of the unloaded uv plugin. */
		if (!srv->lws_destroyed && srv->handles_open) {
			uv_timer_start(&srv->stop_timer, on_free_timer, 0, 0);
			uv_run(&srv->loop, UV_RUN_DEFAULT);
		}
		uv_run(&srv->loop, UV_RUN_DEFAULT);
		lws_context_destroy(srv->lws);
		srv->lws = NULL;
	}
	hl_auth_stop(&srv->auth);
	hl_contacts_stop(&srv->contacts);
	hl_escalations_stop(&srv->esc);
	hl_referrals_stop(&srv->ref);
	hl_metrics_stop(&srv->metrics);
	hl_retention_stop(&srv->retention);
	hl_store_close(&srv->store);
	close_handles(srv);
	hl_notify_free(&srv->notify);
	hl_keepalive_free(&srv->keepalive);
	/* Bounded: after a failed lws_create_context, lws may leave handles
	 * of its own on our loop that nothing will ever close. */
	for (int i = 0; i < 100 && uv_run(&srv->loop, UV_RUN_NOWAIT); i++)
		;
	if (uv_loop_close(&srv->loop) != 0 && srv->exit_status == 0)
		hl_warn("server.loop_not_closed", "status=busy");
	hl_auth_free(&srv->auth);
	hl_contacts_free(&srv->contacts);
	hl_addrlimit_free(&srv->addrs);
	if (srv->inbox_ready)
		hl_inbox_free(&srv->inbox);
	hl_trust_free(&srv->trust);
	if (srv->esc_ready)
		hl_escalations_free(&srv->esc);
	if (srv->ref_ready)
		hl_referrals_free(&srv->ref);
	hl_metrics_free(&srv->metrics);
	hl_taxonomy_free(&srv->taxonomy);
	if (srv->keys_loaded)
		hl_keys_wipe(&srv->keys);
}
