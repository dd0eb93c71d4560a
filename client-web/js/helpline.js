// helpline.js: the Helpline wire protocol (docs/protocol.md) for the pages
// and for tests. One plain ES module, no dependencies, no build step: it runs
// unchanged in the browser and in Node (pass the `ws` package's WebSocket,
// as Node 20 has none built in). It keeps nothing in storage: secrets and
// tokens live in memory, and the app decides what, if anything, to keep.
//
// What it guarantees the app, on a bad network:
// - a message given to send() is sent with one request id until the server
//   acknowledges it (after a drop it is sent again with the same id; the
//   server stores it once), and send() resolves only with that ack;
// - every conversation event reaches the app once, in seq order, across
//   drops, reconnects and resyncs.

/** An error reply from the server: code, field and message as sent. */
export class HelplineError extends Error {
  constructor(reply) {
    super(reply.message || reply.code);
    this.name = 'HelplineError';
    this.code = reply.code;
    this.field = reply.field;
    if (reply.retry_after !== undefined) this.retry_after = reply.retry_after;
  }
}

/** base64url without padding <-> bytes. */
export const b64url = {
  encode(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode(text) {
    const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  },
};

function randomTag() {
  const b = new Uint8Array(6);
  globalThis.crypto.getRandomValues(b);
  return b64url.encode(b);
}

/** A tiny event emitter: on(type, fn) returns an unsubscribe function. */
export class Emitter {
  constructor() { this.handlers = new Map(); }
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type)?.delete(fn);
  }
  emit(type, value) {
    for (const fn of this.handlers.get(type) ?? []) {
      try { fn(value); } catch (e) { queueMicrotask(() => { throw e; }); }
    }
  }
}

/**
 * One WebSocket to /ws with hello done, request/response by id and pushes.
 * Events: 'push' (every frame without a pending id), 'close' ({code, reason}).
 */
export class Connection extends Emitter {
  /**
   * @param {object} o
   * @param {string} o.url  ws:// or wss:// URL of /ws
   * @param {string} o.protocol  'helpline.contact.v1' or 'helpline.staff.v1'
   * @param {Function} [o.WebSocket]  constructor (default globalThis.WebSocket)
   * @param {object} [o.wsOptions]  extra constructor options (Node's ws: {origin})
   * @param {number} [o.timeoutMs]  per request (default 15000)
   */
  constructor(o) {
    super();
    this.o = { ...o, timeoutMs: o.timeoutMs ?? 15000 };
    this.pending = new Map();
    this.n = 0;
    this.tag = randomTag();
    this.ws = null;
  }

  /** Opens the socket and says hello; resolves with the welcome. */
  open() {
    const WS = this.o.WebSocket ?? globalThis.WebSocket;
    return new Promise((resolve, reject) => {
      const ws = this.o.wsOptions ? new WS(this.o.url, this.o.protocol, this.o.wsOptions) : new WS(this.o.url, this.o.protocol);
      this.ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.request({ type: 'hello', version: 1, client: 'helpline.js/1' }).then(resolve, reject);
      };
      ws.onmessage = (e) => this.#frame(e.data);
      ws.onerror = () => { if (!opened) reject(new Error('cannot connect')); };
      ws.onclose = (e) => {
        for (const [, p] of this.pending) { clearTimeout(p.timer); p.reject(new Error('connection closed')); }
        this.pending.clear();
        if (!opened) reject(new Error('cannot connect'));
        this.emit('close', { code: e.code, reason: e.reason });
      };
    });
  }

  get open_() { return this.ws && this.ws.readyState === 1; }

  /** Sends obj with a fresh (or the given) id; resolves with the reply,
   * rejects with HelplineError for an error reply. */
  request(obj) {
    const id = obj.id ?? `${this.tag}.${++this.n}`;
    return new Promise((resolve, reject) => {
      if (!this.open_) return reject(new Error('not connected'));
      const timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`no reply to ${obj.type}`)); }, this.o.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...obj, id }));
    });
  }

  /** Sends obj without waiting for a reply (typing, receipts). */
  notify(obj) {
    if (this.open_) this.ws.send(JSON.stringify({ ...obj, id: obj.id ?? `${this.tag}.${++this.n}` }));
  }

  close() { this.ws?.close(1000); }

  /** Drops the socket at once, as a failing network would (for tests). */
  kill() { if (this.ws?.terminate) this.ws.terminate(); else this.ws?.close(); }

  #frame(data) {
    let m;
    try { m = JSON.parse(typeof data === 'string' ? data : new TextDecoder().decode(data)); } catch { return; }
    const p = m.id !== undefined && this.pending.get(m.id);
    if (p) {
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.type === 'error') p.reject(new HelplineError(m)); else p.resolve(m);
      return;
    }
    this.emit('push', m);
  }
}

