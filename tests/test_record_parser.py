"""The compiled parser of version 5 block records (`_kernels.parse_records`, taken by
`format.reader._parse_blocks`): it gives exactly the Python reader's blocks, or declines
(None) and leaves the chunk to the Python reader, which raises its own error; it never
accepts a chunk the Python reader refuses."""

from __future__ import annotations

import itertools
import random
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from support import NEEDS_KERNELS, photo

import svdcodec
from svdcodec import SvdiError
from svdcodec.format import reader
from svdcodec.format.records import FACTOR_TYPES, LAYOUT_PATCH, Header, Plane, varint
from svdcodec.runtime import kernels

pytestmark = NEEDS_KERNELS


def _files() -> list[bytes]:
    """Version 5 files of every kind of record: dense and sparse, stored and zstd, several
    planes and blocks per factor, 16-bit and float samples."""
    rgb = photo(96, 80, 3)
    return [
        svdcodec.encode(rgb, 75),
        svdcodec.encode(rgb, 20),
        svdcodec.encode(rgb, 95, deblock=True),
        svdcodec.encode(np.dstack([rgb, rgb[..., :1]]), 60),
        svdcodec.encode(rgb[..., 0], 75, layout="plain"),
        svdcodec.encode(rgb.astype(np.uint16) * 257, 75),
        svdcodec.encode(rgb[:9, :13, 1].astype(np.float32) / 7, 90),
        svdcodec.encode(photo(5, 3, 3, seed=2), 75),
    ]


