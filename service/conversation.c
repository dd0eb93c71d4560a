/* conversation.c: conversations, their events and young people's resume
 * sessions in the database, through the store's prepared statements.
 *
 * Every function runs inside a store job on the writer thread. Statements
 * are bound, stepped, reset and cleared here on every path, so nothing a
 * function bound reaches the next user of the statement. Inputs are checked
 * in C before any statement runs (the schema's CHECKs only back this up),
 * so a refused call writes nothing.
 *
 * An append: the duplicate lookup comes first (a retry of a stored message
 * is re-acknowledged even after the conversation ended); then one read of
 * the conversation row gives its state and last_seq (no MAX() over the
 * event table); the event is inserted with seq = last_seq + 1, and only
 * then is last_seq raised, so a refused insert has changed nothing.
 *
 * No statement here uses RETURNING: measured on this project's machine, a
 * RETURNING clause (SQLite builds an ephemeral table for it on every run)
 * cost 20-30 us a statement, as much as all the rest of an append. Writes
 * check sqlite3_changes() instead, and an insert's id is the connection's
 * last rowid (the writer thread owns the connection). */
#include "conversation.h"
#include "convtail.h"
#include "common.h"
#include "e2e.h"
#include "trust.h"
#include "log.h"
#include "store.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

/* The columns of HL_STMT_CONV_GET / HL_STMT_CONV_OPEN. */
enum {
	COL_ID,
	COL_CREATED_AT,
	COL_ENDED_AT,
	COL_STATE,
	COL_STATE_AT,
	COL_RISK,
	COL_TOPICS,
	COL_AGE_BAND,
	COL_DANGER_NOW,
	COL_LANGUAGE,
	COL_COUNSELLOR_ID,
	COL_LAST_SEQ,
	COL_OUTCOME,
	COL_TAGS,
	COL_ACCEPTED_AT,
	COL_SUPERVISOR_ID,
	COL_TRANSFERS,
	COL_CONTACT_DELIVERED,
	COL_CONTACT_READ,
	COL_STAFF_DELIVERED,
	COL_STAFF_READ,
};

/* The columns of HL_STMT_EVENT_SINCE. */
enum {
	EV_SEQ,
	EV_AT,
	EV_KIND,
	EV_SENDER,
	EV_VISIBILITY,
	EV_CLIENT_ID,
	EV_PAYLOAD,
	EV_CHAIN,
};

static const char *const state_names[] = {
	[HL_CONV_QUEUED] = "queued",
	[HL_CONV_OFFERED] = "offered",
	[HL_CONV_ACTIVE] = "active",
	[HL_CONV_ENDED] = "ended",
	[HL_CONV_WRAPPED] = "wrapped",
};

static const char *const age_names[] = {
	[HL_AGE_NONE] = NULL,
	[HL_AGE_U13] = "u13",
	[HL_AGE_13_15] = "13_15",
	[HL_AGE_16_17] = "16_17",
	[HL_AGE_18P] = "18p",
};

static const char *const vis_names[] = {
	[HL_VIS_ALL] = "all",
	[HL_VIS_STAFF] = "staff",
};

/*
 * The lifecycle: allowed[from][to]. Kept here, in one table, rather than in
 * SQL, so the rule reads as a whole and the UPDATE stays a plain
 * compare-and-set on the state it read.
 */
static const bool allowed[5][5] = {
	[HL_CONV_QUEUED] = {
		[HL_CONV_OFFERED] = true, [HL_CONV_ENDED] = true },
	[HL_CONV_OFFERED] = {
		[HL_CONV_ACTIVE] = true, [HL_CONV_QUEUED] = true,
		[HL_CONV_ENDED] = true },
	[HL_CONV_ACTIVE] = {
		[HL_CONV_QUEUED] = true, [HL_CONV_ENDED] = true },
	[HL_CONV_ENDED] = { [HL_CONV_WRAPPED] = true },
	[HL_CONV_WRAPPED] = { false },
};

_Static_assert(HL_ARRAY_LEN(state_names) == HL_ARRAY_LEN(allowed),
	       "one row of allowed[] per state");

/* Resets a statement and clears its bindings. */
static void finish(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Status for a step that returns a row when it did its work: 0 for a row,
 * none for SQLITE_DONE, the mapped SQLite error otherwise. */
static int row_status(int rc, int none)
{
	return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? none :
	       hl_store_sqlite_status(rc);
}

/* Status of a step of an INSERT, UPDATE or DELETE that must change a row:
 * 0 when it changed one or more, none when it matched nothing, the mapped
 * SQLite error otherwise. Called right after the step, before anything
 * else runs on the connection (sqlite3_changes() counts the statement that
 * completed last). */
static int write_status(sqlite3_stmt *s, int rc, int none)
{
	if (rc != SQLITE_DONE)
		return rc == SQLITE_ROW ? HL_ESTORE : hl_store_sqlite_status(rc);
	return sqlite3_changes(sqlite3_db_handle(s)) > 0 ? 0 : none;
}

/* Binds a C string, or NULL for a NULL pointer. */
static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

/* ---- validation --------------------------------------------------------- */

static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_alnum(int c)
{
	return is_lower(c) || is_digit(c) || (c >= 'A' && c <= 'Z');
}

/* 1 when s is 1..max characters of [a-z0-9_] (plus '.' when dot). */
static int code_ok(const char *s, size_t max, bool dot)
{
	size_t n;

	if (!s)
		return 0;
	n = strlen(s);
	if (n < 1 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (!is_lower(c) && !is_digit(c) && c != '_' &&
		    !(dot && c == '.'))
			return 0;
	}
	return 1;
}

int hl_conv_tags_ok(const char *s)
{
	size_t n, item = 0;

	if (!s)
		return 0;
	n = strlen(s);
	if (n > HL_CONV_TAGS_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (c == ',') {
			if (item == 0)
				return 0;  /* leading or doubled comma */
			item = 0;
			continue;
		}
		if (!is_lower(c) && !is_digit(c) && c != '_')
			return 0;
		if (++item > HL_CONV_TAG_MAX)
			return 0;
	}
	return n == 0 || item > 0;  /* no trailing comma */
}

/* [a-z]{2,3}, optionally "-" and 1..8 of [A-Za-z0-9]. */
static int language_ok(const char *s)
{
	size_t i = 0, j;

	if (!s)
		return 0;
	while (is_lower((unsigned char)s[i]))
		i++;
	if (i < 2 || i > 3)
		return 0;
	if (s[i] == '\0')
		return 1;
	if (s[i] != '-')
		return 0;
	for (j = ++i; is_alnum((unsigned char)s[j]); j++)
		;
	return s[j] == '\0' && j - i >= 1 && j - i <= 8;
}

/* "contact", "system" or "staff:<id>" with id a positive int64 written
 * without leading zeros, so each sender has exactly one spelling (the
 * duplicate check compares senders as text). */
static int sender_ok(const char *s)
{
	static const char max[] = "9223372036854775807";
	const char *d;
	size_t n;

	if (!s)
		return 0;
	if (strcmp(s, "contact") == 0 || strcmp(s, "system") == 0)
		return 1;
	if (strncmp(s, "staff:", 6) != 0)
		return 0;
	d = s + 6;
	n = strlen(d);
	if (n < 1 || n > sizeof(max) - 1 || d[0] == '0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_digit((unsigned char)d[i]))
			return 0;
	return n < sizeof(max) - 1 || strcmp(d, max) <= 0;
}

/* The wire protocol's request id: 1..64 of A-Z a-z 0-9 . _ : - */
static int client_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > HL_EVENT_CLIENT_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];

		if (!is_alnum(c) && c != '.' && c != '_' && c != ':' &&
		    c != '-')
			return 0;
	}
	return 1;
}

