"""Which product multiplies an exact plane's band on the compiled path: `_kernels.exact_product`
(a loop over each row's non-zero integers) for bands of a low rank or mostly zeros, BLAS in
binary64 for dense bands of rank BLAS_PRODUCT_RANK and more (hostile files of dense factors at
rank 1024 took 23 s in the kernel, 6 s by BLAS). The product is exact, so the pixels are the
reference decoder's either way."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image
from support import NEEDS_KERNELS, photo

import svdcodec
from svdcodec.codec import aq, exact
from svdcodec.decoder import plane, uses_blas
from svdcodec.decoder.reference import decode_reference
from svdcodec.decoder.stream import BandRenderer
from svdcodec.format import pack, unpack
from svdcodec.runtime import band_sizes

pytestmark = NEEDS_KERNELS


def _blas_products(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows of every product BLAS makes from now on (`codec.exact.exact_product`)."""
    rows: list[int] = []
    real = exact.exact_product

    def counted(left: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        rows.append(left.shape[0])
        return real(left, *args, **kwargs)
    monkeypatch.setattr(exact, "exact_product", counted)
    return rows


@pytest.fixture(scope="module")
def noisy() -> np.ndarray:
    rng = np.random.default_rng(4)
    base = photo(160, 192, 3, seed=4).astype(np.int16)
    return np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("options", [
    {"layout": "patch16", "quality": 100},
    {"layout": "patch16", "quality": 100, "deblock": False},
])
def test_dense_bands_of_a_high_rank_by_blas(noisy: np.ndarray, options: dict,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    data = svdcodec.encode(noisy, **options)
    assert max(p.rank for p in unpack(data).planes) >= plane.BLAS_PRODUCT_RANK
    expected = decode_reference(data)
    rows = _blas_products(monkeypatch)
    assert np.array_equal(svdcodec.decode(data), expected)
    assert rows, "no band was multiplied by BLAS"
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im), expected)
    for k in (1, 70):  # previews, of a rank below the copy's threshold and above it
        assert np.array_equal(svdcodec.decode(data, components=k),
                              decode_reference(data, components=k))


def test_adapted_plane_by_blas(noisy: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version 6 plane of patch 16 with adaptive quantization (the encoder adapts patch 4 and
    8 only; the format allows any): BLAS multiplies A o M, as the reference does."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    box = unpack(svdcodec.encode(noisy[..., 0], 100, layout="patch16"))
    # A o M has up to 5 bits more than A (M <= 26 in 1/16): the shift 5 bits smaller
    planes = [dataclasses.replace(p, aq=(16, aq.g_bits(100.0)), shift=max(0, p.shift - 5))
              for p in box.planes]
    data = pack(dataclasses.replace(box, header=dataclasses.replace(box.header, version=6),
                                    planes=planes), 1)
    assert unpack(data).planes[0].adapted and planes[0].rank >= plane.BLAS_PRODUCT_RANK
    expected = decode_reference(data)
    rows = _blas_products(monkeypatch)
    scaled = []
    real = aq.scaled_left
    monkeypatch.setattr(aq, "scaled_left", lambda *a: scaled.append(1) or real(*a))
    assert np.array_equal(svdcodec.decode(data), expected)
    assert rows and scaled


def test_binary64_copy_made_once_a_plane(noisy: np.ndarray,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Bᵀ in binary64 is made by a plane's first dense band and used by its others (a copy per
    band was made and dropped again by every band): at most one copy a plane, which spec §5's
    12 bytes a column and component count."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    data = svdcodec.encode(noisy, layout="patch16", quality=100)
    planes = len(unpack(data).planes)
    expected = decode_reference(data)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1 << 12)
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 12)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 16)
    rights: list[np.ndarray] = []  # held: no copy's id is reused by the next
    real = exact.exact_product

    def counted(left: np.ndarray, w: np.ndarray, right_t: np.ndarray, *args: object
                ) -> np.ndarray:
        rights.append(right_t)
        return real(left, w, right_t, *args)
    monkeypatch.setattr(exact, "exact_product", counted)
    assert np.array_equal(svdcodec.decode(data), expected)
    assert len(rights) > planes, "too few bands to tell"
    assert len({id(r) for r in rights}) <= planes
    assert all(r.dtype == np.float64 for r in rights)


