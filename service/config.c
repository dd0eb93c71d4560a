/* config.c: one table of keys drives both the INI file and the command line. */
#include "config.h"
#include "hours.h"
#include "common.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef HL_DEFAULT_WEB_ROOT
#define HL_DEFAULT_WEB_ROOT "/usr/share/helpline/client-web"
#endif
#define HL_DEFAULT_STATE_DIR "/var/lib/helpline"
#define HL_DB_FILE "helpline.db"

_Static_assert(sizeof(HL_DEFAULT_WEB_ROOT) <= HL_CONFIG_PATH_MAX,
	       "HL_DEFAULT_WEB_ROOT does not fit in hl_config.web_root");

/* Longest value echoed back in an error message, in input bytes. */
#define ECHO_MAX 48

struct key_def;

/*
 * A setter validates value and, only when it is valid, stores it in cfg.
 * On failure it returns HL_EINVAL and writes the reason ("expected ...")
 * into why; the caller adds the location, the key and the echoed value.
 */
typedef int (*key_setter)(const struct key_def *k, struct hl_config *cfg,
			  const char *value, char *why, size_t whylen);

enum key_kind {
	KIND_INT,     /* int field, decimal, range min..max */
	KIND_SIZE,    /* size_t field, bytes with optional k/m suffix */
	KIND_PATH,    /* char[] field, non-empty, no control characters */
	KIND_LISTEN,  /* listen_host + listen_port */
	KIND_LEVEL,   /* log_level */
	KIND_ORIGINS, /* allowed_origins list */
	KIND_CHOICE,  /* int field, one of the words in choices (1, 2, ...) */
	KIND_HOURS,   /* char[] field checked by hours.c (schedule or zone) */
	KIND_NETS,    /* struct hl_nets field (addrlimit.c parses) */
};

/* One configuration key: where it lives in the file and in the struct. */
struct key_def {
	const char *section; /* INI section, e.g. "server" */
	const char *name;    /* key inside the section, e.g. "listen" */
	enum key_kind kind;
	long long min, max;  /* inclusive range for KIND_INT and KIND_SIZE */
	size_t offset;       /* offset of the field in struct hl_config */
	size_t size;         /* size of that field (room for NUL in strings) */
	key_setter set;
	const char *choices; /* KIND_CHOICE: space-separated words, value 1.. */
};

static int set_int(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen);
static int set_size(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen);
static int set_path(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen);
static int set_listen(const struct key_def *k, struct hl_config *cfg,
		      const char *value, char *why, size_t whylen);
static int set_level(const struct key_def *k, struct hl_config *cfg,
		     const char *value, char *why, size_t whylen);
static int set_origins(const struct key_def *k, struct hl_config *cfg,
		       const char *value, char *why, size_t whylen);
static int set_choice(const struct key_def *k, struct hl_config *cfg,
		      const char *value, char *why, size_t whylen);
static int set_hours(const struct key_def *k, struct hl_config *cfg,
		     const char *value, char *why, size_t whylen);
static int set_url(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen);
static int set_key(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen);
static int set_metrics_listen(const struct key_def *k, struct hl_config *cfg,
			      const char *value, char *why, size_t whylen);
static int set_nets(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen);

#define FIELD(f) \
	offsetof(struct hl_config, f), sizeof(((struct hl_config *)0)->f)