/* Checks an event before anything is written: HL_EINVAL or HL_ERANGE. */
static int event_check(const struct hl_event_new *e)
{
	if (!e || !code_ok(e->kind, HL_EVENT_KIND_MAX, true) ||
	    !sender_ok(e->sender) ||
	    (e->visibility != HL_VIS_ALL && e->visibility != HL_VIS_STAFF) ||
	    (e->client_id && !client_id_ok(e->client_id)) ||
	    (!e->payload && e->payload_len > 0))
		return HL_EINVAL;
	/* A young person's own events are theirs to see: an internal event
	 * is staff's by definition. */
	if (e->visibility == HL_VIS_STAFF && strcmp(e->sender, "contact") == 0)
		return HL_EINVAL;
	if (e->payload_len > HL_EVENT_PAYLOAD_MAX)
		return HL_ERANGE;
	return 0;
}

/* ---- names -------------------------------------------------------------- */

const char *hl_conv_state_name(enum hl_conv_state state)
{
	if ((unsigned)state >= HL_ARRAY_LEN(state_names))
		return "?";
	return state_names[state];
}

int hl_conv_state_parse(const char *name, enum hl_conv_state *out)
{
	if (!name)
		return HL_EINVAL;
	for (size_t i = 0; i < HL_ARRAY_LEN(state_names); i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum hl_conv_state)i;
			return 0;
		}
	}
	return HL_EINVAL;
}

const char *hl_age_band_name(enum hl_age_band band)
{
	if ((unsigned)band >= HL_ARRAY_LEN(age_names))
		return NULL;
	return age_names[band];
}

int hl_age_band_parse(const char *name, enum hl_age_band *out)
{
	if (!name) {
		*out = HL_AGE_NONE;
		return 0;
	}
	for (size_t i = 1; i < HL_ARRAY_LEN(age_names); i++) {
		if (strcmp(name, age_names[i]) == 0) {
			*out = (enum hl_age_band)i;
			return 0;
		}
	}
	return HL_EINVAL;
}

int64_t hl_conv_id_parse(const char *str)
{
	int64_t v = 0;

	if (!str || !*str || *str == '0')
		return 0;
	for (; *str; str++) {
		int d = *str - '0';

		if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* ---- conversations ------------------------------------------------------ */

/* Reads the current row of a conversation SELECT into out. 0 or HL_ESTORE. */
static int read_conv(sqlite3_stmt *s, struct hl_conv *out)
{
	const unsigned char *age;
	int status;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(s, COL_ID);
	out->created_at = sqlite3_column_int64(s, COL_CREATED_AT);
	out->ended_at = sqlite3_column_int64(s, COL_ENDED_AT);
	out->state_at = sqlite3_column_int64(s, COL_STATE_AT);
	out->risk = sqlite3_column_int(s, COL_RISK);
	out->danger_now = sqlite3_column_int(s, COL_DANGER_NOW) != 0;
	out->counsellor_id = sqlite3_column_int64(s, COL_COUNSELLOR_ID);
	out->last_seq = sqlite3_column_int64(s, COL_LAST_SEQ);
	out->accepted_at = sqlite3_column_int64(s, COL_ACCEPTED_AT);
	out->supervisor_id = sqlite3_column_int64(s, COL_SUPERVISOR_ID);
	out->transfers = sqlite3_column_int(s, COL_TRANSFERS);
	out->contact_delivered = sqlite3_column_int64(s, COL_CONTACT_DELIVERED);
	out->contact_read = sqlite3_column_int64(s, COL_CONTACT_READ);
	out->staff_delivered = sqlite3_column_int64(s, COL_STAFF_DELIVERED);
	out->staff_read = sqlite3_column_int64(s, COL_STAFF_READ);
	age = sqlite3_column_text(s, COL_AGE_BAND);
	status = hl_conv_state_parse((const char *)sqlite3_column_text(
					     s, COL_STATE), &out->state);
	if (status == 0)
		status = hl_age_band_parse((const char *)age, &out->age_band);
	if (status != 0 ||
	    hl_store_column_text(s, COL_TOPICS, out->topics, sizeof(out->topics)) ||
	    hl_store_column_text(s, COL_LANGUAGE, out->language, sizeof(out->language)) ||
	    hl_store_column_text(s, COL_OUTCOME, out->outcome, sizeof(out->outcome)) ||
	    hl_store_column_text(s, COL_TAGS, out->tags, sizeof(out->tags))) {
		hl_error("conv.bad_row", "conv=%" PRId64, out->id);
		return HL_ESTORE;
	}
	return 0;
}

int hl_conv_create(sqlite3_stmt *const *stmts, const struct hl_conv_intake *in,
		   int risk, int64_t now_ms, int64_t *id_out)
{
	static const struct hl_conv_intake none = { 0 };
	sqlite3_stmt *s = stmts[HL_STMT_CONV_INSERT];
	const char *topics;
	int64_t id = 0;
	int rc, status;

	if (!in)
		in = &none;
	topics = in->topics ? in->topics : "";
	if (risk < 0 || risk >= HL_RISK__COUNT ||
	    !hl_conv_tags_ok(topics) ||
	    (in->language && !language_ok(in->language)) ||
	    (unsigned)in->age_band >= HL_ARRAY_LEN(age_names))
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, now_ms);
	sqlite3_bind_int(s, 2, risk);
	sqlite3_bind_text(s, 3, topics, -1, SQLITE_STATIC);
	bind_text_or_null(s, 4, hl_age_band_name(in->age_band));
	sqlite3_bind_int(s, 5, in->danger_now ? 1 : 0);
	bind_text_or_null(s, 6, in->language);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_ESTORE);
	if (status == 0)
		id = sqlite3_last_insert_rowid(sqlite3_db_handle(s));
	finish(s);
	if (status == 0 && id_out)
		*id_out = id;
	return status;
}

