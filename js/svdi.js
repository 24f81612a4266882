// A decoder of the .svdi image format, versions 1 to 6, written from spec/svdi.md §1–5.
//
// An ES module for browsers (pages and module Workers) and Node ≥ 18. Untrusted bytes are parsed
// in one place (`parseContainer`): every size is checked against the header and the spec's
// limits before anything is allocated, zstd frames are checked against their descriptors before
// they are decompressed, and every rule the spec states raises an `SvdiError` naming it.
//
// Arithmetic (spec §5): version 1's plane matrix is X̂ = (Δ·A)·diag(1/σ)·(Δ·B)ᵀ. Like the
// reference decoder, the left factor is formed in binary32 (A·fl32(Δ²/σ_k)) and B is held in
// binary32; the sum over components is accumulated in binary64 and rounded to binary32 once, so
// it is at least as accurate as a binary32 BLAS product (see README.md, "Conformance").
// Version 2 (§5.1) uses the same loops with integer weights W_k instead of fl32(Δ²/σ_k): every
// product A·W·B and partial sum is then an integer below 2^53, which a JavaScript Number (binary64)
// holds exactly, so the plane is the reference decoder's to the bit; the residual blocks (RBLK,
// §4.1, §5.3) are then applied to the samples band by band. Version 3 is version 2 with the
// Y′CbCr transform for 16-bit samples too (§5.2): integer arithmetic below 2^35, exact.
// Version 4 adds the deblocking filter (§5.4): integer edge filtering of the 8-bit samples
// across patch edges, before the colour conversion and the residual blocks. Version 5 packs the
// factor blocks compactly (§4.2): several block records to a chunk, LEB128 fields, zstd frames
// without their magic number or small blocks stored raw. Version 6 adds adaptive quantization
// per patch (§5.5): a multiplier per row of U, derived from the integers in a serial pass over
// the patch grid (exact integers and fixed binary64 operations), applied in the exact product.
// Version 6 also adds the restoration filter
// (§5.6): an integer Wiener filter with activity classes on the 8-bit samples after the
// deblocking filter (RSTR chunk).

import { zstdDecompress, zstdReady } from "./zstd.js";

export const SIGNATURE = Uint8Array.from([0x89, 0x53, 0x56, 0x44, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The newest format version; this decoder reads every one of VERSIONS. */
export const VERSION = 7;
export const VERSIONS = [1, 2, 3, 4, 5, 6, 7];
/** The first version of the wrapped residual blocks (§4.1): int16 elements of 16-bit samples,
 * q and the sample taken modulo 2^16. */
const WRAPPED_VERSION = 7;
/** The RBLK element type of a wrapped block (its elements are int16). */
const WRAPPED_ELEMENT = 5;
/** The first version of the compact container (§4.2): several block records to a factor
 * chunk, LEB128 fields, zstd frames without their magic number or stored raw. */
const COMPACT_VERSION = 5;
/** The first version of adaptive quantization per patch (§5.5): PLAN's K and G. */
const AQ_VERSION = 6;
/** Version 6 (§5.5): largest K, the class multipliers M (1/16), C, the class boundaries as
 * ratios to G (binary64 literals), the clamp of each integer's magnitude, the mean term's
 * rational and the energy unit. */
const MAX_AQ_COMPONENTS = 16;
const AQ_CLASSES = [10, 11, 13, 16, 19, 23, 26];
const AQ_FLOOR = 58.5;
const AQ_RATIOS = [0.027048017531441957, 0.1146255054005839, 0.48576597057680293,
  2.058604473286984, 8.724061861322062, 36.97128629991275];
const AQ_CLAMP = 32767;
/** The first version with the restoration filter's RSTR chunk (§5.6). */
const RESTORATION_VERSION = 6;
/** §5.6's offsets o_j (dy, dx), in coefficient order: one of each point-symmetric pair of the
 * 7 × 7 diamond. */
const RESTORE_OFFSETS = [[0, 1], [0, 2], [0, 3], [1, -2], [1, -1], [1, 0], [1, 1], [1, 2], [2, -1], [2, 0], [2, 1], [3, 0]];
const ZSTD_MAGIC = Uint8Array.from([0x28, 0xb5, 0x2f, 0xfd]);
export const MAX_DIMENSION = 2 ** 20;
/** Most channels (planes) of a version 2 file (HEAD's u8 fields), and of a version 1 file. */
export const MAX_CHANNELS = 255;
export const MAX_CHANNELS_V1 = 4;
export const MAX_RANK = 4096;
export const MAX_WORK = 2 ** 36;
export const MAX_CHUNK = 2 ** 31 - 1;
/** Pillow's default MAX_IMAGE_PIXELS, the reference decoder's default pixel limit (§3). */
export const DEFAULT_MAX_PIXELS = 89478485;
/** Largest zstd window a block's frame may declare (spec §4: the Window_Descriptor, or the
 * content size of a single-segment frame): every reader decodes such a frame alike. */
export const MAX_ZSTD_WINDOW = 2 ** 23;
/** Version 2: largest shift F of the exact reconstruction (§3, §5.1). */
export const MAX_SHIFT = 63;
/** Version 2: largest |q| of a residual sample (§4.1). */
export const MAX_RESIDUAL = 2 ** 31 - 1;
/** Version 2: most elements (rows × width) one residual block may declare (§4.1). */
export const MAX_RESIDUAL_ELEMENTS = 2 ** 31 - 1;
/** Version 2: largest residual step of 32-bit integer samples (§4.1): |q·t| < 2^52, so every
 * value of §5.3's sum is exact in binary64. */
export const MAX_WIDE_STEP = 2 ** 21 - 1;
/** Version 2: the reference field of a residual block that has none (§4.1). */
export const NO_REFERENCE = 255;
/** Version 2 (§5.1): every partial sum of an exact plane stays below this, the largest integer
 * range binary64 holds exactly; and every W_k is at most this. */
const EXACT_LIMIT = 2 ** 53;
/** Version 2 (§5.1): |A| and |B| of an exact plane stay below this (strictly: the integers are
 * held in binary32 here, where 2^24 + 1 rounds to 2^24; their magnitude is taken before). */
const FACTOR_LIMIT = 2 ** 24;
/** Samples per channel of one band of the residual phase: the reference decoder's bands, so
 * that a file breaking a rule in two places is refused with the same rule named. */
const RESIDUAL_BAND_SAMPLES = 2 ** 18;

/** Sample types by HEAD code (§2); codes 4–8 are version 2's (arrays). */
const SAMPLE_TYPES = {
  1: "uint8", 2: "uint16", 3: "float32", 4: "int8", 5: "int16", 6: "int32", 7: "uint32", 8: "float64",
};
const SAMPLE_TYPES_V1 = [1, 2, 3];
/** The typed array `decode` returns for each sample type. */
export const SAMPLE_ARRAYS = {
  uint8: Uint8Array, uint16: Uint16Array, float32: Float32Array, int8: Int8Array,
  int16: Int16Array, int32: Int32Array, uint32: Uint32Array, float64: Float64Array,
};
/** Range of each integer sample type (§5.2), exact in binary64. */
const SAMPLE_RANGES = {
  uint8: [0, 255], uint16: [0, 65535], int8: [-128, 127], int16: [-32768, 32767],
  int32: [-(2 ** 31), 2 ** 31 - 1], uint32: [0, 2 ** 32 - 1],
};
const ELEMENT_BYTES = { 1: 1, 2: 2, 3: 4, 4: 4 };
const PATCH_SIZES = [2, 4, 8, 16, 32];
const FACTOR_TYPES = { UBLK: "U", SBLK: "S", VBLK: "V" };
const FLOAT32_MAX = 3.4028234663852886e38;
const FLOAT_MAX = { float32: FLOAT32_MAX, float64: Number.MAX_VALUE };
const FLOAT32_TINY = 1.1754943508222875e-38;
const END_OF_ROW = 0x08;
const fround = Math.fround;

export class SvdiError extends Error {
  constructor(message) {
    super(message);
    this.name = "SvdiError";
  }
}

// ----------------------------------------------------------------------------- bytes

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new SvdiError(`expected bytes, got ${data === null ? "null" : typeof data}`);
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  // Slicing-by-8 tables: eight bytes per step instead of one.
  for (let n = 0; n < 256; n++) {
    let c = table[n];
    for (let s = 1; s < 8; s++) {
      c = table[c & 0xff] ^ (c >>> 8);
      table[s * 256 + n] = c;
    }
  }
  return table;
})();

/** CRC-32 (ISO-HDLC, as zlib and PNG) of bytes[start, end), continuing from `crc`. */
export function crc32(bytes, start = 0, end = bytes.length, crc = 0) {
  const t = CRC_TABLE;
  let c = ~crc;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = c ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    c = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^
      t[1024 + (lo >>> 24)] ^ t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < end; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

function u32(b, at) {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function u16(b, at) {
  return (b[at] << 8) | b[at + 1];
}

function f64(b, at) {
  return new DataView(b.buffer, b.byteOffset + at, 8).getFloat64(0, false);
}

function chunkName(b, at) {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

/** Every chunk up to IEND as {type, start, end} (payload offsets), lengths and CRCs checked.
 * cut: for a file that ends early (decode's truncated: "fill"), an array the walk appends where
 * the file ends to, ending there instead of raising: {size, start, chunk, length} (chunk null if
 * its 8-byte header did not arrive). The chunk it ends in is not yielded (its CRC cannot be
 * checked), once its type and length, which no later byte mends, are checked. */
function* chunks(bytes, cut = null) {
  let pos = SIGNATURE.length;
  for (;;) {
    if (cut !== null && bytes.length - pos < 8) {
      cut.push({ size: bytes.length, start: pos, chunk: null, length: null });
      return;
    }
    if (cut === null && bytes.length - pos < 12) throw new SvdiError(`truncated file: chunk header expected at byte ${pos}`);
    const length = u32(bytes, pos);
    for (let i = pos + 4; i < pos + 8; i++) {
      const c = bytes[i];
      if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122))) {
        throw new SvdiError(`invalid chunk type at byte ${pos}`);
      }
    }
    const type = chunkName(bytes, pos + 4);
    if (cut !== null && length > MAX_CHUNK) {
      throw new SvdiError(`${type} chunk of ${length} bytes at byte ${pos} exceeds the chunk limit of ${MAX_CHUNK} bytes`);
    }
    if (cut !== null && length > bytes.length - pos - 12) {
      cut.push({ size: bytes.length, start: pos, chunk: type, length });
      return;
    }
    if (length > MAX_CHUNK || length > bytes.length - pos - 12) {
      throw new SvdiError(`truncated file: ${type} chunk of ${length} bytes at byte ${pos}`);
    }
    const start = pos + 8, end = start + length;
    if (crc32(bytes, pos + 4, end) !== u32(bytes, end)) {
      throw new SvdiError(`CRC mismatch in ${type} chunk at byte ${pos}`);
    }
    pos = end + 4;
    if (type === "IEND") {
      if (length) throw new SvdiError("IEND chunk must be empty");
      if (pos !== bytes.length) throw new SvdiError(`${bytes.length - pos} bytes of data after IEND`);
      return;
    }
    yield { type, start, end };
  }
}

function checkSignature(bytes) {
  if (bytes.length < SIGNATURE.length || SIGNATURE.some((v, i) => bytes[i] !== v)) {
    throw new SvdiError("not an SVDI file (bad signature)");
  }
}

// ----------------------------------------------------------------------------- HEAD and PLAN

function parseHead(b, start, end) {
  if (end - start < 2) throw new SvdiError("HEAD chunk too short");
  const version = u16(b, start);
  if (!VERSIONS.includes(version)) {
    throw new SvdiError(`unsupported format version ${version} (this reader knows ${VERSIONS.join(", ")})`);
  }
  if (end - start !== 23) throw new SvdiError(`HEAD chunk has ${end - start} bytes, expected 23`);
  const width = u32(b, start + 2), height = u32(b, start + 6);
  const sampleType = b[start + 10], channels = b[start + 11], colour = b[start + 12];
  const subsampling = b[start + 13], planes = b[start + 14], scale = f64(b, start + 15);
  if (!(width >= 1 && width <= MAX_DIMENSION && height >= 1 && height <= MAX_DIMENSION)) {
    throw new SvdiError(`image size ${width}x${height} outside 1..${MAX_DIMENSION}`);
  }
  if (!(sampleType in SAMPLE_TYPES) || (version === 1 && !SAMPLE_TYPES_V1.includes(sampleType))) {
    throw new SvdiError(`unknown sample type ${sampleType} (format version ${version})`);
  }
  const most = version === 1 ? MAX_CHANNELS_V1 : MAX_CHANNELS;
  if (channels < 1 || channels > most || planes !== channels) {
    throw new SvdiError(`invalid channel count ${channels} with ${planes} planes (format version ${version}: 1..${most})`);
  }
  if (colour === 1) {
    if ((channels !== 3 && channels !== 4) || !(sampleType === 1 || (sampleType === 2 && version >= 3))) {
      throw new SvdiError(`Y'CbCr transform needs 8-bit RGB or RGBA (version 3: or 16-bit), not ${channels} ${SAMPLE_TYPES[sampleType]} channels in version ${version}`);
    }
  } else if (colour !== 0) {
    throw new SvdiError(`unknown colour transform ${colour}`);
  }
  if ((subsampling !== 0 && subsampling !== 1) || (subsampling && colour !== 1)) {
    throw new SvdiError(`invalid chroma subsampling ${subsampling}`);
  }
  if (!(Number.isFinite(scale) && scale > 0)) throw new SvdiError(`invalid sample scale ${scale}`);
  const dtype = SAMPLE_TYPES[sampleType];
  if (dtype in FLOAT_MAX && scale > FLOAT_MAX[dtype] / 255) {
    throw new SvdiError(`sample scale ${scale} makes samples overflow ${dtype}`);
  }
  return {
    version, width, height, sampleType, dtype, channels, colour,
    subsampling, planeCount: planes, scale,
  };
}

/** Height and width of plane `index` implied by HEAD (§2). */
function planeShape(header, index) {
  if (header.subsampling && (index === 1 || index === 2)) {
    return [Math.ceil(header.height / 2), Math.ceil(header.width / 2)];
  }
  return [header.height, header.width];
}

function parsePlan(b, start, end, header, index) {
  const size = header.version >= AQ_VERSION ? 30 : header.version >= 4 ? 27 : header.version >= 2 ? 24 : 23;
  if (end - start !== size) {
    throw new SvdiError(`PLAN chunk has ${end - start} bytes, expected ${size} (format version ${header.version})`);
  }
  const plane = {
    index: b[start], layout: b[start + 1], patch: b[start + 2], height: u32(b, start + 3),
    width: u32(b, start + 7), rank: u32(b, start + 11), step: f64(b, start + 15),
    // Version 2: F of the exact reconstruction (§5.1); null marks a version 1 plane.
    shift: header.version >= 2 ? b[start + 23] : null,
    // Version 4: the deblocking filter's alpha, beta and tc (§5.4); all 0: none.
    deblock: header.version >= 4 ? [b[start + 24], b[start + 25], b[start + 26]] : [0, 0, 0],
    // Version 6: adaptive quantization's K (0: none) and G's binary16 bits (§5.5).
    aq: header.version >= AQ_VERSION ? [b[start + 27], (b[start + 28] << 8) | b[start + 29]] : [0, 0],
  };
  if (plane.shift !== null && plane.shift > MAX_SHIFT) {
    throw new SvdiError(`plane ${index}: shift ${plane.shift} exceeds ${MAX_SHIFT}`);
  }
  if (plane.index !== index) {
    throw new SvdiError(`PLAN chunk for plane ${plane.index} where plane ${index} was expected`);
  }
  const [h, w] = planeShape(header, index);
  if (plane.height !== h || plane.width !== w) {
    throw new SvdiError(`plane ${index} is ${plane.width}x${plane.height}, expected ${w}x${h}`);
  }
  if (plane.layout === 1) {
    if (!PATCH_SIZES.includes(plane.patch)) {
      throw new SvdiError(`plane ${index}: unsupported patch size ${plane.patch}`);
    }
  } else if (plane.layout !== 0 || plane.patch !== 0) {
    throw new SvdiError(`plane ${index}: unknown layout ${plane.layout}/${plane.patch}`);
  }
  // U-grid (gh × gw) and V-grid (vh × vw), §3.
  if (plane.layout === 1) {
    const p = plane.patch;
    plane.grid = [Math.ceil(h / p), Math.ceil(w / p)];
    plane.vgrid = [p, p];
  } else {
    plane.grid = [h, 1];
    plane.vgrid = [w, 1];
  }
  plane.m = plane.grid[0] * plane.grid[1];
  plane.n = plane.vgrid[0] * plane.vgrid[1];
  if (plane.rank > Math.min(plane.m, plane.n, MAX_RANK)) {
    throw new SvdiError(`plane ${index}: rank ${plane.rank} exceeds min(${plane.m}, ${plane.n}, ${MAX_RANK})`);
  }
  if (!(Number.isFinite(plane.step) && plane.step > 0)) {
    throw new SvdiError(`plane ${index}: invalid quantizer step ${plane.step}`);
  }
  plane.filtered = plane.deblock.some((v) => v !== 0);
  if (plane.filtered) {
    const what = `plane ${index}: deblocking filter (${plane.deblock.join(", ")})`;
    if (Math.min(...plane.deblock) < 1) throw new SvdiError(`${what}: alpha, beta and tc must all be 0 (no filter) or all >= 1`);
    if (plane.layout !== 1) throw new SvdiError(`${what} on a plane of the plain layout (patch layouts only)`);
    if (header.sampleType !== 1) throw new SvdiError(`${what} on ${header.dtype} samples (8-bit samples only)`);
  }
  plane.adapted = plane.aq[0] !== 0;
  if (plane.aq[0] !== 0 || plane.aq[1] !== 0) {
    const what = `plane ${index}: adaptive quantization (K ${plane.aq[0]}, G 0x${plane.aq[1].toString(16).padStart(4, "0")})`;
    if (!(plane.aq[0] >= 2 && plane.aq[0] <= MAX_AQ_COMPONENTS)) throw new SvdiError(`${what}: K must be 2..${MAX_AQ_COMPONENTS}, or K and G both 0 (off)`);
    if (plane.aq[1] === 0 || plane.aq[1] >= 0x7c00) throw new SvdiError(`${what}: G must be a positive finite binary16`);
    if (plane.layout !== 1) throw new SvdiError(`${what} on a plane of the plain layout (patch layouts only)`);
  }
  plane.layoutName = plane.layout === 1 ? `patch${plane.patch}` : "plain";
  return plane;
}

function checkWork(planes) {
  let work = 0;
  for (const p of planes) work += p.m * p.n * p.rank;
  if (work > MAX_WORK) throw new SvdiError(`reconstruction work ${work} exceeds the limit ${MAX_WORK}`);
}

// The pixels the limit counts: an image of more than 4 channels once for every 4 (a Pillow
// pixel holds at most 4 samples), as the reference decoder counts them (spec §3, Limits).
function checkPixels(header, maxPixels) {
  const counted = header.width * header.height * Math.ceil(header.channels / 4);
  if (maxPixels != null && counted > maxPixels) {
    const note = header.channels <= 4 ? "" :
      ` of ${header.channels} channels (counted as ${counted} pixels, one for every 4 channels)`;
    throw new SvdiError(`image of ${header.width}x${header.height} pixels${note} exceeds the ` +
      `limit of ${maxPixels} pixels (maxPixels)`);
  }
}

// ----------------------------------------------------------------------------- zstd frames

/** Check one zstd frame (RFC 8878) in b[start, end) before decompressing it: a single frame,
 * no dictionary, a declared content size equal to `nbytes`, block sizes within the frame's
 * limits, and nothing after the frame. Walks the block headers only (3 bytes per block of up
 * to 128 KiB), not the data. The window costs no memory: libzstd's one-shot decoder uses the
 * output buffer (exactly `nbytes`) as its window; only windows beyond what libzstd's 32-bit
 * build accepts are refused, with a message naming the limit. */
function frameHeader(b, start, end, what, magicless = false) {
  const bad = (why) => new SvdiError(`${what}: bad zstd frame (${why})`);
  if (magicless) start -= 4; // version 5 (§4.2): the frame starts at its descriptor
  if (end - start < 6) throw bad("frame header truncated");
  if (!magicless && (b[start] !== 0x28 || b[start + 1] !== 0xb5 || b[start + 2] !== 0x2f || b[start + 3] !== 0xfd)) {
    throw bad("unknown frame magic number");
  }
  const descriptor = b[start + 4];
  const fcsFlag = descriptor >> 6, singleSegment = (descriptor >> 5) & 1;
  const checksum = (descriptor >> 2) & 1, dictFlag = descriptor & 3;
  if (descriptor & 8) throw bad("reserved bit set");
  let at = start + 5;
  let window = 0;
  if (!singleSegment) {
    const wd = b[at++];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][dictFlag];
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag];
  if (end - at < dictBytes + fcsBytes) throw bad("frame header truncated");
  let dictId = 0;
  for (let i = 0; i < dictBytes; i++) dictId += b[at + i] * 2 ** (8 * i);
  at += dictBytes;
  if (dictId !== 0) throw bad(`needs dictionary ${dictId}`);
  let declared = -1n;
  if (fcsBytes) {
    declared = 0n;
    for (let i = fcsBytes - 1; i >= 0; i--) declared = (declared << 8n) | BigInt(b[at + i]);
    if (fcsBytes === 2) declared += 256n;
  }
  at += fcsBytes;
  return { declared, window, singleSegment, checksum, at, bad };
}

function checkFrame(b, start, end, nbytes, what, form = "zstd") {
  if (form === "stored") {
    if (end - start !== nbytes) throw new SvdiError(`${what}: ${end - start} stored bytes, header implies ${nbytes}`);
    return;
  }
  let { declared, window, singleSegment, checksum, at, bad } = frameHeader(b, start, end, what, form === "magicless");
  if (declared !== BigInt(nbytes)) {
    throw new SvdiError(`${what}: zstd frame declares ${declared} bytes, header implies ${nbytes}`);
  }
  if (singleSegment) window = nbytes;
  if (window > MAX_ZSTD_WINDOW) {
    throw new SvdiError(`${what}: zstd window of ${window} bytes exceeds ${MAX_ZSTD_WINDOW}`);
  }
  const blockMax = Math.min(window, 131072);
  for (let last = 0; !last;) {
    if (end - at < 3) throw new SvdiError(`${what}: zstd frame is incomplete`);
    const head = b[at] | (b[at + 1] << 8) | (b[at + 2] << 16);
    at += 3;
    last = head & 1;
    const type = (head >> 1) & 3, size = head >>> 3;
    if (type === 3) throw bad("reserved block type");
    if (size > blockMax) throw bad(`block of ${size} bytes exceeds ${blockMax}`);
    at += type === 1 ? 1 : size;
    if (at > end) throw new SvdiError(`${what}: zstd frame is incomplete`);
  }
  if (checksum) at += 4;
  if (at !== end) {
    throw new SvdiError(`${what}: zstd frame is incomplete or followed by extra data`);
  }
}

function decompressFrame(block, bytes) {
  const frame = bytes.subarray(block.frameStart, block.frameEnd);
  // Version 5 (§4.2): the content itself, copied into its own buffer, as libzstd's output is
  // (the decoder reads it from offset 0 of its buffer; a Node Buffer's slice() would not copy).
  if (block.form === "stored") return new Uint8Array(frame);
  const failure = zstdReady();
  if (failure) throw new SvdiError(failure);
  let whole = frame;
  if (block.form === "magicless") { // libzstd's one-shot decoder wants the magic number back
    whole = new Uint8Array(frame.length + 4);
    whole.set(ZSTD_MAGIC);
    whole.set(frame, 4);
  }
  const out = zstdDecompress(whole, block.rawBytes);
  if (typeof out === "string") throw new SvdiError(`${block.what}: corrupt zstd data (${out})`);
  return out;
}

// ----------------------------------------------------------------------------- metadata (§1.1)

const MAX_ICC = 2 ** 24;
const METADATA_LIMITS = {
  eXIf: 2 ** 24, iCCP: 80 + 1 + 18 + MAX_ICC + (MAX_ICC >> 7) + 64, xMPd: 2 ** 24, pHYs: 9,
  iTXt: 2 ** 20,
};
/** Most iTXt chunks in a file, and most bytes of their payloads together (§1.1). */
const MAX_TEXTS = 4096;
const MAX_TEXT_TOTAL = 2 ** 24;
const UTF8 = new TextDecoder("utf-8", { fatal: true });

function utf8(b, start, end, what) {
  try {
    return UTF8.decode(b.subarray(start, end));
  } catch {
    throw new SvdiError(`${what}: text is not UTF-8`);
  }
}

/** A PNG keyword in b[start, end): 1-79 printable Latin-1 characters (32-126, 161-255). */
function keyword(b, start, end, what) {
  if (end - start < 1 || end - start > 79) {
    throw new SvdiError(`${what}: keyword must be 1-79 printable Latin-1 characters`);
  }
  let key = "";
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c < 32 || (c > 126 && c < 161)) {
      throw new SvdiError(`${what}: keyword must be 1-79 printable Latin-1 characters`);
    }
    key += String.fromCharCode(c);
  }
  return key;
}

function nulAt(b, from, limit) {
  for (let i = from; i < limit; i++) if (b[i] === 0) return i;
  return -1;
}

/** The metadata chunks of a file, in file order, with spec §1.1's rules: each of eXIf, iCCP,
 * xMPd, pHYs at most once, iTXt keywords distinct, at most MAX_TEXTS iTXt chunks of at most
 * MAX_TEXT_TOTAL bytes together, all before the first factor block. The texts are an object
 * without a prototype: a keyword such as "constructor" is a text like any other. */
class MetadataReader {
  constructor() {
    this.metadata = { text: Object.create(null) };
    this.seen = new Set();
    this.blocksSeen = false;
    this.texts = 0;
    this.textBytes = 0;
  }

  add(type, b, start, end) {
    if (!(type in METADATA_LIMITS)) return false;
    if (this.blocksSeen) throw new SvdiError(`${type} chunk after the factor blocks`);
    const length = end - start;
    if (length > METADATA_LIMITS[type]) {
      throw new SvdiError(`${type} chunk of ${length} bytes exceeds its limit of ${METADATA_LIMITS[type]}`);
    }
    if (type !== "iTXt" && this.seen.has(type)) throw new SvdiError(`more than one ${type} chunk`);
    this.seen.add(type);
    const m = this.metadata;
    if (type === "eXIf") {
      const order = String.fromCharCode(...b.subarray(start, start + 4));
      if (length < 8 || (order !== "II*\0" && order !== "MM\0*")) {
        throw new SvdiError("eXIf: EXIF must be a TIFF structure starting with II*\\0 or MM\\0*");
      }
      m.exif = b.slice(start, end);
    } else if (type === "xMPd") {
      if (length < 1) throw new SvdiError(`xMPd: an XMP packet has 1..${2 ** 24} bytes, got 0`);
      m.xmp = utf8(b, start, end, "xMPd");
    } else if (type === "pHYs") {
      if (length !== 9) throw new SvdiError(`pHYs chunk has ${length} bytes, expected 9`);
      const x = u32(b, start), y = u32(b, start + 4), unit = b[start + 8];
      if (!x || !y || unit > 2) throw new SvdiError(`pHYs: invalid pixel size ${x}/${y} per unit ${unit}`);
      m.dpi = unit === 2 ? [x, y] : unit === 1 ? [x * 0.0254, y * 0.0254] : null;
    } else if (type === "iCCP") {
      m.iccProfile = parseIcc(b, start, end);
    } else {
      if (this.texts === MAX_TEXTS) throw new SvdiError(`more than ${MAX_TEXTS} iTXt chunks`);
      if (this.textBytes + length > MAX_TEXT_TOTAL) {
        throw new SvdiError(`iTXt chunks of more than ${MAX_TEXT_TOTAL} bytes together`);
      }
      this.texts++;
      this.textBytes += length;
      const [key, text] = parseText(b, start, end);
      if (key in m.text) throw new SvdiError(`iTXt: keyword '${key}' appears twice`);
      m.text[key] = text;
    }
    return true;
  }
}

function parseIcc(b, start, end) {
  const nul = nulAt(b, start, Math.min(end, start + 81));
  if (nul < 0) throw new SvdiError("iCCP: profile name not terminated within 80 bytes");
  keyword(b, start, nul, "iCCP");
  if (end < nul + 2 || b[nul + 1] !== 0) throw new SvdiError("iCCP: compression method must be 0 (zstd)");
  const frameStart = nul + 2;
  const { declared } = frameHeader(b, frameStart, end, "iCCP");
  if (declared < 0n || declared > BigInt(MAX_ICC)) {
    throw new SvdiError(`iCCP: zstd frame must declare a content size of at most ${MAX_ICC}`);
  }
  const size = Number(declared);
  checkFrame(b, frameStart, end, size, "iCCP");
  const failure = zstdReady();
  if (failure) throw new SvdiError(failure);
  const profile = zstdDecompress(b.subarray(frameStart, end), size);
  if (typeof profile === "string") throw new SvdiError(`iCCP: corrupt zstd data (${profile})`);
  const signature = String.fromCharCode(...profile.subarray(36, 40));
  if (size < 132 || u32(profile, 0) !== size || signature !== "acsp") {
    throw new SvdiError(`iCCP: not an ICC profile (its header does not give its size ${size} ` +
      "and the signature 'acsp')");
  }
  return profile;
}

function parseText(b, start, end) {
  const nul = nulAt(b, start, Math.min(end, start + 80));
  if (nul < 0) throw new SvdiError("iTXt: keyword not terminated within 80 bytes");
  const key = keyword(b, start, nul, "iTXt");
  if (end < nul + 3 || b[nul + 1] !== 0 || b[nul + 2] !== 0) {
    throw new SvdiError(`iTXt '${key}': only uncompressed text (flag 0, method 0) is allowed`);
  }
  const langEnd = nulAt(b, nul + 3, end);
  const tkeyEnd = langEnd >= 0 ? nulAt(b, langEnd + 1, end) : -1;
  if (tkeyEnd < 0) throw new SvdiError(`iTXt '${key}': language tag or translated keyword not terminated`);
  for (let i = nul + 3; i < langEnd; i++) {
    const c = b[i];
    if (!(c === 45 || (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122))) {
      throw new SvdiError(`iTXt '${key}': invalid language tag`);
    }
  }
  utf8(b, langEnd + 1, tkeyEnd, `iTXt '${key}'`);
  if (nulAt(b, tkeyEnd + 1, end) >= 0) throw new SvdiError(`iTXt '${key}': NUL inside the text`);
  return [key, utf8(b, tkeyEnd + 1, end, `iTXt '${key}'`)];
}

// ----------------------------------------------------------------------------- factor blocks

/** Whether a sparse block of `rows` rows and `count` components can hold these stream sizes
 * (spec §4, consequences of the run/level grammar): one end-of-row symbol per row and at most
 * `count` value symbols in a row; each escape belongs to a value symbol; a run escape moves 16
 * columns or more, so a row holds at most floor(count / 16) of them, and the value symbols take
 * at least (values + 15 run escapes) of the block's rows x count columns. */
function sparseSizesFit(rows, count, symbols, runEscapes, valueEscapes) {
  const values = symbols - rows;
  return values >= 0 && values <= rows * count && runEscapes <= values && valueEscapes <= values &&
    runEscapes <= rows * Math.floor(count / 16) && values + 15 * runEscapes <= rows * count;
}

/** A block of `count` components of plane `index` placed after the blocks before it (`cursor`,
 * advanced): its first component (version 5 stores none: the cursor), grid rows, what. */
function placeBlock(type, index, first, count, planes, cursor) {
  const factor = FACTOR_TYPES[type];
  const key = `${index}${factor}`;
  const at = cursor.get(key) || 0;
  if (first === null) first = at;
  const what = `plane ${index} ${factor} block at component ${first}`;
  if (index >= planes.length) throw new SvdiError(`${what}: no such plane`);
  const plane = planes[index];
  if (first !== at || count < 1 || first + count > plane.rank) {
    throw new SvdiError(`${what}: components ${first}..${first + count} out of order or past rank ${plane.rank}`);
  }
  cursor.set(key, first + count);
  const rows = factor === "U" ? plane.m : factor === "V" ? plane.n : 1;
  return { factor, first, rows, what };
}

/** A dense block's element type and predictor checked (§4): integers for U and V, float32
 * without a predictor for S. */
function denseFields(block, code, predictor) {
  const { factor, what } = block;
  if (!(code in ELEMENT_BYTES) || (factor === "S") !== (code === 4)) {
    throw new SvdiError(`${what}: invalid element type ${code}`);
  }
  if (predictor > 3 || (factor === "S" && predictor)) {
    throw new SvdiError(`${what}: invalid predictor ${predictor}`);
  }
  const elements = block.count * block.rows;
  Object.assign(block, { elementType: code, predictor, elements, rawBytes: elements * ELEMENT_BYTES[code] });
}

/** A sparse block's escape type and stream sizes checked (§4). */
function sparseFields(block, code, symbols, runEscapes, valueEscapes) {
  const { what, rows, count } = block;
  if (code !== 2 && code !== 3) throw new SvdiError(`${what}: invalid escape type ${code}`);
  if (!sparseSizesFit(rows, count, symbols, runEscapes, valueEscapes)) {
    throw new SvdiError(`${what}: stream sizes ${symbols}/${runEscapes}/${valueEscapes} do not fit ${rows} rows`);
  }
  Object.assign(block, {
    escapeType: code, symbols, runEscapes, valueEscapes,
    rawBytes: symbols + 2 * runEscapes + ELEMENT_BYTES[code] * valueEscapes,
  });
}

function parseBlock(type, b, start, end, planes, cursor) {
  if (end - start < 10) throw new SvdiError(`${type} chunk too short`);
  const index = b[start], count = u32(b, start + 5), coding = b[start + 9];
  const place = placeBlock(type, index, u32(b, start + 1), count, planes, cursor);
  const block = { ...place, plane: index, count, coding, stored: end - start + 12, form: "zstd" };
  const what = block.what;
  let at = start + 10;
  if (coding === 0) {
    if (end - at < 6) throw new SvdiError(`${what}: descriptor too short`);
    const elements = u32(b, at + 2);
    if (elements !== count * block.rows) {
      throw new SvdiError(`${what}: declares ${elements} elements, header implies ${count * block.rows}`);
    }
    denseFields(block, b[at], b[at + 1]);
    at += 6;
  } else if (coding === 1 && block.factor !== "S") {
    if (end - at < 13) throw new SvdiError(`${what}: descriptor too short`);
    sparseFields(block, b[at], u32(b, at + 1), u32(b, at + 5), u32(b, at + 9));
    at += 13;
  } else {
    throw new SvdiError(`${what}: unknown coding ${coding}`);
  }
  block.frameStart = at;
  block.frameEnd = end;
  checkFrame(b, at, end, block.rawBytes, what);
  return block;
}

/** An unsigned LEB128 number at `at` (§4.2): at most 5 bytes, below 2^32, in its shortest form.
 * [value, position after it]. */
function varint(b, at, end, what) {
  let value = 0;
  for (let i = 0; i < 5; i++) {
    if (at + i >= end) throw new SvdiError(`${what}: record ends inside a number`);
    const byte = b[at + i];
    value += (byte & 0x7f) * 2 ** (7 * i);
    if (!(byte & 0x80)) {
      if (i && !byte) throw new SvdiError(`${what}: number not in its shortest form`);
      if (value >= 2 ** 32) throw new SvdiError(`${what}: number of ${value} exceeds 32 bits`);
      return [value, at + i + 1];
    }
  }
  throw new SvdiError(`${what}: number longer than 5 bytes`);
}

/** The block records of a version 5 factor chunk (§4.2), back to back up to the chunk's end. */
function parseRecords(type, b, start, end, planes, cursor) {
  const blocks = [];
  for (let at = start; at < end || !blocks.length;) {
    if (end - at < 3) throw new SvdiError(`${type} block record too short`);
    const recordStart = at, index = b[at];
    let count;
    [count, at] = varint(b, at + 1, end, `${type} block record`);
    const place = placeBlock(type, index, null, count, planes, cursor);
    const what = place.what;
    if (at >= end) throw new SvdiError(`${what}: record too short`);
    const byte = b[at++];
    const coding = byte & 1, stored = (byte & 2) !== 0, predictor = (byte >> 2) & 3, code = (byte >> 4) & 7;
    if (byte & 0x80) throw new SvdiError(`${what}: coding byte 0x${byte.toString(16).padStart(2, "0")} sets its reserved bit`);
    const block = { ...place, plane: index, count, coding, form: stored ? "stored" : "magicless" };
    if (coding === 0) {
      denseFields(block, code, predictor);
    } else if (place.factor === "S") {
      throw new SvdiError(`${what}: unknown coding ${coding} (S blocks are dense)`);
    } else {
      if (predictor) throw new SvdiError(`${what}: a sparse block with predictor bits ${predictor}`);
      let symbols, runEscapes, valueEscapes;
      [symbols, at] = varint(b, at, end, what);
      [runEscapes, at] = varint(b, at, end, what);
      [valueEscapes, at] = varint(b, at, end, what);
      sparseFields(block, code, symbols, runEscapes, valueEscapes);
    }
    let size = block.rawBytes;
    if (!stored) [size, at] = varint(b, at, end, what);
    if (at + size > end) throw new SvdiError(`${what}: frame of ${size} bytes past the chunk's end`);
    block.frameStart = at;
    block.frameEnd = at + size;
    block.stored = at + size - recordStart;
    checkFrame(b, at, at + size, block.rawBytes, what, block.form);
    blocks.push(block);
    at += size;
  }
  return blocks;
}

/** The singular values of an SBLK, decompressed and checked (finite, > 0). */
function readSigma(block, bytes) {
  const raw = decompressFrame(block, bytes);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const sigma = new Float32Array(block.count);
  for (let i = 0; i < block.count; i++) {
    const s = view.getFloat32(4 * i, true);
    if (!(Number.isFinite(s) && s > 0)) {
      throw new SvdiError(`${block.what}: singular values must be finite and positive`);
    }
    sigma[i] = s;
  }
  return sigma;
}

// ----------------------------------------------------------------------------- residual blocks (§4.1)

/** Largest step of a residual block of integer samples (§4.1): 2·(max − min) + 1 for 8- and
 * 16-bit types, 2^21 − 1 for 32-bit ones (so that |q·t| < 2^52). */
function residualStepLimit(dtype) {
  if (dtype === "int32" || dtype === "uint32") return MAX_WIDE_STEP;
  const [lo, hi] = SAMPLE_RANGES[dtype];
  return 2 * (hi - lo) + 1;
}

/** A binary64 value written as Python writes a float (1.0, nan, inf), so that the rules'
 * messages read as the reference decoder's for the usual values. */
function pyFloat(x) {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  return Number.isInteger(x) && Math.abs(x) < 1e16 ? x.toFixed(1) : String(x);
}

/** An RBLK chunk's fields checked against the header (spec §4.1) and its frame against the size
 * they imply, before anything is decompressed. */
function parseResidual(b, start, end, header) {
  if (end - start < 28) throw new SvdiError("RBLK chunk too short");
  const channel = b[start], reference = b[start + 1], first = u32(b, start + 2);
  const rows = u32(b, start + 6), step = f64(b, start + 10), bound = f64(b, start + 18);
  const elementType = b[start + 26], predictor = b[start + 27];
  const what = `channel ${channel} residual block at row ${first}`;
  if (channel >= header.channels) throw new SvdiError(`${what}: no such channel`);
  if (reference !== NO_REFERENCE && (reference >= header.channels || reference === channel)) {
    throw new SvdiError(`${what}: invalid reference channel ${reference}`);
  }
  if (rows < 1 || first + rows > header.height) {
    throw new SvdiError(`${what}: rows ${first}..${first + rows} outside 0..${header.height}`);
  }
  if (rows * header.width > MAX_RESIDUAL_ELEMENTS) {
    throw new SvdiError(`${what}: ${rows} x ${header.width} elements exceed ${MAX_RESIDUAL_ELEMENTS}`);
  }
  if (header.dtype in FLOAT_MAX) {
    if (!(Number.isFinite(step) && step > 0)) throw new SvdiError(`${what}: invalid step ${pyFloat(step)}`);
  } else {
    const top = residualStepLimit(header.dtype);
    if (!(Number.isInteger(step) && step >= 1 && step <= top)) {
      throw new SvdiError(`${what}: step ${pyFloat(step)} is not an integer in 1..${top}`);
    }
  }
  if (!(Number.isFinite(bound) && bound >= 0)) throw new SvdiError(`${what}: invalid bound ${pyFloat(bound)}`);
  const wrapped = wrappedElement(elementType, header);
  if (!(elementType in INTEGER_TYPES) && !wrapped) throw new SvdiError(`${what}: invalid element type ${elementType}`);
  if (wrapped && header.dtype !== "uint16" && header.dtype !== "int16") {
    throw new SvdiError(`${what}: wrapped residuals (element type ${elementType}) of ${header.dtype} samples (uint16 or int16 only)`);
  }
  if (predictor > 3) throw new SvdiError(`${what}: invalid predictor ${predictor}`);
  const block = residualBlock(b, start, end, header);
  checkFrame(b, start + 28, end, block.rawBytes, what);
  return block;
}

/** Whether an RBLK's element type is wrapped int16 (version 7, §4.1). */
function wrappedElement(elementType, header) {
  return elementType === WRAPPED_ELEMENT && header.version >= WRAPPED_VERSION;
}

/** The block of an RBLK chunk (payload bytes [start, end)) whose fields parseResidual checked. */
function residualBlock(b, start, end, header) {
  const channel = b[start], reference = b[start + 1], first = u32(b, start + 2);
  const rows = u32(b, start + 6), step = f64(b, start + 10), bound = f64(b, start + 18);
  const elementType = b[start + 26], predictor = b[start + 27];
  const wrapped = wrappedElement(elementType, header);
  const elementCode = wrapped ? 2 : elementType; // a wrapped block's elements are int16
  return {
    channel, reference, first, rows, step, bound, elementType, elementCode, wrapped, predictor,
    what: `channel ${channel} residual block at row ${first}`,
    rawBytes: rows * header.width * ELEMENT_BYTES[elementCode], frameStart: start + 28, frameEnd: end,
    stored: end - start + 12,
  };
}

/** A file's residual blocks in file order, as columns: where each chunk's payload lies, its
 * channel, reference channel, first row and rows (26 bytes a block); a block's other fields are
 * read again from its chunk (`block(i)`) when its rows are decoded, so a file of many small
 * residual blocks costs a few dozen bytes a block, not an object each. `ofChannel`: each
 * channel's blocks (their indices), in row order. */
class ResidualTable {
  constructor(bytes, header) {
    this.bytes = bytes;
    this.header = header;
    this.length = 0;
    this.start = new Float64Array(16);
    this.end = new Float64Array(16);
    this.channel = new Uint8Array(16);
    this.reference = new Uint8Array(16);
    this.first = new Uint32Array(16);
    this.rows = new Uint32Array(16);
    this.ofChannel = new Map();
  }

  /** A parsed block (parseResidual's), appended. */
  push(block) {
    if (this.length === this.start.length) {
      for (const name of ["start", "end", "channel", "reference", "first", "rows"]) {
        const grown = new this[name].constructor(2 * this.length);
        grown.set(this[name]);
        this[name] = grown;
      }
    }
    const i = this.length++;
    this.start[i] = block.frameStart - 28;
    this.end[i] = block.frameEnd;
    this.channel[i] = block.channel;
    this.reference[i] = block.reference;
    this.first[i] = block.first;
    this.rows[i] = block.rows;
    if (!this.ofChannel.has(block.channel)) this.ofChannel.set(block.channel, []);
    this.ofChannel.get(block.channel).push(i);
  }

  /** Block i, made again from its chunk. */
  block(i) {
    return residualBlock(this.bytes, this.start[i], this.end[i], this.header);
  }

  *[Symbol.iterator]() {
    for (let i = 0; i < this.length; i++) yield this.block(i);
  }
}

/** The order rules of the residual blocks (spec §4.1), checked block by block as they are read:
 * each channel's blocks in row order, covering [0, height) or absent; a block with a reference
 * channel finds that channel's block of the same rows earlier, itself without a reference; a
 * channel has a reference in all its blocks or in none, and a referenced channel has none. */
class ResidualOrder {
  constructor(header, table) {
    this.height = header.height;
    this.table = table; // the blocks checked so far, which add appends to
    this.cursor = new Map(); // next row of each channel
    this.hasReference = new Map();
    this.referenced = new Set();
    // 256 channel + reference -> where in the reference's blocks the last search ended: a channel's
    // blocks come in row order, so its search of a reference's only goes on
    this.searched = new Map();
  }

  add(block) {
    const { channel: c, reference: ref, what } = block;
    const expected = this.cursor.get(c) ?? 0;
    if (block.first !== expected) throw new SvdiError(`${what}: rows out of order (expected row ${expected})`);
    this.cursor.set(c, block.first + block.rows);
    const has = ref !== NO_REFERENCE;
    if (!this.hasReference.has(c)) this.hasReference.set(c, has);
    if (this.hasReference.get(c) !== has) {
      throw new SvdiError(`${what}: a channel has a reference in all its blocks or in none`);
    }
    if (has) {
      if (this.referenced.has(c)) throw new SvdiError(`${what}: channel ${c} is a reference and cannot have one`);
      if (this.hasReference.get(ref) !== false || !this.hasBlock(c, ref, block)) {
        throw new SvdiError(`${what}: reference channel ${ref} has no earlier block of the same rows without a reference`);
      }
      this.referenced.add(ref);
    }
    this.table.push(block);
  }

  /** Whether the reference channel's blocks so far hold one of the same first row and row count
   * as `block`. */
  hasBlock(channel, reference, block) {
    const { table } = this, blocks = table.ofChannel.get(reference) ?? [], key = 256 * channel + reference;
    let at = this.searched.get(key) ?? 0;
    while (at < blocks.length && table.first[blocks[at]] < block.first) at++;
    this.searched.set(key, at);
    return at < blocks.length && table.first[blocks[at]] === block.first && table.rows[blocks[at]] === block.rows;
  }

