/* inbox.c: the out-of-hours inbox (see inbox.h). Inputs are checked for
 * length and encoding before any libsodium call; every database step is a
 * store job; staff reads and replies are audited (ids only, no content).
 * Statements are prepared per job: these are rare operations, and keeping
 * them here keeps the inbox's SQL in one place. */
#include "inbox.h"
#include "audit.h"
#include "auth.h"
#include "common.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define CHALLENGE_MS 60000
#define LIST_MAX 100

enum ijob_kind { IJ_LOAD, IJ_POST, IJ_FETCH, IJ_LIST, IJ_OPEN, IJ_REPLY };

struct inbox_job {
	struct hl_store_job job;
	enum ijob_kind kind;
	struct hl_inbox *ib;
	struct hl_session *s;          /* referenced, or NULL */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t now, staff_id, message;
	unsigned char return_pk[32], reply_pk[32];
	unsigned char *blob;           /* sealed message or reply, malloc'd */
	size_t blob_len;
	json_t *out;                   /* IJ_FETCH / IJ_LIST: messages */
	int64_t after;                 /* IJ_FETCH / IJ_LIST: the page's start */
	size_t budget, used;           /* IJ_FETCH / IJ_LIST: the page's bytes */
	bool more;                     /* IJ_FETCH / IJ_LIST: rows are left */
	int64_t next;                  /* IJ_FETCH / IJ_LIST: after for the next */
	unsigned char key[32];         /* IJ_LOAD */
	bool have_key;
};

/* ---- helpers ---------------------------------------------------------------- */

static int b64_fixed(const char *in, unsigned char *out, size_t want)
{
	return hl_proto_b64_into(in, out, want, NULL, true) ? 0 : -1;
}

static json_t *b64_json(const void *p, size_t n)
{
	json_t *j = hl_proto_b64_json(p, n);

	return j ? j : json_null();
}

