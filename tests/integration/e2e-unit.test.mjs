// e2e-unit.test.mjs: client-web/js/e2e.js on its own (no daemon): the
// shared vectors still match, the word list is the EFF list byte for byte,
// a full handshake and messages both ways, and every bad input the client
// must refuse (docs/crypto.md): substituted keys and certificates, expired,
// wrong-role, unsigned and revoked certificates, low-order keys, tampered
// ciphertexts, commitments that do not match, counters reused, other
// conversations' envelopes, wrong lengths, a history that differs, wraps for
// someone else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../client-web/js/e2e.js';
import { WORDS, WORDLIST_SHA256 } from '../../client-web/js/wordlist.js';
import { build } from '../vectors/make-e2e.mjs';

const sodium = await E.ready();
const here = dirname(fileURLToPath(import.meta.url));
const NOW = Math.floor(Date.now() / 1000);
const code = (fn) => { try { fn(); } catch (e) { return e.code ?? e.message; } return 'no error'; };

// An organisation: root -> admin device -> devices.
function org() {
  const root = sodium.crypto_sign_keypair();
  const admin = E.newDeviceKeys();
  const issuer = E.signCert(E.encodeCertBody({ role: E.ROLE.ADMIN, subject: E.deviceSubject(admin.signPk), signPk: admin.signPk, boxPk: admin.boxPk, notBefore: NOW - 60, notAfter: NOW + 3600 }), root.privateKey);
  const device = (role = E.ROLE.COUNSELLOR, { notAfter = NOW + 3600, by = admin } = {}) => {
    const keys = E.newDeviceKeys();
    const cert = E.signCert(E.encodeCertBody({ role, subject: E.deviceSubject(keys.signPk), signPk: keys.signPk, boxPk: keys.boxPk, notBefore: NOW - 60, notAfter }), by.signSk);
    return { keys, cert, issuer };
  };
  return { root, admin, issuer, device };
}

// A handshake as the server relays it; tamper(payload fields) can change
// what the young person receives.
function handshake(o, dev, { conv = 5, helloSeq = 3, tamper } = {}) {
  const young = sodium.crypto_kx_keypair();
  const a = E.acceptMessage({ conv, helloSeq, youngPk: young.publicKey, deviceKeys: dev.keys, cert: dev.cert, issuer: dev.issuer });
  let accept = { helloSeq, kxPk: a.kxPk, cert: dev.cert, issuer: dev.issuer, sig: a.sig };
  if (tamper) accept = { ...accept, ...tamper(accept) };
  const payload = E.encodeAcceptPayload(accept);
  return { young, a, payload, verify: (extra = {}) => E.youngVerifyAccept({ conv, helloSeq, young, accept: E.parseAcceptPayload(payload), rootPk: o.root.publicKey, now: NOW, ...extra }) };
}

test('the shared vectors are what e2e.js computes (C checks the same file)', () => {
  const file = JSON.parse(readFileSync(join(here, '..', 'vectors', 'e2e.json'), 'utf8'));
  assert.deepEqual(build(), file);
});

test('the word list is the EFF large word list, byte for byte, and credited', () => {
  assert.equal(WORDS.length, 7776);
  assert.equal(new Set(WORDS).size, 7776);
  const dice = (i) => Array.from({ length: 5 }, (_, k) => Math.floor(i / 6 ** (4 - k)) % 6 + 1).join('');
  const text = WORDS.map((w, i) => `${dice(i)}\t${w}\n`).join('');
  assert.equal(createHash('sha256').update(text).digest('hex'), WORDLIST_SHA256);
  assert.match(E.WORDLIST_CREDIT, /Electronic Frontier Foundation.*CC BY 3\.0 US/);
});

test('a handshake gives both sides the same roots, and messages flow both ways', () => {
  const o = org(), dev = o.device();
  const h = handshake(o, dev);
  const y = h.verify();
  const s = E.staffRoots({ T: h.a.T, kx: { publicKey: h.a.kxPk, privateKey: h.a.kxSk }, youngPk: h.young.publicKey });
  assert.deepEqual(y.root1, s.root1);
  assert.deepEqual(y.root2, s.root2);
  assert.notDeepEqual(y.root1, y.root2);
  const ySend = new E.Chain(y.root1), sRecv = new E.Chain(s.root1), sSend = new E.Chain(s.root2), yRecv = new E.Chain(y.root2);
  for (let i = 0; i < 3; i++) {
    const m = ySend.next();
    const env = E.seal({ conv: 5, dir: 1, epoch: 7, n: m.n, mk: m.mk, text: `I am scared ${i} 😟` });
    assert.equal(E.open({ env, conv: 5, dir: 1, mk: sRecv.keyFor(m.n) }).text, `I am scared ${i} 😟`);
    const r = sSend.next();
    const back = E.seal({ conv: 5, dir: 2, epoch: 7, n: r.n, mk: r.mk, text: `You are safe here ${i}` });
    assert.equal(E.open({ env: back, conv: 5, dir: 2, mk: yRecv.keyFor(r.n) }).text, `You are safe here ${i}`);
  }
  // Padding hides lengths up to 256-byte blocks.
  const m = ySend.next();
  assert.equal(E.seal({ conv: 5, dir: 1, epoch: 7, n: m.n, mk: m.mk, text: 'a' }).length, 118 + 32 + 256 + 16);
});

