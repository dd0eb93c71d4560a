/* routing.c: who gets which chat. Policy only: the conversation state and
 * its store jobs stay in contact.c (hl_contacts_offer / _unoffer / _take).
 *
 * Offers go, in queue order, to the best counsellor who is on shift,
 * connected, "available" and below capacity, who speaks the young person's
 * language (or they gave none) and did not just pass on this chat: first
 * one whose skills match a topic, then the least loaded, then whoever was
 * offered a chat longest ago. An offer not accepted within
 * queue.offer_timeout goes to the next counsellor; the first is set away
 * and supervisors are alerted. */
#include "routing.h"
#include "auth.h"
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

/* How long a counsellor who declined or let an offer lapse is passed over
 * for that chat (unless nobody else can take it). */
#define PASS_WINDOW_MS (2 * 60 * 1000)
/* An "immediate" risk contact waiting this long alerts supervisors. */
#define IMMEDIATE_WAIT_ALERT_MS (60 * 1000)
/* Anyone waiting this long alerts supervisors (once per chat). */
#define LONG_WAIT_ALERT_MS (15 * 60 * 1000)

static struct hl_contacts *contacts_of(struct hl_session *s)
{
	return &s->srv->contacts;
}

static bool counsels(const struct hl_auth_staff *st)
{
	return (st->row.roles & HL_STAFF_COUNSELLOR) &&
	       st->row.state == HL_STAFF_ACTIVE;
}

/* Does any of v's topics appear in the counsellor's skills? */
static bool skill_match(const struct hl_conv_live *v, const char *skills)
{
	char buf[HL_CONV_TAGS_MAX + 1];
	char *save = NULL;

	if (!skills[0] || !v->topics[0])
		return false;
	snprintf(buf, sizeof(buf), "%s", v->topics);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (hl_queue_in_list(t, skills))
			return true;
	return false;
}

/* ---- offers ----------------------------------------------------------------- */

/* One counsellor who could take a chat now. The account pointer is valid
 * for one routing pass (nothing reloads accounts meanwhile). */
struct cand {
	struct hl_auth_staff *st;
	int load;
};

/*
 * Counts, in one pass over the live conversations, each account's load
 * (hl_contacts_load_holder) into load[], its active chats into chats[] and
 * its live offers into offers[] (chats and offers may be NULL), indexed
 * like a->staff. Only conversations someone holds or is offered cost a
 * look-up.
 */
static void staff_counts(struct hl_contacts *c, int *load, int *chats,
			 int *offers)
{
	struct hl_auth *a = &c->srv->auth;

	for (struct hl_conv_live *v = c->convs; v; v = v->next) {
		int64_t who = hl_contacts_load_holder(v);
		struct hl_auth_staff *st;

		if (!who || !(st = hl_auth_staff_by_id(a, who)))
			continue;
		load[st - a->staff]++;
		if (chats && v->state == HL_CONV_ACTIVE && v->counsellor_id == who)
			chats[st - a->staff]++;
		if (offers && v->offer_staff == who)
			offers[st - a->staff]++;
	}
}

