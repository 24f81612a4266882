"""The Pillow plugin: lazy open, load in every mode, save options, errors Pillow users expect."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import svdcodec
from svdcodec import format as container
from svdcodec import pillow_plugin

H, W = 23, 37


def sample(mode: str) -> np.ndarray:
    """A small deterministic image in `mode`: gradients plus a little noise."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    noise = np.random.default_rng(7).normal(0, 3, (H, W, 4))
    base = np.stack([40 + 5 * x, 30 + 8 * y, 120 + 2 * (x - y), 255 - 4 * x], -1) + noise
    if mode == "I;16":
        return np.clip(base[..., 0] * 200, 0, 65535).astype(np.uint16)
    if mode == "F":
        return (base[..., 0] / 255 - 0.25).astype(np.float32)
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.clip(base[..., :channels], 0, 255).astype(np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


def encoded(mode: str = "RGB", **options: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(sample(mode)).save(buf, format="SVDI", **options)
    return buf.getvalue()


def first_block_offset(data: bytes) -> int:
    """Byte offset of the first factor block chunk (right after the PLAN chunks)."""
    fp = io.BytesIO(data)
    container.read_headers(fp)
    return fp.tell()


MODES = ["L", "LA", "RGB", "RGBA", "I;16", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_save_open_load_every_mode(mode: str, tmp_path: Path) -> None:
    original = sample(mode)
    path = tmp_path / "image.svdi"
    Image.fromarray(original).save(path, quality=95)  # format chosen by the extension
    with Image.open(path) as im:
        assert (im.format, im.mode, im.size) == ("SVDI", mode, (W, H))
        loaded = np.asarray(im)
    # Exactly what the numpy decoder gives: the raw modes (I;16, F;32F) carry the bytes right.
    expected = svdcodec.decode(path.read_bytes())
    assert loaded.dtype == expected.dtype and np.array_equal(loaded, expected)
    peak = 255.0 if original.dtype == np.uint8 else float(np.abs(original).max())
    error = np.abs(loaded.astype(np.float64) - original.astype(np.float64)).max()
    assert error < 0.1 * peak


def test_open_is_lazy_and_load_reports_damage_as_oserror() -> None:
    data = bytearray(encoded())
    data[first_block_offset(bytes(data)) + 20] ^= 0xFF  # inside the first block's payload
    im = Image.open(io.BytesIO(bytes(data)))
    assert (im.format, im.mode, im.size) == ("SVDI", "RGB", (W, H))
    with pytest.raises(OSError, match="broken SVDI file: CRC mismatch"):
        im.load()


def test_truncated_file_opens_but_fails_to_load() -> None:
    data = encoded()
    im = Image.open(io.BytesIO(data[:first_block_offset(data) + 30]))
    with pytest.raises(OSError, match="truncated"):
        im.load()


def test_verify_checks_every_chunk_as_pngs_does(tmp_path: Path) -> None:
    """verify() reads the whole file and checks it without decoding, as PNG's checks its
    chunks' CRCs (the usual check of an upload): a damaged block fails it, whole files pass,
    and the image is reopened to be loaded."""
    data = encoded("RGBA")
    Image.open(io.BytesIO(data)).verify()
    damaged = bytearray(data)
    damaged[first_block_offset(data) + 20] ^= 0xFF
    path = tmp_path / "damaged.svdi"
    path.write_bytes(bytes(damaged))
    im = Image.open(path)
    with pytest.raises(SyntaxError, match="broken SVDI file: CRC mismatch"):
        im.verify()
    assert im.fp is None  # the file it opened is closed, as PNG's verify() leaves it
    with pytest.raises(SyntaxError, match="truncated"):
        Image.open(io.BytesIO(data[:-30])).verify()
    with pytest.raises(RuntimeError, match="directly after open"):
        im.verify()


@pytest.mark.parametrize("piece", [None, 4096, 97])
def test_image_file_parser_reads_the_whole_file(piece: int | None) -> None:
    """Pillow's incremental reader (`ImageFile.Parser`, behind Django's image fields) fed the
    file whole or piece by piece gives the image Image.open does; a file cut short fails on
    close() as load() does."""
    from PIL import ImageFile

    data = encoded()
    parser = ImageFile.Parser()
    for at in range(0, len(data), piece or len(data)):
        parser.feed(data[at:at + (piece or len(data))])
    image = parser.close()
    assert image.size == (W, H)
    assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(data))))
    cut = ImageFile.Parser()
    cut.feed(data[:len(data) // 2])
    with pytest.raises(OSError, match="truncated"):
        cut.close()
    # Parser.close() loads the image it opened from a prefix once the whole file fails to
    # open, from a file it has closed since: an OSError as for any broken image
    fp = io.BytesIO(data)
    stale = Image.open(fp)
    fp.close()
    with pytest.raises(OSError, match="file is closed"):
        stale.load()


@pytest.mark.parametrize("data", [b"not an image at all", b"\x89SVD\r\n\x1a\x00almost",
                                  container.SIGNATURE + b"\x00\x00\x00\x02HEAD\x00\x01"])
def test_non_svdi_or_damaged_header_is_unidentified(data: bytes) -> None:
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(data))


def test_numpy_only_combination_gives_a_clear_error() -> None:
    data = svdcodec.encode(np.random.default_rng(1).random((8, 9, 3), dtype=np.float32))
    with pytest.raises(OSError, match=r"3 float32 channels has no Pillow mode.*svdcodec\.decode"):
        Image.open(io.BytesIO(data))


def test_decompression_bomb_checked_from_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encoded()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 37x23 > 2 * 100
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


def test_save_options_come_from_encoderinfo() -> None:
    _, planes = container.read_headers(io.BytesIO(encoded(rank=2, layout="plain")))
    assert [p.rank for p in planes] == [2, 2, 2]
    assert all(p.layout == container.LAYOUT_PLAIN for p in planes)
    assert len(encoded(quality=20)) < len(encoded(quality=95))
    assert len(encoded(max_bytes=1500)) <= 1500
    _, planes = container.read_headers(io.BytesIO(encoded("L", energy=0.5)))
    assert planes[0].rank == 1


def test_invalid_save_option_raises_svdi_error() -> None:
    with pytest.raises(svdcodec.SvdiError, match="quality"):
        encoded(quality=0)


def test_save_to_bytesio_and_reopen() -> None:
    buf = io.BytesIO()
    Image.fromarray(sample("RGB")).save(buf, format="SVDI")
    assert buf.getvalue().startswith(container.SIGNATURE)
    buf.seek(0)
    with Image.open(buf) as im:
        assert im.format == "SVDI" and im.convert("L").size == (W, H)


def test_format_extension_mime_and_decoder_registered() -> None:
    assert Image.registered_extensions()[".svdi"] == "SVDI"
    assert Image.MIME["SVDI"] == "image/x-svdi"
    assert "SVDI" in Image.OPEN and "SVDI" in Image.SAVE and "svdi" in Image.DECODERS
    with Image.open(io.BytesIO(encoded())) as im:
        assert im.get_format_mimetype() == "image/x-svdi"


def test_register_is_idempotent() -> None:
    before = (list(Image.ID), dict(Image.OPEN), dict(Image.SAVE), dict(Image.EXTENSION))
    pillow_plugin.register()
    pillow_plugin.register()
    assert (list(Image.ID), dict(Image.OPEN), dict(Image.SAVE), dict(Image.EXTENSION)) == before
    assert Image.ID.count("SVDI") == 1


def test_saving_with_the_info_of_an_svdi_image(tmp_path: Path) -> None:
    """The keys the reader puts in info (svdi_version, svdi_ranks) are not refused as save
    options: `im.save(f, **im.info)`, as for PNG and JPEG."""
    src = tmp_path / "a.svdi"
    src.write_bytes(encoded())
    with Image.open(src) as im:
        assert {"svdi_version", "svdi_ranks"} <= set(im.info)
        im.save(tmp_path / "b.svdi", **im.info)
    with Image.open(tmp_path / "b.svdi") as again:
        assert again.size == im.size


def test_reduce_of_an_unloaded_image_closes_the_file_it_opened(tmp_path: Path) -> None:
    """reduce() decodes small without loading the image; like Pillow's own reduce (which
    loads it), it leaves no file of Image.open's open, and the image still loads."""
    src = tmp_path / "a.svdi"
    data = encoded()
    src.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        im = Image.open(src)
        opened = im.fp
        small = im.reduce(2)
        assert opened.closed
        assert small.size == (-(-im.width // 2), -(-im.height // 2))
        assert np.array_equal(np.asarray(im), svdcodec.decode(data))


def test_close_lets_go_of_the_parse_made_at_open() -> None:
    """An image closed without load() keeps neither the file's bytes nor their parse."""
    im = Image.open(io.BytesIO(encoded()))
    assert im._parsed is not None  # a small in-memory file is parsed whole at open
    im.close()
    assert im._parsed is None


def test_load_reads_what_the_in_memory_file_holds_at_load() -> None:
    """Image.open's parse of a small in-memory file (pillow_plugin.PARSED_AT_OPEN_BYTES) serves
    load() only while the file holds the very bytes it parsed: a file rewritten, or changed
    through getbuffer(), after Image.open is read again, as a larger file is."""
    data = encoded()
    other = encoded(quality=20)  # the same width and height, other pixels
    pixels, other_pixels = svdcodec.decode(data), svdcodec.decode(other)
    assert not np.array_equal(pixels, other_pixels)
    with Image.open(io.BytesIO(data)) as im:
        assert np.array_equal(np.asarray(im), pixels)
    fp = io.BytesIO(data)
    with Image.open(fp) as im:
        fp.seek(0)
        fp.truncate()
        fp.write(other)
        assert np.array_equal(np.asarray(im), other_pixels)
    fp = io.BytesIO(data)
    with Image.open(fp) as im:
        view = fp.getbuffer()
        view[first_block_offset(data) + 20] ^= 0xFF  # inside the first block's payload
        del view
        with pytest.raises(OSError, match="broken SVDI file: CRC mismatch"):
            im.load()
