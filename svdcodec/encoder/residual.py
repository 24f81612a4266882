"""Version 2 files (spec §4.1, §5.1, §5.3): the low-rank layer made exact, then residual blocks
that bring each channel's samples back within a bound.

The encoder codes the low-rank layer as for version 1, gives every plane the largest shift F
that keeps the exact rule's bound, decodes that file exactly as every decoder will, and codes
per channel the integers q of `codec.residual`. Channels that need exactness only where the
layer misses it (alpha and constant channels by default) get a residual only then, and the file
stays version 1 when none needs one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..codec import aq
from ..codec import exact as exact_rule
from ..codec import residual as rule
from ..codec.coding import (
    NONE,
    VALUE_ESCAPE,
    best_prediction,
    best_wrapped_prediction,
    narrow,
    unpredict,
)
from ..errors import SvdiError
from ..format import (
    DENSE,
    END,
    HEAD_RECORD,
    NO_REFERENCE,
    SIGNATURE,
    WRAPPED_VERSION,
    Block,
    Container,
    Plane,
    ResidualBlock,
    pack_header,
    pack_residual,
    plan_record,
    unpack,
)
from ..modes import ImageRows, Pixels
from ..runtime.threads import run_bands
from . import tuning


@dataclass(frozen=True)
class ResidualRequest:
    """The bound of each channel (None: no residual), the channels whose residual is written
    only where the low-rank layer is not already exact (bound 0), and the channels coded with
    no layer (their plane of rank 0, the residual the samples themselves)."""

    bounds: tuple[float | None, ...]
    if_needed: frozenset[int]
    no_layer: frozenset[int] = frozenset()

    @property
    def any(self) -> bool:
        return any(b is not None for b in self.bounds)


def residual_request(pixels: Pixels, max_error: float | None, exact_alpha: bool,
                     exact_constant: bool) -> ResidualRequest:
    """Which channels get a residual: all with max_error (alpha exact if exact_alpha); without
    it, alpha (LA, RGBA) and constant channels, each only if needed. An exact alpha that
    varies goes with no layer: a mask's samples predicted from their neighbours are mostly
    zeros, which the layer's smooth approximation would turn into a residual that is not
    (docs/lossless.md, "Alpha")."""
    channels = pixels.shape[2]
    alpha = {channels - 1} if exact_alpha and (pixels.dtype == np.uint8 and channels in (2, 4)
                                                or is_wide_rgba(pixels)) else set()
    constant = constant_channels(pixels) if (alpha or exact_constant) and pixels.size else set()
    no_layer = frozenset(alpha - constant)
    if max_error is not None:
        bounds = [0.0 if c in alpha else float(max_error) for c in range(channels)]
        return ResidualRequest(tuple(bounds), frozenset(), no_layer)
    needed = alpha | (constant if exact_constant else set())
    bounds = [0.0 if c in needed else None for c in range(channels)]
    return ResidualRequest(tuple(bounds), frozenset(needed), no_layer)


def layer_source(pixels: Pixels, request: ResidualRequest) -> Pixels:
    """The samples the low-rank layer is coded from: `pixels`, with the channels of no layer
    set to zero (a copy; a zero plane has rank 0)."""
    if not request.no_layer:
        return pixels
    assert isinstance(pixels, np.ndarray), "a residual reads the whole array"
    source = pixels.copy()
    source[..., sorted(request.no_layer)] = 0
    return source


def constant_channels(pixels: Pixels) -> set[int]:
    """The channels of an (h, w, c) image whose samples are all equal (min == max). The first
    row settles most channels of a photo (it varies there), without a pass over the image."""
    head = pixels[:1].reshape(-1, pixels.shape[2])
    # every channel's least and greatest in two calls (a small encode's six became two)
    maybe = np.flatnonzero(head.min(axis=0) == head.max(axis=0)).tolist()
    if not maybe:
        return set()
    if isinstance(pixels, ImageRows):  # Pillow's extrema: no copy of the samples
        extrema = pixels.extrema()
        return {c for c in maybe if extrema[c][0] == extrema[c][1]}
    # Bands of rows four times as tall each time: a channel drops out with the first band
    # where it varies (a photo's first rows may be a border of one colour), and a constant
    # one is read once in all.
    reference = {c: head[:, c].min() for c in maybe}
    start, rows = 1, 3
    while maybe and start < pixels.shape[0]:
        band = pixels[start:start + rows].reshape(-1, pixels.shape[2])
        maybe = [c for c in maybe
                 if band[:, c].min() == reference[c] and band[:, c].max() == reference[c]]
        start, rows = start + rows, rows * 4
    return set(maybe)


def is_wide_rgba(pixels: Pixels) -> bool:
    """16-bit RGBA (colour 1, version 3): its alpha is exact by default, as 8-bit RGBA's."""
    return pixels.dtype == np.uint16 and pixels.shape[2] == 4


