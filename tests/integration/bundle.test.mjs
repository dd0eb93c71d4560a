// bundle.test.mjs: evidence bundles from a real encrypted conversation
// (docs/evidence.md). A young person and a counsellor chat through the real
// daemon (chat.envelopes = strict) with the pages' own modules; the
// counsellor ends the chat and escalates it, a supervisor claims it, the
// counsellor's client wraps the keys to the supervisor's device, and the
// supervisor (after re-entering a TOTP code) reads the history and builds
// the bundle with client-web/js/bundle.js. `helplinectl verify-bundle`
// accepts it, and names what is wrong in every altered copy: an edited
// message, reordered, deleted and re-timed events, a checkpoint signed by
// another key, single bytes changed across the file, a wrong --root; a
// bundle disclosing fewer messages still verifies. The service's EVIDENCE
// signature comes from the real evidence.sign message (docs/protocol.md
// §5.14), which refuses a counsellor, a supervisor without the claim, a
// stale TOTP, a bundle of another conversation or altered, and one over
// evidence.max_bundle, each audited. The same inputs give the same bytes in
// Chromium. The checkpoints and audit entries come from evidence.material
// (the same rows the database holds). HL_WRITE_FIXTURE=1 rewrites the committed sample
// tests/fixtures/evidence-bundle.json from this run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, until } from './harness.mjs';
import { ctl, totp, stepNow, awaitStepMargin, HELPLINECTL } from './staff.mjs';
import { contactClient as orgContactClient, organisation as orgOrganisation, counsellor as orgCounsellor, initOrg } from './org.mjs';
import { SecureContact, SecureStaff } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';
import * as B from '../../client-web/js/bundle.js';
import { launch, noBrowser } from './browser.mjs';

const sodium = await E.ready();
const here = dirname(fileURLToPath(import.meta.url));
const FIXTURE = join(here, '..', 'fixtures', 'evidence-bundle.json');
const FIXTURE_ROOT = join(here, '..', 'fixtures', 'evidence-root.pub');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Runs helplinectl verify-bundle; {code, out}.
function verify(file, ...args) {
  const r = spawnSync(HELPLINECTL, ['verify-bundle', file, ...args], { encoding: 'utf8', env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } });
  assert.equal(r.stderr.includes('AddressSanitizer') || r.stderr.includes('runtime error'), false, r.stderr);
  return { code: r.status, out: r.stdout + r.stderr };
}

const opened = [];
const track = (c) => { opened.push(c); return c; };

// The largest bundle evidence.sign takes in this test (evidence.max_bundle):
// above ws.max_message (64 KiB), so the refusal of a bundle one byte over it
// also shows a supervisor's frame may be larger than everyone else's.
const MAX_BUNDLE = 98304;

// A request's refusal: the error reply, or what the request failed with.
const refusal = (p) => p.then((r) => ({ code: 'no refusal', reply: r }), (e) => e);

const sqlJson = (dir, q) => JSON.parse(execFileSync('sqlite3', ['-readonly', '-json', join(dir, 'helpline.db'), q], { encoding: 'utf8' }) || '[]');

// A copy of bundle (an object) changed by fn, written canonically (the
// digest and signatures left as they were, unless fn changes them).
function altered(bundle, fn) {
  const b = structuredClone(bundle);
  fn(b);
  return B.fileText(b);
}

