"""Tests of the measurement layer: metrics, BD-rate, JPEG matching, baselines."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps, features

import svdcodec
from svdcodec.cli import compare as compare_cli
from svdcodec.cli import deep_images
from svdcodec.evaluation import codecs as compare
from svdcodec.evaluation import metrics

SAMPLE = Path(svdcodec.__file__).parent / "data" / "sample.png"


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    with Image.open(SAMPLE) as im:
        return np.asarray(im.convert("RGB"))


def smooth_image(h: int = 24, w: int = 32) -> np.ndarray:
    """A small deterministic RGB image: gradients plus a little texture."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 40 + 5 * x + 2 * y
    g = 128 + 60 * np.sin(x / 5) * np.cos(y / 7)
    b = 200 - 3 * y + 10 * ((x + y) % 3)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- psnr / ssim


def test_psnr_identical_is_inf() -> None:
    img = smooth_image()
    assert compare.psnr(img, img) == math.inf


def test_psnr_known_values() -> None:
    a = np.zeros((4, 4, 3), np.uint8)
    assert compare.psnr(a, a + 1) == pytest.approx(10 * math.log10(255.0**2))
    # float64 math: 0 vs 255 must not wrap around in uint8
    assert compare.psnr(a, np.full_like(a, 255)) == pytest.approx(0.0)
    assert compare.psnr(a, a + 2, peak=2.0) == pytest.approx(0.0)


def test_psnr_of_integers_is_the_float64_formula_in_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The banded exact integer sum gives the whole-image float64 mean's very value."""
    rng = np.random.default_rng(5)
    for dtype, peak in ((np.uint8, 255.0), (np.uint16, 65535.0), (np.int16, 32767.0)):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, (37, 29, 3), endpoint=True).astype(dtype)
        b = rng.integers(info.min, info.max, (37, 29, 3), endpoint=True).astype(dtype)
        whole = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        expected = 10.0 * math.log10(peak * peak / whole)
        for band in (1, 29 * 3 * 5, 1 << 20):   # a row, 5 rows, the whole image per band
            monkeypatch.setattr(metrics, "_ERROR_BAND_SAMPLES", band)
            assert metrics.psnr(a, b, peak) == expected
            assert metrics.psnr(a[5:30, 3:20], b[5:30, 3:20], peak) == 10.0 * math.log10(
                peak * peak / float(np.mean((a[5:30, 3:20].astype(np.float64)
                                             - b[5:30, 3:20].astype(np.float64)) ** 2)))


def test_psnr_of_a_large_image_needs_no_float64_copy() -> None:
    """svdi-compare measures whole 24 MP photos: PSNR must not hold float64 copies of them."""
    import tracemalloc

    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    b = a ^ rng.integers(0, 4, a.shape, dtype=np.uint8)
    tracemalloc.start()
    try:
        db = metrics.psnr(a, b)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert db == 10.0 * math.log10(255.0**2 / float(np.mean((a.astype(np.float64) - b) ** 2)))
    assert peak < a.size * 8 // 2      # half of one float64 copy of the image


def test_psnr_shape_mismatch() -> None:
    with pytest.raises(ValueError):
        compare.psnr(np.zeros((2, 2)), np.zeros((2, 3)))


