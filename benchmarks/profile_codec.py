#!/usr/bin/env python3
"""cProfile of svdi encode and decode: where the time goes (a developer aid, no README figure).

    python benchmarks/profile_codec.py --corpus DIR         # the 19 MP Kodak mosaic of speed.py
    python benchmarks/profile_codec.py --corpus DIR --prof /tmp/svdi   # also /tmp/svdi-encode.prof
    python benchmarks/profile_codec.py --image photo.png --quality 90 --layout plain
    python benchmarks/profile_codec.py --mp 4                # the bundled sample, tiled to 4 MP

One unprofiled warm-up of each phase runs first, so imports and first-call costs are not counted.
BLAS calls (a @ b, eigh) show up as the time of the numpy function or, for the @ operator, as
`tottime` of the Python function containing it; the --tottime table shows those leaves.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shlex
import sys
import time
from pathlib import Path

import _common


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", type=Path, help="profile this image instead of the Kodak mosaic")
    ap.add_argument("--corpus", type=Path,
                    help="Kodak photos (kodim*.png) for the mosaic (default: the sample bundled "
                         "with svdcodec)")
    ap.add_argument("--mp", type=float, help="resize/tile the test image to about this many MP")
    ap.add_argument("--quality", type=float, help="svdi quality (default: the encoder's)")
    ap.add_argument("--layout", default="auto", help="auto, plain, patch, patch4/8/16")
    ap.add_argument("--top", type=int, default=25, help="rows per table (default 25)")
    ap.add_argument("--threads", type=int, default=1,
                    help="band threads (default 1: cProfile sees only the calling thread, so "
                         "with more the band work shows up as lock waits; 0: as the library "
                         "chooses)")
    ap.add_argument("--tottime", type=int, default=15,
                    help="rows of the extra table by own time (0: none; default 15)")
    ap.add_argument("--prof", type=Path,
                    help="write PREFIX-encode.prof and PREFIX-decode.prof (for snakeviz etc.)")
    return ap.parse_args(argv)


def report(prof: cProfile.Profile, title: str, top: int, tottime: int) -> None:
    for key, n in (("cumulative", top), ("tottime", tottime)):
        if n <= 0:
            continue
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(n)
        text = buf.getvalue()
        # Drop pstats' preamble up to the "Ordered by" line, keep the totals line.
        lines = text.splitlines()
        total = next((ln.strip() for ln in lines if "function calls" in ln), "")
        start = next((i for i, ln in enumerate(lines) if ln.strip().startswith("Ordered by")), 0)
        print(f"\n=== {title}: top {n} by {key} ({total})")
        print("\n".join(ln for ln in lines[start + 1:] if ln.strip()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import numpy as np  # noqa: F401
    from PIL import Image

    import svdcodec

    if args.threads:
        # No public setting for the band threads: patch the runtime's count.
        from svdcodec.runtime import threads

        threads.workers = lambda: args.threads  # type: ignore[assignment]
    Image.MAX_IMAGE_PIXELS = None
    print("$ " + shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv)))
    if args.image:
        image = _common.load_image(args.image)
    elif photos := _common.kodak_paths(args.corpus, required=args.corpus is not None):
        image = _common.build_mosaic(photos)
    else:
        image = _common.load_image(_common.sample_path())
    if args.mp:
        image = _common.scaled(image, args.mp)
    h, w = image.shape[:2]
    kw: dict = {"layout": args.layout}
    if args.quality is not None:
        kw["quality"] = args.quality
    print(f"image {w}x{h} ({w * h / 1e6:.2f} MP), svdcodec.encode(**{kw}); "
          f"BLAS threads {_common.blas_info().get('threads', '?')}, band threads "
          f"{args.threads or 'auto'}, SVDCODEC_KERNELS="
          f"{os.environ.get('SVDCODEC_KERNELS', '(unset)')}, kernels {_common.kernel_path()}")

    phases = []
    data = svdcodec.encode(image, **kw)  # warm-up
    svdcodec.decode(data)
    for name, call in (("encode", lambda: svdcodec.encode(image, **kw)),
                       ("decode", lambda: svdcodec.decode(data))):
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        call()
        prof.disable()
        wall = time.perf_counter() - t
        phases.append((name, prof, wall))
        if args.prof:
            out = Path(f"{args.prof}-{name}.prof")
            out.parent.mkdir(parents=True, exist_ok=True)
            prof.dump_stats(out)
    print(f"file {len(data)} bytes; wall time under the profiler: "
          + ", ".join(f"{n} {t:.2f} s" for n, _, t in phases))
    for name, prof, wall in phases:
        report(prof, f"{name} ({wall:.2f} s)", args.top, args.tottime)
    if args.prof:
        print(f"\nwrote {args.prof}-encode.prof and {args.prof}-decode.prof")
    return 0


if __name__ == "__main__":
    sys.exit(main())
