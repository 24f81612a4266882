#!/usr/bin/env python3
"""Would a decoder-side deblocking filter across patch edges pay, and how strong should it be?

    python studies/deblock_study.py --corpus DIR [--images 4]

A post filter on the decoded 8-bit Y'CbCr samples, H.264's normal-strength edge filter in
integer arithmetic (so every decoder could apply it bit for bit): across each patch edge
p1 p0 | q0 q1 of a patch-layout plane (edges every 2P output samples for subsampled chroma),
where |p0 - q0| < alpha, |p1 - p0| < beta and |q1 - q0| < beta, p0 and q0 move by
clamp((4 (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc); alpha, beta and tc are multiples of the
plane's quantizer step (PLAN's step, on sigma * u), at least 1. Vertical edges, then
horizontal. Both curves go through the same Y'CbCr -> RGB conversion (Pillow's), so the
difference is the filter's alone. Prints, per strength, the BD-rate of the filtered curve
against the unfiltered one (negative: the filter saves bytes at equal quality) on RGB PSNR and
on luma SSIM, mean over the images, qualities 20-90.

Conclusion (Kodak 1-4, 60 strengths): the clamp tc decides. Best alpha = 2-4 steps,
beta = 1-2 steps, tc = 0.1 step: -3.7 % (RGB PSNR) and -7.4 % (luma SSIM) against the same
decode unfiltered, bytes unchanged; tc = 0.2 step -3.1 % / -5.9 %, tc = 0.5 step with beta = 2
steps +3.3 ... +4.8 % (worse). The gain is larger in SSIM than in PSNR, as issue #16's
prototype found (-3.7 % PSNR). It needs a format change (the filter is part of the decoded
image, which version 2's residuals are computed against), so it waits for the RD engine's
format version.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec import format as fmt
from svdcodec.evaluation import metrics

QUALITIES = (20, 35, 50, 65, 80, 90)
#: (alpha, beta, tc) in quantizer steps.
STRENGTHS = [(a, b, t) for a in (0.5, 1, 2, 4) for b in (0.2, 0.35, 0.5, 1, 2)
             for t in (0.1, 0.2, 0.5)]


def to_ycc(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("YCbCr")).astype(np.int32)


def to_rgb(ycc: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(np.clip(ycc, 0, 255).astype(np.uint8), "YCbCr")
                      .convert("RGB"))


def filter_edges(x: np.ndarray, period: int, alpha: int, beta: int, tc: int,
                 axis: int) -> np.ndarray:
    """The edges between samples k*period - 1 and k*period along `axis`, all at once."""
    x = np.moveaxis(x, axis, 0).copy()
    e = np.arange(period, x.shape[0] - 1, period)
    e = e[e >= 2]
    if e.size:
        p1, p0, q0, q1 = x[e - 2], x[e - 1], x[e], x[e + 1]
        active = (np.abs(p0 - q0) < alpha) & (np.abs(p1 - p0) < beta) & (np.abs(q1 - q0) < beta)
        delta = np.clip((4 * (q0 - p0) + (p1 - q1) + 4) >> 3, -tc, tc) * active
        x[e - 1] = p0 + delta
        x[e] = q0 - delta
    return np.moveaxis(x, 0, axis)


def deblock(ycc: np.ndarray, planes: list[fmt.Plane], strength: tuple[float, float, float]
            ) -> np.ndarray:
    out = ycc.copy()
    for c, plane in enumerate(planes[:3]):
        if plane.layout != fmt.LAYOUT_PATCH:
            continue
        period = plane.patch * (2 if plane.width != ycc.shape[1] else 1)
        alpha, beta, tc = (max(1, int(k * plane.step)) for k in strength)
        channel = filter_edges(out[..., c], period, alpha, beta, tc, axis=1)
        out[..., c] = filter_edges(channel, period, alpha, beta, tc, axis=0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.png"))[:args.images]
    gains: dict[tuple[float, float, float], list[tuple[float, float]]] = {s: [] for s in STRENGTHS}
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        ref_luma = metrics.luma(img)
        rates, base_psnr, base_ssim = [], [], []
        filtered = {s: ([], []) for s in STRENGTHS}
        for q in QUALITIES:
            data = svdcodec.encode(img, quality=q)
            planes = fmt.unpack(data).planes
            ycc = to_ycc(svdcodec.decode(data))
            plain = to_rgb(ycc)
            rates.append(len(data) * 8 / img.shape[0] / img.shape[1])
            base_psnr.append(metrics.psnr(img, plain))
            base_ssim.append(metrics.ssim(ref_luma, metrics.luma(plain)))
            for s in STRENGTHS:
                out = to_rgb(deblock(ycc, planes, s))
                filtered[s][0].append(metrics.psnr(img, out))
                filtered[s][1].append(metrics.ssim(ref_luma, metrics.luma(out)))
        for s in STRENGTHS:
            gains[s].append((metrics.bd_rate(rates, filtered[s][0], rates, base_psnr),
                             metrics.bd_rate(rates, filtered[s][1], rates, base_ssim)))
        print(f"{path.name} done", flush=True)
    print("\nalpha beta tc (steps)   BD-rate RGB PSNR   BD-rate luma SSIM")
    for s in sorted(STRENGTHS, key=lambda s: float(np.mean([g[0] for g in gains[s]]))):
        p, q = np.mean(gains[s], axis=0)
        print(f"{s[0]:5} {s[1]:4} {s[2]:3}          {p:+7.2f} %          {q:+7.2f} %")


if __name__ == "__main__":
    main()
