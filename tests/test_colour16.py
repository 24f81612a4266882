"""Format version 3: the Y'CbCr transform (colour 1) for 16-bit RGB(A) (spec §2, §5.2).

Round trips on both decode paths and the reference decoder bit for bit, the encoder's choice of
the lowest version, the integer inverse transform and its coefficients, the compiled kernel
against numpy, previews and thumbnails, read_factors' units and the Pillow plugin's 8-bit view.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image
from support import decode_everywhere, format_version, kernels, photo

import svdcodec
from svdcodec import SvdiError
from svdcodec.codec import colour
from svdcodec.decoder.reference import decode_reference
from svdcodec.format import COLOUR_YCBCR, HEAD_RECORD, unpack
from svdcodec.pillow_plugin import ReducedDepthWarning
from svdcodec.runtime import kernels as kernel_module


def wide(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A 16-bit photo: 8-bit gradients widened, with detail in the low byte (within range)."""
    base = photo(height, width, channels, seed).astype(np.int64) * 257
    low = np.random.default_rng(seed).integers(-200, 200, base.shape)
    return np.clip(base + low, 0, 65535).astype(np.uint16)


def psnr16(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(65535.0 ** 2 / mse))


@pytest.mark.parametrize("options", [{}, {"quality": 95}, {"layout": "plain", "quality": 60}])
@pytest.mark.parametrize("shape", [(48, 64, 3), (37, 51, 3), (40, 56, 4)])
def test_round_trip_is_version_3_and_bit_exact_everywhere(shape: tuple[int, int, int],
                                                         options: dict) -> None:
    image = wide(*shape)
    with kernels(True):
        data = svdcodec.encode(image, **options)
    with kernels(False):
        assert svdcodec.encode(image, **options) == data  # the same bytes on both paths
    header = unpack(data).header
    # an alpha that varies is the residual alone (no layer): its 16-bit differences go in
    # wrapped blocks (version 7)
    version = 7 if shape[2] == 4 else 5
    assert (format_version(data), header.colour, header.dtype) == (version, COLOUR_YCBCR,
                                                                   np.uint16)
    # colour 0's rule: Y' spans 0..255 (of the layer's channels: not a varying alpha's)
    assert header.scale == float(image[..., :3].max()) / 255
    decoded = decode_everywhere(data)
    assert decoded.dtype == np.uint16 and decoded.shape == shape
    assert psnr16(decoded[..., :3], image[..., :3]) > 30
    if shape[2] == 4:  # alpha exact by default, as for 8-bit RGBA
        np.testing.assert_array_equal(decoded[..., 3], image[..., 3])


def test_quality_means_what_it_means_for_8_bits() -> None:
    """x257 (8 bits widened exactly): the same step, the same PSNR within a fraction of a dB,
    and a file of nearly the same size (colour 0 was 2-3 times larger). Nearly: 8-bit planes
    are corrected for the rounding bias of Pillow's Y'CbCr -> RGB (`colour.unbiased`), 16-bit
    ones need none (an integer inverse rounding to nearest), so small images' layout and rank
    decisions may differ (within 4 % here)."""
    rgb = photo(64, 96, 3, 5)
    rgb[0, 0] = 255  # the 16-bit scale is max / 255: 257 here
    for quality in (50, 90):
        small, big = svdcodec.encode(rgb, quality=quality), svdcodec.encode(
            rgb.astype(np.uint16) * 257, quality=quality)
        assert abs(len(big) - len(small)) < 0.05 * len(small)
        p8 = psnr16(svdcodec.decode(small).astype(np.uint16) * 257, rgb.astype(np.uint16) * 257)
        assert abs(psnr16(svdcodec.decode(big), rgb.astype(np.uint16) * 257) - p8) < 0.5


@pytest.mark.parametrize("bound", [0, 3, 200])
def test_residuals_bound_the_rgb_channels(bound: int) -> None:
    image = wide(33, 41, 3, 2)
    data = svdcodec.encode(image, max_error=bound)
    blocks = unpack(data).residuals
    # version 7 where a block is wrapped (lossless: this small picture's layer does not pay for
    # itself, and its residual over no layer spans 17 bits)
    assert format_version(data) == (7 if any(b.wrapped for b in blocks) else 5)
    assert {b.channel: b.reference for b in blocks} == {1: 255, 0: 1, 2: 1}  # subtract green
    decoded = decode_everywhere(data)
    assert int(np.abs(decoded.astype(np.int64) - image).max()) <= bound


