"""Rate–distortion measurement of svdcodec against standard image codecs.

Why this module exists: a codec is only as good as its numbers against the
codecs people already have. Everything here is deterministic, vectorised numpy
plus Pillow round trips, so the same sweep gives the same table on any machine
with the same library versions.

Conventions: images are ``uint8`` arrays of shape (H, W) or (H, W, 3); PSNR is
computed over all samples of all channels ("RGB PSNR"); rates are in bits per
pixel (bpp) of the H x W image.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, NamedTuple, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from PIL import Image, features

Array = NDArray[np.uint8]
FloatArray = NDArray[np.float64]
Setting = int | float
Encoded = tuple[int, Array]
"""(n_bytes, decoded image) — what every codec runner returns."""

BDMethod = Literal["pchip", "cubic"]

# ---------------------------------------------------------------- metrics


def psnr(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` when the images are equal.

    Float64 throughout so that uint8 differences cannot wrap around.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    mse = float(np.mean((x - y) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def luma(img: ArrayLike) -> FloatArray:
    """BT.601 luma of an RGB image (or the image itself if single-channel).

    SSIM is defined on one channel; luma is what it is conventionally run on.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        return x
    return x[..., :3] @ np.array([0.299, 0.587, 0.114])


def _gaussian_kernel(sigma: float, radius: int) -> FloatArray:
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _filter_valid(x: FloatArray, kernel: FloatArray) -> FloatArray:
    """Separable 'valid' correlation: each axis is a sliding window times kernel."""
    n = kernel.size
    rows = np.lib.stride_tricks.sliding_window_view(x, n, axis=0) @ kernel
    return np.lib.stride_tricks.sliding_window_view(rows, n, axis=1) @ kernel


