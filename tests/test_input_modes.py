"""Inputs that once lost data on the way in: every 16-bit grey Pillow mode, Pillow's 32-bit
mode I, an ICC profile of another colour space than the stored samples', a float max_error
finer than the samples resolve, and DPI that is not a whole number (docs/usage.md, "Pillow")."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import decode_everywhere, make_vectors, photo

import svdcodec
from svdcodec import cli
from svdcodec.cli import tools

MV = make_vectors()

#: Pillow's 16-bit grey modes and the byte order of their samples.
GREY_16 = {"I;16": "<", "I;16L": "<", "I;16B": ">", "I;16N": "="}


def wide_grey(height: int = 40, width: int = 56) -> np.ndarray:
    """uint16 samples over the whole range 0..65535, far above 255."""
    return (photo(height, width, 1)[..., 0].astype(np.uint16) * 257) ^ np.uint16(0x00A5)


def grey_16_image(samples: np.ndarray, mode: str) -> Image.Image:
    raw = samples.astype(np.dtype(np.uint16).newbyteorder(GREY_16[mode])).tobytes()
    return Image.frombytes(mode, (samples.shape[1], samples.shape[0]), raw)


# ----------------------------------------------------------------------------- 16-bit grey


@pytest.mark.parametrize("mode", sorted(GREY_16))
def test_every_16_bit_grey_mode_keeps_its_samples(mode: str) -> None:
    samples = wide_grey()
    image = grey_16_image(samples, mode)
    out = decode_everywhere(svdcodec.encode(image, max_error=0))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, samples)
    buf = io.BytesIO()
    image.save(buf, "SVDI", lossless=True)
    np.testing.assert_array_equal(svdcodec.decode(buf.getvalue()), samples)
    lossy = svdcodec.decode(svdcodec.encode(image, quality=90))
    assert int(lossy.max()) > 60000  # not clipped at 255


def test_big_endian_16_bit_tiff_through_svdi_encode(tmp_path: Path) -> None:
    samples = wide_grey()
    grey_16_image(samples, "I;16B").save(tmp_path / "be16.tif")
    with Image.open(tmp_path / "be16.tif") as im:
        assert im.mode == "I;16B"  # the case: Pillow's convert("I;16") clips it to 0..255
    assert cli.encode_main([str(tmp_path / "be16.tif"), "--lossless", "--quiet"]) == 0
    out = svdcodec.decode((tmp_path / "be16.svdi").read_bytes())
    np.testing.assert_array_equal(out, samples)


# ----------------------------------------------------------------------------- mode I


def test_mode_i_beyond_16_bits_takes_the_int32_path() -> None:
    """Through float32 a sample above 2^24 moved by up to 32 for max_error=1, and lossless was
    refused; as the int32 array it is, both keep their bound."""
    rng = np.random.default_rng(3)
    samples = (photo(32, 48, 1)[..., 0].astype(np.int32) << 22) - (1 << 29) \
        + rng.integers(-1000, 1000, (32, 48), dtype=np.int32)
    image = Image.fromarray(samples, "I")
    for bound in (0, 1, 5):
        out = decode_everywhere(svdcodec.encode(image, max_error=bound))
        assert out.dtype == np.int32
        assert int(np.abs(out.astype(np.int64) - samples).max()) <= bound
    assert svdcodec.encode(image, max_error=1) == svdcodec.encode(samples, max_error=1)
    buf = io.BytesIO()
    image.save(buf, "SVDI", lossless=True)
    np.testing.assert_array_equal(svdcodec.decode(buf.getvalue()), samples)


def test_mode_i_within_16_bits_stays_uint16() -> None:
    samples = wide_grey().astype(np.int32)
    out = svdcodec.decode(svdcodec.encode(Image.fromarray(samples, "I"), max_error=0))
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, samples)


# ----------------------------------------------------------------------------- ICC profiles


def cmyk_jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(photo(24, 32, 4)).convert("CMYK").save(
        path, quality=95, icc_profile=MV.icc_header_only(b"CMYK"))
    return path


def test_cmyk_profile_is_not_kept_on_the_rgb_samples(tmp_path: Path) -> None:
    path = cmyk_jpeg(tmp_path)
    with Image.open(path) as im:
        assert im.mode == "CMYK" and im.info["icc_profile"][16:20] == b"CMYK"
        buf = io.BytesIO()
        im.save(buf, "SVDI")
        expected = np.asarray(im.convert("RGB"))
    assert "icc_profile" not in svdcodec.read_metadata(buf.getvalue())
    assert svdcodec.decode(buf.getvalue()).shape == expected.shape
    assert cli.encode_main([str(path), "--quiet"]) == 0
    assert "icc_profile" not in svdcodec.read_metadata(path.with_suffix(".svdi").read_bytes())
    assert cli.decode_main([str(path.with_suffix(".svdi")), "-o", str(tmp_path / "x.png"),
                            "--quiet"]) == 0
    with Image.open(tmp_path / "x.png") as png:
        assert png.mode == "RGB" and "icc_profile" not in png.info


def test_svdi_encode_says_when_it_leaves_the_inputs_profile_out(tmp_path: Path) -> None:
    path = cmyk_jpeg(tmp_path)
    result = tools.encode_one(tools.EncodeJob(src=str(path), dest=str(tmp_path / "c.svdi")))
    assert result.ok and "icc_profile not kept (a profile for CMYK" in result.message
    stripped = tools.encode_one(tools.EncodeJob(src=str(path), dest=str(tmp_path / "s.svdi"),
                                                strip=True))
    assert stripped.ok and "icc_profile" not in stripped.message


@pytest.mark.parametrize("mode, space, kept", [
    ("RGB", b"RGB ", True), ("RGBA", b"RGB ", True), ("L", b"GRAY", True),
    ("LA", b"GRAY", True), ("L", b"RGB ", False), ("RGB", b"GRAY", False),
    ("P", b"RGB ", True), ("1", b"GRAY", True), ("I;16B", b"GRAY", True),
    ("I;16", b"RGB ", False),
])
def test_pillow_keeps_a_profile_only_of_the_stored_colour_space(mode: str, space: bytes,
                                                                  kept: bool) -> None:
    base = Image.fromarray(photo(16, 24, 3))
    image = grey_16_image(wide_grey(16, 24), mode) if mode.startswith("I;16") \
        else base.convert(mode)
    profile = MV.icc_header_only(space)
    image.info["icc_profile"] = profile
    buf = io.BytesIO()
    image.save(buf, "SVDI")
    assert svdcodec.read_metadata(buf.getvalue()).get("icc_profile") == (profile if kept
                                                                          else None)


def test_the_note_names_the_dropped_profiles_own_colour_space(tmp_path: Path) -> None:
    """An RGB profile on a grey image: the note names RGB (the profile's space), not L."""
    path = tmp_path / "grey.png"
    Image.fromarray(photo(16, 24, 1)[..., 0]).save(path, icc_profile=MV.icc_header_only(b"RGB "))
    result = tools.encode_one(tools.EncodeJob(src=str(path), dest=str(tmp_path / "g.svdi")))
    assert result.ok and ("icc_profile not kept (a profile for RGB; the samples are stored as "
                          "grey)") in result.message


def test_a_profile_given_explicitly_is_written_as_given() -> None:
    """An explicit icc_profile= is the caller's statement about the samples, as with
    Pillow's own writers; only the one the image carries is checked."""
    profile = MV.icc_header_only(b"CMYK")
    data = svdcodec.encode(photo(16, 24, 3), icc_profile=profile)
    assert svdcodec.read_metadata(data)["icc_profile"] == profile


# ----------------------------------------------------------------------------- float bounds


def floats_near(offset: float) -> np.ndarray:
    return (offset + photo(48, 64, 1, seed=5)[..., 0] / 255.0 * 20.0).astype(np.float32)


@pytest.mark.parametrize("bound", [1e-9, 1e-7, 1e-5])
def test_a_float_bound_finer_than_the_samples_is_no_larger_than_exact(bound: float) -> None:
    """Near 1000 a float32 resolves 6.1e-5: any E below that is kept by the exact coding,
    and the file must not be larger than it (E = 1e-9 was refused, E = 1e-7 larger)."""
    samples = floats_near(1000.0)
    exact = svdcodec.encode(samples, max_error=0, quality=75)
    tiny = svdcodec.encode(samples, max_error=bound, quality=75)
    assert len(tiny) <= len(exact)
    np.testing.assert_array_equal(decode_everywhere(tiny), samples)


def test_a_float_bound_coarser_than_the_samples_keeps_its_step() -> None:
    """Where 2E is above every sample's resolution the bounded coding is the smaller and the
    decoded samples are not exact (the bound, not the exact coding, is used)."""
    samples = floats_near(1000.0)
    out = decode_everywhere(svdcodec.encode(samples, max_error=1e-3))
    error = np.abs(out.astype(np.float64) - samples)
    assert error.max() <= 1e-3 and error.max() > 0


# ----------------------------------------------------------------------------- DPI


@pytest.mark.parametrize("dpi, expected", [
    ((300, 300), (300, 300)), ((299.9994, 299.9994), (300, 300)),  # a PNG's 300 dpi
    ((72, 96), (72, 96)),
])
def test_whole_dpi_comes_back_whole(dpi: tuple[float, float],
                                    expected: tuple[int, int]) -> None:
    data = svdcodec.encode(photo(8, 8, 1), dpi=dpi)
    assert svdcodec.read_metadata(data)["dpi"] == expected


@pytest.mark.parametrize("dpi", [(300.5, 300.5), (72.25, 96), (0.4, 0.4)])
def test_fractional_dpi_is_kept_to_a_pixel_per_metre(dpi: tuple[float, float]) -> None:
    """As PNG's pHYs keeps it (Pillow's PNG writer gives 300.5074 for 300.5), not rounded to
    whole dots per inch as JPEG's header is."""
    data = svdcodec.encode(photo(8, 8, 1), dpi=dpi)
    stored = svdcodec.read_metadata(data)["dpi"]
    assert all(abs(s - d) <= 0.5 * 0.0254 for s, d in zip(stored, dpi, strict=True))
    buf = io.BytesIO()
    Image.new("L", (4, 4)).save(buf, "PNG", dpi=dpi)
    with Image.open(buf) as png:
        assert stored == pytest.approx(png.info["dpi"])


def test_an_int32_grey_file_opens_in_pillow_as_mode_i(tmp_path: Path) -> None:
    """So that a mode I image beyond 16 bits saved by Pillow opens again in Pillow (and
    svdi-decode writes it to TIFF, which holds mode I; PNG does not)."""
    samples = (photo(40, 56, 1)[..., 0].astype(np.int32) << 20) - (1 << 27)
    buf = io.BytesIO()
    Image.fromarray(samples, "I").save(buf, "SVDI", lossless=True)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.mode == "I"
        np.testing.assert_array_equal(np.asarray(im), samples)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        im.draft(None, (28, 20))  # a reduced decode, as thumbnail() asks for
        assert im.size == (28, 20) and np.asarray(im).dtype == np.int32
    (tmp_path / "i.svdi").write_bytes(buf.getvalue())
    assert cli.decode_main([str(tmp_path / "i.svdi"), "--quiet"]) == 0
    with Image.open(tmp_path / "i.svdi.tiff") as tiff:
        np.testing.assert_array_equal(np.asarray(tiff), samples)


@pytest.mark.parametrize("samples", [
    (np.arange(32 * 32, dtype=np.int32).reshape(32, 32) << 14),
    np.linspace(0, 1000, 32 * 32, dtype=np.float32).reshape(32, 32),
])
def test_svdi_decode_writes_32_bit_grey_only_where_it_fits(tmp_path: Path,
                                                           samples: np.ndarray) -> None:
    """WebP would take mode I and F through 8-bit RGB and PPM mode I through 16 bits in
    silence; PPM writes mode F as PFM, exactly, and TIFF holds both."""
    (tmp_path / "x.svdi").write_bytes(svdcodec.encode(samples, max_error=0))
    exact = ("tif", "pfm", "ppm") if samples.dtype == np.float32 else ("tif",)
    for ext in ("webp", "ppm", "png", "jpg", "pfm"):
        if ext in exact:
            continue
        assert cli.decode_main([str(tmp_path / "x.svdi"), "-o", str(tmp_path / f"x.{ext}"),
                                "--quiet"]) == 1, ext
        assert not (tmp_path / f"x.{ext}").exists()
    for ext in exact:
        assert cli.decode_main([str(tmp_path / "x.svdi"), "-o", str(tmp_path / f"x.{ext}"),
                                "--quiet"]) == 0, ext
        with Image.open(tmp_path / f"x.{ext}") as written:
            np.testing.assert_array_equal(np.asarray(written), samples)


@pytest.mark.parametrize("image", ["photo.png", Path("photo.png"), b"\x89PNG\r\n\x1a\n"])
def test_encode_of_a_path_or_bytes_says_to_open_the_file(image: object) -> None:
    """decode takes paths and bytes, so a new user tries encode with them: the error must say
    what encode takes (it said "unsupported sample type <U9"), before any file is read."""
    for call in (svdcodec.encode, svdcodec.spectrum):
        with pytest.raises(TypeError, match=r"numpy array or a Pillow image.*Image\.open") as info:
            call(image)
        assert isinstance(info.value, svdcodec.SvdiError)   # what encode raised for them before
