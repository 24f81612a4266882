#!/usr/bin/env python3
"""The colour output's row kernels (csrc/kernels.c, `colour_rows`): plain C passes, AVX2, AVX-512
(those this CPU runs), timed on the same band in one process, rounds interleaved; the bytes of
every level are compared with the plain passes' (exits 1 if any differs).

    python benchmarks/colour_rows.py [--height 512] [--width 768] [--rounds 200]

Each call is `store_rgb` of a whole Y' band in patches (8 and 4) with half-size chroma planes
into RGB (3 channels) and Pillow's RGBX (pad=255): the work of the direct decode path. Random
samples: the kernels do the same operations on any value. One thread.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svdcodec.codec.colour import YCC_MULTIPLIERS
from svdcodec.runtime import kernels

NAMES = ("plain", "avx2", "avx512")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args(argv)
    h, w = args.height - args.height % 8, args.width - args.width % 8
    compiled = kernels.get()
    k = YCC_MULTIPLIERS
    if compiled is None:
        raise SystemExit("the C extension is not built")
    best = compiled.colour_rows()
    rng = np.random.default_rng(0)
    cb, cr = (rng.uniform(-60, 60, (h // 2, w // 2)).astype(np.float32) for _ in range(2))
    print(f"$ python benchmarks/colour_rows.py --height {h} --width {w} --rounds {args.rounds}")
    print(f"store_rgb of a {w}x{h} band, microseconds per call (min / median of "
          f"{args.rounds}); levels this CPU runs: {', '.join(NAMES[:best + 1])}")
    same = True
    try:
        for patch in (8, 4):
            per_row = w // patch
            matrix = rng.uniform(-10, 265, (h // patch * per_row, patch * patch)
                                 ).astype(np.float32)
            for channels, pad in ((3, -1), (4, 255)):
                outs = [np.zeros((h, w, channels), np.uint8) for _ in range(best + 1)]
                times: list[list[float]] = [[] for _ in range(best + 1)]
                for _ in range(args.rounds):
                    for level in range(best + 1):
                        compiled.colour_rows(level)
                        t = time.perf_counter()
                        compiled.store_rgb(matrix, outs[level], 0, h, cb, cr, k, patch,
                                           per_row, pad=pad)
                        times[level].append(time.perf_counter() - t)
                same &= all(np.array_equal(o, outs[0]) for o in outs)
                cells = [f"{NAMES[level]} {min(t) * 1e6:.0f} / {statistics.median(t) * 1e6:.0f}"
                         for level, t in enumerate(times)]
                print(f"patch {patch}, {channels} channels: " + ", ".join(cells))
    finally:
        compiled.colour_rows(best)
    print("bytes identical at every level" if same else "BYTES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
