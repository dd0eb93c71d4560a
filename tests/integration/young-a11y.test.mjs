// young-a11y.test.mjs: the young person's page (/) against WCAG 2.2 AA in
// Chromium, on every screen, at 1280 and at 320 CSS pixels wide: an
// axe-core scan with no serious or critical violation, nothing wider than
// the viewport, every control at least 24x24, focus visible and not hidden
// under the sticky header or the fixed message box when tabbing through,
// Quick exit on screen wherever the page is scrolled, and nothing moving
// under prefers-reduced-motion. The screens: welcome (English, Spanish,
// closed), help, intake with chips chosen, waiting with a message typed,
// the chat (messages both ways, a safety card, receipts, a return code),
// ended with feedback, leave a message, and read a reply. Screenshots of
// each go to $HL_SCREENSHOTS (default <tmp>/helpline-screenshots).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './harness.mjs';
import { initOrg, organisation, counsellor, staffClient } from './org.mjs';
import { ctl, enrolled, awaitStepMargin } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { axeScan, shot, overflow, targetSizes, focusCheck, reducedMotion, scanContext } from './a11y.mjs';
import { SecureStaff, inboxSealReply } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';

const skip = noBrowser;
const VIEWPORTS = [{ width: 1280, height: 800 }, { width: 320, height: 640 }];

