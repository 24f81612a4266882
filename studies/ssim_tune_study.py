#!/usr/bin/env python3
"""Encoder-side choices of svdi-best (effort 2, aq, restore, deblock) for luma SSIM (issue #16).

    python studies/ssim_tune_study.py --corpus DIR [--images kodim01 kodim03 ...]
        [--only NAME ...] [--reference NAME] [--rows CSV [CSV ...]] [--quick]

No format change: each variant sets encoder-side choices (the AQ plane's G and K, the chroma
step by the luma step, the rank decision's and RDOQ's lambda, the patch mean's step, the
deblocking strengths, the layouts and the layout prediction's lean) for the whole sweep, encodes every image at rd.py's svdi qualities with
`encode(effort=2, aq=True, restore=True, deblock=True)` (rd.py's svdi-best) and decodes with
today's decoder, so every file is one every decoder reads. "before" is what aq=True wrote at
ee585a3 (chroma 0.85 of the luma step, G the geometric mean, RDOQ lambda 0.10, no lean to
patch 4), "best" what it writes now (`encoder.tuning.AQ_CHROMA_STEP`, `AQ_G_SCALE`,
`AQ_RDOQ_LAMBDA`, and the lean to patch 4, `AQ_PATCH4_BIAS` until round 3); the others are
"before" with one change, or a few. BD-rates vs Pillow JPEG 4:2:0 exactly as benchmarks/rd.py
takes them (`evaluation.codecs.bd_results_per_image`): RGB PSNR 28-38 dB / 24-30 dB / luma
SSIM over JPEG's 28-38 dB window, the mean over the images; "points" against "before" in the
same run (--reference: another variant). Rows are appended to the first --rows file (default
/tmp/ssim_tune_rows.csv) and read back from all of them, so that variants measured in earlier
runs are not encoded again. Figures: docs/design-notes.md, "Tuning aq=True for luma SSIM".

2026-12-04 ("Luma SSIM on photos never tuned on"): "12-03" is what aq=True wrote at a9dfe94
(the adapted plane's patch mean at codec.quantize.MEAN_STEP at every step), the "12-03 + ..."
variants one change on it (prototypes where the encoder has no setting: the refitted weights,
the trailing components' steps, the patch mean's step by the luma step); "best" now takes the
patch mean of effort 2's adapted plane at `tuning.AQ_MEAN_STEP` up to `AQ_MEAN_STEP_UP_TO`:
`--reference 12-03 --only best`. The restoration fit and the deblocking choice weighted for
SSIM were prototypes in the encoder's modules, removed (figures in the notes).

2026-12-05 ("Luma SSIM on photos never tuned on: RDOQ from nearest and G x 1.6"): "12-04" is
what aq=True wrote at a6cb2a6 (G x 1.2, effort 2's RDOQ from the dead zone in one round);
"best" starts every plane's RDOQ from nearest in two rounds with G x 1.6 (effort 2's,
`tuning.AQ_EFFORT2_G_SCALE`): `--images kodim01
... kodim08 --reference 12-04 --only best "12-04 + G x1.6" ...`.

2026-12-05, round 2 ("Luma SSIM on photos never tuned on: G by the step"): "12-05" is what
aq=True wrote at ace1c23 (G x1.6 at every step); "best" writes effort 2's G 3.0 times the
geometric mean at luma steps up to 10, 1.6 times from 30, log-linear between:
`--images kodim01 ... kodim08 --reference 12-05 --only best "12-05 + G x2.0" ...`, with
--proxy (restore off; its rows in their own --rows file) for the first sweeps.

2026-12-05, round 3 ("Luma SSIM on photos never tuned on: the adapted plane's layout costed"):
"12-05b" is what aq=True wrote at 5057244 (round 2's rule: `ROUND2`, plane 0's layout
predicted and leant, which every variant of the earlier rounds now starts from); "best" codes
effort 2's adapted plane in both patch sides with patch 8's cost leant, rounds its map
components from 0.44 and takes coarser chroma above quality 70: `--images kodim01 ... kodim08
--reference 12-05b --only best "12-05b + costed layout" ...` (the `ROUND3` variants).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import svdcodec.encoder.aq as aq_encoder
import svdcodec.encoder.plane as plane_encoder
from svdcodec import encoder
from svdcodec.codec import quantize, refine
from svdcodec.encoder import deblock, schedule
from svdcodec.evaluation import codecs as compare

Patch = Callable[[], Callable[[], None]]  # applies a change, returns its undo


def setting(module: object, name: str, value: object) -> Patch:
    def apply() -> Callable[[], None]:
        old = getattr(module, name)
        setattr(module, name, value)
        return lambda: setattr(module, name, old)
    return apply


#: effort 2's RDOQ of an aq encode as before 2026-12-05: from the dead zone
#: (`codec.quantize.RDOQ_ROUNDING`), one round (`RDOQ_ROUNDS`).
DEAD_ZONE_RDOQ: list[Patch] = [setting(encoder, "AQ_RDOQ_ROUNDING", None),
                               setting(encoder, "AQ_RDOQ_ROUNDS", None)]


class _Lean:
    """The predicted layout's lean towards patch 4 (score units) of the rule before
    2026-12-05's third round (`PREDICTED_LAYOUT`), 2.5 then."""
    bias = 2.5


