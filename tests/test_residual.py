"""Format version 2: residual blocks (error-bounded and lossless coding), the exact plane
reconstruction they rest on, exact alpha and constant channels (spec §4.1, §5.1-5.3).

Every decode is checked on the compiled and numpy paths and against the reference decoder,
bit for bit; the bound itself is checked against the original samples.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from PIL import Image
from support import (
    ROOT,
    decode_everywhere,
    format_version,
    kernels,
    make_vectors,
    photo,
)

import svdcodec
from svdcodec import SvdiError
from svdcodec.codec import exact as exact_rule
from svdcodec.codec import residual as residual_rule
from svdcodec.decoder import residuals as residual_phase
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder import tuning
from svdcodec.evaluation.metrics import psnr
from svdcodec.format import COLOUR_NONE, COLOUR_YCBCR, unpack
from svdcodec.runtime import band_sizes

VECTORS = ROOT / "spec" / "vectors"
MANIFEST: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text())
V2_INVALID = [e for e in MANIFEST["vectors"] if not e["valid"]
              and (e["file"].startswith("v2_") or e["file"].startswith("unknown_version"))]




def max_error(decoded: np.ndarray, original: np.ndarray) -> float:
    return float(np.max(np.abs(decoded.reshape(original.shape).astype(np.float64)
                               - original.astype(np.float64)), initial=0.0))


# ----------------------------------------------------------------------------- the bound


@st.composite
def images(draw: st.DrawFn, dtype: type) -> np.ndarray:
    """A small image of 1-4 channels: smooth structure plus noise, or noise alone."""
    h, w, c = draw(st.integers(1, 24)), draw(st.integers(1, 24)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    top = {np.uint8: 255, np.uint16: 4095, np.float32: 1000.0}[dtype]
    smooth = draw(st.booleans())
    base = photo(h, w, c, seed).astype(np.float64) / 255 if smooth else rng.random((h, w, c))
    values = base * top
    if dtype is np.float32:
        values -= top / 2 * draw(st.booleans())  # negative samples too
    return values.astype(dtype)


@given(images(np.uint8), st.sampled_from([0, 1, 3]))
def test_uint8_within_bound(image: np.ndarray, bound: int) -> None:
    data = svdcodec.encode(image, max_error=bound)
    assert format_version(data) == 5
    decoded = decode_everywhere(data)
    assert max_error(decoded, image) <= bound
    if bound == 0:
        np.testing.assert_array_equal(decoded.reshape(image.shape), image)


@given(images(np.uint16), st.sampled_from([0, 1, 2, 4]))
def test_uint16_within_bound(image: np.ndarray, bound: int) -> None:
    decoded = decode_everywhere(svdcodec.encode(image, max_error=bound))
    assert max_error(decoded, image) <= bound


@given(images(np.float32), st.sampled_from([0.5, 0.01, 1e-3]))
def test_float32_within_bound(image: np.ndarray, bound: float) -> None:
    decoded = decode_everywhere(svdcodec.encode(image, max_error=bound))
    assert max_error(decoded, image) <= bound


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [10.0, 1000.0])
@pytest.mark.parametrize("bound", [0.01, 0.1])
def test_float_step_stays_near_twice_the_bound(dtype: type, offset: float, bound: float
                                                ) -> None:
    """At step 2E a few samples of large magnitude have no q within E once the decoder rounds
    (values 10-20, E = 0.01: the whole channel went to step E, the file 14 % larger): the
    step is a hair under 2E instead, and the bound holds at every sample."""
    rng = np.random.default_rng(3)
    x = (rng.uniform(0, 10, (256, 256)) + offset).astype(dtype)
    decoded = (x + rng.normal(0, 0.3, x.shape)).astype(dtype)
    q, step = residual_rule.quantize_floats(x, decoded, bound)
    assert 1.9 * bound < step <= 2 * bound  # 2E less four spacings of the type
    assert max_error(residual_rule.apply(decoded, q, step), x) <= bound
    series = (np.sin(np.arange(4000)[:, None] / 30.0) + np.linspace(10, 20, 16)).astype(dtype)
    series += rng.normal(0, 0.05, series.shape).astype(dtype)
    data = svdcodec.encode(series, 90, max_error=bound)
    assert max_error(decode_everywhere(data), series) <= bound
    steps = {r.step for r in unpack(data).residuals}
    assert steps and all(1.9 * bound < s <= 2 * bound for s in steps)


@given(st.integers(1, 20), st.integers(1, 20), st.integers(1, 4), st.integers(0, 2**31),
       st.floats(-1e4, 1e4, width=32))
def test_float32_lossless_where_the_range_allows(h: int, w: int, c: int, seed: int,
                                                 centre: float) -> None:
    """E = 0 for float32: exact when the samples' spread fits 31-bit residuals, else refused
    with the message that says what to do."""
    rng = np.random.default_rng(seed)
    image = (centre + rng.normal(0, 10, (h, w, c))).astype(np.float32)
    try:
        data = svdcodec.encode(image, max_error=0)
    except SvdiError as exc:
        assert "give max_error > 0" in str(exc)
        assume(False)
    np.testing.assert_array_equal(decode_everywhere(data).reshape(image.shape), image)


def test_float32_lossless_refusal_is_clear() -> None:
    image = np.array([[1e-30, 1e30]], dtype=np.float32)
    with pytest.raises(SvdiError, match=re.escape("give max_error > 0")):
        svdcodec.encode(image, max_error=0)


FLOAT_IMAGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "0...255": lambda u8: u8.astype(np.float32),
    "k / 255": lambda u8: u8.astype(np.float32) / 255,
    "k * (1/255) in float32": lambda u8: u8.astype(np.float32) * np.float32(1 / 255),
    "16-bit k / 65535": lambda u8: (u8.astype(np.float32) * 257 + 3) / 65535,
}


def dark_and_noisy(channels: int) -> np.ndarray:
    """8-bit samples with a dark third (0...3: reconstructions near zero) and a third of noise
    (differences from the layer of up to half the range)."""
    source = photo(96, 128, channels, seed=2)
    source[:, :40] //= 64
    source[:, 80:] = np.random.default_rng(2).integers(0, 256, source[:, 80:].shape)
    return source if channels > 1 else source[..., 0]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", list(FLOAT_IMAGES))
def test_float32_images_of_integers_and_of_0_to_1_are_lossless(kind: str,
                                                               channels: int) -> None:
    """Ordinary float32 images, integers 0...255 or samples scaled to 0...1, at max_error=0:
    a layer's reconstructions near zero need a step so fine that the large differences pass
    31 bits (RGB refused before: "exceed the 31-bit residuals"), and the encoder codes them
    with no layer, the step a grid every sample lies on (1, 1/255 or 1/65535: q the
    integers)."""
    image = FLOAT_IMAGES[kind](dark_and_noisy(channels))
    data = svdcodec.encode(image, max_error=0)
    np.testing.assert_array_equal(decode_everywhere(data).reshape(image.shape), image)
    container = unpack(data)
    if all(p.rank == 0 for p in container.planes):
        grids = {1.0, 1 / 255, float(np.float32(1 / 255)), 1 / 65535}
        assert {r.step for r in container.residuals} <= grids
        assert len(data) < image.nbytes / 2  # q the integers, not 2^23 times them


def test_float32_on_a_grid_goes_without_a_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lossless floats on a grid (here k / 255 of a photo's grey, which a layer's exact
    residual took at the spacing of its smallest reconstruction, 2^-30 and finer) go without
    a layer, their q the integers: a fraction of the layered file, which a quality given
    still asks for. A sample off the grid where the check does not look (one sample in 50)
    sends the image to the layered path, lossless all the same."""
    image = photo(64, 96, 1, seed=3)[..., 0].astype(np.float32) / 255
    data = svdcodec.encode(image, max_error=0)
    assert all(p.rank == 0 for p in unpack(data).planes)
    assert {r.step for r in unpack(data).residuals} == {1 / 255}
    layered = svdcodec.encode(image, 90, max_error=0)
    assert all(p.rank > 0 for p in unpack(layered).planes)
    assert len(data) < len(layered) / 2
    np.testing.assert_array_equal(decode_everywhere(data), image)
    from svdcodec.encoder import residual as encoder_residual
    monkeypatch.setattr(encoder_residual, "GRID_SAMPLE", image.size // 50)
    off = image.copy()
    off[0, 1] = np.nextafter(off[0, 1], np.float32(2))
    np.testing.assert_array_equal(decode_everywhere(svdcodec.encode(off, max_error=0)), off)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_lossless_is_bit_for_bit_but_negative_zero(dtype: type) -> None:
    """max_error=0 of floats over no layer (k / 255) gives every sample back bit for bit,
    subnormals included, except -0.0, which comes back as +0.0: the decoder's fl(x + q * step)
    never yields -0.0 (-0.0 + 0.0 is +0.0), and max_error bounds values, in which the two
    zeros are equal (docs/lossless.md)."""
    image = photo(32, 48, 1, seed=4)[..., 0].astype(dtype) / 255
    image[0, :3] = -0.0
    tiny = np.zeros((16, 24), dtype)  # subnormals: on the grid of the smallest one
    tiny[::3, ::5] = np.finfo(dtype).smallest_subnormal * np.arange(1, 41).reshape(8, 5)[:6]
    for samples in (image, tiny):
        decoded = decode_everywhere(svdcodec.encode(samples, max_error=0))
        unsigned = np.dtype(f"u{samples.itemsize}")
        expected = np.where(samples == 0, dtype(0), samples)  # -0.0 as +0.0, the rest as is
        assert np.array_equal(decoded.reshape(samples.shape).view(unsigned),
                              expected.view(unsigned))
    assert np.signbit(image[0, :3]).all()


def test_float64_division_by_255_takes_a_finer_grid() -> None:
    """float64 k / 255 computed as a division (numpy's `u8 / 255`) is not fl(k * step) for
    any one step near 1/255 (24 of the 256 k differ from fl(k * fl(1/255))), so it goes over no
    layer on the grid 1/65535 (q = 257 k), lossless all the same; the float32 division takes
    1/255 itself (docs/lossless.md)."""
    u8 = photo(32, 48, 1, seed=5)[..., 0]
    k = np.arange(256)
    assert not np.array_equal(k * (1 / 255), k / 255)
    data = svdcodec.encode(u8 / 255, max_error=0)
    assert all(p.rank == 0 for p in unpack(data).planes)
    assert {r.step for r in unpack(data).residuals} == {1 / 65535}
    np.testing.assert_array_equal(decode_everywhere(data), u8 / 255)
    single = svdcodec.encode(u8.astype(np.float32) / 255, max_error=0)
    assert {r.step for r in unpack(single).residuals} == {1 / 255}


def test_float32_lossless_without_a_grid_is_refused_saying_what_to_do() -> None:
    """Samples on no grid the 31-bit residuals reach (0...1 of many magnitudes, some below
    1e-9) are refused with the message naming what works instead; a call that asks for the
    layer is refused over it, the message saying the encoder would try without one."""
    values = (np.random.default_rng(5).random((24, 32, 3)) ** 6).astype(np.float32)
    with pytest.raises(SvdiError, match=r"give max_error > 0 .*integer samples"):
        svdcodec.encode(values, max_error=0)
    integers = dark_and_noisy(3).astype(np.float32)
    with pytest.raises(SvdiError, match="leave quality, rank, energy, layout and centre"):
        svdcodec.encode(integers, 90, max_error=0)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "1", True])
