"""The first encode and decode of a process, as a command-line call or a script meets them
(issue #13), against Pillow's JPEG.

    python benchmarks/first_call.py --corpus DIR [--image kodim05.png] [--rounds 9]
    python benchmarks/first_call.py --corpus DIR --python A/bin/python --python B/bin/python
    python benchmarks/first_call.py --corpus DIR --breakdown

Every measurement is a new interpreter, the operations interleaved round by round (svdi,
then JPEG q75, for each interpreter given with --python: two installs alternate):

- encode: `svdcodec.encode(array)` / `Image.fromarray(array).save(buffer, "JPEG", quality=75)`
  (the array loaded from .npy beforehand, not timed);
- decode: `svdcodec.decode(file bytes)` / `numpy.asarray(Image.open(file))`;
- load: `Image.open(file).load()`, both;
- cli encode, cli decode: the whole command, `svdi-encode -f -o OUT PHOTO.png` and
  `svdi-decode -f -o OUT.png FILE.svdi` beside the interpreter, against a `python -c` that does
  the same with Pillow and JPEG.

In-process rows print the imports (numpy, PIL.Image, and svdcodec for svdi), the operation's
wall and CPU time (all threads) and its page faults, medians over the rounds, and each svdi
median / JPEG's. `--breakdown` instead times, in fresh processes, each thing a first call pays
that later ones do not, one at a time before the first call: the encoder's modules, the
colour conversion's tables (an install before 2026-12-06: the Pillow conversion probe),
the encoder's bias tables, the chroma halving tables, the thread
pool and the BLAS thread lookup; then the first call (what is left: page faults of new
buffers) and a second one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

OPERATIONS = ("encode", "decode", "load")
#: The timings' columns, and those also given as ratios to JPEG's.
COLUMNS = ("import_ms", "import_cpu_ms", "op_ms", "faults", "cpu_ms", "total_ms", "total_cpu_ms")
RATIOS = ("op_ms", "cpu_ms", "total_ms", "total_cpu_ms")
COMMANDS = ("cli encode", "cli decode")


def child(operation: str, codec: str, path: str) -> None:
    """One operation in this (fresh) process; prints a JSON line of its times."""
    import resource

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    started, started_cpu = time.perf_counter(), time.process_time()
    import numpy as np
    from PIL import Image
    if codec == "svdi":
        import svdcodec
    imported, imported_cpu = time.perf_counter(), time.process_time()
    source: Any = np.load(path) if operation == "encode" else path
    if operation == "decode" and codec == "svdi":
        with open(path, "rb") as f:  # read before the clock, like np.load for an encode
            source = f.read()
    wall, cpu, paged = time.perf_counter(), time.process_time(), faults()
    if operation == "encode" and codec == "svdi":
        svdcodec.encode(source)
    elif operation == "encode":
        import io
        Image.fromarray(source).save(io.BytesIO(), "JPEG", quality=75)
    elif operation == "decode" and codec == "svdi":
        svdcodec.decode(source)
    elif operation == "decode":
        np.asarray(Image.open(source))
    else:
        Image.open(source).load()
    print(json.dumps({"import_ms": 1e3 * (imported - started),
                      "import_cpu_ms": 1e3 * (imported_cpu - started_cpu),
                      "op_ms": 1e3 * (time.perf_counter() - wall),
                      "cpu_ms": 1e3 * (time.process_time() - cpu), "faults": faults() - paged}))


def breakdown_child(operation: str, path: str) -> None:
    """Fresh process: each first-use step timed alone, then the first and a second call."""
    import resource

    import numpy as np

    import svdcodec
    from svdcodec.codec import colour, resample
    from svdcodec.runtime import kernels, threads

    array = np.load(path) if operation == "encode" else None
    data = Path(path).read_bytes() if operation == "decode" else b""
    h, w = array.shape[:2] if array is not None else (0, 0)
    def blas_lookup() -> None:
        with threads.single_threaded():
            pass

    shared: list[tuple[str, Any]] = [
        ("import svdcodec.decoder.stream", lambda: __import__("svdcodec.decoder.stream")),
        ("C extension loaded", kernels.get),
        ("OpenBLAS's thread-count API looked up", blas_lookup),
        ("thread pool (used above a size: not here)", lambda: threads.run_bands(int, 2, 2)),
    ]
    probe = getattr(kernels, "colour_constants", None)  # an install before 2026-12-06
    if probe is not None:
        shared.append(("Pillow probe and the kernels' colour check", probe))
    if operation == "decode":
        steps = shared
        call = lambda: svdcodec.decode(data)
    else:
        terms = getattr(colour, "ycc_terms", None)  # spec §5's, since 2026-12-06
        steps = [("import svdcodec.encoder", lambda: __import__("svdcodec.encoder")), *shared,
                 *([("the colour conversion's terms (ycc_terms)", terms)] if terms else []),
                 ("decoder_bias and bias_table", colour.bias_table),
                 ("mean_bias", colour.mean_bias),
                 ("chroma halving tables", lambda: (resample.halving_tables32((h + 1) // 2, h),
                                                    resample.halving_tables32((w + 1) // 2, w)))]
        call = lambda: svdcodec.encode(array)
    steps += [("first call, after the steps above", call), ("second call", call)]
    out = {}
    for name, step in steps:
        paged = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        cpu = time.process_time()
        step()
        out[name] = (1e3 * (time.process_time() - cpu),
                     resource.getrusage(resource.RUSAGE_SELF).ru_minflt - paged)
    print(json.dumps(out))


def run_child(python: str, args: list[str]) -> dict[str, Any]:
    result = subprocess.run([python, __file__, "--child", *args], capture_output=True,
                            text=True, check=False)
    if result.returncode:
        raise SystemExit(f"child {args} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_command(command: list[str]) -> dict[str, float]:
    """Wall and CPU milliseconds (user + system, all threads) of a whole command."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    started, started_cpu = time.perf_counter(), cpu()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = {"total_ms": 1e3 * (time.perf_counter() - started),
               "total_cpu_ms": 1e3 * (cpu() - started_cpu)}
    if result.returncode:
        raise SystemExit(f"{command} failed:\n{result.stderr[-2000:]}")
    return elapsed


