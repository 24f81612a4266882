#!/usr/bin/env python3
"""Does the reconstruction side pay: singular values refitted to the quantized factors (encoder
only), or levels reconstructed below their integers, at a per-plane centroid offset (a format
change) (issue #16)?

    python studies/recon_study.py --corpus DIR [--images 12] [--first 0] [--only NAME]
        [--effort 1] [--jobs 1]

On the images DIR's sorted PNGs [first, first + images), at qualities QUALITIES, each variant's
mean BD-rate against today's encoder (same effort), RGB PSNR 28-38 dB and 24-30 dB (negative:
smaller), and the mean change of bytes and PSNR at equal quality. The files are the real
encoder's: the variants replace the singular values the encoder stores (a hook on
`encoder.plane.plane_blocks` for each plane's whole coding, patch layouts) and, for a centroid
offset, decode with a hook on the numpy decoder that turns every non-zero integer L of U's
(and V's) components 1 ... r - 1 into sign(L) (|L| - delta) before the weights (the
dense first component, rounded to nearest, keeps its integers). Variants, with the plane's
matrix X, integers A, B and weights c_k = step^2 / sigma_k (X^ = A diag(c) B^T):

- `today`: the encoder without the refit (encoder.tuning.REFIT_SIGMA off);
- `encoder`: the encoder with it (`codec.refine.refitted_sigma`: `refit kk` from the sums the
  quantizer keeps);
- `refit`: c by least squares, (A^T A o B^T B) c = diag(A^T X B) (r x r, o: elementwise);
- `refit diag`: the same system's diagonal alone, c_k = a_k^T X b_k / (|a_k|^2 |b_k|^2);
- `refit cheap`: `refit diag` with X b_k taken as P (V^T b_k), P = X V the projections the
  encoder computes anyway (V its unit basis): no second product with the patches;
- `delta U`: the least-squares offset delta_U (rounded to 1/64 of a step) of U's non-zero
  levels in components >= 1, one per plane; `delta UV`: the same with V's, jointly;
- `refit + delta U`: delta_U first, then c refitted to A - delta_U sign(A);
- `NAME rounding R`: variant NAME with the dead zone's offset R (codec.quantize.ROUNDING);
- `centroid table` (an upper bound of richer offsets): every U level of magnitude 1 or 2 in
  component k >= 1 reconstructed at the mean magnitude of the coefficients (X V / step) that
  quantized to it, one offset per component and level.

The c_k of a refit stay within [1/2, 2] times step^2 / sigma_k (sigma' finite and > 0).

Conclusion (2026-12-02, C kernels; BD-rate against `today`, 28-38 / 24-30 dB). The refit pays
for no byte: `encoder` on the 24 Kodak photos -0.36 / -0.85 % at effort 1, -0.29 / -0.67 % at
effort 2; on the 8 held-out photos (benchmarks/heldout.py) -0.52 / -1.01 % and -0.54 / -1.03 %;
`refit` (the whole r x r system) the same within 0.003 point. Kept in the encoder
(`codec.refine.refitted_sigma`). Centroid offsets do not pay for a format change: `delta U`
-0.08 / -0.16 % (Kodak, effort 1), -0.07 / +0.01 % (held-out), at effort 2 -0.10 / -0.08 and
-0.25 / -0.24 %; `delta UV` -0.11 ... -0.29 %; nothing on top of the refit (kodim01-12 and
held-out: within 0.03 point, either sign); even `centroid table` at most -0.34 %. Table and
encode costs: docs/design-notes.md ("Reconstruction: refitted singular values and centroid
offsets").
"""

from __future__ import annotations

import argparse
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.codec import quantize
from svdcodec.decoder import plane as decoder_plane
from svdcodec.encoder import plane as encoder_plane
from svdcodec.encoder import schedule, tuning
from svdcodec.evaluation.metrics import bd_rate, psnr
from svdcodec.format import LAYOUT_PATCH

QUALITIES = (10, 20, 35, 50, 65, 78, 88, 94)
VARIANTS = ("today", "encoder", "refit", "refit diag", "refit cheap", "refit kk", "delta U", "delta UV",
            "refit + delta U", "centroid table")
#: The variant the hooks apply in this process, and the offsets of the planes it coded,
#: keyed by their stored singular values and step (what the decoder sees).
STATE: dict = {"variant": "today", "offsets": {}}
_context = threading.local()
ORIGINAL_CODE_PLANE = schedule.code_plane
ORIGINAL_PLANE_BLOCKS = encoder_plane.plane_blocks
ORIGINAL_FILL = decoder_plane.PlaneReconstructor._fill
GAIN_LIMITS = (0.5, 2.0)
TODAY_ROUNDING = quantize.ROUNDING


