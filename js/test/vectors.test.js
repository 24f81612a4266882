// Conformance: every vector of spec/vectors (manifest.json) — valid ones decode to their .npy
// reference within the manifest's tolerance (version 2 ones to the bit), invalid ones are
// rejected with the rule named.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as svdi from "../svdi.js";
import { readNpy } from "../support/npy.js";
import { compareSamples, differingBits } from "../support/compare.js";

const dir = fileURLToPath(new URL("../../spec/vectors/", import.meta.url));
const manifest = JSON.parse(readFileSync(dir + "manifest.json", "utf8"));
/** .npy type codes (byte order dropped) of the sample types. */
const NPY_TYPES = { u1: "uint8", u2: "uint16", f4: "float32", i1: "int8", i2: "int16", i4: "int32", u4: "uint32", f8: "float64" };

test("the manifest lists valid and invalid vectors", () => {
  assert.equal(manifest.format_version, svdi.VERSION);
  assert.ok(manifest.vectors.filter((v) => v.valid).length >= 9);
  assert.ok(manifest.vectors.filter((v) => !v.valid).length >= 18);
  const versions = manifest.vectors.filter((v) => v.valid)
    .map((v) => svdi.readHeader(readFileSync(dir + v.file)).version);
  assert.ok([1, 2, 3, 4].every((v) => versions.includes(v)), "valid vectors of every version");
});

for (const v of manifest.vectors.filter((v) => v.valid)) {
  test(`valid vector ${v.file}: ${v.description}`, () => {
    const bytes = readFileSync(dir + v.file);
    const image = svdi.decode(bytes);
    const expected = readNpy(readFileSync(dir + v.expected));
    assert.equal(image.dtype, v.dtype);
    assert.equal(NPY_TYPES[expected.dtype], v.dtype);
    assert.equal(image.data.constructor, svdi.SAMPLE_ARRAYS[v.dtype]);
    const shape = image.channels === 1 ? [image.height, image.width] : [image.height, image.width, image.channels];
    assert.deepEqual(shape, v.shape);
    assert.deepEqual(expected.shape, v.shape);
    const { max, over } = compareSamples(image.data, expected.data, v.tolerance.abs);
    assert.equal(over, 0, `${over} samples beyond ±${v.tolerance.abs} (largest difference ${max})`);
    if (svdi.readHeader(bytes).version >= 2) {
      // Versions 2 to 4: the reference's samples to the bit (spec §5.3), float32 signs of zero too.
      assert.equal(differingBits(image.data, expected.data), 0);
    }
    // The header alone gives the same size, type and planes.
    const header = svdi.readHeader(bytes);
    assert.equal(header.width, image.width);
    assert.equal(header.height, image.height);
    assert.equal(header.dtype, v.dtype);
    assert.equal(header.planes.length, image.channels);
  });
}

for (const v of manifest.vectors.filter((v) => !v.valid)) {
  test(`invalid vector ${v.file}: ${v.description}`, () => {
    const bytes = readFileSync(dir + v.file);
    assert.throws(() => svdi.decode(bytes), (e) => {
      assert.ok(e instanceof svdi.SvdiError, `${e.name}: ${e.message}`);
      assert.ok(e.message.includes(v.error), `"${e.message}" does not name "${v.error}"`);
      return true;
    });
  });
}

test("a uint8 file's scale is not applied, to samples or to readFactors' S (§2)", () => {
  const one = svdi.readFactors(readFileSync(dir + "l_13x7_plain.svdi"));
  const two = svdi.readFactors(readFileSync(dir + "uint8_scale_2.svdi"));
  assert.deepEqual(Array.from(two[0].S), Array.from(one[0].S));
});
