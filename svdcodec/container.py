"""The .svdi container: signature, CRC-checked chunks, header records and zstd blocks.

This module knows bytes, not linear algebra. It turns header records and integer arrays into a
byte string and back, and it is the single place where untrusted bytes are parsed: every size
is checked against the header and the documented limits before anything is allocated.
See spec/svdi.md for the byte layout.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np
import zstandard

from .errors import SvdiError

SIGNATURE = b"\x89SVD\r\n\x1a\n"
VERSION = 1

#: Largest width or height (and plane matrix side) a file may declare.
MAX_DIMENSION = 1 << 20
#: Largest number of channels (planes).
MAX_CHANNELS = 4
#: Largest rank a plane may declare.
MAX_RANK = 4096
#: Largest reconstruction work, the sum over planes of m*n*rank multiply-adds.
MAX_WORK = 1 << 36
#: Largest chunk payload, as in PNG.
MAX_CHUNK = (1 << 31) - 1

SAMPLE_TYPES = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 3: np.dtype(np.float32)}
SAMPLE_CODES = {dtype: code for code, dtype in SAMPLE_TYPES.items()}
ELEMENT_TYPES = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f4")}
ELEMENT_CODES = {dtype.newbyteorder("="): code for code, dtype in ELEMENT_TYPES.items()}

COLOUR_NONE, COLOUR_YCBCR = 0, 1
LAYOUT_PLAIN, LAYOUT_PATCH = 0, 1
PATCH_SIZES = (2, 4, 8, 16, 32)
PREDICTORS = (0, 1, 2, 3)  # none, horizontal, vertical, planar (see quantization.py)
FACTOR_TYPES = {b"UBLK": "U", b"SBLK": "S", b"VBLK": "V"}
FACTOR_CHUNKS = {factor: kind for kind, factor in FACTOR_TYPES.items()}

_HEAD = struct.Struct(">HIIBBBBBd")
_PLAN = struct.Struct(">BBBIIId")
_BLOCK = struct.Struct(">BIIB")
_DENSE = struct.Struct(">BBI")
_SPARSE = struct.Struct(">BIII")
DENSE, SPARSE = 0, 1


@dataclass(frozen=True)
class Header:
    """Image-wide fields of the HEAD chunk."""

    width: int
    height: int
    sample_type: int  # key of SAMPLE_TYPES
    channels: int
    colour: int  # COLOUR_NONE or COLOUR_YCBCR
    subsampling: int  # 0: every plane full size; 1: planes 1 and 2 halved in both directions
    scale: float  # sample value = scale * decoded plane value (before colour conversion)
    version: int = VERSION

    @property
    def dtype(self) -> np.dtype:
        return SAMPLE_TYPES[self.sample_type]

    def plane_shape(self, index: int) -> tuple[int, int]:
        """Height and width of plane `index`, implied by the image size and the subsampling."""
        if self.subsampling and index in (1, 2):
            return (self.height + 1) // 2, (self.width + 1) // 2
        return self.height, self.width


@dataclass(frozen=True)
class Plane:
    """One PLAN chunk: how a plane became a matrix and how it was quantized."""

    index: int
    layout: int  # LAYOUT_PLAIN or LAYOUT_PATCH
    patch: int  # patch side for LAYOUT_PATCH, 0 for LAYOUT_PLAIN
    height: int
    width: int
    rank: int
    step: float  # quantizer step of sigma*u and sigma*v

    @property
    def grid(self) -> tuple[int, int]:
        """Shape that one column of U takes for prediction: the patch grid, or a column."""
        if self.layout == LAYOUT_PATCH:
            return -(-self.height // self.patch), -(-self.width // self.patch)
        return self.height, 1

    @property
    def vgrid(self) -> tuple[int, int]:
        """Shape that one row of V^T takes for prediction: the patch, or a column."""
        if self.layout == LAYOUT_PATCH:
            return self.patch, self.patch
        return self.width, 1

    @property
    def matrix_shape(self) -> tuple[int, int]:
        gh, gw = self.grid
        vh, vw = self.vgrid
        return gh * gw, vh * vw


@dataclass
class Block:
    """One factor block: components [first, first+count) of U, S or V of one plane.

    Dense coding: `arrays` is (residuals,) shaped (count, *grid) for U, (count, *vgrid) for V and
    (count,) float32 for S. Sparse coding: `arrays` is (symbols, run escapes, value escapes) of
    the run/level symbols described in coding.py.

    `unpack` leaves U and V blocks compressed (`arrays` None, `frame` set, sizes checked): a
    decoder calls `data()` or `grid_rows()` when it needs them, so that all the blocks of a
    file never sit decompressed in memory at once.
    """

    factor: str  # "U", "S" or "V"
    plane: int
    first: int
    count: int
    coding: int  # DENSE or SPARSE
    arrays: tuple[np.ndarray, ...] | None = field(repr=False)
    predictor: int = 0
    stored: int = 0  # bytes of the chunk in the file, filled in when parsed
    frame: memoryview | None = field(default=None, repr=False, compare=False)
    #: (dtype, shape) of each array the frame holds, in order (set with `frame`).
    parts: tuple[tuple[np.dtype, tuple[int, ...]], ...] = field(default=(), repr=False,
                                                                compare=False)

    @property
    def what(self) -> str:
        return f"plane {self.plane} {self.factor} block at component {self.first}"

    @property
    def raw_bytes(self) -> int:
        """Bytes of the block's arrays, decompressed (`data`)."""
        if self.arrays is not None:
            return sum(a.nbytes for a in self.arrays)
        return sum(dtype.itemsize * int(np.prod(shape)) for dtype, shape in self.parts)

    def data(self) -> tuple[np.ndarray, ...]:
        """The arrays, decompressed now if the block was read lazily (not cached: the caller
        keeps them only as long as it needs them)."""
        if self.arrays is not None:
            return self.arrays
        assert self.frame is not None, "a block has arrays or a frame"
        sizes = [dtype.itemsize * int(np.prod(shape)) for dtype, shape in self.parts]
        raw = _decompress(self.frame, sum(sizes), self.what)
        out, at = [], 0
        for (dtype, shape), size in zip(self.parts, sizes):
            out.append(np.frombuffer(raw, dtype, size // dtype.itemsize, at).reshape(shape))
            at += size
        return tuple(out)

    def grid_rows(self, grid: tuple[int, int], rows: int
                  ) -> Iterator[tuple[int, int, np.ndarray]]:
        """A dense U or V block of components shaped `grid`, in file order, `rows` grid rows at
        a time: (component, first row, residuals (rows, grid width)). A compressed block is
        read with zstd's streaming decoder, so a large int32 block never exists whole; its
        errors raise SvdiError."""
        gh, gw = grid
        if self.arrays is not None:
            data = self.arrays[0].reshape(self.count, gh, gw)
            for k in range(self.count):
                for a in range(0, gh, rows):
                    yield k, a, data[k, a:a + rows]
            return
        assert self.frame is not None, "a block has arrays or a frame"
        dtype = self.parts[0][0]
        try:
            reader = zstandard.ZstdDecompressor().stream_reader(self.frame,
                                                                read_across_frames=True)
            for k in range(self.count):
                for a in range(0, gh, rows):
                    n = min(rows, gh - a) * gw * dtype.itemsize
                    raw = reader.read(n)
                    while 0 < len(raw) < n and (more := reader.read(n - len(raw))):
                        raw += more
                    if len(raw) != n:
                        raise SvdiError(f"{self.what}: zstd frame ends early")
                    yield k, a, np.frombuffer(raw, dtype).reshape(-1, gw)
            if reader.read(1):
                raise SvdiError(f"{self.what}: zstd frame is followed by extra data")
        except (zstandard.ZstdError, MemoryError) as exc:
            raise SvdiError(f"{self.what}: corrupt zstd data ({exc})") from None


@dataclass
class Container:
    header: Header
    planes: list[Plane]
    blocks: list[Block]

    def singular_values(self, plane: int) -> np.ndarray:
        """The plane's S blocks joined, float32 (unpack checked they cover 0..rank in order)."""
        parts = [b.data()[0] for b in self.blocks if b.plane == plane and b.factor == "S"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


# ----------------------------------------------------------------------------- writing


def _chunk(kind: bytes, payload: bytes) -> bytes:
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
    head = _BLOCK.pack(block.plane, block.first, block.count, block.coding)
    if block.coding == DENSE:
        (data,) = block.data()
        code = _element_code(data)
        raw = np.ascontiguousarray(data, dtype=ELEMENT_TYPES[code]).tobytes()
        head += _DENSE.pack(code, block.predictor, data.size)
    else:
        symbols, xrun, xval = block.data()
        code = _element_code(xval)
        raw = b"".join((symbols.astype(np.uint8).tobytes(), xrun.astype("<u2").tobytes(),
                        xval.astype(ELEMENT_TYPES[code]).tobytes()))
        head += _SPARSE.pack(code, symbols.size, xrun.size, xval.size)
    frame = zstandard.ZstdCompressor(level=level, write_content_size=True).compress(raw)
    return _chunk(FACTOR_CHUNKS[block.factor], head + frame)


def pack_header(header: Header, planes: list[Plane]) -> bytes:
    """Signature, HEAD and the PLAN chunks: everything before the factor blocks."""
    h = header
    parts = [SIGNATURE, _chunk(b"HEAD", _HEAD.pack(h.version, h.width, h.height, h.sample_type,
                                                    h.channels, h.colour, h.subsampling,
                                                    len(planes), h.scale))]
    for p in planes:
        parts.append(_chunk(b"PLAN", _PLAN.pack(p.index, p.layout, p.patch, p.height, p.width,
                                                p.rank, p.step)))
    return b"".join(parts)


END = _chunk(b"IEND", b"")


def pack(container: Container, level: int = 3) -> bytes:
    """Serialize a container. Blocks are written in the order given (importance order)."""
    blocks = [pack_block(b, level) for b in container.blocks]
    return b"".join([pack_header(container.header, container.planes), *blocks, END])


# ----------------------------------------------------------------------------- reading


def _chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """Yield (type, payload) of every chunk up to IEND, verifying lengths and CRCs."""
    view = memoryview(data)
    pos = len(SIGNATURE)
    while True:
        if len(data) - pos < 12:
            raise SvdiError(f"truncated file: chunk header expected at byte {pos}")
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(view[pos + 4:pos + 8])
        if not all(65 <= c <= 90 or 97 <= c <= 122 for c in kind):
            raise SvdiError(f"invalid chunk type {kind!r} at byte {pos}")
        if length > MAX_CHUNK or length > len(data) - pos - 12:
            raise SvdiError(f"truncated file: {kind.decode()} chunk of {length} bytes at byte {pos}")
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
        yield kind, payload


def _parse_header(payload: memoryview) -> tuple[Header, int]:
    if len(payload) < 2:
        raise SvdiError("HEAD chunk too short")
    (version,) = struct.unpack_from(">H", payload)
    if version != VERSION:
        raise SvdiError(f"unsupported format version {version} (this reader knows {VERSION})")
    if len(payload) != _HEAD.size:
        raise SvdiError(f"HEAD chunk has {len(payload)} bytes, expected {_HEAD.size}")
    _, width, height, stype, channels, colour, sub, nplanes, scale = _HEAD.unpack(payload)
    if not (1 <= width <= MAX_DIMENSION and 1 <= height <= MAX_DIMENSION):
        raise SvdiError(f"image size {width}x{height} outside 1..{MAX_DIMENSION}")
    if stype not in SAMPLE_TYPES:
        raise SvdiError(f"unknown sample type {stype}")
    if not 1 <= channels <= MAX_CHANNELS or nplanes != channels:
        raise SvdiError(f"invalid channel count {channels} with {nplanes} planes")
    if colour == COLOUR_YCBCR:
        if stype != 1 or channels not in (3, 4):
            raise SvdiError("Y'CbCr transform needs 8-bit RGB or RGBA")
    elif colour != COLOUR_NONE:
        raise SvdiError(f"unknown colour transform {colour}")
    if sub not in (0, 1) or (sub and colour != COLOUR_YCBCR):
        raise SvdiError(f"invalid chroma subsampling {sub}")
    if not (np.isfinite(scale) and scale > 0):
        raise SvdiError(f"invalid sample scale {scale}")
    if stype == 3 and scale > float(np.finfo(np.float32).max) / 255:
        raise SvdiError(f"sample scale {scale} makes samples overflow float32")
    header = Header(width, height, stype, channels, colour, sub, scale, version)
    return header, nplanes


def _parse_plane(payload: memoryview, header: Header, index: int) -> Plane:
    if len(payload) != _PLAN.size:
        raise SvdiError(f"PLAN chunk has {len(payload)} bytes, expected {_PLAN.size}")
    plane = Plane(*_PLAN.unpack(payload))
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
    if not (np.isfinite(plane.step) and plane.step > 0):
        raise SvdiError(f"plane {index}: invalid quantizer step {plane.step}")
    return plane


def _check_frame(frame: memoryview, nbytes: int, what: str) -> None:
    """Refuse a zstd frame whose declared content size is not the `nbytes` the header implies."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise SvdiError(f"{what}: bad zstd frame ({exc})") from None
    if declared != nbytes:
        raise SvdiError(f"{what}: zstd frame declares {declared} bytes, header implies {nbytes}")


def _decompress(frame: memoryview, nbytes: int, what: str) -> bytes:
    """Decompress one zstd frame to exactly `nbytes`, never allocating what the frame claims."""
    _check_frame(frame, nbytes, what)
    try:
        # Output buffer of exactly the checked size (the default is 128 KiB even for 10 bytes).
        dobj = zstandard.ZstdDecompressor().decompressobj(write_size=max(nbytes, 1))
        raw = dobj.decompress(frame)
    except (zstandard.ZstdError, MemoryError) as exc:
        raise SvdiError(f"{what}: corrupt zstd data ({exc})") from None
    if len(raw) != nbytes or not dobj.eof or dobj.unused_data:
        raise SvdiError(f"{what}: zstd frame is incomplete or followed by extra data")
    return raw


def _parse_block(kind: bytes, payload: memoryview, planes: list[Plane],
                 cursor: dict[tuple[int, str], int]) -> Block:
    factor = FACTOR_TYPES[kind]
    if len(payload) < _BLOCK.size:
        raise SvdiError(f"{kind.decode()} chunk too short")
    index, first, count, coding = _BLOCK.unpack_from(payload)
    what = f"plane {index} {factor} block at component {first}"
    if index >= len(planes):
        raise SvdiError(f"{what}: no such plane")
    plane = planes[index]
    if first != cursor.get((index, factor), 0) or count < 1 or first + count > plane.rank:
        raise SvdiError(f"{what}: components {first}..{first + count} out of order or past "
                        f"rank {plane.rank}")
    cursor[(index, factor)] = first + count
    shape = {"U": plane.grid, "V": plane.vgrid, "S": (1, 1)}[factor]
    rows = shape[0] * shape[1]
    offset = _BLOCK.size
    if coding == DENSE:
        if len(payload) < offset + _DENSE.size:
            raise SvdiError(f"{what}: descriptor too short")
        code, predictor, elements = _DENSE.unpack_from(payload, offset)
        if elements != count * rows:
            raise SvdiError(f"{what}: declares {elements} elements, header implies {count * rows}")
        if code not in ELEMENT_TYPES or (factor == "S") != (code == 4):
            raise SvdiError(f"{what}: invalid element type {code}")
        if predictor not in PREDICTORS or (factor == "S" and predictor):
            raise SvdiError(f"{what}: invalid predictor {predictor}")
        dtype = ELEMENT_TYPES[code]
        frame = payload[offset + _DENSE.size:]
        if factor != "S":  # decompressed when the decoder needs it
            _check_frame(frame, elements * dtype.itemsize, what)
            return Block(factor, index, first, count, coding, None, predictor, len(payload) + 12,
                         frame, ((dtype, (count, *shape)),))
        data = np.frombuffer(_decompress(frame, elements * dtype.itemsize, what), dtype=dtype)
        if not (np.all(np.isfinite(data)) and np.all(data > 0)):
            raise SvdiError(f"{what}: singular values must be finite and positive")
        arrays: tuple[np.ndarray, ...] = (data,)
    elif coding == SPARSE and factor != "S":
        if len(payload) < offset + _SPARSE.size:
            raise SvdiError(f"{what}: descriptor too short")
        code, nsym, nxrun, nxval = _SPARSE.unpack_from(payload, offset)
        predictor = 0
        if code not in (2, 3):
            raise SvdiError(f"{what}: invalid escape type {code}")
        if not rows <= nsym <= rows * (count + 1) or nxrun > nsym or nxval > nsym:
            raise SvdiError(f"{what}: stream sizes {nsym}/{nxrun}/{nxval} do not fit {rows} rows")
        dtype = ELEMENT_TYPES[code]
        frame = payload[offset + _SPARSE.size:]
        _check_frame(frame, nsym + 2 * nxrun + dtype.itemsize * nxval, what)
        parts = ((np.dtype(np.uint8), (nsym,)), (np.dtype("<u2"), (nxrun,)), (dtype, (nxval,)))
        return Block(factor, index, first, count, coding, None, predictor, len(payload) + 12,
                     frame, parts)
    else:
        raise SvdiError(f"{what}: unknown coding {coding}")
    return Block(factor, index, first, count, coding, arrays, predictor,
                 stored=len(payload) + 12)


def read_headers(fp: BinaryIO) -> tuple[Header, list[Plane]]:
    """Read and check the signature, HEAD and PLAN chunks only, from a file (for Image.open)."""
    if fp.read(len(SIGNATURE)) != SIGNATURE:
        raise SvdiError("not an SVDI file (bad signature)")
    header: Header | None = None
    planes: list[Plane] = []
    nplanes = 0
    while header is None or len(planes) < nplanes:
        head = fp.read(8)
        if len(head) < 8:
            raise SvdiError("truncated file: chunk header expected")
        length, kind = struct.unpack(">I4s", head)
        if length > 1 << 16 and kind in (b"HEAD", b"PLAN"):
            raise SvdiError(f"{kind.decode()} chunk of {length} bytes is too large")
        if length > 1 << 16:  # a large chunk before the PLANs can only be a block: invalid here
            raise SvdiError("factor data before HEAD and PLAN chunks")
        rest = fp.read(length + 4)
        if len(rest) < length + 4:
            raise SvdiError(f"truncated file: {kind!r} chunk")
        payload = memoryview(rest)[:length]
        if zlib.crc32(payload, zlib.crc32(kind)) != struct.unpack(">I", rest[length:])[0]:
            raise SvdiError(f"CRC mismatch in {kind!r} chunk")
        if header is None:
            if kind != b"HEAD":
                raise SvdiError("first chunk must be HEAD")
            header, nplanes = _parse_header(payload)
        elif kind == b"PLAN":
            planes.append(_parse_plane(payload, header, len(planes)))
        elif kind[:1].islower():
            continue
        else:
            raise SvdiError(f"unexpected {kind!r} chunk before all PLAN chunks")
    _check_work(planes, MAX_WORK)  # before Pillow allocates the image for load()
    return header, planes


def _check_work(planes: list[Plane], max_work: int) -> None:
    """Refuse planes whose reconstruction takes more than max_work multiply-adds in all."""
    work = sum(p.matrix_shape[0] * p.matrix_shape[1] * p.rank for p in planes)
    if work > max_work:
        raise SvdiError(f"reconstruction work {work} exceeds the limit {max_work}")


def unpack(data: bytes, max_work: int = MAX_WORK, max_pixels: int | None = None) -> Container:
    """Parse and validate a whole file. Raises SvdiError for anything that is not a valid .svdi.

    max_pixels: refuse images of more pixels, checked on HEAD before any block is read.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SvdiError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data.startswith(SIGNATURE):
        raise SvdiError("not an SVDI file (bad signature)")
    header: Header | None = None
    nplanes = 0
    planes: list[Plane] = []
    blocks: list[Block] = []
    cursor: dict[tuple[int, str], int] = {}
    for kind, payload in _chunks(data):
        if header is None:
            if kind != b"HEAD":
                raise SvdiError("first chunk must be HEAD")
            header, nplanes = _parse_header(payload)
            if max_pixels is not None and header.width * header.height > max_pixels:
                raise SvdiError(f"image of {header.width}x{header.height} pixels exceeds the "
                                f"limit of {max_pixels} pixels (PIL.Image.MAX_IMAGE_PIXELS)")
        elif kind == b"HEAD":
            raise SvdiError("more than one HEAD chunk")
        elif kind == b"PLAN":
            if len(planes) >= nplanes or blocks:
                raise SvdiError("unexpected PLAN chunk")
            planes.append(_parse_plane(payload, header, len(planes)))
            if len(planes) == nplanes:
                _check_work(planes, max_work)
        elif kind in FACTOR_TYPES:
            if len(planes) != nplanes:
                raise SvdiError("factor block before all PLAN chunks")
            blocks.append(_parse_block(kind, payload, planes, cursor))
        elif kind[0] >= 97:
            continue  # unknown ancillary chunk
        else:
            raise SvdiError(f"unknown critical chunk {kind.decode(errors='replace')}")
    if header is None:
        raise SvdiError("no HEAD chunk")
    if len(planes) != nplanes:
        raise SvdiError(f"{nplanes - len(planes)} PLAN chunks missing")
    for p in planes:
        for factor in "USV":
            if cursor.get((p.index, factor), 0) != p.rank:
                raise SvdiError(f"plane {p.index}: {factor} blocks cover "
                                f"{cursor.get((p.index, factor), 0)} of {p.rank} components")
    return Container(header, planes, blocks)
