// Format version 2 from the spec's words alone (§3.1, §4.1, §5.1–5.3), on files built field by
// field (support/build.js): the predictors' running sums restarting at each block, reference
// channels, |q| up to 2^31 − 1, clamping, float32 residuals, the exact plane rule to the bit
// (where binary32 factors would give another value), previews without the residual; the array
// types' sample and residual rules (half up with the floor, 32-bit clamps, float64 kept in
// binary64) and the column means' one binary64 addition. The expected values are computed here
// independently (BigInt sums, the formulas as written).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as svdi from "../svdi.js";
import { IEND, denseBlock, fileOf, head, meanChunk, plan, rblk } from "../support/build.js";

let seed = 7;
const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
const integers = (n, lo, hi) => Array.from({ length: n }, () => lo + Math.floor(random() * (hi - lo + 1)));

/** Zero planes (rank 0), one per channel: the samples are then the residual alone. */
function zeroPlanes(channels, height, width) {
  return Array.from({ length: channels }, (_, index) => plan({ index, height, width }));
}

/** The spec's running sums (§4 table) of one grid, in BigInt, as Numbers. */
function undoPredictor(grid, rows, width, predictor) {
  const g = grid.map(BigInt);
  if (predictor === 2 || predictor === 3) {
    for (let y = 1; y < rows; y++) for (let x = 0; x < width; x++) g[y * width + x] += g[(y - 1) * width + x];
  }
  if (predictor === 1 || predictor === 3) {
    for (let y = 0; y < rows; y++) for (let x = 1; x < width; x++) g[y * width + x] += g[y * width + x - 1];
  }
  return g.map(Number);
}

const clamp = (v, top) => Math.min(top, Math.max(0, v));

test("each predictor's running sums, restarting at every block (uint8 and uint16, clamped)", () => {
  const width = 13, height = 9;
  for (const [dtype, top, step] of [["uint8", 255, 1], ["uint16", 65535, 3]]) {
    for (const predictors of [[0, 1], [2, 3], [3, 2], [1, 0]]) {
      const cut = 4;
      const grids = [integers(cut * width, -40, 40), integers((height - cut) * width, -40, 40)];
      const bytes = fileOf([head({ width, height, dtype }), ...zeroPlanes(1, height, width),
        rblk({ rows: cut, predictor: predictors[0], grid: grids[0], step, element: "int8" }),
        rblk({ first: cut, rows: height - cut, predictor: predictors[1], grid: grids[1], step, element: "int16" }),
        IEND]);
      const q = [...undoPredictor(grids[0], cut, width, predictors[0]),
        ...undoPredictor(grids[1], height - cut, width, predictors[1])];
      const image = svdi.decode(bytes);
      assert.equal(image.dtype, dtype);
      assert.deepEqual(Array.from(image.data), q.map((v) => clamp(v * step, top)), `${dtype} ${predictors}`);
    }
  }
});

test("a reference channel adds its q (not its samples) to the referencing channel's", () => {
  const width = 7, height = 6, cut = 2;
  const d = [0, 1, 2].map(() => integers(height * width, -300, 300));
  // G (channel 1) has no reference; R and B reference it, each block right after G's of the same
  // rows (the reference encoder's order), G with step 2 so that its samples differ from its q.
  const blocks = [];
  for (const [first, rows] of [[0, cut], [cut, height - cut]]) {
    const part = (c) => d[c].slice(first * width, (first + rows) * width);
    blocks.push(rblk({ channel: 1, first, rows, step: 2, grid: part(1), element: "int16" }));
    blocks.push(rblk({ channel: 0, reference: 1, first, rows, grid: part(0), element: "int16" }));
    blocks.push(rblk({ channel: 2, reference: 1, first, rows, step: 3, grid: part(2), element: "int16" }));
  }
  const image = svdi.decode(fileOf([head({ width, height, channels: 3 }), ...zeroPlanes(3, height, width), ...blocks, IEND]));
  for (let i = 0; i < width * height; i++) {
    const qG = d[1][i];
    assert.deepEqual(Array.from(image.data.subarray(3 * i, 3 * i + 3)),
      [clamp(d[0][i] + qG, 255), clamp(2 * qG, 255), clamp(3 * (d[2][i] + qG), 255)], `pixel ${i}`);
  }
});

