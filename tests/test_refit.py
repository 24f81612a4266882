"""The singular values the encoder stores are refitted to its quantized factors
(`codec.refine.refitted_sigma`, encoder only: the format and decoders are unchanged)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec.codec import quantize
from svdcodec.codec.factorize import basis
from svdcodec.codec.quantize import ColumnStats
from svdcodec.codec.refine import WEIGHT_GAIN_LIMITS, refitted_sigma
from svdcodec.encoder import plane, tuning
from svdcodec.format import LAYOUT_PATCH, unpack


def photo() -> np.ndarray:
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        return np.asarray(im.convert("RGB"))


def patch_matrix(seed: int = 0, rows: int = 3000, n: int = 16) -> np.ndarray:
    """Rows with a decaying spectrum, as a photo's patches: Laplacian coefficients on a random
    orthonormal basis."""
    rng = np.random.default_rng(seed)
    scales = 200.0 / (1.0 + np.arange(n)) ** 1.5
    axes = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return (rng.laplace(size=(rows, n)) * scales) @ axes.T


def coded(X: np.ndarray, step: float) -> tuple:
    """X's eigen factorization quantized as the encoder does: (sigma, Q, A, B, stats of A,
    stats of B)."""
    sigma, unit = basis(X.T @ X, X.shape[1])
    Q = unit * sigma.astype(np.float32)
    stats_a, stats_b = ColumnStats(sigma.size, step), ColumnStats(sigma.size, step)
    A = stats_a.add((X @ unit).astype(np.float32))
    B = stats_b.add(Q)
    return sigma, Q, A, B, stats_a, stats_b


def refit(sigma, Q, B, stats_a, stats_b, step):
    return refitted_sigma(sigma, Q, B, stats_a.squares, stats_b.squares, stats_a.error, step)


def error(X: np.ndarray, A: np.ndarray, sigma: np.ndarray, B: np.ndarray, step: float) -> float:
    rebuilt = (A * (step * step / sigma.astype(np.float64))) @ B.T.astype(np.float64)
    return float(np.sum((X - rebuilt) ** 2))


@pytest.mark.parametrize("step", [2.0, 6.0, 15.0])
def test_refitted_weights_lower_the_error(step: float) -> None:
    """The least-squares weights reconstruct the matrix better than step^2 / sigma, most where
    the quantizer is coarse."""
    X = patch_matrix()
    sigma, Q, A, B, stats_a, stats_b = coded(X, step)
    refitted = refit(sigma, Q, B, stats_a, stats_b, step)
    assert refitted.dtype == np.float32 and refitted.shape == sigma.shape
    before, after = error(X, A, sigma, B, step), error(X, A, refitted, B, step)
    assert after < before * 0.999


def test_fine_steps_keep_sigma() -> None:
    """With integers far finer than the components, the weights are step^2 / sigma already."""
    X = patch_matrix(1)
    sigma, Q, _, B, stats_a, stats_b = coded(X, 0.01)
    refitted = refit(sigma, Q, B, stats_a, stats_b, 0.01)
    np.testing.assert_allclose(refitted[:8], sigma[:8], rtol=1e-3)


def test_quantizer_squares_are_the_integers() -> None:
    X = patch_matrix(2)
    _, _, A, B, stats_a, stats_b = coded(X, 4.0)
    assert np.array_equal(stats_a.squares, (A.astype(np.float64) ** 2).sum(axis=0))
    assert np.array_equal(stats_b.squares, (B.astype(np.float64) ** 2).sum(axis=0))


def test_degenerate_components_keep_their_sigma() -> None:
    """A component with no non-zero integer, or a fit outside WEIGHT_GAIN_LIMITS (here: the
    error sum says the integers point against their coefficients), stays finite and > 0."""
    sigma = np.array([100.0, 50.0, 20.0])
    Q = np.eye(3, dtype=np.float32) * sigma.astype(np.float32)
    B = np.array([[20, 0, 0], [0, 10, 0], [0, 0, 4]], dtype=np.int32)
    a2 = np.array([900.0, 0.0, 50.0])
    b2 = (B.astype(np.float64) ** 2).sum(axis=0)
    error = np.array([0.0, 0.0, 1e9])  # component 2: a . p < 0
    out = refitted_sigma(sigma, Q, B, a2, b2, error, 5.0)
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert out[1] == np.float32(sigma[1])
    low, high = WEIGHT_GAIN_LIMITS
    assert out[2] == pytest.approx(sigma[2] / low, rel=1e-6)
    assert sigma[0] / high <= out[0] <= sigma[0] / low
    assert refitted_sigma(np.zeros(0), np.zeros((3, 0), np.float32), np.zeros((3, 0), np.int32),
                          np.zeros(0), np.zeros(0), np.zeros(0), 1.0).size == 0


def stored(data: bytes) -> list[tuple[int, np.ndarray]]:
    container = unpack(data)
    return [(p.layout, container.singular_values(p.index)) for p in container.planes]


def test_encoder_stores_refitted_sigma(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the S blocks change (patch layouts), and the decoded image is closer."""
    pixels = photo()
    files = {}
    for on in (False, True):
        monkeypatch.setattr(tuning, "REFIT_SIGMA", on)
        files[on] = svdcodec.encode(pixels, quality=40)
    assert len(files[True]) == len(files[False])
    before, after = stored(files[False]), stored(files[True])
    assert all(layout == LAYOUT_PATCH for layout, _ in after)
    assert any(not np.array_equal(a, b) for (_, a), (_, b) in zip(before, after))
    error = {on: np.mean((svdcodec.decode(f).astype(np.float64) - pixels) ** 2)
             for on, f in files.items()}
    assert error[True] < error[False]


@pytest.mark.parametrize("refit", [False, True])
def test_stored_sigma_carries_the_component_steps(monkeypatch: pytest.MonkeyPatch,
                                                 refit: bool) -> None:
    """Each component of a patch layout's U at its own step (`quantize.component_steps`):
    the stored sigma scales the integers back, so the decoded image is as close as with one
    step (a sigma left as it was would put the patch means 30 % off)."""
    pixels = photo()
    monkeypatch.setattr(tuning, "REFIT_SIGMA", refit)
    error = {}
    for own in (False, True):
        if not own:
            monkeypatch.setattr(quantize, "component_steps",
                                lambda columns, mean_step=None: np.ones(columns))
            monkeypatch.setattr(plane, "component_steps", quantize.component_steps)
        data = svdcodec.encode(pixels, quality=60)
        assert all(layout == LAYOUT_PATCH for layout, _ in stored(data))
        error[own] = np.mean((svdcodec.decode(data).astype(np.float64) - pixels) ** 2)
        monkeypatch.undo()
        monkeypatch.setattr(tuning, "REFIT_SIGMA", refit)
    assert error[True] < 1.2 * error[False]


def test_plain_layout_keeps_its_singular_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain layout's sigma are a PCA's (docs/arrays.md): not refitted."""
    x = photo()[:96, :128, 0].astype(np.float32)
    files = []
    for on in (False, True):
        monkeypatch.setattr(tuning, "REFIT_SIGMA", on)
        files.append(svdcodec.encode(x, quality=50, layout="plain"))
    assert files[0] == files[1]
