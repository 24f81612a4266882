"""The singular-value spectrum of each plane, as the encoder sees it, and its plot.

`spectrum(image)` encodes the image with the given options, reads back each plane's layout
and the rank the encoder kept, and computes every singular value of that plane's matrix in that
layout, from the encoder's own planes (`encoder.source.PlaneSource`, the same colour transform,
sample scale and chroma subsampling):

* patch layouts: the eigenvalues of the encoder's own Gram matrix (`encoder.plane.patch_grams`,
  float32 band products summed in float64: the matrix the encoder ranks its components by);
* plain layout, short side up to `codec.factorize.RANDOMIZED_ABOVE`: the eigenvalues of the
  short side's Gram matrix accumulated in float64, block by block (no float64 copy of the plane);
* plain layout, larger: the encoder's randomized range finder, which gives only the leading
  values (`RANDOMIZED_RANK`, or the requested rank if larger); `complete` is then False, while
  `total_energy` is still the exact squared Frobenius norm, so the energy curve stays a true
  fraction of the whole.

A Gram matrix squares the singular values, so those below about sqrt(eps) * sigma_1 of the
product's precision lose relative accuracy (spec/svdi.md, "Why the Gram matrix"); the tests
compare with numpy's SVD. `stored_spectrum(data)` is what an .svdi file itself holds: only the
kept singular values (the total energy of the original is not in the file).

Values are in the units of `read_factors` (`decoder.factor_scale`): sample units for images
without a colour transform (the header's scale applied, but to uint8), Y'CbCr units for colour
images: 8-bit for 8-bit RGB(A), 16-bit (0 ... 65535) for 16-bit RGB(A).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .codec.factorize import RANDOMIZED_ABOVE, RANDOMIZED_RANK, randomized
from .codec.layout import to_matrix
from .decoder import factor_scale, kept_sigma
from .encoder import encode
from .encoder.plane import patch_grams
from .encoder.source import PlaneSource
from .errors import SvdiError
from .format import LAYOUT_PLAIN, Header, Plane, unpack
from .format.inputs import FileInput, file_bytes
from .modes import as_pixels
from .runtime.threads import single_threaded, threaded_blas

__all__ = ["PlaneSpectrum", "plot_spectrum", "spectrum", "stored_spectrum"]

#: Columns (or rows) of a plain matrix converted to float64 at a time for its Gram matrix.
GRAM_BLOCK_BYTES = 1 << 25


@dataclass
class PlaneSpectrum:
    """The singular values of one plane's matrix and the rank the encoder kept."""

    index: int
    layout: str  # "plain" or "patchN"
    matrix_shape: tuple[int, int]
    sigma: np.ndarray  # float64, descending
    total_energy: float | None  # sum of all sigma^2 (None: unknown, a file's stored values)
    kept: int  # components the encoder kept
    complete: bool  # sigma holds all min(m, n) singular values

    @property
    def energy(self) -> np.ndarray:
        """Cumulative energy: sum(sigma[:k+1]^2) / total energy, for each k (of the stored
        values' energy when the total is unknown)."""
        squares = np.cumsum(self.sigma ** 2)
        total = self.total_energy if self.total_energy is not None else (
            float(squares[-1]) if squares.size else 0.0)
        return squares / total if total > 0 else np.zeros_like(squares)

    @property
    def kept_energy(self) -> float:
        """The fraction of the energy the kept components hold (before quantization)."""
        return float(self.energy[self.kept - 1]) if self.kept else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "layout": self.layout,
                "matrix_shape": list(self.matrix_shape), "sigma": self.sigma.tolist(),
                "total_energy": self.total_energy, "kept": self.kept,
                "complete": self.complete}


def _layout_name(plane: Plane) -> str:
    return "plain" if plane.layout == LAYOUT_PLAIN else f"patch{plane.patch}"


def _descending_roots(eigenvalues: np.ndarray, count: int) -> np.ndarray:
    """The `count` largest square roots of a symmetric matrix's eigenvalues (rounding makes
    the smallest of a positive semi-definite matrix slightly negative: clipped to zero)."""
    values = np.sort(eigenvalues)[::-1][:count]
    return np.sqrt(np.clip(values, 0.0, None))


