/* contact.c: young people's contact sessions, intake and the live queue.
 * Every change is a store job; the loop's tables change only once that job
 * has committed, so what a young person is told is always what is stored. */
#include "contact.h"
#include "auth.h"
#include "common.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most tag or flag ids in one intake list. */
#define INTAKE_IDS_MAX 16

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct hl_contacts *contacts_of(struct hl_session *s)
{
	return &s->srv->contacts;
}

static struct hl_conv_live *find_conv(struct hl_contacts *c, int64_t id)
{
	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->id == id)
			return v;
	return NULL;
}

static struct hl_conv_live *new_conv(struct hl_contacts *c, int64_t id,
				     int risk, const char *language)
{
	struct hl_conv_live *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->id = id;
	v->risk = risk;
	v->qe.id = (uint64_t)id;
	v->qe.risk = (enum hl_risk)risk;
	snprintf(v->qe.language, sizeof(v->qe.language), "%s",
		 language ? language : "");
	v->next = c->convs;
	c->convs = v;
	return v;
}

static void drop_conv(struct hl_contacts *c, struct hl_conv_live *v)
{
	struct hl_conv_live **pp;

	hl_queue_remove(&c->queue, &v->qe, false, 0);
	for (pp = &c->convs; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	if (v->contact)
		v->contact->conv = NULL;
	sodium_memzero(v, sizeof(*v));
	free(v);
}

/* Sends the young person where they are in the queue. */
static void send_position(struct hl_session *s, uint32_t position,
			  int64_t estimate_s, const char *type, const char *id)
{
	json_t *r = hl_proto_reply(type, id);

	json_object_set_new(r, "position", json_integer(position));
	json_object_set_new(r, "estimate_s", estimate_s < 0 ? json_null()
							    : json_integer(estimate_s));
	hl_session_send(s, r);
	json_decref(r);
}

static void told(struct hl_queue_entry *e, uint32_t position,
		 int64_t estimate_s, void *arg)
{
	struct hl_conv_live *v = hl_container_of(e, struct hl_conv_live, qe);

	(void)arg;
	if (v->contact)
		send_position(v->contact, position, estimate_s, "queue.position",
			      NULL);
}

static void requeue(struct hl_contacts *c, struct hl_conv_live *v);

static void on_tick(uv_timer_t *t)
{
	struct hl_contacts *c = t->data;
	int64_t now = now_ms(),
		grace = (int64_t)c->srv->cfg.queue_counsellor_grace * 1000;

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->state == HL_CONV_ACTIVE && v->lost_since_ms && !v->busy &&
		    now - v->lost_since_ms >= grace)
			requeue(c, v);
	hl_queue_poll_changes(&c->queue, now, told, NULL);
}

/* ---- store jobs ------------------------------------------------------------ */

enum cjob_kind { CJ_LOAD, CJ_START, CJ_RESUME, CJ_LEAVE, CJ_TAKE, CJ_SEND, CJ_SINCE, CJ_END, CJ_REQUEUE };

struct contact_job {
	struct hl_store_job job;
	enum cjob_kind kind;
	struct hl_contacts *c;
	struct hl_session *s;          /* referenced, or NULL */
	char id[HL_PROTO_ID_MAX + 1];
	int64_t now, expires;
	int64_t conv_id;
	int risk;
	struct hl_conv_intake intake;
	char topics[HL_CONV_TAGS_MAX + 1];
	char language[HL_CONV_LANGUAGE_MAX + 1];
	unsigned char secret[HL_TOKEN_BYTES];
	unsigned char hash[HL_TOKEN_HASH_BYTES];
	struct hl_conv conv;           /* CJ_RESUME: the row */
	struct hl_conv *open;          /* CJ_LOAD: open conversations */
	size_t nopen, capopen;
	int64_t staff_id;              /* CJ_TAKE / CJ_SEND / CJ_END by staff */
	char sender[HL_EVENT_SENDER_MAX + 1]; /* CJ_SEND */
	const char *ev_kind;           /* CJ_SEND: "msg" or "note" */
	enum hl_event_vis vis;         /* CJ_SEND: note = staff only */
	unsigned char *payload;        /* CJ_SEND: decoded, malloc'd */
	size_t payload_len;
	struct hl_event_result res;    /* CJ_SEND / CJ_TAKE / CJ_END */
	int64_t after_seq;             /* CJ_SINCE */
	bool contact_view;             /* CJ_SINCE */
	json_t *events;                /* CJ_SINCE: chat.event objects */
	void (*then)(struct contact_job *j, int status);
};

