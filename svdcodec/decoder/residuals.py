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

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from ..codec import residual as rule
from ..errors import SvdiError
from ..format import COLOUR_YCBCR, NO_REFERENCE, Container, FrameReader, ResidualBlock
from ..format.residual_table import ResidualTable

#: Samples per channel of one band of the residual phase.
BAND_SAMPLES = 1 << 18
#: Most residual streams (zstd contexts) open at once (spec §5 Resources).
OPEN_STREAMS = 4


def table_of(container: Container) -> ResidualTable:
    """The container's residual blocks as `unpack` gives them (the residual phase reads
    files; a container without them may hold an empty list)."""
    table = container.residuals
    if isinstance(table, list):
        assert not table, "the residual phase of a parsed file"
        return ResidualTable(memoryview(b""), container.header)
    return table


def channel_table(container: Container, channel: int) -> ResidualTable:
    """The channel's residual blocks (`Container.residual_blocks`) of a parsed file."""
    blocks = container.residual_blocks(channel)
    assert isinstance(blocks, ResidualTable), "the residual phase of a parsed file"
    return blocks


@dataclass
class ChannelCursor:
    """Where one channel's residual blocks (`Container.residual_blocks`) have been read to:
    the block in progress, its stream and the predictor's carry."""

    blocks: ResidualTable
    index: int = 0
    block: ResidualBlock | None = None  # the block in progress (its stream open)
    reader: FrameReader | None = None
    carry: np.ndarray | None = field(default=None, repr=False)

    def seek(self, y0: int, what: str) -> None:
        """Skip the blocks before row y0, unread (each block is a frame of its own): a
        reference channel read only at the rows of the blocks that refer to it, which start
        where a block of its own starts (spec §4.1). Never inside a block begun."""
        if self.reader is not None:
            return
        count = len(self.blocks)
        while self.index < count and sum(self.blocks.first_and_rows(self.index)) <= y0:
            self.index += 1
        if self.index == count or self.blocks.first_and_rows(self.index)[0] != y0:
            raise SvdiError(f"{what}: no block of its reference channel starts at row {y0}")

    def rows(self, y0: int, y1: int) -> tuple[ResidualBlock, np.ndarray]:
        """The block holding rows [y0, y1) (the band never straddles two) and its unpredicted
        grid rows, int64."""
        if self.reader is None or self.block is None:
            self.block = self.blocks[self.index]
            self.reader, self.carry = self.block.reader(), None
        block = self.block
        width, item = block.width, block.element.itemsize
        raw = self.reader.exactly((y1 - y0) * width * item)
        d = np.frombuffer(raw, block.element).reshape(y1 - y0, width)
        g, self.carry = rule.unpredict_rows(d, block.predictor, self.carry)
        if y1 == block.first + block.rows:  # the block's end: its frame must end here too
            self.reader.finish()
            self.reader, self.block, self.index = None, None, self.index + 1
        return block, g


@dataclass(frozen=True)
class Bands:
    """Bands of rows (y0, y1): the rows between consecutive `edges` (sorted, distinct rows) in
    pieces of at most `per` rows, those that end at row `stop` or before (None: all)."""

    edges: np.ndarray
    per: int
    stop: int | None = None

    def upto(self, rows: int) -> Bands:
        """The bands that end at row `rows` or before."""
        return replace(self, stop=rows if self.stop is None else min(rows, self.stop))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for at in range(0, len(self.edges) - 1, 4096):  # a few thousand edges as ints at once
            edges = self.edges[at:at + 4097].tolist()
            for a, b in pairwise(edges):
                for y0 in range(a, b, self.per):
                    y1 = min(y0 + self.per, b)
                    if self.stop is not None and y1 > self.stop:
                        return
                    yield y0, y1


