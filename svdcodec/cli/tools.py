"""Command-line tools: svdi-encode, svdi-decode, svdi-info and svdi-compare.

Conventions follow cwebp/cjxl/avifenc: ``svdi-encode in.png -o out.svdi -q 75``, "-" for
standard input/output, ``-d OUTDIR`` for several files. Exit status: 0 success, 1 data or I/O
error (one line per failure, no traceback), 2 usage error. Outputs go through
:mod:`svdcodec.safe_io`, so an existing file or the input itself is never overwritten by
accident and a failed run leaves no partial file.

Each file is handled by a top-level ``_<tool>_one(job) -> (ok, message)`` that does not print,
so the per-file work can later be mapped over a process pool unchanged.

``python -m svdcodec encode|decode|info|compare ...`` runs the same tools.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import struct
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import FORMAT_VERSION, __version__
from .. import format as container
from ..decoder import decode
from ..encoder import encode, encode_options
from ..modes import PILLOW_MODES
from ..runtime.threads import cores
from . import batch
from .info import info_report, info_text
from .safe_io import (
    STDIO,
    UnsafeOutput,
    check_output,
    display,
    read_input,
    write_output,
)

#: Errors that mean "this file is bad or cannot be read/written", reported in one line.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, EOFError, MemoryError, struct.error, Image.DecompressionBombError)
LAYOUTS = ("auto", "plain", "patch", "patch4", "patch8", "patch16")
NPY_MAGIC = b"\x93NUMPY"

Result = tuple[bool, str]


# ----------------------------------------------------------------------------- shared helpers


def _describe(exc: BaseException) -> str:
    """One-line description of a data or I/O error, without repeating the file name."""
    if isinstance(exc, MemoryError):
        return "out of memory"
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, UnsafeOutput):
        return exc.strerror
    return str(exc) or type(exc).__name__


def _number(kind: type, low: float, high: float = math.inf, *,
            open_low: bool = False) -> Callable[[str], Any]:
    """An argparse type that parses `kind` and checks the range, so bad values exit with 2."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {kind.__name__} value: {text!r}") from None
        if math.isnan(value) or value > high or (value <= low if open_low else value < low):
            bounds = f"{'(' if open_low else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"{text} is outside {bounds}")
        return value
    return parse


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s (svdcodec {__version__}, "
                                f".svdi format version {FORMAT_VERSION})")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", action="store_true", help="say more about each file")
    loud.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def _add_outputs(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help='input file, "-" for stdin')
    parser.add_argument("-o", "--output", metavar="FILE",
                        help=f'output file, "-" for stdout (default: input with {default})')
    parser.add_argument("-d", "--outdir", metavar="DIR",
                        help="write each output into DIR (for several inputs)")
    parser.add_argument("-f", "--force", action="store_true",
                        help="overwrite existing output files")
    parser.add_argument("-j", "--jobs", type=_number(int, 1), metavar="N",
                        default=cores(),
                        help="files processed in parallel (default: all cores, %(default)s)")


def _destinations(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  suffix: str) -> list[str]:
    """Output name of every input; usage errors exit with status 2."""
    inputs: list[str] = args.inputs
    if args.output is not None and args.outdir is not None:
        parser.error("give -o or -d, not both")
    if args.output is not None and len(inputs) > 1:
        parser.error("-o takes one input; use -d DIR for several")
    if STDIO in inputs and (len(inputs) > 1 or args.outdir is not None):
        parser.error('standard input ("-") must be the only input and cannot go with -d')
    if args.output is not None:
        dests = [args.output]
    elif args.outdir is not None:
        dests = [os.path.join(args.outdir, Path(src).stem + suffix) for src in inputs]
    else:
        dests = [STDIO if src == STDIO else str(Path(src).with_suffix(suffix)) for src in inputs]
    if STDIO in dests and sys.stdout.isatty():
        parser.error("refusing to write binary data to a terminal; use -o FILE or redirect")
    return dests


def _collisions(inputs: Sequence[str], dests: Sequence[str]) -> dict[int, str]:
    """Inputs whose output another input already writes (e.g. a/x.png, b/x.png with -d)."""
    first: dict[str, str] = {}
    clashes = {}
    for i, (src, dest) in enumerate(zip(inputs, dests)):
        key = os.path.normcase(os.path.abspath(dest))
        if dest != STDIO and key in first:
            clashes[i] = f"{display(src)}: output {dest} is also written from {first[key]}"
        first.setdefault(key, display(src))
    return clashes


