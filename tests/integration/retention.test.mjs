// retention.test.mjs: with the simulated clock (HL_TEST_CLOCK_SKEW_MS) the
// daemon restarted 31 days later purges an ended, never-escalated
// conversation (messages, wraps, checkpoints, resume sessions) and keeps
// the row's statistics, an escalated one whose escalation is undecided, and
// one still open; the purge is audited with counts only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId, until, httpGet } from './harness.mjs';
import { enrolled, login, awaitStepMargin, ctl } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const DAY = 86400 * 1000;
const q = (db, sql) => execFileSync('sqlite3', ['-readonly', db, sql], { encoding: 'utf8' }).trim();

// The reply to id, skipping pushes; from the harness's inbox, which keeps
// every message (a once('message') listener per reply would miss a push and
// a reply that arrive together).
async function reply(ws, id) {
  for (;;) {
    const m = await next(ws, 15000);
    if (m.id === id) return m;
  }
}
const req = (ws, obj) => { const id = nextId(); ws.send(JSON.stringify({ ...obj, id })); return reply(ws, id); };

test('retention purges ended chats after retention.days, keeps escalated and open ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-retention-'));
  const ini = join(dir, 'retention.ini');
  writeFileSync(ini, '[retention]\ndays = 30\nescalated_days = 365\ninterval = 1\nbatch = 1\n');
  let srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(15);
    const cou = await enrolled(srv, 'rita', 'counsellor');
    const { ws: c, reply: r0 } = await login(srv, cou);
    assert.equal(r0.type, 'auth.ok');
    const convs = [];
    for (let i = 0; i < 3; i++) {
      const y = await greeted(srv.port);
      assert.equal((await request(y, { type: 'contact.start', id: nextId() })).type, 'contact.started');
      if (i === 2) { convs.push({ y }); break; } // stays waiting
      const t = await req(c, { type: 'queue.take' });
      assert.equal(t.type, 'queue.taken', JSON.stringify(t));
      assert.equal((await req(y, { type: 'chat.send', payload: b64(`secret ${i}`) })).type, 'chat.ack');
      assert.equal((await req(c, { type: 'chat.send', conversation: t.conversation, payload: b64(`reply ${i}`) })).type, 'chat.ack');
      if (i === 1) {
        const e = await req(c, { type: 'escalation.raise', conversation: t.conversation, reason: 'life_at_risk', urgency: 'urgent' });
        assert.notEqual(e.type, 'error', JSON.stringify(e));
      }
      assert.equal((await req(y, { type: 'chat.end' })).type, 'chat.ended');
      convs.push({ y, id: t.conversation });
    }
    for (const x of convs) x.y.close();
    c.close();
    assert.equal((await srv.stop()).code, 0);
    const db = join(dir, 'helpline.db');
    const [plain, escalated] = [convs[0].id, convs[1].id];
    assert.ok(Number(q(db, `SELECT count(*) FROM event WHERE conversation_id = ${plain}`)) >= 2);

    // 29 days later nothing is due.
    srv = await startServer({ dir, args: ['--config', ini], env: { HL_TEST_CLOCK_SKEW_MS: String(29 * DAY) } });
    await new Promise((r) => setTimeout(r, 2500));
    assert.doesNotMatch(srv.stderr, /retention\.purged/);
    assert.equal((await srv.stop()).code, 0);
    assert.ok(Number(q(db, `SELECT count(*) FROM event WHERE conversation_id = ${plain}`)) >= 2);

    // 31 days later the plain one goes.
    srv = await startServer({ dir, args: ['--config', ini], env: { HL_TEST_CLOCK_SKEW_MS: String(31 * DAY) } });
    await until(() => /retention\.purged conversations=1 escalated=0/.test(srv.stderr), 'retention.purged', 15000);
    const metrics = (await httpGet(srv.port, '/metrics')).body;
    assert.match(metrics, /^helpline_retention_purged_conversations_total 1$/m);
    await new Promise((r) => setTimeout(r, 1500)); // a further run finds nothing
    assert.equal((srv.stderr.match(/retention\.purged/g) ?? []).length, 1);
    assert.equal((await srv.stop()).code, 0);

    for (const t of ['event', 'key_wrap', 'checkpoint', 'contact_session'])
      assert.equal(q(db, `SELECT count(*) FROM ${t} WHERE conversation_id = ${plain}`), '0', `${t} purged`);
    // The row stays for statistics, without its return keys.
    assert.equal(q(db, `SELECT state, return_sign_pk IS NULL FROM conversation WHERE id = ${plain}`), 'ended|1');
    // The undecided escalation's conversation and the waiting one are kept.
    assert.ok(Number(q(db, `SELECT count(*) FROM event WHERE conversation_id = ${escalated}`)) >= 2, 'escalated kept');
    assert.equal(q(db, "SELECT count(*) FROM conversation WHERE state = 'queued'"), '1');
    // Audited with counts only.
    assert.equal(q(db, "SELECT detail FROM audit WHERE action = 'retention.purge'"), '{"conversations":1,"escalated":0}');
    assert.match(ctl({ dir }, 'audit', 'verify'), /^audit chain ok/);
    assert.equal(q(db, 'PRAGMA integrity_check'), 'ok');
    assert.equal(q(db, 'PRAGMA foreign_key_check'), '');
    assert.doesNotMatch(srv.stderr, /AddressSanitizer|runtime error/);
  } finally {
    srv.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
