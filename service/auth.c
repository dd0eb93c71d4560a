/* auth.c: staff login, enrolment, sessions, presence and account
 * administration in helplined. Argon2id runs on the uv threadpool with a
 * bounded number in flight; every database change is a store job; the
 * in-memory tables are updated only when that job has committed. */
#include "auth.h"
#include "routing.h"
#include "common.h"
#include "contact.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Minimum length of a staff password, in bytes. */
#define PASSWORD_MIN 12
/* How often last_seen is written back (seconds). */
#define PERSIST_SEEN_EVERY 60
/* The message every failed login gets, whatever the reason: replies must
 * not tell an attacker which accounts exist or which factor was wrong. */
#define LOGIN_FAILED_TEXT                                                      \
	"username, password or code is wrong, or the account is locked; "     \
	"after several failures wait 15 minutes"

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static struct hl_auth *auth_of(struct hl_session *s)
{
	return &s->srv->auth;
}

/* ---- in-memory tables --------------------------------------------------- */

static struct hl_auth_staff *find_staff(struct hl_auth *a, int64_t id)
{
	for (size_t i = 0; i < a->nstaff; i++)
		if (a->staff[i].row.id == id)
			return &a->staff[i];
	return NULL;
}

static struct hl_auth_staff *find_username(struct hl_auth *a, const char *name)
{
	for (size_t i = 0; i < a->nstaff; i++)
		if (strcmp(a->staff[i].row.username, name) == 0)
			return &a->staff[i];
	return NULL;
}

/* Inserts or replaces the cached row (presence and counts are kept). */
static int put_staff(struct hl_auth *a, const struct hl_staff *row)
{
	struct hl_auth_staff *e = find_staff(a, row->id);

	if (!e) {
		if (a->nstaff == a->capstaff) {
			size_t cap = a->capstaff ? a->capstaff * 2 : 16;
			void *p = realloc(a->staff, cap * sizeof(*a->staff));
			if (!p)
				return HL_ENOMEM;
			a->staff = p;
			a->capstaff = cap;
		}
		e = &a->staff[a->nstaff++];
		memset(e, 0, sizeof(*e));
	}
	e->row = *row;
	return HL_OK;
}

static struct hl_auth_session *
find_session(struct hl_auth *a, const unsigned char hash[HL_TOKEN_HASH_BYTES])
{
	for (size_t i = 0; i < a->nsess; i++)
		if (sodium_memcmp(a->sess[i].token_hash, hash,
				  HL_TOKEN_HASH_BYTES) == 0)
			return &a->sess[i];
	return NULL;
}

static int add_session(struct hl_auth *a, const struct hl_auth_session *n)
{
	if (a->nsess == a->capsess) {
		size_t cap = a->capsess ? a->capsess * 2 : 16;
		void *p = realloc(a->sess, cap * sizeof(*a->sess));
		if (!p)
			return HL_ENOMEM;
		a->sess = p;
		a->capsess = cap;
	}
	a->sess[a->nsess++] = *n;
	return HL_OK;
}

static void remove_session(struct hl_auth *a, struct hl_auth_session *e)
{
	size_t i = (size_t)(e - a->sess);

	a->sess[i] = a->sess[--a->nsess];
}

static void remove_sessions_of(struct hl_auth *a, int64_t staff_id)
{
	for (size_t i = 0; i < a->nsess;) {
		if (a->sess[i].staff_id == staff_id)
			a->sess[i] = a->sess[--a->nsess];
		else
			i++;
	}
}

/* Closes every authenticated socket matching staff_id (and token, when
 * given) with 1008 and reason. */
static void close_sockets(struct hl_auth *a, int64_t staff_id,
			  const unsigned char *token_hash,
			  const struct hl_session *except, const char *reason)
{
	for (struct hl_session *s = a->srv->sessions; s; s = s->next) {
		if (s == except || s->staff_id == 0 || s->staff_id != staff_id)
			continue;
		if (token_hash && sodium_memcmp(s->token_hash, token_hash,
						HL_TOKEN_HASH_BYTES) != 0)
			continue;
		hl_session_close(s, 1008, reason);
	}
}

const char *hl_presence_name(enum hl_presence p)
{
	static const char *const n[] = {"offline", "available", "busy", "away"};
	return (unsigned)p < 4 ? n[p] : "offline";
}

struct json_t *hl_auth_roles_json(unsigned roles)
{
	json_t *arr = json_array();

	if (roles & HL_STAFF_COUNSELLOR)
		json_array_append_new(arr, json_string("counsellor"));
	if (roles & HL_STAFF_SUPERVISOR)
		json_array_append_new(arr, json_string("supervisor"));
	if (roles & HL_STAFF_ADMIN)
		json_array_append_new(arr, json_string("admin"));
	return arr;
}

static const char *state_name(enum hl_staff_state st)
{
	return st == HL_STAFF_ACTIVE ? "active"
	       : st == HL_STAFF_DISABLED ? "disabled"
					 : "pending";
}

/* The public view of an account: never credentials. */
static json_t *staff_json(const struct hl_auth_staff *e)
{
	return json_pack("{s:I, s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:s, s:i, s:b}",
			 "id", (json_int_t)e->row.id, "username",
			 e->row.username, "display_name", e->row.display_name,
			 "roles", hl_auth_roles_json(e->row.roles), "languages",
			 e->row.languages, "skills", e->row.skills, "capacity",
			 e->row.capacity, "state", state_name(e->row.state),
			 "presence", hl_presence_name(e->presence), "connections",
			 e->connections, "on_shift", e->on_shift);
}

/* ---- store jobs ---------------------------------------------------------- */

enum job_kind {
	JOB_LOAD,          /* start-up / reload: accounts and sessions */
	JOB_LOGIN_OK,
	JOB_LOGIN_FAILED,
	JOB_FIND_ENROL,
	JOB_ENROL,
	JOB_LOGOUT,
	JOB_TOUCH,
	JOB_EXPIRE,
	JOB_TOTP_STEP,     /* reauth: record the step */
	JOB_CREATE,
	JOB_SET_STATE,
	JOB_RESET,
	JOB_REVOKE,
};

/* A store job of this module. Results are filled on the writer thread and
 * read on the loop in done. */
struct auth_job {
	struct hl_store_job job;
	enum job_kind kind;
	struct hl_auth *a;
	struct hl_session *s;          /* referenced, or NULL */
	char id[HL_PROTO_ID_MAX + 1];  /* request id to answer */
	int64_t staff_id, actor, now;
	uint64_t step;
	int64_t expires_at;
	unsigned char token[HL_TOKEN_BYTES];
	unsigned char token_hash[HL_TOKEN_HASH_BYTES];
	char pw_hash[crypto_pwhash_STRBYTES]; /* new hash (login rehash, enrol) */
	unsigned char secret[HL_TOTP_SECRET_BYTES];
	char code[96];                 /* enrolment code (as typed, or issued) */
	char reason[24];
	struct hl_staff_new create;
	char c_username[HL_STAFF_USERNAME_MAX + 1];
	char c_name[HL_STAFF_NAME_MAX + 1];
	char c_langs[HL_STAFF_LIST_MAX + 1], c_skills[HL_STAFF_LIST_MAX + 1];
	enum hl_staff_state state;
	bool reset_pw, reset_totp;
	int count;
	int64_t data_version;          /* JOB_LOAD: PRAGMA data_version now */
	int64_t seen_version;          /* JOB_LOAD: a->data_version at submit */
	bool force;                    /* JOB_LOAD: load even if unchanged */
	bool changed;                  /* JOB_LOAD: data was loaded */
	uint64_t local_changes;        /* JOB_LOAD: a->local_changes at submit */
	struct hl_staff row;           /* the account after the change */
	bool have_row;
	struct hl_staff *rows;         /* JOB_LOAD */
	size_t nrows, caprows;
	struct hl_auth_session *sess;  /* JOB_LOAD */
	size_t nsess, capsess;
	void (*then)(struct auth_job *j, int status); /* loop-side completion */
};

