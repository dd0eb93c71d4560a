/* pwhash.c: Argon2id worker processes and the daemon's side of their
 * pipes. */
#include "pwhash.h"
#include "common.h"
#include "log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

/* A request: kind, the stored hash, the password, each NUL-padded. One
 * write of fewer than PIPE_BUF bytes, so it arrives whole. */
#define REQ_HASH 1
#define REQ_PASSWORD (REQ_HASH + crypto_pwhash_STRBYTES)
#define REQ_SIZE (REQ_PASSWORD + HL_PWHASH_PASSWORD_MAX + 1)
/* The answer: ok, has-new-hash, the new hash NUL-padded. */
#define ANS_SIZE (2 + crypto_pwhash_STRBYTES)

_Static_assert(REQ_SIZE < 4096, "a request is one atomic pipe write");

struct write_req {
	uv_write_t wr;
	struct hl_pwhash_worker *w;
	unsigned char buf[REQ_SIZE];
};

static int spawn(struct hl_pwhash_worker *w);

/* ---- the daemon's side ---------------------------------------------------- */

static void finish(struct hl_pwhash_worker *w, int status)
{
	struct hl_pwhash_req *r = w->busy;

	w->busy = NULL;
	w->got = 0;
	if (r)
		r->done(r, status, false, "");
	sodium_memzero(w->answer, sizeof(w->answer));
}

static void on_closed(uv_handle_t *h)
{
	struct hl_pwhash_worker *w = h->data;
	struct hl_pwhash *p = w->pool;

	if (--w->open_handles > 0 || p->stopping || w->dead)
		return;
	/* All three closed after the worker died: start another. */
	if (spawn(w) != 0)
		hl_error("pwhash.restart_failed", "worker=%d",
			 (int)(w - p->w));
}

static void close_all(struct hl_pwhash_worker *w)
{
	uv_handle_t *hs[3] = {(uv_handle_t *)&w->proc, (uv_handle_t *)&w->to,
			      (uv_handle_t *)&w->from};

	for (int i = 0; i < 3; i++)
		if (!uv_is_closing(hs[i]))
			uv_close(hs[i], on_closed);
}

static void on_worker_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct hl_pwhash_worker *w = proc->data;

	w->running = false;
	if (!w->pool->stopping)
		hl_warn("pwhash.worker_exited", "worker=%d status=%lld signal=%d",
			(int)(w - w->pool->w), (long long)status, sig);
	finish(w, HL_EIO);
	close_all(w);
}

/* Something is wrong with the worker: it is ended (on_worker_exit cleans up). */
static void kill_worker(struct hl_pwhash_worker *w, const char *why)
{
	hl_error("pwhash.worker_failed", "worker=%d why=%s",
		 (int)(w - w->pool->w), why);
	if (w->running)
		uv_process_kill(&w->proc, SIGKILL);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct hl_pwhash_worker *w = h->data;

	(void)hint;
	*buf = uv_buf_init((char *)w->answer + w->got,
			   (unsigned)(sizeof(w->answer) - w->got));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct hl_pwhash_worker *w = s->data;
	struct hl_pwhash_req *r;
	bool ok;

	(void)buf;
	if (n < 0) {
		/* EOF or an error: the worker is gone or going. */
		uv_read_stop(s);
		if (w->running)
			kill_worker(w, "pipe closed");
		return;
	}
	if (n == 0)
		return;
	if (!w->busy) {
		kill_worker(w, "answer without a request");
		return;
	}
	w->got += (size_t)n;
	if (w->got < sizeof(w->answer))
		return;
	r = w->busy;
	w->busy = NULL;
	w->got = 0;
	ok = w->answer[0] == 1;
	w->answer[sizeof(w->answer) - 1] = '\0';
	r->done(r, 0, ok, w->answer[1] ? (const char *)w->answer + 2 : "");
	sodium_memzero(w->answer, sizeof(w->answer));
}

