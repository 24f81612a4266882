// zstd for svdi.js: libzstd compiled to WebAssembly, from the npm package @bokuweb/zstd-wasm
// (declared in package.json; why this one and not the pure-JS fzstd: README.md, "zstd").
//
// The package's own wrappers import their siblings without file extensions, which only a
// bundler resolves; its Emscripten glue `dist/web/zstd.js` is a self-contained ES module, so
// this file loads that glue and the .wasm beside it and calls libzstd's exported functions.
// Browsers find the package relative to this file (js/node_modules/…, as a clone after
// `npm ci --prefix js` has it and as svdi-view serves it); Node resolves it like any
// package. The module loads with top-level await; if loading fails, `zstdReady()` says why
// and the decoder raises that message instead of decoding.

const PACKAGE = "@bokuweb/zstd-wasm";
let libzstd = null;
let failure = "zstd has not been loaded";

async function nodeLocation() {
  const { createRequire } = await import("node:module");
  const { pathToFileURL } = await import("node:url");
  const { readFile } = await import("node:fs/promises");
  const path = await import("node:path");
  // The package's "exports" name only its entry points: dist/common/index.node.js, two below
  // the package folder.
  const entry = createRequire(import.meta.url).resolve(PACKAGE);
  const dir = path.resolve(path.dirname(entry), "..", "..");
  const glue = pathToFileURL(path.join(dir, "dist", "web", "zstd.js")).href;
  const wasm = await readFile(path.join(dir, "dist", "web", "zstd.wasm"));
  return { glue, wasm };
}

async function browserLocation() {
  const base = new URL(`./node_modules/${PACKAGE}/dist/web/`, import.meta.url);
  const response = await fetch(new URL("zstd.wasm", base));
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${response.url}`);
  return { glue: new URL("zstd.js", base).href, wasm: await response.arrayBuffer() };
}

async function load() {
  try {
    const isNode = typeof process !== "undefined" && !!process.versions?.node;
    const { glue, wasm } = isNode ? await nodeLocation() : await browserLocation();
    const { Module } = await import(glue);
    await new Promise((resolve, reject) => {
      Module.onRuntimeInitialized = resolve;
      Module.onAbort = (what) => reject(new Error(String(what)));
      Module.init(wasm);
    });
    libzstd = Module;
    failure = null;
  } catch (error) {
    failure = `zstd (npm package ${PACKAGE}) could not be loaded (${error.message}); ` +
      'in a clone, run "npm ci --prefix js" first';
  }
}

await load();

/** null when zstd is ready, else the reason it is not. */
export function zstdReady() {
  return failure;
}

/** Decompress one zstd frame that must give exactly `nbytes` bytes: a Uint8Array, or a string
 * saying what went wrong. libzstd writes into a buffer of exactly `nbytes` (its one-shot
 * decoder uses that buffer as its window, so a frame's window descriptor allocates nothing) and
 * fails on a frame that decompresses to more or fewer bytes than its declared content size. */
export function zstdDecompress(frame, nbytes) {
  const M = libzstd;
  if (M === null) return failure;
  // The WebAssembly heap is at most 2 GiB and libzstd's sizes are 32-bit there: a larger size
  // would be truncated by the call, so it is refused here (a descriptor may declare up to 2^34).
  if (!(nbytes < 2 ** 31)) return `cannot allocate ${nbytes} bytes for the decompressed data`;
  const src = M._malloc(Math.max(frame.length, 1));
  const dst = src ? M._malloc(Math.max(nbytes, 1)) : 0;
  try {
    if (!src || !dst) return `cannot allocate ${nbytes} bytes for the decompressed data`;
    M.HEAPU8.set(frame, src); // HEAPU8 is replaced when the heap grows: read it after malloc
    const result = M._ZSTD_decompress(dst, nbytes, src, frame.length);
    if (M._ZSTD_isError(result)) return `libzstd error ${-(result | 0)}`;
    if (result >>> 0 !== nbytes) return `frame decompresses to ${result >>> 0} bytes, not ${nbytes}`;
    return M.HEAPU8.slice(dst, dst + nbytes);
  } finally {
    if (dst) M._free(dst);
    if (src) M._free(src);
  }
}
