"""Decoding band by band into a sink (decoder.stream): the Pillow plugin's load() and
svdcodec.decode give the whole-array path's pixels in every mode, at band edges, in threads;
the files left to the whole-array path take it; a file refused from its blocks is refused before
Pillow allocates the image."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image
from support import NEEDS_KERNELS, compiled_kernels, photo
from support import kernels as kernels_on

import svdcodec
from svdcodec import SvdiError, pillow_plugin
from svdcodec import format as container
from svdcodec.codec import coding
from svdcodec.decoder import factors, stream
from svdcodec.decoder import plane as plane_module
from svdcodec.decoder.render import OutputPlan
from svdcodec.encoder import schedule
from svdcodec.runtime import band_sizes, kernels


@pytest.fixture(autouse=True)
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few rows, in threads even for these small images: many band edges, chroma
    rows shared between bands, bands finishing out of order. The band renderer's bands of
    exact files (EXACT_BAND_PIXELS, no fewest rows) are not the whole-array path's, so that
    every comparison with it also checks that their pixels do not depend on the bands."""
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 2048)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 8)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1000)
    # held sparse blocks in many pieces, whose edges fall inside bands
    monkeypatch.setattr(band_sizes, "CHECKPOINT_ROWS", 16)
    monkeypatch.setattr(band_sizes, "PIECE_BYTES", 64)
    monkeypatch.setattr(band_sizes, "SERIAL_SAMPLES", 0)
    monkeypatch.setattr(band_sizes, "ENCODE_SERIAL_SAMPLES", 0)


def gradient16(h: int, w: int, channels: int) -> np.ndarray:
    return (photo(h, w, channels, seed=3).astype(np.uint16) * 257
            + np.arange(w, dtype=np.uint16)[None, :, None] % 200)


#: name -> (image, encode options, whether load() renders it band by band).
CASES: dict[str, tuple[Callable[[], np.ndarray], dict[str, Any], bool]] = {
    "RGB even": (lambda: photo(96, 130, 3), {}, True),
    "RGB odd": (lambda: photo(97, 131, 3, seed=1), {}, True),
    "RGB one row": (lambda: photo(1, 70, 3), {}, True),
    "RGB plain": (lambda: photo(64, 90, 3), {"layout": "plain"}, True),
    "RGB centred": (lambda: photo(72, 100, 3), {"centre": True}, True),
    "RGB q95": (lambda: photo(80, 120, 3, seed=2), {"quality": 95}, True),
    "RGBA": (lambda: photo(90, 120, 4), {"exact_alpha": False}, True),
    "RGBA odd": (lambda: photo(45, 67, 4), {"exact_alpha": False}, True),
    "RGBA exact alpha": (lambda: photo(90, 120, 4), {}, False),  # a residual: version 2
    "L": (lambda: photo(101, 77, 1)[:, :, 0], {}, True),
    "LA": (lambda: photo(64, 90, 2), {"exact_alpha": False}, True),
    "LA exact alpha": (lambda: photo(64, 90, 2), {}, False),
    "I;16": (lambda: gradient16(70, 90, 1)[:, :, 0], {}, True),
    "16-bit RGB": (lambda: gradient16(66, 95, 3), {}, True),
    "16-bit RGBA": (lambda: gradient16(50, 64, 4), {"exact_alpha": False}, True),
    "F": (lambda: photo(40, 50, 1)[:, :, 0].astype(np.float32) / 7, {}, False),
    "version 2 residuals": (lambda: photo(60, 80, 3), {"max_error": 0}, False),
    "version 2 L": (lambda: photo(60, 80, 1)[:, :, 0], {"max_error": 2}, False),
    # the filter fused into the bands (stream.EdgeSeams), but not with a residual
    "version 4 deblocking": (lambda: photo(96, 128, 3), {"deblock": True, "quality": 40},
                             True),
    "version 4 deblocking odd": (lambda: photo(97, 127, 3), {"deblock": True, "quality": 40},
                                 True),
    "version 4 deblocking L": (lambda: photo(96, 128, 1)[:, :, 0],
                               {"deblock": True, "quality": 40}, True),
    "version 4 deblocking RGBA": (lambda: photo(96, 128, 4),
                                  {"deblock": True, "quality": 40, "exact_alpha": False}, True),
    "version 4 deblocking and residuals": (lambda: photo(60, 80, 3),
                                           {"deblock": True, "max_error": 2}, False),
}


def whole_array(data: bytes, monkeypatch: pytest.MonkeyPatch, **options: Any) -> np.ndarray:
    """svdcodec.decode by the whole-array path (render_image's plane-by-plane render)."""
    with monkeypatch.context() as m:
        m.setattr(stream.BandRenderer, "prepare", classmethod(lambda cls, *a, **k: None))
        return svdcodec.decode(data, **options)


def as_opened(pixels: np.ndarray) -> np.ndarray:
    """The decoded array as Pillow holds it: 16-bit RGB(A) at 8 bits."""
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return pillow_plugin.to_8_bits(pixels)
    return pixels


