// e2e-unit.test.mjs: client-web/js/e2e.js on its own (no daemon): the
// shared vectors still match, the word list is the EFF list byte for byte,
// a full handshake and messages both ways, and every bad input the client
// must refuse (docs/crypto.md): substituted keys and certificates, expired,
// wrong-role, unsigned and revoked certificates, low-order keys, tampered
// ciphertexts, commitments that do not match, counters reused, other
// conversations' envelopes, wrong lengths, a history that differs, wraps for
// someone else, wrong passphrases.
// Run: cd tests && node --test integration/e2e-unit.test.mjs
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
const unhex = (h) => sodium.from_hex(h);
const hex = (b) => sodium.to_hex(b);
// The E2EError code fn throws ('no error' when it does not throw).
const code = (fn) => {
  try { fn(); } catch (e) { return e.code ?? `plain error: ${e.message}`; }
  return 'no error';
};
const FAST = { opslimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memlimit: sodium.crypto_pwhash_MEMLIMIT_MIN };

// An organisation: root -> admin device -> devices.
function org() {
  const root = sodium.crypto_sign_keypair();
  const admin = E.newDeviceKeys();
  const certify = (role, keys, by, { notBefore = NOW - 60, notAfter = NOW + 3600 } = {}) =>
    E.signCert(E.encodeCertBody({ role, subject: E.deviceSubject(keys.signPk), signPk: keys.signPk,
      boxPk: keys.boxPk, notBefore, notAfter }), by);
  const issuer = certify(E.ROLE.ADMIN, admin, root.privateKey);
  const device = (role = E.ROLE.COUNSELLOR, { notBefore, notAfter, by = admin } = {}) => {
    const keys = E.newDeviceKeys();
    return { keys, cert: certify(role, keys, by.signSk, { notBefore, notAfter }), issuer };
  };
  return { root, admin, issuer, device };
}

// A handshake as the server relays it; tamper(accept) can change what the
// young person receives. verify(extra) runs the young person's check.
function handshake(o, dev, { conv = 5, helloSeq = 3, tamper } = {}) {
  const young = sodium.crypto_kx_keypair();
  const a = E.acceptMessage({ conv, helloSeq, youngPk: young.publicKey, deviceKeys: dev.keys, cert: dev.cert,
    issuer: dev.issuer });
  let accept = { helloSeq, kxPk: a.kxPk, cert: dev.cert, issuer: dev.issuer, sig: a.sig };
  if (tamper) accept = { ...accept, ...tamper(accept) };
  const payload = E.encodeAcceptPayload(accept);
  const verify = (extra = {}) => E.youngVerifyAccept({ conv, helloSeq, young,
    accept: E.parseAcceptPayload(payload), rootPk: o.root.publicKey, now: NOW, ...extra });
  return { young, a, payload, verify };
}

test('the shared vectors are what e2e.js computes now, deterministically (C checks the same file)', () => {
  const file = JSON.parse(readFileSync(join(here, '..', 'vectors', 'e2e.json'), 'utf8'));
  assert.deepEqual(build(), file);
  assert.equal(JSON.stringify(build()), JSON.stringify(file));
  // And the file's outputs are accepted by the module's own checks.
  const hs = file.handshake, c = file.certs;
  const accept = E.parseAcceptPayload(unhex(hs.accept_payload));
  assert.equal(hex(accept.sig), hs.signature);
  const dev = E.verifyChain({ cert: unhex(c.cert), issuer: unhex(c.issuer) }, unhex(c.root_pk), file.now,
    { roles: [3], subject: c.device_subject }).device;
  assert.equal(dev.subject, c.device_subject);
  for (const v of file.envelopes) {
    const m = E.open({ env: unhex(v.envelope), conv: v.conv, dir: v.dir, mk: unhex(v.mk) });
    assert.equal(m.text, v.text);
    assert.equal(hex(m.c), v.commitment);
    assert.equal(unhex(v.envelope).length, 118 + 48 + 256 * v.blocks);
  }
  assert.equal(file.envelopes[1].blocks, 2);
  assert.ok(E.verifyCheckpoint(unhex(file.checkpoint.message), unhex(file.checkpoint.signature),
    unhex(file.checkpoint.stamp_pk)));
  const r = E.verifyRevocation(unhex(file.revocation.statement), unhex(file.revocation.signer_pk));
  assert.equal(hex(r.hash), c.cert_hash);
  assert.equal(r.at, file.revocation.at);
  const d = file.device_request;
  assert.ok(sodium.crypto_sign_verify_detached(unhex(d.signature), unhex(d.body), unhex(d.sign_pk)));
  const rk = file.return_code;
  assert.equal(hex(sodium.crypto_sign_ed25519_sk_to_pk(unhex(rk.sign_sk))), rk.sign_pk);
  assert.equal(hex(sodium.crypto_scalarmult_base(unhex(rk.box_sk))), rk.box_pk);
});

