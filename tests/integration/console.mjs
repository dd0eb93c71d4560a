// console.mjs: helpers for browser tests of the staff console (/console):
// a daemon set up for them, a network link that can be cut, and the steps a
// member of staff takes in the page (enrol, log in, set up the device).
import net from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from './harness.mjs';
import { initOrg, staffIdOf } from './org.mjs';
import { ctl, totp, stepNow, waitFor } from './staff.mjs';
import { certifyDevice } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';
import { shot, scanContext, axeScan, targetSizes } from './a11y.mjs';

/** Markup a hostile user types into any text field (catalogue item 39):
 * it must be shown as these characters, make no element and run nothing. */
export const MARKUP = [
  '<img src=x onerror="window.__xss=(window.__xss||0)+1">',
  '<script>window.__xss=99</script>',
  '<b id="injected">bold</b><iframe srcdoc="<p>x</p>"></iframe>',
  '<svg onload="window.__xss=7"><a href="javascript:window.__xss=8">link</a></svg>',
];
export const markup = (who) => `${who} ${MARKUP.join(' ')} &lt;&amp;`;

/** Fails (naming the view) if anything MARKUP would have made exists in
 * page, or any of it ran. */
export async function assertInert(page, name) {
  const found = await page.evaluate(() => ({
    xss: window.__xss ?? null,
    img: document.querySelectorAll('img[src="x"]').length,
    injected: document.querySelectorAll('#injected, iframe[srcdoc], svg[onload], a[href^="javascript:"]').length,
    // (axe-core, injected by look(), is an inline script of its own.)
    scripts: [...document.scripts].filter((s) => !s.src && s.textContent.includes('__xss')).length,
  }));
  if (JSON.stringify(found) !== JSON.stringify({ xss: null, img: 0, injected: 0, scripts: 0 }))
    throw new Error(`${name}: markup became part of the page: ${JSON.stringify(found)}`);
}

