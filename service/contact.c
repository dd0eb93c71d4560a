/* contact.c: young people's contact sessions, intake and the live queue.
 * Every change is a store job; the loop's tables change only once that job
 * has committed, so what a young person is told is always what is stored. */
#include "contact.h"
#include "wire.h"
#include "escalation.h"
#include "audit.h"
#include "e2e.h"
#include "trust.h"
#include "auth.h"
#include "hours.h"
#include "inbox.h"
#include "routing.h"
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
/* At most this many events in one chat.sync or contact.returned; a page
 * also stops at a quarter of ws.outq_max bytes (hl_session_page_budget). */
#define HISTORY_PAGE_MAX 10000

static struct hl_contacts *contacts_of(struct hl_session *s)
{
	return &s->srv->contacts;
}

/* The live conversations by id: every chat message, offer and leave
 * finds its conversation here, so it must not cost a walk of them all
 * (10,000 waiting, or a helpline's open chats). */
static size_t bucket_of(const struct hl_contacts *c, int64_t id)
{
	uint64_t h = (uint64_t)id * UINT64_C(0x9e3779b97f4a7c15);

	return (size_t)(h >> 32) & (c->nbuckets - 1);
}

static struct hl_conv_live *find_conv(struct hl_contacts *c, int64_t id)
{
	if (!c->nbuckets)
		return NULL;
	for (struct hl_conv_live *v = c->by_id[bucket_of(c, id)]; v; v = v->chain)
		if (v->id == id)
			return v;
	return NULL;
}

/* Doubles the buckets when conversations outnumber them. */
static int grow_buckets(struct hl_contacts *c)
{
	size_t n = c->nbuckets ? c->nbuckets * 2 : 64;
	struct hl_conv_live **b = calloc(n, sizeof(*b));

	if (!b)
		return HL_ENOMEM;
	free(c->by_id);
	c->by_id = b;
	c->nbuckets = n;
	for (struct hl_conv_live *v = c->convs; v; v = v->next) {
		size_t k = bucket_of(c, v->id);

		v->chain = b[k];
		b[k] = v;
	}
	return 0;
}

static struct hl_conv_live *new_conv(struct hl_contacts *c, int64_t id,
				     int risk, const char *language)
{
	struct hl_conv_live *v;
	size_t k;

	/* Without more buckets the chains grow longer: still correct. */
	if (c->nconvs >= c->nbuckets && grow_buckets(c) != 0 && !c->nbuckets)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->id = id;
	v->risk = risk;
	v->qe.id = (uint64_t)id;
	v->qe.risk = (enum hl_risk)risk;
	snprintf(v->qe.language, sizeof(v->qe.language), "%s",
		 language ? language : "");
	v->next = c->convs;
	if (c->convs)
		c->convs->prev = v;
	c->convs = v;
	k = bucket_of(c, id);
	v->chain = c->by_id[k];
	c->by_id[k] = v;
	c->nconvs++;
	return v;
}

static void drop_conv(struct hl_contacts *c, struct hl_conv_live *v)
{
	struct hl_conv_live **pp = &c->by_id[bucket_of(c, v->id)];

	hl_queue_remove(&c->queue, &v->qe, false, 0);
	while (*pp != v)
		pp = &(*pp)->chain;
	*pp = v->chain;
	if (v->prev)
		v->prev->next = v->next;
	else
		c->convs = v->next;
	if (v->next)
		v->next->prev = v->prev;
	c->nconvs--;
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
	int64_t now = hl_now_ms(),
		grace = (int64_t)c->srv->cfg.queue_counsellor_grace * 1000;

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->state == HL_CONV_ACTIVE && v->lost_since_ms && !v->busy &&
		    now - v->lost_since_ms >= grace)
			requeue(c, v);
	hl_routing_tick(c, now);
	hl_queue_poll_changes(&c->queue, now, told, NULL);
}

/* ---- store jobs ------------------------------------------------------------ */

enum cjob_kind {
	CJ_LOAD, CJ_START, CJ_RESUME, CJ_LEAVE, CJ_TAKE, CJ_SEND, CJ_SINCE,
	CJ_END, CJ_REQUEUE, CJ_OFFER, CJ_UNOFFER, CJ_TRANSFER, CJ_JOIN,
	CJ_WRAPUP, CJ_RECEIPT, CJ_SET_RETURN, CJ_RETURN,
};

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
	const char *ev_kind;           /* CJ_SEND: "msg", "note", "hello", ... */
	enum hl_event_e2e e2e;         /* CJ_SEND: what to check (conversation.h) */
	uint8_t dir;                   /* CJ_SEND: the sender's direction */
	const unsigned char *root_pk;  /* CJ_SEND accept: the organisation root */
	enum hl_event_vis vis;         /* CJ_SEND: note = staff only */
	unsigned char *payload;        /* CJ_SEND: decoded, malloc'd */
	size_t payload_len;
	char *payload_text;            /* CJ_SEND: as received (base64url),
					* relayed as is, inside payload's
					* allocation; NULL = encode it */
	struct hl_event_result res;    /* CJ_SEND / CJ_TAKE / CJ_END */
	struct hl_event_result res2;   /* CJ_TRANSFER: the announcement */
	bool was_offered;              /* CJ_TAKE: accepting an offer */
	bool announce;                 /* CJ_TRANSFER */
	int64_t to_staff;              /* CJ_TRANSFER */
	int64_t delivered, read;       /* CJ_RECEIPT */
	bool contact_side;             /* CJ_RECEIPT */
	char why[16];                  /* CJ_UNOFFER */
	char outcome[HL_CONV_OUTCOME_MAX + 1]; /* CJ_WRAPUP */
	char tags[HL_CONV_TAGS_MAX + 1];       /* CJ_WRAPUP */
	int64_t after_seq;             /* CJ_SINCE */
	bool contact_view;             /* CJ_SINCE */
	bool esc_read;                 /* CJ_SINCE: not a party; by escalation */
	bool fresh;                    /* CJ_SINCE esc_read: TOTP re-entered */
	enum hl_err_code refusal;      /* CJ_SINCE esc_read: refused (HL_EINVAL) */
	json_t *events;                /* CJ_SINCE / CJ_RETURN: chat.event objects */
	size_t budget, used;           /* CJ_SINCE / CJ_RETURN: the page's bytes */
	bool more;                     /* CJ_SINCE / CJ_RETURN: a page was full */
	int64_t up_to;                 /* CJ_SINCE / CJ_RETURN: its last seq */
	json_t *wraps;                 /* CJ_RETURN: the return key's wraps, */
	struct hl_wraps_page wraps_page; /* their first page (key.wraps: more) */
	unsigned char sign_pk[32], box_pk[32]; /* CJ_SET_RETURN / CJ_RETURN */
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

/* Who an event is from, as its recipient sees it. contact_view hides staff
 * identities: the young person sees "counsellor", never a staff id. */
static const char *event_from(const char *sender, bool contact_view)
{
	return strcmp(sender, "contact") == 0  ? "contact"
	       : strcmp(sender, "system") == 0 ? "system"
	       : contact_view		       ? "counsellor"
					       : sender;
}

/* The wire form of an event (see event_from for contact_view). */
static json_t *event_json(int64_t conv_id, int64_t seq, int64_t at,
			  const char *kind, const char *sender,
			  const void *payload, size_t len,
			  const unsigned char *chain, bool contact_view)
{
	char idstr[24];
	const char *from = event_from(sender, contact_view);
	json_t *o = hl_proto_reply("chat.event", NULL);

	snprintf(idstr, sizeof(idstr), "%lld", (long long)conv_id);
	json_object_set_new(o, "conversation", json_string(idstr));
	json_object_set_new(o, "seq", json_integer(seq));
	json_object_set_new(o, "at", json_integer(at));
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "from", json_string(from));
	if (len)
		json_object_set_new(o, "payload", hl_proto_b64_json(payload, len));
	/* The hash chain's head after this event (docs/crypto.md). */
	if (chain)
		json_object_set_new(o, "chain", hl_proto_b64_json(chain, HL_E2E_KEY));
	return o;
}

/*
 * Runs on the writer thread: builds the wire objects there, so the loop
 * only sends them. One page of history: up to HISTORY_PAGE_MAX events and,
 * after the first, up to j->budget bytes of them as sent. Without the
 * bound a long chat's history outgrows the reader's queue (ws.outq_max)
 * in one go, and the reader would be closed as too slow on every try. The
 * walk asks for one event more than a page holds, so more is set only
 * when one is left.
 */
static int collect_event(const struct hl_event *ev, void *arg)
{
	struct contact_job *j = arg;
	size_t n = json_array_size(j->events);
	size_t cost = hl_wire_max(ev->payload_len);

	if (n == HISTORY_PAGE_MAX || !hl_proto_page_fits(&j->used, j->budget, cost)) {
		j->more = true;
		return 1;
	}
	json_array_append_new(j->events,
			      event_json(ev->conv_id, ev->seq, ev->at, ev->kind,
					 ev->sender, ev->payload,
					 ev->payload_len, ev->chain,
					 j->contact_view));
	j->up_to = ev->seq;
	return 0;
}

/* Reads a page of j's history after after_seq (collect_event); up_to is
 * then the seq to ask on from, or the conversation's last when all came. */
