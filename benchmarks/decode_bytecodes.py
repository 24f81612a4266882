#!/usr/bin/env python3
"""Python bytecodes executed by one warm decode of .svdi files, by function: where the
interpreter's share of a small decode goes (docs/performance.md quotes it).

    python benchmarks/decode_bytecodes.py FILE.svdi [...] [--via api|pillow|both] [--top N]

Each file is decoded 5 times (imports, caches and first-call work), then once under a
`sys.settrace` tracer that counts opcode events per code object, in every thread. `api` is
`svdcodec.decode(data)`, `pillow` is `Image.open(BytesIO(data)).load()`. Set
SVDCODEC_THREADS=1 for the count of a one-thread decode. Counts, not times: what a change in the
Python code saves, independent of the machine's load (callgrind's instructions,
decode_instructions.py, say what the interpreter costs).
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import _common


def count_bytecodes(run: Callable[[], Any]) -> collections.Counter[tuple[str, int, str]]:
    """Opcodes executed by one call of `run`, by (file name, first line, function)."""
    counts: collections.Counter[tuple[str, int, str]] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            code = frame.f_code
            counts[(Path(code.co_filename).name, code.co_firstlineno, code.co_name)] += 1
        return tracer

    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_decode_arguments(parser)
    parser.add_argument("--top", type=int, default=15, help="functions listed (default 15)")
    args = parser.parse_args(argv)
    for path in args.files:
        data = path.read_bytes()
        for via in _common.decode_vias(args.via):
            run = _common.decoding(data, via)
            for _ in range(5):
                run()
            counts = count_bytecodes(run)
            print(f"{path.name}\t{via}\t{sum(counts.values())} bytecodes")
            for (name, line, function), n in counts.most_common(args.top):
                print(f"  {n:7d}  {name}:{line} {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
