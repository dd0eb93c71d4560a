// Escalations against the real daemon: raise, live pushes and re-alerts,
// claim, reading by the claimer with a fresh TOTP code, the decision, and
// every refusal the protocol names (docs/protocol.md §5.13), with the audit
// chain showing each step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, greeted, nextId, request } from './harness.mjs';
import { enrolled, login, awaitStepMargin, totp, stepNow } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');

// Every frame a socket receives, waited for by predicate (as in routing.test.mjs).
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
    const had = all.find(pred);
    if (had) { all.splice(all.indexOf(had), 1); return Promise.resolve(had); }
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (m) => { clearTimeout(timer); all.splice(all.indexOf(m), 1); resolve(m); } };
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
  ws.staffId = reply.staff.id;
  return ws;
}

const sql = (dir, q) => execFileSync('sqlite3', [join(dir, 'helpline.db'), q], { encoding: 'utf8' }).trim();

test('raise, re-alert, claim, read with a fresh code, decide; every refusal answered and audited', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-escalation-'));
  const ini = join(dir, 'esc.ini');
  writeFileSync(ini, '[escalation]\nrealert = 5\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(20);
    const [ana, ben, sue, sam] = [
      await enrolled(srv, 'ana', 'counsellor'),
      await enrolled(srv, 'ben', 'counsellor'),
      await enrolled(srv, 'sue', 'supervisor'),
      await enrolled(srv, 'sam', 'supervisor'),
    ];
    await awaitStepMargin(10);
    const [a, b, s, m] = [await staff(srv, ana), await staff(srv, ben), await staff(srv, sue), await staff(srv, sam)];

    const y = tap(await greeted(srv.port));
    const started = await y.req({ type: 'contact.start', topics: 'sextortion', age_band: '13_15' });
    const conv = started.conversation;
    // Not yet taken: nobody holds it.
    assert.equal((await a.req({ type: 'escalation.raise', conversation: conv, reason: 'life_at_risk', urgency: 'urgent' })).code, 'forbidden');
    await a.req({ type: 'shift.start' });
    await a.wait('queue.offer');
    assert.equal((await a.req({ type: 'offer.accept', conversation: conv })).type, 'queue.taken');
    await y.req({ type: 'chat.send', id: 'y1', payload: b64('he says he will post it tonight') });

    // Bad input: specific errors, nothing stored.
    assert.equal((await a.req({ type: 'escalation.raise', conversation: conv, reason: 'bored', urgency: 'urgent' })).field, 'reason');
    assert.equal((await a.req({ type: 'escalation.raise', conversation: conv, reason: 'life_at_risk', urgency: 'soon' })).field, 'urgency');
    assert.equal((await a.req({ type: 'escalation.raise', conversation: conv, reason: 'life_at_risk', urgency: 'urgent', note: 'not base64!' })).code, 'bad_field');
    assert.equal((await b.req({ type: 'escalation.raise', conversation: conv, reason: 'life_at_risk', urgency: 'urgent' })).code, 'forbidden');
    assert.equal(sql(dir, 'SELECT count(*) FROM escalation'), '0');

    const raised = await a.req({ type: 'escalation.raise', conversation: conv, reason: 'sextortion_threat', urgency: 'immediate', note: b64('sealed-note-bytes') });
    assert.equal(raised.type, 'escalation.raised', JSON.stringify(raised));
    const e = raised.escalation;
    assert.deepEqual([e.conversation, e.reason, e.urgency, e.state, e.raised_by, e.raised_by_name, e.topics, e.age_band, e.claimed_by, e.note],
      [conv, 'sextortion_threat', 'immediate', 'open', a.staffId, 'Test ana', 'sextortion', '13_15', null, b64('sealed-note-bytes')]);
    // Supervisors hear it at once (none on shift: every logged-in one is alerted).
    for (const sv of [s, m]) {
      const p = await sv.wait((x) => x.type === 'escalation' && x.why === 'raised');
      assert.equal(p.alert, true);
      assert.equal(p.escalation.escalation, e.escalation);
    }
    assert.equal((await a.wait((x) => x.type === 'escalation')).alert, false);
    assert.equal((await b.req({ type: 'escalation.list' })).escalations.length, 0, 'a counsellor sees only their own');
    assert.equal((await s.req({ type: 'escalation.list' })).escalations[0].escalation, e.escalation);
    assert.equal((await a.req({ type: 'escalation.raise', conversation: conv, reason: 'life_at_risk', urgency: 'urgent' })).code, 'conflict');

    // Unclaimed and immediate: re-alerted after escalation.realert seconds.
    const again = await s.wait((x) => x.type === 'escalation' && x.why === 'waiting', 12000);
    assert.equal(again.alert, true);

    // Claim: supervisors only, one claimer.
    assert.equal((await b.req({ type: 'escalation.claim', escalation: e.escalation })).code, 'forbidden');
    assert.equal((await s.req({ type: 'escalation.claim', escalation: 999999 })).code, 'not_found');
    const claimed = await s.req({ type: 'escalation.claim', escalation: e.escalation });
    assert.deepEqual([claimed.type, claimed.escalation.state, claimed.escalation.claimed_by_name], ['escalation.claimed', 'claimed', 'Test sue']);
    assert.equal((await a.wait((x) => x.type === 'escalation' && x.why === 'claimed')).escalation.claimed_by, s.staffId);
    assert.equal((await m.req({ type: 'escalation.claim', escalation: e.escalation })).code, 'conflict');
    assert.equal((await s.req({ type: 'escalation.claim', escalation: e.escalation })).type, 'escalation.claimed', 'idempotent for the claimer');

    // Reading: not without the claim, not without a fresh code.
    assert.equal((await m.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).code, 'forbidden');
    assert.equal((await m.req({ type: 'key.wraps', conversation: conv })).code, 'forbidden');
    assert.equal((await b.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).code, 'forbidden');
    assert.equal((await s.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).code, 'reauth_required');
    assert.equal((await s.req({ type: 'key.wraps', conversation: conv })).code, 'reauth_required');
    assert.equal((await s.req({ type: 'chat.join', conversation: conv })).code, 'reauth_required');
    assert.equal((await m.req({ type: 'chat.join', conversation: conv })).code, 'forbidden');
    assert.equal((await s.req({ type: 'auth.reauth', totp: totp(sue.secret, stepNow() + 1) })).type, 'auth.reauth_ok');
    const synced = await s.req({ type: 'chat.sync', conversation: conv, last_seq: 0 });
    assert.equal(synced.type, 'chat.synced', JSON.stringify(synced));
    assert.ok(synced.count >= 1);
    assert.equal((await s.req({ type: 'key.wraps', conversation: conv })).type, 'key.wraps');
    const joined = await s.req({ type: 'chat.join', conversation: conv });
    assert.equal(joined.type, 'chat.joined', JSON.stringify(joined));

    // Wraps for the escalation: only from the counsellor, only to the claimer.
    const wrap = { sealed: b64('x'.repeat(60)), sig: b64('s'.repeat(64)), to_device: 1, from_device: 1 };
    assert.equal((await b.req({ type: 'key.wrap', conversation: conv, escalation: e.escalation, ...wrap })).code, 'forbidden');
    assert.equal((await a.req({ type: 'key.wrap', conversation: conv, escalation: e.escalation + 1, ...wrap })).code, 'not_found');

    // The chat ends; its counsellor can still read it while undecided.
    await a.req({ type: 'chat.end', conversation: conv });
    assert.equal((await a.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).type, 'chat.synced');
    assert.equal((await s.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).type, 'chat.synced', 'the claimer reads an ended chat');

    // Decision: the claimer only, once.
    assert.equal((await m.req({ type: 'escalation.decide', escalation: e.escalation, decision: 'police_referral' })).code, 'forbidden');
    assert.equal((await s.req({ type: 'escalation.decide', escalation: e.escalation, decision: 'arrest' })).field, 'decision');
    const decided = await s.req({ type: 'escalation.decide', escalation: e.escalation, decision: 'police_referral', reasons: b64('sealed-reasons') });
    assert.deepEqual([decided.type, decided.escalation.state, decided.escalation.decision], ['escalation.decided', 'decided', 'police_referral']);
    assert.equal((await s.req({ type: 'escalation.decide', escalation: e.escalation, decision: 'no_further_action' })).code, 'conflict');
    assert.equal((await s.req({ type: 'escalation.claim', escalation: e.escalation })).code, 'bad_state');
    // Decided: the counsellor's access by escalation ends; the claimer's stays.
    assert.equal((await a.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).code, 'forbidden');
    assert.equal((await s.req({ type: 'chat.sync', conversation: conv, last_seq: 0 })).type, 'chat.synced');

    // The server holds ciphertext only, and the audit chain shows each step.
    assert.equal(sql(dir, "SELECT count(*) FROM escalation WHERE CAST(note AS TEXT) = 'sealed-note-bytes' AND decision = 'police_referral'"), '1');
    const actions = sql(dir, "SELECT action FROM audit WHERE action LIKE 'escalation.%' ORDER BY seq").split('\n');
    for (const want of ['escalation.raise', 'escalation.claim', 'escalation.read', 'escalation.keys', 'escalation.refused', 'escalation.decide'])
      assert.ok(actions.includes(want), `${want} in ${actions}`);
    assert.ok(actions.filter((x) => x === 'escalation.refused').length >= 8, actions.join(','));
    execFileSync(join(process.env.HELPLINED, '..', 'helplinectl'), ['--db', join(dir, 'helpline.db'), 'audit', 'verify'], { stdio: 'ignore' });
  } finally {
    await srv.stop();
  }
});