def load_spied(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, bool]:
    """Image.open(...).load() as an array, and whether it rendered band by band."""
    ran: list[bool] = []
    run = stream.BandRenderer.run

    def spy(self: stream.BandRenderer, *args: Any, **kwargs: Any) -> None:
        ran.append(True)
        run(self, *args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(stream.BandRenderer, "run", spy)
        with (pytest.warns(pillow_plugin.ReducedDepthWarning) if is_wide_rgb(data)
              else contextlib.nullcontext()):
            im = Image.open(io.BytesIO(data))
        im.load()
    return np.asarray(im), bool(ran)


def is_wide_rgb(data: bytes) -> bool:
    header = container.read_headers(io.BytesIO(data))[0]
    return header.dtype == np.uint16 and header.channels >= 3


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("name", list(CASES))
def test_pillow_and_decode_give_the_whole_array_pixels(name: str, compiled: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make, options, banded = CASES[name]
    data = svdcodec.encode(make(), **options)
    with kernels_on(compiled):
        if compiled and kernels.get() is None:
            pytest.skip("no compiled kernels")
        expected = whole_array(data, monkeypatch)
        np.testing.assert_array_equal(svdcodec.decode(data), expected)
        loaded, ran = load_spied(data, monkeypatch)
    assert ran == banded
    np.testing.assert_array_equal(loaded, as_opened(expected))


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_previews_and_thread_counts_agree(compiled: bool,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = svdcodec.encode(photo(88, 120, 4, seed=5), exact_alpha=False)
    with kernels_on(compiled):
        for components in (0, 1, 3):
            np.testing.assert_array_equal(
                svdcodec.decode(data, components=components),
                whole_array(data, monkeypatch, components=components))
        expected = whole_array(data, monkeypatch)
        for threads in (1, 2, 3):
            with svdcodec.threads(threads):
                np.testing.assert_array_equal(load_spied(data, monkeypatch)[0], expected)


#: Target pixels of the exact files' bands: one row (or patch row) a band, bands of a few
#: rows that cut the whole-array path's bands anywhere, and one band for the whole image.
EXACT_BAND_SIZES = (1, 1000, 1 << 20)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[2]])
def test_exact_files_give_the_same_pixels_in_any_band(name: str, compiled: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every plane the encoder writes is exact (format version 5): an integer product,
    the same bits in a band of any height, so the Pillow plugin's (lean) band renderer cuts
    these files in bands of EXACT_BAND_PIXELS, not the whole-array path's: load() gives that
    path's pixels (in its own bands) whatever that size, and so does decode(), which keeps
    the whole-array path's bands."""
    make, options, _ = CASES[name]
    image = make()
    data = svdcodec.encode(image, **options)
    assert all(p.exact for p in container.unpack(data).planes)
    with kernels_on(compiled):
        if compiled and kernels.get() is None:
            pytest.skip("no compiled kernels")
        expected = whole_array(data, monkeypatch)
        counts = []
        for size in EXACT_BAND_SIZES:
            monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", size)
            with svdcodec.threads(1):  # (one band is not split into a band per thread)
                renderer = stream.BandRenderer.prepare(container.unpack(data), lean=True)
                default = stream.BandRenderer.prepare(container.unpack(data))
            assert renderer is not None
            counts.append(len(renderer.bands))
            assert default is not None
            if default.seams is None:
                assert default.bands == OutputPlan.of(container.unpack(data), None).bands
            else:  # the filter's bands: cut at multiples of every edge period
                assert all(y0 % default.seams.unit == 0 for y0, _ in default.bands)
            np.testing.assert_array_equal(svdcodec.decode(data), expected)
            np.testing.assert_array_equal(load_spied(data, monkeypatch)[0], as_opened(expected))
    filtered = renderer.seams is not None  # bands of whole edge periods: fewer, small ones
    assert counts[-1] == 1 and (counts[0] > counts[1] > 1 or image.shape[0] <= 16
                                or filtered and counts[0] >= counts[1] > 1), counts


@pytest.mark.parametrize("piece_bytes", [1, 64, 1 << 20])
def test_held_streams_are_dropped_piece_by_piece(piece_bytes: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The band renderer hands back the pages of each held sparse block of a left factor
    piece by piece, once every band that reads a piece (and those before it) is done: by the
    last band every piece is gone, and the pixels are the whole-array path's wherever the
    pieces' edges fall (one checkpoint a piece, a few); a block of at most PIECE_BYTES is
    held as it is. The pages are handed back, not only unmapped: they read as zeros after
    (a shared mapping's would still hold the streams, the system keeping them)."""
    monkeypatch.setattr(band_sizes, "PIECE_BYTES", piece_bytes)
    data = svdcodec.encode(photo(200, 300, 3, seed=4))  # streams of several pages
    expected = whole_array(data, monkeypatch)
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        renderer = stream.BandRenderer.prepare(container.unpack(data), lean=True)
        assert renderer is not None
        held = [streams for rows in [*renderer.full.values(),
                                     *(kept.rows for kept in renderer.chroma.values())]
                for _, _, streams in rows.u if isinstance(streams, factors.SparsePieces)]
        dropped: list[tuple[int, int]] = []
        held_before: list[bool] = []  # whether each dropped span held a non-zero byte

        class Recorded:  # the mapping, its madvise calls recorded
            def __init__(self, pages: Any) -> None:
                self.pages = pages

            def madvise(self, option: int, start: int, length: int) -> None:
                dropped.append((start, length))
                held_before.append(any(self.pages[start:start + length]))
                self.pages.madvise(option, start, length)
                assert not any(self.pages[start:start + length])
        if piece_bytes >= 1 << 20:
            assert not held
        else:
            assert held and all(p.live == 0 and len(p.rows) > 2 for p in held)
            for p in held:
                p.pages = Recorded(p.pages)
        out = np.empty_like(expected)
        renderer.run(stream.ArraySink(out))
        assert all(p.live == len(p.rows) for p in held)
        assert bool(dropped) == bool(held) and any(held_before) == bool(held)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("piece_bytes", [1, 5, 100, 1 << 18])
def test_pieces_start_at_the_first_checkpoint_past_piece_bytes(
        piece_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A held block's pieces (`SparsePieces`): a new piece at each first checkpoint inside the
    rows whose symbols start PIECE_BYTES or more past the last piece's, and each band reads
    the pieces its matrix rows overlap (empty bands and rows past the last checkpoint too)."""
    monkeypatch.setattr(band_sizes, "PIECE_BYTES", piece_bytes)
    rng = np.random.default_rng(piece_bytes)
    for _ in range(60):
        every = int(rng.choice([1, 4, 256]))
        rows = int(rng.integers(0, 2000))
        checkpoints = rows // every + 1 - int(rng.integers(0, 2))  # the last may be missing
        steps = rng.integers(0, int(rng.choice([3, 60, 40000])), max(checkpoints - 1, 0))
        starts = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)
        escapes = np.zeros(len(starts), np.int64)
        streams = (np.zeros(int(starts[-1]) + 1, np.uint8), np.zeros(3, np.int16),
                   np.zeros(2, np.int16), starts, escapes, escapes, every)
        cuts = sorted({0, rows, *(int(r) for r in rng.integers(0, rows + 1, 6))})
        bands = [*itertools.pairwise(cuts), (rows // 2, rows // 2)]
        pieces = factors.SparsePieces(rows, streams, bands)
        expected, last = [0], 0
        for k in range(1, len(starts)):
            if k * every < rows and starts[k] - starts[last] >= piece_bytes:
                expected.append(k)
                last = k
        assert [q0 for q0, _ in pieces.rows] == [k * every for k in expected]
        assert pieces.rows[-1][1] == rows
        for band, (r0, r1) in enumerate(bands):
            assert list(pieces.uses[band]) == [j for j, (q0, q1) in enumerate(pieces.rows)
                                               if r0 < q1 and q0 < r1]
        assert pieces.left == [sum(j in used for used in pieces.uses)
                               for j in range(len(pieces.rows))]


def test_files_of_float_products_keep_the_whole_array_paths_bands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Version 1 planes are binary32 BLAS products, whose rows may round differently in a
    band of another height: the band renderer keeps the whole-array path's bands for them,
    to the row, whatever EXACT_BAND_PIXELS is, and so its pixels."""
    from support import ROOT

    data = (ROOT / "spec" / "vectors" / "rgb_16x16_sub_patch4.svdi").read_bytes()
    unpacked = container.unpack(data)
    assert unpacked.header.version == 1 and not any(p.exact for p in unpacked.planes)
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 16)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 1)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1)
    renderer = stream.BandRenderer.prepare(unpacked, lean=True)
    assert renderer is not None
    assert renderer.bands == OutputPlan.of(unpacked, None).bands
    assert len(renderer.bands) > 1
    np.testing.assert_array_equal(svdcodec.decode(data), whole_array(data, monkeypatch))


def test_draft_and_reduce_still_decode_reduced(monkeypatch: pytest.MonkeyPatch) -> None:
    data = svdcodec.encode(photo(96, 128, 3))
    im = Image.open(io.BytesIO(data))
    im.draft("RGB", (32, 24))  # a quarter of 128 x 96
    im.load()
    np.testing.assert_array_equal(np.asarray(im), svdcodec.decode(data, reduce=4))
    reduced = Image.open(io.BytesIO(data)).reduce(2)
    np.testing.assert_array_equal(np.asarray(reduced), svdcodec.decode(data, reduce=2))


def chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, payload length) of every chunk."""
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((pos, data[pos + 4:pos + 8], length))
        pos += 12 + length
    return out


def with_payload_byte_flipped(data: bytes, at: int, offset: int) -> bytes:
    """The file with one byte of the chunk at `at` flipped and its CRC made right again."""
    (length,) = struct.unpack_from(">I", data, at)
    out = bytearray(data)
    out[at + 8 + offset] ^= 0x5A
    crc = zlib.crc32(bytes(out[at + 8:at + 8 + length]), zlib.crc32(bytes(out[at + 4:at + 8])))
    struct.pack_into(">I", out, at + 8 + length, crc)
    return bytes(out)


#: Errors found reading a block whole (decompressing and indexing it), which load() finds
#: before Pillow allocates the image; values that break a rule inside a well-formed stream
#: (a component beyond the block, an overflow) are found as the bands are rendered.
FOUND_BEFORE_ALLOCATION = ("corrupt zstd data", "row ends do not match")


def test_broken_blocks_refused_before_the_image_is_allocated(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Damage inside a factor block's compressed data (the chunk's CRC made right, so only
    decoding the block finds it) is refused by load() as OSError("broken SVDI file: ...") with
    decode's message; when reading the block finds it, Pillow never allocates the image."""
    data = svdcodec.encode(photo(96, 130, 3))
    # The U blocks, largest first, every byte from the end until both kinds of damage were
    # seen (which bytes give which depends on the encoder's choices for this image).
    blocks = sorted((c for c in chunks(data) if c[1] == b"UBLK"), key=lambda c: -c[2])
    damage = ((start, offset) for start, _, size in blocks for offset in range(size - 1, 0, -1))
    allocated: list[tuple[str, tuple[int, int]]] = []
    new, map_buffer = Image.core.new, Image.core.map_buffer

    def counting_new(mode: str, size: tuple[int, int]) -> Any:
        allocated.append((mode, size))
        return new(mode, size)

    def counting_map(data: Any, size: tuple[int, int], *args: Any) -> Any:
        allocated.append(("mapped", size))
        return map_buffer(data, size, *args)
    monkeypatch.setattr(Image.core, "new", counting_new)
    monkeypatch.setattr(Image.core, "map_buffer", counting_map)
    before = later = 0
    for start, offset in damage:
        if before >= 3 and later >= 1:
            break
        damaged = with_payload_byte_flipped(data, start, offset)
        try:
            svdcodec.decode(damaged)
            continue  # this byte changes samples, not the stream's validity
        except SvdiError as exc:
            message = str(exc)
        im = Image.open(io.BytesIO(damaged))  # the descriptors are intact
        allocated.clear()
        with pytest.raises(OSError, match="broken SVDI file: ") as raised:
            im.load()
        assert message in str(raised.value)
        if any(found in message for found in FOUND_BEFORE_ALLOCATION):
            assert allocated == []
            before += 1
        else:
            later += 1
    assert before >= 3 and later >= 1


def test_band_sink_copies_each_band_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Pillow sink (of the modes Pillow's image is not mapped for) takes every band
    exactly once, in rows that tile the image."""
    data = svdcodec.encode(photo(70, 90, 2), exact_alpha=False)
    rows: list[tuple[int, int]] = []
    put = pillow_plugin.PillowBands.put

    def spy(self: pillow_plugin.PillowBands, y0: int, y1: int, band: np.ndarray) -> None:
        rows.append((y0, y1))
        put(self, y0, y1, band)
    monkeypatch.setattr(pillow_plugin.PillowBands, "put", spy)
    Image.open(io.BytesIO(data)).load()
    rows.sort()
    assert len(rows) >= 3 and rows[0][0] == 0 and rows[-1][1] == 70
    assert all(a[1] == b[0] for a, b in itertools.pairwise(rows))


@pytest.mark.parametrize("large", [False, True], ids=["", "large"])
@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "band buffers"])
def test_luma_left_factor_is_made_in_the_bands_rows(mapped: bool, large: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """On the lean fused filter's bands (an 8-bit RGB file with the deblocking filter, several
    bands), Y''s left factor of every band is made in the band's own rows (of the mapped
    image, or of the band buffer the Pillow sink copies), never in a thread's buffer
    (`EdgeSeams.left_in_band`); the chroma rows of an output band that two chroma bands hold
    go to the kernels as two pieces, not joined (`ChromaRows.pieces`), and a large image's
    chroma bands are cut inside every output band's rows; the pixels are the whole-array
    path's."""
    if not mapped:
        monkeypatch.setattr(band_sizes, "MAPPED_BYTES", 0)
    if large:
        monkeypatch.setattr(band_sizes, "LARGE_IMAGE_PIXELS", 0)
    split: list[bool] = []
    pieces = stream.ChromaRows.pieces

    def spy_pieces(self: stream.ChromaRows, lo: int, hi: int
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        got = pieces(self, lo, hi)
        split.append(got[1] is not None)
        return got
    monkeypatch.setattr(stream.ChromaRows, "pieces", spy_pieces)
    every: list[int] = []  # staggered_bands' cuts: in every output band's rows, or every second's
    staggered = stream.staggered_bands

    def spy_bands(*args: Any) -> list[tuple[int, int]]:
        every.append(args[3] if len(args) > 3 else 2)
        return staggered(*args)
    monkeypatch.setattr(stream, "staggered_bands", spy_bands)
    data = svdcodec.encode(photo(96, 128, 3), deblock=True, quality=40)
    expected = whole_array(data, monkeypatch)
    in_band: list[bool] = []
    left_memory = plane_module.PlaneReconstructor._left_memory

    def spy(self: plane_module.PlaneReconstructor, rows: int,
            memory: np.ndarray | None) -> np.ndarray:
        left = left_memory(self, rows, memory)
        if self.plane.index == 0:
            in_band.append(memory is not None and np.shares_memory(left, memory))
        return left
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        monkeypatch.setattr(plane_module.PlaneReconstructor, "_left_memory", spy)
        pixels, banded = load_spied(data, monkeypatch)
    assert banded and len(in_band) > 2 and all(in_band)
    assert any(split) and every == [1 if large else 2] * 2
    np.testing.assert_array_equal(pixels, expected)


#: Files the band renderer takes, and two more whose planes are not all whole
SPLIT_CASES = {name: case for name, case in CASES.items() if case[2]} | {
    "version 6 restoration": (lambda: photo(96, 128, 3), {"restore": True, "quality": 40},
                              True),
    "version 6 aq": (lambda: photo(96, 128, 3), {"aq": True, "quality": 40}, True),
}


@pytest.mark.parametrize("name", list(SPLIT_CASES))
def test_one_band_images_split_into_a_band_per_thread(name: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An image of one band (a small photo's) whose planes are all whole (exact planes of a
    patch layout; an adapted plane's when its map's components are decoded, spec §5.5) is
    set up as one job a plane and rendered in a band per thread (`stream.whole_jobs`); the
    pixels of `decode`, of a preview and of Pillow's `load()` are the whole-array path's and
    one thread's. Files of other planes keep one band, and so does a preview of fewer
    components than an adapted plane's map reads."""
    make, options, _ = SPLIT_CASES[name]
    data = svdcodec.encode(make(), **options)
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 20)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1 << 20)
    expected = whole_array(data, monkeypatch)
    preview = whole_array(data, monkeypatch, components=2)
    planes = container.read_headers(io.BytesIO(data))[1]
    whole = all(p.exact and p.layout == container.LAYOUT_PATCH and p.rank for p in planes)
    preview_whole = whole and all(min(p.aq[0], p.rank) <= 2 for p in planes if p.adapted)
    jobs: list[int] = []
    whole_jobs = stream.whole_jobs

    def spy(*args: Any) -> list[Any]:
        jobs.append(len(args[2]))
        return whole_jobs(*args)
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        with svdcodec.threads(1):
            np.testing.assert_array_equal(svdcodec.decode(data), expected)
        monkeypatch.setattr(stream, "whole_jobs", spy)
        with svdcodec.threads(2):
            np.testing.assert_array_equal(svdcodec.decode(data), expected)
            np.testing.assert_array_equal(svdcodec.decode(data, components=2), preview)
            pixels, banded = load_spied(data, monkeypatch)
    assert banded
    np.testing.assert_array_equal(pixels, as_opened(expected))
    assert jobs == [len(planes)] * (whole + preview_whole + whole)


