"""The compiled set-up of a small decode: `_kernels.whole_factor` (a factor's blocks, as the
reader leaves them, decompressed and filled in one call: `decoder.plane.WholePlane`),
`factor_bytes` (what those blocks hold decompressed), `parse_plan` (a PLAN chunk's fields and
checks) and `factor_index` (the container's blocks by plane and factor). Each gives what the
Python code it stands for gives, or declines (status 1, None, -1) where that code raises or
where it does not take the input; it never accepts what the Python code refuses. Every check
on file data below is reached by a crafted input."""

from __future__ import annotations

import dataclasses
import itertools
import random
import struct
from typing import Any

import numpy as np
import pytest
import zstandard
from support import NEEDS_KERNELS, photo

import svdcodec
from svdcodec import SvdiError
from svdcodec.codec import coding
from svdcodec.format import reader
from svdcodec.format.blocks import MAGICLESS, STORED_RAW, ZSTD, Block, decompressors
from svdcodec.format.records import Header
from svdcodec.runtime import kernels

pytestmark = NEEDS_KERNELS


GH, GW = 9, 7
ROWS = GH * GW


def _sparse_matrix(rng: np.random.Generator, rows: int, count: int) -> np.ndarray:
    m = np.zeros((rows, count), np.int64)
    mask = rng.random((rows, count)) < 0.3
    m[mask] = rng.integers(-40, 41, int(mask.sum()))
    m[0, 0] = 300  # a value escape
    return m


def _lazy(first: int, count: int, predictor: int, arrays: tuple[np.ndarray, ...],
          form: str = ZSTD, content: bytes | None = None, checksum: bool = False) -> Block:
    """A block as the reader leaves it: its arrays' bytes in a frame of `form` (or `content`
    instead), its parts and size from the arrays."""
    raw = b"".join(a.tobytes() for a in arrays) if content is None else content
    if form == STORED_RAW:
        frame = raw
    else:
        frame = zstandard.ZstdCompressor(write_content_size=True,
                                         write_checksum=checksum).compress(raw)
        if form == MAGICLESS:
            frame = frame[4:]
    parts = tuple((a.dtype, a.shape) for a in arrays)
    nbytes = sum(a.nbytes for a in arrays)
    return Block("U", 0, first, count, 0 if predictor >= 0 else 1, None, max(predictor, 0),
                 len(frame), memoryview(frame), parts, form, nbytes)


def _entries(blocks: list[Block], rank: int) -> list[tuple]:
    """plane_factors' entries of the same blocks (`WholePlane`'s general fill)."""
    return [(b.first, min(b.count, rank - b.first), b.count, b.predictor if b.coding == 0 else -1,
             b.data()) for b in blocks if b.first < rank]


def _both(compiled: Any, blocks: list[Block], rank: int) -> tuple[int, np.ndarray, float]:
    """whole_factor's status, its out and max|out|, after checking it against plane_factors:
    a fill where plane_factors fills, with the same integers and maximum; a decline where
    plane_factors reports an error."""
    mine = np.full((ROWS, rank), np.nan, np.float32)
    status, top = compiled.whole_factor(blocks, GH, GW, mine, decompressors(), True)
    general = np.full((ROWS, rank), np.nan, np.float32)
    try:
        entries = _entries(blocks, rank)
        error, _, general_top = compiled.plane_factors(entries, GH, GW, general,
                                                       magnitude=True)
    except (SvdiError, TypeError, ValueError):  # blocks the general path cannot read
        assert status == 1
        return status, mine, top
    if error:
        assert status == 1
    elif status == 0:
        assert mine.tobytes() == general.tobytes()
        assert top == general_top
    return status, mine, top


def _valid_blocks(rng: np.random.Generator, dtype: type, form: str) -> list[Block]:
    info = np.iinfo(dtype)
    residuals = rng.integers(max(info.min, -3000), min(info.max, 3000), (1, GH, GW),
                             endpoint=True, dtype=dtype)
    first = _lazy(0, 1, int(rng.integers(4)), (residuals,), form)
    sparse = [coding.to_symbols(_sparse_matrix(rng, ROWS, count)) for count in (5, 3)]
    return [first, _lazy(1, 5, -1, tuple(sparse[0]), form), _lazy(6, 3, -1, tuple(sparse[1]), form)]


