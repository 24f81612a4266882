"""The decoder: bytes -> chunks -> blocks -> symbols -> integers -> factors -> matrices -> planes
-> image, band by band (`render` -> `plane` -> `factors`); `reference` is the same, whole-array.

`decode` and `read_factors` are the package's public functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import SvdiError
from ..format import COLOUR_NONE, LAYOUT_PLAIN, Container, unpack
from ..runtime import kernels
from ..runtime.threads import single_threaded
from .plane import PlaneReconstructor, pass_budget
from .render import check_image, render_image


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


def _load(data: bytes, max_pixels: int | None | bool, components: int | None) -> Container:
    if components is not None and components < 0:
        raise SvdiError("components must be non-negative")
    # The pixel limit is checked on the HEAD chunk, before any factor block is decompressed.
    return unpack(data, max_pixels=_max_pixels(max_pixels))


def decode(data: bytes, *, components: int | None = None,
           max_pixels: int | None | bool = True) -> np.ndarray:
    """Decode .svdi bytes to an array of shape (h, w) or (h, w, c) and the stored sample type.

    components: decode only the first k components of every plane (a preview).
    max_pixels: refuse images larger than this; True (default) reads PIL.Image.MAX_IMAGE_PIXELS
    at call time, None disables the check.
    """
    container = _load(data, max_pixels, components)
    # A hostile step, singular value or scale can overflow float32: no warnings, checked in render.
    # BLAS stays single-threaded throughout, as in the encoder (see parallel's docstring).
    with np.errstate(all="ignore"), single_threaded():
        pixels = render_image(container, components)
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise SvdiError(f"samples overflow float32 (sample scale {container.header.scale})")
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def read_factors(data: bytes, *, max_pixels: int | None | bool = True) -> list[PlaneFactors]:
    """Each plane's dequantized U_r, S_r, V_r^T, for people who want the factors themselves.

    Accepts and rejects exactly the files `decode` does (every band is reconstructed and
    checked as decode checks it, so it takes about a decode's time), and raises SvdiError
    where a factor is not finite in float32. Memory: the factors (float32, the output) plus
    the decoder's bounded pieces, sized from the factors' bytes (spec §5, Resources)."""
    container = _load(data, max_pixels, None)
    header = container.header
    scale = header.scale if header.colour == COLOUR_NONE else 1.0
    output = sum(4 * (sum(p.matrix_shape) + 1) * p.rank for p in container.planes)
    out = []
    with np.errstate(all="ignore"), single_threaded():
        check_image(container)
        compiled = kernels.get(output // 4)
        scratch: dict[str, np.ndarray] = {}
        for plane in container.planes:
            rows = PlaneReconstructor(container, plane, plane.rank, [(0, plane.height)],
                                      pass_budget(output), scratch, compiled)
            sigma = container.singular_values(plane.index)[:plane.rank].astype(np.float32)
            inv = (plane.step / sigma).astype(np.float32) if sigma.size else sigma
            U = rows.factor("U", inv)
            Vt = np.ascontiguousarray(rows.factor("V", inv).T)
            S = sigma * np.float32(scale)
            if not all(np.all(np.isfinite(x)) for x in (U, S, Vt)):
                raise SvdiError(f"plane {plane.index}: factors overflow float32 (step "
                                f"{plane.step}, singular values or scale out of range)")
            layout = "plain" if plane.layout == LAYOUT_PLAIN else f"patch{plane.patch}"
            out.append(PlaneFactors(U, S, Vt, layout, (plane.height, plane.width)))
    return out