def one_then_two_threads(run: Callable[[], Any], monkeypatch: pytest.MonkeyPatch,
                         spied: str, spy: Callable[..., Any]) -> tuple[Any, Any]:
    """run() on the compiled path with one thread, then with two and `stream.<spied>` replaced
    by `spy`: both results."""
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        with svdcodec.threads(1):
            one = run()
        monkeypatch.setattr(stream, spied, spy)
        with svdcodec.threads(2):
            return one, run()


def with_left_values(data: bytes, values: dict[int, dict[int, int]]) -> bytes:
    """The file with the first component of U of each plane in `values` (its dense block)
    stored raw (no predictor): 1 in every matrix row but the rows given ({row: value})."""
    box = container.unpack(data)
    blocks = list(box.blocks)
    for index, rows in values.items():
        at, block = next((i, b) for i, b in enumerate(blocks) if b.plane == index
                         and b.factor == "U" and b.coding == container.DENSE and b.first == 0)
        column = np.ones(block.count * box.planes[index].matrix_shape[0], np.int32)
        for row, value in rows.items():
            column[row] = value
        blocks[at] = container.Block(arrays=(column,), factor="U", plane=index, first=0,
                                     count=block.count, coding=container.DENSE, predictor=0)
    return container.pack(dataclasses.replace(box, blocks=blocks), 1)


