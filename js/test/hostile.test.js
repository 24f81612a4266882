// Damaged and hostile files: every one is rejected with an SvdiError (never another exception,
// a hang or an unbounded allocation), including zstd frames the spec's vectors do not cover.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as svdi from "../svdi.js";

const dir = fileURLToPath(new URL("../../spec/vectors/", import.meta.url));
const base = new Uint8Array(readFileSync(dir + "l_20x18_escapes.svdi"));

function chunks(bytes) {
  const out = [];
  for (let pos = 8; pos < bytes.length;) {
    const v = new DataView(bytes.buffer, bytes.byteOffset);
    const length = v.getUint32(pos);
    out.push({ type: String.fromCharCode(...bytes.subarray(pos + 4, pos + 8)), pos, length });
    pos += 12 + length;
  }
  return out;
}

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

test("non-bytes and bad component counts", () => {
  assert.throws(() => svdi.decode("not bytes"), svdi.SvdiError);
  assert.throws(() => svdi.decode(base, { components: -1 }), svdi.SvdiError);
  assert.throws(() => svdi.decode(base, { components: 1.5 }), svdi.SvdiError);
});

/** A file of chunks [type, payload] after the signature, CRCs computed. */
function fileOf(chunkList) {
  const parts = [svdi.SIGNATURE];
  for (const [type, payload] of chunkList) {
    const c = new Uint8Array(12 + payload.length);
    const v = new DataView(c.buffer);
    v.setUint32(0, payload.length);
    c.set(Array.from(type, (ch) => ch.charCodeAt(0)), 4);
    c.set(payload, 8);
    v.setUint32(8 + payload.length, svdi.crc32(c, 4, 8 + payload.length));
    parts.push(c);
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

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
  let seed = 20261202;
  const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const manifest = JSON.parse(readFileSync(dir + "manifest.json", "utf8"));
  const sources = manifest.vectors.filter((v) => v.valid).map((v) => new Uint8Array(readFileSync(dir + v.file)));
  let accepted = 0, rejected = 0;
  for (let n = 0; n < 1500; n++) {
    const bytes = sources[n % sources.length].slice();
    const list = chunks(bytes).filter((c) => c.length > 0);
    const c = list[Math.floor(random() * list.length)];
    for (let f = 1 + Math.floor(random() * 3); f > 0; f--) {
      const at = c.pos + 8 + Math.floor(random() * c.length);
      bytes[at] = random() < 0.5 ? bytes[at] ^ (1 << Math.floor(random() * 8)) : Math.floor(random() * 256);
    }
    new DataView(bytes.buffer).setUint32(c.pos + 8 + c.length, svdi.crc32(bytes, c.pos + 4, c.pos + 8 + c.length));
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
