#!/usr/bin/env python3
"""16-bit RGB in Y'CbCr (format version 3) against the colour-0 coding of earlier versions and
against the same photos at 8 bits, in one run: docs/design-notes.md, "16-bit colour".

    python benchmarks/colour16.py --corpus DIR [--limit 8] [--quality 75] [--noise 0]

Each Kodak photo (DIR: kodim01..24.png, benchmarks/README.md) widened to 16 bits as x 257
(plus, with --noise N, uniform noise in -N..N in the low bits, clipped to the range), coded at
one quality three ways: the encoder's 16-bit Y'CbCr (version 3); colour 0, three independent
planes, as the encoder wrote 16-bit RGB before version 3 (the same encoder with that header:
HEAD colour 0, version 1); and the 8-bit photo (colour 1, version 1), with Pillow's JPEG at the
same quality as the outside reference. Bytes and PSNR (16-bit peak for the 16-bit files, 8-bit
for the 8-bit ones); every 16-bit file is decoded and checked to be its version. Sizes only.
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import kodak_paths, progress
from PIL import Image

import svdcodec
from svdcodec.encoder import schedule, source
from svdcodec.format import COLOUR_NONE, Header, unpack


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def colour_0(pixels: np.ndarray, quality: int) -> bytes:
    """The file the encoder wrote for 16-bit RGB before version 3: the same code with HEAD
    colour 0 (each channel its own plane, scale max / 255), version 1."""
    def header(px: np.ndarray, subsample: bool) -> Header:
        return replace(source.image_header(px, False), colour=COLOUR_NONE, subsampling=0,
                       version=1)
    saved = schedule.image_header
    schedule.image_header = header
    try:
        return svdcodec.encode(pixels, quality=quality)
    finally:
        schedule.image_header = saved


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--quality", type=int, default=75)
    parser.add_argument("--noise", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    rows = []
    for path in kodak_paths(args.corpus)[:args.limit]:
        progress(path.name)
        rgb = np.asarray(Image.open(path).convert("RGB"))
        wide = rgb.astype(np.int64) * 257
        if args.noise:
            wide += rng.integers(-args.noise, args.noise + 1, wide.shape)
        wide = wide.clip(0, 65535).astype(np.uint16)
        v3 = svdcodec.encode(wide, quality=args.quality)
        v0 = colour_0(wide, args.quality)
        assert unpack(v3).header.version == 3 and unpack(v0).header.colour == COLOUR_NONE
        eight = svdcodec.encode(rgb, quality=args.quality)
        jpeg = jpeg_bytes(rgb, args.quality)
        rows.append((path.stem, len(v3), psnr(svdcodec.decode(v3), wide, 65535), len(v0),
                     psnr(svdcodec.decode(v0), wide, 65535), len(eight),
                     psnr(svdcodec.decode(eight), rgb, 255), len(jpeg)))
    print(f"quality {args.quality}, noise {args.noise}")
    print("| image | v3 Y'CbCr bytes | PSNR16 | colour 0 bytes | PSNR16 | v3 / colour 0 | "
          "8-bit bytes | PSNR8 | v3 / 8-bit | v3 / JPEG 8-bit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, b3, p3, b0, p0, b8, p8, bj in rows:
        print(f"| {name} | {b3} | {p3:.2f} | {b0} | {p0:.2f} | {b3 / b0:.3f} | {b8} | {p8:.2f} "
              f"| {b3 / b8:.3f} | {b3 / bj:.3f} |")
    tot = [sum(r[i] for r in rows) for i in (1, 3, 5, 7)]
    mean = [float(np.mean([r[i] for r in rows])) for i in (2, 4, 6)]
    print(f"| total / mean | {tot[0]} | {mean[0]:.2f} | {tot[1]} | {mean[1]:.2f} | "
          f"{tot[0] / tot[1]:.3f} | {tot[2]} | {mean[2]:.2f} | {tot[0] / tot[2]:.3f} | "
          f"{tot[0] / tot[3]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
