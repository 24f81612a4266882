"""Reading a plane's factors from its blocks: sparse run/level streams indexed and filled by
ranges of matrix rows, dense blocks unpredicted a few grid rows at a time, so that no factor is
ever held whole as int64."""

from __future__ import annotations

import math
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
from ..format import DENSE, Block, Container, Plane
from ..runtime import band_sizes, kernels


def sparse_streams(block: Block, rows: int, compiled: ModuleType | None = None
                    ) -> tuple[Any, ...]:
    """(symbols, run escapes, value escapes, symbol index after each row end) of a sparse
    block, checked against the row count and the side streams' sizes; compiled: (symbols,
    run escapes, value escapes, the kernels' checkpoints every CHECKPOINT_ROWS rows and that
    number)."""
    symbols, xrun, xval = block.data()
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


def fill_dense(out: np.ndarray, block: Block, width: int, grid: tuple[int, int],
                g0: int, g1: int, scratch: dict[str, np.ndarray], at: int | None = None
                ) -> None:
    """out[:, at + k] = grid rows [g0, g1) of component k of a dense block, unpredicted,
    for k < width (at: the block's first component unless given). Streams the block a few
    rows at a time: the vertical and planar predictors' running column sums are carried from
    chunk to chunk (int64, wrapping exactly like `unpredict`'s whole-array cumsum). Components
    are gathered in a component-major float32 copy and transposed into `out` at the end:
    writing one column at a time is slow."""
    gw = grid[1]
    gathered = scratch_array(scratch, "gathered", (width, (g1 - g0) * gw)).reshape(width, -1, gw)
    vertical = block.predictor in (VERTICAL, PLANAR)
    horizontal = block.predictor in (HORIZONTAL, PLANAR)
    carry = np.zeros(gw, dtype=np.int64)
    for k, a, residuals in block.grid_rows(grid, max(1, band_sizes.CHUNK_BYTES // (8 * gw))):
        b = a + residuals.shape[0]
        if a == 0:
            carry = np.zeros(gw, dtype=np.int64)
        if k >= width or a >= g1 or (b <= g0 and not vertical):
            continue
        g = residuals.astype(np.int64)
        if vertical:
            g = np.cumsum(g, axis=0, out=g)
            g += carry
            carry = g[-1].copy()
            if b <= g0:
                continue
        lo, hi = max(a, g0), min(b, g1)
        g = g[lo - a:hi - a]
        if horizontal:
            g = np.cumsum(g, axis=1)
        gathered[k, lo - g0:hi - g0] = g
    at = block.first if at is None else at
    out[:, at:at + width] = gathered.reshape(width, -1).T




def factor_bytes(container: Container, plane: Plane) -> int:
    """Bytes of the plane's factor blocks once decompressed (a dense U block is held as float32
    columns)."""
    total = 0
    for b in container.blocks:
        if b.plane != plane.index or b.factor == "S":
            continue
        total += (4 * b.count * math.prod(plane.grid if b.factor == "U" else plane.vgrid)
                  if b.coding == DENSE else b.raw_bytes)
    return total
