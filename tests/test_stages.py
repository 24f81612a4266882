"""Each codec stage on its own, through its public functions: layout, colour, quantization,
coding, and the decoder's band plan. The whole-file round trips are in test_codec and
test_streaming; here each stage's contract is checked where a failure names the stage."""

from __future__ import annotations

import numpy as np
import pytest

from svdcodec import SvdiError
from svdcodec.codec import coding, colour, exact, layout, quantize
from svdcodec.decoder.plane import BandPlan
from svdcodec.encoder.plane import plane_with
from svdcodec.format import LAYOUT_PATCH, LAYOUT_PLAIN, Plane

RNG = np.random.default_rng(7)


# ----------------------------------------------------------------------------- layout


@pytest.mark.parametrize("patch", [0, 2, 4, 8, 16, 32])
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (32, 64), (33, 65)])
def test_layout_round_trip(patch: int, shape: tuple[int, int]) -> None:
    plane = RNG.normal(size=shape).astype(np.float32)
    matrix = layout.to_matrix(plane, patch)
    if patch:
        gh, gw = layout.grid(*shape, patch)
        assert matrix.shape == (gh * gw, patch * patch)
        np.testing.assert_array_equal(matrix[0].reshape(patch, patch)[:1, :1], plane[:1, :1])
    np.testing.assert_array_equal(layout.from_matrix(matrix, *shape, patch), plane)


@pytest.mark.parametrize("patch", [2, 4, 8, 16])
def test_band_pixels_inverts_patch_rows(patch: int) -> None:
    rows = RNG.integers(0, 255, (2 * patch, 5 * patch + 3)).astype(np.uint8)
    matrix = layout.patch_rows(rows, patch)
    per_row = layout.grid(*rows.shape, patch)[1]
    back = layout.band_pixels(matrix, patch, per_row, *rows.shape)
    np.testing.assert_array_equal(back, rows)


@pytest.mark.parametrize("patch", [2, 4, 8])
def test_quarter_patches_are_patch_rows(patch: int) -> None:
    """The small patches moved out of the big ones that tile the rows exactly are the small
    patches of the rows, bit for bit (the encoder takes patch4 from its patch8 this way)."""
    rows = RNG.normal(size=(4 * patch, 6 * patch)).astype(np.float32)
    big = layout.patch_rows(rows, 2 * patch)
    small = layout.quarter_patches(big, patch, layout.grid(*rows.shape, 2 * patch)[1])
    np.testing.assert_array_equal(small.view(np.uint32),
                                  layout.patch_rows(rows, patch).view(np.uint32))


# ----------------------------------------------------------------------------- colour


@pytest.mark.parametrize("channels", [3, 4])
def test_colour_round_trip_within_two_levels(channels: int) -> None:
    """Y'CbCr rounded to bytes, as JPEG does, costs at most two levels (one in most pixels);
    alpha passes through exactly."""
    pixels = RNG.integers(0, 256, (64, 48, channels)).astype(np.uint8)
    planes = colour.to_planes(pixels, True, False, 1.0)
    assert len(planes) == channels and all(p.dtype == np.float32 for p in planes)
    back = colour.from_planes(planes, 64, 48, np.dtype(np.uint8), True, False, 1.0)
    error = np.abs(back.astype(int) - pixels)
    assert error[..., :3].max() <= 2 and np.mean(error[..., :3] > 1) < 0.05
    np.testing.assert_array_equal(back[..., 3:], pixels[..., 3:])


def test_colour_scales_other_types() -> None:
    pixels = (RNG.random((4, 5, 2)) * 1000).astype(np.float32)
    planes = colour.to_planes(pixels, False, False, 1000 / 255)
    assert float(np.max(planes[0])) <= 255.01
    back = colour.from_planes(planes, 4, 5, np.dtype(np.float32), False, False, 1000 / 255)
    np.testing.assert_allclose(back, pixels, rtol=1e-6)


def test_subsampled_chroma_is_halved() -> None:
    pixels = RNG.integers(0, 256, (10, 7, 3)).astype(np.uint8)
    planes = colour.to_planes(pixels, True, True, 1.0)
    assert [p.shape for p in planes] == [(10, 7), (5, 4), (5, 4)]