static void job_free(struct auth_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	free(j->rows);
	free(j->sess);
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static void collect_row(const struct hl_staff *row, void *arg)
{
	struct auth_job *j = arg;

	if (j->nrows == j->caprows) {
		size_t cap = j->caprows ? j->caprows * 2 : 32;
		void *p = realloc(j->rows, cap * sizeof(*j->rows));
		if (!p)
			return; /* checked by the caller through nrows */
		j->rows = p;
		j->caprows = cap;
	}
	j->rows[j->nrows++] = *row;
}

static int load_sessions(struct auth_job *j, sqlite3_stmt *const *stmts)
{
	sqlite3_stmt *st = stmts[HL_STMT_SESSION_ALL];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct hl_auth_session e;

		if (sqlite3_column_bytes(st, 0) != HL_TOKEN_HASH_BYTES)
			continue;
		memset(&e, 0, sizeof(e));
		memcpy(e.token_hash, sqlite3_column_blob(st, 0),
		       HL_TOKEN_HASH_BYTES);
		e.staff_id = sqlite3_column_int64(st, 1);
		e.created_at = sqlite3_column_int64(st, 2);
		e.last_seen = e.persisted_seen = sqlite3_column_int64(st, 3);
		e.expires_at = sqlite3_column_int64(st, 4);
		e.reauth_at = sqlite3_column_int64(st, 5);
		if (j->nsess == j->capsess) {
			size_t cap = j->capsess ? j->capsess * 2 : 32;
			void *p = realloc(j->sess, cap * sizeof(*j->sess));
			if (!p) {
				sqlite3_reset(st);
				return HL_ENOMEM;
			}
			j->sess = p;
			j->capsess = cap;
		}
		j->sess[j->nsess++] = e;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? HL_OK : HL_ESTORE;
}

/* Reads the account back after a change so the cache matches the row. */
static int reread(struct auth_job *j, sqlite3_stmt *const *stmts, int64_t id)
{
	int rc = hl_staff_get(stmts, id, &j->row);

	j->have_row = rc == 0;
	return rc == HL_ENOTFOUND ? HL_OK : rc;
}

static int job_exec(struct hl_store_job *job, sqlite3 *db,
		    sqlite3_stmt *const *stmts)
{
	struct auth_job *j = hl_container_of(job, struct auth_job, job);
	const struct hl_keys *keys = &j->a->srv->keys;
	sqlite3_stmt *st;
	int rc;

	(void)db;
	switch (j->kind) {
	case JOB_LOAD:
		st = stmts[HL_STMT_DATA_VERSION];
		if (sqlite3_step(st) == SQLITE_ROW)
			j->data_version = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (!j->force && j->data_version == j->seen_version)
			return HL_OK; /* nobody else committed since the last load */
		j->changed = true;
		rc = hl_staff_each(stmts, collect_row, j);
		if (rc != 0)
			return rc;
		return load_sessions(j, stmts);
	case JOB_LOGIN_OK:
		rc = hl_staff_login_ok(stmts, j->staff_id, j->step,
				       j->pw_hash[0] ? j->pw_hash : NULL,
				       j->token_hash, j->now, j->expires_at);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_LOGIN_FAILED:
		rc = hl_staff_login_failed(stmts, j->staff_id, j->reason,
					   j->a->srv->cfg.auth_max_failures,
					   j->a->srv->cfg.auth_lockout, j->now);
		if (rc != 0 || !j->staff_id)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_FIND_ENROL:
		rc = hl_staff_find_enrolment(stmts, keys, j->code, j->now,
					     &j->row);
		j->have_row = rc == 0;
		return rc == HL_ENOTFOUND ? HL_OK : rc;
	case JOB_ENROL:
		rc = hl_staff_enrol(stmts, keys, j->staff_id, j->code,
				    j->pw_hash, j->secret, j->step, j->now);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_LOGOUT:
		return hl_session_delete(stmts, j->token_hash, j->now);
	case JOB_TOUCH:
		rc = hl_session_touch(stmts, j->token_hash, j->now, 0);
		return rc == HL_ENOTFOUND ? HL_OK : rc;
	case JOB_EXPIRE:
		return hl_session_expire(stmts, j->now,
					 j->a->srv->cfg.auth_session_idle);
	case JOB_TOTP_STEP:
		rc = hl_staff_totp_used(stmts, j->staff_id, j->step, j->now);
		if (rc != 0)
			return rc;
		rc = hl_session_touch(stmts, j->token_hash, j->now, j->now);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_CREATE:
		rc = hl_staff_create(stmts, keys, &j->create, j->actor, j->now,
				     &j->staff_id, j->code);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_SET_STATE:
		rc = hl_staff_set_state(stmts, j->staff_id, j->state, j->actor,
					j->now);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_RESET:
		rc = hl_staff_reset(stmts, keys, j->staff_id, j->reset_pw,
				    j->reset_totp, j->actor, j->now, j->code);
		if (rc != 0)
			return rc;
		return reread(j, stmts, j->staff_id);
	case JOB_REVOKE:
		return hl_session_revoke_all(stmts, j->staff_id, j->actor,
					     j->now, &j->count);
	}
	return HL_EINVAL;
}

static void job_done(struct hl_store_job *job, int status)
{
	struct auth_job *j = hl_container_of(job, struct auth_job, job);

	if (j->have_row && status == 0)
		put_staff(j->a, &j->row);
	if (j->then)
		j->then(j, status);
	job_free(j);
}

static struct auth_job *job_new(struct hl_auth *a, enum job_kind kind,
				struct hl_session *s, const char *id)
{
	struct auth_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->job.exec = job_exec;
	j->job.done = job_done;
	j->kind = kind;
	j->a = a;
	j->now = now_s();
	if (s) {
		j->s = s;
		hl_session_ref(s);
	}
	if (id)
		snprintf(j->id, sizeof(j->id), "%s", id);
	return j;
}

/* Submits j; on failure answers the request (when there is one) and frees
 * j. Local account writes bump local_changes so a reload read before them
 * is not applied over them. */
static void job_submit(struct auth_job *j)
{
	int rc;

	if (j->kind != JOB_LOAD && j->kind != JOB_FIND_ENROL)
		j->a->local_changes++;
	rc = hl_store_submit(&j->a->srv->store, &j->job);
	if (rc == 0)
		return;
	if (j->s && j->s->wsi) {
		j->s->auth_busy = false;
		hl_session_error(j->s, j->id,
				 rc == HL_EFULL ? HL_ERR_BUSY
						: HL_ERR_SHUTTING_DOWN,
				 rc == HL_EFULL ? "server busy; retry later"
						: "server is shutting down",
				 NULL);
	}
	job_free(j);
}

/* ---- loading and change polling ----------------------------------------- */

static void enforce_sessions(struct hl_auth *a);

static void load_done(struct auth_job *j, int status)
{
	struct hl_auth *a = j->a;

	a->poll_busy = false;
	if (status != 0) {
		hl_error("auth.load_failed", "status=%d", status);
		return;
	}
	if (!j->changed)
		return;
	if (!j->force && j->local_changes != a->local_changes) {
		/* Our own writes landed after this read: read again. */
		a->data_version = -1;
		return;
	}
	if (j->nrows && !j->rows)
		return;
	for (size_t i = 0; i < j->nrows; i++)
		put_staff(a, &j->rows[i]);
	/* Sessions: the database is the truth; keep newer activity. */
	for (size_t i = 0; i < j->nsess; i++) {
		struct hl_auth_session *old = find_session(a, j->sess[i].token_hash);
		if (old && old->last_seen > j->sess[i].last_seen) {
			j->sess[i].last_seen = old->last_seen;
		}
	}
	free(a->sess);
	a->sess = j->sess;
	a->nsess = j->nsess;
	a->capsess = j->capsess;
	j->sess = NULL;
	a->data_version = j->data_version;
	hl_debug("auth.loaded", "staff=%zu sessions=%zu", a->nstaff, a->nsess);
	enforce_sessions(a);
}

static void submit_load(struct hl_auth *a, bool force)
{
	struct auth_job *j;

	if (a->poll_busy)
		return;
	j = job_new(a, JOB_LOAD, NULL, NULL);
	if (!j)
		return;
	j->force = force;
	j->seen_version = a->data_version;
	j->local_changes = a->local_changes;
	j->then = load_done;
	a->poll_busy = true;
	if (hl_store_submit(&a->srv->store, &j->job) != 0) {
		a->poll_busy = false;
		job_free(j);
	}
}

/* Closes sockets whose session or account is no longer good. */
static void enforce_sessions(struct hl_auth *a)
{
	int64_t now = now_s();

	for (struct hl_session *s = a->srv->sessions; s; s = s->next) {
		struct hl_auth_session *e;
		struct hl_auth_staff *st;

		if (s->staff_id == 0 || s->close_pending)
			continue;
		st = find_staff(a, s->staff_id);
		e = find_session(a, s->token_hash);
		if (!st || st->row.state != HL_STAFF_ACTIVE)
			hl_session_close(s, 1008, "account disabled");
		else if (!e)
			hl_session_close(s, 1008, "session revoked");
		else if (now >= e->expires_at ||
			 now - e->last_seen >= a->srv->cfg.auth_session_idle)
			hl_session_close(s, 1008, "session expired");
	}
}

/* Closes the sockets of a session that expired or went idle, saying so,
 * before it is forgotten (after, they would look revoked). */
static void close_expired(struct hl_auth *a, const unsigned char *hash)
{
	for (struct hl_session *s = a->srv->sessions; s; s = s->next)
		if (s->staff_id != 0 && !s->close_pending &&
		    sodium_memcmp(s->token_hash, hash, HL_TOKEN_HASH_BYTES) == 0)
			hl_session_close(s, 1008, "session expired");
}

static void on_timer(uv_timer_t *t)
{
	struct hl_auth *a = t->data;
	int64_t now = now_s();
	bool expired = false;

	if (a->stopping)
		return;
	/* Forget expired or idle sessions; write back activity now and then. */
	for (size_t i = 0; i < a->nsess;) {
		struct hl_auth_session *e = &a->sess[i];

		if (now >= e->expires_at ||
		    now - e->last_seen >= a->srv->cfg.auth_session_idle) {
			expired = true;
			close_expired(a, e->token_hash);
			remove_session(a, e);
			continue;
		}
		if (e->last_seen - e->persisted_seen >= PERSIST_SEEN_EVERY) {
			struct auth_job *j = job_new(a, JOB_TOUCH, NULL, NULL);
			if (j) {
				memcpy(j->token_hash, e->token_hash,
				       HL_TOKEN_HASH_BYTES);
				j->now = e->last_seen;
				e->persisted_seen = e->last_seen;
				job_submit(j);
			}
		}
		i++;
	}
	if (expired) {
		struct auth_job *j = job_new(a, JOB_EXPIRE, NULL, NULL);
		if (j)
			job_submit(j);
		enforce_sessions(a);
	}
	submit_load(a, false);
}

static void init_loaded(struct auth_job *j, int status)
{
	load_done(j, status);
	j->a->init_status = status ? status : 1;
}

int hl_auth_init(struct hl_auth *a, struct hl_server *srv)
{
	unsigned char pw[32];
	struct auth_job *j;

	memset(a, 0, sizeof(*a));
	a->srv = srv;
	a->data_version = -1;
	/* A hash to verify for unknown usernames: same parameters, so the
	 * reply takes as long as for a real account. */
	randombytes_buf(pw, sizeof(pw));
	if (crypto_pwhash_str(a->dummy_hash, (const char *)pw, sizeof(pw),
			      crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return HL_ENOMEM;
	sodium_memzero(pw, sizeof(pw));
	{
		char err[256];

		if (hl_pwhash_init(&a->pwhash, &srv->loop,
				   srv->cfg.auth_pwhash_inflight, err,
				   sizeof(err)) != 0) {
			fprintf(stderr, "helplined: %s\n", err);
			return HL_EIO;
		}
	}

	j = job_new(a, JOB_LOAD, NULL, NULL);
	if (!j)
		return HL_ENOMEM;
	j->force = true;
	j->then = init_loaded;
	a->poll_busy = true;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		job_free(j);
		return HL_ESTORE;
	}
	/* Start-up only: nothing is served until accounts are known. */
	while (a->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	if (a->init_status != 1)
		return HL_ESTORE;
	uv_timer_init(&srv->loop, &a->timer);
	a->timer.data = a;
	a->timer_open = true;
	uv_timer_start(&a->timer, on_timer, 1000, 1000);
	hl_info("auth.ready", "staff=%zu sessions=%zu", a->nstaff, a->nsess);
	return HL_OK;
}

void hl_auth_stop(struct hl_auth *a)
{
	a->stopping = true;
	hl_pwhash_stop(&a->pwhash);
	if (a->timer_open) {
		a->timer_open = false;
		uv_close((uv_handle_t *)&a->timer, NULL);
	}
}

/* ---- Argon2id in the worker processes (pwhash.c) -------------------------- */

enum pw_kind { PW_LOGIN, PW_ENROL };

/* One password operation. Waits in a queue when pwhash_inflight are
 * running (next_waiter); the password is wiped as soon as it is handed to a
 * worker. */
struct pw_job {
	struct pw_job *next;           /* wait queue link */
	struct hl_pwhash_req req;
	enum pw_kind kind;
	struct hl_auth *a;
	struct hl_session *s;          /* referenced */
	char id[HL_PROTO_ID_MAX + 1];
	char password[HL_PWHASH_PASSWORD_MAX + 1];
	char hash[crypto_pwhash_STRBYTES];      /* login: hash to verify */
	char new_hash[crypto_pwhash_STRBYTES];  /* rehash / enrol result */
	char totp[17];
	int64_t staff_id;              /* 0: unknown user (dummy hash) */
	uint64_t tag;                  /* its address (addrlimit: a keyed hash) */
	bool ok;                       /* verify succeeded / hash made */
};

static void pw_free(struct pw_job *p)
{
	hl_session_unref(p->s);
	sodium_memzero(p, sizeof(*p));
	free(p);
}

/* A job that could not be worked: the client hears so (unless it has
 * gone, or the server is stopping). */
static void pw_fail(struct pw_job *p)
{
	if (p->s->wsi) {
		p->s->auth_busy = false;
		if (!p->a->stopping)
			hl_session_error(p->s, p->id, HL_ERR_BUSY,
					 "could not check that just now; please "
					 "try again", NULL);
	}
	pw_free(p);
}

static void pw_done(struct hl_pwhash_req *r, int status, bool ok,
		    const char *new_hash);

/* Hands p to a worker; on failure answers and frees it. */
static void pw_start(struct pw_job *p)
{
	enum hl_pwhash_kind kind = p->kind == PW_ENROL ? HL_PWHASH_MAKE
				   : p->staff_id       ? HL_PWHASH_VERIFY_REHASH
						       : HL_PWHASH_VERIFY;
	int rc;

	p->req.done = pw_done;
	p->req.data = p;
	rc = hl_pwhash_submit(&p->a->pwhash, &p->req, kind, p->hash,
			      p->password);
	sodium_memzero(p->password, sizeof(p->password));
	if (rc != 0) {
		hl_warn("auth.pwhash_unavailable", "why=%s", hl_strerror(rc));
		pw_fail(p);
		return;
	}
	p->a->inflight++;
	p->a->last_tag = p->tag;
}

/*
 * Takes the next job off the wait queue: the oldest from another address
 * than the job started last, else the oldest. So a flood of logins from
 * one address (each an Argon2id) delays a login from elsewhere by about
 * one hash, not by the whole flood; in order otherwise.
 */
static struct pw_job *next_waiter(struct hl_auth *a)
{
	struct pw_job *prev = NULL, *n = a->wait_head;

	while (n && n->tag == a->last_tag) {
		prev = n;
		n = n->next;
	}
	if (!n) {
		prev = NULL;
		n = a->wait_head;
	}
	if (prev)
		prev->next = n->next;
	else
		a->wait_head = n->next;
	if (a->wait_tail == n)
		a->wait_tail = prev;
	a->waiting--;
	return n;
}

/* Queues p (taking ownership). Returns false when the queue is full. */
static bool pw_submit(struct pw_job *p)
{
	struct hl_auth *a = p->a;

	if (a->inflight < a->srv->cfg.auth_pwhash_inflight) {
		pw_start(p);
		return true;
	}
	if (a->waiting >= a->srv->cfg.auth_pwhash_queue)
		return false;
	p->next = NULL;
	if (a->wait_tail)
		a->wait_tail->next = p;
	else
		a->wait_head = p;
	a->wait_tail = p;
	a->waiting++;
	return true;
}

static void login_finish(struct pw_job *p);
static void enrol_hashed(struct pw_job *p);

static void pw_done(struct hl_pwhash_req *r, int status, bool ok,
		    const char *new_hash)
{
	struct pw_job *p = r->data;
	struct hl_auth *a = p->a;

	a->inflight--;
	p->ok = status == 0 && ok;
	snprintf(p->new_hash, sizeof(p->new_hash), "%s",
		 status == 0 && new_hash ? new_hash : "");
	/* Start the next waiter, skipping those whose socket is gone. */
	while (a->wait_head && a->inflight < a->srv->cfg.auth_pwhash_inflight &&
	       !a->stopping) {
		struct pw_job *n = next_waiter(a);

		if (!n->s->wsi) {
			pw_free(n);
			continue;
		}
		pw_start(n);
	}
	if (status != 0 || !p->s->wsi || a->stopping) {
		if (status != 0 && status != HL_ECLOSED)
			hl_warn("auth.pwhash_failed", "conn=%s why=%s",
				p->s->id_str, hl_strerror(status));
		pw_fail(p);
		return;
	}
	if (p->kind == PW_LOGIN)
		login_finish(p);
	else
		enrol_hashed(p);
}

void hl_auth_free(struct hl_auth *a)
{
	struct pw_job *next;

	for (struct pw_job *p = a->wait_head; p; p = next) {
		next = p->next;
		pw_free(p);
	}
	a->wait_head = a->wait_tail = NULL;
	free(a->staff);
	free(a->sess);
	sodium_memzero(a->dummy_hash, sizeof(a->dummy_hash));
	a->staff = NULL;
	a->sess = NULL;
}

/* ---- login ---------------------------------------------------------------- */

static void auth_fail(struct hl_session *s, const char *id)
{
	s->auth_busy = false;
	hl_session_secret_refused(s, id, HL_ERR_AUTH_FAILED, LOGIN_FAILED_TEXT);
}

static void login_failed_done(struct auth_job *j, int status)
{
	(void)status; /* the reply is the same whether the audit row landed */
	if (j->s->wsi)
		auth_fail(j->s, j->id);
}

/* Audits a failed login, enrolment or re-authentication (counting it
 * towards the account's lockout), then answers auth_failed. */
static void record_failure(struct hl_auth *a, struct hl_session *s,
			   const char *id, int64_t staff_id, const char *reason)
{
	struct auth_job *j = job_new(a, JOB_LOGIN_FAILED, s, id);

	hl_info("auth.failed", "conn=%s staff=%lld reason=%s", s->id_str,
		(long long)staff_id, reason);
	s->auth_busy = true;
	if (!j) {
		auth_fail(s, id);
		return;
	}
	j->staff_id = staff_id;
	snprintf(j->reason, sizeof(j->reason), "%s", reason);
	j->then = login_failed_done;
	job_submit(j);
}

/* Marks s authenticated for session e of account st. */
static void bind_socket(struct hl_auth *a, struct hl_session *s,
			struct hl_auth_staff *st,
			const unsigned char hash[HL_TOKEN_HASH_BYTES])
{
	s->staff_id = st->row.id;
	memcpy(s->token_hash, hash, HL_TOKEN_HASH_BYTES);
	s->last_active = now_s();
	s->auth_failures = 0;
	st->connections++;
	s->staff_next = st->sockets;
	st->sockets = s;
	if (st->presence == HL_PRESENCE_OFFLINE)
		st->presence = HL_PRESENCE_AWAY;
	hl_contacts_staff_presence(&a->srv->contacts, st->row.id, false);
}

static json_t *auth_ok_reply(struct hl_auth *a, const char *id,
			     struct hl_auth_staff *st,
			     const struct hl_auth_session *e)
{
	json_t *r = hl_proto_reply("auth.ok", id);

	json_object_set_new(r, "staff", staff_json(st));
	json_object_set_new(r, "expires_at", json_integer(e->expires_at));
	json_object_set_new(r, "idle_timeout",
			    json_integer(a->srv->cfg.auth_session_idle));
	return r;
}

static void login_ok_done(struct auth_job *j, int status)
{
	struct hl_auth *a = j->a;
	struct hl_session *s = j->s;
	struct hl_auth_session e;
	struct hl_auth_staff *st;
	char tok[sodium_base64_ENCODED_LEN(HL_TOKEN_BYTES,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	json_t *r;

	if (!s->wsi)
		return;
	s->auth_busy = false;
	if (status == HL_EINVAL) { /* the TOTP step was used meanwhile */
		hl_metrics_login_failed(&a->srv->metrics, "code_reused");
		auth_fail(s, j->id);
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED,
				 "could not start a session; try again", NULL);
		return;
	}
	st = find_staff(a, j->staff_id);
	memset(&e, 0, sizeof(e));
	memcpy(e.token_hash, j->token_hash, HL_TOKEN_HASH_BYTES);
	e.staff_id = j->staff_id;
	e.created_at = e.last_seen = e.persisted_seen = j->now;
	e.expires_at = j->expires_at;
	if (!st || add_session(a, &e) != 0) {
		hl_session_error(s, j->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	bind_socket(a, s, st, j->token_hash);
	sodium_bin2base64(tok, sizeof(tok), j->token, HL_TOKEN_BYTES,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	r = auth_ok_reply(a, j->id, st, &e);
	json_object_set_new(r, "token", json_string(tok));
	sodium_memzero(tok, sizeof(tok));
	hl_session_send(s, r);
	json_decref(r);
	a->srv->metrics.logins++;
	hl_info("auth.login", "conn=%s staff=%lld", s->id_str,
		(long long)j->staff_id);
}

/* Password checked (or dummy-checked): now the account state and TOTP. */
static void login_finish(struct pw_job *p)
{
	struct hl_auth *a = p->a;
	struct hl_auth_staff *st = p->staff_id ? find_staff(a, p->staff_id) : NULL;
	unsigned char secret[HL_TOTP_SECRET_BYTES];
	uint64_t step = 0;
	int64_t now = now_s();
	struct auth_job *j;
	const char *why = NULL;

	if (!st || !p->ok)
		why = st ? "bad_password" : "unknown_user";
	else if (st->row.state == HL_STAFF_DISABLED)
		why = "disabled";
	else if (st->row.state != HL_STAFF_ACTIVE || !st->row.has_totp)
		why = "not_enrolled";
	else if (st->row.locked_until > now)
		why = "locked";
	else if (hl_staff_totp_secret(&a->srv->keys, &st->row, secret) != 0)
		why = "totp_unreadable";
	else {
		if (hl_totp_verify(secret, sizeof(secret), p->totp, now,
				   st->row.totp_last_step, &step) != 0)
			why = "bad_totp";
		sodium_memzero(secret, sizeof(secret));
	}
	if (why) {
		hl_metrics_login_failed(&a->srv->metrics, why);
		record_failure(a, p->s, p->id, st ? st->row.id : 0, why);
		pw_free(p);
		return;
	}
	/* Claim the step now so a concurrent login with the same code fails
	 * even before this one's row is written. */
	st->row.totp_last_step = step;
	j = job_new(a, JOB_LOGIN_OK, p->s, p->id);
	if (!j) {
		hl_metrics_login_failed(&a->srv->metrics, "other");
		auth_fail(p->s, p->id);
		pw_free(p);
		return;
	}
	j->staff_id = st->row.id;
	j->step = step;
	memcpy(j->pw_hash, p->new_hash, sizeof(j->pw_hash));
	randombytes_buf(j->token, sizeof(j->token));
	hl_keys_hash_token(&a->srv->keys, j->token, sizeof(j->token),
			   j->token_hash);
	j->expires_at = now + a->srv->cfg.auth_session_max;
	j->then = login_ok_done;
	job_submit(j);
	pw_free(p);
}

/* A new pw_job for s, or NULL after answering (busy / out of memory). */
static struct pw_job *pw_new(struct hl_session *s, const char *id,
			     enum pw_kind kind)
{
	struct pw_job *p = calloc(1, sizeof(*p));

	if (!p) {
		hl_session_error(s, id, HL_ERR_INTERNAL, NULL, NULL);
		return NULL;
	}
	p->kind = kind;
	p->a = auth_of(s);
	p->s = s;
	p->tag = s->addr_tag;
	hl_session_ref(s);
	snprintf(p->id, sizeof(p->id), "%s", id);
	return p;
}

static bool pw_go(struct hl_session *s, struct pw_job *p)
{
	if (!pw_submit(p)) {
		hl_warn("auth.pwhash_queue_full", "conn=%s", s->id_str);
		hl_session_error(s, p->id, HL_ERR_BUSY,
				 "too many logins at once; retry in a moment",
				 NULL);
		pw_free(p);
		return false;
	}
	s->auth_busy = true;
	return true;
}

/* Lower-cases an ASCII username into out; false if it cannot be one. */
static bool norm_username(const char *in, char *out, size_t cap)
{
	size_t n = strlen(in);

	if (n == 0 || n >= cap)
		return false;
	for (size_t i = 0; i <= n; i++)
		out[i] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] + 32)
							: in[i];
	return true;
}

void hl_auth_login(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth *a = auth_of(s);
	const struct hl_msg_auth_login *l = &m->u.login;
	char user[HL_STAFF_USERNAME_MAX + 1];
	struct hl_auth_staff *st = NULL;
	struct pw_job *p;

	if (s->staff_id || s->auth_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 s->staff_id ? "already logged in"
					     : "a login is already in progress",
				 NULL);
		return;
	}
	/* Before any Argon2id work is queued. */
	if (!hl_session_may_try_secret(s, m->id))
		return;
	p = pw_new(s, m->id, PW_LOGIN);
	if (!p)
		return;
	if (norm_username(l->username, user, sizeof(user)))
		st = find_username(a, user);
	/* Unknown users and accounts without a password are verified
	 * against the dummy hash: same work, same reply. */
	snprintf(p->hash, sizeof(p->hash), "%s",
		 st && st->row.pw_hash[0] ? st->row.pw_hash : a->dummy_hash);
	p->staff_id = st ? st->row.id : 0;
	snprintf(p->password, sizeof(p->password), "%s", l->password);
	snprintf(p->totp, sizeof(p->totp), "%s", l->totp);
	pw_go(s, p);
}

/* ---- resume, logout, reauth ------------------------------------------------ */

void hl_auth_resume(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth *a = auth_of(s);
	unsigned char tok[HL_TOKEN_BYTES], hash[HL_TOKEN_HASH_BYTES];
	struct hl_auth_session *e = NULL;
	struct hl_auth_staff *st = NULL;
	size_t n = 0;
	int64_t now = now_s();
	json_t *r;

	if (s->staff_id || s->auth_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE, "already logged in",
				 NULL);
		return;
	}
	if (!hl_session_may_try_secret(s, m->id))
		return;
	if (sodium_base642bin(tok, sizeof(tok), m->u.resume.token,
			      strlen(m->u.resume.token), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof(tok)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "token must be 32 bytes in base64url", "token");
		return;
	}
	hl_keys_hash_token(&a->srv->keys, tok, sizeof(tok), hash);
	sodium_memzero(tok, sizeof(tok));
	e = find_session(a, hash);
	if (e)
		st = find_staff(a, e->staff_id);
	if (!e || !st || st->row.state != HL_STAFF_ACTIVE ||
	    now >= e->expires_at ||
	    now - e->last_seen >= a->srv->cfg.auth_session_idle) {
		hl_info("auth.resume_refused", "conn=%s", s->id_str);
		hl_session_secret_refused(s, m->id, HL_ERR_AUTH_FAILED,
					  "this session has ended; log in again");
		return;
	}
	e->last_seen = now;
	bind_socket(a, s, st, hash);
	r = auth_ok_reply(a, m->id, st, e);
	hl_session_send(s, r);
	json_decref(r);
	hl_info("auth.resume", "conn=%s staff=%lld", s->id_str,
		(long long)st->row.id);
}

static void logout_done(struct auth_job *j, int status)
{
	struct hl_session *s = j->s;

	(void)status; /* the session is gone from memory either way */
	if (!s->wsi)
		return;
	json_t *r = hl_proto_reply("auth.logged_out", j->id);
	hl_session_send(s, r);
	json_decref(r);
	hl_session_close(s, 1000, "logged out");
}

void hl_auth_logout(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth *a = auth_of(s);
	struct hl_auth_session *e = find_session(a, s->token_hash);
	struct auth_job *j = job_new(a, JOB_LOGOUT, s, m->id);

	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	memcpy(j->token_hash, s->token_hash, HL_TOKEN_HASH_BYTES);
	if (e)
		remove_session(a, e);
	/* Every other socket using this token ends at once. */
	close_sockets(a, s->staff_id, s->token_hash, s, "logged out");
	hl_info("auth.logout", "conn=%s staff=%lld", s->id_str,
		(long long)s->staff_id);
	j->then = logout_done;
	job_submit(j);
}

static void reauth_done(struct auth_job *j, int status)
{
	struct hl_auth_session *e;
	struct hl_session *s = j->s;
	json_t *r;

	if (!s->wsi)
		return;
	s->auth_busy = false;
	if (status == HL_EINVAL) {
		auth_fail(s, j->id);
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	e = find_session(j->a, s->token_hash);
	if (e)
		e->reauth_at = j->now;
	r = hl_proto_reply("auth.reauth_ok", j->id);
	json_object_set_new(r, "valid_until",
			    json_integer(j->now + j->a->srv->cfg.auth_reauth_window));
	hl_session_send(s, r);
	json_decref(r);
}

void hl_auth_reauth(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth *a = auth_of(s);
	struct hl_auth_staff *st = find_staff(a, s->staff_id);
	unsigned char secret[HL_TOTP_SECRET_BYTES];
	uint64_t step = 0;
	struct auth_job *j;
	int bad;

	if (s->auth_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "a request is already in progress", NULL);
		return;
	}
	if (!st || hl_staff_totp_secret(&a->srv->keys, &st->row, secret) != 0) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	bad = hl_totp_verify(secret, sizeof(secret), m->u.reauth.totp, now_s(),
			     st->row.totp_last_step, &step);
	sodium_memzero(secret, sizeof(secret));
	if (bad) {
		/* Audited and counted like a failed login. */
		record_failure(a, s, m->id, st->row.id, "bad_reauth");
		return;
	}
	st->row.totp_last_step = step;
	j = job_new(a, JOB_TOTP_STEP, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->staff_id = st->row.id;
	j->step = step;
	memcpy(j->token_hash, s->token_hash, HL_TOKEN_HASH_BYTES);
	j->then = reauth_done;
	s->auth_busy = true;
	job_submit(j);
}

/* ---- enrolment --------------------------------------------------------------- */

static void enrol_found(struct auth_job *j, int status)
{
	struct hl_session *s = j->s;
	char b32[64], uri[512];
	json_t *r;

	if (!s->wsi)
		return;
	s->auth_busy = false;
	if (status != 0 || !j->have_row) {
		if (status == 0)
			record_failure(j->a, s, j->id, 0, "bad_enrol_code");
		else
			hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL,
					 NULL);
		return;
	}
	/* j->have_row put the pending row in the cache: harmless, it is
	 * what the database holds. */
	s->enrol_staff_id = j->row.id;
	randombytes_buf(s->enrol_secret, sizeof(s->enrol_secret));
	snprintf(s->enrol_code, sizeof(s->enrol_code), "%s", j->code);
	hl_base32_encode(s->enrol_secret, sizeof(s->enrol_secret), b32,
			 sizeof(b32));
	if (hl_totp_uri("Helpline", j->row.username, s->enrol_secret,
			sizeof(s->enrol_secret), uri, sizeof(uri)) != 0)
		uri[0] = '\0';
	r = hl_proto_reply("auth.enrol_challenge", j->id);
	json_object_set_new(r, "username", json_string(j->row.username));
	json_object_set_new(r, "display_name", json_string(j->row.display_name));
	json_object_set_new(r, "totp_secret", json_string(b32));
	json_object_set_new(r, "otpauth_uri", json_string(uri));
	json_object_set_new(r, "digits", json_integer(HL_TOTP_DIGITS));
	json_object_set_new(r, "period", json_integer(HL_TOTP_STEP));
	hl_session_send(s, r);
	json_decref(r);
	sodium_memzero(b32, sizeof(b32));
	sodium_memzero(uri, sizeof(uri));
}

void hl_auth_enrol_begin(struct hl_session *s, const struct hl_msg *m)
{
	struct auth_job *j;

	if (s->staff_id || s->auth_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "log out before enrolling", NULL);
		return;
	}
	if (!hl_session_may_try_secret(s, m->id))
		return;
	j = job_new(auth_of(s), JOB_FIND_ENROL, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	snprintf(j->code, sizeof(j->code), "%s", m->u.enrol.code);
	j->then = enrol_found;
	s->auth_busy = true;
	job_submit(j);
}

static void enrol_stored(struct auth_job *j, int status)
{
	struct hl_session *s = j->s;
	json_t *r;

	if (!s->wsi)
		return;
	s->auth_busy = false;
	if (status == HL_ENOTFOUND) {
		record_failure(j->a, s, j->id, j->staff_id, "bad_enrol_code");
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	r = hl_proto_reply("auth.enrolled", j->id);
	json_object_set_new(r, "username", json_string(j->row.username));
	hl_session_send(s, r);
	json_decref(r);
	hl_info("auth.enrolled", "conn=%s staff=%lld", s->id_str,
		(long long)j->staff_id);
}

/* The password is hashed: store everything in one job. */
static void enrol_hashed(struct pw_job *p)
{
	struct hl_session *s = p->s;
	struct auth_job *j;

	if (!p->ok) {
		s->auth_busy = false;
		hl_session_error(s, p->id, HL_ERR_INTERNAL, NULL, NULL);
		pw_free(p);
		return;
	}
	j = job_new(p->a, JOB_ENROL, s, p->id);
	if (!j) {
		s->auth_busy = false;
		hl_session_error(s, p->id, HL_ERR_INTERNAL, NULL, NULL);
		pw_free(p);
		return;
	}
	j->staff_id = s->enrol_staff_id;
	j->step = (uint64_t)p->staff_id; /* carried here: see enrol_finish */
	snprintf(j->pw_hash, sizeof(j->pw_hash), "%s", p->new_hash);
	memcpy(j->secret, s->enrol_secret, sizeof(j->secret));
	snprintf(j->code, sizeof(j->code), "%s", s->enrol_code);
	sodium_memzero(s->enrol_secret, sizeof(s->enrol_secret));
	sodium_memzero(s->enrol_code, sizeof(s->enrol_code));
	s->enrol_staff_id = 0;
	j->then = enrol_stored;
	job_submit(j);
	pw_free(p);
}

void hl_auth_enrol_finish(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_msg_auth_enrol *e = &m->u.enrol;
	struct hl_auth_staff *st;
	uint64_t step = 0;
	struct pw_job *p;
	size_t plen = strlen(e->password);

	if (s->staff_id || s->auth_busy || !s->enrol_staff_id ||
	    strcmp(e->code, s->enrol_code) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "send auth.enrol_begin with this code first",
				 NULL);
		return;
	}
	st = find_staff(auth_of(s), s->enrol_staff_id);
	if (plen < PASSWORD_MIN) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "the password must be at least 12 characters",
				 "password");
		return;
	}
	if (st && strstr(e->password, st->row.username)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "the password must not contain the username",
				 "password");
		return;
	}
	if (hl_totp_verify(s->enrol_secret, sizeof(s->enrol_secret), e->totp,
			   now_s(), 0, &step) != 0) {
		/* Not audited as a login failure: no credential was tried. */
		s->auth_failures++;
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "that code does not match; check the time on "
				 "your phone and try the next code",
				 "totp");
		if (s->auth_failures >= HL_SESSION_MAX_FAILURES)
			hl_session_close(s, 1008, "too many failed attempts");
		return;
	}
	p = pw_new(s, m->id, PW_ENROL);
	if (!p)
		return;
	p->staff_id = (int64_t)step; /* the confirmed step, for enrol_hashed */
	snprintf(p->password, sizeof(p->password), "%s", e->password);
	pw_go(s, p);
}

