/* http.c: static files, health and metrics endpoints, and the upgrade gate. */
#include "http.h"
#include "common.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Sent with every response. CSP: no inline script; 'wasm-unsafe-eval' only
 * because libsodium.js compiles WebAssembly. */
#define SECURITY_HEADERS                                                       \
	"content-security-policy: default-src 'none'; script-src 'self' "      \
	"'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; "         \
	"font-src 'self'; connect-src 'self'; manifest-src 'self'; "           \
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n"      \
	"x-content-type-options: nosniff\r\n"                                  \
	"referrer-policy: no-referrer\r\n"                                     \
	"x-frame-options: DENY\r\n"                                            \
	"cross-origin-opener-policy: same-origin\r\n"                          \
	"cross-origin-resource-policy: same-origin\r\n"                        \
	"permissions-policy: camera=(), microphone=(), geolocation=(), "       \
	"interest-cohort=()\r\n"                                               \
	"cache-control: no-store\r\n"

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{".html", "text/html; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".mjs", "text/javascript; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".json", "application/json"},
	{".webmanifest", "application/manifest+json"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".wasm", "application/wasm"},
	{".txt", "text/plain; charset=utf-8"},
	{".woff2", "font/woff2"},
};

const char *hl_http_mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (!dot || strchr(dot, '/'))
		return NULL;
	for (size_t i = 0; i < HL_ARRAY_LEN(mime_types); i++)
		if (strcmp(dot, mime_types[i].ext) == 0)
			return mime_types[i].type;
	return NULL;
}

int hl_http_path_ok(const char *path)
{
	const char *p = path;

	if (*p != '/' || strlen(path) > 512)
		return 0;
	while (*p == '/') {
		const char *seg = ++p;

		if (*seg == '.' || *seg == '/' || *seg == '\0')
			return 0; /* ".", "..", hidden files, empty segments */
		while (*p && *p != '/') {
			char c = *p;
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			      c == '-'))
				return 0;
			p++;
		}
	}
	return *p == '\0';
}

const char *hl_http_alias(const char *path)
{
	static const struct {
		const char *path;
		const char *file;
	} aliases[] = {
		{"/", "/index.html"},
		{"/console", "/console.html"},
		{"/console/", "/console.html"},
	};

	for (size_t i = 0; i < HL_ARRAY_LEN(aliases); i++)
		if (strcmp(path, aliases[i].path) == 0)
			return aliases[i].file;
	return path;
}

int hl_http_pick_subprotocol(const char *list)
{
	static const char *const ours[] = {"helpline.contact.v1",
					   "helpline.staff.v1"};
	const char *p = list;

	while (*p) {
		const char *start, *end;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		for (int i = 0; i < 2; i++)
			if ((size_t)(end - start) == strlen(ours[i]) &&
			    memcmp(start, ours[i], (size_t)(end - start)) == 0)
				return i;
	}
	return -1;
}

/*
 * Writes a complete response (headers and body) and ends the transaction.
 * Returns what the lws callback should return.
 */
