"""Reading .svdi bytes: the single place where untrusted bytes are parsed.

Every chunk's length and CRC, every header field and every size a block declares is checked
against the header and the documented limits (spec §1-4) before anything is allocated; factor
blocks stay compressed (`blocks.Block`) until the decoder asks for them.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from types import ModuleType
from typing import IO, BinaryIO, NamedTuple

import numpy as np

from ..errors import SvdiError
from ..runtime import kernels
from .blocks import (
    MAGICLESS,
    STORED_RAW,
    TRUNCATED_HINT,
    ZSTD,
    Block,
    Container,
    MeanBlock,
    ResidualBlock,
    Truncation,
    check_frame,
    decompress,
    decompressors,
)
from .metadata import (
    MAX_METADATA_CHUNKS,
    MAX_PAYLOAD,
    METADATA_CHUNKS,
    Metadata,
    MetadataReader,
)
from .records import (
    BLOCK_RECORD,
    COLOUR_NONE,
    COLOUR_YCBCR,
    COMPACT_VERSION,
    DENSE,
    DENSE_RECORD,
    ELEMENT_TYPES,
    FACTOR_TYPES,
    HEAD_RECORD,
    LAYOUT_PATCH,
    LAYOUT_PLAIN,
    MAX_AQ_COMPONENTS,
    MAX_CHANNELS,
    MAX_CHANNELS_V1,
    MAX_CHUNK,
    MAX_DIMENSION,
    MAX_RANK,
    MAX_RECORD_BYTES,
    MAX_RESIDUAL_ELEMENTS,
    MAX_SHIFT,
    MAX_WORK,
    MEAN_RECORD,
    NO_AQ,
    NO_DEBLOCK,
    NO_REFERENCE,
    PATCH_SIZES,
    PREDICTORS,
    RESIDUAL_RECORD,
    RESTORATION_CLASSES,
    RESTORATION_COEFFICIENT_RANGE,
    RESTORATION_OFFSETS,
    RESTORATION_VERSION,
    SAMPLE_TYPES,
    SAMPLE_TYPES_V1,
    SIGNATURE,
    SPARSE,
    SPARSE_RECORD,
    STORED,
    VERSIONS,
    WRAPPED_SAMPLE_TYPES,
    Header,
    Plane,
    Restoration,
    counted_pixels,
    plan_record,
    read_varint,
    residual_step_limit,
)
from .residual_table import ResidualTable, residual_block, wrapped_element


def _chunks(data: bytes, cut: list[Truncation] | None = None
            ) -> Iterator[tuple[bytes, memoryview, int]]:
    """Yield (type, payload, the payload's first byte in `data`) of every chunk up to IEND,
    verifying lengths and CRCs.

    cut: a file that ends early then ends the walk instead of raising: where it ends is
    appended to `cut` (components and residual rows left for `unpack` to count). A chunk that
    does not arrive whole is not yielded: its CRC cannot be checked."""
    view = memoryview(data)
    pos = len(SIGNATURE)
    while True:
        if len(data) - pos < 8:
            ended = Truncation(len(data), pos, None, None)
            if cut is None:
                raise SvdiError(f"truncated file: {ended.where()}; {TRUNCATED_HINT}")
            cut.append(ended)
            return
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4:pos + 8])
        # the type and length are checked as soon as they arrived: no later byte mends them
        if not kind.isalpha():  # ASCII letters only (bytes.isalpha knows no other letters)
            raise SvdiError(f"invalid chunk type {kind!r} at byte {pos}")
        if length > MAX_CHUNK:  # a limit, whatever follows
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes at byte {pos} exceeds "
                            f"the chunk limit of {MAX_CHUNK} bytes")
        if length > len(data) - pos - 12:
            ended = Truncation(len(data), pos, kind.decode(), length)
            if cut is None:
                raise SvdiError(f"truncated file: {ended.where()}; {TRUNCATED_HINT}")
            cut.append(ended)
            return
        payload = view[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if zlib.crc32(payload, zlib.crc32(kind)) != crc:
            raise SvdiError(f"CRC mismatch in {kind.decode()} chunk at byte {pos}")
        pos += 12 + length
        if kind == b"IEND":
            if length:
                raise SvdiError("IEND chunk must be empty")
            if pos != len(data):
                raise SvdiError(f"{len(data) - pos} bytes of data after IEND")
            return
        yield kind, payload, pos - length - 4


def _not_svdi(start: bytes) -> str:
    """The error of data that does not start with the signature."""
    return ("empty file (0 bytes): not an SVDI file" if not start
            else "not an SVDI file (bad signature)")


#: The ancillary chunks the compiled chunk table lists (the reader parses them, a valid file
#: at most MAX_METADATA_CHUNKS of them); the other ancillary chunks it checks and leaves out.
LISTED_ANCILLARY = b"".join(METADATA_CHUNKS)
#: The chunks of which the compiled table gives a run of consecutive ones as one row: a file
#: may hold a residual block a row (spec §4.1).
TABLE_RUNS = b"RBLK"


def _chunk_walk(data: bytes, cut: list[Truncation] | None = None,
                compiled: ModuleType | None = None
                ) -> Iterable[tuple[bytes, memoryview, int]]:
    """`_chunks(data, cut)`: from the compiled kernels' table where they accept the whole file
    (every length, type and CRC checked in one call, `chunk_table`), else the Python walk,
    which raises its error at the chunk where it finds it (or, with `cut`, ends the walk where
    the file ends early). `compiled`: the kernels, as `kernels.get()` gives them (None: the
    Python walk)."""
    if compiled is not None:  # (unknown ancillary chunks, which the reader skips, left out)
        table = compiled.chunk_table(data, len(SIGNATURE), MAX_CHUNK, LISTED_ANCILLARY,
                                     TABLE_RUNS, MAX_METADATA_CHUNKS)
        if table is not None:
            return _handed_out(table, memoryview(data))
    return _chunks(data, cut)


def _handed_out(table: list[tuple[bytes, bytes]], view: memoryview
                ) -> Iterator[tuple[bytes, memoryview, int]]:
    """The chunks of the table's rows (type, int64 pairs of payload start and length) in
    order, each row let go once handed out: a file of many small chunks holds no row of a
    chunk already parsed (what a parsed block keeps is its own)."""
    table.reverse()
    while table:
        kind, positions = table.pop()
        pairs = memoryview(positions).cast("q")
        for i in range(0, len(pairs), 2):
            start = pairs[i]
            yield kind, view[start:start + pairs[i + 1]], start


def _parse_header(payload: memoryview) -> tuple[Header, int]:
    if len(payload) < 2:
        raise SvdiError("HEAD chunk too short")
    (version,) = struct.unpack_from(">H", payload)
    if version not in VERSIONS:
        raise SvdiError(f"unsupported format version {version} (this reader knows "
                        f"{', '.join(map(str, VERSIONS))})")
    if len(payload) != HEAD_RECORD.size:
        raise SvdiError(f"HEAD chunk has {len(payload)} bytes, expected {HEAD_RECORD.size}")
    _, width, height, stype, channels, colour, sub, nplanes, scale = HEAD_RECORD.unpack(payload)
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise SvdiError(f"image size {width}x{height} outside 1..{MAX_DIMENSION}")
    if stype not in SAMPLE_TYPES or (version == 1 and stype not in SAMPLE_TYPES_V1):
        raise SvdiError(f"unknown sample type {stype} (format version {version})")
    most = MAX_CHANNELS_V1 if version == 1 else MAX_CHANNELS
    if not 1 <= channels <= most or nplanes != channels:
        raise SvdiError(f"invalid channel count {channels} with {nplanes} planes (format "
                        f"version {version}: 1..{most})")
    if colour == COLOUR_YCBCR:
        if channels not in (3, 4) or not (stype == 1 or (stype == 2 and version >= 3)):
            raise SvdiError("Y'CbCr transform needs 8-bit RGB or RGBA (version 3: or 16-bit), "
                            f"not {channels} {SAMPLE_TYPES[stype]} channels in version "
                            f"{version}")
    elif colour != COLOUR_NONE:
        raise SvdiError(f"unknown colour transform {colour}")
    if sub not in (0, 1) or (sub and colour != COLOUR_YCBCR):
        raise SvdiError(f"invalid chroma subsampling {sub}")
    if not (math.isfinite(scale) and scale > 0):  # a Python float: math is cheaper
        raise SvdiError(f"invalid sample scale {scale}")
    if SAMPLE_TYPES[stype].kind == "f" and scale > float(np.finfo(SAMPLE_TYPES[stype]).max) / 255:
        raise SvdiError(f"sample scale {scale} makes samples overflow {SAMPLE_TYPES[stype]}")
    header = Header(width, height, stype, channels, colour, sub, scale, version)
    return header, nplanes


def _parse_plane(payload: memoryview, header: Header, index: int,
                 compiled: ModuleType | None = None) -> Plane:
    """Plane `index`'s PLAN chunk, checked (spec §3, §5.4, §5.5). `compiled`: the kernels,
    as `kernels.get()` gives them, whose `parse_plan` makes the plane's fields in one call
    where the chunk passes every check below (else this parser, the reference, says why)."""
    if compiled is not None:
        fields = compiled.parse_plan(payload, header.version, index, header.height,
                                     header.width, header.subsampling, header.sample_type)
        if fields is not None:  # (`Plane.of_fields` without its calls)
            plane = object.__new__(Plane)
            plane.__dict__.update(fields)
            return plane
    record = plan_record(header.version)
    if len(payload) != record.size:
        raise SvdiError(f"PLAN chunk has {len(payload)} bytes, expected {record.size} "
                        f"(format version {header.version})")
    fields = record.unpack(payload)
    index_, layout, patch, height, width, rank, step = fields[:7]
    shift = fields[7] if len(fields) > 7 else None  # version 2
    filters = (fields[8], fields[9], fields[10]) if len(fields) > 8 else NO_DEBLOCK  # version 4
    aq = (fields[11], fields[12]) if len(fields) > 11 else NO_AQ  # version 6
    plane = Plane.of_fields(index_, layout, patch, height, width, rank, step, shift, filters,
                            aq)
    if plane.shift is not None and plane.shift > MAX_SHIFT:
        raise SvdiError(f"plane {index}: shift {plane.shift} exceeds {MAX_SHIFT}")
    if plane.index != index:
        raise SvdiError(f"PLAN chunk for plane {plane.index} where plane {index} was expected")
    if (plane.height, plane.width) != header.plane_shape(index):
        raise SvdiError(f"plane {index} is {plane.width}x{plane.height}, "
                        f"expected {header.plane_shape(index)[1]}x{header.plane_shape(index)[0]}")
    if plane.layout == LAYOUT_PATCH:
        if plane.patch not in PATCH_SIZES:
            raise SvdiError(f"plane {index}: unsupported patch size {plane.patch}")
    elif plane.layout != LAYOUT_PLAIN or plane.patch != 0:
        raise SvdiError(f"plane {index}: unknown layout {plane.layout}/{plane.patch}")
    m, n = plane.matrix_shape
    if plane.rank > min(m, n, MAX_RANK):
        raise SvdiError(f"plane {index}: rank {plane.rank} exceeds min({m}, {n}, {MAX_RANK})")
    if not (math.isfinite(plane.step) and plane.step > 0):
        raise SvdiError(f"plane {index}: invalid quantizer step {plane.step}")
    if plane.filtered:
        _check_deblock(plane, header)
    if plane.aq != NO_AQ:
        _check_aq(plane)
    return plane


def _check_aq(plane: Plane) -> None:
    """An adapted plane (version 6, spec §5.5): K within 2..MAX_AQ_COMPONENTS, G a positive
    finite binary16, a patch layout."""
    components, bits = plane.aq
    what = f"plane {plane.index}: adaptive quantization (K {components}, G 0x{bits:04x})"
    if not 2 <= components <= MAX_AQ_COMPONENTS:
        raise SvdiError(f"{what}: K must be 2..{MAX_AQ_COMPONENTS}, or K and G both 0 (off)")
    if bits == 0 or bits >= 0x7C00:  # zero, or the sign bit, infinity or NaN
        raise SvdiError(f"{what}: G must be a positive finite binary16")
    if plane.layout != LAYOUT_PATCH:
        raise SvdiError(f"{what} on a plane of the plain layout (patch layouts only)")


def _check_deblock(plane: Plane, header: Header) -> None:
    """A filtered plane (version 4, spec §5.4): thresholds and clamp all at least 1, a patch
    layout, 8-bit samples."""
    what = f"plane {plane.index}: deblocking filter {plane.deblock}"
    if min(plane.deblock) < 1:
        raise SvdiError(f"{what}: alpha, beta and tc must all be 0 (no filter) or all >= 1")
    if plane.layout != LAYOUT_PATCH:
        raise SvdiError(f"{what} on a plane of the plain layout (patch layouts only)")
    if header.sample_type != 1:
        raise SvdiError(f"{what} on {header.dtype} samples (8-bit samples only)")


def sparse_sizes_fit(rows: int, count: int, symbols: int, run_escapes: int,
                     value_escapes: int) -> bool:
    """Whether a sparse block of `rows` rows and `count` components can hold these stream sizes
    (spec §4, consequences of the run/level grammar): one end-of-row symbol per row and at most
    `count` value symbols in a row; each escape belongs to a value symbol; a run escape moves 16
    columns or more (a run of 15 or more, then its value), so a row holds at most count // 16
    of them and the value symbols of the block take at least (values + 15 run escapes)
    columns of its rows x count."""
    values = symbols - rows
    return (0 <= values <= rows * count
            and run_escapes <= values and value_escapes <= values
            and run_escapes <= rows * (count // 16)
            and values + 15 * run_escapes <= rows * count)


class Descriptor(NamedTuple):  # a tuple: made in one call, where a dataclass's __init__
    # stores each field in bytecode (a dozen per small image's decode, twice through Pillow)
    """A factor block's fixed fields, checked against the planes (spec §4, §4.2): where its
    frame starts and ends in the payload and what it decompresses to (`parts`: dtype and shape
    of each array, `nbytes` in all). The fields `index` and `count` hide tuple's methods of
    those names (nothing here calls them)."""
    factor: str
    index: int  # type: ignore[assignment]
    first: int
    count: int  # type: ignore[assignment]
    coding: int
    predictor: int
    frame_at: int
    parts: tuple[tuple[np.dtype, tuple[int, ...]], ...]
    what: str
    nbytes: int  # what the parts take in all
    frame_end: int = 0  # version 5: where the block ends (before: the chunk's end, unknown here)
    form: str = ZSTD  # how the frame holds the parts (blocks.ZSTD, MAGICLESS or STORED_RAW)
    record_at: int = 0  # version 5: where the block's record starts in the chunk
    length_at: int = 0  # version 5: where its frame length starts (a stored block: frame_at)

    @property
    def stored_raw(self) -> bool:
        """Whether the block's content is stored raw (version 5), not zstd-compressed."""
        return self.form == STORED_RAW


def _dense_parts(factor: str, count: int, shape: tuple[int, int], code: int, predictor: int,
                 what: str) -> tuple[tuple[tuple[np.dtype, tuple[int, ...]], ...], int]:
    """The parts and bytes of a dense block (spec §4) after checking its element type and
    predictor: integers with a predictor for U and V, float32 without one for S."""
    if code not in ELEMENT_TYPES or (factor == "S") != (code == 4):
        raise SvdiError(f"{what}: invalid element type {code}")
    if predictor not in PREDICTORS or (factor == "S" and predictor):
        raise SvdiError(f"{what}: invalid predictor {predictor}")
    elements = count * shape[0] * shape[1]
    dims = (count, *shape) if factor != "S" else (elements,)
    return ((ELEMENT_TYPES[code], dims),), ELEMENT_TYPES[code].itemsize * elements


#: The element types of a sparse block's symbols and run escapes (spec §4).
_SYMBOL_TYPE, _RUN_ESCAPE_TYPE = np.dtype(np.uint8), np.dtype("<u2")


def _sparse_parts(rows: int, count: int, code: int, nsym: int, nxrun: int, nxval: int,
                  what: str) -> tuple[tuple[tuple[np.dtype, tuple[int, ...]], ...], int]:
    """The parts and bytes of a sparse block (spec §4) after checking its escape type and that
    its stream sizes fit its rows x count integers."""
    if code not in (2, 3):
        raise SvdiError(f"{what}: invalid escape type {code}")
    if not sparse_sizes_fit(rows, count, nsym, nxrun, nxval):
        raise SvdiError(f"{what}: stream sizes {nsym}/{nxrun}/{nxval} do not fit {rows} rows "
                        f"of {count} components")
    parts = ((_SYMBOL_TYPE, (nsym,)), (_RUN_ESCAPE_TYPE, (nxrun,)),
             (ELEMENT_TYPES[code], (nxval,)))
    return parts, nsym + 2 * nxrun + ELEMENT_TYPES[code].itemsize * nxval


def _block_place(kind: bytes, index: int, count: int, planes: list[Plane],
                 cursor: dict[tuple[int, str], int], first: int | None = None
                 ) -> tuple[str, int, tuple[int, int], str]:
    """(factor, first component, grid, description) of a block of `count` components of plane
    `index`, checked against the plane's rank and the blocks before it (`cursor`, advanced).
    Version 5 does not store `first`: it is the cursor."""
    factor = FACTOR_TYPES[kind]
    at = cursor.get((index, factor), 0)
    first = at if first is None else first
    what = f"plane {index} {factor} block at component {first}"
    if index >= len(planes):
        raise SvdiError(f"{what}: no such plane")
    plane = planes[index]
    if first != at or count < 1 or first + count > plane.rank:
        raise SvdiError(f"{what}: components {first}..{first + count} out of order or past "
                        f"rank {plane.rank}")
    cursor[(index, factor)] = first + count
    shape = plane.grid if factor == "U" else plane.vgrid if factor == "V" else (1, 1)
    return factor, first, shape, what


#: What a record's errors name before its plane and component are known.
_RECORD_WHAT = {kind: f"{kind.decode()} block record" for kind in FACTOR_TYPES}


def _record(kind: bytes, record: memoryview | bytes, left: int, planes: list[Plane],
            cursor: dict[tuple[int, str], int], base: int = 0) -> Descriptor:
    """A version 5 block record (spec §4.2) at the start of `record` (its first
    MAX_RECORD_BYTES are enough), `left` bytes before the chunk's end: checked against the
    planes and the blocks before it (`cursor`, advanced), its frame's extent against the
    chunk. Offsets are from the record's start plus `base` (where it starts in the chunk)."""
    if left < 3:
        raise SvdiError(f"{kind.decode()} block record too short")
    index = record[0]
    count, at = read_varint(record, 1, _RECORD_WHAT[kind])
    factor, first, shape, what = _block_place(kind, index, count, planes, cursor)
    if at >= left:
        raise SvdiError(f"{what}: record too short")
    byte = record[at]
    at += 1
    coding, stored = byte & 1, bool(byte & STORED)
    predictor, code = (byte >> 2) & 3, (byte >> 4) & 7
    if byte & 0x80:
        raise SvdiError(f"{what}: coding byte {byte:#04x} sets its reserved bit")
    if coding == DENSE:
        parts, nbytes = _dense_parts(factor, count, shape, code, predictor, what)
    elif factor == "S":
        raise SvdiError(f"{what}: unknown coding {coding} (S blocks are dense)")
    else:
        if predictor:
            raise SvdiError(f"{what}: a sparse block with predictor bits {predictor}")
        nsym, at = read_varint(record, at, what)
        nxrun, at = read_varint(record, at, what)
        nxval, at = read_varint(record, at, what)
        parts, nbytes = _sparse_parts(shape[0] * shape[1], count, code, nsym, nxrun, nxval,
                                      what)
    length_at = at
    if stored:
        size = nbytes
    else:
        size, at = read_varint(record, at, what)
    if at + size > left:
        raise SvdiError(f"{what}: frame of {size} bytes past the chunk's end")
    return Descriptor(factor, index, first, count, coding, predictor, base + at, parts, what,
                      nbytes, base + at + size, STORED_RAW if stored else MAGICLESS, base,
                      base + length_at)


def block_descriptors(kind: bytes, payload: memoryview | bytes, header: Header,
                      planes: list[Plane], cursor: dict[tuple[int, str], int]
                      ) -> Iterator[Descriptor]:
    """The descriptors of the blocks of a factor chunk, in order: one before version 5, one or
    more back to back in version 5 (spec §4.2), offsets from the payload's start."""
    if header.version < COMPACT_VERSION:
        d = _descriptor(kind, payload, planes, cursor)
        yield d._replace(frame_end=len(payload), length_at=d.frame_at)
        return
    at = 0
    while True:
        # offsets from the payload's start made in place: a copy with them costs more than
        # the record's parsing, a dozen times in a small image's decode
        d = _record(kind, payload[at:at + MAX_RECORD_BYTES], len(payload) - at, planes, cursor,
                    at)
        yield d
        at = d.frame_end
        if at == len(payload):
            return


#: Bytes of a block's payload that hold its descriptor, at most (block record + the larger of
#: the dense and sparse records).
DESCRIPTOR_BYTES = BLOCK_RECORD.size + max(DENSE_RECORD.size, SPARSE_RECORD.size)


def _descriptor(kind: bytes, payload: memoryview | bytes, planes: list[Plane],
                cursor: dict[tuple[int, str], int]) -> Descriptor:
    """Check a factor block's descriptor (versions 1-4: the first DESCRIPTOR_BYTES of its
    payload are enough) against the planes and the blocks before it (`cursor`, advanced)."""
    if len(payload) < BLOCK_RECORD.size:
        raise SvdiError(f"{kind.decode()} chunk too short")
    index, first, count, coding = BLOCK_RECORD.unpack_from(payload)
    factor, first, shape, what = _block_place(kind, index, count, planes, cursor, first)
    rows = shape[0] * shape[1]
    offset = BLOCK_RECORD.size
    if coding == DENSE:
        if len(payload) < offset + DENSE_RECORD.size:
            raise SvdiError(f"{what}: descriptor too short")
        code, predictor, elements = DENSE_RECORD.unpack_from(payload, offset)
        if elements != count * rows:
            raise SvdiError(f"{what}: declares {elements} elements, header implies {count * rows}")
        parts, nbytes = _dense_parts(factor, count, shape, code, predictor, what)
        return Descriptor(factor, index, first, count, coding, predictor,
                          offset + DENSE_RECORD.size, parts, what, nbytes)
    if coding == SPARSE and factor != "S":
        if len(payload) < offset + SPARSE_RECORD.size:
            raise SvdiError(f"{what}: descriptor too short")
        code, nsym, nxrun, nxval = SPARSE_RECORD.unpack_from(payload, offset)
        parts, nbytes = _sparse_parts(rows, count, code, nsym, nxrun, nxval, what)
        return Descriptor(factor, index, first, count, coding, 0,
                          offset + SPARSE_RECORD.size, parts, what, nbytes)
    raise SvdiError(f"{what}: unknown coding {coding}")


def _parse_blocks(kind: bytes, payload: memoryview, header: Header, planes: list[Plane],
                  cursor: dict[tuple[int, str], int], compiled: ModuleType | None = None
                  ) -> list[Block]:
    """The blocks of a factor chunk, each frame checked against its descriptor; S blocks
    decompressed and checked, U and V blocks left compressed. A block's `stored` is its bytes
    in the file: the whole chunk before version 5, its record and frame in version 5.
    `compiled`: the kernels, as `kernels.get()` gives them (None: the Python parser)."""
    if header.version >= COMPACT_VERSION and compiled is not None:
        blocks = _compiled_blocks(compiled, kind, payload, planes, cursor)
        if blocks is not None:
            return blocks
    out = []
    kinds: dict[tuple, tuple] = {}  # the blocks of one size share their parts, and parts
    for d in block_descriptors(kind, payload, header, planes, cursor):
        frame: memoryview | bytes = payload[d.frame_at:d.frame_end]
        if len(frame) <= SMALL_FRAME:
            frame = bytes(frame)
        size = len(payload) + 12 if header.version < COMPACT_VERSION \
            else d.frame_end - d.record_at
        if d.factor != "S":  # decompressed when the decoder needs it
            check_frame(frame, d.nbytes, d.what, d.form)
            parts = kinds.get(d.parts)
            if parts is None:  # a new kind, of parts shared with the kinds before it
                parts = tuple([kinds.setdefault(p, p) if len(kinds) < _SHARED_PARTS
                               else kinds.get(p, p) for p in d.parts])
                if len(kinds) < _SHARED_PARTS:
                    kinds[parts] = parts
            out.append(Block(d.factor, d.index, d.first, d.count, d.coding, None, d.predictor,
                             size, frame, parts, d.form, d.nbytes))
            continue
        data = np.frombuffer(decompress(frame, d.nbytes, d.what, form=d.form),
                             dtype=d.parts[0][0])
        # As Python floats: a few dozen values, where numpy's reductions cost more per call
        # than their loops. Every value finite (min and max of a list skip a NaN), and the
        # least > 0 (an S block holds at least one value).
        values = data.tolist()
        if not (all(map(math.isfinite, values)) and min(values) > 0):
            raise SvdiError(f"{d.what}: singular values must be finite and positive")
        out.append(Block(d.factor, d.index, d.first, d.count, d.coding, (data,), d.predictor,
                         stored=size, form=d.form))
    return out


#: Most bytes of a block's frame that the parsers copy: a memoryview of the file costs 184
#: bytes, a bytes object 33 bytes and its content, and a file may hold 490,000 blocks of a
#: few dozen bytes (the compiled parser's SMALL_FRAME).
SMALL_FRAME = 128
#: Most kinds of block sizes (and of their parts: a stream's (dtype, shape)) one factor
#: chunk's blocks share their `parts` tuples among (the compiled parser's PARTS_SHARED): a
#: chunk of thousands of one-component blocks has a few kinds, or blocks of distinct symbol
#: counts whose empty escape streams are alike, and a parts tuple costs about 400 bytes.
_SHARED_PARTS = 1024
#: What the compiled record parser makes its blocks with: the class and its fields in order.
_BLOCK_MAKER = (Block, tuple(f.name for f in dataclass_fields(Block)))
#: A factor's code in the compiled record parser (kernels.parse_records).
_FACTOR_CODES = {"U": 0, "S": 1, "V": 2}
#: The names the compiled record parser puts in the blocks' fields: the element dtypes by type
#: code, the sparse streams' dtypes and the two forms of a version 5 block.
_RECORD_NAMES = ((None, *(ELEMENT_TYPES[code] for code in (1, 2, 3, 4))), _SYMBOL_TYPE,
                 _RUN_ESCAPE_TYPE, STORED_RAW, MAGICLESS)


def _compiled_blocks(compiled: ModuleType, kind: bytes, payload: memoryview,
                     planes: list[Plane], cursor: dict[tuple[int, str], int]
                     ) -> list[Block] | None:
    """`_parse_blocks` of a version 5 chunk whose records and frame headers the compiled
    parser accepts (`parse_records`: one call where each record took a dozen Python calls; it
    makes the blocks, reads and checks the S blocks' values as `_parse_blocks` does and
    advances `cursor`), the same blocks; None where it does not (`cursor` then untouched),
    and the Python parser, the reference, reads the chunk again and raises its own error."""
    factor = FACTOR_TYPES[kind]
    if factor == "U":
        shapes = tuple([(p.rank, *p.grid) for p in planes])
    elif factor == "V":
        shapes = tuple([(p.rank, *p.vgrid) for p in planes])
    else:
        shapes = tuple([(p.rank, 1, 1) for p in planes])
    starts = tuple([cursor.get((p.index, factor), 0) for p in planes])
    return compiled.parse_records(payload, _FACTOR_CODES[factor], shapes, starts,
                                  (factor, *_RECORD_NAMES), _BLOCK_MAKER, decompressors(),
                                  cursor)


class ResidualOrder:
    """The order rules of the residual blocks (spec §4.1), checked block by block as they are
    added to `table`: each channel's blocks in row order, covering [0, height) or absent; a
    reference channel's block of the same rows earlier, itself without a reference."""

    def __init__(self, header: Header, table: ResidualTable) -> None:
        self.header, self.table = header, table
        self.cursor: dict[int, int] = {}  # next row of each channel
        self.has_reference: dict[int, bool] = {}
        self.referenced: set[int] = set()
        #: (channel, reference) -> where in the reference's blocks the last search ended: a
        #: channel's blocks come in row order, so its search of a reference's only goes on
        self.searched: dict[tuple[int, int], int] = {}

    def add(self, start: int, block: ResidualBlock) -> None:
        """Check `block` (its payload at byte `start`) and append it to the table."""
        c, ref, what = block.channel, block.reference, block.what
        if block.first != self.cursor.get(c, 0):
            raise SvdiError(f"{what}: rows out of order (expected row {self.cursor.get(c, 0)})")
        self.cursor[c] = block.first + block.rows
        if self.has_reference.setdefault(c, ref != NO_REFERENCE) != (ref != NO_REFERENCE):
            raise SvdiError(f"{what}: a channel has a reference in all its blocks or in none")
        if ref != NO_REFERENCE:
            if c in self.referenced:
                raise SvdiError(f"{what}: channel {c} is a reference and cannot have one")
            if self.has_reference.get(ref, True) or not self._has_block(c, ref, block):
                raise SvdiError(f"{what}: reference channel {ref} has no earlier block of the "
                                f"same rows without a reference")
            self.referenced.add(ref)
        self.table.append(start, block)

    def _has_block(self, channel: int, reference: int, block: ResidualBlock) -> bool:
        """Whether the reference channel's blocks so far hold one of the same first row and
        row count as `block`."""
        blocks = self.table.of_channel.get(reference, ())
        at = self.searched.get((channel, reference), 0)
        while at < len(blocks) and self.table.first_and_rows(blocks[at])[0] < block.first:
            at += 1
        self.searched[(channel, reference)] = at
        return at < len(blocks) and self.table.first_and_rows(blocks[at]) == (block.first,
                                                                              block.rows)

    def finish(self) -> None:
        for c, end in sorted(self.cursor.items()):
            if end != self.header.height:
                raise SvdiError(f"channel {c}: residual blocks cover {end} of "
                                f"{self.header.height} rows")


def _parse_residual(payload: memoryview, header: Header) -> ResidualBlock:
    """An RBLK chunk's fields checked against the header (spec §4.1), its frame against the
    size they imply, before anything is decompressed."""
    if len(payload) < RESIDUAL_RECORD.size:
        raise SvdiError("RBLK chunk too short")
    (channel, reference, first, rows, step, bound, code,
     predictor) = RESIDUAL_RECORD.unpack_from(payload)
    what = f"channel {channel} residual block at row {first}"
    if channel >= header.channels:
        raise SvdiError(f"{what}: no such channel")
    if reference != NO_REFERENCE and (reference >= header.channels or reference == channel):
        raise SvdiError(f"{what}: invalid reference channel {reference}")
    if rows < 1 or first + rows > header.height:
        raise SvdiError(f"{what}: rows {first}..{first + rows} outside 0..{header.height}")
    if rows * header.width > MAX_RESIDUAL_ELEMENTS:
        raise SvdiError(f"{what}: {rows} x {header.width} elements exceed "
                        f"{MAX_RESIDUAL_ELEMENTS}")
    if header.dtype.kind == "f":
        if not (math.isfinite(step) and step > 0):
            raise SvdiError(f"{what}: invalid step {step}")
    else:
        top = residual_step_limit(header.dtype)
        if not (math.isfinite(step) and step == int(step) and 1 <= step <= top):
            raise SvdiError(f"{what}: step {step} is not an integer in 1..{top}")
    if not (math.isfinite(bound) and bound >= 0):
        raise SvdiError(f"{what}: invalid bound {bound}")
    wrapped = wrapped_element(code, header)
    if code not in (1, 2, 3) and not wrapped:
        raise SvdiError(f"{what}: invalid element type {code}")
    if wrapped and header.sample_type not in WRAPPED_SAMPLE_TYPES:
        raise SvdiError(f"{what}: wrapped residuals (element type {code}) of "
                        f"{header.dtype} samples (uint16 or int16 only)")
    if predictor not in PREDICTORS:
        raise SvdiError(f"{what}: invalid predictor {predictor}")
    block = residual_block(payload, header)
    check_frame(block.frame, block.raw_bytes, what)
    return block


def _parse_means(payload: memoryview, header: Header, planes: list[Plane],
                 means: dict[int, MeanBlock]) -> MeanBlock:
    """A MEAN chunk checked against its plane (spec §3.1), its frame against the size the
    plane implies, before anything is decompressed."""
    if header.version < 2:
        raise SvdiError("column means (MEAN) in a version 1 file")
    if len(payload) < MEAN_RECORD.size:
        raise SvdiError("MEAN chunk too short")
    (index,) = MEAN_RECORD.unpack_from(payload)
    if index >= len(planes):
        raise SvdiError(f"MEAN chunk for plane {index}: no such plane")
    if index in means:
        raise SvdiError(f"plane {index}: more than one MEAN chunk")
    plane = planes[index]
    if plane.layout != LAYOUT_PLAIN:
        raise SvdiError(f"plane {index}: column means need the plain layout")
    columns = plane.matrix_shape[1]
    block = MeanBlock(index, columns, payload[MEAN_RECORD.size:])
    check_frame(block.frame, 4 * columns, block.what)
    return block


#: Largest piece of an unknown ancillary chunk held while read_prefix checks its CRC.
_SKIP_PIECE = 1 << 20


def _parse_restoration(payload: memoryview, header: Header, planes: list[Plane]
                       ) -> dict[int, Restoration]:
    """The RSTR chunk (version 6, spec §5.6): one record per filtered plane, planes in
    increasing order, each: plane, class count 1..4, class count - 1 non-decreasing u16
    activity bounds, 12 signed coefficients per class in -64..63; nothing after the last."""
    if header.version < RESTORATION_VERSION:
        raise SvdiError(f"restoration filter (RSTR) in a version {header.version} file")
    if header.dtype != np.uint8:
        raise SvdiError(f"restoration filter on {header.dtype} samples (8-bit samples only)")
    taps = len(RESTORATION_OFFSETS)
    lo, hi = RESTORATION_COEFFICIENT_RANGE
    out: dict[int, Restoration] = {}
    at = 0
    if not len(payload):
        raise SvdiError("RSTR chunk without a record")
    while at < len(payload):
        if len(payload) - at < 2:
            raise SvdiError("RSTR record truncated")
        index, classes = payload[at], payload[at + 1]
        if index >= len(planes) or (out and index <= max(out)):
            raise SvdiError(f"RSTR record for plane {index}: no such plane, or not after the "
                            "previous record's plane")
        if not 1 <= classes <= RESTORATION_CLASSES:
            raise SvdiError(f"RSTR plane {index}: {classes} classes, not 1..{RESTORATION_CLASSES}")
        size = 2 + 2 * (classes - 1) + taps * classes
        if len(payload) - at < size:
            raise SvdiError(f"RSTR record of plane {index} truncated")
        bounds = struct.unpack_from(f">{classes - 1}H", payload, at + 2)
        if any(a > b for a, b in itertools.pairwise(bounds)):
            raise SvdiError(f"RSTR plane {index}: activity bounds decrease")
        flat = struct.unpack_from(f">{taps * classes}b", payload, at + 2 + 2 * (classes - 1))
        if any(not lo <= c <= hi for c in flat):
            raise SvdiError(f"RSTR plane {index}: coefficient outside {lo}..{hi}")
        out[index] = Restoration(index, bounds, tuple(tuple(flat[k * taps:(k + 1) * taps])
                                                      for k in range(classes)))
        at += size
    return out


def _read_payload(fp: IO[bytes], kind: bytes, length: int, keep: bool) -> bytes:
    """A chunk's payload (or b"" when not `keep`: read in pieces, never held whole) after
    checking its CRC; the file position ends after the CRC."""
    crc = zlib.crc32(kind)
    pieces = []
    left = length
    while left:
        piece = fp.read(min(left, _SKIP_PIECE) if not keep else left)
        if not piece:
            raise SvdiError(f"truncated file: {kind!r} chunk")
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
        if keep:
            pieces.append(piece)
    tail = fp.read(4)
    if len(tail) < 4:
        raise SvdiError(f"truncated file: {kind!r} chunk")
    if crc != struct.unpack(">I", tail)[0]:
        raise SvdiError(f"CRC mismatch in {kind!r} chunk")
    return b"".join(pieces)


def read_prefix(fp: IO[bytes], descriptors: bool = False) -> tuple[Header, list[Plane], Metadata]:
    """Read and check the signature, HEAD, PLAN and metadata chunks from a file, stopping at
    the first factor block (for Image.open and read_metadata: no factor data is read).

    Ancillary chunks may come before, among and after the PLAN chunks, of any size: known
    metadata chunks are checked against their limits before they are read, unknown ones are
    read in pieces only to check their CRC.

    descriptors: then also check each factor block's descriptor (`scan_descriptors`), so that
    Image.open refuses a file whose blocks cannot fit its planes before load() allocates the
    image.
    """
    signature = fp.read(len(SIGNATURE))
    if signature != SIGNATURE:
        raise SvdiError(_not_svdi(signature))
    header: Header | None = None
    planes: list[Plane] = []
    nplanes = 0
    meta = MetadataReader()
    while True:
        head = fp.read(8)
        if len(head) < 8:
            if header is not None and len(planes) == nplanes:
                break  # all that opening needs: the missing blocks are load()'s to report
            raise SvdiError("truncated file: chunk header expected")
        length, kind = struct.unpack(">I4s", head)
        if not kind.isalpha():  # ASCII letters only
            raise SvdiError(f"invalid chunk type {kind!r}")
        ancillary = kind[0] >= 97
        if header is not None and len(planes) == nplanes and not ancillary:
            # the first factor block (or IEND): the metadata is complete
            if descriptors:
                scan_descriptors(fp, header, planes, length, kind)
            break
        if length > MAX_CHUNK:
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes exceeds the chunk limit")
        if kind in FACTOR_TYPES:
            raise SvdiError("factor data before HEAD and PLAN chunks")
        if not ancillary and length > 1 << 16:
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes is too large")
        if ancillary and header is None:
            raise SvdiError("first chunk must be HEAD")
        known = kind in METADATA_CHUNKS
        if known and length > MAX_PAYLOAD[kind]:  # before reading it
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes exceeds its limit "
                            f"of {MAX_PAYLOAD[kind]}")
        payload = _read_payload(fp, kind, length, keep=known or not ancillary)
        if header is None:
            if kind != b"HEAD":
                raise SvdiError("first chunk must be HEAD")
            header, nplanes = _parse_header(memoryview(payload))
        elif kind == b"PLAN":
            planes.append(_parse_plane(memoryview(payload), header, len(planes)))
        elif ancillary:
            meta.add(kind, payload)
        else:
            raise SvdiError(f"unexpected {kind!r} chunk before all PLAN chunks")
    _check_work(planes, MAX_WORK)  # before Pillow allocates the image for load()
    return header, planes, meta.metadata


