"""Lossless coding of quantized factor columns into streams that zstd compresses well.

zstd's entropy stage is order-0 Huffman plus LZ matches. Huffman cannot spend less than one
bit on a symbol, yet most quantized coefficients are zero, so a dense int8 layout wastes much of
each byte. Two codings fix that without a per-sample Python loop:

- dense: components laid out on their grid (patch grid, or a column), after an optional
  integer predictor (used for the first, DC-like component, which is smooth across patches);
- sparse: JPEG-like run/level symbols per matrix row ("row" = patch): one byte holds the run of
  zeros before a non-zero value and the value itself, and an end-of-row symbol closes each row.
  Rare long runs and large values escape to two small side streams.
"""

from __future__ import annotations

import numpy as np

from ..errors import SvdiError
from ..runtime import kernels
from ..runtime.threads import run_bands
from .quantize import entropy_bits

NONE, HORIZONTAL, VERTICAL, PLANAR = 0, 1, 2, 3
END_OF_ROW = 0x08
RUN_ESCAPE = 15
VALUE_ESCAPE = 0


# ----------------------------------------------------------------------------- dense


def predict(grids: np.ndarray, predictor: int) -> np.ndarray:
    """Residuals of components shaped (count, gh, gw); the inverse is `unpredict`. int32 for
    inputs of up to 16 bits (a planar residual of those needs 18), else int64."""
    r = grids.astype(np.int32 if grids.dtype.itemsize <= 2 else np.int64)
    if predictor in (HORIZONTAL, PLANAR):
        r[:, :, 1:] -= grids[:, :, :-1]
    if predictor in (VERTICAL, PLANAR):
        r[:, 1:, :] -= r[:, :-1, :].copy() if predictor == PLANAR else grids[:, :-1, :]
    return r


def unpredict(residuals: np.ndarray, predictor: int) -> np.ndarray:
    """Undo `predict` with cumulative sums (vectorized; no loop over samples)."""
    g = residuals.astype(np.int64)
    if predictor in (VERTICAL, PLANAR):
        g = np.cumsum(g, axis=1)
    if predictor in (HORIZONTAL, PLANAR):
        g = np.cumsum(g, axis=2)
    return g


def narrow(values: np.ndarray) -> np.ndarray:
    """Smallest of int8, int16, int32 that holds the values exactly."""
    if values.size == 0:
        return values.astype(np.int8)
    lo, hi = int(values.min()), int(values.max())
    for dtype, least, most in NARROW_TYPES:
        if least <= lo and hi <= most:
            return values.astype(dtype)
    raise OverflowError("value does not fit 32 bits")


#: `narrow`'s types and their ranges, looked up once (np.iinfo costs more than a small
#: array's min and max).
NARROW_TYPES = [(t, int(np.iinfo(t).min), int(np.iinfo(t).max))
                for t in (np.int8, np.int16, np.int32)]


def best_prediction(grids: np.ndarray) -> tuple[int, np.ndarray]:
    """The predictor whose residuals have the lowest order-0 entropy, and those residuals."""
    candidates = (NONE, HORIZONTAL, VERTICAL, PLANAR) if grids.shape[2] > 1 else (NONE, VERTICAL)

    def score(k: int) -> tuple[float, int, np.ndarray]:
        res = narrow(predict(grids, candidates[k]))
        return entropy_bits(res) + 8 * res.itemsize, candidates[k], res
    # Independent candidates: in threads when the grids are large enough to repay the hand-off.
    scored = run_bands(score, len(candidates), None if grids.size >= SYMBOL_BAND else 1)
    _, predictor, res = min(scored, key=lambda t: t[:2])
    return predictor, res


def best_wrapped_prediction(grids: np.ndarray) -> tuple[int, np.ndarray]:
    """`best_prediction` of int16 grids whose residuals are kept modulo 2^16 (a wrapped
    residual block, spec §4.1): the predictor of lowest entropy among those int16 residuals."""
    candidates = (NONE, HORIZONTAL, VERTICAL, PLANAR) if grids.shape[2] > 1 else (NONE, VERTICAL)

    def score(k: int) -> tuple[float, int, np.ndarray]:
        res = predict(grids, candidates[k]).astype(np.int16)  # the low 16 bits: modulo 2^16
        return entropy_bits(res), candidates[k], res
    scored = run_bands(score, len(candidates), None if grids.size >= SYMBOL_BAND else 1)
    _, predictor, res = min(scored, key=lambda t: t[:2])
    return predictor, res


# ----------------------------------------------------------------------------- sparse


#: Samples per band of `to_symbols`: its index temporaries stay small and bands run in threads.
SYMBOL_BAND = 1 << 18


