#!/usr/bin/env python3
"""Would zstd's optimal parsing pay at effort 1 (issues #13, #16)?

    python studies/zstd_optimal_parsing_study.py --corpus DIR [--quality 75] [--sets NAME,...]

The default encoder (effort 1) writes its factor blocks at zstd level 1; effort 2 compresses
the kept blocks again at level 15 (`format.recompress`), whose optimal parsing (btopt) is what
makes them smaller. Here every default file of DIR's sorted PNGs is recompressed whole with
each parameter set (one thread), and the sum of its bytes against the default files and the
CPU time of the recompression per photo are printed (the recompression decompresses and parses
the file again: `L1`, which changes nothing, is that part's cost). The first three files are
checked to decode to the same pixels. Sets: `L<level>` (the encoder's parameters of that level,
`writer.block_parameters`), `btopt_s1/_s2/_s3` (btopt with the smallest to small searches:
search_log 1/2/3, chain and hash logs 12/14/16, min_match 5, target length 16/32/48),
`btultra_s1`, `btopt_s1m4` (min_match 4).

Conclusion (2026-12-07, main at 0ec7648, 24 Kodak photos): at quality 75 level 15 -2.55 % for
11.5 ms a photo, btopt_s1 -2.23 % for 5.9 ms (level 1's pass 0.8 ms); at quality 30 -3.72 % for
5.9 ms and -2.98 % for 2.4 ms. A default Kodak encode takes 11-13 ms: about 40 % more encode
time for about 2 % of bytes, not taken while issue #13's encode goals are missed
(docs/design-notes.md, "zstd parameters of the block frames").
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import zstandard
from PIL import Image

import svdcodec
from svdcodec.format import recompress, writer
from svdcodec.runtime import threads

#: (strategy, search_log, chain and hash log, min_match, target_length) of the named sets
SEARCHES = {
    "btopt_s1": (zstandard.STRATEGY_BTOPT, 1, 12, 5, 16),
    "btopt_s2": (zstandard.STRATEGY_BTOPT, 2, 14, 5, 32),
    "btopt_s3": (zstandard.STRATEGY_BTOPT, 3, 16, 5, 48),
    "btultra_s1": (zstandard.STRATEGY_BTULTRA, 1, 12, 5, 16),
    "btopt_s1m4": (zstandard.STRATEGY_BTOPT, 1, 12, 4, 16),
}


def parameters(name: str, size: int) -> zstandard.ZstdCompressionParameters:
    """The named set's parameters for content of `size` bytes (a power of two)."""
    if name.startswith("L"):
        return writer.block_parameters(int(name[1:]), size)
    strategy, search, table, min_match, target = SEARCHES[name]
    window = max(10, min(23, (size - 1).bit_length()))
    return zstandard.ZstdCompressionParameters(
        window_log=window, chain_log=min(table, window + 1), hash_log=min(table, window + 1),
        search_log=search, min_match=min_match, target_length=target, strategy=strategy,
        format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=True)


def compressors(name: str):  # type: ignore[no-untyped-def]
    """A stand-in for `writer.compressor` giving the named set's compressors."""
    made: dict[int, zstandard.ZstdCompressor] = {}

    def compressor(level: int, magicless: bool = False, size: int = 0) -> zstandard.ZstdCompressor:
        size_class = max(size - 1, 0).bit_length()
        if size_class not in made:
            made[size_class] = zstandard.ZstdCompressor(
                compression_params=parameters(name, 1 << size_class))
        return made[size_class]
    return compressor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--quality", type=int, default=75)
    ap.add_argument("--sets", default="L1,L15,L13,btopt_s1,btopt_s2,btopt_s3,btultra_s1")
    args = ap.parse_args()
    paths = sorted(args.corpus.glob("*.png"))
    files = [svdcodec.encode(np.asarray(Image.open(p).convert("RGB")), args.quality)
             for p in paths]
    base = sum(map(len, files))
    with threads.threads(1):
        for name in args.sets.split(","):
            recompress.compressor = compressors(name)
            start = time.process_time()
            out = [recompress.recompress_blocks(f, 15) for f in files]
            cpu = (time.process_time() - start) / len(files) * 1e3
            same = all(np.array_equal(svdcodec.decode(a), svdcodec.decode(b))
                       for a, b in zip(files[:3], out[:3]))
            print(f"quality {args.quality} {name:11s} bytes {sum(map(len, out)) / base - 1:+.2%}"
                  f"  CPU {cpu:.2f} ms a photo{'' if same else '  OTHER PIXELS'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
