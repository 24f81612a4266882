"""A coded plane's blocks: components in groups, each factor's columns dense (predicted grids)
or sparse (run/level symbols), whichever the format and the data favour (spec §4, §6)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..codec.coding import (
    HORIZONTAL,
    NONE,
    PLANAR,
    VERTICAL,
    best_prediction,
    to_symbols,
)
from ..codec.quantize import ENTROPY_DECIMALS, HISTOGRAM_SLACK
from ..format import DENSE, LAYOUT_PLAIN, SPARSE, Block, Plane
from ..format.writer import pack_record
from ..runtime import kernels
from .tuning import FIRST_GROUP, GROUP_GROWTH, PREVIEW_SAMPLES, ZSTD_LEVEL

Symbols = tuple[np.ndarray, np.ndarray, np.ndarray]


def small_plane(plane: Plane) -> bool:
    """Whether a plane is small enough that previews do not pay for their blocks."""
    return plane.height * plane.width < PREVIEW_SAMPLES


def component_groups(rank: int, small: bool = False) -> list[tuple[int, int]]:
    """Component ranges: the DC-like first component alone, then ranges that grow by
    GROUP_GROWTH, so that a reader can stop after any range (previews) at little cost; for a
    small plane, the rest in one range."""
    if small:
        return [(0, min(rank, 1))] + ([(1, rank)] if rank > 1 else [])
    out, first, size = [(0, min(rank, 1))], 1, FIRST_GROUP
    while first < rank:
        out.append((first, min(rank, first + size)))
        first += size
        size = int(size * GROUP_GROWTH)
    return out


def plane_blocks(plane: Plane, A: np.ndarray, sigma: np.ndarray, B: np.ndarray,
                 u_symbols: dict[tuple[int, int], Symbols] | None = None,
                 small: bool = False, pack: Callable[[Block], bytes] | None = None,
                 first_u: Block | None = None,
                 u_blocks: dict[tuple[int, int], Block] | None = None) -> list[list[Block]]:
    """Blocks of one plane per component group, S in the first group (u_symbols: the symbols
    of U's sparse groups where they are already known; small: `small_plane` of the whole
    plane; pack: a block's record, for `whole_v`'s comparison: the caller's, which keeps the
    records it will write rather than pack them twice; first_u: U's first-column block,
    `dense_block` of A[:, :1], and u_blocks: U's sparse blocks by group, where already made:
    `code_plane` makes them while it chooses the rank)."""
    r = sigma.size
    if r == 0:
        return []
    out: list[list[Block]] = []
    for lo, hi in component_groups(r, small):
        group = [] if out else [Block("S", plane.index, 0, r, DENSE,
                                      (sigma.astype(np.float32),))]
        for factor, mat, grid in (("V", B, plane.vgrid), ("U", A, plane.grid)):
            if lo == 0:
                group.append(first_u if factor == "U" and first_u is not None
                             else dense_block(factor, plane.index, 0, mat[:, :1], grid))
            elif factor == "U" and u_blocks and (lo, hi) in u_blocks:
                group.append(u_blocks[(lo, hi)])
            else:
                known = (u_symbols or {}).get((lo, hi)) if factor == "U" else None
                block = Block(factor, plane.index, lo, hi - lo, SPARSE,
                              known or to_symbols(mat[:, lo:hi]))
                if plane.layout == LAYOUT_PLAIN:
                    block = smaller(block, dense_block(factor, plane.index, lo, mat[:, lo:hi],
                                                       grid))
                group.append(block)
        out.append(group)
    if len(out) > 1:
        out = whole_v(plane, B, out, pack)
    return out


def whole_v(plane: Plane, B: np.ndarray, groups: list[list[Block]],
            pack: Callable[[Block], bytes] | None = None) -> list[list[Block]]:
    """The plane's V as one dense block of every component, in the first group, instead of
    component 0 dense and the rest run/level coded by group, when that record is smaller: a
    basis of a few hundred or thousand integers, predicted along the patch, often compresses
    better dense, and takes one record and frame. (A preview then reads all of V with
    component 0: V is a small part of a file.)"""
    parts = [b for g in groups for b in g if b.factor == "V"]
    pack = pack or (lambda block: pack_record(block, ZSTD_LEVEL))
    whole = dense_block("V", plane.index, 0, B, plane.vgrid)
    if len(pack(whole)) >= sum(len(pack(b)) for b in parts):
        return groups
    return [[whole if b is parts[0] else b for b in g if b.factor != "V" or b is parts[0]]
            for g in groups]


def dense_block(factor: str, plane: int, first: int, columns: np.ndarray,
                grid: tuple[int, int]) -> Block:
    """Columns as predicted dense grids: the singular vectors of a whole plane are often smooth
    along the image, where a vertical predictor beats run/level symbols."""
    grids = np.ascontiguousarray(columns.T).reshape(columns.shape[1], *grid)
    predictor, residuals = choose_prediction(grids)
    return Block(factor, plane, first, columns.shape[1], DENSE, (residuals,), predictor)


def choose_prediction(grids: np.ndarray) -> tuple[int, np.ndarray]:
    """`codec.coding.best_prediction`: with the compiled kernels, every predictor costed in one
    call (the same estimates), and only the chosen one's residuals made."""
    compiled = kernels.get()
    if compiled is None:
        return best_prediction(grids)
    costs = compiled.prediction_bits(grids, HISTOGRAM_SLACK)
    candidates = (NONE, HORIZONTAL, VERTICAL, PLANAR) if grids.shape[2] > 1 else (NONE, VERTICAL)
    if any(costs[p][1] == 0 for p in candidates):
        raise OverflowError("value does not fit 32 bits")  # as `narrow` of those residuals
    _, predictor = min((round(costs[p][0], ENTROPY_DECIMALS) + 8 * costs[p][1], p)
                       for p in candidates)
    # `narrow`'s type, known from the kernel's range of these residuals; made by the kernel
    # too (`predict` and a cast are several numpy calls on a small grid)
    itemsize = costs[predictor][1]
    return predictor, compiled.predicted(grids, predictor, itemsize).reshape(grids.shape)


def smaller(a: Block, b: Block) -> Block:
    """The block whose record is smaller (the first on a tie)."""
    return a if len(pack_record(a, ZSTD_LEVEL)) <= len(pack_record(b, ZSTD_LEVEL)) else b
