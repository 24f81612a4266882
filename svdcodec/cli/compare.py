"""svdi-compare: "how does it compare to JPEG and PNG?", answered on one image.

With no argument it runs on the sample photograph shipped in the package. It prints svdi at a
few qualities beside the smallest JPEG of the same PSNR and PNG's lossless size, then every
codec's average size difference to JPEG at equal PSNR (the BD-rate over 28-38 dB), and ends
with a one-line answer. It optionally draws the rate-distortion plot. On an image up to
--max-pixels (default: a Kodak photo's 768 x 512) the work takes seconds to a minute or two, so
on a terminal it shows which step it is on (on stderr; --quiet hides it). A larger image (a
phone's 12 MP photo would take about twenty CPU minutes) is compared on its centre crop of that
many pixels, said up front with the time to expect, plus svdi at the default quality against
JPEG on the whole image, which is cheap.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from contextlib import nullcontext
from importlib import resources
from pathlib import Path
from typing import TextIO, cast

import numpy as np
import PIL
from PIL import Image, ImageOps, UnidentifiedImageError

from ..evaluation import codecs as cmp
from ..evaluation.codecs import CODEC_LABELS
from ..format import SIGNATURE
from ..pillow_plugin import to_8_bits
from . import deep_images
from .photos import EXIF_ORIENTATION
from .tools import NPY_MAGIC, VersionAction, describe_error, unwritable_plot
from .wildcards import expand_one

QUALITIES = (30, 50, 75, 90)
DEFAULT_QUALITY = 75  # svdcodec.encode's default, which the PNG comparison is made against
#: Larger images are compared on a centre crop of this many pixels: a Kodak photo's 768 x 512,
#: the size of the README's figures; the comparison's cost grows with the pixels (`SECONDS_*`),
#: so a phone photo compared whole would keep a user waiting for many minutes.
MAX_PIXELS = 768 * 512
#: CPU seconds of each part, (fixed, per megapixel), fitted to runs on the bundled sample,
#: kodim05, kodim23 and a 12 MP photo on an idle 2-core x86-64 host (docs/performance.md,
#: "svdi-compare on a large photo"; the same runs at a load of 3-9 took about 4 x the CPU
#: time): only for saying up front roughly how long it takes.
SECONDS_TABLE = (0.5, 4.2)  # the four qualities of the table, and PNG
SECONDS_SWEEP = (0.8, 25.0)
SECONDS_EVERY_TOOL = (0.1, 2.5)
SECONDS_WHOLE_IMAGE_ROW = (0.3, 0.83)

#: The svdi-encode options of "svdi, every tool" (svdi-best).
EVERY_TOOL = "--effort 2 --aq --restore"
EXPLAINED = {
    "svdi-best": f"svdi with effort=2, aq=True and restore=True ({EVERY_TOOL}): "
                 "smaller files, a slower encode and decode",
    "svdi-plain": "svdi with each colour plane stored as one whole matrix, as in the textbook "
                  "demo (--layout plain)",
    "lecture": "the demo of the linear-algebra course: np.linalg.svd of each RGB channel, "
               "the factors kept as float16 and zstd-compressed",
}


def sample_path() -> str:
    """Path of the bundled sample photo (a crop of Kodak image 5, free for any use)."""
    return str(resources.files("svdcodec") / "data" / "sample.png")


#: EXIF orientations other than 1 (stored upright): mirrored or turned
TURNED = range(2, 9)


def load_image(path: str) -> tuple[np.ndarray, list[str]]:
    """The 8-bit grey or RGB image every codec of the comparison takes (JPEG and WebP have 8
    bits and no alpha), upright as a viewer shows it (a phone's EXIF orientation applied, so
    that the centre crop and the side-by-side are of the photo as taken), and what it took to
    get there: a note for each change, never silent."""
    with open(path, "rb") if path != "-" else nullcontext(sys.stdin.buffer) as f:
        raw = f.read()
    if raw.startswith(NPY_MAGIC):
        raise ValueError("a numpy array: svdi-compare compares images with JPEG (8-bit grey or "
                         "colour); svdi-encode stores arrays")
    try:
        opened = Image.open(io.BytesIO(raw))
    except UnidentifiedImageError:
        raise ValueError("not an image file in a format Pillow can read") from None
    with opened as stored:
        stored.load()
        notes = []
        if raw.startswith(SIGNATURE):
            notes.append("an .svdi file: compared as decoded, which svdi codes again at little "
                         "cost (the fitted basis finds its integers again), so the figures "
                         "favour svdi; compare the original instead")
        orientation = stored.getexif().get(EXIF_ORIENTATION, 1)
        # (Pillow applies a TIFF's orientation as it loads it and drops the tag: no second turn)
        im = ImageOps.exif_transpose(stored) if orientation in TURNED else stored
        if im is not stored:
            notes.append(f"EXIF orientation {orientation}: compared upright, as viewers show "
                         f"it ({stored.width}x{stored.height} stored, {im.width}x{im.height} "
                         f"upright)")
        deep = deep_images.deep_format(raw, im)
        if deep is not None:  # Pillow reads these at 8 bits itself
            notes.append(f"a {deep}: compared at 8 bits (as Pillow reads it)")
        if im.mode in ("I;16", "I;16L", "I;16B"):
            notes.append("16-bit grey: compared at 8 bits (samples rounded, v * 255 / 65535)")
            return to_8_bits(np.asarray(im).astype(np.uint16)), notes
        if im.mode in ("L", "RGB"):
            return np.asarray(im), notes
        if im.mode in ("I", "F"):
            raise ValueError(f"mode {im.mode} ({'32-bit integer' if im.mode == 'I' else 'float'}"
                             " samples): svdi-compare compares 8-bit images; svdi-encode "
                             "stores these samples")
        if "A" in im.mode or "transparency" in im.info:
            notes.append("alpha dropped: the comparison is of the colour (JPEG has no alpha)")
        if im.mode not in ("LA", "P", "PA", "RGBA", "RGBa", "RGBX"):
            notes.append(f"mode {im.mode} converted to RGB")
        grey = im.mode in ("LA", "La")
        return np.asarray(im.convert("L" if grey else "RGB")), notes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="svdi-compare",
        description="File size and PSNR of .svdi against JPEG, WebP, AVIF, JPEG 2000 and PNG "
                    "on one image (default: the bundled sample photo).")
    parser.add_argument("image", nargs="?", help="an image Pillow can read (default: sample)")
    parser.add_argument("-q", "--qualities", default=",".join(map(str, QUALITIES)),
                        help="svdi qualities for the side-by-side table (default %(default)s)")
    parser.add_argument("--plot", metavar="PNG", help="draw the rate-distortion plot of the "
                        "sweep here (needs matplotlib; not with --no-bd)")
    parser.add_argument("--no-bd", action="store_true",
                        help="skip the sweep of all codecs at many settings (faster)")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                        help="compare an image of more pixels on its centre crop of about N "
                             "pixels, same aspect ratio (default %(default)s, 768 x 512; 0: the "
                             "whole image, which takes 35-120 CPU seconds per megapixel). A "
                             "crop, not a downscale: a downscaled photo is smoother and denser "
                             "in detail than the original, and its noise and sharpness are "
                             "no longer the camera's, so codecs would be compared on another "
                             "picture; a crop keeps the original's pixels as they are. svdi at "
                             "the default quality and JPEG of the same PSNR are also measured "
                             "on the whole image")
    parser.add_argument("--every-tool", action="store_true",
                        help="also sweep svdi with every tool on (--effort 2 --aq --restore; "
                             "a slower encode)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--version", action=VersionAction)
    parser.add_argument("-v", "--verbose", action="store_true", help="also list every point")
    parser.add_argument("--quiet", action="store_true",
                        help="print only the tables and the answer, no explanations or progress")
    return parser


class StepCounter:
    """'[step/total] what' on one line of a terminal, rewritten as each step starts."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total, self.step, self.stream = total, 0, stream
        self.enabled = enabled and stream.isatty()

    def start(self, what: str) -> None:
        self.step += 1
        if self.enabled:
            self.stream.write(f"\rsvdi-compare: [{self.step}/{self.total}] {what}...\x1b[K")
            self.stream.flush()

    def clear(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def side_by_side(img: np.ndarray, qualities: Sequence[int],
                 progress: StepCounter | None = None) -> list[dict[str, object]]:
    """svdi (default and plain layouts) at each quality, and JPEG at the same PSNR."""
    rows: list[dict[str, object]] = []
    for q in qualities:
        for layout in ("auto", "plain"):
            codec = "svdi" if layout == "auto" else "svdi-plain"
            if progress:
                progress.start(f"{CODEC_LABELS[codec]} at quality {q}, and JPEG at its PSNR")
            rows.append(svdi_row(img, q, layout))
    return rows


def svdi_row(img: np.ndarray, quality: int, layout: str) -> dict[str, object]:
    """svdi at one quality and layout, beside the smallest JPEG of its PSNR: a table row."""
    n, decoded = cmp.run_svdi(img, quality, layout)
    db = cmp.psnr(img, decoded)
    jpeg = cmp.jpeg_at_psnr(img, db)
    return {"codec": "svdi" if layout == "auto" else "svdi-plain", "quality": quality,
            "bytes": n, "bpp": cmp.bpp(n, img),
            # exact (a constant image is, by default): None in strict JSON
            "psnr": db if math.isfinite(db) else None,
            "jpeg_quality": jpeg.quality if jpeg else None,
            "jpeg_bytes": jpeg.n_bytes if jpeg else None,
            "size_vs_jpeg": n / jpeg.n_bytes if jpeg else None}


def sweep(img: np.ndarray, image: str, progress: StepCounter | None = None,
          every_tool: bool = False) -> list[cmp.RDPoint]:
    """Every available lossy codec at its full list of settings, one codec per step.

    PNG is left out: it is lossless, one size with no curve, already in the table.
    """
    points: list[cmp.RDPoint] = []
    for codec in sweep_codecs(every_tool):
        if progress:
            n = len(cmp.CODECS[codec].settings)
            progress.start(f"{CODEC_LABELS[codec]} at {n} settings, for the average size "
                           "difference")
        points += cmp.sweep_image(img, [codec], image=image)
    return points


#: Codecs of the benchmarks (benchmarks/rd.py) that the one-image comparison leaves out.
BENCHMARK_ONLY = ("png", "svdi-nodeblock", "svdi-deblock", "svdi-restore", "svdi-effort2",
                  "svdi-smallest", "svdi-aq", "svdi-deblock-aq", "svdi-smallest-aq", "svdi-best")


def sweep_codecs(every_tool: bool = False) -> list[str]:
    codecs = [c for c in cmp.available_codecs() if c not in BENCHMARK_ONLY]
    return codecs + ["svdi-best"] if every_tool else codecs


def centre_crop(height: int, width: int, max_pixels: int) -> tuple[int, int, int, int] | None:
    """(top, left, crop height, crop width) of the centre crop of at most ``max_pixels`` pixels
    with about the image's aspect ratio; None if the image is not larger (or max_pixels is 0).

    The corner is rounded down to a multiple of 8, so that a JPEG original's 8 x 8 blocks keep
    their place on the codecs' patch and block grids, as they have in the whole image.
    """
    if max_pixels <= 0 or height * width <= max_pixels:
        return None
    crop_w = max(1, min(width, max_pixels, math.isqrt(max_pixels * width // height)))
    crop_h = max(1, min(height, max_pixels // crop_w))
    crop_w = min(width, max_pixels // crop_h)  # a very wide image: one row, max_pixels long
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return top - top % 8, left - left % 8, crop_h, crop_w


def expected_seconds(pixels: int, compared_pixels: int, with_sweep: bool, every_tool: bool,
                     n_qualities: int) -> float:
    """Rough CPU seconds of the whole run, from the pixel counts (constants above)."""
    def cost(part: tuple[float, float], megapixels: float) -> float:
        return part[0] + part[1] * megapixels

    compared = compared_pixels / 1e6
    seconds = cost(SECONDS_TABLE, compared) * n_qualities / len(QUALITIES)
    if with_sweep:
        seconds += cost(SECONDS_SWEEP, compared)
    if with_sweep and every_tool:
        seconds += cost(SECONDS_EVERY_TOOL, compared)
    if compared_pixels < pixels:
        seconds += cost(SECONDS_WHOLE_IMAGE_ROW, pixels / 1e6)
    return seconds


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 5400:
        return f"{round(seconds / 60):.0f} min"
    return f"{seconds / 3600:.1f} h"


def _matplotlib_missing() -> str | None:
    """Why --plot cannot draw (before any work is done), or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        return f"--plot needs matplotlib ({exc}): pip install matplotlib, or leave out --plot"
    return None


def _jpeg_cell(row: dict[str, object]) -> str:
    if row["jpeg_bytes"] is None:
        return "JPEG can't reach it"
    return f"{row['jpeg_bytes']} (q{row['jpeg_quality']})"


def _psnr_cell(db: object) -> str:
    return "exact" if db is None else f"{db:.2f}"


def _table(rows: list[dict[str, object]], png_bytes: int, img: np.ndarray) -> str:
    lines = [(f"{'codec':<18} {'quality':>7} {'bytes':>9} {'bpp':>6} {'PSNR dB':>8}   "
             f"{'JPEG same PSNR':>19} {'svdi/JPEG':>9}")]
    for r in rows:
        ratio = f"{r['size_vs_jpeg']:.2f}" if r["size_vs_jpeg"] else "-"
        lines.append(f"{CODEC_LABELS[str(r['codec'])]:<18} {r['quality']:>7} {r['bytes']:>9} "
                     f"{r['bpp']:>6.3f} {_psnr_cell(r['psnr']):>8}   {_jpeg_cell(r):>19} "
                     f"{ratio:>9}")
    lines.append(f"{'PNG (lossless)':<18} {'':>7} {png_bytes:>9} {cmp.bpp(png_bytes, img):>6.3f} "
                 f"{'exact':>8}")
    return "\n".join(lines)


TABLE_NOTES = """\
  bytes: size of the file; bpp: bits per pixel (bytes x 8 / pixels).
  PSNR: how close the decoded picture is to the original, in dB; higher is closer (around
    30 dB compression shows, above 40 dB it is hard to see).
  JPEG same PSNR: the smallest JPEG (Pillow, libjpeg quality q, its default 4:2:0 chroma)
    at least that close to the original; "can't reach it": not even quality 100 is that close
    (with full-size chroma, subsampling=0, JPEG goes higher).
  svdi/JPEG: svdi's size divided by that JPEG's; below 1 means svdi is smaller."""


def _bd_lines(bd: dict[str, float | None]) -> list[str]:
    ranked = sorted(((v, c) for c, v in bd.items() if v is not None))
    width = max(len(CODEC_LABELS[c]) for _, c in ranked) if ranked else 0
    return [f"  {CODEC_LABELS[c]:<{width}} {v:+8.1f} %" for v, c in ranked]


def _change(ratio: float) -> str:
    """'12.3 % smaller' / '4.0 % larger' / 'the same size' for a size ratio svdi/other."""
    change = 100.0 * (ratio - 1.0)
    if abs(change) < 0.05:
        return "the same size"
    return f"{abs(change):.1f} % {'smaller' if change < 0 else 'larger'}"


def _percent(ratio: float) -> str:
    """`_change` before "than" or "as": '12.3 % smaller than', 'the same size as'."""
    change = _change(ratio)
    return f"{change} {'as' if change == 'the same size' else 'than'}"


def answer(rows: list[dict[str, object]], png_bytes: int,
           bd: dict[str, float | None] | None, where: str = "this image") -> str:
    """The one-line answer to "how does it compare to JPEG and PNG?" on this image.

    Against JPEG: svdi's BD-rate when the sweep ran and gave one, and svdi's with every tool
    on where --every-tool swept it, else the geometric mean of the table's size ratios (the
    codecs "smaller still" are those smaller than svdi's smallest figure). Against PNG: PNG's
    size over svdi's at the default quality (or the table's quality nearest to it).
    """
    svdi_rows = [r for r in rows if r["codec"] == "svdi"]
    svdi_bd = bd.get("svdi") if bd else None
    if bd and svdi_bd is not None:
        others = ("jpeg", "svdi", "svdi-plain", "svdi-best", "lecture")
        best_bd = bd.get("svdi-best")
        smallest = svdi_bd if best_bd is None else min(svdi_bd, best_bd)
        better = [CODEC_LABELS[c]
                  for v, c in sorted((v, c) for c, v in bd.items() if v is not None)
                  if c not in others and v < smallest]
        jpeg = (f"svdi files are {_percent(1 + svdi_bd / 100)} JPEG at the same PSNR on "
                f"{where} (average over 28-38 dB)")
        if best_bd is not None:
            jpeg += f", {_change(1 + best_bd / 100)} with every tool on ({EVERY_TOOL})"
        if better:
            jpeg += f"; {_join(better)} {'is' if len(better) == 1 else 'are'} smaller still"
    else:
        matched = [r for r in svdi_rows if r["size_vs_jpeg"] is not None]
        if matched:
            ratios = [cast(float, r["size_vs_jpeg"]) for r in matched]
            mean = math.exp(sum(map(math.log, ratios)) / len(ratios))
            qualities = _join([str(r["quality"]) for r in matched])
            over = (f"at quality {qualities}" if len(matched) == 1 else
                    f"geometric mean over qualities {qualities}")
            jpeg = f"svdi files are {_percent(mean)} JPEG at the same PSNR on {where} ({over})"
        else:
            jpeg = f"JPEG cannot match svdi's PSNR at any of these qualities on {where}"
    near = min(svdi_rows, key=lambda r: abs(cast(int, r["quality"]) - DEFAULT_QUALITY))
    png = png_bytes / cast(int, near["bytes"])
    size = f"{png:.1f}x the size of" if png >= 1 else f"smaller here, by {1 / png:.1f}x, than"
    return f"{jpeg}. PNG (lossless) is {size} svdi at quality {near['quality']}."


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.image = expand_one(parser, args.image)
    try:
        qualities = [int(q) for q in args.qualities.split(",")]
        if not all(1 <= q <= 100 for q in qualities):
            raise ValueError
    except ValueError:
        parser.error(f"--qualities must be integers in 1..100, got {args.qualities!r}")
    if args.plot and args.no_bd:
        parser.error("--plot draws the curves of the sweep that --no-bd skips: leave out one "
                     "of them")
    if args.max_pixels < 0:
        parser.error(f"--max-pixels must be 0 (no limit) or more, got {args.max_pixels}")
    if args.plot and (why := _matplotlib_missing()):
        print(f"svdi-compare: {why}", file=sys.stderr)
        return 1
    if args.plot and (why := unwritable_plot(args.plot)):
        parser.error(why)
    path = args.image or sample_path()
    try:
        img, notes = load_image(path)
    except (OSError, ValueError) as exc:
        print(f"svdi-compare: {path}: {describe_error(exc)}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"svdi-compare: {path}: {note}", file=sys.stderr)
    with_sweep = not args.no_bd
    missing = [CODEC_LABELS.get(name, name) for name, codec in cmp.CODECS.items()
               if name not in BENCHMARK_ONLY and not codec.available()]
    if missing and with_sweep and not args.quiet:  # (a Pillow without AVIF: before 11.2)
        print(f"svdi-compare: not compared: {_join(missing)}, which this Pillow "
              f"{PIL.__version__} does not write", file=sys.stderr)
    whole = img
    height, width = whole.shape[:2]
    crop = centre_crop(height, width, args.max_pixels)
    if crop is not None:
        top, left, crop_h, crop_w = crop
        img = whole[top:top + crop_h, left:left + crop_w]
    seconds = expected_seconds(whole.shape[0] * whole.shape[1], img.shape[0] * img.shape[1],
                               with_sweep, args.every_tool, len(qualities))
    size = f"{width}x{height} ({width * height / 1e6:.1f} MP)"
    if crop is not None:  # a change to what is compared: said even with --quiet, as notes are
        whole_s = expected_seconds(width * height, width * height, with_sweep, args.every_tool,
                                   len(qualities))
        print(f"svdi-compare: {path}: {size} is more than --max-pixels {args.max_pixels}: "
              f"compared on its centre {img.shape[1]}x{img.shape[0]} crop (x {crop[1]}, "
              f"y {crop[0]}), and svdi at quality {DEFAULT_QUALITY} against JPEG on the whole "
              f"image; about {_duration(seconds)} of CPU on an idle machine (the whole "
              f"image: --max-pixels 0, about {_duration(whole_s)})", file=sys.stderr)
    elif seconds >= 120 and not args.quiet:  # --max-pixels 0 or raised, on a large image
        print(f"svdi-compare: {path}: {size}: about {_duration(seconds)} of CPU on an idle "
              "machine "
              f"(--max-pixels {MAX_PIXELS} compares a centre crop"
              f"{', --no-bd skips the sweep' if with_sweep else ''})", file=sys.stderr)
    progress = StepCounter(2 * len(qualities) + 1 + (crop is not None)
                           + (len(sweep_codecs(args.every_tool)) if with_sweep else 0),
                           sys.stderr, not args.quiet)
    full: dict[str, object] | None = None
    try:
        if crop is not None:
            progress.start(f"svdi at quality {DEFAULT_QUALITY} on the whole image, and JPEG at "
                           "its PSNR")
            full = svdi_row(whole, DEFAULT_QUALITY, "auto")
        rows = side_by_side(img, qualities, progress)
        progress.start("PNG, lossless")
        png_bytes, _ = cmp.run_png(img)
        points = sweep(img, path, progress, args.every_tool) if with_sweep else []
    finally:
        progress.clear()
    report: dict[str, object] = {"image": path, "width": width, "height": height,
                                 "side_by_side": rows, "png_bytes": png_bytes}
    if crop is not None:
        report["crop"] = {"top": crop[0], "left": crop[1], "height": crop[2], "width": crop[3]}
        report["whole_image"] = full
    bd: dict[str, float | None] | None = None
    if with_sweep:
        # A codec whose curve does not overlap JPEG's in 28-38 dB has no BD-rate: None, not NaN.
        bd = {codec: s.mean if math.isfinite(s.mean) else None
              for codec, s in cmp.mean_bd_rates(points).items()}
        report["bd_rate_vs_jpeg_28_38dB"] = bd
    report["answer"] = answer(rows, png_bytes, bd,
                              "this image" if crop is None else "this image's centre crop")
    if args.plot:
        # the file's name: a path (the bundled sample's, in site-packages) ran off the figure
        title = f"Rate–distortion: {Path(path).name}" + (" (centre crop)" if crop is not None
                                                         else "")
        cmp.plot_rd(points, args.plot, lo=28, hi=38, title=title)
    if args.json:
        print(json.dumps(report))
        return 0
    _print_report(args, path, whole, img, rows, png_bytes, bd, points, full)
    print(f"\n{report['answer']}")
    return 0


def _explain(codec: str) -> str:
    return textwrap.fill(f"{CODEC_LABELS[codec]}: {EXPLAINED[codec]}.", 96, initial_indent="  ",
                         subsequent_indent="    ")


def _print_report(args: argparse.Namespace, path: str, whole: np.ndarray, img: np.ndarray,
                  rows: list[dict[str, object]], png_bytes: int,
                  bd: dict[str, float | None] | None, points: list[cmp.RDPoint],
                  full: dict[str, object] | None) -> None:
    cropped = img.shape != whole.shape
    if not args.quiet:
        what = " (the sample photo shipped with svdcodec)" if not args.image else ""
        print(f"{path}: {whole.shape[1]}x{whole.shape[0]}, {whole.nbytes} raw bytes{what}")
        if cropped:
            print(f"compared on its centre {img.shape[1]}x{img.shape[0]} crop (more pixels than "
                  f"--max-pixels {args.max_pixels}; --max-pixels 0 compares the whole image)")
        print("\nsvdi at a few qualities, beside the smallest JPEG of the same PSNR"
              f"{' (on the crop)' if cropped else ''}:")
    print(_table(rows, png_bytes, img))
    if not args.quiet:
        print(TABLE_NOTES)
        print(_explain("svdi-plain"))
    if full is not None:
        jpeg = ("JPEG can't reach that PSNR" if full["jpeg_bytes"] is None else
                f"the smallest JPEG of that PSNR {full['jpeg_bytes']} bytes (q"
                f"{full['jpeg_quality']}), svdi/JPEG {full['size_vs_jpeg']:.2f}")
        print(f"\nOn the whole image: svdi at quality {full['quality']} {full['bytes']} bytes "
              f"({full['bpp']:.3f} bpp, PSNR {_psnr_cell(full['psnr'])} dB);\n  {jpeg}")
    if bd is not None:
        print("\nFile size against JPEG at equal PSNR, averaged over 28-38 dB (the BD-rate;\n"
              "negative: smaller files than JPEG's):" if not args.quiet else "\nBD-rate:")
        print("\n".join(_bd_lines(bd)))
        missing = [CODEC_LABELS[c] for c, v in bd.items() if v is None]
        if missing:
            print(f"  ({_join(missing)}: no PSNR range shared with JPEG in 28-38 dB)")
        for codec in ("svdi-best", "lecture"):
            if codec in bd and not args.quiet:
                print(_explain(codec))
    if args.verbose:
        for p in points:
            print(f"  {CODEC_LABELS[p.codec]:<18} {p.setting!s:>5} {p.n_bytes:>9} {p.bpp:.3f} bpp "
                  f"{p.psnr:.2f} dB")
    if args.plot and not args.quiet:
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    sys.exit(main())
