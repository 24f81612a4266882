"""Residuals (spec §4.1, §5.3): the integers q that bring decoded samples back within a bound.

Decoding: sample = clamp(x + q * step) for integer types, fl32(x + fl64(q * step)) for float32,
fl64(x + fl64(q * step)) for float64. Encoding chooses q so that |sample - original| <= E at
every sample: for integers with step 2E + 1 (E = 0: q is the difference, lossless); for floats
with step 2E, every q checked with the decoder's own formula and moved where rounding would
break the bound, or, for E = 0, with a power-of-two step that divides every sample and
reconstruction (exact, where the differences fit 31 bits), or over no layer (rank 0) with a
step of a grid every sample lies on (`grid_steps`).
All whole-array numpy, no loop over samples (the decoder's `unpredict_rows` in C where the
extension is built).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache

import numpy as np
import zstandard

from ..errors import SvdiError
from ..runtime import kernels
from .coding import HORIZONTAL, PLANAR, VERTICAL, narrow


class ResidualRangeError(SvdiError):
    """The residual of a bound would need |q| beyond 2^31 - 1 (spec §4.1): the layer under it
    is too far from the samples (a finer layer may do)."""


#: Largest |q| (spec §4.1).
MAX_Q = (1 << 31) - 1
#: Largest step of 32-bit integer samples (spec §4.1: |q * step| < 2^52, exact in binary64);
#: the format's records.MAX_WIDE_STEP.
WIDE_STEP = (1 << 21) - 1


# ----------------------------------------------------------------------------- decoding

#: The element types of residual blocks (spec §4.1), which `unpredict_rows` compiles.
RESIDUAL_ELEMENTS = (np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32))


def unpredict_rows(d: np.ndarray, predictor: int, carry: np.ndarray | None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of one residual grid with the predictor undone, in int64 (wrapping), given the
    `carry` of the rows before them in the same block (None at the block's first row): the
    previous row of the grid (vertical) or of its column sums (planar). Returns the rows and
    the carry for the next ones (the compiled path updates the carry given in place)."""
    compiled = kernels.get()
    if compiled is not None and d.ndim == 2 and d.dtype in RESIDUAL_ELEMENTS:
        g = np.empty(d.shape, dtype=np.int64)
        if predictor in (VERTICAL, PLANAR) and carry is None:
            carry = np.zeros(d.shape[1], dtype=np.int64)
        compiled.unpredict_rows(d, predictor, carry if predictor in (VERTICAL, PLANAR)
                                else None, g)
        return g, carry
    if predictor in (VERTICAL, PLANAR):
        g = np.cumsum(d, axis=0, dtype=np.int64)  # widened as it sums: one pass, a new array
        if carry is not None:
            g += carry
        carry = g[-1].copy()
        if predictor == PLANAR:
            np.cumsum(g, axis=1, out=g)
    elif predictor == HORIZONTAL:
        g = np.cumsum(d, axis=1, dtype=np.int64)
    else:
        g = d.astype(np.int64)
    return g, carry


def check_q(q: np.ndarray, what: str) -> None:
    if q.size and (int(q.max()) > MAX_Q or int(q.min()) < -MAX_Q):
        raise SvdiError(f"{what}: residual beyond 2^31 - 1")


def wrap16(values: np.ndarray) -> np.ndarray:
    """The int16 congruent to each value modulo 2^16 (a wrapped block's q, spec §4.1)."""
    return values.astype(np.int16)  # numpy's narrowing cast of integers keeps the low 16 bits


def apply(samples: np.ndarray, q: np.ndarray, step: float, wrapped: bool = False
          ) -> np.ndarray:
    """The corrected samples (spec §5.3), in the samples' type; float results are checked by
    the caller (a non-finite sample makes the file invalid). `wrapped` (16-bit samples): the
    sample of the type congruent to x + q * step modulo 2^16 instead of the clamped sum."""
    if wrapped:
        wide = np.add(samples, q if step == 1 else q * int(step), dtype=np.int64)
        return wide.astype(samples.dtype)  # the low 16 bits: the congruent value of the type
    if samples.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            wide = samples.astype(np.float64) + q.astype(np.float64) * step
            return wide.astype(samples.dtype)
    low, high = integer_range(samples.dtype)
    # |q * step| < 2^52: no int64 overflow; q is not changed (a reference channel's q is
    # added to another channel's after this)
    wide = np.add(samples, q if step == 1 else q * int(step), dtype=np.int64)
    np.maximum(wide, low, out=wide)  # (two ufuncs: np.clip's wrapper costs more on a band
    np.minimum(wide, high, out=wide)  # of one short row, as a file of one-row blocks has)
    return wide.astype(samples.dtype)


