#!/usr/bin/env python3
"""atheris harness: encode -> decode of small fuzzed arrays in every sample type and channel
count, with fuzzed quality, layout and max_error (every decoded sample within it).

    PYTHONPATH=. python tests/fuzz/fuzz_roundtrip.py /tmp/svdi-roundtrip

Encoding may raise SvdiError only for float input holding NaN or infinity, float64 samples
from 2^1000 up (their reconstruction may overflow float64: refused), or a max_error
too fine for the float samples' range (|x| >= 2^30 E) or 32-bit integers spread over more than
2^30 (a residual may then exceed 2^31 steps); decoding the encoder's output must never
fail, and must give the input's shape and sample type, finite for float32, every sample within
max_error when given. Anything else is a crash.
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

#: Every sample type of the format (spec §2) with 1 to 6 channels.
COMBOS = [(dtype, c) for dtype in svdcodec.format.SAMPLE_TYPES.values() for c in range(1, 7)]
LAYOUTS = ["auto", "plain", "patch", "patch2", "patch4", "patch16", "patch32"]
MAX_SIDE = 24
#: max_error choices: lossy (None), lossless (0; 0.01 for floats, whose E = 0 the encoder may
#: refuse), and small bounds; the decoded samples must keep the bound.
BOUNDS = [None, None, None, 0, 1, 2, 0.5]


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
    bound = BOUNDS[fdp.ConsumeIntInRange(0, len(BOUNDS) - 1)]
    max_error = None if bound is None else (bound if dtype.kind != "f" or bound else 0.01)
    raw = fdp.ConsumeBytes(size).ljust(size, b"\0")
    pixels = np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype)
    pixels = pixels.reshape((height, width) if squeeze else (height, width, channels))
    try:
        encoded = svdcodec.encode(pixels, quality=quality, layout=layout, max_error=max_error)
    except SvdiError:
        if dtype.kind == "f" and not np.all(np.isfinite(pixels)):
            return
        # float64 near the largest float64: the reconstruction may overshoot it (refused).
        if dtype == np.float64 and np.max(np.abs(pixels)) >= 2.0**1000:
            return
        # A float bound too fine for the samples' range: each residual q = r / (2E) must fit
        # 31 bits, and |r| <= 2 max|x|, so samples below 2^30 E are always accepted.
        if dtype.kind == "f" and max_error and np.max(np.abs(pixels)) >= 2**30 * max_error:
            return
        # 32-bit integers spread over more than 2^30: the residual of a layer that cannot
        # follow them may exceed 2^31 steps (spec §4.1's |q| limit).
        if dtype.kind in "iu" and dtype.itemsize == 4 and max_error is not None \
                and int(pixels.max()) - int(pixels.min()) > 2**30:
            return
        raise
    decoded = svdcodec.decode(encoded, max_pixels=None)
    expected = (height, width) + ((channels,) if channels > 1 else ())
    if decoded.shape != expected or decoded.dtype != dtype:
        raise AssertionError(f"{pixels.shape} {dtype} decoded as {decoded.shape} "
                             f"{decoded.dtype}")
    if dtype.kind == "f" and not np.all(np.isfinite(decoded)):
        raise AssertionError("finite float input decoded to NaN or infinity")
    if max_error is not None:
        error = np.max(np.abs(decoded.astype(np.float64) - pixels.reshape(decoded.shape)),
                       initial=0.0)
        if error > max_error:
            raise AssertionError(f"max_error={max_error} but a sample is off by {error}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
