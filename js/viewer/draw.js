// How the viewer draws decoded samples that are not a picture: shared by the page's Worker and
// the browser test, which checks the canvas against it.

/** Whether the page draws a file's samples as a picture: grey, grey + alpha, RGB or RGBA of
 * uint8, uint16 or float32. Version 2's arrays (int8 … float64, 5–255 channels) have no colour
 * meaning: they are shown one channel at a time as grey (channelAsGrey). */
export function drawsAsPicture(header) {
  return ["uint8", "uint16", "float32"].includes(header.dtype) && header.channels <= 4;
}

/** Channel `channel` of decoded samples as grey RGBA bytes, its smallest sample black and its
 * largest white (linear; a constant channel mid-grey): {rgba, lo, hi}. Differences are taken
 * of halved samples, so that float64 extremes do not overflow. */
export function channelAsGrey(decoded, channel) {
  const { width, height, channels, data } = decoded;
  let lo = Infinity, hi = -Infinity;
  for (let i = channel; i < data.length; i += channels) {
    const v = data[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Uint8ClampedArray(width * height * 4);
  const span = hi / 2 - lo / 2;
  for (let i = channel, o = 0; i < data.length; i += channels, o += 4) {
    const grey = span > 0 ? Math.round((255 * (data[i] / 2 - lo / 2)) / span) : 128;
    out[o] = out[o + 1] = out[o + 2] = grey;
    out[o + 3] = 255;
  }
  return { rgba: out, lo, hi };
}
