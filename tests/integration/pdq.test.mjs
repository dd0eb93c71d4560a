// pdq.test.mjs: the on-device hashing of issue 11 (client-web/js/pdq.js and
// filehash.js). In Node: MD5 against RFC 1321's test suite, SHA-256 (both
// WebCrypto and the fallback) against Node's crypto, PDQ on synthetic
// pixels (deterministic, flat images low quality, the dihedral hashes equal
// the hashes of the actually rotated pixels). In Chromium, loaded from the
// real daemon under its CSP: each reference image in tests/fixtures/pdq
// hashed from its bytes by hashFile: SHA-256 and MD5 exact, PDQ within the
// tolerance below of every hash published for it, the same PDQ in Node for
// the same decoded pixels, the same again in a module worker
// (hashFileInWorker), and the bad inputs with their error codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as P from '../../client-web/js/pdq.js';
import * as F from '../../client-web/js/filehash.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIX = join(here, '..', 'fixtures', 'pdq');

// Tolerances, in bits of 256 (docs/hashing.md). Our JPEG decoder is the
// browser's, the published hashes come from five others (CImg/libjpeg, Java
// ImageIO, PIL with a 512-pixel thumbnail first, PHP GD, a browser via
// WASM), and they disagree among themselves by up to 12 bits on these
// images. Upstream asks a new implementation to be within 10 bits of its
// C++ reference for images of quality >= 80: we hold every image to 10 bits
// from the nearest published hash, and to 16 bits (upstream's own pure-
// Python test bar, which allows for its thumbnail step) from every one.
const NEAREST_TOLERANCE = 10;
const EVERY_TOLERANCE = 16;

function parseCsv(text) {
  const rows = [];
  for (const line of text.split('\n').slice(1)) {
    if (!line) continue;
    const cells = [];
    for (const m of line.matchAll(/("([^"]|"")*"|[^,]*)(,|$)/g)) {
      cells.push(m[1].startsWith('"') ? m[1].slice(1, -1).replace(/""/g, '"') : m[1]);
      if (m[3] === '') break;
    }
    rows.push(cells);
  }
  return rows;
}

const expected = new Map();
for (const [image, hash, quality, implementation] of parseCsv(readFileSync(join(FIX, 'expected.csv'), 'utf8'))) {
  if (!expected.has(image)) expected.set(image, []);
  expected.get(image).push({ hash, quality: quality === '' ? null : Number(quality), implementation });
}
const images = [...expected.keys()].sort();

// --- Node ---------------------------------------------------------------

test('MD5: the RFC 1321 test suite, split updates, and Node agrees on the fixtures', () => {
  const suite = {
    '': 'd41d8cd98f00b204e9800998ecf8427e',
    a: '0cc175b9c0f1b6a831c399e269772661',
    abc: '900150983cd24fb0d6963f7d28e17f72',
    'message digest': 'f96b697d7cb7938d525a2f31aaf161d0',
    abcdefghijklmnopqrstuvwxyz: 'c3fcd3d76192e4007dfb496cca67e13b',
    ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789: 'd174ab98d277d9f5a5611c2c9f419d9f',
    '12345678901234567890123456789012345678901234567890123456789012345678901234567890': '57edf4a22be3c955ac49da2e2107b67a',
  };
  for (const [text, md5] of Object.entries(suite)) assert.equal(F.md5Hex(new TextEncoder().encode(text)), md5, text);
  // Padding edges, and the same digest however the bytes are split.
  for (const n of [55, 56, 63, 64, 65, 119, 120, 128, 1000]) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
    assert.equal(F.md5Hex(b), createHash('md5').update(b).digest('hex'), `${n} bytes`);
    const m = new F.Md5();
    for (let i = 0; i < n; i += 13) m.update(b.subarray(i, i + 13));
    assert.equal(Buffer.from(m.digest()).toString('hex'), createHash('md5').update(b).digest('hex'));
  }
  for (const image of images) {
    const bytes = readFileSync(join(FIX, 'images', image));
    assert.equal(F.md5Hex(bytes), createHash('md5').update(bytes).digest('hex'), image);
  }
});