static int collect_open(const struct hl_conv *conv, void *arg)
{
	struct contact_job *j = arg;

	if (j->nopen == j->capopen) {
		size_t cap = j->capopen ? j->capopen * 2 : 64;
		void *p = realloc(j->open, cap * sizeof(*j->open));
		if (!p)
			return HL_ENOMEM;
		j->open = p;
		j->capopen = cap;
	}
	j->open[j->nopen++] = *conv;
	return 0;
}

/* The wire form of an event. contact_view hides staff identities: the
 * young person sees "counsellor", never a staff id. */
static json_t *event_json(int64_t conv_id, int64_t seq, int64_t at,
			  const char *kind, const char *sender,
			  const void *payload, size_t len, bool contact_view)
{
	char idstr[24];
	const char *from = strcmp(sender, "contact") == 0   ? "contact"
			   : strcmp(sender, "system") == 0  ? "system"
			   : contact_view		    ? "counsellor"
							    : sender;
	json_t *o = hl_proto_reply("chat.event", NULL);

	snprintf(idstr, sizeof(idstr), "%lld", (long long)conv_id);
	json_object_set_new(o, "conversation", json_string(idstr));
	json_object_set_new(o, "seq", json_integer(seq));
	json_object_set_new(o, "at", json_integer(at));
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "from", json_string(from));
	if (len) {
		size_t n = sodium_base64_ENCODED_LEN(
			len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		char *b = malloc(n);

		if (b) {
			sodium_bin2base64(b, n, payload, len,
					  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
			json_object_set_new(o, "payload", json_string(b));
			free(b);
		}
	}
	return o;
}

/* Runs on the writer thread: builds the wire objects there, so the loop
 * only sends them. */
static int collect_event(const struct hl_event *ev, void *arg)
{
	struct contact_job *j = arg;

	json_array_append_new(j->events,
			      event_json(ev->conv_id, ev->seq, ev->at, ev->kind,
					 ev->sender, ev->payload,
					 ev->payload_len, j->contact_view));
	return 0;
}

/* Appends a contact-visible system event (joined, ended, ...). */
static int system_event(sqlite3_stmt *const *stmts, struct contact_job *j,
			const char *what)
{
	struct hl_event_new e = {
		.kind = "system", .sender = "system", .visibility = HL_VIS_ALL,
		.payload = what, .payload_len = strlen(what),
	};

	return hl_event_append(stmts, j->conv_id, &e, j->now, &j->res);
}

static int cjob_exec(struct hl_store_job *job, sqlite3 *db,
		     sqlite3_stmt *const *stmts)
{
	struct contact_job *j = hl_container_of(job, struct contact_job, job);
	int rc;

	(void)db;
	switch (j->kind) {
	case CJ_LOAD:
		return hl_conv_each_open(stmts, collect_open, j);
	case CJ_START:
		rc = hl_conv_create(stmts, &j->intake, j->risk, j->now,
				    &j->conv_id);
		if (rc != 0)
			return rc;
		return hl_contact_session_put(stmts, j->hash, j->conv_id,
					      j->now, j->expires);
	case CJ_RESUME:
		rc = hl_contact_session_find(stmts, j->hash, j->now, &j->conv_id);
		if (rc != 0)
			return rc;
		rc = hl_conv_get(stmts, j->conv_id, &j->conv);
		if (rc != 0)
			return rc;
		return hl_contact_session_touch(stmts, j->hash, j->now,
						j->expires);
	case CJ_LEAVE:
		rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_ENDED, 0,
				       j->now);
		if (rc != 0)
			return rc;
		return hl_contact_session_delete(stmts, j->hash);
	case CJ_TAKE:
		rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_OFFERED,
				       j->staff_id, j->now);
		if (rc == 0)
			rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_ACTIVE,
					       j->staff_id, j->now);
		if (rc == 0)
			rc = system_event(stmts, j, "joined");
		return rc;
	case CJ_SEND: {
		struct hl_event_new e = {
			.kind = j->ev_kind, .sender = j->sender,
			.visibility = j->vis, .client_id = j->id,
			.payload = j->payload, .payload_len = j->payload_len,
		};
		return hl_event_append(stmts, j->conv_id, &e, j->now, &j->res);
	}
	case CJ_SINCE:
		return hl_event_since(stmts, j->conv_id, j->after_seq,
				      j->contact_view, 10000, collect_event, j);
	case CJ_REQUEUE:
		rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_QUEUED, 0,
				       j->now);
		if (rc == 0)
			rc = system_event(stmts, j, "counsellor_lost");
		return rc;
	case CJ_END:
		rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_ENDED, 0,
				       j->now);
		if (rc == 0)
			rc = system_event(stmts, j, j->staff_id ? "ended_by_counsellor"
								: "ended_by_contact");
		return rc;
	}
	return HL_EINVAL;
}

