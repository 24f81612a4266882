"""Array chunks as .svdi images: the convention the numcodecs and zarr codecs share.

A chunk of shape (..., h, w) is a stack of 2-D slices; it is coded as ONE image of
prod(...) * h rows and w columns, the slices one below the other in C order (a reshape, no
copy), so a chunk is always a single valid .svdi file (svdi-info reads it) and pays the fixed
header cost once. With `channels_last`, the last axis holds 1..255 channels: (..., h, w, c) is
coded as an image (prod(...) * h, w, c) (8-bit RGB and RGBA then go through Y'CbCr, as
images do; more than 4 channels make a version 2 file). Sample types: those the format
stores, uint8, uint16, float32, and (version 2) int8, int16, int32, uint32, float64, in either
byte order; any other (float16, complex, bool) raises SvdiError naming them: a codec must give
back the array's own type.

Stacked slices share the plain layout's V (the columns) and the patch layouts' patch grid:
slices whose height is a multiple of 8 keep every patch inside one slice.

A codec that hands back bytes (numcodecs, read by zarr format 2 as the chunk's memory in the
array's own byte order and memory order) must give back a chunk's own layout: a chunk in
column-major (Fortran) order or of big-endian samples is coded by its values as any other, and
its file records its layout in an iTXt chunk (LAYOUT_KEYWORD, spec §1.1: ancillary, the pixels
are the same without it), which `decode_chunk` restores.
"""

from __future__ import annotations

import io
import math
import re
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .decoder import decode
from .encoder import encode, parse_layout
from .errors import SvdiError
from .format import MAX_CHANNELS, MAX_DIMENSION, SAMPLE_CODES, read_headers, read_prefix

#: The iTXt keyword of a chunk's memory layout where it is not C order of little-endian
#: samples: words "order=F", "shape=4x128x128" (with order=F: the chunk's shape, which the
#: stacked image does not keep) and "byteorder=big" (a reader also takes "byteorder=little").
LAYOUT_KEYWORD = "svdcodec chunk layout"


def supported_dtype(dtype: np.dtype) -> np.dtype:
    """The native-order sample type for `dtype`, or SvdiError naming the supported ones."""
    native = np.dtype(dtype).newbyteorder("=")
    if native not in SAMPLE_CODES:
        names = ", ".join(str(t) for t in SAMPLE_CODES)
        raise SvdiError(f"the svdi codec stores {names}; not {np.dtype(dtype)}")
    return native


