"""Colour: image samples <-> planes in "plane units" (spec §5 step 5).

Planes are float32 arrays on an 8-bit scale. 8-bit RGB(A) goes through JPEG's full-range
Y'CbCr with chroma centred on zero, optionally with both chroma planes halved; 16-bit RGB(A)
(format version 3) through the same transform divided by the header's sample scale; other
images are divided by the header's sample scale. The forward transform is a fixed-point matrix
(`YCC_WEIGHTS`), for 8 bits corrected for the rounding of the decoder's inverse (`unbiased`);
chroma is halved by the least-squares inverse of the decoder's doubling
(`resample.least_squares_half`); the inverse transform (`ycc_to_rgb`, spec §5) and chroma
doubling are Pillow's arithmetic, written out here (16-bit: the same doubling, then the integer
inverse of `wide_ycc_to_rgb`, which rounds to nearest and needs no correction). The encoder's choices make a
decoded image encode again to nearly itself (issue #15).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

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

# 8-bit Y'CbCr -> RGB (spec §5): JFIF's coefficients of Cr (R), Cb and Cr (G) and Cb (B) in 6-bit
# fixed point, as Pillow's conversion tables hold them: t_c(x) = trunc(fl32(fl32(64 c) x) + 1/2)
# in binary32 for x = Cb - 128 or Cr - 128, then R = Y' + (t_R >> 6), G = Y' + ((t_GB + t_GR)
# >> 6), B = Y' + (t_B >> 6), clamped. Written out rather than asked of Pillow: the decoders and
# the encoder's correction follow the spec whatever Pillow is installed (tests/test_kernels.py
# checks that Pillow's own conversion gives the same samples).
JFIF_COEFFICIENTS = (1.402, -0.34414, -0.71414, 1.772)
#: The binary32 multipliers fl32(64 c) of the conversion's terms, as the compiled kernels take
#: them (their colour argument `k`).
YCC_MULTIPLIERS = np.array(JFIF_COEFFICIENTS, dtype=np.float32) * np.float32(64)
YCC_MULTIPLIERS.flags.writeable = False
#: Pixels `ycc_to_rgb` converts at a time: its int16 terms and intp indices take about 20
#: bytes a pixel, kept small beside the image (and in cache).
YCC_PIXELS_AT_ONCE = 1 << 16


@functools.cache
def ycc_terms() -> np.ndarray:
    """What the 8-bit Y'CbCr -> RGB conversion (spec §5) adds to Y' in each of R, G and B, by
    the 8-bit Cb and Cr: (256, 256, 3) int16 [Cb, Cr, channel], read-only (before the clamp:
    every term is within -227..225)."""
    x = np.arange(-128, 128, dtype=np.float32)
    t = [np.trunc(k * x + np.float32(0.5)).astype(np.int32) for k in YCC_MULTIPLIERS]
    table = np.empty((256, 256, 3), dtype=np.int16)
    table[..., 0] = (t[0] >> 6)[None, :]  # by Cr
    table[..., 1] = (t[1][:, None] + t[2][None, :]) >> 6
    table[..., 2] = (t[3] >> 6)[:, None]  # by Cb
    table.flags.writeable = False
    return table


@functools.cache
def _ycc_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`ycc_terms` as `ycc_to_rgb` gathers them: R's by Cr, G's by Cb * 256 + Cr, B's by Cb."""
    terms = ycc_terms()
    return (terms[0, :, 0].copy(), terms[..., 1].reshape(-1).copy(), terms[:, 0, 2].copy())


