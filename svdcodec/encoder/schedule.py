"""The encoder's schedule: which layout each plane takes at a step, and the order in which the
planes are coded and their chunks written.

With layout "auto", every plane is coded at each step in the candidate layout with the lowest
rate-distortion cost D + lambda * R, where D is the model the rank decision uses (discarded
sigma^2 plus the quantization errors of the kept components): predicted from the spectra of its
patch4 and patch8 Gram matrices where the prediction is clear (`plane.predicted_side`, then
only that layout is factorized), else measured by coding a sample of it (or the whole of a
small plane) in each.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field, replace

import numpy as np

from ..codec import exact as exact_rule
from ..format import (
    AQ_VERSION,
    END,
    LAYOUT_PATCH,
    Header,
    pack_header,
    pack_means,
)
from ..format.writer import factor_chunks
from ..modes import Pixels
from ..runtime import band_sizes
from ..runtime.threads import run_bands, run_jobs
from . import tuning
from .blocks import small_plane
from .deblock import with_deblocking
from .plane import (
    Band,
    CachingSource,
    Candidate,
    CodedPlane,
    RankRule,
    code_plane,
    coded_error,
    factorize_plane,
    fitted_candidate,
    layout_sample,
    plane_grams,
    plane_with,
    predicted_side,
)
from .restoration import with_restoration
from .source import image_header, ycc_8bit
from .tuning import (
    AQ_CHROMA_STEP,
    AQ_EFFORT2_CHROMA_STEP,
    AQ_PATCH4_MAX_STEP,
    AQ_PATCH8_LEAN,
    CHROMA_STEP,
    FIT_EXTRA_RANK,
    LAYOUT_LAMBDA,
    SUBSAMPLE_FROM_STEP,
)


@dataclass
class LayoutChoice:
    """A plane's chosen candidate and step, the coding it was chosen by (a sample's, or None
    with a single candidate) and whether that coding is already the whole plane's."""

    candidate: Candidate
    step: float
    coded: CodedPlane | None
    complete: bool


@dataclass
class Prepared:
    """Everything for one chroma subsampling that does not depend on the step."""

    header: Header
    source: CachingSource
    candidates: dict[int, dict[tuple[int, int], Candidate]]
    grams: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)