static void cjob_free(struct contact_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	free(j->open);
	free(j->payload);
	json_decref(j->events);
	sodium_memzero(j, sizeof(*j));
	free(j);
}

static void cjob_done(struct hl_store_job *job, int status)
{
	struct contact_job *j = hl_container_of(job, struct contact_job, job);

	j->then(j, status);
	cjob_free(j);
}

static struct contact_job *cjob_new(struct hl_contacts *c, enum cjob_kind kind,
				    struct hl_session *s, const char *id,
				    void (*then)(struct contact_job *, int))
{
	struct contact_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->job.exec = cjob_exec;
	j->job.done = cjob_done;
	j->kind = kind;
	j->c = c;
	j->then = then;
	j->now = now_ms();
	j->expires = j->now + (int64_t)c->srv->cfg.queue_resume_ttl * 1000;
	if (s) {
		j->s = s;
		hl_session_ref(s);
	}
	if (id)
		snprintf(j->id, sizeof(j->id), "%s", id);
	return j;
}

/* Submits j, answering and freeing it when the store refuses. */
static void cjob_submit(struct contact_job *j)
{
	int rc = hl_store_submit(&j->c->srv->store, &j->job);

	if (rc == 0)
		return;
	if (j->s) {
		j->s->contact_busy = false;
		hl_session_error(j->s, j->id,
				 rc == HL_EFULL ? HL_ERR_BUSY : HL_ERR_SHUTTING_DOWN,
				 NULL, NULL);
	}
	cjob_free(j);
}

/* ---- start-up ------------------------------------------------------------------ */

static void load_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	size_t queued = 0;

	if (status != 0) {
		c->init_status = status;
		return;
	}
	for (size_t i = 0; i < j->nopen; i++) {
		const struct hl_conv *row = &j->open[i];
		struct hl_conv_live *v = new_conv(c, row->id, row->risk,
						  row->language);

		if (!v) {
			c->init_status = HL_ENOMEM;
			return;
		}
		v->state = row->state;
		v->counsellor_id = row->counsellor_id;
		/* After a restart every counsellor must come back within the
		 * grace period, or their chats return to the queue. */
		if (row->state == HL_CONV_ACTIVE)
			v->lost_since_ms = now_ms();
		/* Queued and offered people wait again in their old order
		 * (created_at is when they joined); active chats are picked
		 * up by their counsellor. */
		if (row->state == HL_CONV_QUEUED || row->state == HL_CONV_OFFERED) {
			v->state = HL_CONV_QUEUED;
			if (hl_queue_push(&c->queue, &v->qe, row->created_at) == 0)
				queued++;
		}
	}
	hl_info("contacts.loaded", "open=%zu queued=%zu", j->nopen, queued);
	c->init_status = 1;
}

int hl_contacts_init(struct hl_contacts *c, struct hl_server *srv)
{
	struct contact_job *j;

	memset(c, 0, sizeof(*c));
	c->srv = srv;
	/* The cap is applied by contact.start (so a restart never turns
	 * away people who were already waiting). */
	hl_queue_init(&c->queue, 0, (int64_t)srv->cfg.queue_ageing * 1000);
	j = cjob_new(c, CJ_LOAD, NULL, NULL, load_done);
	if (!j)
		return HL_ENOMEM;
	if (hl_store_submit(&srv->store, &j->job) != 0) {
		cjob_free(j);
		return HL_ESTORE;
	}
	while (c->init_status == 0)
		uv_run(&srv->loop, UV_RUN_ONCE);
	if (c->init_status != 1)
		return c->init_status < 0 ? c->init_status : HL_ESTORE;
	uv_timer_init(&srv->loop, &c->tick);
	c->tick.data = c;
	c->tick_open = true;
	uv_timer_start(&c->tick, on_tick, 1000, 1000);
	return HL_OK;
}

void hl_contacts_stop(struct hl_contacts *c)
{
	if (c->tick_open) {
		c->tick_open = false;
		uv_close((uv_handle_t *)&c->tick, NULL);
	}
}