static int64_t count1(sqlite3 *db, const char *sql, const void *blob, size_t n)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (blob)
			sqlite3_bind_blob(st, 1, blob, (int)n, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

static int audit_staff(sqlite3_stmt *const *stmts, const struct inbox_job *j,
		       const char *action)
{
	char detail[48];
	struct hl_audit_entry e = {
		.at_ms = j->now, .actor = j->staff_id, .action = action,
		.detail = detail,
	};

	snprintf(detail, sizeof(detail), "{\"message\":%lld}",
		 (long long)j->message);
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
}

/* Appends {message, at, sealed, reply, replied_at[, reply_pk, read_at]}
 * from a row of id, created_at, sealed, reply, replied_at, reply_box_pk,
 * read_at. */
static void add_row(json_t *arr, sqlite3_stmt *st, bool staff)
{
	json_t *o = json_object();

	json_object_set_new(o, "message", json_integer(sqlite3_column_int64(st, 0)));
	json_object_set_new(o, "at", json_integer(sqlite3_column_int64(st, 1)));
	json_object_set_new(o, "sealed", b64_json(sqlite3_column_blob(st, 2),
						  (size_t)sqlite3_column_bytes(st, 2)));
	json_object_set_new(o, "reply", sqlite3_column_type(st, 3) == SQLITE_NULL
			    ? json_null()
			    : b64_json(sqlite3_column_blob(st, 3),
				       (size_t)sqlite3_column_bytes(st, 3)));
	json_object_set_new(o, "replied_at", sqlite3_column_type(st, 4) == SQLITE_NULL
			    ? json_null() : json_integer(sqlite3_column_int64(st, 4)));
	if (staff) {
		json_object_set_new(o, "reply_pk", b64_json(sqlite3_column_blob(st, 5),
							    (size_t)sqlite3_column_bytes(st, 5)));
		json_object_set_new(o, "read_at", sqlite3_column_type(st, 6) == SQLITE_NULL
				    ? json_null()
				    : json_integer(sqlite3_column_int64(st, 6)));
	}
	json_array_append_new(arr, o);
}

#define ROW_COLS "id, created_at, sealed, reply, replied_at, reply_box_pk, read_at"

/*
 * A page holds up to LIST_MAX rows (the list; a thread has at most 20
 * unanswered) and, after its first, up to j->budget bytes as sent (a
 * quarter of ws.outq_max): a page bigger than the reader's queue would
 * close it as too slow on every try. True when the row at st does not fit;
 * otherwise counts it and makes it the page's next.
 */
static bool page_full(struct inbox_job *j, sqlite3_stmt *st)
{
	size_t n = json_array_size(j->out);
	size_t cost = 256 + sodium_base64_ENCODED_LEN(
		(size_t)sqlite3_column_bytes(st, 2) +
		(size_t)sqlite3_column_bytes(st, 3) + 64,
		sodium_base64_VARIANT_URLSAFE_NO_PADDING);

	if ((j->kind == IJ_LIST && n == LIST_MAX) ||
	    !hl_proto_page_fits(&j->used, j->budget, cost))
		return true;
	j->next = j->kind == IJ_FETCH
		? sqlite3_column_int64(st, 0)
		: sqlite3_column_int64(st, 0) * 2 +
			  (sqlite3_column_type(st, 3) != SQLITE_NULL);
	return false;
}

/* ---- store jobs --------------------------------------------------------------- */

static int ijob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct inbox_job *j = hl_container_of(job, struct inbox_job, job);
	sqlite3_stmt *st = NULL;
	int rc = 0;

	switch (j->kind) {
	case IJ_LOAD:
		st = stmts[HL_STMT_ORG_KEY_GET];
		sqlite3_bind_text(st, 1, "inbox_box_pk", -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
			memcpy(j->key, sqlite3_column_blob(st, 0), 32);
			j->have_key = true;
		}
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return rc;
	case IJ_POST:
		if (count1(db, "SELECT count(*) FROM inbox_message WHERE "
			   "return_pk=?1 AND reply IS NULL", j->return_pk, 32) >=
		    HL_INBOX_PER_THREAD)
			return HL_EFULL;
		if (count1(db, "SELECT count(*) FROM inbox_message WHERE "
			   "read_at IS NULL", NULL, 0) >= HL_INBOX_UNREAD_MAX)
			return HL_ERANGE;
		if (sqlite3_prepare_v2(db, "INSERT INTO inbox_message(return_pk, "
				       "reply_box_pk, created_at, sealed) "
				       "VALUES(?1, ?2, ?3, ?4)", -1, &st, NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_blob(st, 1, j->return_pk, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, j->reply_pk, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->now);
		sqlite3_bind_blob(st, 4, j->blob, (int)j->blob_len, SQLITE_STATIC);
		rc = hl_store_step_done(st);
		if (rc == 0)
			j->message = sqlite3_last_insert_rowid(db);
		break;
	case IJ_FETCH:
	case IJ_LIST:
		/* The list is unanswered first: a page's next is its last
		 * row's (answered, id) as id * 2 + answered. */
		rc = sqlite3_prepare_v2(db, j->kind == IJ_FETCH
			? "SELECT " ROW_COLS " FROM inbox_message WHERE return_pk=?1 "
			  "AND id > ?2 ORDER BY id"
			: "SELECT " ROW_COLS " FROM inbox_message WHERE "
			  "(reply IS NOT NULL, id) > (?2, ?3) ORDER BY "
			  "reply IS NOT NULL, id LIMIT ?4",
			-1, &st, NULL);
		if (rc != SQLITE_OK)
			return HL_ESTORE;
		if (j->kind == IJ_FETCH) {
			sqlite3_bind_blob(st, 1, j->return_pk, 32, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, j->after);
		} else {
			sqlite3_bind_int(st, 2, (int)(j->after & 1));
			sqlite3_bind_int64(st, 3, j->after >> 1);
			sqlite3_bind_int(st, 4, LIST_MAX + 1); /* one more: more */
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && !page_full(j, st))
			add_row(j->out, st, j->kind == IJ_LIST);
		if (rc == SQLITE_ROW) {
			j->more = true;
			rc = SQLITE_DONE;
		}
		rc = rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
		break;
	case IJ_OPEN:
		if (sqlite3_prepare_v2(db, "UPDATE inbox_message SET read_at="
				       "coalesce(read_at, ?2) WHERE id=?1", -1, &st,
				       NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->message);
		sqlite3_bind_int64(st, 2, j->now);
		rc = hl_store_step_done(st);
		if (rc == 0 && sqlite3_changes(db) == 0)
			rc = HL_ENOTFOUND;
		if (rc == 0)
			rc = audit_staff(stmts, j, "inbox.open");
		break;
	case IJ_REPLY:
		if (sqlite3_prepare_v2(db, "UPDATE inbox_message SET reply=?2, "
				       "replied_at=?3, read_at=coalesce(read_at, ?3) "
				       "WHERE id=?1 AND reply IS NULL", -1, &st,
				       NULL) != SQLITE_OK)
			return HL_ESTORE;
		sqlite3_bind_int64(st, 1, j->message);
		sqlite3_bind_blob(st, 2, j->blob, (int)j->blob_len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, j->now);
		rc = hl_store_step_done(st);
		if (rc == 0 && sqlite3_changes(db) == 0) {
			sqlite3_finalize(st);
			st = NULL;
			rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM inbox_message "
						"WHERE id=?1", -1, &st, NULL);
			if (rc != SQLITE_OK)
				return HL_ESTORE;
			sqlite3_bind_int64(st, 1, j->message);
			rc = sqlite3_step(st) == SQLITE_ROW &&
				     sqlite3_column_int64(st, 0) > 0
			     ? HL_ECONSTRAINT : HL_ENOTFOUND;
		}
		if (rc == 0)
			rc = audit_staff(stmts, j, "inbox.reply");
		break;
	}
	sqlite3_finalize(st);
	return rc;
}

static void ijob_free(struct inbox_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	free(j->blob);
	json_decref(j->out);
	free(j);
}

static void reply_to(struct inbox_job *j, int status);

static void ijob_done(struct hl_store_job *job, int status)
{
	struct inbox_job *j = hl_container_of(job, struct inbox_job, job);

	if (j->kind == IJ_LOAD) {
		struct hl_inbox *ib = j->ib;

		if (status == 0 && j->have_key) {
			sodium_bin2base64(ib->pk_b64, sizeof(ib->pk_b64), j->key, 32,
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
			ib->have_pk = true;
		}
		ib->init_status = status == 0 ? 1 : (status < 0 ? status : HL_ESTORE);
		free(j);
		return;
	}
	if (j->s && j->s->wsi)
		reply_to(j, status);
	ijob_free(j);
}

static struct inbox_job *ijob_new(struct hl_session *s, enum ijob_kind kind,
				  const char *id)
{
	struct inbox_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->job.exec = ijob_exec;
	j->job.done = ijob_done;
	j->kind = kind;
	j->ib = &s->srv->inbox;
	j->s = s;
	j->now = hl_now_ms();
	j->staff_id = s->staff_id;
	hl_session_ref(s);
	snprintf(j->id, sizeof(j->id), "%s", id);
	return j;
}

static void ijob_submit(struct inbox_job *j)
{
	int rc = hl_store_submit(&j->ib->srv->store, &j->job);

	if (rc == 0)
		return;
	hl_session_error(j->s, j->id, rc == HL_EFULL ? HL_ERR_BUSY
						     : HL_ERR_SHUTTING_DOWN,
			 NULL, NULL);
	ijob_free(j);
}

static void reply_to(struct inbox_job *j, int status)
{
	static const char *const types[] = {
		[IJ_POST] = "inbox.posted", [IJ_FETCH] = "inbox.thread",
		[IJ_LIST] = "inbox.list", [IJ_OPEN] = "inbox.opened",
		[IJ_REPLY] = "inbox.replied",
	};
	struct hl_session *s = j->s;
	json_t *r;

	if (status == HL_EFULL) {
		hl_session_error(s, j->id, HL_ERR_RATE_LIMITED,
				 "this thread has too many unanswered messages; "
				 "please wait for a reply", NULL);
		return;
	}
	if (status == HL_ERANGE) {
		hl_session_error(s, j->id, HL_ERR_BUSY,
				 "the inbox is full right now; please try later",
				 NULL);
		return;
	}
	if (status == HL_ENOTFOUND) {
		hl_session_error(s, j->id, HL_ERR_NOT_FOUND, "no such message",
				 "message");
		return;
	}
	if (status == HL_ECONSTRAINT) {
		hl_session_error(s, j->id, HL_ERR_CONFLICT,
				 "this message has been answered already", "message");
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	/* A code with no thread answers an empty list, the same as a guess
	 * would get; it counts against the address's budget of failures
	 * (inbox.fetch is read on request, never polled, so a child who
	 * left a message never meets this). */
	if (j->kind == IJ_FETCH && json_array_size(j->out) == 0)
		hl_session_secret_failed(s);
	r = hl_proto_reply(types[j->kind], j->id);
	if (j->kind == IJ_FETCH || j->kind == IJ_LIST) {
		json_object_set(r, "messages", j->out);
		hl_proto_page(r, j->more, j->next);
	} else
		json_object_set_new(r, "message", json_integer(j->message));
	if (j->kind == IJ_POST || j->kind == IJ_REPLY)
		json_object_set_new(r, "at", json_integer(j->now));
	hl_session_send(s, r);
	json_decref(r);
	hl_info(types[j->kind], "conn=%s message=%lld", s->id_str,
		(long long)j->message);
}

/* ---- start-up -------------------------------------------------------------------- */

int hl_inbox_init(struct hl_inbox *ib, struct hl_server *srv)
{
	struct inbox_job *j = calloc(1, sizeof(*j));

	memset(ib, 0, sizeof(*ib));
	ib->srv = srv;
	if (!j)
		return HL_ENOMEM;
	j->job.exec = ijob_exec;
	j->job.done = ijob_done;
	j->kind = IJ_LOAD;
	j->ib = ib;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		free(j);
		return HL_ESTORE;
	}
	while (ib->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	hl_info("inbox.ready", "key=%s", ib->have_pk ? "set" : "none");
	return ib->init_status == 1 ? 0 : ib->init_status;
}

void hl_inbox_free(struct hl_inbox *ib)
{
	sodium_memzero(ib->ch, sizeof(ib->ch));
}

const char *hl_inbox_public_key(const struct hl_inbox *ib)
{
	return ib->have_pk ? ib->pk_b64 : NULL;
}

/* ---- young people ------------------------------------------------------------------- */

/* Reads and checks return_pk (a valid Ed25519 point). Answers when bad. */
static bool return_key(struct hl_session *s, const struct hl_msg *m,
		       unsigned char pk[32])
{
	if (b64_fixed(m->u.inbox.return_pk, pk, 32) != 0 ||
	    !crypto_core_ed25519_is_valid_point(pk)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "return_pk must be an Ed25519 public key "
				 "(32 bytes, base64url)", "return_pk");
		return false;
	}
	return true;
}

void hl_inbox_post(struct hl_session *s, const struct hl_msg *m)
{
	static const unsigned char zero[32];
	struct hl_inbox *ib = &s->srv->inbox;
	struct inbox_job *j;
	unsigned char pk[32], box[32], shared[32], scalar[32];

	if (!ib->have_pk) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "the inbox is not available", NULL);
		return;
	}
	if (!return_key(s, m, pk))
		return;
	/* A reply key of small order would make the reply readable by
	 * anyone: refuse it (scalarmult fails on such points). */
	randombytes_buf(scalar, sizeof(scalar));
	if (b64_fixed(m->u.inbox.reply_pk, box, 32) != 0 ||
	    sodium_memcmp(box, zero, 32) == 0 ||
	    crypto_scalarmult(shared, scalar, box) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "reply_pk must be an X25519 public key "
				 "(32 bytes, base64url)", "reply_pk");
		return;
	}
	sodium_memzero(shared, sizeof(shared));
	sodium_memzero(scalar, sizeof(scalar));
	j = ijob_new(s, IJ_POST, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	if (hl_proto_b64_decode(m->u.inbox.sealed, 65536, &j->blob,
				&j->blob_len) != 0 ||
	    j->blob_len <= crypto_box_SEALBYTES) {
		ijob_free(j);
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "sealed must be a sealed box (base64url, "
				 "49 to 65536 bytes)", "sealed");
		return;
	}
	memcpy(j->return_pk, pk, 32);
	memcpy(j->reply_pk, box, 32);
	ijob_submit(j);
}