static int respond(struct lws *wsi, unsigned status, const char *type,
		   const char *extra_headers, const void *body, size_t len,
		   int head_only)
{
	unsigned char buf[LWS_PRE + 2048];
	unsigned char *start = buf + LWS_PRE, *p = start,
		      *end = buf + sizeof(buf) - 1;

	if (lws_add_http_common_headers(wsi, status, type, len, &p, end))
		return -1;
	if ((size_t)(end - p) < strlen(SECURITY_HEADERS) +
				       (extra_headers ? strlen(extra_headers) : 0))
		return -1;
	memcpy(p, SECURITY_HEADERS, strlen(SECURITY_HEADERS));
	p += strlen(SECURITY_HEADERS);
	if (extra_headers) {
		memcpy(p, extra_headers, strlen(extra_headers));
		p += strlen(extra_headers);
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (len && !head_only) {
		unsigned char *b = malloc(LWS_PRE + len);
		int n;

		if (!b)
			return -1;
		memcpy(b + LWS_PRE, body, len);
		n = lws_write(wsi, b + LWS_PRE, len, LWS_WRITE_HTTP_FINAL);
		free(b);
		if (n < (int)len)
			return -1;
	}
	if (lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static int respond_text(struct lws *wsi, unsigned status, const char *text)
{
	return respond(wsi, status, "text/plain; charset=utf-8", NULL, text,
		       strlen(text), 0);
}

/* Per-request state of plain HTTP connections. */
struct http_pss {
	int refuse_after_body; /* answer 405 once the body has been read */
};

size_t hl_http_pss_size(void)
{
	return sizeof(struct http_pss);
}

int hl_http_peer(struct lws *wsi, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	lws_sockfd_type fd = lws_get_socket_fd(wsi);

	memset(ss, 0, sizeof(*ss));
	if (fd < 0 || getpeername(fd, (struct sockaddr *)ss, &len) != 0)
		return -1;
	return 0;
}

static struct hl_server *server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

/* The upgrade gate: returns 0 to allow, 1 after writing a refusal. */
static int confirm_upgrade(struct lws *wsi, struct hl_server *srv)
{
	char uri[128], protos[256], origin[HL_CONFIG_ORIGIN_MAX + 1];
	int role;

	if (srv->stopping)
		goto refuse_503_stopping;
	if (srv->metrics_vhost && lws_get_vhost(wsi) == srv->metrics_vhost) {
		respond_text(wsi, 404, "Not found.\n");
		return 1; /* the metrics listener has no WebSocket */
	}
	if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
	    strcmp(uri, "/ws") != 0) {
		srv->metrics.upgrades_refused++;
		respond_text(wsi, 404, "The WebSocket endpoint is /ws.\n");
		return 1;
	}
	if (lws_hdr_copy(wsi, protos, sizeof(protos), WSI_TOKEN_PROTOCOL) <= 0 ||
	    (role = hl_http_pick_subprotocol(protos)) < 0) {
		srv->metrics.upgrades_refused++;
		hl_info("http.upgrade_refused", "why=no_subprotocol");
		respond_text(wsi, 400,
			     "A WebSocket subprotocol is required: "
			     "helpline.contact.v1 or helpline.staff.v1.\n");
		return 1;
	}
	if (role == HL_ROLE_STAFF) {
		int ok = 0;
		int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);

		for (int i = 0; n > 0 && i < srv->cfg.allowed_origins_count; i++)
			if (strcasecmp(origin, srv->cfg.allowed_origins[i]) == 0)
				ok = 1;
		if (!ok) {
			srv->metrics.upgrades_refused++;
			hl_warn("http.upgrade_refused", "why=origin role=staff");
			respond_text(wsi, 403,
				     "This origin may not open a staff connection.\n");
			return 1;
		}
	}
	if (srv->session_count >= (uint32_t)srv->cfg.max_connections) {
		srv->metrics.upgrades_refused++;
		hl_warn("http.upgrade_refused", "why=capacity count=%u",
			srv->session_count);
		respond_text(wsi, 503, "Helpline is very busy. Please try again "
				       "in a minute.\n");
		return 1;
	}
	{
		struct sockaddr_storage peer;

		if (hl_http_peer(wsi, &peer) == 0 &&
		    !hl_addrlimit_allows(&srv->addrs,
					 (const struct sockaddr *)&peer,
					 hl_now_ms() / 1000)) {
			srv->metrics.upgrades_refused++;
			srv->metrics.upgrades_refused_address++;
			/* Never the address, nor its hash: a count only. */
			hl_warn("http.upgrade_refused", "why=per_address cap=%d",
				srv->addrs.limit);
			respond_text(wsi, 503,
				     "Too many connections from your network "
				     "at once. Please close another Helpline "
				     "tab or try again in a minute.\n");
			return 1;
		}
	}
	return 0;

refuse_503_stopping:
	srv->metrics.upgrades_refused++;
	respond_text(wsi, 503, "The server is restarting. Please try again.\n");
	return 1;
}

static int serve_healthz(struct lws *wsi, struct hl_server *srv, int head)
{
	char body[256];
	int store_ok = hl_store_ping(&srv->store) == 0;
	int n;

	n = snprintf(body, sizeof(body),
		     "{\"status\":\"%s\",\"version\":\"%s\",\"uptime_s\":%llu,"
		     "\"store\":\"%s\",\"connections\":%u}",
		     srv->stopping ? "stopping" : store_ok ? "ok" : "degraded",
		     HL_VERSION,
		     (unsigned long long)(hl_server_uptime_ms(srv) / 1000),
		     store_ok ? "ok" : "down", srv->session_count);
	return respond(wsi, (store_ok && !srv->stopping) ? 200 : 503,
		       "application/json", NULL, body, (size_t)n, head);
}

static int serve_metrics(struct lws *wsi, struct hl_server *srv, int head)
{
	struct hl_metrics_gauges g;
	size_t cap = 32768, n;
	char *buf;
	int rc;

	hl_metrics_gauges(srv, &g);
	buf = malloc(cap);
	if (!buf)
		return -1;
	n = hl_metrics_format(&srv->metrics, &g, buf, cap);
	if (n >= cap) {
		free(buf);
		cap = n + 1;
		buf = malloc(cap);
		if (!buf)
			return -1;
		n = hl_metrics_format(&srv->metrics, &g, buf, cap);
	}
	rc = respond(wsi, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
		     buf, n, head);
	free(buf);
	return rc;
}

static int serve_file(struct lws *wsi, struct hl_server *srv, const char *uri,
		      int head)
{
	char path[HL_CONFIG_PATH_MAX + 600];
	const char *type;
	struct stat sb;
	int n;

	uri = hl_http_alias(uri);
	if (!hl_http_path_ok(uri))
		return respond_text(wsi, 404, "Not found.\n");
	type = hl_http_mime_type(uri);
	n = snprintf(path, sizeof(path), "%s%s", srv->cfg.web_root, uri);
	if (!type || n < 0 || (size_t)n >= sizeof(path) || stat(path, &sb) ||
	    !S_ISREG(sb.st_mode))
		return respond_text(wsi, 404, "Not found.\n");
	if (head)
		return respond(wsi, 200, type, NULL, NULL, (size_t)sb.st_size, 1);
	n = lws_serve_http_file(wsi, path, type, SECURITY_HEADERS,
				(int)strlen(SECURITY_HEADERS));
	if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi)))
		return -1;
	return 0;
}