void hl_contacts_free(struct hl_contacts *c)
{
	while (c->convs)
		drop_conv(c, c->convs);
	hl_queue_free(&c->queue);
}

void hl_contacts_on_closed(struct hl_contacts *c, struct hl_session *s)
{
	(void)c;
	if (s->conv && s->conv->contact == s)
		s->conv->contact = NULL;
	s->conv = NULL;
}

/* ---- contact.start ---------------------------------------------------------------- */

/* Splits a comma-separated list into ids (pointing into buf, which is
 * modified). Returns the count, or -1 when there are more than max or one
 * is empty ("a,,b", ",a", "a,"). */
static int split_ids(char *buf, const char **ids, int max)
{
	int n = 0;
	char *p = buf;

	if (!buf[0])
		return 0;
	for (;;) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		if (!p[0] || n == max)
			return -1;
		ids[n++] = p;
		if (!comma)
			return n;
		p = comma + 1;
	}
}

static void start_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_session *s = j->s;
	struct hl_conv_live *v;
	char sec[sodium_base64_ENCODED_LEN(HL_TOKEN_BYTES,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char idstr[24];
	json_t *r;

	s->contact_busy = false;
	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_STORE_FAILED,
					 "we could not start your chat; please try again",
					 NULL);
		return;
	}
	v = new_conv(c, j->conv_id, j->risk, j->language);
	if (!v || hl_queue_push(&c->queue, &v->qe, j->now) != 0) {
		if (v)
			drop_conv(c, v);
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	v->state = HL_CONV_QUEUED;
	memcpy(v->resume_hash, j->hash, sizeof(v->resume_hash));
	v->have_resume = true;
	hl_info("contact.queued", "conn=%s conv=%lld risk=%d", s->id_str,
		(long long)v->id, v->risk);
	if (!s->wsi)
		return; /* gone already: the person can resume with the secret */
	v->contact = s;
	s->conv = v;
	sodium_bin2base64(sec, sizeof(sec), j->secret, sizeof(j->secret),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	r = hl_proto_reply("contact.started", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "resume", json_string(sec));
	json_object_set_new(r, "risk", json_integer(v->risk));
	sodium_memzero(sec, sizeof(sec));
	{
		uint32_t pos = hl_queue_display_position(
			hl_queue_position(&c->queue, &v->qe));
		int64_t est = hl_queue_estimate_s(&c->queue, pos, j->now);

		json_object_set_new(r, "position", json_integer(pos));
		json_object_set_new(r, "estimate_s",
				    est < 0 ? json_null() : json_integer(est));
		v->qe.told_position = pos;
		v->qe.told_estimate_s = est;
	}
	hl_session_send(s, r);
	json_decref(r);
}

void hl_contact_start(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	const struct hl_msg_contact_start *in = &m->u.start;
	const struct hl_taxonomy *tax = &s->srv->taxonomy;
	char topics[HL_CONV_TAGS_MAX + 1] = "", flags[160] = "";
	const char *ids[INTAKE_IDS_MAX * 2], *bad = NULL;
	int nt, nf, risk = 0;
	bool danger = false;
	struct contact_job *j;
	enum hl_age_band band = HL_AGE_NONE;

	if (s->conv || s->contact_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you are already in the queue or chatting", NULL);
		return;
	}
	snprintf(topics, sizeof(topics), "%s", in->topics ? in->topics : "");
	snprintf(flags, sizeof(flags), "%s", in->flags ? in->flags : "");
	nt = split_ids(topics, ids, INTAKE_IDS_MAX);
	nf = nt < 0 ? -1 : split_ids(flags, ids + nt, INTAKE_IDS_MAX);
	if (nt < 0 || nf < 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "topics and flags are comma-separated lists of "
				 "up to 16 ids",
				 nt < 0 ? "topics" : "flags");
		return;
	}
	for (int i = 0; i < nt + nf; i++) {
		enum hl_tax_kind want = i < nt ? HL_TAX_TAG : HL_TAX_FLAG;

		if (!hl_taxonomy_find(tax, ids[i], want)) {
			hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
					 "not an id of taxonomy.json",
					 i < nt ? "topics" : "flags");
			return;
		}
		if (i >= nt && strcmp(ids[i], "danger_now") == 0)
			danger = true;
	}
	if (hl_taxonomy_risk(tax, ids, (size_t)(nt + nf), &risk, &bad) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "not an id of taxonomy.json", "topics");
		return;
	}
	if (in->age_band && hl_age_band_parse(in->age_band, &band) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "age_band must be u13, 13_15, 16_17 or 18p",
				 "age_band");
		return;
	}
	if (hl_queue_length(&c->queue) >= (uint32_t)s->srv->cfg.queue_max) {
		hl_session_error(s, m->id, HL_ERR_BUSY,
				 "We're very busy right now and can't add you to "
				 "the queue. Please try again soon. If you are in "
				 "danger, call 999.",
				 NULL);
		return;
	}
	j = cjob_new(c, CJ_START, s, m->id, start_done);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	/* The ids were validated against the taxonomy; store them as sent. */
	snprintf(j->topics, sizeof(j->topics), "%s", in->topics ? in->topics : "");
	snprintf(j->language, sizeof(j->language), "%s",
		 in->language ? in->language : "");
	j->intake.topics = j->topics;
	j->intake.age_band = band;
	j->intake.danger_now = danger;
	j->intake.language = j->language[0] ? j->language : NULL;
	j->risk = risk;
	randombytes_buf(j->secret, sizeof(j->secret));
	hl_keys_hash_token(&s->srv->keys, j->secret, sizeof(j->secret), j->hash);
	s->contact_busy = true;
	cjob_submit(j);
}

