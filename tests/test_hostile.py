"""Hostile input: resource caps hold before anything large is allocated, non-finite numbers are
refused, and every file in tests/regressions/ is handled.

Memory is measured with tracemalloc (numpy and Python allocations; the input itself is allocated
before tracing starts). No timings: a rejected file must simply not allocate.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as container
from svdcodec.format import reader
from support import REGRESSIONS, ROOT, make_vectors, traced_peak

MV = make_vectors()
VECTORS = ROOT / "spec" / "vectors"
#: A rejected input may use this much traced memory beyond its own bytes.
BUDGET = 64 * 1024
REGRESSION_FILES = sorted(REGRESSIONS.glob("*.svdi"))
#: Files only a limit stops (decoded without one they take gigabytes): not in REGRESSIONS,
#: which other tests decode with max_pixels=None.
LIMITS = ROOT / "tests" / "limits"


def vector(name: str) -> bytes:
    return (VECTORS / f"{name}.svdi").read_bytes()


def assert_rejected_cheaply(data: bytes, match: str, **options: Any) -> None:
    error, peak = traced_peak(lambda: svdcodec.decode(data, **options))
    assert isinstance(error, SvdiError), f"expected SvdiError, got {error!r}"
    assert match in str(error)
    assert peak < BUDGET, f"{peak} bytes traced before rejecting: {error}"


def pixel_bomb() -> bytes:
    """L 256x2^20 (268M pixels, 3x Pillow's limit; work exactly MAX_WORK): its U block of 2^28
    int32 zeros would decompress to 1 GiB, from a file of about 33 KB."""
    width, height, rank = 256, 1 << 20, 256
    return b"".join([container.SIGNATURE, MV.head(width, height, 1, 1),
                     MV.plan(0, container.LAYOUT_PLAIN, 0, height, width, rank, 1.0),
                     MV.dense_block(b"SBLK", 0, 0, np.ones(rank, np.float32), MV.FLOAT32),
                     MV.zero_block(b"VBLK", 0, 0, rank, width),
                     MV.zero_block(b"UBLK", 0, 0, rank, height, MV.INT32),
                     MV.chunk(b"IEND", b"")])


# ----------------------------------------------------------------------------- pixels


def test_pixel_limit_checked_before_any_block() -> None:
    data = pixel_bomb()
    assert len(data) < 40_000
    assert Image.MAX_IMAGE_PIXELS is not None  # 256 x 2^20 is over twice the default limit
    assert_rejected_cheaply(data, f"exceeds the limit of {2 * Image.MAX_IMAGE_PIXELS} pixels "
                                  "(twice PIL.Image.MAX_IMAGE_PIXELS)")
    assert_rejected_cheaply(data, "exceeds the limit of 1000 pixels", max_pixels=1000)
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(data))


def test_pillow_parses_no_block_of_a_bomb_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image.open parses a small in-memory file whole (pillow_plugin.PARSED_AT_OPEN_BYTES), but
    not one of a size Pillow's decompression-bomb check, which runs after the plugin's _open,
    refuses: its blocks are not read first (as a larger file's are not)."""
    parsed: list[bytes] = []
    parse_blocks = reader._parse_blocks
    monkeypatch.setattr(reader, "_parse_blocks",
                        lambda kind, *rest: parsed.append(kind) or parse_blocks(kind, *rest))
    with Image.open(io.BytesIO(vector("l_13x7_plain"))):
        assert parsed  # the hook sees an ordinary small file's parse at open
    parsed.clear()
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(pixel_bomb()))
    assert parsed == []


def test_pixel_limit_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    data = vector("l_13x7_plain")  # 91 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 45)  # as Pillow: refused above twice the limit
    assert_rejected_cheaply(data, "13x7 pixels exceeds the limit of 90 pixels")
    assert svdcodec.decode(data, max_pixels=None).shape == (7, 13)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 46)  # above the limit: a warning
    with pytest.warns(Image.DecompressionBombWarning, match="could be a decompression bomb"):
        assert svdcodec.decode(data).shape == (7, 13)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 91)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert svdcodec.decode(data).shape == (7, 13)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert svdcodec.decode(data).shape == (7, 13)


