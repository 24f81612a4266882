"""Quantization of sigma-scaled factors and the rank decision by rate and distortion.

Why sigma-scaling: an error e in u_i costs sigma_i * |e| in the image, so u_i must be finer where
sigma_i is large. Quantizing P = U Sigma and Q = V Sigma with one step makes every stored integer
cost the same squared error (step^2 / 12 at most), which is the textbook optimum for equal-slope
rate allocation; Sigma itself is stored as float32 so the decoder can divide it out once:
M ~= (step A) diag(1/sigma) (step B)^T.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..runtime import kernels

#: Dead-zone rounding offset: values round up from this fraction of a step (0.5 is plain rounding).
ROUNDING = 0.38
#: The first component (a patch's mean, or a plain plane's mean profile) rounds to nearest: a
#: dead zone there moves every pixel's mean toward zero (the picture darkens a little), and the
#: bias compounds each time a decoded image is encoded again.
FIRST_ROUNDING = 0.5
#: Lagrange multiplier of the rank decision, in units of step^2 per estimated bit.
#: (0.10 would lower the luma SSIM BD-rate 1.5-2 points more than the chroma step alone, see
#: studies/perceptual_study.py, but a layout costed on a sample of bands then keeps more
#: components than the whole plane would: the estimate the layout choice relies on drifts.)
LAMBDA = 0.06
#: Per-component steps of a patch layout's U (encoder only, no format change): component k is
#: quantized with step * component_steps(r)[k] and its stored sigma_k divided by the same
#: factor, so the decoder's (step a_k) (step b_k) / sigma_k scales the integers back. The patch
#: mean (component 0) at MEAN_STEP x the step: its error is what shows as blocks in smooth
#: areas, where luma SSIM sees svdi lose to JPEG; the RGB PSNR it gains pays for the coarser
#: chroma (`encoder.tuning.CHROMA_STEP`). Coarser trailing components (a ramp to 1.5 x) gained
#: 0.2 point more but made a layout sample keep more components than its whole plane
#: (studies/adaptive_quant_study.py).
MEAN_STEP = 0.7


def component_steps(columns: int, mean_step: float | None = None) -> np.ndarray:
    """The step multiplier of each of `columns` components of a patch layout's U (float64):
    the patch mean's `mean_step` (None: MEAN_STEP), 1 for the others."""
    steps = np.ones(columns)
    steps[:1] = MEAN_STEP if mean_step is None else mean_step
    return steps


def finest_step(columns: int, mean_step: float | None = None) -> float:
    """The smallest multiplier of `component_steps` (1 without components)."""
    return float(component_steps(columns, mean_step).min(initial=1.0))


def quantize(values: np.ndarray, step: float, rounding: float | None = None) -> np.ndarray:
    """Dead-zone uniform quantizer to int32; of a matrix (rows, components), the first
    component with FIRST_ROUNDING (unless `rounding` is given for all)."""
    offsets = np.full(values.shape[-1:] if values.ndim else (), np.float32(
        ROUNDING if rounding is None else rounding), dtype=np.float32)
    if rounding is None and values.ndim == 2 and values.shape[1]:
        offsets[0] = FIRST_ROUNDING
    scaled = np.abs(values) * np.float32(1.0 / step) + offsets
    q = np.floor(scaled, out=scaled)
    q *= np.sign(values)
    if q.size and float(np.max(np.abs(q))) >= 2**31 - 1:
        raise OverflowError("quantized value does not fit 32 bits")
    return q.astype(np.int32)