/* Every key there is. The file parser and hl_config_set both use only this. */
static const struct key_def keys[] = {
	{"server", "listen", KIND_LISTEN, 0, 0, FIELD(listen_host), set_listen, NULL},
	{"server", "web_root", KIND_PATH, 0, 0, FIELD(web_root), set_path, NULL},
	{"server", "state_dir", KIND_PATH, 0, 0, FIELD(state_dir), set_path, NULL},
	{"server", "max_connections", KIND_INT, 1, 1000000,
	 FIELD(max_connections), set_int, NULL},
	{"server", "max_connections_per_address", KIND_INT, 0, 1000000,
	 FIELD(max_connections_per_address), set_int, NULL},
	{"server", "failed_attempts_per_address", KIND_INT, 0, 100000,
	 FIELD(failed_attempts_per_address), set_int, NULL},
	{"server", "failed_attempts_window", KIND_INT, 1, 86400,
	 FIELD(failed_attempts_window), set_int, NULL},
	{"server", "uncounted_addresses", KIND_NETS, 0, 0,
	 FIELD(uncounted_addresses), set_nets, NULL},
	{"store", "db", KIND_PATH, 0, 0, FIELD(db_path), set_path, NULL},
	{"store", "batch_max", KIND_INT, 1, 100000, FIELD(store_batch_max),
	 set_int, NULL},
	{"store", "queue_max", KIND_INT, 16, 10000000, FIELD(store_queue_max),
	 set_int, NULL},
	{"store", "key_file", KIND_PATH, 0, 0, FIELD(key_file), set_path, NULL},
	{"auth", "session_idle", KIND_INT, 60, 86400, FIELD(auth_session_idle),
	 set_int, NULL},
	{"auth", "session_max", KIND_INT, 300, 604800, FIELD(auth_session_max),
	 set_int, NULL},
	{"auth", "max_failures", KIND_INT, 1, 100, FIELD(auth_max_failures),
	 set_int, NULL},
	{"auth", "lockout", KIND_INT, 10, 86400, FIELD(auth_lockout), set_int, NULL},
	{"auth", "reauth_window", KIND_INT, 30, 3600, FIELD(auth_reauth_window),
	 set_int, NULL},
	{"auth", "pwhash_inflight", KIND_INT, 1, 64, FIELD(auth_pwhash_inflight),
	 set_int, NULL},
	{"auth", "pwhash_queue", KIND_INT, 0, 100000, FIELD(auth_pwhash_queue),
	 set_int, NULL},
	{"queue", "max", KIND_INT, 1, 1000000, FIELD(queue_max), set_int, NULL},
	{"queue", "ageing", KIND_INT, 10, 86400, FIELD(queue_ageing), set_int, NULL},
	{"queue", "resume_ttl", KIND_INT, 60, 604800, FIELD(queue_resume_ttl),
	 set_int, NULL},
	{"queue", "counsellor_grace", KIND_INT, 5, 3600,
	 FIELD(queue_counsellor_grace), set_int, NULL},
	{"queue", "routing", KIND_CHOICE, 0, 0, FIELD(queue_routing), set_choice,
	 "offer pull both"},
	{"queue", "offer_timeout", KIND_INT, 5, 600, FIELD(queue_offer_timeout),
	 set_int, NULL},
	{"chat", "transfer_announce", KIND_CHOICE, 0, 0,
	 FIELD(chat_transfer_announce), set_choice, "no yes"},
	{"chat", "envelopes", KIND_CHOICE, 0, 0, FIELD(chat_envelopes),
	 set_choice, "opaque strict"},
	{"escalation", "realert", KIND_INT, 5, 3600, FIELD(escalation_realert),
	 set_int, NULL},
	{"evidence", "max_bundle", KIND_SIZE, 4096, 67108864,
	 FIELD(evidence_max_bundle), set_size, NULL},
	{"referral", "partner_url", KIND_PATH, 0, 0, FIELD(referral_partner_url),
	 set_url, NULL},
	{"referral", "partner_key", KIND_PATH, 0, 0, FIELD(referral_partner_key),
	 set_key, NULL},
	{"referral", "connect_timeout", KIND_INT, 1, 300,
	 FIELD(referral_connect_timeout), set_int, NULL},
	{"referral", "timeout", KIND_INT, 1, 600, FIELD(referral_timeout),
	 set_int, NULL},
	{"referral", "attempts", KIND_INT, 1, 100, FIELD(referral_attempts),
	 set_int, NULL},
	{"referral", "backoff", KIND_INT, 1, 86400, FIELD(referral_backoff),
	 set_int, NULL},
	{"referral", "backoff_max", KIND_INT, 1, 604800,
	 FIELD(referral_backoff_max), set_int, NULL},
	{"e2e", "checkpoint_every", KIND_INT, 1, 10000,
	 FIELD(e2e_checkpoint_every), set_int, NULL},
	{"hours", "weekly", KIND_HOURS, 0, 0, FIELD(hours_weekly), set_hours, NULL},
	{"hours", "exceptions", KIND_HOURS, 0, 0, FIELD(hours_exceptions),
	 set_hours, NULL},
	{"hours", "timezone", KIND_HOURS, 0, 0, FIELD(hours_timezone), set_hours,
	 NULL},
	{"ws", "max_message", KIND_SIZE, 256, 1048576, FIELD(ws_max_message),
	 set_size, NULL},
	{"ws", "outq_max", KIND_SIZE, 4096, 67108864, FIELD(ws_outq_max),
	 set_size, NULL},
	{"ws", "ping_interval", KIND_INT, 0, 3600, FIELD(ws_ping_interval),
	 set_int, NULL},
	{"ws", "rate", KIND_INT, 1, 10000, FIELD(ws_rate), set_int, NULL},
	{"ws", "burst", KIND_INT, 1, 100000, FIELD(ws_burst), set_int, NULL},
	{"staff", "allowed_origins", KIND_ORIGINS, 0, 0, FIELD(allowed_origins),
	 set_origins, NULL},
	{"log", "level", KIND_LEVEL, 0, 0, FIELD(log_level), set_level, NULL},
	{"log", "format", KIND_CHOICE, 0, 0, FIELD(log_format), set_choice,
	 "text json"},
	{"metrics", "listen", KIND_PATH, 0, 0, FIELD(metrics_host),
	 set_metrics_listen, NULL},
	{"retention", "days", KIND_INT, 1, 3650, FIELD(retention_days), set_int,
	 NULL},
	{"retention", "escalated_days", KIND_INT, 1, 36500,
	 FIELD(retention_escalated_days), set_int, NULL},
	{"retention", "interval", KIND_INT, 1, 86400, FIELD(retention_interval),
	 set_int, NULL},
	{"retention", "batch", KIND_INT, 1, 10000, FIELD(retention_batch),
	 set_int, NULL},
};

#define NKEYS HL_ARRAY_LEN(keys)

/* ---- messages ---------------------------------------------------------- */

/*
 * Escapes s (len bytes) for a message: control bytes become \xNN so an
 * operator's value cannot break the line; at most ECHO_MAX input bytes,
 * then "...". dst should hold ECHO_MAX * 4 + 4 bytes.
 */
static void echo_n(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = hl_log_escape(dst, cap, s, len < ECHO_MAX ? len : ECHO_MAX);

	if (len > ECHO_MAX && n + 4 <= cap)
		memcpy(dst + n, "...", 4);
}

static void echo(char *dst, size_t cap, const char *s)
{
	echo_n(dst, cap, s, strlen(s));
}

/* ---- small parsers ----------------------------------------------------- */

/*
 * Parses a whole string as a decimal integer: an optional '-' then digits,
 * nothing else (no '+', no spaces, no hex or octal). Returns 0, HL_EINVAL
 * when s is not such a number, or HL_ERANGE when it overflows long long.
 */
static int parse_ll(const char *s, long long *out)
{
	const char *p = s;
	char *end;
	long long v;

	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return HL_EINVAL;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return HL_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return HL_ERANGE;
	if (*end != '\0')
		return HL_EINVAL;
	*out = v;
	return HL_OK;
}

/* Parses a port number "0".."65535" that is the whole of s. */
static int parse_port(const char *s, int *out)
{
	long long v;

	if (*s == '-' || parse_ll(s, &v) != 0 || v < 0 || v > 65535)
		return HL_EINVAL;
	*out = (int)v;
	return HL_OK;
}

