#!/usr/bin/env python3
"""atheris harness: the one-band plane path (decoder.plane.WholePlane, `_kernels.plane_factors`)
against the numpy path, on mutations of files the encoder made.

    PYTHONPATH=. python tests/fuzz/fuzz_plane.py /tmp/svdi-plane tests/fuzz/corpus_plane

WholePlane fills a plane's factors in one compiled call where the plane qualifies: exact, a
patch layout (adapted or not), rendered in one band (a small image of 8 or 16 bits, without a
residual). The structure fuzzer's files rarely qualify (its residual blocks, array modes and
version 1 planes take other paths), so this harness starts from `SEEDS`: small files the
encoder makes of every plane kind that takes WholePlane (luma and chroma, 4:2:0 and full-size,
alpha, 8 and 16 bits, patches of 2 to 32, sparse and dense blocks, deblocked, restored, beside
an adapted plane, RDOQ) from crops of the bundled sample photo. The fuzzer's bytes pick a seed
and one to three mutations (`MUTATIONS`): a factor block's decompressed arrays (dense residuals,
run/level symbols, escapes, element types), a block's coding or fields, blocks dropped,
duplicated or swapped, singular values, PLAN fields; the file is written again from the
changed container (valid zstd frames and CRCs), and sometimes its bytes are changed after
that (CRCs repaired). Each file is decoded with the compiled kernels (WholePlane where the
plane still qualifies), on the numpy path, by the whole-array reference decoder and by Pillow
(verdict only, for the modes it opens). A crash is: any exception but SvdiError (Pillow:
OSError), a warning, verdicts that differ, or pixels that differ between the decoders.

    PYTHONPATH=. python tests/fuzz/fuzz_plane.py --save CRASH OUT.svdi

writes the file a saved input (a crash) builds, for tests/regressions/.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import io
import os
import struct
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness_common import (
    Mismatch,
    check_agreement,
    instrumented,
    kernel_settings,
    kernels_restored,
)

#: Fuzzing (not imported by tests/test_plane_fuzz.py, which needs no atheris, nor --save)
FUZZING = __name__ == "__main__" and sys.argv[1:2] != ["--save"]
with instrumented(FUZZING):
    import svdcodec
    from svdcodec import SvdiError
    from svdcodec import format as fmt
    from svdcodec.codec import coding
    from svdcodec.decoder import stream
    from svdcodec.decoder.reference import decode_reference
if FUZZING:
    import atheris

import grammar
import numpy as np
from crc_fix import fix_crcs
from PIL import Image

#: Decoded images are at most this many pixels (a mutated PLAN or HEAD may declare more: the
#: same refusal on every path).
MAX_PIXELS = 1 << 16
KERNELS = kernel_settings(first="1")


# ----------------------------------------------------------------------------- seeds

#: (name, crop (height, width, top, left) of the sample photo, channels, sample type,
#: encode options): every plane kind that takes WholePlane. Channels 2 and 4 take their second
#: or last channel from another crop (an alpha unlike the colour); exact_alpha=False keeps
#: them free of a residual block, which sends a file to the whole-array path.
SEEDS: list[tuple[str, tuple[int, int, int, int], int, str, dict[str, Any]]] = [
    ("L", (24, 40, 40, 60), 1, "uint8", {}),
    ("L q5 rank 1", (24, 40, 40, 60), 1, "uint8", {"quality": 5}),
    ("L q100 dense", (24, 40, 40, 60), 1, "uint8", {"quality": 100}),
    ("L patch2", (20, 18, 10, 200), 1, "uint8", {"layout": "patch2", "deblock": False}),
    ("L patch32", (40, 70, 100, 30), 1, "uint8", {"layout": "patch32"}),
    ("RGB 4:2:0", (37, 53, 40, 60), 3, "uint8", {}),
    ("RGB q20", (37, 53, 120, 160), 3, "uint8", {"quality": 20}),
    ("RGB effort 2", (37, 53, 40, 60), 3, "uint8", {"effort": 2}),
    ("RGB no deblock", (37, 53, 40, 60), 3, "uint8", {"deblock": False}),
    ("RGB patch16", (37, 53, 40, 60), 3, "uint8", {"layout": "patch16"}),
    ("RGB aq", (48, 64, 40, 60), 3, "uint8", {"aq": True}),
    ("RGB restored", (128, 128, 0, 0), 3, "uint8", {"quality": 60, "layout": "patch8",
                                                    "restore": True}),
    ("LA", (30, 30, 60, 90), 2, "uint8", {"exact_alpha": False}),
    ("RGBA", (30, 30, 60, 90), 4, "uint8", {"exact_alpha": False}),
    ("L16", (24, 40, 40, 60), 1, "uint16", {}),
    ("RGB16", (29, 31, 70, 10), 3, "uint16", {}),
    ("LA16", (30, 30, 60, 90), 2, "uint16", {"exact_alpha": False}),
    ("RGBA16 q40", (30, 30, 60, 90), 4, "uint16", {"exact_alpha": False, "quality": 40}),
]


def seed_image(crop: tuple[int, int, int, int], channels: int, dtype: str) -> np.ndarray:
    h, w, y, x = crop
    with Image.open(resources.files("svdcodec") / "data" / "sample.png") as im:
        photo = np.asarray(im.convert("RGB"))
    colour = photo[y:y + h, x:x + w]
    other = photo[y + 5:y + 5 + h, x + 5:x + 5 + w, 2]  # an alpha that is not the colour
    layers = {1: [colour[..., 1]], 2: [colour[..., 0], other], 3: [colour],
              4: [colour, other]}[channels]
    out = np.dstack(layers) if channels > 1 else layers[0]
    return out.astype(np.uint16) * 257 if dtype == "uint16" else np.ascontiguousarray(out)


@functools.cache
def seed_files() -> tuple[tuple[str, bytes], ...]:
    """(name, file) of every seed, encoded once a process."""
    return tuple((name, svdcodec.encode(seed_image(crop, channels, dtype), **options))
                 for name, crop, channels, dtype, options in SEEDS)


# ----------------------------------------------------------------------------- mutations


@dataclass
class Draft:
    """A seed's container being changed: its planes and blocks, the changes made."""

    box: Any  # format.Container
    planes: list[Any]
    blocks: list[Any]
    notes: list[str] = field(default_factory=list)

    def factor_blocks(self, coding_: int | None = None) -> list[int]:
        """Indices of the U and V blocks (of that coding)."""
        return [i for i, b in enumerate(self.blocks) if b.factor in "UV"
                and (coding_ is None or b.coding == coding_)]

    def pick_block(self, c: grammar.Choices, coding_: int | None = None) -> int | None:
        """A U or V block (of that coding), four times in five one of a plane that takes
        WholePlane where there is one; None if there is none."""
        found = self.factor_blocks(coding_)
        whole = [i for i in found if self.whole(self.blocks[i].plane)]
        pool = whole if whole and c.chance(0.8) else found
        return grammar.pick(c, pool) if pool else None

    def whole(self, index: int) -> bool:
        """Whether plane `index` is of a kind WholePlane takes (exact, patches; adapted or
        not, spec §5.5)."""
        plane = next((p for p in self.planes if p.index == index), None)
        return plane is not None and plane.exact and plane.layout == fmt.LAYOUT_PATCH

    def replace(self, i: int, arrays: tuple[np.ndarray, ...], **changes: Any) -> None:
        """Block i with these arrays (and fields `changes`)."""
        b = self.blocks[i]
        fields_ = {"factor": b.factor, "plane": b.plane, "first": b.first, "count": b.count,
                   "coding": b.coding, "predictor": b.predictor}
        fields_.update(changes)
        self.blocks[i] = fmt.Block(arrays=tuple(arrays), **fields_)

    def data(self) -> bytes:
        """The file written again: HEAD, PLANs, the blocks (new zstd frames, CRCs) and the
        seed's restoration filters (the seeds have no metadata, residual or MEAN chunk)."""
        box = dataclasses.replace(self.box, planes=self.planes, blocks=self.blocks)
        out = fmt.pack(box, 1)
        return fmt.insert_restoration(out, list(self.box.restoration.values()))


