#!/usr/bin/env python3
"""Write the .svdi conformance vectors to spec/vectors/ and hostile files to tests/regressions/.

    python spec/make_vectors.py [--out spec/vectors] [--regressions tests/regressions]

Valid vectors are built from explicit integer factors, not by the encoder, so they stay put while
the encoder is tuned. Their expected pixels come from the reference decoder below, written from
the format description, not from svdcodec.decoder. Steps and singular values are powers of two
and the factors small integers, so every plane value is exact in float32 as well: then every
conforming decoder, version 1's too (whose reconstruction may round differently only near a
rounding boundary), gives the same samples, and an integer vector whose planes are whole numbers
is held to them exactly (tolerance 0), Y'CbCr through §5.2's fixed-point conversion (until
2026-12-07 these vectors' colour came from the float JFIF formula, within a tolerance of 1, which
could not tell §5.2's conversion from that formula).

zstd frames are written here too, with raw and RLE blocks only, so that no byte depends on the
libzstd version. Invalid vectors patch valid ones and recompute the CRCs, except where the CRC is
the point. Output is deterministic: the same bytes on every run and machine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import struct
import sys
import zlib
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svdcodec import format as container  # noqa: E402  (structs and constants of the frozen layout)
from svdcodec.decoder.reference import decode_reference  # version 6 vectors' pixels
from svdcodec.format.records import varint  # LEB128, spec §4.2

NONE, HORIZONTAL, VERTICAL, PLANAR = 0, 1, 2, 3
INT8, INT16, INT32, FLOAT32 = 1, 2, 3, 4
WRAPPED = 5  # RBLK element type of version 7: int16 residuals modulo 2^16 (16-bit samples)
ZSTD_MAGIC = 0xFD2FB528
ZSTD_BLOCK = 1 << 17  # largest zstd block (128 KiB)
MODES = {(1, 1): "L", (1, 2): "LA", (1, 3): "RGB", (1, 4): "RGBA", (2, 1): "I;16", (3, 1): "F"}
ESCAPE_LIMIT = 7  # run/level symbols hold values -7..7; others escape
ELEMENT_TYPES: dict[int, np.dtype[Any]] = {  # element type codes of the block descriptors
    INT8: np.dtype("<i1"), INT16: np.dtype("<i2"), INT32: np.dtype("<i4"), FLOAT32: np.dtype("<f4"),
    WRAPPED: np.dtype("<i2")}
#: HEAD sample types (spec §2): 1-3 in both versions, 4-8 in version 2.
SAMPLES: dict[int, np.dtype[Any]] = {
    1: np.dtype(np.uint8), 2: np.dtype(np.uint16), 3: np.dtype(np.float32), 4: np.dtype(np.int8),
    5: np.dtype(np.int16), 6: np.dtype(np.int32), 7: np.dtype(np.uint32), 8: np.dtype(np.float64)}
FLOAT_TYPES = (3, 8)


# ----------------------------------------------------------------------------- bytes


def chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    """length, type, payload, CRC-32 of type+payload (or the `crc` given, to break it)."""
    if crc is None:
        crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def zstd_frame(raw: bytes, declared: int | None = None) -> bytes:
    """A single-segment zstd frame with an 8-byte content size (`declared`, default the truth),
    holding `raw` in raw blocks, or RLE blocks where a block is one repeated byte."""
    out = [struct.pack("<IBQ", ZSTD_MAGIC, 0xE0, len(raw) if declared is None else declared)]
    starts = range(0, len(raw), ZSTD_BLOCK) if raw else [0]
    for start in starts:
        part = raw[start:start + ZSTD_BLOCK]
        last = int(start + ZSTD_BLOCK >= len(raw))
        rle = len(part) > 1 and part.count(part[:1]) == len(part)
        header = last | ((1 if rle else 0) << 1) | (len(part) << 3)
        out.append(header.to_bytes(3, "little") + (part[:1] if rle else part))
    return b"".join(out)


def windowed_frame(raw: bytes, window_log: int) -> bytes:
    """`zstd_frame(raw)`, but not single-segment: a window descriptor of 2^window_log bytes."""
    frame = zstd_frame(raw)
    return struct.pack("<IBBQ", ZSTD_MAGIC, 0xC0, (window_log - 10) << 3, len(raw)) + frame[13:]


SKIPPABLE_FRAME = struct.pack("<II", 0x184D2A50, 4) + b"hide"


def zero_frame(size: int) -> bytes:
    """A zstd frame of `size` zero bytes in RLE blocks, without building the zeros."""
    out = [struct.pack("<IBQ", ZSTD_MAGIC, 0xE0, size)]
    for start in range(0, size, ZSTD_BLOCK):
        part = min(ZSTD_BLOCK, size - start)
        last = int(start + ZSTD_BLOCK >= size)
        out.append((last | 1 << 1 | part << 3).to_bytes(3, "little") + b"\0")
    return b"".join(out)


def zero_block(kind: bytes, plane: int, first: int, count: int, rows: int,
               code: int = INT8) -> bytes:
    """A dense U or V block of count x rows zeros, a few bytes per 128 KiB of content."""
    size = count * rows * ELEMENT_TYPES[code].itemsize
    return chunk(kind, container.BLOCK_RECORD.pack(plane, first, count, container.DENSE)
                 + container.DENSE_RECORD.pack(code, NONE, count * rows) + zero_frame(size))


def head(width: int, height: int, stype: int, channels: int, colour: int = 0, sub: int = 0,
         scale: float = 1.0, version: int = 1, nplanes: int | None = None) -> bytes:
    return chunk(b"HEAD", container.HEAD_RECORD.pack(version, width, height, stype, channels, colour, sub,
                                       channels if nplanes is None else nplanes, scale))


def plan(index: int, layout: int, patch: int, height: int, width: int, rank: int,
         step: float) -> bytes:
    return chunk(b"PLAN", container.PLAN_RECORD.pack(index, layout, patch, height, width, rank, step))


def dense_block(kind: bytes, plane: int, first: int, raw: np.ndarray, code: int,
                predictor: int = NONE, declared: int | None = None) -> bytes:
    """A dense block of `raw` elements (already predicted) stored with element type `code`."""
    data = np.ascontiguousarray(raw, dtype=ELEMENT_TYPES[code])
    count = 1 if kind == b"SBLK" and data.ndim == 0 else data.shape[0]
    payload = (container.BLOCK_RECORD.pack(plane, first, count, container.DENSE)
               + container.DENSE_RECORD.pack(code, predictor, data.size)
               + zstd_frame(data.tobytes(), declared))
    return chunk(kind, payload)


def run_level(matrix: np.ndarray) -> tuple[bytes, list[int], list[int]]:
    """Run/level symbols of an integer (rows, count) matrix, one row at a time (no numpy tricks:
    this is the reference for svdcodec.coding)."""
    symbols = bytearray()
    runs: list[int] = []
    values: list[int] = []
    for row in matrix.tolist():
        previous = -1
        for col, value in enumerate(row):
            if value == 0:
                continue
            run, previous = col - previous - 1, col
            if run >= 15:
                runs.append(run - 15)
            if -ESCAPE_LIMIT <= value <= ESCAPE_LIMIT:
                level = value + 8
            else:
                level = 0
                values.append(value)
            symbols.append(min(run, 15) << 4 | level)
        symbols.append(0x08)  # end of row
    return bytes(symbols), runs, values


def sparse_block(kind: bytes, plane: int, first: int, matrix: np.ndarray,
                 extra_values: int = 0) -> bytes:
    """A sparse block of the (rows, count) matrix; `extra_values` appends bogus value escapes."""
    symbols, runs, values = run_level(matrix)
    values = values + [1] * extra_values
    code = INT16 if all(-32768 <= v <= 32767 for v in values) else INT32
    raw = (symbols + np.asarray(runs, "<u2").tobytes()
           + np.asarray(values, ELEMENT_TYPES[code]).tobytes())
    payload = (container.BLOCK_RECORD.pack(plane, first, matrix.shape[1], container.SPARSE)
               + container.SPARSE_RECORD.pack(code, len(symbols), len(runs), len(values)) + zstd_frame(raw))
    return chunk(kind, payload)


def split_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a well-formed file, IEND included."""
    out, pos = [], len(container.SIGNATURE)
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def join_chunks(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A file from (type, payload) chunks, with correct CRCs."""
    return container.SIGNATURE + b"".join(chunk(kind, payload) for kind, payload in chunks)


# ----------------------------------------------------------------------------- valid vectors


def pattern(shape: tuple[int, ...], seed: int, lo: int, hi: int) -> np.ndarray:
    """Deterministic scattered integers in lo..hi (a fixed formula, not numpy's RNG)."""
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    x = (i * 7919 + seed * 104729 + 13) % 1000003
    x = (x * x + seed) % 1000003
    return (lo + x % (hi - lo + 1)).reshape(shape)


@dataclass
class PlaneSpec:
    """One plane: its layout, quantizer step, singular values and integer factors A, B.

    Reconstruction: M = step^2 * A diag(1/sigma) B^T, with A (grid rows, r), B (vgrid rows, r).
    """

    height: int
    width: int
    step: float
    sigma: list[float]
    A: np.ndarray
    B: np.ndarray
    patch: int = 0  # 0: plain layout
    predictors: tuple[int, int] = (NONE, NONE)  # of the first U and V components
    code: int = INT8  # element type of the dense blocks
    groups: tuple[int, ...] = (1,)  # component boundaries between blocks
    dense_groups: bool = False  # code every group dense (predictors on group 0 only)
    sigma_split: tuple[int, ...] = ()  # component boundaries between S blocks

    @property
    def rank(self) -> int:
        return len(self.sigma)

    @property
    def grid(self) -> tuple[int, int]:
        if self.patch:
            return -(-self.height // self.patch), -(-self.width // self.patch)
        return self.height, 1

    @property
    def vgrid(self) -> tuple[int, int]:
        return (self.patch, self.patch) if self.patch else (self.width, 1)


def residuals(grids: np.ndarray, predictor: int) -> np.ndarray:
    """Prediction residuals of (count, gh, gw) grids: the neighbour left, above, or both."""
    g = np.pad(grids.astype(np.int64), ((0, 0), (1, 0), (1, 0)))
    left, up, corner = g[:, 1:, :-1], g[:, :-1, 1:], g[:, :-1, :-1]
    here = g[:, 1:, 1:]
    return {NONE: here, HORIZONTAL: here - left, VERTICAL: here - up,
            PLANAR: here - left - up + corner}[predictor]


def factor_blocks(p: PlaneSpec, index: int) -> list[list[bytes]]:
    """Blocks of one plane per component group: S blocks with group 0, then V, then U."""
    if p.rank == 0:
        return []
    bounds = [0, *[b for b in p.groups if b < p.rank], p.rank]
    out: list[list[bytes]] = []
    for g, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        blocks = []
        if g == 0:
            cuts = [0, *p.sigma_split, p.rank]
            blocks += [dense_block(b"SBLK", index, a, np.asarray(p.sigma[a:b], np.float32),
                                   FLOAT32) for a, b in zip(cuts, cuts[1:])]
        for kind, mat, grid, predictor in ((b"VBLK", p.B, p.vgrid, p.predictors[1]),
                                           (b"UBLK", p.A, p.grid, p.predictors[0])):
            part = mat[:, lo:hi]
            if g == 0 or p.dense_groups:
                grids = part.T.reshape(hi - lo, *grid)
                pred = predictor if g == 0 else NONE
                blocks.append(dense_block(kind, index, lo, residuals(grids, pred), p.code, pred))
            else:
                blocks.append(sparse_block(kind, index, lo, part))
        out.append(blocks)
    return out


@dataclass
class Vector:
    """A valid file: header fields, planes, and ancillary chunks to sprinkle in."""

    name: str
    description: str
    width: int
    height: int
    stype: int
    planes: list[PlaneSpec]
    colour: int = 0
    sub: int = 0
    scale: float = 1.0
    ancillary: bool = False
    metadata: list[bytes] = field(default_factory=list)  # chunks right after HEAD
    late_metadata: list[bytes] = field(default_factory=list)  # chunks after the PLANs
    expected_metadata: dict[str, Any] | None = None  # for the manifest (spec section 1.1)

    @property
    def channels(self) -> int:
        return len(self.planes)

    def encode(self) -> bytes:
        parts = [container.SIGNATURE, head(self.width, self.height, self.stype, self.channels,
                                   self.colour, self.sub, self.scale), *self.metadata]
        if self.ancillary:
            parts.append(chunk(b"teSt", b"ancillary chunks are skipped"))
        for i, p in enumerate(self.planes):
            layout = container.LAYOUT_PATCH if p.patch else container.LAYOUT_PLAIN
            parts.append(plan(i, layout, p.patch, p.height, p.width, p.rank, p.step))
        if self.ancillary:
            parts.append(chunk(b"zzZz", b""))
        parts += self.late_metadata
        groups: list[list[bytes]] = []
        for i, p in enumerate(self.planes):
            for g, blocks in enumerate(factor_blocks(p, i)):
                groups += [[] for _ in range(g + 1 - len(groups))]
                groups[g] += blocks
        parts += [b for group in groups for b in group]
        if self.ancillary:
            parts.append(chunk(b"teSt", b"also after the blocks"))
        parts.append(chunk(b"IEND", b""))
        return b"".join(parts)


def reference_plane(p: PlaneSpec) -> np.ndarray:
    """The plane (height, width) in float64: M = step^2 A diag(1/sigma) B^T, patches unfolded."""
    if p.rank == 0:
        return np.zeros((p.height, p.width))
    m = (p.A * (p.step ** 2 / np.asarray(p.sigma))) @ p.B.T.astype(np.float64)
    if p.patch:
        gh, gw = p.grid
        m = m.reshape(gh, gw, p.patch, p.patch).transpose(0, 2, 1, 3)
        m = m.reshape(gh * p.patch, gw * p.patch)
    return m[:p.height, :p.width]


def to_byte(x: np.ndarray) -> np.ndarray:
    """Round half up and clamp to 0..255 (still float64)."""
    return np.clip(np.floor(x + 0.5), 0, 255)


def reference_pixels(v: Vector) -> np.ndarray:
    """Expected pixels (h, w) or (h, w, c) in the vector's sample type."""
    planes = [reference_plane(p) for p in v.planes]
    if v.colour == container.COLOUR_YCBCR:  # §5.2 to the bit, from the planes in binary32
        return exact_samples(v, [p.astype(np.float32) for p in planes])
    if v.stype == 1:
        out = np.stack([to_byte(p) for p in planes], -1).astype(np.uint8)
    elif v.stype == 2:
        out = np.stack([np.clip(np.floor(p * v.scale + 0.5), 0, 65535) for p in planes],
                       -1).astype(np.uint16)
    else:
        out = np.stack([p * v.scale for p in planes], -1).astype(np.float32)
    return out[..., 0] if out.shape[2] == 1 else out


def plane(h: int, w: int, step: float, sigma: list[float], seed: int, dc: tuple[int, int],
          ac: int, patch: int = 0, **options: Any) -> PlaneSpec:
    """A plane whose first component has factors in dc and the others in -ac..ac (mostly zero)."""
    empty = np.zeros((0, 0), np.int64)
    spec = PlaneSpec(h, w, step, sigma, empty, empty, patch, **options)
    shapes = []
    for grid in (spec.grid, spec.vgrid):
        rows, r = grid[0] * grid[1], len(sigma)
        f = pattern((rows, r), seed, -ac, ac) * (pattern((rows, r), seed + 1, 0, 2) == 0)
        if r:
            f[:, 0] = pattern((rows,), seed + 2, *dc)
        shapes.append(f)
        seed += 3
    spec.A, spec.B = shapes
    return spec


# ----------------------------------------------------------------------------- metadata (§1.1)


def exif_orientation(value: int) -> bytes:
    """A big-endian EXIF TIFF structure with one IFD entry: Orientation (0x0112) = value."""
    return (b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0) + struct.pack(">I", 0))


def icc_header_only(colour_space: bytes = b"RGB ") -> bytes:
    """A 132-byte ICC v4 profile: the 128-byte header and a tag count of 0 (enough for the
    format's checks: the size field and 'acsp'; a colour engine would want tags)."""
    header = bytearray(128)
    struct.pack_into(">I4sI4s4s4s", header, 0, 132, b"none", 0x04300000, b"mntr",
                     colour_space, b"XYZ ")
    header[36:40] = b"acsp"
    struct.pack_into(">iii", header, 68, 63190, 65536, 54061)  # D50 illuminant, s15.16
    return bytes(header) + struct.pack(">I", 0)


def itxt(keyword: str, text: str, language: str = "", translated: str = "") -> bytes:
    """PNG's iTXt payload, uncompressed."""
    return (keyword.encode("latin-1") + b"\0\0\0" + language.encode("ascii") + b"\0"
            + translated.encode("utf-8") + b"\0" + text.encode("utf-8"))


METADATA_XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf='
                '"http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>')
METADATA_TEXT = {"Title": "Ŝtono, 16×16", "Comment": "a vector with every metadata chunk"}


def metadata_vector(planes: list[PlaneSpec]) -> Vector:
    """rgb_16x16_patch8's planes with every metadata chunk: iCCP, pHYs, eXIf right after HEAD,
    xMPd and two iTXt (one with a language tag) after the PLANs, an unknown ancillary chunk
    among them. Same pixels as rgb_16x16_patch8."""
    exif, icc = exif_orientation(6), icc_header_only()
    early = [chunk(b"iCCP", b"test profile\0\0" + zstd_frame(icc)),
             chunk(b"pHYs", struct.pack(">IIB", 300, 300, 2)),
             chunk(b"eXIf", exif)]
    late = [chunk(b"xMPd", METADATA_XMP.encode()), chunk(b"prVt", b"unknown: skipped"),
            chunk(b"iTXt", itxt("Title", METADATA_TEXT["Title"], "eo", "Titolo")),
            chunk(b"iTXt", itxt("Comment", METADATA_TEXT["Comment"]))]
    expected = {"exif": exif.hex(), "icc_profile": icc.hex(), "xmp": METADATA_XMP,
                "dpi": [300, 300], "text": METADATA_TEXT}
    return Vector("rgb_16x16_metadata", "RGB 16x16 as rgb_16x16_patch8, with EXIF (Orientation "
                  "6), ICC profile, DPI, XMP and text chunks before and after the PLANs",
                  16, 16, 1, planes, colour=container.COLOUR_YCBCR, metadata=early,
                  late_metadata=late, expected_metadata=expected)


def rgb_sub_patch4_planes() -> list[PlaneSpec]:
    """Y' 16x16 and Cb, Cr 8x8, patch 4: the planes the deblocking filter (version 4) and the
    restoration filter (version 6) are shown on."""
    return [plane(16, 16, 2.0, [1.0, 2.0, 4.0, 4.0], 80, (4, 9), 3, patch=4),
            plane(8, 8, 1.0, [1.0, 1.0], 81, (-6, 6), 2, patch=4),
            plane(8, 8, 1.0, [1.0, 2.0], 82, (-6, 6), 2, patch=4)]


def rgb_patch8_planes() -> list[PlaneSpec]:
    return [plane(16, 16, 2.0, [1.0, 1.0, 2.0], 5, (4, 7), 4, patch=8, code=INT16,
                  predictors=(PLANAR, HORIZONTAL)),
            plane(16, 16, 2.0, [1.0, 2.0], 6, (-3, 3), 3, patch=8, code=INT16,
                  predictors=(HORIZONTAL, VERTICAL)),
            plane(16, 16, 2.0, [2.0], 7, (-3, 3), 0, patch=8, code=INT16,
                  predictors=(VERTICAL, PLANAR))]


def valid_vectors() -> list[Vector]:
    """The valid vectors, small and covering every mode, layout, coding and predictor."""
    # L 20x18 with 18 components: long zero runs and large values escape.
    esc = plane(18, 20, 4.0, [16.0] + [8.0] * 5 + [4.0] * 12, 40, (3, 4), 2,
                groups=(1,), sigma_split=(1, 5))
    esc.A[:, 1:] = 0
    esc.A[::3, 17] = 1  # a run of 16 zeros, then a value: run escape
    esc.A[1, 1], esc.A[2, 2], esc.A[4, 16] = 100, -300, 70000  # int16 and int32 value escapes
    esc.B[:, 16] = 0
    esc.B[0, 16] = 1
    return [
        Vector("l_13x7_plain", "L 13x7, plain layout, rank 3, U vertical predictor", 13, 7, 1,
               [plane(7, 13, 2.0, [1.0, 2.0, 4.0], 1, (4, 7), 6,
                      predictors=(VERTICAL, NONE))]),
        Vector("l_1x1", "L 1x1, patch layout (one padded 2x2 patch), rank 1", 1, 1, 1,
               [plane(1, 1, 2.0, [4.0], 2, (10, 10), 0, patch=2)]),
        Vector("l_20x18_escapes", "L 20x18, rank 18: run and value escapes (int16 and int32), "
               "S split over three blocks, ancillary chunks", 20, 18, 1, [esc],
               ancillary=True),
        Vector("la_8x8_patch2", "LA 8x8, patch 2; alpha plane of rank 0 decodes to zero",
               8, 8, 1, [plane(8, 8, 2.0, [1.0, 2.0, 2.0, 4.0], 3, (5, 7), 3, patch=2,
                               predictors=(PLANAR, HORIZONTAL)),
                         plane(8, 8, 2.0, [], 4, (0, 0), 0, patch=2)]),
        Vector("rgb_16x16_patch8", "RGB 16x16, Y'CbCr, patch 8, int16 dense blocks", 16, 16, 1,
               rgb_patch8_planes(), colour=container.COLOUR_YCBCR),
        metadata_vector(rgb_patch8_planes()),
        Vector("rgb_16x16_sub_patch4", "RGB 16x16, Y'CbCr with 2x2 chroma subsampling, patch 4",
               16, 16, 1,
               [plane(16, 16, 2.0, [1.0, 2.0, 4.0, 4.0], 8, (4, 7), 5, patch=4),
                plane(8, 8, 1.0, [1.0, 1.0], 9, (-4, 4), 3, patch=4),
                plane(8, 8, 1.0, [1.0, 2.0], 10, (-4, 4), 3, patch=4)],
               colour=container.COLOUR_YCBCR, sub=1),
        Vector("rgba_9x5_plain", "RGBA 9x5, Y'CbCr, plain layout", 9, 5, 1,
               [plane(5, 9, 2.0, [1.0, 2.0], 11, (4, 7), 3, predictors=(VERTICAL, VERTICAL)),
                plane(5, 9, 2.0, [2.0], 12, (-3, 3), 0),
                plane(5, 9, 2.0, [2.0, 4.0], 13, (-3, 3), 2),
                plane(5, 9, 1.0, [1.0, 1.0], 14, (14, 16), 2)], colour=container.COLOUR_YCBCR),
        Vector("i16_6x10_plain", "I;16 6x10, scale 257, dense int32 blocks in every group",
               6, 10, 2, [plane(10, 6, 2.0, [1.0, 2.0, 2.0], 15, (4, 7), 5, code=INT32,
                                dense_groups=True, predictors=(VERTICAL, NONE))],
               scale=257.0),
        Vector("f_5x4_plain", "F 5x4, scale 0.1 (negative samples), rank 3", 5, 4, 3,
               [plane(4, 5, 1.0, [1.0, 1.0, 2.0], 16, (-6, 6), 5)], scale=0.1),
    ]


# ----------------------------------------------------------------------------- version 2 (§4.1, §5)


def plan_v2(index: int, layout: int, patch: int, height: int, width: int, rank: int,
            step: float, shift: int, deblock: tuple[int, int, int] | None = None) -> bytes:
    """A version 2 PLAN chunk; with `deblock`, version 4's (alpha, beta, tc appended)."""
    if deblock is not None:
        return chunk(b"PLAN", container.PLAN_RECORD_V4.pack(index, layout, patch, height, width,
                                                            rank, step, shift, *deblock))
    return chunk(b"PLAN", container.PLAN_RECORD_V2.pack(index, layout, patch, height, width, rank,
                                                        step, shift))


def exact_weights(step: float, sigma: list[float], shift: int) -> list[int]:
    """W_k = floor(2^F y_k + 1/2), y_k = fl64(fl64(step * step) / sigma_k) (Python floats are
    binary64, each operation rounded once; the floor is exact)."""
    out = []
    for s in sigma:
        y = (step * step) / float(np.float32(s))
        scaled = math.ldexp(y, shift)
        w = math.floor(scaled)
        out.append(w + 1 if scaled - w >= 0.5 else w)
    return out


def exact_shift(p: PlaneSpec) -> int:
    """The largest F <= 63 with every W_k <= 2^53 and max|A| max|B| sum(W) < 2^53."""
    a, b = int(np.abs(p.A).max(initial=0)), int(np.abs(p.B).max(initial=0))
    for shift in range(63, -1, -1):
        w = exact_weights(p.step, p.sigma, shift)
        if max(w, default=0) <= 1 << 53 and a * b * sum(w) < 1 << 53:
            return shift
    raise ValueError("no exact shift")


def exact_plane(p: PlaneSpec, shift: int, mean: np.ndarray | None = None) -> np.ndarray:
    """The plane (height, width) in float32 by §5.1: V = A diag(W) B^T in int64 (exact: below
    2^53), then V 2^-F rounded once to binary32; with column means (a MEAN chunk, plain only),
    fl32(fl64(V 2^-F + mean_j))."""
    if p.rank == 0:
        v = np.zeros((p.height, p.width), np.int64)
    else:
        w = np.asarray(exact_weights(p.step, p.sigma, shift), np.int64)
        v = (p.A.astype(np.int64) * w) @ p.B.T.astype(np.int64)
    wide = v.astype(np.float64) * 2.0 ** -shift  # exact: an integer below 2^53 times 2^-F
    if mean is not None:
        assert not p.patch
        wide = wide + np.asarray(mean, np.float32).astype(np.float64)  # one binary64 rounding
    m = wide.astype(np.float32)
    if p.patch:
        gh, gw = p.grid
        m = m.reshape(gh, gw, p.patch, p.patch).transpose(0, 2, 1, 3)
        m = m.reshape(gh * p.patch, gw * p.patch)
    return np.ascontiguousarray(m[:p.height, :p.width])


def byte_samples(plane: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """trunc(clamp(fl32(p + fl32(offset + 1/2)), 0, 255)) (§5.2), int64."""
    v = plane + np.float32(offset + 0.5)
    return np.trunc(np.clip(v, np.float32(0), np.float32(255))).astype(np.int64)


JFIF = (1.402, -0.34414, -0.71414, 1.772)  # R from Cr, G from Cb, G from Cr, B from Cb


def jfif_term(c: float, x: np.ndarray) -> np.ndarray:
    """t_c(x) = trunc(fl32(fl32(64 c) x) + 1/2) in binary32, int64."""
    k = np.float32(64 * c)
    return np.trunc(k * x.astype(np.float32) + np.float32(0.5)).astype(np.int64)


def upsample2_exact(plane: np.ndarray) -> np.ndarray:
    """§5.2's chroma upsampling of a binary32 plane to twice its size, bit for bit: each pass
    (horizontal, then vertical) weights 3/4 and 1/4 (one tap of weight 1 at the edges), summed
    in binary64 (exact products, one rounding) and rounded to binary32."""
    def axis(a: np.ndarray, ax: int) -> np.ndarray:
        a = np.moveaxis(a.astype(np.float64), ax, 0)
        padded = np.concatenate([a[:1], a, a[-1:]])
        out = np.empty((2 * a.shape[0], *a.shape[1:]))
        out[0::2] = 0.75 * a + 0.25 * padded[:-2]  # at the edge 0.75 a + 0.25 a = a exactly
        out[1::2] = 0.75 * a + 0.25 * padded[2:]
        return np.moveaxis(out, 0, ax).astype(np.float32)
    return axis(axis(plane, 1), 0)


#: Version 3's 16-bit Y'CbCr -> RGB in units of 2^-16 (§5.2): R from Cr, G from Cb, G from Cr,
#: B from Cb.
WIDE_YCC = (91882, -22553, -46801, 116130)


def wide_samples(plane: np.ndarray, scale: float, offset: int = 0) -> np.ndarray:
    """floor(clamp(fl64(fl64(p scale) + offset + 1/2), 0, 65535)) (§5.2), int64."""
    v = plane.astype(np.float64) * scale + (offset + 0.5)
    return np.floor(np.clip(v, 0, 65535)).astype(np.int64)


def wide_ycc_samples(v: Vector, planes: list[np.ndarray]) -> np.ndarray:
    """A version 3 colour-1 image of 16-bit samples (§5.2), bit for bit, in Python's integer
    floor division: R = Y' + (kR xr + 2^15) // 2^16 etc., clamped to 0..65535."""
    chroma = planes[1:3]
    if v.sub:
        chroma = [upsample2_exact(c) for c in chroma]
    y = wide_samples(planes[0], v.scale)
    xb, xr = (wide_samples(c, v.scale, 32768) - 32768 for c in chroma)
    k_r, k_gb, k_gr, k_b = WIDE_YCC
    r = y + (k_r * xr + 32768) // 65536
    g = y + (k_gb * xb + k_gr * xr + 32768) // 65536
    b = y + (k_b * xb + 32768) // 65536
    chans = [np.clip(c, 0, 65535) for c in (r, g, b)]
    chans += [wide_samples(p, v.scale) for p in planes[3:]]
    return np.stack(chans, -1).astype(np.uint16)


def deblock_samples(s: np.ndarray, period: int, alpha: int, beta: int, tc: int) -> np.ndarray:
    """§5.4 on one channel of 8-bit samples, edge by edge and sample by sample in Python's
    integers (>> is the floor): vertical edges, then horizontal ones, each pass reading the
    samples as they were before it."""
    s = s.astype(np.int64).copy()
    for transpose in (False, True):
        before = (s.T if transpose else s).copy()
        out = s.T if transpose else s  # a view: writes go to s
        for i in range(before.shape[0]):
            for e in range(period, before.shape[1] - 1, period):
                p1, p0, q0, q1 = (int(before[i, e + k]) for k in (-2, -1, 0, 1))
                if abs(p0 - q0) < alpha and abs(p1 - p0) < beta and abs(q1 - q0) < beta:
                    d = min(tc, max(-tc, (4 * (q0 - p0) + (p1 - q1) + 4) >> 3))
                    out[i, e - 1] = min(255, max(0, p0 + d))
                    out[i, e] = min(255, max(0, q0 - d))
    return s


#: §5.6's offsets o_j, in coefficient order.
RESTORE_OFFSETS = [(0, 1), (0, 2), (0, 3), (1, -2), (1, -1), (1, 0), (1, 1), (1, 2), (2, -1),
                   (2, 0), (2, 1), (3, 0)]

#: A plane's restoration filter (version 6, §5.6): the bounds, then K rows of 12 coefficients.
RestoreSpec = tuple[list[int], list[list[int]]]


def restore_activity(s: np.ndarray, y: int, x: int) -> int:
    """§5.6 step 1 at (y, x), in Python's integers, edges replicated."""
    h, w = s.shape

    def at(i: int, j: int) -> int:
        return int(s[min(max(i, 0), h - 1), min(max(j, 0), w - 1)])
    total = 0
    for i in (y - 1, y, y + 1):
        for j in (x - 1, x, x + 1):
            total += abs(2 * at(i, j) - at(i, j - 1) - at(i, j + 1))
            total += abs(2 * at(i, j) - at(i - 1, j) - at(i + 1, j))
    return total


def restore_samples(s: np.ndarray, bounds: list[int], coefficients: list[list[int]]
                    ) -> np.ndarray:
    """§5.6 on one channel of 8-bit samples, sample by sample in Python's integers (>> is the
    floor), every sample read from the unfiltered channel."""
    h, w = s.shape
    out = s.astype(np.int64).copy()

    def at(i: int, j: int) -> int:
        return int(s[min(max(i, 0), h - 1), min(max(j, 0), w - 1)])
    for y in range(h):
        for x in range(w):
            a = restore_activity(s, y, x)
            k = sum(1 for b in bounds if b <= a)
            c = int(s[y, x])
            total = sum(coefficients[k][j] * (at(y + dy, x + dx) + at(y - dy, x - dx) - 2 * c)
                        for j, (dy, dx) in enumerate(RESTORE_OFFSETS))
            out[y, x] = min(255, max(0, c + ((total + 64) >> 7)))
    return out


def restore_chunk(restoration: dict[int, RestoreSpec]) -> bytes:
    """The RSTR chunk (§5.6) of these planes' filters."""
    payload = b""
    for index, (bounds, coefficients) in sorted(restoration.items()):
        payload += struct.pack(">BB", index, len(coefficients))
        payload += struct.pack(f">{len(bounds)}H", *bounds)
        payload += struct.pack(f">{12 * len(coefficients)}b", *(c for row in coefficients
                                                                for c in row))
    return chunk(b"RSTR", payload)


def exact_samples(v: Vector, planes: list[np.ndarray],
                  deblock: dict[int, tuple[int, int, int]] | None = None,
                  restoration: dict[int, RestoreSpec] | None = None) -> np.ndarray:
    """The decoded samples (h, w, c) of a version 2-6 file's planes, bit for bit (§5.2),
    with version 4's deblocking filters {plane: (alpha, beta, tc)} on the 8-bit samples (§5.4)
    and then version 6's restoration filters {plane: (bounds, coefficients)} (§5.6)."""
    if v.colour == container.COLOUR_YCBCR and v.stype == 2:
        return wide_ycc_samples(v, planes)
    deblock = deblock or {}
    restoration = restoration or {}

    def filtered(c: int, samples: np.ndarray) -> np.ndarray:
        if c in deblock:
            period = v.planes[c].patch * (2 if v.sub and c in (1, 2) else 1)
            samples = deblock_samples(samples, period, *deblock[c])
        if c in restoration:
            samples = restore_samples(samples, *restoration[c])
        return samples
    if v.colour == container.COLOUR_YCBCR:
        chroma = [upsample2_exact(p) for p in planes[1:3]] if v.sub else planes[1:3]
        y = filtered(0, byte_samples(planes[0]))
        cb, cr = (filtered(c, byte_samples(p, 128.0)) - 128
                  for c, p in enumerate(chroma, start=1))
        r = y + (jfif_term(JFIF[0], cr) >> 6)
        g = y + ((jfif_term(JFIF[1], cb) + jfif_term(JFIF[2], cr)) >> 6)
        b = y + (jfif_term(JFIF[3], cb) >> 6)
        chans = [np.clip(c, 0, 255) for c in (r, g, b)]
        chans += [filtered(c, byte_samples(p)) for c, p in enumerate(planes[3:], start=3)]
        return np.stack(chans, -1).astype(np.uint8)
    assert not (deblock or restoration) or v.stype == 1
    if v.stype == 1:
        return np.stack([filtered(c, byte_samples(p)) for c, p in enumerate(planes)],
                        -1).astype(np.uint8)
    if v.stype == 2:
        return np.stack([np.trunc(np.clip(p.astype(np.float64) * v.scale + 0.5, 0, 65535))
                         for p in planes], -1).astype(np.uint16)
    if v.stype == 8:  # fl64(p * scale)
        return np.stack([p.astype(np.float64) * v.scale for p in planes], -1)
    if v.stype in (4, 5, 6, 7):  # floor(clamp(fl64(fl64(p * scale) + 1/2), min, max))
        low, high = type_range(v.stype)
        return np.stack([np.floor(np.clip(p.astype(np.float64) * v.scale + 0.5, low, high))
                         for p in planes], -1).astype(SAMPLES[v.stype])
    return np.stack([p * np.float32(v.scale) for p in planes], -1)


def type_range(stype: int) -> tuple[int, int]:
    """min and max of an integer sample type."""
    info = np.iinfo(SAMPLES[stype])
    return int(info.min), int(info.max)


@dataclass
class ResidualPart:
    """How one channel's residual is stored: its bound, row blocks (first rows), the predictor
    and element type of each block, and an optional reference channel."""

    bound: float
    cuts: tuple[int, ...] = ()  # first rows of the blocks after the first
    predictors: tuple[int, ...] = (NONE,)
    codes: tuple[int, ...] = (INT16,)
    reference: int = 255


def residual_q(x: np.ndarray, decoded: np.ndarray, bound: float, stype: int
               ) -> tuple[np.ndarray, float]:
    """(q, step) of one channel, written from spec §5.3: integers step 2E + 1, nearest q;
    float32 and float64 step 2E, nearest q, moved by one where the rounded result misses the
    bound."""
    if stype in FLOAT_TYPES:
        x = x.astype(SAMPLES[stype])
        decoded = decoded.astype(SAMPLES[stype])
        for step in (2 * bound, bound):  # a step of E always has a q that survives rounding
            q = np.rint((x.astype(np.float64) - decoded) / step).astype(np.int64)
            for move in (-1, 1):
                ok = np.abs(float_residual(decoded, q + move, step).astype(np.float64) - x) <= bound
                bad = np.abs(float_residual(decoded, q, step).astype(np.float64) - x) > bound
                q = np.where(bad & ok, q + move, q)
            if np.all(np.abs(float_residual(decoded, q, step).astype(np.float64) - x) <= bound):
                return q, step
        raise AssertionError("no float residual within the bound")
    e = int(bound)
    step = 2 * e + 1
    return (x.astype(np.int64) - decoded.astype(np.int64) + e) // step, float(step)


def wrap16(values: np.ndarray) -> np.ndarray:
    """The integers of -2^15 .. 2^15 - 1 congruent to these modulo 2^16 (§4.1, version 7)."""
    return (values.astype(np.int64) + (1 << 15)) % (1 << 16) - (1 << 15)


def wrapped_residual(decoded: np.ndarray, q: np.ndarray, step: float, low: int) -> np.ndarray:
    """The sample of a 16-bit type congruent to x + q step modulo 2^16 (§5.3, version 7)."""
    return (decoded.astype(np.int64) + q * int(step) - low) % (1 << 16) + low


def float_residual(decoded: np.ndarray, q: np.ndarray, step: float) -> np.ndarray:
    """fl32(fl64(x + fl64(q step))) for float32 samples, fl64(x + fl64(q step)) for float64
    (§5.3)."""
    return (decoded.astype(np.float64) + q.astype(np.float64) * step).astype(decoded.dtype)


def integer_residual(decoded: np.ndarray, q: np.ndarray, step: float, low: int, high: int
                     ) -> np.ndarray:
    """clamp(x + q step, min, max) in integers (Python ints where int64 could overflow: never
    here, |q step| < 2^52)."""
    return np.clip(decoded.astype(np.int64) + q * int(step), low, high)


def rblk(channel: int, reference: int, first: int, grid: np.ndarray, step: float, bound: float,
         code: int, predictor: int, declared: int | None = None) -> bytes:
    """An RBLK chunk of a grid of q (rows, width), predicted here."""
    res = residuals(grid[None], predictor)[0]
    if code == WRAPPED:  # §4.1: the elements are the residuals modulo 2^16
        res = wrap16(res)
    data = np.ascontiguousarray(res, dtype=ELEMENT_TYPES[code])
    assert np.array_equal(data.astype(np.int64), res)
    return chunk(b"RBLK", container.RESIDUAL_RECORD.pack(channel, reference, first,
                                                         grid.shape[0], step, bound, code,
                                                         predictor)
                 + zstd_frame(data.tobytes(), declared))


@dataclass
class V2Vector:
    """A version 2 file: a Vector's planes made exact, an original image, and the residual
    parts of the channels that have one."""

    base: Vector
    original: np.ndarray  # (h, w, c); with `near`, a pattern added to the decoded layer
    parts: dict[int, ResidualPart]
    near: bool = False
    means: dict[int, np.ndarray] = field(default_factory=dict)  # MEAN chunks by plane (§3.1)
    version: int = 2  # 3: Y'CbCr of 16-bit samples; 4: deblocking filters; 6: restoration
    deblock: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # version 4 (§5.4)
    restoration: dict[int, RestoreSpec] = field(default_factory=dict)  # version 6 (§5.6)

    def __post_init__(self) -> None:
        if self.near and self.base.stype in FLOAT_TYPES:  # the layer plus small offsets
            self.original = self.decoded_layer().astype(np.float64) + self.original
        elif self.near:  # an original close to the low-rank layer: small residuals (int8)
            layer = self.decoded_layer().astype(np.int64)
            low, high = type_range(self.base.stype)
            self.original = np.clip(layer + self.original, low, high)

    @property
    def name(self) -> str:
        return self.base.name

    def shifts(self) -> list[int]:
        return [exact_shift(p) if p.rank else 0 for p in self.base.planes]

    def decoded_layer(self) -> np.ndarray:
        planes = [exact_plane(p, f, self.means.get(i))
                  for i, (p, f) in enumerate(zip(self.base.planes, self.shifts()))]
        return exact_samples(self.base, planes, self.deblock, self.restoration)

    def wrapped_rows(self, c: int) -> np.ndarray:
        """Per row, whether channel c's block there is wrapped (version 7)."""
        part = self.parts[c]
        edges = [0, *part.cuts, self.base.height]
        rows = np.zeros(self.base.height, dtype=bool)
        for j, (a, b) in enumerate(pairwise(edges)):
            rows[a:b] = part.codes[j % len(part.codes)] == WRAPPED
        return rows

    def decoded_q(self, c: int, q: np.ndarray) -> np.ndarray:
        """The q a decoder finds for channel c: modulo 2^16 in its wrapped blocks."""
        return np.where(self.wrapped_rows(c)[:, None], wrap16(q), q)

    def q_and_expected(self) -> tuple[dict[int, np.ndarray], dict[int, float], np.ndarray]:
        v = self.base
        layer = self.decoded_layer()
        expected = layer.copy()
        qs, steps = {}, {}
        for c, part in self.parts.items():
            q, step = residual_q(self.original[..., c], layer[..., c], part.bound, v.stype)
            qs[c], steps[c] = q, step
            if v.stype in FLOAT_TYPES:
                expected[..., c] = float_residual(layer[..., c], q, step)
            else:
                expected[..., c] = integer_residual(layer[..., c], q, step,
                                                    *type_range(v.stype))
                wrapped = self.wrapped_rows(c)
                expected[wrapped, :, c] = wrapped_residual(
                    layer[wrapped, :, c], self.decoded_q(c, q)[wrapped], step,
                    type_range(v.stype)[0])
            diff = np.abs(expected[..., c].astype(np.float64)
                          - self.original[..., c].astype(np.float64))
            assert diff.max() <= part.bound, (self.name, c)
        return qs, steps, expected

    def encode(self) -> bytes:
        v = self.base
        # version 6: written as version 4, then in version 5's container with the RSTR chunk
        parts = [container.SIGNATURE, head(v.width, v.height, v.stype, v.channels, v.colour,
                                           v.sub, v.scale, version=min(self.version, 4))]
        for i, (p, shift) in enumerate(zip(v.planes, self.shifts())):
            layout = container.LAYOUT_PATCH if p.patch else container.LAYOUT_PLAIN
            filters = self.deblock.get(i, (0, 0, 0)) if self.version >= 4 else None
            parts.append(plan_v2(i, layout, p.patch, p.height, p.width, p.rank, p.step, shift,
                                 filters))
        for i in sorted(self.means, reverse=True):  # any order: the reader takes it
            parts.append(mean_chunk(i, self.means[i]))
        groups: list[list[bytes]] = []
        for i, p in enumerate(v.planes):
            for g, blocks in enumerate(factor_blocks(p, i)):
                groups += [[] for _ in range(g + 1 - len(groups))]
                groups[g] += blocks
        parts += [b for group in groups for b in group]
        qs, steps, _ = self.q_and_expected()
        order = sorted(self.parts, key=lambda c: (self.parts[c].reference != 255, c))
        cuts = sorted({0, *[y for part in self.parts.values() for y in part.cuts]})
        for y0 in cuts:
            for c in order:
                part = self.parts[c]
                if y0 != 0 and y0 not in part.cuts:
                    continue
                mine = [0, *part.cuts, v.height]
                end = mine[mine.index(y0) + 1]
                j = mine.index(y0)
                grid = qs[c][y0:end]
                if part.reference != 255:
                    grid = grid - self.decoded_q(part.reference, qs[part.reference])[y0:end]
                parts.append(rblk(c, part.reference, y0, grid, steps[c], part.bound,
                                  part.codes[j % len(part.codes)],
                                  part.predictors[j % len(part.predictors)]))
        parts.append(chunk(b"IEND", b""))
        if self.version == 7:  # version 6's container and PLAN chunks, HEAD's version 7
            chunks = unadapted_version_6(split_chunks(as_version_5(b"".join(parts))))
            chunks[0] = (b"HEAD", patch_struct(container.HEAD_RECORD, f0=7)(chunks[0][1]))
            return join_chunks(chunks)
        if self.version >= 6:
            return as_restored_version_6(b"".join(parts), self.restoration)
        return b"".join(parts)


def mean_chunk(plane: int, means: np.ndarray, declared: int | None = None) -> bytes:
    """A MEAN chunk (§3.1): the plane, then a zstd frame of its binary32 means."""
    raw = np.ascontiguousarray(means, dtype="<f4").tobytes()
    return chunk(b"MEAN", struct.pack(">B", plane) + zstd_frame(raw, declared))


def v2_vectors() -> list[V2Vector]:
    """Version 2 vectors: lossless L and RGB, RGBA with binary alpha made exact, uint16 with
    E = 2, float32 with E = 0.01, uint16 x 3 (numpy only) lossless with three blocks."""
    l_plane = plane(10, 12, 2.0, [1.0, 2.0, 4.0], 21, (4, 7), 6, predictors=(VERTICAL, NONE))
    l_image = pattern((10, 12, 1), 22, 0, 255)
    rgb_image = pattern((16, 16, 3), 23, 0, 255)
    rgba = [plane(5, 9, 2.0, [1.0, 2.0], 11, (4, 7), 3, predictors=(VERTICAL, VERTICAL)),
            plane(5, 9, 2.0, [2.0], 12, (-3, 3), 0),
            plane(5, 9, 2.0, [2.0, 4.0], 13, (-3, 3), 2),
            plane(5, 9, 1.0, [1.0, 1.0], 14, (14, 16), 2)]
    rgba_v = Vector("v2_rgba_9x5_binary_alpha", "RGBA 9x5, Y'CbCr, plain; binary alpha (0 and "
                    "255) made exact by a lossless residual on channel 3 alone", 9, 5, 1, rgba,
                    colour=container.COLOUR_YCBCR)
    rgba_image = np.zeros((5, 9, 4), np.int64)
    rgba_image[..., 3] = np.where(pattern((5, 9), 24, 0, 1) == 1, 255, 0)
    u16 = Vector("v2_i16_6x10_e2", "I;16 6x10, scale 16, max error 2 (step 5), samples within"
                 " 60 of the layer: two row blocks, int8 horizontal and int16 planar", 6, 10, 2,
                 [plane(10, 6, 2.0, [1.0, 2.0, 2.0], 25, (4, 7), 5, code=INT32,
                        dense_groups=True, predictors=(VERTICAL, NONE))], scale=16.0)
    f32 = Vector("v2_f_5x4_e001", "F 5x4, scale 0.1, max error 0.01, vertical predictor, "
                 "int32", 5, 4, 3,
                 [plane(4, 5, 1.0, [1.0, 1.0, 2.0], 26, (-6, 6), 5)], scale=0.1)
    f_image = (pattern((4, 5, 1), 27, -3000, 3000) / 100.0).astype(np.float32)
    u16x3 = Vector("v2_u16x3_8x9_lossless", "uint16 x 3 8x9 (numpy only), lossless: three row "
                   "blocks per channel, predictors 0-3", 9, 8, 2,
                   [plane(8, 9, 4.0, [2.0, 4.0], 28 + i, (4, 7), 3) for i in range(3)],
                   scale=256.0)
    three = dict(cuts=(3, 5), predictors=(NONE, HORIZONTAL, PLANAR), codes=(INT32,))
    return [
        V2Vector(Vector("v2_l_12x10_lossless", "L 12x10, plain, lossless: residual int16, "
                        "planar predictor", 12, 10, 1, [l_plane]), l_image,
                 {0: ResidualPart(0, predictors=(PLANAR,))}),
        V2Vector(Vector("v2_rgb_16x16_lossless", "RGB 16x16, Y'CbCr, patch 8, lossless: G, then"
                        " R and B less G's residual, two row blocks each (vertical, horizontal)",
                        16, 16, 1, rgb_patch8_planes(), colour=container.COLOUR_YCBCR),
                 rgb_image,
                 {1: ResidualPart(0, cuts=(8,), predictors=(VERTICAL, HORIZONTAL)),
                  0: ResidualPart(0, cuts=(8,), predictors=(VERTICAL, HORIZONTAL), reference=1),
                  2: ResidualPart(0, cuts=(8,), predictors=(PLANAR, NONE), reference=1)}),
        V2Vector(rgba_v, rgba_image, {3: ResidualPart(0, codes=(INT16,), predictors=(VERTICAL,))}),
        V2Vector(u16, pattern((10, 6, 1), 29, -60, 60),
                 {0: ResidualPart(2, cuts=(4,), predictors=(HORIZONTAL, PLANAR),
                                  codes=(INT8, INT16))}, near=True),
        V2Vector(f32, f_image, {0: ResidualPart(0.01, predictors=(VERTICAL,), codes=(INT32,))}),
        V2Vector(u16x3, pattern((8, 9, 3), 30, 0, 65535),
                 {c: ResidualPart(0, **three) for c in range(3)}),
        *array_vectors(),
        *v3_vectors(),
        *v4_vectors(),
        *v6_vectors(),
        *v7_vectors(),
    ]


def v7_vectors() -> list[V2Vector]:
    """Version 7 (§4.1, §5.3): wrapped residual blocks of 16-bit samples, q and the sample
    modulo 2^16: lossless residuals of full-range samples over a small layer (17-bit
    differences stored in int16 elements, sums x + q that leave 0 .. 65535 and come back),
    a reference to a wrapped channel, and a step of 5 (max error 2) whose channel mixes a wrapped
    block and an int32 one referring to the wrapped q."""
    u16x3 = Vector("v7_u16x3_12x10_wrapped", "uint16 x 3 12x10, colour 0, scale 257: channel 1 "
                   "lossless in wrapped blocks (horizontal, planar), channel 0 lossless wrapped "
                   "less channel 1's q, channel 2 max error 2 (step 5) less channel 1's q, one "
                   "block wrapped and one int32", 12, 10, 2,
                   [plane(10, 12, 2.0, [1.0, 2.0], 90 + i, (4, 7), 3) for i in range(3)],
                   scale=257.0)
    original = pattern((10, 12, 3), 93, 0, 65535)
    original[..., 2] = np.clip(original[..., 2], 2, 65533)  # sums within the type: error <= 2
    original[0, :4, 1] = (0, 65535, 0, 65535)  # differences of 2^16 - 1 along the first row
    return [V2Vector(u16x3, original,
                     {1: ResidualPart(0, cuts=(6,), predictors=(HORIZONTAL, PLANAR),
                                      codes=(WRAPPED,)),
                      0: ResidualPart(0, cuts=(6,), predictors=(VERTICAL, NONE),
                                      codes=(WRAPPED,), reference=1),
                      2: ResidualPart(2, cuts=(6,), predictors=(PLANAR, HORIZONTAL),
                                      codes=(WRAPPED, INT32), reference=1)}, version=7)]


def v4_vectors() -> list[V2Vector]:
    """Version 4 (§3, §5.4): the deblocking filter on Y' (period 4) and on subsampled Cb
    (period 8, upsampled first) of an RGB image; on an L plane of patch 2 (period 2: edges
    that read the previous edge's q0) under a lossless residual, which corrects the filtered
    samples; and a version 4 file whose planes are all unfiltered."""
    ycc = container.COLOUR_YCBCR
    sub = Vector("v4_filter_rgb_16x16_sub_patch4", "RGB 16x16, Y'CbCr 4:2:0, patch 4: Y' "
                 "filtered (alpha 60, beta 30, tc 4), Cb filtered at period 8 (40, 20, 2), Cr "
                 "not", 16, 16, 1,
                 rgb_sub_patch4_planes(), colour=ycc, sub=1)
    patch2 = Vector("v4_filter_l_12x10_patch2_lossless", "L 12x10, patch 2, filtered (alpha "
                    "80, beta 40, tc 6; 35 samples differ from filtering edge after edge in "
                    "place), lossless: the residual is against the filtered samples", 12, 10, 1,
                    [plane(10, 12, 2.0, [1.0, 2.0, 4.0], 85, (3, 6), 1, patch=2,
                           predictors=(PLANAR, NONE))])
    off = Vector("v4_filter_off_rgb_16x16_patch8", "RGB 16x16, Y'CbCr, patch 8, version 4 with "
                 "every filter 0 (none): the pixels of version 2", 16, 16, 1,
                 rgb_patch8_planes(), colour=ycc)
    return [
        V2Vector(sub, np.zeros((16, 16, 3)), {}, version=4,
                 deblock={0: (60, 30, 4), 1: (40, 20, 2)}),
        V2Vector(patch2, pattern((10, 12, 1), 84, 0, 255),
                 {0: ResidualPart(0, predictors=(PLANAR,), codes=(INT16,))}, version=4,
                 deblock={0: (80, 40, 6)}),
        V2Vector(off, np.zeros((16, 16, 3)), {}, version=4),
    ]


def v6_vectors() -> list[V2Vector]:
    """Version 6 (§5.6): the restoration filter after the deblocking filter on an RGB image
    (Y' of 4 classes, Cb of 1, Cr of 2; every class used), on a 13 x 7 L plane of the plain
    layout (coefficients that clamp at 0 and 255, a width below the diamond's), and under a
    lossless residual, which corrects the restored samples."""
    ycc = container.COLOUR_YCBCR
    sub = Vector("v6_restore_rgb_16x16_sub_patch4", "RGB 16x16, Y'CbCr 4:2:0, patch 4: Y' "
                 "deblocked then restored with 4 activity classes, Cb deblocked then restored "
                 "with 1, Cr restored with 2", 16, 16, 1,
                 rgb_sub_patch4_planes(), colour=ycc, sub=1)
    grey = Vector("v6_restore_l_13x7_plain", "L 13x7, plain, restored with 2 classes of strong "
                  "coefficients (samples clamp at 0 and 255)", 13, 7, 1,
                  [plane(7, 13, 2.0, [1.0, 2.0, 4.0], 86, (3, 8), 3)])
    patch2 = Vector("v6_restore_l_12x10_patch2_lossless", "L 12x10, patch 2, deblocked and "
                    "restored (3 classes), lossless: the residual is against the restored "
                    "samples", 12, 10, 1,
                    [plane(10, 12, 2.0, [1.0, 2.0, 4.0], 85, (3, 6), 1, patch=2,
                           predictors=(PLANAR, NONE))])
    luma = [[9, -3, 1, -2, 6, 10, -2, 1, 2, -3, 1, 0], [20, -8, 3, -4, 12, 22, -6, 2, 5, -9, 3, 1],
            [-10, 4, -1, 3, -7, -12, 4, -2, -3, 5, -1, 0], [63, -64, 30, -20, 40, 63, -30, 10,
                                                            25, -40, 15, 5]]
    return [
        V2Vector(sub, np.zeros((16, 16, 3)), {}, version=6,
                 deblock={0: (60, 30, 4), 1: (40, 20, 2)},
                 restoration={0: ([1100, 1470, 1700], luma),
                              1: ([], [[12, -4, 2, -3, 8, 14, -3, 1, 3, -4, 1, 1]]),
                              2: ([114], [[0] * 12, [-20, 5, 0, 4, -9, -21, 5, -1, -4, 6, 0, 0]])}),
        V2Vector(grey, np.zeros((7, 13, 1)), {}, version=6,
                 restoration={0: ([1288], [[63, 63, 40, -64, 63, 63, -64, 63, 40, 63, -64, 63],
                                          [-64, -64, 20, 63, -64, -64, 63, -64, 10, -64, 63, -64]])}),
        V2Vector(patch2, pattern((10, 12, 1), 84, 0, 255),
                 {0: ResidualPart(0, predictors=(PLANAR,), codes=(INT16,))}, version=6,
                 deblock={0: (80, 40, 6)},
                 restoration={0: ([150, 240], [[8, -2, 1, -1, 5, 9, -2, 1, 2, -3, 1, 0],
                                               [16, -6, 2, -3, 10, 18, -4, 2, 4, -6, 2, 1],
                                               [-8, 2, 0, 2, -5, -9, 2, -1, -2, 3, 0, 0]])}),
    ]


def v7_invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """Wrapped residual blocks (§4.1) where they are not allowed."""
    wrapped = valid["v7_u16x3_12x10_wrapped"]
    return [
        ("v7_wrapped_in_v6", "a wrapped residual block (element type 5) in a version 6 file",
         replace(wrapped, b"HEAD", patch_struct(container.HEAD_RECORD, f0=6)),
         "invalid element type 5"),
        ("v7_wrapped_int32", "a wrapped residual block of int32 samples (16-bit types only)",
         replace(wrapped, b"HEAD", patch_struct(container.HEAD_RECORD, f3=6)),
         "uint16 or int16 only"),
    ]


def unadapted_version_6(chunks: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A version 5 file's chunks (HEAD first) as version 6's: HEAD's version 6, and each PLAN
    in version 6's 30 bytes with no plane adapted (K = G = 0, §3)."""
    head = (b"HEAD", patch_struct(container.HEAD_RECORD, f0=6)(chunks[0][1]))
    return [head] + [(kind, container.PLAN_RECORD_V6.pack(
        *container.PLAN_RECORD_V4.unpack(payload), *container.NO_AQ))
        if kind == b"PLAN" else (kind, payload) for kind, payload in chunks[1:]]


def as_restored_version_6(data: bytes, restoration: dict[int, RestoreSpec]) -> bytes:
    """A valid version 4 file as version 6: version 5's container (§4.2), HEAD's version 6,
    version 6's PLAN chunks with no plane adapted (§3) and the RSTR chunk of these filters
    right after the PLAN (and MEAN) chunks."""
    chunks = unadapted_version_6(split_chunks(as_version_5(data)))
    at = max(i for i, (kind, _) in enumerate(chunks) if kind in (b"PLAN", b"MEAN")) + 1
    rstr = split_chunks(container.SIGNATURE + restore_chunk(restoration))
    return join_chunks(chunks[:at] + rstr + chunks[at:])


def v3_vectors() -> list[V2Vector]:
    """Version 3 (§5.2): Y'CbCr of 16-bit samples, 4:2:0 and 4:4:4, scale 257 and another,
    alpha made exact, and R, G, B within 100 with R and B referencing G. Chroma factors up to 9
    (plane values up to 81, 20817 samples at scale 257) so that R and B clamp at both ends."""
    sub = [plane(16, 16, 2.0, [1.0, 2.0, 4.0, 4.0], 70, (4, 7), 5, patch=4),
           plane(8, 8, 1.0, [1.0, 2.0], 71, (-9, 9), 3),
           plane(8, 8, 1.0, [1.0], 72, (-9, 9), 0, predictors=(VERTICAL, NONE))]
    full = [plane(5, 9, 2.0, [1.0, 2.0], 73, (4, 8), 3, predictors=(VERTICAL, VERTICAL)),
            plane(5, 9, 1.0, [1.0], 74, (-9, 9), 0),
            plane(5, 9, 1.0, [1.0, 2.0], 75, (-9, 9), 2),
            plane(5, 9, 1.0, [1.0, 1.0], 76, (14, 16), 2)]
    ycc = container.COLOUR_YCBCR
    rgb_sub = Vector("v3_rgb16_16x16_sub", "16-bit RGB 16x16, Y'CbCr with 2x2 chroma "
                     "subsampling, scale 257; luma patch 4, chroma plain; no residual", 16, 16,
                     2, sub, colour=ycc, sub=1, scale=257.0)
    rgba = Vector("v3_rgba16_9x5_alpha", "16-bit RGBA 9x5, Y'CbCr 4:4:4, scale 100, plain; "
                  "alpha made exact by a lossless residual on channel 3", 9, 5, 2, full,
                  colour=ycc, scale=100.0)
    bounded = Vector("v3_rgb16_16x16_e100", "16-bit RGB 16x16, Y'CbCr 4:2:0, scale 257; R, G, "
                     "B within 100 (step 201): G, then R and B less G's q, two row blocks",
                     16, 16, 2, sub, colour=ycc, sub=1, scale=257.0)
    alpha = np.zeros((5, 9, 4), np.int64)
    alpha[..., 3] = pattern((5, 9), 77, -3000, 3000)
    return [
        V2Vector(rgb_sub, np.zeros((16, 16, 3)), {}, version=3),
        V2Vector(rgba, alpha, {3: ResidualPart(0, codes=(INT16,), predictors=(HORIZONTAL,))},
                 near=True, version=3),
        V2Vector(bounded, pattern((16, 16, 3), 78, -2000, 2000),
                 {1: ResidualPart(100, cuts=(8,), predictors=(VERTICAL, PLANAR),
                                  codes=(INT8,)),
                  0: ResidualPart(100, cuts=(8,), predictors=(HORIZONTAL, NONE),
                                  codes=(INT8,), reference=1),
                  2: ResidualPart(100, cuts=(8,), predictors=(PLANAR, VERTICAL),
                                  codes=(INT8,), reference=1)}, near=True, version=3),
    ]


def array_vectors() -> list[V2Vector]:
    """Version 2's array types (§2, §5.2, §5.3): int8, int16 with 5 channels, int32 and uint32
    past their ranges (clamped), float64, and centred columns (MEAN, §3.1) on float32 and on an
    int16 pair with a rank-0 plane."""
    i8 = Vector("v2_i8_9x7_lossless", "int8 9x7 (numpy only), scale 0.25, lossless: negative "
                "samples, half-up rounding of negative values (-2.5 -> -2), horizontal "
                "predictor", 9, 7, 4, [plane(7, 9, 2.0, [1.0, 2.0], 40, (-7, 7), 3)], scale=0.25)
    i16x5 = Vector("v2_i16x5_6x8_e3", "int16 x 5 8x6 (numpy only: more than 4 channels), scale "
                   "100, max error 3 (step 7) on channels 0, 2 and 4; 1 and 3 the layer alone",
                   8, 6, 5, [plane(6, 8, 2.0, [1.0, 2.0], 42 + 5 * i, (-7, 7), 2)
                             for i in range(5)], scale=100.0)
    i32 = Vector("v2_i32_4x5_lossless", "int32 4x5 (numpy only), scale 2^24: plane values past "
                 "+-128 clamp to the int32 range; lossless, planar predictor", 4, 5, 6,
                 [plane(5, 4, 2.0, [1.0, 1.0], 55, (-7, 7), 3)], scale=float(1 << 24))
    u32 = Vector("v2_u32_5x4_e1000", "uint32 5x4 (numpy only), scale 2^25 (clamped at 0 and "
                 "2^32 - 1), max error 1000 (step 2001), int8 residuals", 5, 4, 7,
                 [plane(4, 5, 2.0, [1.0, 2.0], 46, (-7, 7), 2)], scale=float(1 << 25))
    f64 = Vector("v2_f64_6x5_e1e-9", "float64 6x5 (numpy only), scale 0.1 (samples fl64(p "
                 "0.1)), max error 1e-9 (step 2e-9), vertical predictor", 6, 5, 8,
                 [plane(5, 6, 2.0, [1.0, 2.0], 47, (-7, 7), 3)], scale=0.1)
    mean_f32 = Vector("v2_mean_f32_7x6", "F 7x6, plain, centred: a MEAN chunk whose means are "
                      "not multiples of the plane's grid (fl64 sum, then fl32); no residual",
                      7, 6, 3, [plane(6, 7, 2.0, [1.0, 2.0], 48, (-7, 7), 3)], scale=0.25)
    mean_i16 = Vector("v2_mean_i16x2_8x5_lossless", "int16 x 2 8x5, centred: plane 0 rank 2 "
                      "with means, lossless; plane 1 rank 0 with means (every row the means), "
                      "no residual", 8, 5, 5,
                      [plane(5, 8, 2.0, [1.0, 2.0], 50, (-7, 7), 3),
                       plane(5, 8, 1.0, [], 51, (0, 0), 0)], scale=3.0)
    u8x6 = Vector("v2_u8x6_5x4_references", "uint8 x 6 5x4 (numpy only), lossless: channel 5's"
                  " residual references channel 0's, which a decoder keeping at most 4 residual "
                  "streams open reads twice (spec §5 Resources)", 5, 4, 1,
                  [plane(4, 5, 2.0, [1.0], 56 + i, (4, 7), 0) for i in range(6)])
    return [
        V2Vector(u8x6, pattern((4, 5, 6), 62, 0, 255),
                 {c: ResidualPart(0, predictors=(HORIZONTAL,), codes=(INT16,),
                                  reference=0 if c == 5 else 255) for c in range(6)}),
        V2Vector(i8, pattern((7, 9, 1), 41, -128, 127),
                 {0: ResidualPart(0, predictors=(HORIZONTAL,), codes=(INT16,))}),
        V2Vector(i16x5, pattern((6, 8, 5), 43, -40, 40),
                 {c: ResidualPart(3, predictors=(VERTICAL,), codes=(INT8,)) for c in (0, 2, 4)},
                 near=True),
        V2Vector(i32, pattern((5, 4, 1), 44, -1000, 1000),
                 {0: ResidualPart(0, predictors=(PLANAR,), codes=(INT16,))}, near=True),
        V2Vector(u32, pattern((4, 5, 1), 45, -30000, 30000),
                 {0: ResidualPart(1000, predictors=(NONE,), codes=(INT8,))}, near=True),
        V2Vector(f64, pattern((5, 6, 1), 47, -500, 500) * 1e-9,
                 {0: ResidualPart(1e-9, predictors=(VERTICAL,), codes=(INT16,))}, near=True),
        V2Vector(mean_f32, np.zeros((6, 7, 1)), {},
                 means={0: (pattern((7,), 49, -1000, 1000) / 7.0).astype(np.float32)}),
        V2Vector(mean_i16, pattern((5, 8, 2), 52, -50, 50),
                 {0: ResidualPart(0, predictors=(VERTICAL,), codes=(INT8,))}, near=True,
                 means={0: (pattern((8,), 53, -300, 300) / 3.0).astype(np.float32),
                        1: (pattern((8,), 54, -300, 300) / 7.0).astype(np.float32)}),
    ]


def v2_invalid_vectors(valid: dict[str, bytes], v1: bytes) -> list[tuple[str, str, bytes, str]]:
    """Files that break one rule of version 2 each (spec §3, §4.1, §5.1)."""
    rgb = valid["v2_rgb_16x16_lossless"]
    lum = valid["v2_l_12x10_lossless"]
    chunks = split_chunks(lum)
    rblk_at = [i for i, (k, _) in enumerate(chunks) if k == b"RBLK"]
    rgb_chunks = split_chunks(rgb)
    rgb_rblk = [i for i, (k, _) in enumerate(rgb_chunks) if k == b"RBLK"]
    first_factor = next(i for i, (k, _) in enumerate(chunks) if k in container.FACTOR_TYPES)
    residual = chunks[rblk_at[0]]
    late_reference = rgb_chunks[:rgb_rblk[0]] + [rgb_chunks[rgb_rblk[1]], rgb_chunks[rgb_rblk[0]]] \
        + rgb_chunks[rgb_rblk[2]:]
    frame_at = container.RESIDUAL_RECORD.size
    v1_chunks = split_chunks(v1)
    big = rblk(0, 255, 0, np.full((7, 13), 0, np.int64), 1.0, 0.0, INT32, NONE)
    big_payload = bytearray(split_chunks(container.SIGNATURE + big)[0][1])
    content = bytearray(frame_content(bytes(big_payload[frame_at:])))
    content[0:8] = np.asarray([(1 << 31) - 1, (1 << 31) - 1], "<i4").tobytes()
    big_payload = bytes(big_payload[:frame_at]) + zstd_frame(bytes(content))
    l_v1 = split_chunks(valid["l_13x7_plain"])
    v2_head = (b"HEAD", container.HEAD_RECORD.pack(2, *container.HEAD_RECORD.unpack(l_v1[0][1])[1:]))
    l_v2 = [v2_head] + [(b"PLAN", c[1] + bytes([40])) if c[0] == b"PLAN" else c for c in l_v1[1:]]
    l_v2 = l_v2[:-1] + [(b"RBLK", big_payload), l_v2[-1]]
    big_factor = plane(7, 13, 2.0, [1.0, 2.0], 31, (4, 7), 3, code=INT32)
    big_factor.A[2, 0] = (1 << 24) + 1  # binary32 rounds it to 2^24: the limit is strict
    big_file = V2Vector(Vector("v2_factor_range", "", 13, 7, 1, [big_factor]),
                        np.zeros((7, 13, 1), np.int64), {}).encode()
    return [
        ("v2_factor_range", "a U integer of 2^24 + 1 in a version 2 plane (binary32 would "
         "round it to 2^24)", big_file, "reach 2^24"),
        # Before version 3 existed this file was refused for its version; it still is, for its
        # version 1 PLAN chunks (the bytes are unchanged).
        ("unknown_version_3", "HEAD declares format version 3 over version 1's 23-byte PLAN "
         "chunks", replace(v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=3)),
         "PLAN chunk has 23 bytes, expected 24"),
        # Before version 4 existed this file was refused for its version; it still is, for its
        # version 1 PLAN chunks (the bytes are unchanged).
        ("unknown_version_4", "HEAD declares format version 4 over version 1's 23-byte PLAN "
         "chunks", replace(v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=4)),
         "PLAN chunk has 23 bytes, expected 27"),
        # Before version 5 existed this file was refused for its version; it still is, for its
        # version 1 PLAN chunks (the bytes are unchanged).
        ("unknown_version_5", "HEAD declares format version 5 over version 1's 23-byte PLAN "
         "chunks", replace(v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=5)),
         "PLAN chunk has 23 bytes, expected 27"),
        # Before version 6 existed this file was refused for its version; it still is, for its
        # version 1 PLAN chunks (the bytes are unchanged).
        ("unknown_version_6", ("HEAD declares format version 6 over version 1's 23-byte "
                               "PLAN chunks"),
         replace(v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=6)),
         "PLAN chunk has 23 bytes, expected 30"),
        # Before version 7 existed this file was refused for its version; it still is, for its
        # version 1 PLAN chunks (the bytes are unchanged).
        ("unknown_version_7", ("HEAD declares format version 7 over version 1's 23-byte "
                               "PLAN chunks"),
         replace(v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=7)),
         "PLAN chunk has 23 bytes, expected 30"),
        ("unknown_version_8", "HEAD declares format version 8", replace(
            v1, b"HEAD", patch_struct(container.HEAD_RECORD, f0=8)), "unsupported format version 8"),
        *v4_invalid_vectors(valid),
        ("v3_ycc16_in_v2", "16-bit Y'CbCr (a version 3 file) with HEAD's version 2", replace(
            valid["v3_rgb16_16x16_sub"], b"HEAD", patch_struct(container.HEAD_RECORD, f0=2)),
         "Y'CbCr transform needs 8-bit RGB or RGBA (version 3: or 16-bit)"),
        ("v3_ycc_int16", "Y'CbCr of int16 samples (sample type 5) in a version 3 file", replace(
            valid["v3_rgb16_16x16_sub"], b"HEAD", patch_struct(container.HEAD_RECORD, f3=5)),
         "Y'CbCr transform needs 8-bit RGB or RGBA (version 3: or 16-bit)"),
        ("v3_ycc16_two_channels", "16-bit Y'CbCr of 2 channels in a version 3 file", replace(
            valid["v3_rgba16_9x5_alpha"], b"HEAD", patch_struct(container.HEAD_RECORD, f4=2,
                                                                 f7=2)),
         "Y'CbCr transform needs 8-bit RGB or RGBA (version 3: or 16-bit)"),
        ("v2_rblk_in_v1", "an RBLK chunk in a version 1 file", join_chunks(
            v1_chunks[:-1] + [residual] + v1_chunks[-1:]), "residual block (RBLK) in a version 1 file"),
        ("v2_plan_size", "version 2 file with a 23-byte (version 1) PLAN chunk", replace(
            lum, b"PLAN", lambda p: p[:23]), "PLAN chunk has 23 bytes, expected 24"),
        ("v2_shift_range", "PLAN shift 64, beyond 63", replace(
            lum, b"PLAN", lambda p: p[:23] + bytes([64])), "shift 64 exceeds 63"),
        ("v2_weight_range", "PLAN shift 63 makes a weight W_k exceed 2^53", replace(
            lum, b"PLAN", lambda p: p[:23] + bytes([63])), "exact weight exceeds 2^53"),
        ("v2_exact_bound", "PLAN shift 48: every W_k <= 2^53 but max|A| max|B| sum(W) >= 2^53",
         replace(lum, b"PLAN", lambda p: p[:23] + bytes([48])),
         "breaks the exact reconstruction bound 2^53"),
        ("v2_rblk_frame_size", "RBLK frame declares one byte more than rows x width x 2",
         replace(lum, b"RBLK", lambda p: p[:frame_at] + zstd_frame(
             frame_content(p[frame_at:]), len(frame_content(p[frame_at:])) + 1)),
         "zstd frame declares"),
        ("v2_rblk_rows", "RBLK rows beyond the image height", replace(
            lum, b"RBLK", patch_struct(container.RESIDUAL_RECORD, f3=11)), "outside 0..10"),
        ("v2_rblk_gap", "a channel's residual blocks cover 8 of 16 rows", join_chunks(
            [c for i, c in enumerate(rgb_chunks) if i not in rgb_rblk[3:]]),
         "residual blocks cover 8 of 16 rows"),
        ("v2_rblk_reference_order", "R's block (reference G) before G's block of the same rows",
         join_chunks(late_reference), "has no earlier block of the same rows"),
        ("v2_rblk_before_factor", "an RBLK chunk before the factor blocks", join_chunks(
            chunks[:first_factor] + [residual] + [c for c in chunks[first_factor:]
                                                  if c is not residual]),
         "factor block after a residual block"),
        ("v2_rblk_step", "uint8 residual step 0.5 (integer samples need an integer step)",
         replace(lum, b"RBLK", patch_struct(container.RESIDUAL_RECORD, f4=0.5)),
         "is not an integer"),
        ("v2_rblk_q_range", "residual running sum 2^32 - 2 (horizontal predictor) beyond "
         "2^31 - 1", join_chunks(l_v2[:-2] + [(b"RBLK", big_payload[:27] + bytes([HORIZONTAL])
                                               + big_payload[28:])] + l_v2[-1:]),
         "residual beyond 2^31 - 1"),
        *array_invalid_vectors(valid, v1),
    ]


