"""Format version 5's compact container (spec §4.2): block records several to a chunk, LEB128
numbers, frames without the zstd magic number, blocks stored raw; read on every path (whole
file, Image.open's descriptor scan in memory and by seeking, the JS decoder through the
vectors), written by the encoder for every file, older versions still read."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from support import ROOT, photo

import svdcodec
from svdcodec import SvdiError, pillow_plugin
from svdcodec import format as container
from svdcodec.decoder.reference import decode_reference
from svdcodec.format import reader
from svdcodec.format.records import read_varint, varint

VECTORS = ROOT / "spec" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text())
V5_INVALID = [e for e in MANIFEST["vectors"] if e["file"].startswith("v5_") and not e["valid"]]
#: Invalid version 5 vectors whose fault is in a record's fields, which Image.open's scan
#: reads (the others are in a frame or in the coverage, which only a decode reads).
SCANNED = {"v5_count_not_shortest", "v5_count_too_long", "v5_count_past_rank",
           "v5_coding_reserved_bit", "v5_sparse_predictor", "v5_sparse_s", "v5_element_type",
           "v5_sparse_size_bomb", "v5_frame_past_chunk", "v5_trailing_byte", "v5_empty_chunk"}


def factor_chunks(data: bytes) -> list[tuple[bytes, memoryview]]:
    return [(k, p) for k, p, _ in reader._chunks(data) if k in container.FACTOR_TYPES]


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16383, 16384, 2**32 - 1])
def test_leb128_round_trip(value: int) -> None:
    data = varint(value)
    assert len(data) == max(1, -(-value.bit_length() // 7))
    assert read_varint(data + b"\xff", 0, "x") == (value, len(data))


@pytest.mark.parametrize("data, error", [
    (b"\x81\x00", "shortest form"), (b"\x80\x80\x80\x80\x80\x00", "longer than 5 bytes"),
    (b"\xff\xff\xff\xff\x10", "exceeds 32 bits"), (b"\x80", "ends inside a number")])
def test_leb128_refusals(data: bytes, error: str) -> None:
    with pytest.raises(SvdiError, match=error):
        read_varint(data, 0, "x")


@pytest.mark.parametrize("pixels, options", [
    (photo(48, 64, 3), {}), (photo(40, 30, 1), {"layout": "plain"}),
    (photo(64, 80, 4), {"max_error": 2}), (photo(96, 128, 3), {"deblock": True}),
    (photo(64, 48, 1).astype(np.float32) / 7, {"centre": True}),
])
def test_encoder_writes_version_5_records(pixels: np.ndarray, options: dict[str, Any]) -> None:
    """Every file is version 5, its blocks records sharing chunks, stored and zstd ones, and
    decodes on every path to the same samples."""
    data = svdcodec.encode(pixels, **options)
    box = container.unpack(data)
    assert box.header.version == 5
    assert len(factor_chunks(data)) < len(box.blocks)
    assert {b.form for b in box.blocks} == {"stored", "magicless"}
    np.testing.assert_array_equal(decode_reference(data), svdcodec.decode(data))
    # The bytes of the blocks and the chunks' framing add up to the factor chunks.
    framing = 12 * len(factor_chunks(data))
    assert sum(b.stored for b in box.blocks) + framing == sum(
        12 + len(p) for _, p in factor_chunks(data))


def test_small_planes_make_one_chunk_per_factor() -> None:
    """A file of small planes is one component group: S, V and U in three chunks, component 0
    of U and V dense, the rest in one block (spec §4.2, §6)."""
    data = svdcodec.encode(photo(64, 96, 3), quality=90)
    assert [k for k, _ in factor_chunks(data)] == [b"SBLK", b"VBLK", b"UBLK"]
    box = container.unpack(data)
    for p in box.planes:
        firsts = [b.first for b in box.blocks if b.plane == p.index and b.factor == "U"]
        assert firsts == ([0, 1] if p.rank > 1 else [0])


def test_small_blocks_are_stored_when_a_frame_is_not_smaller() -> None:
    """The writer stores a block exactly when its content is not larger than its frame and
    the frame's length field."""
    from svdcodec.format.writer import block_content, compressor

    box = container.unpack(svdcodec.encode(photo(48, 64, 3)))
    for block in box.blocks:
        _, raw = block_content(block)
        frame = compressor(1, True, len(raw)).compress(raw)
        assert (block.form == "stored") == (len(raw) <= len(varint(len(frame))) + len(frame))