static void on_written(uv_write_t *wr, int status)
{
	struct write_req *q = hl_container_of(wr, struct write_req, wr);
	struct hl_pwhash_worker *w = q->w;

	sodium_memzero(q->buf, sizeof(q->buf));
	free(q);
	if (status < 0 && w->running)
		kill_worker(w, "write failed");
}

static int spawn(struct hl_pwhash_worker *w)
{
	struct hl_pwhash *p = w->pool;
	char *args[] = {p->exe, "--pwhash-worker", NULL};
	uv_stdio_container_t io[3];
	uv_process_options_t o;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(io, 0, sizeof(io));
	uv_pipe_init(p->loop, &w->to, 0);
	uv_pipe_init(p->loop, &w->from, 0);
	w->proc.data = w->to.data = w->from.data = w;
	w->open_handles = 3;
	w->got = 0;
	io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	io[0].data.stream = (uv_stream_t *)&w->to;
	io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	io[1].data.stream = (uv_stream_t *)&w->from;
	io[2].flags = UV_INHERIT_FD;
	io[2].data.fd = 2;
	o.file = p->exe;
	o.args = args;
	o.stdio = io;
	o.stdio_count = 3;
	o.exit_cb = on_worker_exit;
	rc = uv_spawn(p->loop, &w->proc, &o);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&w->from, on_alloc, on_read);
	if (rc != 0) {
		hl_error("pwhash.spawn_failed", "worker=%d error=%s",
			 (int)(w - p->w), uv_strerror(rc));
		w->dead = true;
		if (w->proc.pid > 0)
			uv_process_kill(&w->proc, SIGKILL);
		else
			close_all(w);
		return HL_EIO;
	}
	w->running = true;
	w->dead = false;
	return HL_OK;
}

int hl_pwhash_init(struct hl_pwhash *p, uv_loop_t *loop, int workers,
		   char *err, size_t errlen)
{
	ssize_t n;

	memset(p, 0, sizeof(*p));
	p->loop = loop;
	if (workers < 1 || workers > HL_PWHASH_WORKERS_MAX) {
		hl_set_err(err, errlen, "Argon2id workers: expected 1..%d",
			   HL_PWHASH_WORKERS_MAX);
		return HL_EINVAL;
	}
	n = readlink("/proc/self/exe", p->exe, sizeof(p->exe) - 1);
	if (n <= 0 || (size_t)n >= sizeof(p->exe) - 1) {
		hl_set_err(err, errlen, "cannot find this program's file "
			   "(/proc/self/exe) to start Argon2id workers");
		return HL_EIO;
	}
	p->exe[n] = '\0';
	p->count = workers;
	for (int i = 0; i < workers; i++) {
		p->w[i].pool = p;
		if (spawn(&p->w[i]) != 0) {
			hl_set_err(err, errlen, "cannot start an Argon2id "
				   "worker (%s --pwhash-worker)", p->exe);
			hl_pwhash_stop(p);
			return HL_EIO;
		}
	}
	hl_info("pwhash.ready", "workers=%d", workers);
	return HL_OK;
}

static void put(unsigned char *dst, size_t cap, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= cap)
		n = cap - 1;
	memset(dst, 0, cap);
	if (n)
		memcpy(dst, s, n);
}

int hl_pwhash_submit(struct hl_pwhash *p, struct hl_pwhash_req *r,
		     enum hl_pwhash_kind kind, const char *hash,
		     const char *password)
{
	struct hl_pwhash_worker *w = NULL;
	struct write_req *q;
	uv_buf_t b;
	bool any = false;

	if (p->stopping)
		return HL_ECLOSED;
	for (int i = 0; i < p->count && !w; i++) {
		any |= p->w[i].running;
		if (p->w[i].running && !p->w[i].busy)
			w = &p->w[i];
	}
	/* None running: those whose start failed get another try. */
	for (int i = 0; i < p->count && !w && !any; i++)
		if (p->w[i].dead && p->w[i].open_handles == 0 &&
		    spawn(&p->w[i]) == 0)
			w = &p->w[i];
	if (!w)
		return any ? HL_EFULL : HL_EIO;
	if (password && strlen(password) > HL_PWHASH_PASSWORD_MAX)
		return HL_EINVAL;
	q = malloc(sizeof(*q));
	if (!q)
		return HL_ENOMEM;
	q->w = w;
	q->buf[0] = (unsigned char)kind;
	put(q->buf + REQ_HASH, crypto_pwhash_STRBYTES, hash);
	put(q->buf + REQ_PASSWORD, HL_PWHASH_PASSWORD_MAX + 1, password);
	b = uv_buf_init((char *)q->buf, sizeof(q->buf));
	if (uv_write(&q->wr, (uv_stream_t *)&w->to, &b, 1, on_written) != 0) {
		sodium_memzero(q->buf, sizeof(q->buf));
		free(q);
		kill_worker(w, "write refused");
		return HL_EIO;
	}
	w->busy = r;
	return HL_OK;
}

