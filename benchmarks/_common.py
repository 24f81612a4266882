"""What the benchmark scripts share: the test images, the environment report, table printing.

Test images come from the Kodak Lossless True Color Image Suite (kodim01..24.png, 768x512 or
512x768; benchmarks/README.md says where to get it), given with ``--corpus DIR``. Scripts where
a small image still answers the question fall back to the photo bundled with the package
(svdcodec/data/sample.png, a 384x256 crop of kodim05).

No numpy, Pillow or svdcodec import at module level: the fresh-process children import this
module after timing their own imports.
"""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
RESULTS = BENCHMARKS / "results"
KODAK_TILE = (768, 512)  # (width, height) of a landscape Kodak photo
MOSAIC_GRID = (6, 8)  # columns, rows of tiles: 4608 x 4096, about 19 MP
KODAK_HELP = (
    "the Kodak Lossless True Color Image Suite: 24 PNGs kodim01.png .. kodim24.png "
    "(768x512 or 512x768), e.g. from https://r0k.us/graphics/kodak/ ; put them in one "
    "directory and pass it as --corpus DIR (see benchmarks/README.md)")


def seconds(call: Callable[[], object]) -> float:
    """The wall time of one call, in seconds."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def progress(message: str) -> None:
    """A timestamped line on stderr, so that a long run shows where it is."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- test images


def kodak_paths(corpus: Path | None, *, required: bool = True) -> list[Path]:
    """kodim*.png in `corpus`, sorted. With `required`, exits with how to get the set when the
    directory is not given or holds none; otherwise returns [] for the caller's fallback."""
    paths = sorted(corpus.glob("kodim*.png")) if corpus is not None else []
    if not paths and required:
        where = f"no kodim*.png in {corpus}" if corpus is not None else "no --corpus given"
        raise SystemExit(f"{where}: this benchmark needs {KODAK_HELP}")
    return paths


def sample_path() -> Path:
    """The photo bundled with svdcodec (a 384x256 crop of kodim05)."""
    from importlib.resources import files

    return Path(str(files("svdcodec.data") / "sample.png"))


