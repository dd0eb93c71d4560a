// referral.test.mjs: the two-person police referral and its delivery to a
// partner (docs/escalation.md, docs/protocol.md §5.15), against the real
// daemon and a partner receiver on loopback (a Node http server here).
// A real encrypted chat is escalated, claimed and read; the supervisor's
// client builds and has countersigned an evidence bundle, seals the
// referral package (document + bundle) to the test partner's X25519 key and
// creates the referral; the counsellor and the supervisor approve (each
// after a fresh TOTP) and the daemon POSTs it; the receiver opens it with
// the partner's secret key and `helplinectl verify-bundle` accepts the
// bundle it got. Refusals: one person approving twice, one approval only,
// a stale TOTP, a supervisor who did not claim, the child's identity
// without consent or risk to life, an edit after an approval (resets it).
// Delivery: a 400 fails it (and referral.retry sends it again), a receiver
// that is down is retried with growing back-off, also across a restart of
// the daemon, until it is up and acknowledges. The database holds no
// offender identifier in plaintext.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, until } from './harness.mjs';
import { totp, stepNow, awaitStepMargin, HELPLINECTL } from './staff.mjs';
import { contactClient, organisation, counsellor, initOrg } from './org.mjs';
import { SecureContact, SecureStaff } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';
import * as B from '../../client-web/js/bundle.js';

const sodium = await E.ready();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const utf8 = (s) => new TextEncoder().encode(s);

const refusal = (p) => p.then((r) => ({ code: 'no refusal', reply: r }), (e) => e);
const sqlJson = (dir, q) => JSON.parse(execFileSync('sqlite3', ['-readonly', '-json', join(dir, 'helpline.db'), q], { encoding: 'utf8' }) || '[]');

// The partner: answers per `mode` ('ok', 'bad' = 400, 'busy' = 503); down()
// closes the port, up() opens it again on the same port.
function receiver() {
  const r = { mode: 'ok', got: [], port: 0, server: null, acks: 0 };
  const handle = (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      r.got.push({ at: Date.now(), mode: r.mode, headers: req.headers, url: req.url, body });
      if (r.mode === 'bad') { res.writeHead(400, { 'content-type': 'application/json' }); res.end('{"error":"unknown force code"}'); return; }
      if (r.mode === 'busy') { res.writeHead(503); res.end('try later'); return; }
      const env = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ack_id: `POL-${env.referral}-${++r.acks}` }));
    });
  };
  r.up = () => new Promise((ok) => { r.server = createServer(handle); r.server.listen(r.port, '127.0.0.1', () => { r.port = r.server.address().port; ok(); }); });
  r.down = () => new Promise((ok) => { r.server.closeAllConnections?.(); r.server.close(() => ok()); });
  return r;
}

const opened = [];
const track = (c) => { opened.push(c); return c; };

