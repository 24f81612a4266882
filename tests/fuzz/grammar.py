"""A structure-aware generator of .svdi files, from the grammar of spec/svdi.md §1-4 and 5.

A third of the files are version 2 (spec §3, §4.1, §5.1): PLANs with the shift of the exact
reconstruction (the largest that keeps its bound, factors within 2^24), and residual blocks
(RBLK) on some channels, in row blocks, with every element type and predictor, integer or
float steps and references to another channel's residual; version 2's array modes (sample
types int8 ... float64, up to 6 channels) are always version 2, and some plain planes of a
version 2 file are centred (a MEAN chunk of finite means, spec §3.1). Version 3's 16-bit
Y'CbCr modes (spec §5.2) are always version 3, with everything a version 2 file may hold. A
third of the files of versions 2 and 3 are version 4: their PLANs carry the deblocking filter
(spec §5.4) on most patch-layout planes of 8-bit samples, at strengths from 1 to 255. Half of
the files of versions 2-4 are version 5 (spec §4.2): their blocks are records, most runs of one
factor sharing a chunk, their frames without the magic number, some blocks stored raw; the
"record" defect writes a count in a longer LEB128 form or sets the coding byte's reserved bit.
Half of the version 5 files of 16-bit samples (uint16, int16) are version 7 (30-byte PLANs, no
plane adapted), where half of the residual blocks are wrapped (element type 5: int16 elements,
q modulo 2^16, spec §4.1).

Every file is built as the spec describes it — HEAD, PLANs, S/U/V blocks (dense with each
element type and predictor, sparse with valid run/level streams from an integer matrix with
long runs and escaped values), IEND — with valid CRCs, for every mode (sample type, channels,
colour transform, subsampling) and layout (plain, patch 2..32). Then, with `defects`, one to
three changes that a byte-level fuzzer rarely finds: fields at and past their limits, sparse
descriptor sizes at and past the grammar's bounds, zstd frames with odd windows, checksums
(good and bad), skippable, second and truncated frames, trailing bytes, reordered, duplicated
and missing chunks, unknown chunks, flipped stream bytes.

Choices come from a `Choices` source: `RandomChoices` (a seeded `random.Random`: the smoke test,
the hostile benchmark) or `ProviderChoices` (atheris' FuzzedDataProvider: the fuzzer steers the
structure itself). `generate` returns the bytes and a description of what was built.

    from grammar import RandomChoices, generate
    case = generate(RandomChoices(7))
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import zstandard

from svdcodec import format as fmt
from svdcodec.codec import exact as exact_rule
from svdcodec.codec.coding import predict, to_symbols
from svdcodec.errors import SvdiError
from svdcodec.format.records import varint

T = TypeVar("T")

ZSTD_MAGIC = 0xFD2FB528
ZSTD_BLOCK = 1 << 17
#: The modes of spec §2: (sample type, channels, colour, subsampling).
MODES = [(1, 1, 0, 0), (1, 2, 0, 0), (1, 3, 0, 0), (1, 4, 0, 0), (1, 3, 1, 0), (1, 3, 1, 1),
         (1, 4, 1, 0), (1, 4, 1, 1), (2, 1, 0, 0), (2, 2, 0, 0), (2, 4, 0, 0), (3, 1, 0, 0),
         (3, 3, 0, 0)]
#: Modes of version 2 only (spec §2): the array sample types 4-8 and more than 4 channels.
V2_MODES = [(4, 1, 0, 0), (5, 2, 0, 0), (6, 1, 0, 0), (7, 1, 0, 0), (8, 3, 0, 0), (1, 6, 0, 0),
            (5, 5, 0, 0)]
#: Modes of version 3 only (spec §2, §5.2): Y'CbCr of uint16, 4:4:4 and 4:2:0, with alpha.
V3_MODES = [(2, 3, 1, 0), (2, 3, 1, 1), (2, 4, 1, 0), (2, 4, 1, 1)]
#: Modes Pillow opens with the decoder's samples (spec §2: the others are numpy arrays only;
#: 16-bit RGB(A) opens rounded to 8 bits, which tests/test_colour16.py checks).
PILLOW_MODES = {(1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (3, 1), (6, 1)}  # 6, 1: int32 as I
LAYOUTS = [(fmt.LAYOUT_PLAIN, 0)] + [(fmt.LAYOUT_PATCH, p) for p in fmt.PATCH_SIZES]
ELEMENT_LIMITS = {1: 127, 2: 32767, 3: 2**31 - 1}


class Choices(Protocol):
    def int(self, lo: int, hi: int) -> int: ...  # lo..hi inclusive
    def chance(self, p: float) -> bool: ...
    def raw(self, n: int) -> bytes: ...


class RandomChoices:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def raw(self, n: int) -> bytes:
        return self.rng.randbytes(n)


class ProviderChoices:
    """atheris.FuzzedDataProvider as a choice source (an exhausted provider answers lo)."""

    def __init__(self, provider: Any) -> None:
        self.p = provider

    def int(self, lo: int, hi: int) -> int:
        return int(self.p.ConsumeIntInRange(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self.p.ConsumeProbability() < p)

    def raw(self, n: int) -> bytes:
        return bytes(self.p.ConsumeBytes(n))


def pick(c: Choices, items: Sequence[T]) -> T:
    return items[c.int(0, len(items) - 1)]


def boundary(c: Choices, lo: int, hi: int) -> int:
    """An integer in lo..hi, half the time one of its ends or their neighbours."""
    if c.chance(0.5):
        return max(lo, min(hi, pick(c, [lo, lo + 1, hi - 1, hi])))
    return c.int(lo, hi)


# ----------------------------------------------------------------------------- bytes


def chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(payload, zlib.crc32(kind))))


def raw_frame(content: bytes, window_log: int | None = None, checksum: bool = False,
              declared: int | None = None) -> bytes:
    """A zstd frame of raw and RLE blocks: single-segment (window = content size) unless
    window_log is given; content size field always 8 bytes (`declared`, default the truth)."""
    size = len(content) if declared is None else declared
    flags = 0xC0 | (4 if checksum else 0)
    if window_log is None:
        head = struct.pack("<IBQ", ZSTD_MAGIC, flags | 0x20, size)
        block = ZSTD_BLOCK
    else:
        head = struct.pack("<IBBQ", ZSTD_MAGIC, flags, (window_log - 10) << 3, size)
        block = min(ZSTD_BLOCK, 1 << window_log)
    out = [head]
    starts = range(0, len(content), block) if content else [0]
    for start in starts:
        part = content[start:start + block]
        last = int(start + block >= len(content))
        rle = len(part) > 1 and part.count(part[:1]) == len(part)
        out.append((last | (2 if rle else 0) | len(part) << 3).to_bytes(3, "little")
                   + (part[:1] if rle else part))
    if checksum:
        out.append(struct.pack("<I", zstandard_xxh64_low(content)))
    return b"".join(out)


def zstandard_xxh64_low(content: bytes) -> int:
    """The 32 low bits of XXH64(content, 0), zstd's content checksum, taken from zstd."""
    frame = zstandard.ZstdCompressor(level=1, write_checksum=True).compress(content)
    return struct.unpack("<I", frame[-4:])[0]