static bool has_control_char(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_loopback_host(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0 ||
	       strcmp(host, "localhost") == 0;
}

/* ---- setters ----------------------------------------------------------- */

static int set_int(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen)
{
	long long v;

	if (parse_ll(value, &v) != 0 || v < k->min || v > k->max) {
		hl_set_err(why, whylen, "expected an integer from %lld to %lld",
			k->min, k->max);
		return HL_EINVAL;
	}
	*(int *)(void *)((char *)cfg + k->offset) = (int)v;
	return HL_OK;
}

static int set_size(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen)
{
	char digits[32];
	size_t len = strlen(value);
	long long v = 0, mult = 1;
	int rc = HL_EINVAL;

	if (len > 0 && len < sizeof(digits) && value[0] != '-') {
		memcpy(digits, value, len + 1);
		switch (digits[len - 1]) {
		case 'k':
		case 'K': mult = 1024; digits[len - 1] = '\0'; break;
		case 'm':
		case 'M': mult = 1024 * 1024; digits[len - 1] = '\0'; break;
		default: break;
		}
		rc = parse_ll(digits, &v);
		if (rc == 0 && v > LLONG_MAX / mult)
			rc = HL_ERANGE;
	}
	if (rc != 0 || v * mult < k->min || v * mult > k->max) {
		hl_set_err(why, whylen,
			"expected a size in bytes from %lld to %lld "
			"(suffix k or m for KiB or MiB)",
			k->min, k->max);
		return HL_EINVAL;
	}
	*(size_t *)(void *)((char *)cfg + k->offset) = (size_t)(v * mult);
	return HL_OK;
}

static int set_path(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen)
{
	size_t len = strlen(value);

	if (len == 0) {
		hl_set_err(why, whylen, "expected a path, not an empty value");
		return HL_EINVAL;
	}
	if (len >= k->size) {
		hl_set_err(why, whylen, "expected a path of at most %zu bytes",
			k->size - 1);
		return HL_EINVAL;
	}
	if (has_control_char(value)) {
		hl_set_err(why, whylen,
			"expected a path without control characters");
		return HL_EINVAL;
	}
	/* Clear the whole field so no stale tail of an older value stays. */
	memset((char *)cfg + k->offset, 0, k->size);
	memcpy((char *)cfg + k->offset, value, len);
	return HL_OK;
}

/* A partner endpoint: https://HOST[:PORT][/PATH], printable ASCII without
 * spaces, quotes or backslashes; in HL_TEST_HOOKS builds also
 * http://127.0.0.1[:PORT][/PATH] (the tests' local receiver). "" clears it. */
static int set_url(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen)
{
	size_t len = strlen(value), i;
	const char *host;

	if (len >= k->size) {
		hl_set_err(why, whylen, "expected a URL of at most %zu bytes",
			   k->size - 1);
		return HL_EINVAL;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
		    c == '<' || c == '>') {
			hl_set_err(why, whylen, "expected a URL of printable "
				   "ASCII without spaces or quotes");
			return HL_EINVAL;
		}
	}
	if (len > 0) {
		if (strncmp(value, "https://", 8) == 0) {
			host = value + 8;
		}
#ifdef HL_TEST_HOOKS
		else if (strncmp(value, "http://127.0.0.1", 16) == 0 &&
			 (value[16] == '\0' || value[16] == ':' ||
			  value[16] == '/')) {
			host = value + 7;
		}
#endif
		else {
			hl_set_err(why, whylen, "expected an https:// URL");
			return HL_EINVAL;
		}
		if (*host == '\0' || *host == '/' || *host == ':' ||
		    strchr(value, '@') || strchr(value, '#')) {
			hl_set_err(why, whylen, "expected https://HOST[:PORT]"
				   "[/PATH] (no user, no fragment)");
			return HL_EINVAL;
		}
	}
	memset((char *)cfg + k->offset, 0, k->size);
	memcpy((char *)cfg + k->offset, value, len);
	return HL_OK;
}

/* A public key: base64url without padding of 32 bytes (43 characters), or
 * "" to clear it. */
static int set_key(const struct key_def *k, struct hl_config *cfg,
		   const char *value, char *why, size_t whylen)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t len = strlen(value);

	if (len != 0 && (len != 43 || strspn(value, alphabet) != 43 ||
			 !strchr("AEIMQUYcgkosw048", value[42]))) {
		hl_set_err(why, whylen, "expected a 32-byte public key in "
			   "base64url without padding (43 characters)");
		return HL_EINVAL;
	}
	if (len >= k->size)
		return HL_EINVAL;
	memset((char *)cfg + k->offset, 0, k->size);
	memcpy((char *)cfg + k->offset, value, len);
	return HL_OK;
}

#define V6_REASON \
	"expected HOST:PORT with an IPv6 address in brackets, e.g. [::1]:8080"

/*
 * Parses "HOST:PORT" into host (canonical form, IPv6 without brackets) and
 * port. Returns 0 or HL_EINVAL with the reason in why.
 */
static int parse_listen(const char *value, char host[64], int *port,
			char *why, size_t whylen)
{
	unsigned char addr[16];
	char tmp[64];
	const char *colon, *end;
	size_t hlen;

	if (value[0] == '[') {
		end = strchr(value, ']');
		if (!end) {
			hl_set_err(why, whylen, "expected HOST:PORT; missing "
					     "']' after the IPv6 address");
			return HL_EINVAL;
		}
		hlen = (size_t)(end - value - 1);
		if (hlen == 0 || hlen >= sizeof(tmp)) {
			hl_set_err(why, whylen, V6_REASON);
			return HL_EINVAL;
		}
		memcpy(tmp, value + 1, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1 ||
		    !inet_ntop(AF_INET6, addr, host, 64)) {
			hl_set_err(why, whylen, V6_REASON);
			return HL_EINVAL;
		}
		colon = end + 1;
		if (*colon != ':') {
			hl_set_err(why, whylen,
				"expected HOST:PORT, e.g. [::1]:8080");
			return HL_EINVAL;
		}
	} else {
		colon = strrchr(value, ':');
		if (!colon) {
			hl_set_err(why, whylen,
				"expected HOST:PORT, e.g. 127.0.0.1:8080");
			return HL_EINVAL;
		}
		if (memchr(value, ':', (size_t)(colon - value))) {
			hl_set_err(why, whylen,
				"expected HOST:PORT; put an IPv6 address in "
				"brackets, e.g. [::1]:8080");
			return HL_EINVAL;
		}
		hlen = (size_t)(colon - value);
		if (hlen == 0 || hlen >= sizeof(tmp)) {
			hl_set_err(why, whylen,
				"expected HOST:PORT, e.g. 127.0.0.1:8080");
			return HL_EINVAL;
		}
		memcpy(tmp, value, hlen);
		tmp[hlen] = '\0';
		if (strcasecmp(tmp, "localhost") == 0) {
			memcpy(host, "localhost", sizeof("localhost"));
		} else if (inet_pton(AF_INET, tmp, addr) != 1 ||
			   !inet_ntop(AF_INET, addr, host, 64)) {
			hl_set_err(why, whylen,
				"expected HOST:PORT where HOST is an IPv4 "
				"address, [IPv6 address] or localhost");
			return HL_EINVAL;
		}
	}
	if (parse_port(colon + 1, port) != 0) {
		hl_set_err(why, whylen,
			"expected HOST:PORT with PORT from 0 to 65535");
		return HL_EINVAL;
	}
	return HL_OK;
}

