#!/usr/bin/env python3
"""atheris harness: files built from the spec's grammar (grammar.py), every decode path.

    PYTHONPATH=. python tests/fuzz/fuzz_structure.py /tmp/svdi-structure tests/fuzz/corpus_structure

The fuzzer's bytes steer the generator's choices (atheris' FuzzedDataProvider), so every input
is a structured file with valid CRCs: mode, layouts, block codings, frame shapes and the
defects applied. Each file goes through the numpy path (SVDCODEC_KERNELS=0), the compiled
kernels (=1, when the C extension is built), the whole-array reference decoder and Pillow (for
the modes it opens); a quarter of the inputs also through read_factors and a quarter through
the decode with every sparse block streamed by rows instead of held (pieces of 64 or 1,024
bytes), on a kernel path the fuzzer picks. The smoke test (tests/test_structure_fuzz.py) runs
every extra on every path for each file; the fuzzer spreads them over its inputs, since the
64-byte streamed decode on the numpy path alone costs more than all other paths together.
A crash is: any exception but SvdiError (Pillow: OSError), a warning, verdicts that differ
between paths, or pixels that differ between the decoders.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from dataclasses import dataclass
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

#: Fuzzing (not imported by tests/test_structure_fuzz.py, which needs no atheris)
FUZZING = __name__ == "__main__"
with instrumented(FUZZING):
    import svdcodec
    from svdcodec import SvdiError
    from svdcodec.decoder import plane as plane_module
    from svdcodec.decoder.reference import decode_reference
    from svdcodec.runtime import band_sizes
if FUZZING:
    import atheris

import grammar
import numpy as np
from PIL import Image

#: The generator's images are at most this many pixels; decode refuses more (the same limit
#: on every path, so a file declaring more is a rejection everywhere).
MAX_PIXELS = 1 << 12
KERNELS = kernel_settings(first="0")


def _run(call: Any) -> tuple[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return "ok", call()
        except SvdiError as exc:
            # read_factors' one verdict of its own: factors that overflow float32 where the
            # image does not (documented: it never returns non-finite factors).
            return "ok" if "factors overflow float32" in str(exc) else "SvdiError", None


def _pillow(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return np.asarray(im)
    except (OSError, Image.DecompressionBombError) as exc:
        raise SvdiError(str(exc)) from None


def _header(data: bytes) -> Any:
    """The file's HEAD as read_headers checks it, or None where it refuses it (then every
    path must refuse the file)."""
    try:
        header, _ = svdcodec.format.read_headers(io.BytesIO(data))
    except SvdiError:
        return None
    return header


@dataclass(frozen=True)
class Extras:
    """Which costly paths run besides decode on every kernel path, the reference and Pillow:
    read_factors and the streamed decode, each on the kernel paths listed (`piece`: bytes per
    streamed piece)."""
    read_factors: tuple[str, ...] = tuple(KERNELS)
    streamed: tuple[str, ...] = tuple(KERNELS)
    piece: int = 64

    @classmethod
    def chosen(cls, c: grammar.Choices) -> Extras:
        bits = c.int(0, 15)  # which extra (or none), its kernel path, the piece size
        path = (KERNELS[(bits >> 2) % len(KERNELS)],)
        return cls(path if bits & 3 == 0 else (), path if bits & 3 == 1 else (),
                   (64, 1024)[(bits >> 3) & 1])


def _streamed(data: bytes, piece: int = 64) -> np.ndarray:
    """decode with no sparse block held: every one streamed by rows, `piece` bytes at a time
    (64: a row or two per piece; the path large blocks take), on whichever kernels are set."""
    held, chunk = plane_module.held_bytes, band_sizes.CHUNK_BYTES
    plane_module.held_bytes = lambda *args: 1 << 62
    band_sizes.CHUNK_BYTES = piece
    try:
        return svdcodec.decode(data, max_pixels=MAX_PIXELS)
    finally:
        plane_module.held_bytes, band_sizes.CHUNK_BYTES = held, chunk


def verdicts(data: bytes, pillow: bool = True, extras: Extras = Extras()) -> dict[str, str]:
    """The verdict of every path on `data`; raises Mismatch if they or the pixels differ.
    Pillow runs only where the header is one of its modes (spec §2: the others are numpy
    arrays) and `pillow`; the paths without a pixel limit only within MAX_PIXELS."""
    found: dict[str, str] = {}
    pixels: dict[str, np.ndarray] = {}
    header = _header(data)
    large = header is not None and header.counted_pixels > MAX_PIXELS  # as the decoders count
    pillow = pillow and (header is None or (header.sample_type, header.channels)
                         in grammar.PILLOW_MODES)
    with kernels_restored():
        for kernels in KERNELS:
            os.environ["SVDCODEC_KERNELS"] = kernels
            found[f"decode/{kernels}"], pixels[f"decode/{kernels}"] = _run(
                lambda: svdcodec.decode(data, max_pixels=MAX_PIXELS))
            if kernels in extras.streamed:
                found[f"streamed/{kernels}"], pixels[f"streamed/{kernels}"] = _run(
                    lambda: _streamed(data, extras.piece))
            if not large and kernels in extras.read_factors:
                found[f"read_factors/{kernels}"], factors = _run(
                    lambda: svdcodec.read_factors(data, max_pixels=MAX_PIXELS))
                for f in factors or []:
                    if not all(np.all(np.isfinite(x)) for x in (f.U, f.S, f.Vt)):
                        raise Mismatch("read_factors returned non-finite factors")
        if not large:
            found["reference"], pixels["reference"] = _run(lambda: decode_reference(data))
        if pillow and not large:
            found["pillow"], pixels["pillow"] = _run(lambda: _pillow(data))
    check_agreement(found, {k: v for k, v in pixels.items() if k != "pillow"})
    return found


def target(data: bytes, provider: Any = None) -> None:
    """One fuzzer input: the file it steers the grammar to, through every path. Outside the
    fuzzer (no `provider`) the input seeds RandomChoices instead (`replay` reads it as the
    fuzzer did, when atheris is installed)."""
    if __name__ == "__main__":
        provider = atheris.FuzzedDataProvider(data)
    choices = grammar.ProviderChoices(provider) if provider else grammar.RandomChoices(
        int.from_bytes(data[:8].ljust(8, b"\0"), "little"))
    extras = Extras.chosen(choices) if provider else Extras()
    case = grammar.generate(choices)
    try:
        verdicts(case.data, case.pillow, extras)
    except Mismatch as exc:
        raise Mismatch(f"{exc}\nfile: {case}") from None


def replay(data: bytes) -> None:
    """A saved fuzzer input (corpus, crash) as the fuzzer read it, if atheris is installed."""
    try:
        import atheris as provider_module
    except ImportError:
        target(data)
    else:
        target(data, provider_module.FuzzedDataProvider(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