static int read_history(sqlite3_stmt *const *stmts, struct contact_job *j,
			int64_t after_seq)
{
	int rc = hl_event_since(stmts, j->conv_id, after_seq, j->contact_view,
				HISTORY_PAGE_MAX + 1, collect_event, j);

	if (rc == 0 && !j->more)
		j->up_to = j->conv.last_seq > after_seq ? j->conv.last_seq
							 : after_seq;
	return rc;
}

/* Appends an event for j's conversation: the STAMP key signs a checkpoint
 * every e2e.checkpoint_every events and when the conversation ends. */
static int append(sqlite3_stmt *const *stmts, const struct contact_job *j,
		  struct hl_event_new *e, struct hl_event_result *res)
{
	e->stamp_sk = hl_trust_stamp_sk(&j->c->srv->trust);
	e->chains = hl_trust_chains(&j->c->srv->trust);
	e->checkpoint_every = j->c->srv->cfg.e2e_checkpoint_every;
	return hl_event_append(stmts, j->conv_id, e, j->now, res);
}

/* Appends a contact-visible system event (joined, ended, ...). */
static int system_event(sqlite3_stmt *const *stmts, struct contact_job *j,
			const char *what)
{
	struct hl_event_new e = {
		.kind = "system", .sender = "system", .visibility = HL_VIS_ALL,
		.payload = what, .payload_len = strlen(what),
		.checkpoint_now = strncmp(what, "ended", 5) == 0,
	};

	return append(stmts, j, &e, &j->res);
}

/* Audits a staff action on a conversation (who, what, which; never
 * content). */
static int audit_conv(sqlite3_stmt *const *stmts, const struct contact_job *j,
		      const char *action, int64_t target)
{
	char detail[48];
	struct hl_audit_entry e = {
		.at_ms = j->now, .actor = j->staff_id, .action = action,
		.target = target, .detail = detail,
	};

	snprintf(detail, sizeof(detail), "{\"conversation\":%lld}",
		 (long long)j->conv_id);
	return hl_audit_append(stmts, &e, NULL) == 0 ? 0 : HL_ESTORE;
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
		rc = j->was_offered ? 0
				    : hl_conv_set_state(stmts, j->conv_id,
							HL_CONV_OFFERED,
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
			.e2e = j->e2e, .dir = j->dir, .root_pk = j->root_pk,
			.now_s = j->now / 1000,
			.roles_mask = (1u << HL_CERT_COUNSELLOR_DEVICE) |
				      (1u << HL_CERT_SUPERVISOR_DEVICE),
		};
		return append(stmts, j, &e, &j->res);
	}
	case CJ_SINCE:
		if (j->esc_read) {
			rc = hl_escalation_reader(db, j->conv_id, j->staff_id);
			if (rc < 0)
				return rc;
			if (rc == HL_ESC_READER_NONE ||
			    (rc == HL_ESC_READER_CLAIMER && !j->fresh)) {
				j->refusal = rc == HL_ESC_READER_NONE
						     ? HL_ERR_FORBIDDEN
						     : HL_ERR_REAUTH_REQUIRED;
				return HL_EINVAL;
			}
			if (rc == HL_ESC_READER_CLAIMER) {
				char detail[80];
				struct hl_audit_entry a = {
					.at_ms = j->now, .actor = j->staff_id,
					.action = "escalation.read", .detail = detail,
				};

				snprintf(detail, sizeof(detail),
					 "{\"conversation\":%lld,\"after\":%lld}",
					 (long long)j->conv_id, (long long)j->after_seq);
				if (hl_audit_append(stmts, &a, NULL) != 0)
					return HL_ESTORE;
			}
		}
		rc = hl_conv_get(stmts, j->conv_id, &j->conv);
		if (rc != 0)
			return rc;
		return read_history(stmts, j, j->after_seq);
	case CJ_OFFER:
		return hl_conv_set_state(stmts, j->conv_id, HL_CONV_OFFERED,
					 j->staff_id, j->now);
	case CJ_UNOFFER:
		return hl_conv_set_state(stmts, j->conv_id, HL_CONV_QUEUED, 0,
					 j->now);
	case CJ_TRANSFER: {
		struct hl_event_new e = {
			.kind = "transfer", .sender = j->sender,
			.visibility = HL_VIS_STAFF, .client_id = j->id,
			.payload = j->payload, .payload_len = j->payload_len,
		};
		rc = hl_conv_transfer(stmts, j->conv_id, j->staff_id,
				      j->to_staff, j->now);
		if (rc == 0)
			rc = append(stmts, j, &e, &j->res);
		if (rc == 0)
			rc = audit_conv(stmts, j, "chat.transfer", j->to_staff);
		if (rc == 0 && j->announce) {
			struct hl_event_new a = {
				.kind = "system", .sender = "system",
				.visibility = HL_VIS_ALL, .payload = "transferred",
				.payload_len = 11,
			};
			rc = append(stmts, j, &a, &j->res2);
		}
		return rc;
	}
	case CJ_JOIN: {
		struct hl_event_new e = {
			.kind = "supervisor_joined", .sender = j->sender,
			.visibility = HL_VIS_STAFF,
		};
		rc = hl_conv_set_supervisor(stmts, j->conv_id, j->staff_id);
		if (rc == 0)
			rc = append(stmts, j, &e, &j->res);
		if (rc == 0)
			rc = audit_conv(stmts, j, "chat.join", 0);
		return rc;
	}
	case CJ_WRAPUP:
		rc = hl_conv_get(stmts, j->conv_id, &j->conv);
		if (rc != 0)
			return rc;
		if (j->conv.counsellor_id != j->staff_id &&
		    j->conv.supervisor_id != j->staff_id)
			return HL_ENOTFOUND; /* not theirs: same as missing */
		if (j->conv.state == HL_CONV_WRAPPED)
			return HL_ECONSTRAINT;
		if (j->conv.state != HL_CONV_ENDED)
			return HL_EINVAL;
		if (j->payload_len) {
			struct hl_event_new e = {
				.kind = "wrapup", .sender = j->sender,
				.visibility = HL_VIS_STAFF, .client_id = j->id,
				.payload = j->payload,
				.payload_len = j->payload_len,
			};
			rc = append(stmts, j, &e, &j->res);
			if (rc != 0)
				return rc;
		}
		return hl_conv_wrap_up(stmts, j->conv_id, j->outcome, j->tags,
				       j->now);
	case CJ_RECEIPT:
		return hl_conv_receipt(stmts, j->conv_id, j->contact_side,
				       j->delivered, j->read);
	case CJ_REQUEUE:
		rc = hl_conv_set_state(stmts, j->conv_id, HL_CONV_QUEUED, 0,
				       j->now);
		if (rc == 0)
			rc = system_event(stmts, j, "counsellor_lost");
		return rc;
	case CJ_SET_RETURN:
		return hl_conv_set_return(stmts, j->conv_id, j->sign_pk, j->box_pk);
	case CJ_RETURN:
		rc = hl_conv_by_return(stmts, j->sign_pk, &j->conv_id);
		if (rc == 0)
			rc = hl_conv_get(stmts, j->conv_id, &j->conv);
		if (rc == 0)
			rc = read_history(stmts, j, 0);
		if (rc == 0)
			rc = hl_trust_wraps_json(db, j->conv_id, 0, &j->wraps_page,
						 j->wraps);
		/* An open chat gets a new resume secret; the old ones end. */
		if (rc == 0 && j->conv.state != HL_CONV_ENDED &&
		    j->conv.state != HL_CONV_WRAPPED) {
			rc = hl_contact_session_drop_conv(stmts, j->conv_id);
			if (rc == 0)
				rc = hl_contact_session_put(stmts, j->hash,
							    j->conv_id, j->now,
							    j->expires);
		}
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
	free(j->payload); /* and payload_text, which is inside it */
	json_decref(j->events);
	json_decref(j->wraps);
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
	/* cjob_exec of CJ_SEND is one hl_event_append and nothing else. */
	j->job.append_only = kind == CJ_SEND;
	j->kind = kind;
	j->c = c;
	j->then = then;
	j->now = hl_now_ms();
	j->expires = j->now + (int64_t)c->srv->cfg.queue_resume_ttl * 1000;
	if (s) {
		j->s = s;
		hl_session_ref(s);
	}
	if (id) { /* cut to fit, as snprintf would: ids are checked before */
		size_t n = strnlen(id, sizeof(j->id) - 1);

		memcpy(j->id, id, n);
	}
	return j;
}

/* A job for request m on s; NULL (after answering "internal") when out
 * of memory. */
static struct contact_job *request_job(struct hl_session *s,
				       const struct hl_msg *m,
				       enum cjob_kind kind,
				       void (*then)(struct contact_job *, int))
{
	struct contact_job *j = cjob_new(contacts_of(s), kind, s, m->id, then);

	if (!j)
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
	return j;
}

/* Decodes base64url text into j's payload. false, after answering
 * bad_field naming field and freeing j, when it is not 1 to
 * HL_EVENT_PAYLOAD_MAX bytes of base64url. */
