// requeue-secure.test.mjs: an encrypted chat that goes back to the queue
// (its counsellor's connection was lost for longer than
// queue.counsellor_grace) and is taken by another counsellor, against the
// real daemon (chat.envelopes = strict) with the pages' own modules
// (helpline.js, secure.js, e2e.js). When B takes the chat, the young
// person's client starts a new handshake at once and checks B's device
// certificate itself: B can send, the young person reads it, the reply
// reads at B, and what the young person typed while back in the queue is
// sealed for B, not for the lost counsellor. B cannot read what was said
// before (no key wrap reached B's device): each such message is reported
// undecryptable once, and the lost counsellor's note once, unreadable. A
// relay that swaps B's key exchange key (a server lying about who answered)
// is caught by the young person's client, which then sends nothing. A
// transfer of such a chat is secured again with the receiver too. And the
// same in the young person's page in Chromium.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { startServer, until } from './harness.mjs';
import { contactClient as orgContactClient, organisation, counsellor as orgCounsellor, initOrg } from './org.mjs';
import { ContactClient } from '../../client-web/js/helpline.js';
import { SecureContact, SecureStaff } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';
import { launch, noBrowser } from './browser.mjs';

const sodium = await E.ready();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const GRACE = 5; // seconds: the smallest queue.counsellor_grace the daemon allows

// Every event a secure client emits, by type.
function record(sc) {
  const box = { message: [], security: [], undecryptable: [], note: [], secured: [], system: [] };
  for (const k of Object.keys(box)) sc.on(k, (m) => box[k].push(m));
  return box;
}

// How often each seq appears in a list of events.
const countBySeq = (evs) => evs.reduce((m, e) => m.set(e.seq, (m.get(e.seq) ?? 0) + 1), new Map());

async function daemon() {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-requeue-'));
  initOrg(dir);
  const ini = join(dir, 'requeue.ini');
  // Counsellors take chats themselves (no offers), so each step knows who holds the chat.
  writeFileSync(ini, `[queue]\nrouting = pull\ncounsellor_grace = ${GRACE}\n`);
  return startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
}

// A relay between a young person and the daemon that, once armed, rewrites
// the key exchange key of every accept it passes on, as a malicious server
// would.
async function keySwapRelay(port) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  const mitm = sodium.crypto_kx_keypair();
  const relay = { armed: false, swapped: 0, port: 0, close: () => wss.close() };
  wss.on('connection', (down, req) => {
    const up = new WebSocket(`ws://127.0.0.1:${port}/ws`, req.headers['sec-websocket-protocol']);
    const queue = [];
    up.on('open', () => { for (const m of queue.splice(0)) up.send(m); });
    down.on('message', (d) => { if (up.readyState === 1) up.send(String(d)); else queue.push(String(d)); });
    up.on('message', (d) => {
      const m = JSON.parse(String(d));
      if (relay.armed && m.type === 'chat.event' && m.kind === 'accept') {
        const p = E.unb64(m.payload);
        p.set(mitm.publicKey, 8); // u64 hello_seq ‖ staff_kx_pk ‖ ...
        m.payload = E.b64(p);
        relay.swapped++;
      }
      down.send(JSON.stringify(m));
    });
    down.on('close', () => up.close());
    up.on('close', () => down.close());
  });
  await new Promise((r) => wss.on('listening', r));
  relay.port = wss.address().port;
  return relay;
}

