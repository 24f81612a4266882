#!/usr/bin/env python3
"""The two exact products of a band (spec §5.1) on the compiled path, timed on the same
integers in one process: `_kernels.exact_product` (a loop over each row's non-zero integers)
and BLAS in binary64 (`codec.exact.exact_product`, from a binary64 copy of B^T made once), for
a range of columns n (the patch's pixels), ranks r and shares of non-zero integers in the
band's left factor; their outputs are compared (exits 1 if any differs). What sets
`decoder.plane.BLAS_PRODUCT_*` (docs/performance.md, "The exact product of dense factors").

    OPENBLAS_NUM_THREADS=1 python benchmarks/exact_product.py [--samples 22] [--rounds 3]

Random integers -3..3 in A and B; each band has 2^samples output samples (rows = that / n).
Printed: kernel time / BLAS time, the best of --rounds each.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svdcodec.codec import exact
from svdcodec.runtime import kernels

SHAPES = ((64, 64), (256, 64), (256, 256), (1024, 64), (1024, 256), (1024, 1024))
SHARES = (0.1, 0.3, 0.5, 0.6, 0.8, 1.0)


def best(call: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--samples", type=int, default=22, help="log2 of a band's output samples")
    cli.add_argument("--rounds", type=int, default=3)
    args = cli.parse_args()
    compiled = kernels.get()
    if compiled is None:
        print("the C kernels are not built: nothing to compare")
        return 1
    print(f"$ python benchmarks/exact_product.py --samples {args.samples} --rounds {args.rounds}")
    print("kernel time / BLAS time for one band (columns n x rank r), by share of non-zero "
          "integers in A:")
    print("| n × r | " + " | ".join(f"{s:g}" for s in SHARES) + " |")
    print("|---|" + "---|" * len(SHARES))
    rng = np.random.default_rng(1)
    same = True
    for n, r in SHAPES:
        rows = max(1, (1 << args.samples) // n)
        B = rng.integers(-3, 4, (n, r)).astype(np.float32)
        sigma = np.sort(rng.uniform(1, 100, r))[::-1].astype(np.float32)
        shift = 10
        weights, _ = compiled.exact_weights(sigma, 1.0, shift)
        bt64 = B.T.astype(np.float64)
        cells = []
        for share in SHARES:
            A = (rng.integers(-3, 4, (rows, r)) * (rng.random((rows, r)) < share)
                 ).astype(np.float32)
            out = np.empty((rows, n), np.float32)
            t_kernel = best(partial(compiled.exact_product, A, weights, B, shift, None,
                                    1 << 30, out, None), args.rounds)
            t_blas = best(partial(exact.exact_product, A, weights, bt64, shift, None),
                          args.rounds)
            same &= bool(np.array_equal(exact.exact_product(A, weights, bt64, shift, None), out))
            cells.append(f"{t_kernel / t_blas:.2f}")
        print(f"| {n} × {r} | " + " | ".join(cells) + " |", flush=True)
    print("outputs identical" if same else "OUTPUTS DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
