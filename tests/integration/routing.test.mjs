// routing.test.mjs: the whole journey of a chat with automatic offers:
// intake -> queue positions -> offer -> accept -> chat both ways -> drops and
// resumes on both sides (nothing lost, nothing twice) -> transfer with a
// handover note -> end -> wrap-up; offer timeout -> re-offer + alert +
// away; shifts and handover; a supervisor as a silent third party; the
// young person never receives an internal event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, greeted, nextId, httpGet } from './harness.mjs';
import { enrolled, login, awaitStepMargin, totp, stepNow } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const text = (ev) => Buffer.from(ev.payload, 'base64url').toString();

// Collects every frame a socket receives, so a test can wait for a type and
// later check everything the socket ever got.
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
  ws.seen = 0;
  // Resolves the first frame after the ones already consumed that matches.
  ws.wait = (pred, ms = 8000) => {
    if (typeof pred === 'string') { const t = pred; pred = (m) => m.type === t; }
    for (let i = ws.seen; i < all.length; i++) if (pred(all[i])) { ws.seen = i + 1; return Promise.resolve(all[i]); }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(timer); ws.seen = all.indexOf(m) + 1; resolve(m); } };
      const timer = setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`no ${pred} within ${ms} ms`)); }, ms);
      waiters.push(w);
    });
  };
  ws.req = (obj, ms = 8000) => { const id = obj.id ?? nextId(); ws.send(JSON.stringify({ ...obj, id })); return ws.wait((m) => m.id === id, ms); };
  return ws;
}

async function staff(srv, acct) {
  const { ws, reply } = await login(srv, acct);
  assert.equal(reply.type, 'auth.ok', JSON.stringify(reply));
  tap(ws);
  ws.token = reply.token;
  ws.staffId = reply.staff.id;
  return ws;
}

async function contact(port) { return tap(await greeted(port)); }

function sql(dir, q) {
  return execFileSync('sqlite3', [join(dir, 'helpline.db'), q], { encoding: 'utf8' }).trim();
}

function config(dir, text) {
  const p = join(dir, 'routing.ini');
  writeFileSync(p, text);
  return ['--config', p];
}

