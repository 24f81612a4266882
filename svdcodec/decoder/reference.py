"""The reference decoder: spec/svdi.md §5, step by step, on whole arrays.

This is the decoder to read to understand the format, and the one a port to another language
translates. Version 2 adds two steps: planes by the exact integer rule (§5.1) and the residual
blocks applied to the samples (§5.3); version 4 one: the deblocking filter on the 8-bit samples
before the colour conversion (§5.4); version 6 one: the row multipliers of an adapted plane
(§5.5), derived from the integers before the product. It holds every plane's integers and matrix whole, so it is for small files, tests and
readers; `svdcodec.decode` gives the very same pixels band by band, in threads and with the
compiled kernels (the tests hold it to this module bit for bit).
"""

from __future__ import annotations

import numpy as np

from ..codec import aq
from ..codec import exact as exact_rule
from ..codec import residual as residuals
from ..codec.coding import from_symbols, unpredict
from ..codec.colour import from_planes
from ..codec.layout import from_matrix
from ..codec.quantize import reconstruct
from ..errors import SvdiError
from ..format import (
    COLOUR_YCBCR,
    DENSE,
    LAYOUT_PATCH,
    NO_REFERENCE,
    Container,
    Plane,
    unpack,
)
from .deblock import deblock_image
from .restoration import restore_image


def factor_integers(container: Container, plane: Plane, factor: str, rank: int) -> np.ndarray:
    """Step 1: the integer columns 0..rank of factor "U" (A, m x rank) or "V" (B, n x rank) of
    one plane, from its blocks: dense blocks unpredicted, sparse blocks' symbols decoded."""
    grid = plane.grid if factor == "U" else plane.vgrid
    rows = grid[0] * grid[1]
    out = np.zeros((rows, rank), dtype=np.int64)
    for block in container.blocks:
        if block.plane != plane.index or block.factor != factor or block.first >= rank:
            continue
        if block.coding == DENSE:
            part = unpredict(block.data()[0], block.predictor).reshape(block.count, rows).T
        else:
            symbols, run_escapes, value_escapes = block.data()
            part = from_symbols(symbols, run_escapes, value_escapes, (rows, block.count))
        width = min(block.count, rank - block.first)
        out[:, block.first:block.first + width] = part[:, :width]
    return out


def row_multipliers(container: Container, plane: Plane) -> np.ndarray:
    """Version 6 (§5.5): M per matrix row of an adapted plane of rank >= 1, derived from its
    integers of components 0..min(K, rank) - 1 (whatever a preview multiplies)."""
    ints = factor_integers(container, plane, "U", min(plane.aq[0], plane.rank))
    return aq.causal_map(ints, plane.grid, plane.patch, plane.step, plane.aq[1])


def decode_plane(container: Container, plane: Plane, rank: int) -> np.ndarray:
    """Steps 1-3: one plane, float32 (height, width), from its first `rank` components."""
    A = factor_integers(container, plane, "U", rank)
    B = factor_integers(container, plane, "V", rank)
    sigma = container.singular_values(plane.index)[:rank]
    if plane.exact:  # version 2: V = A diag(W) B^T in integers, then V 2^-F rounded once
        assert plane.shift is not None
        what = f"plane {plane.index}"
        shift = plane.shift
        if plane.adapted and rank:  # version 6 (§5.5): (A o M) diag(W) B^T 2^-(F+4)
            A = aq.scaled_left(A, row_multipliers(container, plane))
            shift += aq.UNIT_BITS
        # the rule on what is multiplied: every component, or a preview's first `rank`
        w, total = exact_rule.weights(plane.step, sigma, plane.shift, what)
        exact_rule.check_bound(exact_rule.magnitude(A), exact_rule.magnitude(B), total, what)
        # centred columns (MEAN, §3.1): fl32(fl64(V 2^-F + mean_j))
        means = container.column_means(plane.index)
        matrix = exact_rule.exact_product(A, w, B.T, shift, means)
    else:
        with np.errstate(all="ignore"):  # a hostile step or sigma overflows: checked next
            matrix = reconstruct(A, sigma, B, plane.step)  # (step A) diag(1/sigma) (step B)^T
    if not np.all(np.isfinite(matrix)):
        raise SvdiError(f"plane {plane.index}: reconstruction overflows")
    patch = plane.patch if plane.layout == LAYOUT_PATCH else 0
    return from_matrix(matrix, plane.height, plane.width, patch)