def _extreme(c: grammar.Choices, dtype: np.dtype, old: int) -> int:
    info = np.iinfo(dtype)
    bit = 1 << c.int(0, info.bits - 2)
    return int(grammar.pick(c, [info.min, info.max, 0, -1, 1, old + 1, old - 1,
                                int(np.array(old ^ bit).astype(dtype)),
                                c.int(int(info.min), int(info.max))]))


def _set(c: grammar.Choices, array: np.ndarray, at: int, value: int) -> None:
    info = np.iinfo(array.dtype)
    array[at] = min(max(value, info.min), info.max)


def m_dense_values(c: grammar.Choices, d: Draft) -> str:
    """Values of a dense block's residuals set to extremes, neighbours or flipped bits, in its
    element type or a wider one."""
    i = d.pick_block(c, fmt.DENSE)
    if i is None:
        return "no dense block"
    (residuals,) = d.blocks[i].data()
    wider = grammar.pick(c, [None, None, np.int16, np.int32])
    flat = residuals.astype(wider or residuals.dtype).reshape(-1)  # a copy
    n = grammar.pick(c, [1, 1, 2, 5, 40])
    for _ in range(n):
        at = c.int(0, flat.size - 1) if flat.size else 0
        if flat.size:
            _set(c, flat, at, _extreme(c, flat.dtype, int(flat[at])))
    d.replace(i, (flat.reshape(residuals.shape),))
    return f"block {i} dense: {n} values ({flat.dtype})"