test("|q| up to 2^31 − 1 is valid, directly and with a reference's q added", () => {
  const width = 4, height = 1, max = 2 ** 31 - 1;
  const bytes = fileOf([head({ width, height, channels: 2 }), ...zeroPlanes(2, height, width),
    rblk({ channel: 0, rows: 1, grid: [max, -max, 5, 0] }),
    rblk({ channel: 1, reference: 0, rows: 1, grid: [0, 0, -max + 5, max - 1] }), IEND]);
  assert.deepEqual(Array.from(svdi.decode(bytes).data), [255, 255, 0, 0, 5, 0, 0, 255]);
});

/** A 2 × 2 float32 image whose plane has rank 2 (plain layout), Δ = 1, F = 30 and
 * σ = (fl32(1 − 2^−24), 1): W = (2^30 + 64, 2^30). With A = [[1, −1], [1, 0]] and
 * B = [[1, 1], [0, 1]], V = [[64, −2^30], [2^30 + 64, 0]] and X̂ = fl32(V·2^−30) =
 * [[2^−24, −1], [1, 0]] (1 + 2^−24 is a tie, rounded to even). Binary32 factors would round
 * 2^30 + 64 to 2^30 and give 0 where the exact rule gives 2^−24. */
function exactPlaneChunks(extra = []) {
  const sigma0 = Math.fround(1 - 2 ** -24);
  return [head({ width: 2, height: 2, dtype: "float32" }),
    plan({ height: 2, width: 2, rank: 2, step: 1, shift: 30 }),
    denseBlock("SBLK", { values: [sigma0, 1] }, 2),
    denseBlock("UBLK", { values: [1, 1, -1, 0] }, 2), // component 0 (rows 0, 1), then component 1
    denseBlock("VBLK", { values: [1, 0, 1, 1] }, 2),
    ...extra, IEND];
}

test("the exact reconstruction (§5.1): integer weights, exact sums, one rounding to binary32", () => {
  const sigma0 = Math.fround(1 - 2 ** -24);
  // The weights by the spec's formula, independently: floor(2^F·y + ½) with the exact real.
  const weight = (sigma) => {
    const y = (1 * 1) / sigma;
    return Math.floor(y * 2 ** 30 + 0.5); // exact here: y·2^30 has no bits below 2^-23
  };
  assert.deepEqual([weight(sigma0), weight(1)], [2 ** 30 + 64, 2 ** 30]);
  const image = svdi.decode(fileOf(exactPlaneChunks()));
  assert.deepEqual(Array.from(image.data), [2 ** -24, -1, 1, 0]);
  assert.equal(svdi.readHeader(fileOf(exactPlaneChunks())).planes[0].shift, 30);
});

test("float32 residual: fl32(x̂ + fl64(q·t)), applied to the exact samples", () => {
  const t = 0.1;
  const q = [3, -7, 1, 2 ** 31 - 1];
  const bytes = fileOf(exactPlaneChunks([rblk({ rows: 2, step: t, bound: 0.05, grid: q })]));
  const x = [2 ** -24, -1, 1, 0];
  assert.deepEqual(Array.from(svdi.decode(bytes).data), x.map((v, i) => Math.fround(v + q[i] * t)));
  // A preview of fewer components is the low-rank layer alone, without the residual (§5.3) …
  const file = svdi.open(bytes);
  assert.equal(file.isComplete(1), false);
  assert.deepEqual(Array.from(svdi.decode(bytes, { components: 1 }).data), Array.from(file.reconstruct(1).data));
  assert.deepEqual(Array.from(file.reconstruct(1).data), [1, 0, 1, 0].map((v) => Math.fround(v * (2 ** 30 + 64) * 2 ** -30)));
  // … and with every component it is the corrected image.
  assert.deepEqual(Array.from(file.reconstruct(2).data), Array.from(svdi.decode(bytes).data));
  assert.deepEqual(file.residualBlocks().map((b) => [b.channel, b.rows, b.step, b.bound, b.elementType]),
    [[0, 2, 0.1, 0.05, "int32"]]);
});

test("W_k = 2^53 is valid when the bound holds (A = 0); a version 2 file needs no RBLK", () => {
  const bytes = fileOf([head({ width: 3, height: 2 }), plan({ height: 2, width: 3, rank: 1, step: 1, shift: 53 }),
    denseBlock("SBLK", { values: [1] }, 1), denseBlock("UBLK", { values: [0, 0] }, 1),
    denseBlock("VBLK", { values: [1, 2, 3] }, 1), IEND]);
  assert.deepEqual(Array.from(svdi.decode(bytes).data), [0, 0, 0, 0, 0, 0]);
});

