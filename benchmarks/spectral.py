"""Does a spectral transform pay before svdi codes a multispectral array? Each band its own plane
(what svdcodec.encode does with more than 4 channels) against a PCA across the bands first
(the Karhunen-Loeve transform: the bands' covariance eigenvectors, the rotated bands coded as
one float32 array, the 8 x 8 rotation and the means stored beside it), at the same qualities.

    python benchmarks/spectral.py --corpus DIR [--images 4] [--bands 8]

The arrays are multispectral-like: `bands` uint16 bands of each Kodak photo, band b the photo's
R, G and B mixed by Gaussian spectral responses centred from 420 to 680 nm (neighbouring bands
overlap, as a camera's filters do), plus independent noise of 40 units (of 65535) per band.
Printed per image and quality: bytes and PSNR (peak 65535, all bands) of both, and the
Bjontegaard rate of the PCA against the plain bands (negative: the PCA saves bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import svdcodec
from svdcodec.evaluation.metrics import bd_rate, psnr

from _common import kodak_paths, load_image, table

QUALITIES = (30, 50, 70, 85, 95)
#: Peak sensitivities (nm) of the photo's R, G and B, and the width of every response.
RGB_PEAKS, WIDTH = np.array([610.0, 550.0, 460.0]), 40.0


def multispectral(rgb: np.ndarray, bands: int, seed: int = 0) -> np.ndarray:
    """(h, w, bands) uint16 from an (h, w, 3) uint8 photo (see the module's docstring)."""
    centres = np.linspace(420.0, 680.0, bands)
    mix = np.exp(-0.5 * ((centres[:, None] - RGB_PEAKS[None, :]) / WIDTH) ** 2)
    mix /= mix.sum(axis=1, keepdims=True)
    x = rgb.astype(np.float64) @ mix.T * 257.0
    x += np.random.default_rng(seed).normal(0.0, 40.0, x.shape)
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)


def direct(x: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    data = svdcodec.encode(x, quality)
    return len(data), svdcodec.decode(data)


def rotated(x: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    """The PCA across bands: bytes of the rotated file plus the rotation and means (float32),
    and the decoded bands."""
    flat = x.reshape(-1, x.shape[2]).astype(np.float64)
    mean = flat.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(flat - mean, rowvar=False))
    basis = vectors[:, ::-1].astype(np.float32)  # strongest component first
    components = ((flat - mean) @ basis).astype(np.float32).reshape(x.shape)
    data = svdcodec.encode(components, quality)
    back = svdcodec.decode(data).reshape(-1, x.shape[2]).astype(np.float64) @ basis.T + mean
    side = basis.nbytes + 4 * mean.size
    return len(data) + side, np.clip(np.rint(back), 0, 65535).reshape(x.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of Kodak PNGs")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--bands", type=int, default=8)
    args = parser.parse_args()
    rows, rates = [], []
    for path in kodak_paths(args.corpus)[:args.images]:
        x = multispectral(np.asarray(load_image(path)), args.bands)
        curves: dict[str, tuple[list[int], list[float]]] = {"bands": ([], []), "pca": ([], [])}
        for q in QUALITIES:
            for name, coder in (("bands", direct), ("pca", rotated)):
                size, decoded = coder(x, q)
                curves[name][0].append(size)
                curves[name][1].append(psnr(x.astype(np.float64), decoded.astype(np.float64),
                                            65535.0))
            rows.append([path.name, q, curves["bands"][0][-1], f"{curves['bands'][1][-1]:.2f}",
                         curves["pca"][0][-1], f"{curves['pca'][1][-1]:.2f}"])
        rate = bd_rate(curves["pca"][0], curves["pca"][1], curves["bands"][0],
                       curves["bands"][1])
        rates.append(rate)
        print(f"{path.name}: PCA across bands vs each band its own plane: BD-rate {rate:+.1f} %",
              flush=True)
    print(table(["image", "quality", "bands bytes", "bands dB", "pca bytes", "pca dB"], rows))
    print(f"mean BD-rate of the PCA across {args.bands} bands: {np.nanmean(rates):+.1f} %")


if __name__ == "__main__":
    main()
