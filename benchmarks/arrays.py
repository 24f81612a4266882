"""The figures of docs/arrays.md: DICOM sizes against PNG and zlib, every sample type's round
trip, and the centred PCA of a time x sensors matrix.

    python benchmarks/arrays.py

DICOM: pydicom's bundled CT_small.dcm and MR_small.dcm (pip install "svdcodec[dicom]"), lossless
and within E = 1 and 4, against 16-bit PNG (Pillow, optimize=True; the stored values shifted to
be non-negative where they are not) and zlib level 9 of the raw samples, in the same run.
"""

from __future__ import annotations

import io
import zlib

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.evaluation.metrics import psnr

from _common import table


def png16(pixels: np.ndarray) -> int:
    """Bytes of a 16-bit greyscale PNG of the samples (shifted to start at 0)."""
    shifted = (pixels.astype(np.int64) - min(0, int(pixels.min()))).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(shifted).save(buf, "PNG", optimize=True)  # mode I;16
    return buf.tell()


def dicom_rows() -> list[list[object]]:
    from pydicom.data import get_testdata_file

    from svdcodec import dicom

    rows: list[list[object]] = []
    for name in ("CT_small.dcm", "MR_small.dcm"):
        path = get_testdata_file(name, download=False)
        pixels, _ = dicom.read_dicom(path)
        raw = pixels.nbytes
        png, deflated = png16(pixels), len(zlib.compress(pixels.tobytes(), 9))
        for bound in (0, 1, 4):
            data = dicom.encode_dicom(path, max_error=bound)
            back = dicom.decode_dicom(data).pixels
            error = int(np.abs(back.astype(np.int64) - pixels.astype(np.int64)).max())
            rows.append([name, f"{pixels.shape[1]}x{pixels.shape[0]} {pixels.dtype}", bound,
                         len(data), f"{raw / len(data):.2f}", f"{len(data) / png:.3f}",
                         f"{len(data) / deflated:.3f}", error])
    return rows


def type_rows() -> list[list[object]]:
    """One smooth 8-channel array in every sample type: bytes and worst error at quality 75 and
    with max_error=1."""
    rng = np.random.default_rng(3)
    t = np.linspace(0, 6, 256)
    base = np.sin(np.add.outer(t, t)[:, :, None] * np.linspace(0.5, 2.0, 8)) + 0.02 * rng.normal(
        size=(256, 256, 8))
    rows: list[list[object]] = []
    for dtype, span, offset in ((np.uint8, 100, 120), (np.int8, 100, 0), (np.uint16, 20000, 30000),
                                (np.int16, 20000, 0), (np.int32, 1e9, 0), (np.uint32, 1e9, 2e9),
                                (np.float32, 1.0, 0), (np.float64, 1.0, 0)):
        x = (base * span + offset).astype(dtype)
        for bound in (None, 1):
            data = svdcodec.encode(x, 75, max_error=bound)
            y = svdcodec.decode(data)
            error = float(np.abs(y.astype(np.float64) - x.astype(np.float64)).max())
            peak = float(np.ptp(x.astype(np.float64)))
            rows.append([np.dtype(dtype).name, "75" if bound is None else "E=1", len(data),
                         f"{x.nbytes / len(data):.2f}", f"{error:.4g}",
                         f"{psnr(x.astype(np.float64), y.astype(np.float64), peak):.2f}"])
    return rows


def pca_figures() -> None:
    """The README's tall-skinny example, centred."""
    rng = np.random.default_rng(7)
    t = np.arange(20000)[:, None] / 100.0
    sources = np.sin(t * rng.uniform(0.5, 20.0, 6))
    x = (sources @ rng.standard_normal((6, 64)) + 0.05 * rng.standard_normal((20000, 64))
         + rng.uniform(10, 20, 64)).astype(np.float32)
    for rank in (None, 6):
        data = svdcodec.encode(x, 90, centre=True, rank=rank)
        (f,) = svdcodec.read_factors(data)
        centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(6, f.S.size)
        cosines = np.abs(np.sum(f.Vt[:k].astype(np.float64) * vt[:k], axis=1))
        u, v = f.U.astype(np.float64), f.Vt.T.astype(np.float64)
        print(f"centre=True, rank={rank}: {len(data)} bytes ({x.nbytes / len(data):.0f}:1), "
              f"kept {f.S.size}; |cos| of the first {k} axes with numpy's PCA >= "
              f"{cosines.min():.5f}; explained variance {np.round(f.S[:k] ** 2 / (len(x) - 1), 2)}"
              f" (numpy {np.round(s[:k] ** 2 / (len(x) - 1), 2)}); max |mean - numpy| "
              f"{np.abs(f.mean - x.mean(axis=0, dtype=np.float64)).max():.2e}; max |U^T U - I| "
              f"{np.abs(u.T @ u - np.eye(u.shape[1])).max():.4f}, max |V^T V - I| "
              f"{np.abs(v.T @ v - np.eye(v.shape[1])).max():.5f}; worst error "
              f"{np.abs(svdcodec.decode(data) - x).max():.3f}")


def main() -> None:
    print("DICOM (pydicom's bundled files): svdi bytes, raw/svdi, svdi/PNG 16-bit, svdi/zlib 9")
    print(table(["file", "image", "max_error", "bytes", "raw ratio", "vs PNG", "vs zlib",
                 "worst error"], dicom_rows()))
    print("\nEvery sample type, 256x256x8 smooth + noise (PSNR over the array's range)")
    print(table(["dtype", "mode", "bytes", "raw ratio", "worst error", "PSNR dB"], type_rows()))
    print()
    pca_figures()


if __name__ == "__main__":
    main()
