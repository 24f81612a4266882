"""The deblocking filter of format version 4 (spec §5.4): a weak H.264-style normal edge filter
on a plane's 8-bit samples across its patch edges, in integers, so that every decoder gives
the same bits.

Across each edge p1 p0 | q0 q1 (between samples e - 1 and e, e a multiple of the edge period)
where |p0 - q0| < alpha, |p1 - p0| < beta and |q1 - q0| < beta, p0 and q0 move by
delta = clamp((4 (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc), clamped to 0..255. One pass across
the vertical edges (along rows), then one across the horizontal edges (along columns) of its
result; within a pass every edge reads the samples as they were before the pass (which matters
only for an edge period of 2, where one edge's p1 is the previous edge's q0).

`filter_lines` is the numpy path (whole edges at a time, no loop over samples); the compiled
kernel `deblock` gives the same bytes (tests/test_deblock.py). `deblock_channels` runs either
over bands of rows, then slabs of columns, in threads; `decoder.deblock` applies it to the
planes a file filters.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..runtime.threads import run_bands

#: Samples per piece of work (a band of rows, then a slab of columns): enough that handing a
#: piece to a thread costs little beside it.
PIECE_SAMPLES = 1 << 18


def edge_period(patch: int, halved: bool) -> int:
    """Samples between a plane's patch edges in its output channel: the patch side, twice that
    for a halved (subsampled chroma) plane, upsampled to the image size before filtering."""
    return patch * (2 if halved else 1)


def filter_lines(samples: np.ndarray, period: int, alpha: int, beta: int, tc: int,
                 axis: int) -> None:
    """One pass in place on a 2-D uint8 array (any strides): the edges between samples
    e - 1 and e along `axis`, for e = period, 2 period, ... with e + 1 inside."""
    v = np.moveaxis(samples, axis, 0)
    e = np.arange(period, v.shape[0] - 1, period)
    if e.size == 0:
        return
    p1, p0, q0, q1 = (v[e + k].astype(np.int16) for k in (-2, -1, 0, 1))  # copies: read first
    active = (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
    delta = np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc)
    delta *= active
    v[e - 1] = np.clip(p0 + delta, 0, 255)
    v[e] = np.clip(q0 - delta, 0, 255)


def pieces(extent: int, length: int) -> list[tuple[int, int]]:
    """[lo, hi) spans of `extent` lines of `length` samples, about PIECE_SAMPLES each."""
    per = max(16, PIECE_SAMPLES // max(length, 1))
    return [(a, min(a + per, extent)) for a in range(0, extent, per)]


def deblock_channels(image: np.ndarray, filters: list[tuple[int, int, tuple[int, int, int]]],
                     compiled: ModuleType | None, threads: int | None = None) -> None:
    """Both passes in place on channels of an (h, w, c) uint8 image, each given as (channel,
    edge period, (alpha, beta, tc)): rows in bands, then columns in slabs (each piece's lines
    are independent of the others'); the compiled kernel takes every channel of a piece while
    its rows are in cache."""
    if not filters:
        return
    h, w = image.shape[:2]
    table = np.array([(c, period, *params) for c, period, params in filters], np.int64)
    for axis, extent, length in ((1, h, w), (0, w, h)):
        spans = pieces(extent, length * len(filters))

        def run(i: int, axis: int = axis, spans: list[tuple[int, int]] = spans) -> None:
            lo, hi = spans[i]
            if compiled is not None:
                compiled.deblock(image, table, axis, lo, hi)
                return
            for c, period, (alpha, beta, tc) in filters:
                part = image[lo:hi, :, c] if axis == 1 else image[:, lo:hi, c]
                filter_lines(part, period, alpha, beta, tc, axis)
        run_bands(run, len(spans), threads)
