// inbox.test.mjs: the out-of-hours inbox through the real daemon. The page
// seals messages with crypto_box_seal to the team key; the server never opens
// them, so random bytes of a sealed box's size stand in for them here (the
// server must store exactly those bytes, and nothing else identifying).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startServer, greeted, request, nextId } from './harness.mjs';
import { ctl, enrolled, login, awaitStepMargin } from './staff.mjs';

const rawPub = (key) => Buffer.from(key.export({ format: 'jwk' }).x, 'base64url');
const b64 = (b) => Buffer.from(b).toString('base64url');

function returnCode() {
  const sign = crypto.generateKeyPairSync('ed25519');
  const box = crypto.generateKeyPairSync('x25519');
  return { sign, pk: b64(rawPub(sign.publicKey)), replyPk: b64(rawPub(box.publicKey)) };
}

async function fetchThread(ws, rc, tamper = false) {
  const ch = await request(ws, { type: 'inbox.challenge', id: nextId(), return_pk: rc.pk });
  assert.equal(ch.type, 'inbox.challenge', JSON.stringify(ch));
  const msg = Buffer.concat([Buffer.from('helpline-inbox-fetch-v1'), Buffer.from(ch.nonce, 'base64url'), Buffer.from(rc.pk, 'base64url')]);
  const sig = crypto.sign(null, msg, rc.sign.privateKey);
  if (tamper) sig[0] ^= 1;
  return request(ws, { type: 'inbox.fetch', id: nextId(), return_pk: rc.pk, signature: b64(sig) });
}

