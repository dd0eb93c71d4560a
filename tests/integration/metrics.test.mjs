// metrics.test.mjs: GET /metrics during real activity (a young person
// waits, a counsellor takes the chat, both sides chat, bad input, a failed
// login), checked with a parser of the Prometheus text exposition format
// written here; and metrics.listen, the separate metrics listener.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, greeted, request, next, nextId, httpGet, connect, until } from './harness.mjs';
import { enrolled, login, awaitStepMargin } from './staff.mjs';

const b64 = (s) => Buffer.from(s).toString('base64url');

// Parses the text format (0.0.4) strictly: returns {families, samples} or
// throws naming the line. families: name -> {type, help}; samples: list of
// {name, labels, value, family}.
export function parseExposition(text) {
  const families = new Map();
  const samples = [];
  const seen = new Set();
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('# HELP ')) {
      const [, name, help] = /^# HELP (\S+) (.*)$/.exec(line) ?? [];
      assert.ok(name && NAME.test(name) && help, where);
      const f = families.get(name) ?? {};
      assert.equal(f.help, undefined, `second HELP: ${where}`);
      families.set(name, { ...f, help });
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const [, name, type] = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line) ?? [];
      assert.ok(name && NAME.test(name), where);
      const f = families.get(name) ?? {};
      assert.equal(f.type, undefined, `second TYPE: ${where}`);
      assert.ok(!samples.some((s) => s.family === name), `TYPE after samples: ${where}`);
      families.set(name, { ...f, type });
      return;
    }
    assert.ok(!line.startsWith('#') && line.trim() !== '', `unexpected line: ${where}`);
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `bad sample: ${where}`);
    const [, name, labelText, valueText] = m;
    const labels = {};
    if (labelText !== undefined) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;
      let pos = 0;
      while (pos < labelText.length) {
        re.lastIndex = pos;
        const lm = re.exec(labelText);
        assert.ok(lm, `bad labels: ${where}`);
        assert.ok(!(lm[1] in labels), `duplicate label: ${where}`);
        labels[lm[1]] = lm[2];
        pos = re.lastIndex;
      }
    }
    const value = Number(valueText === '+Inf' ? Infinity : valueText);
    assert.ok(!Number.isNaN(value), `bad value: ${where}`);
    let family = name;
    for (const suf of ['_bucket', '_sum', '_count']) {
      const base = name.slice(0, -suf.length);
      if (name.endsWith(suf) && families.get(base)?.type === 'histogram') family = base;
    }
    assert.ok(families.get(family)?.type, `sample without a TYPE: ${where}`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    assert.ok(!seen.has(key), `duplicate sample: ${where}`);
    seen.add(key);
    samples.push({ name, labels, value, family });
  });
  return { families, samples };
}

