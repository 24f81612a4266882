#!/usr/bin/env python3
"""What would a decoder-side restoration filter on top of the deblocking filter gain (issue #16)?

    python studies/restoration_study.py --corpus DIR [--first 1 --last 8] [--only NAME ...]
    python studies/restoration_study.py --corpus DIR --compiled-cost

A study, no format change: each PNG number FIRST..LAST of DIR (sorted) is encoded with
`deblock=True` at effort 1 (the reference encoder's filter choice, format version 5) at 11
qualities, decoded to its 8-bit Y'CbCr samples (deblocked, chroma doubled, before the colour
conversion: `decoder.render.render_image(colour=False)`), and each candidate filter below is
applied to those samples, which then go through the decoder's own Y'CbCr -> RGB conversion
(Pillow's). A filter the encoder fits and would store adds its bytes to the file's. Prints,
per candidate, the mean BD-rate against Pillow's JPEG (4:2:0) on RGB PSNR over 28-38 dB and
24-30 dB and on luma SSIM in JPEG's window (as studies/perceptual_study.py and
studies/adaptive_quant_study.py), the points gained over `deblock=True` alone, the stored bytes
per file, the multiply-adds per output sample and the numpy time to apply it per Kodak photo.

Candidates (per Y'CbCr channel, at full size; the target is the image's own Y'CbCr as the
encoder computes it, `encoder.deblock.target_channel`):

* "wiener sep7": AV1's loop-restoration Wiener filter, a separable symmetric 7-tap filter
  (taps sum to 1: 3 free coefficients a direction), fitted by least squares alternately
  along rows and columns.
* "wiener dia5" / "dia7": a point-symmetric 2-D filter on a diamond of 13 or 25 taps (ALF's
  chroma and luma shapes), written as y = x + sum_o c_o (x[p+o] + x[p-o] - 2 x[p]) so the DC
  gain is 1 (6 or 12 coefficients).
* "wiener dia7 units128": dia7 switched on or off per unit of 128 x 128 samples (AV1's
  restoration units; a bit each), fitted on the units that keep it (three rounds).
* "wiener dia7 cc": dia7 on every channel, and Cb and Cr also from the luma around them
  (Y'[p+o] - Y'[p] on ALF's 5x5 diamond, 12 more coefficients: VVC's cross-component ALF).
* "wiener dia7 act4" / "pos4": dia7 with a coefficient set per class, like ALF: the local
  activity (3x3 sum of |Laplacian|, class bounds at the channel's quartiles, a byte each), or
  the position relative to the patch edges (next to a vertical edge, a horizontal one, both,
  neither); "wiener dia7 act4 cc": the activity classes with the luma terms for chroma.
Coefficients are quantized to 1/128 in 7 bits each (clipped to [-64, 63]); a channel keeps its
filter only where it lowers the squared error; stored bytes = a byte per file, a bit per
channel and 7 bits per coefficient per class, plus the class bounds.
* "requant N" (reference for the ceiling, nothing stored): the shift-averaged re-quantization
  of each patch-layout plane (Nosratinia's re-application of the codec): the plane cut into
  patches on N shifted grids (4: the half-patch shifts of both axes; 64: every shift of
  patch 8), each patch projected onto the plane's own basis V (least
  squares, as V is quantized), its coefficients re-quantized to the nearest multiple of the
  plane's step (the decoded U S is one: the patch mean's finer step is in its V row's norm),
  rebuilt and the N images averaged. Chroma planes are taken back to their size by
  the encoder's least-squares halving, re-quantized, and doubled again as the decoder does.

Cost: a symmetric 2-D filter of K coefficients takes K multiplies and 2K + 1 adds a sample,
the separable 7-tap 6 multiplies; re-quantization takes 2 r multiply-adds per sample and shift
(projection and rebuild, r the plane's rank, up to 64 for patch 8) plus the quantizer.

Conclusion (2026-12-03, 38d9c89; kodim01-08, points of BD-rate vs JPEG gained over deblock=True
alone, RGB PSNR 28-38 / 24-30 dB / luma SSIM; deblock=True alone -25.39 / -38.48 / -10.41 %):
wiener sep7 -0.79 / -0.86 / -0.57 (17 B stored), dia5 -0.71 / -0.96 / -0.59 (17 B), dia7 -0.98 /
-1.21 / -0.71 (31 B), dia7 units128 -1.10 / -1.19 / -0.76 (41 B), dia7 cc -1.29 / -1.39 / -0.66
(52 B), dia7 pos4 -1.10 / -1.02 / -0.76 (122 B), dia7 act4 -1.65 / -1.34 / -2.83 (132 B), dia7
act4 cc -1.91 / -1.23 / -2.62 (216 B); requant 4 +3.80 / +3.07 / +5.37 (worse), requant 64 -0.71
/ -0.29 / -0.81. Held-out photos (8): dia7 -1.13 / -1.60 / -0.44, dia7 act4 -1.50 / -1.01 /
-2.98, dia7 act4 cc -2.75 / -0.20 / -2.60 (24-30 dB over 7 photos). No candidate reaches the 3
points a format version would need on its own; if version 6 carries a restoration stage, dia7
with activity classes (12 multiplies a sample). Tables, costs and the recommendation:
docs/design-notes.md, "Restoration filter after deblocking".
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# the curves' JPEG side, the SSIM window and measure (run from studies/, as both are)
from adaptive_quant_study import SVDI_QUALITIES
from perceptual_study import Curve, jpeg_curve, ssim_db, ssim_window
from PIL import Image

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec.colour import CHROMA_OFFSET
from svdcodec.codec.resample import Bilinear, least_squares_half
from svdcodec.decoder import read_factors
from svdcodec.decoder.deblock import plane_period
from svdcodec.decoder.render import render_image
from svdcodec.encoder.deblock import target_channel
from svdcodec.evaluation.metrics import bd_rate, psnr

KODAK_PIXELS = 768 * 512
MOSAIC_PIXELS = 19_000_000
COEFFICIENT_BITS = 7
COEFFICIENT_UNIT = 128  # 1/128: 7 fractional bits, ALF's precision

# ---------------------------------------------------------------------------------------------
# What the decoder has: the deblocked samples and, per channel, its plane's layout and factors


@dataclass
class Decoded:
    """One decoded file: its 8-bit Y'CbCr samples (float64, full size), and per channel the
    plane's patch size (0: plain layout), edge period at full size, step, V^T and rank."""

    size: int
    ycc: np.ndarray  # (h, w, 3) float64
    patch: list[int]
    period: list[int]
    step: list[float]
    vt: list[np.ndarray]
    subsampled: list[bool]


