"""Exact reconstruction of version 2 planes (spec §5.1): X = A diag(W) B^T * 2^-F in integers.

A residual corrects the decoded samples only if every decoder decodes the same samples, so the
planes of a version 2 file are not computed in binary32 in any order (version 1's rule, where
BLAS kernels and other decoders differ by a rounding) but as integer products: with integer
weights W_k = round(2^F * step^2 / sigma_k) and integer factors, every product and partial sum
of V = A diag(W) B^T is an integer below 2^53 when max|A| * max|B| * sum(W) < 2^53, so binary64
(BLAS dgemm, JavaScript Numbers) computes V exactly in any order. The plane is V * 2^-F rounded
once to binary32.
"""

from __future__ import annotations

import itertools
import math
import operator

import numpy as np

from ..errors import SvdiError
from ..runtime import kernels

#: Every partial sum of V stays below this (binary64 holds every integer up to it exactly).
EXACT_LIMIT = 1 << 53
#: |A| and |B| of an exact plane stay below this: binary32 holds the integers, so decoders may
#: keep the factors in binary32 (half the memory) and widen them for the product. Strict, so
#: that 2^24 + 1, which binary32 rounds to 2^24, is still refused there.
FACTOR_LIMIT = 1 << 24
#: Largest shift F (spec §3).
MAX_SHIFT = 63
#: Matrix elements of the binary64 temporaries of one piece of a product (left rows and
#: output rows), so that the exact product adds little memory per thread (spec §5 Resources).
PIECE_ELEMENTS = 1 << 15


def weights(step: float, sigma: np.ndarray, shift: int, what: str) -> tuple[np.ndarray, int]:
    """W_k = floor(2^F y_k + 1/2) with y_k = fl64(fl64(step * step) / sigma_k), as binary64
    integers, and their sum (exact). Raises SvdiError if a y_k is not finite or a W_k exceeds
    2^53 (spec §5.1)."""
    compiled = kernels.get()
    if compiled is not None:  # one call for the loop below, where it accepts the values
        found = compiled.exact_weights(sigma, float(step), shift)
        if found is not None:
            return found
    scalar = _scalar_weights(step, sigma, shift)
    if scalar is not None:
        return scalar
    with np.errstate(all="ignore"):
        y = np.float64(step) * np.float64(step) / np.asarray(sigma, dtype=np.float64)
        scaled = np.ldexp(y, shift)  # exact: a power of two (or inf, refused below)
    if not np.all(np.isfinite(scaled)) or (scaled.size and scaled.max() > EXACT_LIMIT):
        raise SvdiError(f"{what}: exact weight exceeds 2^53 (step {step}, shift {shift})")
    whole = np.floor(scaled)
    w = whole + (scaled - whole >= 0.5)  # scaled - whole is exact: floor(x + 1/2) exactly
    return w, sum(map(int, w.tolist()))


def _scalar_weights(step: float, sigma: np.ndarray, shift: int
                    ) -> tuple[np.ndarray, int] | None:
    """`weights` of a valid plane one value at a time, in Python floats (the same IEEE
    binary64 operations: a decoder's few dozen weights cost less than numpy's per-call work),
    or None wherever `weights` raises (it then raises with its own message)."""
    square = float(step) * float(step)  # IEEE binary64 as numpy's, inf without a warning
    ldexp = math.ldexp
    try:
        # exact: a power of two
        scaled = [ldexp(square / s, shift) for s in np.asarray(sigma, dtype=np.float64).tolist()]
    except (ZeroDivisionError, OverflowError):  # numpy's inf or nan, refused as such
        return None
    # the checks and floors as C loops over the list, one comprehension left in bytecode
    if not all(map(math.isfinite, scaled)) or (scaled and max(scaled) > EXACT_LIMIT):
        return None
    w = [whole + (x - whole >= 0.5)  # floor(x + 1/2) exactly
         for x, whole in zip(scaled, map(math.floor, scaled))]
    return np.array(w, dtype=np.float64), sum(w)


def weight_terms(step: float, sigma: np.ndarray) -> list[float]:
    """The y_k = fl64(fl64(step * step) / sigma_k) of `weights`, as Python floats."""
    with np.errstate(all="ignore"):
        return (np.float64(step) * np.float64(step)
                / np.asarray(sigma, dtype=np.float64)).tolist()


def scalar_weight_sum(y: list[float], shift: int) -> int | None:
    """sum(W) of `weights` at this shift from its y_k (`weight_terms`), or None where `weights`
    raises. The same IEEE operations one value at a time: `choose_shift` tries several shifts
    of a few dozen weights, where numpy's per-call cost is most of the work (and C loops over
    the lists, as `_scalar_weights`, where a loop in bytecode would be)."""
    ldexp = math.ldexp
    try:
        scaled = [ldexp(value, shift) for value in y]  # exact: a power of two
    except OverflowError:  # numpy's inf, refused as such
        return None
    if not all(map(math.isfinite, scaled)) or (scaled and max(scaled) > EXACT_LIMIT):
        return None
    wholes = list(map(math.floor, scaled))
    # floor(x + 1/2) exactly, as `weights`: the floors, plus one where x - floor(x) >= 1/2
    fractions = map(operator.sub, scaled, wholes)
    return sum(wholes) + sum(map(operator.ge, fractions, itertools.repeat(0.5)))


