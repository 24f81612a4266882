"""Rate–distortion sweeps of svdcodec against standard image codecs (metrics in `metrics`).

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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from PIL import Image, features

from .metrics import (
    BDMethod,  # noqa: F401
    FloatArray,
    bd_rate,
    bpp,
    luma,  # noqa: F401
    pareto_front,  # noqa: F401
    psnr,
    ssim,
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
