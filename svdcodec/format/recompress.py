"""A written file's factor blocks compressed again at a higher zstd level: the encoder's
`effort` above 1. The bytes a block's frame decompresses to do not change, nor does any other
chunk: only frames that come out smaller are replaced, so the file never grows and decodes to
the same pixels.

Why after writing, not while coding: the encoder decides layouts, ranks and codings by the
size of blocks packed at a fast level, many of them candidates it throws away; only the kept
blocks are worth a slow level's time.
"""

from __future__ import annotations

from ..runtime.threads import run_bands
from .blocks import decompressor
from .reader import _chunks, _descriptor, _parse_header, _parse_plane
from .records import FACTOR_TYPES, SIGNATURE, Plane
from .writer import END, chunk, compressor


def recompress_blocks(data: bytes, level: int) -> bytes:
    """`data` (a valid file, as the encoder wrote it) with every factor block's frame replaced
    by its content compressed at `level`, where that is smaller."""
    planes: list[Plane] = []
    cursor: dict[tuple[int, str], int] = {}
    pieces: list[tuple[bytes, memoryview] | tuple[bytes, memoryview, int]] = []
    header = None
    for kind, payload in _chunks(data):
        if kind == b"HEAD":
            header, _ = _parse_header(payload)
        elif kind == b"PLAN":
            assert header is not None
            planes.append(_parse_plane(payload, header, len(planes)))
        if kind in FACTOR_TYPES:
            pieces.append((kind, payload, _descriptor(kind, payload, planes, cursor).frame_at))
        else:
            pieces.append((kind, payload))

    def repack(i: int) -> bytes:
        piece = pieces[i]
        kind, payload = piece[0], piece[1]
        if len(piece) == 2:
            return chunk(kind, bytes(payload))
        frame_at = piece[2]
        old = payload[frame_at:]
        new = compressor(level).compress(decompressor().decompress(old))
        if len(new) >= len(old):
            return chunk(kind, bytes(payload))
        return chunk(kind, bytes(payload[:frame_at]) + new)
    return SIGNATURE + b"".join(run_bands(repack, len(pieces))) + END

