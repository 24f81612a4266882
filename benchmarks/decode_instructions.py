#!/usr/bin/env python3
"""Instructions per decode of .svdi files, counted by callgrind (valgrind): stable on a shared
machine where wall-clock times are not. docs/performance.md quotes it.

    python benchmarks/decode_instructions.py FILE.svdi [...] [--via api|pillow|both] [-n N]

For each file, two processes run under `valgrind --tool=callgrind`: one decodes the file 3
times (imports, caches and first-call work), the other 3 + N times; the difference divided by
N is one warm decode. `api` is `svdcodec.decode(data)`, `pillow` is
`Image.open(BytesIO(data)).load()`. One thread (SVDCODEC_THREADS=1, OPENBLAS_NUM_THREADS=1)
and a fixed PYTHONHASHSEED, so that two runs of the same code count within about 0.1 %.
valgrind runs the AVX2 copies of the kernels (it has no AVX-512).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import _common

CHILD = """
import sys
sys.path.insert(0, sys.argv[4])
import _common
decode = _common.decoding(open(sys.argv[1], "rb").read(), sys.argv[3])
for _ in range(3 + int(sys.argv[2])):
    decode()
"""


def instructions(path: Path, decodes: int, via: str) -> int:
    """Instructions of a process that decodes `path` 3 + `decodes` times."""
    return _common.callgrind_instructions(
        CHILD, [str(path), str(decodes), via, str(_common.BENCHMARKS)], path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_decode_arguments(parser)
    parser.add_argument("-n", type=int, default=8, help="warm decodes counted (default 8)")
    args = parser.parse_args(argv)
    for path in args.files:
        for via in _common.decode_vias(args.via):
            per = (instructions(path, args.n, via) - instructions(path, 0, via)) / args.n
            print(f"{path.name}\t{via}\t{per / 1e6:.2f} M")
    return 0


if __name__ == "__main__":
    sys.exit(main())
