"""The encoder's restoration filters (format version 6, spec §5.6): per colour channel of an
8-bit image, the Wiener filter on the 7x7 diamond with 4 activity classes that brings the
decoded samples (after the deblocking filter) closest to the image, or none.

The design follows studies/restoration_study.py ("wiener dia7 act4"; docs/design-notes.md,
"Restoration filter after deblocking"): the file (factors and deblocking filters chosen) is
decoded to its 8-bit samples before the colour conversion; per channel the class bounds are the
activity's quartiles (rounded up: a class holds the activities >= its bound), the coefficients
of each class the least-squares fit of the symmetric differences to the error against the
image's own samples (its Y'CbCr for colour 1, at full size), quantized to 1/128 and clipped
to 7 bits. A channel keeps its filter only if the filtered channel, computed as every decoder
computes it, is closer to the image; the file takes the RSTR chunk (and becomes version 6)
only if the squared error saved repays its bytes at the encoder's rate-distortion weight.
Otherwise the file is returned as it came, byte for byte.

A separate module from `encoder.deblock` (the strengths are judged there) so that each can
change on its own: this one only reads the decoded samples of the finished layer.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..codec.restoration import (
    REACH,
    activity,
    bands,
    padded_rows,
    restore_channel,
    symmetric_differences,
)
from ..format import (
    COLOUR_YCBCR,
    RESTORATION_CLASSES,
    RESTORATION_COEFFICIENT_RANGE,
    RESTORATION_OFFSETS,
    Restoration,
    insert_restoration,
    unpack,
)
from ..runtime import kernels
from .deblock import target_channel
from .tuning import LAYOUT_LAMBDA

#: Samples of a channel the fit reads at most: larger channels are fitted on evenly spaced
#: bands of rows (the normal equations of 12 coefficients settle long before a photo's
#: millions of samples; every sample is still filtered to judge the fit).
FIT_SAMPLES = 1 << 22
#: A class is fitted only with at least this many samples per coefficient (else it keeps 0s).
MIN_SAMPLES_PER_TAP = 4
#: Coefficient scale: 7 fractional bits.
UNIT = 128


#: The largest activity: 9 samples' two Laplacians of at most 2 * 255 each.
MAX_ACTIVITY = 9 * 2 * 2 * 255


def channel_bounds(histogram: np.ndarray) -> tuple[int, ...]:
    """RESTORATION_CLASSES - 1 bounds at the activity's quartiles, rounded up to integers
    (u16), non-decreasing, from the count of each activity value.

    The quantiles are np.quantile's (linear interpolation between the order statistics at
    (n - 1) k / RESTORATION_CLASSES), in integers: with 4 classes that index and its fraction
    are multiples of 1/4 and the activities small integers, so np.quantile computes them
    exactly too; a histogram holds neither the fitted samples' activities nor their sort."""
    cumulative = np.cumsum(histogram)
    n = int(cumulative[-1])

    def order_statistic(i: int) -> int:
        return int(np.searchsorted(cumulative, i, side="right"))
    bounds = []
    for k in range(1, RESTORATION_CLASSES):
        below, part = divmod((n - 1) * k, RESTORATION_CLASSES)
        lo = order_statistic(below)
        hi = order_statistic(min(below + 1, n - 1))
        # the ceiling of lo + (hi - lo) * part / RESTORATION_CLASSES
        scaled = lo * RESTORATION_CLASSES + (hi - lo) * part
        bounds.append(min(-(-scaled // RESTORATION_CLASSES), 0xFFFF))
    return tuple(bounds)


def fitted_rows(height: int, width: int) -> list[tuple[int, int]]:
    """The bands of rows the fit reads: every band, or evenly spaced ones up to FIT_SAMPLES."""
    spans = bands(height, width)
    every = max(1, -(-height * width // FIT_SAMPLES))
    return spans[::every]


def quantized(c: np.ndarray) -> tuple[int, ...]:
    lo, hi = RESTORATION_COEFFICIENT_RANGE
    return tuple(int(v) for v in np.clip(np.round(c * UNIT), lo, hi))


#: Rows [y0, y1) of what a channel should be: float32, (y1 - y0, w).
GoalRows = Callable[[int, int], np.ndarray]


def target_bands(pixels: np.ndarray, colour: int, channel: int) -> GoalRows:
    """`target_channel` of the (h, w, c) pixels, a band of rows at a time: each value is one
    pixel's own products, so a band's rows are bit for bit the whole channel's, without the
    whole image's float32 copies (12 bytes a pixel for the Y'CbCr products, 4 for the goal)."""
    width = pixels.shape[1]

    def rows(y0: int, y1: int) -> np.ndarray:
        return target_channel(pixels[y0:y1], colour, channel).reshape(y1 - y0, width)
    return rows


def fit_channel(samples: np.ndarray, goal: GoalRows, index: int) -> Restoration:
    """The filter of one (h, w) uint8 channel against the rows of `goal`."""
    h, w = samples.shape
    spans = fitted_rows(h, w)
    # two passes over the fitted bands (the classes' bounds, then the sums), each band's
    # padded rows and activities made again in the second: no copy of the fitted samples
    histogram = np.zeros(MAX_ACTIVITY + 1, dtype=np.int64)
    for y0, y1 in spans:
        act = activity(padded_rows(samples, y0, y1, 0, h))
        histogram += np.bincount(act.ravel(), minlength=MAX_ACTIVITY + 1)
    bounds = channel_bounds(histogram)
    taps = len(RESTORATION_OFFSETS)
    gram = np.zeros((RESTORATION_CLASSES, taps, taps))
    moment = np.zeros((RESTORATION_CLASSES, taps))
    count = np.zeros(RESTORATION_CLASSES, dtype=np.int64)
    for y0, y1 in spans:
        x = padded_rows(samples, y0, y1, 0, h)
        # the samples in class order: each class's features are then one slice, whose normal
        # equations are two BLAS products (12 x n rows of float64, the symmetric differences);
        # as uint8 the classes' stable order is a radix sort (the same order as any stable one)
        cls = np.searchsorted(np.asarray(bounds), activity(x), side="right").ravel()
        order = np.argsort(cls.astype(np.uint8), kind="stable")
        ends = np.cumsum(np.bincount(cls, minlength=RESTORATION_CLASSES))
        features = np.empty((taps, cls.size))
        for k, d in enumerate(symmetric_differences(x)):
            features[k] = d.ravel()[order]
        centre = x[REACH:REACH + y1 - y0, REACH:REACH + w].ravel()
        error = (goal(y0, y1).ravel().astype(np.float64) - centre)[order]
        start = 0
        for k, end in enumerate(ends):
            f = features[:, start:end]
            gram[k] += f @ f.T
            moment[k] += f @ error[start:end]
            count[k] += end - start
            start = end
    coefficients = []
    for k in range(RESTORATION_CLASSES):
        if count[k] < MIN_SAMPLES_PER_TAP * taps:
            coefficients.append((0,) * taps)
            continue
        # a small ridge: a flat class (every difference 0) makes the Gram matrix singular
        ridge = 1e-6 * np.trace(gram[k]) / taps + 1e-9
        c = np.linalg.lstsq(gram[k] + ridge * np.eye(taps), moment[k], rcond=None)[0]
        coefficients.append(quantized(c))
    return Restoration(index, bounds, tuple(coefficients))


def squared_error(channel: np.ndarray, goal: GoalRows) -> float:
    total = 0.0
    for y0, y1 in bands(*channel.shape):
        d = channel[y0:y1].astype(np.float64) - goal(y0, y1)
        total += float(np.einsum("ij,ij->", d, d))
    return total


def restored_channels(header_colour: int, channels: int) -> list[int]:
    """The channels the encoder fits a filter to: Y', Cb, Cr (colour 1), or the grey channel
    and R, G, B of 8-bit colour 0 images; never alpha (made exact by a residual)."""
    if header_colour == COLOUR_YCBCR:
        return [0, 1, 2]
    return [0] if channels <= 2 else [0, 1, 2]


def with_restoration(layer: bytes, pixels: np.ndarray, step: float) -> bytes:
    """The encoder's file (no metadata, no residual yet) with the RSTR chunk of the channels
    that gain from a filter (version 6), or `layer` itself."""
    from ..decoder.render import render_image

    container = unpack(layer)
    header = container.header
    if header.dtype != np.uint8 or container.restoration:
        return layer
    chosen = [c for c in restored_channels(header.colour, header.channels)
              if c < header.channels and container.planes[c].rank]
    if not chosen:
        return layer
    samples = render_image(container, colour=header.colour != COLOUR_YCBCR)
    samples = samples.reshape(header.height, header.width, header.channels)
    pixels = pixels.reshape(header.height, header.width, header.channels)
    compiled = kernels.get()
    filters, gain = [], 0.0
    for c in chosen:
        goal = target_bands(pixels, header.colour, c)
        channel = np.ascontiguousarray(samples[:, :, c])
        restoration = fit_channel(channel, goal, c)
        before = squared_error(channel, goal)
        restore_channel(channel, restoration, compiled)
        saved = before - squared_error(channel, goal)
        if saved > 0:
            filters.append(restoration)
            gain += saved
    if not filters:
        return layer
    extra = 12 + sum(len(f.pack()) for f in filters)  # the chunk, its records
    if gain <= LAYOUT_LAMBDA * step * step * 8 * extra:
        return layer
    return insert_restoration(layer, filters)