def symbols_like(size: int, seed: int) -> bytes:
    """`size` bytes like a run/level stream: mostly small levels, some zero runs."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 5, size) * rng.integers(0, 2, size)).astype(np.uint8).tobytes()


@pytest.mark.parametrize("level", [1, 15])
def test_frames_decode_with_a_plain_zstd_decoder_within_the_limits(level: int) -> None:
    """A record's frame (the writer's own parameters, BLOCK_PARAMETERS, spec §4.2) is a zstd
    frame without its magic: with the magic put back, a plain zstd decompressor (no format
    option, no window setting) gives the content, and the frame passes every reader's check
    (content size, no dictionary, window within the format's 2^23 and no larger than zstd's
    own parameters of the level would declare for that content: single-segment, or the level's
    window when the content is larger)."""
    import zstandard

    from svdcodec.format.blocks import MAGIC_BYTES, MAX_WINDOW, check_frame
    from svdcodec.format.writer import compressor

    for size in (1, 200, 256, 257, 4096, 16384, 16385, 32768, 32769, 200_000, 1 << 20):
        raw = symbols_like(size, size)
        frame = compressor(level, True, size).compress(raw)
        assert not frame.startswith(MAGIC_BYTES)
        plain = MAGIC_BYTES + frame
        assert zstandard.ZstdDecompressor().decompress(plain) == raw
        params = zstandard.get_frame_parameters(plain)
        own = zstandard.ZstdCompressionParameters.from_level(level, source_size=size)
        assert params.content_size == size and not params.dict_id
        assert params.window_size <= min(1 << own.window_log, MAX_WINDOW)
        check_frame(memoryview(frame), size, "block", "magicless")


def test_block_parameters_change_only_what_they_name() -> None:
    """The writer's parameters are zstd's own for the level and the content's size class,
    but for the changes BLOCK_PARAMETERS lists for that level and size."""
    import zstandard

    from svdcodec.format.writer import BLOCK_PARAMETERS, block_parameters

    names = ("window_log", "chain_log", "hash_log", "search_log", "min_match", "target_length",
             "strategy")
    for level in (1, 3, 15):
        for log in range(24):
            got = block_parameters(level, 1 << log)
            own = zstandard.ZstdCompressionParameters.from_level(level, source_size=1 << log)
            changes = next((c for largest, c in BLOCK_PARAMETERS.get(level, ())
                            if 1 << log <= largest), {})
            for name in names:
                assert getattr(got, name) == changes.get(name, getattr(own, name)), (level, log)
            assert got.window_log <= 23


def test_encoded_frames_decode_with_a_plain_zstd_decoder() -> None:
    """Every U and V frame of encoded files (both efforts, a small and a larger image) decodes
    with a plain zstd decompressor once its magic is put back, to the content its record
    declares, with a window no larger than the content (all single-segment here)."""
    import zstandard

    from svdcodec.format.blocks import MAGIC_BYTES

    for shape in ((48, 64, 3), (300, 400, 3)):
        for effort in (1, 2):
            box = container.unpack(svdcodec.encode(photo(*shape), 60, effort=effort))
            frames = [b for b in box.blocks if b.frame is not None and b.form == "magicless"]
            assert frames
            for b in frames:
                plain = MAGIC_BYTES + bytes(b.frame)
                params = zstandard.get_frame_parameters(plain)
                assert params.window_size <= b.raw_bytes
                assert len(zstandard.ZstdDecompressor().decompress(plain)) == b.raw_bytes


@pytest.mark.parametrize("entry", V5_INVALID, ids=[e["file"] for e in V5_INVALID])
def test_every_reader_refuses_a_malformed_record(monkeypatch: pytest.MonkeyPatch,
                                                 entry: dict[str, Any]) -> None:
    """The whole-file reader, Image.open (the scan of its descriptors, from memory and by
    seeking) and load() refuse each malformed version 5 file, with the manifest's message
    where they read the fault."""
    data = (VECTORS / entry["file"]).read_bytes()
    message = re.escape(entry["error"])
    with pytest.raises(SvdiError, match=message):
        container.unpack(data)
    for in_memory in (1 << 20, 0):  # the scan of a small file's rest, and the seeking one
        monkeypatch.setattr(reader, "_SCAN_IN_MEMORY", in_memory)
        if entry["file"][:-5] in SCANNED:  # Image.open's scan (Pillow: cannot identify it)
            with pytest.raises(SvdiError, match=message):
                reader.read_prefix(io.BytesIO(data), descriptors=True)
            with pytest.raises(UnidentifiedImageError):
                Image.open(io.BytesIO(data))
        else:
            with pytest.raises((SvdiError, OSError)), Image.open(io.BytesIO(data)) as im:
                im.load()


def test_scan_by_seeking_reads_records_of_a_valid_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The seeking scan walks every record of every chunk (Image.open on a large file)."""
    data = svdcodec.encode(photo(96, 128, 3))
    seen: list[int] = []
    original = reader._record

    def counting(*args: Any) -> reader.Descriptor:
        d = original(*args)
        seen.append(d.count)
        return d
    monkeypatch.setattr(reader, "_SCAN_IN_MEMORY", 0)
    # Image.open's own checks, not the parse of a small in-memory file (whose records the
    # compiled kernels may parse without `_record`)
    monkeypatch.setattr(pillow_plugin, "PARSED_AT_OPEN_BYTES", 0)
    monkeypatch.setattr(reader, "_record", counting)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (128, 96)
    assert len(seen) == len(container.unpack(data).blocks)


