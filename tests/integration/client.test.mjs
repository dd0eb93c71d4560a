// client.test.mjs: the JavaScript client library (client-web/js/helpline.js)
// against the real daemon: both sides chat while their connections are cut
// again and again; every message the app sent is acknowledged once and
// reaches the other side's app exactly once, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { startServer, httpGet } from './harness.mjs';
import { enrolled, awaitStepMargin, totp, stepNow, origin } from './staff.mjs';
import { ContactClient, StaffClient, HelplineError, b64url } from '../../client-web/js/helpline.js';

const here = dirname(fileURLToPath(import.meta.url));
const enc = (s) => new TextEncoder().encode(s);
const dec = (b64) => new TextDecoder().decode(b64url.decode(b64));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(fn, ms = 20000) {
  const end = Date.now() + ms;
  while (!fn()) { if (Date.now() > end) throw new Error('condition not met in time'); await sleep(50); }
}

test('the library keeps its promises over a flaky network', async () => {
  const srv = await startServer();
  try {
    await awaitStepMargin(15);
    const acct = await enrolled(srv, 'lib', 'counsellor');
    await awaitStepMargin(8);
    const url = `ws://127.0.0.1:${srv.port}/ws`;
    const backoff = { minMs: 50, maxMs: 400 };
    const timeoutMs = 4000;
    const young = new ContactClient({ url, WebSocket, backoff, timeoutMs });
    const staff = new StaffClient({ url, WebSocket, wsOptions: { origin: origin(srv) }, backoff, timeoutMs });
    const yGot = [], sGot = [];
    let offline = 0, online = 0;
    // Syncs also return one's own messages (the history): the apps here
    // count what the other side said.
    young.on('event', (ev) => { if (ev.kind === 'msg' && ev.from !== 'contact') yGot.push(ev); });
    staff.on('event', (ev) => { if (ev.kind === 'msg' && ev.from === 'contact') sGot.push(ev); });
    young.on('offline', () => offline++);
    young.on('online', () => online++);

    const status = await young.lineStatus();
    assert.equal(status.open, true);
    const started = await young.start({ topics: 'cyberbullying' });
    assert.match(started.resume, /^[A-Za-z0-9_-]{43}$/);
    await staff.login(acct.username, acct.password, totp(acct.secret, stepNow()));
    const taken = await staff.take();
    const conv = taken.conversation;

    // Errors carry the server's code.
    await assert.rejects(staff.pick('999999'), (e) => e instanceof HelplineError && e.code === 'not_found');

    const N = 40, acks = [];
    for (let i = 0; i < N; i++) {
      acks.push(young.send(enc(`y${i}`)));
      acks.push(staff.send(conv, enc(`s${i}`)));
      if (i % 7 === 3) young.conn?.kill();
      if (i % 11 === 5) staff.conn?.kill();
      await sleep(20);
    }
    const results = await Promise.all(acks);
    assert.ok(results.every((r) => r.type === 'chat.ack'));
    // Each message acknowledged with its own seq.
    assert.equal(new Set(results.map((r) => r.seq)).size, 2 * N);
    await until(() => yGot.length >= N && sGot.length >= N);
    await sleep(300);
    assert.deepEqual(yGot.map((e) => dec(e.payload)), Array.from({ length: N }, (_, i) => `s${i}`));
    assert.deepEqual(sGot.map((e) => dec(e.payload)), Array.from({ length: N }, (_, i) => `y${i}`));
    for (const got of [yGot, sGot]) for (let i = 1; i < got.length; i++) assert.ok(got[i].seq > got[i - 1].seq);
    assert.ok(offline >= 3 && online >= 3, `offline ${offline}, online ${online}`);

    // A message sent while offline goes out after the reconnect.
    young.conn.kill();
    const late = young.send(enc('sent while offline'));
    await late;
    await until(() => sGot.some((e) => dec(e.payload) === 'sent while offline'));

    // Ending works through the library; the module stores nothing.
    await staff.end(conv);
    young.close();
    staff.close();
    const src = readFileSync(join(here, '../../client-web/js/helpline.js'), 'utf8');
    assert.doesNotMatch(src, /localStorage|sessionStorage|indexedDB|document\.cookie/);
    // The daemon serves the module to the pages.
    const served = await httpGet(srv.port, '/js/helpline.js');
    assert.equal(served.status, 200);
    assert.match(served.headers['content-type'], /javascript/);
  } finally {
    await srv.stop();
  }
});
