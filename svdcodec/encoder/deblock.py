"""The encoder's deblocking filters (format version 4, spec §5.4): per plane, the filter that
brings the decoded samples closest to the image, or none.

The filter changes no factor byte, so the choice is by distortion alone: the file made exact
(the filter needs the exact planes of §5.1) is decoded once to its 8-bit samples before the
colour conversion, each patch-layout plane's channel is filtered with a few strengths derived
from its quantizer step, and the strength that saves the most squared error against the
image's own samples (its Y'CbCr for colour 1, at full size), measured on the samples it
changes, is kept where it saves any. On large planes the strengths are judged on a sample of
bands of rows (`judged_rows`): ranking a few strengths needs no full pass. The file
becomes version 4 only if some plane keeps a filter and the gain repays PLAN's 4 more bytes
per plane; otherwise it is returned as it came (version 1 stays version 1, byte for byte).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..codec.colour import CHROMA_OFFSET, YCC_UNIT, YCC_WEIGHTS
from ..codec.deblock import deblock_channels
from ..decoder.deblock import plane_period
from ..format import (
    COLOUR_YCBCR,
    END,
    HEAD_RECORD,
    LAYOUT_PATCH,
    NO_DEBLOCK,
    SIGNATURE,
    Plane,
    pack_header,
    plan_record,
    unpack,
)
from ..runtime import kernels
from .residual import exact_container, pack_exact
from .tuning import (
    DEBLOCK_SAMPLE_EVERY,
    DEBLOCK_SAMPLE_ROWS,
    DEBLOCK_STRENGTHS,
    LAYOUT_LAMBDA,
)


def strengths(step: float) -> list[tuple[int, int, int]]:
    """The (alpha, beta, tc) tried on a plane of this quantizer step: multiples of the step
    (tuning.DEBLOCK_STRENGTHS, from studies/deblock_study.py), each an integer 1..255."""
    def level(k: float) -> int:
        return min(255, max(1, int(k * step)))
    found = [(level(a), level(b), level(t)) for a, b, t in DEBLOCK_STRENGTHS]
    return list(dict.fromkeys(found))


def target_channel(pixels: np.ndarray, colour: int, channel: int) -> np.ndarray:
    """What decoded channel `channel` should be, flat float32: the image's Y', Cb + 128 or
    Cr + 128 for colour 1 (as `codec.colour.plain_ycc` computes them), its samples otherwise
    (and for alpha)."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    if colour != COLOUR_YCBCR or channel > 2:
        return flat[:, channel].astype(np.float32)
    ycc = (flat[:, :3].astype(np.float32) @ YCC_WEIGHTS[channel]) * np.float32(YCC_UNIT)
    return ycc + np.float32(CHROMA_OFFSET if channel else 0.0)


def filter_gain(samples: np.ndarray, target: np.ndarray, period: int,
                params: tuple[int, int, int], counted: np.ndarray | None = None) -> float:
    """The squared error one filter saves on a decoded channel (C-contiguous, against the
    flat `target`; negative: it adds error), summed over the samples it changes, the only
    ones whose error changes; with `counted` (a bool per row), on those rows only."""
    trial = samples[..., None].copy()
    deblock_channels(trial, [(0, period, params)], kernels.get())
    moved = trial[..., 0] != samples
    if counted is not None:
        moved &= counted[:, None]
    changed = np.flatnonzero(moved)
    if changed.size == 0:
        return 0.0
    goal = target[changed].astype(np.float64)
    before = samples.ravel()[changed] - goal
    after = trial.ravel()[changed] - goal
    return float(np.dot(before, before) - np.dot(after, after))


def best_strength(samples: np.ndarray, target: np.ndarray, period: int, step: float,
                  counted: np.ndarray | None = None) -> tuple[tuple[int, int, int], float]:
    """(alpha, beta, tc) that saves the most squared error on one decoded channel (NO_DEBLOCK
    if none saves any) and the error it saves (on the `counted` rows, if given)."""
    best, saved = NO_DEBLOCK, 0.0
    for params in strengths(step):
        gain = filter_gain(samples, target, period, params, counted)
        if gain > saved:
            best, saved = params, gain
    return best, saved


def judged_rows(height: int, period: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The rows a plane's strengths are judged on (tuning.DEBLOCK_SAMPLE_EVERY-th bands of
    whole edge periods) and, per row of those, whether its error counts: not a band's first
    and last rows, which the edges on the band's borders change, unseen in the sample. Every
    other row's filtered samples are those of the whole channel, as long as an edge's four
    samples never reach past the next edge (periods of 4 and more). None: the whole plane."""
    band = period * -(-DEBLOCK_SAMPLE_ROWS // period)
    bands = height // band
    if period < 4 or bands < 2 * DEBLOCK_SAMPLE_EVERY:
        return None
    first = np.arange(DEBLOCK_SAMPLE_EVERY // 2, bands, DEBLOCK_SAMPLE_EVERY) * band
    counted = np.ones((first.size, band), dtype=bool)
    counted[:, [0, -1]] = False
    return (first[:, None] + np.arange(band)).ravel(), counted.ravel()


def plane_strength(samples: np.ndarray, pixels: np.ndarray, colour: int, plane: Plane,
                   period: int) -> tuple[tuple[int, int, int], float]:
    """`best_strength` of one plane's channel of the decoded (h, w, c) samples against the
    (h, w, c) image, judged on `judged_rows`: the error it saves, scaled to the whole plane."""
    judged = judged_rows(samples.shape[0], period)
    if judged is None:
        return best_strength(np.ascontiguousarray(samples[..., plane.index]),
                             target_channel(pixels, colour, plane.index), period, plane.step)
    rows, counted = judged
    params, saved = best_strength(np.ascontiguousarray(samples[rows, :, plane.index]),
                                  target_channel(pixels[rows], colour, plane.index), period,
                                  plane.step, counted)
    return params, saved * samples.shape[0] / np.count_nonzero(counted)


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
    unfiltered = exact_container(container, 4)  # what unpack(exact) gives, without a parse
    exact = pack_exact(layer, container, unfiltered) + END
    with np.errstate(all="ignore"):
        samples = render_image(unfiltered, colour=False)
    pixels = pixels.reshape(samples.shape)
    chosen, gain = [], 0.0
    for p in unfiltered.planes:
        params = NO_DEBLOCK
        if p.layout == LAYOUT_PATCH and p.rank:
            params, saved = plane_strength(samples, pixels, header.colour, p,
                                           plane_period(p, header))
            gain += saved
        chosen.append(replace(p, deblock=params))
    extra = len(chosen) * (plan_record(4).size - plan_record(header.version).size)
    if all(not p.filtered for p in chosen) or gain <= LAYOUT_LAMBDA * step * step * 8 * extra:
        return layer
    start = len(SIGNATURE) + 12 + HEAD_RECORD.size + len(chosen) * (12 + plan_record(4).size)
    return pack_header(unfiltered.header, chosen) + exact[start:]
