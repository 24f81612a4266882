// The JS decoder against the Python reference decoder on encodes of the sample image: qualities,
// layouts (auto, plain, patch 2/16/32), modes (L, LA, RGB 4:2:0 and 4:4:4, RGBA, odd sizes),
// uint16 and float32, and version 2's arrays (int8, int16, int32, uint32, float64, centred
// columns, 5-8 channels), full and with the first k components. Version 1 files within the
// spec's version 1 rule; version 2 files (residual blocks, exact planes, MEAN chunks) identical
// to the bit, and within the bound their residual blocks promise of the encoded image.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as svdi from "../svdi.js";
import { readNpy } from "../support/npy.js";
import { compareSamples, compareYCbCr, differingBits, specTolerance } from "../support/compare.js";
import { FIXTURES, loadFixtures } from "../support/fixtures.js";

const fixtures = loadFixtures();

test("the fixtures cover every layout, mode and sample type", () => {
  const layouts = new Set(fixtures.flatMap((f) => f.layouts));
  for (const l of ["plain", "patch2", "patch4", "patch8", "patch16", "patch32"]) assert.ok(layouts.has(l), l);
  const kinds = new Set(fixtures.map((f) => `${f.dtype}/${f.shape.length === 2 ? 1 : f.shape[2]}`));
  for (const k of ["uint8/1", "uint8/2", "uint8/3", "uint8/4", "uint16/1", "float32/1"]) assert.ok(kinds.has(k), k);
  // Version 2: lossless and bounded, every sample type, plain and patch layouts, 4:2:0 and 4:4:4.
  // Every fixture is version 5 (the encoder writes the compact container, §4.2, for every
  // file) but the v6 ones; the groups below are the features versions 2-4 and 6 added, by the
  // fixtures' names (v6_: adaptive quantization, §5.5, on plane 0 of every such fixture; v6r_:
  // the restoration filter, §5.6) and those with wrapped residual blocks (version 7: the v7_
  // fixtures of 16-bit noise, and 16-bit lossless ones whose residual spans 17 bits).
  const wrapped = (f) => svdi.open(readFileSync(`${FIXTURES}/${f.file}`)).residualBlocks()
    .some((b) => b.elementType === "wrapped int16");
  const written = (f) => (wrapped(f) ? 7 : f.name.startsWith("v6") ? 6 : 5);
  assert.ok(fixtures.every((f) => f.version === written(f)), "versions");
  // Residual blocks over a layer: every fixture with residual blocks has a plane of rank > 0
  // but the v7_ noise (and its sensor frame) and the _rank0 ones (8-bit samples, and float32
  // on the grid of 1/255), which the encoder codes with no layer; the cases about the layer
  // under a residual give an option that keeps it.
  const layered = (f) => svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).planes.some((p) => p.rank > 0);
  const bare = fixtures.filter((f) => f.source && !layered(f)).map((f) => f.name);
  assert.ok(bare.every((n) => n.startsWith("v7_") || n.endsWith("_rank0")), `residual blocks over no layer: ${bare}`);
  for (const name of ["v2_i8_lossless_rank0", "v2_f32_unit_lossless_rank0"]) assert.ok(bare.includes(name), name);
  // Version 7: wrapped blocks (element type 5) of uint16 with 1, 3 and 4 channels, lossless and
  // bounded, over no layer and over one.
  const v7 = fixtures.filter((f) => f.name.startsWith("v7_"));
  assert.ok(v7.every(wrapped), "version 7 fixtures hold wrapped blocks");
  for (const c of [1, 3, 4]) assert.ok(v7.some((f) => (f.shape[2] ?? 1) === c), `version 7 uint16/${c}`);
  assert.ok(v7.some((f) => f.options.max_error > 0) && v7.some((f) => f.options.rank > 0));
  const v6r = fixtures.filter((f) => f.name.startsWith("v6r_"));
  for (const c of [1, 3, 4]) assert.ok(v6r.some((f) => (f.shape[2] ?? 1) === c), `version 6 restored uint8/${c}`);
  assert.ok(v6r.some((f) => f.source), "version 6 restored under residual blocks");
  assert.ok(fixtures.some((f) => f.name.startsWith("v6_")
    && svdi.open(readFileSync(`${FIXTURES}/${f.file}`)).container.restoration.size > 0),
  "version 6 adapted and restored in one file");
  const v2 = fixtures.filter((f) => f.name.startsWith("v2_"));
  const v2kinds = new Set(v2.map((f) => `${f.dtype}/${f.shape.length === 2 ? 1 : f.shape[2]}`));
  for (const k of ["uint8/1", "uint8/2", "uint8/3", "uint8/4", "uint16/1", "float32/1"]) assert.ok(v2kinds.has(k), `version 2 ${k}`);
  assert.ok(v2.some((f) => f.options.max_error === 0) && v2.some((f) => f.options.max_error > 0));
  assert.ok(v2.some((f) => f.layouts.includes("plain")) && v2.some((f) => !f.layouts.includes("plain")));
  const subsampling = new Set(v2.filter((f) => f.shape[2] === 3)
    .map((f) => svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).subsampling));
  assert.deepEqual([...subsampling].sort(), [0, 1], "version 2 RGB with 4:2:0 and 4:4:4 chroma");
  // Version 2's arrays: every new sample type lossless and bounded (or lossy), centred columns
  // of float32 and float64, 5 to 8 channels.
  for (const dtype of ["int8", "int16", "int32", "uint32", "float64"]) {
    assert.ok(v2.some((f) => f.dtype === dtype && f.options.max_error === 0), `${dtype} lossless`);
    assert.ok(v2.some((f) => f.dtype === dtype && f.options.max_error > 0), `${dtype} with max_error`);
  }
  for (const dtype of ["float32", "float64"]) assert.ok(v2.some((f) => f.dtype === dtype && f.options.centre), `${dtype} centred`);
  const channels = new Set(v2.map((f) => f.shape[2] ?? 1));
  for (const c of [5, 6, 8]) assert.ok(channels.has(c), `${c} channels`);
  // Version 3: 16-bit RGB and RGBA in Y′CbCr, 4:2:0 and 4:4:4, lossy, bounded and lossless.
  const v3 = fixtures.filter((f) => f.name.startsWith("v3_"));
  for (const c of [3, 4]) assert.ok(v3.some((f) => f.dtype === "uint16" && f.shape[2] === c), `version 3 uint16/${c}`);
  const v3sub = new Set(v3.map((f) => svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).subsampling));
  assert.deepEqual([...v3sub].sort(), [0, 1], "version 3 with 4:2:0 and 4:4:4 chroma");
  assert.ok(v3.some((f) => f.options.max_error === 0) && v3.some((f) => f.options.max_error > 0));
  // Version 4: every v4_ fixture filters some plane (the encoder chose the filter), on RGB
  // 4:2:0 and 4:4:4, L, LA and RGBA, patch 2, under residual blocks.
  const v4 = fixtures.filter((f) => f.name.startsWith("v4_"));
  for (const f of v4) {
    const planes = svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).planes;
    assert.ok(planes.some((p) => p.deblock.some((v) => v > 0)), `${f.name}: a filtered plane`);
  }
  for (const c of [1, 2, 3, 4]) assert.ok(v4.some((f) => (f.shape[2] ?? 1) === c), `version 4 uint8/${c}`);
  assert.ok(v4.some((f) => f.layouts.includes("patch2")) && v4.some((f) => f.source), "patch 2, residuals");
  const v4sub = new Set(v4.filter((f) => f.shape[2] === 3)
    .map((f) => svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).subsampling));
  assert.deepEqual([...v4sub].sort(), [0, 1], "version 4 with 4:2:0 and 4:4:4 chroma");
  assert.ok(fixtures.filter((f) => !f.name.startsWith("v4_") && !f.options.deblock).every((f) =>
    svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).planes.every((p) => p.deblock.every((v) => v === 0))));
  // Version 6: every v6_ fixture adapts plane 0 (K 4) and no other plane; the others none.
  for (const f of fixtures) {
    const planes = svdi.readHeader(readFileSync(`${FIXTURES}/${f.file}`)).planes;
    const adapted = planes.map((p) => p.aq[0] !== 0);
    assert.deepEqual(adapted, planes.map((p) => f.name.startsWith("v6_") && p.index === 0), f.name);
  }
});