def frame(c: Choices, content: bytes) -> tuple[bytes, str]:
    """A valid frame of `content`, in one of the shapes a writer may choose."""
    shape = c.int(0, 3)
    if shape == 0:
        level = pick(c, [1, 1, 3, 9, 19])
        checksum = c.chance(0.3)
        return (zstandard.ZstdCompressor(level=level, write_checksum=checksum,
                                         write_content_size=True).compress(content),
                f"zstd level {level}{' checksum' if checksum else ''}")
    if shape == 1:
        return raw_frame(content), "raw single-segment"
    if shape == 2:
        log = c.int(10, 23)
        return raw_frame(content, log, c.chance(0.5)), f"raw window 2^{log}"
    return raw_frame(content, checksum=True), "raw checksum"


# ----------------------------------------------------------------------------- model


@dataclass
class BlockSpec:
    kind: bytes  # b"SBLK", b"UBLK", b"VBLK"
    plane: int
    first: int
    count: int
    coding: int
    descriptor: list[int]  # dense: code, predictor, elements; sparse: code, nsym, nxrun, nxval
    content: bytes
    frame: bytes = b""
    compact: bool = False  # version 5: a record (spec §4.2), not a chunk's payload
    stored: bool = False  # version 5: the content stored raw
    count_bytes: bytes = b""  # version 5: the count's LEB128 bytes when a defect sets them
    reserved: int = 0  # version 5: bits a defect sets in the coding byte

    def payload(self) -> bytes:
        if self.compact:
            return self.record()
        record = fmt.DENSE_RECORD if self.coding == fmt.DENSE else fmt.SPARSE_RECORD
        return (fmt.BLOCK_RECORD.pack(self.plane, self.first, self.count, self.coding)
                + record.pack(*self.descriptor) + self.frame)

    def record(self) -> bytes:
        """The version 5 record: plane, count, coding byte, sparse sizes, then the frame
        without its magic number after its length, or the content stored."""
        code = self.descriptor[0]
        predictor = self.descriptor[1] if self.coding == fmt.DENSE else 0
        byte = (self.coding | (2 if self.stored else 0) | (predictor & 3) << 2
                | (code & 7) << 4 | self.reserved) & 0xFF
        out = bytes([self.plane]) + (self.count_bytes or varint(self.count)) + bytes([byte])
        if self.coding != fmt.DENSE:
            out += b"".join(varint(min(v, 2**32 - 1)) for v in self.descriptor[1:])
        if self.stored:
            return out + self.content
        body = self.frame[4:] if self.frame[:4] == struct.pack("<I", ZSTD_MAGIC) else self.frame
        return out + varint(len(body)) + body