#: Files whose rest after the metadata is at most this many bytes are scanned for descriptors
#: from one read (a small image's blocks: one call instead of a seek and two reads per block).
_SCAN_IN_MEMORY = 1 << 20


def scan_descriptors(fp: IO[bytes], header: Header, planes: list[Plane], length: int,
                     kind: bytes) -> None:
    """Check the descriptor of every factor block from the chunk whose header (`length`,
    `kind`) was just read, reading only the first DESCRIPTOR_BYTES of each payload (version 5:
    the first MAX_RECORD_BYTES of each block record) and seeking past the rest (a small file's
    rest is read at once instead). Frames and CRCs are left to `unpack`; so is the end of the
    file: the scan stops at IEND or at the first chunk it cannot place (an error `unpack`
    reports)."""
    cursor: dict[tuple[int, str], int] = {}
    start = fp.tell()
    end = fp.seek(0, 2)
    fp.seek(start)
    if end - start <= _SCAN_IN_MEMORY:
        _scan_bytes(fp.read(), header, planes, length, kind, cursor)
        return
    while _scanned(kind):
        if length > MAX_CHUNK:
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes exceeds the chunk limit")
        start = fp.tell()
        if start + length + 4 > end:  # the file ends inside the chunk: unpack says so
            return
        if kind in FACTOR_TYPES and header.version < COMPACT_VERSION:
            _descriptor(kind, fp.read(min(length, DESCRIPTOR_BYTES)), planes, cursor)
        elif kind in FACTOR_TYPES:
            at = 0
            while True:  # record after record, seeking past their frames
                d = _record(kind, fp.read(min(length - at, MAX_RECORD_BYTES)), length - at,
                            planes, cursor)
                at += d.frame_end
                if at == length:
                    break
                fp.seek(start + at)
        fp.seek(start + length + 4)
        head = fp.read(8)
        if len(head) < 8:
            return
        length, kind = struct.unpack(">I4s", head)


