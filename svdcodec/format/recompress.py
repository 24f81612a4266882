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
from .blocks import MAGICLESS, decompressor
from .reader import Descriptor, _chunks, _parse_header, _parse_plane, block_descriptors
from .records import FACTOR_TYPES, SIGNATURE, Header, Plane, varint
from .writer import END, chunk, compressor


def recompress_blocks(data: bytes, level: int) -> bytes:
    """`data` (a valid file, as the encoder wrote it) with every factor block's frame replaced
    by its content compressed at `level`, where that is smaller (a stored block of version 5
    stays stored: the encoder stored it because no frame was smaller)."""
    planes: list[Plane] = []
    cursor: dict[tuple[int, str], int] = {}
    pieces: list[tuple[bytes, memoryview, list[Descriptor]]] = []
    header: Header | None = None
    for kind, payload, _ in _chunks(data):
        if kind == b"HEAD":
            header, _ = _parse_header(payload)
        elif kind == b"PLAN":
            assert header is not None
            planes.append(_parse_plane(payload, header, len(planes)))
        blocks = []
        if kind in FACTOR_TYPES:
            assert header is not None
            blocks = list(block_descriptors(kind, payload, header, planes, cursor))
        pieces.append((kind, payload, blocks))

    def frame(d: Descriptor, payload: memoryview) -> bytes:
        """The block's frame (version 5: with its length; a stored block's bytes) at `level`
        if that is smaller, else as it is."""
        old = payload[d.length_at:d.frame_end]
        if d.stored_raw:
            return bytes(old)
        magicless = d.form == MAGICLESS
        raw = decompressor(d.form).decompress(payload[d.frame_at:d.frame_end])
        new = compressor(level, magicless, len(raw)).compress(raw)
        framed = varint(len(new)) + new if magicless else new
        return framed if len(framed) < len(old) else bytes(old)

    def repack(i: int) -> bytes:
        kind, payload, blocks = pieces[i]
        if not blocks:
            return chunk(kind, bytes(payload))
        return chunk(kind, b"".join(bytes(payload[d.record_at:d.length_at]) + frame(d, payload)
                                    for d in blocks))
    return SIGNATURE + b"".join(run_bands(repack, len(pieces))) + END
