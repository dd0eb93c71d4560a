// chat-hostile.test.mjs: the bad-input list against the chat core.
// Each bad request gets its specific error and changes nothing: the
// database's conversations and events are byte-for-byte the same
// afterwards, and the good parties carry on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');

function snapshot(dir) {
  const q = (sql) => execFileSync('sqlite3', [join(dir, 'helpline.db'), sql], { encoding: 'utf8' });
  return q('SELECT id, state, counsellor_id, last_seq, supervisor_id, transfers, contact_delivered, contact_read, staff_delivered, staff_read FROM conversation ORDER BY id') +
    q('SELECT conversation_id, seq, kind, sender, visibility, hex(payload) FROM event ORDER BY conversation_id, seq');
}

async function nextOf(ws, type, ms = 5000) {
  for (;;) { const m = await next(ws, ms); if (m.type === type) return m; }
}

test('bad input gets a specific error and changes nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-hostile-'));
  const srv = await startServer({ dir });
  try {
    await awaitStepMargin(15);
    const [hal, ivy] = [await enrolled(srv, 'hal', 'counsellor'), await enrolled(srv, 'ivy', 'counsellor')];
    await awaitStepMargin(8);
    const { ws: h, reply: hReply } = await login(srv, hal);
    const halId = hReply.staff.id;
    const { ws: i } = await login(srv, ivy);
    // Two young people; Hal takes the first (pull: queue.take), Ivy the second.
    const y1 = await greeted(srv.port);
    const s1 = await request(y1, { type: 'contact.start', id: nextId() });
    const y2 = await greeted(srv.port);
    const s2 = await request(y2, { type: 'contact.start', id: nextId() });
    assert.equal((await request(h, { type: 'queue.take', id: nextId() })).conversation, s1.conversation);
    assert.equal((await request(i, { type: 'queue.take', id: nextId() })).conversation, s2.conversation);
    await nextOf(y1, 'chat.event');
    await nextOf(y2, 'chat.event');
    const ack = await request(y1, { type: 'chat.send', id: 'm1', payload: b64('hello') });
    assert.equal(ack.type, 'chat.ack');
    await nextOf(h, 'chat.event');
    const before = snapshot(dir);

    const expect = async (ws, msg, code, field) => {
      const r = await request(ws, { id: nextId(), ...msg });
      assert.equal(r.type, 'error', `${JSON.stringify(msg)} -> ${JSON.stringify(r)}`);
      assert.equal(r.code, code, `${JSON.stringify(msg)} -> ${JSON.stringify(r)}`);
      if (field) assert.equal(r.field, field, JSON.stringify(r));
    };
    // Messages to a conversation the sender is not in (both sides).
    await expect(y1, { type: 'chat.send', conversation: s2.conversation, payload: b64('x') }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.send', conversation: s2.conversation, payload: b64('x') }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.sync', conversation: s2.conversation, last_seq: 0 }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.note', conversation: '999999', payload: b64('x') }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.end', conversation: s2.conversation }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.transfer', conversation: s2.conversation, to: 1 }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.wrapup', conversation: s2.conversation, outcome: 'signposted' }, 'forbidden', 'conversation');
    await expect(h, { type: 'chat.wrapup', conversation: s1.conversation, outcome: 'signposted' }, 'bad_state');
    // Offers that were never made, or were someone else's.
    await expect(h, { type: 'offer.accept', conversation: s2.conversation }, 'expired', 'conversation');
    await expect(h, { type: 'offer.decline', conversation: s1.conversation }, 'bad_state', 'conversation');
    // Receipts and syncs from the future; malformed payloads; oversize.
    await expect(y1, { type: 'chat.read', seq: 999 }, 'bad_field', 'seq');
    await expect(y1, { type: 'chat.sync', last_seq: 999 }, 'bad_field', 'last_seq');
    await expect(y1, { type: 'chat.send', payload: 'not base64!' }, 'bad_field', 'payload');
    await expect(y1, { type: 'chat.send', payload: '' }, 'bad_field', 'payload');
    await expect(h, { type: 'chat.tag', conversation: s1.conversation, tags: 'a,,b' }, 'bad_field', 'tags');
    await expect(h, { type: 'chat.transfer', conversation: s1.conversation, to: 999 }, 'not_found', 'to');
    await expect(h, { type: 'queue.pick', conversation: s2.conversation }, 'not_found', 'conversation');
    // Supervisor-only operations from a counsellor.
    await expect(h, { type: 'chat.join', conversation: s2.conversation }, 'forbidden');
    await expect(h, { type: 'queue.watch', on: 1 }, 'forbidden');
    await expect(h, { type: 'stats.get', from: 0, to: 1, by: 'day' }, 'forbidden');
    // The refusals of another's chat and of supervisor operations are in
    // the audit chain, with who and what.
    const q = (sql) => execFileSync('sqlite3', [join(dir, 'helpline.db'), sql], { encoding: 'utf8' }).trim();
    for (let t = 0; t < 50 && q("SELECT count(*) FROM audit WHERE action='auth.forbidden'") !== '2'; t++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(q(`SELECT group_concat(actor || ' ' || detail, ';') FROM (SELECT actor, detail FROM audit WHERE action IN ('auth.forbidden', 'escalation.refused') ORDER BY seq)`),
      [`${halId} {"request":"chat.sync","conversation":${s2.conversation},"error":"forbidden"}`,
        `${halId} {"request":"chat.join","error":"forbidden"}`,
        `${halId} {"request":"queue.watch","error":"forbidden"}`,
        `${halId} {"request":"stats.get","error":"forbidden"}`].join(';'));
    // A stale or foreign resume secret on a fresh socket.
    const z = await greeted(srv.port);
    await expect(z, { type: 'contact.resume', resume: 'A'.repeat(43), last_seq: 0 }, 'auth_failed');
    z.close();
    // Wrong role on the contact protocol: error, then the socket is closed.
    const w = await greeted(srv.port);
    const closed = new Promise((r) => w.on('close', (code) => r(code)));
    await expect(w, { type: 'offer.accept', conversation: s1.conversation }, 'forbidden', 'type');
    assert.equal(await closed, 1008);

    // Nothing changed; the good parties carry on.
    assert.equal(snapshot(dir), before);
    const again = await request(y1, { type: 'chat.send', id: 'm2', payload: b64('still here') });
    assert.equal(again.seq, ack.seq + 1);
    assert.equal((await nextOf(h, 'chat.event')).seq, again.seq);
    // Ending twice.
    assert.equal((await request(y2, { type: 'chat.end', id: nextId() })).type, 'chat.ended');
    await expect(y2, { type: 'chat.end' }, 'forbidden', 'conversation');
    for (const ws of [y1, y2, h, i]) ws.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});
