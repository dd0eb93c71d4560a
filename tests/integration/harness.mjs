// harness.mjs: starts the real helplined on a free loopback port with a
// temporary database, and gives tests small WebSocket and HTTP helpers.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import net from 'node:net';
import WebSocket from 'ws';

export const HELPLINED = process.env.HELPLINED;
export const WEB_ROOT = process.env.HL_WEB_ROOT;
if (!HELPLINED) throw new Error('HELPLINED must name the helplined binary (ctest sets it)');
// HL_TEST_SLOW multiplies the harness's default waits (ops/valgrind.sh runs
// the daemon under valgrind, some 20 times slower).
export const SLOW = Math.max(1, Number(process.env.HL_TEST_SLOW ?? 1) || 1);

// Privacy probe (catalogue item 44, across the whole suite): every WebSocket
// and HTTP request the harness makes comes from PROBE_ADDR with PROBE_UA as
// its User-Agent (unless a test chooses its own), and browser.mjs gives
// Chromium PROBE_UA too. Whenever a daemon started here stops, its database
// files and its log are searched for both: finding either fails the test.
export const PROBE_ADDR = '127.0.0.213';
export const PROBE_UA_MARK = 'HLSuiteProbe-5e1d';
export const PROBE_UA = `Mozilla/5.0 (X11; Linux x86_64; ${PROBE_UA_MARK}) Gecko/20100101`;

// Throws naming the file or log line where PROBE_ADDR or PROBE_UA_MARK
// appears: helpline.db, its -wal and -shm in dir, and the log text.
export function assertNoClientTrace(dir, log) {
  const marks = [PROBE_ADDR, PROBE_UA_MARK];
  for (const f of ['helpline.db', 'helpline.db-wal', 'helpline.db-shm']) {
    let bytes;
    try { bytes = readFileSync(join(dir, f)); } catch { continue; }
    for (const m of marks)
      if (bytes.includes(m) || bytes.includes(Buffer.from(m, 'utf16le')))
        throw new Error(`privacy: the client's ${m === PROBE_ADDR ? 'address' : 'user agent'} is in ${f}`);
  }
  for (const line of log.split('\n'))
    for (const m of marks)
      if (line.includes(m)) throw new Error(`privacy: the daemon logged the client's ${m === PROBE_ADDR ? 'address' : 'user agent'}: ${line.slice(0, 300)}`);
}

// Tests of the relay itself send opaque payloads, so unless opts.envelopes
// is 'strict' (the daemon's default, what the end-to-end tests use) the
// server runs with chat.envelopes = opaque: the test's own --config file, if
// any, is copied with that key added.
function relayConfig(dir, args, envelopes) {
  if (envelopes === 'strict') return args;
  const i = args.indexOf('--config');
  const base = i >= 0 ? readFileSync(args[i + 1], 'utf8') : '';
  const path = join(dir, 'relay-test.ini');
  writeFileSync(path, `${base}\n[chat]\nenvelopes = opaque\n`);
  const rest = i >= 0 ? [...args.slice(0, i), ...args.slice(i + 2)] : args;
  return ['--config', path, ...rest];
}

// Starts helplined. opts.args are extra arguments; opts.dir reuses a state
// directory (to restart on the same database); opts.envelopes: see
// relayConfig. Resolves once it listens.
export async function startServer(opts = {}) {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'helpline-it-'));
  const args = ['--listen', opts.listen ?? '127.0.0.1:0', '--db', join(dir, 'helpline.db'),
    '--web-root', WEB_ROOT, '--log-level', opts.logLevel ?? 'info',
    ...relayConfig(dir, opts.args ?? [], opts.envelopes)];
  const proc = spawn(HELPLINED, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...(opts.env ?? {}) },
  });
  const srv = { proc, dir, stderr: '', stdout: '', port: 0, exited: null };
  proc.stdout.on('data', (d) => { srv.stdout += d; });
  srv.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`helplined did not start:\n${srv.stderr}`)), 15000 * SLOW);
    proc.stderr.on('data', (d) => {
      srv.stderr += d;
      const m = /server\.listening url=http:\/\/\S+?:(\d+)\//.exec(srv.stderr);
      if (m && !srv.port) { srv.port = Number(m[1]); clearTimeout(timer); resolve(); }
    });
    srv.exited.then(({ code }) => { clearTimeout(timer); reject(new Error(`helplined exited ${code}:\n${srv.stderr}`)); });
  });
  srv.url = `http://127.0.0.1:${srv.port}`;
  // Stops with SIGTERM and resolves {code, signal, stderr}.
  // Every stop also runs the privacy probe (assertNoClientTrace).
  srv.stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const r = await srv.exited;
    assertNoClientTrace(dir, srv.stderr);
    return { ...r, stderr: srv.stderr };
  };
  srv.cleanup = () => rmSync(dir, { recursive: true, force: true });
  return srv;
}

