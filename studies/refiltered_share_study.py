#!/usr/bin/env python3
"""Can the encoder tell a grey image svdi decoded (whose patch edges its deblocking filter
moved once already) from an original, where a plane keeps the basis fitted to its own
integers? For every such plane this prints the share of its error on the judged samples that
the best filter would remove (what `tuning.REFILTERED_SHARE` is compared with), and the error
before and after the filter per sample over the step squared, for four kinds of image:

* decoded: the grey Kodak photos decoded from default files (and from effort 2, aq, restore
  and patch16 files with --options), then encoded again alike;
* rendered: a text page, a bar chart and a UI drawn with ImageDraw, and a striped pattern;
* jpeg: the Kodak luma saved as JPEG 75 and 90 by Pillow, then encoded at 50 and 75.

    python studies/refiltered_share_study.py --corpus DIR [--images 24] [--options]

Conclusion (2026-12-07, docs/design-notes.md "Deblocking filter"): the kinds overlap (decoded
from default files 18.7-89 %, from aq files down to 12 %, from patch16 files 0.4-3 %; rendered
5.6-18 %, the stripes 30-31 %; JPEG-sourced at most 6.3 %), and the errors before and after the
filter overlap too: 15 % keeps every decode of a default file unfiltered and every
JPEG-sourced photo filtered.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("SVDCODEC_THREADS", "1")  # the counters below are not thread-safe

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import svdcodec
from svdcodec.encoder import deblock

#: per fitted plane judged: (share removed, error after / step^2, error before / step^2)
FOUND: list[tuple[float, float, float]] = []
_best, _error, _strength = deblock.best_strength, deblock.EdgeSamples.error, deblock.plane_strength
_state: dict[str, float] = {}


def _best_recorded(candidates, changes):  # type: ignore[no-untyped-def]
    found = _best(candidates, changes)
    _state["saved"] = found[1]
    return found


def _error_recorded(self):  # type: ignore[no-untyped-def]
    error = _error(self)
    _state["error"] = _state.get("error", 0.0) + error
    _state["n"] = _state.get("n", 0) + int(self.counted.sum()) * self.samples.shape[1]
    return error


def _strength_recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
    _state.clear()
    found = _strength(*args, **kwargs)
    if kwargs.get("fitted", args[8] if len(args) > 8 else False):
        step2 = args[4].step ** 2
        error, saved, n = _state["error"], _state["saved"], max(_state["n"], 1)
        FOUND.append((saved / max(error, 1e-12), (error - saved) / n / step2, error / n / step2))
    return found


deblock.best_strength = _best_recorded
deblock.EdgeSamples.error = _error_recorded
deblock.plane_strength = _strength_recorded


def planes_of(image: np.ndarray, **options: object) -> list[tuple[float, float, float]]:
    FOUND.clear()
    svdcodec.encode(image, **options)
    return list(FOUND)


def rendered() -> dict[str, np.ndarray]:
    font = ImageFont.load_default(size=14)
    page = Image.new("L", (640, 480), 255)
    draw = ImageDraw.Draw(page)
    for i in range(28):
        draw.text((20, 10 + 16 * i), f"The quick brown fox jumps over the lazy dog {i} 0123456789",
                  fill=0, font=font)
    chart = Image.new("L", (640, 480), 240)
    draw = ImageDraw.Draw(chart)
    for i in range(12):
        draw.rectangle((40 + 48 * i, 400 - 25 * i, 70 + 48 * i, 440), fill=60 + 12 * i)
    for y in range(40, 440, 40):
        draw.line((30, y, 620, y), fill=180)
    draw.ellipse((400, 50, 600, 250), outline=0, width=3)
    ui = Image.new("L", (640, 480), 230)
    draw = ImageDraw.Draw(ui)
    for r in range(10):
        for c in range(4):
            draw.rounded_rectangle((10 + 158 * c, 10 + 46 * r, 160 + 158 * c, 50 + 46 * r), 6,
                                   fill=250, outline=150)
            draw.text((20 + 158 * c, 22 + 46 * r), f"Button {r}.{c}", fill=30, font=font)
    y, x = np.mgrid[:300, :400]
    stripes = np.where(((x // 7) % 3 == 0) & ((y // 11) % 2 == 0), 20, 235).astype(np.uint8)
    return {"page": np.asarray(page), "chart": np.asarray(chart), "ui": np.asarray(ui),
            "stripes": stripes}


def show(kind: str, found: list[tuple[float, float, float]]) -> None:
    if not found:
        print(f"{kind}: no fitted plane")
        return
    values = np.array(found)
    print(f"{kind}: {len(found)} fitted planes")
    for column, name in enumerate(("share removed", "after / step^2", "before / step^2")):
        print(f"  {name}: {np.round(np.sort(values[:, column]), 4).tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the Kodak photos' folder")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--options", action="store_true",
                        help="also decodes of effort 2, aq, restore and patch16 files")
    args = parser.parse_args()
    photos = [np.asarray(Image.open(p).convert("L"))
              for p in sorted(args.corpus.glob("kodim*.png"))[:args.images]]
    decoded, optioned, jpeg, drawn = [], [], [], []
    for grey in photos:
        for q in (30, 50, 75, 90):
            decoded += planes_of(svdcodec.decode(svdcodec.encode(grey, quality=q)), quality=q)
        if args.options:
            for options in ({"effort": 2}, {"aq": True}, {"restore": True},
                            {"layout": "patch16"}):
                first = svdcodec.decode(svdcodec.encode(grey, quality=75, **options))
                optioned += planes_of(first, quality=75, **options)
        for jq in (75, 90):
            buffer = io.BytesIO()
            Image.fromarray(grey).save(buffer, "JPEG", quality=jq)
            once = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
            for q in (50, 75):
                jpeg += planes_of(once, quality=q)
    for image in rendered().values():
        for q in (20, 30, 50, 75, 90):
            drawn += planes_of(image, quality=q)
    show("decoded from default files", decoded)
    if args.options:
        show("decoded from effort 2, aq, restore, patch16 files", optioned)
    show("rendered originals", drawn)
    show("JPEG-sourced originals", jpeg)


if __name__ == "__main__":
    main()