def ycc_to_rgb(samples: np.ndarray) -> np.ndarray:
    """8-bit Y'CbCr samples (..., 3) uint8 -> RGB (..., 3) uint8, spec §5's conversion: Y' plus
    the terms of its Cb and Cr (`ycc_terms`), clamped; a piece of YCC_PIXELS_AT_ONCE pixels at
    a time, each channel gathered from its own table (R's and B's of 256 terms, G's of 65,536)."""
    if samples.dtype != np.uint8 or samples.shape[-1:] != (3,):
        raise ValueError(f"expected 8-bit Y'CbCr samples (..., 3), got {samples.dtype} "
                         f"{samples.shape}")
    flat = samples.reshape(-1, 3)
    out = np.empty_like(flat)
    red, green, blue = _ycc_tables()
    for lo in range(0, flat.shape[0], YCC_PIXELS_AT_ONCE):
        part, rgb = flat[lo:lo + YCC_PIXELS_AT_ONCE], out[lo:lo + YCC_PIXELS_AT_ONCE]
        luma = part[:, 0].astype(np.int16)  # Y' + a term stays within -227..480
        cb, cr = part[:, 1].astype(np.intp), part[:, 2].astype(np.intp)
        for channel, table, index in ((0, red, cr), (2, blue, cb)):
            value = table[index]
            value += luma
            rgb[:, channel] = np.clip(value, 0, 255, out=value)
        cb <<= 8
        cb |= cr
        value = green[cb]
        value += luma
        rgb[:, 1] = np.clip(value, 0, 255, out=value)
    return out.reshape(samples.shape)

# Version 3: Y'CbCr of 16-bit samples (spec §5.2). Chroma samples are centred on 32768, and
# Y'CbCr -> RGB is in integers with 16 fractional bits: the inverse of YCC_WEIGHTS rounded to
# 2^-16 (R from Cr, G from Cb, G from Cr, B from Cb). JFIF's 1.402, 0.344136, 0.714136, 1.772
# would round to 91881, -22554, -46802, 116130; the inverse of the weights the encoder uses
# brings back more samples exactly (tests/test_colour16.py measures both).
CHROMA_OFFSET_16 = 32768
YCC16_INVERSE = (91882, -22553, -46801, 116130)
YCC16_SHIFT = 16


_FMAX = float(np.finfo(np.float32).max)
#: `needs_float64`'s bound (np.finfo costs a few microseconds a call, several per encode).
_FLOAT64_SCALES_BELOW = float(np.finfo(np.float32).tiny) * 2**10


#: Cb values per step of `decoder_bias` (a divisor of 256).
BIAS_CB_STEP = 32


@functools.cache
def decoder_bias() -> np.ndarray:
    """(256, 256, 3) float32: what the decoder's Y'CbCr -> RGB conversion (spec §5, Pillow's)
    adds to each of Y', Cb, Cr, in plane units, beyond the exact inverse of YCC_WEIGHTS,
    by the 8-bit Cb and Cr it converts.

    The conversion adds to Y' a term per Cb and Cr from fixed-point tables, shifted right:
    rounded down, half a level on average in each of R, G and B (zero for neutral chroma). An
    encoder that ignored it would see every decoded image half a level darker than the one it
    coded, and a decoded image encoded again would darken again, generation after generation.
    The term does not depend on Y' (outside clipping): `ycc_terms`.
    """
    term = ycc_terms()
    forward = YCC_WEIGHTS.astype(np.float64) * YCC_UNIT
    inverse = np.linalg.inv(forward)[:, 1:].T
    out = np.empty((256, 256, 3), dtype=np.float32)
    # A few Cb at a time: the same products (one per Cb, over every Cr) as on the whole table,
    # with float64 temporaries small enough to be reused instead of each being new pages.
    cr = np.arange(256.0) - CHROMA_OFFSET
    for lo in range(0, 256, BIAS_CB_STEP):
        cb = np.arange(lo, lo + BIAS_CB_STEP, dtype=np.float64) - CHROMA_OFFSET
        chroma = np.stack(np.broadcast_arrays(cb[:, None], cr[None, :]), axis=-1)
        out[lo:lo + BIAS_CB_STEP] = (term[lo:lo + BIAS_CB_STEP] - chroma @ inverse) @ forward.T
    return out