#: name -> (image, encode options, {plane: {matrix row, counted from the last if negative:
#: max|A|}}): files whose left factors break the exact rule (spec §5.1) in rows of the first
#: and of the last band of a split
BROKEN_SPLITS = {
    # one plane: the whole plane's max|A| in one band's message, or 2^24 reached in the last
    "L, two rows": (lambda: photo(96, 130, 1)[:, :, 0], {}, {0: {0: 1 << 22, -1: 1 << 23}}),
    "L, 2^24": (lambda: photo(96, 130, 1)[:, :, 0], {}, {0: {0: 1 << 22, -1: 1 << 24}}),
    # Y' in the first band, alpha in the last: one band stores alpha before Y'
    "RGBA": (lambda: photo(96, 130, 4), {"exact_alpha": False}, {0: {0: 1 << 23},
                                                                  3: {-1: 1 << 23}}),
    # Y' and Cb: one band stores Y' before it reads the chroma rows
    "16-bit RGB": (lambda: gradient16(96, 130, 3), {}, {0: {-1: 1 << 23}, 1: {0: 1 << 23}}),
}


@pytest.mark.parametrize("name", list(BROKEN_SPLITS))
def test_broken_split_images_give_one_bands_error(name: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken file of one band cut into a band per thread (`stream.whole_jobs`) is refused
    with the error one thread gives, by decode and by Pillow's load(): not the error of the
    first band that breaks the rule (another max|A|, or another plane), nor of a chroma plane
    multiplied with its set-up before the full-size planes."""
    make, options, broken = BROKEN_SPLITS[name]
    data = svdcodec.encode(make(), **options)
    m = container.unpack(data).planes[0].matrix_shape[0]
    data = with_left_values(data, {index: {row % m: value for row, value in rows.items()}
                                   for index, rows in broken.items()})
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 20)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1 << 20)
    jobs: list[int] = []
    whole_jobs = stream.whole_jobs

    def spy(*args: Any) -> list[Any]:
        jobs.append(len(args[2]))
        return whole_jobs(*args)

    def errors() -> list[str]:
        """decode's error and load()'s."""
        with pytest.raises(SvdiError) as refused:
            svdcodec.decode(data)
        with (pytest.warns(pillow_plugin.ReducedDepthWarning) if is_wide_rgb(data)
              else contextlib.nullcontext()):
            im = Image.open(io.BytesIO(data))
        with im, pytest.raises(OSError) as refused_load:
            im.load()
        return [str(refused.value), str(refused_load.value)]
    expected, found = one_then_two_threads(errors, monkeypatch, "whole_jobs", spy)
    assert found == expected
    assert jobs == [len(container.unpack(data).planes)] * 2  # (decode, load)


def with_broken_runs(data: bytes, index: int) -> bytes:
    """The file with the run/level U block of plane `index` broken in its last matrix rows:
    a symbol there made an invalid code (low nibble 8 with a run, spec §4.2)."""
    box = container.unpack(data)
    blocks = list(box.blocks)
    at, block = next((i, b) for i, b in enumerate(blocks) if b.plane == index
                     and b.factor == "U" and b.coding == container.SPARSE)
    symbols, runs, values = (np.array(a) for a in block.data())
    symbols[-3] = 0x18
    blocks[at] = container.Block(arrays=(symbols, runs, values), factor="U", plane=index,
                                 first=block.first, count=block.count,
                                 coding=container.SPARSE, predictor=0)
    return container.pack(dataclasses.replace(box, blocks=blocks), 1)


@pytest.mark.parametrize("broken", [False, True], ids=["", "broken"])
def test_a_planes_run_level_blocks_fill_apart(broken: bool,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A photo cut into a band per thread (`stream.whole_jobs`) fills its luma's run/level U
    block in a job of its own beside the rest of its set-up (`plane.blocks_apart`): the same
    pixels as one thread, by decode and by Pillow's load(); a preview of two components keeps
    one job a plane, with one thread's pixels too. A file whose block is broken there is set
    up again on one thread, which refuses it with one thread's error."""
    data = svdcodec.encode(photo(96, 130, 3))  # 4:2:0: Y' alone is full-size
    runs = [(b.first, b.count) for b in container.unpack(data).factor_blocks(0, "U")
            if b.coding == container.SPARSE]
    if broken:
        data = with_broken_runs(data, 0)
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 20)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1 << 20)
    apart: list[str] = []
    fill_apart = stream.fill_apart
    other = svdcodec.encode(photo(96, 130, 3, seed=5))

    def spy(compiled: Any, plane: Any, blocks: list[Any], left: np.ndarray) -> None:
        try:
            fill_apart(compiled, plane, blocks, left)
        except plane_module.SetUpDeclined:
            apart.append("declined")
            raise
        apart.append(f"{plane.index} {[(b.first, b.count) for b in blocks]}")

    def decode_other() -> None:
        """A decode of another photo, whose A then fills A's kept array (a column of `data`'s
        A left unfilled would show), not counted among the jobs."""
        count = len(apart)
        svdcodec.decode(other)
        del apart[count:]

    def results() -> list[Any]:
        """decode's pixels or error, a preview's (components=2: one job a plane), load()'s,
        each after `decode_other`."""
        found: list[Any] = []
        for components in (None, 2):
            decode_other()
            try:
                found.append(svdcodec.decode(data, components=components))
            except SvdiError as exc:
                found.append(str(exc))
        decode_other()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                found.append(np.asarray(im))
        except OSError as exc:
            found.append(str(exc))
        return found
    expected, found = one_then_two_threads(results, monkeypatch, "fill_apart", spy)
    assert runs and apart == (["declined"] * 2 if broken else [f"0 {runs}"] * 2)
    for one, two in zip(expected, found):
        if broken:
            assert isinstance(one, str) and "sparse block" in one and two == one
        else:
            np.testing.assert_array_equal(two, one)


