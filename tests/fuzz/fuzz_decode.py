#!/usr/bin/env python3
"""atheris harness: svdcodec.decode on arbitrary bytes, in full and reduced (thumbnails).

    PYTHONPATH=. python tests/fuzz/fuzz_decode.py /tmp/svdi-decode tests/fuzz/corpus

Each input is decoded as it is and with its chunk CRCs repaired, so that mutations get past
the CRC check. SvdiError is the expected rejection; any other exception, and any warning
(numpy overflow), is a crash. Images are capped at 2^20 pixels so that the fuzzer hunts
crashes, not the documented cost of a maximal file.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from crc_fix import fix_crcs  # noqa: E402

if __name__ == "__main__":  # fuzzing: instrument svdcodec as it is imported
    import atheris

    with atheris.instrument_imports(include=["svdcodec"]):
        import svdcodec
        from svdcodec import SvdiError
else:  # imported by tests/test_fuzz_corpus.py, which needs no atheris
    import svdcodec
    from svdcodec import SvdiError

MAX_PIXELS = 1 << 20
#: The sample types a file may declare (spec §2, both versions).
SAMPLE_DTYPES = set(svdcodec.format.SAMPLE_TYPES.values())


def target(data: bytes) -> None:
    """Decode `data`, then `data` with its CRCs repaired; raise unless each decodes or raises
    SvdiError."""
    check(data)
    fixed = fix_crcs(data)
    if fixed != data:
        check(fixed)


def check(data: bytes) -> None:
    """Decode in full, and as a thumbnail at 1/2, 1/4 or 1/8 (its own route through the
    factors: U blocks summed straight into the reduced product): each SvdiError or an image
    array, with no warning."""
    for reduce in (1, 2 << len(data) % 3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                pixels = svdcodec.decode(data, max_pixels=MAX_PIXELS, reduce=reduce)
            except SvdiError:
                continue
        if pixels.ndim not in (2, 3) or pixels.dtype not in SAMPLE_DTYPES:
            raise AssertionError(f"decoded to {pixels.shape} {pixels.dtype}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
