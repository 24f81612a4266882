"""Rendering an image band by band into a sink, every plane at once (spec §5 steps 3-6).

`render.render_image` decodes plane after plane into a whole output array, which the colour
conversion then reads back, and keeps the subsampled chroma planes whole (a quarter-size
float32 plane each) for it. Here each band of output rows is finished at once: every plane's
rows of the band are reconstructed, the chroma rows it blends (and a row either side) come from
chroma bands reconstructed when a band first needs them and dropped when the last band that
reads them is done, and the converted band goes to a `Sink`: the rows of a whole output array
(`ArraySink`: svdcodec.decode's, or the array Pillow's image maps for 8-bit L, RGB and RGBA
of up to 4 MiB), or a band buffer that the Pillow plugin copies into Pillow's own image (the
other images). No whole-size array but the sink's exists.

The arithmetic is the other path's (the same reconstructors and bands, rounding, resampling
and conversion kernels), so the pixels are the same. For the Pillow plugin (`prepare(...,
lean=True)`), whose image takes 4 bytes a pixel for RGB, a file of exact planes (format version
5) is cut into smaller bands (an exact product's rows do not depend on the band) and its held
sparse streams and dense residuals are handed back piece by piece as the bands are done, so
that little but the image is held when it is full; each thread's band of RGB bytes then lives
in the memory of the band's left factor, spent by the time the band is converted, and the
chroma rows' arrays are reused from band to band (`ChromaRows`). Taken by 8- and 16-bit files
without residual blocks, whose planes' factors each fit one piece (one pass of the left factor
and one column range of B^T within the plane's share of the budget): then any band can be
reconstructed at any time, in any thread. Version 4's deblocking filter (8-bit exact planes,
edge periods of 4 and more) runs in the bands too: bands cut at multiples of every period, each
filtered and converted as it is made, the four rows around each cut, whose edges two bands
share, finished by the second of the two (`EdgeSeams`); with version 6's restoration filter,
wider seams (the rows whose restoration reads a row a boundary's edge writes), each band
deblocked, restored and converted in one pass over a ring of rows where the kernels take it
(`RestoreSeams`). Other files take `render_image`'s
plane-by-plane path: version 2's residual phase reads its streams in row order over the whole
output, float samples are checked whole.
"""

from __future__ import annotations

import itertools
import math
import threading
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Callable
from functools import partial
from typing import Protocol

import numpy as np

from ..codec.colour import CHROMA_OFFSET, CHROMA_OFFSET_16
from ..codec.deblock import filter_lines
from ..codec.resample import Resampler
from ..codec.restoration import REACH, restore_band
from ..errors import SvdiError
from ..format import LAYOUT_PATCH, Block, Container, Header, Plane
from ..runtime import band_sizes
from ..runtime.scratch import LEFT, ThreadBuffers
from ..runtime.threads import band_workers, pool_ready, run_bands, serial
from .deblock import edge_filters, fusable, fusable_filters
from .plane import (
    IntegerReconstructor,
    PlaneReconstructor,
    WholePlane,
    bands_for,
    blocks_apart,
    covering_bands,
    exact_bands_for,
    fill_apart,
    whole_factors,
    whole_plane,
)
from .render import OutputPlan, convert_rows, resampled_chroma, store_scaled


class Sink(Protocol):
    """Where the output bands go: `band` gives the (y1 - y0, w, c) array of the output's type
    to fill with rows [y0, y1), `put` takes it back filled. Called from several threads at
    once, for different bands. A band of more channels than the image's (Pillow's RGB images
    hold 4 bytes a pixel) gets 255 in the others (Pillow's X byte). `spent`: the renderer's
    buffers, given when this thread's "left" array (a band's left factor) holds nothing
    the band still needs: a band buffer may live there (`LEFT`)."""

    def band(self, y0: int, y1: int, spent: ThreadBuffers | None = None) -> np.ndarray: ...

    def put(self, y0: int, y1: int, band: np.ndarray) -> None: ...


class ArraySink:
    """Bands written straight into the rows of a whole output array."""

    def __init__(self, out: np.ndarray) -> None:
        self.out = out

    def band(self, y0: int, y1: int, spent: ThreadBuffers | None = None) -> np.ndarray:
        return self.out[y0:y1]

    def put(self, y0: int, y1: int, band: np.ndarray) -> None:
        pass


def streamable(container: Container,
               filters: list[tuple[int, int, tuple[int, int, int]]] | None = None) -> bool:
    """Whether `BandRenderer` may take the file, from its header and plan alone (`prepare`
    still declines a plane whose factors need more than one piece). A file with the
    deblocking filter: 8-bit exact planes whose edge periods are all 4 or more (`EdgeSeams`).
    `filters`: the planes' `edge_filters`, if the caller has them."""
    header = container.header
    if container.residuals:
        return False
    if any(p.filtered for p in container.planes) or container.restoration:
        # the seams' rows (`EdgeSeams`, `RestoreSeams`) come from any band: exact planes
        return (header.dtype == np.uint8 and all(p.exact for p in container.planes)
                and (fusable(header, container.planes) if filters is None
                     else fusable_filters(filters)))
    return header.dtype in (np.dtype(np.uint8), np.dtype(np.uint16))


class Seams(ABC):
    """What `EdgeSeams` and `RestoreSeams` share: the deblocking filter's edges of the image
    (`table`, as the kernels take them), and the meeting at each band boundary, where the
    band done first leaves its rows and the one done second finishes the seam from both."""

    def __init__(self, header: Header, planes: list[Plane], plan: OutputPlan,
                 bands: list[tuple[int, int]]) -> None:
        self.plan, self.bands, self.height = plan, bands, header.height
        self.filters = plan.filters
        self.table = np.array([(c, period, *params) for c, period, params in self.filters],
                              np.int64).reshape(-1, 5)
        self.halves: dict[int, np.ndarray] = {}  # boundary -> the first band's rows
        self.lock = threading.Lock()

    def meet(self, b: int, half: np.ndarray, upper: bool
             ) -> tuple[np.ndarray, np.ndarray] | None:
        """A band's rows at boundary b (upper: the rows above b): None if the other band's
        are not in yet (these are kept for it), else both, the rows above b first."""
        with self.lock:
            other = self.halves.pop(b, None)
            if other is None:
                self.halves[b] = half
                return None
        return (half, other) if upper else (other, half)

    def hand_over(self, out: np.ndarray, band: tuple[int, int], top: int, bottom: int,
                  above: np.ndarray | None, below: np.ndarray | None, sink: Sink) -> None:
        """A band's finished rows [top, bottom) of `out` to the sink, and its rows at the
        boundaries above and below it to their seams."""
        y0, y1 = band
        if bottom > top:
            sink.put(y0 + top, y0 + bottom, out[top:bottom])
        if above is not None:
            self.seam(y0, above, False, sink)
        if below is not None:
            self.seam(y1, below, True, sink)

    @abstractmethod
    def seam(self, b: int, half: np.ndarray, upper: bool, sink: Sink) -> None:
        """One band's rows at boundary b (upper: the rows above b), finished once the other
        band's are in (`meet`)."""


