// proxy.test.mjs: ops/proxy/nginx.conf as shipped (only its addresses and
// certificate paths changed) in front of the real daemon, on loopback,
// with a self-signed certificate made here: a young person's WebSocket
// (hello, welcome, contact.start) and the pages through TLS, the security
// headers, /metrics refused; a recording upstream shows nginx passes no
// client address, forwarding header or user agent on, and the daemon's log
// holds no client address. Skips (saying why) without nginx or openssl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import WebSocket from 'ws';
import { startServer, until } from './harness.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const SITE = readFileSync(join(HERE, '..', '..', 'ops', 'proxy', 'nginx.conf'), 'utf8');
const NGINX = ['/usr/sbin/nginx', 'nginx'].find((p) => spawnSync(p, ['-v'], { stdio: 'ignore' }).status === 0);
const OPENSSL = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
const skip = !NGINX ? 'nginx not installed (ops/deps.sh test installs nginx-light)' : !OPENSSL ? 'openssl not found' : false;

const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.on('error', reject);
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

function replaceOnce(text, from, to) {
  assert.equal(text.split(from).length, 2, `nginx.conf has "${from}" once`);
  return text.replace(from, to);
}

// Renders the shipped site file for loopback and starts nginx with it.
async function startNginx(dir, upstreamPort, edit = (text) => text) {
  const [tls, plain] = [await freePort(), await freePort()];
  let site = edit(SITE);
  site = replaceOnce(site, 'listen 80;', `listen 127.0.0.1:${plain};`);
  site = replaceOnce(site, '    listen [::]:80;\n', '');
  site = replaceOnce(site, 'listen 443 ssl http2;', `listen 127.0.0.1:${tls} ssl http2;`);
  site = replaceOnce(site, '    listen [::]:443 ssl http2;\n', '');
  site = replaceOnce(site, 'server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`);
  site = replaceOnce(site, '/etc/ssl/helpline/fullchain.pem', join(dir, 'cert.pem'));
  site = replaceOnce(site, '/etc/ssl/helpline/privkey.pem', join(dir, 'key.pem'));
  site = replaceOnce(site, '/var/log/nginx/helpline-error.log', join(dir, 'site-error.log'));
  writeFileSync(join(dir, 'helpline.conf'), site);
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', t), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), `
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 256; }
http {
  client_body_temp_path ${join(dir, 'tmp', 'body')};
  proxy_temp_path ${join(dir, 'tmp', 'proxy')};
  fastcgi_temp_path ${join(dir, 'tmp', 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp', 'uwsgi')};
  scgi_temp_path ${join(dir, 'tmp', 'scgi')};
  include ${join(dir, 'helpline.conf')};
}
`);
  const check = spawnSync(NGINX, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'early.log')], { encoding: 'utf8' });
  assert.equal(check.status, 0, `nginx -t: ${check.stderr}`);
  const proc = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'early.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((r) => proc.on('exit', r));
  await until(() => new Promise((r) => {
    const c = net.connect(tls, '127.0.0.1', () => { c.destroy(); r(true); });
    c.on('error', () => r(false));
  }), `nginx listening (${stderr})`, 10000);
  return {
    tls, plain,
    stop: async () => { if (proc.exitCode === null) proc.kill('SIGTERM'); await exited; },
  };
}

function get(port, path, ca, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, ca, headers }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body }));
    });
    req.on('error', reject);
  });
}

// Headers a client, or a proxy in front of nginx, might send about itself.
const CLIENT_SAYS = {
  'X-Forwarded-For': '203.0.113.7', 'X-Real-IP': '203.0.113.7', Forwarded: 'for=203.0.113.7',
  'True-Client-IP': '203.0.113.7', 'User-Agent': 'TestBrowser/1.0 (young person)',
};

function openWs(port, ca) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, 'helpline.contact.v1', { ca, headers: CLIENT_SAYS });
    ws.inbox = [];
    ws.on('message', (d) => ws.inbox.push(JSON.parse(d.toString())));
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

function makeCert(dir) {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(join(dir, 'cert.pem'));
}

test('nginx passes no client address, forwarding header or user agent to the upstream, and upgrades /ws', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-proxy-'));
  const seen = [];
  const up = http.createServer((req, res) => { seen.push({ url: req.url, headers: req.headers }); res.end('ok'); });
  up.on('upgrade', (req, sock) => {
    seen.push({ url: req.url, headers: req.headers });
    sock.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
  });
  await new Promise((r) => up.listen(0, '127.0.0.1', r));
  let ngx;
  try {
    const ca = makeCert(dir);
    ngx = await startNginx(dir, up.address().port);
    const page = await get(ngx.tls, '/', ca, CLIENT_SAYS);
    assert.equal(page.status, 200);
    await openWs(ngx.tls, ca).then((ws) => ws.close(), () => {});
    assert.equal(seen.length, 2, JSON.stringify(seen));
    for (const { url, headers } of seen) {
      for (const h of ['x-forwarded-for', 'x-real-ip', 'forwarded', 'true-client-ip', 'user-agent', 'via', 'x-forwarded-host'])
        assert.equal(headers[h], undefined, `${url}: ${h} reached the upstream`);
      assert.ok(!JSON.stringify(headers).includes('203.0.113.7'), `${url}: an address reached the upstream`);
    }
    const wsReq = seen.find((s) => s.url === '/ws');
    assert.equal(wsReq.headers.upgrade, 'websocket');
    assert.match(wsReq.headers.connection, /upgrade/i);
    assert.equal(wsReq.headers['sec-websocket-protocol'], 'helpline.contact.v1');
    // Plain HTTP is only a redirect to https.
    const redirect = await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: ngx.plain, path: '/x', headers: { Host: 'chat.example.org' } },
      (res) => { res.resume(); resolve(res); }).on('error', reject));
    assert.equal(redirect.statusCode, 301);
    assert.equal(redirect.headers.location, 'https://chat.example.org/x');
  } finally {
    await ngx?.stop();
    up.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('through nginx with TLS: the pages, /healthz, a young person\'s contact.start; no client address in the daemon\'s log', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-proxy-'));
  const srv = await startServer({ logLevel: 'debug' });
  let ngx;
  try {
    const ca = makeCert(dir);
    ngx = await startNginx(dir, srv.port);

    const page = await get(ngx.tls, '/', ca, CLIENT_SAYS);
    assert.equal(page.status, 200);
    assert.match(page.body, /<html/i);
    // The daemon's headers arrive once each; nginx adds HSTS only.
    const names = page.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase());
    for (const h of ['content-security-policy', 'x-content-type-options', 'referrer-policy', 'x-frame-options', 'cache-control'])
      assert.equal(names.filter((n) => n === h).length, 1, `${h} once`);
    assert.match(page.headers['strict-transport-security'], /max-age=\d{7,}/);
    assert.equal(page.headers.server, 'nginx', 'no version in Server');
    const health = await get(ngx.tls, '/healthz', ca);
    assert.equal(health.status, 200);
    assert.equal(JSON.parse(health.body).status, 'ok');
    assert.equal((await get(ngx.tls, '/metrics', ca)).status, 404, '/metrics is not public');

    const ws = await openWs(ngx.tls, ca);
    ws.send(JSON.stringify({ type: 'hello', id: 'h1', version: 1, client: 'proxy-test' }));
    const welcome = await until(() => ws.inbox.find((m) => m.id === 'h1'), 'welcome', 5000);
    assert.equal(welcome.type, 'welcome', JSON.stringify(welcome));
    ws.send(JSON.stringify({ type: 'contact.start', id: 's1', topics: 'bullying' }));
    const started = await until(() => ws.inbox.find((m) => m.id === 's1'), 'contact.started', 5000);
    assert.equal(started.type, 'contact.started', JSON.stringify(started));
    assert.equal(started.position, 1);
    assert.equal(started.resume.length, 43);
    ws.close();
    await until(() => /conn\.closed/.test(srv.stderr), 'the daemon saw the close', 5000);

    const { code, stderr } = await srv.stop();
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /AddressSanitizer|runtime error/);
    assert.match(stderr, /conn\.open conn=\S+ role=contact/);
    // Its own listening address is the only address it writes.
    const rest = stderr.split('\n').filter((l) => !/ (server|metrics)\.listening /.test(l)).join('\n');
    for (const bit of ['127.0.0.1', '203.0.113.7', '::1', 'localhost', 'TestBrowser'])
      assert.ok(!rest.includes(bit), `the daemon logged ${bit}`);
  } finally {
    await ngx?.stop();
    await srv.stop();
    srv.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('through nginx: one client address holds at most limit_conn WebSockets (503 beyond), the daemon does not count the proxy, and nothing logs the address', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-proxy-'));
  // The daemon's own per-address cap is 2: the proxy's address is uncounted
  // by default, so only nginx's limit (3 here, 64 as shipped) applies.
  writeFileSync(join(dir, 'cap.ini'), '[server]\nmax_connections_per_address = 2\n');
  const srv = await startServer({ args: ['--config', join(dir, 'cap.ini')] });
  let ngx;
  const open = [];
  try {
    const ca = makeCert(dir);
    ngx = await startNginx(dir, srv.port, (text) => replaceOnce(text, 'limit_conn helpline_ws_addr 64;', 'limit_conn helpline_ws_addr 3;'));
    for (let i = 0; i < 3; i++) open.push(await openWs(ngx.tls, ca));
    await assert.rejects(openWs(ngx.tls, ca), /503/);
    open.pop().close();
    let again;
    for (let i = 0; i < 40 && !again; i++) again = await openWs(ngx.tls, ca).catch(() => new Promise((r) => setTimeout(() => r(null), 100)));
    assert.ok(again, 'a freed slot is taken again');
    open.push(again);
    for (const ws of open) ws.close();
    await ngx.stop();
    ngx = null;
    for (const f of ['site-error.log', 'error.log'])
      assert.ok(!readFileSync(join(dir, f), 'utf8').includes('127.0.0.1'), `${f} names the client`);
    const { code, stderr } = await srv.stop();
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /why=per_address/);
  } finally {
    await ngx?.stop();
    await srv.stop();
    srv.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
