"""How orthonormal are the factors read_factors returns? max |U^T U - I| and max |V^T V - I|
of the dequantized factors, per quality, on the greyscale Kodak images (plain and the patch8
layout) and on a tall-skinny time x sensors float32 matrix, as it is and centred by the
encoder (centre=True: a PCA, the means stored in the file).

    python benchmarks/factor_orthonormality.py [--corpus DIR]

The stored U and V are (U Sigma) / step and (V Sigma) / step rounded to integers, so each
dequantized entry of U is off by at most step / (2 sigma_k): the small components, whose sigma
is near the step, are the least orthonormal. Printed per quality: the worst and the median
image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec


def deviation(factor: np.ndarray) -> float:
    """max |F^T F - I| over the columns of F (m, r)."""
    f = factor.astype(np.float64)
    return float(np.max(np.abs(f.T @ f - np.eye(f.shape[1])))) if f.shape[1] else 0.0


def sensors(rows: int = 20000, columns: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 200, rows)[:, None]
    sources = np.sin(t * rng.uniform(0.1, 5.0, 12)) * rng.uniform(0.2, 5.0, 12)
    return (sources @ rng.standard_normal((12, columns))
            + 0.05 * rng.standard_normal((rows, columns))).astype(np.float32)


#: Leading components measured on their own (the ones a PCA user looks at).
LEADING = 16


def measure(array: np.ndarray, quality: int, layout: str, rank: int | None = None,
            centre: bool = False) -> tuple[float, float, float, int]:
    """max |U^T U - I| over all kept components and over the LEADING first, max |V^T V - I|,
    and the rank."""
    (f,) = svdcodec.read_factors(svdcodec.encode(array, quality, layout=layout, rank=rank,
                                                 centre=centre))
    return deviation(f.U), deviation(f.U[:, :LEADING]), deviation(f.Vt.T), f.S.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of PNG photos (without it, only "
                        "the time x sensors matrix is measured)")
    parser.add_argument("--qualities", type=int, nargs="+", default=[30, 50, 75, 90, 100])
    args = parser.parse_args()
    x = sensors()
    for name, rank, centre in (("", None, False), (", centre=True (a PCA)", None, True),
                               (", centre=True, rank 12", 12, True)):
        print(f"time x sensors float32 {x.shape}{name}, plain layout\n quality   U         "
              f"U[:{LEADING}]    V         rank")
        for q in args.qualities:
            u, lead, v, r = measure(x, q, "plain", rank, centre)
            print(f" {q:7d}   {u:.2e}  {lead:.2e}  {v:.2e}  {r}")
    if args.corpus is None:
        return
    greys = [np.asarray(Image.open(p).convert("L")) for p in sorted(args.corpus.glob("*.png"))]
    print(f"{len(greys)} greyscale images from {args.corpus}; max |F^T F - I| of the "
          f"dequantized factors, all kept components and the first {LEADING} (worst / median "
          "image; mean rank)")
    for layout in ("plain", "patch8"):
        print(f"\nlayout {layout}\n quality   U worst  U median  U[:{LEADING}] worst  "
              f"U[:{LEADING}] median  V worst  V median   rank")
        for q in args.qualities:
            rows = np.array([measure(g, q, layout) for g in greys])
            print(f" {q:7d}   {rows[:, 0].max():7.4f}  {np.median(rows[:, 0]):8.4f}  "
                  f"{rows[:, 1].max():13.4f}  {np.median(rows[:, 1]):14.4f}  "
                  f"{rows[:, 2].max():7.4f}  {np.median(rows[:, 2]):8.4f}  "
                  f"{rows[:, 3].mean():5.1f}")


if __name__ == "__main__":
    main()
