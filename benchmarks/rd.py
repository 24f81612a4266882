#!/usr/bin/env python3
"""Rate–distortion comparison of svdcodec against JPEG, WebP, AVIF, JPEG 2000, PNG
and the textbook SVD baseline, on every PNG of a directory: the README's comparison table
and plot (docs/kodak-rd.png) and benchmarks/results/kodak-summary.csv and kodak-bd-rate.csv.

    python benchmarks/rd.py --corpus DIR --out results/ [--quick] [--jobs 2]
    python benchmarks/rd.py --codecs jpeg,svdi,webp       # the bundled sample photo only

DIR is the Kodak set (kodim01..24.png, see benchmarks/README.md) or any directory of PNGs;
without --corpus the photo bundled with svdcodec is used (a smoke test, not the README's figures).
Writes OUT/per_image.csv (one row per image, codec, setting), OUT/summary.csv
(means over images per codec and setting), OUT/bd_rate.csv (BD-rate vs the
reference codec per image and the mean) and OUT/rd.png, and prints the tables.
"""

from __future__ import annotations

import os

# One BLAS thread per worker: the pool already uses the cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import csv
import math
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
from _common import sample_path
from PIL import Image

from svdcodec.evaluation import codecs as compare

Task = tuple[str, str, bool, bool]  # (path, codec, quick, with_ssim)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path,
                        help="directory of PNG images (default: the sample bundled with svdcodec)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output directory (default results/)")
    parser.add_argument("--quick", action="store_true", help="fewer settings per codec")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument(
        "--codecs",
        default=",".join(compare.CODECS),
        help=f"comma-separated subset of {','.join(compare.CODECS)} (default: all)",
    )
    parser.add_argument("--ssim", action="store_true", help="also measure SSIM on luma")
    parser.add_argument("--reference", default="jpeg", help="codec BD-rates are measured against")
    parser.add_argument("--lo", type=float, default=28.0, help="BD-rate PSNR range low end (dB)")
    parser.add_argument("--hi", type=float, default=38.0, help="BD-rate PSNR range high end (dB)")
    return parser.parse_args(argv)


def select_codecs(spec: str) -> list[str]:
    """Validate the --codecs list; drop (with a note) Pillow codecs not compiled in."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in compare.CODECS]
    if unknown:
        raise SystemExit(f"unknown codec(s) {unknown}; choose from {list(compare.CODECS)}")
    missing = [n for n in names if not compare.CODECS[n].available()]
    if missing:
        print(f"# skipping codecs missing from this Pillow build: {', '.join(missing)}")
    return [n for n in names if n not in missing]


def run_task(task: Task) -> list[compare.RDPoint]:
    path, codec, quick, with_ssim = task
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    return compare.sweep_image(img, [codec], quick=quick, with_ssim=with_ssim, image=Path(path).stem)


def run_all(tasks: list[Task], jobs: int) -> list[compare.RDPoint]:
    if jobs <= 1:
        return [row for task in tasks for row in run_task(task)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return [row for rows in pool.map(run_task, tasks) for row in rows]


def fmt(x: float | None, spec: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return "inf" if math.isinf(x) else format(x, spec)


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def summarize(rows: list[compare.RDPoint]) -> list[list[object]]:
    """[codec, setting, n_images, mean bytes, mean bpp, mean psnr, mean ssim] per setting."""
    groups: dict[tuple[str, object], list[compare.RDPoint]] = {}
    for row in rows:
        groups.setdefault((row.codec, row.setting), []).append(row)
    order = list(compare.CODECS)
    out = []
    for (codec, setting), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        ssims = [r.ssim for r in group if r.ssim is not None]
        out.append(
            [
                codec,
                setting,
                len(group),
                float(np.mean([r.n_bytes for r in group])),
                float(np.mean([r.bpp for r in group])),
                float(np.mean([r.psnr for r in group])),
                float(np.mean(ssims)) if ssims else None,
            ]
        )
    return out


def print_summary(summary: list[list[object]], with_ssim: bool) -> None:
    print(f"\n{'codec':<11} {'setting':>7} {'n':>3} {'bpp':>8} {'PSNR':>7}" + (f" {'SSIM':>7}" if with_ssim else ""))
    for codec, setting, n, _, mean_bpp, mean_psnr, mean_ssim in summary:
        line = f"{codec:<11} {setting!s:>7} {n:>3} {mean_bpp:>8.3f} {fmt(mean_psnr, '7.2f'):>7}"
        print(line + (f" {fmt(mean_ssim, '7.4f'):>7}" if with_ssim else ""))


def report_bd(rows: list[compare.RDPoint], args: argparse.Namespace) -> None:
    per_image = compare.bd_rates_per_image(rows, args.reference, args.lo, args.hi)
    means = compare.mean_bd_rates(rows, args.reference, args.lo, args.hi)
    table = [[codec, image, value] for codec, values in per_image.items() for image, value in sorted(values.items())]
    table += [[codec, "MEAN", s.mean] for codec, s in means.items()]
    write_csv(args.out / "bd_rate.csv", ["codec", "image", f"bd_rate_pct_vs_{args.reference}"], table)
    print(f"\nMean BD-rate vs {args.reference}, RGB PSNR {args.lo:g}-{args.hi:g} dB (negative = smaller files):")
    for codec in sorted(means, key=list(compare.CODECS).index):
        s = means[codec]
        if s.n_images == 0:
            print(f"  {codec:<11}     n/a    (no RD curve in range: lossless or out of range)")
            continue
        note = "" if s.n_images == s.n_total else f"  (defined on {s.n_images}/{s.n_total} images)"
        print(f"  {codec:<11} {s.mean:+7.1f} %{note}")


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    print("$ " + shlex.join(sys.orig_argv if argv is None else ["benchmarks/rd.py", *argv]))
    args = parse_args(argv)
    codecs = select_codecs(args.codecs)
    if args.corpus is None:
        images = [str(sample_path())]
        print(f"# no --corpus: the bundled sample {images[0]} only")
    else:
        images = sorted(str(p) for p in args.corpus.glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images in {args.corpus}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {len(images)} images, codecs {','.join(codecs)}, jobs {args.jobs}, quick={args.quick}")

    # Slow codecs first so the pool does not end waiting on one long task.
    slow_first = sorted(codecs, key=lambda c: c not in ("svdi", "svdi-plain", "avif", "lecture"))
    tasks: list[Task] = [(path, codec, args.quick, args.ssim) for codec in slow_first for path in images]
    rows = run_all(tasks, args.jobs)

    fields = list(asdict(rows[0])) if rows else []
    write_csv(args.out / "per_image.csv", fields, [list(asdict(r).values()) for r in rows])
    summary = summarize(rows)
    write_csv(
        args.out / "summary.csv",
        ["codec", "setting", "n_images", "mean_bytes", "mean_bpp", "mean_psnr", "mean_ssim"],
        summary,
    )
    print_summary(summary, args.ssim)
    written = ["per_image.csv", "summary.csv"]
    if args.reference in codecs:
        report_bd(rows, args)
        written.append("bd_rate.csv")
    try:
        compare.plot_rd(rows, args.out / "rd.png", args.lo, args.hi)
        written.append("rd.png")
    except ImportError as exc:
        print(f"# no plot: {exc}")
    print(f"\n# wrote {', '.join(str(args.out / name) for name in written)}")
    print(f"# elapsed {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