def code_plane(source, candidate, step, rule, measure, sample=None, done=None,
               keep_parts=False):
    _context.job = (source, candidate, sample)
    try:
        return ORIGINAL_CODE_PLANE(source, candidate, step, rule, measure, sample, done,
                                   keep_parts)
    finally:
        _context.job = None


def signs(ints: np.ndarray) -> np.ndarray:
    """sign(L) in components >= 1, 0 in the first (the dense, rounded-to-nearest column)."""
    s = np.sign(ints).astype(np.float64)
    s[:, :1] = 0.0
    return s


def least_squares_offset(X: np.ndarray, A: np.ndarray, B: np.ndarray, c: np.ndarray,
                         which: str) -> tuple[float, float]:
    """(delta_U, delta_V) minimizing |X - (A - dU S_A) diag(c) (B - dV S_B)^T| to first order
    (the dU dV term dropped), each rounded to 1/64 and kept within +-1/2."""
    base = (A * c) @ B.T
    residual = X - base
    terms = [(signs(A) * c) @ B.T]  # d(X^)/d(-dU)
    if which == "UV":
        terms.append((A * c) @ signs(B).T)
    M = np.array([[float(np.vdot(s, t)) for t in terms] for s in terms])
    rhs = np.array([-float(np.vdot(t, residual)) for t in terms])
    if np.linalg.matrix_rank(M) < len(terms):
        return 0.0, 0.0
    d = np.clip(np.round(np.linalg.solve(M, rhs) * 64) / 64, -0.5, 0.5)
    return float(d[0]), float(d[1]) if d.size > 1 else 0.0


def refit_weights(X: np.ndarray, A: np.ndarray, B: np.ndarray, c: np.ndarray, kind: str,
                  P: np.ndarray | None = None, basis: np.ndarray | None = None) -> np.ndarray:
    """The weights c' of a refit (see the variants), within GAIN_LIMITS of c."""
    if kind == "kk":
        assert P is not None and basis is not None
        rhs = np.einsum("ik,ik->k", A, P) * np.einsum("jk,jk->k", basis.astype(np.float64), B)
        fitted = rhs / np.maximum(np.einsum("ik,ik->k", A, A) * np.einsum("jk,jk->k", B, B),
                                  1e-300)
        return np.clip(fitted, c * GAIN_LIMITS[0], c * GAIN_LIMITS[1])
    if kind == "cheap":
        assert P is not None and basis is not None
        XB = P @ (basis.T.astype(np.float64) @ B)
    else:
        XB = X @ B
    rhs = np.einsum("ik,ik->k", A, XB)
    AA, BB = A.T @ A, B.T @ B
    if kind == "full":
        G = AA * BB
        try:
            fitted = np.linalg.solve(G, rhs)
        except np.linalg.LinAlgError:
            return c
    else:
        fitted = rhs / np.maximum(np.diag(AA) * np.diag(BB), 1e-300)
    return np.clip(fitted, c * GAIN_LIMITS[0], c * GAIN_LIMITS[1])


def plane_blocks(plane, A, sigma, B, u_symbols=None):
    variant = STATE["variant"]
    job = getattr(_context, "job", None)
    r = sigma.size
    if variant in ("today", "encoder") or job is None or job[2] is not None or not r \
            or plane.layout != LAYOUT_PATCH:
        return ORIGINAL_PLANE_BLOCKS(plane, A, sigma, B, u_symbols)
    source, candidate, _ = job
    X = source.patches(plane.index, 0, plane.height, plane.patch).astype(np.float64)
    Af, Bf = A.astype(np.float64), B.astype(np.float64)
    step = plane.step
    c = step * step / sigma.astype(np.float32).astype(np.float64)
    d_u = d_v = 0.0
    if variant == "centroid table":
        t = np.abs(X @ candidate.basis[:, :r].astype(np.float64)) / step
        table = np.zeros((3, r))
        for level in (1, 2):
            cell = (np.abs(A) == level)
            cell[:, 0] = False
            count = cell.sum(axis=0)
            table[level] = np.where(count > 0, level - (t * cell).sum(axis=0)
                                    / np.maximum(count, 1), 0.0)
        STATE["offsets"][(sigma.astype(np.float32).tobytes(), step)] = table
        return ORIGINAL_PLANE_BLOCKS(plane, A, sigma, B, u_symbols)
    if "delta" in variant:
        d_u, d_v = least_squares_offset(X, Af, Bf, c, "UV" if variant == "delta UV" else "U")
        Af = Af - d_u * signs(A)
        Bf = Bf - d_v * signs(B)
    if "refit" in variant:
        kind = "full" if variant in ("refit", "refit + delta U") else variant.split()[1]
        basis = candidate.basis[:, :r] if candidate.basis is not None else None
        P = X @ basis.astype(np.float64) if basis is not None else None
        if kind in ("cheap", "kk") and P is None:
            kind = "diag"
        c = refit_weights(X, Af, Bf, c, kind, P, basis)
        sigma = (step * step / c).astype(np.float32)
    if d_u or d_v:
        STATE["offsets"][(sigma.astype(np.float32).tobytes(), step)] = (d_u, d_v)
    return ORIGINAL_PLANE_BLOCKS(plane, A, sigma, B, u_symbols)


