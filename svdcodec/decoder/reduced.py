"""Decoding at 1/2, 1/4 or 1/8 of the size, for thumbnails and previews, without the full image.

The reconstruction is linear, so averaging the pixels of a k x k cell commutes with it: average
the rows of B^T that fall in each cell (a patch layout: the basis images, shrunk to one value
per cell) or the image columns and rows (a plain layout), then multiply. The multiply's work
falls by k^2 (a patch layout) or k (plain); every factor entry is still read. Cells that
straddle the image's last row or column average the padding of the patch layout (the edge's
pixels repeated), so edges differ slightly from a box filter of the full image; elsewhere the
result is that box filter's up to float32 rounding. Version 4's deblocking filter is not
applied (spec §5.4): the cell means are already smoother than the patch edges it treats, and
the reduced image is the box filter of the unfiltered planes (tests/test_deblock.py).

A patch layout's reduced product is defined as float32 sums over the components in order
(`reduced_product`), so that the compiled path can decode each sparse U block straight into
the sums (`kernels.reduce_sparse`: a value times its scale times its row of the shrunk basis,
added as it is decoded), never filling U's rows, and still give the numpy path's bits. The
factor beyond a patch's side (8 on patch 4) is averaged in each band; compiled 8-bit Y'CbCr
bands are rounded straight into their channel of the output, converted to RGB at the end.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from ..codec import exact as exact_rule
from ..codec.colour import CHROMA_OFFSET, YCC_MULTIPLIERS, from_planes
from ..errors import SvdiError
from ..format import COLOUR_YCBCR, LAYOUT_PATCH, Container, Plane
from ..runtime import band_sizes, kernels
from ..runtime.band_sizes import row_bands
from ..runtime.threads import run_bands
from .factors import factor_bytes
from .plane import PlaneReconstructor, overflow_error, pass_budget

#: The scale factors a reduced decode offers (as JPEG's draft mode does).
FACTORS = (1, 2, 4, 8)
#: The largest |level| a run/level symbol holds itself (larger ones are escaped).
SMALL_LEVEL = 7


def reduced_size(height: int, width: int, factor: int) -> tuple[int, int]:
    """Height and width of an image reduced by `factor` (partial cells count, as Pillow's
    Image.reduce and JPEG's draft mode)."""
    return -(-height // factor), -(-width // factor)


def cell_means(values: np.ndarray, cell: int, axis: int) -> np.ndarray:
    """Means of consecutive groups of `cell` entries along `axis` (a partial last group is the
    mean of what it has): each group summed in order in float64, divided, rounded to float32."""
    v = np.moveaxis(values, axis, 0)
    n = v.shape[0]
    whole = n // cell * cell
    sums = np.empty((-(-n // cell), *v.shape[1:]), dtype=np.float64)
    sums[:whole // cell] = v[0:whole:cell]
    for j in range(1, cell):
        sums[:whole // cell] += v[j:whole:cell]
    sums[:whole // cell] /= cell
    if whole < n:  # the partial last group
        sums[-1] = v[whole]
        for j in range(whole + 1, n):
            sums[-1] += v[j]
        sums[-1] /= n - whole
    return np.moveaxis(sums.astype(np.float32), 0, axis)


def reduced_product(left: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """left @ basis, (rows, rank) @ (rank, q), as float32 sums over the components in order,
    each product and sum rounded: the arithmetic the compiled path repeats without the left
    factor's rows (`kernels.reduce_sparse` adds a sparse block's non-zero terms only, which
    gives the same bits: the sums start at +0 and adding a zero term changes none)."""
    out = np.zeros((left.shape[0], basis.shape[1]), dtype=np.float32)
    for k in range(basis.shape[0]):
        out += left[:, k, None] * basis[k]
    return out


class ReducedPlane(PlaneReconstructor):
    """A plane's bands reconstructed with B^T averaged over cells of `cell` x `cell` pixels."""

    dense_by_band = False  # band_sums adds the dense columns component by component
    opens_whole = False  # band_sums reads the sparse blocks' streams
    exact_by_kernel = False  # B^T is averaged over cells after load_columns

    def __init__(self, container: Container, plane: Plane, rank: int,
                 bands: list[tuple[int, int]], budget: int, cell: int) -> None:
        # Exact planes (version 2) keep their integer weights and checks, so that a thumbnail
        # refuses what a full decode refuses; the averaged B^T makes the product approximate,
        # and the thumbnail shows the low-rank layer without the residual (spec §5.3), but
        # on the channels with no layer (`residuals.reduce_bare`).
        super().__init__(container, plane, rank, bands, budget, {}, kernels.get())
        self.cell = cell
        # An exact patch plane's (every plane of a version 5 file) weights W_k 2^-F go into
        # its averaged B^T, and its product is the float32 sums of `reduced_product` as any
        # patch plane's, U's sparse blocks decoded straight into them: the cell means are not
        # the exact rule's bits anyway. Not an adapted plane's, whose rows the map scales.
        # A preview of fewer components than the plane's (`components=`) keeps the exact
        # product too: its blocks' levels beyond the rank are not the decode's to check.
        self.summed = bool(self.exact and self.patch and not self.adapted
                           and rank == plane.rank)
        self.left_magnitude: int | None = None  # max|A| of a summed plane's blocks
        if not self.patch:  # column ranges of whole cells
            step = max(cell, self.columns[0][1] - self.columns[0][1] % cell)
            self.columns = [(j, min(j + step, self.n)) for j in range(0, self.n, step)]

    def load_columns(self, k: int) -> None:
        super().load_columns(k)
        if self.loaded_means is not None:  # centred columns (plain), averaged as the columns
            self.loaded_means = cell_means(self.loaded_means[None], self.cell, 1)[0]
        if self.rank == 0:  # nothing to average: as many (zero) columns as the cells
            j0, j1 = self.cols
            count = (self.patch // self.cell) ** 2 if self.patch else -(-(j1 - j0) // self.cell)
            self.Bt = np.zeros((0, count), np.float32)
            return
        B = self.Bt.T  # (columns, rank): the patch's pixels, or image columns
        if self.summed:  # binary64 integers times W_k 2^-F, exact products of two binary64
            B = B * np.ldexp(self.weights.astype(np.float64), -self.product_shift)
        if self.patch:
            p, g = self.patch, self.cell
            pooled = B.reshape(p // g, g, p // g, g, -1).mean(axis=(1, 3), dtype=np.float64)
            self.Bt = np.ascontiguousarray(pooled.reshape(-1, B.shape[1]).astype(np.float32).T)
        else:
            self.Bt = np.ascontiguousarray(cell_means(B, self.cell, 0).T)

    def matrix(self, i: int) -> np.ndarray:
        if self.rank == 0:  # rows of the pooled width (the base class's is the full one)
            r0, r1 = self.mrows[i]
            return self.zero_rank_rows(r1 - r0, self.Bt.shape[1])
        if (self.exact and not self.summed) or not self.patch:  # as wide as the image: BLAS
            return super().matrix(i)
        r0, r1 = self.mrows[i]
        if self.local:
            if self.summed:
                self.check_bound()
            out = self.band_sums(i)
        else:
            left = self.left[r0 - self.base:r1 - self.base]
            if self.summed:
                exact_rule.check_bound(exact_rule.magnitude(left), self.max_b, self.weight_sum,
                                       f"plane {self.plane.index}")
            out = reduced_product(left, self.Bt)
        if self.loaded_means is not None:
            out += self.loaded_means
        if not (np.isfinite(out.min()) and np.isfinite(out.max())):
            raise overflow_error(self.plane)
        return out

    def check_bound(self) -> None:
        """The exact rule's bound (spec §5.1) on the largest |A| of the blocks a summed plane's
        bands read (its dense columns, its sparse blocks' values: the escaped ones, and the
        small ones only where the bound is below them), so that its thumbnail refuses what a
        full decode refuses. Found once; threads that meet it unset find the same."""
        if self.left_magnitude is None:
            assert self.dense_u is not None
            top = exact_rule.magnitude(self.dense_u[0])
            for _, _, streams in self.u:
                if streams is not None:
                    symbols, _, escaped = streams[:3]
                    top = max(top, exact_rule.magnitude(escaped))
                    if not symbols.size or top > self.largest_a:  # (broken already)
                        continue
                    if self.largest_a >= SMALL_LEVEL:  # the bound allows any small level
                        top = max(top, SMALL_LEVEL)
                    else:  # each small level, |nibble - 8|; nibble 0 is a value escape's
                        levels = symbols & 15
                        nibbles = levels[levels != 0].astype(np.int16) - 8
                        top = max(top, exact_rule.magnitude(nibbles))
            self.left_magnitude = top
        exact_rule.check_bound(self.left_magnitude, self.max_b, self.weight_sum,
                               f"plane {self.plane.index}")

    def band_sums(self, i: int) -> np.ndarray:
        """`reduced_product` of band i's matrix rows, compiled, straight from the blocks in
        component order: the dense columns (held whole) added component by component, the
        sparse blocks' non-zero values added as they are decoded."""
        assert self.compiled is not None and self.dense_u is not None
        r0, r1 = self.mrows[i]
        out = np.zeros((r1 - r0, self.Bt.shape[1]), dtype=np.float32)
        columns, where = self.dense_u
        dense = {first: at for first, _, at in where}
        for block, width, streams in self.u:
            if streams is None:
                at = dense[block.first]
                for c in range(width):
                    out += columns[r0:r1, at + c, None] * self.Bt[block.first + c]
            else:
                error = self.compiled.reduce_sparse(*streams, r0, r1, out, block.first, width,
                                                    block.count, self.scale, self.Bt)
                if error:
                    raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")
        return out

    def store_band(self, i: int, out: np.ndarray, rest: int, byte_channel: int | None = None,
                   offset: float = 0.0) -> None:
        """Band i's reduced pixels (the plane reduced by cell x rest) into `out`: a float32
        plane, or channel `byte_channel` of 8-bit `out` (h, w, c), compiled, rounded as
        `to_uint8` with `offset` (`kernels.store_bytes`)."""
        y0 = self.bands[i][0]
        g = self.cell
        m = np.ascontiguousarray(self.matrix(i))
        q = self.patch // g if self.patch else 1  # a patch layout's m: q x q patches
        gh = m.shape[0] // self.per_row
        if self.patch and rest == 1:
            first = y0 // g
            height = min(out.shape[0] - first, gh * q)
            if q == 1:  # patches are pixels: m's rows of per_row are pixel rows
                self._put(out, first, 0, m.reshape(gh, self.per_row)[:height], byte_channel,
                          offset)
            elif byte_channel is not None:
                self.compiled.store_bytes(m, out, first, first + height, 0, byte_channel,
                                          np.float32(offset), q, self.per_row)
            elif self.compiled is not None:
                self.compiled.store_floats(m, out, first, first + height, q, self.per_row)
            else:
                rows = m.reshape(gh, self.per_row, q, q).transpose(0, 2, 1, 3)
                out[first:first + height] = rows.reshape(gh * q, -1)[:height, :out.shape[1]]
        elif self.patch:
            # The factor is more than the patch's side (q is 1): patches are pixels, averaged
            # in cells of rest x rest patches (a band holds whole cells).
            part = cell_means(cell_means(m.reshape(gh, self.per_row), rest, 0), rest, 1)
            self._put(out, y0 // (g * rest), 0, part, byte_channel, offset)
        else:
            self._put(out, y0 // g, self.cols[0] // g, cell_means(m, g, 0), byte_channel,
                      offset)

    def _put(self, out: np.ndarray, first: int, x0: int, part: np.ndarray,
             byte_channel: int | None, offset: float) -> None:
        """Reduced pixel rows at (first, x0) of `out`, cropped to it (see `store_band`)."""
        if byte_channel is None:
            out[first:first + part.shape[0], x0:x0 + part.shape[1]] = part[
                :out.shape[0] - first, :out.shape[1] - x0]
            return
        rows = min(part.shape[0], out.shape[0] - first)
        self.compiled.store_bytes(np.ascontiguousarray(part), out, first, first + rows, x0,
                                  byte_channel, np.float32(offset), 0, 1)


def reduced_plane(container: Container, plane: Plane, rank: int, factor: int, budget: int,
                  out: np.ndarray | None = None, byte_channel: int | None = None,
                  offset: float = 0.0) -> np.ndarray:
    """Plane reduced by `factor`: the cells of the patch layout (or image rows and columns)
    averaged in the factors, and whatever is left of the factor beyond a patch's side averaged
    in each band's reduced pixels (bands of whole factor x factor cells). A float32 plane, or
    written into channel `byte_channel` of 8-bit `out` (`ReducedPlane.store_band`)."""
    patch = plane.layout == LAYOUT_PATCH
    cell = min(factor, plane.patch) if patch else factor
    rest = factor // cell
    unit = max(plane.patch, factor) if patch else cell
    target = -(-band_sizes.BAND_PIXELS // plane.width)
    if not patch:  # image rows are matrix rows, the BLAS product's (MIN_BAND_ROWS)
        target = max(band_sizes.MIN_BAND_ROWS, target)
    bands = row_bands(plane.height, unit, 1, target)
    rows = ReducedPlane(container, plane, rank, bands, budget, cell)
    if out is None:
        out = np.empty(reduced_size(plane.height, plane.width, factor), dtype=np.float32)
    for k in range(len(rows.columns)):
        rows.load_columns(k)
        for j, passed in enumerate(rows.passes):
            rows.load(j)
            run_bands(partial(_store_band, rows, out, rest, byte_channel, offset, passed),
                      len(passed))
    return out


def _store_band(rows: ReducedPlane, out: np.ndarray, rest: int, byte_channel: int | None,
                offset: float, bands: list[int], t: int) -> None:
    rows.store_band(bands[t], out, rest, byte_channel, offset)


def render_reduced(container: Container, factor: int, components: int | None = None
                   ) -> np.ndarray:
    """The image reduced by `factor` (one of FACTORS), (h', w', c) of the stored sample type.

    Compiled 8-bit Y'CbCr: each plane's bands are rounded to bytes straight into their channel
    of the output, then converted to RGB in place (`convert_ycc`, spec §5's bits); otherwise
    float32 planes through `from_planes`."""
    header = container.header
    if factor not in FACTORS:
        raise ValueError(f"reduce must be one of {FACTORS}, got {factor}")
    height, width = reduced_size(header.height, header.width, factor)
    budget = pass_budget(height * width * header.channels * header.dtype.itemsize)
    compiled = kernels.get()
    ycc = header.colour == COLOUR_YCBCR
    colour = YCC_MULTIPLIERS if compiled is not None and ycc else None
    direct = colour is not None and header.dtype == np.uint8
    out = np.empty((height, width, header.channels), dtype=np.uint8) if direct else None
    jobs = []
    for p in container.planes:
        rank = p.rank if components is None else min(p.rank, components)
        halved = (p.height, p.width) != (header.height, header.width)
        sink = ({"out": out, "byte_channel": p.index,
                 "offset": CHROMA_OFFSET if p.index in (1, 2) else 0.0} if direct else {})
        jobs.append(partial(reduced_plane, container, p, rank, factor // 2 if halved else factor,
                            budget, **sink))
    # The planes after the first decode as concurrent jobs beside it when their factors are
    # small (the first plane's set-up, its blocks decompressed and indexed, is mostly one
    # thread's work); large ones one after the other, each plane's buffers in turn.
    rest = sum(factor_bytes(container, p) for p in container.planes[1:])
    planes = run_bands(lambda i: jobs[i](), len(jobs),
                       None if rest <= band_sizes.JOB_BYTES else 1)
    if out is None:
        return from_planes([plane[:height, :width] for plane in planes], height, width,
                           header.dtype, ycc, False, header.scale)
    assert compiled is not None
    bands = row_bands(height, 1, 1, -(-band_sizes.BAND_PIXELS // max(width, 1)))
    run_bands(lambda i: compiled.convert_ycc(out, *bands[i], colour), len(bands))
    return out