  finish() {
    for (const [c, end] of [...this.cursor].sort((a, b) => a[0] - b[0])) {
      if (end !== this.height) throw new SvdiError(`channel ${c}: residual blocks cover ${end} of ${this.height} rows`);
    }
  }
}

// ----------------------------------------------------------------------------- column means (§3.1)

/** A MEAN chunk (version 2) checked against its plane (spec §3.1: an existing plane of the plain
 * layout, at most one chunk per plane) and its frame against the plane's n binary32 values,
 * before anything is decompressed; the values are read when the plane is decoded. */
function parseMeans(b, start, end, header, planes, means) {
  if (header.version < 2) throw new SvdiError("column means (MEAN) in a version 1 file");
  if (end - start < 1) throw new SvdiError("MEAN chunk too short");
  const index = b[start];
  if (index >= planes.length) throw new SvdiError(`MEAN chunk for plane ${index}: no such plane`);
  if (means.has(index)) throw new SvdiError(`plane ${index}: more than one MEAN chunk`);
  const plane = planes[index];
  if (plane.layout !== 0) throw new SvdiError(`plane ${index}: column means need the plain layout`);
  const what = `plane ${index} column means`;
  const rawBytes = 4 * plane.n; // n ≤ 2^20: at most 4 MiB, and the frame must declare exactly this
  checkFrame(b, start + 1, end, rawBytes, what);
  return { plane: index, columns: plane.n, what, rawBytes, frameStart: start + 1, frameEnd: end, stored: end - start + 12 };
}

/** A plane's column means: its MEAN chunk's binary32 values, widened exactly to binary64 (the
 * addition of §5.1 is one binary64 operation), each checked finite. */
function readMeans(block, bytes) {
  const raw = decompressFrame(block, bytes);
  const values = littleEndian(Float32Array, raw, 0, block.columns);
  const means = Float64Array.from(values);
  for (let j = 0; j < means.length; j++) {
    if (!Number.isFinite(means[j])) throw new SvdiError(`${block.what}: a mean is not finite`);
  }
  return means;
}

// ----------------------------------------------------------------------------- container

/** Parse and validate a whole file (every chunk, CRC, order, limits, frame headers); decompress
 * only the singular values. */
/** The RSTR chunk (version 6, §5.6): records of plane, class count K (1..4), K − 1
 * non-decreasing u16 bounds and 12 signed coefficients per class in −64..63, planes
 * increasing, nothing after the last. A Map plane -> { bounds, coefficients (Int32Array K × 12) }. */
function parseRestoration(b, start, end, header, planes) {
  if (header.version < RESTORATION_VERSION) throw new SvdiError(`restoration filter (RSTR) in a version ${header.version} file`);
  if (header.dtype !== "uint8") throw new SvdiError(`restoration filter on ${header.dtype} samples (8-bit samples only)`);
  if (start === end) throw new SvdiError("RSTR chunk without a record");
  const out = new Map();
  let at = start, last = -1;
  while (at < end) {
    if (end - at < 2) throw new SvdiError("RSTR record truncated");
    const index = b[at], classes = b[at + 1];
    if (index >= planes.length || index <= last) {
      throw new SvdiError(`RSTR record for plane ${index}: no such plane, or not after the previous record's plane`);
    }
    if (classes < 1 || classes > 4) throw new SvdiError(`RSTR plane ${index}: ${classes} classes, not 1..4`);
    const size = 2 + 2 * (classes - 1) + 12 * classes;
    if (end - at < size) throw new SvdiError(`RSTR record of plane ${index} truncated`);
    const bounds = [];
    for (let k = 0; k < classes - 1; k++) bounds.push(u16(b, at + 2 + 2 * k));
    for (let k = 1; k < bounds.length; k++) {
      if (bounds[k] < bounds[k - 1]) throw new SvdiError(`RSTR plane ${index}: activity bounds decrease`);
    }
    const coefficients = new Int32Array(12 * classes);
    for (let j = 0; j < coefficients.length; j++) {
      const v = b[at + 2 + 2 * (classes - 1) + j];
      coefficients[j] = v >= 128 ? v - 256 : v;
      if (coefficients[j] < -64 || coefficients[j] > 63) throw new SvdiError(`RSTR plane ${index}: coefficient outside -64..63`);
    }
    out.set(index, { bounds, coefficients });
    last = index;
    at += size;
  }
  return out;
}

/** Where a file that ends early ends, in words (as the reference decoder says it). */
function cutWhere({ size, start, chunk, length }) {
  if (chunk === null) {
    return size > start ? `the file ends at byte ${size}, inside the header of the chunk at byte ${start}`
      : `the file ends at byte ${size}, where a chunk header was expected`;
  }
  return `the file ends at byte ${size}, inside the ${chunk} chunk at byte ${start} ` +
    `(${length} bytes of payload, ${size - start} of its ${12 + length} bytes present)`;
}

/** The chunk a file ends in, after its PLAN chunks: refused, as in a whole file, where its type
 * cannot come there (the bytes that did not arrive cannot change that). */
function checkCutChunk(ended, header, blocks, residuals) {
  const type = ended.chunk;
  if (type.charCodeAt(0) >= 97 || type === "IEND") return;
  if (type in FACTOR_TYPES && !residuals) return;
  if (type === "RBLK" && header.version >= 2) return;
  if ((type === "MEAN" || type === "RSTR") && !blocks && !residuals) return;
  throw new SvdiError(`${type} chunk at byte ${ended.start} out of place or unknown (the file ends inside it at byte ${ended.size})`);
}

/** The most components every plane of a file that ends early has whole (U, S and V blocks all
 * in), null if every plane is whole: the blocks come most important first (§4), so that many
 * components is what its factor blocks give, a preview. */
function componentsArrived(truncation, planes) {
  const short = truncation.components.filter((k, i) => k < planes[i].rank);
  return short.length ? Math.min(...short) : null;
}

/** Parse and validate a file. truncated: a file that ends early is taken as far as it arrived
 * (decode's truncated: "fill"): its whole chunks checked as in a whole file, the chunk it ends
 * in dropped, the container's `truncation` saying where it ends, how many components of each
 * plane and how many rows of each channel's residual blocks arrived. Only the rules the missing
 * bytes could still satisfy go unchecked; a file that ends before its HEAD and PLAN chunks are
 * whole is refused. */
function parseContainer(data, { maxPixels = DEFAULT_MAX_PIXELS, truncated = false } = {}) {
  const bytes = asBytes(data);
  checkSignature(bytes);
  const cut = truncated ? [] : null;
  let header = null;
  const planes = [], blocks = [], cursor = new Map();
  let residuals = null; // a ResidualTable, made with the header
  const means = new Map(); // plane index -> its MEAN chunk (§3.1)
  let restoration = null; // plane index -> its restoration filter (version 6, §5.6)
  const metadata = new MetadataReader();
  let order = null;
  for (const { type, start, end } of chunks(bytes, cut)) {
    if (header === null) {
      if (type !== "HEAD") throw new SvdiError("first chunk must be HEAD");
      header = parseHead(bytes, start, end);
      residuals = new ResidualTable(bytes, header);
      order = new ResidualOrder(header, residuals);
      checkPixels(header, maxPixels);
    } else if (type === "HEAD") {
      throw new SvdiError("more than one HEAD chunk");
    } else if (type === "PLAN") {
      if (planes.length >= header.planeCount || blocks.length) throw new SvdiError("unexpected PLAN chunk");
      planes.push(parsePlan(bytes, start, end, header, planes.length));
      if (planes.length === header.planeCount) checkWork(planes);
    } else if (type in FACTOR_TYPES) {
      if (planes.length !== header.planeCount) throw new SvdiError("factor block before all PLAN chunks");
      if (residuals.length) throw new SvdiError("factor block after a residual block");
      // (a loop, not push(...records): a chunk may hold more records than a call takes arguments)
      if (header.version >= COMPACT_VERSION) for (const record of parseRecords(type, bytes, start, end, planes, cursor)) blocks.push(record);
      else blocks.push(parseBlock(type, bytes, start, end, planes, cursor));
      metadata.blocksSeen = true;
    } else if (type === "MEAN") {
      if (planes.length !== header.planeCount || blocks.length || residuals.length) {
        throw new SvdiError("MEAN chunk outside its place: after the PLAN chunks, before the first block");
      }
      const block = parseMeans(bytes, start, end, header, planes, means);
      means.set(block.plane, block);
    } else if (type === "RSTR") {
      if (planes.length !== header.planeCount || blocks.length || residuals.length) {
        throw new SvdiError("RSTR chunk outside its place: after the PLAN chunks, before the first block");
      }
      if (restoration !== null) throw new SvdiError("more than one RSTR chunk");
      restoration = parseRestoration(bytes, start, end, header, planes);
    } else if (type === "RBLK") {
      if (header.version < 2) throw new SvdiError("residual block (RBLK) in a version 1 file");
      if (planes.length !== header.planeCount) throw new SvdiError("residual block before all PLAN chunks");
      order.add(parseResidual(bytes, start, end, header));
      metadata.blocksSeen = true;
    } else if (type.charCodeAt(0) >= 97) {
      metadata.add(type, bytes, start, end); // metadata (§1.1) is checked; others are skipped
    } else {
      throw new SvdiError(`unknown critical chunk ${type}`);
    }
  }
  const ended = cut !== null && cut.length ? cut[0] : null;
  if (ended !== null && ended.chunk !== null && header !== null && planes.length === header.planeCount) {
    checkCutChunk(ended, header, blocks.length > 0, residuals.length > 0);
  }
  if (header === null || planes.length !== header.planeCount) {
    // no size and mode, or planes to decode: nothing to give
    if (ended !== null) throw new SvdiError(`truncated file: ${cutWhere(ended)}, before its HEAD and PLAN chunks are whole`);
  }
  if (header === null) throw new SvdiError("no HEAD chunk");
  if (planes.length !== header.planeCount) throw new SvdiError(`${header.planeCount - planes.length} PLAN chunks missing`);
  if (ended === null || residuals.length) { // (no factor block may follow a residual block)
    for (const p of planes) {
      for (const factor of "USV") {
        const covered = cursor.get(`${p.index}${factor}`) || 0;
        if (covered !== p.rank) {
          throw new SvdiError(`plane ${p.index}: ${factor} blocks cover ${covered} of ${p.rank} components`);
        }
      }
    }
  }
  let truncation = null;
  if (ended === null) {
    order.finish();
  } else {
    truncation = {
      ...ended,
      components: planes.map((p) => Math.min(...[..."USV"].map((f) => cursor.get(`${p.index}${f}`) || 0))),
      residualRows: Array.from({ length: header.channels }, (_, c) => order.cursor.get(c) ?? 0),
    };
  }
  // A file that ends early: the weights of the components it is decoded with (every plane's
  // first `arrived`), as a whole file's preview of that many has them.
  const arrived = truncation === null ? null : componentsArrived(truncation, planes);
  // each plane's blocks of each factor, in file order (component order, §4)
  const factorBlocks = groupBy(blocks, (blk) => `${blk.plane}${blk.factor}`);
  for (const p of planes) {
    p.sigma = new Float32Array(p.rank);
    for (const blk of factorBlocks.get(`${p.index}S`) ?? []) p.sigma.set(readSigma(blk, bytes), blk.first);
    // §5.1: before reading U or V
    if (p.shift !== null) Object.assign(p, exactWeights(p, Math.min(p.rank, arrived ?? p.rank)));
  }
  return {
    bytes, header, planes, blocks, factorBlocks, residuals, means, restoration: restoration ?? new Map(),
    metadata: metadata.metadata, truncation,
  };
}

/** The items grouped by key(item), each group in the items' order: an index made once, where
 * looking among all of a file's blocks for each plane would cost planes × blocks (a file may
 * hold 255 planes of thousands of records). */
function groupBy(items, key) {
  const groups = new Map();
  for (const item of items) {
    const k = key(item), group = groups.get(k);
    if (group === undefined) groups.set(k, [item]);
    else group.push(item);
  }
  return groups;
}

/** The weights of an exact plane (spec §5.1): W_k = floor(2^F·y_k + ½) with
 * y_k = fl64(fl64(Δ·Δ)/σ_k), as binary64 integers, and their sum (a BigInt: up to 4096 × 2^53),
 * of the first `count` components (a file that ends early: those it is decoded with).
 * 2^F·y_k is exact (a power of two), and so is its fractional part, so the floor of the real
 * number x + ½ is floor(x) plus one where that part is at least ½. */
function exactWeights(plane, count = plane.rank) {
  const weights = new Float64Array(plane.rank);
  const delta2 = plane.step * plane.step, unit = 2 ** plane.shift;
  let weightSum = 0n;
  for (let k = 0; k < count; k++) {
    const scaled = (delta2 / plane.sigma[k]) * unit;
    if (!(scaled <= EXACT_LIMIT)) {
      throw new SvdiError(`plane ${plane.index}: exact weight exceeds 2^53 (step ${pyFloat(plane.step)}, shift ${plane.shift})`);
    }
    const whole = Math.floor(scaled);
    weights[k] = whole + (scaled - whole >= 0.5 ? 1 : 0);
    weightSum += BigInt(weights[k]);
  }
  return { weights, weightSum };
}

/** The bound of an exact plane (spec §5.1) on the largest |A| and |B| of its first k
 * components (all of them, or a preview's) and their weights. */
function checkExactBound(plane, maxA, maxB, k) {
  if (maxA >= FACTOR_LIMIT || maxB >= FACTOR_LIMIT) {
    throw new SvdiError(`plane ${plane.index}: factor integers of magnitude ${Math.max(maxA, maxB)} reach 2^24 in an exact plane`);
  }
  let weightSum = plane.weightSum;
  if (k < plane.rank) {
    weightSum = 0n;
    for (let c = 0; c < k; c++) weightSum += BigInt(plane.weights[c]);
  }
  const product = BigInt(maxA) * BigInt(maxB) * weightSum;
  if (product >= BigInt(EXACT_LIMIT)) {
    throw new SvdiError(`plane ${plane.index}: max|A| * max|B| * sum(W) = ${product} breaks the exact reconstruction bound 2^53`);
  }
}

/** Signature, HEAD and PLAN chunks only (with their CRCs and the work limit): the image's size,
 * type and per-plane layout, rank and step, without reading any factor block. */
export function readHeader(data, { maxPixels = null } = {}) {
  const bytes = asBytes(data);
  checkSignature(bytes);
  let header = null;
  const planes = [];
  let pos = SIGNATURE.length;
  while (header === null || planes.length < header.planeCount) {
    if (bytes.length - pos < 12) throw new SvdiError(`truncated file: chunk header expected at byte ${pos}`);
    const length = u32(bytes, pos);
    const type = chunkName(bytes, pos + 4);
    if (!/^[A-Za-z]{4}$/.test(type)) throw new SvdiError(`invalid chunk type at byte ${pos}`);
    if (length > bytes.length - pos - 12) throw new SvdiError(`truncated file: ${type} chunk at byte ${pos}`);
    const start = pos + 8, end = start + length;
    if (crc32(bytes, pos + 4, end) !== u32(bytes, end)) throw new SvdiError(`CRC mismatch in ${type} chunk at byte ${pos}`);
    pos = end + 4;
    if (header === null) {
      if (type !== "HEAD") throw new SvdiError("first chunk must be HEAD");
      header = parseHead(bytes, start, end);
      checkPixels(header, maxPixels);
    } else if (type === "PLAN") {
      planes.push(parsePlan(bytes, start, end, header, planes.length));
    } else if (type.charCodeAt(0) < 97) {
      throw new SvdiError(`unexpected ${type} chunk before all PLAN chunks`);
    }
  }
  checkWork(planes);
  return { ...header, planes: planes.map(publicPlane) };
}

