#!/usr/bin/env python3
"""Wall and CPU time of `svdcodec.encode` with the default threads against `threads(1)`, by
image size, with Pillow's JPEG q75 in the same rotation: where a second thread starts to
shorten an encode (docs/performance.md, "The encoder's one-thread threshold").

    python benchmarks/encode_threads.py --corpus KODAK [--sizes 768x512,1024x768,...]
        [--rounds 7] [--images 3]

Each size's images are Kodak photos (portrait ones turned) tiled and cut to WIDTHxHEIGHT,
each starting from another photo; each round times every size in turn, default, threads(1)
and JPEG, and the medians over the rounds are printed (ms per image). The machine's load
stretches wall times, most those of two threads: run it under `chrt -f 10` (SCHED_FIFO for
the few seconds of a run) for the cores as on an idle machine. Whatever the thread setting,
an image of at most `band_sizes.ENCODE_SERIAL_SAMPLES` samples is coded in the calling thread:
the script lowers it to 0 so that "default" is the threaded encode at every size.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.runtime import band_sizes


def mosaic(photos: list[np.ndarray], height: int, width: int, first: int) -> np.ndarray:
    """Photos tiled from `first` on (512 x 768 each) and cut to height x width."""
    rows, columns = -(-height // 512), -(-width // 768)
    tiles = iter(photos[(first + k) % len(photos)] for k in range(rows * columns))
    grid = [np.concatenate([next(tiles) for _ in range(columns)], axis=1) for _ in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid)[:height, :width])


def jpeg(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=75)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--sizes", default="768x512,1024x512,896x640,1024x768,1152x768,"
                        "1024x1024,2048x1536", help="WIDTHxHEIGHT,...")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=3, help="images per size")
    args = parser.parse_args(argv)
    band_sizes.ENCODE_SERIAL_SAMPLES = 0
    photos = []
    for path in sorted(args.corpus.glob("*.png")):
        photo = np.asarray(Image.open(path).convert("RGB"))
        photos.append(photo if photo.shape[0] <= photo.shape[1]
                      else np.ascontiguousarray(photo.transpose(1, 0, 2)))
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    sets = {f"{w}x{h}": [mosaic(photos, h, w, k) for k in range(args.images)] for w, h in sizes}

    def default(image: np.ndarray) -> bytes:
        return svdcodec.encode(image)

    def one_thread(image: np.ndarray) -> bytes:
        with svdcodec.threads(1):
            return svdcodec.encode(image)
    runs = {"default": default, "threads(1)": one_thread, "JPEG q75": jpeg}
    for images in sets.values():  # warm: caches, pools, Pillow's plugin
        for run in runs.values():
            run(images[0])
    spent: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for name, images in sets.items():
            for label, run in runs.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for image in images:
                    run(image)
                spent.setdefault((name, label), []).append(
                    ((time.perf_counter() - wall) / len(images) * 1e3,
                     (time.process_time() - cpu) / len(images) * 1e3))
    print(f"{'size':>10} {'samples':>8}  {'encode':<11} {'wall ms':>8} {'CPU ms':>8}")
    for (name, label), times in spent.items():
        w, h = (int(x) for x in name.split("x"))
        print(f"{name:>10} {w * h * 3 / 1e6:7.2f}M  {label:<11} "
              f"{np.median([t[0] for t in times]):8.2f} {np.median([t[1] for t in times]):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