/* ---- contact.resume --------------------------------------------------------------- */

static void resume_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_session *s = j->s;
	struct hl_conv_live *v;
	char idstr[24];
	json_t *r;

	s->contact_busy = false;
	if (!s->wsi)
		return;
	v = status == 0 ? find_conv(c, j->conv_id) : NULL;
	if (status == HL_ENOTFOUND || (status == 0 && !v)) {
		s->auth_failures++;
		hl_session_error(s, j->id, HL_ERR_AUTH_FAILED,
				 "this chat has ended or expired; you can start a "
				 "new one",
				 NULL);
		if (s->auth_failures >= 5)
			hl_session_close(s, 1008, "too many failed attempts");
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	/* A newer tab takes over: the older socket is told and closed. */
	if (v->contact && v->contact != s) {
		v->contact->conv = NULL;
		hl_session_close(v->contact, 1008, "resumed elsewhere");
	}
	v->contact = s;
	s->conv = v;
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	r = hl_proto_reply("contact.resumed", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "state", json_string(hl_conv_state_name(v->state)));
	if (v->qe.queued) {
		uint32_t pos = hl_queue_display_position(
			hl_queue_position(&c->queue, &v->qe));
		int64_t est = hl_queue_estimate_s(&c->queue, pos, j->now);

		json_object_set_new(r, "position", json_integer(pos));
		json_object_set_new(r, "estimate_s",
				    est < 0 ? json_null() : json_integer(est));
		v->qe.told_position = pos;
		v->qe.told_estimate_s = est;
	}
	hl_session_send(s, r);
	json_decref(r);
	hl_info("contact.resumed", "conn=%s conv=%lld", s->id_str,
		(long long)v->id);
}

void hl_contact_resume(struct hl_session *s, const struct hl_msg *m)
{
	unsigned char secret[HL_TOKEN_BYTES];
	struct contact_job *j;
	size_t n = 0;

	if (s->conv || s->contact_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this connection already has a chat", NULL);
		return;
	}
	if (sodium_base642bin(secret, sizeof(secret), m->u.cresume.resume,
			      strlen(m->u.cresume.resume), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof(secret)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "resume must be 32 bytes in base64url", "resume");
		return;
	}
	j = cjob_new(contacts_of(s), CJ_RESUME, s, m->id, resume_done);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	hl_keys_hash_token(&s->srv->keys, secret, sizeof(secret), j->hash);
	sodium_memzero(secret, sizeof(secret));
	s->contact_busy = true;
	cjob_submit(j);
}

/* ---- contact.leave ----------------------------------------------------------------- */

static void leave_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_session *s = j->s;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	json_t *r;

	s->contact_busy = false;
	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	if (v)
		drop_conv(c, v);
	hl_info("contact.left", "conn=%s conv=%lld", s->id_str,
		(long long)j->conv_id);
	if (!s->wsi)
		return;
	r = hl_proto_reply("contact.left", j->id);
	hl_session_send(s, r);
	json_decref(r);
}

