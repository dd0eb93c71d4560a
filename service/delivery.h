/* delivery.h: owns the HTTP client that POSTs referrals to the partner
 * endpoint: one thread of its own running libcurl (blocking transfers, so
 * the loop never waits on the network), a queue of requests in, a queue of
 * results out, and a uv_async that hands the results back to the loop.
 * It knows nothing of referrals: referral.c builds the requests and reads
 * the results. Only loopback or the configured partner is ever contacted:
 * proxies from the environment are ignored, redirects are not followed,
 * and only https (http too in HL_TEST_HOOKS builds) is allowed. */
#ifndef HL_DELIVERY_H
#define HL_DELIVERY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define HL_DELIVERY_BODY_MAX 4096   /* response bytes kept */
#define HL_DELIVERY_ERR_MAX 256

/* One POST. The caller allocates it and owns it again in done. */
struct hl_delivery_req {
	/* in */
	const char *url;            /* borrowed: lives as long as the client */
	unsigned char *body;        /* owned by the caller; not changed */
	size_t body_len;
	char idempotency_key[80];   /* sent as Idempotency-Key */
	long connect_timeout_s, timeout_s;
	/* out */
	bool transport_ok;          /* an HTTP answer came back */
	long status;                /* its status code */
	char err[HL_DELIVERY_ERR_MAX]; /* the transport error when !transport_ok */
	char resp[HL_DELIVERY_BODY_MAX]; /* the first bytes of the answer */
	size_t resp_len;
	void *owner;                /* the caller's */
	struct hl_delivery_req *next; /* private */
};

typedef void (*hl_delivery_done_fn)(struct hl_delivery_req *req, void *arg);

/* The client. Caller-allocated, zeroed; fields private. */
struct hl_delivery {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hl_delivery_req *in_head, *in_tail;   /* guarded by mu */
	struct hl_delivery_req *out_head, *out_tail; /* guarded by mu */
	bool stopping;              /* guarded by mu; also read by the transfer */
	bool started, async_open;
	uv_async_t async;
	hl_delivery_done_fn done;
	void *arg;
};

/* Starts the thread; done(req, arg) runs on the loop for every request
 * submitted before hl_delivery_stop. 0 or HL_ENOMEM / HL_EIO. Loop thread. */
int hl_delivery_start(struct hl_delivery *d, uv_loop_t *loop,
		      hl_delivery_done_fn done, void *arg);
/* Queues req (its body must stay valid until done). Loop thread. */
void hl_delivery_submit(struct hl_delivery *d, struct hl_delivery_req *req);
/* Aborts the transfer under way, joins the thread and closes the async;
 * requests not yet done are handed to done with transport_ok false and
 * err "stopped" — synchronously, from this call. Idempotent. Loop thread. */
void hl_delivery_stop(struct hl_delivery *d);

#endif
