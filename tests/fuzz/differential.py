"""Differential test of the decoder's paths on random *valid* files.

The byte fuzzers mutate small files; they rarely make a valid file whose combination of plane
settings (a patch size per plane, deblocking, restoration, AQ, residuals) and size reaches the
rarer render paths. This script draws such files from the encoder itself, then decodes each
through every path that must give the same pixels and compares them:

* the whole-array path (`render.render_image` plane by plane: `BandRenderer.prepare` declined),
  compiled kernels and numpy, and the reference decoder (`decoder.reference`, small images);
* `svdcodec.decode` (the band renderer where it takes the file), previews (`components=`);
* Pillow's `Image.open().load()` (lean bands) into a mapped array and into band buffers
  (`band_sizes.MAPPED_BYTES`); 16-bit RGB(A) compared at 8 bits (`pillow_plugin.to_8_bits`);
* `decode(reduce=)` and Pillow's `Image.reduce` (reduced images: compared with each other);

each on the compiled kernels and on numpy, under random band sizes (`band_sizes`) and thread
counts (`svdcodec.threads`), which reach the split of a one-band image into a band per thread
(`stream.whole_jobs`), held sparse blocks in pieces, the lean fused filter's chroma pieces.
Each case is drawn from its own generator (seed, case number), so one case is replayed alone:

    PYTHONPATH=. python tests/fuzz/differential.py --time 1200            # 20 minutes
    PYTHONPATH=. python tests/fuzz/differential.py --seed 7 --count 200 --corpus DIR
    PYTHONPATH=. python tests/fuzz/differential.py --seed 7 --case 113 -v  # one case again

A mismatch or an exception prints the case and the command that replays it, saves the file
(and the case, as JSON) in --save-dir, and the run goes on; the exit status is 1 if any
case failed. tests/test_differential.py runs a fixed-seed slice with the suite.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness_common import kernels_restored

#: Image kinds: (dtype, channels).
KINDS = {"L": (np.uint8, 1), "LA": (np.uint8, 2), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
         "I;16": (np.uint16, 1), "RGB16": (np.uint16, 3), "F": (np.float32, 1)}
#: Band-size knobs drawn per decode, and the rows of the image one band of each is near.
PIXEL_KNOBS = ("BAND_PIXELS", "EXACT_BAND_PIXELS", "LARGE_EXACT_BAND_PIXELS")
#: Images above this many pixels are not decoded by the (slow, whole-array) reference decoder.
REFERENCE_PIXELS = 1 << 16
#: Largest image drawn by default: 1.5 MP.
MAX_PIXELS = 3 << 19


@dataclass
class Case:
    """One drawn file and how it is decoded: everything `make_file` and `check` need."""
    seed: int
    index: int
    kind: str
    height: int
    width: int
    content: str
    options: dict[str, Any]
    sides: dict[int, int] = field(default_factory=dict)  # plane index -> forced patch side
    decodes: list[dict[str, Any]] = field(default_factory=list)  # knobs, threads, kernels
    components: int = 1
    reduce: int = 2
    max_pixels: int = MAX_PIXELS

    def command(self) -> str:
        return (f"PYTHONPATH=. python tests/fuzz/differential.py --seed {self.seed} "
                f"--case {self.index}"
                + (f" --max-pixels {self.max_pixels}" if self.max_pixels != MAX_PIXELS else "")
                + (" --corpus DIR" if self.content == "corpus" else ""))


def draw_size(rng: np.random.Generator, max_pixels: int) -> tuple[int, int]:
    """Sizes of every kind: one pixel, one row or column, odd, near multiples of the patch
    sides and band units, up to max_pixels (the drawn size's rows cut to fit)."""
    h, w = _drawn_size(rng, max_pixels)
    h = max(min(h, max_pixels // w), 1)
    if rng.random() < 0.35:  # even sides: the fused 4:2:0 paths (chroma half of each side)
        h, w = max(h - h % 2, 1), max(w - w % 2, 1)
    return h, w


def _drawn_size(rng: np.random.Generator, max_pixels: int) -> tuple[int, int]:
    how = rng.choice(["tiny", "line", "small", "medium", "large", "near"],
                     p=[0.1, 0.08, 0.37, 0.25, 0.05, 0.15])
    if how == "tiny":
        return int(rng.integers(1, 9)), int(rng.integers(1, 9))
    if how == "line":
        n = int(rng.integers(1, 600))
        return (1, n) if rng.random() < 0.5 else (n, 1)
    if how == "small":
        return int(rng.integers(2, 160)), int(rng.integers(2, 160))
    if how == "medium":
        return int(rng.integers(100, 600)), int(rng.integers(100, 800))
    if how == "near":  # a multiple of 8, 16, 32 or 64, give or take one or two
        unit = int(rng.choice([8, 16, 32, 64]))
        h = unit * int(rng.integers(1, 20)) + int(rng.integers(-2, 3))
        w = unit * int(rng.integers(1, 20)) + int(rng.integers(-2, 3))
        return max(h, 1), max(w, 1)
    pixels = int(rng.integers(max_pixels // 3, max_pixels + 1))
    w = int(rng.integers(int(np.sqrt(pixels) * 0.6), int(np.sqrt(pixels) * 1.6)))
    return max(pixels // w, 1), w


def synthetic(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    """Photo-like float samples in 0..255: gradients, texture, noise, an edge, flat parts."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, channels))
    for c in range(channels):
        fy, fx = rng.uniform(5, 60, 2)
        out[..., c] = (128 + 80 * np.sin(x / fx + y / fy + c) * np.cos(y / (fy + 7))
                       + rng.uniform(0, 30) * np.sin(x * y / rng.uniform(200, 2000))
                       + rng.normal(0, rng.uniform(0, 12), (h, w)))
        if rng.random() < 0.3:  # a sharp edge
            out[..., c] += np.where(x + rng.uniform(-1, 1) * y > w / 2, 40, -40)
        if rng.random() < 0.05:  # a flat channel (its residual, exact_constant: version 2)
            out[..., c] = rng.uniform(0, 255)
    return np.clip(out, 0, 255)


def corpus_crop(rng: np.random.Generator, photos: list[Path], h: int, w: int,
                channels: int) -> np.ndarray:
    """A crop of a photo (tiled where the image is larger than the photo), as floats 0..255."""
    from PIL import Image

    path = photos[int(rng.integers(len(photos)))]
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    reps = (-(-h // rgb.shape[0]), -(-w // rgb.shape[1]), 1)
    tiled = np.tile(rgb, reps) if reps != (1, 1, 1) else rgb
    y0 = int(rng.integers(tiled.shape[0] - h + 1))
    x0 = int(rng.integers(tiled.shape[1] - w + 1))
    crop = tiled[y0:y0 + h, x0:x0 + w]
    if channels <= 2:
        grey = crop @ np.array([0.299, 0.587, 0.114])
        crop = grey[:, :, None]
    if channels in (2, 4):
        crop = np.concatenate([crop, synthetic(rng, h, w, 1)], axis=2)
    return crop


def make_image(case: Case, rng: np.random.Generator, photos: list[Path]) -> np.ndarray:
    dtype, channels = KINDS[case.kind]
    h, w = case.height, case.width
    base = (corpus_crop(rng, photos, h, w, channels) if case.content == "corpus"
            else synthetic(rng, h, w, channels))
    if channels in (2, 4):  # alpha: opaque, a gradient, a mask or the drawn samples
        how = rng.choice(["opaque", "gradient", "mask", "drawn"])
        alpha = base[..., -1]
        if how == "opaque":
            alpha[:] = 255
        elif how == "gradient":
            alpha[:] = np.linspace(0, 255, w)[None, :]
        elif how == "mask":
            alpha[:] = np.where(synthetic(rng, h, w, 1)[..., 0] > 128, 255, 0)
    if dtype == np.uint8:
        image = np.rint(base).astype(np.uint8)
    elif dtype == np.uint16:
        image = np.clip(np.rint(base * 257 + rng.normal(0, 40, base.shape)), 0, 65535
                        ).astype(np.uint16)
    else:
        image = (base * rng.choice([1 / 255, 1.0, 37.5])).astype(np.float32)
    return image[:, :, 0] if channels == 1 else image


def draw_options(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """Encode options, each drawn on its own (a combination the encoder refuses is counted as
    refused: `make_file`)."""
    options: dict[str, Any] = {"quality": int(rng.choice([int(rng.integers(1, 101)), 20, 40, 75, 95]))}
    if rng.random() < 0.5:
        options["deblock"] = bool(rng.random() < 0.7)
    if rng.random() < 0.25:
        options["restore"] = True
    if rng.random() < 0.2:
        options["aq"] = True
    if rng.random() < 0.15:
        options["effort"] = 2
    if rng.random() < 0.3:
        options["layout"] = str(rng.choice(["plain", "patch", "patch4", "patch8", "patch16"]))
    if rng.random() < 0.08:
        options["centre"] = True
        options["layout"] = "plain"
    if rng.random() < 0.12:
        options["max_error"] = float(rng.choice([0, 1, 2, 5]))
    if KINDS[kind][1] in (2, 4) and rng.random() < 0.5:
        options["exact_alpha"] = False
    return options


def draw_decodes(rng: np.random.Generator, h: int, w: int, channels: int,
                 count: int) -> list[dict[str, Any]]:
    """Band-size knobs and thread counts: defaults, tiny bands, bands of a few rows (near the
    image's rows, so that band edges fall anywhere), one band for the whole image."""
    out = []
    for _ in range(count):
        knobs: dict[str, Any] = {}
        for name in PIXEL_KNOBS:
            how = rng.choice(["default", "rows", "one", "tiny"], p=[0.3, 0.45, 0.15, 0.1])
            if how == "rows":
                rows = int(rng.integers(1, max(h // 2, 1) + 2))
                knobs[name] = max(rows * w + int(rng.integers(-w // 2 - 1, w // 2 + 2)), 1)
            elif how == "one":
                knobs[name] = h * w + 1 + int(rng.integers(0, 1000))
            elif how == "tiny":
                knobs[name] = int(rng.integers(1, 64))
        if rng.random() < 0.5:
            knobs["MIN_BAND_ROWS"] = int(rng.choice([1, 8, 32]))  # exact files only: `check`
        if rng.random() < 0.3:
            knobs["LARGE_IMAGE_PIXELS"] = int(rng.choice([0, h * w, h * w - 1]))
        if rng.random() < 0.5:
            knobs["CHECKPOINT_ROWS"] = int(rng.choice([1, 16, 64, 256]))
        if rng.random() < 0.5:
            knobs["PIECE_BYTES"] = int(rng.choice([1, 64, 4096, 1 << 18]))
        if rng.random() < 0.6:
            samples = h * w * channels
            knobs["SERIAL_SAMPLES"] = int(rng.choice([0, samples - 1, samples, 1 << 19]))
        if rng.random() < 0.3:
            knobs["JOB_BYTES"] = int(rng.choice([0, 1 << 10, 1 << 24]))
        if rng.random() < 0.3:
            knobs["THREAD_BYTES"] = int(rng.choice([0, 1 << 10, 1 << 18]))
        if rng.random() < 0.2:
            knobs["MIN_PASS_BYTES"] = int(rng.choice([1 << 10, 1 << 16]))
        if rng.random() < 0.2:
            knobs["CHUNK_BYTES"] = int(rng.choice([64, 1 << 12]))
        if rng.random() < 0.2:
            knobs["KEEP_BYTES"] = int(rng.choice([0, 1 << 12]))
        out.append({"knobs": knobs, "threads": int(rng.choice([1, 2, 2, 3, 4])),
                    "compiled": bool(rng.random() < 0.6), "concurrent": bool(rng.random() < 0.2)})
    return out


def draw_case(seed: int, index: int, max_pixels: int, photos: list[Path]) -> tuple[Case, Any]:
    rng = np.random.default_rng([seed, index])
    kind = str(rng.choice(list(KINDS), p=[0.15, 0.08, 0.4, 0.12, 0.08, 0.1, 0.07]))
    h, w = draw_size(rng, max_pixels)
    content = "corpus" if photos and rng.random() < 0.6 else "synthetic"
    options = draw_options(rng, kind)
    sides: dict[int, int] = {}
    if rng.random() < 0.6 and options.get("layout", "auto") == "auto":
        # each plane its own layout (plain: 0): what the encoder chooses by size, forced
        sides = {i: int(rng.choice([0, 4, 8, 16], p=[0.1, 0.4, 0.4, 0.1]))
                 for i in range(KINDS[kind][1])}
    case = Case(seed, index, kind, h, w, content, options, sides,
                draw_decodes(rng, h, w, KINDS[kind][1], int(rng.integers(2, 4))),
                components=int(rng.integers(0, 5)), reduce=int(rng.choice([2, 4, 8])),
                max_pixels=max_pixels)
    return case, rng


@contextlib.contextmanager
def patched(obj: Any, **values: Any) -> Iterator[None]:
    """Attributes of obj set for the block (band_sizes knobs, encoder methods); afterwards
    each is what obj itself held (a classmethod as such), or inherited again."""
    missing = object()
    before = {name: vars(obj).get(name, missing) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is missing:
                delattr(obj, name)
            else:
                setattr(obj, name, value)


@contextlib.contextmanager
def kernels(compiled: bool) -> Iterator[None]:
    """The compiled kernels (or numpy) for the calls inside, SVDCODEC_KERNELS restored after."""
    with kernels_restored():
        os.environ["SVDCODEC_KERNELS"] = "1" if compiled else "0"
        yield


@contextlib.contextmanager
def forced_sides(sides: dict[int, int]) -> Iterator[None]:
    """The encoder's layout of plane i forced to patch side sides[i] (0: plain) where that
    layout is among its candidates (as test_chroma_planes_of_two_patch_sizes_are_cut_alike)."""
    from svdcodec.encoder import schedule

    if not sides:
        yield
        return
    candidates = schedule.Encoder._candidates

    def chosen(self: Any, work: Any, index: int, step: float) -> list[Any]:
        found = candidates(self, work, index, step)
        return [c for c in found if c.plane.patch == sides.get(index)] or found
    with patched(schedule.Encoder, predicts=lambda self, work, index: False, _candidates=chosen):
        yield


def make_file(case: Case, rng: np.random.Generator, photos: list[Path]) -> bytes | None:
    """The case's file, or None where the encoder refuses its options (SvdiError)."""
    import svdcodec

    image = make_image(case, rng, photos)
    with forced_sides(case.sides), kernels(True):
        try:
            return svdcodec.encode(image, **case.options)
        except svdcodec.SvdiError:
            return None


class Mismatch(AssertionError):
    pass


def same(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    if got.shape != expected.shape or got.dtype != expected.dtype:
        raise Mismatch(f"{what}: {got.dtype}{got.shape} where {expected.dtype}{expected.shape}")
    if not np.array_equal(got, expected, equal_nan=expected.dtype.kind == "f"):
        differ = np.argwhere(got != expected)
        raise Mismatch(f"{what}: {len(differ)} samples differ, first at {differ[0].tolist()}: "
                       f"{got[tuple(differ[0])]} where {expected[tuple(differ[0])]}")


def whole_array(data: bytes, **options: Any) -> np.ndarray:
    """svdcodec.decode by the whole-array path (BandRenderer.prepare declines every file)."""
    import svdcodec
    from svdcodec.decoder import stream

    with patched(stream.BandRenderer, prepare=classmethod(lambda cls, *a, **k: None)):
        return svdcodec.decode(data, **options)


def as_opened(pixels: np.ndarray) -> np.ndarray:
    """The decoded array as Pillow holds it: 16-bit RGB(A) and LA at 8 bits."""
    from svdcodec import pillow_plugin

    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return pillow_plugin.to_8_bits(pixels)
    return pixels


def pillow_load(data: bytes) -> np.ndarray:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ReducedDepthWarning of 16-bit RGB
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)


def pillow_reduce(data: bytes, factor: int) -> np.ndarray:
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.reduce(factor))


def concurrently(data: bytes, threads: int, expected: np.ndarray,
                 opened: np.ndarray | None, where: str) -> int:
    """decode() and Pillow's load() of the file in three user threads at once, each on
    `threads` threads: each result the expected pixels. Returns the decodes compared."""
    import svdcodec

    def work(k: int) -> np.ndarray:
        with svdcodec.threads(threads):
            return pillow_load(data) if k % 2 and opened is not None else svdcodec.decode(data)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(work, range(3)))
    for k, got in enumerate(results):
        pil = k % 2 and opened is not None
        same(f"{where}: {'Pillow load' if pil else 'decode'} in user thread {k} of 3", got,
             opened if pil else expected)
    return len(results)


def check(case: Case, data: bytes, log: Callable[[str], None]) -> int:
    """Decode `data` on every path the case draws; Mismatch where two differ. Returns the
    number of decodes compared."""
    import svdcodec
    from svdcodec import format as container
    from svdcodec import pillow_plugin
    from svdcodec.decoder.reference import decode_reference
    from svdcodec.runtime import band_sizes

    unpacked = container.unpack(data)
    header = unpacked.header
    exact = all(p.exact for p in unpacked.planes)
    try:
        pillow_plugin.pillow_mode(header)
        pillow = True
    except OSError:
        pillow = False
    alpha = header.channels in (2, 4)
    with kernels(True), svdcodec.threads(1):
        expected = whole_array(data)
        preview = whole_array(data, components=case.components)
        reduced = svdcodec.decode(data, reduce=case.reduce)
    compared = 0
    with kernels(False), svdcodec.threads(1):
        same("whole-array path, numpy", whole_array(data), expected)
        same("whole-array path, numpy, reduce", svdcodec.decode(data, reduce=case.reduce), reduced)
        compared += 2
    if header.height * header.width <= REFERENCE_PIXELS:
        same("reference decoder", decode_reference(data), expected)
        compared += 1
    if pillow:
        opened = as_opened(expected)
    for k, how in enumerate(case.decodes):
        knobs = dict(how["knobs"])
        if not exact:  # BLAS products round by their rows: only exact planes take any band
            knobs.pop("MIN_BAND_ROWS", None)
        where = f"decode {k} ({'compiled' if how['compiled'] else 'numpy'}, " \
                f"{how['threads']} threads, {knobs})"
        log(f"  {where}")
        with kernels(how["compiled"]), svdcodec.threads(how["threads"]), \
                patched(band_sizes, **knobs):
            same(f"{where}: decode", svdcodec.decode(data), expected)
            same(f"{where}: decode(components={case.components})",
                 svdcodec.decode(data, components=case.components), preview)
            same(f"{where}: decode(reduce={case.reduce})",
                 svdcodec.decode(data, reduce=case.reduce), reduced)
            compared += 3
            if how.get("concurrent"):  # decodes in several user threads at once
                compared += concurrently(data, how["threads"], expected,
                                         opened if pillow else None, where)
            if pillow:
                with patched(band_sizes, MAPPED_BYTES=None):
                    same(f"{where}: Pillow load, mapped", pillow_load(data), opened)
                with patched(band_sizes, MAPPED_BYTES=0):
                    same(f"{where}: Pillow load, band buffers", pillow_load(data), opened)
                compared += 2
                if not alpha:  # (alpha: Pillow's own reduce, weighted by alpha)
                    same(f"{where}: Pillow reduce({case.reduce})",
                         pillow_reduce(data, case.reduce), as_opened(reduced))
                    compared += 1
    return compared


#: Paths the decodes took (`--coverage`): counts by name.
COVERAGE: collections.Counter[str] = collections.Counter()


@contextlib.contextmanager
def spied() -> Iterator[None]:
    """COVERAGE counts the paths the decodes inside take: the band renderer (its bands
    one or several, lean, in the lean fused filter's chroma pieces, restored), the split of a
    one-band image into a band per thread, WholePlane, the whole-array path left to itself."""
    from svdcodec.decoder import plane, stream

    run, jobs, prepare = stream.BandRenderer.run, stream.whole_jobs, stream.BandRenderer.prepare
    whole_init = plane.WholePlane.__init__

    def counted_run(self: Any, sink: Any, threads: int | None = None) -> None:
        seams = type(self.seams).__name__ if self.seams is not None else "no filter"
        COVERAGE[f"band renderer, {'several bands' if len(self.bands) > 1 else 'one band'}, "
                 f"{seams}{', chroma pieces' if self.pieces else ''}"] += 1
        run(self, sink, threads)

    def counted_jobs(*args: Any) -> Any:
        COVERAGE["one band split into a band per thread (whole_jobs)"] += 1
        return jobs(*args)

    def counted_prepare(cls: Any, *args: Any, **kwargs: Any) -> Any:
        renderer = prepare.__func__(cls, *args, **kwargs)
        COVERAGE[f"prepare, {'lean' if kwargs.get('lean') else 'decode'}, "
                 f"{'declined' if renderer is None else 'taken'}"] += 1
        return renderer

    def counted_whole(self: Any, *args: Any, **kwargs: Any) -> None:
        COVERAGE["WholePlane"] += 1
        whole_init(self, *args, **kwargs)
    with patched(stream.BandRenderer, run=counted_run, prepare=classmethod(counted_prepare)), \
            patched(stream, whole_jobs=counted_jobs), \
            patched(plane.WholePlane, __init__=counted_whole):
        yield


def run_case(seed: int, index: int, max_pixels: int, photos: list[Path], save_dir: Path,
             verbose: bool = False) -> tuple[str, int]:
    """('ok' | 'refused' | 'failed', decodes compared) of one case; a failure printed with
    its reproducer, its file and case saved."""
    case, rng = draw_case(seed, index, max_pixels, photos)
    log = print if verbose else (lambda s: None)
    log(f"case {index}: {case.kind} {case.height}x{case.width} {case.content} "
        f"{case.options} sides {case.sides}")
    data = None
    try:
        data = make_file(case, rng, photos)
        if data is None:
            return "refused", 0
        return "ok", check(case, data, log)
    except Exception as exc:  # noqa: BLE001  (every exception is a finding: printed, saved)
        print(f"FAILED seed {seed} case {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(json.dumps(asdict(case)), file=sys.stderr)
        if not isinstance(exc, Mismatch):
            traceback.print_exc()
        if data is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            stem = save_dir / f"differential-{seed}-{index}"
            stem.with_suffix(".svdi").write_bytes(data)
            stem.with_suffix(".json").write_text(json.dumps(asdict(case), indent=1) + "\n")
            print(f"saved {stem}.svdi and .json", file=sys.stderr)
        print(f"reproduce: {case.command()} -v", file=sys.stderr)
        return "failed", 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the run (default: drawn and printed)")
    parser.add_argument("--count", type=int, default=None, help="cases to run")
    parser.add_argument("--time", type=float, default=None, help="seconds to run cases for")
    parser.add_argument("--case", type=int, default=None, help="run this case (of --seed) alone")
    parser.add_argument("--start", type=int, default=0, help="first case number")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="directory of photos (PNG) to crop content from")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help="largest image drawn (default 1.5 MP)")
    parser.add_argument("--save-dir", type=Path, default=Path("/tmp/svdi-differential"),
                        help="where a failing case's file and JSON go")
    parser.add_argument("--coverage", action="store_true",
                        help="count the render paths the decodes took and print them")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    seed = int(np.random.SeedSequence().entropy % (1 << 32)) if args.seed is None else args.seed
    photos = sorted(args.corpus.glob("*.png")) if args.corpus is not None else []
    if args.corpus is not None and not photos:
        parser.error(f"no PNG files in {args.corpus}")
    if args.case is not None:
        indices: Iterator[int] = iter([args.case])
    else:
        stop = None if args.count is None else args.start + args.count
        indices = iter(range(args.start, stop)) if stop is not None else _forever(args.start)
        if args.count is None and args.time is None:
            parser.error("give --count, --time or --case")
    print(f"seed {seed}")
    started = time.monotonic()
    counts = {"ok": 0, "refused": 0, "failed": 0}
    decodes = 0
    spying = spied() if args.coverage else contextlib.nullcontext()
    with spying:
        for index in indices:
            if args.time is not None and time.monotonic() - started > args.time:
                break
            verdict, compared = run_case(seed, index, args.max_pixels, photos, args.save_dir,
                                         args.verbose)
            counts[verdict] += 1
            decodes += compared
            if (index + 1) % 50 == 0:
                print(f"{index + 1 - args.start} cases, {counts}, {decodes} decodes compared, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
    for name, count in sorted(COVERAGE.items()):
        print(f"  {count:7d}  {name}")
    print(f"done: {sum(counts.values())} cases ({counts}), {decodes} decodes compared, "
          f"{time.monotonic() - started:.0f} s")
    return 1 if counts["failed"] else 0


def _forever(start: int) -> Iterator[int]:
    index = start
    while True:
        yield index
        index += 1


if __name__ == "__main__":
    sys.exit(main())
