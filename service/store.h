/* store.h: owns the SQLite database: one writer thread, group commit,
 * migrations and the prepared statements. */
#ifndef HL_STORE_H
#define HL_STORE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "convtail.h"
#include "dedupe.h"
#include "heads.h"
#include "migrations.h"

/*
 * Every prepared statement of the store. Statements are prepared once at
 * open (SQLITE_PREPARE_PERSISTENT) on the writer's connection and reused:
 * bound, stepped, reset. Add new statements here and to the SQL table in
 * store.c; nothing outside store.c formats SQL.
 */
enum hl_stmt {
	HL_STMT_META_GET,   /* SELECT value FROM meta WHERE key=?1 */
	HL_STMT_META_PUT,   /* INSERT OR REPLACE INTO meta(key,value) VALUES(?1,?2) */
	HL_STMT_AUDIT_LAST, /* SELECT seq, entry_hash FROM audit ORDER BY seq DESC LIMIT 1 */
	HL_STMT_AUDIT_INSERT, /* INSERT INTO audit(seq..entry_hash) VALUES(?1..?8) */
	HL_STMT_DATA_VERSION, /* PRAGMA data_version: changes when another process commits */
	HL_STMT_SESSION_ALL,  /* every staff_session row (auth.c loads them at start) */
	/* staff.c: accounts (columns of a staff row in hl_staff order) */
	HL_STMT_STAFF_INSERT,     /* INSERT a pending account RETURNING id */
	HL_STMT_STAFF_GET,        /* one staff row by id */
	HL_STMT_STAFF_GET_BY_USERNAME, /* one staff row by username */
	HL_STMT_STAFF_ALL,        /* every staff row, id order */
	HL_STMT_STAFF_FIND_ENROL, /* the row whose live enrolment hash matches */
	HL_STMT_STAFF_ENROL,      /* store credentials, clear the code */
	HL_STMT_STAFF_LOGIN_OK,   /* new TOTP step (only upwards), reset failures */
	HL_STMT_STAFF_LOGIN_FAIL, /* count a failure, lock at the limit */
	HL_STMT_STAFF_SET_STATE,  /* enable / disable */
	HL_STMT_STAFF_RESET,      /* clear credentials, new enrolment hash */
	HL_STMT_STAFF_TOTP_USED,  /* re-auth: TOTP step, only upwards */
	/* staff.c: sessions */
	HL_STMT_SESSION_INSERT,   /* a new session row */
	HL_STMT_SESSION_FIND,     /* one session by token hash */
	HL_STMT_SESSION_TOUCH,    /* last_seen / reauth_at */
	HL_STMT_SESSION_DELETE,   /* one session RETURNING staff_id */
	HL_STMT_SESSION_DELETE_STAFF, /* all sessions of a staff id */
	HL_STMT_SESSION_LIST,     /* sessions of one staff id (0 = all) */
	HL_STMT_SESSION_EXPIRE,   /* sessions past expiry or idle */
	/* helplinectl: the organisation's keys */
	HL_STMT_ORG_KEY_GET,      /* SELECT value FROM org_key WHERE name=?1 */
	HL_STMT_ORG_KEY_PUT,      /* INSERT (never replace) an org_key row */
	/* conversation.c: conversations (columns of a row in hl_conv order) */
	HL_STMT_CONV_INSERT,      /* a new 'queued' conversation (id: last rowid) */
	HL_STMT_CONV_GET,         /* one conversation row by id */
	HL_STMT_CONV_OPEN,        /* open rows (queued/offered/active), created order */
	HL_STMT_CONV_STATE,       /* state, counsellor_id, last_seq of one row */
	HL_STMT_CONV_SET_STATE,   /* new state, counsellor, state_at, ended_at */
	HL_STMT_CONV_WRAP,        /* ended -> wrapped with outcome and tags */
	HL_STMT_CONV_SET_SEQ,     /* last_seq, chain, E2E state where last_seq was ?8 */
	HL_STMT_CONV_TRANSFER,    /* active: counsellor ?2 -> ?3, transfers + 1 */
	HL_STMT_CONV_SUPERVISOR,  /* supervisor_id of an open conversation */
	HL_STMT_CONV_RECEIPT_CONTACT, /* contact_delivered/read, only upwards */
	HL_STMT_CONV_RECEIPT_STAFF,   /* staff_delivered/read, only upwards */
	HL_STMT_SHIFT_START,      /* a new open shift row */
	HL_STMT_SHIFT_END,        /* close the open shift of a staff id */
	HL_STMT_SHIFT_OPEN,       /* every open shift (start-up) */
	HL_STMT_ALERT_INSERT,     /* a supervisor alert */
	/* conversation.c: events */
	HL_STMT_EVENT_INSERT,     /* one event row */
	HL_STMT_EVENT_FIND_CLIENT,/* seq, at of (conversation, sender, client_id) */
	HL_STMT_EVENT_CLIENT_IDS, /* seq, sender, client_id of a conversation
				   * after a seq */
	HL_STMT_EVENT_CLIENT_AT,  /* at of (conversation, seq, sender, client_id) */
	HL_STMT_EVENT_SINCE,      /* events after a seq, optionally 'all' only */
	HL_STMT_EVENT_AT,         /* payload, chain of one event by seq */
	HL_STMT_REVOKED,          /* 1 when a certificate hash is revoked */
	HL_STMT_DEVICE_BY_CERT,   /* id, staff_id of a live device by cert hash */
	HL_STMT_CHECKPOINT_PUT,   /* a signed checkpoint of a chain head */
	HL_STMT_CONV_SET_RETURN,  /* return-code keys, once */
	HL_STMT_CONV_BY_RETURN,   /* id of the conversation of a return key */
	HL_STMT_CONTACT_DROP_CONV,/* every resume session of a conversation */
	/* conversation.c: young people's resume sessions */
	HL_STMT_CONTACT_PUT,      /* insert, or refresh the same conversation's */
	HL_STMT_CONTACT_FIND,     /* conversation of a live resume hash */
	HL_STMT_CONTACT_TOUCH,    /* last_seen / expires_at of a live session */
	HL_STMT_CONTACT_DELETE,   /* one session by resume hash */
	HL_STMT_CONTACT_EXPIRE,   /* sessions past expires_at */
	HL_STMT__COUNT
};

