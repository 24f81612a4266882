"""Photos as they come: metadata (EXIF, ICC, XMP, DPI, text) through the numpy API, Pillow and
the tools; the pixel limit; several frames; options that svdcodec does not have."""

from __future__ import annotations

import functools
import io
import json
import struct
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError, features
from support import ROOT, kernels, make_vectors

import svdcodec
from svdcodec import SvdiError, cli
from svdcodec import format as container

MV = make_vectors()
VECTORS = ROOT / "spec" / "vectors"
H, W = 24, 40
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
       b'"http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>')
TEXT = {"Title": "Ŝtono", "Author": "someone", "Description": "line 1\nline 2"}


def picture() -> np.ndarray:
    """An RGB picture with no symmetry, so that every orientation gives a different array."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    out = np.stack([20 + 5 * x, 30 + 9 * y, 128 + 60 * np.sin(x / 5 + y / 9)], -1)
    out[2:7, 3:9] = (250, 20, 20)  # a red block near the top-left corner
    return np.clip(out, 0, 255).astype(np.uint8)


def exif_with(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "svdcodec tests"  # Make
    return exif


@functools.cache
def icc_profiles() -> dict[str, bytes]:
    """sRGB and a non-sRGB profile, from Pillow's littlecms where it is built in, else the
    vector generator's header-only profile (which the format accepts as well). Made once:
    littlecms stamps each new profile with the time, so two made a second apart differ."""
    if features.check("littlecms2"):
        from PIL import ImageCms

        return {name: ImageCms.ImageCmsProfile(ImageCms.createProfile(name)).tobytes()
                for name in ("sRGB", "LAB")}
    return {"sRGB": MV.icc_header_only(b"RGB "), "LAB": MV.icc_header_only(b"Lab ")}


def without_metadata(data: bytes) -> bytes:
    chunks = [c for c in MV.split_chunks(data) if c[0] not in container.metadata.METADATA_CHUNKS]
    return MV.join_chunks(chunks)


# ----------------------------------------------------------------------------- numpy API


@pytest.mark.parametrize("profile", ["sRGB", "LAB"])
def test_numpy_round_trip_keeps_every_kind(profile: str) -> None:
    icc = icc_profiles()[profile]
    plain = svdcodec.encode(picture())
    data = svdcodec.encode(picture(), exif=exif_with(6), icc_profile=icc, xmp=XMP,
                           dpi=(300, 299.9994), text=TEXT)
    meta = svdcodec.read_metadata(data)
    assert meta["icc_profile"] == icc and meta["xmp"] == XMP and meta["text"] == TEXT
    assert meta["dpi"] == (300, 300)  # whole dots per inch, as JPEG
    assert meta["exif"] == exif_with(6).tobytes()[len(b"Exif\0\0"):]  # the TIFF structure
    # The critical chunks are those of the file without metadata, byte for byte.
    assert without_metadata(data) == plain
    assert np.array_equal(svdcodec.decode(data), svdcodec.decode(plain))
    assert svdcodec.read_metadata(plain) == {}


def test_exif_given_as_bytes_with_or_without_prefix() -> None:
    raw = exif_with(3).tobytes()
    a = svdcodec.encode(picture(), exif=raw)
    b = svdcodec.encode(picture(), exif=raw[6:])
    assert a == b and svdcodec.read_metadata(a)["exif"] == raw[6:]


@pytest.mark.parametrize("options, message", [
    ({"exif": b"Exif\0\0not a tiff"}, "EXIF must be a TIFF structure"),
    ({"exif": "text"}, "exif must be bytes"),
    ({"icc_profile": b"\0" * 200}, "not an ICC profile"),
    ({"dpi": (0, 72)}, "dpi must round to whole numbers"),
    ({"dpi": "300"}, "dpi must be a pair"),
    ({"text": {"": "x"}}, "keyword must be 1-79"),
    ({"text": {"k" * 80: "x"}}, "keyword must be 1-79"),
    ({"text": {"€": "x"}}, "is not Latin-1"),
    ({"text": {"k": "a\0b"}}, "contains NUL"),
    ({"xmp": b"\xff\xfe"}, "not UTF-8"),
])
def test_bad_metadata_is_refused_before_encoding(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SvdiError, match=message):
        svdcodec.encode(picture(), **options)


@pytest.mark.parametrize("name, value", [
    ("icc_profile", False), ("icc_profile", 0), ("icc_profile", "a profile"),
    ("icc_profile", [b"x"]), ("xmp", False), ("xmp", 0), ("xmp", {"a": "b"}),
    ("text", False), ("text", 0), ("text", [("Title", "x")]), ("text", "Title"),
    ("text", {"Title": 5}), ("exif", False), ("exif", 0),
])
def test_metadata_of_a_wrong_type_is_a_type_error(name: str, value: object) -> None:
    """False and 0 are not empty metadata (they were taken as none: `if icc_profile:`), nor
    is any type but the documented ones (icc_profile bytes, xmp bytes or str, text a dict of
    str, exif bytes or an Exif): a TypeError naming the option, which is an SvdiError too;
    the Pillow plugin's save refuses them alike."""
    for error in (TypeError, SvdiError):
        with pytest.raises(error, match=name if name != "text" else "text"):
            svdcodec.encode(picture(), **{name: value})
        with pytest.raises(error, match=name):
            Image.fromarray(picture()).save(io.BytesIO(), "SVDI", **{name: value})