def v4_invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """Files that break one rule of version 4's deblocking filter each (§3)."""
    sub = valid["v4_filter_rgb_16x16_sub_patch4"]
    v2_plain = valid["v2_l_12x10_lossless"]
    as_v4 = replace(v2_plain, b"HEAD", patch_struct(container.HEAD_RECORD, f0=4))
    wide = replace(valid["v3_rgb16_16x16_sub"], b"HEAD", patch_struct(container.HEAD_RECORD, f0=4))
    for n in range(3):
        wide = replace(wide, b"PLAN", lambda p: p + bytes([0, 0, 0]), nth=n)
    return [
        ("v4_filter_partial", "PLAN's filter alpha 60, beta 0, tc 4: beta 0 with the others "
         "set", replace(sub, b"PLAN", lambda p: p[:25] + bytes([0]) + p[26:]),
         "alpha, beta and tc must all be 0 (no filter) or all >= 1"),
        ("v4_filter_plain_layout", "the filter on a plane of the plain layout", replace(
            as_v4, b"PLAN", lambda p: p + bytes([10, 5, 1])), "on a plane of the plain layout"),
        ("v4_filter_uint16", "the filter on a patch-layout plane of 16-bit samples (colour 1, "
         "version 4)", replace(wide, b"PLAN", lambda p: p[:24] + bytes([10, 5, 1])),
         "on uint16 samples (8-bit samples only)"),
        ("v4_filter_plan_size", "a version 4 file with version 2's 24-byte PLAN chunks",
         replace(v2_plain, b"HEAD", patch_struct(container.HEAD_RECORD, f0=4)),
         "PLAN chunk has 24 bytes, expected 27"),
    ]


