// e2e.js: Helpline's end-to-end encryption in the browser and in Node: the
// byte formats of docs/crypto.md ("Wire formats (v1)"), mirrored by
// service/e2e.c and pinned by tests/vectors/e2e.json. Every length is
// checked before libsodium sees the bytes; every failure is an E2EError with
// a code. Uint8Array throughout (no Node Buffer), so the same file runs in
// the page.
import sodium from '../vendor/libsodium/libsodium-wrappers.mjs';
import { WORDS } from './wordlist.js';

export { WORDLIST_CREDIT } from './wordlist.js';

export class E2EError extends Error {
  constructor(code, message) { super(message ?? code); this.code = code; this.name = 'E2EError'; }
}
const fail = (code, message) => { throw new E2EError(code, message); };

export async function ready() { await sodium.ready; return sodium; }

// ---- bytes ------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });
export const utf8 = (s) => enc.encode(s);

export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
function uint(n, bytes) {
  let v = BigInt(n);
  if (v < 0n || v >= 1n << BigInt(8 * bytes)) fail('bad_length', `integer ${n} out of range`);
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1; i >= 0; i--) { out[i] = Number(v & 255n); v >>= 8n; }
  return out;
}
export const u8 = (n) => uint(n, 1);
export const u16 = (n) => uint(n, 2);
export const u32 = (n) => uint(n, 4);
export const u64 = (n) => uint(n, 8);
export function i64(n) { // two's complement, for times
  const v = BigInt(n);
  return uint(v < 0n ? (1n << 64n) + v : v, 8);
}
function getUint(b, off, bytes) {
  let v = 0n;
  for (let i = 0; i < bytes; i++) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}
const num = (v) => { if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('bad_length', 'integer too large'); return Number(v); };
const getI64 = (b, off) => { const v = getUint(b, off, 8); return num(v >= 1n << 63n ? v - (1n << 64n) : v); };

export const H = (bytes) => sodium.crypto_generichash(32, bytes, null);
export const b64 = (bytes) => sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
export function unb64(s, len) {
  let out;
  try { out = sodium.from_base64(s, sodium.base64_variants.URLSAFE_NO_PADDING); } catch { fail('bad_length', 'not base64url'); }
  if (len !== undefined && out.length !== len) fail('bad_length', `expected ${len} bytes, got ${out.length}`);
  return out;
}
const hex = (b) => sodium.to_hex(b);
function need(b, len, what) {
  if (!(b instanceof Uint8Array)) fail('bad_length', `${what} must be bytes`);
  if (len !== undefined && b.length !== len) fail('bad_length', `${what} must be ${len} bytes`);
  return b;
}
const eq = (a, b) => a.length === b.length && sodium.memcmp(a, b);

// ---- certificates (service/cert.h) ------------------------------------------

export const ROLE = Object.freeze({ STAMP: 1, ADMIN: 2, COUNSELLOR: 3, SUPERVISOR: 4 });
const MAGIC = utf8('helpline-cert-v1');

export function encodeCertBody({ role, subject, signPk, boxPk, notBefore, notAfter }) {
  const s = utf8(subject);
  if (s.length < 1 || s.length > 64 || s.includes(0)) fail('bad_cert', 'subject must be 1-64 bytes');
  if (!(role >= 1 && role <= 4)) fail('bad_cert', 'unknown role');
  need(signPk, 32, 'signPk'); need(boxPk, 32, 'boxPk');
  if ((role === ROLE.STAMP) !== boxPk.every((b) => b === 0)) fail('bad_cert', 'a stamp certificate, and only it, has no box key');
  return concat(MAGIC, u8(role), u8(s.length), s, signPk, boxPk, i64(notBefore), i64(notAfter));
}

export function signCert(body, issuerSk) {
  return concat(body, sodium.crypto_sign_detached(body, need(issuerSk, 64, 'issuer key')));
}