# ----------------------------------------------------------------------------- quantization


def test_dead_zone_quantizer() -> None:
    step = 2.0
    values = np.array([0.0, 1.0, 1.25, -1.25, 1.23, 3.0, -100.0], dtype=np.float32)
    q = quantize.quantize(values, step)
    # |v| / step + ROUNDING, floored, with the sign: 1.25 / 2 + 0.38 = 1.005 -> 1.
    assert q.tolist() == [0, 0, 1, -1, 0, 1, -50]
    assert np.all(np.abs(q * step - values) <= step)  # never off by more than a step


def test_component_steps_quantize_each_column_at_its_own_step() -> None:
    """A patch layout's U (`ColumnStats(patches=True)`): column k is the dead-zone quantizer
    at step * component_steps[k] (the patch mean to nearest), its error in plane units."""
    step, columns = 3.0, 70
    multipliers = quantize.component_steps(columns)
    assert multipliers[0] == quantize.MEAN_STEP != 1.0 and np.all(multipliers[1:] == 1.0)
    values = (RNG.standard_normal((200, columns)) * 8.0).astype(np.float32)
    stats = quantize.ColumnStats(columns, step, patches=True)
    ints = stats.add(values)
    for k in (0, 1, columns - 1):
        own = step * multipliers[k]
        rounding = quantize.FIRST_ROUNDING if k == 0 else quantize.ROUNDING
        assert np.array_equal(ints[:, k], quantize.quantize(values[:, k], own, rounding))
        rebuilt = ints[:, k] * own
        np.testing.assert_allclose(stats.error[k], np.sum((values[:, k] - rebuilt) ** 2.0),
                                   rtol=1e-4)
    plain = quantize.ColumnStats(columns, step).add(values)
    assert np.array_equal(plain[:, 1:], ints[:, 1:]) and not np.array_equal(plain, ints)


def sparse_band(rows: int = 400, columns: int = 24) -> np.ndarray:
    """Coefficients of decreasing magnitude along the columns, most beyond the first few
    within a step or two of zero, as in a patch layout's U."""
    scale = 40.0 / (1.0 + np.arange(columns)) ** 1.5
    return (RNG.standard_normal((rows, columns)) * scale).astype(np.float32)


def test_optimise_levels_lowers_by_one_at_most_and_accounts_its_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", 0.10)
    values, step = sparse_band(), 1.5
    nearest = quantize.quantize(values, step, rounding=0.5)
    ints = nearest.copy()
    added = quantize.optimise_levels(ints, values, step, [(1, 8), (8, 24)])
    change = np.abs(nearest) - np.abs(ints)
    assert set(np.unique(change)) == {0, 1}  # some lowered, by one level, none raised
    assert np.all(ints * nearest >= 0)  # no sign changes
    assert np.array_equal(ints[:, 0], nearest[:, 0])  # outside the groups: untouched
    assert np.count_nonzero(ints == 0) > np.count_nonzero(nearest == 0)
    x = values.astype(np.float64) / step
    expected = ((x - ints) ** 2 - (x - nearest) ** 2).sum(axis=0)
    np.testing.assert_allclose(added, expected, rtol=1e-5, atol=1e-6)
    assert np.all(added >= 0)


