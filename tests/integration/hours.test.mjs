// hours.test.mjs: opening hours through the real daemon: line.status says
// open or closed and when that changes; contact.start is refused while
// closed; a bad schedule stops start-up naming the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, runHelplined, greeted, request, nextId, WEB_ROOT } from './harness.mjs';

const day = (ms) => new Date(ms).toISOString().slice(0, 10);
const DAY = 24 * 3600 * 1000;

async function withHours(ini, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-hours-'));
  writeFileSync(join(dir, 'h.ini'), ini);
  const srv = await startServer({ dir, args: ['--config', join(dir, 'h.ini')] });
  try { await fn(srv); } finally { await srv.stop(); srv.cleanup(); }
}

test('no hours configured: always open', async () => {
  await withHours('', async (srv) => {
    const y = await greeted(srv.port);
    const s = await request(y, { type: 'line.status', id: nextId() });
    assert.deepEqual([s.open, s.closes_at, s.opens_at, s.queue_full, s.timezone], [true, null, null, false, 'UTC']);
    assert.equal(typeof s.inbox, 'boolean');
    y.close();
  });
});

test('closed today and tomorrow: closed, opens the day after at 09:00 UTC; contact.start refused', async () => {
  const now = Date.now();
  const ini = `[hours]\nweekly = daily 09:00-17:00\nexceptions = ${day(now)} closed, ${day(now + DAY)} closed\ntimezone = UTC\n`;
  await withHours(ini, async (srv) => {
    const y = await greeted(srv.port);
    const s = await request(y, { type: 'line.status', id: nextId() });
    assert.equal(s.open, false);
    assert.equal(s.closes_at, null);
    assert.equal(s.opens_at, Date.parse(`${day(now + 2 * DAY)}T09:00:00Z`));
    const r = await request(y, { type: 'contact.start', id: nextId(), topics: 'sextortion' });
    assert.equal(r.code, 'closed');
    assert.match(r.message, /leave us a message/);
    // Staff can ask too.
    y.close();
  });
});

test('open now: closes at the end of the range (Europe/London)', async () => {
  const now = Date.now();
  // Open all of today and tomorrow (London dates straddle UTC ones by an
  // hour at most), closed the day after.
  const ini = `[hours]\nweekly = daily 00:00-24:00\nexceptions = ${day(now + 2 * DAY)} closed, ${day(now + 3 * DAY)} closed\ntimezone = Europe/London\n`;
  await withHours(ini, async (srv) => {
    const y = await greeted(srv.port);
    const s = await request(y, { type: 'line.status', id: nextId() });
    assert.equal(s.open, true);
    assert.equal(s.timezone, 'Europe/London');
    assert.ok(s.closes_at > now + DAY && s.closes_at <= now + 3 * DAY, JSON.stringify(s));
    assert.equal(s.opens_at, null);
    assert.equal((await request(y, { type: 'contact.start', id: nextId() })).type, 'contact.started');
    y.close();
  });
});

test('a bad schedule or time zone stops start-up naming the key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-hours-'));
  for (const [line, key] of [['weekly = mon 9-5', 'weekly'], ['exceptions = 2026-13-01 closed', 'exceptions'], ['timezone = Mars/Olympus', 'timezone']]) {
    writeFileSync(join(dir, 'bad.ini'), `[hours]\n${line}\n`);
    const r = await runHelplined(['--config', join(dir, 'bad.ini'), '--db', join(dir, 'x.db'), '--web-root', WEB_ROOT]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`hours\\.${key}|${key}`), r.stderr);
  }
});
