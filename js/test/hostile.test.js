// Damaged and hostile files: every one is rejected with an SvdiError (never another exception,
// a hang or an unbounded allocation), including zstd frames the spec's vectors do not cover.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as svdi from "../svdi.js";
import { IEND, concat, denseBlock, fileOf, head, meanChunk, plan, rawFrame, rblk } from "../support/build.js";
import { chunks, mutateChunk, seededRandom } from "../support/mutate.js";

const dir = fileURLToPath(new URL("../../spec/vectors/", import.meta.url));
const base = new Uint8Array(readFileSync(dir + "l_20x18_escapes.svdi"));

/** A copy of `bytes` with chunk `c`'s payload replaced by `payload`, CRC recomputed. */
function withPayload(bytes, c, payload) {
  const head = bytes.subarray(0, c.pos), tail = bytes.subarray(c.pos + 12 + c.length);
  const out = new Uint8Array(head.length + 12 + payload.length + tail.length);
  out.set(head);
  const v = new DataView(out.buffer);
  v.setUint32(c.pos, payload.length);
  out.set(bytes.subarray(c.pos + 4, c.pos + 8), c.pos + 4);
  out.set(payload, c.pos + 8);
  v.setUint32(c.pos + 8 + payload.length, svdi.crc32(out, c.pos + 4, c.pos + 8 + payload.length));
  out.set(tail, c.pos + 12 + payload.length);
  return out;
}

function rejects(bytes, pattern) {
  assert.throws(() => svdi.decode(bytes), (e) => {
    assert.ok(e instanceof svdi.SvdiError, `${e.name}: ${e.message}`);
    if (pattern) assert.match(e.message, pattern);
    return true;
  });
}

const firstU = chunks(base).find((c) => c.type === "UBLK");
const payload = base.subarray(firstU.pos + 8, firstU.pos + 8 + firstU.length);
const frameAt = 10 + (payload[9] === 0 ? 6 : 13);

test("the base file decodes", () => {
  assert.equal(svdi.decode(base).width, 20);
});

test("every truncation is rejected", () => {
  for (let n = 0; n < base.length; n++) rejects(base.subarray(0, n));
});

test("every single-bit flip is rejected (CRC, signature or length)", () => {
  for (let i = 0; i < base.length; i++) {
    const bad = base.slice();
    bad[i] ^= 1 << (i % 8);
    rejects(bad);
  }
});

test("a zstd frame followed by extra bytes", () => {
  const p = new Uint8Array(payload.length + 3);
  p.set(payload);
  rejects(withPayload(base, firstU, p), /followed by extra data|incomplete/);
});

test("a zstd frame cut short", () => {
  rejects(withPayload(base, firstU, payload.subarray(0, payload.length - 2)), /zstd/);
});

test("a skippable frame instead of a zstd frame", () => {
  const p = payload.slice();
  p.set([0x50, 0x2a, 0x4d, 0x18], frameAt);
  rejects(withPayload(base, firstU, p), /bad zstd frame/);
});

test("a frame that needs a dictionary", () => {
  // Descriptor: keep the content-size flags, set a 1-byte dictionary id (inserted after the window/FCS start).
  const p = payload.slice();
  const fhd = p[frameAt + 4];
  const withDict = new Uint8Array(p.length + 1);
  const idAt = frameAt + 5 + (fhd & 0x20 ? 0 : 1);
  withDict.set(p.subarray(0, idAt));
  withDict[frameAt + 4] = (fhd & ~3) | 1;
  withDict[idAt] = 7;
  withDict.set(p.subarray(idAt), idAt + 1);
  rejects(withPayload(base, firstU, withDict), /dictionary/);
});

/** The base file with its first U block's frame rewritten as a multi-segment frame with a
 * window of 2^windowLog and a 4-byte content size; the blocks are unchanged. */
function withWindow(windowLog) {
  const p = payload.slice();
  const fhd = p[frameAt + 4];
  const single = fhd & 0x20, fcsFlag = fhd >> 6;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
  let fcs = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + p[frameAt + 5 + (single ? 0 : 1) + i];
  if (fcsFlag === 1) fcs += 256;
  const rest = p.subarray(frameAt + 5 + (single ? 0 : 1) + fcsBytes);
  const header = new Uint8Array(10);
  header.set([0x28, 0xb5, 0x2f, 0xfd, (2 << 6) | (fhd & 4), (windowLog - 10) << 3]);
  new DataView(header.buffer).setUint32(6, fcs, true);
  const out = new Uint8Array(frameAt + header.length + rest.length);
  out.set(p.subarray(0, frameAt));
  out.set(header, frameAt);
  out.set(rest, frameAt + header.length);
  return withPayload(base, firstU, out);
}

test("frames declaring windows up to spec §4's 8 MiB decode, allocating nothing for the window", () => {
  for (const log of [20, 23]) {
    const before = process.memoryUsage().rss;
    assert.deepEqual(svdi.decode(withWindow(log)).data, svdi.decode(base).data);
    assert.ok(process.memoryUsage().rss - before < 2 ** 26, `window 2^${log}: no window-sized allocation`);
  }
});

