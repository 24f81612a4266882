"""The compiled loops (C extension svdcodec.runtime._kernels, csrc/kernels.c) for the per-sample
work that numpy does in many passes.

Why: run/level symbols and the Y'CbCr output stage are sequential per row. numpy does them
with a dozen whole-array passes (cumulative sums, masks, scatters) and Pillow's colour
conversion needs planar copies and a repack; one compiled pass per sample is several times
faster (benchmarks/kernel_parity.py --time). The encoder's input stage likewise:
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

import functools
import os
import threading
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np


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
_colour: dict[str, np.ndarray | None] = {}

#: JFIF's Y'CbCr -> RGB coefficients of Cr (R), Cb and Cr (G) and Cb (B), as Pillow's tables
#: scale them: 6 fractional bits.
JFIF_COEFFICIENTS = (1.402, -0.34414, -0.71414, 1.772)


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
PACKAGE_ROOT = Path(__file__).resolve().parents[2]


def how_to_build(package_root: Path = PACKAGE_ROOT) -> str:
    """What to do where the extension did not import. Python run inside a clone imports the
    clone's unbuilt `svdcodec/` (the current folder comes first on sys.path) rather than the
    copy `pip install .` built: reinstalling would change nothing there, so the advice names
    the clone."""
    if (package_root / "setup.py").is_file() and (package_root / "csrc" / "kernels.c").is_file():
        return (f"This svdcodec is the source tree of a clone ({package_root / 'svdcodec'}), "
                "imported ahead of any installed copy when Python runs in the clone's top "
                "folder: run it from another folder to use the installed package, or build "
                "the clone's own extension (pip install -e . or python setup.py build_ext "
                "--inplace)")
    return ("Reinstall svdcodec with a C compiler available (pip install -v . shows the "
            "build)")


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


def colour_constants() -> np.ndarray | None:
    """The kernels' Y'CbCr -> RGB multipliers (float32 JFIF coefficients x 64), computed once,
    or None if their arithmetic (csrc/kernels.c, rgb_pixel: t = trunc(k * x + 1/2) in float32,
    x = Cb - 128 or Cr - 128) does not give `pillow_tables()` for every Cb and Cr: then the
    kernels do not convert colour."""
    with _lock:
        if "ycc" not in _colour:
            _colour["ycc"] = _checked_constants()
    return _colour["ycc"]


def _checked_constants() -> np.ndarray | None:
    tables = pillow_tables()
    k = np.array(JFIF_COEFFICIENTS, dtype=np.float32) * np.float32(64)
    if tables is None:
        return None
    x = np.arange(-128, 128, dtype=np.float32)
    t = [np.trunc(kk * x + np.float32(0.5)).astype(np.int32) for kk in k]
    ours = (t[0] >> 6, (t[1][:, None] + t[2][None, :]) >> 6, t[3] >> 6)
    return k if all(np.array_equal(a, b) for a, b in zip(ours, tables)) else None


def pillow_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Pillow's Y'CbCr -> RGB conversion as R = Y' + rt[Cr], G = Y' + gt[Cb, Cr],
    B = Y' + bt[Cb] (clamped), from `pillow_terms`; None if Pillow's conversion is not of
    that form for every Cb, Cr and three luma values (then the kernels do not convert
    colour)."""
    table, additive = pillow_terms()
    if not additive:
        return None
    rt, gt, bt = table[..., 0], table[..., 1], table[..., 2]
    if not (np.all(rt == rt[:1]) and np.all(bt == bt[:, :1])):
        return None
    return rt[0].astype(np.int32), gt.copy(), bt[:, 0].astype(np.int32)


#: Cb values per Pillow conversion of `pillow_terms` (a divisor of 256).
PROBE_CB_STEP = 32


@functools.cache
def pillow_terms() -> tuple[np.ndarray, bool]:
    """What Pillow's Y'CbCr -> RGB conversion adds to Y' in each of R, G and B, by the 8-bit
    Cb and Cr: (256, 256, 3) int16 [Cb, Cr, channel], read-only, read off Pillow itself at
    Y' = 0 (or at 255 where the term is negative: no clamp at one end or the other); and
    whether the conversion is Y' + term, clamped, at a third luma (128) too.

    Converted once per process, a few Cb at a time, the three luma values' images stacked:
    the kernels' check (`pillow_tables`) and the encoder's correction
    (`codec.colour.decoder_bias`) both read it, so a process that encodes (and decodes a
    sample to judge the deblocking filter) converts once, not once for each."""
    from PIL import Image
    step = PROBE_CB_STEP
    table = np.empty((256, 256, 3), dtype=np.int16)  # every term is within -255..255
    additive = True
    lumas = np.repeat(np.array([0, 255, 128], dtype=np.uint8), step * 256).reshape(3 * step, 256)
    cr = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (3 * step, 1)))
    for lo in range(0, 256, step):  # a few Cb at a time: buffers reused, not new pages each
        cb = np.repeat(np.tile(np.arange(lo, lo + step, dtype=np.uint8), 3), 256)
        planes = [Image.fromarray(lumas), Image.fromarray(cb.reshape(3 * step, 256)), cr]
        rgb = np.asarray(Image.merge("YCbCr", planes).convert("RGB"))
        dark, bright, middle = rgb[:step], rgb[step:2 * step], rgb[2 * step:]
        part = table[lo:lo + step]
        part[...] = bright
        part -= 255
        np.copyto(part, dark, where=dark > 0)
        centred = part + 128
        additive = additive and np.array_equal(np.clip(centred, 0, 255, out=centred), middle)
    table.flags.writeable = False
    return table, additive
