"""Rate–distortion sweeps of svdcodec against standard image codecs (metrics in `metrics`).

Why this module exists: a codec is only as good as its numbers against the
codecs people already have. Everything here is deterministic, vectorised numpy
plus Pillow round trips, so the same sweep gives the same table on any machine
with the same library versions.

Conventions: images are ``uint8`` arrays of shape (H, W) or (H, W, 3); PSNR is
computed over all samples of all channels ("RGB PSNR"); SSIM on luma; rates are in
bits per pixel (bpp) of the H x W image. Every codec's settings reach below 24 dB
where the codec can (JPEG quality 1, svdi 3, JPEG 2000 20 dB), so that BD-rates over
24–30 dB (about 0.1–0.5 bpp on photos) have curves to compare; WebP and AVIF at
quality 0 stay above that on smooth photos.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image, features

from .metrics import (
    BDMethod,  # noqa: F401
    FloatArray,
    bd_rate,
    bd_span,
    bpp,
    luma,  # noqa: F401
    matched_range,
    pareto_front,  # noqa: F401
    psnr,
    ssim,
    ssim_db,
)

Array = NDArray[np.uint8]
Setting = int | float
Encoded = tuple[int, Array]
"""(n_bytes, decoded image) — what every codec runner returns."""


# ---------------------------------------------------------------- codec runners


def _pil_roundtrip(img: Array, fmt: str, **params: object) -> Encoded:
    """Encode with Pillow, decode back to the input's mode and shape."""
    src = Image.fromarray(np.ascontiguousarray(img))
    buf = io.BytesIO()
    src.save(buf, fmt, **params)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as decoded:
        out = np.asarray(decoded.convert(src.mode))
    return len(data), out


def run_jpeg(img: Array, quality: int) -> Encoded:
    """JPEG with Pillow/libjpeg defaults (4:2:0 chroma, standard tables)."""
    return _pil_roundtrip(img, "JPEG", quality=int(quality))


def run_webp(img: Array, quality: int) -> Encoded:
    """Lossy WebP (libwebp default method 4)."""
    return _pil_roundtrip(img, "WEBP", quality=int(quality))


def run_avif(img: Array, quality: int) -> Encoded:
    """AVIF at Pillow's defaults (4:2:0, speed 6), one thread.

    One thread because the comparison tool already runs one process per core.
    """
    return _pil_roundtrip(img, "AVIF", quality=int(quality), max_threads=1)


def run_jp2(img: Array, target_db: float) -> Encoded:
    """JPEG 2000 (OpenJPEG) with a single layer aimed at ``target_db``.

    Uses the 9/7 irreversible wavelet with the colour transform: Pillow's
    defaults (reversible 5/3, no MCT) are meant for lossless and would make
    JPEG 2000 look over twice as large as it is in lossy use.
    """
    return _pil_roundtrip(
        img, "JPEG2000", quality_mode="dB", quality_layers=[float(target_db)], irreversible=True, mct=1
    )


def run_png(img: Array, compress_level: int = 6) -> Encoded:
    """Lossless PNG size (zlib level ``compress_level``, no optimise pass)."""
    return _pil_roundtrip(img, "PNG", compress_level=int(compress_level))


def _planes(img: Array) -> list[FloatArray]:
    x = np.asarray(img, dtype=np.float64)
    return [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]


def lecture_sweep(img: Array, ranks: Iterable[int], level: int = 19) -> list[tuple[int, int, Array]]:
    """The textbook "compress an image with the SVD" baseline, for many ranks.

    Per channel: full SVD, keep rank r, store U_r and V_r as float16 and S_r
    as float32 (float16 S overflows: sigma_1 of a bright 768x512 plane exceeds
    65504), zstd-compress all of it. Size is the compressed byte count (no
    header); decoding is the rounded, clipped product. The SVD is computed once
    and shared by every rank. Returns (rank, n_bytes, decoded) with ranks
    clipped to min(H, W) and de-duplicated.
    """
    import zstandard

    svds = [np.linalg.svd(p, full_matrices=False) for p in _planes(img)]
    full = min(np.shape(img)[:2])
    compressor = zstandard.ZstdCompressor(level=level)
    results = []
    for r in sorted({max(1, min(int(k), full)) for k in ranks}):
        factors = [(u[:, :r].astype(np.float16), s[:r].astype(np.float32), vt[:r].astype(np.float16)) for u, s, vt in svds]
        blob = b"".join(u.tobytes() + s.tobytes() + vt.tobytes() for u, s, vt in factors)
        planes = [(u.astype(np.float64) * s) @ vt.astype(np.float64) for u, s, vt in factors]
        recon = planes[0] if np.ndim(img) == 2 else np.stack(planes, axis=-1)
        decoded = np.clip(np.rint(recon), 0, 255).astype(np.uint8)
        results.append((r, len(compressor.compress(blob)), decoded))
    return results


