"""The two routes to the truncated SVD: Gram/eigh and the randomized range finder."""

from __future__ import annotations

import numpy as np
import pytest

import svdcodec
from svdcodec.codec import factorize as factorization


def low_rank(m: int, n: int, r: int, noise: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.normal(size=(m, r)))
    v, _ = np.linalg.qr(rng.normal(size=(n, r)))
    s = 1000.0 * 0.8 ** np.arange(r)
    return ((u * s) @ v.T + noise * rng.normal(size=(m, n))).astype(np.float32)


@pytest.mark.parametrize("shape", [(300, 40), (40, 300), (120, 120)])
def test_gram_route_matches_lapack(shape: tuple[int, int]) -> None:
    a = low_rank(*shape, r=12, noise=0.01)
    f = factorization.factorize(a, 10)
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(f.sigma, s[:10], rtol=1e-4)
    approx = (f.P / f.sigma.astype(np.float32)) @ f.Q.T
    assert np.sum((a - approx) ** 2) <= np.sum(s[10:] ** 2) * 1.001 + 1e-3


def test_randomized_route_is_close_to_optimal() -> None:
    a = low_rank(900, 700, r=40, noise=0.5)
    f = factorization.randomized(a, 30)
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    # components well above the noise are accurate; those in the noise floor less so
    np.testing.assert_allclose(f.sigma[:12], s[:12], rtol=1e-3)
    np.testing.assert_allclose(f.sigma, s[:30], rtol=0.15)
    approx = (f.P / f.sigma.astype(np.float32)) @ f.Q.T
    assert np.sum((a - approx) ** 2, dtype=np.float64) <= np.sum(s[30:] ** 2) * 1.05
    again = factorization.randomized(a, 30)
    np.testing.assert_array_equal(f.sigma, again.sigma)  # deterministic


def test_large_plain_planes_take_the_randomized_route(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = factorization.randomized

    def spy(a: np.ndarray, rank: int, seed: int = 0) -> factorization.Factors:
        calls.append(rank)
        return original(a, rank, seed)
    monkeypatch.setattr(factorization, "randomized", spy)
    monkeypatch.setattr(factorization, "RANDOMIZED_ABOVE", 64)
    monkeypatch.setattr(factorization, "RANDOMIZED_RANK", 20)
    img = np.clip(low_rank(100, 130, r=8, noise=1.0) / 40 + 128, 0, 255).astype(np.uint8)
    out = svdcodec.decode(svdcodec.encode(img, layout="plain", quality=90))
    assert calls == [20] and out.shape == img.shape
    svdcodec.encode(img, rank=50, quality=90)
    assert calls == [20, 50]  # an explicit rank is honoured
