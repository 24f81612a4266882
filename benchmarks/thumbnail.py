#!/usr/bin/env python3
"""Thumbnail time: Pillow's `thumbnail((256, 256))` of a large .svdi beside the same of a JPEG,
and `svdcodec.decode(data, reduce=4 or 8)`, in one run. thumbnail() asks both readers for a
draft of at least twice the size (its reducing_gap): on 6000 x 4000 both decode at 1/4 (1500 x
1000, JPEG through libjpeg's scaled decoding, svdi through `reduce=4`), then Pillow resizes.

    python benchmarks/thumbnail.py --corpus DIR [--megapixels 24] [--rounds 5]

The photo is a mosaic of the corpus's photos cut to about --megapixels (6000 x 4000 for 24).
Times are medians of --rounds, interleaved so that machine noise hits every codec alike; the
ratio svdi / JPEG is what issue #15's goal (at most JPEG's time) is checked on.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec


def mosaic(paths: list[Path], megapixels: float) -> np.ndarray:
    """A 3:2 mosaic of the photos (cropped to 512 x 512 tiles, repeated) of about that size."""
    tiles = [np.asarray(Image.open(p).convert("RGB"))[:512, :512] for p in paths]
    width = int((megapixels * 1e6 * 1.5) ** 0.5)
    height = int(megapixels * 1e6 / width)
    across, down = -(-width // 512), -(-height // 512)
    rows = [np.hstack([tiles[(r * across + c) % len(tiles)] for c in range(across)])
            for r in range(down)]
    return np.ascontiguousarray(np.vstack(rows)[:height, :width])


def median_time(task: Callable[[], object], rounds: list[float]) -> None:
    start = time.perf_counter()
    task()
    rounds.append(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path,
                        help="folder of PNG photos (the Kodak set: see benchmarks/README.md)")
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    paths = sorted(args.corpus.glob("*.png"))
    if not paths:
        parser.error(f"no PNG files in {args.corpus}")
    pixels = mosaic(paths, args.megapixels)
    svdi = svdcodec.encode(pixels)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=75)
    jpeg = buffer.getvalue()

    def thumbnail(data: bytes) -> Callable[[], object]:
        def run() -> object:
            with Image.open(io.BytesIO(data)) as im:
                im.thumbnail((256, 256))
                return im.size
        return run
    tasks = {"JPEG thumbnail": thumbnail(jpeg), "svdi thumbnail": thumbnail(svdi),
             "svdi decode(reduce=4)": lambda: svdcodec.decode(svdi, reduce=4),
             "svdi decode(reduce=8)": lambda: svdcodec.decode(svdi, reduce=8),
             "svdi full decode": lambda: svdcodec.decode(svdi)}
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for task in tasks.values():
        task()  # warm: imports, thread pools
    for _ in range(args.rounds):
        for name, task in tasks.items():
            median_time(task, times[name])
    h, w = pixels.shape[:2]
    print(f"{w}x{h} ({w * h / 1e6:.1f} MP) photo mosaic, median of {args.rounds} rounds")
    jpeg_time = statistics.median(times["JPEG thumbnail"])
    for name, rounds in times.items():
        t = statistics.median(rounds)
        print(f"{name:<22} {t * 1000:8.1f} ms  {t / jpeg_time:5.2f} x JPEG")
    ratio = statistics.median(times["svdi thumbnail"]) / jpeg_time
    print(f"goal (issue #15): svdi thumbnail <= JPEG's time: {'PASS' if ratio <= 1 else 'miss'}"
          f" ({ratio:.2f} x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
