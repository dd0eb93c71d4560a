// e2e.test.mjs: end-to-end encryption against the real daemon (chat.envelopes
// = strict, its default), with Node clients built from the page's own
// modules (helpline.js, secure.js, e2e.js): the trust chain set up as an
// organisation would (helplinectl init, an admin's device certified with the
// root key, staff devices certified by the admin's device); a whole chat
// both ways; the database, its WAL and the daemon's log afterwards hold none
// of the plaintext; every bad input the server must refuse; a server that
// swaps the counsellor's key (a relay rewriting the accept) is caught by the
// young person's client, and so is one that lets a revoked device answer
// (the page asks for that device's revocations itself); a transfer keeps the chat readable for the new
// counsellor and not for a third; a counsellor's reload loses nothing; and
// a young person comes back with their return code days later (the daemon
// restarted with a simulated clock) and reads the reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { startServer, until } from './harness.mjs';
import { ctl, totp, stepNow, origin } from './staff.mjs';
import { contactClient as orgContactClient, organisation as orgOrganisation, counsellor as orgCounsellor, staffIdOf, initOrg } from './org.mjs';
import { ContactClient, StaffClient } from '../../client-web/js/helpline.js';
import { SecureContact, SecureStaff, registerDevice, certifyDevice, inboxLeave, inboxRead, inboxOpenMessage, inboxSealReply } from '../../client-web/js/secure.js';
import * as E from '../../client-web/js/e2e.js';

const sodium = await E.ready();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const DAY = 86400000;
const LIGHT = { opslimit: 1, memlimit: 8192 }; // Argon2id cost for tests only (the pages use INTERACTIVE)

// Collects 'message' and 'security' events of a secure client.
function inbox(sc) {
  const box = { messages: [], security: [] };
  sc.on('message', (m) => box.messages.push(m));
  sc.on('security', (m) => box.security.push(m));
  return box;
}

// Every client a test makes, closed at the end (they would otherwise keep
// reconnecting to a stopped daemon).
const opened = [];
const track = (c) => { opened.push(c); return c; };
const contactClient = (srv) => orgContactClient(srv, track);
const organisation = (srv) => orgOrganisation(srv, track);
const counsellor = (srv, o, username, role) => orgCounsellor(srv, o, username, role, track);

const secureStaff = (o, c) => new SecureStaff({ client: c.client, device: c.device, rootPk: o.rootPk });

// A relay between a young person's page and the daemon, as a malicious
// server would be: fromPage sees each message the page sends, fromServer
// may rewrite each one the daemon sends (both parsed). shut() closes it
// and its connections.
async function relay(srv, { fromPage = () => {}, fromServer = (m) => m }) {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  wss.on('connection', (down, req) => {
    const up = new WebSocket(`ws://127.0.0.1:${srv.port}/ws`, req.headers['sec-websocket-protocol']);
    const queue = [];
    up.on('open', () => { for (const m of queue.splice(0)) up.send(m); });
    down.on('message', (d) => {
      fromPage(JSON.parse(String(d)));
      if (up.readyState === 1) up.send(String(d)); else queue.push(String(d));
    });
    up.on('message', (d) => down.send(JSON.stringify(fromServer(JSON.parse(String(d))))));
    down.on('close', () => up.close());
    up.on('close', () => down.close());
  });
  await new Promise((r) => wss.on('listening', r));
  wss.shut = () => { for (const c of wss.clients) c.terminate(); wss.close(); };
  return wss;
}

function dbBytes(dir) {
  return readdirSync(dir).filter((f) => f.startsWith('helpline.db')).map((f) => readFileSync(join(dir, f)));
}

