// diskfull.test.mjs: store faults. A full disk or an I/O error makes the
// daemon refuse new writes with store_failed to the sender — no ack, nothing
// delivered, no crash — while reads and every connection carry on; when the
// space comes back it stores again by itself, without a restart, and nothing
// acknowledged before was lost.
//
// The fault is injected with the test-build hook HL_TEST_STORE_FAULT
// (service/store.c): the store's database goes through a shim VFS, and the
// writer reads the named file before every batch — "full" fails every write
// with SQLITE_FULL (what ENOSPC gives), "ioerr" with SQLITE_IOERR, anything
// else is healthy. A second test fills a real, small tmpfs when the test may
// mount one (root in a container that allows it; skipped otherwise).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId, httpGet } from './harness.mjs';
import { enrolled, login, awaitStepMargin, staffSocket, ctl } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const text = (ev) => Buffer.from(ev.payload, 'base64url').toString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const SANITIZER = /ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer/;

// The reply to request id on ws, skipping pushes (events, receipts, typing).
async function reply(ws, id, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    const m = await next(ws, Math.max(1, end - Date.now()));
    if (m.id === id) return m;
    (ws.pushes ??= []).push(m);
  }
}
async function send(ws, id, payload, conversation) {
  const req = { type: 'chat.send', id, payload: b64(payload) };
  if (conversation) req.conversation = conversation;
  ws.send(JSON.stringify(req));
  return reply(ws, id);
}
// Every event of a conversation, read by a counsellor with chat.sync.
async function history(ws, conversation) {
  const id = nextId();
  ws.send(JSON.stringify({ type: 'chat.sync', id, conversation, last_seq: 0 }));
  const events = [];
  for (;;) {
    const m = await next(ws);
    if (m.type === 'chat.synced' && m.id === id) return events;
    if (m.type === 'chat.event') events.push(m);
  }
}
// Pushes received so far (and within ms) of type chat.event.
async function eventsSeen(ws, ms = 300) {
  await sleep(ms);
  const all = [...(ws.pushes ?? []), ...ws.inbox.splice(0)];
  ws.pushes = [];
  return all.filter((m) => m.type === 'chat.event');
}

// Starts a daemon, enrols two counsellors and pairs each with a young person.
async function twoPairs(srv) {
  await awaitStepMargin(15);
  const pairs = [];
  for (const name of ['dana', 'dora']) {
    const acct = await enrolled(srv, name, 'counsellor');
    const young = await greeted(srv.port);
    const st = await request(young, { type: 'contact.start', id: nextId(), topics: 'school' });
    assert.equal(st.type, 'contact.started');
    const { ws: c, reply: ok } = await login(srv, acct);
    assert.equal(ok.type, 'auth.ok');
    const taken = await request(c, { type: 'queue.take', id: nextId() });
    assert.equal(taken.conversation, st.conversation);
    for (;;) { const m = await next(young); if (m.type === 'chat.event') break; }
    pairs.push({ young, c, conv: st.conversation, resume: st.resume, token: ok.token });
  }
  return pairs;
}

