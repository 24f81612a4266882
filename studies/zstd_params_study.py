#!/usr/bin/env python3
"""Which zstd parameters should the encoder give the factor blocks' frames (issue #16)?

    python studies/zstd_params_study.py --corpus DIR [--images 24] [--crops 24]
        [--qualities 30,50,75,90] [--effort 1|2|both] [--only NAME] [--rounds 3]

Version 5's block records hold zstd frames without their magic number, which python-zstandard
only writes from explicit parameters (`format.writer.block_parameters`): before this study,
zstd's own parameters of the level for the content's size class (`ZSTD_OWN` here). Their
content is not text: run/level symbols (bytes, mostly 0-4), run lengths (u16) and escapes,
dense integer components. Each candidate changes some of the level's parameters for some
content sizes (`writer.BLOCK_PARAMETERS`) and the whole encoder runs with it, so the files are
real (layouts, ranks and codings are chosen on blocks packed with the candidate): DIR's sorted
PNGs [0, images) and `crops` 256 x 256 crops of them (benchmarks/_common.crops), at each
quality, effort 1 (level 1) and effort 2 (level 15 recompressing the kept blocks). Printed per
candidate: the bytes of each set and quality against zstd's own parameters (sum over the
files, the range of per-file ratios, and the mean change of RGB PSNR: a layout or rank the
encoder chooses by bytes may change), how many files decode to other pixels, and the encode
CPU (process time, every thread) against zstd's own, the median of `rounds` interleaved
rounds over the Kodak photos at quality 75 (noisy on a shared machine: a few %; callgrind
for the applied setting, docs/design-notes.md).

What is held fixed: the window. libzstd fits the parameters to the content (the frame is
single-segment, its window the content size, or the level's window for larger content) and
caps the hash and chain tables to it, so a candidate neither raises a decoder's memory nor
passes the format's 2^23 (spec §4); every file's frames are checked (`check_windows`).

Conclusion (2026-12-03, commit 88fb49f's encoder, 24 Kodak photos and 24 crops, q 30/50/75/90).
The shortest match is what matters; table sizes and strategies are not. At level 1, min_match
7 instead of zstd's 5 (6 from 16 KiB): Kodak -1.32 / -0.71 / -0.42 / +0.26 %, crops -3.94 /
-3.44 / -1.31 / -0.29 %; "unsized" (the compact container's note: larger hash tables and
min_match 7) gives the same, so it was the match length; hash log 12-16 alone within +-0.4 %,
min_match 4 or 5 +0.4 ... +6 %, dfast or greedy no smaller. Per block (the files' own blocks),
7 is 3 % smaller up to 4 KiB, 1.1 % at 8-32 KiB and 0.2-0.5 % larger above 32 KiB, so the
writer applies it up to 32 KiB ("applied"): Kodak -1.00 / -0.22 / -0.41 / -0.18 %, crops
-3.94 / -3.44 / -1.31 / -0.65 %, PSNR +0.012 / +0.029 / 0 / 0 dB (17 of 192 files choose
another layout or rank), encode instructions +0.03 % (callgrind), zstd's own share -7 %.
At level 15 (effort 2): min_match 5 from 64 KiB (zstd's own is 3 up to 256 KiB, 5 above) is
as small or smaller (Kodak -0.20 / -0.07 / -0.06 / -0.18 %, crops as level 1's change alone)
and takes effort 2's encode instructions down 6.6 %; btultra2 costs 1.5 x effort 2's CPU for
+-0.5 %, btultra from 64 KiB -0.74 % at q90 only (and replaces btlazy2 above 256 KiB, not
measured at 19 MP), level 15's unsized parameters +2.6 ... +7.8 %. BD-rates: docs/design-notes.md.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zstandard
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import svdcodec
from benchmarks._common import crops, kodak_paths
from svdcodec import format as container
from svdcodec.evaluation.metrics import psnr
from svdcodec.format import writer
from svdcodec.format.blocks import frame_parameters

FAST, DFAST, GREEDY, LAZY, LAZY2, BTLAZY2, BTOPT, BTULTRA, BTULTRA2 = range(1, 10)

Changes = dict[int, tuple[tuple[int, dict[str, int]], ...]]
EVERY = 1 << 32


def upto(largest: int, changes: dict[str, int]) -> tuple[tuple[int, dict[str, int]], ...]:
    return ((largest, changes),)


#: (name, changes in `writer.BLOCK_PARAMETERS`' form: {level: ((largest content size,
#: parameter changes), ...)}). Level 1 is effort 1 (and the base of effort 2), level 15 effort
#: 2's recompression. "unsized" is zstd's parameters of the level for content of unknown size
#: (what the compact container's note measured); libzstd still fits them to the content.
ZSTD_OWN: Changes = {}
APPLIED: Changes = {1: upto(1 << 15, {"min_match": 7})}
CANDIDATES: list[tuple[str, Changes]] = [
    ("L1 unsized", {1: upto(EVERY, {"hash_log": 14, "chain_log": 13, "min_match": 7})}),
    *((f"L1 mm{m}", {1: upto(EVERY, {"min_match": m})}) for m in (4, 5, 6, 7)),
    *((f"L1 h{h}", {1: upto(EVERY, {"hash_log": h})}) for h in (12, 16)),
    *((f"L1 h{h} mm7", {1: upto(EVERY, {"hash_log": h, "min_match": 7})}) for h in (12, 16)),
    ("L1 dfast h16 c14 mm7", {1: upto(EVERY, {"strategy": DFAST, "hash_log": 16,
                                              "chain_log": 14, "min_match": 7})}),
    ("L1 greedy h16 c16 s1 mm6", {1: upto(EVERY, {"strategy": GREEDY, "hash_log": 16,
                                                  "chain_log": 16, "search_log": 1,
                                                  "min_match": 6})}),
    *((f"L1 mm7 to {n >> 10} KiB", {1: upto(n, {"min_match": 7})}) for n in (1 << 14, 1 << 16)),
    ("L1 mm7 to 32 KiB (applied)", APPLIED),
    ("L15 unsized", {15: upto(EVERY, {"hash_log": 23, "chain_log": 23, "search_log": 6,
                                      "min_match": 5, "target_length": 32,
                                      "strategy": BTLAZY2})}),
    *((f"L15 mm{m}", {15: upto(EVERY, {"min_match": m})}) for m in (4, 5)),
    ("L15 btultra", {15: upto(EVERY, {"strategy": BTULTRA})}),
    ("L15 btultra2", {15: upto(EVERY, {"strategy": BTULTRA2})}),
    ("L15 btultra2 mm5", {15: upto(EVERY, {"strategy": BTULTRA2, "min_match": 5})}),
    *((f"L15 mm5 from {n >> 10} KiB", {15: ((n, {}), (EVERY, {"min_match": 5}))})
      for n in (1 << 16, 1 << 18)),
    ("L15 btultra2 mm5 from 256 KiB", {15: ((1 << 18, {}),
                                            (EVERY, {"strategy": BTULTRA2, "min_match": 5}))}),
    ("applied + L15 mm5 from 64 KiB", {**APPLIED, 15: ((1 << 16, {}), (EVERY, {"min_match": 5}))}),
    ("applied + L15 mm5 from 64 KiB, btultra2 from 256 KiB", {**APPLIED, 15: (
        (1 << 16, {}), (1 << 18, {"min_match": 5}),
        (EVERY, {"strategy": BTULTRA2, "min_match": 5}))}),
    ("applied + L15 btultra mm5 from 64 KiB", {**APPLIED, 15: (
        (1 << 16, {}), (EVERY, {"strategy": BTULTRA, "min_match": 5}))}),
    ("applied + L15 btultra2 mm5 from 256 KiB", {**APPLIED, 15: ((1 << 18, {}), (
        EVERY, {"strategy": BTULTRA2, "min_match": 5}))}),
]


def images(corpus: Path, count: int, crop_count: int) -> list[tuple[str, str, np.ndarray]]:
    """(set, name, pixels) of the first `count` Kodak photos and `crop_count` crops of them."""
    paths = kodak_paths(corpus)[:count]
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    out = [("kodak", p.stem, a) for p, a in zip(paths, photos)]
    out += [("crop", f"crop{i:02d}", c) for i, c in enumerate(crops(photos, 256, crop_count))]
    return out


@contextmanager
def parameters(changes: Changes) -> Iterator[None]:
    """The writer with these parameter changes, in this thread and the encoder's band threads
    (every thread's cached compressors are dropped: they are rebuilt from the new table)."""
    saved = writer.BLOCK_PARAMETERS
    writer.BLOCK_PARAMETERS = changes
    writer._local = type(writer._local)()
    try:
        yield
    finally:
        writer.BLOCK_PARAMETERS = saved
        writer._local = type(writer._local)()


def check_windows(data: bytes, level: int) -> None:
    """Every U and V frame of the file declares a window no larger than zstd's own parameters
    of `level` would for its content (the content size, or the level's window if that is
    smaller): a candidate does not raise a decoder's memory."""
    for b in container.unpack(data).blocks:
        if b.frame is None or b.form == "stored":
            continue
        window = frame_parameters(b.frame, "block", b.form)[1].window_size
        own = zstandard.ZstdCompressionParameters.from_level(level, source_size=b.raw_bytes)
        assert window <= 1 << own.window_log, (b.what, window, b.raw_bytes)


def run(items: list[tuple[str, str, np.ndarray]], qualities: list[int], effort: int
        ) -> dict[tuple[str, str, int], tuple[int, float, str]]:
    """(set, name, quality) -> (bytes, RGB PSNR, hash of the decoded pixels) with the writer
    as it is; every file's frames checked (`check_windows`)."""
    out = {}
    for setname, name, pixels in items:
        for q in qualities:
            data = svdcodec.encode(pixels, q, effort=effort)
            check_windows(data, 15 if effort == 2 else 1)
            decoded = svdcodec.decode(data)
            digest = hashlib.sha256(decoded.tobytes()).hexdigest()
            out[setname, name, q] = (len(data), psnr(pixels, decoded), digest)
    return out


def cpu(encode: Callable[[], Any]) -> float:
    start = time.process_time()
    encode()
    return time.process_time() - start


def cpu_ratio(changes: Changes, pixels: list[np.ndarray], effort: int,
              rounds: int) -> float:
    """Median over interleaved rounds of (encode CPU with the changes) / (with zstd's own)."""
    def encode_all() -> None:
        for p in pixels:
            svdcodec.encode(p, 75, effort=effort)
    ratios = []
    for _ in range(rounds):
        with parameters(ZSTD_OWN):
            base = cpu(encode_all)
        with parameters(changes):
            ratios.append(cpu(encode_all) / base)
    return statistics.median(ratios)


def report(name: str, today: dict[Any, tuple[int, float, str]],
           new: dict[Any, tuple[int, float, str]],
           qualities: list[int], ratio: float) -> None:
    cells = []
    for setname in ("kodak", "crop"):
        for q in qualities:
            keys = [k for k in today if k[0] == setname and k[2] == q]
            if not keys:
                continue
            total = sum(new[k][0] for k in keys) / sum(today[k][0] for k in keys) - 1
            per = [new[k][0] / today[k][0] - 1 for k in keys]
            dpsnr = statistics.mean(new[k][1] - today[k][1] for k in keys)
            cells.append(f"{setname[0]}{q} {100 * total:+.2f}% [{100 * min(per):+.1f},"
                         f"{100 * max(per):+.1f}] {dpsnr:+.3f}dB")
    changed = sum(new[k][2] != today[k][2] for k in today)
    print(f"{name:26s} cpu {ratio:.3f} pixels changed {changed:3d}/{len(today)}  "
          + "  ".join(cells), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--crops", type=int, default=24)
    ap.add_argument("--qualities", default="30,50,75,90")
    ap.add_argument("--effort", choices=("1", "2", "both"), default="both")
    ap.add_argument("--only", action="append", help="candidate name (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    qualities = [int(q) for q in args.qualities.split(",")]
    items = images(args.corpus, args.images, args.crops)
    timed = [p for s, _, p in items if s == "kodak"]
    efforts = (1, 2) if args.effort == "both" else (int(args.effort),)
    for effort in efforts:
        print(f"effort {effort}: bytes against zstd's own parameters (k: Kodak, c: 256x256 crops; "
              "sum over files [per-file range]), encode CPU ratio at q75", flush=True)
        with parameters(ZSTD_OWN):
            today = run(items, qualities, effort)
        for name, changes in CANDIDATES:
            if args.only and name not in args.only:
                continue
            if effort == 1 and 15 in changes and not args.only:
                continue  # level 15 is effort 2's alone
            with parameters(changes):
                new = run(items, qualities, effort)
            report(name, today, new, qualities, cpu_ratio(changes, timed, effort, args.rounds))


if __name__ == "__main__":
    main()
