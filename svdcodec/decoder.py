"""Decoder: bytes -> container -> quantized blocks -> factors -> matrices -> planes -> image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import container as C
from .errors import SvdiError
from .bands import render
from .coding import from_symbols, unpredict
from .parallel import single_threaded


@dataclass
class PlaneFactors:
    """Dequantized factors of one plane's matrix: matrix ~= U @ diag(S) @ Vt.

    For layout "plain" the matrix is the plane itself; for "patch" its rows are the p x p patches
    in raster order. Values are in sample units (S includes the header's scale) for images without
    a colour transform, and in 8-bit Y'CbCr units (chroma centred on 0) otherwise.
    """

    U: np.ndarray  # (m, r) float32
    S: np.ndarray  # (r,) float32
    Vt: np.ndarray  # (r, n) float32
    layout: str
    plane_shape: tuple[int, int]


def _max_pixels(max_pixels: int | None | bool) -> int | None:
    if max_pixels is False or max_pixels is None:
        return None
    if max_pixels is True:
        limit = Image.MAX_IMAGE_PIXELS
        return None if limit is None else int(limit)
    return int(max_pixels)


def _load(data: bytes, max_pixels: int | None | bool, components: int | None) -> C.Container:
    if components is not None and components < 0:
        raise SvdiError("components must be non-negative")
    # The pixel limit is checked on the HEAD chunk, before any factor block is decompressed.
    return C.unpack(data, max_pixels=_max_pixels(max_pixels))


def _integers(box: C.Container, plane: C.Plane, factor: str, rank: int) -> np.ndarray:
    """The quantized factor of one plane as (rows, rank) int64, coding undone."""
    grid = plane.grid if factor == "U" else plane.vgrid
    rows = grid[0] * grid[1]
    out = np.zeros((rows, rank), dtype=np.int64)
    for b in box.blocks:
        if b.plane != plane.index or b.factor != factor or b.first >= rank:
            continue
        if b.coding == C.DENSE:
            part = unpredict(b.data()[0], b.predictor).reshape(b.count, rows).T
        else:
            symbols, xrun, xval = b.data()
            part = from_symbols(symbols, xrun, xval, (rows, b.count))
        width = min(b.count, rank - b.first)
        out[:, b.first:b.first + width] = part[:, :width]
    return out


def decode(data: bytes, *, components: int | None = None,
           max_pixels: int | None | bool = True) -> np.ndarray:
    """Decode .svdi bytes to an array of shape (h, w) or (h, w, c) and the stored sample type.

    components: decode only the first k components of every plane (a preview).
    max_pixels: refuse images larger than this; True (default) reads PIL.Image.MAX_IMAGE_PIXELS
    at call time, None disables the check.
    """
    box = _load(data, max_pixels, components)
    # A hostile step, singular value or scale can overflow float32: no warnings, checked in render.
    # BLAS stays single-threaded throughout, as in the encoder (see parallel's docstring).
    with np.errstate(all="ignore"), single_threaded():
        pixels = render(box, components)
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise SvdiError(f"samples overflow float32 (sample scale {box.header.scale})")
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def read_factors(data: bytes, *, max_pixels: int | None | bool = True) -> list[PlaneFactors]:
    """Each plane's dequantized U_r, S_r, V_r^T, for people who want the factors themselves."""
    box = _load(data, max_pixels, None)
    scale = box.header.scale if box.header.colour == C.COLOUR_NONE else 1.0
    out = []
    for plane in box.planes:
        sigma = box.singular_values(plane.index)[:plane.rank].astype(np.float32)
        inv = (plane.step / sigma).astype(np.float32) if sigma.size else sigma
        U = _integers(box, plane, "U", plane.rank).astype(np.float32) * inv
        Vt = (_integers(box, plane, "V", plane.rank).astype(np.float32) * inv).T
        layout = "plain" if plane.layout == C.LAYOUT_PLAIN else f"patch{plane.patch}"
        out.append(PlaneFactors(U, sigma * np.float32(scale), np.ascontiguousarray(Vt), layout,
                                (plane.height, plane.width)))
    return out
