"""The residual blocks of a parsed file (RBLK chunks, spec §4.1) as a table of where each lies
in the file's bytes: a block's record is read again from its chunk when the block is asked for,
so a file of many small residual blocks costs the reader 26 bytes a block (its payload's place,
channel, reference and rows, and its row in its channel's list), not a Python object each.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from .blocks import ResidualBlock
from .records import (
    ELEMENT_TYPES,
    RESIDUAL_RECORD,
    WRAPPED_ELEMENT,
    WRAPPED_VERSION,
    Header,
)

#: The table's columns: name and array typecode (the typecodes' sizes are checked on import).
_COLUMNS = (("start", "q"), ("length", "I"), ("channel", "B"), ("reference", "B"),
            ("first", "I"), ("rows", "I"))
assert array("I").itemsize == 4 and array("q").itemsize == 8
#: An RBLK payload's record (spec §4.1, `RESIDUAL_RECORD`) as numpy reads it, for `records`.
RECORD = np.dtype([("channel", "u1"), ("reference", "u1"), ("first", ">u4"), ("rows", ">u4"),
                   ("step", ">f8"), ("bound", ">f8"), ("element", "u1"), ("predictor", "u1")])
assert RECORD.itemsize == RESIDUAL_RECORD.size
#: Blocks whose records `records` gathers at once (its index array: 8 bytes a record byte).
_GATHERED = 1 << 12


#: A chunk's bytes around its payload: length, type and CRC.
CHUNK_FRAMING = 12


def wrapped_element(code: int, header: Header) -> bool:
    """Whether an RBLK's element type `code` is wrapped int16 (version 7, spec §4.1)."""
    return code == WRAPPED_ELEMENT and header.version >= WRAPPED_VERSION


def element_dtype(code: int, header: Header) -> np.dtype:
    """The elements of an RBLK of element type `code` (a wrapped block's are int16)."""
    return ELEMENT_TYPES[2 if wrapped_element(code, header) else code]


def residual_block(payload: memoryview, header: Header) -> ResidualBlock:
    """The block of an RBLK chunk's payload whose fields the reader checked
    (`reader._parse_residual`)."""
    (channel, reference, first, rows, step, bound, code,
     predictor) = RESIDUAL_RECORD.unpack_from(payload)
    return ResidualBlock(channel, reference, first, rows, header.width, step, bound,
                         element_dtype(code, header), predictor, len(payload) + CHUNK_FRAMING,
                         payload[RESIDUAL_RECORD.size:], wrapped=wrapped_element(code, header))