def test_max_error_checked(bad: Any) -> None:
    with pytest.raises(SvdiError, match="max_error"):
        svdcodec.encode(np.zeros((4, 4), np.uint8), max_error=bad)


def test_max_error_with_rate_control_refused() -> None:
    with pytest.raises(SvdiError, match="without target_psnr"):
        svdcodec.encode(np.zeros((4, 4), np.uint8), max_error=1, target_psnr=30)


def test_large_image_band_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several residual blocks per channel, tiny decoder bands and passes: the band decoder's
    pieces change nothing (the exact product is exact in any piece)."""
    image = photo(203, 157, 3, seed=4)
    monkeypatch.setattr(tuning, "RESIDUAL_BLOCK_SAMPLES", 157 * 40)
    data = svdcodec.encode(image, max_error=0, quality=60)
    blocks = data.count(b"RBLK")
    assert blocks >= 3 * 5
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 11)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 12)
    monkeypatch.setattr(residual_phase, "BAND_SAMPLES", 1000)
    monkeypatch.setattr(exact_rule, "PIECE_ELEMENTS", 97)
    np.testing.assert_array_equal(decode_everywhere(data), image)


# ----------------------------------------------------------------------------- Pillow, CLI


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
def test_pillow_lossless(mode: str) -> None:
    rng = np.random.default_rng(7)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (19, 23), dtype=np.uint16))
    else:
        bands = len(mode)
        im = Image.fromarray(photo(19, 23, bands, seed=3)[..., 0] if bands == 1
                             else photo(19, 23, bands, seed=3), mode)
    buf = io.BytesIO()
    im.save(buf, "SVDI", lossless=True)
    with Image.open(io.BytesIO(buf.getvalue())) as back:
        assert back.mode == im.mode
        np.testing.assert_array_equal(np.asarray(back), np.asarray(im))
    # I;16 noise: wrapped residual blocks over no layer (version 7), in about the raw bytes
    assert format_version(buf.getvalue()) == (7 if mode == "I;16" else 5)


def test_pillow_lossless_contradiction_refused() -> None:
    with pytest.raises(SvdiError, match="contradicts"):
        Image.new("L", (4, 4)).save(io.BytesIO(), "SVDI", lossless=True, max_error=2)


@pytest.mark.parametrize("value", ["no", "False", 2])
def test_pillow_lossless_takes_only_on_or_off(value: object) -> None:
    """lossless="no" is refused, not taken as on (it wrote a lossless file)."""
    with pytest.raises(SvdiError, match="lossless must be True or False"):
        Image.new("L", (4, 4)).save(io.BytesIO(), "SVDI", lossless=value)


def test_pillow_max_error() -> None:
    image = photo(30, 20, 3, seed=5)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "SVDI", max_error=2, quality=40)
    assert max_error(decode_everywhere(buf.getvalue()), image) <= 2


def test_cli_lossless(tmp_path: Any) -> None:
    from svdcodec.cli.tools import encode_main, info_main

    image = photo(17, 21, 4, seed=6)
    Image.fromarray(image, "RGBA").save(tmp_path / "in.png")
    assert encode_main([str(tmp_path / "in.png"), "--lossless", "-o",
                        str(tmp_path / "out.svdi"), "--quiet"]) == 0
    data = (tmp_path / "out.svdi").read_bytes()
    np.testing.assert_array_equal(decode_everywhere(data), image)
    assert info_main([str(tmp_path / "out.svdi"), "--json"]) == 0


# ----------------------------------------------------------------------------- exact defaults


@pytest.mark.parametrize("quality", [1, 50, 75, 100])
@pytest.mark.parametrize("pattern", ["binary", "flat0", "flat255", "ramp"])
def test_alpha_exact_by_default(quality: int, pattern: str) -> None:
    image = photo(33, 27, 4, seed=quality)
    y, x = np.mgrid[0:33, 0:27]
    image[..., 3] = {"binary": np.where((x - 13) ** 2 + (y - 16) ** 2 < 120, 255, 0),
                     "flat0": 0, "flat255": 255, "ramp": (x * 9) % 256}[pattern]
    decoded = decode_everywhere(svdcodec.encode(image, quality=quality))
    np.testing.assert_array_equal(decoded[..., 3], image[..., 3])
    la = np.ascontiguousarray(image[..., [0, 3]])
    np.testing.assert_array_equal(decode_everywhere(svdcodec.encode(la, quality=quality))[..., 1],
                                  la[..., 1])


CONSTANTS = {
    "L": (np.uint8, 1, 77), "LA": (np.uint8, 2, 200), "RGB": (np.uint8, 3, 131),
    "RGBA": (np.uint8, 4, 9), "I;16": (np.uint16, 1, 40000), "F": (np.float32, 1, -3.25),
    "uint16x3": (np.uint16, 3, 4095), "float32x2": (np.float32, 2, 1e-3),
}


@pytest.mark.parametrize("quality", [1, 50, 75, 100])
@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_constant_images_exact(name: str, quality: int) -> None:
    dtype, channels, value = CONSTANTS[name]
    image = np.full((21, 34, channels), value, dtype=dtype)
    if name == "RGB":
        image[..., 1] = 17  # constant channels of different values
    decoded = decode_everywhere(svdcodec.encode(image, quality=quality))
    np.testing.assert_array_equal(decoded.reshape(image.shape), image)


def test_default_exactness_the_samples_cannot_take_falls_back() -> None:
    """Constant uint32 channels beyond 2^31 that a coarse layer misses by more than 2^31 (the
    |q| limit): the encode succeeds as without the default (the fuzzer's uint32_constant_
    channels.bin); an explicit max_error=0 codes the finest layer under the residual instead."""
    x = np.array([[[784487305, 2311242434, 222582355]]], dtype=np.uint32)
    data = svdcodec.encode(x, quality=1)
    assert svdcodec.decode(data).shape == (1, 1, 3)
    exact = svdcodec.encode(x, quality=1, max_error=0)
    np.testing.assert_array_equal(svdcodec.decode(exact).reshape(x.shape), x)


def test_a_layer_too_coarse_for_the_bound_is_refined() -> None:
    """uint32 samples near 2^31 at quality 1: the layer misses them by more than 2^31 steps,
    so the encoder codes the finest layer under the same bound (the round-trip fuzzer's
    uint32_lossless_coarse_layer.bin)."""
    x = np.array([[[2273806215, 9]], [[2273806217, 3]]], dtype=np.uint32).reshape(2, 1, 2)
    data = svdcodec.encode(x, quality=1, max_error=0)
    np.testing.assert_array_equal(svdcodec.decode(data).reshape(x.shape), x)


def test_float64_of_subnormal_peak_encodes() -> None:
    """A float64 array whose largest |x| is the smallest subnormal: its scale (a power of two
    near peak / 255, which underflows) is the least one (float64_subnormal_peak.bin)."""
    x = np.zeros((18, 17), np.float64)
    x[3, 4] = 5e-324
    out = svdcodec.decode(svdcodec.encode(x, quality=1, layout="plain"))
    assert out.dtype == np.float64 and out.shape == x.shape and np.all(np.isfinite(out))


def test_constant_plane_of_a_varying_image() -> None:
    image = np.empty((25, 31, 3), np.uint16)
    image[..., 0] = photo(25, 31, 1, seed=2)[..., 0].astype(np.uint16) * 16
    image[..., 1] = 1234
    image[..., 2] = 0
    decoded = decode_everywhere(svdcodec.encode(image, quality=30)).reshape(image.shape)
    np.testing.assert_array_equal(decoded[..., 1:], image[..., 1:])


@pytest.mark.parametrize("kind", ["RGB", "RGBA", "uint16 RGB"])
def test_a_constant_colour_channel_codes_the_channels_apart(kind: str) -> None:
    """An RGB(A) image with a constant colour channel beside varying ones (a red/green
    overlay) is coded channel by channel, not as Y'CbCr: the constant plane decodes exactly
    with no residual block, where through Y'CbCr it took the others' error and a residual
    that coded it sample by sample (a Kodak overlay 2.5-4.4 x its photo's file). With
    exact_constant=False, or with every colour channel varying, Y'CbCr as before."""
    wide = kind.startswith("uint16")
    image = photo(48, 64, 4 if kind == "RGBA" else 3, seed=21)
    if kind == "RGBA":
        image[..., 3] = 255  # opaque: no alpha residual either
    if wide:
        image = image.astype(np.uint16) * 257
    image[..., 2] = 0
    data = svdcodec.encode(image, quality=60)
    container = unpack(data)
    assert container.header.colour == COLOUR_NONE and not container.residuals
    decoded = decode_everywhere(data).reshape(image.shape)
    np.testing.assert_array_equal(decoded[..., 2], 0)
    assert psnr(decoded[..., :2], image[..., :2], 65535.0 if wide else 255.0) > 30
    if not wide:  # target_psnr is of the varying channels (not blue, nor an opaque alpha)
        data = svdcodec.encode(image, target_psnr=36.0)
        assert 36.0 <= psnr(svdcodec.decode(data)[..., :2], image[..., :2]) < 36.5
    assert unpack(svdcodec.encode(image, quality=60, exact_constant=False)).header.colour == COLOUR_YCBCR
    image[..., 2] = image[..., 0] // 2  # every colour channel varies
    assert unpack(svdcodec.encode(image, quality=60)).header.colour == COLOUR_YCBCR


def test_exact_defaults_off_keep_version_1() -> None:
    image = photo(40, 30, 4, seed=8)
    image[..., 3] = np.where(image[..., 3] > 128, 255, 0)
    data = svdcodec.encode(image, exact_alpha=False, exact_constant=False)
    assert format_version(data) == 5


def test_no_residual_needed_stays_version_1() -> None:
    """Without alpha or constant channels the default encoder writes version 1, the very
    bytes it wrote before version 2 existed (the exact defaults add nothing)."""
    image = photo(40, 30, 3, seed=9)
    data = svdcodec.encode(image)
    assert format_version(data) == 5
    assert data == svdcodec.encode(image, exact_alpha=False, exact_constant=False)
    assert b"RBLK" not in data


# ----------------------------------------------------------------------------- the exact rule


@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(1, 40), st.integers(1, 12))
def test_exact_product_is_exact(seed: int, m: int, n: int, r: int) -> None:
    """At the encoder's shift the binary64 product equals the integer product (Python ints),
    rounded once: whatever BLAS does."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-3000, 3000, (m, r))
    b = rng.integers(-3000, 3000, (n, r))
    sigma = np.sort(rng.uniform(1, 1e5, r).astype(np.float32))[::-1]
    step = float(rng.uniform(0.3, 40))
    shift = exact_rule.choose_shift(step, sigma, int(np.abs(a).max()), int(np.abs(b).max()), "t")
    w, total = exact_rule.weights(step, sigma, shift, "t")
    assert int(np.abs(a).max()) * int(np.abs(b).max()) * total < 2**53
    got = exact_rule.exact_product(a.astype(np.float32), w, b.T.astype(np.float32), shift)
    ints = [int(v) for v in w]
    exact = np.array([[sum(int(a[i, k]) * ints[k] * int(b[j, k]) for k in range(r))
                       for j in range(n)] for i in range(m)], dtype=object)
    expected = np.array([[np.float32(float(v) * 2.0 ** -shift) for v in row] for row in exact],
                        dtype=np.float32)
    np.testing.assert_array_equal(got, expected)
    # Another summation order (reversed components) gives the same bits.
    rev = exact_rule.exact_product(a[:, ::-1].astype(np.float32), w[::-1],
                                   b[:, ::-1].T.astype(np.float32), shift)
    np.testing.assert_array_equal(rev, got)


def test_weights_follow_the_spec() -> None:
    w, total = exact_rule.weights(2.0, np.array([3.0, 0.5], np.float32), 10, "t")
    assert list(w) == [round(4 / 3 * 1024), 8192] and total == 1365 + 8192


def test_read_factors_and_previews_of_version_2() -> None:
    image = photo(36, 28, 3, seed=10)
    layer = svdcodec.encode(image, quality=50)
    data = svdcodec.encode(image, quality=50, max_error=0)
    for a, b in zip(svdcodec.read_factors(layer), svdcodec.read_factors(data)):
        np.testing.assert_array_equal(a.U, b.U)
        np.testing.assert_array_equal(a.S, b.S)
    preview = svdcodec.decode(data, components=1)  # the low-rank layer, no residual
    assert preview.shape == image.shape
    np.testing.assert_array_equal(preview, decode_reference(data, components=1))
    assert svdcodec.decode(data, reduce=2).shape == (18, 14, 3)


# ----------------------------------------------------------------------------- invalid files


@pytest.mark.parametrize("entry", V2_INVALID, ids=[e["file"] for e in V2_INVALID])
def test_invalid_v2_vector_same_verdict_everywhere(entry: dict[str, Any]) -> None:
    data = (VECTORS / entry["file"]).read_bytes()
    calls: list[Callable[[], Any]] = [lambda: svdcodec.decode(data),
                                      lambda: decode_reference(data)]
    for on in (True, False):
        for call in calls:
            with kernels(on), pytest.raises(SvdiError, match=re.escape(entry["error"])):
                call()
    with pytest.raises(SvdiError, match=re.escape(entry["error"])):
        svdcodec.read_factors(data)
    with pytest.raises(OSError), Image.open(io.BytesIO(data)) as im:
        im.load()


def _verdict(call: Callable[[], np.ndarray]) -> np.ndarray | str:
    try:
        return call()
    except SvdiError:
        return "SvdiError"


@pytest.mark.parametrize("components", [1, 2])
def test_previews_agree_with_the_reference(components: int) -> None:
    """A preview applies the exact rule to the components it multiplies (spec §5.1), on every
    path as in the reference: the same verdict and pixels for every vector."""
    mv = make_vectors()
    late = mv.plane(7, 13, 2.0, [1.0, 2.0], 31, (4, 7), 3, code=mv.INT32)
    late.A[2, 1] = (1 << 24) + 1  # component 1 breaks the rule: a preview of 1 shows the file
    late_file = mv.V2Vector(mv.Vector("late", "", 13, 7, 1, [late]),
                            np.zeros((7, 13, 1), np.int64), {}).encode()
    with pytest.raises(SvdiError, match="2\\^24"):
        svdcodec.decode(late_file)
    files = [(e["file"], (VECTORS / e["file"]).read_bytes()) for e in MANIFEST["vectors"]]
    for name, data in files + [("bound broken in component 1", late_file)]:
        expected = _verdict(lambda data=data: decode_reference(data, components=components))
        for on in (True, False):
            with kernels(on):
                got = _verdict(lambda data=data: svdcodec.decode(data, components=components))
            if isinstance(expected, str) or isinstance(got, str):
                assert got == expected, (name, on)
            else:
                np.testing.assert_array_equal(got, expected.reshape(got.shape), err_msg=name)
    if components == 1:
        assert not isinstance(_verdict(lambda: svdcodec.decode(late_file, components=1)), str)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_thumbnails_follow_the_vectors(factor: int) -> None:
    """A thumbnail refuses what a full decode refuses, except a defect inside a residual's
    values, which a thumbnail does not read (docs/lossless.md); rank-0 planes included."""
    for entry in MANIFEST["vectors"]:
        data = (VECTORS / entry["file"]).read_bytes()
        if entry["valid"] or entry["file"] == "v2_rblk_q_range.svdi":
            h, w = entry.get("shape", [0, 0])[:2]
            thumb = svdcodec.decode(data, reduce=factor)
            if entry["valid"]:
                assert thumb.shape[:2] == (-(-h // factor), -(-w // factor))
        else:
            with pytest.raises(SvdiError):
                svdcodec.decode(data, reduce=factor)


def test_compiled_and_numpy_encoders_write_the_same_version_2_file() -> None:
    image = photo(45, 38, 4, seed=11)
    for options in ({"max_error": 0}, {"max_error": 3, "quality": 40}, {}):
        with kernels(True):
            a = svdcodec.encode(image, **options)
        with kernels(False):
            b = svdcodec.encode(image, **options)
        # version 4 where the encoder keeps a deblocking filter (it does on this photo)
        assert a == b and format_version(a) == 5


# ----------------------------------------------------------------------------- resources


def residual_bomb(side: int, q: int = 0) -> bytes:
    """L side x side, version 2, a rank-0 plane and one RBLK of int32 q (RLE zstd blocks: a few
    bytes per 128 KiB): 4 x side^2 bytes of residual content in a small file."""
    from support import make_vectors

    mv = make_vectors()
    content = side * side * 4
    if q == 0:  # a window of 2^23 (a single-segment frame's window is its whole content)
        frame = (struct.pack("<IBBQ", mv.ZSTD_MAGIC, 0xC0, (23 - 10) << 3, content)
                 + mv.zero_frame(content)[13:])
    else:
        frame = mv.zstd_frame(np.full(side * side, q, "<i4").tobytes())
    rblk = mv.chunk(b"RBLK", svdcodec.format.RESIDUAL_RECORD.pack(0, 255, 0, side, 1.0, 0.0, 3, 0)
                    + frame)
    return b"".join([svdcodec.format.SIGNATURE, mv.head(side, side, 1, 1, version=2),
                     mv.plan_v2(0, 0, 0, side, side, 0, 1.0, 0), rblk, mv.chunk(b"IEND", b"")])


def test_residual_phase_is_streamed() -> None:
    """A residual grid of 4 x 2^22 bytes is read band by band: decode's traced peak stays near
    the output's size (spec §5 Resources: never a whole grid)."""
    import tracemalloc

    side = 2048
    data = residual_bomb(side)
    assert len(data) < 4096
    svdcodec.decode(data, max_pixels=None)  # warm-up
    tracemalloc.start()
    try:
        out = svdcodec.decode(data, max_pixels=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (side, side) and not out.any()
    grid = 4 * side * side
    assert peak < side * side + grid // 2, peak  # the output, and far less than the grid


def test_residual_values_checked() -> None:
    data = residual_bomb(16, q=(1 << 31) - 1)
    np.testing.assert_array_equal(decode_everywhere(data), np.full((16, 16), 255, np.uint8))


# ----------------------------------------------------------------------------- arrays


def test_numcodecs_and_zarr_max_error() -> None:
    numcodecs = pytest.importorskip("numcodecs")
    pytest.importorskip("zarr")
    from svdcodec.zarr import Svdi as ZarrSvdi

    codec = numcodecs.get_codec({"id": "svdi", "quality": 60, "max_error": 3})
    assert codec.get_config()["max_error"] == 3.0 and codec.max_error == 3
    stack = (np.random.default_rng(12).random((3, 20, 17)) * 4095).astype(np.uint16)
    back = codec.decode(codec.encode(stack), out=np.empty_like(stack))
    assert max_error(back, stack) <= 3
    lossless = numcodecs.get_codec({"id": "svdi", "max_error": 0})
    np.testing.assert_array_equal(lossless.decode(lossless.encode(stack),
                                                  out=np.empty_like(stack)), stack)
    assert ZarrSvdi(max_error=0).to_dict()["configuration"]["max_error"] == 0.0
    with pytest.raises(SvdiError, match="max_error"):
        numcodecs.get_codec({"id": "svdi", "max_error": -1})


def test_constant_channels_look_past_the_first_row() -> None:
    """A channel constant along its first row but not below it is not constant; one equal
    everywhere is (-0.0 equals 0.0); a NaN makes a channel not constant, as min == max says."""
    from svdcodec.encoder.residual import constant_channels

    image = np.zeros((6, 5, 4), dtype=np.float32)
    image[..., 1] = 3.0
    image[5, 4, 2] = 1.0  # the last sample differs
    image[0, 0, 0] = -0.0
    image[3, 2, 3] = np.nan
    assert constant_channels(image) == {0, 1}
    assert constant_channels(image[:5]) == {0, 1, 2}


@pytest.mark.parametrize("row", [1, 3, 4, 15, 16, 63, 64, 99])
def test_constant_channels_find_a_change_in_any_band(row: int) -> None:
    """`constant_channels` reads growing bands of rows after the first: a channel that varies
    only in row `row` (at a band's first or last row, or the image's last) is not constant."""
    from svdcodec.encoder.residual import constant_channels

    image = np.full((100, 7, 3), 9, dtype=np.uint8)
    image[row, 6, 1] = 10
    image[row, 0, 2] = 8
    assert constant_channels(image) == {0}
    assert constant_channels(image[row:]) == {0}  # the change in the first row
    assert constant_channels(image[:row]) == {0, 1, 2}  # not among the rows read


@given(st.integers(0, 2**31), st.integers(1, 30), st.integers(0, 30))
def test_choose_shift_is_the_largest_valid_shift(seed: int, r: int, bits: int) -> None:
    """Bisection finds what a scan down from 63 finds: the valid shifts are 0..F."""
    rng = np.random.default_rng(seed)
    sigma = np.sort(rng.uniform(1e-3, 1e6, r).astype(np.float32))[::-1]
    step = float(rng.uniform(0.01, 100))
    a, b = (int(v) for v in rng.integers(1, 2**bits + 1, 2))

    def valid(shift: int) -> bool:
        try:
            _, total = exact_rule.weights(step, sigma, shift, "t")
            exact_rule.check_bound(a, b, total, "t")
        except SvdiError:
            return False
        return True
    scan = next((f for f in range(exact_rule.MAX_SHIFT, -1, -1) if valid(f)), None)
    if scan is None:
        with pytest.raises(SvdiError):
            exact_rule.choose_shift(step, sigma, a, b, "t")
    else:
        assert exact_rule.choose_shift(step, sigma, a, b, "t") == scan


@pytest.mark.parametrize("quality,layout", [(30, "auto"), (99, "plain"), (99, "patch8")])
def test_factor_magnitude_is_that_of_the_decoded_factors(quality: int, layout: str) -> None:
    """The encoder's max |A| and max |B| from the value codes alone equal those of the
    reference decoder's integer factors (dense and sparse blocks, escaped values)."""
    from svdcodec.codec.coding import from_symbols
    from svdcodec.decoder.reference import factor_integers
    from svdcodec.encoder.residual import block_magnitude, factor_magnitude
    from svdcodec.format import DENSE, unpack

    container = unpack(svdcodec.encode(photo(70, 90, 3, seed=quality), quality=quality,
                                       layout=layout, deblock=False))
    escaped = sum(b.data()[2].size for b in container.blocks
                  if b.factor in "UV" and b.coding != DENSE)
    assert escaped or quality < 95  # escaped values (beyond +-7) are read too
    for p in container.planes:
        for factor in "UV":
            want = exact_rule.magnitude(factor_integers(container, p, factor, p.rank))
            assert factor_magnitude(container, p, factor) == want
    for b in container.blocks:  # each sparse block alike (the dense first column often rules)
        if b.factor in "UV" and b.coding != DENSE:
            plane = container.planes[b.plane]
            rows = math.prod(plane.grid if b.factor == "U" else plane.vgrid)
            values = from_symbols(*b.data(), (rows, b.count))
            assert block_magnitude(b) == exact_rule.magnitude(values)


@pytest.mark.parametrize("quality,layout,generation", [
    (30, "auto", False), (75, "auto", True), (95, "auto", False), (99, "plain", False),
    (99, "patch8", True)])
def test_written_shift_is_the_one_the_file_gives(quality: int, layout: str,
                                                 generation: bool) -> None:
    """Each plane's shift F, which the encoder chooses from the quantizer's largest integers
    (`encoder.plane.coded_magnitudes`), is the one `choose_shift` gives from the written blocks'
    integers (`factor_magnitude`): after the RDOQ of sparse groups, with a fitted basis (a
    decoded image encoded again), in a plain layout and with V as one dense block or several."""
    from svdcodec.encoder.residual import factor_magnitude
    from svdcodec.format import unpack

    image = photo(70, 90, 3, seed=quality)
    if generation:
        image = svdcodec.decode(svdcodec.encode(image, quality=quality))
    container = unpack(svdcodec.encode(image, quality=quality, layout=layout))
    ranked = [p for p in container.planes if p.rank]
    assert ranked
    for p in ranked:
        a, b = factor_magnitude(container, p, "U"), factor_magnitude(container, p, "V")
        assert p.shift == exact_rule.choose_shift(p.step, container.singular_values(p.index),
                                                  a, b, "t")


def test_rank_zero_32_bit_samples_beyond_the_residual_say_what_to_drop() -> None:
    """rank=0 leaves the residual the samples themselves: 32-bit ones beyond 2^31 steps are
    refused with the remedy; the same array without rank=0 is coded losslessly."""
    big = np.full((7, 5), 3_366_433_354, np.uint32)
    with pytest.raises(svdcodec.SvdiError, match="without rank=0"):
        svdcodec.encode(big, max_error=0, rank=0)
    assert np.array_equal(svdcodec.decode(svdcodec.encode(big, max_error=0)), big)


def test_float32_at_its_largest_value_warns_of_nothing() -> None:
    top = np.full((8, 8), np.finfo(np.float32).max, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(svdcodec.decode(svdcodec.encode(top, max_error=1.0)), top)


def test_one_channels_short_blocks_do_not_cut_the_other_channels_bands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Residual bands are cut per group of channels: one channel of one-row blocks among 12
    makes its own group's bands one row high, not every group's (a numpy step per band and
    channel: each group of 255 channels then took a step per row), and the samples are as
    before."""
    from support import make_vectors

    from svdcodec.decoder import residuals
    from svdcodec.format import NO_REFERENCE

    mv = make_vectors()
    channels, height, width = 12, 64, 3
    rng = np.random.default_rng(5)
    q = rng.integers(0, 100, (height, width, channels))
    parts = [svdcodec.format.SIGNATURE, mv.head(width, height, 1, channels, version=2)]
    parts += [mv.plan_v2(c, svdcodec.format.LAYOUT_PLAIN, 0, height, width, 0, 1.0, 0)
              for c in range(channels)]
    parts += [mv.rblk(0, NO_REFERENCE, y, q[y:y + 1, :, 0], 1.0, 0.0, mv.INT8, 0)
              for y in range(height)]
    parts += [mv.rblk(c, NO_REFERENCE, 0, q[:, :, c], 1.0, 0.0, mv.INT8, 0)
              for c in range(1, channels)]
    data = b"".join(parts + [mv.chunk(b"IEND", b"")])
    steps = []
    real = residuals.ChannelCursor.rows
    monkeypatch.setattr(residuals.ChannelCursor, "rows",
                        lambda self, y0, y1: steps.append(1) or real(self, y0, y1))
    assert np.array_equal(svdcodec.decode(data), q.astype(np.uint8))
    assert len(steps) == residuals.OPEN_STREAMS * height + (channels - residuals.OPEN_STREAMS)


def test_residual_blocks_read_through_a_few_decompressors() -> None:
    """A file of many residual blocks (64 one-row blocks) reads them through the thread's
    spare decompressors (each reader's, once its frame is read whole), not one new
    decompressor a block; the samples are those of each block's own frame."""
    from support import make_vectors

    from svdcodec.format import NO_REFERENCE, blocks

    mv = make_vectors()
    height, width = 64, 5
    q = np.random.default_rng(9).integers(0, 100, (height, width))
    parts = [svdcodec.format.SIGNATURE, mv.head(width, height, 1, 1, version=2),
             mv.plan_v2(0, svdcodec.format.LAYOUT_PLAIN, 0, height, width, 0, 1.0, 0)]
    parts += [mv.rblk(0, NO_REFERENCE, y, q[y:y + 1], 1.0, 0.0, mv.INT8, 0)
              for y in range(height)]
    data = b"".join(parts + [mv.chunk(b"IEND", b"")])
    made = []
    real = blocks.new_decompressor
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(blocks, "new_decompressor", lambda *a: made.append(1) or real(*a))
        for _ in range(3):
            assert np.array_equal(svdcodec.decode(data), q.astype(np.uint8))
    assert len(made) <= blocks.SPARE_DECOMPRESSORS


def test_a_bound_on_samples_of_a_coarser_grid_costs_no_more_than_lossless() -> None:
    """8-bit values stored as 16-bit samples (v x 257, v x 256: integer_spacing 257, 256):
    a bound's residual steps blur the repeated bytes that the lossless residual codes, so
    the encoder keeps the lossless file where it is the smaller (it meets every bound; a
    bound of 1 cost 1.32 x lossless on a Kodak photo's 16-bit PNG); samples on no grid
    (spacing 1) go the bounded way alone."""
    from svdcodec.encoder.residual import integer_spacing

    grey = photo(96, 80, 1, seed=11)[..., 0].astype(np.uint16)
    for image in (grey * 257, np.dstack([grey * 256] * 3)):
        lossless = svdcodec.encode(image, max_error=0)
        for bound in (1, 4):
            data = svdcodec.encode(image, max_error=bound)
            assert len(data) <= len(lossless)
            out = decode_everywhere(data).astype(np.int64).reshape(image.shape)
            assert np.abs(out - image).max() <= bound
    assert integer_spacing(grey * 257) == 257 and integer_spacing(grey * 256 + 5) == 256
    assert integer_spacing(np.dstack([grey * 4 + 1, grey * 6 + 3])) == 2
    assert integer_spacing(grey + 1) == 1 and integer_spacing(np.full((3, 3), 7)) == 0
    assert integer_spacing(grey.astype(np.float32) * 2) == 0


def test_a_bound_on_float32_samples_near_the_largest_finite_warns_of_nothing() -> None:
    """The steps' margin is measured at the type's largest finite value at most (numpy's cast
    of a larger one, and its spacing of the largest, overflow): no RuntimeWarning leaks, and
    the bound holds on every decoder."""
    y, x = np.mgrid[0:48, 0:40]
    image = (np.sin(x / 10) * np.cos(y / 13) * np.finfo(np.float32).max).astype(np.float32)
    bound = float(np.abs(image).max()) * 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = svdcodec.encode(image, max_error=bound)
    out = decode_everywhere(data).astype(np.float64).reshape(image.shape)
    assert np.abs(out - image.astype(np.float64)).max() <= bound
