#!/usr/bin/env python3
"""What choosing a small plane's layout on strips costs in bytes (2026-12-02).

Question: a plane too small for a sample of whole bands (a Kodak photo, a 256 x 256 crop) used
to be coded whole in every candidate layout (patch4 and patch8) and the cheaper kept: most of a
small image's encode time. Choosing on strips of 32 rows, one in eight, codes it about 1.25
times instead. What does the occasional wrong choice cost?

    python studies/layout_sampling_cost.py --corpus DIR

Answer (24 Kodak photos and their central 256 x 256 crops; bytes summed over the photos, mean
PSNR; the same run compares the two choices): +0.2 to +0.8 % bytes on the photos at q50-95
(+0.8 % at q20) with PSNR within 0.03 dB, and within +0.2 % on the crops except q20 (+1.7 %).
Again at q30/50/75/90 with the encode's CPU time (commit f8efc4c, SVDCODEC_THREADS=1, a busy
machine): photos +1.70 / +0.89 / +0.26 / +0.19 % bytes, PSNR within 0.01 dB, CPU -16 / -22 /
-23 / -28 %; crops +0.89 / +0.13 / 0.00 / +0.32 %, CPU -12 to -14 % (the crops' 128-row chroma
planes are still costed whole). Strips of 8 rows instead (chroma of crops sampled too): photos
+0.42 / +0.85 / +0.21 / +0.25 % but no CPU saved (four times the bands, each a fixed cost).
Cited in: README ("Speed"), docs/performance.md ("Speed"), encoder/tuning.py
(MIN_SAMPLE_STRIPS).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.encoder import tuning
from svdcodec.evaluation.metrics import psnr


def sizes(images: dict[str, np.ndarray], qualities: list[int]
          ) -> dict[str, tuple[int, float, float]]:
    """Per image and quality: bytes, PSNR and the encode's CPU seconds."""
    out = {}
    for name, pixels in images.items():
        for q in qualities:
            start = time.process_time()
            data = svdcodec.encode(pixels, quality=q)
            seconds = time.process_time() - start
            out[f"{name} q{q}"] = (len(data), psnr(pixels, svdcodec.decode(data)), seconds)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--qualities", default="30,50,75,90")
    args = parser.parse_args(argv)
    qualities = [int(q) for q in args.qualities.split(",")]
    images = {}
    for path in sorted(args.corpus.glob("*.png")):
        photo = np.asarray(Image.open(path).convert("RGB"))
        images[f"{path.stem} full"] = photo
        images[f"{path.stem} crop"] = np.ascontiguousarray(photo[128:384, 128:384])
    sampled = sizes(images, qualities)
    strips = tuning.MIN_SAMPLE_STRIPS
    tuning.MIN_SAMPLE_STRIPS = 1 << 30  # every small plane costed whole, as before
    try:
        whole = sizes(images, qualities)
    finally:
        tuning.MIN_SAMPLE_STRIPS = strips
    print(f"{'set':<10} {'bytes, whole':>13} {'on strips':>10} {'change':>8} "
          f"{'PSNR whole':>10} {'on strips':>10} {'CPU s whole':>11} {'on strips':>10}")
    for kind in ("full", "crop"):
        for q in qualities:
            keys = [k for k in sampled if f" {kind} q{q}" in k]
            a = sum(whole[k][0] for k in keys)
            b = sum(sampled[k][0] for k in keys)
            pa = np.mean([whole[k][1] for k in keys])
            pb = np.mean([sampled[k][1] for k in keys])
            ta = sum(whole[k][2] for k in keys)
            tb = sum(sampled[k][2] for k in keys)
            print(f"{kind + ' q' + str(q):<10} {a:13d} {b:10d} {100 * (b / a - 1):+7.2f}% "
                  f"{pa:10.3f} {pb:10.3f} {ta:11.2f} {tb:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
