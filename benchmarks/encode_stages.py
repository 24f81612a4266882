#!/usr/bin/env python3
"""Where a warm encode's wall time goes, by stage: each stage function of the encoder wrapped
with a `time.perf_counter_ns` timer that counts its own time (its callees' time is theirs), the
compiled kernels, LAPACK's eigh/eigvalsh and zstd's compress as leaves (docs/performance.md,
"Where a default encode's time goes").

    python benchmarks/encode_stages.py KODAK/kodim01.png [...] [--rounds 20] [--crop]
    python benchmarks/encode_stages.py KODAK/*.png --mean --rounds 3   # every photo, one table
    sudo chrt -f 10 python benchmarks/encode_stages.py ...              # on a shared machine

`svdcodec.encode(array)` with the defaults (quality 75, deblock=True: a 768 x 512 photo is coded
in the calling thread). Each image is encoded `--warm` times first, then `--rounds` times timed.
Each stage's time is its median over an image's encodes (a busy machine's odd pause lands in
whichever stage it falls in: a mean would carry it), printed beside the encodes' wall time
(the timers add a few microseconds per wrapped call); `--mean` prints the mean over the
images of those medians. The stages under a layout choice's trial codings (a plane whose
layout the spectra do not predict, coded in both on a sample of its rows) are listed as
"layout trial: ...". `--kernels 0` runs the numpy path (as SVDCODEC_KERNELS=0).
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import sys
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

TOTALS: collections.Counter[str] = collections.Counter()
CALLS: collections.Counter[str] = collections.Counter()
_local = threading.local()
#: stage functions by module (or class) and attribute, and the stage each is counted in
STAGES = [
    ("svdcodec.encoder", "encode", "encode() and _encode(): checks, header"),
    ("svdcodec.encoder", "_encode", "encode() and _encode(): checks, header"),
    ("svdcodec.encoder.schedule:Encoder", "encode", "schedule: plane jobs, layout choice"),
    ("svdcodec.encoder.schedule:Encoder", "choose_layout", "schedule: plane jobs, layout choice"),
    ("svdcodec.encoder.schedule:Encoder", "finish", "schedule: plane jobs, layout choice"),
    ("svdcodec.encoder.schedule:Encoder", "fit_choice", "schedule: plane jobs, layout choice"),
    ("svdcodec.encoder.source:PlaneSource", "on_decoder_grid", "colour: on_decoder_grid"),
    ("svdcodec.encoder.source:PlaneSource", "keep", "colour: chroma halving"),
    ("svdcodec.encoder.source:PlaneSource", "patches", "colour: patch matrices"),
    ("svdcodec.encoder.plane:CachingSource", "patches", "colour: patch matrices"),
    ("svdcodec.encoder.plane", "plane_grams", "Gram matrices (a.T @ a, sub_gram)"),
    ("svdcodec.encoder.plane", "patch_grams", "Gram matrices (a.T @ a, sub_gram)"),
    ("svdcodec.codec.factorize", "sub_gram", "Gram matrices (a.T @ a, sub_gram)"),
    ("svdcodec.encoder.plane", "layout_features", "layout prediction"),
    ("svdcodec.encoder.plane", "predicted_side", "layout prediction"),
    ("svdcodec.encoder.plane", "factorize_plane", "factorization (basis)"),
    ("svdcodec.codec.factorize", "basis", "factorization (basis)"),
    ("svdcodec.encoder.plane", "quantize_u", "projection a @ basis, band glue"),
    ("svdcodec.codec.quantize:ColumnStats", "add", "quantizer"),
    ("svdcodec.codec.quantize:ColumnStats", "combine", "quantizer"),
    ("svdcodec.codec.coding", "band_symbols", "run/level symbols"),
    ("svdcodec.codec.coding", "join_symbols", "run/level symbols"),
    ("svdcodec.codec.quantize", "choose_rank", "rank decision"),
    ("svdcodec.codec.quantize", "entropy_bits", "rank decision"),
    ("svdcodec.codec.quantize", "column_entropy_bits", "rank decision"),
    ("svdcodec.codec.refine", "refitted_sigma", "sigma refit"),
    ("svdcodec.encoder.plane", "code_plane", "code_plane (its own lines)"),
    ("svdcodec.encoder.blocks", "plane_blocks", "blocks (dense predictors)"),
    ("svdcodec.encoder.blocks", "dense_block", "blocks (dense predictors)"),
    ("svdcodec.format.writer", "pack_record", "records (zstd frames)"),
    ("svdcodec.encoder.schedule", "exact_plane", "container: exact shifts, interleave"),
    ("svdcodec.encoder.schedule", "interleave", "container: exact shifts, interleave"),
    ("svdcodec.format.writer", "pack_header", "container: exact shifts, interleave"),
    ("svdcodec.encoder.deblock", "with_deblocking", "deblock: its own lines"),
    ("svdcodec.encoder.deblock", "unpack", "deblock: the layer parsed"),
    ("svdcodec.encoder.deblock", "exact_container", "deblock: its own lines"),
    ("svdcodec.encoder.deblock", "pack_exact", "deblock: its own lines"),
    ("svdcodec.encoder.deblock", "sampled_samples", "deblock: judged rows rendered"),
    ("svdcodec.encoder.deblock", "plane_strength", "deblock: strength trials"),
    ("svdcodec.encoder.deblock", "goal_rows", "deblock: strength trials"),
    ("svdcodec.encoder.deblock:EdgeSamples", "changes", "deblock: strength trials"),
]


def timed(label: str, f: Callable[..., Any], leaf: bool = False) -> Callable[..., Any]:
    """f, its own time counted under `label` (a leaf: under `label <- its caller's stage`)."""
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = _local.__dict__.setdefault("stack", [])
        labels = _local.__dict__.setdefault("labels", [])
        mine = f"{label} <- {labels[-1] if labels else '?'}" if leaf else label
        prefix = getattr(_local, "prefix", "")
        if prefix and not mine.startswith(prefix):
            mine = prefix + mine
        stack.append(0)
        labels.append(label)
        t0 = time.perf_counter_ns()
        try:
            return f(*args, **kwargs)
        finally:
            spent = time.perf_counter_ns() - t0
            child = stack.pop()
            labels.pop()
            TOTALS[mine] += spent - child
            CALLS[mine] += 1
            if stack:
                stack[-1] += spent
    return wrapper


def replace_everywhere(old: object, new: object) -> None:
    """Every svdcodec module's name bound to `old` bound to `new` (`from x import f` copies)."""
    for module in list(sys.modules.values()):
        if module is not None and getattr(module, "__name__", "").startswith("svdcodec"):
            for name, value in list(vars(module).items()):
                if value is old:
                    setattr(module, name, new)


