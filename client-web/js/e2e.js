// e2e.js: Helpline's end-to-end encryption in the browser and in Node: the
// byte formats of docs/crypto.md ("Wire formats (v1)"), mirrored by
// service/e2e.c and pinned by tests/vectors/e2e.json (make-e2e.mjs). Every
// length is checked before libsodium sees the bytes; every failure is an
// E2EError with a code. Uint8Array throughout (no Node Buffer), so the same
// file runs in the page. Call (and await) ready() before anything else.
import sodium from '../vendor/libsodium/libsodium-wrappers.mjs';
import { WORDS } from './wordlist.js';

// Return-code words: the EFF Large Wordlist (CC BY 3.0 US); the credit
// string is in wordlist.js and must be shown wherever codes are offered.
export { WORDLIST_CREDIT } from './wordlist.js';

/** A refusal; code is one of 'bad_length', 'bad_cert', 'revoked', ... */
export class E2EError extends Error {
  constructor(code, message) {
    super(message ?? code);
    this.code = code;
    this.name = 'E2EError';
  }
}
const fail = (code, message) => { throw new E2EError(code, message); };

/** Resolves once libsodium is loaded; returns it. */
export async function ready() { await sodium.ready; return sodium; }

// ---- bytes ------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });
export const utf8 = (s) => enc.encode(s);
const EMPTY = new Uint8Array(0);
const ZERO32 = new Uint8Array(32);

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

// An integer (a safe Number or a BigInt) as a BigInt, or a bad_length.
function big(n) {
  if (typeof n === 'bigint') return n;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) fail('bad_length', `not an integer: ${n}`);
  return BigInt(n);
}
// Big-endian unsigned integer of the given width.
function uint(n, bytes) {
  let v = big(n);
  if (v < 0n || v >= 1n << BigInt(8 * bytes)) fail('bad_length', `integer ${n} out of range`);
  const out = new Uint8Array(bytes);
  for (let i = bytes - 1; i >= 0; i--) { out[i] = Number(v & 255n); v >>= 8n; }
  return out;
}
export const u8 = (n) => uint(n, 1);
export const u16 = (n) => uint(n, 2);
export const u32 = (n) => uint(n, 4);
export const u64 = (n) => uint(n, 8);
/** Two's complement i64, for times. */
export function i64(n) {
  const v = big(n);
  if (v < -(1n << 63n) || v >= 1n << 63n) fail('bad_length', `integer ${n} out of range`);
  return uint(v < 0n ? (1n << 64n) + v : v, 8);
}
function getUint(b, off, bytes) {
  let v = 0n;
  for (let i = 0; i < bytes; i++) v = (v << 8n) | BigInt(b[off + i]);
  return v;
}
// u64 values come back as Numbers: larger ones are refused.
function num(v) {
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
    fail('bad_length', 'integer too large');
  }
  return Number(v);
}
const getU64 = (b, off) => num(getUint(b, off, 8));
const getI64 = (b, off) => {
  const v = getUint(b, off, 8);
  return num(v >= 1n << 63n ? v - (1n << 64n) : v);
};

/** H(x) = crypto_generichash(32, x), unkeyed. */
export const H = (bytes) => sodium.crypto_generichash(32, need(bytes, undefined, 'input'), null);
export const b64 = (bytes) => sodium.to_base64(bytes, sodium.base64_variants.URLSAFE_NO_PADDING);
/** base64url (no padding) to bytes; with len, exactly that many. */
export function unb64(s, len) {
  let out;
  try {
    out = sodium.from_base64(s, sodium.base64_variants.URLSAFE_NO_PADDING);
  } catch {
    fail('bad_length', 'not base64url');
  }
  if (len !== undefined && out.length !== len) fail('bad_length', `expected ${len} bytes, got ${out.length}`);
  return out;
}
export const hex = (b) => sodium.to_hex(b);

// b must be a Uint8Array (of len bytes, when given); returns it.
function need(b, len, what) {
  if (!(b instanceof Uint8Array)) fail('bad_length', `${what} must be bytes`);
  if (len !== undefined && b.length !== len) {
    fail('bad_length', `${what} must be ${len} bytes, not ${b.length}`);
  }
  return b;
}
const needPk = (b, what) => need(b, 32, what);          // Ed25519 / X25519 public, X25519 secret
const needSignSk = (b, what) => need(b, 64, what);      // Ed25519 secret (libsodium's 64-byte form)
// Constant-time equality of two byte strings.
const eq = (a, b) => a.length === b.length && sodium.memcmp(a, b);
const isZero = (b) => b.every((x) => x === 0);

function sign(message, sk, what = 'signing key') {
  return sodium.crypto_sign_detached(message, needSignSk(sk, what));
}
function verifySig(sig, message, pk, what) {
  need(sig, 64, `${what} signature`);
  return sodium.crypto_sign_verify_detached(sig, message, needPk(pk, `${what} key`));
}

// ---- certificates (service/cert.h) ------------------------------------------

export const ROLE = Object.freeze({ STAMP: 1, ADMIN: 2, COUNSELLOR: 3, SUPERVISOR: 4, EVIDENCE: 5 });
const CERT_MAGIC = utf8('helpline-cert-v1');
const CERT_FIXED = 16 + 1 + 1 + 32 + 32 + 8 + 8; // body bytes other than the subject

// The field rules every body obeys (cert.h's hl_cert_encode).
function checkFields({ role, subjectBytes, boxPk, notBefore, notAfter }) {
  if (!Number.isInteger(role) || role < 1 || role > 5) fail('bad_cert', `unknown role ${role}`);
  if (subjectBytes.length < 1 || subjectBytes.length > 64 || subjectBytes.includes(0)) {
    fail('bad_cert', 'the subject must be 1-64 bytes without NUL');
  }
  // The service's keys (STAMP, EVIDENCE) only sign: they alone have no box key.
  if ((role === ROLE.STAMP || role === ROLE.EVIDENCE) !== isZero(boxPk)) {
    fail('bad_cert', 'a stamp or evidence certificate, and only it, has no box key');
  }
  if (notAfter < notBefore) fail('bad_cert', 'not_after is before not_before');
}

