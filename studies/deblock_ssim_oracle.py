"""Would a deblocking strength chosen by luma SSIM beat the encoder's least-squared-error choice?

    python studies/deblock_ssim_oracle.py --corpus DIR [kodim01 kodim03 ...]

For Kodak photos at qualities 15, 30, 50 and 75 (defaults otherwise): each file's deblocking
strengths (PLAN bytes 24-26 of every plane, spec §3) replaced by each candidate, the same
multiples of the plane's step for every plane (none; tuning.DEBLOCK_STRENGTHS' four; four
stronger), and decoded; luma SSIM (dB, svdcodec.evaluation.metrics) and RGB PSNR of each beside
the encoder's own choice. The factor bytes are the same in every variant, so a better SSIM
would be free (docs/design-notes.md, "Tried and not kept").
"""

from __future__ import annotations

import argparse
import struct
import zlib

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.evaluation.metrics import psnr, ssim, ssim_db
from svdcodec.format import SIGNATURE, unpack

#: (alpha, beta, tc) as multiples of the plane's step; (0, 0, 0): no filter.
CANDIDATES = [(0, 0, 0), (2, 1, 0.1), (4, 2, 0.1), (2, 1, 0.2), (4, 2, 0.2), (4, 2, 0.3),
              (6, 3, 0.3), (4, 2, 0.4), (6, 3, 0.5)]
QUALITIES = (15, 30, 50, 75)
#: Where a version 4-7 PLAN payload holds alpha, beta and tc.
DEBLOCK_BYTES = slice(24, 27)


def with_strengths(data: bytes, strengths: list[tuple[int, int, int]]) -> bytes:
    """The file with plane i's (alpha, beta, tc) set to strengths[i], the CRCs recomputed."""
    out, at, plane = [data[:len(SIGNATURE)]], len(SIGNATURE), 0
    while at < len(data):
        length, kind = struct.unpack_from(">I4s", data, at)
        payload = bytearray(data[at + 8:at + 8 + length])
        if kind == b"PLAN":
            payload[DEBLOCK_BYTES] = bytes(strengths[plane])
            plane += 1
        out.append(struct.pack(">I", length) + kind + payload
                   + struct.pack(">I", zlib.crc32(kind + payload)))
        at += 12 + length
    return b"".join(out)


def levels(multiples: tuple[float, float, float], step: float) -> tuple[int, int, int]:
    """A candidate's integers for a plane of this step (1..255 each), or no filter."""
    if not multiples[0]:
        return (0, 0, 0)
    a, b, t = (min(255, max(1, int(k * step))) for k in multiples)
    return (a, b, t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="directory of kodim01..24.png")
    parser.add_argument("images", nargs="*", help="image names (default kodim01..08)")
    args = parser.parse_args()
    for name in args.images or [f"kodim{i:02d}" for i in range(1, 9)]:
        image = np.asarray(Image.open(f"{args.corpus}/{name}.png").convert("RGB"))
        for quality in QUALITIES:
            data = svdcodec.encode(image, quality=quality)
            steps = [p.step for p in unpack(data).planes]
            decoded = svdcodec.decode(data)
            own = ssim_db(ssim(image, decoded)), psnr(image, decoded)
            rows = []
            for multiples in CANDIDATES:
                varied = svdcodec.decode(with_strengths(data, [levels(multiples, s)
                                                               for s in steps]))
                rows.append((multiples, ssim_db(ssim(image, varied)), psnr(image, varied)))
            best = max(rows, key=lambda row: row[1])
            print(f"{name} q{quality} {len(data)} B: encoder's choice {own[0]:.3f} dB SSIM, "
                  f"{own[1]:.3f} dB PSNR; best by SSIM {best[0]} {best[1]:.3f} / {best[2]:.3f}; "
                  + " ".join(f"{m}:{s:.2f}" for m, s, _ in rows), flush=True)


if __name__ == "__main__":
    main()