def fill(self, out, factor, grid, r0, r1, scale=None):
    """The numpy decoder's fill, with the plane's offsets applied to the integers."""
    ORIGINAL_FILL(self, out, factor, grid, r0, r1, None)
    sigma = self.weights_sigma
    offsets = STATE["offsets"].get((sigma, self.plane.step), (0.0, 0.0))
    if isinstance(offsets, np.ndarray):
        if factor is self.u:
            for level in (1, 2):
                cell = np.abs(out) == level
                out -= (cell * np.sign(out) * offsets[level][None, :]).astype(np.float32)
        if scale is not None:
            out *= scale
        return
    d_u, d_v = offsets
    d = d_u if factor is self.u else d_v
    if d:
        out[:, 1:] -= np.float32(d) * np.sign(out[:, 1:])
    if scale is not None:
        out *= scale


ORIGINAL_INIT = decoder_plane.PlaneReconstructor.__init__


def init(self, container, plane, rank, *args, **kwargs):
    self.weights_sigma = container.singular_values(plane.index)[:rank].astype(
        np.float32).tobytes()
    ORIGINAL_INIT(self, container, plane, rank, *args, **kwargs)


def install() -> None:
    schedule.code_plane = code_plane
    encoder_plane.plane_blocks = plane_blocks
    decoder_plane.PlaneReconstructor._fill = fill
    decoder_plane.PlaneReconstructor.__init__ = init


def curve(job: tuple[str, Path, int]) -> list[tuple[int, float]]:
    name, path, effort = job
    install()
    name, _, rounding = name.partition(" rounding ")
    STATE["variant"] = name
    tuning.REFIT_SIGMA = name == "encoder"
    quantize.ROUNDING = float(rounding) if rounding else TODAY_ROUNDING
    pixels = np.asarray(Image.open(path).convert("RGB"))
    out = []
    for q in QUALITIES:
        STATE["offsets"] = {}
        data = svdcodec.encode(pixels, quality=q, effort=effort)
        if STATE["offsets"]:
            os.environ["SVDCODEC_KERNELS"] = "0"  # the hook is on the numpy path's fill
        back = svdcodec.decode(data)
        os.environ.pop("SVDCODEC_KERNELS", None)
        out.append((len(data), psnr(pixels, back)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--effort", type=int, default=1)
    parser.add_argument("--only", action="append", help="a variant (repeatable): "
                        + ", ".join(VARIANTS) + "; any of them + ' rounding R'")
    parser.add_argument("--jobs", type=int, default=1)
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("*.png"))[args.first:args.first + args.images]
    variants = [v for v in (args.only or VARIANTS) if v != "today"]
    print(f"{len(paths)} images ({paths[0].name} ...), effort {args.effort}, qualities "
          f"{QUALITIES}; svdcodec {svdcodec.__file__}")
    print("BD-rate vs today: RGB PSNR 28-38 dB | 24-30 dB; mean bytes and PSNR change at "
          "equal quality")
    with ProcessPoolExecutor(args.jobs) as pool:
        base = list(pool.map(curve, [("today", p, args.effort) for p in paths]))
        for name in variants:
            curves = list(pool.map(curve, [(name, p, args.effort) for p in paths]))
            bds = []
            for c, b in zip(curves, base):
                (rc, pc), (rb, pb) = zip(*c), zip(*b)
                bds.append((bd_rate(rc, pc, rb, pb, 28.0, 38.0),
                            bd_rate(rc, pc, rb, pb, 24.0, 30.0)))
            mean = np.nanmean(np.array(bds, dtype=float), axis=0)
            size = np.mean([[x[0] / y[0] - 1 for x, y in zip(c, b)]
                            for c, b in zip(curves, base)]) * 100
            gain = np.mean([[x[1] - y[1] for x, y in zip(c, b)] for c, b in zip(curves, base)])
            print(f"{name:18s} {mean[0]:+7.3f} % {mean[1]:+7.3f} %   bytes {size:+6.3f} %"
                  f"   PSNR {gain:+7.4f} dB", flush=True)


if __name__ == "__main__":
    main()
