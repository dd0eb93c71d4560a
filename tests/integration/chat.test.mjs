// chat.test.mjs: a counsellor takes a chat from the queue; both sides chat;
// every message is acknowledged only once stored and delivered exactly
// once; network drops and a kill -9 of the daemon lose nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin, staffSocket } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const text = (ev) => Buffer.from(ev.payload, 'base64url').toString();

async function nextOf(ws, type, ms = 5000) {
  for (;;) { const m = await next(ws, ms); if (m.type === type) return m; }
}

test('take, chat both ways, duplicates, drops and resume, kill -9, end', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-chat-'));
  let srv = await startServer({ dir });
  await awaitStepMargin(15);
  const cou = await enrolled(srv, 'cora', 'counsellor');
  const other = await enrolled(srv, 'otto', 'counsellor');
  const young = await greeted(srv.port);
  const started = await request(young, { type: 'contact.start', id: nextId(), topics: 'sextortion' });
  assert.equal(started.type, 'contact.started');

  const { ws: c, reply } = await login(srv, cou);
  assert.equal(reply.type, 'auth.ok');
  const token = reply.token;
  const taken = await request(c, { type: 'queue.take', id: nextId() });
  assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
  assert.equal(taken.conversation, started.conversation);
  const joined = await nextOf(young, 'chat.event');
  assert.deepEqual([joined.kind, joined.from, text(joined)], ['system', 'system', 'joined']);
  const conv = taken.conversation;
  const none = await request(c, { type: 'queue.take', id: nextId() });
  assert.equal(none.code, 'not_found');

  // Young person -> counsellor.
  const a1 = await request(young, { type: 'chat.send', id: 'y1', payload: b64('hi, I need help') });
  assert.equal(a1.type, 'chat.ack');
  assert.equal(a1.seq, joined.seq + 1);
  const got = await nextOf(c, 'chat.event');
  assert.deepEqual([got.conversation, got.seq, got.from, text(got)], [conv, a1.seq, 'contact', 'hi, I need help']);
  // Counsellor -> young person: the young person never sees a staff id.
  const a2 = await request(c, { type: 'chat.send', id: 'c1', conversation: conv, payload: b64("I'm here. You're safe to talk.") });
  assert.equal(a2.seq, a1.seq + 1);
  const got2 = await nextOf(young, 'chat.event');
  assert.deepEqual([got2.from, got2.seq], ['counsellor', a2.seq]);
  // A retried id is acknowledged again with the same seq and not delivered twice.
  const dup = await request(young, { type: 'chat.send', id: 'y1', payload: b64('hi, I need help') });
  assert.deepEqual([dup.type, dup.seq, dup.duplicate], ['chat.ack', a1.seq, true]);

  // Typing is relayed to the other party, not stored; receipts are stored
  // (high-water marks) and relayed.
  young.send(JSON.stringify({ type: 'chat.typing', id: nextId() }));
  assert.deepEqual(await nextOf(c, 'chat.typing'), { type: 'chat.typing', conversation: conv, from: 'contact' });
  c.send(JSON.stringify({ type: 'chat.delivered', id: nextId(), conversation: conv, seq: a1.seq }));
  assert.deepEqual(await nextOf(young, 'chat.receipt'), { type: 'chat.receipt', conversation: conv, from: 'counsellor', kind: 'delivered', seq: a1.seq });
  c.send(JSON.stringify({ type: 'chat.read', id: nextId(), conversation: conv, seq: a1.seq }));
  assert.deepEqual(await nextOf(young, 'chat.receipt'), { type: 'chat.receipt', conversation: conv, from: 'counsellor', kind: 'read', seq: a1.seq });
  // A seq from the future is refused and changes nothing.
  const fut = await request(c, { type: 'chat.read', id: nextId(), conversation: conv, seq: 9999 });
  assert.equal(fut.code, 'bad_field');
  assert.equal(fut.field, 'seq');

  // An internal note reaches staff only: never the young person, live or on sync.
  const note = await request(c, { type: 'chat.note', id: 'n1', conversation: conv, payload: b64('INTERNAL: check for deadline') });
  assert.equal(note.type, 'chat.ack');
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(!young.inbox.some((m) => m.kind === 'note' || (m.payload && text(m).startsWith('INTERNAL'))), 'no note reached the young person');

  // Strangers are refused without learning anything.
  const { ws: o } = await login(srv, other);
  const f1 = await request(o, { type: 'chat.send', id: nextId(), conversation: conv, payload: b64('x') });
  assert.equal(f1.code, 'forbidden');
  const f2 = await request(o, { type: 'chat.sync', id: nextId(), conversation: conv, last_seq: 0 });
  assert.equal(f2.code, 'forbidden');
  const f3 = await request(young, { type: 'chat.send', id: nextId(), conversation: '999999', payload: b64('x') });
  assert.equal(f3.code, 'forbidden');
  const bad = await request(young, { type: 'chat.send', id: nextId(), payload: 'not base64!' });
  assert.equal(bad.code, 'bad_field');
  o.close();

  // The young person's network drops; the counsellor writes meanwhile.
  young.terminate();
  const missed = [];
  for (let i = 0; i < 3; i++) {
    const a = await request(c, { type: 'chat.send', id: `c-missed-${i}`, conversation: conv, payload: b64(`missed ${i}`) });
    missed.push(a.seq);
  }
  const y2 = await greeted(srv.port);
  const res = await request(y2, { type: 'contact.resume', id: nextId(), resume: started.resume, last_seq: got2.seq });
  // (the note's seq lies in between: the contact's sync must skip it)
  assert.deepEqual([res.type, res.state], ['contact.resumed', 'active']);
  y2.send(JSON.stringify({ type: 'chat.sync', id: 'sync1', last_seq: got2.seq }));
  const replay = [];
  for (;;) { const m = await next(y2); if (m.type === 'chat.synced') { assert.equal(m.count, 3); break; } replay.push(m); }
  assert.deepEqual(replay.map((e) => e.seq), missed);
  assert.deepEqual(replay.map(text), ['missed 0', 'missed 1', 'missed 2']);

  // kill -9 with acknowledged messages: all are there after the restart.
  const acked = [];
  for (let i = 0; i < 20; i++) acked.push((await request(y2, { type: 'chat.send', id: `k${i}`, payload: b64(`k${i}`) })).seq);
  srv.proc.kill('SIGKILL');
  await srv.exited;
  srv = await startServer({ dir });
  const c2 = await staffSocket(srv);
  assert.equal((await request(c2, { type: 'auth.resume', id: nextId(), token })).type, 'auth.ok');
  c2.send(JSON.stringify({ type: 'chat.sync', id: 's2', conversation: conv, last_seq: 0 }));
  const all = [];
  for (;;) { const m = await next(c2); if (m.type === 'chat.synced') break; all.push(m); }
  const seqs = all.map((e) => e.seq);
  assert.deepEqual(seqs, [...Array(seqs.length).keys()].map((i) => i + 1), 'gapless, once each');
  for (const s of acked) assert.ok(seqs.includes(s), `acknowledged seq ${s} survived kill -9`);
  assert.equal(all.filter((e) => e.from === 'contact' && text(e) === 'hi, I need help').length, 1);
  assert.equal(all.filter((e) => e.kind === 'note').length, 1, 'staff see the note on sync');

  // The young person comes back too and ends the chat.
  const y3 = await greeted(srv.port);
  assert.equal((await request(y3, { type: 'contact.resume', id: nextId(), resume: started.resume, last_seq: 0 })).state, 'active');
  const end = await request(y3, { type: 'chat.end', id: nextId() });
  assert.equal(end.type, 'chat.ended');
  const told = await nextOf(c2, 'chat.event');
  assert.equal(text(told), 'ended_by_contact');
  const after = await request(c2, { type: 'chat.send', id: nextId(), conversation: conv, payload: b64('x') });
  assert.equal(after.code, 'forbidden');
  y3.close(); c2.close(); c.close();
  const r = await srv.stop();
  srv.cleanup();
  assert.equal(r.code, 0, r.stderr);
});