void hl_inbox_challenge(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_inbox *ib = &s->srv->inbox;
	struct hl_inbox_challenge *c = NULL;
	int64_t now = hl_now_ms();
	unsigned char pk[32];
	json_t *r;

	if (!return_key(s, m, pk))
		return;
	/* One live challenge per connection: reuse its slot, else a free or
	 * expired one. */
	for (int i = 0; i < HL_INBOX_CHALLENGES && !c; i++)
		if (ib->ch[i].session_id == s->id && ib->ch[i].expires_at > now)
			c = &ib->ch[i];
	for (int i = 0; i < HL_INBOX_CHALLENGES && !c; i++)
		if (ib->ch[i].expires_at <= now)
			c = &ib->ch[i];
	if (!c) {
		hl_session_error(s, m->id, HL_ERR_BUSY,
				 "too many people are reading replies; try again "
				 "in a minute", NULL);
		return;
	}
	c->session_id = s->id;
	memcpy(c->return_pk, pk, 32);
	randombytes_buf(c->nonce, sizeof(c->nonce));
	c->expires_at = now + CHALLENGE_MS;
	r = hl_proto_reply("inbox.challenge", m->id);
	json_object_set_new(r, "nonce", b64_json(c->nonce, sizeof(c->nonce)));
	json_object_set_new(r, "expires_at", json_integer(c->expires_at));
	hl_session_send(s, r);
	json_decref(r);
}