def commands(python: str, files: dict[str, Path], out: Path) -> dict[tuple[str, str], list[str]]:
    """(operation, codec) -> the command line."""
    bin_dir = Path(python).parent
    pillow = "from PIL import Image; import sys; Image.open(sys.argv[1]).save(sys.argv[2]{})"
    return {
        ("cli encode", "svdi"): [str(bin_dir / "svdi-encode"), "-f", "--quiet", "-o",
                                 str(out / "cli.svdi"), str(files["png"])],
        ("cli encode", "JPEG"): [python, "-c", pillow.format(", quality=75"),
                                 str(files["png"]), str(out / "cli.jpg")],
        ("cli decode", "svdi"): [str(bin_dir / "svdi-decode"), "-f", "--quiet", "-o",
                                 str(out / "cli-svdi.png"), str(files["svdi"])],
        ("cli decode", "JPEG"): [python, "-c", pillow.format(""), str(files["jpg"]),
                                 str(out / "cli-jpeg.png")],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        if sys.argv[2] == "breakdown":
            breakdown_child(sys.argv[3], sys.argv[4])
        else:
            child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, help=_common.KODAK_HELP)
    ap.add_argument("--image", default="kodim05.png", help="the photo (default kodim05.png)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--python", action="append",
                    help="interpreter to measure (repeat to alternate installs; default: this)")
    ap.add_argument("--breakdown", action="store_true",
                    help="what a first call pays, step by step, instead of the timings")
    args = ap.parse_args()
    pythons = args.python or [sys.executable]
    photo = next((p for p in _common.kodak_paths(args.corpus) if p.name == args.image), None)
    if photo is None:
        raise SystemExit(f"no {args.image} in {args.corpus}")
    import io

    import numpy as np
    from PIL import Image

    import svdcodec

    for python in pythons:
        probe = ("import svdcodec, svdcodec.runtime.kernels as k;"
                 " print(svdcodec.__file__, k.backend())")
        where = subprocess.run([python, "-c", probe],
                               capture_output=True, text=True, check=True).stdout.strip()
        print(f"{python}: svdcodec {where}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}")
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        array = _common.load_image(photo)
        files = {"png": photo, "npy": out / "photo.npy", "svdi": out / "photo.svdi",
                 "jpg": out / "photo.jpg"}
        np.save(files["npy"], array)
        files["svdi"].write_bytes(svdcodec.encode(array))
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "JPEG", quality=75)
        files["jpg"].write_bytes(buffer.getvalue())
        if args.breakdown:
            breakdown(pythons, files, args.rounds)
        else:
            timings(pythons, files, out, args.rounds)
    print(f"load average at end: {os.getloadavg()}")


