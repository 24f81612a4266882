// Format version 2 from the spec's words alone (§4.1, §5.1–5.3), on files built field by field
// (support/build.js): the predictors' running sums restarting at each block, reference
// channels, |q| up to 2^31 − 1, clamping, float32 residuals, the exact plane rule to the bit
// (where binary32 factors would give another value), previews without the residual. The
// expected values are computed here independently (BigInt sums, the formulas as written).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as svdi from "../svdi.js";
import { IEND, denseBlock, fileOf, head, plan, rblk } from "../support/build.js";

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
