/*
 * hl-store-bench: the store alone, without the network (docs/performance.md).
 *
 * Opens the real store (store.c: the writer thread, group commit,
 * synchronous=FULL, the checkpointer) on a fresh database in --dir, creates
 * --convs conversations and keeps --inflight append jobs in flight for each:
 * the same hl_event_append a chat.send makes (duplicate check, conversation
 * state, chain hash, event row, conversation row, a signed checkpoint every
 * 32 events), with --size byte opaque payloads from "contact" and
 * "staff:1" in turn, each with its own client id. With --raw the jobs only
 * insert the event row (the same statement and row shape, seq counted in
 * memory): what SQLite alone costs per message under the same group commit.
 * With --envelopes the conversations are in epoch 1 (as after a handshake)
 * and each payload is a well-formed envelope (HL_E2E_ENV_MIN bytes, the
 * size of a short message) with its direction's next counter, as under
 * chat.envelopes = strict: the server parses and checks the header, not the
 * ciphertext, so the bytes after it are random. With --seen N as well,
 * each envelope says it was written after seeing the event of its
 * conversation's append N before (seen_seq and its chain head; a client
 * that has read everything says the last event, one whose window of
 * --inflight messages is unacknowledged about --inflight back), which the
 * server checks against the chain as in service.
 *
 * The whole process (loop, writer, checkpointer) is pinned to --cpu, as the
 * benchmark pins helplined, so the figures say what one core can append.
 * Prints appends/s, CPU per append, latency submit -> done (p50/p99/max)
 * and the store's batch counts; --json adds one RESULT line. At the end it
 * checks that the database holds one event row per acknowledged append and
 * that each conversation's row is at its last event (exit status 1
 * otherwise, or when any append failed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>
#include <uv.h>

#include "common.h"
#include "conversation.h"
#include "e2e.h"
#include "store.h"

#include "hist.h"

struct opts {
	int convs, inflight, size, cpu;
	double duration, warmup;
	const char *dir;
	bool raw, json, envelopes;
	int seen;                /* --seen N: 0 = none */
};

struct bench;

struct seen_head {
	int64_t seq;
	unsigned char head[32];
};

struct append_job {
	struct hl_store_job job; /* first: the store hands this back */
	struct bench *b;
	int conv;                /* index into b->conv_ids */
	uint64_t submitted_ns;
	int64_t n;               /* this conversation's append number */
	unsigned char env[HL_E2E_ENV_MIN]; /* --envelopes: the payload */
};

struct bench {
	struct opts o;
	uv_loop_t loop;
	uv_timer_t timer;
	struct hl_store store;
	int64_t *conv_ids;
	int64_t *next_n;         /* loop: appends submitted per conversation */
	int64_t *raw_seq;        /* writer (--raw): last seq per conversation */
	struct seen_head *heads; /* writer (--seen N): per conversation, the
				  * last N + 1 appends' seq and head */
	unsigned char *payload;
	unsigned char stamp_sk[crypto_sign_SECRETKEYBYTES];
	struct append_job *jobs;
	size_t njobs;
	bool measuring, stopping;
	uint64_t t0_ns, done_in_window, failed, ok;
	struct rusage ru0;
	struct hl_store_stats st0;
	struct hist lat;
	int setup_left, setup_status;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_s(const struct rusage *r)
{
	return (double)r->ru_utime.tv_sec + r->ru_utime.tv_usec / 1e6 +
	       (double)r->ru_stime.tv_sec + r->ru_stime.tv_usec / 1e6;
}

/* ---- setup: one job creates every conversation ------------------------ */

struct create_job {
	struct hl_store_job job;
	struct bench *b;
};

static int create_exec(struct hl_store_job *job, sqlite3 *db,
		       sqlite3_stmt *const *stmts)
{
	struct create_job *j = (struct create_job *)job;
	struct hl_conv_intake in = {.age_band = HL_AGE_NONE};
	int i, rc;

	for (i = 0; i < j->b->o.convs; i++) {
		rc = hl_conv_create(stmts, &in, 1, hl_now_ms(),
				    &j->b->conv_ids[i]);
		if (rc != 0)
			return rc;
	}
	/* Keys agreed (what an accept would leave): epoch 1, counters 0. */
	if (j->b->o.envelopes &&
	    sqlite3_exec(db, "UPDATE conversation SET e2e_epoch=1, "
			     "e2e_next_contact=0, e2e_next_staff=0",
			     NULL, NULL, NULL) != SQLITE_OK)
		return HL_ESTORE;
	return 0;
}

static void create_done(struct hl_store_job *job, int status)
{
	struct create_job *j = (struct create_job *)job;

	j->b->setup_status = status;
	j->b->setup_left = 0;
}

/* ---- the appends -------------------------------------------------------- */

/* Where append n of conversation c keeps its seq and head (--seen). */
static struct seen_head *seen_at(struct bench *b, int c, int64_t n)
{
	size_t ring = (size_t)b->o.seen + 1;

