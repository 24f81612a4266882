// Seeded damage to valid .svdi files, for the hostile test (test/hostile.test.js) and the
// cross-decoder fuzzer (cross_fuzz.mjs): bytes of one chunk's payload changed and that chunk's
// CRC recomputed, so that the damage gets past the CRC check to the parsers.
import { crc32 } from "../svdi.js";

/** A seeded generator of numbers in [0, 1) (a 32-bit linear congruential one): a failure
 * reproduces from its seed. */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => ((state = (Math.imul(state, 1103515245) + 12345) >>> 0) / 2 ** 32);
}

/** The chunks after the signature: { type, pos (the chunk's first byte), length (its
 * payload's) }. */
export function chunks(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const out = [];
  for (let pos = 8; pos + 12 <= bytes.length;) {
    const length = view.getUint32(pos);
    out.push({ type: String.fromCharCode(...bytes.subarray(pos + 4, pos + 8)), pos, length });
    pos += 12 + length;
  }
  return out;
}

/** Change 1–3 payload bytes of one non-empty chunk of `bytes` (in place), each flipped in one
 * bit or replaced, all chosen by `random`; the CRC recomputed. */
export function mutateChunk(bytes, random) {
  const list = chunks(bytes).filter((c) => c.length > 0);
  const c = list[Math.floor(random() * list.length)];
  for (let f = 1 + Math.floor(random() * 3); f > 0; f--) {
    const at = c.pos + 8 + Math.floor(random() * c.length);
    bytes[at] = random() < 0.5 ? bytes[at] ^ (1 << Math.floor(random() * 8)) : Math.floor(random() * 256);
  }
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(c.pos + 8 + c.length, crc32(bytes, c.pos + 4, c.pos + 8 + c.length));
}