class Encoder:
    """Holds everything that does not depend on the step, so rate control can iterate cheaply.

    `single_step`: only one step will be coded, so planes kept for later steps can go as soon
    as they are coded. `pixels`: an array, or the rows of a Pillow image (`modes.ImageRows`),
    read a band of rows at a time (deblocking too: the rows of the bands it judges).
    """

    def __init__(self, pixels: Pixels, layouts: list[tuple[int, int]], rule: RankRule,
                 single_step: bool = False, centre: bool = False, deblock: bool = False,
                 restore: bool = False, uncentred: Collection[int] = (),
                 apart: bool = False) -> None:
        self.pixels = pixels
        self.apart = apart  # RGB(A) coded channel by channel (`source.image_header`)
        # an image whose planes are worth a hand-off each, but not its bands: one job per
        # plane, each job's bands in its own thread
        self.plane_jobs = band_sizes.ENCODE_PLANE_JOB_MIN_SAMPLES <= pixels.size \
            <= band_sizes.ENCODE_PLANE_JOB_MAX_SAMPLES
        self.centre = centre
        self.uncentred = uncentred
        self.deblock = deblock
        self.restore = restore
        self.layouts = layouts
        self.rule = rule
        self.single_step = single_step
        #: the last `encode`'s largest `CodedPlane.drift` (what the exact weights' rounding
        #: adds to a plane, in quantizer errors): `encoder._encode` steps coarser above 1
        self.drift = 0.0
        self._prepared: dict[bool, Prepared] = {}

    def _prepare(self, subsample: bool) -> Prepared:
        if subsample not in self._prepared:
            header = image_header(self.pixels, subsample, self.apart)
            if self.centre:  # column means: a chunk of version 2 (16-bit Y'CbCr: 3 already)
                header = replace(header, version=max(header.version, 2))
            self._prepared[subsample] = Prepared(
                header, CachingSource(self.pixels, header, self.centre, self.uncentred), {})
        return self._prepared[subsample]

    def _candidates(self, work: Prepared, index: int, step: float) -> list[Candidate]:
        """Plane `index` in each candidate layout at `step`, each factorized on first use (by
        the plane's own job): every layout, or the one `predicted_side` chooses where it
        applies (`predicts`)."""
        if index not in work.grams:
            work.grams[index] = plane_grams(work.source, index, self.layouts)
        layouts = self.layouts
        if self.predicts(work, index):
            h, w = work.source.shapes[index]
            rows = {side: -(-h // side) * -(-w // side) for side in (4, 8)}  # patches
            chroma = bool(work.header.colour) and index in (1, 2)
            side = predicted_side(work.grams[index], rows, step, chroma)
            layouts = layouts if side is None else [(LAYOUT_PATCH, side)]
        known = work.candidates.setdefault(index, {})
        missing = [layout for layout in layouts if layout not in known]
        if missing:
            known.update(zip(missing, factorize_plane(work.source, index, missing, self.rule,
                                                      work.grams[index])))
        return [known[layout] for layout in layouts]

    def predicts(self, work: Prepared, index: int) -> bool:
        """Whether the plane's layout is predicted from its spectra (`predicted_side`): the
        automatic choice of patch4 or patch8, both streaming, the rank chosen by rate, on an
        image that cannot be one svdi decoded (those are costed in both layouts: the one
        they were decoded from reproduces them)."""
        return tuning.PREDICT_LAYOUT and not self.rule.fixed \
            and sorted(self.layouts) == [(LAYOUT_PATCH, 4), (LAYOUT_PATCH, 8)] \
            and sorted(work.grams[index]) == [4, 8] and not work.source.on_decoder_grid \
            and not self.adapted_effort2(index)

    def adapted_effort2(self, index: int) -> bool:
        """Whether plane `index` is the adapted plane of an aq encode at effort 2: coded in
        both patch layouts (on a sample) and chosen with a lean towards patch 4
        (`layout_lean`) instead of predicted, whose model was fitted without AQ."""
        return bool(self.rule.adapt) and self.rule.optimise_levels and index == 0

    def layout_lean(self, index: int, step: float, patch: int) -> float:
        """The factor on a candidate's D + lambda R in the layout choice: 1 + AQ_PATCH8_LEAN
        for patch 8 of an effort-2 adapted plane at luma steps up to AQ_PATCH4_MAX_STEP (finer
        patches, a finer map: more luma SSIM than their cost in D + lambda R says; at larger
        steps, low rates, patch 4 costs more than it gives), else 1."""
        lean = self.adapted_effort2(index) and patch == 8 and step <= AQ_PATCH4_MAX_STEP
        return 1.0 + AQ_PATCH8_LEAN if lean else 1.0

    def choose_layout(self, work: Prepared, index: int, step: float,
                      allow_whole: bool = True) -> LayoutChoice | None:
        """The plane's layout at `step`: the only candidate, or the cheapest on a sample of its
        bands (on the whole plane if it has too few bands); None if that would take coding
        whole planes and `allow_whole` is false. A streaming layout's basis fitted to its
        quantized coefficients replaces the eigenvectors where it costs less (`fit_choice`)."""
        header = work.header
        plane_step = step * chroma_step_ratio(step, bool(self.rule.adapt),
                                              self.rule.optimise_levels) \
            if (header.colour and index in (1, 2)) else step
        candidates = self._candidates(work, index, plane_step)
        fits = not self.rule.fixed and candidates[0].basis is not None \
            and work.source.on_decoder_grid
        if len(candidates) == 1 and not fits:
            return LayoutChoice(candidates[0], plane_step, None, False)
        sample = layout_sample(work.source, index)
        if sample is None and not allow_whole:
            return None
        # a whole plane that `fit_choice` will try again keeps its band parts, which that
        # measures the eigenvectors' coding on
        keep = sample is None and fits
        coded = [code_plane(work.source, c, plane_step, self.rule, True, sample,
                            keep_parts=keep) for c in candidates]
        costs = [rd_cost(c, plane_step) * self.layout_lean(index, step, c.plane.patch)
                 for c in coded]
        best = min(range(len(costs)), key=costs.__getitem__)
        chosen = coded[best]
        choice = LayoutChoice(candidates[best], plane_step, chosen, sample is None)
        del coded  # (the other layouts' codings and their kept parts, before the fit's own)
        if choice.candidate.basis is not None and not self.rule.fixed \
                and work.source.on_decoder_grid:
            return self.fit_choice(work, choice, sample)
        if keep:
            chosen.parts = {}
        return choice

    def fit_choice(self, work: Prepared, choice: LayoutChoice, sample: list[Band] | None
                   ) -> LayoutChoice:
        """The choice, or its layout with the basis fitted to its quantized coefficients if
        that costs less on the same bands, both measured (see `codec.refine`: on a decoded
        image the fitted basis is the one it was decoded with, and the coding reproduces it)."""
        eigen = choice.coded
        assert eigen is not None
        rank = min(eigen.plane.rank + FIT_EXTRA_RANK, choice.candidate.sigma.size)
        fitted = fitted_candidate(work.source, choice.candidate, choice.step, rank)
        whole = sample is None
        if fitted is None:
            if whole:
                eigen.parts = {}
            return choice
        if whole and not eigen.parts:  # (kept by `choose_layout` where it saw a fit coming)
            eigen = code_plane(work.source, choice.candidate, choice.step, self.rule, False,
                               keep_parts=True)
        coded = code_plane(work.source, fitted, choice.step, self.rule, False, sample,
                           keep_parts=whole)
        eigen.distortion = coded_error(work.source, choice.candidate, eigen)
        coded.distortion = coded_error(work.source, fitted, coded)
        better = rd_cost(coded, choice.step) < rd_cost(eigen, choice.step)
        kept = coded if better else eigen
        if whole:
            kept.parts = {}
        return LayoutChoice(fitted if better else choice.candidate, choice.step, kept, whole)

    def finish(self, work: Prepared, choice: LayoutChoice) -> CodedPlane:
        """The whole plane coded in its chosen layout (reusing the sample's bands)."""
        if choice.complete:
            assert choice.coded is not None
            return choice.coded
        done = choice.coded.parts if choice.coded is not None else None
        return code_plane(work.source, choice.candidate, choice.step, self.rule, False,
                          done=done)

    def coded_in_jobs(self, work: Prepared, step: float) -> list[CodedPlane]:
        """Every plane coded whole, each in a job of one thread (`threads.run_jobs`, which
        hands each job over once; a job's bands stay in its thread): a small image's planes,
        whose bands are too small to repay a hand-off each."""
        def job(index: int) -> CodedPlane:
            coded = self.finish(work, self.choose_layout(work, index, step))
            if self.single_step and work.source.shapes[index] != work.source.shapes[0]:
                work.source.release([index])  # no other step codes it again
            return coded
        return run_jobs(job, len(work.source.shapes))

    @property
    def halves_chroma(self) -> bool:
        """Whether this image's chroma is halved at coarse steps (8- and 16-bit Y'CbCr)."""
        return bool(self._prepare(True).header.subsampling)

    def encode(self, step: float, subsample: bool | None = None) -> bytes:
        """The file at one quantizer step (8-bit units), its chroma halved from
        SUBSAMPLE_FROM_STEP up unless `subsample` says.

        Patch layouts: the planes' factorizations and layout samples, and the whole coding of
        subsampled chroma, run as concurrent jobs whose bands idle threads share (one plane's
        serial steps overlap another's bands; the chroma planes are halved one at a time,
        each on every thread: `PlaneSource.keep`); a full-size plane's coding, which holds its
        symbols (and, while the rank is chosen, a large plane's first and last columns of
        U's integers: `plane.quantize_u`), follows on its own, after the kept chroma planes
        are dropped if no other step will need them: concurrency where memory is small, one
        plane at a time where it is large. A plain layout holds its whole plane as a matrix:
        those go one at a time. An image of band_sizes.ENCODE_PLANE_JOB_MIN_SAMPLES to
        ENCODE_PLANE_JOB_MAX_SAMPLES (`plane_jobs`) codes each patch-layout plane whole in a
        job of one thread instead (`coded_in_jobs`): its bands are too small to repay a
        hand-off each, its planes are not; the deblocking judgement too.
        """
        work = self._prepare(step >= SUBSAMPLE_FROM_STEP if subsample is None else subsample)
        header, source = work.header, work.source
        full = [source.shapes[i] == source.shapes[0] for i in range(header.channels)]

        def start(index: int) -> LayoutChoice | CodedPlane | None:
            """A subsampled plane coded; a full-size plane's layout chosen, unless that takes
            coding whole planes (None: chosen later, on its own)."""
            choice = self.choose_layout(work, index, step, allow_whole=not full[index])
            if full[index] or choice is None:
                return choice
            coded = self.finish(work, choice)
            if self.single_step:  # its kept plane goes now, in this job while others run,
                source.release([index])  # not after them all (unmapping it is serial work)
            return coded
        concurrent = all(layout == LAYOUT_PATCH for layout, _ in self.layouts)
        started: list[LayoutChoice | CodedPlane | None] = (
            list(self.coded_in_jobs(work, step)) if self.plane_jobs and concurrent
            else run_bands(start, header.channels, None if concurrent else 1))
        if self.single_step:
            source.release([i for i in range(header.channels) if not full[i]])
        coded: list[CodedPlane] = []
        for index, begun in enumerate(started):
            if isinstance(begun, CodedPlane):
                coded.append(begun)
                continue
            choice = begun if begun is not None else self.choose_layout(work, index, step)
            assert choice is not None  # whole-plane codings allowed: always a choice
            coded.append(self.finish(work, choice))
        if header.version >= 2:  # the exact planes' shifts (§5.1): every file, version 5
            for k in coded:
                exact_plane(k)
        self.drift = max((k.drift for k in coded), default=0.0)
        if any(k.plane.adapted for k in coded):  # adaptive quantization (§5.5): version 6
            header = replace(header, version=max(header.version, AQ_VERSION))
        data = interleave(header, coded, source.means)
        # 8-bit patch layouts: the deblocking filter where it helps (version 4, §5.4); not on
        # an image svdi decoded (its patch edges were filtered once: filtering them again at
        # every generation blurs it cycle after cycle, docs/design-notes.md). A Y'CbCr one
        # is told by its samples (`on_decoder_grid`); a grey one's are integers either way,
        # so its planes are told by their coding and the filter together: one that kept the
        # fitted basis, whose error the filter would mostly remove (`plane_strength`).
        if self.deblock and not (ycc_8bit(header, 0) and source.on_decoder_grid):
            data = with_deblocking(data, self.pixels, step,
                                   {k.plane.index: k.integers for k in coded
                                    if k.integers is not None}, plane_jobs=self.plane_jobs,
                                   fitted_planes={k.plane.index for k in coded if k.fitted})
        # 8-bit images: the restoration filter fitted to the decoded samples (version 6, §5.6)
        if self.restore:
            assert isinstance(self.pixels, np.ndarray), "encode() passes restoration an array"
            data = with_restoration(data, self.pixels, step)
        return data


def chroma_step_ratio(step: float, adapted: bool, optimised: bool = False) -> float:
    """The chroma planes' step over the luma step `step`: CHROMA_STEP, or with adaptive
    quantization (`adapted`, aq=True) AQ_CHROMA_STEP's ratio at this step, log-linear in the
    step between its two points and constant beyond them; at effort 2 (`optimised`: the levels
    rate-distortion optimised) AQ_EFFORT2_CHROMA_STEP's, log-linear between its points."""
    if not adapted:
        return CHROMA_STEP
    if optimised:
        steps = [math.log(s) for s, _ in AQ_EFFORT2_CHROMA_STEP]
        ratios = [r for _, r in AQ_EFFORT2_CHROMA_STEP]
        return float(np.interp(math.log(step), steps, ratios))
    (lo, fine), (hi, coarse) = AQ_CHROMA_STEP
    t = min(max((math.log(step) - math.log(lo)) / (math.log(hi) - math.log(lo)), 0.0), 1.0)
    return fine + (coarse - fine) * t


def rd_cost(coded: CodedPlane, step: float) -> float:
    """D + lambda R of a coding, lambda = LAYOUT_LAMBDA step^2 per bit."""
    return coded.distortion + LAYOUT_LAMBDA * step * step * 8 * coded.nbytes


def exact_plane(coded: CodedPlane) -> None:
    """Gives the coded plane (this step's own) the largest shift F that keeps the exact rule's
    bound (spec §5.1), from the integers it codes: what `residual.exact_container` chooses
    from the written file, without reading it back; and `drift`, the RMS error the weights'
    rounding at that F adds to the plane (`exact.weight_rounding_error`), as a multiple of the
    quantizer's own (step / sqrt(12))."""
    p = coded.plane
    shift = exact_rule.choose_shift(p.step, coded.sigma, *coded.magnitudes,
                                    f"plane {p.index}") if p.rank else 0
    if p.rank:
        m, n = p.matrix_shape
        coded.drift = exact_rule.weight_rounding_error(p.step, coded.sigma, shift, m * n) \
            / (p.step / math.sqrt(12.0))
    coded.plane = plane_with(p, shift=shift)


def interleave(header: Header, coded: list[CodedPlane],
               means: dict[int, np.ndarray] | None = None) -> bytes:
    """The file: header and PLANs, the column means of centred planes, then the planes'
    blocks group by group (importance order: a reader can stop after any group for a
    preview), then IEND; in each group S, then V, then U, each factor's records in one chunk
    (spec §4.2). A file of small planes only is one group. A version 2 header gets shift 0 in
    every PLAN that has none, a placeholder that `exact_layer` replaces."""
    depth = max((len(k.groups) for k in coded), default=0)
    if all(small_plane(k.plane) for k in coded):
        depth, groups = min(depth, 1), [[[r for g in k.groups for r in g]] for k in coded]
    else:
        groups = [k.groups for k in coded]
    ordered = [record for g in range(depth) for factor in "SVU" for k in groups if g < len(k)
               for record in k[g] if record[0] == factor]
    planes = [k.plane if header.version < 2 or k.plane.shift is not None
              else plane_with(k.plane, shift=0) for k in coded]
    centred = [pack_means(i, mean) for i, mean in sorted((means or {}).items())]
    return b"".join([pack_header(header, planes), *centred, *factor_chunks(ordered), END])