def test_none_and_empty_metadata_write_nothing() -> None:
    plain = svdcodec.encode(picture())
    for options in ({"icc_profile": b""}, {"xmp": b""}, {"xmp": ""}, {"text": {}},
                    {"exif": b""}, {"icc_profile": None, "xmp": None, "text": None}):
        assert svdcodec.encode(picture(), **options) == plain, options
    assert svdcodec.encode(picture(), xmp=bytearray(XMP)) == svdcodec.encode(picture(), xmp=XMP)


def test_unknown_numpy_keyword_raises() -> None:
    with pytest.raises(TypeError, match="lossless"):
        svdcodec.encode(picture(), lossless=True)  # type: ignore[call-arg]


def test_max_bytes_counts_the_metadata() -> None:
    icc = icc_profiles()["LAB"]
    data = svdcodec.encode(picture(), max_bytes=4000, icc_profile=icc, text=TEXT)
    assert len(data) <= 4000 and svdcodec.read_metadata(data)["icc_profile"] == icc
    with pytest.raises(SvdiError, match="metadata alone exceeds max_bytes"):
        svdcodec.encode(picture(), max_bytes=100, icc_profile=icc)


# ----------------------------------------------------------------------------- vectors


def test_metadata_vector_matches_its_manifest_entry() -> None:
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    entry = next(e for e in manifest["vectors"] if e["file"] == "rgb_16x16_metadata.svdi")
    data = (VECTORS / entry["file"]).read_bytes()
    expected = entry["metadata"]
    meta = svdcodec.read_metadata(data)
    assert meta == {"exif": bytes.fromhex(expected["exif"]),
                    "icc_profile": bytes.fromhex(expected["icc_profile"]),
                    "xmp": expected["xmp"].encode(), "dpi": tuple(expected["dpi"]),
                    "text": expected["text"]}
    # Same pixels as the vector without metadata, by both decoders.
    plain = (VECTORS / "rgb_16x16_patch8.svdi").read_bytes()
    assert np.array_equal(svdcodec.decode(data), svdcodec.decode(plain))
    with Image.open(VECTORS / entry["file"]) as im:
        assert im.getexif()[0x0112] == 6 and im.info["dpi"] == (300, 300)
        assert im.text == expected["text"] and im.info["Title"] == expected["text"]["Title"]
        assert ImageOps.exif_transpose(im).size == (16, 16)


def test_files_without_metadata_still_decode() -> None:
    """The committed vectors from before the metadata chunks: same pixels, no metadata."""
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    old = [e for e in manifest["vectors"] if e["valid"] and "metadata" not in e]
    assert len(old) >= 8
    for entry in old:
        data = (VECTORS / entry["file"]).read_bytes()
        assert svdcodec.read_metadata(data) == {}
        expected = np.load(VECTORS / entry["expected"])
        assert np.abs(svdcodec.decode(data).astype(np.float64) - expected).max() \
            <= entry["tolerance"]["abs"]


def test_a_reader_without_metadata_support_skips_the_chunks() -> None:
    """The chunk types renamed to unknown ancillary ones: the same pixels (what a version 1
    reader that predates section 1.1 sees)."""
    data = (VECTORS / "rgb_16x16_metadata.svdi").read_bytes()
    renamed = MV.join_chunks([(b"zz" + kind[2:] if kind in container.metadata.METADATA_CHUNKS
                               else kind, payload) for kind, payload in MV.split_chunks(data)])
    assert svdcodec.read_metadata(renamed) == {}
    assert np.array_equal(svdcodec.decode(renamed), svdcodec.decode(data))


# ----------------------------------------------------------------------------- big chunks


def with_chunks_before_plan(data: bytes, extra: list[tuple[bytes, bytes]]) -> bytes:
    chunks = MV.split_chunks(data)
    return MV.join_chunks(chunks[:1] + extra + chunks[1:])