class ColumnStats:
    """Quantizes a factor band by band and keeps, per component, the squared quantization error
    and the largest |integer|. That suffices for most rank decisions: an order-0 entropy lies
    between 0 and rows * log2(2 * largest + 1) bits, so `choose_rank` counts the values of a
    component (`entropy_bits`) only when those bounds leave its decision open, usually for
    none or a few trailing components instead of every component of every band. And the sum
    of the integers' squares, which `codec.refine.refitted_sigma` reads (binary64, each band's
    rows summed in order from zero and added to the total: the same bits on both paths).
    """

    def __init__(self, columns: int, step: float,
                 sparse: list[tuple[int, int]] | None = None, patches: bool = False,
                 rdoq_lambda: float | None = None, mean_step: float | None = None,
                 rdoq_rounding: float | None = None, rdoq_rounds: int | None = None) -> None:
        """`sparse`: the run/level coded column ranges, whose integers `optimise_levels` then
        chooses (when RDOQ_LAMBDA, or `rdoq_lambda` instead, is set), starting from the
        rounding `rdoq_rounding` (None: RDOQ_ROUNDING) in `rdoq_rounds` rounds (None:
        RDOQ_ROUNDS); else the plain dead-zone quantizer. `patches`:
        the U of a patch layout, each component at its own step (`component_steps`); else
        every component at `step` (`mean_step`: the patch mean's multiplier, None:
        MEAN_STEP). `steps` holds each column's step, `error` is in plane units either way."""
        self.columns, self.step = columns, step
        self.steps = (component_steps(columns, mean_step) * step if patches
                      else np.full(columns, float(step)))
        # float32 inverses, as the kernel takes them; None: one step (the kernel's scalar)
        self.inv_steps = (1.0 / self.steps).astype(np.float32) if patches else None
        self.error = np.zeros(columns)
        self.top = np.zeros(columns)
        self.squares = np.zeros(columns)
        self.rows = 0
        self.rdoq_lambda = RDOQ_LAMBDA if rdoq_lambda is None else rdoq_lambda
        self.rdoq_rounding = RDOQ_ROUNDING if rdoq_rounding is None else rdoq_rounding
        self.rdoq_rounds = RDOQ_ROUNDS if rdoq_rounds is None else rdoq_rounds
        self.sparse = sparse if self.rdoq_lambda else None

    def add(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Quantize a band (rows, columns) of float32 values with `quantize`'s rule (or, with
        sparse ranges, `optimise_levels`), into `out` (any integer type the caller has checked
        is wide enough) or a new int32 array."""
        values = np.asarray(values, dtype=np.float32)
        if self.sparse is None:
            return self._dead_zone(values, out, ROUNDING, self.top, self.squares)
        top = np.zeros(self.columns)
        ints = self._dead_zone(values, out, self.rdoq_rounding, top, None)
        if self.inv_steps is None:
            added = optimise_levels(ints, values, self.step, self.sparse, self.rdoq_lambda,
                                    self.rdoq_rounds)
        else:  # values in each column's steps: |v| * inv_j, the same bits as the dead zone's
            added = optimise_levels(ints, values * self.inv_steps, 1.0, self.sparse,
                                    self.rdoq_lambda, self.rdoq_rounds)
        self.error += added * self.steps ** 2
        if ints.size:
            np.maximum(self.top, np.abs(ints).max(axis=0), out=self.top)
            self.squares += np.square(ints, dtype=np.float64).sum(axis=0)
        return ints

    def _dead_zone(self, values: np.ndarray, out: np.ndarray | None, rounding: float,
                   top: np.ndarray, squares: np.ndarray | None) -> np.ndarray:
        """`add` with the dead-zone quantizer of offset `rounding` (FIRST_ROUNDING in the
        first column), its largest |integer| per column into `top` and the sum of the
        integers' squares added to `squares` (unless None)."""
        compiled = kernels.get()
        if compiled is not None:
            ints = np.empty(values.shape, dtype=np.int32) if out is None else out
            error = np.zeros(self.columns)
            band = None if squares is None else np.zeros(self.columns)
            if not compiled.quantize(values, np.float32(1.0 / self.step),
                                     np.float32(rounding), ints, top, error,
                                     np.float32(FIRST_ROUNDING), band, self.inv_steps):
                raise OverflowError("quantized value does not fit 32 bits")
            self.error += error * self.steps ** 2
            if squares is not None:
                squares += band
            self.rows += values.shape[0]
            return ints
        offsets = np.full(values.shape[1], np.float32(rounding), dtype=np.float32)
        offsets[:1] = FIRST_ROUNDING
        scaled = np.abs(values)
        scaled *= np.float32(1.0 / self.step) if self.inv_steps is None else self.inv_steps
        scaled += offsets
        self.rows += scaled.shape[0]
        if scaled.size and float(scaled.max()) >= 2**31 - 1:
            raise OverflowError("quantized value does not fit 32 bits")
        ints = scaled.astype(np.int32)  # truncation: the floor of non-negative values
        if ints.size:
            np.maximum(top, ints.max(axis=0), out=top)
            if squares is not None:  # row after row down each column, as the C kernel
                squares += np.square(ints, dtype=np.float64).sum(axis=0)
        scaled -= ints
        scaled -= offsets  # the error in steps
        # Squared in float64 and summed down each column row after row (numpy reduces a
        # C-ordered axis 0 row by row), the C kernel's order: the rank decision, which reads
        # these sums, then takes the same branch on both paths.
        squares = scaled.astype(np.float64)
        squares *= squares
        self.error += squares.sum(axis=0) * self.steps ** 2
        negative = values.view(np.int32) >> 31  # -1 where the sign bit is set, else 0
        ints ^= negative
        ints -= negative  # two's complement negation where negative
        if out is None:
            return ints
        out[...] = ints
        return out

    @classmethod
    def combine(cls, parts: list[ColumnStats]) -> ColumnStats:
        """The stats of consecutive bands as one (errors summed in band order)."""
        out = cls(parts[0].columns, parts[0].step)
        out.steps, out.inv_steps = parts[0].steps, parts[0].inv_steps
        for part in parts:
            out.error += part.error
            out.squares += part.squares
            np.maximum(out.top, part.top, out=out.top)
            out.rows += part.rows
        return out

    def nonzero(self) -> np.ndarray:
        """Whether each component has a non-zero integer."""
        return self.top > 0

    def most_bits(self) -> np.ndarray:
        """An upper bound of each component's order-0 entropy in bits."""
        return self.rows * np.log2(2 * self.top + 1)


