/* http.h: owns plain HTTP on the service port: static files from web_root
 * with security headers, /healthz, /metrics, and the WebSocket upgrade gate
 * (path, subprotocol, staff Origin allowlist, capacity, per-address cap). */
#ifndef HL_HTTP_H
#define HL_HTTP_H

#include <libwebsockets.h>
#include <sys/socket.h>

/* The lws callback for protocols[0] ("http"). user is unused. */
int hl_http_callback(struct lws *wsi, enum lws_callback_reasons reason,
		     void *user, void *in, size_t len);

/* Writes the peer address of wsi's socket into ss (for the per-address
 * cap, addrlimit.h; never logged or stored). Returns 0, or -1 when there
 * is none. */
int hl_http_peer(struct lws *wsi, struct sockaddr_storage *ss);

/* The per-session data size protocols[0] must declare. */
size_t hl_http_pss_size(void);

/*
 * Chooses the subprotocol the way lws will bind it: the first entry of the
 * client's comma-separated Sec-WebSocket-Protocol list that names one of
 * ours. Returns 0 for helpline.contact.v1, 1 for helpline.staff.v1, -1 for
 * none.
 */
int hl_http_pick_subprotocol(const char *list);

/* Returns the Content-Type for a file name by extension, or NULL when the
 * extension is not one the service serves. */
const char *hl_http_mime_type(const char *path);

/* Returns 1 when the URL path is safe to map under web_root ("/" followed by
 * segments of [A-Za-z0-9._-], no empty, "." or ".." segment, no leading dot
 * in any segment), else 0. */
int hl_http_path_ok(const char *path);

/* Maps the URL paths that name a page rather than a file to that file:
 * "/" to "/index.html", "/console" and "/console/" to "/console.html".
 * Returns the file's path (static storage), or path itself when it is not
 * an alias. Only exact matches count: "/console.html" and "/consoles" are
 * left as they are. */
const char *hl_http_alias(const char *path);

#endif
