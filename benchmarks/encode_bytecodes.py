#!/usr/bin/env python3
"""Python bytecodes executed by one warm encode of images, by function: where the interpreter's
share of a small encode goes (docs/performance.md quotes it).

    python benchmarks/encode_bytecodes.py IMAGE [...] [--crop] [--quality Q] [--no-deblock]
        [--top N]

Each image is encoded 5 times (imports, caches and first-call work), then once under the
`sys.settrace` opcode tracer of decode_bytecodes.py, in every thread. `--crop`: the 256 x 256
crop at (256, 256), as encode_instructions.py cuts it. `svdcodec.encode(array, Q)` with the
default options (deblock=True; `--no-deblock` for False). Set SVDCODEC_THREADS=1 for the count
of a one-thread encode. Counts, not times: what a change in the Python code saves, independent
of the machine's load (encode_instructions.py says what the interpreter costs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from decode_bytecodes import count_bytecodes
from PIL import Image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--crop", action="store_true", help="the 256 x 256 crop at (256, 256)")
    parser.add_argument("--quality", type=float, default=75.0)
    parser.add_argument("--no-deblock", action="store_true", help="encode with deblock=False")
    parser.add_argument("--top", type=int, default=15, help="functions listed (default 15)")
    args = parser.parse_args(argv)
    import svdcodec

    for path in args.images:
        pixels = np.asarray(Image.open(path).convert("RGB"))
        if args.crop:
            pixels = np.ascontiguousarray(pixels[256:512, 256:512])

        def run() -> bytes:
            return svdcodec.encode(pixels, args.quality, deblock=not args.no_deblock)
        for _ in range(5):
            run()
        counts = count_bytecodes(run)
        print(f"{path.name}{' crop' if args.crop else ''}\t{sum(counts.values())} bytecodes "
              f"in {len(counts)} functions")
        for (name, line, function), n in counts.most_common(args.top):
            print(f"  {n:7d}  {name}:{line} {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
