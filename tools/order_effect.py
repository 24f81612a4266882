#!/usr/bin/env python3
"""How much one codec's time depends on what the process ran just before it.

    python tools/order_effect.py                 # the Kodak mosaic of bench.py
    python tools/order_effect.py --recycle       # glibc keeps freed buffers for reuse
    python tools/order_effect.py --image photo.png --rounds 6

tools/bench.py times each codec in consecutive runs, and its paired ratios time svdi and JPEG
back to back. On a shared 2-core machine the two disagree by more than the goals' margins, and
this tool shows why: it times Pillow's JPEG encode and decode, and svdi's, each right after
itself, after svdi encode and after svdi decode, with the page faults of each run (getrusage's
minor faults), so that a difference that is not paging shows as one. --recycle first sets
glibc's mmap threshold to 32 MiB and its trim threshold to 256 MiB (mallopt, as the
MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_ variables do), so that freed image buffers
are reused instead of returned to the kernel and faulted in again.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS.parent))
sys.path.insert(0, str(TOOLS))

import bench


def timed(fn: Callable[[Any], Any], arg: Any) -> tuple[float, int]:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help="test image instead of the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, default=bench.DEFAULT_CORPUS)
    ap.add_argument("--rounds", type=int, default=5, help="runs per cell (default 5)")
    ap.add_argument("--recycle", action="store_true",
                    help="keep freed buffers in the process (glibc mallopt) before starting")
    args = ap.parse_args(argv)
    if args.recycle:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
        if not (libc.mallopt(m_mmap_threshold, 32 << 20)
                and libc.mallopt(m_trim_threshold, 256 << 20)):
            ap.error("mallopt refused the thresholds (not glibc?)")
    image = bench.load_image(args.image) if args.image else bench.build_mosaic(args.corpus)
    codecs = bench.codecs()
    ops = {}
    for name in ("svdi", "JPEG"):
        _, enc, dec = codecs[name]
        data = enc(image)
        dec(data)
        ops[f"{name} encode"] = (enc, image)
        ops[f"{name} decode"] = (dec, data)
    print(f"median of {args.rounds} runs (seconds / minor page faults of the timed run)")
    print(f"{'timed':<14} {'after itself':>16} {'after svdi encode':>18} "
          f"{'after svdi decode':>18}")
    for name, (fn, arg) in ops.items():
        cells = []
        for before in (name, "svdi encode", "svdi decode"):
            runs = []
            for _ in range(args.rounds):
                prior, prior_arg = ops[before]
                prior(prior_arg)
                runs.append(timed(fn, arg))
            seconds = statistics.median(r[0] for r in runs)
            faults = int(statistics.median(r[1] for r in runs))
            cells.append(f"{seconds:.3f} / {faults}")
        print(f"{name:<14} {cells[0]:>16} {cells[1]:>18} {cells[2]:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