/** The canonical certificate body (unsigned). Times are unix seconds. */
export function encodeCertBody({ role, subject, signPk, boxPk, notBefore, notAfter }) {
  const s = utf8(String(subject));
  needPk(signPk, 'signPk');
  needPk(boxPk, 'boxPk');
  checkFields({ role, subjectBytes: s, boxPk, notBefore: big(notBefore), notAfter: big(notAfter) });
  return concat(CERT_MAGIC, u8(role), u8(s.length), s, signPk, boxPk, i64(notBefore), i64(notAfter));
}

// Splits a body (sigLen 0) or a certificate (sigLen 64) into its fields.
function certFields(bytes, sigLen) {
  need(bytes, undefined, 'certificate');
  if (bytes.length < CERT_FIXED + 1 + sigLen) fail('bad_cert', 'certificate too short');
  if (!eq(bytes.subarray(0, 16), CERT_MAGIC)) fail('bad_cert', 'not a certificate');
  const role = bytes[16], sl = bytes[17];
  if (bytes.length !== CERT_FIXED + sl + sigLen) fail('bad_cert', 'bad certificate length');
  const o = 18 + sl;
  const subjectBytes = bytes.subarray(18, o);
  const c = {
    role, signPk: bytes.slice(o, o + 32), boxPk: bytes.slice(o + 32, o + 64),
    notBefore: getI64(bytes, o + 64), notAfter: getI64(bytes, o + 72),
    body: bytes.subarray(0, o + 80), sig: bytes.subarray(o + 80),
  };
  checkFields({ ...c, subjectBytes });
  try { c.subject = dec.decode(subjectBytes); } catch { fail('bad_cert', 'the subject is not UTF-8'); }
  return c;
}

/** body ‖ Ed25519 signature by the issuer's 64-byte secret key. */
export function signCert(body, issuerSk) {
  certFields(body, 0);
  return concat(body, sign(body, issuerSk, 'issuer key'));
}

/** The fields of a certificate ({role, subject, signPk, boxPk, notBefore, notAfter, body, sig}),
 *  without checking its signature. */
export const parseCert = (bytes) => certFields(bytes, 64);

/** Checks signature (by issuerPk), role and validity (inclusive, unix seconds); returns the fields. */
export function verifyCert(bytes, issuerPk, now, expectedRole) {
  const c = parseCert(bytes);
  if (!verifySig(c.sig, c.body, issuerPk, 'issuer')) fail('bad_signature', 'certificate signature');
  if (c.role !== expectedRole) fail('wrong_role', `role ${c.role}, expected ${expectedRole}`);
  if (now < c.notBefore || now > c.notAfter) fail('expired', 'certificate not valid now');
  return c;
}

/** H(cert): what revocations and wrap signatures name. */
export const certHash = (cert) => H(need(cert, undefined, 'certificate'));

/** The pseudonymous subject of a device certificate (never a staff id). */
export const deviceSubject = (signPk) => 'dev:' + hex(H(needPk(signPk, 'signPk')).subarray(0, 16));

/**
 * Verifies a device chain: issuer = an admin device certificate (role 2)
 * under the root, cert = a device certificate under the issuer's signPk with
 * one of roles; both valid at now; neither's H (hex) in revoked; the device
 * subject equal to subject when given. Returns {device, admin} (fields).
 */
export function verifyChain({ cert, issuer }, rootPk, now, opts = {}) {
  const { roles = [ROLE.COUNSELLOR, ROLE.SUPERVISOR], subject, revoked } = opts;
  const admin = verifyCert(issuer, rootPk, now, ROLE.ADMIN);
  const role = parseCert(cert).role;
  if (!roles.includes(role)) fail('wrong_role', `device role ${role}`);
  const device = verifyCert(cert, admin.signPk, now, role);
  if (subject !== undefined && device.subject !== subject) fail('bad_cert', 'another subject');
  if (revoked && (revoked.has(hex(H(cert))) || revoked.has(hex(H(issuer))))) {
    fail('revoked', 'certificate revoked');
  }
  return { device, admin };
}

// ---- revocations and device requests ----------------------------------------

const REVOKE = utf8('helpline-revoke-v1');
const REVOCATION_LEN = 18 + 32 + 8 + 64;

/** "helpline-revoke-v1" ‖ H(cert) ‖ i64 at ‖ sig (by an admin device or the root). */
export function makeRevocation(hash, at, signerSk) {
  const body = concat(REVOKE, need(hash, 32, 'hash'), i64(at));
  return concat(body, sign(body, signerSk, 'signer key'));
}

/** Checks a revocation's signature by signerPk; returns {hash, at}. */
export function verifyRevocation(bytes, signerPk) {
  need(bytes, REVOCATION_LEN, 'revocation');
  if (!eq(bytes.subarray(0, 18), REVOKE)) fail('bad_signature', 'not a revocation');
  if (!verifySig(bytes.subarray(58), bytes.subarray(0, 58), signerPk, 'revocation')) {
    fail('bad_signature', 'revocation signature');
  }
  return { hash: bytes.slice(18, 50), at: getI64(bytes, 50) };
}

/**
 * The set of revoked certificate hashes (hex) from the server's list
 * [{revocation, issuer}] (base64url), keeping only statements signed by the
 * root (issuer null) or by an admin device valid under the root.
 */
export function revokedSet(list, rootPk, now) {
  const out = new Set();
  for (const r of list ?? []) {
    try {
      const bytes = unb64(r.revocation, REVOCATION_LEN);
      const signer = r.issuer ? verifyCert(unb64(r.issuer), rootPk, now, ROLE.ADMIN).signPk : rootPk;
      out.add(hex(verifyRevocation(bytes, signer).hash));
    } catch { /* an unverifiable statement revokes nothing */ }
  }
  return out;
}

/** Proof of possession: body = "helpline-device-v1" ‖ u64 staff_id ‖ signPk ‖ boxPk,
 *  sig = its detached signature by the new signing key. Returns {body, sig}. */
