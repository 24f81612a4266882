"""Reading a plane's factors from its blocks: sparse run/level streams indexed and filled by
ranges of matrix rows, dense blocks unpredicted a few grid rows at a time, so that no factor is
ever held whole as int64."""

from __future__ import annotations

import math
import mmap
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from ..codec.coding import (
    END_OF_ROW,
    HORIZONTAL,
    PLANAR,
    RUN_ESCAPE,
    VALUE_ESCAPE,
    VERTICAL,
    decode_symbols,
)
from ..errors import SvdiError
from ..format import DENSE, Block, Container, FrameReader, Plane
from ..runtime import band_sizes, kernels
from ..runtime.pages import drop_pages, own_pages


def sparse_streams(block: Block, rows: int, compiled: ModuleType | None = None,
                   data: tuple[np.ndarray, ...] | None = None) -> tuple[Any, ...]:
    """(symbols, run escapes, value escapes, symbol index after each row end) of a sparse
    block (or of `data`, a piece of its rows), checked against the row count and the side
    streams' sizes; compiled: (symbols, run escapes, value escapes, the kernels' checkpoints
    every CHECKPOINT_ROWS rows and that number)."""
    symbols, xrun, xval = block.data() if data is None else data
    if compiled is not None:
        starts, xr, xv, error = compiled.index_sparse(symbols, rows, xrun.size, xval.size,
                                                      band_sizes.CHECKPOINT_ROWS)
        if error:
            raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")
        return symbols, xrun, xval, starts, xr, xv, band_sizes.CHECKPOINT_ROWS
    ends = np.flatnonzero(symbols == END_OF_ROW) + 1
    if ends.size != rows or (symbols.size and symbols[-1] != END_OF_ROW):
        raise SvdiError(f"sparse block: {ends.size} row ends for {rows} rows")
    if (np.count_nonzero(symbols >= RUN_ESCAPE << 4) != xrun.size
            or np.count_nonzero((symbols & 15) == VALUE_ESCAPE) != xval.size):
        raise SvdiError("sparse block: escape counts do not match the side streams")
    return symbols, xrun, xval, ends


