// console-admin.test.mjs: the supervisors' and admins' views of the staff
// console (/console: console-super.js, console-admin.js) in Chromium against
// the real daemon. An admin who is also a supervisor logs in in the browser,
// sets up this browser's keys (the admin device certified with the root key
// by helplinectl, the chat device then by it), and uses every view:
// queue health (a young person at immediate risk waiting, an offer that
// times out raising a live alert), statistics (totals of conversations made
// from Node, by day and by hour, in charts and tables; redrawn at 320 px),
// staff accounts (a counsellor created through the form with the
// re-authentication dialog answered, whose enrolment code then works from
// Node; disabled and enabled again; another's authenticator reset with a
// new code that works; a taken username refused with its code shown),
// devices (a counsellor's device registered from Node is certified in the
// browser, its certificate chain then verifies in Node; then revoked), and
// opening hours (open with its closing time in the line's time zone; after
// a restart with today closed, closed with its opening time). Each view is
// scanned with axe-core (no serious or critical violation) and saved as a
// screenshot in $HL_SCREENSHOTS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, nextId, request, until } from './harness.mjs';
import { initOrg, contactClient, staffClient, staffIdOf } from './org.mjs';
import { ctl, enrolled, totp, stepNow, awaitStepMargin, staffSocket } from './staff.mjs';
import { launch, noBrowser } from './browser.mjs';
import { axeScan, shot, scanContext, targetSizes } from './a11y.mjs';
import { assertInert } from './console.mjs';
import { registerDevice } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';

const skip = noBrowser;
const TZ = 'Europe/London';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A local date (YYYY-MM-DD) in the line's time zone, days from now.
const localDay = (days = 0) => new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' })
  .format(new Date(Date.now() + days * 86400000));

// TOTP codes are accepted for steps now-1..now+1, each step only once and
// only above the last one used: hand out strictly increasing steps.
function codes(acct, lastStep) {
  acct.last = lastStep;
  acct.step = async ({ consume = true } = {}) => {
    const s = Math.max(acct.last + 1, stepNow() - 1);
    while (s > stepNow() + 1) await sleep(500);
    if (consume) acct.last = s;
    return s;
  };
  acct.code = async (opts) => totp(acct.secret, await acct.step(opts));
  return acct;
}

async function daemon(dir, ini, port) {
  return startServer({ dir, envelopes: 'strict', listen: port ? `127.0.0.1:${port}` : undefined, args: ['--config', ini] });
}

