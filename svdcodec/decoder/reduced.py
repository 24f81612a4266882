"""Decoding at 1/2, 1/4 or 1/8 of the size, for thumbnails and previews, without the full image.

The reconstruction is linear, so averaging the pixels of a k x k cell commutes with it: average
the rows of B^T that fall in each cell (a patch layout: the basis images, shrunk) or the image
columns and rows (a plain layout), then multiply. The work and memory fall by k^2 (a patch
layout) or k (plain); the factors are read as for a full decode. Cells that straddle the image's
last row or column average the padding of the patch layout (the edge's pixels repeated), so
edges differ slightly from a box filter of the full image; elsewhere the result is that box
filter's up to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from ..codec.colour import from_planes
from ..format import COLOUR_YCBCR, LAYOUT_PATCH, Container, Plane
from ..runtime import band_sizes, kernels
from ..runtime.band_sizes import row_bands
from ..runtime.threads import run_bands
from .plane import PlaneReconstructor, pass_budget

#: The scale factors a reduced decode offers (as JPEG's draft mode does).
FACTORS = (1, 2, 4, 8)


def reduced_size(height: int, width: int, factor: int) -> tuple[int, int]:
    """Height and width of an image reduced by `factor` (partial cells count, as Pillow's
    Image.reduce and JPEG's draft mode)."""
    return -(-height // factor), -(-width // factor)


def cell_means(values: np.ndarray, cell: int, axis: int) -> np.ndarray:
    """Means of consecutive groups of `cell` entries along `axis` (a partial last group is the
    mean of what it has)."""
    n = values.shape[axis]
    starts = np.arange(0, n, cell)
    sums = np.add.reduceat(values.astype(np.float64), starts, axis=axis)
    counts = np.minimum(starts + cell, n) - starts
    shape = [1] * values.ndim
    shape[axis] = counts.size
    return (sums / counts.reshape(shape)).astype(np.float32)


class ReducedPlane(PlaneReconstructor):
    """A plane's bands reconstructed with B^T averaged over cells of `cell` x `cell` pixels."""

    def __init__(self, container: Container, plane: Plane, rank: int,
                 bands: list[tuple[int, int]], budget: int, cell: int) -> None:
        # Exact planes (version 2) keep their integer weights and checks, so that a thumbnail
        # refuses what a full decode refuses; the averaged B^T makes the product approximate,
        # and the thumbnail shows the low-rank layer without the residual (spec §5.3).
        super().__init__(container, plane, rank, bands, budget, {}, kernels.get())
        self.cell = cell
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
        return super().matrix(i)

    def reduced_rows(self, i: int) -> tuple[int, np.ndarray]:
        """Band i's first reduced row and its reduced pixel rows (float32)."""
        y0, y1 = self.bands[i]
        g = self.cell
        m = self.matrix(i)
        if self.patch:
            q = self.patch // g  # the shrunk patch
            gh = m.shape[0] // self.per_row
            rows = m.reshape(gh, self.per_row, q, q).transpose(0, 2, 1, 3).reshape(gh * q, -1)
            height, width = reduced_size(y1 - y0, self.plane.width, g)
            return y0 // g, rows[:height, :width]
        return y0 // g, cell_means(m, g, 0)


def _store_band(store: Callable[[int], None], bands: list[int], t: int) -> None:
    store(bands[t])


def reduced_plane(container: Container, plane: Plane, rank: int, factor: int, budget: int
                  ) -> np.ndarray:
    """Plane reduced by `factor`, float32: the cells of the patch layout (or image rows and
    columns) averaged in the factors, and whatever is left of the factor beyond a patch's side
    averaged in the reduced pixels."""
    cell = min(factor, plane.patch) if plane.layout == LAYOUT_PATCH else factor
    unit = plane.patch if plane.layout == LAYOUT_PATCH else cell
    target = max(band_sizes.MIN_BAND_ROWS, -(-band_sizes.BAND_PIXELS // plane.width))
    bands = row_bands(plane.height, unit, 1, target)
    rows = ReducedPlane(container, plane, rank, bands, budget, cell)
    out = np.empty(reduced_size(plane.height, plane.width, cell), dtype=np.float32)

    def store(i: int) -> None:
        first, part = rows.reduced_rows(i)
        x0 = rows.cols[0] // cell if not rows.patch else 0
        out[first:first + part.shape[0], x0:x0 + part.shape[1]] = part
    for k in range(len(rows.columns)):
        rows.load_columns(k)
        for j, passed in enumerate(rows.passes):
            rows.load(j)
            run_bands(partial(_store_band, store, passed), len(passed))
    rest = factor // cell
    if rest > 1:
        out = cell_means(cell_means(out, rest, 0), rest, 1)
    return out


def render_reduced(container: Container, factor: int, components: int | None = None
                   ) -> np.ndarray:
    """The image reduced by `factor` (one of FACTORS), (h', w', c) of the stored sample type."""
    header = container.header
    if factor not in FACTORS:
        raise ValueError(f"reduce must be one of {FACTORS}, got {factor}")
    height, width = reduced_size(header.height, header.width, factor)
    budget = pass_budget(height * width * header.channels * header.dtype.itemsize)
    planes = []
    for p in container.planes:
        rank = p.rank if components is None else min(p.rank, components)
        halved = (p.height, p.width) != (header.height, header.width)
        plane = reduced_plane(container, p, rank, factor // 2 if halved else factor, budget)
        planes.append(plane[:height, :width])
    return from_planes(planes, height, width, header.dtype, header.colour == COLOUR_YCBCR,
                       False, header.scale)
