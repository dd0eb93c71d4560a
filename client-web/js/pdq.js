// pdq.js: Meta's PDQ perceptual image hash (256 bits, with a quality score),
// written for this project from the published description of the algorithm
// (ThreatExchange's pdq/README.md and the hashing paper, as summarised in
// docs/hashing.md). Pure functions over pixel arrays: the same module runs
// in the browser and under Node, and gives the same answer in both for the
// same pixels. No image decoding here (see filehash.js).
//
//   luminance (BT.601 weights on the 8-bit values, no gamma)
//   -> two passes of a box blur along rows then columns ("Jarosz filter",
//      window ceil(side / 128)), point-sampled at the centres of a 64x64 grid
//   -> quality: sum of significant neighbour gradients on the 64x64 grid
//   -> 16x16 DCT-II (frequencies 1..16 on each axis, DC dropped)
//   -> bit k = i*16 + j set iff the coefficient is above the median
//   -> 64 hex digits, the big-endian form of sum(bit_k << k).
//
// Arithmetic is in doubles (stored as float32 between passes); the C++
// reference works in float32, so a value lying within float rounding of the
// median could flip a bit there. See docs/hashing.md for measured distances.

export const PDQ_BITS = 256;
// Upstream's operating points: hashes of quality below 50 are usually
// discarded (the README says "quality <= 49"), and a distance of 31 bits or
// fewer is usually treated as a match.
export const PDQ_QUALITY_THRESHOLD = 50;
export const PDQ_MATCH_THRESHOLD = 31;

const GRID = 64;     // the downsampled image is GRID x GRID
const DCT_N = 16;    // keep DCT_N x DCT_N coefficients
const MIN_SIDE = 5;  // smaller images hash to all zeros, quality 0
const ZERO_HASH = '0'.repeat(64);

// The 16x64 DCT-II matrix, rows for frequencies 1..16.
const DCT = (() => {
  const m = new Float64Array(DCT_N * GRID);
  const scale = Math.sqrt(2 / GRID);
  for (let i = 0; i < DCT_N; i++)
    for (let j = 0; j < GRID; j++)
      m[i * GRID + j] = scale * Math.cos((Math.PI / (2 * GRID)) * (i + 1) * (2 * j + 1));
  return m;
})();

// Works out how pixels are laid out: 4 values a pixel (RGBA, as from
// canvas getImageData), 3 (RGB) or 1 (grey or a precomputed luminance).
function channelsOf(pixels, width, height, channels) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0)
    throw new RangeError('pdq: width and height must be non-negative integers');
  if (!pixels || typeof pixels.length !== 'number')
    throw new TypeError('pdq: pixels must be an array of pixel values');
  const n = width * height;
  if (channels === undefined) {
    if (n > 0 && pixels.length === n * 4) return 4;
    if (n > 0 && pixels.length === n * 3) return 3;
    if (pixels.length === n) return 1;
    throw new RangeError(`pdq: ${pixels.length} values do not fit ${width}x${height} pixels of 1, 3 or 4 channels`);
  }
  if (![1, 3, 4].includes(channels) || pixels.length !== n * channels)
    throw new RangeError(`pdq: ${pixels.length} values do not fit ${width}x${height} pixels of ${channels} channels`);
  return channels;
}

// Luminance Y = 0.299 R + 0.587 G + 0.114 B on the raw 8-bit values, as a
// Float32Array of height rows by width columns. Alpha is ignored (as when a
// reference decoder drops it); 1-channel input is copied as is.
export function luminance(pixels, width, height, channels) {
  const c = channelsOf(pixels, width, height, channels);
  const out = new Float32Array(width * height);
  luminanceInto(pixels, c, out, 0);
  return out;
}

// The same, for a band of rows decoded separately: writes the luminance of
// pixels (c channels a pixel) into out from index offset. Returns the
// number of pixels written.
export function luminanceInto(pixels, c, out, offset) {
  const n = Math.floor(pixels.length / c);
  if (c === 1) {
    for (let i = 0; i < n; i++) out[offset + i] = pixels[i];
    return n;
  }
  for (let i = 0, p = 0; i < n; i++, p += c)
    out[offset + i] = 0.299 * pixels[p] + 0.587 * pixels[p + 1] + 0.114 * pixels[p + 2];
  return n;
}

// A box (moving-average) filter of window w along one line, from src to dst
// (which may be the same array): output o is the mean of the inputs from
// o - (w - h) to o + h - 1 with h = floor((w + 2) / 2), clipped to the line,
// divided by the number of samples inside. prefix is scratch of length n + 1.
function boxLine(src, srcOff, stride, n, w, prefix, dst, dstOff, dstStride) {
  let s = 0;
  prefix[0] = 0;
  for (let k = 0; k < n; k++) { s += src[srcOff + k * stride]; prefix[k + 1] = s; }
  const h = (w + 2) >> 1, back = w - h;
  for (let o = 0; o < n; o++) {
    const lo = o - back < 0 ? 0 : o - back;
    const hi = o + h - 1 > n - 1 ? n - 1 : o + h - 1;
    dst[dstOff + o * dstStride] = (prefix[hi + 1] - prefix[lo]) / (hi - lo + 1);
  }
}

