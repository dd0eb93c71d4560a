// helplinectl.test.mjs: the real helplinectl binary on temporary databases:
// help for every command, usage errors, init (root key file, idempotence,
// no root secret in the database), accounts, sessions, the audit chain
// (and a hand-edited row caught by `audit verify`), and use while
// helplined runs on the same database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HELPLINED, startServer } from './harness.mjs';

const CTL = join(dirname(HELPLINED), 'helplinectl');
const CODE_RE = /\b[A-Z2-7]{4}(?:-[A-Z2-7]{4}){4}\b/;

// Runs helplinectl; returns {code, stdout, stderr}.
function ctl(args, opts = {}) {
  const r = spawnSync(CTL, args, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0' },
    encoding: 'utf8',
    timeout: 60000,
    ...opts,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

// Runs helplinectl --db db ...args and expects exit 0.
function ok(db, ...args) {
  const r = ctl(['--db', db, ...args]);
  assert.equal(r.code, 0, `helplinectl ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r.stdout;
}

function sqlite(db, sql) {
  const r = spawnSync('sqlite3', [db, sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, `sqlite3: ${r.stderr}`);
  return r.stdout.trim();
}

function tempDir() {
  return mkdtempSync(join(tmpdir(), 'helplinectl-it-'));
}

// The database's bytes: the main file and any WAL beside it.
function dbBytes(db) {
  return Buffer.concat([db, `${db}-wal`].filter(existsSync).map((p) => readFileSync(p)));
}

const staffJson = (db) => JSON.parse(ok(db, 'list-staff', '--json'));
const byName = (db, name) => staffJson(db).find((s) => s.username === name);

test('--help for every command exits 0 and names its arguments', () => {
  const cmds = {
    init: ['--root-key-out', 'FILE'],
    'create-admin': ['USERNAME', '--name', '--languages', '--supervisor'],
    'create-staff': ['USERNAME', '--role', 'counsellor', 'supervisor', '--name', '--languages', '--skills', '--capacity'],
    'list-staff': ['--json'],
    disable: ['USERNAME'],
    enable: ['USERNAME'],
    'reset-password': ['USERNAME'],
    'reset-totp': ['USERNAME'],
    sessions: ['USERNAME', '--json'],
    'revoke-sessions': ['USERNAME'],
    audit: ['verify'],
  };
  const g = ctl(['--help']);
  assert.equal(g.code, 0);
  for (const opt of ['--db', '--state-dir', '--key-file', '--config']) assert.ok(g.stdout.includes(opt), opt);
  for (const [cmd, words] of Object.entries(cmds)) {
    assert.ok(g.stdout.includes(cmd), `global help lacks ${cmd}`);
    for (const argv of [[cmd, '--help'], ['--db', '/nonexistent/x.db', cmd, '--help']]) {
      const r = ctl(argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
      assert.ok(r.stdout.startsWith('Usage: helplinectl'), `${cmd} usage line`);
      for (const w of words) assert.ok(r.stdout.includes(w), `${cmd} --help lacks ${w}`);
    }
  }
  const r = ctl(['audit', 'verify', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /audit verify/);
  assert.match(ctl(['--version']).stdout, /^helplinectl \d+\.\d+\.\d+/);
});

test('usage errors exit 2 with a one-line message', () => {
  const dir = tempDir();
  const db = join(dir, 'h.db');
  try {
    for (const [argv, re] of [
      [[], /no command given/],
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['--bogus', 'list-staff'], /unknown option '--bogus'/],
      [['--db'], /needs a value/],
      [['--db', db, 'disable'], /disable: missing argument/],
      [['--db', db, 'disable', 'a', 'b'], /unexpected argument 'b'/],
      [['--db', db, 'list-staff', '--nope'], /list-staff: unknown option '--nope'/],
      // A base64url key starting with '-' is named, with the way out.
      [['--db', db, 'inbox-key', 'set', '-rwdNBRD06X4B5dOiJzXAz9iUtlzktbaK9T9tUXW7Xw'], /inbox-key: '-rwdNBRD06X4B5dOiJzXAz9iUtlzktbaK9T9tUXW7Xw' reads as options: a value that starts with '-' goes after '--'/],
      [['--db', db, 'init'], /--root-key-out FILE is required/],
      [['--db', db, 'create-staff', 'zed'], /--role counsellor\|supervisor is required/],
      [['--db', db, 'create-staff', 'zed', '--role', 'admin'], /--role must be/],
      [['--db', db, 'create-staff', 'zed', '--role', 'counsellor', '--capacity', '99'], /--capacity must be/],
      [['--db', db, 'audit'], /audit: missing argument/],
      [['--db', db, 'audit', 'explode'], /unknown subcommand 'explode'/],
    ]) {
      const r = ctl(argv);
      assert.equal(r.code, 2, `${argv.join(' ')} exited ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, re);
      assert.match(r.stderr, /^helplinectl: /);
    }
    // None of them created a database.
    assert.ok(!existsSync(db));
    const r = ctl(['--db', db, 'list-staff']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no database at .*h\.db/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('init writes the root key once, keeps its secret out of the database, and is idempotent', () => {
  const dir = tempDir();
  const db = join(dir, 'helpline.db');
  const rootFile = join(dir, 'root-key.json');
  try {
    const out = ok(db, 'init', '--root-key-out', rootFile);
    assert.match(out, /root public key: [A-Za-z0-9_-]{43}\n/);
    assert.match(out, /WARNING/);
    assert.match(out, /offline/);
    assert.equal(statSync(rootFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'helpline.key')).mode & 0o777, 0o600);
    const text = readFileSync(rootFile, 'utf8');
    const key = JSON.parse(text);
    assert.deepEqual(Object.keys(key), ['type', 'version', 'public', 'secret']);
    assert.equal(key.type, 'helpline-root-key');
    assert.equal(key.version, 1);
    assert.match(key.public, /^[A-Za-z0-9_-]{43}$/);
    assert.match(key.secret, /^[A-Za-z0-9_-]{86}$/);
    const pub = Buffer.from(key.public, 'base64url');
    const sec = Buffer.from(key.secret, 'base64url');
    assert.equal(pub.length, 32);
    assert.equal(sec.length, 64);
    assert.ok(sec.subarray(32).equals(pub), 'libsodium secret key = seed || public key');
    assert.ok(out.includes(key.public));

    // The database holds the public key, the STAMP key (sealed) and cert.
    assert.equal(sqlite(db, "SELECT group_concat(name, ',') FROM (SELECT name FROM org_key ORDER BY name)"),
      'evidence_cert,evidence_pk,evidence_sk_sealed,root_pk,stamp_cert,stamp_pk,stamp_sk_sealed');
    assert.equal(sqlite(db, "SELECT lower(hex(value)) FROM org_key WHERE name='root_pk'"), pub.toString('hex'));
    assert.equal(sqlite(db, "SELECT length(value) FROM org_key WHERE name='stamp_cert'"), String(98 + 5 + 64));
    assert.equal(sqlite(db, "SELECT action FROM audit"), 'org.init');

    // The root secret is nowhere in the database, in any form.
    const bytes = dbBytes(db);
    assert.ok(!bytes.includes(key.secret), 'base64 secret in db');
    assert.ok(!bytes.includes(sec), 'raw secret in db');
    assert.ok(!bytes.includes(sec.subarray(0, 32)), 'raw seed in db');
    assert.ok(!bytes.includes(sec.toString('hex')), 'hex secret in db');

    // Again on the same database: nothing changes, exit 0.
    const again = ctl(['--db', db, 'init', '--root-key-out', rootFile]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already initialised/);
    assert.ok(again.stdout.includes(key.public));
    assert.equal(readFileSync(rootFile, 'utf8'), text);
    assert.equal(sqlite(db, 'SELECT count(*) FROM audit'), '1');

    // A fresh database with an existing output file: refused, file kept.
    const db2 = join(dir, 'other.db');
    const refused = ctl(['--db', db2, 'init', '--root-key-out', rootFile]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exists: refusing to overwrite/);
    assert.equal(readFileSync(rootFile, 'utf8'), text);
    assert.equal(sqlite(db2, 'SELECT count(*) FROM org_key'), '0');

    // Partly initialised (a key removed by hand): an error, not a redo.
    sqlite(db2, "INSERT INTO org_key VALUES('root_pk', x'00', 0)");
    const partly = ctl(['--db', db2, 'init', '--root-key-out', join(dir, 'new.json')]);
    assert.equal(partly.code, 1);
    assert.match(partly.stderr, /partly initialised \(missing stamp_pk, stamp_sk_sealed, stamp_cert\)/);
    assert.ok(!existsSync(join(dir, 'new.json')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--state-dir and --key-file resolve like helplined', () => {
  const dir = tempDir();
  try {
    const state = join(dir, 'state');
    let r = ctl(['--state-dir', state, 'init', '--root-key-out', join(dir, 'root.json')]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(state, 'helpline.db')));
    assert.ok(existsSync(join(state, 'helpline.key')));
    assert.equal(statSync(state).mode & 0o777, 0o700);
    r = ctl(['--state-dir', state, 'create-admin', 'root.admin']);
    assert.equal(r.code, 0, r.stderr);

    // A key file that is not the database's is refused before any write.
    const other = join(dir, 'other.key');
    writeFileSync(other, Buffer.alloc(32, 9), { mode: 0o600 });
    r = ctl(['--state-dir', state, '--key-file', other, 'create-admin', 'mallory']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not match database/);
    r = ctl(['--state-dir', state, '--key-file', join(dir, 'missing.key'), 'reset-password', 'root.admin']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no key file at .*missing\.key/);
    // init on the initialised database: a wrong key file is refused, and
    // a missing one is not created.
    r = ctl(['--state-dir', state, '--key-file', other, 'init', '--root-key-out', join(dir, 'r2.json')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not match database/);
    r = ctl(['--state-dir', state, '--key-file', join(dir, 'missing.key'), 'init', '--root-key-out', join(dir, 'r2.json')]);
    assert.equal(r.code, 1);
    assert.ok(!existsSync(join(dir, 'missing.key')));
    assert.ok(!existsSync(join(dir, 'r2.json')));
    assert.equal(JSON.parse(ctl(['--state-dir', state, 'list-staff', '--json']).stdout).length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('accounts: create, list, disable, enable, resets, sessions, audit verify', () => {
  const dir = tempDir();
  const db = join(dir, 'helpline.db');
  try {
    ok(db, 'init', '--root-key-out', join(dir, 'root.json'));
    let out = ok(db, 'create-admin', 'alice', '--name', 'Alice Admin', '--languages', 'en,cy', '--supervisor');
    const code = CODE_RE.exec(out)?.[0];
    assert.ok(code, `no code in: ${out}`);
    assert.match(out, /expires at/);
    assert.match(out, /once/);
    let a = byName(db, 'alice');
    assert.equal(a.state, 'pending');
    assert.deepEqual(a.roles, ['supervisor', 'admin']);
    assert.equal(a.display_name, 'Alice Admin');
    assert.deepEqual(a.languages, ['en', 'cy']);
    assert.equal(a.has_password, false);
    assert.equal(a.has_totp, false);

    out = ok(db, 'create-staff', 'bob', '--role', 'counsellor', '--name', 'Bob B', '--skills', 'online_exploitation', '--capacity', '3');
    assert.match(out, CODE_RE);
    const b = byName(db, 'bob');
    assert.deepEqual(b.roles, ['counsellor']);
    assert.equal(b.capacity, 3);
    assert.deepEqual(b.skills, ['online_exploitation']);

    // The table has a header and a row per account.
    const table = ok(db, 'list-staff');
    assert.match(table, /^ID\s+USERNAME\s+DISPLAY NAME\s+ROLES\s+STATE\s+CAPACITY\s+LANGUAGES\n/);
    assert.match(table, /\n1\s+alice\s+Alice Admin\s+supervisor,admin\s+pending\s+0\s+en,cy\n/);
    assert.match(table, /\n2\s+bob\s+Bob B\s+counsellor\s+pending\s+3\s+-\n/);

    // Refusals: duplicate, invalid fields. Exit 1, one line.
    let r = ctl(['--db', db, 'create-admin', 'alice']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'helplinectl: username already exists: alice\n');
    r = ctl(['--db', db, 'create-admin', 'Alice']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^helplinectl: invalid username: /);
    r = ctl(['--db', db, 'create-staff', 'carl', '--role', 'counsellor', '--languages', 'english']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid languages/);

    // Sessions (made by hand here: only the daemon logs people in).
    const id = a.id;
    sqlite(db, `INSERT INTO staff_session VALUES(x'${'ab'.repeat(32)}', ${id}, 1700000000, 1700000100, 4000000000, 0);` +
      `INSERT INTO staff_session VALUES(x'${'cd'.repeat(32)}', ${id}, 1700000200, 1700000300, 4000000000, 0);`);
    out = ok(db, 'sessions', 'alice');
    assert.match(out, /alice\s+abababab\s+2023-11-14 22:13:20Z/);
    assert.match(out, /alice\s+cdcdcdcd\s/);
    assert.ok(!out.includes('ab'.repeat(5)), 'session hash printed beyond a short prefix');
    const js = JSON.parse(ok(db, 'sessions', '--json'));
    assert.equal(js.length, 2);
    assert.deepEqual(js.map((s) => s.session), ['abababab', 'cdcdcdcd']);
    assert.equal(js[0].username, 'alice');
    assert.match(ok(db, 'sessions', 'bob'), /\(no sessions\)/);
    assert.equal(ok(db, 'revoke-sessions', 'alice'), 'revoked 2 sessions of alice\n');
    assert.equal(ok(db, 'revoke-sessions', 'alice'), 'revoked 0 sessions of alice\n');
    assert.equal(sqlite(db, 'SELECT count(*) FROM staff_session'), '0');

    // Disable ends sessions; enable of a never-enrolled account: pending.
    sqlite(db, `INSERT INTO staff_session VALUES(x'${'ef'.repeat(32)}', ${b.id}, 1, 1, 4000000000, 0)`);
    assert.match(ok(db, 'disable', 'bob'), /bob is disabled/);
    assert.equal(byName(db, 'bob').state, 'disabled');
    assert.equal(sqlite(db, 'SELECT count(*) FROM staff_session'), '0');
    assert.match(ok(db, 'enable', 'bob'), /bob is enabled \(state: pending, enrolment not finished\)/);
    assert.equal(byName(db, 'bob').state, 'pending');

    // Resets print a fresh code.
    out = ok(db, 'reset-password', 'alice');
    const code2 = CODE_RE.exec(out)?.[0];
    assert.ok(code2 && code2 !== code);
    assert.match(out, /password is cleared/);
    out = ok(db, 'reset-totp', 'alice');
    const code3 = CODE_RE.exec(out)?.[0];
    assert.ok(code3 && code3 !== code2);
    assert.match(out, /authenticator \(TOTP\) is cleared/);

    // Unknown users: exit 1 naming them.
    for (const cmd of ['disable', 'enable', 'reset-password', 'reset-totp', 'revoke-sessions', 'sessions']) {
      r = ctl(['--db', db, cmd, 'nobody']);
      assert.equal(r.code, 1, cmd);
      assert.equal(r.stderr, 'helplinectl: no such staff member: nobody\n', cmd);
      assert.equal(r.stdout, '', cmd);
    }

    // No code is stored in the clear.
    const bytes = dbBytes(db);
    for (const c of [code, code2, code3]) {
      assert.ok(!bytes.includes(c), 'code in db');
      assert.ok(!bytes.includes(c.replaceAll('-', '')), 'code in db');
    }

    // The audit chain: every action, in order, verifying.
    assert.equal(sqlite(db, "SELECT group_concat(action, ' ') FROM (SELECT action FROM audit ORDER BY seq)"),
      'org.init staff.create staff.create sessions.revoke sessions.revoke staff.disable staff.enable ' +
      'staff.reset_password staff.reset_totp');
    assert.equal(sqlite(db, 'SELECT count(*) FROM audit WHERE actor IS NOT NULL'), '0');
    out = ok(db, 'audit', 'verify');
    assert.match(out, /^audit chain ok: 9 entries, head [0-9a-f]{64}\n$/);
    assert.equal(out.slice(-65, -1), sqlite(db, 'SELECT lower(hex(entry_hash)) FROM audit WHERE seq=9'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('audit verify names the seq of a row edited by hand', () => {
  const dir = tempDir();
  const db = join(dir, 'helpline.db');
  try {
    ok(db, 'init', '--root-key-out', join(dir, 'root.json'));
    ok(db, 'create-admin', 'alice');
    ok(db, 'create-staff', 'bob', '--role', 'counsellor');
    ok(db, 'disable', 'bob');
    assert.match(ok(db, 'audit', 'verify'), /audit chain ok: 4 entries/);
    sqlite(db, `UPDATE audit SET detail='{"roles":7}' WHERE seq=3`);
    const r = ctl(['--db', db, 'audit', 'verify']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stdout, /^audit chain BROKEN at seq 3: .+\n$/);
    // A deleted row is caught too.
    sqlite(db, `UPDATE audit SET detail='{"roles":1}' WHERE seq=3; DELETE FROM audit WHERE seq=2`);
    const r2 = ctl(['--db', db, 'audit', 'verify']);
    assert.equal(r2.code, 1);
    assert.match(r2.stdout, /audit chain BROKEN at seq 3: /);
    // A missing database is an error, not an empty chain.
    const r3 = ctl(['--db', join(dir, 'nope.db'), 'audit', 'verify']);
    assert.equal(r3.code, 1);
    assert.match(r3.stderr, /no database at/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('helplinectl works while helplined runs on the same database', async () => {
  const srv = await startServer();
  try {
    const db = join(srv.dir, 'helpline.db');
    ok(db, 'init', '--root-key-out', join(srv.dir, 'root.json'));
    assert.match(ok(db, 'create-admin', 'ada'), CODE_RE);
    assert.equal(byName(db, 'ada').state, 'pending');
    assert.match(ok(db, 'audit', 'verify'), /audit chain ok: 2 entries/);
  } finally {
    const r = await srv.stop();
    assert.equal(r.code, 0, r.stderr);
    srv.cleanup();
  }
});