test("a frame declaring a window over 8 MiB is refused with the limit named (spec §4)", () => {
  rejects(withWindow(24), /zstd window of 16777216 bytes exceeds 8388608/);
  rejects(withWindow(31), /zstd window of 2147483648 bytes exceeds 8388608/);
});

test("a frame that decompresses to fewer bytes than it declares", () => {
  // One raw block one byte shorter than the declared (and correct) content size.
  const v = new DataView(payload.buffer, payload.byteOffset);
  const expected = payload[9] === 0
    ? v.getUint32(12) * [0, 1, 2, 4, 4][payload[10]]
    : v.getUint32(11) + 2 * v.getUint32(15) + (payload[10] === 2 ? 2 : 4) * v.getUint32(19);
  assert.ok(expected >= 2 && expected < 65536 + 256);
  const header = expected < 256 ? [0x20, expected] : [0x60, (expected - 256) & 255, (expected - 256) >> 8];
  const frame = new Uint8Array(4 + header.length + 3 + expected - 1);
  frame.set([0x28, 0xb5, 0x2f, 0xfd, ...header]); // single segment: the content size is the window
  const blockHeader = 1 | ((expected - 1) << 3); // last block, raw, expected − 1 bytes
  frame.set([blockHeader & 255, (blockHeader >> 8) & 255, blockHeader >> 16], 4 + header.length);
  const out = new Uint8Array(frameAt + frame.length);
  out.set(payload.subarray(0, frameAt));
  out.set(frame, frameAt);
  rejects(withPayload(base, firstU, out), /corrupt zstd data/);
});

test("the pixel limit is checked on HEAD, before any block", () => {
  assert.throws(() => svdi.decode(base, { maxPixels: 100 }), /exceeds the limit of 100 pixels/);
  assert.equal(svdi.decode(base, { maxPixels: null }).height, 18);
});

test("the pixel limit counts an image of more than 4 channels once for every 4", () => {
  // 2^20 x 64 pixels of 255 channels in 51 KB: 67 M pixels, 4.3 G counted (tests/limits/,
  // shared with the reference decoder's tests); uncounted, this decoder allocated 2.4 GB
  const wide = new Uint8Array(readFileSync(fileURLToPath(
    new URL("../../tests/limits/wide_channels_pixel_count.svdi", import.meta.url))));
  assert.throws(() => svdi.decode(wide), (e) => e instanceof svdi.SvdiError &&
    /1048576x64 pixels of 255 channels \(counted as 4294967296 pixels, one for every 4 channels\) exceeds the limit of 89478485 pixels/.test(e.message));
  assert.throws(() => svdi.readHeader(wide, { maxPixels: 4294967295 }), /counted as 4294967296/);
  assert.equal(svdi.readHeader(wide, { maxPixels: 4294967296 }).channels, 255);
});

test("non-bytes and bad component counts", () => {
  assert.throws(() => svdi.decode("not bytes"), svdi.SvdiError);
  assert.throws(() => svdi.decode(base, { components: -1 }), svdi.SvdiError);
  assert.throws(() => svdi.decode(base, { components: 1.5 }), svdi.SvdiError);
});

test("a 2^20 × 2^20 image of rank 0 without a pixel limit: SvdiError, not a crash", () => {
  const head = new Uint8Array(23), plan = new Uint8Array(23);
  const h = new DataView(head.buffer), p = new DataView(plan.buffer);
  h.setUint16(0, 1);
  h.setUint32(2, 2 ** 20);
  h.setUint32(6, 2 ** 20);
  head.set([1, 1, 0, 0, 1], 10); // uint8, 1 channel, no colour, no subsampling, 1 plane
  h.setFloat64(15, 1);
  plan.set([0, 0, 0]);
  p.setUint32(3, 2 ** 20);
  p.setUint32(7, 2 ** 20);
  p.setUint32(11, 0);
  p.setFloat64(15, 1);
  const bytes = fileOf([["HEAD", head], ["PLAN", plan], ["IEND", new Uint8Array(0)]]);
  assert.equal(svdi.readHeader(bytes).planes[0].rank, 0);
  rejects(bytes, /exceeds the limit of 89478485 pixels/);
  assert.throws(() => svdi.decode(bytes, { maxPixels: null }), (e) => e instanceof svdi.SvdiError && /cannot allocate/.test(e.message));
});

test("payload mutations with valid CRCs: decoded or SvdiError, nothing else, none slow", () => {
  // Seeded, so a failure reproduces. CRCs are recomputed, so the mutations reach the parsers
  // of every chunk: headers, descriptors, zstd frames, symbols, predictors and σ.
  const random = seededRandom(20261202);
  const manifest = JSON.parse(readFileSync(dir + "manifest.json", "utf8"));
  const sources = manifest.vectors.filter((v) => v.valid).map((v) => new Uint8Array(readFileSync(dir + v.file)));
  let accepted = 0, rejected = 0;
  for (let n = 0; n < 1500; n++) {
    const bytes = sources[n % sources.length].slice();
    mutateChunk(bytes, random);
    const started = performance.now();
    try {
      svdi.decode(bytes);
      accepted++;
    } catch (e) {
      assert.ok(e instanceof svdi.SvdiError, `mutant ${n}: ${e.name}: ${e.message}`);
      rejected++;
    }
    assert.ok(performance.now() - started < 5000, `mutant ${n} took ${performance.now() - started} ms`);
  }
  assert.ok(accepted > 0 && rejected > 0, `${accepted} accepted, ${rejected} rejected`);
});