// The 64x64 grid from a luminance matrix: two iterations of (box blur along
// rows, then along columns), then the value at the centre of each cell.
// Only the values that reach the grid are computed in the second iteration
// (a column pass reads only its own column), which gives the same numbers.
// luma is modified in place.
function downsample(luma, width, height) {
  const out = new Float64Array(GRID * GRID);
  if (width === GRID && height === GRID) {
    for (let i = 0; i < GRID * GRID; i++) out[i] = luma[i];
    return out;
  }
  const wx = Math.ceil(width / 128), wy = Math.ceil(height / 128);
  const prefix = new Float64Array(Math.max(width, height) + 1);
  const line = new Float64Array(Math.max(width, height));
  // Iteration 1, rows then columns, in place.
  if (wx > 1) for (let y = 0; y < height; y++) boxLine(luma, y * width, 1, width, wx, prefix, luma, y * width, 1);
  if (wy > 1)
    for (let x = 0; x < width; x++) {
      boxLine(luma, x, width, height, wy, prefix, line, 0, 1);
      for (let y = 0; y < height; y++) luma[y * width + x] = line[y];
    }
  // Iteration 2: rows, kept only at the 64 sample columns...
  const cols = new Int32Array(GRID), rows = new Int32Array(GRID);
  for (let i = 0; i < GRID; i++) {
    cols[i] = Math.floor(((2 * i + 1) * width) / (2 * GRID));
    rows[i] = Math.floor(((2 * i + 1) * height) / (2 * GRID));
  }
  const picked = new Float64Array(height * GRID); // height rows x 64 columns
  for (let y = 0; y < height; y++) {
    if (wx > 1) boxLine(luma, y * width, 1, width, wx, prefix, line, 0, 1);
    else for (let x = 0; x < width; x++) line[x] = luma[y * width + x];
    for (let j = 0; j < GRID; j++) picked[y * GRID + j] = line[cols[j]];
  }
  // ...then columns, kept only at the 64 sample rows.
  for (let j = 0; j < GRID; j++) {
    if (wy > 1) boxLine(picked, j, GRID, height, wy, prefix, line, 0, 1);
    else for (let y = 0; y < height; y++) line[y] = picked[y * GRID + j];
    for (let i = 0; i < GRID; i++) out[i * GRID + j] = line[rows[i]];
  }
  return out;
}

// Quality 0..100: over every horizontally and vertically adjacent pair of
// the 64x64 grid, the sum of |trunc((u - v) * 100 / 255)|, divided by 90.
function qualityOf(g) {
  let sum = 0;
  for (let i = 0; i < GRID; i++)
    for (let j = 0; j < GRID; j++) {
      const u = g[i * GRID + j];
      if (i + 1 < GRID) sum += Math.abs(Math.trunc(((u - g[(i + 1) * GRID + j]) * 100) / 255));
      if (j + 1 < GRID) sum += Math.abs(Math.trunc(((u - g[i * GRID + j + 1]) * 100) / 255));
    }
  return Math.min(100, Math.floor(sum / 90));
}

// B = D A D^T: B[i*16 + j] has vertical frequency i+1, horizontal j+1.
function dct16(g) {
  const t = new Float64Array(DCT_N * GRID);
  for (let i = 0; i < DCT_N; i++)
    for (let y = 0; y < GRID; y++) {
      const d = DCT[i * GRID + y];
      for (let x = 0; x < GRID; x++) t[i * GRID + x] += d * g[y * GRID + x];
    }
  const b = new Float64Array(DCT_N * DCT_N);
  for (let i = 0; i < DCT_N; i++)
    for (let j = 0; j < DCT_N; j++) {
      let s = 0;
      for (let x = 0; x < GRID; x++) s += t[i * GRID + x] * DCT[j * GRID + x];
      b[i * DCT_N + j] = s;
    }
  return b;
}

// Bits above the (lower) median of the 256 coefficients, as 64 hex digits:
// the hex digit at position c holds bits 4*(63-c) .. 4*(63-c)+3.
function bitsToHex(b) {
  const sorted = Float64Array.from(b).sort();
  const median = sorted[(b.length >> 1) - 1];
  let hex = '';
  for (let c = 0; c < 64; c++) {
    const k = 4 * (63 - c);
    const nib = (b[k] > median ? 1 : 0) | (b[k + 1] > median ? 2 : 0) |
      (b[k + 2] > median ? 4 : 0) | (b[k + 3] > median ? 8 : 0);
    hex += nib.toString(16);
  }
  return hex;
}

