"""Writing .svdi bytes: chunks with CRCs, the header records and zstd-compressed blocks."""

from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
import zstandard

from ..errors import SvdiError
from .blocks import Block, Container, ResidualBlock
from .records import (
    AQ_VERSION,
    BLOCK_RECORD,
    COMPACT_VERSION,
    DENSE,
    DENSE_RECORD,
    ELEMENT_CODES,
    ELEMENT_TYPES,
    FACTOR_CHUNKS,
    HEAD_RECORD,
    MAX_CHUNK,
    MEAN_RECORD,
    NO_AQ,
    PLAN_RECORD,
    PLAN_RECORD_V2,
    PLAN_RECORD_V4,
    PLAN_RECORD_V6,
    RESIDUAL_RECORD,
    RESTORATION_VERSION,
    SIGNATURE,
    SPARSE_RECORD,
    WRAPPED_ELEMENT,
    Header,
    Plane,
    Restoration,
    coding_byte,
    varint,
)


def chunk(kind: bytes, payload: bytes) -> bytes:
    """length, type, payload, CRC-32 of type and payload (spec §1)."""
    return b"".join(chunk_parts(kind, [payload]))


def chunk_parts(kind: bytes, payload: list[bytes]) -> list[bytes]:
    """`chunk` of the payload joined from these parts, as parts: the caller joins them with
    what is around them, so that a large payload is copied once, into the file."""
    length = sum(len(part) for part in payload)
    if length > MAX_CHUNK:
        raise SvdiError(f"{kind.decode()} chunk of {length} bytes exceeds the chunk limit")
    crc = zlib.crc32(kind)
    for part in payload:
        crc = zlib.crc32(part, crc)
    return [struct.pack(">I", length) + kind, *payload, struct.pack(">I", crc)]


def _element_code(data: np.ndarray) -> int:
    code = ELEMENT_CODES.get(data.dtype.newbyteorder("="))
    if code is None:
        raise SvdiError(f"cannot store elements of type {data.dtype}")
    return code


def block_content(block: Block) -> tuple[int, bytes]:
    """(element or escape type code, the little-endian bytes the block's frame holds)."""
    if block.coding == DENSE:
        (data,) = block.data()
        code = _element_code(data)
        return code, np.ascontiguousarray(data, dtype=ELEMENT_TYPES[code]).tobytes()
    symbols, xrun, xval = block.data()
    code = _element_code(xval)
    # joined from the arrays themselves (buffers of their bytes, no copy of an array already
    # contiguous and of its type): one copy of the streams, not one more per array
    return code, b"".join((np.ascontiguousarray(symbols, dtype=np.uint8),
                           np.ascontiguousarray(xrun, dtype="<u2"),
                           np.ascontiguousarray(xval, dtype=ELEMENT_TYPES[code])))


