"""What an encode holds: a Pillow image read band by band (`modes.ImageRows`) instead of copied
whole, the halved chroma converted to float32 in its own buffer, and svdi-encode's input bytes
let go before the encode. Each gives the same bytes as before."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import photo

import svdcodec
from svdcodec import modes
from svdcodec.cli import encode_main, photos
from svdcodec.codec.resample import float32_in_place
from svdcodec.encoder import plane as encoder_plane
from svdcodec.modes import ImageRows, raw_array
from svdcodec.runtime import band_sizes


def saved(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "SVDI", **options)
    return buffer.getvalue()


@pytest.fixture
def rows_always(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Every L and RGB Pillow image read band by band; the row ranges read, recorded."""
    monkeypatch.setattr(band_sizes, "ROWS_FROM_SAMPLES", 0)
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 4096)
    # A small plane's patches are kept whole once read (encoder.plane.CachingSource), which
    # reads it whole: off, so that these small images take the large ones' path.
    monkeypatch.setattr(encoder_plane, "CACHED_PATCH_SAMPLES", 0)
    reads: list[tuple[int, int]] = []
    real = modes.raw_rows

    def recorded(image: Image.Image, y0: int, y1: int) -> np.ndarray:
        reads.append((y0, y1))
        return real(image, y0, y1)
    monkeypatch.setattr(modes, "raw_rows", recorded)
    return reads


@pytest.mark.parametrize("channels", [1, 3])
def test_image_rows_are_the_samples(channels: int) -> None:
    pixels = photo(53, 71, channels)
    pixels = pixels[..., 0] if channels == 1 else pixels
    rows = ImageRows(Image.fromarray(pixels))
    assert rows.shape == (53, 71, channels) and rows.size == pixels.size
    whole = pixels.reshape(53, 71, channels)
    for y0, y1 in [(0, 1), (7, 30), (52, 53), (0, 53), (40, 99)]:
        assert np.array_equal(rows[y0:y1], whole[y0:y1])
    assert np.array_equal(rows.array(), whole)
    assert np.array_equal(raw_array(Image.fromarray(pixels)), pixels)
    assert rows.extrema() == [(int(whole[..., c].min()), int(whole[..., c].max()))
                              for c in range(channels)]


def test_image_rows_take_only_l_and_rgb() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        ImageRows(Image.new("RGBA", (4, 4)))


OPTIONS = [{}, {"quality": 30}, {"quality": 95}, {"layout": "plain"}, {"layout": "patch4"},
           {"rank": 5}, {"centre": True}, {"effort": 2}]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("shape", [(200, 131, 3), (97, 250, 1), (1, 40, 3), (300, 9, 3)])
def test_pillow_image_read_by_band_encodes_as_its_array(
        shape: tuple[int, int, int], options: dict, rows_always: list[tuple[int, int]]) -> None:
    if options.get("centre") and shape[2] == 3:
        options = {**options, "layout": "plain"}
    pixels = photo(*shape)
    pixels = pixels[..., 0] if shape[2] == 1 else pixels
    data = saved(Image.fromarray(pixels), **options)
    assert rows_always, "the image was not read band by band"
    assert data == svdcodec.encode(pixels, **options)


def test_no_whole_copy_of_a_large_pillow_image(rows_always: list[tuple[int, int]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The patch layouts read bands, never the whole image at once."""
    def refused(image: Image.Image) -> np.ndarray:
        raise AssertionError("the whole image was copied")
    monkeypatch.setattr(modes, "raw_array", refused)
    pixels = photo(320, 240, 3)
    assert saved(Image.fromarray(pixels)) == svdcodec.encode(pixels)
    assert max(y1 - y0 for y0, y1 in rows_always) < 320


@pytest.mark.parametrize("options", [{"max_error": 2}, {"deblock": True}, {"target_psnr": 30},
                                     {"max_bytes": 3000}])
def test_options_reading_the_whole_array_get_it(options: dict,
                                                rows_always: list[tuple[int, int]]) -> None:
    pixels = photo(64, 96, 3)
    assert saved(Image.fromarray(pixels), **options) == svdcodec.encode(pixels, **options)


def test_constant_channel_found_from_pillow_extrema(rows_always: list[tuple[int, int]]) -> None:
    """exact_constant: a constant channel takes a residual, which reads the whole array."""
    pixels = photo(64, 96, 3)
    pixels[..., 2] = 77
    pixels[0, :, 0] = 5  # channel 0 constant on the first row only
    data = saved(Image.fromarray(pixels))
    assert data == svdcodec.encode(pixels)
    assert np.array_equal(svdcodec.decode(data)[..., 2], pixels[..., 2])
    assert (0, 64) in rows_always  # the whole array, for the residual


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (3, 5), (64, 77), (257, 103)])
def test_float32_in_place_is_astype(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_normal(shape) * 10.0 ** rng.integers(-30, 30, shape)
    expected = z.astype(np.float32)
    out = float32_in_place(z)
    assert out.shape == shape and out.dtype == np.float32 and out.flags.c_contiguous
    assert np.array_equal(out.view(np.uint32), expected.view(np.uint32))
    owner = out
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    assert owner.nbytes <= out.nbytes + 4  # the float64 buffer shrank to the float32 values


def test_release_file_lets_the_input_bytes_go(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(photo(40, 30, 3)).save(buffer, "PNG")
    raw = buffer.getvalue()
    image, _ = photos.open_image(raw, None, True)
    held = sys.getrefcount(raw)
    photos.release_file(image)
    assert sys.getrefcount(raw) == held - 1  # Pillow's BytesIO over them, closed
    assert np.array_equal(np.asarray(image), photo(40, 30, 3))


def test_svdi_encode_keeps_tiff_exif_after_releasing_the_file(tmp_path: Path) -> None:
    """A TIFF's EXIF is read from its file: the file goes only after the metadata is read."""
    source = tmp_path / "in.tif"
    exif = Image.Exif()
    exif[271] = "a camera maker"
    Image.fromarray(photo(40, 30, 3)).save(source, exif=exif)
    assert encode_main([str(source), "-o", str(tmp_path / "out.svdi"), "--quiet"]) == 0
    with Image.open(tmp_path / "out.svdi") as out:
        assert out.getexif()[271] == "a camera maker"