def image_shape(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    """The .svdi image shape a chunk of `shape` is coded as (see the module's docstring)."""
    need = 3 if channels_last else 2
    if len(shape) < need:
        axes = "(..., h, w, c)" if channels_last else "(..., h, w)"
        raise SvdiError(f"the svdi codec codes chunks of shape {axes}; got {shape}")
    if 0 in shape:
        raise SvdiError(f"empty chunk {shape}")
    if channels_last:
        *stack, h, w, c = shape
        if not 1 <= c <= MAX_CHANNELS:
            raise SvdiError(f"channels_last: the last axis must hold 1..{MAX_CHANNELS} "
                            f"channels, got {c}")
    else:
        *stack, h, w = shape
    height = int(np.prod(stack, dtype=np.int64)) * h
    if height > MAX_DIMENSION or w > MAX_DIMENSION:
        raise SvdiError(f"a chunk of shape {shape} stacks to an image of {height} x {w}; the "
                        f"format allows at most {MAX_DIMENSION} in either direction")
    return (height, w, c) if channels_last else (height, w)


@dataclass(frozen=True)
class ChunkOptions:
    """The encoder options of a codec (see svdcodec.encode)."""

    quality: float = 75
    layout: str = "auto"
    rank: int | None = None
    energy: float | None = None
    channels_last: bool = False
    max_error: float | None = None  # every sample within it (format version 2); 0: lossless

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not 1 <= float(self.quality) <= 100:
            raise SvdiError(f"quality must be within 1..100, got {self.quality!r}")
        if self.layout != "auto":
            parse_layout(self.layout)  # raises for an unknown layout
        if self.rank is not None and (isinstance(self.rank, bool) or
                                      not isinstance(self.rank, (int, np.integer)) or
                                      self.rank < 0):
            raise SvdiError(f"rank must be a non-negative integer, got {self.rank!r}")
        if self.energy is not None and not 0 < float(self.energy) <= 1:
            raise SvdiError(f"energy must be within (0, 1], got {self.energy!r}")
        if self.max_error is not None and (isinstance(self.max_error, bool) or not isinstance(
                self.max_error, (int, float, np.number)) or not 0 <= float(self.max_error)
                < float("inf")):
            raise SvdiError(f"max_error must be a finite number >= 0, got {self.max_error!r}")

    def config(self) -> dict[str, Any]:
        """The options as JSON values, unset ones left out."""
        out: dict[str, Any] = {"quality": self.quality, "layout": self.layout}
        if self.rank is not None:
            out["rank"] = int(self.rank)
        if self.energy is not None:
            out["energy"] = float(self.energy)
        if self.channels_last:
            out["channels_last"] = True
        if self.max_error is not None:
            out["max_error"] = float(self.max_error)
        return out


def encode_chunk(chunk: Any, options: ChunkOptions, keep_layout: bool = False) -> bytes:
    """One chunk as .svdi bytes. keep_layout (a codec of bytes): its memory layout recorded
    where it is not C order of little-endian samples (`memory_layout`)."""
    array = np.asarray(chunk)
    dtype = supported_dtype(array.dtype)
    image = np.ascontiguousarray(array, dtype=dtype).reshape(
        image_shape(array.shape, options.channels_last))
    layout = memory_layout(array) if keep_layout else None
    try:
        return encode(image, options.quality, rank=options.rank, energy=options.energy,
                      layout=options.layout, max_error=options.max_error,
                      text=None if layout is None else {LAYOUT_KEYWORD: layout})
    except SvdiError as exc:
        if dtype.kind == "f" and not np.isfinite(image).all():
            raise SvdiError(f"{exc} (zarr fills the parts of a chunk outside the array, and "
                            "those not written yet, with the array's fill_value: give the "
                            "array a finite one, such as 0)") from exc
        raise


#: Longest LAYOUT_KEYWORD text read, and most axes of its shape (numpy's own limit is 64).
LAYOUT_TEXT_LIMIT, LAYOUT_AXES = 400, 32


def memory_layout(array: np.ndarray) -> str | None:
    """LAYOUT_KEYWORD's text for the array, or None for C order in little-endian samples (an
    array both C- and F-contiguous, such as one row, counts as C order). Big-endian samples are
    recorded whatever the machine, so that a store moves between machines of either order."""
    words = []
    if column_major(array):
        words += ["order=F", "shape=" + "x".join(str(n) for n in array.shape)]
    if big_endian(array.dtype):
        words.append("byteorder=big")
    return " ".join(words) or None


def column_major(array: np.ndarray) -> bool:
    """Whether the array's memory is in column-major (Fortran) order and not also in C order
    (one row or one column is both)."""
    return bool(array.flags.f_contiguous and not array.flags.c_contiguous)


def big_endian(dtype: np.dtype) -> bool:
    """Whether samples of `dtype` are big-endian (this machine's order or not)."""
    return dtype.itemsize > 1 and (dtype.byteorder == ">" or (
        dtype.byteorder == "=" and sys.byteorder == "big"))


def with_layout(pixels: np.ndarray, text: str | None) -> np.ndarray:
    """The decoded stacked image in the layout LAYOUT_KEYWORD's `text` records (None: C order,
    little-endian): the chunk's shape in column-major order, its samples in the recorded byte
    order. A text that is not one `memory_layout` writes is refused."""
    words = {} if text is None else dict(word.partition("=")[::2] for word in
                                         text[:LAYOUT_TEXT_LIMIT + 1].split())
    unreadable = SvdiError(f"unreadable chunk layout {(text or '')[:80]!r}")
    if text is not None and (len(text) > LAYOUT_TEXT_LIMIT or set(words) - {
            "order", "shape", "byteorder"} or words.get("order", "F") != "F" or words.get(
            "byteorder", "big") not in ("big", "little") or ("order" in words) != (
            "shape" in words)):
        raise unreadable
    big = words.get("byteorder", "little") == "big"
    if pixels.dtype.itemsize > 1 and big_endian(pixels.dtype) != big:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">" if big else "<"))
    if "order" in words:
        sides = words["shape"].split("x")
        if len(sides) > LAYOUT_AXES or not all(re.fullmatch(r"[1-9][0-9]{0,9}", n)
                                               for n in sides):
            raise unreadable
        shape = tuple(int(n) for n in sides)
        if any(n > pixels.size for n in shape) or math.prod(shape) != pixels.size:
            raise SvdiError(f"chunk layout {text[:80]!r} does not hold the stored "
                            f"{' x '.join(str(n) for n in pixels.shape)} samples")
        pixels = np.asfortranarray(pixels.reshape(shape))
    return pixels


def decode_chunk(data: bytes, shape: tuple[int, ...] | None = None,
                 dtype: np.dtype | None = None, channels_last: bool = False,
                 order: str = "C") -> np.ndarray:
    """.svdi bytes back to an array: of `shape` and `dtype` when they are given, checked against
    the file's header before any factor is decompressed, in memory `order` ("C" or "F");
    else the stacked image (2-D, or 3-D with channels), with decode's default pixel limit, or
    the chunk in the layout its file records (`LAYOUT_KEYWORD`)."""
    data = bytes(data)
    if shape is None:
        layout = read_prefix(io.BytesIO(data))[2].text.get(LAYOUT_KEYWORD)
        return with_layout(decode(data), layout)
    want = image_shape(tuple(shape), channels_last)
    header, _ = read_headers(io.BytesIO(data))
    got = (header.height, header.width) + ((header.channels,) if channels_last else ())
    if got != want or (not channels_last and header.channels != 1):
        raise SvdiError(f"stored image {header.height} x {header.width} x {header.channels} "
                        f"does not hold a chunk of shape {tuple(shape)}")
    if dtype is not None and header.dtype != supported_dtype(dtype):
        raise SvdiError(f"stored samples are {header.dtype}, the chunk's are {np.dtype(dtype)}")
    pixels = decode(data, max_pixels=header.counted_pixels)
    out = pixels.reshape(shape)
    out = out if dtype is None else out.astype(np.dtype(dtype), copy=False)
    return np.asfortranarray(out) if order == "F" else out
