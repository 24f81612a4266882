#!/usr/bin/env python3
"""Fixed overhead of .svdi files: every byte but the factor blocks' coded payload.

    python benchmarks/overhead.py --corpus DIR                    # 256x256 centre crops and photos
    python benchmarks/overhead.py --corpus DIR --qualities 10,25,50,75 --images 8
    python benchmarks/overhead.py --corpus DIR --decode-time --images 24 --qualities 75

For each image (the photo, and its 256x256 centre crop) and quality, the file is encoded with
the defaults and split into: the **payload** of the U and V blocks (the bytes zstd produced
for their contents, without the zstd frame header, block headers and checksum; or the stored
bytes of a version 5 block stored raw), the **S payload** (the singular values, likewise), and
the **fixed overhead**: everything else (signature, HEAD, PLAN, IEND, chunk framing, block
headers and descriptors, zstd frame and block headers). The table gives per-file means (RGB
PSNR: the mean of the files' PSNRs).

--decode-time: what version 5's exact reconstruction (spec §5.1; every file the encoder writes
is version 5) costs the decoder against version 1's binary32 product: each photo's file is
written again as version 1 with the same factors (`format.pack`, no shift), and both are
decoded in turn, interleaved, 5 times; the minimum of the sums is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import zstandard
from PIL import Image

import svdcodec
from svdcodec import format as container
from svdcodec.format import reader
from svdcodec.format.blocks import ZSTD_MAGIC

MAGIC_BYTES = ZSTD_MAGIC.to_bytes(4, "little")
from svdcodec.evaluation.metrics import psnr
from svdcodec.format.records import FACTOR_TYPES

CROP = 256


def zstd_payload(frame: bytes) -> int:
    """Bytes of a zstd frame's block contents: the frame without its header, its 3-byte block
    headers and its checksum (RFC 8878 §3.1.1); a frame without its magic number (version 5)
    is measured with it."""
    if int.from_bytes(frame[:4], "little") != ZSTD_MAGIC:
        frame = MAGIC_BYTES + frame
    pos = zstandard.frame_header_size(frame)
    payload = 0
    while True:
        word = int.from_bytes(frame[pos:pos + 3], "little")
        kind, length = (word >> 1) & 3, word >> 3
        size = 1 if kind == 1 else length
        payload += size
        pos += 3 + size
        if word & 1:
            return payload


def blocks_of(kind: bytes, payload: memoryview, header, planes, cursor):
    """(frame bytes, stored, factor) of each factor block in a chunk. Readers before version 5
    (an older checkout, for the "before" column) have one block per chunk."""
    if kind not in FACTOR_TYPES:
        return
    if not hasattr(reader, "block_descriptors"):
        d = reader._descriptor(kind, payload, planes, cursor)
        yield bytes(payload[d.frame_at:]), False, d.factor
        return
    for d in reader.block_descriptors(kind, payload, header, planes, cursor):
        yield bytes(payload[d.frame_at:d.frame_end]), d.stored_raw, d.factor


def split(data: bytes) -> tuple[int, int, int, int]:
    """(U/V payload, S payload, fixed overhead, factor blocks) of one file."""
    header = None
    uv = s = blocks = 0
    cursor: dict[tuple[int, str], int] = {}
    planes = []
    for kind, payload, _ in reader._chunks(data):
        if kind == b"HEAD":
            header, _ = reader._parse_header(payload)
        elif kind == b"PLAN":
            planes.append(reader._parse_plane(payload, header, len(planes)))
        for frame, stored, factor in blocks_of(kind, payload, header, planes, cursor):
            size = len(frame) if stored else zstd_payload(frame)
            blocks += 1
            if factor == "S":
                s += size
            else:
                uv += size
    return uv, s, len(data) - uv - s, blocks


def images(corpus: Path, count: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for path in sorted(corpus.glob("*.png"))[:count]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        y, x = (h - CROP) // 2, (w - CROP) // 2
        out.append((path.stem, rgb))
        out.append((path.stem + "-crop", rgb[y:y + CROP, x:x + CROP]))
    return out


def as_version_1(data: bytes) -> bytes:
    """The same factors in a version 1 file (binary32 reconstruction, spec §5 step 2)."""
    box = container.unpack(data)
    assert not box.residuals and not box.means and not any(p.filtered for p in box.planes)
    planes = [dataclasses.replace(p, shift=None) for p in box.planes]
    return container.pack(dataclasses.replace(
        box, header=dataclasses.replace(box.header, version=1), planes=planes), 1)


def decode_time(pictures: list[np.ndarray], quality: int) -> str:
    files = [svdcodec.encode(img, quality=quality) for img in pictures]
    pairs = [(as_version_1(f), f) for f in files]
    times: dict[int, list[float]] = {1: [], 5: []}
    for _ in range(5):
        for version, index in ((1, 0), (5, 1)):
            start = time.perf_counter()
            for pair in pairs:
                svdcodec.decode(pair[index])
            times[version].append(time.perf_counter() - start)
    v1, v5 = min(times[1]), min(times[5])
    return (f"decode of {len(files)} photos at quality {quality}: version 1 {1e3 * v1:.0f} ms, "
            f"version 5 (exact) {1e3 * v5:.0f} ms, x {v5 / v1:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="folder of PNG photos")
    parser.add_argument("--images", type=int, default=8, help="first N photos (default 8)")
    parser.add_argument("--qualities", default="10,25,50,75")
    parser.add_argument("--decode-time", action="store_true",
                        help="time decoding version 5 files against version 1 ones instead")
    args = parser.parse_args(argv)
    qualities = [int(q) for q in args.qualities.split(",")]
    pictures = images(args.corpus, args.images)
    print(f"svdcodec {svdcodec.__file__}")
    if args.decode_time:
        photos = [img for name, img in pictures if not name.endswith("-crop")]
        for q in qualities:
            print(decode_time(photos, q))
        return 0
    print("| image | quality | bytes | bpp | RGB PSNR | blocks | fixed overhead | % of file | "
          "S payload |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind in ("256x256 crop", "photo"):
        chosen = [img for name, img in pictures if name.endswith("-crop") == (kind != "photo")]
        for q in qualities:
            rows = []
            for img in chosen:
                data = svdcodec.encode(img, quality=q)
                _, s, fixed, blocks = split(data)
                rows.append((len(data), blocks, fixed, s, 8 * len(data) / (img.shape[0] * img.shape[1]),
                             psnr(img, svdcodec.decode(data))))
            size, blocks, fixed, s, bpp, quality = np.mean(rows, axis=0)
            print(f"| {kind} | {q} | {size:.0f} | {bpp:.3f} | {quality:.3f} | {blocks:.1f} | "
                  f"{fixed:.0f} | {100 * fixed / size:.1f} | {s:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