def timings(pythons: list[str], files: dict[str, Path], out: Path, rounds: int) -> None:
    runs: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for r in range(rounds):
        _common.progress(f"round {r + 1}/{rounds}")
        for operation in OPERATIONS + COMMANDS:
            for python in pythons:
                for codec in ("svdi", "JPEG"):
                    if codec == "JPEG" and python != pythons[0]:
                        continue
                    key = (python, operation, codec)
                    if operation in COMMANDS:
                        result = run_command(commands(python, files, out)[operation, codec])
                    else:
                        source = files["npy" if operation == "encode" else
                                       "svdi" if codec == "svdi" else "jpg"]
                        result = run_child(python, [operation, codec, str(source)])
                        result["total_ms"] = result["import_ms"] + result["op_ms"]
                        result["total_cpu_ms"] = result["import_cpu_ms"] + result["cpu_ms"]
                    runs.setdefault(key, []).append(result)
    rows = []
    for (python, operation, codec), results in runs.items():
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        jpeg = runs[(pythons[0], operation, "JPEG")]
        ratio = {k: statistics.median(r[k] for r in results) /
                 statistics.median(j[k] for j in jpeg) for k in RATIOS if k in results[0]}
        label = f"{operation} {codec}" + (f" [{pythons.index(python) + 1}]"
                                          if len(pythons) > 1 and codec == "svdi" else "")
        rows.append([label, *(f"{med[k]:.1f}" if k in med else "" for k in COLUMNS),
                     *(f"{ratio[k]:.2f}" if k in ratio and codec == "svdi" else ""
                       for k in RATIOS)])
    print(f"medians of {rounds} fresh processes each; [n]: the n-th --python; ms wall, CPU:"
          " user + system of all threads; total: the imports and the operation, or the whole"
          " command")
    print(_common.table(["", "imports", "imports CPU", "op", "op faults", "op CPU", "total",
                         "total CPU", "op / JPEG", "op CPU / JPEG", "total / JPEG",
                         "total CPU / JPEG"], rows))


def breakdown(pythons: list[str], files: dict[str, Path], rounds: int) -> None:
    results: dict[tuple[str, str], list[dict[str, list[float]]]] = {}
    for r in range(rounds):
        _common.progress(f"round {r + 1}/{rounds}")
        for operation in ("encode", "decode"):
            for python in pythons:
                source = files["npy" if operation == "encode" else "svdi"]
                results.setdefault((python, operation), []).append(
                    run_child(python, ["breakdown", operation, str(source)]))
    for (python, operation), runs in results.items():
        rows = [[name, f"{statistics.median(run[name][0] for run in runs):.2f}",
                 f"{statistics.median(run[name][1] for run in runs):.0f}"] for name in runs[0]]
        print(f"\n{operation}, {python}: CPU ms and page faults, medians of {rounds} processes")
        print(_common.table(["step (in this order, each alone)", "CPU ms", "faults"], rows))


if __name__ == "__main__":
    main()
