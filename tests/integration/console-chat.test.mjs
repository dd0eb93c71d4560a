// console-chat.test.mjs: the counsellor's console (/console) in Chromium
// against the real daemon, with the young person's page (/) in another
// browser window, as a helpline would use them:
// 1. a counsellor enrols (QR code / key read off the page), logs in, sets up
//    the browser's device keys, is certified, starts a shift, accepts an
//    offer and chats: message states, typing, a canned response, a safety
//    card, tags, an encrypted note; the counsellor's network drops and comes
//    back (nothing lost, the draft kept); the console is reloaded mid-chat
//    (resume, unlock, the history back); the chat ends and is wrapped up.
//    The database holds no plaintext of messages or notes.
// 2. an offer nobody answers times out (the counsellor is set away, the
//    chat goes to a colleague), and a transfer with a handover note to a
//    colleague who reads the history and carries on the chat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { organisation } from './org.mjs';
import { awaitStepMargin } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { consoleDaemon, newAccount, enrolAndLogin, setUpDevice, youngChatAccepted, newPage, look, storedBytes, startShift } from './console.mjs';
import { shot } from './a11y.mjs';

const skip = noBrowser;

test('a counsellor enrols, is certified, takes an offer and chats from the console, through a network drop and a reload', { skip, timeout: 240000 }, async () => {
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = both\noffer_timeout = 60\n');
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  try {
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'chatadmin');
    const acct = newAccount(srv, 'alice', ['counsellor']);
    const staff = await newPage(browser, problems, 'console');
    const a11y = [];
    await staff.goto(`${url}/console`);
    await staff.locator('#login-go').waitFor();
    await look(staff, 'console-login', a11y);
    await enrolAndLogin(staff, url, acct, async (name) => look(staff, name, a11y));
    await look(staff, 'console-device-setup', a11y);
    await setUpDevice(staff, srv, org, 'alice');
    await startShift(staff);
    assert.equal(await staff.locator('#presence').inputValue(), 'available');

    // A young person asks for help; the console is offered the chat.
    const { young, conv } = await youngChatAccepted(browser, problems, srv, staff, {
      onOffer: async (offer) => {
        assert.match(await offer.innerText(), /Sextortion/);
        assert.match(await offer.innerText(), /13–15/);
        assert.match(await offer.locator('.timer').innerText(), /^\d+ s$/);
        assert.match(await staff.title(), /offered/);
        await look(staff, 'console-offer', a11y);
      },
    });

    // Both ways, with states and typing.
    await young.fill('#text', 'someone has my pictures and wants money by tonight');
    await young.press('#text', 'Enter');
    await staff.locator('li.theirs', { hasText: 'wants money by tonight' }).waitFor();
    await young.locator('li.mine .status', { hasText: 'Read' }).waitFor({ timeout: 10000 });
    await new Promise((r) => setTimeout(r, 3100)); // the page sends typing at most every 3 s
    await young.locator('#text').pressSequentially('ok');
    await staff.locator('.typing', { hasText: 'typing' }).waitFor();
    await young.fill('#text', '');
    // A canned response found with "/" and chosen with the keyboard.
    await staff.locator(`#compose-${conv}`).pressSequentially('/not to bl');
    await staff.locator(`#canned-${conv} li[aria-selected="true"]`, { hasText: 'not your fault' }).waitFor();
    await staff.press(`#compose-${conv}`, 'Enter');
    assert.match(await staff.locator(`#compose-${conv}`).inputValue(), /not your fault/);
    await staff.press(`#compose-${conv}`, 'Enter');
    await young.locator('li.theirs', { hasText: 'not your fault' }).waitFor();
    await staff.locator('li.mine', { hasText: 'not your fault' }).locator('.status', { hasText: /Delivered|Read/ }).waitFor();
    await staff.click(`#card-${conv}-sextortion`);
    await young.locator('li.card[data-card="sextortion"]').waitFor();
    // Tags and a note: internal, encrypted, never shown to the young person.
    await staff.check(`#tag-${conv}-grooming`);
    await staff.click(`#tags-save-${conv}`);
    await staff.locator('li.system', { hasText: 'Tags set' }).waitFor().catch(() => {});
    await staff.fill(`#note-${conv}`, 'NOTE-SECRET deadline 9pm, instagram user darkstar_99');
    await staff.click(`#note-save-${conv}`);
    await staff.locator('li.note', { hasText: 'NOTE-SECRET' }).waitFor();
    await staff.locator(`#compose-${conv}`).pressSequentially('/');
    await look(staff, 'console-canned', a11y);
    await staff.fill(`#compose-${conv}`, '');
    await look(staff, 'console-chat', a11y);
    await staff.evaluate(() => document.activeElement.blur());
    await staff.keyboard.press('?');
    await staff.locator('dialog#shortcuts[open]').waitFor();
    await look(staff, 'console-shortcuts', a11y);
    await staff.keyboard.press('Escape');

    // The counsellor's network drops: a banner; the young person writes
    // meanwhile; the draft survives; the message arrives after the drop.
    await staff.fill(`#compose-${conv}`, 'a draft typed while offline');
    link.cut();
    await staff.locator('#banner:not([hidden])', { hasText: 'Reconnecting' }).waitFor({ timeout: 20000 });
    await young.fill('#text', 'are you still there?');
    await young.press('#text', 'Enter');
    await young.locator('li.mine', { hasText: 'still there' }).locator('.status', { hasText: 'Sent' }).waitFor();
    await shot(staff, 'console-offline');
    link.restore();
    await staff.locator('li.theirs', { hasText: 'are you still there?' }).waitFor({ timeout: 30000 });
    await staff.locator('#banner').waitFor({ state: 'hidden', timeout: 20000 });
    assert.equal(await staff.locator(`#compose-${conv}`).inputValue(), 'a draft typed while offline');
    await staff.fill(`#compose-${conv}`, 'Yes, I am here. You did the right thing telling us.');
    await staff.press(`#compose-${conv}`, 'Enter');
    await young.locator('li.theirs', { hasText: 'Yes, I am here' }).waitFor();
    assert.equal(await staff.locator('li.theirs', { hasText: 'are you still there?' }).count(), 1, 'shown once');

    // A reload mid-chat: the token resumes, the passphrase unlocks, the
    // chat and its history (decrypted from the server's copy) come back.
    await staff.reload();
    await staff.fill('#device-pass', 'device passphrase 1');
    await staff.click('#device-go');
    await staff.locator('nav#views').waitFor({ timeout: 30000 });
    await staff.locator('li.theirs', { hasText: 'wants money by tonight' }).waitFor({ timeout: 15000 });
    await staff.locator('li.mine', { hasText: 'Yes, I am here' }).waitFor();
    await staff.locator('li.note', { hasText: 'NOTE-SECRET' }).waitFor();
    assert.equal(await staff.locator('li.theirs', { hasText: 'are you still there?' }).count(), 1);
    await young.fill('#text', 'thank you');
    await young.press('#text', 'Enter');
    await staff.locator('li.theirs', { hasText: 'thank you' }).waitFor({ timeout: 15000 });
    await staff.fill(`#compose-${conv}`, 'Message after the reload.');
    await staff.press(`#compose-${conv}`, 'Enter');
    await young.locator('li.theirs', { hasText: 'Message after the reload.' }).waitFor({ timeout: 15000 });

    // End and wrap up.
    await staff.click(`#end-${conv}`);
    await young.locator('[data-screen="ended"]').waitFor();
    await staff.locator(`#wrapup-${conv}`).waitFor();
    await staff.selectOption(`#outcome-${conv}`, 'report_remove');
    await staff.fill(`#wrapup-notes-${conv}`, 'WRAPUP-SECRET explained Report Remove');
    await look(staff, 'console-wrapup', a11y);
    await staff.click(`#wrapup-go-${conv}`);
    await staff.locator(`#tab-${conv}`).waitFor({ state: 'detached' });
    assert.deepEqual(problems, []);
    assert.deepEqual(a11y, [], 'no serious accessibility problem on any console screen');

    // Nothing readable reached the server.
    const bytes = storedBytes(srv).toString('latin1');
    for (const secret of ['wants money by tonight', 'not your fault', 'NOTE-SECRET', 'darkstar_99', 'WRAPUP-SECRET', 'a draft typed']) assert.ok(!bytes.includes(secret), `no plaintext "${secret}" stored`);
  } catch (e) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(p, `console-failure-${i}`).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    await srv.stop();
  }
});

