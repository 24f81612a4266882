#!/usr/bin/env python3
"""Predicting a plane's layout (patch4 or patch8) from its spectra, instead of coding it in both
(2026-12-02, issue #13).

Question: layout "auto" coded every small plane (or a sample of a large one) in patch4 and
patch8 and kept the cheaper: two eigendecompositions and two codings per plane, most of a
256 x 256 crop's encode. Can the eigenvalues of the two Gram matrices alone (`eigvalsh`, a
third of `eigh`'s time at 64 x 64) say which costs less?

    python studies/layout_model.py --corpus DIR [--qualities 30,50,75,90]

Method: every plane of the 24 Kodak photos and of two 256 x 256 crops of each, at each
quality, coded whole in both layouts with prediction off; the truth is the layout of lower
D + lambda R (`encoder.schedule.rd_cost`). A logistic regression on
`encoder.plane.layout_features` (Newton's method, L2 1e-2, features standardized) is
cross-validated on four folds of photos (a photo's planes and crops in one fold), then fitted
on all: the weights it prints are `encoder.tuning.LAYOUT_MODEL`.

Answer (q30/50/75/90, 864 planes; always patch4 would cost +3.1 % D + lambda R):
cross-validated, the prediction picks the cheaper layout for 87.4 % of the planes; with both
layouts coded where the score is within a margin of the boundary, +0.33 / +0.09 / +0.05 /
+0.00 % D + lambda R over always the cheaper, predicting 100 / 81 / 59 / 24 % of the planes
at margin 0 / 1 / 2 / 4 (encoder.tuning.LAYOUT_MODEL_MARGIN is 1). The files' bytes, PSNR
and encode time against the sampled coding, on Kodak, its crops and held-out photos:
docs/performance.md ("Layout prediction").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.encoder import schedule, tuning
from svdcodec.encoder.plane import code_plane, layout_features
from svdcodec.format import LAYOUT_PATCH, Plane


def collect(images: list[tuple[int, np.ndarray]], qualities: list[int]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, patch4's cost, patch8's cost, photo number) of every plane coded."""
    rows: list[tuple[list[float], float, float, int]] = []
    photo = [0]
    choose = schedule.Encoder.choose_layout

    def costed(self: schedule.Encoder, work: schedule.Prepared, index: int, step: float,
               allow_whole: bool = True) -> schedule.LayoutChoice | None:
        choice = choose(self, work, index, step, allow_whole)
        if choice is None or sorted(work.grams.get(index, {})) != [4, 8]:
            return choice
        h, w = work.source.shapes[index]
        counts = {side: Plane(index, LAYOUT_PATCH, side, h, w, 0, 1.0).matrix_shape[0]
                  for side in (4, 8)}
        chroma = bool(work.header.colour) and index in (1, 2)
        x = layout_features(work.grams[index], counts, choice.step, chroma)
        cost = {c.plane.patch: schedule.rd_cost(code_plane(work.source, c, choice.step,
                                                           self.rule, True), choice.step)
                for c in self._candidates(work, index, choice.step)}
        rows.append((x, cost[4], cost[8], photo[0]))
        return choice

    predict, tuning.PREDICT_LAYOUT = tuning.PREDICT_LAYOUT, False
    schedule.Encoder.choose_layout = costed  # type: ignore[method-assign]
    try:
        for q in qualities:
            for number, pixels in images:
                photo[0] = number
                svdcodec.encode(pixels, quality=q)
    finally:
        schedule.Encoder.choose_layout = choose  # type: ignore[method-assign]
        tuning.PREDICT_LAYOUT = predict
    x, c4, c8, p = zip(*rows)
    return np.array(x), np.array(c4), np.array(c8), np.array(p)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-2) -> np.ndarray:
    """Logistic regression weights (on standardized features, returned unstandardized)."""
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    z = x / scale
    w = np.zeros(z.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + l2 * w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.eye(w.size)
        w -= np.linalg.solve(hessian, gradient)
    return w / scale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--qualities", default="30,50,75,90")
    args = parser.parse_args(argv)
    images: list[tuple[int, np.ndarray]] = []
    for number, path in enumerate(sorted(args.corpus.glob("*.png"))):
        pixels = np.asarray(Image.open(path).convert("RGB"))
        images += [(number, pixels), (number, np.ascontiguousarray(pixels[:256, :256])),
                   (number, np.ascontiguousarray(pixels[256:512, 256:512]))]
    x, c4, c8, photo = collect(images, [int(q) for q in args.qualities.split(",")])
    y = (c4 <= c8).astype(float)
    best = np.minimum(c4, c8)
    score = np.zeros(y.size)
    for fold in range(4):
        test = photo % 4 == fold
        score[test] = x[test] @ fit(x[~test], y[~test])
    print(f"{y.size} planes; cross-validated: {100 * np.mean((score > 0) == y):.1f} % right "
          f"(always patch4: +{100 * (c4.sum() / best.sum() - 1):.2f} % D + lambda R)")
    for margin in (0.0, 1.0, 2.0, 4.0):
        # within the margin both layouts are coded and the cheaper kept (the truth, here)
        sure = np.abs(score) > margin
        picked = np.where(sure, np.where(score > 0, c4, c8), best)
        print(f"  margin {margin}: {100 * sure.mean():.0f} % of planes predicted, "
              f"+{100 * (picked.sum() / best.sum() - 1):.2f} % D + lambda R")
    weights = fit(x, y)
    print("LAYOUT_MODEL = (" + ", ".join(f"{w:.6g}" for w in weights) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
