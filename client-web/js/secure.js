// secure.js: end-to-end encrypted chats on top of helpline.js's clients,
// with e2e.js's formats (docs/crypto.md). The server relays and stores only
// envelopes; these classes run the handshake, keep one key chain per epoch
// and direction, seal and open messages, check the counsellor's certificate
// chain against the organisation root the page was shipped with, and keep
// keys that must survive a reload in key wraps (to the counsellor's own
// device, to a new counsellor on transfer, to a young person's return code).
//
// Events (on top of the wrapped client's): 'message' {conversation, seq, at,
// from, text, mine}, 'security' {conversation, code, message} (a check
// failed: the app must show it and must not trust that counsellor),
// 'undecryptable' {conversation, seq} (no keys for it on this device; once
// per event: it is emitted as 'message' if keys come later), 'secured'
// {conversation, epoch} (a handshake finished; the young person's side adds
// device, the pseudonym of the certificate it verified).
import * as E from './e2e.js';
import { Emitter } from './helpline.js';

const TO_STAFF = 1, TO_CONTACT = 2;
const NOTE_KINDS = new Set(['note', 'transfer', 'wrapup']);
const MAX_SEND_TRIES = 6;

// An entry of a key wrap, as this side's own wraps are told apart: an
// epoch by its seq, a note key (staff) by its bytes.
const wrapId = (e) => (e.epoch === E.NOTE_EPOCH ? `n${E.hex(e.root1)}` : `e${e.epoch}`);

/**
 * One conversation's keys and what it has seen: epochs (seq of the accept
 * -> roots and reading chains), chain heads by seq, the sending state, and
 * envelopes waiting for keys.
 */
class Session {
  constructor(conv, ownDir) {
    this.conv = conv; this.ownDir = ownDir;
    this.epochs = new Map(); // epoch -> {root1, root2, read: {1: Chain, 2: Chain}, send: Chain, next}
    this.current = 0;
    this.retired = 0; // epochs up to this seq are not for sending (their counsellor was lost)
    this.heads = new Map(); // seq -> chain head
    this.lastSeq = 0;
    this.pending = []; // msg events without keys yet
    this.accepting = 0; // own e2e.accepts (staff) or e2e.hellos (young person) awaiting their ack; accepts being checked (young person)
    this.verifying = Promise.resolve(); // the young person's checks of accepts, one after another
    this.held = []; // msg events that came meanwhile: [ev, again]
    this.early = []; // accept events that came meanwhile, answering our hello before its ack came (young person)
    this.sent = new Map(); // seq -> {text, card?, consent?, answer?} (own messages, acknowledged)
    this.wrapped = new Set(); // entries (wrapId) a wrap to this side's own key already holds
    this.queue = Promise.resolve(); // one send at a time: counters are sequential
    this.waiters = [];
    this.noteKeys = new Map(); // hex kid -> note key (staff only, e2e.js sealNote)
    this.noteKey = null; // the one this device seals new notes with
    this.pendingNotes = []; // internal events whose note key has not arrived
  }
  addNoteKey(key, own = false) {
    this.noteKeys.set(E.hex(E.noteKeyId(key)), key);
    if (own || !this.noteKey) this.noteKey = key;
  }
  addEpoch(epoch, root1, root2) {
    if (this.epochs.has(epoch)) return false;
    this.epochs.set(epoch, {
      root1, root2, read: { 1: new E.Chain(root1), 2: new E.Chain(root2) },
      send: new E.Chain(this.ownDir === TO_STAFF ? root1 : root2), next: 0, cached: null,
    });
    if (epoch > this.current) this.current = epoch;
    if (this.canSend()) for (const w of this.waiters.splice(0)) w(null);
    return true;
  }
  canSend() { return this.current > this.retired; }
  // The chat went back to the queue at seq (counsellor_lost): the epochs
  // so far stay for reading, but nothing more is sealed in them; sends wait
  // for the handshake with whoever takes the chat next.
  retire(seq) { if (seq > this.retired) this.retired = seq; }
  saw(ev) {
    if (ev.chain) this.heads.set(ev.seq, E.unb64(ev.chain, 32));
    if (ev.seq > this.lastSeq) this.lastSeq = ev.seq;
  }
  // Resolves once there are keys to send with (an epoch after the last
  // retired one). A young person may wait in the queue a long while: by
  // default there is no time limit (timeoutMs null), and waiting sends fail
  // only when the chat ends (end()).
  keysReady(timeoutMs) {
    if (this.canSend()) return Promise.resolve();
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const t = timeoutMs == null ? null : setTimeout(() => reject(Object.assign(new Error('no keys yet: the counsellor has not answered'), { code: 'no_keys' })), timeoutMs);
      this.waiters.push((err) => { clearTimeout(t); if (err) reject(err); else resolve(); });
    });
  }
  end(why) {
    this.ended = Object.assign(new Error(`the chat has ended (${why})`), { code: 'ended' });
    for (const w of this.waiters.splice(0)) w(this.ended);
  }
  // What a key wrap carries: every epoch's roots, and (staff) each note key
  // as an entry with epoch 0.
  epochList() {
    return [...this.epochs].map(([epoch, k]) => ({ epoch, root1: k.root1, root2: k.root2 }))
      .concat([...this.noteKeys.values()].map((key) => ({ epoch: E.NOTE_EPOCH, root1: key, root2: new Uint8Array(32) })));
  }
  // What no wrap to this side's own key (the return key; a staff device's
  // own) holds yet: a new epoch or note key, or one an earlier wrap failed
  // to store. Such wraps are incremental (docs/crypto.md).
  unwrapped() { return this.epochList().filter((e) => !this.wrapped.has(wrapId(e))); }
  markWrapped(entries) { for (const e of entries) this.wrapped.add(wrapId(e)); }
  // The message key for (epoch, dir, n), for reading.
  readKey(epoch, dir, n) {
    const k = this.epochs.get(epoch);
    if (!k) return null;
    if (dir === this.ownDir && n < k.read[dir].n) {
      // An own message seen again (sync after a reload): derive afresh.
      return new E.Chain(dir === TO_STAFF ? k.root1 : k.root2).keyFor(n);
    }
    return k.read[dir].keyFor(n);
  }
}

