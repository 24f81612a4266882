#!/usr/bin/env python3
"""Both kernel paths, one result: encode and decode real photos with SVDCODEC_KERNELS=0 (numpy)
and =1 (the C extension) in one process and compare the sha256 of the .svdi bytes and of the
decoded pixels; then a rough timing of both paths (not a benchmark: benchmarks/speed.py is).

    python benchmarks/kernel_parity.py [--corpus DIR] [--photos 6] [--qualities 20 75 95]
                                  [--mosaic 2x2] [--time]

Photos: the first --photos Kodak PNGs as RGB, L (Pillow's conversion) and RGBA (alpha a
gradient), each at every quality, plus a mosaic of Kodak tiles (benchmarks/_common.py builder,
--mosaic cols x rows) at the first quality. Exits 1 if any file or pixel differs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import svdcodec
from svdcodec.runtime import kernels


def on_path(path: str, call: Callable[[], Any]) -> Any:
    os.environ["SVDCODEC_KERNELS"] = "1" if path == "c" else "0"
    return call()


def digest(data: bytes | np.ndarray) -> str:
    raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(raw).hexdigest()[:16]


def images(corpus: Path, photos: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for path in sorted(corpus.glob("kodim*.png"))[:photos]:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
            grey = np.asarray(im.convert("L"))
        h, w = grey.shape
        alpha = (np.add.outer(np.arange(h), np.arange(w)) * 255 // (h + w)).astype(np.uint8)
        out += [(f"{path.stem} RGB", rgb), (f"{path.stem} L", grey),
                (f"{path.stem} RGBA", np.dstack([rgb, alpha]))]
    return out


def compare(name: str, image: np.ndarray, quality: int) -> bool:
    files = {p: on_path(p, lambda: svdcodec.encode(image, quality=quality)) for p in ("numpy", "c")}
    same_file = files["numpy"] == files["c"]
    pixels = {p: on_path(p, lambda: svdcodec.decode(files["numpy"])) for p in ("numpy", "c")}
    same_pixels = np.array_equal(pixels["numpy"], pixels["c"])
    print(f"{name:24} q{quality:<3} file {digest(files['numpy'])} {digest(files['c'])} "
          f"{'same' if same_file else 'DIFFERENT'}   pixels {digest(pixels['numpy'])} "
          f"{digest(pixels['c'])} {'same' if same_pixels else 'DIFFERENT'}")
    return same_file and same_pixels


def timed(call: Callable[[], Any], repeats: int = 3) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True,
                        help="the Kodak photos (benchmarks/README.md says where to get them)")
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--qualities", type=int, nargs="+", default=[20, 75, 95])
    parser.add_argument("--mosaic", default="2x2", help="cols x rows of Kodak tiles")
    parser.add_argument("--time", action="store_true", help="also time both paths")
    args = parser.parse_args()
    os.environ["SVDCODEC_KERNELS"] = "1"
    print(f"compiled kernels: {kernels.get()}")
    ok = True
    for name, image in images(args.corpus, args.photos):
        for quality in args.qualities:
            ok &= compare(name, image, quality)
    import _common  # the benchmarks' image builders (this folder is the script's path)

    cols, rows = (int(n) for n in args.mosaic.split("x"))
    mosaic = _common.build_mosaic(_common.kodak_paths(Path(args.corpus)), (cols, rows))
    label = f"mosaic {mosaic.shape[1]}x{mosaic.shape[0]}"
    for quality in args.qualities:
        ok &= compare(label, mosaic, quality)
    print("all files and pixels identical" if ok else "DIFFERENCES FOUND")
    if args.time:
        for name, image in [images(args.corpus, 1)[0], (label, mosaic)]:
            data = svdcodec.encode(image)
            jobs = (("decode", partial(svdcodec.decode, data)),
                    ("encode", partial(svdcodec.encode, image)))
            for what, call in jobs:
                t = {p: on_path(p, partial(timed, call)) for p in ("numpy", "c")}
                print(f"{name:24} {what}: numpy {t['numpy']:.3f} s, C {t['c']:.3f} s, "
                      f"numpy / C = {t['numpy'] / t['c']:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
