#!/usr/bin/env python3
"""What a Gram matrix from a sample of patch rows would cost in bits (an idea not kept).

    python tools/gram_sample.py                                  # the Kodak mosaic of bench.py
    python tools/gram_sample.py ../shared/corpus/kodak/kodim0[1-8].png

The Gram pass is a tenth of the encode time. This tool encodes the images at quality 50, 75
and 90 with the encoder's Gram matrix summed over every k-th patch row only (k = 1, 2, 4; the
kept patches scaled up so that their Gram matrix estimates the whole band's) and prints the
total bytes and the mean PSNR: the basis of a sample costs more bytes and more error than the
pass saves, so the encoder sums every patch.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

import bench

import svdcodec
from svdcodec import encoder as E

QUALITIES = (50, 75, 90)


class SampledSource:
    """A planes.Source whose patches keep every `every`-th patch row of each band, scaled by
    the square root of the kept fraction's inverse, so that their Gram matrix estimates the
    band's."""

    def __init__(self, source: Any, every: int) -> None:
        self.source, self.every = source, every

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def patches(self, index: int, y0: int, y1: int, side: int) -> np.ndarray:
        a = self.source.patches(index, y0, y1, side)
        per_row = -(-self.source.shapes[index][1] // side)
        rows = a.reshape(-1, per_row, a.shape[1])
        kept = np.ascontiguousarray(rows[::self.every]).reshape(-1, a.shape[1])
        return kept * np.float32(math.sqrt(rows.shape[0] / (-(-rows.shape[0] // self.every))))


EXACT = E.Encoder._grams


def sampled_grams(every: int) -> Callable[..., Any]:
    """Encoder._grams, summed over a sample of each band's patch rows (`SampledSource`)."""
    def grams(self: E.Encoder, source: Any, index: int, sides: list[int]) -> Any:
        return EXACT(self, SampledSource(source, every), index, sides)
    return grams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path, help="default: the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, default=bench.DEFAULT_CORPUS)
    args = ap.parse_args(argv)
    images = [bench.load_image(p) for p in args.images] or [bench.build_mosaic(args.corpus)]
    base = None
    print(f"{len(images)} image(s), quality {', '.join(map(str, QUALITIES))}")
    print(f"{'patch rows summed':<18} {'bytes':>10} {'vs all':>8} {'mean PSNR dB':>13} "
          f"{'vs all':>8}")
    for every in (1, 2, 4):
        E.Encoder._grams = EXACT if every == 1 else sampled_grams(every)
        total, psnrs = 0, []
        for image in images:
            for q in QUALITIES:
                data = svdcodec.encode(image, quality=q)
                out = svdcodec.decode(data, max_pixels=None).reshape(image.shape)
                mse = np.mean((out.astype(np.float64) - image) ** 2)
                total += len(data)
                psnrs.append(10 * np.log10(255.0 ** 2 / mse))
        psnr = float(np.mean(psnrs))
        base = base or (total, psnr)
        label = "all" if every == 1 else f"1 in {every}"
        print(f"{label:<18} {total:>10} {100 * (total / base[0] - 1):>+7.2f}% {psnr:>13.3f} "
              f"{psnr - base[1]:>+8.3f}")
    E.Encoder._grams = EXACT
    return 0


if __name__ == "__main__":
    sys.exit(main())