@pytest.mark.parametrize("threads", [1, 2])
def test_load_again_after_a_failed_load_reads_the_file_again(
        threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """load() of a broken file refused after its set-up (the exact rule, checked as the bands
    multiply), then a decode of another file in the same thread, then load() again: refused
    again with the same error. The failed load()'s renderer, left in the image's tile, held
    A in this thread's kept arrays, which the other decode filled with its own: the second
    load() rendered with them and gave pixels of neither file."""
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1 << 20)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 1 << 20)
    data = svdcodec.encode(photo(96, 130, 1)[:, :, 0])
    m = container.unpack(data).planes[0].matrix_shape[0]
    broken = with_left_values(data, {0: {m - 1: 1 << 23}})
    other = svdcodec.encode(photo(96, 130, 1, seed=5)[:, :, 0])
    with kernels_on(True), svdcodec.threads(threads), Image.open(io.BytesIO(broken)) as im:
        with pytest.raises(OSError, match="exact reconstruction bound") as first:
            im.load()
        svdcodec.decode(other)
        with pytest.raises(OSError) as again:
            im.load()
    assert str(again.value) == str(first.value)


@pytest.mark.parametrize("large", [False, True], ids=["", "large"])
def test_chroma_planes_of_two_patch_sizes_are_cut_alike(large: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A file whose Cb is in patch 8 and Cr in patch 4 (each plane has its own layout) loads
    on the lean fused filter's bands: both chroma planes are cut at the same rows, whole
    patches of each, so the kernels take Cb's and Cr's pieces in pairs (they refused pieces
    of different lengths with a ValueError); the pixels are the whole-array path's."""
    if large:
        monkeypatch.setattr(band_sizes, "LARGE_IMAGE_PIXELS", 0)
    candidates = schedule.Encoder._candidates

    def mixed(self: schedule.Encoder, work: Any, index: int, step: float) -> list[Any]:
        side = {1: 8, 2: 4}.get(index)
        found = candidates(self, work, index, step)
        return [c for c in found if c.plane.patch == side] or found
    with monkeypatch.context() as m:
        m.setattr(schedule.Encoder, "predicts", lambda self, work, index: False)
        m.setattr(schedule.Encoder, "_candidates", mixed)
        data = svdcodec.encode(photo(96, 128, 3), deblock=True, quality=40)
    assert [p.patch for p in container.read_headers(io.BytesIO(data))[1]][1:] == [8, 4]
    expected = whole_array(data, monkeypatch)
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        pixels, banded = load_spied(data, monkeypatch)
    assert banded
    np.testing.assert_array_equal(pixels, expected)


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_mapped_modes_render_into_the_images_memory(channels: int, compiled: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """8-bit L, RGB and RGBA files render straight into the array Pillow's image maps (no
    band copies); an RGB image's fourth byte is 255, as Pillow's raw decoder writes it; the
    image stays writable, like any loaded image."""
    data = svdcodec.encode(photo(75, 98, channels), exact_alpha=False)
    with kernels_on(compiled):
        if compiled and kernels.get() is None:
            pytest.skip("no compiled kernels")
        copied = spy_band_copies(monkeypatch)
        im = Image.open(io.BytesIO(data))
        im.load()
        expected = svdcodec.decode(data)
    assert copied == [] and not im.readonly
    np.testing.assert_array_equal(np.asarray(im), expected)
    if channels == 3:
        reference = Image.frombytes("RGB", im.size, expected.tobytes())
        assert im.tobytes("raw", "RGBX") == reference.tobytes("raw", "RGBX")
    im.putpixel((0, 0), 7 if channels == 1 else (7,) * channels)
    assert im.getpixel((0, 0)) == (7 if channels == 1 else (7,) * channels)
    monkeypatch.setattr(band_sizes, "MAPPED_BYTES", 75 * 98 * channels - 1)  # too large now
    with kernels_on(compiled):
        im = Image.open(io.BytesIO(data))
        im.load()
    assert copied and min(copied) == 0
    np.testing.assert_array_equal(np.asarray(im), expected)


def spy_band_copies(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first rows of the bands load() copies into Pillow's own memory, as they are
    copied."""
    copied: list[int] = []
    put = pillow_plugin.PillowBands.put

    def spy(self: pillow_plugin.PillowBands, y0: int, y1: int, band: np.ndarray) -> None:
        copied.append(y0)
        put(self, y0, y1, band)
    monkeypatch.setattr(pillow_plugin.PillowBands, "put", spy)
    return copied


def spy_mapping(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The sizes of the images load() maps onto an array, as they are mapped."""
    mapped: list[tuple[int, int]] = []
    map_buffer = Image.core.map_buffer

    def counting_map(data: Any, size: tuple[int, int], *args: Any) -> Any:
        mapped.append(size)
        return map_buffer(data, size, *args)
    monkeypatch.setattr(Image.core, "map_buffer", counting_map)
    return mapped


def test_images_of_any_size_are_mapped_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a MAPPED_BYTES limit an RGB image above 4 MiB in Pillow's layout (the limit
    before it was lifted) is rendered into the array its image maps, not copied by bands."""
    monkeypatch.undo()  # the default band sizes: this is about the default configuration
    assert band_sizes.MAPPED_BYTES is None
    width, height = 1040, 1024  # 4.06 MiB of RGBX
    pixels = np.repeat(np.repeat(photo(height // 8, width // 8, 3), 8, 0), 8, 1)
    data = svdcodec.encode(pixels)
    mapped = spy_mapping(monkeypatch)
    copied = spy_band_copies(monkeypatch)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        # (the numpy path's colour conversion maps its own smaller arrays too)
        assert mapped.count((width, height)) == 1 and copied == []
        np.testing.assert_array_equal(np.asarray(im), svdcodec.decode(data))


@pytest.mark.parametrize("limit", [None, 0], ids=["mapped", "band copies"])
def test_a_loaded_image_behaves_as_any_pillow_image(limit: int | None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether load() maps an array or copies bands into Pillow's own memory, the image is a
    plain writable Pillow image: load() twice gives a writable pixel access, im.im is set,
    drawing, paste, copy, save, pickle and numpy see the pixels, info is what open gave."""
    import pickle

    from PIL import ImageDraw

    monkeypatch.setattr(band_sizes, "MAPPED_BYTES", limit)
    mapped = spy_mapping(monkeypatch)
    data = svdcodec.encode(photo(64, 80, 3))
    expected = svdcodec.decode(data)
    with Image.open(io.BytesIO(data)) as im:
        info = dict(im.info)
        access = im.load()
        assert im.load() is not None and im.im is not None and not im.readonly
        assert mapped.count((80, 64)) == (limit is None)
        assert im.info == info and im.mode == "RGB" and im.size == (80, 64)
        np.testing.assert_array_equal(np.asarray(im), expected)
        copy = im.copy()
        assert access is not None
        access[1, 2] = (1, 2, 3)
        im.putpixel((3, 4), (4, 5, 6))
        ImageDraw.Draw(im).rectangle((10, 10, 19, 19), fill=(200, 0, 0))
        im.paste((0, 0, 255), (30, 30, 40, 40))
        changed = expected.copy()
        changed[2, 1], changed[4, 3] = (1, 2, 3), (4, 5, 6)
        changed[10:20, 10:20], changed[30:40, 30:40] = (200, 0, 0), (0, 0, 255)
        np.testing.assert_array_equal(np.asarray(im), changed)
        np.testing.assert_array_equal(np.asarray(copy), expected)  # the copy kept its pixels
        np.testing.assert_array_equal(np.asarray(pickle.loads(pickle.dumps(im))), changed)
        saved = io.BytesIO()
        im.save(saved, "PNG")
        np.testing.assert_array_equal(np.asarray(Image.open(saved)), changed)


def test_what_is_made_of_a_mapped_image_outlives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The images Pillow makes of a mapped one (copy, crop, transpose, convert, reduce), its
    core image kept alone and arrays of it keep their pixels once it is closed and collected
    and its memory reused; images loaded in several threads at once each map their own."""
    import gc
    import threading

    mapped = spy_mapping(monkeypatch)
    data = svdcodec.encode(photo(64, 80, 3))
    expected = svdcodec.decode(data)
    makers: dict[str, Any] = {
        "copy": lambda im: im.copy(), "crop": lambda im: im.crop((3, 5, 50, 41)),
        "transpose": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "convert": lambda im: im.convert("RGBA"), "reduce": lambda im: im.reduce(2),
        "array": np.asarray, "core": lambda im: im.im}
    made = {}
    for name, make in makers.items():
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            made[name] = make(im)
            wanted = make(Image.fromarray(expected))
        del im
        gc.collect()
        overwrite = [np.full((64, 80, 4), 13, np.uint8) for _ in range(20)]
        if name == "core":  # Pillow's core image alone, the one that holds the mapped array
            assert made[name].size == (80, 64) and overwrite
            made[name] = Image.new("RGB", (1, 1))._new(made[name])
            wanted = Image.fromarray(expected)
        np.testing.assert_array_equal(np.asarray(made[name]), np.asarray(wanted), err_msg=name)
    assert mapped.count((80, 64)) == len(makers)

    def load_and_compare(results: list[bool]) -> None:
        for _ in range(5):
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                results.append(bool(np.array_equal(np.asarray(im), expected)))
    results: list[bool] = []
    threads = [threading.Thread(target=load_and_compare, args=(results,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 20


@pytest.mark.parametrize("how", ["close", "garbage collected"])
def test_a_mapped_images_memory_is_freed_with_it(how: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The array a loaded image maps lives as long as the image: closing it, or dropping the
    last reference to it, frees the array (numpy's allocations are traced by tracemalloc);
    nothing of it is kept for later loads."""
    import gc
    import tracemalloc

    # In the calling thread: a band task a pool thread never started is let go of (with the
    # image's array it refers to) only once that thread next wakes.
    monkeypatch.setattr(band_sizes, "SERIAL_SAMPLES", 1 << 40)
    data = svdcodec.encode(photo(200, 300, 3))
    image_bytes = 200 * 300 * 4
    Image.open(io.BytesIO(data)).load()  # lazy imports and thread buffers before counting
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(3):
            im = Image.open(io.BytesIO(data))
            im.load()
            held = tracemalloc.get_traced_memory()[0] - before
            assert held >= image_bytes
            if how == "close":
                im.close()
            else:
                del im
            gc.collect()
        after = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert after < image_bytes // 4


def vm_flags(address: int) -> list[str] | None:
    """The VmFlags of the memory mapping holding `address` (/proc/self/smaps), None where the
    system has no such file."""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    inside = False
    for line in lines:
        first = line.split(" ", 1)[0]
        if "-" in first and ":" not in first:
            low, high = (int(x, 16) for x in first.split("-"))
            inside = low <= address < high
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    return None


def pages_advised() -> bool:
    """Whether this system shows a mapping's huge-page advice (/proc/self/smaps) and takes it
    (transparent huge pages built into its kernel: MADV_NOHUGEPAGE is refused otherwise)."""
    import os

    return (vm_flags(id(object())) is not None
            and os.path.exists("/sys/kernel/mm/transparent_hugepage/enabled"))


def test_a_large_images_memory_is_kept_out_of_huge_pages(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """An image of 4 MiB or more, for which numpy asks for transparent huge pages, is decoded
    into numpy's array with its pages advised back to base pages (Linux, compiled kernels:
    MADV_NOHUGEPAGE, "nh" in the mapping's flags): `svdcodec.decode`'s output, and the array
    a Pillow image maps; what is made of that image keeps its pixels once it is gone."""
    import gc

    monkeypatch.undo()  # the default band sizes
    width, height = 1400, 1024  # 5.5 MiB of RGBX or RGBA, 4.1 MiB of RGB
    pixels = np.repeat(np.repeat(photo(height // 8, width // 8, 4), 8, 0), 8, 1)
    advised = pages_advised() and kernels.get() is not None
    for channels in (4, 3):  # the whole-array path, and the band renderer's (8-bit RGB)
        decoded = svdcodec.decode(svdcodec.encode(pixels[..., :channels]))
        flags = vm_flags(decoded.ctypes.data + decoded.nbytes // 2)
        assert not advised or "nh" in flags, channels
    data = svdcodec.encode(pixels[..., :3])
    expected = svdcodec.decode(data)
    arrays: list[np.ndarray] = []
    base_page_array = pillow_plugin.base_page_array

    def spy(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        arrays.append(base_page_array(shape, dtype))
        return arrays[-1]
    monkeypatch.setattr(pillow_plugin, "base_page_array", spy)
    im = Image.open(io.BytesIO(data))
    im.load()
    (array,) = arrays
    arrays.clear()
    assert array.shape == (height, width, 4) and array.flags.c_contiguous and array.flags.writeable
    flags = vm_flags(array.ctypes.data + array.nbytes // 2)  # a whole page inside the array
    assert not advised or ("nh" in flags and "hg" not in flags)
    del array
    crop = im.crop((5, 7, 300, 200))
    im.putpixel((0, 0), (1, 2, 3))
    np.testing.assert_array_equal(np.asarray(im)[1:], expected[1:])
    im.close()
    del im
    gc.collect()
    np.testing.assert_array_equal(np.asarray(crop), expected[7:200, 5:300])


@NEEDS_KERNELS
def test_base_pages_advises_only_the_whole_pages_inside_a_buffer() -> None:
    """The compiled `base_pages` on views of any size and alignment: the whole pages inside
    are advised, a page the view shares with other memory is not, a view of less than a page
    has nothing to advise (True); a read-only buffer is refused. Linux with transparent huge
    pages only (elsewhere it advises nothing and says False)."""
    import mmap

    if not pages_advised():
        pytest.skip("no /proc/self/smaps or no transparent huge pages")
    compiled = compiled_kernels()
    memory = np.zeros(5 << 20, np.uint8)  # numpy asks for huge pages ("hg")
    page = mmap.PAGESIZE
    skew = (-memory.ctypes.data) % page  # memory[skew] starts a page
    for start, size in [(skew + 1, 3 << 20), (skew + page + 10, 100), (0, 0)]:
        assert compiled.base_pages(memory[start:start + size]) is True
    assert "nh" in vm_flags(memory.ctypes.data + skew + 8 * page)  # inside the first view
    assert "nh" not in vm_flags(memory.ctypes.data + skew)  # shared with the byte before
    assert "nh" not in vm_flags(memory.ctypes.data + skew + (4 << 20))  # past every view
    with pytest.raises((BufferError, TypeError, ValueError)):
        compiled.base_pages(bytes(10))


def test_even_bands_split_like_row_bands_with_sizes_within_a_unit() -> None:
    for rows, unit, target in [(4096, 4, 57), (100, 8, 3), (17, 4, 4), (5, 4, 100), (1, 1, 1),
                               (33, 8, 16), (0, 4, 10)]:
        bands = band_sizes.even_bands(rows, unit, target)
        assert len(bands) == len(band_sizes.row_bands(rows, unit, 1, target))
        assert [y0 for y0, _ in bands[1:]] == [y1 for _, y1 in bands[:-1]]
        assert all(y0 % unit == 0 for y0, _ in bands)
        if bands:
            assert bands[0][0] == 0 and bands[-1][1] == rows
            sizes = [-(-(y1 - y0) // unit) for y0, y1 in bands]
            assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_staggered_chroma_bands_split_half_the_output_bands_rows() -> None:
    """The lean path's chroma bands: whole units covering the plane, and (bands of 32 output
    rows, 16 chroma rows, as a 19 MP load() cuts them) only every second output band's rows
    split between two chroma bands, where bands cut at multiples of two output bands' share
    split every one."""
    def splits(bands: list[tuple[int, int]], needs: list[tuple[int, int]]) -> int:
        return sum(any(lo < y0 < hi for y0, _ in bands) for lo, hi in needs)

    for height, per_band, unit in [(2048, 16, 8), (2048, 16, 4), (1000, 12, 4), (37, 8, 8),
                                   (16, 16, 8)]:
        needs = [(max(lo - 1, 0), min(lo + per_band + 1, height))
                 for lo in range(0, height, per_band)]
        bands = stream.staggered_bands(needs, unit, height)
        assert bands[0][0] == 0 and bands[-1][1] == height
        assert [y0 for y0, _ in bands[1:]] == [y1 for _, y1 in bands[:-1]]
        assert all(y0 % unit == 0 and y1 > y0 for y0, y1 in bands)
        if (height, per_band, unit) == (2048, 16, 8):
            aligned = list(itertools.pairwise(range(0, height + 1, 2 * per_band)))
            assert splits(aligned, needs) >= len(needs) - 2  # all but the first and last
            assert splits(bands, needs) <= len(needs) // 2 + 1  # (the clipped last band's)


@pytest.mark.parametrize("piece_bytes", [64, 1 << 20])
def test_vertically_predicted_dense_columns_unpredict_by_band(
        piece_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense column of a left factor with a vertical predictor is unpredicted by each band
    from its residuals and the column sums above the band (where there are few enough sums),
    its residuals dropped as the bands are done: the whole-array path's pixels."""
    monkeypatch.setattr(band_sizes, "PIECE_BYTES", piece_bytes)
    data = svdcodec.encode(photo(256, 384, 3, seed=7))
    with kernels_on(True):
        if kernels.get() is None:
            pytest.skip("no compiled kernels")
        expected = whole_array(data, monkeypatch)
        monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 384 * 32)  # 32 rows: 8 grid rows
        renderer = stream.BandRenderer.prepare(container.unpack(data), lean=True)
        assert renderer is not None and len(renderer.bands) > 1
        luma = renderer.full[0]
        vertical = [sums for block, _, _, sums in luma.dense_rows
                    if block.predictor in (coding.VERTICAL, coding.PLANAR)]
        assert vertical and all(sums is not None for sums in vertical)
        assert luma.dense_u is None or not luma.dense_u[1]  # no column held as float32
        np.testing.assert_array_equal(load_spied(data, monkeypatch)[0], as_opened(expected))