def _make_outdir(prog: str, outdir: str | None) -> bool:
    if outdir is None:
        return True
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        print(f"{prog}: {outdir}: {_describe(exc)}", file=sys.stderr)
        return False
    return True


def _report(prog: str, results: Iterable[Result], quiet: bool, failed: int = 0,
            out: Any = None) -> int:
    """Print every result (successes to `out`, default stderr) and return the exit status."""
    for ok, message in results:
        if not ok:
            failed += 1
            print(f"{prog}: {message}", file=sys.stderr)
        elif message and not quiet:
            print(message, file=out or sys.stderr)
    return 1 if failed else 0


def _batch(fn: Callable[[Any], Result], jobs: Sequence[Any], args: argparse.Namespace
           ) -> Iterable[Result]:
    """Run per-file jobs, in a process pool when there are several files."""
    names = [display(job.src) for job in jobs]
    return batch.run(fn, jobs, args.jobs, names, batch.progress_for(len(jobs), args.quiet))


def _run(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
         argv: Sequence[str] | None) -> int:
    """Parse and run, turning argparse exits, ^C and a closed pipe into exit statuses."""
    try:
        return body(parser.parse_args(argv))
    except SystemExit as exc:  # -h and --version (0), usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `svdi-info *.svdi | head -1`
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 1


def _load_pixels(data: bytes) -> np.ndarray | Image.Image:
    """An input image: a .npy array or anything Pillow reads (including .svdi)."""
    if data.startswith(NPY_MAGIC):
        return np.load(io.BytesIO(data), allow_pickle=False)
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image file in a format Pillow can read") from None
    image.load()
    return image


def _mode_name(dtype: np.dtype, channels: int) -> str:
    mode = PILLOW_MODES.get((np.dtype(dtype), channels))
    return mode or f"{channels}x{np.dtype(dtype)} (numpy only)"


# ----------------------------------------------------------------------------- svdi-encode


@dataclass(frozen=True)
class EncodeJob:
    src: str
    dest: str
    options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    verbose: bool = False


def _encode_summary(job: EncodeJob, data: bytes) -> str:
    header, planes = container.read_headers(io.BytesIO(data))
    pixels = header.width * header.height
    raw = pixels * header.channels * header.dtype.itemsize
    text = (f"{display(job.src)} -> {display(job.dest, '<stdout>')}: "
            f"{header.width}x{header.height} {_mode_name(header.dtype, header.channels)}, "
            f"{len(data)} bytes, "
            f"{8 * len(data) / pixels:.3f} bpp, {raw / len(data):.2f}:1")
    if job.verbose:
        ranks = "/".join(str(p.rank) for p in planes)
        layouts = "/".join("plain" if p.layout == container.LAYOUT_PLAIN else f"patch{p.patch}"
                           for p in planes)
        text += f" (layout {layouts}, ranks {ranks}, step {planes[0].step:.3g})"
    return text


def _encode_one(job: EncodeJob) -> Result:
    """Encode one file; never raises for bad data, returns (ok, message) instead."""
    try:
        if job.dest != STDIO:
            check_output(job.dest, [job.src], force=job.force)  # fail before the slow part
        data = encode(_load_pixels(read_input(job.src)), **job.options)
        write_output(job.dest, data, [job.src], force=job.force)
        return True, _encode_summary(job, data)
    except DATA_ERRORS as exc:
        return False, f"{display(job.src)}: {_describe(exc)}"


def _encode_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-encode", "Encode images (anything Pillow reads, or .npy) to .svdi.")
    _add_outputs(parser, "suffix .svdi")
    parser.add_argument("-q", "--quality", type=_number(float, 1, 100), metavar="Q",
                        help="quality 1..100 (default 75)")
    parser.add_argument("--rank", type=_number(int, 1), metavar="R",
                        help="keep exactly R components per plane")
    parser.add_argument("--energy", type=_number(float, 0, 1, open_low=True), metavar="F",
                        help="keep the fewest components holding fraction F of the energy")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--psnr", type=_number(float, 0, open_low=True), metavar="DB",
                      help="search the quantizer step for this PSNR (dB)")
    rate.add_argument("--max-bytes", type=_number(int, 1), metavar="N",
                      help="search the quantizer step for a file of at most N bytes")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="matrix layout of each plane (default auto)")
    return parser


