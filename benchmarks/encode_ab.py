#!/usr/bin/env python3
"""Encode CPU time of two versions of svdcodec in one process, round by round interleaved: on a
shared machine the load swings between processes by more than a change of 10-20 %, while two
versions run side by side meet the same load. Same sets as encode_cpu.py (48 crops 256 x 256 at
(0, 0) and (256, 256) of each Kodak photo, then the 24 photos), quality 75, one thread.

    SVDCODEC_THREADS=1 python benchmarks/encode_ab.py --corpus KODAK --a OLD/svdcodec --b svdcodec

Each package directory (its C extension built in place) is copied under another name into a
temporary directory and imported from there; the two must write the same bytes (checked on a
crop). `--mode L` converts the photos to greyscale first (a grey image's planes are coded with
the fitted-basis trial, `encoder.schedule.Encoder.fit_choice`), `--mode I;16` to 16-bit grey
(the grey samples times 257; no JPEG to compare with). `--aq` and `--effort 2` pass those
options to both versions' encode. Prints, per set, the median and the least CPU time per image
of each version over the rounds, A and B alternating which runs first. `--jpeg`: Pillow's JPEG
q75 encode (`Image.fromarray(image).save(f, "JPEG", quality=75)`, issue #13's reference) takes
part in the rotation, and each version's ratio to it per round is printed too (median and range,
wall and CPU time), as speed.py's warm ratios but for the two versions side by side.
"""

from __future__ import annotations

import argparse
import importlib
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image


def load(package: Path, name: str, into: Path) -> ModuleType:
    """The svdcodec package at `package` imported as `name` (its imports are relative)."""
    shutil.copytree(package, into / name)
    return importlib.import_module(name)


def timed(encode: Callable[[np.ndarray], object], images: list[np.ndarray]
          ) -> tuple[float, float]:
    """(wall, CPU) milliseconds per image of encoding `images` one after the other."""
    wall, cpu = time.perf_counter(), time.process_time()
    for image in images:
        encode(image)
    return ((time.perf_counter() - wall) / len(images) * 1e3,
            (time.process_time() - cpu) / len(images) * 1e3)


def jpeg(image: np.ndarray) -> bytes:
    """Pillow's JPEG q75 encode of an array, as a Pillow user writes it."""
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=75)
    return out.getvalue()


def jpeg_ratios(name: str, times: dict[str, list[tuple[float, float]]]) -> None:
    """Each version's time over JPEG's in the same round: median and range, wall and CPU."""
    for key in ("A", "B"):
        wall = [v[0] / j[0] for v, j in zip(times[key], times["JPEG"])]
        cpu = [v[1] / j[1] for v, j in zip(times[key], times["JPEG"])]
        print(f"{name:>14}: {key} / JPEG wall {np.median(wall):.2f}x "
              f"({min(wall):.2f}-{max(wall):.2f}), CPU {np.median(cpu):.2f}x "
              f"({min(cpu):.2f}-{max(cpu):.2f})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--a", required=True, type=Path, help="package directory of version A")
    parser.add_argument("--b", required=True, type=Path, help="package directory of version B")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the crops (photos: half)")
    parser.add_argument("--aq", action="store_true", help="encode(..., aq=True)")
    parser.add_argument("--effort", type=int, choices=(1, 2), default=1,
                        help="encode(..., effort=N)")
    parser.add_argument("--mode", choices=("RGB", "L", "I;16"), default="RGB",
                        help="Pillow mode the photos are converted to (default RGB; I;16: "
                        "the grey samples times 257)")
    parser.add_argument("--jpeg", action="store_true",
                        help="time Pillow's JPEG q75 in the rotation and print the ratios to it")
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("L" if args.mode == "I;16" else args.mode))
              for p in sorted(args.corpus.glob("*.png"))]
    if args.mode == "I;16":
        if args.jpeg:
            parser.error("--jpeg: Pillow's JPEG has no 16-bit grey")
        photos = [p.astype(np.uint16) * 257 for p in photos]
    crops = [np.ascontiguousarray(p[y:y + 256, x:x + 256]) for p in photos
             for y, x in ((0, 0), (256, 256))]
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        versions = {"A": load(args.a, "svdcodec_a", Path(tmp)),
                    "B": load(args.b, "svdcodec_b", Path(tmp))}
        # only the options asked for: a version older than an option still runs without it
        options = {**({"aq": True} if args.aq else {}),
                   **({"effort": args.effort} if args.effort != 1 else {})}
        for module in versions.values():  # warm: lazy imports, caches
            for image in crops[:4]:
                module.encode(image, **options)
        if args.jpeg:
            jpeg(crops[0])  # Pillow's JPEG plugin, loaded on first use
        if versions["A"].encode(crops[5], **options) != versions["B"].encode(crops[5], **options):
            print("note: A and B write different bytes", flush=True)
        for name, images, rounds in (("256x256 crops", crops, args.rounds),
                                     ("Kodak photos", photos, max(1, args.rounds // 2))):
            encoders = {key: partial(module.encode, **options)
                        for key, module in versions.items()}
            if args.jpeg:
                encoders["JPEG"] = jpeg
            order = list(encoders)
            spent: dict[str, list[tuple[float, float]]] = {key: [] for key in encoders}
            for r in range(rounds):  # each round starts with the next encoder
                for key in order[r % len(order):] + order[:r % len(order)]:
                    spent[key].append(timed(encoders[key], images))
            times = {key: [cpu for _, cpu in spent[key]] for key in ("A", "B")}
            median = {k: float(np.median(v)) for k, v in times.items()}
            least = {k: min(v) for k, v in times.items()}
            print(f"{name:>14} x{len(images)}: median A {median['A']:.2f} B {median['B']:.2f} ms "
                  f"({median['B'] / median['A'] - 1:+.1%}), least A {least['A']:.2f} "
                  f"B {least['B']:.2f} ms ({least['B'] / least['A'] - 1:+.1%}) per image (CPU)",
                  flush=True)
            if args.jpeg:
                jpeg_ratios(name, spent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