def load_image(path: Path) -> Any:
    """An image file as a uint8 array: greyscale kinds as L (h, w), everything else as RGB."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        mode = "L" if im.mode in ("1", "L", "I;16", "I", "F") else "RGB"
        return np.asarray(im.convert(mode)).copy()


def landscape_tiles(paths: Sequence[Path]) -> list[Any]:
    """The photos as 768x512 RGB arrays, portrait ones rotated to landscape."""
    import numpy as np
    from PIL import Image

    tile_w, tile_h = KODAK_TILE
    tiles = []
    for path in paths:
        with Image.open(path) as opened:
            im = opened.convert("RGB")
        if im.size == (tile_h, tile_w):
            im = im.transpose(Image.Transpose.ROTATE_90)
        if im.size != (tile_w, tile_h):
            im = im.resize((tile_w, tile_h), Image.Resampling.LANCZOS)
        tiles.append(np.asarray(im))
    return tiles


def build_mosaic(paths: Sequence[Path], grid: tuple[int, int] = MOSAIC_GRID) -> Any:
    """The photos tiled cols x rows at full size (4608 x 4096 by default), landscape, reused in
    order; later copies of a photo are flipped (left-right, then up-down) so that no tile repeats
    exactly. The same image as the one the earlier tools/bench.py built."""
    import numpy as np

    tiles = landscape_tiles(paths)
    tile_w, tile_h = KODAK_TILE
    cols, rows = grid
    out = np.empty((rows * tile_h, cols * tile_w, 3), dtype=np.uint8)
    for i in range(cols * rows):
        tile = tiles[i % len(tiles)]
        copy = i // len(tiles)
        if copy % 2 == 1:
            tile = tile[:, ::-1]
        if copy % 4 >= 2:
            tile = tile[::-1]
        row, col = divmod(i, cols)
        out[row * tile_h:(row + 1) * tile_h, col * tile_w:(col + 1) * tile_w] = tile
    return out


def dims_for(megapixels: float, aspect: float) -> tuple[int, int]:
    """(w, h), multiples of 16, with about `megapixels` MP and w / h = aspect."""
    width = max(16, 16 * round(math.sqrt(megapixels * 1e6 * aspect) / 16))
    height = max(16, 16 * round(megapixels * 1e6 / width / 16))
    return width, height


def scaled(image: Any, megapixels: float) -> Any:
    """The image at about `megapixels` MP, same aspect: Lanczos-reduced when smaller; when larger,
    tiled with flipped copies (full-resolution detail kept) and centre-cropped."""
    import numpy as np
    from PIL import Image

    h0, w0 = image.shape[:2]
    width, height = dims_for(megapixels, w0 / h0)
    if width * height <= w0 * h0:
        if (width, height) == (w0, h0):
            return image
        return np.asarray(Image.fromarray(image).resize((width, height),
                                                        Image.Resampling.LANCZOS))
    tiles_y, tiles_x = -(-height // h0), -(-width // w0)
    flipped = {(fx, fy): image[::-1 if fy else 1, ::-1 if fx else 1]
               for fx in (0, 1) for fy in (0, 1)}
    big = np.concatenate([np.concatenate([flipped[(i % 2, j % 2)] for i in range(tiles_x)],
                                         axis=1) for j in range(tiles_y)], axis=0)
    y0, x0 = (big.shape[0] - height) // 2, (big.shape[1] - width) // 2
    return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])


def crops(photos: Sequence[Any], side: int, count: int) -> list[Any]:
    """`count` side x side crops, taken round-robin over the photos from a grid of
    non-overlapping positions in each (photo 0 crop 0, photo 1 crop 0, ..., photo 0 crop 1, ...);
    at most as many as the grids hold."""
    import numpy as np

    grids = [[(y, x) for y in range(0, p.shape[0] - side + 1, side)
              for x in range(0, p.shape[1] - side + 1, side)] for p in photos]
    out: list[Any] = []
    for k in range(max(map(len, grids), default=0)):
        for photo, grid in zip(photos, grids):
            if k < len(grid) and len(out) < count:
                y, x = grid[k]
                out.append(np.ascontiguousarray(photo[y:y + side, x:x + side]))
    return out


# ----------------------------------------------------------------------------- decoding


#: How the decode benchmarks decode a file (`decoding`).
DECODE_VIAS = ("api", "pillow")


def add_decode_arguments(parser: Any) -> None:
    """The decode benchmarks' inputs: .svdi files, and --via api, pillow or both
    (`decode_vias`)."""
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--via", choices=(*DECODE_VIAS, "both"), default="both")


def decode_vias(via: str) -> tuple[str, ...]:
    """The ways of decoding --via names."""
    return DECODE_VIAS if via == "both" else (via,)


def decoding(data: bytes, via: str) -> Any:
    """A call that decodes `data`: `svdcodec.decode(data)` (via "api") or
    `Image.open(BytesIO(data)).load()` ("pillow")."""
    import io

    from PIL import Image

    import svdcodec

    if via == "api":
        return lambda: svdcodec.decode(data)
    return lambda: Image.open(io.BytesIO(data)).load()


# ----------------------------------------------------------------------------- environment


#: One thread (no BLAS thread spinning between calls) and a fixed hash seed: two callgrind runs
#: of the same code then count within about 0.1 %.
CALLGRIND_ENV = {"SVDCODEC_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def callgrind_instructions(child: str, args: Sequence[str], what: object, *,
                           pythonpath: Path | None = None, isolated: bool = False) -> int:
    """Instructions `valgrind --tool=callgrind` counts in `python -c child *args`, with
    CALLGRIND_ENV (and `pythonpath` as PYTHONPATH). `isolated`: the child runs in a temporary
    directory, so that no svdcodec in the current one shadows the installed one or
    `pythonpath`'s. `what` names the input in an error."""
    env = {**os.environ, **CALLGRIND_ENV}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        run = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                              sys.executable, "-c", child, *args],
                             capture_output=True, text=True, env=env, check=False,
                             cwd=tmp if isolated else None)
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode or not found:
        raise SystemExit(f"callgrind failed on {what}:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def kernel_path() -> str:
    """Which per-sample kernels svdcodec runs in this process ("c" or "numpy"; "numba" for the
    numba kernels of earlier versions, once loaded)."""
    from svdcodec.runtime import kernels

    if hasattr(kernels, "backend"):
        return str(kernels.backend())
    return "numpy" if kernels.get() is None else "numba"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10,
                              check=False).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def blas_info() -> dict[str, Any]:
    """numpy's BLAS library and its thread count, from threadpoolctl when it is installed."""
    import numpy as np

    info: dict[str, Any] = {"numpy": np.__version__}
    try:
        import threadpoolctl  # type: ignore[import-not-found]
    except ImportError:
        try:
            blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
            info["library"] = f"{blas.get('name')} {blas.get('version')}"
        except Exception as exc:  # noqa: BLE001 (informational only)
            info["library"] = f"unknown ({exc})"
    else:
        pools = [p for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
        if pools:
            info["library"] = f"{pools[0].get('internal_api')} {pools[0].get('version')}"
            info["threads"] = pools[0].get("num_threads")
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                  "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")}
    return info


def environment() -> dict[str, Any]:
    """The machine, the library versions and where svdcodec is imported from."""
    import importlib.metadata
    import importlib.util

    import PIL

    import svdcodec

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), "?")
    except OSError:
        pass

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu, "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(), "pillow": PIL.__version__,
        "zstandard": version("zstandard"), "svdcodec": svdcodec.__version__,
        "svdcodec_at": str(Path(svdcodec.__file__).parent), "git": git_commit(),
        "SVDCODEC_KERNELS": os.environ.get("SVDCODEC_KERNELS"),
        "kernel_path": kernel_path(), "blas": blas_info(),
        "bytecode_cached": bytecode_cached(),
    }


def bytecode_cached() -> bool:
    """Whether every svdcodec module loads from cached bytecode of its current source, as
    after `pip install .` (pip compiles them): without it (PYTHONDONTWRITEBYTECODE in a source
    tree, or sources edited since their bytecode was written) every fresh process compiles
    those modules again, and the fresh-process times (the encoder's modules load on the first
    encode) measure the compiler. `python -m compileall -q svdcodec` writes it."""
    import importlib.util

    import svdcodec

    for source in Path(svdcodec.__file__).parent.rglob("*.py"):
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            header = cached.read_bytes()[:16]
        except OSError:
            return False
        stat = source.stat()
        # the pyc header (PEP 552, timestamp-based): flags, then the source's mtime and size
        if (len(header) < 16 or int.from_bytes(header[4:8], "little") != 0
                or int.from_bytes(header[8:12], "little") != int(stat.st_mtime) & 0xFFFFFFFF
                or int.from_bytes(header[12:16], "little") != stat.st_size & 0xFFFFFFFF):
            return False
    return True


# ----------------------------------------------------------------------------- output


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text columns: the first left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
