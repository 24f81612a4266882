#!/usr/bin/env python3
"""What the deblocking filter (format version 4, `encode(deblock=True)`) costs against
`deblock=False`, measured side by side in one process (issues #13 and #16): on a shared machine
the load swings by more than the difference, while two settings run round by round, their order
alternating, meet the same load.

    python benchmarks/deblock_cost.py --corpus KODAK            # Kodak and the 19 MP mosaic
    python benchmarks/deblock_cost.py --corpus KODAK --no-memory --rounds 3

Per set (the 24 Kodak photos, each image once per round; the 19 MP mosaic of them, the image
speed.py uses): encode CPU time (all threads) and wall time, and decode wall time through
svdcodec.decode and through Pillow's Image.open(...).load(), of the file each setting wrote.
Each round gives a deblock=True / deblock=False ratio; the table shows the median ratio and the
median seconds per image. Then (unless --no-memory) the peak extra resident memory of each
operation on the mosaic in a fresh process (benchmarks/_child_memory.py, as speed.py measures
it), in multiples of the raw pixel bytes.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import numpy as np
from PIL import Image

import svdcodec

SETTINGS = (False, True)


def timed(task: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds of the process, wall seconds) of one call."""
    cpu, wall = time.process_time(), time.perf_counter()
    task()
    return time.process_time() - cpu, time.perf_counter() - wall


def pillow_load(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        im.load()


def operations(images: list[np.ndarray], files: dict[bool, list[bytes]]
               ) -> dict[str, Callable[[bool], Callable[[], Any]]]:
    """name -> (deblock -> the operation over the set)."""
    return {
        "encode": lambda d: lambda: [svdcodec.encode(im, deblock=d) for im in images],
        "decode numpy": lambda d: lambda: [svdcodec.decode(f, max_pixels=None)
                                           for f in files[d]],
        "decode Pillow": lambda d: lambda: [pillow_load(f) for f in files[d]],
    }


def measure(name: str, images: list[np.ndarray], rounds: int) -> dict[str, Any]:
    """Median per-image seconds and median per-round ratios (True / False) of each operation."""
    files = {d: [svdcodec.encode(im, deblock=d) for im in images] for d in SETTINGS}
    ops = operations(images, files)
    for run in ops.values():  # warm: imports, thread pools, kernels
        run(True)()
        run(False)()
    seconds: dict[tuple[str, str, bool], list[float]] = {}
    for r in range(rounds):
        order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
        for op, run in ops.items():
            for d in order:
                cpu, wall = timed(run(d))
                seconds.setdefault((op, "cpu", d), []).append(cpu / len(images))
                seconds.setdefault((op, "wall", d), []).append(wall / len(images))
        _common.progress(f"  {name}: round {r + 1} of {rounds}")
    out: dict[str, Any] = {"images": len(images),
                           "bytes": {str(d): sum(map(len, files[d])) for d in SETTINGS}}
    for op in ops:
        for clock in ("cpu", "wall"):
            off, on = seconds[(op, clock, False)], seconds[(op, clock, True)]
            out[f"{op} {clock}"] = {
                "off_s": statistics.median(off), "on_s": statistics.median(on),
                "ratio": statistics.median(a / b for a, b in zip(on, off))}
    return out


MEMORY_OPERATIONS = ("svdi-nodeblock encode", "svdi-deblock encode",
                     "svdi-nodeblock decode numpy", "svdi-deblock decode numpy",
                     "svdi-nodeblock decode Pillow", "svdi-deblock decode Pillow")


def memory(image: np.ndarray) -> dict[str, float]:
    """Peak extra resident memory of each operation in a fresh process, x raw bytes."""
    child = _common.BENCHMARKS / "_child_memory.py"
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "image.npy"
        np.save(npy, image)
        sources = {"svdi-nodeblock": Path(tmp) / "off.svdi",
                   "svdi-deblock": Path(tmp) / "on.svdi"}
        sources["svdi-nodeblock"].write_bytes(svdcodec.encode(image, deblock=False))
        sources["svdi-deblock"].write_bytes(svdcodec.encode(image, deblock=True))
        for name in MEMORY_OPERATIONS:
            source = npy if name.split()[1] == "encode" else sources[name.split()[0]]
            result = subprocess.run([sys.executable, str(child), name, str(source)],
                                    capture_output=True, text=True, timeout=1800, check=False)
            if result.returncode != 0:
                raise SystemExit(f"memory child failed on {name}: {result.stderr}")
            record = json.loads(result.stdout.strip().splitlines()[-1])
            out[name] = (record["peak"] - record["baseline"]) / image.nbytes
            _common.progress(f"  peak memory {name}: {out[name]:.2f} x raw")
    return out


def report(results: dict[str, Any]) -> None:
    rows = []
    for name, r in results["sets"].items():
        for key, v in r.items():
            if isinstance(v, dict) and "ratio" in v:
                rows.append([name, key, f"{v['off_s'] * 1e3:.1f}", f"{v['on_s'] * 1e3:.1f}",
                             f"{v['ratio']:.3f}"])
    print(_common.table(["set", "operation", "deblock=False ms/img", "deblock=True ms/img",
                         "median ratio True/False"], rows))
    if results.get("memory"):
        mem = results["memory"]
        print()
        print(_common.table(["operation (19 MP mosaic, fresh process)", "peak extra x raw"],
                            [[k, f"{v:.2f}"] for k, v in mem.items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--corpus", type=Path, required=True, help="directory of kodim01..24")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per set (default 5)")
    parser.add_argument("--no-memory", action="store_true", help="skip the fresh-process peaks")
    parser.add_argument("--json", type=Path, help="where to write the results as JSON")
    args = parser.parse_args()
    paths = _common.kodak_paths(args.corpus)
    print(f"# svdcodec {Path(svdcodec.__file__).parent} at {_common.git_commit()}, "
          f"kernels {_common.kernel_path()}")
    photos = [_common.load_image(p) for p in paths]
    mosaic = _common.build_mosaic(paths)
    results: dict[str, Any] = {"commit": _common.git_commit(), "sets": {}}
    results["sets"]["Kodak (24)"] = measure("Kodak", photos, args.rounds)
    results["sets"]["19 MP mosaic"] = measure("19 MP", [mosaic], args.rounds)
    if not args.no_memory:
        results["memory"] = memory(mosaic)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
