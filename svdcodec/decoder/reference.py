"""The reference decoder: spec/svdi.md §5, step by step, on whole arrays.

This is the decoder to read to understand the format, and the one a port to another language
translates. It holds every plane's integers and matrix whole, so it is for small files, tests and
readers; `svdcodec.decode` gives the very same pixels band by band, in threads and with the
compiled kernels (the tests hold it to this module bit for bit).
"""

from __future__ import annotations

import numpy as np

from ..codec.coding import from_symbols, unpredict
from ..codec.colour import from_planes
from ..codec.layout import from_matrix
from ..codec.quantize import reconstruct
from ..errors import SvdiError
from ..format import COLOUR_YCBCR, DENSE, LAYOUT_PATCH, Container, Plane, unpack


def factor_integers(container: Container, plane: Plane, factor: str, rank: int) -> np.ndarray:
    """Step 1: the integer columns 0..rank of factor "U" (A, m x rank) or "V" (B, n x rank) of
    one plane, from its blocks: dense blocks unpredicted, sparse blocks' symbols decoded."""
    grid = plane.grid if factor == "U" else plane.vgrid
    rows = grid[0] * grid[1]
    out = np.zeros((rows, rank), dtype=np.int64)
    for block in container.blocks:
        if block.plane != plane.index or block.factor != factor or block.first >= rank:
            continue
        if block.coding == DENSE:
            part = unpredict(block.data()[0], block.predictor).reshape(block.count, rows).T
        else:
            symbols, run_escapes, value_escapes = block.data()
            part = from_symbols(symbols, run_escapes, value_escapes, (rows, block.count))
        width = min(block.count, rank - block.first)
        out[:, block.first:block.first + width] = part[:, :width]
    return out


def decode_plane(container: Container, plane: Plane, rank: int) -> np.ndarray:
    """Steps 1-3: one plane, float32 (height, width), from its first `rank` components."""
    A = factor_integers(container, plane, "U", rank)
    B = factor_integers(container, plane, "V", rank)
    sigma = container.singular_values(plane.index)[:rank]
    with np.errstate(all="ignore"):  # a hostile step or sigma overflows: checked next
        matrix = reconstruct(A, sigma, B, plane.step)  # X = (step A) diag(1/sigma) (step B)^T
    if not np.all(np.isfinite(matrix)):
        raise SvdiError(f"plane {plane.index}: reconstruction overflows")
    patch = plane.patch if plane.layout == LAYOUT_PATCH else 0
    return from_matrix(matrix, plane.height, plane.width, patch)


def decode_reference(data: bytes, components: int | None = None) -> np.ndarray:
    """The image (h, w) or (h, w, c) in the stored sample type, like `svdcodec.decode`."""
    container = unpack(data)
    header = container.header
    planes = [decode_plane(container, p, p.rank if components is None else min(p.rank, components))
              for p in container.planes]
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow is checked below
        pixels = from_planes(planes, header.height, header.width, header.dtype,
                             header.colour == COLOUR_YCBCR, bool(header.subsampling), header.scale)
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise SvdiError(f"samples overflow float32 (sample scale {header.scale})")
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels
