// filehash.js: hashing a picked file on the young person's own device, so
// that a hash report can be made without the picture ever leaving it.
// Exact hashes (SHA-256 and MD5 of the file's bytes, what exact-match hash
// lists use) for images and videos, and a PDQ perceptual hash with its
// quality score (pdq.js) for images the browser can decode. Nothing here
// uploads, stores or displays anything. The MD5 and the fallback SHA-256
// are written from RFC 1321 and FIPS 180-4. Limits and error codes are in
// docs/hashing.md.
import { luminanceInto, pdqHashLuminance, PDQ_QUALITY_THRESHOLD } from './pdq.js';

// Files larger than this are refused before any byte is read.
export const MAX_FILE_BYTES = 50 * 1024 * 1024;
// Decoded images with more pixels than this are refused (the decoded
// picture and its luminance take about 8 bytes a pixel).
export const MAX_IMAGE_PIXELS = 50_000_000;
// Bytes read at a time; the abort signal is checked between reads.
export const CHUNK_BYTES = 4 * 1024 * 1024;
// The whole job (reading, hashing, decoding) gives up after this long.
export const DEFAULT_TIMEOUT_MS = 60_000;
// Rows of the decoded picture read back from the canvas at a time.
const BAND_ROWS = 256;

// Every failure is a HashError with one of these codes. For images that
// could not be decoded (image_corrupt, image_unsupported, image_too_big,
// no_decoder) err.exact holds { type, size, sha256, md5 }: exact hashes are
// still worth reporting.
export const ERRORS = Object.freeze({
  not_a_file: 'not a File or Blob',
  empty: 'the file is empty',
  too_large: `the file is larger than ${MAX_FILE_BYTES} bytes`,
  not_image: 'the file is neither a picture nor a video',
  image_corrupt: 'the picture is damaged or incomplete and could not be read',
  image_unsupported: 'this browser cannot read this kind of picture',
  image_too_big: `the picture has more than ${MAX_IMAGE_PIXELS} pixels`,
  no_decoder: 'this browser cannot decode pictures here',
  read_failed: 'the file could not be read',
  aborted: 'stopped',
  timeout: 'took too long',
});

export class HashError extends Error {
  constructor(code, exact) {
    super(ERRORS[code] ?? code);
    this.name = 'HashError';
    this.code = code;
    if (exact) this.exact = exact;
  }
}

const hexOf = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

// --- MD5 (RFC 1321) -------------------------------------------------------

// T[i] = floor(2^32 * |sin(i + 1)|), RFC 1321 section 3.4.
const MD5_T = Int32Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0);
const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

// Both hashes eat 64-byte blocks: update(bytes) any number of times, then
// digest() once. Subclasses give block(bytes, offset) and digest().
class BlockHash {
  constructor() {
    this.buf = new Uint8Array(64);
    this.fill = 0;
    this.length = 0; // bytes so far
  }

  update(bytes) {
    let i = 0;
    const n = bytes.length;
    this.length += n;
    if (this.fill) {
      while (i < n && this.fill < 64) this.buf[this.fill++] = bytes[i++];
      if (this.fill < 64) return this;
      this.block(this.buf, 0);
      this.fill = 0;
    }
    for (; i + 64 <= n; i += 64) this.block(bytes, i);
    while (i < n) this.buf[this.fill++] = bytes[i++];
    return this;
  }

  // The padding: 0x80, zeros, the length in bits in 8 bytes (little-endian
  // for MD5, big-endian for SHA-256).
  pad(bigEndian) {
    const bits = this.length * 8;
    const pad = new Uint8Array(((this.fill < 56 ? 56 : 120) - this.fill) + 8);
    pad[0] = 0x80;
    const tail = pad.length - 8;
    for (let k = 0; k < 8; k++) pad[tail + (bigEndian ? 7 - k : k)] = Math.floor(bits / 2 ** (8 * k)) & 0xff;
    this.update(pad);
  }
}

// Incremental MD5.
export class Md5 extends BlockHash {
  constructor() {
    super();
    this.h = Int32Array.of(0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476);
    this.x = new Int32Array(16);
  }

  block(b, off) {
    const x = this.x, h = this.h;
    for (let i = 0; i < 16; i++, off += 4) x[i] = b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24);
    let a = h[0], bb = h[1], c = h[2], d = h[3];
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (bb & c) | (~bb & d); g = i; }
      else if (i < 32) { f = (bb & d) | (c & ~d); g = (5 * i + 1) & 15; }
      else if (i < 48) { f = bb ^ c ^ d; g = (3 * i + 5) & 15; }
      else { f = c ^ (bb | ~d); g = (7 * i) & 15; }
      const s = MD5_S[((i >> 4) << 2) | (i & 3)];
      const t = (a + f + MD5_T[i] + x[g]) | 0;
      a = d; d = c; c = bb;
      bb = (bb + ((t << s) | (t >>> (32 - s)))) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + bb) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
  }

  // 16 bytes; the object is finished afterwards.
  digest() {
    this.pad(false);
    const out = new Uint8Array(16);
    for (let k = 0; k < 16; k++) out[k] = (this.h[k >> 2] >>> (8 * (k & 3))) & 0xff;
    return out;
  }
}

export const md5Hex = (bytes) => hexOf(new Md5().update(bytes).digest());

// --- SHA-256 (FIPS 180-4), for where crypto.subtle is missing -------------

const primes = (() => {
  const p = [];
  for (let n = 2; p.length < 64; n++) if (p.every((q) => n % q)) p.push(n);
  return p;
})();
// First 32 bits of the fractional parts of the cube roots (K) and square
// roots (initial H) of the first primes, FIPS 180-4 sections 4.2.2, 5.3.3.
const frac32 = (v) => Math.floor((v - Math.floor(v)) * 2 ** 32) | 0;
const SHA_K = Int32Array.from(primes, (p) => frac32(Math.cbrt(p)));
const SHA_H = Int32Array.from(primes.slice(0, 8), (p) => frac32(Math.sqrt(p)));

// Incremental SHA-256.
export class Sha256 extends BlockHash {
  constructor() {
    super();
    this.h = Int32Array.from(SHA_H);
    this.w = new Int32Array(64);
  }

  block(b, off) {
    const w = this.w, h = this.h;
    for (let i = 0; i < 16; i++, off += 4) w[i] = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (hh + S1 + ch + SHA_K[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & bb) ^ (a & c) ^ (bb & c);
      const t2 = (S0 + maj) | 0;
      hh = g; g = f; f = e; e = (d + t1) | 0; d = c; c = bb; bb = a; a = (t1 + t2) | 0;
    }
    h[0] = (h[0] + a) | 0; h[1] = (h[1] + bb) | 0; h[2] = (h[2] + c) | 0; h[3] = (h[3] + d) | 0;
    h[4] = (h[4] + e) | 0; h[5] = (h[5] + f) | 0; h[6] = (h[6] + g) | 0; h[7] = (h[7] + hh) | 0;
  }

  digest() {
    this.pad(true);
    const out = new Uint8Array(32);
    for (let k = 0; k < 32; k++) out[k] = (this.h[k >> 2] >>> (24 - 8 * (k & 3))) & 0xff;
    return out;
  }
}

const subtle = () => globalThis.crypto?.subtle;

// SHA-256 of bytes as hex: WebCrypto where there is one (secure contexts),
// otherwise the code above. { fallback: true } forces the latter (tests).
export async function sha256Hex(bytes, { fallback = false } = {}) {
  if (!fallback && subtle()) return hexOf(new Uint8Array(await subtle().digest('SHA-256', bytes)));
  return hexOf(new Sha256().update(bytes).digest());
}

// --- What kind of file: from its first bytes, not its name -----------------

const ascii = (b, off, n) => String.fromCharCode(...b.subarray(off, off + n));

