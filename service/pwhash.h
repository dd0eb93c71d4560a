/* pwhash.h: Argon2id in worker processes.
 *
 * Each Argon2id hash needs 64 MiB, which libsodium maps with MAP_POPULATE
 * and unmaps again, every time. Inside the daemon that holds the process's
 * memory-map lock while 64 MiB are zeroed, and every other thread that
 * maps, unmaps or protects memory waits behind it: in a login flood the
 * store writer's malloc (mprotect) waited 15-21 ms, and with it every
 * acknowledgement (docs/performance.md). A worker process has its own
 * memory map, so the daemon's threads never wait for a hash.
 *
 * The daemon starts `workers` copies of its own executable with
 * --pwhash-worker (at reduced priority, nice 19); each takes one request
 * at a time over a pipe (fixed-size binary records, written whole) and
 * answers on another. A worker that dies fails its request with HL_EIO
 * and is started again. Loop thread only, apart from hl_pwhash_worker_main,
 * which is the whole worker process.
 */
#ifndef HL_PWHASH_H
#define HL_PWHASH_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HL_PWHASH_PASSWORD_MAX 1024 /* bytes, as auth.login allows */
#define HL_PWHASH_WORKERS_MAX 64

enum hl_pwhash_kind {
	HL_PWHASH_VERIFY = 1,        /* check password against hash */
	HL_PWHASH_VERIFY_REHASH = 2, /* the same, and on success a new hash
				      * when hash has older parameters */
	HL_PWHASH_MAKE = 3,          /* a new hash of password */
};

struct hl_pwhash_req;
/* status 0 with ok (verified / made) and new_hash ("" when none), or
 * HL_EIO (the worker died or could not be reached) or HL_ECLOSED (the
 * pool is stopping). Called on the loop thread, never from inside
 * hl_pwhash_submit. */
typedef void (*hl_pwhash_cb)(struct hl_pwhash_req *r, int status, bool ok,
			     const char *new_hash);

/* A request: owned by the caller, which must keep it until done runs. */
struct hl_pwhash_req {
	hl_pwhash_cb done;
	void *data;                /* the caller's */
};

struct hl_pwhash_worker {
	struct hl_pwhash *pool;
	uv_process_t proc;
	uv_pipe_t to;              /* the worker's stdin */
	uv_pipe_t from;            /* the worker's stdout */
	bool running;              /* proc spawned and not yet exited */
	bool dead;                 /* its last start failed: started again
				    * only when a request finds none running */
	int open_handles;          /* of proc, to, from: not yet closed */
	struct hl_pwhash_req *busy; /* the request it is working on */
	unsigned char answer[2 + crypto_pwhash_STRBYTES];
	size_t got;                /* bytes of answer read so far */
};

struct hl_pwhash {
	uv_loop_t *loop;
	char exe[4096];            /* this executable (/proc/self/exe) */
	int count;
	bool stopping;
	struct hl_pwhash_worker w[HL_PWHASH_WORKERS_MAX];
};

/*
 * Starts workers (1..HL_PWHASH_WORKERS_MAX) worker processes. Returns 0,
 * or HL_EIO with the reason in err.
 */
int hl_pwhash_init(struct hl_pwhash *p, uv_loop_t *loop, int workers,
		   char *err, size_t errlen);

/*
 * Sends r to an idle worker: the password and hash are copied out (and the
 * copy wiped once written); the caller may wipe its own at once. Returns 0
 * (done will run later), HL_EFULL when every worker is busy, HL_ECLOSED
 * when stopping, HL_EIO when no worker is running or the write failed.
 */
int hl_pwhash_submit(struct hl_pwhash *p, struct hl_pwhash_req *r,
		     enum hl_pwhash_kind kind, const char *hash,
		     const char *password);

/* Fails requests in progress with HL_ECLOSED and ends the workers; their
 * handles close as the loop runs on. */
void hl_pwhash_stop(struct hl_pwhash *p);

/* The worker process: serves requests on stdin until it closes. Returns
 * the process's exit status. */
int hl_pwhash_worker_main(void);

#endif