export function parseCert(bytes) {
  need(bytes, undefined, 'cert');
  if (bytes.length < 16 + 2 + 1 + 64 + 16 + 64) fail('bad_cert', 'certificate too short');
  if (!eq(bytes.subarray(0, 16), MAGIC)) fail('bad_cert', 'not a certificate');
  const role = bytes[16], sl = bytes[17];
  if (sl < 1 || sl > 64 || bytes.length !== 18 + sl + 64 + 16 + 64) fail('bad_cert', 'bad certificate length');
  let subject;
  try { subject = dec.decode(bytes.subarray(18, 18 + sl)); } catch { fail('bad_cert', 'subject is not UTF-8'); }
  const o = 18 + sl;
  const c = {
    role, subject, signPk: bytes.slice(o, o + 32), boxPk: bytes.slice(o + 32, o + 64),
    notBefore: getI64(bytes, o + 64), notAfter: getI64(bytes, o + 72),
    body: bytes.subarray(0, o + 80), sig: bytes.subarray(o + 80),
  };
  if (role < 1 || role > 4 || c.notAfter < c.notBefore || (role === ROLE.STAMP) !== c.boxPk.every((b) => b === 0))
    fail('bad_cert', 'bad certificate fields');
  return c;
}

export function verifyCert(bytes, issuerPk, now, expectedRole) {
  const c = parseCert(bytes);
  if (!sodium.crypto_sign_verify_detached(c.sig, c.body, need(issuerPk, 32, 'issuer key'))) fail('bad_signature', 'certificate signature');
  if (c.role !== expectedRole) fail('wrong_role', `role ${c.role}, expected ${expectedRole}`);
  if (now < c.notBefore || now > c.notAfter) fail('expired', 'certificate not valid now');
  return c;
}

export const certHash = (cert) => H(cert);

// The pseudonymous subject of a device certificate (never a staff id).
export const deviceSubject = (signPk) => 'dev:' + hex(H(signPk).subarray(0, 16));

// Verifies a device chain: issuer = admin device certificate under the
// root, cert = device certificate under the issuer with one of roles.
export function verifyChain({ cert, issuer }, rootPk, now, { roles = [ROLE.COUNSELLOR, ROLE.SUPERVISOR], subject, revoked } = {}) {
  const admin = verifyCert(issuer, rootPk, now, ROLE.ADMIN);
  const role = parseCert(cert).role;
  if (!roles.includes(role)) fail('wrong_role', `device role ${role}`);
  const device = verifyCert(cert, admin.signPk, now, role);
  if (subject !== undefined && device.subject !== subject) fail('bad_cert', 'subject');
  if (revoked && (revoked.has(hex(H(cert))) || revoked.has(hex(H(issuer))))) fail('revoked', 'certificate revoked');
  return { device, admin };
}

// ---- revocations and device requests ----------------------------------------

export function makeRevocation(hash, at, signerSk) {
  const body = concat(utf8('helpline-revoke-v1'), need(hash, 32, 'hash'), i64(at));
  return concat(body, sodium.crypto_sign_detached(body, signerSk));
}

export function verifyRevocation(bytes, signerPk) {
  need(bytes, 122, 'revocation');
  if (!eq(bytes.subarray(0, 18), utf8('helpline-revoke-v1'))) fail('bad_signature', 'not a revocation');
  if (!sodium.crypto_sign_verify_detached(bytes.subarray(58), bytes.subarray(0, 58), signerPk)) fail('bad_signature', 'revocation signature');
  return { hash: bytes.slice(18, 50), at: getI64(bytes, 50) };
}

// The set of revoked certificate hashes (hex) from device.revocations,
// keeping only statements signed by the root or by a valid admin device.
export function revokedSet(list, rootPk, now) {
  const out = new Set();
  for (const r of list ?? []) {
    try {
      const bytes = unb64(r.revocation, 122);
      const signer = r.issuer ? verifyCert(unb64(r.issuer), rootPk, now, ROLE.ADMIN).signPk : rootPk;
      out.add(hex(verifyRevocation(bytes, signer).hash));
    } catch { /* an unverifiable statement revokes nothing */ }
  }
  return out;
}

export function deviceRequest(staffId, signPk, boxPk, signSk) {
  const body = concat(utf8('helpline-device-v1'), u64(staffId), need(signPk, 32, 'signPk'), need(boxPk, 32, 'boxPk'));
  return { body, sig: sodium.crypto_sign_detached(body, signSk) };
}

// ---- device keys -------------------------------------------------------------

