"""Truncated SVD through the Gram matrix of the short side.

For an m x n matrix with n <= m, the eigenvectors of the n x n Gram matrix M^T M are the right
singular vectors and its eigenvalues the squared singular values. Forming it costs one BLAS
product, O(m n^2), instead of the O(m n min(m, n)) of a full SVD with its large U; the price is
that singular values below about sqrt(eps) * sigma_1 lose relative accuracy, and those are the
ones a lossy codec drops anyway (see spec/svdi.md, "Why the Gram matrix").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Factors:
    """sigma-scaled factors: M ~= P diag(1/sigma) Q^T with P = U Sigma and Q = V Sigma."""

    P: np.ndarray  # (m, r) float32
    sigma: np.ndarray  # (r,) float64, descending, positive
    Q: np.ndarray  # (n, r) float32

    @property
    def rank(self) -> int:
        return int(self.sigma.size)


def basis(gram: np.ndarray, max_rank: int) -> tuple[np.ndarray, np.ndarray]:
    """(sigma float64, unit basis float32 (k, r)) from a k x k Gram matrix: the leading
    min(max_rank, numerical rank) eigenpairs, each basis vector's sign fixed so that it sums to
    a non-negative value (deterministic output; the DC-like first patch component is positive)."""
    evals, evecs = np.linalg.eigh(gram.astype(np.float64))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    top = float(evals[0]) if evals.size else 0.0
    keep = int(np.count_nonzero(evals > max(top, 0.0) * 1e-10))
    r = min(max_rank, keep)
    sigma = np.sqrt(evals[:r])
    vectors = np.ascontiguousarray(evecs[:, :r], dtype=np.float32)
    vectors *= np.where(vectors.sum(axis=0) < 0, -1.0, 1.0).astype(np.float32)
    return sigma, vectors


#: Short side above which a whole-plane ("plain") matrix is factorized by a randomized range
#: finder: forming and diagonalizing a k x k Gram matrix costs O(m k^2 + k^3), minutes at k ~ 10^4.
RANDOMIZED_ABOVE = 2048
#: Components kept at most by the randomized route when the caller did not ask for a rank.
RANDOMIZED_RANK = 512
#: Oversampling and power iterations of the range finder (Halko, Martinsson and Tropp, 2011).
OVERSAMPLE = 16
POWER_ITERATIONS = 2


def randomized(a: np.ndarray, rank: int, seed: int = 0,
               power_iterations: int = POWER_ITERATIONS) -> Factors:
    """Leading `rank` triplets from a randomized range finder with power iterations.

    Cost O(m n k) for k = rank + OVERSAMPLE, all in BLAS products and two small QRs per
    iteration. Accuracy: see studies/gram_accuracy.py. Deterministic:
    the test matrix comes from a fixed seed.
    """
    m, n = a.shape
    k = min(rank + OVERSAMPLE, m, n)
    omega = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    q, _ = np.linalg.qr(a @ omega)
    for _ in range(power_iterations):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    b = q.T @ a  # (k, n): A ~= Q B
    sigma, vectors = basis(b @ b.T, rank)  # eigenvectors of B B^T: the left singular vectors of B
    P = q @ (vectors * sigma.astype(np.float32))  # U Sigma
    Q = b.T @ vectors  # V Sigma
    return Factors(np.ascontiguousarray(P), sigma, np.ascontiguousarray(Q))


#: Short side above which a requested rank or energy fraction that needs few components is
#: found by `randomized` instead of a full k x k eigendecomposition. The default (quality) mode
#: needs the whole spectrum and keeps the Gram route, so its bytes do not depend on this.
FEW_ABOVE = 512
#: Power iterations for a requested rank: with two, rank 200 on a 6 MP photo lost 0.1 dB PSNR
#: against the exact factors; with four, 0.01 dB.
RANK_POWER_ITERATIONS = 4
#: Widest range finder (components + OVERSAMPLE), as a fraction of the short side, for a
#: requested rank. CPU time against the Gram route on a 3072 x 2048 plane (one BLAS thread):
#: 0.09 / 0.18 / 0.44 / 1.13 at 64 / 128 / 240 / 496 components with four power iterations.
RANK_WIDTH = 1 / 8
#: The first pass looking for an energy fraction has this many components, each further pass
#: ENERGY_GROWTH times as many, with POWER_ITERATIONS: their accuracy only decides how many
#: components hold the fraction, which they then hold exactly.
ENERGY_FIRST = 64
#: Growth 4 rather than 2: a fraction that needs more than the widest pass wastes fewer passes
#: before the Gram route (64 and 256 components instead of 64, 128 and 256).
ENERGY_GROWTH = 4
#: Widest energy pass: with two power iterations, 0.21 / 0.54 of the Gram route's CPU time at
#: 256 / 512 components on the plane above.
ENERGY_WIDTH = 1 / 4


def _holds(sigma: np.ndarray, fraction: float, total: float) -> bool:
    """True if these components hold `fraction` of the energy `total`, with the tolerance the
    encoder's energy rank uses."""
    return float(np.sum(sigma.astype(np.float64) ** 2)) >= fraction * total * (1 - 1e-12)


