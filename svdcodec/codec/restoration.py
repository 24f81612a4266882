"""The restoration filter of format version 6 (spec §5.6): an ALF-like Wiener filter on a
channel's 8-bit samples after the deblocking filter, in integers, so that every decoder gives
the same bits.

With s~ the channel extended by replicating its edge samples (s~[y, x] = s[clamp(y), clamp(x)]):
the activity of sample p is a(p) = the sum over the 3x3 samples q around p of
|2 s~[q] - s~[q - (0, 1)] - s~[q + (0, 1)]| + |2 s~[q] - s~[q - (1, 0)] - s~[q + (1, 0)]|
(ALF's: the local sum of |horizontal| + |vertical| Laplacian), its class k the count of the
plane's bounds <= a(p), and the filtered sample

    y = clamp(s[p] + ((sum_j c_kj (s~[p + o_j] + s~[p - o_j] - 2 s[p]) + 64) >> 7), 0, 255)

over the 12 offsets o_j of RESTORATION_OFFSETS (one of each point-symmetric pair of the 7x7
diamond), >> the floor. Classes and filter read the unfiltered samples: every output sample
depends on the input rows within 3 of its own, so a band of rows needs 3 rows of context on
either side (clamped to the channel), never the other bands' output.

`restore_rows` is the numpy path (whole rows at a time); the compiled kernel `restore` gives the
same bytes (tests/test_restoration.py). `restore_channel` runs either over bands of rows in
threads; `decoder.restoration` applies it to the planes a file filters and
`encoder.restoration` fits the coefficients.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..format import RESTORATION_OFFSETS, Restoration
from ..runtime.threads import run_bands

#: Rows of context a band of filtered rows needs on each side (the diamond's reach).
REACH = 3
#: Samples per band of work: enough that handing a band to a thread costs little beside it.
BAND_SAMPLES = 1 << 17


def context_rows(y0: int, y1: int, height: int) -> tuple[int, int]:
    """[lo, hi): the rows of the channel that filtering rows [y0, y1) reads."""
    return max(y0 - REACH, 0), min(y1 + REACH, height)


def padded_rows(src: np.ndarray, y0: int, y1: int, top: int, height: int) -> np.ndarray:
    """s~ over rows y0 - 3 .. y1 + 2 and columns -3 .. w + 2, as int32, from `src` (the
    channel's rows from row `top` on: at least `context_rows`)."""
    rows = np.clip(np.arange(y0 - REACH, y1 + REACH), 0, height - 1) - top
    if rows.min() < 0 or rows.max() >= src.shape[0]:
        raise ValueError("restore_rows: src does not hold the rows the band reads")
    return np.pad(src[rows].astype(np.int32), ((0, 0), (REACH, REACH)), mode="edge")


def activity(x: np.ndarray) -> np.ndarray:
    """a(p) for the samples 3 inside the edges of x (s~ padded by 3 on every side)."""
    c = x[1:-1, 1:-1]
    lap = (np.abs(2 * c - x[1:-1, :-2] - x[1:-1, 2:])
           + np.abs(2 * c - x[:-2, 1:-1] - x[2:, 1:-1]))  # at rows/columns 1 .. n + 4
    h, w = x.shape[0] - 2 * REACH, x.shape[1] - 2 * REACH
    total = np.zeros((h, w), dtype=np.int32)
    for dy in range(3):
        for dx in range(3):
            total += lap[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return total


def classes(act: np.ndarray, bounds: tuple[int, ...]) -> np.ndarray:
    """A class per sample: how many of the (non-decreasing) bounds are <= its activity."""
    return np.searchsorted(np.asarray(bounds, dtype=np.int64), act, side="right")


def symmetric_differences(x: np.ndarray) -> list[np.ndarray]:
    """s~[p + o] + s~[p - o] - 2 s[p] for each offset, over the samples 3 inside x's edges."""
    h, w = x.shape[0] - 2 * REACH, x.shape[1] - 2 * REACH
    centre = x[REACH:REACH + h, REACH:REACH + w]
    out = []
    for dy, dx in RESTORATION_OFFSETS:
        plus = x[REACH + dy:REACH + dy + h, REACH + dx:REACH + dx + w]
        minus = x[REACH - dy:REACH - dy + h, REACH - dx:REACH - dx + w]
        out.append(plus + minus - 2 * centre)
    return out


def restore_rows(src: np.ndarray, y0: int, y1: int, top: int, height: int,
                 restoration: Restoration) -> np.ndarray:
    """Rows [y0, y1) of the filtered channel (uint8, (y1 - y0, w)), from `src`: the unfiltered
    channel's rows from row `top` on, holding at least `context_rows(y0, y1, height)`."""
    x = padded_rows(src, y0, y1, top, height)
    table = restoration.table()
    cls = classes(activity(x), restoration.bounds) if restoration.classes > 1 else None
    total = np.zeros((y1 - y0, src.shape[1]), dtype=np.int32)
    for j, diff in enumerate(symmetric_differences(x)):
        weight = table[:, j].astype(np.int32)
        total += diff * (weight[cls] if cls is not None else weight[0])
    centre = x[REACH:REACH + y1 - y0, REACH:REACH + src.shape[1]]
    return np.clip(centre + ((total + 64) >> 7), 0, 255).astype(np.uint8)


def bands(height: int, width: int) -> list[tuple[int, int]]:
    """[y0, y1) bands of about BAND_SAMPLES samples."""
    per = max(8, BAND_SAMPLES // max(width, 1))
    return [(y, min(y + per, height)) for y in range(0, height, per)]


def restore_band(src: np.ndarray, out: np.ndarray, y0: int, y1: int, top: int, height: int,
                 restoration: Restoration, compiled: ModuleType | None) -> None:
    """Rows [y0, y1) of the filtered channel into `out` ((y1 - y0, w) uint8, any strides),
    from `src` as `restore_rows` takes it (any strides too): every row of src is read before
    out is written, so out may be rows of src."""
    if compiled is not None:
        compiled.restore(src, out, y0, y1, top, height, np.asarray(restoration.bounds, np.int64),
                         restoration.table())
    else:
        out[:] = restore_rows(src, y0, y1, top, height, restoration)


def restore_channel(channel: np.ndarray, restoration: Restoration,
                    compiled: ModuleType | None, threads: int | None = None) -> None:
    """The filter on a whole (h, w) uint8 channel (any strides), in place, band by band in
    threads. Each band reads its own rows and 3 on either side unfiltered: the rows around
    every cut are copied first, and each band copies its own rows before it writes them, so
    that no copy of the whole channel is held."""
    h, w = channel.shape
    if h == 0 or w == 0:
        return
    spans = bands(h, w)
    # the unfiltered rows within REACH of every cut, before any band writes them: copies
    # (np.ascontiguousarray would return a contiguous channel's own rows, which the band
    # above then overwrites before the band below reads them)
    edges = {y: channel[y:min(y + REACH, h)].copy()
             for y0, y1 in spans for y in (max(y0 - REACH, 0), y1) if y < h}

    def run(i: int) -> None:
        y0, y1 = spans[i]
        lo, hi = context_rows(y0, y1, h)
        parts = [edges[lo]] if lo < y0 else []
        parts.append(np.ascontiguousarray(channel[y0:y1]))
        if hi > y1:
            parts.append(edges[y1])
        src = np.concatenate(parts) if len(parts) > 1 else parts[0]
        restore_band(src, channel[y0:y1], y0, y1, lo, h, restoration, compiled)
    run_bands(run, len(spans), threads)