def test_whole_factor_fills_what_plane_factors_fills(compiled: Any) -> None:
    """Valid blocks of every element type and form fill as plane_factors fills them, a
    preview's rank included (blocks past it not read, a block cut at it)."""
    rng = np.random.default_rng(5)
    for dtype, form in itertools.product((np.int8, np.int16, np.int32),
                                         (ZSTD, MAGICLESS, STORED_RAW)):
        blocks = _valid_blocks(rng, dtype, form)
        for rank in (9, 8, 4, 1):
            status, out, _ = _both(compiled, blocks, rank)
            assert status == 0
            assert not np.isnan(out).any()
        status, out, _ = _both(compiled, blocks[:1] + blocks[2:], 9)  # components 1..5 zero
        assert status == 0 and not out[:, 1:6].any()


def test_whole_factor_in_parts_fills_each_parts_columns_alone(compiled: Any) -> None:
    """partial=True (`plane.fill_apart` beside a WholePlane's own fill): each call writes its
    blocks' columns and no other (here NaN stays NaN), and the parts together give the whole
    fill; without partial a call of some of the blocks zeroes the columns they do not cover."""
    rng = np.random.default_rng(11)
    blocks = _valid_blocks(rng, np.int16, MAGICLESS)
    whole = np.empty((ROWS, 9), np.float32)
    assert compiled.whole_factor(blocks, GH, GW, whole, decompressors())[0] == 0
    for parts in ([blocks[:1], blocks[1:]], [blocks[1:2], blocks[::2]],
                  [blocks[2:], blocks[:2]]):
        out = np.full((ROWS, 9), np.nan, np.float32)
        for part in parts:
            before = out.copy()
            status, top = compiled.whole_factor(part, GH, GW, out, decompressors(), True, True)
            assert status == 0 and top == 0.0  # (no max|out| of a part)
            columns = np.zeros(9, bool)
            for b in part:
                columns[b.first:b.first + b.count] = True
            assert out[:, columns].tobytes() == whole[:, columns].tobytes()
            assert np.array_equal(out[:, ~columns], before[:, ~columns], equal_nan=True)
        assert out.tobytes() == whole.tobytes()
    out = np.full((ROWS, 9), np.nan, np.float32)
    assert compiled.whole_factor(blocks[1:2], GH, GW, out, decompressors())[0] == 0
    assert not out[:, :1].any() and not out[:, 6:].any()


