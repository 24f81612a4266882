"""16-bit colour PNG and TIFF through the command-line tools (svdcodec/cli/deep_images.py).

Files are made here: the 16-bit PNG and TIFF writers at the top build them from bytes, so the
tests of what happens without the 16bit extra run without it; the round trips need the extra
(imagecodecs, tifffile) and skip only where it is not installed.
"""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin
from support import make_vectors, photo

import svdcodec
from svdcodec import cli
from svdcodec import format as container
from svdcodec.cli import deep_images

H, W = 40, 56
INSTALL = "pip install imagecodecs tifffile"
needs_extra = pytest.mark.skipif(deep_images.missing() is not None,
                                 reason=f"the 16bit extra is not installed ({INSTALL})")
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
       b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>')


def deep(channels: int, seed: int = 0) -> np.ndarray:
    """A 16-bit photo: an 8-bit one x 257 plus noise in the low byte, which 8 bits lose."""
    noise = np.random.default_rng(seed + 1).integers(0, 200, (H, W, channels))
    return (photo(H, W, channels, seed).astype(np.int64) * 257 + noise).clip(
        0, 65535).astype(np.uint16)


def psnr16(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(65535.0 ** 2 / mse)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG (colour type from the channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA),
    written from bytes: filter 0 on every row, big-endian samples."""
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.astype(">u2").reshape(h, -1).view(np.uint8)
    raw = np.hstack([np.zeros((h, 1), np.uint8), rows]).tobytes()
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


def tiff16(pixels: np.ndarray) -> bytes:
    """An uncompressed little-endian 16-bit RGB(A) TIFF in one strip, written from bytes."""
    h, w, channels = pixels.shape
    data = pixels.astype("<u2").tobytes()
    entries = 10 + (channels == 4)
    ifd_at = 8
    bits_at = ifd_at + 2 + 12 * entries + 4
    data_at = bits_at + 2 * channels
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, channels, bits_at), (259, 3, 1, 1),
            (262, 3, 1, 2), (273, 4, 1, data_at), (277, 3, 1, channels), (278, 3, 1, h),
            (279, 4, 1, len(data)), (284, 3, 1, 1)]
    if channels == 4:
        tags.append((338, 3, 1, 2))  # unassociated alpha
    ifd = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                 and count == 1 else struct.pack("<I", value))
        for tag, kind, count, value in tags) + struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", ifd_at) + ifd + struct.pack("<H", 16) * channels + data


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 16bit extra not installed: importing imagecodecs fails (run with -j 1: a pool's
    spawned workers would import it afresh)."""
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    assert deep_images.missing() is not None


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize("channels, kind", [(2, "16-bit grey+alpha PNG"),
                                            (3, "16-bit RGB PNG"), (4, "16-bit RGBA PNG")])
def test_a_16_bit_colour_png_is_told_from_its_header(channels: int, kind: str) -> None:
    data = png16(deep(channels))
    image = opened(data)
    assert image.mode in ("RGB", "RGBA")  # what Pillow makes of it: 8 bits
    assert deep_images.deep_format(data, image) == kind


def test_8_bit_and_16_bit_grey_are_not_deep() -> None:
    """16-bit grey is Pillow's I;16, kept as it is; 8-bit colour is what Pillow reads."""
    grey = png16(deep(1)[..., 0])
    assert opened(grey).mode == "I;16" and deep_images.deep_format(grey, opened(grey)) is None
    buf = io.BytesIO()
    Image.fromarray(photo(H, W, 3)).save(buf, format="PNG")
    assert deep_images.deep_format(buf.getvalue(), opened(buf.getvalue())) is None
    buf = io.BytesIO()
    Image.fromarray(photo(H, W, 4)).save(buf, format="TIFF")
    assert deep_images.deep_format(buf.getvalue(), opened(buf.getvalue())) is None


@pytest.mark.parametrize("channels", [3, 4])
def test_a_16_bit_tiff_is_told_from_its_tags(channels: int) -> None:
    pixels = deep(channels)
    data = tiff16(pixels)
    image = opened(data)
    assert np.array_equal(np.asarray(image), (pixels >> 8).astype(np.uint8))  # the high byte
    assert deep_images.deep_format(data, image) == f"16-bit {('RGB', 'RGBA')[channels - 3]} TIFF"


# ----------------------------------------------------------------------------- without the extra


def test_encode_without_the_extra_refuses_naming_both_ways(
        tmp_path: Path, without_extra: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Never 8 bits in silence: the 16-bit file fails (status 1) naming the extra and --8bit,
    the 8-bit file beside it in the same run is encoded."""
    (tmp_path / "deep.png").write_bytes(png16(deep(3)))
    (tmp_path / "other.tif").write_bytes(tiff16(deep(4)))
    Image.fromarray(photo(H, W, 3)).save(tmp_path / "plain.png")
    inputs = [str(tmp_path / n) for n in ("deep.png", "other.tif", "plain.png")]
    assert cli.encode_main([*inputs, "-d", str(tmp_path / "out"), "-j", "1"]) == 1
    err = capsys.readouterr().err
    for name, kind in (("deep.png", "16-bit RGB PNG"), ("other.tif", "16-bit RGBA TIFF")):
        assert f"{name}: reading a {kind} at 16 bits needs the 16bit extra ({INSTALL}" in err
    assert err.count("--8bit encodes it at 8 bits") == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["plain.svdi"]


def test_encode_8bit_takes_pillows_8_bits_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--8bit (with or without the extra) encodes what Pillow reads: the high byte."""
    pixels = deep(4)
    (tmp_path / "deep.png").write_bytes(png16(pixels))
    assert cli.encode_main([str(tmp_path / "deep.png"), "--8bit", "--lossless"]) == 0
    assert "a 16-bit RGBA PNG encoded at 8 bits (--8bit)" in capsys.readouterr().err
    back = svdcodec.decode((tmp_path / "deep.svdi").read_bytes())
    assert back.dtype == np.uint8 and np.array_equal(back, (pixels >> 8).astype(np.uint8))


def test_decode_without_the_extra_refuses_png_and_defaults_to_npy(
        tmp_path: Path, without_extra: None, capsys: pytest.CaptureFixture[str]) -> None:
    pixels = deep(3)
    svdi = tmp_path / "d.svdi"
    svdi.write_bytes(svdcodec.encode(pixels, max_error=0))
    for suffix in (".png", ".tif"):
        assert cli.decode_main([str(svdi), "-o", str(tmp_path / f"out{suffix}"), "-j", "1"]) == 1
        err = capsys.readouterr().err
        assert f"needs the 16bit extra ({INSTALL}" in err and "--8bit" in err
        assert not (tmp_path / f"out{suffix}").exists()
    assert cli.decode_main([str(svdi), "-j", "1"]) == 0
    assert f"as .npy (16-bit PNG and TIFF need the 16bit extra: {INSTALL})" \
        in capsys.readouterr().err
    assert np.array_equal(np.load(tmp_path / "d.svdi.npy"), pixels)
    assert cli.decode_main([str(svdi), "--8bit", "-j", "1", "--quiet"]) == 0  # 8 bits: a PNG
    assert np.array_equal(np.asarray(Image.open(tmp_path / "d.svdi.png")),
                          deep_images.to_8bit(pixels))


@pytest.mark.parametrize("suffix", [".jpg", ".webp", ".bmp"])
def test_decode_to_an_8_bit_format_refuses_unless_8bit_is_asked(
        tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    if suffix == ".webp" and Image.registered_extensions().get(".webp") not in Image.SAVE:
        pytest.skip("Pillow without WebP")
    svdi = tmp_path / "d.svdi"
    svdi.write_bytes(svdcodec.encode(deep(3), max_error=0))
    out = tmp_path / f"out{suffix}"
    assert cli.decode_main([str(svdi), "-o", str(out)]) == 1
    assert "holds at most 8 bits per sample and this image has 16" in capsys.readouterr().err
    assert not out.exists()
    assert cli.decode_main([str(svdi), "-o", str(out), "--8bit"]) == 0
    assert "16-bit samples rounded to 8 bits: --8bit" in capsys.readouterr().err
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (W, H)


def test_decode_8bit_rounds(tmp_path: Path) -> None:
    """v -> round(v / 257): the 8-bit picture nearest the 16-bit one, 257 * k -> k."""
    pixels = deep(3)
    pixels[0, :3] = [[0, 128, 129], [257 * 7, 257 * 7 + 128, 257 * 7 + 129], [65535] * 3]
    svdi = tmp_path / "d.svdi"
    svdi.write_bytes(svdcodec.encode(pixels, max_error=0))
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "o.png"), "--8bit", "--quiet"]) == 0
    back = np.asarray(Image.open(tmp_path / "o.png"))
    assert np.abs(back * 257.0 - pixels).max() <= 128.5
    assert back[0, :3].tolist() == [[0, 0, 1], [7, 7, 8], [255] * 3]