export function newDeviceKeys() {
  const s = sodium.crypto_sign_keypair(), b = sodium.crypto_box_keypair();
  return { signPk: s.publicKey, signSk: s.privateKey, boxPk: b.publicKey, boxSk: b.privateKey };
}

export function deviceKeysFromSeeds(signSeed, boxSeed) {
  const s = sodium.crypto_sign_seed_keypair(need(signSeed, 32, 'seed'));
  const b = sodium.crypto_box_seed_keypair(need(boxSeed, 32, 'seed'));
  return { signPk: s.publicKey, signSk: s.privateKey, boxPk: b.publicKey, boxSk: b.privateKey };
}

// Device keys at rest: secretbox under an Argon2id key from the passphrase.
export function sealDeviceKeys(keys, passphrase, { opslimit, memlimit } = {}) {
  const ops = opslimit ?? sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
  const mem = memlimit ?? sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
  const salt = sodium.randombytes_buf(sodium.crypto_pwhash_SALTBYTES);
  const key = sodium.crypto_pwhash(32, passphrase, salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13);
  const nonce = sodium.randombytes_buf(24);
  const plain = concat(keys.signPk, keys.signSk, keys.boxPk, keys.boxSk);
  const box = sodium.crypto_secretbox_easy(plain, nonce, key);
  sodium.memzero(key); sodium.memzero(plain);
  return { v: 1, salt: b64(salt), ops, mem, nonce: b64(nonce), box: b64(box) };
}

export function openDeviceKeys(obj, passphrase) {
  if (obj?.v !== 1) fail('bad_passphrase', 'unknown key file');
  const key = sodium.crypto_pwhash(32, passphrase, unb64(obj.salt, 16), obj.ops, obj.mem, sodium.crypto_pwhash_ALG_ARGON2ID13);
  let plain;
  try { plain = sodium.crypto_secretbox_open_easy(unb64(obj.box), unb64(obj.nonce, 24), key); } catch { fail('bad_passphrase', 'wrong passphrase'); } finally { sodium.memzero(key); }
  if (plain.length !== 160) fail('bad_passphrase', 'bad key file');
  return { signPk: plain.slice(0, 32), signSk: plain.slice(32, 96), boxPk: plain.slice(96, 128), boxSk: plain.slice(128, 160) };
}