static void route(struct hl_contacts *c, int64_t now)
{
	struct hl_auth *a = &c->srv->auth;
	struct cand *cands;
	int *load;
	size_t n = 0, room = 0;

	if (c->srv->cfg.queue_routing == HL_ROUTING_PULL ||
	    hl_queue_length(&c->queue) == 0 || c->srv->stopping)
		return;
	cands = calloc(a->nstaff ? a->nstaff : 1, sizeof(*cands));
	load = calloc(a->nstaff ? a->nstaff : 1, sizeof(*load));
	if (!cands || !load) {
		free(cands);
		free(load);
		return;
	}
	for (size_t i = 0; i < a->nstaff; i++) {
		struct hl_auth_staff *st = &a->staff[i];

		if (counsels(st) && st->on_shift && st->connections > 0 &&
		    st->presence == HL_PRESENCE_AVAILABLE)
			cands[n++] = (struct cand){st, 0};
	}
	/* The loads cost a walk of every live conversation: only when
	 * someone could take one. */
	if (n > 0)
		staff_counts(c, load, NULL, NULL);
	for (size_t k = 0; k < n; k++) {
		cands[k].load = load[cands[k].st - a->staff];
		room += cands[k].load < cands[k].st->row.capacity;
	}
	free(load);
	for (uint32_t i = 0; i < c->queue.n && room > 0; i++) {
		struct hl_conv_live *v = hl_container_of(c->queue.v[i],
						       struct hl_conv_live, qe);
		struct hl_auth_staff *best = NULL;
		struct cand *bc = NULL;
		bool best_skill = false;

		if (v->state != HL_CONV_QUEUED || v->busy)
			continue;
		for (int pass = 0; pass < 2 && !best; pass++)
			for (size_t k = 0; k < n; k++) {
				struct hl_auth_staff *st = cands[k].st;
				bool skill;

				if (cands[k].load >= st->row.capacity ||
				    !hl_queue_speaks(st->row.languages, v->qe.language))
					continue;
				/* First pass: skip those who just passed on it. */
				if (pass == 0 &&
				    hl_contacts_passed(v, st->row.id, now,
						       PASS_WINDOW_MS))
					continue;
				skill = skill_match(v, st->row.skills);
				if (!best || (skill && !best_skill) ||
				    (skill == best_skill &&
				     (cands[k].load < bc->load ||
				      (cands[k].load == bc->load &&
				       st->last_offer_ms < best->last_offer_ms)))) {
					best = st;
					bc = &cands[k];
					best_skill = skill;
				}
			}
		if (!best)
			continue;
		/* A second pass may pick someone who passed on it minutes
		 * ago; but never hand the same offer straight back. */
		if (hl_contacts_passed(v, best->row.id, now,
				       (int64_t)c->srv->cfg.queue_offer_timeout * 1000))
			continue;
		best->last_offer_ms = now;
		if (++bc->load == best->row.capacity)
			room--;
		hl_contacts_offer(c, v, best->row.id);
	}
	free(cands);
}

static void on_kick(uv_timer_t *t)
{
	struct hl_contacts *c = t->data;

	c->routing.kick_armed = false;
	route(c, hl_now_ms());
}

void hl_routing_kick(struct hl_contacts *c)
{
	if (!c->routing.kick_open || c->routing.kick_armed)
		return;
	c->routing.kick_armed = true;
	uv_timer_start(&c->routing.kick, on_kick, 0, 0);
}

void hl_routing_init(struct hl_contacts *c)
{
	uv_timer_init(&c->srv->loop, &c->routing.kick);
	c->routing.kick.data = c;
	c->routing.kick_open = true;
}

void hl_routing_stop(struct hl_contacts *c)
{
	if (c->routing.kick_open) {
		c->routing.kick_open = false;
		uv_close((uv_handle_t *)&c->routing.kick, NULL);
	}
}

void hl_routing_free(struct hl_contacts *c)
{
	free(c->routing.last_view);
	c->routing.last_view = NULL;
}

/* ---- alerts ------------------------------------------------------------------ */

struct alert_job {
	struct hl_store_job job;
	struct hl_alert a;
};

static int alert_exec(struct hl_store_job *job, sqlite3 *db,
		      sqlite3_stmt *const *stmts)
{
	struct alert_job *j = hl_container_of(job, struct alert_job, job);
	sqlite3_stmt *st = stmts[HL_STMT_ALERT_INSERT];
	int rc;

	(void)db;
	sqlite3_bind_int64(st, 1, j->a.at);
	sqlite3_bind_text(st, 2, j->a.kind, -1, SQLITE_STATIC);
	if (j->a.staff_id)
		sqlite3_bind_int64(st, 3, j->a.staff_id);
	if (j->a.conv_id)
		sqlite3_bind_int64(st, 4, j->a.conv_id);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : hl_store_sqlite_status(rc);
}

static void alert_done(struct hl_store_job *job, int status)
{
	struct alert_job *j = hl_container_of(job, struct alert_job, job);

	if (status != 0)
		hl_error("alert.not_stored", "kind=%s status=%d", j->a.kind, status);
	free(j);
}

static json_t *alert_json(const struct hl_alert *al)
{
	char idstr[24];
	json_t *o = json_object();

	snprintf(idstr, sizeof(idstr), "%lld", (long long)al->conv_id);
	json_object_set_new(o, "at", json_integer(al->at));
	json_object_set_new(o, "kind", json_string(al->kind));
	json_object_set_new(o, "staff_id", al->staff_id ? json_integer(al->staff_id)
							: json_null());
	json_object_set_new(o, "conversation", al->conv_id ? json_string(idstr)
							   : json_null());
	json_object_set_new(o, "detail", json_string(al->detail));
	return o;
}

