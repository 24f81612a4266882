"""The encoder's planes, computed band by band from the pixels (`PlaneSource`)."""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Collection
from functools import partial
from types import ModuleType

import numpy as np

from ..codec.colour import (
    YCC_UNIT,
    YCC_WEIGHTS,
    bias_table,
    corrected,
    grid_bands,
    mean_bias,
    needs_float64,
    on_decoder_grid,
    plain_ycc,
    wide_ycc_plane,
)
from ..codec.layout import patch_rows
from ..codec.resample import least_squares_half
from ..format import COLOUR_NONE, COLOUR_YCBCR, SAMPLE_CODES, WRITTEN_VERSION, Header
from ..modes import ImageRows, Pixels
from ..runtime import kernels
from ..runtime.scratch import ThreadBuffers

#: Sample types the compiled kernels read (the others are converted by numpy).
COMPILED = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: The name of a band's patches in a `ThreadBuffers` (`PlaneSource.patches`).
PATCHES = "encoder patches"


#: log2 of the largest power-of-two scale of float64 samples: HEAD allows scale <= max / 255.
TOP_FLOAT64_SCALE_EXP = math.floor(math.log2(float(np.finfo(np.float64).max) / 255.0))


def image_header(pixels: Pixels, subsample: bool, apart: bool = False) -> Header:
    """The HEAD record of an image (h, w, c): Y'CbCr for 8- and 16-bit RGB(A) (16-bit: format
    version 3) unless `apart` (each channel its own plane, `colours_apart`), chroma halved if
    asked; sample types other than uint8 scaled so that their largest magnitude is 255 plane
    units (16-bit Y'CbCr too: Y' then spans 0..255 as for 8 bits, so that quality means the
    same)."""
    h, w, c = pixels.shape
    dtype = pixels.dtype
    ycc = dtype in (np.uint8, np.uint16) and c in (3, 4) and not apart
    colour = COLOUR_YCBCR if ycc else COLOUR_NONE
    scale = 1.0
    if dtype != np.uint8:
        assert isinstance(pixels, np.ndarray)  # ImageRows hold 8-bit samples
        # max |x| of every channel: a Python int for integers (abs(int8 -128) wraps in numpy)
        peak = (float(max(abs(int(pixels.min())), abs(int(pixels.max()))))
                if dtype.kind in "iu" else float(np.max(np.abs(pixels)))) if pixels.size else 0.0
        scale = peak / 255.0 if peak > 0 else 1.0
        if dtype == np.float64 and peak > 0:
            # a power of two: every decoded sample fl64(p * scale) is then a binary32 plane
            # value scaled exactly, so that data on a grid (or float32 values) can be coded
            # losslessly by a 31-bit residual
            # (peak / 255 underflows to 0 for the smallest subnormal peaks: the least scale)
            # (at most the largest power of two the format allows, HEAD's max / 255: peaks
            # near the largest float64 then take planes a little above 255)
            scale = math.ldexp(1.0, min(math.ceil(math.log2(max(scale, math.ldexp(1.0, -1074)))),
                                        TOP_FLOAT64_SCALE_EXP))
    # Every file is version 5: the compact container (spec §4.2) holds versions 2-4's features
    return Header(w, h, SAMPLE_CODES[dtype], c, colour,
                  int(subsample and colour == COLOUR_YCBCR), scale, WRITTEN_VERSION)


def wide_colour(header: Header, i: int) -> bool:
    """Whether plane i is Y', Cb or Cr of 16-bit samples (version 3), computed in float64."""
    return header.colour == COLOUR_YCBCR and header.dtype == np.uint16 and i < 3


def divides_in_float64(pixels: Pixels, header: Header) -> bool:
    """Whether planes are computed as fl32(fl64(sample) / scale): float64 and 32-bit integer
    samples (float32 would round them before the division), and float32 scales whose inverse
    overflows float32."""
    return pixels.dtype.itemsize > 2 and pixels.dtype != np.float32 \
        or needs_float64(header.scale)