void hl_pwhash_stop(struct hl_pwhash *p)
{
	if (p->stopping)
		return;
	p->stopping = true;
	for (int i = 0; i < p->count; i++) {
		struct hl_pwhash_worker *w = &p->w[i];

		finish(w, HL_ECLOSED);
		if (w->open_handles == 0)
			continue;
		/* The pipes close now (EOF for the worker); the process
		 * handle closes when it has exited. */
		if (!uv_is_closing((uv_handle_t *)&w->to))
			uv_close((uv_handle_t *)&w->to, on_closed);
		if (!uv_is_closing((uv_handle_t *)&w->from))
			uv_close((uv_handle_t *)&w->from, on_closed);
		if (w->running)
			uv_process_kill(&w->proc, SIGTERM);
		else if (!uv_is_closing((uv_handle_t *)&w->proc))
			uv_close((uv_handle_t *)&w->proc, on_closed);
	}
}

/* ---- the worker process ---------------------------------------------------- */

int hl_pwhash_worker_main(void)
{
	unsigned char req[REQ_SIZE], ans[ANS_SIZE];
	const char *hash = (const char *)req + REQ_HASH;
	const char *pw = (const char *)req + REQ_PASSWORD;
	int status = 0;

#ifdef __linux__
	/* Gone with the daemon, even after kill -9. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	(void)prctl(PR_SET_NAME, "hl-pwhash", 0, 0, 0);
#endif
	if (getppid() == 1 || sodium_init() < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	(void)setpriority(PRIO_PROCESS, 0, 19);
	for (;;) {
		size_t n;

		if (hl_read_full(0, req, sizeof(req)) != 0) {
			/* The daemon closed the pipe (errno 0): done. */
			status = errno ? 1 : 0;
			break;
		}
		req[REQ_PASSWORD - 1] = '\0';
		req[sizeof(req) - 1] = '\0';
		n = strlen(pw);
		memset(ans, 0, sizeof(ans));
		switch (req[0]) {
		case HL_PWHASH_VERIFY:
		case HL_PWHASH_VERIFY_REHASH:
			ans[0] = crypto_pwhash_str_verify(hash, pw, n) == 0;
			/* Rehash when the stored parameters are older. */
			if (ans[0] && req[0] == HL_PWHASH_VERIFY_REHASH &&
			    crypto_pwhash_str_needs_rehash(
				    hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
				    crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0 &&
			    crypto_pwhash_str((char *)ans + 2, pw, n,
					      crypto_pwhash_OPSLIMIT_INTERACTIVE,
					      crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0)
				ans[1] = 1;
			break;
		case HL_PWHASH_MAKE:
			ans[0] = crypto_pwhash_str((char *)ans + 2, pw, n,
						   crypto_pwhash_OPSLIMIT_INTERACTIVE,
						   crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0;
			ans[1] = ans[0];
			break;
		default:
			break; /* answered not ok */
		}
		sodium_memzero(req, sizeof(req));
		if (hl_write_full(1, ans, sizeof(ans)) != 0) {
			status = 1;
			break;
		}
		sodium_memzero(ans, sizeof(ans));
	}
	sodium_memzero(req, sizeof(req));
	sodium_memzero(ans, sizeof(ans));
	return status;
}