def check_bound(max_a: int, max_b: int, weight_sum: int, what: str) -> None:
    """The rule of spec §5.1 for factors of these largest magnitudes."""
    if max_a >= FACTOR_LIMIT or max_b >= FACTOR_LIMIT:
        raise SvdiError(f"{what}: factor integers of magnitude {max(max_a, max_b)} reach 2^24 "
                        "in an exact plane")
    if max_a * max_b * weight_sum >= EXACT_LIMIT:
        raise SvdiError(f"{what}: max|A| * max|B| * sum(W) = {max_a * max_b * weight_sum} "
                        "breaks the exact reconstruction bound 2^53")


def largest_left(max_b: int, weight_sum: int) -> int:
    """The largest max|A| that `check_bound` accepts with this max|B| and sum(W), or -1 if
    none: what the compiled product (`_kernels.exact_product`) compares a piece's max|A| with
    before it multiplies."""
    if max_b >= FACTOR_LIMIT:
        return -1
    product = max_b * weight_sum
    largest = FACTOR_LIMIT - 1
    if product:
        largest = min(largest, (EXACT_LIMIT - 1) // product)
    return largest


def magnitude(values: np.ndarray) -> int:
    """max |value| of an integer-valued array, as a Python int (0 if empty)."""
    if values.size == 0:
        return 0
    # the ufuncs' reductions: ndarray.max and .min go through numpy's Python wrappers
    return int(max(abs(float(np.maximum.reduce(values, axis=None))),
                   abs(float(np.minimum.reduce(values, axis=None)))))


def choose_shift(step: float, sigma: np.ndarray, max_a: int, max_b: int, what: str) -> int:
    """The largest F <= MAX_SHIFT for which the plane's weights and factors keep the bound:
    the most precise exact reconstruction (the encoder's choice; any valid F decodes).
    Each W_k only grows with F, so the valid shifts are 0..F: the search starts where
    max|A| max|B| 2^F sum(y_k) reaches 2^53 (the rounding of the W_k moves the last valid
    shift by one at most, rarely) and steps to the last valid one."""
    y = weight_terms(step, sigma)

    def valid(shift: int) -> bool:
        total = scalar_weight_sum(y, shift)
        if total is None:
            return False
        try:
            check_bound(max_a, max_b, total, what)
        except SvdiError:
            return False
        return True
    shift = estimated_shift(step, sigma, max_a, max_b)
    if valid(shift):  # then valid(0) too
        while shift < MAX_SHIFT and valid(shift + 1):
            shift += 1
        return shift
    if shift == 0 or not valid(0):
        raise SvdiError(f"{what}: no exact reconstruction fits 2^53 (factor integers up to "
                        f"{max(max_a, max_b)})")
    while not valid(shift - 1):  # valid(0) holds: stops there at the latest
        shift -= 1
    return shift - 1


def estimated_shift(step: float, sigma: np.ndarray, max_a: int, max_b: int) -> int:
    """The F at which max|A| max|B| sum(2^F y_k) is just below 2^53, within 0..MAX_SHIFT: the
    start of `choose_shift`'s search (the W_k are the 2^F y_k rounded)."""
    with np.errstate(all="ignore"):
        y = np.float64(step) * np.float64(step) / np.asarray(sigma, dtype=np.float64)
        total = float(y.sum()) * max(max_a, 1) * max(max_b, 1)
    if not math.isfinite(total) or total <= 0.0:
        return 0
    return min(MAX_SHIFT, max(0, math.floor(53 - math.log2(total))))


def weight_rounding_error(step: float, sigma: np.ndarray, shift: int, elements: int) -> float:
    """The RMS error over a plane's `elements` matrix entries that rounding its weights to
    integers adds to its reconstruction (W_k = round(2^F y_k), `weights`): component k, of
    amplitude sigma_k, is scaled by W_k / (2^F y_k) instead of 1. Small wherever F leaves the
    weights many bits; at the finest steps of large planes (hundreds of components, factor
    integers near 2^24) the bound 2^53 leaves the first component's weight a few dozen, and a
    weight of 36 for 35.53 brightens the whole plane by 1.3 %."""
    values = np.asarray(sigma, dtype=np.float64)
    if values.size == 0 or elements <= 0:
        return 0.0
    w, _ = weights(step, values, shift, "plane")
    with np.errstate(all="ignore"):
        scaled = np.ldexp(np.float64(step) * np.float64(step) / values, shift)
        drift = np.where(scaled > 0, w / scaled - 1.0, 0.0) * values
    return float(np.sqrt(np.sum(drift * drift) / elements))


def exact_product(left: np.ndarray, w: np.ndarray, right_t: np.ndarray, shift: int,
                  means: np.ndarray | None = None) -> np.ndarray:
    """fl32((left * w) @ right_t * 2^-F) for integer-valued left (rows, r) and right_t
    (r, cols) that keep the bound: float32 (rows, cols); with the columns' means (cols,),
    fl32(fl64(V 2^-F + mean)), one binary64 addition (spec §5.1). Computed in pieces of rows
    whose binary64 temporaries hold at most PIECE_ELEMENTS elements (exact in any piece)."""
    rows, cols = left.shape[0], right_t.shape[1]
    out = np.empty((rows, cols), dtype=np.float32)
    if rows == 0 or cols == 0:
        return out
    if means is not None:
        means = np.asarray(means, dtype=np.float64)
    right = right_t if right_t.dtype == np.float64 else right_t.astype(np.float64)
    per = max(1, PIECE_ELEMENTS // max(left.shape[1], cols, 1))
    unit = math.ldexp(1.0, -shift)
    for a in range(0, rows, per):
        piece = left[a:a + per].astype(np.float64)
        piece *= w
        product = piece @ right
        product *= unit
        if means is not None:
            product += means
        out[a:a + per] = product
    return out