def _encode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    dests = _destinations(parser, args, ".svdi")
    if not _make_outdir(parser.prog, args.outdir):
        return 1
    options = encode_options(quality=args.quality, rank=args.rank, energy=args.energy,
                             target_psnr=args.psnr, max_bytes=args.max_bytes, layout=args.layout)
    clashes = _collisions(args.inputs, dests)
    for message in clashes.values():
        print(f"{parser.prog}: {message}", file=sys.stderr)
    jobs = [EncodeJob(src, dest, options, args.force, args.verbose)
            for i, (src, dest) in enumerate(zip(args.inputs, dests)) if i not in clashes]
    return _report(parser.prog, _batch(_encode_one, jobs, args), args.quiet, len(clashes))


def encode_main(argv: Sequence[str] | None = None) -> int:
    """svdi-encode: images to .svdi."""
    parser = _encode_parser()
    return _run(parser, lambda args: _encode(parser, args), argv)


# ----------------------------------------------------------------------------- svdi-decode


@dataclass(frozen=True)
class DecodeJob:
    src: str
    dest: str
    format: str  # a Pillow format name, or "NPY"
    components: int | None = None
    max_pixels: int | None | bool = True
    force: bool = False
    verbose: bool = False


def _output_format(suffix: str) -> str | None:
    """The Pillow format that writes files with this suffix ("NPY" for .npy), or None."""
    suffix = suffix.lower()
    if suffix == ".npy":
        return "NPY"
    fmt = Image.registered_extensions().get(suffix)
    return fmt if fmt in Image.SAVE else None


def _image_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    """Decoded pixels as a file of format `fmt`, in memory (so nothing partial hits the disk)."""
    buf = io.BytesIO()
    if fmt == "NPY":
        np.save(buf, pixels, allow_pickle=False)
        return buf.getvalue()
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if (pixels.dtype, channels) not in PILLOW_MODES:
        raise ValueError(f"{channels} channels of {pixels.dtype} have no Pillow mode; "
                         "decode to .npy instead")
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def _decode_one(job: DecodeJob) -> Result:
    """Decode one file; never raises for bad data, returns (ok, message) instead."""
    try:
        if job.dest != STDIO:
            check_output(job.dest, [job.src], force=job.force)
        pixels = decode(read_input(job.src), components=job.components,
                        max_pixels=job.max_pixels)
        write_output(job.dest, _image_bytes(pixels, job.format), [job.src], force=job.force)
    except DATA_ERRORS as exc:
        return False, f"{display(job.src)}: {_describe(exc)}"
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    text = (f"{display(job.src)} -> {display(job.dest, '<stdout>')}: "
            f"{pixels.shape[1]}x{pixels.shape[0]} {_mode_name(pixels.dtype, channels)}")
    if job.verbose:
        text += f" as {job.format}" + ("" if job.components is None
                                       else f", first {job.components} components")
    return True, text


def _decode_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-decode", "Decode .svdi files to any format Pillow writes, or .npy.")
    _add_outputs(parser, "the --format suffix")
    parser.add_argument("--format", default="png", metavar="EXT",
                        help="output format when no -o names one: png, tiff, npy... "
                             "(default png, also on stdout)")
    parser.add_argument("--components", type=_number(int, 0), metavar="K",
                        help="preview: decode only the first K components of every plane")
    parser.add_argument("--max-pixels", type=_number(int, 0), metavar="N",
                        help="refuse larger images (default PIL.Image.MAX_IMAGE_PIXELS; 0: none)")
    return parser


def _decode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    suffix = "." + args.format.lower().lstrip(".")
    dests = _destinations(parser, args, suffix)
    formats = [_output_format(suffix if d == STDIO else Path(d).suffix) for d in dests]
    if None in formats:
        parser.error(f"no image format writes {dests[formats.index(None)]!r}; "
                     "use a suffix such as .png, .tiff or .npy")
    if not _make_outdir(parser.prog, args.outdir):
        return 1
    limit = True if args.max_pixels is None else (args.max_pixels or None)
    clashes = _collisions(args.inputs, dests)
    for message in clashes.values():
        print(f"{parser.prog}: {message}", file=sys.stderr)
    jobs = [DecodeJob(src, dest, str(fmt), args.components, limit, args.force, args.verbose)
            for i, (src, dest, fmt) in enumerate(zip(args.inputs, dests, formats))
            if i not in clashes]
    return _report(parser.prog, _batch(_decode_one, jobs, args), args.quiet, len(clashes))