#: A histogram of integers spans at most this many bins beyond 4 per value; wider sets are
#: counted by sorting (tiny steps give huge integers: a histogram could take gigabytes).
HISTOGRAM_SLACK = 1 << 16


#: Decimals kept of an entropy estimate. The compiled and numpy sums differ in their last bits;
#: the encoder compares estimates (best predictor, rank), and two residual sets with the same
#: histogram must tie on both paths, or the paths would write different files.
ENTROPY_DECIMALS = 6


def entropy_bits(values: np.ndarray) -> float:
    """Order-0 entropy estimate, in bits, of some integers (to ENTROPY_DECIMALS)."""
    compiled = kernels.get()
    if compiled is not None:
        bits = compiled.entropy_bits(np.asarray(values).reshape(-1), HISTOGRAM_SLACK)
        return round(float(bits), ENTROPY_DECIMALS)
    flat = np.asarray(values).reshape(-1).astype(np.int64)  # int16 differences could overflow
    if not flat.any():
        return 0.0
    lo = int(flat.min())
    if int(flat.max()) - lo >= 4 * flat.size + HISTOGRAM_SLACK:
        counts = np.unique(flat, return_counts=True)[1]
    else:
        counts = np.bincount(flat - lo)
    p = counts[counts > 0] / flat.size
    return round(-flat.size * float(p @ np.log2(p)), ENTROPY_DECIMALS)


def column_entropy_bits(matrix: np.ndarray) -> Callable[[int], float]:
    """`entropy_bits` of column j of a 2-D integer array, as a function of j: the compiled
    kernels count every column in one call, the numpy path each column when asked."""
    compiled = kernels.get()
    if compiled is None:
        return lambda j: entropy_bits(matrix[:, j])
    bits = compiled.column_entropy_bits(matrix, HISTOGRAM_SLACK)
    return lambda j: round(bits[j], ENTROPY_DECIMALS)


