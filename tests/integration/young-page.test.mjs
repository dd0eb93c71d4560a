// young-page.test.mjs: the young person's page (/) in Chromium against the
// real daemon (end-to-end encryption on, as in service), with a counsellor
// driven from Node through the same client modules: welcome -> intake ->
// waiting (a message typed while queued) -> a counsellor joins -> chat both
// ways with receipts -> the network drops and comes back (offline banner,
// resume, nothing lost) -> the counsellor ends it. And Quick exit: Esc three
// times blanks the page, leaves for the neutral site with no history entry
// back to the chat, and nothing was stored in the browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { startServer } from './harness.mjs';
import { initOrg, organisation, counsellor, staffClient } from './org.mjs';
import { ctl, enrolled, awaitStepMargin } from './staff.mjs';
import { inboxOpenMessage, inboxSealReply } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';
import { launch, noBrowser } from './browser.mjs';
import { SecureStaff } from '../../client-web/js/secure.js';

const SHOTS = process.env.HL_SCREENSHOTS ?? join(tmpdir(), 'helpline-screenshots');
const skip = noBrowser;

// Only loopback: anything else (the Quick exit target) is answered locally.
async function isolate(page) {
  await page.route((url) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(url.href), (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Weather</title><p>Weather</p>' }));
}

// A bad network between the browser and the daemon: a loopback TCP relay
// that can be cut (every connection reset, new ones refused) and restored.
async function flakyLink(port) {
  const live = new Set();
  let down = false;
  const server = net.createServer((c) => {
    if (down) { c.destroy(); return; }
    const up = net.connect(port, '127.0.0.1');
    live.add(c); live.add(up);
    c.pipe(up); up.pipe(c);
    const drop = () => { c.destroy(); up.destroy(); live.delete(c); live.delete(up); };
    c.on('error', drop); up.on('error', drop); c.on('close', drop); up.on('close', drop);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    cut() { down = true; for (const s of live) s.resetAndDestroy?.() ?? s.destroy(); live.clear(); },
    restore() { down = false; },
    close() { this.cut(); server.close(); },
  };
}

async function daemon(extra = '', before = () => {}) {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-page-'));
  initOrg(dir);
  before(dir);
  const ini = join(dir, 'page.ini');
  writeFileSync(ini, `[queue]\nrouting = pull\n${extra}`);
  return startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
}

test('a young person chats with a counsellor from the page, through a network drop', { skip, timeout: 180000 }, async () => {
  mkdirSync(SHOTS, { recursive: true });
  const srv = await daemon();
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  let link = null;
  try {
    const o = await organisation(srv, track, 'pageadmin');
    const A = await counsellor(srv, o, 'pagealice', 'counsellor', track);
    const sA = new SecureStaff({ client: A.client, device: A.device, rootPk: o.rootPk });
    const got = [];
    sA.on('message', (m) => got.push(m));
    const context = await browser.newContext();
    const page = await context.newPage();
    await isolate(page);
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    link = await flakyLink(srv.port);
    await page.goto(`http://127.0.0.1:${link.port}/`);
    await page.locator('#start').waitFor();
    await page.screenshot({ path: join(SHOTS, 'young-welcome.png'), fullPage: true });
    await page.click('#start');
    await page.click('button[data-id="sextortion"]');
    await page.click('button[data-id="threat_deadline"]');
    await page.click('button[data-id="13_15"]');
    await page.screenshot({ path: join(SHOTS, 'young-intake.png'), fullPage: true });
    await page.click('#go');
    await page.locator('#position').waitFor();
    assert.match(await page.locator('#position').innerText(), /number 1/);
    // Typed while waiting: held until a counsellor's device answers.
    await page.fill('#text', 'they say they will post it tonight');
    await page.press('#text', 'Enter');
    await page.screenshot({ path: join(SHOTS, 'young-waiting.png'), fullPage: true });

    const taken = await sA.take();
    assert.equal(taken.risk, 3, 'a threat with a deadline is the highest risk class');
    await page.locator('[data-screen="chat"]').waitFor();
    const deadline = Date.now() + 15000;
    while (!got.find((m) => m.text === 'they say they will post it tonight') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.ok(got.find((m) => m.text === 'they say they will post it tonight'), 'the counsellor read the early message');
    await sA.send(taken.conversation, 'Thank you for telling us. Please do not pay them.');
    await page.locator('li.theirs', { hasText: 'Please do not pay them' }).waitFor();
    await sA.sendCard(taken.conversation, 'sextortion');
    await page.locator('li.card[data-card="sextortion"]', { hasText: 'You are not to blame' }).waitFor();
    await page.fill('#text', 'ok. what do I do?');
    await page.click('#send');
    await page.locator('li.mine', { hasText: 'what do I do?' }).locator('.status', { hasText: 'Sent' }).waitFor();
    const deadline1 = Date.now() + 15000;
    while (!got.find((m) => m.text === 'ok. what do I do?') && Date.now() < deadline1) await new Promise((r) => setTimeout(r, 50));
    const last = got.find((m) => m.text === 'ok. what do I do?');
    assert.equal(last.text, 'ok. what do I do?');
    A.client.read(taken.conversation, last.seq);
    await page.locator('li.mine', { hasText: 'what do I do?' }).locator('.status', { hasText: 'Read' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'young-chat.png'), fullPage: true });

    // The network drops: the page says so, and picks up where it was.
    link.cut();
    await page.locator('#banner:not([hidden])').waitFor({ timeout: 20000 });
    await sA.send(taken.conversation, 'Are you still there? We are here when you are back.');
    await page.screenshot({ path: join(SHOTS, 'young-offline.png'), fullPage: true });
    link.restore();
    await page.locator('li.theirs', { hasText: 'We are here when you are back' }).waitFor({ timeout: 30000 });
    await page.locator('#banner').waitFor({ state: 'hidden', timeout: 20000 });
    await page.fill('#text', 'yes, I am back');
    await page.press('#text', 'Enter');
    const deadline2 = Date.now() + 20000;
    while (!got.find((m) => m.text === 'yes, I am back') && Date.now() < deadline2) await new Promise((r) => setTimeout(r, 50));
    assert.ok(got.find((m) => m.text === 'yes, I am back'), 'the counsellor read the message after the drop');
    assert.equal(await page.locator('li.theirs', { hasText: 'We are here when you are back' }).count(), 1, 'shown once');

    await A.client.end(taken.conversation);
    await page.locator('[data-screen="ended"]').waitFor();
    await page.screenshot({ path: join(SHOTS, 'young-ended.png'), fullPage: true });
    // Nothing was kept in the browser.
    const stored = await page.evaluate(async () => ({ local: localStorage.length, session: sessionStorage.length, idb: (await indexedDB.databases()).length, cookies: document.cookie }));
    assert.deepEqual(stored, { local: 0, session: 0, idb: 0, cookies: '' });
    assert.deepEqual(problems, []);
  } finally {
    for (const c of opened) c.close();
    link?.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv.cleanup();
  }
});

test('Quick exit: Esc three times blanks the page and leaves no way Back to the chat', { skip, timeout: 60000 }, async () => {
  const srv = await daemon();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await isolate(page);
    await page.goto('about:blank');
    await page.goto(`${srv.url}/`);
    await page.locator('#start').waitFor();
    await page.click('#start');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await page.keyboard.press('Escape');
    await page.waitForURL('https://www.bbc.co.uk/weather');
    assert.equal(await page.title(), 'Weather');
    await page.goBack();
    assert.equal(page.url(), 'about:blank', 'Back skips the chat');
    // The button does the same, from any screen.
    await page.goto(`${srv.url}/`);
    await page.locator('#start').waitFor();
    await page.click('#exit');
    await page.waitForURL('https://www.bbc.co.uk/weather');
  } finally {
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0);
    srv.cleanup();
  }
});

test('closed: the young person leaves a message with a return code and reads the reply', { skip, timeout: 120000 }, async () => {
  const sodium = await E.ready();
  const team = sodium.crypto_box_keypair();
  const today = new Date().toISOString().slice(0, 10);
  const srv = await daemon(`[hours]\ntimezone = UTC\nexceptions = ${today} closed\n`, (dir) => ctl({ dir }, 'inbox-key', 'set', '--', E.b64(team.publicKey)));
  const browser = await launch();
  let staff = null;
  try {
    const page = await browser.newPage();
    await isolate(page);
    await page.goto(`${srv.url}/`);
    await page.locator('#leave-message').waitFor();
    assert.equal(await page.locator('#start').count(), 0, 'no chat while closed');
    await page.click('#leave-message');
    const code = (await page.locator('#return-code').innerText()).trim();
    assert.equal(code.split(' ').length, 6);
    await page.fill('#message', 'they want 200 pounds by friday');
    await page.click('#send-message');
    await page.locator('#left', { hasText: 'Sent' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'young-leave-message.png'), fullPage: true });
    // A counsellor answers from the team inbox.
    await awaitStepMargin(15);
    const acct = await enrolled(srv, 'inboxcarol', 'counsellor');
    staff = await staffClient(srv, acct);
    const list = await staff.request({ type: 'inbox.list' });
    assert.equal(await inboxOpenMessage(list.messages[0].sealed, team), 'they want 200 pounds by friday');
    await staff.request({ type: 'inbox.reply', message: list.messages[0].message, reply: await inboxSealReply('Do not pay. Save the messages and tell us if they post anything.', list.messages[0].reply_pk) });
    // Later, with the code.
    await page.goto(`${srv.url}/`);
    await page.click('#have-code');
    await page.fill('#code-input', 'not a code');
    await page.click('#read-replies');
    await page.locator('#replies', { hasText: 'not a return code' }).waitFor();
    await page.fill('#code-input', ` ${code.toUpperCase()} `);
    await page.click('#read-replies');
    await page.locator('#replies .reply', { hasText: 'Do not pay' }).waitFor();
    await page.screenshot({ path: join(SHOTS, 'young-read-reply.png'), fullPage: true });
  } finally {
    staff?.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv.cleanup();
  }
});
