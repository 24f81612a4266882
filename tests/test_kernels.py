"""The compiled kernels (C extension svdcodec.runtime._kernels) against the numpy reference path.

The rest of the suite runs the numpy path unless told otherwise (conftest). Here the same
inputs go through both: decoded pixels must be identical, hostile files must be rejected the
same way (every index from a file is checked in the C code), and the encoder's kernels must
give the same integers and symbols. Skipped where the extension is not built, unless
SVDCODEC_REQUIRE_KERNELS=1 (CI), which makes its absence a failure.
"""

from __future__ import annotations

import dataclasses
import io
import os
import random
import struct
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from support import CORPUS, NEEDS_KERNELS, REGRESSIONS, ROOT, kernels_built
from support import kernels as kernels_path

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as container
from svdcodec.codec import coding, colour, quantize
from svdcodec.codec.colour import YCC_MULTIPLIERS, ycc_terms, ycc_to_rgb
from svdcodec.codec.quantize import ColumnStats, entropy_bits
from svdcodec.decoder.plane import column_sums
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder.source import PlaneSource, image_header
from svdcodec.modes import as_pixels
from svdcodec.runtime import band_sizes, kernels

VECTORS = ROOT / "spec" / "vectors"


def test_extension_built_when_required() -> None:
    """CI sets SVDCODEC_REQUIRE_KERNELS=1: there the extension must have been built."""
    if os.environ.get("SVDCODEC_REQUIRE_KERNELS") != "1":
        pytest.skip("SVDCODEC_REQUIRE_KERNELS is not set")
    assert kernels_built(), "the C extension svdcodec.runtime._kernels is not built"


pytestmark = NEEDS_KERNELS


def with_kernels(monkeypatch: pytest.MonkeyPatch, on: bool, call: Callable[[], Any]) -> Any:
    monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
    return call()


def outcome(call: Callable[[], np.ndarray]) -> tuple[str, Any]:
    try:
        return "pixels", call()
    except SvdiError:
        return "SvdiError", None


def same_outcome(monkeypatch: pytest.MonkeyPatch, data: bytes, **options: Any) -> str:
    """Decode with both paths, require the same verdict and pixels, and return the verdict."""
    a = with_kernels(monkeypatch, False, lambda: outcome(lambda: svdcodec.decode(data, **options)))
    b = with_kernels(monkeypatch, True, lambda: outcome(lambda: svdcodec.decode(data, **options)))
    assert a[0] == b[0]
    if a[0] == "pixels":
        assert a[1].dtype == b[1].dtype and np.array_equal(a[1], b[1], equal_nan=True)
    return a[0]


