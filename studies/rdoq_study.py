#!/usr/bin/env python3
"""Does rate-distortion optimised quantization of U's run/level coded integers pay (issue #16)?

    python studies/rdoq_study.py --corpus DIR [--images 8] [--first 0] [--only NAME] [--jobs 2]
    SVDCODEC_THREADS=1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python studies/rdoq_study.py --corpus DIR --encode-only photos|crops|none --only NAME

Encoder only: the bitstream is unchanged, only which integers the encoder stores. On the images
DIR's sorted PNGs [first, first + images) (kodim01-08 by default), for each variant the mean
BD-rate against Pillow's JPEG (4:2:0) in the three windows of benchmarks/rd.py: RGB PSNR
28-38 dB, RGB PSNR 24-30 dB, and luma SSIM (as dB, -10 log10(1 - SSIM)) over the range JPEG's
SSIM spans between its 28 and 38 dB PSNR points on that image. Variants:

- `dead zone`: today's quantizer, ROUNDING 0.38 everywhere (0.5 in the first column);
  `dead zone R`: another global offset; `dead zone a/b`: offset a in the first sparse group
  (components 1-15), b beyond (the cheap per-column baseline, emulated by lowering levels
  from nearest exactly as the dead zone would);
- `rdoq L`: `codec.quantize.optimise_levels` at RDOQ_LAMBDA = L (integers to the dead zone,
  then a level lowered by one where its added squared error costs less than L step^2 per bit
  saved, bits from the band's run/level symbol frequencies, zeroing merging the runs around
  it); `rdoq L rounds N from R`: N rounds (symbols counted again before each), starting from
  the dead zone of offset R (0.5: nearest).

Conclusion (2026-12-02, C kernels; BD-rate vs JPEG, 28-38 dB / 24-30 dB / luma SSIM). On
kodim01-08, today's dead zone -18.24 / -30.24 / +3.17 %. Other fixed dead zones barely move it:
0.34 -18.26 / -30.58 / +4.03, 0.42 -17.46 / -29.30 / +3.10, per group 0.42/0.34 -17.53 / -29.44 /
+3.21, 0.34/0.42 -18.08 / -30.27 / +4.24, 0.38/0.30 -18.40 / -30.21 / +3.00. RDOQ pays. From
nearest with two rounds: lambda 0.06 -19.42 / -30.62 / +2.01, 0.08 -19.93 / -31.28 / +2.38,
0.10 -20.26 / -31.58 / +2.79, 0.13 -20.12 / -31.86 / +3.83, 0.16 -19.72 / -31.61 / +5.01, 0.20
-18.70 / -31.54 / +6.91 (0.10 with one round -19.45 / -30.84 / +2.90, three -20.38 / -31.75 /
+2.89). From the dead zone, one round: lambda 0.08 -19.74 / -31.21 / +2.84, 0.10 -19.88 /
-31.71 / +3.29, 0.12 -19.90 / -31.52 / +3.81 (two rounds -20.25 / -31.74 / +3.28). Kept: one
round from the dead zone at 0.10 (today's defaults, `rdoq 0.10`), for half the encode time of
two rounds. Not tuned on: kodim09-24 -17.35 / -31.65 / +6.04 -> -19.32 / -33.45 / +6.13 (two
rounds from nearest -19.55 / -33.71 / +5.91); the held-out photos (benchmarks/heldout.py)
-17.59 / -24.47 / +12.23 -> -19.13 / -25.38 / +12.49 (-19.61 / -25.44 / +11.74).
"""

from __future__ import annotations

import argparse
import io
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.codec import quantize
from svdcodec.evaluation.metrics import bd_rate, luma, psnr, ssim

SVDI_QUALITIES = (3, 5, 8, 12, 18, 25, 35, 45, 55, 65, 75, 85, 92)
JPEG_QUALITIES = (1, 3, 5, 8, 12, 20, 35, 50, 65, 75, 85, 92, 96)
TODAY_ROUNDING = quantize.ROUNDING
TODAY_ROUNDS = quantize.RDOQ_ROUNDS
TODAY_START = quantize.RDOQ_ROUNDING
FIRST_GROUP_END = 16  # components 1-15: encoder.tuning.FIRST_GROUP


def ssim_db(a: np.ndarray, b: np.ndarray) -> float:
    s = ssim(luma(a), luma(b))
    return -10 * math.log10(max(1 - s, 1e-12))


def point(pixels: np.ndarray, data: bytes, back: np.ndarray) -> tuple[int, float, float]:
    return len(data), psnr(pixels, back), ssim_db(pixels, back)


def jpeg_curve(pixels: np.ndarray) -> list[tuple[int, float, float]]:
    out = []
    for q in JPEG_QUALITIES:
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=q)
        out.append(point(pixels, buf.getvalue(), np.asarray(Image.open(buf).convert("RGB"))))
    return out


def dead_zone_profile(inner: float, outer: float):
    """An `optimise_levels` stand-in: from nearest, the dead zone of offset `inner` in
    components 1-15 and `outer` beyond (floor(x + r) is nearest lowered where x - l < -r)."""
    def lower(ints: np.ndarray, values: np.ndarray, step: float,
              groups: list[tuple[int, int]]) -> np.ndarray:
        added = np.zeros(ints.shape[1])
        lo = min((g[0] for g in groups), default=ints.shape[1])
        cols = np.arange(ints.shape[1])
        r = np.where(cols < FIRST_GROUP_END, inner, outer)[lo:]
        sub = ints[:, lo:]
        x = np.abs(values[:, lo:]) * np.float32(1.0 / step)
        offset = x.astype(np.float64) - np.abs(sub)
        change = (sub != 0) & (offset < -r)
        sub[change] -= np.sign(sub[change]).astype(sub.dtype)
        added[lo:] = np.where(change, 2.0 * offset + 1.0, 0.0).sum(axis=0)
        return added
    return lower


