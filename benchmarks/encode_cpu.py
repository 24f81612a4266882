#!/usr/bin/env python3
"""Encode CPU time per image against Pillow's JPEG (quality 75), on one thread: the small-image
figures of docs/performance.md ("Small-image encode").

    SVDCODEC_THREADS=1 python benchmarks/encode_cpu.py --corpus KODAK [--rounds 5]

Two sets from the 24 Kodak photos: 48 crops of 256 x 256 (at (0, 0) and (256, 256) of each) and
the photos. Each round times svdcodec.encode (quality 75) of the whole set, then Pillow's JPEG of
the same set, in CPU time (time.process_time: less sensitive than wall time to other processes
on a shared machine); prints the medians over rounds of the time per image and of the ratio.
Run it alternately on two versions of the code to compare them.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec


def cpu_ms(operation: Callable[[np.ndarray], object], images: list[np.ndarray]) -> float:
    """CPU milliseconds per image of `operation` over `images`."""
    start = time.process_time()
    for image in images:
        operation(image)
    return (time.process_time() - start) / len(images) * 1e3


def jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=75)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.corpus.glob("*.png"))]
    crops = [np.ascontiguousarray(p[y:y + 256, x:x + 256]) for p in photos
             for y, x in ((0, 0), (256, 256))]
    for image in crops[:4]:  # warm: lazy imports, caches
        svdcodec.encode(image)
        jpeg(image)
    for name, images in (("256x256 crops", crops), ("Kodak photos", photos)):
        rounds = [(cpu_ms(svdcodec.encode, images), cpu_ms(jpeg, images))
                  for _ in range(args.rounds)]
        svdi, ref = np.median(rounds, axis=0)
        ratio = np.median([a / b for a, b in rounds])
        print(f"{name:>14} x{len(images)}: svdi {svdi:.2f} ms, JPEG {ref:.3f} ms per image "
              f"(CPU), svdi / JPEG {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
