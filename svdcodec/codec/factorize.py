"""Truncated SVD through the Gram matrix of the short side.

For an m x n matrix with n <= m, the eigenvectors of the n x n Gram matrix M^T M are the right
singular vectors and its eigenvalues the squared singular values. Forming it costs one BLAS
product, O(m n^2), instead of the O(m n min(m, n)) of a full SVD with its large U; the price is
that singular values below about sqrt(eps) * sigma_1 lose relative accuracy, and those are the
ones a lossy codec drops anyway (see spec/svdi.md, "Why the Gram matrix").
"""

from __future__ import annotations

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


def randomized(a: np.ndarray, rank: int, seed: int = 0) -> Factors:
    """Leading `rank` triplets from a randomized range finder with power iterations.

    Cost O(m n k) for k = rank + OVERSAMPLE, all in BLAS products and two small QRs per
    iteration. Accuracy: see studies/gram_accuracy.py. Deterministic:
    the test matrix comes from a fixed seed.
    """
    m, n = a.shape
    k = min(rank + OVERSAMPLE, m, n)
    omega = np.random.default_rng(seed).standard_normal((n, k)).astype(np.float32)
    q, _ = np.linalg.qr(a @ omega)
    for _ in range(POWER_ITERATIONS):
        z, _ = np.linalg.qr(a.T @ q)
        q, _ = np.linalg.qr(a @ z)
    b = q.T @ a  # (k, n): A ~= Q B
    sigma, vectors = basis(b @ b.T, rank)  # eigenvectors of B B^T: the left singular vectors of B
    P = q @ (vectors * sigma.astype(np.float32))  # U Sigma
    Q = b.T @ vectors  # V Sigma
    return Factors(np.ascontiguousarray(P), sigma, np.ascontiguousarray(Q))


def factorize(matrix: np.ndarray, max_rank: int, requested: bool = False) -> Factors:
    """The leading min(max_rank, numerical rank) singular triplets of `matrix`, sigma-scaled.

    Large matrices (short side > RANDOMIZED_ABOVE) go through `randomized`, keeping at most
    RANDOMIZED_RANK components unless the caller `requested` max_rank explicitly.
    """
    m, n = matrix.shape
    a = matrix.astype(np.float32, copy=False)
    if min(m, n) > RANDOMIZED_ABOVE:
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
    big = 2 * small
    out = np.zeros((small * small, small * small))
    cells = np.arange(small)
    for qy in (0, small):
        for qx in (0, small):
            index = ((qy + cells)[:, None] * big + qx + cells[None, :]).reshape(-1)
            out += gram[np.ix_(index, index)]
    return out