/* ---- presence and session checks -------------------------------------------- */

struct hl_auth_staff *hl_auth_staff_of(struct hl_auth *a,
				       const struct hl_session *s)
{
	if (!s->staff_id)
		return NULL;
	if (s->staff_hint < a->nstaff &&
	    a->staff[s->staff_hint].row.id == s->staff_id)
		return &a->staff[s->staff_hint];
	return find_staff(a, s->staff_id);
}

struct hl_auth_staff *hl_auth_staff_by_id(struct hl_auth *a, int64_t id)
{
	return find_staff(a, id);
}

void hl_auth_send_staff(struct hl_auth *a, int64_t staff_id, const json_t *obj)
{
	struct hl_auth_staff *st = find_staff(a, staff_id);

	for (struct hl_session *x = st ? st->sockets : NULL; x; x = x->staff_next)
		hl_session_send(x, obj);
}

void hl_auth_send_staff_text(struct hl_auth *a, int64_t staff_id,
			     const char *text, size_t len)
{
	struct hl_auth_staff *st = find_staff(a, staff_id);

	for (struct hl_session *x = st ? st->sockets : NULL; x; x = x->staff_next)
		hl_session_send_text(x, text, len);
}

void hl_auth_set_presence(struct hl_auth *a, struct hl_auth_staff *st,
			  enum hl_presence p, const char *reason)
{
	json_t *o = hl_proto_reply("presence", NULL);