def run_lecture(img: Array, rank: int, level: int = 19) -> Encoded:
    """One rank of :func:`lecture_sweep`."""
    _, n_bytes, decoded = lecture_sweep(img, [rank], level)[0]
    return n_bytes, decoded


def run_svdi(img: Array, quality: int, layout: str = "auto", deblock: bool = True,
             effort: int = 1, restore: bool = False, aq: bool = False) -> Encoded:
    """Round trip through svdcodec itself (imported lazily: the core is optional here)."""
    import svdcodec

    data = svdcodec.encode(img, quality=int(quality), layout=layout, deblock=deblock,
                           effort=effort, restore=restore, aq=aq)
    decoded = np.asarray(svdcodec.decode(data))
    if decoded.shape != np.shape(img) or decoded.dtype != np.uint8:
        raise RuntimeError(f"svdcodec.decode returned {decoded.shape} {decoded.dtype}, expected {np.shape(img)} uint8")
    return len(data), decoded


class JpegMatch(NamedTuple):
    quality: int
    n_bytes: int
    psnr: float


def jpeg_at_psnr(img: Array, target_db: float) -> JpegMatch | None:
    """Lowest JPEG quality (1..100) whose PSNR reaches ``target_db``; None if none does.

    Bisection assumes PSNR grows with quality, which holds for libjpeg up to
    rare sub-0.05 dB wiggles; the result always reaches the target and
    quality - 1 (when evaluated) did not. Used for "JPEG at the same PSNR".
    """
    def measure(q: int) -> JpegMatch:
        n, dec = run_jpeg(img, q)
        return JpegMatch(q, n, psnr(img, dec))

    best = measure(100)
    if best.psnr < target_db:
        return None
    lo, hi = 0, 100  # invariant: quality lo misses (or is 0), quality hi reaches
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = measure(mid)
        if trial.psnr >= target_db:
            hi, best = mid, trial
        else:
            lo = mid
    return best


# ---------------------------------------------------------------- sweeps

SweepFn = Callable[[Array, Sequence[Setting]], list[tuple[Setting, int, Array]]]


def _per_setting(runner: Callable[[Array, Any], Encoded]) -> SweepFn:
    """A sweep of a runner taking one setting (its own type: a JPEG quality is an int, a JPEG
    2000 target a float)."""
    def sweep(img: Array, settings: Sequence[Setting]) -> list[tuple[Setting, int, Array]]:
        return [(s, *runner(img, s)) for s in settings]

    return sweep


def _svdi(layout: str, deblock: bool = True, effort: int = 1, restore: bool = False,
          aq: bool = False) -> SweepFn:
    return _per_setting(lambda img, q: run_svdi(img, int(q), layout=layout, deblock=deblock,
                                                effort=effort, restore=restore, aq=aq))


@dataclass(frozen=True)
class Codec:
    """A codec under test: its settings sweep and how to run it."""

    name: str
    settings: tuple[Setting, ...]
    quick_settings: tuple[Setting, ...]
    sweep: SweepFn
    feature: str | None = None  # Pillow feature that must be present

    def available(self) -> bool:
        if self.feature is None:
            return True
        with warnings.catch_warnings():  # a Pillow older than the feature warns of its name
            warnings.simplefilter("ignore", UserWarning)
            return bool(features.check(self.feature))


