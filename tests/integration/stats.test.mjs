// stats.test.mjs: statistics without personal data, end to end. Real
// conversations go through the protocol (one answered and wrapped up, one
// that left the queue, one still waiting); a supervisor asks stats.get by
// day and by hour, a counsellor is refused, bad ranges are refused with the
// field named; then `helplinectl stats` reads the same database while the
// daemon runs and prints the same numbers as CSV. Neither output holds a
// conversation id or anything but the documented aggregates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId } from './harness.mjs';
import { enrolled, login, awaitStepMargin, HELPLINECTL } from './staff.mjs';

const DAY = 86400000;
const HOUR = 3600000;
const PERIOD_KEYS = ['start', 'conversations', 'answered', 'unanswered', 'open', 'by_risk',
  'by_age_band', 'by_tag', 'by_outcome', 'wait_s', 'handle_s'].sort();
const DIST_KEYS = ['count', 'p50', 'p90', 'max', 'histogram'].sort();
const HIST_KEYS = ['lt1m', '1m_5m', '5m_15m', '15m_60m', 'ge60m'];

async function nextOf(ws, pred, ms = 5000) {
  for (;;) { const m = await next(ws, ms); if (pred(m)) return m; }
}

// Sends a request and resolves its reply (skipping pushes).
async function req(ws, obj) {
  const id = nextId();
  ws.send(JSON.stringify({ ...obj, id }));
  return nextOf(ws, (m) => m.id === id, 15000);
}