def test_writer_writes_version_5() -> None:
    """Every file is version 5 (the compact container, spec §4.2), whatever it holds."""
    rgb = photo(24, 32, 3, 1)
    assert format_version(svdcodec.encode(rgb)) == 5
    assert format_version(svdcodec.encode(rgb, max_error=2)) == 5
    grey16 = rgb[..., 0].astype(np.uint16) * 257
    assert format_version(svdcodec.encode(grey16)) == 5
    assert format_version(svdcodec.encode(np.dstack([grey16, grey16]))) == 5
    assert format_version(svdcodec.encode(rgb.astype(np.uint16) * 257)) == 5
    assert unpack(svdcodec.encode(rgb.astype(np.int16))).header.colour == 0  # arrays: no colour


def test_centred_16_bit_rgb_stays_version_3() -> None:
    """centre=True adds MEAN chunks (version 2's) to a version 3 file, which may hold them."""
    image = wide(24, 40, 3, 9)
    data = svdcodec.encode(image, centre=True, quality=90)
    box = unpack(data)
    assert (box.header.version, box.header.colour) == (5, COLOUR_YCBCR)
    assert all(box.column_means(p.index) is not None for p in box.planes)
    decoded = decode_everywhere(data)
    assert psnr16(decoded, image) > 30


def test_colour_1_of_16_bits_in_a_version_2_header_is_invalid() -> None:
    data = bytearray(svdcodec.encode(wide(16, 16, 3)))
    payload = slice(16, 16 + HEAD_RECORD.size)
    fields = list(HEAD_RECORD.unpack(bytes(data[payload])))
    for version in (1, 2):
        fields[0] = version
        data[payload] = HEAD_RECORD.pack(*fields)
        broken = _fix_crc(bytes(data))
        with pytest.raises(SvdiError, match=r"Y'CbCr transform needs 8-bit RGB or RGBA"):
            svdcodec.decode(broken)
        with pytest.raises(SvdiError):
            decode_reference(broken)


def _fix_crc(data: bytes) -> bytes:
    """The HEAD chunk's CRC recomputed (the chunk starts after the 8-byte signature)."""
    import zlib

    length = int.from_bytes(data[8:12], "big")
    crc = zlib.crc32(data[12:16 + length])
    return data[:16 + length] + crc.to_bytes(4, "big") + data[20 + length:]


def _round_trip(rgb: np.ndarray, k: tuple[int, int, int, int]) -> np.ndarray:
    """RGB samples through the encoder's forward transform (float64, scale 257) and the
    decoder's inverse with coefficients k, without quantization."""
    planes = [colour.wide_ycc_plane(rgb, i, 257.0) for i in range(3)]
    out = np.empty(rgb.shape, np.uint16)
    out[..., 0] = colour.integer_samples(planes[0], 257.0, np.dtype(np.uint16))
    for i in (1, 2):
        out[..., i] = colour.integer_samples(planes[i], 257.0, np.dtype(np.uint16),
                                             colour.CHROMA_OFFSET_16)
    saved = colour.YCC16_INVERSE
    try:
        colour.YCC16_INVERSE = k
        colour.wide_ycc_to_rgb(out)
    finally:
        colour.YCC16_INVERSE = saved
    return out


def test_inverse_coefficients_and_their_round_trip() -> None:
    """The coefficients are the inverse of the forward weights rounded to 2^-16; grey comes
    back exactly, primaries within a level, and random colours more often exactly than with
    JFIF's rounded 1.402, 0.344136, 0.714136, 1.772 (91881, 22554, 46802, 116130)."""
    inverse = np.linalg.inv(colour.YCC_WEIGHTS.astype(np.float64) / 65536) * 65536
    k = colour.YCC16_INVERSE
    assert k == (round(inverse[0, 2]), round(inverse[1, 1]), round(inverse[1, 2]),
                 round(inverse[2, 1]))
    assert abs(inverse[0, 1]) < 1 and abs(inverse[2, 2]) < 1  # the terms left out
    grey = np.repeat(np.arange(65536, dtype=np.uint16)[:, None, None], 3, 2)
    np.testing.assert_array_equal(_round_trip(grey, k), grey)
    corners = np.array([[[r, g, b] for r in (0, 65535) for g in (0, 65535) for b in (0, 65535)]],
                       np.uint16)
    assert np.abs(_round_trip(corners, k).astype(int) - corners).max() <= 1
    rgb = np.random.default_rng(3).integers(0, 65536, (200, 1000, 3)).astype(np.uint16)
    ours = np.mean(_round_trip(rgb, k) == rgb)
    jfif = np.mean(_round_trip(rgb, (91881, -22554, -46802, 116130)) == rgb)
    assert ours > jfif + 0.02
    assert np.abs(_round_trip(rgb, k).astype(int) - rgb).max() <= 2