class ResidualTable(Sequence[ResidualBlock]):
    """The file's residual blocks in file order (`unpack` appends each it has checked), each
    made again from its chunk by `residual_block` when it is asked for; the columns the
    residual phase plans with (`channels`, `references`, `firsts`, `ends`) as arrays. A
    table made by `channel` or `subset` is a selection of another's blocks: it shares their
    columns and holds only which of them it has (`rows`)."""

    def __init__(self, data: memoryview, header: Header,
                 columns: dict[str, array] | None = None, rows: np.ndarray | None = None
                 ) -> None:
        self.data, self.header = data, header
        self._columns = columns if columns is not None else \
            {name: array(code) for name, code in _COLUMNS}
        self._rows = rows  # the columns' rows this table has, in order (None: all)
        #: each channel's rows of the columns, in file order (row order, spec §4.1), kept as
        #: `append` adds blocks (a selection finds its own, `positions_of`)
        self.of_channel: dict[int, array] = {}

    def append(self, start: int, block: ResidualBlock) -> None:
        """A checked block whose payload starts at byte `start` of `data`."""
        assert block.frame is not None and self._rows is None, "a parsed block, a whole table"
        self.of_channel.setdefault(block.channel, array("I")).append(len(self))
        values = (start, block.stored - CHUNK_FRAMING, block.channel, block.reference, block.first,
                  block.rows)
        for (name, _), value in zip(_COLUMNS, values):
            self._columns[name].append(value)

    def __len__(self) -> int:
        return len(self._columns["start"]) if self._rows is None else len(self._rows)

    def _row(self, index: int) -> int:
        """The columns' row of the table's block `index` (negative: from the end)."""
        count = len(self)
        if not -count <= index < count:
            raise IndexError("residual block index out of range")
        index %= count
        return index if self._rows is None else int(self._rows[index])

    @overload
    def __getitem__(self, index: int) -> ResidualBlock: ...
    @overload
    def __getitem__(self, index: slice) -> list[ResidualBlock]: ...

    def __getitem__(self, index: int | slice) -> ResidualBlock | list[ResidualBlock]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self._row(index)
        start = self._columns["start"][row]
        return residual_block(self.data[start:start + self._columns["length"][row]],
                              self.header)

    def __iter__(self) -> Iterator[ResidualBlock]:
        return (self[i] for i in range(len(self)))

    def column(self, name: str) -> np.ndarray:
        """One column of the table's blocks, of its own type (uint8 channels and references,
        uint32 rows), a copy: the columns stay growable."""
        source = self._columns[name]
        dtype = np.dtype(source.typecode)
        values = np.frombuffer(source, dtype=dtype) if len(source) else np.zeros(0, dtype)
        return values.copy() if self._rows is None else values[self._rows]

    def channels(self) -> np.ndarray:
        return self.column("channel")

    def references(self) -> np.ndarray:
        return self.column("reference")

    def firsts(self) -> np.ndarray:
        return self.column("first")

    def ends(self) -> np.ndarray:
        """Each block's first row after its own (uint32: unpack checked first + rows <=
        the height)."""
        ends = self.column("first")
        ends += self.column("rows")
        return ends

    def first_and_rows(self, index: int) -> tuple[int, int]:
        """The first row and the row count of the table's block `index`."""
        row = self._row(index)
        return self._columns["first"][row], self._columns["rows"][row]

    def positions_of(self, channel: int) -> np.ndarray:
        """Where the channel's blocks are in this table (file order; of a whole table, a view
        of `of_channel`'s uint32, which cannot grow while it lives: asked for after the
        parse)."""
        if self._rows is not None:
            return np.flatnonzero(self.channels() == channel)
        rows = self.of_channel.get(channel)
        return np.zeros(0, np.uint32) if rows is None else np.frombuffer(rows, np.uint32)

    def subset(self, positions: np.ndarray) -> ResidualTable:
        """The table of this one's blocks at `positions` (integers, in that order), sharing
        its columns."""
        positions = np.asarray(positions)
        assert positions.dtype.kind in "iu", "positions are integers"
        rows = positions if self._rows is None else self._rows[positions]
        return ResidualTable(self.data, self.header, self._columns, rows)

    def channel(self, channel: int) -> ResidualTable:
        """The channel's blocks, in file (row) order."""
        return self.subset(self.positions_of(channel))

    def stored(self) -> np.ndarray:
        """Each block's bytes in the file (int64): its chunk's, the payload and CHUNK_FRAMING
        (`ResidualBlock.stored`)."""
        return self.column("length").astype(np.int64) + CHUNK_FRAMING

    def records(self) -> np.ndarray:
        """Every block's record (`RECORD`'s fields: channel, reference, first, rows, step,
        bound, element, predictor), read from the chunks as one array: what a summary of
        many blocks reads without a block object each (svdi-info). 28 bytes a block."""
        starts = self.column("start")
        data = np.frombuffer(self.data, np.uint8)
        out = np.empty(len(starts), RECORD)
        raw = out.view(np.uint8).reshape(len(starts), RECORD.itemsize)
        within = np.arange(RECORD.itemsize)
        for i in range(0, len(starts), _GATHERED):
            raw[i:i + _GATHERED] = data[starts[i:i + _GATHERED, None] + within]
        return out