	st->presence = p;
	json_object_set_new(o, "status", json_string(hl_presence_name(p)));
	if (reason)
		json_object_set_new(o, "reason", json_string(reason));
	hl_auth_send_staff(a, st->row.id, o);
	json_decref(o);
	if (p == HL_PRESENCE_AVAILABLE)
		hl_routing_kick(&a->srv->contacts);
}

/* The session and account of an authenticated socket, looked up where
 * they were last time first (every staff message comes here; the lists
 * are scanned only when they have changed). */
static struct hl_auth_session *session_of(struct hl_auth *a,
					  struct hl_session *s)
{
	struct hl_auth_session *e;

	if (s->sess_hint < a->nsess &&
	    sodium_memcmp(a->sess[s->sess_hint].token_hash, s->token_hash,
			  HL_TOKEN_HASH_BYTES) == 0)
		return &a->sess[s->sess_hint];
	e = find_session(a, s->token_hash);
	if (e)
		s->sess_hint = (size_t)(e - a->sess);
	return e;
}

static struct hl_auth_staff *account_of(struct hl_auth *a,
					struct hl_session *s)
{
	struct hl_auth_staff *st;

	if (s->staff_hint < a->nstaff &&
	    a->staff[s->staff_hint].row.id == s->staff_id)
		return &a->staff[s->staff_hint];
	st = find_staff(a, s->staff_id);
	if (st)
		s->staff_hint = (size_t)(st - a->staff);
	return st;
}

