// contact.test.mjs: a young person's intake, the risk-ordered queue with
// pushed position updates, leaving, resuming after a network drop and
// after a daemon restart, the queue cap, and the supervisor's queue view.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, connect, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin } from './staff.mjs';

let srv;
const resumes = [];
before(async () => { srv = await startServer(); });
after(async () => {
  const r = await srv.stop();
  assert.equal(r.code, 0, r.stderr);
  const files = ['helpline.db', 'helpline.db-wal'].map((f) => join(srv.dir, f)).filter(existsSync);
  const stored = Buffer.concat([...files.map((f) => readFileSync(f)), Buffer.from(r.stderr)]);
  for (const s of resumes) {
    assert.ok(!stored.includes(Buffer.from(s)), 'a resume secret is stored or logged');
    assert.ok(!stored.includes(Buffer.from(s, 'base64url')), 'a raw resume secret is stored');
  }
  srv.cleanup();
});

async function start(intake = {}, s = srv) {
  const ws = await greeted(s.port);
  const r = await request(ws, { type: 'contact.start', id: nextId(), ...intake });
  if (r.type === 'contact.started') resumes.push(r.resume);
  return { ws, r };
}

// Waits for the next queue.position push on ws.
async function nextPosition(ws) {
  for (;;) {
    const m = await next(ws, 4000);
    if (m.type === 'queue.position') return m;
  }
}