def array_invalid_vectors(valid: dict[str, bytes], v1: bytes
                          ) -> list[tuple[str, str, bytes, str]]:
    """Files that break one rule of version 2's sample types, channels and MEAN chunks each
    (spec §2, §3.1, §4.1)."""
    centred = valid["v2_mean_f32_7x6"]
    chunks = split_chunks(centred)
    mean_at = next(i for i, (k, _) in enumerate(chunks) if k == b"MEAN")
    mean = chunks[mean_at]
    without = chunks[:mean_at] + chunks[mean_at + 1:]
    first_factor = next(i for i, (k, _) in enumerate(without) if k in container.FACTOR_TYPES)
    v1_chunks = split_chunks(v1)  # l_13x7_plain: one plain plane 13 wide
    v1_mean = (b"MEAN", split_chunks(container.SIGNATURE
                                     + mean_chunk(0, np.zeros(13, np.float32)))[0][1])
    rgb = split_chunks(valid["v2_rgb_16x16_lossless"])  # patch 8: 64 matrix columns
    last_plan = max(i for i, (k, _) in enumerate(rgb) if k == b"PLAN")
    patch_mean = (b"MEAN", split_chunks(container.SIGNATURE
                                        + mean_chunk(0, np.zeros(64, np.float32)))[0][1])
    values = np.zeros(7, np.float32)
    values[3] = np.nan
    nan_mean = (b"MEAN", split_chunks(container.SIGNATURE + mean_chunk(0, values))[0][1])
    return [
        ("v2_sample_type_in_v1", "a version 1 file declaring sample type 5 (int16)", replace(
            v1, b"HEAD", patch_struct(container.HEAD_RECORD, f3=5)),
         "unknown sample type 5 (format version 1)"),
        ("v2_sample_type_9", "sample type 9 in a version 2 file", replace(
            valid["v2_i8_9x7_lossless"], b"HEAD", patch_struct(container.HEAD_RECORD, f3=9)),
         "unknown sample type 9"),
        ("v2_channels_in_v1", "a version 1 file of 5 channels (5 planes)", replace(
            v1, b"HEAD", patch_struct(container.HEAD_RECORD, f4=5, f7=5)),
         "invalid channel count 5 with 5 planes (format version 1: 1..4)"),
        ("v2_rblk_wide_step", "int32 residual step 2^21, beyond 2^21 - 1", replace(
            valid["v2_i32_4x5_lossless"], b"RBLK",
            patch_struct(container.RESIDUAL_RECORD, f4=float(1 << 21))),
         "is not an integer in 1..2097151"),
        ("v2_mean_in_v1", "a MEAN chunk in a version 1 file", join_chunks(
            v1_chunks[:2] + [v1_mean] + v1_chunks[2:]), "column means (MEAN) in a version 1 file"),
        ("v2_mean_patch", "a MEAN chunk for a patch-layout plane", join_chunks(
            rgb[:last_plan + 1] + [patch_mean] + rgb[last_plan + 1:]),
         "column means need the plain layout"),
        ("v2_mean_twice", "two MEAN chunks for plane 0", join_chunks(
            chunks[:mean_at + 1] + [mean] + chunks[mean_at + 1:]), "more than one MEAN chunk"),
        ("v2_mean_after_block", "a MEAN chunk after the first factor block", join_chunks(
            without[:first_factor + 1] + [mean] + without[first_factor + 1:]),
         "MEAN chunk outside its place"),
        ("v2_mean_no_plane", "a MEAN chunk for plane 1 of a one-plane file", replace(
            centred, b"MEAN", lambda p: bytes([1]) + p[1:]), "no such plane"),
        ("v2_mean_frame_size", "MEAN frame declares 4 bytes more than the plane's 7 means",
         replace(centred, b"MEAN", lambda p: p[:1] + zstd_frame(frame_content(p[1:]), 32)),
         "zstd frame declares"),
        ("v2_mean_not_finite", "a NaN among the column means", join_chunks(
            chunks[:mean_at] + [nan_mean] + chunks[mean_at + 1:]), "a mean is not finite"),
    ]