def _gram64(matrix: np.ndarray) -> np.ndarray:
    """The short side's Gram matrix in float64, from float64 copies of one block of rows (tall)
    or columns (wide) at a time."""
    m, n = matrix.shape
    tall = n <= m
    k = min(m, n)
    gram = np.zeros((k, k))
    per = max(1, GRAM_BLOCK_BYTES // (8 * k))
    for start in range(0, max(m, n), per):
        block = (matrix[start:start + per] if tall else matrix[:, start:start + per].T)
        block = block.astype(np.float64)
        gram += block.T @ block
    return gram


def _squared_norm(matrix: np.ndarray) -> float:
    """sum of squares in float64, a block of rows at a time."""
    per = max(1, GRAM_BLOCK_BYTES // (8 * matrix.shape[1]))
    total = 0.0
    for start in range(0, matrix.shape[0], per):
        block = matrix[start:start + per].astype(np.float64).ravel()
        total += float(block @ block)
    return total


def _plain_spectrum(matrix: np.ndarray, requested: int | None) -> tuple[np.ndarray, float, bool]:
    k = min(matrix.shape)
    if k <= RANDOMIZED_ABOVE:
        gram = _gram64(matrix)
        return _descending_roots(np.linalg.eigvalsh(gram), k), float(np.trace(gram)), True
    total = _squared_norm(matrix)
    leading = max(RANDOMIZED_RANK, requested or 0)
    factors = randomized(matrix.astype(np.float32, copy=False), min(leading, k))
    return factors.sigma.astype(np.float64), total, factors.rank >= k


def _plane_spectrum(source: PlaneSource, header: Header, plane: Plane,
                    requested: int | None) -> PlaneSpectrum:
    m, n = plane.matrix_shape
    if plane.layout == LAYOUT_PLAIN:
        matrix = to_matrix(source.rows(plane.index, 0, plane.height), 0)
        with threaded_blas():
            sigma, total, complete = _plain_spectrum(matrix, requested)
    else:
        gram = patch_grams(source, plane.index, [plane.patch])[plane.patch]
        sigma = _descending_roots(np.linalg.eigvalsh(gram), min(m, n))
        total, complete = float(np.trace(gram)), True
    scale = factor_scale(header)  # plane units -> read_factors' units
    if scale != 1.0:
        sigma = sigma * scale
        total = total * scale * scale  # (float64 overflow: inf, not OverflowError)
        if not math.isfinite(total):  # the energy fractions need sigma^2 and their sum
            raise SvdiError(f"plane {plane.index}: the samples' energy overflows float64 "
                            f"(scale {scale:.3g}); scale them down (by 2**-512, say) for "
                            "their spectrum")
    return PlaneSpectrum(plane.index, _layout_name(plane), (m, n), sigma, total, plane.rank,
                         complete)


def spectrum(image: np.ndarray | Image.Image, quality: float = 75, *, layout: str = "auto",
             rank: int | None = None, energy: float | None = None,
             target_psnr: float | None = None, max_bytes: int | None = None,
             centre: bool = False, effort: int | None = None, aq: bool | None = None
             ) -> list[PlaneSpectrum]:
    """Every plane's singular values, cumulative energy and the rank `encode` keeps with these
    options (`svdcodec.encode`'s arguments that choose the layout and the kept rank; the
    layout of each plane is the one the encoder chose; with centre=True the spectrum of the
    centred columns, the PCA's). See the module's docstring for what is computed for each
    layout."""
    pixels = as_pixels(image)
    data = encode(pixels, quality, rank=rank, energy=energy, target_psnr=target_psnr,
                  max_bytes=max_bytes, layout=layout, centre=centre, effort=effort, aq=aq)
    box = unpack(data)
    source = PlaneSource(pixels, box.header, bool(centre))
    with single_threaded():  # band threads: see runtime.threads
        return [_plane_spectrum(source, box.header, plane, rank) for plane in box.planes]


def stored_spectrum(data: FileInput) -> list[PlaneSpectrum]:
    """The singular values an .svdi file stores (the kept ones, as read_factors gives them);
    `data` as `decode` takes it."""
    box = unpack(file_bytes(data, "stored_spectrum"))
    scale = factor_scale(box.header)
    out = []
    for plane in box.planes:
        with np.errstate(over="ignore"):  # (a hostile file's sigma times its scale: inf)
            sigma = kept_sigma(box, plane).astype(np.float64) * scale
        out.append(PlaneSpectrum(plane.index, _layout_name(plane), plane.matrix_shape, sigma,
                                 None, plane.rank, plane.rank >= min(plane.matrix_shape)))
    return out


def plot_spectrum(spectra: list[PlaneSpectrum], path: str | os.PathLike[str] | Any,
                  title: str | None = None, *, image_format: str | None = None,
                  dpi: int = 100) -> None:
    """Draw each plane's sigma_k (log scale) and cumulative energy, the kept rank marked, into
    an image file or a writable binary file object; `image_format` (png, svg, pdf ...)
    defaults to the file name's suffix, or PNG for a file object. Needs matplotlib
    (`pip install ".[plot]"` in the clone, or `pip install matplotlib`)."""
    try:  # the Figure alone, not pyplot: no GUI backend, no global state
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise SvdiError("plotting the spectrum needs matplotlib: pip install matplotlib "
                        "(the plot extra)") from None
    if not spectra:
        raise SvdiError("no planes to plot")
    figure = Figure(figsize=(6.4, 2.6 * len(spectra)), dpi=dpi, layout="constrained")
    axes = figure.subplots(len(spectra), 1, squeeze=False)[:, 0]
    for ax, s in zip(axes, spectra):
        k = np.arange(1, s.sigma.size + 1)
        positive = s.sigma > 0
        ax.semilogy(k[positive], s.sigma[positive], color="tab:blue", lw=1.2)
        ax.set_xlabel("component k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # (k = 2.5 is no component)
        ax.set_ylabel("σ_k", color="tab:blue")
        m, n = s.matrix_shape
        shown = "" if s.complete else f", first {s.sigma.size} of {min(m, n)}"
        ax.set_title(f"plane {s.index}: {s.layout}, {m}×{n}{shown}", fontsize=9)
        twin = ax.twinx()
        twin.plot(k, 100 * s.energy, color="tab:orange", lw=1.2)
        twin.set_ylim(0, 100.5)
        share = "of all σ²" if s.total_energy is not None else "of the stored σ²"
        twin.set_ylabel(f"cumulative energy, % {share}", color="tab:orange", fontsize=8)
        if s.kept:
            ax.axvline(s.kept, color="tab:red", ls="--", lw=1)
            right = s.kept > 0.6 * s.sigma.size  # label on the side with room
            twin.annotate(f"kept r = {s.kept} ({100 * s.kept_energy:.2f} %)",
                          (s.kept, 100 * s.kept_energy), xytext=(-4 if right else 4, -14),
                          textcoords="offset points", color="tab:red", fontsize=8,
                          ha="right" if right else "left")
    if title:
        figure.suptitle(title, fontsize=10)
    if image_format is None and not isinstance(path, (str, os.PathLike)):
        image_format = "png"
    figure.savefig(path, format=image_format)