bool hl_auth_touch(struct hl_auth *a, struct hl_session *s)
{
	struct hl_auth_session *e = session_of(a, s);
	struct hl_auth_staff *st = account_of(a, s);
	int64_t now = now_s();

	if (!st || st->row.state != HL_STAFF_ACTIVE) {
		hl_session_close(s, 1008, "account disabled");
		return false;
	}
	if (!e || now >= e->expires_at ||
	    now - e->last_seen >= a->srv->cfg.auth_session_idle) {
		hl_session_close(s, 1008, e ? "session expired" : "session revoked");
		return false;
	}
	e->last_seen = now;
	s->last_active = now;
	return true;
}

void hl_auth_on_closed(struct hl_auth *a, struct hl_session *s)
{
	struct hl_auth_staff *st = hl_auth_staff_of(a, s);

	if (st)
		for (struct hl_session **pp = &st->sockets; *pp; pp = &(*pp)->staff_next)
			if (*pp == s) {
				*pp = s->staff_next;
				break;
			}
	s->staff_next = NULL;
	if (st && st->connections > 0 && --st->connections == 0) {
		st->presence = HL_PRESENCE_OFFLINE;
		hl_contacts_staff_presence(&a->srv->contacts, st->row.id, true);
	}
	s->staff_id = 0;
}