/** Opens a msg event's envelope for s; emits message / security, or
 * undecryptable and keeps it pending (again: silently, a retry that still
 * has no keys for it). */
function openEvent(owner, s, ev, again = false) {
  const env = E.unb64(ev.payload ?? '');
  let h;
  try { h = E.parseHeader(env); } catch (e) { owner.emit('security', { conversation: s.conv, seq: ev.seq, code: e.code, message: e.message }); return; }
  // While our own accept awaits its ack, a reply sealed in its epoch can
  // come first (the young person answers the accept event at once, and
  // both can arrive in one read): hold it, and what follows it, until the
  // ack gives the epoch, instead of calling it undecryptable. The same for
  // the young person while a hello awaits its ack (SecureContact.hello).
  if (s.accepting && (s.held.length || !s.epochs.has(h.epoch))) {
    s.held.push([ev, again]);
    return;
  }
  const mine = h.dir === s.ownDir;
  if (mine && s.sent.has(ev.seq)) {
    owner.emit('message', { conversation: s.conv, seq: ev.seq, at: ev.at, from: ev.from, ...s.sent.get(ev.seq), mine });
    return;
  }
  if (!s.epochs.has(h.epoch)) {
    s.pending.push(ev);
    if (!again) owner.emit('undecryptable', { conversation: s.conv, seq: ev.seq });
    return;
  }
  try {
    const mk = s.readKey(h.epoch, h.dir, h.n);
    const m = E.open({ env, conv: Number(s.conv), dir: h.dir, mk, knownHead: (seq) => s.heads.get(seq) });
    owner.emit('message', { conversation: s.conv, seq: ev.seq, at: ev.at, from: ev.from, text: m.text, card: m.card, consent: m.consent, answer: m.answer, hashes: m.hashes, mine });
  } catch (e) {
    owner.emit('security', { conversation: s.conv, seq: ev.seq, code: e.code ?? 'decrypt_failed', message: e.message });
  }
}

// Opens what was waiting for keys; what still has none stays pending
// without being reported again (each wrap load would repeat it).
function retryPending(owner, s) {
  const evs = s.pending.splice(0);
  for (const ev of evs) openEvent(owner, s, ev, true);
}

/** Seals text (or the structured body in extra: {card} | {consent} |
 * {answer}) for s and sends it through send(env) -> ack, retrying with
 * fresh keys when the server says the epoch or the counter moved on. */
async function sealAndSend(s, text, send, resync, keysTimeoutMs, extra) {
  for (let attempt = 0; ; attempt++) {
    await s.keysReady(keysTimeoutMs);
    const epoch = s.current, k = s.epochs.get(epoch);
    const n = k.next;
    if (!k.cached || k.cached.n !== n) k.cached = { n, mk: k.send.keyFor(n) };
    const seenSeq = s.lastSeq;
    const env = E.seal({ conv: Number(s.conv), dir: s.ownDir, epoch, n, seenSeq, seenHead: seenSeq ? s.heads.get(seenSeq) : undefined, mk: k.cached.mk, ...(extra ?? { text }) });
    try {
      const ack = await send(env);
      k.next = n + 1;
      k.cached = null;
      s.sent.set(ack.seq, extra ? { text: '', ...extra } : { text });
      if (ack.chain) s.saw({ seq: ack.seq, chain: ack.chain });
      return ack;
    } catch (e) {
      if ((e.code !== 'stale_epoch' && e.code !== 'bad_counter' && e.code !== 'bad_envelope') || attempt >= MAX_SEND_TRIES) throw e;
      if (e.code === 'bad_counter') k.next = n + 1; // another tab of ours used n
      await resync();
    }
  }
}

