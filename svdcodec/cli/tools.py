"""Command-line tools: svdi-encode, svdi-decode, svdi-info and svdi-compare.

Conventions follow cwebp/cjxl/avifenc: ``svdi-encode in.png -o out.svdi -q 75``, "-" for
standard input/output, ``-d OUTDIR`` (or ``-o`` an existing directory) for several files.
Exit status: 0 success, 1 data or I/O error (one line per failure, no traceback), 2 usage
error, 128 + N for a signal N that ends the run (130 for ^C, 143 for SIGTERM) and 141 when
the reader of standard output goes away (as `cat` would die of SIGPIPE: ``svdi-info *.svdi |
head -1`` is a normal use, so it is quiet). Outputs go through :mod:`svdcodec.safe_io`, so an
existing file or the input itself is never overwritten by accident, a device, FIFO or
/dev/stdout is written into and never replaced, and a failed or interrupted run leaves no
partial file.

Each file is handled by a top-level ``<tool>_one(job) -> batch.Result`` (ok, message, notes)
that does not print, so the per-file work is mapped over a process pool unchanged.

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
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import FORMAT_VERSION, __version__, dicom
from .. import format as container
from ..decoder import decode_container, read_metadata, unpack_checked
from ..encoder import encode, encode_options
from ..format.metadata import EXIF_PREFIX
from ..modes import PILLOW_MODES
from ..runtime.threads import cores
from . import batch, deep_images, photos, wildcards
from .info import info_report, info_text
from .safe_io import (
    STDIO,
    StdoutClosed,
    Terminated,
    UnsafeOutput,
    check_output,
    display,
    read_input,
    remove_pending,
    streams_into,
    terminate_on_signals,
    write_output,
)

#: Errors that mean "this file is bad or cannot be read/written", reported in one line.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, EOFError, MemoryError, struct.error, Image.DecompressionBombError)
LAYOUTS = ("auto", "plain", "patch", "patch4", "patch8", "patch16")
NPY_MAGIC = b"\x93NUMPY"
#: Exit status when standard output's reader went away: 128 + SIGPIPE.
CLOSED_PIPE_STATUS = 141

Result = batch.Result


# ----------------------------------------------------------------------------- shared helpers


def describe_error(exc: BaseException) -> str:
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


def version_line() -> str:
    """svdcodec's version, the format's, and which path the codec runs: the C kernels, or the
    numpy fallback (same files, slower: the extension is not built here, e.g. when Python
    imports a clone's source tree instead of the installed package)."""
    from ..runtime import kernels

    path = ("C kernels" if kernels.backend() == "c"
            else "numpy path: the C kernels are not built or are switched off")
    where = os.path.dirname(os.path.abspath(kernels.__file__ or "."))
    return (f"svdcodec {__version__} (.svdi format version {FORMAT_VERSION}; {path}) from "
            f"{os.path.dirname(where)}")


class VersionAction(argparse.Action):
    """--version: the line of `version_line`, worked out only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the versions, the path the codec runs (C kernels or numpy) "
                              "and the folder svdcodec is imported from, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        print(f"{parser.prog}: {version_line()}")
        parser.exit()


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action=VersionAction)
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
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("-f", "--force", action="store_true",
                          help="overwrite existing output files")
    existing.add_argument("--skip-existing", action="store_true",
                          help="leave an input whose output file exists (a batch run again)")
    parser.add_argument("-j", "--jobs", type=_number(int, 1), metavar="N",
                        default=cores(),
                        help="files processed in parallel (default: all cores, %(default)s)")


def _names_a_folder(output: str) -> bool:
    """-o DIR/ (a trailing slash) or -o an existing folder: outputs go into that folder."""
    return output.endswith(("/", os.sep)) or os.path.isdir(output)


def _destinations(parser: argparse.ArgumentParser, args: argparse.Namespace,
                  suffix: str | list[str], keep_name: bool = False) -> list[str]:
    """Output name of every input; usage errors exit with status 2, -o naming a folder that
    does not exist raises UnsafeOutput (status 1).

    suffix: one for all inputs, or one per input. keep_name: append it to the whole input name
    (photo.svdi -> photo.svdi.png) instead of replacing the input's suffix.
    """
    inputs: list[str] = args.inputs
    into = args.outdir
    if args.output is not None and args.outdir is not None:
        parser.error("give -o or -d, not both")
    if args.output is not None and _names_a_folder(args.output):
        if not os.path.isdir(args.output):
            raise UnsafeOutput(f"output folder {display(args.output)} does not exist "
                               "(-d DIR creates it)")
        into = args.output
    elif args.output is not None and len(inputs) > 1:
        parser.error("-o takes one input; use -d DIR for several")
    if STDIO in inputs and (len(inputs) > 1 or into is not None):
        parser.error('standard input ("-") must be the only input and needs -o FILE, not a '
                     'folder')
    suffixes = suffix if isinstance(suffix, list) else [suffix] * len(inputs)
    if into is not None:
        dests = [os.path.join(into, (Path(src).name if keep_name else Path(src).stem) + s)
                 for src, s in zip(inputs, suffixes)]
    elif args.output is not None:
        dests = [args.output]
    elif keep_name:
        dests = [STDIO if src == STDIO else src + s for src, s in zip(inputs, suffixes)]
    else:
        dests = [STDIO if src == STDIO else _renamed(src, s) for src, s in zip(inputs, suffixes)]
    if STDIO in dests and sys.stdout.isatty():
        parser.error("refusing to write binary data to a terminal; use -o FILE or redirect")
    return dests


def _renamed(src: str, suffix: str) -> str:
    """src with its suffix replaced by `suffix`; a name without a last part (".", "/", ""),
    which has none to replace and whose read fails with its own message, gets it appended."""
    path = Path(src)
    return str(path.with_suffix(suffix)) if path.name else src + suffix


def _existing(args: argparse.Namespace, dests: Sequence[str], clashes: dict[int, str]
              ) -> dict[int, Result]:
    """With --skip-existing, the inputs whose output is a file already, by index, each with
    the line that says so: the tools leave them (a batch stopped half-way and run again does
    the rest). Outputs are whole or absent (written under a temporary name, then renamed), so an
    existing one is a finished output, not one cut short."""
    if not args.skip_existing:
        return {}
    return {i: Result(True, f"{display(src)}: output {display(dest)} exists, skipped")
            for i, (src, dest) in enumerate(zip(args.inputs, dests))
            if i not in clashes and dest != STDIO and os.path.isfile(dest)
            and _replaceable(dest, src)}


def _replaceable(dest: str, src: str) -> bool:
    """Whether --force could write `dest`: not the input itself (through links too), which
    the job then refuses (status 1) rather than skipping it as a finished output."""
    try:
        check_output(dest, [src] if src != STDIO else [], force=True)
    except UnsafeOutput:
        return False
    return True


def _collisions(prog: str, inputs: Sequence[str], dests: Sequence[str]) -> dict[int, str]:
    """Inputs whose output another input already writes (e.g. a/x.png, b/x.png with -d), by
    index, each reported on stderr: the tools skip them."""
    first: dict[str, str] = {}
    clashes = {}
    for i, (src, dest) in enumerate(zip(inputs, dests)):
        if not Path(src).name:  # (".", "/", "": its read fails with its own message)
            continue
        key = os.path.normcase(os.path.abspath(dest))
        if dest != STDIO and key in first:
            clashes[i] = f"{display(src)}: output {dest} is also written from {first[key]}"
        first.setdefault(key, display(src))
    for message in clashes.values():
        print(f"{prog}: {message}", file=sys.stderr)
    return clashes


@contextmanager
def _outdir(prog: str, outdir: str | None) -> Iterator[bool]:
    """-d DIR for the batch inside: True if it is there to write into (made if missing), False
    after saying why not. A folder made here and left empty (every input failed) is removed
    again, so that a failed run leaves nothing behind."""
    if outdir is None:
        yield True
        return
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        print(f"{prog}: {display(outdir)}: not a directory (-d names the folder the outputs "
              "go into)", file=sys.stderr)
        yield False
        return
    made = not os.path.lexists(outdir)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        print(f"{prog}: {display(outdir)}: {describe_error(exc)}", file=sys.stderr)
        yield False
        return
    try:
        yield True
    finally:
        if made:
            with suppress(OSError):  # not empty (something was written) or already gone
                os.rmdir(outdir)


def _report(prog: str, results: Iterable[Result], quiet: bool, failed: int = 0,
            out: Any = None, files: int | None = None) -> int:
    """Print every result (successes to `out`, default stderr; notes to stderr even when
    quiet), then, for several inputs of which some failed, how many (failures are printed as
    they happen, and in a long batch they scroll away), and return the exit status. `failed`:
    inputs refused before the batch ran (not among `results`). `files`: how many inputs the
    results are of, where an input may give more than one (default: one result each)."""
    total = failed
    for ok, message, notes in results:
        total += 1 if files is None else 0
        if not ok:
            failed += 1
            print(f"{prog}: {message}", file=sys.stderr)
        elif message and not quiet:
            print(message, file=out or sys.stderr)
        for note in notes:
            print(f"{prog}: {note}", file=sys.stderr)
    total += files or 0
    if failed and total > 1:
        print(f"{prog}: {failed} of {total} files failed", file=sys.stderr)
    return 1 if failed else 0


def _run_jobs(prog: str, args: argparse.Namespace, dests: Sequence[str],
              fn: Callable[[Any], Result], jobs: Sequence[Any], clashes: dict[int, str],
              skipped: dict[int, Result]) -> int:
    """Run the jobs and report them after the skipped inputs' lines; return the exit status.
    A run that met existing outputs without --force or --skip-existing (each such input fails
    "already exists") ends by saying what each option does: the outputs are counted before
    the batch writes any, but for an output that is its own input, which no option writes."""
    existed = 0 if args.force or args.skip_existing else len(
        file_ids(dest for dest in dests if dest != STDIO and os.path.isfile(dest))
        - file_ids(job.src for job in jobs if job.src != STDIO))
    status = _report(prog, chain(skipped.values(), _batch(fn, jobs, args)), args.quiet,
                     len(clashes))
    if existed:
        print(f"{prog}: {existed} output(s) existed before this run: --skip-existing leaves "
              "their inputs (a batch run again does the rest), --force overwrites them",
              file=sys.stderr)
    return status


def file_ids(names: Iterable[str]) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of each file that exists among `names`."""
    ids = set()
    for name in names:
        try:
            st = os.stat(name)
        except OSError:
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _batch(fn: Callable[[Any], Result], jobs: Sequence[Any], args: argparse.Namespace
           ) -> Iterable[Result]:
    """Run per-file jobs, in a process pool when there are several files."""
    names = [display(job.src) for job in jobs]
    return batch.run(fn, jobs, args.jobs, names, batch.progress_for(len(jobs), args.quiet),
                     rerun_for(jobs))


def rerun_for(jobs: Sequence[Any]) -> Callable[[Any], Any]:
    """How a job runs again when another worker's death broke its pool: it may have written
    its output before the pool broke (writes are atomic: such a file is whole). An output that
    did not exist when the batch started is then the job's own, and the second run replaces it
    instead of failing on it; any other output is treated as the job's options say."""
    new_outputs = {job.dest for job in jobs if not os.path.lexists(job.dest)}

    def again(job: Any) -> Any:
        return replace(job, force=True) if job.dest in new_outputs else job
    return again


def _say(prog: str, text: str) -> None:
    """One line on stderr, if stderr can still take it."""
    try:
        print(f"{prog}: {text}", file=sys.stderr)
    except (OSError, ValueError):
        pass


def _drop_stdout() -> None:
    """Point descriptor 1 at /dev/null, so that what is still buffered for a full or closed
    standard output does not fail again, with a traceback, when Python flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is a ValueError
        pass


class _StdoutFailed(Exception):
    """Text could not be written to standard output (not an OSError, so that per-file error
    handlers let it through)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _to_stdout(write: Callable[[], Any]) -> Any:
    """Run a write to standard output, sorting its errors into a closed and a failed one."""
    try:
        return write()
    except BrokenPipeError:
        raise StdoutClosed from None
    except OSError as exc:
        raise _StdoutFailed(exc) from None


class _CheckedStdout:
    """sys.stdout while a tool runs: the same stream, whose write errors (from print() in any
    module, svdi-compare's included) become StdoutClosed or _StdoutFailed."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return int(_to_stdout(lambda: self._stream.write(text)))

    def flush(self) -> None:
        _to_stdout(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a tool's body and turn every way it can end into an exit status and at most one
    line on stderr: ^C (130), a signal that ends the process (128 + N), a closed standard
    output (141, quietly), a full one or any other I/O error (1). The temporary file being
    written is removed in every case. argparse's SystemExit passes through."""
    for stream in (sys.stdout, sys.stderr):  # never a UnicodeEncodeError on output
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass
    stdout, sys.stdout = sys.stdout, _CheckedStdout(sys.stdout)  # type: ignore[assignment]
    try:
        with terminate_on_signals():
            status = body()
            sys.stdout.flush()  # a full standard output fails here at the latest
            return status
    except KeyboardInterrupt:
        remove_pending()  # a temporary file created just before the signal, outside its try
        _say(prog, "interrupted")
        return 130
    except Terminated as exc:
        remove_pending()
        _say(prog, f"terminated by {exc.name}")
        return exc.status
    except StdoutClosed:  # e.g. `svdi-info *.svdi | head -1`
        _drop_stdout()
        return CLOSED_PIPE_STATUS
    except _StdoutFailed as exc:  # e.g. > /dev/full
        _drop_stdout()
        _say(prog, f"cannot write to standard output: {describe_error(exc.error)}")
        return 1
    except OSError as exc:
        _say(prog, describe_error(exc) if exc.filename is None
             else f"{display(exc.filename)}: {describe_error(exc)}")
        return 1
    finally:
        sys.stdout = stdout
        remove_pending()


def _expanded(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """The parsed arguments with wildcards in the file arguments expanded (`wildcards`)."""
    args.inputs = wildcards.expand(parser, args.inputs)
    return args


def _run(parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], int],
         argv: Sequence[str] | None) -> int:
    """Parse and run under _guarded; argparse's exits become statuses 0 and 2."""
    try:
        return _guarded(parser.prog, lambda: body(_expanded(parser, parser.parse_args(argv))))
    except SystemExit as exc:  # -h and --version (0), usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


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