function publicPlane(p) {
  return {
    index: p.index, layout: p.layoutName, patch: p.patch, height: p.height, width: p.width,
    rank: p.rank, step: p.step, shift: p.shift, deblock: p.deblock, aq: p.aq, m: p.m, n: p.n, grid: p.grid,
    vgrid: p.vgrid,
  };
}

// ----------------------------------------------------------------------------- integer factors

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `count` little-endian values of a typed-array type from raw[at…]: a view when the platform
 * is little-endian and the offset aligned, else a copy. */
function littleEndian(Type, raw, at, count) {
  const size = Type.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN) {
    if ((raw.byteOffset + at) % size === 0) return new Type(raw.buffer, raw.byteOffset + at, count);
    return new Type(raw.slice(at, at + count * size).buffer, 0, count);
  }
  const view = new DataView(raw.buffer, raw.byteOffset + at, count * size);
  const out = new Type(count);
  const get = { 1: "getInt8", 2: Type === Uint16Array ? "getUint16" : "getInt16", 4: "getInt32" }[size];
  for (let i = 0; i < count; i++) out[i] = view[get](i * size, true);
  return out;
}

const INTEGER_TYPES = { 1: Int8Array, 2: Int16Array, 3: Int32Array };

/** Undo a dense block's predictor for each component grid (gh × gw) and store component c's
 * values in column (first + c) of `out` (rows × stride, binary32, as the reference converts its
 * 64-bit integers), for the components below `stride`. Returns the largest |value| stored, taken
 * before the binary32 rounding (an exact plane's bound, §5.1, is on the integers themselves). */
function denseIntoFactor(block, raw, grid, out, stride) {
  const [gh, gw] = grid;
  const size = gh * gw;
  const residuals = littleEndian(INTEGER_TYPES[block.elementType], raw, 0, block.elements);
  const g = new Float64Array(size);
  const last = Math.min(block.count, stride - block.first);
  const pred = block.predictor;
  let stored = 0;
  for (let c = 0; c < last; c++) {
    const r = residuals.subarray(c * size, (c + 1) * size);
    let largest = 0;
    for (let i = 0; i < size; i++) {
      const v = r[i];
      g[i] = v;
      if (v > largest || -v > largest) largest = Math.abs(v);
    }
    if (pred === 2 || pred === 3) {
      for (let y = 1; y < gh; y++) {
        for (let x = 0, at = y * gw, up = at - gw; x < gw; x++) g[at + x] += g[up + x];
      }
    }
    if (pred === 1 || pred === 3) {
      for (let y = 0; y < gh; y++) {
        for (let x = 1, at = y * gw; x < gw; x++) g[at + x] += g[at + x - 1];
      }
    }
    // Every running sum is at most size × the largest residual in magnitude; beyond 2^53 the
    // binary64 sums may be inexact: redo the grid in wrapping 64-bit integers, as the spec
    // defines (only hostile files get here).
    if (pred && largest * size >= 2 ** 53) exactRunningSums(g, r, gh, gw, pred);
    const col = block.first + c;
    for (let i = 0; i < size; i++) {
      const v = g[i];
      out[i * stride + col] = v;
      if (v > stored || -v > stored) stored = Math.abs(v);
    }
  }
  return stored;
}

function exactRunningSums(g, residuals, gh, gw, pred) {
  const s = new BigInt64Array(gh * gw);
  for (let i = 0; i < s.length; i++) s[i] = BigInt(residuals[i]);
  if (pred === 2 || pred === 3) {
    for (let y = 1; y < gh; y++) for (let x = 0; x < gw; x++) s[y * gw + x] += s[(y - 1) * gw + x];
  }
  if (pred === 1 || pred === 3) {
    for (let y = 0; y < gh; y++) for (let x = 1; x < gw; x++) s[y * gw + x] += s[y * gw + x - 1];
  }
  for (let i = 0; i < s.length; i++) g[i] = Number(s[i]);
}

/** Decode a sparse block's run/level symbols (§4), every rule checked, into columns
 * first.. of `out` (rows × stride), for the components below `stride`. Returns the largest
 * |value| stored. */
function sparseIntoFactor(block, raw, rows, out, stride) {
  const nsym = block.symbols;
  const symbols = raw.subarray(0, nsym);
  const runs = littleEndian(Uint16Array, raw, nsym, block.runEscapes);
  const values = littleEndian(block.escapeType === 3 ? Int32Array : Int16Array, raw,
    nsym + 2 * block.runEscapes, block.valueEscapes);
  const what = block.what;
  // The counts first, in the reference decoder's order of checks.
  let ends = 0, invalid = 0, runEscapes = 0, valueEscapes = 0;
  for (let i = 0; i < nsym; i++) {
    const s = symbols[i];
    if (s === END_OF_ROW) ends++;
    else if ((s & 15) === 8) invalid++;
    if (s >= 0xf0) runEscapes++;
    if ((s & 15) === 0) valueEscapes++;
  }
  if (ends !== rows || (nsym && symbols[nsym - 1] !== END_OF_ROW)) {
    throw new SvdiError(`${what}: sparse block: ${ends} row ends for ${rows} rows`);
  }
  if (invalid) throw new SvdiError(`${what}: sparse block: invalid symbol`);
  if (runEscapes !== block.runEscapes || valueEscapes !== block.valueEscapes) {
    throw new SvdiError(`${what}: sparse block: escape counts do not match the side streams`);
  }
  if (values.includes(0)) throw new SvdiError(`${what}: sparse block: escaped value of zero`);
  const count = block.count, first = block.first;
  const keep = Math.min(count, stride - first);
  let base = first, col = 0, xr = 0, xv = 0, stored = 0;
  for (let i = 0; i < nsym; i++) {
    const s = symbols[i];
    if (s === END_OF_ROW) {
      base += stride;
      col = 0;
      continue;
    }
    col += s < 0xf0 ? s >> 4 : 15 + runs[xr++];
    if (col >= count) throw new SvdiError(`${what}: sparse block: component index beyond the block`);
    const level = s & 15;
    if (col < keep) {
      const v = level ? level - 8 : values[xv];
      out[base + col] = v;
      if (v > stored || -v > stored) stored = Math.abs(v);
    }
    if (!level) xv++;
    col++;
  }
  return stored;
}

/** The plane's integer factor ("U": m × k, "V": n × k) as binary32, row-major, with the first
 * k components, and the largest |value| among them; only the blocks that hold them are
 * decompressed. */
function integerFactor(container, plane, factor, k) {
  const rows = factor === "U" ? plane.m : plane.n;
  const grid = factor === "U" ? plane.grid : plane.vgrid;
  const data = new Float32Array(rows * k);
  let largest = 0;
  for (const blk of container.factorBlocks.get(`${plane.index}${factor}`) ?? []) {
    if (blk.first >= k) break; // (in component order)
    const raw = decompressFrame(blk, container.bytes);
    const stored = blk.coding === 0 ? denseIntoFactor(blk, raw, grid, data, k)
      : sparseIntoFactor(blk, raw, rows, data, k);
    largest = Math.max(largest, stored);
  }
  return { data, largest };
}

// ----------------------------------------------------------------------------- reconstruction

/** The non-zeros of row `row` of A (k components) scaled for the product: lefts[q] =
 * fl32(A·coef[c]) (version 1: the left factor in binary32, as the reference forms it) and
 * offsets[q] = c·n, the row of Bᵀ each multiplies. Returns how many. */
function gatherRow(A, row, k, coef, n, lefts, offsets) {
  let nz = 0;
  for (let c = 0; c < k; c++) {
    const a = A[row + c];
    if (a === 0) continue;
    lefts[nz] = fround(a * coef[c]);
    offsets[nz++] = c * n;
  }
  return nz;
}

/** gatherRow for an exact plane (§5.1): lefts[q] = A·W_c, an exact integer below 2^53 (the
 * plane's bound was checked), not rounded. */
function gatherRowExact(A, row, k, weights, n, lefts, offsets) {
  let nz = 0;
  for (let c = 0; c < k; c++) {
    const a = A[row + c];
    if (a === 0) continue;
    lefts[nz] = a * weights[c];
    offsets[nz++] = c * n;
  }
  return nz;
}

/** gatherRowExact for an adapted plane (§5.5): lefts[q] = A·M·W_c with M = 16 in component 0
 * and the row's M in the others, an exact integer below 2^53 (the bound on A∘M was checked). */
function gatherRowAdapted(A, row, k, weights, n, lefts, offsets, multiplier) {
  let nz = 0;
  for (let c = 0; c < k; c++) {
    const a = A[row + c];
    if (a === 0) continue;
    lefts[nz] = a * (c === 0 ? 16 : multiplier) * weights[c];
    offsets[nz++] = c * n;
  }
  return nz;
}

/** The binary16 of these bits, exactly. */
function binary16(bits) {
  const e = (bits >> 10) & 31, f = bits & 1023;
  return e === 0 ? f * 2 ** -24 : (1024 + f) * 2 ** (e - 25);
}

/** M per matrix row of an adapted plane (§5.5), grid row by grid row, from its integers of
 * components 0..kk − 1 (`ints`, row-major with `stride`): E = max(R·Σ_8 neighbours
 * min(|a_q0 − a_p0|, clamp)², Σ_3 patches above Σ_k (min(|a_qk|, clamp)·M_q)²), class = how
 * many thresholds E reaches. Every value is an exact integer below 2^53 but R·Σ and the
 * thresholds, each one binary64 operation after another as the spec orders them. */
function adaptiveMap(plane, ints, stride, kk) {
  const [gh, gw] = plane.grid, p = plane.patch;
  const g = binary16(plane.aq[1]), unit = 768 * p * p, square = plane.step * plane.step;
  const limits = AQ_RATIOS.map((r) => ((g * r - AQ_FLOOR) * unit) / square);
  const weight = (1568 * (p * p - 1)) / (300 * p * p);
  const out = new Int32Array(gh * gw);
  let previous = new Float64Array(gw), current = new Float64Array(gw);
  for (let y = 0; y < gh; y++) {
    for (let x = 0; x < gw; x++) {
      const i = y * gw + x, a0 = ints[i * stride];
      let sum = 0;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = Math.min(Math.max(y + dy, 0), gh - 1);
        for (let dx = -1; dx <= 1; dx++) {
          if (!dy && !dx) continue;
          const xx = Math.min(Math.max(x + dx, 0), gw - 1);
          const d = Math.min(Math.abs(ints[(yy * gw + xx) * stride] - a0), AQ_CLAMP);
          sum += d * d;
        }
      }
      let energy = sum * weight;
      if (y > 0) {
        const above = previous[Math.max(x - 1, 0)] + previous[x] + previous[Math.min(x + 1, gw - 1)];
        if (above > energy) energy = above;
      }
      let c = 0;
      for (const t of limits) if (energy >= t) c++;
      const m = AQ_CLASSES[c];
      out[i] = m;
      let own = 0;
      for (let k = 1; k < kk; k++) {
        const a = Math.min(Math.abs(ints[i * stride + k]), AQ_CLAMP) * m;
        own += a * a;
      }
      current[x] = own;
    }
    [previous, current] = [current, previous];
  }
  return out;
}

/** acc[0, n) = Σ_q lefts[q] · Bt[offsets[q] + j], in component order. The sums of eight (then
 * four, then one) outputs stay in registers while the row's non-zeros are visited (2–2.5×
 * faster than adding each non-zero's row of Bᵀ into memory; the same bits, each sum taken in
 * component order). Small and monomorphic so that the engine optimizes it early (the caller's
 * loops run long). */
function accumulateRow(acc, nz, lefts, offsets, Bt, n) {
  let j = 0;
  for (; j + 8 <= n; j += 8) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (let q = 0; q < nz; q++) {
      const l = lefts[q], o = offsets[q] + j;
      s0 += l * Bt[o];
      s1 += l * Bt[o + 1];
      s2 += l * Bt[o + 2];
      s3 += l * Bt[o + 3];
      s4 += l * Bt[o + 4];
      s5 += l * Bt[o + 5];
      s6 += l * Bt[o + 6];
      s7 += l * Bt[o + 7];
    }
    acc[j] = s0;
    acc[j + 1] = s1;
    acc[j + 2] = s2;
    acc[j + 3] = s3;
    acc[j + 4] = s4;
    acc[j + 5] = s5;
    acc[j + 6] = s6;
    acc[j + 7] = s7;
  }
  for (; j + 4 <= n; j += 4) {
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (let q = 0; q < nz; q++) {
      const l = lefts[q], o = offsets[q] + j;
      s0 += l * Bt[o];
      s1 += l * Bt[o + 1];
      s2 += l * Bt[o + 2];
      s3 += l * Bt[o + 3];
    }
    acc[j] = s0;
    acc[j + 1] = s1;
    acc[j + 2] = s2;
    acc[j + 3] = s3;
  }
  for (; j < n; j++) {
    let sum = 0;
    for (let q = 0; q < nz; q++) sum += lefts[q] * Bt[offsets[q] + j];
    acc[j] = sum;
  }
}

/** Store acc[0, count) · unit as binary32 at out[at, at + count); NaN if any value is not
 * finite. unit is 1, or 2^−F for an exact plane (§5.1: exact in binary64, then rounded once). */
function storeRun(acc, from, count, out, at, unit) {
  let bad = 0;
  for (let j = 0; j < count; j++) {
    const v = fround(acc[from + j] * unit);
    bad += v * 0; // NaN for an infinite or NaN value
    out[at + j] = v;
  }
  return bad;
}

/** storeRun for a plane with column means (§5.1, plain layout only): fl32(fl64(V·2^−F + μ_j))
 * with μ (binary64, the binary32 means widened) from means[0, count). */
function storeRunCentred(acc, count, out, at, unit, means) {
  let bad = 0;
  for (let j = 0; j < count; j++) {
    const v = fround(acc[j] * unit + means[j]);
    bad += v * 0;
    out[at + j] = v;
  }
  return bad;
}

/** Plane values (height × width, binary32) from the first k components of A, B and σ (§5):
 * version 1 in binary32 factors, version 2 (plane.shift set) by the exact rule of §5.1 with
 * the plane's weights (whose bound the caller checked on the whole of A and B), plus the column
 * means of a centred plane (`means`, binary64, or null), also for k = 0 (every row is μ). */