test('the word list is the EFF large word list, byte for byte, and credited', () => {
  assert.equal(WORDS.length, 7776);
  assert.equal(new Set(WORDS).size, 7776);
  const dice = (i) => Array.from({ length: 5 }, (_, k) => Math.floor(i / 6 ** (4 - k)) % 6 + 1).join('');
  const text = WORDS.map((w, i) => `${dice(i)}\t${w}\n`).join('');
  assert.equal(createHash('sha256').update(text).digest('hex'), WORDLIST_SHA256);
  assert.match(E.WORDLIST_CREDIT, /Electronic Frontier Foundation.*CC BY 3\.0 US/);
});

test('byte helpers: big-endian integers, base64url, H', () => {
  assert.deepEqual([...E.u16(0x1234)], [0x12, 0x34]);
  assert.deepEqual([...E.u64(2 ** 53 - 1)], [0, 0x1f, 255, 255, 255, 255, 255, 255]);
  assert.deepEqual([...E.u64(2n ** 64n - 1n)], Array(8).fill(255));
  assert.deepEqual([...E.i64(-1)], Array(8).fill(255));
  const bad = [() => E.u8(256), () => E.u32(-1), () => E.u64(1.5), () => E.u64(2 ** 53), () => E.u64('7')];
  for (const fn of bad) assert.equal(code(fn), 'bad_length');
  assert.deepEqual([...E.concat(E.u8(1), new Uint8Array([2, 3]))], [1, 2, 3]);
  assert.equal(E.b64(new Uint8Array([251, 255])), '-_8');
  assert.deepEqual([...E.unb64('-_8')], [251, 255]);
  assert.equal(E.H(new Uint8Array(0)).length, 32);
});

test('a handshake gives both sides the same roots, and messages flow both ways', () => {
  const o = org(), dev = o.device();
  const h = handshake(o, dev);
  const y = h.verify();
  const kx = { publicKey: h.a.kxPk, privateKey: h.a.kxSk };
  const s = E.staffRoots({ T: h.a.T, kx, youngPk: h.young.publicKey });
  assert.deepEqual(y.root1, s.root1);
  assert.deepEqual(y.root2, s.root2);
  assert.deepEqual(y.T, h.a.T);
  assert.notDeepEqual(y.root1, y.root2);
  assert.equal(y.device.subject, E.deviceSubject(dev.keys.signPk));
  const ySend = new E.Chain(y.root1), sRecv = new E.Chain(s.root1);
  const sSend = new E.Chain(s.root2), yRecv = new E.Chain(y.root2);
  for (let i = 0; i < 3; i++) {
    const m = ySend.next();
    assert.equal(m.n, i);
    const env = E.seal({ conv: 5, dir: 1, epoch: 7, n: m.n, mk: m.mk, text: `I am scared ${i} 😟` });
    const got = E.open({ env, conv: 5, dir: 1, mk: sRecv.keyFor(E.parseHeader(env).n) });
    assert.equal(got.text, `I am scared ${i} 😟`);
    assert.equal(got.n, i);
    assert.equal(got.epoch, 7);
    const r = sSend.next();
    const back = E.seal({ conv: 5, dir: 2, epoch: 7, n: r.n, mk: r.mk, text: `You are safe here ${i}` });
    const text = E.open({ env: back, conv: 5, dir: 2, mk: yRecv.keyFor(r.n) }).text;
    assert.equal(text, `You are safe here ${i}`);
  }
  // Padding hides lengths up to 256-byte blocks.
  const m = ySend.next();
  assert.equal(E.seal({ conv: 5, dir: 1, epoch: 7, n: m.n, mk: m.mk, text: 'a' }).length, 118 + 48 + 256);
});

test('a server that swaps the counsellor\'s key or certificate is detected by the young person', () => {
  const o = org(), dev = o.device(), other = o.device();
  // The server's own key exchange key in place of the device's.
  const mitm = sodium.crypto_kx_keypair();
  const swapped = (over) => code(() => handshake(o, dev, { tamper: () => over }).verify());
  assert.equal(swapped({ kxPk: mitm.publicKey }), 'bad_signature');
  // Another (genuine) device's certificate with this device's signature.
  assert.equal(swapped({ cert: other.cert }), 'bad_signature');
  // A certificate the server made itself, under an admin key of its own.
  const fake = E.newDeviceKeys();
  const fakeCert = (role) => E.signCert(E.encodeCertBody({ role, subject: 'dev:x', signPk: fake.signPk,
    boxPk: fake.boxPk, notBefore: NOW - 60, notAfter: NOW + 60 }), fake.signSk);
  const forged = { keys: fake, issuer: fakeCert(E.ROLE.ADMIN), cert: fakeCert(E.ROLE.COUNSELLOR) };
  assert.equal(code(() => handshake(o, forged).verify()), 'bad_signature');
  // The device signed a transcript with another young person's key.
  const h = handshake(o, dev);
  const again = (over) => E.youngVerifyAccept({ conv: 5, helloSeq: 3, young: h.young,
    accept: E.parseAcceptPayload(h.payload), rootPk: o.root.publicKey, now: NOW, ...over });
  assert.equal(code(() => again({ young: sodium.crypto_kx_keypair() })), 'bad_signature');
  // Another conversation's accept, or another hello's.
  assert.equal(code(() => again({ conv: 6 })), 'bad_signature');
  assert.equal(code(() => again({ helloSeq: 4 })), 'bad_signature');
  // Another organisation's root.
  assert.equal(code(() => again({ rootPk: sodium.crypto_sign_keypair().publicKey })), 'bad_signature');
  assert.equal(code(() => again({})), 'no error');
});

