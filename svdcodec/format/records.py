"""The records of the .svdi format (spec/svdi.md §1-4): signature, limits, code tables, the byte
layouts of HEAD, PLAN and the block descriptors, and the Header and Plane they decode to.

Bytes only: nothing here knows linear algebra.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from ..errors import SvdiError

__all__ = [
    'AQ_VERSION',
    'BLOCK_RECORD',
    'COLOUR_NONE',
    'COLOUR_YCBCR',
    'COMPACT_VERSION',
    'DENSE',
    'DENSE_RECORD',
    'ELEMENT_CODES',
    'ELEMENT_TYPES',
    'FACTOR_CHUNKS',
    'FACTOR_TYPES',
    'HEAD_RECORD',
    'LAYOUT_PATCH',
    'LAYOUT_PLAIN',
    'MAX_AQ_COMPONENTS',
    'MAX_CHANNELS',
    'MAX_CHANNELS_V1',
    'MAX_CHUNK',
    'MAX_DIMENSION',
    'MAX_RANK',
    'MAX_RECORD_BYTES',
    'MAX_RESIDUAL',
    'MAX_RESIDUAL_ELEMENTS',
    'MAX_SHIFT',
    'MAX_WIDE_STEP',
    'MAX_WORK',
    'MEAN_RECORD',
    'NO_AQ',
    'NO_DEBLOCK',
    'NO_REFERENCE',
    'PATCH_SIZES',
    'PLAN_RECORD',
    'PLAN_RECORD_V2',
    'PLAN_RECORD_V4',
    'PLAN_RECORD_V6',
    'PREDICTORS',
    'RESIDUAL_RECORD',
    'RESTORATION_CLASSES',
    'RESTORATION_COEFFICIENT_RANGE',
    'RESTORATION_OFFSETS',
    'RESTORATION_VERSION',
    'SAMPLE_CODES',
    'SAMPLE_TYPES',
    'SAMPLE_TYPES_V1',
    'SIGNATURE',
    'SPARSE',
    'SPARSE_RECORD',
    'STORED',
    'VERSION',
    'VERSIONS',
    'WRAPPED_ELEMENT',
    'WRAPPED_SAMPLE_TYPES',
    'WRAPPED_VERSION',
    'WRITTEN_VERSION',
    'Header',
    'Plane',
    'Restoration',
    'coding_byte',
    'plan_record',
    'read_varint',
    'residual_step_limit',
    'varint',
]

SIGNATURE = b"\x89SVD\r\n\x1a\n"
#: The newest format version, the one this reader knows best; it reads every one of VERSIONS.
VERSION = 7
VERSIONS = (1, 2, 3, 4, 5, 6, 7)
#: The first version of the compact container (spec §4.2): several block records to a factor
#: chunk, LEB128 fields, zstd frames without their magic number or stored raw.
COMPACT_VERSION = 5
#: The version the reference encoder writes unless a file needs a later one (the lowest that
#: holds the file: a file without a restoration filter stays version 5, byte for byte).
WRITTEN_VERSION = 5

# Format version 6's restoration filter (spec §5.6): an RSTR chunk of per-plane records, each
# a point-symmetric Wiener filter on the 7x7 diamond with up to 4 coefficient sets chosen by
# local activity.
#: The first version with the RSTR chunk.
RESTORATION_VERSION = 6
#: One offset (dy, dx) of each point-symmetric pair of the 7x7 diamond, in coefficient order.
RESTORATION_OFFSETS = ((0, 1), (0, 2), (0, 3), (1, -2), (1, -1), (1, 0), (1, 1), (1, 2),
                       (2, -1), (2, 0), (2, 1), (3, 0))
#: Most coefficient sets (activity classes) of a plane's filter.
RESTORATION_CLASSES = 4
#: Coefficients are integers in 1/128 (7 bits, signed): this inclusive range.
RESTORATION_COEFFICIENT_RANGE = (-64, 63)
#: The first version of adaptive quantization per patch (spec §5.5): PLAN's K and G. A file
#: without an adapted plane is written in the version before it.
AQ_VERSION = 6
#: The first version of the wrapped residual element (spec §4.1, §5.3): int16 residuals of
#: 16-bit samples taken modulo 2^16, so that a residual of 17 bits (the difference of two 16-bit
#: values) is stored in 16. A file without a wrapped block is written in an earlier version.
WRAPPED_VERSION = 7
#: The RBLK element type of the wrapped residuals (int16 elements; 4 is float32 in factor
#: blocks and never an RBLK's type).
WRAPPED_ELEMENT = 5
#: Sample types whose residual blocks may be wrapped: those of 2^16 values (uint16, int16).
WRAPPED_SAMPLE_TYPES = (2, 5)

#: Largest width or height (and plane matrix side) a file may declare.
MAX_DIMENSION = 1 << 20
#: Largest number of channels (planes): version 2 (HEAD's u8 fields), and version 1.
MAX_CHANNELS = 255
MAX_CHANNELS_V1 = 4
#: Largest rank a plane may declare.
MAX_RANK = 4096
#: Largest reconstruction work, the sum over planes of m*n*rank multiply-adds.
MAX_WORK = 1 << 36
#: Largest chunk payload, as in PNG.
MAX_CHUNK = (1 << 31) - 1
#: Version 2: largest shift F of the exact reconstruction (spec §5.1).
MAX_SHIFT = 63
#: Version 2: largest |q| of a residual sample (spec §4.1).
MAX_RESIDUAL = (1 << 31) - 1
#: Version 2: most elements (rows x width) one residual block may declare.
MAX_RESIDUAL_ELEMENTS = (1 << 31) - 1
#: Version 2: largest residual step of 32-bit integer samples, so that |q * step| < 2^52 and
#: every value of spec §5.3's sum is exact in binary64 (JavaScript Numbers) as in integers.
MAX_WIDE_STEP = (1 << 21) - 1
#: Version 2: the reference field of a residual block that has none.
NO_REFERENCE = 255

#: Sample types by HEAD code; codes 4-8 are version 2 only (SAMPLE_TYPES_V1: version 1's).
SAMPLE_TYPES: dict[int, np.dtype] = {1: np.dtype(np.uint8), 2: np.dtype(np.uint16),
                                     3: np.dtype(np.float32), 4: np.dtype(np.int8),
                                     5: np.dtype(np.int16), 6: np.dtype(np.int32),
                                     7: np.dtype(np.uint32), 8: np.dtype(np.float64)}
SAMPLE_TYPES_V1 = (1, 2, 3)
SAMPLE_CODES = {dtype: code for code, dtype in SAMPLE_TYPES.items()}
ELEMENT_TYPES: dict[int, np.dtype] = {1: np.dtype("<i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"),
                                      4: np.dtype("<f4")}
ELEMENT_CODES = {dtype.newbyteorder("="): code for code, dtype in ELEMENT_TYPES.items()}

COLOUR_NONE, COLOUR_YCBCR = 0, 1
LAYOUT_PLAIN, LAYOUT_PATCH = 0, 1
PATCH_SIZES = (2, 4, 8, 16, 32)
PREDICTORS = (0, 1, 2, 3)  # none, horizontal, vertical, planar (see codec/coding.py)
FACTOR_TYPES = {b"UBLK": "U", b"SBLK": "S", b"VBLK": "V"}
FACTOR_CHUNKS = {factor: kind for kind, factor in FACTOR_TYPES.items()}
#: Block codings.
DENSE, SPARSE = 0, 1

#: Payload of HEAD: version, width, height, sample type, channels, colour, subsampling, planes,
#: scale.
HEAD_RECORD = struct.Struct(">HIIBBBBBd")
#: Payload of PLAN: index, layout, patch, height, width, rank, step.
PLAN_RECORD = struct.Struct(">BBBIIId")
#: Payload of PLAN in version 2: the same, then the shift F of the exact reconstruction.
PLAN_RECORD_V2 = struct.Struct(">BBBIIIdB")
#: Payload of PLAN in version 4: version 2's, then the deblocking filter's thresholds alpha and
#: beta and its clamp tc (all 0: no filter; spec §3, §5.4).
PLAN_RECORD_V4 = struct.Struct(">BBBIIIdBBBB")
#: Version 4: the (alpha, beta, tc) of a plane that is not filtered.
NO_DEBLOCK = (0, 0, 0)
#: Payload of PLAN in version 6: version 4's, then adaptive quantization's K (0: off) and G
#: (binary16 bits; spec §3, §5.5).
PLAN_RECORD_V6 = struct.Struct(">BBBIIIdBBBBBH")
#: Version 6: the (K, G bits) of a plane without adaptive quantization.
NO_AQ = (0, 0)
#: Version 6: largest K (the map reads components 1..K - 1; spec §5.5).
MAX_AQ_COMPONENTS = 16
#: Start of a residual block's payload (RBLK, version 2): channel, reference channel, first
#: row, rows, step, bound, element type, predictor; the zstd frame follows.
RESIDUAL_RECORD = struct.Struct(">BBIIddBB")
#: Start of a MEAN chunk's payload (version 2): plane; the zstd frame of the column means follows.
MEAN_RECORD = struct.Struct(">B")
#: Start of a block's payload: plane, first component, count, coding.
BLOCK_RECORD = struct.Struct(">BIIB")
#: Dense block descriptor: element type, predictor, element count.
DENSE_RECORD = struct.Struct(">BBI")
#: Sparse block descriptor: escape type, symbols, run escapes, value escapes.
SPARSE_RECORD = struct.Struct(">BIII")

#: Version 5 (spec §4.2): the coding byte's flag of a block stored raw, not in a zstd frame.
STORED = 2
#: Version 5: most bytes a LEB128 field takes (values below 2^32).
MAX_VARINT_BYTES = 5
#: Version 5: most bytes of a block record before its frame: plane, count, coding, the three
#: sparse sizes and the frame length.
MAX_RECORD_BYTES = 2 + 5 * MAX_VARINT_BYTES + 1


def varint(value: int) -> bytes:
    """`value` (0 <= value < 2^32) as unsigned LEB128, the shortest form (spec §4.2)."""
    assert 0 <= value < 1 << 32, value
    if value < 0x80:  # one byte: most counts and sizes of a small image's records
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_varint(data: bytes | memoryview, at: int, what: str) -> tuple[int, int]:
    """(value, position after it) of the LEB128 field at `at` (spec §4.2): at most 5 bytes, a
    value below 2^32, in its shortest form (no final 0x00 byte after the first), so that every
    number has one encoding and a field cannot hide bytes."""
    if at + 1 < len(data):  # the common short forms without the loop's rules
        byte = data[at]
        if byte < 0x80:  # one byte: most counts of a small image's records
            return byte, at + 1
        high = data[at + 1]
        if 0 < high < 0x80:  # two bytes, the second non-zero (shortest form): most frame sizes
            return (byte & 0x7F) | high << 7, at + 2
    elif at < len(data) and data[at] < 0x80:
        return data[at], at + 1
    value = shift = 0
    for i in range(MAX_VARINT_BYTES):
        if at + i >= len(data):
            raise SvdiError(f"{what}: record ends inside a number")
        byte = data[at + i]
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if i and not byte:
                raise SvdiError(f"{what}: number not in its shortest form")
            if value >= 1 << 32:
                raise SvdiError(f"{what}: number of {value} exceeds 32 bits")
            return value, at + i + 1
    raise SvdiError(f"{what}: number longer than {MAX_VARINT_BYTES} bytes")


def coding_byte(coding: int, stored: bool, predictor: int, element: int) -> int:
    """Version 5's coding byte (spec §4.2): bit 0 sparse, bit 1 stored, bits 2-3 the
    predictor, bits 4-6 the element type (dense) or escape type (sparse), bit 7 zero."""
    return coding | (STORED if stored else 0) | predictor << 2 | element << 4


def plan_record(version: int) -> struct.Struct:
    """The PLAN chunk's layout in a file of this version (spec §3): 23, 24, 27 or 30 bytes."""
    if version >= AQ_VERSION:
        return PLAN_RECORD_V6
    return PLAN_RECORD_V4 if version >= 4 else PLAN_RECORD_V2 if version >= 2 else PLAN_RECORD