static int set_listen(const struct key_def *k, struct hl_config *cfg,
		      const char *value, char *why, size_t whylen)
{
	char host[64] = "";
	int port;

	(void)k;
	if (parse_listen(value, host, &port, why, whylen) != 0)
		return HL_EINVAL;
	_Static_assert(sizeof(cfg->listen_host) == sizeof(host),
		       "listen_host size");
	memcpy(cfg->listen_host, host, sizeof(host));
	cfg->listen_port = port;
	return HL_OK;
}

/* metrics.listen: empty, or HOST:PORT like server.listen. */
static int set_metrics_listen(const struct key_def *k, struct hl_config *cfg,
			      const char *value, char *why, size_t whylen)
{
	char host[64] = "";
	int port;

	(void)k;
	if (!value[0]) {
		cfg->metrics_host[0] = '\0';
		cfg->metrics_port = -1;
		return HL_OK;
	}
	if (parse_listen(value, host, &port, why, whylen) != 0)
		return HL_EINVAL;
	_Static_assert(sizeof(cfg->metrics_host) == sizeof(host),
		       "metrics_host size");
	memcpy(cfg->metrics_host, host, sizeof(host));
	cfg->metrics_port = port;
	return HL_OK;
}

static int set_level(const struct key_def *k, struct hl_config *cfg,
		     const char *value, char *why, size_t whylen)
{
	enum hl_log_level level;

	(void)k;
	if (hl_log_parse_level(value, &level) != 0) {
		hl_set_err(why, whylen,
			"expected one of debug, info, warn, error, off");
		return HL_EINVAL;
	}
	cfg->log_level = (int)level;
	return HL_OK;
}

/* hours.weekly / hours.exceptions / hours.timezone: stored as text,
 * checked by hours.c so a bad schedule stops start-up naming the key. */
static int set_hours(const struct key_def *k, struct hl_config *cfg,
		     const char *value, char *why, size_t whylen)
{
	struct hl_hours *h;
	size_t len = strlen(value);
	int rc;

	if (len >= k->size) {
		hl_set_err(why, whylen, "at most %zu bytes", k->size - 1);
		return HL_EINVAL;
	}
	if (has_control_char(value)) {
		hl_set_err(why, whylen, "no control characters");
		return HL_EINVAL;
	}
	if (strcmp(k->name, "timezone") == 0) {
		rc = hl_hours_timezone_ok(value, why, whylen);
	} else {
		h = malloc(sizeof(*h));
		if (!h)
			return HL_ENOMEM;
		rc = strcmp(k->name, "weekly") == 0
			     ? hl_hours_parse(h, value, NULL, why, whylen)
			     : hl_hours_parse(h, "daily 00:00-24:00", value, why,
					      whylen);
		free(h);
	}
	if (rc != 0)
		return HL_EINVAL;
	memset((char *)cfg + k->offset, 0, k->size);
	memcpy((char *)cfg + k->offset, value, len);
	return HL_OK;
}

/* Value i (1-based) of the space-separated words in k->choices; "yes"/"no"
 * style keys list "no yes" so no = 1, yes = 2, stored as 0 / 1 below. */
static int set_choice(const struct key_def *k, struct hl_config *cfg,
		      const char *value, char *why, size_t whylen)
{
	const char *p = k->choices;
	size_t vlen = strlen(value);
	int i = 1;
	bool yesno = strcmp(k->choices, "no yes") == 0;

	while (*p) {
		size_t n = strcspn(p, " ");

		if (n == vlen && strncmp(p, value, n) == 0) {
			*(int *)(void *)((char *)cfg + k->offset) = yesno ? i - 1 : i;
			return HL_OK;
		}
		p += n;
		while (*p == ' ')
			p++;
		i++;
	}
	hl_set_err(why, whylen, "expected one of: %s", k->choices);
	return HL_EINVAL;
}

/*
 * Checks a DNS host name: labels of [a-z0-9-] (already lower-cased), 1..63
 * bytes each, not starting or ending with '-', no empty label, no trailing
 * dot (browsers would send it, and it would be a different origin).
 */
static bool valid_dns_name(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[len - 1] != '-';
}

/*
 * Parses one origin (s, len bytes, not NUL-terminated) into its canonical
 * form as a browser sends it in the Origin header: lower-case scheme and
 * host, canonical IPv6, no default port. Returns 0 or HL_EINVAL with why.
 */