void hl_contact_leave(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = s->conv;
	struct contact_job *j;

	if (!v || s->contact_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "there is no chat to leave", NULL);
		return;
	}
	if (v->state != HL_CONV_QUEUED) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "a counsellor is with you: end the chat with chat.end",
				 NULL);
		return;
	}
	j = cjob_new(contacts_of(s), CJ_LEAVE, s, m->id, leave_done);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->conv_id = v->id;
	memcpy(j->hash, v->resume_hash, sizeof(j->hash));
	s->contact_busy = true;
	cjob_submit(j);
}

/* ---- queue.stats (supervisors) ------------------------------------------------------ */

void hl_queue_stats(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	uint32_t counts[HL_RISK__COUNT];
	json_t *r = hl_proto_reply("queue.stats", m->id), *by = json_object();
	static const char *const names[HL_RISK__COUNT] = {"standard", "elevated",
							   "high", "immediate"};
	int64_t now = now_ms();

	hl_queue_counts(&c->queue, counts);
	for (int i = 0; i < HL_RISK__COUNT; i++)
		json_object_set_new(by, names[i], json_integer(counts[i]));
	json_object_set_new(r, "waiting", json_integer(hl_queue_length(&c->queue)));
	json_object_set_new(r, "by_risk", by);
	json_object_set_new(r, "longest_wait_s",
			    json_integer(hl_queue_longest_wait_ms(&c->queue, now) / 1000));
	json_object_set_new(r, "max", json_integer(s->srv->cfg.queue_max));
	hl_session_send(s, r);
	json_decref(r);
}

/* ---- staff take a chat; both sides chat ---------------------------------------- */

/*
 * The one place anything is sent to a young person about their
 * conversation. Internal events (visibility staff: notes, tags, transfers)
 * are refused here, whatever the caller, so no staff-only event can reach a
 * contact socket.
 */
static void to_contact(struct hl_conv_live *v, json_t *obj,
		       enum hl_event_vis vis)
{
	if (vis != HL_VIS_ALL) {
		hl_error("contact.internal_blocked", "conv=%lld", (long long)v->id);
		return;
	}
	if (v->contact)
		hl_session_send(v->contact, obj);
}

/* Sends obj to every socket of staff member staff_id. */
static void send_staff(struct hl_server *srv, int64_t staff_id, json_t *obj)
{
	for (struct hl_session *x = srv->sessions; x; x = x->next)
		if (x->role == HL_ROLE_STAFF && x->staff_id == staff_id)
			hl_session_send(x, obj);
}

/* Parses a conversation id string; 0 when not a positive decimal. */
static int64_t parse_id(const char *s)
{
	int64_t v = 0;

	if (!s || !*s || *s == '0')
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/*
 * The conversation a chat request is about, after the party check: a
 * contact may only name its own (or none), a member of staff only one they
 * hold. Answers and returns NULL otherwise. The reply never tells a stranger
 * whether the id exists.
 */
static struct hl_conv_live *party_conv(struct hl_session *s,
				       const struct hl_msg *m)
{
	struct hl_conv_live *v;
	int64_t id = parse_id(m->u.chat.conversation);

	if (s->role == HL_ROLE_CONTACT) {
		v = s->conv;
		if (!v || (m->u.chat.conversation && id != v->id)) {
			hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
					 "not your conversation", "conversation");
			return NULL;
		}
		return v;
	}
	v = id ? find_conv(contacts_of(s), id) : NULL;
	if (!v || v->counsellor_id != s->staff_id) {
		hl_warn("chat.not_party", "conn=%s staff=%lld", s->id_str,
			(long long)s->staff_id);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "not your conversation", "conversation");
		return NULL;
	}
	return v;
}

static void take_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	char idstr[24];
	json_t *r, *ev;

	if (v)
		v->busy = false;
	if (status != 0 || !v) {
		if (v && hl_queue_push_front(&c->queue, &v->qe) == 0)
			v->state = HL_CONV_QUEUED;
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_STORE_FAILED,
					 "could not take that chat; try again", NULL);
		return;
	}
	v->state = HL_CONV_ACTIVE;
	v->counsellor_id = j->staff_id;
	hl_info("chat.taken", "conv=%lld staff=%lld", (long long)v->id,
		(long long)j->staff_id);
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	ev = event_json(v->id, j->res.seq, j->res.at, "system", "system",
			"joined", 6, true);
	to_contact(v, ev, HL_VIS_ALL);
	json_decref(ev);
	if (!s->wsi)
		return;
	r = hl_proto_reply("queue.taken", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "risk", json_integer(v->risk));
	json_object_set_new(r, "language", json_string(v->qe.language));
	json_object_set_new(r, "seq", json_integer(j->res.seq));
	hl_session_send(s, r);
	json_decref(r);
}

