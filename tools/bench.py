#!/usr/bin/env python3
"""Speed and memory of svdcodec against Pillow's JPEG, PNG and WebP, on one machine, in one run.

    python tools/bench.py                 # ~19 MP Kodak mosaic, scaling up to 64 MP
    python tools/bench.py --max-mp 100    # ... and a 100 MP row
    python tools/bench.py --max-mp 16     # skip the slow 64 MP row
    python tools/bench.py --quick         # smoke test: 4 MP headline, 1 and 4 MP scaling, 2 repeats
    python tools/bench.py --image photo.png --json bench.json

Prints:
  * the command line, the machine, numpy's BLAS and its thread count;
  * on the test image (default: the 24 Kodak photos tiled 6 x 8 = 4608 x 4096, ~19 MP, each photo
    twice, the second copy flipped), the median encode and decode wall time of N runs after one
    warm-up for svdi at default quality, JPEG q75, PNG (compress_level 6) and WebP q75, with the
    svdi/JPEG ratios; "decode" means bytes -> numpy array for every codec;
  * paired svdi/JPEG ratios (--pairs rounds, each timing svdi and JPEG back to back, so that
    the shared machine's drift hits both): median and range of the per-round ratios;
  * svdi twice: as installed (with the compiled kernels when the C extension is built) and on
    the numpy path alone (SVDCODEC_KERNELS=0);
  * one-shot decode times of a fresh interpreter (import, first and second call), which is
    what a command-line call pays, for svdi (auto, kernels forced, numpy) and JPEG;
  * peak extra memory (VmHWM minus the VmRSS before the operation, the output included) as a
    multiple of the raw pixel bytes, each measured in a fresh child process;
  * a scaling table (1, 4, 16, 64, 100 MP, capped by --max-mp): svdi and JPEG seconds and
    seconds/MP, and svdi's peak extra memory at each size (fresh child processes).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CORPUS = (REPO / ".." / "shared" / "corpus" / "kodak").resolve()
TILE = (768, 512)  # Kodak landscape size (w, h)
MOSAIC_GRID = (6, 8)  # columns, rows -> 4608 x 4096
SCALE_MP = (1, 4, 16, 64, 100)
#: The svdi rows run with the compiled kernels when the C extension is built (set here for
#: the whole run, child processes included; see svdcodec/kernels.py), else on the numpy path.
os.environ.pop("SVDCODEC_KERNELS", None)
from svdcodec import kernels as _kernels

KERNELS, KERNELS_NOTE = (("1", "compiled kernels (C)") if _kernels.backend() == "c"
                         else ("0", "numpy path (C kernels not built)"))
os.environ["SVDCODEC_KERNELS"] = KERNELS
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, help="test image instead of the Kodak mosaic")
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                    help="directory of kodim01..24.png (default: %(default)s)")
    ap.add_argument("--repeats", "-n", type=int, default=5,
                    help="timed runs per measurement, after one warm-up (default 5)")
    ap.add_argument("--scale-repeats", type=int,
                    help="timed runs per scaling-table cell (default: --repeats)")
    ap.add_argument("--max-mp", type=float, default=64,
                    help="largest scaling-table size in megapixels (default 64)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 4 MP headline image, scaling 1 and 4 MP, 2 repeats")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    ap.add_argument("--pairs", type=int, default=11,
                    help="alternating svdi/JPEG rounds for the paired time ratios (default 11; "
                         "0: none)")
    ap.add_argument("--blas-threads", type=int,
                    help="set OPENBLAS/OMP/MKL_NUM_THREADS before numpy loads (default: as is)")
    ap.add_argument("--json", type=Path, help="write every number to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeats = min(args.repeats, 2)
        args.max_mp = min(args.max_mp, 4)
    if args.scale_repeats is None:
        args.scale_repeats = args.repeats
    if args.repeats < 1 or args.scale_repeats < 1:
        ap.error("repeats must be at least 1")
    return args


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- test images


def build_mosaic(corpus: Path, grid: tuple[int, int] = MOSAIC_GRID):
    """The Kodak photos tiled cols x rows at full size, portrait ones rotated to landscape;
    photos are reused in order, and every other copy of a photo is flipped (odd copies left-right,
    so tiles never repeat exactly)."""
    import numpy as np
    from PIL import Image

    paths = sorted(corpus.glob("kodim*.png"))
    if not paths:
        raise SystemExit(f"no kodim*.png in {corpus}")
    tw, th = TILE
    cols, rows = grid
    out = np.empty((rows * th, cols * tw, 3), dtype=np.uint8)
    tiles = []
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if im.size == (th, tw):
                im = im.transpose(Image.Transpose.ROTATE_90)
            if im.size != (tw, th):
                im = im.resize((tw, th), Image.Resampling.LANCZOS)
            tiles.append(np.asarray(im))
    for i in range(cols * rows):
        tile = tiles[i % len(tiles)]
        copy = i // len(tiles)
        if copy % 2 == 1:
            tile = tile[:, ::-1]
        if copy % 4 >= 2:
            tile = tile[::-1]
        r, c = divmod(i, cols)
        out[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = tile
    return out


def load_image(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if im.mode in ("1", "L", "I;16", "I", "F") else "RGB")
        return np.asarray(im).copy()


def dims_for(mp: float, aspect: float) -> tuple[int, int]:
    """(w, h), multiples of 16, with about mp megapixels and w/h = aspect."""
    w = max(16, 16 * round(math.sqrt(mp * 1e6 * aspect) / 16))
    h = max(16, 16 * round(mp * 1e6 / w / 16))
    return w, h


def scaled(image, mp: float):
    """The image at about mp megapixels, same aspect: Lanczos-reduced when smaller; when larger,
    tiled with flipped copies (keeping full-resolution detail) and centre-cropped."""
    import numpy as np
    from PIL import Image

    h0, w0 = image.shape[:2]
    w, h = dims_for(mp, w0 / h0)
    if w * h <= w0 * h0:
        if (w, h) == (w0, h0):
            return image
        return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.LANCZOS))
    ky, kx = -(-h // h0), -(-w // w0)
    row_tiles = []
    for j in range(ky):
        row = []
        for i in range(kx):
            t = image
            if i % 2:
                t = t[:, ::-1]
            if j % 2:
                t = t[::-1]
            row.append(t)
        row_tiles.append(np.concatenate(row, axis=1))
    big = np.concatenate(row_tiles, axis=0)
    y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
    return np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


# ----------------------------------------------------------------------------- codecs


def codecs() -> dict[str, tuple[str, Callable, Callable]]:
    """name -> (setting, encode(array) -> bytes, decode(bytes) -> array)."""
    import inspect

    import numpy as np
    from PIL import Image

    import svdcodec

    def pil_encoder(fmt: str, **kw: Any) -> Callable:
        def enc(a) -> bytes:
            buf = BytesIO()
            Image.fromarray(a).save(buf, fmt, **kw)
            return buf.getvalue()
        return enc

    def pil_decode(b: bytes):
        with Image.open(BytesIO(b)) as im:
            return np.asarray(im)

    q = inspect.signature(svdcodec.encode).parameters["quality"].default

    def numpy_only(fn: Callable) -> Callable:
        def run(arg: Any) -> Any:
            os.environ["SVDCODEC_KERNELS"] = "0"
            try:
                return fn(arg)
            finally:
                os.environ["SVDCODEC_KERNELS"] = KERNELS
        return run
    return {
        "svdi": (f"default (q{q}, layout auto), {KERNELS_NOTE}", lambda a: svdcodec.encode(a),
                 svdcodec.decode),
        "svdi numpy": ("the same, numpy path only (SVDCODEC_KERNELS=0)",
                       numpy_only(svdcodec.encode), numpy_only(svdcodec.decode)),
        "JPEG": ("q75", pil_encoder("JPEG", quality=75), pil_decode),
        "PNG": ("compress_level 6", pil_encoder("PNG", compress_level=6), pil_decode),
        "WebP": ("q75", pil_encoder("WEBP", quality=75), pil_decode),
    }


def timed(fn: Callable, arg: Any, repeats: int, warmup: int = 1) -> tuple[float, list[float], Any]:
    """(median seconds, all timed runs, output of the warm-up or first run)."""
    first = fn(arg) if warmup else None
    for _ in range(warmup - 1):
        fn(arg)
    runs = []
    for _ in range(repeats):
        gc.collect()
        t = time.perf_counter()
        out = fn(arg)
        runs.append(time.perf_counter() - t)
        if first is None:
            first = out
        del out
    return statistics.median(runs), runs, first


def psnr(a, b) -> float:
    import numpy as np

    a2 = a.reshape(a.shape[0], -1)
    b2 = b.reshape(a2.shape)
    sse = 0.0
    for y in range(0, a2.shape[0], 256):  # chunks: no full-size float64 temporaries
        d = a2[y:y + 256].astype(np.float32) - b2[y:y + 256].astype(np.float32)
        sse += float(np.einsum("ij,ij->", d, d, dtype=np.float64))
    mse = sse / a2.size
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


# ----------------------------------------------------------------------------- machine / BLAS


def blas_info() -> dict[str, Any]:
    import ctypes

    import numpy as np

    info: dict[str, Any] = {"numpy": np.__version__}
    try:
        import threadpoolctl  # type: ignore[import-not-found]

        pools = threadpoolctl.threadpool_info()
        info["source"] = "threadpoolctl"
        info["pools"] = [{k: p.get(k) for k in ("user_api", "internal_api", "num_threads",
                                                 "version", "architecture", "filepath")}
                         for p in pools]
        blas = [p for p in pools if p.get("user_api") == "blas"]
        if blas:
            info["library"] = f"{blas[0].get('internal_api')} {blas[0].get('version')}"
            info["threads"] = blas[0].get("num_threads")
            info["core"] = blas[0].get("architecture")
    except ImportError:
        info["source"] = "np.show_config + the OpenBLAS C API"
        try:
            deps = np.show_config(mode="dicts").get("Build Dependencies", {})
            b = deps.get("blas", {})
            info["library"] = f"{b.get('name')} {b.get('version')}"
            info["config"] = b.get("openblas configuration")
        except Exception as e:  # noqa: BLE001 (informational only)
            info["library"] = f"unknown ({e})"
        with open("/proc/self/maps") as maps:
            names = {line.split()[-1] for line in maps if line.strip()}
        libs = sorted(n for n in names if "openblas" in n.lower() and ".so" in n)
        for path in libs:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"),
                                   ("scipy_openblas", ""), ("openblas", "")):
                fn = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                if fn is None:
                    continue
                fn.restype = ctypes.c_int
                info["threads"] = fn()
                core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                if core is not None:
                    core.restype = ctypes.c_char_p
                    info["core"] = core().decode()
                info["filepath"] = path
                break
            if "threads" in info:
                break
    info["env"] = {k: os.environ.get(k) for k in BLAS_ENV}
    return info


def machine_info() -> dict[str, Any]:
    import platform

    import PIL

    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    return {"cpu": cpu, "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else None,
            "loadavg_start": os.getloadavg(), "python": platform.python_version(),
            "pillow": PIL.__version__, "git": commit}


# ----------------------------------------------------------------------------- peak memory

CHILD = r"""
import gc, json, sys
from io import BytesIO
op, path, repo = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, repo)
import numpy as np
from PIL import Image
import svdcodec
Image.MAX_IMAGE_PIXELS = None

