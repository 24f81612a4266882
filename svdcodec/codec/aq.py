"""Adaptive quantization per patch (format version 6, spec §5.5): the map of row multipliers.

In a patch layout row p of U is a patch. An adapted plane quantizes row p's components >= 1
at the step times M_p / 16 (M_p from a few classes, finer in flat and smooth patches, where
svdi loses luma SSIM to JPEG, coarser in texture, where SSIM masks) and the decoder
multiplies them back: X = (A o M) diag(W) B^T 2^-(F+4), column 0 of M (the patch mean) 16.

No map is sent: the decoder derives M grid row by grid row from integers it has already read
(the "causal" rule of studies/aq_patch_study.py): the energy E_p of the 3 patches above in
components 1..K'-1 (K' = min(K, rank)), at their own M, at least a multiple of the squared
differences of the patch means to the 8 neighbours (the first row: those alone). The class
is the number of thresholds E_p reaches; the thresholds come from the plane's G (a binary16
in PLAN: the geometric mean of the source patches' variance + C) by a fixed sequence of
binary64 operations, and E_p is an exact integer below 2^53 (each integer's magnitude taken
at most CLAMP), so every decoder finds the same classes (JavaScript Numbers included).

The numbers (the strength 0.12, C, the class table) are those the study measured best
(docs/design-notes.md, "Adaptive quantization per patch").
"""

from __future__ import annotations

import struct

import numpy as np

#: M_p in 1/UNIT: the exact product's shift grows by UNIT_BITS.
UNIT_BITS = 4
UNIT = 1 << UNIT_BITS
#: The class multipliers M (1/16): 16 * 2^(k/4) for k = -3..3, rounded, the top one capped
#: at 1.6 (26/16) as the study's variant "causal s0.12 K4" measured it.
CLASSES = (10, 11, 13, 16, 19, 23, 26)
#: The largest M: the encoder's bound on max|A o M| (spec §5.1 on the scaled integers).
LARGEST = max(CLASSES)
#: C: the variance floor of the class rule, SSIM's c2 = (0.03 * 255)^2 in plane units.
FLOOR = 58.5
#: The class boundaries as ratios of (variance + C) to G: 2^((j + 1/2) / (4 s)) for
#: j = -3..2 and the strength s = 0.12, as binary64 literals (the shortest decimal of each:
#: every language parses it to the same double). A patch of variance v is in class
#: #{j : v + C >= G * ratio_j}.
RATIOS = (0.027048017531441957, 0.1146255054005839, 0.48576597057680293,
          2.058604473286984, 8.724061861322062, 36.97128629991275)
#: The K the reference encoder writes (components 1..3 read by the map).
COMPONENTS = 4
#: Each integer's magnitude in E_p is taken at most CLAMP: E_p stays below 2^53.
CLAMP = 32767
#: E_p's mean term: (p^2 - 1) * MEAN_NUMERATOR / (MEAN_DENOMINATOR * p^2) times the sum of the
#: squared patch-mean differences; a tilt within the patch of the 8 neighbours' spread at the
#: reference encoder's mean step 0.7 step, in the units of the energy above (spec §5.5).
MEAN_NUMERATOR = 1568
MEAN_DENOMINATOR = 300
#: The energy above is in units of step^2 / (ENERGY_UNIT * p^2): 3 patches times M^2 = 256.
ENERGY_UNIT = 768


def binary16(bits: int) -> float:
    """The binary16 of these bits, exactly as a binary64."""
    return float(np.frombuffer(struct.pack("<H", bits), dtype=np.float16)[0])


def g_bits(value: float) -> int:
    """The binary16 bits of a positive G (rounded to nearest, within the finite range)."""
    half = np.float16(min(max(value, 2.0 ** -24), 65504.0))
    return int(np.frombuffer(half.tobytes(), dtype="<u2")[0])


def mean_weight(patch: int) -> float:
    """R_p = fl64(MEAN_NUMERATOR (p^2 - 1)) / fl64(MEAN_DENOMINATOR p^2): one division."""
    return float(MEAN_NUMERATOR * (patch * patch - 1)) / float(MEAN_DENOMINATOR * patch * patch)


def thresholds(g_bits_: int, step: float, patch: int) -> np.ndarray:
    """T_j = fl64(fl64(fl64(fl64(G ratio_j) - C) u) / fl64(step step)), u = 768 p^2: the
    energy at which class j + 1 starts (binary64, one rounding per operation)."""
    # numpy's binary64 scalars: the same roundings as Python's floats, and IEEE's results
    # where Python raises (a step whose square underflows to 0 gives infinite or NaN
    # thresholds, as in C and JavaScript; spec §5.5 step 3)
    g = np.float64(binary16(g_bits_))
    unit = np.float64(ENERGY_UNIT * patch * patch)
    square = np.float64(step) * np.float64(step)
    with np.errstate(all="ignore"):
        return np.array([((g * np.float64(r) - np.float64(FLOOR)) * unit) / square
                         for r in RATIOS], dtype=np.float64)