void hl_routing_alert(struct hl_contacts *c, const char *kind,
		      int64_t staff_id, int64_t conv_id, const char *detail)
{
	struct hl_routing *r = &c->routing;
	struct hl_alert *al = &r->alerts[r->next_alert];
	struct alert_job *j;
	json_t *o;

	memset(al, 0, sizeof(*al));
	al->at = hl_now_ms();
	snprintf(al->kind, sizeof(al->kind), "%s", kind);
	al->staff_id = staff_id;
	al->conv_id = conv_id;
	snprintf(al->detail, sizeof(al->detail), "%s", detail ? detail : "");
	r->next_alert = (r->next_alert + 1) % HL_ALERTS_KEPT;
	c->srv->metrics.alerts++;
	if (r->nalerts < HL_ALERTS_KEPT)
		r->nalerts++;
	hl_warn("alert", "kind=%s staff=%lld conv=%lld", kind,
		(long long)staff_id, (long long)conv_id);
	/* Every supervisor logged in hears it at once. */
	o = alert_json(al);
	json_object_set_new(o, "type", json_string("alert"));
	for (struct hl_session *x = c->srv->sessions; x; x = x->next) {
		struct hl_auth_staff *st;

		if (x->role != HL_ROLE_STAFF || !x->staff_id)
			continue;
		st = hl_auth_staff_by_id(&c->srv->auth, x->staff_id);
		if (st && (st->row.roles & HL_STAFF_SUPERVISOR))
			hl_session_send(x, o);
	}
	json_decref(o);
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->job.exec = alert_exec;
	j->job.done = alert_done;
	j->a = *al;
	if (hl_store_submit(&c->srv->store, &j->job) != 0) {
		hl_error("alert.not_stored", "kind=%s status=refused", kind);
		free(j);
	}
}

/* ---- the watchdog ------------------------------------------------------------- */

static void watchdog(struct hl_contacts *c, int64_t now)
{
	struct hl_auth *a = &c->srv->auth;

	for (struct hl_conv_live *v = c->convs; v; v = v->next) {
		struct hl_auth_staff *st;

		if (v->state == HL_CONV_QUEUED && !v->alerted_wait &&
		    v->risk >= HL_RISK_IMMEDIATE &&
		    now - v->created_at >= IMMEDIATE_WAIT_ALERT_MS) {
			v->alerted_wait = true;
			hl_routing_alert(c, "immediate_waiting", 0, v->id,
					 "an immediate-risk young person has "
					 "waited over a minute");
		} else if (v->state == HL_CONV_QUEUED && !v->alerted_wait &&
			   now - v->created_at >= LONG_WAIT_ALERT_MS) {
			/* E.g. nobody on shift speaks their language. */
			v->alerted_wait = true;
			hl_routing_alert(c, "long_wait", 0, v->id,
					 "a young person has waited over 15 minutes");
		}
		if (!v->offer_staff || v->busy)
			continue;
		st = hl_auth_staff_by_id(a, v->offer_staff);
		if (!st || st->connections == 0 || !st->on_shift) {
			hl_contacts_unoffer(c, v, "withdrawn");
		} else if (v->offer_expires_ms && now >= v->offer_expires_ms) {
			int64_t who = v->offer_staff;

			hl_contacts_unoffer(c, v, "timeout");
			c->srv->metrics.offers_expired++;
			/* Withdraw their other offers too: they are not there. */
			hl_contacts_withdraw_offers(c, who);
			hl_auth_set_presence(a, st, HL_PRESENCE_AWAY,
					     "an offer was not answered in time");
			hl_routing_alert(c, "offer_timeout", who, v->id,
					 "a counsellor did not answer an offer; "
					 "they were set away");
		}
	}
}

/* ---- the supervisors' view ---------------------------------------------------- */

/* One account of the staff list, with what it holds now. */
struct staff_row {
	const struct hl_auth_staff *st;
	int load;   /* active chats plus live offers (hl_contacts_load_of) */
	int chats;  /* active chats held */
	int offers; /* live offers to them */
};