def unbiased(planes: np.ndarray, i: int) -> np.ndarray:
    """Plane i of the 8-bit Y'CbCr planes (..., 3) float32 less `decoder_bias`, interpolated
    bilinearly between the 8-bit Cb and Cr around the pixel's: decoded, the planes come back
    as the pixels they were computed from, up to rounding, instead of darker. At 8-bit chroma
    (a decoded image) the correction is the decoder's exactly; between, it varies continuously
    (near-neutral chroma of a photo would otherwise switch the correction on and off from pixel
    to pixel, a texture in Y' that costs bits). Every step in float32, in the order of the
    compiled kernel (`patch_plane` with a bias table), which gives the same bits."""
    chroma = planes[..., 1:3] + np.float32(CHROMA_OFFSET)
    np.clip(chroma, 0, 255, out=chroma)
    low = np.minimum(np.floor(chroma), np.float32(254))
    frac = chroma - low
    fb, fr = frac[..., 0], frac[..., 1]
    gb, gr = np.float32(1) - fb, np.float32(1) - fr
    base = low[..., 0].astype(np.intp) * 256 + low[..., 1].astype(np.intp)
    table = bias_table()[i]
    out = planes[..., i].copy()
    for offset, weight in ((0, gb * gr), (1, gb * fr), (256, fb * gr), (257, fb * fr)):
        out -= np.take(table, base + offset) * weight
    return out


@functools.cache
def bias_table() -> np.ndarray:
    """`decoder_bias` as the compiled kernel reads it: (3, 65536) float32, C order (each
    plane's table contiguous)."""
    return np.ascontiguousarray(decoder_bias().reshape(-1, 3).T)


@functools.cache
def mean_bias() -> np.ndarray:
    """`decoder_bias` averaged over all 8-bit Cb and Cr, per plane, float32 (3,): the
    correction of images that are not on the decoder's grid (`on_decoder_grid`), whose
    chroma falls anywhere between the table's integers. About -0.48 for Y' (Pillow's
    conversion rounds down), near 0 for Cb and Cr."""
    return decoder_bias().reshape(-1, 3).mean(axis=0, dtype=np.float64).astype(np.float32)


#: An 8-bit Y'CbCr image is taken to be one the decoder made if its Y' (less `unbiased`'s
#: correction) is this close to the integers the decoder rounded it to, as mean(cos(2 pi Y'))
#: over `grid_bands`: 0.87-0.91 for Kodak photos decoded by svdi (quality 30-95), 0.07-0.16
#: for the originals, 0.02-0.12 decoded from JPEG (another conversion).
DECODED_GRID = 0.5
#: How far from DECODED_GRID `on_decoder_grid`'s float32 estimate decides alone.
GRID_MARGIN = 1e-3
#: Rows per band of `grid_bands`, four bands spread over the image.
GRID_BAND_ROWS = 16


