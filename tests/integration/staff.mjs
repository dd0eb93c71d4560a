// staff.mjs: helpers for tests that need staff accounts: helplinectl,
// RFC 6238 codes computed independently of the server, and enrol/login.
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { dirname, join } from 'node:path';
import { HELPLINED, connect, request, nextId } from './harness.mjs';

export const HELPLINECTL = join(dirname(HELPLINED), 'helplinectl');

// Runs helplinectl against srv's database; returns stdout (throws on exit != 0).
export function ctl(srv, ...args) {
  return execFileSync(HELPLINECTL, ['--db', join(srv.dir, 'helpline.db'), ...args],
    { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } }).toString();
}

export function base32decode(s) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0, value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').toUpperCase()) {
    value = (value << 5) | alpha.indexOf(c);
    bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; }
  }
  return Buffer.from(out);
}

export const stepNow = () => Math.floor(Date.now() / 1000 / 30);

// The 6-digit RFC 6238 (HMAC-SHA1) code of a base32 secret for a step.
export function totp(secretB32, step) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(step));
  const h = createHmac('sha1', base32decode(secretB32)).update(msg).digest();
  const off = h[19] & 15;
  return String((h.readUInt32BE(off) & 0x7fffffff) % 1000000).padStart(6, '0');
}

// Waits until at least `margin` seconds remain in the current 30 s step, so
// a test's codes for now-1, now, now+1 stay valid while it runs.
export async function awaitStepMargin(margin = 8) {
  const left = 30 - ((Date.now() / 1000) % 30);
  if (left < margin) await new Promise((r) => setTimeout(r, left * 1000 + 200));
}

export const origin = (srv) => `http://127.0.0.1:${srv.port}`;

export async function staffSocket(srv) {
  const ws = await connect(srv.port, 'helpline.staff.v1', { origin: origin(srv) });
  const w = await request(ws, { type: 'hello', id: nextId(), version: 1 });
  if (w.type !== 'welcome') throw new Error(JSON.stringify(w));
  return ws;
}

// Waits until the daemon has picked up an account helplinectl created.
export async function waitFor(fn, ms = 5000, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, every));
  }
}

// Creates an account with helplinectl and enrols it over the protocol using
// the code of step now-1. Returns {username, password, secret, code}.
export async function enrolled(srv, username, role = 'counsellor', extra = []) {
  const out = role === 'admin'
    ? ctl(srv, 'create-admin', username, '--name', `Test ${username}`, ...extra)
    : ctl(srv, 'create-staff', username, '--role', role, '--name', `Test ${username}`, ...extra);
  const code = /[A-Z2-7]{4}(?:-[A-Z2-7]{4}){4}/.exec(out)[0];
  // The daemon notices helplinectl's commit within about a second.
  let ws, ch;
  await waitFor(async () => {
    ws?.close();
    ws = await staffSocket(srv);
    ch = await request(ws, { type: 'auth.enrol_begin', id: nextId(), code });
    return ch.type === 'auth.enrol_challenge';
  }, 8000, 400);
  const password = `correct horse ${username} battery`.replace(username, 'x' + username.length);
  const r = await request(ws, { type: 'auth.enrol_finish', id: nextId(), code, password, totp: totp(ch.totp_secret, stepNow() - 1) });
  if (r.type !== 'auth.enrolled') throw new Error('enrol failed: ' + JSON.stringify(r));
  ws.close();
  return { username, password, secret: ch.totp_secret, code, challenge: ch };
}

// Logs in on a new staff socket with the code of `step`; returns {ws, reply}.
export async function login(srv, acct, step = stepNow()) {
  const ws = await staffSocket(srv);
  const reply = await request(ws, { type: 'auth.login', id: nextId(), username: acct.username, password: acct.password, totp: totp(acct.secret, step) });
  return { ws, reply };
}