test('evidence bundles from a real escalated conversation, verified offline', { timeout: 240000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-bundle-'));
  initOrg(dir);
  const ini = join(dir, 'bundle.ini');
  writeFileSync(ini, `[queue]\nrouting = pull\n[e2e]\ncheckpoint_every = 4\n[evidence]\nmax_bundle = ${MAX_BUNDLE}\n`);
  const srv = await startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
  const rootFile = join(dir, 'root-key.json');
  const work = (name) => join(dir, name);
  try {
    assert.match(srv.stderr, /trust\.ready root=set stamp=set evidence=set/);
    const o = await orgOrganisation(srv, track);
    const A = await orgCounsellor(srv, o, 'bunalice', 'counsellor', track);
    const S = await orgCounsellor(srv, o, 'bunsue', 'supervisor', track);
    const S2 = await orgCounsellor(srv, o, 'bunsam', 'supervisor', track); // never claims
    const sA = new SecureStaff({ client: A.client, device: A.device, rootPk: o.rootPk });

    // ---- the conversation -------------------------------------------------
    const y = new SecureContact({ client: orgContactClient(srv, track), rootPk: o.rootPk });
    const fromY = [];
    y.on('message', (m) => fromY.push(m));
    await y.start({ topics: 'sextortion', language: 'en' });
    const conv = y.conversation;
    await A.client.shiftStart();
    await sA.take();
    await until(() => y.session.current, 'the handshake');
    const said = {};
    const ySays = async (key, text) => { said[key] = (await y.send(text)).seq; };
    const aSays = async (key, text) => { said[key] = (await sA.send(conv, text)).seq; };
    await ySays('hi', 'hi, can I talk to someone');
    await aSays('hello', 'Hello, I am here. What is happening?');
    await ySays('threat', 'someone on InstaPic called @dark_angel_77 says he will post my photo tonight unless I pay £200');
    await aSays('safe', 'Thank you for telling me. You are not in trouble. Please do not pay.');
    said.card = (await sA.sendCard(conv, 'sextortion')).seq;
    await ySays('markup', 'he sent a link <script>alert("x")</script> & said "last chance"');
    await ySays('private', 'my mum does not know, please do not tell her');
    await A.client.note(conv, await sA.sealNote(conv, 'handle @dark_angel_77; immediate threat'));
    await A.client.tag(conv, ['sextortion']);
    await until(() => fromY.some((m) => m.card === 'sextortion'), 'the card to arrive');
    const end = await A.client.end(conv);
    assert.ok(end.seq > 10);

    // ---- escalation, claim, keys to the supervisor -------------------------
    const esc = await A.client.raiseEscalation(conv, 'sextortion_threat', 'immediate');
    const claimed = await S.client.claimEscalation(esc.escalation);
    assert.equal(claimed.state, 'claimed');
    // Catalogue item 31: an escalation's keys go to the claimer's supervisor
    // devices only. Real wraps (sealed to each device's key, signed by A's)
    // to the counsellor's own device, to a supervisor who did not claim it,
    // to no device, or signed as from another's device, are refused and
    // store nothing; then the wrap to the claimer is taken.
    const wrapCount = () => sqlJson(dir, 'SELECT count(*) AS n FROM key_wrap')[0].n;
    const before = wrapCount();
    const dev = (c) => ({ id: c.device.id, cert: c.device.cert, keys: c.device.keys });
    const refusedWrap = (to, escalation, code) => assert.rejects(sA.wrapTo(conv, [to], escalation), (e) => e.code === code, JSON.stringify(to.id));
    await refusedWrap(dev(A), esc.escalation, 'forbidden');
    await refusedWrap(dev(S2), esc.escalation, 'forbidden');
    await refusedWrap({ ...dev(S), id: 999999 }, esc.escalation, 'bad_field');
    await assert.rejects(A.client.request({ type: 'key.wrap', conversation: conv, escalation: esc.escalation, to_device: S.device.id, from_device: S2.device.id, sealed: E.b64(new Uint8Array(80)), sig: E.b64(new Uint8Array(64)) }), (e) => e.code === 'bad_field');
    // S2, a supervisor, may not share the escalation's keys at all.
    await assert.rejects(S2.client.request({ type: 'key.wrap', conversation: conv, escalation: esc.escalation, to_device: S2.device.id, from_device: S2.device.id, sealed: E.b64(new Uint8Array(80)), sig: E.b64(new Uint8Array(64)) }), (e) => e.code === 'forbidden');
    assert.equal(wrapCount(), before, 'a refused wrap stores nothing');
    assert.equal(await sA.wrapToSupervisor(conv, S.id, esc.escalation), 1);
    assert.equal(wrapCount(), before + 1);
    assert.deepEqual(sqlJson(dir, `SELECT d.staff_id AS owner FROM key_wrap w JOIN device d ON d.id = w.to_device WHERE w.conversation_id = ${conv} ORDER BY w.id DESC LIMIT 1`), [{ owner: S.id }]);
    await awaitStepMargin(5);
    await S.client.request({ type: 'auth.reauth', totp: totp(S.acct.secret, stepNow() + 1) });
    const sS = new SecureStaff({ client: S.client, device: S.device, rootPk: o.rootPk, answerHellos: false });
    const read = [];
    sS.on('message', (m) => read.push(m));
    const events = [];
    S.client.on('event', (ev) => { if (ev.conversation === conv) events.push(ev); });
    S.client.stream(conv);
    await sS.loadWraps(conv);
    await S.client.sync(conv);
    await until(() => events.length === end.seq, 'the whole history for the supervisor');
    assert.ok(read.find((m) => m.seq === said.threat && /dark_angel_77/.test(m.text)), 'the supervisor reads the chat');

    // What the supervisor's client has from the server: the organisation's
    // keys (e2e.org), revocations, and (evidence.material) the STAMP
    // checkpoints and the escalation's audit entries.
    const org = await S.client.request({ type: 'e2e.org' });
    assert.ok(org.evidence_cert, 'e2e.org publishes the EVIDENCE certificate');
    const revocations = await S.client.revocations();
    const material = await S.client.evidenceMaterial(conv);
    assert.equal(material.conversation, conv);
    const { checkpoints, audit } = material;
    // The same rows the database holds.
    const storedCheckpoints = sqlJson(dir, `SELECT seq, at, lower(hex(head)) AS head, lower(hex(signature)) AS sig FROM checkpoint WHERE conversation_id = ${conv} ORDER BY seq`);
    assert.deepEqual(checkpoints.map((c) => ({ seq: c.seq, at: c.at, head: sodium.to_hex(c.head), sig: sodium.to_hex(c.sig) })), storedCheckpoints);
    const storedAudit = sqlJson(dir, `SELECT seq, at, coalesce(actor, 0) AS actor, action, coalesce(target, 0) AS target, detail, lower(hex(prev_hash)) AS prev_hash, lower(hex(entry_hash)) AS entry_hash FROM audit WHERE action LIKE 'escalation.%' AND json_extract(detail, '$.conversation') = ${conv} ORDER BY seq`);
    assert.deepEqual(audit.map((a) => ({ ...a, prev_hash: sodium.to_hex(a.prev_hash), entry_hash: sodium.to_hex(a.entry_hash) })), storedAudit);
    assert.equal(sqlJson(dir, `SELECT count(*) AS n FROM audit WHERE action = 'evidence.material' AND actor = ${S.id}`)[0].n, 1, 'evidence.material is audited');
    assert.equal(checkpoints.at(-1).seq, end.seq);
    // (escalation.refused: the other supervisor's attempt to share its keys, above.)
    assert.deepEqual(audit.map((a) => a.action).filter((x, i, l) => l.indexOf(x) === i).sort(), ['escalation.claim', 'escalation.keys', 'escalation.raise', 'escalation.read', 'escalation.refused', 'escalation.wrap']);

    const referral = {
      legal_basis: 'Children Act 2004 s.11; consent of the young person',
      urgency: 'immediate',
      consent: { asked_at_seq: said.private, shared: ['messages', 'offender identifiers'], child_identity: false },
      child_identity_included: false,
      child_identity_reason: 'no consent to share identity; life not at risk',
      personOrUserReported: [{ espService: 'InstaPic', screenName: '@dark_angel_77', profileUrl: 'https://instapic.example/dark_angel_77', reportedAt: '2025-06-01T20:10:00Z' }],
      triage_tags: ['sextortion'],
      note: 'quotes " and \\ and <tags> and ünïcödé travel as they are',
    };
    const inputs = (select, createdAt = Date.now()) => ({
      conversation: conv, events, select, epochs: sS.session(conv).epochs, checkpoints,
      rootPk: org.root_pk, stampCert: org.stamp_cert, evidenceCert: org.evidence_cert,
      signer: { cert: S.device.cert, issuer: S.device.issuer, keys: S.device.keys },
      revocations, audit, referral, createdAt,
    });
    const selected = [said.hi, said.threat, said.card, said.markup];
    const built = B.buildBundle(inputs(selected));
    // The service checks the bundle against its records and countersigns.
    const sigd = await S.client.signEvidence(conv, built.text);
    assert.equal(sigd.conversation, conv);
    assert.deepEqual(sigd.digest, built.digest);
    const signed = B.withServiceSignature(built.bundle, sigd.sig);
    const file = work('bundle.json');
    writeFileSync(file, signed.text);

    await t.test('the bundle carries what the format says, and the withheld events only their hashes', () => {
      const b = signed.bundle.body;
      assert.equal(b.format, 'helpline-evidence-v1');
      assert.equal(b.events.length, end.seq);
      assert.deepEqual(b.openings.map((x) => x.seq), selected.sort((p, q) => p - q));
      assert.equal(b.openings.find((x) => x.seq === said.card).type, 'card');
      assert.equal(b.openings.find((x) => x.seq === said.threat).text, 'someone on InstaPic called @dark_angel_77 says he will post my photo tonight unless I pay £200');
      for (const seq of [said.hello, said.safe, said.private]) assert.ok(b.events[seq - 1].payload_hash && !b.events[seq - 1].payload, `seq ${seq} withheld`);
      assert.ok(b.events.find((e) => e.kind === 'note').payload_hash, 'staff notes are withheld');
      assert.ok(b.events.filter((e) => e.kind === 'accept').every((e) => e.payload), 'handshakes are kept');
      assert.ok(!signed.text.includes('please do not tell her'), 'an unselected message is not in the file');
      assert.equal(b.certificates.devices.length, 1);
      assert.equal(B.canonical(signed.bundle) + '\n', signed.text);
    });

    await t.test('helplinectl verify-bundle accepts it, with --root and without', () => {
      const withRoot = verify(file, '--root', rootFile);
      assert.equal(withRoot.code, 0, withRoot.out);
      assert.match(withRoot.out, /Verdict: VERIFIED/);
      assert.match(withRoot.out, /ok {4}root key: the bundle's root key is the one given/);
      assert.match(withRoot.out, /dark_angel_77/);
      assert.match(withRoot.out, /safety card: "sextortion"/);
      const alone = verify(file);
      assert.equal(alone.code, 0, alone.out);
      assert.match(alone.out, new RegExp(`A court must compare this key with the one the helpline publishes: ${o.rootPk ? E.b64(o.rootPk) : ''}`));
      // A root key given as the bare public key (what a helpline publishes).
      writeFileSync(work('root.pub'), `${E.b64(o.rootPk)}\n`);
      assert.equal(verify(file, '--root', work('root.pub')).code, 0);
      writeFileSync(work('root.hex'), sodium.to_hex(o.rootPk));
      assert.equal(verify(file, '--root', work('root.hex')).code, 0);
    });

    // Each alteration fails, naming what was changed.
    const fails = (name, text, ...reasons) => {
      const f = work(`${name}.json`);
      writeFileSync(f, text);
      const r = verify(f, '--root', rootFile);
      assert.equal(r.code, 1, `${name}: ${r.out}`);
      assert.match(r.out, /Verdict: NOT VERIFIED/);
      for (const why of reasons) assert.match(r.out, why, `${name}: ${r.out}`);
      return r.out;
    };
    const bundle = signed.bundle;
    const at = (seq) => bundle.body.events.findIndex((e) => e.seq === seq);

    await t.test('one message body edited', () => {
      const i = bundle.body.openings.findIndex((x) => x.seq === said.threat);
      fails('edited', altered(bundle, (b) => { b.body.openings[i].text = b.body.openings[i].text.replace('£200', '£20'); }),
        new RegExp(`FAIL {2}messages: message seq ${said.threat}: the disclosed body and franking key do not match the commitment`),
        /FAIL {2}digest: bundle digest mismatch/);
      // Even by the supervisor re-signing it: the commitment still says no,
      // and the service's signature no longer fits.
      const b2 = structuredClone(bundle);
      b2.body.openings[i].text = 'nothing happened';
      const d = B.digestOf(b2.body);
      b2.digest = E.b64(d);
      b2.signatures.supervisor = E.b64(sodium.crypto_sign_detached(B.signatureMessage('supervisor', d), S.device.keys.signSk));
      fails('edited-resigned', B.fileText(b2), /message seq \d+: the disclosed body and franking key do not match the commitment/, /EVIDENCE signature invalid/);
      // A ciphertext swapped for another's keeps nothing decryptable.
      fails('wrong-key', altered(bundle, (b) => { b.body.openings[i].mk = E.b64(sodium.randombytes_buf(32)); }),
        new RegExp(`message seq ${said.threat}: ciphertext does not decrypt with the disclosed key`));
    });

    await t.test('two events reordered', () => {
      const i = at(said.safe);
      fails('reordered', altered(bundle, (b) => { [b.body.events[i], b.body.events[i + 1]] = [b.body.events[i + 1], b.body.events[i]]; }),
        new RegExp(`seq ${said.safe + 1} comes where seq ${said.safe} belongs: events were reordered`));
      // Swapped contents under the same seq numbers: the chain breaks there.
      fails('reordered-renumbered', altered(bundle, (b) => {
        const [p, q] = [b.body.events[i], b.body.events[i + 1]];
        [p.seq, q.seq] = [q.seq, p.seq];
        [b.body.events[i], b.body.events[i + 1]] = [q, p];
      }), new RegExp(`chain broken at seq ${said.safe}:`));
    });

    await t.test('one event deleted', () => {
      const i = at(said.private);
      fails('deleted', altered(bundle, (b) => { b.body.events.splice(i, 1); }),
        new RegExp(`seq ${said.private} is missing .*: an event was deleted`));
      // The last one deleted: the final checkpoint has nothing to cover.
      fails('deleted-last', altered(bundle, (b) => { b.body.events.pop(); }),
        new RegExp(`checkpoint seq ${end.seq} names an event the bundle does not have`));
    });

    await t.test('one event re-timed', () => {
      fails('retimed', altered(bundle, (b) => { b.body.events[at(said.threat)].at += 3600000; }),
        new RegExp(`FAIL {2}chain: chain broken at seq ${said.threat}:`));
      // With every later head recomputed too, the checkpoints still catch it.
      const b2 = structuredClone(bundle);
      b2.body.events[at(said.threat)].at += 3600000;
      let prev = at(said.threat) ? E.unb64(b2.body.events[at(said.threat) - 1].head) : null;
      for (const e of b2.body.events.slice(at(said.threat))) {
        const h = E.chainHead({ prev, conv: Number(conv), seq: e.seq, at: e.at, kind: e.kind, sender: e.sender, visibility: e.visibility, ...(e.payload !== undefined ? { payload: E.unb64(e.payload) } : { payloadHash: E.unb64(e.payload_hash) }) });
        e.head = E.b64(h);
        prev = h;
      }
      const out = fails('retimed-rechained', B.fileText(b2), /the signed head is not the chain's head at seq \d+ \(the events up to it were changed\)/);
      assert.doesNotMatch(out, /chain broken/);
    });

    await t.test('a checkpoint re-signed by another key', () => {
      const other = sodium.crypto_sign_keypair();
      fails('resigned-checkpoint', altered(bundle, (b) => {
        const c = b.body.checkpoints[0];
        c.sig = E.b64(sodium.crypto_sign_detached(E.checkpointMessage({ conv: Number(conv), seq: c.seq, head: E.unb64(c.head), at: c.at }), other.privateKey));
      }), new RegExp(`checkpoint seq ${bundle.body.checkpoints[0].seq} not signed by the STAMP key`));
    });

    await t.test('one byte changed anywhere', () => {
      const text = signed.text;
      const positions = [2, 40, Math.floor(text.length * 0.1), Math.floor(text.length / 3), Math.floor(text.length / 2),
        Math.floor(text.length * 0.77), text.indexOf('"digest"') + 12, text.indexOf('"supervisor"') + 20, text.length - 5];
      for (const p of positions) {
        const c = text[p];
        const swap = /[0-9]/.test(c) ? String((Number(c) + 1) % 10) : /[a-y]/.test(c) ? String.fromCharCode(c.charCodeAt(0) + 1) : c === 'z' ? 'a' : c === 'A' ? 'B' : 'A';
        fails(`byte-${p}`, text.slice(0, p) + swap + text.slice(p + 1), /FAIL/);
      }
      // Whitespace is a change too: a re-saved (pretty-printed) file is not the signed one.
      fails('pretty', `${JSON.stringify(bundle, null, 1)}\n`, /not in canonical form/);
      fails('truncated', text.slice(0, text.length - 100), /not valid JSON/);
    });

    await t.test('a wrong --root, and a missing EVIDENCE signature', () => {
      const other = sodium.crypto_sign_keypair();
      writeFileSync(work('other.pub'), E.b64(other.publicKey));
      const r = verify(file, '--root', work('other.pub'));
      assert.equal(r.code, 1);
      assert.match(r.out, /the bundle names another root key than the one given/);
      assert.match(r.out, /the issuer of the signing supervisor's device certificate is not signed by its issuer/);
      fails('unsigned', built.text, /evidence signature: missing/);
    });

    await t.test('a properly redacted bundle verifies', async () => {
      const few = B.buildBundle(inputs([said.threat]));
      const s2 = B.withServiceSignature(few.bundle, (await S.client.signEvidence(conv, few.text)).sig);
      writeFileSync(work('redacted.json'), s2.text);
      const r = verify(work('redacted.json'), '--root', rootFile);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /1 disclosed message:/);
      assert.doesNotMatch(r.out, /alert/);
      assert.ok(!s2.text.includes('script'));
      // Nothing disclosed at all: the chain and checkpoints still verify.
      const none = B.buildBundle(inputs([]));
      writeFileSync(work('none.json'), B.withServiceSignature(none.bundle, (await S.client.signEvidence(conv, none.text)).sig).text);
      assert.equal(verify(work('none.json'), '--root', rootFile).code, 0);
    });

    await t.test('the builder refuses what would not verify', () => {
      assert.throws(() => B.buildBundle(inputs([said.hello + 1000])), (e) => e.code === 'not_checkpointed');
      assert.throws(() => B.buildBundle(inputs([events.find((e) => e.kind === 'system').seq])), (e) => e.code === 'bad_input');
      assert.throws(() => B.buildBundle({ ...inputs([said.hi]), events: events.map((e) => (e.seq === said.safe ? { ...e, at: e.at + 1 } : e)) }), (e) => e.code === 'chain_mismatch');
      assert.throws(() => B.buildBundle({ ...inputs([said.hi]), epochs: [] }), (e) => e.code === 'no_keys');
      assert.throws(() => B.buildBundle({ ...inputs([said.hi]), referral: { x: 0.5 } }), (e) => e.code === 'not_canonical');
    });

    await t.test('evidence.material refuses a counsellor, a supervisor without the claim, and audits it', async () => {
      let e = await refusal(A.client.evidenceMaterial(conv));
      assert.equal(e.code, 'forbidden', 'a counsellor');
      e = await refusal(S2.client.evidenceMaterial(conv));
      assert.equal(e.code, 'forbidden', 'a supervisor who did not claim');
      e = await refusal(S.client.evidenceMaterial('abc'));
      assert.equal(e.code, 'bad_field');
      const refused = await until(() => {
        const r = sqlJson(dir, "SELECT actor, json_extract(detail, '$.error') AS error FROM audit WHERE action = 'escalation.refused' AND json_extract(detail, '$.request') = 'evidence.material' ORDER BY seq");
        return r.length === 2 && r;
      }, 'the refusals in the audit chain');
      assert.deepEqual(refused.map((r) => [r.actor, r.error]), [[A.id, 'forbidden'], [S2.id, 'forbidden']]);
    });

    await t.test('evidence.sign refuses, each time with its code, and audits it', async () => {
      const ask = (c, conversation, text) => refusal(c.signEvidence(conversation, text));
      let e = await ask(A.client, conv, built.text);
      assert.equal(e.code, 'forbidden', 'a counsellor');
      e = await ask(S2.client, conv, built.text);
      assert.equal(e.code, 'reauth_required', 'a supervisor without a fresh code');
      await awaitStepMargin(5);
      await S2.client.request({ type: 'auth.reauth', totp: totp(S2.acct.secret, stepNow() + 1) });
      e = await ask(S2.client, conv, built.text);
      assert.equal(e.code, 'forbidden', 'a supervisor who did not claim');
      assert.match(e.message, /only the supervisor who claimed/);
      e = await ask(S.client, String(Number(conv) + 1000), built.text);
      assert.equal(e.code, 'bad_field', 'another conversation');
      assert.match(e.message, /the bundle is of another conversation/);
      const i = built.bundle.body.openings.findIndex((x) => x.seq === said.threat);
      e = await ask(S.client, conv, altered(built.bundle, (b) => { b.body.openings[i].text += '!'; }));
      assert.equal(e.code, 'bad_field', 'an edited message');
      assert.equal(e.field, 'bundle');
      assert.match(e.message, /^the bundle does not verify: digest: bundle digest mismatch/); // the first failed check
      e = await ask(S.client, conv, B.buildBundle(inputs(selected, Date.now() + 11 * 60000)).text);
      assert.equal(e.code, 'bad_field', 'a bundle not made now');
      assert.match(e.message, /created_at is not now/);
      e = await ask(S.client, conv, built.text.padEnd(MAX_BUNDLE + 1, ' '));
      assert.equal(e.code, 'bad_field', 'over evidence.max_bundle, in a frame over ws.max_message');
      assert.match(e.message, new RegExp(`larger than evidence.max_bundle \\(${MAX_BUNDLE} bytes\\)`));
      // Every refusal is in the audit chain, and so is every signature.
      const want = ['forbidden', 'reauth_required', 'forbidden', 'bad_field', 'bad_field', 'bad_field', 'bad_field'];
      const refused = await until(() => {
        const r = sqlJson(dir, "SELECT actor, json_extract(detail, '$.error') AS error, json_extract(detail, '$.conversation') AS conv FROM audit WHERE action = 'escalation.refused' AND json_extract(detail, '$.request') = 'evidence.sign' ORDER BY seq");
        return r.length === want.length && r;
      }, 'the refusals in the audit chain');
      assert.deepEqual(refused.map((r) => r.error), want);
      assert.deepEqual(refused.map((r) => r.actor), [A.id, S2.id, S2.id, S.id, S.id, S.id, S.id]);
      const signs = sqlJson(dir, "SELECT actor, detail FROM audit WHERE action = 'evidence.signed' ORDER BY seq");
      assert.equal(signs.length, 3); // the bundle, the redacted one, the one disclosing nothing
      assert.deepEqual(JSON.parse(signs[0].detail), { conversation: Number(conv), digest: sodium.to_hex(built.digest) });
      assert.ok(signs.every((r) => r.actor === S.id));
      execFileSync(HELPLINECTL, ['--db', join(dir, 'helpline.db'), 'audit', 'verify'], { stdio: 'ignore' });
    });

    await t.test('the HTML summary lists the messages and redactions, every value escaped', () => {
      const html = B.summaryHtml(signed.bundle, { checks: built.checks });
      assert.match(html, /^<!doctype html>/);
      assert.ok(!html.includes('<script'), 'no script element, and the message\'s markup is escaped');
      assert.ok(html.includes('he sent a link &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; said &quot;last chance&quot;'));
      assert.ok(html.includes('@dark_angel_77'));
      assert.ok(html.includes(sodium.to_hex(built.digest)));
      assert.ok(html.includes('withheld'));
      assert.ok(html.includes('[safety card: sextortion]'));
      assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
      assert.ok(!html.includes('please do not tell her'));
    });

    await t.test('the browser builder makes the same bytes in Chromium', { skip: noBrowser }, async () => {
      const createdAt = built.bundle.body.created_at;
      const plain = (v) => JSON.parse(JSON.stringify(v, (k, x) => (x instanceof Uint8Array ? { b64: E.b64(x) } : x)));
      const inp = inputs(selected, createdAt);
      const args = plain({ ...inp, epochs: [...inp.epochs].map(([epoch, k]) => ({ epoch, root1: k.root1, root2: k.root2 })) });
      const browser = await launch();
      try {
        const page = await browser.newPage();
        const problems = [];
        page.on('pageerror', (e) => problems.push(String(e)));
        await page.goto(`${srv.url}/`);
        const text = await page.evaluate(async (a) => {
          const E = await import('/js/e2e.js');
          const B = await import('/js/bundle.js');
          await E.ready();
          const revive = (v) => (Array.isArray(v) ? v.map(revive) : v && typeof v === 'object' ? (Object.keys(v).length === 1 && typeof v.b64 === 'string' ? E.unb64(v.b64) : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]))) : v);
          return B.buildBundle(revive(a)).text;
        }, args);
        assert.deepEqual(problems, []);
        assert.equal(text, built.text);
      } finally {
        await browser.close();
      }
    });

    if (process.env.HL_WRITE_FIXTURE) {
      writeFileSync(FIXTURE, signed.text);
      writeFileSync(FIXTURE_ROOT, `${E.b64(o.rootPk)}\n`);
    }
  } finally {
    for (const c of opened) c.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    if (!existsSync(join(dir, 'keep'))) srv.cleanup();
  }
});

test('the committed sample bundle (tests/fixtures) verifies, as of its own times', { skip: !existsSync(FIXTURE) && 'no fixture yet' }, () => {
  // Certificates are checked as of the times the bundle records (when it was
  // made, when each handshake and checkpoint happened), never this
  // computer's clock: the sample keeps verifying after its certificates
  // expire.
  const r = verify(FIXTURE, '--root', FIXTURE_ROOT);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Verdict: VERIFIED/);
  const text = readFileSync(FIXTURE, 'utf8');
  const b = JSON.parse(text);
  assert.equal(B.fileText(b), text, 'the sample is canonical');
  assert.equal(E.b64(B.digestOf(b.body)), b.digest);
  // And one byte less is no longer evidence.
  const d = mkdtempSync(join(tmpdir(), 'helpline-fixture-'));
  writeFileSync(join(d, 'x.json'), text.replace('"at":', '"at":1'));
  assert.equal(verify(join(d, 'x.json'), '--root', FIXTURE_ROOT).code, 1);
});