#: Names of the 16-bit colour images, which have no Pillow mode but PNG and TIFF files.
DEEP_NAMES = {2: "LA 16-bit", 3: "RGB 16-bit", 4: "RGBA 16-bit"}


def _mode_name(dtype: np.dtype, channels: int) -> str:
    mode = PILLOW_MODES.get((np.dtype(dtype), channels))
    if mode is None and np.dtype(dtype) == np.uint16 and channels in DEEP_NAMES:
        return DEEP_NAMES[channels]
    return mode or f"{channels}x{np.dtype(dtype)} (numpy only)"


# ----------------------------------------------------------------------------- svdi-encode


@dataclass(frozen=True)
class EncodeJob:
    """One input file to encode, with the encoder's options and the tool's switches (a unit of
    a batch, sent to its worker processes)."""

    src: str
    dest: str
    options: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    verbose: bool = False
    strip: bool = False  # drop the input's metadata
    frame: int | None = None  # the frame of a multi-frame input to encode
    max_pixels: int | None | bool = True  # as decode()'s max_pixels
    eight_bit: bool = False  # a 16-bit colour PNG or TIFF at 8 bits, as Pillow reads it


def _full_depth(raw: bytes, image: Image.Image, eight_bit: bool
                ) -> tuple[np.ndarray | Image.Image, str]:
    """The input's samples at the depth the file holds, and a note when that is not kept.

    Pillow reads a 16-bit colour PNG or TIFF (and a deeper PPM or JPEG 2000) at 8 bits: the
    16bit extra reads all 16 (a PPM needs none), --8bit
    takes Pillow's 8 (and the note says so), and without either the file is refused, naming
    both ways: a batch run must not turn 16-bit masters into 8-bit files with status 0."""
    kind = deep_images.deep_format(raw, image)
    if kind is None:
        return image, ""
    if eight_bit:
        return image, f"a {kind} encoded at 8 bits (--8bit)"
    try:
        return deep_images.read_deep(raw, image), ""
    except deep_images.DepthUnavailable as exc:
        raise ValueError(f"{exc}; or --8bit encodes it at 8 bits, as Pillow reads it") \
            from None


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
        text += _unused_tools(job.options, data, planes)
    return text