test("a frame whose descriptor announces a checksum it does not carry is incomplete", () => {
  // The reference decoder's streaming path (dense U/V blocks) accepts this file: it reads the
  // content bytes and never asks zstd for the end of the frame. The spec asks for the frame.
  const p = payload.slice();
  p[frameAt + 4] |= 4;
  rejects(withPayload(base, firstU, p), /zstd frame is incomplete/);
});

// ----------------------------------------------------------------------------- version 2 (§4.1, §5.1)
// Files built field by field (support/build.js); each breaks one rule, every other field valid.

/** A valid 6 × 4 grey version 2 file of rank 0 with one residual block per channel, or the
 * same with `blocks` instead (chunk lists of RBLKs) and HEAD fields changed. */
function residualFile({ blocks = null, width = 6, height = 4, channels = 1, dtype = "uint8", version = 2 } = {}) {
  const planes = Array.from({ length: channels }, (_, index) =>
    plan({ index, height, width, shift: version === 2 ? 0 : null }));
  blocks ??= Array.from({ length: channels }, (_, channel) => rblk({ channel, rows: height, grid: new Array(height * width).fill(1) }));
  return fileOf([head({ version, width, height, dtype, channels }), ...planes, ...blocks, IEND]);
}

const grid = (rows, width = 6, value = 1) => new Array(rows * width).fill(value);

test("version 2: the valid base of these cases decodes", () => {
  assert.deepEqual(Array.from(svdi.decode(residualFile()).data), grid(4));
  assert.deepEqual(Array.from(svdi.decode(residualFile({ channels: 2 })).data), grid(4, 12));
});

test("version 2: more residual bands than a call takes arguments decode (a valid file)", () => {
  // 150,000 one-row blocks, one band each: the band sizes' maximum is no Math.max(...bands)
  const height = 150000, one = rblk({ rows: 1, element: "int8", grid: [3] });
  const blocks = Array.from({ length: height }, (_, y) => {
    const [type, payload] = one;
    const copy = payload.slice();
    new DataView(copy.buffer).setUint32(2, y);
    return [type, copy];
  });
  const image = svdi.decode(residualFile({ blocks, width: 1, height }));
  assert.equal(image.height, height);
  assert.ok(image.data.every((x) => x === 3));
});

test("version 5: more records in one chunk than a call takes arguments parse (a valid file)", () => {
  // 255 planes of 512 x 512 at rank 512, every S record one component (130,560 in one SBLK
  // chunk), U and V one sparse record of zeros a plane: the records are no push(...records)
  const planes = 255, size = 512;
  const leb = (n) => (n < 128 ? [n] : [(n & 127) | 128, n >> 7]);
  const sigma = new Uint8Array(4);
  new DataView(sigma.buffer).setFloat32(0, 1, true);
  const sRecord = (plane) => Uint8Array.of(plane, 1, 0x42, ...sigma); // count 1, dense stored binary32
  const rows = rawFrame(new Uint8Array(size).fill(0x08)).subarray(4); // every row ends at once; no magic
  const zeros = (plane) => Uint8Array.of(plane, ...leb(size), 0x31, ...leb(size), 0, 0, ...leb(rows.length), ...rows);
  const records = (make, count) => concat(Array.from({ length: planes * count }, (_, i) => make(i % planes)));
  const file = fileOf([
    head({ version: 5, width: size, height: size, channels: planes }),
    ...Array.from({ length: planes }, (_, index) => plan({ index, height: size, width: size, rank: size, deblock: [0, 0, 0] })),
    ["SBLK", records(sRecord, size)], ["VBLK", records(zeros, 1)], ["UBLK", records(zeros, 1)], IEND]);
  const image = svdi.open(file, { components: 0 });
  assert.equal(image.planes.length, planes);
  assert.ok(image.planes.every((p) => p.rank === size));
});

