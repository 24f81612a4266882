#!/usr/bin/env python3
"""Rate–distortion comparison of svdcodec against JPEG, WebP, AVIF, JPEG 2000, PNG and the
textbook SVD baseline on every PNG of a directory: the README's comparison table, its plots
(docs/kodak-rd.png, docs/kodak-rd-ssim.png) and benchmarks/results/kodak-*.csv.

    python benchmarks/rd.py --corpus DIR --out benchmarks/results --plots docs [--quick] [--jobs 2]
    python benchmarks/rd.py --codecs jpeg,svdi,webp       # the bundled sample photo only

DIR is the Kodak set (kodim01..24.png, see benchmarks/README.md), the held-out photos that
benchmarks/heldout.py exports, or any directory of PNGs; without --corpus the photo bundled with
svdcodec is used (a smoke test, not the README's figures).

Every point is measured in RGB PSNR (all samples of all channels) and luma SSIM (BT.601 luma,
11x11 Gaussian window, full resolution); no MS-SSIM (benchmarks/README.md says why). The
BD-rates against the reference codec (Pillow JPEG, 4:2:0) are taken per image and averaged, in
three windows:

  * RGB PSNR 28–38 dB, where photos are usually stored;
  * RGB PSNR 24–30 dB, about 0.1–0.5 bpp on photos: every codec's settings reach below 24 dB
    where the codec can (JPEG quality 1, svdi 3, JPEG 2000 20 dB; WebP and AVIF stop near
    28 dB on smooth photos at quality 0, and are then compared on the part both reach);
  * luma SSIM over the range matched to JPEG's 28–38 dB: on each image, the
    SSIM that JPEG's own curve has at 28 dB and at 38 dB RGB PSNR (linear between its
    points) bounds the window, so it means the same quality to JPEG as the PSNR window.
    SSIM is averaged on the −10·log10(1 − SSIM) dB scale, where equal steps near 1 are not
    crowded together.

A BD-rate averages the difference in log file size at equal quality, by monotone cubic
interpolation, over the part of the window both curves reach; when that part is less than
95 % of the window on average, or some images have none, the cell says so.

Writes, with NAME the corpus directory's name (--name): OUT/NAME-per-image.csv (every image,
codec and setting), OUT/NAME-summary.csv (means over images per codec and setting),
OUT/NAME-bd-rate.csv (BD-rate and window coverage per image, window and codec, and the means),
PLOTS/NAME-rd.png and PLOTS/NAME-rd-ssim.png, and prints the tables
and the wall time.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import git_commit, kernel_path, sample_path
from PIL import Image

from svdcodec.evaluation import codecs as compare

Task = tuple[str, str, bool]  # (path, codec, quick)
FULL_COVERAGE = 0.95  # below this mean share of a window, the table says how much was compared


@dataclass(frozen=True)
class Window:
    """One column of the BD-rate table: a measure and the RGB PSNR range it stands for."""

    key: str  # column name in the CSV
    label: str  # column head in the printed table
    measure: compare.Measure
    lo: float
    hi: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--corpus", type=Path,
                        help="directory of PNG images (default: the sample bundled with svdcodec)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="directory of the CSVs (default results/)")
    parser.add_argument("--plots", type=Path, help="directory of the plots (default: --out)")
    parser.add_argument("--name", help="prefix of every file written (default: the corpus directory's name)")
    parser.add_argument("--rows", type=Path, metavar="PER_IMAGE_CSV",
                        help="take the points from the per-image CSV of an earlier run instead of encoding "
                             "(tables and plots again, e.g. in other windows)")
    parser.add_argument("--quick", action="store_true", help="fewer settings per codec")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument(
        "--codecs",
        default=",".join(compare.CODECS),
        help=f"comma-separated subset of {','.join(compare.CODECS)} (default: all)",
    )
    parser.add_argument("--reference", default="jpeg", help="codec BD-rates are measured against")
    parser.add_argument("--lo", type=float, default=28.0, help="main RGB PSNR window, low end (dB)")
    parser.add_argument("--hi", type=float, default=38.0, help="main RGB PSNR window, high end (dB)")
    parser.add_argument("--low-window", type=float, nargs=2, default=(24.0, 30.0), metavar=("LO", "HI"),
                        help="the low-rate RGB PSNR window (default 24 30 dB)")
    return parser.parse_args(argv)


def windows(args: argparse.Namespace) -> list[Window]:
    lo, hi = args.lo, args.hi
    low_lo, low_hi = args.low_window
    ref = args.reference.upper() if args.reference == "jpeg" else args.reference
    return [
        Window(f"psnr_{lo:g}_{hi:g}", f"RGB PSNR {lo:g}–{hi:g} dB", "psnr", lo, hi),
        Window(f"psnr_{low_lo:g}_{low_hi:g}", f"RGB PSNR {low_lo:g}–{low_hi:g} dB", "psnr", low_lo, low_hi),
        Window("ssim", f"luma SSIM ({ref}'s {lo:g}–{hi:g} dB)", "ssim", lo, hi),
    ]


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
    path, codec, quick = task
    with Image.open(path) as im:
        img = np.asarray(im.convert("RGB"))
    return compare.sweep_image(img, [codec], quick=quick, with_ssim=True, image=Path(path).stem)


def read_rows(path: Path) -> list[compare.RDPoint]:
    """The points of an earlier run's NAME-per-image.csv."""
    def number(text: str) -> float | None:
        return float(text) if text else None

    def setting(text: str) -> compare.Setting:
        return float(text) if "." in text else int(text)

    with path.open(newline="") as f:
        return [compare.RDPoint(r["image"], r["codec"], setting(r["setting"]), int(r["n_bytes"]), float(r["bpp"]),
                                float(r["psnr"]), number(r.get("ssim", "")))
                for r in csv.DictReader(f)]


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


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