test('SHA-256: WebCrypto and the fallback equal Node\'s crypto; hashBytes reads in chunks', async () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000]) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
    const want = createHash('sha256').update(b).digest('hex');
    assert.equal(await F.sha256Hex(b), want);
    assert.equal(await F.sha256Hex(b, { fallback: true }), want);
  }
  for (const image of images) {
    const bytes = readFileSync(join(FIX, 'images', image));
    const want = createHash('sha256').update(bytes).digest('hex');
    assert.equal(await F.sha256Hex(bytes, { fallback: true }), want, image);
    const r = await F.hashBytes(new Blob([bytes]));
    assert.deepEqual(r, { type: 'image/jpeg', kind: 'image', size: bytes.length, sha256: want, md5: createHash('md5').update(bytes).digest('hex') });
  }
  // More than one chunk.
  const big = new Uint8Array(F.CHUNK_BYTES * 2 + 12345).map((_, i) => i & 0xff);
  const progress = [];
  const r = await F.hashBytes(new Blob([big]), { onProgress: (p) => progress.push(p.done) });
  assert.equal(r.sha256, createHash('sha256').update(big).digest('hex'));
  assert.equal(r.md5, createHash('md5').update(big).digest('hex'));
  assert.deepEqual(progress, [F.CHUNK_BYTES, 2 * F.CHUNK_BYTES, big.length]);
});

test('filehash bad input in Node: empty, too large, not a picture, aborted, timeout; pictures need a decoder', async () => {
  const code = async (p) => { try { await p; } catch (e) { assert.ok(e instanceof F.HashError); return e; } assert.fail('no error'); };
  assert.equal((await code(F.hashFile(new Blob([])))).code, 'empty');
  assert.equal((await code(F.hashFile('not a blob'))).code, 'not_a_file');
  assert.equal((await code(F.hashFile(new Blob([new Uint8Array(2000)]), { maxBytes: 1000 }))).code, 'too_large');
  assert.equal((await code(F.hashFile(new Blob(['just some text'], { type: 'text/plain' })))).code, 'not_image');
  const ac = new AbortController();
  ac.abort();
  assert.equal((await code(F.hashFile(new Blob(['x']), { signal: ac.signal }))).code, 'aborted');
  assert.equal((await code(F.hashFile(new Blob([new Uint8Array(F.CHUNK_BYTES * 3)]), { timeoutMs: 1 }))).code, 'timeout');
  // Node has no image decoder: the exact hashes come with the error.
  const jpg = readFileSync(join(FIX, 'images', 'misc-images/wee.jpg'));
  const e = await code(F.hashFile(new Blob([jpg])));
  assert.equal(e.code, 'no_decoder');
  assert.equal(e.exact.sha256, createHash('sha256').update(jpg).digest('hex'));
  // A video gets exact hashes only.
  const mp4 = new Uint8Array(64);
  mp4.set([0, 0, 0, 0x20, ...new TextEncoder().encode('ftypisom')]);
  const v = await F.hashFile(new Blob([mp4]));
  assert.deepEqual({ kind: v.kind, type: v.type, pdq: v.pdq, quality: v.quality }, { kind: 'video', type: 'video/mp4', pdq: null, quality: null });
  assert.equal(v.md5, createHash('md5').update(mp4).digest('hex'));
});

// Deterministic pseudo-random numbers (xorshift32).
function rng(seed) {
  let s = seed >>> 0;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32; };
}

function synthetic(w, h, seed, noise = 20) {
  const r = rng(seed);
  const rgba = new Uint8ClampedArray(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const v = 128 + 70 * Math.sin(x / 11 + y / 29) + 40 * Math.cos(y / 7 - x / 40) + noise * (r() - 0.5);
      const p = (y * w + x) * 4;
      rgba[p] = v; rgba[p + 1] = 255 - v; rgba[p + 2] = v / 2; rgba[p + 3] = 255;
    }
  return rgba;
}