def _ssim_brute_force(a: np.ndarray, b: np.ndarray) -> float:
    """Window-by-window SSIM straight from the definition (tiny images only)."""
    k1 = metrics.gaussian_kernel(1.5, 5)
    win = np.outer(k1, k1)
    x, y = compare.luma(a), compare.luma(b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx, vy = (win * (px - mx) ** 2).sum(), (win * (py - my) ** 2).sum()
            cxy = (win * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_definition() -> None:
    a = smooth_image(16, 19)
    rng = np.random.default_rng(0)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert compare.ssim(a, a) == pytest.approx(1.0)
    assert compare.ssim(a, b) == pytest.approx(_ssim_brute_force(a, b), rel=1e-9)
    assert compare.ssim(a, b) < 1.0


def test_ssim_rejects_tiny_images() -> None:
    with pytest.raises(ValueError):
        compare.ssim(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


def test_bpp_counts_pixels_not_samples() -> None:
    assert compare.bpp(96, np.zeros((8, 12, 3), np.uint8)) == pytest.approx(8.0)


# ---------------------------------------------------------------- BD-rate

RATES = np.array([0.25, 0.5, 1.0, 1.6, 2.5, 4.0])
PSNRS = np.array([27.0, 29.5, 32.0, 34.0, 36.5, 39.0])


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_scaled_rates(method: compare.BDMethod) -> None:
    # A = 0.9 B everywhere: A needs 10 % fewer bits; B needs 11.1 % more.
    assert compare.bd_rate(0.9 * RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(-10.0)
    assert compare.bd_rate(RATES, PSNRS, 0.9 * RATES, PSNRS, method=method) == pytest.approx(100 / 9)
    assert compare.bd_rate(RATES, PSNRS, RATES, PSNRS, 28, 38, method=method) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_bd_rate_respects_lo_hi(method: compare.BDMethod) -> None:
    # log-linear curves, interpolated exactly by both methods:
    # log r_a - log r_b = -0.05 (p - 30), whose mean over [30, 36] is -0.15.
    p = np.linspace(26.0, 40.0, 8)
    ra, rb = np.exp(0.10 * (p - 30)), np.exp(0.15 * (p - 30))
    assert compare.bd_rate(ra, p, rb, p, 30, 36, method=method) == pytest.approx(100 * math.expm1(-0.15))
    # limits beyond the data are clipped to the overlap [26, 40]: mean of p - 30 is 3 there too
    assert compare.bd_rate(ra, p, rb, p, 0, 100, method=method) == pytest.approx(100 * math.expm1(-0.15))


def test_bd_rate_cubic_fit_is_exact_on_cubic_data() -> None:
    p = np.linspace(26.0, 40.0, 9)
    ra = np.exp(0.001 * (p - 30) ** 3 + 0.1 * (p - 30))
    rb = np.exp(0.1 * (p - 30))
    # mean of 0.001 u^3 over u in [-2, 6] is 0.001 * (6**4 - 2**4) / 4 / 8 = 0.04
    expected = 100 * math.expm1(0.04)
    assert compare.bd_rate(ra, p, rb, p, 28, 36, method="cubic") == pytest.approx(expected)
    assert compare.bd_rate(ra, p, rb, p, 28, 36, method="pchip") == pytest.approx(expected, abs=0.1)


def test_bd_rate_empty_overlap_is_nan() -> None:
    assert math.isnan(compare.bd_rate(RATES, PSNRS, RATES, PSNRS + 20))
    assert math.isnan(compare.bd_rate(RATES, PSNRS, RATES, PSNRS, 40, 45))
    assert math.isnan(compare.bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS))


def test_bd_rate_ignores_dominated_and_lossless_points() -> None:
    noisy_r = np.concatenate([RATES, [3.0, 5.0, 30.0]])
    noisy_p = np.concatenate([PSNRS, [30.0, 38.0, math.inf]])  # two dominated, one lossless
    assert compare.bd_rate(noisy_r, noisy_p, RATES, PSNRS, 28, 38) == pytest.approx(0.0, abs=1e-12)


def test_pareto_front() -> None:
    r, p = compare.pareto_front([2, 1, 3, 3, 4], [30, 28, 29, 33, 33])
    assert r.tolist() == [1, 2, 3]
    assert p.tolist() == [28, 30, 33]


curves = st.lists(st.floats(0.05, 1.0), min_size=3, max_size=8)


@settings(max_examples=50, deadline=None)
@given(steps_a=curves, steps_b=curves, scale=st.floats(0.2, 5.0))
def test_bd_rate_antisymmetric_and_scale_invariant(steps_a: list[float], steps_b: list[float], scale: float) -> None:
    pa = 26 + np.cumsum(np.full(len(steps_a), 14 / len(steps_a)))
    pb = 26 + np.cumsum(np.full(len(steps_b), 14 / len(steps_b)))
    ra, rb = np.cumsum(steps_a), np.cumsum(steps_b)
    ab = compare.bd_rate(ra, pa, rb, pb, 28, 38)
    ba = compare.bd_rate(rb, pb, ra, pa, 28, 38)
    assert (1 + ab / 100) * (1 + ba / 100) == pytest.approx(1.0)
    assert compare.bd_rate(scale * ra, pa, scale * rb, pb, 28, 38) == pytest.approx(ab, abs=1e-9)


def test_ssim_db_scale() -> None:
    assert metrics.ssim_db(0.9) == pytest.approx(10.0)
    assert metrics.ssim_db(0.99) == pytest.approx(20.0)
    assert metrics.ssim_db(1.0) == math.inf


def test_bd_span_is_the_overlap_within_the_window() -> None:
    assert metrics.bd_span(RATES, PSNRS, RATES, PSNRS + 1, 20, 50) == (28.0, 39.0)
    assert metrics.bd_span(RATES, PSNRS, RATES, PSNRS, 30, 35) == (30.0, 35.0)
    assert metrics.bd_span(RATES, PSNRS, RATES, PSNRS + 20) is None
    assert metrics.bd_span(RATES[:1], PSNRS[:1], RATES, PSNRS) is None


def test_matched_range_interpolates_the_curve_at_the_psnrs() -> None:
    psnrs = [30.0, 26.0, 34.0, 38.0]  # any order
    values = [12.0, 8.0, 16.0, 20.0]  # value = psnr - 18
    assert metrics.matched_range(psnrs, values, 28, 36) == pytest.approx((10.0, 18.0))
    # beyond the curve: clipped to its ends
    assert metrics.matched_range(psnrs, values, 20, 40) == pytest.approx((8.0, 20.0))
    # a wiggle downward is flattened, so the range never turns around
    assert metrics.matched_range([28, 30, 32], [10, 9, 12], 29, 30) == pytest.approx((10.0, 10.0))
    assert metrics.matched_range([28, math.nan], [10, 11], 28, 30) is None


def _points(image: str, codec: str, rates: np.ndarray, psnrs: np.ndarray, ssims: np.ndarray) -> list[compare.RDPoint]:
    return [compare.RDPoint(image, codec, i, int(1000 * r), float(r), float(p), float(s))
            for i, (r, p, s) in enumerate(zip(rates, psnrs, ssims))]


def test_bd_rate_at_equal_ssim_over_the_references_matched_range() -> None:
    p = np.linspace(22.0, 42.0, 11)
    ref_db = p - 18.0  # the reference's SSIM in dB, 10 dB (SSIM 0.9) at 28 dB PSNR
    ref = _points("a", "jpeg", np.exp(0.15 * (p - 30)), p, 1 - 10 ** (-ref_db / 10))
    # the other codec: same PSNR curve, but 2 dB more SSIM at every rate. At equal SSIM s dB
    # it is at PSNR s + 16 where the reference is at s + 18: log-rate 0.15 * 2 = 0.3 lower.
    other = _points("a", "fake", np.exp(0.15 * (p - 30)), p, 1 - 10 ** (-(ref_db + 2) / 10))
    rows = ref + other
    by_psnr = compare.bd_results_per_image(rows, "jpeg", 28, 38)["fake"]["a"]
    assert by_psnr.bd_rate == pytest.approx(0.0, abs=1e-9) and by_psnr.coverage == pytest.approx(1.0)
    by_ssim = compare.bd_results_per_image(rows, "jpeg", 28, 38, measure="ssim")["fake"]["a"]
    assert by_ssim.bd_rate == pytest.approx(100 * math.expm1(-0.3))
    assert by_ssim.coverage == pytest.approx(1.0)
    # a curve that stops at 32 dB covers 40 % of 28-38 dB
    short = [r for r in other if r.psnr <= 32]
    cut = compare.mean_bd_rates(ref + short, "jpeg", 28, 38)["fake"]
    assert cut.coverage == pytest.approx(0.4) and cut.n_images == 1
    # no SSIM measured: no window, no BD-rate
    bare = [dataclasses.replace(r, ssim=None) for r in rows]
    assert math.isnan(compare.mean_bd_rates(bare, "jpeg", 28, 38, measure="ssim")["fake"].mean)


# ---------------------------------------------------------------- codec runners


def test_jpeg_at_psnr_is_minimal(sample: np.ndarray) -> None:
    match = compare.jpeg_at_psnr(sample, 32.0)
    assert match is not None
    assert match.psnr >= 32.0
    n_bytes, decoded = compare.run_jpeg(sample, match.quality)
    assert (n_bytes, compare.psnr(sample, decoded)) == (match.n_bytes, match.psnr)
    _, worse = compare.run_jpeg(sample, match.quality - 1)
    assert compare.psnr(sample, worse) < 32.0


def test_jpeg_at_psnr_extremes(sample: np.ndarray) -> None:
    assert compare.jpeg_at_psnr(sample, 99.0) is None
    low = compare.jpeg_at_psnr(sample, 5.0)
    assert low is not None and low.quality == 1


@pytest.mark.parametrize(
    ("runner", "feature", "setting"),
    [
        (compare.run_jpeg, "jpg", 75),
        (compare.run_webp, "webp", 75),
        (compare.run_avif, "avif", 60),
        (compare.run_jp2, "jpg_2000", 36.0),
    ],
)
def test_lossy_runners_round_trip(runner, feature: str, setting: float) -> None:  # type: ignore[no-untyped-def]
    if not features.check(feature):
        pytest.skip(f"Pillow built without {feature}")
    img = smooth_image(48, 64)
    n_bytes, decoded = runner(img, setting)
    assert decoded.shape == img.shape and decoded.dtype == np.uint8
    assert 0 < n_bytes < img.nbytes
    assert compare.psnr(img, decoded) > 25.0


def test_png_is_lossless_and_handles_grayscale() -> None:
    img = smooth_image()
    n_bytes, decoded = compare.run_png(img)
    assert n_bytes > 0 and np.array_equal(decoded, img)
    gray = img[..., 1]
    assert np.array_equal(compare.run_png(gray)[1], gray)
    assert compare.run_jpeg(gray, 90)[1].shape == gray.shape


def test_lecture_baseline_rank_sweep() -> None:
    img = smooth_image()
    results = compare.lecture_sweep(img, [1, 4, 24, 500, 24], level=3)
    ranks = [r for r, _, _ in results]
    assert ranks == [1, 4, 24]  # clipped to min(H, W) = 24 and de-duplicated
    sizes = [n for _, n, _ in results]
    quality = [compare.psnr(img, dec) for _, _, dec in results]
    assert sizes == sorted(sizes) and quality == sorted(quality)
    assert all(dec.shape == img.shape and dec.dtype == np.uint8 for _, _, dec in results)
    assert quality[-1] > 45.0  # full rank: only float16 rounding is lost
    # payload per channel is U (h x r) and V (r x w) in float16 plus S in float32
    raw_full = 3 * (2 * 24 * (24 + 32) + 4 * 24)
    assert sizes[-1] < raw_full + 64


def test_lecture_rank_one_image_is_exact_at_rank_one() -> None:
    col = np.linspace(10, 200, 20)
    row = np.linspace(0.5, 1.2, 30)
    gray = np.rint(np.outer(col, row)).astype(np.uint8)
    n_bytes, decoded = compare.run_lecture(gray, 1, level=3)
    assert decoded.shape == gray.shape
    assert np.abs(decoded.astype(int) - gray).max() <= 1  # rounding of the uint8 input only
    assert n_bytes > 0


def test_run_svdi_wires_encode_and_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, str, bool, int, bool]] = []
    restored: list[bool] = []

    def fake_encode(array: np.ndarray, quality: int, layout: str, deblock: bool,
                    effort: int, aq: bool, restore: bool) -> bytes:
        calls.append((quality, layout, deblock, effort, aq))
        restored.append(restore)
        return array.tobytes()

    monkeypatch.setattr(svdcodec, "encode", fake_encode, raising=False)
    monkeypatch.setattr(
        svdcodec, "decode", lambda data: np.frombuffer(data, np.uint8).reshape(24, 32, 3), raising=False
    )
    img = smooth_image()
    n_bytes, decoded = compare.run_svdi(img, 50, layout="plain")
    # the encoder's defaults: the deblocking filter on (since 2026-12-03), nothing else
    assert (n_bytes, calls) == (img.nbytes, [(50, "plain", True, 1, False)])
    compare.run_svdi(img, 40, deblock=False)
    assert calls[-1] == (40, "auto", False, 1, False)
    compare.run_svdi(img, 30, effort=2)
    assert calls[-1] == (30, "auto", True, 2, False)
    compare.run_svdi(img, 20, aq=True)
    assert calls[-1] == (20, "auto", True, 1, True)
    compare.run_svdi(img, 30, restore=True)
    assert calls[-1] == (30, "auto", True, 1, False) and restored[-1] and not any(restored[:-1])
    assert np.array_equal(decoded, img)


# ---------------------------------------------------------------- sweeps and reports


def test_sweep_image_and_mean_bd_rates() -> None:
    img = smooth_image(48, 64)
    rows = compare.sweep_image(img, ["jpeg", "lecture", "png"], quick=True, with_ssim=True, image="a")
    assert {r.codec for r in rows} == {"jpeg", "lecture", "png"}
    assert all(r.bpp == pytest.approx(8 * r.n_bytes / (48 * 64)) for r in rows)
    assert all(r.ssim is not None and r.ssim <= 1.0 + 1e-12 for r in rows)
    # a second "image" whose jpeg rates are doubled: webp-like codec is 50 % smaller there
    doubled = [compare.RDPoint("b", r.codec, r.setting, 2 * r.n_bytes, 2 * r.bpp, r.psnr) for r in rows if r.codec == "jpeg"]
    same = [compare.RDPoint("b", "fake", r.setting, r.n_bytes, r.bpp, r.psnr) for r in rows if r.codec == "jpeg"]
    same_a = [compare.RDPoint("a", "fake", r.setting, r.n_bytes, r.bpp, r.psnr) for r in rows if r.codec == "jpeg"]
    summary = compare.mean_bd_rates(rows + doubled + same + same_a, lo=0, hi=100)
    assert summary["fake"].mean == pytest.approx((0.0 - 50.0) / 2)
    assert summary["fake"].n_images == 2
    assert math.isnan(summary["png"].mean) and summary["png"].n_images == 0  # lossless: no curve


def test_plot_rd_writes_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rows = [
        compare.RDPoint("x", "jpeg", q, 100 * q, q / 10, 25 + q / 10) for q in (10, 50, 90)
    ] + [compare.RDPoint("x", "png", 6, 9000, 12.0, math.inf)]
    out = tmp_path / "rd.png"
    compare.plot_rd(rows, out, lo=28, hi=38)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 100


def test_plot_rd_names_the_codecs_as_the_tables_do(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure
    saved: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *args, **kwargs: saved.append(fig))
    rows = [compare.RDPoint("x", codec, q, 100 * q, q / 10, 25 + q / 10)
            for codec in ("jp2", "svdi-best", "lecture", "mine") for q in (10, 50)]
    compare.plot_rd(rows, tmp_path / "rd.png")
    legend = [text.get_text() for text in saved[0].axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["JPEG 2000", "mine", "svdi, every tool", "textbook SVD"]


# ---------------------------------------------------------------- svdi-compare's report

UNEXPLAINED = ("svdi-plain", "lecture", "unreachable", "nan", "inf")


class Terminal(io.StringIO):
    """A captured stream that says it is a terminal, as stderr is in an interactive shell."""

    def isatty(self) -> bool:
        return True


def _strict_json(text: str) -> dict:  # type: ignore[type-arg]
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON report")

    return json.loads(text, parse_constant=refuse)


def test_report_on_the_sample_speaks_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    assert compare_cli.main(["--no-bd", "-q", "50,75"]) == 0
    out = capsys.readouterr().out
    assert "sample.png: 384x256" in out and "the sample photo shipped with svdcodec" in out
    for words in ("PNG (lossless)", "svdi, plain layout", "bits per pixel",
                  "how close the decoded picture is to the original", "--layout plain"):
        assert words in out
    # (the sample's path is left out: a temporary folder's name may hold "inf" or "nan")
    said = out.replace(str(compare_cli.sample_path()), "SAMPLE").lower()
    assert not any(word in said for word in UNEXPLAINED)
    last = out.rstrip("\n").splitlines()[-1]
    assert last.startswith("svdi files are ") and "than JPEG at the same PSNR on this image" in last
    assert "PNG (lossless) is " in last and "x the size of svdi at quality 75." in last


def test_final_line_agrees_with_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert compare_cli.main(["--no-bd", "-q", "50,75", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    svdi_rows = [r for r in report["side_by_side"] if r["codec"] == "svdi"]
    ratios = [r["size_vs_jpeg"] for r in svdi_rows]
    change = 100 * (math.exp(np.mean(np.log(ratios))) - 1)
    word = "smaller" if change < 0 else "larger"
    assert f"svdi files are {abs(change):.1f} % {word} than JPEG" in report["answer"]
    png = report["png_bytes"] / svdi_rows[1]["bytes"]
    assert f"PNG (lossless) is {png:.1f}x the size of svdi at quality 75" in report["answer"]


@pytest.fixture
def small_png(tmp_path: Path) -> Path:
    """A 96 x 64 crop of the sample: keeps a sweep of every codec short."""
    path = tmp_path / "crop.png"
    with Image.open(SAMPLE) as im:
        im.crop((0, 0, 96, 64)).save(path)
    return path


def test_bd_rates_in_plain_words_without_nan(small_png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert compare_cli.main([str(small_png), "-q", "50"]) == 0
    out = capsys.readouterr().out
    assert "the BD-rate" in out and "textbook SVD: the demo of the linear-algebra course" in out
    assert "\n  JPEG 2000" in out or not features.check("jpg_2000")
    assert not any(word in out.lower() for word in UNEXPLAINED)
    assert out.rstrip("\n").splitlines()[-1].startswith("svdi files are ")
    assert compare_cli.main([str(small_png), "-q", "50", "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    bd = report["bd_rate_vs_jpeg_28_38dB"]
    assert "png" not in bd and "jpeg" not in bd and bd["svdi"] is not None
    assert all(v is None or math.isfinite(v) for v in bd.values())


def test_codecs_without_a_bd_rate_are_named_in_words(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # A flat image: most codecs reach very high or infinite PSNR at once, so several curves
    # share no PSNR range with JPEG's in 28-38 dB; and PNG is smaller than any lossy file.
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((32, 48, 3), (90, 140, 200), np.uint8)).save(flat)
    assert compare_cli.main([str(flat), "-q", "50", "--json"]) == 0
    bd = _strict_json(capsys.readouterr().out)["bd_rate_vs_jpeg_28_38dB"]
    missing = [compare.CODEC_LABELS[c] for c, v in bd.items() if v is None]
    assert missing
    assert compare_cli.main([str(flat), "-q", "50"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.endswith(": no PSNR range shared with JPEG in 28-38 dB)"))
    assert all(label in line for label in missing)
    assert not any(word in out.lower() for word in UNEXPLAINED)
    assert "PNG (lossless) is smaller here, by " in out.rstrip("\n").splitlines()[-1]


def test_answer_from_bd_rate_names_the_codecs_ahead() -> None:
    rows = [{"codec": "svdi", "quality": q, "bytes": b, "size_vs_jpeg": None}
            for q, b in ((50, 1000), (80, 2000))]
    bd = {"svdi": -12.34, "svdi-plain": 80.0, "lecture": 1200.0, "webp": -30.0, "avif": None,
          "jp2": -40.0}
    assert compare_cli.answer(rows, 9000, bd) == (
        "svdi files are 12.3 % smaller than JPEG at the same PSNR on this image (average over "
        "28-38 dB); JPEG 2000 and WebP are smaller still. PNG (lossless) is 4.5x the size of "
        "svdi at quality 80.")
    assert compare_cli.answer(rows, 500, {"svdi": 25.0}).startswith(
        "svdi files are 25.0 % larger than JPEG at the same PSNR on this image (average")


def test_answer_without_bd_rate_uses_the_table() -> None:
    rows = [{"codec": "svdi", "quality": 30, "bytes": 800, "size_vs_jpeg": 0.5},
            {"codec": "svdi-plain", "quality": 30, "bytes": 900, "size_vs_jpeg": 3.0},
            {"codec": "svdi", "quality": 70, "bytes": 1000, "size_vs_jpeg": 2.0},
            {"codec": "svdi", "quality": 95, "bytes": 4000, "size_vs_jpeg": None}]
    # geometric mean of 0.5 and 2.0 is 1: the same size; quality 70 is the nearest to 75
    assert compare_cli.answer(rows, 10000, None) == (
        "svdi files are the same size as JPEG at the same PSNR on this image (geometric mean "
        "over qualities 30 and 70). PNG (lossless) is 10.0x the size of svdi at quality 70.")
    # a BD sweep that found no overlap with JPEG falls back to the table as well
    unmatched = [dict(r, size_vs_jpeg=None) for r in rows]
    assert compare_cli.answer(unmatched, 10000, {"svdi": None}).startswith(
        "JPEG cannot match svdi's PSNR at any of these qualities on this image. PNG")


def test_progress_on_a_terminal_only(small_png: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = [str(small_png), "--no-bd", "-q", "50"]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert compare_cli.main(args) == 0
    steps = terminal.getvalue()
    assert steps.count("\rsvdi-compare: [") == 3
    assert "[1/3] svdi at quality 50" in steps and "[3/3] PNG, lossless" in steps
    assert steps.endswith("\r\x1b[K")  # the line is cleared before the report
    assert "svdi-compare" not in capsys.readouterr().out
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert compare_cli.main([*args, "--quiet"]) == 0
    assert quiet.getvalue() == ""
    monkeypatch.undo()
    assert compare_cli.main(args) == 0
    assert capsys.readouterr().err == ""  # not a terminal: silent


def test_images_are_compared_at_8_bits_with_a_note_for_each_change(tmp_path: Path) -> None:
    """JPEG and WebP take 8-bit grey or RGB: a 16-bit grey PNG is scaled to 8 bits (Pillow's
    own conversion clips it to white), alpha is dropped, 16-bit colour read at 8 bits: each
    said; 32-bit integer samples refused."""
    ramp = (np.arange(64 * 96, dtype=np.uint32).reshape(64, 96) * 10).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    pixels, notes = compare_cli.load_image(str(tmp_path / "grey16.png"))
    assert pixels.dtype == np.uint8 and pixels.shape == (64, 96)
    np.testing.assert_array_equal(pixels, (ramp.astype(np.uint32) + 128) // 257)
    assert notes == ["16-bit grey: compared at 8 bits (samples rounded, v * 255 / 65535)"]
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 1:] = 200
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    pixels, notes = compare_cli.load_image(str(tmp_path / "rgba.png"))
    assert pixels.shape == (8, 8, 3) and any("alpha dropped" in n for n in notes)
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    assert compare_cli.load_image(str(tmp_path / "rgb.png"))[1] == []
    wide = (np.arange(8 * 8 * 3, dtype=np.uint16).reshape(8, 8, 3) * 300)
    if deep_images.missing() is None:  # the 16bit extra writes 16-bit colour PNG
        (tmp_path / "rgb16.png").write_bytes(deep_images.png_bytes(wide))
        _, notes = compare_cli.load_image(str(tmp_path / "rgb16.png"))
        assert notes == ["a 16-bit RGB PNG: compared at 8 bits (as Pillow reads it)"]
    Image.fromarray(ramp.astype(np.int32) * 1000, mode="I").save(tmp_path / "i32.tif")
    with pytest.raises(ValueError, match="8-bit images"):
        compare_cli.load_image(str(tmp_path / "i32.tif"))


@pytest.mark.parametrize("orientation", [6, 3, 5])
def test_a_phone_photo_is_compared_upright(tmp_path: Path, orientation: int,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A phone's JPEG stores its pixels as the sensor read them and an EXIF orientation that
    turns them upright in a viewer: svdi-compare turns them too (ImageOps.exif_transpose),
    so its centre crop and side-by-side are of the photo as taken, and says so."""
    with Image.open(SAMPLE) as im:
        stored = im.convert("RGB").crop((0, 0, 160, 96))
    exif = Image.Exif()
    exif[compare_cli.EXIF_ORIENTATION] = orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, quality=90, exif=exif.tobytes())
    pixels, notes = compare_cli.load_image(str(path))
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im))
        as_stored = np.asarray(im)
    np.testing.assert_array_equal(pixels, upright)
    assert pixels.shape == ((160, 96, 3) if orientation in (5, 6) else (96, 160, 3))
    if orientation == 3:  # half a turn: the same shape, other pixels
        assert not np.array_equal(pixels, as_stored)
    turn = "160x96 stored, 96x160 upright" if orientation in (5, 6) else \
        "160x96 stored, 160x96 upright"
    assert notes == [(f"EXIF orientation {orientation}: compared upright, as viewers show "
                      f"it ({turn})")]
    # the whole run: the report's size and centre crop are the upright photo's
    assert compare_cli.main([str(path), "--no-bd", "-q", "75", "--max-pixels", "4000",
                             "--json"]) == 0
    report = _strict_json(capsys.readouterr().out)
    assert (report["height"], report["width"]) == pixels.shape[:2]
    top, left, h, w = compare_cli.centre_crop(*pixels.shape[:2], 4000)
    assert report["crop"] == {"top": top, "left": left, "height": h, "width": w}
    # a photo stored upright (orientation 1, or none) is read as it is, with nothing said
    exif[compare_cli.EXIF_ORIENTATION] = 1
    stored.save(path, quality=90, exif=exif.tobytes())
    assert compare_cli.load_image(str(path))[1] == []


def test_every_tool_adds_svdi_best_to_the_sweep_and_is_not_another_codec() -> None:
    assert "svdi-best" not in compare_cli.sweep_codecs()
    assert compare_cli.sweep_codecs(every_tool=True) == [*compare_cli.sweep_codecs(), "svdi-best"]
    rows = [{"codec": "svdi", "quality": 75, "bytes": 1000, "size_vs_jpeg": 0.8}]
    # svdi with every tool is svdi, not one of the codecs that are "smaller still": the answer
    # gives its figure beside the defaults'
    assert compare_cli.answer(rows, 5000, {"svdi": -19.0, "svdi-best": -22.0, "webp": -34.0}) == (
        "svdi files are 19.0 % smaller than JPEG at the same PSNR on this image (average over "
        "28-38 dB), 22.0 % smaller with every tool on (--effort 2 --aq --restore); WebP is "
        "smaller still. PNG (lossless) is 5.0x the size of svdi at quality 75.")
    # "smaller still": smaller than svdi with every tool too
    assert compare_cli.answer(rows, 5000, {"svdi": -19.0, "svdi-best": -22.0, "avif": -20.0}) \
        .startswith("svdi files are 19.0 % smaller than JPEG at the same PSNR on this image "
                    "(average over 28-38 dB), 22.0 % smaller with every tool on (--effort 2 "
                    "--aq --restore). PNG")
    # no figure where every tool's curve shares no PSNR range with JPEG's
    assert "every tool" not in compare_cli.answer(rows, 5000, {"svdi": -19.0, "svdi-best": None})


# ---------------------------------------------------------------- large images, --plot


def test_centre_crop_keeps_the_aspect_and_the_pixel_budget() -> None:
    # a phone photo: 12.2 MP to a Kodak photo's pixel count, 4:3 kept, corner on the 8 x 8 grid
    assert compare_cli.centre_crop(3024, 4032, 768 * 512) == (1240, 1648, 543, 724)
    assert compare_cli.centre_crop(512, 768, 768 * 512) is None
    assert compare_cli.centre_crop(3024, 4032, 0) is None
    for h, w, budget in ((1001, 3, 500), (7, 100_003, 1000), (999, 1001, 123_457)):
        top, left, ch, cw = compare_cli.centre_crop(h, w, budget)
        assert 0 < ch * cw <= budget and top % 8 == 0 and left % 8 == 0
        assert top + ch <= h and left + cw <= w
        # the crop is centred to within the 8-sample rounding of its corner
        assert abs((h - ch) / 2 - top) < 8 and abs((w - cw) / 2 - left) < 8


def test_a_large_image_is_compared_on_its_centre_crop_said_up_front(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wide.png"
    with Image.open(SAMPLE) as im:
        im.crop((0, 0, 160, 96)).save(path)
    assert compare_cli.main([str(path), "--no-bd", "-q", "75", "--max-pixels", "4000",
                             "--json"]) == 0
    captured = capsys.readouterr()
    assert "160x96 (0.0 MP) is more than --max-pixels 4000: compared on its centre 81x49 crop" \
        in captured.err and "of CPU on an idle machine (the whole image: --max-pixels 0" \
        in captured.err
    report = _strict_json(captured.out)
    assert (report["width"], report["height"]) == (160, 96)
    assert report["crop"] == {"top": 16, "left": 32, "height": 49, "width": 81}
    row = report["side_by_side"][0]
    assert row["bpp"] == pytest.approx(row["bytes"] * 8 / (81 * 49))
    with Image.open(path) as im:
        whole = np.asarray(im.convert("RGB"))
    n, decoded = compare.run_svdi(whole, 75, "auto")
    assert report["whole_image"]["bytes"] == n
    assert report["whole_image"]["psnr"] == pytest.approx(compare.psnr(whole, decoded))
    assert "on this image's centre crop" in report["answer"]
    # the same image under the budget is compared whole, with nothing said
    assert compare_cli.main([str(path), "--no-bd", "-q", "75", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "crop" not in _strict_json(captured.out)


def test_plot_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the comparison started")

    monkeypatch.setattr(compare, "run_svdi", no_work)
    with pytest.raises(SystemExit) as exc:
        compare_cli.main(["--plot", "rd.png", "--no-bd"])
    assert exc.value.code == 2
    assert "--plot draws the curves of the sweep that --no-bd skips" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert compare_cli.main(["--plot", "rd.png"]) == 1
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install matplotlib" in err
