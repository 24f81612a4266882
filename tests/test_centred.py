"""Centred columns (encode(centre=True), the MEAN chunk of spec §3.1): read_factors gives a true
PCA of a plain plane, the column means in PlaneFactors.mean, factors orthonormal to within the
quantization error the file's own step and singular values bound; every decode path adds the
means to the same bits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import decode_everywhere, format_version
from test_dtypes import largest_error

import svdcodec
from svdcodec import SvdiError
from svdcodec.decoder.reference import decode_reference
from svdcodec.format import unpack

#: Largest quantization error of one stored integer, in steps: the dead zone rounds up from
#: 0.38 of a step (spec §6), so a value moves by at most 0.62 of a step.
DEAD_ZONE = 0.62


def sensors(rows: int = 600, columns: int = 24, seed: int = 0) -> np.ndarray:
    """A tall-skinny time x sensors array: a few oscillations mixed into every sensor, each
    sensor with its own offset far from zero, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 20, rows)[:, None]
    sources = np.sin(t * np.array([0.7, 1.3, 2.9, 0.2]) + rng.random(4) * 6)
    return (sources @ rng.normal(size=(4, columns)) * 5 + rng.normal(100, 30, columns)
            + rng.normal(size=(rows, columns)) * 0.1)


def orthonormality_bound(factor: np.ndarray, sigma: np.ndarray, step: float) -> np.ndarray:
    """|(F^T F - I)_kl| <= sqrt(len) d (1/s_k + 1/s_l) + len d^2 / (s_k s_l), d = 0.62 step: each
    column F_k = f_k + e_k with the exact unit f_k and |e_k| <= d / s_k per entry, so
    |f_k . e_l| <= sqrt(len) d / s_l and |e_k . e_l| <= len d^2 / (s_k s_l)."""
    length = factor.shape[0]
    d = DEAD_ZONE * step
    inverse = 1.0 / sigma.astype(np.float64)
    return (math.sqrt(length) * d * (inverse[:, None] + inverse[None, :])
            + length * d * d * np.outer(inverse, inverse))


@pytest.mark.parametrize("quality", [50, 90, 100])
def test_read_factors_is_a_pca(quality: int) -> None:
    x = sensors()
    data = svdcodec.encode(x, quality, centre=True)
    assert format_version(data) == 5
    (f,) = svdcodec.read_factors(data)
    assert f.layout == "plain" and f.mean is not None and f.mean.dtype == np.float32
    np.testing.assert_allclose(f.mean, x.mean(axis=0), rtol=1e-6)
    step = unpack(data).planes[0].step * unpack(data).header.scale  # in sample units
    for factor in (f.U, f.Vt.T):
        gram = factor.astype(np.float64).T @ factor.astype(np.float64)
        error = np.abs(gram - np.eye(gram.shape[0]))
        assert np.all(error <= orthonormality_bound(factor, f.S, step) + 1e-5)
    # the PCA's singular values: those of the centred matrix, not the mean's component
    exact = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(f.S, exact[:f.S.size], rtol=1e-3)
    model = f.U @ np.diag(f.S) @ f.Vt + f.mean
    decoded = decode_everywhere(data)
    assert np.abs(model - decoded).max() <= 1e-4 * np.abs(x).max()


def test_without_centring_the_mean_is_the_first_component() -> None:
    x = sensors()
    (plain,) = svdcodec.read_factors(svdcodec.encode(x, 90, layout="plain"))
    (centred,) = svdcodec.read_factors(svdcodec.encode(x, 90, centre=True))
    assert plain.mean is None
    assert plain.S[0] > 10 * centred.S[0]  # the offsets dominate the uncentred spectrum


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([np.uint8, np.int16, np.int32, np.float32, np.float64]),
       st.integers(1, 40), st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**31),
       st.sampled_from([None, 0, 2]))