class EdgeSeams(Seams):
    """Version 4's deblocking filter (spec §5.4) fused into the bands: each band filters and
    converts its own rows but the two either side of each band boundary, which the boundary's
    horizontal edges (rows b - 2 .. b + 1) share with the next band. Those four rows, a seam,
    are finished by whichever of the two bands is done second, from both bands' halves, so
    no band waits for another and no row is reconstructed twice. Band boundaries are
    multiples of every edge period (`aligned_bands`): no other edge crosses a band or seam
    edge, and a band's rows, counted from its first, see their edges where the whole image
    has them."""

    def __init__(self, header: Header, planes: list[Plane], plan: OutputPlan,
                 bands: list[tuple[int, int]]) -> None:
        super().__init__(header, planes, plan, bands)
        self.unit = seam_unit(self.filters)
        self.fused = plan.colour is not None and header.channels >= 3  # deblock_ycc
        self.channels = header.channels
        #: The lean fused filter's bands (set by `BandRenderer.prepare`): Y''s left factor of
        #: each band lives in the band's own rows of the sink, asked for before Y''s product
        #: (`band`), and an output band's chroma rows come in pieces from two chroma bands
        #: (`BandRenderer.band`).
        self.left_in_band = False

    def band(self, i: int, out: np.ndarray | None, sink: Sink,
             chroma: tuple[np.ndarray, np.ndarray, int] | None = None,
             luma: PlaneReconstructor | None = None, spent: ThreadBuffers | None = None,
             second: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Band i's rows in `out` (its first row a multiple of every period), filtered and
        converted, all but the seams' (finished with them). `out` holds the Y'CbCr bytes, but
        on the fused path: with `chroma` (Cb and Cr rows of the halved planes from a row on)
        and `luma` (Y' in patches), the kernel doubles the chroma and rounds Y' as it filters,
        and only the seams' rows are stored as bytes first. out None (Y' the only full-size
        plane): the band is asked of the sink once Y''s product is made, with `spent`, the
        renderer's buffers, whose left factor Y' no longer needs (`Sink`). second (fused):
        the Cb and Cr rows that follow `chroma`'s, in a second band of the chroma planes,
        which the kernels read where they are (`ChromaRows.pieces`). With
        `left_in_band`, the band is asked for first and Y''s left factor made in its memory
        (4 bytes a pixel, as a band's float32 left factor of a patch layout takes at most), which
        the conversion then overwrites: no left factor buffer per thread."""
        y0, y1 = self.bands[i]
        n, last = y1 - y0, i == len(self.bands) - 1
        top = min(2 if i else 0, n)
        bottom = max(n if last else n - 2, top)
        compiled = self.plan.compiled
        patches = None
        if luma is not None:  # Y' of the seams' patch rows as bytes, as the seams take them
            assert compiled is not None
            lent = None
            if out is None and self.left_in_band:
                out = sink.band(y0, y1)
                lent = float_memory(out)
            matrix, patch, per_row = luma.matrix(i, lent), luma.patch, luma.per_row
            if out is None:
                out = sink.band(y0, y1, spent)
            for a, b in ((0, top), (bottom, n)):
                if b > a:
                    a, b = a // patch * patch, min(-(-b // patch) * patch, n)
                    compiled.store_bytes(matrix[a // patch * per_row:], out, a, b, 0, 0,
                                         np.float32(0.0), patch, per_row)
            patches = (matrix, patch, per_row)
        assert out is not None  # (given, or asked for above)
        if chroma is not None:  # the seams' rows as bytes of Y'CbCr, as the seams take them
            assert compiled is not None
            blue, red, first = chroma
            blue2, red2 = second if second is not None else (None, None)
            for a, b in ((0, top), (bottom, n)):
                if b > a:
                    compiled.double_chroma(out, y0 + a, y0 + b, blue, red, top=y0,
                                           first=first, height=self.height, cb2=blue2,
                                           cr2=red2)
        # the seams' halves first: `out` may be the thread's buffer a seam's output reuses
        above = out[:top].copy() if i else None
        below = out[bottom:].copy() if not last else None
        self.finish(out, y0 + top, y0 + bottom, y0, chroma, patches, second)
        self.hand_over(out, (y0, y1), top, bottom, above, below, sink)

    def seam(self, b: int, half: np.ndarray, upper: bool, sink: Sink) -> None:
        """One band's half of the seam at boundary b (upper: rows b - 2, b - 1), finished once
        the other half is in."""
        met = self.meet(b, half, upper)
        if met is None:
            return
        rows = np.concatenate(met)
        y0, y1 = b - 2, b - 2 + rows.shape[0]
        if self.fused:  # the kernel takes rows from any image row on
            self.finish(rows, y0, y1, y0)
            finished = rows
        else:
            # Rows from a multiple of every period, as the other kernels count their edges:
            # the seam at rows unit - 2 .. of a work array whose first rows (zeros) only feed
            # edges whose writes stay in them.
            start = self.unit - 2
            work = np.zeros((start + rows.shape[0], *rows.shape[1:]), dtype=rows.dtype)
            work[start:] = rows
            self.finish(work, y0, y1, b - self.unit)
            finished = work[start:]
        out = sink.band(y0, y1)
        out[:] = finished
        sink.put(y0, y1, out)

    def finish(self, rows: np.ndarray, y0: int, y1: int, top: int,
               chroma: tuple[np.ndarray, np.ndarray, int] | None = None,
               patches: tuple[np.ndarray, int, int] | None = None,
               second: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Image rows [y0, y1), held in `rows` (C-contiguous) from image row `top` on (off
        the fused path a multiple of every period), no edge across y0 or y1: the vertical
        edges, the horizontal edges within, the conversion. Fused: `chroma` and `patches`
        (Y': matrix, patch, per_row, from row `top`) and `second` as `band` takes them."""
        if y0 >= y1:
            return
        plan, compiled = self.plan, self.plan.compiled
        if self.fused:
            assert compiled is not None and plan.colour is not None
            blue, red, first = chroma if chroma is not None else (None, None, 0)
            blue2, red2 = second if second is not None else (None, None)
            matrix, patch, per_row = patches if patches is not None else (None, 0, 0)
            compiled.deblock_ycc(rows, y0, y1, self.table, plan.colour, blue, red, top=top,
                                 first=first, height=self.height, matrix=matrix, patch=patch,
                                 per_row=per_row,
                                 pad=255 if rows.shape[2] > self.channels else -1,
                                 cb2=blue2, cr2=red2)
            return
        a, b = y0 - top, y1 - top
        if compiled is not None:
            compiled.deblock(rows, self.table, 1, a, b)
            compiled.deblock(rows[:b], self.table, 0, 0, rows.shape[1])
        else:
            for c, period, (alpha, beta, tc) in self.filters:
                filter_lines(rows[a:b, :, c], period, alpha, beta, tc, axis=1)
                filter_lines(rows[:b, :, c], period, alpha, beta, tc, axis=0)
        if plan.ycc:
            convert_rows(rows, a, b, plan, {})


def float_memory(band: np.ndarray) -> np.ndarray | None:
    """A band's bytes as 1-D float32 (the same memory), or None where they are not one
    C-contiguous run of whole, aligned float32s."""
    if (band.dtype != np.uint8 or not band.flags.c_contiguous or band.nbytes % 4
            or band.ctypes.data % 4):
        return None
    return band.reshape(-1).view(np.float32)


class RestoreSeams(Seams):
    """Version 6's restoration filter (spec §5.6), after the deblocking filter, in the bands:
    each band holds its rows as Y'CbCr bytes, deblocks them (every edge inside it), restores
    and converts its rows but the HALF rows either side of each band boundary b, and keeps its
    HALF + REACH rows there, deblocked but not restored. Whichever of the two bands is done
    second finishes the seam: the edge at b (rows b - 2 .. b + 1: boundaries are multiples of
    every edge period), then rows b - HALF .. b + HALF - 1 restored from the rows around them,
    and converted. No band waits for another, no row is reconstructed twice. Bands are at
    least MIN_ROWS rows (but the last), so a seam's rows come from its two bands alone.

    Compiled, for 8-bit Y'CbCr with its filters on Y', Cb and Cr (`fused`), a band is one
    pass of `restore_ycc` over a ring of rows, as `deblock_ycc` is for `EdgeSeams`; else
    the separate kernels (deblock, restore, convert) or numpy, one after the other: the
    restoration needs the deblocked bytes before the conversion."""

    #: Rows either side of a boundary that the seam restores: the rows whose restoration
    #: reads a row the boundary's edge filter writes (b - 1, b), at most REACH away.
    HALF = REACH + 1
    #: Rows a seam holds from each band: HALF restored rows and the REACH rows they read.
    HELD = HALF + REACH
    MIN_ROWS = 2 * HALF

    def __init__(self, container: Container, plan: OutputPlan,
                 bands: list[tuple[int, int]]) -> None:
        super().__init__(container.header, container.planes, plan, bands)
        self.restoration = sorted(container.restoration.items())
        self.channels = container.header.channels
        #: One pass per band (the compiled `restore_ycc`: deblocking, restoration and
        #: conversion on a ring of rows, the chroma doubled on the way) for 8-bit Y'CbCr whose
        #: filters are all on Y', Cb and Cr; else the separate kernels (or numpy) one after
        #: the other.
        self.fused = (plan.compiled is not None and plan.colour is not None and plan.ycc
                      and self.channels == 3 and all(c < 3 for c, _ in self.restoration)
                      and all(c < 3 for c, _, _ in self.filters))
        self.restorations = [(c, np.asarray(r.bounds, np.int64), r.table())
                             for c, r in self.restoration]

    def band(self, i: int, out: np.ndarray | None, sink: Sink,
             chroma: tuple[np.ndarray, np.ndarray, int] | None = None,
             luma: PlaneReconstructor | None = None, spent: ThreadBuffers | None = None
             ) -> None:
        """Band i's rows in `out` (Y'CbCr bytes; with `chroma`, the halved Cb and Cr rows
        from a row on, doubled here first): deblocked, restored and converted but the seams'
        rows, which go to the seams with the rows they read. `luma`, `spent` and out None:
        as `EdgeSeams.band` takes them (the one pass only)."""
        if self.fused:
            self.fused_band(i, out, sink, chroma, luma, spent)
            return
        assert out is not None
        y0, y1 = self.bands[i]
        n, last = y1 - y0, i == len(self.bands) - 1
        compiled = self.plan.compiled
        if chroma is not None:
            assert compiled is not None
            blue, red, first = chroma
            compiled.double_chroma(out, y0, y1, blue, red, top=y0, first=first,
                                   height=self.height)
        self.deblock_inside(out)
        # the seams' rows before this band restores any (`out` may be a buffer a seam reuses)
        above = out[:min(self.HELD, n)].copy() if i else None
        below = out[max(n - self.HELD, 0):].copy() if not last else None
        top = 0 if i == 0 else min(self.HALF, n)
        bottom = max(n if last else n - self.HALF, top)
        self.finish(out, top, bottom, y0)
        self.hand_over(out, (y0, y1), top, bottom, above, below, sink)

    def fused_band(self, i: int, out: np.ndarray | None, sink: Sink,
                   chroma: tuple[np.ndarray, np.ndarray, int] | None,
                   luma: PlaneReconstructor | None, spent: ThreadBuffers | None) -> None:
        """`band` in one pass (`restore_ycc`): the seams' HELD rows either side come out of
        it deblocked, as Y'CbCr bytes, into arrays of their own. With `luma` (Y' in patches)
        the kernel rounds Y' from its product; out None: the band is asked of the sink once
        that product is made, with `spent`."""
        y0, y1 = self.bands[i]
        n, last = y1 - y0, i == len(self.bands) - 1
        plan = self.plan
        assert plan.compiled is not None
        patches: dict[str, object] = {}
        if luma is not None:
            patches = {"matrix": luma.matrix(i), "patch": luma.patch, "per_row": luma.per_row}
            if out is None:
                out = sink.band(y0, y1, spent)
        assert out is not None  # (given, or asked for above)
        held = (min(self.HELD, n), *out.shape[1:])
        above = np.empty(held, np.uint8) if i else None
        below = np.empty(held, np.uint8) if not last else None
        top = 0 if i == 0 else min(self.HALF, n)
        bottom = max(n if last else n - self.HALF, top)
        blue, red, first = chroma if chroma is not None else (None, None, 0)
        plan.compiled.restore_ycc(out, y0, y1, y0 + top, y0 + bottom, self.table,
                                  self.restorations, plan.colour, blue, red, top=y0,
                                  first=first, height=self.height, above=above, below=below,
                                  pad=self.pad(out), **patches)
        self.hand_over(out, (y0, y1), top, bottom, above, below, sink)

    def pad(self, rows: np.ndarray) -> int:
        """Pillow's X byte for rows of more channels than the image's, else -1 (none)."""
        return 255 if rows.shape[2] > self.channels else -1

    def deblock_inside(self, rows: np.ndarray) -> None:
        """The deblocking filter's edges within `rows` (from a multiple of every period)."""
        compiled = self.plan.compiled
        if not self.filters:
            return
        if compiled is not None:
            compiled.deblock(rows, self.table, 1, 0, rows.shape[0])
            compiled.deblock(rows, self.table, 0, 0, rows.shape[1])
            return
        for c, period, (alpha, beta, tc) in self.filters:
            filter_lines(rows[:, :, c], period, alpha, beta, tc, axis=1)
            filter_lines(rows[:, :, c], period, alpha, beta, tc, axis=0)

    def seam(self, b: int, half: np.ndarray, upper: bool, sink: Sink) -> None:
        """One band's rows at boundary b (upper: the rows above b), finished once the other
        band's are in."""
        met = self.meet(b, half, upper)
        if met is None:
            return
        above, below = met
        rows = np.concatenate(met)
        start = b - above.shape[0]  # image row of rows[0]
        if below.shape[0] >= 2:  # the edge at b (spec §5.4: e + 1 < height)
            edge = rows[above.shape[0] - 2:above.shape[0] + 2]
            for c, _, (alpha, beta, tc) in self.filters:
                filter_lines(edge[:, :, c], 2, alpha, beta, tc, axis=0)  # one edge, at 2
        lo, hi = max(b - self.HALF, 0), min(b + self.HALF, self.height)
        if self.fused:  # the edge at b filtered above: no filters in the pass
            plan = self.plan
            assert plan.compiled is not None
            plan.compiled.restore_ycc(rows, start, start + rows.shape[0], lo, hi,
                                      self.table[:0], self.restorations, plan.colour,
                                      top=start, height=self.height, pad=self.pad(rows))
        else:
            self.finish(rows, lo - start, hi - start, start)
        out = sink.band(lo, hi)
        out[:] = rows[lo - start:hi - start]
        sink.put(lo, hi, out)

    def finish(self, rows: np.ndarray, a: int, b: int, top: int) -> None:
        """Rows [a, b) of `rows` (image rows from `top` on, deblocked, held with the REACH
        rows either side that the image has): restored, then converted, in place."""
        if a >= b:
            return
        plan = self.plan
        lo, hi = max(a - REACH, 0), min(b + REACH, rows.shape[0])
        for c, restoration in self.restoration:
            # the channel read where it lies: restore_band reads every row before it writes
            restore_band(rows[lo:hi, :, c], rows[a:b, :, c], top + a, top + b, top + lo,
                         self.height, restoration, plan.compiled)
        if plan.ycc:
            convert_rows(rows, a, b, plan, {})


def long_bands(bands: list[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """The bands with each one shorter than `rows` (but the last) joined to the next."""
    out: list[tuple[int, int]] = []
    start = 0
    for y0, y1 in bands:
        if y1 - start >= rows or y1 == bands[-1][1]:
            out.append((start, y1))
            start = y1
    if start < bands[-1][1]:
        out.append((start, bands[-1][1]))
    return out


def seam_unit(filters: list[tuple[int, int, tuple[int, int, int]]]) -> int:
    """What `EdgeSeams` cuts bands at multiples of: every edge period (each >= 4) of the
    planes' `edge_filters`."""
    return math.lcm(*(period for _, period, _ in filters))


def aligned_bands(bands: list[tuple[int, int]], unit: int, height: int
                  ) -> list[tuple[int, int]]:
    """The bands with each boundary moved up to a multiple of `unit` (the band renderer's
    bands are whole patches of every full-size plane; unit is a multiple of those)."""
    cuts = sorted({-(-y1 // unit) * unit for _, y1 in bands[:-1]} - {0})
    bounds = [0, *(c for c in cuts if c < height), height]
    return list(itertools.pairwise(bounds))


def staggered_bands(needs: list[tuple[int, int]], unit: int, height: int, every: int = 2
                    ) -> list[tuple[int, int]]:
    """Bands of a subsampled plane's rows (whole multiples of `unit` rows, the last may end at
    `height`) for output bands that read its rows `needs` [lo, hi) (in order, each
    overlapping the next by the rows both blend): cut at the middle of every second output
    band's rows (`every`: of every band, or every third...). Any cut splits the rows of the
    output bands that read the rows either side of it, which a ChromaRows then joins from two
    bands (a copy) or hands out as two pieces (`ChromaRows.pieces`); a cut at a band boundary
    splits two bands' rows, one inside an output band's rows (more than a row from its ends)
    only that band's: half the joins for bands of two output bands' share."""
    if len(needs) < 2:  # no second output band: no cut (what the lines below give)
        return [(0, height)]
    cuts = {(lo + hi) // 2 // unit * unit for lo, hi in needs[every - 1::every]}
    bounds = [0, *sorted(c for c in cuts if 0 < c < height), height]
    return list(itertools.pairwise(bounds))


class ChromaRows:
    """Rows of one subsampled plane as float32, reconstructed a band of the plane at a time
    when an output band first needs one of its rows, and dropped once every output band that
    reads them is done (`release`).

    The arrays of dropped bands are reused by the bands made after them, and rows joined
    from two bands go to a buffer of the thread that asks (`joins`): a decode of many bands
    then allocates a few arrays of each size once, instead of one per band, whose freed
    memory the C library keeps spread through its heap (a 19 MP load's heap grew by twice
    what it held at once)."""

    def __init__(self, rows: PlaneReconstructor, local: ThreadBuffers | None = None,
                 joins: ThreadBuffers | None = None) -> None:
        self.rows = rows
        #: For an image of one output band (which one thread renders alone): the thread's
        #: buffers, which keep the plane's rows from one decode to the next.
        self.local = local
        self.joins = joins
        self.join_name = f"chroma join {rows.plane.index}"
        #: samples of the plane's largest band, and arrays of that size no band holds now
        self.most = max((y1 - y0 for y0, y1 in rows.bands), default=0) * rows.plane.width
        self.spare: list[np.ndarray] = []
        self.starts = [y0 for y0, _ in rows.bands]
        self.needs: list[tuple[int, int]] = []  # rows [lo, hi) of each output band
        self.uses: list[range] = []  # plane bands of each output band
        self.left = [0] * len(rows.bands)  # output bands still to read each plane band
        self.done: dict[int, np.ndarray] = {}
        self.locks = [threading.Lock() for _ in rows.bands]
        self.count_lock = threading.Lock()

    def expect(self, needs: list[tuple[int, int]]) -> None:
        """The rows [lo, hi) each output band will read, in band order."""
        self.needs = needs
        self.uses = [self._covering(lo, hi) for lo, hi in needs]
        if self.joins is not None:
            self.joins.expect(self.join_name, max((hi - lo for lo, hi in needs), default=0)
                              * self.rows.plane.width)
        for ks in self.uses:
            for k in ks:
                self.left[k] += 1

    def _covering(self, lo: int, hi: int) -> range:
        """The plane bands holding rows [lo, hi)."""
        return range(bisect_right(self.starts, lo) - 1, bisect_right(self.starts, hi - 1))

    def _band(self, k: int) -> np.ndarray:
        with self.locks[k]:  # one thread reconstructs it, the others wait for it
            values = self.done.get(k)
            if values is None:
                rows = self.rows
                y0, y1 = rows.bands[k]
                size = (y1 - y0) * rows.plane.width
                values = (self._array()[:size] if self.local is None else
                          self.local.get(f"chroma {rows.plane.index} {k}", size)
                          ).reshape(y1 - y0, rows.plane.width)
                if rows.compiled is not None and rows.patch:
                    rows.compiled.store_floats(rows.matrix(k), values, 0, y1 - y0, rows.patch,
                                               rows.per_row)
                else:
                    values[:] = rows.float_rows(k)
                rows.release(k)
                self.done[k] = values
            return values

    def _array(self) -> np.ndarray:
        """An array of `most` samples: a dropped band's, else a new one."""
        with self.count_lock:
            if self.spare:
                return self.spare.pop()
        return np.empty(self.most, dtype=np.float32)

    def between(self, lo: int, hi: int) -> np.ndarray:
        """Rows [lo, hi) as one C-contiguous float32 array: a view when one band holds them,
        else joined in a buffer of this thread, valid until its next call for this plane."""
        parts = [self._band(k)[max(lo - self.starts[k], 0):hi - self.starts[k]]
                 for k in self._covering(lo, hi)]
        if len(parts) == 1:
            return parts[0]
        if self.joins is None:
            return np.concatenate(parts)
        width = self.rows.plane.width
        out = self.joins.get(self.join_name, (hi - lo) * width).reshape(hi - lo, width)
        return np.concatenate(parts, out=out)

    def pieces(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows [lo, hi) as views of the bands that hold them, where one or two do: the first
        band's rows and the second's (None: one band holds them all); else joined, as
        `between` joins them, and None."""
        ks = self._covering(lo, hi)
        if len(ks) != 2:
            return self.between(lo, hi), None
        k = ks[0]
        return (self._band(k)[lo - self.starts[k]:],
                self._band(k + 1)[:hi - self.starts[k + 1]])

    def release(self, i: int) -> None:
        """Output band i is done with its rows."""
        with self.count_lock:
            for k in self.uses[i]:
                self.left[k] -= 1
                if self.left[k] == 0:
                    values = self.done.pop(k, None)
                    if values is not None and values.base is not None and self.local is None:
                        self.spare.append(values.base)


class WholeChroma(ChromaRows):
    """`ChromaRows` of a plane held in one band, for an image of one output band (a small
    image's, which one thread renders alone): the plane's rows reconstructed whole into the
    thread's buffer on the first `between`, every call a view of them, dropped by `release`.
    The same rows, buffer and calls on the reconstructor as `ChromaRows` with `local`, without
    its per-band bookkeeping (locks, counts, spare arrays and joins), which one band never
    uses."""

    def __init__(self, rows: PlaneReconstructor, local: ThreadBuffers,
                 made: np.ndarray | None = None) -> None:
        # Not ChromaRows.__init__: the attributes the methods below read.
        self.rows, self.local = rows, local
        self.needs: list[tuple[int, int]] = []
        self.values: np.ndarray | None = made
        #: made whole before the bands (`whole_jobs`), which all read it: kept until the end
        self.made = made is not None

    def expect(self, needs: list[tuple[int, int]]) -> None:
        self.needs = needs

    def between(self, lo: int, hi: int) -> np.ndarray:
        values = self.values
        top = self.rows.bands[0][0]  # (the encoder's sampled rows: not always 0)
        if values is None:
            rows = self.rows
            height, width = rows.bands[0][1] - top, rows.plane.width
            values = self.local.get(f"chroma {rows.plane.index} 0", height * width
                                    ).reshape(height, width)
            whole_rows(rows, values)
            self.values = values
        return values[max(lo - top, 0):hi - top]

    def release(self, i: int) -> None:
        if not self.made:
            self.values = None


def whole_rows(rows: PlaneReconstructor, values: np.ndarray) -> None:
    """A plane of one band reconstructed into `values` (its rows, float32)."""
    if rows.compiled is not None and rows.patch:
        rows.compiled.store_floats(rows.matrix(0), values, 0, values.shape[0], rows.patch,
                                   rows.per_row)
    else:
        values[:] = rows.float_rows(0)
    rows.release(0)


def whole_image(container: Container, plan: OutputPlan
                ) -> dict[int, tuple[list[Block], list[Block]]] | None:
    """Every plane's U and V blocks where each plane is a `WholePlane` (`whole_factors`), each
    within its share of the budget; None where one is not."""
    found = {}
    for p in container.planes:
        factors = whole_factors(container, p, plan.ranks[p.index],
                                plane_budget(plan, container, p), plan.compiled)
        if factors is None:
            return None
        found[p.index] = factors
    return found


def whole_jobs(container: Container, plan: OutputPlan,
               loads: list[tuple[Plane, list[tuple[int, int]]]],
               whole: dict[int, tuple[list[Block], list[Block]]], buffers: ThreadBuffers,
               made: dict[int, np.ndarray]) -> list[PlaneReconstructor | None]:
    """Each plane's `WholePlane`, set up as concurrent jobs (one a plane, on every thread), a
    chroma plane also reconstructed whole into `made`. A full-size plane's run/level U blocks
    (a photo's luma: most of the set-up) are filled by a job of their own, first, beside the
    rest of its set-up (`blocks_apart`): the other thread sets up the chroma planes and the
    rest of that plane meanwhile, instead of idling. A and the chroma planes live in this
    thread's buffers, asked for here: a pool thread's kept arrays are reused by its next job,
    which may be another decode's while this one's bands still read them."""
    compiled = plan.compiled
    assert compiled is not None  # (`whole_factors`)
    lefts = [buffers.get(f"{LEFT} {p.index}", p.matrix_shape[0] * plan.ranks[p.index])
             for p, _ in loads]
    for p in plan.chroma:
        made[p.index] = buffers.get(f"chroma {p.index} 0", p.height * p.width
                                    ).reshape(p.height, p.width)
    # (the chroma planes' products run in their set-up: their U is filled whole there)
    split = [blocks_apart(p, plan.ranks[p.index], whole[p.index][0]) if p.index not in made
             else (whole[p.index][0], []) for p, _ in loads]

    def set_up(k: int) -> PlaneReconstructor:
        p, bands = loads[k]
        kept, apart = split[k]
        rows = WholePlane(container, p, plan.ranks[p.index], (kept, whole[p.index][1]),
                          compiled, buffers, bands, lefts[k], bool(apart))
        if p.index in made:
            whole_rows(rows, made[p.index])
        return rows

    def apart_job(k: int) -> None:
        p = loads[k][0]
        m, rank = p.matrix_shape[0], plan.ranks[p.index]
        fill_apart(compiled, p, split[k][1], lefts[k][:m * rank].reshape(m, rank))
    # The long apart jobs first, then the planes whose U is whole in their job (the chroma
    # planes, with their products), the planes of an apart job last: while one thread fills
    # the apart blocks, the other takes the rest.
    order = sorted(range(len(loads)), key=lambda k: bool(split[k][1]))
    apart_jobs = [partial(apart_job, k) for k in range(len(loads)) if split[k][1]]
    jobs: list[Callable[[], PlaneReconstructor | None]] = [
        *apart_jobs, *(partial(set_up, k) for k in order)]
    done = run_bands(lambda i: jobs[i](), len(jobs))
    planes: list[PlaneReconstructor | None] = [None] * len(loads)
    for k, rows in zip(order, done[len(apart_jobs):]):
        planes[k] = rows
    return planes


def one_band(container: Container, components: int | None, lean: bool
             ) -> BandRenderer | None:
    """`BandRenderer.prepare` of a small image in one band, as one thread renders it: what a
    broken file that `whole_jobs` cut into a band per thread is refused by. Its error then
    does not depend on the thread count: the plane that fails first, and the max|A| the
    exact rule's message gives, would otherwise depend on how the rows were cut (the chroma
    planes multiplied before the full-size ones, each band's rows checked apart)."""
    with serial():
        return BandRenderer.prepare(container, components, lean)


def unplanned_rows(lo: int, hi: int) -> np.ndarray:
    """A chroma Resampler's source while BandRenderer.prepare plans its rows."""
    raise AssertionError("rows asked of a resampler before its rows were planned")


def plane_budget(plan: OutputPlan, container: Container, plane: Plane) -> int:
    """The plane's share of the pass budget, by its samples: the pieces of every plane, held
    at once, take what one plane's may take on the other path (spec §5, Resources)."""
    total = sum(p.height * p.width for p in container.planes)
    return max(1, plan.budget * plane.height * plane.width // max(total, 1))


def prepared(container: Container, plan: OutputPlan, plane: Plane,
             bands: list[tuple[int, int]], buffers: ThreadBuffers, lean: bool = False,
             integers: tuple[np.ndarray, np.ndarray] | None = None, left_given: bool = False
             ) -> PlaneReconstructor | None:
    """The plane's reconstructor with its factors loaded for every band, or None if they need
    more than one piece. `buffers`: the threads' band buffers, shared by the planes (the
    products too: each band consumes its planes' products one after the other). lean: its
    held streams dropped as the bands are done (`PlaneReconstructor.release`). integers: the
    plane's (A, B), given instead of read from its blocks (`IntegerReconstructor`).
    left_given: each band's left factor is made in memory the caller gives (`matrix`)."""
    budget = plane_budget(plan, container, plane)
    if integers is None:  # the usual small file: each factor whole in one compiled call
        whole = whole_plane(container, plane, plan.ranks[plane.index], bands, budget,
                            plan.compiled, buffers)
        if whole is not None:
            return whole
    rows = (PlaneReconstructor(container, plane, plan.ranks[plane.index], bands, budget, {},
                               plan.compiled, buffers, released=lean, left_given=left_given)
            if integers is None
            else IntegerReconstructor(integers, container, plane, plan.ranks[plane.index],
                                      bands, budget, {}, plan.compiled, buffers))
    # (declined once its blocks are read and checked, so that a broken one is refused before
    # the other path allocates the output; a patch layout's B^T is one range, which may not
    # fit the plane's share: then the planes are decoded one at a time)
    if (len(rows.columns) != 1 or not (rows.local or len(rows.passes) == 1)
            or rows.right_bytes() > budget):
        return None
    rows.load_columns(0)
    rows.load(0)
    return rows


class BandRenderer:
    """A file's planes ready to render any band: `prepare` reads and checks every factor block
    the bands need (so that a file broken there is refused before the output is allocated),
    `run` renders the bands into a sink."""

    def __init__(self, container: Container, plan: OutputPlan,
                 full: dict[int, PlaneReconstructor], chroma: dict[int, ChromaRows],
                 resamplers: dict[int, Resampler], bands: list[tuple[int, int]],
                 convert: bool = True, seams: EdgeSeams | RestoreSeams | None = None,
                 buffers: ThreadBuffers | None = None) -> None:
        self.header, self.plan, self.bands = container.header, plan, bands
        self.buffers = ThreadBuffers() if buffers is None else buffers
        self.full, self.chroma, self.resamplers = full, chroma, resamplers
        self.convert, self.seams = convert, seams
        #: The lean fused filter's bands: an output band's chroma rows handed to the kernels in
        #: pieces where two chroma bands hold them (`EdgeSeams.left_in_band`, `chroma_pieces`)
        self.pieces = isinstance(seams, EdgeSeams) and seams.left_in_band
        #: Whether rendering calls BLAS (decoder.rendering's `blas`): not when the kernels
        #: multiply every plane, none of whose dense bands go to BLAS
        self.blas = any(rows.calls_blas for rows in
                        [*full.values(), *(kept.rows for kept in chroma.values())])
        #: A small image cut into a band per thread (`whole_jobs`): `prepare`'s arguments, from
        #: which `run` refuses a broken file as one band does (`one_band`)
        self.split: tuple[Container, int | None, bool] | None = None

    @classmethod
    def prepare(cls, container: Container, components: int | None = None,
                lean: bool = False, sampled: list[tuple[int, int]] | None = None,
                integers: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
                ) -> BandRenderer | None:
        """The renderer, or None where the file needs the whole-array path: not `streamable`,
        or a plane's factors in several pieces.

        lean (the Pillow plugin, whose image takes a third more than the raw pixels): a file
        of exact planes is rendered in bands of `band_sizes.exact_band_pixels` and its held
        sparse streams are dropped piece by piece as the bands are done, so that little but
        the image is held at the end; it costs more calls and page faults than the whole-array
        path's bands.

        sampled (8-bit files of exact planes only): these bands of rows alone (whole patches of
        every full-size plane, in order, apart or not), as Y'CbCr samples before the colour
        conversion: what `render_image(colour=False)` gives on those rows (an exact product's
        rows do not depend on the band), for the encoder's deblocking strengths. integers
        (with `sampled`): the integers (A, B) of some planes by index, which the encoder
        holds: those planes' blocks are not read (`IntegerReconstructor`).

        A small image (one band: a photo of a few megapixels) whose planes are all whole
        (`whole_image`), decoded with more than one thread (`band_workers`: above
        band_sizes.SERIAL_SAMPLES samples), has its planes set up as concurrent jobs, the chroma
        planes made whole in them (`whole_jobs`), and its rows cut into a band per thread:
        the same rows as one band (exact planes), on every core."""
        filters = edge_filters(container.header, container.planes)
        if not streamable(container, filters):
            return None
        h, w = container.header.height, container.header.width
        convert = sampled is None
        plan = OutputPlan.of(container, components, convert=convert, filters=filters)
        # Exact planes (every plane of a version 5 file) give the same pixels in any band.
        # Others keep the other path's bands, to the row: a BLAS product's rows can depend on
        # how many rows it has, so other bands could round some samples differently.
        exact = lean and all(p.exact for p in container.planes)
        band_pixels = band_sizes.exact_band_pixels(h, w)
        bands = exact_bands_for(plan.full, h, w, band_pixels) if exact else plan.bands
        if sampled is not None:
            assert container.header.dtype == np.uint8 and all(p.exact for p in container.planes)
            bands = sampled
        given = integers if sampled is not None and integers is not None else {}
        # A small image (one band) of whole planes (`whole_factors`) on several threads: its
        # planes set up as concurrent jobs (`whole_jobs`), its rows cut into a band per
        # thread, of whole patch rows (rounded down: an odd count of them still gives two)
        threads = band_workers()
        whole = (whole_image(container, plan) if sampled is None and len(bands) == 1
                 and threads > 1 else None)
        if whole is not None and not pool_ready(threads):
            whole = None  # a process's first: in this thread, while the threads start
        if whole is not None:
            unit = max([p.patch for p in plan.full if p.layout == LAYOUT_PATCH], default=1)
            bands = exact_bands_for(plan.full, h, w, max(1, -(-h // unit) // threads) * unit * w)
        filtered = any(p.filtered for p in container.planes) and sampled is None
        restored = bool(container.restoration) and sampled is None
        if filtered or restored:  # exact planes (`streamable`): any whole patches, same rows
            unit = math.lcm(seam_unit(plan.filters),
                            *(p.patch for p in plan.full if p.layout == LAYOUT_PATCH))
            bands = aligned_bands(bands, unit, h)
        if restored:
            bands = long_bands(bands, RestoreSeams.MIN_ROWS)
        buffers = ThreadBuffers()
        # every plane's rows to load: the full-size planes' are the output bands, a chroma
        # plane's those its resampler reads for them
        loads: list[tuple[Plane, list[tuple[int, int]]]] = [(p, bands) for p in plan.full]
        # The lean fused filter (`EdgeSeams.left_in_band`): Y''s left factor of each band in
        # the band's own rows of the sink, 4 bytes a pixel (Pillow's RGBX and RGBA), which a
        # band's float32 left factor of a patch layout never exceeds; one band (a small image,
        # `whole_plane`) keeps its buffer. Its kernels also read an output band's chroma rows
        # from two chroma bands where they are (`ChromaRows.pieces`): a large image's chroma
        # bands are then cut inside every output band's rows, each holding about one output
        # band's rows (less held at once, no joined copies).
        left_in_band = (len(bands) > 1 and exact and whole is None and filtered and not restored
                        and container.header.dtype == np.uint8 and plan.colour is not None
                        and container.header.channels >= 3 and plan.fused and bool(plan.chroma)
                        and len(plan.full) == 1 and plan.full[0].index == 0
                        and plan.full[0].layout == LAYOUT_PATCH)
        cut_every = 1 if left_in_band and h * w > band_sizes.LARGE_IMAGE_PIXELS else 2
        chroma_needs: list[tuple[Resampler, list[tuple[int, int]]]] = []
        # Every chroma plane cut at the same rows, whole patches of each (a file may hold Cb in
        # patch 8 and Cr in patch 4): the kernels take Cb's and Cr's pieces in pairs.
        chroma_unit = math.lcm(*(p.patch if p.layout == LAYOUT_PATCH else 1 for p in plan.chroma))
        for p in plan.chroma:
            # its source, the kept rows, is set below, once planned by the rows each band reads
            resampler = Resampler(unplanned_rows, (p.height, p.width), h, w)
            needs = [resampler.source_rows(y0, y1) for y0, y1 in bands]
            # Exact chroma in bands of about twice the share of the plane of an output band:
            # each holds the rows about two output bands blend (smaller ones are cut by more
            # output bands, whose rows are then joined from two; larger ones are held longer),
            # cut inside every second output band's rows (`staggered_bands`; `cut_every`).
            chroma_bands = (staggered_bands(needs, chroma_unit, p.height, cut_every) if exact
                            else bands_for([p], p.height, p.width))
            if sampled is not None:  # just the rows the sampled bands blend
                chroma_bands = covering_bands(
                    needs, p.patch if p.layout == LAYOUT_PATCH else 1, p.height)
            if whole is not None:  # made whole once, read by every band
                chroma_bands = [(0, p.height)]
            loads.append((p, chroma_bands))
            chroma_needs.append((resampler, needs))
        def load(k: int) -> PlaneReconstructor | None:
            plane, rows_of = loads[k]
            return prepared(container, plan, plane, rows_of, buffers, exact,
                            given.get(plane.index), left_in_band and plane.index == 0)
        # The encoder's sampled rows load each plane in a job of its own, on every thread:
        # a plane's few bands alone leave the threads idle in its serial steps. A decode
        # loads them one after the other and stops at the first that needs the other path:
        # concurrent planes would hold every plane's temporaries at once, where its memory
        # is at the goal's line.
        loaded: list[PlaneReconstructor | None]
        made: dict[int, np.ndarray] = {}  # whole chroma planes (`whole`)
        if whole is not None:
            try:
                loaded = whole_jobs(container, plan, loads, whole, buffers, made)
            except SvdiError:
                return one_band(container, components, lean)
        elif sampled is not None:
            loaded = run_bands(load, len(loads))
            if any(rows is None for rows in loaded):
                return None
        else:
            loaded = []
            for k in range(len(loads)):
                rows = load(k)
                if rows is None:
                    return None
                loaded.append(rows)
        full: dict[int, PlaneReconstructor] = {}
        chroma: dict[int, ChromaRows] = {}
        resamplers: dict[int, Resampler] = {}
        for (p, _), rows in zip(loads[:len(plan.full)], loaded):
            full[p.index] = rows
        for (p, _), rows, (resampler, needs) in zip(loads[len(plan.full):],
                                                     loaded[len(plan.full):], chroma_needs):
            if p.index in made:
                kept: ChromaRows = WholeChroma(rows, buffers, made[p.index])
            elif len(bands) == 1 and len(rows.bands) == 1:
                kept = WholeChroma(rows, buffers)
            else:
                kept = ChromaRows(rows, buffers if len(bands) == 1 else None, buffers)
            kept.expect(needs)
            chroma[p.index] = kept
            resampler.source = kept.between
            resamplers[p.index] = resampler
        seams: EdgeSeams | RestoreSeams | None = None
        if restored:
            seams = RestoreSeams(container, plan, bands)
        elif filtered:
            seams = EdgeSeams(container.header, container.planes, plan, bands)
            seams.left_in_band = left_in_band
        renderer = cls(container, plan, full, chroma, resamplers, bands, convert, seams, buffers)
        if whole is not None:
            renderer.split = (container, components, lean)
        return renderer

    def run(self, sink: Sink, threads: int | None = None) -> None:
        """Every band into `sink`, in threads. Once only: the chroma rows are dropped as the
        bands are done. A broken file cut into a band per thread is refused as one band
        refuses it (`one_band`)."""
        try:
            run_bands(lambda i: self.band(i, sink), len(self.bands), threads)
            return
        except SvdiError as exc:
            if self.split is None:
                raise
            failed = exc
        renderer = one_band(*self.split)
        if renderer is not None:
            renderer.run(sink)  # raises where the bands did
        raise failed

    def chroma_pieces(self, lo: int, hi: int
                      ) -> tuple[tuple[np.ndarray, np.ndarray, int],
                                 tuple[np.ndarray, np.ndarray] | None]:
        """Cb and Cr rows [lo, hi) for the fused filter's kernels: (Cb, Cr, lo) in one array
        each, and None; or where two chroma bands hold them, the first band's rows of each and
        (Cb, Cr) of the second's, read where they are (no joined copy)."""
        cb, cr = self.chroma[1], self.chroma[2]
        (blue, blue2), (red, red2) = cb.pieces(lo, hi), cr.pieces(lo, hi)
        if blue2 is not None and red2 is not None:
            return (blue, red, lo), (blue2, red2)
        if blue2 is not None or red2 is not None:  # (not met: the planes are cut alike)
            blue, red = cb.between(lo, hi), cr.between(lo, hi)
        return (blue, red, lo), None

    def band(self, i: int, sink: Sink) -> None:
        """Output band i: every plane's rows, the chroma upsampled, the colour converted."""
        header, plan = self.header, self.plan
        y0, y1 = self.bands[i]
        fused = isinstance(self.seams, EdgeSeams) and self.seams.fused
        # the filters' one-pass kernels round Y' themselves (`EdgeSeams.band`,
        # `RestoreSeams.fused_band`), and write Pillow's X byte as they convert
        pads = fused or (isinstance(self.seams, RestoreSeams) and self.seams.fused)
        fused_luma = (self.full.get(0) if pads and 0 in self.full and self.full[0].patch
                      else None)
        # Y' alone, converted (or filtered) as it is stored: the band is asked for once Y''s
        # product is made (its left factor then spent), and may take the left factor's memory,
        # on the direct path and on the fused filter's (where `EdgeSeams.band` asks for it)
        late = len(self.full) == 1 and ((plan.direct and self.seams is None)
                                        or (fused_luma is not None and plan.fused
                                            and bool(self.chroma)))
        out = None if late else sink.band(y0, y1)
        rows_here = (0, y1 - y0)
        if plan.direct:  # the chroma rows first: one product at a time in this thread
            cb, cr = self.chroma[1], self.chroma[2]
            lo, hi = cb.needs[i]
            blue, red = cb.between(lo, hi), cr.between(lo, hi)
        for c, rows in self.full.items():
            if (plan.direct or fused_luma is not None) and c == 0:
                continue
            assert out is not None  # asked for late only when Y' is the only full plane
            if header.dtype == np.uint8:
                rows.store_bytes(out, c, CHROMA_OFFSET if plan.ycc and c in (1, 2) else 0.0,
                                 rows_here, i)
            else:
                store_scaled(rows, out, c, header.scale,
                             CHROMA_OFFSET_16 if plan.ycc and c in (1, 2) else 0, rows_here, i)
        halves: tuple[np.ndarray, np.ndarray, int] | None = None  # the fused filter's chroma
        second: tuple[np.ndarray, np.ndarray] | None = None  # (`chroma_pieces`)
        if plan.direct:  # Y' converted with the doubled chroma as it is stored
            assert plan.compiled is not None and plan.colour is not None
            luma = self.full[0]
            matrix = luma.matrix(i)
            if out is None:
                out = sink.band(y0, y1, self.buffers)
            plan.compiled.store_rgb(matrix, out, y0, y1, blue, red, plan.colour, luma.patch,
                                    luma.per_row, top=y0, first=lo, height=header.height,
                                    pad=255 if out.shape[2] > header.channels else -1)
        elif out is None and not late:
            raise AssertionError("a band asked for late only on the direct and fused paths")
        elif (self.seams is not None or not self.convert) and plan.fused and self.chroma:
            # Y'CbCr kept (the filter's, or the encoder's samples): Cb and Cr doubled by the
            # kernels, as render_image doubles its whole halves; with the filter, as it filters
            assert plan.compiled is not None
            lo, hi = self.chroma[1].needs[i]
            if self.pieces:
                halves, second = self.chroma_pieces(lo, hi)
            else:
                halves = (self.chroma[1].between(lo, hi), self.chroma[2].between(lo, hi), lo)
            if self.seams is None:
                assert out is not None
                plan.compiled.double_chroma(out, y0, y1, *halves[:2], top=y0, first=lo,
                                            height=header.height)
            if not pads and out is not None and out.shape[2] > header.channels:  # else the kernel
                out[:, :, header.channels:] = 255
        else:
            assert out is not None  # (late: the branch above)
            for c, resampler in self.resamplers.items():
                resampled_chroma(resampler, out, c, header, y0, y1, plan.compiled)
            # Pillow's X byte: written by the compiled conversion as it stores each pixel, by
            # the fused filter, or here
            pad = out.shape[2] > header.channels and not pads
            if plan.ycc and self.convert and self.seams is None:
                written = convert_rows(out, 0, y1 - y0, plan, {}, 255 if pad else -1)
                pad = pad and not written
            if pad:
                out[:, :, header.channels:] = 255
        if second is not None:  # (`pieces`: EdgeSeams)
            assert isinstance(self.seams, EdgeSeams)
            self.seams.band(i, out, sink, halves, fused_luma, self.buffers, second)
        elif self.seams is not None:  # filtered (and restored) and converted, put in pieces
            self.seams.band(i, out, sink, halves, fused_luma, self.buffers)
        for kept in self.chroma.values():
            kept.release(i)
        for rows in self.full.values():
            rows.release(i)
        if self.seams is None:
            assert out is not None
            sink.put(y0, y1, out)

