// The viewer page: file picker, drag-and-drop or ?url=; decoding happens in worker.js.
// State for scripts and tests: document.body.dataset.state ("idle", "opening", "ready",
// "error") and dataset.shown (the component count of the image on the canvas).

import { drawsAsPicture } from "./draw.js";

const $ = (id) => document.getElementById(id);
const canvas = $("image"), slider = $("slider"), status = $("status"), drop = $("drop");
const channelChoice = $("channel");
/** Bytes of one sample of each type (the raw size in the storage panel). */
const SAMPLE_BYTES = { uint8: 1, uint16: 2, float32: 4, int8: 1, int16: 2, int32: 4, uint32: 4, float64: 8 };
/** Above this many planes the spectra panel shows the shown channel's plane only. */
const MOST_CHARTS = 8;
const PLANE_NAMES = { 0: ["grey"], 1: ["grey", "alpha"] };
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });

// A module worker may start receiving messages before its imports (zstd's WebAssembly, loaded
// with top-level await) are done and its onmessage is set: such messages would be lost, so the
// page posts nothing before the worker's "ready".
let workerReady;
const whenReady = new Promise((resolve) => { workerReady = resolve; });

let file = null; // {header, planes, fileBytes, name}
let busy = false, pending = null;

function setState(state, text, isError = false) {
  document.body.dataset.state = state;
  if (text !== undefined) status.textContent = text;
  status.className = isError ? "error" : "";
}

function planeNames(header) {
  if (!drawsAsPicture(header)) return Array.from({ length: header.channels }, (_, i) => `channel ${i}`);
  if (header.colour === 1) return ["Y′", "Cb", "Cr", "alpha"].slice(0, header.channels);
  if (header.channels <= 2) return PLANE_NAMES[header.channels - 1];
  return ["R", "G", "B", "alpha"].slice(0, header.channels);
}

function maxRank() {
  return Math.max(0, ...file.planes.map((p) => p.rank));
}

function requestRender(k) {
  if (busy) {
    pending = k;
    return;
  }
  busy = true;
  worker.postMessage({ type: "render", k, channel: shownChannel() });
}

/** The channel an array file shows as grey (0 for pictures, which show every channel). */
function shownChannel() {
  return file && !drawsAsPicture(file.header) ? Number(channelChoice.value) : 0;
}

worker.onmessage = (event) => {
  const m = event.data;
  if (m.type === "ready") {
    workerReady();
    if (document.body.dataset.state === undefined) setState("idle");
  } else if (m.type === "opened") {
    file = m;
    const top = maxRank();
    slider.max = String(top);
    slider.value = String(top);
    slider.disabled = false;
    $("k").textContent = String(top);
    const ranks = m.planes.map((p) => p.rank);
    $("rankinfo").textContent = `of ${top} (ranks ${ranks.length > MOST_CHARTS ? `${Math.min(...ranks)} … ${top}` : ranks.join(", ")})`;
    // Arrays: a choice of the channel shown as grey.
    const arrays = !drawsAsPicture(m.header);
    $("channelpanel").hidden = !arrays;
    channelChoice.innerHTML = arrays ? m.planes.map((p, i) => `<option value="${i}">${i}</option>`).join("") : "";
    channelChoice.value = "0";
    busy = true; // the worker renders the full image right after opening
    drawStorage();
    drawResiduals();
    drawCharts();
    drawBasis();
  } else if (m.type === "image") {
    busy = false;
    if (canvas.width !== m.width || canvas.height !== m.height) {
      canvas.width = m.width;
      canvas.height = m.height;
    }
    canvas.getContext("2d").putImageData(new ImageData(m.rgba, m.width, m.height), 0, 0);
    // Small images are enlarged (up to 3×, pixels kept sharp) to fill the panel.
    canvas.style.width = `${Math.min(drop.clientWidth - 20, m.width * 3)}px`;
    const shown = m.k === null ? maxRank() : m.k;
    document.body.dataset.shown = String(shown);
    document.body.dataset.channel = m.channel === null ? "" : String(m.channel);
    const h = file.header;
    const channelNote = m.channel === null ? "" : `; channel ${m.channel} of ${h.channels} shown as grey ` +
      `(${m.lo} … ${m.hi} → black … white; an array has no colours)`;
    setState("ready", `${file.name}: ${h.width}×${h.height}, ${h.channels} channel(s) ${h.dtype}` +
      `${h.colour === 1 ? `, Y′CbCr${h.subsampling ? " 4:2:0" : " 4:4:4"}` : ""}` +
      `${centredNote()}${residualNote(shown)}${channelNote}` +
      `${m.orientation > 1 ? `; turned upright as its EXIF orientation ${m.orientation} asks` : ""}; ` +
      `opened in ${file.openMs.toFixed(0)} ms, ${shown} components rendered in ${m.ms.toFixed(0)} ms`);
    if (pending !== null) {
      const k = pending;
      pending = null;
      if (k !== shown || m.channel !== shownChannel()) requestRender(k);
    }
  } else if (m.type === "error") {
    busy = false;
    pending = null;
    setState("error", `${m.name}: ${m.message}`, true);
  }
};

