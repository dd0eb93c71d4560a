// console-escalation.test.mjs: "escalate to a supervisor who joins", in
// Chromium against the real daemon (chat.envelopes = strict), with three
// windows: the young person's page, a counsellor's console and a
// supervisor's console. The counsellor escalates a live chat from the chat's
// tools with a reason, an urgency and a sealed note; the supervisor (not on
// shift, so every logged-in supervisor is alerted) sees the alert banner in
// another view, opens Escalations, claims it; the counsellor's browser
// checks the supervisor's device certificate and wraps the chat's keys to
// it by itself; the supervisor re-enters an authenticator code, reads the
// history and the counsellor's note (decrypted on the supervisor's device),
// including a consent question the counsellor asked and the young person
// answered on their page,
// joins the live chat silently (the counsellor is told, the young person is
// not) and sees the young person's next message live, then records a police
// referral decision with sealed reasons, which the counsellor sees; after
// the chat ends the supervisor builds an evidence bundle in the console,
// which helplinectl verify-bundle accepts. Every
// screen is scanned with axe-core; the database holds none of the text; the
// audit chain has every step and verifies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { organisation } from './org.mjs';
import { awaitStepMargin, totp, stepNow, HELPLINECTL } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { consoleDaemon, youngChatAccepted, look, storedBytes, staffConsole, markup, assertInert } from './console.mjs';
import { shot } from './a11y.mjs';
import * as E from '../../client-web/js/e2e.js';

const skip = noBrowser;
const sql = (srv, q) => execFileSync('sqlite3', [join(srv.dir, 'helpline.db'), q], { encoding: 'utf8' }).trim();

