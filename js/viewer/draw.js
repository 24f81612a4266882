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

/** EXIF's Orientation tag (1 … 8) of an eXIf chunk's TIFF structure (spec §1.1: it starts with
 * "II*\0" or "MM\0*"), or 1 (upright) when there is none or it cannot be read. A phone stores a
 * portrait photo's pixels sideways with orientation 6 or 8; svdi stores the EXIF as given, so
 * the viewer turns the picture as a JPEG viewer would. Every offset is checked against the
 * length: the bytes come from the file. */
export function exifOrientation(exif) {
  if (!exif || exif.length < 8) return 1;
  const little = exif[0] === 0x49; // "II"; else "MM", big-endian
  const u16 = (o) => (little ? exif[o] | (exif[o + 1] << 8) : (exif[o] << 8) | exif[o + 1]);
  const u32 = (o) => (little
    ? exif[o] | (exif[o + 1] << 8) | (exif[o + 2] << 16) | (exif[o + 3] << 24)
    : (exif[o] << 24) | (exif[o + 1] << 16) | (exif[o + 2] << 8) | exif[o + 3]) >>> 0;
  const ifd = u32(4); // IFD0, where Orientation lives
  if (ifd + 2 > exif.length) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > exif.length) return 1;
    if (u16(entry) !== 0x0112) continue;
    const value = u16(entry + 8); // a SHORT sits at the start of the value field
    return u16(entry + 2) === 3 && value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/** RGBA pixels (width × height) turned upright for EXIF orientation 1 … 8, the transform of
 * Pillow's ImageOps.exif_transpose: {rgba, width, height}, width and height swapped for 5 … 8. */
export function orientRgba(rgba, width, height, orientation) {
  if (!(orientation >= 2 && orientation <= 8)) return { rgba, width, height };
  const swap = orientation >= 5;
  const outW = swap ? height : width, outH = swap ? width : height;
  const src = new Uint32Array(rgba.buffer, rgba.byteOffset, width * height);
  const out = new Uint8ClampedArray(rgba.length);
  const dst = new Uint32Array(out.buffer);
  // The source pixel (sx, sy) of output pixel (x, y).
  const from = {
    2: (x, y) => [width - 1 - x, y],
    3: (x, y) => [width - 1 - x, height - 1 - y],
    4: (x, y) => [x, height - 1 - y],
    5: (x, y) => [y, x],
    6: (x, y) => [y, height - 1 - x],
    7: (x, y) => [width - 1 - y, height - 1 - x],
    8: (x, y) => [width - 1 - y, x],
  }[orientation];
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const [sx, sy] = from(x, y);
      dst[y * outW + x] = src[sy * width + sx];
    }
  }
  return { rgba: out, width: outW, height: outH };
}
