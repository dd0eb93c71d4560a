// bundle.js: evidence bundles as a supervisor's client builds them
// (docs/evidence.md): the canonical JSON encoding, the digest and the
// device's signature, from what the client already holds — the events of
// chat.sync, the epochs' chain roots from the key wraps (message keys are
// derived here for the selected messages only), the STAMP-signed
// checkpoints, the certificates, revocations and audit entries — plus a
// human-readable HTML summary. The output is exactly what service/bundle.c
// (helplinectl verify-bundle) accepts; the two share
// tests/fixtures/evidence-bundle.json. Runs in the page and under Node
// (it waits for libsodium itself, with a top-level await).
import * as E from './e2e.js';

const sodium = await E.ready();

export const FORMAT = 'helpline-evidence-v1';
export const SUPERVISOR_LABEL = 'helpline-evidence-supervisor-v1';
export const SERVICE_LABEL = 'helpline-evidence-service-v1';
export const MAX_DEPTH = 32;

/** A refusal to build: code is one of 'not_canonical', 'bad_input', 'chain_mismatch', ... */
export class BundleError extends Error {
  constructor(code, message) {
    super(message ?? code);
    this.code = code;
    this.name = 'BundleError';
  }
}
const fail = (code, message) => { throw new BundleError(code, message); };

// Internal kinds: staff-only events (protocol.md §5.6).
const STAFF_KINDS = new Set(['note', 'tag', 'transfer', 'supervisor_joined', 'wrapup']);
// Kinds whose payload is withheld unless asked otherwise: staff notes
// (sealed, and not evidence about the young person's messages).
export const DEFAULT_WITHHELD = Object.freeze(['note', 'transfer', 'wrapup']);

// ---- canonical JSON ------------------------------------------------------

const KEY = /^[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}$/; // printable ASCII but '"' and '\'

