#!/usr/bin/env python3
"""float32 versions of Kodak photos at max_error=0 with whichever svdcodec is on the path: the
bytes of each (integers 0...255 and k / 255 in RGB, k / 255 of the green channel) or "refused",
beside the uint8 photo's lossless file (docs/lossless.md, "float32 at max_error=0"). Every file
is checked to decode to the very array. Run it once per tree and compare.

    PYTHONPATH=TREE python studies/float32_lossless_study.py --corpus DIR [--limit N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.format import unpack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="directory of kodim*.png")
    parser.add_argument("--limit", type=int, default=5, help="photos (default 5)")
    args = parser.parse_args()
    print(f"svdcodec {svdcodec.__file__}")
    for path in sorted(args.corpus.glob("kodim*.png"))[:args.limit]:
        u8 = np.asarray(Image.open(path).convert("RGB"))
        row = [path.stem, f"uint8 {len(svdcodec.encode(u8, max_error=0))}"]
        for name, image in (("0..255", u8.astype(np.float32)),
                            ("k/255", u8.astype(np.float32) / 255),
                            ("green k/255", u8[..., 1].astype(np.float32) / 255)):
            start = time.process_time()
            try:
                data = svdcodec.encode(image, max_error=0)
            except svdcodec.SvdiError:
                row.append(f"{name} refused")
                continue
            assert np.array_equal(svdcodec.decode(data), image), (path.stem, name)
            rank = max(p.rank for p in unpack(data).planes)
            row.append(f"{name} {len(data)} (rank {rank}, {time.process_time() - start:.1f} s)")
        print(" | ".join(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