def _outcome(monkeypatch: pytest.MonkeyPatch, compiled: bool, data: bytes) -> Any:
    """What `unpack` makes of the file on one path: every block's fields and bytes, or the
    error's type and message."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1" if compiled else "0")
    try:
        box = reader.unpack(data)
    except SvdiError as error:
        return ("error", type(error).__name__, str(error))
    return [(b.factor, b.plane, b.first, b.count, b.coding, b.predictor, b.stored,
             None if b.frame is None else bytes(b.frame), b.parts, b.form, b.nbytes,
             None if b.arrays is None else [a.tobytes() for a in b.arrays])
            for b in box.blocks]


def _factor_chunks(data: bytes) -> list[tuple[int, int]]:
    """(payload offset, length) of every factor chunk."""
    out, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        if data[pos + 4:pos + 8] in FACTOR_TYPES:
            out.append((pos + 8, length))
        pos += 12 + length
    return out


def _with_payload(data: bytes, at: int, length: int, payload: bytes) -> bytes:
    """The file with the chunk whose payload is data[at:at + length] holding `payload`
    instead, its length and CRC made valid."""
    kind = data[at - 4:at]
    chunk = (struct.pack(">I", len(payload)) + kind + payload
             + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind))))
    return data[:at - 8] + chunk + data[at + length + 4:]


def test_compiled_parser_takes_the_encoders_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every chunk of the encoder's files is parsed by the compiled parser (none declined),
    to the Python reader's blocks."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    compiled = kernels.get()
    assert compiled is not None
    calls = []
    real = compiled.parse_records

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(compiled, name)

        @staticmethod
        def parse_records(*args: Any) -> Any:
            calls.append(real(*args))
            return calls[-1]

    for data in _files():
        expected = _outcome(monkeypatch, False, data)
        monkeypatch.setattr(kernels, "get", lambda: Counting())
        assert _outcome(monkeypatch, True, data) == expected
        monkeypatch.undo()
    assert calls and all(rows is not None for rows in calls)


def test_mutated_records_same_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    """Factor chunks with bytes of their records and frame headers changed, cut or
    lengthened (CRCs valid): both paths give the same blocks or the same error."""
    rng = random.Random(13)
    verdicts = {"blocks": 0, "error": 0}
    edge = [0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0x81, 0xFF, 0x10, 0x20, 0x40, 0x60]
    for data in _files():
        monkeypatch.setenv("SVDCODEC_KERNELS", "0")
        box = reader.unpack(data)
        header, planes = box.header, box.planes
        chunks = _factor_chunks(data)
        for _ in range(150):
            at, length = rng.choice(chunks)
            payload = bytearray(data[at:at + length])
            # the records' offsets, from the reference parser
            starts = [d.record_at for d in reader.block_descriptors(
                data[at - 4:at], payload, header, planes, {})]
            frames = [d.frame_at for d in reader.block_descriptors(
                data[at - 4:at], payload, header, planes, {})]
            how = rng.randrange(5)
            if how < 2:  # a record's field or a frame header's byte
                base = rng.choice(starts if how == 0 else frames)
                spot = min(base + rng.randrange(8), len(payload) - 1)
                payload[spot] = rng.choice(edge) if rng.random() < 0.5 else rng.randrange(256)
            elif how == 2:  # any byte
                spot = rng.randrange(len(payload))
                payload[spot] ^= 1 << rng.randrange(8)
            elif how == 3:  # cut
                del payload[rng.randrange(len(payload)):]
            else:  # lengthened
                payload += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
            candidate = _with_payload(data, at, length, bytes(payload))
            expected = _outcome(monkeypatch, False, candidate)
            assert _outcome(monkeypatch, True, candidate) == expected
            verdicts["error" if expected[0] == "error" else "blocks"] += 1
    assert verdicts["blocks"] > 50 and verdicts["error"] > 300  # both kinds exercised


def test_arguments_are_checked() -> None:
    compiled = kernels.get()
    if compiled is None:
        pytest.skip("numpy path")
    names = ("U", *reader._RECORD_NAMES)
    with pytest.raises(ValueError):
        compiled.parse_records(b"\0\1\0", 3, ((1, 1, 1),), (0,), names)
    with pytest.raises(ValueError):
        compiled.parse_records(b"\0\1\0", 0, ((1, 1, 1),), (2,), names)  # cursor past the rank
    with pytest.raises(ValueError):
        compiled.parse_records(b"\0\1\0", 0, ((1, 1 << 40, 1),), (0,), names)
    with pytest.raises(ValueError):
        compiled.parse_records(b"\0\1\0", 0, ((1, 1, 1),), (0,), ("U", (None,), *names[2:]))
    with pytest.raises(TypeError):
        compiled.parse_records(b"\0\1\0", 0, [(1, 1, 1)], (0,), names)
    with pytest.raises(TypeError):
        compiled.parse_records(b"\0\1\0", 0, ((1, 1, 1),), (0,), names[1:])
    assert compiled.parse_records(b"", 0, ((1, 1, 1),), (0,), names) is None


# Hand-made records: every coding byte, count, sparse stream size and frame header byte of a
# small plane set, each compared with the Python reader's verdict.
_HEADER = Header(8, 8, 1, 2, 0, 0, 1.0, 5)
_PLANES = [Plane(0, LAYOUT_PATCH, 4, 8, 8, 3, 1.0, 0), Plane(1, LAYOUT_PATCH, 4, 8, 8, 2, 1.0, 0)]


def _python_blocks(monkeypatch: pytest.MonkeyPatch, kind: bytes, payload: bytes) -> Any:
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    try:
        blocks = reader._parse_blocks(kind, memoryview(payload), _HEADER, _PLANES, {})
    except SvdiError as error:
        values = str(error).endswith("singular values must be finite and positive")
        return str(error) if values else None
    return [(b.plane, b.first, b.count, b.coding, b.predictor, b.stored, bytes(b.frame or b""),
             b.parts, b.form, b.nbytes) for b in blocks]


def _compiled_blocks(monkeypatch: pytest.MonkeyPatch, kind: bytes, payload: bytes) -> Any:
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    compiled = kernels.get()
    assert compiled is not None
    try:
        blocks = reader._compiled_blocks(compiled, kind, memoryview(payload), _PLANES, {})
    except SvdiError as error:  # after the records: an S block's values
        return str(error)
    return None if blocks is None else [
        (b.plane, b.first, b.count, b.coding, b.predictor, b.stored, bytes(b.frame or b""),
         b.parts, b.form, b.nbytes) for b in blocks]


def _agree(monkeypatch: pytest.MonkeyPatch, kind: bytes, payload: bytes,
           declines: bool = False) -> bool:
    """The compiled parser gives the Python reader's blocks, or declines where the Python
    reader refuses its records or frames or an S block's values (or, if `declines`, may
    decline anyway); whether the Python reader took the chunk's records."""
    expected = _python_blocks(monkeypatch, kind, payload)
    got = _compiled_blocks(monkeypatch, kind, payload)
    if expected is None or isinstance(expected, str) or (declines and got is None):
        assert got is None
    else:
        assert got == expected
    return expected is not None