test("version 2: RBLK in a version 1 file, before the PLAN chunks, before a factor block", () => {
  rejects(residualFile({ version: 1 }), /residual block \(RBLK\) in a version 1 file/);
  const h = head({ width: 6, height: 4, channels: 2 });
  rejects(fileOf([h, plan({ height: 4, width: 6 }), rblk({ rows: 4, grid: grid(4) }), plan({ index: 1, height: 4, width: 6 }), IEND]),
    /residual block before all PLAN chunks/);
  rejects(fileOf([head({ width: 1, height: 1 }), plan({ height: 1, width: 1, rank: 1, shift: 0 }),
    denseBlock("SBLK", { values: [1] }, 1), denseBlock("UBLK", { values: [1] }, 1),
    rblk({ rows: 1, grid: [0] }), denseBlock("VBLK", { values: [1] }, 1), IEND]), /factor block after a residual block/);
  // A version 1 PLAN (23 bytes) in a version 2 file, and a shift beyond 63.
  rejects(fileOf([head({ width: 6, height: 4 }), plan({ height: 4, width: 6, shift: null }), IEND]), /PLAN chunk has 23 bytes, expected 24/);
  rejects(fileOf([head({ width: 6, height: 4 }), plan({ height: 4, width: 6, shift: 64 }), IEND]), /shift 64 exceeds 63/);
  rejects(fileOf([head({ version: 3, width: 6, height: 4 }), plan({ height: 4, width: 6, shift: null }), IEND]), /PLAN chunk has 23 bytes, expected 24/);
  rejects(fileOf([head({ version: 4, width: 6, height: 4 }), plan({ height: 4, width: 6 }), IEND]), /PLAN chunk has 24 bytes, expected 27/);
  rejects(fileOf([head({ version: 5, width: 6, height: 4 }), plan({ height: 4, width: 6 }), IEND]), /PLAN chunk has 24 bytes, expected 27/);
  rejects(fileOf([head({ version: 6, width: 6, height: 4 }), plan({ height: 4, width: 6 }), IEND]), /PLAN chunk has 24 bytes, expected 30/);
  rejects(fileOf([head({ version: 7, width: 6, height: 4 }), plan({ height: 4, width: 6 }), IEND]), /PLAN chunk has 24 bytes, expected 30/);
  rejects(fileOf([head({ version: 8, width: 6, height: 4 }), plan({ height: 4, width: 6 }), IEND]), /unsupported format version 8/);
});

test("version 4: the deblocking filter's PLAN bytes are checked", () => {
  const file = (deblock, { patch = 4, dtype = "uint8", version = 4 } = {}) => fileOf([
    head({ version, width: 8, height: 8, dtype }), plan({ height: 8, width: 8, patch, deblock }), IEND]);
  assert.equal(svdi.decode(file([0, 0, 0])).data.length, 64);
  assert.equal(svdi.decode(file([9, 4, 1])).data.length, 64);
  assert.deepEqual(svdi.readHeader(file([9, 4, 1])).planes[0].deblock, [9, 4, 1]);
  rejects(file([9, 0, 1]), /alpha, beta and tc must all be 0 \(no filter\) or all >= 1/);
  rejects(file([0, 4, 1]), /alpha, beta and tc must all be 0/);
  rejects(file([9, 4, 1], { patch: 0 }), /on a plane of the plain layout/);
  rejects(file([9, 4, 1], { dtype: "uint16" }), /on uint16 samples \(8-bit samples only\)/);
  rejects(file([9, 4, 1], { version: 3 }), /PLAN chunk has 27 bytes, expected 24/);
});

test("version 2: RBLK fields out of range", () => {
  const one = (fields, options = {}) => residualFile({ ...options, blocks: [rblk({ rows: 4, grid: grid(4), ...fields })] });
  rejects(one({ channel: 1 }), /channel 1 residual block at row 0: no such channel/);
  rejects(one({ reference: 0 }), /invalid reference channel 0/);
  rejects(one({ reference: 3 }, { channels: 1 }), /invalid reference channel 3/);
  rejects(one({ rows: 0, grid: [] }), /rows 0\.\.0 outside 0\.\.4/);
  rejects(one({ first: 2 }), /rows 2\.\.6 outside 0\.\.4/);
  rejects(one({ first: 2 ** 32 - 1, rows: 2 }), /outside 0\.\.4/); // first + rows beyond 32 bits
  for (const step of [0, 1.5, 512, -1, NaN, Infinity]) rejects(one({ step }), /step .* is not an integer in 1\.\.511/);
  rejects(one({ step: 131072 }, { dtype: "uint16" }), /is not an integer in 1\.\.131071/);
  assert.equal(svdi.decode(one({ step: 131071 }, { dtype: "uint16" })).data[0], 65535);
  assert.equal(svdi.decode(one({ step: 511 })).data[0], 255);
  for (const step of [0, -0.5, NaN, Infinity]) rejects(one({ step }, { dtype: "float32" }), /invalid step/);
  for (const bound of [-1, NaN, Infinity]) rejects(one({ bound }), /invalid bound/);
  for (const elementCode of [0, 4, 255]) rejects(one({ elementCode }), new RegExp(`invalid element type ${elementCode}`));
  rejects(one({ predictor: 4 }), /invalid predictor 4/);
  const short = residualFile({ blocks: [["RBLK", new Uint8Array(27)]] });
  rejects(short, /RBLK chunk too short/);
});

test("version 2: an RBLK frame must declare exactly rows × width × element bytes, before decompressing", () => {
  const one = (fields) => residualFile({ blocks: [rblk({ rows: 4, grid: grid(4), ...fields })] });
  rejects(one({ declared: 4 * 24 + 1 }), /zstd frame declares 97 bytes, header implies 96/);
  rejects(one({ element: "int16" , declared: 4 * 24 }), /zstd frame declares 96 bytes, header implies 48/);
  rejects(one({ frame: rawFrame(new Uint8Array(95)) }), /zstd frame declares 95 bytes/);
  // A frame that declares the right size but holds fewer bytes: libzstd refuses it.
  const frame = rawFrame(new Uint8Array(95), 96);
  rejects(one({ frame }), /corrupt zstd data/);
});