def pack_block(block: Block, level: int = 3) -> bytes:
    """The chunk of one block in versions 1-4: descriptor, then one zstd frame of its
    little-endian arrays."""
    head = BLOCK_RECORD.pack(block.plane, block.first, block.count, block.coding)
    code, raw = block_content(block)
    if block.coding == DENSE:
        head += DENSE_RECORD.pack(code, block.predictor, len(raw) // ELEMENT_TYPES[code].itemsize)
    else:
        symbols, xrun, xval = block.data()
        head += SPARSE_RECORD.pack(code, symbols.size, xrun.size, xval.size)
    frame = compressor(level, size=len(raw)).compress(raw)
    return chunk(FACTOR_CHUNKS[block.factor], head + frame)


def pack_record(block: Block, level: int = 3) -> bytes:
    """The record of one block in version 5 (spec §4.2): plane, count, coding byte, the sparse
    stream sizes, then its content as a zstd frame without the magic number, after the
    frame's length, or stored as it is when that is not larger."""
    code, raw = block_content(block)
    head = bytes([block.plane]) + varint(block.count)
    sizes = b""
    if block.coding != DENSE:
        symbols, xrun, xval = block.data()
        sizes = varint(symbols.size) + varint(xrun.size) + varint(xval.size)
    frame = compressor(level, True, len(raw)).compress(raw)
    framed = varint(len(frame)) + frame
    stored = len(raw) <= len(framed)
    byte = coding_byte(block.coding, stored, block.predictor, code)
    return head + bytes([byte]) + sizes + (raw if stored else framed)


def factor_chunks(records: list[tuple[str, bytes]]) -> list[bytes]:
    """Version 5's factor chunks (spec §4.2) of (factor, record) pairs in file order, as the
    parts of the file they make (`chunk_parts`): each run of records of one factor in one
    chunk (several chunks if it passes the chunk limit)."""
    out: list[bytes] = []
    run: list[bytes] = []
    size = 0
    for i, (factor, record) in enumerate(records):
        if run and size + len(record) > MAX_CHUNK:
            out += chunk_parts(FACTOR_CHUNKS[factor], run)
            run, size = [], 0
        run.append(record)
        size += len(record)
        if i + 1 == len(records) or records[i + 1][0] != factor:
            out += chunk_parts(FACTOR_CHUNKS[factor], run)
            run, size = [], 0
    return out


_local = threading.local()
#: The largest size class (log2 of the content's bytes) whose compressors a thread keeps.
KEPT_SIZE_CLASS = 17

#: Changes to zstd's parameters of a level for the factor blocks' frames (`block_parameters`):
#: level -> ((largest content size, changes), ...), the first entry whose size the content does
#: not pass applies. Their content (run/level symbols, run lengths, escapes, small dense
#: integers) is not what zstd's level tables were tuned on. Level 1 (effort 1): zstd's
#: shortest match of 5 bytes (6 from 16 KiB) takes matches that cost more than the literals
#: they replace; 7 makes blocks up to 32 KiB 1-3 % smaller, for no encode time, and larger
#: blocks are as small with zstd's own. Level 15 (effort 2's recompression): from 64 KiB, a
#: shortest match of 5 instead of 3 is as small or smaller and faster (above 256 KiB zstd's
#: own already is 5). studies/zstd_params_study.py, docs/design-notes.md.
BLOCK_PARAMETERS: dict[int, tuple[tuple[int, dict[str, int]], ...]] = {
    1: ((1 << 15, {"min_match": 7}),),
    15: ((1 << 16, {}), (1 << 32, {"min_match": 5})),
}


def compressor(level: int, magicless: bool = False, size: int = 0) -> zstandard.ZstdCompressor:
    """A zstd compressor at `level` writing the content size (spec §4) for content of `size`
    bytes, one per thread, level, form and size class: a compressor is not thread-safe, and
    making one costs about as much as compressing a small block (an encode writes dozens of
    blocks, candidates included).

    magicless: frames without the magic number, for version 5's block records (spec §4.2).
    zstd picks its parameters from the level and the content size, which a compressor of
    explicit parameters (the only way to drop the magic) does not know: they are given for
    the size (`block_parameters(level, size)`), and depend on it only through ceil(log2(size))
    (zstd's size classes end at powers of two), so one compressor serves each power of two.

    Only the compressors of small size classes (up to KEPT_SIZE_CLASS) are kept: a compressor
    keeps its tables and window, which grow with the content (tens of megabytes at level 19),
    and a thread-local one lives as long as its thread, so keeping those of large blocks held
    that memory after every encode. For a large block, making a compressor costs little
    beside compressing it."""
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    size_class = max(size - 1, 0).bit_length()
    key = (level, magicless, size_class)
    c = cache.get(key)
    if c is None:
        c = zstandard.ZstdCompressor(
            compression_params=block_parameters(level, 1 << size_class)
        ) if magicless else zstandard.ZstdCompressor(level=level, write_content_size=True)
        if size_class <= KEPT_SIZE_CLASS:
            cache[key] = c
    return c


def block_parameters(level: int, size: int) -> zstandard.ZstdCompressionParameters:
    """The zstd parameters of a version 5 block record's frame at `level` for content of
    `size` bytes: the level's parameters for that size (what `ZstdCompressor(level=...)`
    picks: zstd's size classes end at powers of two, and the window is never larger than the
    content), with BLOCK_PARAMETERS' changes for the level and size. libzstd still fits them
    to the content (window, and hash and chain tables no larger than it needs), so the frame's
    window is the content size or the level's, whatever the changes."""
    changes = next((c for largest, c in BLOCK_PARAMETERS.get(level, ()) if size <= largest), {})
    return zstandard.ZstdCompressionParameters.from_level(
        level, source_size=size, format=zstandard.FORMAT_ZSTD1_MAGICLESS,
        write_content_size=True, **changes)


def pack_header(header: Header, planes: list[Plane]) -> bytes:
    """Signature, HEAD and the PLAN chunks: everything before the factor blocks."""
    h = header
    parts = [SIGNATURE, chunk(b"HEAD", HEAD_RECORD.pack(h.version, h.width, h.height, h.sample_type,
                                                    h.channels, h.colour, h.subsampling,
                                                    len(planes), h.scale))]
    for p in planes:
        fields = (p.index, p.layout, p.patch, p.height, p.width, p.rank, p.step)
        if p.filtered and h.version < 4:
            raise SvdiError(f"plane {p.index}: the deblocking filter needs format version 4")
        if p.adapted and h.version < AQ_VERSION:
            raise SvdiError(f"plane {p.index}: adaptive quantization needs format version "
                            f"{AQ_VERSION}")
        if h.version >= AQ_VERSION:
            if p.shift is None:
                raise SvdiError(f"plane {p.index}: a version {h.version} PLAN needs its shift")
            parts.append(chunk(b"PLAN", PLAN_RECORD_V6.pack(*fields, p.shift, *p.deblock,
                                                            *p.aq)))
        elif h.version >= 4:
            if p.shift is None:
                raise SvdiError(f"plane {p.index}: a version 4 PLAN needs its shift")
            parts.append(chunk(b"PLAN", PLAN_RECORD_V4.pack(*fields, p.shift, *p.deblock)))
        elif h.version >= 2:
            if p.shift is None:
                raise SvdiError(f"plane {p.index}: a version 2 PLAN needs its shift")
            parts.append(chunk(b"PLAN", PLAN_RECORD_V2.pack(*fields, p.shift)))
        else:
            parts.append(chunk(b"PLAN", PLAN_RECORD.pack(*fields)))
    return b"".join(parts)


def pack_residual(block: ResidualBlock, level: int) -> bytes:
    """The RBLK chunk of a residual block given as an array (spec §4.1)."""
    assert block.array is not None, "a residual block to write holds its grid"
    grid = np.ascontiguousarray(block.array)
    # wrapped: the grid holds int16 values (q and its predictor's residuals modulo 2^16)
    code = WRAPPED_ELEMENT if block.wrapped else _element_code(grid)
    raw = grid.astype(ELEMENT_TYPES[2 if block.wrapped else code]).tobytes()
    head = RESIDUAL_RECORD.pack(block.channel, block.reference, block.first, block.rows,
                                block.step, block.bound, code, block.predictor)
    frame = compressor(level, size=len(raw)).compress(raw)
    return chunk(b"RBLK", head + frame)


def pack_means(plane: int, means: np.ndarray, level: int = 3) -> bytes:
    """The MEAN chunk of a plane's column means (spec §3.1): binary32, little-endian."""
    raw = np.ascontiguousarray(means, dtype="<f4").tobytes()
    frame = compressor(level, size=len(raw)).compress(raw)
    return chunk(b"MEAN", MEAN_RECORD.pack(plane) + frame)


END = chunk(b"IEND", b"")


def insert_after_head(data: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """The file with these (type, payload) chunks right after HEAD, where a header-only reader
    (Image.open) meets them before the PLAN chunks; the file itself if there are none."""
    if not chunks:
        return data
    end = len(SIGNATURE) + 12 + HEAD_RECORD.size
    assert data[len(SIGNATURE) + 4:len(SIGNATURE) + 8] == b"HEAD"
    return b"".join([data[:end], *(chunk(kind, payload) for kind, payload in chunks), data[end:]])


def insert_restoration(data: bytes, filters: list[Restoration]) -> bytes:
    """A file of the encoder (HEAD, PLANs, MEAN chunks, blocks; version 5 or 6) with the RSTR
    chunk of these filters after its PLAN and MEAN chunks and HEAD's version raised to 6 (spec
    §5.6), its version 5 PLANs then in version 6's layout (no plane adapted, spec §3); the file
    itself if there are none."""
    if not filters:
        return data
    at = len(SIGNATURE)
    parts = [SIGNATURE]
    version = struct.unpack_from(">H", data, at + 8)[0]  # HEAD comes first (spec §2)
    while True:
        length, kind = struct.unpack_from(">I4s", data, at)
        if kind not in (b"HEAD", b"PLAN", b"MEAN"):
            break
        payload = data[at + 8:at + 8 + length]
        if kind == b"HEAD":
            payload = struct.pack(">H", max(RESTORATION_VERSION, version)) + payload[2:]
            parts.append(chunk(kind, payload))
        elif kind == b"PLAN" and version < AQ_VERSION:
            parts.append(chunk(kind, PLAN_RECORD_V6.pack(*PLAN_RECORD_V4.unpack(payload),
                                                         *NO_AQ)))
        else:
            parts.append(data[at:at + 12 + length])
        at += 12 + length
    parts.append(chunk(b"RSTR", b"".join(f.pack() for f in sorted(filters, key=lambda f: f.plane))))
    parts.append(data[at:])
    return b"".join(parts)


def pack(container: Container, level: int = 3) -> bytes:
    """Serialize a container. Blocks are written in the order given (importance order); in
    version 5, consecutive blocks of one factor share a chunk."""
    if container.header.version >= COMPACT_VERSION:
        blocks = factor_chunks([(b.factor, pack_record(b, level)) for b in container.blocks])
    else:
        blocks = [pack_block(b, level) for b in container.blocks]
    return b"".join([pack_header(container.header, container.planes), *blocks, END])


# ----------------------------------------------------------------------------- reading