test('a chat back from the queue is secured again with the counsellor who takes it', { timeout: 240000 }, async (t) => {
  const srv = await daemon();
  const opened = [];
  const track = (c) => { opened.push(c); return c; };
  const counsellor = (o, name) => orgCounsellor(srv, o, name, 'counsellor', track);
  const secureStaff = (o, c) => new SecureStaff({ client: c.client, device: c.device, rootPk: o.rootPk });
  try {
    const o = await organisation(srv, track, 'rqadmin');

    await t.test('B takes the requeued chat: a new handshake at once, both ways readable, earlier events reported once', async () => {
      const A = await counsellor(o, 'rqalice');
      const B = await counsellor(o, 'rqbob');
      const sA = secureStaff(o, A), sB = secureStaff(o, B);
      const boxA = record(sA), boxB = record(sB);
      const rawB = []; // the events B's client delivered, as they came
      B.client.on('event', (ev) => rawB.push(ev));
      const y = new SecureContact({ client: orgContactClient(srv, track), rootPk: o.rootPk });
      const boxY = record(y);
      await y.start({ topics: 'sextortion', language: 'en' });
      const conv = y.conversation;
      assert.equal((await sA.take()).conversation, conv);
      await until(() => y.session.current, 'the handshake with A');
      const epochA = y.session.current;
      assert.equal(boxY.secured[0].device, E.deviceSubject(A.device.keys.signPk), 'the page names the device it verified');
      const before = (await y.send('they want money by tonight')).seq;
      await until(() => boxA.message.find((m) => m.text === 'they want money by tonight'), 'A reads');
      const replyA = (await sA.send(conv, 'You are not in trouble. Do not pay.')).seq;
      await until(() => boxY.message.find((m) => m.text === 'You are not in trouble. Do not pay.'), 'the young person reads A');
      const noteA = (await sA.note(conv, 'threat with a deadline, young person is 14')).seq;

      // A's connection is lost for good; after the grace period the chat
      // goes back to the queue.
      A.client.close();
      await until(() => boxY.system.find((m) => m.text === 'counsellor_lost'), 'the chat to go back to the queue', (GRACE + 10) * 1000);
      // Typed while back in the queue: held for the next counsellor's
      // handshake, not sealed for A's epoch (A is gone, B could not read it).
      const waiting = y.send('are you still there?');
      await sleep(300);
      assert.equal(y.session.current, epochA, 'no new epoch before someone takes the chat');

      const taken = await sB.take();
      assert.equal(taken.conversation, conv);
      // The take's sync replayed A's counsellor_lost: B's client still
      // follows the chat (it is resynced after a reconnect, from where it was).
      assert.ok(B.client.streams.has(conv), 'B keeps the chat\'s stream');
      assert.equal(B.client.streams.get(conv).lastSeq, Math.max(...rawB.map((e) => e.seq)), `stream at ${B.client.streams.get(conv).lastSeq}, delivered ${JSON.stringify(rawB.map((e) => [e.seq, e.kind]))}`);
      await until(() => y.session.current > epochA && sB.session(conv).epochs.has(y.session.current), 'a handshake with B');
      const epochB = y.session.current;
      assert.deepEqual(boxY.secured.map((s) => s.epoch), [epochA, epochB], JSON.stringify({ y: boxY.secured, b: boxB.secured }));
      assert.equal(boxY.secured[1].device, E.deviceSubject(B.device.keys.signPk), 'the page verified B\'s device');
      assert.deepEqual(boxB.secured.map((s) => s.epoch), [epochB], JSON.stringify({ y: boxY.secured, b: boxB.secured }));
      const w = await waiting;
      await until(() => boxB.message.find((m) => m.text === 'are you still there?'), 'B reads what was typed in the queue');
      assert.equal(E.parseHeader(E.unb64(rawB.find((ev) => ev.seq === w.seq).payload)).epoch, epochB, 'sealed in B\'s epoch');

      await sB.send(conv, 'Hi, I am a counsellor too. I am here now.');
      await until(() => boxY.message.find((m) => m.text === 'Hi, I am a counsellor too. I am here now.'), 'the young person reads B');
      await y.send('ok thank you');
      await until(() => boxB.message.find((m) => m.text === 'ok thank you'), 'B reads the reply');
      // B's connection drops for a moment: what was said meanwhile comes with the resync.
      B.client.backoff.min = B.client.backoff.max = 4000; // away long enough for a message to miss it, even on a busy machine
      const back = new Promise((r) => { const off = B.client.on('online', () => { off(); r(); }); });
      B.client.conn.kill();
      await y.send('did you get this?');
      assert.ok(!B.client.online);
      await back;
      await until(() => boxB.message.find((m) => m.text === 'did you get this?'), 'B reads what was sent while it was away');

      // What came before the requeue was never wrapped to B's device: each
      // earlier message is undecryptable at B, once; A's note is there but
      // unreadable, once. Nothing was a security problem.
      const und = countBySeq(boxB.undecryptable);
      assert.deepEqual([...und.keys()].sort((a, b) => a - b), [before, replyA], JSON.stringify({ und: [...und], before, replyA, delivered: rawB.map((e) => [e.seq, e.kind]) }));
      assert.ok([...und.values()].every((n) => n === 1), `undecryptable once each: ${JSON.stringify([...und])}`);
      const notes = boxB.note.filter((n) => n.seq === noteA);
      assert.equal(notes.length, 1, JSON.stringify(boxB.note));
      assert.equal(notes[0].text, null);
      assert.ok([...countBySeq(boxB.note).values()].every((n) => n === 1));
      // A later loadWraps (the console does one on every reconnect) that
      // brings nothing new emits nothing again.
      const counts = [boxB.undecryptable.length, boxB.note.length];
      await sB.loadWraps(conv);
      assert.deepEqual([boxB.undecryptable.length, boxB.note.length], counts, JSON.stringify({ und: boxB.undecryptable, notes: boxB.note }));
      assert.deepEqual([...boxA.security, ...boxB.security, ...boxY.security], [], JSON.stringify({ a: boxA.security, b: boxB.security, y: boxY.security }));
      assert.ok(!boxB.message.find((m) => m.text === 'they want money by tonight'), 'B cannot read what the young person told A');

      // B hands the chat on to C. C's sync of the whole history replays A's
      // counsellor_lost too: C still answers the hello the page sends after
      // "transferred", the page checks C's device, and C reads B's epoch
      // from B's wraps (not A's: B never had them).
      const C = await counsellor(o, 'rqcarl');
      const sC = secureStaff(o, C);
      const boxC = record(sC);
      await C.client.shiftStart();
      await sB.transfer(conv, C.id, 'taken from the queue after A was lost');
      await until(() => boxY.secured.length === 3, 'a handshake with C');
      assert.equal(boxY.secured[2].device, E.deviceSubject(C.device.keys.signPk), 'the page verified C\'s device');
      assert.deepEqual(boxC.secured.map((x) => x.epoch), [boxY.secured[2].epoch], JSON.stringify({ y: boxY.secured, c: boxC.secured }));
      assert.ok(C.client.streams.has(conv), 'C keeps the chat\'s stream');
      await until(() => boxC.message.find((m) => m.text === 'ok thank you'), 'C reads B\'s epoch');
      await until(() => boxC.note.find((n) => n.kind === 'transfer' && n.text === 'taken from the queue after A was lost'), 'C reads the handover note');
      await sC.send(conv, 'Hello, I am taking over.');
      await until(() => boxY.message.find((m) => m.text === 'Hello, I am taking over.'), 'the young person reads C');
      assert.ok([...countBySeq(boxC.undecryptable).values()].every((n) => n === 1));
      assert.ok([...countBySeq(boxC.note.filter((n) => n.text === null)).values()].every((n) => n === 1));
      assert.deepEqual([...boxC.security, ...boxY.security], [], JSON.stringify({ c: boxC.security, y: boxY.security }));
    });

    await t.test('a relay that swaps the new counsellor\'s key is caught by the young person, who then sends nothing', async () => {
      const A = await counsellor(o, 'rqanna');
      const B = await counsellor(o, 'rqben');
      const sA = secureStaff(o, A), sB = secureStaff(o, B);
      const boxB = record(sB);
      const relay = await keySwapRelay(srv.port);
      const yc = track(new ContactClient({ url: `ws://127.0.0.1:${relay.port}/ws`, WebSocket, backoff: { minMs: 50, maxMs: 200 } }));
      const y = new SecureContact({ client: yc, rootPk: o.rootPk, keysTimeoutMs: 1500 });
      const boxY = record(y);
      y.on('system', (m) => { if (m.text === 'counsellor_lost') relay.armed = true; });
      try {
        await y.start({ language: 'en' });
        const conv = y.conversation;
        await sA.take();
        await until(() => y.session.current, 'the honest handshake with A');
        const epochA = y.session.current;
        await y.send('hello?');
        A.client.close();
        await until(() => relay.armed, 'the chat to go back to the queue', (GRACE + 10) * 1000);
        await sB.take();
        await until(() => boxY.security.length, 'the young person to notice the swapped key');
        assert.equal(relay.swapped, 1);
        assert.equal(boxY.security[0].code, 'bad_signature');
        assert.equal(y.session.current, epochA, 'no keys derived from the swapped key');
        assert.equal(boxY.secured.length, 1);
        // B's device did answer (it has keys of its own), but nothing the young
        // person types goes out, in A's epoch or any other.
        await until(() => boxB.secured.length, 'B to answer');
        await assert.rejects(y.send('this must never be sent'), (e) => e.code === 'no_keys');
        await sB.send(conv, 'can you read me?');
        await sleep(500);
        assert.ok(!boxY.message.find((m) => m.text === 'can you read me?'), 'nothing of B\'s opens at the young person');
        const h = await B.client.request({ type: 'chat.sync', conversation: conv, last_seq: 0 });
        assert.ok(h.count > 0);
        assert.ok(!boxB.message.find((m) => m.text === 'this must never be sent'));
      } finally {
        yc.close();
        relay.close();
      }
    });

    await t.test('in the young person\'s page: back to the queue, taken by B, the chat carries on', { skip: noBrowser }, async () => {
      const A = await counsellor(o, 'rqamy');
      const B = await counsellor(o, 'rqbill');
      const sA = secureStaff(o, A), sB = secureStaff(o, B);
      const boxB = record(sB), boxA = record(sA);
      const browser = await launch();
      try {
        const page = await browser.newPage();
        const problems = [];
        page.on('pageerror', (e) => problems.push(String(e)));
        await page.route((url) => !/^https?:\/\/127\.0\.0\.1[:/]/.test(url.href), (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>x</title>' }));
        await page.goto(`${srv.url}/`);
        await page.click('#start');
        await page.click('#go');
        await page.locator('#position').waitFor();
        const taken = await sA.take();
        await page.locator('[data-screen="chat"]').waitFor();
        await sA.send(taken.conversation, 'Hello, I am here.');
        await page.locator('li.theirs', { hasText: 'Hello, I am here.' }).waitFor();
        await page.fill('#text', 'hi');
        await page.press('#text', 'Enter');
        await until(() => boxA.message.find((m) => m.text === 'hi'), 'A reads the page');
        A.client.close();
        await page.locator('[data-screen="waiting"]').waitFor({ timeout: (GRACE + 10) * 1000 });
        await page.fill('#text', 'hello? anyone?');
        await page.press('#text', 'Enter');
        await sB.take();
        await page.locator('[data-screen="chat"]').waitFor();
        await until(() => boxB.message.find((m) => m.text === 'hello? anyone?'), 'B reads what the page typed in the queue');
        await sB.send(taken.conversation, 'I am another counsellor. I can see you are waiting.');
        await page.locator('li.theirs', { hasText: 'I am another counsellor.' }).waitFor();
        await page.fill('#text', 'thanks');
        await page.press('#text', 'Enter');
        await until(() => boxB.message.find((m) => m.text === 'thanks'), 'B reads the page');
        assert.equal(await page.locator('#banner.danger').count(), 0, 'no security warning');
        assert.deepEqual(boxB.security, []);
        assert.deepEqual(problems, []);
      } finally {
        await browser.close();
      }
    });
  } finally {
    for (const c of opened) c.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    srv.cleanup();
  }
});