int hl_conv_get(sqlite3_stmt *const *stmts, int64_t conv_id,
		struct hl_conv *out)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_GET];
	int rc, status;

	if (!out)
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, conv_id);
	rc = sqlite3_step(s);
	status = rc == SQLITE_ROW ? read_conv(s, out) :
		 row_status(rc, HL_ENOTFOUND);
	finish(s);
	return status;
}

int hl_conv_each_open(sqlite3_stmt *const *stmts, hl_conv_fn fn, void *arg)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_OPEN];
	struct hl_conv row;
	int rc, status = 0;

	if (!fn)
		return HL_EINVAL;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		status = read_conv(s, &row);
		if (status == 0)
			status = fn(&row, arg);
		if (status != 0)
			break;
	}
	if (status == 0 && rc != SQLITE_DONE)
		status = hl_store_sqlite_status(rc);
	finish(s);
	return status < 0 ? status : 0;
}

_Static_assert(HL_CONVTAIL_KEY == HL_E2E_KEY, "a chain head is a key's size");

/* Reads the state, counsellor and (ch may be NULL) the last seq, chain and
 * handshake state of conv_id. 0, HL_ENOTFOUND, HL_ESTORE. */
static int conv_state(sqlite3_stmt *const *stmts, int64_t conv_id,
		      enum hl_conv_state *state, int64_t *counsellor_id,
		      struct hl_conv_chain *ch)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_STATE];
	int rc, status;

	sqlite3_bind_int64(s, 1, conv_id);
	rc = sqlite3_step(s);
	status = row_status(rc, HL_ENOTFOUND);
	if (status == 0) {
		if (hl_conv_state_parse((const char *)sqlite3_column_text(s, 0),
					state) != 0)
			status = HL_ESTORE;
		*counsellor_id = sqlite3_column_int64(s, 1);
	}
	if (status == 0 && ch) {
		memset(ch, 0, sizeof(*ch));
		ch->last_seq = sqlite3_column_int64(s, 2);
		if (sqlite3_column_bytes(s, 3) == HL_E2E_KEY) {
			memcpy(ch->head, sqlite3_column_blob(s, 3), HL_E2E_KEY);
			ch->has_head = true;
		}
		ch->hello = sqlite3_column_int64(s, 4);
		ch->epoch = sqlite3_column_int64(s, 5);
		ch->next[HL_E2E_TO_STAFF] = sqlite3_column_int64(s, 6);
		ch->next[HL_E2E_TO_CONTACT] = sqlite3_column_int64(s, 7);
	}
	finish(s);
	return status;
}

int hl_conv_set_state(sqlite3_stmt *const *stmts, int64_t conv_id,
		      enum hl_conv_state to, int64_t counsellor_id,
		      int64_t now_ms)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_SET_STATE];
	enum hl_conv_state from = HL_CONV_QUEUED;
	int64_t cur = 0, next;
	int rc, status;

	if ((unsigned)to >= HL_ARRAY_LEN(state_names) || counsellor_id < 0)
		return HL_EINVAL;
	status = conv_state(stmts, conv_id, &from, &cur, NULL);
	if (status != 0)
		return status;
	if (!allowed[from][to])
		return HL_EINVAL;
	switch (to) {
	case HL_CONV_OFFERED:
		if (counsellor_id == 0)
			return HL_EINVAL;
		next = counsellor_id;
		break;
	case HL_CONV_ACTIVE:
		/* Only the counsellor it was offered to may accept it. */
		if (counsellor_id != 0 && cur != 0 && counsellor_id != cur)
			return HL_EINVAL;
		next = cur != 0 ? cur : counsellor_id;
		if (next == 0)
			return HL_EINVAL;
		break;
	case HL_CONV_QUEUED:
		next = 0;  /* back in the queue: nobody holds it */
		break;
	default:
		next = cur;  /* ended / wrapped: who had it is kept */
		break;
	}
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_text(s, 2, state_names[from], -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, state_names[to], -1, SQLITE_STATIC);
	if (next != 0)
		sqlite3_bind_int64(s, 4, next);
	else
		sqlite3_bind_null(s, 4);
	sqlite3_bind_int64(s, 5, now_ms);
	rc = sqlite3_step(s);
	/* No row changed: the state moved between the read and the update,
	 * which cannot happen inside one job's transaction. */
	status = write_status(s, rc, HL_ESTORE);
	finish(s);
	return status;
}

int hl_conv_wrap_up(sqlite3_stmt *const *stmts, int64_t conv_id,
		    const char *outcome, const char *tags, int64_t now_ms)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_WRAP];
	enum hl_conv_state state;
	int64_t cur;
	int rc, status;

	if (!tags)
		tags = "";
	if (!code_ok(outcome, HL_CONV_OUTCOME_MAX, false) ||
	    !hl_conv_tags_ok(tags))
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_text(s, 2, outcome, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, tags, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, now_ms);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_ENOTFOUND);
	finish(s);
	if (status == HL_ENOTFOUND) {
		/* Tell a missing conversation from one that is not ended. */
		status = conv_state(stmts, conv_id, &state, &cur, NULL);
		return status == 0 ? HL_EINVAL : status;
	}
	return status;
}

int hl_conv_transfer(sqlite3_stmt *const *stmts, int64_t conv_id,
		     int64_t from_staff, int64_t to_staff, int64_t now_ms)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_TRANSFER];
	int rc, status;

	if (from_staff <= 0 || to_staff <= 0 || from_staff == to_staff)
		return HL_EINVAL;
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, from_staff);
	sqlite3_bind_int64(s, 3, to_staff);
	sqlite3_bind_int64(s, 4, now_ms);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_EINVAL);
	finish(s);
	return status;
}

