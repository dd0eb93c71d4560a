/* metrics.c: Prometheus text exposition of the counters. */
#include "metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const close_names[HL_CLOSE__COUNT] = {
	"going_away", "unsupported_data", "policy", "too_big", "try_later",
	"internal",
};

static const char *const role_names[2] = {"contact", "staff"};

/* Appends to buf at *off, tracking the length even past cap. */
static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(*off < cap ? buf + *off : NULL, *off < cap ? cap - *off : 0,
		      fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

size_t hl_metrics_format(const struct hl_metrics *m, const char *extra,
			 char *buf, size_t cap)
{
	size_t off = 0;

	put(buf, cap, &off, "# TYPE helpline_errors_total counter\n");
	for (int i = 0; i < HL_ERR__COUNT; i++)
		put(buf, cap, &off, "helpline_errors_total{code=\"%s\"} %" PRIu64 "\n",
		    hl_err_code_name((enum hl_err_code)i), m->errors[i]);
	put(buf, cap, &off, "# TYPE helpline_ws_closes_total counter\n");
	for (int i = 0; i < HL_CLOSE__COUNT; i++)
		put(buf, cap, &off, "helpline_ws_closes_total{reason=\"%s\"} %" PRIu64 "\n",
		    close_names[i], m->closes[i]);
	put(buf, cap, &off, "# TYPE helpline_ws_opened_total counter\n");
	for (int i = 0; i < 2; i++)
		put(buf, cap, &off, "helpline_ws_opened_total{role=\"%s\"} %" PRIu64 "\n",
		    role_names[i], m->ws_opened[i]);
	put(buf, cap, &off, "# TYPE helpline_ws_connections gauge\n");
	for (int i = 0; i < 2; i++)
		put(buf, cap, &off, "helpline_ws_connections{role=\"%s\"} %" PRIu64 "\n",
		    role_names[i], m->ws_current[i]);
	put(buf, cap, &off,
	    "# TYPE helpline_messages_in_total counter\n"
	    "helpline_messages_in_total %" PRIu64 "\n"
	    "# TYPE helpline_messages_out_total counter\n"
	    "helpline_messages_out_total %" PRIu64 "\n"
	    "# TYPE helpline_bytes_in_total counter\n"
	    "helpline_bytes_in_total %" PRIu64 "\n"
	    "# TYPE helpline_bytes_out_total counter\n"
	    "helpline_bytes_out_total %" PRIu64 "\n"
	    "# TYPE helpline_upgrades_refused_total counter\n"
	    "helpline_upgrades_refused_total %" PRIu64 "\n"
	    "# TYPE helpline_http_requests_total counter\n"
	    "helpline_http_requests_total %" PRIu64 "\n",
	    m->frames_in, m->frames_out, m->bytes_in, m->bytes_out,
	    m->upgrades_refused, m->http_requests);
	put(buf, cap, &off,
	    "# TYPE helpline_offers_total counter\n"
	    "helpline_offers_total %" PRIu64 "\n"
	    "# TYPE helpline_offers_expired_total counter\n"
	    "helpline_offers_expired_total %" PRIu64 "\n"
	    "# TYPE helpline_chats_taken_total counter\n"
	    "helpline_chats_taken_total %" PRIu64 "\n"
	    "# TYPE helpline_transfers_total counter\n"
	    "helpline_transfers_total %" PRIu64 "\n"
	    "# TYPE helpline_alerts_total counter\n"
	    "helpline_alerts_total %" PRIu64 "\n"
	    "# TYPE helpline_chat_messages_total counter\n"
	    "helpline_chat_messages_total %" PRIu64 "\n",
	    m->offers, m->offers_expired, m->chats_taken, m->transfers,
	    m->alerts, m->chat_messages);
	if (extra)
		put(buf, cap, &off, "%s", extra);
	return off;
}
