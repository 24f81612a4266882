// Cross-decoder fuzzing: mutate payload bytes of valid files (the chunk CRC recomputed, so the
// damage reaches the parsers), decode every mutant with the JS and the Python decoder, and
// report where they disagree. Not a test (it needs the fixtures and Python, and what it finds
// is for people to read); js/README.md "Conformance" quotes a run.
//
//   node js/cross_fuzz.mjs [--count N] [--seed S] [--python PYTHON] [--keep DIR] [--version 1|2]
//
// Sources: the spec's valid vectors and fifteen fixtures of js/test/make_fixtures.py
// ($SVDI_FIXTURES or js/test-artifacts/fixtures), six of format version 1 and nine of version 2
// (four of them arrays: int8, uint32, float64, centred float32);
// --version keeps the sources of one version. Each mutant changes 1–3 bytes of one chunk's
// payload. Where both accept, version 1 images are compared with the version 1 rule, versions 2-5
// images bit for bit (spec §5.3).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as svdi from "./svdi.js";
import { readNpy } from "./support/npy.js";
import { compareSamples, compareYCbCr, differingBits, specTolerance } from "./support/compare.js";
import { mutateChunk, seededRandom } from "./support/mutate.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values: opt } = parseArgs({
  options: {
    count: { type: "string", default: "2000" },
    seed: { type: "string", default: "99" },
    python: { type: "string", default: process.env.SVDI_PYTHON || "python3" },
    keep: { type: "string" },
    version: { type: "string" },
  },
});
const fixtures = process.env.SVDI_FIXTURES || join(ROOT, "js", "test-artifacts", "fixtures");
const vectors = join(ROOT, "spec", "vectors");
const sources = JSON.parse(readFileSync(join(vectors, "manifest.json"), "utf8")).vectors
  .filter((v) => v.valid).map((v) => join(vectors, v.file))
  .concat(["l_q30_auto", "rgb_q20_auto", "u16_q75_auto", "f32_q75_auto", "odd_q60_auto", "rgb_rank12_plain"]
    .map((name) => join(fixtures, `${name}.svdi`)))
  .concat(["v2_l_lossless", "v2_rgb_e2_plain", "v2_rgba_cutout_lossless", "v2_u16_e2", "v2_f32_e001",
    "v2_i8_q60", "v2_u32_q75", "v2_f64_q85", "v2_f32_centred"]
    .map((name) => join(fixtures, `${name}.svdi`)))
  .filter((file) => !opt.version || String(svdi.readHeader(readFileSync(file)).version) === opt.version);

const random = seededRandom(Number(opt.seed));
const work = opt.keep || mkdtempSync(join(tmpdir(), "svdi-fuzz-"));

const PY = String.raw`
import json, sys
import numpy as np
import svdcodec
out = []
for name in json.load(sys.stdin):
    try:
        image = svdcodec.decode(open(name, "rb").read())
        np.save(name + ".npy", image)
        out.append({"ok": True})
    except svdcodec.SvdiError as e:
        out.append({"ok": False, "error": str(e)})
    except Exception as e:
        out.append({"crash": f"{type(e).__name__}: {e}"})
print(json.dumps(out))
`;

try {
  const mutants = [];
  for (let n = 0; n < Number(opt.count); n++) {
    const source = sources[Math.floor(random() * sources.length)];
    const bytes = new Uint8Array(readFileSync(source));
    mutateChunk(bytes, random);
    const file = join(work, `m${n}.svdi`);
    writeFileSync(file, bytes);
    const started = performance.now();
    let js;
    try {
      js = { ok: true, image: svdi.open(bytes) };
      js.decoded = js.image.reconstruct();
    } catch (e) {
      js = e instanceof svdi.SvdiError ? { ok: false, error: e.message } : { crash: `${e.name}: ${e.message}` };
    }
    mutants.push({ file, source: source.split("/").pop(), js, ms: performance.now() - started });
  }
  const python = JSON.parse(execFileSync(opt.python, ["-c", PY], {
    input: JSON.stringify(mutants.map((m) => m.file)), encoding: "utf8", maxBuffer: 1 << 28,
  }));
  const tally = { bothAccept: 0, bothReject: 0, onlyPython: 0, onlyJs: 0, jsCrash: 0, pyCrash: 0, pixels: 0 };
  const notes = [];
  mutants.forEach((m, i) => {
    const py = python[i];
    if (m.js.crash) { tally.jsCrash++; notes.push(`${m.file} (${m.source}): JS ${m.js.crash}`); return; }
    if (py.crash) { tally.pyCrash++; notes.push(`${m.file} (${m.source}): Python ${py.crash}`); return; }
    if (m.js.ok && py.ok) {
      tally.bothAccept++;
      const { image, decoded } = m.js;
      const expected = readNpy(readFileSync(`${m.file}.npy`)).data;
      let bad;
      if (image.header.version >= 2) { // versions 2-5: exact (spec §5.1)
        bad = differingBits(decoded.data, expected);
      } else if (image.header.colour === 1) {
        bad = compareYCbCr(svdi.roundedYCbCr(image.header, image.planeValues()), decoded.data, expected,
          image.header.channels, svdi.ycbcrToRgb).unexplained;
      } else {
        bad = compareSamples(decoded.data, expected, specTolerance(image.header.dtype, image.header.scale)).over;
      }
      if (bad) {
        tally.pixels++;
        notes.push(`${m.file} (${m.source}): both accept, ${bad} samples beyond the tolerance ` +
          `(largest difference ${compareSamples(decoded.data, expected, 0).max})`);
      }
    } else if (!m.js.ok && !py.ok) {
      tally.bothReject++;
    } else if (py.ok) {
      tally.onlyPython++;
      notes.push(`${m.file} (${m.source}): Python accepts, JS: ${m.js.error}`);
    } else {
      tally.onlyJs++;
      notes.push(`${m.file} (${m.source}): JS accepts, Python: ${py.error}`);
    }
  });
  console.log(`${mutants.length} mutants, seed ${opt.seed}; slowest JS decode ${Math.max(...mutants.map((m) => m.ms)).toFixed(0)} ms`);
  console.log(JSON.stringify(tally));
  for (const note of notes) console.log(note);
} finally {
  if (!opt.keep) rmSync(work, { recursive: true, force: true });
}