test('PDQ on synthetic pixels: deterministic, 128 bits set, quality, channels, dihedral', () => {
  const a = synthetic(640, 480, 1);
  const h1 = P.pdqHash(a, 640, 480), h2 = P.pdqHash(a.slice(), 640, 480);
  assert.deepEqual(h1, h2);
  assert.match(h1.hash, /^[0-9a-f]{64}$/);
  assert.equal(h1.quality, 100);
  assert.equal(P.hamming(h1.hash, '0'.repeat(64)), 128);
  // The input is not modified.
  assert.deepEqual(a, synthetic(640, 480, 1));
  // A different picture is far away; a little noise is near.
  assert.ok(P.hamming(h1.hash, P.pdqHash(synthetic(640, 480, 99, 0).map((v, i) => (i % 4 === 3 ? v : 255 - v)), 640, 480).hash) > 100);
  assert.ok(P.hamming(h1.hash, P.pdqHash(synthetic(640, 480, 2), 640, 480).hash) <= 16);
  // RGB, RGBA and luminance inputs of the same picture agree.
  const rgb = new Uint8Array(640 * 480 * 3);
  for (let i = 0, j = 0; i < a.length; i += 4, j += 3) rgb.set(a.subarray(i, i + 3), j);
  assert.deepEqual(P.pdqHash(rgb, 640, 480), h1);
  assert.deepEqual(P.pdqHash(P.luminance(a, 640, 480), 640, 480), h1);
  assert.deepEqual(P.pdqHashLuminance(P.luminance(a, 640, 480), 640, 480), h1);

  // Flat and nearly flat pictures have low quality; too small ones hash to zero.
  const flat = new Uint8Array(200 * 100 * 4).fill(200);
  assert.equal(P.pdqHash(flat, 200, 100).quality, 0);
  const faint = Uint8Array.from({ length: 200 * 100 }, (_, i) => 100 + ((i % 200) > 100 ? 1 : 0));
  assert.ok(P.pdqHash(faint, 200, 100).quality < P.PDQ_QUALITY_THRESHOLD);
  assert.deepEqual(P.pdqHash(new Uint8Array(4 * 100 * 3), 4, 100, 3), { hash: '0'.repeat(64), quality: 0 });
  assert.throws(() => P.pdqHash(new Uint8Array(10), 640, 480), RangeError);

  // On a 64x64 picture (no blur, symmetric sampling) the derived dihedral
  // hashes equal the hashes of the transformed pixels exactly.
  const n = 64, g = synthetic(n, n, 5, 60);
  const at = (x, y) => g.subarray((y * n + x) * 4, (y * n + x) * 4 + 4);
  const moves = {
    rotate90: (x, y) => at(y, n - 1 - x), rotate180: (x, y) => at(n - 1 - x, n - 1 - y), rotate270: (x, y) => at(n - 1 - y, x),
    flipX: (x, y) => at(n - 1 - x, y), flipY: (x, y) => at(x, n - 1 - y), transpose: (x, y) => at(y, x), transverse: (x, y) => at(n - 1 - y, n - 1 - x),
  };
  const d = P.pdqHashDihedral(g, n, n);
  assert.equal(d.hash, d.hashes.original);
  assert.equal(d.hash, P.pdqHash(g, n, n).hash);
  for (const [name, f] of Object.entries(moves)) {
    const t = new Uint8ClampedArray(n * n * 4);
    for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) t.set(f(x, y), (y * n + x) * 4);
    assert.equal(P.pdqHash(t, n, n).hash, d.hashes[name], name);
    assert.ok(P.hamming(d.hash, d.hashes[name]) > 64, `${name} differs from the original`);
  }
  assert.equal(P.hamming('f'.repeat(64), '0'.repeat(64)), 256);
  assert.throws(() => P.hamming('abc', 'def'), TypeError);
  assert.ok(P.pdqMatches(d.hashes.rotate90, Object.values(d.hashes)));
});