static int parse_origin(const char *s, size_t len, char *out, size_t outlen,
			char *why, size_t whylen)
{
	char item[ECHO_MAX * 4 + 4], host[HL_CONFIG_ORIGIN_MAX], tmp[64];
	unsigned char addr[16];
	const char *p, *end = s + len, *scheme;
	size_t hlen;
	int port = -1, n;

	echo_n(item, sizeof(item), s, len); /* only for messages */
	if (len == 4 && strncasecmp(s, "null", 4) == 0) {
		hl_set_err(why, whylen,
			"\"null\" is not allowed: sandboxed pages, files and "
			"other opaque origins send it, and they are never "
			"trusted");
		return HL_EINVAL;
	}
	if (len > 7 && strncasecmp(s, "http://", 7) == 0) {
		scheme = "http";
		p = s + 7;
	} else if (len > 8 && strncasecmp(s, "https://", 8) == 0) {
		scheme = "https";
		p = s + 8;
	} else {
		hl_set_err(why, whylen,
			"\"%s\": expected http://HOST[:PORT] or "
			"https://HOST[:PORT]",
			item);
		return HL_EINVAL;
	}

	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		hlen = close ? (size_t)(close - p - 1) : 0;
		if (!close || hlen == 0 || hlen >= sizeof(tmp)) {
			hl_set_err(why, whylen,
				"\"%s\": expected an IPv6 address in brackets",
				item);
			return HL_EINVAL;
		}
		memcpy(tmp, p + 1, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1 ||
		    !inet_ntop(AF_INET6, addr, tmp, sizeof(tmp))) {
			hl_set_err(why, whylen,
				"\"%s\": expected an IPv6 address in brackets",
				item);
			return HL_EINVAL;
		}
		snprintf(host, sizeof(host), "[%s]", tmp);
		p = close + 1;
	} else {
		bool numeric = true;
		hlen = 0;
		while (p + hlen < end && p[hlen] != ':' && p[hlen] != '/') {
			char c = p[hlen];
			bool ok = (c >= 'a' && c <= 'z') ||
				  (c >= 'A' && c <= 'Z') ||
				  (c >= '0' && c <= '9') || c == '.' ||
				  c == '-';
			if (!ok || hlen + 1 >= sizeof(host)) {
				hl_set_err(why, whylen,
					"\"%s\": expected a host of letters, "
					"digits, '.' and '-', an IPv4 address "
					"or [IPv6 address]",
					item);
				return HL_EINVAL;
			}
			if ((c < '0' || c > '9') && c != '.')
				numeric = false;
			if (c >= 'A' && c <= 'Z')
				c = (char)(c - 'A' + 'a');
			host[hlen] = c;
			hlen++;
		}
		host[hlen] = '\0';
		if (numeric ? inet_pton(AF_INET, host, addr) != 1
			    : !valid_dns_name(host, hlen)) {
			hl_set_err(why, whylen,
				"\"%s\": expected a host name, an IPv4 "
				"address or [IPv6 address]",
				item);
			return HL_EINVAL;
		}
		p += hlen;
	}

	if (p < end && *p == ':') {
		char digits[8];
		size_t dl = 0;

		p++;
		while (p + dl < end && p[dl] != '/')
			dl++;
		if (dl > 0 && dl < sizeof(digits)) {
			memcpy(digits, p, dl);
			digits[dl] = '\0';
		}
		if (dl == 0 || dl >= sizeof(digits) ||
		    parse_port(digits, &port) != 0 || port == 0) {
			hl_set_err(why, whylen,
				"\"%s\": expected a port from 1 to 65535",
				item);
			return HL_EINVAL;
		}
		p += dl;
		/* Browsers leave the default port out of the Origin header. */
		if ((port == 80 && scheme[4] == '\0') ||
		    (port == 443 && scheme[4] == 's'))
			port = -1;
	}
	if (p < end) {
		if (*p == '/' && p + 1 == end)
			hl_set_err(why, whylen,
				"\"%s\": remove the trailing '/': an origin "
				"is scheme://host[:port] with no path",
				item);
		else
			hl_set_err(why, whylen,
				"\"%s\": an origin is scheme://host[:port] "
				"with no path",
				item);
		return HL_EINVAL;
	}
	if (port > 0)
		n = snprintf(out, outlen, "%s://%s:%d", scheme, host, port);
	else
		n = snprintf(out, outlen, "%s://%s", scheme, host);
	if (n < 0 || (size_t)n >= outlen) {
		hl_set_err(why, whylen, "\"%s\": longer than %zu bytes", item,
			outlen - 1);
		return HL_EINVAL;
	}
	return HL_OK;
}

static int set_nets(const struct key_def *k, struct hl_config *cfg,
		    const char *value, char *why, size_t whylen)
{
	struct hl_nets nets;

	if (hl_nets_parse(value, &nets, why, whylen) != 0)
		return HL_EINVAL;
	memcpy((char *)cfg + k->offset, &nets, sizeof(nets));
	return HL_OK;
}

/* Adds origin to list unless present. Returns 0 or HL_EFULL. */
static int add_origin(char (*list)[HL_CONFIG_ORIGIN_MAX], int *count,
		      const char *origin)
{
	for (int i = 0; i < *count; i++)
		if (strcmp(list[i], origin) == 0)
			return HL_OK;
	if (*count >= HL_CONFIG_MAX_ORIGINS)
		return HL_EFULL;
	snprintf(list[*count], HL_CONFIG_ORIGIN_MAX, "%s", origin);
	(*count)++;
	return HL_OK;
}

static int set_origins(const struct key_def *k, struct hl_config *cfg,
		       const char *value, char *why, size_t whylen)
{
	char list[HL_CONFIG_MAX_ORIGINS][HL_CONFIG_ORIGIN_MAX];
	char one[HL_CONFIG_ORIGIN_MAX];
	const char *p = value;
	int count = 0;

	(void)k;
	memset(list, 0, sizeof(list)); /* copied whole into cfg below */
	for (;;) {
		size_t len;
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		len = strcspn(p, " \t,");
		if (parse_origin(p, len, one, sizeof(one), why, whylen) != 0)
			return HL_EINVAL;
		if (add_origin(list, &count, one) != 0) {
			hl_set_err(why, whylen, "expected at most %d origins",
				HL_CONFIG_MAX_ORIGINS);
			return HL_EINVAL;
		}
		p += len;
	}
	if (count == 0) {
		hl_set_err(why, whylen,
			"expected one or more origins such as "
			"https://helpline.example.org");
		return HL_EINVAL;
	}
	memset(cfg->allowed_origins, 0, sizeof(cfg->allowed_origins));
	memcpy(cfg->allowed_origins, list, sizeof(list[0]) * (size_t)count);
	cfg->allowed_origins_count = count;
	cfg->allowed_origins_set = 1;
	return HL_OK;
}

/* ---- applying one key -------------------------------------------------- */

static const struct key_def *find_key(const char *section, size_t slen,
				      const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keys[i].section) == slen &&
		    strncmp(keys[i].section, section, slen) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool known_section(const char *section, size_t slen)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(keys[i].section) == slen &&
		    strncmp(keys[i].section, section, slen) == 0)
			return true;
	return false;
}

/*
 * Runs k's setter; on failure writes "config: <where><section.key>: <why>
 * (got "<value>")" to err. where is "" or "FILE:LINE: ".
 */
static int apply_key(const struct key_def *k, struct hl_config *cfg,
		     const char *value, const char *where, char *err,
		     size_t errlen)
{
	char why[320], shown[ECHO_MAX * 4 + 4];

	if (k->set(k, cfg, value, why, sizeof(why)) == 0)
		return HL_OK;
	echo(shown, sizeof(shown), value);
	hl_set_err(err, errlen, "config: %s%s.%s: %s (got \"%s\")", where,
		k->section, k->name, why, shown);
	return HL_EINVAL;
}

/* ---- the INI file ------------------------------------------------------ */

/* State of one parse, shared by the line reader and the key handler. */
struct parse_ctx {
	struct hl_config *cfg;
	char name[ECHO_MAX * 4 + 4]; /* escaped source name for messages */
	FILE *fp;                    /* source when reading a file */
	const char *text;            /* source when reading a string */
	int lineno;                  /* lines handed to inih so far */
	int rc;                      /* first error, 0 while none */
	int err_line;                /* line of that error */
	int read_errno;              /* errno of a failed read */
	int first_line[NKEYS];       /* line each key was set on, 0: not yet */
	bool indented;               /* the current line starts with blanks */
	/* The list key that indented lines may continue (inih's multi-line
	 * values), or NULL; and its value so far, re-applied whole. */
	const struct key_def *cont_key;
	char cont_value[HL_CONFIG_MAX_ORIGINS * HL_CONFIG_ORIGIN_MAX];
	char *err;
	size_t errlen;
};

