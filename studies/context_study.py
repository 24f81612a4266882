#!/usr/bin/env python3
"""Would context classes pay for U's coding, measured in actual zstd bytes (issue #16)?

    python studies/context_study.py --corpus DIR [--images 8] [--qualities 30,50,75,90]

Encodes each image with the reference encoder, reads its U blocks back and codes them again in
candidate constructions, all kept zstd at the encoder's level, all decodable without a
per-sample sequential dependency in numpy; prints the U bytes of each against today's UBLK
chunks (descriptors and frame headers counted):

* rows classed by the patch-mean grid's local activity (|left - right| + |up - down| of the
  decoded component 0, known before any sparse block), C = 2, 3, 4 classes at thresholds
  chosen per block (the activity's quantiles, stored as u32 each), each class's run/level
  symbols coded either in its own zstd block of one frame ("flush": one frame, a Huffman
  table per class) or as its own frame ("frames");
* rows classed by the number of non-zero values of the same patch and its 4 neighbours in the
  previous component group (group 1 from the patch-mean activity), same two codings;
* the patch-mean column with the MED (LOCO-I) predictor against the best of today's four.

Also: the patch-mean column with MED and two causal activity classes, zigzag-mapped and split
into low and high bytes ("med+cls"), and zstd levels 3, 9 and 19 on today's sparse blocks.

Conclusion (Kodak 1-8 x qualities 30, 50, 75, 90; 2,771,304 B of today's U blocks): context
classes through zstd buy little. Rows classed by the patch-mean's activity (2 classes, each a
zstd block of one frame): -1.95 % of U in all, but -0.15 / -0.49 / -1.09 / -2.96 % at quality
30 / 50 / 75 / 90; by the previous group's neighbour counts -2.13 % (-0.50 / -0.62 / -1.16 /
-3.19 %); per-coefficient classes from the four checkerboard neighbours -1.5 ... -2.1 %
(at most -0.3 % at quality 50 and below); separate frames instead of zstd blocks change less
than 0.3 point, 3 or 4 classes do no better than 2. zstd's Huffman stage (a bit per symbol at
least, a table per class) cannot use what the ideal adaptive model of issue #16 (-8.3 %) prices.
The patch-mean column with MED instead of the best of predictors 0-3: -6.4 % of those blocks,
-0.97 % of U, at every quality (-0.71 ... -1.15 %); with classes and split bytes -1.49 %. Not a
format change at all: zstd level 19 instead of 1 on today's sparse blocks, -2.85 % (built as
encode(effort=2), level 15). MED was built as predictor 4 of a format version 4 (branch v4ctx,
2026-12-02: BD-rate vs JPEG on Kodak 28-38 dB from -17.5 % to -18.0 %) and not merged: its
decode is sequential along anti-diagonals, and on the numpy path a hostile file of one tall
MED block took over 300 s (benchmarks/hostile.py's bound is 10 s); half a percent does not pay
for a bound the format cannot keep. The row classes would need a second row order in every
sparse decode path (held, streamed, compiled, JS) for about -0.5 % in the 28-38 dB range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import zstandard
from PIL import Image

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec.coding import from_symbols, narrow, to_symbols, unpredict
from svdcodec.encoder.tuning import ZSTD_LEVEL

QUALITIES = (30, 50, 75, 90)
#: Bytes a class adds to a descriptor: its threshold and its symbol count (u32 each).
CLASS_FIELD = 8


def zbytes(raw: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(raw))


def flushed_bytes(parts: list[bytes]) -> int:
    """One zstd frame whose parts each start a new zstd block (its own Huffman table)."""
    c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    obj = c.compressobj(size=sum(len(p) for p in parts))
    out = b""
    for p in parts:
        out += obj.compress(p) + obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    out += obj.flush()
    return len(out)


def med(g: np.ndarray) -> np.ndarray:
    """MED (LOCO-I) residuals of one grid (outside values 0)."""
    p = np.pad(g.astype(np.int64), ((1, 0), (1, 0)))
    a, b, c = p[1:, :-1], p[:-1, 1:], p[:-1, :-1]
    pred = np.where(c >= np.maximum(a, b), np.minimum(a, b),
                    np.where(c <= np.minimum(a, b), np.maximum(a, b), a + b - c))
    return g - pred


def med_classed_bytes(dc: np.ndarray, classes: int = 2) -> int:
    """MED residuals split into classes by the causal gradients |a - c| + |c - b| + |b - e|
    (e up-right; decodable by anti-diagonals), zigzag-mapped and split into low and high
    bytes, each class its own zstd block of one frame; thresholds as u32 each."""
    g = dc.astype(np.int64)
    r = med(g).reshape(-1)
    p = np.pad(g, ((1, 0), (1, 1)))
    a, b, c, e = p[1:, :-2], p[:-1, 1:-1], p[:-1, :-2], p[:-1, 2:]
    act = (np.abs(a - c) + np.abs(c - b) + np.abs(b - e)).reshape(-1)
    cuts = np.unique(np.quantile(act, np.arange(1, classes) / classes, method="lower"))
    label = np.searchsorted(cuts, act, side="right")
    parts = []
    for k in range(cuts.size + 1):
        z = r[label == k]
        z = np.where(z >= 0, 2 * z, -2 * z - 1)
        if z.size and z.max() < 256:
            parts.append(z.astype(np.uint8).tobytes())
        else:
            z = z.astype("<u2")
            parts += [(z & 255).astype(np.uint8).tobytes(), (z >> 8).astype(np.uint8).tobytes()]
    return 12 + 9 + 6 + 4 * cuts.size + flushed_bytes(parts)


def activity(dc: np.ndarray) -> np.ndarray:
    p = np.pad(dc.astype(np.int64), 1, mode="edge")
    return (np.abs(p[1:-1, 2:] - p[1:-1, :-2]) + np.abs(p[2:, 1:-1] - p[:-2, 1:-1])).reshape(-1)


def neighbour_counts(counts: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    c = np.pad(counts.reshape(grid), 1)
    return (c[1:-1, 1:-1] * 2 + c[1:-1, :-2] + c[1:-1, 2:] + c[:-2, 1:-1] + c[2:, 1:-1]
            ).reshape(-1)


def classed_bytes(matrix: np.ndarray, measure: np.ndarray, classes: int) -> tuple[int, int]:
    """(flush, frames) bytes of a block whose rows are split at the measure's quantiles."""
    cuts = np.unique(np.quantile(measure, np.arange(1, classes) / classes, method="lower"))
    label = np.searchsorted(cuts, measure, side="right")
    syms, runs, vals = [], [], []
    for c in range(cuts.size + 1):
        s, r, v = to_symbols(matrix[label == c])
        syms.append(s.tobytes())
        runs.append(r)
        vals.append(v)
    esc = np.concatenate(runs).astype("<u2").tobytes() + narrow(np.concatenate(vals)).astype(
        "<i2" if max((abs(int(x.max(initial=0))) for x in vals), default=0) < 32768
        else "<i4").tobytes()
    head = 12 + 9 + 13 + CLASS_FIELD * cuts.size
    flush = head + flushed_bytes([*syms, esc])
    frames = head + sum(zbytes(s) for s in syms) + (zbytes(esc) if esc else 0)
    return flush, frames


