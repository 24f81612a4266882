"""Generation stability (issue #15): the encoder's choices that make a decoded image encode
again to nearly itself. Each test fails if its piece is removed: the 2x2-mean chroma, the
uncorrected colour transform or the eigenvector basis drift every generation."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import photo

import svdcodec
from svdcodec.codec import colour
from svdcodec.codec.factorize import basis
from svdcodec.codec.quantize import component_steps, quantize
from svdcodec.codec.refine import fit_basis, projection, stored_basis
from svdcodec.codec.resample import (
    Bilinear,
    banded_cholesky,
    coefficients,
    halving_tables,
    least_squares_half,
)
from svdcodec.encoder.source import PlaneSource, image_header
from svdcodec.format.reader import unpack


def upsampling_matrix(n_small: int, n_big: int) -> np.ndarray:
    first, weights = coefficients(n_small, n_big, "bilinear")
    out = np.zeros((n_big, n_small))
    for t in range(weights.shape[1]):
        np.add.at(out, (np.arange(n_big), np.minimum(first + t, n_small - 1)), weights[:, t])
    return out


@pytest.mark.parametrize("shape", [(8, 10), (9, 11), (7, 6), (1, 5), (33, 64)])
def test_least_squares_half_is_the_pseudo_inverse(shape: tuple[int, int]) -> None:
    h, w = shape
    h2, w2 = (h + 1) // 2, (w + 1) // 2
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, shape).astype(np.float32)
    uv, uh = upsampling_matrix(h2, h), upsampling_matrix(w2, w)
    expected = np.linalg.pinv(uv) @ x.astype(np.float64) @ np.linalg.pinv(uh).T
    got = least_squares_half(lambda lo, hi: x[lo:hi], shape, h2, w2, band=3)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    small = rng.normal(0, 50, (h2, w2)).astype(np.float32)  # doubled by the decoder, then back
    doubled = Bilinear(small, h, w).rows(0, h)
    back = least_squares_half(lambda lo, hi: doubled[lo:hi], shape, h2, w2)
    np.testing.assert_allclose(back, small, atol=1e-3)


def by_diagonals(matrix: np.ndarray, width: int) -> np.ndarray:
    """A symmetric banded matrix's lower diagonals: [k, i] holds matrix[i, i - k]."""
    n = matrix.shape[0]
    out = np.zeros((width, n))
    for k in range(min(width, n)):
        out[k, k:] = np.diagonal(matrix, -k)
    return out


@pytest.mark.parametrize("n_big, width", [(1, 2), (2, 2), (9, 2), (768, 2), (1999, 2),
                                          (40, 3), (300, 4)])
def test_banded_cholesky_is_the_recurrence_on_numpy_scalars(n_big: int, width: int) -> None:
    """The Cholesky factor the chroma halving solves with: the same bits as the textbook
    recurrence computed on numpy's float64 scalars, on the decoder's upsampling (U^T U,
    bidiagonal) and on wider random bands; and L L^T is the matrix."""
    n = (n_big + 1) // 2
    if width == 2:
        u = upsampling_matrix(n, n_big)
        matrix = u.T @ u
    else:
        rng = np.random.default_rng(n_big)
        band = np.tril(np.triu(rng.uniform(-1, 1, (n, n)), -(width - 1)))
        matrix = band @ band.T + np.eye(n) * width
        width = 2 * width - 1  # band @ band.T is twice as wide
    gram = by_diagonals(matrix, width)
    expected = np.zeros_like(gram)
    for i in range(n):
        for k in range(min(width - 1, i), -1, -1):
            j = i - k
            total = gram[k, i] - sum(expected[k + m, i] * expected[m, j]
                                     for m in range(1, min(width - k, j + 1)))
            expected[k, i] = np.sqrt(total) if k == 0 else total / expected[0, j]
    got = banded_cholesky(gram)
    assert got.flags.c_contiguous and got.tobytes() == expected.tobytes()
    dense = np.zeros((n, n))
    for k in range(width):
        dense[np.arange(k, n), np.arange(n - k)] = got[k, k:]
    np.testing.assert_allclose(dense @ dense.T, matrix, atol=1e-9)
    if width == 2:  # the halving's own factor is of the same matrix (narrower if diagonal)
        own = halving_tables(n, n_big)[2]
        np.testing.assert_allclose(own, got[:len(own)], rtol=1e-12)
        assert not got[len(own):].any()