static void line_err(struct parse_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Records the first error, at the current line, with the file prefix. */
static void line_err(struct parse_ctx *ctx, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (ctx->rc)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->rc = HL_EINVAL;
	ctx->err_line = ctx->lineno;
	hl_set_err(ctx->err, ctx->errlen, "config: %s:%d: %s", ctx->name,
		ctx->lineno, msg);
}

static int next_char(struct parse_ctx *ctx)
{
	if (ctx->fp)
		return getc(ctx->fp);
	if (*ctx->text == '\0')
		return EOF;
	return (unsigned char)*ctx->text++;
}

/*
 * inih's line reader (fgets-like). Unlike fgets and inih's own string reader
 * it never splits a long line (inih would parse the rest as a new line) and
 * rejects NUL bytes. It also polices indentation: with inih's default
 * INI_ALLOW_MULTILINE an indented line continues the previous key's value,
 * which we allow only right after a list key (staff.allowed_origins, whose
 * 16 origins cannot fit in one line) and refuse everywhere else, where it
 * would silently change a value. Returning NULL ends the parse; ctx->rc
 * says whether it failed.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *ctx = stream;
	size_t n = 0, cap = num > 1 ? (size_t)num - 1 : 0;
	bool any = false, too_long = false, nul = false;
	const char *s;
	int c;

	if (ctx->rc)
		return NULL;
	while ((c = next_char(ctx)) != EOF) {
		any = true;
		if (c == '\n')
			break;
		if (c == '\0')
			nul = true;
		if (n < cap)
			str[n++] = (char)c;
		else
			too_long = true;
	}
	if (ctx->fp && ferror(ctx->fp)) {
		ctx->read_errno = errno ? errno : EIO;
		ctx->rc = HL_EIO;
		return NULL;
	}
	if (!any)
		return NULL;
	ctx->lineno++;
	str[n] = '\0';
	if (nul) {
		line_err(ctx, "line contains a NUL byte");
		return NULL;
	}
	if (too_long) {
		line_err(ctx, "line is longer than %zu bytes", cap);
		return NULL;
	}
	s = str;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\f' ||
	       *s == '\v')
		s++;
	ctx->indented = false;
	if (!*s || *s == ';' || *s == '#')
		return str; /* blank or comment: inih skips it */
	if (s == str) {
		ctx->cont_key = NULL; /* a key or [section] ends a list */
		return str;
	}
	if (!ctx->cont_key) {
		line_err(ctx, "line starts with whitespace, which would join "
			      "it to the previous value; only "
			      "staff.allowed_origins may continue on indented "
			      "lines");
		return NULL;
	}
	ctx->indented = true;
	return str;
}

/* Returns true if value holds a '#' after whitespace: an intended comment. */
static bool has_inline_hash(const char *value)
{
	for (const char *p = strchr(value, '#'); p; p = strchr(p + 1, '#'))
		if (p > value && (p[-1] == ' ' || p[-1] == '\t'))
			return true;
	return false;
}

/*
 * Cuts an inline comment (';' after a blank) and trailing blanks from v, as
 * inih does for a "key = value" line; inih r55 does neither for a
 * continuation line, so we do it to keep one rule for the operator.
 */
static void cut_inline_comment(char *v)
{
	size_t n;

	for (char *p = v; *p; p++) {
		if (*p == ';' && p > v && isspace((unsigned char)p[-1])) {
			*p = '\0';
			break;
		}
	}
	n = strlen(v);
	while (n > 0 && isspace((unsigned char)v[n - 1]))
		v[--n] = '\0';
}

/* inih's handler: one "name = value" in section. Nonzero means success. */
static int on_key(void *user, const char *section, const char *name,
		  const char *value)
{
	struct parse_ctx *ctx = user;
	char where[sizeof(ctx->name) + 16], es[ECHO_MAX * 4 + 4],
		en[ECHO_MAX * 4 + 4], more[512];
	const struct key_def *k;
	size_t i;

	if (ctx->rc)
		return 0;
	snprintf(where, sizeof(where), "%s:%d: ", ctx->name, ctx->lineno);
	if (ctx->indented) {
		/* inih passes a continuation line as a new value for the
		 * previous key: append it and apply the whole list again. */
		k = ctx->cont_key;
		if (!k || strcmp(name, k->name) != 0) { /* cannot happen */
			line_err(ctx, "unexpected continuation line");
			return 0;
		}
		if (strlen(value) >= sizeof(more)) { /* cannot happen */
			line_err(ctx, "line too long");
			return 0;
		}
		memcpy(more, value, strlen(value) + 1);
		cut_inline_comment(more);
		if (has_inline_hash(more)) {
			line_err(ctx, "%s.%s: '#' starts a comment only at the "
				      "start of a line; use \" ;\" for a "
				      "comment after a value",
				 k->section, k->name);
			return 0;
		}
		if (strlen(ctx->cont_value) + 1 + strlen(more) >=
		    sizeof(ctx->cont_value)) {
			line_err(ctx, "%s.%s: value longer than %zu bytes",
				 k->section, k->name,
				 sizeof(ctx->cont_value) - 1);
			return 0;
		}
		strcat(ctx->cont_value, " ");
		strcat(ctx->cont_value, more);
		if (apply_key(k, ctx->cfg, ctx->cont_value, where, ctx->err,
			      ctx->errlen) != 0) {
			ctx->rc = HL_EINVAL;
			ctx->err_line = ctx->lineno;
			return 0;
		}
		return 1;
	}
	echo(en, sizeof(en), name);
	if (!*section) {
		line_err(ctx, "key \"%s\" is outside any section; put it "
			      "under a [section] line",
			 en);
		return 0;
	}
	k = find_key(section, strlen(section), name);
	if (!k) {
		echo(es, sizeof(es), section);
		if (known_section(section, strlen(section)))
			line_err(ctx, "unknown key \"%s.%s\"", es, en);
		else
			line_err(ctx, "unknown key \"%s.%s\" (there is no "
				      "section [%s])",
				 es, en, es);
		return 0;
	}
	i = (size_t)(k - keys);
	if (ctx->first_line[i]) {
		line_err(ctx, "duplicate key \"%s.%s\" (first set on line %d)",
			 k->section, k->name, ctx->first_line[i]);
		return 0;
	}
	if (has_inline_hash(value)) {
		line_err(ctx, "%s.%s: '#' starts a comment only at the start "
			      "of a line; use \" ;\" for a comment after a "
			      "value",
			 k->section, k->name);
		return 0;
	}
	if (apply_key(k, ctx->cfg, value, where, ctx->err, ctx->errlen) != 0) {
		ctx->rc = HL_EINVAL;
		ctx->err_line = ctx->lineno;
		return 0;
	}
	ctx->first_line[i] = ctx->lineno;
	if (k->kind == KIND_ORIGINS) {
		/* The line limit keeps value far below cont_value's size. */
		snprintf(ctx->cont_value, sizeof(ctx->cont_value), "%s", value);
		ctx->cont_key = k;
	}
	return 1;
}