// Only loopback: anything else (the Quick exit target, help links) is answered locally.
async function isolate(page) {
  await page.route((url) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(url.href), (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Weather</title><p>Weather</p>' }));
}

async function daemon(extra = '', before = () => {}) {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-a11y-'));
  initOrg(dir);
  before(dir);
  const ini = join(dir, 'a11y.ini');
  writeFileSync(ini, `[queue]\nrouting = pull\n${extra}`);
  return startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
}

// Quick exit is on screen and not covered, at the top and scrolled to the bottom.
async function exitOnScreen(page, label) {
  const out = [];
  for (const where of ['top', 'bottom']) {
    const r = await page.evaluate((where) => {
      window.scrollTo(0, where === 'top' ? 0 : document.documentElement.scrollHeight);
      const e = document.getElementById('exit');
      const b = e.getBoundingClientRect();
      const inside = b.top >= 0 && b.left >= 0 && b.bottom <= innerHeight && b.right <= document.documentElement.clientWidth;
      const at = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
      return { inside, top: at === e || e.contains(at) };
    }, where);
    if (!r.inside || !r.top) out.push(`${label}: Quick exit not fully on screen (${where}: inside=${r.inside}, uncovered=${r.top})`);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  return out;
}

// Every check on the screen the page shows now, at each width; screenshots.
async function screen(page, name, problems) {
  const shown = await page.locator('#app').getAttribute('data-screen');
  for (const vp of VIEWPORTS) {
    await page.setViewportSize(vp);
    await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const label = `${name} (${shown}) @${vp.width}px`;
    await shot(page, `young-${name}-${vp.width}`);
    problems.push(...await axeScan(page, label));
    problems.push(...await overflow(page, label));
    problems.push(...await targetSizes(page, label));
    problems.push(...await exitOnScreen(page, label));
    const f = await focusCheck(page, label);
    problems.push(...f.problems);
    if (f.reached < 3) problems.push(`${label}: only ${f.reached} controls reached with Tab`);
  }
  problems.push(...await reducedMotion(page, name));
  await page.setViewportSize(VIEWPORTS[0]);
}

async function until(fn, ms = 15000) {
  const end = Date.now() + ms;
  while (!fn() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.ok(fn(), 'timed out');
}

test('every screen of a chat is accessible, at 1280 and 320 px', { skip, timeout: 240000 }, async () => {
  const srv = await daemon();
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  const problems = [];
  try {
    const o = await organisation(srv, track, 'a11yadmin');
    const A = await counsellor(srv, o, 'a11yalice', 'counsellor', track);
    const sA = new SecureStaff({ client: A.client, device: A.device, rootPk: o.rootPk });
    const got = [];
    sA.on('message', (m) => got.push(m));
    const context = await scanContext(browser, { viewport: VIEWPORTS[0] });
    const page = await context.newPage();
    await isolate(page);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${srv.url}/`);
    await page.locator('#start').waitFor();
    await screen(page, 'welcome-en', problems);

    await page.selectOption('#lang', 'es');
    await page.locator('#start', { hasText: 'Empezar un chat' }).waitFor();
    assert.equal(await page.getAttribute('html', 'lang'), 'es');
    assert.equal((await page.locator('#exit').innerText()).trim(), 'Salida rápida');
    await screen(page, 'welcome-es', problems);
    await page.selectOption('#lang', 'en');
    await page.locator('#start', { hasText: 'Start a chat' }).waitFor();

    await page.click('#help-link');
    await page.locator('[data-screen="help"]').waitFor();
    await screen(page, 'help', problems);
    await page.click('#back');
    await page.locator('[data-screen="welcome"]').waitFor();

    await page.click('#start');
    await page.click('button[data-id="sextortion"]');
    await page.click('button[data-id="money_demanded"]');
    await page.click('button[data-id="13_15"]');
    assert.equal(await page.getAttribute('button[data-id="sextortion"]', 'aria-pressed'), 'true');
    await screen(page, 'intake', problems);

    await page.click('#go');
    await page.locator('#position').waitFor();
    await page.fill('#text', 'they want money by tonight');
    await page.press('#text', 'Enter');
    await page.fill('#text', 'a draft not sent yet');
    await screen(page, 'waiting', problems);

    const taken = await sA.take();
    await page.locator('[data-screen="chat"]').waitFor();
    assert.equal(await page.inputValue('#text'), 'a draft not sent yet', 'what was being typed survives the counsellor joining');
    await page.fill('#text', '');
    await until(() => got.find((m) => m.text === 'they want money by tonight'));
    await sA.send(taken.conversation, 'Thank you for telling us. You did the right thing.');
    await page.locator('li.theirs', { hasText: 'You did the right thing' }).waitFor();
    await sA.sendCard(taken.conversation, 'sextortion');
    await page.locator('li.card[data-card="sextortion"]').waitFor();
    await page.fill('#text', 'ok. what happens now?');
    await page.click('#send');
    await until(() => got.find((m) => m.text === 'ok. what happens now?'));
    A.client.read(taken.conversation, got.find((m) => m.text === 'ok. what happens now?').seq);
    await page.locator('li.mine', { hasText: 'what happens now?' }).locator('.status', { hasText: 'Read' }).waitFor();
    // On a phone, the newest message scrolls into view above the message box, not under it.
    await page.setViewportSize(VIEWPORTS[1]);
    await sA.send(taken.conversation, 'We will go through it together, one step at a time.');
    await page.locator('li.theirs', { hasText: 'one step at a time' }).waitFor();
    const clear = await page.evaluate(() => {
      const li = [...document.querySelectorAll('#messages > li')].pop().getBoundingClientRect();
      const box = document.querySelector('form.compose').getBoundingClientRect();
      return { bottom: li.bottom, box: box.top, scrolled: window.scrollY > 0 };
    });
    assert.ok(clear.scrolled && clear.bottom <= clear.box + 0.5, `newest message at ${clear.bottom}px, message box from ${clear.box}px`);
    await page.setViewportSize(VIEWPORTS[0]);
    await page.click('#code');
    await page.locator('#return-code').waitFor();
    await screen(page, 'chat', problems);

    // Help from the chat, twice, and Back is still the chat.
    await page.click('#help-link');
    await page.locator('[data-screen="help"]').waitFor();
    await page.click('#help-link');
    await page.click('#back');
    await page.locator('[data-screen="chat"]').waitFor();
    assert.equal(await page.locator('li.theirs', { hasText: 'one step at a time' }).count(), 1);

    await A.client.end(taken.conversation);
    await page.locator('[data-screen="ended"]').waitFor();
    await page.click('[data-screen="ended"] button >> text=Yes');
    await page.locator('[data-screen="ended"] [role="status"]', { hasText: 'Thank you' }).waitFor();
    await screen(page, 'ended', problems);
    assert.deepEqual(errors, []);
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv.cleanup();
  }
  assert.deepEqual(problems, []);
});

test('closed: welcome, leave a message and read a reply are accessible, at 1280 and 320 px', { skip, timeout: 180000 }, async () => {
  const sodium = await E.ready();
  const team = sodium.crypto_box_keypair();
  const today = new Date().toISOString().slice(0, 10);
  const srv = await daemon(`[hours]\ntimezone = UTC\nexceptions = ${today} closed\n`, (dir) => ctl({ dir }, 'inbox-key', 'set', '--', E.b64(team.publicKey)));
  const browser = await launch();
  const problems = [];
  let staff = null;
  try {
    const context = await scanContext(browser, { viewport: VIEWPORTS[0] });
    const page = await context.newPage();
    await isolate(page);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${srv.url}/`);
    await page.locator('#leave-message').waitFor();
    await screen(page, 'welcome-closed', problems);

    await page.click('#leave-message');
    const code = (await page.locator('#return-code').innerText()).trim();
    await page.fill('#message', 'they want 200 pounds by friday');
    await page.click('#send-message');
    await page.locator('#left', { hasText: 'Sent' }).waitFor();
    await screen(page, 'leave-message', problems);

    await awaitStepMargin(15);
    const acct = await enrolled(srv, 'a11ycarol', 'counsellor');
    staff = await staffClient(srv, acct);
    const list = await staff.request({ type: 'inbox.list' });
    await staff.request({ type: 'inbox.reply', message: list.messages[0].message, reply: await inboxSealReply('Do not pay. Save the messages and tell us if they post anything.', list.messages[0].reply_pk) });

    await page.goto(`${srv.url}/`);
    await page.click('#have-code');
    await page.fill('#code-input', 'not a code');
    await page.click('#read-replies');
    await page.locator('#replies', { hasText: 'not a return code' }).waitFor();
    await screen(page, 'read-reply-bad-code', problems);
    await page.fill('#code-input', code);
    await page.click('#read-replies');
    await page.locator('#replies .reply', { hasText: 'Do not pay' }).waitFor();
    await screen(page, 'read-reply', problems);
    assert.deepEqual(errors, []);
  } finally {
    staff?.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv.cleanup();
  }
  assert.deepEqual(problems, []);
});