test('a counsellor who does not come back within the grace period: the chat returns to the front of the queue', async () => {
  const { writeFileSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'helpline-grace-'));
  writeFileSync(join(dir, 'g.ini'), '[queue]\ncounsellor_grace = 5\n');
  const srv = await startServer({ dir, args: ['--config', join(dir, 'g.ini')] });
  try {
    await awaitStepMargin(15);
    const gone = await enrolled(srv, 'gina', 'counsellor');
    const back = await enrolled(srv, 'bert', 'counsellor');
    const waiting = await greeted(srv.port);
    await request(waiting, { type: 'contact.start', id: nextId(), topics: 'school' });
    const young = await greeted(srv.port);
    const st = await request(young, { type: 'contact.start', id: nextId(), topics: 'grooming' });
    const g = await login(srv, gone);
    const t = await request(g.ws, { type: 'queue.take', id: nextId() });
    assert.equal(t.conversation, st.conversation, 'higher risk first');
    await nextOf(young, 'chat.event'); // joined
    // A short drop within the grace period changes nothing...
    g.ws.terminate();
    await new Promise((r) => setTimeout(r, 1500));
    const g2 = await staffSocket(srv);
    assert.equal((await request(g2, { type: 'auth.resume', id: nextId(), token: g.reply.token })).type, 'auth.ok');
    await new Promise((r) => setTimeout(r, 5500));
    const still = await request(g2, { type: 'chat.send', id: nextId(), conversation: t.conversation, payload: b64('still here') });
    assert.equal(still.type, 'chat.ack');
    // ...a longer absence sends the chat back, ahead of the earlier waiter.
    g2.terminate();
    const lost = await nextOf(young, 'chat.event');
    assert.equal(lost.kind, 'msg'); // the "still here" message
    const ev = await nextOf(young, 'chat.event', 10000); // grace 5 s + a tick
    assert.deepEqual([ev.kind, text(ev)], ['system', 'counsellor_lost']);
    const pos = await nextOf(young, 'queue.position');
    assert.equal(pos.position, 1);
    const b = await login(srv, back);
    const t2 = await request(b.ws, { type: 'queue.take', id: nextId() });
    assert.equal(t2.conversation, st.conversation);
    b.ws.close(); young.close(); waiting.close();
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
});