# ----------------------------------------------------------------------------- invalid vectors


def replace(data: bytes, kind: bytes, edit: Callable[[bytes], bytes], nth: int = 0) -> bytes:
    """The file with the payload of the nth chunk of type `kind` edited, CRCs recomputed."""
    chunks = split_chunks(data)
    hits = [i for i, (k, _) in enumerate(chunks) if k == kind]
    i = hits[nth]
    chunks[i] = (kind, edit(chunks[i][1]))
    return join_chunks(chunks)


def patch_struct(fmt: struct.Struct, offset: int = 0, **changes: object) -> Callable[[bytes],
                                                                                     bytes]:
    """An edit that rewrites fields of a packed struct, given by position: f0=..., f1=..."""
    def edit(payload: bytes) -> bytes:
        fields = list(fmt.unpack_from(payload, offset))
        for key, value in changes.items():
            fields[int(key[1:])] = value
        return payload[:offset] + fmt.pack(*fields) + payload[offset + fmt.size:]
    return edit


def work_bomb(rank: int) -> bytes:
    """RGBA 65535x1365 (within Pillow's pixel limit) with four plain planes of `rank` all-zero
    components: a complete file of about 2 KB whose decode would take 4*65535*1365*rank
    multiply-adds and gigabytes."""
    width, height = 65535, 1365
    parts = [container.SIGNATURE, head(width, height, 1, 4, container.COLOUR_YCBCR)]
    parts += [plan(i, container.LAYOUT_PLAIN, 0, height, width, rank, 1.0) for i in range(4)]
    for i in range(4):
        parts.append(dense_block(b"SBLK", i, 0, np.ones(rank, np.float32), FLOAT32))
        parts.append(zero_block(b"VBLK", i, 0, rank, width))
        parts.append(zero_block(b"UBLK", i, 0, rank, height))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


