#!/usr/bin/env python3
"""`_kernels.exact_product` at each kernel family the CPU runs (`product_kernel`: 0 plain C, 1
AVX2 with FMA, 2 on AVX-512 CPUs: level 1's row kernels for 16 columns and multiples of 32, an
AVX-512 loop for other counts), timed on the same integers in one process, for the patch
layouts' column counts (4, 16, 64, 256) and one no layout has, adapted planes (multipliers,
format version 6) and not, at shares of non-zero integers in the left factor; the outputs are
compared (exits 1 if any differs). What chose the family each column count takes on an
AVX-512 CPU (docs/performance.md, "The exact product on AVX-512 CPUs").

    python benchmarks/product_kernels.py [--rounds 5]

Printed: microseconds per call, the best of --rounds (each round as many calls as make about
3 M multiply-adds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svdcodec.runtime import kernels

#: (columns, rank, rows): patch 4's luma and chroma of a Kodak photo, patch 8's, patch 16's,
#: patch 2's, and a count no patch layout has (the generic loops of each family).
SHAPES = ((16, 16, 4096), (16, 10, 1024), (64, 30, 6144), (64, 8, 1536), (256, 60, 1536),
          (4, 4, 20000), (100, 50, 3000))
SHARES = (0.1, 0.3, 0.7)


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--rounds", type=int, default=5)
    args = cli.parse_args()
    compiled = kernels.get()
    if compiled is None:
        print("the C kernels are not built: nothing to compare")
        return 1
    best_level = compiled.product_kernel()
    levels = list(range(best_level, -1, -1))
    print(f"$ python benchmarks/product_kernels.py --rounds {args.rounds}")
    print("microseconds per exact_product call, by kernel family (product_kernel level):")
    print("| columns × rank × rows | adapted | non-zero share | "
          + " | ".join(f"level {level}" for level in levels) + " |")
    print("|---|---|---|" + "---|" * len(levels))
    rng = np.random.default_rng(1)
    same = True
    try:
        for (cols, rank, rows), adapted, share in (
                (shape, adapted, share) for shape in SHAPES for adapted in (False, True)
                for share in SHARES):
            left = np.round(rng.laplace(0, 3, (rows, rank))).astype(np.float32)
            left[rng.random((rows, rank)) > share] = 0
            right = np.round(rng.normal(0, 300, (cols, rank))).astype(np.float32)
            weights = np.round(rng.uniform(1e6, 1e8, rank))
            multipliers = rng.integers(8, 40, rows).astype(np.int32) if adapted else None
            out = np.empty((rows, cols), np.float32)
            calls = max(3, int(3e6 / (rows * cols * rank)))
            times, outputs = [], []
            for level in levels:
                compiled.product_kernel(level)
                runs = []
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    for _ in range(calls):
                        compiled.exact_product(left, weights, right, 30, None, 1e9, out,
                                               multipliers)
                    runs.append((time.perf_counter() - start) / calls)
                times.append(min(runs))
                outputs.append(out.tobytes())
            same &= all(o == outputs[0] for o in outputs)
            print(f"| {cols} × {rank} × {rows} | {'yes' if adapted else 'no'} | {share:g} | "
                  + " | ".join(f"{t * 1e6:.1f}" for t in times) + " |")
    finally:
        compiled.product_kernel(best_level)
    print("same bits at every level" if same else "OUTPUTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