def band_symbols(matrix: np.ndarray, lo: int = 0, hi: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`to_symbols` of a band of rows, columns lo:hi, value escapes not yet narrowed: see
    `join_symbols`."""
    hi = matrix.shape[1] if hi is None else hi
    compiled = kernels.get()
    if compiled is not None:  # any strides: a view of a wider matrix is read in place
        return compiled.symbols(matrix, lo, hi)
    matrix = matrix[:, lo:hi]
    count = matrix.shape[1]
    flat = np.ascontiguousarray(matrix).reshape(-1)
    where = np.flatnonzero(flat != 0)  # nonzero of a bool array is several times faster
    values = flat[where]
    rows = where // count
    cols = where - rows * count
    runs = np.empty_like(where)
    runs[:1] = cols[:1]
    np.subtract(where[1:], where[:-1], out=runs[1:])
    runs[1:] -= 1  # zeros between neighbours in the same row, or the column at a row's start:
    runs[1:] = np.where(rows[1:] != rows[:-1], cols[1:], runs[1:])
    small = (values >= -7) & (values <= 7)
    codes = np.minimum(runs, RUN_ESCAPE).astype(np.uint8) << 4
    codes |= np.where(small, values + 8, VALUE_ESCAPE).astype(np.uint8)
    symbols = np.full(values.size + matrix.shape[0], END_OF_ROW, dtype=np.uint8)
    symbols[np.arange(values.size) + rows] = codes
    return symbols, (runs[runs >= RUN_ESCAPE] - RUN_ESCAPE).astype(np.uint16), values[~small]


def to_symbols(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major run/level symbols of an integer matrix (rows, count).

    Returns (symbols uint8, run escapes uint16, value escapes int16 or int32). Rows are coded
    in bands (each row's symbols depend on that row only).
    """
    step = max(1, SYMBOL_BAND // max(matrix.shape[1], 1))
    if matrix.shape[0] <= step:  # one band (integers only: no floating-point state to set)
        return join_symbols([band_symbols(matrix)])
    starts = range(0, matrix.shape[0], step)
    parts = run_bands(lambda i: band_symbols(matrix[starts[i]:starts[i] + step]), len(starts))
    return join_symbols(parts)


def join_symbols(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The symbols of consecutive bands (from `band_symbols`) as those of the whole matrix."""
    if len(parts) == 1:
        symbols, xrun, values = parts[0]
    else:
        symbols, xrun, values = (np.concatenate(p) for p in zip(*parts))
    xval = narrow(values)
    if xval.dtype == np.int8:
        xval = xval.astype(np.int16)
    return symbols, xrun, xval


def decode_symbols(symbols: np.ndarray, xrun: np.ndarray, xval: np.ndarray,
                   shape: tuple[int, int], stride: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(flat indices, int32 values) of the non-zero entries of a sparse block of `shape`
    (rows, count), every symbol validated. Index row*stride + column (stride defaults to count),
    so a caller can scatter into a band of a wider matrix without a dense int64 copy.

    A cumulative sum of run + 1 over the symbols (end-of-row symbols adding nothing) gives
    each value's column plus its row's start; one shift per row turns that into row*stride.
    """
    nrows, count = shape
    stride = count if stride is None else stride
    eor = symbols == END_OF_ROW
    ends = np.flatnonzero(eor)
    if ends.size != nrows or (symbols.size and not eor[-1]):
        raise SvdiError(f"sparse block: {ends.size} row ends for {nrows} rows")
    low = symbols & 15
    if np.count_nonzero(low == 8) != nrows:  # value code 8 only in END_OF_ROW
        raise SvdiError("sparse block: invalid symbol")
    run = symbols >> 4
    escaped_runs = run == RUN_ESCAPE
    escaped_values = low == VALUE_ESCAPE
    if (np.count_nonzero(escaped_runs) != xrun.size
            or np.count_nonzero(escaped_values) != xval.size):
        raise SvdiError("sparse block: escape counts do not match the side streams")
    if np.any(xval == 0):
        raise SvdiError("sparse block: escaped value of zero")
    reach = symbols.size * (RUN_ESCAPE + 1) + int(xrun.sum(dtype=np.int64)) + nrows * stride
    index = np.int32 if reach < 2**31 else np.int64
    advance: np.ndarray = run + np.uint8(1)  # at most 16: stays uint8
    advance[ends] = 0
    position: np.ndarray = np.cumsum(advance, dtype=index)
    if xrun.size:  # rare long runs: add their excess from each escape on
        excess = np.zeros(symbols.size, dtype=index)
        excess[escaped_runs] = xrun
        position += np.cumsum(excess, dtype=index)
    row_end = position[ends]  # column after each row's last value ...
    lengths = np.diff(row_end, prepend=index(0)) if nrows else row_end
    if lengths.size and int(lengths.max()) > count:  # ... which is within the block
        raise SvdiError("sparse block: component index beyond the block")
    # Row k starts at k * stride: shift each row's symbols by k * stride - (end of row k - 1).
    shift: np.ndarray = np.arange(nrows, dtype=index) * stride  # Python int is weak: `index`
    shift[1:] -= row_end[:-1]
    shift -= 1
    coded = ~eor
    position += np.repeat(shift, np.diff(ends, prepend=-1))
    values = low[coded].astype(np.int32 if xval.dtype.itemsize > 2 else np.int16)
    values -= 8
    if xval.size:
        values[values == VALUE_ESCAPE - 8] = xval
    return position[coded], values


def from_symbols(symbols: np.ndarray, xrun: np.ndarray, xval: np.ndarray,
                 shape: tuple[int, int]) -> np.ndarray:
    """Inverse of `to_symbols`, validating every symbol against `shape` (rows, count)."""
    index, values = decode_symbols(symbols, xrun, xval, shape)
    out = np.zeros(shape, dtype=np.int64)
    out.reshape(-1)[index] = values
    return out