// -> { kind: 'image' | 'video' | 'other', type } from a file's first bytes.
// 'image' means a raster format a browser may be able to decode.
export function sniff(head) {
  const b = head;
  const starts = (...sig) => sig.every((v, i) => b[i] === v);
  if (starts(0xff, 0xd8, 0xff)) return { kind: 'image', type: 'image/jpeg' };
  if (starts(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a)) return { kind: 'image', type: 'image/png' };
  if (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a') return { kind: 'image', type: 'image/gif' };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return { kind: 'image', type: 'image/webp' };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'AVI ') return { kind: 'video', type: 'video/x-msvideo' };
  if (ascii(b, 0, 2) === 'BM' && b.length >= 26) return { kind: 'image', type: 'image/bmp' };
  if (starts(0x49, 0x49, 0x2a, 0x00) || starts(0x4d, 0x4d, 0x00, 0x2a)) return { kind: 'image', type: 'image/tiff' };
  if (ascii(b, 4, 4) === 'ftyp') {
    const brand = ascii(b, 8, 4);
    if (brand === 'avif' || brand === 'avis') return { kind: 'image', type: 'image/avif' };
    if (['heic', 'heix', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return { kind: 'image', type: 'image/heic' };
    if (brand === 'qt  ') return { kind: 'video', type: 'video/quicktime' };
    if (brand.startsWith('3g')) return { kind: 'video', type: 'video/3gpp' };
    return { kind: 'video', type: 'video/mp4' };
  }
  if (starts(0x1a, 0x45, 0xdf, 0xa3)) return { kind: 'video', type: 'video/webm' };
  if (starts(0x00, 0x00, 0x01, 0xba) || starts(0x00, 0x00, 0x01, 0xb3)) return { kind: 'video', type: 'video/mpeg' };
  if (starts(0x30, 0x26, 0xb2, 0x75, 0x8e, 0x66, 0xcf, 0x11)) return { kind: 'video', type: 'video/x-ms-asf' };
  if (ascii(b, 0, 3) === 'FLV') return { kind: 'video', type: 'video/x-flv' };
  return { kind: 'other', type: 'application/octet-stream' };
}

// Formats whose end is marked: a file cut short (a broken download) is
// refused as image_corrupt even if the browser shows what it has.
function truncated(type, bytes) {
  const n = bytes.length;
  if (type === 'image/jpeg') {
    // The end-of-image marker FF D9, allowing for trailing bytes some
    // cameras append after it.
    for (let i = n - 2, stop = Math.max(0, n - 65536); i >= stop; i--)
      if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return false;
    return true;
  }
  if (type === 'image/png') {
    // The IEND chunk type, near the end.
    for (let i = n - 8, stop = Math.max(0, n - 65536); i >= stop; i--)
      if (bytes[i] === 0x49 && bytes[i + 1] === 0x45 && bytes[i + 2] === 0x4e && bytes[i + 3] === 0x44) return false;
    return true;
  }
  return false;
}

// --- Reading, with a bound, a deadline and an abort signal -----------------

// One job's stop signal: the caller's AbortSignal or the deadline, which
// ever comes first.
function deadline(signal, timeoutMs) {
  const ctl = new AbortController();
  const stop = (reason) => { if (!ctl.signal.aborted) ctl.abort(reason); };
  const timer = timeoutMs > 0 ? setTimeout(() => stop('timeout'), timeoutMs) : null;
  const onAbort = () => stop('aborted');
  if (signal) { if (signal.aborted) onAbort(); else signal.addEventListener('abort', onAbort, { once: true }); }
  const error = () => new HashError(ctl.signal.reason === 'timeout' ? 'timeout' : 'aborted');
  return {
    signal: ctl.signal,
    check() { if (ctl.signal.aborted) throw error(); },
    // Settles as p does, or rejects as soon as the job is stopped.
    race(p) {
      if (ctl.signal.aborted) return Promise.reject(error());
      return new Promise((resolve, reject) => {
        const fail = () => reject(error());
        ctl.signal.addEventListener('abort', fail, { once: true });
        p.then((v) => { ctl.signal.removeEventListener('abort', fail); resolve(v); },
          (e) => { ctl.signal.removeEventListener('abort', fail); reject(e); });
      });
    },
    done() { if (timer) clearTimeout(timer); signal?.removeEventListener('abort', onAbort); },
  };
}

function checkBlob(blob, maxBytes) {
  if (!blob || typeof blob.slice !== 'function' || typeof blob.size !== 'number') throw new HashError('not_a_file');
  if (blob.size === 0) throw new HashError('empty');
  if (blob.size > maxBytes) throw new HashError('too_large');
}

async function readAll(blob, job, onProgress) {
  const bytes = new Uint8Array(blob.size);
  const md5 = new Md5();
  for (let off = 0; off < blob.size; off += CHUNK_BYTES) {
    job.check();
    let chunk;
    try {
      chunk = new Uint8Array(await job.race(blob.slice(off, Math.min(blob.size, off + CHUNK_BYTES)).arrayBuffer()));
    } catch (e) {
      if (e instanceof HashError) throw e;
      throw new HashError('read_failed');
    }
    md5.update(chunk);
    bytes.set(chunk, off);
    onProgress?.({ phase: 'read', done: Math.min(blob.size, off + CHUNK_BYTES), total: blob.size });
  }
  job.check();
  return { bytes, md5: hexOf(md5.digest()) };
}

// hashBytes(blob[, opts]) -> { type, kind, size, sha256, md5 }: the exact
// hashes of any file, read CHUNK_BYTES at a time. opts: signal (an
// AbortSignal), timeoutMs, maxBytes (at most MAX_FILE_BYTES unless given),
// onProgress({ phase, done, total }).
export async function hashBytes(blob, opts = {}) {
  const job = deadline(opts.signal, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    const { exact } = await exactHashes(blob, job, opts);
    return exact;
  } finally {
    job.done();
  }
}

async function exactHashes(blob, job, opts) {
  checkBlob(blob, opts.maxBytes ?? MAX_FILE_BYTES);
  job.check();
  const { bytes, md5 } = await readAll(blob, job, opts.onProgress);
  const sha256 = await job.race(sha256Hex(bytes));
  const { kind, type } = sniff(bytes.subarray(0, 64));
  return { bytes, exact: { type, kind, size: blob.size, sha256, md5 } };
}

// --- Decoding a picture to pixels -----------------------------------------

function canvasFor(w, h) {
  if (typeof OffscreenCanvas === 'function') return new OffscreenCanvas(w, h);
  if (typeof document !== 'undefined') {
    const c = document.createElement('canvas');
    c.width = w; c.height = h;
    return c;
  }
  return null;
}

// Decodes blob and returns its luminance (Float32Array, height x width)
// without keeping the whole RGBA picture in script memory: the canvas is
// read back BAND_ROWS rows at a time. Decoding ignores any embedded colour
// profile (as the reference decoders do) and applies EXIF orientation (the
// picture as it is seen; the dihedral hashes cover the other ways round).
export async function decodeLuminance(blob, { maxPixels = MAX_IMAGE_PIXELS, job } = {}) {
  if (typeof createImageBitmap !== 'function' || !canvasFor(1, 1)) throw new HashError('no_decoder');
  let bitmap;
  try {
    const p = createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none', imageOrientation: 'from-image' });
    // A bitmap that arrives after the job was stopped is closed.
    p.then((bm) => { if (job?.signal.aborted) bm.close(); }, () => {});
    bitmap = job ? await job.race(p) : await p;
  } catch (e) {
    if (e instanceof HashError) throw e;
    throw new HashError('image_corrupt');
  }
  try {
    const { width, height } = bitmap;
    if (!width || !height) throw new HashError('image_corrupt');
    if (width * height > maxPixels) throw new HashError('image_too_big');
    const canvas = canvasFor(width, height);
    const ctx = canvas.getContext('2d', { willReadFrequently: true, alpha: true });
    if (!ctx) throw new HashError('no_decoder');
    ctx.drawImage(bitmap, 0, 0);
    const luma = new Float32Array(width * height);
    for (let y = 0; y < height; y += BAND_ROWS) {
      job?.check();
      const rows = Math.min(BAND_ROWS, height - y);
      luminanceInto(ctx.getImageData(0, y, width, rows).data, 4, luma, y * width);
    }
    canvas.width = canvas.height = 1; // let the pixels go now
    return { luma, width, height };
  } finally {
    bitmap.close();
  }
}

// hashFile(file[, opts]) -> for a picture { kind: 'image', type, size,
// sha256, md5, pdq, quality, lowQuality, width, height } (plus pdqDihedral,
// the eight rotated and mirrored PDQ hashes, if opts.dihedral); for a video
// { kind: 'video', type, size, sha256, md5, pdq: null, quality: null,
// lowQuality: null }. type is from the file's bytes, not its name.
// lowQuality: quality below PDQ_QUALITY_THRESHOLD (50), the level under
// which hash-sharing partners usually discard a PDQ hash; the exact hashes
// still stand. opts as hashBytes, plus maxPixels and dihedral. Throws a
// HashError (see ERRORS).
export async function hashFile(file, opts = {}) {
  const job = deadline(opts.signal, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    const { bytes, exact } = await exactHashes(file, job, opts);
    const { kind, type } = exact;
    if (kind === 'video') return { ...exact, pdq: null, quality: null, lowQuality: null };
    if (kind !== 'image') {
      // Named as a picture but not one by its bytes: a damaged picture.
      if (/^image\//.test(file.type ?? '')) throw new HashError('image_corrupt', strip(exact));
      throw new HashError('not_image');
    }
    if (truncated(type, bytes)) throw new HashError('image_corrupt', strip(exact));
    opts.onProgress?.({ phase: 'decode', done: 0, total: 1 });
    let pic;
    try {
      pic = await decodeLuminance(new Blob([bytes], { type }), { maxPixels: opts.maxPixels ?? MAX_IMAGE_PIXELS, job });
    } catch (e) {
      if (!(e instanceof HashError)) throw e;
      // Formats a browser commonly cannot read are "unsupported", not broken.
      const code = e.code === 'image_corrupt' && ['image/heic', 'image/tiff', 'image/avif'].includes(type) ? 'image_unsupported' : e.code;
      if (code === 'aborted' || code === 'timeout') throw e;
      throw new HashError(code, strip(exact));
    }
    job.check();
    opts.onProgress?.({ phase: 'pdq', done: 0, total: 1 });
    const p = pdqHashLuminance(pic.luma, pic.width, pic.height, { dihedral: !!opts.dihedral });
    job.check();
    const out = { ...exact, pdq: p.hash, quality: p.quality, lowQuality: p.quality < PDQ_QUALITY_THRESHOLD, width: pic.width, height: pic.height };
    if (opts.dihedral) out.pdqDihedral = p.hashes;
    return out;
  } finally {
    job.done();
  }
}

const strip = ({ type, size, sha256, md5 }) => ({ type, size, sha256, md5 });

// hashFileInWorker(file[, opts]): hashFile in a module worker
// (filehash-worker.js), so that decoding and the PDQ step, which cannot be
// interrupted, never freeze the page; the worker is ended on opts.signal or
// at the deadline, whichever comes first. Same result and errors as
// hashFile (onProgress is not passed on). Without Worker, runs hashFile.
export async function hashFileInWorker(file, opts = {}) {
  if (typeof Worker !== 'function') return hashFile(file, opts);
  const { signal, timeoutMs = DEFAULT_TIMEOUT_MS, maxBytes, maxPixels, dihedral } = opts;
  checkBlob(file, maxBytes ?? MAX_FILE_BYTES);
  const job = deadline(signal, timeoutMs);
  const worker = new Worker(new URL('./filehash-worker.js', import.meta.url), { type: 'module' });
  try {
    const reply = await job.race(new Promise((resolve, reject) => {
      worker.onmessage = ({ data }) => resolve(data);
      worker.onerror = (e) => { e.preventDefault?.(); reject(new HashError('no_decoder')); };
      // The worker keeps its own deadline too; ours ends it regardless.
      worker.postMessage({ file, opts: { timeoutMs: 0, maxBytes, maxPixels, dihedral } });
    }));
    if (!reply.ok) throw new HashError(reply.code, reply.exact ?? undefined);
    return reply.result;
  } finally {
    worker.terminate();
    job.done();
  }
}