test('expired, wrong-role, unsigned and revoked certificates are refused', () => {
  const o = org();
  const withDevice = (role, opts) => code(() => handshake(o, o.device(role, opts)).verify());
  assert.equal(withDevice(E.ROLE.COUNSELLOR, { notAfter: NOW - 1 }), 'expired');
  assert.equal(withDevice(E.ROLE.COUNSELLOR, { notBefore: NOW + 5 }), 'expired');
  assert.equal(code(() => handshake(o, o.device(E.ROLE.ADMIN)).verify()), 'wrong_role');
  // Validity is inclusive at both ends.
  const edge = o.device(E.ROLE.COUNSELLOR, { notBefore: NOW, notAfter: NOW });
  assert.equal(code(() => E.verifyCert(edge.cert, o.admin.signPk, NOW, E.ROLE.COUNSELLOR)), 'no error');
  assert.equal(code(() => E.verifyCert(edge.cert, o.admin.signPk, NOW + 1, E.ROLE.COUNSELLOR)), 'expired');
  // The service's STAMP certificate is not a device's.
  const stamp = E.newDeviceKeys();
  const stampCert = E.signCert(E.encodeCertBody({ role: E.ROLE.STAMP, subject: 'stamp', signPk: stamp.signPk,
    boxPk: new Uint8Array(32), notBefore: NOW - 60, notAfter: NOW + 60 }), o.admin.signSk);
  const stampDev = { keys: stamp, cert: stampCert, issuer: o.issuer };
  assert.equal(code(() => handshake(o, stampDev).verify()), 'wrong_role');
  const bodyOf = (over) => () => E.encodeCertBody({ role: E.ROLE.STAMP, subject: 'stamp',
    signPk: stamp.signPk, boxPk: stamp.boxPk, notBefore: 0, notAfter: 1, ...over });
  assert.equal(code(bodyOf({})), 'bad_cert'); // a stamp with a box key
  assert.equal(code(bodyOf({ role: E.ROLE.EVIDENCE, subject: 'evidence' })), 'bad_cert'); // so is an evidence key
  assert.equal(code(bodyOf({ role: 3, subject: '' })), 'bad_cert');
  assert.equal(code(bodyOf({ role: 3, subject: 'x'.repeat(65) })), 'bad_cert');
  assert.equal(code(bodyOf({ role: 3, subject: 'a\0b' })), 'bad_cert');
  assert.equal(code(bodyOf({ role: 6 })), 'bad_cert');
  assert.equal(code(bodyOf({ role: 3, notAfter: -1 })), 'bad_cert');
  // Certified by the root directly, skipping the admin device.
  const direct = o.device(E.ROLE.COUNSELLOR, { by: { signSk: o.root.privateKey } });
  assert.equal(code(() => handshake(o, direct).verify()), 'bad_signature');
  // A flipped signature bit (as good as unsigned), in the device's or the issuer's certificate.
  const dev = o.device();
  const flip = (b) => { const f = Uint8Array.from(b); f[f.length - 1] ^= 1; return f; };
  assert.equal(code(() => handshake(o, { ...dev, cert: flip(dev.cert) }).verify()), 'bad_signature');
  assert.equal(code(() => handshake(o, { ...dev, issuer: flip(dev.issuer) }).verify()), 'bad_signature');
  // Revoked: the device, or the admin device that issued it.
  const revoked = (c) => ({ revoked: new Set([hex(E.certHash(c))]) });
  assert.equal(code(() => handshake(o, dev).verify(revoked(dev.cert))), 'revoked');
  assert.equal(code(() => handshake(o, dev).verify(revoked(dev.issuer))), 'revoked');
  assert.equal(code(() => handshake(o, dev).verify(revoked(o.device().cert))), 'no error');
  // The subject, when the caller knows it.
  const chain = { cert: dev.cert, issuer: dev.issuer };
  assert.equal(code(() => E.verifyChain(chain, o.root.publicKey, NOW, { subject: 'dev:other' })), 'bad_cert');
  assert.equal(code(() => E.verifyChain(chain, o.root.publicKey, NOW, { roles: [4] })), 'wrong_role');
  // A revocation list only counts statements the root or an admin device signed.
  const good = E.makeRevocation(E.certHash(dev.cert), NOW, o.admin.signSk);
  const byRoot = E.makeRevocation(new Uint8Array(32).fill(9), NOW, o.root.privateKey);
  const forged = E.makeRevocation(E.certHash(dev.issuer), NOW, sodium.crypto_sign_keypair().privateKey);
  const list = [{ revocation: E.b64(good), issuer: E.b64(o.issuer) },
    { revocation: E.b64(byRoot), issuer: null }, { revocation: E.b64(forged), issuer: null }];
  const set = E.revokedSet(list, o.root.publicKey, NOW);
  assert.deepEqual([...set], [hex(E.certHash(dev.cert)), '09'.repeat(32)]);
  const r = E.verifyRevocation(good, o.admin.signPk);
  assert.deepEqual(r, { hash: E.certHash(dev.cert), at: NOW });
  assert.equal(code(() => E.verifyRevocation(good, o.root.publicKey)), 'bad_signature');
  assert.equal(code(() => E.verifyRevocation(good.subarray(1), o.admin.signPk)), 'bad_length');
  // Supervisors' devices may answer too.
  assert.doesNotThrow(() => handshake(o, o.device(E.ROLE.SUPERVISOR)).verify());
});