# ----------------------------------------------------------------------------- with the extra


def write_deep(path: Path, pixels: np.ndarray, compression: str | None = None) -> None:
    """A 16-bit file written by the extra's writers (imagecodecs' libpng, tifffile)."""
    if path.suffix == ".png":
        import imagecodecs

        path.write_bytes(imagecodecs.png_encode(pixels))
    else:
        import tifffile

        tifffile.imwrite(path, pixels, photometric="rgb" if pixels.shape[2] >= 3
                         else "minisblack", extrasamples=("unassalpha",)
                         if pixels.shape[2] in (2, 4) else None, compression=compression)


def read_deep_file(path: Path) -> np.ndarray:
    if path.suffix == ".png":
        import imagecodecs

        return np.asarray(imagecodecs.png_decode(path.read_bytes()))
    import tifffile

    return np.asarray(tifffile.imread(path))


@needs_extra
@pytest.mark.parametrize("source", ["in.png", "in.tif"])
@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_round_trips_through_the_cli_at_16_bits(
        tmp_path: Path, source: str, channels: int) -> None:
    """The issue's "done": encode at the default quality and --lossless, decode to PNG and to
    TIFF, PSNR on 16 bits (peak 65535)."""
    pixels = deep(channels, seed=channels)
    src = tmp_path / source
    write_deep(src, pixels, compression="zlib")
    # Default quality: Y'CbCr with halved chroma as for 8 bits (format version 3), 32.4 dB on
    # this photo, as its 8-bit high bytes give at 8 bits.
    for options, floor in (([], 31.0), (["--lossless"], float("inf"))):
        svdi = tmp_path / "x.svdi"
        assert cli.encode_main([str(src), "-o", str(svdi), "--quiet", "-f", *options]) == 0
        header, _ = container.read_headers(io.BytesIO(svdi.read_bytes()))
        assert (header.dtype, header.channels) == (np.uint16, channels)
        for out in (tmp_path / "out.png", tmp_path / "out.tiff"):
            assert cli.decode_main([str(svdi), "-o", str(out), "--quiet", "-f"]) == 0
            back = read_deep_file(out)
            assert back.dtype == np.uint16 and back.shape == (H, W, channels), out
            assert psnr16(back, pixels) >= floor, (options, out, psnr16(back, pixels))
            assert np.array_equal(back, svdcodec.decode(svdi.read_bytes())), out