test('intake, risk ordering, pushed positions, leaving', async () => {
  const early = await start({ topics: 'cyberbullying', age_band: '13_15', language: 'en' });
  assert.equal(early.r.type, 'contact.started', JSON.stringify(early.r));
  assert.match(early.r.conversation, /^\d+$/);
  assert.match(early.r.resume, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(early.r.risk, 0);
  assert.equal(early.r.position, 1);
  assert.equal(early.r.estimate_s, null, 'no invented estimate without history');

  const mid = await start({ topics: 'sextortion', flags: 'money_demanded' });
  assert.equal(mid.r.risk, 2);
  assert.equal(mid.r.position, 1, 'high risk goes ahead of standard');
  assert.deepEqual(await nextPosition(early.ws), { type: 'queue.position', position: 2, estimate_s: null });

  const urgent = await start({ flags: 'danger_now' });
  assert.equal(urgent.r.risk, 3);
  assert.equal(urgent.r.position, 1);
  assert.equal((await nextPosition(mid.ws)).position, 2);
  assert.equal((await nextPosition(early.ws)).position, 3);

  const again = await request(urgent.ws, { type: 'contact.start', id: nextId() });
  assert.equal(again.code, 'bad_state');

  const left = await request(urgent.ws, { type: 'contact.leave', id: nextId() });
  assert.equal(left.type, 'contact.left');
  assert.equal((await nextPosition(mid.ws)).position, 1);
  assert.equal((await nextPosition(early.ws)).position, 2);
  const twice = await request(urgent.ws, { type: 'contact.leave', id: nextId() });
  assert.equal(twice.code, 'bad_state');
  // The resume secret of a chat that was left no longer works.
  const gone = await greeted(srv.port);
  const r = await request(gone, { type: 'contact.resume', id: nextId(), resume: urgent.r.resume, last_seq: 0 });
  assert.equal(r.code, 'auth_failed');
  for (const x of [early, mid, urgent]) {
    await request(x.ws, { type: 'contact.leave', id: nextId() });
    x.ws.close();
  }
  gone.close();
});

test('intake is validated against taxonomy.json', async () => {
  const ws = await greeted(srv.port);
  for (const [intake, field] of [
    [{ topics: 'nonsense' }, 'topics'],
    [{ topics: 'danger_now' }, 'topics'],          // a flag is not a topic
    [{ flags: 'sextortion' }, 'flags'],            // a topic is not a flag
    [{ topics: 'sextortion,,grooming' }, 'topics'],
    [{ age_band: '12' }, 'age_band'],
    [{ topics: Array(17).fill('hacking').join(',') }, 'topics'],
  ]) {
    const r = await request(ws, { type: 'contact.start', id: nextId(), ...intake });
    assert.deepEqual([r.code, r.field], ['bad_field', field], JSON.stringify(intake));
  }
  const early = await request(ws, { type: 'contact.resume', id: nextId(), resume: 'short', last_seq: 0 });
  assert.deepEqual([early.code, early.field], ['bad_field', 'resume']);
  const r = await request(ws, { type: 'contact.start', id: nextId() });
  assert.equal(r.type, 'contact.started', 'everything is optional');
  resumes.push(r.resume);
  await request(ws, { type: 'contact.leave', id: nextId() });
  ws.close();
});

test('a network drop and resume keeps the place in the queue; a newer tab takes over', async () => {
  const a = await start({ topics: 'grooming' });
  const b = await start({ topics: 'anxiety' });
  assert.equal(b.r.position, 2);
  b.ws.terminate(); // the network drops
  await b.ws.closed;
  const b2 = await greeted(srv.port);
  const r = await request(b2, { type: 'contact.resume', id: nextId(), resume: b.r.resume, last_seq: 0 });
  assert.equal(r.type, 'contact.resumed', JSON.stringify(r));
  assert.equal(r.conversation, b.r.conversation);
  assert.equal(r.state, 'queued');
  assert.equal(r.position, 2);
  const b3 = await greeted(srv.port);
  const r3 = await request(b3, { type: 'contact.resume', id: nextId(), resume: b.r.resume, last_seq: 0 });
  assert.equal(r3.type, 'contact.resumed');
  assert.deepEqual(await b2.closed, { code: 1008, reason: 'resumed elsewhere' });
  await request(a.ws, { type: 'contact.leave', id: nextId() });
  assert.equal((await nextPosition(b3)).position, 1);
  await request(b3, { type: 'contact.leave', id: nextId() });
  a.ws.close(); b3.close();
});

test('wrong resume secrets are refused, and guessing closes the socket', async () => {
  const ws = await greeted(srv.port);
  for (let i = 0; i < 5; i++) {
    const r = await request(ws, { type: 'contact.resume', id: nextId(), resume: Buffer.alloc(32, i).toString('base64url'), last_seq: 0 });
    assert.equal(r.code, 'auth_failed');
  }
  assert.deepEqual(await ws.closed, { code: 1008, reason: 'too many failed attempts' });
});

test('the queue survives a daemon restart in its old order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-restart-'));
  const s1 = await startServer({ dir });
  const x = await start({ topics: 'school' }, s1);
  const y = await start({ topics: 'self_harm' }, s1);
  assert.equal(y.r.position, 1);
  const stop = await s1.stop();
  assert.equal(stop.code, 0, stop.stderr);
  const s2 = await startServer({ dir });
  try {
    const wx = await greeted(s2.port), wy = await greeted(s2.port);
    const rx = await request(wx, { type: 'contact.resume', id: nextId(), resume: x.r.resume, last_seq: 0 });
    const ry = await request(wy, { type: 'contact.resume', id: nextId(), resume: y.r.resume, last_seq: 0 });
    assert.deepEqual([rx.state, rx.position], ['queued', 2]);
    assert.deepEqual([ry.state, ry.position], ['queued', 1]);
    wx.close(); wy.close();
  } finally {
    const r = await s2.stop();
    s2.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('a full queue says so kindly', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-full-'));
  writeFileSync(join(dir, 'q.ini'), '[queue]\nmax = 1\n');
  const s = await startServer({ dir, args: ['--config', join(dir, 'q.ini')] });
  try {
    const first = await start({}, s);
    assert.equal(first.r.type, 'contact.started');
    const second = await start({}, s);
    assert.equal(second.r.code, 'busy');
    assert.match(second.r.message, /very busy/);
    first.ws.close(); second.ws.close();
  } finally {
    const r = await s.stop();
    s.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('supervisors see the queue by risk class; counsellors and contacts cannot', async () => {
  await awaitStepMargin();
  const sup = await enrolled(srv, 'sue', 'supervisor');
  const cou = await enrolled(srv, 'cal', 'counsellor');
  const a = await start({ flags: 'danger_now' });
  const b = await start({ topics: 'hacking' });
  const s = await login(srv, sup);
  const c = await login(srv, cou);
  const stats = await request(s.ws, { type: 'queue.stats', id: nextId() });
  assert.equal(stats.type, 'queue.stats', JSON.stringify(stats));
  assert.equal(stats.waiting, 2);
  assert.deepEqual(stats.by_risk, { standard: 1, elevated: 0, high: 0, immediate: 1 });
  assert.ok(stats.longest_wait_s >= 0);
  assert.equal((await request(c.ws, { type: 'queue.stats', id: nextId() })).code, 'forbidden');
  const contact = await greeted(srv.port);
  assert.equal((await request(contact, { type: 'queue.stats', id: nextId() })).code, 'forbidden');
  for (const x of [a, b]) { await request(x.ws, { type: 'contact.leave', id: nextId() }); x.ws.close(); }
  s.ws.close(); c.ws.close();
});
