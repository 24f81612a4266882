"""Coding one plane: its factorization in each candidate layout (everything that does not depend
on the quantizer step), then, at a step, the quantized factors, the rank decision and the blocks.

Patch layouts with at least as many patches as samples per patch (every real photo) stream:
the Gram matrix is summed band by band, and each step projects the bands on the basis again, so
no full-size float plane, matrix or factor is kept; a large plane's quantized U keeps only its
first and last columns beside its symbols (`DROP_U_BYTES`). Other matrices (plain layout, tiny
images) keep their in-memory factors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ..codec import aq as adaptive
from ..codec.coding import (
    END_OF_ROW,
    RUN_ESCAPE,
    VALUE_ESCAPE,
    band_symbols,
    join_symbols,
)
from ..codec.factorize import basis, energy, factorize, sub_gram, tiles_exactly
from ..codec.layout import grid as patch_grid
from ..codec.layout import quarter_patches, to_matrix
from ..codec.quantize import (
    ColumnStats,
    choose_rank,
    column_entropy_bits,
    component_steps,
    entropy_bits,
    finest_step,
)
from ..codec.refine import fit_basis, projection, refitted_sigma, stored_basis
from ..errors import SvdiError
from ..format import LAYOUT_PATCH, MAX_RANK, NO_AQ, SPARSE, Block, Plane
from ..format.writer import pack_record
from ..runtime import band_sizes
from ..runtime.band_sizes import row_bands
from ..runtime.scratch import ThreadBuffers
from ..runtime.threads import defer, run_bands, threaded_blas
from . import aq as aq_encoder
from . import tuning
from .blocks import Symbols, component_groups, dense_block, plane_blocks, small_plane
from .source import PlaneSource

Band = tuple[int, int]  # plane rows [y0, y1)
INT16_MAX = int(np.iinfo(np.int16).max)

#: Planes of at most this many samples keep their patch matrix in each patch size once one of
#: its bands is asked for (4 bytes a sample a size): a small plane's Gram matrix, layout sample,
#: whole-plane coding and fit then read the same patches instead of converting the pixels
#: again for each (a strip is a slice of the whole: the same bits). Larger planes stream.
CACHED_PATCH_SAMPLES = 1 << 19
#: A whole streaming plane's coding keeps only the first and the last columns of U's integers
#: when all of them would take at least this many bytes (16-bit): the others are coded as
#: symbols band by band, and rebuilt from those where the rank decision needs them
#: (`QuantizedU`), at a cost a small plane need not pay.
DROP_U_BYTES = 1 << 22
#: The last columns kept: rank // TAIL_PART of them (at least one), those the rank decision
#: reads first, scanning from the last component down (it rebuilds any other it reads).
TAIL_PART = 4
#: Names of a band's arrays in a `ThreadBuffers` (`quantize_u`): its patches projected on the
#: basis, and their integers where only some columns are kept.
PROJECTED, INTEGERS = "encoder projected", "encoder integers"


class CachingSource(PlaneSource):
    """A `PlaneSource` whose small planes' patches are computed whole once per patch size
    (where the patches twice as big are kept and tile the plane exactly, moved from those
    instead: patch4 after the patch8 of the Gram matrix, the usual case)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._patches: dict[tuple[int, int], np.ndarray] = {}

    def patches(self, i: int, y0: int, y1: int, side: int,
                scratch: ThreadBuffers | None = None) -> np.ndarray:
        h, w = self.shapes[i]
        if h * w > CACHED_PATCH_SAMPLES or y0 % side or (y1 % side and y1 != h):
            return super().patches(i, y0, y1, side, scratch)
        whole = self._patches.get((i, side))
        if whole is None:  # planes run concurrently, never the same plane's first band
            big = self._patches.get((i, 2 * side))
            whole = (quarter_patches(big, side, w // (2 * side))
                     if big is not None and tiles_exactly(side, h, w)
                     else super().patches(i, 0, h, side))
            whole = self._patches.setdefault((i, side), whole)
        per_row = -(-w // side)
        return whole[y0 // side * per_row:-(-y1 // side) * per_row]

    def release(self, planes: list[int]) -> None:
        super().release(planes)
        for key in [k for k in list(self._patches) if k[0] in planes]:  # (others may add)
            del self._patches[key]


@dataclass
class RankRule:
    """How many components a plane keeps: `rank` at most (None: any), or the fewest holding the
    fraction `energy` of sum(sigma^2); with either set, the rank is not chosen by rate. And
    whether the kept integers of U's run/level groups are rate-distortion optimised
    (`optimise_levels`, effort 2: they cost the encode more than they save at effort 1)."""

    rank: int | None = None
    energy: float | None = None
    optimise_levels: bool = False
    #: adaptive quantization per patch of plane 0 (format version 6, spec §5.5): K, 0 for none
    adapt: int = 0
    #: the Lagrange multiplier of `optimise_levels` (None: codec.quantize.RDOQ_LAMBDA), the
    #: rounding its integers start from (None: RDOQ_ROUNDING) and its rounds (None: RDOQ_ROUNDS)
    rdoq_lambda: float | None = None
    rdoq_rounding: float | None = None
    rdoq_rounds: int | None = None

    @property
    def fixed(self) -> bool:
        return self.rank is not None or self.energy is not None


@dataclass
class Candidate:
    """A plane in one layout and its basis: everything that does not depend on the step."""

    plane: Plane
    sigma: np.ndarray  # (r,) float64
    Q: np.ndarray  # (n, r) float32, the V side (V Sigma)
    total_energy: float
    basis: np.ndarray | None = None  # (n, r) float32 unit vectors, streaming candidates
    P: np.ndarray | None = None  # (m, r) float32 U side (U Sigma), in-memory candidates
    #: A basis fitted to its quantized coefficients (`fitted_candidate`): `basis` is then the
    #: least-squares projection on the stored basis, Q its integers times the step, and the
    #: rank is the fit's, not chosen again by rate.
    fitted: bool = False


@dataclass
class BandPart:
    """One band of a streaming candidate quantized at one rank and step: its U integers, their
    statistics and its run/level symbols per sparse component group."""

    integers: np.ndarray
    stats: ColumnStats
    symbols: list[Symbols]


@dataclass
class QuantizedU:
    """The U side of a candidate at one rank and step.

    `integers` holds every column, or only the first (the dense one) when the others were
    dropped once their symbols were made (`quantize_u`'s `first_only`; `tail` then keeps the
    last columns, those the rank decision reads first): `column` and `group_symbols` rebuild
    what the rank decision and a cut group ask for from the symbols, which hold the same
    integers."""

    integers: np.ndarray  # (m, rank) or (m, min(rank, 1)), the narrowest safe integer type
    stats: ColumnStats
    symbols: dict[tuple[int, int], list[Symbols]]  # per sparse group, per band (streaming)
    parts: dict[Band, BandPart]  # per band (streaming)
    tail: np.ndarray | None = None  # (t, m): the last t columns, if `integers` lacks them
    #: an adapted plane's M per matrix row (spec §5.5) and its G (binary16 bits), else None, 0
    row_m: np.ndarray | None = None
    g: int = 0
    #: per sparse group whose columns were asked for: `_by_column`
    _nonzero: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict)

    def column(self, j: int) -> np.ndarray:
        """Column j of the integers, or, if dropped, an array of the same type, length and
        values in another order: `entropy_bits` reads no more (its non-zero integers, then
        zeros)."""
        if j < self.integers.shape[1]:
            return self.integers[:, j]
        if self.tail is not None and j >= self.stats.columns - self.tail.shape[0]:
            return self.tail[j - self.stats.columns]
        lo, hi = next(g for g in self.symbols if g[0] <= j < g[1])
        if (lo, hi) not in self._nonzero:
            self._nonzero[(lo, hi)] = self._by_column(lo, hi)
        values, starts = self._nonzero[(lo, hi)]
        out = np.zeros(self.integers.shape[0], dtype=self.dtype)
        mine = values[starts[j - lo]:starts[j - lo + 1]]
        out[:mine.size] = mine
        return out

    def _by_column(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """The non-zero integers of columns lo..hi (a sparse group), column after column,
        and where each column's start (count + 1 offsets), from its symbols."""
        columns, values = [], []
        for symbols, xrun, xval in self.symbols[(lo, hi)]:
            column, eor = symbol_columns(symbols, xrun)
            coded = ~eor
            columns.append(column[coded].astype(np.int16))  # MAX_RANK columns at most
            values.append(symbol_values(symbols, xval, self.dtype)[coded])
        column = np.concatenate(columns) if columns else np.zeros(0, np.int16)
        order = np.argsort(column, kind="stable")
        starts = np.zeros(hi - lo + 1, dtype=np.int64)
        np.cumsum(np.bincount(column, minlength=hi - lo), out=starts[1:])
        return (np.concatenate(values)[order] if values else np.zeros(0, self.dtype)), starts

    def group_symbols(self, lo: int, hi: int) -> Symbols | None:
        """The joined symbols of columns lo..hi if the integers hold them no longer (a group
        cut by the rank decision: the whole group's symbols less those of the columns cut,
        which close each row: the same as made from the columns), else None (the caller makes
        them from the integers)."""
        if hi <= self.integers.shape[1]:
            return None
        group = next(g for g in self.symbols if g[0] == lo)
        parts = []
        for symbols, xrun, xval in self.symbols[group]:
            column, eor = symbol_columns(symbols, xrun)
            keep = eor | (column < hi - lo)
            run_escaped = (symbols >> 4) == RUN_ESCAPE
            value_escaped = (symbols & 15) == VALUE_ESCAPE
            parts.append((symbols[keep], xrun[keep[run_escaped]], xval[keep[value_escaped]]))
        return join_symbols(parts)

    @property
    def dtype(self) -> np.dtype:
        return self.integers.dtype


def symbol_columns(symbols: np.ndarray, xrun: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column of each symbol of a band's run/level stream (`codec.coding.band_symbols`,
    which the encoder made: not checked) within its row, and where the row ends are: the
    run + 1 of the symbols of a row, summed."""
    eor = symbols == END_OF_ROW
    # int32: a row's runs and values sum to its width, and a band holds under 2^31 samples
    advance = (symbols >> 4).astype(np.int32)
    escaped = advance == RUN_ESCAPE
    advance[escaped] += xrun
    advance += 1
    total = np.cumsum(advance, dtype=np.int32)
    ends = np.flatnonzero(eor)
    row_sums = np.diff(total[ends], prepend=0)  # each row's advances, its end's included
    advance[ends] -= row_sums  # the end of a row takes the row back to column -1
    column = np.cumsum(advance, dtype=np.int32)
    column -= 1
    return column, eor


def symbol_values(symbols: np.ndarray, xval: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The integer of each symbol of a band's run/level stream (row ends: 0)."""
    values = (symbols & 15).astype(dtype)
    values -= 8  # a row end's is 0
    values[values == VALUE_ESCAPE - 8] = xval
    return values


@dataclass
class CodedPlane:
    """One candidate coded at one step: its PLAN record, block records per group (version 5,
    spec §4.2: (factor, record)), and its cost."""

    plane: Plane
    groups: list[list[tuple[str, bytes]]]
    nbytes: int
    distortion: float
    parts: dict[Band, BandPart] = field(default_factory=dict)  # a sample's band parts
    #: the singular values stored, and max |A| and max |B| of the blocks' integers: what the
    #: exact reconstruction's shift is chosen from (spec §5.1)
    sigma: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    magnitudes: tuple[int, int] = (0, 0)
    #: an adapted plane's M per matrix row (spec §5.5), what its parts' integers are scaled by
    row_m: np.ndarray | None = None
    #: an adapted plane's patch mean multiplier (`encoder.aq.mean_step`; None: MEAN_STEP)
    mean_step: float | None = None
    #: (A, B) of the kept components, the integers the blocks code, where the whole plane's
    #: are held anyway (at most DROP_U_BYTES of U; not an adapted plane's): the deblocking
    #: judgement renders from them instead of reading the file back
    integers: tuple[np.ndarray, np.ndarray] | None = None
    #: coded with a basis fitted to its quantized coefficients (`fitted_candidate`): an image
    #: svdi decoded codes so, and some others (rendered graphics, photos once JPEGs)
    fitted: bool = False
    #: the RMS error the exact weights' rounding adds to the plane, in quantizer errors
    #: (step / sqrt(12)): set by `schedule.exact_plane`
    drift: float = 0.0


#: Plane's fields, in the order its constructor takes them: what `plane_with` copies.
PLANE_FIELDS = ("index", "layout", "patch", "height", "width", "rank", "step", "shift",
                "deblock", "aq")
if tuple(f.name for f in fields(Plane) if f.init) != PLANE_FIELDS:  # (not an assert: -O)
    raise ImportError("format.Plane's fields changed: update encoder.plane.PLANE_FIELDS")


def plane_with(p: Plane, *, shift: int | None = None,
               deblock: tuple[int, int, int] | None = None) -> Plane:
    """`p` with its exact shift and/or deblocking filter set: dataclasses.replace of these
    fields, without its generic walk over every field (a few per plane of every encode)."""
    return Plane(p.index, p.layout, p.patch, p.height, p.width, p.rank, p.step,
                 p.shift if shift is None else shift,
                 p.deblock if deblock is None else deblock, p.aq)


def streams(layout: int, patch: int, height: int, width: int) -> bool:
    """Whether a plane in this layout is factorized and quantized band by band."""
    return layout == LAYOUT_PATCH and -(-height // patch) * -(-width // patch) >= patch * patch


def plane_bands(source: PlaneSource, index: int) -> list[Band]:
    """The encoder's bands of plane `index`: whole patch rows of every patch size."""
    h, w = source.shapes[index]
    return row_bands(h, band_sizes.BAND_UNIT, 1, -(-band_sizes.BAND_SAMPLES // w))


def layout_sample(source: PlaneSource, index: int) -> list[Band] | None:
    """Evenly spaced rows of plane `index` on which its layout is chosen, 1 in LAYOUT_SAMPLE:
    whole bands of a large plane, strips of one band unit of a smaller one; None if the plane
    has too few strips for a sample to stand for it (it is then costed whole)."""
    bands = plane_bands(source, index)
    full = [b for b in bands if (b[1] - b[0]) % band_sizes.BAND_UNIT == 0]
    every = tuning.LAYOUT_SAMPLE
    if len(full) >= every * tuning.MIN_SAMPLE_BANDS:
        return full[every // 2::every]
    unit, height = band_sizes.BAND_UNIT, source.shapes[index][0]
    strips = [(y, y + unit) for y in range(0, height - unit + 1, unit)]
    if len(strips) < every * tuning.MIN_SAMPLE_STRIPS:
        return None
    return strips[every // 2::every]


def patch_grams(source: PlaneSource, index: int, sides: list[int]) -> dict[int, np.ndarray]:
    """Gram matrix of plane `index` in each patch size, summed over bands in order."""
    bands = plane_bands(source, index)
    h, w = source.shapes[index]
    derived = [s for s in sides if 2 * s in sides and tiles_exactly(s, h, w)]
    direct = [s for s in sides if s not in derived]

    scratch = ThreadBuffers(kept=False)  # one array of each per thread for the bands

    def gram(i: int) -> list[np.ndarray]:
        return [(a.T @ a) for a in (source.patches(index, *bands[i], side, scratch)
                                    for side in direct)]
    totals = [np.zeros((side * side, side * side)) for side in direct]
    for part in run_bands(gram, len(bands)):
        for total, g in zip(totals, part):
            total += g  # float64 sums of the float32 band products, in band order
    grams = dict(zip(direct, totals))
    for side in sorted(derived, reverse=True):  # 8 from 16 before 4 from 8
        grams[side] = sub_gram(grams[2 * side], side)
    return grams


def plane_grams(source: PlaneSource, index: int, layouts: list[tuple[int, int]]
                ) -> dict[int, np.ndarray]:
    """The Gram matrix of plane `index` in each streaming (layout, patch) of `layouts`, by
    patch side."""
    h, w = source.shapes[index]
    if (h, w) != source.shapes[0]:
        source.keep(index, plane_bands(source, index))
    sides = [side for layout, side in layouts if streams(layout, side, h, w)]
    return patch_grams(source, index, sides) if sides else {}


def layout_features(grams: dict[int, np.ndarray], rows: dict[int, int], step: float,
                    chroma: bool) -> list[float]:
    """What `predicted_side` weighs: from the eigenvalues of the patch4 and patch8 Gram
    matrices, for a water level theta = k step^2 at each k of LAYOUT_MODEL_LEVELS, with v the
    variance of each component's coefficients (eigenvalue / matrix rows), per pixel: the
    Gaussian rate sum(1/2 log2(1 + v / theta)), the distortion sum(theta v / (v + theta)) /
    step^2 and the percentage of components with v > theta; patch4's less patch8's, then 1,
    the chroma flag and log(step)."""
    per_side = []
    # every level at once, one row each: the same operations on each element, and each
    # row's sum is numpy's pairwise sum of a contiguous row, as np.sum of that row alone
    thetas = np.array([level * step * step for level in tuning.LAYOUT_MODEL_LEVELS])[:, None]
    for side in (4, 8):
        v = np.maximum(np.linalg.eigvalsh(grams[side]), 0.0) / rows[side]
        pixels = rows[side] * side * side
        rates = (0.5 * np.log2(1.0 + v / thetas)).sum(axis=1).tolist()
        distortions = (thetas * v / (v + thetas)).sum(axis=1).tolist()
        above = np.count_nonzero(v > thetas, axis=1).tolist()
        features = []
        for rate, distortion, count in zip(rates, distortions, above):
            features += [rate * rows[side] / pixels,
                         distortion * rows[side] / (pixels * step * step),
                         100.0 * count * side * side / pixels]
        per_side.append(features)
    return [a - b for a, b in zip(*per_side)] + [1.0, float(chroma), math.log(step)]


def predicted_side(grams: dict[int, np.ndarray], rows: dict[int, int], step: float,
                   chroma: bool, bias: float = 0.0) -> int | None:
    """The patch side, 4 or 8, whose coding at `step` `tuning.LAYOUT_MODEL` predicts to cost
    less (D + lambda R), from the two Gram matrices' eigenvalues alone: no eigenvectors of
    the other side, no coding in both (`layout_features`; studies/layout_model.py fits it).
    None where the score is within LAYOUT_MODEL_MARGIN of the boundary: too close to call.
    `bias` is added to the score (positive: towards patch 4)."""
    x = layout_features(grams, rows, step, chroma)
    score = sum(w * value for w, value in zip(tuning.LAYOUT_MODEL, x)) + bias
    if abs(score) <= tuning.LAYOUT_MODEL_MARGIN:
        return None
    return 4 if score > 0 else 8


def factorize_plane(source: PlaneSource, index: int, layouts: list[tuple[int, int]],
                    rule: RankRule, grams: dict[int, np.ndarray] | None = None
                    ) -> list[Candidate]:
    """Plane `index` factorized in each (layout, patch) (a plain layout's whole-plane matrix
    exists only while this runs). `grams`: `plane_grams` of these layouts, if computed."""
    h, w = source.shapes[index]
    if grams is None:
        grams = plane_grams(source, index, layouts)
    whole = None
    candidates = []
    for layout, side in layouts:
        plane = Plane(index, layout, side, h, w, 0, 1.0)
        limit = min(*plane.matrix_shape, MAX_RANK)
        if rule.rank is not None:
            limit = min(limit, rule.rank)
        if side in grams:
            sigma, unit_basis = basis(grams[side], limit)
            candidates.append(Candidate(plane, sigma, unit_basis * sigma.astype(np.float32),
                                        float(np.trace(grams[side])), basis=unit_basis))
            continue
        if whole is None:
            whole = source.rows(index, 0, h)
        matrix = to_matrix(whole, side if layout == LAYOUT_PATCH else 0)
        with threaded_blas():
            f = factorize(matrix, limit, requested=rule.rank is not None,
                          energy=rule.energy)
        candidates.append(Candidate(plane, f.sigma, f.Q, energy(matrix), P=f.P))
    return candidates


def energy_rank(candidate: Candidate, fraction: float) -> int:
    """The fewest components holding `fraction` of the plane's energy."""
    cumulative = np.cumsum(candidate.sigma ** 2)
    need = fraction * candidate.total_energy
    return min(int(np.searchsorted(cumulative, need * (1 - 1e-12))) + 1, candidate.sigma.size)


def quantize_u(source: PlaneSource, candidate: Candidate, rank: int, step: float,
               bands: list[Band] | None = None, done: dict[Band, BandPart] | None = None,
               optimise: bool = False, first_only: bool = False,
               symbols: bool = True, adapt: int = 0, rule: RankRule | None = None,
               mean_step: float | None = None) -> QuantizedU:
    """The integers of the U side, their stats, and (`symbols`) the symbols of each sparse
    group at full rank, band by band (while the band is in cache: the rank decision usually
    keeps them all).
    `bands`: only the matrix rows of these plane rows (whole patch rows), stacked. `done`:
    parts of bands computed before at the same rank and step (the layout sample), taken as they
    are: every band is computed on its own, so the result is the same (they hold symbols if
    these do). `first_only`: keep only the first and the last columns of the integers (a
    streaming candidate, with `symbols`): the others are in their groups' symbols (the whole U
    of Y' of a 19 MP image is 36 MiB at 16-bit integers). `adapt`: K of adaptive
    quantization (spec §5.5; a streaming candidate), 0 for none: the bands are projected, the
    map made of the first min(K, rank) components, then the bands quantized with it (`done`
    is not taken: its bands were quantized with another map); `rule`: whose RDOQ settings
    (`rdoq_lambda`, `rdoq_rounding`, `rdoq_rounds`) `optimise` takes (None: the defaults);
    `mean_step`: the adapted plane's patch mean multiplier (`encoder.aq.mean_step`; None:
    MEAN_STEP)."""
    n = candidate.plane.matrix_shape[1]
    rdoq = ({} if rule is None else
            {"rdoq_lambda": rule.rdoq_lambda, "rdoq_rounding": rule.rdoq_rounding,
             "rdoq_rounds": rule.rdoq_rounds})
    # With `optimise`, a patch layout's run/level coded groups: their integers
    # rate-distortion optimised (`optimise_levels`). Not a fitted basis's, which must find a decoded image's integers
    # again (generation stability), nor a plain layout's, whose factors keep the dead zone's
    # error bound (a centred PCA's orthonormality, docs/arrays.md).
    in_patches = candidate.plane.layout == LAYOUT_PATCH
    sparse = (component_groups(rank, small_plane(candidate.plane))[1:] if optimise and in_patches and not candidate.fitted
              else None)
    # Each component at its own step (`component_steps`) in a patch layout (a fitted basis's
    # too, `fit_basis` finds a decoded image's integers at those steps); not in a plain layout.
    own_steps = in_patches
    if candidate.P is not None:  # factorized whole (a plane too narrow to stream)
        stats = ColumnStats(rank, step, sparse, own_steps, **rdoq)
        return QuantizedU(stats.add(sample_rows(candidate, bands)[:, :rank]), stats, {}, {})
    assert candidate.basis is not None
    bands = plane_bands(source, candidate.plane.index) if bands is None else bands
    patch, per_row = candidate.plane.patch, candidate.plane.grid[1]
    starts = np.cumsum([0] + [-(-(y1 - y0) // patch) * per_row for y0, y1 in bands])
    unit_basis = np.ascontiguousarray(candidate.basis[:, :rank])
    # |P_ij| <= |row i| |column j| <= sqrt(n) * 255 |column j| in plane units (chroma and
    # scaled samples too; the columns are unit vectors unless the basis is fitted).
    longest = (float(np.linalg.norm(unit_basis, axis=0).max(initial=0.0))
               if candidate.fitted else 1.0)
    finest = step * (finest_step(rank, mean_step if adapt else None) if own_steps else 1.0)
    if adapt:  # the finest row's step
        finest *= min(adaptive.CLASSES) / adaptive.UNIT
    small = math.sqrt(n) * 256.0 * longest / finest + 2 < INT16_MAX
    dtype = np.int16 if small else np.int32
    kept = min(rank, 1) if first_only else rank
    A = np.empty((int(starts[-1]), kept), dtype=dtype)
    # one row per column: numpy copies a column into a contiguous row faster than into a
    # column of a matrix
    tail = (np.empty((max(1, rank // TAIL_PART), int(starts[-1])), dtype=dtype)
            if kept < rank else None)
    groups = component_groups(rank, small_plane(candidate.plane))[1:] if symbols else []
    row_m, g = None, 0
    map_rounding = aq_encoder.map_rounding(optimise)
    if adapt and rank:
        done = None
        map_columns = min(adapt, rank)

        def project(i: int) -> tuple[np.ndarray, float]:
            a = source.patches(candidate.plane.index, *bands[i], patch)
            return a @ unit_basis, aq_encoder.log_variance_sum(a)
        projected = run_bands(project, len(bands))
        g = aq_encoder.plane_g([x for _, x in projected], int(starts[-1]), step, optimise)
        coefficients = [v for v, _ in projected]
        row_m = aq_encoder.encoder_map(coefficients, (int(starts[-1]) // per_row, per_row),
                                       patch, step, g, map_columns, mean_step, map_rounding)

    scratch = ThreadBuffers(kept=False)  # one array of each per thread for the bands

    def band(i: int) -> BandPart:
        y0, y1 = bands[i]
        if row_m is None:
            a = source.patches(candidate.plane.index, y0, y1, patch, scratch)
            stats = ColumnStats(rank, step, sparse, own_steps, **rdoq)
            values = np.matmul(a, unit_basis, out=scratch.get(
                PROJECTED, a.shape[0] * rank).reshape(a.shape[0], rank))
        else:
            stats = aq_encoder.AQStats(rank, step, sparse, row_m[starts[i]:starts[i + 1]],
                                       map_columns, mean_step=mean_step,
                                       map_rounding=map_rounding, **rdoq)
            values = coefficients[i]
        mine = A[starts[i]:starts[i + 1]]
        if tail is None:
            ints = stats.add(values, out=mine)
        else:
            ints = stats.add(values, out=scratch.get(INTEGERS, values.size, dtype).reshape(
                values.shape))
            keep_columns(ints, mine, tail, starts[i])
        return BandPart(mine, stats, [band_symbols(ints, lo, hi) for lo, hi in groups])
    done = done or {}
    todo = [i for i, b in enumerate(bands) if b not in done]
    computed = dict(zip(todo, run_bands(lambda k: band(todo[k]), len(todo))))
    parts = []
    for i, b in enumerate(bands):
        if i not in computed:
            if tail is None:
                A[starts[i]:starts[i + 1]] = done[b].integers
            else:
                keep_columns(done[b].integers, A[starts[i]:starts[i + 1]], tail, starts[i])
        parts.append(computed.get(i) or done[b])
    by_group = {g: [p.symbols[k] for p in parts] for k, g in enumerate(groups)}
    return QuantizedU(A, ColumnStats.combine([p.stats for p in parts]), by_group,
                      dict(zip(bands, parts)), tail, row_m=row_m, g=g)


def keep_columns(ints: np.ndarray, first: np.ndarray, tail: np.ndarray, at: int) -> None:
    """A band's integers (rows, rank) into `first` (rows, 1) and rows at.. of `tail`
    (t, m): the columns `quantize_u` keeps with `first_only`."""
    rows, rank = ints.shape
    if rank:
        first[:, 0] = ints[:, 0]
    for k in range(tail.shape[0]):
        tail[k, at:at + rows] = ints[:, rank - tail.shape[0] + k]


def sample_rows(candidate: Candidate, bands: list[Band] | None) -> np.ndarray:
    """The U side of an in-memory candidate, or its matrix rows of the sampled plane rows
    (whole patch rows), stacked as `quantize_u` stacks the streamed bands."""
    assert candidate.P is not None
    if bands is None:
        return candidate.P
    side, per_row = max(candidate.plane.patch, 1), candidate.plane.grid[1]
    return np.concatenate([candidate.P[y0 // side * per_row:-(-y1 // side) * per_row]
                           for y0, y1 in bands])


def code_plane(source: PlaneSource, candidate: Candidate, step: float, rule: RankRule,
               measure: bool, sample: list[Band] | None = None,
               done: dict[Band, BandPart] | None = None, keep_parts: bool = False,
               limit: int | None = None) -> CodedPlane:
    """The plane coded at `step`. With a sample of bands, only those rows are coded and the U
    side's error, bits and bytes are scaled up by the sampled fraction: an estimate of the
    plane's cost, for choosing its layout. `done`: the sample's band parts, when coding the
    whole plane in the layout chosen from it. `measure`: compute the distortion model.
    `keep_parts`: return the band parts of a whole-plane coding too."""
    c = candidate
    rank = energy_rank(c, rule.energy) if rule.energy is not None else c.sigma.size
    rank = rank if limit is None else min(rank, limit)  # (an adapted plane coded again)
    # A whole streaming plane whose band parts are not returned keeps U's first and last
    # columns only where U is large (DROP_U_BYTES); patch layouts only, whose sparse groups
    # are always run/level coded (a plain layout's may be coded dense, from the columns).
    # Such a plane's symbols are made band by band at full rank, its sample's too (the whole
    # coding takes the sample's parts as they are). A smaller U is kept whole: its symbols
    # are made once the rank is chosen, for the kept components only (at full rank, the
    # group the rank decision cuts would be made twice and those beyond it in vain).
    large = c.P is None and c.plane.layout == LAYOUT_PATCH \
        and c.plane.matrix_shape[0] * rank * 2 >= DROP_U_BYTES
    first_only = sample is None and not keep_parts and large
    adapt = adapted_components(c, rule)
    mean_step = aq_encoder.mean_step(step, rule.optimise_levels) if adapt else None
    try:
        u = quantize_u(source, c, rank, step, sample, done, rule.optimise_levels, first_only,
                       symbols=large, adapt=adapt, rule=rule, mean_step=mean_step)
        stats_b = ColumnStats(rank, step)
        B = stats_b.add(c.Q[:, :rank])
    except OverflowError:
        raise SvdiError("quantizer step too small for this data") from None
    A = u.integers
    p = c.plane
    height = p.height if sample is None else sum(y1 - y0 for y0, y1 in sample)
    # The record of each block packed, by id(block): the entry holds the block, so that no
    # other block (whole_v's rejected trial is dropped) can take its id while the dict lives
    records: dict[int, tuple[Block, bytes]] = {}

    def pack(block: Block) -> bytes:
        if id(block) not in records:
            records[id(block)] = (block, pack_record(block, tuning.ZSTD_LEVEL))
        return records[id(block)][1]

    def first_u() -> Block:
        """U's first column as its dense block (on the whole patch grid: a large plane's
        largest block), packed; it does not depend on the rank."""
        # Plane.grid of the coded rows
        grid = patch_grid(height, p.width, p.patch if p.layout == LAYOUT_PATCH else 0)
        block = dense_block("U", p.index, 0, A[:, :1], grid)
        pack(block)
        return block
    # made by an idle thread while this one chooses the rank and joins the symbols
    first = defer(first_u) if A.shape[1] else None
    sampled = c.plane.matrix_shape[0] / max(A.shape[0], 1)  # 1 unless sampled
    error_a = u.stats.error * sampled
    r = rank
    if not rule.fixed and not c.fitted and r:
        r = choose_rank(c.sigma[:rank], error_a, stats_b.error, u.stats.most_bits() * sampled,
                        lambda i: entropy_bits(u.column(i)) * sampled, column_entropy_bits(B),
                        step)
    # A component whose quantized U or V is all zero contributes nothing: drop the tail.
    alive = np.flatnonzero(u.stats.nonzero()[:r] & stats_b.nonzero()[:r])
    r = int(alive[-1]) + 1 if alive.size else 0
    if u.row_m is not None and sample is None and min(adapt, r) < min(adapt, rank):
        # The decoder's map reads components 1..min(K, r) - 1: quantized again at this rank
        # (its map made of those), or, if that rank does not hold, without adaptation.
        again = replace(rule, rank=r, energy=None) if r else replace(rule, adapt=0)
        coded = code_plane(source, c, step, again, measure, sample, None, keep_parts, r)
        if coded.plane.rank != r and again.adapt:
            coded = code_plane(source, c, step, replace(rule, adapt=0), measure, sample, None,
                               keep_parts)
        return coded
    distortion = 0.0
    if measure:  # the model of choose_rank: discarded energy plus quantization error
        gain = c.sigma[:r] ** 2 - error_a[:r] - stats_b.error[:r]
        distortion = c.total_energy - float(gain.sum())
    aq_fields = (adapt, u.g) if u.row_m is not None and r else NO_AQ
    plane = Plane(p.index, p.layout, p.patch, height, p.width, r, step, aq=aq_fields)
    # a component quantized at step * m_k is stored with sigma_k / m_k (`component_steps`)
    sigma = (c.sigma[:r] * (step / u.stats.steps[:r])).astype(np.float32)
    if tuning.REFIT_SIGMA and sample is None and p.layout == LAYOUT_PATCH and not c.fitted:
        # The weights step^2 / sigma refitted to the stored integers (`refitted_sigma`); not
        # a fitted basis's, whose integers must be found again from a decoded image, nor a
        # plain layout's, whose sigma are a PCA's (docs/arrays.md), nor a sample's (the
        # layout choice reads its bytes alone).
        sigma = refitted_sigma(c.sigma[:r], c.Q[:, :r], B[:, :r], u.stats.squares[:r],
                               stats_b.squares[:r], u.stats.error[:r], step, u.stats.steps[:r])
    small = small_plane(c.plane)
    sparse_groups = component_groups(r, small)[1:]
    known = [g for g in sparse_groups if g in u.symbols]
    # largest first, so that no large group starts last while the other threads idle
    known.sort(key=lambda g: -sum(part[0].size for part in u.symbols[g]))
    # then the groups the rank decision cut whose integers were dropped: rebuilt from their
    # whole group's symbols (`group_symbols`) in the same bands, so that a large plane's
    # last group is rebuilt and packed by a thread that is done while another packs the first
    known += [g for g in sparse_groups if g not in u.symbols and g[1] > A.shape[1]]

    def joined(k: int) -> Block | Symbols:
        """Group k's symbols joined (or, cut by the rank, rebuilt); in a patch layout, as its
        block, packed (the sparse groups' records, a large plane's largest, made while U's
        first column is)."""
        lo, hi = known[k]
        symbols = (join_symbols(u.symbols[known[k]]) if known[k] in u.symbols
                   else u.group_symbols(lo, hi))
        assert symbols is not None  # (its integers were dropped: `group_symbols` makes them)
        if p.layout != LAYOUT_PATCH:  # a plain layout's group may be coded dense instead
            return symbols
        block = Block("U", p.index, lo, hi - lo, SPARSE, symbols)
        pack(block)
        return block
    made = dict(zip(known, run_bands(joined, len(known)))) if known else {}
    u_blocks = {g: x for g, x in made.items() if isinstance(x, Block)}
    u_symbols = {g: x for g, x in made.items() if not isinstance(x, Block)}
    for lo, hi in sparse_groups:
        cut = None if (lo, hi) in made else u.group_symbols(lo, hi)
        if cut is not None:
            u_symbols[(lo, hi)] = cut
    # (without the dropped columns, every sparse group's symbols are given: plane_blocks
    # then reads the first column only)
    if first is not None and not r:
        first.cancel()
    blocks = plane_blocks(plane, A[:, :r], sigma, B[:, :r], u_symbols, small, pack,
                          first.result() if first is not None and r else None, u_blocks)
    flat = [b for group in blocks for b in group]
    packed = run_bands(lambda i: pack(flat[i]), len(flat))
    entries = iter(zip([b.factor for b in flat], packed))
    groups = [[next(entries) for _ in group] for group in blocks]
    nbytes = sum(len(x) * (sampled if b.factor == "U" else 1.0) for b, x in zip(flat, packed))
    magnitudes = coded_magnitudes(u.stats, stats_b, r)
    if plane.adapted:  # the exact rule's bound is on A o M (spec §5.5): M at most LARGEST
        magnitudes = (magnitudes[0] * adaptive.LARGEST, magnitudes[1])
    held = (A[:, :r], B[:, :r]) if sample is None and u.tail is None \
        and not plane.adapted and A.shape[1] >= r and A.nbytes < DROP_U_BYTES else None
    return CodedPlane(plane, groups, round(nbytes), distortion,
                      u.parts if sample or keep_parts else {}, sigma, magnitudes,
                      u.row_m if plane.adapted else None,
                      mean_step if plane.adapted else None, held, c.fitted)


def adapted_components(candidate: Candidate, rule: RankRule) -> int:
    """K of the candidate's adaptive quantization (spec §5.5), 0 for none: plane 0 of a
    streaming patch layout with the eigenvector basis when the rule asks for it (a fitted
    basis must find a decoded image's integers again, which a map would move)."""
    p = candidate.plane
    if not rule.adapt or p.index != 0 or p.layout != LAYOUT_PATCH or candidate.fitted \
            or candidate.basis is None:
        return 0
    return rule.adapt


def coded_magnitudes(stats_a: ColumnStats, stats_b: ColumnStats, rank: int) -> tuple[int, int]:
    """(max |A|, max |B|) of the first `rank` components, what `residual.block_magnitude` finds
    in the plane's blocks: the quantizer's largest |integer| per column (`ColumnStats.top`,
    after `optimise_levels` where it runs) of the very integers those blocks code losslessly,
    with no pass over the blocks (unpredicting dense ones, a lookup over every symbol)."""
    return (int(stats_a.top[:rank].max(initial=0.0)), int(stats_b.top[:rank].max(initial=0.0)))


def fit_rows(source: PlaneSource, candidate: Candidate) -> np.ndarray:
    """The matrix rows `fitted_candidate` fits a basis to: about tuning.FIT_ROWS of them,
    every k-th row of evenly spaced bands (a spread sample; only the bands read are
    computed)."""
    bands = plane_bands(source, candidate.plane.index)
    patch, per_row = candidate.plane.patch, candidate.plane.grid[1]
    if not per_row or not bands:
        return np.zeros((0, patch * patch), dtype=np.float32)
    total = candidate.plane.matrix_shape[0]
    count = min(len(bands), max(1, math.ceil(len(bands) * tuning.FIT_ROWS / max(total, 1))))
    chosen = [bands[int((k + 0.5) * len(bands) / count)] for k in range(count)]
    rows = np.concatenate([source.patches(candidate.plane.index, y0, y1, patch)
                           for y0, y1 in chosen])
    every = rows.shape[0] // tuning.FIT_ROWS
    return rows[::every] if every > 1 else rows


def fitted_candidate(source: PlaneSource, candidate: Candidate, step: float, rank: int
                     ) -> Candidate | None:
    """The candidate with its first `rank` components' basis fitted to their own quantized
    coefficients at `step` (`codec.refine.fit_basis`), or None if nothing is left of them."""
    assert candidate.basis is not None
    B, sigma = fit_basis(fit_rows(source, candidate), candidate.basis[:, :rank],
                         candidate.sigma[:rank], step)
    if not sigma.size:
        return None
    stored = stored_basis(B, sigma, step)
    return Candidate(candidate.plane, sigma, (B * step).astype(np.float32),
                     candidate.total_energy, basis=projection(stored), fitted=True)


def coded_error(source: PlaneSource, candidate: Candidate, coded: CodedPlane) -> float:
    """The squared error of a streaming plane's coding, measured on its band parts (the
    sample's, or the whole plane's), scaled to the whole plane."""
    plane = coded.plane
    r, step = plane.rank, plane.step
    whole_rows = candidate.plane.matrix_shape[0]
    B = ColumnStats(r, step).add(candidate.Q[:, :r])
    basis_t = np.ascontiguousarray(stored_basis(B, candidate.sigma[:r], step).T,
                                   dtype=np.float32)
    # each component's own step (`quantize_u`)
    steps = (np.float32(step) if plane.layout != LAYOUT_PATCH
             else (component_steps(r, coded.mean_step) * step).astype(np.float32))
    total, rows = 0.0, 0
    for (y0, y1), part in coded.parts.items():
        a = source.patches(plane.index, y0, y1, plane.patch)
        values = part.integers[:, :r] * steps
        if coded.row_m is not None:  # an adapted plane's rows (its parts' rows in band order)
            # at M / 16 of their steps in components >= 1 (`quantize_u`); exact in binary32
            m = coded.row_m[rows:rows + values.shape[0]]
            values *= aq_encoder.row_scale(m, r).astype(np.float32)
        a = a - values @ basis_t
        total += float(np.einsum("ij,ij->", a, a, dtype=np.float64))
        rows += a.shape[0]
    return total * whole_rows / max(rows, 1) if r else candidate.total_energy