def test_ancillary_chunks_over_64_kib_before_the_plans_open_in_pillow() -> None:
    """#14 finding 7: Image.open used to refuse an ancillary chunk > 64 KiB before PLAN."""
    base = svdcodec.encode(picture())
    big_exif = MV.exif_orientation(8) + bytes(100_000)  # a TIFF structure with trailing data
    data = with_chunks_before_plan(base, [(b"prVt", bytes(300_000)), (b"eXIf", big_exif)])
    assert np.array_equal(svdcodec.decode(data), svdcodec.decode(base))
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif()[0x0112] == 8 and len(im.info["exif"]) == 6 + len(big_exif)
        assert np.array_equal(np.asarray(im), svdcodec.decode(base))
    # The unknown chunk's CRC is still checked, in pieces.
    broken = bytearray(data)
    broken[len(container.SIGNATURE) + 35 + 8 + 1000] ^= 1
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(bytes(broken)))
    with pytest.raises(SvdiError, match="CRC mismatch"):
        svdcodec.decode(bytes(broken))


def test_metadata_chunk_over_its_limit_is_refused_before_reading() -> None:
    """A declared length above the limit is refused from the chunk header: the reader does not
    wait for 16 MiB that are not there (it would say 'truncated' after reading them)."""
    base = svdcodec.encode(picture())
    head_end = len(container.SIGNATURE) + 12 + container.HEAD_RECORD.size
    header_only = base[:head_end] + struct.pack(">I4s", container.metadata.MAX_EXIF + 1, b"eXIf")
    with pytest.raises(SvdiError, match="exceeds its limit"):
        container.read_prefix(io.BytesIO(header_only))
    with pytest.raises(SvdiError, match="exceeds its limit"):
        svdcodec.read_metadata(header_only)


@pytest.mark.parametrize("compiled", [True, False], ids=["kernels", "numpy"])
def test_texts_are_bounded_in_count_and_bytes(compiled: bool) -> None:
    """Spec §1.1: at most MAX_TEXTS iTXt chunks of MAX_TEXT_TOTAL bytes together, so that a
    reader's memory for a file's texts is bounded (a million empty texts took a reader
    hundreds of MiB for a 1-pixel image). The limits hold where a reader knows the chunks:
    the image decodes the same without them; the encoder refuses texts beyond them."""
    from svdcodec.format.metadata import MAX_TEXT, MAX_TEXT_TOTAL, MAX_TEXTS
    from svdcodec.format.writer import insert_after_head

    base = svdcodec.encode(np.zeros((1, 1), np.uint8))

    def with_texts(payloads: list[bytes]) -> bytes:
        return insert_after_head(base, [(b"iTXt", p) for p in payloads])
    empty = [b"k%d\0\0\0\0\0" % i for i in range(MAX_TEXTS + 1)]
    large = [b"k%d\0\0\0\0\0" % i + b"x" * (MAX_TEXT - 10) for i in range(17)]
    assert sum(map(len, large[:16])) <= MAX_TEXT_TOTAL < sum(map(len, large))
    with kernels(compiled):
        assert len(svdcodec.read_metadata(with_texts(empty[:-1]))["text"]) == MAX_TEXTS
        assert len(svdcodec.read_metadata(with_texts(large[:16]))["text"]) == 16
        with pytest.raises(SvdiError, match=f"more than {MAX_TEXTS} iTXt chunks"):
            svdcodec.decode(with_texts(empty))
        with pytest.raises(SvdiError, match="iTXt chunks of more than"):
            svdcodec.decode(with_texts(large))
        # the refusal comes at the chunk past the limit: no text after it is read
        flood = with_texts(empty + [b"x\0\0\0\0\0"] * 100_000)
        tracemalloc.start()
        with pytest.raises(SvdiError, match=f"more than {MAX_TEXTS} iTXt chunks"):
            svdcodec.decode(flood)
        assert tracemalloc.get_traced_memory()[1] < 4 << 20
        tracemalloc.stop()
    # the compiled chunk table lists a valid file's most metadata chunks (4096 texts and one
    # of each other kind), and declines one more, which the Python walk then refuses
    from svdcodec.format.metadata import MAX_METADATA_CHUNKS
    from svdcodec.format.reader import LISTED_ANCILLARY, MAX_CHUNK, TABLE_RUNS
    from svdcodec.runtime import kernels as runtime_kernels
    fullest = svdcodec.encode(picture(), text={f"k{i}": "" for i in range(MAX_TEXTS)},
                              exif=exif_with(6), icc_profile=make_vectors().icc_header_only(),
                              xmp="<x/>", dpi=(72, 72))
    past = insert_after_head(fullest, [(b"iTXt", b"one more\0\0\0\0\0")])
    with kernels(compiled):
        table = runtime_kernels.get()
        if table is not None:
            listed = (len(container.SIGNATURE), MAX_CHUNK, LISTED_ANCILLARY, TABLE_RUNS,
                      MAX_METADATA_CHUNKS)
            assert table.chunk_table(fullest, *listed) is not None
            assert table.chunk_table(past, *listed) is None
        assert svdcodec.decode(fullest).shape == picture().shape
        with pytest.raises(SvdiError, match=f"more than {MAX_TEXTS} iTXt chunks"):
            svdcodec.decode(past)
    with pytest.raises(SvdiError, match="texts exceed the limit"):
        svdcodec.encode(picture(), text={f"k{i}": "" for i in range(MAX_TEXTS + 1)})
    with pytest.raises(SvdiError, match="together exceed the limit"):
        svdcodec.encode(picture(), text={f"k{i}": "x" * (MAX_TEXT - 10) for i in range(17)})


