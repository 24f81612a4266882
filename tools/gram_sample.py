#!/usr/bin/env python3
"""What a Gram matrix from a sample of patch rows would cost in bits (an idea not kept).

    python tools/gram_sample.py                                  # the Kodak mosaic of bench.py
    python tools/gram_sample.py ../shared/corpus/kodak/kodim0[1-8].png

The Gram pass is a tenth of the encode time. This tool encodes the images at quality 50, 75
and 90 with the Gram matrix summed over every k-th patch row only (k = 1, 2, 4; scaled up by
the sampled fraction) and prints the total bytes and the mean PSNR: the basis of a sample costs
more bytes and more error than the pass saves, so the encoder sums every patch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

import bench

import svdcodec
from svdcodec import encoder as E
from svdcodec.parallel import run_bands

QUALITIES = (50, 75, 90)


def sampled_grams(every: int):
    """Encoder._grams with only every `every`-th patch row of each band summed."""
    def grams(self, source, index, sides):  # type: ignore[no-untyped-def]
        bands = self._bands(source, index)
        h, w = source.shapes[index]
        derived = [s for s in sides if 2 * s in sides and E._quarters(s, h, w)]
        direct = [s for s in sides if s not in derived]

        def gram(i: int) -> list[tuple[np.ndarray, int, int]]:
            out = []
            for side in direct:
                a = source.patches(index, *bands[i], side)
                per_row = -(-w // side)
                rows = a.reshape(a.shape[0] // per_row, per_row, -1)[::every]
                sub = np.ascontiguousarray(rows.reshape(-1, a.shape[1]))
                out.append((sub.T @ sub, a.shape[0], sub.shape[0]))
            return out
        totals = [np.zeros((side * side, side * side)) for side in direct]
        counts = [[0, 0] for _ in direct]
        for part in run_bands(gram, len(bands)):
            for total, count, (g, n, sampled) in zip(totals, counts, part):
                total += g
                count[0] += n
                count[1] += sampled
        for total, count in zip(totals, counts):
            total *= count[0] / count[1]
        out = dict(zip(direct, totals))
        for side in sorted(derived, reverse=True):
            out[side] = E._sub_gram(out[2 * side], side)
        return out
    return grams


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path, help="default: the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, default=bench.DEFAULT_CORPUS)
    args = ap.parse_args(argv)
    images = [bench.load_image(p) for p in args.images] or [bench.build_mosaic(args.corpus)]
    exact = E.Encoder._grams
    base = None
    print(f"{len(images)} image(s), quality {', '.join(map(str, QUALITIES))}")
    print(f"{'patch rows summed':<18} {'bytes':>10} {'vs all':>8} {'mean PSNR dB':>13} {'vs all':>8}")
    for every in (1, 2, 4):
        E.Encoder._grams = exact if every == 1 else sampled_grams(every)
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
    E.Encoder._grams = exact
    return 0


if __name__ == "__main__":
    sys.exit(main())