def test_decoded_colours_convert_back_to_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    """8-bit Y'CbCr decoded to RGB by the decoder (Pillow), then converted by the encoder:
    the planes the encoder sees decode to the same RGB on average; without the correction,
    half a level darker."""
    rng = np.random.default_rng(1)
    ycc = rng.integers(16, 240, (64, 64, 3)).astype(np.uint8)
    rgb = np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))

    def drift() -> float:
        planes = colour.to_planes(rgb, True, False, 1.0)
        again = colour.from_planes(planes, 64, 64, np.dtype(np.uint8), True, False, 1.0)
        return float(np.mean(again.astype(float) - rgb))
    assert drift() == pytest.approx(0, abs=0.05)
    monkeypatch.setattr(colour, "corrected", lambda planes, i, table: planes[..., i].copy())
    assert drift() < -0.3


@pytest.mark.parametrize("step", [1, 32, 256])
def test_decoder_bias_is_pillows_rounding(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """The bias table, made a few Cb at a time from the conversion's terms (`ycc_terms`), is
    bit for bit the table made in one piece from Pillow's conversions at Y' = 0 and 255: the
    term Pillow adds, less the exact inverse of the weights, in plane units."""
    cb, cr = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")

    def rgb(luma: int) -> np.ndarray:
        ycc = np.stack([np.full_like(cb, luma), cb, cr], axis=-1).astype(np.uint8)
        return np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB")).astype(np.float64)
    low, high = rgb(0), rgb(255)
    term = np.where(low > 0, low, high - 255.0)
    forward = colour.YCC_WEIGHTS.astype(np.float64) * colour.YCC_UNIT
    exact = np.stack([cb - 128.0, cr - 128.0], axis=-1) @ np.linalg.inv(forward)[:, 1:].T
    expected = ((term - exact) @ forward.T).astype(np.float32)
    monkeypatch.setattr(colour, "BIAS_CB_STEP", step)
    colour.decoder_bias.cache_clear()
    try:
        got = colour.decoder_bias()
    finally:
        colour.decoder_bias.cache_clear()
    assert got.dtype == np.float32 and got.tobytes() == expected.tobytes()
    assert abs(float(np.mean(got[..., 0])) + 0.48) < 0.01  # Pillow rounds down: darker


def test_decoded_images_are_on_the_decoders_grid() -> None:
    """An image svdi decoded takes the exact correction and the fitted basis; the original,
    and the same decoded image with its Y' moved off the integers, the mean correction and
    the eigenvectors alone (the fit cannot be kept there, and costs time)."""
    pixels = photo(96, 128, 3)
    rng = np.random.default_rng(4)
    pixels = np.clip(pixels + rng.integers(-3, 4, pixels.shape), 0, 255).astype(np.uint8)
    decoded = svdcodec.decode(svdcodec.encode(pixels, quality=75))
    assert PlaneSource(decoded, image_header(decoded, True)).on_decoder_grid
    assert not PlaneSource(pixels, image_header(pixels, True)).on_decoder_grid
    shifted = np.clip(decoded.astype(np.int64) + rng.integers(0, 2, decoded.shape), 0, 255
                      ).astype(np.uint8)
    assert not PlaneSource(shifted, image_header(shifted, True)).on_decoder_grid
    planes = colour.plain_ycc(decoded)
    for i in range(3):  # the mean of the table for originals, the table itself for decoded
        assert np.mean(colour.corrected(planes, i, False) - planes[..., i]) == pytest.approx(
            -colour.mean_bias()[i], abs=1e-4)


def test_fitted_basis_reproduces_a_decoded_matrix() -> None:
    """A matrix made of integer coefficients on a quantized basis, each component at its own
    step as a patch layout's (`component_steps`: the patch mean finer): fitted from its own
    eigenvectors, the basis codes it again to within rounding."""
    rng = np.random.default_rng(2)
    step, n, r = 8.0, 16, 10
    steps = component_steps(r) * step
    unit = np.linalg.qr(rng.normal(size=(n, n)))[0][:, :r]
    sigma = np.geomspace(20000, 800, r)
    B = quantize(unit * (sigma / step), step=1.0)
    # the same coefficients as at one step (the first still the largest, as a patch mean),
    # on the finer integer grid of the first
    A = np.round(rng.laplace(0, 1, (4000, r)) * np.geomspace(6, 0.5, r) * (step / steps))
    rows = ((steps * A) @ stored_basis(B, sigma, step).T).astype(np.float32)
    rows += rng.uniform(-0.5, 0.5, rows.shape).astype(np.float32)  # pixel rounding
    s, v = basis(rows.T.astype(np.float64) @ rows, r)
    eigen = quantize((rows @ v) / steps, 1.0) * steps @ v.T
    fitted_B, fitted_sigma = fit_basis(rows, v, s, step)
    W = stored_basis(fitted_B, fitted_sigma, step)
    refit = quantize((rows @ projection(W)) / steps, 1.0) * steps @ W.T
    assert np.mean((rows - refit) ** 2) < 0.15  # the rounding alone: 1/12
    assert np.mean((rows - eigen) ** 2) > 4 * np.mean((rows - refit) ** 2)


def test_ten_generations_lose_little() -> None:
    pixels = photo(192, 256, 3)
    first = svdcodec.decode(svdcodec.encode(pixels, quality=75))
    current = first
    for _ in range(9):
        current = svdcodec.decode(svdcodec.encode(current, quality=75))

    def psnr(a: np.ndarray, b: np.ndarray) -> float:
        return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b) ** 2)))
    assert psnr(pixels, first) - psnr(pixels, current) < 1.0