/**
 * One conversation's events in seq order, once. While a sync is running,
 * live events wait, then both are merged; an event at or below the last
 * delivered seq is a duplicate and dropped.
 */
class Stream {
  constructor(emit) { this.lastSeq = 0; this.syncing = false; this.held = []; this.deliver = emit; }
  push(ev) { if (this.syncing) this.held.push(ev); else this.#out(ev); }
  begin() { this.syncing = true; } // idempotent; end() flushes once
  end() {
    this.syncing = false;
    const evs = this.held.sort((a, b) => a.seq - b.seq);
    this.held = [];
    for (const ev of evs) this.#out(ev);
  }
  #out(ev) {
    if (ev.seq <= this.lastSeq) return;
    this.lastSeq = ev.seq;
    this.deliver(ev);
  }
}

/** Reconnection with jittered exponential back-off. */
class Backoff {
  constructor({ minMs = 500, maxMs = 15000 } = {}) { this.min = minMs; this.max = maxMs; this.n = 0; }
  next() { const cap = Math.min(this.max, this.min * 2 ** this.n++); return cap / 2 + Math.random() * cap / 2; }
  reset() { this.n = 0; }
}

/** What both clients share: the connection, reconnects and the outbox. */
class Client extends Emitter {
  constructor(protocol, o) {
    super();
    this.o = o;
    this.protocol = protocol;
    this.conn = null;
    this.backoff = new Backoff(o.backoff);
    this.closed = false;
    this.online = false;
    this.outbox = new Map(); // id -> {obj, resolve, reject}
    this.idTag = randomTag();
    this.idN = 0;
  }