// ---- the young person --------------------------------------------------------

/**
 * A young person's encrypted chat over a ContactClient. rootPk is the
 * organisation root key shipped with the page; now() gives unix seconds.
 */
export class SecureContact extends Emitter {
  constructor({ client, rootPk, now = () => Math.floor(Date.now() / 1000), keysTimeoutMs = null }) {
    super();
    this.client = client; this.rootPk = rootPk; this.now = now; this.keysTimeoutMs = keysTimeoutMs;
    this.session = null;
    this.hellos = new Map(); // hello seq -> our kx key pair
    this.lastHello = 0; // the seq of our latest hello
    this.lastAnswered = 0; // the hello seq the latest accept answered (ours or not)
    this.revoked = new Set();
    this.returnKeys = null;
    client.on('event', (ev) => this.#event(ev));
    client.on('online', () => { this.hello().catch(() => {}); });
  }

  get conversation() { return this.client.conversation; }

  /** Starts a chat and offers keys at once. */
  async start(intake = {}) {
    const r = await this.client.start(intake);
    this.session = new Session(r.conversation, TO_STAFF);
    await this.hello();
    return r;
  }

  // The revocations of the device that answered and of its issuer, asked
  // for when its accept comes: the whole list only grows, and a young
  // person's phone may be on a slow network. Each is checked here (signed
  // by the root or an admin device valid now); kept for the next accept
  // should asking fail.
  async #revokedFor(accept) {
    try {
      const list = await this.client.revocationsOf([E.certHash(accept.cert), E.certHash(accept.issuer)]);
      for (const h of E.revokedSet(list, this.rootPk, this.now())) this.revoked.add(h);
    } catch { /* keep what is known */ }
    return this.revoked;
  }

  /** Sends a fresh hello (on start and on every reconnect). */
  async hello() {
    const s = this.session;
    if (!s) return;
    const kp = (await E.ready()).crypto_kx_keypair();
    // The counsellor's device answers the hello event at once, so its
    // accept, and a message in the new epoch, can arrive in the same read
    // as the hello's ack: only the ack tells which hello these keys are
    // for. Until it is handed back, such an accept is kept (#accept) and
    // such a message held (openEvent), then both are opened.
    s.accepting++;
    try {
      const ack = await this.client.request({ type: 'e2e.hello', kx_pk: E.b64(kp.publicKey) });
      this.hellos.set(ack.seq, kp);
      if (ack.seq > this.lastHello) this.lastHello = ack.seq;
      s.saw(ack);
    } finally {
      if (--s.accepting === 0) {
        for (const ev of s.early.splice(0)) this.#accept(ev, s);
        for (const [ev, again] of s.held.splice(0)) openEvent(this, s, ev, again);
      }
    }
  }