/* Runs inih over ctx's source and turns its result into a status. */
static int parse(struct parse_ctx *ctx)
{
	int ret = ini_parse_stream(read_line, ctx, on_key, ctx);

	if (ctx->rc == HL_EIO)
		return HL_EIO;
	if (ret > 0 && (ctx->rc == 0 || ret < ctx->err_line)) {
		/* inih found a line that is neither a comment, a [section]
		 * nor a key = value (it does not stop there; we report the
		 * first such line). */
		hl_set_err(ctx->err, ctx->errlen,
			"config: %s:%d: syntax error: expected [section], "
			"key = value or a comment",
			ctx->name, ret);
		return HL_EINVAL;
	}
	if (ctx->rc)
		return ctx->rc;
	if (ret == -2) {
		hl_set_err(ctx->err, ctx->errlen, "config: %s: out of memory",
			ctx->name);
		return HL_ENOMEM;
	}
	if (ret != 0) {
		hl_set_err(ctx->err, ctx->errlen, "config: %s: parse failed",
			ctx->name);
		return HL_EINVAL;
	}
	return HL_OK;
}

static void ctx_init(struct parse_ctx *ctx, struct hl_config *cfg,
		     const char *name, char *err, size_t errlen)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->cfg = cfg;
	ctx->err = err;
	ctx->errlen = errlen;
	echo(ctx->name, sizeof(ctx->name), name);
	if (err && errlen)
		err[0] = '\0';
}

/* ---- public ------------------------------------------------------------ */

void hl_config_defaults(struct hl_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = 8080;
	snprintf(cfg->web_root, sizeof(cfg->web_root), "%s",
		 HL_DEFAULT_WEB_ROOT);
	snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s",
		 HL_DEFAULT_STATE_DIR);
	cfg->max_connections = 19000;
	cfg->max_connections_per_address = 64;
	cfg->failed_attempts_per_address = 30;
	cfg->failed_attempts_window = 900;
	hl_nets_parse("127.0.0.0/8, ::1", &cfg->uncounted_addresses, NULL, 0);
	cfg->store_batch_max = 4096;
	cfg->store_queue_max = 100000;
	cfg->ws_max_message = 65536;
	cfg->ws_outq_max = 1048576;
	cfg->ws_ping_interval = 30;
	cfg->queue_max = 10000;
	cfg->queue_ageing = 600;
	cfg->queue_resume_ttl = 86400;
	cfg->queue_counsellor_grace = 60;
	cfg->queue_routing = HL_ROUTING_BOTH;
	cfg->queue_offer_timeout = 30;
	cfg->chat_transfer_announce = 1;
	cfg->escalation_realert = 60;
	cfg->evidence_max_bundle = 4194304;
	cfg->referral_connect_timeout = 10;
	cfg->referral_timeout = 30;
	cfg->referral_attempts = 8;
	cfg->referral_backoff = 30;
	cfg->referral_backoff_max = 3600;
	cfg->chat_envelopes = HL_ENVELOPES_STRICT;
	cfg->e2e_checkpoint_every = 32;
	snprintf(cfg->hours_timezone, sizeof(cfg->hours_timezone), "UTC");
	cfg->ws_rate = 20;
	cfg->ws_burst = 60;
	cfg->auth_session_idle = 1800;
	cfg->auth_session_max = 43200;
	cfg->auth_max_failures = 5;
	cfg->auth_lockout = 900;
	cfg->auth_reauth_window = 300;
	cfg->auth_pwhash_inflight = 1;
	cfg->auth_pwhash_queue = 256;
	cfg->log_level = HL_LOG_INFO;
	cfg->log_format = HL_LOG_FORMAT_TEXT;
	cfg->metrics_host[0] = '\0';
	cfg->metrics_port = -1;
	cfg->retention_days = 30;
	cfg->retention_escalated_days = 365;
	cfg->retention_interval = 3600;
	cfg->retention_batch = 100;
}

int hl_config_load_file(struct hl_config *cfg, const char *path, char *err,
			size_t errlen)
{
	struct parse_ctx ctx;
	int rc;

	if (!cfg || !path) {
		hl_set_err(err, errlen, "config: no file given");
		return HL_EINVAL;
	}
	ctx_init(&ctx, cfg, path, err, errlen);
	ctx.fp = fopen(path, "re"); /* close-on-exec */
	if (!ctx.fp) {
		hl_set_err(err, errlen, "config: cannot read %s: %s", ctx.name,
			strerror(errno));
		return HL_EIO;
	}
	rc = parse(&ctx);
	fclose(ctx.fp);
	if (rc == HL_EIO)
		hl_set_err(err, errlen, "config: cannot read %s: %s", ctx.name,
			strerror(ctx.read_errno));
	return rc;
}

int hl_config_load_string(struct hl_config *cfg, const char *text,
			  const char *name, char *err, size_t errlen)
{
	struct parse_ctx ctx;

	if (!cfg || !text) {
		hl_set_err(err, errlen, "config: no text given");
		return HL_EINVAL;
	}
	ctx_init(&ctx, cfg, name ? name : "(string)", err, errlen);
	ctx.text = text;
	return parse(&ctx);
}

int hl_config_set(struct hl_config *cfg, const char *key, const char *value,
		  char *err, size_t errlen)
{
	const struct key_def *k = NULL;
	const char *dot;
	char ek[ECHO_MAX * 4 + 4];

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || !key || !value) {
		hl_set_err(err, errlen, "config: no key or value given");
		return HL_EINVAL;
	}
	dot = strchr(key, '.');
	if (dot)
		k = find_key(key, (size_t)(dot - key), dot + 1);
	if (!k) {
		echo(ek, sizeof(ek), key);
		hl_set_err(err, errlen, "config: unknown key \"%s\"", ek);
		return HL_EINVAL;
	}
	return apply_key(k, cfg, value, "", err, errlen);
}

