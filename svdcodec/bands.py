"""Decoding in bands of rows: no full-size float temporaries, and bands run in threads.

A plane's matrix rows are its patches in raster order (or its image rows), sparse symbols are
row-major and dense blocks are one value per row, so a band of patch rows is decoded,
reconstructed and rounded into the output on its own: (A[band] * step^2/sigma) @ B^T, then
+0.5, clip, uint8, then the patch transpose on one byte per sample. The arithmetic per element
is the one of `quantization.reconstruct` and `planes.merge`; OpenBLAS gives the same rows for any
band of at least MIN_BAND_ROWS rows, and `resample` reproduces Pillow's chroma upsampling, so
the pixels equal the whole-plane path's. numpy, BLAS and Pillow release the GIL, hence threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from functools import partial
from itertools import pairwise
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from . import container as C
from . import kernels
from .coding import (
    END_OF_ROW,
    HORIZONTAL,
    PLANAR,
    RUN_ESCAPE,
    VALUE_ESCAPE,
    VERTICAL,
    decode_symbols,
)
from .errors import SvdiError
from .parallel import run_bands, workers
from .planes import _tiny, _word
from .resample import Bilinear

#: Target pixels per band: large enough that per-band Python overhead is noise, small enough
#: that a band's float temporaries stay in cache.
BAND_PIXELS = 1 << 18
#: Fewest matrix rows per band: below this OpenBLAS uses small-matrix kernels that round
#: differently from the whole-matrix product.
MIN_BAND_ROWS = 256
#: Bytes of int64 work per chunk when a dense block is streamed.
CHUNK_BYTES = 1 << 20
#: Rows between the compiled decoder's checkpoints in a sparse block (24 bytes each), from
#: which any range of rows is decoded.
CHECKPOINT_ROWS = 64
#: Fewest bytes a piece of a factor may take (see `pass_budget`).
MIN_PASS_BYTES = 1 << 24
#: Most bytes of decompressed chroma factors for which the chroma planes decode concurrently
#: with the set-up of Y' (each with its own buffers); above, one after the other.
JOB_BYTES = 1 << 24


def row_bands(rows: int, unit: int, min_units: int, target: int) -> list[tuple[int, int]]:
    """Split rows into bands of whole units (patch rows) of about `target` rows, none smaller
    than min_units units unless the whole is."""
    units = -(-rows // unit)
    per = max(min_units, -(-target // unit), 1)
    bounds = list(range(0, units, per)) + [units]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < per:
        del bounds[-2]  # a short last band joins the one before
    return [(a * unit, min(b * unit, rows)) for a, b in pairwise(bounds)]


_FMAX = float(np.finfo(np.float32).max)


def _overflow(plane: C.Plane) -> SvdiError:
    return SvdiError(f"plane {plane.index}: reconstruction overflows (step {plane.step} or "
                     f"singular values out of range)")


class PlaneRows:
    """Reconstructs bands of pixel rows of one plane, as float32 (rows, columns).

    Both factors are built from the compressed blocks in bounded pieces, at most `budget`
    bytes each: the scaled left factor A * step^2/sigma for a pass of consecutive bands
    (`load`), and B^T for a range of matrix columns (`load_columns`; a plain layout's V is
    up to four times the output's size). Each output element is the same dot product over the
    rank whatever the pieces, so the pixels do not depend on them.
    """

    def __init__(self, box: C.Container, plane: C.Plane, rank: int,
                 bands: list[tuple[int, int]], budget: int,
                 scratch: dict[str, np.ndarray] | None = None,
                 compiled: ModuleType | None = None) -> None:
        self.plane, self.rank, self.bands = plane, rank, bands
        self.compiled, self.budget = compiled, budget
        self.scratch = {} if scratch is None else scratch
        self.m, self.n = plane.matrix_shape
        self.patch = plane.patch if plane.layout == C.LAYOUT_PATCH else 0
        self.per_row = plane.grid[1] if self.patch else 1  # matrix rows per band unit
        unit = self.patch or 1
        # Matrix rows of each band; the last one includes the padding rows.
        self.mrows = [(y0 // unit * self.per_row, min(-(-y1 // unit) * self.per_row, self.m))
                      for y0, y1 in bands]
        blocks = [b for b in box.blocks if b.plane == plane.index]
        sigma = box.singular_values(plane.index)[:rank]
        self.scale = np.float32(plane.step * plane.step) / sigma.astype(np.float32)
        if rank and not np.all(np.isfinite(self.scale)):
            raise _overflow(plane)
        self.u = self._factor(blocks, "U", self.m)
        self.v = self._factor(blocks, "V", self.n)
        row_bytes = 4 * max(rank, 1)
        # Compiled patch layouts fill each band's rows of the left factor in the band's task,
        # while they are in cache, instead of a pass of bands at a time (10-20 % less decode
        # time on the 19 MP mosaic). Only the dense columns, whose predictors run down the
        # whole plane, are decoded whole first, into the pass buffer this path does not use
        # (one column per plane in the encoder's files; at most `budget` bytes).
        dense = [(b, w) for b, w, streams in self.u if streams is None]
        widths = sum(w for _, w in dense)
        self.local = compiled is not None and self.patch > 0 and self.m * widths * 4 <= budget
        self.dense_u = self._dense_whole(dense, widths) if self.local else None
        # Whether the blocks cover every component: then each band's buffer needs no zeroing
        # pass, the sparse kernel zeroes its columns row by row (in cache) as it fills them.
        spans = sorted((b.first, b.first + w) for b, w, _ in self.u)
        ends = [0] + [hi for _, hi in spans]
        self.covered = all(lo == end for (lo, _), end in zip(spans, ends)) and ends[-1] == rank
        self.buffers = threading.local()
        self.passes: list[list[int]] = []  # band indices, consecutive, at most `budget` bytes
        for i, (r0, r1) in enumerate(self.mrows):
            if self.passes and (self.local or (r1 - self.mrows[self.passes[-1][0]][0])
                                * row_bytes <= budget):
                self.passes[-1].append(i)
            else:
                self.passes.append([i])
        step = self.n if self.patch else max(1, budget // row_bytes)  # a patch's n is <= 1024
        self.columns = [(j, min(j + step, self.n)) for j in range(0, self.n, step)]
        self.left = self.Bt = np.zeros((0, 0), np.float32)
        self.base = 0  # matrix row of self.left[0]
        self.cols = (0, self.n)  # matrix columns of self.Bt

    def _factor(self, blocks: list[C.Block], factor: str, rows: int) -> list[tuple]:
        """(block, components used, sparse streams or None) of one factor's blocks, the
        blocks decompressed and indexed in threads."""
        used = [(b, min(b.count, self.rank - b.first)) for b in blocks
                if b.factor == factor and b.first < self.rank]
        streams = run_bands(lambda i: None if used[i][0].coding == C.DENSE
                            else _sparse_streams(used[i][0], rows, self.compiled), len(used))
        return [(b, w, s) for (b, w), s in zip(used, streams)]

    def _fill(self, out: np.ndarray, factor: list[tuple], grid: tuple[int, int],
              r0: int, r1: int, scale: np.ndarray | None = None) -> None:
        """out = the quantized factor's matrix rows [r0, r1), (r1 - r0, rank) float32, times
        `scale` per column. Compiled, out is zeroed and the sparse blocks filled and scaled in
        one pass per range of rows, in threads; the numpy path needs out zeroed first."""
        if self.compiled is None:
            for block, width, streams in factor:
                if streams is None:
                    _fill_dense(out, block, width, grid, r0 // grid[1], r1 // grid[1],
                                self.scratch)
                else:
                    _fill_sparse(out, block, width, streams, r0, r1)
            if scale is not None:
                out *= scale
            return
        compiled = self.compiled
        ones = np.ones(self.rank, dtype=np.float32) if scale is None else scale
        parts = row_bands(r1 - r0, 1, 1, -(-(r1 - r0) // workers()))

        def fill(i: int) -> None:
            a, b = parts[i]
            out[a:b] = 0
            for block, width, streams in factor:
                if streams is not None:
                    _fill_compiled(compiled, out[a:b], block, width, streams, r0 + a, r0 + b,
                                   ones)
        run_bands(fill, len(parts))
        for block, width, streams in factor:
            if streams is None:  # dense columns: not touched by the sparse blocks
                _fill_dense(out, block, width, grid, r0 // grid[1], r1 // grid[1], self.scratch)
                if scale is not None:
                    columns = slice(block.first, block.first + width)
                    out[:, columns] *= scale[columns]

    def _dense_whole(self, dense: list[tuple[C.Block, int]], widths: int
                     ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """The dense U blocks' components for all matrix rows, scaled, side by side in one
        (m, widths) array, and each block's (first component, width, column there)."""
        out = _zeros(self.scratch, "left", (self.m, widths), zero=False)
        g, at, where = self.plane.grid, 0, []
        for block, width in dense:
            scale = self.scale[block.first:block.first + width]
            # Small enough to decompress whole (the usual single column): one compiled pass.
            if self.compiled is not None and block.count * self.m * 4 <= self.budget:
                residuals = block.data()[0].reshape(-1)
                if residuals.size != block.count * self.m:
                    raise SvdiError(f"{block.what}: {residuals.size} values for "
                                    f"{block.count} x {self.m}")
                self.compiled.unpredict_into(residuals, g[0], g[1], block.predictor, width,
                                             out, at, scale)
            else:
                _fill_dense(out, block, width, g, 0, g[0], self.scratch, at=at)
                out[:, at:at + width] *= scale
            where.append((block.first, width, at))
            at += width
        return out, where

    def _band_left(self, i: int) -> np.ndarray:
        """The scaled left factor of band i's matrix rows, in this thread's buffer."""
        assert self.compiled is not None
        r0, r1 = self.mrows[i]
        size = (r1 - r0) * self.rank
        buffer = getattr(self.buffers, "left", None)
        if buffer is None or buffer.size < size:
            buffer = self.buffers.left = np.empty(size, dtype=np.float32)
        left = buffer[:size].reshape(r1 - r0, self.rank)
        if not self.covered:
            left.fill(0)
        for block, width, streams in self.u:
            if streams is not None:
                _fill_compiled(self.compiled, left, block, width, streams, r0, r1, self.scale,
                               zero=self.covered)
        if self.dense_u is not None:
            columns, where = self.dense_u
            for first, width, at in where:
                left[:, first:first + width] = columns[r0:r1, at:at + width]
        return left

    def load_columns(self, k: int) -> None:
        """B^T of column range k, float32 (rank, columns), a transposed view exactly as in
        `reconstruct`, filled without an int64 copy."""
        j0, j1 = self.columns[k]
        B = _zeros(self.scratch, "B", (j1 - j0, self.rank), self.compiled is None)
        self._fill(B, self.v, self.plane.vgrid, j0, j1)
        self.Bt, self.cols = B.T, (j0, j1)

    def load(self, k: int) -> None:
        """The scaled left factor of the matrix rows of pass k's bands (unless each band
        fills its own)."""
        if self.local:
            return
        r0, r1 = self.mrows[self.passes[k][0]][0], self.mrows[self.passes[k][-1]][1]
        left = _zeros(self.scratch, "left", (r1 - r0, self.rank), self.compiled is None)
        self._fill(left, self.u, self.plane.grid, r0, r1, self.scale)
        self.left, self.base = left, r0

    def matrix(self, i: int) -> np.ndarray:
        """Matrix rows of band i (in the loaded pass), loaded columns, float32."""
        r0, r1 = self.mrows[i]
        if self.rank == 0:
            return np.zeros((r1 - r0, self.cols[1] - self.cols[0]), dtype=np.float32)
        left = self._band_left(i) if self.local else self.left[r0 - self.base:r1 - self.base]
        out = left @ self.Bt
        if not (np.isfinite(out.min()) and np.isfinite(out.max())):
            raise _overflow(self.plane)
        return out

    def to_rows(self, matrix: np.ndarray, i: int) -> np.ndarray:
        """Matrix rows of band i (C-contiguous, any dtype) as the band's pixel rows."""
        y0, y1 = self.bands[i]
        if not self.patch:
            return matrix
        p, gw = self.patch, self.per_row
        gh = matrix.shape[0] // gw
        word = _word(p * matrix.itemsize)
        k = p * matrix.itemsize // word.itemsize
        words = matrix.view(word).reshape(gh, gw, p, k).transpose(0, 2, 1, 3)
        full = np.ascontiguousarray(words).view(matrix.dtype).reshape(gh * p, gw * p)
        return full[:y1 - y0, :self.plane.width]

    def uint8(self, i: int, offset: float = 0.0) -> np.ndarray:
        """Band i rounded like planes._to_uint8: + offset + 0.5, clip, truncate (contiguous)."""
        m = self.matrix(i)
        m += np.float32(offset + 0.5)
        np.clip(m, 0, 255, out=m)
        return np.ascontiguousarray(self.to_rows(m.astype(np.uint8), i))

    def float_rows(self, i: int) -> np.ndarray:
        return self.to_rows(self.matrix(i), i)

    @property
    def xs(self) -> slice:
        """Pixel columns of the loaded matrix columns (all of them for a patch layout)."""
        return slice(*self.cols) if not self.patch else slice(0, self.plane.width)

    def each_band(self, task: Callable[[int], None], threads: int | None) -> None:
        """task(i) for every band, with the factors loaded piece by piece."""
        for k in range(len(self.columns)):
            self.load_columns(k)
            for j, bands in enumerate(self.passes):
                self.load(j)

                def one(t: int, bands: list[int] = bands) -> None:
                    task(bands[t])
                run_bands(one, len(bands), threads)
        self.left = self.Bt = np.zeros((0, 0), np.float32)


def _sparse_streams(block: C.Block, rows: int, compiled: ModuleType | None = None
                    ) -> tuple[Any, ...]:
    """(symbols, run escapes, value escapes, symbol index after each row end) of a sparse
    block, checked against the row count and the side streams' sizes; compiled: (symbols,
    run escapes, value escapes, the kernels' checkpoints every CHECKPOINT_ROWS rows and that
    number)."""
    symbols, xrun, xval = block.data()
    if compiled is not None:
        starts, xr, xv, error = compiled.index_sparse(symbols, rows, xrun.size, xval.size,
                                                      CHECKPOINT_ROWS)
        if error:
            raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")
        return symbols, xrun, xval, starts, xr, xv, CHECKPOINT_ROWS
    ends = np.flatnonzero(symbols == END_OF_ROW) + 1
    if ends.size != rows or (symbols.size and symbols[-1] != END_OF_ROW):
        raise SvdiError(f"sparse block: {ends.size} row ends for {rows} rows")
    if (np.count_nonzero(symbols >= RUN_ESCAPE << 4) != xrun.size
            or np.count_nonzero((symbols & 15) == VALUE_ESCAPE) != xval.size):
        raise SvdiError("sparse block: escape counts do not match the side streams")
    return symbols, xrun, xval, ends


def _fill_sparse(out: np.ndarray, block: C.Block, width: int, streams: tuple[np.ndarray, ...],
                 r0: int, r1: int) -> None:
    """out[:, first:first + width] = rows [r0, r1) of a sparse block (symbols are row-major),
    decoded a few rows at a time: decode_symbols' index and value arrays take 12 bytes per
    non-zero, three times the float32 they fill."""
    symbols, xrun, xval, ends = streams
    step = max(1, CHUNK_BYTES // (12 * (block.count + 1)))
    s0 = int(ends[r0 - 1]) if r0 else 0
    a = int(np.count_nonzero(symbols[:s0] >= RUN_ESCAPE << 4))
    v = int(np.count_nonzero((symbols[:s0] & 15) == VALUE_ESCAPE))
    for q0 in range(r0, r1, step):
        q1 = min(q0 + step, r1)
        s1 = int(ends[q1 - 1])
        part = symbols[s0:s1]
        na = int(np.count_nonzero(part >= RUN_ESCAPE << 4))
        nv = int(np.count_nonzero((part & 15) == VALUE_ESCAPE))
        parts = (part, xrun[a:a + na], xval[v:v + nv])
        rows = out[q0 - r0:q1 - r0]
        if width == block.count:
            index, values = decode_symbols(*parts, (q1 - q0, block.count), out.shape[1])
            rows.reshape(-1)[index + block.first] = values
        else:  # a preview that stops inside this block
            full = np.zeros((q1 - q0, block.count), dtype=np.float32)
            index, values = decode_symbols(*parts, (q1 - q0, block.count))
            full.reshape(-1)[index] = values
            rows[:, block.first:block.first + width] = full[:, :width]
        s0, a, v = s1, a + na, v + nv


def _fill_compiled(compiled: ModuleType, out: np.ndarray, block: C.Block, width: int,
                   streams: tuple[np.ndarray, ...], r0: int, r1: int, scale: np.ndarray,
                   zero: bool = False) -> None:
    """`_fill_sparse` and the scaling, in one compiled pass from `_sparse_streams`' index
    (zero: the block's columns of out are zeroed here, not by the caller)."""
    error = compiled.fill_sparse(*streams, r0, r1, out, block.first, width, block.count,
                                 scale, zero)
    if error:
        raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")


def _zeros(scratch: dict[str, np.ndarray], key: str, shape: tuple[int, int],
           zero: bool = True) -> np.ndarray:
    """Float32 array of `shape` in scratch[key], zeroed unless told, reused from plane to plane
    and pass to pass: first-touch page faults of fresh pass-sized arrays cost more than the
    decoding."""
    size = shape[0] * shape[1]
    if key not in scratch or scratch[key].size < size:
        scratch.pop(key, None)
        scratch[key] = np.empty(size, dtype=np.float32)
    out = scratch[key][:size].reshape(shape)
    if zero:
        out.fill(0)
    return out


def _fill_dense(out: np.ndarray, block: C.Block, width: int, grid: tuple[int, int],
                g0: int, g1: int, scratch: dict[str, np.ndarray], at: int | None = None
                ) -> None:
    """out[:, at + k] = grid rows [g0, g1) of component k of a dense block, unpredicted,
    for k < width (at: the block's first component unless given). Streams the block a few
    rows at a time: the vertical and planar predictors' running column sums are carried from
    chunk to chunk (int64, wrapping exactly like `unpredict`'s whole-array cumsum). Components
    are gathered in a component-major float32 copy and transposed into `out` at the end:
    writing one column at a time is slow."""
    gw = grid[1]
    gathered = _zeros(scratch, "gathered", (width, (g1 - g0) * gw)).reshape(width, -1, gw)
    vertical = block.predictor in (VERTICAL, PLANAR)
    horizontal = block.predictor in (HORIZONTAL, PLANAR)
    carry = np.zeros(gw, dtype=np.int64)
    for k, a, residuals in block.grid_rows(grid, max(1, CHUNK_BYTES // (8 * gw))):
        b = a + residuals.shape[0]
        if a == 0:
            carry = np.zeros(gw, dtype=np.int64)
        if k >= width or a >= g1 or (b <= g0 and not vertical):
            continue
        g = residuals.astype(np.int64)
        if vertical:
            g = np.cumsum(g, axis=0, out=g)
            g += carry
            carry = g[-1].copy()
            if b <= g0:
                continue
        lo, hi = max(a, g0), min(b, g1)
        g = g[lo - a:hi - a]
        if horizontal:
            g = np.cumsum(g, axis=1)
        gathered[k, lo - g0:hi - g0] = g
    at = block.first if at is None else at
    out[:, at:at + width] = gathered.reshape(width, -1).T


def _factor_bytes(box: C.Container, plane: C.Plane) -> int:
    """Bytes of the plane's factor blocks once decompressed (a dense U block is held as float32
    columns)."""
    total = 0
    for b in box.blocks:
        if b.plane != plane.index or b.factor == "S":
            continue
        total += (4 * b.count * math.prod(plane.grid if b.factor == "U" else plane.vgrid)
                  if b.coding == C.DENSE else b.raw_bytes)
    return total


def _bands_for(planes: Iterable[C.Plane], height: int, width: int) -> list[tuple[int, int]]:
    """Pixel-row bands shared by planes of one size: whole patches of every plane, and at least
    MIN_BAND_ROWS matrix rows of each."""
    unit, need = 1, 1
    for p in planes:
        if p.layout == C.LAYOUT_PATCH:
            unit = max(unit, p.patch)
            need = max(need, -(-MIN_BAND_ROWS * p.patch // p.grid[1]))
        else:
            need = max(need, MIN_BAND_ROWS)
    target = max(need, -(-BAND_PIXELS // width))
    return row_bands(height, unit, -(-need // unit), target)


def pass_budget(out_bytes: int) -> int:
    """Bytes each factor buffer (a pass of U, a column range of V, the gathering copy) may
    take: three of them, the output and band temporaries stay within 3 x output + 64 MiB."""
    return max(MIN_PASS_BYTES, out_bytes // 2)


def render(box: C.Container, components: int | None = None,
           threads: int | None = None) -> np.ndarray:
    """The decoded image (h, w, c), plane after plane and band by band (see the module
    docstring). Y'CbCr planes are rounded to uint8 into the output, then converted in place
    (compiled, with halved chroma and Y' in patches: chroma first, then each Y' band converted
    as it is stored), so large factors are in memory one plane at a time."""
    header = box.header
    h, w = header.height, header.width
    ranks = [p.rank if components is None else min(p.rank, components) for p in box.planes]
    full = [p for p in box.planes if (p.height, p.width) == (h, w)]
    bands = _bands_for(full, h, w)
    out = np.empty((h, w, header.channels), dtype=header.dtype)
    budget = pass_budget(out.nbytes)
    scratch: dict[str, np.ndarray] = {}  # factor buffers shared by the planes
    ycc = header.colour == C.COLOUR_YCBCR
    dtype, tiny = header.dtype, _tiny(header.scale)

    compiled = kernels.get(h * w * header.channels)
    colour = kernels.colour_constants() if compiled is not None and ycc else None
    chroma = [p for p in box.planes if p not in full]  # subsampled
    # Compiled: the chroma planes are kept whole and doubled during the colour conversion.
    fused = colour is not None and all((2 * p.height, 2 * p.width) == (h, w) for p in chroma)
    # ... and when Y' is in patches, each Y' band is converted as it is stored: out is written
    # once, never read back (that stage 0.038 -> 0.029 s on 19 MP, two threads).
    direct = fused and bool(chroma) and box.planes[0].layout == C.LAYOUT_PATCH
    halves: dict[int, np.ndarray] = {}

    def subsampled(p: C.Plane, scratch: dict[str, np.ndarray]) -> None:
        """Chroma plane p: a whole float32 plane (a quarter size), kept for the compiled
        conversion or doubled into out."""
        c = p.index
        src = PlaneRows(box, p, ranks[c], _bands_for([p], p.height, p.width), budget,
                        scratch, compiled)
        plane = np.empty((p.height, p.width), dtype=np.float32)

        def fill(i: int, src: PlaneRows = src) -> None:
            y0, y1 = src.bands[i]
            if compiled is not None and src.patch:
                compiled.store_floats(src.matrix(i), plane, y0, y1, src.patch, src.per_row)
            else:
                plane[y0:y1, src.xs] = src.float_rows(i)
        src.each_band(fill, threads)
        del fill, src  # the factors go before the plane is doubled
        if fused:
            halves[c] = plane
            return
        small = Bilinear(plane, h, w)

        def upsample(i: int) -> None:
            y0, y1 = bands[i]
            chroma = small.rows(y0, y1)
            chroma += np.float32(128.5)
            np.clip(chroma, 0, 255, out=chroma)
            out[y0:y1, :, c] = chroma.astype(np.uint8)
        run_bands(upsample, len(bands), threads)

    prepared: dict[int, PlaneRows] = {}
    if direct and sum(_factor_bytes(box, p) for p in chroma) <= JOB_BYTES:
        # Independent work for the pool: Y' factors decompressed and indexed while the two
        # chroma planes decode (each task runs its own bands; each has its own scratch, so
        # only when the chroma factors are small: a hostile file of dense blocks would need
        # each plane's pass buffer at once).
        def prepare() -> None:
            prepared[0] = PlaneRows(box, box.planes[0], ranks[0], bands, budget, {}, compiled)
        jobs = [prepare] + [partial(subsampled, p, {}) for p in chroma]
        run_bands(lambda i: jobs[i](), len(jobs), threads)

    for p in sorted(box.planes, key=lambda p: direct and p in full):  # direct: chroma first
        c = p.index
        if p not in full:
            if c not in halves:
                subsampled(p, scratch)
            continue
        rows = prepared.pop(c, None) or PlaneRows(box, p, ranks[c], bands, budget, scratch,
                                                  compiled)

        def band(i: int, rows: PlaneRows = rows, c: int = c) -> None:
            y0, y1 = bands[i]
            x = rows.xs
            if dtype == np.uint8:
                offset = 128.0 if ycc and c in (1, 2) else 0.0
                if compiled is None:
                    out[y0:y1, x, c] = rows.uint8(i, offset)
                elif direct and c == 0:
                    compiled.store_rgb(rows.matrix(i), out, y0, y1, halves[1], halves[2],
                                       colour, rows.patch, rows.per_row)
                else:
                    compiled.store_bytes(rows.matrix(i), out, y0, y1, x.start, c,
                                         np.float32(offset), rows.patch, rows.per_row)
                return
            f = rows.float_rows(i)
            if dtype.kind == "f":
                # Near float32's limits (tiny or huge scales) compute in float64 and saturate:
                # an honest file of values close to 3.4e38 may overshoot by a quantizer step.
                out[y0:y1, x, c] = (np.clip(f.astype(np.float64) * header.scale, -_FMAX, _FMAX)
                                    if tiny or header.scale > 2.0 ** 64
                                    else f * np.float32(header.scale))
            else:
                top = float(np.iinfo(dtype).max)
                out[y0:y1, x, c] = np.clip(f.astype(np.float64) * header.scale + 0.5, 0, top)
        rows.each_band(band, threads)
        del rows

    if ycc and not direct:
        def convert(i: int) -> None:
            y0, y1 = bands[i]
            if compiled is not None and colour is not None:
                if halves:
                    compiled.upsample_ycc(out, y0, y1, halves[1], halves[2], colour)
                else:
                    compiled.convert_ycc(out, y0, y1, colour)
                return
            planes = [Image.fromarray(np.ascontiguousarray(out[y0:y1, :, c])) for c in range(3)]
            rgb = Image.merge("YCbCr", planes).convert("RGB")
            out[y0:y1, :, :3] = np.frombuffer(rgb.tobytes(), np.uint8).reshape(y1 - y0, w, 3)
        run_bands(convert, len(bands), threads)
    return out
