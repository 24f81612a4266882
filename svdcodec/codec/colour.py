"""Colour: image samples <-> planes in "plane units" (spec §5 step 5).

Planes are float32 arrays on an 8-bit scale. 8-bit RGB(A) goes through JPEG's full-range
Y'CbCr with chroma centred on zero, optionally with both chroma planes halved; other images are
divided by the header's sample scale. The forward transform is a fixed-point matrix
(`YCC_WEIGHTS`), corrected for the rounding of the decoder's inverse (`unbiased`); chroma is
halved by the least-squares inverse of the decoder's doubling (`resample.least_squares_half`);
the inverse transform and chroma doubling are Pillow's, so that decoders can use Pillow's C code.
The encoder's choices make a decoded image encode again to nearly itself (issue #15).
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from .resample import least_squares_half

# JPEG (JFIF) full-range Y'CbCr, chroma centred on zero, as integer weights in units of
# YCC_UNIT (each row of Y rounds 0.299, 0.587, 0.114 etc. to 1/65536, the chroma rows sum to 0).
# Why fixed point: every product and partial sum of 8-bit samples is then an integer below 2^24,
# which float32 holds exactly, so BLAS, numpy and the compiled kernels give the same bits in any
# order of summation (the error against the real coefficients is below 0.003 of a level).
YCC_WEIGHTS = np.array([[19595, 38470, 7471],
                        [-11058, -21710, 32768],
                        [32768, -27439, -5329]], dtype=np.float32)
YCC_UNIT = 2.0 ** -16
#: Chroma planes are stored centred on zero; 8-bit chroma samples are centred on this.
CHROMA_OFFSET = 128.0


_FMAX = float(np.finfo(np.float32).max)


@functools.cache
def decoder_bias() -> np.ndarray:
    """(256, 256, 3) float32: what the decoder's Y'CbCr -> RGB conversion (Pillow's, spec
    §5) adds to each of Y', Cb, Cr, in plane units, beyond the exact inverse of YCC_WEIGHTS,
    by the 8-bit Cb and Cr it converts.

    Pillow adds to Y' a term per Cb and Cr from fixed-point tables, shifted right: rounded
    down, half a level on average in each of R, G and B (zero for neutral chroma). An encoder
    that ignored it would see every decoded image half a level darker than the one it coded,
    and a decoded image encoded again would darken again, generation after generation. The
    term does not depend on Y' (outside clipping): it is read at Y' = 0, or at 255 where it
    is negative.
    """
    cb, cr = (a.astype(np.uint8) for a in np.meshgrid(np.arange(256), np.arange(256),
                                                      indexing="ij"))

    def rgb(luma: int) -> np.ndarray:
        ycc = Image.merge("YCbCr", [Image.fromarray(np.full_like(cb, luma)),
                                    Image.fromarray(cb), Image.fromarray(cr)])
        return np.asarray(ycc.convert("RGB")).astype(np.float64)
    low, high = rgb(0), rgb(255)
    term = np.where(low > 0, low, high - 255.0)
    forward = YCC_WEIGHTS.astype(np.float64) * YCC_UNIT
    exact = np.stack([cb - CHROMA_OFFSET, cr - CHROMA_OFFSET], axis=-1) \
        @ np.linalg.inv(forward)[:, 1:].T
    return ((term - exact) @ forward.T).astype(np.float32)


def unbiased(planes: np.ndarray) -> np.ndarray:
    """Y'CbCr planes (..., 3) float32 less `decoder_bias`, interpolated bilinearly between
    the 8-bit Cb and Cr around theirs, in place: decoded, they come back as the pixels they
    were computed from, up to rounding, instead of darker. At 8-bit chroma (a decoded image)
    the correction is the decoder's exactly; between, it varies continuously (near-neutral
    chroma of a photo would otherwise switch the correction on and off from pixel to pixel, a
    texture in Y' that costs bits)."""
    chroma = planes[..., 1:3] + np.float32(CHROMA_OFFSET)
    np.clip(chroma, 0, 255, out=chroma)
    low = np.minimum(chroma.astype(np.intp), 254)
    frac = chroma - low
    table = decoder_bias().reshape(-1, 3)
    base = low[..., 0] * 256 + low[..., 1]
    fb, fr = frac[..., 0:1], frac[..., 1:2]
    for offset, weight in ((0, (1 - fb) * (1 - fr)), (1, (1 - fb) * fr), (256, fb * (1 - fr)),
                           (257, fb * fr)):
        planes -= np.take(table, base + offset, axis=0) * weight
    return planes