def test_blas_held_to_one_thread_where_dense_bands_may_use_it(
        noisy: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a plane's dense bands may go to BLAS, decoding holds BLAS to one thread around the
    render (decoder.rendering's `blas`), as for a plane BLAS multiplies: the band threads call
    it. A photo's default file, every product the kernel's, is rendered without that step."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    for options, blas in (({"layout": "patch16", "quality": 100}, True),
                          ({"layout": "patch8", "quality": 75}, False)):
        box = unpack(svdcodec.encode(noisy, **options))
        assert uses_blas(box) is blas
        renderer = BandRenderer.prepare(box)
        assert renderer is not None and renderer.blas is blas


def test_patch8_bands_by_the_kernel(noisy: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch 8 (64 columns), even dense and at rank 64: the kernel is faster there."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    data = svdcodec.encode(noisy, 99, layout="patch8")
    assert max(p.rank for p in unpack(data).planes) == 64
    expected = decode_reference(data)
    rows = _blas_products(monkeypatch)
    assert np.array_equal(svdcodec.decode(data), expected)
    assert rows == []


def test_sparse_bands_by_the_kernel(noisy: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo's usual layouts (patch 4 and 8, ranks below 64) never go to BLAS."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    data = svdcodec.encode(photo(160, 192, 3, seed=5), 75, layout="patch8")
    expected = decode_reference(data)  # (the reference multiplies by BLAS: before counting)
    rows = _blas_products(monkeypatch)
    assert np.array_equal(svdcodec.decode(data), expected)
    assert rows == []


def test_threshold_is_the_share_of_non_zero_integers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A band goes to BLAS when more than BLAS_PRODUCT_SHARE of its integers are non-zero: with
    the share set to 1, no band does, and the pixels are the same."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    rng = np.random.default_rng(4)
    base = photo(192, 256, 1, seed=4)[..., 0].astype(np.int16)
    data = svdcodec.encode(np.clip(base + rng.integers(-40, 41, base.shape), 0, 255)
                           .astype(np.uint8), 100, layout="patch16")
    rows = _blas_products(monkeypatch)
    by_blas = svdcodec.decode(data)
    assert rows
    monkeypatch.setattr(plane, "BLAS_PRODUCT_SHARE", 1.0)
    rows.clear()
    assert np.array_equal(svdcodec.decode(data), by_blas)
    assert rows == []


def _smooth_grey(height: int, width: int) -> np.ndarray:
    """A smooth 8-bit picture with a little noise, level about 200: at quality 100 in the
    plain layout, hundreds of components at a step of 0.5."""
    y, x = np.mgrid[0:height, 0:width]
    noise = np.random.default_rng(1).normal(0, 0.5, x.shape)
    return (200 + 40 * np.sin(x / 40) * np.cos(y / 50) + noise).clip(0, 255).astype(np.uint8)


def test_the_finest_steps_keep_the_exact_weights_faithful() -> None:
    """Where the exact rule's bound leaves a plane's first weight a few dozen (the finest
    steps of a large plane: 2^F y_0 = 35.53 coded as 36 scaled a whole image by 1.3 %), the
    encoder also codes coarser steps, up to one whose weights' rounding adds less than the
    quantizer's error, and keeps the file that decodes closest: a 256 x 320 plain plane at
    quality 100 came back 0.59 levels bright (RMS error 0.77, 37,897 bytes; quality 99:
    0.42), and a max_bytes budget above what such steps take made worse files than smaller
    budgets (a larger budget never decodes worse now)."""
    image = _smooth_grey(256, 320)
    files = {q: svdcodec.encode(image, q, layout="plain") for q in (99, 100)}
    for budget in (20_000, 40_000, 400_000):
        files[budget] = svdcodec.encode(image, layout="plain", max_bytes=budget)
    errors = {}
    for name, data in files.items():
        decoded = svdcodec.decode(data).astype(np.float64)
        assert abs(decoded.mean() - image.mean()) < 0.1, name
        errors[name] = np.sqrt(np.mean((decoded - image) ** 2))
    assert errors[100] < 0.5 and errors[99] < 0.5, errors
    assert errors[400_000] <= errors[40_000] <= errors[20_000], errors


def test_weight_rounding_error_is_each_components_drift_in_plane_units() -> None:
    """sqrt(sum_k ((W_k / (2^F y_k) - 1) sigma_k)^2 / elements), y_k = step^2 / sigma_k."""
    sigma, step, shift, elements = np.array([1000.0, 10.0]), 0.5, 7, 400
    scaled = 2.0 ** shift * step * step / sigma  # 0.032, 3.2: W = 0 and 3
    expected = np.sqrt((((0.0 / scaled[0] - 1) * 1000) ** 2 + ((3.0 / scaled[1] - 1) * 10) ** 2)
                       / elements)
    assert exact.weight_rounding_error(step, sigma, shift, elements) == pytest.approx(expected)
    assert exact.weight_rounding_error(step, sigma, 40, elements) < 1e-6
    assert exact.weight_rounding_error(step, np.zeros(0), 3, elements) == 0.0
