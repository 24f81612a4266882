"""Version 4's deblocking filter (spec §5.4) on a decoded image: the planes whose PLAN sets it,
each on its channel of the 8-bit samples, before the colour conversion."""

from __future__ import annotations

import itertools
import math
from types import ModuleType

import numpy as np

from ..codec.deblock import PIECE_SAMPLES, deblock_channels, edge_period
from ..format import Header, Plane
from ..runtime.threads import run_bands

#: The shortest edge period `deblock_ycc` takes: from 4 on, the four rows of one horizontal
#: edge and of the next share none, so a band can be cut between them.
FUSED_MIN_PERIOD = 4

#: Rows of a `deblock_ycc` band, at least (each band doubles two chroma rows more than its
#: own), unless that is more than FUSED_MAX_BYTES of output: a band's scratch (the doubled
#: chroma rows as float32) grows with it, and very wide images take bands of one period.
FUSED_MIN_ROWS = 64
FUSED_MAX_BYTES = 1 << 22


def plane_period(plane: Plane, header: Header) -> int:
    """A plane's edge period in its output channel (twice the patch for subsampled chroma)."""
    return edge_period(plane.patch, (plane.height, plane.width) != (header.height, header.width))


def edge_filters(header: Header, planes: list[Plane]
                 ) -> list[tuple[int, int, tuple[int, int, int]]]:
    """(channel, edge period, (alpha, beta, tc)) of every filtered plane."""
    return [(p.index, plane_period(p, header), p.deblock) for p in planes if p.filtered]


def deblock_image(image: np.ndarray, header: Header, planes: list[Plane],
                  compiled: ModuleType | None, threads: int | None = None) -> None:
    """Every filtered plane's channel of the (h, w, c) 8-bit samples, in place."""
    deblock_channels(image, edge_filters(header, planes), compiled, threads)


def fusable(header: Header, planes: list[Plane]) -> bool:
    """Whether `deblock_ycc` takes these planes' filters (every edge period >= 4)."""
    return fusable_filters(edge_filters(header, planes))


def fusable_filters(filters: list[tuple[int, int, tuple[int, int, int]]]) -> bool:
    """`fusable` of the planes' `edge_filters`."""
    return all(period >= FUSED_MIN_PERIOD for _, period, _ in filters)


def fused_bands(height: int, row_bytes: int, periods: list[int]) -> list[tuple[int, int]]:
    """[y0, y1) bands of about PIECE_SAMPLES bytes, cut at rows 2 past a multiple of every
    period: no horizontal edge (rows e - 2 .. e + 1, e a multiple of its period >= 4) crosses
    a cut, so the bands filter and convert independently."""
    unit = math.lcm(*periods) if periods else 1
    row_bytes = max(row_bytes, 1)
    rows = max(PIECE_SAMPLES // row_bytes, min(FUSED_MIN_ROWS, FUSED_MAX_BYTES // row_bytes), 1)
    span = -(-rows // unit) * unit
    cuts = [0, *range(span + 2, height, span), height]
    return [(a, b) for a, b in itertools.pairwise(cuts) if a < b]


def deblock_convert(image: np.ndarray, header: Header, planes: list[Plane],
                    compiled: ModuleType, colour: np.ndarray, halves: dict[int, np.ndarray],
                    threads: int | None = None) -> None:
    """The 8-bit Y'CbCr output filtered and converted to RGB in one pass per band (the
    compiled `deblock_ycc`), the kept half-size chroma (`halves`, if any) doubled on the way:
    the bits of `double_chroma`, `deblock_image` and the colour conversion one after the
    other, the output read and written once instead of four times."""
    filters = edge_filters(header, planes)
    table = np.array([(c, period, *params) for c, period, params in filters],
                     np.int64).reshape(-1, 5)
    bands = fused_bands(image.shape[0], image.shape[1] * image.shape[2],
                        [period for _, period, _ in filters])
    cb, cr = halves.get(1), halves.get(2)

    def run(i: int) -> None:
        y0, y1 = bands[i]
        compiled.deblock_ycc(image, y0, y1, table, colour, cb, cr)
    run_bands(run, len(bands), threads)
