// Element-wise comparison of a decoded image with a reference array, as the tests report it.

/** {max, over}: the largest |a − b| and how many elements differ by more than `tolerance`. */
export function compareSamples(actual, expected, tolerance) {
  if (actual.length !== expected.length) throw new Error(`${actual.length} samples, expected ${expected.length}`);
  let max = 0, over = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= max)) max = d; // NaN propagates
    if (!(d <= tolerance)) over++;
  }
  return { max, over };
}

/** How many samples of `actual` differ from `expected` in their bits (both typed arrays of the
 * same type and length): version 2's conformance is bit-exact equality (spec §5.3). */
export function differingBits(actual, expected) {
  if (actual.constructor !== expected.constructor || actual.length !== expected.length) {
    throw new Error(`${actual.constructor.name}(${actual.length}), expected ${expected.constructor.name}(${expected.length})`);
  }
  const size = actual.BYTES_PER_ELEMENT;
  const a = new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const b = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  let differing = 0;
  for (let i = 0; i < actual.length; i++) {
    for (let j = i * size; j < (i + 1) * size; j++) {
      if (a[j] !== b[j]) {
        differing++;
        break;
      }
    }
  }
  return differing;
}

/** The spec's tolerance for an image (§5): integers ±1, float32 10⁻⁵ of scale × 255. */
export function specTolerance(dtype, scale) {
  return dtype === "float32" ? 1e-5 * scale * 255 : 1;
}

/**
 * The conformance rule for Y′CbCr images proposed in js/README.md ("Conformance"): each pixel's
 * RGB must be the colour conversion of Y′, Cb, Cr values within ±1 of the decoder's own rounded
 * planes (a plane value that lands on the other side of a rounding boundary moves R or B by up
 * to 2, since 1.402 and 1.772 exceed 1). Alpha is held to ±1 like any integer sample.
 * Returns {unexplained, viaPlanes}: pixels no such planes give, and pixels beyond ±1 that they do.
 */
export function compareYCbCr(rounded, decoded, expected, channels, ycbcrToRgb) {
  const [Y, Cb, Cr] = rounded;
  let unexplained = 0, viaPlanes = 0;
  for (let i = 0; i < Y.length; i++) {
    const o = i * channels;
    const want = [expected[o], expected[o + 1], expected[o + 2]];
    if (channels === 4 && !(Math.abs(decoded[o + 3] - expected[o + 3]) <= 1)) unexplained++;
    const direct = ycbcrToRgb(Y[i], Cb[i], Cr[i]);
    if (direct.every((v, c) => Math.abs(v - want[c]) <= 1)) continue;
    let found = false;
    for (let dy = -1; dy <= 1 && !found; dy++) {
      for (let db = -1; db <= 1 && !found; db++) {
        for (let dr = -1; dr <= 1 && !found; dr++) {
          const y = Y[i] + dy, cb = Cb[i] + db, cr = Cr[i] + dr;
          if (y < 0 || y > 255 || cb < 0 || cb > 255 || cr < 0 || cr > 255) continue;
          const rgb = ycbcrToRgb(y, cb, cr);
          found = rgb[0] === want[0] && rgb[1] === want[1] && rgb[2] === want[2];
        }
      }
    }
    if (found) viaPlanes++;
    else unexplained++;
  }
  return { unexplained, viaPlanes };
}
