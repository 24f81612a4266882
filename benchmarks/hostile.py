#!/usr/bin/env python3
"""Prove the decoder's resource bounds (spec/svdi.md §5, Resources) on worst-case files that it
builds itself from the format's grammar, and print the tables of docs/reliability-bounds.md.

    python benchmarks/hostile.py                     # every case, both decode paths
    python benchmarks/hostile.py --kernels 0         # the numpy path only
    python benchmarks/hostile.py --only p8_L_escapes,plain4096_L_blocks1 --keep /tmp/hb

1. Rejected input: every invalid vector of spec/vectors, every tests/regressions/*.svdi the
   reference decoder refuses (a valid one there is a file some path once wrongly refused), and
   worst cases of part 2 with one defect from the grammar (sparse sizes one past a bound, a
   dense element count + 1, a zstd window of 2^24, a skippable frame after a block's frame,
   rank one past MAX_WORK; a residual block's window of 2^24 or skippable frame). For
   `svdcodec.decode(data)` (must raise SvdiError) and Pillow (`Image.open(...).load()`): median wall time of --runs calls and the tracemalloc peak of
   one more call (the input is allocated before tracing). Bound: < 10 ms and < 64 KiB beyond
   the file's own bytes, which the Pillow plugin reads from its file object (svdcodec.decode is
   given them).
2. Accepted input: for every block type (dense int8 / int32 zeros, sparse all-zero rows,
   sparse all-ones rows = the most symbols, sparse rows of value escapes = the most stream
   bytes, one-component blocks of U, S and V = the most blocks, of one size or each of its
   own), every layout (plain, patch 2..32)
   and every mode (L, LA, RGBA, Y'CbCr 4:4:4 and 4:2:0, I;16, F, uint16 x 4), a VALID file at
   the caps (PIL.Image.MAX_IMAGE_PIXELS, MAX_WORK = 2^36, MAX_RANK), plus two encoder outputs;
   and version 2 files (exact planes) with residual blocks (RBLK, int32, planar predictor,
   references) on every channel: whole-height blocks and one-row blocks.
   Each is decoded once in a fresh child process (after a warm-up decode of a tiny vector):
   wall time, and peak = VmHWM after the decode - VmRSS before it, VmHWM reset through
   /proc/self/clear_refs just before (the output array is included). Bound (spec §5):
   peak <= 3 x out + 108 MiB; time < 10 s. "W" is the reconstruction work sum m n r, "D" the
   blocks' declared content bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import zstandard
from PIL import Image, UnidentifiedImageError

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as fmt
from svdcodec.codec import aq, exact
from svdcodec.decoder.reference import decode_reference

VECTORS = REPO / "spec" / "vectors"
REGRESSIONS = REPO / "tests" / "regressions"
KODAK = (REPO / ".." / "shared" / "corpus" / "kodak").resolve()

REJECT_MS = 10.0
REJECT_BYTES = 64 * 1024
FACTOR, SLACK = 3.0, 108 * 2**20  # spec §5: peak <= 3 x out + 108 MiB
ACCEPT_S = 10.0
PILLOW_ERRORS = (UnidentifiedImageError, OSError, Image.DecompressionBombError)
SIDE = 9456  # 9456^2 = 89,415,936 <= MAX_IMAGE_PIXELS = 89,478,485, a multiple of 16 and 32
MODES = {  # name: (sample type, channels, colour, subsampling)
    "L": (1, 1, 0, 0), "LA": (1, 2, 0, 0), "RGBA": (1, 4, 0, 0), "YCC444": (1, 3, 1, 0),
    "YCC420": (1, 3, 1, 1), "I16": (2, 1, 0, 0), "F": (3, 1, 0, 0), "U16x4": (2, 4, 0, 0),
    "YCC420_16": (2, 3, 1, 1), "YCCA_16": (2, 4, 1, 0),  # these two: version 3 only
    "C255": (1, 255, 0, 0)}  # the most planes (version 2 and later)


def table(head: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ----------------------------------------------------------------------------- the grammar's worst cases


def _pack(kind: bytes, plane: int, first: int, count: int, coding: int,
          descriptor: bytes, content: bytes | Callable[[], Iterator[bytes]]) -> bytes:
    """One block chunk. Content given as chunks is compressed as a stream (never whole)."""
    return _frame_chunk(kind, fmt.BLOCK_RECORD.pack(plane, first, count, coding) + descriptor,
                        content)


def _frame_chunk(kind: bytes, head: bytes, content: bytes | Callable[[], Iterator[bytes]]
                 ) -> bytes:
    """A chunk of `head` and one zstd frame of `content` (level 1, content size written)."""
    if isinstance(content, bytes):
        frame = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(content)
    else:
        out = BytesIO()
        size = sum(len(p) for p in content())
        with zstandard.ZstdCompressor(level=1).stream_writer(out, size=size,
                                                             closefd=False) as w:
            for p in content():
                w.write(p)
        frame = out.getvalue()
    return fmt.writer.chunk(kind, head + frame)


def sparse_rows(rows: int, count: int, content: str) -> tuple[bytes, Callable[[], Iterator[bytes]]]:
    """Descriptor and content (in pieces of rows) of a sparse block whose every row is:
    zeros ("sparse0": one end-of-row symbol), ones ("sparse1": count + 1 symbols, the most the
    grammar allows) or value escapes ("escapes": int32, the most stream bytes per row)."""
    if content == "sparse0":
        row, nx, value = b"\x08", 0, b""
    elif content == "sparse1":
        row, nx, value = b"\x09" * count + b"\x08", 0, b""
    else:
        row, nx, value = b"\x00" * count + b"\x08", count, np.int32(100_000).tobytes() * count
    per = max(1, (1 << 22) // len(row))

    def pieces() -> Iterator[bytes]:
        for a in range(0, rows, per):
            yield row * min(per, rows - a)
        for a in range(0, rows, per):
            yield value * min(per, rows - a)
    return fmt.SPARSE_RECORD.pack(3, rows * len(row), 0, rows * nx), pieces


def dense_rows(rows: int, count: int, element: int, ones: bool = False
               ) -> tuple[bytes, Callable[[], Iterator[bytes]]]:
    """Dense residuals of `count` components of `rows` elements, the planar predictor: zeros,
    or with `ones` a one first in each component (whose integers are then all ones: every
    integer non-zero, an exact plane's bands multiplied by BLAS where its rank allows)."""
    itemsize = fmt.ELEMENT_TYPES[element].itemsize
    total = rows * count * itemsize

    def pieces() -> Iterator[bytes]:
        step = 1 << 24
        for a in range(0, total, step):
            piece = bytearray(min(step, total - a))
            if ones:  # the first byte of each component's first element (little-endian)
                first = -(-a // (rows * itemsize)) * rows * itemsize
                piece[first - a::rows * itemsize] = b"\x01" * len(range(first - a, len(piece),
                                                                        rows * itemsize))
            yield bytes(piece)
    return fmt.DENSE_RECORD.pack(element, 3, rows * count), pieces


def factor_chunks(plane: fmt.Plane, content: str) -> Iterator[bytes]:
    r = plane.rank
    sigma = np.full(r, 1e6 if content == "escapes" else 1.0, np.float32)
    # S in one block, or in one block a component (blocks1: the most blocks, S's too)
    for first, count in ([(k, 1) for k in range(r)] if content.startswith("blocks1")
                         else [(0, r)]):
        yield _pack(b"SBLK", plane.index, first, count, fmt.DENSE,
                    fmt.DENSE_RECORD.pack(4, 0, count), sigma[first:first + count].tobytes())
    for kind, grid in ((b"VBLK", plane.vgrid), (b"UBLK", plane.grid)):
        rows = grid[0] * grid[1]
        if content in ("dense8", "dense32", "ones8"):
            element = 3 if content == "dense32" else 1
            per = max(1, (2**32 - 1) // rows)
            for first in range(0, r, per):
                count = min(per, r - first)
                descriptor, pieces = dense_rows(rows, count, element, content == "ones8")
                yield _pack(kind, plane.index, first, count, fmt.DENSE, descriptor, pieces)
        elif content == "blocks1":  # one component per block: the most blocks
            descriptor, pieces = sparse_rows(rows, 1, "sparse0")
            frame = b"".join(pieces())
            for first in range(r):
                yield _pack(kind, plane.index, first, 1, fmt.SPARSE, descriptor, frame)
        elif content == "blocks1d":  # and each of its own sizes: no two alike in a chunk
            for first in range(r):
                ones = first % rows  # rows + ones symbols: ones rows of a one, then zeros
                symbols = b"\x09\x08" * ones + b"\x08" * (rows - ones)
                yield _pack(kind, plane.index, first, 1, fmt.SPARSE,
                            fmt.SPARSE_RECORD.pack(3, len(symbols), 0, 0), symbols)
        else:
            descriptor, pieces = sparse_rows(rows, r, content)
            yield _pack(kind, plane.index, 0, r, fmt.SPARSE, descriptor, pieces)


def plan_planes(header: fmt.Header, layout: int, patch: int, rank: int | None) -> list[fmt.Plane]:
    """Planes of one layout, rank `rank` or the largest the caps allow."""
    planes = []
    for i in range(header.channels):
        h, w = header.plane_shape(i)
        planes.append(fmt.Plane(i, layout, patch, h, w, 0, 1.0))
    if rank is None:
        mn = sum(p.matrix_shape[0] * p.matrix_shape[1] for p in planes)
        rank = min(fmt.MAX_WORK // mn, fmt.MAX_RANK, *(min(p.matrix_shape) for p in planes))
    return [fmt.Plane(p.index, layout, patch, p.height, p.width,
                      min(rank, *p.matrix_shape), 1.0) for p in planes]


@dataclass
class Case:
    name: str
    what: str
    build: Callable[[Path], None]


def residual_chunks(header: fmt.Header, rows_per_block: int) -> Iterator[bytes]:
    """Version 2 residual blocks (RBLK) on every channel: int32 elements, the planar predictor
    (the most work per sample), zeros (so that every q stays valid), blocks of
    `rows_per_block` rows; channels 1 and 2 reference channel 0 (the most q kept at once)."""
    width, height = header.width, header.height
    element = np.dtype("<i4")
    step = 1.0 if header.sample_type != 3 else 0.5
    for first in range(0, height, rows_per_block):
        rows = min(rows_per_block, height - first)
        total = rows * width * element.itemsize

        def pieces(total: int = total) -> Iterator[bytes]:
            for a in range(0, total, 1 << 24):
                yield bytes(min(1 << 24, total - a))
        for channel in range(header.channels):
            reference = 0 if channel in (1, 2) else fmt.NO_REFERENCE
            record = fmt.RESIDUAL_RECORD.pack(channel, reference, first, rows, step, 0.0, 3, 3)
            yield _frame_chunk(b"RBLK", record, pieces)


def worst(name: str, mode: str, width: int, height: int, layout: str, content: str,
          rank: int | None = None, residual_rows: int | None = None,
          deblock: bool = False, adapted: bool = False, compact: bool = False) -> Case:
    """A valid file at the caps; with `residual_rows`, a version 2 file (exact planes) with
    residual blocks of that many rows on every channel; with `deblock`, version 4 with the
    deblocking filter on every plane, thresholds 255 (every edge is tested and moved); with
    `adapted`, version 6 with adaptive quantization on every plane, K = 16 (the map reads
    min(16, rank) components of every row: the most its pass reads); with `compact`, version 5
    (its blocks as records: a few bytes each, the most blocks a file of a size can hold)."""
    stype, channels, colour, sub = MODES[mode]
    version = 3 if stype == 2 and colour else 1 if residual_rows is None and not compact else 2
    version = 4 if deblock or adapted else version  # adapted: written as 4, then made 6
    header = fmt.Header(width, height, stype, channels, colour, sub, 1.0, version)
    kind, patch = (fmt.LAYOUT_PLAIN, 0) if layout == "plain" else (fmt.LAYOUT_PATCH,
                                                                    int(layout[5:]))

    def build(path: Path) -> None:
        planes = plan_planes(header, kind, patch, rank)
        assert sum(p.matrix_shape[0] * p.matrix_shape[1] * p.rank for p in planes) <= fmt.MAX_WORK
        if version >= 2:  # the shift the encoder would choose for these factors
            planes = [dataclasses.replace(p, shift=exact_shift(p, content)) for p in planes]
        if deblock:
            planes = [dataclasses.replace(p, deblock=(255, 255, 255)) for p in planes]
        with open(path, "wb") as f:
            f.write(fmt.pack_header(header, planes))
            for p in planes:
                for chunk in factor_chunks(p, content):
                    f.write(chunk)
            if residual_rows is not None:
                f.writelines(residual_chunks(header, residual_rows))
            f.write(fmt.END)
        if adapted or compact:  # versions 5 and 6 pack blocks as records (spec §4.2): again
            box = fmt.unpack(path.read_bytes())
            planes = box.planes
            if adapted:  # A o M has up to 5 bits more than A (M <= 26 in 1/16): shift - 5
                planes = [dataclasses.replace(p, aq=(16, aq.g_bits(100.0)),
                                              shift=max(0, (p.shift or 0) - 5)) for p in planes]
            path.write_bytes(fmt.pack(dataclasses.replace(
                box, header=dataclasses.replace(box.header, version=6 if adapted else 5),
                planes=planes), 1))
    ranks = "max" if rank is None else rank
    extra = "" if residual_rows is None else f", RBLK int32 of {residual_rows} rows per block"
    extra += ", deblocking filter on every plane" if deblock else ""
    extra += ", adaptive quantization (K = 16) on every plane" if adapted else ""
    extra += ", version 5 records" if compact else ""
    return Case(name, f"{mode} {width}x{height} {layout} rank {ranks}, {content}{extra}", build)


def exact_shift(plane: fmt.Plane, content: str) -> int:
    """The largest shift keeping spec §5.1's bound for factor_chunks' content."""
    sigma = np.full(plane.rank, 1e6 if content == "escapes" else 1.0)
    top = {"sparse0": 0, "sparse1": 1, "escapes": 100_000, "blocks1": 0, "blocks1d": 1,
           "dense8": 0, "dense32": 0, "ones8": 1}[content]
    return exact.choose_shift(plane.step, sigma, top, top, "hostile case")


def photo(width: int, height: int, grey: bool) -> np.ndarray:
    """Kodak photos tiled (the shared corpus), else smooth noise."""
    tiles = sorted(KODAK.glob("*.png"))
    out = np.empty((height, width, 3), np.uint8)
    if tiles:
        k = 0
        for y in range(0, height, 512):
            for x in range(0, width, 768):
                with Image.open(tiles[k % len(tiles)]) as im:
                    a = np.asarray(im.convert("RGB").resize((768, 512)))
                k += 1
                out[y:y + 512, x:x + 768] = a[:height - y, :width - x]
    else:
        rng = np.random.default_rng(1)
        small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        out[:] = np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))
    return out[..., 0].copy() if grey else out


def encoded(name: str, width: int, height: int, quality: int, grey: bool) -> Case:
    def build(path: Path) -> None:
        path.write_bytes(svdcodec.encode(photo(width, height, grey), quality=quality))
    return Case(name, f"svdcodec.encode({'grey' if grey else 'RGB'} Kodak mosaic {width}x"
                      f"{height}, quality={quality})", build)


def cases() -> list[Case]:
    S = SIDE
    out = []
    for content in ("dense32", "sparse1", "escapes", "blocks1"):
        out.append(worst(f"plain_L_{content}", "L", S, S, "plain", content))
    for content in ("escapes", "blocks1", "dense32"):
        out.append(worst(f"plain4096_L_{content}", "L", 4096, 4096, "plain", content))
    out.append(worst("plain_wide_L_dense32", "L", 16384, 2048, "plain", "dense32"))
    for patch, contents in ((2, ("dense8", "escapes")), (4, ("dense32", "escapes")),
                            (8, ("sparse0", "sparse1", "escapes")),
                            (16, ("dense32", "escapes")), (32, ("dense8", "escapes", "blocks1"))):
        for content in contents:
            out.append(worst(f"p{patch}_L_{content}", "L", S, S, f"patch{patch}", content))
    for mode in ("LA", "RGBA", "YCC444", "YCC420", "I16", "F"):
        out.append(worst(f"p8_{mode}_sparse1", mode, S, S, "patch8", "sparse1", 64))
    out.append(worst("p8_YCC420_escapes", "YCC420", S, S, "patch8", "escapes", 64))
    # Tiny chroma streams decode as jobs beside Y' (decoder.render.OutputPlan.chroma_jobs):
    # the most planes' buffers at once.
    out.append(worst("p8_YCC420_sparse0", "YCC420", S, S, "patch8", "sparse0", 64))
    out.append(worst("p32_YCC420_sparse0", "YCC420", S, S, "patch32", "sparse0"))
    out.append(worst("plain_YCC420_escapes", "YCC420", S, S, "plain", "escapes"))
    out.append(worst("p8_U16x4_escapes", "U16x4", 4096, 4096, "patch8", "escapes"))
    # Version 2: exact planes and residual blocks on every channel (the residual phase streams
    # each block a band at a time): whole-height blocks, and one-row blocks (the most blocks).
    out.append(worst("v2_p8_RGBA_rblk", "RGBA", S, S, "patch8", "sparse1", 64, S))
    out.append(worst("v2_p8_YCC420_rblk", "YCC420", S, S, "patch8", "sparse1", 64, S))
    out.append(worst("v2_p8_F_rblk", "F", S, S, "patch8", "escapes", 64, S))
    out.append(worst("v2_p8_L_rblk_rows1", "L", S, S, "patch8", "sparse0", 64, 1))
    # Version 3: 16-bit Y'CbCr (uint16 output, the integer inverse of spec §5.2), with and
    # without residuals.
    out.append(worst("v3_p8_YCC420_16_sparse1", "YCC420_16", S, S, "patch8", "sparse1", 64))
    out.append(worst("v3_p8_YCCA_16_rblk", "YCCA_16", S, S, "patch8", "sparse1", 64, S))
    # Version 4: the deblocking filter on every plane (the output holds Y'CbCr before the
    # conversion, chroma upsampled into it), patch 2 (an edge every 2 samples: the most edges)
    # and 4:2:0 under residual blocks.
    out.append(worst("v4_p2_RGBA_deblock", "RGBA", S, S, "patch2", "dense8", None, None, True))
    out.append(worst("v4_p8_YCC420_deblock_rblk", "YCC420", S, S, "patch8", "sparse1", 64, S,
                     True))
    # Version 6: adaptive quantization, whose map reads up to 16 components of every matrix
    # row before any band: patch 2 (a row every 4 pixels: the largest map), dense and sparse.
    out.append(worst("v6_p2_L_aq_dense8", "L", S, S, "patch2", "dense8", adapted=True))
    out.append(worst("v6_p2_L_aq_sparse1", "L", S, S, "patch2", "sparse1", adapted=True))
    out.append(worst("v6_p4_RGBA_aq_escapes", "RGBA", S, S, "patch4", "escapes", 16,
                     adapted=True))
    # Version 5: 255 planes at the work cap, every block one component of a few bytes (a
    # record each): the most blocks a file holds for its output (3 x 255 x 640 = 489,600).
    out.append(worst("v5_plain_C255_blocks1", "C255", 640, 640, "plain", "blocks1",
                     compact=True))
    # ... and every block of a chunk of its own sizes (no record shares its parts' tuples)
    out.append(worst("v5_plain_C255_blocks1d", "C255", 640, 640, "plain", "blocks1d",
                     compact=True))
    # 255 patch-32 planes at rank 512: each plane's B^T (2 MiB, 6 with the binary64 copy) above
    # its share of the pass budget, which the band renderer holds for every plane at once
    out.append(worst("v5_p32_C255_sparse0", "C255", 1024, 512, "patch32", "sparse0",
                     compact=True))
    # One patch-32 plane at the work cap (rank 1024), its integers all ones (every band to
    # BLAS), U's dense block 8 times the budget in float32: each pass of the left factor
    # unpredicts U's grid rows up to its own
    out.append(worst("v5_p32_L8192_ones8", "L", 8192, 8192, "patch32", "ones8", compact=True))
    # ... and a plain one (rank 4096): U in passes, V in column ranges, each reading its dense
    # block's every component, a single column each
    out.append(worst("v5_plain4096_L_dense32", "L", 4096, 4096, "plain", "dense32",
                     compact=True))
    out.append(encoded("enc_rgb_4000x3000_q75", 4000, 3000, 75, False))
    out.append(encoded("enc_grey_6144_q100", 6144, 6144, 100, True))
    return out


# ----------------------------------------------------------------------------- 1. rejected files


def with_defect(data: bytes, defect: str) -> bytes:
    """`data` with one defect in its first U block (or its first PLAN)."""
    chunks, pos = [], len(fmt.SIGNATURE)
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        chunks.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    if defect == "rank past MAX_WORK":
        i = next(k for k, (kind, _) in enumerate(chunks) if kind == b"PLAN")
        fields = list(fmt.PLAN_RECORD.unpack(chunks[i][1]))
        fields[5] += 1
        chunks[i] = (b"PLAN", fmt.PLAN_RECORD.pack(*fields))
    elif defect.startswith("RBLK "):  # the first residual block's frame
        i = next(k for k, (kind, _) in enumerate(chunks) if kind == b"RBLK")
        size = fmt.RESIDUAL_RECORD.size
        chunks[i] = (b"RBLK", chunks[i][1][:size]
                     + bad_frame(chunks[i][1][size:], defect[len("RBLK "):]))
    else:
        i = next(k for k, (kind, _) in enumerate(chunks) if kind == b"UBLK")
        payload = chunks[i][1]
        head = fmt.BLOCK_RECORD.size
        coding = payload[head - 1]
        if defect == "sparse sizes +1":
            assert coding == fmt.SPARSE
            code, nsym, nxrun, _ = fmt.SPARSE_RECORD.unpack_from(payload, head)
            # value escapes = symbols: past "value escapes <= symbols - rows"
            payload = (payload[:head] + fmt.SPARSE_RECORD.pack(code, nsym, nxrun, nsym)
                       + payload[head + fmt.SPARSE_RECORD.size:])
        elif defect == "dense elements +1":
            code, predictor, elements = fmt.DENSE_RECORD.unpack_from(payload, head)
            payload = (payload[:head] + fmt.DENSE_RECORD.pack(code, predictor, elements + 1)
                       + payload[head + fmt.DENSE_RECORD.size:])
        else:
            size = head + (fmt.DENSE_RECORD.size if coding == fmt.DENSE else fmt.SPARSE_RECORD.size)
            payload = payload[:size] + bad_frame(payload[size:], defect)
        chunks[i] = (b"UBLK", payload)
    return fmt.SIGNATURE + b"".join(fmt.writer.chunk(k, p) for k, p in chunks)


def bad_frame(frame: bytes, defect: str) -> bytes:
    """A block's zstd frame with a window of 2^24 or a skippable frame after it."""
    if defect == "window 2^24":
        params = zstandard.get_frame_parameters(frame)
        header = zstandard.frame_header_size(frame)
        return ((0xFD2FB528).to_bytes(4, "little") + bytes([0xC0, (24 - 10) << 3])
                + params.content_size.to_bytes(8, "little") + frame[header:])
    assert defect == "skippable frame after", defect
    return frame + (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"hide"


def _outcome(call: Callable[[], Any]) -> BaseException | None:
    try:
        call()
    except Exception as exc:
        return exc
    return None


def measure_rejection(call: Callable[[], Any], runs: int) -> tuple[BaseException | None, float, int]:
    _outcome(call)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        _outcome(call)
        times.append((time.perf_counter() - t0) * 1e3)
    gc.collect()
    tracemalloc.start()
    try:
        error = _outcome(call)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return error, statistics.median(times), peak


def _pillow(data: bytes) -> None:
    with Image.open(BytesIO(data)) as im:
        im.load()


def invalid(data: bytes) -> bool:
    """The reference decoder's verdict: some regression files are valid (a fuzzer found a
    path that wrongly refused them), and belong with the files decoded, not the refused."""
    try:
        decode_reference(data)
    except SvdiError:
        return True
    return False


def run_rejections(files: list[tuple[str, bytes]], runs: int, out: list[str]) -> bool:
    rows, ok_all = [], True
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    for name, data in files:
        e1, ms1, peak1 = measure_rejection(lambda data=data: svdcodec.decode(data), runs)
        e2, ms2, peak2 = measure_rejection(lambda data=data: _pillow(data), runs)
        ok1 = isinstance(e1, SvdiError) and ms1 < REJECT_MS and peak1 < REJECT_BYTES
        # the Pillow plugin reads the file's bytes into memory before decoding them
        ok2 = isinstance(e2, PILLOW_ERRORS) and ms2 < REJECT_MS \
            and peak2 < REJECT_BYTES + len(data)
        ok_all &= ok1 and ok2
        rows.append([name, len(data), f"{ms1:.3f}", f"{peak1 / 1024:.1f}",
                     "PASS" if ok1 else f"FAIL ({type(e1).__name__ if e1 else 'accepted'})",
                     f"{ms2:.3f}", f"{peak2 / 1024:.1f}",
                     "PASS" if ok2 else f"FAIL ({type(e2).__name__ if e2 else 'accepted'})"])
    out.append(f"\n### 1. Rejected input (median of {runs} runs; tracemalloc peak of one more; "
               f"bound < {REJECT_MS:g} ms and < {REJECT_BYTES // 1024} KiB, beyond the file's "
               f"bytes through Pillow)\n")
    out.append(table(["file", "bytes", "decode ms", "KiB", "", "Pillow ms", "KiB", ""], rows))
    return ok_all


# ----------------------------------------------------------------------------- 2. accepted files


def decode_in_child(path: Path, kernels: str, timeout: float) -> dict[str, Any]:
    tiny = VECTORS / "l_13x7_plain.svdi"
    # The clone's package, not an installed one (PYTHONPATH), measured by _child_decode.py.
    env = dict(os.environ, SVDCODEC_KERNELS=kernels,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    try:
        r = subprocess.run([sys.executable, str(Path(__file__).with_name("_child_decode.py")),
                            str(path), str(tiny)],
                           capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if r.returncode != 0:
        lines = r.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {r.returncode}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_accepted(selected: list[Case], workdir: Path, kernels: list[str], timeout: float,
                 out: list[str]) -> bool:
    rows, ok_all, notes = [], True, []
    for case in selected:
        path = workdir / f"{case.name}.svdi"
        t0 = time.perf_counter()
        if not path.exists():
            case.build(path)
        built = time.perf_counter() - t0
        notes.append(f"- `{case.name}`: {case.what} (built in {built:.1f} s)")
        for k in kernels:
            res = decode_in_child(path, k, timeout)
            size = path.stat().st_size
            if "error" in res:
                ok_all = False
                rows.append([case.name, k, size, "-", "-", "-", "-", "-", "-",
                             f"FAIL ({res['error'][:80]})"])
                continue
            extra = res["hwm"] - res["rss_before"]
            o = res["out_bytes"]
            bound = FACTOR * o + SLACK
            ok_mem, ok_time = extra <= bound, res["seconds"] < ACCEPT_S
            ok_all &= ok_mem and ok_time
            verdict = "PASS" if ok_mem and ok_time else "FAIL (" + ", ".join(
                w for w, bad in (("memory", not ok_mem), ("time", not ok_time)) if bad) + ")"
            rows.append([case.name, k, size, f"{o / 2**20:.1f}", f"{extra / 2**20:.1f}",
                         f"{bound / 2**20:.1f}", f"{res['seconds']:.2f}",
                         f"{res['work'] / 2**30:.1f}", f"{res['declared'] / 2**20:.0f}",
                         verdict])
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
    out.append(f"\n### 2. Accepted input (fresh process each; peak = VmHWM - VmRSS before, "
               f"output included; bound peak <= {FACTOR:g} x out + {SLACK >> 20} MiB and "
               f"< {ACCEPT_S:g} s)\n")
    out.append(table(["case", "kernels", "file bytes", "out MiB", "peak MiB", "bound MiB",
                      "s", "W (2^30)", "D MiB", "verdict"], rows))
    out.append("")
    out.extend(notes)
    return ok_all


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--kernels", default="0,1", help="SVDCODEC_KERNELS values to run (0,1)")
    cli.add_argument("--runs", type=int, default=20, help="timed calls per rejected file")
    cli.add_argument("--only", help="comma-separated accepted case names")
    cli.add_argument("--skip-rejected", action="store_true")
    cli.add_argument("--skip-accepted", action="store_true")
    cli.add_argument("--keep", type=Path, help="directory for the built files (reused if present)")
    cli.add_argument("--timeout", type=float, default=120.0, help="seconds per child decode")
    args = cli.parse_args()

    out = ["$ " + shlex.join(["python", *sys.argv])]
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out.append(f"\nsvdcodec @ {commit}, numpy {np.__version__}, Pillow {Image.__version__}, "
               f"zstandard {zstandard.__version__}, {cores} usable cores, MAX_IMAGE_PIXELS "
               f"{Image.MAX_IMAGE_PIXELS}, MAX_WORK 2^36")
    print("\n".join(out), flush=True)
    selected = cases()
    if args.only:
        names = set(args.only.split(","))
        selected = [c for c in selected if c.name in names]
    ok = True
    with tempfile.TemporaryDirectory(prefix="hostile_") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if not args.skip_rejected:
            manifest = json.loads((VECTORS / "manifest.json").read_text())
            files = [(f"vectors/{v['file']}", (VECTORS / v["file"]).read_bytes())
                     for v in manifest["vectors"] if not v["valid"]]
            files += [(f"regressions/{p.name}", p.read_bytes())
                      for p in sorted(REGRESSIONS.glob("*.svdi")) if invalid(p.read_bytes())]
            defects = {"p8_L_escapes": ["sparse sizes +1", "window 2^24",
                                        "skippable frame after"],
                       "plain4096_L_dense32": ["dense elements +1", "window 2^24"],
                       "p32_L_dense8": ["rank past MAX_WORK", "skippable frame after"],
                       "v2_p8_RGBA_rblk": ["RBLK window 2^24", "RBLK skippable frame after"]}
            for case in cases():
                for defect in defects.get(case.name, []):
                    path = workdir / f"{case.name}.svdi"
                    if not path.exists():
                        case.build(path)
                    files.append((f"{case.name} + {defect}",
                                  with_defect(path.read_bytes(), defect)))
            ok &= run_rejections(files, args.runs, out)
            print("\n".join(out[-2:]), flush=True)
        if not args.skip_accepted:
            ok &= run_accepted(selected, workdir, args.kernels.split(","), args.timeout, out)
    out.append(f"\noverall: {'PASS' if ok else 'FAIL'}")
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