def _energy_factors(a: np.ndarray, fraction: float, total: float, max_rank: int,
                    widest: float) -> Factors | None:
    """Factors holding `fraction` of the energy `total` (or all max_rank of them), from
    `randomized` passes of 64, 256... components while the range finder is at most `widest`
    wide; None if that does not suffice.

    The components of a pass span the subspace the range finder found, so the sum of their
    sigma^2 is exactly the energy their approximation keeps: the fraction holds as it does on
    the Gram route, at the price of sometimes a component or two more than the exact SVD's."""
    rank = min(ENERGY_FIRST, max_rank)
    while rank + OVERSAMPLE <= widest or rank == max_rank:
        f = randomized(a, rank)
        if rank == max_rank or f.rank < rank or _holds(f.sigma, fraction, total):
            return f  # all asked for, the whole numerical rank, or the fraction reached
        rank = min(ENERGY_GROWTH * rank, max_rank)
    return None


def factorize(matrix: np.ndarray, max_rank: int, requested: bool = False,
              energy: float | None = None) -> Factors:
    """The leading min(max_rank, numerical rank) singular triplets of `matrix`, sigma-scaled.

    Large matrices (short side > RANDOMIZED_ABOVE) go through `randomized`, keeping at most
    RANDOMIZED_RANK components unless the caller `requested` max_rank explicitly or asks for
    an `energy` fraction (then as many as hold it, up to max_rank). Above FEW_ABOVE, a
    requested rank or an energy fraction that needs few components (RANK_WIDTH, ENERGY_WIDTH)
    is found by `randomized` too: the Gram route would diagonalize the whole k x k matrix.
    """
    m, n = matrix.shape
    a = matrix.astype(np.float32, copy=False)
    short = min(m, n)
    if energy is not None and short > FEW_ABOVE:
        widest = math.inf if short > RANDOMIZED_ABOVE else ENERGY_WIDTH * short
        f = _energy_factors(a, energy, frobenius2(matrix), max_rank, widest)
        if f is not None:
            return f
    elif requested and FEW_ABOVE < short and max_rank + OVERSAMPLE <= RANK_WIDTH * short:
        return randomized(a, max_rank, power_iterations=RANK_POWER_ITERATIONS)
    if short > RANDOMIZED_ABOVE:
        return randomized(a, max_rank if requested else min(max_rank, RANDOMIZED_RANK))
    tall = n <= m
    sigma, vectors = basis((a.T @ a) if tall else (a @ a.T), max_rank)
    projected = (a @ vectors) if tall else (a.T @ vectors)
    scaled = vectors * sigma.astype(np.float32)
    P, Q = (projected, scaled) if tall else (scaled, projected)
    return Factors(np.ascontiguousarray(P), sigma, np.ascontiguousarray(Q))


def energy(matrix: np.ndarray) -> float:
    """Squared Frobenius norm, the sum of all sigma^2."""
    a = matrix.astype(np.float64, copy=False).ravel()
    return float(a @ a)


def tiles_exactly(small: int, height: int, width: int) -> bool:
    """Whether every small x small patch of a plane is a quarter of one patch twice as big (the
    plane tiles exactly with the big patches), so that `sub_gram` applies."""
    return height % (2 * small) == 0 and width % (2 * small) == 0


def sub_gram(gram: np.ndarray, small: int) -> np.ndarray:
    """The Gram matrix of the small patches from that of the patches twice as big that they
    tile: each small patch is a quarter of one big patch, so its Gram matrix is the sum of the
    four quarters' diagonal blocks (one GEMM pass over the plane instead of two)."""
    out = np.zeros((small * small, small * small))
    for rows, columns in quarter_indices(small):
        out += gram[rows, columns]
    return out


@functools.cache
def quarter_indices(small: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`np.ix_` of each quarter's entries in a big patch's Gram matrix, in `sub_gram`'s order
    (made once per patch size: a small image's encode is mostly such per-call work)."""
    big = 2 * small
    cells = np.arange(small)
    out = []
    for qy in (0, small):
        for qx in (0, small):
            index = ((qy + cells)[:, None] * big + qx + cells[None, :]).reshape(-1)
            rows, columns = np.ix_(index, index)
            rows.flags.writeable = columns.flags.writeable = False
            out.append((rows, columns))
    return out


frobenius2 = energy  # the name `factorize` uses, where its argument `energy` shadows this one
