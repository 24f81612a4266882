// The viewer in a real browser: headless Chromium (Debian's package, $CHROMIUM or
// /usr/bin/chromium) driven by puppeteer-core, the page served by `python -m svdcodec view` on
// loopback. Reads the canvas back and compares it with the Python decoder, moves the slider and
// checks the image follows decode(components=k), opens files through the file picker, and saves
// a screenshot to js/test-artifacts/viewer.png (ignored); to docs/img/viewer.png, the README's
// picture, only when SVDI_UPDATE_SCREENSHOT=1 asks (a run leaves the tracked files as they are).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import puppeteer from "puppeteer-core";
import * as svdi from "../svdi.js";
import { channelAsGrey, exifOrientation, orientRgba } from "../viewer/draw.js";
import { readNpy } from "../support/npy.js";
import { compareSamples, compareYCbCr } from "../support/compare.js";
import { FIXTURES, loadFixtures } from "../support/fixtures.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const VECTORS = `${ROOT}spec/vectors/`;
const ARTIFACTS = `${ROOT}js/test-artifacts/`;
// The README's screenshot is rewritten on request only: SVDI_UPDATE_SCREENSHOT=1
const UPDATE_SCREENSHOT = process.env.SVDI_UPDATE_SCREENSHOT === "1";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const PYTHON = process.env.SVDI_PYTHON || "python3";
const fixtures = loadFixtures();
const SHOWN = "rgb_q75_auto";

let server, browser, page, base;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  server = spawn(PYTHON, ["-m", "svdcodec", "view", `${FIXTURES}/${SHOWN}.svdi`, "--no-browser"],
    { stdio: ["ignore", "pipe", "inherit"], cwd: ROOT });
  base = await new Promise((resolve, reject) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const line = out.split("\n")[0];
      if (out.includes("\n")) resolve(line.trim());
    });
    server.on("exit", (code) => reject(new Error(`viewer.py exited with ${code}`)));
  });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.on("pageerror", (e) => console.error("page error:", e.message, e.stack));
  page.on("console", (m) => console.error("console:", m.text()));
});

after(async () => {
  await browser?.close();
  server?.kill();
});

/** Wait until the page shows `k` components (or the full image) of a newly opened file. */
async function waitShown(k) {
  await page.waitForFunction(
    (k) => document.body.dataset.state === "error" ||
      (document.body.dataset.state === "ready" && (k === null || document.body.dataset.shown === String(k))),
    { timeout: 30000 }, k);
  const state = await page.evaluate(() => [document.body.dataset.state, document.getElementById("status").textContent]);
  assert.equal(state[0], "ready", state[1]);
}

/** The canvas as RGBA bytes. */
async function canvasPixels() {
  const { width, height, data } = await page.evaluate(() => {
    const c = document.getElementById("image");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    return { width: c.width, height: c.height, data: Array.from(d) };
  });
  return { width, height, rgba: Uint8Array.from(data) };
}

function rgbaOf(rgb) {
  const out = new Uint8ClampedArray((rgb.length / 3) * 4);
  for (let i = 0, o = 0; i < rgb.length; i += 3, o += 4) out.set([rgb[i], rgb[i + 1], rgb[i + 2], 255], o);
  return out;
}

function rgbOf(rgba) {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) out.set(rgba.subarray(i, i + 3), o);
  return out;
}

/** Canvas RGB against the Python decode (.npy of an RGB image) with the conformance rule. */
function checkAgainstPython(rgb, image, k, expectedFile) {
  const expected = readNpy(readFileSync(expectedFile)).data;
  const rounded = svdi.roundedYCbCr(image.header, image.planeValues(k));
  const { unexplained } = compareYCbCr(rounded, rgb, expected, 3, svdi.ycbcrToRgb);
  assert.equal(unexplained, 0, `${unexplained} pixels differ from the Python decoder beyond the rule`);
  const { max } = compareSamples(rgb, expected, 1);
  assert.ok(max <= 3, `largest difference ${max}`);
  // The page shows exactly what the module decodes in Node.
  assert.deepEqual(rgb, image.reconstruct(k).data);
}

