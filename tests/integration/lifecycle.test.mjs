// lifecycle.test.mjs: command line, configuration errors, clean shutdown,
// schema version refusal, and anonymity of logs and database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { startServer, runHelplined, connect, greeted, request, httpGet } from './harness.mjs';

// The newest migration version: the highest NNNN of schema/NNNN_name.sql.
const NEWEST_SCHEMA = Math.max(...readdirSync(new URL('../../schema/', import.meta.url))
  .map((f) => /^(\d{4})_\w+\.sql$/.exec(f)).filter(Boolean).map((m) => Number(m[1])));

test('--help and --version', async () => {
  const h = await runHelplined(['--help']);
  assert.equal(h.code, 0);
  for (const flag of ['--config', '--listen', '--db', '--web-root', '--state-dir', '--log-level', '--version'])
    assert.ok(h.stdout.includes(flag), flag);
  const v = await runHelplined(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^helplined \d+\.\d+\.\d+\n$/);
  const bad = await runHelplined(['--frobnicate']);
  assert.equal(bad.code, 2);
});

test('unknown config keys and bad values stop start-up naming the key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-cfg-'));
  const cfg = join(dir, 'h.ini');
  writeFileSync(cfg, '[server]\nlisten = 127.0.0.1:0\n[ws]\nmax_mesage = 10\n');
  let r = await runHelplined(['--config', cfg, '--db', join(dir, 'x.db')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ws\.max_mesage/);
  writeFileSync(cfg, '[ws]\nmax_message = lots\n');
  r = await runHelplined(['--config', cfg, '--db', join(dir, 'x.db')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ws\.max_message/);
  r = await runHelplined(['--listen', 'nowhere', '--db', join(dir, 'x.db')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /server\.listen/);
  r = await runHelplined(['--config', join(dir, 'missing.ini')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing\.ini/);
  assert.ok(!existsSync(join(dir, 'x.db')), 'no database is created when config is bad');
  rmSync(dir, { recursive: true, force: true });
});

test('a config file is read and the command line overrides it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-cfg-'));
  const cfg = join(dir, 'h.ini');
  writeFileSync(cfg, '[server]\nlisten = 127.0.0.1:1\n[ws]\nmax_message = 1000\n');
  const srv = await startServer({ args: ['--config', cfg] }); // harness passes --listen 127.0.0.1:0 first
  const ws = await connect(srv.port);
  const w = await request(ws, { type: 'hello', id: 'c', version: 1 });
  assert.equal(w.max_message, 1000);
  ws.send(JSON.stringify({ type: 'ping', id: 'p', data: 'x'.repeat(1001) }));
  assert.equal((await ws.closed).code, 1009);
  const r = await srv.stop(); srv.cleanup(); rmSync(dir, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
});

test('SIGTERM closes every client with 1001, exits 0, and leaks nothing', async () => {
  const srv = await startServer();
  const clients = [];
  for (let i = 0; i < 5; i++) clients.push(await greeted(srv.port));
  clients.push(await greeted(srv.port, 'helpline.staff.v1', { origin: `http://127.0.0.1:${srv.port}` }));
  const r = await srv.stop();
  for (const c of clients) {
    const cl = await c.closed;
    assert.equal(cl.code, 1001);
    assert.equal(cl.reason, 'server shutting down');
  }
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /LeakSanitizer|AddressSanitizer|runtime error/);
  assert.match(r.stderr, /server\.stopped status=0/);
  // The database is closed cleanly: integrity holds and the WAL was folded in.
  const out = execFileSync('sqlite3', [join(srv.dir, 'helpline.db'), 'PRAGMA integrity_check; PRAGMA user_version;']).toString();
  assert.equal(out, `ok\n${NEWEST_SCHEMA}\n`);
  srv.cleanup();
});

test('SIGINT also shuts down cleanly, and a restart reuses the database', async () => {
  const srv = await startServer();
  srv.proc.kill('SIGINT');
  const r = await srv.exited;
  assert.equal(r.code, 0, srv.stderr);
  const again = await startServer({ dir: srv.dir });
  assert.equal((await httpGet(again.port, '/healthz')).status, 200);
  const r2 = await again.stop(); again.cleanup();
  assert.equal(r2.code, 0, r2.stderr);
});

test('a database from a newer version is refused with a clear message', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-new-'));
  const db = join(dir, 'helpline.db');
  execFileSync('sqlite3', [db, 'PRAGMA user_version = 999; CREATE TABLE future(x);']);
  const r = await runHelplined(['--listen', '127.0.0.1:0', '--db', db]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /999/);
  assert.match(r.stderr, /newer/);
  const out = execFileSync('sqlite3', [db, 'PRAGMA user_version;']).toString();
  assert.equal(out, '999\n', 'the newer database is left untouched');
  rmSync(dir, { recursive: true, force: true });
});

test('a client\'s address and user agent appear in no log line and not in the database', async () => {
  const srv = await startServer({ logLevel: 'debug' });
  const ua = 'HLTestAgent/9.9 (UniqueMarker)';
  // Connect from a distinct loopback address so it cannot hide behind the
  // server's own listen address in the logs.
  const ws = await greeted(srv.port, 'helpline.contact.v1', { localAddress: '127.0.0.3', headers: { 'User-Agent': ua } });
  await request(ws, 'not json at all');
  ws.send(Buffer.from([1]), { binary: true });
  await ws.closed;
  await httpGet(srv.port, '/nope', { headers: { 'User-Agent': ua } });
  const r = await srv.stop();
  assert.equal(r.code, 0, r.stderr);
  const db = readFileSync(join(srv.dir, 'helpline.db'));
  for (const needle of ['127.0.0.3', 'HLTestAgent', 'UniqueMarker']) {
    assert.ok(!r.stderr.includes(needle), `log contains ${needle}`);
    assert.ok(!db.includes(needle), `database contains ${needle}`);
  }
  assert.match(r.stderr, /conn\.open conn=[0-9a-f]{16} role=contact/);
  srv.cleanup();
});

test('a port already in use stops start-up with a clear message', async () => {
  const srv = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'helpline-port-'));
  const r = await runHelplined(['--listen', `127.0.0.1:${srv.port}`, '--db', join(dir, 'h.db')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${srv.port}: Address already in use`));
  assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer/);
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200, 'the running server is unaffected');
  const s = await srv.stop(); srv.cleanup(); rmSync(dir, { recursive: true, force: true });
  assert.equal(s.code, 0, s.stderr);
});

test('listening on localhost works', async () => {
  const srv = await startServer({ listen: 'localhost:0' });
  assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
  const s = await srv.stop(); srv.cleanup();
  assert.equal(s.code, 0, s.stderr);
});