void hl_auth_presence(struct hl_session *s, const struct hl_msg *m)
{
	static const char *const names[] = {"offline", "available", "busy",
					    "away"};
	struct hl_auth_staff *st = hl_auth_staff_of(auth_of(s), s);
	json_t *r;
	int p = -1;

	for (int i = 0; i < 4; i++)
		if (strcmp(m->u.presence.status, names[i]) == 0)
			p = i;
	if (p < 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "status must be available, busy, away or offline",
				 "status");
		return;
	}
	st->presence = (enum hl_presence)p;
	if (p == HL_PRESENCE_AVAILABLE)
		hl_routing_kick(&auth_of(s)->srv->contacts);
	r = hl_proto_reply("presence", m->id);
	json_object_set_new(r, "status", json_string(names[p]));
	json_object_set_new(r, "connections", json_integer(st->connections));
	hl_session_send(s, r);
	json_decref(r);
}

/* ---- administration ---------------------------------------------------------- */

bool hl_auth_fresh(struct hl_session *s)
{
	struct hl_auth *a = auth_of(s);
	struct hl_auth_session *e = find_session(a, s->token_hash);

	return e && e->reauth_at &&
	       now_s() - e->reauth_at < a->srv->cfg.auth_reauth_window;
}

/* Sensitive operations need a TOTP re-entry within the window. */
static bool reauthed(struct hl_session *s, const char *id)
{
	if (hl_auth_fresh(s))
		return true;
	hl_session_error(s, id, HL_ERR_REAUTH_REQUIRED,
			 "enter a code from your authenticator app "
			 "(auth.reauth) first",
			 NULL);
	return false;
}