def _unused_tools(options: dict[str, Any], data: bytes, planes: list[container.Plane]) -> str:
    """A note for --aq or --restore asked for and not in the file: both are 8-bit tools
    (format version 6), and the encoder keeps a restoration filter only where it pays, so a
    16-bit, float or plain-layout image is written without them, which -v says."""
    unused = []
    if options.get("aq") and not any(p.adapted for p in planes):
        unused.append("--aq (8-bit images in a patch layout only)")
    # whether the encoder kept a filter is in the file only (encode() returns its bytes): the
    # chunks parsed again, no factor block decompressed
    if options.get("restore") and not container.unpack(data, max_pixels=None).restoration:
        unused.append("--restore (8-bit images only, and only where the filter repays its bytes)")
    return "; not used: " + ", ".join(unused) if unused else ""


def encode_one(job: EncodeJob) -> Result:
    """Encode one file; never raises for bad data, returns (ok, message) instead."""
    try:
        check_output(job.dest, [job.src], force=job.force)  # fail before the slow part
        raw = read_input(job.src)
        metadata: dict[str, Any] = {}
        note = ""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            if raw.startswith(NPY_MAGIC):
                if job.frame:
                    raise ValueError(f"a .npy array has one frame, not frame {job.frame}")
                image: np.ndarray | Image.Image = _load_pixels(raw)
            elif dicom.is_dicom(raw):  # the stored values and the attributes to rescale them
                if job.frame:
                    raise ValueError("DICOM: single-frame images only, not frame "
                                     f"{job.frame}")
                image, dicom_text = dicom.read_dicom(raw)
                metadata = {} if job.strip else {"text": dicom_text}
            else:
                image, note = photos.open_image(raw, job.frame, job.max_pixels)
                metadata = {} if job.strip else photos.image_metadata(image)
                dropped = [] if job.strip else [photos.dropped_profile(image),
                                                photos.dropped_colour_tags(image),
                                                photos.dropped_comment(image),
                                                photos.dropped_iptc(image)]
                image, depth_note = _full_depth(raw, image, job.eight_bit)
                note = "; ".join(n for n in (note, depth_note, *dropped) if n)
        metadata, problems = photos.storable(metadata)
        del raw  # the input file's bytes, no longer needed: not held through the encode
        photos.release_file(image)
        data = encode(image, **job.options, **metadata)
        notes = write_output(job.dest, data, [job.src], force=job.force)
    except DATA_ERRORS as exc:
        return Result(False, f"{display(job.src)}: {describe_error(exc)}")
    text = _encode_summary(job, data)
    if note:
        text += f"; {note}"
    if metadata:
        text += f"; metadata kept: {', '.join(sorted(metadata))}"
    text += "".join(f"; {problem}" for problem in problems)
    return Result(True, text + photos.caught_warnings(caught), tuple(notes))