worker.onerror = (event) => setState("error", `worker failed: ${event.message}`, true);

async function openBytes(buffer, name) {
  setState("opening", `Decoding ${name} (${buffer.byteLength.toLocaleString()} bytes)…`);
  file = null;
  slider.disabled = true;
  busy = true;
  pending = null;
  await whenReady;
  worker.postMessage({ type: "open", bytes: buffer, name }, [buffer]);
}

channelChoice.addEventListener("change", () => {
  if (!file) return;
  drawCharts();
  requestRender(Number(slider.value) >= maxRank() ? null : Number(slider.value));
});

slider.addEventListener("input", () => {
  const k = Number(slider.value);
  $("k").textContent = String(k);
  drawCharts();
  requestRender(k);
});

$("file").addEventListener("change", async (event) => {
  const f = event.target.files[0];
  if (f) openBytes(await f.arrayBuffer(), f.name);
});

drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const f = e.dataTransfer.files[0];
  if (f) openBytes(await f.arrayBuffer(), f.name);
});

// ----------------------------------------------------------------------------- panels

function drawStorage() {
  const names = planeNames(file.header);
  const rows = file.planes.map((p, i) => {
    const stored = p.rank * (p.m + p.n + 1), full = p.m * p.n;
    const b = p.blockBytes;
    return `<tr><td>${names[i]} ${p.layout}</td><td>${p.m}×${p.n}</td><td>${p.rank}</td>` +
      `<td>${stored.toLocaleString()}</td><td>${full.toLocaleString()}</td>` +
      `<td>${(100 * stored / full).toFixed(1)} %</td><td>${(b.U + b.S + b.V).toLocaleString()}</td></tr>`;
  });
  $("storage").innerHTML = "<tr><th>plane</th><th>m×n</th><th>r</th><th>r(m+n+1)</th><th>m·n</th>" +
    "<th>ratio</th><th>bytes</th></tr>" + rows.join("");
  const h = file.header;
  const raw = h.width * h.height * h.channels * SAMPLE_BYTES[h.dtype];
  $("filesize").textContent = `File: ${file.fileBytes.toLocaleString()} bytes; raw samples ` +
    `${raw.toLocaleString()} bytes (${(raw / file.fileBytes).toFixed(1)}:1, ` +
    `${(8 * file.fileBytes / (h.width * h.height)).toFixed(3)} bits per pixel).`;
}

/** Output channel names of the residual blocks (§4.1: R, G, B, A for Y′CbCr files). */
function channelNames(header) {
  if (header.colour === 1) return ["R", "G", "B", "alpha"];
  return planeNames(header);
}

/** Each channel's residual blocks: their largest bound, steps, reference and bytes. */
function residualChannels() {
  const out = new Map();
  for (const b of file.residuals) {
    const c = out.get(b.channel) ?? { channel: b.channel, blocks: 0, bound: 0, steps: new Set(), reference: b.reference, bytes: 0 };
    c.blocks++;
    c.bound = Math.max(c.bound, b.bound);
    c.steps.add(b.step);
    c.bytes += b.stored;
    out.set(b.channel, c);
  }
  return [...out.values()].sort((a, b) => a.channel - b.channel);
}