def m_dense_size(c: grammar.Choices, d: Draft) -> str:
    """A dense block's residuals cut or extended by a few values."""
    i = d.pick_block(c, fmt.DENSE)
    if i is None:
        return "no dense block"
    flat = d.blocks[i].data()[0].reshape(-1)
    k = c.int(1, 9)
    flat = flat[:-k] if c.chance(0.5) else np.concatenate([flat, np.zeros(k, flat.dtype)])
    d.replace(i, (flat,))
    return f"block {i} dense: {flat.size} values"


def m_predictor(c: grammar.Choices, d: Draft) -> str:
    """A dense block's predictor changed, its residuals kept: the same integers read as
    another predictor's (sums that may leave the element type)."""
    i = d.pick_block(c, fmt.DENSE)
    if i is None:
        return "no dense block"
    old = d.blocks[i].predictor
    new = (old + c.int(1, 3)) % 4
    d.replace(i, d.blocks[i].data(), predictor=new)
    return f"block {i} predictor {old} -> {new}"


def m_symbols(c: grammar.Choices, d: Draft) -> str:
    """A sparse block's symbols: bytes set (row ends, escapes, long runs, any), cut, extended,
    a byte inserted or removed."""
    i = d.pick_block(c, fmt.SPARSE)
    if i is None:
        return "no sparse block"
    symbols, xrun, xval = (a.copy() for a in d.blocks[i].data())
    what = c.int(0, 4)
    if what == 0 and symbols.size:
        for _ in range(grammar.pick(c, [1, 1, 2, 8])):
            symbols[c.int(0, symbols.size - 1)] = grammar.pick(
                c, [coding.END_OF_ROW, 0xF0, 0xF0 | c.int(0, 15), coding.VALUE_ESCAPE, 0xF8,
                    0x80, 0xFF, c.int(0, 255)])
    elif what == 1 and symbols.size:
        symbols = symbols[:c.int(0, symbols.size - 1)]
    elif what == 2:
        symbols = np.concatenate([symbols, np.frombuffer(
            c.raw(c.int(1, 16)).ljust(1, b"\x08"), np.uint8)])
    elif what == 3:
        at = c.int(0, symbols.size)
        symbols = np.insert(symbols, at, c.int(0, 255)).astype(np.uint8)
    elif symbols.size:
        symbols = np.delete(symbols, c.int(0, symbols.size - 1))
    d.replace(i, (symbols, xrun, xval))
    return f"block {i} symbols ({['set', 'cut', 'extended', 'insert', 'delete'][what]})"