int hl_conv_set_supervisor(sqlite3_stmt *const *stmts, int64_t conv_id,
			   int64_t supervisor_id)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_SUPERVISOR];
	int rc, status;

	sqlite3_bind_int64(s, 1, conv_id);
	if (supervisor_id > 0)
		sqlite3_bind_int64(s, 2, supervisor_id);
	else
		sqlite3_bind_null(s, 2);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_EINVAL);
	finish(s);
	return status;
}

int hl_conv_receipt(sqlite3_stmt *const *stmts, int64_t conv_id, bool contact,
		    int64_t delivered, int64_t read)
{
	sqlite3_stmt *s = stmts[contact ? HL_STMT_CONV_RECEIPT_CONTACT
					: HL_STMT_CONV_RECEIPT_STAFF];
	enum hl_conv_state state;
	struct hl_conv_chain ch;
	int64_t cur;
	int rc, status;

	if (delivered < 0 || read < 0)
		return HL_EINVAL;
	status = conv_state(stmts, conv_id, &state, &cur, &ch);
	if (status != 0)
		return status;
	if (delivered > ch.last_seq || read > ch.last_seq)
		return HL_ERANGE; /* a seq from the future */
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, delivered);
	sqlite3_bind_int64(s, 3, read);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_ENOTFOUND);
	finish(s);
	return status;
}

/* ---- events ------------------------------------------------------------- */

/* Looks (sender, client_id) up by walking conv_id's events: the way when
 * the writer cannot hold the conversation's ids in memory. 0 with *seq and
 * *at set when stored, HL_ENOTFOUND when not, HL_ESTORE. */
static int scan_client(sqlite3_stmt *const *stmts, int64_t conv_id,
		       const char *sender, const char *client_id, int64_t *seq,
		       int64_t *at)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_FIND_CLIENT];
	int rc, status;

	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_text(s, 2, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, client_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	status = row_status(rc, HL_ENOTFOUND);
	if (status == 0) {
		*seq = sqlite3_column_int64(s, 0);
		*at = sqlite3_column_int64(s, 1);
	}
	finish(s);
	return status;
}

/* Loads the client ids stored in conv_id after seq c's upto into the
 * writer's memory (c NULL: a new set, all of them), so that it holds every
 * one up to ch's last event. 0 with *out set; HL_ENOMEM (nothing kept:
 * scan instead); HL_ESTORE. */
static int load_clients(sqlite3_stmt *const *stmts, struct hl_dedupe *d,
			int64_t conv_id, struct hl_dedupe_conv *c,
			const struct hl_conv_chain *ch,
			struct hl_dedupe_conv **out)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_CLIENT_IDS];
	const char *sender, *client_id;
	int64_t after = c ? hl_dedupe_upto(c, NULL) : 0;
	int rc, status = 0;

	if (!c && !(c = hl_dedupe_start(d, conv_id)))
		return HL_ENOMEM;
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, after);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		sender = (const char *)sqlite3_column_text(s, 1);
		client_id = (const char *)sqlite3_column_text(s, 2);
		if (!sender || !client_id)
			continue; /* NULL client ids are not selected */
		status = hl_dedupe_put(d, c, hl_dedupe_key(d, sender, client_id),
				       sqlite3_column_int64(s, 0));
		if (status != 0)
			break; /* c is forgotten */
	}
	if (status == 0 && rc != SQLITE_DONE) {
		status = hl_store_sqlite_status(rc);
		hl_dedupe_forget(d, conv_id);
	}
	finish(s);
	if (status == 0) {
		hl_dedupe_set_upto(c, ch->last_seq,
				   ch->has_head ? ch->head : NULL);
		*out = c;
	}
	return status;
}

static int event_at(sqlite3_stmt *const *stmts, int64_t conv_id, int64_t seq,
		    unsigned char *buf, size_t cap, size_t *len,
		    unsigned char chain[HL_E2E_KEY], bool *has_chain);

/* The chain head of event seq (at most ch's last) of conv_id into out:
 * the conversation's own for its last event, one a little older from the
 * writer's ring of recent heads (heads.h, which answers only when it
 * agrees with that head), anything else read. 0, HL_ENOTFOUND (no such
 * event, or it has no head), HL_ESTORE. */
static int head_at(sqlite3_stmt *const *stmts, int64_t conv_id,
		   const struct hl_conv_chain *ch, int64_t seq,
		   unsigned char out[HL_E2E_KEY])
{
	bool has;
	int status;

	if (ch->has_head && seq == ch->last_seq) {
		memcpy(out, ch->head, HL_E2E_KEY);
		return 0;
	}
	if (ch->has_head && hl_heads_get(hl_store_heads(stmts), conv_id,
					 ch->last_seq, ch->head, seq, out))
		return 0;
	status = event_at(stmts, conv_id, seq, NULL, 0, NULL, out, &has);
	return status == 0 && !has ? HL_ENOTFOUND : status;
}

/* Whether c's upto event is still the one it was (its chain head): when
 * it is, the hash chain vouches for every event before it, so c holds all
 * their ids. 0 (yes), HL_ENOTFOUND (no: load it again), HL_ESTORE. */
static int clients_current(sqlite3_stmt *const *stmts, int64_t conv_id,
			   const struct hl_dedupe_conv *c,
			   const struct hl_conv_chain *ch)
{
	const unsigned char *was;
	int64_t upto = hl_dedupe_upto(c, &was);
	unsigned char head[HL_E2E_KEY];
	int status;

	if (upto > ch->last_seq)
		return HL_ENOTFOUND; /* events taken back */
	if (upto == 0)
		return 0;
	if (!was || !ch->has_head)
		return upto == ch->last_seq ? 0 : HL_ENOTFOUND;
	status = head_at(stmts, conv_id, ch, upto, head);
	if (status != 0)
		return status;
	return sodium_memcmp(was, head, HL_E2E_KEY) == 0 ? 0 : HL_ENOTFOUND;
}

/* The stored time of event seq of conv_id if it is (sender, client_id):
 * 0, HL_ENOTFOUND (another event, or none), HL_ESTORE. */
static int client_at(sqlite3_stmt *const *stmts, int64_t conv_id, int64_t seq,
		     const char *sender, const char *client_id, int64_t *at)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_CLIENT_AT];
	int status;

	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_text(s, 3, sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, client_id, -1, SQLITE_STATIC);
	status = row_status(sqlite3_step(s), HL_ENOTFOUND);
	if (status == 0)
		*at = sqlite3_column_int64(s, 0);
	finish(s);
	return status;
}

