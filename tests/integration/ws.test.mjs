// ws.test.mjs: the contact and staff protocols: hello/ping, every codec error
// as a reply that leaves the connection open, and the close codes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startServer, connect, greeted, request, next, nextId, rawUpgrade, frame, rawUntilClose, httpGet } from './harness.mjs';

let srv, bystander;
before(async () => {
  srv = await startServer();
  // A connection that must be unaffected by everything the tests do.
  bystander = await greeted(srv.port);
});
after(async () => {
  const pong = await request(bystander, { type: 'ping', id: 'last', data: 'still here' });
  assert.deepEqual(pong, { type: 'pong', id: 'last', data: 'still here' });
  bystander.close();
  const r = await srv.stop(); srv.cleanup();
  assert.equal(r.code, 0, r.stderr);
});

test('hello gets welcome with the protocol, version and limits', async () => {
  const ws = await connect(srv.port);
  const w = await request(ws, { type: 'hello', id: 'h1', version: 1, client: 'it-test/1' });
  assert.equal(w.type, 'welcome');
  assert.equal(w.id, 'h1');
  assert.equal(w.protocol, 'helpline.contact.v1');
  assert.equal(w.version, 1);
  assert.match(w.server, /^helplined\/\d+\.\d+\.\d+/);
  assert.equal(w.max_message, 65536);
  assert.match(w.session, /^[0-9a-f]{16}$/);
  assert.deepEqual(await request(ws, { type: 'ping', id: 'p1' }), { type: 'pong', id: 'p1' });
  assert.deepEqual(await request(ws, { type: 'ping', id: 'p2', data: 'x"<y>' }), { type: 'pong', id: 'p2', data: 'x"<y>' });
  ws.close();
});

test('requests before hello, a second hello and a wrong version are bad_state / bad_field', async () => {
  const ws = await connect(srv.port);
  let r = await request(ws, { type: 'ping', id: 'early' });
  assert.deepEqual([r.type, r.id, r.code], ['error', 'early', 'bad_state']);
  r = await request(ws, { type: 'hello', id: 'v2', version: 2 });
  assert.deepEqual([r.type, r.code, r.field], ['error', 'bad_field', 'version']);
  r = await request(ws, { type: 'hello', id: 'ok', version: 1 });
  assert.equal(r.type, 'welcome');
  r = await request(ws, { type: 'hello', id: 'again', version: 1 });
  assert.deepEqual([r.type, r.id, r.code], ['error', 'again', 'bad_state']);
  ws.close();
});

test('staff connections speak the same hello', async () => {
  const ws = await greeted(srv.port, 'helpline.staff.v1', { origin: `http://127.0.0.1:${srv.port}` });
  assert.deepEqual(await request(ws, { type: 'ping', id: 's1' }), { type: 'pong', id: 's1' });
  ws.close();
});