def run_level(values: np.ndarray) -> tuple[bytes, bytes]:
    """1-D run/level symbols of a sequence (rows of 4096 so that runs fit the escapes)."""
    n = values.size
    pad = (-n) % 4096
    m = np.concatenate([values, np.zeros(pad, values.dtype)]).reshape(-1, 4096)
    s, r, v = to_symbols(m)
    return s.tobytes(), r.astype("<u2").tobytes() + v.astype("<i2").tobytes()


def checker_bytes(matrix: np.ndarray, grid: tuple[int, int], row_measure: np.ndarray,
                  levels: int) -> tuple[int, int]:
    """Patches of one parity first, classed per row by `row_measure` (2 classes); then the
    other parity, each coefficient classed by the magnitudes of the same component in its four
    (already decoded) neighbours, capped at `levels` - 1. Each class's values, component-major,
    as 1-D run/level symbols. (flush, frames) bytes."""
    gh, gw = grid
    yy, xx = np.divmod(np.arange(gh * gw), gw)
    even = (yy + xx) % 2 == 0
    mag = np.pad(np.abs(matrix).reshape(gh, gw, -1), ((1, 1), (1, 1), (0, 0)))
    mag[1:-1, 1:-1][~even.reshape(gh, gw)] = 0
    near = (mag[:-2, 1:-1] + mag[2:, 1:-1] + mag[1:-1, :-2] + mag[1:-1, 2:]).reshape(gh * gw, -1)
    ctx = np.minimum(near[~even], levels - 1)
    cut = np.quantile(row_measure[even], 0.5, method="lower")
    streams = [matrix[even & (row_measure <= cut)].T.reshape(-1),
               matrix[even & (row_measure > cut)].T.reshape(-1)]
    odd = matrix[~even]
    streams += [odd.T[ctx.T == c] for c in range(levels)]
    syms, escs = zip(*(run_level(s) for s in streams if s.size))
    esc = b"".join(escs)
    head = 12 + 9 + 13 + CLASS_FIELD * len(syms)
    return (head + flushed_bytes([*syms, esc]),
            head + sum(zbytes(s) for s in syms) + (zbytes(esc) if esc else 0))


