"""svdi-compare: "how does it compare to JPEG?", answered on one image.

With no argument it runs on the sample photograph shipped in the package. It prints svdi at a
few qualities beside JPEG at the same PSNR and PNG's lossless size, then the BD-rate of every
codec against JPEG over 28-38 dB, and optionally draws the rate-distortion plot.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources

import numpy as np
from PIL import Image

from .. import FORMAT_VERSION, __version__
from ..evaluation import codecs as cmp

QUALITIES = (30, 50, 70, 90)


def sample_path() -> str:
    """Path of the bundled sample photo (a crop of Kodak image 5, free for any use)."""
    return str(resources.files("svdcodec") / "data" / "sample.png")


def _load(path: str) -> np.ndarray:
    with Image.open(sys.stdin.buffer if path == "-" else path) as im:
        im.load()
        return np.asarray(im.convert("RGB" if im.mode not in ("L", "RGB") else im.mode))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svdi-compare",
        description="File size and PSNR of .svdi against JPEG, WebP, AVIF, JPEG 2000 and PNG "
                    "on one image (default: the bundled sample photo).")
    parser.add_argument("image", nargs="?", help="an image Pillow can read (default: sample)")
    parser.add_argument("-q", "--qualities", default=",".join(map(str, QUALITIES)),
                        help="svdi qualities for the side-by-side table (default %(default)s)")
    parser.add_argument("--plot", metavar="PNG", help="draw the rate-distortion plot here "
                                                      "(needs matplotlib)")
    parser.add_argument("--no-bd", action="store_true",
                        help="skip the BD-rate sweep of all codecs (faster)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__} (.svdi format version {FORMAT_VERSION})")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list every point")
    parser.add_argument("--quiet", action="store_true", help="print only the tables")
    return parser


def side_by_side(img: np.ndarray, qualities: Sequence[int]) -> list[dict[str, object]]:
    """svdi (default and plain layouts) at each quality, and JPEG at the same PSNR."""
    rows: list[dict[str, object]] = []
    for q in qualities:
        for layout in ("auto", "plain"):
            n, decoded = cmp.run_svdi(img, q, layout)
            db = cmp.psnr(img, decoded)
            jpeg = cmp.jpeg_at_psnr(img, db)
            rows.append({"codec": "svdi" if layout == "auto" else "svdi-plain", "quality": q,
                         "bytes": n, "bpp": cmp.bpp(n, img), "psnr": db,
                         "jpeg_quality": jpeg.quality if jpeg else None,
                         "jpeg_bytes": jpeg.n_bytes if jpeg else None,
                         "size_vs_jpeg": n / jpeg.n_bytes if jpeg else None})
    return rows


def _table(rows: list[dict[str, object]], png_bytes: int, img: np.ndarray) -> str:
    lines = [f"{'codec':<11} {'q':>3} {'bytes':>9} {'bpp':>6} {'PSNR dB':>8}   "
             f"{'JPEG same PSNR':>14} {'svdi/JPEG':>9}"]
    for r in rows:
        jpeg = (f"{r['jpeg_bytes']:>9} (q{r['jpeg_quality']})" if r["jpeg_bytes"]
                else f"{'unreachable':>14}")
        ratio = f"{r['size_vs_jpeg']:.2f}" if r["size_vs_jpeg"] else "-"
        lines.append(f"{r['codec']:<11} {r['quality']:>3} {r['bytes']:>9} {r['bpp']:>6.3f} "
                     f"{r['psnr']:>8.2f}   {jpeg:>14} {ratio:>9}")
    lines.append(f"{'png':<11} {'':>3} {png_bytes:>9} {cmp.bpp(png_bytes, img):>6.3f} "
                 f"{'lossless':>8}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        qualities = [int(q) for q in args.qualities.split(",")]
        if not all(1 <= q <= 100 for q in qualities):
            raise ValueError
    except ValueError:
        parser.error(f"--qualities must be integers in 1..100, got {args.qualities!r}")
    path = args.image or sample_path()
    try:
        img = _load(path)
    except (OSError, ValueError) as exc:
        print(f"svdi-compare: {path}: {exc}", file=sys.stderr)
        return 1
    rows = side_by_side(img, qualities)
    png_bytes, _ = cmp.run_png(img)
    report: dict[str, object] = {"image": path, "width": img.shape[1], "height": img.shape[0],
                                 "side_by_side": rows, "png_bytes": png_bytes}
    points: list[cmp.RDPoint] = []
    if not args.no_bd or args.plot:
        points = cmp.sweep_image(img, image=path)
        report["bd_rate_vs_jpeg_28_38dB"] = {
            codec: s.mean for codec, s in cmp.mean_bd_rates(points).items()}
    if args.plot:
        try:
            cmp.plot_rd(points, args.plot, lo=28, hi=38, title=f"Rate–distortion: {path}")
        except ImportError as exc:
            print(f"svdi-compare: {exc}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(report))
        return 0
    if not args.quiet:
        print(f"{path}: {img.shape[1]}x{img.shape[0]}, {img.nbytes} raw bytes")
    print(_table(rows, png_bytes, img))
    if "bd_rate_vs_jpeg_28_38dB" in report:
        print("\nBD-rate against JPEG over 28-38 dB RGB PSNR (negative: smaller than JPEG):")
        for codec, bd in report["bd_rate_vs_jpeg_28_38dB"].items():  # type: ignore[union-attr]
            print(f"  {codec:<11} {bd:+7.1f}%")
    if args.verbose:
        for p in points:
            print(f"  {p.codec:<11} {p.setting!s:>5} {p.n_bytes:>9} {p.bpp:.3f} bpp "
                  f"{p.psnr:.2f} dB")
    if args.plot and not args.quiet:
        print(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