def choose_rank(sigma: np.ndarray, error_a: np.ndarray, error_b: np.ndarray,
                most_bits_a: np.ndarray, bits_a: Callable[[int], float],
                bits_b: Callable[[int], float], step: float) -> int:
    """Keep components up to the last whose error reduction pays for its estimated bits at slope
    LAMBDA * step^2 (bits: A's plus B's plus 32 for sigma), scanning from the last component.
    A's bits are counted (bits_a(i)) only where 0 <= bits <= most_bits_a does not decide.

    Normalised by sigma^2: the image-domain error of component i is ||eP_i||^2 + ||eQ_i||^2
    only because P_i / sigma_i and Q_i / sigma_i are unit vectors.
    """
    # as Python floats: the same binary64 operations, without a numpy scalar per element read
    gain = (sigma ** 2 - error_a - error_b).tolist()
    most = np.asarray(most_bits_a, dtype=np.float64).tolist()
    slope = LAMBDA * step * step
    for i in range(len(gain) - 1, -1, -1):  # one iteration per component, not per sample
        fixed = bits_b(i) + 32
        if gain[i] <= slope * fixed:
            continue
        if gain[i] > slope * (most[i] + fixed) or gain[i] > slope * (bits_a(i) + fixed):
            return i + 1
    return 0


def reconstruct(A: np.ndarray, sigma: np.ndarray, B: np.ndarray, step: float) -> np.ndarray:
    """M = (step A) diag(1/sigma) (step B)^T in float32, from A (m, r) and B (n, r)."""
    if sigma.size == 0:
        return np.zeros((A.shape[0], B.shape[0]), dtype=np.float32)
    left = A.astype(np.float32) * (np.float32(step * step) / sigma.astype(np.float32))
    return left @ B.astype(np.float32).T


# ----------------------------------------------------------------------------- RDOQ

#: Lagrange multiplier of `optimise_levels`, in step^2 per estimated bit (None: off, the plain
#: dead-zone quantizer). See studies/rdoq_study.py.
RDOQ_LAMBDA: float | None = 0.10
#: Rounding of the integers `optimise_levels` starts from: the dead zone's. From nearest (0.5)
#: it would need a second round (symbol costs counted again after the first) to gain 0.4 point
#: more, for twice the time (studies/rdoq_study.py); aq=True's encodes take that
#: (`encoder.tuning.AQ_RDOQ_ROUNDING`).
RDOQ_ROUNDING = ROUNDING
#: Estimated extra bits of an escaped run or value (its uint16/int16 side-stream entry).
ESCAPE_BITS = 12.0
#: Rounds of `optimise_levels`: each re-estimates the symbol costs from the current integers.
RDOQ_ROUNDS = 1