/* Looks (sender, client_id) up in conv_id, whose last event ch has: 0
 * with *seq and *at set when stored, HL_ENOTFOUND when not, HL_ESTORE.
 * The writer's memory (dedupe.h) names the candidates, after reading in
 * the ids stored since it was last current; each is checked against the
 * stored event. */
static int find_client(sqlite3_stmt *const *stmts, int64_t conv_id,
		       const struct hl_conv_chain *ch, const char *sender,
		       const char *client_id, int64_t *seq, int64_t *at)
{
	struct hl_dedupe *d = hl_store_dedupe(stmts);
	struct hl_dedupe_conv *c = hl_dedupe_get(d, conv_id);
	uint64_t key = hl_dedupe_key(d, sender, client_id);
	size_t pos = 0;
	int64_t cand;
	int status;

	if (c) {
		status = clients_current(stmts, conv_id, c, ch);
		if (status == HL_ENOTFOUND) {
			hl_dedupe_forget(d, conv_id);
			c = NULL;
		} else if (status != 0) {
			return status;
		} else if (hl_dedupe_upto(c, NULL) < ch->last_seq) {
			status = load_clients(stmts, d, conv_id, c, ch, &c);
			if (status == HL_ENOMEM) /* c is forgotten */
				return scan_client(stmts, conv_id, sender,
						   client_id, seq, at);
			if (status != 0)
				return status;
		}
	}
	if (!c) {
		status = load_clients(stmts, d, conv_id, NULL, ch, &c);
		if (status == HL_ENOMEM)
			return scan_client(stmts, conv_id, sender, client_id,
					   seq, at);
		if (status != 0)
			return status;
	}
	while (hl_dedupe_next(c, key, &pos, &cand)) {
		status = client_at(stmts, conv_id, cand, sender, client_id, at);
		if (status == 0)
			*seq = cand;
		if (status != HL_ENOTFOUND)
			return status;
	}
	return HL_ENOTFOUND;
}

/* Adds a stored (sender, client_id), event seq with chain head head, to
 * the writer's memory of conv_id, if it holds that conversation up to the
 * event before (find_client made it so just before). */
static void remember_client(sqlite3_stmt *const *stmts, int64_t conv_id,
			    const char *sender, const char *client_id,
			    int64_t seq, const unsigned char *head)
{
	struct hl_dedupe *d = hl_store_dedupe(stmts);
	struct hl_dedupe_conv *c = hl_dedupe_get(d, conv_id);

	/* A failed put forgets the conversation: it is loaded again. */
	if (c && hl_dedupe_upto(c, NULL) == seq - 1 &&
	    hl_dedupe_put(d, c, hl_dedupe_key(d, sender, client_id), seq) == 0)
		hl_dedupe_set_upto(c, seq, head);
}

/* Reads one stored event's payload (copied to buf, cap bytes) and chain.
 * 0, HL_ENOTFOUND, HL_ERANGE (payload larger than cap), HL_ESTORE. */
static int event_at(sqlite3_stmt *const *stmts, int64_t conv_id, int64_t seq,
		    unsigned char *buf, size_t cap, size_t *len,
		    unsigned char chain[HL_E2E_KEY], bool *has_chain)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_AT];
	int rc, status;
	size_t n;

	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, seq);
	rc = sqlite3_step(s);
	status = row_status(rc, HL_ENOTFOUND);
	if (status == 0) {
		n = (size_t)sqlite3_column_bytes(s, 0);
		if (buf && n > cap) {
			status = HL_ERANGE;
		} else if (buf) {
			if (n)
				memcpy(buf, sqlite3_column_blob(s, 0), n);
			*len = n;
		}
		*has_chain = sqlite3_column_bytes(s, 1) == HL_E2E_KEY;
		if (*has_chain)
			memcpy(chain, sqlite3_column_blob(s, 1), HL_E2E_KEY);
	}
	finish(s);
	return status;
}

/* 0 when the certificate is a live device registered by sender
 * ("staff:<id>"); HL_ENOTFOUND when not; HL_ESTORE. */
static int device_owner(sqlite3_stmt *const *stmts, const unsigned char *cert,
			size_t cert_len, const char *sender)
{
	int64_t device, owner;
	char who[32];
	int status = hl_trust_live_device(stmts, cert, cert_len, &device, &owner);

	if (status != 0)
		return status;
	snprintf(who, sizeof(who), "staff:%lld", (long long)owner);
	return strcmp(who, sender) == 0 ? 0 : HL_ENOTFOUND;
}

static int refuse(struct hl_event_result *out, enum hl_event_refusal r,
		  const char *why)
{
	if (out) {
		out->refusal = r;
		out->why = why;
	}
	return HL_EINVAL;
}

/* Whether e is an envelope that cannot have been stored before: one in the
 * conversation's current epoch with its direction's next counter. Epochs
 * are seqs (never reused) and a direction's counter only rises within an
 * epoch, so a stored envelope of this epoch has a counter below next, and a
 * retry (the same bytes) is not fresh. A fresh envelope needs no look-up of
 * its client id: in service nearly every chat message is one, and the
 * writer's memory of client ids (dedupe.h) is then only loaded for the
 * conversations where something else (a retry, a note, a tag) needs it. */
static bool fresh_envelope(int64_t conv_id, const struct hl_event_new *e,
			   const struct hl_e2e_header *h,
			   const struct hl_conv_chain *ch)
{
	return e->e2e == HL_EV_ENVELOPE && h && h->dir == e->dir &&
	       h->conv == (uint64_t)conv_id && ch->epoch != 0 &&
	       h->epoch == (uint64_t)ch->epoch &&
	       (int64_t)h->n == ch->next[h->dir];
}

/* The end-to-end checks of hl_event_append (see conversation.h), with
 * the envelope's header hp as parsed (NULL: not a well-formed one); on
 * success ch holds the handshake state after the event (bar its seq,
 * which the caller applies for hellos and accepts). */
static int e2e_check(sqlite3_stmt *const *stmts, int64_t conv_id,
		     const struct hl_event_new *e,
		     const struct hl_e2e_header *hp, struct hl_conv_chain *ch,
		     struct hl_event_result *out)
{
	struct hl_e2e_header h;
	struct hl_e2e_accept a;
	unsigned char head[HL_E2E_KEY], young[HL_E2E_KEY];
	size_t n = 0;
	bool has;
	int status;