test("version 2: a residual block of more than 2^31 − 1 elements is refused from its fields", () => {
  // 4096 × 2^20 pixels (no pixel limit): one block of every row declares 2^32 elements.
  const width = 4096, height = 2 ** 20;
  const block = rblk({ rows: height, grid: [], frame: rawFrame(new Uint8Array(1), 1) });
  const bytes = fileOf([head({ width, height }), plan({ height, width }), block, IEND]);
  const before = process.memoryUsage().rss;
  assert.throws(() => svdi.decode(bytes, { maxPixels: null }), /1048576 x 4096 elements exceed 2147483647/);
  assert.ok(process.memoryUsage().rss - before < 2 ** 26, "refused before allocating the image");
});

test("version 2: order rules (row order, coverage, references)", () => {
  const two = (blocks) => residualFile({ channels: 2, blocks });
  const b = (channel, first, rows, reference = 255) => rblk({ channel, first, rows, reference, grid: grid(rows) });
  // Rows out of order, overlapping, a gap, a channel that stops short.
  rejects(residualFile({ blocks: [b(0, 2, 2), b(0, 0, 2)] }), /rows out of order \(expected row 0\)/);
  rejects(residualFile({ blocks: [b(0, 0, 3), b(0, 2, 2)] }), /rows out of order \(expected row 3\)/);
  rejects(residualFile({ blocks: [b(0, 0, 1), b(0, 2, 2)] }), /rows out of order \(expected row 1\)/);
  rejects(residualFile({ blocks: [b(0, 0, 3)] }), /channel 0: residual blocks cover 3 of 4 rows/);
  // A channel without blocks is not corrected: valid.
  assert.deepEqual(Array.from(svdi.decode(two([b(1, 0, 4)])).data), grid(4).flatMap(() => [0, 1]));
  // The reference's block of the same rows must come earlier, without a reference of its own.
  rejects(two([b(0, 0, 4, 1), b(1, 0, 4)]), /reference channel 1 has no earlier block of the same rows/);
  rejects(two([b(1, 0, 2), b(1, 2, 2), b(0, 0, 4, 1)]), /has no earlier block of the same rows/);
  const three = (blocks) => residualFile({ channels: 3, blocks });
  rejects(three([b(2, 0, 4), b(1, 0, 4, 2), b(0, 0, 4, 1)]), /reference channel 1 has no earlier block of the same rows without a reference/);
  // A reference in all of a channel's blocks or in none.
  rejects(two([b(1, 0, 2), b(0, 0, 2, 1), b(1, 2, 2), b(0, 2, 2)]), /a channel has a reference in all its blocks or in none/);
  assert.deepEqual(Array.from(svdi.decode(two([b(1, 0, 2), b(0, 0, 2, 1), b(1, 2, 2), b(0, 2, 2, 1)])).data),
    grid(4).flatMap(() => [2, 1]));
});

test("version 2: |q| beyond 2^31 − 1, directly or through the reference's q; float32 overflow", () => {
  const max = 2 ** 31 - 1;
  rejects(residualFile({ blocks: [rblk({ rows: 4, grid: [-(2 ** 31), ...grid(4).slice(1)] })] }),
    /channel 0 residual block at row 0: residual beyond 2\^31 - 1/);
  rejects(residualFile({ channels: 2, blocks: [rblk({ channel: 1, rows: 4, grid: grid(4, 6, max) }),
    rblk({ channel: 0, reference: 1, rows: 4, grid: grid(4) })] }), /channel 0 residual block at row 0: residual beyond/);
  // Running sums: a horizontal row of 2^30 six times reaches 6·2^30; planar column sums as well.
  rejects(residualFile({ blocks: [rblk({ rows: 4, predictor: 1, grid: grid(4, 6, 2 ** 30) })] }), /residual beyond 2\^31 - 1/);
  rejects(residualFile({ blocks: [rblk({ rows: 4, predictor: 2, grid: grid(4, 6, 2 ** 30) })] }), /residual beyond 2\^31 - 1/);
  rejects(residualFile({ blocks: [rblk({ rows: 4, predictor: 3, grid: [2 ** 31 - 1, ...new Array(23).fill(1)] })] }),
    /residual beyond 2\^31 - 1/);
  // float32: x̂ + q·t beyond binary32's range is not a sample.
  rejects(residualFile({ dtype: "float32", blocks: [rblk({ rows: 4, step: 1e30, grid: grid(4, 6, max) })] }),
    /corrected samples overflow float32/);
});