@cache
def integer_range(dtype: np.dtype) -> tuple[int, int]:
    """(min, max) of an integer type (np.iinfo, made once a type: the residual phase asks
    for every band of every block)."""
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


# ----------------------------------------------------------------------------- encoding


def integer_bound(max_error: float, dtype: np.dtype) -> int:
    """The integer bound of a sample type: floor(E), at most the type's range (max - min), and
    for 32-bit types at most (WIDE_STEP - 1) / 2, so that the step 2E + 1 is a valid one."""
    info = np.iinfo(dtype)
    most = (WIDE_STEP - 1) // 2 if info.bits >= 32 else int(info.max) - int(info.min)
    return int(min(math.floor(max_error), most))


def quantize_integers(x: np.ndarray, decoded: np.ndarray, bound: int
                      ) -> tuple[np.ndarray, int]:
    """(q, step) with |clamp(decoded + q * step) - x| <= bound: step 2 * bound + 1 and q the
    nearest multiple (the clamp only moves a sample towards the type's range, where x is)."""
    step = 2 * bound + 1
    q = np.floor_divide(x.astype(np.int64) - decoded + bound, step)
    return q, step


def _float_within(x: np.ndarray, decoded: np.ndarray, q: np.ndarray, step: float,
                  bound: float) -> np.ndarray:
    """Where the decoder's formula brings these q within the bound (compared in binary64)."""
    y = apply(decoded, q, step).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return np.abs(y - x.astype(np.float64)) <= bound


def quantize_floats(x: np.ndarray, decoded: np.ndarray, bound: float
                    ) -> tuple[np.ndarray, float]:
    """(q, step) for float32 or float64 samples, verified with the decoder's formula at every
    sample.

    bound > 0: step 2E; where rounding breaks the bound the neighbouring q are tried, and if
    some sample still fails the step halves (a step of E always has a q within E / 2 of x
    before rounding, so that fl32 keeps it within E). Where 2E is finer than the spacing of
    the largest samples, the exact coding below keeps the bound too: it is taken when its q
    are estimated to cost fewer bytes (`residual_bytes`), and where step 2E would need q
    beyond 31 bits.
    bound = 0: exact, with the step a power of two dividing every x and decoded value;
    refused where q would not fit 31 bits."""
    x64, d64 = x.astype(np.float64), decoded.astype(np.float64)
    if not (np.all(np.isfinite(x64)) and np.all(np.isfinite(d64))):
        raise SvdiError(f"max_error needs finite {x.dtype} samples")
    if bound == 0:
        if not d64.any():  # no layer (rank 0): the samples alone set the step
            return _samples_on_a_grid(x)
        return _exact_floats(x, decoded, x64, d64)
    try:
        bounded = _bounded_floats(x, decoded, x64, d64, bound)
    except ResidualRangeError:
        return _exact_instead(x, decoded, x64, d64, bound)
    if 2.0 * bound > _coarsest_spacing(x64, d64, x.dtype):
        return bounded  # coarser than every sample's own resolution: the exact q are larger
    try:
        exact = _exact_floats(x, decoded, x64, d64)
    except SvdiError:
        return bounded
    return exact if residual_bytes(exact[0]) < residual_bytes(bounded[0]) else bounded


def _exact_instead(x: np.ndarray, decoded: np.ndarray, x64: np.ndarray, d64: np.ndarray,
                   bound: float) -> tuple[np.ndarray, float]:
    """The exact coding, for a bound whose step 2E would need q beyond 31 bits."""
    try:
        return _exact_floats(x, decoded, x64, d64)
    except SvdiError:
        raise ResidualRangeError(f"max_error {bound} is too small for these {x.dtype} "
                                 "samples' range (residuals beyond 2^31 steps)") from None


def _coarsest_spacing(x64: np.ndarray, d64: np.ndarray, dtype: np.dtype) -> float:
    """The spacing of the type's values at the largest magnitude among x and decoded, the
    coarsest any of these samples has: a step 2E above it is coarser than every sample's own,
    so the exact coding's q (at the finest sample's spacing) are the larger."""
    largest = max(float(np.abs(x64).max(initial=0.0)), float(np.abs(d64).max(initial=0.0)))
    with np.errstate(over="ignore"):  # the type's largest value: infinite, no step is coarser
        return float(np.spacing(np.asarray(largest, dtype=dtype)))