// The list comes in pages of at most a quarter of ws.outq_max: notes and
// reasons are up to 64 KiB each, and 200 of them in one reply would close
// the supervisor's socket "too slow" every time they looked.
test('a long escalation list (and the revocations) come in pages that fit the reader\'s queue', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-escalation-pages-'));
  const ini = join(dir, 'pages.ini');
  writeFileSync(ini, '[ws]\noutq_max = 128k\nmax_message = 32k\n'); // pages of 32 KiB
  let srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(20);
    const [cy, vi] = [await enrolled(srv, 'cyd', 'counsellor'), await enrolled(srv, 'vik', 'supervisor')];
    await awaitStepMargin(10);
    const a = await staff(srv, cy);
    const y = tap(await greeted(srv.port));
    const conv = (await y.req({ type: 'contact.start', topics: 'sextortion' })).conversation;
    await a.req({ type: 'shift.start' });
    await a.wait('queue.offer');
    assert.equal((await a.req({ type: 'offer.accept', conversation: conv })).type, 'queue.taken');
    const raised = await a.req({ type: 'escalation.raise', conversation: conv, reason: 'sextortion_threat', urgency: 'routine', note: b64('first') });
    assert.equal(raised.type, 'escalation.raised');
    a.close(); y.close();
    await srv.stop();
    // 30 decided ones before it, each with a 30 kB note and 30 kB of
    // reasons (~80 kB as sent): ~2.4 MB in all.
    const sv = sql(dir, "SELECT id FROM staff WHERE username = 'vik'");
    const now = Date.now();
    sql(dir, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 30)
      INSERT INTO escalation (id, conversation_id, reason, urgency, state, raised_by, raised_at, note, claimed_by, claimed_at, decision, reasons, decided_at)
      SELECT 1000 + i, conversation_id, reason, urgency, 'decided', raised_by, ${now}, randomblob(30000), ${sv}, ${now}, 'no_further_action', randomblob(30000), ${now} FROM escalation, n`);
    // And 120 revocations (the server only stores and hands them out;
    // clients check their signatures).
    sql(dir, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
      INSERT INTO revocation (cert_hash, statement, signer, created_at) SELECT randomblob(32), randomblob(122), randomblob(200), i FROM n`);
    const statements = sql(dir, 'SELECT hex(statement) FROM revocation ORDER BY created_at, cert_hash').split('\n');
    // And a long conversation's evidence material: 300 signed checkpoints
    // and 150 audit entries of its escalations (~170 kB as sent).
    sql(dir, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
      INSERT INTO checkpoint (conversation_id, seq, at, head, signature) SELECT ${conv}, i, ${now} + i, randomblob(32), randomblob(64) FROM n`);
    sql(dir, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)
      INSERT INTO audit (seq, at, actor, action, target, detail, prev_hash, entry_hash)
      SELECT (SELECT max(seq) FROM audit) + i, ${now}, ${sv}, 'escalation.read', NULL, '{"conversation":${conv},"n":' || i || '}', randomblob(32), randomblob(32) FROM n`);
    const storedCheckpoints = sql(dir, `SELECT seq FROM checkpoint WHERE conversation_id = ${conv} ORDER BY seq`).split('\n').map(Number);
    const storedAudit = sql(dir, `SELECT seq FROM audit WHERE action LIKE 'escalation.%' AND json_extract(detail, '$.conversation') = ${conv} ORDER BY seq`).split('\n').map(Number);
    srv = await startServer({ dir, args: ['--config', ini] });
    const s = await staff(srv, vi);
    const seen = [];
    let pages = 0;
    for (let before; ;) {
      const l = await s.req({ type: 'escalation.list', ...(before ? { before } : {}) });
      assert.equal(l.type, 'escalation.list', JSON.stringify(l).slice(0, 300));
      const bytes = JSON.stringify(l).length;
      assert.ok(l.escalations.length === 1 || bytes <= 32768 + 4096, `a page of ${bytes} bytes`);
      seen.push(...l.escalations.map((e) => e.escalation));
      pages++;
      if (!l.more) { assert.equal(l.next, undefined); break; }
      assert.equal(l.next, l.escalations.at(-1).escalation);
      before = l.next;
    }
    // Newest first (the ids above 1000, then the raised one), each once.
    assert.deepEqual(seen, [...Array.from({ length: 30 }, (_, i) => 1030 - i), raised.escalation.escalation]);
    assert.ok(pages >= 10, `${pages} pages`);
    const bad = await s.req({ type: 'escalation.list', before: 0 });
    assert.deepEqual([bad.code, bad.field], ['bad_field', 'before']);
    // The revocations, which every young person's page asks for.
    const revs = [];
    let rpages = 0;
    for (let after; ;) {
      const r = await s.req({ type: 'device.revocations', ...(after ? { after } : {}) });
      assert.equal(r.type, 'device.revocations', JSON.stringify(r).slice(0, 300));
      assert.ok(JSON.stringify(r).length <= 32768, 'a page fits a quarter of the queue');
      revs.push(...r.revocations);
      rpages++;
      if (!r.more) break;
      assert.equal(r.next, revs.length);
      after = r.next;
    }
    assert.ok(rpages >= 2, `${rpages} pages`);
    assert.deepEqual(revs.map((r) => Buffer.from(r.revocation, 'base64url').toString('hex').toUpperCase()), statements);
    // evidence.material for a bundle of that conversation (vik claimed its
    // decided escalations): checkpoints, then the audit entries, in pages.
    await awaitStepMargin(5);
    assert.equal((await s.req({ type: 'auth.reauth', totp: totp(vi.secret, stepNow() + 1) })).type, 'auth.reauth_ok');
    const cps = [], entries = [];
    let mpages = 0;
    for (let after; ;) {
      const r = await s.req({ type: 'evidence.material', conversation: conv, ...(after ? { after } : {}) });
      assert.equal(r.type, 'evidence.material', JSON.stringify(r).slice(0, 300));
      assert.ok(JSON.stringify(r).length <= 32768, `a page of ${JSON.stringify(r).length} bytes fits a quarter of the queue`);
      assert.ok(r.checkpoints.length + r.audit.length >= 1);
      cps.push(...r.checkpoints.map((c) => c.seq));
      entries.push(...r.audit.map((a) => a.seq));
      mpages++;
      if (!r.more) { assert.equal(r.next, undefined); break; }
      after = r.next;
    }
    assert.ok(mpages >= 4, `${mpages} pages`);
    assert.deepEqual(cps, storedCheckpoints, 'every checkpoint once, in order');
    assert.deepEqual(entries, storedAudit, 'every audit entry once, in order, after the checkpoints');
    assert.equal(sql(dir, `SELECT count(*) FROM audit WHERE action = 'evidence.material' AND actor = ${sv}`), String(mpages), 'each page is audited');
    const badAfter = await s.req({ type: 'evidence.material', conversation: conv, after: 0 });
    assert.deepEqual([badAfter.code, badAfter.field], ['bad_field', 'after']);
    s.close();
  } finally {
    const r = await srv.stop();
    assert.doesNotMatch(r.stderr, /too slow|AddressSanitizer|runtime error/);
    srv.cleanup();
  }
});

