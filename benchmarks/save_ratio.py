"""What a Pillow user's save costs against JPEG, beside the encode pair speed.py times.

    python benchmarks/save_ratio.py --corpus KODAK [--rounds 6]

speed.py's encode row times `svdcodec.encode(array)` against `Image.fromarray(array).save(f,
"JPEG", quality=75)`, whose copy into a Pillow image counts on JPEG's side. A user who already
holds a Pillow image calls `im.save(f, "SVDI")` against `im.save(f, "JPEG", quality=75)`. This
times both pairs on the 19 MP mosaic of the Kodak photos (speed.py's), and the first pair on
the 24 Kodak photos (768 x 512, all of them each round), warm, in one process, the operations in
turn each round (the first round a warm-up, not counted), and prints the median and range of
the per-round ratios.
"""

from __future__ import annotations

import argparse
import io
import statistics
from pathlib import Path

import _common
from PIL import Image

import svdcodec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the Kodak photos' folder")
    parser.add_argument("--rounds", type=int, default=6, help="rounds, the first not counted")
    args = parser.parse_args()
    print(_common.environment())
    array = _common.build_mosaic(_common.kodak_paths(args.corpus))
    image = Image.fromarray(array)
    photos = [Image.open(path).convert("RGB") for path in _common.kodak_paths(args.corpus)]
    pairs: dict[str, list[float]] = {"19 MP: im.save SVDI / im.save JPEG": [],
                                     "19 MP: encode(array) / fromarray + save JPEG": [],
                                     "24 photos: im.save SVDI / im.save JPEG": []}
    for round_ in range(args.rounds):
        svdi_save = _common.seconds(lambda: image.save(io.BytesIO(), "SVDI"))
        jpeg_save = _common.seconds(lambda: image.save(io.BytesIO(), "JPEG", quality=75))
        svdi_encode = _common.seconds(lambda: svdcodec.encode(array))
        jpeg_encode = _common.seconds(lambda: Image.fromarray(array).save(io.BytesIO(), "JPEG",
                                                                   quality=75))
        photos_svdi = _common.seconds(lambda: [p.save(io.BytesIO(), "SVDI") for p in photos])
        photos_jpeg = _common.seconds(lambda: [p.save(io.BytesIO(), "JPEG", quality=75)
                                               for p in photos])
        if round_:
            pairs["19 MP: im.save SVDI / im.save JPEG"].append(svdi_save / jpeg_save)
            pairs["19 MP: encode(array) / fromarray + save JPEG"].append(svdi_encode / jpeg_encode)
            pairs["24 photos: im.save SVDI / im.save JPEG"].append(photos_svdi / photos_jpeg)
    print(f"{array.shape[1]} x {array.shape[0]} mosaic and {len(photos)} photos, "
          f"{args.rounds - 1} rounds")
    print(_common.table(["pair", "median", "range"],
                        [[name, f"{statistics.median(r):.2f}", f"{min(r):.2f}-{max(r):.2f}"]
                         for name, r in pairs.items()]))


if __name__ == "__main__":
    main()