test('all-zero and low-order keys fail the handshake', () => {
  const o = org(), dev = o.device();
  const order8 = 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800';
  for (const bad of ['00'.repeat(32), '01' + '00'.repeat(31), order8]) {
    const key = unhex(bad);
    // A genuinely signed accept with a low-order key: the key exchange refuses it.
    const young = sodium.crypto_kx_keypair();
    const T = E.transcriptHash({ conv: 5, helloSeq: 3, youngPk: young.publicKey, staffPk: key, cert: dev.cert,
      issuer: dev.issuer });
    const accept = { helloSeq: 3, kxPk: key, cert: dev.cert, issuer: dev.issuer,
      sig: sodium.crypto_sign_detached(T, dev.keys.signSk) };
    const verify = () => E.youngVerifyAccept({ conv: 5, helloSeq: 3, young, accept, rootPk: o.root.publicKey,
      now: NOW });
    assert.equal(code(verify), 'low_order', bad);
    // And the device refuses a low-order young key.
    const staff = () => E.staffRoots({ T, kx: sodium.crypto_kx_keypair(), youngPk: key });
    assert.equal(code(staff), 'low_order', bad);
  }
});

test('tampered ciphertexts, mismatched commitments, counters, conversations, lengths and histories '
  + 'are refused', () => {
  const root = sodium.randombytes_buf(32);
  const send = new E.Chain(root), recv = new E.Chain(root);
  const m = send.next();
  const heads = new Map([[4, sodium.randombytes_buf(32)]]);
  const env = E.seal({ conv: 9, dir: 2, epoch: 3, n: m.n, mk: m.mk, text: 'hello', seenSeq: 4,
    seenHead: heads.get(4) });
  const mk = recv.keyFor(0);
  const h = E.parseHeader(env);
  const fields = { version: h.version, dir: h.dir, conv: h.conv, epoch: h.epoch, n: h.n, seenSeq: h.seenSeq };
  assert.deepEqual(fields, { version: 1, dir: 2, conv: 9, epoch: 3, n: 0, seenSeq: 4 });
  assert.deepEqual(h.seenHead, heads.get(4));
  assert.equal(E.open({ env, conv: 9, dir: 2, mk, knownHead: (s) => heads.get(s) }).text, 'hello');
  // Every byte of the envelope is covered.
  for (let i = 0; i < env.length; i++) {
    const t = Uint8Array.from(env);
    t[i] ^= 1;
    assert.notEqual(code(() => E.open({ env: t, conv: 9, dir: 2, mk })), 'no error', `byte ${i}`);
  }
  const tamper = (i) => { const t = Uint8Array.from(env); t[i] ^= 1; return t; };
  for (const i of [12, 20, 25, 40, 70, 100, 118, 300, env.length - 1]) {
    const got = code(() => E.open({ env: tamper(i), conv: 9, dir: 2, mk }));
    assert.equal(got, 'decrypt_failed', `byte ${i}`);
  }
  assert.equal(code(() => E.open({ env: tamper(0), conv: 9, dir: 2, mk })), 'bad_version');
  const otherKey = sodium.randombytes_buf(32);
  assert.equal(code(() => E.open({ env, conv: 9, dir: 2, mk: otherKey })), 'decrypt_failed');
  // A commitment that does not match the body: seal with a c for another body.
  const kf = sodium.randombytes_buf(32), nonce = sodium.randombytes_buf(24);
  const honest = E.seal({ conv: 9, dir: 2, epoch: 3, n: 1, mk, text: 'I will pay', kf, nonce });
  const evilBody = E.concat(E.u8(1), E.utf8('I never said that'));
  const ad = E.concat(E.utf8('helpline-msg-v1'), honest.subarray(0, 94));
  const pt = E.concat(kf, sodium.pad(evilBody, 256));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, ad, null, nonce, mk);
  const lying = E.concat(honest.subarray(0, 118), ct);
  assert.equal(code(() => E.open({ env: lying, conv: 9, dir: 2, mk })), 'bad_commitment');
  // Another conversation's envelope (a cross-conversation replay), the other direction.
  assert.equal(code(() => E.open({ env, conv: 10, dir: 2, mk })), 'wrong_conversation');
  assert.equal(code(() => E.open({ env, conv: 9, dir: 1, mk })), 'wrong_direction');
  assert.equal(code(() => E.seal({ conv: 9, dir: 3, epoch: 3, n: 0, mk, text: 'x' })), 'wrong_direction');
  // A message key is used once: a replayed counter has no key any more; nor a counter too far ahead.
  assert.equal(code(() => recv.keyFor(0)), 'bad_counter');
  assert.equal(code(() => recv.keyFor(2002)), 'bad_counter');
  assert.equal(code(() => recv.keyFor(-1)), 'bad_counter');
  assert.equal(code(() => recv.keyFor(2001)), 'no error');
  assert.ok(recv.skipped.size <= 2000);
  // Skipped keys are kept for messages that arrive late.
  const s2 = new E.Chain(root), r2 = new E.Chain(root);
  const k0 = s2.next(), k1 = s2.next();
  assert.deepEqual(r2.keyFor(1), k1.mk);
  assert.deepEqual(r2.keyFor(0), k0.mk);
  assert.equal(code(() => r2.keyFor(0)), 'bad_counter');
  // A sender who saw another history than the recipient; one the recipient has not seen is not judged.
  const other = () => sodium.randombytes_buf(32);
  assert.equal(code(() => E.open({ env, conv: 9, dir: 2, mk, knownHead: other })), 'history_mismatch');
  assert.equal(code(() => E.open({ env, conv: 9, dir: 2, mk, knownHead: () => undefined })), 'no error');
  // Wrong lengths, refused before libsodium sees them.
  for (const n of [0, 117, 118 + 303, 118 + 305, 118 + 304 + 255]) {
    assert.equal(code(() => E.parseHeader(new Uint8Array(n))), 'bad_length', `length ${n}`);
  }
  const sealWith = (over) => () => E.seal({ conv: 9, dir: 2, epoch: 3, n: 0, mk, text: 'x', ...over });
  assert.equal(code(sealWith({ mk: new Uint8Array(31) })), 'bad_length');
  assert.equal(code(sealWith({ nonce: new Uint8Array(12) })), 'bad_length');
  assert.equal(code(sealWith({ kf: new Uint8Array(33) })), 'bad_length');
  assert.equal(code(sealWith({ seenSeq: 1, seenHead: new Uint8Array(31) })), 'bad_length');
  assert.equal(code(sealWith({ n: 2 ** 32 })), 'bad_length');
  assert.equal(code(() => E.open({ env, conv: 9, dir: 2, mk: mk.subarray(1) })), 'bad_length');
  assert.equal(code(() => new E.Chain(new Uint8Array(16))), 'bad_length');
  assert.equal(code(() => E.unb64('abc', 32)), 'bad_length');
  assert.equal(code(() => E.unb64('not base64!')), 'bad_length');
  assert.equal(code(() => E.parseAcceptPayload(new Uint8Array(41))), 'bad_length');
  assert.equal(code(() => E.parseCert(new Uint8Array(100))), 'bad_cert');
  const kp = sodium.crypto_kx_keypair();
  assert.equal(code(() => E.staffRoots({ T: new Uint8Array(32), kx: kp, youngPk: new Uint8Array(31) })),
    'bad_length');
  assert.equal(code(() => E.verifyCert(new Uint8Array(200), new Uint8Array(31), NOW, 3)), 'bad_cert');
  assert.equal(code(() => E.chainHead({ prev: new Uint8Array(31), conv: 1, seq: 1, at: 0, kind: 'msg',
    sender: 'system', visibility: 'all', payload: null })), 'bad_length');
});