static bool job_payload(struct contact_job *j, const char *text,
			const char *field)
{
	char why[64];

	/* The decoder takes only canonical base64url (no padding, zero spare
	 * bits), so this text is exactly what encoding the bytes would give:
	 * the event relays it instead (a copy now saves an encoding later),
	 * kept in the payload's allocation. */
	if (hl_proto_b64_decode_keep(text, HL_EVENT_PAYLOAD_MAX, &j->payload,
				     &j->payload_len, &j->payload_text) == 0)
		return true;
	snprintf(why, sizeof(why), "%s must be base64url without padding", field);
	hl_session_error(j->s, j->id, HL_ERR_BAD_FIELD, why, field);
	cjob_free(j);
	return false;
}

/* Submits j, answering and freeing it when the store refuses. */
static void cjob_submit(struct contact_job *j)
{
	/* Refused (queue full, or closing): the job's own completion runs
	 * with HL_EFULL, so whatever it reserved (busy flags, a queue place)
	 * is undone in one place, and the client is told "busy". */
	if (hl_store_submit(&j->c->srv->store, &j->job) != 0)
		cjob_done(&j->job, HL_EFULL);
}

/* The error a client gets for a job that failed with status. */
static enum hl_err_code store_err(int status)
{
	return status == HL_EFULL ? HL_ERR_BUSY : HL_ERR_STORE_FAILED;
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
		v->supervisor_id = row->supervisor_id;
		v->created_at = row->created_at;
		v->age_band = row->age_band;
		v->danger_now = row->danger_now;
		snprintf(v->topics, sizeof(v->topics), "%s", row->topics);
		/* After a restart every counsellor must come back within the
		 * grace period, or their chats return to the queue. */
		if (row->state == HL_CONV_ACTIVE)
			v->lost_since_ms = hl_now_ms();
		/* Queued and offered people wait again in their old order
		 * (created_at is when they joined); active chats are picked
		 * up by their counsellor. */
		if (row->state == HL_CONV_QUEUED || row->state == HL_CONV_OFFERED) {
			v->state = HL_CONV_QUEUED;
			if (hl_queue_push(&c->queue, &v->qe, row->created_at) == 0)
				queued++;
		}
		/* An offer does not survive a restart: stored back as queued,
		 * so it can be offered again. */
		if (row->state == HL_CONV_OFFERED) {
			v->offer_staff = row->counsellor_id;
			v->counsellor_id = 0;
			hl_contacts_unoffer(c, v, "restart");
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
	hl_routing_init(c);
	uv_timer_start(&c->tick, on_tick, 1000, 1000);
	return HL_OK;
}

void hl_contacts_stop(struct hl_contacts *c)
{
	hl_routing_stop(c);
	if (c->tick_open) {
		c->tick_open = false;
		uv_close((uv_handle_t *)&c->tick, NULL);
	}
}

void hl_contacts_free(struct hl_contacts *c)
{
	while (c->convs)
		drop_conv(c, c->convs);
	free(c->by_id);
	c->by_id = NULL;
	c->nbuckets = 0;
	hl_queue_free(&c->queue);
	hl_routing_free(c);
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

/* Adds v's shown position and wait estimate to r and remembers them as
 * told, so the next push only goes out when they change. */
static void add_position(struct hl_contacts *c, struct hl_conv_live *v,
			 json_t *r, int64_t now)
{
	uint32_t pos = hl_queue_display_position(
		hl_queue_position(&c->queue, &v->qe));
	int64_t est = hl_queue_estimate_s(&c->queue, pos, now);

	json_object_set_new(r, "position", json_integer(pos));
	json_object_set_new(r, "estimate_s",
			    est < 0 ? json_null() : json_integer(est));
	v->qe.told_position = pos;
	v->qe.told_estimate_s = est;
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
			hl_session_error(s, j->id, store_err(status),
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
	v->created_at = j->now;
	v->age_band = j->intake.age_band;
	v->danger_now = j->intake.danger_now;
	snprintf(v->topics, sizeof(v->topics), "%s", j->topics);
	memcpy(v->resume_hash, j->hash, sizeof(v->resume_hash));
	hl_routing_kick(c);
	v->have_resume = true;
	hl_info("contact.queued", "conn=%s conv=%lld risk=%d", s->id_str,
		(long long)v->id, v->risk);
	if (!s->wsi)
		return; /* gone already: the person can resume with the secret */
	v->contact = s;
	s->conv = v;
	s->ended_conv = 0;
	sodium_bin2base64(sec, sizeof(sec), j->secret, sizeof(j->secret),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	r = hl_proto_reply("contact.started", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "resume", json_string(sec));
	json_object_set_new(r, "risk", json_integer(v->risk));
	sodium_memzero(sec, sizeof(sec));
	add_position(c, v, r, j->now);
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
	if (!hl_hours_open(&s->srv->hours, hl_now_ms(), NULL, NULL)) {
		hl_session_error(s, m->id, HL_ERR_CLOSED,
				 "The line is closed right now. You can leave us a "
				 "message and read our reply later. If you are in "
				 "danger, call 999.",
				 NULL);
		return;
	}
	if (hl_queue_length(&c->queue) >= (uint32_t)s->srv->cfg.queue_max) {
		hl_session_error(s, m->id, HL_ERR_BUSY,
				 "We're very busy right now and can't add you to "
				 "the queue. Please try again soon, or leave us a "
				 "message and read our reply later. If you are in "
				 "danger, call 999.",
				 NULL);
		return;
	}
	j = request_job(s, m, CJ_START, start_done);
	if (!j)
		return;
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
	/* A chat that ended while this young person was away (the counsellor
	 * ended it, or it timed out): resumed read-only, so that chat.sync
	 * brings them what was said while they were offline — nothing
	 * acknowledged to the counsellor is lost to them. One they left
	 * themselves has no resume session any more (HL_ENOTFOUND). */
	if (status == 0 && !v &&
	    (j->conv.state == HL_CONV_ENDED || j->conv.state == HL_CONV_WRAPPED)) {
		s->ended_conv = j->conv_id;
		snprintf(idstr, sizeof(idstr), "%lld", (long long)j->conv_id);
		r = hl_proto_reply("contact.resumed", j->id);
		json_object_set_new(r, "conversation", json_string(idstr));
		json_object_set_new(r, "state", json_string("ended"));
		hl_session_send(s, r);
		json_decref(r);
		hl_info("contact.resumed_ended", "conn=%s conv=%lld", s->id_str,
			(long long)j->conv_id);
		return;
	}
	if (status == HL_ENOTFOUND || (status == 0 && !v)) {
		hl_session_secret_refused(s, j->id, HL_ERR_AUTH_FAILED,
					  "this chat has ended or expired; you "
					  "can start a new one");
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	/* A newer tab takes over: the older socket is told and closed. */
	if (v->contact && v->contact != s) {
		v->contact->conv = NULL;
		hl_session_close(v->contact, 1008, "resumed elsewhere");
	}
	v->contact = s;
	s->conv = v;
	s->ended_conv = 0;
	snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
	r = hl_proto_reply("contact.resumed", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "state", json_string(hl_conv_state_name(v->state)));
	if (v->qe.queued)
		add_position(c, v, r, j->now);
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
	if (!hl_session_may_try_secret(s, m->id))
		return;
	if (sodium_base642bin(secret, sizeof(secret), m->u.cresume.resume,
			      strlen(m->u.cresume.resume), NULL, &n, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != sizeof(secret)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "resume must be 32 bytes in base64url", "resume");
		return;
	}
	j = request_job(s, m, CJ_RESUME, resume_done);
	if (!j)
		return;
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
	if (v)
		v->busy = false;
	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	if (v && v->offer_staff) {
		json_t *o = hl_proto_reply("offer.withdrawn", NULL);
		char idstr[24];

		snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
		json_object_set_new(o, "conversation", json_string(idstr));
		json_object_set_new(o, "reason", json_string("left"));
		hl_auth_send_staff(&c->srv->auth, v->offer_staff, o);
		json_decref(o);
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
	if (v->busy || (v->state != HL_CONV_QUEUED && v->state != HL_CONV_OFFERED)) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "a counsellor is with you: end the chat with chat.end",
				 NULL);
		return;
	}
	j = request_job(s, m, CJ_LEAVE, leave_done);
	if (!j)
		return;
	j->conv_id = v->id;
	memcpy(j->hash, v->resume_hash, sizeof(j->hash));
	s->contact_busy = true;
	v->busy = true; /* no offer or take meanwhile */
	cjob_submit(j);
}

/* ---- delivery --------------------------------------------------------------- */

/*
 * The one place anything is sent to a young person about their
 * conversation. Internal events (visibility staff: notes, tags, transfers,
 * supervisor presence, wrap-up) are refused here, whatever the caller, so
 * no staff-only event can reach a contact socket.
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

/*
 * Delivers a stored event to every party but its sender: the young person
 * (contact-visible events only, through to_contact), the counsellor and a
 * supervisor third party. from_staff is the sending staff id, 0 when the
 * young person or the system sent it; from_contact marks the young person.
 */
/* Sends a staff view of an event: its text (n bytes), or the tree when
 * the text could not be written. */
static void to_staff(struct hl_contacts *c, int64_t staff_id, const char *text,
		     size_t n, const json_t *ev)
{
	if (n)
		hl_auth_send_staff_text(&c->srv->auth, staff_id, text, n);
	else
		hl_auth_send_staff(&c->srv->auth, staff_id, ev);
}

static void fan_out_text(struct hl_contacts *c, struct hl_conv_live *v,
			 const struct hl_event_result *res, const char *kind,
			 const char *sender, const void *payload, size_t len,
			 const char *payload_text, enum hl_event_vis vis,
			 int64_t from_staff, bool from_contact)
{
	bool to_young = !from_contact && vis == HL_VIS_ALL && v->contact;
	bool to_counsellor = v->counsellor_id && v->counsellor_id != from_staff;
	bool to_supervisor = v->supervisor_id && v->supervisor_id != from_staff &&
			     v->supervisor_id != v->counsellor_id;
	size_t cap = hl_wire_max(len), n;
	char small[2048], *buf = cap <= sizeof(small) ? small : malloc(cap);
	json_t *ev;

	/* Each view's text is written once (wire.c) and sent as is; a tree
	 * only when the text cannot be (no memory, or a string to escape). */
	if (to_young) {
		n = buf ? hl_wire_event(buf, cap, v->id, res->seq, res->at, kind,
					event_from(sender, true), payload, len,
					payload_text, res->chain)
			: 0;
		if (n) {
			hl_session_send_text(v->contact, buf, n);
		} else {
			ev = event_json(v->id, res->seq, res->at, kind, sender,
					payload, len, res->chain, true);
			to_contact(v, ev, vis);
			json_decref(ev);
		}
	}
	if (to_counsellor || to_supervisor) {
		n = buf ? hl_wire_event(buf, cap, v->id, res->seq, res->at, kind,
					event_from(sender, false), payload, len,
					payload_text, res->chain)
			: 0;
		ev = n ? NULL
		       : event_json(v->id, res->seq, res->at, kind, sender,
				    payload, len, res->chain, false);
		if (to_counsellor)
			to_staff(c, v->counsellor_id, buf, n, ev);
		if (to_supervisor)
			to_staff(c, v->supervisor_id, buf, n, ev);
		json_decref(ev);
	}
	if (buf != small)
		free(buf);
}

static void fan_out(struct hl_contacts *c, struct hl_conv_live *v,
		    const struct hl_event_result *res, const char *kind,
		    const char *sender, const void *payload, size_t len,
		    enum hl_event_vis vis, int64_t from_staff, bool from_contact)
{
	fan_out_text(c, v, res, kind, sender, payload, len, NULL, vis,
		     from_staff, from_contact);
}

static void conv_id_str(char *buf, size_t n, int64_t id)
{
	snprintf(buf, n, "%lld", (long long)id);
}

/* The intake of v as staff see it (queue.offer, queue.list, chat.assigned). */
static void add_intake(json_t *o, const struct hl_conv_live *v, int64_t now)
{
	const char *band = hl_age_band_name(v->age_band);

	json_object_set_new(o, "risk", json_integer(v->risk));
	json_object_set_new(o, "topics", json_string(v->topics));
	json_object_set_new(o, "age_band", band ? json_string(band) : json_null());
	json_object_set_new(o, "danger_now", json_boolean(v->danger_now));
	json_object_set_new(o, "language", json_string(v->qe.language));
	json_object_set_new(o, "waited_s",
			    json_integer((now - v->created_at) / 1000));
}


struct hl_conv_live *hl_contacts_find(struct hl_contacts *c, int64_t id)
{
	return find_conv(c, id);
}

int64_t hl_contacts_load_holder(const struct hl_conv_live *v)
{
	if (v->offer_staff)
		return v->offer_staff;
	if (v->state == HL_CONV_ACTIVE || (v->busy && v->state == HL_CONV_OFFERED))
		return v->counsellor_id; /* held, or being taken */
	return 0;
}

int hl_contacts_load_of(struct hl_contacts *c, int64_t staff_id)
{
	int n = 0;

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		n += hl_contacts_load_holder(v) == staff_id;
	return n;
}

json_t *hl_contacts_held(struct hl_contacts *c, int64_t staff_id)
{
	json_t *a = json_array();
	char idstr[24];

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->counsellor_id == staff_id && v->state == HL_CONV_ACTIVE) {
			conv_id_str(idstr, sizeof(idstr), v->id);
			json_array_append_new(a, json_string(idstr));
		}
	return a;
}

bool hl_contacts_passed(const struct hl_conv_live *v, int64_t staff_id,
			int64_t now_ms, int64_t window_ms)
{
	for (size_t i = 0; i < HL_ARRAY_LEN(v->passed); i++)
		if (v->passed[i].staff_id == staff_id &&
		    now_ms - v->passed[i].at_ms < window_ms)
			return true;
	return false;
}

static void note_passed(struct hl_conv_live *v, int64_t staff_id, int64_t now)
{
	size_t oldest = 0;

	for (size_t i = 0; i < HL_ARRAY_LEN(v->passed); i++) {
		if (v->passed[i].staff_id == staff_id) {
			oldest = i;
			break;
		}
		if (v->passed[i].at_ms < v->passed[oldest].at_ms)
			oldest = i;
	}
	v->passed[oldest].staff_id = staff_id;
	v->passed[oldest].at_ms = now;
}

/*
 * The conversation a chat request is about, after the party check: a
 * contact may only name its own (or none), a member of staff only one they
 * hold or joined as supervisor. Answers and returns NULL otherwise. The
 * reply never tells a stranger whether the id exists.
 */
static struct hl_conv_live *party_conv_named(struct hl_session *s,
					     const struct hl_msg *m,
					     const char *conversation)
{
	struct hl_conv_live *v;
	int64_t id = hl_conv_id_parse(conversation);

	if (s->role == HL_ROLE_CONTACT) {
		v = s->conv;
		if (!v || (conversation && id != v->id)) {
			hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
					 "not your conversation", "conversation");
			return NULL;
		}
		return v;
	}
	v = id ? find_conv(contacts_of(s), id) : NULL;
	if (!v || (v->counsellor_id != s->staff_id &&
		   v->supervisor_id != s->staff_id)) {
		hl_warn("chat.not_party", "conn=%s staff=%lld", s->id_str,
			(long long)s->staff_id);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "not your conversation", "conversation");
		return NULL;
	}
	return v;
}

static struct hl_conv_live *party_conv(struct hl_session *s,
				       const struct hl_msg *m)
{
	return party_conv_named(s, m, m->u.chat.conversation);
}

int64_t hl_contact_ended_conv(const struct hl_session *s,
			      const char *conversation)
{
	if (s->role != HL_ROLE_CONTACT || s->conv || !s->ended_conv ||
	    (conversation && hl_conv_id_parse(conversation) != s->ended_conv))
		return 0;
	return s->ended_conv;
}

int64_t hl_contact_party(struct hl_session *s, const struct hl_msg *m,
			 const char *conversation)
{
	struct hl_conv_live *v = party_conv_named(s, m, conversation);

	return v ? v->id : 0;
}

/* ---- offers (routing.c decides who; this keeps the state) ------------------- */

static void offer_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	int64_t now = hl_now_ms();
	char idstr[24];
	json_t *o;

