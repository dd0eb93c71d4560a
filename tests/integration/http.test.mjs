// http.test.mjs: static files, security headers, /healthz, /metrics and the
// WebSocket upgrade gate, against the real daemon.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, httpGet, connect, WEB_ROOT } from './harness.mjs';

let srv;
before(async () => { srv = await startServer(); });
after(async () => { const r = await srv.stop(); srv.cleanup(); assert.equal(r.code, 0, r.stderr); });

function assertSecurityHeaders(h) {
  assert.match(h['content-security-policy'], /default-src 'none'/);
  assert.match(h['content-security-policy'], /script-src 'self' 'wasm-unsafe-eval';/);
  assert.doesNotMatch(h['content-security-policy'], /unsafe-inline/);
  assert.match(h['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.equal(h['referrer-policy'], 'no-referrer');
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['cache-control'], 'no-store');
}

test('GET /healthz answers JSON with status and version', async () => {
  const r = await httpGet(srv.port, '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/json');
  const j = JSON.parse(r.body);
  assert.equal(j.status, 'ok');
  assert.match(j.version, /^\d+\.\d+\.\d+/);
  assert.equal(j.store, 'ok');
  assertSecurityHeaders(r.headers);
});

test('the index page is served with its MIME type and strict headers', async () => {
  const r = await httpGet(srv.port, '/');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.match(r.body, /<title>Helpline<\/title>/);
  assertSecurityHeaders(r.headers);
  const css = await httpGet(srv.port, '/style.css');
  assert.equal(css.status, 200);
  assert.equal(css.headers['content-type'], 'text/css; charset=utf-8');
  assertSecurityHeaders(css.headers);
});

test('/console and /console/ serve console.html with the same headers', async () => {
  // A web root of the test's own, so this does not depend on the real page.
  const root = mkdtempSync(join(tmpdir(), 'helpline-webroot-'));
  copyFileSync(join(WEB_ROOT, 'taxonomy.json'), join(root, 'taxonomy.json'));
  writeFileSync(join(root, 'console.html'), '<!doctype html><title>Test console</title>\n');
  const own = await startServer({ args: ['--web-root', root] });
  try {
    for (const p of ['/console', '/console/', '/console.html']) {
      const r = await httpGet(own.port, p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8', p);
      assert.equal(r.body, '<!doctype html><title>Test console</title>\n', p);
      assertSecurityHeaders(r.headers);
    }
    const head = await httpGet(own.port, '/console', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assertSecurityHeaders(head.headers);
    // Only those exact paths are aliases (lws itself folds '//' into '/').
    for (const p of ['/consoles', '/console/x', '/Console', '/console.htm', '/console.html/']) {
      const r = await httpGet(own.port, p);
      assert.equal(r.status, 404, p);
    }
    // No index.html in this root: / is 404, not the console.
    assert.equal((await httpGet(own.port, '/')).status, 404);
  } finally {
    const r = await own.stop();
    own.cleanup();
    rmSync(root, { recursive: true, force: true });
    assert.equal(r.code, 0, r.stderr);
  }
});

test('HEAD gives headers and no body', async () => {
  const r = await httpGet(srv.port, '/healthz', { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(r.body, '');
});

test('missing files, traversal and hidden paths are 404', async () => {
  for (const p of ['/nope.html', '/../CMakeLists.txt', '/%2e%2e/CMakeLists.txt', '/.git/config',
    '/a//b.html', '/index.html/', '/style.css%00.html', '/..%2fREADME.md', '/client-web/../README.md']) {
    const r = await httpGet(srv.port, p).catch((e) => ({ status: e.code, body: '' }));
    // lws itself drops a request whose URI decodes to a NUL byte.
    assert.equal(r.status, p.includes('%00') ? 'ECONNRESET' : 404, p);
    assert.ok(!/cmake_minimum_required|\[core\]|Helpline is a free/.test(r.body), p);
  }
});

test('other methods are refused with 405', async () => {
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await httpGet(srv.port, '/healthz', { method, body: method === 'POST' ? 'x' : undefined });
    assert.equal(r.status, 405, method);
  }
});

test('/metrics exposes counters in text format', async () => {
  const r = await httpGet(srv.port, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.body, /^helpline_errors_total\{code="bad_json"\} \d+$/m);
  assert.match(r.body, /^helpline_store_batches_total \d+$/m);
  assert.match(r.body, /^helpline_store_checkpoints_total \d+$/m);
  assert.match(r.body, /^helpline_store_writer_checkpoints_total \d+$/m);
  assert.match(r.body, /^helpline_secrets_barred_total \d+$/m);
});

test('an upgrade without a known subprotocol is refused with 400 and a reason', async () => {
  for (const proto of [null, 'chat', 'http', 'helpline.contact.v2']) {
    const e = await connect(srv.port, proto).then(() => null, (err) => err);
    assert.ok(e, `upgrade with ${proto} should be refused`);
    assert.equal(e.status, 400, String(proto));
    assert.match(e.body, /subprotocol is required: helpline\.contact\.v1 or helpline\.staff\.v1/);
  }
});

test('an upgrade on another path is refused with 404', async () => {
  const e = await connect(srv.port, 'helpline.contact.v1', { path: '/chat' }).then(() => null, (err) => err);
  assert.equal(e?.status, 404);
  assert.match(e.body, /endpoint is \/ws/);
});

test('staff upgrades need an allowed Origin', async () => {
  const own = `http://127.0.0.1:${srv.port}`;
  for (const origin of [undefined, 'null', 'http://evil.example', `http://127.0.0.1:${srv.port + 1}`, `${own}.evil.example`]) {
    const e = await connect(srv.port, 'helpline.staff.v1', origin === undefined ? {} : { origin }).then(() => null, (err) => err);
    assert.equal(e?.status, 403, String(origin));
  }
  const ws = await connect(srv.port, 'helpline.staff.v1', { origin: own });
  assert.equal(ws.protocol, 'helpline.staff.v1');
  const ws2 = await connect(srv.port, 'helpline.staff.v1', { origin: `http://localhost:${srv.port}` });
  ws.close(); ws2.close();
  await ws.closed; await ws2.closed;
});

test('contact upgrades need no Origin and carry no cookies', async () => {
  const ws = await connect(srv.port, 'helpline.contact.v1');
  assert.equal(ws.protocol, 'helpline.contact.v1');
  ws.close();
  await ws.closed;
});
