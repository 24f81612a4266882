"""The sample modes the codec stores, and turning user input (Pillow images, arrays) into them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from .errors import SvdiError
from .format import (
    MAX_CHANNELS,
    MAX_CHANNELS_V1,
    MAX_DIMENSION,
    SAMPLE_CODES,
    SAMPLE_TYPES_V1,
)

MODES = {  # Pillow mode -> (dtype, channels)
    "L": (np.uint8, 1), "LA": (np.uint8, 2), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
    "I;16": (np.uint16, 1), "F": (np.float32, 1),
}

#: (numpy dtype, channels) -> Pillow mode; every other combination is numpy-only.
PILLOW_MODES: dict[tuple[np.dtype, int], str] = {
    (np.dtype(dtype), channels): mode for mode, (dtype, channels) in MODES.items()
}


def image_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as an array in one of the stored modes, converting where needed."""
    mode = image.mode
    if mode in ("1", "I;16L", "I;16B", "I;16N"):
        image = image.convert("L" if mode == "1" else "I;16")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode == "I":
        arr = np.asarray(image)
        if arr.size and 0 <= int(arr.min()) and int(arr.max()) <= 65535:
            return arr.astype(np.uint16)
        return arr.astype(np.float32)
    elif mode not in MODES:
        image = image.convert("RGB")
    return raw_array(image)


def raw_array(image: Image.Image) -> np.ndarray:
    """The samples of an image in one of the stored modes, written piece by piece by Pillow's
    raw encoder into one array: np.asarray(image) would first build the whole image as bytes
    (twice the raw size at its peak) and keep that copy."""
    image.load()
    dtype, channels = MODES[image.mode]
    shape = (image.height, image.width) + ((channels,) if channels > 1 else ())
    out = np.empty(shape, dtype=np.dtype(dtype).newbyteorder("<"))
    if not out.size:
        return out
    flat = memoryview(out).cast("B")  # type: ignore[arg-type]  # numpy's stub lacks __buffer__
    encoder = Image._getencoder(image.mode, "raw", image.mode)  # as Image.tobytes does
    piece, at, status = max(1 << 16, image.width * 4), 0, 0
    try:
        encoder.setimage(image.im, (0, 0, *image.size))
        while not status:
            _, status, data = encoder.encode(piece)
            flat[at:at + len(data)] = data
            at += len(data)
    finally:
        encoder.cleanup()
    if status < 0 or at != len(flat):
        raise ValueError(f"cannot read the samples of a {image.mode} image (status {status})")
    return out if out.dtype.isnative else out.astype(out.dtype.newbyteorder("="))


def as_pixels(data: np.ndarray | Image.Image) -> np.ndarray:
    """Validate an encoder input and return it as (h, w, c) of a stored sample type: uint8,
    uint16, float32 (Pillow's modes), or, numpy arrays only, int8, int16, int32, uint32 and
    float64 with 1 to MAX_CHANNELS channels (format version 2, docs/arrays.md)."""
    arr = image_to_array(data) if isinstance(data, Image.Image) else np.asarray(data)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    elif arr.dtype == np.float16:
        raise SvdiError("float16 samples are not stored: convert them with .astype(np.float32), "
                        "which is exact (every float16 is a float32), and decode back with "
                        ".astype(np.float16)")
    elif arr.dtype.kind in "iuf" and not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in SAMPLE_CODES:
        raise SvdiError(f"unsupported sample type {arr.dtype}; use uint8, uint16, float32, int8, "
                        "int16, int32, uint32 or float64")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= MAX_CHANNELS:
        raise SvdiError(f"expected shape (h, w) or (h, w, 1..{MAX_CHANNELS}), got {arr.shape}")
    h, w = arr.shape[:2]
    if not (1 <= h <= MAX_DIMENSION and 1 <= w <= MAX_DIMENSION):
        raise SvdiError(f"image size {w}x{h} outside 1..{MAX_DIMENSION}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise SvdiError("float input contains NaN or infinity, which cannot be encoded")
    return arr


def needs_version_2(dtype: np.dtype, channels: int) -> bool:
    """Whether samples of this type and channel count need format version 2 (spec §2)."""
    return SAMPLE_CODES[np.dtype(dtype)] not in SAMPLE_TYPES_V1 or channels > MAX_CHANNELS_V1