export function deviceRequest(staffId, signPk, boxPk, signSk) {
  const body = concat(utf8('helpline-device-v1'), u64(staffId), needPk(signPk, 'signPk'),
    needPk(boxPk, 'boxPk'));
  return { body, sig: sign(body, signSk) };
}

// ---- device keys -------------------------------------------------------------

const keysOf = (s, b) =>
  ({ signPk: s.publicKey, signSk: s.privateKey, boxPk: b.publicKey, boxSk: b.privateKey });

/** A new device: Ed25519 signing and X25519 box key pairs. */
export const newDeviceKeys = () => keysOf(sodium.crypto_sign_keypair(), sodium.crypto_box_keypair());

/** The same from fixed seeds (for vectors). */
export function deviceKeysFromSeeds(signSeed, boxSeed) {
  return keysOf(sodium.crypto_sign_seed_keypair(need(signSeed, 32, 'sign seed')),
    sodium.crypto_box_seed_keypair(need(boxSeed, 32, 'box seed')));
}

// Argon2id cost bounds for keys at rest (also bounds what a stored object may ask for).
function pwhashLimits(ops, mem) {
  const ok = Number.isSafeInteger(ops) && Number.isSafeInteger(mem)
    && ops >= sodium.crypto_pwhash_OPSLIMIT_MIN && ops <= sodium.crypto_pwhash_OPSLIMIT_SENSITIVE
    && mem >= sodium.crypto_pwhash_MEMLIMIT_MIN && mem <= sodium.crypto_pwhash_MEMLIMIT_SENSITIVE;
  return ok;
}
const pwKey = (pass, salt, ops, mem) =>
  sodium.crypto_pwhash(32, pass, salt, ops, mem, sodium.crypto_pwhash_ALG_ARGON2ID13);

/**
 * Device keys at rest: crypto_secretbox under an Argon2id key from the
 * passphrase, over signPk ‖ signSk ‖ boxPk ‖ boxSk (32+64+32+32 bytes).
 * Returns a JSON-able {v: 1, salt, ops, mem, nonce, box} (base64url).
 */
export function sealDeviceKeys(keys, passphrase, { opslimit, memlimit } = {}) {
  const ops = opslimit ?? sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
  const mem = memlimit ?? sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
  if (!pwhashLimits(ops, mem)) fail('bad_length', 'Argon2id limits out of range');
  const plain = concat(needPk(keys.signPk, 'signPk'), needSignSk(keys.signSk, 'signSk'),
    needPk(keys.boxPk, 'boxPk'), need(keys.boxSk, 32, 'boxSk'));
  const salt = sodium.randombytes_buf(sodium.crypto_pwhash_SALTBYTES);
  const nonce = sodium.randombytes_buf(sodium.crypto_secretbox_NONCEBYTES);
  const key = pwKey(String(passphrase), salt, ops, mem);
  const box = sodium.crypto_secretbox_easy(plain, nonce, key);
  sodium.memzero(key);
  sodium.memzero(plain);
  return { v: 1, salt: b64(salt), ops, mem, nonce: b64(nonce), box: b64(box) };
}

/** Opens sealDeviceKeys' object; any failure (wrong passphrase, damaged object) is 'bad_passphrase'. */
export function openDeviceKeys(obj, passphrase) {
  const bad = (why) => fail('bad_passphrase', why);
  if (obj?.v !== 1 || !pwhashLimits(obj.ops, obj.mem)) bad('unknown key file');
  let salt, nonce, box;
  try {
    salt = unb64(obj.salt, sodium.crypto_pwhash_SALTBYTES);
    nonce = unb64(obj.nonce, sodium.crypto_secretbox_NONCEBYTES);
    box = unb64(obj.box, 160 + sodium.crypto_secretbox_MACBYTES);
  } catch {
    bad('damaged key file');
  }
  const key = pwKey(String(passphrase), salt, obj.ops, obj.mem);
  let plain;
  try {
    plain = sodium.crypto_secretbox_open_easy(box, nonce, key);
  } catch {
    bad('wrong passphrase');
  } finally {
    sodium.memzero(key);
  }
  const keys = { signPk: plain.slice(0, 32), signSk: plain.slice(32, 96), boxPk: plain.slice(96, 128),
    boxSk: plain.slice(128, 160) };
  sodium.memzero(plain);
  return keys;
}

/** Storage for sealed keys in Node tests: a Map. */
export function memoryBackend() {
  const m = new Map();
  return { get: async (k) => m.get(k), put: async (k, v) => { m.set(k, v); } };
}

/** Storage for sealed keys in the page: one IndexedDB object store "keys". */
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
      t.onabort = () => { db.close(); reject(t.error); };
    });
  };
  return { get: (k) => tx('readonly', (s) => s.get(k)), put: (k, v) => tx('readwrite', (s) => s.put(v, k)) };
}

/** save(name, obj) / load(name) of JSON-able objects (sealed keys); IndexedDB when there is one. */
export class KeyStore {
  constructor(backend) {
    this.backend = backend ?? (typeof indexedDB !== 'undefined' ? idbBackend() : memoryBackend());
  }
  save(name, obj) { return this.backend.put(name, obj); }
  load(name) { return this.backend.get(name); }
}

// ---- the handshake -----------------------------------------------------------

/** T = H("helpline-hs-v1" ‖ u64 conv ‖ u64 hello_seq ‖ young_kx_pk ‖ staff_kx_pk
 *        ‖ u16 len(cert) ‖ cert ‖ u16 len(issuer) ‖ issuer). */
export function transcriptHash({ conv, helloSeq, youngPk, staffPk, cert, issuer }) {
  need(cert, undefined, 'cert');
  need(issuer, undefined, 'issuer');
  return H(concat(utf8('helpline-hs-v1'), u64(conv), u64(helloSeq), needPk(youngPk, 'young key'),
    needPk(staffPk, 'staff key'), u16(cert.length), cert, u16(issuer.length), issuer));
}