def m_escapes(c: grammar.Choices, d: Draft) -> str:
    """A sparse block's run or value escapes: one set to an extreme, one added or removed, the
    values widened to int32 (and then past int16)."""
    i = d.pick_block(c, fmt.SPARSE)
    if i is None:
        return "no sparse block"
    symbols, xrun, xval = (a.copy() for a in d.blocks[i].data())
    what = c.int(0, 4)
    if what == 0 and xrun.size:
        xrun[c.int(0, xrun.size - 1)] = grammar.pick(c, [0, 1, 15, 65535, c.int(0, 65535)])
    elif what == 1 and xval.size:
        at = c.int(0, xval.size - 1)
        _set(c, xval, at, _extreme(c, xval.dtype, int(xval[at])))
    elif what == 2:
        xval = xval.astype(np.int32)
        if xval.size:
            xval[c.int(0, xval.size - 1)] = grammar.pick(c, [1 << 24, -(1 << 24) - 1, 2**31 - 1,
                                                              -2**31, 40000])
    elif what == 3:
        if c.chance(0.5):
            xrun = np.append(xrun, c.int(0, 65535)).astype(np.uint16)
        else:
            xval = np.append(xval, c.int(-128, 127)).astype(xval.dtype)
    else:
        xrun, xval = (xrun[:-1], xval) if c.chance(0.5) else (xrun, xval[:-1])
    d.replace(i, (symbols, xrun, xval))
    return f"block {i} escapes ({['run', 'value', 'int32', 'added', 'removed'][what]})"


def m_recode(c: grammar.Choices, d: Draft) -> str:
    """A block coded the other way, valid: a sparse block's integers as dense residuals of any
    predictor, a dense block's as run/level symbols (the same pixels on every path)."""
    i = d.pick_block(c)
    if i is None:
        return "no factor block"
    b = d.blocks[i]
    plane = next((p for p in d.planes if p.index == b.plane), None)
    if plane is None or not hasattr(plane, "grid"):  # a PLAN mutation left no grid
        return f"block {i}: no grid"
    grid = plane.grid if b.factor == "U" else plane.vgrid
    rows = grid[0] * grid[1]
    if b.coding == fmt.SPARSE:
        try:
            matrix = coding.from_symbols(*b.data(), (rows, b.count))
        except SvdiError:
            return f"block {i}: not a valid sparse block"
        predictor = c.int(0, 3)
        residuals = coding.predict(matrix.T.reshape(b.count, *grid), predictor)
        if np.abs(residuals).max(initial=0) >= 2**31:
            return f"block {i}: residuals past int32"
        d.replace(i, (residuals.astype(np.int32),), coding=fmt.DENSE, predictor=predictor)
        return f"block {i} sparse -> dense p{predictor}"
    (residuals,) = b.data()
    if residuals.size != b.count * rows:
        return f"block {i}: not a valid dense block"
    grids = coding.unpredict(residuals.reshape(b.count, *grid), b.predictor)
    if np.abs(grids).max(initial=0) >= 2**31:
        return f"block {i}: integers past int32"
    d.replace(i, coding.to_symbols(grids.reshape(b.count, rows).T), coding=fmt.SPARSE,
              predictor=0)
    return f"block {i} dense -> sparse"


def m_block_count(c: grammar.Choices, d: Draft) -> str:
    """A factor block's count changed, its arrays kept (a version 5 record has no first
    component: it follows from the count of the blocks before, spec §4.2): a sparse block's
    symbols read as rows of another width, gaps, overlaps, components past the rank."""
    i = d.pick_block(c)
    if i is None:
        return "no factor block"
    b = d.blocks[i]
    new = max(0, min(255, grammar.pick(c, [b.count + 1, b.count - 1, 0, b.count + 2, 255])))
    d.replace(i, b.data(), count=new)
    return f"block {i} count {b.count} -> {new}"


def m_block_order(c: grammar.Choices, d: Draft) -> str:
    """A block dropped, duplicated, or two blocks swapped."""
    what = c.int(0, 2)
    pool = d.factor_blocks() if c.chance(0.8) else list(range(len(d.blocks)))
    if not pool:
        return "no block"
    i = grammar.pick(c, pool)
    if what == 0:
        d.blocks.pop(i)
        return f"block {i} dropped"
    if what == 1:
        d.blocks.insert(c.int(0, len(d.blocks)), d.blocks[i])
        return f"block {i} duplicated"
    j = c.int(0, len(d.blocks) - 1)
    d.blocks[i], d.blocks[j] = d.blocks[j], d.blocks[i]
    return f"blocks {i} and {j} swapped"