def decode_samples(data: bytes) -> Decoded:
    container = fmt.unpack(data)
    assert not container.residuals, "the study reads files without residual blocks"
    ycc = render_image(container, colour=False).astype(np.float64)
    factors = read_factors(data)
    header = container.header
    patch, period, step, vt, subsampled = [], [], [], [], []
    for p, f in zip(container.planes, factors):
        patched = p.layout == fmt.LAYOUT_PATCH
        patch.append(p.patch if patched else 0)
        period.append(plane_period(p, header) if patched else 0)
        step.append(p.step)
        vt.append(f.Vt.astype(np.float64))
        subsampled.append((p.height, p.width) != (header.height, header.width))
    return Decoded(len(data), ycc, patch, period, step, vt, subsampled)


def to_rgb(ycc: np.ndarray) -> np.ndarray:
    """The decoder's conversion (Pillow's) of Y'CbCr samples, rounded and clamped to bytes."""
    planes = np.clip(np.floor(ycc + 0.5), 0, 255).astype(np.uint8)
    return np.asarray(Image.merge("YCbCr", [Image.fromarray(np.ascontiguousarray(planes[..., c]))
                                            for c in range(3)]).convert("RGB"))


# ---------------------------------------------------------------------------------------------
# Encoder-fitted Wiener filters (a) and classified ones (b)

Offsets = list[tuple[int, int]]


def half_support(shape: str) -> Offsets:
    """One offset of each point-symmetric pair of the support (centre excluded)."""
    if shape == "sep7":
        return []
    radius = {"dia5": 2, "dia7": 3}[shape]
    out = []
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy, dx) <= (0, 0) or abs(dy) + abs(dx) > radius:
                continue
            out.append((dy, dx))
    return out


