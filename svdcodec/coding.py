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

from .errors import SvdiError

NONE, HORIZONTAL, VERTICAL, PLANAR = 0, 1, 2, 3
END_OF_ROW = 0x08
RUN_ESCAPE = 15
VALUE_ESCAPE = 0


# ----------------------------------------------------------------------------- dense


def predict(grids: np.ndarray, predictor: int) -> np.ndarray:
    """Residuals of components shaped (count, gh, gw); the inverse is `unpredict`."""
    r = grids.astype(np.int64)
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
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return values.astype(dtype)
    raise OverflowError("value does not fit 32 bits")


def _entropy(values: np.ndarray) -> float:
    """Order-0 entropy of the values in bits, a cheap proxy for their zstd size."""
    flat = values.reshape(-1).astype(np.int64)
    if flat.size == 0:
        return 0.0
    counts = np.bincount(flat - int(flat.min()))
    p = counts[counts > 0] / flat.size
    return -float(p @ np.log2(p)) * flat.size


def best_prediction(grids: np.ndarray) -> tuple[int, np.ndarray]:
    """The predictor whose residuals have the lowest order-0 entropy, and those residuals."""
    candidates = (NONE, HORIZONTAL, VERTICAL, PLANAR) if grids.shape[2] > 1 else (NONE, VERTICAL)
    scored = []
    for predictor in candidates:
        res = narrow(predict(grids, predictor))
        scored.append((_entropy(res) + 8 * res.itemsize, predictor, res))
    _, predictor, res = min(scored, key=lambda t: t[:2])
    return predictor, res


# ----------------------------------------------------------------------------- sparse


def to_symbols(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row-major run/level symbols of an integer matrix (rows, count).

    Returns (symbols uint8, run escapes uint16, value escapes int16 or int32).
    """
    rows, cols = np.nonzero(matrix)
    values = matrix[rows, cols].astype(np.int64)
    previous = np.empty_like(cols)
    previous[1:] = cols[:-1]
    new_row = np.ones(cols.size, dtype=bool)
    new_row[1:] = rows[1:] != rows[:-1]
    previous[new_row] = -1
    runs = cols - previous - 1
    run_code = np.minimum(runs, RUN_ESCAPE)
    small = (values >= -7) & (values <= 7)
    value_code = np.where(small, values + 8, VALUE_ESCAPE)
    symbols = np.full(values.size + matrix.shape[0], END_OF_ROW, dtype=np.uint8)
    symbols[np.arange(values.size) + rows] = (run_code << 4) | value_code
    xrun = (runs[runs >= RUN_ESCAPE] - RUN_ESCAPE).astype(np.uint16)
    xval = narrow(values[~small])
    if xval.dtype == np.int8:
        xval = xval.astype(np.int16)
    return symbols, xrun, xval


def from_symbols(symbols: np.ndarray, xrun: np.ndarray, xval: np.ndarray,
                 shape: tuple[int, int]) -> np.ndarray:
    """Inverse of `to_symbols`, validating every symbol against `shape` (rows, count)."""
    nrows, count = shape
    eor = symbols == END_OF_ROW
    if int(eor.sum()) != nrows or (symbols.size and not eor[-1]):
        raise SvdiError(f"sparse block: {int(eor.sum())} row ends for {nrows} rows")
    rows = (np.cumsum(eor) - eor)[~eor]
    coded = symbols[~eor]
    run_code = (coded >> 4).astype(np.int64)
    value_code = (coded & 15).astype(np.int64)
    if np.any(value_code == 8):
        raise SvdiError("sparse block: invalid symbol")
    escaped_runs = run_code == RUN_ESCAPE
    escaped_values = value_code == VALUE_ESCAPE
    if int(escaped_runs.sum()) != xrun.size or int(escaped_values.sum()) != xval.size:
        raise SvdiError("sparse block: escape counts do not match the side streams")
    runs = run_code
    runs[escaped_runs] += xrun
    values = value_code - 8
    values[escaped_values] = xval
    if np.any(values == 0):
        raise SvdiError("sparse block: escaped value of zero")
    steps = np.cumsum(runs + 1)
    starts = np.ones(rows.size, dtype=bool)
    starts[1:] = rows[1:] != rows[:-1]
    before = np.zeros(rows.size, dtype=np.int64)
    before[1:] = steps[:-1]
    base = np.maximum.accumulate(np.where(starts, before, 0)) if rows.size else before
    cols = steps - base - 1
    if cols.size and int(cols.max()) >= count:
        raise SvdiError("sparse block: component index beyond the block")
    out = np.zeros((nrows, count), dtype=np.int64)
    out[rows, cols] = values
    return out