	switch (e->e2e) {
	case HL_EV_OPAQUE:
		return 0;
	case HL_EV_ENVELOPE:
		if (!hp)
			return refuse(out, HL_REFUSE_ENVELOPE,
				      "not a well-formed envelope");
		h = *hp;
		if (h.dir != e->dir)
			return refuse(out, HL_REFUSE_ENVELOPE,
				      "the envelope's direction is not the sender's");
		if (h.conv != (uint64_t)conv_id)
			return refuse(out, HL_REFUSE_ENVELOPE,
				      "the envelope names another conversation");
		if (ch->epoch == 0)
			return refuse(out, HL_REFUSE_EPOCH,
				      "no keys agreed yet: wait for the handshake");
		if (h.epoch != (uint64_t)ch->epoch)
			return refuse(out, HL_REFUSE_EPOCH,
				      "not the current epoch: re-encrypt with the "
				      "newest keys");
		if ((int64_t)h.n != ch->next[h.dir])
			return refuse(out, HL_REFUSE_COUNTER,
				      "not the next message counter");
		if (h.seen_seq > (uint64_t)ch->last_seq)
			return refuse(out, HL_REFUSE_ENVELOPE,
				      "seen_seq is beyond the last event");
		/* A client that has read everything names the last event,
		 * whose head is at hand; head_at says where any other's is. */
		if (h.seen_seq > 0) {
			status = head_at(stmts, conv_id, ch, (int64_t)h.seen_seq,
					 head);
			if (status != 0 && status != HL_ENOTFOUND)
				return status;
			if (status != 0 ||
			    sodium_memcmp(head, h.seen_head, HL_E2E_KEY) != 0)
				return refuse(out, HL_REFUSE_ENVELOPE,
					      "seen_head is not the chain head "
					      "at seen_seq");
		}
		if (ch->next[h.dir] >= INT64_C(4294967295))
			return refuse(out, HL_REFUSE_COUNTER,
				      "the epoch is exhausted: handshake again");
		ch->next[h.dir]++;
		return 0;
	case HL_EV_HELLO:
		if (e->payload_len != HL_E2E_KEY || !hl_e2e_kx_pk_ok(e->payload))
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "kx_pk is not a usable X25519 public key");
		return 0;
	case HL_EV_ACCEPT:
		if (!e->root_pk)
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "the service has no organisation root key "
				      "(run helplinectl init)");
		if (ch->hello == 0)
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "there is no hello to answer");
		status = event_at(stmts, conv_id, ch->hello, young,
				  sizeof(young), &n, head, &has);
		if (status == HL_ERANGE || (status == 0 && n != HL_E2E_KEY))
			return HL_ESTORE;
		if (status != 0)
			return status == HL_ENOTFOUND ? HL_ESTORE : status;
		if (hl_e2e_accept_verify(e->payload, e->payload_len,
					 (uint64_t)conv_id, young, e->root_pk,
					 e->now_s, e->roles_mask, NULL,
					 hl_trust_revoked, (void *)stmts,
					 e->chains, &a, NULL) != 0)
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "the accept does not verify (certificate, "
				      "role, revocation, key or signature)");
		status = device_owner(stmts, a.cert, a.cert_len, e->sender);
		if (status == HL_ENOTFOUND)
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "the certificate is not one of your "
				      "registered devices");
		if (status != 0)
			return status;
		if (a.hello_seq != (uint64_t)ch->hello)
			return refuse(out, HL_REFUSE_HANDSHAKE,
				      "the accept answers an older hello");
		return 0;
	}
	return HL_EINVAL;
}

/* Signs the chain head after seq with the STAMP key and stores it. */
static int checkpoint(sqlite3_stmt *const *stmts, int64_t conv_id, int64_t seq,
		      const unsigned char head[HL_E2E_KEY], int64_t now_ms,
		      const unsigned char *stamp_sk)
{
	sqlite3_stmt *s = stmts[HL_STMT_CHECKPOINT_PUT];
	unsigned char msg[HL_E2E_CHECKPOINT_MSG], sig[HL_E2E_SIG];
	int status;

	hl_e2e_checkpoint_msg((uint64_t)conv_id, (uint64_t)seq, head, now_ms,
			      msg);
	crypto_sign_detached(sig, NULL, msg, sizeof(msg), stamp_sk);
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_blob(s, 4, head, HL_E2E_KEY, SQLITE_STATIC);
	sqlite3_bind_blob(s, 5, sig, HL_E2E_SIG, SQLITE_STATIC);
	status = write_status(s, sqlite3_step(s), HL_ESTORE);
	finish(s);
	return status;
}

/* Writes ch into conv_id's row, which must still have last_seq was (else
 * HL_ESTORE: another writer got there first, or no such row). */
static int set_tail(sqlite3_stmt *u, int64_t conv_id,
		    const struct hl_conv_chain *ch, int64_t was)
{
	int status;

	sqlite3_bind_int64(u, 1, conv_id);
	sqlite3_bind_int64(u, 2, ch->last_seq);
	sqlite3_bind_blob(u, 3, ch->head, HL_E2E_KEY, SQLITE_STATIC);
	sqlite3_bind_int64(u, 4, ch->hello);
	sqlite3_bind_int64(u, 5, ch->epoch);
	sqlite3_bind_int64(u, 6, ch->next[HL_E2E_TO_STAFF]);
	sqlite3_bind_int64(u, 7, ch->next[HL_E2E_TO_CONTACT]);
	sqlite3_bind_int64(u, 8, was);
	status = write_status(u, sqlite3_step(u), HL_ESTORE);
	finish(u);
	return status;
}

