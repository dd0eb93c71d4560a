// colleagues.test.mjs: staff.colleagues, the list a counsellor chooses a
// transfer target from: who is listed (the supervisors' view's population,
// never the caller), can_take agreeing with what chat.transfer accepts, no
// usernames, and the refusals on a contact socket and before login.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startServer, greeted, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin, staffSocket, waitFor, origin } from './staff.mjs';
import { StaffClient } from '../../client-web/js/helpline.js';

const b64 = (s) => Buffer.from(s).toString('base64url');

// Collects every frame a socket receives; req() sends and resolves the
// reply with the same id, wait() the next frame matching a predicate.
function tap(ws) {
  const all = [];
  const waiters = [];
  ws.removeAllListeners('message');
  ws.on('message', (d) => {
    const m = JSON.parse(String(d));
    all.push(m);
    for (const w of [...waiters]) if (w.pred(m)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
  });
  ws.all = all;
  ws.wait = (pred, ms = 8000) => {
    if (typeof pred === 'string') { const t = pred; pred = (m) => m.type === t; }
    const found = all.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(timer); resolve(m); } };
      const timer = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`no ${pred} within ${ms} ms`)); }, ms);
      waiters.push(w);
    });
  };
  ws.req = (obj, ms = 8000) => { const id = obj.id ?? nextId(); ws.send(JSON.stringify({ ...obj, id })); return ws.wait((m) => m.id === id, ms); };
  return ws;
}

async function staff(srv, acct) {
  await awaitStepMargin(4);
  const { ws, reply } = await login(srv, acct);
  assert.equal(reply.type, 'auth.ok', JSON.stringify(reply));
  tap(ws);
  ws.staffId = reply.staff.id;
  ws.token = reply.token;
  return ws;
}

// The reply's list, checked for shape, keyed by display name.
async function colleagues(ws) {
  const r = await ws.req({ type: 'staff.colleagues' });
  assert.equal(r.type, 'staff.colleagues', JSON.stringify(r));
  assert.ok(Array.isArray(r.staff));
  const byName = {};
  for (const c of r.staff) {
    assert.deepEqual(Object.keys(c).sort(),
      ['can_take', 'capacity', 'chats', 'display_name', 'languages', 'on_shift', 'presence', 'roles', 'staff_id'],
      'exactly these members, nothing else (no username)');
    assert.equal(typeof c.staff_id, 'number');
    assert.equal(typeof c.can_take, 'boolean');
    byName[c.display_name.replace(/^Test /, '')] = c;
  }
  return byName;
}

