/* delivery.c: the partner HTTP client thread (see delivery.h). */
#include "delivery.h"
#include "common.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#ifdef HL_TEST_HOOKS
#define PROTOCOLS "http,https" /* the tests' receiver on 127.0.0.1 */
#else
#define PROTOCOLS "https"
#endif

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct hl_delivery_req *req = arg;
	size_t len = size * n, room = sizeof(req->resp) - 1 - req->resp_len;

	if (len > room)
		len = room;
	memcpy(req->resp + req->resp_len, p, len);
	req->resp_len += len;
	req->resp[req->resp_len] = '\0';
	return size * n; /* the rest is read and dropped */
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t e)
{
	struct hl_delivery *d = arg;
	bool stop;

	(void)a, (void)b, (void)c, (void)e;
	pthread_mutex_lock(&d->mu);
	stop = d->stopping;
	pthread_mutex_unlock(&d->mu);
	return stop ? 1 : 0;
}

static void post(struct hl_delivery *d, CURL *c, struct hl_delivery_req *req)
{
	struct curl_slist *h = NULL;
	char key[128];
	CURLcode rc;

	snprintf(key, sizeof(key), "Idempotency-Key: %s", req->idempotency_key);
	h = curl_slist_append(h, "Content-Type: application/json");
	h = curl_slist_append(h, "Accept: application/json");
	h = curl_slist_append(h, key);
	h = curl_slist_append(h, "Expect:");
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, PROTOCOLS);
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, PROTOCOLS);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never an environment proxy */
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "helplined/" HL_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)req->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, req->connect_timeout_s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, req->timeout_s);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, d);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	req->resp_len = 0;
	req->resp[0] = '\0';
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		req->transport_ok = true;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &req->status);
	} else {
		req->transport_ok = false;
		snprintf(req->err, sizeof(req->err), "%s",
			 rc == CURLE_ABORTED_BY_CALLBACK ? "stopped"
							 : curl_easy_strerror(rc));
	}
	curl_slist_free_all(h);
}

static void *run(void *arg)
{
	struct hl_delivery *d = arg;
	CURL *c = curl_easy_init();

	pthread_mutex_lock(&d->mu);
	for (;;) {
		struct hl_delivery_req *req;

		while (!d->in_head && !d->stopping)
			pthread_cond_wait(&d->cv, &d->mu);
		if (d->stopping)
			break;
		req = d->in_head;
		d->in_head = req->next;
		if (!d->in_head)
			d->in_tail = NULL;
		req->next = NULL;
		pthread_mutex_unlock(&d->mu);
		if (c) {
			post(d, c, req);
		} else {
			req->transport_ok = false;
			snprintf(req->err, sizeof(req->err), "no HTTP client");
		}
		pthread_mutex_lock(&d->mu);
		if (d->out_tail)
			d->out_tail->next = req;
		else
			d->out_head = req;
		d->out_tail = req;
		pthread_mutex_unlock(&d->mu);
		uv_async_send(&d->async);
		pthread_mutex_lock(&d->mu);
	}
	pthread_mutex_unlock(&d->mu);
	if (c)
		curl_easy_cleanup(c);
	return NULL;
}

/* Hands finished requests to done (loop thread). */
static void drain(struct hl_delivery *d)
{
	struct hl_delivery_req *list;

	pthread_mutex_lock(&d->mu);
	list = d->out_head;
	d->out_head = d->out_tail = NULL;
	pthread_mutex_unlock(&d->mu);
	while (list) {
		struct hl_delivery_req *req = list;

		list = req->next;
		req->next = NULL;
		d->done(req, d->arg);
	}
}

static void on_async(uv_async_t *a)
{
	drain(a->data);
}

int hl_delivery_start(struct hl_delivery *d, uv_loop_t *loop,
		      hl_delivery_done_fn done, void *arg)
{
	memset(d, 0, sizeof(*d));
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return HL_EIO;
	d->done = done;
	d->arg = arg;
	if (pthread_mutex_init(&d->mu, NULL) != 0)
		return HL_ENOMEM;
	if (pthread_cond_init(&d->cv, NULL) != 0) {
		pthread_mutex_destroy(&d->mu);
		return HL_ENOMEM;
	}
	if (uv_async_init(loop, &d->async, on_async) != 0) {
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		return HL_EIO;
	}
	d->async.data = d;
	d->async_open = true;
	if (pthread_create(&d->thread, NULL, run, d) != 0) {
		uv_close((uv_handle_t *)&d->async, NULL);
		d->async_open = false;
		pthread_cond_destroy(&d->cv);
		pthread_mutex_destroy(&d->mu);
		return HL_ENOMEM;
	}
	d->started = true;
	return 0;
}

void hl_delivery_submit(struct hl_delivery *d, struct hl_delivery_req *req)
{
	req->next = NULL;
	req->transport_ok = false;
	req->status = 0;
	req->err[0] = '\0';
	pthread_mutex_lock(&d->mu);
	if (d->in_tail)
		d->in_tail->next = req;
	else
		d->in_head = req;
	d->in_tail = req;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

void hl_delivery_stop(struct hl_delivery *d)
{
	struct hl_delivery_req *left;

	if (!d->started)
		return;
	d->started = false;
	pthread_mutex_lock(&d->mu);
	d->stopping = true;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	pthread_join(d->thread, NULL);
	/* Finished ones first, then those never started. */
	drain(d);
	left = d->in_head;
	d->in_head = d->in_tail = NULL;
	while (left) {
		struct hl_delivery_req *req = left;

		left = req->next;
		req->next = NULL;
		req->transport_ok = false;
		snprintf(req->err, sizeof(req->err), "stopped");
		d->done(req, d->arg);
	}
	if (d->async_open) {
		d->async_open = false;
		uv_close((uv_handle_t *)&d->async, NULL);
	}
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mu);
	curl_global_cleanup();
}