@cache  # (the reader asks for every residual block)
def residual_step_limit(dtype: np.dtype) -> int:
    """Largest step of a residual block of integer samples (spec §4.1): 2 (max - min) + 1 for
    8- and 16-bit types, MAX_WIDE_STEP for 32-bit ones."""
    info = np.iinfo(dtype)
    if info.bits >= 32:
        return MAX_WIDE_STEP
    return 2 * (int(info.max) - int(info.min)) + 1


@dataclass(frozen=True)
class Header:
    """Image-wide fields of the HEAD chunk."""

    width: int
    height: int
    sample_type: int  # key of SAMPLE_TYPES
    channels: int
    colour: int  # COLOUR_NONE or COLOUR_YCBCR (uint8; version 3: also uint16)
    subsampling: int  # 0: every plane full size; 1: planes 1 and 2 halved in both directions
    scale: float  # sample value = scale * decoded plane value (before colour conversion)
    version: int = 1  # 2: exact planes and residual blocks; 3: also Y'CbCr of uint16 samples;
    # 4: also the deblocking filter (PLAN's last 3 bytes); 5: also the compact container
    # (block records, spec §4.2; the reference encoder writes 5); 6: also the restoration
    # filter (RSTR chunk, spec §5.6) and adaptive quantization per patch (PLAN's K and G,
    # spec §5.5); written only for files that use one of them

    @property
    def dtype(self) -> np.dtype:
        return SAMPLE_TYPES[self.sample_type]

    @property
    def counted_pixels(self) -> int:
        """The pixels a decoder's limit (max_pixels) counts: width x height, an image of more
        than 4 channels counted once for every 4 (a Pillow pixel holds at most 4 samples), so
        that the limit bounds the samples of any file as it does of Pillow's images."""
        return counted_pixels(self.width, self.height, self.channels)

    def counted_note(self) -> str:
        """How counted_pixels was counted, for the message of a refusal ("" up to 4 channels)."""
        if self.channels <= 4:
            return ""
        return (f" of {self.channels} channels (counted as {self.counted_pixels} pixels, one "
                "for every 4 channels)")

    def plane_shape(self, index: int) -> tuple[int, int]:
        """Height and width of plane `index`, implied by the image size and the subsampling."""
        if self.subsampling and index in (1, 2):
            return (self.height + 1) // 2, (self.width + 1) // 2
        return self.height, self.width