// The rules every Helpline exposition keeps.
function checkRules({ families, samples }) {
  const allowedLabels = new Set(['code', 'reason', 'protocol', 'risk', 'state', 'le', 'version']);
  for (const [name, f] of families) {
    assert.ok(name.startsWith('helpline_'), `prefix: ${name}`);
    assert.ok(f.help, `HELP for ${name}`);
    assert.ok(f.type, `TYPE for ${name}`);
    if (f.type === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} ends _total`);
    else assert.ok(!name.endsWith('_total'), `${f.type} ${name} must not end _total`);
    // Base units: seconds and bytes, never ms or kb.
    assert.ok(!/_(ms|milliseconds|minutes|hours|days_total|kb|kilobytes|mb)(_|$)/.test(name), `base units: ${name}`);
    assert.ok(samples.some((s) => s.family === name), `${name} has samples`);
  }
  for (const s of samples) {
    for (const [k, v] of Object.entries(s.labels)) {
      assert.ok(allowedLabels.has(k), `label ${k} on ${s.name}`);
      // Nothing like an id, an address, a token or a name.
      assert.ok(!/\d+\.\d+\.\d+\.\d+/.test(v), `address-like ${k}="${v}"`);
      assert.ok(!/::|[0-9a-f]{4}:[0-9a-f]{1,4}:/i.test(v), `IPv6-like ${k}="${v}"`);
      assert.ok(!/[0-9a-f]{12,}/i.test(v) && !/[A-Za-z0-9_-]{24,}/.test(v), `token-like ${k}="${v}"`);
      assert.ok(!/@/.test(v), `e-mail-like ${k}="${v}"`);
      if (k !== 'le') assert.ok(!/^\d+$/.test(v), `numeric id-like ${k}="${v}"`);
    }
  }
  // Histograms: buckets cumulative, le ascending, ending in +Inf == _count.
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    const sum = samples.find((s) => s.name === `${name}_sum`);
    const count = samples.find((s) => s.name === `${name}_count`);
    assert.ok(buckets.length >= 2 && sum && count, `histogram ${name} has buckets, _sum, _count`);
    let le = -Infinity, cum = 0;
    for (const b of buckets) {
      const bound = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
      assert.ok(bound > le, `${name} le ascending (${b.labels.le})`);
      assert.ok(b.value >= cum, `${name} buckets cumulative at le=${b.labels.le}`);
      le = bound; cum = b.value;
    }
    assert.equal(buckets.at(-1).labels.le, '+Inf', `${name} ends with +Inf`);
    assert.equal(buckets.at(-1).value, count.value, `${name} +Inf == _count`);
    assert.ok(sum.value >= 0, `${name}_sum >= 0`);
  }
}

const value = (x, name, labels = {}) => {
  const s = x.samples.find((t) => t.name === name && Object.entries(labels).every(([k, v]) => t.labels[k] === v));
  assert.ok(s, `no sample ${name} ${JSON.stringify(labels)}`);
  return s.value;
};

async function scrape(port) {
  const r = await httpGet(port, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const x = parseExposition(r.body);
  checkRules(x);
  return { ...x, body: r.body };
}

test('the parser itself refuses what the format forbids', () => {
  assert.throws(() => parseExposition('helpline_x_total 1\n'), /without a TYPE/);
  assert.throws(() => parseExposition('# TYPE helpline_x counter\nhelpline_x{a="1" 2\n'), /bad sample|bad labels/);
  assert.throws(() => checkRules(parseExposition('# HELP helpline_x x\n# TYPE helpline_x counter\nhelpline_x 1\n')), /ends _total/);
  assert.throws(() => checkRules(parseExposition('# HELP helpline_h h\n# TYPE helpline_h histogram\n' +
    'helpline_h_bucket{le="1"} 2\nhelpline_h_bucket{le="+Inf"} 1\nhelpline_h_sum 1\nhelpline_h_count 1\n')), /cumulative/);
  assert.throws(() => checkRules(parseExposition('# HELP helpline_g g\n# TYPE helpline_g gauge\nhelpline_g{code="10.0.0.1"} 1\n')), /address-like/);
});

test('/metrics during real activity: valid format, no personal labels, counts that move', async () => {
  const srv = await startServer();
  try {
    await awaitStepMargin(15);
    const cou = await enrolled(srv, 'mona', 'counsellor');
    const before = await scrape(srv.port);
    assert.equal(value(before, 'helpline_queue_wait_seconds_count'), 0);

    // Two young people wait; one leaves, the other is taken after > 1 s.
    const young = await greeted(srv.port);
    const started = await request(young, { type: 'contact.start', id: nextId(), topics: 'bullying' });
    assert.equal(started.type, 'contact.started', JSON.stringify(started));
    const leaver = await greeted(srv.port);
    assert.equal((await request(leaver, { type: 'contact.start', id: nextId() })).type, 'contact.started');
    const waiting = await until(async () => {
      const x = await scrape(srv.port);
      const n = ['standard', 'elevated', 'high', 'immediate'].reduce((a, r) => a + value(x, 'helpline_queue_length', { risk: r }), 0);
      return n === 2 && x;
    }, 'two in the queue');
    assert.equal(value(waiting, 'helpline_ws_connections', { protocol: 'helpline.contact.v1' }), 2);
    await new Promise((r) => setTimeout(r, 1300)); // sampled once waiting
    const left = await request(leaver, { type: 'contact.leave', id: nextId() });
    assert.notEqual(left.type, 'error', JSON.stringify(left));
    await new Promise((r) => setTimeout(r, 1500));

    // Failed logins (a wrong password, an unknown user) and some bad input.
    const bad = await login(srv, { ...cou, password: 'wrong password here' });
    assert.equal(bad.reply.code, 'auth_failed');
    bad.ws.close();
    const nobody = await login(srv, { ...cou, username: 'nobody-here' });
    assert.equal(nobody.reply.code, 'auth_failed');
    nobody.ws.close();
    assert.equal((await request(young, '{not json')).code, 'bad_json');

    const { ws: c, reply } = await login(srv, cou);
    assert.equal(reply.type, 'auth.ok');
    const taken = await request(c, { type: 'queue.take', id: nextId() });
    assert.equal(taken.type, 'queue.taken', JSON.stringify(taken));
    const conv = taken.conversation;
    // Chat both ways while scraping.
    const scrapes = [];
    for (let i = 0; i < 10; i++) {
      young.send(JSON.stringify({ type: 'chat.send', id: `y${i}`, payload: b64(`young ${i}`) }));
      c.send(JSON.stringify({ type: 'chat.send', id: `c${i}`, conversation: conv, payload: b64(`counsellor ${i}`) }));
      if (i % 3 === 0) scrapes.push(scrape(srv.port));
    }
    await Promise.all(scrapes);
    const after = await until(async () => {
      const x = await scrape(srv.port);
      return value(x, 'helpline_chat_messages_total') >= 20 && value(x, 'helpline_queue_wait_seconds_count') >= 1 &&
        value(x, 'helpline_store_write_latency_seconds_count') >= 1 && x;
    }, 'messages, a wait and a store probe counted');
    // Counters are counters: nothing went down.
    for (const s of before.samples) {
      if (before.families.get(s.family)?.type !== 'counter' && !s.name.endsWith('_bucket') && !s.name.endsWith('_count')) continue;
      const t = after.samples.find((u) => u.name === s.name && JSON.stringify(u.labels) === JSON.stringify(s.labels));
      assert.ok(t && t.value >= s.value, `${s.name} did not go down`);
    }
    assert.ok(value(after, 'helpline_queue_wait_seconds_sum') >= 1, 'the wait was over a second');
    assert.ok(value(after, 'helpline_queue_left_total') >= 1, 'the leaver counted');
    assert.ok(value(after, 'helpline_errors_total', { code: 'bad_json' }) >= 1);
    assert.ok(value(after, 'helpline_errors_total', { code: 'auth_failed' }) >= 1);
    assert.equal(value(after, 'helpline_staff_sessions'), 1);
    // Logins and failures by reason (never by user).
    assert.equal(value(before, 'helpline_logins_total'), 0);
    assert.equal(value(after, 'helpline_logins_total'), 1);
    assert.equal(value(after, 'helpline_login_failures_total', { reason: 'bad_password' }), 1);
    assert.equal(value(after, 'helpline_login_failures_total', { reason: 'unknown_user' }), 1);
    for (const r of ['bad_totp', 'code_reused', 'locked', 'disabled', 'not_enrolled', 'other'])
      assert.equal(value(after, 'helpline_login_failures_total', { reason: r }), 0, r);
    assert.deepEqual(Object.keys(after.samples.find((t) => t.name === 'helpline_login_failures_total').labels), ['reason']);
    // The writer's own histograms: every batch is in both, and the jobs
    // in them add up to the jobs done.
    const batches = value(after, 'helpline_store_batches_total');
    assert.ok(batches >= 1);
    const cb = value(after, 'helpline_store_commit_seconds_count');
    const sb = value(after, 'helpline_store_batch_jobs_count');
    // Scraped between batches: the counts are read under one lock.
    assert.equal(cb, batches, 'one commit observation per batch');
    assert.equal(sb, batches, 'one size observation per batch');
    assert.equal(value(after, 'helpline_store_batch_jobs_sum'),
      value(after, 'helpline_store_jobs_committed_total') + value(after, 'helpline_store_jobs_failed_total'));
    assert.ok(value(after, 'helpline_store_commit_seconds_sum') > 0);
    assert.ok(value(after, 'helpline_store_batch_jobs_bucket', { le: '1' }) >= 1, 'single-job batches (the probes)');
    assert.ok(value(after, 'helpline_store_batch_jobs_bucket', { le: '4096' }) === batches, 'no batch above batch_max');
    assert.ok(value(after, 'helpline_chats_taken_total') >= 1);
    assert.ok(value(after, 'helpline_ws_connections_opened_total', { protocol: 'helpline.staff.v1' }) >= 2);
    assert.ok(value(after, 'helpline_store_jobs_committed_total') > value(before, 'helpline_store_jobs_committed_total'));
    assert.equal(value(after, 'helpline_escalations_open', { state: 'open' }), 0);
    // Nothing personal anywhere in the body: no username, message text or
    // address (ids in labels are refused by checkRules).
    for (const bit of ['mona', 'young 1', 'counsellor 1', '127.0.0.1']) assert.ok(!after.body.includes(bit), `body has ${bit}`);
    young.close(); c.close();
    const { code, stderr } = await srv.stop();
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /AddressSanitizer|runtime error/);
  } finally { srv.proc.kill('SIGKILL'); srv.cleanup(); }
});

test('metrics.listen: /metrics on its own listener only', async () => {
  const ini = join(mkdtempSync(join(tmpdir(), 'helpline-metrics-')), 'metrics.ini');
  writeFileSync(ini, '[metrics]\nlisten = 127.0.0.1:0\n');
  const srv = await startServer({ args: ['--config', ini] });
  try {
    const m = /metrics\.listening url=http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(srv.stderr) ??
      await until(() => /metrics\.listening url=http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(srv.stderr), 'metrics.listening');
    const mport = Number(m[1]);
    assert.notEqual(mport, srv.port);
    assert.equal((await httpGet(srv.port, '/metrics')).status, 404, 'main listener: no /metrics');
    assert.equal((await httpGet(srv.port, '/healthz')).status, 200);
    const x = await scrape(mport);
    assert.ok(value(x, 'helpline_http_requests_total') >= 2);
    assert.equal((await httpGet(mport, '/')).status, 404, 'metrics listener serves no pages');
    assert.equal((await httpGet(mport, '/healthz')).status, 200);
    const e = await connect(mport).then((ws) => { ws.close(); return null; }, (err) => err);
    assert.ok(e, 'no WebSocket on the metrics listener');
    // The main listener still chats.
    const y = await greeted(srv.port);
    y.close();
    const { code, stderr } = await srv.stop();
    assert.equal(code, 0);
    assert.doesNotMatch(stderr, /AddressSanitizer|runtime error/);
  } finally { srv.proc.kill('SIGKILL'); srv.cleanup(); }
});

test('metrics.listen refuses a bad address before starting', async () => {
  const { runHelplined } = await import('./harness.mjs');
  const dir = (await import('node:os')).tmpdir();
  const ini = join(dir, `hl-metrics-bad-${process.pid}.ini`);
  writeFileSync(ini, '[metrics]\nlisten = 8080\n');
  const r2 = await runHelplined(['--config', ini]);
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /metrics\.listen: expected HOST:PORT/);
});