void hl_queue_take(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);
	struct hl_queue_entry *e;
	struct hl_conv_live *v;
	struct contact_job *j;
	int held = 0;

	if (!(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR))) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only counsellors take chats", "type");
		return;
	}
	for (v = c->convs; v; v = v->next)
		held += v->counsellor_id == s->staff_id &&
			v->state == HL_CONV_ACTIVE;
	if (held >= st->row.capacity) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you are at your chat capacity", NULL);
		return;
	}
	e = hl_queue_next_for(&c->queue, st->row.languages);
	if (!e) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "nobody is waiting whom you can take", NULL);
		return;
	}
	v = hl_container_of(e, struct hl_conv_live, qe);
	j = cjob_new(c, CJ_TAKE, s, m->id, take_done);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	/* Out of the queue at once, so nobody else can take it meanwhile. */
	hl_queue_remove(&c->queue, &v->qe, true, j->now);
	v->state = HL_CONV_OFFERED;
	v->busy = true;
	j->conv_id = v->id;
	j->staff_id = s->staff_id;
	cjob_submit(j);
}

static void send_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	json_t *r, *ev;

	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id,
					 status == HL_ECLOSED ? HL_ERR_BAD_STATE
							      : HL_ERR_STORE_FAILED,
					 status == HL_ECLOSED
						 ? "this chat has ended"
						 : "not sent: it could not be stored; "
						   "send it again",
					 NULL);
		return;
	}
	/* Acknowledged only now that it is committed; delivered once. */
	if (s->wsi) {
		r = hl_proto_reply("chat.ack", j->id);
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		json_object_set_new(r, "at", json_integer(j->res.at));
		if (j->res.duplicate)
			json_object_set_new(r, "duplicate", json_true());
		hl_session_send(s, r);
		json_decref(r);
	}
	if (j->res.duplicate || !v)
		return;
	if (j->staff_id && j->vis == HL_VIS_ALL) {
		ev = event_json(v->id, j->res.seq, j->res.at, j->ev_kind,
				j->sender, j->payload, j->payload_len, true);
		to_contact(v, ev, j->vis);
		json_decref(ev);
	} else if (!j->staff_id && v->counsellor_id) {
		ev = event_json(v->id, j->res.seq, j->res.at, j->ev_kind,
				j->sender, j->payload, j->payload_len, false);
		send_staff(c->srv, v->counsellor_id, ev);
		json_decref(ev);
	}
}

void hl_chat_send(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	const char *p = m->u.chat.payload;
	bool note = m->type == HL_MSG_CHAT_NOTE;
	struct contact_job *j;
	size_t cap, n = 0;

	if (!v)
		return;
	if (note && s->role != HL_ROLE_STAFF) { /* dispatch already refuses */
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN, NULL, "type");
		return;
	}
	if (v->state != HL_CONV_ACTIVE && s->role == HL_ROLE_STAFF) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	j = cjob_new(contacts_of(s), CJ_SEND, s, m->id, send_done);
	cap = strlen(p) / 4 * 3 + 3;
	if (j)
		j->payload = malloc(cap);
	if (!j || !j->payload) {
		if (j)
			cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	if (sodium_base642bin(j->payload, cap, p, strlen(p), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n == 0 || n > HL_EVENT_PAYLOAD_MAX) {
		cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "payload must be base64url without padding",
				 "payload");
		return;
	}
	j->payload_len = n;
	j->conv_id = v->id;
	j->ev_kind = note ? "note" : "msg";
	j->vis = note ? HL_VIS_STAFF : HL_VIS_ALL;
	if (s->role == HL_ROLE_STAFF) {
		j->staff_id = s->staff_id;
		snprintf(j->sender, sizeof(j->sender), "staff:%lld",
			 (long long)s->staff_id);
	} else {
		snprintf(j->sender, sizeof(j->sender), "contact");
	}
	cjob_submit(j);
}

