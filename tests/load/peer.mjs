// peer.mjs: the relay most teams would build instead of helplined, for
// helpline-bench to measure side by side (docs/performance.md). Node.js
// and the npm `ws` package, speaking the subset of docs/protocol.md that
// the bench uses, with the same durability promise as Helpline:
//
//  * hello -> welcome; contact.start -> contact.started (a FIFO queue);
//    queue.take -> queue.taken (+ the `joined` event to the young person);
//    contact.resume -> contact.resumed; contact.leave -> contact.left;
//    queue.position pushed at most once a second per person, only when the
//    shown position changes (Helpline's rule, §5.5).
//  * chat.send -> chat.ack only after the event is durable: events of one
//    event-loop turn are appended to one log file in one write, then
//    fdatasync()ed (group commit, as Helpline's writer thread commits a
//    batch with SQLite synchronous=FULL); then each sender gets its ack and
//    the other side its chat.event, once. A repeated id from the same side
//    is acknowledged again with `duplicate: true` and not delivered again.
//  * auth.login: a password check costing what Argon2id INTERACTIVE costs
//    Helpline (scrypt N=2^16, r=8, p=1: 64 MiB, on libuv's threadpool, one at
//    a time like auth.pwhash_inflight = 1); usernames bench* log in with any
//    password and code (the peer keeps no accounts), others get auth_failed.
//
// Not in the peer: JSON validation beyond what it reads, rate limits, risk
// order, staff sessions and roles, E2E checks, the audit chain.
//
// node peer.mjs --port N [--dir DIR]   (listens on 127.0.0.1 only)
import { createServer } from 'node:http';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, scrypt } from 'node:crypto';
import { WebSocketServer } from 'ws';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const port = Number(arg('--port', '0'));
const dir = arg('--dir', '.');
const log = await open(join(dir, 'peer-events.log'), 'a');

const PROTOCOLS = ['helpline.contact.v1', 'helpline.staff.v1'];
const convs = new Map();      // id -> conversation
const byResume = new Map();   // resume secret -> conversation
const queue = [];             // conversations waiting, in order
let nextConv = 1;

const send = (ws, obj) => { if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj)); };
const error = (ws, id, code, message) => send(ws, { type: 'error', id, code, message });

// ---- group commit ---------------------------------------------------------
let batch = [], flushing = false;
function commit(item) {
  batch.push(item);
  if (!flushing) { flushing = true; setImmediate(flush); }
}
async function flush() {
  const items = batch;
  batch = [];
  try {
    await log.write(items.map((e) => e.line).join(''));
    await log.datasync();
    for (const e of items) e.done();
  } catch (err) {
    for (const e of items) error(e.ws, e.id, 'store_failed', 'not stored');
  }
  if (batch.length) setImmediate(flush); else flushing = false;
}

// ---- password checks, one at a time -----------------------------------------
const pwq = [];
let pwBusy = false;
function pwcheck(password, cb) {
  pwq.push([password, cb]);
  if (!pwBusy) pwNext();
}
function pwNext() {
  const job = pwq.shift();
  if (!job) { pwBusy = false; return; }
  pwBusy = true;
  scrypt(job[0], 'helpline-peer-salt', 32, { N: 65536, r: 8, p: 1, maxmem: 128 * 1024 * 1024 }, () => {
    job[1]();
    pwNext();
  });
}

// ---- queue positions ---------------------------------------------------------
const shown = (p) => (p <= 20 ? p : p <= 100 ? Math.ceil(p / 5) * 5 : p <= 1000 ? Math.ceil(p / 50) * 50 : Math.ceil(p / 500) * 500);
setInterval(() => {
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i], pos = shown(i + 1);
    if (v.shown !== pos) { v.shown = pos; send(v.contact, { type: 'queue.position', position: pos, estimate_s: null }); }
  }
}, 1000).unref();

function dequeue(v) {
  const i = queue.indexOf(v);
  if (i >= 0) queue.splice(i, 1);
}