test('the console\'s supervisor and admin views against the real daemon', { skip, timeout: 280000 }, async () => {
  await E.ready();
  const dir = mkdtempSync(join(tmpdir(), 'helpline-console-admin-'));
  initOrg(dir);
  const closesDay = localDay(2);
  const ini = join(dir, 'console.ini');
  writeFileSync(ini, `[queue]\nrouting = both\noffer_timeout = 5\n[hours]\ntimezone = ${TZ}\nexceptions = ${closesDay} closed\n`);
  let srv = await daemon(dir, ini);
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const browser = await launch();
  try {
    const rootFile = join(dir, 'root-key.json');
    const rootPk = E.unb64(JSON.parse(readFileSync(rootFile, 'utf8')).public, 32);
    await awaitStepMargin(20);
    const boss = codes(await enrolled(srv, 'boss', 'admin', ['--supervisor']), stepNow() - 1);
    const carol = codes(await enrolled(srv, 'carol', 'counsellor'), stepNow() - 1);
    const C = await staffClient(srv, carol, track, await carol.step());

    // Conversations for the statistics, made from Node: two answered and
    // wrapped up, one that left the queue.
    const y1 = contactClient(srv, track), y2 = contactClient(srv, track), y3 = contactClient(srv, track);
    await y1.start({ topics: 'sextortion', age_band: '13_15' });
    let t = await C.take();
    await C.end(t.conversation);
    await C.wrapup(t.conversation, 'support_given', ['sextortion']);
    await y2.start({ topics: 'bullying', age_band: 'u13' });
    t = await C.take();
    await C.end(t.conversation);
    await C.wrapup(t.conversation, 'signposted', ['bullying']);
    await y3.start({ topics: 'anxiety' });
    await y3.leave();

    // ---- log in in the browser, set up its keys -------------------------------
    const context = await scanContext(browser, { locale: 'en-GB', timezoneId: 'America/New_York', viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.route((url) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(url.href), (route) => route.abort());
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e}`));
    page.on('console', (m) => { if (m.type() === 'error' && !/WebSocket|ERR_CONNECTION|net::/.test(m.text())) problems.push(`console: ${m.text()}`); });
    page.on('dialog', (d) => d.accept());
    const a11y = [];
    const check = async (name) => {
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      await shot(page, `console-${name}`);
      a11y.push(...await axeScan(page, name));
      a11y.push(...await targetSizes(page, name));
      // No inline style in what the views render (the CSP forbids it; empty ones are left by axe).
      const styled = await page.locator('main#view [style]:not([style=""])').count();
      if (styled) a11y.push(`${name}: ${styled} elements with a style attribute: ${await page.locator('main#view [style]:not([style=""])').evaluateAll((l) => l.map((e) => e.outerHTML.slice(0, 120)).join(' | '))}`);
    };

    await page.goto(`${srv.url}/console`);
    await page.locator('#login-username').waitFor();
    await page.fill('#login-username', 'boss');
    await page.fill('#login-password', boss.password);
    await page.fill('#login-totp', await boss.code());
    await page.click('#login-go');
    await page.locator('#device-pass').waitFor();
    await page.fill('#device-pass', 'a long passphrase for this browser');
    await page.fill('#device-pass2', 'a long passphrase for this browser');
    await page.click('#device-go');
    const adminDev = page.locator('#device-waiting li', { hasText: 'admin device' }).locator('[data-device-id]');
    await adminDev.waitFor({ timeout: 60000 });
    ctl(srv, 'certify-device', '--root-key', rootFile, await adminDev.getAttribute('data-device-id'));
    await page.click('#device-check');
    await page.locator('nav#views [data-view="queue"]').waitFor({ timeout: 30000 });

    // ---- queue health: an immediate-risk young person, an offer timing out ----
    await page.click('nav#views [data-view="queue"]');
    await page.locator('main#view #qh-status', { hasText: 'Live' }).waitFor();
    assert.equal(await page.locator('#qh-waiting').innerText(), '0');
    const y4 = contactClient(srv, track);
    const started = await y4.start({ topics: 'sextortion', flags: 'threat_deadline', age_band: '16_17' });
    assert.equal(started.risk, 3);
    await until(async () => (await page.locator('#qh-waiting').innerText()) === '1', 'one waiting in the view');
    assert.equal(await page.locator('#qh-risk-immediate').innerText(), '1');
    assert.equal(await page.locator('#qh-risk-high').innerText(), '0');
    assert.ok(await page.locator('#qh-tile-risk-immediate.qh-hot').count(), 'immediate risk stands out');
    assert.match(await page.locator('#qh-longest').innerText(), /^\d+ s$/);
    // Carol starts her shift, is offered the chat and does not answer: a live alert.
    const offered = new Promise((r) => C.on('offer', r));
    await C.shiftStart();
    const offer = await offered;
    assert.equal(offer.conversation, started.conversation);
    await until(async () => (await page.locator('#qh-offered').innerText()) === '1', 'the offer in the view');
    await page.locator('#qh-counsellors tr', { hasText: 'Test carol' }).waitFor();
    assert.match(await page.locator('#qh-counsellors tr', { hasText: 'Test carol' }).innerText(), /Available[\s\S]*0 \/ 2/);
    const alert = page.locator('#qh-alerts li[data-kind="offer_timeout"]');
    await alert.waitFor({ timeout: 15000 });
    assert.match(await alert.innerText(), /Offer timed out/);
    assert.match(await alert.innerText(), new RegExp(`chat ${started.conversation}`));
    await until(async () => /Away/.test(await page.locator('#qh-counsellors tr', { hasText: 'Test carol' }).innerText()), 'Carol shown away');
    await check('queue');

    // ---- statistics: the totals over the week, and by hour -----------------------
    await page.click('nav#views [data-view="stats"]');
    await page.locator('#st-total-conversations').waitFor();
    const statsShown = async () => ({
      conversations: await page.locator('#st-total-conversations').innerText(),
      answered: await page.locator('#st-total-answered').innerText(),
      unanswered: await page.locator('#st-total-unanswered').innerText(),
      open: await page.locator('#st-total-open').innerText(),
    });
    const expectTotals = { conversations: '4', answered: '2', unanswered: '1', open: '1' };
    assert.deepEqual(await statsShown(), expectTotals);
    const cell = async (chart, id) => {
      const c = page.locator(`#st-table-${chart} tr[data-id="${id}"] td`);
      return (await c.count()) ? c.textContent() : null;
    };
    const bar = (chart, id) => page.locator(`svg[data-chart="${chart}"] g.bar[data-id="${id}"]`).getAttribute('data-value');
    for (const [chart, id, n] of [['risk', 'standard', '2'], ['risk', 'high', '1'], ['risk', 'immediate', '1'], ['risk', 'elevated', '0'],
      ['age', 'u13', '1'], ['age', '13_15', '1'], ['age', '16_17', '1'], ['age', 'none', '1'], ['age', '18p', '0'],
      ['tags', 'sextortion', '2'], ['tags', 'bullying', '1'], ['tags', 'anxiety', '1'],
      ['outcome', 'support_given', '1'], ['outcome', 'signposted', '1'], ['outcome', 'none', '2'],
      ['wait', 'lt1m', '2'], ['handle', 'lt1m', '2']]) {
      assert.equal(await cell(chart, id), n, `${chart} ${id} in the table`);
      assert.equal(await bar(chart, id), n, `${chart} ${id} in the chart`);
    }
    // Labels come from the taxonomy; numbers are written next to the bars.
    assert.match(await page.locator('#st-table-tags tr[data-id="sextortion"] th').textContent(), /Sextortion.*\(Online harms\)/);
    assert.equal(await page.locator('svg[data-chart="risk"] g.bar[data-id="standard"] text.chart-num').textContent(), '2');
    assert.match(await page.locator('svg[data-chart="risk"]').getAttribute('aria-label'), /Standard 2, Elevated 0, High 1, Immediate 1/);
    assert.match(await page.locator('svg[data-chart="risk"] g.bar[data-id="high"] title').textContent(), /High: 1 contacts/);
    assert.match(await page.locator('#st-wait-text').innerText(), /^2 answered young people\. Median \(p50\): \d+ s; 90th percentile \(p90\): \d+ s; longest: \d+ s\.$/);
    assert.match(await page.locator('#st-small-note').innerText(), /below 5/);
    // Seven days by day, today last, with today's four.
    assert.equal(await page.locator('svg[data-chart="periods"] g.bar').count(), 7);
    const today = Date.parse(`${new Date().toISOString().slice(0, 10)}T00:00:00Z`);
    // (Made minutes ago: today, or yesterday if UTC midnight just passed.)
    assert.equal(Number(await cell('periods', String(today))) + Number(await cell('periods', String(today - 86400000))), 4);
    await check('stats');
    // At 320 px the charts are drawn again to fit (their text is not scaled down).
    await page.setViewportSize({ width: 320, height: 800 });
    await until(async () => Number(await page.locator('svg[data-chart="tags"]').getAttribute('width')) <= 300, 'the charts redrawn narrower');
    await shot(page, 'console-stats-320');
    await page.setViewportSize({ width: 1280, height: 900 });
    await until(async () => Number(await page.locator('svg[data-chart="tags"]').getAttribute('width')) > 300, 'the charts redrawn wider');
    await page.check('#st-mode-24h');
    await until(async () => (await page.locator('#st-range').innerText()).includes('last 24 hours'), 'the hourly statistics');
    assert.deepEqual(await statsShown(), expectTotals);
    assert.equal(await page.locator('svg[data-chart="periods"] g.bar').count(), 24);
    const hourStart = String(Math.floor(Date.now() / 3600000) * 3600000);
    // The conversations were made within the last few minutes: in this hour (or just before it).
    const inHour = Number(await cell('periods', hourStart));
    const prevHour = Number(await cell('periods', String(Number(hourStart) - 3600000)));
    assert.equal(inHour + prevHour, 4);
    await check('stats-hourly');

    // ---- staff accounts: create through the form, with a fresh code -------------
    await page.click('nav#views [data-view="staff"]');
    await page.locator('#sa-rows tr[data-username="carol"]').waitFor();
    assert.match(await page.locator('#sa-rows tr[data-username="boss"]').innerText(), /Admin, Supervisor|Supervisor, Admin/);
    await check('staff');
    await page.fill('#sa-username', 'dana');
    // Markup in a display name (catalogue item 39; 64 bytes at most): text
    // in the staff list and the device list.
    const danaName = 'Dana Davies<b id="injected">B</b><img src=x onerror=__xss=1>';
    assert.ok(Buffer.byteLength(danaName) <= 64);
    await page.fill('#sa-name', danaName);
    await page.fill('#sa-languages', 'en, cy');
    await page.fill('#sa-capacity', '3');
    assert.ok(await page.isChecked('#sa-role-counsellor'));
    await page.click('#sa-create');
    await page.locator('dialog#reauth[open]').waitFor();
    await page.fill('#reauth-totp', await boss.code());
    await page.click('#reauth-go');
    await page.locator('#sa-code').waitFor();
    const code = (await page.locator('#sa-code').innerText()).trim();
    assert.match(code, /^[A-Z2-7]{4}(-[A-Z2-7]{4}){4}$/);
    assert.match(await page.locator('#sa-code-box').innerText(), /in person/);
    await page.locator('#sa-rows tr[data-username="dana"]').waitFor();
    const danaRow = page.locator('#sa-rows tr[data-username="dana"]');
    assert.match(await danaRow.innerText(), /Dana Davies[\s\S]*dana[\s\S]*Counsellor[\s\S]*en,cy[\s\S]*3[\s\S]*Not enrolled yet/);
    assert.ok((await danaRow.innerText()).includes(danaName));
    await assertInert(page, 'the staff list');
    await check('staff-created');
    // The code works: Dana enrols from Node and logs in.
    const ws = await staffSocket(srv);
    const ch = await request(ws, { type: 'auth.enrol_begin', id: nextId(), code });
    assert.equal(ch.type, 'auth.enrol_challenge', JSON.stringify(ch));
    assert.equal(ch.username, 'dana');
    const dana = codes({ username: 'dana', password: 'she chooses a long passphrase', secret: ch.totp_secret }, 0);
    const fin = await request(ws, { type: 'auth.enrol_finish', id: nextId(), code, password: dana.password, totp: await dana.code() });
    assert.equal(fin.type, 'auth.enrolled', JSON.stringify(fin));
    ws.close();
    const D1 = await staffClient(srv, dana, track, await dana.step());
    await until(async () => /Active/.test(await danaRow.innerText()), 'Dana shown active', 20000);
    // Disable: her session ends and she cannot log in; enable: she can.
    const ended = new Promise((r) => D1.on('ended', r));
    await danaRow.locator('button[data-action="disable"]').click();
    await until(async () => /Disabled/.test(await danaRow.innerText()), 'Dana shown disabled');
    assert.match((await ended).reason ?? '', /disabled/);
    const peek = await dana.code({ consume: false });
    {
      const s = await staffSocket(srv);
      const r = await request(s, { type: 'auth.login', id: nextId(), username: 'dana', password: dana.password, totp: peek });
      assert.deepEqual([r.type, r.code], ['error', 'auth_failed']);
      s.close();
    }
    await danaRow.locator('button[data-action="enable"]').click();
    await until(async () => /Active/.test(await danaRow.innerText()), 'Dana shown active again');
    // Reset Carol's authenticator: a new one-time code, with which she enrols again.
    await page.locator('#sa-rows tr[data-username="carol"] button[data-action="reset-totp"]').click();
    await page.locator('#sa-code-title', { hasText: 'Test carol' }).waitFor();
    const code2 = (await page.locator('#sa-code').innerText()).trim();
    assert.notEqual(code2, code);
    {
      const s = await staffSocket(srv);
      const r = await request(s, { type: 'auth.enrol_begin', id: nextId(), code: code2 });
      assert.deepEqual([r.type, r.username], ['auth.enrol_challenge', 'carol']);
      s.close();
    }
    // A refusal is shown with its code in plain words.
    await page.fill('#sa-username', 'carol');
    await page.fill('#sa-name', 'Another Carol');
    await page.click('#sa-create');
    await page.locator('.toast.error', { hasText: 'username is taken' }).filter({ hasText: '(conflict)' }).waitFor();
    const danaId = staffIdOf(srv, 'dana');
    const D2 = await staffClient(srv, dana, track, await dana.step());

    // ---- devices: certify Dana's device in the browser, verify it in Node, revoke it --
    const dev = await registerDevice(D2, danaId);
    await page.click('nav#views [data-view="devices"]');
    const waitingRow = page.locator(`#dv-waiting-rows tr[data-device-id="${dev.id}"]`);
    await waitingRow.waitFor();
    assert.match(await waitingRow.innerText(), /Dana Davies/);
    assert.ok((await waitingRow.innerText()).includes(danaName));
    await assertInert(page, 'the device list');
    // This admin's own devices are certified: the admin one by the root, the chat one by it.
    const bossId = staffIdOf(srv, 'boss');
    assert.equal(await page.locator(`#dv-certified-rows tr[data-staff-id="${bossId}"][data-verified="yes"]`).count(), 2);
    await check('devices');
    await waitingRow.locator('button[data-action="certify"]').click();
    const certRow = page.locator(`#dv-certified-rows tr[data-device-id="${dev.id}"]`);
    await certRow.waitFor();
    assert.equal(await certRow.getAttribute('data-verified'), 'yes');
    assert.match(await certRow.innerText(), /Counsellor[\s\S]*Valid until/);
    const mine = (await D2.request({ type: 'device.list', staff_id: danaId })).devices.find((d) => d.device === dev.id);
    assert.ok(mine.cert, 'the device has a certificate');
    const now = Math.floor(Date.now() / 1000);
    const chain = E.verifyChain({ cert: E.unb64(mine.cert), issuer: E.unb64(mine.issuer) }, rootPk, now, { subject: E.deviceSubject(dev.keys.signPk) });
    assert.equal(chain.device.role, E.ROLE.COUNSELLOR);
    assert.deepEqual([...chain.device.boxPk], [...dev.keys.boxPk]);
    await check('devices-certified');
    await certRow.locator('button[data-action="revoke"]').click();
    await page.locator(`#dv-revoked-rows tr[data-device-id="${dev.id}"]`).waitFor();
    assert.equal(await certRow.count(), 0);
    const { revocations } = await D2.request({ type: 'device.revocations' });
    assert.ok(E.revokedSet(revocations, rootPk, now).has(E.hex(E.certHash(E.unb64(mine.cert)))), 'the revocation verifies and names the certificate');
    await check('devices-revoked');

    // ---- opening hours: open, closing at midnight in the line's time zone -------------
    await page.click('nav#views [data-view="hours"]');
    await page.locator('#hr-open[data-open="yes"]').waitFor();
    const status = await y4.lineStatus();
    assert.ok(status.open && status.closes_at);
    const fmt = new Intl.DateTimeFormat('en-GB', { timeZone: TZ, weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' });
    assert.equal(await page.locator('#hr-closes').innerText(), fmt.format(new Date(status.closes_at)));
    assert.match(await page.locator('#hr-closes').innerText(), /00:00/);
    assert.equal(await page.locator('#hr-tz').innerText(), TZ);
    assert.equal(await page.locator('#hr-full').innerText(), 'No');
    assert.match(await page.locator('#hr-inbox').innerText(), /^(Available|Not available)/);
    assert.match(await page.locator('main#view').innerText(), /hours\.weekly[\s\S]*hours\.exceptions[\s\S]*hours\.timezone/);
    await check('hours-open');

    // A restart with today closed: the console reconnects and the view says so.
    for (const c of opened) c.close();
    opened.length = 0;
    const port = srv.port;
    let r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    writeFileSync(ini, `[queue]\nrouting = both\noffer_timeout = 5\n[hours]\ntimezone = ${TZ}\nexceptions = ${localDay(0)} closed, ${localDay(1)} closed\n`);
    srv = await daemon(dir, ini, port);
    await page.locator('#hr-open[data-open="no"]').waitFor({ timeout: 30000 });
    const closed = await (async () => { const y = contactClient(srv, track); return y.lineStatus(); })();
    assert.equal(closed.open, false);
    assert.equal(await page.locator('#hr-opens').innerText(), fmt.format(new Date(closed.opens_at)));
    await check('hours-closed');

    assert.deepEqual(a11y, []);
    assert.deepEqual(problems, []);
  } finally {
    for (const c of opened) c.close();
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    srv.cleanup();
  }
});