	if (!v)
		return;
	v->busy = false;
	if (status != 0) {
		v->state = HL_CONV_QUEUED;
		v->offer_staff = 0;
		return;
	}
	v->state = HL_CONV_OFFERED;
	v->offer_expires_ms = now + (int64_t)c->srv->cfg.queue_offer_timeout * 1000;
	c->srv->metrics.offers++;
	hl_info("offer.made", "conv=%lld staff=%lld", (long long)v->id,
		(long long)v->offer_staff);
	conv_id_str(idstr, sizeof(idstr), v->id);
	o = hl_proto_reply("queue.offer", NULL);
	json_object_set_new(o, "conversation", json_string(idstr));
	add_intake(o, v, now);
	json_object_set_new(o, "expires_at", json_integer(v->offer_expires_ms));
	hl_auth_send_staff(&c->srv->auth, v->offer_staff, o);
	json_decref(o);
}

void hl_contacts_offer(struct hl_contacts *c, struct hl_conv_live *v,
		       int64_t staff_id)
{
	struct contact_job *j = cjob_new(c, CJ_OFFER, NULL, NULL, offer_done);

	if (!j)
		return;
	j->conv_id = v->id;
	j->staff_id = staff_id;
	v->busy = true;
	v->offer_staff = staff_id;
	cjob_submit(j);
}

static void unoffer_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	char idstr[24];
	json_t *o;

	if (!v)
		return;
	v->busy = false;
	if (status != 0) {
		/* Still offered in the database: the watchdog retries on its
		 * next tick (as a lapsed offer). */
		v->offer_staff = j->staff_id;
		v->offer_expires_ms = hl_now_ms();
		return;
	}
	v->state = HL_CONV_QUEUED;
	hl_info("offer.withdrawn", "conv=%lld staff=%lld why=%s",
		(long long)v->id, (long long)j->staff_id, j->why);
	if (strcmp(j->why, "declined") != 0) {
		conv_id_str(idstr, sizeof(idstr), v->id);
		o = hl_proto_reply(strcmp(j->why, "timeout") == 0 ? "offer.expired"
								 : "offer.withdrawn",
				   NULL);
		json_object_set_new(o, "conversation", json_string(idstr));
		json_object_set_new(o, "reason", json_string(j->why));
		hl_auth_send_staff(&c->srv->auth, j->staff_id, o);
		json_decref(o);
	}
	hl_routing_kick(c);
}

