#!/usr/bin/env python3
"""atheris harness: Image.open + load + save as PNG, through the SVDI Pillow plugin.

    PYTHONPATH=. python tests/fuzz/fuzz_pillow.py /tmp/svdi-pillow tests/fuzz/corpus

Each input is tried as it is and with its chunk CRCs repaired.
UnidentifiedImageError, OSError and DecompressionBombError are the expected rejections; any
other exception is a crash. Only the SVDI plugin is tried (formats=["SVDI"]), and images over
2^20 pixels are opened but not loaded.
"""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crc_fix import fix_crcs  # noqa: E402

if __name__ == "__main__":  # fuzzing: instrument svdcodec (and its plugin) as it is imported
    import atheris

    with atheris.instrument_imports(include=["svdcodec"]):
        import svdcodec  # registers the SVDI plugin
        from PIL import Image
else:  # imported by tests/test_fuzz_corpus.py, which needs no atheris
    import svdcodec
    from PIL import Image

MAX_PIXELS = 1 << 20
EXPECTED = (OSError, Image.DecompressionBombError)  # OSError includes UnidentifiedImageError


def target(data: bytes) -> None:
    """Open, load and re-save `data`, then `data` with its CRCs repaired; raise unless each
    succeeds or fails with an expected error."""
    check(data)
    fixed = fix_crcs(data)
    if fixed != data:
        check(fixed)


def check(data: bytes) -> None:
    """Open, load and save once; expected errors are swallowed, others propagate."""
    try:
        with warnings.catch_warnings():  # 16-bit RGB(A) opens at 8 bits and says so: expected
            warnings.simplefilter("ignore", svdcodec.pillow_plugin.ReducedDepthWarning)
            im = Image.open(io.BytesIO(data), formats=["SVDI"])
        with im:
            if im.width * im.height > MAX_PIXELS:
                return
            im.load()
            (im.convert("I") if im.mode == "F" else im).save(io.BytesIO(), format="PNG")
    except EXPECTED:
        return


if __name__ == "__main__":
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
