"""Where Image.open().load() of the 19 MP mosaic (or a crop of it: --side) spends more than
svdcodec.decode: per decode, the wall time, the CPU time of all threads (user and system, from
getrusage), the minor page faults and the transparent huge pages faulted in (/proc/vmstat's
thp_fault_alloc, system-wide; Linux) of load() (the image mapped onto numpy's array, its pages
advised back to base pages: no band buffers, no copy), of load() into numpy's array as it is
(huge pages: the default from 2026-12-05 to 2026-12-07), of load() with band buffers copied
into Pillow's own image (band_sizes.MAPPED_BYTES set below the image, the default before
2026-12-05), of svdcodec.decode (its output advised to base pages as well, and as numpy's
array as it is) and of Pillow's JPEG (quality 75), interleaved in one process;
medians over rounds (docs/performance.md, "Smaller bands and dropped streams", "The 19 MP
`load()` into a mapped array", "The image memory of a Pillow `load()`").

    python benchmarks/pillow_load.py --corpus KODAK [--rounds 7] [--pause 3] [--side 2048]

--pause S waits S seconds before each operation, as a process does between images when it has
other work: on a virtual machine whose balloon reports free memory to its host, memory freed
that long ago has been handed back, and huge pages are then the host's page faults too.
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

import numpy as np
from _common import build_mosaic, kodak_paths
from PIL import Image

import svdcodec
from svdcodec import pillow_plugin
from svdcodec.decoder import render
from svdcodec.runtime import band_sizes


def huge_pages_faulted() -> int:
    """Transparent huge pages faulted in since boot, system-wide (0 where not on Linux)."""
    try:
        with open("/proc/vmstat") as f:
            for line in f:
                if line.startswith("thp_fault_alloc "):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(operation: Callable[[], object]) -> tuple[float, float, float, int, int]:
    """(wall ms, user ms, system ms, minor faults, huge pages faulted) of one call."""
    huge = huge_pages_faulted()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    operation()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return (wall * 1e3, (after.ru_utime - before.ru_utime) * 1e3,
            (after.ru_stime - before.ru_stime) * 1e3, after.ru_minflt - before.ru_minflt,
            huge_pages_faulted() - huge)


def load(data: bytes, band_copies: bool = False, numpy_memory: bool = False) -> None:
    saved = band_sizes.MAPPED_BYTES, pillow_plugin.base_page_array
    band_sizes.MAPPED_BYTES = 0 if band_copies else saved[0]
    if numpy_memory:
        pillow_plugin.base_page_array = np.empty
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    finally:
        band_sizes.MAPPED_BYTES, pillow_plugin.base_page_array = saved


def decode(data: bytes, numpy_memory: bool = False) -> None:
    saved = render.base_page_array
    if numpy_memory:
        render.base_page_array = np.empty
    try:
        svdcodec.decode(data)
    finally:
        render.base_page_array = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait before each operation (default 0)")
    parser.add_argument("--side", type=int,
                        help="the mosaic's top-left SIDE x SIDE crop instead of the whole")
    args = parser.parse_args()
    mosaic = build_mosaic(kodak_paths(args.corpus))
    if args.side:
        mosaic = np.ascontiguousarray(mosaic[:args.side, :args.side])
    svdi = svdcodec.encode(mosaic)
    buffer = io.BytesIO()
    Image.fromarray(mosaic).save(buffer, "JPEG", quality=75)
    jpeg = buffer.getvalue()
    operations: dict[str, Callable[[], object]] = {
        "load()": lambda: load(svdi),
        "load(), numpy array": lambda: load(svdi, numpy_memory=True),
        "load(), band copies": lambda: load(svdi, band_copies=True),
        "svdcodec.decode": lambda: decode(svdi),
        "decode, numpy array": lambda: decode(svdi, numpy_memory=True),
        "JPEG load()": lambda: load(jpeg),
    }
    times: dict[str, list[tuple[float, float, float, int, int]]] = {k: [] for k in operations}
    for _ in range(args.rounds):
        for name, operation in operations.items():
            time.sleep(args.pause)
            times[name].append(measure(operation))
    print(f"mosaic {mosaic.shape[1]}x{mosaic.shape[0]}, medians of {args.rounds} rounds, "
          f"{args.pause:g} s before each operation")
    print(f"{'operation':22s} {'wall ms':>8s} {'user ms':>8s} {'sys ms':>7s} {'faults':>7s} "
          f"{'huge':>5s}  {'wall ms of each round':s}")
    for name, rows in times.items():
        wall, user, system, faults, huge = (statistics.median(column) for column in zip(*rows))
        each = " ".join(f"{row[0]:.0f}" for row in rows)
        print(f"{name:22s} {wall:8.1f} {user:8.1f} {system:7.1f} {faults:7.0f} {huge:5.0f}  {each}")


if __name__ == "__main__":
    main()
