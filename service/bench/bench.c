/* bench.c: helpline-bench, a load generator that speaks Helpline's real
 * protocol (docs/protocol.md) and runs the same scenario against helplined
 * and against the Node.js peer (tests/load/peer.mjs) in one invocation,
 * printing each one's figures and the ratios Helpline/peer.
 *
 * Scenarios: idle, relay, fixed-rate, churn, waiting, logins (see usage()).
 * Every run stops by itself after --duration seconds; only 127.0.0.1 is
 * ever contacted; only the processes this tool starts are signalled. */
#define _GNU_SOURCE
#include "hist.h"
#include "ws_client.h"
#include "../cert.h"
#include "../e2e.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/hmac.h>
#include <sched.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PACE_NS 100000    /* the fixed rate's send timer without --spin */
#define HISTS 6           /* latency histograms per result */

/* The counters read from helplined's /metrics (store_names). */
enum { ST_JOBS, ST_BATCHES, ST_WAL, ST_LE_05, ST_LE_1, ST_LE_25, ST_CKPT, ST_WRITER_CKPT,
       STORE_NV };

/* ---- options --------------------------------------------------------------- */

enum scenario { SC_IDLE, SC_RELAY, SC_FIXED, SC_CHURN, SC_WAITING, SC_LOGINS };
static const char *const scenario_names[] = { "idle", "relay", "fixed-rate",
					      "churn", "waiting", "logins" };

struct opts {
	enum scenario sc;
	double duration, warmup;
	int conns, pairs, window, size, per_counsellor, waiting, flood;
	double rate, leave_rate;
	const char *helplined, *helplinectl, *peer, *node, *keep_dir;
	int port, server_pid; /* an already running server (no setup of staff) */
	int server_cpu, bench_cpu;
	int rounds; /* helpline and the peer, alternately, this many times each */
	bool run_helpline, run_peer, json, spin;
	bool opaque; /* opaque payloads, chat.envelopes = opaque, no handshake */
};

/* ---- results --------------------------------------------------------------- */

struct errcount {
	char code[40];
	uint64_t n;
};

struct result {
	const char *target;
	int round; /* 1, 2, ... */
	bool ok;
	char why[256];
	double secs, cpu_pct, bench_cpu_pct;
	long rss_kb, rss_base_kb, hwm_kb;
	uint64_t acked, received, cycles, pushes, push_fast, logins, held;
	double conns_per_s;
	/* helplined's store over the measured seconds (its /metrics): jobs
	 * committed, batches, WAL bytes; -1 when not read */
	double jobs, batches, wal_bytes;
	/* and of those batches, how many committed (BEGIN to COMMIT with
	 * its fsync) within 0.5 / 1 / 2.5 ms; checkpoints by the
	 * checkpointer thread and by the writer itself; -1 when not read */
	double commits_le[3], ckpts, writer_ckpts;
	/* ack: send -> ack; lag (fixed rate): this tool's own delay, from a
	 * message's intended send time to when its write to the socket returned */
	struct hist *ack, *rcv, *cycle, *quiet, *flood, *lag;
	struct errcount errs[32];
	int nerr;
};

/* ---- the bench state ---------------------------------------------------------- */

enum role { R_IDLE, R_YP, R_COUNSELLOR, R_ENROL, R_WAITER, R_FLOOD, R_ADMIN };

enum cstate {
	S_CONNECTING, S_HELLO, S_READY, S_START, S_LOGIN, S_ENROL_BEGIN,
	S_ENROL_FINISH, S_TAKE, S_RESUME, S_LEAVE, S_CLOSING, S_DEAD
};

struct account {
	char user[32], pass[64], code[48], secret[64];
	bool enrolled, failed;
};

struct pair;

struct client {
	struct bench *b;
	struct wsc *ws;
	enum role role;
	enum cstate st;
	int idx;
	bool greeted, expect_close, queued_open;
	bool awaiting_accept; /* young person: said hello after a resume */
	uint32_t hellos;      /* e2e.hellos sent (each a new request id) */
	/* young person */
	struct pair *pair;
	char conv[24], resume[64];
	int64_t last_seq;
	uint64_t cycle_t0, last_push;
	/* staff */
	struct account *acct;
	int takes_left, fails;
	/* staff, end-to-end: the device (docs/crypto.md) */
	int64_t staff_id, device;
	unsigned char sign_pk[crypto_sign_PUBLICKEYBYTES], sign_sk[crypto_sign_SECRETKEYBYTES];
	unsigned char box_pk[crypto_box_PUBLICKEYBYTES];
	unsigned char cert[HL_CERT_MAX];
	size_t cert_len;
};

struct side {
	uint64_t sent, acked, due;
	uint32_t inflight;
	uint32_t n;          /* the envelope counter of this direction */
	int64_t seen_seq;    /* the highest event this side has had acked or received */
	char seen_chain[44]; /* its chain head (base64url) */
	uint64_t *t; /* send (or intended send) time by id, ring of ring_mask+1 */
};

struct pair {
	int idx;
	char conv[24];
	uint64_t conv_n, epoch; /* the conversation as a number; the epoch (0: none yet) */
	uint32_t accepts;       /* e2e.accepts sent (each a new request id) */
	struct client *yp, *cs;
	struct side s[2]; /* 0: young person -> counsellor, 1: counsellor -> young person */
};

struct bench {
	const struct opts *o;
	uv_loop_t loop;
	struct wsc_loop *wl;
	uv_timer_t tick;
	uv_idle_t spin;
	/* At a fixed rate without --spin: a timerfd every PACE_NS drives the
	 * sends, so that a message leaves within ~0.1 ms of its intended time
	 * (libuv's timers have 1 ms steps, which alone would put p99 near
	 * 1 ms), and so do received frames (pace_check). pace_fd < 0 when not
	 * used. */
	int pace_fd;
	uv_poll_t pace;
	uint64_t pace_next; /* the next sweep between received frames */
	int port;
	pid_t pid;
	bool peer;
	struct result *r;

	struct client **clients;
	int nclients, opening, max_opening;
	struct client **openq;
	int openq_n, openq_head, openq_cap;

	struct account *accts;
	int naccts, enrolled, logged_in, ready_staff;
	struct pair *pairs;
	int npairs, started, taken;
	uint32_t ring_mask;
	char *payload;
	size_t payload_len;

	/* Envelopes (all but --opaque): e2e when this target did the handshake.
	 * An envelope's bytes 93.. never change (commitment's last byte, nonce,
	 * ciphertext), so their base64url is made once: env_tail. */
	bool envs, e2e;
	unsigned char env[HL_E2E_HEADER + HL_E2E_CT_MIN + 49 * 1024];
	size_t env_len;
	char *env_tail;
	size_t env_tail_len;
	struct account *admin_acct;
	struct client *admin;
	const char *root_file;
	int registered, certified, secured;
	unsigned char admin_cert[HL_CERT_MAX];
	size_t admin_cert_len;
	unsigned char yp_kx_pk[32], cs_kx_pk[32];
	struct pair **cmap; /* pairs by conv_n, open addressing */
	uint32_t cmask;

	/* waiting: young people in the order they joined */
	struct client **fifo;
	int fifo_cap, fifo_head, fifo_n, waiters_ready;
	double leave_credit;
	uint64_t last_tick;

	int greeted;
	bool sending, measuring, flooding;
	bool store_ok;
	double store0[STORE_NV]; /* store_counters at measure_begin */
	uint64_t m0, m1, flood_at;
	double interval_ns, self0;
};

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

static void note_error(struct bench *b, const char *code)
{
	struct result *r = b->r;

	for (int i = 0; i < r->nerr; i++)
		if (strcmp(r->errs[i].code, code) == 0) {
			r->errs[i].n++;
			return;
		}
	if (r->nerr < (int)(sizeof(r->errs) / sizeof(r->errs[0]))) {
		snprintf(r->errs[r->nerr].code, sizeof(r->errs[0].code), "%s", code);
		r->errs[r->nerr++].n = 1;
	}
}

/* ---- tiny JSON field scanner (server messages are compact JSON) ------------- */

static bool jstr(const char *d, size_t n, const char *key, char *out, size_t cap)
{
	char pat[48];
	int pl = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	const char *p = memmem(d, n, pat, (size_t)pl), *e;

	if (!p)
		return false;
	p += pl;
	e = memchr(p, '"', n - (size_t)(p - d));
	if (!e || (size_t)(e - p) >= cap)
		return false;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
	return true;
}

static bool jint(const char *d, size_t n, const char *key, int64_t *v)
{
	char pat[48];
	int pl = snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = memmem(d, n, pat, (size_t)pl);

	if (!p)
		return false;
	p += pl;
	if (*p == '"')
		p++;
	*v = strtoll(p, NULL, 10);
	return true;
}

/* ---- TOTP (RFC 6238, HMAC-SHA1 via libcrypto) ---------------------------------- */

static size_t b32decode(const char *s, unsigned char *out, size_t cap)
{
	unsigned bits = 0, val = 0;
	size_t n = 0;

	for (; *s && *s != '='; s++) {
		const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
		const char *p = strchr(alpha, *s >= 'a' && *s <= 'z' ? *s - 32 : *s);
		if (!p)
			continue;
		val = (val << 5) | (unsigned)(p - alpha);
		bits += 5;
		if (bits >= 8 && n < cap) {
			out[n++] = (unsigned char)(val >> (bits - 8));
			bits -= 8;
		}
	}
	return n;
}

static void totp(const char *secret_b32, int64_t step, char out[7])
{
	unsigned char key[64], msg[8], mac[EVP_MAX_MD_SIZE];
	unsigned mlen = 0;
	size_t klen = b32decode(secret_b32, key, sizeof(key));
	uint32_t code;
	int off;

	for (int i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)step;
		step >>= 8;
	}
	HMAC(EVP_sha1(), key, (int)klen, msg, 8, mac, &mlen);
	off = mac[19] & 15;
	code = (((uint32_t)mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
	       ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
	snprintf(out, 7, "%06u", code % 1000000u);
}

static int64_t step_now(void)
{
	return (int64_t)time(NULL) / 30;
}

/* ---- sending ------------------------------------------------------------------- */

static void send_fmt(struct client *c, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	if (!c->ws || !wsc_is_open(c->ws))
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && n < (int)sizeof(buf))
		wsc_send_text(c->ws, buf, (size_t)n);
}

/* ---- envelopes (docs/crypto.md "Envelope") ------------------------------------- */

/* Where the send time sits in an envelope: bytes 63..70, inside the
 * franking commitment (which only the recipient checks). 63 = 21 * 3, so
 * it is base64url characters 84..95 of the payload. */
#define ENV_T_BYTE 63
#define ENV_T_CHAR 84
/* Bytes 0..92 (31 groups of 3) change per message; 93.. never do. */
#define ENV_FRESH 93

static void put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* base64url without padding of n bytes into out (room for the text and a
 * NUL); its length. */
