#!/usr/bin/env python3
"""Encoding a collection of photos of many sizes, as most collections are (issue #13): every
Kodak photo cropped to a size of its own, each encoded in one warm process, the first encode
of each size against a second encode of the same array (what a batch of one size pays), beside
Pillow's JPEG q75 of the same array. An encoder's tables made once per image size (the chroma
halving's: `codec.resample.halving_tables`) show in the first column alone; speed.py's Kodak
row, all photos of two sizes, never pays them.

    python benchmarks/many_sizes.py --corpus KODAK [--rounds 3]

Each round crops the photos to new sizes (no axis length twice in a run: at most 10 rounds of
the 24 photos); printed are the medians
over the photos and rounds of each encode's wall time, of the first less the second encode of
one array, and the ratios to JPEG, and how long the halving tables of one size take to make
(docs/performance.md, "Odd sizes and images of many sizes").
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import _common
import numpy as np
from PIL import Image

import svdcodec
from svdcodec.codec import resample


def sizes(height: int, width: int, round_: int, index: int, photos: int) -> tuple[int, int]:
    """Rows and columns both cut by k = 1, 2, ..., one k per (round, photo), so every first
    encode makes the tables of both axes: two lengths cut from the same side (768 or 512)
    differ as their k do, and one cut from each side meet only where the k differ by
    768 - 512 = 256, which `main` keeps the run below."""
    k = round_ * photos + index + 1
    return height - k, width - k


def jpeg(array: np.ndarray) -> float:
    return _common.seconds(lambda: Image.fromarray(array).save(io.BytesIO(), "JPEG", quality=75))


def encode(array: np.ndarray) -> float:
    return _common.seconds(lambda: svdcodec.encode(array))


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--corpus", type=Path, help=_common.KODAK_HELP)
    cli.add_argument("--rounds", type=int, default=3)
    args = cli.parse_args()
    photos = [_common.load_image(p) for p in _common.kodak_paths(args.corpus)]
    sides = {side for p in photos for side in p.shape[:2]}
    gap = max(sides) - min(sides) or max(sides)  # k apart at which two cut sides meet
    if args.rounds * len(photos) >= gap:
        raise SystemExit(f"at most {(gap - 1) // len(photos)} rounds of these photos: more "
                         "would cut two axes to the same length")
    print(f"# svdcodec {svdcodec.__file__} ({_common.kernel_path()} kernels), "
          f"{len(photos)} photos x {args.rounds} rounds")
    for photo in photos[:2]:  # the encoder's modules, per-process tables, thread pool
        encode(photo)
        jpeg(photo)
    first, second, jpegs, tables = [], [], [], []
    for r in range(args.rounds):
        for i, photo in enumerate(photos):
            h, w = sizes(*photo.shape[:2], r, i, len(photos))
            array = np.ascontiguousarray(photo[:h, :w])
            jpegs.append(jpeg(array))
            first.append(encode(array))
            second.append(encode(array))
        start = time.perf_counter()
        for i, photo in enumerate(photos):  # the same sizes' tables again, alone
            h, w = sizes(*photo.shape[:2], r, i, len(photos))
            resample.halving_tables.cache_clear()
            resample.halving_tables32.cache_clear()
            resample.halving_tables32((h + 1) // 2, h)
            resample.halving_tables32((w + 1) // 2, w)
        tables.append((time.perf_counter() - start) / len(photos))
    jpeg_ms = statistics.median(jpegs) * 1e3
    rows = [["first encode of a size", statistics.median(first) * 1e3,
             statistics.median(first) * 1e3 / jpeg_ms],
            ["second encode of the array", statistics.median(second) * 1e3,
             statistics.median(second) * 1e3 / jpeg_ms],
            ["first less second (median of each pair)",
             statistics.median(a - b for a, b in zip(first, second)) * 1e3, None],
            ["the halving tables of one size", statistics.median(tables) * 1e3, None],
            ["Pillow JPEG q75", jpeg_ms, 1.0]]
    print(_common.table(["what", "ms", "x JPEG"],
                        [[what, f"{ms:.2f}", "" if x is None else f"{x:.2f}"]
                         for what, ms, x in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
