"""What the harnesses that compare decode paths (fuzz_structure.py, fuzz_plane.py) share: the
failure they raise, which kernel paths they run, and the comparison of their verdicts and
pixels.

It imports nothing of svdcodec at import time, so that a harness can import it before its
instrumented imports of svdcodec (`instrumented`): atheris instruments only the modules
imported inside that block, and svdcodec imported earlier would run uninstrumented.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np


class Mismatch(AssertionError):
    """Decode paths that disagree on a file: a crash for the fuzzer, a failure for pytest."""


def instrumented(fuzzing: bool) -> AbstractContextManager[Any]:
    """The block to import svdcodec in: atheris' instrumentation of svdcodec when fuzzing;
    nothing otherwise (the smoke tests import a harness without atheris)."""
    if not fuzzing:
        return contextlib.nullcontext()
    import atheris

    return atheris.instrument_imports(include=["svdcodec"])


def kernel_settings(first: str) -> list[str]:
    """The SVDCODEC_KERNELS values a harness decodes with, `first` first ("1", the compiled
    kernels, only where the C extension is built). Call it after importing svdcodec."""
    if importlib.util.find_spec("svdcodec.runtime._kernels") is None:
        return ["0"]
    return [first, "1" if first == "0" else "0"]


@contextlib.contextmanager
def kernels_restored() -> Iterator[None]:
    """SVDCODEC_KERNELS as it was before the block, which sets it per path."""
    previous = os.environ.get("SVDCODEC_KERNELS")
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("SVDCODEC_KERNELS", None)
        else:
            os.environ["SVDCODEC_KERNELS"] = previous


def check_agreement(found: dict[str, str], pixels: dict[str, np.ndarray | None]) -> None:
    """Mismatch unless every path gave the same verdict and every decoded image is the same
    array (shape, type and samples) as the first."""
    if len(set(found.values())) != 1:
        raise Mismatch(f"verdicts differ: {found}")
    decoded = {k: v for k, v in pixels.items() if v is not None}
    if not decoded:
        return
    first_name, first = next(iter(decoded.items()))
    for name, p in decoded.items():
        if p.shape != first.shape or p.dtype != first.dtype or not np.array_equal(p, first):
            raise Mismatch(f"pixels of {name} differ from {first_name}")