def apply(name: str) -> None:
    """Set the module constants of variant `name`."""
    quantize.ROUNDING = TODAY_ROUNDING
    quantize.RDOQ_LAMBDA = None
    quantize.optimise_levels = ORIGINAL_OPTIMISE
    kind, arg = ("rdoq", name[5:]) if name.startswith("rdoq ") else ("dead zone", name[10:])
    quantize.RDOQ_ROUNDS = TODAY_ROUNDS
    quantize.RDOQ_ROUNDING = TODAY_START
    if kind == "rdoq":
        arg, _, start = arg.partition(" from ")
        lam, _, rounds = arg.partition(" rounds ")
        quantize.RDOQ_LAMBDA = float(lam)
        quantize.RDOQ_ROUNDS = int(rounds or TODAY_ROUNDS)
        quantize.RDOQ_ROUNDING = float(start or TODAY_START)
    elif arg and "/" in arg:
        inner, outer = (float(v) for v in arg.split("/"))
        quantize.RDOQ_LAMBDA = 1.0  # any: turns the sparse path on
        quantize.RDOQ_ROUNDING = 0.5  # from nearest: the stand-in only lowers
        quantize.optimise_levels = dead_zone_profile(inner, outer)
    elif arg:
        quantize.ROUNDING = float(arg)


ORIGINAL_OPTIMISE = quantize.optimise_levels


def svdi_curve(job: tuple[str, Path]) -> list[tuple[int, float, float]]:
    name, path = job
    apply(name)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    out = []
    for q in SVDI_QUALITIES:
        data = svdcodec.encode(pixels, quality=q)
        out.append(point(pixels, data, svdcodec.decode(data)))
    return out


def jpeg_job(path: Path) -> list[tuple[int, float, float]]:
    return jpeg_curve(np.asarray(Image.open(path).convert("RGB")))


def ssim_window(jpeg: list[tuple[int, float, float]]) -> tuple[float, float]:
    """JPEG's SSIM (dB) at its 28 and 38 dB PSNR points, interpolated."""
    p, s = np.array([j[1] for j in jpeg]), np.array([j[2] for j in jpeg])
    order = np.argsort(p)
    return float(np.interp(28.0, p[order], s[order])), float(np.interp(38.0, p[order], s[order]))


def windows(svdi: list, jpeg: list) -> tuple[float, float, float]:
    rs, ps, ss = zip(*svdi)
    rj, pj, sj = zip(*jpeg)
    lo, hi = ssim_window(jpeg)
    return (bd_rate(rs, ps, rj, pj, 28.0, 38.0), bd_rate(rs, ps, rj, pj, 24.0, 30.0),
            bd_rate(rs, ss, rj, sj, lo, hi))


VARIANTS = ("dead zone", "dead zone 0.34", "dead zone 0.42", "dead zone 0.42/0.34",
            "dead zone 0.34/0.42", "dead zone 0.38/0.30", "rdoq 0.10",
            "rdoq 0.08 rounds 1 from 0.38", "rdoq 0.12 rounds 1 from 0.38",
            "rdoq 0.10 rounds 2 from 0.38",
            *(f"rdoq {lam} rounds 2 from 0.5" for lam in ("0.06", "0.08", "0.10", "0.13", "0.16",
                                                         "0.20")),
            "rdoq 0.10 rounds 1 from 0.5", "rdoq 0.10 rounds 3 from 0.5")


def encode_only(corpus: Path, which: str, variant: str) -> None:
    """The encodes whose instructions docs/design-notes.md counts (one thread:
    SVDCODEC_THREADS=1)."""
    apply(variant)
    paths = sorted(corpus.glob("*.png"))[0:12:2]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    crops = [a[y:y + 256, x:x + 256] for a in photos for y, x in ((0, 0), (200, 300))]
    for pixels in {"photos": photos, "crops": crops, "none": []}[which]:
        for q in (30, 75, 90):
            svdcodec.encode(pixels, quality=q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--only", action="append", help="a variant (repeatable): "
                        + ", ".join(VARIANTS) + "; 'rdoq L' and 'dead zone R' take any value")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--encode-only", choices=("photos", "crops", "none"),
                        help="only encode, for an instruction count under valgrind: photos 1, 3, "
                        "5, ..., 11 of DIR (or two 256x256 crops of each) at quality 30, 75, 90, "
                        "with the first --only variant (none: load them only)")
    args = parser.parse_args()
    if args.encode_only:
        encode_only(args.corpus, args.encode_only, (args.only or ["rdoq 0.10"])[0])
        return
    paths = sorted(args.corpus.glob("*.png"))[args.first:args.first + args.images]
    variants = args.only or list(VARIANTS)
    print(f"{len(paths)} images ({paths[0].name} ...); svdcodec {svdcodec.__file__}")
    print("BD-rate vs JPEG: RGB PSNR 28-38 dB | 24-30 dB | luma SSIM (JPEG's window); "
          "mean bytes at the qualities")
    with ProcessPoolExecutor(args.jobs) as pool:
        jpegs = list(pool.map(jpeg_job, paths))
        for name in variants:
            curves = list(pool.map(svdi_curve, [(name, p) for p in paths]))
            bds = np.array([windows(s, j) for s, j in zip(curves, jpegs)])
            mean = np.nanmean(bds, axis=0)
            size = np.mean([[c[0] for c in curve] for curve in curves])
            print(f"{name:22s} {mean[0]:+7.2f} % {mean[1]:+7.2f} % {mean[2]:+7.2f} %"
                  f"   {size:9.0f} B", flush=True)


if __name__ == "__main__":
    main()