def test_optimise_levels_zeroes_an_isolated_one_that_breaks_a_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of a frequent pattern (one large value, then zeros); in one row a 1 just above the
    half step sits far out, costing a rare symbol, and goes. Without a multiplier nothing
    changes; an unambiguous level (an exact 1) stays at any moderate multiplier."""
    values = np.zeros((200, 16), dtype=np.float32)
    values[:, 1] = 5.0
    values[7, 12] = 0.55
    values[9, 12] = 1.0
    nearest = quantize.quantize(values, 1.0, rounding=0.5)
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", 0.0)
    ints = nearest.copy()
    assert not quantize.optimise_levels(ints, values, 1.0, [(1, 16)]).any()
    assert np.array_equal(ints, nearest)
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", 0.10)
    quantize.optimise_levels(ints, values, 1.0, [(1, 16)])
    assert ints[7, 12] == 0 and ints[9, 12] == 1
    assert np.array_equal(ints[:, 1], nearest[:, 1])


def test_column_stats_with_sparse_groups_optimise_them(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """ColumnStats(sparse=...) is `optimise_levels` on the integers to nearest (the first
    column with FIRST_ROUNDING), its error and largest integers those of the result."""
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", 0.10)
    values, step = sparse_band(), 1.5
    stats = quantize.ColumnStats(24, step, [(1, 24)])
    ints = stats.add(values)
    expected = quantize.quantize(values, step, rounding=quantize.RDOQ_ROUNDING)
    expected[:, 0] = quantize.quantize(values[:, :1], step)[:, 0]
    quantize.optimise_levels(expected, values, step, [(1, 24)])
    assert np.array_equal(ints, expected)
    assert np.array_equal(stats.top, np.abs(ints).max(axis=0))
    error = ((values.astype(np.float64) - ints * step) ** 2).sum(axis=0)
    np.testing.assert_allclose(stats.error, error, rtol=1e-5)
    monkeypatch.setattr(quantize, "RDOQ_LAMBDA", None)  # off: the dead-zone quantizer
    assert np.array_equal(quantize.ColumnStats(24, step, [(1, 24)]).add(values),
                          quantize.quantize(values, step))


def test_plane_with_is_replace() -> None:
    """The encoder's copy of a PLAN record with its shift or filter set is dataclasses.replace
    of those fields, every other field kept."""
    from dataclasses import replace

    p = Plane(2, LAYOUT_PATCH, 8, 37, 51, 5, 3.5, 7, (3, 4, 5), (4, 15360))
    assert plane_with(p, shift=9) == replace(p, shift=9)
    assert plane_with(p, deblock=(1, 2, 3)) == replace(p, deblock=(1, 2, 3))
    assert plane_with(p, shift=0, deblock=(0, 0, 0)) == replace(p, shift=0, deblock=(0, 0, 0))
    q = Plane(1, LAYOUT_PLAIN, 0, 9, 4, 3, 1.0)
    assert plane_with(q, shift=2) == replace(q, shift=2)
    assert plane_with(q, shift=2).grid == replace(q, shift=2).grid


@pytest.mark.parametrize("shift", [0, 1, 20, 40, 63])
def test_exact_weight_sum_one_value_at_a_time_is_numpys(shift: int) -> None:
    """The encoder's sum(W) of a few dozen weights in Python floats is that of `weights`,
    and None exactly where `weights` refuses the shift."""
    for _ in range(200):
        sigma = np.exp(RNG.uniform(-20, 30, size=int(RNG.integers(0, 40))))
        step = float(np.exp(RNG.uniform(-8, 6)))
        y = exact.weight_terms(step, sigma)
        try:
            expected = exact.weights(step, sigma, shift, "plane")[1]
        except SvdiError:
            expected = None
        assert exact.scalar_weight_sum(y, shift) == expected


def test_reconstruct_is_the_spec_product() -> None:
    A = RNG.integers(-20, 20, (6, 3))
    B = RNG.integers(-20, 20, (5, 3))
    sigma = np.array([9.0, 4.0, 1.5], dtype=np.float32)
    step = 0.75
    expected = (step * A) @ np.diag(1 / sigma.astype(np.float64)) @ (step * B).T
    np.testing.assert_allclose(quantize.reconstruct(A, sigma, B, step), expected, rtol=1e-5)
    assert quantize.reconstruct(A[:, :0], sigma[:0], B[:, :0], step).shape == (6, 5)


def test_rank_decision_keeps_only_what_pays() -> None:
    """A component whose energy gain is below the cost of its bits is not kept."""
    sigma = np.array([100.0, 50.0, 1e-3])
    zeros = np.zeros(3)
    rank = quantize.choose_rank(sigma, zeros, zeros, np.full(3, 1e3), lambda i: 1e3,
                                lambda i: 1e3, 1.0)
    assert rank == 2


# ----------------------------------------------------------------------------- coding


@pytest.mark.parametrize("predictor", [coding.NONE, coding.HORIZONTAL, coding.VERTICAL,
                                       coding.PLANAR])
def test_prediction_round_trip(predictor: int) -> None:
    grids = RNG.integers(-(2**15), 2**15, (3, 9, 7)).astype(np.int16)
    residuals = coding.predict(grids, predictor)
    np.testing.assert_array_equal(coding.unpredict(residuals, predictor), grids)


def test_symbols_round_trip_with_escapes() -> None:
    matrix = np.zeros((40, 30), dtype=np.int32)
    matrix[RNG.integers(0, 40, 200), RNG.integers(0, 30, 200)] = RNG.integers(-9, 9, 200)
    matrix[3, 29] = 70000  # a value escape wider than int16
    matrix[5, 0] = -1
    symbols, run_escapes, value_escapes = coding.to_symbols(matrix)
    assert np.count_nonzero(symbols == coding.END_OF_ROW) >= matrix.shape[0]
    assert value_escapes.dtype == np.int32
    back = coding.from_symbols(symbols, run_escapes, value_escapes, matrix.shape)
    np.testing.assert_array_equal(back, matrix)


def test_long_runs_escape() -> None:
    matrix = np.zeros((2, 300), dtype=np.int16)
    matrix[0, 299] = 1
    symbols, run_escapes, value_escapes = coding.to_symbols(matrix)
    assert run_escapes.tolist() == [299 - coding.RUN_ESCAPE]
    np.testing.assert_array_equal(coding.from_symbols(symbols, run_escapes, value_escapes,
                                                      matrix.shape), matrix)


@pytest.mark.parametrize("damage", ["no row end", "extra row", "column past count",
                                    "reserved symbol"])
def test_invalid_symbols_rejected(damage: str) -> None:
    matrix = np.array([[0, 3, 0], [1, 0, 0]], dtype=np.int16)
    symbols, run_escapes, value_escapes = coding.to_symbols(matrix)
    shape = matrix.shape
    if damage == "no row end":
        symbols = symbols[:-1]
    elif damage == "extra row":
        shape = (1, 3)
    elif damage == "column past count":
        shape = (2, 1)
    else:
        symbols = symbols.copy()
        symbols[0] = 0x18  # R = 1, L = 8: only 0x08 may have L = 8
    with pytest.raises(SvdiError):
        coding.from_symbols(symbols, run_escapes, value_escapes, shape)


def test_narrow_keeps_values() -> None:
    for values, dtype in (([-128, 127], np.int8), ([-129], np.int16), ([40000], np.int32)):
        narrowed = coding.narrow(np.array(values, dtype=np.int64))
        assert narrowed.dtype == dtype and narrowed.tolist() == values


# ----------------------------------------------------------------------------- band plan


@pytest.mark.parametrize("layout_code, patch", [(LAYOUT_PLAIN, 0), (LAYOUT_PATCH, 8)])
def test_band_plan_covers_the_matrix_within_budget(layout_code: int, patch: int) -> None:
    plane = Plane(0, layout_code, patch, 1000, 600, 40, 1.0)
    bands = [(y, min(y + 64, 1000)) for y in range(0, 1000, 64)]
    budget = 4 * 40 * 150  # 150 matrix rows of the scaled left factor
    plan = BandPlan.of(plane, 40, bands, budget, local=False)
    m, n = plane.matrix_shape
    assert plan.mrows[0][0] == 0 and plan.mrows[-1][1] == m
    assert all(a[1] == b[0] for a, b in zip(plan.mrows, plan.mrows[1:]))
    assert [i for p in plan.passes for i in p] == list(range(len(bands)))
    for p in plan.passes:  # a pass holds one band, or as many as fit the budget
        rows = plan.mrows[p[-1]][1] - plan.mrows[p[0]][0]
        assert len(p) == 1 or rows * 4 * 40 <= budget
    assert plan.columns[0][0] == 0 and plan.columns[-1][1] == n
    assert len(plan.columns) == (1 if patch else -(-n // (budget // (4 * 40))))
    local = BandPlan.of(plane, 40, bands, budget, local=True)
    assert local.passes == [list(range(len(bands)))]