#: |value| of each sparse symbol's value code (low 4 bits minus 8, codec.coding): 0 for the
#: end-of-row code and for the value escape, whose value is in the side stream. One byte per
#: entry: the lookup makes an array as long as a block's symbols (a large plane's U has millions).
SYMBOL_MAGNITUDE = np.array([0 if low == VALUE_ESCAPE else abs(low - 8)
                             for low in np.arange(256) & 15], dtype=np.uint8)


def block_magnitude(block: Block) -> int:
    """max |integer| of one factor block (0 if all zero): a sparse block's from its value
    codes and escaped values alone (positions do not matter), a dense block's unpredicted."""
    if block.coding == DENSE:
        return exact_rule.magnitude(unpredict(block.data()[0], block.predictor))
    symbols, _, values = block.data()
    largest = int(SYMBOL_MAGNITUDE[symbols].max()) if symbols.size else 0
    return max(largest, exact_rule.magnitude(values))


def factor_magnitude(container: Container, plane: Plane, factor: str) -> int:
    """max |A| ("U") or max |B| ("V") of a plane's integer factors over all its components,
    as `decoder.reference.factor_integers` would give them, without placing the values."""
    from ..decoder.reference import (
        factor_integers,  # whole integer factors: for blocks past the rank (not the encoder's)
    )

    blocks = [b for b in container.blocks if b.plane == plane.index and b.factor == factor]
    if any(b.first + b.count > plane.rank for b in blocks):
        return exact_rule.magnitude(factor_integers(container, plane, factor, plane.rank))
    return max((block_magnitude(b) for b in blocks), default=0)


def exact_container(container: Container, version: int) -> Container:
    """An unpacked file of the encoder (no metadata yet) as version `version` (or the file's
    own, if higher): the same blocks and deblocking filters, each plane with the largest shift
    F <= 63 that keeps the bound of the exact rule."""
    planes = []
    for p in container.planes:
        shift = 0
        if p.rank:
            a = factor_magnitude(container, p, "U")
            if p.adapted:  # the bound is on A o M (spec §5.5): M at most aq.LARGEST
                a *= aq.LARGEST
            b = factor_magnitude(container, p, "V")
            shift = exact_rule.choose_shift(p.step, container.singular_values(p.index), a, b,
                                            f"plane {p.index}")
        planes.append(replace(p, shift=shift))
    h = container.header
    return replace(container, header=replace(h, version=max(h.version, version)), planes=planes)


def pack_exact(layer: bytes, source: Container, exact: Container) -> bytes:
    """`layer` (unpacked: `source`) with the header and PLANs of `exact_container(source)`,
    no IEND."""
    record = plan_record(source.header.version)
    start = len(SIGNATURE) + 12 + HEAD_RECORD.size + len(source.planes) * (12 + record.size)
    return pack_header(exact.header, exact.planes) + layer[start:-len(END)]


def exact_layer(layer: bytes, version: int = 2) -> bytes:
    """A file of the encoder (no metadata yet; version 1, or version 2, 3 or 4 with placeholder
    shifts) as version `version` (or the file's own, if higher): `exact_container`'s header
    and PLANs, the same blocks, no IEND."""
    source = unpack(layer)
    return pack_exact(layer, source, exact_container(source, version))


