"""aq=True tunes the encoder for luma SSIM beyond the luma plane's steps (encoder only, no
format change; encoder.tuning AQ_CHROMA_STEP, AQ_EFFORT2_CHROMA_STEP, AQ_G_SCALE,
AQ_EFFORT2_G_SCALE, AQ_RDOQ_LAMBDA, AQ_RDOQ_ROUNDING, AQ_RDOQ_ROUNDS, AQ_PATCH8_LEAN,
AQ_MEAN_STEP, AQ_MAP_ROUNDING): the chroma step by the luma step (effort 2's own table), G
above the plane's geometric mean (more at effort 2, by the luma step), effort 2's RDOQ lambda,
start and rounds, at effort 2 the luma plane's layout costed in both patch sides with a lean
towards patch 4, the adapted plane's patch mean step at the higher rates and its map
components' rounding."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

import svdcodec
from svdcodec.codec import aq, quantize
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder import aq as aq_encoder
from svdcodec.encoder import schedule, step_for_quality, tuning
from svdcodec.format import unpack


def sample(size: tuple[int, int]) -> np.ndarray:
    pixels = np.asarray(Image.open(svdcodec.__path__[0] + "/data/sample.png").convert("RGB"))
    return np.ascontiguousarray(pixels[:size[0], :size[1]])


def test_chroma_step_ratio() -> None:
    """Without aq the fixed CHROMA_STEP; with it AQ_CHROMA_STEP's first ratio up to its step,
    its second from its step on, log-linear between (the geometric mean of the two steps
    takes the mean of the two ratios), never outside them."""
    (lo, fine), (hi, coarse) = tuning.AQ_CHROMA_STEP
    assert lo < hi and coarse < fine  # coarser chroma at high rates, finer at low
    for step in (0.5, lo, math.sqrt(lo * hi), hi, 400.0):
        assert schedule.chroma_step_ratio(step, False) == tuning.CHROMA_STEP
    assert schedule.chroma_step_ratio(0.5, True) == schedule.chroma_step_ratio(lo, True) == fine
    assert schedule.chroma_step_ratio(hi, True) == schedule.chroma_step_ratio(400.0, True) \
        == coarse
    assert schedule.chroma_step_ratio(math.sqrt(lo * hi), True) == pytest.approx(
        (fine + coarse) / 2)
    ratios = [schedule.chroma_step_ratio(s, True) for s in np.geomspace(lo, hi, 9)]
    assert all(a > b for a, b in itertools.pairwise(ratios))


def test_effort2_chroma_step_ratio() -> None:
    """At effort 2 with aq AQ_EFFORT2_CHROMA_STEP's points, log-linear in the step between
    them (the geometric mean of two neighbouring steps takes the mean of their ratios) and
    constant beyond them: coarser chroma than effort 1's above its first point, the same ratio
    from effort 1's first point on; without aq the fixed CHROMA_STEP."""
    points = tuning.AQ_EFFORT2_CHROMA_STEP
    (first, top), (last, bottom) = points[0], points[-1]
    assert schedule.chroma_step_ratio(0.5, True, True) == top
    assert schedule.chroma_step_ratio(400.0, True, True) == bottom
    assert schedule.chroma_step_ratio(10.0, False, True) == tuning.CHROMA_STEP
    for (s0, r0), (s1, r1) in itertools.pairwise(points):
        assert schedule.chroma_step_ratio(s0, True, True) == pytest.approx(r0)
        assert schedule.chroma_step_ratio(math.sqrt(s0 * s1), True, True) == pytest.approx(
            (r0 + r1) / 2)
    assert schedule.chroma_step_ratio(first, True, True) > schedule.chroma_step_ratio(first, True)
    lo = tuning.AQ_CHROMA_STEP[0][0]
    for step in np.geomspace(lo, last * 2, 7):
        assert schedule.chroma_step_ratio(step, True, True) == pytest.approx(
            schedule.chroma_step_ratio(step, True))


@pytest.mark.parametrize("quality", [10, 30, 85])
def test_chroma_planes_step(quality: int) -> None:
    """The chroma planes of a colour image take the luma step times the ratio: the fixed one
    without aq, the step's own with it; the files decode as the reference decoder does."""
    pixels = sample((96, 128))
    step = step_for_quality(quality)
    for adapted in (False, True):
        data = svdcodec.encode(pixels, quality=quality, aq=adapted)
        planes = unpack(data).planes
        assert planes[0].step == step
        ratio = schedule.chroma_step_ratio(step, adapted)
        assert [p.step for p in planes[1:]] == [step * ratio] * 2
        assert np.array_equal(svdcodec.decode(data), decode_reference(data))