/** The largest |decoded − source| per channel must be within the largest bound of the channel's
 * residual blocks (compared in binary64, as the encoder verified its float32 samples). */
function checkResidualBound(image, decoded, source) {
  const channels = decoded.channels;
  const bounds = new Map();
  for (const b of image.residualBlocks()) bounds.set(b.channel, Math.max(bounds.get(b.channel) ?? 0, b.bound));
  assert.ok(bounds.size > 0, "a version 2 fixture has residual blocks");
  for (const [c, bound] of bounds) {
    let worst = 0;
    for (let i = c; i < decoded.data.length; i += channels) worst = Math.max(worst, Math.abs(decoded.data[i] - source.data[i]));
    assert.ok(worst <= bound, `channel ${c}: |decoded − source| reaches ${worst}, the file promises ${bound}`);
  }
}

for (const f of fixtures) {
  test(`agrees with the Python decoder: ${f.name} (${f.layouts.join(", ")})`, (t) => {
    const bytes = readFileSync(`${FIXTURES}/${f.file}`);
    const image = svdi.open(bytes);
    const tolerance = specTolerance(image.header.dtype, image.header.scale);
    const header = svdi.readHeader(bytes);
    assert.deepEqual(header.planes.map((p) => p.layout), f.layouts);
    assert.equal(image.header.version, f.version);
    for (const k of [null, ...f.components]) {
      const expected = readNpy(readFileSync(`${FIXTURES}/${k === null ? f.expected : `${f.name}.k${k}.npy`}`));
      const decoded = image.reconstruct(k);
      assert.deepEqual(expected.shape, f.shape);
      if (image.header.version >= 2) {
        // Versions 2 to 4: every sample the reference decoder's, bit for bit (spec §5.3), also
        // for a preview of fewer components (exact planes, without the residual).
        const differing = differingBits(decoded.data, expected.data);
        assert.equal(differing, 0, `components ${k ?? "all"}: ${differing} of ${decoded.data.length} samples differ`);
        if (k === null && f.source) checkResidualBound(image, decoded, readNpy(readFileSync(`${FIXTURES}/${f.source}`)));
        else assert.deepEqual(svdi.decode(bytes, { components: k }).data, decoded.data);
        continue;
      }
      const { max, over } = compareSamples(decoded.data, expected.data, tolerance);
      const what = `components ${k ?? "all"}: ${over} of ${decoded.data.length} samples beyond ±${tolerance} ` +
        `(largest difference ${max})`;
      if (image.header.colour === 1) {
        // Y′CbCr: the proposed rule (README "Conformance"), never more than ±3.
        const rounded = svdi.roundedYCbCr(image.header, image.planeValues(k));
        const { unexplained, viaPlanes } = compareYCbCr(rounded, decoded.data, expected.data,
          image.header.channels, svdi.ycbcrToRgb);
        assert.equal(unexplained, 0, `${what}; ${unexplained} pixels not the conversion of planes within ±1`);
        assert.ok(max <= 3, what);
        if (over) t.diagnostic(`${what}; all ${viaPlanes} such pixels are conversions of planes within ±1`);
      } else {
        assert.equal(over, 0, what);
      }
      // decode(components=k) reads only the blocks it needs, and gives the same image.
      if (k !== null) assert.deepEqual(svdi.decode(bytes, { components: k }).data, decoded.data);
    }
  });
}

