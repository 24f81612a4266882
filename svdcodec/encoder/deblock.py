"""The encoder's deblocking filters (format version 4, spec §5.4): per plane, the filter that
brings the decoded samples closest to the image, or none.

The filter changes no factor byte, so the choice is by distortion alone: the file made exact
(the filter needs the exact planes of §5.1) is decoded to its 8-bit samples before the
colour conversion, each patch-layout plane's channel is filtered with a few strengths derived
from its quantizer step, and the strength that saves the most squared error against the
image's own samples (its Y'CbCr for colour 1, at full size), measured on the samples it
can change, is kept where it saves any. On large planes the strengths are judged on a sample of
bands of rows (`judged_bands`): ranking a few strengths needs no full pass, and only those
bands' rows are decoded (`sampled_samples`), so the encoder holds no decoded image. The file
becomes version 4 only if some plane keeps a filter and the gain repays PLAN's 4 more bytes
per plane; otherwise it is returned as it came (version 1 stays version 1, byte for byte).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Iterable

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
    Container,
    Plane,
    pack_header,
    plan_record,
    unpack,
)
from ..modes import Pixels
from ..runtime import kernels
from ..runtime.scratch import ThreadBuffers
from ..runtime.threads import run_bands, run_jobs
from .plane import plane_with
from .residual import exact_container, pack_exact
from .tuning import (
    DEBLOCK_PIECE_SAMPLES,
    DEBLOCK_SAMPLE_EVERY,
    DEBLOCK_SAMPLE_PIXELS,
    DEBLOCK_SAMPLE_ROWS,
    DEBLOCK_STRENGTHS,
    LAYOUT_LAMBDA,
    REFILTERED_SHARE,
)


def strengths(step: float) -> list[tuple[int, int, int]]:
    """The (alpha, beta, tc) tried on a plane of this quantizer step: multiples of the step
    (tuning.DEBLOCK_STRENGTHS, from studies/deblock_study.py), each an integer 1..255."""
    return list(_strengths(step))


@functools.lru_cache(maxsize=64, typed=True)
def _strengths(step: float) -> tuple[tuple[int, int, int], ...]:
    """`strengths`, made once per step (and its type, whose arithmetic `level` uses): every
    plane of an encode asks for one of two steps."""
    def level(k: float) -> int:
        return min(255, max(1, int(k * step)))
    found = [(level(a), level(b), level(t)) for a, b, t in DEBLOCK_STRENGTHS]
    return tuple(dict.fromkeys(found))


@functools.lru_cache(maxsize=64, typed=True)
def strength_table(step: float) -> np.ndarray:
    """`strengths(step)` as the (k, 3) int64 array `deblock_gains` takes (read-only), made
    once per step as `strengths` is."""
    table = np.array(_strengths(step), dtype=np.int64).reshape(-1, 3)
    table.flags.writeable = False
    return table


def target_channel(pixels: np.ndarray, colour: int, channel: int) -> np.ndarray:
    """What decoded channel `channel` should be, flat float32: the image's Y', Cb + 128 or
    Cr + 128 for colour 1 (as `codec.colour.plain_ycc` computes them), its samples otherwise
    (and for alpha). `pixels`: (..., c), any leading shape (the pixels of some samples)."""
    flat = pixels.reshape(-1, pixels.shape[-1])
    if colour != COLOUR_YCBCR or channel > 2:
        return flat[:, channel].astype(np.float32)
    ycc = (flat[:, :3].astype(np.float32) @ YCC_WEIGHTS[channel]) * np.float32(YCC_UNIT)
    return ycc + np.float32(CHROMA_OFFSET if channel else 0.0)


#: The goal's unit in the strengths' trials: a target in units of 2^-16 is an integer, so
#: that every error change is summed exactly, in any order, on both kernel paths.
GOAL_SCALE = 1 << 16


def goal_units(target: np.ndarray) -> np.ndarray:
    """The target (float32) as the nearest integer multiple of 2^-16, int32 (8-bit targets
    lie within +-2^9, far inside the C kernel's bound of 2^26 units)."""
    return np.rint(target * np.float32(GOAL_SCALE)).astype(np.int32)


@functools.lru_cache(maxsize=256)
def goal_weights(colour: int, channel: int, channels: int) -> tuple[np.ndarray, int]:
    """(weights (int64, one per channel), offset) with which `goal_rows` makes the goal of
    decoded channel `channel` from 8-bit pixels: offset + pixels @ weights is
    `goal_units(target_channel(...))` exactly. The Y'CbCr weights are integers, 255 times
    the sum of their magnitudes is 2^24 at most and YCC_UNIT is 2^-16, so every float32 sum
    and product of `target_channel` (in any order, fused or not) is an exact integer times
    2^-16 and needs no rounding. Made once per argument set (read-only): `goal_rows` asks
    for them band by band, for every judged plane."""
    weights = np.zeros(channels, dtype=np.int64)
    offset = 0
    if colour != COLOUR_YCBCR or channel > 2:
        weights[channel] = GOAL_SCALE
    else:
        weights[:3] = YCC_WEIGHTS[channel].astype(np.int64)
        offset = int(CHROMA_OFFSET * GOAL_SCALE) if channel else 0
    weights.flags.writeable = False
    return weights, offset


def goal_rows(pixels: np.ndarray, colour: int, channel: int, out: np.ndarray) -> None:
    """`goal_units(target_channel(pixels, colour, channel))` of a band of 8-bit pixels
    ((rows, w, c) uint8) into `out` ((rows, w) int32, C-contiguous), in integers (see
    `goal_weights`): the C kernel `deblock_goal` in one pass, or numpy channel by channel."""
    weights, offset = goal_weights(colour, channel, pixels.shape[-1])
    compiled = kernels.get()
    if compiled is not None:
        compiled.deblock_goal(pixels, weights, offset, out)
        return
    out[...] = offset
    for k in np.flatnonzero(weights):
        out += pixels[..., k].astype(np.int32) * np.int32(weights[k])


class EdgeSamples:
    """One decoded channel (C-contiguous (h, w) bytes) ready to judge strengths on: its goal
    in units of 2^-16 (`goal_units`) and the rows whose error counts (all, or `counted`).

    Each strength costs one filter pass over the channel and one integer pass over its
    counted rows: the error changes only where the filter moved a sample from o to n, by
    (n - g)^2 - (o - g)^2 = (n - o)(n + o - 2 g), summed in integers times 2^16 (`changes`),
    so no gather of the movable samples and no float sum whose order could differ."""

    def __init__(self, samples: np.ndarray, period: int, goal: np.ndarray,
                 counted: np.ndarray | None = None) -> None:
        self.samples, self.period = samples, period
        self.goal = goal.reshape(samples.shape)
        self.counted = (np.ones(samples.shape[0], dtype=bool) if counted is None
                        else counted)

    def changes(self, candidates: list[tuple[int, int, int]],
                table: np.ndarray | None = None) -> list[int]:
        """2^16 times the squared error each filter adds on the counted rows (negative: it
        saves error), exact integers: the C kernel `deblock_gains`, or the filter of
        codec.deblock and the same sum in numpy. `table`: the candidates as a (k, 3) int64
        array, if made already (`strength_table`)."""
        compiled = kernels.get()
        if compiled is not None:
            out = np.zeros(len(candidates), dtype=np.int64)
            compiled.deblock_gains(self.samples, self.goal, self.counted.view(np.uint8),
                                   self.period,
                                   np.array(candidates, np.int64).reshape(-1, 3)
                                   if table is None else table, out)
            return out.tolist()
        old = self.samples[self.counted].astype(np.int64)
        goal = 2 * self.goal[self.counted].astype(np.int64)
        found = []
        for params in candidates:
            trial = self.samples[..., None].copy()
            deblock_channels(trial, [(0, self.period, params)], None)
            new = trial[self.counted, :, 0].astype(np.int64)
            found.append(int(np.sum((new - old) * (((new + old) << 16) - goal))))
        return found

    def error(self) -> float:
        """The squared error of the counted rows against the goal, in sample units, summed a
        few rows at a time (a plane judged whole is one piece: no copies of it all)."""
        rows = np.flatnonzero(self.counted)
        per = max(1, (1 << 16) // max(self.samples.shape[1], 1))
        total = 0.0
        for k in range(0, rows.size, per):
            picked = rows[k:k + per]
            diff = (self.samples[picked].astype(np.int64) * GOAL_SCALE
                    - self.goal[picked]).astype(np.float64)
            total += float(np.einsum("ij,ij->", diff, diff))
        return total / GOAL_SCALE ** 2


def filter_gain(samples: np.ndarray, target: np.ndarray, period: int,
                params: tuple[int, int, int], counted: np.ndarray | None = None) -> float:
    """The squared error one filter saves on a decoded channel (C-contiguous, against the
    `target`, to within 2^-17 per moved sample: the target's rounding to `goal_units`;
    negative: it adds error); with `counted` (a bool per row), on those rows only."""
    change = EdgeSamples(samples, period, goal_units(target), counted).changes([params])[0]
    return -change / GOAL_SCALE


def best_strength(candidates: list[tuple[int, int, int]], changes: Iterable[list[int]]
                  ) -> tuple[tuple[int, int, int], float]:
    """The candidate (alpha, beta, tc) that saves the most squared error on one decoded
    channel's judged samples, from each piece's `EdgeSamples.changes` (exact integers:
    their sum does not depend on the order the pieces were measured in; NO_DEBLOCK if none
    saves any), and the error it saves."""
    totals = [0] * len(candidates)
    for piece in changes:
        for k, change in enumerate(piece):
            totals[k] += change
    best, saved = NO_DEBLOCK, 0.0
    for params, total in zip(candidates, totals):
        gain = -total / GOAL_SCALE
        if gain > saved:
            best, saved = params, gain
    return best, saved


def judged_bands(height: int, period: int, width: int) -> list[tuple[int, int]] | None:
    """The bands of rows [y0, y1) a plane's strengths are judged on: bands of whole edge
    periods of about tuning.DEBLOCK_SAMPLE_ROWS rows, one in DEBLOCK_SAMPLE_EVERY, or fewer
    where that would judge more than DEBLOCK_SAMPLE_PIXELS samples (spread over the plane all
    the same; at least one band). None: the whole plane (edge periods under 4, planes of fewer than
    2 x DEBLOCK_SAMPLE_EVERY bands)."""
    band = period * -(-DEBLOCK_SAMPLE_ROWS // period)
    bands = height // band
    if period < 4 or bands < 2 * DEBLOCK_SAMPLE_EVERY:
        return None
    # A plane so wide that even one band in `bands` is over the budget is judged on its
    # middle band: never on none.
    every = min(bands, max(DEBLOCK_SAMPLE_EVERY,
                           -(-bands * band * width // DEBLOCK_SAMPLE_PIXELS)))
    return [(k * band, (k + 1) * band) for k in range(every // 2, bands, every)]


def band_rows(bands: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The rows of these bands, in order, and per row whether its error counts: not a band's
    first and last rows, which the edges on the band's borders change, unseen in the sample.
    Every other row's filtered samples are those of the whole channel, as long as an edge's
    four samples never reach past the next edge (periods of 4 and more)."""
    rows = np.concatenate([np.arange(y0, y1) for y0, y1 in bands])
    counted = np.concatenate([(np.arange(y0, y1) != y0) & (np.arange(y0, y1) != y1 - 1)
                              for y0, y1 in bands])
    return rows, counted


def counted_rows(bands: list[tuple[int, int]]) -> int:
    """How many rows `band_rows` counts: every row of a band but its first and last."""
    return sum(max(y1 - y0 - 2, 0) for y0, y1 in bands)


def rendered_bands(bands: list[list[tuple[int, int]] | None], height: int, unit: int
                   ) -> list[tuple[int, int]]:
    """The bands of rows to render for every plane's `judged_bands` (None: the whole plane):
    their union, each band widened to whole multiples of `unit` (the full-size planes'
    patches), bands that touch merged."""
    from ..decoder.plane import covering_bands

    if any(b is None for b in bands):
        return [(0, height)]
    return covering_bands((band for judged in bands if judged is not None for band in judged),
                          unit, height)


class StackedSink:
    """A `decoder.stream.Sink` stacking the rendered bands' rows one after the other."""

    def __init__(self, out: np.ndarray, bands: list[tuple[int, int]]) -> None:
        self.out = out
        sizes = [y1 - y0 for y0, y1 in bands]
        self.starts = dict(zip((y0 for y0, _ in bands), np.cumsum([0, *sizes[:-1]]).tolist()))

    def band(self, y0: int, y1: int, spent: ThreadBuffers | None = None) -> np.ndarray:
        start = self.starts[y0]
        return self.out[start:start + y1 - y0]

    def put(self, y0: int, y1: int, band: np.ndarray) -> None:
        pass


def sampled_samples(container: Container, bands: list[tuple[int, int]],
                    integers: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
                    ) -> np.ndarray:
    """The decoder's 8-bit samples before the colour conversion (`render_image(colour=False)`,
    unfiltered) of these bands of rows only, stacked: the band renderer reconstructs only
    their rows (and the chroma rows they blend). Whole, then cut, where it declines the file.
    `integers`: the integers (A, B) of some planes by index, which the encoder holds, used
    instead of reading those planes' blocks back (the same samples)."""
    from ..decoder.render import (
        render_image,  # the decoder's samples, before the filter
    )
    from ..decoder.stream import BandRenderer

    header = container.header
    rows = sum(y1 - y0 for y0, y1 in bands)
    with np.errstate(all="ignore"):
        renderer = BandRenderer.prepare(container, sampled=bands, integers=integers)
        if renderer is None:
            whole = render_image(container, colour=False)
            return np.concatenate([whole[y0:y1] for y0, y1 in bands])
        out = np.empty((rows, header.width, header.channels), dtype=np.uint8)
        renderer.run(StackedSink(out, bands))
    return out


class JudgedPiece:
    """One piece of a plane's judged rows (`judged_pieces`): its bands of image rows, where
    their rows lie in the stacked samples of the rendered bands (`picked`: a slice when they
    are all of them, else their indices) and which of them count (`band_rows`; None: all)."""

    def __init__(self, bands: list[tuple[int, int]], picked: slice | np.ndarray,
                 counted: np.ndarray | None) -> None:
        self.bands, self.picked, self.counted = bands, picked, counted


def judged_rows(rendered: list[tuple[int, int]], height: int, width: int,
                judged: list[tuple[int, int]] | None) -> list[JudgedPiece]:
    """The pieces in which a plane judged on `judged` (`judged_bands`; None: the whole
    plane) is read from the stacked samples of the `rendered` bands: the same for every
    plane judged on the same bands (`with_deblocking` makes them once for those)."""
    stacked = np.concatenate([np.arange(y0, y1) for y0, y1 in rendered])
    pieces = [[(0, height)]] if judged is None else judged_pieces(judged, width)
    out = []
    for bands in pieces:
        rows, counted = (np.arange(height), None) if judged is None else band_rows(bands)
        picked = (slice(None) if stacked.size == rows.size  # the same rows: no gather
                  else np.searchsorted(stacked, rows))
        out.append(JudgedPiece(bands, picked, counted))
    return out


def plane_strength(samples: np.ndarray, rendered: list[tuple[int, int]], pixels: Pixels,
                   colour: int, plane: Plane, period: int, judged: list[tuple[int, int]] | None,
                   pieces: list[JudgedPiece] | None = None, fitted: bool = False
                   ) -> tuple[tuple[int, int, int], float]:
    """`best_strength` of one plane's channel of the stacked samples of the `rendered` bands
    against the (h, w, c) image (an array, or a Pillow image's `ImageRows`: only the judged
    bands' rows are read), judged on `judged` (`judged_bands`; None: the whole plane):
    the error it saves, scaled to the whole plane. The judged bands go in pieces of about
    DEBLOCK_PIECE_SAMPLES samples: their temporaries (the target and its integers, the trial
    channel: 10 bytes a sample) stay small beside the image. `pieces`: `judged_rows` of
    these bands, if made already. `fitted`: the plane is coded with the basis fitted to its
    integers; NO_DEBLOCK where the filter would remove more than REFILTERED_SHARE of its
    error (most likely an image svdi decoded with the filter: not filtered again)."""
    h, w = pixels.shape[:2]
    if pieces is None:
        pieces = judged_rows(rendered, h, w, judged)

    def piece(part: JudgedPiece) -> EdgeSamples:
        channel = np.ascontiguousarray(samples[part.picked, :, plane.index])
        # the goal band by band, in integers (no copy of the judged pixels, no floats)
        goal = np.empty(channel.shape, dtype=np.int32)
        at = 0
        for y0, y1 in part.bands:
            goal_rows(pixels[y0:y1], colour, plane.index, goal[at:at + y1 - y0])
            at += y1 - y0
        return EdgeSamples(channel, period, goal, part.counted)
    # the pieces on every thread, each piece's temporaries freed as its changes are made
    candidates, table = strengths(plane.step), strength_table(plane.step)

    def judge(k: int) -> tuple[list[int], float]:
        edges = piece(pieces[k])
        return edges.changes(candidates, table), edges.error() if fitted else 0.0
    judgements = run_bands(judge, len(pieces))
    params, saved = best_strength(candidates, [changes for changes, _ in judgements])
    if fitted and saved > REFILTERED_SHARE * sum(error for _, error in judgements):
        return NO_DEBLOCK, 0.0
    if judged is None:
        return params, saved
    return params, saved * h / counted_rows(judged)


def judged_pieces(bands: list[tuple[int, int]], width: int) -> list[list[tuple[int, int]]]:
    """The judged bands in consecutive groups of at most about DEBLOCK_PIECE_SAMPLES samples
    (at least one band each)."""
    pieces: list[list[tuple[int, int]]] = [[]]
    held = 0
    for y0, y1 in bands:
        if pieces[-1] and held + (y1 - y0) * width > DEBLOCK_PIECE_SAMPLES:
            pieces.append([])
            held = 0
        pieces[-1].append((y0, y1))
        held += (y1 - y0) * width
    return pieces


def with_deblocking(layer: bytes, pixels: Pixels, step: float,
                    integers: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
                    plane_jobs: bool = False, fitted_planes: Collection[int] = ()) -> bytes:
    """The encoder's file (no metadata, no residual yet) with the deblocking filter of each
    plane that gains from one (version 4), or `layer` itself. `pixels`: the (h, w, c) image,
    of which only the judged bands' rows are read (`pixels[y0:y1]`). `integers`: the integers
    (A, B) the encoder holds of some planes by index, rendered instead of their blocks.
    `plane_jobs`: each plane's strength trials in a job of one thread (`threads.run_jobs`).
    `fitted_planes`: the planes coded with the basis fitted to their integers, by index (see
    `plane_strength`)."""
    container = unpack(layer)
    header = container.header
    if header.dtype != np.uint8 or not any(p.layout == LAYOUT_PATCH and p.rank
                                           for p in container.planes):
        return layer
    # What unpack(exact) gives, without a parse; a version 4+ layer's planes are exact already
    # (the encoder gave each its shift: schedule.exact_plane, what exact_container chooses).
    unfiltered = (container if header.version >= 4 and all(p.exact for p in container.planes)
                  else exact_container(container, 4))
    # the exact file: the layer itself where its planes are exact already (its header and
    # PLANs are those pack_exact would write again)
    exact = layer if unfiltered is container else pack_exact(layer, container, unfiltered) + END
    judged_planes = [p for p in unfiltered.planes if p.layout == LAYOUT_PATCH and p.rank]
    judged = {p.index: judged_bands(header.height, plane_period(p, header), header.width)
              for p in judged_planes}
    full = [p for p in unfiltered.planes if (p.height, p.width) == (header.height, header.width)]
    unit = math.lcm(*(p.patch for p in full if p.layout == LAYOUT_PATCH))
    rendered = rendered_bands(list(judged.values()), header.height, unit)
    samples = sampled_samples(unfiltered, rendered, integers)
    assert pixels.shape == (header.height, header.width, header.channels)
    # each set of judged bands read in the same pieces by every plane judged on it
    pieces: dict[tuple[tuple[int, int], ...] | None, list[JudgedPiece]] = {}
    for p in judged_planes:
        bands = judged[p.index]
        key = None if bands is None else tuple(bands)
        if key not in pieces:
            pieces[key] = judged_rows(rendered, header.height, header.width, bands)

    def strength(k: int) -> tuple[tuple[int, int, int], float]:
        p = judged_planes[k]
        bands = judged[p.index]
        return plane_strength(samples, rendered, pixels, header.colour, p,
                              plane_period(p, header), bands,
                              pieces[None if bands is None else tuple(bands)],
                              p.index in fitted_planes)
    # plane_jobs (an image whose planes the encoder coded in jobs): a plane's trials in a job
    # of one thread; else plane after plane, each plane's pieces on every thread
    judgements = (run_jobs(strength, len(judged_planes)) if plane_jobs
                  else [strength(k) for k in range(len(judged_planes))])
    found = {p.index: judgement for p, judgement in zip(judged_planes, judgements)}
    chosen = [plane_with(p, deblock=found[p.index][0] if p.index in found else NO_DEBLOCK)
              for p in unfiltered.planes]
    gain = 0.0
    for _, saved in judgements:  # one by one in plane order (sum() compensates from 3.12)
        gain += saved
    filtered_plan = plan_record(unfiltered.header.version)  # version 4 or later (6: AQ)
    extra = len(chosen) * (filtered_plan.size - plan_record(header.version).size)
    if all(not p.filtered for p in chosen) or gain <= LAYOUT_LAMBDA * step * step * 8 * extra:
        return layer
    start = len(SIGNATURE) + 12 + HEAD_RECORD.size + len(chosen) * (12 + filtered_plan.size)
    return pack_header(unfiltered.header, chosen) + exact[start:]