def symbol_codes(runs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The run/level symbol byte of each (run, value) pair, as `codec.coding.band_symbols`
    writes them (runs above 15 and values beyond +-7 escape)."""
    small = (values >= -7) & (values <= 7)
    codes = np.minimum(runs, 15).astype(np.int32) << 4
    codes |= np.where(small, values + 8, 0).astype(np.int32)
    return codes


def symbol_bits(counts: np.ndarray) -> np.ndarray:
    """Estimated bits of each of the 256 symbol bytes from their counts (end-of-row symbols
    included): -log2 of its frequency, unseen symbols as if seen half a time; escapes add
    ESCAPE_BITS."""
    counts = counts.astype(np.float64)
    bits = np.log2(counts.sum() / np.maximum(counts, 0.5))
    codes = np.arange(256)
    escapes = (codes >> 4 == 15).astype(np.float64) + (codes & 15 == 0)
    return bits + ESCAPE_BITS * escapes


def optimise_levels(ints: np.ndarray, values: np.ndarray, step: float,
                    groups: list[tuple[int, int]], lam: float | None = None,
                    rounds: int | None = None) -> np.ndarray:
    """Rate-distortion optimised quantization of a band (rows, columns) of integers quantized
    with RDOQ_ROUNDING or another offset (`ColumnStats`' `rdoq_rounding`): in each run/level
    coded column range of `groups`, `rounds` (None: RDOQ_ROUNDS) rounds of `lower_levels`,
    each with bits estimated from the symbol frequencies at its start.

    `ints` is changed in place; returns the change of each column's squared error (step^2
    units, float64). Both kernel paths give the same integers and sums. `lam`: the Lagrange
    multiplier, RDOQ_LAMBDA if None."""
    lam = float((RDOQ_LAMBDA if lam is None else lam) or 0.0)
    rounds = RDOQ_ROUNDS if rounds is None else rounds
    added = np.zeros(ints.shape[1])
    inv_step = np.float32(1.0 / step)
    compiled = kernels.get()
    for lo, hi in groups:
        if hi <= lo or not ints.shape[0]:
            continue
        for _ in range(rounds):
            if compiled is None:
                changed, cost = lower_levels(ints, values, inv_step, lo, hi, lam)
            else:
                counts = np.bincount(compiled.symbols(ints, lo, hi)[0], minlength=256)
                cost = np.zeros(hi - lo)
                changed = compiled.lower_levels(ints, values, inv_step, lo, hi,
                                                symbol_bits(counts), lam, cost)
            if not changed:
                break
            added[lo:hi] += cost
    return added


def lower_levels(ints: np.ndarray, values: np.ndarray, inv_step: np.float32, lo: int, hi: int,
                 lam: float) -> tuple[int, np.ndarray]:
    """One round of `optimise_levels` on columns lo:hi (the compiled kernels' twin): lower
    |integer| by one where the added squared error costs less than `lam` step^2 per bit saved.
    A level of 1 going to 0 saves its symbol and merges the runs either side of it (the next
    symbol of its row carries the longer run); a larger level saves the difference of the two
    level symbols. Bits from the symbols' frequencies (`symbol_bits`); every candidate is
    decided on the others' levels as they were. Returns (levels lowered, added squared error
    per column in steps^2)."""
    count = hi - lo
    sub = ints[:, lo:hi]
    flat = np.ascontiguousarray(sub).reshape(-1)
    where = np.flatnonzero(flat)
    if not where.size:
        return 0, np.zeros(count)
    level = flat[where].astype(np.int64)
    rows = where // count
    cols = where - rows * count
    runs = np.empty_like(where)
    runs[:1] = cols[:1]
    np.subtract(where[1:], where[:-1], out=runs[1:])
    runs[1:] -= 1
    runs[1:] = np.where(rows[1:] != rows[:-1], cols[1:], runs[1:])
    codes = symbol_codes(runs, level)
    counts = np.bincount(codes, minlength=256)
    counts[0x08] += ints.shape[0]  # the end-of-row symbols
    bits = symbol_bits(counts)
    lower = level - np.sign(level)
    saved = bits[codes] - bits[symbol_codes(runs, lower)]
    follows = np.flatnonzero(rows[1:] == rows[:-1])  # not the last of its row
    merged = symbol_codes(runs[follows + 1] + runs[follows] + 1, level[follows + 1])
    to_zero = lower == 0
    saved[to_zero] = bits[codes[to_zero]]
    gain_next = bits[codes[follows + 1]] - bits[merged]
    saved[follows] = np.where(to_zero[follows], saved[follows] + gain_next, saved[follows])
    x = np.abs(values[:, lo:hi].reshape(-1)[where]) * inv_step  # float32, as quantized
    offset = x.astype(np.float64) - np.abs(level)  # in [-rounding, 1 - rounding]
    cost = 2.0 * offset + 1.0  # (x - |l| + 1)^2 - (x - |l|)^2
    change = np.flatnonzero(cost < lam * saved)
    if change.size:
        flat[where[change]] = lower[change]
        sub[...] = flat.reshape(sub.shape)
    return int(change.size), np.bincount(cols[change], weights=cost[change], minlength=count)
