// The viewer turns a picture upright as its EXIF orientation asks (draw.js): the tag read from
// an eXIf chunk in either byte order, and the eight transforms against Pillow's
// ImageOps.exif_transpose of a 3 × 2 image whose pixels are numbered 0 … 5.
import { test } from "node:test";
import assert from "node:assert/strict";
import { exifOrientation, orientRgba } from "../viewer/draw.js";

/** A TIFF structure whose IFD0 holds `entries` ([tag, type, count, value]). */
function tiff(entries, little = true) {
  const bytes = new Uint8Array(8 + 2 + 12 * entries.length + 4);
  const view = new DataView(bytes.buffer);
  bytes.set(little ? [0x49, 0x49, 0x2a, 0] : [0x4d, 0x4d, 0, 0x2a]);
  view.setUint32(4, 8, little);
  view.setUint16(8, entries.length, little);
  entries.forEach(([tag, type, count, value], i) => {
    const at = 10 + 12 * i;
    view.setUint16(at, tag, little);
    view.setUint16(at + 2, type, little);
    view.setUint32(at + 4, count, little);
    view.setUint16(at + 8, value, little); // a SHORT at the start of the value field
  });
  return bytes;
}

test("EXIF orientation from either byte order, 1 when absent or damaged", () => {
  for (const little of [true, false]) {
    for (let o = 1; o <= 8; o++) {
      assert.equal(exifOrientation(tiff([[0x010f, 2, 4, 0], [0x0112, 3, 1, o]], little)), o);
    }
    assert.equal(exifOrientation(tiff([[0x010f, 2, 4, 0]], little)), 1); // no Orientation tag
    assert.equal(exifOrientation(tiff([[0x0112, 3, 1, 9]], little)), 1); // not an orientation
    assert.equal(exifOrientation(tiff([[0x0112, 4, 1, 6]], little)), 1); // not a SHORT
  }
  assert.equal(exifOrientation(undefined), 1);
  assert.equal(exifOrientation(new Uint8Array([0x49, 0x49, 0x2a, 0])), 1);
  const cut = tiff([[0x010f, 2, 4, 0], [0x0112, 3, 1, 6]]);
  assert.equal(exifOrientation(cut.subarray(0, cut.length - 10)), 1); // entry past the end
  const farIfd = tiff([[0x0112, 3, 1, 6]]);
  new DataView(farIfd.buffer).setUint32(4, 0xfffffff0, true); // IFD0 beyond the structure
  assert.equal(exifOrientation(farIfd), 1);
});

// Pillow: ImageOps.exif_transpose of np.arange(6).reshape(2, 3) with Orientation o.
const PILLOW = {
  1: [3, 2, [0, 1, 2, 3, 4, 5]],
  2: [3, 2, [2, 1, 0, 5, 4, 3]],
  3: [3, 2, [5, 4, 3, 2, 1, 0]],
  4: [3, 2, [3, 4, 5, 0, 1, 2]],
  5: [2, 3, [0, 3, 1, 4, 2, 5]],
  6: [2, 3, [3, 0, 4, 1, 5, 2]],
  7: [2, 3, [5, 2, 4, 1, 3, 0]],
  8: [2, 3, [2, 5, 1, 4, 0, 3]],
};

test("the eight orientations turn the pixels as Pillow's exif_transpose does", () => {
  const rgba = new Uint8ClampedArray(6 * 4);
  for (let i = 0; i < 6; i++) rgba.set([i, 10 * i, 100 + i, 255], 4 * i);
  for (const [o, [width, height, order]] of Object.entries(PILLOW)) {
    const out = orientRgba(rgba, 3, 2, Number(o));
    assert.equal(out.width, width, `orientation ${o}`);
    assert.equal(out.height, height, `orientation ${o}`);
    const expected = order.flatMap((i) => [i, 10 * i, 100 + i, 255]);
    assert.deepEqual([...out.rgba], expected, `orientation ${o}`);
  }
});