// Where sealed keys live: IndexedDB in the page, memory in Node tests.
export function memoryBackend() {
  const m = new Map();
  return { get: async (k) => m.get(k), put: async (k, v) => { m.set(k, v); } };
}
export function idbBackend(dbName = 'helpline-keys') {
  const open = () => new Promise((resolve, reject) => {
    const r = indexedDB.open(dbName, 1);
    r.onupgradeneeded = () => r.result.createObjectStore('keys');
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  const tx = async (mode, fn) => {
    const db = await open();
    return new Promise((resolve, reject) => {
      const t = db.transaction('keys', mode), req = fn(t.objectStore('keys'));
      t.oncomplete = () => { db.close(); resolve(req.result); };
      t.onerror = () => { db.close(); reject(t.error); };
    });
  };
  return { get: (k) => tx('readonly', (s) => s.get(k)), put: (k, v) => tx('readwrite', (s) => s.put(v, k)) };
}
export class KeyStore {
  constructor(backend) { this.backend = backend ?? (typeof indexedDB !== 'undefined' ? idbBackend() : memoryBackend()); }
  save(name, obj) { return this.backend.put(name, obj); }
  load(name) { return this.backend.get(name); }
}

// ---- the handshake -----------------------------------------------------------

export function transcriptHash({ conv, helloSeq, youngPk, staffPk, cert, issuer }) {
  return H(concat(utf8('helpline-hs-v1'), u64(conv), u64(helloSeq), need(youngPk, 32, 'young key'),
    need(staffPk, 32, 'staff key'), u16(cert.length), cert, u16(issuer.length), issuer));
}

export function encodeAcceptPayload({ helloSeq, kxPk, cert, issuer, sig }) {
  return concat(u64(helloSeq), need(kxPk, 32, 'kx key'), u16(cert.length), cert, u16(issuer.length), issuer, need(sig, 64, 'sig'));
}

export function parseAcceptPayload(p) {
  need(p, undefined, 'accept');
  if (p.length < 42) fail('bad_length', 'accept too short');
  const helloSeq = num(getUint(p, 0, 8)), kxPk = p.slice(8, 40);
  const cl = Number(getUint(p, 40, 2));
  if (cl < 1 || p.length < 42 + cl + 2) fail('bad_length', 'accept certificate');
  const cert = p.slice(42, 42 + cl), il = Number(getUint(p, 42 + cl, 2));
  if (il < 1 || p.length !== 44 + cl + il + 64) fail('bad_length', 'accept issuer');
  return { helloSeq, kxPk, cert, issuer: p.slice(44 + cl, 44 + cl + il), sig: p.slice(44 + cl + il) };
}

const rootLabel = utf8('helpline-root-v1');
const root = (key, dir, T) => sodium.crypto_generichash(32, concat(rootLabel, u8(dir), T), key);

function kx(fn, ...args) {
  try { return fn(...args); } catch { return fail('low_order', 'unusable key exchange key'); }
}

// The counsellor's device answers a hello.
export function acceptMessage({ conv, helloSeq, youngPk, deviceKeys, cert, issuer, ephemeral }) {
  const e = ephemeral ?? sodium.crypto_kx_keypair();
  const T = transcriptHash({ conv, helloSeq, youngPk, staffPk: e.publicKey, cert, issuer });
  return { kxPk: e.publicKey, kxSk: e.privateKey, T, sig: sodium.crypto_sign_detached(T, deviceKeys.signSk) };
}

export function staffRoots({ T, kx: k, youngPk }) {
  const s = kx(sodium.crypto_kx_server_session_keys, k.publicKey, k.privateKey, need(youngPk, 32, 'young key'));
  const out = { root1: root(s.sharedRx, 1, T), root2: root(s.sharedTx, 2, T) };
  sodium.memzero(s.sharedRx); sodium.memzero(s.sharedTx);
  return out;
}

// The young person's page checks an accept against its OWN hello key and
// the root key it was shipped with, then derives the chain roots.
export function youngVerifyAccept({ conv, helloSeq, young, accept, rootPk, now, revoked }) {
  if (accept.helloSeq !== helloSeq) fail('bad_signature', 'the accept answers another hello');
  const { device } = verifyChain({ cert: accept.cert, issuer: accept.issuer }, rootPk, now, { revoked });
  const T = transcriptHash({ conv, helloSeq, youngPk: young.publicKey, staffPk: accept.kxPk, cert: accept.cert, issuer: accept.issuer });
  if (!sodium.crypto_sign_verify_detached(need(accept.sig, 64, 'sig'), T, device.signPk)) fail('bad_signature', 'handshake signature');
  const s = kx(sodium.crypto_kx_client_session_keys, young.publicKey, young.privateKey, accept.kxPk);
  const out = { root1: root(s.sharedTx, 1, T), root2: root(s.sharedRx, 2, T), T, device };
  sodium.memzero(s.sharedRx); sodium.memzero(s.sharedTx);
  return out;
}

// ---- message keys --------------------------------------------------------------

const MAX_SKIP = 2000;

export function chainStep(ck) {
  return { mk: sodium.crypto_kdf_derive_from_key(32, 1, 'hlmsgkey', ck), next: sodium.crypto_kdf_derive_from_key(32, 2, 'hlchain1', ck) };
}

// One direction of one epoch: message n's key, once; old chain keys wiped.
export class Chain {
  constructor(root) { this.ck = Uint8Array.from(need(root, 32, 'root')); this.n = 0; this.skipped = new Map(); }
  next() { const n = this.n; return { n, mk: this.keyFor(n) }; }
  keyFor(n) {
    if (this.skipped.has(n)) { const mk = this.skipped.get(n); this.skipped.delete(n); return mk; }
    if (n < this.n) fail('bad_counter', `message key ${n} was used already`);
    if (n - this.n > MAX_SKIP) fail('bad_counter', 'too far ahead');
    for (;;) {
      const { mk, next } = chainStep(this.ck);
      sodium.memzero(this.ck);
      this.ck = next;
      const at = this.n++;
      if (at === n) return mk;
      this.skipped.set(at, mk);
      if (this.skipped.size > MAX_SKIP) this.skipped.delete(this.skipped.keys().next().value);
    }
  }
}

// ---- envelopes -------------------------------------------------------------------

export const HEADER = 118;
const msgLabel = utf8('helpline-msg-v1'), frankLabel = utf8('helpline-frank-v1');

export function commitment({ conv, dir, epoch, n, body, kf }) {
  return sodium.crypto_auth(concat(frankLabel, u64(conv), u8(dir), u64(epoch), u32(n), body), need(kf, 32, 'kf'));
}

export function seal({ conv, dir, epoch, n, seenSeq = 0, seenHead, mk, text, body, kf, nonce }) {
  body ??= concat(u8(1), utf8(text));
  kf ??= sodium.randombytes_buf(32);
  nonce ??= sodium.randombytes_buf(24);
  const c = commitment({ conv, dir, epoch, n, body, kf });
  const head = concat(u8(1), u8(dir), u64(conv), u64(epoch), u32(n), u64(seenSeq),
    seenHead ? need(seenHead, 32, 'seenHead') : new Uint8Array(32), c);
  const pt = concat(kf, sodium.pad(body, 256));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, concat(msgLabel, head), null, need(nonce, 24, 'nonce'), need(mk, 32, 'mk'));
  sodium.memzero(pt);
  return concat(head, nonce, ct);
}

export function parseHeader(env) {
  need(env, undefined, 'envelope');
  if (env.length < HEADER + 48 + 256 || (env.length - HEADER - 48) % 256 !== 0) fail('bad_length', 'envelope length');
  if (env[0] !== 1) fail('bad_length', 'envelope version');
  if (env[1] !== 1 && env[1] !== 2) fail('wrong_direction', 'envelope direction');
  return {
    version: 1, dir: env[1], conv: num(getUint(env, 2, 8)), epoch: num(getUint(env, 10, 8)),
    n: Number(getUint(env, 18, 4)), seenSeq: num(getUint(env, 22, 8)), seenHead: env.slice(30, 62),
    c: env.slice(62, 94), nonce: env.slice(94, 118), ct: env.subarray(118),
  };
}

// Opens an envelope with its message key; knownHead(seq) gives the chain
// head the recipient saw at seq (or undefined when it has not seen it).
export function open({ env, conv, dir, mk, knownHead }) {
  const h = parseHeader(env);
  if (h.conv !== conv) fail('wrong_conversation', 'envelope from another conversation');
  if (dir !== undefined && h.dir !== dir) fail('wrong_direction', 'envelope direction');
  let pt;
  try {
    pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, h.ct, concat(msgLabel, env.subarray(0, 94)), h.nonce, need(mk, 32, 'mk'));
  } catch { fail('decrypt_failed', 'the message does not decrypt'); }
  const kf = pt.slice(0, 32);
  let body;
  try { body = sodium.unpad(pt.subarray(32), 256); } catch { fail('decrypt_failed', 'bad padding'); }
  body = Uint8Array.from(body);
  sodium.memzero(pt);
  if (!eq(commitment({ conv, dir: h.dir, epoch: h.epoch, n: h.n, body, kf }), h.c)) fail('bad_commitment', 'the commitment does not match the message');
  if (h.seenSeq > 0 && knownHead) {
    const seen = knownHead(h.seenSeq);
    if (seen && !eq(seen, h.seenHead)) fail('history_mismatch', 'the sender saw another history');
  }
  if (body.length < 1 || body[0] !== 1) fail('decrypt_failed', 'unknown body type');
  let text;
  try { text = dec.decode(body.subarray(1)); } catch { fail('decrypt_failed', 'text is not UTF-8'); }
  return { text, body, kf, c: h.c, n: h.n, epoch: h.epoch, dir: h.dir, seenSeq: h.seenSeq };
}

