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
LAMBDA = 0.06


def quantize(values: np.ndarray, step: float, rounding: float | None = None) -> np.ndarray:
    """Dead-zone uniform quantizer to int32."""
    rounding = ROUNDING if rounding is None else rounding
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
