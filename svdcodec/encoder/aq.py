"""Quantizing an adapted plane's U (format version 6, spec §5.5; `codec.aq` has the rule).

Row p of U's components >= 1 is quantized at its component's step times M_p / 16 (the dead
zone as ever; component 0, the patch mean, as in every plane). The M_p are the decoder's: the
map is made grid row by grid row from the integers of the rows above, as the decoder will find
them, so the bands are projected first (in threads), the map is a serial pass over the first
K' = min(K, rank) components, and the bands are then quantized with their rows' M (in
threads). The quantizer of the map pass and of the bands is one function on the same float32
coefficients: the integers the map reads are those coded.

What the rank decision and the sigma refit read is taken as `codec.refine.refitted_sigma`
needs it (`AQStats`): the squared error in plane units (row p's error in its own steps times
(M_p / 16)^2) and the sum of squares of the integers as the decoder scales them, a M_p / 16.
"""

from __future__ import annotations

import math

import numpy as np

from ..codec import aq
from ..codec.quantize import (
    FIRST_ROUNDING,
    ROUNDING,
    ColumnStats,
    optimise_levels,
)
from ..runtime import kernels
from .tuning import (
    AQ_EFFORT2_G_SCALE,
    AQ_G_SCALE,
    AQ_MAP_ROUNDING,
    AQ_MEAN_STEP,
    AQ_MEAN_STEP_UP_TO,
)


def mean_step(step: float, optimised: bool) -> float | None:
    """The patch mean's step multiplier of an adapted plane quantized at `step`, its levels
    rate-distortion optimised (effort 2) or not: with them AQ_MEAN_STEP up to the step
    AQ_MEAN_STEP_UP_TO; else None (`codec.quantize.MEAN_STEP`, as in every other plane)."""
    return AQ_MEAN_STEP if optimised and step <= AQ_MEAN_STEP_UP_TO else None


def map_rounding(optimised: bool) -> float:
    """The rounding offset of an adapted plane's map components 1 .. K' - 1 (their integers
    keep a dead zone: the decoder's map is made of them, no RDOQ runs on them), its levels
    rate-distortion optimised (effort 2) or not: AQ_MAP_ROUNDING with them, else ROUNDING."""
    return AQ_MAP_ROUNDING if optimised else ROUNDING


def row_scale(multipliers: np.ndarray, columns: int) -> np.ndarray:
    """(rows, columns) float64: 1 in column 0, M_p / 16 in the others."""
    scale = np.ones((multipliers.size, columns))
    scale[:, 1:] = (multipliers.astype(np.float64) / aq.UNIT)[:, None]
    return scale


#: The classes' M, in order, as an index for per-class tables of each row's steps.
CLASS_M = np.asarray(aq.CLASSES, dtype=np.int64)


def class_index(multipliers: np.ndarray) -> np.ndarray:
    """The position of each row's M in aq.CLASSES."""
    return np.searchsorted(CLASS_M, multipliers)


def class_table(inv_steps: np.ndarray, columns: int) -> np.ndarray:
    """(7, columns) float32: each class's inverse steps, the binary64 quotient of inv_steps
    by `row_scale` rounded once (column 0: inv_steps' own)."""
    return (inv_steps[None, :] / row_scale(CLASS_M, columns)).astype(np.float32)


def column_offsets(rounding: float | np.ndarray, columns: int) -> np.ndarray:
    """(columns,) float32: `rounding` (one, or one per column), FIRST_ROUNDING in column 0."""
    offsets = np.empty(columns, dtype=np.float32)
    offsets[:] = rounding
    offsets[:1] = FIRST_ROUNDING
    return offsets


