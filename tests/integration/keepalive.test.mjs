// keepalive.test.mjs: the daemon's own keep-alive (service/keepalive.c;
// lws's is off). With ws.ping_interval = 1 a silent connection is pinged
// after a second and hung up after 2 × 1 + 10 = 12 s of hearing nothing:
// a raw client that never answers is dropped then (TCP closed, no close
// frame), having been pinged on the way; clients that answer pings (the
// ws package, like a browser) stay, contact and staff alike, and so does
// one that never answers a ping but keeps sending messages. The metrics
// count the pings and the one hang-up, and the log names only the
// connection's pseudonymous id. ws.ping_interval = 0 sends no pings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, connect, greeted, request, nextId, rawUpgrade, frame, httpGet, SLOW, metric } from './harness.mjs';
import { origin } from './staff.mjs';

// Reads server frames from a raw socket: counts pings, collects text
// frames, and notes when (and whether with a close frame) it ended.
function watchRaw(sock) {
  const w = { pings: 0, texts: [], closeFrame: false, endedAt: null };
  let buf = sock.rest ?? Buffer.alloc(0);
  const parse = () => {
    while (buf.length >= 2) {
      const op = buf[0] & 15;
      let len = buf[1] & 127, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      if (buf.length < off + len) return;
      const p = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (op === 9) w.pings++;
      else if (op === 8) w.closeFrame = true;
      else if (op === 1) w.texts.push(JSON.parse(p.toString()));
    }
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); parse(); });
  w.ended = new Promise((resolve) => sock.on('close', () => { w.endedAt = Date.now(); resolve(); }));
  parse();
  return w;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('silent peers are pinged and hung up after 2 × ws.ping_interval + 10 s; answering ones stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-ka-'));
  const ini = join(dir, 'ka.ini');
  writeFileSync(ini, '[ws]\nping_interval = 1\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    const t0 = Date.now();
    const silent = await rawUpgrade(srv.port);
    const silentW = watchRaw(silent);
    const talker = await rawUpgrade(srv.port);
    const talkerW = watchRaw(talker);
    const young = await greeted(srv.port);
    const staff = await connect(srv.port, 'helpline.staff.v1', { origin: origin(srv) });
    let youngPings = 0, staffPings = 0;
    young.on('ping', () => { youngPings++; });
    staff.on('ping', () => { staffPings++; });
    let closedEarly = null;
    for (const [who, ws] of [['young', young], ['staff', staff]]) ws.on('close', (code) => { closedEarly = `${who} ${code}`; });

    // The talker never answers a ping, but sends a message every 2 s.
    let n = 0;
    const talk = setInterval(() => {
      const msg = n++ ? { type: 'ping', id: `t${n}` } : { type: 'hello', id: 't0', version: 1, client: 'it-test' };
      talker.write(frame(1, JSON.stringify(msg)));
    }, 2000);
    try {
      await Promise.race([silentW.ended, sleep(20000 * SLOW)]);
      assert.ok(silentW.endedAt, 'the silent peer was hung up');
      const after = (silentW.endedAt - t0) / 1000;
      assert.ok(after >= 11.5 && after <= 14 * SLOW, `hung up after ${after} s (12 s of silence expected)`);
      assert.equal(silentW.closeFrame, false, 'a gone peer gets no close frame');
      assert.ok(silentW.pings >= 1 && silentW.pings <= 2, `pinged ${silentW.pings} times before the hang-up`);

      await sleep(Math.max(0, 14500 - (Date.now() - t0)));
      assert.equal(closedEarly, null, `the answering clients are still connected\n${srv.stderr}`);
      assert.ok(youngPings >= 5, `a silent young person answering pings was pinged ${youngPings} times`);
      assert.ok(staffPings >= 5, `a silent staff socket answering pings was pinged ${staffPings} times`);
      assert.equal(talkerW.endedAt, null, 'a peer that sends messages is not hung up');
      assert.ok(talkerW.pings >= 1, 'it was pinged when silent for a second');
      assert.ok(talkerW.texts.some((m) => m.type === 'pong'), 'and its messages were answered');
      assert.equal((await request(young, { type: 'ping', id: nextId() })).type, 'pong');
    } finally {
      clearInterval(talk);
    }

    const m = (await httpGet(srv.port, '/metrics')).body;
    assert.equal(metric(m, 'helpline_ws_keepalive_hangups_total'), 1);
    assert.ok(metric(m, 'helpline_ws_pings_total') >= 12, 'pings counted');
    assert.match(srv.stderr, /conn\.hangup conn=[0-9a-f]{16} why="no answer to pings"/);
    young.close();
    staff.close();
    talker.destroy();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
    srv.cleanup();
  }
});

test('ws.ping_interval = 0 sends no pings and hangs nobody up', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-ka0-'));
  const ini = join(dir, 'ka0.ini');
  writeFileSync(ini, '[ws]\nping_interval = 0\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    const young = await greeted(srv.port);
    let pings = 0;
    young.on('ping', () => { pings++; });
    await sleep(2500);
    assert.equal(pings, 0);
    const m = (await httpGet(srv.port, '/metrics')).body;
    assert.equal(metric(m, 'helpline_ws_pings_total'), 0);
    young.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
    srv.cleanup();
  }
});
