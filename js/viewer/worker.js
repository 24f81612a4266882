// The viewer's decoder, off the main thread: opens a file once (factors decoded to integers),
// then reconstructs with any number of components on request.
import * as svdi from "../svdi.js";
import { channelAsGrey, drawsAsPicture, exifOrientation, orientRgba } from "./draw.js";

let image = null;
let orientation = 1; // EXIF orientation of the open file's picture (arrays are shown as stored)
let last = null; // the last reconstruction {k, decoded}, kept to show another channel of it

/** Samples of a picture (drawsAsPicture) as RGBA bytes for a canvas. uint16 shows its high
 * byte; float32 shows sample / scale, the plane units the encoder quantized (0 … 255). */
function toRgba(decoded, header) {
  const { width, height, channels, data } = decoded;
  const out = new Uint8ClampedArray(width * height * 4);
  const scale = header.dtype === "uint16" ? 1 / 257 : header.dtype === "float32" ? 1 / header.scale : 1;
  for (let i = 0, o = 0, s = 0; i < width * height; i++, o += 4, s += channels) {
    const v = (c) => data[s + c] * scale;
    if (channels <= 2) {
      out[o] = out[o + 1] = out[o + 2] = v(0);
      out[o + 3] = channels === 2 ? v(1) : 255;
    } else {
      out[o] = v(0);
      out[o + 1] = v(1);
      out[o + 2] = v(2);
      out[o + 3] = channels === 4 ? v(3) : 255;
    }
  }
  return out;
}

function render(k, channel) {
  const t0 = performance.now();
  if (last?.k !== k) last = { k, decoded: image.reconstruct(k) };
  const { decoded } = last;
  const message = { type: "image", k, width: decoded.width, height: decoded.height, channel: null };
  if (drawsAsPicture(image.header)) {
    const upright = orientRgba(toRgba(decoded, image.header), decoded.width, decoded.height, orientation);
    Object.assign(message, upright, { orientation });
  } else {
    Object.assign(message, channelAsGrey(decoded, channel), { channel });
  }
  message.ms = performance.now() - t0;
  postMessage(message, [message.rgba.buffer]);
}

onmessage = (event) => {
  const message = event.data;
  try {
    if (message.type === "open") {
      const t0 = performance.now();
      // The default pixel limit (Pillow's, 89 MP) keeps a hostile header from taking the tab's
      // memory; every real photo is below it.
      image = svdi.open(new Uint8Array(message.bytes));
      last = null;
      orientation = exifOrientation(image.container.metadata.exif);
      const openMs = performance.now() - t0;
      const factors = image.readFactors({ includeU: false });
      const bytes = image.blockBytes();
      const planes = image.planes.map((p, i) => ({
        ...p, sigma: factors[i].S, blockBytes: bytes[i],
        // Basis images of a patch layout: the first rows of Vᵀ (at most 64 tiles).
        basis: p.layout === "plain" ? null : factors[i].Vt.slice(0, Math.min(p.rank, 64) * p.n),
      }));
      // Version 2: the residual blocks (channel, rows, step, the encoder's bound, bytes), applied
      // when every component is shown.
      postMessage({ type: "opened", name: message.name, header: image.header, planes,
        residuals: image.residualBlocks(), noLayer: image.noLayerChannels(),
        fileBytes: image.fileBytes, openMs });
      render(null, 0);
    } else if (message.type === "render") {
      if (image) render(message.k, message.channel);
    }
  } catch (error) {
    postMessage({ type: "error", message: error.message, name: error.name });
  }
};

postMessage({ type: "ready" });