def wrap_stages() -> None:
    import importlib

    for where, name, label in STAGES:
        module_name, _, class_name = where.partition(":")
        owner: Any = importlib.import_module(module_name)
        if class_name:
            owner = getattr(owner, class_name)
            attribute = owner.__dict__[name]
            if isinstance(attribute, functools.cached_property):
                wrapped = functools.cached_property(timed(label, attribute.func))
                wrapped.attrname = attribute.attrname
                setattr(owner, name, wrapped)
            elif isinstance(attribute, classmethod):
                setattr(owner, name, classmethod(timed(label, attribute.__func__)))
            else:
                setattr(owner, name, timed(label, attribute))
        else:
            function = getattr(owner, name)
            replace_everywhere(function, timed(label, function))


def wrap_leaves() -> None:
    """The compiled kernels (through a proxy `kernels.get` returns), LAPACK's eigh and eigvalsh
    and zstd's compress counted on their own, under their callers' stages."""
    from svdcodec.format import writer
    from svdcodec.runtime import kernels

    class Timed:
        def __init__(self, module: types.ModuleType) -> None:
            self._module, self._made = module, {}

        def __getattr__(self, name: str) -> Any:
            value = getattr(self._module, name)
            if not callable(value) or isinstance(value, type):
                return value
            if name not in self._made:
                self._made[name] = timed(f"C {name}", value, leaf=True)
            return self._made[name]

    real, get = kernels.get(), kernels.get
    proxy = Timed(real) if real is not None else None

    def timed_get() -> Any:
        found = get()
        return proxy if found is real and found is not None else found
    kernels.get = timed_get
    np.linalg.eigh = timed("LAPACK eigh", np.linalg.eigh, leaf=True)
    np.linalg.eigvalsh = timed("LAPACK eigvalsh", np.linalg.eigvalsh, leaf=True)
    compressor = writer.compressor
    compress = timed("zstd compress", lambda c, raw: c.compress(raw), leaf=True)

    class Compressor:
        def __init__(self, c: Any) -> None:
            self.c = c

        def compress(self, raw: bytes) -> bytes:
            return compress(self.c, raw)
    writer.compressor = lambda *a, **k: Compressor(compressor(*a, **k))