def needs_float64(scale: float) -> bool:
    """Scales of float images whose values are near float32's smallest normal numbers: 1/scale
    would overflow float32, so samples are divided (and multiplied back) in float64."""
    return scale < float(np.finfo(np.float32).tiny) * 2**10


def to_planes(pixels: np.ndarray, ycc: bool, subsample: bool, scale: float
              ) -> list[np.ndarray]:
    """Image array (h, w, c) -> list of float32 planes, colour-transformed and subsampled."""
    h, w, c = pixels.shape
    if ycc:
        flat = pixels[..., :3].reshape(-1, 3).astype(np.float32)
        planes_ycc = (flat @ YCC_WEIGHTS.T).reshape(h, w, 3)
        planes_ycc *= np.float32(YCC_UNIT)
        unbiased(planes_ycc)
        planes = [np.ascontiguousarray(planes_ycc[..., i]) for i in range(3)]
        if subsample:
            planes[1:3] = [least_squares_half(lambda lo, hi, p=p: p[lo:hi], (h, w),
                                              (h + 1) // 2, (w + 1) // 2) for p in planes[1:3]]
        planes += [pixels[..., i].astype(np.float32) for i in range(3, c)]
        return planes
    if needs_float64(scale) or (pixels.dtype.itemsize > 2 and pixels.dtype != np.float32):
        # float64 and 32-bit integers: float32 would round the samples before the division
        return [(pixels[..., i].astype(np.float64) / scale).astype(np.float32)
                for i in range(c)]
    inverse = np.float32(1.0 / scale)
    return [pixels[..., i].astype(np.float32) * inverse for i in range(c)]


def to_uint8(plane: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """A float32 plane rounded to 8-bit samples: + offset + 0.5, clip to 0..255, truncate."""
    out = plane + np.float32(offset + 0.5) if offset else plane + np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def from_planes(planes: list[np.ndarray], height: int, width: int, dtype: np.dtype, ycc: bool,
                subsample: bool, scale: float) -> np.ndarray:
    """Decoded float32 planes -> image array (h, w, c) of the sample type `dtype`."""
    h, w, channels = height, width, len(planes)
    if ycc:
        chroma = planes[1:3]
        if subsample:
            chroma = [np.asarray(Image.fromarray(p, "F").resize((w, h), Image.Resampling.BILINEAR))
                      for p in chroma]
        ycc_images = [Image.fromarray(to_uint8(planes[0])),
                      *(Image.fromarray(to_uint8(p, CHROMA_OFFSET)) for p in chroma)]
        rgb = np.asarray(Image.merge("YCbCr", ycc_images).convert("RGB"))
        if channels == 3:
            return rgb
        out = np.empty((h, w, channels), dtype=np.uint8)
        out[..., :3] = rgb
        for i, p in enumerate(planes[3:], start=3):
            out[..., i] = to_uint8(p)
        return out
    out = np.empty((h, w, channels), dtype=dtype)
    for i, p in enumerate(planes):
        if dtype == np.float64:
            out[..., i] = p.astype(np.float64) * scale  # not finite: checked by the caller
        elif dtype.kind == "f":
            # As the band decoder (decoder.render.float_samples): extreme scales in float64,
            # saturated to float32's range; others in float32, where an overflow is an error.
            out[..., i] = (np.clip(p.astype(np.float64) * scale, -_FMAX, _FMAX)
                           if needs_float64(scale) or scale > 2.0 ** 64
                           else p * np.float32(scale))
        elif dtype == np.uint8:
            out[..., i] = np.clip(p + np.float32(0.5), 0, 255)
        else:
            out[..., i] = integer_samples(p, scale, dtype)
    return out


def integer_samples(plane: np.ndarray, scale: float, dtype: np.dtype) -> np.ndarray:
    """A float32 plane as samples of an integer type other than uint8 (spec §5.2): round half
    up and clamp, floor(clamp(fl64(fl64(p * scale) + 1/2), min, max)), in binary64."""
    info = np.iinfo(dtype)
    v = plane.astype(np.float64) * scale
    v += 0.5
    np.clip(v, float(info.min), float(info.max), out=v)
    if info.min < 0:  # truncation is the floor only for the unsigned types' non-negative values
        np.floor(v, out=v)
    return v.astype(dtype)