struct hl_store_job;
struct hl_store_fault;
struct hl_walbuf;

/*
 * Runs on the writer thread, inside the batch's transaction and inside a
 * SAVEPOINT of its own: returning a negative HL_E* status rolls back only
 * this job's changes; the rest of the batch still commits. Must not block on
 * anything but the database, and must not touch loop-owned state.
 *
 * After every job the store resets each statement of stmts that the job
 * stepped and clears its bindings, so a job may return early from the middle
 * of a step loop and no value it bound reaches the next job. (A statement
 * bound but never stepped is only cleared at the end of the batch: bind
 * every parameter of a statement you step, as usual.) A job must not begin,
 * commit or roll back transactions itself (the whole batch then fails with
 * HL_ESTORE) and must not leave a deferred foreign key unresolved (the store
 * rolls the job back and gives it HL_ECONSTRAINT, so the violation cannot
 * fail its batch-mates' COMMIT). hl_store_sqlite_status() turns an SQLite
 * code into the status to return. A positive return is taken as 0.
 */
typedef int (*hl_store_exec_fn)(struct hl_store_job *job, sqlite3 *db,
				sqlite3_stmt *const *stmts);

/*
 * Runs on the loop thread once the job's fate is durable: status is 0 when
 * its transaction committed (synchronous=FULL: it survives a crash or power
 * loss), or the job's own error, or HL_ESTORE when the batch's transaction
 * failed to begin or commit (nothing of the job was stored: see below), or
 * HL_ECLOSED when the store closed before running it. The job's memory is
 * the caller's again when done is called. done may submit more jobs, and may
 * close the store, but must not free it.
 *
 * One limit of "nothing was stored": when the COMMIT fails in its fsync, the
 * batch's frames may already be in the WAL file; SQLite ignores them while
 * running and overwrites them with the next commit, but a crash before that
 * can recover them. Such a job was never acknowledged, yet may be stored, so
 * a retry after HL_ESTORE must be idempotent (e.g. a client message id).
 *
 * After a batch fails (a full disk, an I/O error) the writer runs the next
 * batches one job per transaction for a while, so that during the fault a
 * job that cannot be stored fails alone and jobs that need no new space
 * (reads) still succeed; it recovers by itself once writes succeed again.
 * Test builds (HL_TEST_HOOKS) inject such faults: see HL_TEST_STORE_FAULT in
 * store.c and docs/security.md.
 */
