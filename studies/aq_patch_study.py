#!/usr/bin/env python3
"""Would a real per-patch step (adaptive quantization) buy luma SSIM (issue #16)?

    python studies/aq_patch_study.py --corpus DIR [--first 1 --last 8] [--only NAME ...]
        [--deblock on|off|both] [--qualities Q ...] [--jobs 2] [--restoration]

A study, no format change. In a patch layout the rows of U are patches; here row p of U's
components >= 1 is quantized with step * m_k * m_p (m_k the per-component multiplier of today,
`codec.quantize.component_steps`; the patch mean keeps its 0.7 step: it is dense and
predicted, and integers at different scales would break the prediction), m_p = M_p / 16 from a
few classes (M_p an integer: a format would write the plane as exact products of A o M, the
integers A times M_p in components >= 1 and 16 in component 0, with the shift F + 4, spec
§5.1). The decoder needs M_p:

* explicit ("x264" / "bands" variants): a class per patch (or per cell of 2 x 2 or 4 x 4
  patches) sent as side information, its bytes counted as one zstd frame of the class bytes
  (the encoder's level) plus a field of 2 bytes and one byte per class (its M);
* derived, no side information but what the rule needs: "means" variants, from what the
  decoder has before it dequantizes the AC, the patch-mean column's integers: the spread of
  the decoded means of the 8 neighbouring patches stands for the patch's variance (a tilt of g
  a sample gives neighbours 8 g apart); "causal" variants, grid row after grid row, from the
  AC the decoder reconstructed in the row above (`causal_map`: the variance of the 3 patches
  above in components 1..K - 1, at least the "means" estimate), and G (below) sent in 2 bytes.
  The decoder hook recomputes derived maps from the integers it read and counts the patches
  where they differ from the encoder's ("mismatched": only where the rank decision kept fewer
  than K components).

The classes (x264's adaptive quantization, JPEG XL's idea): v_p the patch's variance (explicit:
the source's; derived: the estimate above), m_p = ((v_p + C) / G)^s, G the plane's geometric
mean of v_p + C (so the classes centre on the plane's step), rounded to a class of 2^(k/4)
(k = -3..3, M = 10, 11, 13, 16, 19, 23, 27), clipped to [LO, HI]: finer in flat and smooth
patches, where svdi loses SSIM to JPEG (the patch-edge steps), coarser in texture, where SSIM
masks; C near SSIM's c2 = (0.03 * 255)^2 = 58.5 (below it SSIM sees every error alike).
"bands": fixed classes by the source variance (< 4, < 16, < 64, < 256, more).

Where m_p enters (all of it encoder only, as the study emulates it): the quantizer
(`AQStats`: row p of components >= 1 at step * m_k * m_p), the quantizer's squared error (in
plane units, per row) that the rank decision and the sigma refit read, and the sum of squares
the refit reads, taken of the integers as the decoder scales them, a_pk m_p (the least-squares
weight of component k is then that of the decoded coefficients: |p_k - s_k a~_k|^2 =
sigma_k^2 - 2 s_k a~_k . p_k + s_k^2 |a~_k|^2 with a~ = a o m, so `refitted_sigma` is
unchanged). The entropy estimates of the rank decision read the integers as stored. The
decoder (`aq_matrix`, a hook on `decoder.plane.PlaneReconstructor.matrix`, which every decode
path and the encoder's own deblocking judgement go through) multiplies row p of the left
factor's components >= 1 by M_p and component 0 by 16 and takes the exact product with shift
F + 4. Effort 1 only (RDOQ's level decisions would need the row's step in their cost); patch
layouts of streaming planes only (every plane of the photos here); luma only unless the name
says "all planes".

Each image is encoded at each quality (svdi `deblock` on and/or off, effort 1) with the hooks
set for the variant, decoded with them, and its size is the file's bytes plus the side
information. BD-rates against Pillow's JPEG 4:2:0, RGB PSNR 28-38 dB / 24-30 dB / luma SSIM
in JPEG's 28-38 dB window, as studies/adaptive_quant_study.py and restoration_study.py take
them (their curve helpers are imported).

Conclusion (2026-12-03, 8386192; BD-rate vs JPEG RGB PSNR 28-38 / 24-30 dB / luma SSIM,
"points" against the same encoder without AQ; `deblock=True`, effort 1):

kodim01-08, 7 qualities (tuning): none -25.12 / -37.19 / -10.55 %. Explicit maps cost more
than they gain: per patch the map is 9-11 % of the file (x264 s 0.25: +10.5 / +12.4 / +2.4
points; with the map free -23.07 / -16.83 % at 28-38 dB / SSIM), per 2 x 2 patches 2.5-3.4 %
(+4.1 / +4.0 / -3.5), per 4 x 4 1 % (+2.2 / +1.8 / -3.5). Derived, no side information:
"means" s 0.25 +0.71 / +0.40 / -2.72, s 0.15 +0.19 / -0.03 / -1.70; "causal" K 4: s 0.25
+2.18 / +1.92 / -5.09, s 0.20 +1.50 / +1.34 / -4.61, s 0.15 +0.80 / +0.76 / -3.58, s 0.10
+0.30 / +0.13 / -2.30; finer-only, capped classes, K 2-16 and chroma planes too lie near
the same curve (~5.5 points of SSIM per point of RGB PSNR near 0.5), C 200 and a finer chroma
step to win PSNR back below it.
Checked at 11 qualities, causal s 0.12 K 4 (points, deblock=True / no filter): kodim01-08
+0.49 / +0.50 / -2.75 and +0.53 / +0.71 / -3.02; kodim09-24 +0.64 / +0.64 / -3.04 and +0.72 /
+0.81 / -3.37; held-out 8 +0.25 / +0.34 / -2.03 and +0.32 / +0.51 / -2.63 (s 0.15: about 0.4
point more PSNR given for 0.8 more SSIM). With restoration_study's ALF-like filter (dia7,
4 activity classes) on kodim01-08: filter alone -27.04 / -39.82 / -13.24 %, with AQ s 0.12
-26.57 / -39.33 / -15.82 % (-1.17 / -0.85 / -5.41 points against deblock=True); kodim09-24
-27.57 / -42.29 / -11.88 % and -26.90 / -41.66 / -14.70 % (-1.05 / -0.61 / -5.82): the two
add up, and all 24 Kodak photos reach -15.1 % in luma SSIM at effort 1. Worth a format version 6 together with that filter, not alone. Tables, format cost, decode
cost: docs/design-notes.md, "Adaptive quantization per patch".
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import zstandard

# the curves' JPEG side, the SSIM window and the qualities (run from studies/, as they are)
from adaptive_quant_study import SVDI_QUALITIES
from perceptual_study import Curve, jpeg_curve, ssim_db, ssim_window
from PIL import Image

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec import exact as exact_rule
from svdcodec.codec.coding import band_symbols
from svdcodec.codec.quantize import FIRST_ROUNDING, ROUNDING, ColumnStats, finest_step
from svdcodec.decoder import plane as decoder_plane
from svdcodec.decoder.reference import factor_integers
from svdcodec.encoder import plane as encoder_plane
from svdcodec.encoder import schedule, tuning
from svdcodec.encoder.blocks import component_groups, small_plane
from svdcodec.encoder.plane import (
    INT16_MAX,
    BandPart,
    QuantizedU,
    keep_columns,
    plane_bands,
)
from svdcodec.evaluation.metrics import bd_rate, psnr
from svdcodec.format import LAYOUT_PATCH

#: M_p is in 1/UNIT: the decoder's product takes a shift of log2(UNIT) more
UNIT = 16
UNIT_BITS = 4
#: the class multipliers M (1/16): 16 * 2^(k/4), k = -3..3
CLASS_M = tuple(round(UNIT * 2 ** (k / 4)) for k in range(-3, 4))  # 10 11 13 16 19 23 27

# ---------------------------------------------------------------------------------------------
# Variants


@dataclass(frozen=True)
class Variant:
    """How m_p is chosen. `rule`: "none", "x264" (explicit, the source variance), "bands"
    (explicit, fixed variance classes), "means" (derived from the decoded patch means),
    "causal" (derived from the row above, at least the means' estimate), "causal above" (the
    row above alone)."""

    rule: str = "none"
    strength: float = 0.25  # s of m = ((v + C) / G)^s
    floor: float = 58.5  # C
    lo: float = 0.6  # the finest m_p
    hi: float = 1.6  # the coarsest
    cell: int = 1  # explicit classes per cell x cell patches
    planes: tuple[int, ...] = (0,)
    bands_m: tuple[int, ...] = (11, 13, 16, 19, 23)  # "bands": M below 4, 16, 64, 256, above
    components: int = 8  # "causal": the AC energy of components 1..K - 1 of the row above
    chroma: float | None = None  # encoder.tuning.CHROMA_STEP for this variant (None: today's)
    spacing: int = 1  # classes every `spacing` quarter octaves (2: M = 11, 16, 23)


VARIANTS: dict[str, Variant] = {
    "none": Variant(),
    "check: every M 16": Variant("x264", 0.0),
    "x264 s0.15": Variant("x264", 0.15),
    "x264 s0.25": Variant("x264", 0.25),
    "x264 s0.35": Variant("x264", 0.35),
    "x264 s0.25 C16": Variant("x264", 0.25, 16.0),
    "x264 s0.25 C200": Variant("x264", 0.25, 200.0),
    "x264 s0.25 finer only": Variant("x264", 0.25, hi=1.0),
    "x264 s0.25 coarser only": Variant("x264", 0.25, lo=1.0),
    "x264 s0.25 cell2": Variant("x264", 0.25, cell=2),
    "x264 s0.25 3 classes": Variant("x264", 0.25, spacing=2),
    "x264 s0.25 3 classes cell2": Variant("x264", 0.25, spacing=2, cell=2),
    "x264 s0.25 all planes": Variant("x264", 0.25, planes=(0, 1, 2)),
    "bands": Variant("bands"),
    "means s0.25": Variant("means", 0.25),
    "means s0.15": Variant("means", 0.15),
    "means s0.25 finer only": Variant("means", 0.25, hi=1.0),
    "means s0.25 C200": Variant("means", 0.25, 200.0),
    "x264 s0.25 cell4": Variant("x264", 0.25, cell=4),
    "x264 s0.25 3 classes cell4": Variant("x264", 0.25, spacing=2, cell=4),
    "causal s0.25": Variant("causal", 0.25),
    "causal s0.15": Variant("causal", 0.15),
    "causal above s0.25": Variant("causal above", 0.25),
    "causal s0.10": Variant("causal", 0.10),
    "causal s0.20": Variant("causal", 0.20),
    "causal s0.25 finer only": Variant("causal", 0.25, hi=1.0),
    "causal s0.25 C200": Variant("causal", 0.25, 200.0),
    "causal s0.25 K4": Variant("causal", 0.25, components=4),
    "causal s0.25 K16": Variant("causal", 0.25, components=16),
    "causal s0.25 all planes": Variant("causal", 0.25, planes=(0, 1, 2)),
    "causal s0.25 chroma 0.75": Variant("causal", 0.25, chroma=0.75),
    "causal s0.15 chroma 0.75": Variant("causal", 0.15, chroma=0.75),
    "chroma 0.75 alone": Variant(chroma=0.75),
    "causal s0.10 K4": Variant("causal", 0.10, components=4),
    "causal s0.15 K4": Variant("causal", 0.15, components=4),
    "causal s0.20 K4": Variant("causal", 0.20, components=4),
    "causal s0.20 K4 finer only": Variant("causal", 0.20, hi=1.0, components=4),
    "causal s0.30 K4 finer only": Variant("causal", 0.30, hi=1.0, components=4),
    "causal s0.15 K4 hi1.2": Variant("causal", 0.15, hi=1.2, components=4),
    "causal s0.15 K2": Variant("causal", 0.15, components=2),
    "causal s0.12 K4": Variant("causal", 0.12, components=4),
    "causal s0.15 K4 hi1.1": Variant("causal", 0.15, hi=1.1, components=4),
}


def class_m(m: np.ndarray, v: Variant) -> np.ndarray:
    """Continuous multipliers to the nearest class M (1/16) within [lo, hi]."""
    k = np.clip(np.round(4 * np.log2(m) / v.spacing) * v.spacing, -3, 3).astype(int) + 3
    out = np.asarray(CLASS_M)[k]
    return np.clip(out, math.ceil(v.lo * UNIT - 0.5), math.floor(v.hi * UNIT + 0.5))


def power_m(variance: np.ndarray, v: Variant) -> np.ndarray:
    x = variance + v.floor
    g = math.exp(float(np.mean(np.log(x))))
    return class_m((x / g) ** v.strength, v)


def cell_mean(grid: np.ndarray, cell: int) -> np.ndarray:
    """Each value replaced by the mean over its cell x cell block (partial edge cells too)."""
    if cell == 1:
        return grid
    h, w = grid.shape
    ph, pw = -(-h // cell) * cell, -(-w // cell) * cell
    padded = np.pad(grid, ((0, ph - h), (0, pw - w)), mode="edge")
    means = padded.reshape(ph // cell, cell, pw // cell, cell).mean(axis=(1, 3))
    return np.repeat(np.repeat(means, cell, 0), cell, 1)[:h, :w]


def explicit_map(patches: np.ndarray, grid: tuple[int, int], v: Variant) -> np.ndarray:
    """M per patch (matrix row) from the source patches (rows, n)."""
    variance = cell_mean(patches.astype(np.float64).var(axis=1).reshape(grid), v.cell)
    if v.rule == "bands":
        return np.asarray(v.bands_m)[np.searchsorted([4, 16, 64, 256], variance.ravel(),
                                                     side="right")]
    return power_m(variance.ravel(), v)


def means_variance(first: np.ndarray, grid: tuple[int, int], patch: int, mean_step: float
                   ) -> np.ndarray:
    """A variance per patch (grid) from the patch-mean column's integers (what the decoder has
    first): the decoded means (integer x step / patch: the first basis vector is near 1 / patch
    in every sample, its sign does not matter here), the mean square difference to the 8
    neighbours (edges replicated) x 63 / (12 x 48): what a tilt's variance within the patch
    would be."""
    mu = first.astype(np.float64).reshape(grid) * mean_step / patch
    padded = np.pad(mu, 1, mode="edge")
    h, w = grid
    total = np.zeros(grid)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                total += np.square(padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - mu)
    return total / 8 * (patch * patch - 1) / (12 * 6 * patch * patch / 8)


def derived_map(first: np.ndarray, grid: tuple[int, int], patch: int, mean_step: float,
                v: Variant) -> np.ndarray:
    """M per patch from `means_variance` alone (no side information)."""
    return power_m(means_variance(first, grid, patch, mean_step).ravel(), v)


def causal_map(grid: tuple[int, int], steps_ac: np.ndarray, patch: int, means: np.ndarray,
               g: float, v: Variant, ints_of_row: Callable[[int, np.ndarray], np.ndarray]
               ) -> np.ndarray:
    """M per patch, grid row after grid row, from the decoded AC of the row above: the
    variance of patches (y - 1, x - 1..x + 1) in components 1..K - 1 as the decoder
    reconstructs them (integers x M / 16 x their step, per sample), averaged; with "causal",
    at least `means` (`means_variance`, grid), which alone decides the first row. `g`: the
    plane's geometric mean of variance + C, sent (2 bytes). `ints_of_row(y, M)`: row y's
    integers of components 1..K - 1 at those M (the encoder quantizes them, the decoder reads
    them)."""
    gh = grid[0]
    out = np.empty(grid, dtype=np.int64)
    above: np.ndarray | None = None
    for y in range(gh):
        if above is None:
            estimate = means[y]
        else:
            padded = np.pad(above, 1, mode="edge")
            estimate = (padded[:-2] + padded[1:-1] + padded[2:]) / 3
            if v.rule == "causal":
                estimate = np.maximum(estimate, means[y])
        row = class_m(((estimate + v.floor) / g) ** v.strength, v)
        ints = ints_of_row(y, row)
        above = np.square(ints * (row[:, None] / UNIT) * steps_ac).sum(axis=1) / (patch * patch)
        out[y] = row
    return out.ravel()


def geometric_mean(patches: np.ndarray, v: Variant) -> float:
    """G of the plane (the source's variances): what a causal map sends, as float16."""
    x = patches.astype(np.float64).var(axis=1) + v.floor
    return float(np.float16(math.exp(float(np.mean(np.log(x))))))


# ---------------------------------------------------------------------------------------------
# The state a run shares between the encoder's hooks and the decoder's: the variant, and per
# coded plane (index, patch, height, width, step) its M per matrix row and side bytes


class State:
    variant = Variant()
    maps: ClassVar[dict[tuple, tuple[np.ndarray, int]]] = {}
    mismatches = 0  # derived maps the decoder found other than the encoder's (patches)
    gs: ClassVar[dict[tuple, float]] = {}  # causal maps: G per plane, as sent


def plane_key(index: int, patch: int, height: int, width: int, step: float) -> tuple:
    return (index, patch, height, width, float(step))


def side_bytes(m: np.ndarray, grid: tuple[int, int], v: Variant) -> int:
    if v.rule == "means":
        return 0
    if v.rule.startswith("causal"):
        return 2  # G
    g = m.reshape(grid)[::v.cell, ::v.cell]
    classes = np.unique(g)
    index = np.searchsorted(classes, g).astype(np.uint8)
    frame = zstandard.ZstdCompressor(level=tuning.ZSTD_LEVEL).compress(index.tobytes())
    return 2 + classes.size + len(frame)


def first_integers(values0: np.ndarray, inv_step0: np.float32) -> np.ndarray:
    """Column 0's integers as `ColumnStats._dead_zone` (numpy) makes them."""
    scaled = np.abs(values0.astype(np.float32)) * inv_step0 + np.float32(FIRST_ROUNDING)
    ints = scaled.astype(np.int32)
    return np.where(values0 < 0, -ints, ints)


def plane_map(source, candidate, step: float) -> np.ndarray | None:
    """M per matrix row of the candidate's plane at `step` (cached), or None if it is not
    adapted."""
    v = State.variant
    p = candidate.plane
    if v.rule == "none" or p.index not in v.planes or p.layout != LAYOUT_PATCH \
            or candidate.basis is None or candidate.fitted:
        return None
    key = plane_key(p.index, p.patch, p.height, p.width, step)
    if key not in State.maps:
        patches = source.patches(p.index, 0, p.height, p.patch)
        if v.rule == "means":
            mean_step = float(ColumnStats(1, step, patches=True).steps[0])
            inv0 = np.float32(1.0 / mean_step)
            values0 = patches @ np.ascontiguousarray(candidate.basis[:, :1])
            m = derived_map(first_integers(values0[:, 0], inv0), p.grid, p.patch, mean_step, v)
        elif v.rule.startswith("causal"):
            m = encoder_causal(patches, candidate, step, v)
            State.gs[key] = geometric_mean(patches, v)
        else:
            m = explicit_map(patches, p.grid, v)
        State.maps.setdefault(key, (m.astype(np.int64), side_bytes(m, p.grid, v)))
    return State.maps[key][0]


def encoder_causal(patches: np.ndarray, candidate, step: float, v: Variant
                   ) -> np.ndarray:
    """`causal_map` as the encoder makes it: each row's integers quantized as `AQStats` will
    (the same float32 operations) at the M chosen from the rows above."""
    p = candidate.plane
    k = min(v.components, candidate.basis.shape[1])
    values = patches @ np.ascontiguousarray(candidate.basis[:, :k])
    stats = ColumnStats(k, step, patches=True)
    mean_step = float(stats.steps[0])
    first = first_integers(values[:, 0], np.float32(1.0 / mean_step))
    means = means_variance(first, p.grid, p.patch, mean_step)
    gw = p.grid[1]
    offset = np.float32(ROUNDING)

    def ints_of_row(y: int, row: np.ndarray) -> np.ndarray:
        inv = (stats.inv_steps[None, 1:] / (row.astype(np.float64)[:, None] / UNIT)
               ).astype(np.float32)
        return (np.abs(values[y * gw:(y + 1) * gw, 1:]) * inv + offset).astype(np.int32)
    return causal_map(p.grid, stats.steps[1:], p.patch, means, geometric_mean(patches, v), v,
                      ints_of_row)


def decoder_causal(container, plane, rank: int, g: float, v: Variant
                   ) -> np.ndarray:
    """`causal_map` as the decoder makes it, from the integers it read."""
    k = min(v.components, rank)
    ints = factor_integers(container, plane, "U", k)
    stats = ColumnStats(k, plane.step, patches=True)
    mean_step = float(stats.steps[0])
    means = means_variance(ints[:, 0], plane.grid, plane.patch, mean_step)
    gw = plane.grid[1]
    return causal_map(plane.grid, stats.steps[1:], plane.patch, means, g, v,
                      lambda y, row: np.abs(ints[y * gw:(y + 1) * gw, 1:]))


# ---------------------------------------------------------------------------------------------
# Encoder: a row-scaled quantizer


class AQStats(ColumnStats):
    """`ColumnStats` of a patch layout's U whose row p's components >= 1 are at step * m_k *
    M_p / 16 (the dead zone as ever; column 0 exactly as today's). `error` is the squared error
    in plane units, `squares` the sum of the integers as the decoder scales them (a_pk M_p/16)
    squared: what `choose_rank` and `refitted_sigma` read."""

    def __init__(self, columns: int, step: float, sparse, patches: bool,
                 rows_m: np.ndarray) -> None:
        super().__init__(columns, step, sparse, patches)
        if self.sparse is not None:
            raise NotImplementedError("the study emulates effort 1 (no RDOQ)")
        self.scale = rows_m.astype(np.float64) / UNIT

    def add(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        assert self.inv_steps is not None and values.shape[0] == self.scale.size
        column_scale = np.ones((values.shape[0], self.columns))
        column_scale[:, 1:] = self.scale[:, None]
        inv = (self.inv_steps[None, :] / column_scale).astype(np.float32)
        offsets = np.full(self.columns, np.float32(ROUNDING), dtype=np.float32)
        offsets[:1] = FIRST_ROUNDING
        scaled = np.abs(values) * inv + offsets
        ints = scaled.astype(np.int32)  # floor of non-negative values
        # the error in steps of each row's own step, squared, times that step in plane units
        # (with every M_p = 16 the very sums of `ColumnStats._dead_zone`)
        errors = ((scaled - ints) - offsets).astype(np.float64)
        errors *= errors
        if not np.all(self.scale == 1.0):
            errors *= np.square(column_scale)
        self.error += errors.sum(axis=0) * self.steps ** 2
        if ints.size:
            np.maximum(self.top, ints.max(axis=0), out=self.top)
            # a~ = a m_p: the integers as the decoder scales them
            self.squares += np.square(ints * column_scale).sum(axis=0)
        self.rows += values.shape[0]
        ints = np.where(values < 0, -ints, ints).astype(np.int32)
        if out is None:
            return ints
        out[...] = ints
        return out


ORIGINAL_QUANTIZE_U = encoder_plane.quantize_u


def aq_quantize_u(source, candidate, rank: int, step: float, bands=None,
                  done=None, optimise: bool = False, first_only: bool = False,
                  symbols: bool = True, adapt: int = 0) -> QuantizedU:
    """`encoder.plane.quantize_u` with `AQStats` in each band of an adapted plane (the same
    code, the row multipliers of the band's matrix rows given to the stats)."""
    rows_m = plane_map(source, candidate, step)
    if rows_m is None:  # (the production encoder's own AQ, `adapt`, is off in the study)
        return ORIGINAL_QUANTIZE_U(source, candidate, rank, step, bands, done, optimise,
                                   first_only, symbols, adapt)
    n = candidate.plane.matrix_shape[1]
    sparse = component_groups(rank, small_plane(candidate.plane))[1:] if optimise else None
    bands = plane_bands(source, candidate.plane.index) if bands is None else bands
    patch, per_row = candidate.plane.patch, candidate.plane.grid[1]
    starts = np.cumsum([0] + [-(-(y1 - y0) // patch) * per_row for y0, y1 in bands])
    unit_basis = np.ascontiguousarray(candidate.basis[:, :rank])
    finest = step * finest_step(rank) * float(rows_m.min()) / UNIT
    small = math.sqrt(n) * 256.0 / finest + 2 < INT16_MAX
    dtype = np.int16 if small else np.int32
    kept = min(rank, 1) if first_only else rank
    A = np.empty((int(starts[-1]), kept), dtype=dtype)
    tail = (np.empty((max(1, rank // encoder_plane.TAIL_PART), int(starts[-1])), dtype=dtype)
            if kept < rank else None)
    groups = component_groups(rank, small_plane(candidate.plane))[1:] if symbols else []

    def band(i: int) -> BandPart:
        y0, y1 = bands[i]
        a = source.patches(candidate.plane.index, y0, y1, patch)
        r0 = y0 // patch * per_row
        stats = AQStats(rank, step, sparse, True, rows_m[r0:r0 + a.shape[0]])
        mine = A[starts[i]:starts[i + 1]]
        if tail is None:
            ints = stats.add(a @ unit_basis, out=mine)
        else:
            ints = stats.add(a @ unit_basis, out=np.empty((a.shape[0], rank), dtype=dtype))
            keep_columns(ints, mine, tail, starts[i])
        return BandPart(mine, stats, [band_symbols(ints, lo, hi) for lo, hi in groups])
    done = done or {}
    parts = []
    for i, b in enumerate(bands):
        if b in done:
            if tail is None:
                A[starts[i]:starts[i + 1]] = done[b].integers
            else:
                keep_columns(done[b].integers, A[starts[i]:starts[i + 1]], tail, starts[i])
            parts.append(done[b])
        else:
            parts.append(band(i))
    symbol_parts = {g: [p.symbols[k] for p in parts] for k, g in enumerate(groups)}
    return QuantizedU(A, ColumnStats.combine([p.stats for p in parts]), symbol_parts,
                      dict(zip(bands, parts)), tail)


# ---------------------------------------------------------------------------------------------
# Decoder: row p of the left factor times M_p (components >= 1), 16 (component 0), shift F + 4

ORIGINAL_INIT = decoder_plane.PlaneReconstructor.__init__
ORIGINAL_MATRIX = decoder_plane.PlaneReconstructor.matrix


def aq_init(self, container, plane, rank, *args, **kwargs) -> None:
    ORIGINAL_INIT(self, container, plane, rank, *args, **kwargs)
    key = plane_key(plane.index, plane.patch, plane.height, plane.width, plane.step)
    found = State.maps.get(key) if plane.layout == LAYOUT_PATCH else None
    self.aq_m = None if found is None else found[0]
    if self.aq_m is not None and State.variant.rule == "means" and rank:
        # what the decoder derives from the patch means it decoded
        mean_step = float(ColumnStats(1, plane.step, patches=True).steps[0])
        first = factor_integers(container, plane, "U", 1)[:, 0]
        derived = derived_map(first, plane.grid, plane.patch, mean_step, State.variant)
        State.mismatches += int(np.count_nonzero(derived != self.aq_m))
        self.aq_m = derived.astype(np.int64)
    elif self.aq_m is not None and State.variant.rule.startswith("causal") and rank:
        derived = decoder_causal(container, plane, rank, State.gs[key], State.variant)
        State.mismatches += int(np.count_nonzero(derived != self.aq_m))
        self.aq_m = derived


def aq_matrix(self, i: int) -> np.ndarray:
    if getattr(self, "aq_m", None) is None or self.rank == 0:
        return ORIGINAL_MATRIX(self, i)
    assert self.exact and self.plane.shift is not None
    r0, r1 = self.mrows[i]
    left = self._band_left(i) if self.local else self.left[r0 - self.base:r1 - self.base]
    scaled = left.astype(np.float64)
    scaled[:, 1:] *= self.aq_m[r0:r1, None]
    scaled[:, :1] *= UNIT
    right_t = (self.B.T if self.exact_kernel else self.Bt).astype(np.float64)
    return exact_rule.exact_product(scaled, self.weights, right_t,
                                    self.plane.shift + UNIT_BITS, self.loaded_means)


def install_hooks() -> None:
    encoder_plane.quantize_u = aq_quantize_u
    decoder_plane.PlaneReconstructor.__init__ = aq_init  # type: ignore[method-assign]
    decoder_plane.PlaneReconstructor.matrix = aq_matrix  # type: ignore[method-assign]


# ---------------------------------------------------------------------------------------------
# Measuring


def encoded(pixels: np.ndarray, quality: int, deblock: bool, v: Variant
            ) -> tuple[int, np.ndarray, int, bytes]:
    """(bytes with side information, decoded RGB, side bytes, the file) of one encode under
    `v` (the decoder's M stay in `State` until the next)."""
    State.variant, State.maps, State.mismatches = v, {}, 0
    today = schedule.CHROMA_STEP
    schedule.CHROMA_STEP = today if v.chroma is None else v.chroma
    try:
        data = svdcodec.encode(pixels, quality=quality, deblock=deblock)
    finally:
        schedule.CHROMA_STEP = today
    back = svdcodec.decode(data)
    planes = fmt.unpack(data).planes
    side = sum(State.maps[k][1] for k in (plane_key(p.index, p.patch, p.height, p.width, p.step)
                                           for p in planes) if k in State.maps)
    return len(data) + side, back, side, data


def restored(data: bytes, goal: np.ndarray) -> tuple[np.ndarray, int]:
    """The file decoded (with the variant's M) to its deblocked Y'CbCr samples, the ALF-like
    filter of studies/restoration_study.py ("wiener dia7 act4": 4 activity classes, fitted by
    the encoder) applied, converted as the decoder does: (RGB, the filter's stored bytes)."""
    from restoration_study import CANDIDATES, decode_samples, to_rgb
    ycc, extra, _ = CANDIDATES[RESTORATION](decode_samples(data), goal)
    return to_rgb(ycc), extra


RESTORATION = "wiener dia7 act4"


def measure_image(path: Path, names: list[str], modes: list[bool], qualities: tuple[int, ...],
                  restoration: bool = False) -> dict[tuple[str, bool], tuple[float, ...]]:
    """Per (variant, deblock): BD-rates vs JPEG (28-38 dB, 24-30 dB, luma SSIM), side bytes
    in % of the file, patches whose derived M the decoder found otherwise, and the 28-38 dB and
    SSIM BD-rates with the side bytes free. With `restoration`, also each variant with the
    deblocking filter followed by restoration_study's ALF-like filter (name + " + dia7 act4")."""
    install_hooks()
    pixels = np.asarray(Image.open(path).convert("RGB"))
    jpeg = jpeg_curve(pixels)
    lo, hi = ssim_window(jpeg)
    goal = None
    if restoration:
        from svdcodec.encoder.deblock import target_channel
        goal = np.stack([target_channel(pixels, fmt.COLOUR_YCBCR, c).reshape(pixels.shape[:2])
                         for c in range(3)], axis=-1).astype(np.float64)
    out = {}
    for deblock in modes:
        for name in names:
            curve: Curve = ([], [], [])
            filtered: Curve = ([], [], [])
            sides, free, mismatched = [], [], 0
            for q in qualities:
                size, back, side, data = encoded(pixels, q, deblock, VARIANTS[name])
                curve[0].append(size)
                curve[1].append(psnr(pixels, back))
                curve[2].append(ssim_db(pixels, back))
                sides.append(side / size)
                free.append(size - side)
                mismatched += State.mismatches
                if goal is not None and deblock:
                    rgb, extra = restored(data, goal)
                    filtered[0].append(size + extra)
                    filtered[1].append(psnr(pixels, rgb))
                    filtered[2].append(ssim_db(pixels, rgb))
            out[(name, deblock)] = (
                bd_rate(curve[0], curve[1], jpeg[0], jpeg[1], 28.0, 38.0),
                bd_rate(curve[0], curve[1], jpeg[0], jpeg[1], 24.0, 30.0),
                bd_rate(curve[0], curve[2], jpeg[0], jpeg[2], lo, hi),
                100 * float(np.mean(sides)), float(mismatched),
                bd_rate(free, curve[1], jpeg[0], jpeg[1], 28.0, 38.0),
                bd_rate(free, curve[2], jpeg[0], jpeg[2], lo, hi))
            if filtered[0]:
                out[(f"{name} + {RESTORATION}", deblock)] = (
                    bd_rate(filtered[0], filtered[1], jpeg[0], jpeg[1], 28.0, 38.0),
                    bd_rate(filtered[0], filtered[1], jpeg[0], jpeg[1], 24.0, 30.0),
                    bd_rate(filtered[0], filtered[2], jpeg[0], jpeg[2], lo, hi),
                    0.0, 0.0, math.nan, math.nan)
    print(path.stem, " ".join(f"{n}{'+db' if d else ''}: "
                              + "/".join(f"{x:+.2f}" for x in out[(n, d)][:3])
                              for n, d in out), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--first", type=int, default=1, help="first image (1-based, sorted)")
    parser.add_argument("--last", type=int, default=8, help="last image (inclusive)")
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    parser.add_argument("--deblock", choices=("on", "off", "both"), default="on")
    parser.add_argument("--qualities", type=int, nargs="*", default=list(SVDI_QUALITIES))
    parser.add_argument("--jobs", type=int, default=1, help="images measured at once")
    parser.add_argument("--restoration", action="store_true",
                        help="also with restoration_study's ALF-like filter after deblocking")
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.png"))[args.first - 1:args.last]
    names = [n for n in VARIANTS if n == "none" or not args.only or n in args.only]
    modes = {"on": [True], "off": [False], "both": [True, False]}[args.deblock]
    qualities = tuple(args.qualities)
    results: dict[tuple[str, bool], list] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for one in pool.map(measure_image, paths, [names] * len(paths),
                            [modes] * len(paths), [qualities] * len(paths),
                            [args.restoration] * len(paths)):
            for key, value in one.items():
                results.setdefault(key, []).append(value)
    print(f"\n{len(paths)} images ({paths[0].stem}..{paths[-1].stem}), effort 1, qualities "
          f"{qualities}; BD-rate vs Pillow JPEG 4:2:0: RGB PSNR 28-38 dB | 24-30 dB | luma "
          "SSIM (JPEG's 28-38 dB window) | points vs `none` in each | side info % of bytes | "
          "28-38 dB and SSIM with the side information free")
    for deblock in modes:
        base = np.nanmean(np.array(results[("none", deblock)])[:, :3], axis=0)
        for name in [n for n, d in results if d == deblock]:
            rows = np.array(results[(name, deblock)])
            high, low, ssim, side = np.nanmean(rows[:, :4], axis=0)
            gain = np.array([high, low, ssim]) - base
            label = f"{name}{' (deblock)' if deblock else ''}"
            free = ("" if np.isnan(rows[:, 5:]).all() else
                    " | ".join(f"{x:+6.2f}" for x in np.nanmean(rows[:, 5:], axis=0)))
            print(f"{label:36s} | {high:+6.2f} | {low:+6.2f} | {ssim:+6.2f} | "
                  f"{gain[0]:+5.2f} | {gain[1]:+5.2f} | {gain[2]:+5.2f} | {side:4.2f} % | "
                  f"{free}"
                  + (f" | {int(rows[:, 4].sum())} patches mismatched" if rows[:, 4].any()
                     else ""),
                  flush=True)


if __name__ == "__main__":
    main()
