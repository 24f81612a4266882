#!/usr/bin/env python3
"""Where a large encode's wall time goes with several threads (a developer aid, no README figure).

    python benchmarks/encode_timeline.py --corpus DIR             # the 19 MP Kodak mosaic, warm
    python benchmarks/encode_timeline.py --corpus DIR --fresh     # its first encode in a process
    python benchmarks/encode_timeline.py --corpus DIR --rounds 9  # wall and CPU, beside JPEG q75
    python benchmarks/encode_timeline.py --image PHOTO --min-ms 0.2   # one photo instead
    sudo chrt -f 10 python benchmarks/encode_timeline.py ...      # on a shared, busy machine

The timeline: every band of `run_bands` and the schedule's main steps, per thread, with wall
time, the thread's own CPU time and its minor page faults; then the time during which fewer
than two threads had work (a core idle: serial steps, threads waiting for each other). On a
busy machine every interval stretches by the run queue's wait; SCHED_FIFO (`chrt -f`, root)
gives the process the cores for the few seconds a run takes. cProfile (profile_codec.py) sees
one thread only.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import resource
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np

Event = tuple[str, str, int, float, float, float, int]  # thread, name, depth, t0, t1, cpu, faults
EVENTS: list[Event] = []
_depth = threading.local()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, help="Kodak photos (kodim*.png) for the mosaic")
    ap.add_argument("--image", type=Path, help="this image (RGB) instead of the mosaic")
    ap.add_argument("--quality", type=float, default=75)
    ap.add_argument("--fresh", action="store_true",
                    help="trace the first large encode of the process (after a tiny one)")
    ap.add_argument("--depth", type=int, default=2, help="nesting shown in the timeline")
    ap.add_argument("--min-ms", type=float, default=2.0,
                    help="timeline rows at least this long (default 2 ms)")
    ap.add_argument("--rounds", type=int, default=0,
                    help="instead of a timeline: N warm encodes interleaved with JPEG q75 "
                         "(Image.fromarray(array).save, as speed.py), medians")
    return ap.parse_args(argv)


def _thread_faults() -> int:
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt


def traced(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        depth = getattr(_depth, "value", 0)
        _depth.value = depth + 1
        cpu, faults, start = time.thread_time(), _thread_faults(), time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            end = time.perf_counter()
            _depth.value = depth
            EVENTS.append((threading.current_thread().name, name, depth, start, end,
                           time.thread_time() - cpu, _thread_faults() - faults))
    return wrapper


def instrument() -> None:
    """Wrap the schedule's steps, each band of run_bands and each wait for a helper thread."""
    import concurrent.futures

    from svdcodec.codec import coding, resample
    from svdcodec.encoder import blocks, plane, schedule, source
    from svdcodec.format import writer
    from svdcodec.runtime import threads

    def wrap(module: Any, name: str, *also: Any) -> None:
        call = getattr(module, name)
        wrapped = traced(name, call)
        for target in (module, *also):
            if getattr(target, name, None) is call:
                setattr(target, name, wrapped)
    for name in ("code_plane", "plane_grams", "patch_grams", "quantize_u", "choose_rank",
                 "plane_blocks", "fitted_candidate", "coded_error"):
        wrap(plane, name, schedule)
    for name in ("choose_layout", "finish"):
        wrap(schedule.Encoder, name)
    wrap(schedule, "interleave")
    wrap(source.PlaneSource, "keep")
    wrap(source.PlaneSource, "release")
    wrap(resample, "least_squares_half", source)
    wrap(blocks, "choose_prediction")
    wrap(coding, "join_symbols", plane)
    wrap(writer, "pack_record", plane, blocks)
    quiet = threads._quiet

    def band(task: Callable[[int], Any], i: int) -> Any:
        name = "band " + getattr(task, "__qualname__", "?").replace(".<locals>", "")
        return traced(name, quiet)(task, i)
    threads._quiet = band
    concurrent.futures.Future.result = traced(  # type: ignore[method-assign]
        "(waits for a helper thread)", concurrent.futures.Future.result)


def idle_spans(start: float, end: float) -> tuple[float, list[tuple[float, float]]]:
    """Core time with fewer than two threads busy, and those spans: a pool thread is busy in a
    band or job, the calling thread all the time but while it waits for a helper."""
    changes: list[tuple[float, int]] = [(start, 1), (end, -1)]
    for thread, name, depth, t0, t1, _, _ in EVENTS:
        if thread != "MainThread" and depth == 0:
            changes += [(t0, 1), (t1, -1)]
        elif thread == "MainThread" and name.startswith("(waits"):
            changes += [(t0, -1), (t1, 1)]
    changes.sort()
    busy, last, idle, spans = 0, start, 0.0, []
    for moment, step in changes:
        if moment > last and busy < 2:
            idle += (2 - busy) * (moment - last)
            spans.append((last, moment))
        busy, last = busy + step, moment
    return idle, spans


