// Decode timing of the JS decoder (Node, and headless Chromium's main thread) beside the Python
// decoder and Pillow's JPEG decoder, on the same files, in one run. Not a test.
//
//   node js/bench.mjs [--corpus DIR] [--repeat N] [--python PYTHON] [--chromium PATH]
//
// Files: kodim23 (768 × 512) and the 4608 × 4096 (18.9 MP) Kodak mosaic of tools/bench.py,
// each encoded by svdcodec at the default quality; the Python side also reports Pillow's JPEG
// (quality 75) decode of the same pixels. Each figure is the median of N decodes after one
// warm-up decode.
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
    corpus: { type: "string", default: join(ROOT, "..", "shared", "corpus", "kodak") },
    repeat: { type: "string", default: "5" },
    python: { type: "string", default: process.env.SVDI_PYTHON || "python3" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
const repeat = Number(opt.repeat);
const work = mkdtempSync(join(tmpdir(), "svdi-bench-"));

// Python: encode the files, then time svdcodec.decode and Pillow's JPEG decode.
const PY = String.raw`
import io, json, statistics, sys, time, importlib.util
from pathlib import Path
import numpy as np
from PIL import Image
import svdcodec
root, corpus, out, repeat = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
spec = importlib.util.spec_from_file_location("bench", root / "tools" / "bench.py")
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
images = {"kodim23": np.asarray(Image.open(corpus / "kodim23.png").convert("RGB")),
          "mosaic": bench.build_mosaic(corpus)}
def median_time(f):
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)
    return statistics.median(times)
result = {}
for name, pixels in images.items():
    data = svdcodec.encode(pixels)
    (out / f"{name}.svdi").write_bytes(data)
    jpeg = io.BytesIO(); Image.fromarray(pixels).save(jpeg, "JPEG", quality=75); jpeg = jpeg.getvalue()
    def pil_jpeg():
        with Image.open(io.BytesIO(jpeg)) as im: im.load()
    result[name] = {"width": pixels.shape[1], "height": pixels.shape[0], "bytes": len(data),
                    "python": median_time(lambda: svdcodec.decode(data, max_pixels=None)),
                    "pillow_jpeg": median_time(pil_jpeg)}
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
      const server = spawn(opt.python, [join(ROOT, "svdcodec", "viewer.py"), join(work, `${name}.svdi`), "--no-browser"],
        { stdio: ["ignore", "pipe", "inherit"] });
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
  const python = JSON.parse(execFileSync(opt.python, ["-c", PY, ROOT, opt.corpus, work, String(repeat)],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 20 }));
  const names = Object.keys(python);
  const chromium = await chromiumTimes(names);
  console.log(`median of ${repeat} decodes, seconds (ratio to Pillow's JPEG decode of the same pixels)`);
  console.log("file                     MP   bytes      Python          JS Node         JS Chromium     Pillow JPEG");
  for (const name of names) {
    const p = python[name];
    const js = nodeTime(readFileSync(join(work, `${name}.svdi`)));
    const cell = (t) => `${t.toFixed(3)} (${(t / p.pillow_jpeg).toFixed(1)}×)`.padEnd(16);
    console.log(`${`${name} ${p.width}×${p.height}`.padEnd(22)} ${(p.width * p.height / 1e6).toFixed(1).padStart(5)} ` +
      `${String(p.bytes).padEnd(10)} ${cell(p.python)}${cell(js)}${cell(chromium[name])}${p.pillow_jpeg.toFixed(3)}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