  #event(ev) {
    const s = this.session;
    if (!s || ev.conversation !== s.conv) return;
    s.saw(ev);
    if (ev.kind === 'accept') this.#accept(ev);
    else if (ev.kind === 'msg') openEvent(this, s, ev);
    else if (ev.kind === 'system') {
      const text = new TextDecoder().decode(E.unb64(ev.payload ?? ''));
      this.emit('system', { conversation: s.conv, seq: ev.seq, text });
      // Another counsellor now: a new handshake, so this page checks their
      // device's certificate itself. After an (announced) transfer; and when
      // a chat that went back to the queue (counsellor_lost: nothing more is
      // sealed for the lost counsellor) is taken again, if our latest hello
      // was answered already (the new counsellor's device answers only a
      // hello that is not). Replayed on a resume, these ask for no hello:
      // requests fail until the client is online, which sends one itself.
      if (text === 'transferred') this.hello().catch(() => {});
      else if (text === 'counsellor_lost') s.retire(ev.seq);
      else if (text === 'joined' && this.lastHello && this.lastAnswered >= this.lastHello) this.hello().catch(() => {});
      if (text.startsWith('ended')) s.end(text);
    }
  }

  #accept(ev, s = this.session) {
    if (s !== this.session) return; // a session replaced meanwhile (returnWith)
    let accept;
    try { accept = E.parseAcceptPayload(E.unb64(ev.payload)); } catch (e) { this.emit('security', { conversation: s.conv, seq: ev.seq, code: e.code, message: e.message }); return; }
    if (accept.helloSeq > this.lastAnswered) this.lastAnswered = accept.helloSeq;
    const young = this.hellos.get(accept.helloSeq);
    if (!young) {
      // It may answer our hello in flight (kept until its ack); else it
      // answers a hello of another tab: nothing to derive.
      if (s.accepting) s.early.push(ev);
      return;
    }
    // Checked once the device's revocations are in, accepts in turn (the
    // chain never rejects, so one failure stops none after it); meanwhile
    // messages in the new epoch are held (openEvent), not reported
    // undecryptable.
    s.accepting++;
    s.verifying = s.verifying.then(async () => {
      const revoked = await this.#revokedFor(accept);
      try {
        const r = E.youngVerifyAccept({ conv: Number(s.conv), helloSeq: accept.helloSeq, young, accept, rootPk: this.rootPk, now: this.now(), revoked });
        s.addEpoch(ev.seq, r.root1, r.root2);
        this.emit('secured', { conversation: s.conv, epoch: ev.seq, device: r.device.subject });
        this.#selfWrap().catch(() => {});
        retryPending(this, s);
      } catch (e) {
        this.emit('security', { conversation: s.conv, seq: ev.seq, code: e.code ?? 'bad_signature', message: e.message });
      }
    }).catch(() => {}).then(() => {
      if (--s.accepting === 0) {
        for (const e of s.early.splice(0)) this.#accept(e, s);
        for (const [e, again] of s.held.splice(0)) openEvent(this, s, e, again);
      }
    }).catch(() => {});
  }

  /** Sends text; resolves with the chat.ack once it is stored. */
  send(text, extra) {
    const s = this.session;
    const p = s.queue.then(() => sealAndSend(s, text, (env) => this.client.send(env), () => this.client.sync(), this.keysTimeoutMs, extra));
    s.queue = p.catch(() => {});
    return p;
  }

  /** Answers the consent question of event seq: 'yes', 'no' or
   * 'not_sure'; resolves with the chat.ack once stored. */
  answerConsent(question, answer) { return this.send(null, { answer: { question, answer } }); }

  /** Sends a hash report {age_band, items} (e2e.js hashReportContent): the
   * fingerprints of pictures or videos hashed on this device, never the
   * files; resolves with the chat.ack once stored. */
  sendHashes(report) { return this.send(null, { hashes: report }); }

  /**
   * Chooses a return code (6 words, shown to the young person to write
   * down; never sent): registers its public keys and keeps the chat's keys
   * wrapped to it, so they can come back and read the replies.
   */
  async setReturnCode(code, opts) {
    this.returnKeys = E.returnKeys(code, opts);
    await this.client.request({ type: 'contact.set_return', sign_pk: E.b64(this.returnKeys.signPk), box_pk: E.b64(this.returnKeys.boxPk) });
    await this.#selfWrap();
  }

  // Wraps to the return key the epochs no wrap holds yet (each new epoch,
  // a handshake on every reconnect, once). Wrapping every epoch each time
  // made the wraps grow with the square of the handshakes, past what
  // contact.returned can carry.
  async #selfWrap() {
    const rk = this.returnKeys, s = this.session;
    const epochs = s ? s.unwrapped() : [];
    if (!rk || !epochs.length) return;
    const w = E.makeWrap({ conv: Number(s.conv), epochs, recipientBoxPk: rk.boxPk, recipientCert: rk.boxPk, signerSk: rk.signSk });
    await this.client.request({ type: 'key.wrap', sealed: E.b64(w.sealed), sig: E.b64(w.sig) });
    s.markWrapped(epochs);
  }

  /**
   * Comes back with a return code on a fresh client: proves the code by
   * signing a one-time challenge, then reads the history (and carries on
   * when the chat is still open). Resolves with contact.returned.
   */
  async returnWith(code, opts) {
    const rk = E.returnKeys(code, opts);
    const c = this.client;
    if (!c.conn) { await c.connect(); c.online = true; }
    const ch = await c.request({ type: 'inbox.challenge', return_pk: E.b64(rk.signPk) });
    const sig = E.signChallenge('helpline-return-v1', E.unb64(ch.nonce, 32), rk.signPk, rk.signSk);
    // The reply holds the first page of the history and of the wraps to
    // the return key; the rest (more, wraps_more) comes by chat.sync and
    // key.wraps. Live events of an open chat may overtake them: they are
    // kept with it, not streamed to a session not made yet.
    const { value: [r, wraps], events: later } = await c.collected(async () => {
      const r = await c.request({ type: 'contact.return', return_pk: E.b64(rk.signPk), signature: E.b64(sig) });
      if (r.more) await c.syncAll(r.conversation, r.up_to);
      return [r, r.wraps_more ? r.wraps.concat(await c.keyWraps(r.conversation, r.wraps_next)) : r.wraps];
    });
    const seqs = new Set(r.events.map((ev) => ev.seq));
    const events = r.events.concat(later.filter((ev) => ev.conversation === r.conversation && !seqs.has(ev.seq)));
    this.returnKeys = rk;
    const s = this.session = new Session(r.conversation, TO_STAFF);
    for (const w of wraps) {
      try {
        for (const e of E.openWrap({ sealed: E.unb64(w.sealed), sig: E.unb64(w.sig, 64), conv: Number(r.conversation), recipientKeys: rk, recipientCert: rk.boxPk, signerPk: rk.signPk })) {
          s.addEpoch(e.epoch, e.root1, e.root2);
          s.markWrapped([e]);
        }
      } catch (e) { this.emit('security', { conversation: r.conversation, code: e.code, message: e.message }); }
    }
    for (const ev of events) {
      s.saw(ev);
      if (ev.kind === 'msg') openEvent(this, s, ev);
      else if (ev.kind === 'system' && new TextDecoder().decode(E.unb64(ev.payload ?? '')) === 'counsellor_lost') s.retire(ev.seq);
    }
    if (r.resume) {
      c.resume = r.resume;
      c.conversation = r.conversation;
      c.stream.lastSeq = Math.max(r.last_seq, events.at(-1)?.seq ?? 0);
      await this.hello();
    }
    return r;
  }
}