#: Bytes after a record's fields: around every size its block can have (or a frame length).
TAILS = sorted({0, 1, 2, 3, 4, 5} | {n + d for n in (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192)
                                     for d in (-1, 0, 1)})


def test_every_coding_byte_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = 0
    for kind in FACTOR_TYPES:
        for plane in (0, 1, 2):
            for count in (0, 1, 2, 3, 4, 0x80):
                for byte in range(256):
                    stored = bytes([plane]) + varint(count) + bytes([byte])
                    if byte & 1:
                        stored += varint(count * 4 + 1) + varint(0) + varint(0)
                    # stored: the content (dense int8/int16/int32/float32, or sparse)
                    payload = stored + bytes([0x3F]) * 200  # S: positive singular values
                    for tail in TAILS:
                        if _agree(monkeypatch, kind, payload[:len(stored) + tail]):
                            accepted += 1
    assert accepted > 20


def test_every_sparse_stream_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes around the bounds of reader.sparse_sizes_fit (4 rows of U, counts 1-3)."""
    accepted = 0
    for count in (1, 2, 3):
        for escape in (2, 3):
            for nsym in range(4 * count + 6):
                for nxrun in range(3):
                    for nxval in range(4):
                        head = (bytes([0]) + varint(count) + bytes([1 | 2 | escape << 4])
                                + varint(nsym) + varint(nxrun) + varint(nxval))
                        size = nsym + 2 * nxrun + (escape * 2 - 2) * nxval
                        if _agree(monkeypatch, b"UBLK", head + bytes(size)):
                            accepted += 1
    assert accepted > 20


def _frame(fhd: int, window: int | None, content: bytes, blocks: list[bytes],
           checksum: bool = False) -> bytes:
    """A magicless zstd frame by hand: header (`window` byte unless single segment, the
    content's size in the descriptor's field size), raw `blocks`, and a checksum."""
    fcs_size = {0: 1 if fhd & 0x20 else 0, 1: 2, 2: 4, 3: 8}[fhd >> 6]
    size = len(content) - (256 if fcs_size == 2 else 0)
    out = bytes([fhd]) + (bytes([window]) if window is not None else b"")
    out += bytes((fhd & 3) and [7] * {1: 1, 2: 2, 3: 4}[fhd & 3])
    out += max(size, 0).to_bytes(8, "little")[:fcs_size]
    for i, block in enumerate(blocks):
        word = (i == len(blocks) - 1) | len(block) << 3
        out += word.to_bytes(3, "little") + block
    return out + (b"\0\0\0\0" if checksum else b"")


def test_every_frame_header_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense V block (int8, 16 bytes) in frames of raw blocks, every descriptor and window
    byte, one block or two, a checksum or none, a block longer than the single segment's
    window (the content size); the compiled parser declines only frames
    with a dictionary ID field or the unused or reserved bit set."""
    record = bytes([0]) + varint(1) + bytes([1 << 4])
    content = bytes(range(16))
    accepted = 0
    for fhd in range(256):
        single = bool(fhd & 0x20)
        windows = range(256) if not fhd & 0x1B else (0x00, 0x68, 0x69, 0x6F, 0x70, 0xFF)
        for window in ([None] if single else windows):
            for blocks in ([content], [content[:5], content[5:]], [content + b"x"]):
                frame = _frame(fhd, window, content, blocks, bool(fhd & 4))
                ok = _agree(monkeypatch, b"VBLK", record + varint(len(frame)) + frame,
                            declines=bool(fhd & 0x1B))
                accepted += ok
    assert accepted > 100


def _python_chunks(data: bytes) -> Any:
    try:
        return [(kind, bytes(payload), start) for kind, payload, start in reader._chunks(data)]
    except SvdiError:
        return None


def _table_chunks(data: bytes, table: list[tuple[bytes, bytes]]) -> Any:
    """The chunks of `chunk_table`'s rows as `_python_chunks` gives them."""
    out = []
    for kind, positions in table:
        pairs = memoryview(positions).cast("q").tolist()
        assert pairs and len(pairs) % 2 == 0
        out += [(kind, data[s:s + n], s) for s, n in zip(pairs[::2], pairs[1::2])]
    return out