def huge_frame(data: bytes, declared: int) -> bytes:
    """The file with its first U block's zstd frame declaring `declared` content bytes."""
    def edit(payload: bytes) -> bytes:
        start = container.BLOCK_RECORD.size + container.DENSE_RECORD.size
        frame = payload[start:]
        return payload[:start] + frame[:5] + struct.pack("<Q", declared) + frame[13:]
    return replace(data, b"UBLK", edit)


def sparse_size_bomb() -> bytes:
    """L 85x2^20, plain, rank 85, whose sparse U block declares symbols = rows x (count + 1) and
    as many run and value escapes (int32): 7 x rows x (count + 1) = 631 MB of content in a
    19.6 KB file of zero RLE blocks (issue #14, finding 1). The escape counts exceed what the
    grammar allows (at most symbols - rows each, run escapes at most rows x (count // 16))."""
    width, height, rank = 85, 1 << 20, 85
    nsym = height * (rank + 1)  # rows x (count + 1)
    descriptor = (container.BLOCK_RECORD.pack(0, 0, rank, container.SPARSE)
                  + container.SPARSE_RECORD.pack(3, nsym, nsym, nsym))
    return b"".join([container.SIGNATURE, head(width, height, 1, 1),
                     plan(0, container.LAYOUT_PLAIN, 0, height, width, rank, 1.0),
                     dense_block(b"SBLK", 0, 0, np.ones(rank, np.float32), FLOAT32),
                     zero_block(b"VBLK", 0, 0, rank, width),
                     chunk(b"UBLK", descriptor + zero_frame(7 * nsym)),
                     chunk(b"IEND", b"")])