test('a counsellor escalates a live chat to a supervisor who claims it, reads it, joins it and decides', { skip, timeout: 300000 }, async () => {
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = both\noffer_timeout = 60\n[escalation]\nrealert = 5\n');
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  const a11y = [];
  try {
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'escadmin');

    // The counsellor: enrolled, device certified, on shift.
    const { page: staff, acct: carol } = await staffConsole(browser, problems, srv, url, org, 'carol', ['counsellor'], { label: 'counsellor', shift: true });

    // The supervisor: a supervisor device; not on shift, so alerted as every
    // logged-in supervisor is when none is on shift; in Queue health.
    await awaitStepMargin(25);
    const { page: sup, acct: sam } = await staffConsole(browser, problems, srv, url, org, 'sam', ['supervisor'], { label: 'supervisor' });
    await sup.locator('nav#views button[data-view="escalations"]').waitFor();
    await sup.click('nav#views button[data-view="queue"]');
    await sup.locator('#qh-status').waitFor();

    // A young person chats with the counsellor.
    const { young, conv } = await youngChatAccepted(browser, problems, srv, staff);
    await young.fill('#text', 'he says he will post my photos at 9pm, his snap is dark_angel_77');
    await young.press('#text', 'Enter');
    await staff.locator('li.theirs', { hasText: 'dark_angel_77' }).waitFor();
    // Markup typed by the young person (catalogue item 39), read later in
    // the supervisor's case view.
    const youngMarkup = markup('YOUNG-MARKUP');
    await young.fill('#text', youngMarkup);
    await young.press('#text', 'Enter');
    await staff.locator('li.theirs', { hasText: 'YOUNG-MARKUP' }).waitFor();

    // A consent question: the young person sees it in plain words with three
    // answers, and answers; the counsellor sees the answer and the record.
    await staff.selectOption(`#consent-with-${conv}`, 'police');
    await staff.check(`#consent-${conv}-their_details`);
    await staff.click(`#consent-ask-${conv}`);
    const question = young.locator('li.consent');
    await question.waitFor({ timeout: 15000 });
    assert.equal(await question.locator('.consent-ask').innerText(), 'Is it OK for us to share what has happened to you and the usernames and profile links of the person doing this with the police?');
    await look(young, 'young-consent', a11y);
    await question.locator('button[data-answer="yes"]').click();
    await question.locator('.consent-answered', { hasText: 'You answered: Yes, that is OK' }).waitFor();
    await staff.locator('li.theirs.consent', { hasText: 'Answer to the consent question "May we share what happened, the other person\'s usernames and profile links with the police?": Yes' }).waitFor({ timeout: 15000 });
    await staff.locator(`#consent-box-${conv} .consent-record`, { hasText: 'Answer: Yes' }).waitFor();

    // Escalate from the chat's tools: a reason is required.
    await staff.click(`#escalate-${conv}`);
    await staff.locator('.toast.error', { hasText: 'Choose a reason' }).waitFor();
    await staff.selectOption(`#esc-reason-${conv}`, 'sextortion_threat');
    await staff.selectOption(`#esc-urgency-${conv}`, 'immediate');
    const noteMarkup = markup('ESC-NOTE-SECRET deadline 9pm tonight, threat to post images');
    await staff.fill(`#esc-note-${conv}`, noteMarkup);
    await look(staff, 'console-escalate', a11y);
    await staff.click(`#escalate-${conv}`);
    await staff.locator(`#esc-status-${conv}`, { hasText: 'waiting for a supervisor' }).waitFor();
    await staff.locator('li.system', { hasText: 'You escalated this chat' }).waitFor();

    // The supervisor, in another view, is alerted and goes to Escalations.
    await sup.locator('#banner:not([hidden])', { hasText: 'Escalation raised' }).waitFor({ timeout: 15000 });
    await shot(sup, 'console-escalation-alert');
    await sup.click('#banner-escalations');
    const item = sup.locator('#esc-list li.esc[data-state="open"]');
    await item.waitFor();
    assert.match(await item.innerText(), /Sextortion with an active threat/);
    assert.match(await item.innerText(), /Immediate/);
    assert.match(await item.innerText(), /raised by Carol Test/);
    assert.match(await item.locator('.timer').innerText(), /^\d+ (s|min)/);
    assert.ok(await item.evaluate((n) => n.classList.contains('urgent')));
    await look(sup, 'console-escalations', a11y);
    // Unclaimed and immediate: it re-alerts (escalation.realert = 5 s), live.
    const firstTimer = await item.locator('.timer').innerText();
    await sup.waitForFunction((t) => document.querySelector('#esc-list li.esc .timer')?.textContent !== t, firstTimer);

    // Claim: the case opens; the counsellor's browser wraps the keys to the
    // supervisor's verified device by itself.
    await item.locator('button', { hasText: 'Claim' }).click();
    await sup.locator('#esc-case h2', { hasText: `Chat ${conv}` }).waitFor();
    await sup.locator('#esc-list li.esc[data-state="claimed"]', { hasText: 'by you' }).waitFor();
    await staff.locator(`#esc-status-${conv}`, { hasText: 'claimed by Sam Test' }).waitFor({ timeout: 15000 });
    await staff.locator('li.system', { hasText: 'Sam Test can now read this chat' }).waitFor({ timeout: 15000 });

    // Reading asks for a fresh code; cancelling reads nothing.
    await sup.click('#esc-read');
    await sup.locator('dialog#reauth[open]').waitFor();
    await look(sup, 'console-escalation-reauth', a11y);
    await sup.click('#reauth-cancel');
    assert.equal(await sup.locator('#esc-messages li').count(), 0);
    await sup.click('#esc-read');
    await sup.locator('dialog#reauth[open]').waitFor();
    await sup.fill('#reauth-totp', totp(sam.secret, stepNow() + 1));
    await sup.click('#reauth-go');
    await sup.locator('#esc-messages li.theirs', { hasText: 'dark_angel_77' }).waitFor({ timeout: 15000 });
    await sup.locator('#esc-note-text', { hasText: 'ESC-NOTE-SECRET' }).waitFor();
    await sup.locator('#esc-messages li', { hasText: '(consent question) May we share what happened' }).waitFor();
    await sup.locator('#esc-messages li.theirs', { hasText: /answer to the consent question of seq \d+\) Yes/ }).waitFor();
    // The young person's markup and the counsellor's note are text here.
    assert.ok((await sup.locator('#esc-messages li.theirs', { hasText: 'YOUNG-MARKUP' }).innerText()).includes(youngMarkup));
    assert.ok((await sup.locator('#esc-note-text').innerText()).includes(noteMarkup));
    await assertInert(sup, 'the supervisor\'s case view');
    await look(sup, 'console-escalation-case', a11y);

    // Join silently: the counsellor is told, the young person is not; the
    // young person's next message reaches the supervisor live.
    await sup.click('#esc-join');
    await sup.locator('#esc-join', { hasText: 'Joined' }).waitFor({ timeout: 15000 });
    await staff.locator('li.system', { hasText: 'A supervisor joined the chat' }).waitFor({ timeout: 15000 });
    await young.fill('#text', 'he just messaged again: 2 hours left');
    await young.press('#text', 'Enter');
    await sup.locator('#esc-messages li.theirs', { hasText: '2 hours left' }).waitFor({ timeout: 15000 });
    await staff.locator('li.theirs', { hasText: '2 hours left' }).waitFor();
    await staff.fill(`#compose-${conv}`, 'I am getting help from my supervisor right now.');
    await staff.press(`#compose-${conv}`, 'Enter');
    await sup.locator('#esc-messages li.mine', { hasText: 'getting help from my supervisor' }).waitFor({ timeout: 15000 });
    await young.locator('li.theirs', { hasText: 'getting help from my supervisor' }).waitFor();
    assert.ok(!/supervisor joined|Sam/i.test(await young.locator('#messages, main').first().innerText()), 'the young person is not told');

    // The decision, with sealed reasons; the counsellor sees it.
    await sup.click('#esc-decide-go'); // no decision chosen: the form asks for one, nothing is sent
    assert.equal(await sup.locator('#esc-d-police_referral').evaluate((n) => n.validity.valueMissing), true);
    assert.equal(await sup.locator('#esc-state').innerText(), 'Claimed');
    await sup.check('#esc-d-police_referral');
    await sup.fill('#esc-reasons', 'DECISION-SECRET active threat with a deadline, images of a 14-year-old');
    await look(sup, 'console-escalation-decide', a11y);
    await sup.click('#esc-decide-go');
    await sup.locator('#esc-state', { hasText: 'Decided: Police referral' }).waitFor({ timeout: 15000 });
    await sup.locator('#esc-reasons-text', { hasText: 'DECISION-SECRET' }).waitFor();
    await staff.locator('li.system', { hasText: 'The escalation was decided: Police referral' }).waitFor({ timeout: 15000 });
    await look(sup, 'console-escalation-decided', a11y);

    // The young person ends the chat (a checkpoint now covers all of it).
    // The supervisor reads it again, chooses the threat and the consent
    // record, builds the evidence bundle, has the service countersign it and
    // saves it with its summary; helplinectl verify-bundle accepts the file.
    await young.click('#end');
    await young.locator('[data-screen="ended"]').waitFor();
    await staff.locator('li.system', { hasText: 'The young person ended the chat' }).waitFor({ timeout: 15000 });
    const saved = [];
    sup.on('download', (d) => saved.push(d));
    await sup.click('#esc-read');
    await sup.locator('#esc-messages li', { hasText: 'The young person ended the chat' }).waitFor({ timeout: 15000 });
    await sup.click('#esc-evidence-choose');
    const pick = (text) => sup.locator('#esc-evidence-list label', { hasText: text }).locator('input');
    await pick('dark_angel_77').check();
    await pick('(consent question)').check();
    await pick('(answer to the consent question').check();
    await look(sup, 'console-evidence', a11y);
    await sup.click('#esc-bundle-go');
    await sup.locator('#esc-evidence-status', { hasText: 'Saved helpline-evidence-conversation-' }).waitFor({ timeout: 30000 });
    for (let i = 0; i < 50 && saved.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(saved.map((d) => d.suggestedFilename().replace(/-[0-9a-f]{12}\./, '.')).sort(), [`helpline-evidence-conversation-${conv}.html`, `helpline-evidence-conversation-${conv}.json`]);
    const bundleFile = join(srv.dir, 'console-bundle.json');
    await saved.find((d) => d.suggestedFilename().endsWith('.json')).saveAs(bundleFile);
    const summaryFile = join(srv.dir, 'console-bundle.html');
    await saved.find((d) => d.suggestedFilename().endsWith('.html')).saveAs(summaryFile);
    const verdict = spawnSync(HELPLINECTL, ['verify-bundle', bundleFile, '--root', join(srv.dir, 'root-key.json')], { encoding: 'utf8' });
    assert.equal(verdict.status, 0, verdict.stdout + verdict.stderr);
    assert.match(verdict.stdout, /Verdict: VERIFIED/);
    assert.match(verdict.stdout, /dark_angel_77/);
    assert.match(verdict.stdout, /consent question: "\{"share":\["what_happened","their_details"\],"with":"police"\}"/);
    assert.match(verdict.stdout, /consent answer: "\{"answer":"yes","question":\d+\}"/);
    const file = readFileSync(bundleFile, 'utf8');
    assert.ok(!file.includes('2 hours left'), 'a message not chosen is not in the file');
    assert.match(readFileSync(summaryFile, 'utf8'), /dark_angel_77/);

    await assertInert(sup, 'the supervisor\'s console at the end');
    await assertInert(staff, 'the counsellor\'s console at the end');
    assert.deepEqual(problems, []);
    assert.deepEqual(a11y, [], 'no serious accessibility problem on any escalation screen');

    // The audit chain has each step, and verifies.
    const actions = sql(srv, "SELECT action FROM audit WHERE action LIKE 'escalation.%' OR action = 'chat.join' ORDER BY seq").split('\n');
    for (const want of ['escalation.raise', 'escalation.claim', 'escalation.wrap', 'escalation.keys', 'escalation.read', 'chat.join', 'escalation.decide']) {
      assert.ok(actions.includes(want), `${want} in ${actions}`);
    }
    execFileSync(HELPLINECTL, ['--db', join(srv.dir, 'helpline.db'), 'audit', 'verify'], { stdio: 'ignore' });
    // Nothing readable reached the server.
    const bytes = storedBytes(srv).toString('latin1');
    for (const secret of ['dark_angel_77', 'ESC-NOTE-SECRET', 'YOUNG-MARKUP', 'DECISION-SECRET', '2 hours left', 'getting help from my supervisor']) assert.ok(!bytes.includes(secret), `no plaintext "${secret}" stored`);
    assert.ok(carol.secret);
  } catch (e) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(p, `console-escalation-failure-${i}`).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    await srv.stop();
  }
});