test('a two-person police referral, delivered to the partner, verifiable there', { timeout: 280000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-referral-'));
  initOrg(dir);
  const partner = sodium.crypto_box_keypair();
  const rx = receiver();
  await rx.up();
  const ini = join(dir, 'referral.ini');
  writeFileSync(ini, `[queue]\nrouting = pull\n[e2e]\ncheckpoint_every = 4\n[referral]\npartner_url = http://127.0.0.1:${rx.port}/referrals\n`
    + `partner_key = ${E.b64(partner.publicKey)}\nbackoff = 1\nbackoff_max = 3\nattempts = 20\ntimeout = 5\nconnect_timeout = 2\n`);
  let srv = await startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
  const rootFile = join(dir, 'root-key.json');
  try {
    assert.match(srv.stderr, /referral\.ready partner_url=set partner_key=set pending=0/);
    const o = await organisation(srv, track);
    const A = await counsellor(srv, o, 'refalice', 'counsellor', track);
    const S = await counsellor(srv, o, 'refsue', 'supervisor', track);
    const S2 = await counsellor(srv, o, 'refsam', 'supervisor', track); // never claims
    const sA = new SecureStaff({ client: A.client, device: A.device, rootPk: o.rootPk });

    // ---- the chat, the escalation, the supervisor reads it ---------------------
    const y = new SecureContact({ client: contactClient(srv, track), rootPk: o.rootPk });
    await y.start({ topics: 'sextortion', language: 'en' });
    const conv = y.conversation;
    await A.client.shiftStart();
    await sA.take();
    await until(() => y.session.current, 'the handshake');
    const said = {};
    said.threat = (await y.send('a man called @dark_angel_77 on InstaPic says he will post my photo tonight unless I pay')).seq;
    said.ask = (await sA.send(conv, 'Can we share his username and these messages with the police? Your name stays private.')).seq;
    said.yes = (await y.send('yes you can share that')).seq;
    const end = await A.client.end(conv);
    const esc = await A.client.raiseEscalation(conv, 'sextortion_threat', 'immediate');
    await S.client.claimEscalation(esc.escalation);
    assert.equal(await sA.wrapToSupervisor(conv, S.id, esc.escalation), 1);
    await awaitStepMargin(5);
    await S.client.request({ type: 'auth.reauth', totp: totp(S.acct.secret, stepNow() + 1) });
    const sS = new SecureStaff({ client: S.client, device: S.device, rootPk: o.rootPk, answerHellos: false });
    const events = [];
    S.client.on('event', (ev) => { if (ev.conversation === conv) events.push(ev); });
    S.client.stream(conv);
    await sS.loadWraps(conv);
    await S.client.sync(conv);
    await until(() => events.length === end.seq, 'the history for the supervisor');
    const pushes = { A: [], S: [] };
    A.client.on('referral', (m) => pushes.A.push(m));
    S.client.on('referral', (m) => pushes.S.push(m));

    // ---- the document, the bundle, the sealed package ---------------------------
    const document = {
      kind: 'police', legal_basis: 'vital_interests', legal_basis_text: 'Children Act 2004 s.11; the young person agreed',
      urgency: 'immediate',
      consent: { asked: true, answer: 'yes', seq: said.ask, answer_seq: said.yes, shared: ['messages', 'offender identifiers'] },
      child_identity: { included: false, reason: 'not_needed' },
      personOrUserReported: [{ espService: 'InstaPic', screenName: '@dark_angel_77', profileUrl: 'https://instapic.example/dark_angel_77',
        displayName: 'Dark Angel', email: 'dark.angel77@mail.example', reportedAt: new Date().toISOString() }],
      triage_tags: ['sextortion'],
    };
    const org = await S.client.request({ type: 'e2e.org' });
    const revocations = await S.client.revocations();
    const { checkpoints, audit } = await S.client.evidenceMaterial(conv);
    const built = B.buildBundle({
      conversation: conv, events, select: [said.threat, said.ask, said.yes], epochs: sS.session(conv).epochs, checkpoints,
      rootPk: org.root_pk, stampCert: org.stamp_cert, evidenceCert: org.evidence_cert,
      signer: { cert: S.device.cert, issuer: S.device.issuer, keys: S.device.keys },
      revocations, audit, referral: document, createdAt: Date.now(),
    });
    const sig = await S.client.signEvidence(conv, built.text);
    const signed = B.withServiceSignature(built.bundle, sig.sig);
    const seal = (doc, bundleText) => sodium.crypto_box_seal(utf8(JSON.stringify({ format: 'helpline-referral-v1', referral: doc, bundle: bundleText ?? null })), partner.publicKey);
    const staffCopy = await sS.sealNote(conv, JSON.stringify(document));
    const fields = {
      legal_basis: 'vital_interests', urgency: 'immediate',
      consent: { asked: true, answer: 'yes', seq: said.ask },
      identity: { included: false, reason: 'not_needed' }, tags: ['sextortion'],
      bundleDigest: sig.digest, sealed: seal(document, signed.text), sealedTo: partner.publicKey, staffCopy,
    };

    await t.test('refusals at creation: identity without consent or life at risk, bad digest, wrong key, non-party', async () => {
      const bad = async (f, code, field, re) => {
        const e = await refusal(S.client.createReferral(esc.escalation, 'police', { ...fields, ...f }));
        assert.equal(e.code, code, JSON.stringify(f));
        if (field) assert.equal(e.field, field);
        if (re) assert.match(e.message, re);
      };
      await bad({ identity: { included: true, reason: 'no_consent' } }, 'bad_field', 'identity_reason', /only with their consent or when life is at risk/);
      await bad({ identity: { included: true, reason: 'consent' }, consent: { asked: true, answer: 'no', seq: said.ask } }, 'bad_field', 'identity_reason', /consent_answer yes/);
      await bad({ identity: { included: true, reason: 'consent' }, consent: { asked: false } }, 'bad_field', 'identity_reason');
      await bad({ identity: { included: false, reason: 'life_at_risk' } }, 'bad_field', 'identity_reason');
      await bad({ consent: { asked: true, answer: 'yes', seq: end.seq + 50 } }, 'bad_field', 'consent_seq', /not a seq of this chat/);
      await bad({ bundleDigest: sodium.randombytes_buf(32) }, 'bad_field', 'bundle_digest', /countersigned/);
      await bad({ sealedTo: sodium.crypto_box_keypair().publicKey }, 'bad_field', 'sealed_to');
      await bad({ legal_basis: 'because' }, 'bad_field', 'legal_basis');
      await bad({ tags: ['not_a_tag'] }, 'bad_field', 'tags');
      const e = await refusal(S2.client.createReferral(esc.escalation, 'police', fields));
      assert.equal(e.code, 'forbidden', 'a supervisor who did not claim');
      // Identity included when life is at risk is allowed (then withdrawn below).
    });

    const ref = await S.client.createReferral(esc.escalation, 'police', fields);
    assert.equal(ref.state, 'draft');
    assert.equal(ref.revision, 1);
    assert.deepEqual(ref.consent, { asked: true, answer: 'yes', seq: said.ask });
    assert.deepEqual(ref.identity, { included: false, reason: 'not_needed' });
    assert.deepEqual(ref.approvals, { counsellor: null, supervisor: null });
    await until(() => pushes.A.some((m) => m.why === 'created' && m.referral.referral === ref.referral), 'the counsellor is told');

    await t.test('the counsellor reads it back from the staff copy', async () => {
      const got = await A.client.getReferral(ref.referral);
      assert.equal(got.referral.referral, ref.referral);
      assert.deepEqual(got.staffCopy, staffCopy, 'the sealed copy comes back as stored');
      assert.equal((await A.client.referrals(esc.escalation)).length, 1);
      assert.equal((await S2.client.referrals()).length, 0, 'another supervisor sees none');
      assert.equal((await refusal(S2.client.getReferral(ref.referral))).code, 'forbidden');
    });

    await t.test('two people, each with a fresh TOTP; no one twice; one approval sends nothing', async () => {
      let e = await refusal(A.client.approveReferral(ref.referral, 1));
      assert.equal(e.code, 'reauth_required', 'a stale TOTP');
      await awaitStepMargin(5);
      await A.client.request({ type: 'auth.reauth', totp: totp(A.acct.secret, stepNow() + 1) });
      await S2.client.request({ type: 'auth.reauth', totp: totp(S2.acct.secret, stepNow() + 1) });
      e = await refusal(S2.client.approveReferral(ref.referral, 1));
      assert.equal(e.code, 'forbidden', 'a supervisor who did not claim');
      const once = await A.client.approveReferral(ref.referral, 1);
      assert.equal(once.state, 'draft');
      assert.equal(once.approvals.counsellor.by, A.id);
      e = await refusal(A.client.approveReferral(ref.referral, 1));
      assert.equal(e.code, 'conflict', 'the same person twice');
      assert.match(e.message, /already approved/);
      e = await refusal(S.client.downloadReferral(ref.referral));
      assert.equal(e.code, 'bad_state', 'no download before both approve');
      await sleep(800);
      assert.equal(rx.got.length, 0, 'one approval sends nothing');
      // An edit after an approval clears it, and an approval of the old
      // revision is refused.
      const edited = await S.client.updateReferral(ref.referral, 1, { ...fields, urgency: 'urgent' });
      assert.equal(edited.revision, 2);
      assert.deepEqual(edited.approvals, { counsellor: null, supervisor: null });
      e = await refusal(S.client.approveReferral(ref.referral, 1));
      assert.equal(e.code, 'conflict');
      assert.match(e.message, /revision 2/);
      e = await refusal(S.client.updateReferral(ref.referral, 1, fields));
      assert.equal(e.code, 'conflict', 'an edit of an old revision');
      const reset = sqlJson(dir, `SELECT detail FROM audit WHERE action = 'referral.update'`);
      assert.deepEqual(JSON.parse(reset[0].detail), { referral: ref.referral, revision: 2, approvals_reset: true });
    });

    await t.test('both approve: delivered once, acknowledged, pushed', async () => {
      const s1 = await S.client.approveReferral(ref.referral, 2);
      assert.equal(s1.state, 'draft');
      const e = await refusal(S.client.approveReferral(ref.referral, 2));
      assert.equal(e.code, 'conflict', 'the supervisor twice');
      const a2 = await A.client.approveReferral(ref.referral, 2);
      assert.equal(a2.state, 'approved');
      await until(() => pushes.S.some((m) => m.referral.referral === ref.referral && m.referral.state === 'acknowledged'), 'the acknowledgement');
      assert.ok(pushes.A.some((m) => m.referral.referral === ref.referral && m.why === 'acknowledged'));
      assert.equal(rx.got.length, 1, 'the partner got it once');
      const got = rx.got[0];
      assert.equal(got.url, '/referrals');
      assert.equal(got.headers['content-type'], 'application/json');
      assert.equal(got.headers['idempotency-key'], `helpline-referral-${ref.referral}-r2`);
      const row = (await S.client.getReferral(ref.referral)).referral;
      assert.equal(row.delivery.ack_id, `POL-${ref.referral}-1`);
      assert.equal(row.delivery.attempts, 1);
    });

    await t.test('the partner opens the package and verifies the bundle offline', () => {
      const env = JSON.parse(rx.got[0].body);
      assert.equal(env.format, 'helpline-referral-delivery-v1');
      assert.equal(env.referral, ref.referral);
      assert.equal(env.kind, 'police');
      assert.equal(env.urgency, 'urgent');
      assert.equal(env.sealed_to, E.b64(partner.publicKey));
      assert.equal(env.bundle_digest, E.b64(sig.digest));
      assert.ok(!rx.got[0].body.includes('dark_angel_77'), 'the POST body is ciphertext');
      const pkg = JSON.parse(new TextDecoder().decode(sodium.crypto_box_seal_open(E.unb64(env.sealed), partner.publicKey, partner.privateKey)));
      assert.equal(pkg.format, 'helpline-referral-v1');
      assert.equal(pkg.referral.personOrUserReported[0].screenName, '@dark_angel_77');
      const f = join(dir, 'received-bundle.json');
      writeFileSync(f, pkg.bundle);
      const r = spawnSync(HELPLINECTL, ['verify-bundle', f, '--root', rootFile], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Verdict: VERIFIED/);
      assert.equal(B.digestOf(JSON.parse(pkg.bundle).body).length, 32);
      assert.equal(E.b64(B.digestOf(JSON.parse(pkg.bundle).body)), env.bundle_digest, 'the envelope names the bundle inside');
    });

    await t.test('the download is the same file the partner got', async () => {
      const d = await A.client.downloadReferral(ref.referral);
      assert.equal(d.name, `helpline-referral-${ref.referral}.json`);
      assert.deepEqual(JSON.parse(d.text), JSON.parse(rx.got[0].body));
      assert.equal(sqlJson(dir, "SELECT count(*) AS n FROM audit WHERE action = 'referral.download'")[0].n, 1);
    });

    // A safeguarding referral (no bundle needed), approved by both.
    const approveBoth = async (id, rev = 1) => {
      await S.client.approveReferral(id, rev);
      return A.client.approveReferral(id, rev);
    };
    const small = (extra) => ({ legal_basis: 'public_task', urgency: 'urgent', consent: { asked: false }, identity: { included: true, reason: 'life_at_risk' },
      sealed: seal({ ...document, kind: 'safeguarding', ...extra }), sealedTo: partner.publicKey });

    await t.test('a 4xx from the partner fails it with the reason; referral.retry sends it again', async () => {
      rx.mode = 'bad';
      const before = rx.got.length;
      const r2 = await A.client.createReferral(esc.escalation, 'safeguarding', small({ n: 2 }));
      assert.deepEqual(r2.identity, { included: true, reason: 'life_at_risk' });
      await approveBoth(r2.referral);
      await until(() => pushes.A.some((m) => m.referral.referral === r2.referral && m.referral.state === 'failed'), 'failed');
      const row = (await A.client.getReferral(r2.referral)).referral;
      assert.match(row.delivery.last_error, /the partner refused it \(400\): \{"error":"unknown force code"\}/);
      assert.equal(row.delivery.attempts, 1, 'a 4xx is not retried');
      assert.equal(rx.got.length, before + 1);
      rx.mode = 'ok';
      const again = await S.client.retryReferral(r2.referral);
      assert.equal(again.state, 'sent');
      await until(async () => (await A.client.getReferral(r2.referral)).referral.state === 'acknowledged', 'acknowledged after retry');
      assert.equal((await refusal(S.client.retryReferral(r2.referral))).code, 'bad_state');
    });

    let r3;
    await t.test('the partner down: retried with growing back-off, across a restart, until acknowledged', async () => {
      await rx.down();
      r3 = await A.client.createReferral(esc.escalation, 'safeguarding', small({ n: 3 }));
      await approveBoth(r3.referral);
      const failures = () => sqlJson(dir, `SELECT at FROM audit WHERE action = 'referral.attempt_failed' AND json_extract(detail, '$.referral') = ${r3.referral} ORDER BY seq`).map((x) => x.at);
      await until(() => failures().length >= 3, 'three failed attempts', 20000);
      const at = failures();
      // backoff 1 s doubling, capped at 3 s, equal jitter: the wait after
      // the first failure is 0.5-1 s, after the second 1-2 s.
      assert.ok(at[1] - at[0] >= 450, `first wait ${at[1] - at[0]} ms`);
      assert.ok(at[2] - at[1] >= 950, `second wait ${at[2] - at[1]} ms`);
      const row = (await A.client.getReferral(r3.referral)).referral;
      assert.equal(row.state, 'sent');
      assert.match(row.delivery.last_error, /no answer from the partner/);
      // Restart mid-retry: the daemon resumes the pending delivery.
      for (const c of opened) c.close();
      opened.length = 0;
      const stopped = await srv.stop();
      assert.equal(stopped.code, 0, stopped.stderr.slice(-2000));
      assert.doesNotMatch(stopped.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
      await rx.up();
      srv = await startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
      assert.match(srv.stderr, /referral\.ready partner_url=set partner_key=set pending=1/);
      await until(() => sqlJson(dir, `SELECT state FROM referral WHERE id = ${r3.referral}`)[0].state === 'acknowledged', 'acknowledged after the restart', 20000);
      const got = rx.got.filter((g) => JSON.parse(g.body).referral === r3.referral);
      assert.equal(got.length, 1, 'the partner got it once');
    });

    await t.test('the audit chain has every step, and the database no offender identifier', () => {
      const actions = sqlJson(dir, "SELECT action, count(*) AS n FROM audit WHERE action LIKE 'referral.%' GROUP BY action ORDER BY action");
      const n = Object.fromEntries(actions.map((a) => [a.action, a.n]));
      for (const a of ['referral.create', 'referral.update', 'referral.approve', 'referral.approved', 'referral.send', 'referral.acknowledged', 'referral.failed', 'referral.attempt_failed', 'referral.retry', 'referral.refused', 'referral.download'])
        assert.ok(n[a] > 0, `${a} audited`);
      assert.equal(n['referral.approved'], 3);
      const refused = sqlJson(dir, "SELECT actor, json_extract(detail, '$.request') AS request, json_extract(detail, '$.error') AS error FROM audit WHERE action = 'referral.refused' AND json_extract(detail, '$.request') = 'referral.approve' ORDER BY seq");
      assert.deepEqual(refused.map((r) => [r.actor, r.error]), [[A.id, 'reauth_required'], [S2.id, 'forbidden'], [A.id, 'conflict'], [S.id, 'conflict'], [S.id, 'conflict']]);
      execFileSync(HELPLINECTL, ['--db', join(dir, 'helpline.db'), 'audit', 'verify'], { stdio: 'ignore' });
      execFileSync('sqlite3', [join(dir, 'helpline.db'), 'PRAGMA wal_checkpoint(TRUNCATE);']);
      for (const f of readdirSync(dir).filter((x) => x.startsWith('helpline.db'))) {
        const bytes = readFileSync(join(dir, f));
        for (const s of ['dark_angel_77', 'instapic.example', 'dark.angel77', 'Dark Angel', 'Children Act'])
          assert.equal(bytes.includes(Buffer.from(s)), false, `${f} holds "${s}"`);
      }
    });
  } finally {
    for (const c of opened) c.close();
    const r = await srv.stop();
    await rx.down().catch(() => {});
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    if (!existsSync(join(dir, 'keep'))) srv.cleanup();
  }
});
