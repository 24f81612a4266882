#!/usr/bin/env python3
"""Do the encoder's constants trade RGB PSNR for luma SSIM (issue #16, "quality people see")?

    python studies/perceptual_study.py --corpus DIR [--images 8]

On the tuning images (kodim01-08 by default: the first 8 PNGs of DIR), for each setting of the
dead-zone rounding offset (`codec.quantize.ROUNDING`), the rank decision's multiplier
(`codec.quantize.LAMBDA`) and the chroma step (`encoder.tuning.CHROMA_STEP`), one at a time
around today's values: the mean BD-rate against Pillow's JPEG (4:2:0) on RGB PSNR over
28-38 dB and on luma SSIM, taken as dB (-10 log10(1 - SSIM)) over the range JPEG's SSIM spans
between its 28 and 38 dB PSNR points on that image.

Conclusion (2026-12-02; BD-rate RGB PSNR / luma SSIM). The values before this study were
ROUNDING 0.38, LAMBDA 0.06, CHROMA_STEP 0.55: -17.80 % / +7.75 % on kodim01-08. The dead zone
does not buy SSIM (0.30: -17.44 / +9.59; 0.50: -11.77 / +10.46). Cheaper chroma does: 0.70
-18.10 / +3.23, 1.0 -15.78 / -1.85; a larger LAMBDA a little (0.10: -18.03 / +6.20; with
chroma 0.70: -18.20 / +1.58). On kodim09-24, CHROMA_STEP 0.70: -17.17 / +6.04 against
-17.30 / +10.53: adopted (luma SSIM ignores chroma, so the step stops where RGB PSNR starts
to pay). LAMBDA 0.10 (-17.10 / +4.08 there) is not: the rank a layout sample keeps drifts from
the whole plane's (tests/test_streaming.py's estimate goes 35 % off).
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.codec import quantize
from svdcodec.encoder import schedule
from svdcodec.evaluation.metrics import bd_rate, luma, psnr, ssim

SVDI_QUALITIES = (8, 15, 25, 40, 55, 70, 80, 88, 94)
JPEG_QUALITIES = (5, 10, 20, 35, 50, 65, 75, 85, 92, 96)


def ssim_db(a: np.ndarray, b: np.ndarray) -> float:
    s = ssim(luma(a), luma(b))
    return -10 * math.log10(max(1 - s, 1e-12))


#: bytes, RGB PSNR and luma SSIM (dB) per quality setting
Curve = tuple[list[int], list[float], list[float]]


def jpeg_curve(pixels: np.ndarray) -> Curve:
    sizes, psnrs, ssims = [], [], []
    for q in JPEG_QUALITIES:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=q)
        back = np.asarray(Image.open(buf).convert("RGB"))
        sizes.append(len(buf.getvalue()))
        psnrs.append(psnr(pixels, back))
        ssims.append(ssim_db(pixels, back))
    return sizes, psnrs, ssims


def svdi_curve(pixels: np.ndarray, qualities: tuple[int, ...] = SVDI_QUALITIES) -> Curve:
    sizes, psnrs, ssims = [], [], []
    for q in qualities:
        data = svdcodec.encode(pixels, quality=q)
        back = svdcodec.decode(data)
        sizes.append(len(data))
        psnrs.append(psnr(pixels, back))
        ssims.append(ssim_db(pixels, back))
    return sizes, psnrs, ssims


def ssim_window(jpeg: Curve) -> tuple[float, float]:
    """JPEG's SSIM (dB) at its 28 and 38 dB PSNR points, interpolated."""
    order = np.argsort(jpeg[1])
    p, s = np.asarray(jpeg[1])[order], np.asarray(jpeg[2])[order]
    return float(np.interp(28.0, p, s)), float(np.interp(38.0, p, s))


def measure(images: list[np.ndarray], jpegs: list) -> tuple[float, float]:
    bd_psnr, bd_ssim = [], []
    for pixels, jpeg in zip(images, jpegs):
        svdi = svdi_curve(pixels)
        bd_psnr.append(bd_rate(svdi[0], svdi[1], jpeg[0], jpeg[1], 28.0, 38.0))
        lo, hi = ssim_window(jpeg)
        bd_ssim.append(bd_rate(svdi[0], svdi[2], jpeg[0], jpeg[2], lo, hi))
    return float(np.nanmean(bd_psnr)), float(np.nanmean(bd_ssim))


SETTINGS = {
    "ROUNDING": (quantize, "ROUNDING", (0.30, 0.38, 0.44, 0.50)),
    "LAMBDA": (quantize, "LAMBDA", (0.03, 0.06, 0.10, 0.15, 0.20)),
    "CHROMA_STEP": (schedule, "CHROMA_STEP", (0.45, 0.55, 0.70, 0.85, 1.0)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--only", help="one of " + ", ".join(SETTINGS))
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.png"))[:args.images]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    jpegs = [jpeg_curve(a) for a in images]
    print(f"{len(images)} images; BD-rate vs JPEG: RGB PSNR 28-38 dB | luma SSIM (JPEG's window)")
    for name, (module, attr, values) in SETTINGS.items():
        if args.only and name != args.only:
            continue
        today = getattr(module, attr)
        for value in values:
            setattr(module, attr, value)
            try:
                bd_p, bd_s = measure(images, jpegs)
            finally:
                setattr(module, attr, today)
            mark = " (today)" if value == today else ""
            print(f"{name} = {value}{mark}: PSNR {bd_p:+.2f} %  SSIM {bd_s:+.2f} %", flush=True)


if __name__ == "__main__":
    main()
