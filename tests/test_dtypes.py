"""Every sample type and channel count of format version 2 (spec §2, §5.2, §5.3): int8, int16,
int32, uint32 and float64 beside uint8, uint16 and float32, with 1 to 255 channels.

Each decode is checked on the compiled and numpy paths and against the reference decoder, bit
for bit; the bound max_error=E against the original samples; dtype and shape kept.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import StreamCount, decode_everywhere, format_version, photo

import svdcodec
from svdcodec import SvdiError
from svdcodec.decoder import residuals as residual_phase
from svdcodec.format import unpack

INTEGERS = [np.uint8, np.uint16, np.int8, np.int16, np.int32, np.uint32]
FLOATS = [np.float32, np.float64]
NEW_TYPES = [np.int8, np.int16, np.int32, np.uint32, np.float64]




def largest_error(decoded: np.ndarray, original: np.ndarray) -> float:
    """max |decoded - original|, exactly for 32-bit integers (as Python-sized int64)."""
    if original.dtype.kind in "iu":
        diff = decoded.reshape(original.shape).astype(np.int64) - original.astype(np.int64)
        return float(np.abs(diff).max(initial=0))
    return float(np.max(np.abs(decoded.reshape(original.shape).astype(np.float64)
                               - original.astype(np.float64)), initial=0.0))


@st.composite
def arrays(draw: st.DrawFn, dtype: type) -> np.ndarray:
    """A small array of 1-8 channels: smooth structure plus noise, or noise alone, over a
    span of the type's range (the whole range for integers, at times), negative for signed."""
    h, w, c = draw(st.integers(1, 20)), draw(st.integers(1, 20)), draw(st.integers(1, 8))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    base = (photo(h, w, min(c, 4), draw(st.integers(0, 99))).astype(np.float64) / 255
            if draw(st.booleans()) else rng.random((h, w, min(c, 4))))
    base = np.concatenate([base] * 2, axis=2)[:, :, :c] if c > 4 else base
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        span = draw(st.sampled_from([1.0, 0.01, 1e-4]))
        low = float(info.min) if info.min < 0 and draw(st.booleans()) else 0.0
        top = float(info.max) if low == 0 else float(info.max) - float(info.min)
        values = np.floor(low * span + base * top * span)
        return np.clip(values, info.min, info.max).astype(dtype)
    top = draw(st.sampled_from([1.0, 1000.0, 1e30 if dtype is np.float64 else 1e20]))
    return ((base - 0.5 * draw(st.booleans())) * top).astype(dtype)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_integers_within_bound(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(INTEGERS))
    image = data.draw(arrays(dtype))
    bound = data.draw(st.sampled_from([0, 1, 3]))
    encoded = svdcodec.encode(image, max_error=bound)
    decoded = decode_everywhere(encoded)
    assert decoded.dtype == image.dtype and decoded.reshape(image.shape).shape == image.shape
    assert decoded.shape == (image.shape if image.shape[2] > 1 else image.shape[:2])
    assert largest_error(decoded, image) <= bound
    if bound == 0:
        np.testing.assert_array_equal(decoded.reshape(image.shape), image)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_floats_within_bound(data: st.DataObject) -> None:
    dtype = data.draw(st.sampled_from(FLOATS))
    image = data.draw(arrays(dtype))
    peak = float(np.abs(image.astype(np.float64)).max())
    # an absolute bound the type can resolve at this magnitude (a float32 sample of 1e20
    # cannot be within 0.01 of anything but itself)
    bound = data.draw(st.sampled_from([1.0, 0.01])) * max(1.0, peak * 1e-3)
    decoded = decode_everywhere(svdcodec.encode(image, max_error=bound))
    assert decoded.dtype == image.dtype
    assert largest_error(decoded, image) <= bound


@pytest.mark.parametrize("dtype", NEW_TYPES)
@pytest.mark.parametrize("channels", [1, 3, 5, 8])
def test_lossy_new_types_keep_type_shape_and_version_2(dtype: type, channels: int) -> None:
    image = photo(24, 20, min(channels, 4), 3).astype(np.float64)
    image = np.concatenate([image, image[:, ::-1]], axis=2)[:, :, :channels]
    if np.dtype(dtype).kind == "i":
        image -= 128
    if np.dtype(dtype).itemsize >= 4:
        image *= 1000.0
    image = image.astype(dtype)
    data = svdcodec.encode(image, quality=90)
    assert format_version(data) == 5
    decoded = decode_everywhere(data)
    assert decoded.dtype == image.dtype
    assert decoded.reshape(image.shape).shape == image.shape
    peak = float(np.abs(image.astype(np.float64)).max())
    assert largest_error(decoded, image) <= 0.25 * peak  # lossy, but the picture's own


def test_every_type_and_channel_count_is_version_5() -> None:
    for dtype, scale in [(np.uint8, 1), (np.uint16, 257), (np.float32, 1 / 255)]:
        for channels in (1, 2, 3, 4):
            image = (photo(16, 16, channels, 1).astype(np.float64) * scale).astype(dtype)
            assert format_version(svdcodec.encode(image, exact_constant=False,
                                                  exact_alpha=False)) == 5
    assert format_version(svdcodec.encode(photo(16, 16, 4, 1)[..., :1].repeat(5, 2))) == 5


