"""Fitting a patch basis to its own quantized coefficients, so that re-encoding a decoded image
finds the basis it was decoded with (generation stability, issue #15).

A decoded patch layout is M = (step A) W^T with integers A and the stored basis
W = step B diag(1/sigma). Encoding M again, the eigenvectors of its Gram matrix are not W:
A^T A is not diagonal and W is not orthonormal, so within groups of close singular values
the eigenvectors come out rotated, the coefficients fall between the quantizer's
reconstruction points, and every generation adds a fresh quantization error (about 0.5 dB
per cycle on Kodak at quality 75).

`fit_basis` starts from the eigenvectors and alternates: the coefficients as the least-squares
projection on the quantized basis, rounded; then the basis as the least-squares fit to those
integers, quantized. Rows whose coefficients are large would be rounded to the wrong integers
while the basis is still rotated, so the first fits use only rows whose coefficients (beyond
the first component) are within a few steps, and the limit grows each round
(`TRUST_STEPS`). On a decoded image this recovers W and A; on an original image it is an
alternative the encoder takes only where it costs less (D + lambda R) than the eigenvectors.
"""

from __future__ import annotations

import numpy as np

from ..runtime import kernels
from .quantize import FIRST_ROUNDING, ROUNDING, component_steps, quantize

#: Largest |coefficient|, in steps, of the rows each round of `fit_basis` fits the basis to
#: (components beyond the first); the rounds after the last finite limit use every row.
TRUST_STEPS = (1.5, 1.5, 3.0, 6.0, 12.0, np.inf, np.inf)
#: Trailing components are dropped while the quantized basis is this ill-conditioned (the
#: vectors of small singular values quantize to a few coarse integers, or none).
MAX_CONDITION = 1e4
#: A round fits on all rows when fewer than this many rows per component pass its limit.
MIN_ROWS_PER_COMPONENT = 4


def stored_basis(B: np.ndarray, sigma: np.ndarray, step: float) -> np.ndarray:
    """The basis the decoder applies: W = step B diag(1/sigma), float64 (n, r)."""
    return B.astype(np.float64) * (step / sigma.astype(np.float32).astype(np.float64))


def projection(basis: np.ndarray) -> np.ndarray:
    """The matrix G with rows @ G = the least-squares coefficients of rows on the columns of
    `basis` (n, r): G = W (W^T W)^-1, float32."""
    gram = basis.T @ basis
    return np.ascontiguousarray(np.linalg.solve(gram, basis.T).T, dtype=np.float32)


