"""Factor blocks as the reader leaves them: compressed frames whose sizes are checked, opened
with bounded zstd only when the decoder needs them (spec §4)."""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import zstandard

from ..errors import SvdiError
from .records import Header, Plane, Restoration

if TYPE_CHECKING:
    from .residual_table import ResidualTable

#: Largest zstd window a block's frame may declare (spec §4): zstd levels 1-19 never use more,
#: and a decompression context costs about this much plus 128 KiB, whatever the content size.
MAX_WINDOW = 1 << 23
ZSTD_MAGIC = 0xFD2FB528
#: Largest zstd block content (RFC 8878 Block_Maximum_Size).
ZSTD_BLOCK = 1 << 17
MAGIC_BYTES = ZSTD_MAGIC.to_bytes(4, "little")
#: How a block's bytes hold its content: a zstd frame (versions 1-4, and every MEAN and RBLK
#: chunk), a zstd frame without its 4-byte magic number, or the content itself, stored (both
#: version 5's factor blocks, spec §4.2).
ZSTD, MAGICLESS, STORED_RAW = "zstd", "magicless", "stored"
#: Most bytes of a zstd frame header (RFC 8878 §3.1.1: magic 4, descriptor 1, window 1,
#: dictionary ID 4, content size 8).
_FRAME_HEADER_MAX = 18


def frame_parameters(frame: memoryview | bytes, what: str, form: str = ZSTD
                     ) -> tuple[int, zstandard.FrameParameters]:
    """(header bytes, parameters) of the zstd frame at the start of `frame`; a magicless frame
    (version 5) is read as the frame with its magic number, and its header is 4 bytes
    shorter."""
    head = MAGIC_BYTES + bytes(frame[:_FRAME_HEADER_MAX]) if form == MAGICLESS \
        else frame[:_FRAME_HEADER_MAX]
    try:
        header = zstandard.frame_header_size(head)
        params = zstandard.get_frame_parameters(head)
    except zstandard.ZstdError as exc:
        raise SvdiError(f"{what}: bad zstd frame ({exc})") from None
    if int.from_bytes(head[:4], "little") != ZSTD_MAGIC:
        raise SvdiError(f"{what}: not a zstd frame")
    return header - 4 * (form == MAGICLESS), params


def frame_length(frame: memoryview | bytes, what: str, form: str = ZSTD,
                 parsed: tuple[int, zstandard.FrameParameters] | None = None) -> int:
    """Bytes of the zstd frame at the start of `frame`, from its header and block headers
    (RFC 8878 §3.1.1), without decompressing: so that every reader can refuse what follows a
    frame (a skippable frame, a second frame, any byte) before reading it. One step per zstd
    block; a block header is three bytes. `parsed`: the frame's `frame_parameters`, if the
    caller has them."""
    header, params = frame_parameters(frame, what, form) if parsed is None else parsed
    if params.dict_id:
        raise SvdiError(f"{what}: zstd frame needs dictionary {params.dict_id}")
    largest = min(params.window_size, ZSTD_BLOCK)
    pos, size = header, len(frame)
    while True:
        if size - pos < 3:
            raise SvdiError(f"{what}: zstd frame ends inside a block header")
        # each block header read alone: a copy of the frame to index it took longer
        word = int.from_bytes(frame[pos:pos + 3], "little")
        kind, length = (word >> 1) & 3, word >> 3
        if kind == 3 or length > largest:
            raise SvdiError(f"{what}: invalid zstd block")
        pos += 3 + (1 if kind == 1 else length)
        if word & 1:
            break
    return pos + 4 * params.has_checksum


