"""Helpers shared by the test modules: the spec and fuzz scripts as modules, a photo."""

from __future__ import annotations

import gc
import importlib.util
import os
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = ROOT / "tests" / "regressions"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


def kernels_built() -> bool:
    """Whether the C extension svdcodec.runtime._kernels is built."""
    try:
        import svdcodec.runtime._kernels  # noqa: F401
    except ImportError:
        return False
    return True


#: The mark of a module of compiled-kernel tests: skipped where the extension is not built,
#: unless CI requires it (SVDCODEC_REQUIRE_KERNELS=1: there they fail instead).
NEEDS_KERNELS = pytest.mark.skipif(not kernels_built()
                                   and os.environ.get("SVDCODEC_REQUIRE_KERNELS") != "1",
                                   reason="the C extension is not built")


def load_module(path: Path) -> ModuleType:
    """Import a script that is not part of a package (spec/, tests/fuzz/), once."""
    name = f"_script_{path.parent.name}_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def make_vectors() -> ModuleType:
    """spec/make_vectors.py, the vector generator and its file-building helpers."""
    return load_module(ROOT / "spec" / "make_vectors.py")


def fixture_maker() -> ModuleType:
    """js/test/make_fixtures.py, the JS decoder's fixtures: files the reference decodes, which
    js/svdi.js must decode alike."""
    return load_module(ROOT / "js" / "test" / "make_fixtures.py")


def photo(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture and noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels))
    for c in range(channels):
        out[..., c] = (128 + 90 * np.sin(x / (17 + 5 * c) + y / 23) * np.cos(y / (31 - 3 * c))
                       + 20 * np.sin(x * y / 900) + rng.normal(0, 6, (height, width)))
    return np.clip(out, 0, 255).astype(np.uint8)


@contextmanager
def kernels(on: bool) -> Iterator[None]:
    """The compiled kernels on or off for the calls inside (read at call time)."""
    before = os.environ.get("SVDCODEC_KERNELS")
    os.environ["SVDCODEC_KERNELS"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["SVDCODEC_KERNELS"]
        else:
            os.environ["SVDCODEC_KERNELS"] = before


def compiled_kernels():  # type: ignore[no-untyped-def]
    """The compiled module, also when the suite runs on the numpy path (SVDCODEC_KERNELS=0)."""
    from svdcodec.runtime import kernels as kernel_module

    with kernels(True):
        return kernel_module.get()


def decode_everywhere(data: bytes, components: int | None = None) -> np.ndarray:
    """The decoded samples (of the first `components` components: a preview), the same on the
    compiled path, the numpy path and the reference."""
    import svdcodec
    from svdcodec.decoder.reference import decode_reference

    with kernels(True):
        fast = svdcodec.decode(data, components=components)
    with kernels(False):
        numpy_path = svdcodec.decode(data, components=components)
    reference = decode_reference(data, components=components)
    np.testing.assert_array_equal(fast, numpy_path)
    np.testing.assert_array_equal(fast, reference)
    return fast


def format_version(data: bytes) -> int:
    """The HEAD chunk's version field of .svdi bytes (spec §2)."""
    return int.from_bytes(data[16:18], "big")


class StreamCount:
    """How many residual blocks' zstd streams are open at once (spec §5 Resources), counted by
    wrapping `ResidualBlock.reader` (`watch`): `most` since the last `reset`."""

    def __init__(self) -> None:
        self.open = 0
        self.most = 0

    def reset(self) -> None:
        self.most = self.open

    def watch(self, monkeypatch: Any) -> StreamCount:
        from svdcodec.format import blocks

        reader = blocks.ResidualBlock.reader

        def counted(block: blocks.ResidualBlock) -> blocks.FrameReader:
            stream = reader(block)
            finish = stream.finish
            self.open += 1
            self.most = max(self.most, self.open)

            def finished() -> None:
                self.open -= 1
                finish()
            stream.finish = finished  # type: ignore[method-assign]
            return stream

        monkeypatch.setattr(blocks.ResidualBlock, "reader", counted)
        return self


def traced_peak(call: Callable[[], Any]) -> tuple[BaseException | None, int]:
    """(the exception `call` raised or None, peak traced memory in bytes during the call)."""
    try:  # warm-up: lazy imports and caches are not the input's fault
        call()
    except Exception:  # noqa: BLE001
        pass
    gc.collect()
    tracemalloc.start()
    try:
        call()
        error: BaseException | None = None
    except Exception as exc:  # noqa: BLE001
        error = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return error, peak