SUMMARY_HEADER = ["codec", "setting", "n_images", "mean_bytes", "mean_bpp", "mean_psnr", "mean_ssim"]


def summarize(rows: list[compare.RDPoint]) -> list[list[Any]]:
    """SUMMARY_HEADER's values per codec and setting: means over images."""
    groups: dict[tuple[str, object], list[compare.RDPoint]] = {}
    for row in rows:
        groups.setdefault((row.codec, row.setting), []).append(row)
    order = list(compare.CODECS)
    out = []
    for (codec, setting), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1])):
        out.append(
            [
                codec,
                setting,
                len(group),
                float(np.mean([r.n_bytes for r in group])),
                float(np.mean([r.bpp for r in group])),
                float(np.mean([r.psnr for r in group])),
                _mean([r.ssim for r in group]),
            ]
        )
    return out


def print_summary(summary: list[list[Any]]) -> None:
    print(f"\n{'codec':<11} {'setting':>7} {'n':>3} {'bpp':>8} {'PSNR':>7} {'SSIM':>7}")
    for codec, setting, n, _, mean_bpp, mean_psnr, mean_ssim in summary:
        print(f"{codec:<11} {setting!s:>7} {n:>3} {mean_bpp:>8.3f} {fmt(mean_psnr, '7.2f'):>7}"
              f" {fmt(mean_ssim, '7.4f'):>7}")


def bd_cell(s: compare.BDSummary | None) -> str:
    """A table cell: the mean BD-rate, with how much was compared when it was not all."""
    if s is None or s.n_images == 0:
        return "n/a"
    notes = []
    if s.n_images < s.n_total:
        notes.append(f"{s.n_images}/{s.n_total} images")
    if s.coverage < FULL_COVERAGE:
        notes.append(f"{100 * s.coverage:.0f} % of the window")
    return f"{s.mean:+.1f} %" + (f" ({', '.join(notes)})" if notes else "")