def test_versions_1_to_4_still_decode() -> None:
    """Older files decode as before; a version 2-4 vector and its version 5 form (the same
    blocks, spec §4.2) decode to the same samples."""
    names = {e["file"] for e in MANIFEST["vectors"] if e["valid"]}
    for name in sorted(n for n in names if n.startswith("v5_")):
        older = [n for n in names if not n.startswith("v5_") and n.split("_", 1)[1] == name[3:]]
        assert len(older) == 1, name
        a = svdcodec.decode((VECTORS / older[0]).read_bytes())
        b = svdcodec.decode((VECTORS / name).read_bytes())
        np.testing.assert_array_equal(a, b)
    versions = {container.unpack((VECTORS / n).read_bytes()).header.version for n in names}
    assert versions == {1, 2, 3, 4, 5, 6, 7}  # 6: adaptive quantization's and the restoration filter's vectors; 7: wrapped residuals


def test_recompressing_keeps_records_and_stored_blocks() -> None:
    from svdcodec.format.recompress import recompress_blocks

    data = svdcodec.encode(photo(96, 128, 3))
    small = recompress_blocks(data, 15)
    a, b = container.unpack(data), container.unpack(small)
    assert [(x.factor, x.plane, x.first, x.count, x.coding) for x in a.blocks] == \
        [(x.factor, x.plane, x.first, x.count, x.coding) for x in b.blocks]
    assert [x.form for x in a.blocks] == [x.form for x in b.blocks]
    assert all(y.stored <= x.stored for x, y in zip(a.blocks, b.blocks))
    np.testing.assert_array_equal(svdcodec.decode(small), svdcodec.decode(data))


def test_threads_keep_only_small_compressors() -> None:
    """A thread keeps the compressors of small blocks (cheap to keep, costly to remake for
    every block) and not those of large ones, whose tables and window would stay allocated
    for as long as the thread lives."""
    from svdcodec.format import writer

    small = bytes(range(256)) * 4
    large = np.random.default_rng(0).integers(0, 4, 1 << (writer.KEPT_SIZE_CLASS + 2),
                                               dtype=np.uint8).tobytes()
    for magicless in (False, True):
        for data in (small, large):
            frame = writer.compressor(19, magicless, len(data)).compress(data)
            assert len(frame) < len(data)
    kept = writer._local.compressors
    assert {(19, m, 10) for m in (False, True)} <= set(kept)
    assert all(size_class <= writer.KEPT_SIZE_CLASS for _, _, size_class in kept)
    assert writer.compressor(19, True, len(small)) is kept[(19, True, 10)]