/*
 * Calls fn(arg, row) for every counsellor and supervisor who is on shift or
 * connected, in account order: the population of the supervisors' view and
 * of staff.colleagues. Returns 0, or HL_ENOMEM without calling fn.
 */
static int each_staff_row(struct hl_contacts *c,
			  void (*fn)(void *arg, const struct staff_row *row),
			  void *arg)
{
	struct hl_auth *a = &c->srv->auth;
	size_t ns = a->nstaff ? a->nstaff : 1;
	int *load = calloc(ns, sizeof(*load)), *chats = calloc(ns, sizeof(*chats)),
	    *offers = calloc(ns, sizeof(*offers));

	if (!load || !chats || !offers) {
		free(load);
		free(chats);
		free(offers);
		return HL_ENOMEM;
	}
	staff_counts(c, load, chats, offers);
	for (size_t i = 0; i < a->nstaff; i++) {
		const struct hl_auth_staff *st = &a->staff[i];

		if (!(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR)) ||
		    (!st->on_shift && st->connections == 0))
			continue;
		fn(arg, &(struct staff_row){st, load[i], chats[i], offers[i]});
	}
	free(load);
	free(chats);
	free(offers);
	return 0;
}

/* A row of the view's counsellors list; arg is the JSON array. */
static void view_row(void *arg, const struct staff_row *row)
{
	const struct hl_auth_staff *st = row->st;

	json_array_append_new(arg, json_pack(
		"{s:I, s:s, s:s, s:b, s:o, s:i, s:i, s:i, s:i}",
		"staff_id", (json_int_t)st->row.id,
		"display_name", st->row.display_name,
		"presence", hl_presence_name(st->presence),
		"on_shift", st->on_shift,
		"shift_started_at", st->shift_started_at
			? json_integer(st->shift_started_at) : json_null(),
		"chats", row->chats, "offers", row->offers,
		"capacity", st->row.capacity,
		"connections", st->connections));
}

static json_t *view_json(struct hl_contacts *c, const char *type,
			 const char *id, int64_t now)
{
	static const char *const names[HL_RISK__COUNT] = {"standard", "elevated",
							   "high", "immediate"};
	uint32_t counts[HL_RISK__COUNT];
	json_t *r = hl_proto_reply(type, id), *by = json_object(),
	       *staff = json_array(), *alerts = json_array();
	int offered = 0, active = 0;

	hl_queue_counts(&c->queue, counts);
	for (int i = 0; i < HL_RISK__COUNT; i++)
		json_object_set_new(by, names[i], json_integer(counts[i]));
	for (struct hl_conv_live *v = c->convs; v; v = v->next) {
		offered += v->offer_staff != 0;
		active += v->state == HL_CONV_ACTIVE;
	}
	json_object_set_new(r, "waiting", json_integer(hl_queue_length(&c->queue)));
	json_object_set_new(r, "by_risk", by);
	json_object_set_new(r, "longest_wait_s",
			    json_integer(hl_queue_longest_wait_ms(&c->queue, now) / 1000));
	json_object_set_new(r, "max", json_integer(c->srv->cfg.queue_max));
	json_object_set_new(r, "offered", json_integer(offered));
	json_object_set_new(r, "active", json_integer(active));
	/* Out of memory: the view goes out without its counsellors. */
	(void)each_staff_row(c, view_row, staff);
	json_object_set_new(r, "counsellors", staff);
	for (unsigned k = 0; k < c->routing.nalerts; k++) {
		unsigned i = (c->routing.next_alert + HL_ALERTS_KEPT - 1 - k) %
			     HL_ALERTS_KEPT;

		json_array_append_new(alerts, alert_json(&c->routing.alerts[i]));
	}
	json_object_set_new(r, "alerts", alerts);
	return r;
}

static void push_view(struct hl_contacts *c, int64_t now)
{
	bool any = false;
	json_t *v;
	char *text;

	for (struct hl_session *x = c->srv->sessions; x && !any; x = x->next)
		any = x->watching;
	if (!any)
		return;
	v = view_json(c, "queue.view", NULL, now);
	text = json_dumps(v, JSON_COMPACT);
	if (text && (!c->routing.last_view || strcmp(text, c->routing.last_view))) {
		for (struct hl_session *x = c->srv->sessions; x; x = x->next)
			if (x->watching)
				hl_session_send(x, v);
		free(c->routing.last_view);
		c->routing.last_view = text;
		text = NULL;
	}
	free(text);
	json_decref(v);
}

