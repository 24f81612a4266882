// Format version 3 from the spec's words alone (§2, §5.2): Y′CbCr of 16-bit samples, on files
// built field by field (support/build.js). Rank-1 plain planes with Δ = 1, σ = 1 and F = 0 make
// every plane value the integer A_i·B_j (§5.1: W = 1); the expected samples are computed here
// independently, in BigInt with an explicit floor division, from §5.2's formulas as written.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as svdi from "../svdi.js";
import { IEND, denseBlock, fileOf, head, plan } from "../support/build.js";

const K = [91882n, -22553n, -46801n, 116130n]; // R from Cr, G from Cb, G from Cr, B from Cb

/** floor(a / b) for BigInts (BigInt's `/` truncates towards zero). */
function floorDiv(a, b) {
  const q = a / b;
  return q * b > a ? q - 1n : q;
}

/** floor(clamp(fl64(fl64(p·scale) + offset + ½), 0, 65535)) as a BigInt. */
function sample(p, scale, offset) {
  const v = p * scale + (offset + 0.5);
  return BigInt(Math.floor(Math.min(65535, Math.max(0, v))));
}

/** §5.2, version 3: one pixel's R, G, B from its plane values (chroma already upsampled). */
function rgb(y, cb, cr, scale) {
  const Y = sample(y, scale, 0), xb = sample(cb, scale, 32768) - 32768n, xr = sample(cr, scale, 32768) - 32768n;
  const clamp = (v) => Number(v < 0n ? 0n : v > 65535n ? 65535n : v);
  return [clamp(Y + floorDiv(K[0] * xr + 32768n, 65536n)),
    clamp(Y + floorDiv(K[1] * xb + K[2] * xr + 32768n, 65536n)),
    clamp(Y + floorDiv(K[3] * xb + 32768n, 65536n))];
}

/** A rank-1 plain plane of the given integer factors (a: rows, b: columns), exact (F = 0). */
function rankOne(index, a, b) {
  return [plan({ index, height: a.length, width: b.length, rank: 1, step: 1, shift: 0 }),
    [denseBlock("SBLK", { plane: index, values: [1] }, 1),
      denseBlock("VBLK", { plane: index, values: b }, 1),
      denseBlock("UBLK", { plane: index, values: a }, 1)]];
}

function file({ width, height, scale, subsampling = 0, planes, version = 3 }) {
  const parts = planes.map(([a, b], i) => rankOne(i, a, b));
  return fileOf([head({ version, width, height, dtype: "uint16", channels: planes.length, colour: 1, subsampling, scale }),
    ...parts.map(([p]) => p), ...parts.flatMap(([, blocks]) => blocks), IEND]);
}

const outer = (a, b) => a.flatMap((x) => b.map((y) => x * y));

test("16-bit Y′CbCr 4:4:4 (§5.2): rounding with +32768 for chroma, the integer inverse, clamping", () => {
  const scale = 257.25;
  const planes = [[[1, 2], [60, 120, 200, 255]], [[1, -1], [-100, -30, 7, 90]], [[1, -1], [50, -80, 127, -127]]];
  const image = svdi.decode(file({ width: 4, height: 2, scale, planes }));
  assert.equal(image.dtype, "uint16");
  assert.ok(image.data instanceof Uint16Array);
  const [Y, Cb, Cr] = planes.map(([a, b]) => outer(a, b));
  const expected = Y.flatMap((y, i) => rgb(y, Cb[i], Cr[i], scale));
  assert.deepEqual(Array.from(image.data), expected);
  // Both ends of the range are reached: the clamps are exercised.
  assert.ok(expected.includes(0) && expected.includes(65535));
});

test("16-bit Y′CbCr with alpha: plane 3 is a colour-0 plane of HEAD's scale", () => {
  const scale = 100;
  const planes = [[[1], [30, 250, 99]], [[1], [-5, 0, 5]], [[1], [9, -9, 0]], [[1], [0, 200, 700]]];
  const image = svdi.decode(file({ width: 3, height: 1, scale, planes }));
  const alpha = [0, 20000, 65535]; // 700·100 + ½ clamps to 65535
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(Array.from(image.data.subarray(4 * i, 4 * i + 3)), rgb(planes[0][1][i], planes[1][1][i], planes[2][1][i], scale));
    assert.equal(image.data[4 * i + 3], alpha[i]);
  }
});

test("16-bit Y′CbCr 4:2:0: chroma doubled as for 8 bits (3/4, 1/4; binary64 sums, binary32 rows)", () => {
  const scale = 257;
  const cb = [[1, -2], [40, -70]], cr = [[3, 1], [-20, 33]];
  const planes = [[[1, 2, 3, 4], [10, 20, 30, 40]], cb, cr];
  const image = svdi.decode(file({ width: 4, height: 4, scale, subsampling: 1, planes }));
  /** Doubling of a 2 × 2 plane by §5.2's filter, each pass rounded to binary32. */
  const double = ([a, b]) => {
    const p = [0, 1].map((i) => [0, 1].map((j) => a[i] * b[j]));
    const along = (v) => [v[0], Math.fround(0.75 * v[0] + 0.25 * v[1]), Math.fround(0.25 * v[0] + 0.75 * v[1]), v[1]];
    const rows = p.map(along); // horizontal pass: 2 rows of 4
    const cols = [0, 1, 2, 3].map((x) => along([rows[0][x], rows[1][x]]));
    return [0, 1, 2, 3].flatMap((y) => [0, 1, 2, 3].map((x) => cols[x][y]));
  };
  const Y = outer(...planes[0]), Cb = double(cb), Cr = double(cr);
  assert.deepEqual(Array.from(image.data), Y.flatMap((y, i) => rgb(y, Cb[i], Cr[i], scale)));
});

test("16-bit Y′CbCr is version 3's: a version 2 header holding it is refused", () => {
  const planes = [[[1], [1, 2]], [[1], [0, 0]], [[1], [0, 0]]];
  assert.throws(() => svdi.decode(file({ width: 2, height: 1, scale: 1, planes, version: 2 })),
    (e) => e instanceof svdi.SvdiError && /Y'CbCr transform needs 8-bit RGB or RGBA/.test(e.message));
});

test("readFactors: 16-bit Y′CbCr's σ in sample units (σ·scale), as colour 0's", () => {
  const planes = [[[1, 2], [3, 4]], [[1, 1], [0, 1]], [[1, 1], [1, 0]]];
  const factors = svdi.readFactors(file({ width: 2, height: 2, scale: 300, planes }));
  assert.deepEqual(factors.map((f) => Array.from(f.S)), [[300], [300], [300]]);
});