// Each malformed frame gets its specific error, and the connection stays
// usable afterwards.
const deep = (n) => '['.repeat(n) + ']'.repeat(n);
const cases = [
  ['garbage', 'hello there', 'bad_json'],
  ['empty object', '{}', 'bad_type'],
  ['array root', '[1,2]', 'not_object'],
  ['string root', '"x"', 'not_object'],
  ['trailing garbage', '{"type":"ping","id":"a"} x', 'bad_json'],
  ['unknown type', '{"type":"launch","id":"u1"}', 'unknown_type', 'u1'],
  ['type not a string', '{"type":7,"id":"t1"}', 'bad_type', 't1'],
  ['missing id', '{"type":"ping"}', 'bad_id'],
  ['id too long', JSON.stringify({ type: 'ping', id: 'x'.repeat(65) }), 'bad_id'],
  ['id with bad characters', '{"type":"ping","id":"a b"}', 'bad_id'],
  ['unknown field', '{"type":"ping","id":"f1","evil":1}', 'unknown_field', 'f1'],
  ['wrong field type', '{"type":"ping","id":"f2","data":5}', 'bad_field', 'f2'],
  ['duplicate keys', '{"type":"ping","id":"d1","id":"d2"}', 'duplicate_key'],
  ['NUL escape', '{"type":"ping","id":"n1","data":"a\\u0000b"}', 'bad_json'],
  ['lone surrogate', '{"type":"ping","id":"s1","data":"\\ud800"}', 'bad_json'],
  ['30,000 deep nesting', deep(30000), 'too_deep'],
  ['deep object nesting', '{"a":'.repeat(10000) + '1' + '}'.repeat(10000), 'too_deep'],
  ['huge number', '{"type":"hello","id":"b1","version":1e400}', 'bad_json'],
  ['SQL metacharacters', `{"type":"ping","id":"q1","data":"'; DROP TABLE meta; --"}`, null, 'q1'],
  ['HTML in text', '{"type":"ping","id":"x1","data":"<script>alert(1)</script>"}', null, 'x1'],
];
for (const [name, text, code, id] of cases) {
  test(`malformed input: ${name}`, async () => {
    const ws = await greeted(srv.port);
    const r = await request(ws, text);
    if (code === null) {
      assert.equal(r.type, 'pong');
      assert.equal(r.data, JSON.parse(text).data);
    } else {
      assert.equal(r.type, 'error', JSON.stringify(r));
      assert.equal(r.code, code, JSON.stringify(r));
      assert.equal(typeof r.message, 'string');
      if (id) assert.equal(r.id, id);
    }
    const pong = await request(ws, { type: 'ping', id: 'after' });
    assert.deepEqual(pong, { type: 'pong', id: 'after' }, 'connection still usable');
    ws.close();
  });
}