def photo(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture and noise: sparse and dense coefficients, escapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = [128 + 100 * np.sin(x / 17 + c) * np.cos(y / 23 - c) + rng.normal(0, 12, x.shape)
              for c in range(channels)]
    image = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


CASES = [
    ("rgb 4:2:0", photo(96, 128, 3), {"quality": 50}),
    ("rgb 4:4:4", photo(96, 128, 3), {"quality": 95}),
    ("rgb odd 4:2:0", photo(77, 101, 3), {"quality": 40}),
    ("rgb odd 4:4:4", photo(77, 101, 3), {"quality": 97}),
    ("rgba", photo(64, 80, 4), {"quality": 60}),
    ("l plain", photo(70, 90, 1), {"quality": 80, "layout": "plain"}),
    ("l patch16", photo(70, 90, 1), {"quality": 80, "layout": "patch16"}),
    ("la patch4", photo(33, 65, 2), {"quality": 90, "layout": "patch4"}),
    ("rgb plain", photo(80, 64, 3), {"quality": 30, "layout": "plain"}),
    ("uint16", (photo(60, 70, 1).astype(np.uint16) * 257), {"quality": 85}),
    ("float32", photo(60, 70, 1).astype(np.float32) / 7.0, {"quality": 85}),
    ("rgb q100", photo(40, 48, 3), {"quality": 100}),
]


@pytest.mark.parametrize("name,image,options", CASES, ids=[c[0] for c in CASES])
def test_decode_matches_numpy(monkeypatch: pytest.MonkeyPatch, name: str, image: np.ndarray,
                              options: dict[str, Any]) -> None:
    data = svdcodec.encode(image, **options)
    same_outcome(monkeypatch, data)
    same_outcome(monkeypatch, data, components=3)  # previews stop inside a sparse block
    for k in (2, 4, 8):  # thumbnails: the reduced products of both paths
        same_outcome(monkeypatch, data, reduce=k)
        same_outcome(monkeypatch, data, reduce=k, components=3)


@pytest.mark.parametrize("name,image,options", CASES, ids=[c[0] for c in CASES])
def test_encode_matches_numpy(monkeypatch: pytest.MonkeyPatch, name: str, image: np.ndarray,
                              options: dict[str, Any]) -> None:
    """Same integers: the files decode to the same pixels (the error sums that steer the rank
    decision differ only in the last bits, far from any decision on these images)."""
    a = with_kernels(monkeypatch, False, lambda: svdcodec.encode(image, **options))
    b = with_kernels(monkeypatch, True, lambda: svdcodec.encode(image, **options))
    assert a == b


SOURCES = [
    ("rgb 4:2:0", photo(96, 130, 3), True),
    ("rgb odd", photo(77, 101, 3), False),
    ("rgba 4:2:0", photo(64, 82, 4), True),
    ("la", photo(33, 65, 2), False),
    ("uint16", photo(60, 70, 1).astype(np.uint16) * 257, False),
    ("float32", photo(60, 70, 1).astype(np.float32) / 7.0, False),
    ("strided rgb", photo(64, 96, 4)[:, ::-1, 1:], True),  # the numpy path: not C-contiguous
]


def test_small_noisy_images_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny grids where two predictors (or two ranks) tie in exact arithmetic: both paths
    must break the tie alike (their entropy sums differ in the last bits, so estimates are
    compared rounded). Found as a 24x32 noise image that the paths coded differently."""
    rng = np.random.default_rng(4)
    for _ in range(12):
        image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        quality = int(rng.integers(5, 100))
        assert (with_kernels(monkeypatch, True, lambda: svdcodec.encode(image, quality=quality))
                == with_kernels(monkeypatch, False,
                                lambda: svdcodec.encode(image, quality=quality)))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 4), (9, 11), (40, 66), (131, 97),
                                   (64, 256), (10, 2100)])  # 1050 columns: 3 column solves
def test_least_squares_half_matches_numpy(monkeypatch: pytest.MonkeyPatch,
                                          shape: tuple[int, int]) -> None:
    """The compiled gather and banded solves give numpy's bits, for any band of output rows."""
    from svdcodec.codec.resample import least_squares_half
    x = np.random.default_rng(7).normal(0, 60, shape).astype(np.float32)
    halves = []
    for on, band in ((False, 5), (True, 128), (True, 3)):
        monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
        halves.append(least_squares_half(lambda lo, hi: x[lo:hi], shape, (shape[0] + 1) // 2,
                                         (shape[1] + 1) // 2, band=band))
    assert all(h.tobytes() == halves[0].tobytes() for h in halves[1:])


def test_banded_solve_column_ranges() -> None:
    """Down the columns, ranges of columns solved apart (in any order) give the whole call's
    bits, and a range leaves the other columns alone."""
    from svdcodec.codec.resample import halving_tables32
    compiled = kernels.get()
    if compiled is None:
        pytest.skip("no compiled kernels")
    z = np.random.default_rng(5).normal(0, 60, (37, 29)).astype(np.float32)
    chol = halving_tables32(37, 73)[2]
    whole = z.copy()
    compiled.banded_solve(whole, chol, 0)
    pieces = z.copy()
    for start, stop in ((20, 29), (0, 7), (7, 7), (7, 20)):
        compiled.banded_solve(pieces, chol, 0, start, stop)
    assert pieces.tobytes() == whole.tobytes()
    part = z.copy()
    compiled.banded_solve(part, chol, 0, 3, 11)
    assert part[:, 3:11].tobytes() == whole[:, 3:11].tobytes()
    assert part[:, :3].tobytes() == z[:, :3].tobytes()
    assert part[:, 11:].tobytes() == z[:, 11:].tobytes()
    assert not np.array_equal(part[:, 3:11], z[:, 3:11])


def test_banded_solve_is_solve_normal(compiled: Any) -> None:
    """Along either axis, the compiled solve gives `solve_normal`'s bits (along rows: blocks of
    32 rows transposed, a part block at the end, the 4 x 4 transposes' edges), on values from
    1e-30 to 1e32 in magnitude."""
    from svdcodec.codec.resample import halving_tables32, solve_normal
    rng = np.random.default_rng(6)
    for a, b in ((37, 29), (16, 5), (1, 1), (50, 64), (67, 3), (4, 130)):
        z = (rng.normal(0, 60, (a, b)) * 10.0 ** rng.integers(-30, 30, (a, b))).astype(
            np.float32)
        for axis, n in ((0, a), (1, b)):
            chol = halving_tables32(n, 2 * n - 1)[2]
            expected = z.copy()
            with np.errstate(over="ignore", under="ignore"):
                solve_normal(chol, expected if axis == 0 else expected.T)
            got = z.copy()
            compiled.banded_solve(got, chol, axis)
            assert got.tobytes() == expected.tobytes(), (a, b, axis)


def test_banded_cholesky_is_the_python_recurrence(compiled: Any) -> None:
    """The compiled Cholesky factor of the halving's normal matrix gives
    `codec.resample.banded_cholesky`'s bits: on U^T U of every axis length up to 600 and some
    camera sizes (odd and even, the clamped edge taps), on wider random bands, and it fails
    where the twin does (a negative square root, a zero divisor) with the same exception."""
    from svdcodec.codec.resample import _upsampling, banded_cholesky, normal_gram
    rng = np.random.default_rng(12)
    grams = [normal_gram(*_upsampling((n_big + 1) // 2, n_big), (n_big + 1) // 2)
             for n_big in [*range(1, 601), 4000, 4608, 6000]]
    for width, n in ((1, 7), (3, 40), (4, 300), (6, 5)):
        band = np.tril(np.triu(rng.uniform(-1, 1, (n, n)), -(width - 1)))
        matrix = band @ band.T + np.eye(n) * width
        gram = np.zeros((2 * width - 1, n))
        for k in range(min(2 * width - 1, n)):
            gram[k, k:] = np.diagonal(matrix, -k)
        grams.append(gram)
    for gram in grams:
        got = np.full_like(gram, np.nan)
        compiled.banded_cholesky(gram, got)
        assert got.tobytes() == banded_cholesky(gram).tobytes(), gram.shape
    for broken, error in ((np.array([[1.0, -1.0], [2.0, 0.0]]), ValueError),  # 1 - 4 < 0
                          (np.array([[0.0, 1.0], [0.0, 1.0]]), ZeroDivisionError)):
        with pytest.raises(error):
            banded_cholesky(broken)
        with pytest.raises(error):
            compiled.banded_cholesky(broken, np.empty_like(broken))
    gram = grams[10]
    with pytest.raises(ValueError, match="shapes"):
        compiled.banded_cholesky(gram, np.empty((2, gram.shape[1] + 1)))
    with pytest.raises(ValueError, match="overlaps gram"):
        compiled.banded_cholesky(gram, gram)
    both = np.zeros(2 * gram.size + 1)  # out one element into gram
    with pytest.raises(ValueError, match="overlaps gram"):
        compiled.banded_cholesky(both[:gram.size].reshape(gram.shape),
                                 both[gram.size - 1:2 * gram.size - 1].reshape(gram.shape))


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (2, 3), (3, 2), (7, 9), (9, 8),
                                   (8, 9), (40, 66), (77, 101), (130, 31)])
def test_resample_chroma_is_the_numpy_resampler(compiled: Any, shape: tuple[int, int]) -> None:
    """The compiled upsampling of a chroma plane to an image of any size (an odd side: the
    sizes the fused kernels do not take) gives `chroma_samples(Resampler.rows(...))`'s bytes,
    for bands of 1, 2, 3, half and all of the rows, channels 1 and 2 of 3 and 1 of 4, on values
    well past the bytes' range (the clamps) and exactly on the rounding's edges (x.5 less the
    offset); and it refuses tables or rows that do not fit."""
    from svdcodec.codec.resample import Resampler
    from svdcodec.decoder.render import chroma_samples
    h, w = shape
    small = ((h + 1) // 2, (w + 1) // 2)
    rng = np.random.default_rng(h * 1000 + w)
    plane = rng.normal(0, 90, small).astype(np.float32)
    plane.flat[::3] = np.round(plane.flat[::3]) - 0.5  # + 128.5: on an integer
    # (a copy: chroma_samples adds the offset in place, to rows that may be the plane's)
    resampler = Resampler(lambda lo, hi: plane[lo:hi].copy(), small, h, w)
    for cut in sorted({1, 2, 3, max(1, h // 2), h}):
        for channels, c in ((3, 1), (3, 2), (4, 1)):
            expected = np.full((h, w, channels), 7, dtype=np.uint8)
            got = expected.copy()
            for y0 in range(0, h, cut):
                y1 = min(h, y0 + cut)
                chroma_samples(resampler.rows(y0, y1), expected[y0:y1], c, image_header_stub(),
                               (0, y1 - y0))
                lo, hi = resampler.source_rows(y0, y1)
                compiled.resample_chroma(got[y0:y1], c, y0, y1, plane[lo:hi], lo,
                                         *resampler.tables)
            assert got.tobytes() == expected.tobytes(), (cut, channels, c)
    vfirst, vweights, hindex, hweights = resampler.tables
    out = np.zeros((h, w, 3), dtype=np.uint8)
    lo, hi = resampler.source_rows(0, h)
    if vfirst is not None:
        with pytest.raises(ValueError, match="row outside"):  # rows from lo + 1 on only
            compiled.resample_chroma(out, 1, 0, h, plane[lo + 1:hi], lo + 1, vfirst, vweights,
                                     hindex, hweights)
        with pytest.raises(ValueError, match="shorter"):
            compiled.resample_chroma(out, 1, 0, h, plane[lo:hi], lo, vfirst[:h - 1],
                                     vweights[:h - 1], hindex, hweights)
    if hindex is not None:
        broken = hindex.copy()
        broken[-1, -1] = small[1]
        with pytest.raises(ValueError, match="column index"):
            compiled.resample_chroma(out, 1, 0, h, plane[lo:hi], lo, vfirst, vweights, broken,
                                     hweights)
    with pytest.raises(ValueError, match="channel"):
        compiled.resample_chroma(out, 3, 0, h, plane[lo:hi], lo, vfirst, vweights, hindex,
                                 hweights)
    with pytest.raises(ValueError):
        compiled.resample_chroma(out[:-1], 1, 0, h, plane[lo:hi], lo, vfirst, vweights, hindex,
                                 hweights)


def image_header_stub() -> Any:
    """An 8-bit header, all that `chroma_samples` reads of one (its dtype, for the rounding)."""
    return image_header(np.zeros((2, 2, 3), dtype=np.uint8), True)


@pytest.mark.parametrize("shape", [(511, 767), (512, 767), (511, 768), (33, 2), (1, 9)])
@pytest.mark.parametrize("deblock", [True, False])
def test_odd_sizes_decode_as_numpy(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int],
                                   deblock: bool) -> None:
    """Files of an odd width or height (chroma upsampled by `resample_chroma`) decode to the
    numpy path's pixels, through svdcodec.decode and Pillow, RGB and RGBA."""
    for channels in (3, 4):
        image = photo(*shape, channels, seed=shape[0])
        data = svdcodec.encode(image, quality=45, deblock=deblock)
        same_outcome(monkeypatch, data)
        loads = [with_kernels(monkeypatch, on, partial(pillow_rgba, data)) for on in (False, True)]
        assert np.array_equal(*loads)


def pillow_rgba(data: bytes) -> np.ndarray:
    """The file opened and loaded by Pillow, as RGBA."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


@pytest.mark.parametrize("shape", [(131, 97), (67, 41), (9, 11), (3, 5), (64, 256),
                                   (9, 2100)])  # 1050 columns: 3 column ranges
def test_threaded_halving_matches_numpy(monkeypatch: pytest.MonkeyPatch,
                                        shape: tuple[int, int]) -> None:
    """The compiled halving, its gather and its row solve in bands on threads and its column
    solve in ranges of columns, gives the numpy path's bits for any band height on any number
    of threads."""
    from svdcodec.codec.resample import least_squares_half
    from svdcodec.runtime import threads
    x = np.random.default_rng(8).normal(0, 60, shape).astype(np.float32)
    half = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)

    def halved(band: int | None) -> np.ndarray:
        return least_squares_half(lambda lo, hi: x[lo:hi], shape, *half, band=band)
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    expected = halved(None)
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    for count in (1, 2, 3):
        with threads.threads(count):
            for band in (1, 2, 3, 5, 16, None):
                got = halved(band)
                assert got.shape == half and got.dtype == np.float32 and got.flags.c_contiguous
                assert got.tobytes() == expected.tobytes(), (count, band)


def test_unbiased_colour_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every RGB corner and edge of the cube (chroma clipped at 0 and 255, the table's last
    cell) and random pixels: the compiled bias corrections (table and mean) give numpy's
    bits, and move the planes (they are not no-ops)."""
    levels = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
    cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    noise = np.random.default_rng(3).integers(0, 256, (400, 3), dtype=np.uint8)
    pixels = np.concatenate([cube, noise]).reshape(4, -1, 3)
    header = image_header(pixels, False)
    plain = pixels.reshape(-1, 3).astype(np.float32) @ colour.YCC_WEIGHTS.T * colour.YCC_UNIT
    for table in (False, True):  # the mean correction (originals) and the table (decoded)
        planes = []
        for on in (False, True):
            monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
            source = PlaneSource(pixels, header)
            source.on_decoder_grid = table
            planes.append([source.patches(i, 0, 4, 4) for i in range(3)]
                          + [source.full_rows(i, 0, 4) for i in range(3)])
        for a, b in zip(*planes):
            assert a.tobytes() == b.tobytes()
        assert not np.array_equal(np.sort(planes[0][0].ravel()), np.sort(plain[:, 0]))


def test_unbiased_rows_by_every_kernel_level(compiled: Any) -> None:
    """patch_plane with the bias table (an image on the decoder's grid) by every row kernel
    this CPU runs (colour_rows: from level 1 the AVX2 sums and table gathers) gives numpy's
    bits (`codec.colour.unbiased`), for each plane: widths below one group of 8 pixels, with
    and without a tail, the last pixel of each row (left to the scalar loop), chroma clipped
    at 0 and 255 and grey (the table's middle), in rows of 3 channels and of 4 (scalar)."""
    rng = np.random.default_rng(29)
    best = compiled.colour_rows()
    weights = colour.YCC_WEIGHTS.ravel()
    try:
        for trial in range(120):
            h, w, c = int(rng.integers(1, 6)), int(rng.integers(1, 70)), 3 + trial % 4 // 3
            pixels = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            if trial % 4 == 1:  # grey
                pixels[..., 1:3] = pixels[..., :1]
            elif trial % 4 == 2:  # saturated: Cb and Cr clipped
                pixels[..., 0], pixels[..., 2] = 255 * (trial % 8 == 2), 255 * (trial % 8 != 2)
            expected = colour.plain_ycc(pixels[..., :3])
            for plane in range(3):
                want = colour.unbiased(expected, plane)
                for level in range(best + 1):
                    compiled.colour_rows(level)
                    out = np.empty((h * w, 1), np.float32)
                    compiled.patch_plane(pixels, 0, h, np.arange(3), weights,
                                         np.float32(colour.YCC_UNIT), 1, out,
                                         colour.bias_table(), plane)
                    assert out.reshape(h, w).tobytes() == want.tobytes(), (trial, plane, level)
    finally:
        compiled.colour_rows(best)


def test_colour_rows_of_bytes_by_every_kernel_level(compiled: Any) -> None:
    """patch_plane without the bias table on rows of 8-bit pixels of 3 and 4 channels, three
    channels or one (every one), by every row kernel this CPU runs (colour_rows: from level 1
    groups of 8 pixels by AVX2, the rest of the row by the plain loop) gives the float32 bits
    of numpy's operations in the same order: widths 1 to 40 (below one group, with and
    without a tail) and longer rows, random weights, units and offsets and the real Y'CbCr
    weights, unit and mean bias."""
    rng = np.random.default_rng(37)
    best = compiled.colour_rows()
    f32 = np.float32
    try:
        for trial in range(400):
            c, three = 3 + trial % 2, trial % 5 != 4
            w = 1 + trial % 40 if trial < 320 else int(rng.integers(41, 400))
            h = int(rng.integers(1, 4))
            pixels = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            if trial % 3 == 0:  # the encoder's Y'CbCr rows off the decoder's grid
                plane = trial % 9 // 3
                weights = colour.YCC_WEIGHTS[plane].astype(f32)
                unit, offset = f32(colour.YCC_UNIT), f32(colour.mean_bias()[plane])
            else:
                weights = rng.normal(0.0, 2.0, 3).astype(f32)
                unit, offset = f32(rng.uniform(-3.0, 3.0)), f32(rng.normal(0.0, 100.0))
            first = int(rng.integers(0, c))
            channels = np.arange(3) if three else np.array([first])
            s = pixels.astype(f32)
            if three:
                want = ((s[..., 0] * weights[0] + s[..., 1] * weights[1])
                        + s[..., 2] * weights[2]) * unit - offset
            else:
                want = s[..., first] * weights[0] * unit - offset
            for level in range(best + 1):
                compiled.colour_rows(level)
                out = np.empty((h * w, 1), f32)
                compiled.patch_plane(pixels, 0, h, channels, weights[:channels.size], unit, 1,
                                     out, offset=offset)
                assert out.reshape(h, w).tobytes() == want.tobytes(), (trial, c, w, level)
    finally:
        compiled.colour_rows(best)


def test_unbiased_rows_of_non_finite_chroma_stay_in_the_table(compiled: Any) -> None:
    """patch_plane with the bias table where Cb and Cr are not numbers (a NaN weight, an
    infinite unit: inputs of the caller, not of a file) clamps them as the AVX2 rows do, so
    the table reads stay in its 65536 (the plain loop converted NaN to int32 and read far
    outside it) and every row kernel gives the same bits (Y' of finite weights: finite)."""
    best = compiled.colour_rows()
    pixels = np.random.default_rng(31).integers(0, 256, (3, 21, 3), dtype=np.uint8)
    nan_cb = colour.YCC_WEIGHTS.ravel().copy()
    nan_cb[3] = np.nan
    cases = [(nan_cb, colour.YCC_UNIT, True), (colour.YCC_WEIGHTS.ravel(), np.inf, False)]
    try:
        for weights, unit, finite in cases:
            results = []
            for level in range(best + 1):
                compiled.colour_rows(level)
                out = np.empty((3 * 21, 1), np.float32)
                compiled.patch_plane(pixels, 0, 3, np.arange(3), weights, np.float32(unit), 1,
                                     out, colour.bias_table(), 0)
                assert not finite or np.isfinite(out).all()
                results.append(out.tobytes())
            assert all(r == results[0] for r in results)
    finally:
        compiled.colour_rows(best)


@pytest.mark.parametrize("name,image,subsample", SOURCES, ids=[c[0] for c in SOURCES])
def test_source_matches_numpy(monkeypatch: pytest.MonkeyPatch, name: str, image: np.ndarray,
                              subsample: bool) -> None:
    """The compiled colour conversion, chroma halving and patch transpose give the numpy path's
    bits, for every plane, patch size and band split (the last band and patch column padded)."""
    pixels = as_pixels(image)
    header = image_header(pixels, subsample)
    results = []
    for on in (False, True):
        monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
        source = PlaneSource(pixels, header)
        out = []
        for i, (h, _) in enumerate(source.shapes):
            out.append(source.rows(i, 0, h))
            for keep in (False, True):
                if keep and (h, pixels.shape[1]) != source.shapes[i]:  # as the encoder does
                    source.keep(i, [(y, min(h, y + 16)) for y in range(0, h, 16)])
                for side in (4, 8, 16):
                    out += [source.patches(i, y, min(h, y + 16), side) for y in range(0, h, 16)]
        results.append(out)
    assert len(results[0]) == len(results[1])
    for a, b in zip(*results):
        assert a.dtype == b.dtype == np.float32 and np.array_equal(a, b)


def test_decode_jobs_or_one_plane_at_a_time(monkeypatch: pytest.MonkeyPatch,
                                           compiled: Any) -> None:
    """The compiled 4:2:0 decoder gives the same pixels whether the chroma planes decode as
    concurrent jobs (small factors) or one after the other (large ones, as for hostile files)."""
    data = svdcodec.encode(photo(96, 128, 3), quality=50)
    together = svdcodec.decode(data)
    monkeypatch.setattr(band_sizes, "JOB_BYTES", 0)
    assert np.array_equal(svdcodec.decode(data), together)
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    assert np.array_equal(svdcodec.decode(data), together)


def _files() -> list[Path]:
    return (sorted(CORPUS.iterdir()) + sorted(REGRESSIONS.iterdir())
            + sorted((VECTORS / "valid").glob("*.svdi")) + sorted((VECTORS / "invalid").glob("*.svdi")))


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_files_same_outcome(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    same_outcome(monkeypatch, path.read_bytes(), max_pixels=None)
    for k in (2, 8):
        same_outcome(monkeypatch, path.read_bytes(), max_pixels=None, reduce=k)


def _chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset of the payload, type, length) of every chunk."""
    out, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((pos + 8, data[pos + 4:pos + 8], length))
        pos += 12 + length
    return out


def with_sparse_block(box: container.Container, index: int, streams: tuple) -> bytes:
    """The file written again with block `index` replaced by a sparse block of these streams
    (symbols, run escapes, value escapes): valid zstd and CRCs around whatever they hold."""
    block = box.blocks[index]
    mutated = container.Block(block.factor, block.plane, block.first, block.count,
                              container.SPARSE, streams)
    blocks = [mutated if i == index else b for i, b in enumerate(box.blocks)]
    return container.pack(dataclasses.replace(box, blocks=blocks), 1)


def test_mutated_sparse_blocks_same_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sparse U blocks re-packed with mutated symbol streams (valid zstd, valid CRC): the
    kernels must reject exactly what numpy rejects and decode the rest to the same pixels."""
    data = svdcodec.encode(photo(48, 64, 3), quality=70)
    box = container.unpack(data)
    sparse = [i for i, b in enumerate(box.blocks) if b.coding == container.SPARSE]
    assert sparse
    rng = random.Random(5)
    decided = {"pixels": 0, "SvdiError": 0}
    for _ in range(400):
        index = rng.choice(sparse)
        block = box.blocks[index]
        symbols, xrun, xval = (a.copy() for a in block.data())
        kind = rng.randrange(4)
        if kind == 0 and symbols.size:  # any byte
            symbols[rng.randrange(symbols.size)] = rng.randrange(256)
        elif kind == 1 and symbols.size:  # a long run or a value escape where there was none
            symbols[rng.randrange(symbols.size)] = rng.choice([0xF0 | rng.randrange(16), 0x00,
                                                               0x08, 0xF8])
        elif kind == 2 and xrun.size:
            xrun[rng.randrange(xrun.size)] = rng.randrange(65536)
        elif xval.size:
            xval[rng.randrange(xval.size)] = rng.choice([0, 1, -1, 32767, -32768])
        candidate = with_sparse_block(box, index, (symbols, xrun, xval))
        decided[same_outcome(monkeypatch, candidate)] += 1
        same_outcome(monkeypatch, candidate, reduce=2)  # a thumbnail's verdict too
    assert decided["pixels"] > 20 and decided["SvdiError"] > 20  # both branches exercised


def _pillow_rgb(luma: int) -> np.ndarray:
    """Pillow's Y'CbCr -> RGB of every 8-bit (Cb, Cr) at one luma, (256, 256, 3) int16."""
    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8),
                         indexing="ij")
    ycc = np.stack([np.full_like(cb, luma), cb, cr], axis=-1)
    return np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB")).astype(np.int16)


def test_ycc_terms_are_pillows() -> None:
    """Spec §5's conversion terms, written out in codec.colour, are what Pillow's conversion
    adds to Y': read off Pillow at luma 0 (at 255 where the term is negative), and Y' + term
    clamped is Pillow's at luma 128 too. (Pillow is not asked at run time: this says the spec's
    conversion is still Pillow's.)"""
    table = ycc_terms()
    dark, bright, middle = _pillow_rgb(0), _pillow_rgb(255), _pillow_rgb(128)
    assert table.dtype == np.int16 and not table.flags.writeable
    assert np.array_equal(table, np.where(dark > 0, dark, bright - 255))
    assert np.array_equal(np.clip(table + 128, 0, 255), middle)
    assert table.min() == -227 and table.max() == 225  # as ycc_to_rgb's int16 sums assume
    assert np.all(table[..., 0] == table[:1, :, 0]) and np.all(table[..., 2] == table[:, :1, 2])


def test_decoders_do_not_ask_pillow_to_convert_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 8-bit Y'CbCr -> RGB of every decoder (the compiled and numpy paths, the reference,
    a thumbnail) and the encoder's bias table are spec §5's arithmetic, not a call to Pillow:
    a Pillow whose conversion were different changes no pixel and no byte."""
    rng = np.random.default_rng(5)
    image = np.clip(rng.normal(128, 60, (40, 56, 3)), 0, 255).astype(np.uint8)
    with kernels_path(True):
        data = svdcodec.encode(image, quality=60)
        expected, thumb = svdcodec.decode(data), svdcodec.decode(data, reduce=2)
    real = Image.Image.convert

    def off_by_one(self: Image.Image, mode: str | None = None, *args: Any, **kw: Any
                   ) -> Image.Image:
        out = real(self, mode, *args, **kw)
        if self.mode == "YCbCr" and mode == "RGB":
            return Image.fromarray(np.asarray(out) ^ np.uint8(1), "RGB")
        return out
    monkeypatch.setattr(Image.Image, "convert", off_by_one)
    colour.decoder_bias.cache_clear()
    colour.bias_table.cache_clear()
    colour.mean_bias.cache_clear()
    try:
        for compiled_path in (True, False):
            with kernels_path(compiled_path):
                assert svdcodec.encode(image, quality=60) == data, compiled_path
                assert np.array_equal(svdcodec.decode(data), expected), compiled_path
                assert np.array_equal(svdcodec.decode(data, reduce=2), thumb), compiled_path
        assert np.array_equal(decode_reference(data), expected)
    finally:
        colour.decoder_bias.cache_clear()
        colour.bias_table.cache_clear()
        colour.mean_bias.cache_clear()


def test_ycc_to_rgb_in_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numpy conversion gives Pillow's RGB of every (Y', Cb, Cr) in pieces of the default
    size; in pieces of one pixel, of seven (a last piece shorter) and of more than the image
    on the first lumas; any layout of samples (a view of RGBA, a transpose)."""
    levels = np.arange(256, dtype=np.uint8)
    ycc = np.empty((256, 256, 256, 3), np.uint8)  # [Y', Cb, Cr]
    ycc[..., 0], ycc[..., 1], ycc[..., 2] = (levels[:, None, None], levels[None, :, None],
                                             levels[None, None, :])
    expected = np.asarray(Image.fromarray(ycc.reshape(4096, 4096, 3), "YCbCr").convert("RGB")
                          ).reshape(ycc.shape)
    for size, lumas, cbs in ((1, 1, 32), (7, 2, 256), (colour.YCC_PIXELS_AT_ONCE, 256, 256),
                             (1 << 20, 8, 256)):
        monkeypatch.setattr(colour, "YCC_PIXELS_AT_ONCE", size)
        got = ycc_to_rgb(ycc[:lumas, :cbs])
        assert got.shape == ycc[:lumas, :cbs].shape and got.dtype == np.uint8
        assert np.array_equal(got, expected[:lumas, :cbs]), size
    monkeypatch.undo()
    rgba = np.concatenate([ycc[100], np.full((256, 256, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(ycc_to_rgb(rgba[:, :, :3]), expected[100])
    assert np.array_equal(ycc_to_rgb(ycc[100].transpose(1, 0, 2)),
                          expected[100].transpose(1, 0, 2))
    with pytest.raises(ValueError):
        ycc_to_rgb(ycc[0].astype(np.int16))


def test_colour_conversion_is_pillows(compiled: Any) -> None:
    """Every (Y', Cb, Cr) converts as Pillow converts it, by every colour_rows level this CPU
    runs (from 1 the rows split into Y', Cb and Cr lines and converted as deblock_ycc
    converts them), rows of a width with a tail of the 8 or 16 pixels too."""
    k = YCC_MULTIPLIERS
    ycc = np.stack(np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij"),
                   -1).astype(np.uint8).reshape(4096, 4096, 3)
    expected = np.asarray(Image.fromarray(ycc, "YCbCr").convert("RGB"))
    best = compiled.colour_rows()
    try:
        for level in range(best + 1):
            compiled.colour_rows(level)
            out = ycc.copy()
            compiled.convert_ycc(out, 0, out.shape[0], k)
            assert np.array_equal(out, expected), level
            odd = ycc.reshape(-1, 3)[:500 * 4093].reshape(500, 4093, 3).copy()
            want = expected.reshape(-1, 3)[:500 * 4093].reshape(500, 4093, 3)
            compiled.convert_ycc(odd, 0, 500, k)
            assert np.array_equal(odd, want), level
            # 4 channels: with a pad, channel 3 becomes it (Pillow's RGBX); without, it is
            # kept (RGBA)
            rows = slice(0, 64)
            four = np.concatenate(
                [ycc[rows], np.arange(64 * 4096, dtype=np.uint8).reshape(64, 4096, 1)], axis=2)
            for pad, fourth in ((255, np.full((64, 4096), 255, np.uint8)),
                                (-1, four[:, :, 3].copy())):
                out = four.copy()
                compiled.convert_ycc(out, 0, 64, k, pad)
                assert np.array_equal(out[:, :, :3], expected[rows]), level
                assert np.array_equal(out[:, :, 3], fourth), level
    finally:
        compiled.colour_rows(best)


def test_chroma_doubling_by_every_kernel_level(compiled: Any) -> None:
    """double_chroma by every colour_rows level this CPU runs (from 1 Cb and Cr blended into
    lines of bytes as deblock_ycc blends them, then put into the row) gives the plain loops'
    bytes: rows of 3 and 4 channels, widths with and without a tail of 8 or 16, bands held alone, chroma beyond the
    byte range (clamped), the other channels untouched."""
    rng = np.random.default_rng(41)
    best = compiled.colour_rows()
    try:
        for trial in range(40):
            h, w, c = 2 * int(rng.integers(1, 10)), 2 * int(rng.integers(1, 35)), 3 + trial % 2
            halves = [rng.normal(0, (60, 200)[trial % 3 == 0], (h // 2, w // 2)).astype(np.float32)
                      for _ in range(2)]
            image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            y0 = int(rng.integers(0, h))
            y1 = int(rng.integers(y0 + 1, h + 1))
            results = []
            for level in range(best + 1):
                compiled.colour_rows(level)
                band = image[y0:y1].copy()
                compiled.double_chroma(band, y0, y1, *halves, top=y0, height=h)
                results.append(band)
            for level, band in enumerate(results):
                assert band.tobytes() == results[0].tobytes(), (trial, level)
            np.testing.assert_array_equal(results[0][..., 0], image[y0:y1, :, 0])
            if c == 4:
                np.testing.assert_array_equal(results[0][..., 3], image[y0:y1, :, 3])
    finally:
        compiled.colour_rows(best)


def test_vertical_edges_by_every_kernel_level(compiled: Any) -> None:
    """deblock's vertical edges (axis 1) by every colour_rows level this CPU runs (from 1 the
    channels of rows of 3 and 4 channels gathered into lines, filtered by deblock_ycc's
    kernel, put back) give the plain loops' bytes: periods 2 to 16 (below 4 the plain loop),
    widths around the 16 samples of a step, 1 to 4 channels, some channels unfiltered."""
    rng = np.random.default_rng(43)
    best = compiled.colour_rows()
    changed = 0
    try:
        for trial in range(300):
            h, w, c = int(rng.integers(1, 6)), int(rng.integers(1, 90)), (3, 4, 1, 2)[trial % 4]
            image = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            if trial % 3 == 0:  # smooth: most edges filtered
                image = np.clip(np.cumsum(rng.integers(-3, 4, (h, w, c)), 1) + 128, 0,
                                255).astype(np.uint8)
            channels = rng.permutation(c)[: int(rng.integers(1, c + 1))]
            filters = np.array([(ch, int(rng.choice([2, 3, 4, 5, 8, 16])),
                                 *(int(v) for v in rng.integers(0, 256, 3)))
                                for ch in channels], np.int64)
            results = []
            for level in range(best + 1):
                compiled.colour_rows(level)
                out = image.copy()
                compiled.deblock(out, filters, 1, 0, h)
                results.append(out.tobytes())
            assert results == [results[0]] * len(results), trial
            changed += results[0] != image.tobytes()
    finally:
        compiled.colour_rows(best)
    assert changed > 100  # the filter acts


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_dense_unprediction_matches_numpy(compiled: Any, dtype: type) -> None:
    """unpredict_into = coding.unpredict, cast to float32 and scaled, for every predictor
    (int64 wrapping alike), written into columns [at, at + width) of a wider buffer."""
    rng = np.random.default_rng(5)
    info = np.iinfo(dtype)
    count, gh, gw = 3, 7, 9
    residuals = rng.integers(info.min, info.max, size=(count, gh, gw), endpoint=True,
                             dtype=dtype)
    scale = np.array([0.5, 3.0, 1e-3], dtype=np.float32)
    for predictor in (coding.NONE, coding.HORIZONTAL, coding.VERTICAL, coding.PLANAR):
        expected = coding.unpredict(residuals, predictor).reshape(count, -1).T
        expected = expected.astype(np.float32)[:, :2] * scale[:2]
        out = np.full((gh * gw, 5), 7.0, dtype=np.float32)
        compiled.unpredict_into(residuals.reshape(-1), gh, gw, predictor, 2, out, 2, scale)
        assert np.array_equal(out[:, 2:4], expected)
        assert np.all(out[:, [0, 1, 4]] == 7.0)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32])
def test_residual_rows_unpredict_as_numpy(compiled: Any, dtype: type) -> None:
    """unpredict_rows = codec.residual.unpredict_rows' numpy path, for every predictor, a
    block read in bands with the column sums carried (extreme carries: int64 wrapping alike),
    strided rows; the carry updated in place."""
    from svdcodec.codec import residual

    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    for trial in range(40):
        grid = rng.integers(info.min, info.max, size=(int(rng.integers(1, 12)),
                                                      int(rng.integers(1, 50))),
                            endpoint=True, dtype=dtype)
        if trial % 4 == 1:
            grid = grid[:, ::2]  # strided rows
        for predictor in (coding.NONE, coding.HORIZONTAL, coding.VERTICAL, coding.PLANAR):
            start = (rng.integers(-2 ** 62, 2 ** 62, grid.shape[1]) if trial % 3 == 2
                     else None)
            with kernels_path(False):
                expected, carry = residual.unpredict_rows(
                    grid, predictor, None if start is None else start.copy())
            column = None
            if predictor in (coding.VERTICAL, coding.PLANAR):
                column = np.zeros(grid.shape[1], np.int64) if start is None else start.copy()
            out = np.full(grid.shape, 7, np.int64)
            compiled.unpredict_rows(grid, predictor, column, out)
            assert np.array_equal(out, expected), (trial, predictor)
            if column is not None:
                assert np.array_equal(column, carry)
            # in two bands, the carry between them
            cut = grid.shape[0] // 2
            with kernels_path(True):
                top, between = residual.unpredict_rows(
                    grid[:cut], predictor, None if start is None else start.copy())
                bottom, _ = residual.unpredict_rows(grid[cut:], predictor, between)
            assert np.array_equal(np.concatenate([top, bottom]), out)


def test_residual_rows_refuse_what_does_not_fit(compiled: Any) -> None:
    grid = np.zeros((3, 5), np.int16)
    out = np.zeros((3, 5), np.int64)
    with pytest.raises(ValueError, match="predictor"):
        compiled.unpredict_rows(grid, 4, None, out)
    with pytest.raises(TypeError):
        compiled.unpredict_rows(grid, coding.VERTICAL, None, out)  # no column sums
    with pytest.raises(ValueError, match="sizes"):
        compiled.unpredict_rows(grid, coding.VERTICAL, np.zeros(4, np.int64), out)
    with pytest.raises(ValueError, match="sizes"):
        compiled.unpredict_rows(grid, coding.NONE, None, np.zeros((3, 4), np.int64))
    with pytest.raises(ValueError, match="C-contiguous"):
        compiled.unpredict_rows(grid, coding.NONE, None, np.zeros((3, 10), np.int64)[:, ::2])
    with pytest.raises(TypeError):
        compiled.unpredict_rows(grid.astype(np.int64), coding.NONE, None, out)
    with pytest.raises(TypeError):
        compiled.unpredict_rows(grid, coding.NONE, None, out.astype(np.int32))
    empty = np.zeros((0, 5), np.int64)
    compiled.unpredict_rows(np.zeros((0, 5), np.int8), coding.PLANAR, np.zeros(5, np.int64),
                            empty)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64])
def test_dense_unprediction_of_grid_rows_alone(compiled: Any, dtype: type) -> None:
    """A range of grid rows unpredicts alone with the column sums above it (`column`), for
    every predictor: the same values as the whole grid's rows, int64 wrapping alike; the
    sums as `decoder.plane.column_sums` makes them, at any band starts."""
    rng = np.random.default_rng(6)
    info = np.iinfo(dtype)
    count, gh, gw = 2, 11, 5
    residuals = rng.integers(info.min, info.max, size=(count, gh * gw), endpoint=True,
                             dtype=dtype)
    scale = np.array([0.25, 2.0], dtype=np.float32)
    starts = [0, 3, 4, 9]  # grid rows: bands [0, 3), [3, 4), [4, 9), [9, 11)
    for predictor in (coding.NONE, coding.HORIZONTAL, coding.VERTICAL, coding.PLANAR):
        whole = np.zeros((gh * gw, count), dtype=np.float32)
        compiled.unpredict_into(residuals.reshape(-1), gh, gw, predictor, count, whole, 0,
                                scale)
        sums = column_sums(residuals, (gh, gw), predictor, [g * gw for g in starts])
        assert (sums is None) == (predictor in (coding.NONE, coding.HORIZONTAL))
        for i, (g0, g1) in enumerate(zip(starts, [*starts[1:], gh])):
            part = np.zeros(((g1 - g0) * gw, count), dtype=np.float32)
            for k in range(count):
                compiled.unpredict_into(residuals[k, g0 * gw:g1 * gw], g1 - g0, gw, predictor,
                                        1, part, k, scale[k:k + 1],
                                        None if sums is None else sums[k, i])
            assert np.array_equal(part, whole[g0 * gw:g1 * gw])
    with pytest.raises(ValueError):  # fewer sums than columns
        compiled.unpredict_into(residuals[0], gh, gw, coding.VERTICAL, 1, whole, 0, scale,
                                np.zeros(gw - 1, np.int64))


def test_symbols_and_entropy(monkeypatch: pytest.MonkeyPatch, compiled: Any) -> None:
    rng = np.random.default_rng(3)
    for dtype in (np.int16, np.int32):
        m = (rng.laplace(size=(500, 40)) * rng.random(40) * 8).astype(dtype)
        m[rng.random(m.shape) < 0.4] = 0
        m[3] = 0
        m[4, 39] = 20000
        m[5, 0] = -3
        m[6] = 0
        m[6, 39] = 1  # a run of 39
        if dtype == np.int32:  # more than 64 components: the kernel scans 64 at a time
            m = np.concatenate([m, m, m[:, :2] * 0, m], axis=1)
            m[7, 63:66] = [2, 0, -9]
        got = compiled.symbols(m, 0, m.shape[1]), compiled.entropy_bits(m[:, 7], 1 << 16)
        part = coding.band_symbols(m, 3, 37)  # a column range, as the encoder asks
        monkeypatch.setenv("SVDCODEC_KERNELS", "0")
        expected = coding.band_symbols(m), entropy_bits(m[:, 7])
        assert all(np.array_equal(a, b) for a, b in zip(part, coding.band_symbols(m[:, 3:37])))
        monkeypatch.setenv("SVDCODEC_KERNELS", "1")
        for a, b in zip(got[0], expected[0]):
            assert a.dtype == b.dtype or a.dtype.kind == b.dtype.kind == "i"
            assert np.array_equal(a, b)
        assert round(got[1], 6) == expected[1]  # entropy_bits compares estimates rounded


@pytest.mark.parametrize("patches", [False, True])
def test_quantize_matches_numpy(monkeypatch: pytest.MonkeyPatch, patches: bool) -> None:
    """Both paths, with one step or (`patches`) each column at its own step (the kernel's
    inv_steps): the same integers and sums."""
    rng = np.random.default_rng(4)
    values = (rng.standard_normal((300, 24)) * 40).astype(np.float32)
    values[0, 0] = -0.0
    results = []
    for on in (False, True):
        monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
        stats = ColumnStats(24, 1.7, patches=patches)
        ints = stats.add(values[:100])
        ints = np.concatenate([ints, stats.add(values[100:])])
        results.append((ints, stats.top.copy(), stats.error.copy(), stats.squares.copy()))
    (ia, ta, ea, sa), (ib, tb, eb, sb) = results
    assert np.array_equal(ia, ib) and np.array_equal(ta, tb)
    np.testing.assert_allclose(ea, eb, rtol=1e-5)
    # The sums of squares the encoder refits sigma with (`codec.refine.refitted_sigma`): the
    # same bits on both paths, and the integers' own
    assert np.array_equal(sa, sb)
    assert np.array_equal(sa, (ia.astype(np.float64) ** 2).sum(axis=0))
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    with pytest.raises(OverflowError):
        ColumnStats(1, 1e-30).add(np.array([[1e10]], dtype=np.float32))


def test_lattice_integers_are_quantize_of_the_quotients(compiled: Any) -> None:
    """`_kernels.lattice_integers` (a round of `codec.refine.fit_basis`) gives
    quantize(coefficients / steps, 1.0) and the row maxima and column flags numpy computes,
    on C-ordered, Fortran-ordered and strided coefficients, empty and one-column shapes, ±0
    and values near a rounding boundary; it refuses NaN and integers beyond int32 (False),
    and arrays of other shapes (ValueError)."""
    from svdcodec.codec.quantize import FIRST_ROUNDING, ROUNDING
    rng = np.random.default_rng(9)
    for case in range(400):
        rows, cols = int(rng.integers(0, 200)), int(rng.integers(1, 70))
        scale = float(rng.choice([0.01, 1.0, 30.0, 1e4]))
        c = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        c[rng.random(c.shape) < 0.05] = 0.0
        c[rng.random(c.shape) < 0.02] = -0.0
        steps = np.full(cols, float(rng.choice([0.3, 1.0, 2.7, 13.0])))
        steps[0] *= 0.7
        # quotients just below, at and above the points where |v| + offset reaches an integer
        near = rng.random(c.shape) < 0.05
        k = rng.integers(-5, 6, c.shape)
        edge = (k + np.sign(k) * (1 - ROUNDING)) * steps
        c[near] = edge[near].astype(np.float32)
        if case % 4 == 1:
            c = np.asfortranarray(c)
        elif case % 4 == 2:
            c = np.repeat(c, 2, axis=1)[:, ::2]
        elif case % 4 == 3:  # unaligned: the kernel's element-by-element loop
            buffer = np.zeros(c.nbytes + 1, np.uint8)
            unaligned = np.frombuffer(buffer.data, np.float32, c.size, 1).reshape(c.shape)
            unaligned[...] = c
            c = unaligned
        ints = np.empty((rows, cols), np.int32)
        largest = np.empty(rows, np.float32)
        nonzero = np.empty(cols, bool)
        assert compiled.lattice_integers(c, steps, ROUNDING, FIRST_ROUNDING, ints, largest,
                                         nonzero)
        expected = quantize.quantize(c / steps, 1.0)
        assert np.array_equal(ints, expected)
        beyond = np.abs(c[:, 1:]).max(axis=1, initial=0.0)
        assert np.array_equal(largest, beyond)
        assert np.array_equal(nonzero, np.any(expected != 0, axis=0))
    steps = np.ones(4)
    for bad in (np.nan, 3e9, -3e9, np.inf):
        c = np.ones((3, 4), np.float32)
        c[1, 2] = bad
        assert not compiled.lattice_integers(c, steps, ROUNDING, FIRST_ROUNDING,
                                             np.empty((3, 4), np.int32),
                                             np.empty(3, np.float32), np.empty(4, bool))
    c = np.ones((3, 4), np.float32)
    for ints, largest, nonzero, step in (((3, 5), 3, 4, 4), ((3, 4), 2, 4, 4),
                                         ((3, 4), 3, 3, 4), ((3, 4), 3, 4, 5)):
        with pytest.raises(ValueError):
            compiled.lattice_integers(c, np.ones(step), ROUNDING, FIRST_ROUNDING,
                                      np.empty(ints, np.int32), np.empty(largest, np.float32),
                                      np.empty(nonzero, bool))
    outputs = (np.empty((3, 4), np.int32), np.empty(3, np.float32), np.empty(4, bool))
    for rounding, first in ((-0.5, 0.5), (0.38, -1e30), (1.0, 0.5), (0.38, np.nan)):
        with pytest.raises(ValueError):  # an offset whose truncation would not be the floor
            compiled.lattice_integers(c, np.ones(4), rounding, first, *outputs)
    # a column count whose work buffer would overflow a size (stride-0 arrays hold no memory)
    huge = 1 << 59  # (cols + 1) * 17 bytes: beyond 2^63
    wide = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (0, huge), (0, 0))
    with pytest.raises(MemoryError):
        compiled.lattice_integers(
            wide, np.lib.stride_tricks.as_strided(np.ones(1), (huge,), (0,)), ROUNDING,
            FIRST_ROUNDING, np.lib.stride_tricks.as_strided(np.zeros(1, np.int32), (0, huge),
                                                            (0, 0), writeable=True),
            np.empty(0, np.float32),
            np.lib.stride_tricks.as_strided(np.zeros(1, bool), (huge,), (0,), writeable=True))


def test_fitted_basis_matches_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """`codec.refine.fit_basis` on both paths (its rounds' lattice by the kernel or by numpy):
    the same integers and singular values, on a decoded photo's patches and an original's."""
    from svdcodec.codec.factorize import basis
    from svdcodec.codec.refine import fit_basis
    pixels = np.asarray(Image.open(ROOT / "svdcodec" / "data" / "sample.png").convert("L"))
    decoded = svdcodec.decode(svdcodec.encode(pixels, quality=50))
    for image, side in ((pixels, 8), (decoded, 8), (decoded, 4)):
        h, w = (s - s % side for s in image.shape)
        rows = image[:h, :w].reshape(h // side, side, w // side, side).swapaxes(1, 2)
        rows = rows.reshape(-1, side * side).astype(np.float32)
        sigma, unit = basis(rows.T.astype(np.float64) @ rows, side * side)
        got = []
        for on in ("0", "1"):
            monkeypatch.setenv("SVDCODEC_KERNELS", on)
            got.append(fit_basis(rows, unit, sigma, 6.0))
        (b0, s0), (b1, s1) = got
        assert b0.shape == b1.shape and b0.shape[1] > 0
        assert np.array_equal(b0, b1) and s0.tobytes() == s1.tobytes()


def test_fitted_basis_of_coefficients_below_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows whose every coefficient quantizes to zero (small against the step, while their
    singular values, summed over many rows, give a basis with integers): nothing is left to
    fit, on both paths, and the encoder makes no fitted candidate of them."""
    from svdcodec.codec.factorize import basis
    from svdcodec.codec.refine import fit_basis
    rows = np.random.default_rng(3).normal(0.0, 0.3, (4000, 16)).astype(np.float32)
    sigma, unit = basis(rows.T.astype(np.float64) @ rows, 16)
    steps = quantize.component_steps(16) * 10.0
    assert not quantize.quantize((rows @ unit) / steps, 1.0).any()  # the first round's
    assert quantize.quantize(unit * (sigma / 10.0), step=1.0).any()  # a basis to start from
    for on in ("0", "1"):
        monkeypatch.setenv("SVDCODEC_KERNELS", on)
        _, s = fit_basis(rows, unit, sigma, 10.0)
        assert s.size == 0


def test_encoder_aq_map_matches_numpy(monkeypatch: pytest.MonkeyPatch, compiled: Any) -> None:
    """`encoder.aq.encoder_map` (the map an aq=True encode quantizes its luma by, grid row by
    grid row) by `_kernels.aq_encoder_map` and by the numpy loop: the same multipliers on random
    grids, components, patch sides, steps, G, roundings and coefficients (±0, on the lattice,
    split into bands); both refuse a value beyond int32; the kernel checks its arguments."""
    from svdcodec.codec import aq
    from svdcodec.encoder import aq as encoder_aq
    rng = np.random.default_rng(5)
    for case in range(150):
        gw, gh, k = int(rng.integers(1, 40)), int(rng.integers(1, 30)), int(rng.integers(1, 17))
        patch, step = int(rng.choice([4, 8, 16])), float(rng.choice([0.5, 2.0, 13.0, 40.0]))
        scale = float(rng.choice([1, 100, 1e5])) * np.geomspace(3, 0.3, k)
        values = (rng.standard_normal((gh * gw, k)) * scale).astype(np.float32)
        values[rng.random(values.shape) < 0.05] *= -0.0
        if case % 5 == 0:
            values = np.round(values / step) * step
        if case % 4 == 1:  # coefficients of more components than the map reads: strided
            values = np.repeat(values, 2, axis=1)[:, ::2]
        args = (np.array_split(values, int(rng.integers(1, 4))), (gh, gw), patch, step,
                aq.g_bits(float(rng.choice([10, 1000, 5000]))), k,
                None if case % 2 else 0.6, float(rng.choice([0.38, 0.44])))
        maps = []
        for on in ("0", "1"):
            monkeypatch.setenv("SVDCODEC_KERNELS", on)
            maps.append(encoder_aq.encoder_map(*args))
        assert maps[0].dtype == maps[1].dtype == np.int64
        assert np.array_equal(maps[0], maps[1]), case
    for column in (0, 1):  # the patch means', or a later row's component beyond int32
        huge = np.ones((6, 2), np.float32)
        huge[4, column] = 1e12
        for on in ("0", "1"):
            monkeypatch.setenv("SVDCODEC_KERNELS", on)
            with pytest.raises(OverflowError):
                encoder_aq.encoder_map([huge], (2, 3), 8, 0.5, aq.g_bits(100.0), 2)
    values = np.ones((6, 2), np.float32)
    good = {"values": values, "table": np.ones((7, 2), np.float32),
            "offsets": np.full(2, 0.5, np.float32), "grid_width": 3, "limits": np.zeros(6),
            "mean_weight": 1.0, "out": np.empty(6, np.int64)}
    negative = np.ones((7, 2), np.float32)
    negative[6, 1] = -1.0
    for name, bad in (("values", np.ones((5, 2), np.float32)),
                      ("values", np.ones((6, 17), np.float32)),
                      ("table", np.ones((6, 2), np.float32)), ("table", negative),
                      ("offsets", np.ones(3, np.float32)),
                      ("offsets", np.array([0.5, -np.inf], np.float32)),
                      ("offsets", np.array([0.5, np.nan], np.float32)), ("grid_width", 4),
                      ("grid_width", 0), ("limits", np.zeros(5)),
                      ("out", np.empty(6, np.int32))):
        with pytest.raises((ValueError, TypeError)):
            compiled.aq_encoder_map(**{**good, name: bad})
    assert compiled.aq_encoder_map(**good)


@pytest.mark.parametrize("patches", [False, True])
def test_optimised_quantization_matches_numpy(monkeypatch: pytest.MonkeyPatch,
                                              patches: bool) -> None:
    """With run/level groups (`optimise_levels`, numpy on both paths, from the kernel's
    integers): the same integers into an int16 band of a wider array, as the encoder asks;
    also with each column at its own step (`patches`)."""
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", 0.10)
    rng = np.random.default_rng(5)
    values = (rng.standard_normal((300, 24)) * (30.0 / (1.0 + np.arange(24)))).astype(np.float32)
    results = []
    for on in (False, True):
        monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
        stats = ColumnStats(24, 0.9, [(1, 16), (16, 24)], patches=patches)
        out = np.zeros((400, 24), dtype=np.int16)
        stats.add(values, out=out[50:350])
        results.append((out, stats.top.copy(), stats.error.copy(), stats.squares.copy()))
    (ia, ta, ea, sa), (ib, tb, eb, sb) = results
    assert np.array_equal(ia, ib) and np.array_equal(ta, tb)
    assert not ia[:50].any() and not ia[350:].any()
    np.testing.assert_allclose(ea, eb, rtol=1e-5)
    assert np.array_equal(sa, sb)  # of the optimised integers
    assert np.array_equal(sa, (ia.astype(np.float64) ** 2).sum(axis=0))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("lam", [0.0, 0.1, 0.4])
def test_lower_levels_matches_numpy(compiled: Any, dtype: type, lam: float) -> None:
    """One round of `optimise_levels`: the kernel (a strided band, as a column slice of a wider
    array gives) and its numpy twin lower the same levels with the same added errors, rows of
    more than 64 columns and long runs and large values (escapes) included."""
    rng = np.random.default_rng(11)
    values = (rng.standard_normal((97, 150)) * (12.0 / (1.0 + np.arange(150)) ** 0.7)
              ).astype(np.float32)
    values[5, 40] = 60.0  # a value escape
    values[::7, 20:140] = 0.0  # rows with long runs
    values[::9, 130] = 0.7
    wide = np.zeros((97, 160), dtype=dtype)
    wide[:, 5:155] = quantize.quantize(values, 0.8, rounding=0.5).astype(dtype)
    twin = wide.copy()
    lo, hi, inv = 1, 150, np.float32(1.0 / 0.8)
    band = wide[:, 5:155]
    counts = np.bincount(compiled.symbols(band, lo, hi)[0], minlength=256)
    cost = np.zeros(hi - lo)
    changed = compiled.lower_levels(band, values, inv, lo, hi, quantize.symbol_bits(counts), lam,
                                    cost)
    expected, expected_cost = quantize.lower_levels(twin[:, 5:155], values, inv, lo, hi, lam)
    assert changed == expected and np.array_equal(wide, twin)
    assert np.array_equal(cost, expected_cost)  # same sums in the same order
    assert (changed > 0) == (lam > 0)


def test_lower_levels_checks_its_arguments(compiled: Any) -> None:
    ints = np.zeros((4, 6), dtype=np.int16)
    values = np.zeros((4, 6), dtype=np.float32)
    bits, cost = np.zeros(256), np.zeros(5)
    compiled.lower_levels(ints, values, 1.0, 1, 6, bits, 0.1, cost)
    for args in ((ints, values[:3], 1.0, 1, 6, bits, 0.1, cost),  # shapes differ
                 (ints, values, 1.0, 1, 7, bits, 0.1, np.zeros(6)),  # beyond the columns
                 (ints, values, 1.0, 4, 2, bits, 0.1, cost),  # hi < lo
                 (ints, values, 1.0, 1, 6, bits[:255], 0.1, cost),  # short table
                 (ints, values, 1.0, 1, 6, bits, 0.1, np.zeros(4))):  # short costs
        with pytest.raises(ValueError):
            compiled.lower_levels(*args)
    with pytest.raises(TypeError):
        compiled.lower_levels(ints.astype(np.uint16), values, 1.0, 1, 6, bits, 0.1, cost)
    with pytest.raises(TypeError):  # read-only integers
        ints.flags.writeable = False
        compiled.lower_levels(ints, values, 1.0, 1, 6, bits, 0.1, cost)


def test_sparse_index_checks(compiled: Any) -> None:
    """The kernels' own checks, each error code once, and decoding from a checkpoint."""
    symbols = np.array([0x19, 0x08, 0x08, 0x0A, 0x08], dtype=np.uint8)  # rows: [0, 1], [], [2]
    empty16 = np.zeros(0, dtype=np.uint16)
    empty32 = np.zeros(0, dtype=np.int16)
    assert compiled.index_sparse(symbols, 4, 0, 0, 2)[3] == 1  # too few row ends
    assert compiled.index_sparse(symbols, 3, 1, 0, 2)[3] == 2  # escape counts
    marks = compiled.index_sparse(symbols, 3, 0, 0, 2)
    assert marks[3] == 0 and list(marks[0]) == [0, 3]
    ones = np.ones(4, dtype=np.float32)
    for r0 in range(3):  # any range of rows, from the checkpoint before it
        for r1 in range(r0, 4):
            out = np.zeros((r1 - r0, 4), dtype=np.float32)
            assert compiled.fill_sparse(symbols, empty16, empty32, *marks[:3], 2, r0, r1, out,
                                        0, 4, 4, ones) == 0
            full = np.array([[0, 1, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]], dtype=np.float32)
            assert np.array_equal(out, full[r0:r1])
    out = np.zeros((3, 4), dtype=np.float32)
    assert compiled.fill_sparse(symbols, empty16, empty32, *marks[:3], 2, 0, 3, out, 0, 1, 1,
                                ones) == 4  # column 1 of a one-column block
    bad = np.array([0x18, 0x08], dtype=np.uint8)
    m2 = compiled.index_sparse(bad, 1, 0, 0, 64)
    assert compiled.fill_sparse(bad, empty16, empty32, *m2[:3], 64, 0, 1, out, 0, 4, 4,
                                ones) == 3
    zero = np.array([0x00, 0x08], dtype=np.uint8)
    m3 = compiled.index_sparse(zero, 1, 0, 1, 64)
    assert compiled.fill_sparse(zero, empty16, np.zeros(1, np.int16), *m3[:3], 64, 0, 1, out,
                                0, 4, 4, ones) == 5


@pytest.mark.parametrize("on", [False, True])
def test_entropy_of_wide_integers(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    """Integers spread over the whole int32 range (tiny quantizer steps) are counted without a
    histogram of 2^32 bins, to the entropy of the same pattern of small integers."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
    wide = np.array([-2**31, 2**31 - 1, 7, 7, 7, -2**31, 123456789], dtype=np.int32)
    small = np.array([0, 3, 1, 1, 1, 0, 2], dtype=np.int32)
    assert entropy_bits(wide) == pytest.approx(entropy_bits(small), rel=1e-12)
    assert entropy_bits(wide[::2]) == pytest.approx(entropy_bits(small[::2]), rel=1e-12)


def test_inconsistent_arguments_are_refused(compiled: Any) -> None:
    """The C functions check every shape and size argument against the arrays before their
    loops run (tests/sanitize.sh runs this under AddressSanitizer): misuse raises, it never
    reads or writes outside the buffers."""
    f32, u8 = np.float32, np.uint8
    symbols = np.array([0x19, 0x08, 0x08, 0x0A, 0x08], dtype=u8)
    marks = compiled.index_sparse(symbols, 3, 0, 0, 2)[:3]
    e16, e32 = np.zeros(0, np.uint16), np.zeros(0, np.int32)
    ones = np.ones(4, f32)
    out = np.zeros((3, 4), f32)
    sums, basis = np.zeros((3, 2), f32), np.ones((4, 2), f32)
    image = np.zeros((8, 6, 3), u8)
    k = YCC_MULTIPLIERS
    half = np.zeros((4, 3), f32)
    refused: list[tuple[Callable[[], Any], type]] = [
        (lambda: compiled.index_sparse(symbols, 3, 0, 0, 0), ValueError),  # every 0
        (lambda: compiled.index_sparse(symbols, -1, 0, 0, 2), ValueError),
        (lambda: compiled.index_sparse(symbols.astype(np.int16), 3, 0, 0, 2), TypeError),
        (lambda: compiled.index_sparse(symbols[None], 3, 0, 0, 2), ValueError),  # 2-D
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 0, 4, out, 0, 4, 4, ones),
         ValueError),  # more rows than out has
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 0, 3, out, 1, 4, 4, ones),
         ValueError),  # columns beyond out
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 0, 3, out, 0, 4, 4,
                                      ones[:3]), ValueError),  # scale too short
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 6, 7, out[:1], 0, 4, 4,
                                      ones), ValueError),  # no checkpoint for r0
        (lambda: compiled.fill_sparse(symbols, e16, e32, marks[0] - 9, *marks[1:], 2, 0, 3,
                                      out, 0, 4, 4, ones), ValueError),  # negative checkpoint
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 2, 1, out, 0, 4, 4, ones),
         ValueError),  # r1 < r0
        (lambda: compiled.fill_sparse(symbols, e16, e32, *marks, 2, 0, 3, out.astype(np.float64),
                                      0, 4, 4, ones), TypeError),
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 4, sums, 0, 4, 4,
                                        ones, basis), ValueError),  # more rows than sums has
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums, 1, 4, 4,
                                        ones, basis), ValueError),  # basis rows beyond 4
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums[:, :1].copy(),
                                        0, 4, 4, ones, basis), ValueError),  # 1 sum, 2 columns
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums[:, ::-1], 0,
                                        4, 4, ones, basis), ValueError),  # not C-contiguous
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums, 0, 4, 4,
                                        ones, basis[:, :0].copy()), ValueError),  # no column
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums, 0, 4, 4,
                                        ones * np.float32(np.inf), basis), ValueError),
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 0, 3, sums, 0, 4, 4,
                                        ones, basis * np.float32(np.nan)), ValueError),
        (lambda: compiled.reduce_sparse(symbols, e16, e32, *marks, 2, 6, 7, sums[:1], 0, 4, 4,
                                        ones, basis), ValueError),  # no checkpoint for r0
        (lambda: compiled.unpredict_into(np.zeros(10, np.int16), 3, 4, 0, 1, out, 0, ones),
         ValueError),  # 12 residuals needed
        (lambda: compiled.unpredict_into(np.zeros(12, np.int16), 3, 4, 0, 1, out, 0, ones),
         ValueError),  # out has 3 rows, not 12
        (lambda: compiled.unpredict_into(np.zeros(12, np.int16), 3, 1, 0, 1, out, 4, ones),
         ValueError),  # column 4 of 4
        (lambda: compiled.upsample_ycc(image, 0, 8, half[:3], half[:3], k), ValueError),
        (lambda: compiled.upsample_ycc(image, 0, 9, half, half, k), ValueError),
        (lambda: compiled.upsample_ycc(image[:, :, :2].copy(), 0, 8, half, half, k), ValueError),
        (lambda: compiled.upsample_ycc(image[:, ::2], 0, 8, half, half, k), ValueError),
        (lambda: compiled.upsample_ycc(image, 0, 8, half, half, k[:3]), ValueError),
        (lambda: compiled.upsample_ycc(image, 0, 8, half, half, k * np.float32(np.nan)),
         ValueError),
        (lambda: compiled.convert_ycc(image, 3, 2, k), ValueError),
        (lambda: compiled.store_rgb(np.zeros((2, 16), f32), image, 0, 8, half, half, k, 4, 2),
         ValueError),  # 2 patches of 4 rows cover 8 x 8, not 4 patches' rows
        (lambda: compiled.store_rgb(np.zeros((8, 4), f32), image, 0, 8, half, half, k, 2, 2),
         ValueError),  # 2 patches of 2 columns do not cover 6 columns
        (lambda: compiled.store_bytes(np.zeros((8, 6), f32), image, 0, 8, 0, 3, f32(0), 0, 0),
         ValueError),  # channel 3 of 3
        (lambda: compiled.store_bytes(np.zeros((7, 6), f32), image, 0, 8, 0, 0, f32(0), 0, 0),
         ValueError),  # 7 rows for 8
        (lambda: compiled.store_bytes(np.zeros((6, 16), f32), image, 0, 8, 2, 0, f32(0), 4, 2),
         ValueError),  # patches from column 2 run past the width
        (lambda: compiled.store_bytes(np.zeros((8, 6), f32), image, -1, 7, 0, 0, f32(0), 0, 0),
         ValueError),
        (lambda: compiled.store_floats(np.zeros((1, 8), f32), half, 0, 4, 4, 1), ValueError),
        (lambda: compiled.store_floats(np.zeros((1, 16), f32), half, 0, 4, 4, 1)
         or compiled.store_floats(np.zeros((1, 16), f32), half, 0, 5, 4, 1), ValueError),
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(3), np.ones(3, f32), f32(1), 4,
                                      np.zeros((3, 16), f32)), ValueError),  # needs 4 patches
        (lambda: compiled.patch_plane(image, 0, 8, np.array([3]), np.ones(1, f32), f32(1), 4,
                                      np.zeros((4, 16), f32)), ValueError),  # channel 3 of 3
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(2), np.ones(2, f32), f32(1), 4,
                                      np.zeros((4, 16), f32)), ValueError),  # two channels
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(3), np.ones(2, f32), f32(1), 4,
                                      np.zeros((4, 16), f32)), ValueError),  # two weights
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(3), colour.YCC_WEIGHTS[0],
                                      f32(1), 4, np.zeros((4, 16), f32), colour.bias_table(),
                                      0), ValueError),  # the bias needs all 9 weights
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(3), colour.YCC_WEIGHTS.ravel(),
                                      f32(1), 4, np.zeros((4, 16), f32), colour.bias_table(),
                                      3), ValueError),  # plane 3 of Y'CbCr
        (lambda: compiled.patch_plane(image, 0, 8, np.arange(3), colour.YCC_WEIGHTS.ravel(),
                                      f32(1), 4, np.zeros((4, 16), f32),
                                      colour.bias_table()[:, :-1], 0), ValueError),  # short table
        (lambda: compiled.lsq_gather(np.zeros((4, 6), f32), 2, np.array([[1, 2]]),
                                     np.ones((1, 2), f32), np.zeros((3, 1), np.int64),
                                     np.ones((3, 1), f32), np.zeros((1, 3), f32)),
         ValueError),  # row 1
        (lambda: compiled.lsq_gather(np.zeros((4, 6), f32), 0, np.array([[1, 2]]),
                                     np.ones((1, 2), f32), np.full((3, 1), 6, np.int64),
                                     np.ones((3, 1), f32), np.zeros((1, 3), f32)),
         ValueError),  # column 6
        (lambda: compiled.lsq_gather(np.zeros((4, 6), f32), 0, np.array([[1, 2]]),
                                     np.ones((1, 2), f32), np.zeros((3, 1), np.int64),
                                     np.ones((3, 1), f32), np.zeros((1, 4), f32)),
         ValueError),  # 4 columns
        (lambda: compiled.lsq_gather(np.zeros((4, 6), f32), 0, np.array([[1, 2]]),
                                     np.ones((1, 2)), np.zeros((3, 1), np.int64),
                                     np.ones((3, 1), f32), np.zeros((1, 3), f32)),
         TypeError),  # float64 weights
        (lambda: compiled.lsq_gather(np.zeros((4, 6), f32), 0, np.array([[1, 2]]),
                                     np.ones((1, 2), f32), np.zeros((3, 1), np.int64),
                                     np.ones((3, 1), f32), np.zeros((1, 3))),
         TypeError),  # float64 out
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 3), f32), 0),
         ValueError),
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 3), f32), 2),
         ValueError),
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 4), f32), 0, 2, 4),
         ValueError),  # stop past the 3 columns
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 4), f32), 0, 2, 1),
         ValueError),  # start after stop
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 4), f32), 0, -1, 2),
         ValueError),  # negative start
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 3), f32), 1, 1, 3),
         ValueError),  # a range along rows
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 3), f32), 1, 0, 3,
                                       np.zeros((4, 3), f32)), TypeError),  # no out now
        (lambda: compiled.banded_solve(np.ones((4, 3)), np.ones((2, 3), f32), 1),
         TypeError),  # float64 z
        (lambda: compiled.banded_solve(np.ones((4, 3), f32), np.ones((2, 3)), 1),
         TypeError),  # float64 chol
        (lambda: compiled.banded_solve(np.ones((4, 6), f32)[:, ::2], np.ones((2, 3), f32), 1),
         ValueError),  # strided z
        (lambda: compiled.quantize(np.zeros((3, 4), f32), f32(1), f32(0.5),
                                   np.zeros((3, 3), np.int32), np.zeros(4), np.zeros(4)),
         ValueError),
        (lambda: compiled.quantize(np.zeros((3, 4), f32), f32(1), f32(0.5),
                                   np.zeros((3, 4), np.int32), np.zeros(3), np.zeros(4)),
         ValueError),
        (lambda: compiled.quantize(np.zeros((3, 4), f32), f32(1), f32(0.5),
                                   np.zeros((3, 4), f32), np.zeros(4), np.zeros(4)), TypeError),
        (lambda: compiled.quantize(np.zeros((3, 4), f32), f32(1), f32(0.5),
                                   np.zeros((3, 4), np.int32), np.zeros(4), np.zeros(4),
                                   f32(0.5), np.zeros(3)), ValueError),  # squares of 3
        (lambda: compiled.quantize(np.zeros((3, 4), f32), f32(1), f32(0.5),
                                   np.zeros((3, 4), np.int32), np.zeros(4), np.zeros(4),
                                   f32(0.5), np.zeros(4, f32)), TypeError),  # float32 squares
        (lambda: compiled.symbols(np.zeros((3, 4), np.int16), 2, 5), ValueError),
        (lambda: compiled.symbols(np.zeros((3, 4), np.int16), 3, 2), ValueError),
        (lambda: compiled.symbols(np.zeros((3, 4), f32), 0, 4), TypeError),
        (lambda: compiled.entropy_bits(np.zeros(3, f32), 0), TypeError),
        (lambda: compiled.entropy_bits([1, 2, 3], 0), TypeError),
        (lambda: compiled.exact_product(out, np.ones(4), basis.T, 0, None, 9.0, out),
         ValueError),  # out (rows, rows of right) = (3, 2)
        (lambda: compiled.exact_product(out, np.ones(3), basis.T, 0, None, 9.0, sums),
         ValueError),  # weights (rank,)
        (lambda: compiled.exact_product(out, np.ones(4), basis, 0, None, 9.0, sums),
         ValueError),  # right (columns, rank)
        (lambda: compiled.exact_product(out, np.ones(4), basis.T, 64, None, 9.0, sums),
         ValueError),  # shift > 63
        (lambda: compiled.exact_product(out, np.ones(4), basis.T, 0, np.zeros(3), 9.0, sums),
         ValueError),  # means (columns,)
        (lambda: compiled.exact_product(out, ones, basis.T, 0, None, 9.0, sums),
         TypeError),  # float32 weights
        (lambda: compiled.exact_product(out, np.ones(4), basis.T, 0, None, 9.0,
                                        np.zeros((3, 4), f32)[:, ::2]), ValueError),  # strided
    ]
    for i, (call, error) in enumerate(refused):
        try:
            call()
        except error:
            continue
        raise AssertionError(f"case {i}: no {error.__name__}")
    readonly = np.zeros((3, 4), f32)
    readonly.setflags(write=False)
    with pytest.raises(TypeError):
        compiled.fill_sparse(symbols, e16, e32, *marks, 2, 0, 3, readonly, 0, 4, 4, ones)
    # Checkpoints beyond the streams: error codes, as for a block that ends early.
    far = [m + 100 for m in marks]
    assert compiled.fill_sparse(symbols, e16, e32, *far, 2, 0, 3, out, 0, 4, 4, ones) == 1
    assert compiled.reduce_sparse(symbols, e16, e32, *far, 2, 0, 3, sums, 0, 4, 4, ones,
                                  basis) == 1


@pytest.mark.parametrize("case", ["rule", "unlike counts"])
def test_exact_product_at_every_kernel(compiled: Any, case: str) -> None:
    """The exact product's tests below at each kernel this CPU runs (`product_kernel`: 0 plain
    C, 1 AVX2 with FMA, 2 AVX-512; all give the same bits), the best one again afterwards."""
    test = (test_exact_product_is_the_exact_rule if case == "rule"
            else test_exact_product_of_rows_of_unlike_term_counts)
    best = compiled.product_kernel()
    try:
        for level in range(best + 1):
            compiled.product_kernel(level)
            test(compiled)
    finally:
        compiled.product_kernel(best)
    with pytest.raises(ValueError):
        compiled.product_kernel(best + 1)


def test_exact_product_is_the_exact_rule(compiled: Any) -> None:
    """exact_product gives the bits of codec.exact.exact_product (BLAS dgemm in pieces) for
    factors at the bound's edge, zero rows and columns, means or none, the patch layouts'
    column counts and others (16 columns: ranks below 16 and of 16, rows three at a time
    and the last one or two alone, and a rank above 16), strided factors; past the bound it
    multiplies nothing and returns max|A|, which check_bound refuses (largest_left is
    check_bound's edge). At the kernel in use (every one: `test_exact_product_at_every_kernel`)."""
    from svdcodec.codec import exact as exact_rule

    rng = np.random.default_rng(31)
    for rows, rank, cols, density in ((700, 16, 16, 0.3), (257, 19, 64, 0.6), (64, 5, 7, 1.0),
                                      (33, 40, 256, 0.1), (9, 3, 16, 0.0), (38, 12, 16, 0.5),
                                      (2, 7, 16, 1.0), (5, 30, 64, 0.0), (40, 9, 32, 0.2),
                                      (11, 6, 96, 0.5), (20, 18, 16, 0.4), (301, 16, 16, 0.05)):
        top_a, top_b = 1 << int(rng.integers(1, 23)), 1 << int(rng.integers(1, 23))
        left = np.where(rng.random((rows, rank)) < density,
                        rng.integers(-top_a, top_a + 1, (rows, rank)), 0).astype(np.float32)
        right = rng.integers(-top_b, top_b + 1, (cols, rank)).astype(np.float32)
        sigma = rng.uniform(1, 5000, rank)
        max_a, max_b = exact_rule.magnitude(left), exact_rule.magnitude(right)
        shift = exact_rule.choose_shift(7.5, sigma, max(max_a, 1), max_b, "test")
        w, total = exact_rule.weights(7.5, sigma, shift, "test")
        largest = exact_rule.largest_left(max_b, total)
        assert max_a <= largest
        for means in (None, rng.normal(0, 300, cols)):
            expected = exact_rule.exact_product(left, w, right.T.astype(np.float64), shift,
                                                means)
            out = np.full((rows, cols), np.nan, np.float32)
            assert compiled.exact_product(left, w, right, shift, means, largest, out) == max_a
            assert out.tobytes() == expected.tobytes(), (rows, rank, cols)
        wide = np.zeros((rows, 2 * rank), np.float32)
        wide[:, ::2] = left  # strided columns of A and B
        out = np.empty((rows, cols), np.float32)
        compiled.exact_product(wide[:, ::2], w, np.repeat(right, 2, axis=1)[:, ::2], shift,
                               None, largest, out)
        assert out.tobytes() == exact_rule.exact_product(
            left, w, right.T.astype(np.float64), shift).tobytes()
        if max_a:  # one past the edge: nothing multiplied, and the rule refuses it
            out[:] = 7
            assert compiled.exact_product(left, w, right, shift, None, max_a - 1, out) == max_a
            assert (out == 7).all()
        with pytest.raises(SvdiError):
            exact_rule.check_bound(largest + 1, max_b, total, "test")
        exact_rule.check_bound(largest, max_b, total, "test")
    assert exact_rule.largest_left(1 << 24, 1) == -1
    assert exact_rule.largest_left(0, 5) == (1 << 24) - 1


def test_exact_product_of_rows_of_unlike_term_counts(compiled: Any) -> None:
    """Rows whose non-zero counts differ from row to row (a full row beside a sparse one, as a
    photo's patches are): 16 columns' product runs three rows with the most terms of the
    three, the others' lists padded with zeros, which must be zeros of this row and not a
    previous row's terms; -0 entries too. The bits of codec.exact.exact_product (at every
    kernel: `test_exact_product_at_every_kernel`)."""
    from svdcodec.codec import exact as exact_rule

    rng = np.random.default_rng(41)
    for rank in (9, 13, 16):
        rows = 61
        density = rng.random((rows, 1)) ** 2
        left = np.where(rng.random((rows, rank)) < density,
                        rng.integers(-500, 501, (rows, rank)), 0).astype(np.float32)
        left[rng.random(rows) < 0.2] *= -1.0
        right = rng.integers(-500, 501, (16, rank)).astype(np.float32)
        sigma = rng.uniform(1, 5000, rank)
        max_a, max_b = exact_rule.magnitude(left), exact_rule.magnitude(right)
        shift = exact_rule.choose_shift(7.5, sigma, max(max_a, 1), max_b, "test")
        w, total = exact_rule.weights(7.5, sigma, shift, "test")
        largest = exact_rule.largest_left(max_b, total)
        for means in (None, rng.normal(0, 300, 16)):
            out = np.full((rows, 16), np.nan, np.float32)
            assert compiled.exact_product(left, w, right, shift, means, largest, out) == max_a
            expected = exact_rule.exact_product(left, w, right.T.astype(np.float64), shift,
                                                means)
            assert out.tobytes() == expected.tobytes(), rank


def test_exact_weights_are_the_exact_rule(compiled: Any) -> None:
    """exact_weights gives the weights of spec §5.1 as the numpy rule computes them (float64
    bits and their integer sum) for float32 and float64 singular values, strided or not, and
    declines (None) wherever the rule refuses: a weight not finite or above 2^53."""
    rng = np.random.default_rng(47)
    specials = [np.array([0.0]), np.array([np.inf, 1.0]), np.array([2.0, np.nan]),
                np.array([1e-45]), np.zeros(0)]
    for trial in range(400):
        if trial < len(specials):
            sigma = specials[trial]
        else:
            rank = int(rng.integers(1, 60))
            sigma = np.exp(rng.uniform(-30, 40, 2 * rank))
        sigma = sigma.astype(np.float32 if trial % 2 else np.float64)
        if trial % 3 == 0:
            sigma = sigma[::2]  # strided
        step = float(rng.choice([0.25, 7.5, 11.05, 13.0, 1e-3, 900.0]))
        shift = int(rng.integers(0, 64))
        with np.errstate(all="ignore"):
            y = np.float64(step) * np.float64(step) / sigma.astype(np.float64)
            scaled = np.ldexp(y, shift)
        found = compiled.exact_weights(sigma, step, shift)
        if not (np.all(np.isfinite(scaled)) and (scaled.size == 0 or scaled.max() <= 2.0 ** 53)):
            assert found is None, (sigma, step, shift)
            continue
        whole = np.floor(scaled)
        expected = whole + (scaled - whole >= 0.5)
        assert found is not None, (sigma, step, shift)
        weights, total = found
        assert weights.dtype == np.float64 and weights.tobytes() == expected.tobytes()
        assert type(total) is int and total == sum(int(w) for w in expected.tolist())


def test_unaligned_and_strided_arrays(compiled: Any) -> None:
    """Side streams sliced from a decompressed buffer at odd offsets are unaligned; strided
    values (a column range of a factor) are read through their strides."""
    raw = np.zeros(1 + 2 * 3 + 4 * 2, dtype=np.uint8)
    xrun = np.frombuffer(raw, np.uint16, 3, 1).copy()
    xrun[:] = [0, 5, 1]
    xval = np.array([40, -300], dtype=np.int32)
    buffer = bytearray(1 + xrun.nbytes + xval.nbytes)
    buffer[1:1 + xrun.nbytes] = xrun.tobytes()
    buffer[1 + xrun.nbytes:] = xval.tobytes()
    odd_xrun = np.frombuffer(buffer, np.uint16, 3, 1)
    odd_xval = np.frombuffer(buffer, np.int32, 2, 1 + xrun.nbytes)
    assert not odd_xrun.flags.aligned and not odd_xval.flags.aligned
    # Row 0: run escape 15 + 0 then value escape 40; row 1: value 1 at 15 + 5 = 20, then run
    # escape 15 + 1 after it (column 37) with value escape -300.
    symbols = np.array([0xF0, 0x08, 0xF9, 0xF0, 0x08], dtype=np.uint8)
    starts, xr, xv, error = compiled.index_sparse(symbols, 2, 3, 2, 64)
    assert error == 0
    out = np.zeros((2, 40), np.float32)
    assert compiled.fill_sparse(symbols, odd_xrun, odd_xval, starts, xr, xv, 64, 0, 2, out, 0,
                                40, 40, np.ones(40, np.float32)) == 0
    expected = np.zeros((2, 40), np.float32)
    expected[0, 15], expected[1, 20], expected[1, 37] = 40, 1, -300
    assert np.array_equal(out, expected)
    values = (np.random.default_rng(1).standard_normal((50, 30)) * 9).astype(np.float32)
    strided = values[::2, 3:17]
    a = np.empty(strided.shape, np.int32)
    b = np.empty(strided.shape, np.int32)
    stats = []
    for source in (strided, np.ascontiguousarray(strided)):
        top, err = np.zeros(14), np.zeros(14)
        assert compiled.quantize(source, np.float32(0.7), np.float32(0.3), a if not stats
                                 else b, top, err)
        stats.append((top, err))
    assert np.array_equal(a, b)
    assert all(np.array_equal(x, y) for x, y in zip(*stats))


@pytest.mark.parametrize("out_type", [np.int16, np.int32, np.int64])
def test_quantize_strips_match_value_by_value(compiled: Any, out_type: type) -> None:
    """A contiguous matrix into contiguous int16 or int32 rows is quantized in strips of 8
    columns (vector code: the generic one and, where the CPU runs it, AVX2's), anything else
    value by value: the same integers and the same bits of every sum, with each column's own
    step, the first column's own rounding, the columns after the last strip, negative zeros,
    and values past int32 (NaN, infinities, 3e9: the overflow flag, INT32_MIN)."""
    rng = np.random.default_rng(7)
    values = (rng.standard_normal((77, 21)) * 30).astype(np.float32)
    values[3, :4] = -0.0
    inv_steps = (1.0 / rng.uniform(0.5, 3.0, 21)).astype(np.float32)
    best = compiled.encoder_kernels()
    try:
        for wild in (False, True):
            if wild:
                values[5, 1:6] = [np.nan, np.inf, -np.inf, 3e9, -3e9]
            results = []
            for source, level in ((np.asfortranarray(values), best),  # value by value
                                  *((values, level) for level in range(best + 1))):  # strips
                compiled.encoder_kernels(level)
                ints = np.zeros(values.shape, out_type)
                top, error, squares = np.zeros(21), np.zeros(21), np.zeros(21)
                ok = compiled.quantize(source, np.float32(1.0), np.float32(0.38), ints, top,
                                       error, np.float32(0.5), squares, inv_steps)
                assert ok != wild
                results.append((ints, top, error, squares))
            for got in results[1:]:
                for a, b in zip(results[0], got):
                    assert np.array_equal(a, b, equal_nan=True)
    finally:
        compiled.encoder_kernels(best)
    ints = results[0][0]
    values[5, 1:6] = 0
    ints[5, 1:6] = 0
    scaled = np.abs(values) * inv_steps + np.where(np.arange(21) == 0, np.float32(0.5),
                                                   np.float32(0.38)).astype(np.float32)
    assert np.array_equal(np.abs(ints), scaled.astype(np.int32))
    assert np.array_equal(np.signbit(values) & (ints != 0), ints < 0)


def test_symbols_of_short_16_bit_rows_at_every_level(compiled: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of at most 16 contiguous int16 values (`symbols_i16_rows16` where the CPU runs AVX2:
    16 values a row without a branch) give the symbols and escapes of the generic loop: every
    column range of up to 16, escapes of values (|v| > 7, saturating at the byte narrowing),
    a run of 15 (the one non-zero in lane 15), empty rows, rows wider than the range (the
    values after it must not count), the last rows (read apart: no read past the array),
    strided and reversed rows."""
    rng = np.random.default_rng(12)
    best = compiled.encoder_kernels()
    try:
        for trial in range(400):
            rows, cols = int(rng.integers(1, 60)), int(rng.integers(1, 40))
            # 256, 263 and -249: escapes whose low byte is 0, 7 and 7 (a narrowing that
            # kept the low byte instead of saturating would take them for small values)
            m = rng.choice([0, 0, 0, 0, 0, 1, -1, 2, -3, 7, -7, 8, -8, 127, -128, 256, 263,
                            -249, 300, -30000], (rows, cols)).astype(np.int16)
            m[rng.random(rows) < 0.2] = 0
            if trial % 5 == 0 and cols >= 16:
                m[:, :15] = 0  # lane 15 alone: a run of 15 where lo = 0 and hi = 16
            if trial % 3 == 0:
                m = np.where(np.abs(m) > 7, 0, m).astype(np.int16)  # no escapes
            lo = int(rng.integers(0, cols))
            hi = int(rng.integers(lo, min(cols, lo + 16) + 1))
            if trial % 5 == 0 and cols >= 16:
                lo, hi = 0, 16
            for source in (m, np.pad(m, ((0, 0), (0, 5)))[:, :cols], m[::-1], m[::2]):
                got = []
                for level in range(best + 1):
                    compiled.encoder_kernels(level)
                    got.append(compiled.symbols(source, lo, hi))
                monkeypatch.setenv("SVDCODEC_KERNELS", "0")
                expected = coding.band_symbols(source, lo, hi)  # numpy's
                monkeypatch.setenv("SVDCODEC_KERNELS", "1")
                for result in got:
                    for a, b in zip(result, expected):
                        assert np.array_equal(a, b), (trial, rows, cols, lo, hi)
    finally:
        compiled.encoder_kernels(best)


def test_symbols_run_of_15_in_a_short_row(compiled: Any) -> None:
    """A row whose one non-zero is in lane 15 of 16 has a run of 15: an escape, at every level."""
    m = np.zeros((3, 16), np.int16)
    m[1, 15] = 3
    best = compiled.encoder_kernels()
    try:
        for level in range(best + 1):
            compiled.encoder_kernels(level)
            symbols, xrun, xval = compiled.symbols(m, 0, 16)
            assert list(symbols) == [8, 0xF0 | 11, 8, 8] and list(xrun) == [0], level
            assert xval.size == 0
    finally:
        compiled.encoder_kernels(best)


def test_lsq_gather_of_any_tables_is_gather_rows(compiled: Any) -> None:
    """`lsq_gather` with tables other than the halving's (taps out of order, rows that move
    up, any number of taps, none) gives `gather_rows`'s bits: its ring of rows holds only
    where the taps' rows never move up, and it falls back to every row; an index given
    relative to an offset at int64's ends is read as an offset, not added to it."""
    from svdcodec.codec.resample import gather_rows
    rng = np.random.default_rng(13)
    for trial in range(300):
        n, in_w = int(rng.integers(1, 12)), int(rng.integers(1, 20))
        kk, nw = int(rng.integers(1, 9)), int(rng.integers(1, 10))
        vs, hs = int(rng.integers(0, 5)), int(rng.integers(1, 5))
        lo = int(rng.integers(-5, 5))
        x = rng.normal(0, 50, (n, in_w)).astype(np.float32)
        if trial % 2:  # rows that only move down, as the halving's
            starts = np.sort(rng.integers(0, n, kk))
            v_index = np.minimum(starts[:, None] + np.arange(vs), n - 1) + lo
        else:
            v_index = rng.integers(0, n, (kk, vs)) + lo
        v_weight = rng.normal(0, 1, (kk, vs)).astype(np.float32)
        h_index = rng.integers(0, in_w, (nw, hs))
        h_weight = rng.normal(0, 1, (nw, hs)).astype(np.float32)
        out = np.full((kk, nw), np.nan, np.float32)
        compiled.lsq_gather(x, lo, v_index.astype(np.int64), v_weight, h_index, h_weight, out)
        expected = gather_rows(x, lo, v_index, v_weight, h_index, h_weight)
        assert out.tobytes() == expected.tobytes(), trial
    for lo in (2**63 - 4, -2**63):  # the row offsets are 0..3 of the 4 rows given
        x = np.ones((4, 3), np.float32)
        v_index = np.array([[lo, lo + 1], [lo + 2, lo + 3]], np.int64)
        out = np.zeros((2, 3), np.float32)
        compiled.lsq_gather(x, lo, v_index, np.ones((2, 2), np.float32),
                            np.zeros((3, 1), np.int64), np.ones((3, 1), np.float32), out)
        assert np.all(out == 2.0)


def _sparse_matrix(rng: np.random.Generator, rows: int, count: int) -> np.ndarray:
    """Integers of a sparse factor block: mostly zeros, small values, a few escapes (long runs
    of zeros, large values) and empty rows."""
    values = rng.choice([0, 0, 0, 0, 0, 1, -1, 3, -7, 7, 200, -5000], (rows, count))
    values[rng.random(rows) < 0.2] = 0
    return values.astype(np.int64)


def test_sparse_index_of_long_streams(compiled: Any) -> None:
    """The index counts 64-byte blocks between checkpoints: its checkpoints are those of a
    symbol-by-symbol count, for any spacing, at every offset of the blocks."""
    rng = np.random.default_rng(11)
    for rows, count in ((3000, 40), (700, 3), (5, 20)):
        symbols, xrun, xval = coding.to_symbols(_sparse_matrix(rng, rows, count))
        ends = np.flatnonzero(symbols == coding.END_OF_ROW) + 1
        runs = np.cumsum(symbols >= coding.RUN_ESCAPE << 4)
        values = np.cumsum((symbols & 15) == coding.VALUE_ESCAPE)
        for every in (1, 7, 64, 256, 5000):
            starts, xr, xv, error = compiled.index_sparse(symbols, rows, xrun.size, xval.size,
                                                          every)
            assert error == 0
            marks = ends[every - 1::every]
            assert list(starts) == [0, *marks]
            assert list(xr) == [0, *runs[marks - 1]] and list(xv) == [0, *values[marks - 1]]
        assert compiled.index_sparse(symbols, rows + 1, xrun.size, xval.size, 64)[3] == 1
        assert compiled.index_sparse(symbols, rows - 1, xrun.size, xval.size, 64)[3] == 1
        assert compiled.index_sparse(symbols, rows, xrun.size + 1, xval.size, 64)[3] == 2
        strided = np.repeat(symbols, 2)[::2]  # the symbol-by-symbol walk only
        assert list(compiled.index_sparse(strided, rows, xrun.size, xval.size, 64)[0]) == list(
            compiled.index_sparse(symbols, rows, xrun.size, xval.size, 64)[0])


def test_reduce_sparse_is_the_reduced_product(compiled: Any) -> None:
    """reduce_sparse adds a block's terms to the sums without the factor's rows: the bits of
    decoder.reduced.reduced_product of the filled rows, for any range of rows, preview width,
    first component and basis width; the errors of fill_sparse for broken streams."""
    from svdcodec.decoder.reduced import reduced_product

    rng = np.random.default_rng(12)
    rows, count, first = 900, 23, 2
    symbols, xrun, xval = coding.to_symbols(_sparse_matrix(rng, rows, count))
    marks = compiled.index_sparse(symbols, rows, xrun.size, xval.size, 64)[:3]
    scale = rng.uniform(0.01, 3, first + count).astype(np.float32)
    for q in (1, 4, 16):
        basis = rng.normal(0, 5, (first + count, q)).astype(np.float32)
        start = rng.normal(0, 50, (rows, q)).astype(np.float32)  # the sums of earlier blocks
        for r0, r1, width in ((0, rows, count), (100, 613, count), (65, 66, 5), (300, 300, 4),
                              (0, rows, 0)):
            left = np.zeros((r1 - r0, first + count), np.float32)
            assert compiled.fill_sparse(symbols, xrun, xval, *marks, 64, r0, r1, left, first,
                                        width, count, scale) == 0
            sums = np.zeros((r1 - r0, q), np.float32)
            assert compiled.reduce_sparse(symbols, xrun, xval, *marks, 64, r0, r1, sums, first,
                                          width, count, scale, basis) == 0
            assert sums.tobytes() == reduced_product(left, basis).tobytes(), (q, r0, r1, width)
            sums = start[r0:r1].copy()  # the sums of earlier blocks, then this block's terms
            assert compiled.reduce_sparse(symbols, xrun, xval, *marks, 64, r0, r1, sums, first,
                                          width, count, scale, basis) == 0
            expected = start[r0:r1].copy()
            for k in range(first + count):
                expected += left[:, k, None] * basis[k]
            assert sums.tobytes() == expected.tobytes(), (q, r0, r1, width)
    broken = symbols.copy()
    for _ in range(200):  # mutated streams: the verdict of fill_sparse
        broken[:] = symbols
        broken[rng.integers(symbols.size)] = rng.integers(256)
        m = compiled.index_sparse(broken, rows, xrun.size, xval.size, 64)
        if m[3]:
            continue
        r0, r1 = sorted(rng.integers(0, rows + 1, 2))
        fill = compiled.fill_sparse(broken, xrun, xval, *m[:3], 64, r0, r1,
                                    np.zeros((r1 - r0, first + count), np.float32), first,
                                    count, count, scale)
        sums = np.zeros((r1 - r0, 1), np.float32)
        assert compiled.reduce_sparse(broken, xrun, xval, *m[:3], 64, r0, r1, sums, first,
                                      count, count, scale, basis[:, :1].copy()) == fill


def test_fill_sparse_rows_walk_as_symbol_by_symbol(compiled: Any) -> None:
    """fill_sparse's straight path (contiguous symbols, a band's buffer, the whole block: row
    ends without a branch, rows zeroed ahead) fills and refuses as its symbol-by-symbol walk
    (the same symbols through a strided view): the same bits of every row and column, zeroing
    or not, and the same error code for mutated symbols, escapes and truncated streams; neither
    writes outside the block's columns."""
    rng = np.random.default_rng(13)

    def both(symbols: np.ndarray, xrun: np.ndarray, xval: np.ndarray, rows: int, r0: int,
             r1: int, first: int, count: int, columns: int, zero: bool) -> int:
        # a broken stream's index stops where its count fails: both walks start from it
        marks = compiled.index_sparse(symbols, rows, xrun.size, xval.size, 4)[:3]
        scale = rng.uniform(-2, 3, columns).astype(np.float32)
        strided = np.repeat(symbols, 2)[::2]
        start = rng.normal(0, 9, (r1 - r0, columns)).astype(np.float32)
        outs, errors = [], []
        for stream in (symbols, strided):
            out = start.copy()
            errors.append(compiled.fill_sparse(stream, xrun, xval, *marks, 4, r0, r1, out,
                                               first, count, count, scale, zero))
            outs.append(out)
        assert errors[0] == errors[1], (r0, r1, first, count, zero)
        for out in outs:  # nothing outside the block's columns, error or not
            assert out[:, :first].tobytes() == start[:, :first].tobytes()
            assert out[:, first + count:].tobytes() == start[:, first + count:].tobytes()
        if errors[0] == 0:
            assert outs[0].tobytes() == outs[1].tobytes(), (r0, r1, first, count, zero)
        return int(errors[0])

    found: set[int] = set()
    for rows, count, first, columns in ((300, 23, 2, 27), (200, 1, 0, 1), (150, 16, 0, 16),
                                        (90, 5, 3, 8)):
        symbols, xrun, xval = coding.to_symbols(_sparse_matrix(rng, rows, count))
        for zero in (True, False):
            for r0, r1 in ((0, rows), (5, 66), (rows - 1, rows), (17, 17)):
                assert both(symbols, xrun, xval, rows, r0, r1, first, count, columns, zero) == 0
        for _ in range(150):  # mutated symbols and side streams
            broken, run_escapes, values = symbols.copy(), xrun.copy(), xval.copy()
            for _ in range(int(rng.integers(1, 4))):
                broken[rng.integers(broken.size)] = rng.integers(256)
            if run_escapes.size and rng.random() < 0.3:
                run_escapes[rng.integers(run_escapes.size)] = rng.integers(-40, 40)
            if values.size and rng.random() < 0.3:
                values[rng.integers(values.size)] = 0
            cut = broken[:int(rng.integers(broken.size + 1))] if rng.random() < 0.2 else broken
            r0, r1 = sorted(int(r) for r in rng.integers(0, rows + 1, 2))
            found.add(both(cut, run_escapes, values, rows, r0, r1, first, count, columns,
                           bool(rng.random() < 0.5)))
    for count in (1, 5, 14):  # a row's last column, and one past it: a literal then a row end
        none16, none32 = np.zeros(0, np.uint16), np.zeros(0, np.int32)
        full = np.array([0x09] * count + [0x08], np.uint8)  # every column, then the row end
        for run, error in ((count - 1, 0), (count, 4), (count + 1, 4)):
            if run < 15:
                row = np.array([run << 4 | 0x09, 0x08], np.uint8)
                stream = np.concatenate([full, row, full])
                assert both(stream, none16, none32, 3, 0, 3, 1, count, count + 2, True) == error
    assert found == {0, 1, 2, 3, 4, 5}  # every verdict met


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16])
def test_column_entropies_and_prediction_costs(monkeypatch: pytest.MonkeyPatch,
                                               dtype: type) -> None:
    """The encoder's one-call estimates (every column's entropy for the rank decision, every
    predictor's cost for a dense block) choose as the numpy path's calls one by one do: the
    same rounded entropies, the same predictor and residuals (grids of one column too, wide
    values, a constant grid, strided views, and residuals beyond 32 bits refused alike)."""
    from svdcodec.codec.quantize import column_entropy_bits
    from svdcodec.encoder.blocks import choose_prediction

    rng = np.random.default_rng(11)
    top = min(np.iinfo(dtype).max, 1 << 20)
    smooth = np.cumsum(rng.integers(-3, 4, size=(3, 17, 23)), axis=2)
    grids = [np.clip(smooth, -top, top).astype(dtype),
             (rng.laplace(size=(2, 9, 1)) * 5).astype(dtype),
             np.zeros((1, 4, 4), dtype),
             rng.integers(-top, top, size=(2, 6, 7)).astype(dtype),
             np.clip(smooth, -top, top).astype(dtype)[:, ::2, 1:]]
    info = np.iinfo(dtype)  # the type's extremes in a checkerboard: the widest residuals
    grids.append(np.where(np.indices((2, 5, 6)).sum(axis=0) % 2, info.max, info.min).astype(dtype))
    if dtype == np.int64:
        grids.append(np.array([[[2**40, -2**40], [0, 5]]], dtype))
    matrix = (rng.laplace(size=(64, 33)) * rng.random(33) * 6).astype(dtype)
    matrix[:, 5] = 0

    def run(on: bool) -> list[Any]:
        monkeypatch.setenv("SVDCODEC_KERNELS", "1" if on else "0")
        out: list[Any] = [[column_entropy_bits(m)(j) for j in range(m.shape[1])]
                          for m in (matrix, matrix[::3, 1::2])]
        for g in grids:
            try:
                out.append(choose_prediction(g))
            except OverflowError:
                out.append("overflow")
        return out
    compiled, reference = run(True), run(False)
    assert compiled[:2] == reference[:2]
    assert compiled[:2] == [[entropy_bits(matrix[:, j]) for j in range(33)],
                            [entropy_bits(matrix[::3, 1::2][:, j]) for j in range(16)]]
    for got, expected in zip(compiled[2:], reference[2:]):
        if isinstance(expected, str):
            assert got == expected
            continue
        assert got[0] == expected[0] and got[1].dtype == expected[1].dtype
        assert np.array_equal(got[1], expected[1])
    if dtype == np.int64:
        assert reference[-1] == "overflow"


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16])
def test_predicted_is_predict_narrowed(compiled: Any, dtype: type) -> None:
    """`predicted` gives `coding.predict`'s residuals in the type asked for, for every
    predictor, grids of one row or column, strided views and no grid at all; residuals that
    do not fit the type, and a predictor or type outside the format's, are refused."""
    rng = np.random.default_rng(12)
    grids = [rng.integers(-50, 50, size=shape).astype(dtype) * (1 + (dtype != np.int8))
             for shape in ((2, 5, 7), (1, 1, 9), (3, 6, 1), (1, 1, 1), (0, 4, 4))]
    grids.append(rng.integers(-50, 50, size=(3, 8, 9)).astype(dtype)[:, ::2, 1::3])
    for g in grids:
        for predictor in range(4):
            expected = coding.predict(g, predictor)
            for itemsize in (1, 2, 4):
                if expected.size and not (-(1 << 8 * itemsize - 1) <= expected.min()
                                          and expected.max() < 1 << 8 * itemsize - 1):
                    with pytest.raises(ValueError, match="does not fit"):
                        compiled.predicted(g, predictor, itemsize)
                    continue
                got = compiled.predicted(g, predictor, itemsize)
                assert got.dtype == np.dtype(f"i{itemsize}") and got.shape == (g.size,)
                assert np.array_equal(got.reshape(g.shape), expected)
    wide = np.array([[[0, 200], [-300, 5]]], dtype=np.int32)
    with pytest.raises(ValueError, match="does not fit"):
        compiled.predicted(wide, 0, 1)
    assert np.array_equal(compiled.predicted(wide, 1, 2).reshape(wide.shape),
                          coding.predict(wide, 1))
    for predictor, itemsize in ((4, 1), (-1, 2), (0, 3), (0, 8)):
        with pytest.raises(ValueError, match="predictor 0..3"):
            compiled.predicted(wide, predictor, itemsize)


def test_all_finite_is_the_overflow_check(compiled: Any) -> None:
    """all_finite gives the verdict of the numpy path's overflow check (a band's minimum and
    maximum finite) for finite bands, infinities and NaNs anywhere, including past a multiple
    of the vector width, and refuses what is not float32 C-contiguous."""
    rng = np.random.default_rng(11)
    band = (rng.standard_normal((37, 19)) * 1e30).astype(np.float32)
    cases = [band, np.float32(3e38) * np.ones((3, 5), np.float32), np.zeros((1, 1), np.float32)]
    for value in (np.inf, -np.inf, np.nan):
        for at in ((0, 0), (36, 18), (17, 3)):
            bad = band.copy()
            bad[at] = value
            cases.append(bad)
    for a in cases:
        assert compiled.all_finite(a) == bool(np.isfinite(a.min()) and np.isfinite(a.max()))
    for wrong in (band.astype(np.float64), band.T):
        with pytest.raises(ValueError):
            compiled.all_finite(wrong)


def _store_rgb_image(compiled: Any, seed: int, h: int, w: int, patch: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """store_rgb's inputs for a random h x w image: Y' in patches (values past 0..255 too),
    half-size Cb and Cr, the colour constants and the patches in a row; and the whole image's
    RGB as store_rgb writes it."""
    rng = np.random.default_rng(seed)
    per_row = w // patch
    matrix = rng.uniform(-20, 280, ((h // patch) * per_row, patch * patch)).astype(np.float32)
    cb, cr = (rng.uniform(-140, 140, (h // 2, w // 2)).astype(np.float32) for _ in range(2))
    k = YCC_MULTIPLIERS
    rgb = np.zeros((h, w, 3), np.uint8)
    compiled.store_rgb(matrix, rgb, 0, h, cb, cr, k, patch, per_row)
    return matrix, cb, cr, k, per_row, rgb


def test_store_rgb_of_a_band_alone_matches_the_whole_image(compiled: Any) -> None:
    """store_rgb into a band's own buffer (top=), with only the chroma rows the band blends
    (first=, height=), writes the rows the whole-image call writes."""
    h, w, patch = 24, 20, 4
    matrix, cb, cr, k, per_row, whole = _store_rgb_image(compiled, 4, h, w, patch)
    for y0, y1 in ((0, 4), (4, 12), (12, 20), (20, 24)):
        lo, hi = max(y0 - 1, 0) // 2, min((y1 + 1) // 2 + 1, h // 2)
        band = np.zeros((y1 - y0, w, 3), np.uint8)
        rows = matrix[y0 // patch * per_row:y1 // patch * per_row]
        compiled.store_rgb(rows, band, y0, y1, cb[lo:hi].copy(), cr[lo:hi].copy(), k, patch,
                           per_row, top=y0, first=lo, height=h)
        np.testing.assert_array_equal(band, whole[y0:y1])
        if y0:  # the window must hold every row the band blends
            with pytest.raises(ValueError, match="chroma rows"):
                compiled.store_rgb(rows, band, y0, y1, cb[lo + 1:hi].copy(),
                                   cr[lo + 1:hi].copy(), k, patch, per_row, top=y0,
                                   first=lo + 1, height=h)
    band = np.zeros((4, w, 3), np.uint8)
    rows = matrix[:per_row]
    for top, first, height in ((5, 0, h), (0, 0, 26), (0, 1, h), (0, 0, 23), (0, -1, h)):
        with pytest.raises(ValueError):  # top past y0, rows past the planes, odd height
            compiled.store_rgb(rows, band, 4, 8, cb, cr, k, patch, per_row, top=top,
                               first=first, height=height)
    with pytest.raises(ValueError):  # a band's buffer with the default top = 0
        compiled.store_rgb(rows, band, 4, 8, cb, cr, k, patch, per_row)


def test_store_rgb_pad_writes_pillows_rgbx_layout(compiled: Any) -> None:
    """pad= (out of 4 channels): the RGB of a 3-channel output and pad in the fourth byte,
    which without pad= (alpha) is left as it is; a pad out of 0..255 leaves it too."""
    h, w, patch = 16, 36, 4  # rows of 36 pixels: a vector loop and a tail
    matrix, cb, cr, k, per_row, rgb = _store_rgb_image(compiled, 5, h, w, patch)
    for pad, fourth in ((255, 255), (0, 0), (-1, 77), (256, 77), (2**32 + 255, 77)):
        rgbx = np.full((h, w, 4), 77, np.uint8)
        compiled.store_rgb(matrix, rgbx, 0, h, cb, cr, k, patch, per_row, pad=pad)
        np.testing.assert_array_equal(rgbx[:, :, :3], rgb)
        assert np.all(rgbx[:, :, 3] == fourth)


def _boundary_floats(rng: np.random.Generator, shape: tuple[int, ...], scale: float,
                     centre: float) -> np.ndarray:
    """Samples for the colour output: spread values, a fifth of them on halves (the ties of
    its roundings) and a few that no honest file holds (NaN, infinities, float32's extremes,
    subnormals, values a hair from a rounding step)."""
    specials = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-40, -1e-40, 0.0, -0.0,
                         127.5, -128.5, 126.49999, 0.49999997, -0.5, 254.5, 255.49998,
                         1 + 2 ** -23, 1e-17], np.float32)
    v = (rng.standard_normal(shape) * scale + centre).astype(np.float32)
    pick = rng.random(shape)
    v = np.where(pick < 0.2, np.round(v * 2) / 2, v)
    return np.where(pick > 0.97, rng.choice(specials, shape), v).astype(np.float32)


def test_colour_row_kernels_give_the_plain_kernels_bits(compiled: Any) -> None:
    """Every row kernel of the colour output this CPU runs (colour_rows: AVX2, AVX-512)
    writes the bytes of the plain C passes (level 0, whose pixels the rest of the suite
    compares with numpy's), through store_rgb and upsample_ycc: widths with and without a
    tail, patch sides read in place (4, 8) or copied, 3, 4 and 5 channels, pad or alpha,
    Y' read unaligned, and samples on every rounding tie and beyond every range."""
    rng = np.random.default_rng(13)
    k = YCC_MULTIPLIERS
    best = compiled.colour_rows()
    with pytest.raises(ValueError):
        compiled.colour_rows(best + 1)
    try:
        for trial in range(300):
            h, w = 2 * int(rng.integers(1, 10)), 2 * int(rng.integers(1, 50))
            patch = int(rng.choice([4, 8, 4, 8, 1, 3, 16]))
            per_row = -(-w // patch) + int(rng.integers(0, 2))
            matrix = _boundary_floats(rng, (-(-h // patch) * per_row, patch * patch), 90, 128)
            if trial % 2:  # one byte off float32's alignment
                raw = np.zeros(matrix.nbytes + 1, np.uint8)
                raw[1:] = matrix.view(np.uint8).ravel()
                matrix = raw[1:].view(np.float32).reshape(matrix.shape)
            cb, cr = (_boundary_floats(rng, (h // 2, w // 2), 70, 0) for _ in range(2))
            c, pad = int(rng.choice([3, 4, 4, 5])), int(rng.choice([-1, 255, 0]))
            y0 = int(rng.integers(0, h))
            y1 = int(rng.integers(y0, h + 1))
            start = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            written = []
            for level in range(best + 1):
                compiled.colour_rows(level)
                stored, upsampled = start.copy(), start.copy()
                compiled.store_rgb(matrix, stored, y0, y1, cb, cr, k, patch, per_row, pad=pad)
                compiled.upsample_ycc(upsampled, y0, y1, cb, cr, k)
                written.append((stored, upsampled))
            for level in range(1, best + 1):
                np.testing.assert_array_equal(written[level][0], written[0][0])
                np.testing.assert_array_equal(written[level][1], written[0][1])
    finally:
        compiled.colour_rows(best)


def _general_fill(compiled: Any, blocks: list[tuple], gh: int, gw: int, rank: int
                  ) -> tuple[int, int, np.ndarray]:
    """What PlaneReconstructor's general path makes of a factor's blocks for one band of every
    row: each sparse block indexed (`index_sparse`) and filled (`fill_sparse`), each dense one
    unpredicted (`unpredict_into`), in order; (error, failing block, out)."""
    rows, ones = gh * gw, np.ones(rank, np.float32)
    out = np.zeros((rows, rank), np.float32)
    for b, (first, width, count, predictor, arrays) in enumerate(blocks):
        if predictor < 0:
            symbols, xrun, xval = arrays
            *marks, error = compiled.index_sparse(symbols, rows, xrun.size, xval.size,
                                                  band_sizes.CHECKPOINT_ROWS)
            if not error:
                error = compiled.fill_sparse(symbols, xrun, xval, *marks,
                                             band_sizes.CHECKPOINT_ROWS, 0, rows, out, first,
                                             width, count, ones)
            if error:
                return error, b, out
        elif arrays[0].size != count * rows:
            return 6, b, out
        else:
            compiled.unpredict_into(arrays[0].reshape(-1), gh, gw, predictor, width, out,
                                    first, ones)
    return 0, -1, out


def test_plane_factors_is_the_general_fill(compiled: Any) -> None:
    """plane_factors (a whole factor in one call, `decoder.plane.WholePlane`) fills what the
    general path's kernels fill from the same blocks, with the same verdict on mutated, cut
    and mis-sized streams (the first failing block's error code); blocks that leave
    components uncovered leave zeros; max|out| is exact_rule.magnitude's."""
    from svdcodec.codec import exact as exact_rule

    rng = np.random.default_rng(17)
    gh, gw = 9, 7
    rows = gh * gw
    found: set[int] = set()

    def check(blocks: list[tuple], rank: int) -> int:
        error, failed, out = _general_fill(compiled, blocks, gh, gw, rank)
        mine = np.full((rows, rank), np.nan, np.float32)  # every element must be written
        got, got_failed, top = compiled.plane_factors(blocks, gh, gw, mine, magnitude=True)
        assert (got, got_failed) == (error, failed)
        if not error:
            assert mine.tobytes() == out.tobytes()
            assert top == exact_rule.magnitude(out)
        found.add(int(got))
        return int(got)

    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        residuals = rng.integers(max(info.min, -3000), min(info.max, 3000), (1, gh, gw),
                                 endpoint=True, dtype=dtype)
        predictor = int(rng.integers(4))
        sparse = [coding.to_symbols(_sparse_matrix(rng, rows, count)) for count in (5, 3)]
        whole = [(0, 1, 1, predictor, (residuals,)), (1, 5, 5, -1, sparse[0]),
                 (6, 3, 3, -1, sparse[1])]
        assert check(whole, 9) == 0
        assert check(whole[:2] + [(6, 2, 3, -1, sparse[1])], 8) == 0  # a preview inside
        assert check(whole[:1] + whole[2:], 9) == 0  # a gap: components 1..5 stay zero
        short = np.ascontiguousarray(residuals[:, :, 1:])  # a grid of another size
        assert check([(0, 1, 1, predictor, (short,))] + whole[1:], 9) == 6
        longer = np.concatenate([residuals.reshape(-1), residuals[0, 0]])  # a row too many
        assert check([(0, 1, 1, predictor, (longer,))] + whole[1:], 9) == 6
        for _ in range(120):  # mutated symbols and side streams of either sparse block
            k = int(rng.integers(2))
            symbols, xrun, xval = (a.copy() for a in sparse[k])
            kind = int(rng.integers(5))
            if kind == 0:
                symbols[rng.integers(symbols.size)] = rng.integers(256)
            elif kind == 1:  # a symbol past the last row end, or the last row end gone
                symbols = (np.append(symbols, np.uint8(rng.choice([0x08, 0x09, 0x19])))
                           if rng.random() < 0.5 else symbols[:-1])
            elif kind == 2:  # one escape more or fewer than the symbols use
                xval = (np.append(xval, xval.dtype.type(5)) if rng.random() < 0.5
                        else xval[:-1])
            elif kind == 3 and xval.size:
                xval[rng.integers(xval.size)] = 0
            else:
                symbols = symbols[:int(rng.integers(symbols.size + 1))]
            blocks = list(whole)
            blocks[1 + k] = (*whole[1 + k][:4], (symbols, xrun, xval))
            check(blocks, 9)
    assert found == {0, 1, 2, 3, 4, 5, 6}  # every verdict met
    out = np.zeros((rows, 4), np.float32)
    dense = (0, 1, 1, 0, (np.zeros((1, gh, gw), np.int8),))
    for bad in ((0, 2, 1, 0, dense[4]),  # width beyond count
                (3, 2, 2, 0, (np.zeros((2, gh, gw), np.int8),)),  # beyond the rank
                (0, 1, 1, 4, dense[4]),  # no such predictor
                (0, 1, 1, -1, dense[4]),  # a sparse block needs three arrays
                (-1, 1, 1, 0, dense[4])):
        with pytest.raises(ValueError):
            compiled.plane_factors([bad], gh, gw, out)
    with pytest.raises(ValueError):  # out of another row count
        compiled.plane_factors([dense], gh, gw + 1, out)
    with pytest.raises(TypeError):  # float residuals
        compiled.plane_factors([(0, 1, 1, 0, (np.zeros((1, gh, gw), np.float32),))], gh, gw,
                               out)


def test_whole_planes_decode_as_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files whose planes take `WholePlane` (one band, the encoder's blocks) decode to the
    same pixels, or the same refusal, through it, through the general PlaneReconstructor
    and on the numpy path: valid files, previews, and files with mutated sparse streams
    (symbols, escapes, a symbol past the last row end, one escape too many)."""
    from svdcodec.decoder import plane as planes
    from svdcodec.decoder import stream

    taken: list[int] = []
    whole = stream.whole_plane

    def counted(*args: Any) -> Any:
        try:
            made = whole(*args)
        except SvdiError:  # the plane taken, and its blocks refused
            taken.append(True)
            raise
        taken.append(made is not None)
        return made

    def verdicts(data: bytes, **options: Any) -> str:
        monkeypatch.setattr(stream, "whole_plane", counted)
        taken.clear()
        mine = with_kernels(monkeypatch, True,
                            lambda: outcome(lambda: svdcodec.decode(data, **options)))
        assert taken and all(taken)  # every plane set up whole, by the new path
        monkeypatch.setattr(stream, "whole_plane", lambda *args: None)
        general = with_kernels(monkeypatch, True,
                               lambda: outcome(lambda: svdcodec.decode(data, **options)))
        monkeypatch.setattr(stream, "whole_plane", whole)
        assert mine[0] == general[0]
        if mine[0] == "pixels":
            assert np.array_equal(mine[1], general[1])
        assert same_outcome(monkeypatch, data, **options) == mine[0]  # and numpy's
        return mine[0]

    assert issubclass(planes.WholePlane, planes.PlaneReconstructor)
    for image, options in ((photo(48, 64, 3), {"quality": 70}),
                           (photo(40, 56, 3), {"quality": 95}),
                           (photo(33, 47, 1), {"quality": 60})):
        data = svdcodec.encode(image, **options)
        assert verdicts(data) == "pixels"
        assert verdicts(data, components=2) == "pixels"
    data = svdcodec.encode(photo(48, 64, 3), quality=70)
    box = container.unpack(data)
    sparse = [i for i, b in enumerate(box.blocks) if b.coding == container.SPARSE]
    rng = random.Random(23)
    decided = {"pixels": 0, "SvdiError": 0}
    for _ in range(120):
        index = rng.choice(sparse)
        block = box.blocks[index]
        symbols, xrun, xval = (a.copy() for a in block.data())
        kind = rng.randrange(5)
        literals = np.flatnonzero(((symbols & 15) != 0) & ((symbols & 15) != 8))
        if kind == 0:
            symbols[rng.randrange(symbols.size)] = rng.randrange(256)
        elif kind == 1:
            symbols = np.append(symbols, np.uint8(rng.choice([0x08, 0x09])))
        elif kind == 4 and literals.size:  # another level, the same place: a valid stream
            at = rng.choice(literals.tolist())
            symbols[at] = symbols[at] & 0xF0 | rng.choice([1, 2, 3, 5, 7, 9, 12, 15])
        elif kind == 2:
            xval = np.append(xval, xval.dtype.type(9))
        elif kind == 3:
            symbols[rng.randrange(symbols.size)] = rng.choice([0xF0, 0x00, 0x08, 0xF8])
        decided[verdicts(with_sparse_block(box, index, (symbols, xrun, xval)))] += 1
    assert decided["pixels"] > 10 and decided["SvdiError"] > 10