def test_whole_factor_declines_each_bad_block(compiled: Any) -> None:
    """Each check of whole_factor on a block's fields, frame and parts, reached by a crafted
    block: declined (status 1), where the general path raises or reads the block itself."""
    rng = np.random.default_rng(7)
    good = _valid_blocks(rng, np.int16, MAGICLESS)
    dense, sparse = good[0], good[1]
    dense_raw = dense.data()[0].tobytes()
    sparse_arrays = sparse.data()

    def declined(block: Block, at: int = 0) -> None:
        blocks = list(good)
        blocks[at] = block
        status, _, _ = _both(compiled, blocks, 9)
        assert status == 1

    declined(dataclass_replace(dense, arrays=dense.data(), frame=None))  # arrays held
    declined(dataclass_replace(dense, nbytes=-1))  # no size
    declined(dataclass_replace(dense, count=0))
    declined(dataclass_replace(dense, count=(1 << 32) + 1))
    declined(dataclass_replace(dense, coding=2))
    declined(dataclass_replace(dense, predictor=4))
    declined(dataclass_replace(dense, predictor=-1))
    declined(dataclass_replace(sparse, predictor=1), 1)  # a sparse block with a predictor
    declined(dataclass_replace(dense, form="lz4"))  # no decompressor for the form
    declined(dataclass_replace(dense, parts=list(dense.parts)))
    # frames: cut, corrupt, declaring another size, holding more or fewer bytes
    frame = bytes(dense.frame)
    declined(dataclass_replace(dense, frame=memoryview(frame[:-3])))
    summed = bytes(_lazy(0, 1, 0, dense.data(), MAGICLESS, checksum=True).frame)
    declined(dataclass_replace(dense, frame=memoryview(summed[:-1] + bytes([summed[-1] ^ 1]))))
    declined(_lazy(0, 1, 0, dense.data(), MAGICLESS, dense_raw + b"\0\0"))
    declined(dataclass_replace(_lazy(0, 1, 0, dense.data(), MAGICLESS, dense_raw[:-2]),
                               nbytes=dense.nbytes))
    declined(dataclass_replace(_lazy(0, 1, 0, dense.data(), STORED_RAW), frame=memoryview(
        dense_raw[:-1])))  # a stored block one byte short
    # parts: how many, their dtypes and shapes against the content
    declined(dataclass_replace(dense, parts=dense.parts * 3))
    declined(dataclass_replace(sparse, parts=sparse.parts[:1]), 1)
    declined(dataclass_replace(dense, parts=((np.dtype("<f2"), (1, GH, GW)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<u2"), (1, GH, GW)),)))
    declined(dataclass_replace(dense, parts=((np.dtype(">i2"), (1, GH, GW)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"), (1, GH, GW + 1)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"), (1, GH, GW - 1)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"), (1, -GH, -GW)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"), (1 << 62, 1 << 62)),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"), (1, GH, "7")),)))
    declined(dataclass_replace(dense, parts=((np.dtype("<i2"),),)))
    symbols, xrun, xval = sparse_arrays
    declined(dataclass_replace(sparse, parts=((np.dtype("<i1"), symbols.shape),
                                              *sparse.parts[1:])), 1)  # signed symbols
    declined(dataclass_replace(sparse, parts=(sparse.parts[0], (np.dtype("<u2"), (xrun.size + 1,)),
                                              (xval.dtype, (xval.size - 2,)))), 1)
    # content the parts describe, refused by the fill: a grid of another size, broken streams
    short = np.zeros((1, GH, GW - 1), np.int16)
    declined(_lazy(0, 1, 0, (short,), MAGICLESS))
    declined(_lazy(1, 5, -1, (symbols[:-1], xrun, xval), MAGICLESS), 1)  # last row end gone
    declined(_lazy(1, 5, -1, (symbols, xrun, xval[:-1]), MAGICLESS), 1)  # an escape short
    bad = symbols.copy()
    bad[0] = 0x0F  # a run of 15 without its escape
    declined(_lazy(1, 5, -1, (bad, xrun, xval), MAGICLESS), 1)


def dataclass_replace(block: Block, **changes: Any) -> Block:
    """The block with some fields changed, made without the dataclass's checks (as the
    reader's `Block.of_fields` makes blocks)."""
    names = [f.name for f in dataclasses.fields(Block)]
    values = dict({name: getattr(block, name) for name in names}, **changes)
    return Block.of_fields(tuple(values[name] for name in names))


def test_whole_factor_arguments(compiled: Any) -> None:
    blocks = _valid_blocks(np.random.default_rng(3), np.int8, ZSTD)
    out = np.zeros((ROWS, 9), np.float32)
    with pytest.raises(ValueError):  # out of another row count
        compiled.whole_factor(blocks, GH, GW + 1, out, decompressors())
    with pytest.raises(TypeError):  # no dict of decompressors
        compiled.whole_factor(blocks, GH, GW, out, [decompressors()])
    with pytest.raises(TypeError):  # float64 out
        compiled.whole_factor(blocks, GH, GW, out.astype(np.float64), decompressors())
    with pytest.raises(TypeError):
        compiled.whole_factor(5, GH, GW, out, decompressors())
    odd = dataclass_replace(blocks[0], first="0")  # a field of another type: declined
    assert compiled.whole_factor([odd], GH, GW, out, decompressors())[0] == 1
    assert compiled.whole_factor([], GH, GW, out, decompressors()) == (0, 0.0)
    assert not out.any()  # no block: every component zero


def test_factor_bytes_is_what_the_blocks_hold(compiled: Any) -> None:
    blocks = _valid_blocks(np.random.default_rng(4), np.int32, MAGICLESS)
    for rank in (9, 6, 1, 0):
        expected = sum(b.raw_bytes for b in blocks if b.first < rank)
        assert compiled.factor_bytes(blocks[:1], blocks[1:], rank) == expected
    held = dataclass_replace(blocks[0], arrays=blocks[0].data())
    assert compiled.factor_bytes([held], blocks[1:], 9) == -1
    assert compiled.factor_bytes(blocks, [dataclass_replace(blocks[1], nbytes=-1)], 9) == -1
    assert compiled.factor_bytes(blocks, [dataclass_replace(blocks[1], first=-1)], 9) == -1
    with pytest.raises(TypeError):
        compiled.factor_bytes(blocks, 3, 9)


def test_decoded_files_take_the_compiled_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The encoder's small files: every factor filled by whole_factor (none declined), to the
    pixels of the numpy path."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    compiled = kernels.get()
    statuses: list[int] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(compiled, name)

        @staticmethod
        def whole_factor(*args: Any) -> Any:
            result = compiled.whole_factor(*args)
            statuses.append(result[0])
            return result

    rgb = photo(64, 80, 3)
    for image, options in ((rgb, {"quality": 75}), (rgb, {"quality": 30}),
                           (rgb[..., 0], {"quality": 90}), (rgb.astype(np.uint16) * 257, {})):
        data = svdcodec.encode(image, **options)
        monkeypatch.setenv("SVDCODEC_KERNELS", "0")
        expected = svdcodec.decode(data)
        monkeypatch.setenv("SVDCODEC_KERNELS", "1")
        monkeypatch.setattr(kernels, "get", lambda: Counting())
        statuses.clear()
        got = svdcodec.decode(data)
        monkeypatch.undo()
        assert np.array_equal(got, expected)
        assert statuses and not any(statuses)  # every factor set up by whole_factor


def _plane_outcome(monkeypatch: pytest.MonkeyPatch, payload: bytes, header: Header,
                   index: int) -> Any:
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    try:
        plane = reader._parse_plane(memoryview(payload), header, index)
    except SvdiError:
        return None
    return dict(plane.__dict__)


def test_parse_plan_is_the_python_parser(monkeypatch: pytest.MonkeyPatch, compiled: Any
                                         ) -> None:
    """Every byte of valid PLAN chunks of versions 1-6 set to values around each field's
    limits (and at random), the chunks cut and lengthened: parse_plan gives the Python
    parser's plane, the derived fields included, or None where the Python parser raises;
    it takes every valid chunk."""
    rng = random.Random(11)
    edges = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 0x7B, 0x7C, 0x7F, 0x80, 0xFF]
    seen = {"plane": 0, "refused": 0, "valid": 0}
    for version in (1, 2, 3, 4, 5, 6):
        for stype, sub, (h, w) in ((1, 1, (37, 50)), (1, 0, (16, 16)), (2, 1, (9, 5))):
            colour = 1 if sub else 0
            header = Header(w, h, stype, 3, colour, sub, 1.0, version)
            for index in (0, 1, 2):
                ph, pw = header.plane_shape(index)
                for layout, patch in ((1, 4), (1, 8), (0, 0)):
                    fields: list[int | float] = [index, layout, patch, ph, pw, 3, 2.5]
                    if version >= 2:
                        fields.append(20)
                    if version >= 4:
                        fields += [4, 5, 6] if layout and stype == 1 else [0, 0, 0]
                    if version >= 6:
                        fields += [3, 0x3C00] if layout else [0, 0]
                    record = reader.plan_record(version)
                    payload = record.pack(*fields)
                    candidates = [payload, payload[:-1], payload + b"\0"]
                    for at in range(len(payload)):
                        for value in edges + [rng.randrange(256) for _ in range(3)]:
                            mutated = bytearray(payload)
                            mutated[at] = value
                            candidates.append(bytes(mutated))
                    for step in (0.0, -1.0, float("inf"), float("nan"), 5e-324, 1e308):
                        candidates.append(record.pack(*fields[:6], step, *fields[7:]))
                    for rank in (0, 4096, 4097, ph * pw, ph * pw + 1, (1 << 32) - 1):
                        candidates.append(record.pack(*fields[:5], rank, *fields[6:]))
                    for candidate in candidates:
                        expected = _plane_outcome(monkeypatch, candidate, header, index)
                        got = compiled.parse_plan(candidate, version, index, h, w, sub, stype)
                        if expected is None:
                            assert got is None, (version, candidate.hex())
                        else:
                            assert got == expected, (version, candidate.hex())
                            assert list(got) == list(expected)  # the dict's order too
                        seen["refused" if expected is None else "plane"] += 1
                    if _plane_outcome(monkeypatch, payload, header, index) is not None:
                        seen["valid"] += 1  # (and taken: the loop's first candidate)
    assert seen["plane"] > 1000 and seen["refused"] > 1000 and seen["valid"] > 100
    with pytest.raises(TypeError):
        compiled.parse_plan("text", 6, 0, 8, 8, 0, 1)


def test_factor_index_is_the_containers(monkeypatch: pytest.MonkeyPatch,
                                        compiled: Any) -> None:
    rgb = photo(96, 80, 3)
    for data in (svdcodec.encode(rgb, 75), svdcodec.encode(rgb, 20),
                 svdcodec.encode(rgb[..., 0], 75, layout="plain")):
        monkeypatch.setenv("SVDCODEC_KERNELS", "0")
        box = reader.unpack(data)
        expected = {(p.index, f): [id(b) for b in box.factor_blocks(p.index, f)]
                    for p in box.planes for f in "USV"}
        index = compiled.factor_index(box.blocks)
        assert {key: [id(b) for b in blocks] for key, blocks in index.items()} == \
            {key: ids for key, ids in expected.items() if ids}
    assert compiled.factor_index([]) == {}
    with pytest.raises(AttributeError):
        compiled.factor_index([object()])
    with pytest.raises(TypeError):
        compiled.factor_index(5)


def test_record_blocks_arguments(compiled: Any) -> None:
    """parse_records' `block` argument: the class and its twelve field names, and dicts."""
    names = ("S", *reader._RECORD_NAMES)
    payload = b"\0\1" + bytes([0x42]) + struct.pack("<f", 2.0)  # one stored S value
    made = compiled.parse_records(payload, 1, ((1, 1, 1),), (0,), names, reader._BLOCK_MAKER,
                                  decompressors(), cursor := {})
    assert len(made) == 1 and made[0].arrays[0].tolist() == [2.0] and cursor == {(0, "S"): 1}
    tiny = b"\0\1" + bytes([0x42]) + struct.pack("<I", 1)  # the smallest subnormal: positive
    made = compiled.parse_records(tiny, 1, ((1, 1, 1),), (0,), names, reader._BLOCK_MAKER,
                                  decompressors(), {})
    assert made[0].arrays[0].view("<u4").tolist() == [1]
    for value in (0.0, -0.0, -2.0, float("inf"), float("nan")):
        refused = b"\0\1" + bytes([0x42]) + struct.pack("<f", value)
        assert compiled.parse_records(refused, 1, ((1, 1, 1),), (0,), names,
                                      reader._BLOCK_MAKER, decompressors(), cursor := {}) is None
        assert cursor == {}
    with pytest.raises(ValueError):
        compiled.parse_records(payload, 1, ((1, 1, 1),), (0,), names, (Block, ("factor",)),
                               decompressors(), {})
    with pytest.raises(TypeError):
        compiled.parse_records(payload, 1, ((1, 1, 1),), (0,), names, (5, ()), {}, {})
    with pytest.raises(ValueError):
        compiled.parse_records(payload, 1, ((1, 1, 1),), (0,), names, reader._BLOCK_MAKER,
                               decompressors(), [])