test('chain heads and checkpoints', () => {
  const ev = { conv: 3, seq: 1, at: 1700000000000, kind: 'msg', sender: 'contact', visibility: 'all' };
  const h1 = E.chainHead({ ...ev, prev: null, payload: null });
  assert.deepEqual(h1, E.chainHead({ ...ev, prev: new Uint8Array(32), payload: new Uint8Array(0) }));
  assert.notDeepEqual(h1, E.chainHead({ ...ev, prev: null, payload: null, visibility: 'staff' }));
  assert.notDeepEqual(h1, E.chainHead({ ...ev, prev: null, payload: new Uint8Array(1) }));
  const stamp = sodium.crypto_sign_keypair();
  const cp = { conv: 3, seq: 1, head: h1, at: 1700000000001 };
  const sig = sodium.crypto_sign_detached(E.checkpointMessage(cp), stamp.privateKey);
  assert.equal(E.checkpointMessage(cp).length, 78);
  assert.ok(E.verifyCheckpoint(cp, sig, stamp.publicKey));
  assert.ok(E.verifyCheckpoint(E.checkpointMessage(cp), sig, stamp.publicKey));
  assert.equal(code(() => E.verifyCheckpoint({ ...cp, seq: 2 }, sig, stamp.publicKey)), 'bad_signature');
  assert.equal(code(() => E.verifyCheckpoint(cp, sig.subarray(1), stamp.publicKey)), 'bad_length');
});

