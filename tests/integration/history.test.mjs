// history.test.mjs: chat.sync reads a long chat in pages that fit the
// socket's queue (ws.outq_max), so reading history never closes a reader
// "too slow"; every event comes once, in order, and a young person's pages
// never hold an internal event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, greeted, next, nextId, request } from './harness.mjs';
import { enrolled, login, awaitStepMargin } from './staff.mjs';

const b64 = (b) => Buffer.from(b).toString('base64url');

async function nextOf(ws, type) {
  for (;;) { const m = await next(ws); if (m.type === type) return m; }
}

// One chat.sync: resolves {events, synced}; rejects if the socket closes.
async function page(ws, req) {
  ws.send(JSON.stringify({ type: 'chat.sync', id: nextId(), ...req }));
  const closed = ws.closed.then((c) => { throw new Error(`closed ${c.code} ${c.reason}`); });
  const events = [];
  for (;;) {
    const m = await Promise.race([next(ws), closed]);
    if (m.type === 'chat.event') events.push(m);
    else if (m.type === 'chat.synced') return { events, synced: m };
    else if (m.type === 'error') throw new Error(JSON.stringify(m));
  }
}

// Every page from last_seq on, checking how each one ends.
async function allPages(ws, req, lastSeq) {
  const pages = [];
  for (let after = lastSeq; ;) {
    const p = await page(ws, { ...req, last_seq: after });
    pages.push(p);
    const s = p.synced;
    assert.equal(s.count, p.events.length);
    if (!s.more) {
      assert.equal(s.up_to, Math.max(s.last_seq, after));
      return pages;
    }
    assert.ok(p.events.length >= 1, 'a page that says more holds an event');
    assert.equal(s.up_to, p.events.at(-1).seq, 'up_to is the page\'s last event');
    after = s.up_to;
  }
}

const seqs = (pages) => pages.flatMap((p) => p.events.map((e) => e.seq));

test('a long chat\'s history comes in pages that fit the reader\'s queue', async () => {
  const srv = await startServer();
  try {
    await awaitStepMargin(15);
    const cou = await enrolled(srv, 'hana', 'counsellor');
    const young = await greeted(srv.port);
    await request(young, { type: 'contact.start', id: nextId(), topics: 'sextortion' });
    const { ws: c } = await login(srv, cou);
    const taken = await request(c, { type: 'queue.take', id: nextId() });
    const conv = taken.conversation;
    await nextOf(young, 'chat.event'); // joined

    // 40 messages of 40 kB, ~2.1 MB as chat.events: twice the default
    // ws.outq_max (1 MiB) in one reply, which closed the reader before.
    const big = (i) => Buffer.alloc(40000, i);
    for (let i = 0; i < 20; i++) {
      young.send(JSON.stringify({ type: 'chat.send', id: `y${i}`, payload: b64(big(i)) }));
      assert.equal((await nextOf(young, 'chat.ack')).type, 'chat.ack');
    }
    // An internal note in the middle, which the young person never gets.
    c.send(JSON.stringify({ type: 'chat.note', id: 'n1', conversation: conv, payload: b64('INTERNAL') }));
    assert.equal((await nextOf(c, 'chat.ack')).seq, 22);
    for (let i = 20; i < 40; i++) {
      young.send(JSON.stringify({ type: 'chat.send', id: `y${i}`, payload: b64(big(i)) }));
      assert.equal((await nextOf(young, 'chat.ack')).type, 'chat.ack');
    }
    await new Promise((r) => setTimeout(r, 300));
    c.inbox.length = 0;
    young.inbox.length = 0;

    // The counsellor: joined, 40 messages and the note, 42 events.
    const staff = await allPages(c, { conversation: conv }, 0);
    assert.ok(staff.length >= 8, `${staff.length} pages of at most ~256 KiB`);
    assert.deepEqual(seqs(staff), Array.from({ length: 42 }, (_, i) => i + 1));
    for (const p of staff) {
      const bytes = p.events.reduce((n, e) => n + JSON.stringify(e).length, 0);
      assert.ok(bytes <= 262144, `a page of ${bytes} bytes`);
    }
    const msgs = staff.flatMap((p) => p.events).filter((e) => e.kind === 'msg');
    msgs.forEach((e, i) => assert.equal(Buffer.from(e.payload, 'base64url').equals(big(i)), true));

    // From the middle, and from the end: nothing left, more false.
    assert.deepEqual(seqs(await allPages(c, { conversation: conv }, 30)), [31, 32, ...Array.from({ length: 10 }, (_, i) => 33 + i)]);
    const end = await page(c, { conversation: conv, last_seq: 42 });
    assert.deepEqual([end.events.length, end.synced.more, end.synced.up_to], [0, false, 42]);

    // The young person: their pages skip the note (seq 22), even at a
    // page's edge, and still reach the end.
    const mine = await allPages(young, {}, 0);
    assert.deepEqual(seqs(mine), Array.from({ length: 42 }, (_, i) => i + 1).filter((s) => s !== 22));
    assert.ok(mine.flatMap((p) => p.events).every((e) => e.kind !== 'note'));
    assert.equal(mine.at(-1).synced.up_to, 42);
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error|too slow/);
    srv.cleanup();
  }
});

// A reader too slow for what it is sent is closed ("too slow") when its
// queue passes ws.outq_max; nothing is lost: it resumes and reads what it
// missed, in pages.
test('a counsellor who stops reading is closed too slow, resumes, and reads every message', async () => {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = mkdtempSync(join(tmpdir(), 'helpline-slow-'));
  const ini = join(dir, 'slow.ini');
  writeFileSync(ini, '[ws]\nrate = 10000\nburst = 10000\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(15);
    const cou = await enrolled(srv, 'sol', 'counsellor');
    const young = await greeted(srv.port);
    await request(young, { type: 'contact.start', id: nextId(), topics: 'sextortion' });
    const { ws: c, reply } = await login(srv, cou);
    const conv = (await request(c, { type: 'queue.take', id: nextId() })).conversation;
    await nextOf(young, 'chat.event'); // joined
    // The counsellor's socket stops reading; the young person sends 160
    // messages of 45 kB (~9.6 MB as events: more than loopback's socket
    // buffers and the 1 MiB queue).
    c._socket.pause();
    const big = (i) => Buffer.alloc(45000, i % 251);
    const acked = [];
    for (let i = 0; i < 160; i++) {
      young.send(JSON.stringify({ type: 'chat.send', id: `s${i}`, payload: b64(big(i)) }));
      acked.push((await nextOf(young, 'chat.ack')).seq);
    }
    c._socket.resume();
    const closed = await c.closed;
    assert.notEqual(closed.code, 1000, 'the slow socket was closed');
    const log = () => srv.stderr;
    assert.match(log(), /conn\.closing conn=\S+ code=1008 reason="too slow"/);
    // Back on a new socket: every message, once, in order.
    const { staffSocket } = await import('./staff.mjs');
    const c2 = await staffSocket(srv);
    assert.equal((await request(c2, { type: 'auth.resume', id: nextId(), token: reply.token })).type, 'auth.ok');
    const pages = await allPages(c2, { conversation: conv }, 0);
    const msgs = pages.flatMap((p) => p.events).filter((e) => e.kind === 'msg');
    assert.deepEqual(msgs.map((e) => e.seq), acked);
    msgs.forEach((e, i) => assert.ok(Buffer.from(e.payload, 'base64url').equals(big(i))));
    c2.close(); young.close();
  } finally {
    const r = await srv.stop();
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    srv.cleanup();
  }
});