function canon(v, depth) {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean': return v ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(v)) fail('not_canonical', `${v} is not an integer within 2^53 - 1`);
      return String(v);
    case 'string':
      if (!v.isWellFormed()) fail('not_canonical', 'a string holds a lone surrogate');
      if (v.includes('\0')) fail('not_canonical', 'a string holds a NUL character');
      return JSON.stringify(v);
    case 'object': {
      if (depth > MAX_DEPTH) fail('not_canonical', `nests deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(v)) return `[${v.map((x) => canon(x, depth + 1)).join(',')}]`;
      if (v instanceof Uint8Array) fail('not_canonical', 'bytes must be base64url strings');
      const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
      for (const k of keys) if (!KEY.test(k)) fail('not_canonical', `bad key ${JSON.stringify(k)}`);
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canon(v[k], depth + 1)}`).join(',')}}`;
    }
    default:
      return fail('not_canonical', `a ${typeof v} has no JSON form`);
  }
}

/** The canonical encoding of a JSON value (docs/evidence.md "Canonical JSON"). */
export const canonical = (value) => canon(value, 1);

/** The bundle file: the canonical encoding and a newline. */
export const fileText = (bundle) => `${canonical(bundle)}\n`;

/** BLAKE2b-256 of the body's canonical encoding. */
export const digestOf = (body) => E.H(E.utf8(canonical(body)));

/** What a signer signs: its label ‖ digest ('supervisor' or 'service'). */
export function signatureMessage(who, digest) {
  if (who !== 'supervisor' && who !== 'service') fail('bad_input', `signer ${who}`);
  return E.concat(E.utf8(who === 'service' ? SERVICE_LABEL : SUPERVISOR_LABEL), needBytes(digest, 32, 'digest'));
}

// ---- inputs --------------------------------------------------------------

function needBytes(b, len, what) {
  if (!(b instanceof Uint8Array)) fail('bad_input', `${what} must be bytes`);
  if (len !== undefined && b.length !== len) fail('bad_input', `${what} must be ${len} bytes`);
  return b;
}
// Bytes or base64url text (as the protocol sends them), to bytes.
function bytes(v, len, what) {
  if (typeof v === 'string') {
    try { return E.unb64(v, len); } catch { fail('bad_input', `${what} is not base64url of ${len ?? 'some'} bytes`); }
  }
  return needBytes(v, len, what);
}
function int(v, what, min = 0) {
  const n = typeof v === 'string' && /^[0-9]+$/.test(v) ? Number(v) : v;
  if (!Number.isSafeInteger(n) || n < min) fail('bad_input', `${what} is not an integer`);
  return n;
}
const eq = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The message key of message n of a chain that starts at root (docs/crypto.md "Message keys"). */
export function messageKey(root, n) {
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) fail('bad_input', `bad counter ${n}`);
  let ck = Uint8Array.from(needBytes(root, 32, 'root'));
  for (let i = 0; ; i++) {
    const { mk, next } = E.chainStep(ck);
    sodium.memzero(ck);
    if (i === n) { sodium.memzero(next); return mk; }
    sodium.memzero(mk);
    ck = next;
  }
}

// The epochs' roots: a Map (SecureStaff's session.epochs: epoch -> {root1,
// root2}) or an array of {epoch, root1, root2}.
function epochMap(epochs) {
  const m = new Map();
  const list = epochs instanceof Map ? [...epochs].map(([epoch, k]) => ({ epoch, ...k })) : epochs ?? [];
  for (const e of list) m.set(Number(e.epoch), { root1: needBytes(e.root1, 32, 'root1'), root2: needBytes(e.root2, 32, 'root2') });
  return m;
}

/**
 * Builds an evidence bundle. Inputs (bytes may be given as base64url):
 *   conversation  the conversation id
 *   events        its events as chat.sync delivers them to staff ({seq, at,
 *                 kind, from, payload?, chain}), from seq 1, any order
 *   select        the seqs of the messages to disclose (msg events)
 *   epochs        the chain roots (SecureStaff.session(conv).epochs, or
 *                 [{epoch, root1, root2}]): the selected messages' keys are
 *                 derived from them; nothing else of them goes in
 *   checkpoints   [{seq, at, head, sig}] (STAMP-signed; the bundle ends at
 *                 the last one)
 *   rootPk, stampCert, evidenceCert   from e2e.org
 *   signer        the supervisor's device {cert, issuer, keys: {signSk}}
 *   revocations   device.revocations' list [{revocation, issuer}]
 *   audit         the escalation's audit entries [{seq, at, actor, action,
 *                 target, detail, prev_hash, entry_hash}]
 *   referral      the referral's JSON object (carried and signed as is)
 *   createdAt     unix ms (default now): certificates are checked as of it
 *   withhold      kinds whose payload is withheld (default DEFAULT_WITHHELD;
 *                 unselected messages are always withheld)
 * Checks as it goes what it can (each event's head against the server's
 * `chain`, the checkpoints' STAMP signatures, each selected message opening
 * and matching its commitment) and throws a BundleError naming what is
 * wrong. Returns {bundle, text (the file), digest, checks (what was
 * checked, for the summary)}.
 */
export function buildBundle(o) {
  const conv = int(o.conversation, 'conversation', 1);
  const rootPk = bytes(o.rootPk, 32, 'rootPk');
  const stampCert = bytes(o.stampCert, undefined, 'stampCert');
  const evidenceCert = bytes(o.evidenceCert, undefined, 'evidenceCert');
  const createdAt = int(o.createdAt ?? Date.now(), 'createdAt');
  const withhold = new Set(o.withhold ?? DEFAULT_WITHHELD);
  const select = new Set([...(o.select ?? [])].map((s) => int(s, 'select', 1)));
  const epochs = epochMap(o.epochs);
  const signerCert = bytes(o.signer?.cert, undefined, 'signer.cert');
  const signerIssuer = bytes(o.signer?.issuer, undefined, 'signer.issuer');
  const signSk = needBytes(o.signer?.keys?.signSk, 64, 'signer.keys.signSk');
  if (typeof o.referral !== 'object' || o.referral === null || Array.isArray(o.referral)) fail('bad_input', 'referral must be an object');
  const checks = [];
  const nowS = Math.floor(createdAt / 1000);

  // The certificates this client can check itself.
  const stamp = E.verifyCert(stampCert, rootPk, E.parseCert(stampCert).notBefore, E.ROLE.STAMP);
  E.verifyCert(evidenceCert, rootPk, nowS, E.ROLE.EVIDENCE);
  E.verifyChain({ cert: signerCert, issuer: signerIssuer }, rootPk, nowS, { roles: [E.ROLE.SUPERVISOR] });
  checks.push('the STAMP, EVIDENCE and signing supervisor certificates chain to the root');

  // Checkpoints: the bundle ends at the last one.
  const cps = (o.checkpoints ?? []).map((c) => ({ seq: int(c.seq, 'checkpoint seq', 1), at: int(c.at, 'checkpoint at'), head: bytes(c.head, 32, 'checkpoint head'), sig: bytes(c.sig, 64, 'checkpoint sig') }))
    .sort((a, b) => a.seq - b.seq);
  const evs = [...(o.events ?? [])].map((ev) => ({ ...ev, seq: int(ev.seq, 'seq', 1) })).sort((a, b) => a.seq - b.seq);
  const lastEvent = evs.length ? evs[evs.length - 1].seq : 0;
  const usable = cps.filter((c) => c.seq <= lastEvent);
  if (!usable.length) fail('not_checkpointed', 'no STAMP checkpoint covers these events yet');
  const end = usable[usable.length - 1].seq;
  for (const s of select) if (s > end) fail('not_checkpointed', `message seq ${s} is after the last checkpoint (seq ${end}): wait for the next checkpoint or the end of the chat`);

  // The events from seq 1 to the last checkpoint, each head recomputed and
  // compared with the server's.
  const events = [];
  const bySeq = new Map();
  let prev = null;
  for (let i = 0; i < end; i++) {
    const ev = evs[i];
    if (!ev || ev.seq !== i + 1) fail('bad_input', `event seq ${i + 1} is missing from the events given`);
    const payload = ev.payload ? bytes(ev.payload, undefined, `payload of seq ${ev.seq}`) : new Uint8Array(0);
    const sender = String(ev.sender ?? ev.from);
    if (sender === 'counsellor') fail('bad_input', 'events must be the staff view (senders as staff:<id>)');
    const kind = String(ev.kind);
    const at = int(ev.at, `at of seq ${ev.seq}`);
    const chain = bytes(ev.chain, 32, `chain of seq ${ev.seq}`);
    const first = ev.visibility ?? (STAFF_KINDS.has(kind) ? 'staff' : 'all');
    let visibility = null, head = null;
    for (const vis of [first, first === 'all' ? 'staff' : 'all']) {
      const h = E.chainHead({ prev, conv, seq: ev.seq, at, kind, sender, visibility: vis, payload });
      if (eq(h, chain)) { visibility = vis; head = h; break; }
    }
    if (!head) fail('chain_mismatch', `event seq ${ev.seq} does not hash to the head the server sent`);
    const full = kind === 'msg' ? select.has(ev.seq) : !withhold.has(kind);
    if ((kind === 'hello' || kind === 'accept') && !full) fail('bad_input', 'handshake events are never withheld');
    const out = { seq: ev.seq, at, kind, sender, visibility, head: E.b64(head) };
    if (full) out.payload = E.b64(payload); else out.payload_hash = E.b64(E.H(payload));
    events.push(out);
    bySeq.set(ev.seq, { kind, sender, payload });
    prev = head;
  }
  checks.push(`seq 1 to ${end}: every event hashes to the chain head the server sent`);
  for (const c of usable) {
    if (!eq(c.head, E.unb64(events[c.seq - 1].head))) fail('chain_mismatch', `checkpoint seq ${c.seq} signs another head`);
    E.verifyCheckpoint({ conv, seq: c.seq, head: c.head, at: c.at }, c.sig, stamp.signPk);
  }
  checks.push(`${usable.length} checkpoint(s) signed by the STAMP key`);

  // The accepting devices, in order of first accept.
  const devices = [];
  for (const ev of events) {
    if (ev.kind !== 'accept') continue;
    const a = E.parseAcceptPayload(bySeq.get(ev.seq).payload);
    if (!devices.some((d) => eq(d.cert, a.cert) && eq(d.issuer, a.issuer))) devices.push({ cert: a.cert, issuer: a.issuer });
  }

  // The openings of the selected messages.
  const openings = [];
  for (const seq of [...select].sort((a, b) => a - b)) {
    const ev = bySeq.get(seq);
    if (!ev || ev.kind !== 'msg') fail('bad_input', `seq ${seq} is not a message`);
    const h = E.parseHeader(ev.payload);
    const k = epochs.get(h.epoch);
    if (!k) fail('no_keys', `no keys for epoch ${h.epoch} of message seq ${seq}`);
    const mk = messageKey(h.dir === 1 ? k.root1 : k.root2, h.n);
    let m;
    try { m = E.open({ env: ev.payload, conv, dir: h.dir, mk }); } catch (e) { fail('bad_message', `message seq ${seq}: ${e.message}`); }
    const type = m.card !== undefined ? 'card' : m.consent !== undefined ? 'consent' : m.answer !== undefined ? 'consent_answer' : m.hashes !== undefined ? 'hash_report' : 'text';
    const text = m.card ?? (m.consent !== undefined ? E.consentContent(m.consent) : m.answer !== undefined ? E.answerContent(m.answer) : m.hashes !== undefined ? E.hashReportContent(m.hashes) : m.text);
    openings.push({ seq, type, text, kf: E.b64(m.kf), mk: E.b64(mk) });
  }
  checks.push(`${openings.length} selected message(s) decrypt with their message keys and match their commitments`);

  const revocations = (o.revocations ?? []).map((r) => ({ revocation: E.b64(bytes(r.revocation, 122, 'revocation')), issuer: r.issuer ? E.b64(bytes(r.issuer, undefined, 'revocation issuer')) : null }));
  const revoked = E.revokedSet(revocations, rootPk, nowS);
  if (revoked.size !== new Set(revocations.map((r) => E.hex(E.unb64(r.revocation).subarray(18, 50)))).size) fail('bad_input', 'a revocation does not verify');

  const audit = (o.audit ?? []).map((a) => ({
    seq: int(a.seq, 'audit seq', 1), at: int(a.at, 'audit at'), actor: int(a.actor ?? 0, 'audit actor'),
    action: String(a.action), target: int(a.target ?? 0, 'audit target'), detail: String(a.detail ?? ''),
    prev_hash: E.b64(bytes(a.prev_hash, 32, 'audit prev_hash')), entry_hash: E.b64(bytes(a.entry_hash, 32, 'audit entry_hash')),
  })).sort((a, b) => a.seq - b.seq);

  const body = {
    format: FORMAT,
    conversation: conv,
    created_at: createdAt,
    root_pk: E.b64(rootPk),
    certificates: {
      stamp: E.b64(stampCert),
      evidence: E.b64(evidenceCert),
      signer: { cert: E.b64(signerCert), issuer: E.b64(signerIssuer) },
      devices: devices.map((d) => ({ cert: E.b64(d.cert), issuer: E.b64(d.issuer) })),
    },
    revocations,
    events,
    checkpoints: usable.map((c) => ({ seq: c.seq, at: c.at, head: E.b64(c.head), sig: E.b64(c.sig) })),
    openings,
    audit,
    referral: JSON.parse(canonical(o.referral)),
  };
  const digest = digestOf(body);
  const supervisor = sodium.crypto_sign_detached(signatureMessage('supervisor', digest), signSk);
  const bundle = { body, digest: E.b64(digest), signatures: { supervisor: E.b64(supervisor) } };
  return { bundle, text: fileText(bundle), digest, checks };
}

/** The bundle (object or file text) with the service's EVIDENCE signature added; returns {bundle, text}. */
export function withServiceSignature(bundleOrText, sig) {
  const b = typeof bundleOrText === 'string' ? JSON.parse(bundleOrText) : structuredClone(bundleOrText);
  b.signatures = { ...b.signatures, evidence: E.b64(bytes(sig, 64, 'sig')) };
  return { bundle: b, text: fileText(b) };
}

// ---- the human-readable summary ----------------------------------------------

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text made safe for HTML element content and attribute values. */
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

const iso = (ms) => { const d = new Date(ms); return Number.isFinite(d.getTime()) ? d.toISOString().replace('.000Z', 'Z') : String(ms); };
const fp = (b64) => E.hex(E.H(E.unb64(b64))).slice(0, 32).replace(/(.{4})(?!$)/g, '$1 ');
const who = (sender) => sender === 'contact' ? 'young person' : sender;

/**
 * A self-contained HTML page (no script, no remote resources, every value
 * escaped) describing a bundle: what it is, how to verify it, the
 * disclosed messages, the withheld events, checkpoints, audit entries,
 * referral, the digest and the fingerprints of its keys. checks: lines to
 * list (e.g. buildBundle's). */
export function summaryHtml(bundle, { checks = [], title } = {}) {
  const b = bundle.body;
  const t = title ?? `Evidence bundle: conversation ${b.conversation}`;
  const opened = new Map(b.openings.map((op) => [op.seq, op]));
  const rows = (cells) => `<tr>${cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`;
  const head = (cells) => `<tr>${cells.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr>`;
  const table = (caption, h, body) => `<table><caption>${escapeHtml(caption)}</caption><thead>${head(h)}</thead><tbody>${body.join('')}</tbody></table>`;
  const signer = E.parseCert(E.unb64(b.certificates.signer.cert));
  const withheld = b.events.filter((e) => e.payload_hash !== undefined);
  const parts = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(t)}</title>`,
    '<style>body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}'
      + 'table{border-collapse:collapse;width:100%;margin:1rem 0}td,th{border:1px solid #999;padding:.3rem .5rem;text-align:left;vertical-align:top}'
      + 'caption{text-align:left;font-weight:bold}code,.mono{font-family:ui-monospace,monospace;word-break:break-all}.msg{white-space:pre-wrap}</style>',
    '</head><body>',
    `<h1>${escapeHtml(t)}</h1>`,
    '<p>This page summarises an evidence bundle from Helpline. The bundle file is the evidence; this page is not. '
      + 'Verify the file with <code>helplinectl verify-bundle FILE --root KEYFILE</code>, where KEYFILE holds the '
      + 'organisation root public key as the helpline publishes it, and compare the fingerprints below.</p>',
    table('Bundle', ['Field', 'Value'], [
      rows(['Format', b.format]),
      rows(['Conversation', String(b.conversation)]),
      rows(['Made at (UTC)', iso(b.created_at)]),
      rows(['Digest (BLAKE2b-256 of the body)', E.hex(E.unb64(bundle.digest))]),
      rows(['Organisation root public key', b.root_pk]),
      rows(['Root key fingerprint', fp(b.root_pk)]),
      rows(['STAMP certificate fingerprint', fp(b.certificates.stamp)]),
      rows(['EVIDENCE certificate fingerprint', fp(b.certificates.evidence)]),
      rows(['Signed by supervisor device', `${signer.subject} (certificate ${fp(b.certificates.signer.cert)})`]),
      rows(['Supervisor signature', bundle.signatures?.supervisor ? 'present' : 'missing']),
      rows(['Service EVIDENCE signature', bundle.signatures?.evidence ? 'present' : 'missing (not yet countersigned)']),
      rows(['Events', `seq 1 to ${b.events.length}: ${b.events.length - withheld.length} with payload, ${withheld.length} withheld (hash only)`]),
    ]),
    table('Disclosed messages', ['Seq', 'Time (UTC)', 'From', 'Message'], b.openings.map((op) => {
      const ev = b.events[op.seq - 1];
      return `<tr><td>${op.seq}</td><td>${escapeHtml(iso(ev.at))}</td><td>${escapeHtml(who(ev.sender))}</td><td class="msg">${escapeHtml(op.type === 'card' ? `[safety card: ${op.text}]` : op.type === 'consent' ? `[consent question: ${op.text}]` : op.type === 'consent_answer' ? `[consent answer: ${op.text}]` : op.type === 'hash_report' ? `[hash report: ${op.text}]` : op.text)}</td></tr>`;
    })),
    table('All events (withheld ones keep only the hash of their payload, so the chain still verifies)', ['Seq', 'Time (UTC)', 'Kind', 'From', 'Visibility', 'Content'],
      b.events.map((e) => rows([String(e.seq), iso(e.at), e.kind, who(e.sender), e.visibility,
        opened.has(e.seq) ? 'disclosed (above)' : e.payload_hash !== undefined ? 'withheld' : e.kind === 'msg' ? 'ciphertext only' : 'included']))),
    table('Checkpoints signed by the service (STAMP key)', ['Seq', 'Signed at (UTC)', 'Chain head'],
      b.checkpoints.map((c) => `<tr><td>${c.seq}</td><td>${escapeHtml(iso(c.at))}</td><td class="mono">${escapeHtml(E.hex(E.unb64(c.head)))}</td></tr>`)),
    table('Audit entries', ['Seq', 'Time (UTC)', 'Staff id', 'Action', 'Detail'],
      b.audit.map((a) => `<tr><td>${a.seq}</td><td>${escapeHtml(iso(a.at))}</td><td>${a.actor || '-'}</td><td>${escapeHtml(a.action)}</td><td class="mono">${escapeHtml(a.detail)}</td></tr>`)),
    '<h2>Referral</h2>',
    `<pre class="mono">${escapeHtml(JSON.stringify(b.referral, null, 2))}</pre>`,
    '<h2>What the verifier checks</h2><ul>',
    ...['the file is canonical JSON and the digest is the BLAKE2b-256 of its body',
      'the supervisor device\'s and the service EVIDENCE key\'s signatures over the digest, and their certificates (chained to the root, valid and not revoked when the bundle was made)',
      'every event from seq 1 hashes to its chain head from the one before; the STAMP-signed checkpoints match the chain, the last at the last event',
      'every handshake: the accepting device chains to the root and signed the transcript with the young person\'s key',
      'every disclosed message: its ciphertext is in the chain, decrypts with the disclosed message key, and its franking commitment matches the disclosed text',
      'every audit entry\'s hash recomputes from its fields and the previous hash'].map((c) => `<li>${escapeHtml(c)}</li>`),
    '</ul>',
    ...(checks.length ? ['<h2>Checked by the supervisor\'s client when building</h2><ul>', ...checks.map((c) => `<li>${escapeHtml(c)}</li>`), '</ul>'] : []),
    '</body></html>',
  ];
  return `${parts.join('\n')}\n`;
}