void hl_routing_tick(struct hl_contacts *c, int64_t now_ms_)
{
	watchdog(c, now_ms_);
	route(c, now_ms_);
	push_view(c, now_ms_);
}

void hl_queue_stats(struct hl_session *s, const struct hl_msg *m)
{
	json_t *r = view_json(contacts_of(s), "queue.stats", m->id, hl_now_ms());

	hl_session_send(s, r);
	json_decref(r);
}

void hl_queue_watch(struct hl_session *s, const struct hl_msg *m)
{
	json_t *r;

	s->watching = m->u.watch.on != 0;
	if (!s->watching) {
		r = hl_proto_reply("queue.watching", m->id);
		json_object_set_new(r, "on", json_false());
	} else {
		r = view_json(contacts_of(s), "queue.view", m->id, hl_now_ms());
	}
	hl_session_send(s, r);
	json_decref(r);
}

/* ---- staff.colleagues: whom a chat can be handed to ------------------------- */

/* The roles of an account as the wire names them (as in staff.list). */
struct colleagues {
	int64_t self;  /* the caller, left out */
	json_t *list;
};

/* A row of staff.colleagues: what a counsellor needs to choose whom to
 * transfer to, and nothing else (no username, no connection count). */
static void colleague_row(void *arg, const struct staff_row *row)
{
	struct colleagues *cl = arg;
	const struct hl_auth_staff *st = row->st;

	if (st->row.id == cl->self)
		return;
	json_array_append_new(cl->list, json_pack(
		"{s:I, s:s, s:o, s:s, s:b, s:i, s:i, s:s, s:b}",
		"staff_id", (json_int_t)st->row.id,
		"display_name", st->row.display_name,
		"roles", hl_auth_roles_json(st->row.roles),
		"presence", hl_presence_name(st->presence),
		"on_shift", st->on_shift,
		"chats", row->chats,
		"capacity", st->row.capacity,
		"languages", st->row.languages,
		"can_take", hl_contacts_transfer_target(st, row->load) ==
				    HL_TRANSFER_OK));
}

void hl_staff_colleagues(struct hl_session *s, const struct hl_msg *m)
{
	struct colleagues cl = {s->staff_id, json_array()};
	json_t *r;

	if (!cl.list || each_staff_row(contacts_of(s), colleague_row, &cl) != 0) {
		json_decref(cl.list);
		hl_session_error(s, m->id, HL_ERR_INTERNAL, "out of memory", NULL);
		return;
	}
	r = hl_proto_reply("staff.colleagues", m->id);
	json_object_set_new(r, "staff", cl.list);
	hl_session_send(s, r);
	json_decref(r);
}

/* ---- counsellors choose: queue.take, queue.pick, queue.list ------------------ */

/* Common checks; answers and returns NULL when s may not take a chat. */
static struct hl_auth_staff *may_take(struct hl_session *s, const char *id,
				      bool pulling)
{
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);

	if (!(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR))) {
		hl_session_error(s, id, HL_ERR_FORBIDDEN,
				 "only counsellors take chats", "type");
		return NULL;
	}
	if (pulling && s->srv->cfg.queue_routing == HL_ROUTING_OFFER) {
		hl_session_error(s, id, HL_ERR_FORBIDDEN,
				 "chats are offered to counsellors automatically "
				 "here (queue.routing = offer)", "type");
		return NULL;
	}
	if (hl_contacts_load_of(contacts_of(s), s->staff_id) >= st->row.capacity) {
		hl_session_error(s, id, HL_ERR_BAD_STATE,
				 "you are at your chat capacity", NULL);
		return NULL;
	}
	return st;
}

struct take_filter {
	int64_t staff_id;
};

/* Skips people being offered to someone else or changing state. */
static bool not_takeable(const struct hl_queue_entry *e, void *arg)
{
	const struct hl_conv_live *v = hl_container_of(e, struct hl_conv_live, qe);
	const struct take_filter *f = arg;

	if (v->busy)
		return true;
	return v->state != HL_CONV_QUEUED && v->offer_staff != f->staff_id;
}