typedef void (*hl_store_done_fn)(struct hl_store_job *job, int status);

/* A unit of write work. The caller allocates it (usually embedded in its own
 * struct, recovered with hl_container_of) and keeps it alive until done. */
struct hl_store_job {
	hl_store_exec_fn exec;      /* required */
	hl_store_done_fn done;      /* required */
	/* exec does nothing but one hl_event_append (a chat message): its
	 * conversation's row may then be written once for the batch's run of
	 * such jobs rather than once per job (convtail.h), and the store
	 * takes no savepoint for it (hl_store_job_savepoint). */
	bool append_only;
	int status;                 /* set by the store before done */
	struct hl_store_job *next;  /* store-internal queue link */
};

/* The upper bounds of the writer's histograms: a batch's transaction time
 * in seconds, and its size in jobs (hl_store_stats). */
#define HL_STORE_COMMIT_LE_N 12
#define HL_STORE_SIZE_LE_N 12
extern const double hl_store_commit_le[HL_STORE_COMMIT_LE_N];
extern const double hl_store_size_le[HL_STORE_SIZE_LE_N];

/* Counters, read on the loop thread with hl_store_stats(). */
struct hl_store_stats {
	uint64_t jobs_submitted;    /* accepted by hl_store_submit */
	uint64_t jobs_committed;    /* done with status 0 */
	uint64_t jobs_failed;       /* done with status != 0 */
	uint64_t batches;           /* transactions committed or attempted */
	uint64_t commit_failures;   /* batches whose BEGIN or COMMIT failed
				     * (all their jobs got HL_ESTORE) */
	uint32_t max_batch;         /* largest batch so far */
	uint32_t queued;            /* waiting for the writer now */
	/* Histograms of every batch, measured by the writer: bucket[i]
	 * counts batches <= le[i] (and > le[i-1]), bucket[N] the rest;
	 * their count is batches. */
	uint64_t commit_bucket[HL_STORE_COMMIT_LE_N + 1];
	double commit_seconds_sum;  /* BEGIN .. COMMIT (with fsync), seconds */
	uint64_t size_bucket[HL_STORE_SIZE_LE_N + 1];
	uint64_t size_jobs_sum;     /* jobs in all batches */
	uint64_t checkpoints;       /* WAL checkpoints run beside the writer */
	uint64_t checkpoints_inline; /* ... run by the writer itself: the WAL
				     * passed HL_STORE_WAL_HARD frames */
	uint64_t checkpoint_failures;
	uint64_t wal_bytes;         /* bytes the writer wrote to the WAL
				     * (its pages, frame headers and WAL
				     * headers), after each batch */
	uint64_t wal_writes;        /* the writes that carried them */
};

/* WAL frames (pages) after which the checkpointer is woken (SQLite's own
 * autocheckpoint default), and after which the writer checkpoints itself
 * because the checkpointer has not kept up. */
#define HL_STORE_WAL_SOFT 1000
#define HL_STORE_WAL_HARD 16000

/* Options for hl_store_open. Zero values mean the defaults given. */
struct hl_store_opts {
	int batch_max;   /* most jobs per transaction; default 4096 */
	int queue_max;   /* most jobs waiting; default 100000 */
	/* Migrations to apply; NULL means the embedded hl_migrations. */
	const struct hl_migration *migrations;
	size_t migrations_count;
	/* How long a statement waits for another connection's lock before
	 * failing with SQLITE_BUSY, in ms; default 5000. (Tests shorten it.) */
	int busy_timeout_ms;
};

/* The store's own transaction-control statements (store.c only). */
enum { HL_STORE_TXN__COUNT = 6 };