// The eight dihedral transforms of the image, as operations on B (derived
// from the DCT basis: mirroring an axis multiplies frequency k by (-1)^k,
// and swapping the axes transposes B). Names say what was done to the image:
// rotate90 is a quarter turn clockwise; transpose mirrors about the main
// (top-left to bottom-right) diagonal, transverse about the other one.
// (Upstream's test files name them differently: its "rotate-90" is our
// rotate270, "flipx" our flipY, "flip-plus-1" our transpose and
// "flip-minus-1" our transverse; see docs/hashing.md.)
const DIHEDRAL = {
  original: [false, false, false],
  rotate90: [true, false, true],
  rotate180: [false, true, true],
  rotate270: [true, true, false],
  flipX: [false, false, true],    // mirrored left to right
  flipY: [false, true, false],    // mirrored top to bottom
  transpose: [true, false, false],
  transverse: [true, true, true],
};

// [swap axes, negate odd frequencies of the output's rows, ... of its
// columns]; frequency k = index + 1, so odd frequencies are even indices.
function transformDct(b, [swap, negRows, negCols]) {
  const out = new Float64Array(DCT_N * DCT_N);
  for (let i = 0; i < DCT_N; i++)
    for (let j = 0; j < DCT_N; j++) {
      let v = swap ? b[j * DCT_N + i] : b[i * DCT_N + j];
      if (negRows && (i & 1) === 0) v = -v;
      if (negCols && (j & 1) === 0) v = -v;
      out[i * DCT_N + j] = v;
    }
  return out;
}

function fromLuma(luma, width, height) {
  if (width < MIN_SIDE || height < MIN_SIDE) return null;
  const grid = downsample(luma, width, height);
  return { grid, quality: qualityOf(grid), dct: dct16(grid) };
}

function core(pixels, width, height, channels) {
  const c = channelsOf(pixels, width, height, channels);
  // The blur works in place, so a 1-channel input is copied first.
  return fromLuma(luminance(pixels, width, height, c), width, height);
}

function result(r, dihedral) {
  if (!dihedral) return r ? { hash: bitsToHex(r.dct), quality: r.quality } : { hash: ZERO_HASH, quality: 0 };
  const hashes = {};
  for (const [name, t] of Object.entries(DIHEDRAL)) hashes[name] = r ? bitsToHex(transformDct(r.dct, t)) : ZERO_HASH;
  return { hash: hashes.original, hashes, quality: r ? r.quality : 0 };
}

// The hash of a luminance matrix (a Float32Array of height x width values
// 0..255, as luminanceInto builds it), which it uses as scratch: the array
// is overwritten. With dihedral, also { hashes } as pdqHashDihedral.
export function pdqHashLuminance(luma, width, height, { dihedral = false } = {}) {
  if (!(luma instanceof Float32Array) || luma.length !== width * height)
    throw new RangeError('pdq: luminance must be a Float32Array of width x height values');
  return result(fromLuma(luma, width, height), dihedral);
}

// pdqHash(pixels, width, height[, channels]) -> { hash, quality }.
// pixels: RGBA (e.g. ImageData.data), RGB, or one value a pixel, row-major
// from the top-left; channels is worked out from the length if not given.
// hash is 64 lowercase hex digits; quality is an integer 0..100.
export function pdqHash(pixels, width, height, channels) {
  return result(core(pixels, width, height, channels), false);
}

// pdqHashDihedral(...) -> { hash, hashes: { original, rotate90, ... },
// quality }: the hashes of the eight rotations and mirror images, derived
// from one DCT (hash = hashes.original). An actually rotated image, being
// blurred and sampled on a different grid, can differ by a few bits.
export function pdqHashDihedral(pixels, width, height, channels) {
  return result(core(pixels, width, height, channels), true);
}

const HEX64 = /^[0-9a-f]{64}$/i;
const POP4 = [0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4];

// Hamming distance (0..256) between two hashes given as 64 hex digits.
export function hamming(a, b) {
  if (!HEX64.test(a) || !HEX64.test(b)) throw new TypeError('pdq: a hash is 64 hex digits');
  let d = 0;
  for (let i = 0; i < 64; i++) d += POP4[parseInt(a[i], 16) ^ parseInt(b[i], 16)];
  return d;
}

// True if hash is within PDQ_MATCH_THRESHOLD of any of the candidates
// (e.g. the eight dihedral hashes of another image).
export function pdqMatches(hash, candidates, threshold = PDQ_MATCH_THRESHOLD) {
  return candidates.some((c) => hamming(hash, c) <= threshold);
}