def test_chunk_table_is_the_python_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """`chunk_table` gives `_chunks`' chunks or declines where `_chunks` raises: files with a
    byte flipped anywhere, a length changed, cut, lengthened, an ancillary chunk of every size
    up to 300 bytes and some larger ones (the CRC's folding 64 and 16 bytes a step where the
    CPU has PCLMULQDQ, its 8-byte steps and tail) with its CRC right or wrong; by the tables
    and by folding (`crc_kernel`)."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    compiled = kernels.get()
    assert compiled is not None
    rng = random.Random(7)
    candidates = []
    for data in _files():
        candidates.append(data)
        for _ in range(60):
            mutated = bytearray(data)
            how = rng.randrange(4)
            if how == 0:
                mutated[rng.randrange(8, len(data))] ^= 1 << rng.randrange(8)
            elif how == 1:
                at = rng.choice([pos for pos, _ in _factor_chunks(data)]) - 8
                mutated[at + rng.randrange(4)] = rng.choice([0, 1, 0x7F, 0x80, 0xFF])
            elif how == 2:
                del mutated[rng.randrange(8, len(data)):]
            else:
                mutated += bytes(rng.randrange(1, 13))
            candidates.append(bytes(mutated))
    for size in [*range(301), 1000, 4103, 65543]:
        payload = bytes(rng.randrange(256) for _ in range(size))
        crc = zlib.crc32(payload, zlib.crc32(b"teSt"))
        for wrong in (0, 1 << rng.randrange(32)):
            chunk = struct.pack(">I", size) + b"teSt" + payload + struct.pack(">I", crc ^ wrong)
            candidates.append(candidates[0][:8] + chunk + candidates[0][8:])
    best = compiled.crc_kernel()
    try:
        for level in range(best + 1):  # the tables, and folding where the CPU has it
            compiled.crc_kernel(level)
            accepted = 0
            for data in candidates:
                expected = _python_chunks(data)
                table = compiled.chunk_table(data, 8, reader.MAX_CHUNK)
                # consecutive chunks of the run types in one row each
                runs = compiled.chunk_table(data, 8, reader.MAX_CHUNK, None, b"UBLKVBLKteSt")
                if expected is None:
                    assert table is None and runs is None
                else:
                    assert _table_chunks(data, table) == expected
                    assert all(len(positions) == 16 for _, positions in table)
                    assert _table_chunks(data, runs) == expected
                    kinds = [kind for kind, _ in runs]
                    assert [k for k, _ in itertools.groupby(e[0] for e in expected)] == \
                        [k for k, _ in itertools.groupby(kinds)] and all(
                            a != b or a not in (b"UBLK", b"VBLK", b"teSt")
                            for a, b in itertools.pairwise(kinds))
                    accepted += 1
            assert 80 < accepted < len(candidates) - 200
    finally:
        compiled.crc_kernel(best)
    with pytest.raises(ValueError):
        compiled.chunk_table(candidates[0], len(candidates[0]) + 1, reader.MAX_CHUNK)
    with pytest.raises(TypeError):
        compiled.chunk_table(bytearray(candidates[0]), 8, reader.MAX_CHUNK)


def test_a_record_of_long_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sparse record whose fields take 21 bytes (three 5-byte stream sizes: a plane of 2^28
    patches), its frame zstd blocks of repeated bytes: the compiled parser takes it."""
    planes = [Plane(0, LAYOUT_PATCH, 4, 1 << 16, 1 << 16, 32, 1.0, 0)]
    rows, big = 1 << 28, 1 << 28
    nsym, nxrun, nxval = rows + big, big, big
    content = nsym + 2 * nxrun + 2 * nxval
    piece = 1 << 17
    frame = bytes([0x80, 13 << 3]) + content.to_bytes(4, "little")  # window 8 MiB
    for i in range(content // piece):
        frame += ((i == content // piece - 1) | 1 << 1 | piece << 3).to_bytes(3, "little") + b"\0"
    record = (bytes([0]) + varint(32) + bytes([1 | 2 << 4]) + varint(nsym) + varint(nxrun)
              + varint(nxval) + varint(len(frame)))
    assert len(record) == 21 and content % piece == 0
    monkeypatch.setattr(__import__(__name__), "_PLANES", planes)
    expected = _python_blocks(monkeypatch, b"UBLK", record + frame)
    assert expected is not None
    assert _compiled_blocks(monkeypatch, b"UBLK", record + frame) == expected