int hl_event_append(sqlite3_stmt *const *stmts, int64_t conv_id,
		    const struct hl_event_new *e, int64_t now_ms,
		    struct hl_event_result *out)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_INSERT];
	sqlite3_stmt *u = stmts[HL_STMT_CONV_SET_SEQ];
	struct hl_convtails *tails = hl_store_tails(stmts);
	struct hl_convtail *tail = NULL;
	enum hl_conv_state state;
	struct hl_conv_chain ch;
	unsigned char head[HL_E2E_KEY];
	int64_t seq = 0, at = 0, counsellor;
	struct hl_e2e_header env, *envp = NULL;
	bool ckpt, looked_up;
	int status;

	if (out)
		memset(out, 0, sizeof(*out));
	status = event_check(e);
	if (status != 0)
		return status;
	if (tails->active)
		tail = hl_convtail_get(tails, conv_id);
	if (tail) {
		state = (enum hl_conv_state)tail->state;
		counsellor = tail->counsellor_id;
		ch = tail->ch;
	} else {
		status = conv_state(stmts, conv_id, &state, &counsellor, &ch);
		if (status != 0)
			return status;
		/* Out of memory for a tail: this append writes the row
		 * itself, which is then as current as before. */
		if (tails->active &&
		    (tail = hl_convtail_add(tails, conv_id)) != NULL) {
			tail->stored_seq = ch.last_seq;
			tail->state = (int)state;
			tail->counsellor_id = counsellor;
			tail->ch = ch;
		}
	}
	/* A retry is re-acknowledged whatever has happened since (even in a
	 * conversation that has ended), so this comes before the checks. */
	/* An envelope's header, parsed once for both uses. */
	if (e->e2e == HL_EV_ENVELOPE &&
	    hl_e2e_header_parse(e->payload, e->payload_len, &env) == 0)
		envp = &env;
	looked_up = e->client_id && !fresh_envelope(conv_id, e, envp, &ch);
	if (looked_up) {
		status = find_client(stmts, conv_id, &ch, e->sender,
				     e->client_id, &seq, &at);
		if (status == 0) {
			if (out) {
				out->seq = seq;
				out->at = at;
				out->duplicate = true;
			}
			return 0;
		}
		if (status != HL_ENOTFOUND)
			return status;
	}
	if ((state == HL_CONV_ENDED || state == HL_CONV_WRAPPED) &&
	    strcmp(e->kind, "msg") == 0)
		return HL_ECLOSED;
	status = e2e_check(stmts, conv_id, e, envp, &ch, out);
	if (status != 0)
		return status;
	seq = ch.last_seq + 1;
	if (e->e2e == HL_EV_HELLO)
		ch.hello = seq;
	if (e->e2e == HL_EV_ACCEPT) {
		ch.epoch = seq;
		ch.next[HL_E2E_TO_STAFF] = ch.next[HL_E2E_TO_CONTACT] = 0;
	}
	if (hl_e2e_chain_head(ch.has_head ? ch.head : NULL, (uint64_t)conv_id,
			      (uint64_t)seq, now_ms, e->kind, e->sender,
			      e->visibility == HL_VIS_STAFF, e->payload,
			      e->payload_len, head) != 0)
		return HL_EINVAL;
	ckpt = e->stamp_sk && (e->checkpoint_now ||
			       (e->checkpoint_every > 0 &&
				seq % e->checkpoint_every == 0));
	/* More than the event's row to write (the conversation's, or a
	 * checkpoint): a failure after the first must take it back, which
	 * an append-only job's savepoint, opened only now, does. */
	if (!tail || ckpt) {
		status = hl_store_job_savepoint(stmts);
		if (status != 0)
			return status;
	}

	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_text(s, 4, e->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, e->sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 6, vis_names[e->visibility], -1, SQLITE_STATIC);
	bind_text_or_null(s, 7, e->client_id);
	if (e->payload_len > 0)
		sqlite3_bind_blob(s, 8, e->payload, (int)e->payload_len,
				  SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 8);
	sqlite3_bind_blob(s, 9, head, HL_E2E_KEY, SQLITE_STATIC);
	/* A failed insert (a statement is atomic) has changed nothing. */
	status = write_status(s, sqlite3_step(s), HL_ESTORE);
	finish(s);
	if (status != 0)
		return status;
	/* Should this event be taken back, the ring's entry for it never
	 * answers (heads.h). */
	hl_heads_put(hl_store_heads(stmts), conv_id, seq,
		     ch.has_head ? ch.head : NULL, head);
	ch.last_seq = seq;
	memcpy(ch.head, head, HL_E2E_KEY);
	ch.has_head = true;
	/* If this fails the event is stored but last_seq not raised: the job
	 * must return the error so its savepoint takes the event back (see
	 * conversation.h); the next append would otherwise collide on seq.
	 * With a tail, the row is written at the end of the run of appends
	 * (hl_conv_tails_flush). */
	if (!tail) {
		status = set_tail(u, conv_id, &ch, seq - 1);
		if (status != 0)
			return status;
	}
	/* Remembered now, before this job or its batch has committed: should
	 * either be taken back, the entry is checked against the stored event
	 * when next used and found missing (or another event at that seq),
	 * and the conversation's upto event is no longer the one remembered.
	 * A fresh envelope is not put: the next look-up reads it in. */
	if (looked_up)
		remember_client(stmts, conv_id, e->sender, e->client_id, seq,
				head);
	if (ckpt) {
		status = checkpoint(stmts, conv_id, seq, head, now_ms,
				    e->stamp_sk);
		if (status != 0)
			return status;
	}
	/* Last, once nothing of this append can fail any more; should the
	 * job fail after this, store.c puts the tail back
	 * (hl_convtail_undo_job) as its savepoint puts back the rows. */
	if (tail) {
		hl_convtail_touch(tails, tail);
		tail->ch = ch;
		tail->dirty = true;
	}
	if (out) {
		out->seq = seq;
		out->at = now_ms;
		out->duplicate = false;
		memcpy(out->chain, head, HL_E2E_KEY);
	}
	return 0;
}

int hl_conv_tails_flush(sqlite3_stmt *const *stmts)
{
	struct hl_convtails *tails = hl_store_tails(stmts);
	int status = 0;

	for (size_t i = 0; i < tails->n && status == 0; i++) {
		struct hl_convtail *t = hl_convtail_at(tails, i);

		if (!t->dirty)
			continue;
		status = set_tail(stmts[HL_STMT_CONV_SET_SEQ], t->conv_id,
				  &t->ch, t->stored_seq);
		tails->rows_written++;
	}
	if (tails->n)
		tails->flushes++;
	hl_convtail_clear(tails);
	return status;
}

