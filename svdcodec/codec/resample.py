"""Pillow's BILINEAR and BOX resize of "F" images, reproduced in numpy to run in bands of rows.

The decoder's chroma upsampling is defined as PIL's resize(BILINEAR) of the float32 chroma plane.
Pillow only resizes whole images (its box= argument rounds the box to float32, which shifts the
coefficients), and a whole 19 MP float32 plane is 75 MB. This module computes Pillow's own
coefficients (precompute_coeffs in Resample.c, in double precision) and applies them the same
way: horizontal pass accumulated in double and stored as float32, then the vertical pass. The
result is bit-identical to Pillow's for any band of output rows. The encoder's chroma
subsampling of odd-sized images (BOX, whose windows are then not pixel pairs) uses the same
machinery.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from ..runtime import band_sizes, kernels
from ..runtime.threads import run_bands


def _bilinear(x: np.ndarray) -> np.ndarray:
    return np.maximum(1.0 - np.abs(x), 0.0)


def _box(x: np.ndarray) -> np.ndarray:
    return ((x > -0.5) & (x <= 0.5)).astype(np.float64)


#: Pillow's filters: (function, support).
FILTERS = {"bilinear": (_bilinear, 1.0), "box": (_box, 0.5)}


def coefficients(in_size: int, out_size: int, kind: str = "bilinear"
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(first input index per output index, weights (out_size, taps) in float64), as Pillow's."""
    function, filter_support = FILTERS[kind]
    scale = in_size / out_size  # Pillow: (double)(in1 - in0) / outSize, exact below 2**24
    filterscale = max(scale, 1.0)
    support = filter_support * filterscale
    center = (np.arange(out_size, dtype=np.float64) + 0.5) * scale
    first = np.maximum(np.trunc(center - support + 0.5), 0).astype(np.int64)
    span = np.minimum(np.trunc(center + support + 0.5).astype(np.int64), in_size) - first
    taps = max(int(span.max()), 1)
    offsets = np.arange(taps)
    x = ((first[:, None] + offsets).astype(np.float64) - center[:, None] + 0.5) * (1.0 / filterscale)
    weights = function(x)
    weights[offsets >= span[:, None]] = 0.0
    total = np.zeros(out_size)
    for t in range(taps):  # Pillow sums the weights in this order
        total = total + weights[:, t]
    np.divide(weights, total[:, None], out=weights, where=total[:, None] != 0)
    return first, weights


#: Longest axis (output samples) whose filter taps `kept_coefficients` keeps between images:
#: the taps of a 16,384-sample axis take about half a megabyte.
KEPT_COEFFICIENT_SAMPLES = 1 << 14