@needs_extra
def test_the_16_bits_are_what_the_8_bit_run_throws_away(tmp_path: Path) -> None:
    """Same quality, same photo: the 16-bit file keeps detail below the 8-bit step that --8bit
    cannot (a check that the extra's samples reach the encoder, not Pillow's)."""
    pixels = deep(3)
    write_deep(tmp_path / "in.png", pixels)
    deep_svdi, flat_svdi = tmp_path / "d.svdi", tmp_path / "f.svdi"
    assert cli.encode_main([str(tmp_path / "in.png"), "-o", str(deep_svdi), "--lossless",
                            "--quiet"]) == 0
    assert cli.encode_main([str(tmp_path / "in.png"), "-o", str(flat_svdi), "--lossless",
                            "--8bit", "--quiet"]) == 0
    assert np.array_equal(svdcodec.decode(deep_svdi.read_bytes()), pixels)
    flat = svdcodec.decode(flat_svdi.read_bytes()).astype(np.uint16) * 257
    assert psnr16(flat, pixels) < 60


@needs_extra
def test_grey_alpha_png_round_trips(tmp_path: Path) -> None:
    pixels = deep(2)
    write_deep(tmp_path / "la.png", pixels)
    assert cli.encode_main([str(tmp_path / "la.png"), "--lossless", "--quiet"]) == 0
    assert cli.decode_main([str(tmp_path / "la.svdi"), "--quiet"]) == 0  # default: .png
    assert np.array_equal(read_deep_file(tmp_path / "la.svdi.png"), pixels)