# ----------------------------------------------------------------------------- Pillow


def test_cli_keeps_the_texts_the_format_holds_and_says_what_it_left(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A PNG with more texts than a file holds (spec §1.1: 4096, 2^24 bytes together) is
    encoded with the first that fit, and the line says how many were left (before the limits
    of the encoder, the whole encode failed)."""
    from svdcodec.format.metadata import MAX_TEXTS

    info = PngImagePlugin.PngInfo()
    for i in range(MAX_TEXTS + 2):
        info.add_text(f"k{i}", "x")
    Image.fromarray(picture()).save(tmp_path / "many.png", pnginfo=info)
    assert cli.encode_main([str(tmp_path / "many.png")]) == 0
    assert "text not kept: 2 of the input's texts" in capsys.readouterr().err
    text = svdcodec.read_metadata((tmp_path / "many.svdi").read_bytes())["text"]
    assert list(text) == [f"k{i}" for i in range(MAX_TEXTS)]


def test_texts_named_like_pillows_info_keys_stay_in_im_text() -> None:
    """A text whose keyword Pillow reads from im.info as something else ("exif",
    "icc_profile", "transparency", "dpi"; PNG's "Raw profile type exif" and
    "XML:com.adobe.xmp") is in im.text only: in im.info, as a str, it made getexif(),
    exif_transpose(), convert("RGBA") and a PNG save raise TypeError or ValueError, or turned
    the picture by an orientation in the text."""
    keys = ("exif", "icc_profile", "transparency", "dpi", "Raw profile type exif",
            "XML:com.adobe.xmp")
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           '02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
           'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    texts = {**{k: "not what Pillow reads" for k in keys}, "XML:com.adobe.xmp": xmp}
    data = svdcodec.encode(picture(), text={**texts, "Title": "kept"})
    with Image.open(io.BytesIO(data)) as im:
        assert im.text == {**texts, "Title": "kept"}
        assert im.info["Title"] == "kept" and not set(keys) & set(im.info)
        assert len(im.getexif()) == 0
        upright = ImageOps.exif_transpose(im)
        assert upright.size == im.size  # (the text's orientation 6 would turn it)
        upright.convert("RGBA").save(io.BytesIO(), "PNG")
        im.save(io.BytesIO(), "JPEG")


def test_pillow_save_takes_metadata_and_open_shows_it() -> None:
    icc = icc_profiles()["LAB"]
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, "SVDI", exif=exif_with(6), icc_profile=icc, xmp=XMP,
                                    dpi=(72, 72), text=TEXT)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        assert im.info["icc_profile"] == icc and im.info["xmp"] == XMP
        assert im.info["dpi"] == (72, 72) and im.text == TEXT
        assert im.info["exif"].startswith(b"Exif\0\0") and im.getexif()[0x010F] == "svdcodec tests"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_stored_not_applied(orientation: int, tmp_path: Path) -> None:
    """exif_transpose of the decoded .svdi gives the picture exif_transpose gives from the
    original, for every Orientation value."""
    original = tmp_path / "original.png"
    Image.fromarray(picture()).save(original, exif=exif_with(orientation))
    with Image.open(original) as im:
        im.save(tmp_path / "x.svdi", quality=95, exif=im.info["exif"])
        expected = np.asarray(ImageOps.exif_transpose(im))
    with Image.open(tmp_path / "x.svdi") as im:
        assert im.size == (W, H)  # the pixels as they were: not turned
        assert im.getexif()[0x0112] == orientation
        turned = ImageOps.exif_transpose(im)
        decoded = np.asarray(im)
    assert turned.size == expected.shape[1::-1]
    # Exactly the turn of the decoded pixels, and close to the original's turned picture.
    same = Image.fromarray(decoded)
    same.info["exif"] = exif_with(orientation).tobytes()
    assert np.array_equal(np.asarray(turned), np.asarray(ImageOps.exif_transpose(same)))
    assert np.abs(np.asarray(turned).astype(int) - expected.astype(int)).mean() < 2.5


def test_pillow_keeps_icc_by_default_and_exif_only_when_passed() -> None:
    """As Pillow's own writers: the ICC profile follows the image (PNG, TIFF), EXIF, XMP and DPI
    are written when passed (JPEG, WebP, PNG). The profile must describe RGB samples to follow
    an RGB image (tests/test_input_modes.py)."""
    icc = icc_profiles()["sRGB"]
    src = io.BytesIO()
    Image.fromarray(picture()).save(src, "PNG", icc_profile=icc, exif=exif_with(6), dpi=(90, 90))
    with Image.open(src) as im:
        out = io.BytesIO()
        im.save(out, "SVDI")
        assert svdcodec.read_metadata(out.getvalue()) == {"icc_profile": icc}
        out = io.BytesIO()
        im.save(out, "SVDI", icc_profile=b"", exif=im.getexif(), dpi=im.info["dpi"])
        meta = svdcodec.read_metadata(out.getvalue())
    assert set(meta) == {"exif", "dpi"} and meta["dpi"] == (90, 90)


@pytest.mark.parametrize("options", [{"method": 6}, {"subsampling": 0},
                                     {"optimize": True}, {"append": True}, {"qualty": 50}])
def test_pillow_save_refuses_options_it_does_not_have(options: dict[str, Any]) -> None:
    with pytest.raises(SvdiError, match=next(iter(options))):
        Image.fromarray(picture()).save(io.BytesIO(), "SVDI", **options)


def test_save_all_saves_one_frame_and_refuses_several(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.roll(picture(), 5 * i, 1)) for i in range(3)]
    one = io.BytesIO()
    frames[0].save(one, "SVDI", save_all=True)
    assert Image.open(one).size == (W, H)
    with pytest.raises(SvdiError, match="single image, not 3 frames"):
        frames[0].save(io.BytesIO(), "SVDI", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with Image.open(tmp_path / "a.gif") as gif:
        with pytest.raises(SvdiError, match="not 3 frames"):
            gif.save(tmp_path / "a.svdi", save_all=True)
        gif.seek(1)
        gif.save(tmp_path / "a.svdi")  # one frame, as every single-image format does
    assert not (tmp_path / "b.svdi").exists()


# ----------------------------------------------------------------------------- pixel limit


def test_pixel_limit_warns_then_refuses_naming_the_option(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    data = svdcodec.encode(picture())  # 960 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 480)
    with pytest.warns(Image.DecompressionBombWarning):
        svdcodec.decode(data)
    with pytest.warns(Image.DecompressionBombWarning):
        Image.open(io.BytesIO(data)).load()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 479)
    with pytest.raises(SvdiError, match=r"max_pixels=None.*--max-pixels"):
        svdcodec.decode(data)
    with pytest.raises(SvdiError, match="max_pixels"):
        svdcodec.read_factors(data)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert svdcodec.decode(data, max_pixels=None).shape == (H, W, 3)
        assert svdcodec.decode(data, max_pixels=960).shape == (H, W, 3)
    with pytest.raises(SvdiError, match="given by max_pixels="):
        svdcodec.decode(data, max_pixels=959)


def test_cli_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    png, svdi = tmp_path / "p.png", tmp_path / "p.svdi"
    Image.fromarray(picture()).save(png)
    svdi.write_bytes(svdcodec.encode(picture()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 479)
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "a.png")]) == 1
    assert "--max-pixels 0" in capsys.readouterr().err
    assert cli.encode_main([str(png), "-o", str(tmp_path / "a.svdi")]) == 1
    assert "--max-pixels" in capsys.readouterr().err
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "b.png"), "--max-pixels", "0"]) == 0
    assert cli.encode_main([str(png), "-o", str(tmp_path / "b.svdi"), "--max-pixels",
                            "960"]) == 0
    assert cli.encode_main([str(png), "-o", str(tmp_path / "c.svdi"), "--max-pixels",
                            "959"]) == 1
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 480)
    capsys.readouterr()
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "c.png")]) == 0
    assert "warning: image of 40x24" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CLI


@pytest.fixture
def jpeg_with_metadata(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    Image.fromarray(picture()).save(path, quality=95, exif=exif_with(6),
                                    icc_profile=icc_profiles()["sRGB"], dpi=(300, 300), xmp=XMP)
    return path


def test_cli_keeps_metadata_from_input_to_every_output(jpeg_with_metadata: Path) -> None:
    icc = icc_profiles()["sRGB"]
    svdi = jpeg_with_metadata.with_suffix(".svdi")
    assert cli.encode_main([str(jpeg_with_metadata), "--quiet"]) == 0
    meta = svdcodec.read_metadata(svdi.read_bytes())
    assert meta["icc_profile"] == icc and meta["xmp"] == XMP and meta["dpi"] == (300, 300)
    exif = Image.Exif()
    exif.load(b"Exif\0\0" + meta["exif"])
    assert exif[0x0112] == 6
    writable = {"png": {"exif", "icc_profile", "xmp", "dpi"}, "jpg": {"exif", "icc_profile",
                "xmp", "dpi"}, "webp": {"exif", "icc_profile", "xmp"},
                "tiff": {"exif", "icc_profile", "xmp", "dpi"}}
    for ext, kinds in writable.items():
        if ext == "webp" and not features.check("webp"):
            continue
        out = svdi.with_name(f"out.{ext}")
        assert cli.decode_main([str(svdi), "-o", str(out), "--quiet"]) == 0
        with Image.open(out) as im:
            assert im.getexif()[0x0112] == 6, ext
            assert im.info.get("icc_profile") == icc, ext
            assert ("xmp" in im.info) == ("xmp" in kinds), ext
            xmp = im.info.get("xmp", b"")
            assert XMP.decode() in (xmp.decode() if isinstance(xmp, bytes) else xmp), ext
            if "dpi" in kinds:
                assert [round(v) for v in im.info["dpi"]] == [300, 300], ext
            assert ImageOps.exif_transpose(im).size == (H, W)


def test_cli_keeps_the_picture_of_a_tiff_upright(tmp_path: Path) -> None:
    """A TIFF's EXIF tags live among its own tags: the camera's make goes into the .svdi file,
    the TIFF's strip offsets do not; the orientation either goes too or (Pillow >= 12 turns a
    TIFF's pixels on load and drops the tag) is already in the pixels: exif_transpose gives
    the same picture either way."""
    Image.fromarray(picture()).save(tmp_path / "o.tiff", exif=exif_with(6), dpi=(200, 200))
    assert cli.encode_main([str(tmp_path / "o.tiff"), "-q", "95", "--quiet"]) == 0
    meta = svdcodec.read_metadata((tmp_path / "o.svdi").read_bytes())
    exif = Image.Exif()
    exif.load(b"Exif\0\0" + meta["exif"])
    assert set(exif) <= {0x0112, 0x010F} and exif[0x010F] == "svdcodec tests"
    assert meta["dpi"] == (200, 200)
    with Image.open(tmp_path / "o.tiff") as tiff, Image.open(tmp_path / "o.svdi") as svdi:
        expected = np.asarray(ImageOps.exif_transpose(tiff)).astype(int)
        upright = np.asarray(ImageOps.exif_transpose(svdi)).astype(int)
    assert upright.shape == expected.shape == (W, H, 3)
    assert np.abs(upright - expected).mean() < 2.5


def test_cli_keeps_a_tiffs_exif_and_gps_directories(tmp_path: Path) -> None:
    """A TIFF's EXIF sub-directories (the Exif one: exposure, the date taken; GPS) go into the
    .svdi file whole, as a JPEG's do, and come back through Pillow and svdi-decode."""
    exif = exif_with(1)
    exif.get_ifd(0x8769).update({0x829A: (1, 250), 0x9003: "2024:01:01 12:00:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (10.0, 20.0, 30.0)})
    Image.fromarray(picture()).save(tmp_path / "c.jpg", exif=exif)
    with Image.open(tmp_path / "c.jpg") as jpeg:
        Image.fromarray(picture()).save(tmp_path / "c.tif", exif=jpeg.getexif())
    for name in ("c.jpg", "c.tif"):
        out = tmp_path / (name + ".svdi")
        assert cli.encode_main([str(tmp_path / name), "-o", str(out), "--quiet"]) == 0
        assert cli.decode_main([str(out), "-o", str(tmp_path / (name + ".jpg")), "--quiet"]) == 0
        for path in (out, tmp_path / (name + ".jpg")):
            with Image.open(path) as im:
                kept = im.getexif()
            assert dict(kept.get_ifd(0x8769)) == {0x829A: (1, 250),
                                                  0x9003: "2024:01:01 12:00:00"}, path
            assert dict(kept.get_ifd(0x8825)) == {1: "N", 2: (10.0, 20.0, 30.0)}, path
            assert kept[0x010F] == "svdcodec tests"


def test_cli_keeps_a_pngs_exif_written_as_imagemagicks_raw_profile(tmp_path: Path) -> None:
    """A PNG's EXIF in ImageMagick's "Raw profile type exif" text (hex, after a line naming it
    and one of its length) is read as Pillow reads it and kept as EXIF, not as text: an
    svdi-decode to JPEG keeps the orientation. Text that is not hex, or empty, stays text."""
    body = b"Exif\0\0" + exif_with(6).tobytes()[len(b"Exif\0\0"):]
    hexed = body.hex()
    raw = f"\nexif\n{len(body):8d}\n" + "\n".join(hexed[i:i + 72]
                                                  for i in range(0, len(hexed), 72)) + "\n"
    for name, value in (("magick.png", raw), ("odd.png", "\nexif\n       3\nnot hex\n"),
                        ("empty.png", "\nexif\n       0\n")):
        info = PngImagePlugin.PngInfo()
        info.add_text("Raw profile type exif", value, zip=True)
        Image.fromarray(picture()).save(tmp_path / name, pnginfo=info)
        assert cli.encode_main([str(tmp_path / name), "--quiet"]) == 0
    meta = svdcodec.read_metadata((tmp_path / "magick.svdi").read_bytes())
    assert "text" not in meta and meta["exif"] == exif_with(6).tobytes()[len(b"Exif\0\0"):]
    assert cli.decode_main([str(tmp_path / "magick.svdi"), "-o", str(tmp_path / "m.jpg"),
                            "--quiet"]) == 0
    with Image.open(tmp_path / "m.jpg") as jpeg:
        assert jpeg.getexif()[0x0112] == 6
    odd = svdcodec.read_metadata((tmp_path / "odd.svdi").read_bytes())
    assert "exif" not in odd and odd["text"]["Raw profile type exif"].endswith("not hex\n")
    empty = svdcodec.read_metadata((tmp_path / "empty.svdi").read_bytes())
    assert "exif" not in empty and "Raw profile type exif" in empty["text"]


def test_cli_drops_only_the_metadata_it_cannot_store(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """An input's text that PNG allows but is too long here, or a broken ICC profile, costs
    that item only."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "kept")
    info.add_text("Long", "x" * (container.metadata.MAX_TEXT + 1))
    Image.fromarray(picture()).save(tmp_path / "t.png", pnginfo=info)
    assert cli.encode_main([str(tmp_path / "t.png")]) == 0
    assert "text not kept (text 'Long' of 1048586 bytes exceeds" in capsys.readouterr().err
    assert svdcodec.read_metadata((tmp_path / "t.svdi").read_bytes()) == {"text": {"Title": "kept"}}
    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "kept")
    Image.fromarray(picture()).save(tmp_path / "u.png", pnginfo=info, icc_profile=b"\0" * 200)
    assert cli.encode_main([str(tmp_path / "u.png")]) == 0
    assert "icc_profile not kept (icc_profile: not an ICC profile" in capsys.readouterr().err
    assert svdcodec.read_metadata((tmp_path / "u.svdi").read_bytes()) == {"text": {"Title": "kept"}}


def test_cli_text_goes_into_png(tmp_path: Path) -> None:
    svdi = tmp_path / "t.svdi"
    svdi.write_bytes(svdcodec.encode(picture(), text=TEXT))
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "t.png"), "--quiet"]) == 0
    with Image.open(tmp_path / "t.png") as im:
        assert {k: im.text[k] for k in TEXT} == TEXT
    assert cli.encode_main([str(tmp_path / "t.png"), "-o", str(tmp_path / "u.svdi"),
                            "--quiet"]) == 0
    assert svdcodec.read_metadata((tmp_path / "u.svdi").read_bytes())["text"] == TEXT


def test_cli_says_what_a_format_cannot_hold(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    svdi = tmp_path / "t.svdi"
    svdi.write_bytes(svdcodec.encode(picture(), text=TEXT, dpi=(72, 72)))
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "t.jpg")]) == 0
    assert "JPEG output cannot hold the file's text (not written)" in capsys.readouterr().err


def test_cli_strip(jpeg_with_metadata: Path, tmp_path: Path) -> None:
    stripped = tmp_path / "s.svdi"
    assert cli.encode_main([str(jpeg_with_metadata), "-o", str(stripped), "--strip",
                            "--quiet"]) == 0
    assert svdcodec.read_metadata(stripped.read_bytes()) == {}
    kept = tmp_path / "k.svdi"
    assert cli.encode_main([str(jpeg_with_metadata), "-o", str(kept), "--quiet"]) == 0
    assert without_metadata(kept.read_bytes()) == stripped.read_bytes()
    assert cli.decode_main([str(kept), "-o", str(tmp_path / "s.png"), "--strip",
                            "--quiet"]) == 0
    with Image.open(tmp_path / "s.png") as im:
        assert not {"exif", "icc_profile", "xmp", "dpi"} & set(im.info)


def test_cli_info_lists_metadata(jpeg_with_metadata: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    svdi = jpeg_with_metadata.with_suffix(".svdi")
    assert cli.encode_main([str(jpeg_with_metadata), "--quiet"]) == 0
    assert cli.info_main([str(svdi), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["metadata"]) == {"exif", "icc_profile", "xmp", "dpi"}
    assert report["metadata"]["icc_profile"]["size"] == len(icc_profiles()["sRGB"])
    assert cli.info_main([str(svdi)]) == 0
    assert "metadata: EXIF" in capsys.readouterr().out


def test_cli_frames(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frames = [Image.fromarray(np.roll(picture(), 10 * i, 1)) for i in range(3)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    assert cli.encode_main([str(gif)]) == 1
    assert "has 3 frames" in capsys.readouterr().err and not gif.with_suffix(".svdi").exists()
    assert cli.encode_main([str(gif), "--frame", "3"]) == 1
    assert "has no frame 3" in capsys.readouterr().err
    assert cli.encode_main([str(gif), "--frame", "2", "-q", "95"]) == 0
    assert "frame 2 of 3" in capsys.readouterr().err
    decoded = svdcodec.decode(gif.with_suffix(".svdi").read_bytes()).astype(int)
    with Image.open(gif) as im:
        im.seek(2)
        second = np.asarray(im.convert("RGB")).astype(int)
        im.seek(0)
        first = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(decoded - second).mean() < np.abs(decoded - first).mean() / 3


def test_cli_takes_the_photo_of_a_cameras_mpo(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A JPEG with a second picture (a preview, a depth map), which Pillow opens as MPO of 2
    frames: svdi-encode keeps the photo, as Pillow's save does, and says so."""
    photo = Image.fromarray(picture())
    mpo = tmp_path / "phone.jpg"
    photo.save(mpo, "MPO", save_all=True, append_images=[photo.resize((32, 24))], quality=95)
    with Image.open(mpo) as im:
        assert im.format == "MPO" and im.n_frames == 2
    assert cli.encode_main([str(mpo)]) == 0
    assert "first of its 2 MPO pictures" in capsys.readouterr().err
    decoded = svdcodec.decode(mpo.with_suffix(".svdi").read_bytes())
    assert decoded.shape == np.asarray(photo).shape


def test_cli_decode_default_names(tmp_path: Path) -> None:
    """photo.png -> photo.svdi -> photo.svdi.png, never over the photo.png it came from; a float
    image to TIFF, a numpy-only one to .npy."""
    png = tmp_path / "photo.png"
    Image.fromarray(picture()).save(png)
    original = png.read_bytes()
    assert cli.encode_main([str(png), "--quiet"]) == 0
    assert cli.decode_main([str(tmp_path / "photo.svdi"), "--quiet"]) == 0
    assert png.read_bytes() == original and (tmp_path / "photo.svdi.png").exists()
    floats = np.random.default_rng(2).random((9, 11)).astype(np.float32)
    (tmp_path / "f.svdi").write_bytes(svdcodec.encode(floats))
    (tmp_path / "g.svdi").write_bytes(svdcodec.encode(np.dstack([floats, floats])))
    assert cli.decode_main([str(tmp_path / "f.svdi"), str(tmp_path / "g.svdi"),
                            "--quiet", "-j", "1"]) == 0
    with Image.open(tmp_path / "f.svdi.tiff") as im:
        assert im.mode == "F"
        assert np.array_equal(np.asarray(im), svdcodec.decode((tmp_path / "f.svdi").read_bytes()))
    assert np.load(tmp_path / "g.svdi.npy").shape == (9, 11, 2)
    out = tmp_path / "out"
    assert cli.decode_main([str(tmp_path / "photo.svdi"), "-d", str(out), "--quiet"]) == 0
    assert [p.name for p in out.iterdir()] == ["photo.svdi.png"]


def test_icc_frame_claiming_megabytes_is_refused_before_allocating_them() -> None:
    """16 MiB of zeros in a 400-byte frame is not an ICC profile: refused from its header."""
    import tracemalloc

    data = (VECTORS / "rgb_16x16_metadata.svdi").read_bytes()
    bad = MV.replace(data, b"iCCP", lambda p: b"x\0\0" + MV.zero_frame(container.metadata.MAX_ICC))
    assert len(bad) < len(data) + 1000
    tracemalloc.start()
    try:
        with pytest.raises(SvdiError, match="not an ICC profile"):
            svdcodec.decode(bad)
        with pytest.raises(SvdiError, match="not an ICC profile"):
            svdcodec.read_metadata(bad)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 10