test('a server that swaps the counsellor\'s key or certificate is detected by the young person', () => {
  const o = org(), dev = o.device(), other = o.device();
  // The server's own key exchange key in place of the device's.
  const mitm = sodium.crypto_kx_keypair();
  assert.equal(code(() => handshake(o, dev, { tamper: () => ({ kxPk: mitm.publicKey }) }).verify()), 'bad_signature');
  // Another (genuine) device's certificate with this device's signature.
  assert.equal(code(() => handshake(o, dev, { tamper: () => ({ cert: other.cert }) }).verify()), 'bad_signature');
  // A certificate the server made itself, under an admin key of its own.
  const fake = E.newDeviceKeys();
  const fakeIssuer = E.signCert(E.encodeCertBody({ role: E.ROLE.ADMIN, subject: 'dev:x', signPk: fake.signPk, boxPk: fake.boxPk, notBefore: NOW - 60, notAfter: NOW + 60 }), fake.signSk);
  const forged = { keys: fake, issuer: fakeIssuer, cert: E.signCert(E.encodeCertBody({ role: E.ROLE.COUNSELLOR, subject: 'dev:y', signPk: fake.signPk, boxPk: fake.boxPk, notBefore: NOW - 60, notAfter: NOW + 60 }), fake.signSk) };
  assert.equal(code(() => handshake(o, forged).verify()), 'bad_signature');
  // The young person's own key replaced in what the device signed: the
  // device signed a transcript with another young key.
  const h = handshake(o, dev);
  assert.equal(code(() => E.youngVerifyAccept({ conv: 5, helloSeq: 3, young: sodium.crypto_kx_keypair(), accept: E.parseAcceptPayload(h.payload), rootPk: o.root.publicKey, now: NOW })), 'bad_signature');
  // Another conversation's accept, or another hello's.
  assert.equal(code(() => E.youngVerifyAccept({ conv: 6, helloSeq: 3, young: h.young, accept: E.parseAcceptPayload(h.payload), rootPk: o.root.publicKey, now: NOW })), 'bad_signature');
  assert.equal(code(() => E.youngVerifyAccept({ conv: 5, helloSeq: 4, young: h.young, accept: E.parseAcceptPayload(h.payload), rootPk: o.root.publicKey, now: NOW })), 'bad_signature');
});

test('expired, wrong-role, unsigned and revoked certificates are refused', () => {
  const o = org();
  assert.equal(code(() => handshake(o, o.device(E.ROLE.COUNSELLOR, { notAfter: NOW - 1 })).verify()), 'expired');
  assert.equal(code(() => handshake(o, o.device(E.ROLE.ADMIN)).verify()), 'wrong_role');
  // The service's STAMP certificate is not a device's.
  const stamp = E.newDeviceKeys();
  const stampCert = E.signCert(E.encodeCertBody({ role: E.ROLE.STAMP, subject: 'stamp', signPk: stamp.signPk, boxPk: new Uint8Array(32), notBefore: NOW - 60, notAfter: NOW + 60 }), o.admin.signSk);
  assert.equal(code(() => handshake(o, { keys: stamp, cert: stampCert, issuer: o.issuer }).verify()), 'wrong_role');
  assert.equal(code(() => E.encodeCertBody({ role: E.ROLE.STAMP, subject: 'stamp', signPk: stamp.signPk, boxPk: stamp.boxPk, notBefore: 0, notAfter: 1 })), 'bad_cert');
  // Certified by the root directly, skipping the admin device.
  assert.equal(code(() => handshake(o, o.device(E.ROLE.COUNSELLOR, { by: { signSk: o.root.privateKey } })).verify()), 'bad_signature');
  const dev = o.device();
  const flipped = Uint8Array.from(dev.cert);
  flipped[flipped.length - 1] ^= 1;
  assert.equal(code(() => handshake(o, { ...dev, cert: flipped }).verify()), 'bad_signature');
  // Revoked: the device, or the admin device that issued it.
  assert.equal(code(() => handshake(o, dev).verify({ revoked: new Set([sodium.to_hex(E.certHash(dev.cert))]) })), 'revoked');
  assert.equal(code(() => handshake(o, dev).verify({ revoked: new Set([sodium.to_hex(E.certHash(dev.issuer))]) })), 'revoked');
  // A revocation list only counts statements the root or an admin device signed.
  const good = E.makeRevocation(E.certHash(dev.cert), NOW, o.admin.signSk);
  const forged = E.makeRevocation(E.certHash(dev.issuer), NOW, sodium.crypto_sign_keypair().privateKey);
  const set = E.revokedSet([{ revocation: E.b64(good), issuer: E.b64(o.issuer) }, { revocation: E.b64(forged), issuer: null }], o.root.publicKey, NOW);
  assert.deepEqual([...set], [sodium.to_hex(E.certHash(dev.cert))]);
  // Supervisors' devices may answer too.
  assert.doesNotThrow(() => handshake(o, o.device(E.ROLE.SUPERVISOR)).verify());
});

