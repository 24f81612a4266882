"""Colour and layout: image <-> planes <-> matrices.

Planes are float32 arrays in "plane units" (8-bit scale). A plane becomes a matrix either as it
is ("plain", the lecture's picture-as-matrix) or as p x p patches that form the rows ("patch"),
so that V^T is a small basis of patch shapes learned from the image itself.
The forward colour transform is a fixed-point matrix (`YCC_WEIGHTS`); chroma is halved with
Pillow's BOX filter (2x2 means); the inverse colour transform and chroma doubling are Pillow's.
"""

from __future__ import annotations

import threading
from functools import partial
from types import ModuleType

import numpy as np
from PIL import Image

from . import kernels
from .container import COLOUR_YCBCR, LAYOUT_PATCH, Header, Plane
from .parallel import run_bands
from .resample import Resampler

# JPEG (JFIF) full-range Y'CbCr, chroma centred on zero, as integer weights in units of
# YCC_UNIT (each row of Y rounds 0.299, 0.587, 0.114 etc. to 1/65536, the chroma rows sum to 0).
# Why fixed point: every product and partial sum of 8-bit samples is then an integer below 2^24,
# which float32 holds exactly, so BLAS, numpy and the compiled kernels give the same bits in any
# order of summation (the error against the real coefficients is below 0.003 of a level).
YCC_WEIGHTS = np.array([[19595, 38470, 7471],
                        [-11058, -21710, 32768],
                        [32768, -27439, -5329]], dtype=np.float32)
YCC_UNIT = 2.0 ** -16


