"""Encoder: image -> planes -> matrices -> factors -> quantized blocks -> container bytes.

The factorization does not depend on the quantizer step, so rate control (target PSNR, byte
budget) factorizes once and only re-quantizes while it searches for the step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from PIL import Image

from . import container as C
from . import planes as P
from . import factorization as F
from . import kernels
from .bands import row_bands
from .coding import band_symbols, best_prediction, join_symbols, to_symbols
from .errors import SvdiError
from .factorization import energy as frobenius2, factorize
from .parallel import run_bands, single_threaded, threaded_blas
from .quantization import ColumnStats, choose_rank, entropy_bits

#: The quality scale is libjpeg's: a scale factor of 5000/q below 50 and 200-2q above, so
#: that -q means what JPEG users expect; STEP_SCALE maps it to the step, STEP_MIN is quality 100.
STEP_SCALE = 0.25
STEP_MIN = 0.5
#: Chroma is subsampled 2x2 when the luma step is at least this (low and medium quality).
SUBSAMPLE_FROM_STEP = 6.0
#: Chroma step relative to the luma step (Y'CbCr errors weigh about equally in RGB PSNR).
CHROMA_STEP = 0.55
#: Default patch side of the "patch" layout.
DEFAULT_PATCH = 8
#: Layouts that layout="auto" tries for each plane.
AUTO_LAYOUTS = ("patch4", "patch8")
#: Lagrange multiplier of the layout choice, in units of step^2 per bit.
LAYOUT_LAMBDA = 0.12
#: A plane of at least LAYOUT_SAMPLE * MIN_SAMPLE_BANDS bands chooses its layout on one band
#: in LAYOUT_SAMPLE, then codes only the chosen layout (see `Encoder._sample`).
LAYOUT_SAMPLE = 8
MIN_SAMPLE_BANDS = 2
#: Size of the first group of sparse components and the growth factor of the next ones.
FIRST_GROUP = 15
GROUP_GROWTH = 4.0
ZSTD_LEVEL = 1

MODES = {  # Pillow mode -> (dtype, channels)
    "L": (np.uint8, 1), "LA": (np.uint8, 2), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4),
    "I;16": (np.uint16, 1), "F": (np.float32, 1),
}


def step_for_quality(quality: float) -> float:
    """Quantizer step in 8-bit units for quality 1..100; strictly decreasing in quality."""
    if not 1 <= quality <= 100:
        raise SvdiError(f"quality must be within 1..100, got {quality}")
    factor = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return STEP_MIN + STEP_SCALE * factor


# ----------------------------------------------------------------------------- input


def image_to_array(image: Image.Image) -> np.ndarray:
    """A Pillow image as an array in one of the stored modes, converting where needed."""
    mode = image.mode
    if mode in ("1", "I;16L", "I;16B", "I;16N"):
        image = image.convert("L" if mode == "1" else "I;16")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode == "I":
        arr = np.asarray(image)
        if arr.size and 0 <= int(arr.min()) and int(arr.max()) <= 65535:
            return arr.astype(np.uint16)
        return arr.astype(np.float32)
    elif mode not in MODES:
        image = image.convert("RGB")
    return np.asarray(image)


def as_pixels(data: np.ndarray | Image.Image) -> np.ndarray:
    """Validate an encoder input and return it as (h, w, c) of uint8, uint16 or float32."""
    arr = image_to_array(data) if isinstance(data, Image.Image) else np.asarray(data)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype not in C.SAMPLE_CODES:
        raise SvdiError(f"unsupported sample type {arr.dtype}; use uint8, uint16 or float32")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or not 1 <= arr.shape[2] <= C.MAX_CHANNELS:
        raise SvdiError(f"expected shape (h, w) or (h, w, 1..{C.MAX_CHANNELS}), got {arr.shape}")
    h, w = arr.shape[:2]
    if not (1 <= h <= C.MAX_DIMENSION and 1 <= w <= C.MAX_DIMENSION):
        raise SvdiError(f"image size {w}x{h} outside 1..{C.MAX_DIMENSION}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise SvdiError("float input contains NaN or infinity, which cannot be encoded")
    return arr


def _header(pixels: np.ndarray, subsample: bool) -> C.Header:
    h, w, c = pixels.shape
    dtype = pixels.dtype
    colour = C.COLOUR_YCBCR if dtype == np.uint8 and c in (3, 4) else C.COLOUR_NONE
    scale = 1.0
    if dtype != np.uint8:
        peak = float(np.max(np.abs(pixels))) if pixels.size else 0.0
        scale = peak / 255.0 if peak > 0 else 1.0
    return C.Header(w, h, C.SAMPLE_CODES[dtype], c, colour,
                    int(subsample and colour == C.COLOUR_YCBCR), scale)


# ----------------------------------------------------------------------------- layout choice


def parse_layout(layout: str) -> tuple[int, int]:
    """'plain', 'patch' or 'patchN' -> (layout code, patch side)."""
    if layout == "plain":
        return C.LAYOUT_PLAIN, 0
    if layout.startswith("patch"):
        side = int(layout[5:] or DEFAULT_PATCH) if layout[5:].isdigit() or not layout[5:] else 0
        if side in C.PATCH_SIZES:
            return C.LAYOUT_PATCH, side
    raise SvdiError(f"unknown layout {layout!r}; use auto, plain, patch or patch4/8/16")


# ----------------------------------------------------------------------------- the encoder


Symbols = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Plane rows (y0, y1) -> (that band's U integers, their stats, its symbols per sparse group).
_Bands = dict[tuple[int, int], tuple[np.ndarray, "ColumnStats", list[Symbols]]]

#: Target samples per band of the streaming passes (rows of a plane, whole patch rows).
BAND_SAMPLES = 1 << 18
#: Band heights are multiples of this, so that every patch size fits whole patch rows.
BAND_UNIT = max(C.PATCH_SIZES)


@dataclass
class _Candidate:
    """A plane in one layout and its basis: everything that does not depend on the step.

    Patch layouts with at least as many patches as samples per patch (every real photo) stream:
    the Gram matrix is summed band by band, and each step projects the bands on the basis again,
    so no full-size float plane, matrix or factor is kept. Other matrices (plain layout, tiny
    images) keep their in-memory factors.
    """

    plane: C.Plane
    sigma: np.ndarray  # (r,) float64
    Q: np.ndarray  # (n, r) float32, the V side
    total_energy: float
    basis: np.ndarray | None = None  # (n, r) float32 unit vectors, streaming candidates
    P: np.ndarray | None = None  # (m, r) float32 U side, in-memory candidates


@dataclass
class _Coded:
    """One candidate coded at one step: its PLAN record, chunks per group, and its cost."""

    plane: C.Plane
    groups: list[list[bytes]]
    nbytes: int
    distortion: float
    parts: _Bands  # a sample's band parts (`Encoder._quantize_u`), else empty


#: A plane's chosen candidate, its step, the coding it was chosen by (a sample's, or None with a
#: single candidate) and whether that coding is already the whole plane's.
_Choice = tuple[_Candidate, float, _Coded | None, bool]


def _streams(code: int, side: int, height: int, width: int) -> bool:
    return code == C.LAYOUT_PATCH and -(-height // side) * -(-width // side) >= side * side


class Encoder:
    """Holds everything that does not depend on the step, so rate control can iterate cheaply.

    With layout "auto", every plane is factorized in each candidate layout and, at each step,
    coded in the one with the lowest rate-distortion cost D + lambda * R, where D is the model
    the rank decision uses (discarded sigma^2 plus the quantization errors of the kept
    components; within about 1% of the measured error, and BD-rate neutral on Kodak).
    """

    def __init__(self, pixels: np.ndarray, layout: str, rank: int | None,
                 energy: float | None, once: bool = False) -> None:
        self.pixels = pixels
        self.once = once  # one step only: planes kept for later steps can go once coded
        self.rank = rank
        self.energy = energy
        self.fixed_rank = rank is not None or energy is not None
        if layout != "auto":
            self.layouts = [parse_layout(layout)]
        elif self.fixed_rank:
            self.layouts = [parse_layout("plain")]  # the textbook mode
        else:
            self.layouts = [parse_layout(name) for name in AUTO_LAYOUTS]
        self._work: dict[bool, tuple[C.Header, P.Source, dict[int, list[_Candidate]]]] = {}

    def _bands(self, source: P.Source, index: int) -> list[tuple[int, int]]:
        h, w = source.shapes[index]
        return row_bands(h, BAND_UNIT, 1, -(-BAND_SAMPLES // w))

    def _grams(self, source: P.Source, index: int, sides: list[int]) -> dict[int, np.ndarray]:
        """Gram matrix of plane `index` in each patch size, summed over bands in order."""
        bands = self._bands(source, index)
        h, w = source.shapes[index]
        derived = [s for s in sides if 2 * s in sides and _quarters(s, h, w)]
        direct = [s for s in sides if s not in derived]

        def gram(i: int) -> list[np.ndarray]:
            return [(a.T @ a) for a in (source.patches(index, *bands[i], side)
                                        for side in direct)]
        totals = [np.zeros((side * side, side * side)) for side in direct]
        for part in run_bands(gram, len(bands)):
            for total, g in zip(totals, part):
                total += g  # float64 sums of the float32 band products, in band order
        grams = dict(zip(direct, totals))
        for side in sorted(derived, reverse=True):  # 8 from 16 before 4 from 8
            grams[side] = _sub_gram(grams[2 * side], side)
        return grams

    def _prepare(self, subsample: bool) -> tuple[C.Header, P.Source]:
        if subsample not in self._work:
            header = _header(self.pixels, subsample)
            self._work[subsample] = (header, P.Source(self.pixels, header), {})
        header, source, _ = self._work[subsample]
        return header, source

    def _candidates(self, subsample: bool, i: int) -> list[_Candidate]:
        """Plane i in each candidate layout, factorized on first use (by the plane's own job:
        a plain layout's whole-plane matrix exists only while its plane is coded)."""
        _, source, work = self._work[subsample]
        if i in work:
            return work[i]
        h, w = source.shapes[i]
        if (h, w) != source.shapes[0]:
            source.keep(i, self._bands(source, i))
        sides = [side for code, side in self.layouts if _streams(code, side, h, w)]
        grams = self._grams(source, i, sides) if sides else {}
        whole = None
        candidates = []
        for code, side in self.layouts:
            plane = C.Plane(i, code, side, h, w, 0, 1.0)
            limit = min(*plane.matrix_shape, C.MAX_RANK)
            if self.rank is not None:
                limit = min(limit, self.rank)
            if side in grams:
                sigma, basis = F.basis(grams[side], limit)
                candidates.append(_Candidate(plane, sigma, basis * sigma.astype(np.float32),
                                             float(np.trace(grams[side])), basis=basis))
                continue
            if whole is None:
                whole = source.rows(i, 0, h)
            matrix = P.to_matrix(whole, code, side)
            with threaded_blas():
                f = factorize(matrix, limit, requested=self.rank is not None,
                              energy=self.energy)
            candidates.append(_Candidate(plane, f.sigma, f.Q, frobenius2(matrix), P=f.P))
        work[i] = candidates
        return candidates

    def _energy_rank(self, c: _Candidate) -> int:
        assert self.energy is not None
        cumulative = np.cumsum(c.sigma ** 2)
        need = self.energy * c.total_energy
        return min(int(np.searchsorted(cumulative, need * (1 - 1e-12))) + 1, c.sigma.size)

    def _sample(self, source: P.Source, index: int) -> list[tuple[int, int]] | None:
        """Evenly spaced full bands of plane `index`, 1 in LAYOUT_SAMPLE, or None if the plane
        has too few bands for a sample to stand for it."""
        bands = self._bands(source, index)
        full = [b for b in bands if (b[1] - b[0]) % BAND_UNIT == 0]
        if len(full) < LAYOUT_SAMPLE * MIN_SAMPLE_BANDS:
            return None
        return full[LAYOUT_SAMPLE // 2::LAYOUT_SAMPLE]

    def _quantize_u(self, source: P.Source, c: _Candidate, rank: int, step: float,
                    bands: list[tuple[int, int]] | None = None, done: _Bands | None = None
                    ) -> tuple[np.ndarray, ColumnStats, dict[tuple[int, int], list[Symbols]],
                               _Bands]:
        """The integers of the U side, (m, rank), in the narrowest safe type, their stats, the
        symbols of each sparse group at full rank, band by band (while the band is in cache:
        the rank decision usually keeps them all), and each band's part of those. `bands`:
        only the matrix rows of these plane rows (whole patch rows), stacked. `done`: parts
        of bands computed before at the same rank and step (the layout sample), taken as
        they are: every band is computed on its own, so the result is the same."""
        n = c.plane.matrix_shape[1]
        if c.P is not None:
            stats = ColumnStats(rank, step)
            return stats.add(c.P[:, :rank]), stats, {}, {}
        assert c.basis is not None
        bands = self._bands(source, c.plane.index) if bands is None else bands
        patch, per_row = c.plane.patch, c.plane.grid[1]
        starts = np.cumsum([0] + [-(-(y1 - y0) // patch) * per_row for y0, y1 in bands])
        # |P_ij| <= |row i| <= sqrt(n) * 255 in plane units (chroma and scaled samples too).
        small = math.sqrt(n) * 256.0 / step + 2 < np.iinfo(np.int16).max
        A = np.empty((int(starts[-1]), rank), dtype=np.int16 if small else np.int32)
        basis = np.ascontiguousarray(c.basis[:, :rank])
        groups = _groups(rank)[1:]

        def band(i: int) -> tuple[np.ndarray, ColumnStats, list[Symbols]]:
            y0, y1 = bands[i]
            a = source.patches(c.plane.index, y0, y1, patch)
            stats = ColumnStats(rank, step)
            ints = stats.add(a @ basis, out=A[starts[i]:starts[i + 1]])
            return ints, stats, [band_symbols(ints, lo, hi) for lo, hi in groups]
        done = done or {}
        todo = [i for i, b in enumerate(bands) if b not in done]
        computed = dict(zip(todo, run_bands(lambda k: band(todo[k]), len(todo))))
        parts = []
        for i, b in enumerate(bands):
            if i not in computed:
                A[starts[i]:starts[i + 1]] = done[b][0]
            parts.append(computed.get(i) or done[b])
        symbols = {g: [p[2][k] for p in parts] for k, g in enumerate(groups)}
        return (A, ColumnStats.combine([p[1] for p in parts]), symbols,
                dict(zip(bands, parts)))

    def _code(self, source: P.Source, c: _Candidate, step: float, measure: bool,
              sample: list[tuple[int, int]] | None = None, done: _Bands | None = None
              ) -> _Coded:
        """The plane coded at `step`. With a sample of bands, only those rows are coded and
        the U side's error, bits and bytes are scaled up by the sampled fraction: an estimate
        of the plane's cost, for choosing its layout. `done`: the sample's band parts, when
        coding the whole plane in the layout chosen from it."""
        rank = self._energy_rank(c) if self.energy is not None else c.sigma.size
        try:
            A, sa, presymbols, parts = self._quantize_u(source, c, rank, step, sample, done)
            sb = ColumnStats(rank, step)
            B = sb.add(c.Q[:, :rank])
        except OverflowError:
            raise SvdiError("quantizer step too small for this data") from None
        up = c.plane.matrix_shape[0] / max(A.shape[0], 1)  # 1 unless sampled
        error_a = sa.error * up
        r = rank
        if not self.fixed_rank and r:
            r = choose_rank(c.sigma[:rank], error_a, sb.error, sa.most_bits() * up,
                            lambda i: entropy_bits(A[:, i]) * up,
                            lambda i: entropy_bits(B[:, i]), step)
        # A component whose quantized U or V is all zero contributes nothing: drop the tail.
        alive = np.flatnonzero(sa.nonzero()[:r] & sb.nonzero()[:r])
        r = int(alive[-1]) + 1 if alive.size else 0
        distortion = 0.0
        if measure:  # the model of choose_rank: discarded energy plus quantization error
            gain = c.sigma[:r] ** 2 - error_a[:r] - sb.error[:r]
            distortion = c.total_energy - float(gain.sum())
        p = c.plane
        height = p.height if sample is None else sum(y1 - y0 for y0, y1 in sample)
        plane = C.Plane(p.index, p.layout, p.patch, height, p.width, r, step)
        sigma = c.sigma[:r].astype(np.float32)
        known = [g for g in _groups(r)[1:] if g in presymbols]
        kept = dict(zip(known, run_bands(lambda k: join_symbols(presymbols[known[k]]),
                                         len(known))))
        blocks = _blocks(plane, A[:, :r], sigma, B[:, :r], kept)
        flat = [b for group in blocks for b in group]
        packed = run_bands(lambda i: C.pack_block(flat[i], ZSTD_LEVEL), len(flat))
        chunks = iter(packed)
        groups = [[next(chunks) for _ in group] for group in blocks]
        nbytes = sum(len(x) * (up if b.factor == "U" else 1.0) for b, x in zip(flat, packed))
        return _Coded(plane, groups, round(nbytes), distortion, parts if sample else {})

    def encode(self, step: float) -> bytes:
        """The file at one quantizer step (8-bit units)."""
        subsample = step >= SUBSAMPLE_FROM_STEP
        header, source = self._prepare(subsample)

        full = [source.shapes[i] == source.shapes[0] for i in range(header.channels)]

        def layout(index: int, whole: bool = True) -> _Choice | None:
            """The plane's chosen candidate, its step, the coding it was chosen by, and whether
            that coding is the whole plane's (no sample: one candidate, or a small plane);
            None if that would take coding whole planes and `whole` is false."""
            candidates = self._candidates(subsample, index)
            plane_step = step * CHROMA_STEP if (header.colour and index in (1, 2)) else step
            if len(candidates) == 1:
                return candidates[0], plane_step, None, False
            lam = LAYOUT_LAMBDA * plane_step * plane_step * 8  # per byte
            sample = self._sample(source, index)
            if sample is None and not whole:
                return None
            coded = [self._code(source, c, plane_step, True, sample) for c in candidates]
            best = min(range(len(coded)), key=lambda k: coded[k].distortion + lam * coded[k].nbytes)
            return candidates[best], plane_step, coded[best], sample is None

        def finish(chosen: _Choice) -> _Coded:
            c, plane_step, coded, whole = chosen
            if whole:
                assert coded is not None
                return coded
            return self._code(source, c, plane_step, False,
                              done=coded.parts if coded is not None else None)

        def first(index: int) -> _Choice | _Coded | None:
            """A subsampled plane coded; a full-size plane's layout chosen, unless that takes
            coding whole planes (None: done with the plane's coding, on its own)."""
            chosen = layout(index, not full[index])
            return chosen if full[index] or chosen is None else finish(chosen)
        # Patch layouts: the planes' factorizations and layout samples, and the whole coding of
        # subsampled chroma, run as concurrent jobs whose bands idle threads share (one plane's
        # serial steps overlap another's bands); a full-size plane's coding, which holds its
        # integer U (2/3 of the raw size for Y'), follows on its own, after the kept chroma
        # planes are dropped if no other step will need them (19 MP: 0.13-0.15 s, peak traced
        # memory 1.25 x raw; all planes concurrent 0.13 s, 2.2 x; one at a time 0.19 s,
        # 1.3 x). A plain layout holds its whole plane as a matrix: those go one at a time.
        concurrent = all(code == C.LAYOUT_PATCH for code, _ in self.layouts)
        started = run_bands(first, header.channels, None if concurrent else 1)
        if self.once:
            source.release([i for i in range(header.channels) if not full[i]])
        chosen: list[_Coded] = []
        for i, s in enumerate(started):
            if isinstance(s, _Coded):
                chosen.append(s)
                continue
            picked = s if s is not None else layout(i)
            assert picked is not None  # whole-plane codings allowed: always a choice
            chosen.append(finish(picked))
        depth = max((len(k.groups) for k in chosen), default=0)
        ordered = [chunk for g in range(depth) for k in chosen if g < len(k.groups)
                   for chunk in k.groups[g]]
        return b"".join([C.pack_header(header, [k.plane for k in chosen]), *ordered, C.END])


def _quarters(small: int, height: int, width: int) -> bool:
    """Whether every small x small patch of the plane is a quarter of one patch twice as big
    (the plane tiles exactly with the big patches)."""
    return height % (2 * small) == 0 and width % (2 * small) == 0


def _sub_gram(gram: np.ndarray, small: int) -> np.ndarray:
    """The Gram matrix of the small patches from that of the patches twice as big that they
    tile: each small patch is a quarter of one big patch, so its Gram matrix is the sum of the
    four quarters' diagonal blocks (one GEMM pass over the plane instead of two)."""
    big = 2 * small
    out = np.zeros((small * small, small * small))
    cells = np.arange(small)
    for qy in (0, small):
        for qx in (0, small):
            index = ((qy + cells)[:, None] * big + qx + cells[None, :]).reshape(-1)
            out += gram[np.ix_(index, index)]
    return out


def _groups(rank: int) -> list[tuple[int, int]]:
    """Component ranges: the DC-like first component alone, then ranges that grow by
    GROUP_GROWTH, so that a reader can stop after any range (previews) at little cost."""
    out, first, size = [(0, min(rank, 1))], 1, FIRST_GROUP
    while first < rank:
        out.append((first, min(rank, first + size)))
        first += size
        size = int(size * GROUP_GROWTH)
    return out


def _blocks(plane: C.Plane, A: np.ndarray, sigma: np.ndarray, B: np.ndarray,
            u_symbols: dict[tuple[int, int], Symbols] | None = None) -> list[list[C.Block]]:
    """Blocks of one plane per component group, S in the first group (u_symbols: the symbols
    of U's sparse groups where they are already known)."""
    r = sigma.size
    if r == 0:
        return []
    out: list[list[C.Block]] = []
    for lo, hi in _groups(r):
        group = [] if out else [C.Block("S", plane.index, 0, r, C.DENSE,
                                        (sigma.astype(np.float32),))]
        for factor, mat, grid in (("V", B, plane.vgrid), ("U", A, plane.grid)):
            if lo == 0:
                group.append(_dense(factor, plane.index, 0, mat[:, :1], grid))
            else:
                known = (u_symbols or {}).get((lo, hi)) if factor == "U" else None
                block = C.Block(factor, plane.index, lo, hi - lo, C.SPARSE,
                                known or to_symbols(mat[:, lo:hi]))
                if plane.layout == C.LAYOUT_PLAIN:
                    block = _smaller(block, _dense(factor, plane.index, lo, mat[:, lo:hi], grid))
                group.append(block)
        out.append(group)
    return out


def _dense(factor: str, plane: int, first: int, columns: np.ndarray, grid: tuple[int, int]
           ) -> C.Block:
    """Columns as predicted dense grids: the singular vectors of a whole plane are often smooth
    along the image, where a vertical predictor beats run/level symbols."""
    grids = np.ascontiguousarray(columns.T).reshape(columns.shape[1], *grid)
    predictor, residuals = best_prediction(grids)
    return C.Block(factor, plane, first, columns.shape[1], C.DENSE, (residuals,), predictor)


def _smaller(a: C.Block, b: C.Block) -> C.Block:
    return a if len(C.pack_block(a, ZSTD_LEVEL)) <= len(C.pack_block(b, ZSTD_LEVEL)) else b


# ----------------------------------------------------------------------------- rate control


def _psnr(pixels: np.ndarray, decoded: np.ndarray, peak: float) -> float:
    diff = pixels.astype(np.float64) - decoded.reshape(pixels.shape).astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10 * math.log10(peak * peak / mse)


def _bisect(predicate: Callable[[float], bool], lo: float, hi: float, iters: int = 14) -> float:
    """Largest log-step in [lo, hi] where predicate holds (predicate true at lo, monotone)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if predicate(mid):
            lo = mid
        else:
            hi = mid
    return lo


def encode(image: np.ndarray | Image.Image, quality: float = 75, *, rank: int | None = None,
           energy: float | None = None, target_psnr: float | None = None,
           max_bytes: int | None = None, layout: str = "auto") -> bytes:
    """Encode an image or a 2-D/3-D array to .svdi bytes.

    quality (1..100) sets the quantizer step; target_psnr (dB) or max_bytes search the step
    instead. rank keeps exactly that many components per plane (fewer only if the matrix has
    lower rank); energy keeps the fewest components holding that fraction of sum(sigma^2).
    """
    pixels = as_pixels(image)
    if rank is not None and (not isinstance(rank, (int, np.integer)) or rank < 0):
        raise SvdiError(f"rank must be a non-negative integer, got {rank!r}")
    if energy is not None and not 0 < energy <= 1:
        raise SvdiError(f"energy must be within (0, 1], got {energy}")
    if sum(x is not None for x in (target_psnr, max_bytes)) > 1:
        raise SvdiError("give at most one of target_psnr and max_bytes")
    kernels.get(pixels.size)  # loads the optional compiled loops for a large image
    with single_threaded():  # see parallel's docstring
        return _encode(pixels, quality, rank, energy, target_psnr, max_bytes, layout)


def _encode(pixels: np.ndarray, quality: float, rank: int | None, energy: float | None,
            target_psnr: float | None, max_bytes: int | None, layout: str) -> bytes:
    once = target_psnr is None and max_bytes is None
    enc = Encoder(pixels, layout, None if rank is None else int(rank), energy, once)
    if once:
        return enc.encode(step_for_quality(quality))

    from .decoder import decode  # rate control measures the real decoded result

    peak = 255.0 if pixels.dtype == np.uint8 else 255.0 * _header(pixels, False).scale
    lo, hi = math.log2(1e-3), math.log2(4096.0)
    if target_psnr is not None:
        def good(log_step: float) -> bool:
            return _psnr(pixels, decode(enc.encode(2 ** log_step), max_pixels=None), peak) \
                >= target_psnr
        if not good(lo):
            raise SvdiError(f"target PSNR {target_psnr} dB is not reachable")
        return enc.encode(2 ** _bisect(good, lo, hi))
    assert max_bytes is not None
    sizes: dict[float, bytes] = {}

    def fits(log_step: float) -> bool:
        sizes[log_step] = enc.encode(2 ** log_step)
        return len(sizes[log_step]) <= max_bytes
    if fits(hi):
        best = _bisect(lambda s: fits(s), hi, lo) if not fits(lo) else lo
        return sizes[best] if best in sizes else enc.encode(2 ** best)
    raise SvdiError(f"no file fits in {max_bytes} bytes (the smallest is {len(sizes[hi])})")


def encode_options(**options: Any) -> dict[str, Any]:
    """Keep only the encoder's keyword options that are set (for the plugin and CLI)."""
    keys = ("quality", "rank", "energy", "target_psnr", "max_bytes", "layout")
    return {k: v for k, v in options.items() if k in keys and v is not None}