test("the page opens ?url= from svdi-view and shows the Python decoder's image", async () => {
  await page.goto(base, { waitUntil: "load" }); // redirects to viewer/index.html?url=/file/…
  await waitShown(null);
  const fixture = fixtures.find((f) => f.name === SHOWN);
  const { width, height, rgba } = await canvasPixels();
  assert.deepEqual([height, width, 3], fixture.shape);
  const image = svdi.open(readFileSync(`${FIXTURES}/${SHOWN}.svdi`));
  checkAgainstPython(rgbOf(rgba), image, null, `${FIXTURES}/${fixture.expected}`);
  // The panels: one spectrum per plane, storage table, basis tiles of the patch layout.
  const panels = await page.evaluate(() => ({
    charts: document.querySelectorAll("#charts canvas").length,
    rows: document.querySelectorAll("#storage tr").length,
    basis: !document.getElementById("basispanel").hidden,
    file: document.getElementById("filesize").textContent,
  }));
  assert.equal(panels.charts, 3);
  assert.equal(panels.rows, 4);
  assert.ok(panels.basis);
  assert.match(panels.file, new RegExp(fixture.bytes.toLocaleString("en-US")));
});

test("the slider reconstructs with the first k components, as decode(components=k)", async () => {
  const fixture = fixtures.find((f) => f.name === SHOWN);
  const image = svdi.open(readFileSync(`${FIXTURES}/${SHOWN}.svdi`));
  let previous = null;
  for (const k of fixture.components) {
    await page.evaluate((k) => window.svdiViewer.setComponents(k), k);
    await waitShown(k);
    const rgb = rgbOf((await canvasPixels()).rgba);
    checkAgainstPython(rgb, image, k, `${FIXTURES}/${SHOWN}.k${k}.npy`);
    if (previous) assert.notDeepEqual(rgb, previous, `k = ${k} shows the same image as the previous k`);
    previous = rgb;
  }
  // Drag the range input with the mouse: the shown count follows the slider.
  const box = await (await page.$("#slider")).boundingBox();
  await page.mouse.click(box.x + 2, box.y + box.height / 2);
  const k = Number(await page.$eval("#slider", (s) => s.value));
  await waitShown(k);
  assert.ok(k <= 1, `slider at ${k} after a click at its left end`);
  await page.evaluate(() => window.svdiViewer.setComponents(6));
  await waitShown(6);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}viewer.png`, fullPage: true });
  if (UPDATE_SCREENSHOT) await page.screenshot({ path: `${ROOT}docs/img/viewer.png`, fullPage: true });
});

test("spec vectors opened with the file picker: valid ones shown, invalid ones reported", async () => {
  const manifest = JSON.parse(readFileSync(`${VECTORS}manifest.json`, "utf8"));
  const input = await page.$("#file");
  for (const v of manifest.vectors) {
    const header = v.valid ? svdi.readHeader(readFileSync(VECTORS + v.file)) : null;
    const array = header && (!["uint8", "uint16", "float32"].includes(v.dtype) || header.channels > 4);
    if (v.valid && v.dtype !== "uint8" && !array) continue; // the canvas shows 8-bit samples exactly
    await page.evaluate(() => { delete document.body.dataset.state; });
    await input.uploadFile(`${VECTORS}${v.file}`);
    await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.state), { timeout: 30000 });
    const [state, message] = await page.evaluate(() => [document.body.dataset.state, document.getElementById("status").textContent]);
    if (!v.valid) {
      assert.equal(state, "error", `${v.file} was accepted`);
      assert.ok(message.includes(v.error), `${v.file}: "${message}" does not name "${v.error}"`);
      continue;
    }
    assert.equal(state, "ready", `${v.file}: ${message}`);
    const { width, height, rgba } = await canvasPixels();
    const expected = readNpy(readFileSync(VECTORS + v.expected)).data;
    const channels = v.shape.length === 2 ? 1 : v.shape[2];
    // A picture with an EXIF orientation is shown upright (rgb_16x16_metadata.svdi: 6).
    const orientation = array ? 1 : exifOrientation(svdi.open(readFileSync(VECTORS + v.file)).container.metadata.exif);
    assert.deepEqual([width, height], orientation >= 5 ? [v.shape[0], v.shape[1]] : [v.shape[1], v.shape[0]]);
    if (array) {
      // Version 2's arrays: channel 0 as grey, from the reference's samples (exact).
      const want = channelAsGrey({ width, height, channels, data: expected }, 0);
      assert.deepEqual(rgba, Uint8Array.from(want.rgba), v.file);
      assert.match(message, new RegExp(`channel 0 of ${channels} shown as grey`), v.file);
      continue;
    }
    if (channels === 2 || channels === 4) continue; // alpha < 255 is premultiplied in a canvas
    const rgb = rgbOf(rgba);
    const stored = channels === 1 ? Uint8Array.from(expected.flatMap?.((x) => [x, x, x]) ?? Array.from(expected).flatMap((x) => [x, x, x])) : expected;
    const want = rgbOf(orientRgba(rgbaOf(stored), v.shape[1], v.shape[0], orientation).rgba);
    if (orientation !== 1) assert.match(message, new RegExp(`EXIF orientation ${orientation}`), v.file);
    const { max } = compareSamples(rgb, want, 1);
    // Version 2 is exact (spec §5.3): the canvas shows the reference's samples.
    const allowed = svdi.readHeader(readFileSync(VECTORS + v.file)).version === 2 ? 0 : 1;
    assert.ok(max <= allowed, `${v.file}: largest difference ${max}`);
  }
});

test("a lossless file (version 2 features): the reference's samples exactly, the residual panel, previews without it", async () => {
  const fixture = fixtures.find((f) => f.name === "v2_rgb_lossless");
  const file = `${FIXTURES}/${fixture.file}`;
  await page.evaluate(() => { delete document.body.dataset.state; });
  await (await page.$("#file")).uploadFile(file);
  await waitShown(null);
  const expected = readNpy(readFileSync(`${FIXTURES}/${fixture.expected}`)).data;
  assert.deepEqual(rgbOf((await canvasPixels()).rgba), expected);
  const panel = await page.evaluate(() => ({
    hidden: document.getElementById("residualpanel").hidden,
    rows: Array.from(document.querySelectorAll("#residuals tr")).map((r) => r.textContent),
    status: document.getElementById("status").textContent,
  }));
  assert.equal(panel.hidden, false);
  assert.equal(panel.rows.length, 4, panel.rows.join(" | ")); // header + R, G, B
  assert.ok(panel.rows.slice(1).every((r) => r.includes("0 (exact)")), panel.rows.join(" | "));
  assert.match(panel.rows[1], /^R.*G/); // R adds G's q (subtract green)
  assert.match(panel.status, /format version 5: lossless/);
  const k = fixture.components[0];
  await page.evaluate((k) => window.svdiViewer.setComponents(k), k);
  await waitShown(k);
  assert.deepEqual(rgbOf((await canvasPixels()).rgba), readNpy(readFileSync(`${FIXTURES}/${fixture.name}.k${k}.npy`)).data);
  assert.match(await page.$eval("#status", (s) => s.textContent), /low-rank layer only/);
});

test("an array (int16, 5 channels): a chosen channel as grey from the reference's samples, at every k", async () => {
  const fixture = fixtures.find((f) => f.name === "v2_i16x5_e2");
  const [height, width, channels] = fixture.shape;
  await page.evaluate(() => { delete document.body.dataset.state; });
  await (await page.$("#file")).uploadFile(`${FIXTURES}/${fixture.file}`);
  await waitShown(null);
  const expected = readNpy(readFileSync(`${FIXTURES}/${fixture.expected}`)).data;
  const grey = (data, channel) => Uint8Array.from(channelAsGrey({ width, height, channels, data }, channel).rgba);
  assert.deepEqual((await canvasPixels()).rgba, grey(expected, 0));
  const shown = await page.evaluate(() => ({
    panel: !document.getElementById("channelpanel").hidden,
    options: document.querySelectorAll("#channel option").length,
    charts: document.querySelectorAll("#charts canvas").length,
    status: document.getElementById("status").textContent,
  }));
  assert.ok(shown.panel);
  assert.equal(shown.options, 5);
  assert.equal(shown.charts, 5);
  assert.match(shown.status, /5 channel\(s\) int16.*channel 0 of 5 shown as grey/);
  // Another channel: shown without decoding again, then a preview of it.
  await page.select("#channel", "3");
  await page.waitForFunction(() => document.body.dataset.channel === "3", { timeout: 30000 });
  assert.deepEqual((await canvasPixels()).rgba, grey(expected, 3));
  const k = fixture.components[0];
  await page.evaluate((k) => window.svdiViewer.setComponents(k), k);
  await waitShown(k);
  assert.equal(await page.evaluate(() => document.body.dataset.channel), "3");
  assert.deepEqual((await canvasPixels()).rgba, grey(readNpy(readFileSync(`${FIXTURES}/${fixture.name}.k${k}.npy`)).data, 3));
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: `${ARTIFACTS}viewer-array.png`, fullPage: true });
});

test("an array of 8 centred float32 channels: the shown channel's spectrum, the status names the means", async () => {
  const fixture = fixtures.find((f) => f.name === "v2_f32x8_centred");
  await page.evaluate(() => { delete document.body.dataset.state; });
  await (await page.$("#file")).uploadFile(`${FIXTURES}/${fixture.file}`);
  await waitShown(null);
  const [height, width, channels] = fixture.shape;
  const expected = readNpy(readFileSync(`${FIXTURES}/${fixture.expected}`)).data;
  assert.deepEqual((await canvasPixels()).rgba, Uint8Array.from(channelAsGrey({ width, height, channels, data: expected }, 0).rgba));
  const status = await page.$eval("#status", (s) => s.textContent);
  assert.match(status, /centred columns \(MEAN\) in every plane/);
  assert.equal(await page.evaluate(() => document.querySelectorAll("#charts canvas").length), 8);
});

test("svdi-view serves only the page's files and the named file", async () => {
  const { request } = await import("node:http");
  const status = (path) => new Promise((resolve, reject) => {
    // node:http sends the path as given (fetch would normalize "..").
    const req = request(`${base}`, { path, method: "GET" }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on("error", reject);
    req.end();
  });
  assert.equal(await status("/svdi.js"), 200);
  assert.equal(await status("/viewer/draw.js"), 200);
  assert.equal(await status(`/file/${SHOWN}.svdi`), 200);
  for (const path of ["/viewer/../../README.md", "/../README.md", "/%2e%2e/README.md", "/viewer/",
    "/package.json", "/node_modules/puppeteer-core/package.json", "/file/other.svdi",
    "/test/browser.test.js", "//etc/passwd"]) {
    assert.equal(await status(path), 404, path);
  }
});

test("a file dropped on the image opens", async () => {
  const name = "l_20x18_escapes.svdi";
  const bytes = Array.from(readFileSync(VECTORS + name));
  await page.evaluate(() => { delete document.body.dataset.state; });
  await page.evaluate((bytes, name) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name));
    const drop = document.getElementById("drop");
    drop.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    drop.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  }, bytes, name);
  await waitShown(18);
  const { width, height, rgba } = await canvasPixels();
  assert.deepEqual([width, height], [20, 18]);
  const expected = readNpy(readFileSync(VECTORS + "l_20x18_escapes.npy")).data;
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(rgba[4 * i] - expected[i]) <= 1, `pixel ${i}`);
  assert.match(await page.$eval("#status", (s) => s.textContent), new RegExp(name));
});
