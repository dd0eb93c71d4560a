// soak.test.mjs: 200 young people and 20 counsellors act at random for a
// bounded time (HL_SOAK_SECONDS, default 40) against one daemon: they chat,
// drop their connections and resume, retry unacknowledged sends with the same
// id, leave, end and start again, decline and accept offers. At the end
// everyone resyncs, and every acknowledged message must have reached the
// other side exactly once, with the same bytes, and the young people must
// never have seen an internal event or a staff id. Seeded (HL_SOAK_SEED) so a
// failure can be replayed.
//
// Which messages must have arrived: every counsellor message acknowledged in
// a chat of a young person who at the end still holds it on a live
// connection, or who moved on from it on a live connection after it ended
// (the app then has all of it, live or by sync) — so chats that ended are
// checked too. Not checked are chats the young person left, and chats given
// up when a resume was refused (an ended chat cannot be resumed; the
// summary counts those messages as unchecked). On a violation the missing
// messages are printed with that young person's connection history
// (HL_SOAK_VERBOSE=1 prints it for every young person who missed nothing
// too — very long).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, httpGet } from './harness.mjs';
import { ctl, totp, stepNow, awaitStepMargin, origin, waitFor } from './staff.mjs';

const SECONDS = Number(process.env.HL_SOAK_SECONDS ?? 40);
const SEED = Number(process.env.HL_SOAK_SEED ?? (Date.now() % 1e9));
const YOUNG = Number(process.env.HL_SOAK_YOUNG ?? 200), COUNSELLORS = Number(process.env.HL_SOAK_COUNSELLORS ?? 20);
const VERBOSE = !!process.env.HL_SOAK_VERBOSE;
// Up to this long between contact.resumed and the young person's chat.sync.
const RESUME_PAUSE_MS = Number(process.env.HL_SOAK_RESUME_PAUSE_MS ?? 30);
const T0 = Date.now();
const now = () => Date.now() - T0;

// mulberry32: small, seedable.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = prng(SEED);
const pick = (a) => a[Math.floor(rnd() * a.length)];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64 = (s) => Buffer.from(s).toString('base64url');
const unb64 = (s) => Buffer.from(s, 'base64url').toString();

const stats = { acked: 0, dupAcks: 0, drops: 0, resumes: 0, takes: 0, accepts: 0, declines: 0, ends: 0, leaves: 0, starts: 0, rateLimited: 0, syncs: 0, syncRefused: 0, resumeRefused: 0 };
// Every acknowledged message: key "conv:seq" -> {from: 'contact'|'staff', text, conv, at (ms into the run), by}.
const acked = new Map();
// What each party's app received: "who|conv:seq" -> the text. The apps
// deduplicate by seq (a live event can cross a sync in flight), so the
// checks are: nothing acknowledged is missing, and what arrived under a seq
// is exactly the acknowledged message.
const gotByContact = new Map(), gotByStaff = new Map();
const violations = [];
// Chats a counsellor ended: conv -> {at, by, seq}.
const endedBy = new Map();

