#!/usr/bin/env python3
"""atheris harness: encode -> decode of small fuzzed arrays in every sample type and channel
count, with fuzzed quality and layout.

    PYTHONPATH=. python tests/fuzz/fuzz_roundtrip.py /tmp/svdi-roundtrip

Encoding may raise SvdiError only for float input holding NaN or infinity; decoding the
encoder's output must never fail, and must give the input's shape and sample type, finite for
float32. Anything else is a crash.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

if __name__ == "__main__":  # fuzzing: instrument svdcodec as it is imported
    import atheris

    with atheris.instrument_imports(include=["svdcodec"]):
        import svdcodec
        from svdcodec import SvdiError
else:  # imported by tests/test_fuzz_corpus.py; target() then imports atheris itself
    import svdcodec
    from svdcodec import SvdiError

COMBOS = [(np.dtype(t), c) for t in (np.uint8, np.uint16, np.float32) for c in range(1, 5)]
LAYOUTS = ["auto", "plain", "patch", "patch2", "patch4", "patch16", "patch32"]
MAX_SIDE = 24


def target(data: bytes) -> None:
    """Round-trip the array that `data` describes; raise if the codec misbehaves."""
    import atheris  # the FuzzedDataProvider decides how the bytes are read

    fdp = atheris.FuzzedDataProvider(data)
    dtype, channels = COMBOS[fdp.ConsumeIntInRange(0, len(COMBOS) - 1)]
    height, width = fdp.ConsumeIntInRange(1, MAX_SIDE), fdp.ConsumeIntInRange(1, MAX_SIDE)
    squeeze = channels == 1 and fdp.ConsumeBool()
    quality = fdp.ConsumeIntInRange(1, 100)
    layout = LAYOUTS[fdp.ConsumeIntInRange(0, len(LAYOUTS) - 1)]
    size = height * width * channels * dtype.itemsize
    raw = fdp.ConsumeBytes(size).ljust(size, b"\0")
    pixels = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
    pixels = pixels.reshape((height, width) if squeeze else (height, width, channels))
    try:
        encoded = svdcodec.encode(pixels, quality=quality, layout=layout)
    except SvdiError:
        if dtype.kind == "f" and not np.all(np.isfinite(pixels)):
            return
        raise
    decoded = svdcodec.decode(encoded, max_pixels=None)
    expected = (height, width) + ((channels,) if channels > 1 else ())
    if decoded.shape != expected or decoded.dtype != dtype:
        raise AssertionError(f"{pixels.shape} {dtype} decoded as {decoded.shape} "
                             f"{decoded.dtype}")
    if dtype.kind == "f" and not np.all(np.isfinite(decoded)):
        raise AssertionError("finite float input decoded to NaN or infinity")


if __name__ == "__main__":
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