def band_bounds(container: Container, channels: list[int]) -> Bands:
    """Bands of rows of at most BAND_SAMPLES samples that never straddle a boundary of a block
    of `channels` (a group of `channel_groups`) or of a channel they refer to: a group's bands
    are cut where its own blocks are, so that one channel of many short blocks does not cut
    every other group's rows as finely (a numpy step per band and channel). A channel's
    blocks follow each other from row 0 (spec §4.1): their boundaries are their first rows
    and the last one's end."""
    header = container.header
    read = set(channels)
    for c in channels:
        references = channel_table(container, c).references()
        read.update(np.unique(references[references != NO_REFERENCE]).tolist())
    cuts = [np.array([0, header.height], np.uint32)]
    for c in sorted(read):
        blocks = channel_table(container, c)
        if len(blocks):
            cuts += [blocks.firsts(), np.array([sum(blocks.first_and_rows(-1))], np.uint32)]
    per = max(1, BAND_SAMPLES // header.width)
    if len(cuts) == 3:  # one channel: 0, its first rows, its end and the height are in order
        edges = np.concatenate([cuts[0][:1], cuts[1], cuts[2], cuts[0][1:]])
        return Bands(edges[np.concatenate([edges[1:] != edges[:-1], [True]])], per)
    return Bands(np.unique(np.concatenate(cuts)), per)


def arrived_blocks(container: Container, channel: int, rows: int) -> ResidualTable:
    """The residual blocks a file cut short holds for the channel's first `rows` rows: the
    channel's own up to there and those of the channels they refer to (spec §4.1: a reference's
    block of the same rows comes first), each a prefix of its channel's (they are in row order),
    not a search among every block of the file for each channel."""
    table = table_of(container)
    ends = table.ends()

    def within(c: int) -> np.ndarray:
        mine = table.positions_of(c)
        return mine[:int(np.searchsorted(ends[mine], rows, side="right"))]
    own = within(channel)
    references = table.references()[own]
    chosen = [own] + [within(r) for r in np.unique(references[references != NO_REFERENCE])
                      .tolist()]
    return table.subset(np.concatenate(chosen))


def channel_order(container: Container) -> list[int]:
    """Channels with residual blocks, those that others reference first."""
    table = table_of(container)
    channels, references = table.channels(), table.references()
    present = np.unique(channels).tolist()
    referencing = set(np.unique(channels[references != NO_REFERENCE]).tolist())
    return [c for c in present if c not in referencing] + [c for c in present
                                                           if c in referencing]


def channel_groups(container: Container, channels: list[int] | None = None
                   ) -> list[list[int]]:
    """`channels` (default: every channel with residual blocks), in channel_order, in groups
    that open at most OPEN_STREAMS streams in any band: a channel's own, and one more for a
    channel whose blocks refer to a channel outside its group (read at those blocks' rows
    alone, `band_residuals`; a channel's blocks may refer to different channels)."""
    table = table_of(container)
    owner, referred = table.channels(), table.references()
    referring = referred != NO_REFERENCE
    references: dict[int, set[int]] = {}
    pairs = owner[referring].astype(np.int64) * 256 + referred[referring]
    for pair in np.unique(pairs).tolist():
        references.setdefault(pair // 256, set()).add(pair % 256)
    wanted = None if channels is None else set(channels)
    groups: list[list[int]] = []

    def streams(group: list[int]) -> int:
        return len(group) + sum(1 for c in group if not references.get(c, set()) <= set(group))

    for c in channel_order(container):
        if wanted is not None and c not in wanted:
            continue
        if groups and streams(groups[-1] + [c]) <= OPEN_STREAMS:
            groups[-1].append(c)
        else:
            groups.append([c])
    return groups


def apply_residuals(container: Container, out: np.ndarray | None) -> None:
    """Apply every residual block to `out` (h, w, c) in place, band by band. With `out` None,
    only read and check the blocks (read_factors: the same streams and |q| rule, no samples)."""
    if not container.residuals:
        return
    for group in channel_groups(container):
        apply_group(container, out, band_bounds(container, group), group)


def band_residuals(container: Container, bands: Bands, channels: list[int]
                   ) -> Iterator[tuple[int, int, dict[int, tuple[ResidualBlock, np.ndarray]]]]:
    """Per band (y0, y1), each of `channels` (in channel_order: referenced ones first) with its
    block there and final q (its reference's added, wrapped where the block is, checked). A
    reference channel outside `channels` is read only at the rows of the blocks that refer to
    it, which its own blocks of the same rows cover (spec §4.1)."""
    def cursor(c: int) -> ChannelCursor:
        return ChannelCursor(channel_table(container, c))

    cursors = {c: cursor(c) for c in channels}
    outside: dict[int, ChannelCursor] = {}  # reference channels not in `channels`

    def final(block: ResidualBlock, q: np.ndarray, q_of: dict[int, np.ndarray]) -> np.ndarray:
        if block.reference != NO_REFERENCE:
            q += q_of[block.reference]
        if block.wrapped:
            q = rule.wrap16(q).astype(np.int64)
        rule.check_q(q, block.what)
        return q

    for y0, y1 in bands:
        q_of: dict[int, np.ndarray] = {}
        found: dict[int, tuple[ResidualBlock, np.ndarray]] = {}
        for c in channels:
            block, q = cursors[c].rows(y0, y1)
            r = block.reference
            if r != NO_REFERENCE and r not in q_of:
                reader = outside.setdefault(r, cursor(r))
                reader.seek(y0, block.what)
                r_block, r_q = reader.rows(y0, y1)
                q_of[r] = final(r_block, r_q, q_of)
            q_of[c] = final(block, q, q_of)
            found[c] = block, q_of[c]
        yield y0, y1, found


def corrected(samples: np.ndarray, block: ResidualBlock, q: np.ndarray) -> np.ndarray:
    """`samples` (rows of one channel) corrected by a block's q; SvdiError where a float
    sample overflows (the file is invalid, spec §5.3)."""
    fixed = rule.apply(samples, q, block.step, block.wrapped)
    if fixed.dtype.kind == "f" and not np.all(np.isfinite(fixed)):
        raise SvdiError(f"{block.what}: corrected samples overflow {fixed.dtype}")
    return fixed


def apply_group(container: Container, out: np.ndarray | None, bands: Bands,
                channels: list[int]) -> None:
    """The residuals of `channels` (a group of `channel_groups`), band by band."""
    for y0, y1, q_of in band_residuals(container, bands, channels):
        if out is None:
            continue
        for c, (block, q) in q_of.items():
            out[y0:y1, :, c] = corrected(out[y0:y1, :, c], block, q)


# ------------------------------------------------------------------ channels with no layer


def bare_channels(container: Container) -> list[int]:
    """The channels with residual blocks whose layer is one constant sample (spec §5.3): every
    plane they are made from (colour 1: Y'CbCr's three for R, G and B; else the channel's own)
    has rank 0 and no MEAN chunk, deblocking or restoration. An image's alpha as the encoder
    codes it, or every channel of a file with no layer. Their residual is the same whatever
    the other planes' components, so a preview and a reduced decode apply it too."""
    header = container.header

    def flat(i: int) -> bool:
        p = container.planes[i]
        return (p.rank == 0 and i not in container.means and not p.filtered
                and i not in container.restoration)

    def sources(c: int) -> range:
        return range(3) if header.colour == COLOUR_YCBCR and c < 3 else range(c, c + 1)

    return [c for c in channel_order(container) if all(flat(i) for i in sources(c))]


def apply_bare(container: Container, out: np.ndarray, channels: list[int] | None = None,
               rows: int | None = None) -> None:
    """The residuals of `channels` (default: `bare_channels`) applied to `out` (h, w, c), a
    preview's image, in place; `rows`: only the first rows (those whose blocks arrived)."""
    for group in channel_groups(container, bare_channels(container) if channels is None
                                else channels):
        bands = band_bounds(container, group)
        apply_group(container, out, bands if rows is None else bands.upto(rows), group)


def reduce_bare(container: Container, out: np.ndarray, factor: int,
                channels: list[int] | None = None, rows: int | None = None) -> None:
    """A reduced decode's `out` (h', w', c) with each of `channels` (default: `bare_channels`)
    replaced by the means of its exact samples over factor x factor cells (`cell_samples`);
    `rows`: the residual of the first rows only (a cell they do not fill keeps the layer's
    constant). Band by band and in `channel_groups`: a band's rows of a channel at full size,
    never the whole channel."""
    header = container.header
    height = header.height if rows is None else min(rows, header.height)
    for group in channel_groups(container, bare_channels(container) if channels is None
                                else channels):
        bands = band_bounds(container, group).upto(height)
        # the layer's constant sample of each channel: the same in every cell
        constant = {c: np.asarray(out[0, 0, c]) for c in group}
        carry = {c: np.empty((0, header.width), out.dtype) for c in group}
        done = 0  # reduced rows written
        for y0, y1, q_of in band_residuals(container, bands, group):
            whole = y1 // factor * factor  # full-size rows up to the last whole cell
            for c, (block, q) in q_of.items():
                layer = np.broadcast_to(constant[c], (y1 - y0, header.width))
                samples = np.concatenate([carry[c], corrected(layer, block, q)])
                # the image's last band: its partial cell too
                cut = len(samples) if y1 == header.height else len(samples) - (y1 - whole)
                if cut:  # (a band within one row of cells leaves its rows to the next)
                    cells = cell_samples(samples[:cut], factor, out.dtype)
                    out[done:done + len(cells), :, c] = cells
                carry[c] = samples[cut:]
            done = whole // factor


def cell_samples(samples: np.ndarray, factor: int, dtype: np.dtype) -> np.ndarray:
    """The samples (of `dtype`) of the cells of factor x factor samples (partial at the last row
    and column) of `samples` (h, w), spec §5.3: integer types, the cell's exact sum divided by
    its count, rounded half up and clamped to the type; float types, the binary64 sum from +0,
    row by row and left to right in the cell, of each sample divided by the count, clamped to
    the type's finite range (no overflow, whatever the samples)."""
    h, w = samples.shape
    rows, columns = -(-h // factor), -(-w // factor)
    row_counts = np.minimum(factor, h - factor * np.arange(rows))  # samples of each cell
    column_counts = np.minimum(factor, w - factor * np.arange(columns))
    counts = row_counts[:, None] * column_counts[None, :]
    padded = np.zeros((rows * factor, columns * factor), np.float64)
    if dtype.kind == "f":  # each sample over its cell's count
        padded[:h, :w] = samples / (np.repeat(row_counts, factor)[:h, None]
                                    * np.repeat(column_counts, factor)[None, :w])
    else:
        padded[:h, :w] = samples  # integers of at most 32 bits: every sum exact in binary64
    sums = np.zeros((rows, columns), np.float64)
    for dy in range(factor):
        for dx in range(factor):
            sums += padded[dy::factor, dx::factor]
    if dtype.kind == "f":
        top = float(np.finfo(dtype).max)
        return np.clip(sums, -top, top).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.floor(sums / counts + 0.5), info.min, info.max).astype(dtype)
