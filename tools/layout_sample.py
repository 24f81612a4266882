#!/usr/bin/env python3
"""Does costing a plane's layouts on a sample of bands choose what costing whole planes does?

    python tools/layout_sample.py                  # the 19 MP Kodak mosaic of tools/bench.py
    python tools/layout_sample.py --image big.png --quality 30 90

For each quality: file size, PSNR, the layout of every plane and the encode time, with the
sampled choice (the encoder's default, encoder.LAYOUT_SAMPLE) and with whole planes costed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

import bench  # noqa: E402
import svdcodec  # noqa: E402
from svdcodec import format as container, encoder as E  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help="test image instead of the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, default=bench.DEFAULT_CORPUS)
    ap.add_argument("--quality", type=float, nargs="+", default=[20, 50, 75, 90, 97])
    args = ap.parse_args(argv)
    image = bench.load_image(args.image) if args.image else bench.build_mosaic(args.corpus)
    print(f"image {image.shape[1]}x{image.shape[0]}; columns: bytes, PSNR dB, patch side per "
          f"plane, encode s")
    sampled = (E.LAYOUT_SAMPLE, E.MIN_SAMPLE_BANDS)
    same = True
    for q in args.quality:
        cells = []
        for label, setting in (("sampled", sampled), ("whole planes", (1 << 30, 1 << 30))):
            E.LAYOUT_SAMPLE, E.MIN_SAMPLE_BANDS = setting
            t = time.perf_counter()
            data = svdcodec.encode(image, quality=q)
            seconds = time.perf_counter() - t
            psnr = bench.psnr(image, svdcodec.decode(data, max_pixels=None))
            sides = [p.patch for p in container.unpack(data, max_pixels=None).planes]
            cells.append((label, len(data), psnr, sides, seconds))
        E.LAYOUT_SAMPLE, E.MIN_SAMPLE_BANDS = sampled
        same &= cells[0][3] == cells[1][3]
        print(f"q{q:g}: " + "; ".join(f"{label} {n} B {p:.3f} dB patch{s} {t:.2f} s"
                                       for label, n, p, s, t in cells))
    print("same layouts everywhere" if same else "the layouts differ somewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