/** The accept event's payload: u64 hello_seq ‖ staff_kx_pk ‖ u16 len ‖ cert ‖ u16 len ‖ issuer ‖ sig. */
export function encodeAcceptPayload({ helloSeq, kxPk, cert, issuer, sig }) {
  need(cert, undefined, 'cert');
  need(issuer, undefined, 'issuer');
  return concat(u64(helloSeq), needPk(kxPk, 'kx key'), u16(cert.length), cert, u16(issuer.length), issuer,
    need(sig, 64, 'sig'));
}

/** The inverse: {helloSeq, kxPk, cert, issuer, sig}; lengths checked, certificates not. */
export function parseAcceptPayload(p) {
  need(p, undefined, 'accept');
  if (p.length < 42) fail('bad_length', 'accept too short');
  const helloSeq = getU64(p, 0), kxPk = p.slice(8, 40);
  const cl = Number(getUint(p, 40, 2));
  if (cl < 1 || p.length < 42 + cl + 2) fail('bad_length', 'accept certificate');
  const cert = p.slice(42, 42 + cl), il = Number(getUint(p, 42 + cl, 2));
  if (il < 1 || p.length !== 44 + cl + il + 64) fail('bad_length', 'accept issuer');
  return { helloSeq, kxPk, cert, issuer: p.slice(44 + cl, 44 + cl + il), sig: p.slice(44 + cl + il) };
}

const ROOT = utf8('helpline-root-v1');
// root_dir = crypto_generichash(32, "helpline-root-v1" ‖ u8 dir ‖ T, key)
const chainRoot = (key, dir, T) => sodium.crypto_generichash(32, concat(ROOT, u8(dir), T), key);

// crypto_kx refuses a low-order or all-zero peer key (the shared point is zero).
function kx(fn, pk, sk, peer) {
  needPk(pk, 'kx public key');
  need(sk, 32, 'kx secret key');
  needPk(peer, 'peer kx key');
  try { return fn(pk, sk, peer); } catch { return fail('low_order', 'unusable key exchange key'); }
}

/**
 * The counsellor's device answers a hello: an ephemeral kx key pair (or
 * ephemeral, for vectors), T, and the device's signature of T.
 * Returns {kxPk, kxSk, sig, T}.
 */
export function acceptMessage({ conv, helloSeq, youngPk, deviceKeys, cert, issuer, ephemeral }) {
  const e = ephemeral ?? sodium.crypto_kx_keypair();
  needPk(e.publicKey, 'ephemeral key');
  need(e.privateKey, 32, 'ephemeral secret key');
  const T = transcriptHash({ conv, helloSeq, youngPk, staffPk: e.publicKey, cert, issuer });
  return { kxPk: e.publicKey, kxSk: e.privateKey, T, sig: sign(T, deviceKeys.signSk, 'device signing key') };
}

/** The device's roots (it is the crypto_kx server): root1 keyed by its rx, root2 by its tx. */
export function staffRoots({ T, kx: k, youngPk }) {
  need(T, 32, 'T');
  const s = kx(sodium.crypto_kx_server_session_keys, k.publicKey, k.privateKey, youngPk);
  const out = { root1: chainRoot(s.sharedRx, 1, T), root2: chainRoot(s.sharedTx, 2, T) };
  sodium.memzero(s.sharedRx);
  sodium.memzero(s.sharedTx);
  return out;
}

/**
 * The young person's page checks an accept (parsed) against its OWN hello
 * key and the root key it was shipped with (chain of role 3 or 4, signature
 * over T recomputed here), then derives the roots as the crypto_kx client.
 * Returns {root1, root2, T, device}.
 */
export function youngVerifyAccept({ conv, helloSeq, young, accept, rootPk, now, revoked }) {
  if (accept.helloSeq !== helloSeq) fail('bad_signature', 'the accept answers another hello');
  const { device } = verifyChain({ cert: accept.cert, issuer: accept.issuer }, rootPk, now,
    { roles: [ROLE.COUNSELLOR, ROLE.SUPERVISOR], revoked });
  const T = transcriptHash({ conv, helloSeq, youngPk: young.publicKey, staffPk: accept.kxPk,
    cert: accept.cert, issuer: accept.issuer });
  if (!verifySig(accept.sig, T, device.signPk, 'handshake')) fail('bad_signature', 'handshake signature');
  const s = kx(sodium.crypto_kx_client_session_keys, young.publicKey, young.privateKey, accept.kxPk);
  const out = { root1: chainRoot(s.sharedTx, 1, T), root2: chainRoot(s.sharedRx, 2, T), T, device };
  sodium.memzero(s.sharedRx);
  sodium.memzero(s.sharedTx);
  return out;
}

// ---- message keys --------------------------------------------------------------

const MAX_SKIP = 2000;

/** One step: mk_n = kdf(1, "hlmsgkey", ck_n), ck_{n+1} = kdf(2, "hlchain1", ck_n). */
export function chainStep(ck) {
  need(ck, 32, 'chain key');
  return {
    mk: sodium.crypto_kdf_derive_from_key(32, 1, 'hlmsgkey', ck),
    next: sodium.crypto_kdf_derive_from_key(32, 2, 'hlchain1', ck),
  };
}

/**
 * One direction of one epoch. next() gives the next message key to send
 * with; keyFor(n) the key of message n (once): it skips ahead at most
 * MAX_SKIP, keeping the skipped keys (at most MAX_SKIP) for late messages.
 * Chain keys are wiped as soon as they are stepped past.
 */
export class Chain {
  constructor(root) {
    this.ck = Uint8Array.from(need(root, 32, 'root'));
    this.n = 0;
    this.skipped = new Map();
  }
  next() { const n = this.n; return { n, mk: this.keyFor(n) }; }
  keyFor(n) {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) fail('bad_counter', `bad counter ${n}`);
    if (this.skipped.has(n)) {
      const mk = this.skipped.get(n);
      this.skipped.delete(n);
      return mk;
    }
    if (n < this.n) fail('bad_counter', `message key ${n} was used already`);
    if (n - this.n > MAX_SKIP) fail('bad_counter', 'too far ahead');
    for (;;) {
      const { mk, next } = chainStep(this.ck);
      sodium.memzero(this.ck);
      this.ck = next;
      const at = this.n++;
      if (at === n) return mk;
      this.skipped.set(at, mk);
      if (this.skipped.size > MAX_SKIP) {
        const oldest = this.skipped.keys().next().value;
        sodium.memzero(this.skipped.get(oldest));
        this.skipped.delete(oldest);
      }
    }
  }
}