def counted_pixels(width: int, height: int, channels: int) -> int:
    """`Header.counted_pixels` of these fields (also of a HEAD not yet checked)."""
    return width * height * -(-channels // 4)


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
    shift: int | None = None  # version 2: F of the exact reconstruction; None in version 1
    #: version 4: the deblocking filter's (alpha, beta, tc) in 8-bit sample units, NO_DEBLOCK
    #: for none (spec §5.4)
    deblock: tuple[int, int, int] = NO_DEBLOCK
    #: version 6: adaptive quantization's (K, G as binary16 bits), NO_AQ for none (spec §5.5)
    aq: tuple[int, int] = NO_AQ

    #: Shape that one column of U takes for prediction: the patch grid, or a column.
    grid: tuple[int, int] = field(init=False, repr=False, compare=False)
    #: Shape that one row of V^T takes for prediction: the patch, or a column.
    vgrid: tuple[int, int] = field(init=False, repr=False, compare=False)
    matrix_shape: tuple[int, int] = field(init=False, repr=False, compare=False)
    #: Whether the plane's left factor rows carry adaptive multipliers (version 6).
    adapted: bool = field(init=False, repr=False, compare=False)
    #: Whether the decoder applies the deblocking filter to this plane (version 4).
    filtered: bool = field(init=False, repr=False, compare=False)
    #: Whether the plane is reconstructed by the exact integer rule (version 2).
    exact: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Read per block and band: set once here (functools.cached_property takes a lock on
        # every first read, three per plane of every file opened; a property is a call at
        # each of a decode's dozens of reads).
        self.__dict__.update(_derived(self.layout, self.patch, self.height, self.width,
                                      self.shift, self.deblock, self.aq))

    @classmethod
    def of_fields(cls, index: int, layout: int, patch: int, height: int, width: int,
                  rank: int, step: float, shift: int | None, deblock: tuple[int, int, int],
                  aq: tuple[int, int]) -> Plane:
        """The plane of these fields, as the constructor makes it, without the frozen
        dataclass's __init__, which stores each field through object.__setattr__ (the reader
        makes every plane of every file it opens)."""
        plane = object.__new__(cls)
        plane.__dict__.update(index=index, layout=layout, patch=patch, height=height,
                              width=width, rank=rank, step=step, shift=shift, deblock=deblock,
                              aq=aq)
        plane.__dict__.update(_derived(layout, patch, height, width, shift, deblock, aq))
        return plane


def _derived(layout: int, patch: int, height: int, width: int, shift: int | None,
             deblock: tuple[int, int, int], aq: tuple[int, int]) -> dict[str, object]:
    """A plane's fields made from the others (`Plane`'s init=False fields, for the constructor
    and `Plane.of_fields`). A patch layout without a patch side has no grid, vgrid or
    matrix_shape: the reader refuses it before it reads them."""
    flags: dict[str, object] = {"adapted": aq[0] != 0, "filtered": deblock != NO_DEBLOCK,
                                "exact": shift is not None}
    if layout == LAYOUT_PATCH:
        if patch < 1:
            return flags
        grid = (-(-height // patch), -(-width // patch))
        vgrid = (patch, patch)
    else:
        grid, vgrid = (height, 1), (width, 1)
    flags["grid"], flags["vgrid"] = grid, vgrid
    flags["matrix_shape"] = (grid[0] * grid[1], vgrid[0] * vgrid[1])
    return flags


@dataclass(frozen=True)
class Restoration:
    """One plane's record of the RSTR chunk (version 6, spec §5.6): the activity bounds
    (non-decreasing; a sample's class is how many are <= its activity) and per class the 12
    coefficients in 1/128 of RESTORATION_OFFSETS' symmetric pairs."""

    plane: int
    bounds: tuple[int, ...]
    coefficients: tuple[tuple[int, ...], ...]

    @property
    def classes(self) -> int:
        return len(self.coefficients)

    def pack(self) -> bytes:
        return (struct.pack(">BB", self.plane, self.classes)
                + struct.pack(f">{len(self.bounds)}H", *self.bounds)
                + struct.pack(f">{self.classes * len(RESTORATION_OFFSETS)}b",
                              *(c for row in self.coefficients for c in row)))

    def table(self) -> np.ndarray:
        """The coefficients as int64 (classes, 12), for the filter kernels."""
        return np.array(self.coefficients, dtype=np.int64).reshape(-1, len(RESTORATION_OFFSETS))