@needs_extra
@pytest.mark.parametrize("compression", [None, "lzw", "zlib", "packbits", "zstd", "lzma"])
def test_tiff_compressions_read_at_16_bits(tmp_path: Path, compression: str | None) -> None:
    pixels = deep(3)
    write_deep(tmp_path / "c.tif", pixels, compression)
    data = (tmp_path / "c.tif").read_bytes()
    assert np.array_equal(deep_images.read_deep(data, opened(data)), pixels)


@needs_extra
@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_as_pillow_applies_it(tmp_path: Path, orientation: int) -> None:
    """Pillow >= 12 turns a TIFF upright on load: the 16-bit pixels are turned the same way,
    so that their high bytes are Pillow's picture, for every orientation."""
    import tifffile

    pixels = deep(3)
    buf = io.BytesIO()
    tifffile.imwrite(buf, pixels, photometric="rgb", extratags=[(274, "H", 1, orientation,
                                                                 True)])
    image = opened(buf.getvalue())
    read = deep_images.read_deep(buf.getvalue(), image)
    assert np.array_equal(read >> 8, np.asarray(image))


@needs_extra
def test_tiffs_own_layout_description_does_not_follow_the_pixels(tmp_path: Path) -> None:
    """tifffile's ImageDescription ('{"shape": [h, w, 3]}') records the input file's array
    layout: turned upright it would contradict the output (tifffile warns on reading it), so
    svdi-encode leaves it out; a description in words stays."""
    import tifffile

    pixels = deep(3)
    tifffile.imwrite(tmp_path / "turned.tif", pixels, photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])
    tifffile.imwrite(tmp_path / "words.tif", pixels, photometric="rgb",
                     description="a field at dusk", metadata=None)
    for name in ("turned", "words"):
        assert cli.encode_main([str(tmp_path / f"{name}.tif"), "--lossless", "--quiet"]) == 0
        assert cli.decode_main([str(tmp_path / f"{name}.svdi"), "-o",
                                str(tmp_path / f"{name}-back.tif"), "--quiet"]) == 0
    with tifffile.TiffFile(tmp_path / "turned-back.tif") as tif:
        page = tif.pages[0]
        assert page.shape == (pixels.shape[1], pixels.shape[0], 3)
        assert "shape" not in page.description
        assert tif.series[0].shape == page.shape
    with tifffile.TiffFile(tmp_path / "words-back.tif") as tif:
        assert tif.pages[0].description == "a field at dusk"