// ---- messages -----------------------------------------------------------------
function onMessage(ws, data) {
  let m;
  try { m = JSON.parse(data); } catch { return error(ws, undefined, 'bad_json', 'not JSON'); }
  const st = ws.st;
  if (m.type !== 'hello' && !st.greeted) return error(ws, m.id, 'bad_state', 'hello first');
  switch (m.type) {
    case 'hello':
      if (st.greeted) return error(ws, m.id, 'bad_state', 'already greeted');
      st.greeted = true;
      return send(ws, { type: 'welcome', id: m.id, protocol: ws.protocol, version: 1, server: 'helpline-peer/0.1', max_message: 65536, session: randomBytes(8).toString('hex') });
    case 'auth.login':
      if (!st.staff) return error(ws, m.id, 'forbidden', 'staff only');
      return pwcheck(String(m.password), () => {
        if (!/^bench\d+$/.test(String(m.username))) return error(ws, m.id, 'auth_failed', 'login failed');
        st.auth = m.username;
        send(ws, { type: 'auth.ok', id: m.id, token: randomBytes(32).toString('base64url'), staff: { username: m.username }, expires_at: 0, idle_timeout: 1800 });
      });
    case 'contact.start': {
      if (st.staff) return error(ws, m.id, 'forbidden', 'contacts only');
      if (st.conv) return error(ws, m.id, 'bad_state', 'already started');
      const v = { id: String(nextConv++), contact: ws, counsellor: null, seq: 0, state: 'queued', resume: randomBytes(32).toString('base64url'), ids: [new Map(), new Map()], shown: 0 };
      convs.set(v.id, v);
      byResume.set(v.resume, v);
      queue.push(v);
      st.conv = v;
      v.shown = shown(queue.length);
      return send(ws, { type: 'contact.started', id: m.id, conversation: v.id, resume: v.resume, risk: 0, position: v.shown, estimate_s: null });
    }
    case 'contact.resume': {
      const v = byResume.get(m.resume);
      if (!v || v.state === 'left') return error(ws, m.id, 'auth_failed', 'resume failed');
      if (v.contact && v.contact !== ws) v.contact.close(1008, 'resumed elsewhere');
      v.contact = ws;
      st.conv = v;
      return send(ws, { type: 'contact.resumed', id: m.id, conversation: v.id, state: v.state });
    }
    case 'contact.leave': {
      const v = st.conv;
      if (!v || v.state !== 'queued') return error(ws, m.id, 'bad_state', 'not waiting');
      dequeue(v);
      v.state = 'left';
      byResume.delete(v.resume);
      convs.delete(v.id);
      return send(ws, { type: 'contact.left', id: m.id });
    }
    case 'queue.take': {
      if (!st.auth) return error(ws, m.id, 'auth_required', 'log in first');
      const v = queue.shift();
      if (!v) return error(ws, m.id, 'not_found', 'nobody waiting');
      v.counsellor = ws;
      v.state = 'active';
      const seq = ++v.seq, at = Date.now();
      commit({ ws, id: m.id, line: JSON.stringify({ conv: v.id, seq, at, kind: 'system', payload: 'joined' }) + '\n', done: () => {
        send(ws, { type: 'queue.taken', id: m.id, conversation: v.id, risk: 0, topics: '', age_band: null, danger_now: false, language: '', waited_s: 0, seq });
        send(v.contact, { type: 'chat.event', conversation: v.id, seq, at, kind: 'system', from: 'system', payload: 'am9pbmVk' });
      } });
      return;
    }
    case 'chat.send': {
      const v = st.staff ? convs.get(String(m.conversation)) : st.conv;
      const fromContact = !st.staff;
      if (!v || (fromContact ? v.contact !== ws : v.counsellor !== ws)) return error(ws, m.id, 'forbidden', 'not your conversation');
      if (v.state !== 'active') return error(ws, m.id, 'bad_state', 'not active');
      if (typeof m.payload !== 'string' || !/^[A-Za-z0-9_-]+$/.test(m.payload)) return error(ws, m.id, 'bad_field', 'payload');
      const ids = v.ids[fromContact ? 0 : 1];
      const dup = ids.get(m.id);
      if (dup) return send(ws, { type: 'chat.ack', id: m.id, seq: dup, duplicate: true });
      const seq = ++v.seq, at = Date.now();
      ids.set(m.id, seq);
      const from = fromContact ? 'contact' : 'counsellor';
      commit({ ws, id: m.id, line: JSON.stringify({ conv: v.id, seq, at, from, id: m.id, payload: m.payload }) + '\n', done: () => {
        send(ws, { type: 'chat.ack', id: m.id, seq, at });
        send(fromContact ? v.counsellor : v.contact, { type: 'chat.event', conversation: v.id, seq, at, kind: 'msg', from, payload: m.payload });
      } });
      return;
    }
    case 'ping':
      return send(ws, { type: 'pong', id: m.id });
    default:
      return error(ws, m.id, 'unknown_type', 'unknown type');
  }
}

const http = createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({
  server: http, path: '/ws', maxPayload: 65536,
  handleProtocols: (set) => PROTOCOLS.find((p) => set.has(p)) ?? false,
});
wss.on('connection', (ws) => {
  ws.st = { greeted: false, staff: ws.protocol === 'helpline.staff.v1', conv: null, auth: null };
  ws.on('message', (data, isBinary) => { if (!isBinary) onMessage(ws, data.toString()); });
  ws.on('close', () => { const v = ws.st.conv; if (v && v.contact === ws) v.contact = null; });
  ws.on('error', () => {});
});
http.listen(port, '127.0.0.1', () => process.stdout.write(`peer listening ${http.address().port}\n`));
const stop = () => { for (const c of wss.clients) c.close(1001, 'server shutting down'); http.close(); log.close().finally(() => process.exit(0)); setTimeout(() => process.exit(0), 2000).unref(); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
