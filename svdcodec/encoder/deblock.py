"""The encoder's deblocking filters (format version 4, spec §5.4): per plane, the filter that
brings the decoded samples closest to the image, or none.

The filter changes no factor byte, so the choice is by distortion alone: the file made exact
(the filter needs the exact planes of §5.1) is decoded once to its 8-bit samples before the
colour conversion, each patch-layout plane's channel is filtered with a few strengths derived
from its quantizer step, and the strength of least squared error against the image's own
samples (its Y'CbCr for colour 1, at full size) is kept where it beats no filter. The file
becomes version 4 only if some plane keeps a filter and the gain repays PLAN's 4 more bytes
per plane; otherwise it is returned as it came (version 1 stays version 1, byte for byte).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..codec.colour import CHROMA_OFFSET, plain_ycc
from ..codec.deblock import deblock_channels
from ..decoder.deblock import plane_period
from ..format import (
    COLOUR_YCBCR,
    END,
    HEAD_RECORD,
    LAYOUT_PATCH,
    NO_DEBLOCK,
    SIGNATURE,
    Container,
    pack_header,
    plan_record,
    unpack,
)
from ..runtime import kernels
from .residual import exact_layer
from .tuning import DEBLOCK_STRENGTHS, LAYOUT_LAMBDA


def strengths(step: float) -> list[tuple[int, int, int]]:
    """The (alpha, beta, tc) tried on a plane of this quantizer step: multiples of the step
    (tuning.DEBLOCK_STRENGTHS, from studies/deblock_study.py), each an integer 1..255."""
    def level(k: float) -> int:
        return min(255, max(1, int(k * step)))
    found = [(level(a), level(b), level(t)) for a, b, t in DEBLOCK_STRENGTHS]
    return list(dict.fromkeys(found))


def edge_lines(n: int, period: int) -> np.ndarray:
    """The samples the filter can change along one axis of n: e - 1 and e for every edge e."""
    e = np.arange(period, n - 1, period)
    return np.sort(np.concatenate([e - 1, e]))


def squared_error(x: np.ndarray, target: np.ndarray) -> float:
    return float(np.square(x.astype(np.float32) - target, dtype=np.float32).sum(dtype=np.float64))


def edge_error(x: np.ndarray, target: np.ndarray, period: int) -> float:
    """Squared error of a 2-D channel on the samples its filter can change (the rest is the
    same with and without it): the edge columns, plus the edge rows, less their crossings."""
    rows, cols = edge_lines(x.shape[0], period), edge_lines(x.shape[1], period)
    cross = np.ix_(rows, cols)
    return (squared_error(x[:, cols], target[:, cols]) + squared_error(x[rows], target[rows])
            - squared_error(x[cross], target[cross]))


def target_samples(pixels: np.ndarray, colour: int) -> np.ndarray:
    """What each decoded channel should be: Y', Cb + 128, Cr + 128 (and alpha) of the image
    for colour 1, its samples for colour 0; float32 (h, w, c)."""
    if colour != COLOUR_YCBCR:
        return pixels.astype(np.float32)
    out = np.empty(pixels.shape, np.float32)
    out[..., :3] = plain_ycc(pixels)
    out[..., 1:3] += np.float32(CHROMA_OFFSET)
    out[..., 3:] = pixels[..., 3:]
    return out


def best_strength(samples: np.ndarray, target: np.ndarray, period: int, step: float
                  ) -> tuple[tuple[int, int, int], float]:
    """(alpha, beta, tc) of least error on one channel (NO_DEBLOCK if none helps) and the
    squared error it saves."""
    compiled = kernels.get()
    plain = edge_error(samples, target, period)
    best, best_error = NO_DEBLOCK, plain
    for params in strengths(step):
        trial = np.ascontiguousarray(samples)[..., None].copy()
        deblock_channels(trial, [(0, period, params)], compiled)
        error = edge_error(trial[..., 0], target, period)
        if error < best_error:
            best, best_error = params, error
    return best, plain - best_error


def with_deblocking(layer: bytes, pixels: np.ndarray, step: float) -> bytes:
    """The encoder's file (no metadata, no residual yet) with the deblocking filter of each
    plane that gains from one (version 4), or `layer` itself."""
    from ..decoder.render import (
        render_image,  # the decoder's samples, before the filter
    )

    container = unpack(layer)
    header = container.header
    if header.dtype != np.uint8 or not any(p.layout == LAYOUT_PATCH and p.rank
                                           for p in container.planes):
        return layer
    exact = exact_layer(layer, version=4) + END
    unfiltered: Container = unpack(exact)
    with np.errstate(all="ignore"):
        samples = render_image(unfiltered, colour=False)
    target = target_samples(pixels.reshape(samples.shape), header.colour)
    chosen, gain = [], 0.0
    for p in unfiltered.planes:
        params = NO_DEBLOCK
        if p.layout == LAYOUT_PATCH and p.rank:
            params, saved = best_strength(samples[..., p.index], target[..., p.index],
                                          plane_period(p, header), p.step)
            gain += saved
        chosen.append(replace(p, deblock=params))
    extra = len(chosen) * (plan_record(4).size - plan_record(header.version).size)
    if all(not p.filtered for p in chosen) or gain <= LAYOUT_LAMBDA * step * step * 8 * extra:
        return layer
    start = len(SIGNATURE) + 12 + HEAD_RECORD.size + len(chosen) * (12 + plan_record(4).size)
    return pack_header(unfiltered.header, chosen) + exact[start:]