def grid_bands(height: int) -> list[tuple[int, int]]:
    """The bands of rows `on_decoder_grid` reads: four, spread over the image."""
    starts = sorted({min(max(height - GRID_BAND_ROWS, 0), (2 * k + 1) * height // 8)
                     for k in range(4)})
    return [(y, min(height, y + GRID_BAND_ROWS)) for y in starts]


def on_decoder_grid(luma: np.ndarray) -> bool:
    """Whether these Y' samples (in the units the decoder rounds to) lie on the integers:
    the image was decoded by svdi (or is a constant near-integer), so its planes take the
    decoder's exact correction and the encoder may fit its basis to them."""
    if luma.dtype == np.float32 and luma.size:
        # First in float32 on the distances to the nearest integers (exact differences, small
        # angles: the mean is within 1e-5 of binary64's), which settles every image but one
        # within GRID_MARGIN of the threshold; that one is measured in binary64.
        distance = luma - np.rint(luma)
        estimate = float(np.mean(np.cos(np.float32(2 * np.pi) * distance), dtype=np.float64))
        if abs(estimate - DECODED_GRID) > GRID_MARGIN:
            return estimate > DECODED_GRID
    return float(np.mean(np.cos(2 * np.pi * luma.astype(np.float64)))) >= DECODED_GRID


def row_slice(plane: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Rows lo..hi of a whole plane (a row source of `resample.least_squares_half`)."""
    return plane[lo:hi]


def plain_ycc(pixels: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 Y'CbCr of 8-bit RGB, uncorrected (exact integers times 2^-16)."""
    h, w = pixels.shape[:2]
    flat = pixels[..., :3].reshape(-1, 3).astype(np.float32)
    planes = (flat @ YCC_WEIGHTS.T).reshape(h, w, 3)
    planes *= np.float32(YCC_UNIT)
    return planes


def corrected(planes: np.ndarray, i: int, table: bool) -> np.ndarray:
    """Plane i of `plain_ycc` planes corrected for the decoder's bias: by the table
    (`unbiased`) for an image on the decoder's grid, else less the mean bias."""
    if table:
        return unbiased(planes, i)
    out = planes[..., i].copy()
    out -= mean_bias()[i]
    return out


def needs_float64(scale: float) -> bool:
    """Scales of float images whose values are near float32's smallest normal numbers: 1/scale
    would overflow float32, so samples are divided (and multiplied back) in float64."""
    return scale < _FLOAT64_SCALES_BELOW


def to_planes(pixels: np.ndarray, ycc: bool, subsample: bool, scale: float
              ) -> list[np.ndarray]:
    """Image array (h, w, c) -> list of float32 planes, colour-transformed and subsampled."""
    h, w, c = pixels.shape
    if ycc:
        planes = ycc_planes(pixels, scale)
        if subsample:
            planes[1:3] = [least_squares_half(functools.partial(row_slice, p), (h, w),
                                              (h + 1) // 2, (w + 1) // 2) for p in planes[1:3]]
        planes += [alpha_plane(pixels[..., i], scale) for i in range(3, c)]
        return planes
    if needs_float64(scale) or (pixels.dtype.itemsize > 2 and pixels.dtype != np.float32):
        # float64 and 32-bit integers: float32 would round the samples before the division
        return [(pixels[..., i].astype(np.float64) / scale).astype(np.float32)
                for i in range(c)]
    inverse = np.float32(1.0 / scale)
    return [pixels[..., i].astype(np.float32) * inverse for i in range(c)]


def ycc_planes(pixels: np.ndarray, scale: float) -> list[np.ndarray]:
    """The Y', Cb, Cr planes (full size, float32) of RGB(A) pixels (h, w, >= 3): 8-bit in
    float32, whose products and sums are exact integers; 16-bit (version 3) in float64, where
    they exceed 2^24, then divided by the header's scale and rounded once to float32."""
    if pixels.dtype == np.uint8:
        grid = on_decoder_grid(np.concatenate(
            [unbiased(plain_ycc(pixels[y0:y1]), 0).ravel() for y0, y1 in grid_bands(len(pixels))]))
        planes_ycc = plain_ycc(pixels)
        return [corrected(planes_ycc, i, grid) for i in range(3)]
    return [wide_ycc_plane(pixels, i, scale) for i in range(3)]


def wide_ycc_plane(pixels: np.ndarray, i: int, scale: float) -> np.ndarray:
    """Plane i (Y', Cb or Cr) of 16-bit RGB pixels (rows, w, >= 3): fl32(fl64(sum of weight x
    sample) * 2^-16 / scale), the sum an exact integer below 2^34."""
    weights = YCC_WEIGHTS[i].astype(np.float64)
    out = pixels[..., :3].astype(np.float64) @ weights
    out *= YCC_UNIT
    out /= scale
    return out.astype(np.float32)


def alpha_plane(alpha: np.ndarray, scale: float) -> np.ndarray:
    """Plane 3 of a colour-1 image: 8-bit alpha as it is (scale 1), 16-bit alpha divided by the
    header's scale as a colour-0 plane."""
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float32)
    return alpha.astype(np.float32) * np.float32(1.0 / scale)


def to_uint8(plane: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """A float32 plane rounded to 8-bit samples: + offset + 0.5, clip to 0..255, truncate."""
    out = plane + np.float32(offset + 0.5) if offset else plane + np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def from_planes(planes: list[np.ndarray], height: int, width: int, dtype: np.dtype, ycc: bool,
                subsample: bool, scale: float,
                deblock: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Decoded float32 planes -> image array (h, w, c) of the sample type `dtype`.

    deblock (version 4, 8-bit samples): applied in place to the (h, w, c) 8-bit samples (Y'CbCr
    before the conversion to RGB), spec §5.4."""
    h, w, channels = height, width, len(planes)
    if ycc and dtype == np.uint16:
        return from_wide_ycc(planes, h, w, subsample, scale)
    if ycc:
        chroma = planes[1:3]
        if subsample:
            chroma = [np.asarray(Image.fromarray(p, "F").resize((w, h), Image.Resampling.BILINEAR))
                      for p in chroma]
        samples = np.stack([to_uint8(planes[0]), *(to_uint8(p, CHROMA_OFFSET) for p in chroma),
                            *(to_uint8(p) for p in planes[3:])], axis=2)
        if deblock is not None:
            deblock(samples)
        rgb = ycc_to_rgb(samples[..., :3])
        if channels == 3:
            return rgb
        out = np.empty((h, w, channels), dtype=np.uint8)
        out[..., :3] = rgb
        out[..., 3:] = samples[..., 3:]
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
    if deblock is not None and dtype == np.uint8:
        deblock(out)
    return out


def integer_samples(plane: np.ndarray, scale: float, dtype: np.dtype, offset: int = 0
                    ) -> np.ndarray:
    """A float32 plane as samples of an integer type other than uint8 (spec §5.2): round half
    up and clamp, floor(clamp(fl64(fl64(p * scale) + offset + 1/2), min, max)), in binary64
    (offset: 32768 for the chroma of 16-bit Y'CbCr, version 3)."""
    info = np.iinfo(dtype)
    v = np.multiply(plane, scale, dtype=np.float64)  # widened as it multiplies: one pass
    v += offset + 0.5
    np.clip(v, float(info.min), float(info.max), out=v)
    if info.min < 0:  # truncation is the floor only for the unsigned types' non-negative values
        np.floor(v, out=v)
    return v.astype(dtype)


def from_wide_ycc(planes: list[np.ndarray], height: int, width: int, subsample: bool,
                  scale: float) -> np.ndarray:
    """Decoded float32 planes of a 16-bit colour-1 image (version 3) -> (h, w, 3 or 4) uint16:
    chroma upsampled as for 8 bits, Y', Cb + 32768, Cr + 32768 rounded to 16 bits
    (`integer_samples`), converted by `wide_ycc_to_rgb`; alpha a colour-0 plane."""
    chroma = planes[1:3]
    if subsample:
        chroma = [np.asarray(Image.fromarray(p, "F").resize((width, height),
                                                            Image.Resampling.BILINEAR))
                  for p in chroma]
    out = np.empty((height, width, len(planes)), dtype=np.uint16)
    wide = np.dtype(np.uint16)
    out[..., 0] = integer_samples(planes[0], scale, wide)
    out[..., 1] = integer_samples(chroma[0], scale, wide, CHROMA_OFFSET_16)
    out[..., 2] = integer_samples(chroma[1], scale, wide, CHROMA_OFFSET_16)
    wide_ycc_to_rgb(out)
    for i, p in enumerate(planes[3:], start=3):
        out[..., i] = integer_samples(p, scale, wide)
    return out


def wide_ycc_to_rgb(image: np.ndarray) -> None:
    """16-bit Y', Cb, Cr in channels 0-2 of `image` (rows, w, >= 3) -> R, G, B in place
    (spec §5.2, version 3): with x = C - 32768, R = Y' + floor((kR xr + 2^15) / 2^16),
    G = Y' + floor((kGb xb + kGr xr + 2^15) / 2^16), B = Y' + floor((kB xb + 2^15) / 2^16),
    clamped to 0..65535; int64 throughout (the products are below 2^33)."""
    k_r, k_gb, k_gr, k_b = YCC16_INVERSE
    half = 1 << (YCC16_SHIFT - 1)
    y = image[..., 0].astype(np.int64)
    xb = image[..., 1].astype(np.int64) - CHROMA_OFFSET_16
    xr = image[..., 2].astype(np.int64) - CHROMA_OFFSET_16
    for c, term in enumerate((k_r * xr + half, k_gb * xb + k_gr * xr + half, k_b * xb + half)):
        term >>= YCC16_SHIFT  # an arithmetic shift: the floor of the division
        term += y
        np.clip(term, 0, 65535, out=term)
        image[..., c] = term
