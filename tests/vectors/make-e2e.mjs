// make-e2e.mjs: writes tests/vectors/e2e.json, the end-to-end encryption
// vectors, by running client-web/js/e2e.js on fixed inputs (fixed seeds,
// nonces and franking keys; no randomness, so two runs write the same file).
// tests/unit/test_vectors.c makes the C side (service/e2e.c) reproduce every
// output byte for byte, and tests/integration/e2e-unit.test.mjs checks the
// file still matches what e2e.js computes.
// Run: node tests/vectors/make-e2e.mjs [--check]
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from '../../client-web/js/e2e.js';

const sodium = await E.ready();
const hex = (b) => sodium.to_hex(b);
const fill = (n, v) => new Uint8Array(n).fill(v);

/** The vectors, as the JSON object written to e2e.json. */
export function build() {
  const NOW = 1800000000, CONV = 77, HELLO = 5, EPOCH = 9;
  // Each seed is 32 copies of one byte.
  const seed = { root: 1, adminSign: 2, adminBox: 3, devSign: 4, devBox: 5, youngKx: 6, staffKx: 7,
    stamp: 8 };

  // The trust chain: root -> admin device (role 2) -> counsellor device (role 3).
  const root = sodium.crypto_sign_seed_keypair(fill(32, seed.root));
  const admin = E.deviceKeysFromSeeds(fill(32, seed.adminSign), fill(32, seed.adminBox));
  const dev = E.deviceKeysFromSeeds(fill(32, seed.devSign), fill(32, seed.devBox));
  const body = (role, k) => E.encodeCertBody({ role, subject: E.deviceSubject(k.signPk), signPk: k.signPk,
    boxPk: k.boxPk, notBefore: NOW - 100, notAfter: NOW + 100 });
  const issuerBody = body(E.ROLE.ADMIN, admin);
  const issuer = E.signCert(issuerBody, root.privateKey);
  const certBody = body(E.ROLE.COUNSELLOR, dev);
  const cert = E.signCert(certBody, admin.signSk);

  // The handshake, with fixed kx key pairs on both sides.
  const young = sodium.crypto_kx_seed_keypair(fill(32, seed.youngKx));
  const staff = sodium.crypto_kx_seed_keypair(fill(32, seed.staffKx));
  const acc = E.acceptMessage({ conv: CONV, helloSeq: HELLO, youngPk: young.publicKey, deviceKeys: dev, cert,
    issuer, ephemeral: staff });
  const payload = E.encodeAcceptPayload({ helloSeq: HELLO, kxPk: acc.kxPk, cert, issuer, sig: acc.sig });
  const roots = E.youngVerifyAccept({ conv: CONV, helloSeq: HELLO, young,
    accept: E.parseAcceptPayload(payload), rootPk: root.publicKey, now: NOW });

  // The first three steps of the young person's chain (ck_0 = root1).
  const steps = [];
  let ck = roots.root1;
  for (let n = 0; n < 3; n++) {
    const { mk, next } = E.chainStep(ck);
    steps.push({ n, ck: hex(ck), mk: hex(mk) });
    ck = next;
  }

  // Two envelopes: non-ASCII text one way, over 256 bytes (k = 2) the other.
  const kf = fill(32, 0x22), nonce = fill(24, 0x33), seenHead = fill(32, 0x44);
  const envelopes = [
    { dir: 1, n: 0, seen_seq: 8, text: 'héllo, I need help 💬', mk: steps[0].mk },
    { dir: 2, n: 1, seen_seq: 0, text: 'You did the right thing telling us. '.repeat(9), mk: steps[1].mk },
  ].map((e) => {
    const env = E.seal({ conv: CONV, dir: e.dir, epoch: EPOCH, n: e.n, seenSeq: e.seen_seq,
      seenHead: e.seen_seq ? seenHead : undefined, mk: sodium.from_hex(e.mk), text: e.text, kf, nonce });
    const b = E.concat(E.u8(1), E.utf8(e.text));
    const c = E.commitment({ conv: CONV, dir: e.dir, epoch: EPOCH, n: e.n, body: b, kf });
    return { dir: e.dir, conv: CONV, epoch: EPOCH, n: e.n, seen_seq: e.seen_seq,
      seen_head: e.seen_seq ? hex(seenHead) : '', mk: e.mk, kf: hex(kf), nonce: hex(nonce), body: hex(b),
      commitment: hex(c), envelope: hex(env), text: e.text, blocks: (env.length - 118 - 48) / 256 };
  });

  // Three chain heads: a message, a system event without payload, a staff-only note.
  const events = [
    { seq: 1, at: 1800000000123, kind: 'msg', sender: 'contact', visibility: 'all', payload: '010203' },
    { seq: 2, at: 1800000000456, kind: 'system', sender: 'system', visibility: 'all', payload: '' },
    { seq: 3, at: 1800000000789, kind: 'note', sender: 'staff:12', visibility: 'staff', payload: 'ff' },
  ];
  let prev = null;
  for (const ev of events) {
    prev = E.chainHead({ prev, conv: CONV, ...ev, payload: ev.payload ? sodium.from_hex(ev.payload) : null });
    ev.head = hex(prev);
  }

  const stamp = sodium.crypto_sign_seed_keypair(fill(32, seed.stamp));
  const cpMsg = E.checkpointMessage({ conv: CONV, seq: 3, head: prev, at: 1800000001000 });
  const revocation = E.makeRevocation(E.certHash(cert), NOW, admin.signSk);
  const request = E.deviceRequest(12, dev.signPk, dev.boxPk, dev.signSk);

  // A wrap: the plaintext, and the admin device's signature over a fixed
  // "sealed" blob addressed to the counsellor device (crypto_box_seal is randomised).
  const epochs = [{ epoch: EPOCH, root1: roots.root1, root2: roots.root2 },
    { epoch: 20, root1: fill(32, 0xa1), root2: fill(32, 0xa2) }];
  const sealed = fill(80, 0x55);
  const wrapSig = sodium.crypto_sign_detached(E.concat(E.utf8('helpline-wrap-sig-v1'), E.u64(CONV), E.H(cert),
    E.H(sealed)), admin.signSk);

  // A return code, with the real INTERACTIVE Argon2id limits.
  const code = 'abacus abdomen abdominal abide abiding ability';
  const rk = E.returnKeys(code);

  const seeds = Object.fromEntries(Object.entries({ root_sign: seed.root, admin_sign: seed.adminSign,
    admin_box: seed.adminBox, device_sign: seed.devSign, device_box: seed.devBox, young_kx: seed.youngKx,
    staff_kx: seed.staffKx, stamp_sign: seed.stamp }).map(([k, v]) => [k, hex(fill(32, v))]));
  return {
    about: 'End-to-end encryption vectors (docs/crypto.md "Wire formats (v1)"), written by '
      + 'tests/vectors/make-e2e.mjs from client-web/js/e2e.js; tests/unit/test_vectors.c checks '
      + 'service/e2e.c reproduces them. All binary values are hex. Certificates are valid from now-100 to '
      + 'now+100 (unix seconds); chain head and checkpoint times are unix milliseconds.',
    seeds,
    now: NOW,
    certs: { root_pk: hex(root.publicKey), admin_subject: E.deviceSubject(admin.signPk),
      device_subject: E.deviceSubject(dev.signPk), issuer_body: hex(issuerBody), issuer: hex(issuer),
      cert_body: hex(certBody), cert: hex(cert), cert_hash: hex(E.certHash(cert)) },
    handshake: { conv: CONV, hello_seq: HELLO, young_pk: hex(young.publicKey), staff_pk: hex(staff.publicKey),
      transcript: hex(acc.T), signature: hex(acc.sig), accept_payload: hex(payload), root1: hex(roots.root1),
      root2: hex(roots.root2) },
    chain_keys: steps,
    envelopes,
    chain_heads: { conv: CONV, events },
    checkpoint: { conv: CONV, seq: 3, at: 1800000001000, head: hex(prev), message: hex(cpMsg),
      stamp_pk: hex(stamp.publicKey), signature: hex(sodium.crypto_sign_detached(cpMsg, stamp.privateKey)) },
    revocation: { at: NOW, signer_pk: hex(admin.signPk), statement: hex(revocation) },
    device_request: { staff_id: 12, sign_pk: hex(dev.signPk), box_pk: hex(dev.boxPk), body: hex(request.body),
      signature: hex(request.sig) },
    wrap: { conv: CONV, plaintext: hex(E.wrapPlaintext(CONV, epochs)), sealed: hex(sealed),
      signature: hex(wrapSig), signer_pk: hex(admin.signPk), recipient_cert_hash: hex(E.certHash(cert)),
      epochs: epochs.map((e) => ({ epoch: e.epoch, root1: hex(e.root1), root2: hex(e.root2) })) },
    return_code: { code, seed: hex(rk.seed), sign_pk: hex(rk.signPk), box_pk: hex(rk.boxPk),
      sign_sk: hex(rk.signSk), box_sk: hex(rk.boxSk) },
  };
}

const here = dirname(fileURLToPath(import.meta.url));
const path = join(here, 'e2e.json');
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = JSON.stringify(build(), null, 1) + '\n';
  if (process.argv.includes('--check')) {
    if (readFileSync(path, 'utf8') !== text) {
      console.error('e2e.json differs from what e2e.js computes');
      process.exit(1);
    }
    console.log('e2e.json matches');
  } else {
    writeFileSync(path, text);
    console.log(`wrote ${path}`);
  }
}
