// resume-end.test.mjs: a young person's connection drops, the counsellor's
// message is acknowledged meanwhile, the young person resumes, and the
// counsellor ends the chat before the young person's chat.sync arrives —
// the window the soak test hit (seed 409460212: "1 of 666 counsellor
// messages never reached their young person"). The resumed connection must
// still fetch what it missed: acknowledged means delivered, and reconnects
// lose nothing, also when the chat ended a moment after the resume, or
// while the young person was offline (the resume then answers "ended").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');
const text = (ev) => Buffer.from(ev.payload, 'base64url').toString();

async function nextOf(ws, type, ms = 5000) {
  for (;;) { const m = await next(ws, ms); if (m.type === type) return m; }
}

// Starts a chat a counsellor has taken; returns the ids and seqs.
async function takenChat(srv, c) {
  const young = await greeted(srv.port);
  const started = await request(young, { type: 'contact.start', id: nextId() });
  assert.equal(started.type, 'contact.started', JSON.stringify(started));
  const taken = await request(c, { type: 'queue.take', id: nextId() });
  assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
  assert.equal(taken.conversation, started.conversation);
  const joined = await nextOf(young, 'chat.event');
  assert.equal(text(joined), 'joined');
  return { young, conv: started.conversation, resume: started.resume, joined };
}

test('a chat ended between contact.resume and chat.sync, or while the young person was offline: the resumed connection still gets what it missed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-resume-end-'));
  const srv = await startServer({ dir });
  try {
    await awaitStepMargin(15);
    const cou = await enrolled(srv, 'rhea', 'counsellor');
    const { ws: c, reply } = await login(srv, cou);
    assert.equal(reply.type, 'auth.ok');

    // 1. Ended by the counsellor after the resume, before the sync.
    {
      const { young, conv, resume, joined } = await takenChat(srv, c);
      young.terminate(); // the network goes
      const a = await request(c, { type: 'chat.send', id: nextId(), conversation: conv, payload: b64('are you still there?') });
      assert.equal(a.type, 'chat.ack', JSON.stringify(a));
      const y2 = await greeted(srv.port);
      const r = await request(y2, { type: 'contact.resume', id: nextId(), resume, last_seq: joined.seq });
      assert.deepEqual([r.type, r.state], ['contact.resumed', 'active'], JSON.stringify(r));
      const e = await request(c, { type: 'chat.end', id: nextId(), conversation: conv });
      assert.equal(e.type, 'chat.ended', JSON.stringify(e));
      const ended = await nextOf(y2, 'chat.event');
      assert.deepEqual([ended.seq, text(ended)], [e.seq, 'ended_by_counsellor']);
      // Now the young person's app asks for what it missed during the drop.
      const got = [];
      let synced;
      y2.send(JSON.stringify({ type: 'chat.sync', id: nextId(), last_seq: joined.seq }));
      for (;;) {
        const m = await next(y2);
        if (m.type === 'chat.event') { got.push(m); continue; }
        synced = m;
        break;
      }
      assert.equal(synced.type, 'chat.synced', JSON.stringify(synced));
      assert.deepEqual(got.map((m) => [m.seq, m.from, text(m)]), [[a.seq, 'counsellor', 'are you still there?'], [e.seq, 'system', 'ended_by_counsellor']]);
      assert.deepEqual([synced.count, synced.last_seq, synced.state], [2, e.seq, 'ended']);
      // The ended chat is read-only: nothing more can be said in it.
      const s = await request(y2, { type: 'chat.send', id: nextId(), payload: b64('hello?') });
      assert.equal(s.type, 'error');
      // And the connection may start a new chat.
      const again = await request(y2, { type: 'contact.start', id: nextId() });
      assert.equal(again.type, 'contact.started', JSON.stringify(again));
      // Which is now the only one it may sync.
      const s2 = await request(y2, { type: 'chat.sync', id: nextId(), last_seq: 0 });
      assert.deepEqual([s2.type, s2.count, s2.state], ['chat.synced', 0, 'queued'], JSON.stringify(s2));
      assert.equal((await request(y2, { type: 'contact.leave', id: nextId() })).type, 'contact.left');
      y2.close();
    }

    // 2. Ended by the young person on the live connection: their app may
    //    still sync it afterwards (a sync in flight when they pressed End).
    {
      const { young, conv, joined } = await takenChat(srv, c);
      const a = await request(c, { type: 'chat.send', id: nextId(), conversation: conv, payload: b64('take care') });
      assert.equal(a.type, 'chat.ack');
      assert.equal(text(await nextOf(young, 'chat.event')), 'take care');
      const e = await request(young, { type: 'chat.end', id: nextId() });
      assert.equal(e.type, 'chat.ended', JSON.stringify(e));
      const got = [];
      young.send(JSON.stringify({ type: 'chat.sync', id: nextId(), last_seq: joined.seq }));
      let synced;
      for (;;) { const m = await next(young); if (m.type === 'chat.event') got.push(m); else { synced = m; break; } }
      assert.equal(synced.type, 'chat.synced', JSON.stringify(synced));
      assert.deepEqual(got.map((m) => m.seq), [a.seq, e.seq]);
      young.close();
    }
    // 3. Ended by the counsellor while the young person was offline: the
    //    resume answers state "ended" and the sync brings what they missed;
    //    a chat the young person left is not resumed at all.
    {
      await new Promise((res) => setTimeout(res, 200));
      c.inbox.length = 0; // pushes about the chats above (their ends)
      const { young, conv, resume, joined } = await takenChat(srv, c);
      young.terminate();
      const a = await request(c, { type: 'chat.send', id: nextId(), conversation: conv, payload: b64('please come back, I am here') });
      assert.equal(a.type, 'chat.ack', JSON.stringify(a));
      const e = await request(c, { type: 'chat.end', id: nextId(), conversation: conv });
      assert.equal(e.type, 'chat.ended', JSON.stringify(e));
      const y2 = await greeted(srv.port);
      const r = await request(y2, { type: 'contact.resume', id: nextId(), resume, last_seq: joined.seq });
      assert.deepEqual([r.type, r.conversation, r.state], ['contact.resumed', conv, 'ended'], JSON.stringify(r));
      const got = [];
      let synced;
      y2.send(JSON.stringify({ type: 'chat.sync', id: nextId(), last_seq: joined.seq }));
      for (;;) { const m = await next(y2); if (m.type === 'chat.event') got.push(m); else { synced = m; break; } }
      assert.equal(synced.type, 'chat.synced', JSON.stringify(synced));
      assert.deepEqual(got.map((m) => [m.seq, text(m)]), [[a.seq, 'please come back, I am here'], [e.seq, 'ended_by_counsellor']]);
      assert.equal((await request(y2, { type: 'chat.send', id: nextId(), payload: b64('hello?') })).type, 'error');
      y2.close();

      const y3 = await greeted(srv.port);
      const st3 = await request(y3, { type: 'contact.start', id: nextId() });
      const r3 = st3.resume;
      assert.equal((await request(y3, { type: 'contact.leave', id: nextId() })).type, 'contact.left');
      y3.close();
      const y4 = await greeted(srv.port);
      const gone = await request(y4, { type: 'contact.resume', id: nextId(), resume: r3, last_seq: 0 });
      assert.deepEqual([gone.type, gone.code], ['error', 'auth_failed'], JSON.stringify(gone));
      y4.close();
    }
    c.close();
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error/);
    srv.cleanup();
  }
});
