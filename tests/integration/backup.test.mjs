// backup.test.mjs: helplinectl backup while pairs chat (the online backup
// API, the daemon's writer going on), then restore into a fresh state
// directory, start helplined on it and find every message acknowledged
// before the backup started; restore's refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin, staffSocket, HELPLINECTL } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const unb64 = (s) => Buffer.from(s, 'base64url').toString();

function ctlAsync(args) {
  return new Promise((resolve) => {
    const p = spawn(HELPLINECTL, args);
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

// One side of a chat: a message every 60 ms (under ws.rate), up to four
// in flight; a refused one (rate_limited, busy) is sent again, same id.
function chatter(ws, name, conv) {
  const acked = []; // {id, seq, text, at}
  const pending = new Map();
  let n = 0;
  const send = (p) => ws.send(JSON.stringify(conv ? { type: 'chat.send', id: p.id, conversation: conv, payload: b64(p.text) }
    : { type: 'chat.send', id: p.id, payload: b64(p.text) }));
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    const p = pending.get(m.id);
    if (!p) return;
    if (m.type === 'chat.ack') {
      pending.delete(m.id);
      acked.push({ ...p, seq: m.seq, at: Date.now() });
    } else if (m.type === 'error') {
      setTimeout(() => send(p), 100);
    }
  });
  const timer = setInterval(() => {
    if (pending.size >= 4) return;
    const p = { id: `${name}-${n}`, text: `${name} says ${n}` };
    n++;
    pending.set(p.id, p);
    send(p);
  }, 60);
  return { acked, stop: () => clearInterval(timer) };
}

// The conversation's history as its counsellor sees it, resuming the
// session from before the backup (sessions are in the database too).
async function history(port, token, conv) {
  const ws = await staffSocket({ port });
  const reply = await request(ws, { type: 'auth.resume', id: nextId(), token });
  assert.equal(reply.type, 'auth.ok', JSON.stringify(reply));
  const events = [];
  for (let from = 0; ;) {
    ws.send(JSON.stringify({ type: 'chat.sync', id: nextId(), conversation: conv, last_seq: from }));
    let count;
    for (;;) {
      const m = await next(ws);
      if (m.type === 'chat.synced') { count = m.count; break; }
      if (m.type === 'chat.event') events.push(m);
    }
    if (count < 10000) break;
    from = events.at(-1).seq;
  }
  ws.close();
  return events;
}

test('backup under load, restore into a fresh directory, every acknowledged message is there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-backup-'));
  const fresh = mkdtempSync(join(tmpdir(), 'helpline-restored-'));
  const file = join(tmpdir(), `helpline-backup-${process.pid}.db`);
  rmSync(file, { force: true });
  const srv = await startServer({ dir });
  let srv2;
  try {
    await awaitStepMargin(20);
    const pairs = [];
    for (const name of ['bea', 'bob']) {
      const acct = await enrolled(srv, name, 'counsellor');
      const young = await greeted(srv.port);
      assert.equal((await request(young, { type: 'contact.start', id: nextId() })).type, 'contact.started');
      const { ws, reply } = await login(srv, acct);
      assert.equal(reply.type, 'auth.ok');
      const taken = await request(ws, { type: 'queue.take', id: nextId() });
      assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
      pairs.push({ acct, young, ws, token: reply.token, conv: taken.conversation });
    }
    // Chat both ways; after a while, back up while the chatting goes on.
    const sides = pairs.flatMap((p, i) => [chatter(p.young, `y${i}`), chatter(p.ws, `c${i}`, p.conv)]);
    await new Promise((r) => setTimeout(r, 1500));
    const startedAt = Date.now();
    const beforeCount = sides.reduce((a, s) => a + s.acked.length, 0);
    // Small steps with pauses, so the copy spans many of the daemon's commits.
    const r = await ctlAsync(['--db', join(dir, 'helpline.db'), 'backup', '--pages', '4', '--pause', '2', file]);
    const doneAt = Date.now();
    await new Promise((r2) => setTimeout(r2, 300));
    for (const s of sides) s.stop();
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /written to .*: \d+ pages in (\d+) steps/);
    const steps = Number(/in (\d+) steps/.exec(r.stdout)[1]);
    assert.ok(steps > 3, `several steps (${steps})`);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'backup is mode 0600');
    assert.ok(!existsSync(`${file}.partial`));
    const duringCount = sides.reduce((a, s) => a + s.acked.filter((m) => m.at > startedAt && m.at < doneAt).length, 0);
    assert.ok(beforeCount > 20, `messages before the backup: ${beforeCount}`);
    assert.ok(duringCount > 0, `the daemon kept acknowledging during the backup (${duringCount}, ${doneAt - startedAt} ms)`);
    // A second backup to the same name is refused.
    const again = await ctlAsync(['--db', join(dir, 'helpline.db'), 'backup', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists/);
    // Restore refuses to touch the running daemon's database.
    const busy = await ctlAsync(['--db', join(dir, 'helpline.db'), 'restore', '--force', file]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /open in another process/);
    for (const p of pairs) { p.young.close(); p.ws.close(); }
    assert.equal((await srv.stop()).code, 0);

    // Restore into a fresh state directory, with the key file (backed up
    // once, separately).
    const bad = join(fresh, 'not-a-db');
    writeFileSync(bad, 'hello');
    const refused = await ctlAsync(['--state-dir', fresh, 'restore', bad]);
    assert.equal(refused.code, 1);
    copyFileSync(join(dir, 'helpline.key'), join(fresh, 'helpline.key'));
    const rr = await ctlAsync(['--state-dir', fresh, 'restore', file]);
    assert.equal(rr.code, 0, rr.stderr);
    assert.match(rr.stdout, /restored /);
    const again2 = await ctlAsync(['--state-dir', fresh, 'restore', file]);
    assert.equal(again2.code, 1, 'an existing database needs --force');
    assert.match(again2.stderr, /--force/);
    const db = join(fresh, 'helpline.db');
    assert.equal(execFileSync('sqlite3', ['-readonly', db, 'PRAGMA integrity_check'], { encoding: 'utf8' }).trim(), 'ok');

    srv2 = await startServer({ dir: fresh });
    let checked = 0;
    for (const [i, p] of pairs.entries()) {
      const events = await history(srv2.port, p.token, p.conv);
      const bySeq = new Map(events.map((e) => [e.seq, e]));
      for (const [k, side] of [[2 * i, 'contact'], [2 * i + 1, 'staff']]) {
        for (const m of sides[k].acked.filter((x) => x.at <= startedAt)) {
          const e = bySeq.get(m.seq);
          assert.ok(e, `${m.id} (seq ${m.seq}, acknowledged before the backup) is in the restored database`);
          assert.equal(unb64(e.payload), m.text, `${m.id} holds its text`);
          assert.ok(side === 'contact' ? e.from === 'contact' : e.from !== 'contact');
          checked++;
        }
      }
      // Nothing in the copy that was never acknowledged... or acknowledged
      // later than the backup ended (the snapshot is from its start).
      const acked = new Set(sides[2 * i].acked.concat(sides[2 * i + 1].acked).map((m) => m.seq));
      for (const e of events.filter((x) => x.kind === 'msg')) assert.ok(acked.has(e.seq), `seq ${e.seq} was acknowledged`);
    }
    assert.equal(checked, beforeCount);
    const audit = execFileSync(HELPLINECTL, ['--state-dir', fresh, 'audit', 'verify'], { encoding: 'utf8' });
    assert.match(audit, /^audit chain ok/);
    const { code, stderr } = await srv2.stop();
    assert.equal(code, 0);
    assert.doesNotMatch(stderr + srv.stderr, /AddressSanitizer|runtime error/);
  } finally {
    srv.proc.kill('SIGKILL'); srv2?.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    rmSync(fresh, { recursive: true, force: true });
    rmSync(file, { force: true });
  }
});