def _scanned(kind: bytes) -> bool:
    """Whether `scan_descriptors` reads past a chunk of this type: factor blocks, MEAN and
    ancillary chunks (the scan stops at anything else)."""
    return kind in FACTOR_TYPES or kind in (b"MEAN", b"RSTR") \
        or (97 <= kind[0] <= 122 and kind.isalpha())


def _scan_bytes(rest: bytes, header: Header, planes: list[Plane], length: int, kind: bytes,
                cursor: dict[tuple[int, str], int]) -> None:
    """`scan_descriptors` over the rest of a small file, held in `rest` (from the payload of
    the chunk whose header was just read)."""
    view = memoryview(rest)
    pos = 0  # the payload of the current chunk
    while _scanned(kind):
        if length > MAX_CHUNK:
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes exceeds the chunk limit")
        if len(rest) - pos < length + 4:  # the file ends inside the chunk: unpack says so
            return
        if kind in FACTOR_TYPES and header.version < COMPACT_VERSION:
            _descriptor(kind, view[pos:pos + min(length, DESCRIPTOR_BYTES)], planes, cursor)
        elif kind in FACTOR_TYPES:
            payload = view[pos:pos + length]
            for _ in block_descriptors(kind, payload, header, planes, cursor):
                pass
        pos += length + 4
        if len(rest) - pos < 8:
            return
        length, kind = struct.unpack_from(">I4s", rest, pos)
        pos += 8


