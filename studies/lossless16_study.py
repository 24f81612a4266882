#!/usr/bin/env python3
"""Lossless 16-bit data that does not compress: how large are the files against the raw
samples, and which residual layout brings them down (format version 7's wrapped blocks)?

    python studies/lossless16_study.py --corpus DIR [--bounds] [--candidates]

Cases: uniform uint16 and int16 noise (512 x 512, and 256 x 256 with 2 and 3 channels), a
sensor-like frame (a smooth field plus Gaussian noise of sigma 4000), a CT-like phantom of 12
bits plus noise of sigma 20 and 2, uniform 12-bit noise in uint16, and benchmarks/lossless.py's
16-bit set (the first 4 photos of DIR: luma x 16 plus noise of sigma 2, and pydicom's CT_small
and MR_small where installed). Fixed seeds.

Default: the size of `svdcodec.encode(image, max_error=E)` against the raw samples, E = 0 (and
1, 2, 4 with --bounds), every file checked against the bound. --candidates: the residual grids
q = x - x_hat of the layer at quality 90 and of no layer (rank 0) coded (zstd 19, the predictor
of fewest bytes) as today's narrowest integers, byte-shuffled int32 (Blosc's Shuffle), an
offset form (q - min as uint16 where the range allows, else shuffled) and int16 modulo 2^16.
The answers are in docs/lossless.md.

Conclusion (2026-12-05): the 17-bit lossless residual of 16-bit samples needs 16 bits to be no
larger than raw, and the layer of noise must go (rank 0): wrapped int16 and the offset form
cost nothing on noise at rank 0 (int32: +24.6 %), shuffled int32 +6.5 % on int16 noise; only the
wrapped form always fits 16 bits, so format version 7 adds it (uniform uint16 lossless: 1.30 ->
1.0003 x raw). Byte shuffling with no layer is a separate gain on 12-bit data (kodim01 x16+noise
0.742 -> 0.578 x raw) that loses on others (CT phantom + N(0, 2): +9 %), left for later.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lossless import medical_images  # benchmarks/lossless.py's 16-bit set

import svdcodec
from svdcodec.codec.coding import HORIZONTAL, NONE, PLANAR, VERTICAL, narrow, predict
from svdcodec.encoder import _encode  # the layer alone, before any residual
from svdcodec.encoder.residual import exact_layer
from svdcodec.format import END


def cases(corpus: Path) -> Iterator[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    yield "uniform u16 512x512", rng.integers(0, 65536, (512, 512), dtype=np.uint16)
    yield "uniform i16 512x512", rng.integers(-32768, 32768, (512, 512), dtype=np.int16)
    yield "uniform u16 256x256x3", rng.integers(0, 65536, (256, 256, 3), dtype=np.uint16)
    yield "uniform u16 256x256x2", rng.integers(0, 65536, (256, 256, 2), dtype=np.uint16)
    yy, xx = np.mgrid[0:512, 0:512]
    smooth = 20000 + 15000 * np.sin(xx / 40.0) * np.cos(yy / 55.0)
    yield "sensor smooth+N(0,4000) u16", np.clip(np.rint(
        smooth + rng.normal(0, 4000, smooth.shape)), 0, 65535).astype(np.uint16)
    ct = np.where(np.hypot(yy - 256, xx - 256) < 200, 1040, 24) \
        + np.where(np.hypot(yy - 200, xx - 300) < 40, 600, 0)
    for sigma in (20, 2):
        yield f"CT phantom 12-bit + N(0,{sigma})", np.clip(np.rint(
            ct + rng.normal(0, sigma, ct.shape)), 0, 4095).astype(np.uint16)
    yield "12-bit uniform in u16", rng.integers(0, 4096, (512, 512), dtype=np.uint16)
    yield from medical_images(sorted(corpus.glob("*.png")), 4)


def sizes(corpus: Path, bounds: list[int]) -> None:
    for name, image in cases(corpus):
        for e in bounds:
            data = svdcodec.encode(image, max_error=e)
            back = svdcodec.decode(data).reshape(image.shape).astype(np.int64)
            assert np.abs(back - image.astype(np.int64)).max() <= e, (name, e)
            print(f"{name:30s} E={e} {len(data):9d} raw {image.nbytes:9d} "
                  f"{100 * (len(data) / image.nbytes - 1):+7.2f} %", flush=True)


def zstd_bytes(raw: bytes) -> int:
    return len(zstandard.ZstdCompressor(level=19).compress(raw))


def narrowest(r: np.ndarray) -> bytes:
    try:
        return narrow(r).tobytes()
    except OverflowError:
        return r.astype("<i8").tobytes()


def shuffled(r: np.ndarray) -> bytes:
    return r.astype("<i4").view(np.uint8).reshape(-1, 4).T.copy().tobytes()


def offset(r: np.ndarray) -> bytes:
    lo, hi = int(r.min()), int(r.max())
    return (r - lo).astype("<u2").tobytes() if hi - lo <= 65535 else shuffled(r)


def wrapped(r: np.ndarray) -> bytes:
    return r.astype(np.int64).astype("<u2").tobytes()  # the low 16 bits: modulo 2^16


LAYOUTS = {"today": narrowest, "shuffle": shuffled, "offset": offset, "wrap": wrapped}


def candidates(corpus: Path) -> None:
    for name, image in cases(corpus):
        pixels = image if image.ndim == 3 else image[..., None]
        for label, rank in (("q90", None), ("rank0", 0)):
            layer = _encode(pixels, 90, rank, None, None, None, "auto")
            decoded = svdcodec.decode(exact_layer(layer) + END).reshape(pixels.shape)
            total = dict.fromkeys(LAYOUTS, 0)
            for c in range(pixels.shape[2]):
                q = pixels[..., c].astype(np.int64) - decoded[..., c].astype(np.int64)
                for key, layout in LAYOUTS.items():
                    total[key] += min(zstd_bytes(layout(predict(q[None], p)[0]))
                                      for p in (NONE, HORIZONTAL, VERTICAL, PLANAR))
            print(f"{name:30s} {label:6s} layer {len(layer):7d} raw {pixels.nbytes:7d} " + " ".join(
                f"{k} {v:7d} ({100 * (v + len(layer)) / pixels.nbytes - 100:+.1f} %)"
                for k, v in total.items()), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="Kodak PNGs")
    parser.add_argument("--bounds", action="store_true", help="also max_error 1, 2, 4")
    parser.add_argument("--candidates", action="store_true", help="the residual layouts")
    args = parser.parse_args()
    if args.candidates:
        candidates(args.corpus)
    else:
        sizes(args.corpus, [0, 1, 2, 4] if args.bounds else [0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