@pytest.mark.parametrize(("effort", "quality"), [(1, 40), (2, 40), (2, 70)])
def test_g_scale(effort: int, quality: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The G an adapted plane is written with is AQ_G_SCALE (effort 2: effort2_g_scale at the
    luma step) times the geometric mean of its patches' variance + C (binary16), which the
    map then reads: other G, other files."""
    step = step_for_quality(quality)
    scale = tuning.AQ_G_SCALE if effort == 1 else aq_encoder.effort2_g_scale(step)
    assert 1.0 < tuning.AQ_G_SCALE < aq_encoder.effort2_g_scale(step)
    log_sums, rows = [100.0, 120.0], 50
    mean = math.exp(sum(log_sums) / rows)
    assert aq_encoder.plane_g(log_sums, rows, step, effort == 2) == aq.g_bits(scale * mean)
    pixels = sample((96, 128))
    data = svdcodec.encode(pixels, quality=quality, aq=True, effort=effort)
    if effort == 1:
        monkeypatch.setattr(aq_encoder, "AQ_G_SCALE", 1.0)
    else:
        monkeypatch.setattr(aq_encoder, "AQ_EFFORT2_G_SCALE", ((step, 1.0),))
    unscaled = svdcodec.encode(pixels, quality=quality, aq=True, effort=effort)
    g = aq.binary16(unpack(data).planes[0].aq[1])
    g1 = aq.binary16(unpack(unscaled).planes[0].aq[1])
    assert g / g1 == pytest.approx(scale, rel=2e-3)
    assert data != unscaled


def test_effort2_g_scale_by_step() -> None:
    """Effort 2's G scale is each of AQ_EFFORT2_G_SCALE's points' scale at its step, the end
    points' beyond them, and between two points the geometric interpolation in the step (at
    their steps' geometric mean: their scales' geometric mean); never below effort 1's."""
    points = tuning.AQ_EFFORT2_G_SCALE
    assert [s for s, _ in points] == sorted(s for s, _ in points)
    for s, g in points:
        assert aq_encoder.effort2_g_scale(s) == pytest.approx(g, rel=1e-12)
    assert aq_encoder.effort2_g_scale(points[0][0] / 3) == pytest.approx(points[0][1], rel=1e-12)
    assert aq_encoder.effort2_g_scale(points[-1][0] * 3) == pytest.approx(points[-1][1], rel=1e-12)
    for (s0, g0), (s1, g1) in itertools.pairwise(points):
        assert aq_encoder.effort2_g_scale(math.sqrt(s0 * s1)) == pytest.approx(math.sqrt(g0 * g1),
                                                                             rel=1e-12)
    scales = [aq_encoder.effort2_g_scale(step_for_quality(q)) for q in range(1, 101)]
    assert min(scales) > tuning.AQ_G_SCALE


