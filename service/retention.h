/* retention.h: owns the retention policy: purging what the service should
 * forget, in batches on the store's writer, from a uv timer. */
#ifndef HL_RETENTION_H
#define HL_RETENTION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store.h"

struct hl_server;

/*
 * What is purged (docs/operations.md#retention): a conversation that ended
 * more than retention.days ago and was never escalated, or whose
 * escalations were all decided more than retention.escalated_days ago and
 * which has no referral waiting for delivery, loses its messages and
 * handshakes (event), key wraps, checkpoints, resume sessions and return
 * code keys, and its escalations' sealed notes and reasons. Its
 * conversation row stays with the intake and wrap-up codes and times only,
 * for statistics. Each batch is one store job, audited with counts only.
 */
struct hl_retention_job {
	struct hl_store_job job;
	struct hl_retention *r;
	int64_t now_ms, cut_ms, cut_esc_ms;
	int batch;
	int purged, purged_escalated; /* results */
};

struct hl_retention {
	struct hl_server *srv;
	uv_timer_t timer;
	bool timer_open;
	bool busy;                   /* a batch is on the writer */
	struct hl_retention_job job;
};

/* Starts the timer (first run after min(60 s, retention.interval)). */
int hl_retention_start(struct hl_retention *r, struct hl_server *srv);
void hl_retention_stop(struct hl_retention *r);

#endif