test('device requests prove possession of the new key', () => {
  const k = E.newDeviceKeys();
  const { body, sig } = E.deviceRequest(42, k.signPk, k.boxPk, k.signSk);
  assert.deepEqual(body, E.concat(E.utf8('helpline-device-v1'), E.u64(42), k.signPk, k.boxPk));
  assert.ok(sodium.crypto_sign_verify_detached(sig, body, k.signPk));
  assert.equal(code(() => E.deviceRequest(42, k.signPk, k.boxPk, k.boxSk)), 'bad_length');
  const seeded = E.deviceKeysFromSeeds(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2));
  assert.deepEqual(seeded, E.deviceKeysFromSeeds(new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)));
});

test('a key wrap opens for its recipient device only, and only with its signer\'s signature', () => {
  const o = org(), from = o.device(), to = o.device(), third = o.device();
  const epochs = [{ epoch: 7, root1: sodium.randombytes_buf(32), root2: sodium.randombytes_buf(32) },
    { epoch: 12, root1: sodium.randombytes_buf(32), root2: sodium.randombytes_buf(32) }];
  const w = E.makeWrap({ conv: 5, epochs, recipientBoxPk: to.keys.boxPk, recipientCert: to.cert,
    signerSk: from.keys.signSk });
  const openAs = (over) => () => E.openWrap({ ...w, conv: 5, recipientKeys: to.keys, recipientCert: to.cert,
    signerPk: from.keys.signPk, ...over });
  assert.deepEqual(openAs({})(), epochs);
  // A third device cannot open it, whether it names itself or the recipient.
  assert.equal(code(openAs({ recipientKeys: third.keys })), 'bad_wrap');
  assert.equal(code(openAs({ recipientKeys: third.keys, recipientCert: third.cert })), 'bad_wrap');
  // Another conversation, another signer, a changed blob.
  assert.equal(code(openAs({ conv: 6 })), 'bad_wrap');
  assert.equal(code(openAs({ signerPk: third.keys.signPk })), 'bad_wrap');
  const bent = Uint8Array.from(w.sealed);
  bent[50] ^= 1;
  assert.equal(code(openAs({ sealed: bent })), 'bad_wrap');
  assert.equal(code(openAs({ sealed: w.sealed.subarray(0, 60) })), 'bad_length');
  // A young person's self-wrap to a return code: the box key stands in for the certificate.
  const rk = E.returnKeys(E.newReturnCode(), FAST);
  const self = E.makeWrap({ conv: 5, epochs, recipientBoxPk: rk.boxPk, recipientCert: rk.boxPk,
    signerSk: rk.signSk });
  const opened = E.openWrap({ ...self, conv: 5, recipientKeys: rk, recipientCert: rk.boxPk,
    signerPk: rk.signPk });
  assert.deepEqual(opened, epochs);
});

test('device keys at rest open only with their passphrase, and are stored as given', async () => {
  const keys = E.newDeviceKeys();
  const sealed = E.sealDeviceKeys(keys, 'a long shift passphrase', FAST);
  assert.equal(sealed.v, 1);
  assert.deepEqual(E.openDeviceKeys(sealed, 'a long shift passphrase'), keys);
  assert.equal(code(() => E.openDeviceKeys(sealed, 'a long shift passphrasE')), 'bad_passphrase');
  const otherNonce = { ...sealed, nonce: E.b64(new Uint8Array(24)) };
  assert.equal(code(() => E.openDeviceKeys(otherNonce, 'a long shift passphrase')), 'bad_passphrase');
  assert.equal(code(() => E.openDeviceKeys({ ...sealed, mem: 2 ** 40 }, 'x')), 'bad_passphrase');
  assert.equal(code(() => E.openDeviceKeys(null, 'x')), 'bad_passphrase');
  assert.ok(!JSON.stringify(sealed).includes(E.b64(keys.signSk)));
  assert.equal(code(() => E.sealDeviceKeys({ ...keys, signSk: keys.boxSk }, 'x', FAST)), 'bad_length');
  // The store keeps the JSON-able object.
  const store = new E.KeyStore(E.memoryBackend());
  await store.save('device', sealed);
  assert.deepEqual(E.openDeviceKeys(await store.load('device'), 'a long shift passphrase'), keys);
  assert.equal(await store.load('nothing'), undefined);
  assert.ok(new E.KeyStore().backend); // Node has no indexedDB: memory
});

