"""What an encode holds: a Pillow image read band by band (`modes.ImageRows`) instead of copied
whole (the deblocking filter judged on its bands' rows), the halved chroma converted to float32 in its own buffer, one chroma plane halved at a
time, a large plane's U kept at its first and last columns (the others as symbols), and
svdi-encode's input bytes let go before the encode. Each gives the same bytes as before."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import photo

import svdcodec
from svdcodec import modes
from svdcodec.cli import encode_main, photos
from svdcodec.codec import coding
from svdcodec.codec.quantize import entropy_bits
from svdcodec.codec.resample import least_squares_half
from svdcodec.encoder import plane as encoder_plane
from svdcodec.encoder import source as encoder_source
from svdcodec.encoder import step_for_quality
from svdcodec.encoder.blocks import component_groups, small_plane
from svdcodec.encoder.source import PlaneSource, image_header
from svdcodec.format import LAYOUT_PATCH, unpack
from svdcodec.modes import ImageRows, raw_array
from svdcodec.runtime import band_sizes, threads


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


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16"])
@pytest.mark.parametrize("one_call", [True, False])
def test_raw_rows_in_one_call_and_in_pieces(mode: str, one_call: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows come from one call of Pillow's raw encoder (a read-only array over its bytes), or,
    above ONE_CALL_BYTES, piece by piece into a new array: the same samples either way."""
    if not one_call:
        monkeypatch.setattr(modes, "ONE_CALL_BYTES", 16)  # below a row
        monkeypatch.setattr(modes, "PIECE_BYTES", 8)  # a row a call
    rng = np.random.default_rng(7)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1}[mode]
    if mode == "I;16":
        pixels = rng.integers(0, 65536, (29, 37), dtype=np.uint16)
        image = Image.fromarray(pixels)
    else:
        pixels = rng.integers(0, 256, (29, 37, channels), dtype=np.uint8)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    whole = pixels.reshape(29, 37, -1)
    assert image.mode == mode
    for y0, y1 in [(0, 29), (3, 17), (28, 29)]:
        rows = modes.raw_rows(image, y0, y1)
        assert rows.dtype == pixels.dtype and rows.flags.writeable != one_call
        assert np.array_equal(rows.reshape(y1 - y0, 37, -1), whole[y0:y1])


def test_image_rows_take_only_l_and_rgb() -> None:
    with pytest.raises(ValueError, match="RGBA"):
        ImageRows(Image.new("RGBA", (4, 4)))


OPTIONS = [{}, {"quality": 30}, {"quality": 95}, {"layout": "plain"}, {"layout": "patch4"},
           {"rank": 5}, {"centre": True}, {"effort": 2}, {"deblock": True},
           {"deblock": True, "quality": 30}]


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


@pytest.mark.parametrize("deblock", [False, True])
def test_no_whole_copy_of_a_large_pillow_image(rows_always: list[tuple[int, int]],
                                                monkeypatch: pytest.MonkeyPatch,
                                                deblock: bool) -> None:
    """The patch layouts read bands, never the whole image at once; the deblocking filter's
    judgement too (the rows of the bands it judges, a plane of 256 rows and more)."""
    def refused(image: Image.Image) -> np.ndarray:
        raise AssertionError("the whole image was copied")
    monkeypatch.setattr(modes, "raw_array", refused)
    pixels = photo(320, 240, 3)
    data = saved(Image.fromarray(pixels), deblock=deblock)
    assert data == svdcodec.encode(pixels, deblock=deblock)
    assert any(p.filtered for p in unpack(data).planes) == deblock
    assert max(y1 - y0 for y0, y1 in rows_always) < 320