def read_headers(fp: BinaryIO) -> tuple[Header, list[Plane]]:
    """Read and check the signature, HEAD and PLAN chunks only, from a file (for Image.open)."""
    header, planes, _ = read_prefix(fp)
    return header, planes


def _check_work(planes: list[Plane], max_work: int) -> None:
    """Refuse planes whose reconstruction takes more than max_work multiply-adds in all."""
    work = sum(p.matrix_shape[0] * p.matrix_shape[1] * p.rank for p in planes)
    if work > max_work:
        raise SvdiError(f"reconstruction work {work} exceeds the limit {max_work}")


def _check_cut_chunk(ended: Truncation, chunk: str, header: Header, blocks: bool,
                     residuals: bool) -> None:
    """The chunk a file ends in, after its PLAN chunks: refused, as in a whole file, if its
    type cannot come there (its bytes that did not arrive cannot change that)."""
    kind = chunk.encode()
    if kind[0] >= 97 or kind == b"IEND":
        return
    if kind in FACTOR_TYPES and not residuals:
        return
    if kind == b"RBLK" and header.version >= 2:
        return
    if kind in (b"MEAN", b"RSTR") and not blocks and not residuals:
        return
    raise SvdiError(f"{ended.chunk} chunk at byte {ended.start} out of place or unknown "
                    f"(the file ends inside it at byte {ended.size})")