def residual_bytes(q: np.ndarray) -> int:
    """An estimate of what q costs once coded: the bytes of zstd at a fast level of q's
    differences along each row (the horizontal predictor, one of those the coder tries), in
    the narrowest type, as the coder stores them. The q's magnitudes alone (sum of
    log2(1 + |d|)) chose the larger file for 0..1 float32 at E = 1e-10 ... 1e-8."""
    rows = q.reshape(q.shape[0], -1) if q.ndim > 1 else q.reshape(1, -1)
    d = np.diff(rows, axis=1, prepend=0)
    try:
        d = narrow(d)
    except OverflowError:
        d = d.astype(np.int64)
    return len(zstandard.ZstdCompressor(level=ESTIMATE_ZSTD_LEVEL).compress(d.tobytes()))


#: zstd level of `residual_bytes`' estimate (the residual blocks themselves are coded at
#: tuning.RESIDUAL_ZSTD_LEVEL).
ESTIMATE_ZSTD_LEVEL = 3


def frame_bytes(residuals: np.ndarray, level: int = ESTIMATE_ZSTD_LEVEL) -> int:
    """An estimate of what a residual block's elements cost: zstd at a fast level of their
    bytes as stored (the choice between a block's int32 and wrapped int16 forms)."""
    raw = np.ascontiguousarray(residuals).tobytes()
    return len(zstandard.ZstdCompressor(level=level).compress(raw))


#: How many times `_bounded_floats` may halve the step 2E.
HALVINGS = 7


def _float_steps(x64: np.ndarray, d64: np.ndarray, dtype: np.dtype, bound: float
                 ) -> Iterator[float]:
    """The steps `_bounded_floats` tries in turn: 2E; then 2E less four spacings of the type
    at the largest magnitude (x, decoded or a result); then 2E halved, HALVINGS times. At 2E
    the one q whose value is within E of x has no margin, and the decoder's rounding to the
    type pushes a few samples of large magnitude out (49 of 1,280,000 at values 10 - 20 and
    E = 0.01); a hair under 2E some q is within E - 2 spacings before the rounding (at most
    one spacing, product and sum), so every sample has one and the channel keeps a step of
    almost 2E instead of E."""
    step = 2.0 * bound
    yield step
    largest = max(float(np.abs(x64).max(initial=0.0)), float(np.abs(d64).max(initial=0.0)))
    # (at most the type's largest finite value, whose spacing is its gap below: beyond it the
    # cast overflows to inf, and numpy's spacing of the largest value is inf)
    top = np.asarray(min(largest + bound, float(np.finfo(dtype).max)), dtype=dtype)
    with np.errstate(over="ignore"):
        spacing = float(np.spacing(top))
    if not math.isfinite(spacing):
        spacing = float(top - np.nextafter(top, top.dtype.type(0)))
    if 4.0 * spacing < bound:  # else 2E is near the type's resolution: halve (or be exact)
        yield step - 4.0 * spacing
    for _ in range(HALVINGS):
        step /= 2.0
        yield step


def _bounded_floats(x: np.ndarray, decoded: np.ndarray, x64: np.ndarray, d64: np.ndarray,
                    bound: float) -> tuple[np.ndarray, float]:
    """(q, step) for a bound E > 0: step 2E, or a hair under it, halved while some sample
    stays outside E (x64, d64: x and decoded in binary64, made once by the caller)."""
    for step in _float_steps(x64, d64, x.dtype, bound):
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.rint((x64 - d64) / step)
        if np.any(np.abs(q) > MAX_Q):
            raise ResidualRangeError(f"max_error {bound} is too small for these {x.dtype} "
                                     "samples' range (residuals beyond 2^31 steps)")
        q = q.astype(np.int64)
        bad = ~_float_within(x, decoded, q, step, bound)
        for move in (-1, 1):
            if not bad.any():
                break
            idx = np.flatnonzero(bad)
            trial = q.reshape(-1)[idx] + move
            ok = _float_within(x.reshape(-1)[idx], decoded.reshape(-1)[idx], trial, step,
                               bound)
            q.reshape(-1)[idx[ok]] = trial[ok]
            bad.reshape(-1)[idx[ok]] = False
        if not bad.any():
            return q, step
    raise SvdiError(f"max_error {bound}: {x.dtype} rounding keeps some samples outside the "
                    "bound")


def lowest_bit(values: np.ndarray) -> int:
    """The exponent of the largest power of two that divides every one of these non-zero
    binary64 magnitudes: the step at which their differences are exact integers."""
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0 ** 53).astype(np.int64)  # exact: 53-bit significands
    low = whole & -whole
    _, position = np.frexp(low.astype(np.float64))  # low = 2^(position - 1)
    return int((exponent - 53 + position - 1).min())


