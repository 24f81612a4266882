"""How should colour become matrices? Per-channel RGB vs channels side by side vs Y'CbCr.

The lecture's comment thread argues three ways; this measures them with the same quantizer and
coding (svdcodec's), as BD-rate against Pillow's JPEG over 28-38 dB RGB PSNR:

- rgb-planes:   each of R, G, B encoded as its own grey image (one factorization per channel);
- side-by-side: [R | G | B] as one grey image three times as wide (one shared V basis);
- ycbcr-444:    svdcodec's Y'CbCr planes without chroma subsampling;
- ycbcr-auto:   svdcodec's default (4:2:0 below quality ~89).

    python studies/colour_study.py --corpus DIR [--layout auto|plain]   # DIR: the Kodak set
    python studies/colour_study.py                  # the photo bundled with svdcodec only

Conclusion (24 Kodak photos, mean BD-rate vs JPEG, auto layout / plain layout): R, G, B each
its own matrix +80.2 % / +366.9 %; side by side +42.4 % / +233.7 %; Y'CbCr with full-size
chroma -5.5 % / +145.4 %; Y'CbCr with chroma subsampled 2x2 below quality ~89 (the encoder's
default) -15.2 % / +115.0 %. The RGB planes are correlated and each pays for the same structure
again; in Y'CbCr most energy sits in Y' and the chroma planes quantize to few components. Cited
in spec/svdi.md section 6 ("Colour").
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.encoder import tuning  # its SUBSAMPLE_FROM_STEP: no option turns subsampling off
from svdcodec.evaluation import codecs as compare

QUALITIES = (20, 35, 50, 60, 70, 80, 90, 95)
VARIANTS = ("rgb-planes", "side-by-side", "ycbcr-444", "ycbcr-auto")


def _variant(img: np.ndarray, variant: str, quality: int, layout: str) -> tuple[int, np.ndarray]:
    w = img.shape[1]
    if variant == "rgb-planes":
        data = [svdcodec.encode(img[..., c], quality=quality, layout=layout) for c in range(3)]
        out = np.stack([svdcodec.decode(d) for d in data], axis=-1)
        return sum(map(len, data)), out
    if variant == "side-by-side":
        wide = np.concatenate([img[..., c] for c in range(3)], axis=1)
        data = svdcodec.encode(wide, quality=quality, layout=layout)
        back = svdcodec.decode(data)
        return len(data), np.stack([back[:, c * w:(c + 1) * w] for c in range(3)], axis=-1)
    saved = tuning.SUBSAMPLE_FROM_STEP
    if variant == "ycbcr-444":
        tuning.SUBSAMPLE_FROM_STEP = float("inf")
    try:
        data = svdcodec.encode(img, quality=quality, layout=layout)
    finally:
        tuning.SUBSAMPLE_FROM_STEP = saved
    return len(data), svdcodec.decode(data)


def study(args: tuple[str, str]) -> dict[str, float]:
    path, layout = args
    img = np.asarray(Image.open(path).convert("RGB"))
    jpeg = [compare.run_jpeg(img, q) for q in (10, 20, 30, 40, 50, 60, 70, 80, 90, 95)]
    j_rates = [n for n, _ in jpeg]
    j_psnr = [compare.psnr(img, d) for _, d in jpeg]
    out = {}
    for variant in VARIANTS:
        points = [_variant(img, variant, q, layout) for q in QUALITIES]
        out[variant] = compare.bd_rate([n for n, _ in points],
                                       [compare.psnr(img, d) for _, d in points],
                                       j_rates, j_psnr, 28, 38)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path,
                        help="directory of PNG photos (default: the sample bundled with svdcodec)")
    parser.add_argument("--layout", default="auto")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    print("command: python studies/colour_study.py " + " ".join(sys.argv[1:]))
    if args.corpus is None:
        from importlib.resources import files

        paths = [str(files("svdcodec.data") / "sample.png")]
    else:
        paths = sorted(str(p) for p in args.corpus.glob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images in {args.corpus}")
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(study, [(p, args.layout) for p in paths]))
    print(f"mean BD-rate vs JPEG, 28-38 dB, {len(paths)} images, layout {args.layout}:")
    for variant in VARIANTS:
        values = np.array([r[variant] for r in results])
        print(f"  {variant:<13} {np.nanmean(values):+7.1f}%  "
              f"({np.isfinite(values).sum()} images with overlap)")


if __name__ == "__main__":
    main()