// ---- envelopes -------------------------------------------------------------------

export const HEADER = 118;          // bytes before the ciphertext
const AD_END = 94;                  // the associated data covers bytes 0..93
const BLOCK = 256;                  // sodium_pad block size
const MSG = utf8('helpline-msg-v1'), FRANK = utf8('helpline-frank-v1');

/** c = crypto_auth("helpline-frank-v1" ‖ u64 conv ‖ u8 dir ‖ u64 epoch ‖ u32 n ‖ body, kf). */
export function commitment({ conv, dir, epoch, n, body, kf }) {
  need(body, undefined, 'body');
  need(kf, 32, 'kf');
  return sodium.crypto_auth(concat(FRANK, u64(conv), u8(dir), u64(epoch), u32(n), body), kf);
}

// Body types: 1 UTF-8 text, 2 a safety card (its id, e.g. "sextortion"),
// 3 a consent question (staff to young person), 4 the young person's answer
// to one (docs/crypto.md "Body types").
export const BODY_TEXT = 1, BODY_CARD = 2, BODY_CONSENT = 3, BODY_ANSWER = 4, BODY_HASHES = 5;

// A hash report (young person to staff): the fingerprints of pictures or
// videos computed on the young person's device, never the files.
export const HASH_AGE_BANDS = Object.freeze(['u13', '13_15', '16_17', '18p']);
export const HASH_KINDS = Object.freeze(['image', 'video']);
export const HASH_REPORT_MAX_ITEMS = 10;
const HEX = (n) => new RegExp(`^[0-9a-f]{${n}}$`);

/** The canonical content of a hash report {age_band (or null), items:
 * [{kind, type, size, sha256, md5, pdq, quality}]} (pdq and quality null
 * for a video or a picture that could not be decoded): compact JSON, keys
 * sorted. Throws bad_hashes for anything else. */
export function hashReportContent(r) {
  const bad = (why) => fail('bad_hashes', why);
  if (!r || typeof r !== 'object' || Array.isArray(r)) bad('a hash report is an object');
  if (Object.keys(r).sort().join(',') !== 'age_band,items') bad('a hash report has exactly "age_band" and "items"');
  if (r.age_band !== null && !HASH_AGE_BANDS.includes(r.age_band)) bad(`unknown age band ${r.age_band}`);
  if (!Array.isArray(r.items) || r.items.length < 1 || r.items.length > HASH_REPORT_MAX_ITEMS) bad(`items lists 1-${HASH_REPORT_MAX_ITEMS} files`);
  const items = r.items.map((x) => {
    if (!x || typeof x !== 'object' || Array.isArray(x)) bad('an item is an object');
    if (Object.keys(x).sort().join(',') !== 'kind,md5,pdq,quality,sha256,size,type') bad('an item has exactly kind, md5, pdq, quality, sha256, size, type');
    if (!HASH_KINDS.includes(x.kind)) bad(`unknown kind ${x.kind}`);
    if (typeof x.type !== 'string' || !/^(image|video)\/[a-z0-9.+-]{1,40}$/.test(x.type)) bad('type is an image or video media type');
    if (!Number.isSafeInteger(x.size) || x.size < 1) bad('size is a positive integer');
    if (typeof x.sha256 !== 'string' || !HEX(64).test(x.sha256)) bad('sha256 is 64 lower-case hex digits');
    if (typeof x.md5 !== 'string' || !HEX(32).test(x.md5)) bad('md5 is 32 lower-case hex digits');
    if (x.pdq === null ? x.quality !== null : (typeof x.pdq !== 'string' || !HEX(64).test(x.pdq))) bad('pdq is 64 lower-case hex digits (or null, with quality null)');
    if (x.quality !== null && (!Number.isSafeInteger(x.quality) || x.quality < 0 || x.quality > 100)) bad('quality is 0-100');
    if (x.kind === 'video' && x.pdq !== null) bad('a video has no pdq');
    return { kind: x.kind, md5: x.md5, pdq: x.pdq, quality: x.quality, sha256: x.sha256, size: x.size, type: x.type };
  });
  return JSON.stringify({ age_band: r.age_band, items });
}

// A consent question: who the information would go to, and what of it.
export const CONSENT_WITH = Object.freeze(['police', 'social_care', 'school', 'parent_carer', 'health']);
export const CONSENT_SHARE = Object.freeze(['what_happened', 'messages', 'their_details', 'your_name', 'your_contact', 'your_location']);
export const CONSENT_ANSWERS = Object.freeze(['yes', 'no', 'not_sure']);

/** The canonical content of a consent question {with, share} (share in
 * CONSENT_SHARE's order, no repeats): compact JSON with sorted keys. Throws
 * bad_consent for anything else. */
export function consentContent(q) {
  if (!q || typeof q !== 'object' || Array.isArray(q)) fail('bad_consent', 'a consent question is an object');
  const keys = Object.keys(q).sort();
  if (keys.join(',') !== 'share,with') fail('bad_consent', 'a consent question has exactly "with" and "share"');
  if (!CONSENT_WITH.includes(q.with)) fail('bad_consent', `unknown recipient ${q.with}`);
  if (!Array.isArray(q.share) || q.share.length < 1 || q.share.length > CONSENT_SHARE.length) fail('bad_consent', 'share lists 1-6 items');
  const set = new Set(q.share);
  if (set.size !== q.share.length || q.share.some((x) => !CONSENT_SHARE.includes(x))) fail('bad_consent', 'share items must be known and not repeated');
  const share = CONSENT_SHARE.filter((x) => set.has(x));
  if (share.join() !== q.share.join()) fail('bad_consent', 'share items must be in the canonical order');
  return JSON.stringify({ share, with: q.with });
}

/** The canonical content of an answer {question (the question's event
 * seq), answer}. */