def _leant_prediction(grams, rows, step, chroma, bias=0.0):  # type: ignore[no-untyped-def]
    lean = _Lean.bias if not chroma and step <= schedule.AQ_PATCH4_MAX_STEP else 0.0
    return plane_encoder.predicted_side(grams, rows, step, chroma, bias + lean)


#: Plane 0 of an effort-2 aq encode predicted (`plane.predicted_side`) with the lean
#: `_Lean.bias` up to AQ_PATCH4_MAX_STEP, as before 2026-12-05's third round, instead of coded
#: in both patch sides with patch 8's cost leant (`schedule.Encoder.layout_lean`).
PREDICTED_LAYOUT: list[Patch] = [
    setting(schedule.Encoder, "adapted_effort2", lambda self, index: False),
    setting(schedule, "predicted_side", _leant_prediction)]


def patch4_bias(bias: float) -> Patch:
    """The layout model's score of plane 0 raised by `bias` (towards patch 4; with
    PREDICTED_LAYOUT)."""
    return setting(_Lean, "bias", bias)


_chroma_step_ratio = schedule.chroma_step_ratio


def _effort1_chroma(step, adapted, optimised=False):  # type: ignore[no-untyped-def]
    return _chroma_step_ratio(step, adapted)


#: What effort 2 with aq=True wrote before 2026-12-05's third round (5057244, "12-05b"): plane
#: 0's layout predicted and leant (PREDICTED_LAYOUT), the map components from ROUNDING, the
#: chroma ratio of effort 1 (AQ_CHROMA_STEP). Every variant before that round starts from it.
ROUND2: list[Patch] = [*PREDICTED_LAYOUT,
                       setting(aq_encoder, "AQ_MAP_ROUNDING", quantize.ROUNDING),
                       setting(schedule, "chroma_step_ratio", _effort1_chroma)]


#: What ee585a3 wrote with aq=True (svdi-best before this study): the chroma step 0.85 at every
#: step, G the geometric mean, RDOQ at 0.10, no lean to patch 4.
BEFORE: list[Patch] = [setting(schedule, "AQ_CHROMA_STEP", ((16.0, 0.85), (64.0, 0.85))),
                       setting(aq_encoder, "AQ_EFFORT2_G_SCALE", ((1.0, 1.0),)),
                       setting(encoder, "AQ_RDOQ_LAMBDA", 0.10),
                       setting(_Lean, "bias", 0.0),
                       setting(schedule, "AQ_PATCH4_MAX_STEP", 1e9),
                       *DEAD_ZONE_RDOQ]


def chroma(fine: float, lo: float, coarse: float, hi: float) -> Patch:
    """The chroma step ratio `fine` up to luma step `lo`, `coarse` from `hi`, log-linear
    between (`schedule.chroma_step_ratio`)."""
    return setting(schedule, "AQ_CHROMA_STEP", ((lo, fine), (hi, coarse)))