test('staff.colleagues lists whom a chat can go to, and transfer agrees', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-colleagues-'));
  // Pull mode: no automatic offers, so who holds what is up to the test.
  const ini = join(dir, 'colleagues.ini');
  writeFileSync(ini, '[queue]\nrouting = pull\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(20);
    const acct = {};
    acct.ana = await enrolled(srv, 'ana', 'counsellor', ['--capacity', '1', '--languages', 'en,cy']);
    acct.ben = await enrolled(srv, 'ben', 'counsellor', ['--capacity', '2', '--languages', 'en']);
    acct.cat = await enrolled(srv, 'cat', 'counsellor', ['--capacity', '1']);
    acct.dee = await enrolled(srv, 'dee', 'counsellor');
    acct.eve = await enrolled(srv, 'eve', 'counsellor'); // never logs in
    acct.sue = await enrolled(srv, 'sue', 'supervisor');
    acct.adm = await enrolled(srv, 'adm', 'admin');       // admin only: not listed

    const a = await staff(srv, acct.ana);
    const b = await staff(srv, acct.ben);
    const c = await staff(srv, acct.cat);
    const d = await staff(srv, acct.dee);
    const s = await staff(srv, acct.sue);
    const adm = await staff(srv, acct.adm);
    for (const w of [a, b, c]) assert.equal((await w.req({ type: 'shift.start' })).on_shift, true);

    // Two young people; Cat takes one (and is then at capacity 1), Ana the other.
    const y1 = tap(await greeted(srv.port));
    const st1 = await y1.req({ type: 'contact.start' });
    assert.equal((await c.req({ type: 'queue.take' })).conversation, st1.conversation);
    const y2 = tap(await greeted(srv.port));
    const st2 = await y2.req({ type: 'contact.start' });
    assert.equal((await a.req({ type: 'queue.take' })).conversation, st2.conversation);

    // Ana's view: everyone on shift or connected but herself.
    let list = await colleagues(a);
    assert.deepEqual(Object.keys(list).sort(), ['ben', 'cat', 'dee', 'sue'],
      'not the caller, not someone off shift and offline, not an admin-only account');
    assert.deepEqual(list.ben, {
      staff_id: b.staffId, display_name: 'Test ben', roles: ['counsellor'], presence: 'available',
      on_shift: true, chats: 0, capacity: 2, languages: 'en', can_take: true,
    });
    assert.deepEqual([list.cat.on_shift, list.cat.chats, list.cat.capacity, list.cat.can_take], [true, 1, 1, false], 'at capacity');
    assert.deepEqual([list.dee.on_shift, list.dee.chats, list.dee.can_take], [false, 0, false], 'connected, off shift');
    assert.deepEqual([list.sue.roles, list.sue.on_shift, list.sue.can_take], [['supervisor'], false, false]);
    for (const x of Object.values(list)) assert.ok(!JSON.stringify(x).includes('"username"'));

    // The same population as the supervisors' view (plus the caller).
    const view = await s.req({ type: 'queue.stats' });
    const sueList = await colleagues(s);
    assert.deepEqual(view.counsellors.map((x) => x.staff_id).sort(),
      [...Object.values(sueList).map((x) => x.staff_id), s.staffId].sort());
    assert.equal(sueList.ana.languages, 'en,cy');
    assert.equal(sueList.ana.can_take, false, 'Ana is at capacity too');

    // can_take agrees with chat.transfer: refused to Cat and Dee, accepted to Ben.
    for (const to of [list.cat.staff_id, list.dee.staff_id, list.sue.staff_id]) {
      const r = await a.req({ type: 'chat.transfer', conversation: st2.conversation, to });
      assert.deepEqual([r.type, r.code, r.field], ['error', 'bad_state', 'to'], JSON.stringify(r));
    }
    const tr = await a.req({ type: 'chat.transfer', conversation: st2.conversation, to: list.ben.staff_id, note: b64('handover') });
    assert.equal(tr.type, 'chat.transferred', JSON.stringify(tr));
    assert.equal((await b.wait('chat.assigned')).conversation, st2.conversation);

    // Afterwards Ben holds the chat and Ana has room again.
    list = await colleagues(b);
    assert.deepEqual(Object.keys(list).sort(), ['ana', 'cat', 'dee', 'sue']);
    assert.deepEqual([list.ana.chats, list.ana.can_take], [0, true]);
    list = await colleagues(a);
    assert.deepEqual([list.ben.chats, list.ben.can_take], [1, true], 'Ben has room for a second');

    // Sue clocks in with room: she can take; Dee logs out: no longer listed.
    assert.equal((await s.req({ type: 'shift.start' })).on_shift, true);
    d.close();
    await waitFor(async () => {
      const l = await colleagues(a);
      return !l.dee && l.sue?.can_take === true;
    });
    // Any member of staff may ask, admins included.
    list = await colleagues(adm);
    assert.deepEqual(Object.keys(list).sort(), ['ana', 'ben', 'cat', 'sue']);

    // The client library: colleagues() resolves with the staff array.
    const client = new StaffClient({ url: `ws://127.0.0.1:${srv.port}/ws`, WebSocket, wsOptions: { origin: origin(srv) } });
    await client.resume(a.token);
    const viaClient = await client.colleagues();
    assert.ok(Array.isArray(viaClient));
    assert.deepEqual(viaClient.map((x) => x.display_name).sort(), ['Test ben', 'Test cat', 'Test sue']);
    assert.equal(viaClient.find((x) => x.display_name === 'Test ben').can_take, true);
    client.close();

    // No fields: an unknown one is refused.
    const extra = await a.req({ type: 'staff.colleagues', staff_id: 1 });
    assert.deepEqual([extra.code, extra.field], ['unknown_field', 'staff_id']);
    for (const w of [a, b, c, s, adm, y1, y2]) w.close();
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
});

test('staff.colleagues: auth_required before login; forbidden and 1008 on a contact socket', async () => {
  const srv = await startServer();
  try {
    const anon = tap(await staffSocket(srv));
    const r = await anon.req({ type: 'staff.colleagues' });
    assert.deepEqual([r.type, r.code], ['error', 'auth_required']);
    // Still open afterwards.
    assert.equal((await anon.req({ type: 'ping' })).type, 'pong');
    anon.close();

    const y = tap(await greeted(srv.port));
    const f = await y.req({ type: 'staff.colleagues' });
    assert.deepEqual([f.type, f.code, f.field], ['error', 'forbidden', 'type']);
    const closed = await y.closed;
    assert.equal(closed.code, 1008);
  } finally {
    const r = await srv.stop();
    srv.cleanup();
    assert.equal(r.code, 0, r.stderr);
  }
});