sys.path.insert(0, repo + "/tools")
from procstat import reset_peak, status

def jpeg_enc(a):
    buf = BytesIO(); Image.fromarray(a).save(buf, "JPEG", quality=75); return buf.getvalue()

def pil_dec(b):
    with Image.open(BytesIO(b)) as im:
        return np.asarray(im)

ops = {"svdi encode": (svdcodec.encode, None), "svdi decode": (svdcodec.decode, svdcodec.encode),
       "JPEG encode": (jpeg_enc, None), "JPEG decode": (pil_dec, jpeg_enc)}
fn, make = ops[op]
if make is None:
    data = np.load(path)
else:
    with open(path, "rb") as f:
        data = f.read()
# Warm up on a tiny image so that lazy imports and BLAS threads are not counted.
tiny = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
fn(tiny if make is None else make(tiny))
gc.collect()
reset = reset_peak()  # VmHWM := VmRSS
before = status()
baseline = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
out = fn(data)
after = status()
print(json.dumps({"baseline": baseline, "peak": after["VmHWM"], "hwm_reset": reset,
                  "out_bytes": int(getattr(out, "nbytes", len(out) if isinstance(out, bytes) else 0))}))
"""


SHOT = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[2])
import numpy as np
from io import BytesIO
from PIL import Image
import svdcodec
Image.MAX_IMAGE_PIXELS = None
data = open(sys.argv[1], "rb").read()
decode = svdcodec.decode if sys.argv[1].endswith(".svdi") else (
    lambda b: np.asarray(Image.open(BytesIO(b))))
t1 = time.perf_counter(); decode(data); t2 = time.perf_counter(); decode(data)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))
"""