// ---- staff --------------------------------------------------------------------

/**
 * A counsellor's (or supervisor's) encrypted chats over a StaffClient.
 * device: {id, keys: {signPk, signSk, boxPk, boxSk}, cert, issuer} (bytes).
 */
export class SecureStaff extends Emitter {
  constructor({ client, device, rootPk, now = () => Math.floor(Date.now() / 1000), answerHellos = true, keysTimeoutMs = 60000 }) {
    super();
    this.client = client; this.device = device; this.rootPk = rootPk; this.now = now;
    this.answerHellos = answerHellos; this.keysTimeoutMs = keysTimeoutMs;
    this.sessions = new Map();
    this.hellos = new Map(); // conv -> {seq, pk}
    this.answered = new Set(); // `${conv}:${helloSeq}`
    this.held = new Set(); // conversations this client took or was handed
    this.restored = new WeakSet(); // streams #follow put back
    client.on('event', (ev) => this.#event(ev));
    client.on('assigned', (m) => { this.held.add(m.conversation); this.loadWraps(m.conversation).catch(() => {}); });
  }

  session(conv) {
    if (!this.sessions.has(conv)) this.sessions.set(conv, new Session(conv, TO_CONTACT));
    return this.sessions.get(conv);
  }

  /** Takes the next chat, reads what was wrapped for this device. */
  async take() { return this.#taken(await this.client.take()); }
  async accept(conv) { return this.#taken(await this.client.accept(conv)); }
  async pick(conv) { return this.#taken(await this.client.pick(conv)); }

  async #taken(r) {
    const conv = r.conversation;
    this.held.add(conv);
    this.#keepStream(conv);
    await this.loadWraps(conv);
    this.#maybeAnswer(conv);
    return r;
  }

  // StaffClient drops a conversation's stream when a counsellor_lost event
  // goes by, also one from before this counsellor held the chat that the
  // take's sync replays (a chat back from the queue). Without its stream the
  // chat would not be resynced after a reconnect, the next sync would replay
  // the whole history again, and the young person's hello would go
  // unanswered: put it back at the seq this client has reached.
  #keepStream(conv) {
    if (!this.client.streams.has(conv)) this.client.stream(conv).lastSeq = this.session(conv).lastSeq;
  }

  // The same for a chat handed to this client (chat.assigned: its sync,
  // started by StaffClient, replays the history from the start): while the
  // replay is delivered, a stream that was dropped is put back, and kept at
  // the seq delivered so far.
  #follow(ev) {
    const conv = ev.conversation;
    if (!this.held.has(conv)) return;
    const st = this.client.streams.get(conv);
    if (!st) {
      const back = this.client.stream(conv);
      back.lastSeq = ev.seq;
      this.restored.add(back);
    } else if (this.restored.has(st) && st.lastSeq < ev.seq) st.lastSeq = ev.seq;
  }

  #event(ev) {
    this.#follow(ev);
    const s = this.session(ev.conversation);
    s.saw(ev);
    if (ev.kind === 'hello') {
      this.hellos.set(ev.conversation, { seq: ev.seq, pk: E.unb64(ev.payload, 32) });
      this.#maybeAnswer(ev.conversation);
    } else if (ev.kind === 'accept') {
      const prev = this.hellos.get(ev.conversation);
      try { if (prev && E.parseAcceptPayload(E.unb64(ev.payload)).helloSeq === prev.seq) this.answered.add(`${ev.conversation}:${prev.seq}`); } catch { /* ignore */ }
    } else if (ev.kind === 'msg') {
      openEvent(this, s, ev);
    } else if (NOTE_KINDS.has(ev.kind)) {
      this.#openNote(s, ev);
    } else if (ev.kind === 'tag') {
      this.emit('tag', { conversation: ev.conversation, seq: ev.seq, at: ev.at, from: ev.from, tags: new TextDecoder().decode(E.unb64(ev.payload ?? '')).split(',').filter(Boolean) });
    } else if (ev.kind === 'system' || ev.kind === 'supervisor_joined') {
      const text = ev.kind === 'system' ? new TextDecoder().decode(E.unb64(ev.payload ?? '')) : 'supervisor_joined';
      if (text.startsWith('ended')) this.held.delete(ev.conversation);
      this.emit('system', { conversation: ev.conversation, seq: ev.seq, at: ev.at, from: ev.from, text });
    }
  }