void hl_contacts_unoffer(struct hl_contacts *c, struct hl_conv_live *v,
			 const char *why)
{
	struct contact_job *j = cjob_new(c, CJ_UNOFFER, NULL, NULL, unoffer_done);

	if (!j)
		return;
	j->conv_id = v->id;
	j->staff_id = v->offer_staff;
	snprintf(j->why, sizeof(j->why), "%s", why);
	/* Passing on it counts against them for this chat; being away,
	 * clocking out or a restart does not. */
	if (strcmp(why, "declined") == 0 || strcmp(why, "timeout") == 0)
		note_passed(v, v->offer_staff, j->now);
	v->offer_staff = 0;  /* an accept from now on is too late */
	v->busy = true;
	cjob_submit(j);
}

void hl_contacts_withdraw_offers(struct hl_contacts *c, int64_t staff_id)
{
	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->offer_staff == staff_id && !v->busy)
			hl_contacts_unoffer(c, v, "withdrawn");
}

/* ---- taking a chat: queue.take, queue.pick, offer.accept --------------------- */

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
		if (v) {
			v->state = j->was_offered ? HL_CONV_OFFERED : HL_CONV_QUEUED;
			v->counsellor_id = 0;
			if (j->was_offered) /* still offered in the database */
				v->offer_staff = j->staff_id;
			if (hl_queue_push_front(&c->queue, &v->qe) != 0)
				hl_error("chat.take_lost", "conv=%lld",
					 (long long)v->id);
		}
		if (s->wsi)
			hl_session_error(s, j->id, store_err(status),
					 "could not take that chat; try again", NULL);
		return;
	}
	v->state = HL_CONV_ACTIVE;
	v->counsellor_id = j->staff_id;
	v->offer_staff = 0;
	c->srv->metrics.chats_taken++;
	v->lost_since_ms = 0;
	hl_info("chat.taken", "conv=%lld staff=%lld", (long long)v->id,
		(long long)j->staff_id);
	conv_id_str(idstr, sizeof(idstr), v->id);
	ev = event_json(v->id, j->res.seq, j->res.at, "system", "system",
			"joined", 6, j->res.chain, true);
	to_contact(v, ev, HL_VIS_ALL);
	json_decref(ev);
	if (!s->wsi)
		return;
	r = hl_proto_reply("queue.taken", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	add_intake(r, v, j->now);
	json_object_set_new(r, "seq", json_integer(j->res.seq));
	hl_session_send(s, r);
	json_decref(r);
}

void hl_contacts_take(struct hl_session *s, const char *id,
		      struct hl_conv_live *v)
{
	struct hl_contacts *c = contacts_of(s);
	struct contact_job *j = cjob_new(c, CJ_TAKE, s, id, take_done);

	if (!j) {
		hl_session_error(s, id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->was_offered = v->state == HL_CONV_OFFERED;
	/* Out of the queue at once, so nobody else can take it meanwhile. */
	hl_queue_remove(&c->queue, &v->qe, true, j->now);
	v->state = HL_CONV_OFFERED;
	v->counsellor_id = s->staff_id; /* counts towards their load */
	v->offer_staff = 0;
	v->busy = true;
	j->conv_id = v->id;
	j->staff_id = s->staff_id;
	cjob_submit(j);
}

/* ---- chat.send, chat.note, chat.tag -------------------------------------------- */

static void send_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	json_t *r;

	if (status == HL_EINVAL && j->res.refusal != HL_REFUSE_NONE) {
		static const enum hl_err_code codes[] = {
			[HL_REFUSE_ENVELOPE] = HL_ERR_BAD_ENVELOPE,
			[HL_REFUSE_EPOCH] = HL_ERR_STALE_EPOCH,
			[HL_REFUSE_COUNTER] = HL_ERR_BAD_COUNTER,
			[HL_REFUSE_HANDSHAKE] = HL_ERR_BAD_HANDSHAKE,
		};
		if (s->wsi)
			hl_session_error(s, j->id, codes[j->res.refusal],
					 j->res.why, NULL);
		hl_info("e2e.refused", "conn=%s conv=%lld why=%s", s->id_str,
			(long long)j->conv_id, hl_err_code_name(codes[j->res.refusal]));
		return;
	}
	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id,
					 status == HL_ECLOSED ? HL_ERR_BAD_STATE
							      : store_err(status),
					 status == HL_ECLOSED
						 ? "this chat has ended"
						 : "not sent: it could not be stored; "
						   "send it again",
					 NULL);
		return;
	}
	/* Acknowledged only now that it is committed; delivered once. */
	if (s->wsi) {
		const char *type = strcmp(j->ev_kind, "hello") == 0 ||
						   strcmp(j->ev_kind, "accept") == 0
					   ? "e2e.ack"
					   : "chat.ack";
		char text[256];
		size_t n = hl_wire_ack(text, sizeof(text), type, j->id,
				       j->res.seq, j->res.at,
				       j->res.duplicate ? NULL : j->res.chain,
				       j->res.duplicate);

		if (n) {
			hl_session_send_text(s, text, n);
			goto sent;
		}
		r = hl_proto_reply(type, j->id);
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		json_object_set_new(r, "at", json_integer(j->res.at));
		if (!j->res.duplicate)
			json_object_set_new(r, "chain",
					    hl_proto_b64_json(j->res.chain, HL_E2E_KEY));
		if (j->res.duplicate)
			json_object_set_new(r, "duplicate", json_true());
		hl_session_send(s, r);
		json_decref(r);
	}
sent:
	if (j->res.duplicate || !v)
		return;
	if (strcmp(j->ev_kind, "msg") == 0)
		c->srv->metrics.chat_messages++;
	fan_out_text(c, v, &j->res, j->ev_kind, j->sender, j->payload,
		     j->payload_len, j->payload_text, j->vis, j->staff_id,
		     j->staff_id == 0);
}

/* "staff:<id>" or "contact" (conversation.h), without snprintf: it is
 * written for every message, and formatting was ~1% of the relay's CPU. */
static void set_sender(struct contact_job *j, const struct hl_session *s)
{
	size_t n;

	if (s->role != HL_ROLE_STAFF) {
		memcpy(j->sender, "contact", sizeof("contact"));
		return;
	}
	j->staff_id = s->staff_id;
	_Static_assert(6 + HL_I64_DIGITS <= HL_EVENT_SENDER_MAX,
		       "room for staff:<id>");
	memcpy(j->sender, "staff:", 6);
	n = hl_fmt_i64(j->sender + 6, s->staff_id);
	j->sender[6 + n] = '\0';
}

/* Checks a comma-separated list of topic tags against the taxonomy. */
static bool tags_known(const struct hl_taxonomy *tax, const char *tags)
{
	char buf[HL_CONV_TAGS_MAX + 1];
	const char *ids[INTAKE_IDS_MAX];
	int n;

	if (strlen(tags) > HL_CONV_TAGS_MAX)
		return false;
	snprintf(buf, sizeof(buf), "%s", tags);
	n = split_ids(buf, ids, INTAKE_IDS_MAX);
	if (n < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (!hl_taxonomy_find(tax, ids[i], HL_TAX_TAG))
			return false;
	return true;
}

void hl_chat_send(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	bool note = m->type == HL_MSG_CHAT_NOTE, tag = m->type == HL_MSG_CHAT_TAG;
	struct contact_job *j;

	if (!v)
		return;
	if ((note || tag) && s->role != HL_ROLE_STAFF) { /* dispatch refuses */
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN, NULL, "type");
		return;
	}
	if (v->state != HL_CONV_ACTIVE && s->role == HL_ROLE_STAFF && !note &&
	    !tag) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	if (tag && !tags_known(&s->srv->taxonomy, m->u.chat.tags)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "tags must be up to 16 topic ids of taxonomy.json",
				 "tags");
		return;
	}
	j = request_job(s, m, CJ_SEND, send_done);
	if (!j)
		return;
	if (tag) {
		j->payload_len = strlen(m->u.chat.tags);
		j->payload = (unsigned char *)strdup(m->u.chat.tags);
		if (!j->payload && j->payload_len) {
			cjob_free(j);
			hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
			return;
		}
	} else if (!job_payload(j, m->u.chat.payload, "payload")) {
		return;
	}
	j->conv_id = v->id;
	j->ev_kind = tag ? "tag" : note ? "note" : "msg";
	j->vis = note || tag ? HL_VIS_STAFF : HL_VIS_ALL;
	if (!note && !tag &&
	    s->srv->cfg.chat_envelopes == HL_ENVELOPES_STRICT) {
		j->e2e = HL_EV_ENVELOPE;
		j->dir = s->role == HL_ROLE_CONTACT ? HL_E2E_TO_STAFF
						    : HL_E2E_TO_CONTACT;
	}
	set_sender(j, s);
	cjob_submit(j);
}

/* ---- the handshake (docs/crypto.md) --------------------------------------------- */

static bool b64_exact(const char *text, unsigned char *out, size_t n)
{
	return hl_proto_b64_into(text, out, n, NULL, true);
}