function reconstructPlane(plane, A, B, stride, k, means = null, rowM = null) {
  const { m, n, height: h, width: w } = plane;
  const out = new Float32Array(h * w);
  if (k === 0) {
    if (means) for (let i = 0; i < m; i++) out.set(means, i * w); // fl32(0 + μ_j) = μ_j
    return out;
  }
  const exact = plane.shift !== null;
  // an adapted plane (§5.5): (A∘M)·diag(W)·Bᵀ·2^−(F+4)
  const unit = exact ? 2 ** -(plane.shift + (rowM ? 4 : 0)) : 1;
  const coef = new Float64Array(k);
  if (exact) {
    coef.set(plane.weights.subarray(0, k));
  } else {
    const delta2 = fround(plane.step * plane.step);
    for (let c = 0; c < k; c++) {
      coef[c] = fround(delta2 / plane.sigma[c]);
      if (!Number.isFinite(coef[c])) throw overflow(plane);
    }
  }
  // Bᵀ, component-major, so that each non-zero of a row of A adds one contiguous row of Bᵀ.
  const Bt = new Float64Array(k * n);
  for (let j = 0; j < n; j++) for (let c = 0; c < k; c++) Bt[c * n + j] = B[j * stride + c];
  const acc = new Float64Array(n), lefts = new Float64Array(k), offsets = new Int32Array(k);
  const patch = plane.layout === 1 ? plane.patch : 0;
  const gw = plane.grid[1];
  const padding = new Float32Array(patch); // where a padded patch's cropped values go
  for (let i = 0; i < m; i++) {
    const nz = rowM ? gatherRowAdapted(A, i * stride, k, coef, n, lefts, offsets, rowM[i])
      : exact ? gatherRowExact(A, i * stride, k, coef, n, lefts, offsets)
        : gatherRow(A, i * stride, k, coef, n, lefts, offsets);
    accumulateRow(acc, nz, lefts, offsets, Bt, n);
    let bad = 0;
    if (means) {
      bad = storeRunCentred(acc, n, out, i * w, unit, means);
    } else if (!patch) {
      bad = storeRun(acc, 0, n, out, i * w, unit);
    } else {
      // Row i is the patch at patch row i / gw, column i % gw; the padding is computed (and
      // checked, as the reference checks the whole matrix) but not stored.
      const y0 = Math.floor(i / gw) * patch, x0 = (i % gw) * patch;
      const inside = Math.min(patch, w - x0);
      for (let y = 0; y < patch; y++) {
        if (y0 + y < h) {
          bad += storeRun(acc, y * patch, inside, out, (y0 + y) * w + x0, unit);
          if (inside < patch) bad += storeRun(acc, y * patch + inside, patch - inside, padding, 0, unit);
        } else {
          bad += storeRun(acc, y * patch, patch, padding, 0, unit);
        }
      }
    }
    if (bad !== 0) throw overflow(plane);
  }
  return out;
}

function overflow(plane) {
  return new SvdiError(`plane ${plane.index}: reconstruction overflows (step ${plane.step} or singular values out of range)`);
}

// ----------------------------------------------------------------------------- colour and samples

/** Pillow's resampling coefficients for the bilinear filter (Resample.c precompute_coeffs), in
 * binary64: [first input index, taps, weights (out × taps)]. */
function bilinearCoefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filterscale;
  const taps = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), span = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let x = 0; x < outSize; x++) {
    const center = (x + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    for (let t = 0; t < hi - lo; t++) {
      const d = Math.abs((t + lo - center + 0.5) / filterscale);
      const wgt = d < 1 ? 1 - d : 0;
      weights[x * taps + t] = wgt;
      total += wgt;
    }
    if (total !== 0) for (let t = 0; t < hi - lo; t++) weights[x * taps + t] /= total;
    first[x] = lo;
    span[x] = hi - lo;
  }
  return { first, span, taps, weights };
}

/** Bilinear resize of a binary32 plane with centre-aligned samples (§5), as Pillow computes it:
 * horizontal pass summed in binary64 and stored in binary32, then the vertical pass, whose
 * rows (binary64 sums, before their rounding to binary32) go to emitRow(y, row) one at a time,
 * so that no full-size float plane is stored. */
function upsampleRows(src, inH, inW, outH, outW, emitRow) {
  let rows = src;
  if (outW === 2 * inW) {
    // Exact doubling: Pillow's weights are then 0.75 and 0.25 (one tap of weight 1 at the ends),
    // summed in the same order, so this gives the general path's bits with less indexing.
    rows = new Float32Array(inH * outW);
    for (let y = 0; y < inH; y++) {
      const s = y * inW, d = y * outW;
      rows[d] = src[s];
      for (let i = 0; i + 1 < inW; i++) {
        const a = src[s + i], b = src[s + i + 1];
        rows[d + 2 * i + 1] = a * 0.75 + b * 0.25;
        rows[d + 2 * i + 2] = a * 0.25 + b * 0.75;
      }
      rows[d + outW - 1] = src[s + inW - 1];
    }
  } else if (inW !== outW) {
    const c = bilinearCoefficients(inW, outW);
    rows = new Float32Array(inH * outW);
    for (let y = 0; y < inH; y++) {
      const s = y * inW, d = y * outW;
      for (let x = 0; x < outW; x++) {
        let sum = 0;
        const f = s + c.first[x], wb = x * c.taps;
        for (let t = 0; t < c.span[x]; t++) sum += src[f + t] * c.weights[wb + t];
        rows[d + x] = sum;
      }
    }
  }
  const sum = new Float64Array(outW);
  if (inH === outH) {
    for (let y = 0; y < outH; y++) {
      for (let x = 0; x < outW; x++) sum[x] = rows[y * outW + x];
      emitRow(y, sum);
    }
    return;
  }
  if (outH === 2 * inH) {
    for (let y = 0; y < outH; y++) {
      // Row y reads source rows (y − 1) >> 1 and (y + 1) >> 1 (the same row at the ends).
      const i = (y - 1) >> 1, a = Math.max(i, 0) * outW, b = Math.min(i + 1, inH - 1) * outW;
      if (y === 0 || y === outH - 1) {
        for (let x = 0; x < outW; x++) sum[x] = rows[(y === 0 ? 0 : inH - 1) * outW + x];
      } else if (y & 1) {
        for (let x = 0; x < outW; x++) sum[x] = rows[a + x] * 0.75 + rows[b + x] * 0.25;
      } else {
        for (let x = 0; x < outW; x++) sum[x] = rows[a + x] * 0.25 + rows[b + x] * 0.75;
      }
      emitRow(y, sum);
    }
    return;
  }
  const c = bilinearCoefficients(inH, outH);
  for (let y = 0; y < outH; y++) {
    sum.fill(0);
    for (let t = 0; t < c.span[y]; t++) {
      const wgt = c.weights[y * c.taps + t], s = (c.first[y] + t) * outW;
      for (let x = 0; x < outW; x++) sum[x] += rows[s + x] * wgt;
    }
    emitRow(y, sum);
  }
}

/** upsampleRows into a binary32 plane (outH × outW). */
export function upsampleBilinear(src, inH, inW, outH, outW) {
  const out = new Float32Array(outH * outW);
  upsampleRows(src, inH, inW, outH, outW, (y, row) => out.set(row, y * outW));
  return out;
}

/** Round binary32 values + offset (fl32(v + offset + ½), clamped, truncated) into out[at…]. */
function roundRow(values, count, offsetHalf, out, at) {
  for (let x = 0; x < count; x++) {
    const v = fround(fround(values[x]) + offsetHalf);
    out[at + x] = v <= 0 ? 0 : v >= 255 ? 255 : v; // a Uint8Array store truncates
  }
}

/** Y′CbCr → RGB as the reference decoder (Pillow's ConvertYCbCr2RGB, spec §6): per-channel
 * fixed-point tables t = trunc(64·c·x + ½) in binary32 with x = Cb − 128 or Cr − 128, then
 * R = Y′ + (t_R >> 6), G = Y′ + ((t_G,Cb + t_G,Cr) >> 6), B = Y′ + (t_B >> 6), clamped. */
const YCC_TABLES = (() => {
  const k = [1.402, -0.34414, -0.71414, 1.772].map((c) => fround(fround(c) * 64));
  const t = k.map(() => new Int32Array(256));
  for (let v = 0; v < 256; v++) {
    const x = v - 128;
    for (let i = 0; i < 4; i++) t[i][v] = Math.trunc(fround(fround(k[i] * x) + 0.5));
  }
  return { crR: t[0], cbG: t[1], crG: t[2], cbB: t[3] };
})();

/** One pixel's Y′CbCr → RGB as the decoder converts it (integers 0 … 255 in and out). */
export function ycbcrToRgb(y, cb, cr) {
  const { crR, cbG, crG, cbB } = YCC_TABLES;
  const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);
  return [clamp(y + (crR[cr] >> 6)), clamp(y + ((cbG[cb] + crG[cr]) >> 6)), clamp(y + (cbB[cb] >> 6))];
}

/** Round binary32 plane values + offset to 0 … 255 as the reference: fl32(v + offset + ½),
 * clamped, truncated. */
function toUint8(value, offsetHalf) {
  const v = fround(value + offsetHalf);
  return v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
}

/** Y′, Cb + 128 and Cr + 128 of a colour-1 image rounded to 0 … 255 at the image size (§5),
 * chroma upsampled first when subsampled: three Uint8Arrays, height × width. */
export function roundedYCbCr(header, planes) {
  const { width: w, height: h } = header;
  const half = fround(0.5), centre = fround(128.5);
  const out = [new Uint8Array(w * h), new Uint8Array(w * h), new Uint8Array(w * h)];
  roundRow(planes[0], w * h, half, out[0], 0);
  const [ch, cw] = planeShape(header, 1);
  for (const c of [1, 2]) {
    if (header.subsampling) upsampleRows(planes[c], ch, cw, h, w, (y, row) => roundRow(row, w, centre, out[c], y * w));
    else roundRow(planes[c], w * h, centre, out[c], 0);
  }
  return out;
}

/** The deblocking filter (version 4, §5.4) in place on one channel of 8-bit samples, sample
 * (y, x) at data[at + y·rowStep + x·step], w × h, edges every `period` samples: vertical edges
 * (along rows), then horizontal ones (along columns). Within a pass every edge reads the samples
 * as they were before it: only p1 can have moved, as the previous edge's q0 when period is 2,
 * so that q0 is kept (`saved`). */
function deblockChannel(data, at, step, rowStep, w, h, period, [alpha, beta, tc]) {
  const clamp = (v) => (v < 0 ? 0 : v > 255 ? 255 : v);
  const pass = (lines, n, lineStep, s) => {
    for (let i = 0; i < lines; i++) {
      const base = at + i * lineStep;
      let saved = 0;
      for (let e = period; e + 1 < n; e += period) {
        const o = base + e * s;
        const p1 = period === 2 && e > period ? saved : data[o - 2 * s];
        const p0 = data[o - s], q0 = data[o], q1 = data[o + s];
        saved = q0;
        if (Math.abs(p0 - q0) < alpha && Math.abs(p1 - p0) < beta && Math.abs(q1 - q0) < beta) {
          const d = (4 * (q0 - p0) + (p1 - q1) + 4) >> 3; // small integers: >> is the floor
          const delta = d < -tc ? -tc : d > tc ? tc : d;
          data[o - s] = clamp(p0 + delta);
          data[o] = clamp(q0 - delta);
        }
      }
    }
  };
  pass(h, w, rowStep, step);
  pass(w, h, step, rowStep);
}

/** The restoration filter (version 6, §5.6) in place on one channel of 8-bit samples, sample
 * (y, x) at data[at + y·rowStep + x·step], w × h: each sample's activity class from the 3 × 3
 * sum of |horizontal| + |vertical| Laplacian, then the symmetric 7 × 7-diamond filter of its
 * class, both reading an unfiltered copy of the channel with its edges replicated (indices
 * clamped). Every value is an integer below 2^20: exact in Numbers, >> the floor. */
function restoreChannel(data, at, step, rowStep, w, h, { bounds, coefficients }) {
  const s = new Int32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) s[y * w + x] = data[at + y * rowStep + x * step];
  const get = (y, x) => s[(y < 0 ? 0 : y >= h ? h - 1 : y) * w + (x < 0 ? 0 : x >= w ? w - 1 : x)];
  const lap = (y, x) => {
    const c2 = 2 * get(y, x);
    return Math.abs(c2 - get(y, x - 1) - get(y, x + 1)) + Math.abs(c2 - get(y - 1, x) - get(y + 1, x));
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let k = 0;
      if (bounds.length) {
        let a = 0;
        for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) a += lap(y + dy, x + dx);
        while (k < bounds.length && bounds[k] <= a) k++;
      }
      const centre = s[y * w + x];
      let sum = 0;
      for (let j = 0; j < 12; j++) {
        const [dy, dx] = RESTORE_OFFSETS[j];
        sum += coefficients[12 * k + j] * (get(y + dy, x + dx) + get(y - dy, x - dx) - 2 * centre);
      }
      const v = centre + ((sum + 64) >> 7);
      data[at + y * rowStep + x * step] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
}

/** A filtered plane's edge period in its output channel (§5.4): the patch side, twice that for
 * subsampled Cb and Cr. */
function edgePeriod(header, p) {
  return p.patch * (p.width !== header.width || p.height !== header.height ? 2 : 1);
}

/** A colour-1 image (§5.2): Y′CbCr planes (and alpha) as interleaved RGB(A) bytes, each
 * filtered plane deblocked first (version 4, §5.4), then each restored one restored (version
 * 6, §5.6). */
