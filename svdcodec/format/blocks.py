"""Factor blocks as the reader leaves them: compressed frames whose sizes are checked, opened
with bounded zstd only when the decoder needs them (spec §4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

from ..errors import SvdiError
from .records import Header, Plane


def check_frame(frame: memoryview, nbytes: int, what: str) -> None:
    """Refuse a zstd frame whose declared content size is not the `nbytes` the header implies."""
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise SvdiError(f"{what}: bad zstd frame ({exc})") from None
    if declared != nbytes:
        raise SvdiError(f"{what}: zstd frame declares {declared} bytes, header implies {nbytes}")


def decompress(frame: memoryview, nbytes: int, what: str) -> bytes:
    """Decompress one zstd frame to exactly `nbytes`, never allocating what the frame claims."""
    check_frame(frame, nbytes, what)
    try:
        # Output buffer of exactly the checked size (the default is 128 KiB even for 10 bytes).
        dobj = zstandard.ZstdDecompressor().decompressobj(write_size=max(nbytes, 1))
        raw = dobj.decompress(frame)
    except (zstandard.ZstdError, MemoryError) as exc:
        raise SvdiError(f"{what}: corrupt zstd data ({exc})") from None
    if len(raw) != nbytes or not dobj.eof or dobj.unused_data:
        raise SvdiError(f"{what}: zstd frame is incomplete or followed by extra data")
    return raw


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
        raw = decompress(self.frame, sum(sizes), self.what)
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
    metadata: Any = None  # metadata.Metadata of the file's metadata chunks (set by unpack)

    def singular_values(self, plane: int) -> np.ndarray:
        """The plane's S blocks joined, float32 (unpack checked they cover 0..rank in order)."""
        parts = [b.data()[0] for b in self.blocks if b.plane == plane and b.factor == "S"]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


# ----------------------------------------------------------------------------- writing
