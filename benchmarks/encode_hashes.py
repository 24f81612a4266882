#!/usr/bin/env python3
"""sha256 of many encodes, to show that a change to the encoder keeps every byte: run it before
and after (or on both kernel paths) and compare the two files. docs/performance.md quotes it.

    python benchmarks/encode_hashes.py --corpus KODAK --out before.txt
    python benchmarks/encode_hashes.py --corpus KODAK --out before.txt --variants
    SVDCODEC_KERNELS=0 python benchmarks/encode_hashes.py --corpus KODAK --out numpy.txt
    cmp before.txt after.txt

What it encodes: the 24 photos and a 256 x 256 crop of each at quality 10, 30, 75 and 90;
every fourth photo and crop with effort=2 and deblock=True; every sixth photo through Pillow;
one photo as L, LA, RGB, RGBA, 16-bit grey, 16-bit RGB and float32 (whole and a 200 x 300
crop, q 30/75/90) and through Pillow in modes L, LA, RGB, RGBA and I;16; odd sizes (1 x 1,
3 x 5, 255 x 257, single rows and columns ...) of noise, a resized photo and its grey, at q 10,
75, 100; the plain and patch16 layouts, rank, energy, max_error (bounded and lossless),
target_psnr, max_bytes, a constant image, a decoded image encoded again (the decoder-grid
path) and a 2048 x 2304 tiling (streaming planes, band threads). `--variants` adds every
photo and its crop at quality 30, 75 and 90 with deblock=False, effort=2 and aq=True, and
through Pillow's save at each quality (all 24 photos). One line per encode: name, size,
sha256.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--variants", action="store_true",
                        help="also deblock=False, effort=2, aq=True and Pillow at q 30/75/90")
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("RGB"))
              for p in sorted(args.corpus.glob("*.png"))]
    lines: list[str] = []

    def record(name: str, data: bytes) -> None:
        lines.append(f"{name} {len(data)} {hashlib.sha256(data).hexdigest()}")

    def pillow(image: Image.Image, **options: float) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, "SVDI", **options)
        return buffer.getvalue()

    qualities = (10, 30, 75, 90)
    for i, photo in enumerate(photos):
        crop = np.ascontiguousarray(photo[128:384, 256:512])
        for q in qualities:
            record(f"photo{i}-q{q}", svdcodec.encode(photo, q))
            record(f"crop{i}-q{q}", svdcodec.encode(crop, q))
        if i % 4 == 0:
            record(f"photo{i}-effort2", svdcodec.encode(photo, 75, effort=2))
            record(f"crop{i}-effort2", svdcodec.encode(crop, 50, effort=2))
            record(f"crop{i}-deblock", svdcodec.encode(crop, 50, deblock=True))
        if i % 6 == 0:
            record(f"pillow{i}", pillow(Image.fromarray(photo)))
        if args.variants:
            for q in (30, 75, 90):
                for label, kw in (("nodeblock", {"deblock": False}), ("effort2", {"effort": 2}),
                                  ("aq", {"aq": True})):
                    record(f"photo{i}-q{q}-{label}", svdcodec.encode(photo, q, **kw))
                    record(f"crop{i}-q{q}-{label}", svdcodec.encode(crop, q, **kw))
                record(f"pillow{i}-q{q}", pillow(Image.fromarray(photo), quality=q))
                record(f"pillow-crop{i}-q{q}", pillow(Image.fromarray(crop), quality=q))
    rng = np.random.default_rng(1)
    base = photos[min(2, len(photos) - 1)]
    grey = np.asarray(Image.fromarray(base).convert("L"))
    alpha = (np.arange(grey.size) % 251).reshape(grey.shape).astype(np.uint8)
    grey16 = (grey.astype(np.uint16) * 257 + rng.integers(0, 200, grey.shape)).astype(np.uint16)
    modes = {"L": grey, "LA": np.dstack([grey, alpha]), "RGB": base,
             "RGBA": np.dstack([base, alpha]), "I16": grey16,
             "RGB16": (base.astype(np.uint16) * 257
                       + rng.integers(0, 200, base.shape)).astype(np.uint16),
             "float32": grey.astype(np.float32) / 255.0}
    for name, array in modes.items():
        for q in (30, 75, 90):
            record(f"{name}-q{q}", svdcodec.encode(array, q))
            record(f"{name}-crop-q{q}", svdcodec.encode(np.ascontiguousarray(array[:200, :300]), q))
    for mode in ("L", "LA", "RGB", "RGBA"):
        record(f"pillow-{mode}", pillow(Image.fromarray(base).convert(mode)))
    record("pillow-I;16", pillow(Image.fromarray(grey16)))
    for shape in ((1, 1), (3, 5), (255, 257), (1, 300), (300, 1), (17, 9), (64, 64), (1000, 7)):
        noise = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
        small = np.asarray(Image.fromarray(base).resize(shape[::-1]))
        for q in (10, 75, 100):
            record(f"odd{shape}-noise-q{q}", svdcodec.encode(noise, q))
            record(f"odd{shape}-photo-q{q}", svdcodec.encode(small, q))
            record(f"odd{shape}-grey-q{q}", svdcodec.encode(small[..., 0].copy(), q))
    corner = np.ascontiguousarray(base[:128, :128])
    for name, data in (("plain", svdcodec.encode(base, 75, layout="plain")),
                       ("patch16", svdcodec.encode(base, 75, layout="patch16")),
                       ("rank", svdcodec.encode(base, 75, rank=20)),
                       ("energy", svdcodec.encode(base, 75, energy=0.99)),
                       ("max_error", svdcodec.encode(corner, 75, max_error=2)),
                       ("lossless", svdcodec.encode(base[:64, :64], max_error=0)),
                       ("target_psnr", svdcodec.encode(corner, target_psnr=35)),
                       ("max_bytes", svdcodec.encode(corner, max_bytes=5000)),
                       ("constant", svdcodec.encode(np.full((100, 120, 3), 77, np.uint8), 75))):
        record(name, data)
    decoded = svdcodec.decode(svdcodec.encode(base, 75))
    record("decoded-again", svdcodec.encode(decoded, 75))
    record("decoded-again-crop", svdcodec.encode(np.ascontiguousarray(decoded[:256, :256]), 75))
    record("tiled", svdcodec.encode(np.tile(photos[0], (4, 3, 1)), 75))
    args.out.write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} encodes -> {args.out} (svdcodec {svdcodec.__file__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
