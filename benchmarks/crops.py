#!/usr/bin/env python3
"""Side-by-side crops at equal file size: svdi, JPEG and WebP beside the original.

    python benchmarks/crops.py --corpus DIR                   # docs/img/crops-kodim23-0.3bpp.png
    python benchmarks/crops.py --corpus DIR --image kodim05 --crop 0,0,192,144 --bpp 0.5

Each codec encodes the whole photo at the highest quality setting whose file is no larger than
--bpp bits per pixel (found by bisection over its integer quality, then checked at the
neighbours, since size grows with quality only nearly monotonically); the same crop of each
decoded photo is magnified with nearest-neighbour, so that every pixel the codec produced stays
visible, and labelled with the file's size and its PSNR and luma SSIM over the whole photo.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from svdcodec.evaluation import codecs as compare
from svdcodec.evaluation.metrics import psnr, ssim

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
Runner = Callable[[np.ndarray, int], tuple[int, np.ndarray]]

# (label, runner, lowest and highest quality searched)
CODECS: dict[str, tuple[str, Runner, int, int]] = {
    "svdi": ("svdi (defaults: deblocking filter on)", compare.run_svdi, 1, 100),
    "svdi-nodeblock": ("svdi, deblock=False", partial(compare.run_svdi, deblock=False), 1, 100),
    "jpeg": ("JPEG (Pillow, 4:2:0)", compare.run_jpeg, 1, 100),
    "webp": ("WebP (Pillow, method 4)", compare.run_webp, 0, 100),
}


class Encoding(NamedTuple):
    quality: int
    n_bytes: int
    decoded: np.ndarray


def largest_within(img: np.ndarray, runner: Runner, lowest: int, highest: int, budget: int) -> Encoding:
    """The highest quality whose file fits in ``budget`` bytes (the lowest quality if none does).

    Bisection assumes size grows with quality; the qualities just above the one found are
    tried too, so that a small dip in size there is not missed.
    """
    def encode(q: int) -> Encoding:
        return Encoding(q, *runner(img, q))

    best = encode(lowest)
    lo, hi = lowest, highest + 1  # quality lo fits (or is the floor), quality hi does not (or is past the top)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        trial = encode(mid)
        if trial.n_bytes <= budget:
            lo, best = mid, trial
        else:
            hi = mid
    for q in range(best.quality + 2, min(best.quality + 4, highest) + 1):
        trial = encode(q)
        if trial.n_bytes <= budget:
            best = trial
    return best


def zoom(tile: np.ndarray, factor: int) -> Image.Image:
    image = Image.fromarray(tile)
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def panel(tile: np.ndarray, factor: int, lines: list[str], font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
          line_height: int) -> Image.Image:
    picture = zoom(tile, factor)
    caption = line_height * len(lines) + 8
    out = Image.new("RGB", (picture.width, picture.height + caption), "white")
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((4, 4 + i * line_height), line, fill="black", font=font)
    out.paste(picture, (0, caption))
    return out


def grid(panels: list[Image.Image], columns: int, gap: int = 8) -> Image.Image:
    rows = -(-len(panels) // columns)
    w = max(p.width for p in panels)
    h = max(p.height for p in panels)
    out = Image.new("RGB", (columns * w + (columns - 1) * gap, rows * h + (rows - 1) * gap), "white")
    for i, p in enumerate(panels):
        out.paste(p, ((i % columns) * (w + gap), (i // columns) * (h + gap)))
    return out


def parse_crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("--crop is x,y,width,height in pixels") from None
    if min(x, y) < 0 or min(w, h) <= 0:
        raise argparse.ArgumentTypeError("--crop needs x, y >= 0 and a positive width and height")
    return x, y, w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--corpus", type=Path, required=True, help="directory of the photo (the Kodak set)")
    parser.add_argument("--image", default="kodim23", help="photo's name without .png (default kodim23)")
    parser.add_argument("--bpp", type=float, default=0.3, help="file-size budget in bits per pixel (default 0.3)")
    parser.add_argument("--crop", type=parse_crop, default=(392, 104, 192, 144),
                        help="x,y,width,height of the crop (default 392,104,192,144: kodim23's red macaw)")
    parser.add_argument("--zoom", type=int, default=3, help="magnification, nearest-neighbour (default 3)")
    parser.add_argument("--codecs", default="svdi,svdi-nodeblock,jpeg,webp", help=f"subset of {','.join(CODECS)}")
    parser.add_argument("--out", type=Path, help="PNG to write (default docs/img/crops-IMAGE-BPPbpp.png)")
    args = parser.parse_args(argv)

    path = args.corpus / f"{args.image}.png"
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    h, w = img.shape[:2]
    x, y, cw, ch = args.crop
    if x + cw > w or y + ch > h:
        raise SystemExit(f"--crop {x},{y},{cw},{ch} is outside the {w}x{h} photo")
    budget = int(args.bpp * w * h / 8)
    out = args.out or DOCS_IMG / f"crops-{args.image}-{args.bpp:g}bpp.png"
    names = [n.strip() for n in args.codecs.split(",") if n.strip()]
    unknown = [n for n in names if n not in CODECS]
    if unknown:
        raise SystemExit(f"unknown codec(s) {unknown}; choose from {list(CODECS)}")

    font: ImageFont.ImageFont | ImageFont.FreeTypeFont = ImageFont.load_default(size=15)
    line_height = 19
    window = (slice(y, y + ch), slice(x, x + cw))
    panels = [panel(img[window], args.zoom, ["original", f"{args.image}, {w}x{h}, crop {cw}x{ch} at ({x}, {y})",
                                             f"x{args.zoom}, nearest-neighbour"], font, line_height)]
    print(f"{args.image}: {w}x{h}, budget {budget} bytes ({args.bpp:g} bpp); crop {cw}x{ch} at ({x}, {y})")
    for name in names:
        label, runner, lowest, highest = CODECS[name]
        enc = largest_within(img, runner, lowest, highest, budget)
        db, s = psnr(img, enc.decoded), ssim(img, enc.decoded)
        bits = 8 * enc.n_bytes / (w * h)
        print(f"  {name:<5} quality {enc.quality:>3}: {enc.n_bytes:>6} bytes ({bits:.3f} bpp), "
              f"RGB PSNR {db:.2f} dB, luma SSIM {s:.4f}")
        panels.append(panel(enc.decoded[window], args.zoom,
                            [f"{label}, quality {enc.quality}", f"{enc.n_bytes:,} bytes ({bits:.3f} bpp)",
                             f"whole photo: {db:.2f} dB RGB PSNR, SSIM {s:.3f}"], font, line_height))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(panels, columns=2 if len(panels) <= 4 else 3).save(out, optimize=True)
    print(f"# wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
