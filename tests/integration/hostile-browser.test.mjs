// hostile-browser.test.mjs: hostile-input catalogue item "HTML/script in any
// text field → shown as text" (docs/security.md), in Chromium against the
// real daemon with end-to-end encryption: markup typed by the other side
// (young person → console, counsellor → young page), in a staff note and in
// a member of staff's display name is rendered as text — the characters
// visible, no element created, no script run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { organisation } from './org.mjs';
import { ctl, awaitStepMargin } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { consoleDaemon, enrolAndLogin, setUpDevice, youngChatAccepted, newPage, startShift, markup, assertInert } from './console.mjs';


test('HTML and script typed by the other side, in a note or a staff name, is shown as text in the console and the young page', { skip: noBrowser, timeout: 240000 }, async () => {
  const { srv, link, url } = await consoleDaemon('[queue]\nrouting = both\noffer_timeout = 60\n');
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  try {
    await awaitStepMargin(25);
    const org = await organisation(srv, track, 'xssadmin');
    const staffName = `Hana <img src=x onerror="window.__xss=1"><b id="injected">B</b>`;
    const out = ctl(srv, 'create-staff', 'hana', '--role', 'counsellor', '--name', staffName);
    const acct = { username: 'hana', code: /[A-Z2-7]{4}(?:-[A-Z2-7]{4}){4}/.exec(out)[0] };
    const staff = await newPage(browser, problems, 'counsellor');
    await enrolAndLogin(staff, url, acct);
    await setUpDevice(staff, srv, org, 'hana');
    await startShift(staff);
    const { young, conv } = await youngChatAccepted(browser, problems, srv, staff);

    // Young person → console.
    const fromYoung = markup('from the young person');
    await young.fill('#text', fromYoung);
    await young.press('#text', 'Enter');
    const theirs = staff.locator('li.theirs', { hasText: 'from the young person' });
    await theirs.waitFor();
    assert.ok((await theirs.innerText()).includes(fromYoung), await theirs.innerText());
    await assertInert(staff, 'console after the young person\'s markup');

    // Console → young page.
    const fromStaff = markup('from the counsellor');
    await staff.fill(`#compose-${conv}`, fromStaff);
    await staff.press(`#compose-${conv}`, 'Enter');
    const mine = young.locator('li.theirs', { hasText: 'from the counsellor' });
    await mine.waitFor();
    assert.ok((await mine.innerText()).includes(fromStaff), await mine.innerText());
    await assertInert(young, 'young page after the counsellor\'s markup');
    await assertInert(staff, 'console after sending markup');

    // An encrypted staff note.
    const note = markup('a note');
    await staff.fill(`#note-${conv}`, note);
    await staff.click(`#note-save-${conv}`);
    const li = staff.locator('li.note', { hasText: 'a note' });
    await li.waitFor();
    assert.ok((await li.innerText()).includes(note), await li.innerText());
    await assertInert(staff, 'console after a note with markup');

    // The display name, wherever the console shows it.
    const body = await staff.locator('body').innerText();
    assert.ok(body.includes('Hana <img src=x'), 'the display name is shown as typed');
    await staff.reload();
    await staff.locator('li.theirs', { hasText: 'from the young person' }).waitFor({ timeout: 30000 }).catch(() => {});
    await assertInert(staff, 'console after a reload');
    await assertInert(young, 'young page at the end');
    assert.deepEqual(problems, []);
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    link.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    srv.cleanup();
  }
});