  // A note, handover note or wrap-up note: 'note' {conversation, seq, at,
  // from, kind, text}; text is '' for none and null when this device has no
  // key for it (yet: it is tried again when wraps arrive, and emitted again
  // only once it opens).
  #openNote(s, ev, again = false) {
    const bytes = E.unb64(ev.payload ?? '');
    const out = { conversation: s.conv, seq: ev.seq, at: ev.at, from: ev.from, kind: ev.kind, text: '' };
    if (bytes.length) {
      let key;
      try {
        key = s.noteKeys.get(E.hex(E.noteKid(bytes)));
        if (!key) {
          s.pendingNotes.push(ev);
          if (again) return; // still no key: it was reported already
          out.text = null;
        } else out.text = E.openNote({ conv: Number(s.conv), bytes, key });
      } catch (e) {
        this.emit('security', { conversation: s.conv, seq: ev.seq, code: e.code ?? 'decrypt_failed', message: e.message });
        out.text = null;
      }
    }
    this.emit('note', out);
  }

  // The note key this device seals with in conv: made (and wrapped to this
  // device, so it survives a reload) the first time it is needed.
  async #noteKey(conv) {
    const s = this.session(conv);
    if (!s.noteKey) {
      s.addNoteKey(E.newNoteKey(), true);
      if (s.epochs.size) await this.#wrapSelf(conv);
    }
    return s.noteKey;
  }

  /** Seals text as a staff-only note of conv (bytes for chat.note, chat.transfer, chat.wrapup). */
  async sealNote(conv, text) {
    await E.ready();
    return E.sealNote({ conv: Number(conv), key: await this.#noteKey(conv), text });
  }

  /** Writes an internal note (staff only, encrypted); resolves with chat.ack. */
  async note(conv, text) { return this.client.note(conv, await this.sealNote(conv, text)); }

  /** Wraps up an ended chat: outcome, tags and (encrypted) notes. */
  async wrapup(conv, outcome, tags = [], notes = '') {
    return this.client.wrapup(conv, outcome, tags, notes ? await this.sealNote(conv, notes) : undefined);
  }

  // Answers the latest hello unless it has been answered: decided after the
  // events delivered together (a sync's replay) are all seen, so a hello
  // followed by its accept in the history is not answered twice.
  #maybeAnswer(conv) { queueMicrotask(() => this.#answerIfDue(conv)); }

  #answerIfDue(conv) {
    const h = this.hellos.get(conv);
    if (!this.answerHellos || !h || !this.client.streams.has(conv)) return;
    const key = `${conv}:${h.seq}`;
    if (this.answered.has(key)) return;
    this.answered.add(key);
    this.#answer(conv, h).catch((e) => { this.answered.delete(key); this.emit('security', { conversation: conv, code: e.code ?? 'handshake', message: e.message }); });
  }

  async #answer(conv, h) {
    const d = this.device;
    const a = E.acceptMessage({ conv: Number(conv), helloSeq: h.seq, youngPk: h.pk, deviceKeys: d.keys, cert: d.cert, issuer: d.issuer });
    const roots = E.staffRoots({ T: a.T, kx: { publicKey: a.kxPk, privateKey: a.kxSk }, youngPk: h.pk });
    const s = this.session(conv);
    if (!s.noteKey) s.addNoteKey(E.newNoteKey(), true);
    (await E.ready()).memzero(a.kxSk);
    s.accepting++;
    try {
      const ack = await this.client.request({ type: 'e2e.accept', conversation: conv, hello: h.seq, kx_pk: E.b64(a.kxPk), cert: E.b64(d.cert), issuer: E.b64(d.issuer), sig: E.b64(a.sig) });
      s.saw(ack);
      s.addEpoch(ack.seq, roots.root1, roots.root2);
      this.emit('secured', { conversation: conv, epoch: ack.seq });
    } finally {
      if (--s.accepting === 0) for (const [ev, again] of s.held.splice(0)) openEvent(this, s, ev, again);
    }
    await this.#wrapSelf(conv); // survives a reload
    retryPending(this, s);
  }

  // Wraps to this device what no wrap to it holds yet (each new epoch, a
  // handshake on every reconnect of the young person, and note key once).
  // Wrapping everything each time made a chat's wraps grow with the square
  // of its handshakes, past what one key.wraps reply carries.
  async #wrapSelf(conv) {
    const s = this.session(conv), d = this.device;
    const entries = s.unwrapped();
    if (!entries.length) return;
    await this.wrapTo(conv, [{ id: d.id, cert: d.cert, keys: d.keys }], undefined, entries);
    s.markWrapped(entries);
  }

  /** Seals this conversation's keys to devices ({id, cert, keys: {boxPk}});
   * escalation: the id when the wrap is an escalation's (§5.13); entries:
   * what to seal, by default every epoch's roots and note key. */
  async wrapTo(conv, devices, escalation, entries = this.session(conv).epochList()) {
    for (const to of devices) {
      const boxPk = to.keys?.boxPk ?? E.parseCert(to.cert).boxPk;
      const w = E.makeWrap({ conv: Number(conv), epochs: entries, recipientBoxPk: boxPk, recipientCert: to.cert, signerSk: this.device.keys.signSk });
      await this.client.request({ type: 'key.wrap', conversation: conv, to_device: to.id, from_device: this.device.id, sealed: E.b64(w.sealed), sig: E.b64(w.sig), ...(escalation ? { escalation } : {}) });
    }
  }

  /** Reads the key wraps to this device for conv; checks each signer's
   * chain to the root; then opens what was waiting for keys. */
  async loadWraps(conv) {
    const wraps = await this.client.keyWraps(conv);
    const s = this.session(conv);
    for (const w of wraps) {
      if (w.to_device !== this.device.id) continue;
      try {
        const signer = E.verifyChain({ cert: E.unb64(w.from_cert), issuer: E.unb64(w.from_issuer) }, this.rootPk, this.now()).device;
        for (const e of E.openWrap({ sealed: E.unb64(w.sealed), sig: E.unb64(w.sig, 64), conv: Number(conv), recipientKeys: this.device.keys, recipientCert: this.device.cert, signerPk: signer.signPk })) {
          if (e.epoch === E.NOTE_EPOCH) s.addNoteKey(e.root1); else s.addEpoch(e.epoch, e.root1, e.root2);
          s.markWrapped([e]);
        }
      } catch (e) { this.emit('security', { conversation: conv, code: e.code ?? 'bad_wrap', message: e.message }); }
    }
    retryPending(this, s);
    for (const ev of s.pendingNotes.splice(0)) this.#openNote(s, ev, true);
  }

  /** Hands a chat to another counsellor: wraps its keys (and note keys) to
   * each of their certified devices (checked against the root), then
   * transfers with the handover note (text, sealed as a note). */
  async transfer(conv, toStaffId, note = '') {
    const noteBytes = note ? await this.sealNote(conv, note) : undefined;
    const devices = await this.#trustedDevicesOf(toStaffId, [E.ROLE.COUNSELLOR, E.ROLE.SUPERVISOR]);
    if (!devices.length) throw Object.assign(new Error('the other counsellor has no certified device'), { code: 'no_device' });
    await this.wrapTo(conv, devices);
    const r = await this.client.transfer(conv, toStaffId, noteBytes);
    this.sessions.delete(conv);
    this.held.delete(conv);
    return r;
  }

  /** Escalation access: seals conv's keys (and note keys) to the certified
   * supervisor devices of staffId, each chain checked here against the
   * root and the signed revocations (never a server-supplied verdict).
   * escalation is the claimed escalation's id (the server accepts such a
   * wrap only to the claimer's devices). Resolves with the number of
   * devices wrapped to. */
  async wrapToSupervisor(conv, staffId, escalation) {
    const devices = await this.#trustedDevicesOf(staffId, [E.ROLE.SUPERVISOR]);
    if (!devices.length) throw Object.assign(new Error('the supervisor has no certified supervisor device'), { code: 'no_device' });
    await this.wrapTo(conv, devices, escalation);
    return devices.length;
  }

  // The devices of staffId whose certificate chains to the root with one
  // of roles, valid now and not revoked.
  async #trustedDevicesOf(staffId, roles) {
    const [list, rev] = await Promise.all([
      this.client.devices(staffId),
      this.client.revocations(),
    ]);
    const revoked = E.revokedSet(rev, this.rootPk, this.now());
    const devices = [];
    for (const d of list) {
      if (!d.cert || d.revoked) continue;
      try {
        const cert = E.unb64(d.cert), issuer = E.unb64(d.issuer);
        E.verifyChain({ cert, issuer }, this.rootPk, this.now(), { roles, revoked });
        devices.push({ id: d.device, cert });
      } catch { /* not a device to trust */ }
    }
    return devices;
  }

  /** Sends a safety card (an id the young person's page knows, e.g.
   * "sextortion", "takedown") in conv. */
  sendCard(conv, card) { return this.#send(conv, null, { card }); }

  /** Asks the young person in conv a consent question {with, share}
   * (e2e.js CONSENT_WITH / CONSENT_SHARE): their page shows it as a choice
   * and their answer arrives as a message with `answer`. */
  askConsent(conv, question) { return this.#send(conv, null, { consent: question }); }

  /** Sends text in conv; resolves with the chat.ack once stored. */
  send(conv, text) { return this.#send(conv, text); }

  #send(conv, text, extra) {
    const s = this.session(conv);
    const p = s.queue.then(() => sealAndSend(s, text, (env) => this.client.send(conv, env), () => this.client.sync(conv), this.keysTimeoutMs, extra));
    s.queue = p.catch(() => {});
    return p;
  }
}

/**
 * A member of staff's device: makes keys, registers them with a proof of
 * possession, keeps them sealed under a passphrase (IndexedDB in the page).
 */
export async function registerDevice(client, staffId, keys = E.newDeviceKeys()) {
  await E.ready();
  const req = E.deviceRequest(staffId, keys.signPk, keys.boxPk, keys.signSk);
  const r = await client.request({ type: 'device.register', sign_pk: E.b64(keys.signPk), box_pk: E.b64(keys.boxPk), sig: E.b64(req.sig) });
  return { id: r.device, keys };
}

/** An admin's device certifies a waiting device (from device.list). */
export async function certifyDevice(client, admin, waiting, { role, days = 365, now = Math.floor(Date.now() / 1000) } = {}) {
  await E.ready();
  const signPk = E.unb64(waiting.sign_pk, 32), boxPk = E.unb64(waiting.box_pk, 32);
  const body = E.encodeCertBody({ role, subject: E.deviceSubject(signPk), signPk, boxPk, notBefore: now - 300, notAfter: now + days * 86400 });
  const cert = E.signCert(body, admin.keys.signSk);
  await client.request({ type: 'device.certify', device: waiting.device, cert: E.b64(cert), issuer: E.b64(admin.cert) });
  return cert;
}

// ---- out of hours: the inbox (protocol.md §5.10) ------------------------------------

const INBOX_TEXT = 1;
const inboxPlain = (text) => E.concat(E.u8(INBOX_TEXT), E.utf8(text));
function inboxText(plain, sodium) {
  const body = sodium.unpad(plain, 256);
  if (!body.length || body[0] !== INBOX_TEXT) throw new E.E2EError('decrypt_failed', 'unknown inbox body');
  return new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(1));
}

