"""Measure the Gram-matrix route to the SVD against LAPACK's SVD: time and accuracy.

Answers "why do people take the SVD of A^T A instead of A?" with numbers, for the two matrix
layouts of .svdi: a whole 8-bit plane ("plain") and its 8x8 patch matrix ("patch8").

    python tools/gram_accuracy.py [IMAGE ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from svdcodec.factorization import factorize  # noqa: E402
from svdcodec.planes import to_matrix  # noqa: E402


def _timed(fn, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def report(name: str, matrix: np.ndarray, ranks: tuple[int, ...]) -> None:
    exact, t_svd = _timed(np.linalg.svd, matrix.astype(np.float64), False)
    f, t_gram = _timed(factorize, matrix.astype(np.float32), min(matrix.shape))
    s = exact[1]
    approx = np.zeros_like(s)
    approx[:f.rank] = f.sigma
    rel = np.abs(approx - s) / s[0]
    print(f"{name}: {matrix.shape[0]}x{matrix.shape[1]}  LAPACK SVD (float64) {t_svd:.3f} s, "
          f"Gram+eigh (float32 product) {t_gram:.3f} s, speed-up {t_svd / t_gram:.1f}x")
    for r in ranks:
        if r > s.size:
            continue
        k = min(r, f.rank)
        u_err = 0.0
        if k:
            # subspace agreement of the leading r right singular vectors
            vt = exact[2][:k]
            v = (f.Q[:, :k] / f.sigma[:k].astype(np.float32)).astype(np.float64)
            u_err = float(np.linalg.norm(v - vt.T @ (vt @ v)) / np.sqrt(k))
        print(f"   sigma_{r:<4} exact {s[r - 1]:12.3f}  gram {approx[r - 1]:12.3f}  "
              f"|error|/sigma_1 {rel[r - 1]:.1e}  V_r subspace error {u_err:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parent.parent.parent / "shared/corpus/kodak/kodim23.png"
    parser.add_argument("images", nargs="*", default=[str(default)])
    args = parser.parse_args()
    for path in args.images:
        luma = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        report(f"{Path(path).name} plain", luma, (1, 10, 50, 100, 300, 500))
        report(f"{Path(path).name} patch8", to_matrix(luma, 1, 8), (1, 8, 16, 32, 64))


if __name__ == "__main__":
    main()