def shifted(x: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """x[p + (dy, dx)] for every p, from x padded by `pad` samples (edges replicated)."""
    h, w = x.shape[0] - 2 * pad, x.shape[1] - 2 * pad
    return x[pad + dy:pad + dy + h, pad + dx:pad + dx + w]


def symmetric_features(x: np.ndarray, offsets: Offsets) -> np.ndarray:
    """(h*w, K): x[p+o] + x[p-o] - 2 x[p] per offset o."""
    pad = 3
    padded = np.pad(x, pad, mode="edge")
    out = np.empty((x.size, len(offsets)))
    for k, (dy, dx) in enumerate(offsets):
        out[:, k] = (shifted(padded, dy, dx, pad) + shifted(padded, -dy, -dx, pad)
                     - 2 * x).ravel()
    return out


def line_features(x: np.ndarray, axis: int) -> np.ndarray:
    """(h*w, 3): the separable 7-tap filter's symmetric pairs along one axis."""
    offsets = [(k, 0) if axis == 0 else (0, k) for k in (1, 2, 3)]
    return symmetric_features(x, offsets)


def quantized(c: np.ndarray) -> np.ndarray:
    half = 2 ** (COEFFICIENT_BITS - 1)
    return np.clip(np.round(c * COEFFICIENT_UNIT), -half, half - 1) / COEFFICIENT_UNIT


def least_squares(features: np.ndarray, goal: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is not None:
        features, goal = features[mask], goal[mask]
    if features.shape[0] < 4 * features.shape[1]:
        return np.zeros(features.shape[1])
    a = features.T @ features
    b = features.T @ goal
    # lstsq: a flat class (all features 0, e.g. an empty chroma plane) makes `a` singular
    return np.linalg.lstsq(a + 1e-6 * np.trace(a) / len(b) * np.eye(len(b)), b, rcond=None)[0]


def activity(x: np.ndarray) -> np.ndarray:
    """ALF's activity: the 3x3 sum of |horizontal| + |vertical| Laplacian."""
    padded = np.pad(x, 2, mode="edge")
    lap = (np.abs(2 * padded[1:-1, 1:-1] - padded[1:-1, :-2] - padded[1:-1, 2:])
           + np.abs(2 * padded[1:-1, 1:-1] - padded[:-2, 1:-1] - padded[2:, 1:-1]))
    total = np.zeros_like(x)
    for dy in range(3):
        for dx in range(3):
            total += lap[dy:dy + x.shape[0], dx:dx + x.shape[1]]
    return total


def position_class(shape: tuple[int, int], period: int) -> np.ndarray:
    """0 inside a patch, 1 next to a vertical patch edge, 2 a horizontal one, 3 both (next to:
    the plane's sample on either side, two full-size samples for doubled chroma)."""
    if not period:
        return np.zeros(shape, dtype=np.int64)
    reach = max(1, period // 8)

    def near(n: int) -> np.ndarray:
        r = np.arange(n) % period
        return (r < reach) | (r >= period - reach)
    return near(shape[1])[None, :] * 1 + near(shape[0])[:, None] * 2


@dataclass(frozen=True)
class Wiener:
    """A stored filter per channel: shape, and classes ("": one; "act4": activity quartiles;
    "pos4": position to patch edges)."""

    shape: str
    classes: str = ""
    cross: bool = False  # chroma also from the luma around it
    unit: int = 0  # on/off per unit x unit samples (AV1's restoration units); 0: whole channel

    def classify(self, x: np.ndarray, period: int) -> tuple[np.ndarray, int, int]:
        """Class per sample (flat), the class count, the stored bound bytes."""
        if not self.classes:
            return np.zeros(x.size, dtype=np.int64), 1, 0
        if self.classes == "pos4":
            return position_class(x.shape, period).ravel(), 4, 0
        act = activity(x).ravel()
        bounds = np.quantile(act, [0.25, 0.5, 0.75])
        return np.searchsorted(bounds, act, side="right"), 4, 3

    def fit_apply(self, x: np.ndarray, goal: np.ndarray, period: int,
                  luma: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
        """(the filtered channel, stored bits, seconds the decoder's part took: classes,
        features and filter); `luma`: the decoded Y' of a chroma channel, for a cross filter."""
        start = time.perf_counter()
        cls, count, bound_bytes = self.classify(x, period)
        if self.shape == "sep7":
            return self._separable(x, goal, cls, count, bound_bytes)
        features = symmetric_features(x, half_support(self.shape))
        if self.cross and luma is not None:
            features = np.hstack([features, luma_features(luma)])
        seconds = time.perf_counter() - start
        residual = (goal - x).ravel()
        unit = unit_index(x.shape, self.unit)
        on = np.ones(int(unit.max()) + 1, dtype=bool)
        for _ in range(3 if self.unit else 1):  # fit on the units kept, keep where it gains
            fitted = on[unit]
            coefficients = [quantized(least_squares(features, residual,
                                                    fitted & (cls == k) if count > 1 else fitted))
                            for k in range(count)]
            delta = decoder_filter(features, cls, coefficients)
            gain = np.bincount(unit, np.square(residual) - np.square(residual - delta))
            on = gain > 0 if self.unit else on
        start = time.perf_counter()
        out = x.ravel() + decoder_filter(features, cls, coefficients) * on[unit]
        seconds += time.perf_counter() - start
        bits = count * features.shape[1] * COEFFICIENT_BITS + 8 * bound_bytes
        return out.reshape(x.shape), bits + (on.size if self.unit else 0), seconds

    def _separable(self, x: np.ndarray, goal: np.ndarray, cls: np.ndarray, count: int,
                   bound_bytes: int) -> tuple[np.ndarray, int, float]:
        """Alternately along rows and columns (they commute), two rounds; per class on the
        class of the output sample."""
        taps = [[np.zeros(3) for _ in range(count)] for _ in range(2)]  # [axis][class]
        for _ in range(2):
            for axis in (1, 0):
                other = apply_line(x, taps[1 - axis], cls, 1 - axis)
                features = line_features(other, axis)
                residual = (goal - other).ravel()
                taps[axis] = [quantized(least_squares(features, residual,
                                                      cls == k if count > 1 else None))
                              for k in range(count)]
        start = time.perf_counter()
        out = apply_line(apply_line(x, taps[0], cls, 0), taps[1], cls, 1)
        seconds = time.perf_counter() - start
        return out, count * 6 * COEFFICIENT_BITS + 8 * bound_bytes, seconds


def unit_index(shape: tuple[int, int], size: int) -> np.ndarray:
    """Per sample (flat), its restoration unit (size x size, raster order; 0 if size is 0)."""
    if not size:
        return np.zeros(shape[0] * shape[1], dtype=np.int64)
    across = -(-shape[1] // size)
    rows = np.arange(shape[0]) // size
    cols = np.arange(shape[1]) // size
    return (rows[:, None] * across + cols[None, :]).ravel()


def luma_features(luma: np.ndarray) -> np.ndarray:
    """(h*w, 12): Y'[p+o] - Y'[p] over the 5x5 diamond (CC-ALF's input)."""
    pad = 2
    padded = np.pad(luma, pad, mode="edge")
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
               if 0 < abs(dy) + abs(dx) <= 2]
    return np.stack([(shifted(padded, dy, dx, pad) - luma).ravel() for dy, dx in offsets],
                    axis=1)


def decoder_filter(features: np.ndarray, cls: np.ndarray, coefficients: list[np.ndarray]
                   ) -> np.ndarray:
    if len(coefficients) == 1:
        return features @ coefficients[0]
    table = np.stack(coefficients)
    return np.einsum("ij,ij->i", features, table[cls])


def apply_line(x: np.ndarray, taps: list[np.ndarray], cls: np.ndarray, axis: int) -> np.ndarray:
    features = line_features(x, axis)
    return (x.ravel() + decoder_filter(features, cls, taps)).reshape(x.shape)


# ---------------------------------------------------------------------------------------------
# Shift-averaged re-quantization (c)


def shifts(patch: int, count: int) -> list[tuple[int, int]]:
    per_axis = {4: 2, 64: 8}[count]
    per_axis = min(per_axis, patch)
    offsets = [patch * k // per_axis for k in range(per_axis)]
    return [(dy, dx) for dy in offsets for dx in offsets]


def requantize_plane(plane: np.ndarray, patch: int, step: float, vt: np.ndarray,
                     count: int) -> np.ndarray:
    """The mean over `shifts` of the plane cut into patches on the shifted grid, each
    projected onto span(V), re-quantized to the nearest multiple of the step and rebuilt
    (nearest, not the encoder's dead zone: on kodim01 at quality 25 and 55 the dead zone's
    averages are 11 % and 9 % further from the image than the deblocked plane itself)."""
    h, w = plane.shape
    if vt.shape[0] == 0:
        return plane
    rows = -(-h // patch) * patch + patch
    cols = -(-w // patch) * patch + patch
    padded = np.pad(plane, ((patch, rows - h), (patch, cols - w)), mode="symmetric")
    projector = np.linalg.pinv(vt)  # (n, r)
    total = np.zeros_like(plane)
    grid = shifts(patch, count)
    for dy, dx in grid:
        window = padded[patch - dy:patch - dy + rows, patch - dx:patch - dx + cols]
        patches = (window.reshape(rows // patch, patch, cols // patch, patch)
                   .transpose(0, 2, 1, 3).reshape(-1, patch * patch))
        levels = np.round(patches @ projector / step)
        rebuilt = (levels * step) @ vt
        image = (rebuilt.reshape(rows // patch, cols // patch, patch, patch)
                 .transpose(0, 2, 1, 3).reshape(rows, cols))
        total += image[dy:dy + h, dx:dx + w]
    return total / len(grid)


def halved(channel: np.ndarray) -> np.ndarray:
    """A doubled chroma channel taken back to its plane's size as the encoder halves it."""
    h, w = channel.shape
    samples = channel.astype(np.float32)
    return least_squares_half(lambda lo, hi: samples[lo:hi], (h, w), (h + 1) // 2,
                              (w + 1) // 2).astype(np.float64)


def requantize(d: Decoded, count: int) -> tuple[np.ndarray, float]:
    """The decoded samples with every patch-layout plane re-quantized; seconds taken."""
    out = d.ycc.copy()
    start = time.perf_counter()
    h, w = out.shape[:2]
    for c in range(3):
        if not d.patch[c]:
            continue
        offset = CHROMA_OFFSET if c else 0.0
        channel = out[..., c] - offset
        if d.subsampled[c]:
            small = halved(channel)
            small = requantize_plane(small, d.patch[c], d.step[c], d.vt[c], count)
            channel = Bilinear(small.astype(np.float32), h, w).rows(0, h).astype(np.float64)
        else:
            channel = requantize_plane(channel, d.patch[c], d.step[c], d.vt[c], count)
        out[..., c] = channel + offset
    return out, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Candidates: a decoded file and the original's Y'CbCr -> (filtered samples, stored bytes,
# decoder seconds)

Candidate = Callable[[Decoded, np.ndarray], tuple[np.ndarray, int, float]]


def stored(wiener: Wiener, before: Candidate | None = None) -> Candidate:
    def run(d: Decoded, goal: np.ndarray) -> tuple[np.ndarray, int, float]:
        x, seconds = d.ycc, 0.0
        if before is not None:
            x, _, seconds = before(d, goal)
        out = x.copy()
        bits = 8  # a byte per file: filter present, shape
        for c in range(3):
            filtered, channel_bits, took = wiener.fit_apply(
                x[..., c], goal[..., c], d.period[c], x[..., 0] if c else None)
            seconds += took
            bits += 1
            if np.sum(np.square(np.clip(filtered, 0, 255) - goal[..., c])) < np.sum(
                    np.square(x[..., c] - goal[..., c])):
                out[..., c] = filtered
                bits += channel_bits
        return out, math.ceil(bits / 8), seconds
    return run


def requant(count: int) -> Candidate:
    def run(d: Decoded, goal: np.ndarray) -> tuple[np.ndarray, int, float]:
        out, seconds = requantize(d, count)
        return out, 0, seconds
    return run


def deblocked(d: Decoded, goal: np.ndarray) -> tuple[np.ndarray, int, float]:
    return d.ycc, 0, 0.0


CANDIDATES: dict[str, Candidate] = {
    "deblock=True alone": deblocked,
    "wiener sep7": stored(Wiener("sep7")),
    "wiener dia5": stored(Wiener("dia5")),
    "wiener dia7": stored(Wiener("dia7")),
    "wiener dia7 cc": stored(Wiener("dia7", cross=True)),
    "wiener dia7 units128": stored(Wiener("dia7", unit=128)),
    "wiener dia7 act4": stored(Wiener("dia7", "act4")),
    "wiener dia7 pos4": stored(Wiener("dia7", "pos4")),
    "wiener dia7 act4 cc": stored(Wiener("dia7", "act4", cross=True)),
    "requant 4": requant(4),
    "requant 64": requant(64),
}


def macs(name: str, d: Decoded) -> float:
    """Multiplies per output sample (mean over the three channels at full size)."""
    words = name.split()
    if "wiener" in words:
        shape = words[words.index("wiener") + 1]
        filtered = 6 if shape == "sep7" else len(half_support(shape))
        if "cc" in words:
            filtered += 12 * 2 / 3  # Cb and Cr
    else:
        filtered = 0
    if name.startswith("requant"):
        count = int(name.split()[1])
        per_plane = []
        for c in range(3):
            share = 0.25 if d.subsampled[c] else 1.0
            per_plane.append(share * count * 2 * d.vt[c].shape[0] if d.patch[c] else 0.0)
        return float(np.mean(per_plane)) + filtered
    return float(filtered)


# ---------------------------------------------------------------------------------------------


@dataclass
class Tally:
    """Per candidate: per image, the BD-rates (vs JPEG in the three windows, vs deblock=True
    alone over 28-38 dB); per file, the stored bytes, decoder seconds and multiplies a sample."""

    bd: dict[str, list[tuple[float, float, float, float]]] = field(default_factory=dict)
    stored: dict[str, list[int]] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    macs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, other: Tally) -> None:
        for mine, theirs in ((self.bd, other.bd), (self.stored, other.stored),
                             (self.seconds, other.seconds), (self.macs, other.macs)):
            for name, values in theirs.items():
                mine.setdefault(name, []).extend(values)  # type: ignore[arg-type]


def measure_image(path: Path, names: list[str]) -> Tally:
    pixels = np.asarray(Image.open(path).convert("RGB"))
    tally = Tally()
    jpeg = jpeg_curve(pixels)
    goal = np.stack([target_channel(pixels, fmt.COLOUR_YCBCR, c).reshape(pixels.shape[:2])
                     for c in range(3)], axis=-1).astype(np.float64)
    curves: dict[str, Curve] = {n: ([], [], []) for n in names}
    for q in SVDI_QUALITIES:
        decoded = decode_samples(svdcodec.encode(pixels, quality=q, deblock=True))
        for name in names:
            ycc, extra, seconds = CANDIDATES[name](decoded, goal)
            back = to_rgb(ycc)
            curves[name][0].append(decoded.size + extra)
            curves[name][1].append(psnr(pixels, back))
            curves[name][2].append(ssim_db(pixels, back))
            tally.stored.setdefault(name, []).append(extra)
            tally.seconds.setdefault(name, []).append(seconds)
            tally.macs.setdefault(name, []).append(macs(name, decoded))
    lo, hi = ssim_window(jpeg)
    base = curves[names[0]]
    for name in names:
        s = curves[name]
        tally.bd[name] = [(
            bd_rate(s[0], s[1], jpeg[0], jpeg[1], 28.0, 38.0),
            bd_rate(s[0], s[1], jpeg[0], jpeg[1], 24.0, 30.0),
            bd_rate(s[0], s[2], jpeg[0], jpeg[2], lo, hi),
            bd_rate(s[0], s[1], base[0], base[1], 28.0, 38.0))]
    print(path.stem, "  ".join(f"{n}: {' '.join(f'{v:+.2f}' for v in tally.bd[n][0])}"
                               for n in names), flush=True)
    return tally


def report(tally: Tally, names: list[str]) -> None:
    base = np.nanmean(tally.bd[names[0]], axis=0)
    print("\nBD-rate vs JPEG (RGB PSNR 28-38 dB, 24-30 dB, luma SSIM), points gained over "
          "deblock=True alone in each, BD-rate vs deblock=True alone (28-38 dB), stored bytes "
          "per file, multiplies per sample, ms per Kodak photo to apply (numpy), s per 19 MP")
    for name in names:
        high, low, ssim, direct = np.nanmean(tally.bd[name], axis=0)
        gain = np.array([high, low, ssim]) - base[:3]
        ms = 1000 * float(np.mean(tally.seconds[name]))
        print(f"{name:25s} | {high:+6.2f} | {low:+6.2f} | {ssim:+6.2f} | "
              f"{gain[0]:+5.2f} | {gain[1]:+5.2f} | {gain[2]:+5.2f} | {direct:+6.2f} | "
              f"{np.mean(tally.stored[name]):5.1f} | {np.mean(tally.macs[name]):6.1f} | "
              f"{ms:7.1f} | {ms * MOSAIC_PIXELS / KODAK_PIXELS / 1000:6.2f}", flush=True)


# ---------------------------------------------------------------------------------------------
# What a compiled decoder would pay: the dia7 filter in plain C (integer, 7-bit coefficients),
# compiled with the system's C compiler and timed on one channel of Kodak and of 19 MP

DIAMOND7_C = r"""
#include <stdint.h>
#include <stddef.h>
/* out = x + (sum_k c[k] (x[p + o_k] + x[p - o_k] - 2 x[p]) + 64) >> 7, clamped to bytes; the
   12 offsets of the 7x7 diamond's half; rows and columns within 3 of the border copied. */
void diamond7(const uint8_t *x, uint8_t *out, ptrdiff_t h, ptrdiff_t w, const int32_t *c)
{
    static const int dy[12] = {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3};
    static const int dx[12] = {1, 2, 3, -2, -1, 0, 1, 2, -1, 0, 1, 0};
    for (ptrdiff_t i = 0; i < h * w; i++)
        out[i] = x[i];
    for (ptrdiff_t y = 3; y < h - 3; y++) {
        const uint8_t *row = x + y * w;
        for (ptrdiff_t j = 3; j < w - 3; j++) {
            int32_t centre = row[j], sum = 0;
            for (int k = 0; k < 12; k++) {
                ptrdiff_t o = dy[k] * w + dx[k];
                sum += c[k] * ((int32_t)row[j + o] + row[j - o] - 2 * centre);
            }
            int32_t v = centre + ((sum + 64) >> 7);
            out[y * w + j] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}
"""


def compiled_cost() -> None:
    """Milliseconds per channel of the dia7 filter in C (-O3 as setup.py builds the kernels,
    and with -march=native), best of 5, on random bytes: a Kodak channel and a 19 MP one."""
    import ctypes
    import subprocess
    import tempfile

    coefficients = np.array([9, -3, 1, -2, 6, 10, -2, 1, 2, -3, 1, 0], dtype=np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "diamond7.c"
        source.write_text(DIAMOND7_C)
        for flags in (["-O3"], ["-O3", "-march=native"]):
            library = Path(tmp) / f"diamond7{len(flags)}.so"
            subprocess.run(["cc", *flags, "-shared", "-fPIC", "-o", str(library), str(source)],
                           check=True)
            kernel = ctypes.CDLL(str(library)).diamond7
            kernel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_ssize_t,
                               ctypes.c_ssize_t, ctypes.c_void_p]
            for label, (h, w) in (("Kodak channel", (512, 768)), ("19 MP channel", (4000, 4750))):
                x = np.random.default_rng(1).integers(0, 256, (h, w), dtype=np.uint8)
                out = np.empty_like(x)
                times = []
                for _ in range(5):
                    start = time.perf_counter()
                    kernel(x.ctypes.data, out.ctypes.data, h, w, coefficients.ctypes.data)
                    times.append(time.perf_counter() - start)
                print(f"dia7 in C ({' '.join(flags)}), {label}: {1000 * min(times):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--first", type=int, default=1, help="first image (1-based, sorted)")
    parser.add_argument("--last", type=int, default=8, help="last image (inclusive)")
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="images measured at once")
    parser.add_argument("--compiled-cost", action="store_true",
                        help="only time the dia7 filter as a C kernel")
    args = parser.parse_args()
    if args.compiled_cost:
        compiled_cost()
        return
    paths = sorted(args.corpus.glob("*.png"))[args.first - 1:args.last]
    names = [n for n in CANDIDATES if n == "deblock=True alone" or not args.only
             or n in args.only]
    tally = Tally()
    with ProcessPoolExecutor(args.jobs) as pool:
        for one in pool.map(measure_image, paths, [names] * len(paths)):
            tally.add(one)
    print(f"{len(paths)} images ({paths[0].stem}..{paths[-1].stem}), deblock=True, effort 1, "
          f"qualities {SVDI_QUALITIES}; JPEG: Pillow 4:2:0")
    report(tally, names)


if __name__ == "__main__":
    main()