test('all-zero and low-order keys fail the handshake', () => {
  const o = org(), dev = o.device();
  for (const bad of ['00'.repeat(32), '01' + '00'.repeat(31), 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800']) {
    const key = sodium.from_hex(bad);
    // A genuinely signed accept with a low-order key: the key exchange refuses it.
    const young = sodium.crypto_kx_keypair();
    const T = E.transcriptHash({ conv: 5, helloSeq: 3, youngPk: young.publicKey, staffPk: key, cert: dev.cert, issuer: dev.issuer });
    const accept = { helloSeq: 3, kxPk: key, cert: dev.cert, issuer: dev.issuer, sig: sodium.crypto_sign_detached(T, dev.keys.signSk) };
    assert.equal(code(() => E.youngVerifyAccept({ conv: 5, helloSeq: 3, young, accept, rootPk: o.root.publicKey, now: NOW })), 'low_order', bad);
    // And the device refuses a low-order young key.
    assert.equal(code(() => E.staffRoots({ T, kx: sodium.crypto_kx_keypair(), youngPk: key })), 'low_order', bad);
  }
});

test('tampered ciphertexts, mismatched commitments, counters, conversations, lengths and histories are refused', () => {
  const root = sodium.randombytes_buf(32);
  const send = new E.Chain(root), recv = new E.Chain(root);
  const m = send.next();
  const heads = new Map([[4, sodium.randombytes_buf(32)]]);
  const env = E.seal({ conv: 9, dir: 2, epoch: 3, n: m.n, mk: m.mk, text: 'hello', seenSeq: 4, seenHead: heads.get(4) });
  const mk = recv.keyFor(0);
  assert.equal(E.open({ env, conv: 9, dir: 2, mk, knownHead: (s) => heads.get(s) }).text, 'hello');
  // Every byte of the envelope is covered.
  for (const i of [0, 1, 5, 12, 20, 25, 40, 70, 100, 118, 200, env.length - 1]) {
    const t = Uint8Array.from(env);
    t[i] ^= 1;
    assert.notEqual(code(() => E.open({ env: t, conv: 9, dir: 2, mk })), 'no error', `byte ${i}`);
  }
  const t = Uint8Array.from(env);
  t[300] ^= 1;
  assert.equal(code(() => E.open({ env: t, conv: 9, dir: 2, mk })), 'decrypt_failed');
  // A commitment that does not match the body: encrypt one body under a header committing to another.
  const kf = sodium.randombytes_buf(32), nonce = sodium.randombytes_buf(24);
  const honest = E.seal({ conv: 9, dir: 2, epoch: 3, n: 1, mk, text: 'I will pay', kf, nonce });
  const evilBody = E.concat(E.u8(1), E.utf8('I never said that'));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(E.concat(kf, sodium.pad(evilBody, 256)), E.concat(E.utf8('helpline-msg-v1'), honest.subarray(0, 94)), null, nonce, mk);
  const lying = E.concat(honest.subarray(0, 118), ct);
  assert.equal(code(() => E.open({ env: lying, conv: 9, dir: 2, mk })), 'bad_commitment');
  // Another conversation's envelope (a cross-conversation replay), the other direction.
  assert.equal(code(() => E.open({ env, conv: 10, dir: 2, mk })), 'wrong_conversation');
  assert.equal(code(() => E.open({ env, conv: 9, dir: 1, mk })), 'wrong_direction');
  // A message key is used once: a replayed counter has no key any more.
  assert.equal(code(() => recv.keyFor(0)), 'bad_counter');
  assert.equal(code(() => recv.keyFor(5000)), 'bad_counter');
  // Skipped keys are kept for messages that arrive late.
  const s2 = new E.Chain(root), r2 = new E.Chain(root);
  const k0 = s2.next(), k1 = s2.next();
  assert.deepEqual(r2.keyFor(1), k1.mk);
  assert.deepEqual(r2.keyFor(0), k0.mk);
  // A sender who saw another history than the recipient.
  assert.equal(code(() => E.open({ env, conv: 9, dir: 2, mk, knownHead: () => sodium.randombytes_buf(32) })), 'history_mismatch');
  // Wrong lengths, before libsodium.
  for (const n of [0, 117, 118 + 303, 118 + 305, 118 + 304 + 255]) assert.equal(code(() => E.parseHeader(new Uint8Array(n))), 'bad_length', `length ${n}`);
  assert.equal(code(() => E.seal({ conv: 9, dir: 2, epoch: 3, n: 0, mk: new Uint8Array(31), text: 'x' })), 'bad_length');
  assert.equal(code(() => E.unb64('abc', 32)), 'bad_length');
  assert.equal(code(() => E.parseAcceptPayload(new Uint8Array(41))), 'bad_length');
  assert.equal(code(() => E.parseCert(new Uint8Array(100))), 'bad_cert');
});

test('a key wrap opens for its recipient device only, and only with its signer\'s signature', () => {
  const o = org(), from = o.device(), to = o.device(), third = o.device();
  const epochs = [{ epoch: 7, root1: sodium.randombytes_buf(32), root2: sodium.randombytes_buf(32) }];
  const w = E.makeWrap({ conv: 5, epochs, recipientBoxPk: to.keys.boxPk, recipientCert: to.cert, signerSk: from.keys.signSk });
  const got = E.openWrap({ ...w, conv: 5, recipientKeys: to.keys, recipientCert: to.cert, signerPk: from.keys.signPk });
  assert.deepEqual(got, epochs);
  assert.equal(code(() => E.openWrap({ ...w, conv: 5, recipientKeys: third.keys, recipientCert: to.cert, signerPk: from.keys.signPk })), 'bad_wrap');
  assert.equal(code(() => E.openWrap({ ...w, conv: 5, recipientKeys: third.keys, recipientCert: third.cert, signerPk: from.keys.signPk })), 'bad_wrap');
  assert.equal(code(() => E.openWrap({ ...w, conv: 6, recipientKeys: to.keys, recipientCert: to.cert, signerPk: from.keys.signPk })), 'bad_wrap');
  assert.equal(code(() => E.openWrap({ ...w, conv: 5, recipientKeys: to.keys, recipientCert: to.cert, signerPk: third.keys.signPk })), 'bad_wrap');
});

test('device keys at rest open only with their passphrase', () => {
  const keys = E.newDeviceKeys();
  const lim = { opslimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memlimit: sodium.crypto_pwhash_MEMLIMIT_MIN };
  const sealed = E.sealDeviceKeys(keys, 'a long shift passphrase', lim);
  assert.deepEqual(E.openDeviceKeys(sealed, 'a long shift passphrase'), keys);
  assert.equal(code(() => E.openDeviceKeys(sealed, 'a long shift passphrasE')), 'bad_passphrase');
  assert.ok(!JSON.stringify(sealed).includes(E.b64(keys.signSk)));
});

test('return codes: six words from the list, normalised, deterministic keys', () => {
  const c = E.newReturnCode();
  const words = c.split(' ');
  assert.equal(words.length, 6);
  for (const w of words) assert.ok(WORDS.includes(w));
  assert.notEqual(E.newReturnCode(), c);
  assert.equal(E.normalizeReturnCode(`  ${c.toUpperCase().replaceAll(' ', '   ')} `), c);
  for (const bad of ['', 'abacus abdomen', 'abacus abdomen abdominal abide abiding zzzz', 42]) assert.equal(code(() => E.normalizeReturnCode(bad)), 'bad_code');
  const lim = { opslimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memlimit: sodium.crypto_pwhash_MEMLIMIT_MIN };
  assert.deepEqual(E.returnKeys(c, lim).signPk, E.returnKeys(c.toUpperCase(), lim).signPk);
});