def split(pixels: np.ndarray, header: Header) -> list[np.ndarray]:
    """Image array (h, w, c) -> list of float32 planes, colour-transformed and subsampled."""
    h, w, c = pixels.shape
    if header.colour == COLOUR_YCBCR:
        flat = pixels[..., :3].reshape(-1, 3).astype(np.float32)
        ycc = (flat @ YCC_WEIGHTS.T).reshape(h, w, 3)
        ycc *= np.float32(YCC_UNIT)
        planes = [np.ascontiguousarray(ycc[..., i]) for i in range(3)]
        if header.subsampling:
            size = ((w + 1) // 2, (h + 1) // 2)
            planes[1:3] = [np.asarray(Image.fromarray(p, "F").resize(size, Image.Resampling.BOX))
                           for p in planes[1:3]]
        planes += [pixels[..., i].astype(np.float32) for i in range(3, c)]
        return planes
    if _tiny(header.scale):  # 1/scale would overflow float32: divide in float64
        return [(pixels[..., i].astype(np.float64) / header.scale).astype(np.float32)
                for i in range(c)]
    scale = np.float32(1.0 / header.scale)
    return [pixels[..., i].astype(np.float32) * scale for i in range(c)]


def _tiny(scale: float) -> bool:
    """Scales of float images whose values are near float32's smallest normal numbers."""
    return scale < float(np.finfo(np.float32).tiny) * 2**10


class Source:
    """The planes of `split`, computed band by band from the pixels.

    Encoding passes over the planes more than once (Gram matrix, then projection at each step);
    recomputing a band's colour conversion costs a few passes over cache-resident rows, while
    storing float32 planes would cost 4 bytes per sample per plane (4/3 of the raw size for Y
    alone). Only subsampled chroma is kept (`keep`). Values equal `split`'s exactly, except
    odd-sized chroma (Pillow's BOX sums in another order).
    With the compiled kernels loaded, `patches` converts, pads and transposes a band in one
    pass and `keep` halves both chroma planes in one pass, to the same bits.
    """

    def __init__(self, pixels: np.ndarray, header: Header) -> None:
        self.pixels, self.header = pixels, header
        h, w, c = pixels.shape
        self.shapes = [header.plane_shape(i) for i in range(c)]
        # The resamplers' row source is a function of the pixels, not a method: a bound
        # method would make a reference cycle, and the kept planes would outlive the encode
        # until the garbage collector's next full pass.
        self._halves = {i: Resampler(partial(_full_rows, pixels, header, i), (h, w),
                                     *self.shapes[i], "box")
                        for i in range(c) if self.shapes[i] != (h, w)}
        self._kept: dict[int, np.ndarray] = {}
        self._keeping = threading.Lock()

    def _compiled(self) -> ModuleType | None:
        """The kernels, if loaded and the pixels are in the C order they read."""
        return kernels.get() if self.pixels.flags.c_contiguous else None

    def patches(self, i: int, y0: int, y1: int, side: int) -> np.ndarray:
        """`patch_rows(self.rows(i, y0, y1), side)`."""
        if i in self._kept:  # one float32 channel, times 1
            compiled, source = kernels.get(), self._kept[i][:, :, None]
            channels, weights, unit = np.zeros(1, np.intp), np.ones(1, np.float32), 1.0
        elif i not in self._halves and not _tiny(self.header.scale):
            compiled, source = self._compiled(), self.pixels
            channels, weights, unit = _recipe(self.header, i)
        else:
            compiled = None
        if compiled is None:
            return patch_rows(self.rows(i, y0, y1), side)
        w = source.shape[1]
        out = np.empty((-(-(y1 - y0) // side) * -(-w // side), side * side), dtype=np.float32)
        compiled.patch_plane(source, y0, y1, channels, weights, np.float32(unit), side, out)
        return out

    def keep(self, i: int, bands: list[tuple[int, int]]) -> None:
        """Compute plane i once and keep it: worth it for subsampled chroma (a quarter of the
        size: 2/3 of the raw bytes for both), which would otherwise be recomputed from four
        times as many samples at every pass. Compiled, with even sizes, Cb and Cr are kept
        together, from one pass over the pixels."""
        with self._keeping:  # planes may be prepared concurrently
            self._keep(i, bands)

    def _keep(self, i: int, bands: list[tuple[int, int]]) -> None:
        if i in self._kept:
            return
        h, w = self.pixels.shape[:2]
        compiled = self._compiled()
        if compiled is not None and not (h % 2 or w % 2) and {1, 2} == set(self._halves):
            blue, red = (np.empty(self.shapes[c], dtype=np.float32) for c in (1, 2))
            pixels, unit = self.pixels, np.float32(YCC_UNIT / 4)

            def both(k: int) -> None:
                y0, y1 = bands[k]
                compiled.half_planes(pixels, y0, y1, YCC_WEIGHTS[1], YCC_WEIGHTS[2], unit,
                                     blue[y0:y1], red[y0:y1])
            run_bands(both, len(bands))
            self._kept.update({1: blue, 2: red})
            return
        plane = np.empty(self.shapes[i], dtype=np.float32)

        def fill(k: int) -> None:
            plane[bands[k][0]:bands[k][1]] = self.rows(i, *bands[k])
        run_bands(fill, len(bands))
        self._kept[i] = plane

    def release(self, planes: list[int]) -> None:
        """Drop these planes if kept (they are recomputed if asked for again)."""
        for i in planes:
            self._kept.pop(i, None)

    def rows(self, i: int, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of plane i, float32 (y1 - y0, plane width)."""
        if i in self._kept:
            return self._kept[i][y0:y1]
        half = self._halves.get(i)
        if half is None:
            return _full_rows(self.pixels, self.header, i, y0, y1)
        h, w = self.pixels.shape[:2]
        if h % 2 or w % 2:  # Pillow's BOX coefficients for odd sizes
            return half.rows(y0, y1)
        # Even sizes: the 2x2 mean, vertical pair first (contiguous rows, halves the data; the
        # pairs are exact, so the sum is rounded once, as in `keep`'s kernel, which halves the
        # planes the encoder reads);
        # Pillow sums horizontally first, so the last bit of rounding may differ.
        full = _full_rows(self.pixels, self.header, i, 2 * y0, 2 * y1)
        pairs = full[0::2] + full[1::2]
        out = pairs[:, 0::2] + pairs[:, 1::2]
        out *= np.float32(0.25)
        return out


def _recipe(header: Header, i: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Plane i as (channels, weights, unit): the float32 sum of weight * sample, times unit."""
    if header.colour == COLOUR_YCBCR and i < 3:
        return np.arange(3), YCC_WEIGHTS[i], YCC_UNIT
    unit = 1.0 if header.colour == COLOUR_YCBCR else 1.0 / header.scale
    return np.array([i]), np.ones(1, dtype=np.float32), unit


def _full_rows(pixels: np.ndarray, header: Header, i: int, y0: int, y1: int) -> np.ndarray:
    """Rows y0..y1 of full-size plane i, float32."""
    px = pixels[y0:y1]
    if _tiny(header.scale):  # 1/scale would overflow float32: divide in float64
        return (px[..., i].astype(np.float64) / header.scale).astype(np.float32)
    channels, weights, unit = _recipe(header, i)
    if channels.size == 3:
        # A matrix-vector product per band: 4x faster than per-channel ufuncs on the
        # strided uint8 samples, and unlike (N x 3) @ (3 x 3) not slowed by BLAS threading.
        out = px[..., :3].astype(np.float32) @ weights
    else:
        out = px[..., i].astype(np.float32)
    out *= np.float32(unit)
    return out


def patch_rows(rows: np.ndarray, patch: int) -> np.ndarray:
    """Plane rows (a whole number of patch rows, or the plane's last rows) -> matrix rows, one
    per p x p patch in raster order, edge-padded: `to_matrix` of a band."""
    h, w = rows.shape
    gh, gw = -(-h // patch), -(-w // patch)
    if (gh * patch, gw * patch) != (h, w):
        rows = np.pad(rows, ((0, gh * patch - h), (0, gw * patch - w)), mode="edge")
    rows = np.ascontiguousarray(rows)
    word = _word(patch * rows.itemsize)
    k = patch * rows.itemsize // word.itemsize
    words = rows.view(word).reshape(gh, patch, gw, k).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(words).view(rows.dtype).reshape(gh * gw, patch * patch)


def _word(size: int) -> np.dtype:
    """The widest type that divides a patch row of `size` bytes. A patch row is contiguous in
    both layouts, so moving it as a few wide words makes the patch transpose several times
    faster (complex128 only carries 16 bytes; nothing is computed on it)."""
    return np.dtype(next(t for b, t in ((16, np.complex128), (8, np.uint64), (4, np.uint32),
                                        (2, np.uint16), (1, np.uint8)) if size % b == 0))


def _to_uint8(plane: np.ndarray, offset: float = 0.0) -> np.ndarray:
    out = plane + np.float32(offset + 0.5) if offset else plane + np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def merge(planes: list[np.ndarray], header: Header) -> np.ndarray:
    """Decoded float32 planes -> image array (h, w, c) of the header's sample type."""
    h, w = header.height, header.width
    dtype = header.dtype
    if header.colour == COLOUR_YCBCR:
        chroma = planes[1:3]
        if header.subsampling:
            chroma = [np.asarray(Image.fromarray(p, "F").resize((w, h), Image.Resampling.BILINEAR))
                      for p in chroma]
        ycc = [Image.fromarray(_to_uint8(planes[0])),
               *(Image.fromarray(_to_uint8(p, 128.0)) for p in chroma)]
        rgb = np.asarray(Image.merge("YCbCr", ycc).convert("RGB"))
        if header.channels == 3:
            return rgb
        out = np.empty((h, w, header.channels), dtype=np.uint8)
        out[..., :3] = rgb
        for i, p in enumerate(planes[3:], start=3):
            out[..., i] = _to_uint8(p)
        return out
    out = np.empty((h, w, header.channels), dtype=dtype)
    for i, p in enumerate(planes):
        if dtype.kind == "f":
            out[..., i] = (p.astype(np.float64) * header.scale if _tiny(header.scale)
                           else p * np.float32(header.scale))
        else:
            top = float(np.iinfo(dtype).max)
            v = p.astype(np.float64) * header.scale + 0.5 if dtype.itemsize > 1 else p + np.float32(0.5)
            out[..., i] = np.clip(v, 0, top)
    return out


def to_matrix(plane: np.ndarray, layout: int, patch: int) -> np.ndarray:
    """Plane (h, w) -> matrix: itself, or one row per p x p patch (edge-padded, raster order)."""
    if layout != LAYOUT_PATCH:
        return plane
    h, w = plane.shape
    gh, gw = -(-h // patch), -(-w // patch)
    if (gh * patch, gw * patch) != (h, w):
        plane = np.pad(plane, ((0, gh * patch - h), (0, gw * patch - w)), mode="edge")
    blocks = plane.reshape(gh, patch, gw, patch).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(blocks).reshape(gh * gw, patch * patch)


def from_matrix(matrix: np.ndarray, plane: Plane) -> np.ndarray:
    """Inverse of to_matrix, cropping the padding."""
    if plane.layout != LAYOUT_PATCH:
        return matrix
    p = plane.patch
    gh, gw = plane.grid
    full = matrix.reshape(gh, gw, p, p).transpose(0, 2, 1, 3).reshape(gh * p, gw * p)
    return np.ascontiguousarray(full[:plane.height, :plane.width])