test("centred files: every plane is centred and readFactors gives read_factors' means to the bit", () => {
  const centred = fixtures.filter((f) => f.options.centre);
  assert.ok(centred.length >= 3);
  for (const f of centred) {
    const bytes = readFileSync(`${FIXTURES}/${f.file}`);
    assert.ok(svdi.open(bytes).planes.every((p) => p.centred), f.name);
    const expected = readNpy(readFileSync(`${FIXTURES}/${f.means}`));
    const factors = svdi.readFactors(bytes);
    assert.deepEqual(expected.shape, [factors.length, factors[0].n]);
    factors.forEach((plane, i) => {
      const want = expected.data.subarray(i * plane.n, (i + 1) * plane.n);
      assert.equal(differingBits(plane.mean, want), 0, `${f.name} plane ${i}`);
    });
  }
  // A file without MEAN chunks has no means.
  const plain = fixtures.find((x) => x.name === "v2_i16_lossless_plain");
  assert.equal(svdi.readFactors(readFileSync(`${FIXTURES}/${plain.file}`))[0].mean, null);
});

test("readFactors agrees with the reconstruction", () => {
  const f = fixtures.find((x) => x.name === "l_q80_patch16");
  const bytes = readFileSync(`${FIXTURES}/${f.file}`);
  const [plane] = svdi.readFactors(bytes);
  assert.equal(plane.layout, "patch16");
  assert.equal(plane.n, 256);
  assert.equal(plane.U.length, plane.m * plane.rank);
  assert.equal(plane.Vt.length, plane.rank * plane.n);
  // A patch layout stores σ refitted to its quantized factors (spec §6): positive, not
  // necessarily in decreasing order.
  for (let c = 0; c < plane.rank; c++) assert.ok(Number.isFinite(plane.S[c]) && plane.S[c] > 0, "σ positive");
  // Row 0 of U·diag(S)·Vᵀ is the first patch: compare it with the decoded image.
  const image = svdi.decode(bytes);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) {
      let v = 0;
      for (let c = 0; c < plane.rank; c++) v += plane.U[c] * plane.S[c] * plane.Vt[c * plane.n + y * 16 + x];
      assert.ok(Math.abs(Math.min(255, Math.max(0, Math.round(v))) - image.data[y * image.width + x]) <= 1);
    }
  }
});

test("readFactors' S is read_factors' to the bit, and a patch layout's rows of Vt are unit", () => {
  let patches = 0;
  for (const f of fixtures) {
    if (!f.sigma) continue;
    const planes = svdi.readFactors(readFileSync(`${FIXTURES}/${f.file}`));
    assert.deepEqual(planes.map((p) => Array.from(p.S)), f.sigma, f.name);
    for (const p of planes.filter((q) => q.layout !== "plain")) {
      patches++;
      for (let c = 0; c < p.rank; c++) {
        let norm = 0;
        for (let j = 0; j < p.n; j++) norm += p.Vt[c * p.n + j] ** 2;
        assert.ok(norm === 0 || Math.abs(Math.sqrt(norm) - 1) < 1e-6, `${f.name} row ${c}`);
      }
    }
  }
  assert.ok(patches > 10);
});
