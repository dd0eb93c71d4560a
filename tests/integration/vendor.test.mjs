// vendor.test.mjs: the vendored libsodium (client-web/vendor/libsodium) loads
// in Node as the pages load it, computes what the C library computes for the
// shared known-answer vectors (tests/vectors/crypto.json; the C side is
// tests/unit/test_vectors.c), and the daemon serves it with the headers the
// browser needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import sodium from '../../client-web/vendor/libsodium/libsodium-wrappers.mjs';
import { startServer, httpGet } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, '..', 'vectors', 'crypto.json'), 'utf8'));
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => new Uint8Array(Buffer.from(h, 'hex'));

test('the vendored libsodium matches the C library on every shared vector', async () => {
  await sodium.ready;
  assert.equal(sodium.SODIUM_VERSION_STRING.split('.')[0], '1');
  for (const v of vectors.generichash) {
    const out = sodium.crypto_generichash(v.outlen, unhex(v.input), v.key ? unhex(v.key) : null);
    assert.equal(hex(out), v.out, v.name);
  }
  for (const v of vectors.kdf) {
    const out = sodium.crypto_kdf_derive_from_key(v.outlen, v.subkey_id, v.context, unhex(v.key));
    assert.equal(hex(out), v.out, v.name);
  }
  for (const v of vectors.aead_xchacha20poly1305) {
    const c = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(unhex(v.message), unhex(v.ad), null, unhex(v.nonce), unhex(v.key));
    assert.equal(hex(c), v.ciphertext, v.name);
    const m = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(null, c, unhex(v.ad), unhex(v.nonce), unhex(v.key));
    assert.equal(hex(m), v.message);
  }
  for (const v of vectors.sign) {
    const kp = sodium.crypto_sign_seed_keypair(unhex(v.seed));
    assert.equal(hex(kp.publicKey), v.pk, v.name);
    assert.equal(hex(sodium.crypto_sign_detached(unhex(v.message), kp.privateKey)), v.signature, v.name);
  }
  for (const v of vectors.auth) {
    assert.equal(hex(sodium.crypto_auth(unhex(v.message), unhex(v.key))), v.mac, v.name);
  }
  for (const v of vectors.kx) {
    const c = sodium.crypto_kx_seed_keypair(unhex(v.client_seed));
    const s = sodium.crypto_kx_seed_keypair(unhex(v.server_seed));
    const ck = sodium.crypto_kx_client_session_keys(c.publicKey, c.privateKey, s.publicKey);
    assert.equal(hex(ck.sharedRx), v.client_rx, v.name);
    assert.equal(hex(ck.sharedTx), v.client_tx, v.name);
  }
});

test('the daemon serves the vendored modules', async () => {
  const srv = await startServer();
  try {
    for (const f of ['libsodium-wrappers.mjs', 'libsodium-sumo.mjs']) {
      const r = await httpGet(srv.port, `/vendor/libsodium/${f}`);
      assert.equal(r.status, 200, f);
      assert.match(r.headers['content-type'], /javascript/, f);
      assert.match(r.headers['content-security-policy'] ?? '', /wasm-unsafe-eval/);
    }
  } finally {
    await srv.stop();
  }
});