static int parse_roles(const char *in, unsigned *out)
{
	char buf[65];
	char *save = NULL, *tok;

	*out = 0;
	snprintf(buf, sizeof(buf), "%s", in);
	for (tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		if (strcmp(tok, "counsellor") == 0)
			*out |= HL_STAFF_COUNSELLOR;
		else if (strcmp(tok, "supervisor") == 0)
			*out |= HL_STAFF_SUPERVISOR;
		else if (strcmp(tok, "admin") == 0)
			*out |= HL_STAFF_ADMIN;
		else
			return HL_EINVAL;
	}
	return *out ? HL_OK : HL_EINVAL;
}

/* Answers a finished admin job: ok → build(j) reply, else an error. */
static bool admin_status(struct auth_job *j, int status)
{
	struct hl_session *s = j->s;

	if (!s->wsi)
		return false;
	switch (status) {
	case 0:
		return true;
	case HL_ENOTFOUND:
		hl_session_error(s, j->id, HL_ERR_NOT_FOUND,
				 "no such staff member", "staff_id");
		break;
	case HL_ECONSTRAINT:
		hl_session_error(s, j->id, HL_ERR_CONFLICT,
				 "that username is taken", "username");
		break;
	case HL_EINVAL:
		hl_session_error(s, j->id, HL_ERR_BAD_FIELD,
				 "invalid account details", NULL);
		break;
	default:
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
	}
	return false;
}