test('disk full and I/O errors: writes refused with store_failed, reads and connections carry on, recovery without a restart', { timeout: 120000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-diskfull-'));
  const fault = join(dir, 'fault');
  const setFault = (mode) => writeFileSync(fault, `${mode}\n`);
  setFault('off');
  const srv = await startServer({ dir, env: { HL_TEST_STORE_FAULT: fault } });
  t.after(() => { if (srv.proc.exitCode === null && srv.proc.signalCode === null) srv.proc.kill('SIGKILL'); });
  if (!/store\.test_fault control=/.test(srv.stderr)) {
    await srv.stop(); srv.cleanup();
    t.skip('helplined was built without -DHL_TEST_HOOKS=ON');
    return;
  }
  const [a, b] = await twoPairs(srv);
  const acked = []; // {conv, seq, text}

  // Healthy: both ways, both pairs.
  for (let i = 0; i < 5; i++) {
    for (const [p, k] of [[a, 'a'], [b, 'b']]) {
      const y = await send(p.young, `${k}-y${i}`, `${k} young ${i}`);
      assert.equal(y.type, 'chat.ack', JSON.stringify(y));
      acked.push({ conv: p.conv, seq: y.seq, text: `${k} young ${i}` });
      const c = await send(p.c, `${k}-c${i}`, `${k} counsellor ${i}`, p.conv);
      assert.equal(c.type, 'chat.ack', JSON.stringify(c));
      acked.push({ conv: p.conv, seq: c.seq, text: `${k} counsellor ${i}` });
    }
  }
  await eventsSeen(a.c); await eventsSeen(a.young); await eventsSeen(b.c); await eventsSeen(b.young);

  for (const mode of ['full', 'ioerr']) {
    setFault(mode);
    // The sender is told, specifically; nothing is acknowledged or delivered.
    const r1 = await send(a.young, `${mode}-1`, `${mode} refused 1`);
    assert.deepEqual([r1.type, r1.code], ['error', 'store_failed'], JSON.stringify(r1));
    assert.match(r1.message, /could not be stored/);
    const r2 = await send(a.c, `${mode}-c1`, `${mode} refused c1`, a.conv);
    assert.deepEqual([r2.type, r2.code], ['error', 'store_failed'], JSON.stringify(r2));
    // A burst from several connections at once (one batch or several):
    // every one refused, none acknowledged.
    const burst = [];
    for (let i = 0; i < 8; i++) {
      const p = i % 2 ? b : a;
      burst.push(send(p.young, `${mode}-burst-${i}`, `${mode} burst ${i}`));
    }
    for (const r of await Promise.all(burst)) assert.deepEqual([r.type, r.code], ['error', 'store_failed'], JSON.stringify(r));
    // Reads that reach the writer together with refused writes (the same
    // batch, but for the store's one-job-per-transaction mode after a
    // failure) are still answered.
    for (let i = 0; i < 4; i++) {
      const w = send(a.young, `${mode}-mixed-${i}`, `${mode} mixed ${i}`);
      const sid = nextId();
      b.c.send(JSON.stringify({ type: 'chat.sync', id: sid, conversation: b.conv, last_seq: 0 }));
      const [wr, sr] = await Promise.all([w, reply(b.c, sid)]);
      assert.deepEqual([wr.type, wr.code], ['error', 'store_failed'], JSON.stringify(wr));
      assert.equal(sr.type, 'chat.synced', `${mode}: a read beside a refused write: ${JSON.stringify(sr)}`);
      b.c.pushes = [];
    }
    assert.deepEqual(await eventsSeen(a.c), [], `${mode}: nothing delivered to the counsellor`);
    assert.deepEqual(await eventsSeen(b.c, 0), [], `${mode}: nothing delivered to the other counsellor`);
    assert.deepEqual(await eventsSeen(a.young, 0), [], `${mode}: nothing delivered to the young person`);

    // The daemon is alive and every connection still works for reads.
    assert.equal(srv.proc.exitCode, null);
    assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
    for (const ws of [a.young, a.c, b.young, b.c]) {
      const id = nextId();
      ws.send(JSON.stringify({ type: 'ping', id }));
      assert.equal((await reply(ws, id)).type, 'pong');
    }
    const h = await history(b.c, b.conv);
    assert.deepEqual(h.filter((e) => e.kind === 'msg').map(text), acked.filter((x) => x.conv === b.conv).map((x) => x.text),
      `${mode}: the other conversation reads back whole`);
    const yid = nextId();
    b.young.send(JSON.stringify({ type: 'chat.sync', id: yid, last_seq: 0 }));
    assert.equal((await reply(b.young, yid)).type, 'chat.synced');
    // A new connection is served (hello, line status); what would write is
    // refused with an error, not a close.
    const fresh = await greeted(srv.port);
    const ls = await request(fresh, { type: 'line.status', id: nextId() });
    assert.equal(ls.type, 'line.status', JSON.stringify(ls));
    const st = await request(fresh, { type: 'contact.start', id: nextId() });
    assert.deepEqual([st.type, st.code], ['error', 'store_failed'], JSON.stringify(st));
    fresh.close();
    // Receipts that cannot be stored do no harm.
    a.c.send(JSON.stringify({ type: 'chat.read', id: nextId(), conversation: a.conv, seq: acked.at(-1).seq }));
    await sleep(100);
    assert.equal(srv.proc.exitCode, null);

    // Space back: the same ids are stored now (they never were before),
    // without a restart.
    setFault('off');
    const ok1 = await send(a.young, `${mode}-1`, `${mode} refused 1`);
    assert.equal(ok1.type, 'chat.ack', JSON.stringify(ok1));
    assert.equal(ok1.duplicate, undefined, 'a refused message was not stored');
    acked.push({ conv: a.conv, seq: ok1.seq, text: `${mode} refused 1` });
    const ok2 = await send(a.c, `${mode}-c1`, `${mode} refused c1`, a.conv);
    assert.equal(ok2.type, 'chat.ack', JSON.stringify(ok2));
    acked.push({ conv: a.conv, seq: ok2.seq, text: `${mode} refused c1` });
    const got = (await eventsSeen(a.c)).map(text);
    assert.deepEqual(got, [`${mode} refused 1`], 'delivered once, now that it is stored');
    for (let i = 0; i < 8; i++) {
      const p = i % 2 ? b : a;
      const r = await send(p.young, `${mode}-burst-${i}`, `${mode} burst ${i}`);
      assert.equal(r.type, 'chat.ack', JSON.stringify(r));
      assert.equal(r.duplicate, undefined);
      acked.push({ conv: p.conv, seq: r.seq, text: `${mode} burst ${i}` });
    }
    await eventsSeen(a.c, 50); await eventsSeen(b.c, 0); await eventsSeen(a.young, 0); await eventsSeen(b.young, 0);
  }

  // Everything acknowledged is there once, at its seq; nothing else is.
  const check = async (cw, conv) => {
    const events = await history(cw, conv);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'gapless');
    const msgs = events.filter((e) => e.kind === 'msg');
    const want = acked.filter((x) => x.conv === conv).sort((x, y) => x.seq - y.seq);
    assert.deepEqual(msgs.map((e) => [e.seq, text(e)]), want.map((x) => [x.seq, x.text]));
  };
  await check(a.c, a.conv);
  await check(b.c, b.conv);
  for (const p of [a, b]) { p.young.close(); p.c.close(); }

  const r = await srv.stop();
  assert.equal(r.code, 0, r.stderr.slice(-3000));
  assert.ok(!SANITIZER.test(r.stderr), r.stderr.slice(-3000));
  assert.match(r.stderr, /store\.commit_failed/, 'the failures were logged');
  const db = join(dir, 'helpline.db');
  assert.equal(execFileSync('sqlite3', ['-readonly', db, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim(), 'ok');
  assert.match(ctl(srv, 'audit', 'verify'), /^audit chain ok: \d+ entries/);

  // And after a restart it is all still there.
  const srv2 = await startServer({ dir });
  try {
    const c = await staffSocket(srv2);
    assert.equal((await request(c, { type: 'auth.resume', id: nextId(), token: a.token })).type, 'auth.ok');
    await check(c, a.conv);
    c.close();
  } finally {
    const r2 = await srv2.stop();
    assert.equal(r2.code, 0, r2.stderr.slice(-3000));
    srv2.cleanup();
  }
});