def kept_coefficients(in_size: int, out_size: int, kind: str = "bilinear"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`coefficients`, read-only, kept for the last few sizes of at most
    KEPT_COEFFICIENT_SAMPLES outputs (both chroma planes of an image, and images of one
    size, ask for the same axes; a longer axis's taps are made for its resampler alone)."""
    if out_size > KEPT_COEFFICIENT_SAMPLES:
        return coefficients(in_size, out_size, kind)
    return _kept_coefficients(in_size, out_size, kind)


@functools.lru_cache(maxsize=8)
def _kept_coefficients(in_size: int, out_size: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    first, weights = coefficients(in_size, out_size, kind)
    first.flags.writeable = weights.flags.writeable = False
    return first, weights


def exact_halving(n_in: int, n_out: int, kind: str) -> bool:
    """Whether an axis resized from n_in to n_out samples takes the fast path: an exact 2x, up
    (bilinear) or down (box)."""
    return n_out == 2 * n_in if kind == "bilinear" else n_in == 2 * n_out


class Resampler:
    """Rows of Pillow's resize((width, height), BILINEAR or BOX) of an "F" image, band by band.

    `source(lo, hi)` returns rows lo..hi of the input as float32, so the input need not exist
    whole either (the encoder computes chroma rows from the pixels on demand).
    """

    def __init__(self, source: Callable[[int, int], np.ndarray], in_shape: tuple[int, int],
                 height: int, width: int, kind: str = "bilinear") -> None:
        self.source = source
        self.in_h, self.in_w = in_shape
        self.height, self.width, self.kind = height, width, kind

    # The coefficients only when an axis is not an exact 2x or the compiled kernel reads them
    # (`tables`): the decoder's usual chroma never needs them, and computing them costs as much
    # as a small image's colour conversion. An axis of up to KEPT_COEFFICIENT_SAMPLES keeps them
    # for the next image of its size (`kept_coefficients`); a longer one's are held by the
    # resampler and freed with its image, as a module-wide cache of every size would hold them
    # after the decode (24 MiB for an image of 2^20 rows of odd height).
    @functools.cached_property
    def _vertical(self) -> tuple[np.ndarray, np.ndarray]:
        return kept_coefficients(self.in_h, self.height, self.kind)

    @property
    def vfirst(self) -> np.ndarray:
        return self._vertical[0]

    @property
    def vweights(self) -> np.ndarray:
        return self._vertical[1]

    @functools.cached_property
    def _across(self) -> tuple[np.ndarray, list[np.ndarray]]:
        first, weights = kept_coefficients(self.in_w, self.width, self.kind)
        # Column indices per tap, clamped: a tap past the window has weight 0 anyway.
        return weights, [np.minimum(first + t, self.in_w - 1) for t in range(weights.shape[1])]

    @property
    def hweights(self) -> np.ndarray:
        return self._across[0]

    @property
    def hindex(self) -> list[np.ndarray]:
        return self._across[1]

    @functools.cached_property
    def tables(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None,
                              np.ndarray | None]:
        """(vfirst, vweights, hindex, hweights), hindex and hweights by tap ((taps, width),
        int64 and float64): the filter's taps along each axis, None along an axis that keeps
        its size, as `_kernels.resample_chroma` reads them (made once per resampler, not per
        band). Pillow's weights on every axis: where `rows` doubles an axis exactly
        (`_double`), they are 1/4 and 3/4 (one sample, weight 1, at the ends) and an extra tap
        of weight 0, so the sums of finite samples are `_double`'s (up to the sign of a zero;
        the decoder's samples are finite)."""
        vertical = (None, None) if self.in_h == self.height else (self.vfirst, self.vweights)
        if self.in_w == self.width:
            return (*vertical, None, None)
        return (*vertical, np.ascontiguousarray(np.stack(self.hindex)),
                np.ascontiguousarray(self.hweights.T))

    def _horizontal(self, rows: np.ndarray) -> np.ndarray:
        if rows.shape[1] == self.width:  # Pillow skips a pass that does not change the size
            return rows
        if exact_halving(rows.shape[1], self.width, self.kind):
            out = np.empty((rows.shape[0], self.width), dtype=np.float32)
            _double(rows, out, axis=1) if self.kind == "bilinear" else _halve(rows, out, axis=1)
            return out
        acc = np.take(rows, self.hindex[0], axis=1) * self.hweights[:, 0]
        for t in range(1, len(self.hindex)):
            acc += np.take(rows, self.hindex[t], axis=1) * self.hweights[:, t]
        return acc.astype(np.float32)

    def source_rows(self, y0: int, y1: int) -> tuple[int, int]:
        """The input rows [lo, hi) that output rows y0..y1 (y0 < y1) read: a function of the
        shapes, known before any row is (the band renderer plans which chroma rows to
        reconstruct by it, before its `source` exists)."""
        in_h, height = self.in_h, self.height
        if in_h == height:
            return y0, y1
        if exact_halving(in_h, height, self.kind):
            if self.kind == "box":
                return 2 * y0, 2 * y1
            # output row y reads rows (y - 1) // 2 and (y + 1) // 2
            return max(y0 - 1, 0) // 2, min((y1 + 1) // 2 + 1, in_h)
        return (int(self.vfirst[y0]),
                min(int(self.vfirst[y1 - 1]) + self.vweights.shape[1], in_h))

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Output rows y0..y1 as float32 (y1 - y0, width)."""
        in_h = self.in_h
        lo, hi = self.source_rows(y0, y1)
        if in_h == self.height:
            return self._horizontal(self.source(lo, hi))
        if exact_halving(in_h, self.height, self.kind):
            out = np.empty((y1 - y0, self.width), dtype=np.float32)
            if self.kind == "box":
                _halve(self._horizontal(self.source(lo, hi)), out, axis=0)
            else:
                _double(self._horizontal(self.source(lo, hi)), out, axis=0, first=y0 - 2 * lo)
            return out
        first = self.vfirst[y0:y1]
        weights = self.vweights[y0:y1]
        band = self._horizontal(self.source(lo, hi))
        local = first - lo
        acc = band[local] * weights[:, :1]
        for t in range(1, weights.shape[1]):
            acc += band[np.minimum(local + t, hi - lo - 1)] * weights[:, t:t + 1]
        return acc.astype(np.float32)


class Bilinear(Resampler):
    """Rows of PIL.Image.fromarray(src, "F").resize((width, height), BILINEAR)."""

    def __init__(self, src: np.ndarray, height: int, width: int) -> None:
        super().__init__(lambda lo, hi: src[lo:hi], src.shape, height, width)


def _halve(src: np.ndarray, out: np.ndarray, axis: int) -> None:
    """Pillow's exact 2x BOX reduction along one axis: (a[2i] + a[2i+1]) / 2. Pillow sums
    a/2 + b/2 in double, exactly, then rounds once; float32 (a + b) * 0.5 rounds the same."""
    a = np.moveaxis(src, axis, 0)
    np.add(a[0::2], a[1::2], out=np.moveaxis(out, axis, 0))
    out *= np.float32(0.5)


def _double(src: np.ndarray, out: np.ndarray, axis: int, first: int = 0) -> None:
    """Pillow's exact 2x bilinear along one axis, for out's indices first.. of the doubled axis.

    Output 2i is a[i-1]/4 + 3a[i]/4 and 2i+1 is 3a[i]/4 + a[i+1]/4, one source sample at the two
    ends. The products are exact in float64, so with two terms the sum is Pillow's to the bit.
    """
    a = np.moveaxis(src, axis, 0)
    o = np.moveaxis(out, axis, 0)
    quarter = a.astype(np.float64)
    quarter *= 0.25
    three = quarter * 3.0
    n, count = a.shape[0], o.shape[0]
    # out index j = first + k; even j = 2i uses (i-1, i), odd j = 2i+1 uses (i, i+1).
    k0 = first % 2  # first k whose j is even
    even = slice(k0, count, 2)
    odd = slice(1 - k0, count, 2)
    ie = (first + k0) // 2  # source i of the first even output
    io = (first + 1 - k0) // 2  # source i of the first odd output
    ne = len(range(*even.indices(count)))
    no = len(range(*odd.indices(count)))
    ev = o[even]
    if ne:
        lo = max(ie, 1)
        start = lo - ie
        if start:  # j = 0: the first sample alone
            ev[0] = a[0]
        np.add(quarter[lo - 1:ie + ne - 1], three[lo:ie + ne], out=ev[start:])
    od = o[odd]
    if no:
        hi = min(io + no, n - 1)
        np.add(three[io:hi], quarter[io + 1:hi + 1], out=od[:hi - io])
        if hi < io + no:  # j = 2n - 1: the last sample alone
            od[-1] = a[n - 1]


def _upsampling(n_small: int, n_big: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's bilinear upsampling n_small -> n_big along one axis as (index, weight)
    pairs per tap: big sample j = sum over taps t of weight[j, t] * small[index[j, t]]."""
    first, weights = coefficients(n_small, n_big, "bilinear")
    index = np.minimum(first[:, None] + np.arange(weights.shape[1]), n_small - 1)
    return index, weights


@functools.lru_cache(maxsize=16)
def halving_tables(n_small: int, n_big: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U^T of the decoder's upsampling n_small -> n_big (`_upsampling`) as gather tables, and
    the Cholesky factor of U^T U (`_normal_cholesky`): (index (n_small, s) int64, weight
    (n_small, s) float64, chol). Row k of U^T is sum over s of weight[k, s] at big sample
    index[k, s], in increasing index order (padding: weight 0 at a valid index). Cached: an
    encoder halves the planes of a few sizes."""
    index, weights = _upsampling(n_small, n_big)
    big = np.repeat(np.arange(n_big), index.shape[1])
    small, w = index.ravel(), weights.ravel()
    keep = w != 0
    key = small[keep] * n_big + big[keep]  # duplicates (clamped taps) summed, in key order
    unique, inverse = np.unique(key, return_inverse=True)
    summed = np.zeros(unique.size)
    np.add.at(summed, inverse, w[keep])
    rows, cols = unique // n_big, unique % n_big
    counts = np.bincount(rows, minlength=n_small)
    slots = max(int(counts.max(initial=0)), 1)
    slot = np.arange(unique.size) - np.repeat(np.cumsum(counts) - counts, counts)
    gather_index = np.zeros((n_small, slots), dtype=np.int64)
    gather_weight = np.zeros((n_small, slots))
    starts = np.minimum(np.cumsum(counts) - counts, max(unique.size - 1, 0))
    gather_index[:] = cols[starts][:, None] if unique.size else 0
    gather_index[rows, slot] = cols
    gather_weight[rows, slot] = summed
    return gather_index, gather_weight, _normal_cholesky(index, weights, n_small)


def _normal_cholesky(index: np.ndarray, weights: np.ndarray, n_small: int) -> np.ndarray:
    """The Cholesky factor L (lower, banded: L[i, i - k] stored at [k, i]) of U^T U, by the
    compiled kernel where there is one (`banded_cholesky`'s bits: an image of a new size
    computes two of these before its chroma is halved, one step per sample of an axis)."""
    gram = normal_gram(index, weights, n_small)
    compiled = kernels.get()
    if compiled is None:
        return banded_cholesky(gram)
    out = np.empty_like(gram)
    compiled.banded_cholesky(gram, out)
    return out


def normal_gram(index: np.ndarray, weights: np.ndarray, n_small: int) -> np.ndarray:
    """U^T U of the upsampling (`_upsampling`'s index and weights), banded: its row i, column
    i - k at [k, i]."""
    taps = index.shape[1]
    width = int((index.max(axis=1) - index.min(axis=1)).max()) + 1 if taps else 1
    gram = np.zeros((width, n_small))
    for s in range(taps):
        for t in range(taps):
            k = index[:, s] - index[:, t]
            lower = k >= 0
            np.add.at(gram, (k[lower], index[lower, s]), weights[lower, s] * weights[lower, t])
    return gram


def banded_cholesky(gram: np.ndarray) -> np.ndarray:
    """The Cholesky factor L of a positive definite banded matrix, both stored by diagonals
    (`gram[k, i]` and the result's `[k, i]` hold row i, column i - k), float64.

    One step per row (a sample of the halved axis, not a pixel), on Python floats: the same binary64
    operations in the same order as on numpy's scalars (a sum from zero, then one rounded
    square root or division), without boxing each into an array scalar."""
    width, n = gram.shape
    rows = gram.T.tolist()
    column = [[0.0] * width for _ in range(n)]  # column[i][k] is L[i, i - k]
    for i in range(n):
        here = column[i]
        for k in range(min(width - 1, i), -1, -1):
            j = i - k
            there = column[j]
            products = 0.0
            for m in range(1, min(width - k, j + 1)):
                products += here[k + m] * there[m]
            total = rows[i][k] - products
            here[k] = math.sqrt(total) if k == 0 else total / there[0]
    return np.ascontiguousarray(np.array(column, dtype=np.float64).reshape(n, width).T)


def least_squares_half(rows: Callable[[int, int], np.ndarray], in_shape: tuple[int, int],
                       height: int, width: int, band: int | None = None) -> np.ndarray:
    """The height x width plane whose upsampling by the decoder (Pillow's BILINEAR resize to
    in_shape) is closest to the input in the least-squares sense, float32.

    Why not a 2x2 mean: the decoder's bilinear doubling after a box halving is a [1 6 1] / 8
    blur on every axis, and a decoded image encoded again is blurred again, generation after
    generation. The least-squares plane is the pseudo-inverse of the upsampling: a plane that
    the decoder doubled comes back as itself (up to the rounding of the pixels), and the
    doubled plane is the closest to the input the decoder can produce. Computed as
    (Uv^T Uv)^-1 Uv^T X Uh (Uh^T Uh)^-1: Uv^T X Uh by gather tables (`halving_tables`), output
    rows in bands of `band` (default: about `band_sizes.BAND_SAMPLES` input samples), each
    reading only the input rows it needs (`rows(lo, hi)`); then the banded normal equations
    solved along each axis. In float32, the plane's own type: the tables and the Cholesky
    factors are computed in float64 and narrowed; U^T U is well conditioned (tridiagonal, 5/4
    beside 3/8 away from the edges: its eigenvalues lie in [1/2, 2]), so the float32 sums and
    substitutions stay within about 2e-4 of the float64 solve on samples of up to 255 (some
    seven units in the last place), far below the rounding of the pixels. The
    compiled kernels (`lsq_gather`, `banded_solve`) give the same bits as numpy's order here.

    The bands of the gather, those of the solve along rows and ranges of columns of the solve
    down the columns (SOLVE_COLUMNS) run in threads (`run_bands`). The encoder halves its
    chroma planes one after the other, each on every thread (`encoder.source.PlaneSource.keep`).
    """
    in_h, in_w = in_shape
    v_index, v_weight, v_chol = halving_tables32(height, in_h)
    h_index, h_weight, h_chol = halving_tables32(width, in_w)
    compiled = kernels.get()
    z = np.empty((height, width), dtype=np.float32)
    # About BAND_SAMPLES input samples a band (a thread's input rows are float32: 1 MiB), in
    # whole blocks of the row solve (a part block costs it more). A band reads two input rows
    # per output row and two more, which its neighbour reads again: 3 % at 32 rows
    band = band or ROW_BLOCK * -(-band_sizes.BAND_SAMPLES // (2 * ROW_BLOCK * max(in_w, 1)))
    bands = [(k0, min(k0 + band, height)) for k0 in range(0, height, band)]

    def gather(k: int) -> None:
        k0, k1 = bands[k]
        vi = v_index[k0:k1]
        lo, hi = int(vi.min()), int(vi.max()) + 1
        x = np.ascontiguousarray(rows(lo, hi), dtype=np.float32)
        if compiled is not None:
            compiled.lsq_gather(x, lo, np.ascontiguousarray(vi), np.ascontiguousarray(
                v_weight[k0:k1]), h_index, h_weight, z[k0:k1])
        else:
            z[k0:k1] = gather_rows(x, lo, vi, v_weight[k0:k1], h_index, h_weight)

    def across(k: int) -> None:  # rows are C-contiguous: a band of them is a matrix of its own
        k0, k1 = bands[k]
        if compiled is not None:
            compiled.banded_solve(z[k0:k1], h_chol, 1)
        else:
            solve_normal(h_chol, z[k0:k1].T)
    run_bands(gather, len(bands))
    if compiled is None:
        solve_normal(v_chol, z)
    else:
        # down each column: every row at once (the kernel's one pass), in threads by ranges
        # of SOLVE_COLUMNS columns (a large plane's otherwise serial step)
        starts = list(range(0, width, SOLVE_COLUMNS))
        run_bands(lambda k: compiled.banded_solve(z, v_chol, 0, starts[k],
                                                  min(starts[k] + SOLVE_COLUMNS, width)),
                  len(starts))
    run_bands(across, len(bands))
    return z


@functools.lru_cache(maxsize=16)
def halving_tables32(n_small: int, n_big: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`halving_tables` with the weights and the Cholesky factor narrowed to float32, the
    halving's arithmetic (cached with it)."""
    index, weight, chol = halving_tables(n_small, n_big)
    return index, weight.astype(np.float32), chol.astype(np.float32)


#: Rows the compiled solve along rows (`banded_solve`, axis 1) transposes and solves together
#: (its `block`; a band of other heights gives the same bits, at the cost of a part block).
ROW_BLOCK = 32
#: Columns of one thread's share of the compiled solve down the columns (`banded_solve`,
#: axis 0): whole cache lines on each row; a plane at most this wide takes one call.
SOLVE_COLUMNS = 512


def gather_rows(x: np.ndarray, lo: int, v_index: np.ndarray, v_weight: np.ndarray,
                h_index: np.ndarray, h_weight: np.ndarray) -> np.ndarray:
    """Uv^T X Uh for some output rows (`lsq_gather`'s numpy twin): X's rows lo.. are x, the
    weights float32, as the sums."""
    across = np.zeros((x.shape[0], h_index.shape[0]), dtype=np.float32)
    for t in range(h_index.shape[1]):
        across += h_weight[:, t] * x[:, h_index[:, t]]
    out = np.zeros((v_index.shape[0], h_index.shape[0]), dtype=np.float32)
    for s in range(v_index.shape[1]):
        out += v_weight[:, s, None] * across[v_index[:, s] - lo]
    return out


def solve_normal(chol: np.ndarray, y: np.ndarray) -> None:
    """y (n, k) <- x with L L^T x = y along axis 0, in place, L from `_normal_cholesky`: row by
    row of the short axis, vectorized along the other (`banded_solve`'s numpy twin)."""
    width, n = chol.shape
    for i in range(n):  # forward
        for k in range(1, min(width, i + 1)):
            y[i] -= chol[k, i] * y[i - k]
        y[i] /= chol[0, i]
    for i in range(n - 1, -1, -1):  # backward with L^T
        for k in range(1, min(width, n - i)):
            y[i] -= chol[k, i + k] * y[i + k]
        y[i] /= chol[0, i]