test('return codes: six words from the list, normalised, deterministic keys', () => {
  const c = E.newReturnCode();
  const words = c.split(' ');
  assert.equal(words.length, 6);
  for (const w of words) assert.ok(WORDS.includes(w));
  assert.notEqual(E.newReturnCode(), c);
  assert.equal(E.newReturnCode(8).split(' ').length, 8);
  assert.equal(code(() => E.newReturnCode(5)), 'bad_code');
  assert.equal(E.normalizeReturnCode(`  ${c.toUpperCase().replaceAll(' ', ' \t  ')} \n`), c);
  for (const bad of ['', 'abacus abdomen', 'abacus abdomen abdominal abide abiding zzzz', 42]) {
    assert.equal(code(() => E.normalizeReturnCode(bad)), 'bad_code');
  }
  const a = E.returnKeys(c, FAST), b = E.returnKeys(c.toUpperCase(), FAST);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.signPk, E.returnKeys(E.newReturnCode(), FAST).signPk);
  assert.equal(a.signSk.length, 64);
  assert.equal(a.boxSk.length, 32);
  // Challenges: bytes as given, or label ‖ nonce ‖ pk.
  const nonce = sodium.randombytes_buf(32);
  const msg = E.concat(E.utf8('helpline-return-v1'), nonce, a.signPk);
  const byParts = E.signChallenge('helpline-return-v1', nonce, a.signPk, a.signSk);
  assert.deepEqual(byParts, E.signChallenge(msg, a.signSk));
  assert.ok(sodium.crypto_sign_verify_detached(E.signChallenge(msg, a.signSk), msg, a.signPk));
});

test('staff notes open with their note key only, in their conversation only, and ride in key wraps as epoch 0', () => {
  const key = E.newNoteKey(), other = E.newNoteKey();
  const note = E.sealNote({ conv: 7, key, text: 'Said the deadline is 9pm. Name: á ☃' });
  assert.equal(note.length % 256, (1 + 8 + 24 + 16) % 256, 'padded to 256-byte blocks');
  assert.equal(E.openNote({ conv: 7, bytes: note, key }), 'Said the deadline is 9pm. Name: á ☃');
  assert.deepEqual(E.noteKid(note), E.noteKeyId(key));
  assert.equal(code(() => E.openNote({ conv: 7, bytes: note, key: other })), 'decrypt_failed');
  assert.equal(code(() => E.openNote({ conv: 8, bytes: note, key })), 'decrypt_failed');
  for (const i of [1, 12, 40, note.length - 1]) {
    const bad = note.slice(); bad[i] ^= 1;
    assert.equal(code(() => E.openNote({ conv: 7, bytes: bad, key })), 'decrypt_failed', `byte ${i}`);
  }
  const v2 = note.slice(); v2[0] = 2;
  assert.equal(code(() => E.openNote({ conv: 7, bytes: v2, key })), 'bad_version');
  assert.equal(code(() => E.openNote({ conv: 7, bytes: note.subarray(0, 100), key })), 'bad_length');
  assert.equal(code(() => E.sealNote({ conv: 7, key: key.subarray(0, 31), text: 'x' })), 'bad_length');
  // A young person's keys do not open it: nothing of the handshake is in the note key.
  assert.notDeepEqual(E.noteKeyId(key), E.noteKeyId(other));
  // Carried to another device inside a wrap, as an epoch-0 entry.
  const sender = E.newDeviceKeys(), recipient = E.newDeviceKeys();
  const cert = new Uint8Array(10).fill(3);
  const w = E.makeWrap({ conv: 7, epochs: [{ epoch: 5, root1: new Uint8Array(32).fill(1), root2: new Uint8Array(32).fill(2) }, { epoch: E.NOTE_EPOCH, root1: key, root2: new Uint8Array(32) }], recipientBoxPk: recipient.boxPk, recipientCert: cert, signerSk: sender.signSk });
  const got = E.openWrap({ sealed: w.sealed, sig: w.sig, conv: 7, recipientKeys: recipient, recipientCert: cert, signerPk: sender.signPk });
  const carried = got.find((e) => e.epoch === E.NOTE_EPOCH).root1;
  assert.equal(E.openNote({ conv: 7, bytes: note, key: carried }), 'Said the deadline is 9pm. Name: á ☃');
});