def test_pixel_limit_counts_every_4_channels_as_a_pixel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pixel of Pillow holds at most 4 samples: an image of more channels counts once for
    every 4, so that the limit bounds the samples. A 51 KB file declaring 2^20 x 64 pixels of
    255 channels (67 M pixels, under the limit as pixels) made decode allocate 16 GiB and
    fail with numpy's MemoryError (a reviewer's hostile file, tests/limits)."""
    bomb = (LIMITS / "wide_channels_pixel_count.svdi").read_bytes()
    header, _ = container.read_headers(io.BytesIO(bomb))
    assert (header.width * header.height, header.channels) == (1 << 26, 255)
    assert_rejected_cheaply(bomb, "of 255 channels (counted as 4294967296 pixels, one for every "
                                  "4 channels) exceeds the limit")
    data = svdcodec.encode(np.arange(7 * 13 * 5, dtype=np.uint8).reshape(7, 13, 5))
    assert_rejected_cheaply(data, "13x7 pixels of 5 channels (counted as 182 pixels, one for "
                                  "every 4 channels) exceeds the limit of 181", max_pixels=181)
    assert svdcodec.decode(data, max_pixels=182).shape == (7, 13, 5)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 181)
    with pytest.warns(Image.DecompressionBombWarning, match="counted as 182 pixels"):
        svdcodec.decode(data)
    four = svdcodec.encode(np.zeros((7, 13, 4), np.uint8))
    assert svdcodec.decode(four, max_pixels=91).shape == (7, 13, 4)


# ----------------------------------------------------------------------------- work


def test_work_bomb_rejected_cheaply() -> None:
    data = (REGRESSIONS / "work_bomb.svdi").read_bytes()
    assert len(data) < 20_000
    header = struct.unpack_from(">HII", data, 16)
    assert Image.MAX_IMAGE_PIXELS is not None
    assert header[1:] == (65535, 1365) and 65535 * 1365 <= Image.MAX_IMAGE_PIXELS
    assert_rejected_cheaply(data, f"exceeds the limit {container.MAX_WORK}")
    # Image.open refuses it too, before load() would allocate a 358 MB image.
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(data))


def test_work_cap_is_the_boundary() -> None:
    """Rank 192 fits MAX_WORK (4 * 65535 * 1365 * 192 <= 2^36), rank 193 does not."""
    assert 4 * 65535 * 1365 * 192 <= container.MAX_WORK < 4 * 65535 * 1365 * 193
    header, planes = container.read_headers(io.BytesIO(MV.work_bomb(192)))
    assert [p.rank for p in planes] == [192] * 4
    with pytest.raises(SvdiError, match="reconstruction work"):
        container.read_headers(io.BytesIO(MV.work_bomb(193)))


# ----------------------------------------------------------------------------- sizes


def _field(kind: bytes, fmt: struct.Struct, offset: int = 0, **changes: Any
           ) -> Callable[[bytes], bytes]:
    return lambda data: MV.replace(data, kind, MV.patch_struct(fmt, offset, **changes))


BLOCK = container.BLOCK_RECORD.size
SIZES: dict[str, tuple[str, Callable[[bytes], bytes], str]] = {
    "rank beyond MAX_RANK": ("l_13x7_plain", lambda d: MV.replace(
        MV.replace(d, b"HEAD", MV.patch_struct(container.HEAD_RECORD, f1=8192, f2=8192)), b"PLAN",
        MV.patch_struct(container.PLAN_RECORD, f3=8192, f4=8192, f5=container.MAX_RANK + 1)),
        "rank 4097 exceeds min(8192, 8192, 4096)"),
    "rank beyond the patch matrix": ("rgb_16x16_patch8", _field(b"PLAN", container.PLAN_RECORD, f5=5),
                                     "rank 5 exceeds min(4, 64"),
    "dense element count": ("l_13x7_plain", _field(b"UBLK", container.DENSE_RECORD, BLOCK, f2=2**32 - 1),
                            "declares 4294967295 elements"),
    "sparse symbol count": ("l_13x7_plain", lambda d: MV.replace(
        d, b"UBLK", MV.patch_struct(container.SPARSE_RECORD, BLOCK, f1=2**32 - 1), nth=-1), "stream sizes"),
    "sparse escape count": ("l_13x7_plain", lambda d: MV.replace(
        d, b"VBLK", MV.patch_struct(container.SPARSE_RECORD, BLOCK, f3=2**31), nth=-1), "stream sizes"),
    "component count": ("l_13x7_plain", _field(b"UBLK", container.BLOCK_RECORD, f2=2**32 - 1),
                        "out of order or past rank 3"),
    "chunk length": ("l_13x7_plain", lambda d: d[:8] + b"\xff\xff\xff\xf0" + d[12:],
                     "HEAD chunk of 4294967280 bytes at byte 8 exceeds the chunk limit"),
    "plane count": ("l_13x7_plain", _field(b"HEAD", container.HEAD_RECORD, f7=200),
                    "invalid channel count 1 with 200 planes"),
    "zstd frame of unknown size": ("l_13x7_plain", lambda d: MV.replace(
        d, b"UBLK", lambda p: p[:BLOCK + container.DENSE_RECORD.size] + struct.pack("<IBB", 0xFD2FB528, 0, 0x50)
        + p[BLOCK + container.DENSE_RECORD.size + 13:]), "zstd frame declares -1 bytes"),
    "zstd blocks beyond the declared size": ("l_13x7_plain", lambda d: MV.replace(
        d, b"UBLK", lambda p: p[:BLOCK + container.DENSE_RECORD.size] + MV.zero_frame(1 << 24)[:13]
        .replace(struct.pack("<Q", 1 << 24), struct.pack("<Q", 7)) + MV.zero_frame(1 << 24)[13:]),
        "invalid zstd block"),  # an RLE block of 128 KiB in a window of 7 bytes
}


@pytest.mark.parametrize("case", sorted(SIZES))
def test_sizes_that_do_not_fit(case: str) -> None:
    base, edit, match = SIZES[case]
    assert_rejected_cheaply(edit(vector(base)), match)


def test_terabyte_zstd_frame() -> None:
    data = (REGRESSIONS / "zstd_1tb_frame.svdi").read_bytes()
    assert_rejected_cheaply(data, f"zstd frame declares {1 << 40} bytes")


# ----------------------------------------------------------------------------- non-finite


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, 0.0, -1.0])
def test_singular_values_must_be_finite_and_positive(value: float) -> None:
    data = MV.replace(vector("l_13x7_plain"), b"SBLK", lambda p: MV._sigma_payload(p, value))
    assert_rejected_cheaply(data, "singular values must be finite and positive")


@pytest.mark.parametrize("case", ["step 1e30", "sigma 1e-45", "F scale 1e300"])
def test_overflow_is_an_error_not_a_warning(case: str) -> None:
    base = vector("f_5x4_plain")
    data = {"step 1e30": lambda: MV.replace(base, b"PLAN", MV.patch_struct(container.PLAN_RECORD, f6=1e30)),
            "sigma 1e-45": lambda: MV.replace(base, b"SBLK",
                                              lambda p: MV._sigma_payload(p, 1e-45)),
            "F scale 1e300": lambda: MV.replace(base, b"HEAD",
                                                MV.patch_struct(container.HEAD_RECORD, f8=1e300))}[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(SvdiError, match="overflow"):
            svdcodec.decode(data)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_encode_refuses_non_finite_floats(value: float, dtype: type) -> None:
    pixels: np.ndarray = np.linspace(0, 1, 30, dtype=dtype).reshape(5, 6)
    pixels[2, 3] = value
    with pytest.raises(SvdiError, match="NaN or infinity"):
        svdcodec.encode(pixels)
    with pytest.raises(SvdiError, match="NaN or infinity"):
        Image.fromarray(pixels.astype(np.float32), "F").save(io.BytesIO(), format="SVDI")


def test_singular_values_of_a_huge_adapted_plane_read_v_alone() -> None:
    """svdi-info and stored_spectrum read no pixel limit (a file of any size is described):
    the σ they print of a patch plane come from V alone. An 8 KB file declaring a 32768²
    adapted plane (version 6, K = 2) made svdi-info build the plane's map from all of U:
    5 GB; at 65536², 21 GB (a reviewer's hostile file, tests/limits)."""
    data = (LIMITS / "adapted_map_info_bomb.svdi").read_bytes()
    from svdcodec.cli.info import info_report
    for call in (lambda: info_report("bomb.svdi", data), lambda: svdcodec.stored_spectrum(data)):
        error, peak = traced_peak(call)
        assert error is None and peak < 4 * 1024 * 1024, (error, peak)
    (plane,) = container.unpack(data).planes
    assert plane.adapted and plane.height * plane.width == 1 << 30


# ----------------------------------------------------------------------------- regressions


def test_unknown_ancillary_chunks_cost_no_memory_each() -> None:
    """A reader skips ancillary chunks it does not know: a file of 100,000 of them (1.2 MB
    for a 1 x 1 image) decodes with little memory beyond its bytes, on either kernel path (the
    compiled chunk table lists only the chunks the reader parses)."""
    from support import kernels

    pixel = svdcodec.encode(np.zeros((1, 1), np.uint8))
    at = len(container.SIGNATURE) + 12 + struct.unpack(">I", pixel[8:12])[0]  # after HEAD
    data = pixel[:at] + MV.chunk(b"zzZz", b"") * 100_000 + pixel[at:]
    for on in (True, False):
        with kernels(on):
            error, peak = traced_peak(lambda: svdcodec.decode(data))
        assert error is None and peak < 1 << 20, (on, peak)


def test_regression_files_exist() -> None:
    names = {p.name for p in REGRESSION_FILES}
    assert {"work_bomb.svdi", "zstd_1tb_frame.svdi"} <= names


@pytest.mark.parametrize("path", REGRESSION_FILES, ids=[p.name for p in REGRESSION_FILES])
def test_regression_file(path: Path) -> None:
    """Each file once crashed or exhausted something: now SvdiError, or a sane decode."""
    data = path.read_bytes()
    try:
        pixels: np.ndarray = svdcodec.decode(data)
    except SvdiError:
        pass
    else:
        header, _ = container.read_headers(io.BytesIO(data))
        assert pixels.shape[:2] == (header.height, header.width)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, Image.DecompressionBombError):
        pass


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_many_residual_blocks_cost_a_few_bytes_each(kernels: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of 20,000 one-row residual blocks: the reader keeps each as a row of its
    residual table (where its chunk lies, its channel, reference and rows: 26 bytes) and the
    compiled chunk table gives the run of RBLK chunks as one row of positions (16 bytes a
    chunk), so parsing and decoding it peak at under 64 bytes a block (measured: 44 and 49;
    510 and about 600 before the table, 794 before the chunk table let its rows go), on both
    paths, with the pixels of the reference decoder."""
    from svdcodec.cli.info import info_report
    from svdcodec.decoder.reference import decode_reference
    from svdcodec.format import NO_REFERENCE

    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    height = 20_000
    q = np.random.default_rng(3).integers(-3, 4, height)
    one = [MV.rblk(0, NO_REFERENCE, y, np.full((1, 1), q[y], np.int64), 1.0, 0.0, MV.INT8, 0)
           for y in range(height)]
    data = b"".join([container.SIGNATURE, MV.head(1, height, 1, 1, version=2),
                     MV.plan_v2(0, container.LAYOUT_PLAIN, 0, height, 1, 0, 1.0, 0), *one,
                     MV.chunk(b"IEND", b"")])
    for call in (lambda: container.unpack(data), lambda: svdcodec.decode(data)):
        error, peak = traced_peak(call)
        assert error is None and peak < 64 * height, peak / height
    # svdi-info's summary (without --json or --verbose) reads the records at once: no object
    # a block (measured: 116 bytes a block at the peak, the parse's included; 594 listing each)
    error, peak = traced_peak(lambda: info_report("x.svdi", data, residual_blocks=False))
    assert error is None and peak < 160 * height, peak / height
    chunks = sum(len(chunk) for chunk in one)
    assert info_report("x.svdi", data, residual_blocks=False)["residual_channels"] == [
        {"channel": 0, "blocks": height, "bytes": chunks, "max_error": 0.0, "step": 1.0,
         "reference": None}]
    pixels = svdcodec.decode(data)
    np.testing.assert_array_equal(pixels, decode_reference(data))
    assert np.unique(pixels).tolist() == [0, 1, 2, 3]  # q of -3..3 on a layer of 0
