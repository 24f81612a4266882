"""Where Image.open().load() of the 19 MP mosaic spends more than svdcodec.decode: per decode,
the wall time, the CPU time of all threads (user and system, from getrusage) and the minor page
faults of load() (the image mapped onto a numpy array: no band buffers, no copy, numpy's huge
pages), of load() with band buffers copied into Pillow's own image (band_sizes.MAPPED_BYTES set
below the image, the default before 2026-12-05), of svdcodec.decode and of Pillow's JPEG
(quality 75), interleaved in one process; medians over rounds (docs/performance.md, "Smaller
bands and dropped streams", "The 19 MP `load()` into a mapped array").

    python benchmarks/pillow_load.py --corpus KODAK [--rounds 7]

Run it alternately on two versions of the code to compare them; the page faults say which
state the C library's allocator is in (Pillow's blocks reused, or fresh pages each load).
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from _common import build_mosaic, kodak_paths
from PIL import Image

import svdcodec
from svdcodec.runtime import band_sizes


def measure(operation: Callable[[], object]) -> tuple[float, float, float, int]:
    """(wall ms, user ms, system ms, minor faults) of one call."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    operation()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return (wall * 1e3, (after.ru_utime - before.ru_utime) * 1e3,
            (after.ru_stime - before.ru_stime) * 1e3, after.ru_minflt - before.ru_minflt)


def load(data: bytes, band_copies: bool = False) -> None:
    saved = band_sizes.MAPPED_BYTES
    band_sizes.MAPPED_BYTES = 0 if band_copies else saved
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    finally:
        band_sizes.MAPPED_BYTES = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    mosaic = build_mosaic(kodak_paths(args.corpus))
    svdi = svdcodec.encode(mosaic)
    buffer = io.BytesIO()
    Image.fromarray(mosaic).save(buffer, "JPEG", quality=75)
    jpeg = buffer.getvalue()
    operations: dict[str, Callable[[], object]] = {
        "load()": lambda: load(svdi),
        "load(), band copies": lambda: load(svdi, band_copies=True),
        "svdcodec.decode": lambda: svdcodec.decode(svdi),
        "JPEG load()": lambda: load(jpeg),
    }
    times: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in operations}
    for _ in range(args.rounds):
        for name, operation in operations.items():
            times[name].append(measure(operation))
    print(f"19 MP mosaic {mosaic.shape[1]}x{mosaic.shape[0]}, medians of {args.rounds} rounds")
    print(f"{'operation':22s} {'wall ms':>8s} {'user ms':>8s} {'sys ms':>7s} {'faults':>7s}")
    for name, rows in times.items():
        wall, user, system, faults = (statistics.median(column) for column in zip(*rows))
        print(f"{name:22s} {wall:8.1f} {user:8.1f} {system:7.1f} {faults:7.0f}")


if __name__ == "__main__":
    main()
