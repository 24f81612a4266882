#!/usr/bin/env python3
"""Encode CPU time of two versions of svdcodec in one process, round by round interleaved: on a
shared machine the load swings between processes by more than a change of 10-20 %, while two
versions run side by side meet the same load. Same sets as encode_cpu.py (48 crops 256 x 256 at
(0, 0) and (256, 256) of each Kodak photo, then the 24 photos), quality 75, one thread.

    SVDCODEC_THREADS=1 python benchmarks/encode_ab.py --corpus KODAK --a OLD/svdcodec --b svdcodec

Each package directory (its C extension built in place) is copied under another name into a
temporary directory and imported from there; the two must write the same bytes (checked on a
crop). Prints, per set, the median and the least CPU time per image of each version over the
rounds, A and B alternating which runs first.
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image


def load(package: Path, name: str, into: Path) -> ModuleType:
    """The svdcodec package at `package` imported as `name` (its imports are relative)."""
    shutil.copytree(package, into / name)
    return importlib.import_module(name)


def cpu_ms(module: ModuleType, images: list[np.ndarray]) -> float:
    start = time.process_time()
    for image in images:
        module.encode(image)
    return (time.process_time() - start) / len(images) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--a", required=True, type=Path, help="package directory of version A")
    parser.add_argument("--b", required=True, type=Path, help="package directory of version B")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the crops (photos: half)")
    args = parser.parse_args(argv)
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.corpus.glob("*.png"))]
    crops = [np.ascontiguousarray(p[y:y + 256, x:x + 256]) for p in photos
             for y, x in ((0, 0), (256, 256))]
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, tmp)
        versions = {"A": load(args.a, "svdcodec_a", Path(tmp)),
                    "B": load(args.b, "svdcodec_b", Path(tmp))}
        for module in versions.values():  # warm: lazy imports, caches
            for image in crops[:4]:
                module.encode(image)
        if versions["A"].encode(crops[5]) != versions["B"].encode(crops[5]):
            print("note: A and B write different bytes", flush=True)
        for name, images, rounds in (("256x256 crops", crops, args.rounds),
                                     ("Kodak photos", photos, max(1, args.rounds // 2))):
            times: dict[str, list[float]] = {"A": [], "B": []}
            for r in range(rounds):
                for key in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    times[key].append(cpu_ms(versions[key], images))
            median = {k: float(np.median(v)) for k, v in times.items()}
            least = {k: min(v) for k, v in times.items()}
            print(f"{name:>14} x{len(images)}: median A {median['A']:.2f} B {median['B']:.2f} ms "
                  f"({median['B'] / median['A'] - 1:+.1%}), least A {least['A']:.2f} "
                  f"B {least['B']:.2f} ms ({least['B'] / least['A'] - 1:+.1%}) per image (CPU)",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
