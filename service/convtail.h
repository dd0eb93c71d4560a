/* convtail.h: the store writer's copy of the per-message fields of the
 * conversations a batch's chat messages appended to ("tails": last seq,
 * chain head, handshake state, with the state and counsellor read with
 * them), so that a conversation's row is read once and written once per
 * batch instead of once per message.
 *
 * Why: in a busy relay each batch holds several messages of every active
 * conversation, and reading and updating the conversation row for each was
 * about a seventh of the writer's time (docs/performance.md). The copy is
 * only ever used inside one run of append-only jobs (hl_store_job's
 * append_only) of one batch, where nothing else reads or writes those rows:
 * store.c writes every changed tail back (hl_conv_tails_flush,
 * conversation.c) before any other job runs and before COMMIT, and forgets
 * them all after every batch, committed or not. Writer thread only.
 */
#ifndef HL_CONVTAIL_H
#define HL_CONVTAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HL_CONVTAIL_KEY 32

/* A conversation's hash chain and handshake state (schema 0005). */
struct hl_conv_chain {
	int64_t last_seq;
	bool has_head;
	unsigned char head[HL_CONVTAIL_KEY];
	int64_t hello, epoch;
	int64_t next[3]; /* by enum hl_e2e_dir */
};

struct hl_convtail {
	int64_t conv_id;        /* 0: a free slot */
	int64_t stored_seq;     /* last_seq of the row when read */
	int state;              /* enum hl_conv_state, as read */
	int64_t counsellor_id;  /* as read */
	struct hl_conv_chain ch;/* after this batch's appends so far */
	bool dirty;             /* ch differs from the row */
	uint64_t job;           /* the job that last changed it, and what
				 * it was before that job */
	struct hl_conv_chain prev;
	bool prev_dirty;
};

struct hl_convtails {
	struct hl_convtail *slots; /* open addressing by conversation id */
	size_t cap;                /* a power of two, or 0 */
	uint32_t *used;            /* indices of the taken slots, in the
				    * order they were taken */
	size_t n;
	bool active;               /* an append-only job is running: appends
				    * may use and change the tails */
	uint64_t job;              /* counts jobs, for hl_convtail_undo_job */
	uint64_t flushes, rows_written; /* counters, for tests */
};

/* The tail of conv_id, or NULL. */
struct hl_convtail *hl_convtail_get(struct hl_convtails *t, int64_t conv_id);

/* A new, zeroed tail for conv_id (not yet present; conv_id >= 1); NULL when
 * out of memory (the table is unchanged). */
struct hl_convtail *hl_convtail_add(struct hl_convtails *t, int64_t conv_id);

/* The i-th tail taken (i < t->n), in order. */
struct hl_convtail *hl_convtail_at(struct hl_convtails *t, size_t i);

/* Before changing tail within the current job: keeps what it was, so that
 * hl_convtail_undo_job can put it back. */
void hl_convtail_touch(struct hl_convtails *t, struct hl_convtail *tail);

/* Starts the next job (store.c, before each append-only job). */
void hl_convtail_begin_job(struct hl_convtails *t);

/* The current job failed and its savepoint took its rows back: every tail
 * it changed is put back as it was before (a tail it added is then as read
 * from the row). */
void hl_convtail_undo_job(struct hl_convtails *t);

/* Forgets every tail (keeps the memory). */
void hl_convtail_clear(struct hl_convtails *t);

/* Frees everything. Safe on a zeroed t. */
void hl_convtail_free(struct hl_convtails *t);

#endif
