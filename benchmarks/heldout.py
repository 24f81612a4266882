#!/usr/bin/env python3
"""Export the held-out photos, never used to tune the encoder, as PNGs for `--corpus`.

    pip install scikit-image
    python benchmarks/heldout.py --out DIR
    python benchmarks/rd.py --corpus DIR --out benchmarks/results --plots docs

The photos are scikit-image's sample data that ship inside its wheel (`skimage.data`), so no
download happens at run time (pooch is not needed): astronaut, chelsea, coffee, the left view of
stereo_motorcycle and immunohistochemistry, stored by scikit-image as PNG, and rocket, retina and
hubble_deep_field, stored as JPEG. The JPEG-stored ones are halved (2x2 box average) before
export: at full size they carry the 8x8 block grid of their own JPEG compression, which a JPEG
re-encode at the same grid reproduces cheaply and every other codec must spend bytes on. RGB only:
the greyscale samples (camera, moon, ...) would test another path than Kodak's colour photos.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image


class Photo(NamedTuple):
    name: str  # file name without .png
    loader: str  # function of skimage.data
    stored_as_jpeg: bool


PHOTOS = (
    Photo("astronaut", "astronaut", False),
    Photo("chelsea", "chelsea", False),
    Photo("coffee", "coffee", False),
    Photo("motorcycle", "stereo_motorcycle", False),
    Photo("ihc", "immunohistochemistry", False),
    Photo("rocket", "rocket", True),
    Photo("retina", "retina", True),
    Photo("hubble", "hubble_deep_field", True),
)


def load(photo: Photo) -> np.ndarray:
    """The photo as an RGB uint8 array, halved if scikit-image stores it as JPEG."""
    import skimage.data

    data = getattr(skimage.data, photo.loader)()
    if photo.loader == "stereo_motorcycle":  # (left, right, disparity)
        data = data[0]
    image = Image.fromarray(np.asarray(data, dtype=np.uint8)).convert("RGB")
    if photo.stored_as_jpeg:
        image = image.reduce(2)
    return np.asarray(image)


def export(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in PHOTOS:
        path = out / f"{photo.name}.png"
        Image.fromarray(load(photo)).save(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to write the PNGs into")
    args = parser.parse_args(argv)
    try:
        version = importlib.metadata.version("scikit-image")
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit("the held-out photos come from scikit-image: pip install scikit-image") from None
    for path in export(args.out):
        with Image.open(path) as im:
            print(f"{path}  {im.width}x{im.height}")
    print(f"# scikit-image {version}: {len(PHOTOS)} photos in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
