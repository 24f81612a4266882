"""Helpers shared by the test modules: loading spec/ and tests/fuzz/ scripts as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = ROOT / "tests" / "regressions"
CORPUS = ROOT / "tests" / "fuzz" / "corpus"


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