void hl_e2e_hello(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv_named(s, m, NULL);
	struct contact_job *j;
	unsigned char pk[HL_E2E_KEY];

	if (!v)
		return;
	if (!b64_exact(m->u.e2e.kx_pk, pk, sizeof(pk))) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "kx_pk must be 32 bytes of base64url", "kx_pk");
		return;
	}
	if (v->state == HL_CONV_ENDED || v->state == HL_CONV_WRAPPED) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat has ended", NULL);
		return;
	}
	j = request_job(s, m, CJ_SEND, send_done);
	if (!j)
		return;
	if (!(j->payload = malloc(sizeof(pk)))) {
		cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	memcpy(j->payload, pk, sizeof(pk));
	j->payload_len = sizeof(pk);
	j->conv_id = v->id;
	j->ev_kind = "hello";
	j->vis = HL_VIS_ALL;
	j->e2e = HL_EV_HELLO;
	set_sender(j, s);
	cjob_submit(j);
}

void hl_e2e_accept(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv_named(s, m, m->u.e2e.conversation);
	struct hl_e2e_accept a = {.hello_seq = (uint64_t)m->u.e2e.hello};
	unsigned char kx[HL_E2E_KEY], sig[HL_E2E_SIG];
	unsigned char cert[HL_CERT_MAX], issuer[HL_CERT_MAX];
	unsigned char buf[8 + HL_E2E_KEY + 4 + 2 * HL_CERT_MAX + HL_E2E_SIG];
	const char *bad = NULL;
	struct contact_job *j;
	size_t len = 0;

	if (!v)
		return;
	/* Only the counsellor holding the chat answers a hello: a joined
	 * supervisor is a reader, and a second answer would race the
	 * counsellor's for the young person's new epoch. */
	if (v->counsellor_id != s->staff_id) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only the counsellor holding the chat answers "
				 "its hello", "conversation");
		return;
	}
	if (!b64_exact(m->u.e2e.kx_pk, kx, sizeof(kx)))
		bad = "kx_pk";
	else if (!hl_proto_b64_into(m->u.e2e.cert, cert, sizeof(cert), &a.cert_len, false))
		bad = "cert";
	else if (!hl_proto_b64_into(m->u.e2e.issuer, issuer, sizeof(issuer),
				    &a.issuer_len, false))
		bad = "issuer";
	else if (!b64_exact(m->u.e2e.sig, sig, sizeof(sig)))
		bad = "sig";
	if (bad) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "a key, certificate or signature of the wrong "
				 "length or not base64url",
				 bad);
		return;
	}
	if (v->state != HL_CONV_ACTIVE) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	a.kx_pk = kx;
	a.cert = cert;
	a.issuer = issuer;
	a.sig = sig;
	if (hl_e2e_accept_encode(&a, buf, sizeof(buf), &len) != 0) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "certificate too long", "cert");
		return;
	}
	j = request_job(s, m, CJ_SEND, send_done);
	if (!j)
		return;
	if (!(j->payload = malloc(len))) {
		cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	memcpy(j->payload, buf, len);
	j->payload_len = len;
	j->conv_id = v->id;
	j->ev_kind = "accept";
	j->vis = HL_VIS_ALL;
	j->e2e = HL_EV_ACCEPT;
	j->root_pk = hl_trust_root(&s->srv->trust);
	set_sender(j, s);
	cjob_submit(j);
}

void hl_chat_tag(struct hl_session *s, const struct hl_msg *m)
{
	hl_chat_send(s, m);
}

/* ---- chat.sync ------------------------------------------------------------------- */

static void sync_done(struct contact_job *j, int status)
{
	struct hl_session *s = j->s;
	bool contact = s->role == HL_ROLE_CONTACT;
	size_t i;
	json_t *ev, *r;

	if (status == HL_EINVAL && j->refusal) {
		char detail[120];

		snprintf(detail, sizeof(detail),
			 "{\"request\":\"chat.sync\",\"conversation\":%lld,"
			 "\"error\":\"%s\"}", (long long)j->conv_id,
			 hl_err_code_name(j->refusal));
		hl_escalation_audit(j->c->srv, j->staff_id, "escalation.refused", detail);
		hl_warn("chat.not_party", "conn=%s staff=%lld", s->id_str,
			(long long)j->staff_id);
		if (s->wsi)
			hl_session_error(s, j->id, j->refusal,
					 j->refusal == HL_ERR_FORBIDDEN
					 ? "not your conversation"
					 : "enter a code from your authenticator app "
					   "(auth.reauth) to read an escalated chat",
					 j->refusal == HL_ERR_FORBIDDEN ? "conversation" : NULL);
		return;
	}
	if (!s->wsi)
		return;
	if (status != 0) {
		hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	if (j->after_seq > j->conv.last_seq) {
		hl_session_error(s, j->id, HL_ERR_BAD_FIELD,
				 "last_seq is beyond the conversation's last event",
				 "last_seq");
		return;
	}
	json_array_foreach(j->events, i, ev)
		hl_session_send(s, ev);
	r = hl_proto_reply("chat.synced", j->id);
	json_object_set_new(r, "count", json_integer((json_int_t)i));
	json_object_set_new(r, "last_seq", json_integer(j->conv.last_seq));
	json_object_set_new(r, "more", json_boolean(j->more));
	json_object_set_new(r, "up_to", json_integer(j->up_to));
	json_object_set_new(r, "state",
			    json_string(hl_conv_state_name(j->conv.state)));
	/* How far the other side has got (receipts). */
	json_object_set_new(r, "delivered", json_integer(
		contact ? j->conv.staff_delivered : j->conv.contact_delivered));
	json_object_set_new(r, "read", json_integer(
		contact ? j->conv.staff_read : j->conv.contact_read));
	hl_session_send(s, r);
	json_decref(r);
}

void hl_chat_sync(struct hl_session *s, const struct hl_msg *m)
{
	int64_t id = hl_conv_id_parse(m->u.chat.conversation);
	struct hl_conv_live *v = NULL;
	struct contact_job *j;
	bool esc = false;

	/* A member of staff who is not a party may still read by an
	 * escalation (the supervisor who claimed it, after auth.reauth; the
	 * counsellor of an ended chat while it is undecided): decided on the
	 * writer, where decided escalations and ended chats are. */
	if (s->role == HL_ROLE_STAFF && id) {
		v = find_conv(contacts_of(s), id);
		if (!v || (v->counsellor_id != s->staff_id &&
			   v->supervisor_id != s->staff_id)) {
			v = NULL;
			esc = true;
		}
	}
	/* A young person's chat that ended on this socket stays readable
	 * here until another one starts or is resumed on it (end_done). */
	if (hl_contact_ended_conv(s, m->u.chat.conversation))
		id = s->ended_conv;
	else if (!esc && !(v = party_conv(s, m)))
		return;
	j = request_job(s, m, CJ_SINCE, sync_done);
	if (!j)
		return;
	if (!(j->events = json_array())) {
		cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	j->conv_id = v ? v->id : id;
	j->esc_read = esc;
	j->fresh = esc && hl_auth_fresh(s);
	j->staff_id = s->staff_id;
	j->after_seq = m->u.chat.last_seq;
	j->contact_view = s->role == HL_ROLE_CONTACT;
	j->budget = hl_session_page_budget(s);
	cjob_submit(j);
}

/* ---- chat.end ------------------------------------------------------------------- */

static void end_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	const char *what = j->staff_id ? "ended_by_counsellor" : "ended_by_contact";
	json_t *r;

	if (v)
		v->busy = false;
	if (status != 0 || !v) {
		if (s->wsi)
			hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	if (s->wsi) {
		r = hl_proto_reply("chat.ended", j->id);
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		hl_session_send(s, r);
		json_decref(r);
	}
	fan_out(c, v, &j->res, "system", "system", what, strlen(what),
		HL_VIS_ALL, j->staff_id, v->contact == s);
	hl_info("chat.ended", "conv=%lld by=%s", (long long)v->id,
		j->staff_id ? "staff" : "contact");
	/* The young person's socket may still chat.sync it: one that resumed
	 * a moment ago has not yet fetched what it missed while away. */
	if (v->contact)
		v->contact->ended_conv = v->id;
	drop_conv(c, v);
	hl_routing_kick(c); /* the counsellor has room again */
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
	j = request_job(s, m, CJ_END, end_done);
	if (!j)
		return;
	j->conv_id = v->id;
	j->staff_id = s->role == HL_ROLE_STAFF ? s->staff_id : 0;
	v->busy = true;
	cjob_submit(j);
}

/* ---- chat.transfer --------------------------------------------------------------- */

static void transfer_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	int64_t from = j->staff_id;
	char idstr[24];
	json_t *r;

	if (v)
		v->busy = false;
	if (status != 0 || !v) {
		if (s->wsi)
			hl_session_error(s, j->id, status == HL_EINVAL
					 ? HL_ERR_BAD_STATE : store_err(status),
					 status == HL_EINVAL ? "this chat is not yours "
					 "to transfer any more" : NULL, NULL);
		return;
	}
	conv_id_str(idstr, sizeof(idstr), v->id);
	v->counsellor_id = j->to_staff;
	c->srv->metrics.transfers++;
	v->lost_since_ms = 0;
	hl_info("chat.transferred", "conv=%lld from=%lld to=%lld announced=%d",
		(long long)v->id, (long long)from, (long long)j->to_staff,
		j->announce);
	if (s->wsi) {
		r = hl_proto_reply("chat.transferred", j->id);
		json_object_set_new(r, "conversation", json_string(idstr));
		json_object_set_new(r, "to", json_integer(j->to_staff));
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		hl_session_send(s, r);
		json_decref(r);
	}
	/* The new counsellor: the chat, then the handover note as an event
	 * (they chat.sync from 0 for the history). */
	r = hl_proto_reply("chat.assigned", NULL);
	json_object_set_new(r, "conversation", json_string(idstr));
	add_intake(r, v, j->now);
	json_object_set_new(r, "from", json_integer(from));
	json_object_set_new(r, "reason", json_string("transfer"));
	json_object_set_new(r, "seq", json_integer(j->res.seq));
	hl_auth_send_staff(&c->srv->auth, j->to_staff, r);
	json_decref(r);
	fan_out(c, v, &j->res, "transfer", j->sender, j->payload,
		j->payload_len, HL_VIS_STAFF, from, false);
	if (j->announce)
		fan_out(c, v, &j->res2, "system", "system", "transferred", 11,
			HL_VIS_ALL, from, false);
}

enum hl_transfer_target hl_contacts_transfer_target(const struct hl_auth_staff *st,
						    int load)
{
	if (!st || !(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR)) ||
	    st->row.state != HL_STAFF_ACTIVE)
		return HL_TRANSFER_NO_SUCH;
	if (!st->on_shift || st->connections == 0 || load >= st->row.capacity)
		return HL_TRANSFER_UNAVAILABLE;
	return HL_TRANSFER_OK;
}