def channel_residual(x: np.ndarray, decoded: np.ndarray, bound: float
                     ) -> tuple[np.ndarray, float, float]:
    """(q, step, bound as promised) of one channel."""
    if x.dtype.kind == "f":
        q, step = rule.quantize_floats(x, decoded, bound)
        return q, step, bound
    e = rule.integer_bound(bound, x.dtype)
    q, step = rule.quantize_integers(x, decoded, e)
    return q, float(step), float(e)


def grid_prediction(grid: np.ndarray) -> tuple[int, np.ndarray]:
    """The predictor of lowest entropy for one grid and its residuals (1, rows, width) in the
    narrowest type; wide float residuals whose differences overflow 32 bits stay unpredicted."""
    try:
        return best_prediction(narrow(grid)[None])
    except OverflowError:
        return NONE, narrow(grid)[None]


def residual_blocks(q: dict[int, np.ndarray], steps: dict[int, tuple[float, float]],
                    references: dict[int, int], height: int, width: int,
                    wrappable: dict[int, np.ndarray], levels: dict[int, int]
                    ) -> tuple[list[bytes], bool]:
    """The RBLK chunks: row blocks of at most tuning.RESIDUAL_BLOCK_SAMPLES samples, in each the
    reference channels first; every block with the predictor of lowest entropy, each channel's
    at its zstd level (`levels`). A block whose
    residuals need int32 is coded wrapped instead (version 7) where `wrappable` (per channel,
    per row: its samples come back the same modulo 2^16) allows and a fast estimate finds the
    wrapped residuals smaller. Returns the chunks and whether any is wrapped."""
    per = max(1, tuning.RESIDUAL_BLOCK_SAMPLES // width)
    order = sorted(q, key=lambda c: (c in references, c))
    jobs = [(y, c) for y in range(0, height, per) for c in order]
    # The q a decoder finds for a wrapped block is q modulo 2^16: a channel referring to it adds
    # that, so the referenced blocks are coded first.
    decoded_q: dict[tuple[int, int], np.ndarray] = {}

    def pack(y: int, c: int) -> tuple[bytes, bool]:
        rows = min(per, height - y)
        grid = q[c][y:y + rows]
        ref = references.get(c, NO_REFERENCE)
        if ref != NO_REFERENCE:
            grid = grid - decoded_q[(y, ref)]
        predictor, residuals = grid_prediction(grid)
        step, bound = steps[c]
        block = ResidualBlock(c, ref, y, rows, width, step, bound, residuals.dtype,
                              predictor, array=residuals[0])
        if residuals.dtype.itemsize > 2 and c in wrappable and wrappable[c][y:y + rows].all():
            # chosen by a fast estimate, not by coding both forms at the blocks' level
            predictor, wrapped = best_wrapped_prediction(rule.wrap16(grid)[None])
            if rule.frame_bytes(wrapped) < rule.frame_bytes(residuals):
                block = replace(block, element=wrapped.dtype, predictor=predictor,
                                array=wrapped[0], wrapped=True)
        decoded_q[(y, c)] = (rule.wrap16(q[c][y:y + rows]).astype(np.int64) if block.wrapped
                             else q[c][y:y + rows])
        return pack_residual(block, levels[c]), block.wrapped

    packed: dict[tuple[int, int], tuple[bytes, bool]] = {}
    for phase in (False, True):  # the referenced channels, then those referring to them
        todo = [job for job in jobs if (job[1] in references) == phase]
        done = run_bands(lambda i, todo=todo: pack(*todo[i]), len(todo))
        packed.update(zip(todo, done, strict=True))
    chunks = [packed[job][0] for job in jobs]
    return chunks, any(packed[job][1] for job in jobs)


def wrappable_rows(x: np.ndarray, decoded: np.ndarray, q: np.ndarray, step: float
                   ) -> np.ndarray | None:
    """Per row, whether a wrapped block gives this channel's samples back (spec §5.3): 16-bit
    samples whose every decoded + q * step lies in the type's range, where the wrapped sum
    equals the clamped one (always for step 1: the sum is the sample). None for other types."""
    if x.dtype not in (np.uint16, np.int16):
        return None
    if step == 1:
        return np.ones(x.shape[0], dtype=bool)
    info = np.iinfo(x.dtype)
    total = decoded.astype(np.int64) + q * int(step)
    return ((total >= int(info.min)) & (total <= int(info.max))).all(axis=1)


#: Sample types whose residual over no layer fits the residual blocks (31-bit q) whatever
#: the bound: the types the bare retry is estimated for.
BARE_TYPES = (np.uint8, np.int8, np.uint16, np.int16)


def bare_residual_bytes(pixels: np.ndarray, request: ResidualRequest) -> int | None:
    """An estimate of the residual blocks of a file with no layer (rank 0): the residual of
    every channel but those coded with no layer in any case (`request.no_layer`: the same
    blocks either way) over zero samples (red and blue less green, as `with_residuals` codes RGB),
    with the predictor of lowest entropy, at zstd's fast levels (`rule.frame_bytes` at each
    of tuning.BARE_ESTIMATE_LEVELS, the smallest), on one band of rows in
    tuning.BARE_SAMPLE_EVERY (a small image whole), scaled to the image. Unlike the encoder's
    level 19 it finds no long matches, so it overestimates smooth samples (photos) and is
    close for noise, which it is for. None for the types outside
    BARE_TYPES and for requests other than max_error's, a residual on every channel (the
    default exactness of alpha and constant channels leaves a lossy file's layer alone)."""
    if pixels.dtype not in BARE_TYPES or request.if_needed \
            or any(b is None for b in request.bounds):
        return None
    h, _, channels = pixels.shape
    layered = [c for c in range(channels) if c not in request.no_layer]
    period = tuning.BARE_SAMPLE_ROWS * tuning.BARE_SAMPLE_EVERY
    rows = (np.arange(h) if h < 2 * period else
            np.flatnonzero(np.arange(h) % period < tuning.BARE_SAMPLE_ROWS))
    sample = pixels[rows]
    zeros = np.zeros(sample.shape[:2], dtype=pixels.dtype)
    q = {c: channel_residual(sample[..., c], zeros, request.bounds[c])[0]  # type: ignore[arg-type]
         for c in layered}
    if pixels.dtype in (np.uint8, np.uint16) and channels in (3, 4) and {0, 1, 2} <= set(q):
        q[0], q[2] = q[0] - q[1], q[2] - q[1]
    estimate = 0
    for grid in q.values():
        residuals = grid_prediction(grid)[1]
        estimate += min(rule.frame_bytes(residuals, level)
                        for level in tuning.BARE_ESTIMATE_LEVELS)
    return estimate * h // len(rows)


#: Samples of each channel `on_a_grid` checks (spread over the channel), of a larger image.
GRID_SAMPLE = 1 << 16


def on_a_grid(pixels: np.ndarray) -> bool:
    """Whether GRID_SAMPLE samples of each channel of these floats, spread over it, lie on a
    grid of the lossless residual over no layer (`rule.grid_quantize`: integers, k / 255 ...):
    a sign that all do, which the residual itself then verifies at every sample."""
    for c in range(pixels.shape[2]):
        channel = pixels[..., c].reshape(-1)
        sample = channel[::max(1, channel.size // GRID_SAMPLE)]
        if rule.grid_quantize(sample) is None:
            return False
    return True


#: Samples `integer_spacing` reads at once (an int64 copy of them).
SPACING_PIECE = 1 << 20


def integer_spacing(pixels: np.ndarray) -> int:
    """The largest g such that every sample of an integer array is its channel's smallest
    plus a multiple of g: 257 or 256 for 8-bit values stored as 16-bit samples (v x 257,
    v x 256), 1 for most data (read a piece at a time, ending at the first piece that shows
    it); 0 for a constant array, and for floats (no such grid)."""
    if pixels.dtype.kind not in "iu" or pixels.size == 0:
        return 0
    image = pixels.reshape(pixels.shape[0], pixels.shape[1], -1)
    lowest = image.min(axis=(0, 1)).astype(np.int64)
    rows = max(1, SPACING_PIECE // max(1, image.shape[1] * image.shape[2]))
    spacing = 0
    for y in range(0, image.shape[0], rows):
        piece = image[y:y + rows].astype(np.int64) - lowest
        spacing = int(np.gcd.reduce(np.append(piece.ravel(), spacing)))
        if spacing == 1:
            break
    return spacing


def residual_bytes_of(data: bytes, channels: frozenset[int]) -> int:
    """The bytes of a file's residual blocks (RBLK chunks) of these channels."""
    return sum(b.stored for b in unpack(data).residuals if b.channel in channels)


def with_residuals(layer: bytes, pixels: np.ndarray, request: ResidualRequest,
                   effort: int = 1) -> bytes:
    """The encoder's file for this request: `layer` itself (version 1) when no channel needs a
    residual, else version 2 with the residual blocks, at the effort's
    tuning.NO_LAYER_ZSTD_LEVELS (a channel with no layer exact by default, without max_error)
    or tuning.RESIDUAL_ZSTD_LEVEL."""
    from ..decoder import (
        decode,  # the decoder's exact samples, which every decoder computes
    )

    h, w, channels = pixels.shape
    wanted = [c for c in range(channels) if request.bounds[c] is not None]
    if not wanted:
        return layer
    if set(wanted) <= request.if_needed and not request.no_layer:
        first = decode(layer, max_pixels=None).reshape(pixels.shape)
        if all(np.array_equal(first[..., c], pixels[..., c]) for c in wanted):
            return layer
    exact = exact_layer(layer)
    # A channel with no layer decodes to zeros under its residual (its zero plane's samples):
    # the layer is decoded for the others alone (an RGBA image's alpha: not at all).
    decoded = decode(exact + END, max_pixels=None).reshape(pixels.shape) \
        if any(c not in request.no_layer for c in wanted) else None
    zeros = np.zeros(pixels.shape[:2], dtype=pixels.dtype)
    q: dict[int, np.ndarray] = {}
    steps: dict[int, tuple[float, float]] = {}
    wrappable: dict[int, np.ndarray] = {}
    for c in wanted:
        under = zeros if decoded is None or c in request.no_layer else decoded[..., c]
        if c in request.if_needed and np.array_equal(under, pixels[..., c]):
            continue
        bound = request.bounds[c]
        assert bound is not None
        try:
            residual, step, promised = channel_residual(pixels[..., c], under, bound)
            if not np.all(np.abs(residual) <= rule.MAX_Q):
                raise rule.ResidualRangeError(f"channel {c}: residuals beyond 2^31 steps")
        except SvdiError:
            if c not in request.if_needed:
                raise
            # A default exactness (alpha, constant channel) the samples do not allow (float
            # or 32-bit samples beyond 31-bit residuals): the channel stays as the layer
            # decodes it, and the encode succeeds as it did before version 2.
            continue
        q[c], steps[c] = residual, (step, promised)
        rows_ok = wrappable_rows(pixels[..., c], under, residual, step)
        if rows_ok is not None:
            wrappable[c] = rows_ok
    if not q:  # every default exactness fell back: the layer itself, version 1
        return layer
    # RGB (8- and 16-bit, the colour-1 images): red and blue residuals less green's (WebP's
    # "subtract green"; docs/lossless.md)
    references = ({0: 1, 2: 1} if pixels.dtype in (np.uint8, np.uint16) and channels in (3, 4)
                  and {0, 1, 2} <= set(q) else {})
    # a default exact alpha's at the effort's level; what max_error asks for at the slowest
    levels = {c: tuning.NO_LAYER_ZSTD_LEVELS[effort]
              if c in request.no_layer and c in request.if_needed
              else tuning.RESIDUAL_ZSTD_LEVEL for c in q}
    chunks, wrapped = residual_blocks(q, steps, references, h, w, wrappable, levels)
    if wrapped:  # the same layer, in the version of the wrapped blocks
        exact = exact_layer(layer, WRAPPED_VERSION)
    return exact + b"".join(chunks) + END