/** ", centred columns in N planes" for files with MEAN chunks (version 2, spec §3.1). */
function centredNote() {
  const centred = file.planes.filter((p) => p.centred).length;
  return centred ? `, centred columns (MEAN) in ${centred === file.planes.length ? "every plane" : `${centred} planes`}` : "";
}

/** ", format version 2, lossless" or ", within ±E" for the shown image; a preview of fewer
 * components is the low-rank layer without the residual (spec §5.3). */
function residualNote(shown) {
  if (!file.residuals.length) return file.header.version >= 2 ? `, format version ${file.header.version} (exact planes)` : "";
  const channels = residualChannels();
  const bound = Math.max(...channels.map((c) => c.bound));
  const all = channels.length === file.header.channels;
  const promise = bound === 0 ? (all ? "lossless" : "exact in some channels") : `within ±${bound}${all ? "" : " in some channels"}`;
  const v = `format version ${file.header.version}`;
  if (shown >= maxRank()) return `, ${v}: ${promise}`;
  const exact = file.noLayer.length ? `; channel${file.noLayer.length > 1 ? "s" : ""} ${file.noLayer.join(", ")} exact (no layer)` : "";
  return `, ${v}: low-rank layer only (the residual applies at every component)${exact}`;
}

function drawResiduals() {
  const channels = residualChannels();
  $("residualpanel").hidden = channels.length === 0;
  if (!channels.length) return;
  const names = channelNames(file.header);
  const rows = channels.map((c) =>
    `<tr><td>${names[c.channel] ?? c.channel}</td><td>${c.blocks}</td>` +
    `<td>${c.bound === 0 ? "0 (exact)" : `±${c.bound}`}</td><td>${[...c.steps].join(", ")}</td>` +
    `<td>${c.reference === null ? "–" : names[c.reference]}</td><td>${c.bytes.toLocaleString()}</td></tr>`);
  $("residuals").innerHTML = "<tr><th>channel</th><th>blocks</th><th>bound</th><th>step</th>" +
    "<th>q + q of</th><th>bytes</th></tr>" + rows.join("");
}

/** The planes whose spectra are drawn: all of them, or for files of more than MOST_CHARTS
 * planes the shown channel's alone (an array may have 255). */
function chartedPlanes() {
  return file.planes.length <= MOST_CHARTS ? file.planes : [file.planes[shownChannel()]];
}

function drawCharts() {
  const holder = $("charts");
  const names = planeNames(file.header);
  const planes = chartedPlanes();
  if (holder.childElementCount !== planes.length) {
    holder.innerHTML = "";
    for (let i = 0; i < planes.length; i++) {
      const c = document.createElement("canvas");
      c.className = "chart";
      holder.appendChild(c);
    }
  }
  $("chartnote").textContent = planes.length < file.planes.length
    ? `The shown channel's plane (of ${file.planes.length}); choose another channel above.` : "";
  const k = Number(slider.value);
  planes.forEach((p, i) => drawSpectrum(holder.children[i], p, names[p.index], k));
}