def g_scale(factor: float) -> Patch:
    """G written `factor` times the geometric mean at effort 2, at every step (every class
    threshold scaled alike: factor 2^(1/(4 s)) ~ 4.2 would move every patch one class finer)."""
    return setting(aq_encoder, "AQ_EFFORT2_G_SCALE", ((1.0, factor),))


def g_by_step(*points: tuple[float, float]) -> Patch:
    """Effort 2's G scale by the luma step: (step, scale) points, log-linear between them
    (`encoder.aq.effort2_g_scale`)."""
    return setting(aq_encoder, "AQ_EFFORT2_G_SCALE", tuple(points))


def rdoq(lam: float) -> Patch:
    return setting(encoder, "AQ_RDOQ_LAMBDA", lam)


def flat(c: float) -> Patch:
    return chroma(c, 16.0, c, 64.0)



def weight_gain(gain: float) -> Patch:
    """Every patch plane's refitted component weights (`codec.refine.refitted_sigma`: the
    least-squares scale of what was stored) times `gain` (prototype: a contrast above the
    least-squares one, for SSIM's contrast term), the patch mean's (component 0) as it was."""
    fit = plane_encoder.refitted_sigma

    def scaled(*args, **kwargs):  # type: ignore[no-untyped-def]
        sigma = fit(*args, **kwargs).copy()
        sigma[1:] /= np.float32(gain)  # not component 0: the patch means' scale
        return sigma
    return setting(plane_encoder, "refitted_sigma", scaled)


def ac_ramp(slope: float, top: float) -> list[Patch]:
    """Component k >= 1 of every patch plane quantized at min(1 + slope k, top) times the step
    (`codec.quantize.component_steps`, read by the quantizer, the refit and the encoder's
    planes; prototype): the trailing components coarser, kept longer."""
    def steps(columns: int) -> np.ndarray:
        out = np.minimum(1.0 + slope * np.arange(columns), top)
        out[:1] = quantize.MEAN_STEP
        return out
    return [setting(m, "component_steps", steps) for m in (quantize, refine, plane_encoder)]


def mean_step_to(ratio: float, largest: float) -> Patch:
    """The patch mean's step (`codec.quantize.MEAN_STEP`, 0.7) `ratio` times the step in the
    encodes at luma steps up to `largest` (prototype: `schedule.Encoder.encode` wrapped)."""
    encode = schedule.Encoder.encode

    def wrapped(self, step, *args, **kwargs):  # type: ignore[no-untyped-def]
        old = quantize.MEAN_STEP
        quantize.MEAN_STEP = ratio if step <= largest else old
        try:
            return encode(self, step, *args, **kwargs)
        finally:
            quantize.MEAN_STEP = old
    return setting(schedule.Encoder, "encode", wrapped)


#: What aq=True wrote at a9dfe94 (2026-12-03): the adapted plane's patch mean at
#: `codec.quantize.MEAN_STEP` (0.7) at every step, as every other plane's.
AQ_1203: list[Patch] = [setting(aq_encoder, "AQ_MEAN_STEP_UP_TO", -1.0), g_scale(1.2),
                        *DEAD_ZONE_RDOQ]
#: What aq=True wrote at a6cb2a6 (2026-12-04): G 1.2 times the geometric mean, effort 2's RDOQ
#: from the dead zone in one round.
AQ_1204: list[Patch] = [g_scale(1.2), *DEAD_ZONE_RDOQ]