test('intake, offer, accept, chat, drops on both sides, transfer, end, wrap-up', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-routing-'));
  const srv = await startServer({ dir });
  try {
    await awaitStepMargin(20);
    const [ana, ben, sue] = [
      await enrolled(srv, 'ana', 'counsellor', ['--capacity', '1', '--languages', 'en']),
      await enrolled(srv, 'ben', 'counsellor', ['--capacity', '2', '--languages', 'en']),
      await enrolled(srv, 'sue', 'supervisor', ['--capacity', '1']),
    ];
    await awaitStepMargin(10);
    const a = await staff(srv, ana);
    const b = await staff(srv, ben);
    const s = await staff(srv, sue);

    // Two young people wait; nobody is on shift, so nobody is offered them.
    const y = await contact(srv.port);
    const started = await y.req({ type: 'contact.start', topics: 'sextortion', flags: 'money_demanded', age_band: '13_15', language: 'en' });
    assert.equal(started.type, 'contact.started');
    assert.equal(started.position, 1);
    const y2 = await contact(srv.port);
    const started2 = await y2.req({ type: 'contact.start', topics: 'cyberbullying' });
    assert.equal(started2.position, 2);
    const conv = started.conversation;

    // Clocking in makes a counsellor available: the higher-risk chat is
    // offered to exactly one of them, the other chat to the other.
    const shiftA = await a.req({ type: 'shift.start' });
    assert.deepEqual([shiftA.type, shiftA.on_shift, shiftA.presence], ['shift', true, 'available']);
    const offerA = await a.wait('queue.offer');
    assert.equal(offerA.conversation, conv);
    assert.equal(offerA.risk, 2);
    assert.equal(offerA.topics, 'sextortion');
    assert.equal(offerA.age_band, '13_15');
    assert.ok(offerA.expires_at > Date.now());
    // Queue list: both still waiting, the first marked offered.
    const list = await a.req({ type: 'queue.list' });
    assert.deepEqual(list.entries.map((e) => [e.conversation, e.offered]), [[conv, true], [started2.conversation, false]]);

    // Accept; accepting twice is refused; a stranger cannot accept.
    const taken = await a.req({ type: 'offer.accept', conversation: conv });
    assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
    assert.equal(taken.conversation, conv);
    const twice = await a.req({ type: 'offer.accept', conversation: conv });
    assert.equal(twice.code, 'bad_state');
    const stranger = await b.req({ type: 'offer.accept', conversation: conv });
    assert.equal(stranger.code, 'expired');
    const joined = await y.wait('chat.event');
    assert.equal(text(joined), 'joined');
    // The second person moves up: position pushed.
    assert.equal((await y2.wait('queue.position')).position, 1);

    // Chat both ways.
    const m1 = await y.req({ type: 'chat.send', id: 'y-1', payload: b64('they want 500 pounds') });
    assert.equal(m1.type, 'chat.ack');
    assert.equal(text(await a.wait((m) => m.type === 'chat.event' && m.seq === m1.seq)), 'they want 500 pounds');
    const m2 = await a.req({ type: 'chat.send', id: 'a-1', conversation: conv, payload: b64("Don't pay. You're not to blame.") });
    assert.equal((await y.wait((m) => m.type === 'chat.event' && m.seq === m2.seq)).from, 'counsellor');

    // Internal events: a note and tags never reach the young person.
    const note = await a.req({ type: 'chat.note', conversation: conv, payload: b64('asked about deadline') });
    assert.equal(note.type, 'chat.ack');
    const tagged = await a.req({ type: 'chat.tag', conversation: conv, tags: 'sextortion,self_generated_image' });
    assert.equal(tagged.type, 'chat.ack');
    const badTag = await a.req({ type: 'chat.tag', conversation: conv, tags: 'not_a_tag' });
    assert.equal(badTag.code, 'bad_field');

    // The young person's network drops; the counsellor writes meanwhile.
    y.terminate();
    const m3 = await a.req({ type: 'chat.send', id: 'a-2', conversation: conv, payload: b64('are you still there?') });
    const yr = await contact(srv.port);
    const resumed = await yr.req({ type: 'contact.resume', resume: started.resume, last_seq: m2.seq });
    assert.deepEqual([resumed.type, resumed.state], ['contact.resumed', 'active']);
    const synced = await yr.req({ type: 'chat.sync', last_seq: m2.seq });
    const missed = yr.all.filter((m) => m.type === 'chat.event');
    assert.deepEqual(missed.map((m) => m.seq), [m3.seq], 'exactly the missed message, no internal events');
    assert.equal(synced.count, 1);
    // The counsellor's network drops; the young person writes meanwhile.
    a.terminate();
    const m4 = await yr.req({ type: 'chat.send', id: 'y-2', payload: b64('yes, sorry') });
    // A retry of an acked id is re-acked, not stored again.
    const m4again = await yr.req({ type: 'chat.send', id: 'y-2', payload: b64('yes, sorry') });
    assert.deepEqual([m4again.seq, m4again.duplicate], [m4.seq, true]);
    const a2 = tap(await greeted(srv.port, 'helpline.staff.v1', { origin: `http://127.0.0.1:${srv.port}` }));
    assert.equal((await a2.req({ type: 'auth.resume', token: a.token })).type, 'auth.ok');
    const asynced = await a2.req({ type: 'chat.sync', conversation: conv, last_seq: m3.seq });
    assert.equal(asynced.count, 1);
    assert.deepEqual(a2.all.filter((m) => m.type === 'chat.event').map((m) => [m.seq, text(m)]), [[m4.seq, 'yes, sorry']]);

    // Receipts are stored: the counsellor read up to m4; the young person's
    // sync reports it.
    a2.send(JSON.stringify({ type: 'chat.read', id: nextId(), conversation: conv, seq: m4.seq }));
    const rcpt = await yr.wait('chat.receipt');
    assert.deepEqual([rcpt.kind, rcpt.seq, rcpt.from], ['read', m4.seq, 'counsellor']);
    const s2 = await yr.req({ type: 'chat.sync', last_seq: m4.seq });
    assert.equal(s2.read, m4.seq);

    // A supervisor joins silently: the counsellor sees it, the young person
    // never does; the supervisor then receives the chat live.
    // Only after an escalation, claimed by this supervisor, with a fresh
    // TOTP code (escalation.test.mjs covers the rest).
    assert.equal((await s.req({ type: 'chat.join', conversation: conv })).code, 'forbidden');
    const raised = await a2.req({ type: 'escalation.raise', conversation: conv, reason: 'sextortion_threat', urgency: 'urgent' });
    assert.equal(raised.type, 'escalation.raised', JSON.stringify(raised));
    assert.equal((await s.req({ type: 'escalation.claim', escalation: raised.escalation.escalation })).type, 'escalation.claimed');
    assert.equal((await s.req({ type: 'chat.join', conversation: conv })).code, 'reauth_required');
    const re = await s.req({ type: 'auth.reauth', totp: totp(sue.secret, stepNow() + 1) });
    assert.equal(re.type, 'auth.reauth_ok', JSON.stringify(re));
    const sj = await s.req({ type: 'chat.join', conversation: conv });
    assert.equal(sj.type, 'chat.joined', JSON.stringify(sj));
    assert.equal((await a2.wait((m) => m.type === 'chat.event' && m.kind === 'supervisor_joined')).from, `staff:${s.staffId}`);
    const m5 = await yr.req({ type: 'chat.send', id: 'y-3', payload: b64('thank you') });
    assert.equal(text(await s.wait((m) => m.type === 'chat.event' && m.seq === m5.seq)), 'thank you');
    assert.equal(text(await a2.wait((m) => m.type === 'chat.event' && m.seq === m5.seq)), 'thank you');

    // Ana's shift ends: she must hand over first.
    const end1 = await a2.req({ type: 'shift.end' });
    assert.equal(end1.code, 'handover_required');
    assert.deepEqual(end1.conversations, [conv]);
    // Transfer to a counsellor who is not on shift is refused.
    const benId = b.staffId;
    const notOn = await a2.req({ type: 'chat.transfer', conversation: conv, to: benId, note: b64('x') });
    assert.equal(notOn.code, 'bad_state');
    // Ben clocks in (and gets the other young person offered); transfer
    // with a handover note (announced: the default).
    assert.equal((await b.req({ type: 'shift.start' })).on_shift, true);
    const offerB = await b.wait('queue.offer');
    assert.equal(offerB.conversation, started2.conversation);
    const tr = await a2.req({ type: 'chat.transfer', conversation: conv, to: benId, note: b64('13-15, sextortion, has not paid; deadline tonight') });
    assert.equal(tr.type, 'chat.transferred', JSON.stringify(tr));
    const assigned = await b.wait('chat.assigned');
    assert.deepEqual([assigned.conversation, assigned.reason, assigned.topics], [conv, 'transfer', 'sextortion']);
    const handover = await b.wait((m) => m.type === 'chat.event' && m.kind === 'transfer');
    assert.equal(text(handover), '13-15, sextortion, has not paid; deadline tonight');
    const announced = await yr.wait((m) => m.type === 'chat.event' && m.kind === 'system' && text(m) === 'transferred');
    assert.equal(announced.from, 'system');
    // Ana is no longer a party; Ben is. Ana can clock out now.
    const gone = await a2.req({ type: 'chat.send', id: 'a-3', conversation: conv, payload: b64('x') });
    assert.equal(gone.code, 'forbidden');
    assert.equal((await a2.req({ type: 'shift.end' })).on_shift, false);
    // Ben reads the history and talks.
    await b.req({ type: 'chat.sync', conversation: conv, last_seq: 0 });
    const history = b.all.filter((m) => m.type === 'chat.event' && m.conversation === conv);
    assert.ok(history.some((m) => m.kind === 'note'), 'staff see notes in history');
    const m6 = await b.req({ type: 'chat.send', id: 'b-1', conversation: conv, payload: b64("Hi, I'm taking over from Ana.") });
    assert.equal((await yr.wait((m) => m.type === 'chat.event' && m.seq === m6.seq)).from, 'counsellor');

    // End; ending twice is refused; wrap-up (outcome, tags, encrypted notes).
    const early = await b.req({ type: 'chat.wrapup', conversation: conv, outcome: 'safety_plan' });
    assert.equal(early.code, 'bad_state');
    const ended = await b.req({ type: 'chat.end', conversation: conv });
    assert.equal(ended.type, 'chat.ended');
    assert.equal(text(await yr.wait((m) => m.type === 'chat.event' && m.seq === ended.seq)), 'ended_by_counsellor');
    const again = await b.req({ type: 'chat.end', conversation: conv });
    assert.equal(again.code, 'forbidden'); // no longer a live conversation of theirs
    const badOutcome = await b.req({ type: 'chat.wrapup', conversation: conv, outcome: 'nonsense' });
    assert.equal(badOutcome.code, 'bad_field');
    const notHers = await a2.req({ type: 'chat.wrapup', conversation: conv, outcome: 'safety_plan' });
    assert.equal(notHers.code, 'forbidden');
    const wrapped = await b.req({ type: 'chat.wrapup', conversation: conv, outcome: 'report_remove', tags: 'sextortion,image_shared', notes: b64('sealed notes') });
    assert.deepEqual([wrapped.type, wrapped.outcome], ['chat.wrapped', 'report_remove']);
    const wrapTwice = await b.req({ type: 'chat.wrapup', conversation: conv, outcome: 'report_remove' });
    assert.equal(wrapTwice.code, 'conflict');

    // The young person never received an internal event or a staff id.
    const ys = [...y.all, ...yr.all];
    for (const m of ys) {
      assert.ok(!(m.type === 'chat.event' && ['note', 'tag', 'transfer', 'supervisor_joined', 'wrapup'].includes(m.kind)), JSON.stringify(m));
      assert.ok(!String(m.from ?? '').startsWith('staff:'), JSON.stringify(m));
    }
    // Stored: state, outcome, tags, counts; the handover note is an internal event.
    assert.equal(sql(dir, `SELECT state || '|' || outcome || '|' || tags || '|' || transfers || '|' || (accepted_at IS NOT NULL) FROM conversation WHERE id=${conv}`),
      'wrapped|report_remove|sextortion,image_shared|1|1');
    assert.equal(sql(dir, `SELECT group_concat(kind || ':' || visibility, ' ') FROM (SELECT kind, visibility FROM event WHERE conversation_id=${conv} AND kind IN ('note','tag','transfer','supervisor_joined','wrapup') ORDER BY seq)`),
      'note:staff tag:staff supervisor_joined:staff transfer:staff wrapup:staff');
    // Joining and transferring are audited (no content); the chain verifies.
    assert.equal(sql(dir, "SELECT group_concat(action, ' ') FROM (SELECT action FROM audit WHERE action LIKE 'chat.%' ORDER BY seq)"), 'chat.join chat.transfer');
    for (const w of [yr, y2, a2, b, s]) w.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('an unanswered offer goes to the next counsellor; the first is set away and supervisors are alerted', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-routing-'));
  const srv = await startServer({ dir, args: config(dir, '[queue]\noffer_timeout = 5\n') });
  try {
    await awaitStepMargin(20);
    const [cat, dev, sam] = [
      await enrolled(srv, 'cat', 'counsellor', ['--skills', 'sextortion']),
      await enrolled(srv, 'dev', 'counsellor'),
      await enrolled(srv, 'sam', 'supervisor', ['--capacity', '0']),
    ];
    await awaitStepMargin(10);
    const c = await staff(srv, cat);
    const d = await staff(srv, dev);
    const s = await staff(srv, sam);
    const view = await s.req({ type: 'queue.watch', on: 1 });
    assert.equal(view.type, 'queue.view');
    await c.req({ type: 'shift.start' });
    await d.req({ type: 'shift.start' });
    // The supervisor sees both on shift.
    const onShift = await s.wait((m) => m.type === 'queue.view' && m.counsellors.filter((x) => x.on_shift).length === 2);
    assert.equal(onShift.waiting, 0);

    const y = await contact(srv.port);
    const st = await y.req({ type: 'contact.start', topics: 'sextortion' });
    // Skills first: Cat (sextortion skill) gets the offer, not Dev.
    const o1 = await c.wait('queue.offer');
    assert.equal(o1.conversation, st.conversation);
    // Nobody answers for 5 s: withdrawn from Cat, Cat set away, an alert,
    // and the offer goes to Dev.
    const expired = await c.wait('offer.expired', 9000);
    assert.equal(expired.conversation, st.conversation);
    assert.ok(c.all.some((m) => m.type === 'presence' && m.status === 'away' && !m.id), 'Cat was set away');
    const alert = await s.wait('alert', 9000);
    assert.deepEqual([alert.kind, alert.conversation], ['offer_timeout', st.conversation]);
    const o2 = await d.wait('queue.offer', 9000);
    assert.equal(o2.conversation, st.conversation);
    // Too late for Cat.
    assert.equal((await c.req({ type: 'offer.accept', conversation: st.conversation })).code, 'expired');
    // Dev declines: it is not offered back to Dev; nobody else is available,
    // so it waits; Cat comes back and is offered it again.
    assert.equal((await d.req({ type: 'offer.decline', conversation: st.conversation })).type, 'offer.declined');
    await c.req({ type: 'presence.set', status: 'available' });
    const o3 = await c.wait('queue.offer', 9000);
    assert.equal(o3.conversation, st.conversation);
    assert.equal((await c.req({ type: 'offer.accept', conversation: st.conversation })).type, 'queue.taken');
    // The view shows the alert and the chat.
    const v = await s.wait((m) => m.type === 'queue.view' && m.active === 1);
    assert.ok(v.alerts.some((x) => x.kind === 'offer_timeout'));
    assert.equal(v.counsellors.find((x) => x.display_name === 'Test cat').chats, 1);
    // Stored alert row; counted in /metrics.
    assert.equal(sql(dir, "SELECT count(*) FROM alert WHERE kind='offer_timeout'"), '1');
    const metrics = (await httpGet(srv.port, '/metrics')).body;
    assert.match(metrics, /^helpline_offers_expired_total 1$/m);
    assert.match(metrics, /^helpline_offers_total [3-9]$/m);
    assert.match(metrics, /^helpline_chats_taken_total 1$/m);
    assert.match(metrics, /^helpline_alerts_total 1$/m);
    // Pull-only operations are allowed in the default mode "both"; a
    // counsellor cannot take when nobody waits.
    assert.equal((await d.req({ type: 'queue.take' })).code, 'not_found');
    for (const w of [y, c, d, s]) w.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('pull mode: no offers; counsellors pick from the list; risk order holds', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-routing-'));
  const srv = await startServer({ dir, args: config(dir, '[queue]\nrouting = pull\n[chat]\ntransfer_announce = no\n') });
  try {
    await awaitStepMargin(15);
    const eve = await enrolled(srv, 'eve', 'counsellor', ['--capacity', '3']);
    await awaitStepMargin(10);
    const e = await staff(srv, eve);
    await e.req({ type: 'shift.start' });
    const low = await contact(srv.port);
    const l = await low.req({ type: 'contact.start', topics: 'hacking' });
    const high = await contact(srv.port);
    const h = await high.req({ type: 'contact.start', flags: 'danger_now' });
    assert.equal(h.position, 1, 'immediate risk goes first');
    assert.equal((await low.wait('queue.position')).position, 2);
    const list = await e.req({ type: 'queue.list' });
    assert.deepEqual(list.entries.map((x) => x.conversation), [h.conversation, l.conversation]);
    // No offers in pull mode.
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(!e.all.some((m) => m.type === 'queue.offer'));
    // Pick the second one; picking it again is refused.
    const picked = await e.req({ type: 'queue.pick', conversation: l.conversation });
    assert.equal(picked.type, 'queue.taken');
    assert.equal((await e.req({ type: 'queue.pick', conversation: l.conversation })).code, 'not_found');
    assert.equal((await e.req({ type: 'queue.pick', conversation: '999999' })).code, 'not_found');
    assert.equal((await e.req({ type: 'offer.accept', conversation: h.conversation })).code, 'expired');
    // Take next: the immediate one.
    assert.equal((await e.req({ type: 'queue.take' })).conversation, h.conversation);
    // A sync from the future is refused.
    const fut = await e.req({ type: 'chat.sync', conversation: h.conversation, last_seq: 1000 });
    assert.deepEqual([fut.code, fut.field], ['bad_field', 'last_seq']);
    // Silent transfer (chat.transfer_announce = no): the young person is not told.
    const fay = await enrolled(srv, 'fay', 'counsellor');
    const f = await staff(srv, fay);
    await f.req({ type: 'shift.start' });
    const tr = await e.req({ type: 'chat.transfer', conversation: h.conversation, to: f.staffId });
    assert.equal(tr.type, 'chat.transferred', JSON.stringify(tr));
    assert.equal((await f.wait('chat.assigned')).conversation, h.conversation);
    const after = await f.req({ type: 'chat.send', id: 'f-1', conversation: h.conversation, payload: b64('hello, I am here') });
    const seen = await high.wait((m) => m.type === 'chat.event' && m.seq === after.seq);
    assert.equal(seen.from, 'counsellor');
    assert.ok(!high.all.some((m) => m.type === 'chat.event' && m.kind === 'system' && text(m) === 'transferred'));
    for (const w of [low, high, e, f]) w.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

test('kill -9 while a chat is offered: after the restart it is offered again; shifts survive', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-routing-'));
  let srv = await startServer({ dir });
  try {
    await awaitStepMargin(15);
    const gus = await enrolled(srv, 'gus', 'counsellor');
    await awaitStepMargin(10);
    let g = await staff(srv, gus);
    const token = g.token;
    await g.req({ type: 'shift.start' });
    const y = await contact(srv.port);
    const st = await y.req({ type: 'contact.start', topics: 'grooming' });
    assert.equal((await g.wait('queue.offer')).conversation, st.conversation);
    assert.equal(sql(dir, `SELECT state FROM conversation WHERE id=${st.conversation}`), 'offered');
    srv.proc.kill('SIGKILL');
    await srv.exited;
    srv = await startServer({ dir });
    // Stored back as queued at start-up.
    for (let i = 0; i < 50 && sql(dir, `SELECT state FROM conversation WHERE id=${st.conversation}`) !== 'queued'; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal(sql(dir, `SELECT state FROM conversation WHERE id=${st.conversation}`), 'queued');
    g = tap(await greeted(srv.port, 'helpline.staff.v1', { origin: `http://127.0.0.1:${srv.port}` }));
    assert.equal((await g.req({ type: 'auth.resume', token })).type, 'auth.ok');
    const v = await g.req({ type: 'queue.list' });
    assert.deepEqual(v.entries.map((e) => e.conversation), [st.conversation]);
    // Still on shift; available again -> offered again -> accepted.
    const p = await g.req({ type: 'presence.set', status: 'available' });
    assert.equal(p.status, 'available');
    const again = await g.wait('queue.offer').catch((e) => { throw new Error(e.message + JSON.stringify(g.all) + srv.stderr.slice(-3000)); });
    assert.equal(again.conversation, st.conversation);
    assert.equal((await g.req({ type: 'offer.accept', conversation: st.conversation })).type, 'queue.taken');
    const y2 = await contact(srv.port);
    const r = await y2.req({ type: 'contact.resume', resume: st.resume, last_seq: 0 });
    assert.equal(r.state, 'active');
    for (const w of [g, y2]) w.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