/* The store. Caller-allocated; all fields are private to store.c. */
struct hl_store {
	sqlite3 *db;                    /* writer connection: the loop thread
					 * during open, then only the writer
					 * thread until close joins it */
	sqlite3_stmt *stmts[HL_STMT__COUNT]; /* enum hl_stmt, prepared at open */
	sqlite3_stmt *txn[HL_STORE_TXN__COUNT]; /* BEGIN, COMMIT, ROLLBACK,
					 * SAVEPOINT, RELEASE, ROLLBACK TO */
	uint32_t stmt_steps[HL_STMT__COUNT]; /* writer: each statement's VM
					 * step count when last reset, to find
					 * the ones a job used */
	uv_loop_t *loop;                /* the loop completions run on */
	uv_async_t async;               /* wakes the loop for completions */
	pthread_t thread;               /* the writer thread */
	pthread_mutex_t mu;             /* guards the queues, stopping, stats */
	pthread_cond_t cv;              /* signals the writer: work or stop */
	struct hl_store_job *in_head, *in_tail;   /* submitted, guarded by mu */
	struct hl_store_job *out_head, *out_tail; /* finished, guarded by mu */
	struct hl_store_job *dl_head;   /* loop thread: finished jobs taken
					 * off out_head, being delivered */
	uint32_t in_count;              /* jobs in the in queue, guarded by mu */
	int batch_max, queue_max;       /* from hl_store_opts, defaults applied */
	bool stopping;                  /* guarded by mu */
	bool sync_init;                 /* mu and cv are initialised */
	bool thread_started;            /* loop thread: writer not yet joined */
	bool async_open;                /* loop thread: async not yet uv_closed */
	struct hl_store_stats stats;    /* guarded by mu */
	int schema_version;             /* after migration */
	uint32_t solo;                  /* writer: batches still to run one
					 * job each after a failed one */
	struct hl_store_fault *fault;   /* test builds: the fault-injecting
					 * VFS (HL_TEST_STORE_FAULT), or NULL */
	struct hl_walbuf *walbuf;       /* the writer's VFS: a commit's WAL
					 * frames in a few writes (walbuf.h) */
	/* The checkpointer: its own connection and thread copy the WAL into
	 * the database beside the writer, so no COMMIT (and no ack) waits
	 * for a checkpoint; the writer signals it after a batch's jobs are
	 * handed to the loop. */
	sqlite3 *ckpt_db;
	pthread_t ckpt_thread;
	pthread_cond_t ckpt_cv;         /* guarded by mu */
	bool ckpt_wanted;               /* guarded by mu */
	bool ckpt_stopping;             /* guarded by mu */
	bool ckpt_started;              /* loop thread */
	int wal_frames;                 /* writer: WAL size after the last
					 * commit (sqlite3_wal_hook) */
	int wal_kicked;                 /* writer: wal_frames when the
					 * checkpointer was last woken */
	struct hl_dedupe dedupe;        /* writer: the client ids stored in
					 * each conversation (dedupe.h) */
	struct hl_heads heads;          /* writer: recent chain heads
					 * (heads.h) */
	struct hl_convtails tails;      /* writer: conversation rows the
					 * current run of append-only jobs
					 * changed (convtail.h) */
	bool job_savepoint;             /* writer: the running job has its
					 * savepoint open */
};

/*
 * Opens (creating if needed, mode 0600) the database at path, sets WAL mode,
 * synchronous=FULL, foreign_keys=ON and a busy timeout, applies pending
 * migrations in one transaction (recording PRAGMA user_version), prepares
 * every statement and starts the writer thread. Runs on the loop thread
 * before the loop serves clients (this is the one place that waits on disk).
 *
 * Returns 0; HL_ESCHEMA when the database's user_version is newer than the
 * newest migration (the file is then left byte-for-byte untouched);
 * HL_EINVAL for bad options or a migration list whose versions are not
 * strictly increasing; HL_ESTORE / HL_EIO on other failures. err (errlen
 * bytes) receives a human message naming the path and the cause. On failure
 * nothing needs closing (hl_store_close is a no-op).
 *
 * path must name a file (WAL needs one: not ":memory:"). A new file is
 * created with mode 0600, and SQLite gives the -wal and -shm files the same
 * mode; an existing file with group or other access is used as is, with a
 * warning logged.
 */
int hl_store_open(struct hl_store *st, uv_loop_t *loop, const char *path,
		  const struct hl_store_opts *opts, char *err, size_t errlen);

/*
 * Queues job for the writer thread. Loop thread only. Returns 0 (done will be
 * called later, on the loop thread, never from inside this call), HL_EFULL
 * when queue_max jobs are waiting, or HL_ECLOSED while closing; on error done
 * is never called.
 */