test("version 2: the exact plane rule (§5.1): W_k ≤ 2^53, |A|, |B| < 2^24, M_A·M_B·ΣW < 2^53", () => {
  const planeFile = ({ sigma = [1], shift = 0, step = 1, u = [1], v = [1], rank = 1 }) => fileOf([
    head({ width: v.length / rank, height: u.length / rank, dtype: "float32" }),
    plan({ height: u.length / rank, width: v.length / rank, rank, step, shift }),
    denseBlock("SBLK", { values: sigma }, rank), denseBlock("UBLK", { values: u }, rank),
    denseBlock("VBLK", { values: v }, rank), IEND]);
  assert.deepEqual(Array.from(svdi.decode(planeFile({ shift: 53, u: [0] })).data), [0]); // W = 2^53
  rejects(planeFile({ shift: 54, u: [0] }), /plane 0: exact weight exceeds 2\^53 \(step 1\.0, shift 54\)/);
  rejects(planeFile({ sigma: [2 ** -100], shift: 63 }), /exact weight exceeds 2\^53/); // 2^163
  rejects(planeFile({ step: 1e300, shift: 0 }), /exact weight exceeds 2\^53/); // Δ² overflows
  // |A|, |B| < 2^24 strictly (2^24 + 1 would be 2^24 in binary32: the magnitude is taken first).
  assert.deepEqual(Array.from(svdi.decode(planeFile({ u: [2 ** 24 - 1], v: [-1] })).data), [-(2 ** 24 - 1)]);
  rejects(planeFile({ u: [2 ** 24], v: [1] }), /factor integers of magnitude 16777216 reach 2\^24 in an exact plane/);
  rejects(planeFile({ u: [2 ** 24 + 1], v: [0] }), /factor integers of magnitude 16777217 reach 2\^24 in an exact plane/);
  rejects(planeFile({ u: [0], v: [-(2 ** 24) - 1] }), /magnitude 16777217 reach 2\^24/);
  // W = 2^40, M_A·M_B = 2^13: exactly 2^53 breaks the bound (2^13 − 1 decodes: version2.test.js).
  rejects(planeFile({ shift: 40, u: [8192], v: [1] }), /max\|A\| \* max\|B\| \* sum\(W\) = 9007199254740992 breaks the exact reconstruction bound 2\^53/);
  // The bound is on what is multiplied (§5.1): the whole file is refused when its second
  // component breaks it (2 × 2 plane, rank 2, component 1 with |A| = 2^25), a preview of the
  // first component alone shows it, as svdcodec.decode(components=1) and the reference do.
  const wide = planeFile({ rank: 2, sigma: [1, 1], u: [1, 1, 2 ** 25, 0], v: [1, 1, 1, 1] });
  assert.throws(() => svdi.decode(wide), /magnitude 33554432 reach 2\^24/);
  assert.deepEqual(Array.from(svdi.decode(wide, { components: 1 }).data).length, 4);
});

test("a frame declaring 2^32 bytes or more is refused, not truncated to the 32-bit heap", () => {
  // 4096 × 2^18 uint8 pixels (no pixel limit) with an int32 residual block of every row: its
  // frame declares 2^32 bytes, which the WebAssembly libzstd's 32-bit sizes would read as 0.
  // readFactors reads and checks the residual blocks as decode does, without the 1 GB image.
  const width = 4096, height = 2 ** 18;
  const block = rblk({ rows: height, grid: [], frame: rawFrame(new Uint8Array(1), 2 ** 32) });
  const bytes = fileOf([head({ width, height }), plan({ height, width }), block, IEND]);
  const before = process.memoryUsage().rss;
  assert.throws(() => svdi.readFactors(bytes, { maxPixels: null }), (e) => e instanceof svdi.SvdiError &&
    /cannot allocate 4294967296 bytes/.test(e.message));
  assert.ok(process.memoryUsage().rss - before < 2 ** 26, "nothing of the declared size allocated");
});

// ----------------------------------------------------------------------------- version 2's arrays (§2, §3.1, §4.1, §5.2, §5.3)