def _head_may_exceed(data: bytes, max_pixels: int) -> bool:
    """Whether the bytes of a HEAD chunk right after the signature, before any check, declare
    more pixels than `max_pixels` (`Header.counted_pixels`): a glance that costs a decode
    nothing, after which the chunk is read and checked whole."""
    at = len(SIGNATURE)
    if len(data) < at + 8 + HEAD_RECORD.size or data[at + 4:at + 8] != b"HEAD":
        return False
    _, width, height, _, channels, *_ = HEAD_RECORD.unpack_from(data, at + 8)
    return counted_pixels(width, height, channels) > max_pixels


def _check_pixels(header: Header, max_pixels: int, limit_note: str) -> None:
    """Refuse an image of more than `max_pixels` (`Header.counted_pixels`)."""
    if header.counted_pixels > max_pixels:
        raise SvdiError(f"image of {header.width}x{header.height} pixels{header.counted_note()} "
                        f"exceeds the limit of {max_pixels} pixels{limit_note}")


def unpack(data: bytes, max_work: int = MAX_WORK, max_pixels: int | None = None,
           limit_note: str = "", truncated: bool = False) -> Container:
    """Parse and validate a whole file. Raises SvdiError for anything that is not a valid .svdi.

    max_pixels: refuse images of more pixels (`Header.counted_pixels`: more than 4 channels
    count once for every 4), checked on HEAD before any block is read (the message ends with
    `limit_note`, which says where the limit came from).

    truncated: a file that ends early (a download cut short) is taken as far as it is whole:
    its complete chunks are checked as in a whole file, the chunk it ends in is dropped, and
    the container's `truncation` says where it ends and what of it is whole. Only the rules
    that the missing bytes could still satisfy are left unchecked (blocks covering every
    component while no residual block has come, residual blocks covering every row, IEND);
    a file that ends before its HEAD and PLAN chunks are whole is refused all the same.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SvdiError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(SIGNATURE):
        raise SvdiError(_not_svdi(data))
    header: Header | None = None
    nplanes = 0
    planes: list[Plane] = []
    blocks: list[Block] = []
    cursor: dict[tuple[int, str], int] = {}
    residuals: ResidualTable | None = None  # made at the first RBLK chunk
    order: ResidualOrder | None = None
    means: dict[int, MeanBlock] = {}
    restoration: dict[int, Restoration] | None = None
    meta = MetadataReader()
    # Where the file ends early; without `truncated` that is raised after the walk, which
    # then knows whether HEAD and the PLANs arrived (what decoding what arrived needs)
    cut: list[Truncation] = []
    compiled = kernels.get()  # asked once: each chunk's parser takes it
    if max_pixels is not None and compiled is not None and _head_may_exceed(data, max_pixels):
        # The limit on a whole first HEAD before the compiled table of every chunk, whose
        # memory grows with their count: a refused file costs nothing beyond its bytes. (The
        # Python walk reaches HEAD first anyway; a first chunk it would refuse, it refuses.)
        first = next(iter(_chunks(data, [])), None)
        if first is not None and first[0] == b"HEAD":
            _check_pixels(_parse_header(first[1])[0], max_pixels, limit_note)
    for kind, payload, start in _chunk_walk(data, cut, compiled):
        if header is None:
            if kind != b"HEAD":
                raise SvdiError("first chunk must be HEAD")
            header, nplanes = _parse_header(payload)
            if max_pixels is not None:
                _check_pixels(header, max_pixels, limit_note)
        elif kind == b"HEAD":
            raise SvdiError("more than one HEAD chunk")
        elif kind == b"PLAN":
            if len(planes) >= nplanes or blocks:
                raise SvdiError("unexpected PLAN chunk")
            planes.append(_parse_plane(payload, header, len(planes), compiled))
            if len(planes) == nplanes:
                _check_work(planes, max_work)
        elif kind in FACTOR_TYPES:
            if len(planes) != nplanes:
                raise SvdiError("factor block before all PLAN chunks")
            if residuals:
                raise SvdiError("factor block after a residual block")
            blocks.extend(_parse_blocks(kind, payload, header, planes, cursor, compiled))
            meta.blocks_seen = True
        elif kind == b"MEAN":
            if len(planes) != nplanes or blocks or residuals:
                raise SvdiError("MEAN chunk outside its place: after the PLAN chunks, before "
                                "the first block")
            block = _parse_means(payload, header, planes, means)
            means[block.plane] = block
        elif kind == b"RSTR":
            if len(planes) != nplanes or blocks or residuals:
                raise SvdiError("RSTR chunk outside its place: after the PLAN chunks, before "
                                "the first block")
            if restoration is not None:
                raise SvdiError("more than one RSTR chunk")
            restoration = _parse_restoration(payload, header, planes)
        elif kind == b"RBLK":
            if header.version < 2:
                raise SvdiError("residual block (RBLK) in a version 1 file")
            if len(planes) != nplanes:
                raise SvdiError("residual block before all PLAN chunks")
            if order is None:
                residuals = ResidualTable(memoryview(data), header)
                order = ResidualOrder(header, residuals)
            order.add(start, _parse_residual(payload, header))
            meta.blocks_seen = True
        elif kind[0] >= 97:
            meta.add(kind, payload)  # metadata is checked; unknown ancillary chunks skipped
        else:
            raise SvdiError(f"unknown critical chunk {kind.decode(errors='replace')}")
    ended = cut[0] if cut else None
    if ended is not None and header is not None and len(planes) == nplanes:
        if not truncated:  # the hint where "fill" has something to give (below: nothing)
            raise SvdiError(f"truncated file: {ended.where()}; {TRUNCATED_HINT}")
        if ended.chunk is not None:
            _check_cut_chunk(ended, ended.chunk, header, bool(blocks), bool(residuals))
    if header is None or len(planes) != nplanes:
        if ended is not None:  # no size and mode, or planes to decode: nothing to give
            raise SvdiError(f"truncated file: {ended.where()}, before its HEAD and PLAN "
                            "chunks are whole")
        if header is None:
            raise SvdiError("no HEAD chunk")
        raise SvdiError(f"{nplanes - len(planes)} PLAN chunks missing")
    if ended is None or residuals:  # (no factor block may follow a residual block)
        for p in planes:
            for factor in "USV":
                if cursor.get((p.index, factor), 0) != p.rank:
                    raise SvdiError(f"plane {p.index}: {factor} blocks cover "
                                    f"{cursor.get((p.index, factor), 0)} of {p.rank} "
                                    "components")
    if ended is None and order is not None:
        order.finish()
    elif ended is not None:
        whole = [min(cursor.get((p.index, f), 0) for f in "USV") for p in planes]
        rows = tuple(0 if order is None else order.cursor.get(c, 0)
                     for c in range(header.channels))
        ended = replace(ended, components=tuple(whole), residual_rows=rows)
    container = Container(header, planes, blocks, meta.metadata, residuals or [], means,
                          restoration or {}, truncation=ended)
    if compiled is not None:  # `Container.factor_blocks`' index, made in one call
        container._by_factor = compiled.factor_index(blocks)
    return container