#: Bit depths b whose integers scaled to 0...1 (k / (2^b - 1)) `grid_quantize` finds:
#: 8-bit and 16-bit images as floats, and the depths of scientific sensors between.
GRID_DEPTHS = (8, 10, 12, 14, 16)


def grid_steps(x64: np.ndarray, dtype: np.dtype) -> list[float]:
    """The steps a lossless residual over no layer may take, coarsest first: the largest power
    of two dividing every sample (1 for integers, 2^-8 for k / 256), and 1 / (2^b - 1) for the
    GRID_DEPTHS, in binary64 and rounded to the type (k / 255 computed as a division, or as
    k times the type's 1 / 255)."""
    values = np.abs(x64[x64 != 0])
    steps = {math.ldexp(1.0, lowest_bit(values))} if values.size else {1.0}
    for depth in GRID_DEPTHS:
        scale = 1.0 / ((1 << depth) - 1)
        steps.update((scale, float(np.asarray(scale, dtype=dtype))))
    return sorted(steps, reverse=True)


def grid_quantize(x: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(q, step) of float samples over no layer (reconstructions all zero): the coarsest of
    `grid_steps` whose q = rint(x / step), within 31 bits, give back every sample by the
    decoder's formula fl(q * step); None where none does. Integers in float32 take step 1 (q
    the integers themselves), 8-bit samples scaled to 0...1 step 1/255 (q = 0...255)."""
    x64 = x.astype(np.float64)
    if not np.all(np.isfinite(x64)):
        return None
    zeros = np.zeros(x.shape, dtype=x.dtype)
    largest = float(np.abs(x64).max(initial=0.0))
    for step in grid_steps(x64, x.dtype):
        if largest / step > MAX_Q:
            continue
        q = np.rint(x64 / step).astype(np.int64)
        if np.array_equal(apply(zeros, q, step), x):
            return q, step
    return None


def _samples_on_a_grid(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Lossless floats over no layer: `grid_quantize`, where the exact step of a layer's
    differences may need q beyond 31 bits. Refused, saying what to do, where no step does."""
    found = grid_quantize(x)
    if found is not None:
        return found
    raise ResidualRangeError(
        f"max_error=0 cannot code these {x.dtype} samples exactly: no step of the format's "
        "31-bit residuals reaches them all (neither a power of two dividing every sample nor "
        f"1/(2^b - 1) for b in {', '.join(map(str, GRID_DEPTHS))}); give max_error > 0 "
        "(half the finest difference that matters keeps the values within it), or integer "
        "samples (uint8, uint16) if they come from integers")


def _exact_floats(x: np.ndarray, decoded: np.ndarray, x64: np.ndarray, d64: np.ndarray
                  ) -> tuple[np.ndarray, float]:
    """Lossless floats: step 2^e, e the smallest ulp exponent among the non-zero samples and
    reconstructions, so that x - decoded is an exact multiple of the step. Refused where a
    difference exceeds 2^31 - 1 steps: float64 samples almost always (their 53-bit
    significands against the low-rank layer's binary32 planes), unless they lie on a coarse
    grid (integers, fixed-point values). x64, d64 as in `_bounded_floats`."""
    info = np.finfo(x.dtype)
    values = np.concatenate([x64.reshape(-1), d64.reshape(-1)])
    values = np.abs(values[values != 0])
    if values.size == 0:
        return np.zeros(x64.shape, dtype=np.int64), 1.0
    if x.dtype == np.float64:
        step = math.ldexp(1.0, lowest_bit(values))
    else:
        _, exponent = np.frexp(values.min())
        step = math.ldexp(1.0, max(int(exponent) - info.nmant - 1, info.minexp - info.nmant))
    q = (x64 - d64) / step  # exact: both are multiples of the step
    if np.any(np.abs(q) > MAX_Q):
        # Reconstructions near zero have fine spacings: a step dividing them all leaves the
        # large differences beyond 31 bits (0...255 or 0...1 in float32, at any quality).
        raise ResidualRangeError(f"max_error=0 cannot code these {x.dtype} samples exactly "
                                 "over a low-rank layer: their differences from it exceed the "
                                 "31-bit residuals of the format (give max_error > 0, or leave "
                                 "quality, rank, energy, layout and centre to the encoder, "
                                 "which then codes them with no layer where it can)")
    q = q.astype(np.int64)
    if not np.array_equal(apply(decoded, q, step), x):
        raise SvdiError(f"max_error=0: {x.dtype} samples not reproduced exactly")
    return q, step
