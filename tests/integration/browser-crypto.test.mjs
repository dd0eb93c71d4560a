// browser-crypto.test.mjs: the end-to-end crypto module in a real browser
// (Debian's chromium driven by playwright-core), loaded from the daemon
// under the daemon's own Content-Security-Policy: the vendored libsodium
// wasm starts, e2e.js reproduces the shared vectors there too, a handshake
// and messages work, and staff device keys survive a reload in IndexedDB,
// sealed under a passphrase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from './harness.mjs';
import { launch, noBrowser } from './browser.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, '..', 'vectors', 'e2e.json'), 'utf8'));

test('e2e.js in Chromium under the daemon\'s CSP: vectors, handshake, keys kept in IndexedDB', { skip: noBrowser, timeout: 120000 }, async () => {
  const srv = await startServer();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`${m.text()} ${m.location()?.url ?? ''}`); });
    const res = await page.goto(`${srv.url}/`);
    assert.match(res.headers()['content-security-policy'], /wasm-unsafe-eval/);

    const out = await page.evaluate(async (v) => {
      const E = await import('/js/e2e.js');
      const sodium = await E.ready();
      const hex = (b) => sodium.to_hex(b);
      // The shared vectors, recomputed in the browser.
      const hs = v.handshake;
      const T = E.transcriptHash({ conv: hs.conv, helloSeq: hs.hello_seq, youngPk: sodium.from_hex(hs.young_pk), staffPk: sodium.from_hex(hs.staff_pk), cert: sodium.from_hex(v.certs.cert), issuer: sodium.from_hex(v.certs.issuer) });
      const env = v.envelopes[0];
      const sealed = E.seal({ conv: env.conv, dir: env.dir, epoch: env.epoch, n: env.n, seenSeq: env.seen_seq, seenHead: env.seen_seq ? sodium.from_hex(env.seen_head) : undefined, mk: sodium.from_hex(env.mk), body: sodium.from_hex(env.body), kf: sodium.from_hex(env.kf), nonce: sodium.from_hex(env.nonce) });
      const rk = E.returnKeys(v.return_code.code);
      // A handshake between two parties in this page, and a message each way.
      const root = sodium.crypto_sign_keypair(), admin = E.newDeviceKeys(), dev = E.newDeviceKeys();
      const now = Math.floor(Date.now() / 1000);
      const issuer = E.signCert(E.encodeCertBody({ role: 2, subject: E.deviceSubject(admin.signPk), signPk: admin.signPk, boxPk: admin.boxPk, notBefore: now - 9, notAfter: now + 99 }), root.privateKey);
      const cert = E.signCert(E.encodeCertBody({ role: 3, subject: E.deviceSubject(dev.signPk), signPk: dev.signPk, boxPk: dev.boxPk, notBefore: now - 9, notAfter: now + 99 }), admin.signSk);
      const young = sodium.crypto_kx_keypair();
      const a = E.acceptMessage({ conv: 1, helloSeq: 2, youngPk: young.publicKey, deviceKeys: dev, cert, issuer });
      const y = E.youngVerifyAccept({ conv: 1, helloSeq: 2, young, accept: { helloSeq: 2, kxPk: a.kxPk, cert, issuer, sig: a.sig }, rootPk: root.publicKey, now });
      const s = E.staffRoots({ T: a.T, kx: { publicKey: a.kxPk, privateKey: a.kxSk }, youngPk: young.publicKey });
      const m1 = new E.Chain(y.root1).next();
      const text = E.open({ env: E.seal({ conv: 1, dir: 1, epoch: 3, n: m1.n, mk: m1.mk, text: 'in the browser ✓' }), conv: 1, dir: 1, mk: new E.Chain(s.root1).keyFor(0) }).text;
      // Device keys sealed under a passphrase, kept in IndexedDB.
      const store = new E.KeyStore(E.idbBackend('helpline-test'));
      const keys = E.newDeviceKeys();
      await store.save('device', E.sealDeviceKeys(keys, 'night shift passphrase'));
      return { T: hex(T), envelope: hex(sealed), returnSign: hex(rk.signPk), text, signPk: hex(keys.signPk) };
    }, vectors);
    assert.equal(out.T, vectors.handshake.transcript);
    assert.equal(out.envelope, vectors.envelopes[0].envelope);
    assert.equal(out.returnSign, vectors.return_code.sign_pk);
    assert.equal(out.text, 'in the browser ✓');

    // A reload: the sealed keys are still there and open with the passphrase only.
    await page.reload();
    const back = await page.evaluate(async () => {
      const E = await import('/js/e2e.js');
      const sodium = await E.ready();
      const store = new E.KeyStore(E.idbBackend('helpline-test'));
      const obj = await store.load('device');
      let wrong = 'opened';
      try { E.openDeviceKeys(obj, 'guess'); } catch (e) { wrong = e.code; }
      const keys = E.openDeviceKeys(obj, 'night shift passphrase');
      return { signPk: sodium.to_hex(keys.signPk), wrong, stored: JSON.stringify(obj).length };
    });
    assert.equal(back.signPk, out.signPk);
    assert.equal(back.wrong, 'bad_passphrase');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    const r = await srv.stop();
    assert.equal(r.code, 0);
    srv.cleanup();
  }
});
