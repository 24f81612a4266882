#!/usr/bin/env python3
"""Measure the resource promises of the README's "Reliability" section and print them as tables.

    python benchmarks/hostile.py            # rejected files + every worst-case valid file
    python benchmarks/hostile.py --quick    # rejected files + only the valid cases that decode fast
    python benchmarks/hostile.py --only c_plain_r4096,d_encoder_4000x3000 --keep /tmp/hb
    python benchmarks/hostile.py --corpus DIR   # the encoder case tiles the Kodak photos in DIR

1. Rejected input: every invalid file of spec/vectors (per manifest.json) and every
   tests/regressions/*.svdi. For `svdcodec.decode(data)` (must raise SvdiError) and for Pillow
   (`Image.open(BytesIO(data)); im.load()`, must raise UnidentifiedImageError, OSError or
   DecompressionBombError): median wall time of --runs calls (ms) and the tracemalloc peak of one
   more call (KiB; the input is allocated before tracing starts; one untimed warm-up call first).
   Promise: < 100 ms and < 64 KiB each.
2. Accepted input: worst-case VALID files near the caps (MAX_WORK = 2^36 multiply-adds, MAX_RANK,
   PIL.Image.MAX_IMAGE_PIXELS), written directly with svdcodec.container, plus one encoder output.
   Each is decoded once in a fresh child process (benchmarks/_child_decode.py, after a warm-up
   decode of a tiny vector):
   wall time, and peak extra RSS = VmHWM after the decode minus VmRSS before it, VmHWM having
   been reset with /proc/self/clear_refs right before the decode (the input bytes are already
   resident, the output array is included). Promise: peak <= 3 x output bytes + 64 MiB and
   < 10 s on a 2-core machine. "ratio" = (peak - 64 MiB) / output bytes, must be <= 3.

The library is not modified: a FAIL is a finding to report, with its numbers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from _common import BENCHMARKS, REPO, git_commit, kodak_paths, sample_path, table
from PIL import Image, UnidentifiedImageError

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as container  # the format's structs: these files are written directly

VECTORS = REPO / "spec" / "vectors"
REGRESSIONS = REPO / "tests" / "regressions"

REJECT_MS = 100.0
REJECT_BYTES = 64 * 1024
SLACK = 64 * 2**20  # the "+ 64 MiB" of the accepted-file promise
FACTOR = 3.0
ACCEPT_S = 10.0
PILLOW_ERRORS = (UnidentifiedImageError, OSError, Image.DecompressionBombError)


# ----------------------------------------------------------------------------- 1. rejected files


def rejected_files() -> list[tuple[str, bytes]]:
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    files = [(f"vectors/{v['file']}", (VECTORS / v["file"]).read_bytes())
             for v in manifest["vectors"] if not v["valid"]]
    files += [(f"regressions/{p.name}", p.read_bytes()) for p in sorted(REGRESSIONS.glob("*.svdi"))]
    return files


def _outcome(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001
        return exc
    return None


def measure_rejection(call: Callable[[], Any], runs: int) -> tuple[BaseException | None, float, int]:
    """(exception of the traced call, median ms of `runs` untraced calls, traced peak bytes)."""
    _outcome(call)  # warm-up: lazy imports, Pillow's plugin registry
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        _outcome(call)
        times.append((time.perf_counter() - t0) * 1e3)
    gc.collect()
    tracemalloc.start()
    try:
        error = _outcome(call)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error, statistics.median(times), peak


def _pillow(data: bytes) -> None:
    with Image.open(BytesIO(data)) as im:
        im.load()


def run_rejections(runs: int) -> bool:
    rows, ok_all = [], True
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    for name, data in rejected_files():
        e1, ms1, peak1 = measure_rejection(lambda data=data: svdcodec.decode(data), runs)
        e2, ms2, peak2 = measure_rejection(lambda data=data: _pillow(data), runs)
        ok1 = isinstance(e1, SvdiError) and ms1 < REJECT_MS and peak1 < REJECT_BYTES
        ok2 = isinstance(e2, PILLOW_ERRORS) and ms2 < REJECT_MS and peak2 < REJECT_BYTES
        ok_all &= ok1 and ok2
        rows.append([name, len(data), f"{ms1:.3f}", f"{peak1 / 1024:.1f}",
                     type(e1).__name__ if e1 else "accepted!", "PASS" if ok1 else "FAIL",
                     f"{ms2:.3f}", f"{peak2 / 1024:.1f}",
                     type(e2).__name__ if e2 else "accepted!", "PASS" if ok2 else "FAIL"])
    print(f"\n1. rejected input (median of {runs} runs; tracemalloc peak of one more run; "
          f"promise < {REJECT_MS:.0f} ms and < {REJECT_BYTES // 1024} KiB)")
    print(table(["file", "bytes", "decode ms", "KiB", "raised", "ok",
                 "Pillow ms", "KiB", "raised", "ok"], rows))
    return ok_all


# ----------------------------------------------------------------------------- 2. accepted files


def _splits(total: int, per: int) -> Iterator[tuple[int, int]]:
    for first in range(0, total, per):
        yield first, min(per, total - first)


def zero_blocks(plane: container.Plane, coding: int, element: type = np.int8,
                ones: bool = False) -> Iterator[container.Block]:
    """S of ones, then all-zero (sparse and `ones`: all-one) V and U blocks of `coding` (as few blocks as the u32 fields allow),
    built one at a time so the writer never holds more than one raw block."""
    r = plane.rank
    if r == 0:
        return
    yield container.Block("S", plane.index, 0, r, container.DENSE, (np.ones(r, np.float32),))
    for factor, grid in (("V", plane.vgrid), ("U", plane.grid)):
        rows = grid[0] * grid[1]
        if coding == container.DENSE:
            for first, count in _splits(r, max(1, (2**32 - 1) // rows)):
                yield container.Block(factor, plane.index, first, count, container.DENSE,
                              (np.zeros(count * rows, element),))
        elif not ones:  # one end-of-row symbol per row: every row of the block is zero
            yield container.Block(factor, plane.index, 0, r, container.SPARSE,
                          (np.full(rows, 0x08, np.uint8), np.zeros(0, np.uint16),
                           np.zeros(0, np.int16)))
        else:  # every value 1: the most symbols a block may have, rows * (count + 1)
            row = np.full(r + 1, 0x09, np.uint8)  # run 0, value +1
            row[-1] = 0x08
            yield container.Block(factor, plane.index, 0, r, container.SPARSE,
                          (np.tile(row, rows), np.zeros(0, np.uint16), np.zeros(0, np.int16)))


def write_svdi(path: Path, header: container.Header, planes: list[container.Plane],
               blocks: Iterator[container.Block]) -> None:
    with open(path, "wb") as f:
        f.write(container.pack_header(header, planes))
        f.writelines(container.pack_block(block) for block in blocks)
        f.write(container.END)


def work(planes: list[container.Plane]) -> int:
    return sum(p.matrix_shape[0] * p.matrix_shape[1] * p.rank for p in planes)


def synthetic(header: container.Header, layout: int, patch: int, rank: int | None, coding: int,
              element: type = np.int8, ones: bool = False) -> Callable[[Path], None]:
    """All planes of one layout and rank; rank None: the largest the caps allow."""
    def build(path: Path) -> None:
        planes = []
        for i in range(header.channels):
            h, w = header.plane_shape(i)
            planes.append(container.Plane(i, layout, patch, h, w, rank or 0, 1.0))
        if rank is None:
            mn = sum(p.matrix_shape[0] * p.matrix_shape[1] for p in planes)
            top = min(container.MAX_WORK // mn, container.MAX_RANK, *(min(p.matrix_shape) for p in planes))
            planes = [container.Plane(p.index, layout, patch, p.height, p.width, top, 1.0)
                      for p in planes]
        assert work(planes) <= container.MAX_WORK, work(planes)
        assert header.width * header.height <= Image.MAX_IMAGE_PIXELS
        write_svdi(path, header, planes,
                   (b for p in planes for b in zero_blocks(p, coding, element, ones)))
    return build


def photo_like(width: int, height: int, photos: list[Path]) -> np.ndarray:
    """The photos (each resized to 768x512) tiled in order over width x height."""
    out = np.empty((height, width, 3), np.uint8)
    k = 0
    for y in range(0, height, 512):
        for x in range(0, width, 768):
            with Image.open(photos[k % len(photos)]) as im:
                a = np.asarray(im.convert("RGB").resize((768, 512)))
            k += 1
            out[y:y + 512, x:x + 768] = a[:height - y, :width - x]
    return out


def encoded(width: int, height: int, photos: list[Path],
            quality: int = 75) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        path.write_bytes(svdcodec.encode(photo_like(width, height, photos), quality=quality))
    return build


@dataclass
class Case:
    name: str
    what: str
    build: Callable[[Path], None]
    quick: bool  # decodes in under 3 s on the 2-core machine (measured)


U8, GREY, RGBA = 1, 1, 4
SIDE = 9456  # 9456^2 = 89,415,936 <= MAX_IMAGE_PIXELS = 89,478,485, a multiple of 8 and 32


def cases(photos: list[Path]) -> list[Case]:
    px_cap = container.Header(SIDE, SIDE, U8, GREY, container.COLOUR_NONE, 0, 1.0)
    rgba = container.Header(SIDE, SIDE, U8, RGBA, container.COLOUR_NONE, 0, 1.0)
    ycc = container.Header(SIDE, SIDE, U8, 3, container.COLOUR_YCBCR, 1, 1.0)
    return [
        Case("a_work_plain_L", f"L {SIDE}^2 plain r768 (largest rank within 2^36), dense int8 zeros",
             synthetic(px_cap, container.LAYOUT_PLAIN, 0, None, container.DENSE), True),
        Case("a2_work_p32_L", f"L {SIDE}^2 patch32 r765 (largest rank within 2^36), dense int8 zeros",
             synthetic(px_cap, container.LAYOUT_PATCH, 32, None, container.DENSE), False),
        Case("b_rgba_p8_sparse", f"RGBA {SIDE}^2 patch8 r64, sparse zero U,V",
             synthetic(rgba, container.LAYOUT_PATCH, 8, 64, container.SPARSE), True),
        Case("b2_rgba_p8_dense8", f"RGBA {SIDE}^2 patch8 r64, dense int8 zero U,V",
             synthetic(rgba, container.LAYOUT_PATCH, 8, 64, container.DENSE), False),
        Case("b3_rgba_p8_dense32", f"RGBA {SIDE}^2 patch8 r64, dense int32 zero U,V",
             synthetic(rgba, container.LAYOUT_PATCH, 8, 64, container.DENSE, np.int32), False),
        Case("b4_ycc420_p8_dense8", f"RGB YCbCr 4:2:0 {SIDE}^2 patch8 r64, dense int8 zeros",
             synthetic(ycc, container.LAYOUT_PATCH, 8, 64, container.DENSE), True),
        Case("b5_rgba_p8_sparse1", f"RGBA {SIDE}^2 patch8 r64, sparse U,V all ones "
             "(max symbols)", synthetic(rgba, container.LAYOUT_PATCH, 8, 64, container.SPARSE, ones=True), False),
        Case("c_plain_r4096", "L 4096^2 plain r4096 (work = 2^36), sparse zero U,V",
             synthetic(container.Header(4096, 4096, U8, GREY, container.COLOUR_NONE, 0, 1.0),
                       container.LAYOUT_PLAIN, 0, 4096, container.SPARSE), True),
        Case("c2_plain_r4096_d32", "L 4096^2 plain r4096 (work = 2^36), dense int32 zeros",
             synthetic(container.Header(4096, 4096, U8, GREY, container.COLOUR_NONE, 0, 1.0),
                       container.LAYOUT_PLAIN, 0, 4096, container.DENSE, np.int32), True),
        Case("c3_plain_wide_r2048_d32", "L 16384x2048 plain r2048 (work = 2^36; V is 4 x the "
             "output), dense int32 zeros",
             synthetic(container.Header(16384, 2048, U8, GREY, container.COLOUR_NONE, 0, 1.0),
                       container.LAYOUT_PLAIN, 0, 2048, container.DENSE, np.int32), True),
        Case("d_encoder_4000x3000", f"svdcodec.encode(RGB 4000x3000 tiled from "
             f"{len(photos)} photo(s), quality=75)", encoded(4000, 3000, photos), True),
    ]




def decode_in_child(path: Path, timeout: float) -> dict[str, Any]:
    tiny = VECTORS / "l_13x7_plain.svdi"
    try:
        r = subprocess.run([sys.executable, str(BENCHMARKS / "_child_decode.py"), str(path),
                            str(tiny)],
                           capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_accepted(selected: list[Case], workdir: Path, timeout: float) -> bool:
    rows, ok_all, notes = [], True, []
    for case in selected:
        path = workdir / f"{case.name}.svdi"
        t0 = time.perf_counter()
        if not path.exists():
            case.build(path)
        built = time.perf_counter() - t0
        res = decode_in_child(path, timeout)
        size = path.stat().st_size
        if "error" in res:
            ok_all = False
            rows.append([case.name, size, "-", "-", "-", "-", "-", "FAIL"])
            notes.append(f"  {case.name}: {case.what}: {res['error']}")
            continue
        extra = res["hwm"] - res["rss_before"]
        out = res["out_bytes"]
        ok_mem = extra <= FACTOR * out + SLACK
        ok_time = res["seconds"] < ACCEPT_S
        ok_all &= ok_mem and ok_time
        verdict = "PASS" if ok_mem and ok_time else "FAIL (" + ", ".join(
            w for w, bad in (("memory", not ok_mem), ("time", not ok_time)) if bad) + ")"
        rows.append([case.name, size, f"{out / 2**20:.1f}", f"{extra / 2**20:.1f}",
                     f"{(FACTOR * out + SLACK) / 2**20:.1f}", f"{(extra - SLACK) / out:.2f}",
                     f"{res['seconds']:.2f}", verdict])
        if not res["reset"]:
            notes.append(f"  {case.name}: VmHWM could not be reset; peak is max(before, after)")
        notes.append(f"  {case.name}: {case.what} (built in {built:.1f} s)")
    print(f"\n2. accepted input (fresh process each; peak = VmHWM - VmRSS before, output included; "
          f"promise peak <= {FACTOR:g} x out + 64 MiB and < {ACCEPT_S:g} s; "
          f"ratio = (peak - 64 MiB) / out)")
    print(table(["case", "file bytes", "out MiB", "peak MiB", "limit MiB", "ratio", "s",
                 "verdict"], rows))
    for n in notes:
        print(n)
    return ok_all


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--quick", action="store_true",
                     help="only the accepted cases that decode in a few seconds")
    cli.add_argument("--runs", type=int, default=20, help="timed calls per rejected file")
    cli.add_argument("--only", help="comma-separated accepted case names")
    cli.add_argument("--skip-rejected", action="store_true")
    cli.add_argument("--keep", type=Path, help="directory for the built files (reused if present)")
    cli.add_argument("--timeout", type=float, default=300.0, help="seconds per child decode")
    cli.add_argument("--corpus", type=Path,
                     help="Kodak photos (kodim*.png) for the encoder case (default: the sample "
                          "bundled with svdcodec, tiled)")
    args = cli.parse_args()

    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    commit = git_commit()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"svdcodec {svdcodec.__version__} @ {commit}, numpy {np.__version__}, "
          f"Pillow {Image.__version__}, {cores} usable cores, "
          f"MAX_IMAGE_PIXELS {Image.MAX_IMAGE_PIXELS}, MAX_WORK 2^36")

    ok = True
    if not args.skip_rejected:
        ok &= run_rejections(args.runs)

    photos = kodak_paths(args.corpus, required=args.corpus is not None) or [sample_path()]
    selected = cases(photos)
    if args.only:
        names = set(args.only.split(","))
        selected = [c for c in selected if c.name in names]
    elif args.quick:
        selected = [c for c in selected if c.quick]
    if selected:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            ok &= run_accepted(selected, args.keep, args.timeout)
        else:
            with tempfile.TemporaryDirectory(prefix="hostile_bench_") as tmp:
                ok &= run_accepted(selected, Path(tmp), args.timeout)
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