@pytest.mark.parametrize("options", [{"max_error": 2}, {"target_psnr": 30},
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


@pytest.mark.parametrize("shape", [(257, 331), (256, 320), (3, 5), (1, 1)])
def test_halving_in_threaded_bands_is_one_band(shape: tuple[int, int]) -> None:
    """The halving's bands (gather, then the solve along rows) run in threads: any band
    height, on any number of threads, gives the bits of one band on one thread."""
    rng = np.random.default_rng(9)
    x = (rng.normal(0, 40, shape)).astype(np.float32)
    half = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)

    def rows(lo: int, hi: int) -> np.ndarray:
        return x[lo:hi]
    with threads.threads(1):
        whole = least_squares_half(rows, shape, *half, band=half[0])
    for count in (1, 2, 3):
        with threads.threads(count):
            for band in (1, 2, 7, None):
                got = least_squares_half(rows, shape, *half, band=band)
                assert np.array_equal(got.view(np.uint32), whole.view(np.uint32))


def test_chroma_planes_halved_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cb and Cr are prepared by concurrent jobs, but halved one at a time (each on every
    thread)."""
    monkeypatch.setattr(band_sizes, "ENCODE_SERIAL_SAMPLES", 0)
    real = encoder_source.least_squares_half
    lock = threading.Lock()
    running, most, calls = [0], [0], [0]

    def counted(*args: object, **kwargs: object) -> np.ndarray:
        with lock:
            running[0] += 1
            calls[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            with lock:
                running[0] -= 1
    monkeypatch.setattr(encoder_source, "least_squares_half", counted)
    pixels = photo(256, 320, 3)
    with threads.threads(3):
        data = svdcodec.encode(pixels, 75)
    assert calls[0] == 2 and most[0] == 1
    monkeypatch.setattr(encoder_source, "least_squares_half", real)
    assert svdcodec.encode(pixels, 75) == data


OPTIONS_U = [{"quality": 30}, {"quality": 75}, {"quality": 95}, {"effort": 2},
             {"quality": 50, "layout": "patch4"}, {"rank": 9, "layout": "patch8"},
             {"energy": 0.99, "layout": "patch8"}]


@pytest.mark.parametrize("options", OPTIONS_U)
def test_u_kept_at_its_first_and_last_columns_writes_the_same_file(
        options: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = photo(192, 256, 3)
    kept_whole = svdcodec.encode(pixels, **options)
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 4096)  # many bands
    banded = svdcodec.encode(pixels, **options)
    monkeypatch.setattr(encoder_plane, "DROP_U_BYTES", 0)  # every plane's U dropped
    widths = recorded_u_widths(monkeypatch)
    assert svdcodec.encode(pixels, **options) == banded
    assert 1 in widths, "no plane kept its first column only"
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 1 << 18)
    assert svdcodec.encode(pixels, **options) == kept_whole


def recorded_u_widths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of columns of every QuantizedU's integers, as quantize_u returns them."""
    widths: list[int] = []
    real: Callable[..., encoder_plane.QuantizedU] = encoder_plane.quantize_u

    def recorded(*args: object, **kwargs: object) -> encoder_plane.QuantizedU:
        u = real(*args, **kwargs)
        widths.append(u.integers.shape[1])
        return u
    monkeypatch.setattr(encoder_plane, "quantize_u", recorded)
    return widths


@pytest.mark.parametrize(("side", "quality"), [(4, 50), (8, 30), (8, 90)])
def test_dropped_columns_rebuilt_from_symbols(side: int, quality: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """What the rank decision and a group cut by it read of a U kept at its first and last
    columns: each column's integers (in another order: `entropy_bits` reads their counts), and
    the symbols of the first columns of a group, as from the whole integers."""
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 4096)
    pixels = photo(192, 256, 3)
    source = PlaneSource(pixels, image_header(pixels, False))
    candidate = encoder_plane.factorize_plane(source, 0, [(LAYOUT_PATCH, side)],
                                              encoder_plane.RankRule())[0]
    rank, step = candidate.sigma.size, step_for_quality(quality)
    whole = encoder_plane.quantize_u(source, candidate, rank, step)
    light = encoder_plane.quantize_u(source, candidate, rank, step, first_only=True)
    assert whole.integers.shape[1] == rank and light.integers.shape[1] == 1
    assert len(next(iter(light.symbols.values()))) > 1  # bands
    for j in range(rank):
        column = light.column(j)
        assert column.dtype == whole.integers.dtype
        assert np.array_equal(np.sort(column), np.sort(whole.integers[:, j]))
        assert entropy_bits(column) == entropy_bits(whole.integers[:, j])
    for lo, hi in component_groups(rank, small_plane(candidate.plane))[1:]:
        assert whole.group_symbols(lo, hi) is None
        for cut in range(lo + 1, hi + 1):
            expected = coding.to_symbols(whole.integers[:, lo:cut])
            for got, want in zip(light.group_symbols(lo, cut), expected):
                assert got.dtype == want.dtype
                assert np.array_equal(got, want)