test("arrays: sample types and channel counts per version (HEAD, §2)", () => {
  const one = (fields, version = 2) => fileOf([head({ version, width: 3, height: 2, ...fields }),
    ...Array.from({ length: fields.planes ?? fields.channels ?? 1 }, (_, index) =>
      plan({ index, height: 2, width: 3, shift: version >= 2 ? 0 : null })), IEND]);
  for (const code of [0, 9, 255]) rejects(one({ sampleCode: code }), new RegExp(`unknown sample type ${code} \\(format version 2\\)`));
  for (const dtype of ["int8", "int16", "int32", "uint32", "float64"]) {
    rejects(one({ dtype }, 1), /unknown sample type \d \(format version 1\)/);
    assert.equal(svdi.decode(one({ dtype })).dtype, dtype);
  }
  rejects(one({ channels: 5 }, 1), /invalid channel count 5 with 5 planes \(format version 1: 1\.\.4\)/);
  rejects(fileOf([head({ width: 3, height: 2, channels: 0 }), IEND]), /invalid channel count 0 with 0 planes \(format version 2: 1\.\.255\)/);
  rejects(fileOf([head({ width: 3, height: 2, channels: 6, planes: 5 }), IEND]), /invalid channel count 6 with 5 planes/);
  rejects(fileOf([head({ width: 3, height: 2, channels: 255, planes: 254 }), IEND]), /invalid channel count 255 with 254 planes/);
  rejects(one({ dtype: "int16", channels: 3, colour: 1 }), /Y'CbCr transform needs 8-bit RGB or RGBA/);
  rejects(one({ channels: 5, colour: 1 }), /Y'CbCr transform needs 8-bit RGB or RGBA/);
  // 16-bit Y′CbCr is version 3's: refused in a version 2 (or 1) header, and for 2 channels.
  rejects(one({ dtype: "uint16", channels: 3, colour: 1 }), /Y'CbCr transform needs 8-bit RGB or RGBA \(version 3: or 16-bit\), not 3 uint16 channels in version 2/);
  rejects(one({ dtype: "uint16", channels: 3, colour: 1 }, 1), /Y'CbCr transform needs 8-bit RGB or RGBA/);
  rejects(one({ dtype: "uint16", channels: 2, colour: 1 }, 3), /Y'CbCr transform needs 8-bit RGB or RGBA/);
  assert.equal(svdi.decode(one({ dtype: "uint16", channels: 4, colour: 1 }, 3)).dtype, "uint16");
  // 255 channels (rank-0 planes): the largest count, decoded as interleaved samples.
  const image = svdi.decode(one({ channels: 255, dtype: "int16" }));
  assert.equal(image.channels, 255);
  assert.ok(image.data instanceof Int16Array && image.data.length === 6 * 255);
  // float64's scale limit: finite samples of plane values up to 255.
  rejects(one({ dtype: "float64", scale: Number.MAX_VALUE / 254 }), /makes samples overflow float64/);
  rejects(one({ dtype: "float32", scale: 3.4028235e38 / 254 }), /makes samples overflow float32/);
  assert.equal(svdi.decode(one({ dtype: "float64", scale: Number.MAX_VALUE / 255 })).data[0], 0);
});

test("arrays: residual steps of every new type at and past their limits (§4.1)", () => {
  const one = (dtype, step) => fileOf([head({ width: 6, height: 4, dtype }), plan({ height: 4, width: 6 }),
    rblk({ rows: 4, step, grid: grid(4, 6, -1) }), IEND]);
  for (const [dtype, top, low] of [["int8", 511, -128], ["int16", 131071, -32768], ["int32", 2 ** 21 - 1, -(2 ** 21 - 1)],
    ["uint32", 2 ** 21 - 1, 0]]) {
    assert.equal(svdi.decode(one(dtype, top)).data[0], Math.max(low, -top), `${dtype} step ${top}`);
    rejects(one(dtype, top + 1), new RegExp(`step ${top + 1}\\.0 is not an integer in 1\\.\\.${top}`));
    for (const step of [0, 0.5, -1, NaN, Infinity]) rejects(one(dtype, step), /is not an integer in 1\.\./);
  }
  for (const step of [0, -0.5, NaN, Infinity]) rejects(one("float64", step), /invalid step/);
  assert.equal(svdi.decode(one("float64", 2 ** -40)).data[0], -(2 ** -40));
  assert.equal(svdi.decode(one("float64", 1e300)).data[0], -1e300);
});

test("arrays: float64 samples and corrected samples that are not finite make the file invalid (§5.2, §5.3)", () => {
  // Plane value 2^20 (rank 1, Δ = σ = 1, A = 2^20, B = 1) times a scale of 2^1000: 2^1020 is
  // finite; times 2^1010 it is not.
  const planeFile = (scale, extra = []) => fileOf([head({ width: 1, height: 1, dtype: "float64", scale }),
    plan({ height: 1, width: 1, rank: 1, step: 1, shift: 0 }), denseBlock("SBLK", { values: [1] }, 1),
    denseBlock("UBLK", { values: [2 ** 20] }, 1), denseBlock("VBLK", { values: [1] }, 1), ...extra, IEND]);
  assert.equal(svdi.decode(planeFile(2 ** 1000)).data[0], 2 ** 1020);
  rejects(planeFile(2 ** 1010), /samples overflow float64 \(sample scale/);
  rejects(planeFile(2 ** 1000, [rblk({ rows: 1, step: 2 ** 1000, grid: [2 ** 30] })]), /corrected samples overflow float64/);
  assert.equal(svdi.decode(planeFile(2 ** 1000, [rblk({ rows: 1, step: 2 ** 1000, grid: [-(2 ** 20)] })])).data[0], 0);
});

/** A version 2 file of `planes` planes (height × width, rank 0, plain unless `patch`) with the
 * given chunks between the PLANs and IEND. */
function meanFile(chunks, { planes = 1, height = 3, width = 4, version = 2, dtype = "float32", patch = 0 } = {}) {
  return fileOf([head({ version, width, height, dtype, channels: planes }),
    ...Array.from({ length: planes }, (_, index) => plan({ index, height, width, patch, shift: version === 2 ? 0 : null })),
    ...chunks, IEND]);
}

test("MEAN: a valid chunk centres a rank-0 plane: every row is the means, also at k = 0", () => {
  const values = [1.5, -2.25, Math.fround(0.1), 3e38];
  const bytes = meanFile([meanChunk({ values })]);
  const expected = [0, 1, 2].flatMap(() => values.map(Math.fround));
  assert.deepEqual(Array.from(svdi.decode(bytes).data), expected);
  assert.deepEqual(Array.from(svdi.decode(bytes, { components: 0 }).data), expected);
  assert.ok(svdi.open(bytes).planes[0].centred);
  assert.deepEqual(Array.from(svdi.readFactors(bytes)[0].mean), values.map(Math.fround));
  // readHeader reads HEAD and PLAN only: a MEAN chunk after them is not its concern.
  assert.equal(svdi.readHeader(bytes).planes.length, 1);
});

test("MEAN: version, place, plane, duplicates and layout (§3.1)", () => {
  const m = (plane = 0) => meanChunk({ plane, values: [1, 2, 3, 4] });
  rejects(meanFile([m()], { version: 1 }), /column means \(MEAN\) in a version 1 file/);
  rejects(meanFile([m(1)]), /MEAN chunk for plane 1: no such plane/);
  rejects(meanFile([m(255)], { planes: 2 }), /MEAN chunk for plane 255: no such plane/);
  rejects(meanFile([m(), m()]), /plane 0: more than one MEAN chunk/);
  assert.equal(svdi.decode(meanFile([m(1), m(0)], { planes: 2 })).channels, 2); // any order
  rejects(meanFile([meanChunk({ values: new Array(16).fill(1) })], { patch: 4, height: 8, width: 8 }),
    /plane 0: column means need the plain layout/);
  rejects(meanFile([["MEAN", new Uint8Array(0)]]), /MEAN chunk too short/);
  // Before the last PLAN, after a factor block, after a residual block.
  rejects(fileOf([head({ width: 4, height: 3, channels: 2 }), plan({ height: 3, width: 4 }), m(),
    plan({ index: 1, height: 3, width: 4 }), IEND]), /MEAN chunk outside its place/);
  rejects(fileOf([head({ width: 1, height: 1 }), plan({ height: 1, width: 1, rank: 1 }),
    denseBlock("SBLK", { values: [1] }, 1), meanChunk({ values: [1] }), denseBlock("UBLK", { values: [1] }, 1),
    denseBlock("VBLK", { values: [1] }, 1), IEND]), /MEAN chunk outside its place/);
  rejects(meanFile([rblk({ rows: 3, width: 4, grid: grid(3, 4) }), m()]), /MEAN chunk outside its place/);
  // A metadata chunk may follow it (before the first factor block).
  const text = ["iTXt", Uint8Array.from([107, 0, 0, 0, 0, 0, 104, 105])]; // keyword "k", text "hi"
  assert.equal(svdi.decode(meanFile([m(), text])).width, 4);
});

test("MEAN: the frame must declare exactly 4 × n bytes, checked before decompressing; finite values", () => {
  const values = [1, 2, 3, 4];
  for (const declared of [12, 20, 0]) {
    rejects(meanFile([meanChunk({ values, declared })]), new RegExp(`plane 0 column means: zstd frame declares ${declared} bytes, header implies 16`));
  }
  rejects(meanFile([meanChunk({ frame: rawFrame(new Uint8Array(15), 16) })]), /plane 0 column means: corrupt zstd data/);
  for (const bad of [NaN, Infinity, -Infinity]) {
    rejects(meanFile([meanChunk({ values: [1, bad, 3, 4] })]), /plane 0 column means: a mean is not finite/);
  }
  // A plane 2^20 wide whose MEAN frame declares 2^40 bytes: refused from the header, nothing allocated.
  const width = 2 ** 20;
  const bytes = fileOf([head({ width, height: 1 }), plan({ height: 1, width }),
    meanChunk({ frame: rawFrame(new Uint8Array(1), 2 ** 40) }), IEND]);
  const before = process.memoryUsage().rss;
  rejects(bytes, /zstd frame declares 1099511627776 bytes, header implies 4194304/);
  assert.ok(process.memoryUsage().rss - before < 2 ** 26, "nothing of the declared size allocated");
});

test("readFactors gives decode's verdict on a float residual that overflows (it decodes the image)", () => {
  for (const [dtype, step] of [["float32", 1e30], ["float64", 1e300]]) {
    const bytes = residualFile({ dtype, blocks: [rblk({ rows: 4, step, grid: grid(4, 6, 2 ** 31 - 1) })] });
    assert.throws(() => svdi.readFactors(bytes), new RegExp(`corrected samples overflow ${dtype}`));
    rejects(bytes, new RegExp(`corrected samples overflow ${dtype}`));
  }
});

test("iTXt: at most 4096 chunks of 2^24 bytes together (§1.1); a keyword is a text, whatever its name", () => {
  const image = [head({ width: 1, height: 1 }), plan({ height: 1, width: 1 })];
  const text = (key, body = 0) => ["iTXt", concat([new TextEncoder().encode(key), new Uint8Array(5), new Uint8Array(body).fill(120)])];
  const texts = (n, body = 0) => Array.from({ length: n }, (_, i) => text(`k${i}`, body));
  const file = (chunkList) => fileOf([...image, ...chunkList, IEND]);
  assert.equal(Object.keys(svdi.open(file(texts(4096))).container.metadata.text).length, 4096);
  rejects(file(texts(4097)), /more than 4096 iTXt chunks/);
  const large = 2 ** 20 - 10;
  assert.equal(Object.keys(svdi.open(file(texts(16, large))).container.metadata.text).length, 16);
  rejects(file(texts(17, large)), /iTXt chunks of more than 16777216 bytes together/);
  // Keywords that name an object's own properties are texts like others (Python keeps them).
  const names = svdi.open(file([text("constructor"), text("__proto__"), text("toString")])).container.metadata.text;
  assert.deepEqual(Object.keys(names).sort(), ["__proto__", "constructor", "toString"]);
  rejects(file([text("constructor"), text("constructor")]), /keyword 'constructor' appears twice/);
});