def _sparse_descriptor(**changes: int) -> Callable[[bytes], bytes]:
    """An edit of a sparse block's descriptor fields (f1 symbols, f2 run escapes, f3 value
    escapes) by the amounts given, the frame left as it is (the sizes are refused first)."""
    def edit(payload: bytes) -> bytes:
        offset = container.BLOCK_RECORD.size
        fields = list(container.SPARSE_RECORD.unpack_from(payload, offset))
        for key, delta in changes.items():
            fields[int(key[1:])] += delta
        return (payload[:offset] + container.SPARSE_RECORD.pack(*fields)
                + payload[offset + container.SPARSE_RECORD.size:])
    return edit


def _frame_edit(edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    """An edit of a dense block's zstd frame, given its content (raw and RLE blocks)."""
    def whole(payload: bytes) -> bytes:
        start = container.BLOCK_RECORD.size + container.DENSE_RECORD.size
        return payload[:start] + edit(payload[start:])
    return whole


def invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """(name, description, bytes, expected error substring) of every invalid vector."""
    base = valid["l_13x7_plain"]
    rgb = valid["rgb_16x16_patch8"]
    chunks = split_chunks(base)
    plan0 = chunks[1][1]
    bad_crc = (container.SIGNATURE + chunk(*chunks[0])
               + chunk(b"PLAN", plan0, zlib.crc32(plan0, zlib.crc32(b"PLAN")) ^ 1)
               + b"".join(chunk(*c) for c in chunks[2:]))
    m, n = 7, 13
    sparse_u = max(i for i, (kind, _) in enumerate(chunks) if kind == b"UBLK")
    escapes = replace(base, b"UBLK", _with_extra_escape, nth=-1)
    return [
        ("bad_signature", "PNG signature instead of SVDI", b"\x89PNG" + base[4:],
         "bad signature"),
        ("truncated", "last 20 bytes missing", base[:-20], "truncated file"),
        ("truncated_header", "cut inside the first chunk header", base[:14], "truncated file"),
        ("bad_crc", "PLAN chunk CRC off by one bit", bad_crc, "CRC mismatch in PLAN chunk"),
        ("unknown_version", "HEAD declares format version 2 with version 1's 23-byte PLAN "
         "chunks (the file of version 1's 'unknown version' vector)", replace(
            base, b"HEAD", patch_struct(container.HEAD_RECORD, f0=2)),
         "PLAN chunk has 23 bytes, expected 24"),
        ("oversized_header", "width 2^20 + 1, beyond MAX_DIMENSION", replace(
            base, b"HEAD", patch_struct(container.HEAD_RECORD, f1=container.MAX_DIMENSION + 1)),
         f"outside 1..{container.MAX_DIMENSION}"),
        ("rank_too_large", f"rank {min(m, n) + 1} > min({m}, {n})", replace(
            base, b"PLAN", patch_struct(container.PLAN_RECORD, f5=min(m, n) + 1)),
         f"rank {min(m, n) + 1} exceeds min({m}, {n}"),
        ("unknown_critical_chunk", "an XTRA chunk (upper-case first letter) before IEND",
         base[:-12] + chunk(b"XTRA", b"must not be skipped") + base[-12:],
         "unknown critical chunk XTRA"),
        ("data_after_iend", "one zero byte after IEND", base + b"\0",
         "1 bytes of data after IEND"),
        ("zstd_1tb_frame", "U block zstd frame declares 2^40 bytes of content",
         huge_frame(base, 1 << 40), f"zstd frame declares {1 << 40} bytes"),
        ("work_bomb", "RGBA 65535x1365, 4 planes of rank 193: work just over MAX_WORK",
         work_bomb(193), "reconstruction work"),
        ("escape_mismatch", "sparse U block with one value escape more than its symbols use",
         escapes, "escape counts do not match"),
        ("nan_sigma", "singular value NaN", replace(base, b"SBLK",
                                                    lambda p: _sigma_payload(p, np.nan)),
         "singular values must be finite"),
        ("inf_sigma", "singular value +inf", replace(base, b"SBLK",
                                                     lambda p: _sigma_payload(p, np.inf)),
         "singular values must be finite"),
        ("element_count", "dense U block declares one element more than the plane implies",
         replace(rgb, b"UBLK", patch_struct(container.DENSE_RECORD, container.BLOCK_RECORD.size, f2=5)),
         "declares 5 elements, header implies 4"),
        ("missing_block", "last U block removed", join_chunks(
            [c for i, c in enumerate(chunks) if i != sparse_u]), "U blocks cover 1 of 3"),
        ("step_overflow", "quantizer step 1e30: the reconstruction overflows float32",
         replace(base, b"PLAN", patch_struct(container.PLAN_RECORD, f6=1e30)), "reconstruction overflows"),
        ("scale_overflow", "F image with sample scale 1e300: samples overflow float32",
         replace(valid["f_5x4_plain"], b"HEAD", patch_struct(container.HEAD_RECORD, f8=1e300)),
         "samples overflow float32"),
        ("scale_float32_limit",
         "F image with sample scale one binary64 step above the largest binary32 / 255", replace(valid["f_5x4_plain"], b"HEAD", patch_struct(
             container.HEAD_RECORD, f8=float(np.nextafter(float(np.finfo(np.float32).max) / 255,
                                                          np.inf)))),
         "samples overflow float32"),
        ("sparse_value_escapes", ("sparse U block declaring one value escape more than its "
                                  "value symbols (symbols - rows)"), replace(base, b"UBLK", _sparse_descriptor(
             f3=_values(base) - _field(base, 3) + 1), nth=-1), "stream sizes"),
        ("sparse_run_escapes", ("sparse U block of fewer than 16 components declaring a run "
                                "escape (a run escape takes 16 columns)"), replace(base, b"UBLK", _sparse_descriptor(
             f2=1), nth=-1), "stream sizes"),
        ("sparse_size_bomb", ("85x2^20 plane whose sparse U block declares 631 MB of streams: "
                              "escape counts beyond the grammar's"), sparse_size_bomb(),
         "stream sizes"),
        ("zstd_window", "dense U block in a zstd frame with a window of 2^24 bytes",
         replace(rgb, b"UBLK", _frame_edit(lambda f: windowed_frame(frame_content(f), 24))),
         "zstd window of 16777216 bytes exceeds 8388608"),
        ("zstd_skippable_frame", "dense U block's frame followed by a skippable frame",
         replace(rgb, b"UBLK", _frame_edit(lambda f: f + SKIPPABLE_FRAME)),
         "zstd frame is incomplete or followed by extra data"),
        ("zstd_two_frames", "dense U block's frame followed by a second, empty frame",
         replace(rgb, b"UBLK", _frame_edit(lambda f: f + zstd_frame(b""))),
         "zstd frame is incomplete or followed by extra data"),
        ("plane_size", "PLAN height disagrees with HEAD", replace(
            base, b"PLAN", patch_struct(container.PLAN_RECORD, f3=8)), "plane 0 is 13x8, expected 13x7"),
        *metadata_invalid_vectors(valid["rgb_16x16_metadata"]),
    ]


def edited_valid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, str, bytes]]:
    """(name, source, description, bytes) of valid files made by editing a valid vector in a
    way the spec allows, which decode to the source's pixels."""
    def dictionary_id_zero(frame: bytes) -> bytes:  # Dictionary_ID_flag 1, its one byte 0
        return frame[:4] + bytes([frame[4] | 1, 0]) + frame[5:]
    return [
        ("zstd_dictionary_id_zero", "rgb_16x16_patch8",
         ("rgb_16x16_patch8 whose first U frame carries a Dictionary_ID field of 0 (RFC 8878: "
          "no dictionary; §4)"),
         replace(valid["rgb_16x16_patch8"], b"UBLK", _frame_edit(dictionary_id_zero))),
        ("uint8_scale_2", "l_13x7_plain",
         "l_13x7_plain with HEAD scale 2: a uint8 image's scale is not applied (§2, §5.2)",
         replace(valid["l_13x7_plain"], b"HEAD", patch_struct(container.HEAD_RECORD, f8=2.0))),
    ]