// ---- the hash chain and checkpoints ----------------------------------------------

export function chainHead({ prev, conv, seq, at, kind, sender, visibility, payload }) {
  const k = utf8(kind), s = utf8(sender);
  return H(concat(utf8('helpline-chain-v1'), prev ?? new Uint8Array(32), u64(conv), u64(seq), i64(at),
    u8(k.length), k, u8(s.length), s, u8(visibility === 'staff' ? 1 : 0), H(payload ?? new Uint8Array(0))));
}

export const checkpointMessage = ({ conv, seq, head, at }) =>
  concat(utf8('helpline-checkpoint-v1'), u64(conv), u64(seq), need(head, 32, 'head'), i64(at));

export const verifyCheckpoint = (cp, sig, stampPk) =>
  sodium.crypto_sign_verify_detached(need(sig, 64, 'sig'), checkpointMessage(cp), stampPk);

// ---- key wraps ------------------------------------------------------------------------

const wrapSigMessage = (conv, recipientCert, sealed) =>
  concat(utf8('helpline-wrap-sig-v1'), u64(conv), H(recipientCert), H(sealed));

export function wrapPlaintext(conv, epochs) {
  return concat(utf8('helpline-wrap-v1'), u64(conv), u16(epochs.length),
    ...epochs.map((e) => concat(u64(e.epoch), need(e.root1, 32, 'root'), need(e.root2, 32, 'root'))));
}