def one_shot(path: Path, kernels: str | None) -> dict[str, Any]:
    """Import, first and second decode times of a fresh interpreter."""
    env = dict(os.environ)
    env.pop("SVDCODEC_KERNELS", None)
    if kernels is not None:
        env["SVDCODEC_KERNELS"] = kernels
    r = subprocess.run([sys.executable, "-c", SHOT, str(path), str(REPO)], env=env,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"one-shot child failed: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure_memory(op: str, path: Path) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-c", CHILD, op, str(path), str(REPO)],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}
    return json.loads(r.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- tables


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def f3(x: float) -> str:
    return f"{x:.3f}"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.blas_threads:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.blas_threads)
    t_start = time.perf_counter()
    sys.path.insert(0, str(REPO))
    import numpy as np
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    results: dict[str, Any] = {}

    cmd = shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv))
    print(f"$ {cmd}")
    print(f"  (cwd {os.getcwd()}, PYTHONPATH={os.environ.get('PYTHONPATH', '')})")
    results["command"] = cmd
    m = machine_info()
    b = blas_info()
    results["machine"], results["blas"] = m, b
    print(f"machine: {m['cpu']}, {m['cpus']} CPUs ({m['cpus_usable']} usable), "
          f"load average {' '.join(f'{x:.2f}' for x in m['loadavg_start'])} at start; "
          f"Python {m['python']}, numpy {b['numpy']}, Pillow {m['pillow']}; svdcodec at {m['git']}")
    print(f"BLAS: {b.get('library')} [{b['source']}]; threads {b.get('threads', '?')}, "
          f"kernel core {b.get('core', '?')}")
    if b.get("config"):
        print(f"  config: {b['config']}")
    env = b["env"]
    print("  env: " + ", ".join(f"{k}={v if v is not None else '(unset)'}" for k, v in env.items()))
    print("  note: on some processors this environment sets OPENBLAS_CORETYPE, which forces "
          "OpenBLAS's kernel choice; compare runs only with the same value")

    # -- test image
    if args.image:
        image = load_image(args.image)
        source = str(args.image)
    else:
        progress(f"building the Kodak mosaic from {args.corpus}")
        image = build_mosaic(args.corpus)
        source = f"Kodak mosaic {MOSAIC_GRID[0]}x{MOSAIC_GRID[1]} of {TILE[0]}x{TILE[1]} tiles"
    full = image
    if args.quick and not args.image:
        image = scaled(full, 4)
        source += ", reduced to 4 MP (--quick)"
    h, w = image.shape[:2]
    raw = image.nbytes
    mp = w * h / 1e6
    print(f"\ntest image: {source}: {w}x{h}, {mp:.2f} MP, {raw / 2**20:.1f} MiB raw; "
          f"median of {args.repeats} runs after 1 warm-up; decode = bytes -> numpy array")
    results["image"] = {"source": source, "width": w, "height": h, "raw_bytes": raw}

    # -- headline: all codecs
    rows, headline = [], {}
    encoded: dict[str, bytes] = {}
    all_codecs = codecs()
    for name, (setting, enc, dec) in all_codecs.items():
        progress(f"{name} encode ({setting})")
        te, te_runs, data = timed(enc, image, args.repeats)
        progress(f"{name} decode")
        td, td_runs, out = timed(dec, data, args.repeats)
        quality = psnr(image, out)
        del out
        encoded[name] = data
        headline[name] = {"setting": setting, "bytes": len(data), "bpp": 8 * len(data) / (w * h),
                          "psnr": quality, "encode_s": te, "decode_s": td,
                          "encode_runs": te_runs, "decode_runs": td_runs}
        rows.append([name, setting, f"{len(data) / 2**20:.2f}", f"{8 * len(data) / (w * h):.3f}",
                     "lossless" if math.isinf(quality) else f"{quality:.2f}",
                     f3(te), f"{mp / te:.1f}", f3(td), f"{mp / td:.1f}"])
    print(table(["codec", "setting", "MiB", "bpp", "PSNR dB", "encode s", "enc MP/s",
                 "decode s", "dec MP/s"], rows))
    re = headline["svdi"]["encode_s"] / headline["JPEG"]["encode_s"]
    rd = headline["svdi"]["decode_s"] / headline["JPEG"]["decode_s"]
    print(f"svdi/JPEG time ratio: encode {re:.2f}x, decode {rd:.2f}x ({KERNELS_NOTE}); "
          f"numpy path: encode "
          f"{headline['svdi numpy']['encode_s'] / headline['JPEG']['encode_s']:.2f}x, decode "
          f"{headline['svdi numpy']['decode_s'] / headline['JPEG']['decode_s']:.2f}x")
    results["headline"] = headline
    results["ratio_svdi_jpeg"] = {"encode": re, "decode": rd}

    # -- paired ratios: on a shared machine the speed drifts within seconds, and the medians
    # above are taken minutes apart; here each round times svdi and JPEG back to back (in
    # alternating order), so a slow spell hits both, and the ratio is taken per round.
    if args.pairs > 0:
        progress(f"paired ratios: {args.pairs} alternating rounds of svdi and JPEG")
        pair = {"svdi": all_codecs["svdi"], "JPEG": all_codecs["JPEG"]}
        paired: dict[str, list[float]] = {"encode": [], "decode": []}
        seconds: dict[str, list[dict[str, float]]] = {"encode": [], "decode": []}
        for k in range(args.pairs):
            for op, index in (("encode", 1), ("decode", 2)):
                times = {}
                for name in (("svdi", "JPEG") if k % 2 == 0 else ("JPEG", "svdi")):
                    fn = pair[name][index]
                    x = image if op == "encode" else encoded[name]
                    gc.collect()  # as in `timed`: no collection of earlier garbage inside
                    t = time.perf_counter()
                    out = fn(x)
                    times[name] = time.perf_counter() - t
                    del out
                paired[op].append(times["svdi"] / times["JPEG"])
                seconds[op].append(times)
        summary = {op: {"median": statistics.median(v), "min": min(v), "max": max(v), "runs": v,
                        "seconds": seconds[op]}
                   for op, v in paired.items()}
        print("paired svdi/JPEG time ratio (" + f"{args.pairs} rounds, each codec once per round, "
              "alternating which goes first): " + "; ".join(
                  f"{op} median {v['median']:.2f}x (rounds {v['min']:.2f}-{v['max']:.2f}x)"
                  for op, v in summary.items()))
        results["paired_ratio_svdi_jpeg"] = summary

    # -- one-shot processes: what a command-line call pays, imports and first use included
    if not args.no_memory:
        shot_rows, shots = [], {}
        with tempfile.TemporaryDirectory(prefix="svdi-bench-") as tmp:
            for name in ("svdi", "JPEG"):
                path = Path(tmp) / f"image.{name.lower()}"
                path.write_bytes(encoded[name])
                modes = [("auto", None), ("kernels", "1"), ("numpy", "0")] if name == "svdi" \
                    else [("", None)]
                for label, setting in modes:
                    progress(f"one-shot decode: {name} {label} (child process)")
                    r = one_shot(path, setting)
                    shots[f"{name} {label}".strip()] = r
                    shot_rows.append([f"{name} {label}".strip(), f3(r["import_s"]),
                                      f3(r["first_s"]), f3(r["second_s"])])
        print("\none-shot decode in a fresh process (svdi auto: the C kernels if built; "
              "kernels: SVDCODEC_KERNELS=1; numpy: SVDCODEC_KERNELS=0)")
        print(table(["decoder", "import s", "first decode s", "second decode s"], shot_rows))
        results["one_shot"] = shots

    # -- peak memory, one fresh child process per measurement
    if not args.no_memory:
        mem_rows, memory = [], {}
        with tempfile.TemporaryDirectory(prefix="svdi-bench-") as tmp:
            npy = Path(tmp) / "image.npy"
            np.save(npy, image)
            files = {}
            for name in ("svdi", "JPEG"):
                files[name] = Path(tmp) / f"image.{name.lower()}"
                files[name].write_bytes(encoded[name])
            for op in ("svdi encode", "svdi decode", "JPEG encode", "JPEG decode"):
                progress(f"peak memory: {op} (child process)")
                codec, what = op.split()
                r = measure_memory(op, npy if what == "encode" else files[codec])
                memory[op] = r
                if "error" in r:
                    mem_rows.append([op, "error", str(r["error"]), "", ""])
                    continue
                extra = r["peak"] - r["baseline"]
                r["extra_bytes"], r["extra_x_raw"] = extra, extra / raw
                mem_rows.append([op, f"{r['baseline'] / 2**20:.0f}", f"{r['peak'] / 2**20:.0f}",
                                 f"{extra / 2**20:.0f}", f"{extra / raw:.2f}"])
        print(f"\npeak extra memory (VmHWM after - VmRSS before, output included; fresh process "
              f"each; raw = {raw / 2**20:.1f} MiB)")
        print(table(["operation", "RSS before MiB", "peak MiB", "extra MiB", "extra / raw"],
                    mem_rows))
        results["memory"] = memory

    # -- scaling
    sizes = [s for s in SCALE_MP if s <= args.max_mp]
    scale_rows, scaling = [], []
    enc = {n: c[1] for n, c in all_codecs.items()}
    dec = {n: c[2] for n, c in all_codecs.items()}
    for s in sizes:
        progress(f"scaling: building the {s} MP image")
        img = scaled(full, s)
        hh, ww = img.shape[:2]
        smp = ww * hh / 1e6
        row: dict[str, Any] = {"target_mp": s, "width": ww, "height": hh, "mp": smp}
        for name in ("svdi", "JPEG"):
            progress(f"scaling: {s} MP {name} encode ({args.scale_repeats} runs + warm-up)")
            te, _, data = timed(enc[name], img, args.scale_repeats)
            progress(f"scaling: {s} MP {name} decode")
            td, _, out = timed(dec[name], data, args.scale_repeats)
            del out
            row[name] = {"encode_s": te, "decode_s": td, "bytes": len(data)}
            if name == "svdi" and not args.no_memory:  # peak memory at this size too
                with tempfile.TemporaryDirectory(prefix="svdi-bench-") as tmp:
                    npy, svdi = Path(tmp) / "image.npy", Path(tmp) / "image.svdi"
                    np.save(npy, img)
                    svdi.write_bytes(data)
                    for op, path in (("encode", npy), ("decode", svdi)):
                        progress(f"scaling: {s} MP svdi {op} peak memory (child process)")
                        r = measure_memory(f"svdi {op}", path)
                        row[name][f"{op}_x_raw"] = ((r["peak"] - r["baseline"]) / img.nbytes
                                                    if "error" not in r else math.nan)
        del img
        scaling.append(row)
        sv, jp = row["svdi"], row["JPEG"]
        scale_rows.append([f"{ww}x{hh}", f"{smp:.2f}",
                           f3(sv["encode_s"]), f3(sv["encode_s"] / smp),
                           f3(sv["decode_s"]), f3(sv["decode_s"] / smp),
                           f"{sv.get('encode_x_raw', math.nan):.2f}",
                           f"{sv.get('decode_x_raw', math.nan):.2f}",
                           f3(jp["encode_s"]), f3(jp["encode_s"] / smp),
                           f3(jp["decode_s"]), f3(jp["decode_s"] / smp),
                           f"{sv['encode_s'] / jp['encode_s']:.1f}",
                           f"{sv['decode_s'] / jp['decode_s']:.1f}"])
    print(f"\nscaling (image reduced or tiled+cropped from the test image; median of "
          f"{args.scale_repeats} runs after 1 warm-up)")
    print(table(["size", "MP", "svdi enc s", "s/MP", "svdi dec s", "s/MP", "enc mem x raw",
                 "dec mem x raw", "JPEG enc s", "s/MP",
                 "JPEG dec s", "s/MP", "enc ratio", "dec ratio"], scale_rows))
    results["scaling"] = scaling

    elapsed = time.perf_counter() - t_start
    results["elapsed_s"] = elapsed
    results["loadavg_end"] = os.getloadavg()
    print(f"\ntotal elapsed {elapsed:.1f} s; load average at end "
          f"{' '.join(f'{x:.2f}' for x in results['loadavg_end'])}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