  async connect() {
    const conn = new Connection({ url: this.o.url, protocol: this.protocol, WebSocket: this.o.WebSocket, wsOptions: this.o.wsOptions, timeoutMs: this.o.timeoutMs });
    conn.on('push', (m) => this.handlePush(m));
    conn.on('close', (c) => this.#lost(conn, c));
    await conn.open();
    this.conn = conn;
    return conn;
  }

  #lost(conn, c) {
    if (conn !== this.conn) return;
    this.conn = null;
    if (this.online) { this.online = false; this.emit('offline', c); }
    if (this.closed || !this.resumable()) return;
    if (c.code === 1008 && /resumed elsewhere|logged out|revoked|disabled|expired|reset/.test(c.reason)) {
      this.emit('ended', c);
      return;
    }
    setTimeout(() => this.#retry(), this.backoff.next());
  }

  async #retry() {
    if (this.closed || this.conn) return;
    try {
      await this.connect();
      await this.resumeSession();
      this.backoff.reset();
      this.online = true;
      this.emit('online');
      this.flush();
    } catch (e) {
      if (e instanceof HelplineError && e.code === 'auth_failed') { this.emit('ended', { reason: e.message }); return; }
      this.conn?.kill();
      this.conn = null;
      setTimeout(() => this.#retry(), this.backoff.next());
    }
  }

  /** Sends an idempotent request (chat.send, chat.note): kept until the
   * server answers, re-sent with the same id after every reconnect. */
  durable(obj) {
    const id = `${this.idTag}-${++this.idN}`;
    return new Promise((resolve, reject) => {
      const entry = { obj: { ...obj, id }, resolve, reject };
      this.outbox.set(id, entry);
      this.#try(id, entry);
    });
  }

  #try(id, entry) {
    if (!this.conn || !this.online) return;
    this.conn.request(entry.obj).then((r) => {
      if (this.outbox.delete(id)) entry.resolve(r);
    }, (e) => {
      if (e instanceof HelplineError && e.code !== 'rate_limited' && e.code !== 'busy' && e.code !== 'store_failed') {
        if (this.outbox.delete(id)) entry.reject(e);
      } else if (e instanceof HelplineError) {
        setTimeout(() => this.#try(id, entry), 1000);
      }
      // Connection trouble: the entry stays; flush() sends it again.
    });
  }

  flush() { for (const [id, entry] of this.outbox) this.#try(id, entry); }

  /** Stops for good (no more reconnects). */
  close() {
    this.closed = true;
    this.conn?.close();
    for (const [, e] of this.outbox) e.reject(new Error('client closed'));
    this.outbox.clear();
  }

  request(obj) {
    if (!this.conn || !this.online) return Promise.reject(new Error('offline'));
    return this.conn.request(obj);
  }

  /** The replies to req, one per page of a list the server sends in
   * pages (more, next: protocol.md), to the last; cursor is the request's
   * field for a page's start. */
  async *replies(req, cursor = 'after') {
    for (let at; ;) {
      const r = await this.request(at ? { ...req, [cursor]: at } : req);
      yield r;
      if (!r.more) return;
      at = r.next;
    }
  }

  /** The items under key of such a list, page after page until max of
   * them or the end. */
  async pages(req, key, { cursor = 'after', max = Infinity } = {}) {
    const all = [];
    for await (const r of this.replies(req, cursor)) {
      all.push(...r[key]);
      if (all.length >= max) break;
    }
    return all.slice(0, max);
  }

  /** device.revocations, every page: [{revocation, issuer}]. */
  revocations() { return this.pages({ type: 'device.revocations' }, 'revocations'); }

  /** device.revocations of one or two certificates only (their hashes,
   * Uint8Array): [{revocation, issuer}]. */
  revocationsOf(hashes) {
    return this.request({ type: 'device.revocations', hashes: hashes.map((h) => b64url.encode(h)).join('.') }).then((r) => r.revocations);
  }

  /** key.wraps of conv, every page (after: a wrap id to start after). */
  keyWraps(conv, after) { return this.pages({ type: 'key.wraps', conversation: conv, ...(after ? { after } : {}) }, 'wraps'); }

  /** chat.sync of everything after lastSeq, page by page (the server ends
   * a page at about a quarter of its queue for this socket and says
   * `more`); resolves with the last page's chat.synced. conversation is
   * omitted for a young person's own chat. */
  async syncAll(conversation, lastSeq) {
    const req = conversation == null ? { type: 'chat.sync' } : { type: 'chat.sync', conversation };
    for (let after = lastSeq; ;) {
      const r = await this.conn.request({ ...req, last_seq: after });
      if (!r.more) return r;
      after = r.up_to;
    }
  }
}

/**
 * A young person's client (helpline.contact.v1).
 * Events: 'event' (a chat.event, once, in order), 'position'
 * ({position, estimate_s}), 'typing', 'receipt', 'offline', 'online',
 * 'ended' (the chat cannot be resumed).
 */
export class ContactClient extends Client {
  /** @param {{url: string, WebSocket?: Function, backoff?: {minMs, maxMs}, timeoutMs?: number}} o */
  constructor(o) {
    super('helpline.contact.v1', o);
    this.resume = null; // in memory only
    this.conversation = null;
    this.stream = new Stream((ev) => this.emit('event', ev));
    this.collecting = null; // a Map while collected() runs
  }

  resumable() { return this.resume !== null; }

  /** Connects (if needed) and asks whether the line is open. */
  async lineStatus() {
    if (!this.conn) { await this.connect(); this.online = true; }
    return this.conn.request({ type: 'line.status' });
  }

  /** Starts a chat with the (optional) intake {topics, flags, age_band, language}. */
  async start(intake = {}) {
    if (!this.conn) { await this.connect(); this.online = true; }
    const r = await this.conn.request({ type: 'contact.start', ...intake });
    this.resume = r.resume;
    this.conversation = r.conversation;
    return r;
  }

  async resumeSession() {
    // Live events may arrive on the new socket before the sync's replay:
    // hold them from now on, so none jumps ahead of what was missed.
    this.stream.begin();
    try {
      const r = await this.conn.request({ type: 'contact.resume', resume: this.resume, last_seq: this.stream.lastSeq });
      await this.syncAll(null, this.stream.lastSeq);
      return r;
    } finally {
      this.stream.end();
    }
  }

  /** Fetches what was missed since the last delivered event. */
  async sync() {
    this.stream.begin();
    try { return await this.syncAll(null, this.stream.lastSeq); } finally { this.stream.end(); }
  }

  /** Sends bytes; resolves with the chat.ack once stored. */
  send(bytes) { return this.durable({ type: 'chat.send', payload: b64url.encode(bytes) }); }

  leave() { return this.request({ type: 'contact.leave' }).then((r) => { this.resume = null; return r; }); }
  end() { return this.request({ type: 'chat.end' }); }
  typing() { this.conn?.notify({ type: 'chat.typing' }); }
  delivered(seq) { this.conn?.notify({ type: 'chat.delivered', seq }); }
  read(seq) { this.conn?.notify({ type: 'chat.read', seq }); }

  /** Runs fn with every chat.event that arrives meanwhile kept aside
   * instead of streamed; resolves {value: fn's, events: those events in
   * seq order, once each}. SecureContact.returnWith reads a returned
   * chat's history so, live events that overtake its reply included. */
  async collected(fn) {
    const got = new Map();
    this.collecting = got;
    try {
      const value = await fn();
      return { value, events: [...got.values()].sort((a, b) => a.seq - b.seq) };
    } finally {
      this.collecting = null;
    }
  }

  handlePush(m) {
    if (m.type === 'chat.event' && this.collecting) this.collecting.set(`${m.conversation}:${m.seq}`, m);
    else if (m.type === 'chat.event') this.stream.push(m);
    else if (m.type === 'queue.position') this.emit('position', m);
    else if (m.type === 'chat.typing') this.emit('typing', m);
    else if (m.type === 'chat.receipt') this.emit('receipt', m);
  }
}

/**
 * A member of staff's client (helpline.staff.v1).
 * Events: 'event' (chat.event, once per conversation, in order), 'offer',
 * 'offer.expired', 'offer.withdrawn', 'assigned', 'receipt', 'typing',
 * 'alert', 'escalation' ({escalation, why, alert}), 'referral' ({referral, why}), 'view', 'presence', 'offline', 'online', 'ended'.
 */
export class StaffClient extends Client {
  /** @param {{url: string, WebSocket?: Function, wsOptions?: object, backoff?: object, timeoutMs?: number}} o */
  constructor(o) {
    super('helpline.staff.v1', o);
    this.token = null; // in memory only
    this.streams = new Map(); // conversation -> Stream
  }

  resumable() { return this.token !== null; }

  stream(conv) {
    if (!this.streams.has(conv)) this.streams.set(conv, new Stream((ev) => this.emit('event', ev)));
    return this.streams.get(conv);
  }

  async login(username, password, totp) {
    if (!this.conn) await this.connect();
    const r = await this.conn.request({ type: 'auth.login', username, password, totp });
    this.token = r.token;
    this.online = true;
    return r;
  }

  /** Logs in with a token kept from an earlier login. */
  async resume(token) {
    if (!this.conn) await this.connect();
    this.token = token;
    const r = await this.resumeSession();
    this.online = true;
    return r;
  }

  async resumeSession() {
    // Hold live events of every conversation until its sync is done (see
    // ContactClient.resumeSession).
    const convs = [...this.streams.keys()];
    for (const conv of convs) this.stream(conv).begin();
    try {
      const r = await this.conn.request({ type: 'auth.resume', token: this.token });
      for (const conv of convs) {
        const st = this.stream(conv);
        try {
          await this.syncAll(conv, st.lastSeq);
        } catch (e) {
          if (e.code === 'forbidden') this.streams.delete(conv); else throw e;
        }
        st.end();
      }
      return r;
    } finally {
      for (const conv of convs) this.streams.get(conv)?.end();
    }
  }

  async sync(conv) {
    const st = this.stream(conv);
    st.begin();
    try { return await this.syncAll(conv, st.lastSeq); } finally { st.end(); }
  }

  async #taken(p) {
    const r = await p;
    this.stream(r.conversation);
    await this.sync(r.conversation);
    return r;
  }

  logout() { const p = this.request({ type: 'auth.logout' }); this.token = null; return p; }
  presence(status) { return this.request({ type: 'presence.set', status }); }
  shiftStart() { return this.request({ type: 'shift.start' }); }
  shiftEnd() { return this.request({ type: 'shift.end' }); }
  accept(conv) { return this.#taken(this.request({ type: 'offer.accept', conversation: conv })); }
  decline(conv) { return this.request({ type: 'offer.decline', conversation: conv }); }
  take() { return this.#taken(this.request({ type: 'queue.take' })); }
  pick(conv) { return this.#taken(this.request({ type: 'queue.pick', conversation: conv })); }
  queueList() { return this.request({ type: 'queue.list' }); }
  queueStats() { return this.request({ type: 'queue.stats' }); }
  /** The other counsellors and supervisors on shift or connected, each with can_take (a transfer to them would be accepted now). */
  colleagues() { return this.request({ type: 'staff.colleagues' }).then((r) => r.staff); }
  watch(on = true) { return this.request({ type: 'queue.watch', on: on ? 1 : 0 }); }
  send(conv, bytes) { return this.durable({ type: 'chat.send', conversation: conv, payload: b64url.encode(bytes) }); }
  note(conv, bytes) { return this.durable({ type: 'chat.note', conversation: conv, payload: b64url.encode(bytes) }); }
  tag(conv, tags) { return this.request({ type: 'chat.tag', conversation: conv, tags: tags.join(',') }); }
  end(conv) { return this.request({ type: 'chat.end', conversation: conv }); }
  transfer(conv, to, noteBytes) {
    return this.request({ type: 'chat.transfer', conversation: conv, to, ...(noteBytes ? { note: b64url.encode(noteBytes) } : {}) })
      .then((r) => { this.streams.delete(conv); return r; });
  }
  join(conv) { return this.#taken(this.request({ type: 'chat.join', conversation: conv })); }
  /** Escalations (docs/protocol.md §5.13). noteBytes / reasonsBytes are sealed notes (SecureStaff.sealNote). Each resolves with the escalation object. */
  raiseEscalation(conv, reason, urgency, noteBytes) {
    return this.request({ type: 'escalation.raise', conversation: conv, reason, urgency, ...(noteBytes ? { note: b64url.encode(noteBytes) } : {}) }).then((r) => r.escalation);
  }
  /** device.list, every page (more, next): [{device, staff_id, sign_pk,
   * box_pk, created_at, cert, issuer, certified_at, revoked}], revoked ones
   * last; staffId narrows it to one member of staff's devices. */
  devices(staffId) { return this.pages({ type: 'device.list', ...(staffId ? { staff_id: staffId } : {}) }, 'devices'); }

  /** staff.list (supervisors and admins), every page: the accounts in id order. */
  staffList() { return this.pages({ type: 'staff.list' }, 'staff'); }

  /** The escalations this member of staff may see, newest first: page
   * after page (more, next) until max of them or the end. */
  escalations(max = 200) { return this.pages({ type: 'escalation.list' }, 'escalations', { cursor: 'before', max }); }
  claimEscalation(id) { return this.request({ type: 'escalation.claim', escalation: id }).then((r) => r.escalation); }
  decideEscalation(id, decision, reasonsBytes) {
    return this.request({ type: 'escalation.decide', escalation: id, decision, ...(reasonsBytes ? { reasons: b64url.encode(reasonsBytes) } : {}) }).then((r) => r.escalation);
  }
  /** Has the service countersign an evidence bundle (docs/protocol.md §5.14, docs/evidence.md): bundleText is the file text with signatures.supervisor set. Needs a claim and a fresh auth.reauth. Resolves with {conversation, digest, sig} (digest and sig as Uint8Array; pass sig to bundle.js withServiceSignature). */
  signEvidence(conv, bundleText) {
    return this.request({ type: 'evidence.sign', conversation: conv, bundle: bundleText })
      .then((r) => ({ conversation: r.conversation, digest: b64url.decode(r.digest), sig: b64url.decode(r.sig) }));
  }
  /** What a bundle needs besides chat.sync (docs/protocol.md §5.14 evidence.material): the conversation's STAMP checkpoints [{seq, at, head, sig}] and its escalations' audit entries [{seq, at, actor, action, target, detail, prev_hash, entry_hash}], binary fields as Uint8Array, as bundle.js buildBundle takes them. Needs a claim and a fresh auth.reauth. */
  async evidenceMaterial(conv) {
    const checkpoints = [], audit = [];
    let conversation;
    for await (const r of this.replies({ type: 'evidence.material', conversation: conv })) { // checkpoints first
      checkpoints.push(...r.checkpoints);
      audit.push(...r.audit);
      conversation = r.conversation;
    }
    return {
      conversation,
      checkpoints: checkpoints.map((c) => ({ seq: c.seq, at: c.at, head: b64url.decode(c.head), sig: b64url.decode(c.sig) })),
      audit: audit.map((a) => ({ ...a, prev_hash: b64url.decode(a.prev_hash), entry_hash: b64url.decode(a.entry_hash) })),
    };
  }
  /**
   * Referrals (docs/protocol.md §5.15, docs/escalation.md). fields: {legal_basis, urgency,
   * consent: {asked, answer, seq}, identity: {included, reason}, tags: [ids], bundleDigest
   * (Uint8Array), sealed (Uint8Array: the package crypto_box_seal'ed to the partner key),
   * sealedTo (the partner key, Uint8Array), staffCopy (Uint8Array, e.g. SecureStaff.sealNote)}.
   * Each resolves with the referral object.
   */
/** referral.create / update's wire fields from StaffClient's referral fields. */
  static referralFields(f) {
    const o = {
      legal_basis: f.legal_basis, urgency: f.urgency,
      consent_asked: f.consent?.asked ? 1 : 0,
      ...(f.consent?.asked ? { consent_answer: f.consent.answer, consent_seq: f.consent.seq } : {}),
      identity_included: f.identity?.included ? 1 : 0, identity_reason: f.identity?.reason,
    };
    if (f.tags?.length) o.tags = f.tags.join(',');
    if (f.bundleDigest) o.bundle_digest = b64url.encode(f.bundleDigest);
    if (f.sealed) { o.sealed = b64url.encode(f.sealed); o.sealed_to = b64url.encode(f.sealedTo); }
    if (f.staffCopy) o.staff_copy = b64url.encode(f.staffCopy);
    return o;
  }
  createReferral(escalation, kind, fields) {
    return this.request({ type: 'referral.create', escalation, kind, ...StaffClient.referralFields(fields) }).then((r) => r.referral);
  }
  updateReferral(id, revision, fields) {
    return this.request({ type: 'referral.update', referral: id, revision, ...StaffClient.referralFields(fields) }).then((r) => r.referral);
  }
  /** One of the two approvals, of the revision read; needs a fresh auth.reauth. */
  approveReferral(id, revision) { return this.request({ type: 'referral.approve', referral: id, revision }).then((r) => r.referral); }
  referrals(escalation) { return this.request({ type: 'referral.list', ...(escalation ? { escalation } : {}) }).then((r) => r.referrals); }
  /** Resolves with {referral, staffCopy (Uint8Array or null)}. */
  getReferral(id) {
    return this.request({ type: 'referral.get', referral: id }).then((r) => ({ referral: r.referral, staffCopy: r.staff_copy ? b64url.decode(r.staff_copy) : null }));
  }
  retryReferral(id) { return this.request({ type: 'referral.retry', referral: id }).then((r) => r.referral); }
  /** The delivery file of an approved referral, as the partner receives it: resolves with {name, text, referral}. */
  async downloadReferral(id) {
    const parts = [];
    let first, offset = 0;
    for (;;) {
      const r = await this.request({ type: 'referral.download', referral: id, offset });
      first ??= r;
      const bytes = b64url.decode(r.sealed);
      parts.push(bytes);
      offset += bytes.length;
      if (offset >= r.total || bytes.length === 0) break;
    }
    const sealed = new Uint8Array(offset);
    let at = 0;
    for (const p of parts) { sealed.set(p, at); at += p.length; }
    const o = first.referral;
    const file = { format: 'helpline-referral-delivery-v1', referral: o.referral, revision: o.revision, kind: o.kind, urgency: o.urgency,
      approved_at: o.approved_at, bundle_digest: o.bundle_digest, sealed_to: o.sealed_to, sealed: b64url.encode(sealed) };
    return { name: first.name, text: JSON.stringify(file), referral: o };
  }
  wrapup(conv, outcome, tags = [], notesBytes) {
    return this.request({ type: 'chat.wrapup', conversation: conv, outcome, tags: tags.join(','), ...(notesBytes ? { notes: b64url.encode(notesBytes) } : {}) });
  }
  typing(conv) { this.conn?.notify({ type: 'chat.typing', conversation: conv }); }
  delivered(conv, seq) { this.conn?.notify({ type: 'chat.delivered', conversation: conv, seq }); }
  read(conv, seq) { this.conn?.notify({ type: 'chat.read', conversation: conv, seq }); }

  handlePush(m) {
    switch (m.type) {
      case 'chat.event':
        this.stream(m.conversation).push(m);
        if (m.kind === 'system' && /^ended/.test(new TextDecoder().decode(b64url.decode(m.payload ?? ''))))
          queueMicrotask(() => this.streams.delete(m.conversation));
        break;
      case 'queue.offer': this.emit('offer', m); break;
      case 'offer.expired': this.emit('offer.expired', m); break;
      case 'offer.withdrawn': this.emit('offer.withdrawn', m); break;
      case 'chat.assigned': this.stream(m.conversation); this.sync(m.conversation).catch(() => {}); this.emit('assigned', m); break;
      case 'chat.receipt': this.emit('receipt', m); break;
      case 'chat.typing': this.emit('typing', m); break;
      case 'alert': this.emit('alert', m); break;
      case 'escalation': this.emit('escalation', m); break;
      case 'referral': this.emit('referral', m); break;
      case 'queue.view': this.emit('view', m); break;
      case 'presence': this.emit('presence', m); break;
      default: break;
    }
  }
}