def test_centred_decodes_agree_and_keep_the_bound(dtype: type, h: int, w: int, c: int,
                                                  seed: int, bound: int | None) -> None:
    x = sensors(h, w * c, seed).reshape(h, w, c)
    if np.dtype(dtype).kind in "iu":
        x = np.clip(np.rint(x), 0, 255)
    x = x.astype(dtype)
    if bound == 0 and np.dtype(dtype).kind == "f":
        bound = 1  # float lossless is refused where the range does not allow it
    data = svdcodec.encode(x, 80, centre=True, max_error=bound)
    decoded = decode_everywhere(data)
    assert decoded.dtype == x.dtype
    if bound is not None:
        assert largest_error(decoded, x) <= bound
    factors = svdcodec.read_factors(data)
    # one mean per matrix column: the plane's width (8-bit RGB's chroma may be halved); none
    # for an exact alpha that varies (grey + alpha), which has no layer
    alpha = dtype == np.uint8 and c == 2 and x[..., 1].min() != x[..., 1].max()
    layered = factors[:1] if alpha else factors
    assert len(factors) == c and all(f.mean is not None and f.mean.shape == (f.plane_shape[1],)
                                     == (f.Vt.shape[1],) for f in layered)
    if alpha:
        assert factors[1].mean is None and factors[1].S.size == 0


def test_previews_and_thumbnails_add_the_means() -> None:
    x = sensors(64, 32)
    data = svdcodec.encode(x, 90, centre=True)
    rank0 = svdcodec.decode(data, components=0)  # the means alone, on every row
    np.testing.assert_array_equal(rank0, decode_reference(data, components=0))
    assert np.abs(rank0 - x.mean(axis=0)).max() < 1e-4 * np.abs(x).max()
    small = svdcodec.decode(data, reduce=2)
    assert small.shape == (32, 16)
    assert np.abs(small - x.reshape(32, 2, 16, 2).mean(axis=(1, 3))).max() < 0.05 * np.ptp(x)


def test_centre_takes_the_plain_layout_only() -> None:
    with pytest.raises(SvdiError, match="plain"):
        svdcodec.encode(sensors(), centre=True, layout="patch8")
    assert unpack(svdcodec.encode(sensors(), centre=True)).planes[0].layout == 0


def test_svdi_encode_centre(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from svdcodec.cli import encode_main

    np.save(tmp_path / "x.npy", sensors(200, 12))
    assert encode_main(["--centre", "--quiet", str(tmp_path / "x.npy")]) == 0
    (f,) = svdcodec.read_factors((tmp_path / "x.svdi").read_bytes())
    np.testing.assert_allclose(f.mean, sensors(200, 12).mean(axis=0), rtol=1e-6)
    assert encode_main(["--centre", "--layout", "patch8", "--quiet", "-f",
                        str(tmp_path / "x.npy")]) == 2  # a usage error


def test_thumbnail_of_a_centred_rank_0_plane_is_its_means() -> None:
    """v2_mean_i16x2_8x5_lossless: plane 1 has rank 0 and means; its thumbnail is the means
    averaged over each cell, every row (the residual belongs to the full decode)."""
    from support import ROOT

    data = (ROOT / "spec" / "vectors" / "v2_mean_i16x2_8x5_lossless.svdi").read_bytes()
    means = svdcodec.read_factors(data)[1].mean.astype(np.float64)  # sample units
    small = svdcodec.decode(data, reduce=2)
    expected = np.floor(means.reshape(4, 2).mean(axis=1) + 0.5)  # averaged, then rounded
    np.testing.assert_array_equal(small[:, :, 1], np.broadcast_to(expected, (3, 4)))


def test_spectrum_of_the_centred_columns() -> None:
    x = sensors(300, 16)
    (s,) = svdcodec.spectrum(x, 90, centre=True)
    exact = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    np.testing.assert_allclose(s.sigma, exact, rtol=1e-6, atol=1e-6 * exact[0])
    (f,) = svdcodec.read_factors(svdcodec.encode(x, 90, centre=True))
    assert s.kept == f.S.size