def decode_main(argv: Sequence[str] | None = None) -> int:
    """svdi-decode: .svdi to images."""
    parser = _decode_parser()
    return _run(parser, lambda args: _decode(parser, args), argv)


# ----------------------------------------------------------------------------- svdi-info


@dataclass(frozen=True)
class InfoJob:
    src: str
    as_json: bool = False
    verbose: bool = False


def _info_one(job: InfoJob) -> Result:
    """Describe one file; never raises for bad data, returns (ok, message) instead."""
    try:
        report = info_report(display(job.src), read_input(job.src))
    except DATA_ERRORS as exc:
        return False, f"{display(job.src)}: {_describe(exc)}"
    return True, json.dumps(report) if job.as_json else info_text(report, job.verbose)


def _info_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-info", "Show what an .svdi file stores and how much each part "
                                  "costs. The whole file is validated; --quiet only checks.")
    parser.add_argument("inputs", nargs="+", metavar="FILE", help='.svdi file, "-" for stdin')
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per file and line")
    parser.add_argument("--plot", metavar="IMAGE",
                        help="draw each plane's singular values and cumulative energy, the "
                             "kept rank marked, into IMAGE (.png, .svg, .pdf; needs "
                             "matplotlib). For an .svdi FILE the stored σ; for a picture or "
                             ".npy FILE all σ, with the rank svdi-encode's defaults keep")
    parser.add_argument("-f", "--force", action="store_true",
                        help="overwrite an existing --plot file")
    return parser


def _info_plot(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """svdi-info --plot IMAGE FILE: the spectrum of one file, drawn (see spectra.py)."""
    from ..spectra import plot_spectrum, spectrum, stored_spectrum

    if len(args.inputs) != 1:
        parser.error("--plot takes one FILE")
    src, dest = args.inputs[0], args.plot
    try:
        check_output(dest, [src] if src != STDIO else [], force=args.force)
        data = read_input(src)
        stored = data.startswith(container.SIGNATURE)
        spectra = stored_spectrum(data) if stored else spectrum(_load_pixels(data))
        picture = io.BytesIO()
        plot_spectrum(spectra, picture, display(src),
                      image_format=Path(dest).suffix.lstrip(".").lower() or "png")
        write_output(dest, picture.getvalue(), [src] if src != STDIO else [],
                     force=args.force)
    except DATA_ERRORS as exc:  # SvdiError is a ValueError
        print(f"{parser.prog}: {display(src)}: {_describe(exc)}", file=sys.stderr)
        return 1
    if not args.quiet:
        what = "stored σ" if stored else "all σ (svdi-encode's defaults)"
        for s in spectra:
            print(f"{display(src)}: plane {s.index}: {s.layout}, {what}: {s.sigma.size}, "
                  f"kept r = {s.kept}" + ("" if s.total_energy is None else
                                          f", holding {100 * s.kept_energy:.3f} % of the energy"))
        print(f"{display(src)}: spectrum drawn into {dest}")
    return 0


def _info(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.inputs.count(STDIO) > 1:
        parser.error('standard input ("-") can be read only once')
    if args.plot is not None:
        return _info_plot(parser, args)
    jobs = [InfoJob(src, args.json, args.verbose) for src in args.inputs]
    return _report(parser.prog, map(_info_one, jobs), args.quiet, out=sys.stdout)


def info_main(argv: Sequence[str] | None = None) -> int:
    """svdi-info: describe .svdi files."""
    parser = _info_parser()
    return _run(parser, lambda args: _info(parser, args), argv)


# ----------------------------------------------------------------------------- python -m


def compare_main(argv: Sequence[str] | None = None) -> int:
    """svdi-compare: lives in its own module, since it pulls in the comparison codecs."""
    from .compare import main as compare

    return compare(argv)


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "encode": encode_main, "decode": decode_main, "info": info_main, "compare": compare_main}
USAGE = ("usage: python -m svdcodec {encode,decode,info,compare} ...\n"
         "  (the same as svdi-encode, svdi-decode, svdi-info, svdi-compare; -h for each)")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m svdcodec COMMAND ...`` to the tool of that name."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if args[:1] == ["--version"]:
        print(f"svdcodec {__version__} (.svdi format version {FORMAT_VERSION})")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
