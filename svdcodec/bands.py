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

from collections.abc import Iterable
from itertools import pairwise

import numpy as np
from PIL import Image

from . import container as C
from .coding import (
    END_OF_ROW,
    HORIZONTAL,
    PLANAR,
    RUN_ESCAPE,
    VALUE_ESCAPE,
    VERTICAL,
    decode_symbols,
    from_symbols,
    unpredict,
)
from .errors import SvdiError
from .parallel import run_bands
from .planes import _tiny, _word
from .resample import Bilinear

#: Target pixels per band: large enough that per-band Python overhead is noise, small enough
#: that a band's float temporaries stay in cache.
BAND_PIXELS = 1 << 18
#: Fewest matrix rows per band: below this OpenBLAS uses small-matrix kernels that round
#: differently from the whole-matrix product.
MIN_BAND_ROWS = 256


def row_bands(rows: int, unit: int, min_units: int, target: int) -> list[tuple[int, int]]:
    """Split rows into bands of whole units (patch rows) of about `target` rows, none smaller
    than min_units units unless the whole is."""
    units = -(-rows // unit)
    per = max(min_units, -(-target // unit), 1)
    bounds = list(range(0, units, per)) + [units]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < per:
        del bounds[-2]  # a short last band joins the one before
    return [(a * unit, min(b * unit, rows)) for a, b in pairwise(bounds)]


def _overflow(plane: C.Plane) -> SvdiError:
    return SvdiError(f"plane {plane.index}: reconstruction overflows (step {plane.step} or "
                     f"singular values out of range)")


class PlaneRows:
    """Reconstructs bands of pixel rows of one plane, as float32 (rows, width)."""

    def __init__(self, box: C.Container, plane: C.Plane, rank: int,
                 bands: list[tuple[int, int]]) -> None:
        self.plane, self.rank, self.bands = plane, rank, bands
        self.m, self.n = plane.matrix_shape
        self.patch = plane.patch if plane.layout == C.LAYOUT_PATCH else 0
        self.per_row = plane.grid[1] if self.patch else 1  # matrix rows per band unit
        unit = self.patch or 1
        # Matrix rows of each band; the last one includes the padding rows.
        self.mrows = [(y0 // unit * self.per_row, min(-(-y1 // unit) * self.per_row, self.m))
                      for y0, y1 in bands]
        blocks = [b for b in box.blocks if b.plane == plane.index]
        parts = [b.arrays[0] for b in blocks if b.factor == "S"]
        sigma = (np.concatenate(parts) if parts else np.zeros(0, np.float32))[:rank]
        self.scale = np.float32(plane.step * plane.step) / sigma.astype(np.float32)
        if rank and not np.all(np.isfinite(self.scale)):
            raise _overflow(plane)
        self.Bt = self._vt(blocks)
        self.dense: list[tuple[C.Block, int, list[np.ndarray | None]]] = []
        self.sparse: list[tuple[C.Block, int, list[tuple[int, int, int, int, int, int]]]] = []
        for b in blocks:
            if b.factor != "U" or b.first >= rank:
                continue
            width = min(b.count, rank - b.first)
            if b.coding == C.DENSE:
                self.dense.append((b, width, self._carries(b, width)))
            else:
                self.sparse.append((b, width, self._split(b)))

    def _vt(self, blocks: list[C.Block]) -> np.ndarray:
        """V as float32 (rank, n), a transposed view exactly as in `reconstruct`, filled
        without the (n, rank) int64 copy (a plain layout's V can be 4096 x 4096)."""
        B = np.zeros((self.n, self.rank), dtype=np.float32)
        for b in blocks:
            if b.factor != "V" or b.first >= self.rank:
                continue
            width = min(b.count, self.rank - b.first)
            if b.coding == C.DENSE:  # a few components at a time: unpredict works in int64
                for k in range(0, width, 64):
                    part = unpredict(b.arrays[0][k:min(k + 64, width)], b.predictor)
                    B[:, b.first + k:b.first + k + part.shape[0]] = part.reshape(-1, self.n).T
                continue
            symbols, xrun, xval = b.arrays
            if width == b.count:
                index, values = decode_symbols(symbols, xrun, xval, (self.n, b.count), self.rank)
                B.reshape(-1)[index + b.first] = values
            else:
                B[:, b.first:b.first + width] = from_symbols(symbols, xrun, xval,
                                                             (self.n, b.count))[:, :width]
        return B.T

    def _carries(self, block: C.Block, width: int) -> list[np.ndarray | None]:
        """Per band, the column sums of the residual rows above it: what a vertical or planar
        predictor's running sum carries into the band (None for the others)."""
        if block.predictor not in (VERTICAL, PLANAR):
            return [None] * len(self.mrows)
        residuals = block.arrays[0][:width]
        carry = np.zeros((width, 1, residuals.shape[2]), dtype=np.int64)
        out = []
        for r0, r1 in self.mrows:
            out.append(carry)
            band = residuals[:, r0 // self.per_row:r1 // self.per_row]
            carry = carry + band.sum(axis=1, keepdims=True, dtype=np.int64)
        return out

    def _dense(self, block: C.Block, width: int, carry: np.ndarray | None, i: int
               ) -> np.ndarray:
        """`unpredict` of band i's grid rows of a dense block, (width, rows) int64: the running
        sums start from the carry, so no full-size int64 copy of the block is made."""
        r0, r1 = self.mrows[i]
        g = block.arrays[0][:width, r0 // self.per_row:r1 // self.per_row].astype(np.int64)
        if carry is not None:
            g = np.cumsum(g, axis=1, out=g)
            g += carry
        if block.predictor in (HORIZONTAL, PLANAR):
            g = np.cumsum(g, axis=2, out=g)
        return g.reshape(width, r1 - r0)

    def _split(self, block: C.Block) -> list[tuple[int, int, int, int, int, int]]:
        """Per band: (first symbol, end symbol, first run escape, run escapes, first value
        escape, value escapes), checked against the side streams' sizes."""
        symbols, xrun, xval = block.arrays
        ends = np.flatnonzero(symbols == END_OF_ROW)
        if ends.size != self.m or (symbols.size and symbols[-1] != END_OF_ROW):
            raise SvdiError(f"sparse block: {ends.size} row ends for {self.m} rows")
        out, run_at, value_at = [], 0, 0
        for r0, r1 in self.mrows:
            s0 = int(ends[r0 - 1]) + 1 if r0 else 0
            s1 = int(ends[r1 - 1]) + 1 if r1 else 0
            part = symbols[s0:s1]
            runs = int(np.count_nonzero(part >= RUN_ESCAPE << 4))
            values = int(np.count_nonzero((part & 15) == VALUE_ESCAPE))
            out.append((s0, s1, run_at, runs, value_at, values))
            run_at += runs
            value_at += values
        if run_at != xrun.size or value_at != xval.size:
            raise SvdiError("sparse block: escape counts do not match the side streams")
        return out

    def matrix(self, i: int) -> np.ndarray:
        """Matrix rows of band i, float32 (rows, n)."""
        r0, r1 = self.mrows[i]
        if self.rank == 0:
            return np.zeros((r1 - r0, self.n), dtype=np.float32)
        left = np.zeros((r1 - r0, self.rank), dtype=np.float32)
        for block, width, carries in self.dense:
            left[:, block.first:block.first + width] = self._dense(block, width, carries[i], i).T
        for block, width, split in self.sparse:
            s0, s1, a, na, v, nv = split[i]
            symbols, xrun, xval = block.arrays
            streams = (symbols[s0:s1], xrun[a:a + na], xval[v:v + nv])
            if width == block.count:
                index, values = decode_symbols(*streams, (r1 - r0, block.count), self.rank)
                left.reshape(-1)[index + block.first] = values
            else:  # a preview that stops inside this block
                part = np.zeros((r1 - r0, block.count), dtype=np.float32)
                index, values = decode_symbols(*streams, (r1 - r0, block.count))
                part.reshape(-1)[index] = values
                left[:, block.first:block.first + width] = part[:, :width]
        left *= self.scale
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


def render(box: C.Container, components: int | None = None,
           threads: int | None = None) -> np.ndarray:
    """The decoded image (h, w, c), band by band (see the module docstring)."""
    header = box.header
    h, w = header.height, header.width
    ranks = [p.rank if components is None else min(p.rank, components) for p in box.planes]
    full = [p for p in box.planes if (p.height, p.width) == (h, w)]
    bands = _bands_for(full, h, w)
    rows = {p.index: PlaneRows(box, p, ranks[p.index], bands) for p in full}
    small: dict[int, Bilinear] = {}
    for p in box.planes:  # subsampled chroma: whole float32 planes (a quarter size each)
        if p.index in rows:
            continue
        plane_bands = _bands_for([p], p.height, p.width)
        src = PlaneRows(box, p, ranks[p.index], plane_bands)
        plane = np.empty((p.height, p.width), dtype=np.float32)

        def fill(i: int, src: PlaneRows = src, plane: np.ndarray = plane) -> None:
            y0, y1 = src.bands[i]
            plane[y0:y1] = src.float_rows(i)
        run_bands(fill, len(plane_bands), threads)
        small[p.index] = Bilinear(plane, h, w)

    out = np.empty((h, w, header.channels), dtype=header.dtype)
    if header.colour == C.COLOUR_YCBCR:
        def band(i: int) -> None:
            y0, y1 = bands[i]
            ycc = [rows[0].uint8(i)]
            for c in (1, 2):
                if c in small:
                    chroma = small[c].rows(y0, y1)
                    chroma += np.float32(128.5)
                    np.clip(chroma, 0, 255, out=chroma)
                    ycc.append(chroma.astype(np.uint8))
                else:
                    ycc.append(rows[c].uint8(i, 128.0))
            rgb = Image.merge("YCbCr", [Image.fromarray(a) for a in ycc]).convert("RGB")
            out[y0:y1, :, :3] = np.frombuffer(rgb.tobytes(), np.uint8).reshape(y1 - y0, w, 3)
            for c in range(3, header.channels):
                out[y0:y1, :, c] = rows[c].uint8(i)
    else:
        dtype = header.dtype
        tiny = _tiny(header.scale)

        def band(i: int) -> None:
            y0, y1 = bands[i]
            for c in range(header.channels):
                if dtype == np.uint8:
                    out[y0:y1, :, c] = rows[c].uint8(i)
                    continue
                p = rows[c].float_rows(i)
                if dtype.kind == "f":
                    out[y0:y1, :, c] = (p.astype(np.float64) * header.scale if tiny
                                        else p * np.float32(header.scale))
                else:
                    top = float(np.iinfo(dtype).max)
                    out[y0:y1, :, c] = np.clip(p.astype(np.float64) * header.scale + 0.5, 0, top)
    run_bands(band, len(bands), threads)
    return out