class PlaneSource:
    """The planes of `codec.colour.to_planes`, computed band by band from the pixels.

    Encoding passes over the planes more than once (Gram matrix, then projection at each step);
    recomputing a band's colour conversion costs a few passes over cache-resident rows, while
    storing float32 planes would cost 4 bytes per sample per plane (4/3 of the raw size for Y
    alone). Only subsampled chroma is kept (`keep`): the least-squares inverse of the
    decoder's upsampling, not `to_planes`' 2x2 mean. Full-size planes equal `to_planes`'
    exactly; with the compiled kernels loaded, `patches` converts, pads and transposes a band
    in one pass, to the same bits. Every pass reads the pixels a band of rows at a time
    (`self.pixels[y0:y1]`): a view of an array, or the rows of a Pillow image (`ImageRows`).
    """

    def __init__(self, pixels: Pixels, header: Header, centre: bool = False,
                 uncentred: Collection[int] = ()) -> None:
        self.pixels, self.header = pixels, header
        # ImageRows bands are new C-order arrays; an array's row bands are C-order if it is
        self._c_order = isinstance(pixels, ImageRows) or pixels.flags.c_contiguous
        h, w, c = pixels.shape
        self.shapes = [header.plane_shape(i) for i in range(c)]
        self._halves = {i for i in range(c) if self.shapes[i] != (h, w)}
        self._kept: dict[int, np.ndarray] = {}
        # one lock per plane: Cb and Cr are prepared concurrently; and one for all planes:
        # they are halved one after the other, each halving on every thread (two at once
        # would only share the same cores)
        self._keeping = {i: threading.Lock() for i in range(c)}
        self._halving = threading.Lock()
        #: centre: each plane's column means (float32), subtracted from its rows (MEAN chunks),
        #: but `uncentred`'s (a channel with no layer: its zero plane stays rank 0 and without
        #: a MEAN chunk, spec §5.3)
        self.means = {i: self._column_means(i) for i in range(c)
                      if i not in uncentred} if centre else {}

    def _column_means(self, i: int) -> np.ndarray:
        """Plane i's column means, summed in binary64 band by band, rounded to float32."""
        h, w = self.shapes[i]
        total = np.zeros(w, dtype=np.float64)
        per = max(1, (1 << 18) // w)
        for y0 in range(0, h, per):
            total += self._plane_rows(i, y0, min(y0 + per, h)).sum(axis=0, dtype=np.float64)
        return (total / h).astype(np.float32)

    def _compiled(self, i: int) -> ModuleType | None:
        """The kernels, if loaded, the pixels are in the C order they read and plane i is a
        float32 sum of them (16-bit Y'CbCr is a float64 one: numpy's)."""
        return (kernels.get() if self._c_order and self.pixels.dtype in COMPILED
                and not wide_colour(self.header, i) else None)

    def patches(self, i: int, y0: int, y1: int, side: int,
                scratch: ThreadBuffers | None = None) -> np.ndarray:
        """`patch_rows(self.rows(i, y0, y1), side)`; in `scratch`'s PATCHES array of this
        thread where given and the kernels make them."""
        assert i not in self.means, "centred planes are coded in the plain layout"
        compiled = kernels.get() if i in self._kept else (
            self._compiled(i) if i not in self._halves
            and not divides_in_float64(self.pixels, self.header) else None)
        if compiled is None:
            return patch_rows(self.rows(i, y0, y1), side)
        if i in self._kept:  # one float32 channel, times 1
            kept = self._kept[i]
            out = patch_array(-(-(y1 - y0) // side) * -(-kept.shape[1] // side), side, scratch)
            compiled.patch_plane(kept[:, :, None], y0, y1, np.zeros(1, np.intp),
                                 np.ones(1, np.float32), np.float32(1.0), side, out)
            return out
        return compiled_patches(compiled, self.pixels[y0:y1], self.header, i, side,
                                self.on_decoder_grid, scratch)

    def full_rows(self, i: int, y0: int, y1: int, table: bool | None = None) -> np.ndarray:
        """Rows y0..y1 of full-size plane i (before halving), float32: `full_rows`, by the
        compiled kernel if it reads these pixels. `table`: 8-bit Y'CbCr corrected by the
        decoder's bias table, or its mean (default: as `on_decoder_grid` says)."""
        table = self.on_decoder_grid if table is None else table
        return self._full_rows_of(self.pixels[y0:y1], i, table)

    def _full_rows_of(self, rows: np.ndarray, i: int, table: bool) -> np.ndarray:
        """`full_rows` of these rows of the pixels (a band, or bands stacked: each row of a
        plane is computed from its own row of pixels alone)."""
        compiled = self._compiled(i)
        if compiled is None or divides_in_float64(self.pixels, self.header):
            return full_rows(rows, self.header, i, table)
        out = compiled_patches(compiled, rows, self.header, i, 1, table)
        return out.reshape(rows.shape[0], rows.shape[1])

    @functools.cached_property
    def on_decoder_grid(self) -> bool:
        """Whether the image may be one svdi decoded (`codec.colour.on_decoder_grid` of Y'
        on a few bands of rows, in the units the decoder rounded it to: 8-bit corrected by
        the bias table, 16-bit times the scale; other images: true). Then 8-bit Y'CbCr planes
        take the table's correction, not its mean, and the encoder fits a basis to the
        quantized coefficients (`encoder.plane.fitted_candidate`): only such an image can
        have its patches on svdi's lattice; elsewhere the fit costs time and is not kept."""
        if ycc_8bit(self.header, 0):
            unit = 1.0
        elif wide_colour(self.header, 0):
            unit = self.header.scale
        else:
            return True
        # the bands' pixels stacked, then one pass (the planes' rows, in the bands' order)
        rows = np.concatenate([self.pixels[y0:y1] for y0, y1 in grid_bands(self.pixels.shape[0])])
        luma = self._full_rows_of(rows, 0, True).ravel()
        return on_decoder_grid(luma * unit if unit != 1.0 else luma)

    def keep(self, i: int, bands: list[tuple[int, int]] | None = None) -> None:
        """Compute subsampled plane i once and keep it (a quarter of the size: 2/3 of the raw
        bytes for both chroma planes): it is the least-squares inverse of the decoder's
        upsampling (`codec.resample.least_squares_half`), which needs the whole plane at once
        (its normal equations are solved down every column): one plane at a time, on every
        thread. `bands`: unused, the plane is computed
        in bands of its own."""
        with self._keeping[i]:  # planes may be prepared concurrently
            if i in self._kept:
                return
            with self._halving:
                h, w = self.pixels.shape[:2]
                # The row source is a function of the pixels, not a method: a bound method
                # would make a reference cycle.
                self._kept[i] = least_squares_half(
                    partial(PlaneSource.full_rows, self, i), (h, w), *self.shapes[i])

    def release(self, planes: list[int]) -> None:
        """Drop these planes if kept (they are recomputed if asked for again)."""
        for i in planes:
            self._kept.pop(i, None)

    def rows(self, i: int, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of plane i, float32 (y1 - y0, plane width), less the column means if
        the plane is centred."""
        rows = self._plane_rows(i, y0, y1)
        if i in self.means:
            return rows - self.means[i]
        return rows

    def _plane_rows(self, i: int, y0: int, y1: int) -> np.ndarray:
        """Rows y0..y1 of plane i as the colour transform makes them."""
        if i in self._kept:
            return self._kept[i][y0:y1]
        if i in self._halves:  # computed whole (released planes again if asked for)
            self.keep(i)
            return self._kept[i][y0:y1]
        return full_rows(self.pixels[y0:y1], self.header, i, self.on_decoder_grid)


def patch_array(count: int, side: int, scratch: ThreadBuffers | None) -> np.ndarray:
    """An array for `count` patches of `side` x `side` float32 samples: this thread's
    PATCHES array of `scratch`, else a new one."""
    if scratch is None:
        return np.empty((count, side * side), dtype=np.float32)
    return scratch.get(PATCHES, count * side * side).reshape(count, side * side)


def compiled_patches(compiled: ModuleType, rows: np.ndarray, header: Header, i: int, side: int,
                     table: bool, scratch: ThreadBuffers | None = None) -> np.ndarray:
    """`patch_rows(full_rows(...), side)` of these rows of pixels by the compiled kernel (side
    1: the rows), in `scratch`'s PATCHES array of this thread where given."""
    channels, weights, unit = recipe(header, i)
    h, w = rows.shape[:2]
    out = patch_array(-(-h // side) * -(-w // side), side, scratch)
    if ycc_8bit(header, i) and table:
        compiled.patch_plane(rows, 0, h, channels, YCC_WEIGHTS.ravel(), np.float32(unit),
                             side, out, bias_table(), i)
    elif ycc_8bit(header, i):
        compiled.patch_plane(rows, 0, h, channels, weights, np.float32(unit), side, out,
                             offset=mean_bias()[i])
    else:
        compiled.patch_plane(rows, 0, h, channels, weights, np.float32(unit), side, out)
    return out


def ycc_8bit(header: Header, i: int) -> bool:
    """Whether plane i is Y', Cb or Cr of 8-bit samples, corrected by the decoder's bias."""
    return header.colour == COLOUR_YCBCR and header.dtype == np.uint8 and i < 3


def recipe(header: Header, i: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Plane i as (channels, weights, unit): the float32 sum of weight * sample, times unit."""
    if header.colour == COLOUR_YCBCR and i < 3:
        return np.arange(3), YCC_WEIGHTS[i], YCC_UNIT
    unit = 1.0 if header.colour == COLOUR_YCBCR and header.dtype == np.uint8 \
        else 1.0 / header.scale
    return np.array([i]), np.ones(1, dtype=np.float32), unit


def full_rows(px: np.ndarray, header: Header, i: int, table: bool = True) -> np.ndarray:
    """Full-size plane i of these rows of pixels, float32 (8-bit Y'CbCr corrected by the
    decoder's bias table, or less its mean: `codec.colour.corrected`)."""
    if wide_colour(header, i):
        return wide_ycc_plane(px, i, header.scale)
    if divides_in_float64(px, header):
        return (px[..., i].astype(np.float64) / header.scale).astype(np.float32)
    channels, _, unit = recipe(header, i)
    if channels.size == 3:
        return corrected(plain_ycc(px), i, table)
    else:
        out = px[..., i].astype(np.float32)
    out *= np.float32(unit)
    return out