static size_t b64(const unsigned char *in, size_t n, char *out, size_t cap)
{
	sodium_bin2base64(out, cap, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return strlen(out);
}

static bool unb64(const char *in, size_t len, unsigned char *out, size_t want)
{
	size_t n = 0;

	return sodium_base642bin(out, want, in, len, NULL, &n, NULL,
				 sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 && n == want;
}

/* The envelope template: the smallest 118 + 48 + 256k bytes whose
 * ciphertext (48 + 256k) is at least --size, random from byte 62 on (a
 * real envelope is incompressible), and env_tail, the base64url of bytes
 * 93.. */
static void envelope_init(struct bench *b)
{
	size_t k = 1, cap;

	while (48 + 256 * k < (size_t)b->o->size)
		k++;
	b->env_len = HL_E2E_HEADER + 48 + 256 * k;
	randombytes_buf(b->env + 62, b->env_len - 62);
	cap = sodium_base64_ENCODED_LEN(b->env_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	b->env_tail = malloc(cap);
	if (!b->env_tail)
		abort();
	b->env_tail_len = b64(b->env + ENV_FRESH, b->env_len - ENV_FRESH, b->env_tail, cap);
}

/* Writes the payload of side d's next message of pair p, sent at t, to out
 * (b->payload_len bytes): an envelope in the pair's epoch with the side's
 * next counter and the last event it has seen. */
static void envelope(struct bench *b, struct pair *p, int d, uint64_t t, char *out)
{
	struct side *s = &p->s[d];
	unsigned char *e = b->env;
	char head[sodium_base64_ENCODED_LEN(ENV_FRESH, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];

	e[0] = 1;
	e[1] = d == 0 ? HL_E2E_TO_STAFF : HL_E2E_TO_CONTACT;
	put_be(e + 2, p->conv_n, 8);
	put_be(e + 10, p->epoch, 8);
	put_be(e + 18, s->n, 4);
	put_be(e + 22, (uint64_t)s->seen_seq, 8);
	if (!s->seen_seq || !unb64(s->seen_chain, strlen(s->seen_chain), e + 30, 32))
		memset(e + 22, 0, 8 + 32);
	put_be(e + ENV_T_BYTE, t, 8);
	b64(e, ENV_FRESH, head, sizeof(head));
	memcpy(out, head, ENV_FRESH / 3 * 4);
	memcpy(out + ENV_FRESH / 3 * 4, b->env_tail, b->env_tail_len);
	s->n++;
}

/* The send time in a received payload, or 0. */
static uint64_t payload_time(struct bench *b, const char *pl, size_t avail)
{
	unsigned char t[9];
	char ts[17];

	if (b->envs) {
		if (avail < ENV_T_CHAR + 12 || !unb64(pl + ENV_T_CHAR, 12, t, 9))
			return 0;
		return get_be(t, 8);
	}
	if (avail < 16)
		return 0;
	memcpy(ts, pl, 16);
	ts[16] = 0;
	return strtoull(ts, NULL, 16);
}

/* Side s has seen event seq with the chain head in message d (an ack or an
 * event): it becomes the side's seen event if later than the one it had. */
static void saw(struct side *s, int64_t seq, const char *d, size_t n)
{
	char chain[48];

	if (seq <= s->seen_seq || !jstr(d, n, "chain", chain, sizeof(chain)) ||
	    strlen(chain) != 43)
		return;
	s->seen_seq = seq;
	memcpy(s->seen_chain, chain, 44);
}

static void cmap_put(struct bench *b, struct pair *p)
{
	uint32_t i = (uint32_t)p->conv_n & b->cmask;

	while (b->cmap[i] && b->cmap[i] != p)
		i = (i + 1) & b->cmask;
	b->cmap[i] = p;
}

/* The pair of the conversation named in message d, or NULL. */
static struct pair *cmap_get(struct bench *b, const char *d, size_t n)
{
	char conv[24];
	uint64_t v;
	uint32_t i;

	if (!b->cmap || !jstr(d, n, "conversation", conv, sizeof(conv)))
		return NULL;
	v = strtoull(conv, NULL, 10);
	for (i = (uint32_t)v & b->cmask; b->cmap[i]; i = (i + 1) & b->cmask)
		if (b->cmap[i]->conv_n == v && strcmp(b->cmap[i]->conv, conv) == 0)
			return b->cmap[i];
	return NULL;
}

/* The client that sends side d's messages of pair p (NULL until it is
 * set up). */
static struct client *side_client(const struct pair *p, int d)
{
	return d == 0 ? p->yp : p->cs;
}

/* One chat.send of pair p from side d, stamped with time t (the intended
 * send time in fixed-rate mode). The payload is an envelope (envelope());
 * with --opaque base64url (the server checks that in opaque mode too): 16
 * hex digits of t, then 'A's. */
static void send_chat(struct bench *b, struct pair *p, int d, uint64_t t)
{
	struct side *s = &p->s[d];
	struct client *c = side_client(p, d);
	char head[160];
	int hl;
	static char *msg;
	static size_t msgcap;
	size_t need;

	if (!c || !c->ws || !wsc_is_open(c->ws))
		return;
	hl = snprintf(head, sizeof(head),
		      "{\"type\":\"chat.send\",\"id\":\"m%d.%" PRIu64
		      "\",\"conversation\":\"%s\",\"payload\":\"",
		      p->idx, s->sent, p->conv);
	need = (size_t)hl + b->payload_len + 2;
	if (need > msgcap) {
		msgcap = need * 2;
		msg = realloc(msg, msgcap);
		if (!msg)
			abort();
	}
	memcpy(msg, head, (size_t)hl);
	if (b->envs) {
		envelope(b, p, d, t, msg + hl);
	} else {
		char ts[17];
		memcpy(msg + hl, b->payload, b->payload_len);
		snprintf(ts, sizeof(ts), "%016" PRIx64, t);
		memcpy(msg + hl, ts, 16);
	}
	memcpy(msg + hl + b->payload_len, "\"}", 2);
	s->t[s->sent & b->ring_mask] = t;
	s->sent++;
	s->inflight++;
	wsc_send_text(c->ws, msg, need);
}

static void pump(struct bench *b, struct pair *p, int d)
{
	struct side *s = &p->s[d];
	uint64_t now;

	if (!b->sending)
		return;
	if (b->o->sc == SC_RELAY) {
		now = now_ns();
		while (s->inflight < (uint32_t)b->o->window)
			send_chat(b, p, d, now);
		return;
	}
	if (b->o->sc == SC_FIXED || b->o->sc == SC_LOGINS) {
		struct client *c = side_client(p, d);
		uint64_t first = s->due;
		int n = 0;

		now = now_ns();
		while (s->due <= now && s->inflight < (uint32_t)b->o->window) {
			send_chat(b, p, d, s->due);
			s->due += (uint64_t)b->interval_ns;
			n++;
		}
		if (!n)
			return;
		/* Out now, not at the end of this loop iteration (which may be
		 * milliseconds of reading away); the lag is taken after the
		 * write, so it is the time to the kernel. */
		if (c && c->ws)
			wsc_flush(c->ws);
		if (b->measuring) {
			now = now_ns();
			for (int k = 0; k < n; k++)
				hist_add(b->r->lag, now - (first + (uint64_t)k * (uint64_t)b->interval_ns));
		}
	}
}

/* ---- connections ---------------------------------------------------------------- */

static void open_client(struct client *c);

static void queue_open(struct bench *b, struct client *c)
{
	if (c->queued_open)
		return;
	c->queued_open = true;
	b->openq[(b->openq_head + b->openq_n++) % b->openq_cap] = c;
}

static void open_some(struct bench *b)
{
	while (b->openq_n && b->opening < b->max_opening) {
		struct client *c = b->openq[b->openq_head];
		b->openq_head = (b->openq_head + 1) % b->openq_cap;
		b->openq_n--;
		c->queued_open = false;
		open_client(c);
	}
}

static void open_client(struct client *c)
{
	struct bench *b = c->b;
	bool staff = c->role == R_COUNSELLOR || c->role == R_ENROL || c->role == R_FLOOD ||
		     c->role == R_ADMIN;
	char origin[64];

	snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", b->port);
	c->st = S_CONNECTING;
	c->greeted = false;
	c->expect_close = false;
	b->opening++;
	c->ws = wsc_connect(b->wl, b->port,
			    staff ? "helpline.staff.v1" : "helpline.contact.v1",
			    staff ? origin : NULL, c);
	if (!c->ws) {
		b->opening--;
		note_error(b, "connect_failed");
		c->st = S_DEAD;
	}
}

static void on_open(struct wsc *ws)
{
	struct client *c = wsc_user(ws);

	c->st = S_HELLO;
	send_fmt(c, "{\"type\":\"hello\",\"id\":\"h\",\"version\":1,\"client\":\"helpline-bench/0.1\"}");
}

static void contact_start(struct client *c)
{
	c->st = S_START;
	send_fmt(c, "{\"type\":\"contact.start\",\"id\":\"s\"}");
}

/* A young person's e2e.hello, under a new request id each time (the same
 * id again would be re-acknowledged as a retry). */
static void say_hello(struct bench *b, struct client *c)
{
	char kx[64];

	b64(b->yp_kx_pk, 32, kx, sizeof(kx));
	send_fmt(c, "{\"type\":\"e2e.hello\",\"id\":\"k%" PRIu32 "\",\"kx_pk\":\"%s\"}",
		 c->hellos++, kx);
}

static void staff_login(struct client *c)
{
	char code[7];

	c->st = S_LOGIN;
	if (c->role == R_FLOOD) {
		send_fmt(c, "{\"type\":\"auth.login\",\"id\":\"l%d\",\"username\":\"nobody%d\","
			    "\"password\":\"not the password of anyone\",\"totp\":\"000000\"}",
			 c->fails, c->idx);
		return;
	}
	totp(c->acct->secret[0] ? c->acct->secret : "AAAAAAAA", step_now(), code);
	send_fmt(c, "{\"type\":\"auth.login\",\"id\":\"l\",\"username\":\"%s\","
		    "\"password\":\"%s\",\"totp\":\"%s\"}",
		 c->acct->user, c->acct->pass, code);
}

static void next_take(struct client *c)
{
	if (c->takes_left <= 0) {
		c->st = S_READY;
		return;
	}
	c->st = S_TAKE;
	send_fmt(c, "{\"type\":\"queue.take\",\"id\":\"t%d\"}", c->takes_left);
}

static struct pair *pair_by_conv(struct bench *b, const char *conv)
{
	for (int i = 0; i < b->npairs; i++)
		if (strcmp(b->pairs[i].conv, conv) == 0)
			return &b->pairs[i];
	return NULL;
}

static void fifo_push(struct bench *b, struct client *c)
{
	if (b->fifo_n >= b->fifo_cap)
		return;
	b->fifo[(b->fifo_head + b->fifo_n++) % b->fifo_cap] = c;
}

static void churn_close(struct client *c)
{
	c->st = S_CLOSING;
	c->expect_close = true;
	c->cycle_t0 = now_ns();
	wsc_close(c->ws, 1000);
}

static void on_ack(struct bench *b, struct client *c, const char *d, size_t n)
{
	char id[64];
	int pi;
	uint64_t k, t, now = now_ns();
	int64_t seq;
	struct pair *p;
	struct side *s;
	int side;

	if (!jstr(d, n, "id", id, sizeof(id)) || id[0] != 'm')
		return;
	pi = atoi(id + 1);
	k = strtoull(strchr(id, '.') ? strchr(id, '.') + 1 : "0", NULL, 10);
	if (pi < 0 || pi >= b->npairs)
		return;
	p = &b->pairs[pi];
	side = c->role == R_YP ? 0 : 1;
	s = &p->s[side];
	if (s->inflight)
		s->inflight--;
	s->acked++;
	if (jint(d, n, "seq", &seq)) {
		if (c->role == R_YP && seq > c->last_seq)
			c->last_seq = seq;
		if (b->e2e)
			saw(s, seq, d, n);
	}
	t = s->t[k & b->ring_mask];
	if (b->measuring && t >= b->m0) {
		b->r->acked++;
		hist_add(b->r->ack, now - t);
		if (b->o->sc == SC_LOGINS)
			hist_add(b->flooding ? b->r->flood : b->r->quiet, now - t);
	}
	if (b->o->sc == SC_CHURN && c->role == R_YP && c->st == S_READY &&
	    c->cycle_t0) {
		if (b->measuring) {
			b->r->cycles++;
			hist_add(b->r->cycle, now - c->cycle_t0);
		}
		if (b->sending)
			churn_close(c);
		return;
	}
	pump(b, p, side);
}

static void accept_hello(struct bench *b, struct client *c, struct pair *p, int64_t seq,
			 const char *d, size_t n);

static void on_event(struct bench *b, struct client *c, const char *d, size_t n)
{
	char kind[16];
	const char *p;
	int64_t seq = 0;
	uint64_t t;
	struct pair *pr;

	if (jint(d, n, "seq", &seq) && c->role == R_YP && seq > c->last_seq)
		c->last_seq = seq;
	if (!jstr(d, n, "kind", kind, sizeof(kind)))
		return;
	if (b->e2e) { /* what this side has seen, for its envelopes' seen_seq */
		pr = c->role == R_YP ? c->pair : cmap_get(b, d, n);
		if (pr && (c->role == R_YP || pr->cs == c))
			saw(&pr->s[c->role == R_YP ? 0 : 1], seq, d, n);
		if (pr && pr->cs == c && strcmp(kind, "hello") == 0)
			accept_hello(b, c, pr, seq, d, n);
		if (pr && c->role == R_YP && c->awaiting_accept && strcmp(kind, "accept") == 0) {
			/* A new epoch: both directions' counters start again. */
			c->awaiting_accept = false;
			pr->epoch = (uint64_t)seq;
			pr->s[0].n = pr->s[1].n = 0;
			send_chat(b, pr, 0, now_ns());
		}
	}
	if (strcmp(kind, "msg") != 0)
		return;
	p = memmem(d, n, "\"payload\":\"", 11);
	if (!p)
		return;
	t = payload_time(b, p + 11, n - (size_t)(p + 11 - d));
	if (b->measuring && t >= b->m0) {
		b->r->received++;
		hist_add(b->r->rcv, now_ns() - t);
	}
}

static void pace_check(struct bench *b);

static void on_text(struct wsc *ws, const char *d, size_t n)
{
	struct client *c = wsc_user(ws);
	struct bench *b = c->b;
	char type[32], buf[128];

	pace_check(b);
	if (!jstr(d, n, "type", type, sizeof(type)))
		return;
	if (strcmp(type, "chat.ack") == 0) {
		on_ack(b, c, d, n);
		return;
	}
	if (strcmp(type, "chat.event") == 0) {
		on_event(b, c, d, n);
		return;
	}
	if (strcmp(type, "queue.position") == 0) {
		uint64_t now = now_ns();
		if (b->measuring) {
			b->r->pushes++;
			if (c->last_push && now - c->last_push < 500000000ull)
				b->r->push_fast++;
		}
		c->last_push = now;
		return;
	}
	if (strcmp(type, "welcome") == 0) {
		c->greeted = true;
		b->opening--;
		b->greeted++;
		switch (c->role) {
		case R_IDLE:
			c->st = S_READY;
			break;
		case R_YP:
			if (c->resume[0]) {
				c->st = S_RESUME;
				send_fmt(c, "{\"type\":\"contact.resume\",\"id\":\"r\",\"resume\":\"%s\","
					    "\"last_seq\":%" PRId64 "}", c->resume, c->last_seq);
			} else {
				contact_start(c);
			}
			break;
		case R_WAITER:
			contact_start(c);
			break;
		case R_COUNSELLOR:
		case R_FLOOD:
		case R_ADMIN:
			staff_login(c);
			break;
		case R_ENROL:
			c->st = S_ENROL_BEGIN;
			send_fmt(c, "{\"type\":\"auth.enrol_begin\",\"id\":\"e\",\"code\":\"%s\"}",
				 c->acct->code);
			break;
		}
		return;
	}
	if (strcmp(type, "contact.started") == 0) {
		jstr(d, n, "conversation", c->conv, sizeof(c->conv));
		jstr(d, n, "resume", c->resume, sizeof(c->resume));
		c->st = S_READY;
		if (c->role == R_YP && c->pair) {
			snprintf(c->pair->conv, sizeof(c->pair->conv), "%s", c->conv);
			c->pair->conv_n = strtoull(c->conv, NULL, 10);
			cmap_put(b, c->pair);
			b->started++;
		} else if (c->role == R_WAITER) {
			b->waiters_ready++;
			fifo_push(b, c);
		}
		return;
	}
	if (strcmp(type, "contact.resumed") == 0) {
		c->st = S_READY;
		if (c->pair && b->e2e) {
			/* As the page does on every attach: a new hello, which the
			 * counsellor's device answers; the cycle's message goes
			 * in the new epoch (on_event). */
			c->awaiting_accept = true;
			say_hello(b, c);
		} else if (c->pair) { /* one message per cycle, acked to close the cycle */
			send_chat(b, c->pair, 0, now_ns());
		}
		return;
	}
	if (strcmp(type, "contact.left") == 0) {
		c->expect_close = true;
		c->st = S_CLOSING;
		wsc_close(c->ws, 1000);
		return;
	}
	if (strcmp(type, "auth.ok") == 0) {
		const char *st = memmem(d, n, "\"staff\":{", 9);
		if (st)
			jint(st, n - (size_t)(st - d), "id", &c->staff_id);
		c->st = S_READY;
		b->logged_in++;
		b->ready_staff++;
		return;
	}
	if (strcmp(type, "device.registered") == 0) {
		jint(d, n, "device", &c->device);
		b->registered++;
		return;
	}
	if (strcmp(type, "device.list") == 0 && c->role == R_ADMIN) {
		char cert[2 * HL_CERT_MAX];
		const char *p = memmem(d, n, "\"cert\":\"", 8);
		size_t len;
		/* Only the admin's own device is asked for. */
		if (p && jstr(p, n - (size_t)(p - d), "cert", cert, sizeof(cert)) &&
		    sodium_base642bin(b->admin_cert, sizeof(b->admin_cert), cert, strlen(cert),
				      NULL, &len, NULL,
				      sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0)
			b->admin_cert_len = len;
		else
			note_error(b, "admin_cert_missing");
		return;
	}
	if (strcmp(type, "device.certified") == 0) {
		b->certified++;
		return;
	}
	if (strcmp(type, "e2e.ack") == 0) {
		char id[16];
		int64_t seq;
		if (jstr(d, n, "id", id, sizeof(id)) && id[0] == 'a' && jint(d, n, "seq", &seq)) {
			int pi = atoi(id + 1);
			if (pi >= 0 && pi < b->npairs && !b->pairs[pi].epoch) {
				b->pairs[pi].epoch = (uint64_t)seq;
				saw(&b->pairs[pi].s[1], seq, d, n);
				b->secured++;
			}
		} else if (c->pair && jint(d, n, "seq", &seq)) {
			saw(&c->pair->s[0], seq, d, n); /* the hello */
		}
		return;
	}
	if (strcmp(type, "auth.enrol_challenge") == 0) {
		char code[7];
		jstr(d, n, "totp_secret", c->acct->secret, sizeof(c->acct->secret));
		totp(c->acct->secret, step_now() - 1, code);
		c->st = S_ENROL_FINISH;
		send_fmt(c, "{\"type\":\"auth.enrol_finish\",\"id\":\"f\",\"code\":\"%s\","
			    "\"password\":\"%s\",\"totp\":\"%s\"}",
			 c->acct->code, c->acct->pass, code);
		return;
	}
	if (strcmp(type, "auth.enrolled") == 0) {
		c->acct->enrolled = true;
		b->enrolled++;
		c->expect_close = true;
		c->st = S_CLOSING;
		wsc_close(c->ws, 1000);
		return;
	}
	if (strcmp(type, "queue.taken") == 0) {
		struct pair *p;
		jstr(d, n, "conversation", buf, sizeof(buf));
		p = pair_by_conv(b, buf);
		if (p && !p->cs) {
			p->cs = c;
			b->taken++;
		}
		c->takes_left--;
		next_take(c);
		return;
	}
	if (strcmp(type, "error") == 0) {
		char code[40] = "unknown";
		jstr(d, n, "code", code, sizeof(code));
		if (c->role == R_FLOOD && c->st == S_LOGIN) {
			if (strcmp(code, "auth_failed") == 0) {
				if (b->measuring)
					b->r->logins++;
			} else {
				note_error(b, code);
			}
			c->fails++;
			if (!b->flooding) {
				c->st = S_READY;
			} else if (c->fails % 4 == 0) { /* 5 on one socket close it */
				c->expect_close = true;
				c->st = S_CLOSING;
				wsc_close(c->ws, 1000);
			} else {
				staff_login(c);
			}
			return;
		}
		if (c->role == R_ENROL && c->st == S_ENROL_BEGIN &&
		    strcmp(code, "auth_failed") == 0) {
			/* The daemon has not seen helplinectl's account yet. */
			c->expect_close = true;
			c->st = S_CLOSING;
			c->fails++;
			wsc_close(c->ws, 1000);
			return;
		}
		note_error(b, code);
		if (c->st == S_TAKE) {
			c->takes_left = 0;
			c->st = S_READY;
		} else if (c->st == S_LOGIN && c->role == R_COUNSELLOR) {
			c->acct->failed = true;
			c->st = S_READY;
		} else if (c->st == S_RESUME || c->st == S_START) {
			c->st = S_READY;
		}
		if (c->pair) { /* a refused chat.send: its ack will never come */
			char id[64];
			if (jstr(d, n, "id", id, sizeof(id)) && id[0] == 'm') {
				struct side *s = &c->pair->s[c->role == R_YP ? 0 : 1];
				if (s->inflight)
					s->inflight--;
			}
		}
		return;
	}
}

static void on_close(struct wsc *ws, int code, int http, const char *reason)
{
	struct client *c = wsc_user(ws);
	struct bench *b = c->b;
	char what[40];

	c->ws = NULL;
	if (!c->greeted)
		b->opening--;
	if (!c->expect_close) {
		if (http)
			snprintf(what, sizeof(what), "http_%d", http);
		else if (code < 0 && !c->greeted)
			snprintf(what, sizeof(what), "connect_failed");
		else if (reason && *reason)
			snprintf(what, sizeof(what), "close_%d_%.24s", code, reason);
		else
			snprintf(what, sizeof(what), "close_%d", code);
		for (char *q = what; *q; q++)
			if (*q == ' ' || *q == '"' || *q == '\\')
				*q = '_';
		note_error(b, what);
		c->st = S_DEAD;
		return;
	}
	/* Expected closes that lead to a new connection. */
	if (c->role == R_YP && b->sending && b->o->sc == SC_CHURN) {
		open_client(c);
	} else if (c->role == R_WAITER && b->sending) {
		c->resume[0] = 0;
		queue_open(b, c);
	} else if (c->role == R_FLOOD && b->flooding) {
		queue_open(b, c);
	} else if (c->role == R_ENROL && !c->acct->enrolled) {
		queue_open(b, c); /* retried from the tick after a pause */
	}
	c->st = c->st == S_CLOSING ? S_DEAD : c->st;
}

/* ---- the tick: opens, fixed-rate sends, leavers, the flood --------------------------- */

static void tick_work(struct bench *b)
{
	uint64_t now = now_ns();
	double dt = b->last_tick ? (double)(now - b->last_tick) / 1e9 : 0;

	b->last_tick = now;
	open_some(b);
	if (b->sending && (b->o->sc == SC_FIXED || b->o->sc == SC_LOGINS) && b->pace_fd < 0)
		for (int i = 0; i < b->npairs; i++) { /* else on_pace does */
			pump(b, &b->pairs[i], 0);
			pump(b, &b->pairs[i], 1);
		}
	if (b->sending && b->o->sc == SC_WAITING) {
		b->leave_credit += dt * b->o->leave_rate;
		while (b->leave_credit >= 1 && b->fifo_n) {
			struct client *c = b->fifo[b->fifo_head];
			b->fifo_head = (b->fifo_head + 1) % b->fifo_cap;
			b->fifo_n--;
			b->leave_credit -= 1;
			c->st = S_LEAVE;
			send_fmt(c, "{\"type\":\"contact.leave\",\"id\":\"x\"}");
		}
		if (b->leave_credit > 1)
			b->leave_credit = 1;
	}
	if (b->sending && b->o->sc == SC_LOGINS && !b->flooding && now >= b->flood_at) {
		b->flooding = true;
		for (int i = 0; i < b->nclients; i++) {
			struct client *c = b->clients[i];
			if (c->role != R_FLOOD)
				continue;
			if (c->ws && c->st == S_READY)
				staff_login(c);
			else if (!c->ws)
				queue_open(b, c);
		}
	}
}

static void on_tick(uv_timer_t *t)
{
	tick_work(t->data);
}

static void on_spin(uv_idle_t *h)
{
	struct bench *b = h->data;
	uint64_t now = now_ns();

	if (now - b->last_tick >= 50000) /* every 50 us while spinning */
		tick_work(b);
}

/* Sends what has fallen due on every side. Called by the timerfd and,
 * between received frames, at most once every PACE_NS, so that reading a
 * burst of acks and events does not hold back the sends due meanwhile. */
static void pace_sweep(struct bench *b, uint64_t now)
{
	b->pace_next = now + PACE_NS;
	for (int i = 0; i < b->npairs; i++)
		for (int d = 0; d < 2; d++)
			if (b->pairs[i].s[d].due <= now)
				pump(b, &b->pairs[i], d);
}

static void pace_check(struct bench *b)
{
	uint64_t now;

	if (b->pace_fd < 0 || !b->sending)
		return;
	now = now_ns();
	if (now >= b->pace_next)
		pace_sweep(b, now);
}

static void on_pace(uv_poll_t *h, int status, int events)
{
	struct bench *b = h->data;
	uint64_t expirations;

	(void)events;
	if (status < 0 || read(b->pace_fd, &expirations, sizeof(expirations)) < 0)
		return;
	pace_sweep(b, now_ns());
}

/* Starts the fixed rate's send timer; false (and the 1 ms tick alone)
 * when the kernel gives none. */
static bool pace_start(struct bench *b)
{
	struct itimerspec its = { .it_interval = { 0, PACE_NS }, .it_value = { 0, PACE_NS } };

	b->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->pace_fd < 0)
		return false;
	if (timerfd_settime(b->pace_fd, 0, &its, NULL) != 0 ||
	    uv_poll_init(&b->loop, &b->pace, b->pace_fd) != 0) {
		close(b->pace_fd);
		b->pace_fd = -1;
		return false;
	}
	b->pace.data = b;
	uv_poll_start(&b->pace, UV_READABLE, on_pace);
	return true;
}

static void pace_closed(uv_handle_t *h)
{
	struct bench *b = h->data;

	close(b->pace_fd);
	b->pace_fd = -1;
}

static void pace_stop(struct bench *b)
{
	if (b->pace_fd >= 0 && !uv_is_closing((uv_handle_t *)&b->pace))
		uv_close((uv_handle_t *)&b->pace, pace_closed);
}

static bool run_until(struct bench *b, bool (*cond)(struct bench *), double secs)
{
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);

	while (!cond(b)) {
		if (now_ns() > end)
			return false;
		uv_run(&b->loop, UV_RUN_ONCE);
	}
	return true;
}

/* ---- /proc of the server ------------------------------------------------------------ */

/* CPU seconds of one process, and its parent. */
static bool stat_cpu(pid_t pid, double *secs, pid_t *parent)
{
	char path[64], buf[2048];
	FILE *f;
	size_t n;
	char *p;
	unsigned long ut = 0, st = 0;
	int ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p)
		return false;
	/* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	if (sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		   &ppid, &ut, &st) != 3)
		return false;
	*secs = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	*parent = (pid_t)ppid;
	return true;
}

/* CPU seconds of the server and of its child processes (helplined's
 * Argon2id workers): the work is the server's wherever it runs. */
static bool proc_cpu(pid_t pid, double *secs)
{
	DIR *d;
	struct dirent *e;
	pid_t parent;
	double own, child;

	if (!stat_cpu(pid, &own, &parent))
		return false;
	*secs = own;
	d = opendir("/proc");
	if (!d)
		return true;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long id = strtol(e->d_name, &end, 10);

		if (*end || id <= 0 || id == pid)
			continue;
		if (stat_cpu((pid_t)id, &child, &parent) && parent == pid)
			*secs += child;
	}
	closedir(d);
	return true;
}

static long proc_status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	FILE *f;
	long v = -1;
	size_t kl = strlen(key);

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ---- processes: the server under test ------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return 0;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	bool ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static pid_t spawn(char *const argv[], const char *log, int cpu)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		pin(cpu);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int run_wait(char *const argv[], char *out, size_t cap)
{
	int p[2], status = -1;
	pid_t pid;
	size_t n = 0;
	ssize_t k;

	if (pipe(p) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while (n + 1 < cap && (k = read(p[0], out + n, cap - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = 0;
	close(p[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void stop_server(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
}

struct target {
	bool peer;
	pid_t pid;
	int port;
	char dir[256], db[300], root[300];
};

static bool start_target(const struct opts *o, struct target *t, bool peer)
{
	char port[16], listen[48], ini[300], log[300];
	FILE *f;

	memset(t, 0, sizeof(*t));
	t->peer = peer;
	if (o->port) { /* an already running server */
		t->port = o->port;
		t->pid = o->server_pid;
		return true;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/hl-bench-XXXXXX", o->keep_dir ? o->keep_dir : "/tmp");
	if (!mkdtemp(t->dir))
		return false;
	t->port = free_port();
	snprintf(port, sizeof(port), "%d", t->port);
	snprintf(log, sizeof(log), "%s/server.log", t->dir);
	if (peer) {
		char *argv[] = { (char *)o->node, (char *)o->peer, "--port", port,
				 "--dir", t->dir, NULL };
		t->pid = spawn(argv, log, o->server_cpu);
	} else {
		snprintf(t->db, sizeof(t->db), "%s/helpline.db", t->dir);
		snprintf(ini, sizeof(ini), "%s/bench.ini", t->dir);
		if (!o->opaque) {
			/* The organisation's keys, before the daemon reads them:
			 * end-to-end as in service (checkpoints signed too). */
			char out[2048];
			snprintf(t->root, sizeof(t->root), "%s/root-key.json", t->dir);
			char *iargv[] = { (char *)o->helplinectl, "--db", t->db, "init",
					  "--root-key-out", t->root, NULL };
			if (run_wait(iargv, out, sizeof(out)) != 0) {
				fprintf(stderr, "helpline-bench: helplinectl init failed: %s\n", out);
				return false;
			}
		}
		f = fopen(ini, "w");
		if (!f)
			return false;
		/* Per-connection budgets high enough not to be what is measured,
		 * quiet logs, and (--opaque only) the relay tests' opaque
		 * payloads; otherwise chat.envelopes is the default, strict. */
		fprintf(f, "[server]\nmax_connections = 19900\n"
			   "%s"
			   "[ws]\nrate = 10000\nburst = 100000\n"
			   "[queue]\nmax = 20000\n"
			   "[log]\nlevel = warn\n",
			o->opaque ? "[chat]\nenvelopes = opaque\n" : "");
		fclose(f);
		snprintf(listen, sizeof(listen), "127.0.0.1:%d", t->port);
		char *argv[] = { (char *)o->helplined, "--config", ini, "--listen", listen,
				 "--db", t->db, NULL };
		t->pid = spawn(argv, log, o->server_cpu);
	}
	for (int i = 0; i < 300; i++) {
		int status;
		if (port_open(t->port))
			return true;
		if (waitpid(t->pid, &status, WNOHANG) == t->pid) {
			fprintf(stderr, "helpline-bench: the %s exited at start-up; see %s\n",
				peer ? "peer" : "server", log);
			t->pid = 0;
			return false;
		}
		usleep(50000);
	}
	return false;
}

static void stop_target(const struct opts *o, struct target *t)
{
	char cmd[400];

	if (o->port)
		return;
	stop_server(t->pid);
	if (!o->keep_dir && t->dir[0]) {
		snprintf(cmd, sizeof(cmd), "%s/server.log", t->dir);
		unlink(cmd);
		/* Only files this tool's server made, in the directory it made. */
		char *argv[] = { "rm", "-rf", "--", t->dir, NULL };
		char out[16];
		run_wait(argv, out, sizeof(out));
	}
}

/* ---- conditions for run_until ------------------------------------------------------------ */

static bool c_all_greeted(struct bench *b) { return b->greeted >= b->nclients && !b->opening; }
static bool c_enrolled(struct bench *b) { return b->enrolled >= b->naccts + b->e2e; }
static bool c_logged_in(struct bench *b) { return b->ready_staff >= b->naccts + b->e2e; }
static bool c_registered(struct bench *b) { return b->registered >= b->naccts + 1; }
static bool c_admin_cert(struct bench *b) { return b->admin_cert_len > 0; }
static bool c_certified(struct bench *b) { return b->certified >= b->naccts; }
static bool c_secured(struct bench *b) { return b->secured >= b->npairs; }
static bool c_started(struct bench *b) { return b->started >= b->npairs; }
static bool c_taken(struct bench *b) { return b->taken >= b->npairs; }
static bool c_waiters(struct bench *b) { return b->waiters_ready >= b->o->waiting; }
static bool c_never(struct bench *b) { (void)b; return false; }

static bool c_drained(struct bench *b)
{
	for (int i = 0; i < b->npairs; i++)
		if (b->pairs[i].s[0].inflight || b->pairs[i].s[1].inflight)
			return false;
	return true;
}

static struct client *new_client(struct bench *b, enum role role)
{
	struct client *c = calloc(1, sizeof(*c));

	if (!c)
		abort();
	c->b = b;
	c->role = role;
	c->idx = b->nclients;
	b->clients[b->nclients++] = c;
	return c;
}

/* ---- setup steps -------------------------------------------------------------------------- */

static bool make_accounts(struct bench *b, const struct target *t, int n)
{
	const struct opts *o = b->o;
	char cap[16], out[4096], name[32];

	/* accts[n]: the flood's (no such account); accts[n + 1]: the admin whose
	 * device certifies the counsellors' devices (end-to-end only). */
	b->accts = calloc((size_t)n + 2, sizeof(*b->accts));
	b->naccts = n;
	if (b->e2e) {
		struct account *a = b->admin_acct = &b->accts[n + 1];
		snprintf(a->user, sizeof(a->user), "benchadmin");
		snprintf(a->pass, sizeof(a->pass), "bench password of the admin");
		char *argv[] = { (char *)o->helplinectl, "--db", (char *)t->db, "create-admin",
				 a->user, NULL };
		if (run_wait(argv, out, sizeof(out)) != 0 || !strstr(out, "enrolment code: ")) {
			snprintf(b->r->why, sizeof(b->r->why), "helplinectl create-admin failed: %.200s", out);
			return false;
		}
		sscanf(strstr(out, "enrolment code: ") + 16, "%47s", a->code);
		struct client *c = new_client(b, R_ENROL);
		c->acct = a;
		queue_open(b, c);
	}
	snprintf(cap, sizeof(cap), "%d", o->per_counsellor > 20 ? 20 : o->per_counsellor);
	for (int i = 0; i < n; i++) {
		struct account *a = &b->accts[i];
		snprintf(a->user, sizeof(a->user), "bench%d", i);
		snprintf(a->pass, sizeof(a->pass), "bench password %d of helpline", i);
		if (t->peer || o->port)
			continue;
		snprintf(name, sizeof(name), "Bench %d", i);
		char *argv[] = { (char *)o->helplinectl, "--db", (char *)t->db, "create-staff",
				 a->user, "--role", "counsellor", "--name", name, "--capacity",
				 cap, NULL };
		if (run_wait(argv, out, sizeof(out)) != 0) {
			snprintf(b->r->why, sizeof(b->r->why), "helplinectl create-staff failed: %.200s", out);
			return false;
		}
		char *p = strstr(out, "enrolment code: ");
		if (!p) {
			snprintf(b->r->why, sizeof(b->r->why), "no enrolment code from helplinectl");
			return false;
		}
		sscanf(p + 16, "%47s", a->code);
	}
	if (t->peer || o->port)
		return true;
	for (int i = 0; i < n; i++) {
		struct client *c = new_client(b, R_ENROL);
		c->acct = &b->accts[i];
		queue_open(b, c);
	}
	if (!run_until(b, c_enrolled, 60)) {
		snprintf(b->r->why, sizeof(b->r->why), "enrolment: %d of %d in 60 s", b->enrolled,
			 n + b->e2e);
		return false;
	}
	return true;
}

static bool login_counsellors(struct bench *b)
{
	for (int i = 0; i < b->naccts; i++) {
		struct client *c = new_client(b, R_COUNSELLOR);
		c->acct = &b->accts[i];
		queue_open(b, c);
	}
	if (b->e2e) {
		b->admin = new_client(b, R_ADMIN);
		b->admin->acct = b->admin_acct;
		queue_open(b, b->admin);
	}
	if (!run_until(b, c_logged_in, 60)) {
		snprintf(b->r->why, sizeof(b->r->why), "logins: %d of %d in 60 s",
			 b->ready_staff, b->naccts);
		return false;
	}
	return true;
}

static bool make_pairs(struct bench *b)
{
	const struct opts *o = b->o;
	int k = 0;

	b->npairs = o->pairs;
	b->pairs = calloc((size_t)o->pairs, sizeof(*b->pairs));
	for (b->cmask = 1; b->cmask < (uint32_t)o->pairs * 2; b->cmask <<= 1)
		;
	b->cmap = calloc(b->cmask, sizeof(*b->cmap));
	b->cmask--;
	if (!b->pairs || !b->cmap)
		abort();
	for (b->ring_mask = 1; b->ring_mask < (uint32_t)o->window * 4 + 64; b->ring_mask <<= 1)
		;
	b->ring_mask--;
	for (int i = 0; i < o->pairs; i++) {
		struct pair *p = &b->pairs[i];
		p->idx = i;
		for (int d = 0; d < 2; d++) {
			p->s[d].t = calloc(b->ring_mask + 1, sizeof(uint64_t));
			if (!p->s[d].t)
				abort();
		}
		p->yp = new_client(b, R_YP);
		p->yp->pair = p;
		queue_open(b, p->yp);
	}
	if (!run_until(b, c_started, 60)) {
		snprintf(b->r->why, sizeof(b->r->why), "contact.start: %d of %d", b->started, o->pairs);
		return false;
	}
	/* Each counsellor takes its share, one queue.take at a time. */
	for (int i = 0; i < b->nclients; i++) {
		struct client *c = b->clients[i];
		if (c->role != R_COUNSELLOR || c->st != S_READY)
			continue;
		c->takes_left = o->pairs - k < o->per_counsellor ? o->pairs - k : o->per_counsellor;
		k += c->takes_left;
		next_take(c);
	}
	if (!run_until(b, c_taken, 60)) {
		snprintf(b->r->why, sizeof(b->r->why), "queue.take: %d of %d", b->taken, o->pairs);
		return false;
	}
	return true;
}

/* ---- end-to-end set-up (docs/crypto.md), as a helpline sets it up -------------------------- */

/* Every logged-in counsellor and the admin register a device (its keys made
 * here); the organisation root certifies the admin's (helplinectl
 * certify-device), and the admin's device certifies the counsellors'
 * (device.certify with certificates made by cert.c). */
static bool setup_devices(struct bench *b, const struct target *t)
{
	const struct opts *o = b->o;
	unsigned char req[18 + 8 + 64], sig[crypto_sign_BYTES], box_sk[crypto_box_SECRETKEYBYTES];
	char spk[64], bpk[64], sg[128], out[4096], dev[24];
	unsigned char kx_sk[crypto_kx_SECRETKEYBYTES];

	for (int i = 0; i < b->nclients; i++) {
		struct client *c = b->clients[i];
		if ((c->role != R_COUNSELLOR && c->role != R_ADMIN) || c->st != S_READY)
			continue;
		crypto_sign_keypair(c->sign_pk, c->sign_sk);
		crypto_box_keypair(c->box_pk, box_sk);
		memcpy(req, "helpline-device-v1", 18);
		put_be(req + 18, (uint64_t)c->staff_id, 8);
		memcpy(req + 26, c->sign_pk, 32);
		memcpy(req + 58, c->box_pk, 32);
		crypto_sign_detached(sig, NULL, req, sizeof(req), c->sign_sk);
		b64(c->sign_pk, 32, spk, sizeof(spk));
		b64(c->box_pk, 32, bpk, sizeof(bpk));
		b64(sig, sizeof(sig), sg, sizeof(sg));
		send_fmt(c, "{\"type\":\"device.register\",\"id\":\"d\",\"sign_pk\":\"%s\","
			    "\"box_pk\":\"%s\",\"sig\":\"%s\"}", spk, bpk, sg);
	}
	sodium_memzero(box_sk, sizeof(box_sk));
	if (!run_until(b, c_registered, 30)) {
		snprintf(b->r->why, sizeof(b->r->why), "device.register: %d of %d", b->registered,
			 b->naccts + 1);
		return false;
	}
	snprintf(dev, sizeof(dev), "%" PRId64, b->admin->device);
	char *argv[] = { (char *)o->helplinectl, "--db", (char *)t->db, "certify-device",
			 "--root-key", (char *)t->root, dev, NULL };
	if (run_wait(argv, out, sizeof(out)) != 0) {
		snprintf(b->r->why, sizeof(b->r->why), "helplinectl certify-device failed: %.200s", out);
		return false;
	}
	send_fmt(b->admin, "{\"type\":\"device.list\",\"id\":\"l\",\"staff_id\":%" PRId64 "}",
		 b->admin->staff_id);
	if (!run_until(b, c_admin_cert, 30)) {
		snprintf(b->r->why, sizeof(b->r->why), "no certificate for the admin's device");
		return false;
	}
	for (int i = 0; i < b->nclients; i++) {
		struct client *c = b->clients[i];
		struct hl_cert ct = { .role = HL_CERT_COUNSELLOR_DEVICE, .subject_len = 36 };
		unsigned char h[32];
		char cert[2 * HL_CERT_MAX], issuer[2 * HL_CERT_MAX];
		size_t len;
		if (c->role != R_COUNSELLOR || c->st != S_READY)
			continue;
		crypto_generichash(h, sizeof(h), c->sign_pk, 32, NULL, 0);
		memcpy(ct.subject, "dev:", 4);
		sodium_bin2hex(ct.subject + 4, 33, h, 16);
		memcpy(ct.sign_pk, c->sign_pk, 32);
		memcpy(ct.box_pk, c->box_pk, 32);
		ct.not_before = (int64_t)time(NULL) - 300;
		ct.not_after = ct.not_before + 2 * 86400;
		if (hl_cert_encode(&ct, c->cert, sizeof(c->cert), &len) != 0 ||
		    hl_cert_sign(c->cert, len, b->admin->sign_sk, c->cert, sizeof(c->cert),
				 &c->cert_len) != 0) {
			snprintf(b->r->why, sizeof(b->r->why), "could not make a device certificate");
			return false;
		}
		b64(c->cert, c->cert_len, cert, sizeof(cert));
		b64(b->admin_cert, b->admin_cert_len, issuer, sizeof(issuer));
		send_fmt(b->admin, "{\"type\":\"device.certify\",\"id\":\"c\",\"device\":%" PRId64
			 ",\"cert\":\"%s\",\"issuer\":\"%s\"}", c->device, cert, issuer);
	}
	if (!run_until(b, c_certified, 30)) {
		snprintf(b->r->why, sizeof(b->r->why), "device.certify: %d of %d", b->certified,
			 b->naccts);
		return false;
	}
	/* One ephemeral key each for every young person and every device: the
	 * server checks keys, never that they differ. */
	crypto_kx_keypair(b->yp_kx_pk, kx_sk);
	crypto_kx_keypair(b->cs_kx_pk, kx_sk);
	sodium_memzero(kx_sk, sizeof(kx_sk));
	return true;
}

/* The counsellor's device answers pair p's hello (event seq, message d):
 * an e2e.accept signed over the transcript. */
static void accept_hello(struct bench *b, struct client *c, struct pair *p, int64_t seq,
			 const char *d, size_t n)
{
	char pk[64], kx[64], cert[2 * HL_CERT_MAX], issuer[2 * HL_CERT_MAX], sg[128];
	unsigned char young[32], tr[32], sig[crypto_sign_BYTES];

	if (!jstr(d, n, "payload", pk, sizeof(pk)) || !unb64(pk, strlen(pk), young, 32)) {
		note_error(b, "bad_hello_event");
		return;
	}
	hl_e2e_transcript(p->conv_n, (uint64_t)seq, young, b->cs_kx_pk, c->cert, c->cert_len,
			  b->admin_cert, b->admin_cert_len, tr);
	crypto_sign_detached(sig, NULL, tr, sizeof(tr), c->sign_sk);
	b64(b->cs_kx_pk, 32, kx, sizeof(kx));
	b64(c->cert, c->cert_len, cert, sizeof(cert));
	b64(b->admin_cert, b->admin_cert_len, issuer, sizeof(issuer));
	b64(sig, sizeof(sig), sg, sizeof(sg));
	send_fmt(c, "{\"type\":\"e2e.accept\",\"id\":\"a%d.%" PRIu32 "\",\"conversation\":\"%s\","
		    "\"hello\":%" PRId64 ",\"kx_pk\":\"%s\",\"cert\":\"%s\",\"issuer\":\"%s\","
		    "\"sig\":\"%s\"}", p->idx, p->accepts++, p->conv, seq, kx, cert, issuer, sg);
}

/* Each young person says hello; its counsellor's device accepts
 * (accept_hello) and the accept's seq is the pair's epoch. */
static bool secure_pairs(struct bench *b)
{
	for (int i = 0; i < b->npairs; i++)
		say_hello(b, b->pairs[i].yp);
	if (!run_until(b, c_secured, 30)) {
		snprintf(b->r->why, sizeof(b->r->why), "handshakes: %d of %d", b->secured, b->npairs);
		return false;
	}
	return true;
}

/* ---- one scenario against one target -------------------------------------------------------- */

static double self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* The store's counters from helplined's /metrics (a blocking GET: the
 * tool's own loop waits a few ms; the daemon serves it on its loop, as a
 * scrape in service), in the order of store_names. false when not
 * helplined or not all read. */
static const char *const store_names[STORE_NV] = {
	[ST_JOBS] = "helpline_store_jobs_committed_total ",
	[ST_BATCHES] = "helpline_store_batches_total ",
	[ST_WAL] = "helpline_store_wal_bytes_total ",
	[ST_LE_05] = "helpline_store_commit_seconds_bucket{le=\"0.0005\"} ",
	[ST_LE_1] = "helpline_store_commit_seconds_bucket{le=\"0.001\"} ",
	[ST_LE_25] = "helpline_store_commit_seconds_bucket{le=\"0.0025\"} ",
	[ST_CKPT] = "helpline_store_checkpoints_total ",
	[ST_WRITER_CKPT] = "helpline_store_writer_checkpoints_total ",
};

static bool store_counters(struct bench *b, double v[STORE_NV])
{
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
				  "Connection: close\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static char buf[1 << 18];
	size_t n = 0;
	ssize_t k;
	int fd, found = 0;

	if (b->peer || b->o->port)
		return false;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return false;
	}
	while (n + 1 < sizeof(buf) && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	buf[n] = 0;
	for (int i = 0; i < STORE_NV; i++) /* the sample line, not # HELP or # TYPE */
		for (char *p = strstr(buf, store_names[i]); p; p = strstr(p + 1, store_names[i]))
			if (p[-1] == '\n') {
				v[i] = strtod(p + strlen(store_names[i]), NULL);
				found++;
				break;
			}
	return found == STORE_NV;
}

static void measure_begin(struct bench *b, double *cpu0)
{
	b->store_ok = store_counters(b, b->store0);
	b->self0 = self_cpu();
	b->m0 = now_ns();
	b->measuring = true;
	proc_cpu(b->pid, cpu0);
}

static void measure_end(struct bench *b, double cpu0)
{
	double cpu1 = cpu0;

	b->m1 = now_ns();
	b->measuring = false;
	b->r->secs = (double)(b->m1 - b->m0) / 1e9;
	b->r->bench_cpu_pct = 100.0 * (self_cpu() - b->self0) / b->r->secs;
	if (b->pid > 0 && proc_cpu(b->pid, &cpu1))
		b->r->cpu_pct = 100.0 * (cpu1 - cpu0) / b->r->secs;
	else
		b->r->cpu_pct = -1;
	b->r->rss_kb = b->pid > 0 ? proc_status_kb(b->pid, "VmRSS") : -1;
	b->r->hwm_kb = b->pid > 0 ? proc_status_kb(b->pid, "VmHWM") : -1;
	{
		double v[STORE_NV]; /* then what changed over the run, or -1 */
		bool ok = b->store_ok && store_counters(b, v);

		for (int i = 0; i < STORE_NV; i++)
			v[i] = ok ? v[i] - b->store0[i] : -1;
		b->r->jobs = v[ST_JOBS];
		b->r->batches = v[ST_BATCHES];
		b->r->wal_bytes = v[ST_WAL];
		b->r->commits_le[0] = v[ST_LE_05];
		b->r->commits_le[1] = v[ST_LE_1];
		b->r->commits_le[2] = v[ST_LE_25];
		b->r->ckpts = v[ST_CKPT];
		b->r->writer_ckpts = v[ST_WRITER_CKPT];
	}
}

static void run_scenario(const struct opts *o, struct target *t, struct result *r)
{
	struct bench bb, *b = &bb;
	struct wsc_callbacks cb = { on_open, on_text, on_close };
	int nclients;
	double cpu0 = 0;

	memset(b, 0, sizeof(*b));
	b->o = o;
	b->r = r;
	b->port = t->port;
	b->pid = t->pid;
	b->peer = t->peer;
	b->max_opening = 256;
	b->pace_fd = -1;
	uv_loop_init(&b->loop);
	b->wl = wsc_loop_new(&b->loop, &cb);
	uv_timer_init(&b->loop, &b->tick);
	b->tick.data = b;
	uv_timer_start(&b->tick, on_tick, 1, 1);
	uv_idle_init(&b->loop, &b->spin);
	b->spin.data = b;

	b->envs = !o->opaque;
	b->e2e = b->envs && !t->peer && !o->port;
	if (b->envs) {
		envelope_init(b);
		b->payload_len = ENV_FRESH / 3 * 4 + b->env_tail_len;
	} else {
		b->payload_len = (size_t)((o->size * 4 + 2) / 3);
	}
	b->payload = malloc(b->payload_len + 16);
	memset(b->payload, 'A', b->payload_len);
	if (b->payload_len < 16)
		b->payload_len = 16;

	nclients = o->conns + 3 * o->pairs + o->waiting + o->flood + 64;
	b->clients = calloc((size_t)nclients, sizeof(*b->clients));
	b->openq = calloc((size_t)nclients, sizeof(*b->openq));
	b->openq_cap = nclients;
	b->nclients = 0;
	r->ok = false;
	r->rss_base_kb = b->pid > 0 ? proc_status_kb(b->pid, "VmRSS") : -1;

	switch (o->sc) {
	case SC_IDLE: {
		uint64_t t0;
		int n;
		for (int i = 0; i < o->conns; i++)
			queue_open(b, new_client(b, R_IDLE));
		n = b->nclients;
		t0 = now_ns();
		b->max_opening = 512;
		bool all = run_until(b, c_all_greeted, o->duration + 60);
		r->conns_per_s = b->greeted / ((double)(now_ns() - t0) / 1e9);
		if (!all)
			snprintf(r->why, sizeof(r->why), "only %d of %d connections greeted",
				 b->greeted, o->conns);
		measure_begin(b, &cpu0);
		run_until(b, c_never, o->duration);
		measure_end(b, cpu0);
		r->held = 0;
		for (int i = 0; i < n; i++)
			r->held += b->clients[i]->ws && b->clients[i]->st == S_READY;
		r->ok = all;
		break;
	}
	case SC_RELAY:
	case SC_FIXED:
	case SC_CHURN:
	case SC_LOGINS: {
		int nc = (o->pairs + o->per_counsellor - 1) / o->per_counsellor;
		if (!make_accounts(b, t, nc) || !login_counsellors(b) ||
		    (b->e2e && !setup_devices(b, t)) || !make_pairs(b) ||
		    (b->e2e && !secure_pairs(b)))
			goto out;
		/* Beside the chats (fixed rate, --waiting): joined only now,
		 * so that no counsellor takes one of them. */
		for (int i = 0; i < o->waiting; i++)
			queue_open(b, new_client(b, R_WAITER));
		if (o->waiting > 0 && !run_until(b, c_waiters, 120)) {
			snprintf(r->why, sizeof(r->why), "only %d of %d waiting", b->waiters_ready,
				 o->waiting);
			goto out;
		}
		if (o->sc == SC_LOGINS)
			for (int i = 0; i < o->flood; i++) {
				struct client *c = new_client(b, R_FLOOD);
				c->acct = &b->accts[b->naccts];
				queue_open(b, c);
			}
		if (o->sc == SC_LOGINS) /* flooders get greeted, then wait */
			run_until(b, c_never, 1.0);
		b->interval_ns = 2.0 * o->pairs / o->rate * 1e9;
		b->flood_at = UINT64_MAX; /* set once measuring */
		b->sending = true;
		{
			uint64_t now = now_ns();
			for (int i = 0; i < b->npairs; i++)
				for (int d = 0; d < 2; d++)
					b->pairs[i].s[d].due = now + (uint64_t)(b->interval_ns *
						((double)(2 * i + d) / (2.0 * b->npairs)));
		}
		if (o->spin && (o->sc == SC_FIXED || o->sc == SC_LOGINS))
			uv_idle_start(&b->spin, on_spin);
		else if ((o->sc == SC_FIXED || o->sc == SC_LOGINS) && !pace_start(b))
			fprintf(stderr, "helpline-bench: no timerfd (%s): sending on the "
				"1 ms tick\n", strerror(errno));
		if (o->sc == SC_RELAY)
			for (int i = 0; i < b->npairs; i++) {
				pump(b, &b->pairs[i], 0);
				pump(b, &b->pairs[i], 1);
			}
		if (o->sc == SC_CHURN)
			for (int i = 0; i < b->npairs; i++)
				churn_close(b->pairs[i].yp);
		run_until(b, c_never, o->warmup);
		measure_begin(b, &cpu0);
		b->flood_at = b->m0 + (uint64_t)(o->duration / 2 * 1e9);
		run_until(b, c_never, o->duration);
		measure_end(b, cpu0);
		b->sending = false;
		b->flooding = false;
		uv_idle_stop(&b->spin);
		pace_stop(b);
		run_until(b, c_drained, 2.0);
		r->ok = true;
		break;
	}
	case SC_WAITING: {
		b->fifo_cap = o->waiting + 16;
		b->fifo = calloc((size_t)b->fifo_cap, sizeof(*b->fifo));
		for (int i = 0; i < o->waiting; i++)
			queue_open(b, new_client(b, R_WAITER));
		bool all = run_until(b, c_waiters, 120);
		if (!all) {
			snprintf(r->why, sizeof(r->why), "only %d of %d waiting", b->waiters_ready,
				 o->waiting);
			goto out;
		}
		run_until(b, c_never, 1.5); /* let the start-up pushes pass */
		b->sending = true;
		measure_begin(b, &cpu0);
		run_until(b, c_never, o->duration);
		measure_end(b, cpu0);
		b->sending = false;
		r->ok = true;
		break;
	}
	}
out:
	/* Close everything and let the loop finish. */
	b->sending = false;
	b->flooding = false;
	uv_idle_stop(&b->spin);
	pace_stop(b);
	for (int i = 0; i < b->nclients; i++) {
		struct client *c = b->clients[i];
		if (!c)
			continue;
		c->expect_close = true;
		c->role = c->role == R_ENROL ? R_IDLE : c->role;
		if (c->ws)
			wsc_close(c->ws, 1000);
	}
	b->openq_n = 0;
	for (int i = 0; i < 2000 && wsc_loop_open_count(b->wl); i++)
		uv_run(&b->loop, UV_RUN_ONCE);
	uv_timer_stop(&b->tick);
	uv_close((uv_handle_t *)&b->tick, NULL);
	uv_close((uv_handle_t *)&b->spin, NULL);
	wsc_loop_free(b->wl);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	uv_loop_close(&b->loop);
	for (int i = 0; i < b->nclients; i++) {
		sodium_memzero(b->clients[i]->sign_sk, sizeof(b->clients[i]->sign_sk));
		free(b->clients[i]);
	}
	for (int i = 0; i < b->npairs; i++) {
		free(b->pairs[i].s[0].t);
		free(b->pairs[i].s[1].t);
	}
	free(b->pairs);
	free(b->cmap);
	free(b->env_tail);
	free(b->clients);
	free(b->openq);
	free(b->fifo);
	free(b->accts);
	free(b->payload);
}

/* ---- reporting ------------------------------------------------------------------------------ */

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static void print_hist(const char *name, const struct hist *h)
{
	if (!h->count)
		return;
	printf("  %-22s p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms  (n=%" PRIu64 ")\n",
	       name, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.9)),
	       ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)), ms(h->max), h->count);
}

static void json_hist(const char *name, const struct hist *h)
{
	printf(",\"%s\":{\"n\":%" PRIu64 ",\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,\"p999\":%.4f,\"max\":%.4f}",
	       name, h->count, ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.9)),
	       ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)), ms(h->max));
}

static double rate(const struct result *r, uint64_t n)
{
	return r->secs > 0 ? (double)n / r->secs : 0;
}

/* The server's CPU per unit of work (a message acknowledged, or a churn
 * cycle) in microseconds: what one costs, comparable between runs that
 * reached different rates. -1 when there is nothing to divide by. */
static double cpu_us_per_unit(const struct opts *o, const struct result *r)
{
	uint64_t n = o->sc == SC_CHURN ? r->cycles
		     : o->sc == SC_RELAY || o->sc == SC_FIXED || o->sc == SC_LOGINS
			     ? r->acked
			     : 0;

	if (r->cpu_pct < 0 || n == 0 || r->secs <= 0)
		return -1;
	return r->cpu_pct / 100.0 * r->secs * 1e6 / (double)n;
}

static void report(const struct opts *o, const struct result *r)
{
	printf("== %s · %s%s%s\n", r->target, scenario_names[o->sc], r->ok ? "" : " · FAILED: ",
	       r->ok ? "" : r->why);
	switch (o->sc) {
	case SC_IDLE:
		printf("  connections held       %" PRIu64 " of %d (opened at %.0f/s)\n", r->held,
		       o->conns, r->conns_per_s);
		if (r->held && r->rss_kb > 0)
			printf("  server RSS             %.1f MB (%.1f MB before), %.2f KB per connection\n",
			       r->rss_kb / 1024.0, r->rss_base_kb / 1024.0,
			       (double)(r->rss_kb - r->rss_base_kb) / (double)r->held);
		break;
	case SC_RELAY:
	case SC_FIXED:
	case SC_LOGINS:
		printf("  acknowledged           %.0f msgs/s  (received by the other side %.0f/s)\n",
		       rate(r, r->acked), rate(r, r->received));
		print_hist("send -> ack", r->ack);
		print_hist("send -> other side", r->rcv);
		print_hist("this tool's send lag", r->lag);
		if (o->sc == SC_LOGINS) {
			print_hist("ack, quiet half", r->quiet);
			print_hist("ack, login flood half", r->flood);
			printf("  logins answered        %.1f/s during the flood\n",
			       r->secs > 0 ? (double)r->logins / (r->secs / 2) : 0);
			if (r->quiet->count && r->flood->count)
				printf("  p99 flood / quiet      %.2fx\n",
				       (double)hist_quantile(r->flood, 0.99) /
					       (double)hist_quantile(r->quiet, 0.99));
		}
		break;
	case SC_CHURN:
		printf("  resume cycles          %.0f/s (close, connect, hello, contact.resume, %sone chat.send acked)\n",
		       rate(r, r->cycles),
		       !o->opaque && strcmp(r->target, "helpline") == 0
			       ? "e2e.hello answered by an e2e.accept, " : "");
		print_hist("cycle", r->cycle);
		print_hist("send -> ack", r->ack);
		break;
	case SC_WAITING:
		printf("  waiting                %d, leaving and re-joining %.0f/s\n", o->waiting,
		       o->leave_rate);
		printf("  queue.position pushes  %.0f/s (%.3f per waiting person per second); "
		       "%" PRIu64 " came < 0.5 s after the previous one to the same person\n",
		       rate(r, r->pushes), rate(r, r->pushes) / o->waiting, r->push_fast);
		break;
	}
	if (r->cpu_pct >= 0)
		printf("  server CPU             %.1f%% of one core over %.1f s (this tool: %.1f%%)\n",
		       r->cpu_pct, r->secs, r->bench_cpu_pct);
	if (cpu_us_per_unit(o, r) >= 0)
		printf("  server CPU per %-7s %.2f us\n",
		       o->sc == SC_CHURN ? "cycle" : "message", cpu_us_per_unit(o, r));
	if (r->rss_kb > 0)
		printf("  server RSS             %.1f MB (peak %.1f MB)\n", r->rss_kb / 1024.0,
		       r->hwm_kb / 1024.0);
	if (r->batches > 0)
		printf("  store                  %.0f jobs in %.0f batches: %.1f jobs per batch, "
		       "%.0f WAL bytes per job\n", r->jobs, r->batches, r->jobs / r->batches,
		       r->jobs > 0 ? r->wal_bytes / r->jobs : 0);
	if (r->batches > 0 && r->commits_le[0] >= 0)
		printf("  store commits          %.1f%% within 0.5 ms, %.1f%% within 1 ms, %.1f%% within "
		       "2.5 ms; checkpoints %.0f beside, %.0f by the writer\n",
		       100 * r->commits_le[0] / r->batches, 100 * r->commits_le[1] / r->batches,
		       100 * r->commits_le[2] / r->batches, r->ckpts, r->writer_ckpts);
	printf("  errors                 ");
	if (!r->nerr)
		printf("none");
	for (int i = 0; i < r->nerr; i++)
		printf("%s%s=%" PRIu64, i ? ", " : "", r->errs[i].code, r->errs[i].n);
	printf("\n");
	if (o->json) {
		printf("RESULT {\"target\":\"%s\",\"round\":%d,\"scenario\":\"%s\",\"envelopes\":%s,\"ok\":%s,\"secs\":%.3f,"
		       "\"cpu_pct\":%.2f,\"bench_cpu_pct\":%.2f,\"rss_kb\":%ld,\"rss_base_kb\":%ld,\"held\":%" PRIu64
		       ",\"msgs_per_s\":%.1f,\"received_per_s\":%.1f,\"cycles_per_s\":%.1f,"
		       "\"pushes_per_s\":%.1f,\"push_fast\":%" PRIu64 ",\"logins_per_s\":%.2f,"
		       "\"cpu_us_per_unit\":%.3f,\"jobs_per_batch\":%.1f,\"wal_bytes_per_job\":%.0f",
		       r->target, r->round, scenario_names[o->sc], o->opaque ? "false" : "true",
		       r->ok ? "true" : "false", r->secs,
		       r->cpu_pct, r->bench_cpu_pct, r->rss_kb, r->rss_base_kb, r->held, rate(r, r->acked),
		       rate(r, r->received), rate(r, r->cycles), rate(r, r->pushes), r->push_fast,
		       r->secs > 0 ? (double)r->logins / (r->secs / 2) : 0,
		       cpu_us_per_unit(o, r),
		       r->batches > 0 ? r->jobs / r->batches : -1,
		       r->jobs > 0 ? r->wal_bytes / r->jobs : -1);
		printf(",\"batches\":%.0f,\"commits_le_ms\":{\"0.5\":%.0f,\"1\":%.0f,\"2.5\":%.0f},"
		       "\"checkpoints\":%.0f,\"writer_checkpoints\":%.0f",
		       r->batches, r->commits_le[0], r->commits_le[1], r->commits_le[2], r->ckpts,
		       r->writer_ckpts);
		json_hist("ack", r->ack);
		json_hist("receipt", r->rcv);
		json_hist("cycle", r->cycle);
		json_hist("quiet", r->quiet);
		json_hist("flood", r->flood);
		json_hist("lag", r->lag);
		printf(",\"errors\":{");
		for (int i = 0; i < r->nerr; i++)
			printf("%s\"%s\":%" PRIu64, i ? "," : "", r->errs[i].code, r->errs[i].n);
		printf("}}\n");
	}
	fflush(stdout);
}

static void ratio_line(const char *what, double h, double p, bool higher_better)
{
	if (p <= 0 || h < 0)
		return;
	printf("  %-28s %10.3f %10.3f   %.2fx%s\n", what, h, p, h / p,
	       higher_better ? "" : " (lower is better)");
}

static void report_ratios(const struct opts *o, const struct result *h, const struct result *p)
{
	printf("== Helpline / peer · %s\n  %-28s %10s %10s   ratio\n", scenario_names[o->sc], "",
	       "helpline", "peer");
	switch (o->sc) {
	case SC_IDLE:
		ratio_line("connections held", (double)h->held, (double)p->held, true);
		if (h->held && p->held)
			ratio_line("RSS KB per connection",
				   (double)(h->rss_kb - h->rss_base_kb) / (double)h->held,
				   (double)(p->rss_kb - p->rss_base_kb) / (double)p->held, false);
		break;
	case SC_RELAY:
	case SC_FIXED:
	case SC_LOGINS:
		ratio_line("msgs/s acknowledged", rate(h, h->acked), rate(p, p->acked), true);
		ratio_line("ack p50 ms", ms(hist_quantile(h->ack, .5)), ms(hist_quantile(p->ack, .5)), false);
		ratio_line("ack p99 ms", ms(hist_quantile(h->ack, .99)), ms(hist_quantile(p->ack, .99)), false);
		ratio_line("ack p99.9 ms", ms(hist_quantile(h->ack, .999)), ms(hist_quantile(p->ack, .999)), false);
		ratio_line("receipt p99 ms", ms(hist_quantile(h->rcv, .99)), ms(hist_quantile(p->rcv, .99)), false);
		if (o->sc == SC_LOGINS)
			ratio_line("ack p99 flood ms", ms(hist_quantile(h->flood, .99)),
				   ms(hist_quantile(p->flood, .99)), false);
		break;
	case SC_CHURN:
		ratio_line("resume cycles/s", rate(h, h->cycles), rate(p, p->cycles), true);
		ratio_line("cycle p99 ms", ms(hist_quantile(h->cycle, .99)), ms(hist_quantile(p->cycle, .99)), false);
		break;
	case SC_WAITING:
		ratio_line("position pushes/s", rate(h, h->pushes), rate(p, p->pushes), false);
		break;
	}
	ratio_line("server CPU %", h->cpu_pct, p->cpu_pct, false);
	ratio_line(o->sc == SC_CHURN ? "server CPU us per cycle" : "server CPU us per message",
		   cpu_us_per_unit(o, h), cpu_us_per_unit(o, p), false);
	ratio_line("server RSS MB", h->rss_kb / 1024.0, p->rss_kb / 1024.0, false);
	fflush(stdout);
}

/* The median of n values (n <= MAX_ROUNDS; sorts a copy). */
#define MAX_ROUNDS 9
static double median(const double *v, int n)
{
	double a[MAX_ROUNDS], x;

	memcpy(a, v, (size_t)n * sizeof(*a));
	for (int i = 1; i < n; i++) /* insertion sort: n is small */
		for (int j = i; j > 0 && a[j - 1] > a[j]; j--) {
			x = a[j];
			a[j] = a[j - 1];
			a[j - 1] = x;
		}
	return n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}

/* One line of the summary over rounds: the medians of each target's
 * figure and of the per-round ratios (each from one round's side-by-side
 * pair). */
static void median_line(const char *what, const double *h, const double *p, int n,
			bool higher_better)
{
	double r[MAX_ROUNDS];

	for (int i = 0; i < n; i++)
		r[i] = p[i] > 0 ? h[i] / p[i] : 0;
	printf("  %-28s %10.3f %10.3f   %.2fx%s\n", what, median(h, n), median(p, n),
	       median(r, n), higher_better ? "" : " (lower is better)");
}

static void report_median(const struct opts *o, struct result (*res)[2], int n)
{
	double h[MAX_ROUNDS], p[MAX_ROUNDS];

	printf("== median of %d rounds · %s\n  %-28s %10s %10s   median ratio\n", n,
	       scenario_names[o->sc], "", "helpline", "peer");
#define EACH(expr_h, expr_p)                                                   \
	for (int i = 0; i < n; i++) {                                          \
		const struct result *H = &res[i][0], *P = &res[i][1];          \
		h[i] = (expr_h);                                               \
		p[i] = (expr_p);                                               \
		(void)H;                                                       \
		(void)P;                                                       \
	}
	switch (o->sc) {
	case SC_IDLE:
		EACH(H->held ? (double)(H->rss_kb - H->rss_base_kb) / (double)H->held : 0,
		     P->held ? (double)(P->rss_kb - P->rss_base_kb) / (double)P->held : 0);
		median_line("RSS KB per connection", h, p, n, false);
		break;
	case SC_RELAY:
	case SC_FIXED:
	case SC_LOGINS:
		EACH(rate(H, H->acked), rate(P, P->acked));
		median_line("msgs/s acknowledged", h, p, n, true);
		EACH(ms(hist_quantile(H->ack, .99)), ms(hist_quantile(P->ack, .99)));
		median_line("ack p99 ms", h, p, n, false);
		if (o->sc == SC_LOGINS) {
			EACH(ms(hist_quantile(H->flood, .99)), ms(hist_quantile(P->flood, .99)));
			median_line("ack p99 flood ms", h, p, n, false);
		}
		break;
	case SC_CHURN:
		EACH(rate(H, H->cycles), rate(P, P->cycles));
		median_line("resume cycles/s", h, p, n, true);
		break;
	case SC_WAITING:
		EACH(rate(H, H->pushes), rate(P, P->pushes));
		median_line("position pushes/s", h, p, n, false);
		break;
	}
	EACH(H->cpu_pct, P->cpu_pct);
	median_line("server CPU %", h, p, n, false);
	EACH(cpu_us_per_unit(o, H), cpu_us_per_unit(o, P));
	if (h[0] >= 0 && p[0] >= 0)
		median_line(o->sc == SC_CHURN ? "server CPU us per cycle"
					      : "server CPU us per message", h, p, n, false);
#undef EACH
	fflush(stdout);
}

/* The targets for this scenario (docs/performance.md, "The
 * targets"), judged on this invocation's figures: Helpline's median over
 * rounds, and the median of the per-round ratios to the peer. A target
 * whose set-up this run does not have (fewer connections, another rate,
 * opaque payloads) is named but not judged. */
static void target_line(const char *what, const char *figure, const char *verdict)
{
	printf("  %-44s %-22s %s\n", what, figure, verdict);
}

/* The verdict on a target: judged only when the run has its set-up. */
static const char *judged(bool setup, bool met)
{
	return !setup ? "not this run's set-up" : met ? "met" : "NOT met";
}

static void report_targets(const struct opts *o, struct result (*res)[2], int n)
{
	double h[MAX_ROUNDS], r[MAX_ROUNDS], v, held;
	char fig[64];
	int nr = 0;

	if (!o->run_helpline)
		return;
	if (n > 1)
		printf("== targets · %s (median of %d rounds)\n", scenario_names[o->sc], n);
	else
		printf("== targets · %s (one round)\n", scenario_names[o->sc]);
	switch (o->sc) {
	case SC_IDLE:
		for (int i = 0; i < n; i++)
			h[i] = res[i][0].held ? (double)(res[i][0].rss_kb - res[i][0].rss_base_kb) /
						   (double)res[i][0].held : 1e9;
		v = median(h, n);
		for (int i = 0; i < n; i++)
			h[i] = (double)res[i][0].held;
		held = median(h, n);
		snprintf(fig, sizeof(fig), "%.0f held", held);
		target_line("19,000 young-person connections held", fig,
			    judged(o->conns >= 19000, held >= 19000));
		snprintf(fig, sizeof(fig), "%.2f KB", v);
		target_line("<= 8 KB user-space RSS per connection", fig,
			    judged(o->conns >= 19000, v <= 8));
		break;
	case SC_RELAY:
		for (int i = 0; i < n; i++) {
			h[i] = rate(&res[i][0], res[i][0].acked);
			if (o->run_peer && rate(&res[i][1], res[i][1].acked) > 0)
				r[nr++] = h[i] / rate(&res[i][1], res[i][1].acked);
		}
		v = median(h, n);
		snprintf(fig, sizeof(fig), "%.0f msgs/s", v);
		target_line("durable relay >= 100,000 msgs/s", fig, judged(!o->opaque, v >= 100000));
		if (nr) {
			v = median(r, nr);
			snprintf(fig, sizeof(fig), "%.2fx", v);
			target_line("durable relay >= 1.5x the peer", fig, judged(!o->opaque, v >= 1.5));
		}
		break;
	case SC_FIXED:
		for (int i = 0; i < n; i++)
			h[i] = ms(hist_quantile(res[i][0].ack, .99));
		v = median(h, n);
		snprintf(fig, sizeof(fig), "p99 %.2f ms", v);
		target_line("p99 <= 1 ms at 20,000 msgs/s", fig,
			    judged(o->rate == 20000 && !o->opaque && !o->waiting, v <= 1));
		break;
	case SC_LOGINS:
		for (int i = 0; i < n; i++)
			h[i] = hist_quantile(res[i][0].quiet, .99) > 0
				       ? (double)hist_quantile(res[i][0].flood, .99) /
						 (double)hist_quantile(res[i][0].quiet, .99)
				       : 1e9;
		v = median(h, n);
		snprintf(fig, sizeof(fig), "%.2fx", v);
		target_line("login flood: chat p99 <= 2x its quiet p99", fig, judged(!o->opaque, v <= 2));
		break;
	case SC_WAITING:
		for (int i = 0; i < n; i++)
			h[i] = (double)res[i][0].push_fast;
		v = median(h, n);
		snprintf(fig, sizeof(fig), "%.0f < 0.5 s apart", v);
		target_line("10,000 waiting: position pushes coalesced", fig,
			    judged(o->waiting >= 10000, v == 0));
		for (int i = 0; i < n; i++)
			h[i] = res[i][0].cpu_pct;
		snprintf(fig, sizeof(fig), "%.1f%% of a core", median(h, n));
		target_line("10,000 waiting: server CPU bounded", fig, "(the issue sets no number)");
		break;
	case SC_CHURN:
		printf("  (none: churn is measured, not a target)\n");
		break;
	}
	fflush(stdout);
}

/* ---- main ------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: helpline-bench --scenario NAME [options]\n"
"Runs one scenario against helplined and then the Node.js peer (tests/load/peer.mjs),\n"
"each started by this tool on a free 127.0.0.1 port with a fresh state directory,\n"
"pinned to --server-cpu (this tool pins itself to --bench-cpu), and prints both\n"
"results and the ratios Helpline/peer.\n\n"
"scenarios:\n"
"  idle        --conns N young people held after hello/welcome; server RSS per connection\n"
"  relay       --pairs P chats, both sides sending --size B payloads with --window W unacked\n"
"              messages each: msgs/s acknowledged, latency send->ack and send->other side\n"
"  fixed-rate  the same at --rate R msgs/s in all (latency from the intended send time)\n"
"  churn       young people in chats close, reconnect, contact.resume and send one message, again and\n"
"              again (with envelopes, helplined's: first a new hello, answered by an accept, as the\n"
"              page does on every attach; the message goes in the new epoch)\n"
"  waiting     --waiting W young people in the queue, --leave-rate L of the first leaving and\n"
"              re-joining each second: queue.position pushes and server CPU\n"
"  logins      fixed-rate chat; in the second half --flood F sockets send staff logins\n"
"              (Argon2id on the server) as fast as answered: chat p99 quiet vs flood\n\n"
"options (defaults in brackets):\n"
"  --duration S [10]  --warmup S [1]  --conns N [1000]  --pairs P [100]  --window W [8; 64 at a fixed rate]\n"
"  --size B [300]  --rate R [20000]  --waiting W [10000]  --leave-rate L [20]  --flood F [16]\n"
"  --waiting W at a fixed rate [0]: W young people also wait in the queue, joined once the\n"
"                            chats are set up (the cost of many open conversations)\n"
"  --per-counsellor K [2]    chats per counsellor account and socket (capacity, at most 20)\n"
"  --helplined PATH [next to this tool]  --helplinectl PATH [next to helplined]\n"
"  --peer PATH [tests/load/peer.mjs of the source tree]  --node PATH [node]\n"
"  --only helpline|peer      run one target only\n"
"  --port N --server-pid PID measure an already running server on 127.0.0.1:N instead\n"
"                            (idle and waiting only: the others need counsellor accounts\n"
"                            this tool creates; the peer is skipped)\n"
"  --server-cpu N [0]  --bench-cpu N [1]  (-1: no pinning)\n"
"  --spin                    at a fixed rate, poll (every 50 us) instead of sending from a\n"
"                            100 us timerfd (costs this tool a core; no better here)\n"
"  --opaque                  opaque payloads of --size B (chat.envelopes = opaque, no\n"
"                            handshake): the relay alone. Otherwise every chat does the\n"
"                            real handshake (devices certified root -> admin ->\n"
"                            counsellors, e2e.hello/e2e.accept) and sends envelopes whose\n"
"                            ciphertext is the smallest 48 + 256k >= B bytes, with each\n"
"                            direction's counter and the last event it has seen; the\n"
"                            peer gets the same bytes\n"
"  --rounds N [1]            run helplined and the peer N times each (at most 9), taking turns\n"
"                            to go first; after each round's ratios, the medians of the\n"
"                            figures and of the per-round ratios: on a noisy machine a\n"
"                            median of side-by-side pairs says more than one pair\n"
"  --keep DIR                keep the servers' state directories under DIR\n"
"  --json                    also print one RESULT {json} line per target\n");
}

int main(int argc, char **argv)
{
	static char self_dir[PATH_MAX], hl_path[PATH_MAX + 16], ctl_path[PATH_MAX + 16],
		peer_path[PATH_MAX];
	struct opts o = {
		.sc = SC_RELAY, .duration = 10, .warmup = 1, .conns = 1000, .pairs = 100,
		.window = 0, .size = 300, .per_counsellor = 2, .waiting = 10000,
		.flood = 16, .rate = 20000, .leave_rate = 20, .node = "node",
		.server_cpu = 0, .bench_cpu = 1, .rounds = 1, .run_helpline = true, .run_peer = true,
		.spin = false,
	};
	enum { O_DUR = 256, O_WARM, O_CONNS, O_PAIRS, O_WIN, O_SIZE, O_RATE, O_WAIT, O_LEAVE,
	       O_FLOOD, O_PER, O_HL, O_CTL, O_PEER, O_NODE, O_ONLY, O_PORT, O_PID, O_SCPU,
	       O_BCPU, O_NOSPIN, O_KEEP, O_JSON, O_SC, O_OPAQUE, O_ROUNDS, O_HELP };
	static const struct option lo[] = {
		{ "scenario", 1, 0, O_SC }, { "duration", 1, 0, O_DUR }, { "warmup", 1, 0, O_WARM },
		{ "conns", 1, 0, O_CONNS }, { "pairs", 1, 0, O_PAIRS }, { "window", 1, 0, O_WIN },
		{ "size", 1, 0, O_SIZE }, { "rate", 1, 0, O_RATE }, { "waiting", 1, 0, O_WAIT },
		{ "leave-rate", 1, 0, O_LEAVE }, { "flood", 1, 0, O_FLOOD },
		{ "per-counsellor", 1, 0, O_PER }, { "helplined", 1, 0, O_HL },
		{ "helplinectl", 1, 0, O_CTL }, { "peer", 1, 0, O_PEER }, { "node", 1, 0, O_NODE },
		{ "only", 1, 0, O_ONLY }, { "port", 1, 0, O_PORT }, { "server-pid", 1, 0, O_PID },
		{ "server-cpu", 1, 0, O_SCPU }, { "bench-cpu", 1, 0, O_BCPU },
		{ "spin", 0, 0, O_NOSPIN }, { "keep", 1, 0, O_KEEP }, { "json", 0, 0, O_JSON },
		{ "opaque", 0, 0, O_OPAQUE }, { "rounds", 1, 0, O_ROUNDS },
		{ "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
	};
	int ch;
	bool sc_given = false;
	static struct result res[MAX_ROUNDS][2];
	bool ok = true, waiting_set = false;
	struct hist *hists;
	ssize_t n;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case O_SC:
			sc_given = false;
			for (int i = 0; i < 6; i++)
				if (strcmp(optarg, scenario_names[i]) == 0) {
					o.sc = (enum scenario)i;
					sc_given = true;
				}
			if (!sc_given) {
				fprintf(stderr, "helpline-bench: unknown scenario %s\n", optarg);
				return 2;
			}
			break;
		case O_DUR: o.duration = atof(optarg); break;
		case O_WARM: o.warmup = atof(optarg); break;
		case O_CONNS: o.conns = atoi(optarg); break;
		case O_PAIRS: o.pairs = atoi(optarg); break;
		case O_WIN: o.window = atoi(optarg); break;
		case O_SIZE: o.size = atoi(optarg); break;
		case O_RATE: o.rate = atof(optarg); break;
		case O_WAIT: o.waiting = atoi(optarg); waiting_set = true; break;
		case O_LEAVE: o.leave_rate = atof(optarg); break;
		case O_FLOOD: o.flood = atoi(optarg); break;
		case O_PER: o.per_counsellor = atoi(optarg); break;
		case O_HL: o.helplined = optarg; break;
		case O_CTL: o.helplinectl = optarg; break;
		case O_PEER: o.peer = optarg; break;
		case O_NODE: o.node = optarg; break;
		case O_ONLY:
			o.run_helpline = strcmp(optarg, "helpline") == 0;
			o.run_peer = strcmp(optarg, "peer") == 0;
			break;
		case O_PORT: o.port = atoi(optarg); break;
		case O_PID: o.server_pid = atoi(optarg); break;
		case O_SCPU: o.server_cpu = atoi(optarg); break;
		case O_BCPU: o.bench_cpu = atoi(optarg); break;
		case O_NOSPIN: o.spin = true; break;
		case O_KEEP: o.keep_dir = optarg; break;
		case O_JSON: o.json = true; break;
		case O_OPAQUE: o.opaque = true; break;
		case O_ROUNDS: o.rounds = atoi(optarg); break;
		case O_HELP: usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!sc_given || optind < argc || o.duration <= 0 || o.duration > 3600 ||
	    o.pairs < 1 || o.size < 16 || o.size > 49000 || o.rate <= 0 ||
	    o.per_counsellor < 1 || o.per_counsellor > 20 || o.conns < 1 || o.waiting < 1 ||
	    o.rounds < 1 || o.rounds > MAX_ROUNDS) {
		usage(stderr);
		return 2;
	}
	if (!o.window)
		o.window = o.sc == SC_RELAY ? 8 : 64;
	if (o.sc != SC_IDLE)
		o.conns = 0;
	/* At a fixed rate only if asked: young people waiting beside the
	 * chats. */
	if (o.sc != SC_WAITING && !(o.sc == SC_FIXED && waiting_set))
		o.waiting = 0;
	if (o.sc != SC_LOGINS)
		o.flood = 0;
	if (o.sc == SC_IDLE || o.sc == SC_WAITING)
		o.pairs = 0;
	if (o.port && o.sc != SC_IDLE && o.sc != SC_WAITING) {
		fprintf(stderr, "helpline-bench: --port works with idle and waiting only\n");
		return 2;
	}
	if (o.port) {
		o.run_peer = false;
		o.run_helpline = true;
	}
	/* Defaults relative to this binary: build/helpline-bench next to
	 * build/helplined, and the source tree's peer. */
	n = readlink("/proc/self/exe", self_dir, sizeof(self_dir) - 1);
	if (n > 0) {
		self_dir[n] = 0;
		*strrchr(self_dir, '/') = 0;
	}
	if (!o.helplined) {
		snprintf(hl_path, sizeof(hl_path), "%s/helplined", self_dir);
		o.helplined = hl_path;
	}
	if (!o.helplinectl) {
		snprintf(ctl_path, sizeof(ctl_path), "%s", o.helplined);
		char *slash = strrchr(ctl_path, '/');
		snprintf(slash ? slash + 1 : ctl_path,
			 sizeof(ctl_path) - (size_t)(slash ? slash + 1 - ctl_path : 0), "helplinectl");
		o.helplinectl = ctl_path;
	}
	if (!o.peer) {
#ifdef HL_BENCH_SOURCE_DIR
		snprintf(peer_path, sizeof(peer_path), "%s/tests/load/peer.mjs", HL_BENCH_SOURCE_DIR);
#else
		snprintf(peer_path, sizeof(peer_path), "tests/load/peer.mjs");
#endif
		o.peer = peer_path;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "helpline-bench: sodium_init failed\n");
		return 1;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	pin(o.bench_cpu);
	{
		struct rlimit rl;
		getrlimit(RLIMIT_NOFILE, &rl);
		if (o.conns + o.waiting + 2 * o.pairs + 100 > (int)rl.rlim_cur) {
			fprintf(stderr, "helpline-bench: need %d file descriptors, the limit is %ld\n",
				o.conns + o.waiting + 2 * o.pairs + 100, (long)rl.rlim_cur);
			return 2;
		}
	}
	{
		size_t k = 1;
		while (48 + 256 * k < (size_t)o.size)
			k++;
		printf("helpline-bench %s: duration %.1f s, pairs %d, window %d, payload %d B%s, "
		       "rate %.0f, conns %d, waiting %d, flood %d; server on cpu %d, bench on cpu %d\n",
		       scenario_names[o.sc], o.duration, o.pairs, o.window,
		       o.opaque ? o.size : (int)(HL_E2E_HEADER + 48 + 256 * k),
		       o.opaque ? " opaque" : " envelopes (end-to-end handshake per chat)", o.rate,
		       o.conns, o.waiting, o.flood, o.server_cpu, o.bench_cpu);
	}
	fflush(stdout);

	hists = calloc((size_t)o.rounds * 2 * HISTS, sizeof(*hists));
	if (!hists)
		return 1;
	for (int rd = 0; rd < o.rounds; rd++) {
		if (o.rounds > 1)
			printf("-- round %d of %d\n", rd + 1, o.rounds);
		for (int i = 0; i < 2; i++) {
			/* Every other round the peer goes first, so neither
			 * always runs on the warmer (or the noisier) side. */
			int k = rd % 2 ? 1 - i : i;
			struct target t;
			bool peer = k == 1;
			struct result *r = &res[rd][k];
			struct hist *hs = &hists[(rd * 2 + k) * HISTS];

			memset(r, 0, sizeof(*r));
			r->target = peer ? "peer" : "helpline";
			r->round = rd + 1;
			r->ack = &hs[0];
			r->rcv = &hs[1];
			r->cycle = &hs[2];
			r->quiet = &hs[3];
			r->flood = &hs[4];
			r->lag = &hs[5];
			r->cpu_pct = -1;
			if ((peer && !o.run_peer) || (!peer && !o.run_helpline))
				continue;
			if (!start_target(&o, &t, peer)) {
				snprintf(r->why, sizeof(r->why), "could not start the %s",
					 peer ? "peer" : "server");
				report(&o, r);
				stop_target(&o, &t);
				ok = false;
				continue;
			}
			run_scenario(&o, &t, r);
			report(&o, r);
			stop_target(&o, &t);
			ok = ok && r->ok;
		}
		if (o.run_helpline && o.run_peer)
			report_ratios(&o, &res[rd][0], &res[rd][1]);
	}
	if (o.rounds > 1 && o.run_helpline && o.run_peer)
		report_median(&o, res, o.rounds);
	report_targets(&o, res, o.rounds);
	free(hists);
	return ok ? 0 : 1;
}
