"""The two routes to the truncated SVD: Gram/eigh and the randomized range finder."""

from __future__ import annotations

import io

import numpy as np
import pytest

import svdcodec
from svdcodec import format as container
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


# ----------------------------------------------------------------------------- issue #14, 10


def spy_routes(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """Count the calls of each route: randomized (with its rank) and the Gram route's eigh."""
    calls: dict[str, list[int]] = {"randomized": [], "basis": []}
    randomized, basis = factorization.randomized, factorization.basis

    def spy_randomized(a: np.ndarray, rank: int, seed: int = 0,
                       power_iterations: int = factorization.POWER_ITERATIONS) -> factorization.Factors:
        calls["randomized"].append(rank)
        return randomized(a, rank, seed, power_iterations)

    def spy_basis(gram: np.ndarray, max_rank: int) -> tuple[np.ndarray, np.ndarray]:
        calls["basis"].append(gram.shape[0])
        return basis(gram, max_rank)
    monkeypatch.setattr(factorization, "randomized", spy_randomized)
    monkeypatch.setattr(factorization, "basis", spy_basis)
    return calls


#: The tests below lower FEW_ABOVE (512) to keep their matrices small; the routes are the same.
SMALL_FEW_ABOVE = 100


def test_a_requested_rank_on_a_large_plane_is_randomized_and_exact_in_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_routes(monkeypatch)
    monkeypatch.setattr(factorization, "FEW_ABOVE", SMALL_FEW_ABOVE)
    a = low_rank(560, 400, r=60, noise=0.5)  # short side 400; 30 + 16 <= 400/8
    f = factorization.factorize(a, 30, requested=True)
    assert calls["randomized"] == [30] and calls["basis"] == [46]  # B B^T only, not 400^2
    assert f.rank == 30 and f.P.shape == (560, 30) and f.Q.shape == (400, 30)
    s = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    np.testing.assert_allclose(f.sigma[:12], s[:12], rtol=1e-4)  # above the noise floor
    approx = (f.P / f.sigma.astype(np.float32)) @ f.Q.T
    assert np.sum((a - approx) ** 2, dtype=np.float64) <= np.sum(s[30:] ** 2) * 1.02
    wide = factorization.factorize(a, 100, requested=True)  # 116 > 400/8: the Gram route, exact
    assert calls["basis"][-1] == 400 and wide.rank == 100


def test_an_energy_fraction_on_a_large_plane_holds_with_few_components(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_routes(monkeypatch)
    monkeypatch.setattr(factorization, "FEW_ABOVE", SMALL_FEW_ABOVE)
    a = low_rank(420, 330, r=150, noise=0.2)  # passes of 64 (+ 16 <= 330/4) components
    total = factorization.energy(a)
    s2 = np.linalg.svd(a.astype(np.float64), compute_uv=False) ** 2
    for fraction in (0.5, 0.99, 0.999):
        exact = int(np.searchsorted(np.cumsum(s2), fraction * total)) + 1
        calls["randomized"].clear()
        f = factorization.factorize(a, 330, energy=fraction)
        cumulative = np.cumsum(f.sigma.astype(np.float64) ** 2)
        kept = int(np.searchsorted(cumulative, fraction * total * (1 - 1e-12))) + 1
        assert kept <= f.rank and cumulative[kept - 1] >= fraction * total * (1 - 1e-12)
        assert exact <= kept <= exact + 2  # never fewer than the exact SVD needs, barely more
        assert calls["randomized"] == [64]
        approx = (f.P[:, :kept] / f.sigma[:kept].astype(np.float32)) @ f.Q[:, :kept].T
        kept_energy = total - np.sum((a - approx) ** 2, dtype=np.float64)
        assert kept_energy >= fraction * total * (1 - 1e-5)  # what the factors really keep
    calls["basis"].clear()
    everything = factorization.factorize(a, 330, energy=1.0)  # needs all 150 and more: the Gram route
    assert calls["basis"][-1] == 330 and everything.rank >= 150


def test_small_planes_and_the_default_mode_keep_the_gram_route(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = spy_routes(monkeypatch)
    small = low_rank(600, 500, r=30, noise=0.1)  # short side 500 <= FEW_ABOVE
    factorization.factorize(small, 10, requested=True)
    factorization.factorize(small, 500, energy=0.9)
    monkeypatch.setattr(factorization, "FEW_ABOVE", SMALL_FEW_ABOVE)
    factorization.factorize(small, 500)  # quality mode: the whole spectrum, on any plane
    assert calls["randomized"] == [] and calls["basis"] == [500, 500, 500]


def test_encoder_rank_and_energy_on_a_large_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the public encoder: --rank R gives R components, --energy F at most two more
    than the exact (Gram route) encode, on planes that take the randomized route (FEW_ABOVE
    lowered to keep the test small)."""
    img = np.clip(low_rank(480, 600, r=60, noise=2.0) / 30 + 128, 0, 255).astype(np.uint8)

    def ranks(**options: float) -> list[int]:
        data = svdcodec.encode(img, **options)  # type: ignore[arg-type]
        _, planes = container.read_headers(io.BytesIO(data))
        return [p.rank for p in planes]
    exact_energy = ranks(energy=0.95, quality=100)
    calls = spy_routes(monkeypatch)
    monkeypatch.setattr(factorization, "FEW_ABOVE", 64)
    assert ranks(rank=12, quality=95) == [12] and calls["randomized"] == [12]
    calls["randomized"].clear()
    fast_energy = ranks(energy=0.95, quality=100)
    assert calls["randomized"] == [64]
    assert exact_energy[0] <= fast_energy[0] <= exact_energy[0] + 2