def decode_reference(data: bytes, components: int | None = None) -> np.ndarray:
    """The image (h, w) or (h, w, c) in the stored sample type, like `svdcodec.decode`."""
    container = unpack(data)
    header = container.header
    planes = [decode_plane(container, p, p.rank if components is None else min(p.rank, components))
              for p in container.planes]
    def deblock(samples: np.ndarray) -> None:  # version 4 (§5.4): the 8-bit samples, in place
        deblock_image(samples, header, container.planes, None, 1)
        restore_image(samples, container, None, 1)  # version 6 (§5.6): after the deblocking

    filtered = any(p.filtered for p in container.planes) or bool(container.restoration)
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow is checked below
        pixels = from_planes(planes, header.height, header.width, header.dtype,
                             header.colour == COLOUR_YCBCR, bool(header.subsampling), header.scale,
                             deblock if filtered else None)
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise SvdiError(f"samples overflow {header.dtype} (sample scale {header.scale})")
    if container.residuals and not pixels.flags.writeable:
        pixels = pixels.copy()
    if components is None or all(components >= p.rank for p in container.planes):
        # the residual belongs to the full reconstruction (§5.3)
        apply_residuals(container, pixels)
    elif container.residuals:  # a preview: the residual of the channels with no layer (§5.3)
        apply_residuals(container, pixels, channels_with_no_layer(container))
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def channels_with_no_layer(container: Container) -> set[int]:
    """§5.3: the channels with residual blocks every plane of which they are made (colour 1:
    R, G and B from planes 0-2; else channel c from plane c) has rank 0, no MEAN chunk, no
    deblocking and no restoration record."""
    def flat(i: int) -> bool:
        p = container.planes[i]
        return (p.rank == 0 and i not in container.means and p.deblock == (0, 0, 0)
                and i not in container.restoration)

    ycc = container.header.colour == COLOUR_YCBCR
    return {c for c in {b.channel for b in container.residuals}
            if all(flat(i) for i in ((0, 1, 2) if ycc and c < 3 else (c,)))}


#: Wrapped residual blocks (version 7, spec §4.1, §5.3): q and the sample modulo 2^16.
WRAP_MODULUS = 1 << 16
WRAP_HALF = 1 << 15


def apply_residuals(container: Container, pixels: np.ndarray,
                    channels: set[int] | None = None) -> None:
    """Step 7 (version 2): each residual block's q, the reference channel's q added, applied to
    its rows of its channel, in place (blocks in file order: a reference comes first); only
    to those of `channels` if given, reading then their blocks and the blocks they refer to
    (§5.3), no others."""
    q_of: dict[tuple[int, int, int], np.ndarray] = {}
    referred = {(b.reference, b.first, b.rows) for b in container.residuals
                if channels is not None and b.channel in channels}
    for block in container.residuals:
        if channels is not None and block.channel not in channels \
                and (block.channel, block.first, block.rows) not in referred:
            continue  # neither applied nor referred to: not read
        q, _ = residuals.unpredict_rows(block.grid(), block.predictor, None)
        if block.reference != NO_REFERENCE:
            q = q + q_of[(block.reference, block.first, block.rows)]
        if block.wrapped:  # version 7: q is the integer of -2^15 .. 2^15 - 1 congruent to it
            q = (q + WRAP_HALF) % WRAP_MODULUS - WRAP_HALF
        residuals.check_q(q, block.what)
        q_of[(block.channel, block.first, block.rows)] = q
        if channels is not None and block.channel not in channels:
            continue
        rows = slice(block.first, block.first + block.rows)
        if block.wrapped:  # the sample of the type's range congruent to x + q * step
            low = int(np.iinfo(pixels.dtype).min)
            wide = pixels[rows, :, block.channel].astype(np.int64) + q * int(block.step)
            corrected = ((wide - low) % WRAP_MODULUS + low).astype(pixels.dtype)
        else:
            corrected = residuals.apply(pixels[rows, :, block.channel], q, block.step)
        if corrected.dtype.kind == "f" and not np.all(np.isfinite(corrected)):
            raise SvdiError(f"{block.what}: corrected samples overflow {corrected.dtype}")
        pixels[rows, :, block.channel] = corrected