test('leave a message out of hours, a counsellor answers, the young person reads the reply', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-inbox-'));
  let srv = await startServer({ dir });
  try {
    // No key yet: the inbox is unavailable.
    const y0 = await greeted(srv.port);
    assert.equal((await request(y0, { type: 'line.status', id: nextId() })).inbox, false);
    const rc0 = returnCode();
    assert.equal((await request(y0, { type: 'inbox.post', id: nextId(), return_pk: rc0.pk, reply_pk: rc0.replyPk, sealed: b64(crypto.randomBytes(80)) })).code, 'bad_state');
    y0.close();
    // Set the team key (its secret stays with the console) and restart.
    const team = crypto.generateKeyPairSync('x25519');
    const teamPk = b64(rawPub(team.publicKey));
    assert.match(ctl(srv, 'inbox-key', 'set', '--', teamPk), /inbox key set/);
    assert.throws(() => ctl(srv, 'inbox-key', 'set', '--', teamPk), /already/);
    assert.equal(ctl(srv, 'inbox-key', 'show').trim(), teamPk);
    await srv.stop();
    srv = await startServer({ dir });
    await awaitStepMargin(12);
    const kim = await enrolled(srv, 'kim', 'counsellor');
    await awaitStepMargin(8);

    const y = await greeted(srv.port);
    const st = await request(y, { type: 'line.status', id: nextId() });
    assert.deepEqual([st.inbox, st.inbox_pk], [true, teamPk]);
    const rc = returnCode();
    const sealed = crypto.randomBytes(120);
    const marker = 'PLAINTEXT-THE-SERVER-NEVER-SAW';
    const posted = await request(y, { type: 'inbox.post', id: nextId(), return_pk: rc.pk, reply_pk: rc.replyPk, sealed: b64(sealed) });
    assert.equal(posted.type, 'inbox.posted', JSON.stringify(posted));
    // Bad input: each field checked, nothing stored.
    const bad = async (over, field, code = 'bad_field') => {
      const r = await request(y, { type: 'inbox.post', id: nextId(), return_pk: rc.pk, reply_pk: rc.replyPk, sealed: b64(sealed), ...over });
      assert.deepEqual([r.code, r.field], [code, field], JSON.stringify(r));
    };
    await bad({ return_pk: 'A'.repeat(43) }, 'return_pk');          // not an Ed25519 point
    await bad({ return_pk: '!'.repeat(43) }, 'return_pk');          // not base64url
    await bad({ reply_pk: b64(Buffer.alloc(32)) }, 'reply_pk');     // all zero
    await bad({ reply_pk: b64(Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex')) }, 'reply_pk'); // small order
    await bad({ sealed: b64(crypto.randomBytes(48)) }, 'sealed');    // shorter than a sealed box
    await bad({ sealed: 'x' }, 'sealed');
    // Per-thread cap: 20 unanswered.
    for (let i = 1; i < 20; i++)
      assert.equal((await request(y, { type: 'inbox.post', id: nextId(), return_pk: rc.pk, reply_pk: rc.replyPk, sealed: b64(crypto.randomBytes(60)) })).type, 'inbox.posted');
    assert.equal((await request(y, { type: 'inbox.post', id: nextId(), return_pk: rc.pk, reply_pk: rc.replyPk, sealed: b64(crypto.randomBytes(60)) })).code, 'rate_limited');

    // Reading back needs the return code's signature over a fresh challenge.
    const thread = await fetchThread(y, rc);
    assert.equal(thread.type, 'inbox.thread');
    assert.equal(thread.messages.length, 20);
    assert.equal(thread.messages[0].sealed, b64(sealed));
    assert.equal(thread.messages[0].reply, null);
    assert.equal((await fetchThread(y, rc, true)).code, 'auth_failed');
    // A challenge is single use, and bound to the connection that asked.
    const ch = await request(y, { type: 'inbox.challenge', id: nextId(), return_pk: rc.pk });
    const sig = crypto.sign(null, Buffer.concat([Buffer.from('helpline-inbox-fetch-v1'), Buffer.from(ch.nonce, 'base64url'), Buffer.from(rc.pk, 'base64url')]), rc.sign.privateKey);
    const other = await greeted(srv.port);
    assert.equal((await request(other, { type: 'inbox.fetch', id: nextId(), return_pk: rc.pk, signature: b64(sig) })).code, 'auth_failed');
    assert.equal((await request(y, { type: 'inbox.fetch', id: nextId(), return_pk: rc.pk, signature: b64(sig) })).type, 'inbox.thread');
    assert.equal((await request(y, { type: 'inbox.fetch', id: nextId(), return_pk: rc.pk, signature: b64(sig) })).code, 'auth_failed');
    // Someone else's return code sees an empty thread.
    assert.deepEqual((await fetchThread(other, returnCode())).messages, []);
    // Staff operations are refused on the contact protocol (and close it).
    assert.equal((await request(other, { type: 'inbox.list', id: nextId() })).code, 'forbidden');

    // A counsellor lists (never the return key), opens and replies once.
    const { ws: k } = await login(srv, kim);
    const list = await request(k, { type: 'inbox.list', id: nextId() });
    assert.equal(list.messages.length, 20);
    assert.ok(list.messages.every((m) => !('return_pk' in m)), 'the thread identity stays with the young person');
    const first = list.messages.find((m) => m.sealed === b64(sealed));
    assert.equal(first.reply_pk, rc.replyPk);
    assert.equal((await request(k, { type: 'inbox.open', id: nextId(), message: first.message })).type, 'inbox.opened');
    assert.equal((await request(k, { type: 'inbox.open', id: nextId(), message: 999999 })).code, 'not_found');
    const replyBytes = crypto.randomBytes(90);
    assert.equal((await request(k, { type: 'inbox.reply', id: nextId(), message: first.message, reply: b64(replyBytes) })).type, 'inbox.replied');
    assert.equal((await request(k, { type: 'inbox.reply', id: nextId(), message: first.message, reply: b64(replyBytes) })).code, 'conflict');
    assert.equal((await request(k, { type: 'inbox.reply', id: nextId(), message: 999999, reply: b64(replyBytes) })).code, 'not_found');
    // The young person reads the reply.
    const back = await fetchThread(y, rc);
    const answered = back.messages.find((m) => m.message === first.message);
    assert.equal(answered.reply, b64(replyBytes));
    assert.ok(answered.replied_at > 0);
    // Stored: exactly the sealed bytes; the staff actions are audited.
    const db = join(dir, 'helpline.db');
    assert.equal(execFileSync('sqlite3', [db, `SELECT hex(sealed) FROM inbox_message WHERE id=${first.message}`], { encoding: 'utf8' }).trim(), sealed.toString('hex').toUpperCase());
    assert.equal(execFileSync('sqlite3', [db, "SELECT group_concat(action, ' ') FROM (SELECT action FROM audit WHERE action LIKE 'inbox%' ORDER BY seq)"], { encoding: 'utf8' }).trim(), 'inbox_key.set inbox.open inbox.reply');
    assert.ok(!readFileSync(db).includes(Buffer.from(marker)));
    for (const w of [y, other, k]) w.close();
  } finally {
    await srv.stop();
    srv.cleanup();
  }
});

// A thread and the staff list come in pages of at most a quarter of
// ws.outq_max (16 KiB here): whole, they would outgrow the reader's queue
// and close it "too slow" on every try (and an anonymous poster could so
// have shut every counsellor out of the list).
test('a long thread and the staff list come in pages that fit the reader\'s queue', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-inbox-pages-'));
  const team = crypto.generateKeyPairSync('x25519');
  const ini = join(dir, 'pages.ini');
  writeFileSync(ini, '[ws]\noutq_max = 64k\nmax_message = 16k\nrate = 1000\nburst = 1000\n');
  let srv = await startServer({ dir, args: ['--config', ini] });
  try {
    ctl(srv, 'inbox-key', 'set', '--', b64(rawPub(team.publicKey)));
    await srv.stop();
    // 150 accounts with long names and languages (~380 bytes each as
    // listed: ~57 kB; never enrolled, so only listed).
    execFileSync('sqlite3', [join(dir, 'helpline.db'), `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)
      INSERT INTO staff (username, display_name, roles, languages, skills, state, created_at, updated_at)
      SELECT 'volunteer' || i, 'Volunteer number ' || i || ' ' || hex(randomblob(16)), 1, 'en,cy,pl,pt-BR,ur,pa,bn,gu,so,ar', 'online_exploitation,self_harm', 'pending', 0, 0 FROM n`]);
    srv = await startServer({ dir, args: ['--config', ini] });
    await awaitStepMargin(12);
    const kim = await enrolled(srv, 'kimi', 'counsellor');
    const sup = await enrolled(srv, 'suvi', 'supervisor');
    await awaitStepMargin(8);
    const y = await greeted(srv.port);
    const post = async (rc, sealed) => {
      const r = await request(y, { type: 'inbox.post', id: nextId(), return_pk: rc.pk, reply_pk: rc.replyPk, sealed: b64(sealed) });
      assert.equal(r.type, 'inbox.posted', JSON.stringify(r));
      return r.message;
    };
    // One thread of 20 messages of 3 kB (~4 kB each as sent: ~80 kB).
    const long = returnCode();
    const bodies = Array.from({ length: 20 }, () => crypto.randomBytes(3000));
    const ids = [];
    for (const b of bodies) ids.push(await post(long, b));
    // Five more threads of 20 small ones: 120 messages in all.
    for (let t = 0; t < 5; t++) {
      const rc = returnCode();
      for (let i = 0; i < 20; i++) ids.push(await post(rc, crypto.randomBytes(60)));
    }

    // The young person reads the long thread page by page, a fresh
    // challenge for each, and gets every message once, in order.
    const pages = [];
    for (let after = 0; ;) {
      const ch = await request(y, { type: 'inbox.challenge', id: nextId(), return_pk: long.pk });
      const sig = crypto.sign(null, Buffer.concat([Buffer.from('helpline-inbox-fetch-v1'), Buffer.from(ch.nonce, 'base64url'), Buffer.from(long.pk, 'base64url')]), long.sign.privateKey);
      const t = await request(y, { type: 'inbox.fetch', id: nextId(), return_pk: long.pk, signature: b64(sig), ...(after ? { after } : {}) });
      assert.equal(t.type, 'inbox.thread', JSON.stringify(t).slice(0, 300));
      assert.ok(JSON.stringify(t).length <= 16384 + 4096, 'a page fits a quarter of the queue');
      pages.push(t.messages);
      if (!t.more) { assert.equal(t.next, undefined); break; }
      assert.equal(t.next, t.messages.at(-1).message);
      after = t.next;
    }
    assert.ok(pages.length >= 4, `${pages.length} pages`);
    assert.deepEqual(pages.flat().map((m) => m.sealed), bodies.map(b64));

    // A counsellor answers three messages; the list pages run unanswered
    // first, then answered, each in message order, each message once.
    const { ws: k } = await login(srv, kim);
    const answered = [ids[0], ids[25], ids[119]];
    for (const message of answered)
      assert.equal((await request(k, { type: 'inbox.reply', id: nextId(), message, reply: b64(crypto.randomBytes(90)) })).type, 'inbox.replied');
    const listed = [];
    let n = 0;
    for (let after = 0; ;) {
      const l = await request(k, { type: 'inbox.list', id: nextId(), ...(after ? { after } : {}) });
      assert.equal(l.type, 'inbox.list', JSON.stringify(l).slice(0, 300));
      assert.ok(l.messages.length >= 1 && l.messages.length <= 100);
      assert.ok(JSON.stringify(l).length <= 16384 + 4096, 'a page fits a quarter of the queue');
      listed.push(...l.messages);
      n++;
      if (!l.more) break;
      after = l.next;
    }
    const unanswered = ids.filter((i) => !answered.includes(i));
    assert.deepEqual(listed.map((m) => m.message), [...unanswered, ...answered]);
    assert.ok(n >= 3, `${n} pages`);
    assert.deepEqual(listed.slice(-3).map((m) => m.reply !== null), [true, true, true]);
    // A bad after is refused with its field.
    const bad = await request(k, { type: 'inbox.list', id: nextId(), after: -1 });
    assert.deepEqual([bad.code, bad.field], ['bad_field', 'after']);
    // The staff list: every account once, in id order, in pages.
    const { ws: v } = await login(srv, sup);
    const staff = [];
    let spages = 0;
    for (let after = 0; ;) {
      const l = await request(v, { type: 'staff.list', id: nextId(), ...(after ? { after } : {}) });
      assert.equal(l.type, 'staff.list', JSON.stringify(l).slice(0, 300));
      assert.ok(l.staff.length >= 1 && JSON.stringify(l).length <= 16384, 'a page fits a quarter of the queue');
      staff.push(...l.staff);
      spages++;
      if (!l.more) { assert.equal(l.next, undefined); break; }
      assert.equal(l.next, l.staff.at(-1).id);
      after = l.next;
    }
    assert.ok(spages >= 3, `${spages} pages`);
    assert.deepEqual(staff.map((x) => x.id), execFileSync('sqlite3', [join(dir, 'helpline.db'), 'SELECT id FROM staff ORDER BY id'], { encoding: 'utf8' }).trim().split('\n').map(Number));
    assert.ok(staff.find((x) => x.username === 'volunteer150') && staff.find((x) => x.username === 'suvi'));
    y.close(); k.close(); v.close();
  } finally {
    const r = await srv.stop();
    assert.doesNotMatch(r.stderr, /too slow|AddressSanitizer|runtime error/);
    srv.cleanup();
  }
});