export function answerContent(a) {
  if (!a || typeof a !== 'object' || Array.isArray(a)) fail('bad_consent', 'an answer is an object');
  if (Object.keys(a).sort().join(',') !== 'answer,question') fail('bad_consent', 'an answer has exactly "answer" and "question"');
  if (!Number.isSafeInteger(a.question) || a.question < 1) fail('bad_consent', 'question is the seq of the question');
  if (!CONSENT_ANSWERS.includes(a.answer)) fail('bad_consent', `unknown answer ${a.answer}`);
  return JSON.stringify({ answer: a.answer, question: a.question });
}

// Parses and re-checks structured content: it must be exactly canonical.
function structured(type, text) {
  let v;
  try { v = JSON.parse(text); } catch { fail('decrypt_failed', 'structured content is not JSON'); }
  let canon;
  try { canon = type === BODY_CONSENT ? consentContent(v) : type === BODY_ANSWER ? answerContent(v) : hashReportContent(v); } catch (e) { fail('decrypt_failed', e.message); }
  if (canon !== text) fail('decrypt_failed', 'structured content is not canonical');
  return v;
}

/**
 * Seals a message (body = u8 1 ‖ UTF-8 text; u8 2 ‖ card id for a safety
 * card, given as card; u8 3 ‖ consentContent(consent); u8 4 ‖
 * answerContent(answer); u8 5 ‖ hashReportContent(hashes); or body as
 * given) with message
 * key mk. kf and nonce are random unless given (vectors). seenHead defaults
 * to zeros (the spec's value when seenSeq is 0).
 */
export function seal({ conv, dir, epoch, n, seenSeq = 0, seenHead, mk, text, card, consent, answer, hashes, body, kf, nonce }) {
  if (dir !== 1 && dir !== 2) fail('wrong_direction', `direction ${dir}`);
  need(mk, 32, 'mk');
  if (consent !== undefined) {
    if (dir !== 2) fail('wrong_direction', 'a consent question goes from staff to the young person');
    body = concat(u8(BODY_CONSENT), utf8(consentContent(consent)));
  }
  if (answer !== undefined) {
    if (dir !== 1) fail('wrong_direction', 'an answer goes from the young person to staff');
    body = concat(u8(BODY_ANSWER), utf8(answerContent(answer)));
  }
  if (hashes !== undefined) {
    if (dir !== 1) fail('wrong_direction', 'a hash report goes from the young person to staff');
    body = concat(u8(BODY_HASHES), utf8(hashReportContent(hashes)));
  }
  if (card !== undefined) {
    if (typeof card !== 'string' || !/^[a-z0-9_]{1,32}$/.test(card)) fail('bad_length', 'card must be an id');
    body = concat(u8(BODY_CARD), utf8(card));
  }
  if (body === undefined && typeof text !== 'string') fail('bad_length', 'text must be a string');
  body = body === undefined ? concat(u8(BODY_TEXT), utf8(text)) : need(body, undefined, 'body');
  kf = kf === undefined ? sodium.randombytes_buf(32) : need(kf, 32, 'kf');
  nonce = nonce === undefined ? sodium.randombytes_buf(24) : need(nonce, 24, 'nonce');
  const c = commitment({ conv, dir, epoch, n, body, kf });
  const head = concat(u8(1), u8(dir), u64(conv), u64(epoch), u32(n), u64(seenSeq),
    seenHead === undefined ? ZERO32 : need(seenHead, 32, 'seenHead'), c);
  const pt = concat(kf, sodium.pad(body, BLOCK));
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, concat(MSG, head), null, nonce, mk);
  sodium.memzero(pt);
  return concat(head, nonce, ct);
}

/** The header fields of an envelope (length 118 + 48 + 256k, k >= 1), ct a view of the rest. */
export function parseHeader(env) {
  need(env, undefined, 'envelope');
  const rest = env.length - HEADER - 48;
  if (rest < BLOCK || rest % BLOCK !== 0) fail('bad_length', `envelope length ${env.length}`);
  if (env[0] !== 1) fail('bad_version', `envelope version ${env[0]}`);
  if (env[1] !== 1 && env[1] !== 2) fail('wrong_direction', 'envelope direction');
  return {
    version: 1, dir: env[1], conv: getU64(env, 2), epoch: getU64(env, 10),
    n: Number(getUint(env, 18, 4)), seenSeq: getU64(env, 22), seenHead: env.slice(30, 62),
    c: env.slice(62, 94), nonce: env.slice(94, HEADER), ct: env.subarray(HEADER),
  };
}

/**
 * Opens an envelope of conversation conv and direction dir with its message
 * key mk. knownHead(seq) gives the chain head the recipient saw at seq (or
 * undefined when it has not seen it). The caller picks mk by the header's
 * epoch and n (Chain.keyFor), which is where unknown epochs and reused
 * counters are refused. Returns {text, body, kf, c, n, epoch, dir, seenSeq}.
 */