test('an unanswered offer times out to a colleague; a chat is handed over with an encrypted note and carries on', { skip, timeout: 240000 }, async () => {
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = offer\noffer_timeout = 5\n');
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  try {
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'offeradmin');
    const pages = {};
    for (const name of ['bea', 'cal']) {
      const acct = newAccount(srv, name, ['counsellor']);
      const p = pages[name] = await newPage(browser, problems, name);
      await enrolAndLogin(p, url, acct);
      await setUpDevice(p, srv, org, name);
      await startShift(p);
    }
    const young = await newPage(browser, problems, 'young');
    await young.goto(`${srv.url}/`);
    await young.click('#start');
    await young.click('#skip');
    await young.locator('[data-screen="waiting"]').waitFor();
    // Whoever is offered it first lets it lapse; it goes to the other.
    const first = await Promise.race(Object.entries(pages).map(([n, p]) => p.locator('.offer').waitFor({ timeout: 15000 }).then(() => n)));
    const second = first === 'bea' ? 'cal' : 'bea';
    const A = pages[first], B = pages[second];
    await A.locator('.offer').waitFor({ state: 'detached', timeout: 15000 });
    await A.locator('.toast', { hasText: 'timed out' }).waitFor();
    assert.equal(await A.locator('#presence').inputValue(), 'away', 'a lapsed offer sets the counsellor away');
    await B.locator('.offer').waitFor({ timeout: 15000 });
    await shot(B, 'console-offer-second');
    await B.click('.offer button:has-text("Accept")');
    await young.locator('[data-screen="chat"]').waitFor();
    const conv = await B.locator('.chat').getAttribute('data-conversation');
    await B.locator(`#secured-${conv}`, { hasText: 'End-to-end encrypted' }).waitFor({ timeout: 15000 });
    await young.fill('#text', 'HISTORY-1 I need help');
    await young.press('#text', 'Enter');
    await B.locator('li.theirs', { hasText: 'HISTORY-1' }).waitFor();
    await B.fill(`#compose-${conv}`, 'I am here for you.');
    await B.press(`#compose-${conv}`, 'Enter');
    await young.locator('li.theirs', { hasText: 'I am here for you.' }).waitFor();

    // B hands the chat to A (back to available) with a handover note.
    await A.selectOption('#presence', 'available');
    await B.locator(`#transfer-to-${conv}`).focus();
    await B.locator(`#transfer-to-${conv} option:not([disabled])`, { hasText: first === 'bea' ? 'Bea' : 'Cal' }).waitFor({ state: 'attached' });
    const value = await B.locator(`#transfer-to-${conv} option`, { hasText: first === 'bea' ? 'Bea' : 'Cal' }).getAttribute('value');
    await B.selectOption(`#transfer-to-${conv}`, value);
    await B.fill(`#handover-${conv}`, 'HANDOVER-SECRET she is 14, the threat is real');
    await B.click(`#transfer-${conv}`);
    await B.locator(`#tab-${conv}`).waitFor({ state: 'detached' });
    await A.locator(`#tab-${conv}`).waitFor({ timeout: 15000 });
    await A.click(`#tab-${conv}`);
    await A.locator('li.note', { hasText: 'HANDOVER-SECRET' }).waitFor({ timeout: 15000 });
    await A.locator('li.theirs', { hasText: 'HISTORY-1' }).waitFor();
    await young.locator('li.system').filter({ hasText: /another|someone else|new counsellor|transferred|handed/i }).first().waitFor();
    await shot(A, 'console-transferred');
    // The young person's page checks the new counsellor's device and carries on.
    await young.fill('#text', 'AFTER-1 hello again');
    await young.press('#text', 'Enter');
    await A.locator('li.theirs', { hasText: 'AFTER-1' }).waitFor({ timeout: 20000 });
    await A.fill(`#compose-${conv}`, 'Hi, I have read what you told my colleague.');
    await A.press(`#compose-${conv}`, 'Enter');
    await young.locator('li.theirs', { hasText: 'I have read what you told' }).waitFor({ timeout: 15000 });
    assert.deepEqual(problems, []);
    const bytes = storedBytes(srv).toString('latin1');
    for (const secret of ['HISTORY-1', 'HANDOVER-SECRET', 'AFTER-1']) assert.ok(!bytes.includes(secret), `no plaintext "${secret}" stored`);
  } catch (e) {
    for (const [i, p] of browser.contexts().flatMap((c) => c.pages()).entries()) await shot(p, `console-failure2-${i}`).catch(() => {});
    throw e;
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    await srv.stop();
  }
});