def test_a_decoded_grey_image_is_not_filtered_again() -> None:
    """A grey image svdi decoded cannot be told from its samples (integers either way), but
    its plane codes again with the fitted basis, whose error the filter would mostly remove
    (the decoded edges are the filter's): it takes no filter, filtered once, in the first
    generation, not at every one (which lost 0.25 dB a cycle on this photo, without end)."""
    grey = np.asarray(Image.open(svdcodec.__path__[0] + "/data/sample.png").convert("L"))
    current, files = grey, []
    for _ in range(5):
        files.append(svdcodec.encode(current, quality=75))
        current = svdcodec.decode(files[-1])
        if len(files) == 2:
            second = current
    assert unpack(files[0]).planes[0].filtered
    assert not any(unpack(f).planes[0].filtered for f in files[1:])
    assert np.mean((second.astype(float) - current) ** 2) < 0.25


def test_a_rendered_grey_original_the_fit_codes_keeps_its_filter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fitted basis also wins on some originals (rendered graphics, photos once JPEGs):
    there the filter removes a small share of the error, not the most of it a decoded
    image's filtered edges leave, and the plane keeps its filter."""
    from PIL import ImageDraw

    from svdcodec.encoder import schedule
    image = Image.new("L", (640, 480), 240)
    draw = ImageDraw.Draw(image)
    for i in range(6):
        draw.rectangle((20 + 48 * i, 200 - 25 * i, 50 + 48 * i, 220), fill=60 + 24 * i)
    for y in range(20, 220, 40):
        draw.line((15, y, 305, y), fill=180)
    draw.ellipse((200, 25, 300, 125), outline=0, width=3)
    fitted: list[bool] = []
    finish = schedule.Encoder.finish

    def recorded(self, work, choice):  # type: ignore[no-untyped-def]
        coded = finish(self, work, choice)
        fitted.append(coded.fitted)
        return coded
    monkeypatch.setattr(schedule.Encoder, "finish", recorded)
    data = svdcodec.encode(np.asarray(image), quality=75)
    assert fitted == [True] and unpack(data).planes[0].filtered


def test_grid_test_decides_as_binary64() -> None:
    """`on_decoder_grid` decides from a float32 estimate only away from its threshold: on
    samples whose binary64 mean lies anywhere from far below to far above it, and right at
    it, the answer is binary64's."""
    rng = np.random.default_rng(5)
    base = rng.integers(0, 256, 4000).astype(np.float32)
    answers = set()
    for spread in np.linspace(0.0, 0.4, 41):
        luma = base + (rng.normal(0, spread, base.size)).astype(np.float32)
        exact = float(np.mean(np.cos(2 * np.pi * luma.astype(np.float64))))
        assert colour.on_decoder_grid(luma) == (exact >= colour.DECODED_GRID)
        answers.add(exact >= colour.DECODED_GRID)
    assert answers == {True, False}
    # within the margin: a set whose binary64 mean is the threshold itself (cos = 1 or 0)
    at = np.array([0.0, 0.25], dtype=np.float32)
    assert colour.on_decoder_grid(at) == (float(np.mean(np.cos(2 * np.pi * at.astype(
        np.float64)))) >= colour.DECODED_GRID)