int hl_event_since(sqlite3_stmt *const *stmts, int64_t conv_id,
		   int64_t after_seq, bool contact_view, size_t max,
		   hl_event_fn fn, void *arg)
{
	sqlite3_stmt *s = stmts[HL_STMT_EVENT_SINCE];
	struct hl_event ev;
	const char *vis;
	int rc, status = 0;

	if (after_seq < 0 || !fn)
		return HL_EINVAL;
	if (max == 0)
		return 0;
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_int64(s, 2, after_seq);
	sqlite3_bind_int(s, 3, contact_view ? 1 : 0);
	sqlite3_bind_int64(s, 4, max > (size_t)INT64_MAX ? INT64_MAX :
			   (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&ev, 0, sizeof(ev));
		ev.conv_id = conv_id;
		ev.seq = sqlite3_column_int64(s, EV_SEQ);
		ev.at = sqlite3_column_int64(s, EV_AT);
		ev.kind = (const char *)sqlite3_column_text(s, EV_KIND);
		ev.sender = (const char *)sqlite3_column_text(s, EV_SENDER);
		vis = (const char *)sqlite3_column_text(s, EV_VISIBILITY);
		ev.client_id = (const char *)sqlite3_column_text(s,
								 EV_CLIENT_ID);
		ev.payload = sqlite3_column_blob(s, EV_PAYLOAD);
		ev.payload_len = (size_t)sqlite3_column_bytes(s, EV_PAYLOAD);
		if (!ev.payload)
			ev.payload_len = 0;
		ev.chain = sqlite3_column_bytes(s, EV_CHAIN) == 32
				   ? sqlite3_column_blob(s, EV_CHAIN)
				   : NULL;
		if (vis && strcmp(vis, "all") == 0) {
			ev.visibility = HL_VIS_ALL;
		} else if (vis && strcmp(vis, "staff") == 0 && !contact_view) {
			ev.visibility = HL_VIS_STAFF;
		} else {
			/* Never hand a contact anything but 'all', whatever
			 * the statement returned. */
			hl_error("event.bad_visibility", "conv=%" PRId64
				 " seq=%" PRId64, conv_id, ev.seq);
			status = HL_ESTORE;
			break;
		}
		if (!ev.kind || !ev.sender) {
			status = HL_ESTORE;
			break;
		}
		status = fn(&ev, arg);
		if (status != 0)
			break;
	}
	if (status == 0 && rc != SQLITE_DONE)
		status = hl_store_sqlite_status(rc);
	finish(s);
	return status < 0 ? status : 0;
}

/* ---- resume sessions ---------------------------------------------------- */

int hl_contact_session_put(sqlite3_stmt *const *stmts,
			   const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			   int64_t conv_id, int64_t now_ms,
			   int64_t expires_at_ms)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_PUT];
	int rc, status;

	if (!resume_hash || expires_at_ms <= now_ms)
		return HL_EINVAL;
	sqlite3_bind_blob(s, 1, resume_hash, HL_TOKEN_HASH_BYTES,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, conv_id);
	sqlite3_bind_int64(s, 3, now_ms);
	sqlite3_bind_int64(s, 4, expires_at_ms);
	rc = sqlite3_step(s);
	/* No row changed: the hash exists for another conversation (the
	 * upsert's WHERE refused it). A missing conversation fails the
	 * foreign key. */
	status = write_status(s, rc, HL_ECONSTRAINT);
	finish(s);
	return status;
}

int hl_contact_session_find(sqlite3_stmt *const *stmts,
			    const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			    int64_t now_ms, int64_t *conv_id)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_FIND];
	int rc, status;

	if (!resume_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, resume_hash, HL_TOKEN_HASH_BYTES,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms);
	rc = sqlite3_step(s);
	status = row_status(rc, HL_ENOTFOUND);
	if (status == 0 && conv_id)
		*conv_id = sqlite3_column_int64(s, 0);
	finish(s);
	return status;
}

int hl_contact_session_touch(sqlite3_stmt *const *stmts,
			     const unsigned char resume_hash[HL_TOKEN_HASH_BYTES],
			     int64_t now_ms, int64_t expires_at_ms)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_TOUCH];
	int rc, status;

	if (!resume_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, resume_hash, HL_TOKEN_HASH_BYTES,
			  SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now_ms);
	sqlite3_bind_int64(s, 3, expires_at_ms > 0 ? expires_at_ms : 0);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_ENOTFOUND);
	finish(s);
	return status;
}

int hl_contact_session_delete(sqlite3_stmt *const *stmts,
			      const unsigned char resume_hash[HL_TOKEN_HASH_BYTES])
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_DELETE];
	int rc, status;

	if (!resume_hash)
		return HL_ENOTFOUND;
	sqlite3_bind_blob(s, 1, resume_hash, HL_TOKEN_HASH_BYTES,
			  SQLITE_STATIC);
	rc = sqlite3_step(s);
	status = write_status(s, rc, HL_ENOTFOUND);
	finish(s);
	return status;
}

int hl_contact_session_expire(sqlite3_stmt *const *stmts, int64_t now_ms,
			      int *count_out)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_EXPIRE];
	int rc, n = 0;

	sqlite3_bind_int64(s, 1, now_ms);
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE)
		n = sqlite3_changes(sqlite3_db_handle(s));
	finish(s);
	if (rc != SQLITE_DONE)
		return rc == SQLITE_ROW ? HL_ESTORE : hl_store_sqlite_status(rc);
	if (count_out)
		*count_out = n;
	return 0;
}

/* ---- return codes -------------------------------------------------------- */

int hl_conv_set_return(sqlite3_stmt *const *stmts, int64_t conv_id,
		       const unsigned char sign_pk[32],
		       const unsigned char box_pk[32])
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_SET_RETURN];
	enum hl_conv_state state;
	int64_t cur;
	int status = conv_state(stmts, conv_id, &state, &cur, NULL);

	if (status != 0)
		return status;
	sqlite3_bind_int64(s, 1, conv_id);
	sqlite3_bind_blob(s, 2, sign_pk, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, box_pk, 32, SQLITE_STATIC);
	status = write_status(s, sqlite3_step(s), HL_ECONSTRAINT);
	finish(s);
	return status;
}

int hl_conv_by_return(sqlite3_stmt *const *stmts,
		      const unsigned char sign_pk[32], int64_t *conv_id)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONV_BY_RETURN];
	int status;

	sqlite3_bind_blob(s, 1, sign_pk, 32, SQLITE_STATIC);
	status = row_status(sqlite3_step(s), HL_ENOTFOUND);
	if (status == 0)
		*conv_id = sqlite3_column_int64(s, 0);
	finish(s);
	return status;
}

int hl_contact_session_drop_conv(sqlite3_stmt *const *stmts, int64_t conv_id)
{
	sqlite3_stmt *s = stmts[HL_STMT_CONTACT_DROP_CONV];
	int rc;

	sqlite3_bind_int64(s, 1, conv_id);
	rc = sqlite3_step(s);
	finish(s);
	return rc == SQLITE_DONE ? 0 : HL_ESTORE;
}