#define METHOD_TEXT "Method not allowed.\n"
/* Largest request body read (and dropped) to answer 405 cleanly. */
#define MAX_REFUSED_BODY 65536

/*
 * Answers 405 to anything but GET and HEAD. lws 4.1 reads a request body
 * only with a Content-Length, after this callback: a small body is read and
 * dropped so the 405 goes out on a connection that stays usable; anything
 * else gets the 405 and the connection is closed.
 */
static int refuse_method(struct lws *wsi, void *user)
{
	struct http_pss *pss = user;
	char cl[24];
	long long n = -1;

	if (lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0)
		n = atoll(cl);
	if (n > 0 && n <= MAX_REFUSED_BODY &&
	    lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI) > 0) {
		pss->refuse_after_body = 1;
		return 0;
	}
	respond(wsi, 405, "text/plain; charset=utf-8",
		"allow: GET, HEAD\r\nconnection: close\r\n", METHOD_TEXT,
		strlen(METHOD_TEXT), 0);
	return -1;
}

int hl_http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len)
{
	struct hl_server *srv;
	char uri[600];
	int head = 0;

	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(wsi, server_of(wsi));

	case LWS_CALLBACK_HTTP:
		srv = server_of(wsi);
		srv->metrics.http_requests++;
		if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0) {
			lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
		} else if (lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) {
			lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_HEAD_URI);
			head = 1;
		} else {
			return refuse_method(wsi, user);
		}
		if (srv->stopping)
			return respond_text(wsi, 503, "The server is restarting.\n");
		/* With metrics.listen set, the metrics listener answers
		 * /metrics (and /healthz) only, and the main one no /metrics. */
		if (srv->metrics_vhost &&
		    lws_get_vhost(wsi) == srv->metrics_vhost) {
			if (strcmp(uri, "/metrics") == 0)
				return serve_metrics(wsi, srv, head);
			if (strcmp(uri, "/healthz") == 0)
				return serve_healthz(wsi, srv, head);
			return respond_text(wsi, 404, "Not found.\n");
		}
		if (strcmp(uri, "/healthz") == 0)
			return serve_healthz(wsi, srv, head);
		if (strcmp(uri, "/metrics") == 0 && !srv->metrics_vhost)
			return serve_metrics(wsi, srv, head);
		return serve_file(wsi, srv, uri, head);

	case LWS_CALLBACK_HTTP_BODY:
		return 0; /* a refused request's body: read and dropped */

	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (user && ((struct http_pss *)user)->refuse_after_body)
			return respond(wsi, 405, "text/plain; charset=utf-8",
				       "allow: GET, HEAD\r\n", METHOD_TEXT,
				       strlen(METHOD_TEXT), 0);
		return -1;

	case LWS_CALLBACK_HTTP_FILE_COMPLETION:
		if (lws_http_transaction_completed(wsi))
			return -1;
		return 0;

	default:
		break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}
