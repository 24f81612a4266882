"""Optional compiled loops (numba) for the per-sample work that numpy does in many passes.

Why: run/level symbols and the Y'CbCr output stage are sequential per row. numpy does them
with a dozen whole-array passes (cumulative sums, masks, scatters) and Pillow's colour
conversion needs planar copies and a repack; one compiled pass per sample is several times
faster (tools/bench.py with SVDCODEC_KERNELS=0 and =1; numbers in spec §6). The encoder's input
stage likewise: colour conversion, chroma halving, edge padding and the patch transpose are one
pass from the uint8 pixels instead of four over float32 temporaries.

numba is optional (`pip install "svdcodec[fast]"`). `get(samples)` returns the kernels
(`_numba_kernels`) when numba is installed and the process has coded enough samples to repay
loading them (LOAD_AFTER), else None: callers then take the numpy path, which stays the
reference.
Both give the same integers and pixels (tests/test_kernels.py compares them); the encoder's
error sums differ in the last bits (float64 here, float32 per band there).
SVDCODEC_KERNELS=0 turns the kernels off, =1 on from the first call.
"""

from __future__ import annotations

import os
import threading
from types import ModuleType

import numpy as np

#: Samples (pixels x channels) a process codes before numba is loaded. Loading costs about
#: 0.4 s once (import, compiled code from numba's cache); the kernels save about 3 ms per
#: million samples decoded, so a process that codes one small image never pays for them.
LOAD_AFTER = 1 << 26

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
_seen = [0]
_colour: dict[str, np.ndarray | None] = {}

#: JFIF's Y'CbCr -> RGB coefficients of Cr (R), Cb and Cr (G) and Cb (B), as Pillow's tables
#: scale them: 6 fractional bits.
JFIF_COEFFICIENTS = (1.402, -0.34414, -0.71414, 1.772)


def get(samples: int = 0) -> ModuleType | None:
    """The compiled kernels, or None for the numpy path. Each encode or decode call asks with
    its image's sample count; numba is loaded once the process has asked for LOAD_AFTER samples
    in all. Deeper calls ask with none and get the kernels only once they are loaded."""
    setting = os.environ.get("SVDCODEC_KERNELS", "")
    if setting == "0":
        return None
    if "numba" in _loaded:
        return _loaded["numba"]
    with _lock:
        _seen[0] += samples
        if "numba" not in _loaded and (_seen[0] >= LOAD_AFTER or setting == "1"):
            try:
                from . import _numba_kernels
            except ImportError:
                _loaded["numba"] = None
            else:
                _loaded["numba"] = _numba_kernels
    return _loaded.get("numba")


def colour_constants() -> np.ndarray | None:
    """The kernels' Y'CbCr -> RGB multipliers (float32 JFIF coefficients x 64), computed once,
    or None if their arithmetic (`_numba_kernels._rgb_line`: t = trunc(k * x + 1/2) in float32,
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
    B = Y' + bt[Cb] (clamped), read off Pillow itself; None if Pillow's conversion is not of
    that form for every Cb, Cr and two luma values (then the kernels do not convert colour)."""
    from PIL import Image
    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8),
                         indexing="ij")
    out = []
    for luma in (0, 255, 128):
        planes = [Image.fromarray(np.full((256, 256), luma, np.uint8)),
                  Image.fromarray(cb), Image.fromarray(cr)]
        out.append(np.asarray(Image.merge("YCbCr", planes).convert("RGB")).astype(np.int32))
    dark, bright, middle = out
    table = np.where(dark > 0, dark, bright - 255)  # no clamp at one end or the other
    if not np.array_equal(np.clip(128 + table, 0, 255), middle):
        return None
    rt, gt, bt = table[..., 0], table[..., 1], table[..., 2]
    if not (np.all(rt == rt[:1]) and np.all(bt == bt[:, :1])):
        return None
    return rt[0].copy(), gt.astype(np.int16), bt[:, 0].copy()