def mark_trials() -> None:
    """Stages run by a layout choice's trial codings counted as "layout trial: ..."."""
    from svdcodec.encoder import schedule

    choose, candidates = schedule.Encoder.choose_layout, schedule.Encoder._candidates

    def choose_layout(self: Any, *args: Any, **kwargs: Any) -> Any:
        _local.prefix = "layout trial: "
        try:
            return choose(self, *args, **kwargs)
        finally:
            _local.prefix = ""

    def _candidates(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved, _local.prefix = getattr(_local, "prefix", ""), ""
        try:
            return candidates(self, *args, **kwargs)
        finally:
            _local.prefix = saved
    schedule.Encoder.choose_layout = choose_layout
    schedule.Encoder._candidates = _candidates


def timed_encodes(encode: Callable[[], object], rounds: int
                  ) -> tuple[list[int], list[collections.Counter[str]], collections.Counter[str]]:
    """`rounds` encodes: each one's wall time (untimed by the stages) and its stages' times,
    and the calls of all of them."""
    walls, stages = [], []
    TOTALS.clear(), CALLS.clear()
    for _ in range(rounds):
        before = TOTALS.copy()
        t0 = time.perf_counter_ns()
        encode()
        walls.append(time.perf_counter_ns() - t0)
        stages.append(TOTALS - before)
    return walls, stages, CALLS.copy()


def medians(stages: list[collections.Counter[str]]) -> dict[str, float]:
    """Each stage's median time over the encodes (robust to the odd encode a busy machine
    stretches: a mean would carry its pause into whichever stage it fell in)."""
    labels = {label for one in stages for label in one}
    return {label: float(np.median([one[label] for one in stages])) for label in labels}


def report(title: str, walls: list[float], stage_ms: dict[str, float],
           calls: dict[str, float]) -> None:
    total = sum(stage_ms.values())
    print(f"\n{title}: {len(walls)} encodes, wall {np.mean(walls):.2f} ms mean, "
          f"{np.median(walls):.2f} ms median; the stages' medians sum to {total:.2f} ms")
    for label, spent in sorted(stage_ms.items(), key=lambda kv: -kv[1]):
        print(f"  {label:58s} {spent:7.3f} ms {100 * spent / total:5.1f} %  "
              f"{calls.get(label, 0.0):5.1f} calls")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=20, help="timed encodes of each image")
    parser.add_argument("--warm", type=int, default=3, help="untimed encodes of each first")
    parser.add_argument("--crop", action="store_true", help="the 256 x 256 crop at (256, 256)")
    parser.add_argument("--mean", action="store_true",
                        help="one table: the mean over the images of their medians")
    parser.add_argument("--no-leaves", action="store_true",
                        help="count the kernels, LAPACK and zstd in their callers' stages")
    parser.add_argument("--kernels", choices=("0", "1"), help="SVDCODEC_KERNELS for this run")
    args = parser.parse_args(argv)
    if args.kernels is not None:
        os.environ["SVDCODEC_KERNELS"] = args.kernels
    import svdcodec

    arrays = [np.asarray(Image.open(path).convert("RGB")) for path in args.images]
    if args.crop:
        arrays = [np.ascontiguousarray(a[256:512, 256:512]) for a in arrays]
    for a in arrays:  # imports and caches before the wrappers
        svdcodec.encode(a)
    wrap_stages()
    if not args.no_leaves:
        wrap_leaves()
    mark_trials()
    print(f"# svdcodec {svdcodec.__file__}, kernels "
          f"{'c' if svdcodec.runtime.kernels.get() is not None else 'numpy'}; load average "
          f"{os.getloadavg()[0]:.1f}")
    for a in arrays:
        for _ in range(args.warm):
            svdcodec.encode(a)
    per_image = []
    for path, a in zip(args.images, arrays):
        walls, stages, calls = timed_encodes(lambda a=a: svdcodec.encode(a), args.rounds)
        ms = {label: spent / 1e6 for label, spent in medians(stages).items()}
        per_call = {label: count / args.rounds for label, count in calls.items()}
        per_image.append(([w / 1e6 for w in walls], ms, per_call))
        if not args.mean:
            report(f"{path.name}{' crop' if args.crop else ''}", per_image[-1][0], ms, per_call)
    if args.mean:
        labels = {label for _, ms, _ in per_image for label in ms}
        n = len(per_image)
        report(f"mean of {n} images' medians, {args.rounds} encodes each",
               [w for walls, _, _ in per_image for w in walls],
               {label: sum(ms.get(label, 0.0) for _, ms, _ in per_image) / n
                for label in labels},
               {label: sum(c.get(label, 0.0) for _, _, c in per_image) / n for label in labels})
    return 0


if __name__ == "__main__":
    sys.exit(main())