bool hl_inbox_challenge_answer(struct hl_inbox *ib, struct hl_session *s,
			       const unsigned char pk[32], const char *label,
			       const unsigned char sig[64])
{
	unsigned char msg[64 + 64];
	struct hl_inbox_challenge *c = NULL;
	size_t ll = strlen(label);
	int64_t now = hl_now_ms();
	bool ok;

	if (ll > 64)
		return false;
	for (int i = 0; i < HL_INBOX_CHALLENGES && !c; i++)
		if (ib->ch[i].session_id == s->id && ib->ch[i].expires_at > now &&
		    sodium_memcmp(ib->ch[i].return_pk, pk, 32) == 0)
			c = &ib->ch[i];
	if (!c)
		return false;
	memcpy(msg, label, ll);
	memcpy(msg + ll, c->nonce, 32);
	memcpy(msg + ll + 32, pk, 32);
	ok = crypto_sign_verify_detached(sig, msg, ll + 64, pk) == 0;
	/* Single use, whatever the outcome. */
	sodium_memzero(c, sizeof(*c));
	return ok;
}

void hl_inbox_fetch(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_inbox *ib = &s->srv->inbox;
	unsigned char pk[32], sig[64];
	struct inbox_job *j;
	bool ok;

	if (!hl_session_may_try_secret(s, m->id))
		return;
	if (b64_fixed(m->u.inbox.signature, sig, 64) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "signature must be 64 bytes in base64url",
				 "signature");
		return;
	}
	if (!return_key(s, m, pk))
		return;
	ok = hl_inbox_challenge_answer(ib, s, pk, HL_INBOX_FETCH_LABEL, sig);
	if (!ok) {
		hl_warn("inbox.fetch_refused", "conn=%s", s->id_str);
		hl_session_secret_refused(s, m->id, HL_ERR_AUTH_FAILED,
					  "that did not work; ask for a new "
					  "challenge");
		return;
	}
	j = ijob_new(s, IJ_FETCH, m->id);
	if (!j || !(j->out = json_array())) {
		if (j)
			ijob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	memcpy(j->return_pk, pk, 32);
	j->after = m->u.inbox.after;
	j->budget = hl_session_page_budget(s);
	ijob_submit(j);
}