def check_frame(frame: memoryview | bytes, nbytes: int, what: str, form: str = ZSTD) -> None:
    """The decompression policy of spec §4, checked before any byte is decompressed: the chunk
    holds exactly one zstd frame (no skippable frame, second frame or trailing byte), with the
    content size `nbytes` the descriptor implies and a window of at most MAX_WINDOW. A stored
    block (version 5) holds exactly `nbytes`."""
    if form == STORED_RAW:
        if len(frame) != nbytes:
            raise SvdiError(f"{what}: {len(frame)} stored bytes, header implies {nbytes}")
        return
    parsed = frame_parameters(frame, what, form)
    params = parsed[1]
    declared, window = params.content_size, params.window_size
    if declared == zstandard.CONTENTSIZE_UNKNOWN:
        declared = -1
    if declared != nbytes:
        raise SvdiError(f"{what}: zstd frame declares {declared} bytes, header implies {nbytes}")
    if window > MAX_WINDOW:
        raise SvdiError(f"{what}: zstd window of {window} bytes exceeds {MAX_WINDOW}")
    if frame_length(frame, what, form, parsed) != len(frame):
        raise SvdiError(f"{what}: zstd frame is incomplete or followed by extra data")


_local = threading.local()


def new_decompressor(form: str = ZSTD) -> zstandard.ZstdDecompressor:
    """The one zstd decompressor configuration of every path (its own window check too), for
    frames with or without their magic number."""
    return zstandard.ZstdDecompressor(
        max_window_size=MAX_WINDOW,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS if form == MAGICLESS else zstandard.FORMAT_ZSTD1)


def decompressor(form: str = ZSTD) -> zstandard.ZstdDecompressor:
    """`new_decompressor(form)`, one per thread and form (a decompressor is not thread-safe;
    making one costs tens of microseconds, as much as a small block's decompression)."""
    try:  # the usual case first: this thread has one
        return _local.decompressors[form]
    except (AttributeError, KeyError):
        pass
    cache = getattr(_local, "decompressors", None)
    if cache is None:
        cache = _local.decompressors = {}
    d = cache[form] = new_decompressor(form)
    return d


def decompressors() -> dict[str, zstandard.ZstdDecompressor | None]:
    """This thread's `decompressor` of each form of a factor block, and None for a stored
    block: what the compiled whole-factor fill (`_kernels.whole_factor`) opens blocks with."""
    try:
        return _local.by_form  # type: ignore[no-any-return]
    except AttributeError:
        pass
    forms = _local.by_form = {ZSTD: decompressor(ZSTD), MAGICLESS: decompressor(MAGICLESS),
                              STORED_RAW: None}
    return forms


def decompress(frame: memoryview | bytes, nbytes: int, what: str, checked: bool = False,
               form: str = ZSTD) -> bytes:
    """Decompress one zstd frame to exactly `nbytes`, never allocating what the frame claims:
    the frame is checked first (`check_frame`, unless `checked`: the reader did; the caller has
    checked that `nbytes` fits its budget). One-shot: zstd writes straight into the result,
    with no window buffer and no copy. A stored block's bytes are its content."""
    if not checked:
        check_frame(frame, nbytes, what, form)
    raw = one_shot(frame, nbytes, form)
    if isinstance(raw, str):
        raise SvdiError(f"{what}: {raw}")
    return raw


def one_shot(frame: memoryview | bytes, nbytes: int, form: str) -> bytes | str:
    """`decompress` of a checked frame: its content, or what is wrong with it (a str), so
    that a caller whose description of the frame takes work makes it only for an error."""
    if form == STORED_RAW:
        return bytes(frame)
    try:  # `decompressor(form)`'s usual case inline: this thread has one
        zstd = _local.decompressors[form]
    except (AttributeError, KeyError):
        zstd = decompressor(form)
    try:
        raw = zstd.decompress(frame, max_output_size=max(nbytes, 1))
    except (zstandard.ZstdError, MemoryError) as exc:
        return f"corrupt zstd data ({exc})"
    if len(raw) != nbytes:
        return "zstd frame is incomplete or followed by extra data"
    return raw