// After a restart every open escalation is due a re-alert at once, each
// push to every supervisor with its note (up to 64 KiB). Whole, twelve of
// ~27 kB would pass this supervisor's 128 KiB queue and close it "too
// slow", at every restart. The pushes are spread over the ticks (a quarter
// of ws.outq_max each), longest unalerted first, so none is starved.
test('re-alerts after a restart come a page a tick, longest unalerted first, and close no one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-escalation-realert-'));
  const ini = join(dir, 'realert.ini');
  writeFileSync(ini, '[escalation]\nrealert = 5\n[ws]\noutq_max = 128k\nmax_message = 32k\n');
  let srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(20);
    const [cy, vi] = [await enrolled(srv, 'cyd', 'counsellor'), await enrolled(srv, 'vik', 'supervisor')];
    const convs = [];
    for (let i = 0; i < 12; i++) {
      const y = await greeted(srv.port);
      convs.push((await request(y, { type: 'contact.start', id: nextId(), topics: 'sextortion' })).conversation);
      y.close();
    }
    await srv.stop();
    const counsellor = sql(dir, "SELECT id FROM staff WHERE username = 'cyd'");
    sql(dir, `INSERT INTO escalation (conversation_id, reason, urgency, state, raised_by, raised_at, note)
      SELECT id, 'life_at_risk', 'immediate', 'open', ${counsellor}, ${Date.now()}, randomblob(20000) FROM conversation WHERE id IN (${convs.join(',')})`);
    const ids = sql(dir, 'SELECT id FROM escalation ORDER BY id').split('\n').map(Number);
    assert.equal(ids.length, 12);
    srv = await startServer({ dir, args: ['--config', ini] });
    await awaitStepMargin(10);
    const s = await staff(srv, vi);
    let closed = null;
    s.on('close', (code, why) => { closed = `${code} ${why}`; });
    const seen = [];
    const deadline = Date.now() + 9000;
    while (Date.now() < deadline && seen.length < 12) {
      const p = await s.wait((x) => x.type === 'escalation' && x.why === 'waiting', Math.max(100, deadline - Date.now())).catch(() => null);
      if (p) seen.push({ id: p.escalation.escalation, at: Date.now() });
    }
    assert.equal(closed, null, 'the supervisor stays connected');
    // One of ~27 kB per tick (two would pass 32 KiB): about one a second.
    assert.ok(seen.length >= 5, `${seen.length} re-alerts in 9 s`);
    for (let i = 2; i < seen.length; i++)
      assert.ok(seen[i].at - seen[i - 2].at >= 900, `at most two within a second: ${seen.map((x) => x.at - seen[0].at)}`);
    // Longest unalerted first: every one before any comes again.
    const first = seen.slice(0, 12).map((x) => x.id);
    assert.equal(new Set(first).size, first.length, `no repeats before all were alerted: ${first}`);
    s.close();
  } finally {
    const r = await srv.stop();
    assert.doesNotMatch(r.stderr, /too slow|AddressSanitizer|runtime error/);
    srv.cleanup();
  }
});