test('end-to-end encrypted chats against the real daemon', { timeout: 240000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-e2e-'));
  const fakeSrv = { dir };
  initOrg(dir);
  // The team inbox key pair: the secret stays with the staff console.
  const team = sodium.crypto_box_keypair();
  ctl(fakeSrv, 'inbox-key', 'set', '--', E.b64(team.publicKey));
  // Counsellors take chats themselves here (no automatic offers), so each
  // step knows who holds which chat.
  const ini = join(dir, 'e2e.ini');
  // A small ws.outq_max: every read of history comes in pages (more).
  writeFileSync(ini, '[queue]\nrouting = pull\n[e2e]\ncheckpoint_every = 4\n[ws]\noutq_max = 8k\nmax_message = 3584\n');
  let srv = await startServer({ dir, envelopes: 'strict', args: ['--config', ini] });
  const phrases = [];
  try {
    const o = await organisation(srv);
    const A = await counsellor(srv, o, 'e2ealice');
    const B = await counsellor(srv, o, 'e2ebob');
    const C = await counsellor(srv, o, 'e2ecarol');
    const sA = secureStaff(o, A), sB = secureStaff(o, B), sC = secureStaff(o, C);
    const boxA = inbox(sA), boxB = inbox(sB), boxC = inbox(sC);

    // ---- a whole chat -------------------------------------------------
    const yc = contactClient(srv);
    const y = new SecureContact({ client: yc, rootPk: o.rootPk });
    const boxY = inbox(y);
    const asked = [];
    const ycRequest = yc.request.bind(yc);
    yc.request = (m) => { if (m.type === 'device.revocations') asked.push(m); return ycRequest(m); };
    await y.start({ topics: 'sextortion', language: 'en' });
    const conv = y.conversation;
    await A.client.shiftStart();
    await B.client.shiftStart();
    const taken = await sA.take();
    assert.equal(taken.conversation, conv);
    await until(() => y.session.current, 'the young person to verify the accept');
    assert.equal(boxY.security.length, 0, JSON.stringify(boxY.security));
    // The page asked for the revocations of the answering device and its
    // issuer only, never for the whole list.
    assert.deepEqual(asked.map((m) => m.hashes), [`${E.b64(E.certHash(A.device.cert))}.${E.b64(E.certHash(o.adminDevice.cert))}`]);

    await t.test('messages both ways, decrypted only at the ends', async () => {
      const ask = 'someone is threatening to share a photo of me unless I pay';
      const reply = 'Thank you for telling us. You are not in trouble, and we can help.';
      phrases.push(ask, reply, 'héllo, es-tu là ? 💬');
      const ack = await y.send(ask);
      assert.ok(ack.seq > 0 && ack.chain);
      await until(() => boxA.messages.find((m) => m.text === ask), 'the counsellor to read it');
      await sA.send(conv, reply);
      await until(() => boxY.messages.find((m) => m.text === reply), 'the young person to read the reply');
      await y.send('héllo, es-tu là ? 💬');
      await until(() => boxA.messages.find((m) => m.text === 'héllo, es-tu là ? 💬'), 'unicode');
      assert.deepEqual([...boxA.security, ...boxY.security], []);
      // Every event carries the chain head; the counsellor recomputes it.
      // ws.outq_max is 8k here, so history comes in pages of ~2 KiB.
      const h = await A.client.request({ type: 'chat.sync', conversation: conv, last_seq: 0 });
      assert.ok(h.more && h.count >= 1 && h.up_to < h.last_seq, JSON.stringify(h));
      const all = await A.client.syncAll(conv, 0);
      assert.ok(!all.more && all.up_to === all.last_seq && all.last_seq >= 5, JSON.stringify(all));
    });

    await t.test('the server refuses bad envelopes and handshakes with specific errors', async () => {
      const raw = yc.conn;
      const env = E.unb64(E.b64(sodium.randombytes_buf(10)));
      const send = (payload) => raw.request({ type: 'chat.send', payload: E.b64(payload) }).then((r) => r, (e) => e.code);
      assert.equal(await send(env), 'bad_envelope');
      const s = y.session, k = s.epochs.get(s.current);
      const mk = sodium.randombytes_buf(32);
      const make = (over) => E.seal({ conv: Number(conv), dir: 1, epoch: s.current, n: k.next, mk, text: 'x', ...over });
      assert.equal(await send(make({ dir: 2 })), 'bad_envelope'); // the staff direction from a young person
      assert.equal(await send(make({ conv: Number(conv) + 1000 })), 'bad_envelope'); // another conversation
      assert.equal(await send(make({ epoch: s.current - 1 })), 'stale_epoch');
      assert.equal(await send(make({ n: k.next + 1 })), 'bad_counter'); // a gap
      assert.equal(await send(make({ n: k.next - 1 })), 'bad_counter'); // a replay
      assert.equal(await send(make({ seenSeq: 1, seenHead: sodium.randombytes_buf(32) })), 'bad_envelope');
      assert.equal(await send(make({ seenSeq: 100000 })), 'bad_envelope');
      const ok = await y.send('still fine after all that');
      phrases.push('still fine after all that');
      assert.ok(ok.seq);
      // Handshake input.
      const hello = (pk) => raw.request({ type: 'e2e.hello', kx_pk: pk }).then((r) => r.type, (e) => e.code);
      assert.equal(await hello(E.b64(new Uint8Array(32))), 'bad_handshake');
      assert.equal(await hello(E.b64(sodium.from_hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'))), 'bad_handshake');
      assert.equal(await hello('short'), 'bad_field');
      const staffRaw = A.client.conn;
      const acc = (over) => staffRaw.request({ type: 'e2e.accept', conversation: conv, hello: 1, kx_pk: E.b64(sodium.crypto_kx_keypair().publicKey), cert: E.b64(A.device.cert), issuer: E.b64(A.device.issuer), sig: E.b64(new Uint8Array(64)), ...over }).then((r) => r.type, (e) => e.code);
      assert.equal(await acc({}), 'bad_handshake'); // answers an old hello, bad signature
      assert.equal(await acc({ sig: 'AAAA' }), 'bad_field');
      assert.equal(await acc({ cert: E.b64(B.device.cert) }), 'bad_handshake'); // another member of staff's device
      assert.equal(await C.client.request({ type: 'e2e.accept', conversation: conv, hello: 1, kx_pk: E.b64(new Uint8Array(32)), cert: E.b64(C.device.cert), issuer: E.b64(C.device.issuer), sig: E.b64(new Uint8Array(64)) }).then(() => 'ok', (e) => e.code), 'forbidden');
      // A young person cannot answer, a counsellor cannot say hello.
      assert.equal(await raw.request({ type: 'e2e.accept', conversation: conv, hello: 1, kx_pk: 'x'.repeat(43), cert: 'x', issuer: 'x', sig: 'x'.repeat(86) }).then(() => 'ok', (e) => e.code), 'forbidden');
      assert.equal(await staffRaw.request({ type: 'e2e.hello', kx_pk: 'x'.repeat(43) }).then(() => 'ok', (e) => e.code), 'forbidden');
      // The chat still works, and nobody's client saw a security problem.
      await sA.send(conv, 'we are still here');
      phrases.push('we are still here');
      await until(() => boxY.messages.find((m) => m.text === 'we are still here'), 'message after the refusals');
      assert.deepEqual([...boxA.security, ...boxY.security], []);
    });

    // The young person's connection drops and comes back: a new handshake,
    // then text is sent in the new epoch and read by the counsellor.
    const reconnectAndSend = async (text) => {
      const before = y.session.current;
      yc.conn.kill();
      await until(() => yc.online && y.session.current > before, 'a new epoch after the reconnect');
      await y.send(text);
      phrases.push(text);
      await until(() => boxA.messages.find((m) => m.text === text), 'message in the new epoch');
    };

    await t.test('a reconnect re-runs the handshake and nothing is lost', async () => {
      await reconnectAndSend('after the drop');
      await sA.send(conv, 'got it');
      await until(() => boxY.messages.find((m) => m.text === 'got it'), 'reply in the new epoch');
    });

    await t.test('a reply in a new epoch that overtakes the accept\'s ack is held for it, not called undecryptable', async () => {
      // The young person answers the accept event at once; on a busy
      // machine that reply can reach the counsellor in the same read as
      // the ack of the accept (which names the epoch). Here the ack is
      // handed back only after the reply has been delivered.
      const undecryptable = [];
      const off = sA.on('undecryptable', (m) => undecryptable.push(m));
      const request = A.client.request.bind(A.client);
      let held = 0;
      A.client.request = async (obj) => {
        const r = await request(obj);
        if (obj.type !== 'e2e.accept') return r;
        await new Promise((resolve) => {
          const t0 = setTimeout(resolve, 10000);
          const stop = A.client.on('event', (ev) => {
            if (ev.conversation === conv && ev.kind === 'msg' && ev.seq > r.seq) { held++; clearTimeout(t0); stop(); setTimeout(resolve, 0); }
          });
        });
        return r;
      };
      try {
        await reconnectAndSend('straight after the accept');
        assert.equal(held, 1, 'the reply came before the ack was handed back');
        assert.deepEqual(undecryptable, []);
        assert.deepEqual(boxA.security, []);
      } finally {
        A.client.request = request;
        off?.();
      }
    });

    await t.test('an accept that overtakes the hello\'s ack is kept for it, and a reply in its epoch held', async () => {
      // The mirror of the test above, at the young person: the counsellor's
      // device answers the hello event at once, so its accept and a first
      // reply can reach the young person in the same read as the ack of the
      // hello, which tells the page which of its hellos (and key pairs) the
      // accept answers. (Found under load: the page then ignored the accept
      // as one for another tab, and never had keys for the new counsellor.)
      // Here the ack is handed back only after both were delivered.
      const undecryptable = [];
      const offU = y.on('undecryptable', (m) => undecryptable.push(m));
      const text = 'written before your hello was acknowledged';
      const before = y.session.current;
      const offA = sA.on('secured', (m) => {
        if (m.conversation !== conv || m.epoch <= before) return;
        offA();
        sA.send(conv, text).catch(() => {});
      });
      const request = yc.request.bind(yc);
      let overtaken = null;
      yc.request = async (obj) => {
        const r = await request(obj);
        if (obj.type !== 'e2e.hello') return r;
        const kinds = [];
        await new Promise((resolve) => {
          const t0 = setTimeout(resolve, 10000);
          const stop = yc.on('event', (ev) => {
            if (ev.seq <= r.seq) return;
            kinds.push(ev.kind);
            if (ev.kind === 'msg') { clearTimeout(t0); stop(); setTimeout(resolve, 0); }
          });
        });
        overtaken = kinds;
        return r;
      };
      try {
        yc.conn.kill();
        await until(() => yc.online && y.session.current > before, 'the young person to use the accept that came first');
        assert.deepEqual(overtaken, ['accept', 'msg'], 'the accept and the reply came before the hello\'s ack was handed back');
        await until(() => boxY.messages.find((m) => m.text === text), 'the held reply to open');
        assert.deepEqual(undecryptable, []);
        assert.deepEqual([...boxY.security, ...boxA.security], []);
        phrases.push(text, 'and I can answer in it');
        await y.send('and I can answer in it');
        await until(() => boxA.messages.find((m) => m.text === 'and I can answer in it'), 'the counsellor to read the answer');
      } finally {
        yc.request = request;
        offU?.();
        offA?.();
      }
    });

    await t.test('a counsellor who reloads reads the whole chat again from their self-wraps', async () => {
      const again = track(new StaffClient({ url: `ws://127.0.0.1:${srv.port}/ws`, WebSocket, wsOptions: { origin: origin(srv) } }));
      // A second login in the same 30 s step needs the next code (a TOTP
      // code is never accepted twice).
      await again.login(A.acct.username, A.acct.password, totp(A.acct.secret, stepNow() + 1));
      const s2 = new SecureStaff({ client: again, device: A.device, rootPk: o.rootPk, answerHellos: false });
      const box2 = inbox(s2);
      again.stream(conv);
      await s2.loadWraps(conv);
      await again.sync(conv);
      await until(() => box2.messages.length >= 6, 'the history after a reload');
      for (const p of ['someone is threatening to share a photo of me unless I pay', 'after the drop', 'got it'])
        assert.ok(box2.messages.find((m) => m.text === p), p);
      assert.deepEqual(box2.security, []);
      again.close();
    });

    await t.test('a transfer keeps the chat readable for the new counsellor and not for a third', async () => {
      const epochBefore = y.session.current;
      await sA.transfer(conv, B.id);
      // B is assigned, loads the wraps, reads the history.
      B.client.stream(conv);
      await sB.loadWraps(conv);
      await B.client.sync(conv);
      await until(() => boxB.messages.find((m) => m.text === 'someone is threatening to share a photo of me unless I pay'), 'B reads the history');
      await sB.send(conv, 'Hi, I am taking over from my colleague.');
      phrases.push('Hi, I am taking over from my colleague.');
      await until(() => boxY.messages.find((m) => m.text === 'Hi, I am taking over from my colleague.'), 'the young person reads B');
      await y.send('ok thank you');
      await until(() => boxB.messages.find((m) => m.text === 'ok thank you'), 'B reads the young person');
      // The announced transfer made the young person's page run a new
      // handshake, answered by B's device (whose certificate it checked).
      await until(() => y.session.current > epochBefore && sB.session(conv).epochs.has(y.session.current), 'a handshake with B');
      assert.deepEqual(boxB.security, []);
      // C is not a party: no events, no wraps; and B's wraps do not open with C's keys.
      await assert.rejects(C.client.request({ type: 'key.wraps', conversation: conv }), (e) => e.code === 'forbidden');
      await assert.rejects(C.client.request({ type: 'chat.sync', conversation: conv, last_seq: 0 }), (e) => e.code === 'forbidden');
      const wraps = await B.client.keyWraps(conv);
      // With this daemon's 8 KiB queue a page of wraps holds about 2 KiB.
      const first = await B.client.request({ type: 'key.wraps', conversation: conv });
      assert.ok(first.more && first.wraps.length >= 1 && first.wraps.length < wraps.length, `key.wraps in pages: ${first.wraps.length} of ${wraps.length}`);
      const two = first.wraps.concat((await B.client.request({ type: 'key.wraps', conversation: conv, after: first.next })).wraps);
      assert.deepEqual(two.map((w) => w.wrap), wraps.slice(0, two.length).map((w) => w.wrap), 'the next page goes on where the first ended');
      for (const w of wraps)
        assert.throws(() => E.openWrap({ sealed: E.unb64(w.sealed), sig: E.unb64(w.sig), conv: Number(conv), recipientKeys: C.device.keys, recipientCert: C.device.cert, signerPk: A.device.keys.signPk }), (e) => e.code === 'bad_wrap');
      assert.deepEqual(boxC.messages, []);
    });

    await t.test('a server that swaps the counsellor\'s key is detected by the young person', async () => {
      // A relay that rewrites the accept's key exchange key, as a malicious
      // server would, between the young person and the real daemon.
      const mitm = sodium.crypto_kx_keypair();
      const wss = await relay(srv, {
        fromServer: (m) => {
          if (m.type === 'chat.event' && m.kind === 'accept') {
            const p = E.unb64(m.payload);
            p.set(mitm.publicKey, 8);
            m.payload = E.b64(p);
          }
          return m;
        },
      });
      const yc2 = track(new ContactClient({ url: `ws://127.0.0.1:${wss.address().port}/ws`, WebSocket }));
      try {
        const y2 = new SecureContact({ client: yc2, rootPk: o.rootPk, keysTimeoutMs: 1000 });
        const box2 = inbox(y2);
        await y2.start({ language: 'en' });
        await sC.take();
        await until(() => box2.security.length, 'the young person to notice');
        assert.equal(box2.security[0].code, 'bad_signature');
        assert.equal(y2.session.current, 0, 'no keys were derived from the swapped key');
        await assert.rejects(y2.send('this must never be sent'), (e) => e.code === 'no_keys');
      } finally {
        // Closed whatever happened: a relay left listening keeps the test
        // process alive past its failure.
        yc2.close();
        wss.shut();
      }
    });

    await t.test('revoked devices: refused by the server, listed for clients, and a revoked admin device certifies nothing', async () => {
      const cHash = E.certHash(C.device.cert);
      const revocation = E.makeRevocation(cHash, Math.floor(Date.now() / 1000), o.adminDevice.keys.signSk);
      // Only an admin, only with their own live admin device, only a statement naming this certificate.
      await assert.rejects(A.client.request({ type: 'device.revoke', device: C.device.id, revocation: E.b64(revocation), issuer: E.b64(o.adminDevice.cert) }), (e) => e.code === 'forbidden');
      const wrongCert = E.makeRevocation(E.certHash(B.device.cert), 1, o.adminDevice.keys.signSk);
      await assert.rejects(o.admin.request({ type: 'device.revoke', device: C.device.id, revocation: E.b64(wrongCert), issuer: E.b64(o.adminDevice.cert) }), (e) => e.code === 'bad_field');
      await o.admin.request({ type: 'device.revoke', device: C.device.id, revocation: E.b64(revocation), issuer: E.b64(o.adminDevice.cert) });
      const list = await C.client.request({ type: 'device.revocations' });
      assert.ok(E.revokedSet(list.revocations, o.rootPk, Math.floor(Date.now() / 1000)).has(sodium.to_hex(cHash)));
      // Those of one or two certificates only (what a young person's page asks).
      const of = async (hashes) => (await C.client.request({ type: 'device.revocations', hashes })).revocations;
      const mine = list.revocations.filter((r) => r.revocation === E.b64(revocation));
      assert.deepEqual(await of(E.b64(cHash)), mine);
      assert.deepEqual(await of(`${E.b64(E.certHash(B.device.cert))}.${E.b64(cHash)}`), mine);
      assert.deepEqual(await of(E.b64(E.certHash(B.device.cert))), []);
      for (const bad of ['x', `${E.b64(cHash)}.`, `${E.b64(cHash)}${E.b64(cHash)}`, `${E.b64(cHash)}.${E.b64(cHash)}.${E.b64(cHash)}`, `${E.b64(cHash).slice(0, 42)}!`])
        await assert.rejects(of(bad), (e) => e.code === 'bad_field' && e.field === 'hashes', bad);
      // C's device can no longer answer a young person.
      const yc3 = contactClient(srv);
      const y3 = new SecureContact({ client: yc3, rootPk: o.rootPk });
      await y3.start({ language: 'en' });
      await sC.take();
      await until(() => boxC.security.find((s) => s.code === 'bad_handshake'), 'the server to refuse the revoked device');
      assert.equal(y3.session.current, 0);
      // Nor can anyone wrap keys to it.
      await assert.rejects(C.client.request({ type: 'key.wrap', conversation: y3.conversation, to_device: B.device.id, from_device: C.device.id, sealed: E.b64(new Uint8Array(64)), sig: E.b64(new Uint8Array(64)) }), (e) => e.code === 'bad_field');
      yc3.close();
      // A server that lets the revoked device answer anyway (a relay that
      // swaps the real accept for one C's device signs over this young
      // person's hello): the page asks for that device's revocations
      // itself and refuses it.
      let youngPk = null;
      const forger = await relay(srv, {
        fromPage: (m) => { if (m.type === 'e2e.hello') youngPk = E.unb64(m.kx_pk, 32); },
        fromServer: (m) => {
          if (m.type === 'chat.event' && m.kind === 'accept' && youngPk) {
            const real = E.parseAcceptPayload(E.unb64(m.payload));
            const forged = E.acceptMessage({ conv: Number(m.conversation), helloSeq: real.helloSeq, youngPk, deviceKeys: C.device.keys, cert: C.device.cert, issuer: o.adminDevice.cert });
            m.payload = E.b64(E.encodeAcceptPayload({ helloSeq: real.helloSeq, kxPk: forged.kxPk, cert: C.device.cert, issuer: o.adminDevice.cert, sig: forged.sig }));
          }
          return m;
        },
      });
      const yc5 = track(new ContactClient({ url: `ws://127.0.0.1:${forger.address().port}/ws`, WebSocket }));
      try {
        const y5 = new SecureContact({ client: yc5, rootPk: o.rootPk, keysTimeoutMs: 1000 });
        const box5 = inbox(y5);
        await y5.start({ language: 'en' });
        await sB.take();
        await until(() => box5.security.length || y5.session.current, 'the young person to check the revoked device');
        assert.equal(box5.security[0]?.code, 'revoked', JSON.stringify(box5.security));
        assert.equal(y5.session.current, 0, 'no keys from a revoked device');
      } finally {
        yc5.close();
        forger.shut();
      }
      // The admin's second device (a laptop, say) is lost: the root revokes
      // it with helplinectl; it certifies nothing any more, and what it
      // certified before fails every check.
      const adminId = staffIdOf(srv, 'e2eadmin');
      const laptop = await registerDevice(o.admin, adminId);
      ctl(srv, 'certify-device', '--root-key', o.rootFile, String(laptop.id));
      laptop.cert = E.unb64((await o.admin.devices(adminId)).find((d) => d.device === laptop.id).cert);
      const D = await counsellor(srv, o, 'e2edave');
      const dev2 = await registerDevice(D.client, D.id);
      const early = (await o.admin.devices(D.id)).find((d) => d.device === dev2.id);
      const earlyCert = await certifyDevice(o.admin, laptop, early, { role: E.ROLE.COUNSELLOR });
      const out = ctl(srv, 'revoke-device', '--root-key', o.rootFile, String(laptop.id));
      assert.match(out, /revoked/);
      assert.match(ctl(srv, 'list-devices'), new RegExp(`${laptop.id}\\s+e2eadmin\\s+revoked`));
      const dev3 = await registerDevice(D.client, D.id);
      const waiting = (await o.admin.devices(D.id)).find((d) => d.device === dev3.id);
      await assert.rejects(certifyDevice(o.admin, laptop, waiting, { role: E.ROLE.COUNSELLOR }), (e) => e.code === 'forbidden');
      const rl = await D.client.request({ type: 'device.revocations' });
      const revokedNow = E.revokedSet(rl.revocations, o.rootPk, Math.floor(Date.now() / 1000));
      assert.ok(revokedNow.has(sodium.to_hex(E.certHash(laptop.cert))));
      assert.throws(() => E.verifyChain({ cert: earlyCert, issuer: laptop.cert }, o.rootPk, Math.floor(Date.now() / 1000), { revoked: revokedNow }), (e) => e.code === 'revoked');
      // The first admin device and what it certified are untouched.
      assert.doesNotThrow(() => E.verifyChain({ cert: B.device.cert, issuer: B.device.issuer }, o.rootPk, Math.floor(Date.now() / 1000), { revoked: revokedNow }));
      // The device list comes in pages (a quarter of ws.outq_max, 8k here),
      // revoked devices last, so that they never push a live one off the
      // first page; devices() reads them all, each once.
      const first = await o.admin.request({ type: 'device.list' });
      const all = await o.admin.devices();
      assert.ok(first.more && first.next && first.devices.length < all.length, JSON.stringify(first).slice(0, 200));
      assert.equal(new Set(all.map((d) => d.device)).size, all.length);
      const revokedFlags = all.map((d) => d.revoked);
      assert.ok(revokedFlags.includes(true));
      assert.deepEqual(revokedFlags, [...revokedFlags].sort(), 'revoked ones last');
    });

    await t.test('the hash chain: every event\'s head stored and sent; STAMP-signed checkpoints every 4 events and at the end', async () => {
      const sql = (q) => execFileSync('sqlite3', ['-readonly', join(dir, 'helpline.db'), q], { encoding: 'utf8' }).trim();
      // End the first chat: a checkpoint at its last event.
      const ended = await B.client.request({ type: 'chat.end', conversation: conv });
      const org = await B.client.request({ type: 'e2e.org' });
      assert.equal(org.root_pk, E.b64(o.rootPk));
      const stamp = E.verifyCert(E.unb64(org.stamp_cert), o.rootPk, Math.floor(Date.now() / 1000), E.ROLE.STAMP);
      // The staff view of the whole history: recompute the chain.
      const events = [];
      const off = B.client.on('event', (ev) => { if (ev.conversation === conv) events.push(ev); });
      B.client.streams.delete(conv);
      B.client.stream(conv);
      await B.client.sync(conv).catch(() => {});
      off();
      const heads = new Map(sql(`SELECT seq, hex(chain) FROM event WHERE conversation_id=${conv} ORDER BY seq`).split('\n').map((l) => { const [s, h] = l.split('|'); return [Number(s), h.toLowerCase()]; }));
      assert.equal(heads.size, ended.seq);
      const kinds = new Map(sql(`SELECT seq, kind, sender, visibility, hex(payload), at FROM event WHERE conversation_id=${conv} ORDER BY seq`).split('\n').map((l) => { const [s, kind, sender, vis, p, at] = l.split('|'); return [Number(s), { kind, sender, vis, p, at: Number(at) }]; }));
      let prev = null;
      for (let seq = 1; seq <= ended.seq; seq++) {
        const e = kinds.get(seq);
        const head = E.chainHead({ prev, conv: Number(conv), seq, at: e.at, kind: e.kind, sender: e.sender, visibility: e.vis, payload: e.p ? sodium.from_hex(e.p) : null });
        assert.equal(sodium.to_hex(head), heads.get(seq), `chain head at ${seq}`);
        prev = head;
      }
      for (const ev of events) assert.equal(sodium.to_hex(E.unb64(ev.chain)), heads.get(ev.seq), `sent head at ${ev.seq}`);
      // Checkpoints: every 4th event and the last, each signed by the STAMP key over the stored head.
      const cps = sql(`SELECT seq, at, hex(head), hex(signature) FROM checkpoint WHERE conversation_id=${conv} ORDER BY seq`).split('\n').map((l) => { const [s, at, h, sig] = l.split('|'); return { seq: Number(s), at: Number(at), head: h.toLowerCase(), sig: sodium.from_hex(sig) }; });
      const want = [...Array(Math.floor(ended.seq / 4)).keys()].map((i) => 4 * (i + 1));
      if (ended.seq % 4) want.push(ended.seq);
      assert.deepEqual(cps.map((c) => c.seq), want);
      for (const c of cps) {
        assert.equal(c.head, heads.get(c.seq));
        assert.ok(E.verifyCheckpoint({ conv: Number(conv), seq: c.seq, head: sodium.from_hex(c.head), at: c.at }, c.sig, stamp.signPk));
        assert.throws(() => E.verifyCheckpoint({ conv: Number(conv), seq: c.seq + 1, head: sodium.from_hex(c.head), at: c.at }, c.sig, stamp.signPk));
      }
    });

    // Every phrase sent, grepped in the database, its WAL and the logs.
    const logs = [];
    const assertNoPlaintext = () => {
      const files = dbBytes(dir);
      assert.ok(files.length >= 1);
      for (const p of phrases) {
        for (const f of files) {
          assert.ok(!f.includes(Buffer.from(p)), `the database holds "${p}"`);
          assert.ok(!f.includes(Buffer.from(p.slice(0, 12))), `the database holds part of "${p}"`);
        }
        for (const l of [...logs, srv.stderr]) assert.ok(!l.includes(p.slice(0, 12)), `the log holds "${p}"`);
      }
    };
    await t.test('no plaintext in the database, its WAL or the log', assertNoPlaintext);

    // ---- a return code, days later ---------------------------------------
    await t.test('a young person returns with their return code days later and reads the reply', async () => {
      const zc = contactClient(srv);
      const z = new SecureContact({ client: zc, rootPk: o.rootPk });
      const boxZ = inbox(z);
      await z.start({ language: 'en' });
      const zconv = z.conversation;
      const code = E.newReturnCode();
      await z.setReturnCode(code, LIGHT);
      // Typed while still waiting in the queue: held until keys exist.
      const early = z.send('typed while I was waiting in the queue');
      phrases.push('typed while I was waiting in the queue');
      await sleep(300);
      await sB.take();
      await until(() => z.session.current, 'the handshake');
      assert.ok((await early).seq > 0);
      await until(() => boxB.messages.find((m) => m.text === 'typed while I was waiting in the queue'), 'B reads the early message');
      await z.send('can I come back later to read your answer?');
      await until(() => boxB.messages.find((m) => m.text === 'can I come back later to read your answer?'), 'B reads');
      // A second handshake (as on every reconnect): a new epoch, and a
      // message in it.
      const firstEpoch = z.session.current;
      await z.hello();
      await until(() => z.session.current !== firstEpoch, 'the second handshake');
      await z.send('one more thing, in the new keys');
      phrases.push('one more thing, in the new keys');
      await until(() => boxB.messages.find((m) => m.text === 'one more thing, in the new keys'), 'B reads the second epoch');
      await until(() => z.session.wrapped.size === 2, 'both epochs wrapped to the return key');
      // The counsellor's device wraps to itself only what is new: the first
      // handshake's epoch and note key, then the second epoch alone.
      const toB = async () => (await B.client.keyWraps(zconv)).filter((w) => w.to_device === B.device.id);
      await until(async () => (await toB()).length === 2, "the counsellor's second self-wrap");
      const bSizes = (await toB()).map((w) => E.unb64(w.sealed).length);
      assert.equal(bSizes[0] - bSizes[1], 72, `one entry fewer in the second: ${bSizes}`);
      // Four reconnects' handshakes more: six wraps to the return key, more
      // than one page of them holds here (contact.returned: wraps_more).
      for (let i = 0; i < 4; i++) {
        const before = z.session.current;
        await z.hello();
        await until(() => z.session.current !== before, `handshake ${i + 3}`);
      }
      await until(() => z.session.wrapped.size === 6, 'six epochs wrapped to the return key');
      // The young person closes the tab: in-memory keys are gone.
      zc.close();
      const answer = 'Yes. Here is what you can do next: report the account, and do not pay.';
      phrases.push(answer);
      await sB.send(zconv, answer);
      // A replayed challenge answer is refused.
      const probe = contactClient(srv);
      await probe.connect(); probe.online = true;
      const rk = E.returnKeys(code, LIGHT);
      const ch = await probe.request({ type: 'inbox.challenge', return_pk: E.b64(rk.signPk) });
      const sig = E.signChallenge('helpline-return-v1', E.unb64(ch.nonce, 32), rk.signPk, rk.signSk);
      const first = await probe.request({ type: 'contact.return', return_pk: E.b64(rk.signPk), signature: E.b64(sig) });
      assert.equal(first.conversation, zconv);
      const probe2 = contactClient(srv);
      await probe2.connect(); probe2.online = true;
      await assert.rejects(probe2.request({ type: 'contact.return', return_pk: E.b64(rk.signPk), signature: E.b64(sig) }), (e) => e.code === 'auth_failed');
      // An inbox-fetch answer is not a return answer (labels differ).
      const ch2 = await probe2.request({ type: 'inbox.challenge', return_pk: E.b64(rk.signPk) });
      const inboxSig = E.signChallenge('helpline-inbox-fetch-v1', E.unb64(ch2.nonce, 32), rk.signPk, rk.signSk);
      await assert.rejects(probe2.request({ type: 'contact.return', return_pk: E.b64(rk.signPk), signature: E.b64(inboxSig) }), (e) => e.code === 'auth_failed');
      probe.close(); probe2.close();
      const resume = zc.resume;

      // Out of hours: another young person leaves a message with their own
      // return code; a counsellor opens it with the team key and replies.
      const code2 = E.newReturnCode();
      const outOfHours = 'I could not talk tonight, can you tell me what to do about the messages';
      const inboxReply = 'We read your message. Please do not reply to them; block and report the account.';
      phrases.push(outOfHours, inboxReply);
      const w = contactClient(srv);
      const status = await (async () => { await w.connect(); w.online = true; return w.request({ type: 'line.status' }); })();
      await inboxLeave(w, { code: code2, text: outOfHours, teamPk: status.inbox_pk, opts: LIGHT });
      // Four more, so that the thread is read back in pages (ws.outq_max 8k).
      for (let i = 1; i <= 4; i++) await inboxLeave(w, { code: code2, text: `and one more thing (${i})`, teamPk: status.inbox_pk, opts: LIGHT });
      w.close();
      const list = await B.client.request({ type: 'inbox.list' });
      const item = list.messages.find((m) => !m.reply);
      assert.equal(await inboxOpenMessage(item.sealed, team), outOfHours);
      await B.client.request({ type: 'inbox.reply', message: item.message, reply: await inboxSealReply(inboxReply, item.reply_pk) });

      // Three days later (the daemon restarted with a simulated clock).
      const stopped = await srv.stop();
      assert.equal(stopped.code, 0, stopped.stderr.slice(-2000));
      logs.push(stopped.stderr);
      srv = await startServer({ dir, envelopes: 'strict', args: ['--config', ini], env: { HL_TEST_CLOCK_SKEW_MS: String(3 * DAY) } });
      assert.match(srv.stderr, /server\.clock_skew/);
      // The resume secret has expired by now...
      const old = contactClient(srv);
      await old.connect(); old.online = true;
      await assert.rejects(old.request({ type: 'contact.resume', resume, last_seq: 0 }), (e) => e.code === 'auth_failed');
      old.close();
      // ... but the return code opens the chat, and the reply decrypts.
      const back = contactClient(srv);
      const zz = new SecureContact({ client: back, rootPk: o.rootPk });
      const boxZZ = inbox(zz);
      const r = await zz.returnWith(code, LIGHT);
      assert.equal(r.conversation, zconv);
      assert.equal(r.more, true, 'the history came in pages (ws.outq_max is 8k here)');
      assert.ok(r.events.every((e) => !String(e.from).startsWith('staff:')));
      assert.ok(boxZZ.messages.find((m) => m.text === answer), JSON.stringify(boxZZ));
      assert.ok(boxZZ.messages.find((m) => m.text === 'can I come back later to read your answer?' && m.mine));
      assert.ok(boxZZ.messages.find((m) => m.text === 'one more thing, in the new keys' && m.mine));
      // The answer (in the sixth epoch) opened, so the wraps past the
      // reply's first page were fetched. Each epoch wrapped once, on its
      // own: the wraps grow with the handshakes, not with their square.
      const allWraps = await back.keyWraps(zconv);
      assert.ok(r.wraps_more && r.wraps.length < allWraps.length, `wraps in pages: ${r.wraps.length} of ${allWraps.length}`);
      const wrapSizes = allWraps.map((w) => E.unb64(w.sealed).length);
      assert.equal(wrapSizes.length, 6, JSON.stringify(wrapSizes));
      assert.ok(wrapSizes.every((n) => n === wrapSizes[0]), `one epoch in each wrap: ${wrapSizes}`);
      assert.deepEqual(boxZZ.security, []);
      // The out-of-hours reply, read with the other code three days later.
      const w2 = contactClient(srv);
      const ask = w2.request.bind(w2);
      let fetches = 0;
      w2.request = (o) => { if (o.type === 'inbox.fetch') fetches++; return ask(o); };
      const thread = await inboxRead(w2, { code: code2, opts: LIGHT });
      assert.ok(fetches >= 2, `the thread came in ${fetches} pages`);
      assert.equal(thread.length, 5);
      assert.equal(thread[0].reply, inboxReply);
      assert.deepEqual(thread.slice(1).map((m) => m.reply), [null, null, null, null]);
      assert.ok(thread.every((m, i) => i === 0 || m.message > thread[i - 1].message), 'in order, once each');
      assert.deepEqual(await inboxRead(w2, { code: code, opts: LIGHT }), []);
      w2.close();
      // A wrong code finds nothing.
      const wrong = new SecureContact({ client: contactClient(srv), rootPk: o.rootPk });
      await assert.rejects(wrong.returnWith(E.newReturnCode(), LIGHT), (e) => e.code === 'auth_failed');
      wrong.client.close();
      // Once the chat has ended, the code still reads it back, the wraps
      // past the first page too (key.wraps on the ended chat, read-only).
      await back.end();
      back.close();
      const later = new SecureContact({ client: contactClient(srv), rootPk: o.rootPk });
      const boxLater = inbox(later);
      const r2 = await later.returnWith(code, LIGHT);
      assert.equal(r2.state, 'ended');
      assert.ok(r2.wraps_more && !r2.resume);
      assert.ok(boxLater.messages.find((m) => m.text === answer), JSON.stringify(boxLater));
      assert.deepEqual(boxLater.security, []);
      later.client.close();
      assertNoPlaintext();
      void boxZ;
    });
  } finally {
    for (const c of opened) c.close();
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    if (!existsSync(join(dir, 'keep'))) srv.cleanup();
  }
});