def test_compiled_conversion_equals_numpy() -> None:
    compiled = kernel_module.get()
    if compiled is None:
        pytest.skip("the C extension is not built")
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.integers(0, 65536, 30000),
                             np.array([0, 1, 32767, 32768, 32769, 65534, 65535])])
    image = rng.choice(values, (61, 97, 4)).astype(np.uint16)
    expected = image.copy()
    colour.wide_ycc_to_rgb(expected)
    got = image.copy()
    k = np.array(colour.YCC16_INVERSE, np.int64)
    compiled.convert_wide_ycc(got, 5, 40, k)  # rows 5..40 only
    np.testing.assert_array_equal(got[5:40], expected[5:40])
    np.testing.assert_array_equal(got[:5], image[:5])
    np.testing.assert_array_equal(got[40:], image[40:])
    assert not np.array_equal(expected[..., :3], image[..., :3])
    for bad in (np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 2), np.uint16),
                np.zeros((4, 4, 3), np.uint16)[:, ::2]):
        with pytest.raises((TypeError, ValueError)):
            compiled.convert_wide_ycc(bad, 0, 2, k)
    with pytest.raises(ValueError):
        compiled.convert_wide_ycc(got, 0, 62, k)
    with pytest.raises(ValueError):
        compiled.convert_wide_ycc(got, -1, 3, k)
    with pytest.raises(ValueError):
        compiled.convert_wide_ycc(got, 0, 3, np.array([1 << 18, 0, 0, 0]))
    with pytest.raises(ValueError):
        compiled.convert_wide_ycc(got, 0, 3, k[:3])


def test_previews_and_thumbnails() -> None:
    image = wide(64, 80, 4, 6)
    data = svdcodec.encode(image, quality=80)
    for components in (1, 3):
        decode_everywhere(data, components=components)
    full = svdcodec.decode(data).astype(np.float64)
    for factor in (2, 4):
        small = svdcodec.decode(data, reduce=factor)
        assert small.dtype == np.uint16 and small.shape == (64 // factor, 80 // factor, 4)
        boxed = full.reshape(64 // factor, factor, 80 // factor, factor, 4).mean(axis=(1, 3))
        # 16-bit levels. The stored chroma is the least-squares inverse of the decoder's
        # doubling, sharper than a 2x2 mean: a 1/2 preview reads it as it is, the full decode
        # doubles it (a [1 6 1] / 8 blur) before the box here; with this image's noisy low
        # byte, R and B differ by about 600, G and alpha by about 300 (2 x 2 means: 150).
        assert np.abs(small - boxed)[1:-1, 1:-1].mean() < 600


def test_read_factors_in_sample_units() -> None:
    """16-bit Y'CbCr factors are in sample units (S times the scale), as colour 0's: Y' from
    the factors is the 16-bit luma."""
    image = wide(32, 48, 3, 7)
    data = svdcodec.encode(image, quality=95, layout="plain")
    luma = svdcodec.read_factors(data)[0]
    y = (luma.U * luma.S) @ luma.Vt
    expected = image.astype(np.float64) @ (colour.YCC_WEIGHTS[0].astype(np.float64) / 65536)
    assert np.abs(y - expected).mean() < 0.01 * 65535


def test_pillow_opens_16_bit_rgb_at_8_bits_with_a_warning() -> None:
    image = wide(20, 30, 4, 8)
    data = svdcodec.encode(image, quality=90)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Image.open(io.BytesIO(data)) as im:
            assert (im.format, im.mode, im.size) == ("SVDI", "RGBA", (30, 20))
            pixels = np.asarray(im)
    messages = [str(w.message) for w in caught if issubclass(w.category, ReducedDepthWarning)]
    assert len(messages) == 1 and "svdcodec.decode" in messages[0] and "8 bits" in messages[0]
    assert issubclass(ReducedDepthWarning, UserWarning)
    expected = np.round(svdcodec.decode(data).astype(np.float64) * 255 / 65535)
    np.testing.assert_array_equal(pixels, expected.astype(np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ReducedDepthWarning)
        with Image.open(io.BytesIO(svdcodec.encode(image[..., :3]))) as im:
            assert im.mode == "RGB"
            im.thumbnail((8, 8))  # a reduced decode, rounded to 8 bits too
            assert im.size == (8, 5) and np.asarray(im).dtype == np.uint8


def test_rounding_to_8_bits_holds_pieces_not_copies_of_the_image() -> None:
    """16-bit RGB opened in Pillow is rounded to 8 bits a piece at a time: no 32-bit copy of
    the whole image beside it (two made 10 x the 8-bit image's memory); the same bits."""
    from support import traced_peak

    from svdcodec.pillow_plugin import to_8_bits

    pixels = np.random.default_rng(3).integers(0, 65536, (1024, 1024, 3)).astype(np.uint16)
    error, peak = traced_peak(lambda: to_8_bits(pixels))
    small = to_8_bits(pixels)
    assert error is None
    assert np.array_equal(small, ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8))
    assert peak < 2 * small.nbytes
