#!/usr/bin/env python3
"""Sizes of max_error files with whichever svdcodec is on the path, for the encoder's retry
without a layer (encoder.residual.bare_residual_bytes, docs/lossless.md): benchmarks/lossless.py's
sets (Kodak lossless, the 16-bit set at E = 0, 1, 2, 4), noise of 8 and 16 bits, and smooth
synthetic fields (ramps, whose bounded residuals are staircases). One JSON line per file; run it
once per tree and compare.

    PYTHONPATH=TREE python studies/bare_retry_study.py --corpus DIR {noise,medical,kodak,smooth}
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lossless as bench  # benchmarks/ is not a package: on the path above

import svdcodec


def noise_cases(kodim05: np.ndarray) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(11)
    k = kodim05.astype(np.int16)
    return [("u16 12-bit uniform 512", rng.integers(0, 4096, (512, 512), dtype=np.uint16)),
            ("u16 uniform 512", rng.integers(0, 65536, (512, 512), dtype=np.uint16)),
            ("i16 uniform 512", rng.integers(-32768, 32768, (512, 512), dtype=np.int16)),
            ("u8 uniform grey 512", rng.integers(0, 256, (512, 512), dtype=np.uint8)),
            ("u8 uniform rgb 256", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
            ("u8 6-bit noise grey 512", rng.integers(0, 64, (512, 512), dtype=np.uint8)),
            ("kodim05 + N(0,12) rgb",
             np.clip(k + rng.normal(0, 12, k.shape), 0, 255).astype(np.uint8))]


def smooth_cases() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:512, 0:640]
    wave = 20000 + 8000 * np.sin(x / 50) * np.cos(y / 70)
    return [("u16 ramp 512x640", (x * 100 + y * 20).astype(np.uint16)),
            ("u16 waves + N(0,30)", (wave + rng.normal(0, 30, x.shape)).astype(np.uint16)),
            ("u16 waves", wave.astype(np.uint16)),
            ("u8 ramp rgb", np.stack([x // 3, y // 2, (x + y) // 5], -1).astype(np.uint8))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("set", choices=["noise", "medical", "kodak", "smooth"])
    args = parser.parse_args()
    paths = sorted(args.corpus.glob("kodim*.png"))
    if args.set == "kodak":
        for path in paths:
            image = np.asarray(Image.open(path).convert("RGB"))
            start = time.process_time()
            data = svdcodec.encode(image, max_error=0)
            cpu = time.process_time() - start
            assert np.array_equal(svdcodec.decode(data), image)
            print(json.dumps({"image": path.stem, "E": 0, "bytes": len(data), "cpu": cpu}))
        return 0
    if args.set == "medical":
        cases = [(name, image, bound) for name, image in bench.medical_images(paths, 6)
                 for bound in bench.BOUNDS]
    elif args.set == "smooth":
        cases = [(name, image, bound) for name, image in smooth_cases()
                 for bound in (0, 1, 4, 16, 64, 256)]
    else:
        kodim05 = np.asarray(Image.open(paths[4]).convert("RGB"))
        cases = [(name, image, bound) for name, image in noise_cases(kodim05)
                 for bound in (0, 2)]
    for name, image, bound in cases:
        data = svdcodec.encode(image, max_error=bound)
        assert np.abs(svdcodec.decode(data).astype(np.int64) - image).max() <= bound
        print(json.dumps({"image": name, "E": bound, "raw": image.nbytes, "bytes": len(data)}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