@dataclass
class ResidualSpec:
    """One RBLK chunk (spec §4.1): its fields, its grid's content and its frame."""

    fields: list[Any]  # channel, reference, first, rows, step, bound, code, predictor
    content: bytes
    frame: bytes = b""
    kind: bytes = b"RBLK"

    def payload(self) -> bytes:
        return fmt.RESIDUAL_RECORD.pack(*self.fields) + self.frame


@dataclass
class Case:
    data: bytes
    mode: tuple[int, int, int, int]
    layouts: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def pillow(self) -> bool:
        return self.mode[:2] in PILLOW_MODES

    def __str__(self) -> str:
        return f"mode {self.mode} layouts {self.layouts}: " + "; ".join(self.notes)


def integers(c: Choices, rows: int, count: int, density: float, big: int) -> np.ndarray:
    """An integer (rows, count) matrix: mostly zeros, small values, some long runs and some
    values that need escapes of up to `big`."""
    rng = np.random.default_rng(c.int(0, 2**32 - 1))
    out = np.zeros((rows, count), np.int64)
    mask = rng.random((rows, count)) < density
    out[mask] = rng.integers(-7, 8, int(mask.sum()))
    if big > 7 and rows * count:
        n = max(1, int(mask.sum()) // 8)
        where = rng.integers(0, rows * count, n)
        out.reshape(-1)[where] = rng.choice([-1, 1], n) * rng.integers(8, big + 1, n)
    return out


def element_code(values: np.ndarray) -> int:
    """The narrowest element type holding `values`, or 4 when none does."""
    top = int(np.abs(values).max()) if values.size else 0
    return next((code for code, limit in ELEMENT_LIMITS.items() if top <= limit), 4)


def factor_blocks(c: Choices, kind: bytes, plane: int, rank: int, grid: tuple[int, int],
                  notes: list[str], magnitude: list[int] | None = None) -> list[BlockSpec]:
    """A factor's blocks; `magnitude` (version 2): its largest |integer| is appended, and the
    integers stay within the 2^24 of the exact rule."""
    rows = grid[0] * grid[1]
    blocks, first = [], 0
    largest = 0
    while first < rank:
        count = boundary(c, 1, rank - first)
        big = pick(c, [7, 127, 32767, 40000] if magnitude is not None
                   else [7, 127, 32767, 40000, 2**31 - 1])
        matrix = integers(c, rows, count, pick(c, [0.0, 0.05, 0.3, 1.0]), big)
        largest = max(largest, int(np.abs(matrix).max(initial=0)))
        if c.chance(0.5):
            predictor = c.int(0, 3)
            grids = matrix.T.reshape(count, *grid)
            residuals = predict(grids, predictor)
            if element_code(residuals) > 3:  # a predictor's residuals beyond int32
                residuals, predictor = grids, 0
            code = max(element_code(residuals), pick(c, [1, 2, 3]))
            content = residuals.astype(fmt.ELEMENT_TYPES[code]).tobytes()
            blocks.append(BlockSpec(kind, plane, first, count, fmt.DENSE,
                                    [code, predictor, residuals.size], content))
            notes.append(f"{kind.decode()}{plane}[{first}:{first + count}] dense "
                         f"int{8 * fmt.ELEMENT_TYPES[code].itemsize} p{predictor}")
        else:
            symbols, xrun, xval = to_symbols(matrix)
            code = 3 if xval.dtype.itemsize == 4 or c.chance(0.2) else 2
            content = (symbols.tobytes() + xrun.astype("<u2").tobytes()
                       + xval.astype(fmt.ELEMENT_TYPES[code]).tobytes())
            blocks.append(BlockSpec(kind, plane, first, count, fmt.SPARSE,
                                    [code, symbols.size, xrun.size, xval.size], content))
            notes.append(f"{kind.decode()}{plane}[{first}:{first + count}] sparse "
                         f"{symbols.size}/{xrun.size}/{xval.size}")
        first += count
    if magnitude is not None:
        magnitude.append(largest)
    return blocks


def residual_blocks(c: Choices, header: fmt.Header, notes: list[str]) -> list[ResidualSpec]:
    """RBLK chunks for some channels: the same row blocks for all, in each row block the
    channels without a reference first (spec §4.1's order)."""
    channels = [ch for ch in range(header.channels) if c.chance(0.6)]
    if not channels:
        return []
    cuts = sorted({0, *(c.int(1, header.height - 1) for _ in range(c.int(0, 2))
                        if header.height > 1)})
    bounds = list(zip(cuts, cuts[1:] + [header.height]))
    target = channels[0]
    references = {ch: target for ch in channels[1:] if c.chance(0.3)}
    floats = header.dtype.kind == "f"
    wrappable = header.version >= fmt.WRAPPED_VERSION \
        and header.sample_type in fmt.WRAPPED_SAMPLE_TYPES
    top = 0 if floats else fmt.residual_step_limit(header.dtype)
    steps = {ch: (pick(c, [0.01, 1.0, 0.5, 1e-30, 3e4]) if floats
                  else float(pick(c, [1, 3, 5, top]))) for ch in channels}
    out = []
    rng = np.random.default_rng(c.int(0, 2**32 - 1))
    order = [ch for ch in channels if ch not in references] + list(references)
    for first, end in bounds:
        for ch in order:
            spread = pick(c, [0, 3, 300, 70000, 2**30])
            q = rng.integers(-spread, spread + 1, (end - first, header.width))
            predictor = c.int(0, 3)
            residual = predict(q[None], predictor)[0]
            if element_code(residual) > 3:
                residual, predictor = q, 0
            code = max(element_code(residual), pick(c, [1, 2, 3]))
            content = residual.astype(fmt.ELEMENT_TYPES[code]).tobytes()
            if wrappable and c.chance(0.5):  # the residuals modulo 2^16 (numpy keeps 16 bits)
                code = fmt.WRAPPED_ELEMENT
                content = predict(q[None], predictor)[0].astype("<i2").tobytes()
            step = steps[ch]
            bound = (step - 1) / 2 if not floats else step / 2
            out.append(ResidualSpec([ch, references.get(ch, fmt.NO_REFERENCE), first,
                                     end - first, step, bound, code, predictor], content))
    notes.append(f"RBLK channels {channels} rows {cuts} references {references}")
    return out


def generate(c: Choices, *, max_pixels: int = 1 << 12, max_rank: int = 48,
             defects: bool = True) -> Case:
    """One file: valid by construction, then (with `defects`, most of the time) changed."""
    mode = pick(c, MODES + V2_MODES + V3_MODES)
    stype, channels, colour, sub = mode
    width = boundary(c, 1, 64)
    height = boundary(c, 1, max(1, min(64, max_pixels // width)))
    scale = 1.0
    if stype != 1:
        scale = pick(c, [1.0, 0.5, 257.0, 1e-3, 1e-30 if stype in (3, 8) else 1.0,
                         2.0 ** 24 if stype in (6, 7) else 1.0])
    version = 3 if mode in V3_MODES else 2 if mode in V2_MODES or c.chance(1 / 3) else 1
    if version >= 2 and c.chance(1 / 3):  # version 4 holds all of 2 and 3, and the filter
        version = 4
    if version >= 2 and c.chance(1 / 2):  # version 5: version 4 in the compact container
        version = 5
    if version == 5 and stype in fmt.WRAPPED_SAMPLE_TYPES and c.chance(1 / 2):
        version = fmt.WRAPPED_VERSION  # version 6's PLANs (no plane adapted), wrapped residuals
    header = fmt.Header(width, height, stype, channels, colour, sub, scale, version)
    notes = [f"{width}x{height} scale {scale:g} version {version}"]
    chunks: list[tuple[bytes, bytes]] = [
        (b"HEAD", fmt.HEAD_RECORD.pack(version, width, height, stype, channels, colour, sub,
                                       channels, scale))]
    blocks: list[list[BlockSpec]] = []
    layouts = []
    for index in range(channels):
        h, w = header.plane_shape(index)
        layout, patch = pick(c, LAYOUTS)
        plane = fmt.Plane(index, layout, patch, h, w, 0, 1.0)
        m, n = plane.matrix_shape
        rank = boundary(c, 0, min(m, n, max_rank))
        step = pick(c, [1.0, 0.5, 3.7, 20.0, 1e-3])
        layouts.append("plain" if layout == fmt.LAYOUT_PLAIN else f"patch{patch}")
        plane = fmt.Plane(index, layout, patch, h, w, rank, step)
        sigma = np.sort(np.abs(np.random.default_rng(c.int(0, 2**32 - 1))
                               .normal(0, pick(c, [1.0, 100.0, 1e4]), rank)))[::-1] + 1e-3
        groups: list[BlockSpec] = []
        if rank:
            s = sigma.astype(np.float32)
            groups.append(BlockSpec(b"SBLK", index, 0, rank, fmt.DENSE, [4, 0, rank],
                                    s.tobytes()))
        magnitude: list[int] | None = [] if version >= 2 else None
        groups += factor_blocks(c, b"VBLK", index, rank, plane.vgrid, notes, magnitude)
        groups += factor_blocks(c, b"UBLK", index, rank, plane.grid, notes, magnitude)
        blocks.append(groups)
        fields = [index, layout, patch, h, w, rank, step]
        if magnitude is None:
            chunks.append((b"PLAN", fmt.PLAN_RECORD.pack(*fields)))
            continue
        try:  # the most precise valid shift, as the reference encoder picks it
            shift = exact_rule.choose_shift(step, sigma.astype(np.float32), *magnitude, "")
        except SvdiError:  # no valid shift for these factors: a file that breaks the bound
            shift = 0
            notes.append(f"plane {index} beyond the exact bound")
        if version < 4:
            chunks.append((b"PLAN", fmt.PLAN_RECORD_V2.pack(*fields, shift)))
            continue
        # Version 4's deblocking filter (spec §5.4): on a patch-layout plane of uint8 samples,
        # at any strength 1..255, or none.
        params = (0, 0, 0)
        if stype == 1 and layout == fmt.LAYOUT_PATCH and c.chance(0.7):
            params = tuple(boundary(c, 1, 255) for _ in range(3))
            notes.append(f"plane {index} deblock {params}")
        if version >= fmt.AQ_VERSION:
            chunks.append((b"PLAN", fmt.PLAN_RECORD_V6.pack(*fields, shift, *params,
                                                            *fmt.NO_AQ)))
            continue
        chunks.append((b"PLAN", fmt.PLAN_RECORD_V4.pack(*fields, shift, *params)))
    if version >= 2:  # centred columns (MEAN, spec §3.1) on some plain planes
        for index, name in enumerate(layouts):
            if name == "plain" and c.chance(0.3):
                width_i = header.plane_shape(index)[1]
                means = np.random.default_rng(c.int(0, 2**32 - 1)).normal(
                    0, pick(c, [1.0, 300.0, 1e30]), width_i).astype(np.float32)
                content = means.astype("<f4").tobytes()
                chunks.append((b"MEAN", bytes([index]) + frame(c, content)[0]))
                notes.append(f"MEAN plane {index}")
    notes.insert(1, f"ranks {[len(b) and b[0].count for b in blocks]}")
    order: list[Any] = interleave(c, blocks)
    if version >= 2:
        order += residual_blocks(c, header, notes)
    for b in order:
        b.frame, how = frame(c, b.content)
        if isinstance(b, BlockSpec) and version >= 5:
            b.compact, b.stored = True, c.chance(0.3)
            how += " stored" if b.stored else ""
        if c.chance(0.1) and isinstance(b, BlockSpec):
            notes.append(f"{b.kind.decode()}{b.plane}[{b.first}] {how}")
    if c.chance(0.2):  # unknown ancillary chunks, skipped by readers (small: Pillow reads them
        # whole); not the metadata chunks of spec §1.1, whose payloads have rules of their own
        at = c.int(1, len(chunks))
        chunks.insert(at, (pick(c, [b"tEXt", b"zTXt", b"zzzz"]), c.raw(c.int(0, 64))))
        notes.append("ancillary chunk")
    case = Case(b"", mode, layouts, notes)
    body = [(b.kind, b) for b in order]
    if defects:
        for _ in range(c.int(0, 3)):
            name = pick(c, list(DEFECTS))
            note = DEFECTS[name](c, chunks, body)
            notes.append(f"defect {name}: {note}")
    items = chunks + [(k, b.payload() if isinstance(b, (BlockSpec, ResidualSpec)) else b)
                      for k, b in body]
    if version >= 5 and c.chance(0.8):  # records of one factor in a row: one chunk (§4.2)
        items = shared_chunks(items, len(chunks), body)
    tail = [(b"IEND", b"")]
    case.data = fmt.SIGNATURE + b"".join(chunk(k, p) for k, p in items + tail)
    if defects and c.chance(0.03):
        case.data += b"\0"
        notes.append("defect byte after IEND")
    return case


def shared_chunks(items: list[tuple[bytes, bytes]], start: int, body: Body
                  ) -> list[tuple[bytes, bytes]]:
    """`items` with each run of version 5 records of one factor (from `start`, the body's
    entries) joined into one chunk."""
    out = items[:start]
    previous = None  # the kind of the record the last chunk ends with
    for (kind, payload), (_, b) in zip(items[start:], body):
        record = isinstance(b, BlockSpec) and b.compact
        if record and previous == kind:
            out[-1] = (kind, out[-1][1] + payload)
        else:
            out.append((kind, payload))
        previous = kind if record else None
    return out


def interleave(c: Choices, planes: list[list[BlockSpec]]) -> list[BlockSpec]:
    """The blocks in an order the spec allows: each (plane, factor)'s blocks in component
    order, different planes and factors interleaved at random (or plane after plane)."""
    if c.chance(0.5):
        return [b for p in planes for b in p]
    queues = {}
    for p in planes:
        for b in p:
            queues.setdefault((b.plane, b.kind), []).append(b)
    out = []
    while queues:
        key = pick(c, sorted(queues))
        out.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    return out


# ----------------------------------------------------------------------------- defects
# Each takes the choices, the header chunks [(kind, payload)] and the body [(kind, BlockSpec or
# payload)], changes them in place, and describes the change.

Body = list[tuple[bytes, Any]]


def _a_block(c: Choices, body: Body, coding: int | None = None,
             kinds: Sequence[bytes] = (b"UBLK", b"VBLK", b"SBLK")) -> BlockSpec | None:
    found = [b for _, b in body if isinstance(b, BlockSpec) and b.kind in kinds
             and (coding is None or b.coding == coding)]
    return pick(c, found) if found else None


def d_descriptor_field(c: Choices, chunks: list, body: Body) -> str:
    b = _a_block(c, body)
    if b is None:
        return "no block"
    i = c.int(0, len(b.descriptor) - 1)
    old = b.descriptor[i]
    byte = i == 0 or (i == 1 and b.coding == fmt.DENSE)
    b.descriptor[i] = max(0, min(255 if byte else 2**32 - 1, pick(
        c, [old + 1, old - 1, 0, 2**32 - 1, 2**31, old * 2, 5, 255])))
    return f"{b.kind.decode()}{b.plane}[{b.first}] field {i} {old} -> {b.descriptor[i]}"


def d_sparse_limits(c: Choices, chunks: list, body: Body) -> str:
    """Descriptor sizes at and one past the grammar's bounds (spec §4), content resized to
    match so that only the bound decides."""
    b = _a_block(c, body, fmt.SPARSE)
    if b is None:
        return "no sparse block"
    code, nsym, nxrun, nxval = b.descriptor
    which = c.int(0, 3)
    plus = c.int(0, 1)
    values = nsym - _rows(b)
    rows = _rows(b)
    if which == 0:
        nxval = values + plus
    elif which == 1:
        nxrun = min(values, rows * (b.count // 16)) + plus
    elif which == 2:
        nsym = rows * (b.count + 1) + plus
    else:
        nxrun = (rows * b.count - values) // 15 + plus
    # Another defect may have set a field to an extreme first: keep each to its uint32 field.
    nsym, nxrun, nxval = (max(0, min(2**32 - 1, v)) for v in (nsym, nxrun, nxval))
    b.descriptor = [code, nsym, nxrun, nxval]
    size = nsym + 2 * nxrun + fmt.ELEMENT_TYPES.get(code, np.dtype("<i4")).itemsize * nxval
    if size <= 1 << 20:
        b.content = (b.content + bytes(size))[:size]
        b.frame = raw_frame(b.content)
    else:  # a size past a limit (after another defect): declared, not built
        b.frame = raw_frame(b.content, declared=size)
    return f"sparse sizes {nsym}/{nxrun}/{nxval} (bound {which}, +{plus})"


def _rows(b: BlockSpec) -> int:
    return b.content[:b.descriptor[1]].count(0x08)


def d_frame(c: Choices, chunks: list, body: Body) -> str:
    b = _a_block(c, body)
    if b is None:
        return "no block"
    what = c.int(0, 9)
    name = ["window 2^24..2^31", "skippable after", "second frame", "byte after",
            "cut", "no content size", "content size +-1", "bad checksum",
            "skippable instead", "window 2^23 (valid)"][what]
    skippable = struct.pack("<II", 0x184D2A50 + c.int(0, 15), 4) + c.raw(4).ljust(4, b"\0")
    if what == 0:
        b.frame = raw_frame(b.content, c.int(24, 31))
    elif what == 1:
        b.frame += skippable
    elif what == 2:
        b.frame += pick(c, [raw_frame(b""), zstandard.ZstdCompressor(
            write_content_size=True).compress(b"x")])
    elif what == 3:
        b.frame += c.raw(1).ljust(1, b"\0")
    elif what == 4:
        b.frame = b.frame[:max(0, len(b.frame) - c.int(1, 8))]
    elif what == 5:
        b.frame = zstandard.ZstdCompressor(write_content_size=False).compress(b.content)
    elif what == 6:
        b.frame = raw_frame(b.content, declared=max(0, len(b.content) + pick(c, [-1, 1])))
    elif what == 7:
        f = raw_frame(b.content, checksum=True)
        b.frame = f[:-1] + bytes([f[-1] ^ 1])
    elif what == 8:
        b.frame = skippable
    else:
        b.frame = raw_frame(b.content, 23)
    return f"{b.kind.decode()}{b.plane}[{b.first}] frame: {name}"


def d_content_flip(c: Choices, chunks: list, body: Body) -> str:
    """A byte of a block's content changed (frame rebuilt): deep errors in the streams."""
    b = _a_block(c, body)
    if b is None or not b.content:
        return "no content"
    at = c.int(0, len(b.content) - 1)
    value = pick(c, [0x08, 0xF0, 0x00, 0xF8, 0x80, 0xFF, c.int(0, 255)])
    b.content = b.content[:at] + bytes([value]) + b.content[at + 1:]
    b.frame = raw_frame(b.content)
    return f"{b.kind.decode()}{b.plane}[{b.first}] content byte {at} -> {value:#x}"


def d_chunk_order(c: Choices, chunks: list, body: Body) -> str:
    everything = len(chunks) + len(body)
    what = c.int(0, 4)
    if what == 0 and len(body) > 1:  # swap two blocks
        i, j = c.int(0, len(body) - 1), c.int(0, len(body) - 1)
        body[i], body[j] = body[j], body[i]
        return f"swap blocks {i} {j}"
    if what == 1 and body:  # duplicate a block
        i = c.int(0, len(body) - 1)
        body.insert(c.int(0, len(body)), body[i])
        return f"duplicate block {i}"
    if what == 2 and body:  # drop a block
        return f"drop block {body.pop(c.int(0, len(body) - 1))[0]!r}"
    if what == 3 and len(chunks) > 1:  # a PLAN (or HEAD) moved or duplicated among the blocks
        i = c.int(0, len(chunks) - 1)
        entry = chunks[i] if c.chance(0.5) else chunks.pop(i)
        body.insert(c.int(0, len(body)), entry)
        return f"header chunk {entry[0]!r} into the blocks"
    body.insert(c.int(0, len(body)), (pick(c, [b"XTRA", b"IEND", b"HEAD"]), c.raw(c.int(0, 8))))
    return f"extra critical chunk among {everything}"


def in_field(record: struct.Struct, i: int, value: Any) -> Any:
    """`value` kept within field i of `record` (an earlier defect may have set the field to
    its largest value, and old + 1 would not pack)."""
    code = record.format.lstrip("<>!=@")[i]
    if code in "BHIQ":
        return max(0, min(value, (1 << 8 * struct.calcsize(code)) - 1))
    return value


def d_head_field(c: Choices, chunks: list, body: Body) -> str:
    if not chunks or chunks[0][0] != b"HEAD":  # another defect moved it among the blocks
        return "no HEAD"
    fields = list(fmt.HEAD_RECORD.unpack(chunks[0][1]))
    i = c.int(0, 8)
    old = fields[i]
    limits = {0: [0, 1, 2, 3, 4, 5, 6, 7, 8], 1: [0, fmt.MAX_DIMENSION, fmt.MAX_DIMENSION + 1, old + 1],
              2: [0, fmt.MAX_DIMENSION, fmt.MAX_DIMENSION + 1, old + 1],
              3: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 4: [0, 1, 2, 3, 4, 5, 6, 255],
              5: [0, 1, 2], 6: [0, 1, 2], 7: [0, old + 1, 5, 255],
              8: [0.0, -1.0, float("nan"), float("inf"), 1e300, 5e-324, 3e36, 1e30,
                  float(np.finfo(np.float32).max) / 255, 2.0 ** 64, 1e-37]}
    fields[i] = in_field(fmt.HEAD_RECORD, i, pick(c, limits[i]))
    chunks[0] = (b"HEAD", fmt.HEAD_RECORD.pack(*fields))
    return f"HEAD field {i} {old} -> {fields[i]}"


def d_plan_field(c: Choices, chunks: list, body: Body) -> str:
    plans = [i for i, (k, _) in enumerate(chunks) if k == b"PLAN"]
    if not plans:
        return "no PLAN"
    at = pick(c, plans)
    record = {r.size: r for r in (fmt.PLAN_RECORD, fmt.PLAN_RECORD_V2,
                                  fmt.PLAN_RECORD_V4, fmt.PLAN_RECORD_V6)}[len(chunks[at][1])]
    fields = list(record.unpack(chunks[at][1]))
    i = c.int(0, len(fields) - 1)
    old = fields[i]
    limits = {0: [old + 1, 7], 1: [0, 1, 2], 2: [0, 1, 3, 64, 2, 32], 3: [old + 1, 0],
              4: [old + 1, 0], 5: [0, old + 1, fmt.MAX_RANK + 1, 2**32 - 1],
              6: [0.0, -1.0, float("nan"), float("inf"), 1e30, 1e20, 1e-20, 5e-324],
              7: [0, 63, 64, 255, old + 1],
              # version 4's filter: none in one byte of three, or any strength
              8: [0, 1, 255, old + 1], 9: [0, 1, 255, old + 1], 10: [0, 1, 255, old + 1],
              # version 6's adaptive quantization (K, G bits): on, past its limit, or G alone
              11: [1, fmt.MAX_AQ_COMPONENTS + 1, 255], 12: [0x3C00, 0x7C00, 1]}
    fields[i] = in_field(record, i, pick(c, limits[i]))
    chunks[at] = (b"PLAN", record.pack(*fields))
    return f"PLAN field {i} {old} -> {fields[i]}"


def d_sigma(c: Choices, chunks: list, body: Body) -> str:
    b = _a_block(c, body, kinds=(b"SBLK",))
    if b is None:
        return "no S block"
    s = np.frombuffer(b.content, np.float32).copy()
    i = c.int(0, s.size - 1)
    s[i] = pick(c, [0.0, -1.0, np.nan, np.inf, 1e-45, 1e-38, 3.4e38])
    b.content = s.tobytes()
    b.frame = raw_frame(b.content)
    return f"sigma {i} -> {s[i]}"


def d_residual(c: Choices, chunks: list, body: Body) -> str:
    """A residual block's field at or past its limit, or its frame or content changed."""
    found = [b for _, b in body if isinstance(b, ResidualSpec)]
    if not found:
        return "no residual block"
    b = pick(c, found)
    i = c.int(0, 9)
    if i == 8:
        b.frame = raw_frame(b.content, declared=len(b.content) + pick(c, [-1, 1, 1 << 40]))
        return "RBLK frame size"
    if i == 9 and b.content:
        at = c.int(0, len(b.content) - 1)
        b.content = b.content[:at] + bytes([pick(c, [0x7F, 0x80, 0xFF])]) + b.content[at + 1:]
        b.frame = raw_frame(b.content)
        return f"RBLK content byte {at}"
    old = b.fields[i]
    limits = {0: [old + 1, 4, 255], 1: [old, 4, 254, b.fields[0]], 2: [old + 1, 2**32 - 1],
              3: [0, old + 1, 2**32 - 1], 4: [0.0, -1.0, 0.5, float("nan"), float("inf"),
                                              1e300, 131072.0],
              5: [-1.0, float("nan"), float("inf")], 6: [0, 4, 5], 7: [4, 255]}
    b.fields[i] = in_field(fmt.RESIDUAL_RECORD, i, pick(c, limits[i]))
    return f"RBLK field {i} {old} -> {b.fields[i]}"


def d_record(c: Choices, chunks: list, body: Body) -> str:
    """A version 5 record's count in a longer LEB128 form than its shortest, or its coding
    byte's reserved bit set (spec §4.2)."""
    found = [b for _, b in body if isinstance(b, BlockSpec) and b.compact]
    if not found:
        return "no record"
    b = pick(c, found)
    if c.chance(0.5):
        b.reserved = 0x80
        return f"{b.kind.decode()}{b.plane}[{b.first}] reserved bit"
    b.count_bytes = bytes([b.count & 0x7F | 0x80]) + bytes([b.count >> 7 & 0x7F | 0x80]) + b"\0"
    return f"{b.kind.decode()}{b.plane}[{b.first}] count in 3 LEB128 bytes"


DEFECTS: dict[str, Callable[[Choices, list, Body], str]] = {
    "record": d_record,
    "residual": d_residual,
    "descriptor": d_descriptor_field,
    "sparse_limits": d_sparse_limits,
    "frame": d_frame,
    "content": d_content_flip,
    "chunks": d_chunk_order,
    "head": d_head_field,
    "plan": d_plan_field,
    "sigma": d_sigma,
}