def m_sigma(c: grammar.Choices, d: Draft) -> str:
    """A singular value set to 0, a negative, a non-finite, a tiny or a huge one, or two
    swapped (out of order)."""
    found = [i for i, b in enumerate(d.blocks) if b.factor == "S"]
    if not found:
        return "no S block"
    i = grammar.pick(c, found)
    (s,) = d.blocks[i].data()
    s = s.astype(np.float32)  # a copy
    at = c.int(0, s.size - 1) if s.size else 0
    if s.size > 1 and c.chance(0.2):
        s[[0, at]] = s[[at, 0]]
    elif s.size:
        s[at] = grammar.pick(c, [0.0, -1.0, np.nan, np.inf, 1e-45, 1e-30, 3.4e38,
                                 float(s[at]) * 2, float(s[at]) / 1024])
    d.replace(i, (s,))
    return f"S block {i}: value {at}"


def m_plan(c: grammar.Choices, d: Draft) -> str:
    """A PLAN field at or past its limit: the shift, the step, the rank, the patch side, the
    deblocking strengths."""
    at = c.int(0, len(d.planes) - 1)
    p = d.planes[at]
    name = grammar.pick(c, ["shift", "step", "rank", "patch", "deblock"])
    if name == "shift":
        new: Any = max(0, min(255, grammar.pick(c, [0, 1, 62, 63, 64, 255, (p.shift or 0) + 1,
                                                    (p.shift or 0) - 1])))
    elif name == "step":
        new = grammar.pick(c, [0.0, -1.0, float("nan"), float("inf"), 1e30, 1e-30,
                               p.step * 2, p.step / 2])
    elif name == "rank":
        new = max(0, grammar.pick(c, [0, p.rank - 1, p.rank + 1, 255]))
    elif name == "patch":
        new = grammar.pick(c, [0, 1, 2, 3, 4, 8, 16, 32, 64])
    else:
        new = grammar.pick(c, [fmt.NO_DEBLOCK, (1, 1, 1), (255, 255, 255)])
    try:
        d.planes[at] = dataclasses.replace(p, **{name: new})
    except (ValueError, TypeError, ZeroDivisionError):
        return f"plane {at} {name}: not representable"
    return f"plane {at} {name} {getattr(p, name)} -> {new}"


MUTATIONS: dict[str, Callable[[grammar.Choices, Draft], str]] = {
    "dense_values": m_dense_values,
    "symbols": m_symbols,
    "escapes": m_escapes,
    "predictor": m_predictor,
    "recode": m_recode,
    "dense_size": m_dense_size,
    "block_count": m_block_count,
    "block_order": m_block_order,
    "sigma": m_sigma,
    "plan": m_plan,
}
#: How often each is picked: the blocks' arrays most, the fields that end a decode before
#: WholePlane (sizes, order, PLAN) least.
WEIGHTS = {"dense_values": 5, "symbols": 5, "escapes": 4, "predictor": 2, "recode": 2,
           "dense_size": 1, "block_count": 1, "block_order": 1, "sigma": 2, "plan": 2}
_PICKS = [name for name, weight in WEIGHTS.items() for _ in range(weight)]


@dataclass
class Case:
    data: bytes
    seed: str
    notes: list[str]

    def __str__(self) -> str:
        return f"seed {self.seed!r}: " + "; ".join(self.notes)


def generate(c: grammar.Choices) -> Case:
    """A seed file changed by one to three mutations (none for one input in twenty), written
    again; a tenth of the files then have a few bytes changed, CRCs repaired."""
    name, data = grammar.pick(c, seed_files())
    box = fmt.unpack(data)
    draft = Draft(box, list(box.planes), list(box.blocks))
    count = 0 if c.chance(0.05) else c.int(1, 3)
    for _ in range(count):
        what = grammar.pick(c, _PICKS)
        draft.notes.append(f"{what}: {MUTATIONS[what](c, draft)}")
    try:
        out = draft.data()
    except (SvdiError, OverflowError, ValueError, struct.error) as exc:  # a PLAN field the writer refuses
        draft.notes.append(f"not written ({exc}); the seed instead")
        out = data
    if c.chance(0.1):
        changed = bytearray(out)
        for _ in range(grammar.pick(c, [1, 1, 2, 4])):
            at = c.int(8, len(changed) - 1)
            changed[at] = c.int(0, 255) if c.chance(0.7) else changed[at] ^ 1 << c.int(0, 7)
        out = fix_crcs(bytes(changed))
        draft.notes.append("bytes changed, CRCs repaired")
    return Case(out, name, draft.notes)