@pytest.mark.parametrize("adapted", [False, True])
def test_rdoq_lambda(adapted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At effort 2 every run/level optimisation of an aq encode (every plane) runs at
    AQ_RDOQ_LAMBDA for AQ_RDOQ_ROUNDS rounds, of any other encode at RDOQ_LAMBDA for
    RDOQ_ROUNDS."""
    seen: list[tuple[float | None, int | None]] = []
    original = quantize.optimise_levels

    def recorded(*args, **kwargs):
        seen.append((args[4] if len(args) > 4 else kwargs.get("lam"),
                     args[5] if len(args) > 5 else kwargs.get("rounds")))
        return original(*args, **kwargs)
    monkeypatch.setattr(quantize, "optimise_levels", recorded)
    monkeypatch.setattr(aq_encoder, "optimise_levels", recorded)
    svdcodec.encode(sample((96, 128)), quality=50, effort=2, aq=adapted)
    assert seen
    expected = ((tuning.AQ_RDOQ_LAMBDA, tuning.AQ_RDOQ_ROUNDS) if adapted
                else (quantize.RDOQ_LAMBDA, quantize.RDOQ_ROUNDS))
    assert {(quantize.RDOQ_LAMBDA if lam is None else lam,
             quantize.RDOQ_ROUNDS if rounds is None else rounds) for lam, rounds in seen} \
        == {expected}


@pytest.mark.parametrize("adapted", [False, True])
def test_rdoq_rounding(adapted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At effort 2 every plane's quantizer of an aq encode starts the optimised levels from
    AQ_RDOQ_ROUNDING (rounding to nearest), of any other encode from RDOQ_ROUNDING (the dead
    zone)."""
    assert tuning.AQ_RDOQ_ROUNDING != quantize.RDOQ_ROUNDING
    seen: set[float] = set()
    original = quantize.ColumnStats.__init__

    def recorded(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        if self.sparse is not None:
            seen.add(self.rdoq_rounding)
    monkeypatch.setattr(quantize.ColumnStats, "__init__", recorded)
    svdcodec.encode(sample((96, 128)), quality=50, effort=2, aq=adapted)
    assert seen == {tuning.AQ_RDOQ_ROUNDING if adapted else quantize.RDOQ_ROUNDING}


def test_rdoq_rounding_and_rounds_of_column_stats() -> None:
    """ColumnStats' own start and rounds: from nearest more levels are non-zero before the
    optimisation lowers them, a second round lowers at least as many as one, and None is
    RDOQ_ROUNDING and RDOQ_ROUNDS."""
    rng = np.random.default_rng(6)
    values = (rng.laplace(size=(400, 24)) * 3).astype(np.float32)
    groups = [(1, 24)]

    def nonzeros(rounding: float | None, rounds: int | None, lam: float = 0.10) -> int:
        stats = quantize.ColumnStats(24, 1.0, groups, rdoq_lambda=lam, rdoq_rounding=rounding,
                                     rdoq_rounds=rounds)
        return int(np.count_nonzero(stats.add(values)))
    assert nonzeros(None, None) == nonzeros(quantize.RDOQ_ROUNDING, quantize.RDOQ_ROUNDS)
    # a lambda too small to lower any level leaves each rounding's own integers
    nearest = int(np.count_nonzero(quantize.quantize(values, 1.0, rounding=0.5)))
    dead_zone = int(np.count_nonzero(quantize.quantize(values, 1.0)))
    assert nonzeros(0.5, 1, lam=1e-9) == nearest > dead_zone == nonzeros(None, 1, lam=1e-9)
    assert nonzeros(0.5, 2) <= nonzeros(0.5, 1) < nearest


@pytest.mark.parametrize("map_rounding", [quantize.ROUNDING, tuning.AQ_MAP_ROUNDING])
def test_map_columns_keep_a_dead_zone(map_rounding: float) -> None:
    """An adapted band's components the map reads are quantized from their own offset (ROUNDING
    at effort 1, AQ_MAP_ROUNDING at effort 2) whatever the RDOQ's start (the decoder's map is
    made of them, as `encoder_map` quantizes them), the later ones from AQ_RDOQ_ROUNDING."""
    rng = np.random.default_rng(7)
    values = (rng.laplace(size=(300, 12)) * 4).astype(np.float32)
    multipliers = rng.choice(aq.CLASSES, size=300)
    stats = aq_encoder.AQStats(12, 1.0, [(1, 12)], multipliers, 4,
                               rdoq_lambda=1e-9, rdoq_rounding=tuning.AQ_RDOQ_ROUNDING,
                               map_rounding=map_rounding)
    ints = stats.add(values)
    classes = aq_encoder.class_index(multipliers)
    assert stats.inv_steps is not None
    dead_zone, _ = aq_encoder.adapted_integers(values, stats.inv_steps, classes, map_rounding)
    nearest, _ = aq_encoder.adapted_integers(values, stats.inv_steps, classes,
                                             tuning.AQ_RDOQ_ROUNDING)
    assert np.array_equal(ints[:, :4], dead_zone[:, :4])
    assert np.array_equal(ints[:, 4:], nearest[:, 4:])
    assert not np.array_equal(dead_zone[:, 4:], nearest[:, 4:])


def test_map_rounding_rule() -> None:
    """Effort 2 (levels optimised) rounds the map components from AQ_MAP_ROUNDING, closer to
    nearest than effort 1's dead zone (ROUNDING), which keeps its bytes."""
    assert aq_encoder.map_rounding(False) == quantize.ROUNDING
    assert aq_encoder.map_rounding(True) == tuning.AQ_MAP_ROUNDING
    assert quantize.ROUNDING < tuning.AQ_MAP_ROUNDING < 0.5


def test_rdoq_lambda_of_column_stats() -> None:
    """ColumnStats' own lambda: 0 leaves the dead zone's integers (no optimisation), a larger
    one lowers more levels than RDOQ_LAMBDA; None is RDOQ_LAMBDA."""
    rng = np.random.default_rng(5)
    values = (rng.laplace(size=(400, 24)) * 3).astype(np.float32)
    groups = [(1, 24)]

    def nonzeros(lam: float | None) -> int:
        stats = quantize.ColumnStats(24, 1.0, groups, rdoq_lambda=lam)
        return int(np.count_nonzero(stats.add(values)))
    dead_zone = int(np.count_nonzero(quantize.ColumnStats(24, 1.0).add(values)))
    assert quantize.ColumnStats(24, 1.0, groups, rdoq_lambda=0.0).sparse is None
    assert nonzeros(0.0) == dead_zone
    assert nonzeros(None) == nonzeros(quantize.RDOQ_LAMBDA) < dead_zone
    assert nonzeros(4 * quantize.RDOQ_LAMBDA) < nonzeros(quantize.RDOQ_LAMBDA)


def test_patch4_bias_moves_the_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bias is added to the layout model's score: a score of -2 predicts patch 8, with a
    bias of 1.5 it is within a margin of 1 (both coded), with 3.5 patch 4."""
    from svdcodec.encoder import plane as plane_coding
    grams = {side: np.diag(np.linspace(1.0, 100.0, side * side)) for side in (4, 8)}
    rows = {4: 400, 8: 100}
    constant = [0.0] * 9 + [-2.0, 0.0, 0.0]  # the constant's weight alone: a score of -2
    monkeypatch.setattr(tuning, "LAYOUT_MODEL", tuple(constant))
    monkeypatch.setattr(tuning, "LAYOUT_MODEL_MARGIN", 1.0)
    assert plane_coding.predicted_side(grams, rows, 2.0, False) == 8
    assert plane_coding.predicted_side(grams, rows, 2.0, False, 1.5) is None
    assert plane_coding.predicted_side(grams, rows, 2.0, False, 3.5) == 4


def test_effort2_adapted_plane_costs_both_layouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """At effort 2 with aq plane 0 is coded in patch 4 and patch 8 (not predicted) and patch
    8's D + lambda R taken 1 + AQ_PATCH8_LEAN times up to AQ_PATCH4_MAX_STEP; the chroma
    planes, effort 1 and encodes without aq predict as before, without a lean."""
    predicted: list[bool] = []
    original = schedule.predicted_side

    def recorded(grams, rows, step, chroma, bias=0.0):  # type: ignore[no-untyped-def]
        predicted.append(chroma)
        return original(grams, rows, step, chroma, bias)
    monkeypatch.setattr(schedule, "predicted_side", recorded)
    leans: list[tuple[int, int, float]] = []
    lean = schedule.Encoder.layout_lean

    def recorded_lean(self, index, step, patch):  # type: ignore[no-untyped-def]
        leans.append((index, patch, lean(self, index, step, patch)))
        return leans[-1][2]
    monkeypatch.setattr(schedule.Encoder, "layout_lean", recorded_lean)
    pixels = sample((256, 256))
    assert step_for_quality(50) <= tuning.AQ_PATCH4_MAX_STEP < step_for_quality(10)
    svdcodec.encode(pixels, quality=50, aq=True, effort=2)
    assert predicted and all(predicted)  # only the chroma planes predicted
    assert (0, 8, 1.0 + tuning.AQ_PATCH8_LEAN) in leans and (0, 4, 1.0) in leans
    assert {f for i, _, f in leans if i} <= {1.0}
    leans.clear()
    svdcodec.encode(pixels, quality=10, aq=True, effort=2)  # a low rate: no lean
    assert (0, 8, 1.0) in leans and {f for _, _, f in leans} == {1.0}
    for options in ({"quality": 50, "effort": 2, "aq": False}, {"quality": 50, "aq": True}):
        predicted.clear()
        leans.clear()
        svdcodec.encode(pixels, **options)
        assert False in predicted  # plane 0 predicted
        assert {f for _, _, f in leans} <= {1.0}


def test_the_lean_moves_the_choice_to_patch_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large lean makes plane 0 of an effort-2 aq encode patch 4 where it is patch 8
    without one (the choice is by the leant cost, not only a recorded factor): the sample
    photo blurred, which patch 8 codes more cheaply."""
    image = Image.fromarray(sample((256, 256))).filter(ImageFilter.GaussianBlur(1))
    pixels = np.asarray(image)
    monkeypatch.setattr(schedule, "AQ_PATCH8_LEAN", 0.0)
    sides = set()
    for quality in (30, 50, 70):
        plane = unpack(svdcodec.encode(pixels, quality=quality, aq=True, effort=2)).planes[0]
        sides.add(plane.patch)
    assert 8 in sides
    monkeypatch.setattr(schedule, "AQ_PATCH8_LEAN", 10.0)
    for quality in (30, 50, 70):
        plane = unpack(svdcodec.encode(pixels, quality=quality, aq=True, effort=2)).planes[0]
        assert plane.patch == 4


def test_rate_control_with_aq_searches_from_its_own_finest_step() -> None:
    """target_psnr and max_bytes with aq=True search steps from AQ_FINEST_SEARCHED_STEP: at
    FINEST_SEARCHED_STEP an adapted plane's exact product resolves its factors too coarsely
    (A o M's 4 bits), so the search refused a target that quality 100 reaches and a roomy
    max_bytes took that coarse file."""
    from svdcodec.evaluation.metrics import psnr

    pixels = sample((64, 64))
    assert tuning.AQ_FINEST_SEARCHED_STEP < step_for_quality(100)
    best = psnr(pixels, svdcodec.decode(svdcodec.encode(pixels, quality=100, aq=True)))
    data = svdcodec.encode(pixels, aq=True, target_psnr=best - 1)
    assert unpack(data).planes[0].adapted
    assert psnr(pixels, svdcodec.decode(data)) >= best - 1
    roomy = svdcodec.encode(pixels, aq=True, max_bytes=1 << 24)
    assert psnr(pixels, svdcodec.decode(roomy)) >= best - 0.5


def test_mean_step_rule() -> None:
    """An adapted plane's patch mean: AQ_MEAN_STEP up to AQ_MEAN_STEP_UP_TO at effort 2 (its
    levels optimised), else None, which ColumnStats takes as MEAN_STEP, as in every plane."""
    up_to = tuning.AQ_MEAN_STEP_UP_TO
    assert tuning.AQ_MEAN_STEP != quantize.MEAN_STEP
    assert aq_encoder.mean_step(up_to, True) == aq_encoder.mean_step(1.0, True) \
        == tuning.AQ_MEAN_STEP
    assert aq_encoder.mean_step(up_to * 1.01, True) is None
    assert aq_encoder.mean_step(1.0, False) is None
    for mean, expected in ((None, quantize.MEAN_STEP), (tuning.AQ_MEAN_STEP, tuning.AQ_MEAN_STEP)):
        stats = quantize.ColumnStats(5, 4.0, patches=True, mean_step=mean)
        assert list(stats.steps) == [4.0 * expected] + [4.0] * 4
    assert quantize.finest_step(5, 1.5) == 1.0 and quantize.finest_step(5) == quantize.MEAN_STEP


def test_mean_step_only_for_the_adapted_plane_at_effort_2(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The adapted plane's quantizer (AQStats) and its map take the patch mean at
    AQ_MEAN_STEP times the step at effort 2 and steps up to AQ_MEAN_STEP_UP_TO, MEAN_STEP at
    larger steps and at effort 1; the files decode as the reference decoder does, and differ
    from those written with the mean at MEAN_STEP."""
    seen: list[float] = []
    original = aq_encoder.AQStats

    class Recorded(original):  # type: ignore[misc, valid-type]
        def __init__(self, columns, step, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(columns, step, *args, **kwargs)
            seen.append(round(float(self.steps[0]) / step, 6))
    monkeypatch.setattr(aq_encoder, "AQStats", Recorded)
    pixels = sample((256, 256))
    assert step_for_quality(50) <= tuning.AQ_MEAN_STEP_UP_TO < step_for_quality(20)
    cases = (({"quality": 50, "effort": 2}, tuning.AQ_MEAN_STEP),
             ({"quality": 20, "effort": 2}, quantize.MEAN_STEP),
             ({"quality": 50, "effort": 1}, quantize.MEAN_STEP))
    for options, expected in cases:
        seen.clear()
        data = svdcodec.encode(pixels, aq=True, **options)
        assert unpack(data).planes[0].adapted
        assert seen and set(seen) == {expected}
        assert np.array_equal(svdcodec.decode(data), decode_reference(data))
    data = svdcodec.encode(pixels, quality=50, aq=True, effort=2)
    monkeypatch.setattr(aq_encoder, "AQ_MEAN_STEP_UP_TO", -1.0)
    assert svdcodec.encode(pixels, quality=50, aq=True, effort=2) != data
