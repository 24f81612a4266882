#!/usr/bin/env python3
"""Instructions per encode, counted by callgrind (valgrind): stable on a shared machine where
wall-clock times are not. docs/performance.md quotes it ("Encode stages").

    python benchmarks/encode_instructions.py IMAGE [...] [--crop] [--deblock] [--aq] [--quality Q]
        [--effort E] [-n N] [--tree DIR]

For each image, two processes run under `valgrind --tool=callgrind`: one encodes it 2 times
(imports, caches and first-call work), the other 2 + N times; the difference divided by N is
one warm `svdcodec.encode(array, Q)`. `--crop`: the 256 x 256 crop at (256, 256) instead of the
whole image. `--deblock`: `deblock=True` (without it `deblock=False`, whatever the default);
`--aq`: `aq=True` (format version 6's adaptive quantization); `--effort 2`: `effort=2`. `--tree DIR`: the svdcodec of that source tree (its C extension built in place)
instead of the installed one, to count two versions. One thread (SVDCODEC_THREADS=1,
OPENBLAS_NUM_THREADS=1: no BLAS thread spinning between calls) and a fixed PYTHONHASHSEED, so
that two runs of the same code count within about 0.1 %. valgrind runs the AVX2 copies of the
kernels (it has no AVX-512).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common

CHILD = """
import sys
import numpy as np
from PIL import Image
import svdcodec
pixels = np.asarray(Image.open(sys.argv[1]).convert("RGB"))
if sys.argv[4] == "crop":
    pixels = np.ascontiguousarray(pixels[256:512, 256:512])
options = sys.argv[5].split(",")
effort = 2 if "effort2" in options else 1
for _ in range(2 + int(sys.argv[2])):
    svdcodec.encode(pixels, float(sys.argv[3]), deblock="deblock" in options, aq="aq" in options,
                    effort=effort)
"""


def instructions(path: Path, encodes: int, quality: float, crop: bool, tree: Path | None,
                 deblock: bool = False, aq: bool = False, effort: int = 1) -> int:
    """Instructions of a process that encodes `path` 2 + `encodes` times."""
    return _common.callgrind_instructions(
        CHILD, [str(path), str(encodes), str(quality), "crop" if crop else "whole",
         ",".join(["plain"] + ["deblock"] * deblock + ["aq"] * aq + ["effort2"] * (effort == 2))],
        path,
        pythonpath=tree, isolated=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--crop", action="store_true", help="the 256 x 256 crop at (256, 256)")
    parser.add_argument("--deblock", action="store_true", help="encode with deblock=True")
    parser.add_argument("--aq", action="store_true", help="encode with aq=True")
    parser.add_argument("--effort", type=int, choices=(1, 2), default=1, help="encode's effort")
    parser.add_argument("--quality", type=float, default=75.0)
    parser.add_argument("-n", type=int, default=5, help="warm encodes counted (default 5)")
    parser.add_argument("--tree", type=Path, help="source tree whose svdcodec is counted")
    args = parser.parse_args(argv)
    for path in args.images:
        count = [instructions(path, n, args.quality, args.crop, args.tree, args.deblock, args.aq,
                              args.effort) for n in (0, args.n)]
        print(f"{path.name}{' crop' if args.crop else ''}{' deblock' if args.deblock else ''}"
              f"{' aq' if args.aq else ''}{' effort 2' if args.effort == 2 else ''}"
              f"\tq{args.quality:g}\t"
              f"{(count[1] - count[0]) / args.n / 1e6:.2f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