def study(path: Path, quality: int, totals: dict[str, int]) -> None:
    image = np.asarray(Image.open(path).convert("RGB"))
    data = svdcodec.encode(image, quality)
    c = fmt.unpack(data)
    for plane in c.planes:
        ublocks = [b for b in c.blocks if b.plane == plane.index and b.factor == "U"]
        if not ublocks or plane.layout != fmt.LAYOUT_PATCH:
            for b in ublocks:
                for k in totals:
                    totals[k] += b.stored
            continue
        grid = plane.grid
        dc_block, rest = ublocks[0], ublocks[1:]
        (res,) = dc_block.data()
        dc = unpredict(res.reshape(1, *grid), dc_block.predictor)[0]
        med_res = narrow(med(dc))
        med_bytes = 12 + 9 + 6 + zbytes(med_res.tobytes())
        totals["base"] += dc_block.stored
        totals["med"] += min(med_bytes, dc_block.stored)
        totals["med+cls"] += min(med_classed_bytes(dc), dc_block.stored)
        for k in totals:
            if k.startswith(("dc", "nb", "ck", "zstd")):
                totals[k] += dc_block.stored
        act = activity(dc)
        previous = None
        for b in rest:
            m = from_symbols(*b.data(), (grid[0] * grid[1], b.count))
            totals["base"] += b.stored
            totals["med"] += b.stored
            totals["med+cls"] += b.stored
            by_neighbours = act if previous is None else neighbour_counts(previous, grid)
            for C in (2, 3, 4):
                f, fr = classed_bytes(m, act, C)
                totals[f"dc{C} flush"] += min(f, b.stored)
                totals[f"dc{C} frames"] += min(fr, b.stored)
                f, fr = classed_bytes(m, by_neighbours, C)
                totals[f"nb{C} flush"] += min(f, b.stored)
                totals[f"nb{C} frames"] += min(fr, b.stored)
            for L in (2, 3, 4):
                f, fr = checker_bytes(m, grid, by_neighbours, L)
                totals[f"ck{L} flush"] += min(f, b.stored)
                totals[f"ck{L} frames"] += min(fr, b.stored)
            raw = b"".join(a.tobytes() for a in b.data())
            for lv in (3, 9, 19):
                totals[f"zstd{lv}"] += min(b.stored, b.stored - zbytes(raw) + len(
                    zstandard.ZstdCompressor(level=lv, write_content_size=True).compress(raw)))
            previous = np.count_nonzero(m, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    args = ap.parse_args()
    qualities = [int(q) for q in args.qualities.split(",")]
    keys = ["base", "med", "med+cls"] + [f"{s}{C} {k}" for s in ("dc", "nb") for C in (2, 3, 4)
                              for k in ("flush", "frames")] + [
        f"ck{L} {k}" for L in (2, 3, 4) for k in ("flush", "frames")] + ["zstd3", "zstd9", "zstd19"]
    files = sorted(args.corpus.glob("*.png"))[:args.images]
    print(f"{'quality':>8} " + " ".join(f"{k:>12}" for k in keys))
    grand = dict.fromkeys(keys, 0)
    for q in qualities:
        totals = dict.fromkeys(keys, 0)
        for f in files:
            study(f, q, totals)
        print(f"{q:>8} " + " ".join(f"{(totals[k] / totals['base'] - 1) * 100:+11.2f}%"
                                    for k in keys) + f"   (U {totals['base']} B)")
        for k in keys:
            grand[k] += totals[k]
    print(f"{'all':>8} " + " ".join(f"{(grand[k] / grand['base'] - 1) * 100:+11.2f}%"
                                    for k in keys) + f"   (U {grand['base']} B)")


if __name__ == "__main__":
    main()
