"""Reconstructing a plane band by band: (A[band] * step^2/sigma) @ B^T as float32 matrix rows,
then the band's pixel rows (spec §5 steps 3-4).

A plane's matrix rows are its patches in raster order (or its image rows), sparse symbols are
row-major and dense blocks are one value per row, so a band of patch rows is decoded and
reconstructed on its own. The arithmetic per element is that of `codec.quantize.reconstruct`.
Bands depend on the image's size alone (`bands_for`), never on the thread count, so a file
always decodes to the same pixels here. They hold at least MIN_BAND_ROWS rows, where OpenBLAS
leaves its small-matrix kernels; it may still round a row of a product by a band of another
row count differently (seen: a few pixels of a 1400 x 1500 image one apart), which spec §5
allows (±1 between conforming decoders) and the tests against the whole-plane reference
(`codec.reference`) bound. numpy and BLAS release the GIL, hence threads.

Version 2 planes (spec §5.1) are integer products instead: the factors' integers times the
weights W, multiplied in binary64 (`codec.exact`; with the C kernels, patch layouts in one
`_kernels.exact_product` call per band), exact in any band, piece or order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ..codec import aq
from ..codec import exact as exact_rule
from ..codec.coding import PLANAR, VERTICAL
from ..codec.layout import band_pixels
from ..errors import SvdiError
from ..format import DENSE, LAYOUT_PATCH, Block, Container, Plane
from ..format.blocks import decompressors
from ..runtime import band_sizes, kernels
from ..runtime.band_sizes import even_bands, row_bands
from ..runtime.pages import CAN_DROP_PAGES
from ..runtime.scratch import LEFT, ThreadBuffers
from ..runtime.threads import band_workers, run_bands
from .factors import (
    DroppedRows,
    SparsePieces,
    SparseStream,
    fill_compiled,
    fill_dense,
    fill_dense_compiled,
    fill_sparse,
    fill_streamed,
    held_bytes,
    scratch_array,
    sparse_streams,
    unpredict_whole,
)

#: The streams of a held run/level block not opened yet (`PlaneReconstructor.opens_whole`).
UNOPENED = "unopened"
#: An exact plane of at least this rank and this many matrix columns (patch 16 and 32) whose
#: band's left factor has more than this share of non-zero integers is multiplied by BLAS in
#: binary64, not by `_kernels.exact_product`: above about half non-zero, BLAS is the faster
#: of the two there, and the kernel's loop over each row's non-zero integers below it and at
#: 64 columns (patch 8) whatever the share (docs/performance.md, "The exact product of dense
#: factors"). Both give the same bits: the product is exact.
BLAS_PRODUCT_RANK = 64
BLAS_PRODUCT_COLUMNS = 256
BLAS_PRODUCT_SHARE = 0.5


def overflow_error(plane: Plane) -> SvdiError:
    return SvdiError(f"plane {plane.index}: reconstruction overflows (step {plane.step} or "
                     f"singular values out of range)")


@dataclass(frozen=True)
class BandPlan:
    """How a plane's reconstruction is cut into pieces (a pure function of the plane, its
    bands and the memory budget):

    - `mrows`: the matrix rows [r0, r1) of each band (the last one includes the padding rows);
    - `passes`: consecutive bands whose scaled left factor fits `budget` bytes, loaded together
      (one pass per band when each band fills its own: `local`);
    - `columns`: ranges of matrix columns whose B^T, with an exact plane's binary64 copy
      (`column_bytes`), fits `budget` bytes (a plain layout's V can be four times the output);
      one range for a patch layout, whose bands are whole patches: its n is at most 1024, its
      B^T at most 12 MiB, within the pass budget's floor (the band renderer, which holds
      every plane's B^T at once, declines a plane whose B^T is above its share).
    """

    mrows: list[tuple[int, int]]
    passes: list[list[int]]
    columns: list[tuple[int, int]]

    @classmethod
    def of(cls, plane: Plane, rank: int, bands: list[tuple[int, int]], budget: int,
           local: bool, exact: bool = False) -> BandPlan:
        m, n = plane.matrix_shape
        patch = plane.patch if plane.layout == LAYOUT_PATCH else 0
        per_row = plane.grid[1] if patch else 1
        unit = patch or 1
        mrows = [(y0 // unit * per_row, min(-(-y1 // unit) * per_row, m)) for y0, y1 in bands]
        row_bytes = 4 * max(rank, 1)
        passes: list[list[int]] = []
        for i, (_, r1) in enumerate(mrows):
            if passes and (local or (r1 - mrows[passes[-1][0]][0]) * row_bytes <= budget):
                passes[-1].append(i)
            else:
                passes.append([i])
        step = n if patch else max(1, budget // column_bytes(rank, exact))
        columns = [(j, min(j + step, n)) for j in range(0, n, step)]
        return cls(mrows, passes, columns)


def column_bytes(rank: int, binary64: bool) -> int:
    """Bytes a matrix column of B^T takes held: rank float32 values, and with `binary64` their
    binary64 copy (spec §5 Resources, version 2: an exact plane's BLAS product, of every band
    where the kernels do not multiply the plane, of its dense bands where they do and
    `blas_takes_dense_bands`: `PlaneReconstructor.binary64_right`)."""
    return 4 * max(rank, 1) * (3 if binary64 else 1)


def blas_takes_dense_bands(plane: Plane, rank: int) -> bool:
    """Whether the dense bands of a plane the kernels multiply (`kernel_multiplies`) go to
    BLAS in binary64 (`PlaneReconstructor.exact_matrix`): a rank of BLAS_PRODUCT_RANK and
    more, BLAS_PRODUCT_COLUMNS columns and more (patch 16 and 32)."""
    return rank >= BLAS_PRODUCT_RANK and plane.matrix_shape[1] >= BLAS_PRODUCT_COLUMNS


def kernel_multiplies(plane: Plane, compiled: ModuleType | None) -> bool:
    """Whether the compiled kernels multiply the plane's factors (`_kernels.exact_product`):
    exact planes of a patch layout, a few dozen columns wide, where a loop over each row's
    non-zero integers beats BLAS with its binary64 copies; plain layouts, as wide as the image,
    keep BLAS. Both give the same bits: the product is exact."""
    return plane.exact and compiled is not None and plane.layout == LAYOUT_PATCH


class PlaneReconstructor:
    """Reconstructs bands of pixel rows of one plane, as float32 (rows, columns).

    Both factors are built from the compressed blocks in bounded pieces, at most `budget`
    bytes each: the scaled left factor A * step^2/sigma for a pass of consecutive bands
    (`load`), and B^T for a range of matrix columns (`load_columns`; a plain layout's V is
    up to four times the output's size). Each output element is the same dot product over the
    rank whatever the pieces, so the pixels do not depend on them.
    """

    #: Whether dense columns without a vertical predictor are unpredicted by each band
    #: (`dense_rows`) rather than held whole as float32 (`dense_u`).
    dense_by_band = True
    #: Whether compiled exact planes of a plain layout leave their held run/level blocks
    #: UNOPENED until `_fill`, which fills a factor in one piece from them in one compiled
    #: call (`_opened`), instead of decompressing and indexing each block at set-up and
    #: filling it by a call of its own: a file of many blocks of one component (each a few
    #: bytes) then costs no Python steps per block (a subclass that reads the streams itself).
    opens_whole = True
    #: Whether compiled exact planes of a patch layout multiply in `_kernels.exact_product`
    #: (the factors as they are) rather than in BLAS (a subclass that changes B^T).
    exact_by_kernel = True

    def __init__(self, container: Container, plane: Plane, rank: int,
                 bands: list[tuple[int, int]], budget: int,
                 scratch: dict[str, np.ndarray] | None = None,
                 compiled: ModuleType | None = None,
                 buffers: ThreadBuffers | None = None, released: bool = False,
                 left_given: bool = False) -> None:
        self.plane, self.rank, self.bands = plane, rank, bands
        # Version 2 planes are exact (spec §5.1): the factors are held as integers (in float32)
        # and multiplied with the integer weights in binary64.
        self.exact = plane.exact
        self.compiled, self.budget = compiled, budget
        self.exact_kernel = self.exact_by_kernel and kernel_multiplies(plane, compiled)
        self.scratch = {} if scratch is None else scratch
        self.m, self.n = plane.matrix_shape
        self.patch = plane.patch if plane.layout == LAYOUT_PATCH else 0
        self.per_row = plane.grid[1] if self.patch else 1  # matrix rows per band unit
        u_blocks = container.factor_blocks(plane.index, "U")
        v_blocks = container.factor_blocks(plane.index, "V")
        sigma = container.singular_values(plane.index)[:rank]
        if self.exact:
            assert plane.shift is not None
            self.weights, self.weight_sum = exact_rule.weights(
                plane.step, sigma, plane.shift, f"plane {plane.index}")
            self.scale = np.ones(rank, dtype=np.float32)  # the integers themselves
            self.max_b = 0  # max |B| of the loaded column range
            self.largest_a = -1  # the largest max |A| the bound allows with it
        else:
            self.scale = np.float32(plane.step * plane.step) / sigma.astype(np.float32)
        if rank and not self.exact and not np.all(np.isfinite(self.scale)):  # exact: ones
            raise overflow_error(plane)
        # what `_fill` scales B's columns by (and A's without a scale): made once a plane
        self.ones = self.scale if self.exact else np.ones(rank, dtype=np.float32)
        held = self._held(u_blocks, v_blocks, budget // 2)
        # (only where `_fill` fills both factors whole, in one piece: U in one pass of every
        # row and V in one column range, the band renderer's case, as BandPlan cuts a plain
        # layout, never `local`; otherwise the blocks are opened here, so that a broken one is
        # refused at set-up, before the renderer, which declines a plane in pieces, and its
        # fallback allocate)
        defer = (self.opens_whole and compiled is not None and self.exact
                 and plane.layout != LAYOUT_PATCH and not plane.adapted)
        if defer:
            plan = BandPlan.of(plane, rank, bands, budget, False, self.exact)
            defer = len(plan.passes) == 1 and len(plan.columns) == 1
        self.u = self._factor(u_blocks, self.m, held, defer=defer)
        self.v = self._factor(v_blocks, self.n, held, defer=defer)
        # Compiled patch layouts fill each band's rows of the left factor in the band's task,
        # while they are in cache, instead of a pass of bands at a time. Only the dense
        # columns, whose predictors run down the whole plane, are decoded whole first, into
        # the pass buffer this path does not use (one column per plane in the encoder's files;
        # at most `budget` bytes).
        dense, widths, streamed_u = [], 0, False
        for block, width, streams in self.u:
            if streams is None:
                dense.append((block, width))
                widths += width
            elif isinstance(streams, SparseStream):
                streamed_u = True
        # Version 6 (spec §5.5): an adapted plane's map reads U's first K' = min(K, rank)
        # components of every row before any band multiplies. Where the whole left factor fits
        # one pass, it is filled whole (`load`) and the map made from it: the blocks are
        # walked once. Otherwise the map's components are filled apart (`_row_multipliers`).
        components = min(plane.aq[0], plane.rank) if plane.adapted and rank else 0
        self.map_from_left = bool(components and compiled is not None and components <= rank
                                  and self.m * rank * 4 <= budget)
        self.local = (compiled is not None and self.patch > 0 and not streamed_u
                      and self.m * widths * 4 <= budget and not self.map_from_left)
        # Dense columns keep their residuals, a quarter of the float32 columns' bytes or less,
        # and each band unpredicts its own rows (a vertical predictor from the column sums of
        # the rows above the band: `column_sums`, once the bands' rows are known below).
        by_band = [self.local and self._row_local(b) for b, _ in dense]
        dense_rows = [self._residual_rows(b, w) for (b, w), banded in zip(dense, by_band)
                      if banded]
        whole = [(b, w) for (b, w), banded in zip(dense, by_band) if not banded]
        self.dense_u = (self._dense_whole(whole, sum(w for _, w in whole)) if self.local
                        else None)
        # Whether the blocks cover every component: then each band's buffer needs no zeroing
        # pass, the sparse kernel zeroes its columns row by row (in cache) as it fills them.
        self.covered = covers(self.u, rank)
        # Each thread's buffer of a band's left factor (`_band_left`), which planes rendered
        # band by band together share: a band's product is done with it before it returns.
        # Given buffers (the band renderer's), `matrix` also returns its product in them:
        # the caller consumes it before the thread's next product.
        self.reuse_product = buffers is not None
        self.buffers = ThreadBuffers() if buffers is None else buffers
        pieces = BandPlan.of(plane, rank, bands, budget, self.local, self.exact)
        self.mrows, self.passes, self.columns = pieces.mrows, pieces.passes, pieces.columns
        self.dropped_rows: list[DroppedRows] = []  # (`release`)
        self.dense_rows = [(b, w, residuals, column_sums(residuals, plane.grid, b.predictor,
                                                         [r0 for r0, _ in self.mrows]))
                           for b, w, residuals in dense_rows]
        if self.reuse_product and self.mrows:  # each thread's arrays made once, at their largest
            most = max(r1 - r0 for r0, r1 in self.mrows)
            if self.local and not left_given:  # (given: each band's in memory of the caller's)
                self.buffers.expect(LEFT, most * self.rank)
            self.buffers.expect("product", most * max(j1 - j0 for j0, j1 in self.columns))
        # Version 6 (spec §5.5): an adapted plane's M per matrix row, derived once, in a
        # serial pass over the grid rows, before any band multiplies (A o M) with shift F + 4:
        # by the first `load_columns` (`load` makes it from the filled rows where
        # `map_from_left`), not here: a caller that only looks at the plan (the band
        # renderer's, which may choose another path) makes no map.
        self.adapted = bool(components)
        self.container = container
        self.row_m: np.ndarray | None = None
        self.product_shift = (None if plane.shift is None
                              else plane.shift + (aq.UNIT_BITS if components else 0))
        # released (the band renderer, which reads each band once): the held sparse blocks of
        # a band-local left factor in pieces of rows, dropped as the bands are done (`release`).
        if released and self.local and CAN_DROP_PAGES:
            assert compiled is not None
            self.u = [(b, w, SparsePieces(self.m, streams, self.mrows)
                       if streams is not None and not isinstance(streams, SparseStream)
                       and b.raw_bytes > band_sizes.PIECE_BYTES else streams)
                      for b, w, streams in self.u]
            # and the dense columns' residuals of more than a piece, dropped by rows as well
            self.dropped_rows = [DroppedRows(residuals, self.mrows)
                                 for _, _, residuals, _ in self.dense_rows
                                 if residuals.nbytes > band_sizes.PIECE_BYTES]
            dropped = iter(self.dropped_rows)
            self.dense_rows = [(b, w, residuals if residuals.nbytes <= band_sizes.PIECE_BYTES
                                else next(dropped).values, sums)
                               for b, w, residuals, sums in self.dense_rows]
        self.left = self.Bt = np.zeros((0, 0), np.float32)
        self.B = self.Bt  # B of the loaded columns, (columns, rank), for exact_product
        self.right64: np.ndarray | None = None  # (`binary64_right`)
        self.right64_lock = threading.Lock()
        self.base = 0  # matrix row of self.left[0]
        self.cols = (0, self.n)  # matrix columns of self.Bt
        # Centred columns (MEAN, spec §3.1): added to every row, binary64 in the exact rule
        self.means = container.column_means(plane.index)
        self.loaded_means: np.ndarray | None = None  # the means of the loaded columns

    def _held(self, u_blocks: list[Block], v_blocks: list[Block], hold: int,
              rank: int | None = None) -> set[int]:
        """Ids of the sparse blocks held whole for the plane (its U and V blocks of the
        components below `rank`, default the reconstructor's): the smallest first, while their
        streams and index (`held_bytes`) fit `hold` bytes in all; the others are streamed by
        rows for each pass (`SparseStream`), their index sized to a piece."""
        rank = self.rank if rank is None else rank
        used = sorted([(held_bytes(b, rows, self.compiled), id(b))
                       for blocks, rows in ((u_blocks, self.m), (v_blocks, self.n))
                       for b in blocks if b.coding != DENSE and b.first < rank],
                      key=lambda t: t[0])
        held, total = set(), 0
        for size, key in used:
            if total + size > hold:
                break
            held.add(key)
            total += size
        return held

    def _factor(self, blocks: list[Block], rows: int, held: set[int],
                rank: int | None = None, defer: bool = False) -> list[tuple]:
        """(block, components used, sparse streams, a SparseStream or None) of one factor's
        blocks of the components below `rank` (default the reconstructor's), the held blocks
        decompressed and indexed in threads; `defer`: UNOPENED instead of their streams, opened
        by `_fill` (`opens_whole`)."""
        rank = self.rank if rank is None else rank
        used, total = [], 0
        for block in blocks:
            if block.first < rank:
                used.append((block, min(block.count, rank - block.first)))
                total += block.raw_bytes

        def streams(block: Block) -> tuple | SparseStream | None:
            if block.coding == DENSE:
                return None
            if id(block) not in held:
                return SparseStream(block, rows)
            return UNOPENED if defer else sparse_streams(block, rows, self.compiled)
        # Small blocks, or many blocks of a few bytes each (whose Python steps outweigh their
        # compiled ones: two threads would mostly wait for the interpreter's lock in turn),
        # are opened in this thread
        if defer or total <= max(band_sizes.THREAD_BYTES,
                                 len(used) * band_sizes.THREAD_BLOCK_BYTES):
            return [(b, w, streams(b)) for b, w in used]
        found = run_bands(lambda i: streams(used[i][0]), len(used))
        return [(b, w, s) for (b, w), s in zip(used, found)]

    def _fill(self, out: np.ndarray, factor: list[tuple], grid: tuple[int, int],
              r0: int, r1: int, scale: np.ndarray | None = None) -> None:
        """out = the quantized factor's matrix rows [r0, r1), (r1 - r0, rank) float32, times
        `scale` per column. Compiled, out is zeroed and the sparse blocks filled and scaled in
        one pass per range of rows, in threads; the numpy path needs out zeroed first."""
        if self.compiled is None:
            for block, width, streams in factor:
                if streams is None:
                    fill_dense(out, block, width, grid, r0 // grid[1], r1 // grid[1],
                                self.scratch)
                elif isinstance(streams, SparseStream):
                    fill_streamed(out, block, width, streams, r0, r1)
                else:
                    fill_sparse(out, block, width, streams, r0, r1)
            if scale is not None:
                out *= scale
            return
        compiled = self.compiled
        ones = self.ones if scale is None else scale
        # (an exact plane's `load` gives its scale, ones: the integers themselves)
        if self._opened(out, factor, grid, r0, r1, scale is None or scale is self.scale):
            return
        if (r1 - r0) * self.rank * 4 <= band_sizes.THREAD_BYTES:  # one piece
            parts = [(0, r1 - r0)] if r1 > r0 else []
        else:
            parts = row_bands(r1 - r0, 1, 1, -(-(r1 - r0) // band_workers()))
        # Where the held blocks cover every column of out (the dense ones written whole
        # below), each sparse block zeroes its own columns as it fills them: no zeroing pass.
        covered = covers([f for f in factor if not isinstance(f[2], SparseStream)],
                         out.shape[1])

        def fill(i: int) -> None:
            a, b = parts[i]
            if not covered:
                out[a:b] = 0
            for block, width, streams in factor:
                if streams is not None and not isinstance(streams, SparseStream):
                    fill_compiled(compiled, out[a:b], block, width, streams, r0 + a, r0 + b,
                                   ones, zero=covered)
        if len(parts) == 1:  # no hand-off for one piece
            fill(0)
        else:
            run_bands(fill, len(parts))
        for block, width, streams in factor:  # one streamed block at a time: three contexts
            if isinstance(streams, SparseStream):
                fill_streamed(out, block, width, streams, r0, r1, compiled, ones)
        whole = r0 == 0 and r1 == grid[0] * grid[1]
        for block, width, streams in factor:
            if streams is None:  # dense columns: not touched by the sparse blocks
                columns = slice(block.first, block.first + width)
                if whole and self.whole_grid_fits(block, r1):
                    # the whole grid of a block that fits the budget: decompressed once and
                    # unpredicted and scaled in one compiled pass, as `_dense_whole`
                    unpredict_whole(compiled, out, block, width, grid, block.first,
                                    ones[columns])
                    continue
                fill_dense_compiled(compiled, out, block, width, grid, r0 // grid[1],
                                    r1 // grid[1], ones[columns])

    def whole_grid_fits(self, block: Block, rows: int) -> bool:
        """Whether a dense block's whole grid of `rows` matrix rows, decompressed at once and
        unpredicted in one compiled pass (`unpredict_whole`), fits the budget: else it is
        read in pieces of grid rows (`fill_dense_compiled`)."""
        return block.count * rows * 4 <= self.budget

    def _opened(self, out: np.ndarray, factor: list[tuple], grid: tuple[int, int],
                r0: int, r1: int, integers: bool) -> bool:
        """Whether out (the factor's rows [r0, r1)) is filled here from a factor whose held
        blocks are UNOPENED: where it is the whole factor and its integers (`integers`: the
        exact rule's scale of one) of blocks that cover out's columns, in one compiled call
        that opens every block (`_kernels.whole_factor`); otherwise, or where that call does
        not fill them, the blocks are opened here, in `factor`, and the caller fills out."""
        if not any(streams is UNOPENED for _, _, streams in factor):
            return False
        assert self.compiled is not None
        rows = grid[0] * grid[1]
        # every block decompressed at once: only where the general fill would hold them all
        # too (no streamed block, each dense block within the budget)
        within = all(streams is UNOPENED if streams is not None
                     else self.whole_grid_fits(block, rows)
                     for block, _, streams in factor)
        if integers and r0 == 0 and r1 == rows and within and covers(factor, out.shape[1]):
            status, _ = self.compiled.whole_factor([b for b, _, _ in factor], grid[0],
                                                   grid[1], out, decompressors())
            if not status:
                return True
        for j, (block, width, streams) in enumerate(factor):  # (raises the file's error)
            if streams is UNOPENED:
                factor[j] = (block, width, sparse_streams(block, rows, self.compiled))
        return False

    def factor(self, which: str, scale: np.ndarray) -> np.ndarray:
        """The whole factor A ("U", m x rank) or B ("V", n x rank), float32, times `scale` per
        column: the same pieces and arithmetic as the bands' (float32(integer) * scale)."""
        rows, factor, grid = ((self.m, self.u, self.plane.grid) if which == "U"
                              else (self.n, self.v, self.plane.vgrid))
        out = np.zeros((rows, self.rank), dtype=np.float32)
        if self.rank:
            self._fill(out, factor, grid, 0, rows, scale)
        return out

    def _dense_whole(self, dense: list[tuple[Block, int]], widths: int
                     ) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
        """The dense U blocks' components for all matrix rows, scaled, side by side in one
        (m, widths) array, and each block's (first component, width, column there)."""
        out = scratch_array(self.scratch, "left", (self.m, widths), zero=False)
        g, at, where = self.plane.grid, 0, []
        for block, width in dense:
            scale = self.scale[block.first:block.first + width]
            # Small enough to decompress whole (the usual single column): one compiled pass.
            if self.compiled is not None and self.whole_grid_fits(block, self.m):
                unpredict_whole(self.compiled, out, block, width, g, at, scale)
            elif self.compiled is not None:  # in pieces of grid rows
                fill_dense_compiled(self.compiled, out, block, width, g, 0, g[0], scale, at)
            else:
                fill_dense(out, block, width, g, 0, g[0], self.scratch, at=at)
                out[:, at:at + width] *= scale
            where.append((block.first, width, at))
            at += width
        return out, where

    def _row_local(self, block: Block) -> bool:
        """Whether a dense U block is unpredicted band by band (`dense_rows`): small enough to
        decompress whole, and with a vertical predictor, its column sums at the bands' starts
        (`column_sums`, 8 bytes a grid column a band) no larger than its residuals' fewest
        bytes (one a matrix row), a quarter of the float32 column held otherwise."""
        few_sums = (block.predictor not in (VERTICAL, PLANAR)
                    or len(self.bands) * self.plane.grid[1] * 8 <= self.m)
        return self.dense_by_band and block.count * self.m * 4 <= self.budget and few_sums

    def _row_multipliers(self, container: Container) -> np.ndarray:
        """An adapted plane's M per matrix row (int32, m; spec §5.5), from U's first
        min(K, rank) components filled as the bands fill them (`_fill`) and `_kernels.aq_map`,
        in bands of grid rows within the pass budget (each band's integers, one grid row
        more for the patch means below it, and the kernel's binary64 means), the rule's state
        carried from band to band: the map's memory is then its own int32 per row, not the
        components' of every row (a preview of fewer components reads U's blocks alone:
        `_map_factor`); on the numpy path `codec.aq.map_band`, the same rule in numpy."""
        plane = self.plane
        components = min(plane.aq[0], plane.rank)
        first = self._map_factor(container, components)
        gw = plane.grid[1]
        # a band row's bytes: the integers and the kernel's binary64 patch mean; numpy's
        # map_band holds about eight binary64 temporaries a row besides
        row_bytes = 4 * components + (8 if self.compiled is not None else 72)
        per = max(1, self.budget // (row_bytes * gw)) * gw
        ones = np.ones(components, dtype=np.float32)  # (exact planes: the integers themselves)
        limits = aq.thresholds(plane.aq[1], plane.step, plane.patch)
        weight = aq.mean_weight(plane.patch)
        out = np.empty(self.m, dtype=np.int32)
        carry = np.zeros((2, gw + 2))
        ints = np.empty((min(per + gw, self.m), components), dtype=np.float32)
        for r0 in range(0, self.m, per):
            r1 = min(r0 + per, self.m)
            below = min(r1 + gw, self.m)  # and the grid row below the band, if any
            band = ints[:below - r0]
            band[:] = 0
            self._fill(band, first, plane.grid, r0, below, ones)
            if self.compiled is not None:
                self.compiled.aq_map(band, gw, limits, weight, out[r0:r1], carry, r0 == 0)
            else:
                aq.map_band(band, gw, limits, weight, out[r0:r1], carry, r0 == 0)
        return out

    def _map_factor(self, container: Container, components: int) -> list[tuple]:
        """U's blocks of components 0..K'-1 as `_fill` takes them: the plane's own (their held
        streams whole: the map reads every row before any band is released), or, for a preview
        of fewer components than the map reads, U's blocks read here alone (spec §5.5: the map
        reads U only, never V's blocks or weights a preview does not multiply)."""
        if components <= self.rank:
            return [(b, min(w, components - b.first),
                     streams.streams if isinstance(streams, SparsePieces) else streams)
                    for b, w, streams in self.u if b.first < components]
        blocks = container.factor_blocks(self.plane.index, "U")
        return self._factor(blocks, self.m, self._held(blocks, [], self.budget // 2, components),
                            components)

    def multipliers(self) -> np.ndarray | None:
        """An adapted plane's M per matrix row (int32, m), made now if no pass has been
        loaded; None for other planes."""
        if self.adapted and self.row_m is None:
            self.row_m = self._row_multipliers(self.container)
        return self.row_m

    def _map(self, ints: np.ndarray) -> np.ndarray:
        """M per matrix row (int32, m) from the float32 integers (m, K') of components
        0..K'-1 of every row: `_kernels.aq_map`, its thresholds from `codec.aq`."""
        assert self.compiled is not None
        plane = self.plane
        out = np.empty(self.m, dtype=np.int32)
        self.compiled.aq_map(ints, plane.grid[1], aq.thresholds(plane.aq[1], plane.step,
                                                                plane.patch),
                             aq.mean_weight(plane.patch), out)
        return out

    def _residual_rows(self, block: Block, width: int) -> tuple[Block, int, np.ndarray]:
        """(block, components used, its residuals as (count, m)): one component per row."""
        residuals = block.data()[0].reshape(-1)
        if residuals.size != block.count * self.m:
            raise SvdiError(f"{block.what}: {residuals.size} values for "
                            f"{block.count} x {self.m}")
        return block, width, residuals.reshape(block.count, self.m)

    def _band_left(self, i: int, memory: np.ndarray | None = None) -> np.ndarray:
        """The scaled left factor of band i's matrix rows, in `memory` (1-D float32) where it
        fits, else in this thread's buffer."""
        assert self.compiled is not None
        r0, r1 = self.mrows[i]
        left = self._left_memory(r1 - r0, memory)
        if not self.covered:
            left.fill(0)
        for block, width, streams in self.u:
            if streams is not None:
                fill_compiled(self.compiled, left, block, width,
                               streams.streams if isinstance(streams, SparsePieces) else streams,
                               r0, r1, self.scale, zero=self.covered)
        if self.dense_u is not None:
            columns, where = self.dense_u
            for first, width, at in where:
                left[:, first:first + width] = columns[r0:r1, at:at + width]
        gw = self.plane.grid[1]
        for block, width, residuals, sums in self.dense_rows:  # whole grid rows of gw
            for k in range(block.first, block.first + width):
                self.compiled.unpredict_into(residuals[k - block.first, r0:r1], (r1 - r0) // gw,
                                             gw, block.predictor, 1, left, k,
                                             self.scale[k:k + 1],
                                             None if sums is None else sums[k - block.first, i])
        return left

    def _left_memory(self, rows: int, memory: np.ndarray | None) -> np.ndarray:
        """(rows, rank) float32 for a band's left factor: in `memory` where it fits, else in
        this thread's buffer."""
        size = rows * self.rank
        if memory is not None and memory.size >= size:
            return memory[:size].reshape(rows, self.rank)
        return self.buffers.get(LEFT, size).reshape(rows, self.rank)

    def release(self, i: int) -> None:
        """Band i is rendered and will not be read again (a `released` reconstructor): the
        pages of the left factor's streams that no band still needs are dropped."""
        for _, _, streams in self.u:
            if isinstance(streams, SparsePieces):
                streams.release(i)
        for dropped in self.dropped_rows:
            dropped.release(i)

    def load_columns(self, k: int) -> None:
        """B^T of column range k, float32 (rank, columns), a transposed view exactly as in
        `reconstruct`, filled without an int64 copy."""
        j0, j1 = self.columns[k]
        B = scratch_array(self.scratch, "B", (j1 - j0, self.rank), self.compiled is None)
        self._fill(B, self.v, self.plane.vgrid, j0, j1)
        self.Bt, self.cols, self.right64 = B.T, (j0, j1), None
        if self.means is not None:
            self.loaded_means = (self.means[j0:j1].astype(np.float64) if self.exact
                                 else self.means[j0:j1])
        if self.exact:
            self.max_b = exact_rule.magnitude(B)
            self.largest_a = exact_rule.largest_left(self.max_b, self.weight_sum)
            if self.exact_kernel:  # the kernel reads B's float32 integers itself
                self.B = B
            else:
                self.Bt = B.T.astype(np.float64)  # the binary64 copy of the exact product
        if self.adapted and not self.map_from_left:
            self.multipliers()  # before any band multiplies, in this thread

    def load(self, k: int) -> None:
        """The scaled left factor of the matrix rows of pass k's bands (unless each band
        fills its own)."""
        if self.local:
            return
        r0, r1 = self.mrows[self.passes[k][0]][0], self.mrows[self.passes[k][-1]][1]
        left = scratch_array(self.scratch, "left", (r1 - r0, self.rank), self.compiled is None)
        self._fill(left, self.u, self.plane.grid, r0, r1, self.scale)
        self.left, self.base = left, r0
        if self.map_from_left and self.row_m is None:  # the one pass, integers
            # bands of every row (a decode) give the map's rows; bands of some rows only
            # (the encoder's deblocking judgement) fill the map's components apart
            self.row_m = (self._map(left[:, :min(self.plane.aq[0], self.plane.rank)])
                          if r0 == 0 and r1 == self.m else self._row_multipliers(self.container))

    def matrix(self, i: int, left_memory: np.ndarray | None = None) -> np.ndarray:
        """Matrix rows of band i (in the loaded pass), loaded columns, float32. left_memory:
        1-D float32 memory the band's left factor may take (`_band_left`), spent once this
        returns."""
        r0, r1 = self.mrows[i]
        if self.rank == 0:
            return self.zero_rank_rows(r1 - r0, self.cols[1] - self.cols[0])
        left = (self._band_left(i, left_memory) if self.local
                else self.left[r0 - self.base:r1 - self.base])
        if self.exact:
            assert self.row_m is not None or self.product_shift == self.plane.shift  # (`load`)
            rows_m = None if self.row_m is None else self.row_m[r0:r1]
            if rows_m is not None and not self.exact_kernel:  # (the kernel scales them itself)
                left = aq.scaled_left(left, rows_m)
            return self.exact_matrix(left, rows_m)
        if self.reuse_product:  # the same BLAS call, into this thread's buffer
            columns = self.Bt.shape[1]
            out = self.buffers.get("product", (r1 - r0) * columns).reshape(r1 - r0, columns)
            np.matmul(left, self.Bt, out=out)
        else:
            out = left @ self.Bt
        if self.loaded_means is not None:
            out += self.loaded_means
        if not (self.compiled.all_finite(out) if self.compiled is not None
                else np.isfinite(out.min()) and np.isfinite(out.max())):
            raise overflow_error(self.plane)
        return out

    def zero_rank_rows(self, rows: int, columns: int) -> np.ndarray:
        """Matrix rows of a rank-0 plane: zeros, or the column means of a centred plane
        (fl32(0 + mean) = mean, spec §5.1)."""
        out = np.zeros((rows, columns), dtype=np.float32)
        if self.loaded_means is not None:
            out += self.loaded_means.astype(np.float32)
        return out

    def exact_matrix(self, left: np.ndarray, rows_m: np.ndarray | None = None) -> np.ndarray:
        """A band's rows by the exact rule (spec §5.1), after checking its bound on this
        pair of pieces (the pair holding both maxima breaks it if the plane does). `rows_m`:
        an adapted plane's M of these rows (spec §5.5), which the compiled product applies
        (the numpy path's `left` is A o M already)."""
        assert self.product_shift is not None
        by_blas = (self.exact_kernel and blas_takes_dense_bands(self.plane, self.rank)
                   and np.count_nonzero(left) > left.size * BLAS_PRODUCT_SHARE)
        if self.exact_kernel and not by_blas:
            assert self.compiled is not None
            rows, columns = left.shape[0], self.B.shape[0]
            out = (self.buffers.get("product", rows * columns).reshape(rows, columns)
                   if self.reuse_product else np.empty((rows, columns), np.float32))
            assert self.plane.shift is not None
            max_a = self.compiled.exact_product(left, self.weights, self.B, self.plane.shift,
                                                self.loaded_means, self.largest_a, out, rows_m)
            if max_a > self.largest_a:  # the kernel multiplied nothing: raises
                exact_rule.check_bound(int(max_a), self.max_b, self.weight_sum,
                                       f"plane {self.plane.index}")
            return out
        right_t = self.Bt
        if by_blas:  # as a plane the kernels do not multiply: A o M made here, B^T in binary64
            right_t = self.binary64_right()
            if rows_m is not None:
                left = aq.scaled_left(left, rows_m)
        exact_rule.check_bound(exact_rule.magnitude(left), self.max_b, self.weight_sum,
                               f"plane {self.plane.index}")
        return exact_rule.exact_product(left, self.weights, right_t, self.product_shift,
                                        self.loaded_means)

    @property
    def calls_blas(self) -> bool:
        """Whether this plane's product may call BLAS: every band where the kernels do not
        multiply the plane, its dense bands where they do and `blas_takes_dense_bands`."""
        return not self.exact_kernel or blas_takes_dense_bands(self.plane, self.rank)

    def right_bytes(self) -> int:
        """Bytes the largest column range of B^T takes held (`column_bytes`): with the
        binary64 copy an exact plane's BLAS product makes."""
        binary64 = self.exact and self.calls_blas
        return max(j1 - j0 for j0, j1 in self.columns) * column_bytes(self.rank, binary64)

    def binary64_right(self) -> np.ndarray:
        """B^T of the loaded columns in binary64, for the BLAS product of a compiled plane's
        dense bands: made by the first such band, once for the plane (its 8 bytes a column
        and component are in BandPlan's count, `column_bytes`), none for a plane whose bands
        the kernel multiplies."""
        with self.right64_lock:
            if self.right64 is None:
                self.right64 = self.B.T.astype(np.float64)
            return self.right64

    def to_rows(self, matrix: np.ndarray, i: int) -> np.ndarray:
        """Matrix rows of band i (C-contiguous, any dtype) as the band's pixel rows."""
        y0, y1 = self.bands[i]
        return band_pixels(matrix, self.patch, self.per_row, y1 - y0, self.plane.width)

    def store_bytes(self, out: np.ndarray, c: int, offset: float, band: tuple[int, int],
                    i: int) -> None:
        """Band i rounded into channel c of 8-bit `out`: + offset + 0.5, clip, truncate, as
        `codec.colour.to_uint8`."""
        y0, y1 = band
        if self.compiled is not None:
            self.compiled.store_bytes(self.matrix(i), out, y0, y1, self.xs.start, c,
                                      np.float32(offset), self.patch, self.per_row)
            return
        m = self.matrix(i)
        m += np.float32(offset + 0.5)
        np.clip(m, 0, 255, out=m)
        out[y0:y1, self.xs, c] = np.ascontiguousarray(self.to_rows(m.astype(np.uint8), i))

    def store_rgb(self, out: np.ndarray, cb: np.ndarray, cr: np.ndarray, colour: np.ndarray,
                  band: tuple[int, int], i: int) -> None:
        """Band i of Y' (compiled, patch layout) converted to RGB with the whole, halved chroma
        planes as it is stored into `out`."""
        assert self.compiled is not None
        y0, y1 = band
        self.compiled.store_rgb(self.matrix(i), out, y0, y1, cb, cr, colour, self.patch,
                                self.per_row)

    def store_floats(self, plane: np.ndarray, i: int) -> None:
        """Band i into a whole float32 plane."""
        y0, y1 = self.bands[i]
        if self.compiled is not None and self.patch:
            self.compiled.store_floats(self.matrix(i), plane, y0, y1, self.patch, self.per_row)
        else:
            plane[y0:y1, self.xs] = self.float_rows(i)

    def float_rows(self, i: int) -> np.ndarray:
        return self.to_rows(self.matrix(i), i)

    @property
    def xs(self) -> slice:
        """Pixel columns of the loaded matrix columns (all of them for a patch layout)."""
        return slice(*self.cols) if not self.patch else slice(0, self.plane.width)

    def each_band(self, task: Callable[[int], None], threads: int | None) -> None:
        """task(i) for every band, with the factors loaded piece by piece."""
        loaded = -1
        for k in range(len(self.columns)):
            self.load_columns(k)
            for j, bands in enumerate(self.passes):
                if j != loaded:  # one pass: loaded once for every column range
                    self.load(j)
                    loaded = j

                def one(t: int, bands: list[int] = bands) -> None:
                    task(bands[t])
                run_bands(one, len(bands), threads)
        self.left = self.Bt = np.zeros((0, 0), np.float32)
        self.right64 = None  # (the next plane's set-up and the filters come after)



class WholePlane(PlaneReconstructor):
    """A PlaneReconstructor of a plane rendered in one band (every row of a small image), the
    default encode's case: an exact plane of a patch layout whose blocks all fit the budget
    held at once (an adapted plane's too, spec §5.5: its map made from the whole A). Each
    factor is filled whole at set-up in one compiled call (`_kernels.whole_factor`: the
    blocks' decompression, the sparse blocks' checks and fill, the dense blocks'
    unpredicting, max|B|; U in two, where `apart`), instead of the general set-up's dozens
    of steps per plane (blocks held or streamed, their index, the band plan, passes and
    column ranges, the dense columns per band). The blocks, the checks and the integers are the same, so are the pixels; the
    product is the same `_kernels.exact_product` call. Made by `whole_plane`, which says which
    planes qualify. `apart`: U's run/level blocks are filled by another job meanwhile
    (`blocks_apart`, `fill_apart`; `decoder.stream.whole_jobs`), this one its dense
    blocks. A lives in the thread's kept array for its plane index (`ThreadBuffers`),
    so a thread holds one live WholePlane per plane index: a decode prepares and renders its
    planes in one call. `bands` (whole patch rows, in order): the output bands of a small image
    cut one per thread, each multiplied from the one A (`decoder.stream.whole_jobs`);
    `left`: A's memory, given by the thread that renders (a plane set up in a pool thread must
    not leave A in that thread's kept array, which its next job reuses)."""

    # PlaneReconstructor's attributes that are the same for every WholePlane (never set
    # on an instance): exact, compiled product, product into this thread's buffer, no
    # pass of its own per band, A whole from row 0. Not adapted, unless __init__ says so.
    exact = exact_kernel = reuse_product = True
    local = adapted = False
    row_m = None
    base = 0

    def __init__(self, container: Container, plane: Plane, rank: int,
                 factors: tuple[list[Block], list[Block]], compiled: ModuleType,
                 buffers: ThreadBuffers, bands: list[tuple[int, int]] | None = None,
                 left: np.ndarray | None = None, apart: bool = False) -> None:
        # Not PlaneReconstructor.__init__: the attributes its band methods read, for bands of
        # one A (of every matrix row), one column range and no pass to load.
        self.m, self.n = m, n = plane.matrix_shape
        self.patch, self.per_row = patch, per_row = plane.patch, plane.grid[1]
        if bands is None or len(bands) == 1:
            self.bands, self.mrows = [(0, plane.height)], [(0, m)]
        else:
            self.bands = bands
            self.mrows = [(y0 // patch * per_row, min(-(-y1 // patch) * per_row, m))
                          for y0, y1 in bands]
        self.plane, self.rank = plane, rank
        self.compiled, self.buffers = compiled, buffers
        self.passes, self.columns = [list(range(len(self.bands)))], [(0, n)]
        self.product_shift = plane.shift
        self.container, self.scratch = container, {}
        buffers.expect("product", max(r1 - r0 for r0, r1 in self.mrows) * n)
        assert plane.shift is not None
        sigma = container.singular_values(plane.index)[:rank]
        found = compiled.exact_weights(sigma, float(plane.step), plane.shift)
        self.weights, self.weight_sum = (found if found is not None else exact_rule.weights(
            plane.step, sigma, plane.shift, f"plane {plane.index}"))  # (which raises)
        u_blocks, v_blocks = factors
        # B, and its bound's half: the largest max|A| the exact rule allows with it
        self.B = np.empty((n, rank), dtype=np.float32)
        self.Bt, self.cols = self.B.T, (0, n)
        self.right64, self.right64_lock = None, threading.Lock()  # (`binary64_right`)
        self.max_b = self._fill_whole("V", v_blocks, plane.vgrid, self.B)
        self.largest_a = exact_rule.largest_left(self.max_b, self.weight_sum)
        # A, in this thread's array for the plane, kept for the next decode (`ThreadBuffers`)
        self.left = (buffers.get(f"{LEFT} {plane.index}", m * rank) if left is None
                     else left[:m * rank]).reshape(m, rank)
        if apart:  # the others' columns are another job's (`fill_apart`)
            fill_apart(compiled, plane, u_blocks, self.left)
        else:
            self._fill_whole("U", u_blocks, plane.grid, self.left)
        if plane.adapted:  # version 6 (spec §5.5): M per matrix row from U's first K' columns
            self.adapted = True  # of the whole A (`whole_factors`: K' <= rank), as `load` does
            self.row_m = self._map(self.left[:, :min(plane.aq[0], plane.rank)])
            self.product_shift = plane.shift + aq.UNIT_BITS
        self.means = container.column_means(plane.index)
        self.loaded_means = None if self.means is None else self.means.astype(np.float64)

    def _fill_whole(self, factor: str, blocks: list[Block], grid: tuple[int, int],
                    out: np.ndarray) -> int:
        """out = a factor's integers from its blocks (those of a component below the rank);
        max|out| for B. The blocks as the reader left them are opened and filled in one
        compiled call (`_kernels.whole_factor`); where it does not fill them (blocks given
        with their arrays, or any block it does not take or that is broken), the blocks'
        arrays are read here and filled by `_kernels.plane_factors`, which says what is
        wrong."""
        magnitude = out is self.B
        status, top = self.compiled.whole_factor(blocks, grid[0], grid[1], out,
                                                 decompressors(), magnitude)
        if not status:
            return int(top)
        rank = self.rank
        entries = [(b.first, min(b.count, rank - b.first), b.count,
                    b.predictor if b.coding == DENSE else -1, b.data())
                   for b in blocks if b.first < rank]
        error, failed, top = self.compiled.plane_factors(entries, grid[0], grid[1], out,
                                                         magnitude=magnitude)
        if error:
            if error == WHOLE_DENSE_SIZE:
                what = f"plane {self.plane.index} {factor} block at component {entries[failed][0]}"
                count, rows = entries[failed][2], grid[0] * grid[1]
                raise SvdiError(f"{what}: {entries[failed][4][0].size} values for "
                                f"{count} x {rows}")
            raise SvdiError(f"sparse block: {kernels.SPARSE_ERRORS[error]}")
        return int(top)

    def factor(self, which: str, scale: np.ndarray) -> np.ndarray:
        """Not kept here: `read_factors` reads factors through a PlaneReconstructor."""
        raise NotImplementedError("a WholePlane renders; read factors with PlaneReconstructor")

    def load_columns(self, k: int) -> None:
        """Nothing to load: B is whole (one column range)."""

    def load(self, k: int) -> None:
        """Nothing to load: A is whole (one pass)."""

    def release(self, i: int) -> None:
        """Nothing to drop: no stream or dense column is held by rows."""


#: `_kernels.plane_factors`' error for a dense block of another size than its grid's
WHOLE_DENSE_SIZE = 6


class SetUpDeclined(SvdiError):
    """A plane's U blocks split between two jobs (`blocks_apart`) that the kernel did not fill
    (a block it does not take, or a broken one): the caller sets the image up on one thread
    instead, which fills them the general way or raises the file's error."""


def blocks_apart(plane: Plane, rank: int, u_blocks: list[Block]
                 ) -> tuple[list[Block], list[Block]]:
    """A whole plane's U blocks as two jobs fill them (`decoder.stream.whole_jobs`): (the
    blocks its `WholePlane` fills, those `fill_apart` fills at the same time). Apart: the
    run/level blocks of a plane that also has a dense block (a photo's luma: the dense
    first column, then one run/level block of the others, which is most of a small image's
    set-up), where the blocks cover the rank's components one after another (each job's
    columns then written by that job alone, and every column by one); else none. A preview
    of fewer components keeps one job: its blocks would be cut at the rank as the reader
    leaves them covering the plane's, which the split does not need to rely on. Not an
    adapted plane's, whose map reads U whole at set-up."""
    end = 0
    for b in u_blocks:
        if b.first != end:
            return u_blocks, []
        end = b.first + b.count
    if plane.adapted or end != rank:
        return u_blocks, []
    kept = [b for b in u_blocks if b.coding == DENSE]
    if not kept or len(kept) == len(u_blocks):
        return u_blocks, []
    return kept, [b for b in u_blocks if b.coding != DENSE]


def fill_apart(compiled: ModuleType, plane: Plane, blocks: list[Block], left: np.ndarray
               ) -> None:
    """The columns of U's `blocks` in left (m x rank, float32: the plane's A) alone, while
    another job fills the others (`blocks_apart`: the run/level blocks' job, and the plane's
    WholePlane with its dense blocks); SetUpDeclined where the kernel does not fill them."""
    status, _ = compiled.whole_factor(blocks, plane.grid[0], plane.grid[1], left,
                                      decompressors(), False, True)
    if status:
        raise SetUpDeclined(f"plane {plane.index} U")


def whole_plane(container: Container, plane: Plane, rank: int, bands: list[tuple[int, int]],
                budget: int, compiled: ModuleType | None, buffers: ThreadBuffers
                ) -> WholePlane | None:
    """The plane's `WholePlane` where it qualifies (`whole_factors`) and is rendered in one
    band of every row; None otherwise: the general PlaneReconstructor."""
    if len(bands) != 1 or bands[0] != (0, plane.height):
        return None
    factors = whole_factors(container, plane, rank, budget, compiled)
    if factors is None:
        return None
    assert compiled is not None  # (`whole_factors`)
    return WholePlane(container, plane, rank, factors, compiled, buffers)


def whole_factors(container: Container, plane: Plane, rank: int, budget: int,
                  compiled: ModuleType | None) -> tuple[list[Block], list[Block]] | None:
    """The plane's U and V blocks where a `WholePlane` may take it: the kernels, an exact plane
    of a patch layout (`kernel_multiplies`), a rank of at least one (an adapted plane's: at
    least the K' = min(K, rank) components its map reads, spec §5.5; a preview of fewer takes
    the general path, which fills the map's components apart), and A (m x rank float32), B
    with its binary64 copy (`column_bytes`) and every block it reads, decompressed, within
    the budget, as the general path holds a pass, a column range and its held blocks. Else
    None."""
    m, n = plane.matrix_shape
    if (not kernel_multiplies(plane, compiled) or rank < 1
            or (plane.adapted and min(plane.aq[0], plane.rank) > rank)
            or m * rank * 4 > budget
            or n * column_bytes(rank, blas_takes_dense_bands(plane, rank)) > budget):
        return None
    assert compiled is not None  # (`kernel_multiplies`)
    factors = (container.factor_blocks(plane.index, "U"),
               container.factor_blocks(plane.index, "V"))
    held = compiled.factor_bytes(*factors, rank)
    if held < 0:  # blocks given with their arrays: counted here
        held = sum(block.raw_bytes for blocks in factors for block in blocks
                   if block.first < rank)
    return factors if held <= budget // 2 else None


class IntegerReconstructor(PlaneReconstructor):
    """A PlaneReconstructor of an exact plane whose integers are given, not read: A (m, rank)
    and B (n, rank), the very integers its blocks code losslessly (the encoder's own, for its
    deblocking judgement: the file it has just written needs no parse, no decompression and
    no entropy decoding). Each band's left factor and B are float32 copies of them, what the
    blocks fill (the exact rule's scale is one), so the pixels are the same. Not for an
    adapted plane (spec §5.5), whose map the blocks give."""

    def __init__(self, integers: tuple[np.ndarray, np.ndarray], container: Container,
                 plane: Plane, rank: int, bands: list[tuple[int, int]], budget: int,
                 scratch: dict[str, np.ndarray] | None = None,
                 compiled: ModuleType | None = None,
                 buffers: ThreadBuffers | None = None) -> None:
        assert plane.exact and not plane.adapted
        self.integers_u, self.integers_v = integers
        assert self.integers_u.shape == (plane.matrix_shape[0], plane.rank)
        assert self.integers_v.shape == (plane.matrix_shape[1], plane.rank)
        super().__init__(container, plane, rank, bands, budget, scratch, compiled, buffers)

    def _held(self, u_blocks: list[Block], v_blocks: list[Block], hold: int,
              rank: int | None = None) -> set[int]:
        return set()

    def _factor(self, blocks: list[Block], rows: int, held: set[int],
                rank: int | None = None, defer: bool = False) -> list[tuple]:
        return []  # no block is read: `_fill` and `_band_left` copy the integers

    def _fill(self, out: np.ndarray, factor: list[tuple], grid: tuple[int, int],
              r0: int, r1: int, scale: np.ndarray | None = None) -> None:
        integers = self.integers_u if factor is self.u else self.integers_v
        out[...] = integers[r0:r1, :out.shape[1]]
        if scale is not None:
            out *= scale

    def _band_left(self, i: int, memory: np.ndarray | None = None) -> np.ndarray:
        r0, r1 = self.mrows[i]
        left = self._left_memory(r1 - r0, memory)
        left[...] = self.integers_u[r0:r1, :self.rank]  # (the exact rule's scale is one)
        return left


def covers(factor: list[tuple], width: int) -> bool:
    """Whether a factor's blocks ((block, components used, streams) each) cover its
    components [0, width) one after the other. The reader keeps each factor's blocks in
    component order, without a gap (spec §4); blocks in another order count as not
    covering (their callers then zero the buffer first: the same pixels)."""
    end = 0
    for block, used, _ in factor:
        if block.first != end:
            return False
        end += used
    return end == width


def column_sums(residuals: np.ndarray, grid: tuple[int, int], predictor: int,
                starts: list[int]) -> np.ndarray | None:
    """For a vertical predictor (VERTICAL, PLANAR): the sums down each grid column of a dense
    block's residuals ((count, m), one component a row) above each matrix row of `starts`
    (whole grid rows, in order), as (count, len(starts), grid width): where the running
    column sums of `coding.unpredict` stand at each band's first row, so that each band
    unpredicts its own rows. int64, wrapping as unpredict's sums do (int32 where no sum can
    leave it: the held sums take half the bytes). None for the other predictors, and where
    every band starts at row 0 (zero sums: the kernel's own start)."""
    gh, gw = grid
    rows = [r // gw for r in starts]
    if predictor not in (VERTICAL, PLANAR) or not any(rows):  # no sums, or all zero
        return None
    count = residuals.shape[0]
    cuts = sorted({0, *(r for r in rows if r < gh)})
    grid_rows = residuals.reshape(count, gh, gw)
    above = np.zeros((count, len(cuts) + 1, gw), np.int64)  # the sums above each cut
    for j, (a, b) in enumerate(zip(cuts, [*cuts[1:], gh])):
        # a cut at a time: numpy sums a slice in int64 through small buffers, where a
        # reduceat of the whole block would first copy it all to int64
        np.add(above[:, j], grid_rows[:, a:b].sum(axis=1, dtype=np.int64), out=above[:, j + 1])
    sums = above[:, np.searchsorted(cuts, rows)]
    bits = 8 * residuals.dtype.itemsize - (residuals.dtype.kind == "i")
    bound = gh * (1 << bits)  # above any sum of gh residuals
    return sums.astype(np.int32) if bound < 1 << 31 else sums


def bands_for(planes: Iterable[Plane], height: int, width: int) -> list[tuple[int, int]]:
    """Pixel-row bands shared by planes of one size: whole patches of every plane, and at least
    band_sizes.MIN_BAND_ROWS matrix rows of each."""
    if 0 < height <= -(-band_sizes.BAND_PIXELS // width):  # one band, whatever `need` is
        return [(0, height)]
    unit, need = 1, 1
    for p in planes:
        if p.layout == LAYOUT_PATCH:
            unit = max(unit, p.patch)
            need = max(need, -(-band_sizes.MIN_BAND_ROWS * p.patch // p.grid[1]))
        else:
            need = max(need, band_sizes.MIN_BAND_ROWS)
    target = max(need, -(-band_sizes.BAND_PIXELS // width))
    return row_bands(height, unit, -(-need // unit), target)


def exact_bands_for(planes: Iterable[Plane], height: int, width: int, pixels: int | None = None
                    ) -> list[tuple[int, int]]:
    """Pixel-row bands of `pixels` (default band_sizes.EXACT_BAND_PIXELS) for planes of one
    size that are all exact (version 2 planes, every plane of a version 5 file): whole patches
    of every plane, with no fewest rows, since an exact product's rows do not depend on how
    many rows it has (`bands_for`'s MIN_BAND_ROWS guards BLAS's float rounding). Evenly sized
    (`even_bands`): each band thread's buffers, sized by its first band, then fit every later
    one."""
    unit = max([p.patch for p in planes if p.layout == LAYOUT_PATCH], default=1)
    pixels = band_sizes.EXACT_BAND_PIXELS if pixels is None else pixels
    return even_bands(height, unit, max(1, -(-pixels // width)))


def covering_bands(spans: Iterable[tuple[int, int]], unit: int, height: int
                   ) -> list[tuple[int, int]]:
    """The rows [y0, y1) of `spans` as bands of whole multiples of `unit` rows (a plane's
    patch; the last may end at `height`), in order, those that overlap or touch merged: bands
    of an exact plane (any whole patches give the same rows) that hold just these rows."""
    merged: list[tuple[int, int]] = []
    for y0, y1 in sorted((y0 // unit * unit, min(-(-y1 // unit) * unit, height))
                         for y0, y1 in spans):
        if merged and y0 <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], y1))
        else:
            merged.append((y0, y1))
    return merged


def pass_budget(out_bytes: int) -> int:
    """Bytes each factor buffer (a pass of U, a column range of V, the gathering copy) may
    take: three of them, the output and band temporaries stay within 3 x output + 64 MiB."""
    return max(band_sizes.MIN_PASS_BYTES, out_bytes // 2)