static void sync_done(struct contact_job *j, int status)
{
	struct hl_session *s = j->s;
	size_t i;
	json_t *ev, *r;

	if (!s->wsi)
		return;
	if (status != 0) {
		hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	json_array_foreach(j->events, i, ev)
		hl_session_send(s, ev);
	r = hl_proto_reply("chat.synced", j->id);
	json_object_set_new(r, "count", json_integer((json_int_t)i));
	hl_session_send(s, r);
	json_decref(r);
}

void hl_chat_sync(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	struct contact_job *j;

	if (!v)
		return;
	j = cjob_new(contacts_of(s), CJ_SINCE, s, m->id, sync_done);
	if (!j || !(j->events = json_array())) {
		if (j)
			cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->conv_id = v->id;
	j->after_seq = m->u.chat.last_seq;
	j->contact_view = s->role == HL_ROLE_CONTACT;
	cjob_submit(j);
}

static void end_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	json_t *r, *ev;

	if (v)
		v->busy = false;
	if (status != 0 || !v) {
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_STORE_FAILED, NULL, NULL);
		return;
	}
	if (s->wsi) {
		r = hl_proto_reply("chat.ended", j->id);
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		hl_session_send(s, r);
		json_decref(r);
	}
	ev = event_json(v->id, j->res.seq, j->res.at, "system", "system",
			j->staff_id ? "ended_by_counsellor" : "ended_by_contact",
			j->staff_id ? 19 : 16, true);
	if (v->contact != s)
		to_contact(v, ev, HL_VIS_ALL);
	json_decref(ev);
	if (v->counsellor_id && !j->staff_id) {
		ev = event_json(v->id, j->res.seq, j->res.at, "system", "system",
				"ended_by_contact", 16, false);
		send_staff(c->srv, v->counsellor_id, ev);
		json_decref(ev);
	}
	hl_info("chat.ended", "conv=%lld by=%s", (long long)v->id,
		j->staff_id ? "staff" : "contact");
	drop_conv(c, v);
}

void hl_chat_end(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	struct contact_job *j;

	if (!v)
		return;
	if (v->busy || v->state != HL_CONV_ACTIVE) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	j = cjob_new(contacts_of(s), CJ_END, s, m->id, end_done);
	if (!j) {
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->conv_id = v->id;
	j->staff_id = s->role == HL_ROLE_STAFF ? s->staff_id : 0;
	v->busy = true;
	cjob_submit(j);
}

/* ---- a counsellor who does not come back ----------------------------------------- */

void hl_contacts_staff_presence(struct hl_contacts *c, int64_t staff_id,
				bool gone)
{
	int64_t now = now_ms();

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->counsellor_id == staff_id && v->state == HL_CONV_ACTIVE)
			v->lost_since_ms = gone ? now : 0;
}

static void requeue_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	json_t *ev;

	if (!v)
		return;
	v->busy = false;
	if (status != 0) {
		v->lost_since_ms = now_ms(); /* try again after another grace */
		return;
	}
	v->state = HL_CONV_QUEUED;
	v->counsellor_id = 0;
	v->lost_since_ms = 0;
	hl_queue_push_front(&c->queue, &v->qe);
	hl_warn("chat.requeued", "conv=%lld why=counsellor_lost", (long long)v->id);
	ev = event_json(v->id, j->res.seq, j->res.at, "system", "system",
			"counsellor_lost", 15, true);
	to_contact(v, ev, HL_VIS_ALL);
	json_decref(ev);
}

/* The counsellor stayed away past the grace period: back to the front of
 * the queue, and the young person is told. */
static void requeue(struct hl_contacts *c, struct hl_conv_live *v)
{
	struct contact_job *j = cjob_new(c, CJ_REQUEUE, NULL, NULL, requeue_done);

	if (!j)
		return;
	j->conv_id = v->id;
	v->busy = true;
	if (hl_store_submit(&c->srv->store, &j->job) != 0) {
		v->busy = false;
		cjob_free(j);
	}
}

/* ---- typing and read receipts: relayed, never stored ------------------------------ */

void hl_chat_signal(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	bool typing = m->type == HL_MSG_CHAT_TYPING;
	char idstr[24];
	json_t *o;

	if (!v)
		return;
	if (v->state != HL_CONV_ACTIVE) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	o = hl_proto_reply(typing ? "chat.typing" : "chat.read", NULL);
	json_object_set_new(o, "conversation", json_string(idstr));
	if (!typing)
		json_object_set_new(o, "seq", json_integer(m->u.chat.last_seq));
	if (s->role == HL_ROLE_STAFF) {
		json_object_set_new(o, "from", json_string("counsellor"));
		to_contact(v, o, HL_VIS_ALL);
	} else if (v->counsellor_id) {
		json_object_set_new(o, "from", json_string("contact"));
		send_staff(s->srv, v->counsellor_id, o);
	}
	json_decref(o);
	/* No reply: these are fire-and-forget signals (an error is the only
	 * answer), so a typing client does not double its traffic. */
}
