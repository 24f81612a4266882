// A file that ends early (a download cut short): refused by default, and with truncated: "fill"
// decoded to what arrived exactly as the reference decoder's decode(data, truncated="fill")
// gives it (spec §1, "A file that ends early"; docs/usage.md, "Files cut short"): zeros before
// component 0 of every plane is in, a preview of the components every plane has whole, the
// residual blocks that arrived applied to their rows, the whole image once every block is in.
// The fixtures cut files of every kind of part (make_fixtures.py: groups of components, residual
// blocks of a few rows with references and wrapped, exact alpha, adaptive quantization, the
// restoration filter, column means, metadata) inside each chunk's header, payload and CRC.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import * as svdi from "../svdi.js";
import { readNpy } from "../support/npy.js";
import { differingBits } from "../support/compare.js";
import { FIXTURES, loadTruncatedFixtures } from "../support/fixtures.js";

const files = loadTruncatedFixtures();

/** Messages the JavaScript decoder words as the reference decoder does: where the file ends. */
const SAME_WORDS = /^truncated file: the file ends at byte|out of place or unknown|^not an SVDI file/;

test("the cut fixtures cover every outcome", () => {
  const arrived = files.flatMap((f) => f.cuts.map((c) => c.arrived ?? "error"));
  for (const what of ["error", "zeros", "the first 1 component", "the first 16 components",
    "every factor block (any", "every factor block, and the residual blocks that arrived"]) {
    assert.ok(arrived.some((a) => a.startsWith(what)), what);
  }
  assert.ok(files.flatMap((f) => f.cuts).some((c) => c.components !== null && c.expected));
});

for (const f of files) {
  test(`cuts of ${f.name} decode as in Python`, () => {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}/${f.file}`));
    assert.equal(bytes.length, f.bytes);
    for (const cut of f.cuts) {
      const part = bytes.subarray(0, cut.at);
      const where = `cut at byte ${cut.at}${cut.components === null ? "" : `, components ${cut.components}`}`;
      assert.throws(() => svdi.decode(part, { components: cut.components }), svdi.SvdiError, `${where}: by default`);
      const options = { components: cut.components, truncated: "fill" };
      if (cut.error) {
        assert.throws(() => svdi.decode(part, options), (error) => {
          assert.ok(error instanceof svdi.SvdiError, `${where}: ${error}`);
          if (SAME_WORDS.test(cut.error)) assert.equal(error.message, cut.error, where);
          return true;
        });
        continue;
      }
      const decoded = svdi.decode(part, options);
      const expected = readNpy(readFileSync(`${FIXTURES}/${cut.expected}`));
      assert.deepEqual([decoded.height, decoded.width, ...(expected.shape.length === 3 ? [decoded.channels] : [])],
        expected.shape, where);
      assert.equal(decoded.dtype, svdi.readHeader(bytes).dtype);
      const differing = differingBits(decoded.data, expected.data);
      assert.equal(differing, 0, `${where} (${cut.arrived}): ${differing} of ${decoded.data.length} samples differ`);
    }
  });
}

test("a whole file decodes the same with truncated: \"fill\"", () => {
  for (const f of files) {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}/${f.file}`));
    assert.deepEqual(svdi.decode(bytes, { truncated: "fill" }).data, svdi.decode(bytes).data, f.name);
    assert.equal(svdi.open(bytes, { truncated: "fill" }).truncation, null);
  }
});

/** (type, first byte, byte after the CRC) of each chunk. */
function spans(bytes) {
  const out = [];
  for (let pos = svdi.SIGNATURE.length; pos < bytes.length;) {
    const length = new DataView(bytes.buffer, bytes.byteOffset).getUint32(pos);
    out.push([String.fromCharCode(...bytes.subarray(pos + 4, pos + 8)), pos, pos + 12 + length]);
    pos += 12 + length;
  }
  return out;
}

test("what no missing byte could make valid is refused with truncated: \"fill\" too", () => {
  const file = files.find((f) => f.name === "cut_rgb_residual_rows");
  const bytes = new Uint8Array(readFileSync(`${FIXTURES}/${file.file}`));
  const chunks = spans(bytes);
  const [, start, end] = chunks.find(([type]) => type === "UBLK");
  // a complete chunk with a bad CRC
  const damaged = bytes.slice(0, end + 5);
  damaged[end - 6] ^= 1;
  assert.throws(() => svdi.decode(damaged, { truncated: "fill" }), /CRC mismatch/);
  // a length over the chunk limit, a chunk type of other bytes than letters
  const huge = bytes.slice(0, start + 40);
  new DataView(huge.buffer).setUint32(start, 0xfffffff0);
  assert.throws(() => svdi.decode(huge, { truncated: "fill" }), /exceeds the chunk limit/);
  const badType = bytes.slice(0, start + 9);
  badType.set([0, 1, 2, 3], start + 4);
  assert.throws(() => svdi.decode(badType, { truncated: "fill" }), /invalid chunk type/);
  // a cut inside a chunk that cannot come there: an unknown critical one, a factor block after
  // a residual block
  const unknown = bytes.slice(0, start + 20);
  unknown.set([90, 90, 90, 90], start + 4);
  assert.throws(() => svdi.decode(unknown, { truncated: "fill" }), /ZZZZ chunk at byte \d+ out of place or unknown/);
  const rblk = chunks.find(([type]) => type === "RBLK");
  const late = new Uint8Array([...bytes.subarray(0, rblk[2]), ...bytes.subarray(start, start + 20)]);
  assert.throws(() => svdi.decode(late, { truncated: "fill" }), /UBLK chunk at byte \d+ out of place/);
  assert.throws(() => svdi.decode(bytes, { truncated: "ignore" }), /truncated must be one of 'raise', 'fill', got "ignore"/);
  // readFactors reads whole files only, as the reference's read_factors
  const cut = svdi.open(bytes.subarray(0, bytes.length - 3), { truncated: "fill" });
  assert.equal(cut.truncation.size, bytes.length - 3);
  assert.throws(() => cut.readFactors(), /readFactors reads whole files/);
});
