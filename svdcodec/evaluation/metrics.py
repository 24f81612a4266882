"""Image quality and rate measures: PSNR, SSIM, luma, bits per pixel, and the Bjøntegaard
delta rate (BD-rate) between rate-distortion curves.

Everything is deterministic, vectorised numpy, so the same inputs give the same numbers on any
machine. Images are arrays of shape (H, W) or (H, W, C); PSNR is over all samples of all
channels ("RGB PSNR"); rates are in bits per pixel of the H x W image.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BDMethod = Literal["pchip", "cubic"]


# ---------------------------------------------------------------- metrics


def psnr(a: ArrayLike, b: ArrayLike, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB; ``inf`` when the images are equal.

    Integers of up to 16 bits are differenced in int64 and their squares summed exactly, a band
    at a time (no whole-image float64 copies: svdi-compare measures 24 MP photos); other types in
    float64. Either way uint8 differences cannot wrap around.
    """
    x = np.asarray(a)
    y = np.asarray(b)
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {x.shape} vs {y.shape}")
    if _is_narrow_int(x) and _is_narrow_int(y):
        mse = _integer_squared_error(x, y) / max(x.size, 1)
    else:
        mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


#: Samples per band of the integer squared error: its int64 temporaries stay this small however
#: large the image, where float64 copies of both whole images and their difference would not.
_ERROR_BAND_SAMPLES = 1 << 20


def _is_narrow_int(arr: np.ndarray) -> bool:
    """Integers of at most 16 bits: their squared differences sum exactly in int64."""
    return arr.dtype.kind in "biu" and arr.dtype.itemsize <= 2


def _integer_squared_error(x: np.ndarray, y: np.ndarray) -> int:
    """Σ (x − y)² as an exact integer, a band of rows at a time.

    Exact, so the same value as the float64 sum over the whole image wherever that sum was
    exact itself (below 2⁵³, i.e. every 8-bit image of up to 2 billion samples).
    """
    if x.ndim == 0:
        x, y = x.reshape(1), y.reshape(1)
    row_samples = max(x[:1].size, 1)
    rows = max(_ERROR_BAND_SAMPLES // row_samples, 1)
    total = 0
    for top in range(0, x.shape[0], rows):
        # int64 out, the inputs cast in the ufunc's small buffers rather than copied whole.
        flat = np.subtract(x[top:top + rows], y[top:top + rows], dtype=np.int64).reshape(-1)
        total += int(np.dot(flat, flat))
        del flat  # before the next band's difference is allocated: one band alive at a time
    return total


def luma(img: ArrayLike) -> FloatArray:
    """BT.601 luma of an RGB image (or the image itself if single-channel).

    SSIM is defined on one channel; luma is what it is conventionally run on.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        return x
    return x[..., :3] @ np.array([0.299, 0.587, 0.114])


def gaussian_kernel(sigma: float, radius: int) -> FloatArray:
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
    kernel = gaussian_kernel(1.5, 5)
    if min(x.shape) < kernel.size:
        raise ValueError(f"image {x.shape} is smaller than the {kernel.size}x{kernel.size} window")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _filter_valid(x, kernel), _filter_valid(y, kernel)
    vx = _filter_valid(x * x, kernel) - mx * mx
    vy = _filter_valid(y * y, kernel) - my * my
    cxy = _filter_valid(x * y, kernel) - mx * my
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(smap.mean())


def ssim_db(value: float) -> float:
    """SSIM as −10·log10(1 − SSIM) dB; ``inf`` at 1.

    Why: SSIM crowds good pictures near 1 (0.95 and 0.99 are far apart to the eye), so
    curves and BD-rate averages over an SSIM range use this scale, on which equal steps
    are roughly equal steps of visible quality, as PSNR's are.
    """
    return math.inf if value >= 1.0 else -10.0 * math.log10(1.0 - value)


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


def bd_span(
    rates_a: ArrayLike,
    psnr_a: ArrayLike,
    rates_b: ArrayLike,
    psnr_b: ArrayLike,
    lo: float | None = None,
    hi: float | None = None,
) -> tuple[float, float] | None:
    """The quality range a BD-rate averages over: both curves' ranges intersected with
    [lo, hi]; None when empty or a curve has fewer than two usable points.

    Why separate: a codec whose curve stops short of the window (WebP's quality 0 is
    above 28 dB on some photos) is compared on the part both reach; callers report how
    much of the window that was.
    """
    return _overlap(pareto_front(rates_a, psnr_a)[1], pareto_front(rates_b, psnr_b)[1], lo, hi)


def _overlap(pa: FloatArray, pb: FloatArray, lo: float | None, hi: float | None
             ) -> tuple[float, float] | None:
    """`bd_span` of two Pareto fronts' (increasing) qualities."""
    if pa.size < 2 or pb.size < 2:
        return None
    low = max(pa[0], pb[0], -math.inf if lo is None else lo)
    high = min(pa[-1], pb[-1], math.inf if hi is None else hi)
    return (float(low), float(high)) if low < high else None


def matched_range(psnrs: ArrayLike, values: ArrayLike, lo: float, hi: float) -> tuple[float, float] | None:
    """The range of another quality measure (``values``) that one codec's curve spans between
    PSNR ``lo`` and ``hi``: its value at those PSNRs, interpolated linearly between its points.

    Why: a window in SSIM that means the same quality as 28–38 dB for the reference codec,
    image by image. Points are taken in PSNR order with the value made non-decreasing (a
    sweep's rare wiggle would otherwise turn the range around); PSNRs outside the curve are
    clipped to its ends. None without two finite points.
    """
    p = np.asarray(psnrs, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    ok = np.isfinite(p) & np.isfinite(v)
    p, v = p[ok], v[ok]
    if p.size < 2:
        return None
    order = np.argsort(p, kind="stable")
    p, v = p[order], np.maximum.accumulate(v[order])
    return float(np.interp(lo, p, v)), float(np.interp(hi, p, v))


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
    span = _overlap(pa, pb, lo, hi)
    if span is None:
        return math.nan
    low, high = span
    diff = _mean_log_rate(pa, np.log(ra), low, high, method) - _mean_log_rate(pb, np.log(rb), low, high, method)
    return 100.0 * math.expm1(diff)
