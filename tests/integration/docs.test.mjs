// docs.test.mjs: keeps the docs true to the code: every config key and
// every protocol error code the C sources define is documented.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (p) => readFileSync(join(root, p), 'utf8');

test('every config key is in the README, docs/configuration.md and the example file', () => {
  const src = read('service/config.c');
  // Key table rows look like: {"server", "listen", ...
  const keys = [...src.matchAll(/\{\s*"([a-z_]+)",\s*"([a-z_]+)",/g)].map((m) => `${m[1]}.${m[2]}`);
  assert.ok(keys.length >= 10, `found ${keys.length} keys in config.c`);
  const readme = read('README.md'), doc = read('docs/configuration.md'), example = read('ops/helpline.ini.example');
  for (const k of keys) {
    assert.ok(readme.includes('`' + k + '`'), `README lacks ${k}`);
    assert.ok(doc.includes('`' + k + '`'), `docs/configuration.md lacks ${k}`);
    assert.match(example, new RegExp(`^; ${k.split('.')[1]} = `, 'm'), `example lacks ${k}`);
  }
});

test('every error code is in docs/protocol.md', () => {
  const src = read('service/protocol.c');
  // Name table rows look like: [HL_ERR_BAD_JSON] = {"bad_json", ...
  const codes = [...src.matchAll(/\[HL_ERR_[A-Z0-9_]+\] = \{"([a-z_]+)"/g)].map((x) => x[1]);
  assert.ok(codes.length >= 15);
  const doc = read('docs/protocol.md');
  for (const c of codes) assert.match(doc, new RegExp('\\| `' + c + '` \\|'), `protocol.md lacks ${c}`);
});