def mean_energy(first: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """The sum over the 8 neighbours (edge patches repeated) of the squared difference of the
    patch-mean integers (each |difference| at most CLAMP), int64 (gh, gw)."""
    mu = first.astype(np.int64).reshape(grid)
    padded = np.pad(mu, 1, mode="edge")
    h, w = grid
    total = np.zeros(grid, dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                d = np.minimum(np.abs(padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] - mu), CLAMP)
                total += d * d
    return total


def row_classes(energy: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """M of each patch of a grid row from its energy (binary64): CLASSES[#{j : E >= T_j}]."""
    return np.asarray(CLASSES, dtype=np.int64)[(energy[:, None] >= limits[None, :]).sum(axis=1)]


def row_energy(ints: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """sum_k (min(|a_k|, CLAMP) M)^2 over a grid row's components 1..K'-1 ((gw, K' - 1)
    integers), int64 (gw,)."""
    a = np.minimum(np.abs(ints.astype(np.int64)), CLAMP) * multipliers[:, None]
    return (a * a).sum(axis=1)


def above_energy(previous: np.ndarray) -> np.ndarray:
    """The energies of the patches above-left, above and above-right (edges repeated), summed."""
    padded = np.pad(previous, 1, mode="edge")
    return padded[:-2] + padded[1:-1] + padded[2:]


def causal_map(ints: np.ndarray, grid: tuple[int, int], patch: int, step: float,
               g_bits_: int) -> np.ndarray:
    """M per matrix row (int64, m) of an adapted plane from its integers of components
    0..K'-1 ((m, K'), K' = min(K, rank)): the rule of spec §5.5, grid row by grid row
    (`map_band` over the whole grid)."""
    gh, gw = grid
    out = np.empty(gh * gw, dtype=np.int64)
    if out.size:
        map_band(ints, gw, thresholds(g_bits_, step, patch), mean_weight(patch), out,
                 np.zeros((2, gw + 2)), True)
    return out


def map_band(ints: np.ndarray, gw: int, limits: np.ndarray, weight: float, out: np.ndarray,
             carry: np.ndarray, top: bool) -> None:
    """The rule of spec §5.5 for a band of n >= 1 grid rows, as the compiled `aq_map` makes it
    with a carry: out (integers, n grid rows) the band's M; ints (float32 or int64) its rows'
    components 0..K'-1 and, unless the band ends the grid, one row more (the patch means below
    it); top: the band starts the grid, else carry (float64, 2 x (gw + 2)) holds the row
    above's padded patch means and energies, which this leaves for the band below (integers
    below 2^53: exact in binary64)."""
    n = out.size // gw
    firsts = ints[:, 0].astype(np.int64)
    above = firsts[:gw] if top else carry[0, 1:-1].astype(np.int64)
    below = firsts[n * gw:(n + 1) * gw] if firsts.size > n * gw else firsts[(n - 1) * gw:n * gw]
    # the band's rows between the row above and the row below: their edges are those rows,
    # and mean_energy's own edge rows, dropped, are never read
    means = mean_energy(np.concatenate([above, firsts[:n * gw], below]), (n + 2, gw))
    means = means[1:n + 1].astype(np.float64) * weight
    previous = None if top else carry[1, 1:-1].astype(np.int64)
    for y in range(n):  # a serial pass over the grid rows, each row in numpy
        energy = means[y] if previous is None else np.maximum(
            means[y], above_energy(previous).astype(np.float64))
        row_m = row_classes(energy, limits)
        out[y * gw:(y + 1) * gw] = row_m
        previous = row_energy(ints[y * gw:(y + 1) * gw, 1:], row_m)
    carry[0] = np.pad(firsts[(n - 1) * gw:n * gw], 1, mode="edge")
    carry[1] = np.pad(previous, 1, mode="edge")


def scaled_left(left: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
    """A o M of a band's left factor (rows, r) integers (float32 or int64: a copy of the same
    type): column 0 times 16, columns >= 1 times the row's M. In binary32 every product
    below 2^24 is exact, and one at or above it stays there (the bound refuses it)."""
    out = left * multipliers.astype(left.dtype)[:, None]
    if out.shape[1]:
        out[:, 0] = left[:, 0] * UNIT
    return out