def metadata_invalid_vectors(data: bytes) -> list[tuple[str, str, bytes, str]]:
    """Files that break one rule of spec section 1.1 each, from the metadata vector."""
    chunks = split_chunks(data)
    exif = next(c for c in chunks if c[0] == b"eXIf")
    first_block = next(i for i, (kind, _) in enumerate(chunks) if kind in container.FACTOR_TYPES)
    phys = [c for c in chunks if c[0] == b"pHYs"]
    no_phys = [c for c in chunks if c[0] != b"pHYs"]
    huge = b"ICC\0\0" + zstd_frame(b"")[:5] + struct.pack("<Q", (1 << 24) + 1)
    return [
        ("meta_exif_twice", "two eXIf chunks", join_chunks(chunks[:1] + [exif] + chunks[1:]),
         "more than one eXIf chunk"),
        ("meta_after_blocks", "pHYs chunk after the first factor block", join_chunks(
            no_phys[:first_block - 1] + no_phys[first_block - 1:first_block] + phys
            + no_phys[first_block:]), "pHYs chunk after the factor blocks"),
        ("meta_phys_length", "pHYs chunk of 8 bytes", replace(data, b"pHYs", lambda p: p[:8]),
         "pHYs chunk has 8 bytes, expected 9"),
        ("meta_icc_frame_size", "iCCP zstd frame declares 2^24 + 1 bytes", replace(
            data, b"iCCP", lambda p: huge), "zstd frame must declare a content size of at most"),
        ("meta_icc_signature", "iCCP profile without the 'acsp' signature", replace(
            data, b"iCCP", lambda p: b"x\0\0" + zstd_frame(icc_header_only()[:36] + b"ACSP"
                                                          + icc_header_only()[40:])),
         "not an ICC profile"),
        ("meta_icc_window", "iCCP zstd frame with a window of 2^24 bytes (§4's zstd rule)",
         replace(data, b"iCCP", lambda p: b"ICC\0\0" + windowed_frame(icc_header_only(), 24)),
         "zstd window of 16777216 bytes exceeds 8388608"),
        ("meta_icc_two_frames", "iCCP zstd frame followed by a second, empty frame", replace(
            data, b"iCCP", lambda p: b"ICC\0\0" + zstd_frame(icc_header_only()) + zstd_frame(b"")),
         "zstd frame is incomplete or followed by extra data"),
        ("meta_text_compressed", "iTXt with compression flag 1", replace(
            data, b"iTXt", lambda p: p.replace(b"Comment\0\0", b"Comment\0\1", 1), nth=1),
         "only uncompressed text"),
        ("meta_exif_not_tiff", "eXIf that does not start with a TIFF byte-order mark",
         replace(data, b"eXIf", lambda p: b"Exif\0\0" + p), "EXIF must be a TIFF structure"),
    ]


def _field(data: bytes, index: int) -> int:
    """Field `index` of the descriptor of the file's last sparse U block."""
    payload = [p for k, p in split_chunks(data) if k == b"UBLK"][-1]
    return container.SPARSE_RECORD.unpack_from(payload, container.BLOCK_RECORD.size)[index]


def _values(data: bytes) -> int:
    """Value symbols (symbols - rows) of the file's last sparse U block."""
    rows = container.PLAN_RECORD.unpack(split_chunks(data)[1][1])[3]
    return _field(data, 1) - rows


def _sigma_payload(payload: bytes, value: float) -> bytes:
    """An S block payload with its first singular value replaced (frames are raw blocks)."""
    start = container.BLOCK_RECORD.size + container.DENSE_RECORD.size + 13 + 3  # frame header, first block header
    return payload[:start] + struct.pack("<f", value) + payload[start + 4:]


def _with_extra_escape(payload: bytes) -> bytes:
    """A sparse block payload with one more value escape than its symbols use."""
    offset = container.BLOCK_RECORD.size
    code, nsym, nxrun, nxval = container.SPARSE_RECORD.unpack_from(payload, offset)
    start = offset + container.SPARSE_RECORD.size
    raw = frame_content(payload[start:])
    raw += np.asarray([5], ELEMENT_TYPES[code]).tobytes()
    return (payload[:offset] + container.SPARSE_RECORD.pack(code, nsym, nxrun, nxval + 1) + zstd_frame(raw))


def frame_content(frame: bytes) -> bytes:
    """Content of a frame written by zstd_frame (raw and RLE blocks)."""
    pos, out = 13, bytearray()
    while True:
        header = int.from_bytes(frame[pos:pos + 3], "little")
        size, kind = header >> 3, (header >> 1) & 3
        out += frame[pos + 3:pos + 4] * size if kind == 1 else frame[pos + 3:pos + 3 + size]
        pos += 3 + (1 if kind == 1 else size)
        if header & 1:
            return bytes(out)


# ----------------------------------------------------------------------------- version 5


#: Version 5 (§4.2): content of at most this many bytes is stored raw by `as_version_5`, larger
#: content keeps its (magicless) zstd frame, so that the vectors hold both.
V5_STORED_UPTO = 16
#: Valid files of versions 2-4 whose version 5 form is a vector too (the same pixels).
V5_SOURCES = ("v4_filter_rgb_16x16_sub_patch4", "v4_filter_l_12x10_patch2_lossless",
              "v4_filter_off_rgb_16x16_patch8", "v2_rgb_16x16_lossless", "v2_l_12x10_lossless",
              "v2_mean_f32_7x6", "v3_rgb16_16x16_e100", "v2_i16_6x10_e2")


@dataclass
class Record:
    """A factor block of a version 5 file (§4.2), as fields, so that invalid vectors can break
    one of them: plane, count, coding byte, sparse sizes (or None), frame (with its length) or
    stored bytes."""
    kind: bytes
    plane: int
    count: int
    coding: int
    sizes: tuple[int, int, int] | None
    body: bytes  # the stored content, or the magicless frame
    count_bytes: bytes | None = None  # the count's bytes when not its shortest LEB128 form
    length_delta: int = 0  # added to the frame length field (past the chunk's end)

    def encode(self) -> bytes:
        out = bytes([self.plane]) + (self.count_bytes or varint(self.count)) + bytes([self.coding])
        if self.sizes is not None:
            out += b"".join(varint(n) for n in self.sizes)
        if self.coding & 2:
            return out + self.body
        return out + varint(len(self.body) + self.length_delta) + self.body


def records_of(kind: bytes, payload: bytes) -> Record:
    """The version 5 record of a version 1-4 factor block chunk: the same content, stored raw
    up to V5_STORED_UPTO bytes, else in the same zstd frame without its magic number."""
    plane, _, count, coding = container.BLOCK_RECORD.unpack_from(payload)
    at = container.BLOCK_RECORD.size
    sizes = None
    if coding == container.DENSE:
        code, predictor, _ = container.DENSE_RECORD.unpack_from(payload, at)
        at += container.DENSE_RECORD.size
    else:
        code, *counts = container.SPARSE_RECORD.unpack_from(payload, at)
        predictor, sizes = 0, (counts[0], counts[1], counts[2])
        at += container.SPARSE_RECORD.size
    frame = payload[at:]
    content = frame_content(frame)
    stored = len(content) <= V5_STORED_UPTO
    byte = coding | (2 if stored else 0) | predictor << 2 | code << 4
    return Record(kind, plane, count, byte, sizes, content if stored else frame[4:])


def as_version_5(data: bytes, edit: Callable[[list[Record]], None] | None = None) -> bytes:
    """A valid file of version 2-4 as version 5 (§4.2): HEAD's version 5, PLAN chunks of 27
    bytes (the filter bytes 0 where there were none), and the factor blocks in the reference
    encoder's order (group by group: S, then V, then U of every plane), each run of records of
    one factor in one chunk. `edit` may change the records first (invalid vectors)."""
    out: list[tuple[bytes, bytes]] = []
    records: list[tuple[int, int, Record]] = []
    seen: dict[tuple[bytes, int], int] = {}
    place = None
    for kind, payload in split_chunks(data):
        if kind == b"HEAD":
            payload = patch_struct(container.HEAD_RECORD, f0=5)(payload)
        elif kind == b"PLAN":
            payload = payload + bytes(container.PLAN_RECORD_V4.size - len(payload))
        if kind in container.FACTOR_TYPES:
            record = records_of(kind, payload)
            group = seen.get((kind, record.plane), 0)  # the n-th block of its plane and factor
            seen[(kind, record.plane)] = group + 1
            records.append((group, b"SBLK VBLK UBLK".index(kind), record))
            place = len(out) if place is None else place
        else:
            out.append((kind, payload))
    ordered = [r for _, _, r in sorted(records, key=lambda x: (x[0], x[1]))]
    if edit is not None:
        edit(ordered)
    chunks: list[tuple[bytes, bytes]] = []
    for record in ordered:
        if chunks and chunks[-1][0] == record.kind:
            chunks[-1] = (record.kind, chunks[-1][1] + record.encode())
        else:
            chunks.append((record.kind, record.encode()))
    assert place is not None
    return join_chunks(out[:place] + chunks + out[place:])


#: Version 6 (§5.5): version 5 vectors whose plane 0 (patch layout) is adapted, with K and G.
V6_SOURCES = {"v5_filter_rgb_16x16_sub_patch4": (4, 0x4F1B),
              "v5_filter_off_rgb_16x16_patch8": (16, 0x4F1B)}


def as_adapted_version_6(data: bytes, components: int, g_bits: int) -> bytes:
    """A valid version 5 file as version 6 (§5.5): HEAD's version 6, PLAN chunks of 30 bytes,
    plane 0 adapted with (K, G) and its shift lowered by 5 (M < 2^5: the bound holds for A o M
    where it held for A), the other planes not adapted; the same blocks."""
    chunks = split_chunks(data)
    out = []
    for kind, payload in chunks:
        if kind == b"HEAD":
            payload = patch_struct(container.HEAD_RECORD, f0=6)(payload)
        elif kind == b"PLAN":
            fields = list(container.PLAN_RECORD_V4.unpack(payload))
            aq = (0, 0)
            if fields[0] == 0:
                fields[7] = max(0, fields[7] - 5)
                aq = (components, g_bits)
            payload = container.PLAN_RECORD_V6.pack(*fields, *aq)
        out.append((kind, payload))
    return join_chunks(out)


