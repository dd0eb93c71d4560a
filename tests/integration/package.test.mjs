// package.test.mjs: builds the Debian package with ops/package.sh (CPack,
// in a temporary build directory; Debug only because it compiles faster)
// and inspects it with dpkg-deb: the files in their places, the metadata
// and the dependencies (every library the programs link comes from a
// listed package), the unit with its paths filled in (and its
// systemd-analyze score), the maintainer scripts; then runs the packaged
// helplined from the extracted tree. It does not install the package:
// that would change this machine's packages, users and units, which a test
// cannot undo safely on a shared machine (docs/operations.md#install).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpGet, until } from './harness.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const has = (cmd, args = ['--version']) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const skip = !has('cpack') ? 'cpack not found' : !has('dpkg-deb') ? 'dpkg-deb not found' : false;
const run = (cmd, args, opts = {}) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};

test('the Debian package: built by CPack, files, dependencies, unit, scripts; the packaged daemon runs', { skip, timeout: 300000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'helpline-pkg-'));
  try {
    const out = run('bash', [join(ROOT, 'ops', 'package.sh'), join(dir, 'build')], {
      env: { ...process.env, HL_PACKAGE_BUILD_TYPE: 'Debug', HL_PACKAGE_JOBS: '2' },
    });
    const deb = out.trim().split('\n').at(-1);
    assert.match(deb, /helpline_\d+\.\d+\.\d+_[a-z0-9]+\.deb$/);

    // Metadata.
    const field = (f) => run('dpkg-deb', ['-f', deb, f]).trim();
    assert.equal(field('Package'), 'helpline');
    assert.match(field('Version'), /^\d+\.\d+\.\d+$/);
    assert.equal(field('Architecture'), run('dpkg', ['--print-architecture']).trim());
    const depends = field('Depends').split(',').map((d) => d.trim().split(' ')[0]);
    for (const p of ['libc6', 'libwebsockets17', 'libwebsockets-evlib-uv', 'libuv1', 'libsodium23', 'libsqlite3-0',
      'libjansson4', 'libinih1', 'libcurl4', 'libssl3', 'systemd'])
      assert.ok(depends.includes(p), `Depends lists ${p}`);
    const info = run('dpkg-deb', ['-I', deb]);
    for (const f of ['conffiles', 'postinst', 'prerm', 'postrm']) assert.match(info, new RegExp(`\\b${f}\\b`), f);

    // Files.
    const list = run('dpkg-deb', ['-c', deb]).split('\n').filter(Boolean).map((l) => {
      const parts = l.split(/\s+/);
      return { mode: parts[0], owner: parts[1], path: parts.slice(5).join(' ').replace(/^\.\//, '/') };
    });
    const paths = new Set(list.map((f) => f.path));
    for (const p of ['/usr/bin/helplined', '/usr/bin/helplinectl', '/etc/helpline/helpline.ini',
      '/usr/lib/systemd/system/helplined.service', '/usr/lib/sysusers.d/helpline.conf',
      '/usr/share/helpline/client-web/index.html', '/usr/share/helpline/client-web/console.html',
      '/usr/share/helpline/client-web/taxonomy.json', '/usr/share/helpline/client-web/js/young.js',
      '/usr/share/doc/helpline/operations.md', '/usr/share/doc/helpline/nginx.conf'])
      assert.ok(paths.has(p), `${p} in the package`);
    for (const f of list) {
      assert.equal(f.owner, 'root/root', `${f.path} owned by root`);
      assert.ok(/^\/(etc\/helpline|usr\/(bin|lib\/systemd\/system|lib\/sysusers\.d|share\/helpline|share\/doc\/helpline))(\/|$)/.test(f.path) ||
        ['/etc/', '/usr/', '/usr/bin/', '/usr/lib/', '/usr/lib/systemd/', '/usr/share/', '/usr/share/doc/'].includes(f.path),
      `nothing outside Helpline's places: ${f.path}`);
      assert.ok(!/bench|\.test\.|cmake|CMakeFiles/.test(f.path), `no build or test files: ${f.path}`);
    }
    for (const b of ['/usr/bin/helplined', '/usr/bin/helplinectl'])
      assert.equal(list.find((f) => f.path === b).mode, '-rwxr-xr-x', b);

    // Extracted: the unit, the scripts, the libraries.
    const x = join(dir, 'x');
    run('dpkg-deb', ['-x', deb, x]);
    const ctl = join(dir, 'ctl');
    run('dpkg-deb', ['-e', deb, ctl]);
    assert.equal(readFileSync(join(ctl, 'conffiles'), 'utf8').trim(), '/etc/helpline/helpline.ini');
    assert.match(readFileSync(join(ctl, 'postinst'), 'utf8'), /systemd-sysusers helpline\.conf/);
    for (const s of ['postinst', 'prerm', 'postrm']) {
      assert.equal(statSync(join(ctl, s)).mode & 0o777, 0o755, s);
      run('sh', ['-n', join(ctl, s)]);
    }
    const unit = readFileSync(join(x, 'usr/lib/systemd/system/helplined.service'), 'utf8');
    assert.ok(unit.includes('\nExecStart=/usr/bin/helplined --config /etc/helpline/helpline.ini --web-root /usr/share/helpline/client-web\n'), unit);
    assert.doesNotMatch(unit, /@[A-Z_]+@/, 'no placeholder left');
    if (has('systemd-analyze')) {
      const s = spawnSync('systemd-analyze', ['security', '--offline=yes', join(x, 'usr/lib/systemd/system/helplined.service')], { encoding: 'utf8' });
      assert.match(s.stdout + s.stderr, /Overall exposure level for helplined\.service: 1\.\d OK/);
    }
    assert.match(readFileSync(join(x, 'usr/lib/sysusers.d/helpline.conf'), 'utf8'), /^u helpline - ".*" \/var\/lib\/helpline$/m);
    // Every library the two programs link directly comes from a package
    // the package depends on.
    for (const b of ['helplined', 'helplinectl']) {
      const ldd = run('ldd', [join(x, 'usr/bin', b)]);
      assert.doesNotMatch(ldd, /not found/);
      const needed = [...run('objdump', ['-p', join(x, 'usr/bin', b)]).matchAll(/NEEDED\s+(\S+)/g)].map((m) => m[1]);
      for (const so of needed) {
        const path = new RegExp(`${so.replace(/[.+]/g, '\\$&')} => (\\S+)`).exec(ldd)?.[1];
        assert.ok(path, `${b}: ${so} resolved`);
        // dpkg knows a file by the path its package installed, and with
        // merged /usr that may be /lib/... or /usr/lib/..., link or target.
        const real = run('readlink', ['-f', path]).trim();
        const names = [path, real, ...[path, real].map((q) => q.startsWith('/usr/') ? q.slice(4) : `/usr${q}`)];
        const owner = names.map((q) => spawnSync('dpkg', ['-S', q], { encoding: 'utf8' })).find((r) => r.status === 0);
        assert.ok(owner, `${b}: no package owns ${path}`);
        const pkg = owner.stdout.split(':')[0];
        assert.ok(depends.includes(pkg), `${b} links ${so} from ${pkg}, which Depends lists`);
      }
    }

    // The packaged daemon, from the extracted tree, with the packaged
    // config and web files: it starts, serves and stops cleanly.
    assert.match(run(join(x, 'usr/bin/helplined'), ['--version']), /^helplined \d+\.\d+\.\d+/);
    run(join(x, 'usr/bin/helplinectl'), ['--help']);
    const state = join(dir, 'state');
    const p = spawn(join(x, 'usr/bin/helplined'), ['--config', join(x, 'etc/helpline/helpline.ini'),
      '--listen', '127.0.0.1:0', '--state-dir', state, '--web-root', join(x, 'usr/share/helpline/client-web')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise((r) => p.on('exit', (code) => r(code)));
    try {
      const port = Number((await until(() => /server\.listening url=http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr), `listening: ${stderr}`, 15000))[1]);
      assert.equal((await httpGet(port, '/healthz')).status, 200);
      const page = await httpGet(port, '/');
      assert.equal(page.status, 200);
      assert.match(page.body, /<html/i);
      assert.equal(statSync(state).mode & 0o777, 0o700, 'state directory 0700');
    } finally {
      p.kill('SIGTERM');
    }
    assert.equal(await exited, 0, stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