int hl_store_submit(struct hl_store *st, struct hl_store_job *job);

/*
 * Stops the store: the writer commits everything already submitted, the
 * thread is joined, every pending done callback is called (on this, the loop
 * thread, before this returns), statements are finalized, the WAL is
 * checkpointed and the database closed. The uv_async handle is closed with
 * uv_close, so the caller must let the loop run once more before
 * uv_loop_close. Safe to call on a store whose open failed, on a zeroed one,
 * twice, or from a done callback. Blocks on disk (shutdown only); a submit
 * from a done callback run here returns HL_ECLOSED.
 */
void hl_store_close(struct hl_store *st);

/*
 * Copies column col of the current row of s as text into dst (cap bytes,
 * NUL-terminated; NULL gives ""). Returns 0, or HL_ESTORE when the value
 * does not fit or holds a NUL byte (a row not written by this program).
 */
int hl_store_column_text(sqlite3_stmt *s, int col, char *dst, size_t cap);

/* The writer's memory of stored client ids (dedupe.h) of the store whose
 * statements stmts are: for conversation.c, on the writer thread. */
struct hl_dedupe *hl_store_dedupe(sqlite3_stmt *const *stmts);

/* The writer's recent chain heads (heads.h), likewise. */
struct hl_heads *hl_store_heads(sqlite3_stmt *const *stmts);

/* The writer's conversation tails (convtail.h) of the store whose
 * statements stmts are: for conversation.c, on the writer thread. */
struct hl_convtails *hl_store_tails(sqlite3_stmt *const *stmts);

/*
 * For an append_only job, which the store runs without a savepoint (opening
 * and releasing one was ~0.7 us of every chat message, measured with
 * hl-store-bench): opens the job's savepoint now, so that its failure takes
 * back everything it wrote from here on. A job must call this before its
 * first write when it may write more than one statement or fail after a
 * write; one that writes a single statement and fails only when that
 * statement does (a statement is atomic) needs none. Should an append_only
 * job fail after writing without one, its whole batch fails (nothing of it
 * is acknowledged). Other jobs always have one: then this does nothing.
 * Returns 0 or HL_ESTORE. Writer thread (inside exec).
 */
int hl_store_job_savepoint(sqlite3_stmt *const *stmts);

/* Copies the counters. Loop thread. */
void hl_store_stats(struct hl_store *st, struct hl_store_stats *out);

/*
 * For /healthz: returns 0 when the writer thread is running and the store is
 * not closing, HL_ECLOSED otherwise. Touches no disk. Loop thread.
 */
int hl_store_ping(struct hl_store *st);

/*
 * Maps an SQLite result code (as returned by sqlite3_step and friends) to a
 * status for an exec function to return: 0 for SQLITE_OK, SQLITE_ROW and
 * SQLITE_DONE; HL_ECONSTRAINT for any SQLITE_CONSTRAINT; HL_ENOMEM for
 * SQLITE_NOMEM; HL_ESTORE for everything else. Any thread.
 */
int hl_store_sqlite_status(int rc);

/* Steps st once (an INSERT, UPDATE or DELETE): 0 when it is done, else
 * hl_store_sqlite_status of the result. Any thread. */
int hl_store_step_done(sqlite3_stmt *st);

/*
 * Applies migrations with version > PRAGMA user_version to db, all inside one
 * transaction, then sets user_version to the newest. Exposed for tests and
 * helplinectl. Returns 0, HL_ESCHEMA (database newer), HL_EINVAL (versions
 * not strictly increasing) or HL_ESTORE, with a message in err.
 *
 * Migrations run as SQLite advises for schema changes: with foreign key
 * enforcement off (restored afterwards), so one may rebuild a table that
 * others refer to, and PRAGMA foreign_key_check must find nothing before the
 * COMMIT. A migration must not contain BEGIN, COMMIT, ROLLBACK or PRAGMAs
 * that cannot run inside a transaction (journal_mode, foreign_keys).
 * Double-quoted string literals are rejected on store connections: write
 * 'text'. Loop thread or a tool's own thread, never while a store's writer
 * uses db.
 */
int hl_store_migrate(sqlite3 *db, const struct hl_migration *m, size_t n,
		     char *err, size_t errlen);

#endif
