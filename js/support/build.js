// Small .svdi files built field by field from the spec's byte layout (§1–4.1), for the hostile
// tests of version 2: every field is the test's to choose, including the ones a correct encoder
// never writes. zstd frames are written with raw blocks (RFC 8878 §3.1.1.2), so any content is
// a valid frame without a compressor.
import { SIGNATURE, crc32 } from "../svdi.js";

/** A file of chunks [type, payload] after the signature, CRCs computed. */
export function fileOf(chunkList) {
  const parts = [SIGNATURE];
  for (const [type, payload] of chunkList) {
    const c = new Uint8Array(12 + payload.length);
    const v = new DataView(c.buffer);
    v.setUint32(0, payload.length);
    c.set(Array.from(type, (ch) => ch.charCodeAt(0)), 4);
    c.set(payload, 8);
    v.setUint32(8 + payload.length, crc32(c, 4, 8 + payload.length));
    parts.push(c);
  }
  return concat(parts);
}

export function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

/** One zstd frame holding `content` in raw blocks of at most 128 KiB: 8-byte content size,
 * a window of 8 MiB (spec §4's largest) unless the frame is single-segment (content ≤ 8 MiB). */
export function rawFrame(content, declared = content.length) {
  const single = declared <= 2 ** 23;
  const header = new Uint8Array(single ? 13 : 14);
  header.set([0x28, 0xb5, 0x2f, 0xfd, (3 << 6) | (single ? 0x20 : 0)]);
  if (!single) header[5] = (23 - 10) << 3;
  new DataView(header.buffer).setBigUint64(single ? 5 : 6, BigInt(declared), true);
  const parts = [header];
  let at = 0;
  do {
    const size = Math.min(131072, content.length - at);
    const last = at + size >= content.length ? 1 : 0;
    const head = last | (size << 3); // block type 0: raw
    parts.push(Uint8Array.of(head & 255, (head >> 8) & 255, head >>> 16), content.subarray(at, at + size));
    at += size;
  } while (at < content.length);
  return concat(parts);
}

const SAMPLE_CODES = { uint8: 1, uint16: 2, float32: 3, int8: 4, int16: 5, int32: 6, uint32: 7, float64: 8 };

/** HEAD (§2): version, width, height, dtype (or a raw `sampleCode`), channels (planes the same
 * unless given), colour 0 unless given, scale. */
export function head({ version = 2, width, height, dtype = "uint8", sampleCode = null, channels = 1, planes = channels,
  colour = 0, subsampling = 0, scale = 1 }) {
  const p = new Uint8Array(23), v = new DataView(p.buffer);
  v.setUint16(0, version);
  v.setUint32(2, width);
  v.setUint32(6, height);
  p.set([sampleCode ?? SAMPLE_CODES[dtype], channels, colour, subsampling, planes], 10);
  v.setFloat64(15, scale);
  return ["HEAD", p];
}

/** PLAN (§3) of a plain layout (or patch p): 23 bytes (version 1, shift null), 24 (version 2)
 * or, with deblock = [alpha, beta, tc], 27 (version 4). */
export function plan({ index = 0, height, width, rank = 0, step = 1, shift = 0, patch = 0, deblock = null }) {
  const p = new Uint8Array(shift === null ? 23 : deblock ? 27 : 24), v = new DataView(p.buffer);
  if (deblock) p.set(deblock, 24);
  p.set([index, patch ? 1 : 0, patch]);
  v.setUint32(3, height);
  v.setUint32(7, width);
  v.setUint32(11, rank);
  v.setFloat64(15, step);
  if (shift !== null) p[23] = shift;
  return ["PLAN", p];
}

/** A dense factor block (§4): SBLK of float32 σ, or UBLK/VBLK of int32 integers given
 * component after component (predictor 0). */
export function denseBlock(type, { plane = 0, first = 0, values }, count) {
  const isSigma = type === "SBLK";
  const content = new Uint8Array(4 * values.length), v = new DataView(content.buffer);
  values.forEach((x, i) => (isSigma ? v.setFloat32(4 * i, x, true) : v.setInt32(4 * i, x, true)));
  const p = new Uint8Array(16), d = new DataView(p.buffer);
  p[0] = plane;
  d.setUint32(1, first);
  d.setUint32(5, count);
  p[9] = 0; // dense
  p[10] = isSigma ? 4 : 3; // float32 / int32
  p[11] = 0; // no predictor
  d.setUint32(12, values.length);
  return [type, concat([p, rawFrame(content)])];
}

const ELEMENT = { int8: [1, 1], int16: [2, 2], int32: [3, 4] };

/** An RBLK chunk (§4.1). `grid` holds rows × width elements as stored (after the predictor);
 * `declared` overrides the frame's content size, `frame` the whole frame. */
export function rblk({ channel = 0, reference = 255, first = 0, rows, step = 1, bound = 0, element = "int32",
  elementCode = null, predictor = 0, grid = [], declared, frame }) {
  const [code, size] = ELEMENT[element];
  const content = new Uint8Array(size * grid.length), v = new DataView(content.buffer);
  grid.forEach((x, i) => (size === 1 ? v.setInt8(i, x) : size === 2 ? v.setInt16(2 * i, x, true) : v.setInt32(4 * i, x, true)));
  const p = new Uint8Array(28), d = new DataView(p.buffer);
  p.set([channel, reference]);
  d.setUint32(2, first);
  d.setUint32(6, rows);
  d.setFloat64(10, step);
  d.setFloat64(18, bound);
  p.set([elementCode ?? code, predictor], 26);
  return ["RBLK", concat([p, frame ?? rawFrame(content, declared ?? content.length)])];
}

/** A MEAN chunk (§3.1): plane, then a frame of binary32 `values` (little-endian); `declared`
 * overrides the frame's content size, `frame` the whole frame. */
export function meanChunk({ plane = 0, values = [], declared, frame }) {
  const content = new Uint8Array(4 * values.length), v = new DataView(content.buffer);
  values.forEach((x, i) => v.setFloat32(4 * i, x, true));
  return ["MEAN", concat([Uint8Array.of(plane), frame ?? rawFrame(content, declared ?? content.length)])];
}

export const IEND = ["IEND", new Uint8Array(0)];
