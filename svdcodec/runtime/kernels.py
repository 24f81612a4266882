"""The compiled loops (C extension svdcodec.runtime._kernels, csrc/kernels.c) for the per-sample
work that numpy does in many passes.

Why: run/level symbols and the Y'CbCr output stage are sequential per row. numpy does them
with a dozen whole-array passes (cumulative sums, masks, scatters, and a table gather per
pixel for the colour conversion); one compiled pass per sample is several times faster
(benchmarks/kernel_parity.py --time). The encoder's input stage likewise:
colour conversion, chroma halving, edge padding and the patch transpose are one pass from the
uint8 pixels instead of four over float32 temporaries.

The extension is optional (built by `pip install .` where a C compiler is found). `get()`
returns it when it is importable, else None: callers then take the numpy path, which stays the
reference. Both give the same integers, bytes and pixels (tests/test_kernels.py compares them);
the encoder's error sums differ in the last bits (float64 here, float32 per band there).
SVDCODEC_KERNELS=0 forces the numpy path; =1 requires the compiled one (`KernelsUnavailable`
if it is not built); unset, a failed import is said once (a RuntimeWarning,
NUMPY_PATH_WARNING). `backend()` says which runs.
"""

from __future__ import annotations

import os
import threading
import warnings
from types import ModuleType


class KernelsUnavailable(ImportError):
    """SVDCODEC_KERNELS=1 asks for the compiled kernels and they are not built."""


#: Error codes of the sparse kernels (0 is success).
SPARSE_ERRORS = {
    1: "row ends do not match the row count",
    2: "escape counts do not match the side streams",
    3: "invalid symbol",
    4: "component index beyond the block",
    5: "escaped value of zero",
}

_lock = threading.Lock()
_loaded: dict[str, ModuleType | None] = {}
_import_error: list[str] = []  # why the extension did not import


#: The environment as os.environ stores it (POSIX: bytes keys and values), read directly by
#: `get`: a small encode asks for the kernels a few hundred times, and os.environ.get's
#: Mapping machinery then costs more than the loops some of those calls run. os.environ
#: updates it on every change (os.environ[...] = ..., monkeypatch.setenv, putenv does not).
_ENVIRON: dict | None = getattr(os.environ, "_data", None)
try:
    _SETTING_KEY = os.environ.encodekey("SVDCODEC_KERNELS")  # type: ignore[attr-defined]
    _OFF, _ON = (os.environ.encodevalue(v) for v in "01")  # type: ignore[attr-defined]
except AttributeError:  # not CPython's os.environ: the public way only
    _ENVIRON = None


def _setting() -> str:
    """SVDCODEC_KERNELS: "0", "1" or anything else (unset)."""
    if _ENVIRON is None:
        return os.environ.get("SVDCODEC_KERNELS", "")
    value = _ENVIRON.get(_SETTING_KEY)
    return "0" if value == _OFF else "1" if value == _ON else ""


def get() -> ModuleType | None:
    """The compiled kernels, or None for the numpy path (SVDCODEC_KERNELS=0, or not built).
    The extension is cheap enough to load for the smallest image (docs/c-kernels.md). Raises
    KernelsUnavailable under SVDCODEC_KERNELS=1 if it is not built."""
    if _ENVIRON is not None:  # `_setting`, inline: a small decode asks a dozen times
        value = _ENVIRON.get(_SETTING_KEY)
        setting = "0" if value == _OFF else "1" if value == _ON else ""
    else:
        setting = _setting()
    if setting == "0":
        return None
    module = _loaded["c"] if "c" in _loaded else _compiled()
    if module is None and setting == "1":
        raise KernelsUnavailable(
            "SVDCODEC_KERNELS=1 but the C extension svdcodec.runtime._kernels is not built "
            f"({_import_error[0]}); {how_to_build()}")
    return module


def backend() -> str:
    """Which path the codec runs now: "c" (the compiled kernels) or "numpy"."""
    return "numpy" if _setting() == "0" or _compiled() is None \
        else "c"


#: Said once a process where the extension does not import: `pip install .` without a C
#: compiler succeeds (the extension is optional) and nothing else would say that this install
#: runs several times slower.
NUMPY_PATH_WARNING = (
    "svdcodec's C kernels (svdcodec.runtime._kernels) did not import ({error}): running the "
    "numpy path, the same bytes and pixels 4-10 times slower. {advice}; or set "
    "SVDCODEC_KERNELS=0 to choose the numpy path and silence this warning.")


#: The folder holding this `svdcodec` package: site-packages, or the top folder of a clone.
#: (os.path, not pathlib: `import svdcodec` would pull in pathlib and urllib.parse for this.)
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def how_to_build(package_root: str | os.PathLike[str] = PACKAGE_ROOT) -> str:
    """What to do where the extension did not import. Python run inside a clone imports the
    clone's unbuilt `svdcodec/` (the current folder comes first on sys.path) rather than the
    copy `pip install .` built: reinstalling would change nothing there, so the advice names
    the clone."""
    if (os.path.isfile(os.path.join(package_root, "setup.py"))
            and os.path.isfile(os.path.join(package_root, "csrc", "kernels.c"))):
        return (f"This svdcodec is the source tree of a clone "
                f"({os.path.join(package_root, 'svdcodec')}), "
                "imported ahead of any installed copy when Python runs in the clone's top "
                "folder: run it from another folder to use the installed package, or build "
                "the clone's own extension (pip install -e . or python setup.py build_ext "
                "--inplace)")
    return ("Reinstall svdcodec with a C compiler available, past pip's cache of the wheel "
            "built without one (pip install --no-cache-dir --force-reinstall svdcodec, or . "
            "in a clone; -v shows the build)")


def _compiled() -> ModuleType | None:
    """The extension module, imported once; None if it is not built."""
    if "c" not in _loaded:
        with _lock:
            if "c" not in _loaded:
                try:
                    from . import _kernels
                except ImportError as error:
                    _import_error.append(str(error))
                    _loaded["c"] = None
                    if _setting() == "":  # "1" raises KernelsUnavailable; "0" never imports
                        message = NUMPY_PATH_WARNING.format(error=error, advice=how_to_build())
                        warnings.warn(message, RuntimeWarning, stacklevel=4)
                else:
                    _loaded["c"] = _kernels
    return _loaded["c"]
