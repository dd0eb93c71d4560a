// hours.test.mjs: opening hours through the real daemon: line.status on
// both protocols says open or closed and when that changes; contact.start
// is refused while closed; a bad schedule or zone stops start-up naming the
// key. Schedules are built from today's UTC date so "closed now" and "open
// now" hold whenever the test runs (a midnight passing mid-test gives the
// same answers: see each case).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, runHelplined, greeted, request, nextId, WEB_ROOT } from './harness.mjs';
import { staffSocket } from './staff.mjs';

const DAY = 24 * 3600 * 1000;
const day = (ms) => new Date(ms).toISOString().slice(0, 10);
const midnight = (ms) => Date.parse(`${day(ms)}T00:00:00Z`);

async function withHours(ini, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-hours-'));
  writeFileSync(join(dir, 'h.ini'), ini);
  const srv = await startServer({ dir, args: ['--config', join(dir, 'h.ini')] });
  try { await fn(srv); } finally { await srv.stop(); srv.cleanup(); }
}

const status = async (ws) => request(ws, { type: 'line.status', id: nextId() });

function checkShape(s) {
  assert.equal(s.type, 'line.status');
  assert.deepEqual(Object.keys(s).sort(),
    ['closes_at', 'id', 'inbox', 'inbox_pk', 'open', 'opens_at', 'queue_full', 'timezone', 'type']);
  assert.equal(typeof s.open, 'boolean');
  assert.equal(typeof s.queue_full, 'boolean');
  assert.equal(s.inbox, s.inbox_pk !== null);
  if (s.inbox_pk !== null) assert.equal(typeof s.inbox_pk, 'string');
  for (const k of ['closes_at', 'opens_at']) assert.ok(s[k] === null || Number.isSafeInteger(s[k]), k);
}

test('no hours configured: always open, on both protocols', async () => {
  await withHours('', async (srv) => {
    const y = await greeted(srv.port);
    const s = await status(y);
    checkShape(s);
    assert.deepEqual([s.open, s.closes_at, s.opens_at, s.queue_full, s.timezone], [true, null, null, false, 'UTC']);
    // No fields are accepted.
    const bad = await request(y, { type: 'line.status', id: nextId(), when: 1 });
    assert.equal(bad.code, 'unknown_field');
    y.close();
    const st = await staffSocket(srv); // not logged in: still allowed
    const t = await status(st);
    checkShape(t);
    assert.equal(t.open, true);
    st.close();
  });
});

test('closed today and tomorrow (UTC): closed, opens the day after at 09:00; contact.start refused', async () => {
  // If midnight passes before the daemon answers, "today" is closed by the
  // exception for the old tomorrow, and the day after is unchanged.
  const now = Date.now();
  const ini = `[hours]\nweekly = daily 09:00-17:00\nexceptions = ${day(now)} closed, ${day(now + DAY)} closed\ntimezone = UTC\n`;
  await withHours(ini, async (srv) => {
    const y = await greeted(srv.port);
    const s = await status(y);
    checkShape(s);
    assert.equal(s.open, false);
    assert.equal(s.closes_at, null);
    assert.equal(s.opens_at, midnight(now + 2 * DAY) + 9 * 3600 * 1000);
    assert.equal(s.timezone, 'UTC');
    const r = await request(y, { type: 'contact.start', id: nextId(), topics: 'sextortion' });
    assert.equal(r.code, 'closed');
    y.close();
    const st = await staffSocket(srv);
    assert.equal((await status(st)).opens_at, s.opens_at);
    st.close();
  });
});

test('open round the clock but closed the day after tomorrow: closes at that midnight', async () => {
  const now = Date.now();
  const ini = `[hours]\nweekly = mon-sun 00:00-12:00 12:00-24:00\nexceptions = ${day(now + 2 * DAY)} closed\n`;
  await withHours(ini, async (srv) => {
    const y = await greeted(srv.port);
    const s = await status(y);
    checkShape(s);
    assert.equal(s.open, true);
    assert.equal(s.opens_at, null);
    // A midnight passing mid-test leaves the closing where it is.
    assert.equal(s.closes_at, midnight(now + 2 * DAY));
    assert.equal((await request(y, { type: 'contact.start', id: nextId() })).type, 'contact.started');
    y.close();
  });
});

test('open now in Europe/London: closes at the end of the range', async () => {
  const now = Date.now();
  // Open all of today and tomorrow (London dates differ from UTC ones by
  // an hour at most), closed the two days after.
  const ini = `[hours]\nweekly = daily 00:00-24:00\nexceptions = ${day(now + 2 * DAY)} closed, ${day(now + 3 * DAY)} closed\ntimezone = Europe/London\n`;
  await withHours(ini, async (srv) => {
    const y = await greeted(srv.port);
    const s = await status(y);
    checkShape(s);
    assert.equal(s.open, true);
    assert.equal(s.timezone, 'Europe/London');
    // London midnight starting that date: 00:00 or 23:00 the evening before (UT).
    const m = midnight(now + 2 * DAY);
    assert.ok(s.closes_at === m || s.closes_at === m - 3600 * 1000, JSON.stringify(s));
    assert.equal(s.opens_at, null);
    y.close();
  });
});

test('a bad schedule or time zone stops start-up with status 2, naming the key', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-hours-'));
  try {
    for (const [line, key, token] of [
      ['weekly = mon 9-5', 'weekly', '9-5'],
      ['weekly = mon-fry 09:00-17:00', 'weekly', 'mon-fry'],
      ['weekly = mon 09:00-24:30', 'weekly', '09:00-24:30'],
      ['exceptions = 2026-13-01 closed', 'exceptions', '2026-13-01'],
      ['exceptions = 2026-12-25 shut', 'exceptions', 'shut'],
      ['timezone = Mars/Olympus', 'timezone', 'Mars/Olympus'],
      ['timezone = ../../etc/passwd', 'timezone', '../../etc/passwd'],
      ['timezone = /etc/localtime', 'timezone', '/etc/localtime'],
    ]) {
      writeFileSync(join(dir, 'bad.ini'), `[hours]\n${line}\n`);
      const r = await runHelplined(['--config', join(dir, 'bad.ini'), '--db', join(dir, 'x.db'), '--web-root', WEB_ROOT]);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.includes(`hours.${key}`), r.stderr);
      assert.ok(r.stderr.includes(`"${token}"`), r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
