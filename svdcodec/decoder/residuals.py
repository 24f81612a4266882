"""The residual phase of a version 2 decode (spec §4.1, §5.3): each residual block's rows read
from its zstd frame a band at a time, unpredicted, its reference channel's q added, and applied
to the decoded samples in place.

The phase runs after the planes (their factors are released): a band of at most BAND_SAMPLES
samples per channel, one stream reader open per channel of a group of at most OPEN_STREAMS
channels (a channel's blocks are read in row order, so a band meets at most one block of each
channel), never a whole residual grid (spec §5 Resources). Images of more channels go group
after group; a channel whose reference is in an earlier group reads the reference's blocks
again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ..codec import residual as rule
from ..errors import SvdiError
from ..format import NO_REFERENCE, Container, FrameReader, ResidualBlock

#: Samples per channel of one band of the residual phase.
BAND_SAMPLES = 1 << 18
#: Most residual streams (zstd contexts) open at once (spec §5 Resources).
OPEN_STREAMS = 4


@dataclass
class ChannelCursor:
    """Where one channel's residual blocks have been read to: the block in progress, its
    stream and the predictor's carry."""

    blocks: list[ResidualBlock]
    index: int = 0
    reader: FrameReader | None = None
    carry: np.ndarray | None = field(default=None, repr=False)

    def rows(self, y0: int, y1: int) -> tuple[ResidualBlock, np.ndarray]:
        """The block holding rows [y0, y1) (the band never straddles two) and its unpredicted
        grid rows, int64."""
        block = self.blocks[self.index]
        if self.reader is None:
            self.reader, self.carry = block.reader(), None
        width, item = block.width, block.element.itemsize
        raw = self.reader.exactly((y1 - y0) * width * item)
        d = np.frombuffer(raw, block.element).reshape(y1 - y0, width)
        g, self.carry = rule.unpredict_rows(d, block.predictor, self.carry)
        if y1 == block.first + block.rows:  # the block's end: its frame must end here too
            self.reader.finish()
            self.reader, self.index = None, self.index + 1
        return block, g


def band_bounds(container: Container) -> list[tuple[int, int]]:
    """Bands of rows of at most BAND_SAMPLES samples that never straddle a block boundary."""
    header = container.header
    cuts = {0, header.height}
    for block in container.residuals:
        cuts.update((block.first, block.first + block.rows))
    per = max(1, BAND_SAMPLES // header.width)
    edges = sorted(cuts)
    bands = []
    for a, b in pairwise(edges):
        bands += [(y, min(y + per, b)) for y in range(a, b, per)]
    return bands


def channel_order(container: Container) -> list[int]:
    """Channels with residual blocks, those that others reference first."""
    channels = sorted({b.channel for b in container.residuals})
    referencing = {b.channel for b in container.residuals if b.reference != NO_REFERENCE}
    return [c for c in channels if c not in referencing] + [c for c in channels
                                                            if c in referencing]


def channel_groups(container: Container) -> list[tuple[list[int], list[int]]]:
    """(channels to correct, channels to read: those and their references, referenced ones
    first) for groups whose streams number at most OPEN_STREAMS, in channel_order."""
    reference = {b.channel: b.reference for b in container.residuals
                 if b.reference != NO_REFERENCE}
    groups: list[tuple[list[int], list[int]]] = []
    for c in channel_order(container):
        need = [reference[c], c] if c in reference else [c]
        if groups:
            applied, read = groups[-1]
            more = [x for x in need if x not in read]
            if len(read) + len(more) <= OPEN_STREAMS:
                applied.append(c)
                read += more
                continue
        groups.append(([c], need))
    return groups


def apply_residuals(container: Container, out: np.ndarray | None) -> None:
    """Apply every residual block to `out` (h, w, c) in place, band by band. With `out` None,
    only read and check the blocks (read_factors: the same streams and |q| rule, no samples)."""
    if not container.residuals:
        return
    bands = band_bounds(container)
    for applied, read in channel_groups(container):
        apply_group(container, out, bands, set(applied), read)


def apply_group(container: Container, out: np.ndarray | None, bands: list[tuple[int, int]],
                applied: set[int], read: list[int]) -> None:
    """The residuals of the channels `applied`, reading the streams of the channels `read`
    (referenced ones first), band by band."""
    cursors = {c: ChannelCursor([b for b in container.residuals if b.channel == c])
               for c in read}
    for y0, y1 in bands:
        q_of: dict[int, np.ndarray] = {}
        for c, cursor in cursors.items():
            block, q = cursor.rows(y0, y1)
            if block.reference != NO_REFERENCE:
                q += q_of[block.reference]
            if block.wrapped:
                q = rule.wrap16(q).astype(np.int64)
            rule.check_q(q, block.what)
            q_of[c] = q
            if out is None or c not in applied:
                continue
            corrected = rule.apply(out[y0:y1, :, c], q, block.step, block.wrapped)
            if corrected.dtype.kind == "f" and not np.all(np.isfinite(corrected)):
                raise SvdiError(f"{block.what}: corrected samples overflow {corrected.dtype}")
            out[y0:y1, :, c] = corrected