// Runs helplined to completion with args (no server expected); resolves
// {code, stdout, stderr}.
export function runHelplined(args, env = {}) {
  return new Promise((resolve) => {
    const p = spawn(HELPLINED, args, { env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// Opens a WebSocket; resolves the open socket with a message inbox, or
// rejects with the HTTP status and body of a refused upgrade.
export function connect(port, protocol = 'helpline.contact.v1', options = {}) {
  options = { localAddress: PROBE_ADDR, ...options, headers: { 'User-Agent': PROBE_UA, ...(options.headers ?? {}) } };
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${options.path ?? '/ws'}`, protocol ?? undefined, options);
    ws.inbox = [];
    ws.waiters = [];
    ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const msg = isBinary ? { binary: data } : JSON.parse(data.toString());
      const w = ws.waiters.shift();
      if (w) w(msg); else ws.inbox.push(msg);
    });
    ws.on('open', () => resolve(ws));
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => { const e = new Error(`refused ${res.statusCode}`); e.status = res.statusCode; e.body = body; e.headers = res.headers; reject(e); });
    });
    ws.on('error', (e) => reject(e));
  });
}

// Resolves the next message from ws (or rejects after ms).
export function next(ws, ms = 5000 * SLOW) {
  if (ws.inbox.length) return Promise.resolve(ws.inbox.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no message within ' + ms + ' ms')), ms);
    ws.waiters.push((m) => { clearTimeout(t); resolve(m); });
  });
}

// Sends obj (or a raw string/Buffer) and resolves the next message.
export async function request(ws, obj, opts) {
  ws.send(typeof obj === 'string' || Buffer.isBuffer(obj) ? obj : JSON.stringify(obj), opts);
  return next(ws);
}

let ids = 0;
/**
 * Polls fn (sync or async) every `every` ms until it returns something
 * truthy, and returns that; fails naming `what` after ms.
 */
export async function until(fn, what, ms = 15000 * SLOW, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export const nextId = () => `r${++ids}`;

// Opens a contact connection and completes hello.
export async function greeted(port, protocol = 'helpline.contact.v1', options = {}) {
  const ws = await connect(port, protocol, options);
  const id = nextId();
  const w = await request(ws, { type: 'hello', id, version: 1, client: 'it-test' });
  if (w.type !== 'welcome') throw new Error('no welcome: ' + JSON.stringify(w));
  return ws;
}

// The value of an unlabelled counter or gauge in /metrics text (NaN if absent).
export const metric = (text, name) => {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
};

// Plain HTTP request; resolves {status, headers, body}.
export function httpGet(port, path, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, localAddress: PROBE_ADDR,
      headers: { 'User-Agent': PROBE_UA, ...headers } }, (res) => {
      let data = '';
      res.on('data', (d) => { data += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

// A raw TCP socket that has completed a WebSocket upgrade, for sending
// frames no well-behaved client library would send.
export function rawUpgrade(port, protocol = 'helpline.contact.v1', extraHeaders = '') {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: PROBE_ADDR });
    let buf = Buffer.alloc(0);
    sock.on('error', reject);
    sock.on('connect', () => sock.write(
      `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: ${protocol}\r\n${extraHeaders}\r\n`));
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onData);
      const head = buf.subarray(0, end).toString();
      if (!head.startsWith('HTTP/1.1 101')) return reject(new Error('upgrade failed: ' + head));
      sock.rest = buf.subarray(end + 4);
      resolve(sock);
    };
    sock.on('data', onData);
  });
}

// Builds one client->server frame. mask=false makes an illegal unmasked frame.
export function frame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  payload = Buffer.from(payload);
  const len = payload.length;
  const head = [((fin ? 0x80 : 0) | (rsv << 4) | opcode)];
  const m = mask ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 255);
  else { head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 255, (len >>> 16) & 255, (len >>> 8) & 255, len & 255); }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = Buffer.from([1, 2, 3, 4]);
  const out = Buffer.from(payload);
  for (let i = 0; i < out.length; i++) out[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, out]);
}

// Reads server frames from a raw socket until a close frame; resolves
// {code, reason, frames} (code 1006 if the socket ended without one).
export function rawUntilClose(sock, ms = 5000) {
  return new Promise((resolve) => {
    let buf = sock.rest ?? Buffer.alloc(0);
    const frames = [];
    const done = (r) => { clearTimeout(t); sock.destroy(); resolve({ ...r, frames }); };
    const t = setTimeout(() => done({ code: 'timeout', reason: '' }), ms);
    const parse = () => {
      while (buf.length >= 2) {
        const op = buf[0] & 15;
        let len = buf[1] & 127, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (buf.length < off + len) return;
        const p = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 8) return done({ code: p.length >= 2 ? p.readUInt16BE(0) : 1005, reason: p.subarray(2).toString() });
        frames.push({ op, data: p.toString() });
      }
    };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
    sock.on('close', () => done({ code: 1006, reason: '' }));
    parse();
  });
}
