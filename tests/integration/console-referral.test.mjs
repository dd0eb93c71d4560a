// console-referral.test.mjs: the two-person police referral in the staff
// console, in Chromium against the real daemon with a partner receiver on
// loopback (a Node http server here; referral.partner_url points at it and
// referral.partner_key is a key whose secret this test holds). Three
// windows: the young person's page, a counsellor's console and a
// supervisor's console. The young person chats, is asked for consent on
// their page and answers yes; the counsellor escalates; the supervisor
// claims it and reads the chat; the chat ends and the counsellor wraps it
// up. The supervisor builds the evidence bundle in the case view and fills
// the referral (consent record pre-filled from the chat with its seq, two
// people reported, tags, summary, the partner's key); a referral with the
// child's identity but no consent record is refused by the server, and the
// form says so at the identity question; the corrected one is sealed in
// the browser and saved as a draft. The counsellor finds it under
// "Referrals awaiting your approval" (the chat is wrapped up), reads the
// staff copy opened on their device and approves it with a fresh code; the
// supervisor approves it too. The partner first answers 400: the console
// shows "failed" with the partner's reason; "Send again" delivers it and
// the console shows it acknowledged, live. The test opens what the partner
// received with the partner's secret key, and helplinectl verify-bundle
// accepts the bundle inside; the download is the same envelope. Every new
// screen is scanned with axe-core; the database and log hold no offender
// identifier, no summary, no legal text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { organisation } from './org.mjs';
import { awaitStepMargin, HELPLINECTL } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { consoleDaemon, youngChatAccepted, look, storedBytes, confirmReauth, staffConsole, markup, assertInert } from './console.mjs';
import { shot } from './a11y.mjs';
import * as E from '../../client-web/js/e2e.js';

const here = dirname(fileURLToPath(import.meta.url));

const skip = noBrowser;
const sodium = await E.ready();
const sql = (srv, q) => execFileSync('sqlite3', [join(srv.dir, 'helpline.db'), q], { encoding: 'utf8' }).trim();

// The partner: 'bad' answers 400 with a reason, 'ok' acknowledges.
async function receiver() {
  const r = { mode: 'ok', got: [], acks: 0 };
  r.server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      r.got.push({ mode: r.mode, headers: req.headers, url: req.url, body });
      if (r.mode === 'bad') { res.writeHead(400, { 'content-type': 'application/json' }); res.end('{"error":"unknown force code"}'); return; }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ack_id: `POL-${JSON.parse(body).referral}-${++r.acks}` }));
    });
  });
  await new Promise((ok) => r.server.listen(0, '127.0.0.1', ok));
  r.port = r.server.address().port;
  return r;
}

const SECRETS = ['dark_angel_77', 'dark.angel.alt', 'instapic.example', 'REF-DISPLAY-SECRET', 'dark.angel@mail.example', '07700900123', 'REF-SUMMARY-SECRET', 'REF-LEGAL-SECRET', 'REF-CHILD-NAME'];