def report_bd(rows: list[compare.RDPoint], args: argparse.Namespace, cols: list[Window], path: Path) -> None:
    """The BD-rate table (printed, and as Markdown) and its per-image CSV."""
    per_window = {w.key: compare.bd_results_per_image(rows, args.reference, w.lo, w.hi, w.measure) for w in cols}
    means = {w.key: compare.mean_bd_rates(rows, args.reference, w.lo, w.hi, w.measure) for w in cols}
    codecs = sorted({c for m in means.values() for c in m}, key=list(compare.CODECS).index)
    without = [c for c in codecs if all(means[w.key][c].n_images == 0 for w in cols if c in means[w.key])]
    codecs = [c for c in codecs if c not in without]

    header = ["codec", "image"] + [f"{w.key}_{kind}" for w in cols for kind in ("bd_rate_pct", "coverage")]
    table: list[list[object]] = []
    for codec in codecs:
        images = sorted({i for w in cols for i in per_window[w.key].get(codec, {})})
        for image in images:
            cells: list[object] = []
            for w in cols:
                r = per_window[w.key].get(codec, {}).get(image)
                cells += [r.bd_rate, r.coverage] if r else [math.nan, 0.0]
            table.append([codec, image, *cells])
        mean_cells: list[object] = []
        for w in cols:
            s = means[w.key].get(codec)
            mean_cells += [s.mean, s.coverage] if s else [math.nan, 0.0]
        table.append([codec, "MEAN", *mean_cells])
    write_csv(path, header, table)

    n_images = len({r.image for r in rows})
    print(f"\nMean BD-rate against {args.reference} over {n_images} image{'s' if n_images != 1 else ''} (negative: smaller files at equal quality)")
    heads = ["codec", *[w.label for w in cols]]
    body = [[codec, *[bd_cell(means[w.key].get(codec)) for w in cols]] for codec in codecs]
    widths = [max(len(str(r[i])) for r in [heads, *body]) for i in range(len(heads))]
    for line in [heads, *body]:
        print("  " + "  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(line)))
    if without:
        print(f"  (no curve in any window: {', '.join(without)}: lossless, or out of range)")
    print("\nMarkdown:\n")
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for line in body:
        print("| " + " | ".join(line) + " |")


def plots(rows: list[compare.RDPoint], args: argparse.Namespace, name: str) -> list[Path]:
    where = args.plots or args.out
    where.mkdir(parents=True, exist_ok=True)
    n_images = len({r.image for r in rows})
    what = f"{name}, mean over {n_images} images" if n_images > 1 else name
    written = [where / f"{name}-rd.png"]
    compare.plot_rd(rows, written[0], args.lo, args.hi, title=f"RGB PSNR against rate ({what})",
                    bands=[tuple(args.low_window)])
    written.append(where / f"{name}-rd-ssim.png")
    compare.plot_rd(rows, written[-1], title=f"luma SSIM against rate ({what})", measure="ssim")
    return written


def report(rows: list[compare.RDPoint], args: argparse.Namespace, name: str) -> list[Path]:
    """Summary table and CSV, BD-rate table and CSV, plots; the paths written."""
    written = [args.out / f"{name}-summary.csv"]
    summary = summarize(rows)
    write_csv(written[0], SUMMARY_HEADER, summary)
    print_summary(summary)
    if any(r.codec == args.reference for r in rows):
        written.append(args.out / f"{name}-bd-rate.csv")
        report_bd(rows, args, windows(args), written[-1])
    try:
        written += plots(rows, args, name)
    except ImportError as exc:
        print(f"# no plot: {exc}")
    return written


def from_rows(args: argparse.Namespace) -> int:
    rows = read_rows(args.rows)
    if not rows:
        raise SystemExit(f"no points in {args.rows}")
    name = args.name or args.rows.name.removesuffix("-per-image.csv")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {len(rows)} points of {len({r.image for r in rows})} images from {args.rows}")
    written = report(rows, args, name)
    print(f"\n# wrote {', '.join(str(path) for path in written)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    print("$ " + shlex.join(sys.orig_argv if argv is None else ["benchmarks/rd.py", *argv]))
    print(f"# started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {os.getloadavg()[0]:.1f}")
    if args.rows is not None:
        return from_rows(args)
    import PIL

    import svdcodec

    print(f"# svdcodec {Path(svdcodec.__file__).parent} at {git_commit()} ({kernel_path()} kernels), Pillow {PIL.__version__}")
    codecs = select_codecs(args.codecs)
    if args.corpus is None:
        images = [str(sample_path())]
        print(f"# no --corpus: the bundled sample {images[0]} only")
    else:
        images = sorted(str(p) for p in args.corpus.glob("*.png"))
    if not images:
        raise SystemExit(f"no PNG images in {args.corpus}")
    name = args.name or (args.corpus.resolve().name if args.corpus else "sample")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"# {len(images)} images, codecs {','.join(codecs)}, jobs {args.jobs}, quick={args.quick}")

    # Slow codecs first so the pool does not end waiting on one long task.
    slow_first = sorted(codecs, key=lambda c: not c.startswith("svdi")
                        and c not in ("avif", "lecture"))
    tasks: list[Task] = [(path, codec, args.quick) for codec in slow_first for path in images]
    rows = run_all(tasks, args.jobs)

    written = [args.out / f"{name}-per-image.csv"]
    fields = list(asdict(rows[0])) if rows else []
    write_csv(written[0], fields, [list(asdict(r).values()) for r in rows])
    written += report(rows, args, name)
    print(f"\n# wrote {', '.join(str(path) for path in written)}")
    print(f"# wall time {time.perf_counter() - started:.1f} s (load average at the end {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