def test_full_range_32_bit_lossless() -> None:
    """The corners of int32 and uint32: E = 0 is exact through the residual, though the
    binary32 planes resolve about 2^8 units at this magnitude."""
    for dtype in (np.int32, np.uint32):
        info = np.iinfo(dtype)
        image = np.array([[info.min, info.max, 0, 1], [info.max, info.min, 7, info.max - 1]],
                         dtype=dtype)
        decoded = decode_everywhere(svdcodec.encode(image, max_error=0))
        np.testing.assert_array_equal(decoded, image)


def test_signed_rounding_is_half_up_not_towards_zero() -> None:
    """Negative int16 samples round half up (floor(x + 1/2)), as spec §5.2 says."""
    image = np.arange(-300, 300, 3, dtype=np.int16).reshape(10, 20)
    decoded = decode_everywhere(svdcodec.encode(image, quality=100))
    assert largest_error(decoded, image) <= 3


def test_float64_lossless_only_where_the_differences_fit() -> None:
    """max_error=0 for float64: exact when the differences fit 31-bit residuals at the finest
    bit of any sample or reconstruction (samples of one magnitude on a grid), refused with a
    message naming what to do otherwise (samples near zero: their reconstructions' bits)."""
    grid = (np.arange(60, dtype=np.float64).reshape(6, 10) * 0.25) + 1000.0
    np.testing.assert_array_equal(decode_everywhere(svdcodec.encode(grid, max_error=0)), grid)
    noisy = np.random.default_rng(1).normal(size=(12, 10))
    with pytest.raises(SvdiError, match="max_error > 0"):
        svdcodec.encode(noisy, max_error=0)


@pytest.mark.parametrize("quality", [5, 56])
def test_float64_near_the_largest_float64_is_stored_or_refused_never_undecodable(
        quality: int) -> None:
    """Found by the round-trip fuzzer: samples up to the largest float64 made a scale past
    HEAD's limit (max / 255) or a reconstruction that overflows float64 (not clamped, spec
    §5.2), so encode wrote a file decode refused. The scale is capped at the largest allowed
    power of two, and a file whose reconstruction still overflows is refused at encode with a
    message that says what to do."""
    top = float(np.finfo(np.float64).max)
    rng = np.random.default_rng(3)
    for peak in (top, top * 0.98, 2.0 ** 1010):
        samples = rng.choice([-peak, peak, 0.0, peak / 3], size=(16, 16, 3))
        try:
            data = svdcodec.encode(samples, quality=quality)
        except SvdiError as error:
            assert "scale them down" in str(error)
            continue
        assert unpack(data).header.scale <= top / 255
        decoded = decode_everywhere(data)
        assert decoded.dtype == np.float64 and np.all(np.isfinite(decoded))
    modest = rng.choice([-2.0 ** 990, 2.0 ** 990], size=(16, 16))
    assert np.all(np.isfinite(decode_everywhere(svdcodec.encode(modest, quality=quality))))


def test_float16_refused_with_the_exact_conversion_named() -> None:
    with pytest.raises(SvdiError, match=r"astype\(np.float32\)"):
        svdcodec.encode(np.zeros((4, 4), np.float16))


def test_big_endian_input_is_read_as_its_values() -> None:
    image = (np.arange(48, dtype=np.int16).reshape(6, 8) - 20).astype(">i2")
    decoded = decode_everywhere(svdcodec.encode(image, max_error=0))
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, image.astype(np.int16))


def test_255_channels_and_not_256() -> None:
    image = np.random.default_rng(2).integers(0, 9, (3, 4, 255), dtype=np.uint8)
    np.testing.assert_array_equal(decode_everywhere(svdcodec.encode(image, max_error=0)), image)
    with pytest.raises(SvdiError, match="1..255"):
        svdcodec.encode(np.zeros((3, 4, 256), np.uint8))


def test_many_channels_open_at_most_four_residual_streams(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The residual phase of a 9-channel file: groups of channels whose streams number at most
    OPEN_STREAMS at once (the references read again where needed); the same samples as the
    reference decoder."""
    streams = StreamCount().watch(monkeypatch)
    # bands of 3 rows: a block spans several, so every stream of a group is open at once
    monkeypatch.setattr(residual_phase, "BAND_SAMPLES", 3 * 12)
    image = np.random.default_rng(3).integers(0, 255, (10, 12, 9), dtype=np.uint8)
    data = svdcodec.encode(image, max_error=0)
    np.testing.assert_array_equal(decode_everywhere(data), image)
    assert 1 <= streams.most <= 4 and streams.open == 0  # spec §5 Resources
    groups = residual_phase.channel_groups(unpack(data))
    assert len(groups) >= 3 and sorted(c for group in groups for c in group) == list(range(9))


def test_spectrum_and_read_factors_of_new_types() -> None:
    image = (photo(20, 24, 1, 5).astype(np.float64) - 128) * 10
    for dtype in (np.int16, np.float64):
        data = svdcodec.encode(image.astype(dtype)[..., 0], quality=95, layout="plain")
        (factors,) = svdcodec.read_factors(data)
        approx = factors.U @ np.diag(factors.S) @ factors.Vt
        assert np.abs(approx - image[..., 0]).max() < 0.1 * np.abs(image).max()
        assert svdcodec.spectrum(image.astype(dtype)[..., 0])[0].sigma.size > 0