export function open({ env, conv, dir, mk, knownHead }) {
  const h = parseHeader(env);
  need(mk, 32, 'mk');
  if (h.conv !== conv) fail('wrong_conversation', 'envelope from another conversation');
  if (dir !== undefined && h.dir !== dir) fail('wrong_direction', 'envelope direction');
  let pt, body;
  try {
    pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, h.ct, concat(MSG, env.subarray(0, AD_END)),
      h.nonce, mk);
  } catch {
    fail('decrypt_failed', 'the message does not decrypt');
  }
  const kf = pt.slice(0, 32);
  try {
    body = Uint8Array.from(sodium.unpad(pt.subarray(32), BLOCK));
  } catch {
    fail('decrypt_failed', 'bad padding');
  }
  sodium.memzero(pt);
  if (!eq(commitment({ conv, dir: h.dir, epoch: h.epoch, n: h.n, body, kf }), h.c)) {
    fail('bad_commitment', 'the commitment does not match the message');
  }
  if (h.seenSeq > 0 && knownHead) {
    const seen = knownHead(h.seenSeq);
    if (seen && !eq(seen, h.seenHead)) fail('history_mismatch', 'the sender saw another history');
  }
  if (body.length < 1 || body[0] < BODY_TEXT || body[0] > BODY_HASHES) fail('decrypt_failed', 'unknown body type');
  // Questions go from staff to the young person, answers and hash reports
  // the other way.
  if ((body[0] === BODY_CONSENT && h.dir !== 2) || ((body[0] === BODY_ANSWER || body[0] === BODY_HASHES) && h.dir !== 1)) fail('decrypt_failed', 'a structured message in the wrong direction');
  let text;
  try { text = dec.decode(body.subarray(1)); } catch { fail('decrypt_failed', 'text is not UTF-8'); }
  // A safety card carries only its id; the page shows its own words for it.
  const card = body[0] === BODY_CARD ? text : undefined;
  if (card !== undefined && !/^[a-z0-9_]{1,32}$/.test(card)) fail('decrypt_failed', 'bad card id');
  const consent = body[0] === BODY_CONSENT ? structured(BODY_CONSENT, text) : undefined;
  const answer = body[0] === BODY_ANSWER ? structured(BODY_ANSWER, text) : undefined;
  const hashes = body[0] === BODY_HASHES ? structured(BODY_HASHES, text) : undefined;
  return { text: body[0] === BODY_TEXT ? text : '', card, consent, answer, hashes, body, kf, c: h.c, n: h.n, epoch: h.epoch, dir: h.dir, seenSeq: h.seenSeq };
}

// ---- the hash chain and checkpoints ----------------------------------------------

/**
 * head_seq = H("helpline-chain-v1" ‖ head_{seq-1} ‖ u64 conv ‖ u64 seq ‖ i64 at (unix ms)
 *   ‖ u8 len ‖ kind ‖ u8 len ‖ sender ‖ u8 visibility ‖ H(payload)); prev null for head_0 (zeros).
 */
export function chainHead({ prev, conv, seq, at, kind, sender, visibility, payload, payloadHash }) {
  if (visibility !== 'all' && visibility !== 'staff') fail('bad_length', `visibility ${visibility}`);
  const k = utf8(kind), s = utf8(sender);
  // payloadHash: H(payload) given instead of the payload (an evidence bundle's withheld event).
  const ph = payloadHash !== undefined ? need(payloadHash, 32, 'payloadHash')
    : H(payload == null ? EMPTY : need(payload, undefined, 'payload'));
  return H(concat(utf8('helpline-chain-v1'), prev == null ? ZERO32 : need(prev, 32, 'prev'), u64(conv),
    u64(seq), i64(at), u8(k.length), k, u8(s.length), s, u8(visibility === 'staff' ? 1 : 0), ph));
}

/** What the STAMP key signs: "helpline-checkpoint-v1" ‖ u64 conv ‖ u64 seq ‖ head ‖ i64 at. */
export const checkpointMessage = ({ conv, seq, head, at }) =>
  concat(utf8('helpline-checkpoint-v1'), u64(conv), u64(seq), need(head, 32, 'head'), i64(at));

/** Checks a checkpoint signature; cp is the message bytes or its fields. Returns true or throws. */
export function verifyCheckpoint(cp, sig, stampPk) {
  const m = cp instanceof Uint8Array ? need(cp, 22 + 8 + 8 + 32 + 8, 'checkpoint') : checkpointMessage(cp);
  if (!verifySig(sig, m, stampPk, 'checkpoint')) fail('bad_signature', 'checkpoint signature');
  return true;
}

// ---- staff-only notes --------------------------------------------------------

// Notes (chat.note), handover notes (chat.transfer) and wrap-up notes are for
// staff alone. They are sealed under a conversation's note key: 32 random
// bytes made by the counsellor's device (never derived from the handshake,
// so a young person's keys cannot open them), carried to other staff
// devices in the key wraps as an entry with epoch 0 (no real epoch is 0).
// A note: u8 1 ‖ kid ‖ nonce(24) ‖ XChaCha20-Poly1305(pad(u8 1 ‖ UTF-8
// text, 256)), associated data "helpline-note-v1" ‖ u64 conv ‖ kid, where
// kid = the first 8 bytes of H(note key).
const NOTE = utf8('helpline-note-v1');
export const NOTE_EPOCH = 0;

/** The 8-byte id of a note key. */
export const noteKeyId = (key) => H(need(key, 32, 'note key')).slice(0, 8);

/** A new note key. */
export const newNoteKey = () => sodium.randombytes_buf(32);

/** Seals text as a note of conv under key (nonce random unless given). */
export function sealNote({ conv, key, text, nonce }) {
  if (typeof text !== 'string') fail('bad_length', 'text must be a string');
  const kid = noteKeyId(key);
  nonce = nonce === undefined ? sodium.randombytes_buf(24) : need(nonce, 24, 'nonce');
  const pt = sodium.pad(concat(u8(BODY_TEXT), utf8(text)), BLOCK);
  const ct = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(pt, concat(NOTE, u64(conv), kid), null, nonce, key);
  sodium.memzero(pt);
  return concat(u8(1), kid, nonce, ct);
}

/** The key id a sealed note names (to find its key), or 'bad_length'/'bad_version'. */
export function noteKid(bytes) {
  need(bytes, undefined, 'note');
  if (bytes.length < 1 + 8 + 24 + 16 + BLOCK) fail('bad_length', 'note too short');
  if (bytes[0] !== 1) fail('bad_version', `note version ${bytes[0]}`);
  return bytes.slice(1, 9);
}

/** Opens a note of conv with key; any failure after the length checks is 'decrypt_failed'. */
export function openNote({ conv, bytes, key }) {
  const kid = noteKid(bytes);
  need(key, 32, 'note key');
  if (!sodium.memcmp(kid, noteKeyId(key))) fail('decrypt_failed', 'note sealed under another key');
  let pt;
  try {
    pt = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, bytes.subarray(33), concat(NOTE, u64(conv), kid), bytes.subarray(9, 33), key);
  } catch {
    fail('decrypt_failed', 'note does not open');
  }
  let body;
  try { body = sodium.unpad(pt, BLOCK); } catch { fail('decrypt_failed', 'bad padding'); }
  if (!body.length || body[0] !== BODY_TEXT) fail('decrypt_failed', 'unknown note body');
  try { return new TextDecoder('utf-8', { fatal: true }).decode(body.subarray(1)); } catch { fail('decrypt_failed', 'note is not UTF-8'); }
}

