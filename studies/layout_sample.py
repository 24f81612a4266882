#!/usr/bin/env python3
"""Does costing a plane's layouts on a sample of bands choose what costing whole planes does?

    python studies/layout_sample.py --corpus DIR      # the 19 MP Kodak mosaic of benchmarks/speed.py
    python studies/layout_sample.py --image big.png --quality 30 90

For each quality: file size, PSNR, the layout of every plane and the encode time, with the
sampled choice (the encoder's default, encoder.tuning.LAYOUT_SAMPLE) and with whole planes costed.
Planes below LAYOUT_SAMPLE * MIN_SAMPLE_BANDS bands (about 4 MP) are never sampled, so the
image must be a large photo: --corpus or --image is required. (The bundled sample tiled up to
19 MP is no stand-in: its exact repeats make whole planes nearly rank-deficient, and there the
sampled choice differs - at quality 75 it coded Y' as patch4 in 551,565 bytes where costing
whole planes chose patch8 and 121,985 bytes.)

Conclusion (19 MP Kodak mosaic, quality 20, 50, 75, 90 and 97): the sampled choice picked the
same layout for every plane as costing whole planes (identical files) and encoded 11-30 %
faster. Cited in spec/svdi.md section 6 ("Layout").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _common  # the benchmarks' test images

import svdcodec
from svdcodec.evaluation import metrics
from svdcodec.encoder import tuning  # its sampling constants: no public option


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help="test image instead of the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, help="Kodak photos (kodim*.png) for the mosaic")
    ap.add_argument("--quality", type=float, nargs="+", default=[20, 50, 75, 90, 97])
    args = ap.parse_args(argv)
    if args.image is None and args.corpus is None:
        ap.error("give --corpus DIR (the Kodak set) or --image FILE (a photo of 4 MP or more)")
    if args.image:
        image = _common.load_image(args.image)
    else:
        image = _common.build_mosaic(_common.kodak_paths(args.corpus))
    print(f"image {image.shape[1]}x{image.shape[0]}; columns: bytes, PSNR dB, layout per "
          f"plane, encode s")
    sampled = (tuning.LAYOUT_SAMPLE, tuning.MIN_SAMPLE_BANDS)
    same = True
    for q in args.quality:
        cells = []
        for label, setting in (("sampled", sampled), ("whole planes", (1 << 30, 1 << 30))):
            tuning.LAYOUT_SAMPLE, tuning.MIN_SAMPLE_BANDS = setting
            t = time.perf_counter()
            data = svdcodec.encode(image, quality=q)
            seconds = time.perf_counter() - t
            psnr = metrics.psnr(image, svdcodec.decode(data, max_pixels=None))
            sides = [f.layout for f in svdcodec.read_factors(data, max_pixels=None)]
            cells.append((label, len(data), psnr, sides, seconds))
        tuning.LAYOUT_SAMPLE, tuning.MIN_SAMPLE_BANDS = sampled
        same &= cells[0][3] == cells[1][3]
        print(f"q{q:g}: " + "; ".join(f"{label} {n} B {p:.3f} dB {s} {t:.2f} s"
                                       for label, n, p, s, t in cells))
    print("same layouts everywhere" if same else "the layouts differ somewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