static void send_staff_reply(struct auth_job *j, const char *type,
			     bool with_code)
{
	struct hl_auth_staff *st = find_staff(j->a, j->staff_id);
	json_t *r = hl_proto_reply(type, j->id);

	if (st)
		json_object_set_new(r, "staff", staff_json(st));
	if (with_code)
		json_object_set_new(r, "enrolment_code", json_string(j->code));
	hl_session_send(j->s, r);
	json_decref(r);
}

static void create_done(struct auth_job *j, int status)
{
	if (admin_status(j, status))
		send_staff_reply(j, "staff.created", true);
}

void hl_auth_staff_create(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_msg_staff_create *c = &m->u.create;
	struct auth_job *j;
	const char *field = NULL;

	if (!reauthed(s, m->id))
		return;
	j = job_new(auth_of(s), JOB_CREATE, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	norm_username(c->username, j->c_username, sizeof(j->c_username));
	snprintf(j->c_name, sizeof(j->c_name), "%s", c->display_name);
	snprintf(j->c_langs, sizeof(j->c_langs), "%s",
		 c->languages ? c->languages : "");
	snprintf(j->c_skills, sizeof(j->c_skills), "%s",
		 c->skills ? c->skills : "");
	j->create.username = j->c_username;
	j->create.display_name = j->c_name;
	j->create.languages = j->c_langs;
	j->create.skills = j->c_skills;
	j->create.capacity = c->capacity < 0 ? 2 : (int)c->capacity;
	if (parse_roles(c->roles, &j->create.roles) != 0)
		field = "roles";
	else if (hl_staff_validate(&j->create, &field) != 0 && !field)
		field = "username";
	if (field) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "invalid account details", field);
		job_free(j);
		return;
	}
	j->actor = s->staff_id;
	j->then = create_done;
	job_submit(j);
}

/* In pages of a quarter of ws.outq_max bytes, in id order (the cache is:
 * loaded by id, new accounts appended, none removed): a page's next is
 * its last id. */
void hl_auth_staff_list(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_auth *a = auth_of(s);
	json_t *r = hl_proto_reply("staff.list", m->id), *arr = json_array();
	size_t budget = hl_session_page_budget(s), used = 0;
	int64_t next = 0;
	bool more = false;

	for (size_t i = 0; i < a->nstaff; i++) {
		json_t *o;
		size_t bytes;

		if (a->staff[i].row.id <= m->u.target.after)
			continue;
		o = staff_json(&a->staff[i]);
		bytes = json_dumpb(o, NULL, 0, JSON_COMPACT) + 1;
		if (!hl_proto_page_fits(&used, budget, bytes)) {
			json_decref(o);
			more = true;
			break;
		}
		next = a->staff[i].row.id;
		json_array_append_new(arr, o);
	}
	json_object_set_new(r, "staff", arr);
	hl_proto_page(r, more, next);
	hl_session_send(s, r);
	json_decref(r);
}

static void set_state_done(struct auth_job *j, int status)
{
	if (!admin_status(j, status))
		return;
	if (j->state == HL_STAFF_DISABLED) {
		remove_sessions_of(j->a, j->staff_id);
		close_sockets(j->a, j->staff_id, NULL, NULL, "account disabled");
	}
	send_staff_reply(j, "staff.updated", false);
}

void hl_auth_staff_set_state(struct hl_session *s, const struct hl_msg *m)
{
	const char *st = m->u.target.state;
	struct auth_job *j;
	enum hl_staff_state state;

	if (strcmp(st, "active") == 0)
		state = HL_STAFF_ACTIVE;
	else if (strcmp(st, "disabled") == 0)
		state = HL_STAFF_DISABLED;
	else {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "state must be active or disabled", "state");
		return;
	}
	if (m->u.target.staff_id == s->staff_id) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "you cannot change your own account's state",
				 "staff_id");
		return;
	}
	if (!reauthed(s, m->id))
		return;
	j = job_new(auth_of(s), JOB_SET_STATE, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->staff_id = m->u.target.staff_id;
	j->state = state;
	j->actor = s->staff_id;
	j->then = set_state_done;
	job_submit(j);
}

static void reset_done(struct auth_job *j, int status)
{
	if (!admin_status(j, status))
		return;
	remove_sessions_of(j->a, j->staff_id);
	close_sockets(j->a, j->staff_id, NULL, NULL, "credentials reset");
	send_staff_reply(j, "staff.updated", true);
}

void hl_auth_staff_reset(struct hl_session *s, const struct hl_msg *m)
{
	const char *w = m->u.target.what;
	struct auth_job *j;

	if (strcmp(w, "password") != 0 && strcmp(w, "totp") != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "what must be password or totp", "what");
		return;
	}
	if (!reauthed(s, m->id))
		return;
	j = job_new(auth_of(s), JOB_RESET, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->staff_id = m->u.target.staff_id;
	j->reset_pw = w[0] == 'p';
	j->reset_totp = w[0] == 't';
	j->actor = s->staff_id;
	j->then = reset_done;
	job_submit(j);
}

static void revoke_done(struct auth_job *j, int status)
{
	json_t *r;

	if (!admin_status(j, status))
		return;
	remove_sessions_of(j->a, j->staff_id);
	close_sockets(j->a, j->staff_id, NULL, NULL, "session revoked");
	if (!j->s->wsi)
		return;
	r = hl_proto_reply("staff.sessions_revoked", j->id);
	json_object_set_new(r, "staff_id", json_integer(j->staff_id));
	json_object_set_new(r, "count", json_integer(j->count));
	hl_session_send(j->s, r);
	json_decref(r);
}

void hl_auth_staff_revoke(struct hl_session *s, const struct hl_msg *m)
{
	struct auth_job *j;

	if (!reauthed(s, m->id))
		return;
	if (!find_staff(auth_of(s), m->u.target.staff_id)) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "no such staff member", "staff_id");
		return;
	}
	j = job_new(auth_of(s), JOB_REVOKE, s, m->id);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->staff_id = m->u.target.staff_id;
	j->actor = s->staff_id;
	j->then = revoke_done;
	job_submit(j);
}