test("the bound M_A·M_B·ΣW < 2^53 holds just below 2^53", () => {
  // W = 2^40 (Δ = σ = 1, F = 40); M_A·M_B = 2^13 − 1: the product is 2^53 − 2^40.
  const bytes = fileOf([head({ width: 1, height: 1, dtype: "float32" }),
    plan({ height: 1, width: 1, rank: 1, step: 1, shift: 40 }), denseBlock("SBLK", { values: [1] }, 1),
    denseBlock("UBLK", { values: [8191] }, 1), denseBlock("VBLK", { values: [-1] }, 1), IEND]);
  assert.deepEqual(Array.from(svdi.decode(bytes).data), [-8191]);
});

test("float32 samples of a scale above 2^64 are computed in binary64 and saturate (§5.2, both versions)", () => {
  // Plane values 1, 2^23 and −2^23 (rank 1: A = (1, 2^23, −2^23)ᵀ, B = (1), Δ = σ = 1; version 2
  // with F = 20) times a scale of 2^119: the last two pass binary32's range and become
  // ±(2 − 2^−23)·2^127 instead of making the file invalid.
  const max = (2 - 2 ** -23) * 2 ** 127;
  for (const version of [1, 2]) {
    const bytes = fileOf([head({ version, width: 1, height: 3, dtype: "float32", scale: 2 ** 119 }),
      plan({ height: 3, width: 1, rank: 1, step: 1, shift: version === 2 ? 20 : null }),
      denseBlock("SBLK", { values: [1] }, 1), denseBlock("UBLK", { values: [1, 2 ** 23, -(2 ** 23)] }, 1),
      denseBlock("VBLK", { values: [1] }, 1), IEND]);
    assert.deepEqual(Array.from(svdi.decode(bytes).data), [2 ** 119, max, -max], `version ${version}`);
  }
});

/** A width-1 image of one rank-1 plane (plain, Δ = 1, σ = 2^F: W = 1) whose plane values are
 * exactly the integers `values` (A = values, B = 1), with the given HEAD fields and chunks. */
function columnOf(values, { dtype, scale = 1, shift = 0, extra = [], means = [] }) {
  const height = values.length;
  return fileOf([head({ width: 1, height, dtype, scale }), plan({ height, width: 1, rank: 1, step: 1, shift }),
    ...means, denseBlock("SBLK", { values: [2 ** shift] }, 1), denseBlock("UBLK", { values }, 1),
    denseBlock("VBLK", { values: [1] }, 1), ...extra, IEND]);
}

test("signed integer samples round half up with the floor and clamp (§5.2): −2.5 → −2, 2.5 → 3", () => {
  const p = [-5, 5, -1, 1, -3, 3, -300, 300, 0];
  const halfUp = (v, lo, hi) => Math.min(hi, Math.max(lo, Math.floor(v * 0.5 + 0.5)));
  for (const [dtype, lo, hi] of [["int8", -128, 127], ["int16", -32768, 32767], ["int32", -(2 ** 31), 2 ** 31 - 1]]) {
    const image = svdi.decode(columnOf(p, { dtype, scale: 0.5 }));
    assert.equal(image.dtype, dtype);
    assert.deepEqual(Array.from(image.data), p.map((v) => halfUp(v, lo, hi)), dtype);
  }
  assert.deepEqual(Array.from(svdi.decode(columnOf(p, { dtype: "int8", scale: 0.5 })).data), [-2, 3, 0, 1, -1, 2, -128, 127, 0]);
});

test("32-bit samples: clamped to their ranges, every value exact (§5.2)", () => {
  const p = [200, -200, 127, -128, 1, -1, 0];
  const s = 2 ** 24;
  assert.deepEqual(Array.from(svdi.decode(columnOf(p, { dtype: "int32", scale: s })).data),
    [2 ** 31 - 1, -(2 ** 31), 127 * s, -128 * s, s, -s, 0]);
  assert.deepEqual(Array.from(svdi.decode(columnOf([300, -1, 255, 1], { dtype: "uint32", scale: s })).data),
    [2 ** 32 - 1, 0, 255 * s, s]);
});

test("32-bit residuals: x̂ + q·t up to |q·t| < 2^52, exact, then clamped (§5.3)", () => {
  const t = 2 ** 21 - 1, max = 2 ** 31 - 1;
  // int32: x̂ = −2^31 + 2^24·k for plane values −128 + k (scale 2^24); uint32 from 2^32 − 1 down.
  const p = [-128, -127, 127, 0];
  const q = [1, -1, max, -max];
  const int32 = svdi.decode(columnOf(p, { dtype: "int32", scale: 2 ** 24, extra: [rblk({ rows: 4, step: t, grid: q })] }));
  const x = p.map((v) => BigInt(v) * 2n ** 24n);
  const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);
  assert.deepEqual(Array.from(int32.data).map(BigInt), x.map((v, i) => clamp(v + BigInt(q[i]) * BigInt(t), -(2n ** 31n), 2n ** 31n - 1n)));
  const u = svdi.decode(columnOf([300, 300, 0, 1], { dtype: "uint32", scale: 2 ** 24,
    extra: [rblk({ rows: 4, step: t, grid: [-1, -max, max, 1] })] }));
  assert.deepEqual(Array.from(u.data), [2 ** 32 - 1 - t, 0, 2 ** 32 - 1, 2 ** 24 + t]);
});