test('consent questions and answers: structured, canonical, each in its own direction', () => {
  const mk = E.H(E.utf8('a message key for consent'));
  const q = { share: ['what_happened', 'their_details'], with: 'police' };
  const env = E.seal({ conv: 9, dir: 2, epoch: 3, n: 0, mk, consent: q });
  const got = E.open({ env, conv: 9, dir: 2, mk });
  assert.deepEqual(got.consent, q);
  assert.equal(got.text, '');
  assert.equal(got.body[0], E.BODY_CONSENT);
  assert.equal(E.utf8(E.consentContent(q)).length, got.body.length - 1);
  const a = E.open({ env: E.seal({ conv: 9, dir: 1, epoch: 3, n: 0, mk, answer: { question: 12, answer: 'not_sure' } }), conv: 9, dir: 1, mk });
  assert.deepEqual(a.answer, { answer: 'not_sure', question: 12 });
  // Only the canonical form, in the right direction, with known values.
  const bad = (f) => assert.throws(f, (e) => e.code === 'bad_consent' || e.code === 'wrong_direction');
  bad(() => E.seal({ conv: 9, dir: 1, epoch: 3, n: 0, mk, consent: q }));
  bad(() => E.seal({ conv: 9, dir: 2, epoch: 3, n: 0, mk, answer: { question: 1, answer: 'yes' } }));
  bad(() => E.consentContent({ with: 'police', share: ['their_details', 'what_happened'] }));
  bad(() => E.consentContent({ with: 'police', share: ['what_happened', 'what_happened'] }));
  bad(() => E.consentContent({ with: 'the internet', share: ['what_happened'] }));
  bad(() => E.consentContent({ with: 'police', share: [] }));
  bad(() => E.consentContent({ with: 'police', share: ['messages'], extra: 1 }));
  bad(() => E.answerContent({ question: 0, answer: 'yes' }));
  bad(() => E.answerContent({ question: 3, answer: 'maybe' }));
  // A body that is not canonical, or a question the staff side did not send, does not open.
  const raw = (dir, type, text) => E.seal({ conv: 9, dir, epoch: 3, n: 0, mk, body: E.concat(new Uint8Array([type]), E.utf8(text)) });
  assert.throws(() => E.open({ env: raw(2, E.BODY_CONSENT, '{"with":"police","share":["messages"]}'), conv: 9, dir: 2, mk }), (e) => e.code === 'decrypt_failed');
  assert.throws(() => E.open({ env: raw(1, E.BODY_CONSENT, '{"share":["messages"],"with":"police"}'), conv: 9, dir: 1, mk }), (e) => e.code === 'decrypt_failed');
  assert.throws(() => E.open({ env: raw(2, E.BODY_ANSWER, '{"answer":"yes","question":4}'), conv: 9, dir: 2, mk }), (e) => e.code === 'decrypt_failed');
  assert.throws(() => E.open({ env: raw(2, 5, 'x'), conv: 9, dir: 2, mk }), (e) => e.code === 'decrypt_failed');
  assert.ok(E.open({ env: raw(2, E.BODY_CONSENT, '{"share":["messages"],"with":"police"}'), conv: 9, dir: 2, mk }).consent);
});

test('hash reports: fingerprints only, canonical, from the young person only', () => {
  const mk = E.H(E.utf8('a message key for hashes'));
  const item = { kind: 'image', type: 'image/jpeg', size: 361182, sha256: 'ab'.repeat(32), md5: 'cd'.repeat(16), pdq: 'ef'.repeat(32), quality: 100 };
  const video = { kind: 'video', type: 'video/mp4', size: 5, sha256: '01'.repeat(32), md5: '23'.repeat(16), pdq: null, quality: null };
  const r = { age_band: '13_15', items: [item, video] };
  const got = E.open({ env: E.seal({ conv: 4, dir: 1, epoch: 2, n: 0, mk, hashes: r }), conv: 4, dir: 1, mk });
  assert.deepEqual(got.hashes, { age_band: '13_15', items: [item, video] });
  assert.equal(got.body[0], E.BODY_HASHES);
  assert.equal(E.hashReportContent({ age_band: null, items: [video] }), '{"age_band":null,"items":[{"kind":"video","md5":"23232323232323232323232323232323","pdq":null,"quality":null,"sha256":"0101010101010101010101010101010101010101010101010101010101010101","size":5,"type":"video/mp4"}]}');
  const bad = (f) => assert.throws(f, (e) => e.code === 'bad_hashes' || e.code === 'wrong_direction');
  bad(() => E.seal({ conv: 4, dir: 2, epoch: 2, n: 0, mk, hashes: r }));
  bad(() => E.hashReportContent({ age_band: '13_15', items: [] }));
  bad(() => E.hashReportContent({ age_band: '13_15', items: Array(11).fill(item) }));
  bad(() => E.hashReportContent({ age_band: 'twelve', items: [item] }));
  bad(() => E.hashReportContent({ age_band: null, items: [{ ...item, sha256: 'AB'.repeat(32) }] }));
  bad(() => E.hashReportContent({ age_band: null, items: [{ ...item, pdq: null }] }));
  bad(() => E.hashReportContent({ age_band: null, items: [{ ...video, pdq: 'ef'.repeat(32), quality: 1 }] }));
  bad(() => E.hashReportContent({ age_band: null, items: [{ ...item, type: 'text/html' }] }));
  bad(() => E.hashReportContent({ age_band: null, items: [{ ...item, picture: 'base64…' }] }));
  // A report towards the young person, or not canonical, does not open.
  const raw = (dir, text) => E.seal({ conv: 4, dir, epoch: 2, n: 0, mk, body: E.concat(new Uint8Array([E.BODY_HASHES]), E.utf8(text)) });
  const canon = E.hashReportContent(r);
  assert.throws(() => E.open({ env: raw(2, canon), conv: 4, dir: 2, mk }), (e) => e.code === 'decrypt_failed');
  assert.throws(() => E.open({ env: raw(1, JSON.stringify(r)), conv: 4, dir: 1, mk }), (e) => e.code === 'decrypt_failed');
});