/* ---- staff ---------------------------------------------------------------------------- */

static bool may_answer(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);

	if (!st || !(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR))) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only counsellors and supervisors read the inbox",
				 "type");
		return false;
	}
	return true;
}

void hl_inbox_list(struct hl_session *s, const struct hl_msg *m)
{
	struct inbox_job *j;

	if (!may_answer(s, m))
		return;
	j = ijob_new(s, IJ_LIST, m->id);
	if (!j || !(j->out = json_array())) {
		if (j)
			ijob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->after = m->u.inbox.after;
	j->budget = hl_session_page_budget(s);
	ijob_submit(j);
}

void hl_inbox_open(struct hl_session *s, const struct hl_msg *m)
{
	struct inbox_job *j;

	if (!may_answer(s, m))
		return;
	j = ijob_new(s, IJ_OPEN, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->message = m->u.inbox.message;
	ijob_submit(j);
}

void hl_inbox_reply(struct hl_session *s, const struct hl_msg *m)
{
	struct inbox_job *j;

	if (!may_answer(s, m))
		return;
	j = ijob_new(s, IJ_REPLY, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	if (hl_proto_b64_decode(m->u.inbox.reply, 65536, &j->blob,
				&j->blob_len) != 0 ||
	    j->blob_len <= crypto_box_SEALBYTES) {
		ijob_free(j);
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "reply must be a sealed box (base64url, 49 to "
				 "65536 bytes)", "reply");
		return;
	}
	j->message = m->u.inbox.message;
	ijob_submit(j);
}