	return &b->heads[(size_t)c * ring + (size_t)(n % (int64_t)ring)];
}

static int append_exec(struct hl_store_job *job, sqlite3 *db,
		       sqlite3_stmt *const *stmts)
{
	struct append_job *j = (struct append_job *)job;
	struct bench *b = j->b;
	char client_id[32];
	const char *sender = (j->n & 1) ? "staff:1" : "contact";
	int64_t conv = b->conv_ids[j->conv];

	(void)db;
	snprintf(client_id, sizeof(client_id), "c%lld", (long long)j->n);
	if (b->o.raw) {
		/* The event row alone, the statement hl_event_append uses. */
		static const unsigned char chain[32];
		sqlite3_stmt *s = stmts[HL_STMT_EVENT_INSERT];
		int rc;

		sqlite3_bind_int64(s, 1, conv);
		sqlite3_bind_int64(s, 2, ++b->raw_seq[j->conv]);
		sqlite3_bind_int64(s, 3, hl_now_ms());
		sqlite3_bind_text(s, 4, "msg", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 5, sender, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 6, "all", -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 7, client_id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(s, 8, b->payload, b->o.size, SQLITE_STATIC);
		sqlite3_bind_blob(s, 9, chain, sizeof(chain), SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		if (rc != SQLITE_DONE) {
			b->raw_seq[j->conv]--;
			return HL_ESTORE;
		}
		return 0;
	}
	{
		uint8_t dir = (j->n & 1) ? HL_E2E_TO_CONTACT : HL_E2E_TO_STAFF;
		int rc;
		struct hl_event_new e = {
			.kind = "msg",
			.sender = sender,
			.visibility = HL_VIS_ALL,
			.client_id = client_id,
			.payload = b->payload,
			.payload_len = (size_t)b->o.size,
			.e2e = HL_EV_OPAQUE,
			.dir = dir,
			.stamp_sk = b->stamp_sk,
			.checkpoint_every = 32,
		};
		struct hl_event_result res;

		if (b->o.envelopes) {
			/* Sides take turns, so each side's counter is n / 2
			 * (jobs run in the order they were submitted). */
			uint32_t n = (uint32_t)(j->n / 2);

			memcpy(j->env, b->payload, sizeof(j->env));
			j->env[0] = 1;
			j->env[1] = dir;
			hl_put_be64(j->env + 2, (uint64_t)conv);
			hl_put_be64(j->env + 10, 1);
			j->env[18] = (unsigned char)(n >> 24);
			j->env[19] = (unsigned char)(n >> 16);
			j->env[20] = (unsigned char)(n >> 8);
			j->env[21] = (unsigned char)n;
			hl_put_be64(j->env + 22, 0); /* seen_seq: none */
			if (b->o.seen && j->n >= b->o.seen) {
				const struct seen_head *h =
					seen_at(b, j->conv, j->n - b->o.seen);

				hl_put_be64(j->env + 22, (uint64_t)h->seq);
				memcpy(j->env + 30, h->head, 32);
			}
			e.payload = j->env;
			e.payload_len = sizeof(j->env);
			e.e2e = HL_EV_ENVELOPE;
		}
		rc = hl_event_append(stmts, conv, &e, hl_now_ms(), &res);
		if (rc == 0 && b->o.seen) {
			struct seen_head *h = seen_at(b, j->conv, j->n);

			h->seq = res.seq;
			memcpy(h->head, res.chain, 32);
		}
		return rc;
	}
}

static void append_done(struct hl_store_job *job, int status);

static void submit(struct append_job *j)
{
	struct bench *b = j->b;

	memset(&j->job, 0, sizeof(j->job));
	j->job.exec = append_exec;
	j->job.done = append_done;
	j->job.append_only = !b->o.raw;
	j->n = b->next_n[j->conv]++;
	j->submitted_ns = now_ns();
	if (hl_store_submit(&b->store, &j->job) != 0)
		b->failed++;
}

static void append_done(struct hl_store_job *job, int status)
{
	struct append_job *j = (struct append_job *)job;
	struct bench *b = j->b;

	if (status != 0)
		b->failed++;
	else
		b->ok++;
	if (b->measuring && status == 0) {
		b->done_in_window++;
		hist_add(&b->lat, now_ns() - j->submitted_ns);
	}
	if (!b->stopping)
		submit(j);
}

static void on_timer(uv_timer_t *t)
{
	struct bench *b = t->data;

	if (!b->measuring) {
		b->measuring = true;
		b->t0_ns = now_ns();
		getrusage(RUSAGE_SELF, &b->ru0);
		hl_store_stats(&b->store, &b->st0);
		uv_timer_start(t, on_timer, (uint64_t)(b->o.duration * 1000),
			       0);
		return;
	}
	b->stopping = true;
}

static void report(struct bench *b)
{
	struct rusage ru1;
	struct hl_store_stats st1;
	double secs = (double)(now_ns() - b->t0_ns) / 1e9, cpu, rate;
	uint64_t batches, jobs;
	double wal;

	getrusage(RUSAGE_SELF, &ru1);
	hl_store_stats(&b->store, &st1);
	cpu = cpu_s(&ru1) - cpu_s(&b->ru0);
	rate = (double)b->done_in_window / secs;
	batches = st1.batches - b->st0.batches;
	jobs = st1.size_jobs_sum - b->st0.size_jobs_sum;
	printf("hl-store-bench %s: %d conversations x %d in flight, %d B "
	       "payloads, %.1f s on cpu %d\n",
	       b->o.raw ? "raw insert"
	       : b->o.seen ? "hl_event_append (envelopes, seen_seq)"
	       : b->o.envelopes ? "hl_event_append (envelopes)"
				: "hl_event_append", b->o.convs,
	       b->o.inflight, b->o.size, secs, b->o.cpu);
	printf("  %.0f appends/s, CPU %.1f%% of a core = %.2f us per append\n",
	       rate, 100 * cpu / secs,
	       b->done_in_window ? cpu * 1e6 / (double)b->done_in_window : 0);
	printf("  submit -> done: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
	       hist_quantile(&b->lat, 0.5) / 1e6,
	       hist_quantile(&b->lat, 0.99) / 1e6, b->lat.max / 1e6);
	wal = jobs ? (double)(st1.wal_bytes - b->st0.wal_bytes) / (double)jobs
		   : 0;
	printf("  %llu batches, %.1f jobs each, %.0f WAL bytes per job; %llu "
	       "checkpoints beside, %llu by the writer; %llu failed\n",
	       (unsigned long long)batches,
	       batches ? (double)jobs / (double)batches : 0, wal,
	       (unsigned long long)(st1.checkpoints - b->st0.checkpoints),
	       (unsigned long long)(st1.checkpoints_inline -
				    b->st0.checkpoints_inline),
	       (unsigned long long)b->failed);
	if (b->o.json)
		printf("RESULT {\"mode\":\"%s\",\"convs\":%d,\"inflight\":%d,"
		       "\"size\":%d,\"secs\":%.3f,\"appends_per_s\":%.1f,"
		       "\"cpu_pct\":%.2f,\"us_per_append\":%.3f,"
		       "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,"
		       "\"batches\":%llu,\"wal_bytes_per_job\":%.1f,"
		       "\"failed\":%llu}\n",
		       b->o.raw         ? "raw"
		       : b->o.seen      ? "envelopes-seen"
		       : b->o.envelopes ? "envelopes"
					: "append",
		       b->o.convs, b->o.inflight,
		       b->o.size, secs, rate, 100 * cpu / secs,
		       b->done_in_window
			       ? cpu * 1e6 / (double)b->done_in_window
			       : 0,
		       hist_quantile(&b->lat, 0.5) / 1e6,
		       hist_quantile(&b->lat, 0.99) / 1e6, b->lat.max / 1e6,
		       (unsigned long long)batches, wal,
		       (unsigned long long)b->failed);
}

/* One integer from sql on db, or -1. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* Every acknowledged append is in the database, once (the count of event
 * rows is the count of jobs done with status 0), and (but with --raw,
 * which leaves them alone) every conversation's row has its last event's
 * seq and chain head. Returns 0 when so. */
static int verify(const char *path, uint64_t ok, bool raw)
{
	sqlite3 *db = NULL;
	int64_t rows = -1, bad = -1;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK) {
		rows = query_int(db, "SELECT count(*) FROM event");
		bad = raw ? 0 : query_int(db,
			"SELECT count(*) FROM conversation c WHERE "
			"last_seq IS NOT (SELECT max(seq) FROM event WHERE "
			"conversation_id=c.id) OR chain_head IS NOT (SELECT "
			"chain FROM event WHERE conversation_id=c.id ORDER BY "
			"seq DESC LIMIT 1)");
	}
	sqlite3_close(db);
	printf("  %lld event rows stored for %llu appends acknowledged: %s\n",
	       (long long)rows, (unsigned long long)ok,
	       rows == (int64_t)ok ? "all there" : "MISMATCH");
	if (!raw)
		printf("  conversation rows not at their last event: %lld\n",
		       (long long)bad);
	return rows == (int64_t)ok && bad == 0 ? 0 : -1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hl-store-bench [options]\n"
		"The real store (writer thread, group commit, synchronous=FULL) "
		"on a fresh database,\nwithout the network: appends/s and CPU "
		"per append on one core.\n\n"
		"  --convs N [100]     conversations appended to at once\n"
		"  --inflight K [16]   append jobs in flight per conversation\n"
		"  --size B [300]      payload bytes\n"
		"  --duration S [10]   measured seconds (after --warmup S [1])\n"
		"  --cpu N [0]         pin the process here (-1: no pinning)\n"
		"  --dir D             where the database goes (a new "
		"directory\n"
		"                      below it, removed after; default $TMPDIR "
		"or /tmp)\n"
		"  --raw               only the event INSERT per job (what "
		"SQLite alone costs)\n"
		"  --envelopes         payloads are envelopes with the next "
		"counter, checked as\n"
		"                      under chat.envelopes = strict (size "
		"%d B)\n"
		"  --seen N            with --envelopes: each names as seen the "
		"event of its\n"
		"                      conversation's append N before, with its "
		"chain head, checked\n"
		"                      as in service (1: the last event)\n"
		"  --json              also print one RESULT {json} line\n",
		HL_E2E_ENV_MIN);
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longs[] = {
		{"convs", required_argument, NULL, 'c'},
		{"inflight", required_argument, NULL, 'k'},
		{"size", required_argument, NULL, 's'},
		{"duration", required_argument, NULL, 'd'},
		{"warmup", required_argument, NULL, 'w'},
		{"cpu", required_argument, NULL, 'p'},
		{"dir", required_argument, NULL, 'D'},
		{"raw", no_argument, NULL, 'r'},
		{"envelopes", no_argument, NULL, 'e'},
		{"seen", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	*o = (struct opts){.convs = 100, .inflight = 16, .size = 300,
			   .cpu = 0, .duration = 10, .warmup = 1};
	o->dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		switch (c) {
		case 'c': o->convs = atoi(optarg); break;
		case 'k': o->inflight = atoi(optarg); break;
		case 's': o->size = atoi(optarg); break;
		case 'd': o->duration = atof(optarg); break;
		case 'w': o->warmup = atof(optarg); break;
		case 'p': o->cpu = atoi(optarg); break;
		case 'D': o->dir = optarg; break;
		case 'r': o->raw = true; break;
		case 'e': o->envelopes = true; break;
		case 'n': o->seen = atoi(optarg); break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind != argc || o->convs < 1 || o->convs > 100000 ||
	    o->inflight < 1 || o->inflight > 1000 ||
	    (size_t)o->convs * (size_t)o->inflight > 1000000 ||
	    o->size < 1 || o->size > HL_EVENT_PAYLOAD_MAX ||
	    !(o->duration > 0 && o->duration <= 3600) ||
	    !(o->warmup >= 0 && o->warmup <= 600) ||
	    (o->raw && o->envelopes) || o->seen < 0 || o->seen > 1000 ||
	    (o->seen && !o->envelopes)) {
		usage(stderr);
		return -1;
	}
	if (o->envelopes)
		o->size = HL_E2E_ENV_MIN;
	return 0;
}

static void remove_db(const char *dir)
{
	static const char *const names[] = {"helpline.db", "helpline.db-wal",
					    "helpline.db-shm"};
	char p[4200];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		unlink(p);
	}
	rmdir(dir);
}

int main(int argc, char **argv)
{
	static struct bench b; /* large (histogram); one per process */
	struct create_job cj;
	char dir[4096], db[4200], err[512];
	int n;
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	size_t i;
	int rc = 1;

	if (parse(argc, argv, &b.o) != 0)
		return 2;
	if (sodium_init() < 0)
		return 1;
	if (b.o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(b.o.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			fprintf(stderr, "hl-store-bench: cpu %d: %s\n",
				b.o.cpu, strerror(errno));
	}
	n = snprintf(dir, sizeof(dir), "%s/hl-store-bench.XXXXXX", b.o.dir);
	if (n < 0 || (size_t)n >= sizeof(dir) || !mkdtemp(dir)) {
		fprintf(stderr, "hl-store-bench: %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	snprintf(db, sizeof(db), "%s/helpline.db", dir);
	b.conv_ids = calloc((size_t)b.o.convs, sizeof(*b.conv_ids));
	b.next_n = calloc((size_t)b.o.convs, sizeof(*b.next_n));
	b.raw_seq = calloc((size_t)b.o.convs, sizeof(*b.raw_seq));
	b.heads = calloc((size_t)b.o.convs * ((size_t)b.o.seen + 1),
			 sizeof(*b.heads));
	b.payload = malloc((size_t)b.o.size);
	b.njobs = (size_t)b.o.convs * (size_t)b.o.inflight;
	b.jobs = calloc(b.njobs, sizeof(*b.jobs));
	if (!b.conv_ids || !b.next_n || !b.raw_seq || !b.heads || !b.payload ||
	    !b.jobs)
		goto out;
	randombytes_buf(b.payload, (size_t)b.o.size);
	crypto_sign_keypair(pk, b.stamp_sk);
	uv_loop_init(&b.loop);
	if (hl_store_open(&b.store, &b.loop, db, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "hl-store-bench: %s\n", err);
		goto out_loop;
	}
	memset(&cj, 0, sizeof(cj));
	cj.job.exec = create_exec;
	cj.job.done = create_done;
	cj.b = &b;
	b.setup_left = 1;
	if (hl_store_submit(&b.store, &cj.job) != 0)
		goto out_store;
	while (b.setup_left)
		uv_run(&b.loop, UV_RUN_ONCE);
	if (b.setup_status != 0) {
		fprintf(stderr, "hl-store-bench: creating conversations: %d\n",
			b.setup_status);
		goto out_store;
	}
	for (i = 0; i < b.njobs; i++) {
		b.jobs[i].b = &b;
		b.jobs[i].conv = (int)(i % (size_t)b.o.convs);
		submit(&b.jobs[i]);
	}
	uv_timer_init(&b.loop, &b.timer);
	b.timer.data = &b;
	uv_timer_start(&b.timer, on_timer, (uint64_t)(b.o.warmup * 1000), 0);
	while (!b.stopping)
		uv_run(&b.loop, UV_RUN_ONCE);
	report(&b);
	uv_close((uv_handle_t *)&b.timer, NULL);
	hl_store_close(&b.store); /* delivers what is still in flight */
	uv_run(&b.loop, UV_RUN_DEFAULT);
	rc = (b.failed || b.done_in_window == 0 || verify(db, b.ok, b.o.raw) != 0);
	goto out_loop;
out_store:
	hl_store_close(&b.store);
	uv_run(&b.loop, UV_RUN_DEFAULT);
out_loop:
	uv_loop_close(&b.loop);
out:
	remove_db(dir);
	free(b.conv_ids);
	free(b.next_n);
	free(b.raw_seq);
	free(b.heads);
	free(b.payload);
	free(b.jobs);
	return rc;
}