/* Fills the defaults for port into cfg's list (empty for port 0). */
static void fill_default_origins(struct hl_config *cfg, int port)
{
	char one[HL_CONFIG_ORIGIN_MAX], portstr[8] = "";
	const char *h = cfg->listen_host;
	bool v6 = strchr(h, ':') != NULL;

	memset(cfg->allowed_origins, 0, sizeof(cfg->allowed_origins));
	cfg->allowed_origins_count = 0;
	if (port <= 0 || port > 65535)
		return;
	/* As browsers serialise an origin: no ":80" for http. */
	if (port != 80)
		snprintf(portstr, sizeof(portstr), ":%d", port);
	snprintf(one, sizeof(one), "http://%s%s%s%s", v6 ? "[" : "", h,
		 v6 ? "]" : "", portstr);
	add_origin(cfg->allowed_origins, &cfg->allowed_origins_count, one);
	if (is_loopback_host(h)) {
		snprintf(one, sizeof(one), "http://localhost%s", portstr);
		add_origin(cfg->allowed_origins, &cfg->allowed_origins_count,
			   one);
		snprintf(one, sizeof(one), "http://127.0.0.1%s", portstr);
		add_origin(cfg->allowed_origins, &cfg->allowed_origins_count,
			   one);
	}
}

int hl_config_default_origins(struct hl_config *cfg, int bound_port)
{
	if (cfg->allowed_origins_set)
		return HL_OK;
	if (bound_port < 1 || bound_port > 65535)
		return HL_EINVAL;
	fill_default_origins(cfg, bound_port);
	return HL_OK;
}

int hl_config_finish(struct hl_config *cfg, char *err, size_t errlen)
{
	char db[HL_CONFIG_PATH_MAX];

	if (err && errlen)
		err[0] = '\0';
	if (!cfg->web_root[0] || !cfg->state_dir[0]) {
		hl_set_err(err, errlen, "config: server.%s must not be empty",
			cfg->web_root[0] ? "state_dir" : "web_root");
		return HL_EINVAL;
	}
	if (hl_config_db_path(cfg, db, sizeof(db)) != 0) {
		hl_set_err(err, errlen,
			"config: server.state_dir is too long to hold %s "
			"(at most %zu bytes)",
			HL_DB_FILE, sizeof(db) - sizeof("/" HL_DB_FILE));
		return HL_EINVAL;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		const char *p = (const char *)cfg + k->offset;
		long long v;

		if (k->kind == KIND_INT)
			v = *(const int *)(const void *)p;
		else if (k->kind == KIND_SIZE)
			v = (long long)*(const size_t *)(const void *)p;
		else
			continue;
		if (v < k->min || v > k->max) {
			hl_set_err(err, errlen,
				"config: %s.%s: %lld is outside %lld to %lld",
				k->section, k->name, v, k->min, k->max);
			return HL_EINVAL;
		}
	}
	/* The largest reply must fit a reader's queue, or it closes its
	 * reader as too slow on every try: a chat.event is one message's
	 * payload as sent plus some 300 bytes of fields; an escalation or an
	 * inbox message carries two such (a note and the reasons; a message
	 * and its reply). */
	if (cfg->ws_outq_max < 2 * cfg->ws_max_message + HL_CONFIG_REPLY_OVERHEAD) {
		hl_set_err(err, errlen,
			"config: ws.outq_max (%zu) must be at least "
			"2 x ws.max_message + %d (%zu), so that the largest "
			"reply fits a reader's queue",
			cfg->ws_outq_max, HL_CONFIG_REPLY_OVERHEAD,
			2 * cfg->ws_max_message + HL_CONFIG_REPLY_OVERHEAD);
		return HL_EINVAL;
	}
	if (cfg->listen_port < 0 || cfg->listen_port > 65535 ||
	    !cfg->listen_host[0]) {
		hl_set_err(err, errlen, "config: server.listen: invalid address");
		return HL_EINVAL;
	}
	if (cfg->log_level < HL_LOG_DEBUG || cfg->log_level > HL_LOG_OFF) {
		hl_set_err(err, errlen, "config: log.level: invalid level");
		return HL_EINVAL;
	}
	if (cfg->allowed_origins_count < 0 ||
	    cfg->allowed_origins_count > HL_CONFIG_MAX_ORIGINS) {
		hl_set_err(err, errlen,
			"config: staff.allowed_origins: bad count");
		return HL_EINVAL;
	}
	if (!cfg->allowed_origins_set)
		fill_default_origins(cfg, cfg->listen_port);
	return HL_OK;
}

int hl_config_db_path(const struct hl_config *cfg, char *out, size_t outlen)
{
	size_t sl;
	int n;

	if (!out || outlen == 0)
		return HL_EINVAL;
	out[0] = '\0';
	if (cfg->db_path[0]) {
		n = snprintf(out, outlen, "%s", cfg->db_path);
	} else {
		sl = strlen(cfg->state_dir);
		if (sl == 0)
			return HL_EINVAL;
		n = snprintf(out, outlen, "%s%s%s", cfg->state_dir,
			     cfg->state_dir[sl - 1] == '/' ? "" : "/",
			     HL_DB_FILE);
	}
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return HL_ERANGE;
	}
	return HL_OK;
}

int hl_config_key_path(const struct hl_config *cfg, char *out, size_t outlen)
{
	char db[HL_CONFIG_PATH_MAX + 32];
	const char *slash;
	int n, rc;

	if (!out || outlen == 0)
		return HL_EINVAL;
	if (cfg->key_file[0]) {
		n = snprintf(out, outlen, "%s", cfg->key_file);
	} else {
		rc = hl_config_db_path(cfg, db, sizeof(db));
		if (rc != 0)
			return rc;
		slash = strrchr(db, '/');
		if (slash)
			n = snprintf(out, outlen, "%.*s/helpline.key",
				     (int)(slash - db), db);
		else
			n = snprintf(out, outlen, "helpline.key");
	}
	if (n < 0 || (size_t)n >= outlen) {
		out[0] = '\0';
		return HL_ERANGE;
	}
	return HL_OK;
}
