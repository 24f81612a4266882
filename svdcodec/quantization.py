"""Quantization of sigma-scaled factors, rank by rate and distortion, and integer prediction.

Why sigma-scaling: an error e in u_i costs sigma_i * |e| in the image, so u_i must be finer where
sigma_i is large. Quantizing P = U Sigma and Q = V Sigma with one step makes every stored integer
cost the same squared error (step^2 / 12 at most), which is the textbook optimum for equal-slope
rate allocation; Sigma itself is stored as float32 so the decoder can divide it out once:
M ~= (step A) diag(1/sigma) (step B)^T.
"""

from __future__ import annotations

import numpy as np

from .factorization import Factors

#: Dead-zone rounding offset: values round up from this fraction of a step (0.5 is plain rounding).
ROUNDING = 0.38
#: Lagrange multiplier of the rank decision, in units of step^2 per estimated bit.
LAMBDA = 0.12


def quantize(values: np.ndarray, step: float, rounding: float = ROUNDING) -> np.ndarray:
    """Dead-zone uniform quantizer to int32."""
    scaled = np.abs(values) * np.float32(1.0 / step) + np.float32(rounding)
    q = np.floor(scaled, out=scaled)
    q *= np.sign(values)
    if q.size and float(np.max(np.abs(q))) >= 2**31 - 1:
        raise OverflowError("quantized value does not fit 32 bits")
    return q.astype(np.int32)


def _entropy_bits(q: np.ndarray) -> np.ndarray:
    """Order-0 entropy estimate, in bits, of each column of an integer matrix."""
    bits = np.zeros(q.shape[1])
    for i in range(q.shape[1]):  # one iteration per component, not per sample
        column = q[:, i]
        if not column.any():
            continue
        counts = np.bincount(column - column.min())
        p = counts[counts > 0] / column.size
        bits[i] = -column.size * float(p @ np.log2(p))
    return bits


def quantize_factors(f: Factors, step: float, fixed_rank: bool) -> tuple[np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Integers A (m, r), float32 sigma (r,), integers B (n, r) at the chosen rank.

    Unless `fixed_rank`, trailing components are dropped when the squared error they remove does
    not pay for their estimated bits at slope LAMBDA * step^2.
    """
    sigma = f.sigma.astype(np.float32)
    A = quantize(f.P, step)
    B = quantize(f.Q, step)
    r = f.rank
    if not fixed_rank and r:
        err_a = np.sum((f.P - A * np.float32(step)) ** 2, axis=0, dtype=np.float64)
        err_b = np.sum((f.Q - B * np.float32(step)) ** 2, axis=0, dtype=np.float64)
        # Normalised by sigma^2: the image-domain error of component i is ||eP_i||^2 + ||eQ_i||^2
        # only because P_i / sigma_i and Q_i / sigma_i are unit vectors.
        gain = f.sigma ** 2 - err_a - err_b
        bits = _entropy_bits(A) + _entropy_bits(B) + 32
        pays = gain > LAMBDA * step * step * bits
        r = int(np.flatnonzero(pays)[-1]) + 1 if pays.any() else 0
    return A[:, :r], sigma[:r], B[:, :r]


def reconstruct(A: np.ndarray, sigma: np.ndarray, B: np.ndarray, step: float) -> np.ndarray:
    """M = (step A) diag(1/sigma) (step B)^T in float32, from A (m, r) and B (n, r)."""
    if sigma.size == 0:
        return np.zeros((A.shape[0], B.shape[0]), dtype=np.float32)
    left = A.astype(np.float32) * (np.float32(step * step) / sigma.astype(np.float32))
    return left @ B.astype(np.float32).T


# --- prediction: lossless integer transforms of each component laid out on its grid ----------

NONE, HORIZONTAL, VERTICAL, PLANAR = 0, 1, 2, 3


def predict(grids: np.ndarray, predictor: int) -> np.ndarray:
    """Residuals of components shaped (count, gh, gw); the inverse is `unpredict`."""
    r = grids.astype(np.int64)
    if predictor in (HORIZONTAL, PLANAR):
        r[:, :, 1:] -= grids[:, :, :-1]
    if predictor in (VERTICAL, PLANAR):
        r[:, 1:, :] -= r[:, :-1, :].copy() if predictor == PLANAR else grids[:, :-1, :]
    return r


def unpredict(residuals: np.ndarray, predictor: int) -> np.ndarray:
    """Undo `predict` with cumulative sums (vectorized; no loop over samples)."""
    g = residuals.astype(np.int64)
    if predictor in (VERTICAL, PLANAR):
        g = np.cumsum(g, axis=1)
    if predictor in (HORIZONTAL, PLANAR):
        g = np.cumsum(g, axis=2)
    return g


def narrow(values: np.ndarray) -> np.ndarray:
    """Smallest of int8, int16, int32 that holds the values exactly."""
    if values.size == 0:
        return values.astype(np.int8)
    lo, hi = int(values.min()), int(values.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    raise OverflowError("residual does not fit 32 bits")


def best_prediction(grids: np.ndarray) -> tuple[int, np.ndarray]:
    """The predictor whose residuals have the lowest order-0 entropy, and those residuals."""
    best: tuple[float, int, np.ndarray] | None = None
    candidates = (NONE, HORIZONTAL, VERTICAL, PLANAR) if grids.shape[2] > 1 else (NONE, VERTICAL)
    for predictor in candidates:
        res = narrow(predict(grids, predictor))
        flat = res.reshape(-1)
        counts = np.bincount(flat.astype(np.int64) - int(flat.min())) if flat.size else np.ones(1)
        p = counts[counts > 0] / max(flat.size, 1)
        cost = -float(p @ np.log2(p)) * flat.size + 8 * res.itemsize
        if best is None or cost < best[0]:
            best = (cost, predictor, res)
    assert best is not None
    return best[1], best[2]
