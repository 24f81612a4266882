// Decode timing of the JS decoder (Node, and headless Chromium's main thread) beside the Python
// decoder and Pillow, on the same files, in one run. Not a test.
//
//   node js/bench.mjs --corpus DIR [--repeat N] [--python PYTHON] [--chromium PATH] [--no-mosaic]
//
// Files: kodim23 (768 × 512) and the 4608 × 4096 (18.9 MP) Kodak mosaic of
// benchmarks/_common.py, each encoded by svdcodec at the default quality (format version 1,
// ratio to Pillow's JPEG decode of the same pixels at quality 75) and lossless (max_error=0:
// format version 2, ratio to Pillow's PNG decode of the same pixels). Each figure is the
// median of N decodes after one warm-up decode.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as svdi from "./svdi.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const { values: opt } = parseArgs({
  options: {
    corpus: { type: "string" },
    "no-mosaic": { type: "boolean", default: false },
    repeat: { type: "string", default: "5" },
    python: { type: "string", default: process.env.SVDI_PYTHON || "python3" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
if (!opt.corpus) throw new Error("--corpus DIR (a folder of the Kodak kodim*.png) is required");
const repeat = Number(opt.repeat);
const work = mkdtempSync(join(tmpdir(), "svdi-bench-"));

// Python: encode the files, then time svdcodec.decode and Pillow's JPEG decode.
const PY = String.raw`
import io, json, statistics, sys, time
from pathlib import Path
import numpy as np
from PIL import Image
import svdcodec
root, corpus, out, repeat = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, str(root / "benchmarks"))
import _common
images = {"kodim23": np.asarray(Image.open(corpus / "kodim23.png").convert("RGB"))}
if sys.argv[5] == "mosaic":
    images["mosaic"] = _common.build_mosaic(_common.kodak_paths(corpus))
def median_time(f):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return statistics.median(times)
def pillow_time(pixels, fmt, **options):
    buffer = io.BytesIO(); Image.fromarray(pixels).save(buffer, fmt, **options)
    encoded = buffer.getvalue()
    def load():
        with Image.open(io.BytesIO(encoded)) as im: im.load()
    return median_time(load), len(encoded)
result = {}
for name, pixels in images.items():
    jpeg = pillow_time(pixels, "JPEG", quality=75)
    png = pillow_time(pixels, "PNG")
    for suffix, options, against in (("", {}, jpeg), ("_lossless", {"max_error": 0}, png)):
        data = svdcodec.encode(pixels, **options)
        (out / f"{name}{suffix}.svdi").write_bytes(data)
        result[name + suffix] = {"width": pixels.shape[1], "height": pixels.shape[0], "bytes": len(data),
                                 "version": int.from_bytes(data[16:18], "big"),
                                 "python": median_time(lambda: svdcodec.decode(data, max_pixels=None)),
                                 "pillow": against[0], "pillow_bytes": against[1],
                                 "pillow_format": "PNG" if suffix else "JPEG q75"}
print(json.dumps(result))
`;

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function nodeTime(bytes) {
  svdi.decode(bytes, { maxPixels: null });
  const times = [];
  for (let i = 0; i < repeat; i++) {
    const t = performance.now();
    svdi.decode(bytes, { maxPixels: null });
    times.push((performance.now() - t) / 1000);
  }
  return median(times);
}

async function chromiumTimes(names) {
  const { default: puppeteer } = await import("puppeteer-core");
  const out = {};
  const browser = await puppeteer.launch({ executablePath: opt.chromium, headless: true, args: ["--no-sandbox"] });
  try {
    for (const name of names) {
      const server = spawn(opt.python, ["-m", "svdcodec", "view", join(work, `${name}.svdi`), "--no-browser"],
        { stdio: ["ignore", "pipe", "inherit"], cwd: ROOT });
      const base = await new Promise((resolve, reject) => {
        let text = "";
        server.stdout.on("data", (d) => { text += d; if (text.includes("\n")) resolve(text.split("\n")[0].trim()); });
        server.on("exit", (code) => reject(new Error(`viewer.py exited with ${code}`)));
      });
      try {
        const page = await browser.newPage();
        await page.goto(`${base}viewer/index.html`);
        out[name] = await page.evaluate(async (file, repeat) => {
          const svdi = await import("/svdi.js");
          const bytes = new Uint8Array(await (await fetch(file)).arrayBuffer());
          svdi.decode(bytes, { maxPixels: null });
          const times = [];
          for (let i = 0; i < repeat; i++) {
            const t = performance.now();
            svdi.decode(bytes, { maxPixels: null });
            times.push((performance.now() - t) / 1000);
          }
          times.sort((a, b) => a - b);
          return times[Math.floor(times.length / 2)];
        }, `/file/${name}.svdi`, repeat);
        await page.close();
      } finally {
        server.kill();
      }
    }
  } finally {
    await browser.close();
  }
  return out;
}

try {
  const python = JSON.parse(execFileSync(opt.python,
    ["-c", PY, ROOT, opt.corpus, work, String(repeat), opt["no-mosaic"] ? "" : "mosaic"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 }));
  const names = Object.keys(python);
  const chromium = await chromiumTimes(names);
  console.log(`median of ${repeat} decodes, seconds (ratio to Pillow's decode of the same pixels: ` +
    "JPEG q75 for the lossy files, PNG for the lossless ones)");
  console.log("file                             v  MP    bytes      Python          JS Node         JS Chromium     Pillow (format, bytes)");
  for (const name of names) {
    const p = python[name];
    const js = nodeTime(readFileSync(join(work, `${name}.svdi`)));
    const cell = (t) => `${t.toFixed(3)} (${(t / p.pillow).toFixed(1)}×)`.padEnd(16);
    console.log(`${`${name} ${p.width}×${p.height}`.padEnd(32)} ${p.version} ${(p.width * p.height / 1e6).toFixed(1).padStart(4)} ` +
      `${String(p.bytes).padEnd(10)} ${cell(p.python)}${cell(js)}${cell(chromium[name])}` +
      `${p.pillow.toFixed(3)} (${p.pillow_format}, ${p.pillow_bytes})`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