void hl_queue_take(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	struct hl_auth_staff *st = may_take(s, m->id, true);
	struct take_filter f = {s->staff_id};
	struct hl_queue_entry *e;

	if (!st)
		return;
	e = hl_queue_first(&c->queue, st->row.languages, not_takeable, &f);
	if (!e) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "nobody is waiting whom you can take", NULL);
		return;
	}
	hl_contacts_take(s, m->id, hl_container_of(e, struct hl_conv_live, qe));
}


void hl_queue_pick(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	struct hl_conv_live *v;

	if (!may_take(s, m->id, true))
		return;
	v = hl_contacts_find(c, hl_conv_id_parse(m->u.chat.conversation));
	if (!v || !v->qe.queued) {
		hl_session_error(s, m->id, HL_ERR_NOT_FOUND,
				 "nobody with that id is waiting", "conversation");
		return;
	}
	if (v->busy || (v->offer_staff && v->offer_staff != s->staff_id)) {
		hl_session_error(s, m->id, HL_ERR_CONFLICT,
				 "that chat is being offered to or taken by "
				 "another counsellor", "conversation");
		return;
	}
	hl_contacts_take(s, m->id, v);
}

void hl_queue_list(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_contacts *c = contacts_of(s);
	struct hl_auth_staff *st = hl_auth_staff_of(&s->srv->auth, s);
	json_t *r, *list;
	int64_t now = hl_now_ms();
	char idstr[24];
	const char *band;

	if (!(st->row.roles & (HL_STAFF_COUNSELLOR | HL_STAFF_SUPERVISOR))) {
		hl_session_error(s, m->id, HL_ERR_FORBIDDEN,
				 "only counsellors and supervisors see the queue",
				 "type");
		return;
	}
	r = hl_proto_reply("queue.list", m->id);
	list = json_array();
	for (uint32_t i = 0; i < c->queue.n && i < 200; i++) {
		const struct hl_conv_live *v = hl_container_of(
			c->queue.v[i], struct hl_conv_live, qe);
		json_t *o = json_object();

		snprintf(idstr, sizeof(idstr), "%lld", (long long)v->id);
		band = hl_age_band_name(v->age_band);
		json_object_set_new(o, "conversation", json_string(idstr));
		json_object_set_new(o, "position", json_integer(i + 1));
		json_object_set_new(o, "risk", json_integer(v->risk));
		json_object_set_new(o, "topics", json_string(v->topics));
		json_object_set_new(o, "age_band", band ? json_string(band)
							: json_null());
		json_object_set_new(o, "danger_now", json_boolean(v->danger_now));
		json_object_set_new(o, "language", json_string(v->qe.language));
		json_object_set_new(o, "waited_s",
				    json_integer((now - v->created_at) / 1000));
		json_object_set_new(o, "offered", json_boolean(v->offer_staff != 0 ||
								 v->busy));
		json_array_append_new(list, o);
	}
	json_object_set_new(r, "waiting", json_integer(hl_queue_length(&c->queue)));
	json_object_set_new(r, "entries", list);
	hl_session_send(s, r);
	json_decref(r);
}

/* ---- offer.accept / offer.decline ---------------------------------------------- */

static struct hl_conv_live *offered_to(struct hl_session *s,
				       const struct hl_msg *m)
{
	struct hl_conv_live *v = hl_contacts_find(contacts_of(s),
						  hl_conv_id_parse(m->u.chat.conversation));

	if (v && v->offer_staff == s->staff_id && !v->busy)
		return v;
	if (v && v->counsellor_id == s->staff_id &&
	    (v->state == HL_CONV_ACTIVE || v->busy))
		hl_session_error(s, m->id, HL_ERR_BAD_STATE,
				 "you have already accepted this chat",
				 "conversation");
	else
		hl_session_error(s, m->id, HL_ERR_EXPIRED,
				 "this offer has expired or was withdrawn",
				 "conversation");
	return NULL;
}

void hl_offer_accept(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = offered_to(s, m);

	if (v)
		hl_contacts_take(s, m->id, v);
}

void hl_offer_decline(struct hl_session *s, const struct hl_msg *m)
{
	struct hl_conv_live *v = offered_to(s, m);
	json_t *r;

	if (!v)
		return;
	hl_contacts_unoffer(contacts_of(s), v, "declined");
	r = hl_proto_reply("offer.declined", m->id);
	json_object_set_new(r, "conversation", json_string(m->u.chat.conversation));
	hl_session_send(s, r);
	json_decref(r);
}