def v6_aq_invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """Broken PLAN fields of adaptive quantization (§3, §5.5)."""
    base = valid["v6_aq_rgb_16x16_sub_patch4"]
    plan = container.PLAN_RECORD_V6

    def fields(**changes: object) -> bytes:
        return replace(base, b"PLAN", patch_struct(plan, **changes))
    what = "adaptive quantization"
    return [
        ("v6_aq_k1", "plane 0 adapted with K 1 (no component for the map)", fields(f11=1),
         "K must be 2..16, or K and G both 0"),
        ("v6_aq_k17", "plane 0 adapted with K 17", fields(f11=17), "K must be 2..16"),
        ("v6_aq_g_zero", "K 4 with G 0", fields(f12=0), "G must be a positive finite binary16"),
        ("v6_aq_g_infinite", "G = +infinity (0x7C00)", fields(f12=0x7C00),
         "G must be a positive finite binary16"),
        ("v6_aq_g_negative", "G = -1 (0xBC00)", fields(f12=0xBC00),
         "G must be a positive finite binary16"),
        ("v6_aq_g_without_k", "K 0 with G 1.0 on plane 1", replace(
            base, b"PLAN", patch_struct(plan, f12=0x3C00), nth=1), f"{what} (K 0, G 0x3c00)"),
        ("v6_aq_plan_size", "a version 6 file with version 5's 27-byte PLAN chunks",
         as_version_5_plans(base), "PLAN chunk has 27 bytes, expected 30"),
    ]


def as_version_5_plans(data: bytes) -> bytes:
    """A version 6 file with its PLAN chunks cut to version 5's 27 bytes (HEAD still 6)."""
    return join_chunks([(k, p[:27] if k == b"PLAN" else p) for k, p in split_chunks(data)])


def v5_invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """Version 5 files that break one rule of the compact container each (§4.2)."""
    base = valid["v2_rgb_16x16_lossless"]  # dense and sparse, stored and zstd records

    def edited(change: Callable[[list[Record]], None]) -> bytes:
        return as_version_5(base, change)

    def first(kind: bytes, sparse: bool | None = None, stored: bool | None = None
              ) -> Callable[[list[Record]], Record]:
        def pick(records: list[Record]) -> Record:
            return next(r for r in records if r.kind == kind
                        and (sparse is None or bool(r.coding & 1) == sparse)
                        and (stored is None or bool(r.coding & 2) == stored))
        return pick

    def setting(pick: Callable[[list[Record]], Record], **fields: Any
                ) -> Callable[[list[Record]], None]:
        def change(records: list[Record]) -> None:
            record = pick(records)
            for key, value in fields.items():
                setattr(record, key, value(record) if callable(value) else value)
        return change

    def drop_last_u(records: list[Record]) -> None:
        records.remove([r for r in records if r.kind == b"UBLK"][-1])

    u_sparse = first(b"UBLK", sparse=True)

    def last_framed_v(records: list[Record]) -> Record:  # the last record of its chunk
        return [r for r in records if r.kind == b"VBLK"][-1]
    with_trailing = split_chunks(as_version_5(base))
    at = next(i for i, (k, _) in enumerate(with_trailing) if k == b"VBLK")
    with_trailing[at] = (b"VBLK", with_trailing[at][1] + b"\0")
    empty = split_chunks(as_version_5(base))
    at = next(i for i, (k, _) in enumerate(empty) if k == b"SBLK")
    empty.insert(at + 1, (b"UBLK", b""))
    return [
        ("v5_count_not_shortest", "a block's count in LEB128 with a superfluous 0x00 byte",
         edited(setting(first(b"VBLK"), count_bytes=lambda r: bytes([r.count | 0x80, 0]))),
         "number not in its shortest form"),
        ("v5_count_too_long", "a block's count in six LEB128 bytes", edited(setting(
            first(b"VBLK"), count_bytes=lambda r: bytes([r.count | 0x80, 0x80, 0x80, 0x80, 0x80, 0]))),
         "number longer than 5 bytes"),
        ("v5_count_past_rank", "a block of one component more than its plane's rank",
         edited(setting(first(b"SBLK"), count=lambda r: r.count + 1)),
         "out of order or past rank"),
        ("v5_coding_reserved_bit", "a coding byte with bit 7 set",
         edited(setting(first(b"UBLK"), coding=lambda r: r.coding | 0x80)),
         "sets its reserved bit"),
        ("v5_sparse_predictor", "a sparse block's coding byte with predictor bits",
         edited(setting(u_sparse, coding=lambda r: r.coding | 4)),
         "a sparse block with predictor bits"),
        ("v5_sparse_s", "an S block coded sparse",
         edited(setting(first(b"SBLK"), coding=lambda r: r.coding | 1, sizes=(1, 0, 0))),
         "S blocks are dense"),
        ("v5_element_type", "a dense U block of element type 4 (float32)", edited(setting(
            first(b"UBLK", sparse=False), coding=lambda r: r.coding & 0x0F | 4 << 4)),
         "invalid element type 4"),
        ("v5_sparse_size_bomb", "a sparse block declaring 2^32 - 1 symbols", edited(setting(
            u_sparse, sizes=lambda r: (2**32 - 1, *r.sizes[1:]))), "stream sizes"),
        ("v5_frame_past_chunk", "a frame length one byte past the chunk's end",
         edited(setting(last_framed_v, length_delta=1)), "past the chunk's end"),
        ("v5_frame_with_magic", "a block's zstd frame with its magic number (version 5 frames "
         "start at the frame header descriptor)",
         edited(setting(last_framed_v, body=lambda r: struct.pack("<I", ZSTD_MAGIC) + r.body)),
         "bad zstd frame"),
        ("v5_trailing_byte", "a factor chunk with one byte after its last record",
         join_chunks(with_trailing), "block record too short"),
        ("v5_empty_chunk", "a factor chunk without a record", join_chunks(empty),
         "block record too short"),
        ("v5_missing_block", "the last U block left out", edited(drop_last_u),
         "U blocks cover"),
    ]


def v6_restoration_invalid_vectors(valid: dict[str, bytes]) -> list[tuple[str, str, bytes, str]]:
    """Files that break one rule of version 6's RSTR chunk each (§5.6)."""
    rgb = valid["v6_restore_rgb_16x16_sub_patch4"]
    chunks = split_chunks(rgb)
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"RSTR")
    rstr = chunks[at]
    payload = rstr[1]
    luma = 2 + 2 * 3 + 12 * 4  # the first record (Y', 4 classes)
    first_block = next(i for i, (kind, _) in enumerate(chunks)
                       if kind in container.FACTOR_TYPES)
    without = chunks[:at] + chunks[at + 1:]
    v5 = split_chunks(valid["v5_filter_rgb_16x16_sub_patch4"])
    v5_place = max(i for i, (kind, _) in enumerate(v5) if kind == b"PLAN") + 1

    def edited(new: bytes) -> bytes:
        return join_chunks(chunks[:at] + [(b"RSTR", new)] + chunks[at + 1:])
    wide = unadapted_version_6(split_chunks(valid["v5_rgb16_16x16_e100"]))
    wide_place = max(i for i, (kind, _) in enumerate(wide) if kind == b"PLAN") + 1
    return [
        ("v6_rstr_in_v5", "an RSTR chunk in a version 5 file", join_chunks(
            v5[:v5_place] + [rstr] + v5[v5_place:]), "restoration filter (RSTR) in a version 5 file"),
        ("v6_rstr_twice", "two RSTR chunks", join_chunks(chunks[:at] + [rstr, rstr]
                                                        + chunks[at + 1:]), "more than one RSTR chunk"),
        ("v6_rstr_after_block", "the RSTR chunk after the first factor block", join_chunks(
            without[:first_block] + [rstr] + without[first_block:]), "RSTR chunk outside its place"),
        ("v6_rstr_empty", "an RSTR chunk without a record", edited(b""),
         "RSTR chunk without a record"),
        ("v6_rstr_truncated", "the last record one coefficient short", edited(payload[:-1]),
         "truncated"),
        ("v6_rstr_classes", "a record of 5 classes", edited(payload[:1] + bytes([5])
                                                           + payload[2:]), "classes, not 1..4"),
        ("v6_rstr_no_classes", "a record of 0 classes", edited(payload[:1] + bytes([0])
                                                              + payload[2:]), "classes, not 1..4"),
        ("v6_rstr_bounds", "activity bounds 1470, 1100, 1700 (decreasing)", edited(
            payload[:2] + struct.pack(">3H", 1470, 1100, 1700) + payload[8:]), "activity bounds decrease"),
        ("v6_rstr_coefficient", "a coefficient of 64 (7 bits signed: -64..63)", edited(
            payload[:8] + bytes([64]) + payload[9:]), "coefficient outside -64..63"),
        ("v6_rstr_plane_order", "the records of Y' and Cb swapped (planes not increasing)",
         edited(payload[luma:luma + 2 + 12] + payload[:luma] + payload[luma + 14:]),
         "not after the previous record's plane"),
        ("v6_rstr_plane_range", "a record for plane 3 of a 3-plane file", edited(
            payload + bytes([3, 1]) + bytes(12)), "no such plane"),
        ("v6_rstr_uint16", "an RSTR chunk in a 16-bit Y'CbCr file", join_chunks(
            wide[:wide_place] + [rstr] + wide[wide_place:]), "restoration filter on uint16 samples"),
    ]


# ----------------------------------------------------------------------------- output


def build() -> tuple[dict[str, bytes], dict]:
    """Every vector file by name, and the manifest."""
    files: dict[str, bytes] = {}
    entries = []
    valid: dict[str, bytes] = {}
    for v in valid_vectors():
        data = v.encode()
        valid[v.name] = data
        expected = reference_pixels(v)
        files[f"{v.name}.svdi"] = data
        files[f"{v.name}.npy"] = npy_bytes(expected)
        # spec/svdi.md, Conformance: +-1 for integers, 1e-5 of scale * 255 for float32; none
        # for integers whose planes are whole numbers, which every conforming decoder makes
        # exactly (the module's docstring)
        whole = all(np.array_equal(p, np.round(p)) and np.abs(p).max(initial=0) < 2 ** 24
                    for p in map(reference_plane, v.planes))
        tolerance = {"abs": 1e-5 * v.scale * 255} if v.stype == 3 else {"abs": 0 if whole else 1}
        entries.append({"file": f"{v.name}.svdi", "valid": True, "description": v.description,
                        "mode": MODES.get((v.stype, v.channels)), "shape": list(expected.shape),
                        "dtype": str(expected.dtype), "expected": f"{v.name}.npy",
                        "tolerance": tolerance})
        if v.expected_metadata is not None:  # exif and icc_profile in hex, xmp as text
            entries[-1]["metadata"] = v.expected_metadata
    for w in v2_vectors():
        data = w.encode()
        valid[w.name] = data
        _, _, expected = w.q_and_expected()
        if expected.shape[2] == 1:
            expected = expected[..., 0]
        files[f"{w.name}.svdi"] = data
        files[f"{w.name}.npy"] = npy_bytes(expected)
        # spec/svdi.md, Conformance: version 2 samples are exact.
        entries.append({"file": f"{w.name}.svdi", "valid": True,
                        "description": w.base.description,
                        "mode": MODES.get((w.base.stype, w.base.channels)),
                        "shape": list(expected.shape), "dtype": str(expected.dtype),
                        "expected": f"{w.name}.npy", "tolerance": {"abs": 0},
                        "format_version": w.version,
                        "max_error": {str(c): p.bound for c, p in sorted(w.parts.items())}})
    for name in V5_SOURCES:  # version 5 (§4.2): the same pixels in the compact container
        source = next(e for e in entries if e["file"] == f"{name}.svdi")
        v5 = f"v5_{name.split('_', 1)[1]}"
        data = as_version_5(valid[name])
        valid[v5] = data
        files[f"{v5}.svdi"] = data
        files[f"{v5}.npy"] = files[f"{name}.npy"]
        entries.append({**source, "file": f"{v5}.svdi", "expected": f"{v5}.npy",
                        "format_version": 5,
                        "description": f"version 5 container: {source['description']}"})
    for name, (components, g_bits) in V6_SOURCES.items():  # version 6 (§5.5)
        source = next(e for e in entries if e["file"] == f"{name}.svdi")
        v6 = f"v6_aq_{name.split('_', 2)[2]}"
        data = as_adapted_version_6(valid[name], components, g_bits)
        valid[v6] = data
        files[f"{v6}.svdi"] = data
        files[f"{v6}.npy"] = npy_bytes(decode_reference(data))
        entries.append({**source, "file": f"{v6}.svdi", "expected": f"{v6}.npy",
                        "format_version": 6,
                        "description": f"version 6, plane 0 adapted (K {components}, G "
                                       f"0x{g_bits:04x}): {source['description']}"})
    for name, source_name, description, data in edited_valid_vectors(valid):
        source = next(e for e in entries if e["file"] == f"{source_name}.svdi")
        valid[name] = data
        files[f"{name}.svdi"] = data
        files[f"{name}.npy"] = files[f"{source_name}.npy"]
        entries.append({**source, "file": f"{name}.svdi", "expected": f"{name}.npy",
                        "description": description})
    invalid = invalid_vectors(valid) + v2_invalid_vectors(valid, valid["l_13x7_plain"]) \
        + v5_invalid_vectors(valid) + v6_aq_invalid_vectors(valid) \
        + v6_restoration_invalid_vectors(valid) + v7_invalid_vectors(valid)
    for name, description, data, error in invalid:
        files[f"{name}.svdi"] = data
        entries.append({"file": f"{name}.svdi", "valid": False, "description": description,
                        "error": error})
    manifest = {"format_version": container.VERSION, "generator": "spec/make_vectors.py",
                "decode": "svdcodec.decode(data) with default arguments",
                "tolerance": "valid: |decoded - expected| <= abs elementwise",
                "vectors": entries}
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    return files, manifest


def npy_bytes(array: np.ndarray) -> bytes:
    """The .npy file of an array (format 1.0, no pickles: stable bytes)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


#: Invalid vectors also kept as regression files for tests/test_hostile.py.
REGRESSIONS = ("work_bomb", "zstd_1tb_frame", "sparse_size_bomb", "zstd_skippable_frame",
               "v5_sparse_size_bomb", "v5_frame_past_chunk")


def write(out: Path, regressions: Path | None = None) -> list[Path]:
    """Write the vectors to `out` (and the hostile ones to `regressions`); return the paths."""
    files, _ = build()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in sorted(files.items()):
        (out / name).write_bytes(data)
        written.append(out / name)
    if regressions is not None:
        regressions.mkdir(parents=True, exist_ok=True)
        for name in REGRESSIONS:
            (regressions / f"{name}.svdi").write_bytes(files[f"{name}.svdi"])
            written.append(regressions / f"{name}.svdi")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "spec" / "vectors")
    parser.add_argument("--regressions", type=Path, default=ROOT / "tests" / "regressions")
    args = parser.parse_args(argv)
    for path in write(args.out, args.regressions):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