def adapted_plane_rdoq_from(rounding: float) -> Patch:
    """Only the adapted plane's RDOQ starts from `rounding` (prototype: the chroma planes'
    from the dead zone)."""
    original = aq_encoder.AQStats

    class Started(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            kwargs["rdoq_rounding"] = rounding
            super().__init__(*args, **kwargs)
    return setting(aq_encoder, "AQStats", Started)


#: "R" in the variants' names: RDOQ at 0.07 and the chroma ratio 0.95 -> 0.7 over luma steps 16..64;
#: R_G: R with G written 1.2 times the geometric mean.
R: list[Patch] = [rdoq(0.07), chroma(0.95, 16, 0.7, 64)]
R_G: list[Patch] = [*R, g_scale(1.2)]


VARIANTS: dict[str, list[Patch]] = {
    "before": BEFORE,
    "G x0.5": [*BEFORE, g_scale(0.5)],
    "G x2": [*BEFORE, g_scale(2.0)],
    "K 2": [*BEFORE, setting(encoder, "AQ_COMPONENTS", 2)],
    "K 8": [*BEFORE, setting(encoder, "AQ_COMPONENTS", 8)],
    "chroma 1.0": [*BEFORE, flat(1.0)],
    "chroma 0.7": [*BEFORE, flat(0.7)],
    "rank lambda 0.09": [*BEFORE, setting(quantize, "LAMBDA", 0.09)],
    "rank lambda 0.04": [*BEFORE, setting(quantize, "LAMBDA", 0.04)],
    "rdoq lambda 0.05": [*BEFORE, rdoq(0.05)],
    "rdoq lambda 0.06": [*BEFORE, rdoq(0.06)],
    "rdoq lambda 0.07": [*BEFORE, rdoq(0.07)],
    "rdoq lambda 0.14": [*BEFORE, rdoq(0.14)],
    "mean step 0.6": [*BEFORE, setting(quantize, "MEAN_STEP", 0.6)],
    "mean step 0.8": [*BEFORE, setting(quantize, "MEAN_STEP", 0.8)],
    "deblock strong": [*BEFORE, setting(deblock, "DEBLOCK_STRENGTHS",
                                        ((2.0, 1.0, 0.1), (4.0, 2.0, 0.1), (2.0, 1.0, 0.2),
                                         (4.0, 2.0, 0.2), (4.0, 2.0, 0.35), (6.0, 3.0, 0.35)))],
    "chroma 1.0->0.7 (16..64)": [*BEFORE, chroma(1.0, 16, 0.7, 64)],
    "chroma 1.0->0.85 (16..64)": [*BEFORE, chroma(1.0, 16, 0.85, 64)],
    "chroma 0.85->0.7 (32..128)": [*BEFORE, chroma(0.85, 32, 0.7, 128)],
    "rdoq 0.07 + chroma 1.0->0.7": [*BEFORE, rdoq(0.07), chroma(1.0, 16, 0.7, 64)],
    "rdoq 0.07 + chroma 0.95->0.7": [*BEFORE, *R],
    "rdoq 0.07 + chroma 1.0->0.6 (20..80)": [*BEFORE, rdoq(0.07), chroma(1.0, 20, 0.6, 80)],
    "rdoq 0.07 + chroma 1.1->0.7 (10..64)": [*BEFORE, rdoq(0.07), chroma(1.1, 10, 0.7, 64)],
    "rdoq 0.06 + chroma 0.9->0.65 (16..80)": [*BEFORE, rdoq(0.06), chroma(0.9, 16, 0.65, 80)],
    "R + rank 0.09": [*BEFORE, *R, setting(quantize, "LAMBDA", 0.09)],
    "R + G x1.2": [*BEFORE, *R_G],
    "R + G x1.4": [*BEFORE, *R, g_scale(1.4)],
    "patch4 only": [*BEFORE, setting(encoder, "AUTO_LAYOUTS", ("patch4",))],
    "patch8 only": [*BEFORE, setting(encoder, "AUTO_LAYOUTS", ("patch8",))],
    "luma patch4 bias +1.5": [*BEFORE, patch4_bias(1.5)],
    "luma patch4 bias +4": [*BEFORE, patch4_bias(4.0)],
    "luma patch4 bias -1.5": [*BEFORE, patch4_bias(-1.5)],
    "R + G x1.2 + luma patch4 bias +0.75": [*BEFORE, *R_G, patch4_bias(0.75)],
    "R + G x1.2 + luma patch4 bias +1.5": [*BEFORE, *R_G, patch4_bias(1.5)],
    "R + G x1.2 + luma patch4 bias +2.5": [*BEFORE, *R_G, patch4_bias(2.5)],
    "R + G x1.2 + bias +1.5 to step 64": [*BEFORE, *R_G, patch4_bias(1.5),
                                          setting(schedule, "AQ_PATCH4_MAX_STEP", 64.0)],
    "R + G x1.2 + bias +2.5 to step 64": [*BEFORE, *R_G, patch4_bias(2.5),
                                          setting(schedule, "AQ_PATCH4_MAX_STEP", 64.0)],
    "R + G x1.2 + bias +4 to step 64": [*BEFORE, *R_G, patch4_bias(4.0),
                                        setting(schedule, "AQ_PATCH4_MAX_STEP", 64.0)],
    "R + G x1.2 + bias +2.5 to step 40": [*BEFORE, *R_G, patch4_bias(2.5),
                                          setting(schedule, "AQ_PATCH4_MAX_STEP", 40.0)],
    # 2026-12-04, from what aq=True wrote at a9dfe94 ("12-03": the patch mean at 0.7 step):
    # today's aq=True with G written 1.4 / 1.6 times the geometric mean, the rank decision's
    # lambda (`codec.quantize.LAMBDA`, 0.06) raised
    "12-03 + G x1.4": [*AQ_1203, g_scale(1.4)],
    "12-03 + G x1.6": [*AQ_1203, g_scale(1.6)],
    "12-03 + rank 0.08": [*AQ_1203, setting(quantize, "LAMBDA", 0.08)],
    "12-03 + lean to step 100": [*AQ_1203, setting(schedule, "AQ_PATCH4_MAX_STEP", 100.0)],
    "12-03 + mean step 0.8": [*AQ_1203, setting(quantize, "MEAN_STEP", 0.8)],
    "12-03 + AC ramp 0.01 to 1.5": [*AQ_1203, *ac_ramp(0.01, 1.5)],
    "12-03 + AC ramp 0.02 to 1.5": [*AQ_1203, *ac_ramp(0.02, 1.5)],
    "12-03 + mean step 0.8 to step 45": [*AQ_1203, mean_step_to(0.8, 45.0)],
    "12-03 + mean step 0.9 to step 45": [*AQ_1203, mean_step_to(0.9, 45.0)],
    "12-03 + mean step 1.0 to step 45": [*AQ_1203, mean_step_to(1.0, 45.0)],
    "12-03 + mean step 1.1 to step 45": [*AQ_1203, mean_step_to(1.1, 45.0)],
    "12-03 + AC weights x1.03": [*AQ_1203, weight_gain(1.03)],
    "12-03 + AC weights x1.08": [*AQ_1203, weight_gain(1.08)],
    "12-03": AQ_1203,
    "12-04 + G x1.4": [*AQ_1204, g_scale(1.4)],
    # 2026-12-05, from what aq=True wrote at a6cb2a6 ("12-04"): effort 2's RDOQ from nearest
    # in two rounds (every plane, or the adapted plane only), in one round, and G on top
    "12-04": AQ_1204,
    "12-04 + G x1.6": [*AQ_1204, g_scale(1.6)],
    "12-04 + RDOQ nearest, 2 rounds": [g_scale(1.2)],
    "12-04 + RDOQ nearest, 1 round": [g_scale(1.2), setting(encoder, "AQ_RDOQ_ROUNDS", None)],
    "12-04 + RDOQ nearest, 2 rounds, luma only": [*AQ_1204, adapted_plane_rdoq_from(0.5),
                                                  setting(encoder, "AQ_RDOQ_ROUNDS", 2)],
    "12-04 + RDOQ nearest, 2 rounds + G x1.4": [g_scale(1.4)],
    "12-04 + RDOQ nearest, 2 rounds + G x2.0": [g_scale(2.0)],
    "best + G x1.8": [g_scale(1.8)],
    # 2026-12-05, round 2, from what aq=True wrote at ace1c23 ("12-05": G x1.6 at every
    # step): effort 2's G by the luma step (`tuning.AQ_EFFORT2_G_SCALE`'s points), other
    # constant G, and (restore off: --proxy) the chroma step, RDOQ and rank lambdas and K
    "12-05": [g_scale(1.6)],
    "12-05 + G x1.8": [g_scale(1.8)],
    "12-05 + G x2.0": [g_scale(2.0)],
    "12-05 + G x2.4": [g_scale(2.4)],
    "12-05 + G 1.6@40 -> 2.4@100": [g_by_step((40, 1.6), (100, 2.4))],
    "12-05 + G 1.6@60 -> 2.6@150": [g_by_step((60, 1.6), (150, 2.6))],
    "12-05 + G 1.6@40 -> 1.2@100": [g_by_step((40, 1.6), (100, 1.2))],
    "12-05 + G 2.0@15 -> 1.6@40": [g_by_step((15, 2.0), (40, 1.6))],
    "12-05 + G 2.0@15 -> 1.6@40 -> 1.2@100": [g_by_step((15, 2.0), (40, 1.6), (100, 1.2))],
    "12-05 + G 2.0@20 -> 1.6@60": [g_by_step((20, 2.0), (60, 1.6))],
    "12-05 + G 2.0@10 -> 1.6@25": [g_by_step((10, 2.0), (25, 1.6))],
    "12-05 + G 2.4@10 -> 1.6@30": [g_by_step((10, 2.4), (30, 1.6))],
    "12-05 + G 2.4@15 -> 1.6@40": [g_by_step((15, 2.4), (40, 1.6))],
    "12-05 + G 2.4@10 -> 2.0@20 -> 1.6@40": [g_by_step((10, 2.4), (20, 2.0), (40, 1.6))],
    "12-05 + G 2.4@10 -> 1.6@30 -> 1.3@80": [g_by_step((10, 2.4), (30, 1.6), (80, 1.3))],
    "12-05 + G 3.0@10 -> 1.6@30 -> 1.3@80": [g_by_step((10, 3.0), (30, 1.6), (80, 1.3))],
    "12-05 + G 3.0@10 -> 1.6@40": [g_by_step((10, 3.0), (40, 1.6))],
    "12-05 + G 3.0@15 -> 1.6@40": [g_by_step((15, 3.0), (40, 1.6))],
    "12-05 + G 3.0@10 -> 2.0@25 -> 1.6@50": [g_by_step((10, 3.0), (25, 2.0), (50, 1.6))],
    "12-05 + G 4.0@10 -> 1.6@30": [g_by_step((10, 4.0), (30, 1.6))],
    "12-05 + G 4.0@10 -> 2.4@20 -> 1.6@40": [g_by_step((10, 4.0), (20, 2.4), (40, 1.6))],
    "12-05 + chroma 0.90->0.65": [g_scale(1.6), chroma(0.90, 16, 0.65, 64)],
    "12-05 + chroma 0.95->0.60": [g_scale(1.6), chroma(0.95, 16, 0.60, 64)],
    "12-05 + rdoq 0.06": [g_scale(1.6), rdoq(0.06)],
    "12-05 + rdoq 0.08": [g_scale(1.6), rdoq(0.08)],
    "12-05 + rank 0.07": [g_scale(1.6), setting(quantize, "LAMBDA", 0.07)],
    "12-05 + K 2": [g_scale(1.6), setting(encoder, "AQ_COMPONENTS", 2)],
    "12-05 + K 6": [g_scale(1.6), setting(encoder, "AQ_COMPONENTS", 6)],
    "12-05 + G 2.0@15 -> 1.6@40 + rank 0.07": [g_by_step((15, 2.0), (40, 1.6)),
                                               setting(quantize, "LAMBDA", 0.07)],
    # 2026-12-05, round 2's rule ("12-05 + G 3.0@10 -> 1.6@30"): what 5057244 wrote
    "12-05b": [],
}
# every variant above starts from the rule before round 3 (ROUND2)
VARIANTS = {name: [*ROUND2, *patches] for name, patches in VARIANTS.items()}


def map_rounding(rounding: float) -> Patch:
    """Effort 2's map components rounded from `rounding` (`tuning.AQ_MAP_ROUNDING`)."""
    return setting(aq_encoder, "AQ_MAP_ROUNDING", rounding)


def effort2_chroma(*points: tuple[float, float]) -> Patch:
    """Effort 2's chroma ratio by the luma step (`tuning.AQ_EFFORT2_CHROMA_STEP`'s points)."""
    return setting(schedule, "AQ_EFFORT2_CHROMA_STEP", tuple(points))


#: effort 1's chroma ratio at effort 2 (AQ_CHROMA_STEP), as before round 3
EFFORT1_CHROMA: Patch = setting(schedule, "chroma_step_ratio", _effort1_chroma)
#: 2026-12-05, round 3, from "12-05b": the layout of plane 0 costed in both patch sides with
#: patch 8's cost leant (`tuning.AQ_PATCH8_LEAN`), the map components' rounding, effort 2's
#: chroma table (--proxy: restore off, for the first sweeps)
ROUND3: dict[str, list[Patch]] = {
    "12-05b + map rounding 0.40": [*ROUND2, map_rounding(0.40)],
    "12-05b + map rounding 0.42": [*ROUND2, map_rounding(0.42)],
    "12-05b + map rounding 0.45": [*ROUND2, map_rounding(0.45)],
    "12-05b + chroma 1.2@10": [*ROUND2[:-1], effort2_chroma((10, 1.2), (16, 0.95), (64, 0.7))],
    "12-05b + costed layout, no lean": [map_rounding(quantize.ROUNDING), EFFORT1_CHROMA,
                                        setting(schedule, "AQ_PATCH8_LEAN", 0.0)],
    "12-05b + costed layout, lean 0.03": [map_rounding(quantize.ROUNDING), EFFORT1_CHROMA,
                                          setting(schedule, "AQ_PATCH8_LEAN", 0.03)],
    "12-05b + costed layout": [map_rounding(quantize.ROUNDING), EFFORT1_CHROMA],
    "12-05b + costed layout, lean 0.12": [map_rounding(quantize.ROUNDING), EFFORT1_CHROMA,
                                          setting(schedule, "AQ_PATCH8_LEAN", 0.12)],
    "12-05b + costed layout + map rounding 0.42": [EFFORT1_CHROMA, map_rounding(0.42)],
    "12-05b + costed layout + map rounding 0.44": [EFFORT1_CHROMA, map_rounding(0.44)],
    "12-05b + costed layout + map rounding 0.45": [EFFORT1_CHROMA, map_rounding(0.45)],
    "12-05b + costed layout + map rounding 0.46": [EFFORT1_CHROMA, map_rounding(0.46)],
    "12-05b + costed layout + chroma 1.2@10": [
        map_rounding(quantize.ROUNDING), effort2_chroma((10, 1.2), (16, 0.95), (64, 0.7))],
    "12-05b + costed layout + map rounding 0.42 + chroma 1.2@10": [
        map_rounding(0.42), effort2_chroma((10, 1.2), (16, 0.95), (64, 0.7))],
    "12-05b + costed layout + map rounding 0.42 + chroma 1.4@10": [
        map_rounding(0.42), effort2_chroma((10, 1.4), (16, 0.95), (64, 0.7))],
    # today's aq=True (encoder.tuning: AQ_CHROMA_STEP, AQ_EFFORT2_CHROMA_STEP, AQ_G_SCALE,
    # AQ_EFFORT2_G_SCALE, AQ_RDOQ_LAMBDA, AQ_RDOQ_ROUNDING, AQ_RDOQ_ROUNDS, AQ_PATCH8_LEAN,
    # AQ_PATCH4_MAX_STEP, AQ_MEAN_STEP, AQ_MAP_ROUNDING): "12-05b + costed layout + map
    # rounding 0.44 + chroma 1.1@10"
    "best": [],
}
VARIANTS.update(ROUND3)


@contextmanager
def variant(name: str) -> Iterator[None]:
    undo = [apply() for apply in VARIANTS[name]]
    try:
        yield
    finally:
        for u in reversed(undo):
            u()


FIELDS = [f for f in compare.RDPoint.__dataclass_fields__]


def read_rows(path: Path) -> list[compare.RDPoint]:
    if not path.exists():
        return []
    with path.open() as f:
        return [compare.RDPoint(r["image"], r["codec"], float(r["setting"]), int(r["n_bytes"]),
                                float(r["bpp"]), float(r["psnr"]), float(r["ssim"]))
                for r in csv.DictReader(f)]


def append_rows(path: Path, rows: list[compare.RDPoint]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerows(asdict(r) for r in rows)


def sweep(img: np.ndarray, image: str, codec: str, settings: tuple,
          restore: bool = True) -> list[compare.RDPoint]:
    if codec == "jpeg":
        runs = [(q, *compare.run_jpeg(img, int(q))) for q in settings]
    else:
        with variant(codec):
            runs = [(q, *compare.run_svdi(img, int(q), effort=2, aq=True, restore=restore))
                    for q in settings]
    return [compare.RDPoint(image, codec, q, n, compare.bpp(n, img), compare.psnr(img, d),
                            compare.ssim(img, d)) for q, n, d in runs]


WINDOWS = (("psnr", 28.0, 38.0), ("psnr", 24.0, 30.0), ("ssim", 28.0, 38.0))


def table(rows: list[compare.RDPoint], names: list[str], images: list[str],
          reference: str = "before") -> None:
    rows = [r for r in rows if r.image in images]
    means = {}
    for measure, lo, hi in WINDOWS:
        per = compare.bd_results_per_image(rows, "jpeg", lo, hi, measure)  # type: ignore[arg-type]
        for name in names:
            vals = [per.get(name, {}).get(i) for i in images]
            bd = [v.bd_rate for v in vals if v is not None and np.isfinite(v.bd_rate)]
            means[(name, measure, lo)] = float(np.mean(bd)) if bd else float("nan")
    print(f"{len(images)} images; BD vs JPEG 28-38 / 24-30 / luma SSIM; points vs {reference}")
    for name in names:
        cells = [means[(name, m, lo)] for m, lo, _ in WINDOWS]
        base = [means.get((reference, m, lo), float("nan")) for m, lo, _ in WINDOWS]
        pts = " / ".join(f"{c - b:+.2f}" for c, b in zip(cells, base))
        print(f"  {name:28s} {' / '.join(f'{c:+.2f}' for c in cells)} %   ({pts})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--images", nargs="*", help="image stems (default: every PNG)")
    ap.add_argument("--only", nargs="*", help="variants (default: all)")
    ap.add_argument("--rows", type=Path, nargs="+", default=[Path("/tmp/ssim_tune_rows.csv")],
                    help="CSV the new rows go to (the first) and rows are read from (all)")
    ap.add_argument("--reference", default="before",
                    help="the variant the points are taken against (always measured)")
    ap.add_argument("--quick", action="store_true", help="rd.py's quick qualities")
    ap.add_argument("--proxy", action="store_true",
                    help="restore=False (6-10 times faster; keep its rows in their own --rows file)")
    args = ap.parse_args()
    paths = sorted(args.corpus.glob("*.png"))
    if args.images:
        paths = [p for p in paths if p.stem in args.images]
    names = [args.reference, *[n for n in (args.only or VARIANTS) if n != args.reference]]

    def rows() -> list[compare.RDPoint]:
        found: dict[tuple[str, str, float], compare.RDPoint] = {}
        for path in args.rows:
            found.update({(r.image, r.codec, r.setting): r for r in read_rows(path)})
        return list(found.values())
    done = {(r.image, r.codec) for r in rows()}
    for p in paths:
        img = np.asarray(Image.open(p).convert("RGB"))
        for codec in ["jpeg", *names]:
            if (p.stem, codec) in done:
                continue
            c = compare.CODECS["jpeg" if codec == "jpeg" else "svdi-best"]
            append_rows(args.rows[0], sweep(img, p.stem, codec,
                                         c.quick_settings if args.quick else c.settings,
                                         not args.proxy))
            print(f"{p.stem} {codec}", flush=True)
    table(rows(), names, [p.stem for p in paths], args.reference)


if __name__ == "__main__":
    main()