class SparsePieces:
    """A held sparse block (compiled `sparse_streams`) whose streams' pages are handed back to
    the system piece by piece as the band renderer is done with their rows (`release`): the
    streams held then shrink as the image's rows are written, instead of staying whole to the
    last band.

    The streams are copied into a memory mapping of their own (`own_pages`) and read whole by
    the kernels with the block's own index, as before. Pieces of rows start at the index's
    checkpoints (whole rows: the symbols and escapes before each are known), about
    band_sizes.PIECE_BYTES of symbols each; once every band that reads a piece and the pieces
    before it are done, the pages below the next live piece are dropped (MADV_DONTNEED)."""

    def __init__(self, rows: int, streams: tuple[Any, ...], bands: list[tuple[int, int]]
                 ) -> None:
        symbols, xrun, xval, starts, xr, xv, every = streams
        self.pages, offsets, copies = own_pages(symbols, xrun, xval)
        self.streams = (*copies, starts, xr, xv, every)
        # the checkpoints inside the rows (k * every < rows), found by binary search: a large
        # plane's block has thousands, read by a hundred bands or more
        cuts = piece_cuts(starts[:max(1, min(len(starts), -(-rows // every)))])
        self.rows = [(k * every, cuts[j + 1] * every if j + 1 < len(cuts) else rows)
                     for j, k in enumerate(cuts)]
        # Where each piece's streams start in the mapping (symbols, run and value escapes).
        self.starts = [(offsets[0] + int(starts[k]), offsets[1] + 2 * int(xr[k]),
                        offsets[2] + xval.itemsize * int(xv[k])) for k in cuts]
        self.ends = (offsets[0] + symbols.nbytes, offsets[1] + xrun.nbytes,
                     offsets[2] + xval.nbytes)
        # Each stream's pages dropped so far: from its first whole page up to here.
        self.dropped = [-(-at // mmap.PAGESIZE) * mmap.PAGESIZE for at in offsets]
        # The pieces each band reads (a band's rows given as matrix rows), and the bands
        # still to read each piece: pieces j with q0 < r1 and r0 < q1, the pieces in order.
        firsts, lasts = [q0 for q0, _ in self.rows], [q1 for _, q1 in self.rows]
        self.uses = [range(bisect_right(lasts, r0), bisect_left(firsts, r1))
                     for r0, r1 in bands]
        self.left = [0] * len(self.rows)
        for used in self.uses:
            for j in used:
                self.left[j] += 1
        self.live = 0  # the first piece some band still reads
        self.lock = threading.Lock()

    def release(self, band: int) -> None:
        """Band `band` is done with its rows: the pages of the pieces before the first one a
        band still reads are dropped (their rows are never read again)."""
        with self.lock:
            for j in self.uses[band]:
                self.left[j] -= 1
            live = self.live
            while live < len(self.rows) and self.left[live] == 0:
                live += 1
            if live == self.live:
                return
            self.live = live
            # whole pages below the first live piece
            spans = pages_below(self.dropped, self.starts[live] if live < len(self.rows)
                                else self.ends)
        drop_pages(self.pages, spans)


def piece_cuts(starts: np.ndarray) -> list[int]:
    """The checkpoints (indices into `starts`, the symbol offsets of a sparse block's
    checkpoints inside its rows, which never decrease) where `SparsePieces` starts its
    pieces: the first, then each first checkpoint at least band_sizes.PIECE_BYTES of
    symbols past the one before."""
    cuts = [0]
    while cuts[-1] + 1 < len(starts):
        last = cuts[-1]
        after = starts[last + 1:]
        k = last + 1 + int(np.searchsorted(after, int(starts[last]) + band_sizes.PIECE_BYTES))
        if k >= len(starts):
            break
        cuts.append(k)
    return cuts


class DroppedRows:
    """A dense block's residuals ((count, m), one component a row: `PlaneReconstructor`'s
    `dense_rows`) whose pages are handed back to the system as the band renderer is done with
    their matrix rows, as `SparsePieces` does for sparse streams: `values` is a copy in a
    memory mapping of its own, and once every band up to one is done, each component's whole
    pages below that band's first row are dropped (MADV_DONTNEED), band_sizes.PIECE_BYTES or
    more at a time (a call per band cost more than the pages are worth)."""

    def __init__(self, residuals: np.ndarray, bands: list[tuple[int, int]]) -> None:
        self.pages, _, (copy,) = own_pages(np.ascontiguousarray(residuals).reshape(-1))
        self.values = copy.reshape(residuals.shape)
        count, self.m = residuals.shape
        self.itemsize = residuals.dtype.itemsize
        self.bands = bands
        self.done = [False] * len(bands)
        self.live = 0  # the first band not done
        # Each component's pages dropped so far: from its first whole page up to here.
        self.dropped = [-(-c * self.m * self.itemsize // mmap.PAGESIZE) * mmap.PAGESIZE
                        for c in range(count)]
        self.lock = threading.Lock()

    def release(self, band: int) -> None:
        """Band `band` is done with its rows."""
        with self.lock:
            self.done[band] = True
            live = self.live
            while live < len(self.bands) and self.done[live]:
                live += 1
            if live == self.live:
                return
            self.live = live
            row = self.bands[live][0] if live < len(self.bands) else self.m
            spans = pages_below(self.dropped, [(c * self.m + row) * self.itemsize
                                               for c in range(len(self.dropped))],
                                1 if row == self.m else band_sizes.PIECE_BYTES)
        drop_pages(self.pages, spans)


def pages_below(dropped: list[int], ends: Sequence[int], least: int = 1
                ) -> list[tuple[int, int]]:
    """(start, length) of the whole pages of each region of a mapping from its pages dropped so
    far (`dropped`, advanced here) up to its end in `ends`, where they span `least` bytes or
    more: what `drop_pages` hands back. Called under the owner's lock."""
    spans = []
    for s, end in enumerate(ends):
        hi = end // mmap.PAGESIZE * mmap.PAGESIZE
        if hi > dropped[s] and hi - dropped[s] >= least:
            spans.append((dropped[s], hi - dropped[s]))
            dropped[s] = hi
    return spans


def held_bytes(block: Block, rows: int, compiled: ModuleType | None) -> int:
    """Bytes a sparse block takes held whole for a plane (`sparse_streams`): its streams and
    their index (the numpy path's int64 row ends, or the kernels' checkpoints)."""
    index = (24 * (rows // band_sizes.CHECKPOINT_ROWS + 1) if compiled is not None
             else 8 * rows)
    return block.raw_bytes + index


class SparseStream:
    """A sparse block read by rows from its frame, a bounded piece at a time, instead of held
    whole: for blocks whose streams would break the memory bound.

    zstd frames cannot be seeked, so each of the three streams (symbols, run escapes, value
    escapes) is read through its own decompression context (`FrameReader`), the escape streams'
    contexts first decompressing past the streams before them; a range of rows starts a new
    pass from the frame's start. Three contexts are open at a time, one block at a time. A
    row holds at most count + 1 symbols (one per component and its end), so `rows` rows come in
    at most rows x (count + 1) bytes: a longer run without enough row ends is invalid, never a
    larger buffer.
    """

    def __init__(self, block: Block, rows: int) -> None:
        self.block, self.rows = block, rows
        self.nsym = block.parts[0][1][0]
        self.nxrun = block.parts[1][1][0]
        self.value_type = block.parts[2][0]
        self.nxval = block.parts[2][1][0]

    def pieces(self, r0: int, r1: int, step: int) -> Iterator[tuple[int, int, tuple]]:
        """(q0, q1, (symbols, run escapes, value escapes)) of rows [r0, r1) in pieces of at
        most `step` rows; every stream checked against the descriptor when r1 is the last
        row."""
        frame, what = self.block.frame, self.block.what
        assert frame is not None, "a streamed block has a frame"
        symbols = FrameReader(frame, what, self.block.form)
        runs = values = None
        if self.nxrun:
            runs = FrameReader(frame, what, self.block.form)
            runs.skip(self.nsym)
        if self.nxval:
            values = FrameReader(frame, what, self.block.form)
            values.skip(self.nsym + 2 * self.nxrun)
        self.left, self.pending, self.runs_read, self.values_read = self.nsym, b"", 0, 0
        row = 0
        while row < r0:  # rows before the range: only their escapes are counted and skipped
            part = self._rows(symbols, min(step, r0 - row))
            na, nv = _escapes(part)
            self._escapes(runs, values, na, nv, keep=False)
            row += min(step, r0 - row)
        for q0 in range(r0, r1, step):
            q1 = min(q0 + step, r1)
            part = self._rows(symbols, q1 - q0)
            yield q0, q1, (part, *self._escapes(runs, values, *_escapes(part)))
        if r1 == self.rows:
            if self.left or self.pending:
                raise SvdiError(f"sparse block: {self.rows} row ends before the last symbol")
            if self.runs_read != self.nxrun or self.values_read != self.nxval:
                raise SvdiError("sparse block: escape counts do not match the side streams")
            (values or runs or symbols).finish()

    def _rows(self, reader: FrameReader, n: int) -> np.ndarray:
        """The symbols of the next n rows."""
        cap = n * (self.block.count + 1)
        data = bytearray(self.pending)
        ends = data.count(END_OF_ROW)
        while ends < n:
            if len(data) >= cap or not self.left:
                raise SvdiError(f"sparse block: {self.rows} row ends expected, a row is longer "
                                f"than its {self.block.count} components or the rows end early")
            more = reader.exactly(min(self.left, cap - len(data), max(n, 1 << 16)))
            self.left -= len(more)
            ends += more.count(END_OF_ROW)
            data += more
        array = np.frombuffer(data, np.uint8)
        cut = int(np.flatnonzero(array == END_OF_ROW)[n - 1]) + 1 if n else 0
        self.pending = bytes(data[cut:])
        return array[:cut]

    def _escapes(self, runs: FrameReader | None, values: FrameReader | None, na: int, nv: int,
                 keep: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The next na run escapes and nv value escapes (or skip them)."""
        self.runs_read += na
        self.values_read += nv
        if self.runs_read > self.nxrun or self.values_read > self.nxval:
            raise SvdiError("sparse block: escape counts do not match the side streams")
        xrun = np.zeros(0, "<u2")
        xval = np.zeros(0, self.value_type)
        if na:
            assert runs is not None
            if keep:
                xrun = np.frombuffer(runs.exactly(2 * na), "<u2")
            else:
                runs.skip(2 * na)
        if nv:
            assert values is not None
            size = nv * self.value_type.itemsize
            if keep:
                xval = np.frombuffer(values.exactly(size), self.value_type)
            else:
                values.skip(size)
        return xrun, xval


def _escapes(symbols: np.ndarray) -> tuple[int, int]:
    """Run escapes and value escapes that these symbols use."""
    return (int(np.count_nonzero(symbols >= RUN_ESCAPE << 4)),
            int(np.count_nonzero((symbols & 15) == VALUE_ESCAPE)))


def fill_streamed(out: np.ndarray, block: Block, width: int, stream: SparseStream, r0: int,
                  r1: int, compiled: ModuleType | None = None,
                  scale: np.ndarray | None = None) -> None:
    """`fill_sparse` (numpy) or `fill_compiled` (with `scale`) of rows [r0, r1) of a streamed
    block, piece by piece: each piece's index is sized to the piece, the kernels and
    `decode_symbols` see a piece as a block of its rows."""
    if held_bytes(block, stream.rows, compiled) <= band_sizes.CHUNK_BYTES:
        # A small block: decompressed whole for this range, one block at a time, which
        # costs less than opening its contexts (many one-component blocks).
        streams = sparse_streams(block, stream.rows, compiled)
        if compiled is not None:
            assert scale is not None
            fill_compiled(compiled, out, block, width, streams, r0, r1, scale)
        else:
            fill_sparse(out, block, width, streams, r0, r1)
        return
    step = max(1, band_sizes.CHUNK_BYTES // (12 * (block.count + 1)))
    for q0, q1, (symbols, xrun, xval) in stream.pieces(r0, r1, step):
        rows = out[q0 - r0:q1 - r0]
        if compiled is not None:
            assert scale is not None
            streams = sparse_streams(block, q1 - q0, compiled, (symbols, xrun, xval))
            fill_compiled(compiled, rows, block, width, streams, 0, q1 - q0, scale)
        else:
            ends = np.flatnonzero(symbols == END_OF_ROW) + 1
            fill_sparse(rows, block, width, (symbols, xrun, xval, ends), 0, q1 - q0)


def fill_sparse(out: np.ndarray, block: Block, width: int, streams: tuple[np.ndarray, ...],
                 r0: int, r1: int) -> None:
    """out[:, first:first + width] = rows [r0, r1) of a sparse block (symbols are row-major),
    decoded a few rows at a time: decode_symbols' index and value arrays take 12 bytes per
    non-zero, three times the float32 they fill."""
    symbols, xrun, xval, ends = streams
    step = max(1, band_sizes.CHUNK_BYTES // (12 * (block.count + 1)))
    s0 = int(ends[r0 - 1]) if r0 else 0
    a = int(np.count_nonzero(symbols[:s0] >= RUN_ESCAPE << 4))
    v = int(np.count_nonzero((symbols[:s0] & 15) == VALUE_ESCAPE))
    for q0 in range(r0, r1, step):
        q1 = min(q0 + step, r1)
        s1 = int(ends[q1 - 1])
        part = symbols[s0:s1]
        na = int(np.count_nonzero(part >= RUN_ESCAPE << 4))
        nv = int(np.count_nonzero((part & 15) == VALUE_ESCAPE))
        parts = (part, xrun[a:a + na], xval[v:v + nv])
        rows = out[q0 - r0:q1 - r0]
        if width == block.count:
            index, values = decode_symbols(*parts, (q1 - q0, block.count), out.shape[1])
            rows.reshape(-1)[index + block.first] = values
        else:  # a preview that stops inside this block
            full = np.zeros((q1 - q0, block.count), dtype=np.float32)
            index, values = decode_symbols(*parts, (q1 - q0, block.count))
            full.reshape(-1)[index] = values
            rows[:, block.first:block.first + width] = full[:, :width]
        s0, a, v = s1, a + na, v + nv


def fill_compiled(compiled: ModuleType, out: np.ndarray, block: Block, width: int,
                   streams: tuple[np.ndarray, ...], r0: int, r1: int, scale: np.ndarray,
                   zero: bool = False) -> None:
    """`fill_sparse` and the scaling, in one compiled pass from `sparse_streams`' index
    (zero: the block's columns of out are zeroed here, not by the caller)."""
    error = compiled.fill_sparse(*streams, r0, r1, out, block.first, width, block.count,
                                 scale, zero)
    if error:
        raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")


def unpredict_whole(compiled: ModuleType, out: np.ndarray, block: Block, width: int,
                    grid: tuple[int, int], at: int, scale: np.ndarray) -> None:
    """out[:, at + k] = component k < width of a dense block over its whole grid, unpredicted,
    times scale[k]: the block decompressed whole (the caller checked that it fits its budget)
    and `fill_dense` and the scaling in one compiled pass (float32(integer) * scale, as
    numpy's)."""
    residuals = block.data()[0].reshape(-1)
    rows = grid[0] * grid[1]
    if residuals.size != block.count * rows:
        raise SvdiError(f"{block.what}: {residuals.size} values for {block.count} x {rows}")
    compiled.unpredict_into(residuals, grid[0], grid[1], block.predictor, width, out, at, scale)


def scratch_array(scratch: dict[str, np.ndarray], key: str, shape: tuple[int, int],
           zero: bool = True) -> np.ndarray:
    """Float32 array of `shape` in scratch[key], zeroed unless told, reused from plane to plane
    and pass to pass: first-touch page faults of fresh pass-sized arrays cost more than the
    decoding."""
    size = shape[0] * shape[1]
    if key not in scratch or scratch[key].size < size:
        scratch.pop(key, None)
        scratch[key] = np.empty(size, dtype=np.float32)
    out = scratch[key][:size].reshape(shape)
    if zero:
        out.fill(0)
    return out


def dense_pieces(block: Block, width: int, grid: tuple[int, int], g0: int, g1: int
                 ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Grid rows [g0, g1) of the components k < width of a dense block, a piece at a time as
    `Block.grid_pieces` streams them (rows of one component, or the whole grids of several),
    each piece's int64 work within band_sizes.CHUNK_BYTES: (its first component, its first
    grid row, its residuals (components, rows, grid width), each component's vertical
    predictor's column sums of its residuals above the piece (components, grid width): int64,
    wrapping like `coding.unpredict`'s cumsum; zeros for the other predictors). The rows above
    g0 are only summed; the sums are updated once the next piece is asked for."""
    gh, gw = grid
    vertical = block.predictor in (VERTICAL, PLANAR)
    sums = np.zeros((1, gw), dtype=np.int64)
    for k, a, residuals in block.grid_pieces(grid, max(1, band_sizes.CHUNK_BYTES // (8 * gw)),
                                             band_sizes.CHUNK_BYTES):
        b = a + residuals.shape[1]
        if k >= width or a >= g1 or (b <= g0 and not vertical):
            continue
        residuals = residuals[:width - k]
        if a == 0:
            sums = np.zeros((residuals.shape[0], gw), dtype=np.int64)
        lo, hi = max(a, g0), min(b, g1)
        if vertical and lo > a:
            sums += residuals[:, :lo - a].sum(axis=1, dtype=np.int64)
        if lo < hi:
            yield k, lo, residuals[:, lo - a:hi - a], sums
        if vertical and b < min(gh, g1):  # the component's next piece is read (lo..b here)
            sums += residuals[:, lo - a:].sum(axis=1, dtype=np.int64)


def fill_dense(out: np.ndarray, block: Block, width: int, grid: tuple[int, int],
               g0: int, g1: int, scratch: dict[str, np.ndarray], at: int | None = None
               ) -> None:
    """out[:, at + k] = grid rows [g0, g1) of component k of a dense block, unpredicted,
    for k < width (at: the block's first component unless given), a piece at a time
    (`dense_pieces`). Components are gathered in a component-major float32 copy and
    transposed into `out` at the end: writing one column at a time is slow."""
    gw = grid[1]
    gathered = scratch_array(scratch, "gathered", (width, (g1 - g0) * gw)).reshape(width, -1, gw)
    vertical = block.predictor in (VERTICAL, PLANAR)
    # (a grid one column wide, a plain layout's: the running sum along a row is the row)
    horizontal = block.predictor in (HORIZONTAL, PLANAR) and gw > 1
    for k, lo, residuals, sums in dense_pieces(block, width, grid, g0, g1):
        g = residuals.astype(np.int64)
        if vertical:
            np.cumsum(g, axis=1, out=g)
            g += sums[:, None, :]
        if horizontal:
            g = np.cumsum(g, axis=2)
        gathered[k:k + g.shape[0], lo - g0:lo - g0 + g.shape[1]] = g
    at = block.first if at is None else at
    out[:, at:at + width] = gathered.reshape(width, -1).T


def fill_dense_compiled(compiled: ModuleType, out: np.ndarray, block: Block, width: int,
                        grid: tuple[int, int], g0: int, g1: int, scale: np.ndarray,
                        at: int | None = None) -> None:
    """`fill_dense` times scale[k] per component, by the kernels: each piece unpredicted and
    scaled straight into its rows of out (`_kernels.unpredict_into`, as `unpredict_whole`
    does a whole block), from its column sums. The same integers and float32 products as
    `fill_dense` and the caller's scaling, without the int64 copies."""
    gw = grid[1]
    at = block.first if at is None else at
    for k, lo, residuals, sums in dense_pieces(block, width, grid, g0, g1):
        n, rows = residuals.shape[:2]
        compiled.unpredict_into(np.ascontiguousarray(residuals).reshape(-1), rows, gw,
                                block.predictor, n, out[(lo - g0) * gw:(lo - g0 + rows) * gw],
                                at + k, scale[k:k + n], sums.reshape(-1))


def factor_bytes(container: Container, plane: Plane) -> int:
    """Bytes of the plane's factor blocks once decompressed (a dense U block is held as float32
    columns). From the container's index of each plane's blocks: a sum over every block of
    the file for each plane took a file of 255 planes and 489,600 blocks 9 s."""
    total = 0
    for factor, grid in (("U", plane.grid), ("V", plane.vgrid)):
        for b in container.factor_blocks(plane.index, factor):
            total += 4 * b.count * math.prod(grid) if b.coding == DENSE else b.raw_bytes
    return total