def _encode_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-encode", "Encode images (anything Pillow reads, .npy, or DICOM with "
                                    "pydicom installed) to .svdi.")
    _add_outputs(parser, "suffix .svdi")
    parser.add_argument("-q", "--quality", type=_number(float, 1, 100), metavar="Q",
                        help="quality 1..100 (default 75)")
    parser.add_argument("--rank", type=_number(int, 0), metavar="R",
                        help="keep at most R components per plane (the plain layout): fewer "
                             "where the plane has lower rank or a component quantizes to zero "
                             "at this quality (raise -q to keep it). 0 keeps none: with "
                             "--lossless or --max-error the file is the residual alone")
    parser.add_argument("--energy", type=_number(float, 0, 1, open_low=True), metavar="F",
                        help="keep the fewest components holding fraction F of the energy")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--psnr", type=_number(float, 0, open_low=True), metavar="DB",
                      help="search the quantizer step for this PSNR (dB)")
    rate.add_argument("--max-bytes", type=_number(int, 1), metavar="N",
                      help="search the quantizer step for a file of at most N bytes")
    parser.add_argument("--layout", choices=LAYOUTS, default="auto",
                        help="matrix layout of each plane (default auto)")
    exact = parser.add_mutually_exclusive_group()
    exact.add_argument("--max-error", type=_number(float, 0), metavar="E",
                       help="every decoded sample within E of the input (a residual after the "
                            "low-rank layer, format version 2; -q sets the layer)")
    exact.add_argument("--lossless", action="store_true",
                       help="decode to exactly the input samples (--max-error 0)")
    filtering = parser.add_mutually_exclusive_group()
    filtering.add_argument("--deblock", dest="deblock", action="store_true", default=None,
                           help="let the decoder smooth the patch edges with a deblocking "
                                "filter (format version 4; the default): the same file size, "
                                "a decoded picture closer to the original, worth about 4 %% of "
                                "the bytes at equal PSNR, 8-10 %% at equal SSIM")
    filtering.add_argument("--no-deblock", dest="deblock", action="store_false",
                           help="no deblocking filter: a slightly faster encode and decode")
    parser.add_argument("--aq", action="store_true",
                        help="adaptive quantization per patch of the luma plane of an 8-bit "
                             "image (format version 6): higher luma SSIM at the same bytes, "
                             "slightly lower RGB PSNR")
    parser.add_argument("--restore", action="store_true",
                        help="let the decoder apply a restoration filter the encoder fits to an "
                             "8-bit image (format version 6; after the deblocking filter): about "
                             "180 bytes a "
                             "file for sharper, closer pictures (docs/performance.md)")
    parser.add_argument("--effort", type=int, choices=(1, 2), metavar="{1,2}",
                        help="2: choose the factors' integers by rate and distortion and "
                             "compress them again at a slower zstd level: 4-14 %% smaller "
                             "at the same quality, encode 1.3-3.5x as long (default 1)")
    parser.add_argument("--centre", action="store_true",
                        help="subtract each column's mean before the SVD and store the means "
                             "(plain layout, format version 2): the factors are a PCA")
    parser.add_argument("--lossy-alpha", action="store_true",
                        help="let alpha be as lossy as the colours (by default alpha decodes "
                             "exactly, as WebP's)")
    parser.add_argument("--strip", action="store_true",
                        help="drop the input's metadata (EXIF, ICC profile, XMP, DPI, text), "
                             "which is kept by default")
    parser.add_argument("--frame", type=_number(int, 0), metavar="N",
                        help="encode frame N (from 0) of an animated or multi-page input, "
                             "which is refused otherwise")
    parser.add_argument("--8bit", dest="eight_bit", action="store_true",
                        help="encode a 16-bit RGB, RGBA or grey+alpha PNG or TIFF, or a "
                             "PPM or JPEG 2000 of more than 8 bits, at 8 bits, as Pillow reads "
                             "it. By default all 16 bits are encoded, which "
                             f"needs the 16bit extra ({deep_images.INSTALL}); without it such "
                             "a file is refused")
    _add_max_pixels(parser, "refuse larger inputs")
    return parser