/** A young person leaves a message for the team, sealed on the device to
 * the team inbox key (line.status's inbox_pk); the reply will be sealed to
 * the return code's box key. Resolves with inbox.posted. */
export async function inboxLeave(client, { code, text, teamPk, opts }) {
  const sodium = await E.ready();
  const rk = E.returnKeys(code, opts);
  const sealed = sodium.crypto_box_seal(sodium.pad(inboxPlain(text), 256), E.unb64(teamPk, 32));
  if (!client.conn) { await client.connect(); client.online = true; }
  return client.request({ type: 'inbox.post', return_pk: E.b64(rk.signPk), reply_pk: E.b64(rk.boxPk), sealed: E.b64(sealed) });
}

/** A young person reads the replies to their messages with their return
 * code: [{message, at, replied_at, reply (text or null)}]. */
export async function inboxRead(client, { code, opts }) {
  const sodium = await E.ready();
  const rk = E.returnKeys(code, opts);
  if (!client.conn) { await client.connect(); client.online = true; }
  // A long thread comes in pages (more, next); each fetch takes a fresh
  // challenge, as the first does.
  const messages = [];
  for (let after = 0; ;) {
    const ch = await client.request({ type: 'inbox.challenge', return_pk: E.b64(rk.signPk) });
    const sig = E.signChallenge('helpline-inbox-fetch-v1', E.unb64(ch.nonce, 32), rk.signPk, rk.signSk);
    const t = await client.request({ type: 'inbox.fetch', return_pk: E.b64(rk.signPk), signature: E.b64(sig), ...(after ? { after } : {}) });
    messages.push(...t.messages);
    if (!t.more) break;
    after = t.next;
  }
  return messages.map((m) => ({
    message: m.message, at: m.at, replied_at: m.replied_at,
    reply: m.reply ? inboxText(sodium.crypto_box_seal_open(E.unb64(m.reply), rk.boxPk, rk.boxSk), sodium) : null,
  }));
}

/** Staff: opens a message sealed to the team inbox key pair. */
export async function inboxOpenMessage(sealed, team) {
  const sodium = await E.ready();
  return inboxText(sodium.crypto_box_seal_open(E.unb64(sealed), team.publicKey, team.privateKey), sodium);
}

/** Staff: seals a reply to the message's reply_pk (for inbox.reply). */
export async function inboxSealReply(text, replyPk) {
  const sodium = await E.ready();
  return E.b64(sodium.crypto_box_seal(sodium.pad(inboxPlain(text), 256), E.unb64(replyPk, 32)));
}