// A socket with request/response by id and a push handler; reconnectable.
class Peer {
  constructor(port, protocol, onPush) {
    this.port = port; this.protocol = protocol; this.onPush = onPush;
    this.ws = null; this.pending = new Map(); this.n = 0; this.tag = Math.floor(rnd() * 1e9).toString(36);
  }
  async open() {
    const opts = this.protocol === 'helpline.staff.v1' ? { origin: this.origin } : {};
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/ws`, this.protocol, opts);
    this.ws = ws;
    ws.on('message', (d) => {
      const m = JSON.parse(String(d));
      const p = m.id && this.pending.get(m.id);
      if (p) { this.pending.delete(m.id); clearTimeout(p.timer); p.resolve(m); } else if (!m.id || m.type !== 'error') this.onPush(m);
      if (m.type === 'error' && m.code === 'rate_limited') stats.rateLimited++;
    });
    ws.on('close', () => { for (const [, p] of this.pending) { clearTimeout(p.timer); p.resolve({ type: 'closed' }); } this.pending.clear(); });
    ws.on('error', () => {});
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); ws.once('close', () => reject(new Error('closed'))); });
    const w = await this.req({ type: 'hello', version: 1 });
    if (w.type !== 'welcome') throw new Error(JSON.stringify(w));
  }
  req(obj, ms = 10000) {
    const id = obj.id ?? `${this.tag}-${++this.n}`;
    return new Promise((resolve) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return resolve({ type: 'closed' });
      const timer = setTimeout(() => { this.pending.delete(id); resolve({ type: 'timeout' }); }, ms);
      this.pending.set(id, { resolve, timer });
      this.ws.send(JSON.stringify({ ...obj, id }));
    });
  }
  drop() { stats.drops++; this.ws?.terminate(); this.ws = null; }
  up() { return this.ws && this.ws.readyState === WebSocket.OPEN; }
}

function record(map, who, conv, ev) {
  const k = `${who}|${conv}:${ev.seq}`;
  if (map.has(k)) violations.push(`${k} reached the app twice`);
  map.set(k, unb64(ev.payload));
}

// ---- young people --------------------------------------------------------

class Young {
  constructor(port, i) {
    this.i = i; this.port = port; this.conv = null; this.resume = null; this.lastSeq = 0;
    this.seen = new Set(); this.unacked = new Map(); this.msgN = 0; this.state = 'idle';
    this.peer = new Peer(port, 'helpline.contact.v1', (m) => this.push(m));
    this.past = new Map(); // conv -> how this young person parted from it
    this.log = []; // connection history, for the report on a violation
  }
  note(what) { this.log.push(`${now()} ${what}`); if (this.log.length > 400) this.log.splice(0, 100); }
  // Moves on from the current chat: why is 'ended' (the app has all of it),
  // 'left', or 'resume refused ...' (not checked).
  part(why) { if (this.conv) { this.past.set(this.conv, why); this.note(`part conv=${this.conv} ${why}`); } }
  push(m) {
    if (m.type === 'chat.event') {
      if (m.kind !== 'msg' && m.kind !== 'system') violations.push(`contact ${this.i} saw internal kind ${m.kind}`);
      if (String(m.from).startsWith('staff:')) violations.push(`contact ${this.i} saw a staff id`);
      if (m.conversation !== this.conv) { this.note(`event for other conv=${m.conversation} seq=${m.seq} (have ${this.conv})`); return; }
      this.note(`event seq=${m.seq} ${m.kind} ${m.from}${this.gap ? ' (gap)' : ''}${this.seen.has(m.seq) ? ' dup' : ''}`);
      if (this.seen.has(m.seq)) return; // a sync overlapping a live event: the app shows it once
      this.seen.add(m.seq);
      // Until a sync has filled the gap left by a drop, a live event must
      // not move the mark a later sync starts from (like helpline.js's Stream).
      if (!this.gap && m.seq > this.lastSeq) this.lastSeq = m.seq;
      if (m.kind === 'msg') record(gotByContact, this.i, m.conversation, m);
      if (m.kind === 'system') {
        const t = unb64(m.payload);
        if (t === 'joined') this.state = 'active';
        if (t.startsWith('ended')) this.state = 'ended';
        if (t === 'counsellor_lost') this.state = 'queued';
      }
    }
  }
  async start() {
    if (!this.peer.up()) await this.peer.open();
    const r = await this.peer.req({ type: 'contact.start', topics: pick(['', 'sextortion', 'cyberbullying', 'grooming', 'hacking']) || undefined, language: 'en' });
    if (r.type !== 'contact.started') { this.note(`start refused ${r.type} ${r.code ?? ''}`); return; }
    stats.starts++;
    this.part('ended');
    this.note(`started conv=${r.conversation}`);
    Object.assign(this, { conv: r.conversation, resume: r.resume, lastSeq: 0, seen: new Set(), unacked: new Map(), state: 'queued', gap: false });
  }
  async reconnect() {
    if (!this.resume) return;
    // A socket that opened but whose hello failed must not pass for a
    // resumed one (it would never get this chat's events).
    try { await this.peer.open(); } catch { this.note('open failed'); this.peer.ws?.terminate(); this.peer.ws = null; return; }
    this.gap = true; // live events may now arrive ahead of what was missed
    this.note(`resume last_seq=${this.lastSeq}`);
    const r = await this.peer.req({ type: 'contact.resume', resume: this.resume, last_seq: this.lastSeq });
    if (r.type !== 'contact.resumed') {
      stats.resumeRefused++;
      this.part(`resume refused: ${r.type} ${r.code ?? ''}`);
      this.conv = null; this.resume = null; this.state = 'idle'; return;
    }
    stats.resumes++;
    this.note(`resumed state=${r.state}`);
    this.state = r.state;
    // A phone may take a moment before it asks for what it missed: the chat
    // may end meanwhile, and the sync must still bring the missed messages.
    await sleep(rnd() * RESUME_PAUSE_MS);
    await this.sync();
    // Resend what was never acknowledged, with the same ids.
    for (const [id, text] of [...this.unacked]) await this.send(text, id);
  }
  async sync() {
    stats.syncs++;
    this.note(`sync last_seq=${this.lastSeq}`);
    const r = await this.peer.req({ type: 'chat.sync', last_seq: this.lastSeq }, 20000);
    if (r.type !== 'chat.synced') {
      this.note(`sync failed ${r.type} ${r.code ?? ''}`);
      if (r.type === 'error' && r.code !== 'rate_limited') stats.syncRefused++;
      return;
    }
    this.state = r.state === 'ended' || r.state === 'wrapped' ? 'ended' : r.state;
    this.lastSeq = Math.max(this.lastSeq, r.last_seq, ...this.seen);
    this.note(`synced count=${r.count} last_seq=${r.last_seq} state=${r.state} -> mark ${this.lastSeq}`);
    this.gap = false;
  }
  async send(text, id) {
    id ??= `y${this.i}-${this.conv}-${++this.msgN}`;
    this.unacked.set(id, text);
    const r = await this.peer.req({ type: 'chat.send', id, payload: b64(text) });
    if (r.type === 'chat.ack') {
      this.unacked.delete(id);
      const k = `${this.conv}:${r.seq}`;
      if (r.duplicate) stats.dupAcks++;
      const prev = acked.get(k);
      if (prev && (prev.text !== text || prev.from !== 'contact')) violations.push(`seq ${k} acked for two messages`);
      if (!prev) { acked.set(k, { from: 'contact', text, conv: this.conv, at: now(), by: this.i }); stats.acked++; }
    } else if (r.type === 'error' && r.code !== 'rate_limited') {
      this.unacked.delete(id); // refused (chat ended or not active): never acknowledged
    }
  }
  async act() {
    const x = rnd();
    if (!this.peer.up()) return this.resume ? this.reconnect() : this.start();
    if (this.conv && this.gap) return this.sync(); // the last sync did not finish
    if (!this.conv || this.state === 'ended') return this.start();
    if (x < 0.05) { this.note('drop'); return this.peer.drop(); }
    if (this.state === 'queued' && x < 0.08) {
      const r = await this.peer.req({ type: 'contact.leave' });
      if (r.type === 'contact.left') { stats.leaves++; this.part('left'); this.conv = null; this.resume = null; this.state = 'idle'; }
      return;
    }
    if (this.state !== 'active') return;
    if (x < 0.10) { const r = await this.peer.req({ type: 'chat.end' }); if (r.type === 'chat.ended') { stats.ends++; this.state = 'ended'; this.note(`ended it (seq ${r.seq})`); } return; }
    const sent = this.send(`young ${this.i} says ${Math.floor(rnd() * 1e9)}`);
    // Sometimes the network goes just after a send: was it stored? The
    // resend after the resume (same id) finds out.
    if (x < 0.16) { await sleep(rnd() * 5); this.note('drop after send'); this.peer.drop(); }
    return sent;
  }
}

// ---- counsellors -----------------------------------------------------------

class Counsellor {
  constructor(srv, i, acct) {
    this.srv = srv; this.i = i; this.acct = acct; this.token = null; this.convs = new Map(); // conv -> {lastSeq, seen}
    this.unacked = new Map(); this.msgN = 0;
    this.peer = new Peer(srv.port, 'helpline.staff.v1', (m) => this.push(m));
    this.peer.origin = origin(srv);
  }
  conv(c) { if (!this.convs.has(c)) this.convs.set(c, { lastSeq: 0, seen: new Set(), gap: true }); return this.convs.get(c); }
  // Fetches what a conversation missed; live events do not move its mark
  // until this has succeeded once since the gap opened.
  async sync(conv) {
    const st = this.convs.get(conv);
    if (!st) return;
    stats.syncs++;
    const r = await this.peer.req({ type: 'chat.sync', conversation: conv, last_seq: st.lastSeq }, 20000);
    if (r.type === 'chat.synced') { st.lastSeq = Math.max(st.lastSeq, r.last_seq, ...st.seen); st.gap = false; }
    if (r.type === 'error' && r.code === 'forbidden') this.convs.delete(conv); // went back to the queue meanwhile
  }
  push(m) {
    if (m.type === 'chat.event') {
      const c = this.convs.get(m.conversation);
      if (!c || c.seen.has(m.seq)) return;
      c.seen.add(m.seq);
      if (!c.gap && m.seq > c.lastSeq) c.lastSeq = m.seq;
      if (m.kind === 'msg') record(gotByStaff, this.i, m.conversation, m);
      if (m.kind === 'system' && /^(ended|counsellor_lost)/.test(unb64(m.payload))) this.convs.delete(m.conversation);
    } else if (m.type === 'queue.offer') {
      this.offers = [...(this.offers ?? []), m.conversation];
    }
  }
  async login() {
    await this.peer.open();
    const r = this.token
      ? await this.peer.req({ type: 'auth.resume', token: this.token })
      : await this.peer.req({ type: 'auth.login', username: this.acct.username, password: this.acct.password, totp: totp(this.acct.secret, stepNow()) });
    if (r.type !== 'auth.ok') throw new Error(`login ${this.i}: ${JSON.stringify(r)}`);
    this.token = r.token ?? this.token;
    stats.resumes++;
  }
  async reconnect() {
    for (const st of this.convs.values()) st.gap = true;
    try { await this.login(); } catch { return; }
    for (const c of [...this.convs.keys()]) await this.sync(c);
    for (const [id, { conv, text }] of [...this.unacked]) await this.send(conv, text, id);
  }
  async send(conv, text, id) {
    id ??= `c${this.i}-${conv}-${++this.msgN}`;
    this.unacked.set(id, { conv, text });
    const r = await this.peer.req({ type: 'chat.send', id, conversation: conv, payload: b64(text) });
    if (r.type === 'chat.ack') {
      this.unacked.delete(id);
      const k = `${conv}:${r.seq}`;
      if (r.duplicate) stats.dupAcks++;
      const prev = acked.get(k);
      if (prev && (prev.text !== text || prev.from !== 'staff')) violations.push(`seq ${k} acked for two messages`);
      if (!prev) { acked.set(k, { from: 'staff', text, conv, at: now(), by: this.i }); stats.acked++; }
    } else if (r.type === 'error' && r.code !== 'rate_limited') {
      this.unacked.delete(id);
      if (r.code === 'forbidden' || r.code === 'bad_state') this.convs.delete(conv);
    }
  }
  async took(r) {
    if (r.type !== 'queue.taken') return false;
    // Like a console: read the history of a chat just taken.
    this.conv(r.conversation);
    await this.sync(r.conversation);
    return true;
  }
  async act() {
    const x = rnd();
    if (!this.peer.up()) return this.reconnect();
    const behind = [...this.convs].find(([, st]) => st.gap);
    if (behind) return this.sync(behind[0]); // a sync that did not finish
    if (x < 0.02) return this.peer.drop();
    const offer = this.offers?.shift();
    if (offer) {
      if (rnd() < 0.15) { const r = await this.peer.req({ type: 'offer.decline', conversation: offer }); if (r.type === 'offer.declined') stats.declines++; return; }
      if (await this.took(await this.peer.req({ type: 'offer.accept', conversation: offer }))) stats.accepts++;
      return;
    }
    if (x < 0.12) { if (await this.took(await this.peer.req({ type: 'queue.take' }))) stats.takes++; return; }
    const mine = [...this.convs.keys()];
    if (!mine.length) return;
    const c = pick(mine);
    if (x < 0.16) { const r = await this.peer.req({ type: 'chat.end', conversation: c }); if (r.type === 'chat.ended') { stats.ends++; this.convs.delete(c); endedBy.set(c, { at: now(), by: this.i, seq: r.seq }); } return; }
    const sent = this.send(c, `counsellor ${this.i} says ${Math.floor(rnd() * 1e9)}`);
    if (x < 0.18) { await sleep(rnd() * 5); this.peer.drop(); }
    return sent;
  }
}

test(`soak: ${YOUNG} young people and ${COUNSELLORS} counsellors at random; every acknowledged message delivered exactly once`, { timeout: (SECONDS + 150) * 1000 }, async () => {
  console.log(`# soak seed ${SEED} (HL_SOAK_SEED to replay), ${SECONDS} s`);
  const dir = mkdtempSync(join(tmpdir(), 'helpline-soak-'));
  const ini = join(dir, 'soak.ini');
  // Generous per-connection limits (counsellors handle several chats at
  // once); a short grace so lost counsellors' chats go back to the queue
  // within the run; a short offer timeout so lapsed offers move on.
  writeFileSync(ini, '[queue]\ncounsellor_grace = 5\noffer_timeout = 5\n[ws]\nrate = 200\nburst = 400\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    // Accounts: created with helplinectl, enrolled over the protocol.
    await awaitStepMargin(20);
    const accts = [];
    for (let i = 0; i < COUNSELLORS; i++) {
      const out = ctl(srv, 'create-staff', `soak${i}`, '--role', 'counsellor', '--name', `Soak ${i}`, '--capacity', '4', '--languages', 'en');
      accts.push({ username: `soak${i}`, code: /[A-Z2-7]{4}(?:-[A-Z2-7]{4}){4}/.exec(out)[0], password: `soak password number ${i} long enough` });
    }
    await Promise.all(accts.map(async (a) => {
      const p = new Peer(srv.port, 'helpline.staff.v1', () => {});
      p.origin = origin(srv);
      let ch;
      await waitFor(async () => {
        if (!p.up()) await p.open();
        ch = await p.req({ type: 'auth.enrol_begin', code: a.code });
        return ch.type === 'auth.enrol_challenge';
      }, 15000, 300);
      a.secret = ch.totp_secret;
      const r = await p.req({ type: 'auth.enrol_finish', code: a.code, password: a.password, totp: totp(a.secret, stepNow() - 1) }, 60000);
      assert.equal(r.type, 'auth.enrolled', JSON.stringify(r));
      p.ws.close();
    }));
    await awaitStepMargin(10);
    const cs = accts.map((a, i) => new Counsellor(srv, i, a));
    for (const c of cs) {
      await c.login();
      const s = await c.peer.req({ type: 'shift.start' });
      assert.equal(s.type, 'shift', JSON.stringify(s));
    }
    const ys = Array.from({ length: YOUNG }, (_, i) => new Young(srv.port, i));
    await Promise.all(ys.map((y) => y.start()));

    // Everyone acts at random until the time is up.
    const end = Date.now() + SECONDS * 1000;
    const loop = async (actor, gap) => {
      while (Date.now() < end) {
        try { await actor.act(); } catch (e) { violations.push(`actor threw: ${e.stack}`); }
        await sleep(gap / 2 + rnd() * gap);
      }
    };
    await Promise.all([...ys.map((y) => loop(y, 600)), ...cs.map((c) => loop(c, 150))]);

    // Settle: reconnect everyone, resend what was not acknowledged, resync.
    for (const c of cs) if (!c.peer.up()) await c.reconnect(); else for (const [id, u] of [...c.unacked]) await c.send(u.conv, u.text, id);
    for (const y of ys) {
      if (!y.resume) continue;
      if (!y.peer.up()) await y.reconnect();
      else { for (const [id, t] of [...y.unacked]) await y.send(t, id); await y.sync(); }
    }
    await sleep(500);
    for (const y of ys) if (y.resume && y.peer.up()) await y.sync();
    for (const c of cs) for (const conv of [...c.convs.keys()]) await c.sync(conv);
    await sleep(500);

    // Checks.
    // 1. What arrived under a seq is the acknowledged message (no two
    //    messages under one seq, no corruption).
    for (const [map, side] of [[gotByContact, 'contact'], [gotByStaff, 'staff']])
      for (const [k, text] of map) {
        const a = acked.get(k.slice(k.indexOf('|') + 1));
        if (a && a.text !== text) violations.push(`${side} ${k} got other bytes than were acked`);
      }
    // 2. Nothing acknowledged is missing: every counsellor message reached
    //    the young person whose chat it was (live or by sync) if they still
    //    hold the chat on a live connection or moved on from it after it
    //    ended; every young person's message reached the counsellor holding
    //    the chat at the end.
    const held = new Map(); // conv -> the Young whose app must have all of it
    const owner = new Map(); // conv -> the Young whose chat it was
    for (const y of ys) {
      for (const [conv, why] of y.past) { owner.set(conv, y); if (why === 'ended') held.set(conv, y); }
      if (y.conv) { owner.set(y.conv, y); if (y.peer.up()) held.set(y.conv, y); }
    }
    const holder = new Map(); // conv -> the Counsellor holding it
    for (const c of cs) for (const conv of c.convs.keys()) holder.set(conv, c);
    let missingToContact = 0, missingToStaff = 0, checkedToContact = 0, checkedToStaff = 0;
    const unchecked = {}; // why a counsellor message was not checked -> how many
    const missing = [];
    for (const [k, m] of acked) {
      if (m.from === 'staff') {
        if (held.has(m.conv)) {
          checkedToContact++;
          if (!gotByContact.has(`${held.get(m.conv).i}|${k}`)) { missingToContact++; missing.push([k, m]); }
        } else {
          const y = owner.get(m.conv);
          const why = !y ? 'no young person' : y.past.get(m.conv) ?? 'not connected at the end';
          unchecked[why] = (unchecked[why] ?? 0) + 1;
        }
      }
      if (m.from === 'contact' && holder.has(m.conv)) {
        checkedToStaff++;
        if (!gotByStaff.has(`${holder.get(m.conv).i}|${k}`)) missingToStaff++;
      }
    }
    if (missingToContact) violations.push(`${missingToContact} of ${checkedToContact} counsellor messages never reached their young person`);
    if (missingToStaff) violations.push(`${missingToStaff} of ${checkedToStaff} young people's messages never reached the counsellor holding the chat`);
    // What a missing message's young person went through, to tell a lost
    // event from a bookkeeping slip.
    for (const [k, m] of missing.slice(0, 5)) {
      const y = held.get(m.conv), e = endedBy.get(m.conv);
      const from = m.at - 10000, lines = y.log.filter((l) => Number(l.split(' ')[0]) >= from).slice(0, 80);
      console.log(`# MISSING conv:seq ${k} from counsellor ${m.by}, acked at ${m.at} ms; ended by counsellor ${e ? `${e.by} at ${e.at} ms (seq ${e.seq})` : 'no'}; young ${y.i} ${y.conv === m.conv ? `holds it (lastSeq ${y.lastSeq}, gap ${!!y.gap}, state ${y.state})` : `parted: ${y.past.get(m.conv)}`}; history from ${from} ms:\n#   ${lines.join('\n#   ')}`);
    }
    if (VERBOSE) for (const y of ys) console.log(`# young ${y.i}:\n#   ${y.log.join('\n#   ')}`);
    // 3. The daemon is healthy and exits cleanly.
    const h = await httpGet(srv.port, '/healthz');
    assert.equal(h.status, 200);
    console.log(`# soak summary: ${JSON.stringify({ ...stats, checkedToContact, checkedToStaff, uncheckedToContact: unchecked, delivered: gotByContact.size + gotByStaff.size })}`);
    for (const y of ys) y.peer.ws?.close();
    for (const c of cs) c.peer.ws?.close();
    assert.deepEqual(violations.slice(0, 20), [], `seed ${SEED}`);
    assert.ok(stats.acked > 1000, `only ${stats.acked} messages acknowledged`);
    assert.ok(checkedToContact > 100 && checkedToStaff > 100, 'the checks covered enough messages');
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    srv.cleanup();
  }
});