def _add_max_pixels(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--max-pixels", type=_number(int, 0), metavar="N",
                        help=f"{what} than N pixels (default: as Pillow, warn above "
                             "PIL.Image.MAX_IMAGE_PIXELS and refuse above twice that; 0: none)")


def _pixel_limit(value: int | None) -> int | None | bool:
    """--max-pixels as decode()'s max_pixels: unset follows Pillow (True), 0 means none."""
    return True if value is None else (value or None)


def _encode_name_notes(src: str, dest: str) -> list[str]:
    """Notes for a likely mix-up of svdi-encode and svdi-decode: the file is written anyway (as
    cwebp writes any name), but `-o photo.png` (a suffix another format owns) gets .svdi bytes
    and an .svdi input is encoded again, losing a little more."""
    notes = []
    if src != STDIO and Path(src).suffix.lower() == ".svdi":
        notes.append(f"{display(src)} is already an .svdi file: it is decoded and encoded again "
                     "(svdi-decode converts .svdi to other formats)")
    if dest != STDIO and _output_format(Path(dest).suffix) not in (None, "SVDI"):
        notes.append(f"{display(dest)} will hold .svdi data, whatever its name says "
                     "(svdi-decode writes other formats)")
    return notes


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors (status 2) for the options the encoder refuses together, before any work
    (as the mutually exclusive groups' are)."""
    exact = "--lossless" if args.lossless else "--max-error" if args.max_error is not None \
        else None
    rate = "--psnr" if args.psnr is not None else "--max-bytes" if args.max_bytes is not None \
        else None
    if exact and rate:
        parser.error(f"{exact} bounds every sample, which {rate} would trade away: give one "
                     "of them")
    if args.centre and args.layout not in ("auto", "plain"):
        parser.error(f"--centre centres the columns of the plain layout: leave out --layout "
                     f"{args.layout} or give --layout plain")


def _encode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    _check_combinations(parser, args)
    dests = _destinations(parser, args, ".svdi")
    with _outdir(parser.prog, args.outdir) as ready:
        return _encode_into(parser, args, dests) if ready else 1


def _encode_into(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 dests: list[str]) -> int:
    options = encode_options(quality=args.quality, rank=args.rank, energy=args.energy,
                             target_psnr=args.psnr, max_bytes=args.max_bytes, layout=args.layout,
                             max_error=0.0 if args.lossless else args.max_error,
                             exact_alpha=False if args.lossy_alpha else None,
                             centre=True if args.centre else None, effort=args.effort,
                             deblock=args.deblock,
                             aq=True if args.aq else None,
                             restore=True if args.restore else None)
    clashes = _collisions(parser.prog, args.inputs, dests)
    skipped = _existing(args, dests, clashes)
    if not args.quiet:
        for i, (src, dest) in enumerate(zip(args.inputs, dests)):
            for note in _encode_name_notes(src, dest) if i not in skipped else ():
                print(f"{parser.prog}: {note}", file=sys.stderr)
    jobs = [EncodeJob(src, dest, options, args.force, args.verbose, args.strip, args.frame,
                      _pixel_limit(args.max_pixels), args.eight_bit)
            for i, (src, dest) in enumerate(zip(args.inputs, dests))
            if i not in clashes and i not in skipped]
    return _run_jobs(parser.prog, args, dests, encode_one, jobs, clashes, skipped)


def encode_main(argv: Sequence[str] | None = None) -> int:
    """svdi-encode: images to .svdi."""
    parser = _encode_parser()
    return _run(parser, lambda args: _encode(parser, args), argv)


# ----------------------------------------------------------------------------- svdi-decode


@dataclass(frozen=True)
class DecodeJob:
    """One .svdi file to decode, with the output format and the tool's switches (a unit of a
    batch)."""

    src: str
    dest: str
    format: str  # a Pillow format name, or "NPY"
    components: int | None = None
    max_pixels: int | None | bool = True
    force: bool = False
    verbose: bool = False
    strip: bool = False  # do not write the file's metadata into the output
    reduce: int = 1  # decode at 1/reduce of the size
    eight_bit: bool = False  # round 16-bit samples to 8 bits
    truncated: str = "raise"  # as decode()'s truncated=: "fill" decodes what arrived


def _output_format(suffix: str) -> str | None:
    """The Pillow format that writes files with this suffix ("NPY" for .npy), or None.

    Looked up as Image.save looks it up: among the plugins imported so far (.svdi's), then
    after Pillow's common ones (`preinit`: PNG, JPEG, BMP, GIF, PPM), and only then after
    all of them (`registered_extensions`: a few dozen imports, which every svdi-encode and
    svdi-decode paid for this check). No plugin maps a suffix that another already has
    (tests/test_cli.py checks Pillow's)."""
    suffix = suffix.lower()
    if suffix == ".npy":
        return "NPY"
    fmt = Image.EXTENSION.get(suffix)
    if fmt is None:
        Image.preinit()
        fmt = Image.EXTENSION.get(suffix)
    if fmt is None:
        fmt = Image.registered_extensions().get(suffix)
    return fmt if fmt in Image.SAVE else None


#: The formats that hold the samples of Pillow's 32-bit modes exactly.
WIDE_GREY_FORMATS = {"F": ("TIFF", "PPM"), "I": ("TIFF",)}
#: The output suffixes that hold each of those modes whole, as the refusal names them.
WIDE_GREY_SUFFIXES = {"F": ".tiff or .pfm", "I": ".tiff"}


def _image_bytes(pixels: np.ndarray, fmt: str, options: dict[str, Any] | None = None) -> bytes:
    """Decoded pixels as a file of format `fmt`, in memory (so nothing partial hits the disk);
    `options` go to Pillow's writer (the metadata)."""
    buf = io.BytesIO()
    if fmt == "NPY":
        np.save(buf, pixels, allow_pickle=False)
        return buf.getvalue()
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    # signed grey (a CT slice's int16) has no Pillow mode of its own; mode I (32-bit signed)
    # holds every value, and a TIFF of mode I keeps it
    signed_grey = channels == 1 and pixels.dtype in (np.int8, np.int16)
    if fmt == "TIFF" and signed_grey:
        pixels = pixels.reshape(pixels.shape[:2]).astype(np.int32)
    if (pixels.dtype, channels) not in PILLOW_MODES:
        raise ValueError(f"{channels} channels of {pixels.dtype} have no Pillow mode; "
                         "decode to .npy instead"
                         + (" (or to .tiff, as 32-bit integers)" if signed_grey else ""))
    image = Image.fromarray(pixels)
    if image.mode in WIDE_GREY_FORMATS and fmt not in WIDE_GREY_FORMATS[image.mode]:
        # Pillow's WebP writer turns both modes into 8-bit RGB and its PPM writer clips I to
        # 16 bits (F it writes as PFM, exactly) without a word: refused, as PNG and JPEG
        # refuse them
        raise ValueError(f"{fmt} cannot hold mode {image.mode} ({pixels.dtype}) samples; "
                         f"decode mode {image.mode} to {WIDE_GREY_SUFFIXES[image.mode]} instead")
    try:
        image.save(buf, format=fmt, **(options or {}))
    except (OSError, KeyError) as exc:  # e.g. "cannot write mode F as PNG"
        raise ValueError(f"{describe_error(exc)}; decode mode {image.mode} to "
                         f"{photos.default_suffix(pixels.dtype, channels)} instead"
                         + (" (or round it to 8 bits with --8bit)"
                            if pixels.dtype == np.uint16 else "")) from None
    return buf.getvalue()


def _deep_bytes(pixels: np.ndarray, fmt: str, metadata: dict[str, Any]
                ) -> tuple[bytes, list[str]]:
    """16-bit colour pixels as a 16-bit PNG or TIFF, and what of `metadata` it cannot hold.
    Refused for the other formats, which hold 8 bits at most: rounding is asked for (--8bit),
    never done behind the user's back."""
    try:
        if fmt == "PNG":
            options, dropped = photos.save_options("PNG", metadata)
            return deep_images.png_bytes(pixels, options), dropped
        if fmt == "TIFF":
            return deep_images.tiff_bytes(pixels, metadata)
    except deep_images.DepthUnavailable as exc:
        raise ValueError(f"{exc}; or decode to .npy, or round the samples to 8 bits with "
                         "--8bit") from None
    raise ValueError(f"{fmt} output holds at most 8 bits per sample and this image has 16: "
                     "decode to .png or .tiff (16 bits, with the 16bit extra) or .npy, or round "
                     "the samples to 8 bits with --8bit")


#: What an image writer (Pillow's, tifffile's) raises on metadata it cannot write: a valid
#: file's EXIF may hold any TIFF entry (spec §1.1 checks its byte order and size), and Pillow's
#: TIFF writer fails with TypeError or AttributeError on some (a rational where it writes
#: text, a float where it writes an integer).
WRITER_ERRORS: tuple[type[BaseException], ...] = (
    TypeError, AttributeError, ValueError, OverflowError, KeyError, IndexError, OSError,
    UnicodeError, struct.error)


@dataclass
class OutputFile:
    """A decoded image as a file's bytes, and what of the .svdi file's metadata it lacks."""

    data: bytes
    #: the metadata (read_metadata's names) that the output's format cannot hold
    dropped: list[str]
    #: the metadata the format's writer failed on, by name: what was written instead
    failed: dict[str, str] = field(default_factory=dict)
    #: the names in `failed` of which nothing was written
    left_out: set[str] = field(default_factory=set)


def _output_bytes(pixels: np.ndarray, fmt: str, metadata: dict[str, Any]) -> OutputFile:
    """Decoded pixels as a file of format `fmt` holding `metadata` (read_metadata's dict). A
    piece of metadata the writer fails on is written in a form it takes (an EXIF: its
    orientation alone, so that the picture still shows upright) or left out, as all of it
    where no one piece is to blame; the image's own errors are raised."""
    try:
        return OutputFile(*_format_bytes(pixels, fmt, metadata))
    except WRITER_ERRORS as exc:
        if not metadata:
            raise
        reason = f"the {fmt} writer failed on it ({describe_error(exc)})"
    for name in sorted(metadata):
        for substitute, instead in _written_instead(name, metadata[name]):
            trial = {k: v for k, v in metadata.items() if k != name}
            if substitute is not None:
                trial[name] = substitute
            try:
                data, dropped = _format_bytes(pixels, fmt, trial)
            except WRITER_ERRORS:
                continue
            return OutputFile(data, dropped, {name: f"{reason}: {instead}"},
                              set() if substitute is not None else {name})
    data, _ = _format_bytes(pixels, fmt, {})
    return OutputFile(data, [], {name: f"{reason}: not written" for name in sorted(metadata)},
                      set(metadata))


def _written_instead(name: str, value: Any) -> list[tuple[Any, str]]:
    """What to write of a piece of metadata a writer failed on, in order of preference, and
    how to say it: an EXIF's orientation alone (where it has one), else nothing."""
    choices: list[tuple[Any, str]] = []
    if name == "exif":
        exif = Image.Exif()
        with suppress(*WRITER_ERRORS):
            exif.load(EXIF_PREFIX + value)
        orientation = exif.get(photos.EXIF_ORIENTATION)
        if isinstance(orientation, int) and 1 <= orientation <= 8:
            upright = Image.Exif()
            upright[photos.EXIF_ORIENTATION] = orientation
            choices.append((upright.tobytes()[len(EXIF_PREFIX):],
                            f"only its orientation ({orientation}) written"))
    return [*choices, (None, "not written")]


def _format_bytes(pixels: np.ndarray, fmt: str, metadata: dict[str, Any]
                  ) -> tuple[bytes, list[str]]:
    """`_output_bytes` as the format's writer makes it, its errors raised."""
    if fmt != "NPY" and deep_images.is_deep(pixels):
        return _deep_bytes(pixels, fmt, metadata)
    options, dropped = photos.save_options(fmt, metadata)
    return _image_bytes(pixels, fmt, options), dropped


def decode_one(job: DecodeJob) -> Result:
    """Decode one file; never raises for bad data, returns (ok, message) instead."""
    try:
        check_output(job.dest, [job.src], force=job.force)
        data = read_input(job.src)
        # (the writers' warnings too: Pillow's on an odd EXIF are caught, and only a
        # decompression bomb's go into the file's line, as the decode's)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            unpacked = unpack_checked(data, job.max_pixels, job.truncated)
            pixels = decode_container(unpacked, components=job.components, reduce=job.reduce)
            rounded = job.eight_bit and pixels.dtype == np.uint16
            if rounded:
                pixels = deep_images.to_8bit(pixels)
            channels = 1 if pixels.ndim == 2 else pixels.shape[2]
            fmt = job.format or str(_output_format(photos.default_suffix(pixels.dtype,
                                                                         channels)))
            metadata = {} if job.strip or fmt == "NPY" else read_metadata(data)
            output = _output_bytes(pixels, fmt, metadata)
        notes = write_output(job.dest, output.data, [job.src], force=job.force)
    except DATA_ERRORS as exc:
        return Result(False, f"{display(job.src)}: {describe_error(exc)}")
    text = (f"{display(job.src)} -> {display(job.dest, '<stdout>')}: "
            f"{pixels.shape[1]}x{pixels.shape[0]} {_mode_name(pixels.dtype, channels)}"
            + (" (16-bit samples rounded to 8 bits: --8bit)" if rounded else ""))
    if job.verbose:
        text += f" as {fmt}" + ("" if job.components is None
                                else f", first {job.components} components")
        text += "" if job.reduce == 1 else f", at 1/{job.reduce} size"
        written = set(metadata) - set(output.dropped) - output.left_out
        if written:
            text += f"; metadata written: {', '.join(sorted(written))}"
    if unpacked.truncation is not None:
        text += (f"; truncated: {unpacked.truncation.where()}; decoded "
                 + unpacked.truncation.arrived(unpacked.planes, bool(unpacked.residuals)))
    if fmt == "NPY" and deep_images.is_deep(pixels) and deep_images.missing():
        text += f" as .npy (16-bit PNG and TIFF need the 16bit extra: {deep_images.INSTALL})"
    if fmt == "SVDI":
        text += "; re-encoded lossily at svdcodec.encode's defaults (quality 75)"
    if output.dropped:
        label = f"16-bit {fmt}" if deep_images.is_deep(pixels) else fmt
        text += (f"; {label} output cannot hold the file's {', '.join(output.dropped)} "
                 "(not written)")
    for name, instead in output.failed.items():
        text += f"; the file's {name}: {instead}"
    return Result(True, text + photos.caught_warnings(caught), tuple(notes))


def _decode_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-decode", "Decode .svdi files to any format Pillow writes, or .npy.")
    _add_outputs(parser, "the --format suffix added: photo.svdi -> photo.svdi.png, so "
                         "the image it came from is never the default output")
    parser.add_argument("--format", metavar="EXT",
                        help="output format when no -o names one: png, tiff, jpeg, webp, npy... "
                             "(default png; tiff for a float (F) image, npy for one that no "
                             "Pillow mode holds, 16-bit colour without the 16bit extra)")
    parser.add_argument("--components", type=_number(int, 1), metavar="K",
                        help="preview: decode only the first K components of every plane (the "
                             "picture the first K singular triplets make, not a smaller file)")
    parser.add_argument("--scale", choices=("1", "1/2", "1/4", "1/8"), default="1",
                        help="decode at this fraction of the size (each pixel the mean of a "
                             "cell), at a fraction of the work: thumbnails")
    parser.add_argument("--strip", action="store_true",
                        help="do not write the file's metadata (EXIF, ICC profile, XMP, DPI, "
                             "text) into the output, which gets it by default where its "
                             "format holds it (PNG, JPEG, WebP, TIFF)")
    parser.add_argument("--8bit", dest="eight_bit", action="store_true",
                        help="round 16-bit samples to 8 bits (v/257), for formats that hold 8 "
                             "(JPEG, WebP...); 16-bit colour is otherwise written only to PNG "
                             f"and TIFF (with the 16bit extra: {deep_images.INSTALL}) or .npy")
    parser.add_argument("--truncated", choices=("raise", "fill"), default="raise",
                        help="a file that ends early (a download cut short): raise (the "
                             "default) reports where it ends; fill writes what arrived, as "
                             "Pillow's LOAD_TRUNCATED_IMAGES does: the components every plane "
                             "has whole, or zeros")
    _add_max_pixels(parser, "refuse larger images")
    return parser


def _default_suffix(src: str, eight_bit: bool = False) -> str:
    """The output suffix of an input when no --format or -o is given, from its header: a
    float image goes to TIFF, one no Pillow mode holds to .npy (16-bit colour to PNG with the
    16bit extra), the rest to PNG. eight_bit: 16-bit samples are rounded to 8 first."""
    if src == STDIO:
        return ""  # chosen from the decoded pixels
    try:
        with open(src, "rb") as fp:
            header, _ = container.read_headers(fp)
    except (OSError, ValueError):
        return ".png"  # the job reports the real error
    dtype = np.dtype(np.uint8) if eight_bit and header.dtype == np.uint16 else header.dtype
    return photos.default_suffix(dtype, header.channels)


def _decode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.format is not None:
        suffixes = ["." + args.format.lower().lstrip(".")] * len(args.inputs)
    elif args.output is None or _names_a_folder(args.output):
        suffixes = [_default_suffix(src, args.eight_bit) for src in args.inputs]
    else:
        suffixes = [""]  # the suffix of -o, or chosen from the pixels on a stream
    dests = _destinations(parser, args, suffixes, keep_name=True)
    # The output's suffix names the format; standard output, /dev/null, a FIFO... take --format
    # (or, without it, the pixels' default: "").
    # (a suffix chosen here names it even where the input has no name to carry it: ".", "/")
    formats = [_output_format(s) if s else
               "" if d == STDIO or streams_into(d) else _output_format(Path(d).suffix)
               for d, s in zip(dests, suffixes)]
    if None in formats:
        parser.error(f"no image format writes {dests[formats.index(None)]!r}; "
                     "use a suffix such as .png, .tiff or .npy")
    with _outdir(parser.prog, args.outdir) as ready:
        return _decode_into(parser, args, dests, formats) if ready else 1


def _decode_into(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 dests: list[str], formats: list[str | None]) -> int:
    limit = _pixel_limit(args.max_pixels)
    clashes = _collisions(parser.prog, args.inputs, dests)
    skipped = _existing(args, dests, clashes)
    reduce = int(args.scale.split("/")[-1]) if "/" in args.scale else 1
    jobs = [DecodeJob(src, dest, str(fmt), args.components, limit, args.force, args.verbose,
                      args.strip, reduce, args.eight_bit, args.truncated)
            for i, (src, dest, fmt) in enumerate(zip(args.inputs, dests, formats))
            if i not in clashes and i not in skipped]
    return _run_jobs(parser.prog, args, dests, decode_one, jobs, clashes, skipped)


def decode_main(argv: Sequence[str] | None = None) -> int:
    """svdi-decode: .svdi to images."""
    parser = _decode_parser()
    return _run(parser, lambda args: _decode(parser, args), argv)


# ----------------------------------------------------------------------------- svdi-info


@dataclass(frozen=True)
class InfoJob:
    """One file to describe, as text or JSON (a unit of a batch)."""

    src: str
    as_json: bool = False
    verbose: bool = False


def info_one(job: InfoJob) -> list[Result]:
    """Describe one file; never raises for bad data, returns (ok, message) instead.

    The text names the file printably (undecodable bytes as \\xNN); JSON keeps the name as
    Python holds it, so that json.loads and os.fsencode give back its exact bytes. A file that
    ends early is described as far as it arrived, then reported as an error saying where it
    ends (a second result: the exit status says the file is broken)."""
    try:
        data = read_input(job.src)
        name = display(job.src) if not job.as_json or job.src == STDIO else job.src
        # (the summary alone is printed of residual blocks but with --verbose)
        report = info_report(name, data, residual_blocks=job.as_json or job.verbose)
    except DATA_ERRORS as exc:
        return [Result(False, f"{display(job.src)}: {describe_error(exc)}")]
    described = Result(True, json.dumps(report) if job.as_json
                       else info_text(report, job.verbose))
    cut = report["truncated"]
    if cut is None:
        return [described]
    return [described, Result(False, f"{display(job.src)}: truncated file: {cut['where']}; "
                                     f"a decode gives {cut['arrived']}")]


def _info_parser() -> argparse.ArgumentParser:
    parser = _parser("svdi-info", "Show what an .svdi file stores and how much each part "
                                  "costs. The whole file's structure is checked (chunks, CRCs, "
                                  "headers, block descriptors; svdi-decode checks the factors' "
                                  "contents); --quiet only checks.")
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


def unwritable_plot(dest: str) -> str | None:
    """Why matplotlib cannot write a --plot file of this name (a file type it has no writer
    for), checked before any work; None if it can, or if matplotlib is missing (said where
    the plot is drawn)."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return None
    kind = Path(dest).suffix.lstrip(".").lower() or "png"
    if kind in FigureCanvasBase.get_supported_filetypes():
        return None
    return (f"--plot {dest}: matplotlib writes no .{kind} files; give a name ending in .png, "
            ".svg or .pdf")


def _info_plot(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """svdi-info --plot IMAGE FILE: the spectrum of one file, drawn (see spectra.py)."""
    from ..spectra import plot_spectrum, spectrum, stored_spectrum

    if len(args.inputs) != 1:
        parser.error("--plot takes one FILE")
    if why := unwritable_plot(args.plot):
        parser.error(why)
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
        print(f"{parser.prog}: {display(src)}: {describe_error(exc)}", file=sys.stderr)
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
    results = (result for job in jobs for result in info_one(job))
    return _report(parser.prog, results, args.quiet, out=sys.stdout, files=len(jobs))


def info_main(argv: Sequence[str] | None = None) -> int:
    """svdi-info: describe .svdi files."""
    parser = _info_parser()
    return _run(parser, lambda args: _info(parser, args), argv)


# ----------------------------------------------------------------------------- python -m


def compare_main(argv: Sequence[str] | None = None) -> int:
    """svdi-compare: lives in its own module, since it pulls in the comparison codecs; run under
    the same guard as the other tools (a full or closed standard output, signals)."""
    from .compare import main as compare

    return _guarded("svdi-compare", lambda: compare(argv))


def view_main(argv: Sequence[str] | None = None) -> int:
    """svdi-view: serves the JavaScript viewer (js/) and one file on localhost."""
    from .view import main as view

    return view(None if argv is None else list(argv))


COMMANDS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "encode": encode_main, "decode": decode_main, "info": info_main, "compare": compare_main,
    "view": view_main}
USAGE = ("usage: python -m svdcodec {encode,decode,info,compare,view} ...\n"
         "  (the same as svdi-encode, svdi-decode, svdi-info, svdi-compare, svdi-view;"
         " -h for each)")


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``python -m svdcodec COMMAND ...`` to the tool of that name."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return COMMANDS[args[0]](args[1:])
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if args[:1] == ["--version"]:
        print(version_line())
        return 0
    print(USAGE, file=sys.stderr)
    if args:
        print(f"python -m svdcodec: no command {args[0]!r}: give one of "
              f"{', '.join(COMMANDS)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