function ycbcrImage(header, planes, plans, restoration) {
  const { width: w, height: h, channels } = header;
  const pixels = w * h;
  const data = new Uint8Array(pixels * channels);
  const [Y, Cb, Cr] = roundedYCbCr(header, planes);
  [Y, Cb, Cr].forEach((samples, c) => {
    if (plans[c].filtered) deblockChannel(samples, 0, 1, w, w, h, edgePeriod(header, plans[c]), plans[c].deblock);
    if (restoration.has(c)) restoreChannel(samples, 0, 1, w, w, h, restoration.get(c));
  });
  const { crR, cbG, crG, cbB } = YCC_TABLES;
  for (let i = 0, o = 0; i < pixels; i++, o += channels) {
    const y = Y[i], cb = Cb[i], cr = Cr[i];
    const r = y + (crR[cr] >> 6), g = y + ((cbG[cb] + crG[cr]) >> 6), b = y + (cbB[cb] >> 6);
    data[o] = r < 0 ? 0 : r > 255 ? 255 : r;
    data[o + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
    data[o + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
  }
  const half = fround(0.5);
  if (channels === 4) {
    const A = planes[3];
    for (let i = 0; i < pixels; i++) data[4 * i + 3] = toUint8(A[i], half);
    if (plans[3].filtered) deblockChannel(data, 3, 4, 4 * w, w, h, edgePeriod(header, plans[3]), plans[3].deblock);
    if (restoration.has(3)) restoreChannel(data, 3, 4, 4 * w, w, h, restoration.get(3));
  }
  return data;
}

/** Version 3 (§5.2): 16-bit Y′CbCr → RGB with the inverse of the encoder's weights in units of
 * 2^−16 (R from Cr, G from Cb, G from Cr, B from Cb). */
const YCC16_INVERSE = [91882, -22553, -46801, 116130];

/** A 16-bit sample of a plane value (§5.2): floor(clamp(fl64(fl64(p·scale) + offset + ½), 0,
 * 65535)), offset 32768 for Cb and Cr. */
function toUint16(value, scale, offsetHalf) {
  const v = value * scale + offsetHalf;
  return v <= 0 ? 0 : v >= 65535 ? 65535 : Math.floor(v);
}

/** A colour-1 image of 16-bit samples (version 3, §5.2): Y′, Cb + 32768 and Cr + 32768 rounded
 * to 16 bits (chroma upsampled first as for 8 bits, its binary64 rows rounded to binary32),
 * converted in integers with 16 fractional bits (Math.floor of an exact quotient: `>>` would
 * cut to 32 bits), clamped; alpha a colour-0 plane. Interleaved RGB(A) Uint16Array. */
function wideYcbcrImage(header, planes) {
  const { width: w, height: h, channels, scale } = header;
  const pixels = w * h;
  const data = new Uint16Array(pixels * channels);
  const chroma = [new Uint16Array(pixels), new Uint16Array(pixels)];
  const [ch, cw] = planeShape(header, 1);
  for (const c of [0, 1]) {
    const src = planes[c + 1], dst = chroma[c];
    if (header.subsampling) {
      upsampleRows(src, ch, cw, h, w, (y, row) => {
        for (let x = 0; x < w; x++) dst[y * w + x] = toUint16(fround(row[x]), scale, 32768.5);
      });
    } else {
      for (let i = 0; i < pixels; i++) dst[i] = toUint16(src[i], scale, 32768.5);
    }
  }
  const [kR, kGb, kGr, kB] = YCC16_INVERSE;
  const Y = planes[0], [Cb, Cr] = chroma;
  const clamp = (v) => (v < 0 ? 0 : v > 65535 ? 65535 : v);
  for (let i = 0, o = 0; i < pixels; i++, o += channels) {
    const y = toUint16(Y[i], scale, 0.5), xb = Cb[i] - 32768, xr = Cr[i] - 32768;
    data[o] = clamp(y + Math.floor((kR * xr + 32768) / 65536));
    data[o + 1] = clamp(y + Math.floor((kGb * xb + kGr * xr + 32768) / 65536));
    data[o + 2] = clamp(y + Math.floor((kB * xb + 32768) / 65536));
  }
  if (channels === 4) {
    const A = planes[3];
    for (let i = 0; i < pixels; i++) data[4 * i + 3] = toUint16(A[i], scale, 0.5);
  }
  return data;
}

function sampleOverflow(header) {
  return new SvdiError(`samples overflow ${header.dtype} (sample scale ${header.scale})`);
}

/** One colour-0 plane's samples (§5.2) into channel c of `data` (interleaved). Returns NaN if a
 * float sample is not finite (the caller refuses the file once every plane is reconstructed, so
 * that a plane's own overflow is named first), else 0. */
function storeSamples(p, data, c, header) {
  const { channels, dtype, scale } = header;
  const pixels = p.length;
  if (dtype === "uint8") { // HEAD's scale is not applied to uint8 samples (§5.2)
    for (let i = 0, o = c; i < pixels; i++, o += channels) data[o] = toUint8(p[i], 0.5);
    return 0;
  }
  if (dtype in SAMPLE_RANGES) {
    // floor(clamp(fl64(fl64(p·scale) + ½), min, max)): round half up (−2.5 → −2), clamped
    // before the floor (min and max are integers); every step exact or rounded once in binary64.
    const [lo, hi] = SAMPLE_RANGES[dtype];
    for (let i = 0, o = c; i < pixels; i++, o += channels) {
      const v = p[i] * scale + 0.5;
      data[o] = v <= lo ? lo : v >= hi ? hi : Math.floor(v);
    }
    return 0;
  }
  let bad = 0;
  if (dtype === "float64") { // fl64(p·scale), not clamped; not finite makes the file invalid
    for (let i = 0, o = c; i < pixels; i++, o += channels) {
      const v = p[i] * scale;
      bad += v * 0;
      data[o] = v;
    }
    return bad;
  }
  // float32 (§5.2): for a scale below 2^-116 or above 2^64 the product is taken in binary64 and
  // clamped to the finite float32 range (values near 3.4e38 may overshoot by a quantizer step);
  // other scales in binary32 (the binary64 product of two binary32 values is exact, so one
  // fround is the binary32 product), where a sample that overflows makes the file invalid.
  if (scale < FLOAT32_TINY * 2 ** 10 || scale > 2 ** 64) {
    for (let i = 0, o = c; i < pixels; i++, o += channels) {
      const v = p[i] * scale;
      data[o] = v > FLOAT32_MAX ? FLOAT32_MAX : v < -FLOAT32_MAX ? -FLOAT32_MAX : v;
    }
    return 0;
  }
  const s32 = fround(scale);
  for (let i = 0, o = c; i < pixels; i++, o += channels) {
    const v = fround(p[i] * s32);
    bad += v * 0;
    data[o] = v;
  }
  return bad;
}

// ----------------------------------------------------------------------------- residual phase (§5.3)

/** Bands of rows [y0, y1) of at most RESIDUAL_BAND_SAMPLES samples per channel that never
 * straddle a boundary of the table's blocks `indices` (the reference decoder's bands): the rows
 * between consecutive cuts (`edges`, sorted and distinct) in pieces of at most `per` rows, made
 * as they are iterated (a file may hold a block a row). */
function residualBands(header, table, indices) {
  const cuts = new Float64Array(2 * indices.length + 2);
  cuts[0] = 0;
  cuts[1] = header.height;
  let n = 2;
  for (const i of indices) {
    cuts[n++] = table.first[i];
    cuts[n++] = table.first[i] + table.rows[i];
  }
  cuts.sort();
  let count = 0;
  for (let i = 0; i < cuts.length; i++) if (i === 0 || cuts[i] !== cuts[i - 1]) cuts[count++] = cuts[i];
  const edges = cuts.subarray(0, count);
  const per = Math.max(1, Math.floor(RESIDUAL_BAND_SAMPLES / header.width));
  let widest = 0; // the most rows of a band
  for (let i = 0; i + 1 < count; i++) widest = Math.max(widest, Math.min(per, edges[i + 1] - edges[i]));
  return {
    edges, per, widest,
    *[Symbol.iterator]() {
      for (let i = 0; i + 1 < count; i++) {
        for (let y = edges[i]; y < edges[i + 1]; y += per) yield [y, Math.min(y + per, edges[i + 1])];
      }
    },
  };
}

/** Channels with residual blocks, those without a reference first (their q is added to the
 * referencing channels' in the same band). */
function residualChannels(table) {
  const channels = [...table.ofChannel.keys()].sort((a, b) => a - b);
  const referencing = new Set();
  for (let i = 0; i < table.length; i++) if (table.reference[i] !== NO_REFERENCE) referencing.add(table.channel[i]);
  return [...channels.filter((c) => !referencing.has(c)), ...channels.filter((c) => referencing.has(c))];
}

/** One channel's residual blocks read in row order, a band at a time: the block in progress
 * (its frame decompressed when its first band is reached and dropped after its last: the
 * WebAssembly libzstd has no streaming decoder, so a block's grid is held while its bands are
 * applied, at most one block per channel), and the predictor's carry between bands. */
class ResidualCursor {
  /** blocks: the channel's blocks (their indices in the container's table), in row order. */
  constructor(container, blocks, bandSamples) {
    this.container = container;
    this.table = container.residuals;
    this.blocks = blocks;
    this.block = null; // the block in progress
    this.index = 0;
    this.elements = null;
    this.width = container.header.width;
    this.carry = new Float64Array(this.width); // the previous row's column sums (vertical, planar)
    this.q = new Float64Array(bandSamples);
  }

  /** Skip the blocks before row y0, unread (each is a frame of its own): a reference channel
   * read only at the rows of the blocks that refer to it, which start where a block of its own
   * starts (§4.1). Never inside a block begun. */
  seek(y0, what) {
    if (this.elements !== null) return;
    const { first, rows } = this.table;
    while (this.index < this.blocks.length && first[this.blocks[this.index]] + rows[this.blocks[this.index]] <= y0) this.index++;
    if (this.index === this.blocks.length || first[this.blocks[this.index]] !== y0) {
      throw new SvdiError(`${what}: no block of its reference channel starts at row ${y0}`);
    }
  }

  /** The block holding rows [y0, y1) (a band never straddles two) and its q for those rows
   * without the reference channel's: the grid's rows with the predictor undone, exact. */
  rows(y0, y1) {
    const width = this.width;
    if (this.elements === null) {
      this.block = this.table.block(this.blocks[this.index]);
      const raw = decompressFrame(this.block, this.container.bytes);
      this.elements = littleEndian(INTEGER_TYPES[this.block.elementCode], raw, 0, this.block.rows * width);
      this.carry.fill(0);
    }
    const block = this.block;
    const from = (y0 - block.first) * width, count = (y1 - y0) * width;
    const q = this.q.subarray(0, count);
    unpredictRows(this.elements.subarray(from, from + count), y1 - y0, width, block.predictor, this.carry, q,
      block.wrapped);
    if (y1 === block.first + block.rows) {
      this.elements = null;
      this.index++;
    }
    return { block, q };
  }
}

/** Rows of a residual grid (`rows` × width elements d) with the predictor of §4 undone into q,
 * continuing the block's running sums from `carry` (the previous row's column sums, updated).
 * The spec's sums are 64-bit integers that wrap; binary64 gives the same q wherever the file is
 * valid: column sums are exact (≤ 2^20 rows of 32-bit elements: < 2^51), and every partial sum
 * along a row is itself the d of a sample, so it must stay below 2^32 in magnitude (|q| ≤ 2^31 − 1
 * with |q_ref| ≤ 2^31 − 1). The first partial sum that passes 2^53 is computed as at least 2^53
 * (rounding is monotone), so the band holding it is refused as the reference refuses it; wrapping
 * needs sums of 2^63, beyond that. A wrapped block's sums (version 7) are taken modulo 2^16 as
 * they go (`(v << 16) >> 16`, the int16 congruent to v): they stay small, and equal modulo 2^16
 * the spec's 64-bit sums, which is all its q keeps. */
function unpredictRows(d, rows, width, predictor, carry, q, wrapped) {
  const vertical = predictor === 2 || predictor === 3, horizontal = predictor === 1 || predictor === 3;
  if (wrapped) {
    for (let y = 0; y < rows; y++) {
      const at = y * width;
      if (vertical) {
        for (let x = 0; x < width; x++) q[at + x] = carry[x] = ((carry[x] + d[at + x]) << 16) >> 16;
      } else {
        for (let x = 0; x < width; x++) q[at + x] = d[at + x];
      }
      if (!horizontal) continue;
      let sum = 0;
      for (let x = 0; x < width; x++) q[at + x] = sum = ((sum + q[at + x]) << 16) >> 16;
    }
    return;
  }
  for (let y = 0; y < rows; y++) {
    const at = y * width;
    if (vertical) {
      for (let x = 0; x < width; x++) q[at + x] = carry[x] += d[at + x];
    } else {
      for (let x = 0; x < width; x++) q[at + x] = d[at + x];
    }
    if (!horizontal) continue;
    let sum = 0;
    for (let x = 0; x < width; x++) q[at + x] = sum += q[at + x];
  }
}

/** Most residual streams (blocks in progress) open at once, as spec §5 Resources and the
 * reference decoder: an image of up to 255 channels is corrected in groups of channels. */
const OPEN_STREAMS = 4;

/** `channels` (default: every channel with residual blocks), in residualChannels' order, in
 * groups that open at most OPEN_STREAMS streams in any band: a channel's own, and one more for a
 * channel whose blocks refer to a channel outside its group (read at those blocks' rows alone;
 * a channel's blocks may refer to different channels). The reference decoder's groups. */
function residualGroups(table, channels = null) {
  const references = new Map();
  for (let i = 0; i < table.length; i++) {
    const c = table.channel[i], r = table.reference[i];
    if (r === NO_REFERENCE) continue;
    if (!references.has(c)) references.set(c, new Set());
    references.get(c).add(r);
  }
  const streams = (group) => group.length +
    group.filter((c) => [...(references.get(c) ?? [])].some((r) => !group.includes(r))).length;
  const groups = [];
  for (const c of residualChannels(table)) {
    if (channels !== null && !channels.includes(c)) continue;
    const last = groups[groups.length - 1];
    if (last && streams([...last, c]) <= OPEN_STREAMS) last.push(c);
    else groups.push([c]);
  }
  return groups;
}

/** The residual phase (spec §4.1, §5.3), group of channels after group, band by band: each
 * channel's q (with its reference channel's q of the same band added), |q| ≤ 2^31 − 1 checked,
 * then applied to the samples of `data` (height × width × channels, interleaved) in place. With
 * `data` null the blocks are read and checked only (readFactors: the same verdict, no samples).
 * `channels`: only theirs (a preview's channels with no layer, and the blocks they refer to). */
function applyResiduals(container, data, dtype, channels = null) {
  const { header, residuals } = container;
  if (!residuals.length) return;
  const bands = residualBands(header, residuals, Array.from({ length: residuals.length }, (_, i) => i));
  for (const group of residualGroups(residuals, channels)) {
    applyResidualGroup(container, data, dtype, bands, group, residuals.ofChannel);
  }
}

/** One group's residuals, band by band; a reference channel outside the group is read only at
 * the rows of the blocks that refer to it (its own blocks of the same rows, §4.1). byChannel:
 * each channel's blocks (their indices in the container's table) in row order. */
function applyResidualGroup(container, data, dtype, bands, group, byChannel) {
  const { width, channels } = container.header;
  const bandSamples = bands.widest * width;
  const cursor = (c) => new ResidualCursor(container, byChannel.get(c) ?? [], bandSamples);
  const cursors = group.map((c) => [c, cursor(c)]);
  const outside = new Map();
  const qOf = new Map();
  const final = (block, q) => {
    if (block.reference !== NO_REFERENCE) {
      const base = qOf.get(block.reference);
      for (let i = 0; i < q.length; i++) q[i] += base[i];
    }
    // a wrapped block's q: the int16 congruent modulo 2^16 (exact integers below 2^53 here)
    if (block.wrapped) for (let i = 0; i < q.length; i++) q[i] = (q[i] << 16) >> 16;
    for (let i = 0; i < q.length; i++) {
      if (q[i] > MAX_RESIDUAL || q[i] < -MAX_RESIDUAL) throw new SvdiError(`${block.what}: residual beyond 2^31 - 1`);
    }
    return q;
  };
  for (const [y0, y1] of bands) {
    qOf.clear();
    for (const [c, reader] of cursors) {
      const { block, q } = reader.rows(y0, y1);
      const r = block.reference;
      if (r !== NO_REFERENCE && !qOf.has(r)) {
        if (!outside.has(r)) outside.set(r, cursor(r));
        const other = outside.get(r);
        other.seek(y0, block.what);
        const got = other.rows(y0, y1);
        qOf.set(r, final(got.block, got.q));
      }
      qOf.set(c, final(block, q));
      if (data !== null) correctSamples(data, y0 * width * channels + c, channels, q, block, dtype);
    }
  }
}

/** The residual blocks of a file that ends early with every factor block in (§5.3 on what
 * arrived): each channel's rows [0, n) whose blocks arrived (and so its reference channel's: §4.1
 * puts the reference's block of the same rows first) corrected as in the whole file, the residual
 * phase run on those rows alone; the other rows stay the low-rank layer. */
function applyArrivedResiduals(container, data, dtype, only = null) {
  const { header, residuals, truncation } = container;
  // a channel's blocks within its first `rows` rows: a prefix of them (they are in row order)
  const within = (c, rows) => {
    const blocks = residuals.ofChannel.get(c) ?? [];
    let n = 0;
    while (n < blocks.length && residuals.first[blocks[n]] + residuals.rows[blocks[n]] <= rows) n++;
    return blocks.slice(0, n);
  };
  truncation.residualRows.forEach((rows, c) => {
    if (!rows || (only !== null && !only.has(c))) return;
    const arrivedHeader = { ...header, height: rows };
    const arrived = new Map([[c, within(c, rows)]]);
    for (const i of arrived.get(c)) {
      const r = residuals.reference[i];
      if (r !== NO_REFERENCE && !arrived.has(r)) arrived.set(r, within(r, rows));
    }
    const bands = residualBands(arrivedHeader, residuals, [...arrived.values()].flat());
    applyResidualGroup({ ...container, header: arrivedHeader }, data, dtype, bands, [c], arrived);
  });
}

/** The channels with residual blocks whose layer is one constant sample (§5.3): every plane
 * they are made from (colour 1: the three of Y′CbCr for R, G and B; else the channel's own) has
 * rank 0 and no MEAN chunk, deblocking or restoration. A preview applies their residual: it
 * does not depend on the other planes' components. */
function bareChannels(container) {
  const { header, planes, residuals, means, restoration } = container;
  const flat = (i) => planes[i].rank === 0 && !means.has(i) && !planes[i].filtered && !restoration.has(i);
  const sources = (c) => (header.colour === 1 && c < 3 ? [0, 1, 2] : [c]);
  return residualChannels(residuals).filter((c) => sources(c).every(flat));
}

/** sample = clamp(x̂ + q·t, min, max) for integer samples, exact in binary64: |q·t| < 2^52
 * (|q| < 2^31, the step limits of §4.1) and |x̂| ≤ 2^32, so every value is an integer below
 * 2^53. Floats: fl32(x̂ + fl64(q·t)) for float32, fl64(x̂ + fl64(q·t)) for float64, where a
 * result that is not finite makes the file invalid. */
function correctSamples(data, at, channels, q, block, dtype) {
  const t = block.step;
  if (dtype in FLOAT_MAX) {
    let bad = 0;
    if (dtype === "float32") {
      for (let i = 0, o = at; i < q.length; i++, o += channels) {
        const v = fround(data[o] + q[i] * t);
        bad += v * 0;
        data[o] = v;
      }
    } else {
      for (let i = 0, o = at; i < q.length; i++, o += channels) {
        const v = data[o] + q[i] * t;
        bad += v * 0;
        data[o] = v;
      }
    }
    if (bad !== 0) throw new SvdiError(`${block.what}: corrected samples overflow ${dtype}`);
    return;
  }
  const [lo, hi] = SAMPLE_RANGES[dtype];
  if (block.wrapped) { // version 7: the sample of the type congruent to x̂ + q·t modulo 2^16
    for (let i = 0, o = at; i < q.length; i++, o += channels) {
      const v = (data[o] + q[i] * t - lo) % 65536;
      data[o] = (v < 0 ? v + 65536 : v) + lo;
    }
    return;
  }
  for (let i = 0, o = at; i < q.length; i++, o += channels) {
    const v = data[o] + q[i] * t;
    data[o] = v <= lo ? lo : v >= hi ? hi : v;
  }
}

// ----------------------------------------------------------------------------- public API

/**
 * A parsed and validated file whose integer factors are decoded once, for reconstructing with
 * any number of components (the viewer's slider): `reconstruct(k)`.
 */
export class SvdiImage {
  constructor(container, components) {
    this.container = container;
    const { header, planes } = container;
    this.header = header;
    // centred: the plane has column means (MEAN, §3.1), added to every reconstruction.
    this.planes = planes.map((p) => ({ ...publicPlane(p), centred: container.means.has(p.index) }));
    this.fileBytes = container.bytes.length;
    // A file opened with truncated: "fill" that ended early: where ({size, start, chunk, length,
    // components, residualRows}), and the components every plane has whole (null: all).
    this.truncation = container.truncation;
    const arrived = this.truncation ? componentsArrived(this.truncation, planes) : null;
    if (arrived !== null) components = components == null ? arrived : Math.min(components, arrived);
    // Nothing of the image arrived (some plane's component 0 is missing): zeros, no block read.
    this.nothing = arrived === 0;
    this.factors = planes.map((p) => {
      if (this.nothing) return { k: 0, stride: 0, A: null, B: null, means: null, rowM: null };
      const k = components == null ? p.rank : Math.min(p.rank, components);
      // An exact plane's bound (§5.1) is checked on what is multiplied: all of A and B, or a
      // preview's first k components with their weights.
      const stride = k;
      const A = integerFactor(container, p, "U", stride), B = integerFactor(container, p, "V", stride);
      // An adapted plane (§5.5): M per row from components 0..min(K, rank) − 1 (read again
      // if a preview has fewer), the bound on A∘M.
      let rowM = null, largestA = A.largest;
      if (p.adapted && p.rank > 0 && p.shift !== null) {
        const kk = Math.min(p.aq[0], p.rank);
        rowM = kk <= stride ? adaptiveMap(p, A.data, stride, kk)
          : adaptiveMap(p, integerFactor(container, p, "U", kk).data, kk, kk);
        largestA = 0;
        for (let i = 0; i < p.m; i++) {
          for (let c = 0; c < k; c++) {
            const v = Math.abs(A.data[i * stride + c]) * (c === 0 ? 16 : rowM[i]);
            if (v > largestA) largestA = v;
          }
        }
      }
      if (p.shift !== null) checkExactBound(p, largestA, B.largest, k);
      const meanBlock = container.means.get(p.index);
      const means = meanBlock ? readMeans(meanBlock, container.bytes) : null;
      return { k, stride, A: A.data, B: B.data, means, rowM };
    });
  }

  /** Whether reconstruct(k) uses every component of every plane: the image that the residual
   * blocks correct (§5.3; a preview of fewer components is the low-rank layer alone). */
  isComplete(k = null) {
    return this.factors.every((f, i) => Math.min(f.k, k ?? Infinity) >= this.planes[i].rank);
  }

  /** The channels with no layer (§5.3): their residual applies in a preview too. */
  noLayerChannels() {
    return bareChannels(this.container);
  }

  /** The residual blocks (version 2, §4.1) in file order: channel, reference channel (null for
   * none), first row, rows, step, bound (the largest error the encoder promises for them),
   * element type, predictor and bytes stored. */
  residualBlocks() {
    return Array.from(this.container.residuals, (b) => ({
      channel: b.channel, reference: b.reference === NO_REFERENCE ? null : b.reference,
      first: b.first, rows: b.rows, step: b.step, bound: b.bound,
      elementType: { 1: "int8", 2: "int16", 3: "int32", 5: "wrapped int16" }[b.elementType], predictor: b.predictor,
      stored: b.stored,
    }));
  }

  /** The plane values (§5 steps 1–3) from the first k components: one binary32 array per plane,
   * plane height × width, before the sample scale, rounding and colour conversion. */
  planeValues(k = null) {
    if (k != null && !(Number.isInteger(k) && k >= 0)) throw new SvdiError("components must be a non-negative integer");
    return this.container.planes.map((p, i) => this.planeValue(i, k));
  }

  /** planeValues(k)[i] alone. */
  planeValue(i, k = null) {
    const p = this.container.planes[i], f = this.factors[i];
    if (this.nothing) return new Float32Array(p.height * p.width); // (a file cut before any component)
    const kk = k == null ? f.k : Math.min(f.k, k);
    return reconstructPlane(p, f.A, f.B, f.stride, kk, f.means, f.rowM);
  }

  /** The image from the first k components of every plane (all if k is null or undefined);
   * with every component, a version 2 file's residual blocks applied (§5.3). */
  reconstruct(k = null) {
    return allocating(() => {
      const { width, height, channels, dtype } = this.header;
      if (k != null && !(Number.isInteger(k) && k >= 0)) throw new SvdiError("components must be a non-negative integer");
      if (this.nothing) return { width, height, channels, dtype, data: new SAMPLE_ARRAYS[dtype](width * height * channels) };
      let data;
      if (this.header.colour === 1 && dtype === "uint16") {
        data = wideYcbcrImage(this.header, this.planeValues(k)); // version 3
      } else if (this.header.colour === 1) {
        data = ycbcrImage(this.header, this.planeValues(k), this.container.planes, this.container.restoration); // the planes are released
      } else {
        // Colour 0: each channel is its own plane, converted as it is reconstructed, so that at
        // most one binary32 plane is held besides the output (an image may have 255 channels).
        data = new SAMPLE_ARRAYS[dtype](width * height * channels);
        let bad = 0;
        for (let c = 0; c < channels; c++) {
          bad += storeSamples(this.planeValue(c, k), data, c, this.header);
          const p = this.container.planes[c];
          if (p.filtered) deblockChannel(data, c, channels, channels * width, width, height, edgePeriod(this.header, p), p.deblock);
          const r = this.container.restoration.get(c);
          if (r) restoreChannel(data, c, channels, channels * width, width, height, r);
        }
        if (bad !== 0) throw sampleOverflow(this.header);
      }
      if (this.isComplete(k)) {
        if (this.truncation) applyArrivedResiduals(this.container, data, dtype);
        else applyResiduals(this.container, data, dtype);
      } else if (this.container.residuals.length) {
        // a preview: the channels with no layer are whole (§5.3)
        const bare = bareChannels(this.container);
        if (this.truncation) applyArrivedResiduals(this.container, data, dtype, new Set(bare));
        else if (bare.length) applyResiduals(this.container, data, dtype, bare);
      }
      return { width, height, channels, dtype, data };
    });
  }

  /** Per plane: σ (in sample units for colour 0 and 16-bit Y′CbCr, like the reference's
   * read_factors; 8-bit Y′CbCr in its own units; for a patch layout the singular values of the
   * stored product, Vᵀ's rows of unit norm: `unitRows`), and the
   * dequantized U (m × r) and Vᵀ (r × n), binary32, row-major. includeU: false leaves U out
   * (null), for callers that need only the spectrum and the basis (the viewer). */
  readFactors({ includeU = true } = {}) {
    const { header } = this;
    if (this.truncation) {
      throw new SvdiError(`readFactors reads whole files; this one ends early (truncated file: ${cutWhere(this.truncation)})`);
    }
    // HEAD's scale is not applied to uint8 samples (§2): 8-bit Y′CbCr in its own units
    const scale = header.dtype !== "uint8" ? fround(header.scale) : 1;
    // A version 2 file's residual blocks are read and checked as a decode checks them (the same
    // verdict; the factors are version 1's dequantized ones, as the reference's read_factors).
    // A float residual can make a sample overflow (§5.3): that verdict needs the image (when
    // this file was opened with every component; otherwise the q are checked alone).
    if (this.container.residuals.length && header.dtype in FLOAT_MAX && this.isComplete()) this.reconstruct(null);
    else allocating(() => applyResiduals(this.container, null, header.dtype));
    return this.container.planes.map((p, i) => {
      const { A, B, k, stride, rowM } = this.factors[i];
      const r = k;
      const inv = new Float32Array(r);
      // Δ / σ in binary32, as the reference's numpy computes it (the step rounded first)
      const step32 = fround(p.step);
      for (let c = 0; c < r; c++) inv[c] = fround(step32 / p.sigma[c]);
      const U = includeU ? new Float32Array(p.m * r) : null, Vt = new Float32Array(r * p.n);
      if (U) for (let row = 0; row < p.m; row++) for (let c = 0; c < r; c++) U[row * r + c] = fround(A[row * stride + c] * inv[c]);
      // an adapted plane's row p of components >= 1 times M_p / 16 (§5.5), in binary32
      if (U && rowM) for (let row = 0; row < p.m; row++) for (let c = 1; c < r; c++) U[row * r + c] = fround(U[row * r + c] * (rowM[row] / 16));
      for (let j = 0; j < p.n; j++) for (let c = 0; c < r; c++) Vt[c * p.n + j] = fround(B[j * stride + c] * inv[c]);
      const S = unitRows(p, r, Vt, scale);
      // A centred plane's column means in the units of S (matrix ≈ U·diag(S)·Vᵀ + 1·meanᵀ).
      let mean = null;
      if (this.factors[i].means) {
        mean = Float32Array.from(this.factors[i].means, (v) => fround(v * scale));
        if (!mean.every(Number.isFinite)) throw new SvdiError(`plane ${p.index}: factors overflow float32 (column means times the sample scale ${scale})`);
      }
      return {
        index: p.index, layout: p.layoutName, patch: p.patch, planeShape: [p.height, p.width],
        m: p.m, n: p.n, rank: r, S, U, Vt, mean,
      };
    });
  }

  /** Bytes stored per plane's factor blocks (chunk headers and CRCs included). */
  blockBytes() {
    const out = this.container.planes.map(() => ({ U: 0, S: 0, V: 0 }));
    for (const b of this.container.blocks) out[b.plane][b.factor] += b.stored;
    return out;
  }
}

/** numpy's pairwise sum of n binary64 values (its add.reduce along a contiguous axis): eight
 * running sums in blocks of up to 128, halves above, so that a sum here has numpy's bits. */
function pairwiseSum(a, start, n) {
  if (n < 8) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += a[start + i];
    return sum;
  }
  if (n <= 128) {
    const r = Array.from({ length: 8 }, (_, j) => a[start + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) sum += a[start + i];
    return sum;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwiseSum(a, start, half) + pairwiseSum(a, start + half, n - half);
}

/** A plane's S = σ × the sample scale (binary32), for a patch layout with its rows of Vᵀ
 * (r × n, binary32, in place) scaled to unit norm and S carrying their norms, as the
 * reference's read_factors gives them (its `unit_rows`): a patch layout's stored σ is only the
 * decoder's weight (spec §6, "Stored σ": the patch mean's σ / 0.7, the others refitted), which
 * scales the dequantized V by its inverse; moved into S, it gives the singular values of the
 * stored product. A row of zeros, or one whose S would not be finite, keeps the weight. */
function unitRows(p, r, Vt, scale) {
  const S = new Float32Array(r);
  for (let c = 0; c < r; c++) S[c] = fround(p.sigma[c] * scale);
  if (p.layout === 0) return S;
  const squares = new Float64Array(p.n);
  for (let c = 0; c < r; c++) {
    for (let j = 0; j < p.n; j++) squares[j] = Vt[c * p.n + j] * Vt[c * p.n + j];
    const norm = Math.sqrt(pairwiseSum(squares, 0, p.n));
    const moved = fround(fround(p.sigma[c] * norm) * scale);
    if (!(norm > 0 && Number.isFinite(moved))) continue;
    S[c] = moved;
    for (let j = 0; j < p.n; j++) Vt[c * p.n + j] = fround(Vt[c * p.n + j] / norm);
  }
  return S;
}

/** decode's and open's `truncated` values: what to do with a file that ends early. */
export const TRUNCATED_CHOICES = ["raise", "fill"];

/** Parse, validate and decode the factors: an SvdiImage. Options: components (decode only the
 * first k components of every plane), maxPixels (default Pillow's 89478485; null: no limit),
 * truncated ("raise", the default: a file that ends early is an SvdiError saying where it ends;
 * "fill": what arrived, as the reference decoder's decode(data, truncated="fill") gives it). */
export function open(data, { components = null, maxPixels = DEFAULT_MAX_PIXELS, truncated = "raise" } = {}) {
  if (components != null && !(Number.isInteger(components) && components >= 0)) {
    throw new SvdiError("components must be a non-negative integer");
  }
  if (!TRUNCATED_CHOICES.includes(truncated)) {
    throw new SvdiError(`truncated must be one of 'raise', 'fill', got ${JSON.stringify(truncated)}`);
  }
  return allocating(() => new SvdiImage(parseContainer(data, { maxPixels, truncated: truncated === "fill" }), components));
}

/** Run f, reporting a failed allocation (RangeError from a typed array the engine cannot
 * provide, possible with maxPixels: null and a huge valid image) as an SvdiError. */
function allocating(f) {
  try {
    return f();
  } catch (error) {
    if (error instanceof RangeError) throw new SvdiError(`cannot allocate the decoded data (${error.message})`);
    throw error;
  }
}

/** Decode .svdi bytes: {width, height, channels, dtype, data} with data a Uint8Array,
 * Uint16Array or Float32Array of height × width × channels interleaved samples. With
 * truncated: "fill", a file that ends early gives what arrived (see open, and js/README.md). */
export function decode(data, { components = null, maxPixels = DEFAULT_MAX_PIXELS, truncated = "raise" } = {}) {
  return open(data, { components, maxPixels, truncated }).reconstruct(components);
}

/** Each plane's dequantized factors (see SvdiImage.readFactors). */
export function readFactors(data, { maxPixels = DEFAULT_MAX_PIXELS } = {}) {
  return open(data, { maxPixels }).readFactors();
}

/** The image from the first k components of an opened file (the progressive reconstruction). */
export function reconstruct(image, k) {
  return image.reconstruct(k);
}