def timeline(args: argparse.Namespace, array: np.ndarray) -> None:
    import svdcodec

    instrument()
    if args.fresh:
        svdcodec.encode(np.zeros((48, 64, 3), np.uint8))  # imports and lazy set-up only
    else:
        for _ in range(2):
            svdcodec.encode(array, args.quality)
    EVENTS.clear()
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    svdcodec.encode(array, args.quality)
    end = time.perf_counter()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(f"encode {array.shape[1]}x{array.shape[0]} q{args.quality:g} "
          f"({'fresh' if args.fresh else 'warm'}): wall {(end - start) * 1e3:.1f} ms, "
          f"{faults} minor page faults; load average {os.getloadavg()[0]:.1f}")
    for thread in sorted({e[0] for e in EVENTS}, key=lambda t: (t != "MainThread", t)):
        print(f"\n== {thread}  (ms from the start: wall, thread CPU, page faults)")
        for _, name, depth, t0, t1, cpu, flt in sorted(
                (e for e in EVENTS if e[0] == thread), key=lambda e: e[3]):
            if depth <= args.depth and (t1 - t0) * 1e3 >= args.min_ms:
                print(f"{'  ' * depth}{(t0 - start) * 1e3:7.1f} - {(t1 - start) * 1e3:7.1f}  "
                      f"{name:<36} wall {(t1 - t0) * 1e3:6.1f}  cpu {cpu * 1e3:6.1f}  "
                      f"faults {flt:5d}")
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0])
    for _, name, _, t0, t1, cpu, flt in EVENTS:
        row = totals[name]
        row[0] += 1
        row[1] += t1 - t0
        row[2] += cpu
        row[3] += flt
    print(f"\n{'step (nested steps counted in each)':<40} {'calls':>5} {'wall ms':>8} "
          f"{'cpu ms':>7} {'faults':>7}")
    for name, (count, wall, cpu, flt) in sorted(totals.items(), key=lambda kv: -kv[1][2]):
        print(f"{name:<40} {count:5.0f} {wall * 1e3:8.1f} {cpu * 1e3:7.1f} {flt:7.0f}")
    idle, spans = idle_spans(start, end)
    print(f"\nidle core time {idle * 1e3:.1f} ms of 2 x {(end - start) * 1e3:.1f} ms "
          "(fewer than two threads with work):")
    for t0, t1 in spans:
        if t1 - t0 >= 1e-3:
            doing = sorted((e for e in EVENTS if e[0] == "MainThread" and e[3] <= t0 < e[4]),
                           key=lambda e: e[2])
            print(f"  {(t0 - start) * 1e3:7.1f} - {(t1 - start) * 1e3:7.1f}  calling thread in: "
                  + (" / ".join(e[1] for e in doing) or "(encode itself)"))


def rounds(args: argparse.Namespace, array: np.ndarray) -> None:
    from PIL import Image

    import svdcodec

    def jpeg() -> None:
        Image.fromarray(array).save(io.BytesIO(), "JPEG", quality=75)
    svdcodec.encode(array, args.quality)
    jpeg()
    walls, cpus, jpegs = [], [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        jpeg()
        jpegs.append(time.perf_counter() - t0)
        c0, t0 = time.process_time(), time.perf_counter()
        svdcodec.encode(array, args.quality)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    ratio = statistics.median(w / j for w, j in zip(walls, jpegs, strict=True))
    print(f"svdi wall {statistics.median(walls) * 1e3:.0f} ms (min {min(walls) * 1e3:.0f}), "
          f"CPU {statistics.median(cpus) * 1e3:.0f} ms; JPEG q75 "
          f"{statistics.median(jpegs) * 1e3:.0f} ms (min {min(jpegs) * 1e3:.0f}); "
          f"svdi / JPEG {ratio:.2f}; load average {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    array = (_common.load_image(args.image) if args.image is not None
             else _common.build_mosaic(_common.kodak_paths(args.corpus)))
    (rounds if args.rounds else timeline)(args, array)
    return 0


if __name__ == "__main__":
    sys.exit(main())