void hl_chat_transfer(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	struct hl_auth *a = &s->srv->auth;
	struct hl_auth_staff *to;
	enum hl_transfer_target target;
	struct contact_job *j;

	if (!v)
		return;
	if (v->counsellor_id != s->staff_id || v->state != HL_CONV_ACTIVE ||
	    v->busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "only the counsellor of an active chat can "
				 "transfer it", NULL);
		return;
	}
	to = hl_auth_staff_by_id(a, m->u.chat.to);
	target = hl_contacts_transfer_target(
		to, to ? hl_contacts_load_of(contacts_of(s), to->row.id) : 0);
	if (target == HL_TRANSFER_NO_SUCH) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "no such counsellor", "to");
		return;
	}
	if (to->row.id == s->staff_id) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "that is you", "to");
		return;
	}
	if (target != HL_TRANSFER_OK) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "that counsellor is not on shift, not connected "
				 "or has no room for another chat", "to");
		return;
	}
	j = request_job(s, m, CJ_TRANSFER, transfer_done);
	if (!j)
		return;
	if (m->u.chat.payload && !job_payload(j, m->u.chat.payload, "note"))
		return;
	j->conv_id = v->id;
	j->to_staff = to->row.id;
	j->announce = s->srv->cfg.chat_transfer_announce != 0;
	set_sender(j, s);
	v->busy = true;
	cjob_submit(j);
}

/* ---- chat.join: a supervisor as third party -------------------------------------- */

static void join_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	char idstr[24];
	json_t *r;

	if (v)
		v->busy = false;
	if (status != 0 || !v) {
		if (s->wsi)
			hl_session_error(s, j->id, status == HL_EINVAL
					 ? HL_ERR_BAD_STATE : store_err(status),
					 status == HL_EINVAL ? "this chat has ended"
							     : NULL, NULL);
		return;
	}
	v->supervisor_id = j->staff_id;
	hl_info("chat.supervisor_joined", "conv=%lld staff=%lld",
		(long long)v->id, (long long)j->staff_id);
	conv_id_str(idstr, sizeof(idstr), v->id);
	if (s->wsi) {
		r = hl_proto_reply("chat.joined", j->id);
		json_object_set_new(r, "conversation", json_string(idstr));
		json_object_set_new(r, "state",
				    json_string(hl_conv_state_name(v->state)));
		json_object_set_new(r, "counsellor", v->counsellor_id
				    ? json_integer(v->counsellor_id) : json_null());
		json_object_set_new(r, "seq", json_integer(j->res.seq));
		add_intake(r, v, j->now);
		hl_session_send(s, r);
		json_decref(r);
	}
	/* Internal: the counsellor is told, the young person never. */
	fan_out(c, v, &j->res, "supervisor_joined", j->sender, NULL, 0,
		HL_VIS_STAFF, j->staff_id, false);
}

void hl_chat_join(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	struct hl_conv_live *v = find_conv(c, hl_conv_id_parse(m->u.chat.conversation));
	const struct hl_esc_live *esc;
	struct contact_job *j;

	if (!v) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "no open conversation with that id",
				 "conversation");
		return;
	}
	if (v->supervisor_id == s->staff_id) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you have already joined", NULL);
		return;
	}
	esc = hl_escalation_of_conv(&s->srv->esc, v->id);
	if (!esc || esc->claimed_by != s->staff_id) {
		char detail[120];

		snprintf(detail, sizeof(detail),
			 "{\"request\":\"chat.join\",\"conversation\":%lld,"
			 "\"error\":\"forbidden\"}", (long long)v->id);
		hl_escalation_audit(s->srv, s->staff_id, "escalation.refused", detail);
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "claim this chat's escalation first", "conversation");
		return;
	}
	if (!hl_auth_fresh(s)) {
		hl_session_error(s, m->id, HL_ERR_REAUTH_REQUIRED,
				 "enter a code from your authenticator app "
				 "(auth.reauth) to join an escalated chat", NULL);
		return;
	}
	if (v->supervisor_id) {
		hl_session_error(s, m->id, HL_ERR_CONFLICT,
				 "another supervisor has joined this chat", NULL);
		return;
	}
	if (v->busy) {
		hl_session_error(s, m->id, HL_ERR_BUSY,
				 "the chat is changing hands; try again", NULL);
		return;
	}
	j = request_job(s, m, CJ_JOIN, join_done);
	if (!j)
		return;
	j->conv_id = v->id;
	set_sender(j, s);
	v->busy = true;
	hl_warn("chat.join", "conv=%lld staff=%lld", (long long)v->id,
		(long long)s->staff_id);
	cjob_submit(j);
}

/* ---- chat.wrapup ------------------------------------------------------------------ */

static void wrapup_done(struct contact_job *j, int status)
{
	struct hl_session *s = j->s;
	char idstr[24];
	json_t *r;

	if (!s->wsi)
		return;
	if (status == HL_ENOTFOUND) {
		hl_session_error(s, j->id, HL_ERR_FORBIDDEN,
				 "not your conversation", "conversation");
		return;
	}
	if (status == HL_ECONSTRAINT || status == HL_EINVAL) {
		hl_session_error(s, j->id, status == HL_ECONSTRAINT
				 ? HL_ERR_CONFLICT : HL_ERR_BAD_STATE,
				 status == HL_ECONSTRAINT ? "already wrapped up"
				 : "end the chat before wrapping it up", NULL);
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	conv_id_str(idstr, sizeof(idstr), j->conv_id);
	r = hl_proto_reply("chat.wrapped", j->id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "outcome", json_string(j->outcome));
	json_object_set_new(r, "tags", json_string(j->tags));
	hl_session_send(s, r);
	json_decref(r);
	hl_info("chat.wrapped", "conv=%lld staff=%lld", (long long)j->conv_id,
		(long long)j->staff_id);
}

void hl_chat_wrapup(struct hl_session *s, const struct hl_msg *m)
{
	const struct hl_taxonomy *tax = &s->srv->taxonomy;
	int64_t id = hl_conv_id_parse(m->u.chat.conversation);
	const char *tags = m->u.chat.tags ? m->u.chat.tags : "";
	struct contact_job *j;

	if (!id) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "conversation must be a conversation id",
				 "conversation");
		return;
	}
	if (!hl_taxonomy_find(tax, m->u.chat.outcome, HL_TAX_OUTCOME)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "outcome must be an outcome id of taxonomy.json",
				 "outcome");
		return;
	}
	if (!tags_known(tax, tags)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "tags must be up to 16 topic ids of taxonomy.json",
				 "tags");
		return;
	}
	j = request_job(s, m, CJ_WRAPUP, wrapup_done);
	if (!j)
		return;
	if (m->u.chat.payload && !job_payload(j, m->u.chat.payload, "notes"))
		return;
	j->conv_id = id;
	snprintf(j->outcome, sizeof(j->outcome), "%s", m->u.chat.outcome);
	snprintf(j->tags, sizeof(j->tags), "%s", tags);
	set_sender(j, s);
	cjob_submit(j);
}

/* ---- a counsellor who does not come back ----------------------------------------- */

void hl_contacts_staff_presence(struct hl_contacts *c, int64_t staff_id,
				bool gone)
{
	int64_t now = hl_now_ms();

	for (struct hl_conv_live *v = c->convs; v; v = v->next)
		if (v->counsellor_id == staff_id && v->state == HL_CONV_ACTIVE)
			v->lost_since_ms = gone ? now : 0;
}