def fit_basis(rows: np.ndarray, unit_basis: np.ndarray, sigma: np.ndarray, step: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(B (n, r') int32, sigma (r',)): the quantized basis fitted to the rows' (m, n) own
    quantized coefficients, from the unit eigenvectors (n, r) and singular values; components
    whose basis vector or coefficients quantize to zero are dropped."""
    a = np.ascontiguousarray(rows, dtype=np.float32)
    a64 = a.astype(np.float64)  # what `refit` solves with, converted once for every round
    B, sigma = usable(quantize(unit_basis.astype(np.float64) * (sigma / step), step=1.0),
                      np.asarray(sigma, dtype=np.float64))
    for trust in TRUST_STEPS:
        if not sigma.size:
            break
        W = stored_basis(B, sigma, step)
        coefficients = a @ projection(W)
        # each component at its own step, as the encoder quantizes a patch layout's U: a
        # decoded image's coefficients are multiples of those steps
        steps = component_steps(sigma.size) * step
        A, largest, nonzero = lattice(coefficients, steps)
        used = np.flatnonzero(nonzero)
        if not used.size:  # every integer zero: nothing of the basis is left to fit
            sigma = sigma[used]
            break
        if used.size < sigma.size:  # (the copies only where a component drops out)
            A, sigma, W, steps = A[:, used], sigma[used], W[:, used], steps[used]
            largest = largest_beyond_first(coefficients[:, used])
        trusted = largest <= trust * step
        if np.count_nonzero(trusted) < MIN_ROWS_PER_COMPONENT * used.size:
            trusted[:] = True
        W = refit(A, a64, W, steps) if trusted.all() else \
            refit(A[trusted], a64[trusted], W, steps)
        B, sigma = usable(quantize(W * (sigma / step), step=1.0), sigma)
    return B, sigma


def lattice(coefficients: np.ndarray, steps: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What a round of `fit_basis` reads of the coefficients (rows, r) float32 at their steps
    (r,) float64: A = quantize(coefficients / steps, 1.0) (int32), each row's largest
    |coefficient| beyond the first component (`largest_beyond_first`) and whether each column
    of A holds a non-zero integer; in one pass on the compiled path. OverflowError where an
    integer does not fit int32, or a coefficient is NaN."""
    compiled = kernels.get()
    if compiled is None:
        v = coefficients / steps
        if np.isnan(v).any():  # (quantize would cast NaN to an arbitrary integer)
            raise OverflowError("NaN coefficient")
        A = quantize(v, 1.0)
        return A, largest_beyond_first(coefficients), np.any(A != 0, axis=0)
    rows, columns = coefficients.shape
    A = np.empty((rows, columns), dtype=np.int32)
    largest = np.empty(rows, dtype=np.float32)
    nonzero = np.empty(columns, dtype=bool)
    if not compiled.lattice_integers(coefficients, steps, ROUNDING, FIRST_ROUNDING, A, largest,
                                     nonzero):
        raise OverflowError("quantized value does not fit 32 bits, or NaN")
    return A, largest, nonzero


def largest_beyond_first(coefficients: np.ndarray) -> np.ndarray:
    """Each row's largest |coefficient| beyond the first component (0 for a single one): the
    larger of the row's maximum and its negated minimum, without a copy of the columns."""
    if coefficients.shape[1] < 2:
        return np.zeros(coefficients.shape[0], dtype=coefficients.dtype)
    rest = coefficients[:, 1:]
    return np.maximum(rest.max(axis=1), -rest.min(axis=1))


def refit(A: np.ndarray, rows: np.ndarray, W: np.ndarray, steps: np.ndarray | float
          ) -> np.ndarray:
    """The basis (n, r) minimizing |rows - (steps A) W^T| (normal equations, r x r; `steps`
    one per component or one for all), for the components with a non-zero integer; the
    others, and all if the integers are degenerate, keep W's."""
    seen = np.flatnonzero(np.any(A != 0, axis=0))
    every = seen.size == A.shape[1]  # (the copies only where a component has no integer)
    Af = (A if every else A[:, seen]).astype(np.float64)
    Af *= np.broadcast_to(np.asarray(steps, dtype=np.float64), (A.shape[1],))[seen]
    gram = Af.T @ Af
    if np.linalg.matrix_rank(gram) < seen.size:
        return W
    out = W.copy()
    out[:, seen] = np.linalg.solve(gram, Af.T @ np.asarray(rows, dtype=np.float64)).T
    return out


def usable(B: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The components of a quantized basis that can be solved for: without all-zero vectors,
    and without the trailing ones while the basis is ill-conditioned (the vectors of small
    singular values quantize to a few coarse integers)."""
    alive = np.flatnonzero(np.any(B != 0, axis=0))
    B, sigma = B[:, alive], sigma[alive]
    while sigma.size > 1:
        W = B / sigma.astype(np.float32).astype(np.float64)
        W /= np.linalg.norm(W, axis=0)
        if np.linalg.cond(W.T @ W) <= MAX_CONDITION:
            break
        B, sigma = B[:, :-1], sigma[:-1]
    return B, sigma


#: How far `refitted_sigma` may move a component's weight step^2 / sigma_k: a factor within
#: these bounds (and sigma stays finite and > 0 in binary32).
WEIGHT_GAIN_LIMITS = (0.5, 2.0)


def refitted_sigma(sigma: np.ndarray, Q: np.ndarray, B: np.ndarray, a2: np.ndarray,
                   b2: np.ndarray, error: np.ndarray, step: float,
                   steps: np.ndarray | None = None) -> np.ndarray:
    """The singular values to store (binary32) for the quantized factors A (m, r) and B (n, r)
    of a plane whose exact projections P = X V (unit basis V, |P_k|^2 = sigma_k^2) were
    quantized to A with squared error `error` (per component, plane units), and Q = V Sigma
    to B; a2 and b2 are the sums of squares of A's and B's columns (`ColumnStats.squares`).
    Each component's weight c_k = step^2 / sigma_k is refitted by least squares so that
    c_k a_k b_k^T best matches the plane's own component p_k v_k^T,

        c_k = (a_k . p_k) (v_k . b_k) / (|a_k|^2 |b_k|^2).

    The dead zone pulls the integers toward zero and coarse components' integers are few, so
    the decoder's step^2 / sigma_k is not the least-squares scale of what was stored; this
    takes back part of that error for no bytes (studies/recon_study.py). The terms between
    components are left out: they are products of two quantization errors (and including them
    measured no better). a_k . p_k comes from the quantizer's error sum, no second pass over
    the plane: |p_k - step a_k|^2 = sigma_k^2 - 2 step a_k . p_k + step^2 |a_k|^2 (the
    integers carry their coefficients' signs). `steps`: A's step per component when they
    differ from `step` (`codec.quantize.component_steps`): the weight without a refit is then
    steps_k step / sigma_k, and |p_k - steps_k a_k|^2 gives a_k . p_k. The quantizer's sums
    are the same bits on both kernel paths, and so are the values stored."""
    sigma = np.asarray(sigma, dtype=np.float64)
    stored = sigma.astype(np.float32)
    if not sigma.size:
        return stored
    a_steps = np.full(sigma.size, step) if steps is None else np.asarray(steps)[:sigma.size]
    today = (step * a_steps) / stored.astype(np.float64)
    ap = (sigma * sigma + (a_steps * a_steps) * a2 - error) / (2.0 * a_steps)
    ap *= (Q.astype(np.float64) * B).sum(axis=0) / sigma  # (a_k . p_k) (v_k . b_k)
    denominator = a2 * b2
    fitted = np.divide(ap, denominator, out=today.copy(), where=denominator > 0)
    low, high = WEIGHT_GAIN_LIMITS
    np.minimum(np.maximum(fitted, today * low, out=fitted), today * high, out=fitted)
    refitted = ((step * step) / fitted).astype(np.float32)
    keep = ~(np.isfinite(refitted) & (refitted > 0))  # NaN or an overflow: as they were
    refitted[keep] = stored[keep]
    return refitted