@needs_extra
def test_tiff_premultiplied_alpha_is_divided_out() -> None:
    import tifffile

    straight = deep(4)
    straight[..., 3] = np.where(straight[..., 3] < 1000, 0, straight[..., 3])
    alpha = straight[..., 3:].astype(np.float64) / 65535
    premultiplied = straight.copy()
    premultiplied[..., :3] = np.rint(straight[..., :3] * alpha)
    buf = io.BytesIO()
    tifffile.imwrite(buf, premultiplied, photometric="rgb", extrasamples=("assocalpha",))
    read = deep_images.read_deep(buf.getvalue(), opened(buf.getvalue()))
    seen = straight[..., 3] > 0
    assert np.abs(read[seen].astype(int) - straight[seen]).max() <= 65535 / 1000
    assert np.array_equal(read[..., 3], straight[..., 3])


@needs_extra
def test_multi_page_tiff_takes_the_frame(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    import tifffile

    pages = [deep(3, seed=s) for s in range(3)]
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tif:
        for page in pages:
            tif.write(page, photometric="rgb")
    assert cli.encode_main([str(tmp_path / "pages.tif")]) == 1
    assert "has 3 frames" in capsys.readouterr().err
    assert cli.encode_main([str(tmp_path / "pages.tif"), "--frame", "1", "--lossless"]) == 0
    assert np.array_equal(svdcodec.decode((tmp_path / "pages.svdi").read_bytes()), pages[1])


def metadata_svdi(path: Path) -> dict:
    """A 16-bit .svdi file with every kind of metadata; returns what it holds."""
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x010F] = "svdcodec tests"  # make
    exif.get_ifd(0x8769)[0x829A] = (1, 250)  # exposure time, in the EXIF sub-directory
    icc = make_vectors().icc_header_only(b"RGB ")
    path.write_bytes(svdcodec.encode(deep(3), exif=exif.tobytes(), xmp=XMP, dpi=(300, 300),
                                     text={"Title": "deep"}, icc_profile=icc))
    return svdcodec.read_metadata(path.read_bytes())


@needs_extra
def test_16_bit_png_keeps_every_kind_of_metadata(tmp_path: Path) -> None:
    """Pillow's PNG writer makes the metadata chunks, moved into libpng's 16-bit file: what a
    8-bit PNG keeps, the 16-bit one keeps, in and out."""
    meta = metadata_svdi(tmp_path / "m.svdi")
    assert cli.decode_main([str(tmp_path / "m.svdi"), "-o", str(tmp_path / "m.png"),
                            "--quiet"]) == 0
    with Image.open(tmp_path / "m.png") as im:
        im.load()
        assert im.info["icc_profile"] == meta["icc_profile"]
        assert im.getexif()[0x0112] == 6 and im.getexif().get_ifd(0x8769)[0x829A] == (1, 250)
        assert XMP in im.info["xmp"]
        assert [round(v) for v in im.info["dpi"]] == [300, 300]
        assert im.text["Title"] == "deep"
    assert np.array_equal(read_deep_file(tmp_path / "m.png"),
                          svdcodec.decode((tmp_path / "m.svdi").read_bytes()))
    assert cli.encode_main([str(tmp_path / "m.png"), "-o", str(tmp_path / "again.svdi"),
                            "--quiet"]) == 0
    assert svdcodec.read_metadata((tmp_path / "again.svdi").read_bytes()) == meta


@needs_extra
def test_16_bit_tiff_keeps_what_tiff_holds_and_says_what_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta = metadata_svdi(tmp_path / "m.svdi")
    assert cli.decode_main([str(tmp_path / "m.svdi"), "-o", str(tmp_path / "m.tif")]) == 0
    err = capsys.readouterr().err
    assert "16-bit TIFF output cannot hold the file's text, EXIF tags beyond description" in err
    import tifffile

    with tifffile.TiffFile(tmp_path / "m.tif") as tif:
        tags = tif.pages[0].tags
        assert tags[34675].value == meta["icc_profile"]
        assert tags[274].value == 6 and tags[271].value == "svdcodec tests"
        assert bytes(tags[700].value) == XMP
        assert tags[282].value == (300, 1) and tags[296].value == 2
    assert np.array_equal(tifffile.imread(tmp_path / "m.tif"),
                          svdcodec.decode((tmp_path / "m.svdi").read_bytes()))