class FrameReader:
    """One zstd frame read front to back in pieces of a size the caller bounds: one
    decompression context (at most MAX_WINDOW + 128 KiB of zstd's buffers, plus its
    workspace). `finish` reads to the frame's end, so that its checksum is verified exactly as
    `decompress` verifies it."""

    def __init__(self, frame: memoryview | bytes, what: str, form: str = ZSTD) -> None:
        self.what = what
        # Its own decompressor: a stream reader keeps its decompressor's context, and a block's
        # three streams are read through three contexts at once. A stored block (version 5)
        # is read as it is. The decompressor comes from this thread's spares where one is
        # left by a reader that finished its frame: a file of many small residual blocks
        # makes one a block otherwise, which costs more than reading the block.
        self.form, self.decompressor = form, None
        if form == STORED_RAW:
            self.reader: Any = io.BytesIO(frame)
        else:
            spares = _spare_decompressors(form)
            self.decompressor = spares.pop() if spares else new_decompressor(form)
            self.reader = self.decompressor.stream_reader(frame, read_across_frames=False)

    def read(self, n: int) -> bytes:
        """Exactly n bytes, or fewer only at the frame's end."""
        try:
            raw = self.reader.read(n)
            while 0 < len(raw) < n and (more := self.reader.read(n - len(raw))):
                raw += more
        except (zstandard.ZstdError, MemoryError) as exc:
            raise SvdiError(f"{self.what}: corrupt zstd data ({exc})") from None
        return raw

    def exactly(self, n: int) -> bytes:
        raw = self.read(n)
        if len(raw) != n:
            raise SvdiError(f"{self.what}: zstd frame ends early")
        return raw

    def skip(self, n: int, piece: int = 1 << 16) -> None:
        while n > 0:
            n -= len(self.exactly(min(n, piece)))

    def finish(self) -> None:
        if self.read(1):
            raise SvdiError(f"{self.what}: zstd frame holds more than its descriptor declares")
        self.reader.close()
        if self.decompressor is not None:  # its frame read whole and checked: reusable
            spares = _spare_decompressors(self.form)
            if len(spares) < SPARE_DECOMPRESSORS:
                spares.append(self.decompressor)
            self.decompressor = None


#: Most decompressors a thread keeps of each form for the next `FrameReader`.
SPARE_DECOMPRESSORS = 8


def _spare_decompressors(form: str) -> list[zstandard.ZstdDecompressor]:
    """This thread's decompressors of `form` that no reader holds."""
    try:
        spares = _local.spare_decompressors
    except AttributeError:
        spares = _local.spare_decompressors = {}
    return spares.setdefault(form, [])