function drawSpectrum(c, plane, name, k) {
  const ratio = window.devicePixelRatio || 1;
  const W = c.clientWidth || 400, H = 150;
  c.width = W * ratio;
  c.height = H * ratio;
  const g = c.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, W, H);
  const left = 46, right = 34, top = 16, bottom = 18;
  const w = W - left - right, h = H - top - bottom;
  const s = plane.sigma, r = s.length;
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#333";
  g.fillText(`${name} (${plane.layout}, r = ${r}${plane.centred ? ", centred" : ""})`, left, 11);
  g.strokeStyle = "#bbb";
  g.strokeRect(left, top, w, h);
  if (r === 0) {
    g.fillText(plane.centred ? "rank 0: every row is the column means" : "rank 0: the plane is zero", left + 8, top + h / 2);
    return;
  }
  const hi = Math.log10(s[0]), lo = Math.min(hi - 1, Math.log10(s[r - 1]));
  const y = (v) => top + h * (1 - (Math.log10(v) - lo) / (hi - lo));
  const bar = w / r;
  for (let i = 0; i < r; i++) {
    g.fillStyle = i < k ? "#1e88e5" : "#b0bec5";
    const top_ = y(s[i]);
    g.fillRect(left + i * bar, top_, Math.max(bar - (bar > 3 ? 1 : 0), 0.5), top + h - top_);
  }
  // Cumulative energy, right axis 0 … 1.
  let total = 0;
  for (let i = 0; i < r; i++) total += s[i] * s[i];
  g.strokeStyle = "#43a047";
  g.lineWidth = 1.5;
  g.beginPath();
  let acc = 0, atK = 0;
  for (let i = 0; i < r; i++) {
    acc += s[i] * s[i];
    if (i === k - 1) atK = acc / total;
    const px = left + (i + 1) * bar, py = top + h * (1 - acc / total);
    if (i === 0) g.moveTo(left, top + h);
    g.lineTo(px, py);
  }
  g.stroke();
  g.fillStyle = "#555";
  g.fillText(s[0].toPrecision(3), 2, top + 8);
  g.fillText(Math.pow(10, lo).toPrecision(2), 2, top + h);
  g.fillText("100%", W - right + 3, top + 8);
  g.fillText("0", W - right + 3, top + h);
  const kk = Math.min(k, r);
  const x = left + kk * bar;
  g.strokeStyle = "#e53935";
  g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(x, top);
  g.lineTo(x, top + h);
  g.stroke();
  g.fillStyle = "#e53935";
  g.fillText(`k = ${kk}: ${(100 * (kk ? (kk === r ? 1 : atK) : 0)).toFixed(2)} % of Σσ²`, left + 6, top + h + 13);
}

function drawBasis() {
  const plane = file.planes.find((p) => p.basis && p.rank > 0);
  $("basispanel").hidden = !plane;
  if (!plane) return;
  const names = planeNames(file.header);
  const p = plane.patch, count = plane.basis.length / plane.n;
  $("basisplane").textContent = `${names[plane.index]}, ${p}×${p} patches, first ${count}`;
  const cols = 8, gap = 1, scale = Math.max(1, Math.floor(48 / p));
  const tile = p * scale;
  const rows = Math.ceil(count / cols);
  const c = $("basis");
  c.width = cols * (tile + gap);
  c.height = rows * (tile + gap);
  const g = c.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, c.width, c.height);
  const img = g.createImageData(tile, tile);
  for (let t = 0; t < count; t++) {
    const row = plane.basis.subarray(t * plane.n, (t + 1) * plane.n);
    let peak = 0;
    for (const v of row) peak = Math.max(peak, Math.abs(v));
    for (let yy = 0; yy < tile; yy++) {
      for (let xx = 0; xx < tile; xx++) {
        const v = row[Math.floor(yy / scale) * p + Math.floor(xx / scale)];
        const grey = peak ? 128 + 127 * (v / peak) : 128; // zero is mid-grey
        const o = 4 * (yy * tile + xx);
        img.data[o] = img.data[o + 1] = img.data[o + 2] = grey;
        img.data[o + 3] = 255;
      }
    }
    g.putImageData(img, (t % cols) * (tile + gap), Math.floor(t / cols) * (tile + gap));
  }
}

// ?url= opens a file from the same server or any server that allows it.
const url = new URLSearchParams(location.search).get("url");
if (url) {
  setState("opening", `Fetching ${url}…`);
  fetch(url)
    .then((r) => (r.ok ? r.arrayBuffer() : Promise.reject(new Error(`HTTP ${r.status} for ${url}`))))
    .then((buffer) => openBytes(buffer, decodeURIComponent(url.split("/").pop())))
    .catch((error) => setState("error", error.message, true));
}

window.svdiViewer = {
  setComponents(k) {
    slider.value = String(k);
    slider.dispatchEvent(new Event("input"));
  },
  openBytes,
};
