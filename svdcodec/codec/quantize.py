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
    none or a few trailing components instead of every component of every band.
    """

    def __init__(self, columns: int, step: float) -> None:
        self.columns, self.step = columns, step
        self.error = np.zeros(columns)
        self.top = np.zeros(columns)
        self.rows = 0

    def add(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Quantize a band (rows, columns) of float32 values with `quantize`'s rule, into `out`
        (any integer type the caller has checked is wide enough) or a new int32 array."""
        values = np.asarray(values, dtype=np.float32)
        compiled = kernels.get()
        if compiled is not None:
            ints = np.empty(values.shape, dtype=np.int32) if out is None else out
            error = np.zeros(self.columns)
            if not compiled.quantize(values, np.float32(1.0 / self.step),
                                     np.float32(ROUNDING), ints, self.top, error,
                                     np.float32(FIRST_ROUNDING)):
                raise OverflowError("quantized value does not fit 32 bits")
            self.error += error * self.step ** 2
            self.rows += values.shape[0]
            return ints
        offsets = np.full(values.shape[1], np.float32(ROUNDING), dtype=np.float32)
        offsets[:1] = FIRST_ROUNDING
        scaled = np.abs(values)
        scaled *= np.float32(1.0 / self.step)
        scaled += offsets
        self.rows += scaled.shape[0]
        if scaled.size and float(scaled.max()) >= 2**31 - 1:
            raise OverflowError("quantized value does not fit 32 bits")
        ints = scaled.astype(np.int32)  # truncation: the floor of non-negative values
        if ints.size:
            np.maximum(self.top, ints.max(axis=0), out=self.top)
        scaled -= ints
        scaled -= offsets  # the error in steps
        # Squared in float64 and summed down each column row after row (numpy reduces a
        # C-ordered axis 0 row by row), the C kernel's order: the rank decision, which reads
        # these sums, then takes the same branch on both paths.
        squares = scaled.astype(np.float64)
        squares *= squares
        self.error += squares.sum(axis=0) * self.step ** 2
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
        for part in parts:
            out.error += part.error
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
    gain = sigma ** 2 - error_a - error_b
    slope = LAMBDA * step * step
    for i in range(sigma.size - 1, -1, -1):  # one iteration per component, not per sample
        fixed = bits_b(i) + 32
        if gain[i] <= slope * fixed:
            continue
        if gain[i] > slope * (most_bits_a[i] + fixed) or gain[i] > slope * (bits_a(i) + fixed):
            return i + 1
    return 0


def reconstruct(A: np.ndarray, sigma: np.ndarray, B: np.ndarray, step: float) -> np.ndarray:
    """M = (step A) diag(1/sigma) (step B)^T in float32, from A (m, r) and B (n, r)."""
    if sigma.size == 0:
        return np.zeros((A.shape[0], B.shape[0]), dtype=np.float32)
    left = A.astype(np.float32) * (np.float32(step * step) / sigma.astype(np.float32))
    return left @ B.astype(np.float32).T