static void requeue_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	int64_t lost;

	if (!v)
		return;
	v->busy = false;
	if (status != 0) {
		v->lost_since_ms = hl_now_ms(); /* try again after another grace */
		return;
	}
	lost = v->counsellor_id;
	v->state = HL_CONV_QUEUED;
	v->counsellor_id = 0;
	v->lost_since_ms = 0;
	hl_queue_push_front(&c->queue, &v->qe);
	hl_warn("chat.requeued", "conv=%lld why=counsellor_lost", (long long)v->id);
	fan_out(c, v, &j->res, "system", "system", "counsellor_lost", 15,
		HL_VIS_ALL, 0, false);
	hl_routing_alert(c, "counsellor_lost", lost, v->id,
			 "a counsellor's chat went back to the queue");
	hl_routing_kick(c);
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
	cjob_submit(j);
}

/* ---- typing: relayed, never stored -------------------------------------------------- */

void hl_chat_signal(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	char idstr[24];
	json_t *o;

	if (!v)
		return;
	if (v->state != HL_CONV_ACTIVE) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this chat is not active", NULL);
		return;
	}
	conv_id_str(idstr, sizeof(idstr), v->id);
	o = hl_proto_reply("chat.typing", NULL);
	json_object_set_new(o, "conversation", json_string(idstr));
	if (s->role == HL_ROLE_STAFF) {
		json_object_set_new(o, "from", json_string("counsellor"));
		to_contact(v, o, HL_VIS_ALL);
	} else if (v->counsellor_id) {
		json_object_set_new(o, "from", json_string("contact"));
		hl_auth_send_staff(&s->srv->auth, v->counsellor_id, o);
	}
	json_decref(o);
	/* No reply: fire-and-forget (an error is the only answer), so a
	 * typing client does not double its traffic. */
}

/* ---- receipts: stored as high-water marks, relayed ------------------------------- */

static void receipt_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_conv_live *v = find_conv(c, j->conv_id);
	struct hl_session *s = j->s;
	char idstr[24];
	json_t *o;

	if (status == HL_ERANGE) {
		if (s->wsi)
			hl_session_error(s, j->id, HL_ERR_BAD_FIELD,
					 "seq is beyond the last event", "seq");
		return;
	}
	if (status != 0) {
		if (s->wsi)
			hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	if (!v)
		return;
	conv_id_str(idstr, sizeof(idstr), v->id);
	o = hl_proto_reply("chat.receipt", NULL);
	json_object_set_new(o, "conversation", json_string(idstr));
	json_object_set_new(o, "from", json_string(j->contact_side ? "contact"
								   : "counsellor"));
	json_object_set_new(o, "kind", json_string(j->read ? "read" : "delivered"));
	json_object_set_new(o, "seq", json_integer(j->read ? j->read : j->delivered));
	if (j->contact_side) {
		if (v->counsellor_id)
			hl_auth_send_staff(&c->srv->auth, v->counsellor_id, o);
		if (v->supervisor_id && v->supervisor_id != v->counsellor_id)
			hl_auth_send_staff(&c->srv->auth, v->supervisor_id, o);
	} else {
		to_contact(v, o, HL_VIS_ALL);
	}
	json_decref(o);
}

void hl_chat_receipt(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv(s, m);
	bool read = m->type == HL_MSG_CHAT_READ;
	struct contact_job *j;

	if (!v)
		return;
	j = request_job(s, m, CJ_RECEIPT, receipt_done);
	if (!j)
		return;
	j->conv_id = v->id;
	j->contact_side = s->role == HL_ROLE_CONTACT;
	j->delivered = m->u.chat.last_seq; /* reading implies delivery */
	j->read = read ? m->u.chat.last_seq : 0;
	cjob_submit(j);
}

/* ---- return codes (docs/crypto.md) ---------------------------------------------- */

static void set_return_done(struct contact_job *j, int status)
{
	struct hl_session *s = j->s;
	json_t *r;

	if (!s->wsi)
		return;
	if (status == HL_ECONSTRAINT) {
		hl_session_error(s, j->id, HL_ERR_CONFLICT,
				 "this chat has a return code already", NULL);
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	r = hl_proto_reply("contact.return_set", j->id);
	hl_session_send(s, r);
	json_decref(r);
}

void hl_contact_set_return(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = party_conv_named(s, m, NULL);
	unsigned char sign_pk[32], box_pk[32];
	struct contact_job *j;

	if (!v)
		return;
	if (!b64_exact(m->u.e2e.sign_pk, sign_pk, 32) ||
	    !crypto_core_ed25519_is_valid_point(sign_pk)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "sign_pk must be an Ed25519 public key (32 bytes)",
				 "sign_pk");
		return;
	}
	if (!b64_exact(m->u.e2e.box_pk, box_pk, 32) || !hl_e2e_kx_pk_ok(box_pk)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "box_pk must be a usable X25519 public key",
				 "box_pk");
		return;
	}
	j = request_job(s, m, CJ_SET_RETURN, set_return_done);
	if (!j)
		return;
	j->conv_id = v->id;
	memcpy(j->sign_pk, sign_pk, 32);
	memcpy(j->box_pk, box_pk, 32);
	cjob_submit(j);
}

static void return_done(struct contact_job *j, int status)
{
	struct hl_contacts *c = j->c;
	struct hl_session *s = j->s;
	struct hl_conv_live *v;
	char sec[sodium_base64_ENCODED_LEN(HL_TOKEN_BYTES,
					   sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char idstr[24];
	bool open;
	json_t *r;

	s->contact_busy = false;
	if (!s->wsi)
		return;
	if (status == HL_ENOTFOUND) {
		/* A correctly signed code nobody holds: what a guess looks
		 * like, so it counts like a wrong signature. */
		hl_session_secret_refused(s, j->id, HL_ERR_AUTH_FAILED,
					  "there is no chat for that code any "
					  "more");
		return;
	}
	if (status != 0) {
		hl_session_error(s, j->id, store_err(status), NULL, NULL);
		return;
	}
	open = j->conv.state != HL_CONV_ENDED && j->conv.state != HL_CONV_WRAPPED;
	v = open ? find_conv(c, j->conv_id) : NULL;
	r = hl_proto_reply("contact.returned", j->id);
	conv_id_str(idstr, sizeof(idstr), j->conv_id);
	json_object_set_new(r, "conversation", json_string(idstr));
	json_object_set_new(r, "state", json_string(hl_conv_state_name(j->conv.state)));
	json_object_set_new(r, "last_seq", json_integer(j->conv.last_seq));
	json_object_set(r, "events", j->events);
	json_object_set_new(r, "more", json_boolean(j->more));
	json_object_set_new(r, "up_to", json_integer(j->up_to));
	json_object_set(r, "wraps", j->wraps);
	json_object_set_new(r, "wraps_more", json_boolean(j->wraps_page.more));
	if (j->wraps_page.more)
		json_object_set_new(r, "wraps_next", json_integer(j->wraps_page.next));
	if (v) {
		/* Carry on in the open chat, as a resume would. */
		if (v->contact && v->contact != s) {
			v->contact->conv = NULL;
			hl_session_close(v->contact, 1008, "resumed elsewhere");
		}
		v->contact = s;
		s->conv = v;
		s->ended_conv = 0;
		memcpy(v->resume_hash, j->hash, sizeof(v->resume_hash));
		v->have_resume = true;
		sodium_bin2base64(sec, sizeof(sec), j->secret, sizeof(j->secret),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		json_object_set_new(r, "resume", json_string(sec));
		sodium_memzero(sec, sizeof(sec));
	} else {
		/* Read-only here, as a chat that ended on this socket is, so
		 * that the history's further pages can be fetched (more). */
		s->ended_conv = j->conv_id;
	}
	hl_session_send(s, r);
	json_decref(r);
	hl_info("contact.returned", "conn=%s conv=%lld open=%d", s->id_str,
		(long long)j->conv_id, v ? 1 : 0);
}

void hl_contact_return(struct hl_session *s, const struct hl_msg *m)
{
	unsigned char pk[32], sig[64];
	struct contact_job *j;

	if (s->conv || s->contact_busy) {
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "this connection already has a chat", NULL);
		return;
	}
	if (!hl_session_may_try_secret(s, m->id))
		return;
	if (!b64_exact(m->u.inbox.return_pk, pk, 32) ||
	    !crypto_core_ed25519_is_valid_point(pk)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "return_pk must be an Ed25519 public key",
				 "return_pk");
		return;
	}
	if (!b64_exact(m->u.inbox.signature, sig, 64)) {
		hl_session_error(s, m->id, HL_ERR_BAD_FIELD,
				 "signature must be 64 bytes in base64url",
				 "signature");
		return;
	}
	if (!hl_inbox_challenge_answer(&s->srv->inbox, s, pk,
				       "helpline-return-v1", sig)) {
		hl_warn("contact.return_refused", "conn=%s", s->id_str);
		hl_session_secret_refused(s, m->id, HL_ERR_AUTH_FAILED,
					  "that did not work; ask for a new "
					  "challenge");
		return;
	}
	j = request_job(s, m, CJ_RETURN, return_done);
	if (!j)
		return;
	if (!(j->events = json_array()) || !(j->wraps = json_array())) {
		cjob_free(j);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, NULL, NULL);
		return;
	}
	memcpy(j->sign_pk, pk, 32);
	j->contact_view = true;
	j->budget = hl_session_page_budget(s);
	j->wraps_page.budget = j->budget;
	randombytes_buf(j->secret, sizeof(j->secret));
	hl_keys_hash_token(&s->srv->keys, j->secret, sizeof(j->secret), j->hash);
	s->contact_busy = true;
	cjob_submit(j);
}