test("float64 samples and residuals stay in binary64 (§5.2, §5.3): fl64(p·scale), fl64(x̂ + fl64(q·t))", () => {
  // p = 1, scale = 1 + 2^−40: x̂ = 1 + 2^−40 (binary32 would give 1); q·t = 2^−45 on top.
  const scale = 1 + 2 ** -40;
  const plain = svdi.decode(columnOf([1, -3], { dtype: "float64", scale }));
  assert.ok(plain.data instanceof Float64Array);
  assert.deepEqual(Array.from(plain.data), [scale, -3 * scale]);
  const t = 0.1, q = [3, -7];
  const corrected = svdi.decode(columnOf([1, -3], { dtype: "float64", scale, extra: [rblk({ rows: 2, step: t, grid: q })] }));
  assert.deepEqual(Array.from(corrected.data), [scale + 3 * t, -3 * scale + -7 * t]);
  assert.notEqual(corrected.data[0], Math.fround(scale + 3 * t));
  const tiny = svdi.decode(columnOf([1], { dtype: "float64", scale, extra: [rblk({ rows: 1, step: 2 ** -45, grid: [1] })] }));
  assert.equal(tiny.data[0], 1 + 2 ** -40 + 2 ** -45);
});

test("column means (§5.1): X̂ = fl32(fl64(V·2^−F + μ)), one binary64 addition then one rounding", () => {
  // F = 50, σ = 2^50 (W = 1), A = 13421773, B = 5: V·2^−50 = (2^26 + 1)·2^−50 = 2^−24 + 2^−50, not
  // a binary32. With μ = 1 the binary64 sum 1 + 2^−24 + 2^−50 is exact and rounds to 1 + 2^−23;
  // rounding V·2^−F to binary32 first would give 1 + 2^−24, a tie, rounded to 1.
  const v = (2 ** 26 + 1) * 2 ** -50;
  const expected = Math.fround(v + 1);
  assert.equal(expected, 1 + 2 ** -23);
  assert.notEqual(Math.fround(Math.fround(v) + 1), expected);
  const bytes = fileOf([head({ width: 1, height: 1, dtype: "float32" }), plan({ height: 1, width: 1, rank: 1, step: 1, shift: 50 }),
    meanChunk({ values: [1] }), denseBlock("SBLK", { values: [2 ** 50] }, 1), denseBlock("UBLK", { values: [13421773] }, 1),
    denseBlock("VBLK", { values: [5] }, 1), IEND]);
  assert.equal(svdi.decode(bytes).data[0], expected);
  // A preview of 0 components adds the means all the same (§5.1).
  assert.equal(svdi.decode(bytes, { components: 0 }).data[0], 1);
});

test("column means per column, with a residual on top (int16, two columns)", () => {
  // Plane values A·1 + μ_j: rows (3, −2), columns' means (0.25, −100.5): samples round half up.
  const bytes = fileOf([head({ width: 2, height: 2, dtype: "int16", scale: 2 }),
    plan({ height: 2, width: 2, rank: 1, step: 1, shift: 0 }), meanChunk({ values: [0.25, -100.5] }),
    denseBlock("SBLK", { values: [1] }, 1), denseBlock("UBLK", { values: [3, -2] }, 1),
    denseBlock("VBLK", { values: [1, 1] }, 1), rblk({ rows: 2, step: 3, grid: [1, 0, 0, -1] }), IEND]);
  const planeValues = [3.25, -97.5, -1.75, -102.5];
  const samples = planeValues.map((p) => Math.floor(p * 2 + 0.5));
  assert.deepEqual(samples, [7, -195, -3, -205]);
  assert.deepEqual(Array.from(svdi.decode(bytes).data), [7 + 3, -195, -3, -205 - 3]);
  assert.deepEqual(Array.from(svdi.decode(bytes, { components: 0 }).data), [0.25, -100.5, 0.25, -100.5].map((p) => Math.floor(p * 2 + 0.5)));
});
