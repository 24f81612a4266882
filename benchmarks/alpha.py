#!/usr/bin/env python3
"""What an exact alpha costs in an .svdi file, against Pillow's PNG and WebP, in one run: the
table of docs/lossless.md, "Alpha".

    python benchmarks/alpha.py --corpus KODAK [--limit 4] [--extra FILE.png ...] [--rounds 3]

Images: cut-outs of the first `--limit` Kodak photos (DIR: kodim01..24.png, see
benchmarks/README.md), each with three alphas made from its own luma: "hard" (opaque where the
luma is above 110, transparent elsewhere: a cut-out or a sprite), "soft" (that mask blurred by
a Gaussian of radius 1.5: anti-aliased edges) and "disc" (a radial ramp: a vignette); and every
RGBA or LA PNG given with --extra (icons, logos) whose alpha varies.

Per image: the .svdi file with the defaults (its alpha exact: checked) and its colour channels
alone, so the alpha's cost is the difference; PNG of the mask alone (mode L, Pillow's default
level) and of the whole image; WebP at quality 75 (its alpha lossless, Pillow's default); the
encode's CPU time (the median of `--rounds`, warm) against that of the colour channels alone;
the decode's wall time through Pillow (`Image.open().load()`, the median of 5 rounds after one)
of the .svdi file, of its colour channels' file, of the PNG and of the WebP.
Run it with PYTHONPATH=OLD_TREE for another version's figures.

    python benchmarks/alpha.py --corpus KODAK --levels 12 19

With --levels: instead, each alpha's residual as the encoder codes it with no layer (the
samples with the predictor of lowest entropy, `encoder.residual.grid_prediction`) compressed
by zstd at each level given: bytes and milliseconds (the best of `--rounds`).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np
from PIL import Image, ImageFilter

import svdcodec
from svdcodec.encoder.residual import grid_prediction


def cut_outs(path: Path) -> dict[str, np.ndarray]:
    """The photo with each of the three alphas made from its luma."""
    image = Image.open(path).convert("RGB")
    luma = image.convert("L")
    rgb = np.asarray(image)
    mask = luma.point(lambda v: 255 if v > 110 else 0)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    alphas = {"hard": np.asarray(mask),
              "soft": np.asarray(mask.filter(ImageFilter.GaussianBlur(1.5))),
              "disc": (255 * np.clip(1.5 - np.hypot(yy, xx), 0, 1)).astype(np.uint8)}
    return {f"{path.stem} {name}": np.dstack([rgb, alpha]) for name, alpha in alphas.items()}


def cpu_median(call: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return statistics.median(times)


def saved(image: np.ndarray, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, fmt, **options)
    return out.getvalue()


def load_ms(data: bytes) -> float:
    """Image.open().load() of a file's bytes, the median of 5 after a first, in ms."""
    def load() -> None:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    load()
    return 1e3 * statistics.median(_common.seconds(load) for _ in range(5))


def measure(name: str, image: np.ndarray, rounds: int) -> list[Any]:
    colour = np.ascontiguousarray(image[..., :-1])
    data = svdcodec.encode(image)
    decoded = svdcodec.decode(data)
    if not np.array_equal(decoded[..., -1], image[..., -1]):
        raise SystemExit(f"{name}: alpha not exact")
    colour_data = svdcodec.encode(colour)
    alpha_bytes = len(data) - len(colour_data)
    svdi_cpu = cpu_median(lambda: svdcodec.encode(image), rounds)
    colour_cpu = cpu_median(lambda: svdcodec.encode(colour), rounds)
    png, webp = saved(image, "PNG"), saved(image, "WEBP", quality=75)
    return [name, f"{image.shape[1]}x{image.shape[0]}", len(data), alpha_bytes,
            len(saved(np.ascontiguousarray(image[..., -1]), "PNG")), len(png), len(webp),
            f"{svdi_cpu * 1e3:.1f}", f"{svdi_cpu / colour_cpu:.2f}",
            *(f"{load_ms(d):.2f}" for d in (data, colour_data, png, webp))]


def level_row(name: str, image: np.ndarray, levels: list[int], rounds: int) -> list[Any]:
    import zstandard

    raw = grid_prediction(image[..., -1].astype(np.int64))[1].tobytes()
    row: list[Any] = [name]
    for level in levels:
        compressor = zstandard.ZstdCompressor(level=level)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            size = len(compressor.compress(raw))
            times.append(time.perf_counter() - start)
        row += [size, f"{min(times) * 1e3:.1f}"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the Kodak photos' folder")
    parser.add_argument("--limit", type=int, default=4, help="Kodak photos to cut out")
    parser.add_argument("--extra", type=Path, nargs="*", default=[],
                        help="RGBA or LA PNG files")
    parser.add_argument("--rounds", type=int, default=3, help="timed encodes of each image")
    parser.add_argument("--levels", type=int, nargs="*",
                        help="zstd levels of the alpha's residual alone, instead")
    args = parser.parse_args()
    print(_common.environment())
    images: dict[str, np.ndarray] = {}
    for path in _common.kodak_paths(args.corpus)[:args.limit]:
        images.update(cut_outs(path))
    for path in args.extra:
        with Image.open(path) as im:
            mode = "LA" if im.mode in ("L", "LA", "I;16") else "RGBA"
            pixels = np.asarray(im.convert(mode))
        if pixels[..., -1].min() == pixels[..., -1].max():
            _common.progress(f"{path.name}: its alpha is constant, left out")
            continue
        images[path.stem] = pixels
    if args.levels:
        print(_common.table(["image"] + [f"level {v} {unit}" for v in args.levels
                                         for unit in ("bytes", "ms")],
                            [level_row(name, image, args.levels, args.rounds)
                             for name, image in images.items()]))
        return
    rows = []
    for name, image in images.items():
        svdcodec.encode(image)  # warm
        rows.append(measure(name, image, args.rounds))
    print(_common.table(["image", "size", "svdi bytes", "its alpha", "PNG of the alpha",
                         "PNG", "WebP q75", "encode CPU ms", "x colour alone",
                         "load ms", "colour alone", "PNG", "WebP"], rows))


if __name__ == "__main__":
    main()
