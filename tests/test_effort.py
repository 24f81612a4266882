"""encode(effort=2): U's integers chosen by rate and distortion (codec.quantize.optimise_levels)
and the kept factor blocks compressed again at a slower zstd level (format/recompress.py: same
pixels, never a larger file, every other chunk as it was)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image
from support import photo

import svdcodec
from svdcodec import SvdiError, cli
from svdcodec import format as container
from svdcodec.decoder.reference import decode_reference
from svdcodec.evaluation.metrics import psnr
from svdcodec.format import FACTOR_CHUNKS
from svdcodec.format.recompress import recompress_blocks


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    out, at = [], 8
    while at < len(data):
        (n,) = struct.unpack_from(">I", data, at)
        out.append((data[at + 4:at + 8], data[at + 8:at + 8 + n]))
        at += 12 + n
    return out


FACTOR_TYPES = set(FACTOR_CHUNKS.values())


@pytest.mark.parametrize("pixels, options", [
    (photo(96, 128, 3), {}),                                    # Y'CbCr, patch layouts
    (photo(96, 128, 3), {"quality": 20}),                       # subsampled chroma
    (photo(64, 80, 4), {"max_error": 2}),                       # residual blocks (version 2)
    (photo(64, 80, 1), {"layout": "plain", "centre": True}),    # MEAN chunk
    ((photo(48, 64, 3).astype(np.uint16) * 257), {}),           # 16-bit Y'CbCr (version 3)
    (photo(60, 70, 1).astype(np.float32) / 7, {"quality": 90}),
])
def test_recompressing_decodes_to_the_same_pixels_from_no_more_bytes(
        pixels: np.ndarray, options: dict[str, object]) -> None:
    fast = svdcodec.encode(pixels, **options)
    small = recompress_blocks(fast, 15)
    assert len(small) <= len(fast)
    decoded = svdcodec.decode(small)
    np.testing.assert_array_equal(decoded, svdcodec.decode(fast))
    np.testing.assert_array_equal(decode_reference(small), decoded)
    a, b = chunks(fast), chunks(small)
    assert [k for k, _ in a] == [k for k, _ in b]
    # Only factor blocks' frames change; their descriptors, every other chunk stay.
    for (kind, old), (_, new) in zip(a, b):
        if kind not in FACTOR_TYPES:
            assert old == new, kind
        else:
            assert len(new) <= len(old)


def test_effort_2_is_smaller_on_a_photo() -> None:
    """The reason for the option: level 15 is smaller than level 1 on photo-like factors, and
    the optimised levels smaller again for a little more error."""
    pixels = photo(192, 256, 3)
    fast = svdcodec.encode(pixels)
    recompressed = recompress_blocks(fast, 15)
    small = svdcodec.encode(pixels, effort=2)
    assert len(small) < 0.99 * len(recompressed) < 0.99 * len(fast)
    assert psnr(pixels, svdcodec.decode(small)) > psnr(pixels, svdcodec.decode(fast)) - 0.3
    np.testing.assert_array_equal(decode_reference(small), svdcodec.decode(small))


def test_recompressing_twice_changes_nothing() -> None:
    once = recompress_blocks(svdcodec.encode(photo(64, 64, 3)), 15)
    assert recompress_blocks(once, 15) == once


def test_effort_2_keeps_metadata_and_a_byte_budget() -> None:
    pixels = photo(96, 96, 3)
    data = svdcodec.encode(pixels, effort=2, max_bytes=3000, text={"a": "b"})
    assert len(data) <= 3000
    assert svdcodec.read_metadata(data)["text"] == {"a": "b"}


@pytest.mark.parametrize("effort", [0, 3, 1.5, "2", True, 2.0, 1.0, np.float64(2)])
def test_an_unknown_effort_is_refused(effort: object) -> None:
    """effort is an integer choice, as rank is an integer: 2.0 is refused as rank=2.0 is
    (it was taken as 2), and by the Pillow plugin and svdi-encode (--effort 2.0) alike."""
    with pytest.raises(SvdiError, match="effort must be one of 1, 2"):
        svdcodec.encode(photo(8, 8, 3), effort=effort)  # type: ignore[arg-type]
    with pytest.raises(SvdiError, match="effort must be one of 1, 2"):
        Image.fromarray(photo(8, 8, 3)).save(io.BytesIO(), "SVDI", effort=effort)


def test_effort_takes_numpy_integers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    image = photo(16, 24, 3)
    assert svdcodec.encode(image, effort=np.int64(2)) == svdcodec.encode(image, effort=2)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert cli.encode_main([str(tmp_path / "in.png"), "--effort", "2.0", "-f"]) == 2


def test_pillow_save_and_the_cli_take_effort(tmp_path) -> None:  # type: ignore[no-untyped-def]
    image = Image.fromarray(photo(96, 128, 3))
    buf = io.BytesIO()
    image.save(buf, format="SVDI", effort=2)
    assert buf.getvalue() == svdcodec.encode(np.asarray(image), effort=2)
    image.save(tmp_path / "in.png")
    assert cli.encode_main([str(tmp_path / "in.png"), "--effort", "2", "--quiet"]) == 0
    assert (tmp_path / "in.svdi").read_bytes() == buf.getvalue()
    assert cli.encode_main([str(tmp_path / "in.png"), "--effort", "3", "-f"]) == 2


def test_the_cli_turns_the_deblocking_filter_on_and_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """By default and with --deblock the CLI writes what encode() and encode(deblock=True)
    write (a filtered plane on a photo); --no-deblock what encode(deblock=False) writes."""
    pixels = photo(96, 128, 3)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    for flags in ([], ["--deblock"]):
        assert cli.encode_main([str(tmp_path / "in.png"), *flags, "-f", "--quiet"]) == 0
        data = (tmp_path / "in.svdi").read_bytes()
        assert data == svdcodec.encode(pixels) == svdcodec.encode(pixels, deblock=True)
        assert any(p.filtered for p in container.unpack(data).planes)
    assert cli.encode_main([str(tmp_path / "in.png"), "--no-deblock", "-f", "--quiet"]) == 0
    plain = (tmp_path / "in.svdi").read_bytes()
    assert plain == svdcodec.encode(pixels, deblock=False)
    assert not any(p.filtered for p in container.unpack(plain).planes)