test('a police referral drafted by the supervisor, approved by the counsellor and the supervisor, delivered and acknowledged', { skip, timeout: 420000 }, async () => {
  const partner = sodium.crypto_box_keypair();
  const rx = await receiver();
  rx.mode = 'bad';
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = both\noffer_timeout = 60\n'
    + `[referral]\npartner_url = http://127.0.0.1:${rx.port}/referrals\npartner_key = ${E.b64(partner.publicKey)}\nbackoff = 1\nbackoff_max = 2\nattempts = 4\ntimeout = 5\nconnect_timeout = 2\n`);
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  const a11y = [];
  try {
    assert.match(srv.stderr, /referral\.ready partner_url=set partner_key=set/);
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'refadmin');

    const { page: staff, acct: carol } = await staffConsole(browser, problems, srv, url, org, 'carol', ['counsellor'], { label: 'counsellor', shift: true });

    await awaitStepMargin(25);
    const { page: sup, acct: sam } = await staffConsole(browser, problems, srv, url, org, 'sam', ['supervisor'], { label: 'supervisor' });
    await sup.click('nav#views button[data-view="escalations"]');
    await sup.locator('#esc-status').waitFor();

    // The chat, the consent question answered yes on the young person's page.
    const { young, conv } = await youngChatAccepted(browser, problems, srv, staff);
    await young.fill('#text', 'a man on InstaPic called dark_angel_77 says he will post my photos at 9pm unless I pay');
    await young.press('#text', 'Enter');
    await staff.locator('li.theirs', { hasText: 'dark_angel_77' }).waitFor();
    await staff.selectOption(`#consent-with-${conv}`, 'police');
    await staff.check(`#consent-${conv}-their_details`);
    await staff.click(`#consent-ask-${conv}`);
    const question = young.locator('li.consent');
    await question.waitFor({ timeout: 15000 });
    await question.locator('button[data-answer="yes"]').click();
    await staff.locator(`#consent-box-${conv} .consent-record`, { hasText: 'Answer: Yes' }).waitFor({ timeout: 15000 });
    // The young person sends the fingerprints of the picture (never the
    // picture): they go into the referral document as a hash list.
    const picture = join(here, '..', 'fixtures', 'pdq', 'images', 'bridge-mods', 'square-128x128.jpg');
    await young.click('#hash-open');
    await young.setInputFiles('#hash-file', picture);
    await young.locator('#hash-status', { hasText: 'only these codes' }).waitFor({ timeout: 60000 });
    await young.click('#hash-send');
    await staff.locator('li.theirs.hashes').waitFor({ timeout: 15000 });
    const pictureSha = createHash('sha256').update(readFileSync(picture)).digest('hex');

    // Escalated, claimed, the keys wrapped to the supervisor by the counsellor's browser.
    await staff.selectOption(`#esc-reason-${conv}`, 'sextortion_threat');
    await staff.selectOption(`#esc-urgency-${conv}`, 'immediate');
    await staff.click(`#escalate-${conv}`);
    await staff.locator(`#esc-status-${conv}`, { hasText: 'waiting for a supervisor' }).waitFor();
    const item = sup.locator('#esc-list li.esc[data-state="open"]');
    await item.waitFor({ timeout: 15000 });
    await item.locator('button', { hasText: 'Claim' }).click();
    await sup.locator('#esc-case h2', { hasText: `Chat ${conv}` }).waitFor();
    await staff.locator('li.system', { hasText: 'Sam Test can now read this chat' }).waitFor({ timeout: 15000 });

    // The young person ends the chat; the counsellor wraps it up (the chat
    // leaves the tabs: the referral reaches them in the side panel).
    await young.click('#end');
    await young.locator('[data-screen="ended"]').waitFor();
    await staff.locator('li.system', { hasText: 'The young person ended the chat' }).waitFor({ timeout: 15000 });
    await staff.selectOption(`#outcome-${conv}`, { index: 1 });
    await staff.click(`#wrapup-go-${conv}`);
    await staff.locator('#no-chats').waitFor({ state: 'visible', timeout: 15000 });

    // The supervisor reads the chat (a fresh code) and builds the bundle.
    await sup.click('#esc-read');
    await confirmReauth(sup, sam);
    await sup.locator('#esc-messages li', { hasText: 'The young person ended the chat' }).waitFor({ timeout: 15000 });
    await sup.locator('#esc-referral').waitFor();
    // The consent record is pre-filled from the chat: the question's seq, answer Yes.
    const qSeq = Number(await sup.locator('#ref-consent').inputValue());
    assert.ok(qSeq > 0, 'the consent question is chosen');
    assert.match(await sup.locator(`#ref-consent option[value="${qSeq}"]`).innerText(), /^Seq \d+: May we share what happened, the other person's usernames and profile links with the police\? — answered Yes$/);
    assert.equal(await sup.locator('#ref-consent-answer').inputValue(), 'yes');
    assert.equal(await sup.locator('#ref-tag-sextortion').isChecked(), true, 'the chat\'s topics are the default tags');
    const saved = [];
    sup.on('download', (d) => saved.push(d));
    await sup.click('#esc-evidence-choose');
    const pick = (text) => sup.locator('#esc-evidence-list label', { hasText: text }).locator('input');
    await pick('dark_angel_77').check();
    await pick('(consent question)').check();
    await pick('(answer to the consent question').check();
    await sup.click('#esc-bundle-go');
    await sup.locator('#esc-evidence-status', { hasText: 'Saved helpline-evidence-conversation-' }).waitFor({ timeout: 30000 });
    await sup.locator('#ref-bundle', { hasText: 'Attached: the bundle built above' }).waitFor();

    // The referral: legal basis, two people reported, summary, the partner's key.
    await sup.selectOption('#ref-legal', 'vital_interests');
    await sup.fill('#ref-legal-text', 'REF-LEGAL-SECRET Children Act 2004 s.11');
    await sup.fill('#ref-p1-espService', 'InstaPic');
    await sup.fill('#ref-p1-screenName', 'dark_angel_77');
    await sup.fill('#ref-p1-profileUrl', 'https://instapic.example/dark_angel_77');
    await sup.fill('#ref-p1-displayName', 'REF-DISPLAY-SECRET');
    await sup.fill('#ref-p1-email', 'dark.angel@mail.example');
    await sup.fill('#ref-p1-phone', '07700900123');
    await sup.fill('#ref-p1-reportedAt', '2025-01-01T21:00');
    await sup.click('#ref-person-add');
    await sup.fill('#ref-p2-espService', 'Snapgram');
    await sup.fill('#ref-p2-screenName', 'dark.angel.alt');
    // Markup in the free text and a reported person's name (catalogue item
    // 39): text in both reviews.
    const summary = markup('REF-SUMMARY-SECRET a 14-year-old is being blackmailed with images; deadline 9pm today');
    await sup.fill('#ref-summary', summary);
    await sup.fill('#ref-p2-displayName', '<b id="injected">REF-P2</b><img src=x onerror="window.__xss=3">');
    await sup.fill('#ref-partner-key', E.b64(partner.publicKey));
    const fp = await sup.locator('#ref-partner-fp').innerText();
    assert.match(fp, /^Fingerprint ([0-9a-f]{4} ){7}[0-9a-f]{4}: compare it/);
    await look(sup, 'console-referral-form', a11y);

    // The child's identity without consent or risk to life: the server
    // refuses and the form says so at the identity question.
    await sup.selectOption('#ref-consent', '');
    await sup.check('#ref-identity-yes');
    await sup.selectOption('#ref-identity-reason', 'consent');
    await sup.fill('#ref-id-name', 'REF-CHILD-NAME');
    await sup.click('#ref-save');
    const refused = sup.locator('#ref-error', { hasText: 'The server refused the referral' });
    await refused.waitFor({ timeout: 15000 });
    assert.match(await refused.innerText(), /field identity_reason\)\. Nothing was saved\.$/);
    assert.ok(await sup.locator('#ref-identity').evaluate((n) => n.classList.contains('invalid')));
    assert.equal(await sup.locator('#ref-list li').count(), 0);
    await look(sup, 'console-referral-refused', a11y);

    // Corrected: the consent record back, identity not included.
    await sup.selectOption('#ref-consent', String(qSeq));
    await sup.check('#ref-identity-no');
    await sup.selectOption('#ref-identity-reason', 'not_needed');
    await sup.click('#ref-save');
    const draft = sup.locator('#ref-list li[data-state="draft"]');
    await draft.waitFor({ timeout: 15000 });
    assert.equal(await sup.locator('#ref-error').innerText(), '');
    const ref = Number(await draft.getAttribute('data-referral'));
    await sup.locator('#ref-status', { hasText: `Referral #${ref} saved as a draft` }).waitFor();
    const row = sql(srv, `SELECT kind, state, legal_basis, consent_asked, consent_answer, consent_seq, identity_included, identity_reason FROM referral WHERE id = ${ref}`);
    assert.equal(row, `police|draft|vital_interests|1|yes|${qSeq}|0|not_needed`);

    // The counsellor: awaiting their approval in the side panel; the review
    // shows the staff copy opened on their device; approval is deliberate.
    await staff.locator(`#ref-awaiting #ref-approve-${ref}`).waitFor({ timeout: 15000 });
    await look(staff, 'console-referral-awaiting', a11y);
    await staff.click(`#ref-approve-${ref}`);
    await staff.locator('#ref-review-title', { hasText: `Referral #${ref} to the police: chat ${conv}, revision 1` }).waitFor();
    await staff.locator('#ref-doc-people', { hasText: 'Screen name or username: dark_angel_77' }).waitFor({ timeout: 15000 });
    assert.match(await staff.locator('#ref-doc-people').innerText(), /Screen name or username: dark\.angel\.alt/);
    assert.match(await staff.locator('#ref-doc-consent').innerText(), new RegExp(`^Asked \\(chat seq ${qSeq}: "May we share .* with the police\\?"\\); answer: Yes`));
    assert.match(await staff.locator('#ref-doc-identity').innerText(), /^Not included \(Not needed for this referral\)$/);
    assert.ok((await staff.locator('#ref-doc-summary').innerText()).includes(summary));
    assert.match(await staff.locator('#ref-doc-people').innerText(), /<b id="injected">REF-P2<\/b><img src=x onerror="window.__xss=3">/);
    await assertInert(staff, 'the counsellor\'s referral review');
    assert.equal(await staff.locator('#ref-review-mismatch').count(), 0);
    await look(staff, 'console-referral-review', a11y);
    await staff.click('#ref-review-approve');
    await staff.locator('#ref-review-error', { hasText: 'Tick the box first' }).waitFor();
    await staff.check('#ref-review-confirm');
    await staff.click('#ref-review-approve');
    await look(staff, 'console-referral-reauth', a11y);
    await confirmReauth(staff, carol);
    await staff.locator('.toast', { hasText: `You approved referral #${ref}` }).waitFor({ timeout: 15000 });
    await staff.locator('#ref-awaiting').waitFor({ state: 'hidden' });
    await sup.locator(`#ref-approvals-${ref}`, { hasText: 'Counsellor approved' }).waitFor({ timeout: 15000 });

    // The supervisor approves: the partner refuses it first (400): failed,
    // with the partner's reason, live.
    await sup.click(`#ref-approve-${ref}`);
    await sup.locator('#ref-doc-people', { hasText: 'dark_angel_77' }).waitFor({ timeout: 15000 });
    assert.ok((await sup.locator('#ref-doc-summary').innerText()).includes(summary));
    await assertInert(sup, 'the supervisor\'s referral review');
    await sup.check('#ref-review-confirm');
    await sup.click('#ref-review-approve');
    await confirmReauth(sup, sam);
    const state = sup.locator(`#ref-state-${ref}`);
    await state.filter({ hasText: 'Delivery failed' }).waitFor({ timeout: 20000 });
    assert.match(await state.innerText(), /1 attempt · last error: the partner refused it \(400\): \{"error":"unknown force code"\}/);
    await look(sup, 'console-referral-failed', a11y);
    rx.mode = 'ok';
    await sup.click(`#ref-retry-${ref}`);
    await state.filter({ hasText: 'Acknowledged by the partner' }).waitFor({ timeout: 20000 });
    assert.match(await state.innerText(), new RegExp(`partner's reference POL-${ref}-1`));
    await look(sup, 'console-referral-acknowledged', a11y);

    // What the partner received: open it with the partner's secret key; the
    // bundle inside verifies offline.
    assert.equal(rx.got.length, 2, 'refused once, delivered once');
    const got = rx.got[1];
    assert.equal(got.url, '/referrals');
    assert.equal(got.headers['idempotency-key'], `helpline-referral-${ref}-r1`);
    for (const s of SECRETS) assert.ok(!got.body.includes(s), `the POST body is ciphertext (${s})`);
    const env = JSON.parse(got.body);
    assert.equal(env.format, 'helpline-referral-delivery-v1');
    assert.equal(env.kind, 'police');
    assert.equal(env.sealed_to, E.b64(partner.publicKey));
    const pkg = JSON.parse(new TextDecoder().decode(sodium.crypto_box_seal_open(E.unb64(env.sealed), partner.publicKey, partner.privateKey)));
    assert.equal(pkg.format, 'helpline-referral-v1');
    const doc = pkg.referral;
    assert.equal(doc.kind, 'police');
    assert.equal(doc.legal_basis, 'vital_interests');
    assert.deepEqual(doc.consent, { asked: true, seq: qSeq, answer: 'yes', answer_seq: doc.consent.answer_seq, question: { share: ['what_happened', 'their_details'], with: 'police' } });
    assert.ok(doc.consent.answer_seq > qSeq);
    assert.deepEqual(doc.child_identity, { included: false, reason: 'not_needed' }, 'the name typed before is not sent');
    assert.deepEqual(doc.personOrUserReported, [
      { espService: 'InstaPic', screenName: 'dark_angel_77', profileUrl: 'https://instapic.example/dark_angel_77', displayName: 'REF-DISPLAY-SECRET',
        email: 'dark.angel@mail.example', phone: '07700900123', reportedAt: new Date('2025-01-01T21:00').toISOString() },
      { espService: 'Snapgram', screenName: 'dark.angel.alt', displayName: '<b id="injected">REF-P2</b><img src=x onerror="window.__xss=3">' },
    ]);
    assert.ok(doc.triage_tags.includes('sextortion'));
    assert.equal(doc.hash_lists.length, 1, 'the chat\'s hash report, as a hash list');
    assert.equal(doc.hash_lists[0].format, 'helpline-hash-list-v1');
    assert.deepEqual(doc.hash_lists[0].hashes.map((h) => h.hash_type), ['sha256', 'md5', 'pdq']);
    assert.equal(doc.hash_lists[0].hashes[0].value, pictureSha);
    assert.equal(doc.bundle_digest, E.hex(E.unb64(env.bundle_digest)));
    const bundleFile = join(srv.dir, 'partner-bundle.json');
    writeFileSync(bundleFile, pkg.bundle);
    const verdict = spawnSync(HELPLINECTL, ['verify-bundle', bundleFile, '--root', join(srv.dir, 'root-key.json')], { encoding: 'utf8' });
    assert.equal(verdict.status, 0, verdict.stdout + verdict.stderr);
    assert.match(verdict.stdout, /Verdict: VERIFIED/);
    assert.match(verdict.stdout, /dark_angel_77/);
    // The bundle the supervisor saved from the evidence section is the one sent.
    const savedJson = saved.find((d) => d.suggestedFilename().endsWith('.json'));
    const savedFile = join(srv.dir, 'saved-bundle.json');
    await savedJson.saveAs(savedFile);
    assert.equal(readFileSync(savedFile, 'utf8'), pkg.bundle);

    // The download is the envelope the partner got.
    const before = saved.length;
    await sup.click(`#ref-download-${ref}`);
    for (let i = 0; i < 50 && saved.length === before; i++) await new Promise((r) => setTimeout(r, 100));
    const dl = saved[before];
    assert.equal(dl.suggestedFilename(), `helpline-referral-${ref}.json`);
    const dlFile = join(srv.dir, 'download.json');
    await dl.saveAs(dlFile);
    assert.deepEqual(JSON.parse(readFileSync(dlFile, 'utf8')), env);

    assert.deepEqual(problems, []);
    assert.deepEqual(a11y, [], 'no serious accessibility problem on any referral screen');

    // The audit chain has the steps and verifies; nothing readable stored.
    const actions = sql(srv, "SELECT DISTINCT action FROM audit WHERE action LIKE 'referral.%'").split('\n');
    for (const a of ['referral.create', 'referral.refused', 'referral.approve', 'referral.approved', 'referral.send', 'referral.failed', 'referral.retry', 'referral.acknowledged', 'referral.download'])
      assert.ok(actions.includes(a), `${a} in ${actions}`);
    execFileSync(HELPLINECTL, ['--db', join(srv.dir, 'helpline.db'), 'audit', 'verify'], { stdio: 'ignore' });
    execFileSync('sqlite3', [join(srv.dir, 'helpline.db'), 'PRAGMA wal_checkpoint(TRUNCATE);']);
    const bytes = storedBytes(srv).toString('latin1');
    for (const s of SECRETS) assert.ok(!bytes.includes(s), `no plaintext "${s}" stored or logged`);
  } catch (e) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(p, `console-referral-failure-${i}`).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    await srv.stop();
    rx.server.close();
  }
});