def ssim(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """Mean SSIM on luma, 11x11 Gaussian window (sigma 1.5), Wang et al. constants.

    This is the reference definition without its automatic downsampling, so
    numbers are comparable to other full-resolution SSIM implementations.
    """
    x, y = luma(a), luma(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    kernel = _gaussian_kernel(1.5, 5)
    if min(x.shape) < kernel.size:
        raise ValueError(f"image {x.shape} is smaller than the {kernel.size}x{kernel.size} window")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _filter_valid(x, kernel), _filter_valid(y, kernel)
    vx = _filter_valid(x * x, kernel) - mx * mx
    vy = _filter_valid(y * y, kernel) - my * my
    cxy = _filter_valid(x * y, kernel) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(smap.mean())


def bpp(n_bytes: int, img: ArrayLike) -> float:
    """Bits per pixel of an H x W (x C) image, counting pixels, not samples."""
    shape = np.shape(img)
    return 8.0 * n_bytes / (shape[0] * shape[1])


# ---------------------------------------------------------------- BD-rate


def pareto_front(rates: ArrayLike, psnrs: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Keep the points that no other point beats on both rate and PSNR.

    Why: a BD curve must be a function PSNR -> rate. Sweeps can contain
    dominated or duplicate points (two settings giving the same file, a
    quality step that costs bytes and gains nothing), which would make the
    interpolation ill-posed. Non-finite PSNRs (lossless) and rates <= 0 are
    dropped too. Returns (rates, psnrs), both strictly increasing.
    """
    r = np.asarray(rates, dtype=np.float64).ravel()
    p = np.asarray(psnrs, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(r) & (r > 0)
    r, p = r[ok], p[ok]
    order = np.lexsort((-p, r))  # by rate, then best PSNR first
    r, p = r[order], p[order]
    best_before = np.concatenate(([-np.inf], np.maximum.accumulate(p)[:-1])) if p.size else p
    keep = p > best_before
    return r[keep], p[keep]


def _pchip_slopes(x: FloatArray, y: FloatArray) -> FloatArray:
    """Fritsch–Carlson monotone slopes (as in SciPy's PchipInterpolator)."""
    h = np.diff(x)
    d = np.diff(y) / h
    if d.size == 1:
        return np.array([d[0], d[0]])
    m = np.zeros_like(y)
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same_sign = d[:-1] * d[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / d[:-1] + w2 / d[1:])
    m[1:-1] = np.where(same_sign, harmonic, 0.0)
    m[0] = _pchip_end_slope(h[0], h[1], d[0], d[1])
    m[-1] = _pchip_end_slope(h[-1], h[-2], d[-1], d[-2])
    return m


def _pchip_end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    m = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(m) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(m) > 3 * abs(d0):
        return 3 * d0
    return float(m)


def _pchip_antiderivative(x: FloatArray, y: FloatArray, q: FloatArray) -> FloatArray:
    """Exact integral from x[0] to each q of the cubic Hermite interpolant."""
    m = _pchip_slopes(x, y)
    h = np.diff(x)
    seg_area = h * ((y[:-1] + y[1:]) / 2 + h * (m[:-1] - m[1:]) / 12)
    cum = np.concatenate(([0.0], np.cumsum(seg_area)))
    k = np.clip(np.searchsorted(x, q, side="right") - 1, 0, h.size - 1)
    t = (q - x[k]) / h[k]
    t2, t3, t4 = t * t, t**3, t**4
    part = (
        y[k] * (t - t3 + t4 / 2)
        + h[k] * m[k] * (t2 / 2 - 2 * t3 / 3 + t4 / 4)
        + y[k + 1] * (t3 - t4 / 2)
        + h[k] * m[k + 1] * (t4 / 4 - t3 / 3)
    )
    return cum[k] + h[k] * part


def _mean_log_rate(psnrs: FloatArray, log_rates: FloatArray, lo: float, hi: float, method: BDMethod) -> float:
    """Average of log-rate(PSNR) over [lo, hi] under the chosen interpolation."""
    if method == "pchip":
        ends = _pchip_antiderivative(psnrs, log_rates, np.array([lo, hi]))
        return float(ends[1] - ends[0]) / (hi - lo)
    if method == "cubic":
        fit = np.polynomial.Polynomial.fit(psnrs, log_rates, deg=min(3, psnrs.size - 1))
        integral = fit.integ()
        return float(integral(hi) - integral(lo)) / (hi - lo)
    raise ValueError(f"unknown BD method {method!r}")


def bd_rate(
    rates_a: ArrayLike,
    psnr_a: ArrayLike,
    rates_b: ArrayLike,
    psnr_b: ArrayLike,
    lo: float | None = None,
    hi: float | None = None,
    method: BDMethod = "pchip",
) -> float:
    """Bjøntegaard delta rate of A relative to B, in percent (negative: A smaller).

    log-rate is interpolated as a function of PSNR ("pchip": monotone piecewise
    cubic through the points, robust with long sweeps; "cubic": the classic
    VCEG-M33 least-squares cubic) and averaged over the overlap of both PSNR
    ranges intersected with [lo, hi]. Returns nan when that overlap is empty
    or either curve has fewer than two usable points. Rates may be bytes or
    bpp — only ratios matter — but must be on the same image(s) for A and B.
    """
    ra, pa = pareto_front(rates_a, psnr_a)
    rb, pb = pareto_front(rates_b, psnr_b)
    if pa.size < 2 or pb.size < 2:
        return math.nan
    low = max(pa[0], pb[0], -math.inf if lo is None else lo)
    high = min(pa[-1], pb[-1], math.inf if hi is None else hi)
    if not low < high:
        return math.nan
    diff = _mean_log_rate(pa, np.log(ra), low, high, method) - _mean_log_rate(pb, np.log(rb), low, high, method)
    return 100.0 * math.expm1(diff)


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


def run_svdi(img: Array, quality: int, layout: str = "auto") -> Encoded:
    """Round trip through svdcodec itself (imported lazily: the core is optional here)."""
    import svdcodec

    data = svdcodec.encode(img, quality=int(quality), layout=layout)
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


def _per_setting(runner: Callable[[Array, Setting], Encoded]) -> SweepFn:
    def sweep(img: Array, settings: Sequence[Setting]) -> list[tuple[Setting, int, Array]]:
        return [(s, *runner(img, s)) for s in settings]

    return sweep


def _svdi(layout: str) -> SweepFn:
    return _per_setting(lambda img, q: run_svdi(img, int(q), layout=layout))


@dataclass(frozen=True)
class Codec:
    """A codec under test: its settings sweep and how to run it."""

    name: str
    settings: tuple[Setting, ...]
    quick_settings: tuple[Setting, ...]
    sweep: SweepFn
    feature: str | None = None  # Pillow feature that must be present

    def available(self) -> bool:
        return self.feature is None or bool(features.check(self.feature))


_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95, 98, 100)
_QUICK_QUALITIES = (10, 30, 50, 70, 85, 95)

CODECS: dict[str, Codec] = {
    c.name: c
    for c in (
        Codec("jpeg", _QUALITIES, _QUICK_QUALITIES, _per_setting(run_jpeg), "jpg"),
        Codec("webp", _QUALITIES, _QUICK_QUALITIES, _per_setting(run_webp), "webp"),
        Codec("avif", (10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95), (20, 40, 60, 80, 90), _per_setting(run_avif), "avif"),
        Codec("jp2", (24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44), (26, 30, 34, 38, 42), _per_setting(run_jp2), "jpg_2000"),
        Codec("png", (6,), (6,), _per_setting(run_png), "zlib"),
        Codec("lecture", (4, 8, 16, 32, 48, 64, 96, 128, 192, 256, 320, 384), (16, 48, 128, 256, 384), lecture_sweep),
        Codec("svdi", (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), (10, 30, 50, 70, 90), _svdi("auto")),
        Codec("svdi-plain", (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95), (10, 30, 50, 70, 90), _svdi("plain")),
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


def _curves(rows: Iterable[RDPoint]) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    curves: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in rows:
        rates, psnrs = curves[(row.image, row.codec)]
        rates.append(row.bpp)
        psnrs.append(row.psnr)
    return curves


def bd_rates_per_image(
    rows: Iterable[RDPoint], reference: str = "jpeg", lo: float = 28.0, hi: float = 38.0
) -> dict[str, dict[str, float]]:
    """BD-rate (percent) of every codec against ``reference``: {codec: {image: bd}}."""
    curves = _curves(rows)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (image, codec), (rates, psnrs) in curves.items():
        ref = curves.get((image, reference))
        if codec != reference and ref is not None:
            out[codec][image] = bd_rate(rates, psnrs, ref[0], ref[1], lo, hi)
    return dict(out)


class BDSummary(NamedTuple):
    mean: float  # mean over images with a defined BD-rate; nan if none
    n_images: int  # images that contributed
    n_total: int  # images on which the codec was measured


def mean_bd_rates(
    rows: Iterable[RDPoint], reference: str = "jpeg", lo: float = 28.0, hi: float = 38.0
) -> dict[str, BDSummary]:
    """Per-image BD-rate vs ``reference`` over [lo, hi] dB, then the mean over images."""
    summary = {}
    for codec, per_image in bd_rates_per_image(rows, reference, lo, hi).items():
        values = np.array(list(per_image.values()), dtype=np.float64)
        finite = values[np.isfinite(values)]
        mean = float(finite.mean()) if finite.size else math.nan
        summary[codec] = BDSummary(mean, int(finite.size), int(values.size))
    return summary


def mean_curves(rows: Iterable[RDPoint]) -> dict[str, list[tuple[Setting, float, float]]]:
    """{codec: [(setting, mean bpp, mean PSNR)]} averaged over images, in setting order."""
    groups: dict[tuple[str, Setting], list[RDPoint]] = defaultdict(list)
    for row in rows:
        groups[(row.codec, row.setting)].append(row)
    out: dict[str, list[tuple[Setting, float, float]]] = defaultdict(list)
    order = {name: i for i, name in enumerate(CODECS)}
    for (codec, setting), group in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])):
        out[codec].append(
            (setting, float(np.mean([r.bpp for r in group])), float(np.mean([r.psnr for r in group])))
        )
    return dict(out)


def plot_rd(
    rows: Iterable[RDPoint],
    path: str | Path,
    lo: float | None = None,
    hi: float | None = None,
    title: str = "Rate–distortion (mean over images)",
) -> None:
    """Save a bpp-vs-PSNR plot, one line per codec; [lo, hi] dB is shaded if given.

    The x axis is logarithmic because the lecture baseline spends tens of bpp
    where the real codecs spend fractions of one. Lossless points (infinite
    PSNR) are left out. matplotlib is an optional dependency.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plot_rd needs matplotlib, an optional extra: pip install matplotlib") from exc
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.add_subplot()
    for codec, points in mean_curves(rows).items():
        finite = [(b, p) for _, b, p in points if math.isfinite(p)]
        if finite:
            xs, ys = zip(*sorted(finite))
            ax.plot(xs, ys, marker="o", markersize=3, label=codec)
    if lo is not None and hi is not None:
        ax.axhspan(lo, hi, color="0.9", zorder=0, label=f"BD range {lo:g}–{hi:g} dB")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)
