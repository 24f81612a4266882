#!/usr/bin/env python3
"""What encode(effort=2) buys and costs: file bytes and encode time against effort 1, on every
PNG of a directory and on a 256x256 crop of each (its centre), at several qualities.

    python benchmarks/effort.py --corpus DIR [--qualities 30,50,75,90]

Effort 2 chooses U's levels by rate and distortion and recompresses the blocks at zstd level
15: smaller files at a slightly lower PSNR (the table gives both; benchmarks/rd.py's codec
svdi-effort2 gives the BD-rate at equal PSNR). The time ratio is the median over images of
effort 2's encode time over effort 1's, the two run back to back per image.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from _common import sample_path
from PIL import Image

import svdcodec
from svdcodec.evaluation.metrics import psnr


def centre_crop(pixels: np.ndarray, side: int = 256) -> np.ndarray:
    y, x = (max(0, (n - side) // 2) for n in pixels.shape[:2])
    return pixels[y:y + side, x:x + side]


def compare(images: list[np.ndarray], quality: int) -> tuple[float, float, float, float]:
    """(mean bytes at effort 1, mean at effort 2, median time ratio, mean PSNR change dB)."""
    sizes, ratios, change = np.zeros(2), [], 0.0
    for pixels in images:
        t0 = time.perf_counter()
        fast = svdcodec.encode(pixels, quality=quality)
        t1 = time.perf_counter()
        small = svdcodec.encode(pixels, quality=quality, effort=2)
        t2 = time.perf_counter()
        sizes += (len(fast), len(small))
        ratios.append((t2 - t1) / (t1 - t0))
        change += (psnr(pixels, svdcodec.decode(small))
                   - psnr(pixels, svdcodec.decode(fast)))
    return (sizes[0] / len(images), sizes[1] / len(images), statistics.median(ratios),
            change / len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="directory of PNGs (default: the bundled sample)")
    parser.add_argument("--qualities", default="30,50,75,90")
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.png")) if args.corpus else [Path(sample_path())]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    svdcodec.encode(centre_crop(images[0], 64), effort=2)  # imports and thread pools first
    print(f"{len(images)} images; bytes are means per image")
    print("set        quality  effort 1   effort 2   change   PSNR change   encode time")
    for name, group in (("whole", images), ("crop 256²", [centre_crop(a) for a in images])):
        for q in map(int, args.qualities.split(",")):
            one, two, ratio, db = compare(group, q)
            print(f"{name:10} {q:7}  {one:8.0f}   {two:8.0f}  {100 * (two - one) / one:+6.2f} %"
                  f"   {db:+8.3f} dB   x{ratio:.2f}", flush=True)


if __name__ == "__main__":
    main()