// ---- key wraps ------------------------------------------------------------------------

const WRAP = utf8('helpline-wrap-v1');
// What the wrapping device signs: "helpline-wrap-sig-v1" ‖ u64 conv ‖ H(recipient cert) ‖ H(sealed).
const wrapSigMessage = (conv, recipientCert, sealed) => concat(utf8('helpline-wrap-sig-v1'), u64(conv),
  H(need(recipientCert, undefined, 'recipientCert')), H(sealed));

/** "helpline-wrap-v1" ‖ u64 conv ‖ u16 count ‖ count × (u64 epoch ‖ root1 ‖ root2). */
export function wrapPlaintext(conv, epochs) {
  return concat(WRAP, u64(conv), u16(epochs.length),
    ...epochs.map((e) => concat(u64(e.epoch), need(e.root1, 32, 'root1'), need(e.root2, 32, 'root2'))));
}

/**
 * Seals a conversation's epochs' roots to recipientBoxPk and signs the
 * result. recipientCert is the recipient device's certificate; for a young
 * person's return-code self-wrap it is the return code's 32-byte box public
 * key itself (and signerSk the return code's signing key). Returns {sealed, sig}.
 */
export function makeWrap({ conv, epochs, recipientBoxPk, recipientCert, signerSk }) {
  needPk(recipientBoxPk, 'recipient box key');
  needSignSk(signerSk, 'signer key');
  const plain = wrapPlaintext(conv, epochs);
  const sealed = sodium.crypto_box_seal(plain, recipientBoxPk);
  sodium.memzero(plain);
  return { sealed, sig: sign(wrapSigMessage(conv, recipientCert, sealed), signerSk) };
}

/** Checks a wrap's signature by signerPk (whose chain the caller has verified) and opens it;
 *  returns the epochs [{epoch, root1, root2}]; any failure after the length checks is 'bad_wrap'. */
export function openWrap({ sealed, sig, conv, recipientKeys, recipientCert, signerPk }) {
  need(sealed, undefined, 'sealed');
  if (sealed.length < sodium.crypto_box_SEALBYTES + 26) fail('bad_length', 'wrap too short');
  needPk(recipientKeys.boxPk, 'box key');
  need(recipientKeys.boxSk, 32, 'box secret key');
  if (!verifySig(sig, wrapSigMessage(conv, recipientCert, sealed), signerPk, 'wrap')) {
    fail('bad_wrap', 'wrap signature');
  }
  let p;
  try {
    p = sodium.crypto_box_seal_open(sealed, recipientKeys.boxPk, recipientKeys.boxSk);
  } catch {
    fail('bad_wrap', 'not sealed to this device');
  }
  if (p.length < 26 || !eq(p.subarray(0, 16), WRAP) || getUint(p, 16, 8) !== big(conv)) {
    fail('bad_wrap', 'wrap for another conversation');
  }
  const count = Number(getUint(p, 24, 2));
  if (p.length !== 26 + count * 72) fail('bad_wrap', 'wrap length');
  const epochs = [];
  for (let i = 0, o = 26; i < count; i++, o += 72) {
    epochs.push({ epoch: getU64(p, o), root1: p.slice(o + 8, o + 40), root2: p.slice(o + 40, o + 72) });
  }
  sodium.memzero(p);
  return epochs;
}

// ---- return codes -----------------------------------------------------------------------

/** words (>= 6) words chosen uniformly from the EFF large list, joined by single spaces. */
export function newReturnCode(words = 6) {
  if (!Number.isInteger(words) || words < 6) fail('bad_code', 'at least 6 words');
  return Array.from({ length: words }, () => WORDS[sodium.randombytes_uniform(WORDS.length)]).join(' ');
}

let wordSet;
/** Lower case, single spaces; at least 6 words, each in the list; else 'bad_code'. */
export function normalizeReturnCode(str) {
  if (typeof str !== 'string') fail('bad_code', 'not a return code');
  wordSet ??= new Set(WORDS);
  const words = str.toLowerCase().trim().split(/\s+/).filter(Boolean);
  if (words.length < 6 || words.some((w) => !wordSet.has(w))) fail('bad_code', 'not a return code');
  return words.join(' ');
}

/**
 * The return code's keys: seed = Argon2id(code, salt = H16("helpline-return-code-v1"), INTERACTIVE);
 * Ed25519 from kdf(1, "hlreturn", seed), X25519 from kdf(2, "hlreturn", seed).
 * Returns {seed, signPk, signSk, boxPk, boxSk}. The limits may only be lowered in tests.
 */
export function returnKeys(code, { opslimit, memlimit } = {}) {
  const salt = sodium.crypto_generichash(16, utf8('helpline-return-code-v1'), null);
  const ops = opslimit ?? sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
  const mem = memlimit ?? sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;
  const seed = pwKey(normalizeReturnCode(code), salt, ops, mem);
  const signSeed = sodium.crypto_kdf_derive_from_key(32, 1, 'hlreturn', seed);
  const boxSeed = sodium.crypto_kdf_derive_from_key(32, 2, 'hlreturn', seed);
  const keys = { seed, ...deviceKeysFromSeeds(signSeed, boxSeed) };
  sodium.memzero(signSeed);
  sodium.memzero(boxSeed);
  return keys;
}

/**
 * Signs a server challenge with a return code's signing key:
 * signChallenge(bytes, signSk) signs bytes as they are;
 * signChallenge(label, nonce, pk, signSk) signs label ‖ nonce ‖ pk (the
 * "helpline-return-v1" and "helpline-inbox-fetch-v1" challenges, protocol.md).
 */
export function signChallenge(...args) {
  if (args.length === 2) return sign(need(args[0], undefined, 'challenge'), args[1]);
  const [label, nonce, pk, sk] = args;
  return sign(concat(utf8(label), need(nonce, 32, 'nonce'), needPk(pk, 'key')), sk);
}
