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
    BLOCK_RECORD,
    DENSE,
    DENSE_RECORD,
    ELEMENT_CODES,
    ELEMENT_TYPES,
    FACTOR_CHUNKS,
    HEAD_RECORD,
    MAX_CHUNK,
    MEAN_RECORD,
    PLAN_RECORD,
    PLAN_RECORD_V2,
    PLAN_RECORD_V4,
    RESIDUAL_RECORD,
    SIGNATURE,
    SPARSE_RECORD,
    Header,
    Plane,
)


def chunk(kind: bytes, payload: bytes) -> bytes:
    """length, type, payload, CRC-32 of type and payload (spec §1)."""
    if len(payload) > MAX_CHUNK:
        raise SvdiError(f"{kind.decode()} chunk of {len(payload)} bytes exceeds the chunk limit")
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _element_code(data: np.ndarray) -> int:
    code = ELEMENT_CODES.get(data.dtype.newbyteorder("="))
    if code is None:
        raise SvdiError(f"cannot store elements of type {data.dtype}")
    return code


def pack_block(block: Block, level: int = 3) -> bytes:
    """The chunk of one block: descriptor, then one zstd frame of its little-endian arrays."""
    head = BLOCK_RECORD.pack(block.plane, block.first, block.count, block.coding)
    if block.coding == DENSE:
        (data,) = block.data()
        code = _element_code(data)
        raw = np.ascontiguousarray(data, dtype=ELEMENT_TYPES[code]).tobytes()
        head += DENSE_RECORD.pack(code, block.predictor, data.size)
    else:
        symbols, xrun, xval = block.data()
        code = _element_code(xval)
        raw = b"".join((symbols.astype(np.uint8).tobytes(), xrun.astype("<u2").tobytes(),
                        xval.astype(ELEMENT_TYPES[code]).tobytes()))
        head += SPARSE_RECORD.pack(code, symbols.size, xrun.size, xval.size)
    frame = compressor(level).compress(raw)
    return chunk(FACTOR_CHUNKS[block.factor], head + frame)


_local = threading.local()


def compressor(level: int) -> zstandard.ZstdCompressor:
    """A zstd compressor at `level` writing the content size (spec §4), one per thread and
    level: a compressor is not thread-safe, and making one costs about as much as compressing
    a small block (an encode writes dozens of blocks, candidates included)."""
    cache = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return c


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
        if h.version >= 4:
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
    code = _element_code(grid)
    raw = grid.astype(ELEMENT_TYPES[code]).tobytes()
    head = RESIDUAL_RECORD.pack(block.channel, block.reference, block.first, block.rows,
                                block.step, block.bound, code, block.predictor)
    frame = compressor(level).compress(raw)
    return chunk(b"RBLK", head + frame)


def pack_means(plane: int, means: np.ndarray, level: int = 3) -> bytes:
    """The MEAN chunk of a plane's column means (spec §3.1): binary32, little-endian."""
    raw = np.ascontiguousarray(means, dtype="<f4").tobytes()
    frame = compressor(level).compress(raw)
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


def pack(container: Container, level: int = 3) -> bytes:
    """Serialize a container. Blocks are written in the order given (importance order)."""
    blocks = [pack_block(b, level) for b in container.blocks]
    return b"".join([pack_header(container.header, container.planes), *blocks, END])


# ----------------------------------------------------------------------------- reading
