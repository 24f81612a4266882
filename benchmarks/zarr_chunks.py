"""What chunking costs: bytes of a zarr v3 array coded with the svdi codec at several chunk
sizes against one whole-array encode, on a greyscale mosaic of Kodak photos.

    python benchmarks/zarr_chunks.py --corpus DIR [--quality 75]

The mosaic is 1536 x 1536: six photos (portrait ones turned), 3 rows of 2. Each chunk is one
.svdi file, so it pays the fixed cost of a file (signature, HEAD, PLAN, IEND: 90 bytes, plus
12 bytes of chunk header and the descriptor of each factor block) and learns its own basis
from fewer samples. Printed: stored bytes (chunk files only, not zarr.json), the ratio to the
whole-array file, the extra bytes per chunk, the mean bytes per chunk of the container and
of the S and V blocks (each chunk's own basis), and the PSNR (the quality setting fixes the
quantizer step, so the distortion stays close; the bytes are what changes).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import svdcodec
from svdcodec.evaluation.metrics import psnr

SIDE = 1536


def mosaic(corpus: Path) -> np.ndarray:
    tiles = []
    for path in sorted(corpus.glob("*.png")):
        with Image.open(path) as im:
            grey = im.convert("L")
            if grey.height > grey.width:
                grey = grey.transpose(Image.Transpose.ROTATE_90)
            if grey.size == (768, 512):
                tiles.append(np.asarray(grey))
        if len(tiles) == 6:
            break
    if len(tiles) < 6:
        raise SystemExit(f"{corpus}: need six 768 x 512 photos, found {len(tiles)}")
    rows = [np.hstack(tiles[i:i + 2]) for i in range(0, 6, 2)]
    return np.ascontiguousarray(np.vstack(rows))


def breakdown(files: list[Path]) -> tuple[float, float]:
    """Mean bytes per file of the container (everything but the factor blocks' data) and of
    the S and V blocks (the per-chunk basis)."""
    from svdcodec.cli.info import info_report

    reports = [info_report(p.name, p.read_bytes()) for p in files]
    container = np.mean([r["header_bytes"] for r in reports])
    basis = np.mean([sum(q["bytes"]["S"] + q["bytes"]["V"] for q in r["planes"])
                     for r in reports])
    return float(container), float(basis)


def chunked(image: np.ndarray, side: int, quality: float, layout: str, folder: Path
            ) -> tuple[int, list[Path], np.ndarray]:
    """(stored chunk bytes, chunk files, decoded array) of a zarr v3 array in side^2 chunks."""
    import zarr

    path = folder / f"mosaic-{side}.zarr"
    z = zarr.create_array(str(path), shape=image.shape, chunks=(side, side), dtype=image.dtype,
                          serializer={"name": "svdi",
                                      "configuration": {"quality": quality, "layout": layout}},
                          compressors=None, overwrite=True)
    z[:] = image
    files = [p for p in path.rglob("*") if p.is_file() and p.name != "zarr.json"]
    return sum(p.stat().st_size for p in files), files, zarr.open_array(str(path))[:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of Kodak PNGs")
    parser.add_argument("--quality", type=float, default=75)
    parser.add_argument("--layout", default="auto")
    parser.add_argument("--chunks", type=int, nargs="+", default=[512, 256, 128, 64])
    args = parser.parse_args()
    image = mosaic(args.corpus)
    whole = svdcodec.encode(image, args.quality, layout=args.layout)
    whole_psnr = psnr(image, svdcodec.decode(whole))
    print(f"grey mosaic {SIDE} x {SIDE} from {args.corpus}, quality {args.quality:g}, "
          f"layout {args.layout}")
    print(f"{'chunks':>9} {'files':>6} {'bytes':>9} {'ratio':>6} {'extra B/chunk':>14} "
          f"{'container B':>12} {'S+V B':>7} {'PSNR dB':>8}")
    print(f"{'whole':>9} {1:6d} {len(whole):9d} {1:6.3f} {'':>14} {'':>12} {'':>7} "
          f"{whole_psnr:8.2f}")
    with tempfile.TemporaryDirectory() as folder:
        for side in args.chunks:
            nbytes, files, decoded = chunked(image, side, args.quality, args.layout,
                                             Path(folder))
            extra = (nbytes - len(whole)) / len(files)
            container, basis = breakdown(files)
            print(f"{f'{side}²':>9} {len(files):6d} {nbytes:9d} {nbytes / len(whole):6.3f} "
                  f"{extra:14.1f} {container:12.1f} {basis:7.1f} {psnr(image, decoded):8.2f}")


if __name__ == "__main__":
    main()