// --- Chromium --------------------------------------------------------------

const { noBrowser, launch } = await import('./browser.mjs');
const { startServer } = process.env.HELPLINED ? await import('./harness.mjs') : {};
const skip = noBrowser || (!process.env.HELPLINED && 'HELPLINED not set');

test('hashing the reference images in Chromium: exact hashes, PDQ within tolerance, same as Node; bad input', { skip, timeout: 180000 }, async (t) => {
  const srv = await startServer();
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(String(e)));
    const res = await page.goto(`${srv.url}/`);
    assert.match(res.headers()['content-security-policy'], /default-src 'none'/);
    const table = [];
    for (const image of images) {
      const bytes = readFileSync(join(FIX, 'images', image));
      const out = await page.evaluate(async ({ b64, name }) => {
        const F = await import('/js/filehash.js');
        const P = await import('/js/pdq.js');
        const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        // As the page will: a File, hashed from its bytes.
        const r = await F.hashFile(new File([bin], name, { type: 'image/jpeg' }), { dihedral: true });
        // The same decoded pixels as RGBA, hashed here and sent to Node.
        const bm = await createImageBitmap(new Blob([bin]), { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
        const c = new OffscreenCanvas(bm.width, bm.height);
        const ctx = c.getContext('2d', { willReadFrequently: true });
        ctx.drawImage(bm, 0, 0);
        const px = ctx.getImageData(0, 0, bm.width, bm.height).data;
        const direct = P.pdqHash(px, bm.width, bm.height);
        let s = '';
        for (let i = 0; i < px.length; i += 0x8000) s += String.fromCharCode(...px.subarray(i, i + 0x8000));
        return { r, direct, w: bm.width, h: bm.height, rgba: btoa(s) };
      }, { b64: bytes.toString('base64'), name: image.split('/').pop() });
      const { r } = out;
      assert.equal(r.kind, 'image');
      assert.equal(r.type, 'image/jpeg');
      assert.equal(r.size, bytes.length);
      assert.equal(r.sha256, createHash('sha256').update(bytes).digest('hex'), image);
      assert.equal(r.md5, createHash('md5').update(bytes).digest('hex'), image);
      // Band-wise decoding gives the same pixels as one getImageData.
      assert.deepEqual({ hash: r.pdq, quality: r.quality }, out.direct, image);
      // Node, same pixels: the same hash and quality, bit for bit.
      const rgba = new Uint8ClampedArray(Buffer.from(out.rgba, 'base64'));
      assert.deepEqual(P.pdqHash(rgba, out.w, out.h), out.direct, `${image}: Node and Chromium differ`);
      assert.deepEqual(P.pdqHashDihedral(rgba, out.w, out.h).hashes, r.pdqDihedral, image);
      // Against every published hash of this image.
      const dists = expected.get(image).map((e) => ({ ...e, d: P.hamming(r.pdq, e.hash) }));
      const nearest = Math.min(...dists.map((e) => e.d)), farthest = Math.max(...dists.map((e) => e.d));
      table.push({ image, size: `${out.w}x${out.h}`, quality: r.quality, lowQuality: r.lowQuality, nearest, farthest, all: dists.map((e) => `${e.d} ${e.implementation.split(' (')[0]}`).join('; ') });
      assert.ok(nearest <= NEAREST_TOLERANCE, `${image}: nearest published PDQ ${nearest} bits away`);
      assert.ok(farthest <= EVERY_TOLERANCE, `${image}: a published PDQ is ${farthest} bits away`);
      assert.equal(r.lowQuality, r.quality < 50);
      for (const e of dists) if (e.quality !== null) assert.ok(Math.abs(e.quality - r.quality) <= 5, `${image}: quality ${r.quality}, published ${e.quality}`);
    }
    for (const row of table) t.diagnostic(`${row.image} ${row.size} q${row.quality}${row.lowQuality ? ' low' : ''}: nearest ${row.nearest}, farthest ${row.farthest} (${row.all})`);
    const q = Object.fromEntries(table.map((row) => [row.image, row]));
    assert.equal(q['misc-images/small.jpg'].lowQuality, true);
    assert.equal(q['reg-test-input/labelme-subset/q0004.jpg'].lowQuality, true);
    assert.equal(q['bridge-mods/aaa-orig.jpg'].lowQuality, false);

    // The dihedral hashes derived from the original are near the hashes of
    // the rotated and mirrored files (upstream's names: rotate-90 is a
    // quarter turn anticlockwise, our rotate270; flipx mirrors top to bottom).
    const dih = await page.evaluate(async (files) => {
      const F = await import('/js/filehash.js');
      const get = async (f) => F.hashFile(new Blob([Uint8Array.from(atob(f), (c) => c.charCodeAt(0))]), { dihedral: true });
      const [orig, rot, flip] = await Promise.all(files.map(get));
      return { orig: orig.pdqDihedral, rot: rot.pdq, flip: flip.pdq };
    }, ['bridge-mods/aaa-orig.jpg', 'reg-test-input/dih/bridge-2-rotate-90.jpg', 'reg-test-input/dih/bridge-5-flipx.jpg']
      .map((f) => readFileSync(join(FIX, 'images', f)).toString('base64')));
    const dr = P.hamming(dih.orig.rotate270, dih.rot), df = P.hamming(dih.orig.flipY, dih.flip);
    t.diagnostic(`derived rotate270 vs bridge-2-rotate-90: ${dr}; derived flipY vs bridge-5-flipx: ${df}`);
    assert.ok(dr <= NEAREST_TOLERANCE && df <= NEAREST_TOLERANCE);
    assert.ok(P.hamming(dih.orig.original, dih.rot) > 64);

    // A lossless picture made in the page: PDQ of the decoded file equals
    // PDQ of the pixels drawn, exactly.
    const png = await page.evaluate(async () => {
      const F = await import('/js/filehash.js');
      const P = await import('/js/pdq.js');
      const c = new OffscreenCanvas(300, 200);
      const ctx = c.getContext('2d', { willReadFrequently: true });
      const g = ctx.createLinearGradient(0, 0, 300, 200);
      g.addColorStop(0, '#123456'); g.addColorStop(0.5, '#f0c040'); g.addColorStop(1, '#204020');
      ctx.fillStyle = g; ctx.fillRect(0, 0, 300, 200);
      ctx.fillStyle = '#fff'; ctx.fillRect(40, 30, 90, 60); ctx.beginPath(); ctx.arc(210, 120, 50, 0, 7); ctx.fillStyle = '#000'; ctx.fill();
      const drawn = P.pdqHash(ctx.getImageData(0, 0, 300, 200).data, 300, 200);
      const r = await F.hashFile(await c.convertToBlob({ type: 'image/png' }));
      return { drawn, r };
    });
    assert.equal(png.r.type, 'image/png');
    assert.deepEqual({ hash: png.r.pdq, quality: png.r.quality }, png.drawn);

    // Off the main thread: a module worker under the same CSP gives the
    // same answers, and is ended on abort.
    const orig0 = readFileSync(join(FIX, 'images', 'bridge-mods/aaa-orig.jpg'));
    const inWorker = await page.evaluate(async (b64) => {
      const F = await import('/js/filehash.js');
      const jpg = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const code = async (p) => { try { await p; return 'no error'; } catch (e) { return e.code; } };
      const ac = new AbortController();
      const stopped = code(F.hashFileInWorker(new Blob([jpg]), { signal: ac.signal }));
      ac.abort();
      return {
        here: await F.hashFile(new Blob([jpg]), { dihedral: true }),
        worker: await F.hashFileInWorker(new File([jpg], 'a.jpg'), { dihedral: true }),
        text: await code(F.hashFileInWorker(new Blob(['hello']))),
        cut: await code(F.hashFileInWorker(new Blob([jpg.subarray(0, 1000)]))),
        stopped: await stopped,
        late: await code(F.hashFileInWorker(new Blob([jpg]), { timeoutMs: 1 })),
      };
    }, orig0.toString('base64'));
    assert.deepEqual(inWorker.worker, inWorker.here);
    assert.deepEqual([inWorker.text, inWorker.cut, inWorker.stopped, inWorker.late], ['not_image', 'image_corrupt', 'aborted', 'timeout']);

    // Bad input, each with its code (and the exact hashes where a picture
    // could not be decoded).
    const orig = readFileSync(join(FIX, 'images', 'bridge-mods/aaa-orig.jpg'));
    const bad = await page.evaluate(async ({ b64 }) => {
      const F = await import('/js/filehash.js');
      const jpg = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const code = async (p) => { try { const r = await p; return { ok: r.kind }; } catch (e) { return { code: e.code, name: e.name, exact: e.exact ?? null, message: e.message }; } };
      const garbage = new Uint8Array(5000).map((_, i) => (i * 7919) & 0xff);
      garbage.set([0xff, 0xd8, 0xff, 0xe0]);
      garbage.set([0xff, 0xd9], garbage.length - 2);
      const ac = new AbortController();
      const aborted = code(F.hashFile(new Blob([jpg]), { signal: ac.signal }));
      ac.abort();
      return {
        text: await code(F.hashFile(new File(['Dear diary'], 'notes.txt', { type: 'text/plain' }))),
        namedJpeg: await code(F.hashFile(new File(['Dear diary'], 'photo.jpg', { type: 'image/jpeg' }))),
        truncated: await code(F.hashFile(new File([jpg.subarray(0, jpg.length >> 1)], 'cut.jpg', { type: 'image/jpeg' }))),
        garbage: await code(F.hashFile(new Blob([garbage]))),
        oversize: await code(F.hashFile(new Blob([new Uint8Array(F.MAX_FILE_BYTES + 1)]))),
        bigPicture: await code(F.hashFile(new Blob([jpg]), { maxPixels: 1000 })),
        aborted: await aborted,
        heic: await code(F.hashFile(new Blob([new Uint8Array([0, 0, 0, 24, 0x66, 0x74, 0x79, 0x70, 0x68, 0x65, 0x69, 0x63, 0, 0, 0, 0, 0x6d, 0x69, 0x66, 0x31, 0x68, 0x65, 0x69, 0x63])]))),
        max: F.MAX_FILE_BYTES,
      };
    }, { b64: orig.toString('base64') });
    assert.equal(bad.text.code, 'not_image');
    assert.equal(bad.text.name, 'HashError');
    assert.equal(bad.namedJpeg.code, 'image_corrupt');
    assert.equal(bad.truncated.code, 'image_corrupt');
    assert.equal(bad.truncated.exact.sha256, createHash('sha256').update(orig.subarray(0, orig.length >> 1)).digest('hex'));
    assert.equal(bad.truncated.exact.md5, createHash('md5').update(orig.subarray(0, orig.length >> 1)).digest('hex'));
    assert.equal(bad.garbage.code, 'image_corrupt');
    assert.equal(bad.oversize.code, 'too_large');
    assert.equal(bad.oversize.exact, null);
    assert.equal(bad.max, 50 * 1024 * 1024);
    assert.equal(bad.bigPicture.code, 'image_too_big');
    assert.equal(bad.bigPicture.exact.sha256, createHash('sha256').update(orig).digest('hex'));
    assert.equal(bad.aborted.code, 'aborted');
    assert.equal(bad.heic.code, 'image_unsupported');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    await srv.stop();
    srv.cleanup();
  }
});