def adapted_integers(values: np.ndarray, inv_steps: np.ndarray, classes: np.ndarray,
                     rounding: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(integers as int32 with their signs, |values| in each element's own steps, float32) of
    float32 values (rows, c) at steps 1 / inv_steps times M / 16 (column 0: times 1) of each
    row's class (`class_index`): the dead zone of `ColumnStats` with each row's step, offset
    `rounding` (one, or one per column; column 0 rounds with FIRST_ROUNDING). A row's float32
    inverse steps are taken from a table of the seven classes' (each the binary64 quotient
    rounded once)."""
    table = class_table(inv_steps, values.shape[1])
    offsets = column_offsets(rounding, values.shape[1])
    scaled = np.abs(values)
    scaled *= table[classes]
    scaled += offsets
    if scaled.size and not float(scaled.max()) < 2**31 - 1:  # (NaN too, as the kernel)
        raise OverflowError("quantized value does not fit 32 bits")
    ints = scaled.astype(np.int32)  # the floor of non-negative values
    scaled -= offsets
    negative = values.view(np.int32) >> 31  # -1 where the sign bit is set, else 0
    ints ^= negative
    ints -= negative  # two's complement negation where negative
    return ints, scaled


class AQStats(ColumnStats):
    """`ColumnStats` of an adapted plane's band whose matrix rows have the multipliers
    `multipliers` (M, 1/16). `map_columns`: the components the map reads (K'), which keep a
    dead zone, offset `map_rounding` (the decoder's map is made of them, `encoder_map`
    quantizes them alike): the run/level groups' rate-distortion optimisation, and its own
    rounding, start after them."""

    def __init__(self, columns: int, step: float, sparse: list[tuple[int, int]] | None,
                 multipliers: np.ndarray, map_columns: int,
                 rdoq_lambda: float | None = None, mean_step: float | None = None,
                 rdoq_rounding: float | None = None, rdoq_rounds: int | None = None,
                 map_rounding: float = ROUNDING) -> None:
        super().__init__(columns, step, sparse, patches=True, rdoq_lambda=rdoq_lambda,
                         mean_step=mean_step, rdoq_rounding=rdoq_rounding,
                         rdoq_rounds=rdoq_rounds)
        self.classes = class_index(multipliers)
        self.map_columns = map_columns
        self.map_rounding = map_rounding

    def add(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        values = np.asarray(values, dtype=np.float32)
        assert self.inv_steps is not None and values.shape[0] == self.classes.size
        rounding = np.full(self.columns, ROUNDING, dtype=np.float32)
        rounding[:self.map_columns] = self.map_rounding
        if self.sparse is not None:
            rounding[self.map_columns:] = self.rdoq_rounding
        ints, scaled = adapted_integers(values, self.inv_steps, self.classes, rounding)
        squared_scale = np.square(row_scale(CLASS_M, self.columns))[self.classes]
        # the error in each row's steps, times that step squared: plane units
        errors = (scaled - np.abs(ints)).astype(np.float64)
        errors *= errors
        errors *= squared_scale
        self.error += errors.sum(axis=0) * self.steps ** 2
        if self.sparse is not None:
            groups = [(max(lo, self.map_columns), hi) for lo, hi in self.sparse
                      if hi > max(lo, self.map_columns)]
            table = (self.inv_steps[None, :] / row_scale(CLASS_M, self.columns)
                     ).astype(np.float32)
            added = optimise_levels(ints, values * table[self.classes], 1.0, groups,
                                    self.rdoq_lambda, self.rdoq_rounds)
            # in each row's steps: the band's mean (M / 16)^2 stands for the rows' (an
            # estimate for the rank decision; the integers are exact either way)
            self.error += added * self.steps ** 2 * squared_scale.mean(axis=0)
        if ints.size:
            np.maximum(self.top, np.abs(ints).max(axis=0), out=self.top)
            # the integers as the decoder scales them, a M / 16 (`refitted_sigma`)
            self.squares += np.square(ints * row_scale(CLASS_M, self.columns)[self.classes]
                                      ).sum(axis=0)
        self.rows += values.shape[0]
        if out is None:
            return ints
        out[...] = ints
        return out


def log_variance_sum(patches: np.ndarray) -> float:
    """The sum of log(variance + C) over a band's patches (rows), binary64."""
    variance = patches.var(axis=1, dtype=np.float64)
    return float(np.log(variance + aq.FLOOR).sum())


def effort2_g_scale(step: float) -> float:
    """Effort 2's G scale at luma step `step`: AQ_EFFORT2_G_SCALE's points, log-linear (log
    scale against log step) between them, the end points' scales beyond them."""
    steps = [math.log(s) for s, _ in AQ_EFFORT2_G_SCALE]
    scales = [math.log(g) for _, g in AQ_EFFORT2_G_SCALE]
    return math.exp(float(np.interp(math.log(step), steps, scales)))


def plane_g(log_sums: list[float], rows: int, step: float, optimised: bool = False) -> int:
    """G's binary16 bits: AQ_G_SCALE times the geometric mean of the patches' variance + C
    (every class threshold scales with G: above 1 more patches take the finer classes), or
    `effort2_g_scale(step)` times it where the levels are rate-distortion optimised (effort 2)
    at luma step `step`."""
    scale = effort2_g_scale(step) if optimised else AQ_G_SCALE
    return aq.g_bits(scale * math.exp(sum(log_sums) / max(rows, 1)))


def encoder_map(values: list[np.ndarray], grid: tuple[int, int], patch: int, step: float,
                g: int, components: int, mean_step: float | None = None,
                rounding: float = ROUNDING) -> np.ndarray:
    """M per matrix row from the bands' coefficients (each (rows, >= components) float32, in
    row order, whole grid rows), quantized grid row by grid row as `AQStats` will quantize
    them (components >= 1 from the offset `rounding`, its `map_rounding`): the integers of
    components 0..components - 1 are those the decoder reads."""
    gh, gw = grid
    first = np.concatenate([v[:, :components] for v in values])
    inv_steps = ColumnStats(components, step, patches=True, mean_step=mean_step).inv_steps
    assert inv_steps is not None
    limits = aq.thresholds(g, step, patch)
    compiled = kernels.get()
    if compiled is not None:  # the loop below in one call
        out = np.empty(gh * gw, dtype=np.int64)
        if not compiled.aq_encoder_map(first, class_table(inv_steps, components),
                                       column_offsets(rounding, components), gw, limits,
                                       aq.mean_weight(patch), out):
            raise OverflowError("quantized value does not fit 32 bits")
        return out
    unit = class_index(np.full(first.shape[0], aq.UNIT, dtype=np.int64))
    ints0, _ = adapted_integers(first[:, :1], inv_steps[:1], unit, ROUNDING)
    means = aq.mean_energy(ints0[:, 0], grid).astype(np.float64) * aq.mean_weight(patch)
    out = np.empty((gh, gw), dtype=np.int64)
    previous: np.ndarray | None = None
    for y in range(gh):
        energy = means[y] if previous is None else np.maximum(
            means[y], aq.above_energy(previous).astype(np.float64))
        out[y] = aq.row_classes(energy, limits)
        rows = first[y * gw:(y + 1) * gw]
        ints, _ = adapted_integers(rows, inv_steps, class_index(out[y]), rounding)
        previous = aq.row_energy(ints[:, 1:], out[y])
    return out.reshape(-1)