// recipientCert: the recipient device's certificate, or, for a young
// person's return-code self-wrap, the return code's 32-byte box key itself.
export function makeWrap({ conv, epochs, recipientBoxPk, recipientCert, signerSk }) {
  const plain = wrapPlaintext(conv, epochs);
  const sealed = sodium.crypto_box_seal(plain, need(recipientBoxPk, 32, 'box key'));
  sodium.memzero(plain);
  return { sealed, sig: sodium.crypto_sign_detached(wrapSigMessage(conv, recipientCert, sealed), signerSk) };
}

export function openWrap({ sealed, sig, conv, recipientKeys, recipientCert, signerPk }) {
  if (!sodium.crypto_sign_verify_detached(need(sig, 64, 'sig'), wrapSigMessage(conv, recipientCert, sealed), signerPk)) fail('bad_wrap', 'wrap signature');
  let p;
  try { p = sodium.crypto_box_seal_open(sealed, recipientKeys.boxPk, recipientKeys.boxSk); } catch { fail('bad_wrap', 'not sealed to this device'); }
  const label = utf8('helpline-wrap-v1');
  if (p.length < 26 || !eq(p.subarray(0, 16), label) || num(getUint(p, 16, 8)) !== conv) fail('bad_wrap', 'wrap for another conversation');
  const count = Number(getUint(p, 24, 2));
  if (p.length !== 26 + count * 72) fail('bad_wrap', 'wrap length');
  const epochs = [];
  for (let i = 0, o = 26; i < count; i++, o += 72)
    epochs.push({ epoch: num(getUint(p, o, 8)), root1: p.slice(o + 8, o + 40), root2: p.slice(o + 40, o + 72) });
  sodium.memzero(p);
  return epochs;
}

// ---- return codes -----------------------------------------------------------------------

export function newReturnCode(words = 6) {
  if (words < 6) fail('bad_code', 'at least 6 words');
  return Array.from({ length: words }, () => WORDS[sodium.randombytes_uniform(WORDS.length)]).join(' ');
}

let wordSet;
export function normalizeReturnCode(str) {
  wordSet ??= new Set(WORDS);
  const words = String(str).toLowerCase().trim().split(/\s+/).filter(Boolean);
  if (words.length < 6 || words.some((w) => !wordSet.has(w))) fail('bad_code', 'not a return code');
  return words.join(' ');
}

export function returnKeys(code, { opslimit, memlimit } = {}) {
  const salt = sodium.crypto_generichash(16, utf8('helpline-return-code-v1'), null);
  const seed = sodium.crypto_pwhash(32, normalizeReturnCode(code), salt,
    opslimit ?? sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE, memlimit ?? sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE,
    sodium.crypto_pwhash_ALG_ARGON2ID13);
  const s = sodium.crypto_sign_seed_keypair(sodium.crypto_kdf_derive_from_key(32, 1, 'hlreturn', seed));
  const b = sodium.crypto_box_seed_keypair(sodium.crypto_kdf_derive_from_key(32, 2, 'hlreturn', seed));
  return { seed, signPk: s.publicKey, signSk: s.privateKey, boxPk: b.publicKey, boxSk: b.privateKey };
}

export const signChallenge = (label, nonce, pk, sk) =>
  sodium.crypto_sign_detached(concat(utf8(label), need(nonce, 32, 'nonce'), need(pk, 32, 'key')), sk);
