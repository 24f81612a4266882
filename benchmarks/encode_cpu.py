#!/usr/bin/env python3
"""Encode CPU time per image against Pillow's JPEG (quality 75), on one thread: the small-image
figures of docs/performance.md ("Small-image encode"); with --decode, decode CPU time too
(through Pillow and svdcodec.decode, against JPEG's Image.open().load()); with --mosaic, the
19 MP mosaic of speed.py as a third set (its band threads' CPU time summed).

    SVDCODEC_THREADS=1 python benchmarks/encode_cpu.py --corpus KODAK [--rounds 5]
    python benchmarks/encode_cpu.py --corpus KODAK --decode --mosaic

Two sets from the 24 Kodak photos: 48 crops of 256 x 256 (at (0, 0) and (256, 256) of each) and
the photos. Each round times svdcodec.encode (quality 75) of the whole set, then Pillow's JPEG of
the same set, in CPU time (time.process_time: less sensitive than wall time to other processes
on a shared machine); prints the medians over rounds of the time per image and of the ratio.
Run it alternately on two versions of the code to compare them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import build_mosaic
from _operations import prepare
from PIL import Image

import svdcodec


def cpu_ms(operation: Callable[[Any], object], images: list[Any]) -> float:
    """CPU milliseconds per image of `operation` over `images`."""
    start = time.process_time()
    for image in images:
        operation(image)
    return (time.process_time() - start) / len(images) * 1e3


#: The operations as speed.py runs them (benchmarks/_operations.py).
jpeg = prepare("JPEG encode")
svdi_pillow, svdi_numpy, jpeg_pillow = (prepare(name) for name in (
    "svdi decode Pillow", "svdi decode numpy", "JPEG decode Pillow"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decode", action="store_true", help="time decoding too")
    parser.add_argument("--mosaic", action="store_true", help="add the 19 MP mosaic")
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.corpus.glob("*.png"))]
    crops = [np.ascontiguousarray(p[y:y + 256, x:x + 256]) for p in photos
             for y, x in ((0, 0), (256, 256))]
    for image in crops[:4]:  # warm: lazy imports, caches
        svdcodec.encode(image)
        jpeg(image)
    sets = [("256x256 crops", crops), ("Kodak photos", photos)]
    if args.mosaic:
        sets.append(("19 MP mosaic", [build_mosaic(sorted(args.corpus.glob("*.png")))]))
    for name, images in sets:
        report(f"{name} x{len(images)} encode", svdcodec.encode, jpeg, images, images,
               args.rounds)
        if args.decode:
            files = [svdcodec.encode(image) for image in images]
            jpegs = [jpeg(image) for image in images]
            report(f"{name} x{len(images)} decode Pillow", svdi_pillow, jpeg_pillow, files,
                   jpegs, args.rounds)
            report(f"{name} x{len(images)} decode numpy", svdi_numpy, jpeg_pillow, files,
                   jpegs, args.rounds)
    return 0


def report(name: str, svdi_op: Callable[[Any], object], jpeg_op: Callable[[Any], object],
           svdi_inputs: list[Any], jpeg_inputs: list[Any], rounds: int) -> None:
    """Medians over rounds (svdi's set, then JPEG's) of the CPU time per image and the ratio."""
    times = [(cpu_ms(svdi_op, svdi_inputs), cpu_ms(jpeg_op, jpeg_inputs))
             for _ in range(rounds)]
    svdi, ref = np.median(times, axis=0)
    ratio = np.median([a / b for a, b in times])
    print(f"{name:>32}: svdi {svdi:.2f} ms, JPEG {ref:.3f} ms per image (CPU), "
          f"svdi / JPEG {ratio:.1f}x", flush=True)


if __name__ == "__main__":
    sys.exit(main())