test('invalid UTF-8 closes with 1007', async () => {
  const sock = await rawUpgrade(srv.port);
  sock.write(frame(1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
  const r = await rawUntilClose(sock);
  assert.equal(r.code, 1007);
});

test('a binary frame closes with 1003 and a reason', async () => {
  const ws = await greeted(srv.port);
  ws.send(Buffer.from([1, 2, 3]), { binary: true });
  const c = await ws.closed;
  assert.equal(c.code, 1003);
  assert.equal(c.reason, 'binary frames not accepted');
});

test('an oversize frame closes with 1009 and a reason', async () => {
  const ws = await greeted(srv.port);
  ws.send(JSON.stringify({ type: 'ping', id: 'big', data: 'x'.repeat(70000) }));
  const c = await ws.closed;
  assert.equal(c.code, 1009);
  assert.equal(c.reason, 'message too big');
});

// Catalogue item 1, memory: 40 connections at once each announce a 16 MiB
// frame and send 1 MiB of it. Each is closed with 1009 once it passes
// ws.max_message (64 KiB), so the daemon holds at most about that much per
// connection: its RSS grows by far less than the 40 MiB sent (640 MiB
// announced). ASan's quarantine keeps freed buffers, hence the margin.
test('oversize frames on 40 connections at once: each closes with 1009, memory stays bounded', { timeout: 60000 }, async (t) => {
  const rssKb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${srv.proc.pid}/status`, 'utf8'))[1]);
  const warm = await greeted(srv.port);
  assert.equal((await request(warm, { type: 'ping', id: 'w' })).type, 'pong');
  const before = rssKb();
  const key = Buffer.from([9, 8, 7, 6]);
  const head = Buffer.alloc(14);
  head[0] = 0x81; head[1] = 0x80 | 127;
  head.writeBigUInt64BE(16n << 20n, 2);
  key.copy(head, 10);
  const body = Buffer.alloc(1 << 20, 'x');
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  const socks = await Promise.all(Array.from({ length: 40 }, () => rawUpgrade(srv.port)));
  const closes = socks.map((s) => rawUntilClose(s, 30000));
  for (const s of socks) { s.on('error', () => {}); s.write(head); s.write(body); }
  const results = await Promise.all(closes);
  assert.deepEqual([...new Set(results.map((r) => `${r.code} ${r.reason}`))], ['1009 message too big']);
  const grown = rssKb() - before;
  t.diagnostic(`RSS grew by ${grown} KiB for 40 oversize frames`);
  assert.ok(grown < 24 * 1024, `RSS grew by ${grown} KiB for 40 oversize frames`);
  assert.equal((await request(warm, { type: 'ping', id: 'w2' })).type, 'pong', 'a bystander is unaffected');
  warm.close();
});

test('oversize reassembled fragments close with 1009', async () => {
  const sock = await rawUpgrade(srv.port);
  const chunk = 'x'.repeat(16000);
  sock.write(frame(1, '{"type":"ping","id":"f","data":"' + chunk, { fin: false }));
  for (let i = 0; i < 5; i++) sock.write(frame(0, chunk, { fin: false }));
  sock.write(frame(0, '"}', { fin: true }));
  const r = await rawUntilClose(sock);
  assert.equal(r.code, 1009);
  assert.equal(r.reason, 'message too big');
});

test('a fragmented message within the limit is reassembled', async () => {
  const sock = await rawUpgrade(srv.port);
  const msg = JSON.stringify({ type: 'hello', id: 'frag', version: 1 });
  sock.write(frame(1, msg.slice(0, 5), { fin: false }));
  sock.write(frame(0, msg.slice(5, 20), { fin: false }));
  sock.write(frame(0, msg.slice(20), { fin: true }));
  setTimeout(() => sock.write(frame(8, Buffer.from([0x03, 0xe8]))), 300);
  const r = await rawUntilClose(sock);
  assert.equal(r.frames.length, 1);
  assert.equal(JSON.parse(r.frames[0].data).type, 'welcome');
});

test('protocol violations close with 1002', async () => {
  const variants = [
    frame(1, '{"type":"ping","id":"r"}', { rsv: 4 }),               // reserved bit
    frame(3, 'x'),                                                   // reserved opcode
    frame(0, 'continuation without start'),                          // bad continuation
  ];
  for (const [i, f] of variants.entries()) {
    const sock = await rawUpgrade(srv.port);
    sock.write(f);
    const r = await rawUntilClose(sock);
    assert.equal(r.code, 1002, `variant ${i}`);
    assert.equal(r.frames.length, 0, `variant ${i} got a reply`);
  }
});

test('an oversize control frame drops the connection (lws 4.1.6 sends no close frame for it)', async () => {
  const sock = await rawUpgrade(srv.port);
  sock.write(frame(9, 'p'.repeat(200)));
  const r = await rawUntilClose(sock);
  assert.equal(r.code, 1006);
  assert.equal(r.frames.length, 0);
});

test('an unmasked client frame is handled like a masked one (lws 4.1.6 does not enforce masking)', async () => {
  // RFC 6455 says the server must close with 1002; lws 4.1.6 has no hook to
  // learn a frame's mask bit. Pin the current behaviour so an lws change is
  // noticed, and show it harms nothing: the frame is decoded normally.
  const sock = await rawUpgrade(srv.port);
  sock.write(frame(1, '{"type":"hello","id":"um","version":1}', { mask: false }));
  setTimeout(() => sock.write(frame(8, Buffer.from([0x03, 0xe8]))), 300);
  const r = await rawUntilClose(sock);
  assert.equal(r.frames.length, 1);
  assert.equal(JSON.parse(r.frames[0].data).type, 'welcome');
});

test('a flood of bad frames is answered, then rate-limited, then closed with 1008; others are unaffected', async () => {
  const other = await greeted(srv.port);
  const ws = await greeted(srv.port);
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
  for (let i = 0; i < 500; i++) ws.send(i % 2 ? '{' : '{"type":"nope","id":"z"}');
  const codes = {};
  for (;;) {
    let m;
    try { m = await next(ws, 3000); } catch { break; }
    assert.equal(m.type, 'error');
    codes[m.code] = (codes[m.code] ?? 0) + 1;
  }
  const c = await closed;
  assert.equal(c.code, 1008);
  assert.equal(c.reason, 'rate limit');
  // The burst (ws.burst, 60 by default, counting hello) got real answers, then
  // rate_limited until a further burst was refused.
  assert.ok(codes.bad_json + codes.unknown_type >= 50, JSON.stringify(codes));
  assert.ok(codes.rate_limited >= 50, JSON.stringify(codes));
  // Another connection is untouched.
  assert.equal((await request(other, { type: 'ping', id: 'p1' })).type, 'pong');
  other.close();
  const h = await httpGet(srv.port, '/healthz');
  assert.equal(h.status, 200);
});