/** Only loopback: any other request from the page is answered locally. */
export async function isolate(page) {
  await page.route((url) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(url.href), (route) =>
    route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Elsewhere</title>' }));
}

/** A page in a new context (1280 x 900) whose script errors and console
 * errors (other than network ones) are pushed to problems; dialogs are
 * accepted. */
export async function newPage(browser, problems, name) {
  const context = await scanContext(browser, { viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await isolate(page);
  page.on('pageerror', (e) => problems.push(`${name}: ${e}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION|net::/.test(m.text())) problems.push(`${name} console: ${m.text()}`); });
  page.on('dialog', (d) => d.accept());
  return page;
}

/** A screenshot, then axe-core (WCAG 2.2 A/AA, serious and critical) and
 * target sizes on the page as it is now; problems are pushed to found. */
export async function look(page, name, found) {
  await shot(page, name);
  found.push(...await axeScan(page, name), ...await targetSizes(page, name));
}

/** Every byte the daemon keeps: the database, its WAL, and the log. */
export function storedBytes(srv) {
  return Buffer.concat([...readdirSync(srv.dir).filter((f) => f.startsWith('helpline.db')).map((f) => readFileSync(join(srv.dir, f))), Buffer.from(srv.stderr)]);
}

/**
 * A bad network between a browser and the daemon: a loopback TCP relay that
 * can be cut (every connection reset, new ones refused) and restored. Its
 * port is known before the daemon starts (so staff.allowed_origins can name
 * it); set link.target to the daemon's port.
 */
export async function flakyLink() {
  const live = new Set();
  let down = false;
  const link = { target: 0 };
  const server = net.createServer((c) => {
    if (down || !link.target) { c.destroy(); return; }
    const up = net.connect(link.target, '127.0.0.1');
    live.add(c); live.add(up);
    c.pipe(up); up.pipe(c);
    const drop = () => { c.destroy(); up.destroy(); live.delete(c); live.delete(up); };
    c.on('error', drop); up.on('error', drop); c.on('close', drop); up.on('close', drop);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(link, {
    port: server.address().port,
    cut() { down = true; for (const s of live) s.resetAndDestroy?.() ?? s.destroy(); live.clear(); },
    restore() { down = false; },
    close() { this.cut(); server.close(); },
  });
}

/**
 * A daemon with end-to-end encryption as in service and the organisation
 * initialised; `ini` is extra config text. The staff console may be opened
 * directly or through `link` (its origin is allowed). Resolves {srv, link}.
 */
export async function consoleDaemon(ini = '') {
  const link = await flakyLink();
  const dir = mkdtempSync(join(tmpdir(), 'helpline-console-'));
  initOrg(dir);
  // The daemon listens on a port picked here, so that both its own origin
  // (for staff clients in Node) and the link's (for the pages) are allowed.
  const port = await freePort();
  const path = join(dir, 'console.ini');
  writeFileSync(path, `[staff]\nallowed_origins = http://127.0.0.1:${port} http://127.0.0.1:${link.port}\n${ini}`);
  const srv = await startServer({ dir, envelopes: 'strict', listen: `127.0.0.1:${port}`, args: ['--config', path] });
  link.target = srv.port;
  return { srv, link, url: `http://127.0.0.1:${link.port}` };
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Creates an account with helplinectl; returns {username, code}. */
export function newAccount(srv, username, roles) {
  const out = roles.includes('admin')
    ? ctl(srv, 'create-admin', username, '--name', `${username[0].toUpperCase()}${username.slice(1)} Test`, ...(roles.includes('supervisor') ? ['--supervisor'] : []))
    : ctl(srv, 'create-staff', username, '--role', roles.join(','), '--name', `${username[0].toUpperCase()}${username.slice(1)} Test`);
  return { username, code: /[A-Z2-7]{4}(?:-[A-Z2-7]{4}){4}/.exec(out)[0] };
}

/**
 * Enrols in the page with the one-time code (the TOTP secret read off the
 * page, as a person would type it into their app), then logs in. Codes of
 * step now-1 and now are used, so call awaitStepMargin() first. Returns
 * {username, password, secret}.
 */
export async function enrolAndLogin(page, url, acct, look = async () => {}) {
  await page.goto(`${url}/console`);
  await page.click('#enrol-open');
  await page.fill('#enrol-code', acct.code);
  // helplinectl's new account reaches the daemon within about a second.
  await waitFor(async () => {
    await page.click('#enrol-begin');
    await page.waitForFunction(() => document.getElementById('enrol-secret') || document.getElementById('enrol-error')?.textContent);
    return page.locator('#enrol-secret').isVisible();
  }, 8000, 300);
  await look('console-enrol');
  const secret = (await page.locator('#enrol-secret').innerText()).replace(/\s+/g, '');
  const password = `a long passphrase for ${acct.username.length} tests`;
  await page.fill('#enrol-password', password);
  await page.fill('#enrol-password2', password);
  await page.fill('#enrol-totp', totp(secret, stepNow() - 1));
  await page.click('#enrol-finish');
  await page.locator('#login-note').waitFor();
  await page.fill('#login-password', password);
  await page.fill('#login-totp', totp(secret, stepNow()));
  await page.click('#login-go');
  return { username: acct.username, password, secret };
}

/**
 * Sets up the browser's device keys with a passphrase and waits for the
 * certificate screen; then certifies what waits: an admin device with the
 * root key (helplinectl), a chat device with `org`'s admin device (from
 * Node), unless the page's own admin device does it. Resolves when the
 * console's views are shown.
 */
export async function setUpDevice(page, srv, org, username, { role = E.ROLE.COUNSELLOR, passphrase = 'device passphrase 1' } = {}) {
  await page.fill('#device-pass', passphrase);
  await page.fill('#device-pass2', passphrase);
  await page.click('#device-go');
  await Promise.race([page.locator('#device-waiting').waitFor({ timeout: 30000 }), page.locator('nav#views').waitFor({ timeout: 30000 })]);
  if (await page.locator('nav#views').isVisible()) return;
  const waiting = await page.locator('#device-waiting li').evaluateAll((ns) => ns.map((n) => ({ id: Number(n.querySelector('[data-device-id]').dataset.deviceId), admin: n.textContent.includes('admin device') })));
  const staffId = staffIdOf(srv, username);
  for (const w of waiting) {
    if (w.admin) {
      ctl(srv, 'certify-device', '--root-key', join(srv.dir, 'root-key.json'), String(w.id));
    } else {
      const d = (await org.admin.request({ type: 'device.list', staff_id: staffId })).devices.find((x) => x.device === w.id);
      await certifyDevice(org.admin, { keys: org.adminDevice.keys, cert: org.adminDevice.cert }, d, { role });
    }
  }
  await page.click('#device-check');
  await page.locator('nav#views').waitFor({ timeout: 30000 });
}

/**
 * The next authenticator code acct may use: the server takes each 30 s step
 * once per account and only the steps next to now, so this waits for the
 * clock when the next unused step is not yet accepted. acct.lastStep is the
 * step used last (set it after enrolAndLogin: its login used stepNow()).
 */
export async function nextCode(acct) {
  for (;;) {
    const now = stepNow();
    const step = Math.max(now, (acct.lastStep ?? now - 1) + 1);
    if (step <= now + 1) {
      acct.lastStep = step;
      return totp(acct.secret, step);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Answers the console's "Confirm it is you" dialog with acct's next code. */
export async function confirmReauth(page, acct) {
  await page.locator('dialog#reauth[open]').waitFor();
  await page.fill('#reauth-totp', await nextCode(acct));
  await page.click('#reauth-go');
  await page.waitForFunction(() => !document.querySelector('dialog#reauth[open]'), null, { timeout: 10000 });
}

/**
 * A young person in a new page asks for help (the topic and age band chips
 * given, or none), waits, and `staff` (a console on shift) accepts the offer
 * with Alt+A once its card is shown (`onOffer(card)` runs first, if given);
 * resolves {young, conv} once the chat is end-to-end encrypted on both sides.
 */
export async function youngChatAccepted(browser, problems, srv, staff, { topic = 'sextortion', age = '13_15', onOffer } = {}) {
  const young = await newPage(browser, problems, 'young');
  await young.goto(`${srv.url}/`);
  await young.click('#start');
  if (topic) await young.click(`button[data-id="${topic}"]`);
  if (age) await young.click(`button[data-id="${age}"]`);
  await young.click('#go');
  await young.locator('[data-screen="waiting"]').waitFor();
  const offer = staff.locator('.offer');
  await offer.waitFor({ timeout: 15000 });
  if (onOffer) await onOffer(offer);
  await staff.keyboard.press('Alt+A');
  await staff.locator('[role="tab"][aria-selected="true"]').waitFor();
  const conv = await staff.locator('.chat').getAttribute('data-conversation');
  await young.locator('[data-screen="chat"]').waitFor();
  await staff.locator(`#secured-${conv}`, { hasText: 'End-to-end encrypted' }).waitFor({ timeout: 15000 });
  return { young, conv };
}

/** Starts the shift of a console showing the Chats view. */
export async function startShift(page) {
  await page.locator('#take-next').waitFor();
  await page.click('#shift');
  await page.locator('#shift', { hasText: 'End shift' }).waitFor();
}

/**
 * A member of staff's console in a new page (its errors go to problems,
 * labelled `label`): the account made with roles, enrolled and logged in
 * (acct.lastStep: the TOTP step of the login), the device set up and
 * certified (a supervisor device when roles has supervisor), and the shift
 * started if `shift`. Resolves {page, acct}.
 */
export async function staffConsole(browser, problems, srv, url, org, username, roles, { label = username, shift = false } = {}) {
  const page = await newPage(browser, problems, label);
  const acct = await enrolAndLogin(page, url, newAccount(srv, username, roles));
  acct.lastStep = stepNow();
  await setUpDevice(page, srv, org, username, roles.includes('supervisor') ? { role: E.ROLE.SUPERVISOR } : {});
  if (shift) await startShift(page);
  return { page, acct };
}