_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 98, 100)
_QUICK_QUALITIES = (5, 10, 30, 50, 70, 85, 95)
# libjpeg's quality 1 and 2 give the same tables (every step clipped at 255).
_JPEG_QUALITIES = (1, 3, 7, *_QUALITIES)
_JPEG_QUICK = (1, 3, *_QUICK_QUALITIES)
_WEBP_QUALITIES = (0, 2, *_QUALITIES)
_WEBP_QUICK = (0, *_QUICK_QUALITIES)
_SVDI_QUALITIES = (3, 5, 7, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
_SVDI_QUICK = (3, 5, 10, 30, 50, 70, 90)

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("jpeg", _JPEG_QUALITIES, _JPEG_QUICK, _per_setting(run_jpeg), "jpg"),
        Codec("webp", _WEBP_QUALITIES, _WEBP_QUICK, _per_setting(run_webp), "webp"),
        Codec("avif", (0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), (0, 10, 20, 40, 60, 80, 90),
              _per_setting(run_avif), "avif"),
        Codec("jp2", (20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44), (22, 26, 30, 34, 38, 42),
              _per_setting(run_jp2), "jpg_2000"),
        Codec("png", (6,), (6,), _per_setting(run_png), "zlib"),
        Codec("lecture", (4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 320, 384), (16, 48, 128, 256, 384),
              lambda img, ranks: list(lecture_sweep(img, [int(r) for r in ranks]))),
        # the encoder's defaults (the deblocking filter on)
        Codec("svdi", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto")),
        Codec("svdi-plain", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("plain")),
        # encode(deblock=False): without format version 4's deblocking filter (benchmarks only:
        # the one-image comparison, svdi-compare, shows the defaults)
        Codec("svdi-nodeblock", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", deblock=False)),
        # encode(deblock=True), the default since 2026-12-03, by name for older commands
        Codec("svdi-deblock", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", deblock=True)),
        # encode(restore=True): and format version 6's restoration filter
        Codec("svdi-restore", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", restore=True)),
        # encode(effort=2): levels chosen by rate and distortion, blocks at zstd level 15
        Codec("svdi-effort2", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", effort=2)),
        # effort 2 with the deblocking filter (the same as svdi-effort2 since the filter is the
        # default), by name for older commands
        Codec("svdi-smallest", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", deblock=True, effort=2)),
        # encode(aq=True): format version 6's adaptive quantization per patch of luma, without
        # and with the deblocking filter, and with effort 2
        Codec("svdi-aq", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", deblock=False, aq=True)),
        Codec("svdi-deblock-aq", _SVDI_QUALITIES, _SVDI_QUICK, _svdi("auto", deblock=True, aq=True)),
        Codec("svdi-smallest-aq", _SVDI_QUALITIES, _SVDI_QUICK,
              _svdi("auto", deblock=True, effort=2, aq=True)),
        # every tool of format version 6 at effort 2: the smallest files svdi writes, for the
        # slowest encode and decode
        Codec("svdi-best", _SVDI_QUALITIES, _SVDI_QUICK,
              _svdi("auto", deblock=True, effort=2, aq=True, restore=True)),
    )
}
"""Every codec the comparison knows, in report order."""


def available_codecs() -> list[str]:
    """Codec names whose Pillow plugin (if any) is compiled in."""
    return [name for name, codec in CODECS.items() if codec.available()]


@dataclass(frozen=True)
class RDPoint:
    """One measured (codec, setting) point on one image."""

    image: str
    codec: str
    setting: Setting
    n_bytes: int
    bpp: float
    psnr: float
    ssim: float | None = None


Measure = Literal["psnr", "ssim"]
"""A quality measure of a point: RGB PSNR, luma SSIM."""

MEASURE_LABELS: dict[str, str] = {"psnr": "RGB PSNR (dB)", "ssim": "luma SSIM"}
#: How each codec is named for a reader, in tables and plots (other names as they are).
CODEC_LABELS: dict[str, str] = {
    "svdi": "svdi", "svdi-plain": "svdi, plain layout", "svdi-best": "svdi, every tool",
    "jpeg": "JPEG", "webp": "WebP", "avif": "AVIF", "jp2": "JPEG 2000", "png": "PNG",
    "lecture": "textbook SVD"}


def quality_of(point: RDPoint, measure: Measure) -> float:
    """A point's quality on a scale where BD-rates are averaged: PSNR in dB, SSIM as
    −10·log10(1 − SSIM) dB (:func:`metrics.ssim_db`); nan if SSIM was not measured."""
    if measure == "psnr":
        return point.psnr
    return math.nan if point.ssim is None else ssim_db(point.ssim)


def sweep_image(
    img: Array,
    codecs: Iterable[str] | None = None,
    quick: bool = False,
    with_ssim: bool = False,
    image: str = "",
) -> list[RDPoint]:
    """Run every setting of each codec (default: all available) on one image."""
    names = available_codecs() if codecs is None else list(codecs)
    rows = []
    for name in names:
        codec = CODECS[name]
        settings = codec.quick_settings if quick else codec.settings
        for setting, n_bytes, decoded in codec.sweep(img, settings):
            rows.append(
                RDPoint(
                    image=image,
                    codec=name,
                    setting=setting,
                    n_bytes=n_bytes,
                    bpp=bpp(n_bytes, img),
                    psnr=psnr(img, decoded),
                    ssim=ssim(img, decoded) if with_ssim else None,
                )
            )
    return rows


Curve = tuple[list[float], list[float]]  # (rates, qualities)


def _curves(rows: Iterable[RDPoint], measure: Measure = "psnr") -> dict[tuple[str, str], Curve]:
    curves: dict[tuple[str, str], Curve] = defaultdict(lambda: ([], []))
    for row in rows:
        rates, qualities = curves[(row.image, row.codec)]
        rates.append(row.bpp)
        qualities.append(quality_of(row, measure))
    return curves


class BDResult(NamedTuple):
    bd_rate: float  # percent against the reference; nan where undefined
    coverage: float  # share of the window both curves reach (0 where undefined)


def _window(
    rows_by_curve: dict[tuple[str, str], list[RDPoint]], image: str, reference: str,
    lo: float, hi: float, measure: Measure,
) -> tuple[float, float] | None:
    """[lo, hi] in ``measure``: as given for PSNR; for SSIM the range the reference codec's
    own points span on this image between PSNR lo and hi."""
    if measure == "psnr":
        return lo, hi
    ref = rows_by_curve.get((image, reference), [])
    return matched_range([r.psnr for r in ref], [quality_of(r, measure) for r in ref], lo, hi)


def bd_results_per_image(
    rows: Iterable[RDPoint], reference: str = "jpeg", lo: float = 28.0, hi: float = 38.0,
    measure: Measure = "psnr",
) -> dict[str, dict[str, BDResult]]:
    """BD-rate and window coverage of every codec against ``reference``: {codec: {image: result}}.

    The window is RGB PSNR [lo, hi] dB; with ``measure`` "ssim" the rate is compared at
    equal SSIM, over the range that the reference's curve spans between PSNR lo and hi on
    each image (see :func:`_window`).
    """
    rows = list(rows)
    by_curve: dict[tuple[str, str], list[RDPoint]] = defaultdict(list)
    for row in rows:
        by_curve[(row.image, row.codec)].append(row)
    curves = _curves(rows, measure)
    out: dict[str, dict[str, BDResult]] = defaultdict(dict)
    for (image, codec), (rates, qualities) in curves.items():
        ref = curves.get((image, reference))
        if codec == reference or ref is None:
            continue
        window = _window(by_curve, image, reference, lo, hi, measure)
        if window is None or not window[0] < window[1]:
            out[codec][image] = BDResult(math.nan, 0.0)
            continue
        span = bd_span(rates, qualities, ref[0], ref[1], *window)
        value = bd_rate(rates, qualities, ref[0], ref[1], *window)
        coverage = 0.0 if span is None else (span[1] - span[0]) / (window[1] - window[0])
        out[codec][image] = BDResult(value, coverage)
    return dict(out)


def bd_rates_per_image(
    rows: Iterable[RDPoint], reference: str = "jpeg", lo: float = 28.0, hi: float = 38.0,
    measure: Measure = "psnr",
) -> dict[str, dict[str, float]]:
    """BD-rate (percent) of every codec against ``reference``: {codec: {image: bd}}."""
    results = bd_results_per_image(rows, reference, lo, hi, measure)
    return {codec: {image: r.bd_rate for image, r in per.items()} for codec, per in results.items()}


class BDSummary(NamedTuple):
    mean: float  # mean over images with a defined BD-rate; nan if none
    n_images: int  # images that contributed
    n_total: int  # images on which the codec was measured
    coverage: float = 1.0  # mean share of the window compared, over the contributing images


def mean_bd_rates(
    rows: Iterable[RDPoint], reference: str = "jpeg", lo: float = 28.0, hi: float = 38.0,
    measure: Measure = "psnr",
) -> dict[str, BDSummary]:
    """Per-image BD-rate vs ``reference`` over [lo, hi] dB, then the mean over images."""
    summary = {}
    for codec, per_image in bd_results_per_image(rows, reference, lo, hi, measure).items():
        values = np.array([r.bd_rate for r in per_image.values()], dtype=np.float64)
        coverage = np.array([r.coverage for r in per_image.values()], dtype=np.float64)
        finite = np.isfinite(values)
        mean = float(values[finite].mean()) if finite.any() else math.nan
        cover = float(coverage[finite].mean()) if finite.any() else 0.0
        summary[codec] = BDSummary(mean, int(finite.sum()), int(values.size), cover)
    return summary


def mean_curves(rows: Iterable[RDPoint], measure: Measure = "psnr") -> dict[str, list[tuple[Setting, float, float]]]:
    """{codec: [(setting, mean bpp, mean quality)]} averaged over images, in setting order.

    The quality is PSNR in dB, or the mean SSIM itself (not its dB form).
    """
    groups: dict[tuple[str, Setting], list[RDPoint]] = defaultdict(list)
    for row in rows:
        groups[(row.codec, row.setting)].append(row)
    out: dict[str, list[tuple[Setting, float, float]]] = defaultdict(list)
    order = {name: i for i, name in enumerate(CODECS)}
    for (codec, setting), group in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        out[codec].append(
            (setting, float(np.mean([r.bpp for r in group])), float(np.mean([_raw_quality(r, measure) for r in group])))
        )
    return dict(out)


def _raw_quality(point: RDPoint, measure: Measure) -> float:
    value = point.psnr if measure == "psnr" else point.ssim
    return math.nan if value is None else float(value)


def plot_rd(
    rows: Iterable[RDPoint],
    path: str | Path,
    lo: float | None = None,
    hi: float | None = None,
    title: str = "Rate–distortion (mean over images)",
    measure: Measure = "psnr",
    bands: Sequence[tuple[float, float]] = (),
) -> None:
    """Save a bpp-vs-quality plot, one line per codec; PSNR windows [lo, hi] and ``bands``
    are shaded (PSNR only).

    The x axis is logarithmic because the lecture baseline spends tens of bpp
    where the real codecs spend fractions of one. Lossless points (infinite
    PSNR) are left out. For SSIM the y axis is labelled in SSIM values on the
    −10·log10(1 − SSIM) scale that BD-rates use, so the range near 1 is not
    crowded. matplotlib is an optional dependency.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_rd needs matplotlib, an optional extra: pip install matplotlib") from exc
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for codec, points in mean_curves(rows, measure).items():
        finite = [(b, q) for _, b, q in points if math.isfinite(q) and (measure == "psnr" or q < 1.0)]
        if finite:
            xs, ys = zip(*sorted(finite))
            ax.plot(xs, ys, marker="o", markersize=3, label=CODEC_LABELS.get(codec, codec))
    if measure == "psnr":
        windows = ([(lo, hi)] if lo is not None and hi is not None else []) + list(bands)
        for i, (a, b) in enumerate(windows):  # see-through, so that overlapping windows both show
            ax.axhspan(a, b, color=("0.55", "tab:blue")[i % 2], alpha=0.15, lw=0, zorder=0,
                       label=f"BD range {a:g}–{b:g} dB")
    else:
        ax.set_yscale("function", functions=(_to_db, _from_db))
        ax.set_yticks(_SSIM_TICKS)
        ax.yaxis.set_major_formatter("{x:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel(MEASURE_LABELS[measure])
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


_SSIM_TICKS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999)


def _to_db(values: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -10.0 * np.log10(1.0 - np.minimum(values, 1.0 - 1e-9))


def _from_db(db: FloatArray) -> FloatArray:
    return 1.0 - 10.0 ** (-np.asarray(db) / 10.0)
