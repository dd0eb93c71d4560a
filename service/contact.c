/* contact.c: young people's contact sessions, intake and the live queue.
 * Every change is a store job; the loop's tables change only once that job
 * has committed, so what a young person is told is always what is stored. */
#include "contact.h"
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

static void on_tick(uv_timer_t *t)
{
	struct hl_contacts *c = t->data;

	hl_queue_poll_changes(&c->queue, now_ms(), told, NULL);
}

/* ---- store jobs ------------------------------------------------------------ */

enum cjob_kind { CJ_LOAD, CJ_START, CJ_RESUME, CJ_LEAVE };

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
	}
	return HL_EINVAL;
}

static void cjob_free(struct contact_job *j)
{
	if (j->s)
		hl_session_unref(j->s);
	free(j->open);
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