@needs_extra
def test_png_writer_puts_metadata_between_header_and_pixels() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", "x")
    data = deep_images.png_bytes(deep(3), {"pnginfo": info, "dpi": (72, 72)})
    kinds = [kind for kind, _ in deep_images._png_chunks(data)]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT") and kinds.index(b"pHYs") < kinds.index(
        b"IDAT")
    assert data[24] == 16


# ----------------------------------------------------------------------------- PPM, JPEG 2000


def ppm(pixels: np.ndarray, maximum: int, plain: bool = False) -> bytes:
    """An RGB PPM written from bytes: binary (two big-endian bytes per sample above 255) or
    plain (decimal numbers)."""
    h, w = pixels.shape[:2]
    if plain:
        return (f"P3\n# a comment\n{w} {h}\n{maximum}\n".encode()
                + " ".join(map(str, pixels.reshape(-1).tolist())).encode() + b"\n")
    return f"P6\n{w} {h}\n{maximum}\n".encode() + pixels.astype(">u2").tobytes()


@pytest.mark.parametrize("plain", [False, True])
@pytest.mark.parametrize("maximum", [65535, 4095, 256])
def test_a_deep_ppm_is_read_at_full_depth_without_the_extra(
        without_extra: None, maximum: int, plain: bool) -> None:
    """Pillow scales a PPM to 8 bits; its samples are read whole, scaled to 0…65535 (the
    picture Pillow shows), and need no extra."""
    pixels = (deep(3).astype(np.int64) * maximum // 65535).astype(np.uint16)
    data = ppm(pixels, maximum, plain)
    image = opened(data)
    assert image.mode == "RGB" and image.tile == []  # loaded: the header is read again
    kind = deep_images.deep_format(data, image)
    assert kind == f"{maximum.bit_length()}-bit RGB PPM"
    back = deep_images.read_deep(data, image)
    expected = (pixels.astype(np.int64) * 65535 + maximum // 2) // maximum
    assert back.dtype == np.uint16 and np.array_equal(back, expected)
    assert np.abs(back / 257.0 - np.asarray(image)).max() <= 1.0  # Pillow's 8 bits of it


def test_an_8_bit_ppm_is_not_deep() -> None:
    data = ppm(photo(H, W, 3), 255)[:-H * W * 6] + photo(H, W, 3).tobytes()
    assert deep_images.deep_format(data, opened(data)) is None


@pytest.mark.parametrize("data, problem", [
    (b"P6\n2 2\n65535\n" + bytes(20), "ends 4 bytes before its last sample"),
    (b"P3\n1 1\n1023\n1 2\n", "not 3 decimal samples"),
    (b"P3\n1 1\n1023\n1 2 1024\n", "samples outside 0"),
    (b"P6\n1 1\n1023\n" + b"\x04\x00" * 3, "samples outside 0"),
])
def test_a_damaged_deep_ppm_is_one_error(data: bytes, problem: str) -> None:
    image = Image.open(io.BytesIO(data))  # not loaded: Pillow itself may refuse these
    assert deep_images.deep_format(data, image) is not None
    with pytest.raises(ValueError, match=problem):
        deep_images.read_deep(data, image)


def test_a_deep_ppm_round_trips_through_the_cli_exactly(tmp_path: Path) -> None:
    pixels = deep(3)
    (tmp_path / "in.ppm").write_bytes(ppm(pixels, 65535))
    assert cli.encode_main([str(tmp_path / "in.ppm"), "--lossless", "--quiet"]) == 0
    back = svdcodec.decode((tmp_path / "in.svdi").read_bytes())
    assert back.dtype == np.uint16 and np.array_equal(back, pixels)


def j2k(pixels: np.ndarray, codecformat: str = "jp2", bits: int | None = None) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg2k_encode(pixels, level=0, codecformat=codecformat,
                                           bitspersample=bits))


@needs_extra
@pytest.mark.parametrize("codecformat", ["jp2", "j2k"])
@pytest.mark.parametrize("bits", [16, 12])
def test_a_deep_jpeg_2000_is_told_from_its_siz_segment_and_read_whole(
        tmp_path: Path, codecformat: str, bits: int) -> None:
    pixels = deep(3) >> (16 - bits)
    data = j2k(pixels, codecformat, bits)
    image = opened(data)
    assert image.format == "JPEG2000" and image.mode == "RGB"
    assert deep_images.deep_format(data, image) == f"{bits}-bit RGB JPEG 2000"
    back = deep_images.read_deep(data, image)
    maximum = (1 << bits) - 1
    assert np.array_equal(back, (pixels.astype(np.int64) * 65535 + maximum // 2) // maximum)
    (tmp_path / "in.jp2").write_bytes(data)
    assert cli.encode_main([str(tmp_path / "in.jp2"), "--lossless", "--quiet"]) == 0
    assert np.array_equal(svdcodec.decode((tmp_path / "in.svdi").read_bytes()), back)


@needs_extra
def test_an_8_bit_jpeg_2000_is_not_deep() -> None:
    data = j2k(photo(H, W, 3))
    assert deep_images.deep_format(data, opened(data)) is None


@needs_extra
def test_a_deep_jpeg_2000_without_the_extra_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.jp2").write_bytes(j2k(deep(3)))  # made with the extra, read without it
    monkeypatch.setitem(sys.modules, "imagecodecs", None)
    assert cli.encode_main([str(tmp_path / "in.jp2")]) == 1
    err = capsys.readouterr().err
    assert "reading a 16-bit RGB JPEG 2000 at 16 bits needs the 16bit extra" in err
    assert not (tmp_path / "in.svdi").exists()


@needs_extra
def test_a_jpeg_2000_deeper_than_16_bits_is_refused_not_wrapped(tmp_path: Path) -> None:
    """17 bits do not fit uint16: one line naming the depth, never samples scaled with an
    overflow (which a uint32 product would give)."""
    pixels = (deep(3).astype(np.uint32) << 1) | 1
    data = j2k(pixels, bits=17)
    image = opened(data)
    assert deep_images.deep_format(data, image) == "17-bit RGB JPEG 2000"
    with pytest.raises(ValueError, match="samples of 17 bits: svdcodec holds at most 16"):
        deep_images.read_deep(data, image)
    (tmp_path / "in.jp2").write_bytes(data)
    assert cli.encode_main([str(tmp_path / "in.jp2"), "--quiet"]) == 1
    assert not (tmp_path / "in.svdi").exists()


@needs_extra
def test_the_siz_bytes_in_another_jp2_box_do_not_make_a_file_deep() -> None:
    """The depth is read from the codestream box (jp2c), not from the first place the marker
    bytes occur: an 8-bit JP2 with SOC+SIZ-like bytes of 16 bits in an XML box stays 8-bit."""
    data = j2k(photo(H, W, 3))
    fake = b"\xff\x4f\xff\x51" + bytes(36) + b"\x00\x03" + b"\x0f\x01\x01" * 3
    box = struct.pack(">I", 8 + len(fake)) + b"xml " + fake
    at = 12 + struct.unpack_from(">I", data, 12)[0]  # after the signature and ftyp boxes
    crafted = data[:at] + box + data[at:]
    assert deep_images.deep_format(crafted, opened(crafted)) is None
    assert deep_images.deep_format(data, opened(data)) is None
    deep16 = j2k(deep(3))
    assert deep_images.deep_format(deep16, opened(deep16)) == "16-bit RGB JPEG 2000"
