#!/usr/bin/env python3
"""Decoding photos of an odd width or height (issue #13): every Kodak photo cropped by a row,
a column, or both, against the photo itself, decoded by `svdcodec.decode` and by Pillow's
`Image.open().load()`, beside Pillow's JPEG q75 of the same crop, interleaved in one warm
process. The chroma planes of an odd side are stretched by a little less than 2, which the
fused kernels of an exact doubling do not take (`_kernels.resample_chroma` does); speed.py's
rows are all of even sizes.

    python benchmarks/odd_sizes.py --corpus KODAK [--rounds 5] [--cold]

Printed per kind of size: medians over the photos and rounds of each decode, in ms, and their
ratios to JPEG's (docs/performance.md, "Odd sizes and images of many sizes"). Every size
comes back round after round, so the filter taps an odd size's decode keeps
(`resample.kept_coefficients`) are made once; `--cold` clears them before each decode, as a
folder of many sizes meets them.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path

import _common
import numpy as np
from PIL import Image

import svdcodec
from svdcodec.codec import resample

#: (name, rows cut, columns cut)
KINDS = (("even (the photo)", 0, 0), ("odd height", 1, 0), ("odd width", 0, 1),
         ("odd both", 1, 1))


def load(data: bytes) -> None:
    """Image.open(...).load() of a file in memory."""
    Image.open(io.BytesIO(data)).load()


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--corpus", type=Path, help=_common.KODAK_HELP)
    cli.add_argument("--rounds", type=int, default=5)
    cli.add_argument("--cold", action="store_true",
                     help="clear the kept filter taps before each decode")
    args = cli.parse_args()
    photos = [_common.load_image(p) for p in _common.kodak_paths(args.corpus)]
    files = []
    for photo in photos:
        for name, dy, dx in KINDS:
            crop = np.ascontiguousarray(photo[:photo.shape[0] - dy, :photo.shape[1] - dx])
            jpeg = io.BytesIO()
            Image.fromarray(crop).save(jpeg, "JPEG", quality=75)
            files.append((name, svdcodec.encode(crop), jpeg.getvalue()))
    print(f"# svdcodec {svdcodec.__file__} ({_common.kernel_path()} kernels), "
          f"{len(photos)} photos x {args.rounds} rounds")
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in range(args.rounds + 1):  # the first round warms up, untimed
        for name, svdi, jpeg in files:
            runs = {"svdcodec.decode": partial(svdcodec.decode, svdi),
                    "Pillow load()": partial(load, svdi),
                    "JPEG load()": partial(load, jpeg)}
            for what, call in runs.items():
                if args.cold:
                    resample._kept_coefficients.cache_clear()
                seconds = _common.seconds(call)
                if r:
                    times[(name, what)].append(seconds)
    rows = []
    for name, _, _ in KINDS:
        medians = {what: statistics.median(times[(name, what)]) * 1e3
                   for what in ("svdcodec.decode", "Pillow load()", "JPEG load()")}
        jpeg_ms = medians["JPEG load()"]
        rows.append([name, f"{medians['svdcodec.decode']:.2f}", f"{medians['Pillow load()']:.2f}",
                     f"{jpeg_ms:.2f}", f"{medians['svdcodec.decode'] / jpeg_ms:.2f}",
                     f"{medians['Pillow load()'] / jpeg_ms:.2f}"])
    print(_common.table(["size", "svdcodec.decode ms", "Pillow load() ms", "JPEG ms",
                         "decode x JPEG", "load() x JPEG"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