@dataclass(slots=True)
class Block:
    """One factor block: components [first, first+count) of U, S or V of one plane.

    Dense coding: `arrays` is (residuals,) shaped (count, *grid) for U, (count, *vgrid) for V and
    (count,) float32 for S. Sparse coding: `arrays` is (symbols, run escapes, value escapes) of
    the run/level symbols described in codec/coding.py.

    `unpack` leaves U and V blocks compressed (`arrays` None, `frame` set, sizes checked): a
    decoder calls `data()` or `grid_pieces()` when it needs them, so that all the blocks of a
    file never sit decompressed in memory at once. Slotted: a file may hold 300,000 blocks of
    one component (a few bytes each in the file), where a dictionary of attributes per block
    took 460 bytes of the 1.2 KB a block cost.
    """

    factor: str  # "U", "S" or "V"
    plane: int
    first: int
    count: int
    coding: int  # DENSE or SPARSE
    arrays: tuple[np.ndarray, ...] | None = field(repr=False)
    predictor: int = 0
    stored: int = 0  # bytes of the chunk in the file, filled in when parsed
    frame: memoryview | bytes | None = field(default=None, repr=False, compare=False)
    #: (dtype, shape) of each array the frame holds, in order (set with `frame`).
    parts: tuple[tuple[np.dtype, tuple[int, ...]], ...] = field(default=(), repr=False,
                                                                compare=False)
    #: How `frame` holds the arrays: ZSTD, MAGICLESS or STORED_RAW (version 5, spec §4.2).
    form: str = field(default=ZSTD, compare=False)
    #: Bytes of `parts` in all, if known (the reader's descriptor counted them), else -1.
    nbytes: int = field(default=-1, repr=False, compare=False)

    @classmethod
    def of_fields(cls, values: tuple[Any, ...]) -> Block:
        """The block of every field in declaration order (a row of the compiled record
        parser), without the generated __init__'s defaults."""
        block = object.__new__(cls)
        for name, value in zip(_BLOCK_FIELDS, values, strict=True):
            object.__setattr__(block, name, value)
        return block

    @property
    def what(self) -> str:
        return f"plane {self.plane} {self.factor} block at component {self.first}"

    @property
    def raw_bytes(self) -> int:
        """Bytes of the block's arrays, decompressed (`data`)."""
        if self.arrays is None and self.nbytes >= 0:  # read a dozen times per block and decode
            return self.nbytes
        total = 0  # loops, not generators
        if self.arrays is not None:
            for a in self.arrays:
                total += a.nbytes
            return total
        for dtype, shape in self.parts:
            total += dtype.itemsize * math.prod(shape)
        return total

    def data(self) -> tuple[np.ndarray, ...]:
        """The arrays, decompressed now if the block was read lazily (not cached: the caller
        keeps them only as long as it needs them)."""
        if self.arrays is not None:
            return self.arrays
        assert self.frame is not None, "a block has arrays or a frame"
        # `frame` is set by the reader only, after check_frame.
        raw = one_shot(self.frame, self.nbytes if self.nbytes >= 0 else self.raw_bytes,
                       self.form)
        if isinstance(raw, str):
            raise SvdiError(f"{self.what}: {raw}")
        if len(self.parts) == 1:  # a dense block: one array, all bytes
            (dtype, shape), = self.parts
            return (np.frombuffer(raw, dtype).reshape(shape),)
        out, at = [], 0
        for dtype, shape in self.parts:
            count = math.prod(shape)
            out.append(np.frombuffer(raw, dtype, count, at).reshape(shape))
            at += count * dtype.itemsize
        return tuple(out)

    def grid_pieces(self, grid: tuple[int, int], rows: int, whole_up_to: int = 0
                    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """A dense U or V block of components shaped `grid`, in file order, in pieces of at
        most `rows` grid rows: (first component, first row, residuals (components, rows, grid
        width)). A component of more than `rows` rows comes `rows` rows at a time; smaller
        ones come whole, as many at a time as fit `rows` rows in all (a plain layout's
        components are single columns: one at a time cost a Python step per column). A
        compressed block is read with zstd's streaming decoder, so a large int32 block never
        exists whole; its errors raise SvdiError. A block of at most `whole_up_to` bytes is
        decompressed whole instead (one call, no stream context to set up: the usual small
        block)."""
        gh, gw = grid
        together = max(1, rows // gh) if gh <= rows else 1  # components a piece
        pieces = ((k, a, min(together, self.count - k), min(rows, gh - a))
                  for k in range(0, self.count, together) for a in range(0, gh, rows))
        if self.arrays is not None or self.raw_bytes <= whole_up_to or self.form == STORED_RAW:
            data = self.data()[0].reshape(self.count, gh, gw)
            for k, a, n, r in pieces:
                yield k, a, data[k:k + n, a:a + r]
            return
        assert self.frame is not None, "a block has arrays or a frame"
        dtype = self.parts[0][0]
        reader = FrameReader(self.frame, self.what, self.form)
        for k, a, n, r in pieces:
            raw = reader.exactly(n * r * gw * dtype.itemsize)
            yield k, a, np.frombuffer(raw, dtype).reshape(n, r, gw)
        reader.finish()


_BLOCK_FIELDS = tuple(f.name for f in fields(Block))


@dataclass(slots=True)
class ResidualBlock:
    """One RBLK chunk (spec §4.1, version 2): the residual integers of rows [first, first +
    rows) of one channel, a grid of rows x width elements after a predictor, in one zstd frame
    whose size the reader checked (`frame`), or given as an array (`array`, when writing).

    q = unpredicted grid (+ the reference channel's q); the sample becomes x + q * step (spec
    §5.3). `bound` is the encoder's promise, informative. A `wrapped` block (version 7, int16
    elements of 16-bit samples) takes q and the sample modulo 2^16."""

    channel: int
    reference: int  # NO_REFERENCE or a channel whose q is added
    first: int
    rows: int
    width: int
    step: float
    bound: float
    element: np.dtype
    predictor: int
    stored: int = 0  # bytes of the chunk in the file, filled in when parsed
    frame: memoryview | None = field(default=None, repr=False, compare=False)
    array: np.ndarray | None = field(default=None, repr=False, compare=False)
    wrapped: bool = False

    @property
    def what(self) -> str:
        return f"channel {self.channel} residual block at row {self.first}"

    @property
    def raw_bytes(self) -> int:
        return self.rows * self.width * self.element.itemsize

    def grid(self) -> np.ndarray:
        """The whole grid (rows, width) of predictor residuals, decompressed now (for the
        reference decoder and small files)."""
        if self.array is not None:
            return self.array.reshape(self.rows, self.width)
        assert self.frame is not None, "a residual block has an array or a frame"
        raw = decompress(self.frame, self.raw_bytes, self.what, checked=True)
        return np.frombuffer(raw, self.element).reshape(self.rows, self.width)

    def reader(self) -> FrameReader:
        """A stream over the frame, for reading the grid a few rows at a time."""
        assert self.frame is not None, "only a parsed block is streamed"
        return FrameReader(self.frame, self.what)


@dataclass
class MeanBlock:
    """A MEAN chunk (version 2, spec §3.1): the column means of one plain plane's matrix, as
    the reader leaves them: a zstd frame of `columns` binary32 values, its size checked."""

    plane: int
    columns: int
    frame: memoryview

    @property
    def what(self) -> str:
        return f"plane {self.plane} column means"

    def values(self) -> np.ndarray:
        """The means, float32 (columns,); SvdiError if one is not finite."""
        raw = decompress(self.frame, 4 * self.columns, self.what, checked=True)
        mean = np.frombuffer(raw, "<f4").astype(np.float32)
        if not np.all(np.isfinite(mean)):
            raise SvdiError(f"{self.what}: a mean is not finite")
        return mean


#: What a message about a truncated file says the reader can do about it.
TRUNCATED_HINT = ("svdcodec.decode(data, truncated='fill'), Pillow with "
                  "PIL.ImageFile.LOAD_TRUNCATED_IMAGES = True or svdi-decode --truncated fill "
                  "decode what arrived")


@dataclass(frozen=True)
class Truncation:
    """Where a file that ends early ends (`unpack(..., truncated=True)`), and what of it is
    whole: its complete chunks are read and checked as in a whole file, the chunk it ends in
    is dropped (its CRC cannot be checked)."""

    size: int  # the bytes the file has
    start: int  # the byte where the chunk it ends in (or that chunk's header) starts
    chunk: str | None  # that chunk's type, None if its 8-byte header did not arrive
    length: int | None  # that chunk's payload bytes, as its header says
    #: per plane, the components whose U, S and V blocks all arrived (the plane's rank if whole)
    components: tuple[int, ...] = ()
    #: per channel, the rows [0, n) whose residual blocks arrived (version 2; 0 for a channel
    #: of none, which may have none in the whole file either)
    residual_rows: tuple[int, ...] = ()

    def where(self) -> str:
        """The file's end, in words: the byte and the chunk it falls in."""
        if self.chunk is None:
            return (f"the file ends at byte {self.size}, inside the header of the chunk at "
                    f"byte {self.start}" if self.size > self.start else
                    f"the file ends at byte {self.size}, where a chunk header was expected")
        return (f"the file ends at byte {self.size}, inside the {self.chunk} chunk at byte "
                f"{self.start} ({self.length} bytes of payload, "
                f"{self.size - self.start} of its {12 + (self.length or 0)} bytes present)")

    def arrived(self, planes: list[Plane], residuals: bool) -> str:
        """What a decode of the file gives (`decode`'s truncated="fill"), in words.
        residuals: whether any residual block arrived."""
        k = self.components_in(planes)
        if k == 0:
            return "zeros (some plane's component 0 has not arrived)"
        if k is not None:
            return (f"the first {k} component{'s' if k > 1 else ''} of every plane "
                    "(a preview)")
        if residuals:
            rows = ", ".join(f"0..{n} of channel {c}"
                             for c, n in enumerate(self.residual_rows) if n)
            return (f"every factor block, and the residual blocks that arrived (rows {rows}; "
                    "the other rows uncorrected)")
        return "every factor block (any residual blocks after them are missing)"

    def components_in(self, planes: list[Plane]) -> int | None:
        """The most components every plane has whole (None: every plane whole): a preview
        of that many components is what the file's factor blocks give (spec §4: blocks come
        most important first, so a prefix of the file holds the first components)."""
        short = [k for k, p in zip(self.components, planes) if k < p.rank]
        return min(short) if short else None


@dataclass
class Container:
    """A file as the reader parsed it (`format.reader.unpack`): the header, the plane records,
    the factor blocks, the metadata and the ancillary chunks' records. (A docstring of its
    own: a dataclass without one has it made from its signature on import.)"""

    header: Header
    planes: list[Plane]
    blocks: list[Block]
    metadata: Any = None  # metadata.Metadata of the file's metadata chunks (set by unpack)
    #: RBLK chunks, file order (`unpack`: a ResidualTable; empty: a list)
    residuals: ResidualTable | list[ResidualBlock] = field(default_factory=list)
    means: dict[int, MeanBlock] = field(default_factory=dict)  # MEAN chunks by plane
    #: version 6: the RSTR chunk's restoration filters by plane (spec §5.6)
    restoration: dict[int, Restoration] = field(default_factory=dict)
    #: where a file that ends early ends (unpack(..., truncated=True)); None for a whole file
    truncation: Truncation | None = None
    #: (plane, factor) -> its blocks in file order, made by the first `factor_blocks` call
    _by_factor: dict[tuple[int, str], list[Block]] | None = field(
        default=None, init=False, repr=False, compare=False)
    #: channel -> its residual blocks in file order, each made by its first `residual_blocks`
    _by_channel: dict[int, Sequence[ResidualBlock]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def residual_blocks(self, channel: int) -> Sequence[ResidualBlock]:
        """The channel's residual blocks, in file order (row order; a `ResidualTable` where
        `unpack` made the container): kept, since the residual phase asks for each channel's
        in every group."""
        if channel not in self._by_channel:
            residuals = self.residuals
            self._by_channel[channel] = [b for b in residuals if b.channel == channel] \
                if isinstance(residuals, list) else residuals.channel(channel)
        return self._by_channel[channel]

    def factor_blocks(self, plane: int, factor: str) -> list[Block]:
        """The plane's blocks of one factor ("U", "S" or "V"), in file order: indexed once,
        since a decode asks for each plane's several times. The index is built whole before
        it is kept, so threads that ask at once at worst build it twice."""
        index = self._by_factor
        if index is None:
            index = {}
            for b in self.blocks:
                index.setdefault((b.plane, b.factor), []).append(b)
            self._by_factor = index
        return index.get((plane, factor), [])

    def column_means(self, plane: int) -> np.ndarray | None:
        """The plane's column means, float32 (n,), or None if its columns are not centred."""
        block = self.means.get(plane)
        return None if block is None else block.values()

    def singular_values(self, plane: int) -> np.ndarray:
        """The plane's S blocks joined, float32 (unpack checked they cover 0..rank in order)."""
        parts = [b.data()[0] for b in self.factor_blocks(plane, "S")]
        if len(parts) == 1:  # the usual single block, not copied (callers only read it)
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


# ----------------------------------------------------------------------------- writing