# ----------------------------------------------------------------------------- decoding

#: Since the process started: planes the files declare whose HEAD is read ("declared"), and
#: planes the compiled decodes prepared (`stream.whole_plane` asked, `counted`), those that
#: took WholePlane ("whole": built, or refused by its decompression or fill) and the others
#: ("general").
PLANES: collections.Counter[str] = collections.Counter()


@contextlib.contextmanager
def counted() -> Iterator[None]:
    """Count in PLANES each plane the decodes inside prepare, whole or general."""
    original = stream.whole_plane

    def counting(*args: Any, **kwargs: Any) -> Any:
        try:
            whole = original(*args, **kwargs)
        except SvdiError:  # raised past its checks: a block's frame or WholePlane's fill
            PLANES["whole"] += 1
            raise
        PLANES["whole" if whole is not None else "general"] += 1
        return whole
    stream.whole_plane = counting
    try:
        yield
    finally:
        stream.whole_plane = original


def _run(call: Callable[[], Any]) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return "ok", call()
        except SvdiError:
            return "SvdiError", None


def _pillow(data: bytes) -> None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise SvdiError(str(exc)) from None


def verdicts(data: bytes) -> dict[str, str]:
    """The verdict of every path on `data`; raises Mismatch if they or the pixels differ."""
    found: dict[str, str] = {}
    pixels: dict[str, np.ndarray] = {}
    try:
        header, _ = fmt.read_headers(io.BytesIO(data))
    except SvdiError:
        header = None
    else:
        PLANES["declared"] += header.channels
    small = header is None or header.counted_pixels <= MAX_PIXELS  # as the decoders count
    with kernels_restored():
        for kernels in KERNELS:
            os.environ["SVDCODEC_KERNELS"] = kernels
            with counted() if kernels == "1" else contextlib.nullcontext():
                found[f"decode/{kernels}"], pixels[f"decode/{kernels}"] = _run(
                    lambda: svdcodec.decode(data, max_pixels=MAX_PIXELS))
        os.environ["SVDCODEC_KERNELS"] = KERNELS[0]
        if small:
            found["reference"], pixels["reference"] = _run(lambda: decode_reference(data))
            if header is None or (header.sample_type, header.channels) in grammar.PILLOW_MODES:
                found["pillow"], _ = _run(lambda: _pillow(data))
    check_agreement(found, pixels)
    return found


def choices_of(data: bytes, provider: Any = None) -> grammar.Choices:
    """The fuzzer's choices from its input (atheris' provider), else a random generator
    seeded by the input's first 8 bytes (the smoke test, without atheris)."""
    if provider is not None:
        return grammar.ProviderChoices(provider)
    return grammar.RandomChoices(int.from_bytes(data[:8].ljust(8, b"\0"), "little"))


def target(data: bytes, provider: Any = None) -> None:
    """One fuzzer input: the file it makes of a seed, through every path."""
    if __name__ == "__main__":
        provider = atheris.FuzzedDataProvider(data)
    case = generate(choices_of(data, provider))
    try:
        verdicts(case.data)
    except Mismatch as exc:
        raise Mismatch(f"{exc}\nfile: {case}") from None


def replay(data: bytes) -> Case:
    """A saved fuzzer input (corpus, crash) as the fuzzer read it, if atheris is installed;
    returns the file it made."""
    try:
        import atheris as provider_module
    except ImportError:
        case = generate(choices_of(data))
    else:
        case = generate(choices_of(data, provider_module.FuzzedDataProvider(data)))
    try:
        verdicts(case.data)
    except Mismatch as exc:
        raise Mismatch(f"{exc}\nfile: {case}") from None
    return case


if __name__ == "__main__":
    if sys.argv[1:2] == ["--save"]:
        saved = Path(sys.argv[2]).read_bytes()
        import atheris as provider_module
        made = generate(choices_of(saved, provider_module.FuzzedDataProvider(saved)))
        Path(sys.argv[3]).write_bytes(made.data)
        print(made)
    else:
        atheris.Setup(sys.argv, target)
        atheris.Fuzz()