function ctl(args) {
  const r = spawnSync(HELPLINECTL, args, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' },
    encoding: 'utf8',
    timeout: 60000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Sums a numeric member over periods, or a key of one of their maps.
const total = (periods, f) => periods.reduce((n, p) => n + f(p), 0);
const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

// Checks a reply's shape: exactly the documented members, numbers only.
function checkShape(r, by, from, to) {
  assert.deepEqual(Object.keys(r).sort(), ['by', 'from', 'id', 'periods', 'to', 'type']);
  assert.deepEqual([r.type, r.by, r.from, r.to], ['stats', by, from, to]);
  let last = -Infinity;
  for (const p of r.periods) {
    assert.deepEqual(Object.keys(p).sort(), PERIOD_KEYS);
    assert.ok(p.start >= from && p.start < to && p.start > last, 'periods in order, in range');
    assert.equal(p.start % (by === 'day' ? DAY : HOUR), 0);
    last = p.start;
    assert.ok(p.conversations > 0, 'empty periods are left out');
    assert.equal(p.answered + p.unanswered + p.open, p.conversations);
    assert.deepEqual(Object.keys(p.by_risk), ['standard', 'elevated', 'high', 'immediate']);
    assert.deepEqual(Object.keys(p.by_age_band), ['u13', '13_15', '16_17', '18p', 'none']);
    for (const m of [p.by_risk, p.by_age_band, p.by_outcome]) {
      assert.equal(Object.values(m).reduce((a, b) => a + b, 0), p.conversations);
    }
    for (const [k, v] of Object.entries(p.by_tag)) {
      assert.match(k, /^[a-z0-9_]{1,32}$/);
      assert.ok(Number.isInteger(v) && v > 0 && v <= p.conversations);
    }
    for (const d of [p.wait_s, p.handle_s]) {
      assert.deepEqual(Object.keys(d).sort(), DIST_KEYS);
      assert.deepEqual(Object.keys(d.histogram), HIST_KEYS);
      assert.equal(Object.values(d.histogram).reduce((a, b) => a + b, 0), d.count);
      if (d.count) assert.ok(d.p50 <= d.p90 && d.p90 <= d.max);
      else assert.deepEqual([d.p50, d.p90, d.max], [null, null, null]);
    }
  }
}

test('stats.get and helplinectl stats count real conversations, and nothing else leaves', async () => {
  const srv = await startServer();
  try {
    await awaitStepMargin(20);
    const couAcct = await enrolled(srv, 'cora', 'counsellor');
    const supAcct = await enrolled(srv, 'sam', 'supervisor');

    // 1. Answered, ended and wrapped up.
    const y1 = await greeted(srv.port);
    const s1 = await request(y1, { type: 'contact.start', id: nextId(), topics: 'sextortion', age_band: '13_15', language: 'en' });
    assert.equal(s1.type, 'contact.started', JSON.stringify(s1));
    const { ws: cou, reply: cr } = await login(srv, couAcct);
    assert.equal(cr.type, 'auth.ok');
    const taken = await req(cou, { type: 'queue.take' });
    assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
    assert.equal(taken.conversation, s1.conversation);
    const conv = taken.conversation;
    assert.equal((await req(cou, { type: 'chat.end', conversation: conv })).type, 'chat.ended');
    const wrapped = await req(cou, { type: 'chat.wrapup', conversation: conv, outcome: 'support_given', tags: 'sextortion,cyberbullying' });
    assert.equal(wrapped.type, 'chat.wrapped', JSON.stringify(wrapped));
    // 2. Left the queue before anyone answered.
    const y2 = await greeted(srv.port);
    const s2 = await request(y2, { type: 'contact.start', id: nextId(), topics: 'bullying', age_band: 'u13' });
    assert.equal(s2.type, 'contact.started');
    assert.equal((await req(y2, { type: 'contact.leave' })).type, 'contact.left');
    // 3. Still waiting, no intake at all.
    const y3 = await greeted(srv.port);
    const s3 = await request(y3, { type: 'contact.start', id: nextId() });
    assert.equal(s3.type, 'contact.started');
    const ids = [s1.conversation, s2.conversation, s3.conversation];

    const { ws: sup, reply: sr } = await login(srv, supAcct);
    assert.equal(sr.type, 'auth.ok');
    const now = Date.now();
    const today = now - (now % DAY);

    // By day: yesterday, today and tomorrow (the test may cross midnight).
    const byDay = await req(sup, { type: 'stats.get', from: today - DAY, to: today + 2 * DAY, by: 'day' });
    assert.equal(byDay.type, 'stats', JSON.stringify(byDay));
    checkShape(byDay, 'day', today - DAY, today + 2 * DAY);
    const P = byDay.periods;
    assert.equal(total(P, (p) => p.conversations), 3);
    assert.equal(total(P, (p) => p.answered), 1);
    assert.equal(total(P, (p) => p.unanswered), 1);
    assert.equal(total(P, (p) => p.open), 1);
    assert.equal(total(P, (p) => p.by_tag.sextortion ?? 0), 1, 'intake and wrap-up tag counted once');
    assert.equal(total(P, (p) => p.by_tag.cyberbullying ?? 0), 1);
    assert.equal(total(P, (p) => p.by_tag.bullying ?? 0), 1);
    assert.equal(total(P, (p) => p.by_outcome.support_given ?? 0), 1);
    assert.equal(total(P, (p) => p.by_outcome.none ?? 0), 2);
    assert.equal(total(P, (p) => p.by_age_band['13_15']), 1);
    assert.equal(total(P, (p) => p.by_age_band.u13), 1);
    assert.equal(total(P, (p) => p.by_age_band.none), 1);
    assert.equal(total(P, (p) => p.by_risk.high), 1, 'sextortion raises the risk class to high');
    assert.equal(total(P, (p) => p.wait_s.count), 1);
    assert.equal(total(P, (p) => p.handle_s.count), 1);
    assert.equal(total(P, (p) => p.wait_s.histogram.lt1m), 1, 'taken within seconds');
    // Nothing per conversation: no id anywhere, no language.
    const keys = new Set();
    const walk = (v) => { if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) { keys.add(k); walk(x); } };
    walk(byDay.periods);
    for (const k of ['id', 'conversation', 'language', 'danger_now', 'counsellor', 'staff_id', 'resume']) {
      assert.ok(!keys.has(k), `a period has ${k}`);
    }
    const text = JSON.stringify(byDay.periods);
    for (const id of ids) assert.ok(!text.includes(`"${id}"`), `conversation ${id} appears`);
    assert.ok(!text.includes('"en"'), 'no language');

    // By hour: the same totals.
    const hour = now - (now % HOUR);
    const byHour = await req(sup, { type: 'stats.get', from: hour - HOUR, to: hour + 2 * HOUR, by: 'hour' });
    assert.equal(byHour.type, 'stats', JSON.stringify(byHour));
    checkShape(byHour, 'hour', hour - HOUR, hour + 2 * HOUR);
    assert.equal(total(byHour.periods, (p) => p.conversations), 3);
    assert.equal(total(byHour.periods, (p) => p.answered), 1);
    // The longest ranges are accepted.
    const year = await req(sup, { type: 'stats.get', from: today - 365 * DAY, to: today + DAY, by: 'day' });
    assert.equal(year.type, 'stats');
    assert.equal(total(year.periods, (p) => p.conversations), 3);
    const month = await req(sup, { type: 'stats.get', from: hour - 743 * HOUR, to: hour + HOUR, by: 'hour' });
    assert.equal(month.type, 'stats');
    // An empty range has no periods.
    const empty = await req(sup, { type: 'stats.get', from: today - 30 * DAY, to: today - 29 * DAY, by: 'day' });
    assert.deepEqual(empty.periods, []);

    // Refusals, with the field named.
    const bad = async (obj, code, field) => {
      const r = await req(sup, { type: 'stats.get', ...obj });
      assert.equal(r.type, 'error', JSON.stringify(r));
      assert.equal(r.code, code, JSON.stringify(r));
      if (field) assert.equal(r.field, field, JSON.stringify(r));
    };
    await bad({ from: today, to: today + DAY, by: 'week' }, 'bad_field', 'by');
    await bad({ from: today, to: today + DAY, by: 'minute' }, 'bad_field', 'by');
    await bad({ from: today + HOUR, to: today + DAY, by: 'day' }, 'bad_field', 'from');
    await bad({ from: today, to: today + DAY + 1, by: 'day' }, 'bad_field', 'to');
    await bad({ from: today, to: today, by: 'day' }, 'bad_field', 'to');
    await bad({ from: today + DAY, to: today, by: 'day' }, 'bad_field', 'to');
    await bad({ from: today, to: today + 367 * DAY, by: 'day' }, 'bad_field', 'to');
    await bad({ from: hour, to: hour + 745 * HOUR, by: 'hour' }, 'bad_field', 'to');
    await bad({ from: -DAY, to: today, by: 'day' }, 'bad_field', 'from');
    await bad({ from: today, by: 'day' }, 'missing_field', 'to');
    await bad({ from: today, to: today + DAY }, 'missing_field', 'by');
    await bad({ from: String(today), to: today + DAY, by: 'day' }, 'bad_field', 'from');

    // A counsellor may not; a young person may not (and is disconnected).
    const f = await req(cou, { type: 'stats.get', from: today, to: today + DAY, by: 'day' });
    assert.deepEqual([f.type, f.code], ['error', 'forbidden']);
    const fy = await req(y3, { type: 'stats.get', from: today, to: today + DAY, by: 'day' });
    assert.deepEqual([fy.type, fy.code], ['error', 'forbidden']);

    // helplinectl stats on the same database while the daemon runs.
    const db = join(srv.dir, 'helpline.db');
    const from = isoDay(today - DAY), to = isoDay(today + DAY);
    const r = ctl(['--db', db, 'stats', '--from', from, '--to', to]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'period_start,metric,key,value');
    const rows = lines.slice(1).map((l) => l.split(','));
    for (const row of rows) {
      assert.equal(row.length, 4, row.join(','));
      assert.match(row[0], /^\d{4}-\d\d-\d\dT00:00:00Z$/);
      assert.match(row[3], /^\d+$/);
    }
    const sum = (metric, key = '') => rows.filter((x) => x[1] === metric && x[2] === key)
      .reduce((n, x) => n + Number(x[3]), 0);
    assert.equal(sum('conversations'), 3);
    assert.equal(sum('answered'), 1);
    assert.equal(sum('unanswered'), 1);
    assert.equal(sum('open'), 1);
    assert.equal(sum('tag', 'sextortion'), 1);
    assert.equal(sum('tag', 'cyberbullying'), 1);
    assert.equal(sum('outcome', 'none'), 2);
    assert.equal(sum('outcome', 'support_given'), 1);
    assert.equal(sum('risk', 'high'), 1);
    assert.equal(sum('age_band', 'none'), 1);
    assert.equal(sum('wait_s_count'), 1);
    assert.equal(sum('wait_hist', 'lt1m'), 1);
    assert.equal(sum('handle_s_count'), 1);
    // The same numbers as stats.get for every (period, metric, key).
    for (const p of P) {
      const at = new Date(p.start).toISOString().replace('.000Z', 'Z');
      const get = (metric, key = '') => rows.find((x) => x[0] === at && x[1] === metric && x[2] === key)?.[3];
      assert.equal(get('conversations'), String(p.conversations));
      for (const [k, v] of Object.entries(p.by_tag)) assert.equal(get('tag', k), String(v));
      for (const [k, v] of Object.entries(p.by_outcome)) assert.equal(get('outcome', k), String(v));
      if (p.wait_s.count) assert.equal(get('wait_s_p90'), String(p.wait_s.p90));
    }
    const metrics = new Set(rows.map((x) => x[1]));
    for (const m of metrics) {
      assert.ok(['conversations', 'answered', 'unanswered', 'open', 'risk', 'age_band', 'tag', 'outcome',
        'wait_s_count', 'wait_s_p50', 'wait_s_p90', 'wait_s_max', 'wait_hist',
        'handle_s_count', 'handle_s_p50', 'handle_s_p90', 'handle_s_max', 'handle_hist'].includes(m), m);
    }
    // By hour, for the day(s) around now.
    const rh = ctl(['--db', db, 'stats', '--from', from, '--to', to, '--by', 'hour']);
    assert.equal(rh.code, 0, rh.stderr);
    const hrows = rh.stdout.trimEnd().split('\n').slice(1).map((l) => l.split(','));
    assert.equal(hrows.filter((x) => x[1] === 'conversations').reduce((n, x) => n + Number(x[3]), 0), 3);
    assert.ok(hrows.every((x) => /^\d{4}-\d\d-\d\dT\d\d:00:00Z$/.test(x[0])));

    // helplinectl's refusals: usage (2) and a missing database (1).
    const usage = [
      ['stats'],
      ['stats', '--from', from],
      ['stats', '--from', '2026-02-30', '--to', '2026-03-01'],
      ['stats', '--from', '22/11/2026', '--to', '2026-11-23'],
      ['stats', '--from', '2026-11-23', '--to', '2026-11-22'],
      ['stats', '--from', '2026-01-01', '--to', '2027-01-02'],
      ['stats', '--from', '2026-01-01', '--to', '2026-02-01', '--by', 'hour'],
      ['stats', '--from', '2026-01-01', '--to', '2026-01-02', '--by', 'week'],
      ['stats', '--from', '2026-01-01', '--to', '2026-01-02', 'extra'],
      ['stats', '--bogus'],
    ];
    for (const a of usage) {
      const u = ctl(['--db', db, ...a]);
      assert.equal(u.code, 2, `${a.join(' ')}: ${u.stderr}`);
      assert.match(u.stderr, /^helplinectl: stats: /, a.join(' '));
      assert.equal(u.stdout, '');
    }
    // The longest ranges are fine.
    assert.equal(ctl(['--db', db, 'stats', '--from', '2024-01-01', '--to', '2024-12-31']).code, 0);
    assert.equal(ctl(['--db', db, 'stats', '--from', '2026-01-01', '--to', '2026-01-31', '--by', 'hour']).code, 0);
    const nodb = ctl(['--db', join(srv.dir, 'nope.db'), 'stats', '--from', from, '--to', to]);
    assert.equal(nodb.code, 1);
    assert.match(nodb.stderr, /^helplinectl: no database at /);
    const help = ctl(['stats', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: helplinectl \[GLOBAL OPTIONS\] stats --from DAY --to DAY/);

    for (const ws of [y1, y2, y3, cou, sup]) ws.close();
  } finally {
    const { code } = await srv.stop();
    assert.equal(code, 0);
    srv.cleanup();
  }
});

test('stats.get on rows of known times: exact percentiles, and a reply too big for the output queue', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-stats-'));
  const ini = join(dir, 'small-outq.ini');
  writeFileSync(ini, '; stats.test.mjs: a 4 KiB output queue, so a long reply is refused\n[ws]\noutq_max = 4k\nmax_message = 1536\n');
  const srv = await startServer({ dir, args: ['--config', ini] });
  try {
    await awaitStepMargin(15);
    const supAcct = await enrolled(srv, 'sam', 'supervisor');
    // 10 conversations on 2026-01-01, one an hour from 00:00Z, waiting i
    // minutes and talking 10 * i minutes (i = 1..10), written straight into
    // the running daemon's database (WAL: the daemon's stats reader sees
    // them at once).
    const D = Date.UTC(2026, 0, 1);
    const values = [];
    for (let i = 1; i <= 10; i++) {
      const c = D + (i - 1) * HOUR;
      values.push(`(${c}, ${c + i * 60000}, ${c + i * 60000 + i * 600000}, 'wrapped', ${c}, ${i % 4}, 'anxiety', '16_17', 'school', 'info_given')`);
    }
    execFileSync('sqlite3', [join(dir, 'helpline.db'),
      'INSERT INTO conversation(created_at, accepted_at, ended_at, state, state_at, risk, topics, age_band, tags, outcome) VALUES ' +
      values.join(', ')]);
    const { ws: sup, reply } = await login(srv, supAcct);
    assert.equal(reply.type, 'auth.ok');
    const r = await req(sup, { type: 'stats.get', from: D, to: D + DAY, by: 'day' });
    assert.equal(r.type, 'stats', JSON.stringify(r));
    assert.equal(r.periods.length, 1);
    const p = r.periods[0];
    assert.equal(p.start, D);
    assert.deepEqual([p.conversations, p.answered, p.unanswered, p.open], [10, 10, 0, 0]);
    assert.deepEqual(p.by_risk, { standard: 2, elevated: 3, high: 3, immediate: 2 });
    assert.deepEqual(p.by_age_band, { u13: 0, '13_15': 0, '16_17': 10, '18p': 0, none: 0 });
    assert.deepEqual(p.by_tag, { anxiety: 10, school: 10 });
    assert.deepEqual(p.by_outcome, { info_given: 10 });
    // Waits 60..600 s: nearest rank p50 = 300, p90 = 540.
    assert.deepEqual(p.wait_s, { count: 10, p50: 300, p90: 540, max: 600,
      histogram: { lt1m: 0, '1m_5m': 4, '5m_15m': 6, '15m_60m': 0, ge60m: 0 } });
    assert.deepEqual(p.handle_s, { count: 10, p50: 3000, p90: 5400, max: 6000,
      histogram: { lt1m: 0, '1m_5m': 0, '5m_15m': 1, '15m_60m': 4, ge60m: 5 } });
    // Ten non-empty hours are more than a 4 KiB output queue takes.
    const big = await req(sup, { type: 'stats.get', from: D, to: D + DAY, by: 'hour' });
    assert.deepEqual([big.type, big.code, big.field], ['error', 'bad_field', 'to'], JSON.stringify(big));
    // Two hours fit.
    const small = await req(sup, { type: 'stats.get', from: D, to: D + 2 * HOUR, by: 'hour' });
    assert.equal(small.type, 'stats', JSON.stringify(small));
    assert.deepEqual(small.periods.map((x) => x.start), [D, D + HOUR]);
    // The connection is still open and usable.
    assert.equal((await req(sup, { type: 'ping' })).type, 'pong');
    sup.close();
  } finally {
    const { code, stderr } = await srv.stop();
    assert.equal(code, 0, stderr);
    assert.match(stderr, /stats\.get conn=\S+ by=day hours=24 rows=10 periods=1 /);
    srv.cleanup();
  }
});
