"""Output: decoded bands become pixels (spec §5 steps 5-6): rounding to the sample type, chroma
upsampling and the Y'CbCr -> RGB conversion, exactly as Pillow does them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from types import ModuleType

import numpy as np

from ..codec.colour import (
    CHROMA_OFFSET,
    CHROMA_OFFSET_16,
    YCC16_INVERSE,
    YCC_MULTIPLIERS,
    integer_samples,
    needs_float64,
    wide_ycc_to_rgb,
    ycc_to_rgb,
)
from ..codec.resample import Bilinear, Resampler
from ..errors import SvdiError
from ..format import COLOUR_YCBCR, LAYOUT_PATCH, Container, Header, Plane
from ..runtime import band_sizes, kernels
from ..runtime.pages import base_page_array
from ..runtime.threads import run_bands
from .deblock import deblock_convert, deblock_image, edge_filters, fusable_filters
from .factors import factor_bytes
from .plane import PlaneReconstructor, bands_for, pass_budget
from .residuals import apply_bare, apply_residuals
from .restoration import restore_image

_FMAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class OutputPlan:
    """How a file's planes become the output, decided before any factor is read.

    The output paths, by name:
    - `ycc`: planes are Y'CbCr, rounded to bytes (16-bit samples, version 3: to 16-bit
      samples, chroma + 32768) and converted to RGB (else each plane is scaled to the sample
      type on its own);
    - `fused` (compiled): subsampled chroma planes stay whole, a quarter of the size, and are
      doubled inside the colour conversion instead of upsampled into the output first;
    - `direct` (fused, Y' in patches): the chroma planes are decoded first and each Y' band is
      converted to RGB as it is stored, so the output is written once and never read back;
    - `chroma_jobs` (a method: direct, small chroma factors): the chroma planes decode as
      concurrent jobs beside Y's factor set-up, each with its own buffers (not for large
      factors: each plane's buffers at once would break the memory bound).
    - `deblock` (version 4, a plane with the deblocking filter): the 8-bit samples are filtered
      in the output before the colour conversion (spec §5.4), so the output holds Y'CbCr
      first: not direct; fused chroma is doubled into the output (`double_chroma`) before the
      filter, then converted in place;
    - `filter_convert` (deblock, compiled 8-bit Y'CbCr, every edge period >= 4): the chroma
      doubling, the filter and the conversion in one pass over each band of the output
      (`deblock_ycc`), which then holds Y' and, off the fused path, Cb and Cr, before it.
    - `restore` (version 6, an RSTR chunk): the restoration filter on the 8-bit samples after
      the deblocking filter (spec §5.6), in the output before the colour conversion as the
      plain `deblock` path does (neither direct nor `filter_convert`).
    - `filters`: the deblocking filter's `edge_filters` (none without `deblock`), made once
      for the band renderer's seams.
    """

    ranks: list[int]  # components decoded per plane
    bands: list[tuple[int, int]]  # pixel-row bands of the full-size planes
    budget: int  # bytes per factor buffer (`pass_budget`)
    full: list[Plane]  # full-size planes
    chroma: list[Plane]  # subsampled planes
    ycc: bool
    fused: bool
    direct: bool
    deblock: bool
    filter_convert: bool
    restore: bool
    compiled: ModuleType | None
    colour: np.ndarray | None  # the kernels' colour constants (compiled Y'CbCr only)
    filters: list[tuple[int, int, tuple[int, int, int]]]

    @classmethod
    def of(cls, container: Container, components: int | None, convert: bool = True,
           filters: list[tuple[int, int, tuple[int, int, int]]] | None = None) -> OutputPlan:
        """The plan of the file (`filters`: its planes' `edge_filters`, if the caller has
        them)."""
        header = container.header
        h, w = header.height, header.width
        ranks = [p.rank if components is None else min(p.rank, components)
                 for p in container.planes]
        full = [p for p in container.planes if p.height == h and p.width == w]
        # (by size, not `not in full`: a dataclass's == compares every field)
        chroma = [p for p in container.planes if p.height != h or p.width != w]
        ycc = header.colour == COLOUR_YCBCR
        compiled = kernels.get()
        # the fused paths are 8-bit's (16-bit Y'CbCr is rounded into the output, then converted)
        colour = (YCC_MULTIPLIERS
                  if compiled is not None and ycc and header.dtype == np.uint8 else None)
        if filters is None:
            filters = edge_filters(header, container.planes)
        deblock = bool(filters)
        restore = bool(container.restoration)
        fused = colour is not None and all((2 * p.height, 2 * p.width) == (h, w) for p in chroma)
        direct = fused and bool(chroma) and container.planes[0].layout == LAYOUT_PATCH \
            and convert and not deblock and not restore
        filter_convert = deblock and convert and colour is not None and not restore \
            and fusable_filters(filters)
        out_bytes = h * w * header.channels * header.dtype.itemsize
        return cls(ranks, bands_for(full, h, w), pass_budget(out_bytes), full, chroma, ycc,
                   fused, direct, deblock, filter_convert, restore, compiled, colour, filters)

    def chroma_jobs(self, container: Container) -> bool:
        """Whether the chroma planes decode as jobs beside Y's set-up (`render_image`'s plane
        path only: asked there, not of every file, since it sums every block's size)."""
        return self.direct and (sum(factor_bytes(container, p) for p in self.chroma)
                                <= band_sizes.JOB_BYTES)

    def order(self, planes: list[Plane]) -> list[Plane]:
        """The planes in decoding order: chroma first on the direct path (Y' needs it)."""
        return sorted(planes, key=lambda p: self.direct and p in self.full)


def render_image(container: Container, components: int | None = None,
                 threads: int | None = None, colour: bool = True) -> np.ndarray:
    """The decoded image (h, w, c): band by band, every plane at once, where `stream` takes
    the file (no whole chroma plane held); else plane after plane and band by band (see
    `OutputPlan` for the paths), so that large factors are in memory one plane at a time.

    colour=False (8-bit Y'CbCr only): the samples before the colour conversion, deblocked and
    restored as the file says, without residual blocks: what the encoder measures its filter on."""
    header = container.header
    shape = (header.height, header.width, header.channels)
    if colour:
        from .stream import ArraySink, BandRenderer

        renderer = BandRenderer.prepare(container, components)
        if renderer is not None:  # the blocks read and checked: now the output
            out = base_page_array(shape, header.dtype)
            renderer.run(ArraySink(out), threads)
            return out
    plan = OutputPlan.of(container, components, convert=colour)
    out = base_page_array(shape, header.dtype)
    scratch: dict[str, np.ndarray] = {}  # factor buffers shared by the planes
    halves: dict[int, np.ndarray] = {}  # whole chroma planes kept for the fused conversion
    prepared: dict[int, PlaneReconstructor] = {}
    if plan.chroma_jobs(container):
        def prepare_luma() -> None:
            prepared[0] = PlaneReconstructor(container, container.planes[0], plan.ranks[0],
                                             plan.bands, plan.budget, {}, plan.compiled)
        jobs = [prepare_luma] + [partial(render_chroma, container, plan, p, out, halves, {},
                                         threads) for p in plan.chroma]
        run_bands(lambda i: jobs[i](), len(jobs), threads)
    for p in plan.order(container.planes):
        if p in plan.full:
            rows = prepared.pop(p.index, None) or PlaneReconstructor(
                container, p, plan.ranks[p.index], plan.bands, plan.budget, scratch,
                plan.compiled)
            render_full_plane(rows, plan, header, out, halves, threads)
        elif p.index not in halves:
            render_chroma(container, plan, p, out, halves, scratch, threads)
    if plan.filter_convert:
        assert plan.compiled is not None and plan.colour is not None
        deblock_convert(out, header, container.planes, plan.compiled, plan.colour, halves,
                        threads)
    else:
        # the filters work on bytes of Cb and Cr
        if halves and (plan.deblock or plan.restore or not colour):
            double_chroma(out, plan, halves, threads)
            halves.clear()
        if plan.deblock:
            deblock_image(out, header, container.planes, plan.compiled, threads)
        if plan.restore:
            restore_image(out, container, plan.compiled, threads)
        if not colour:
            assert not plan.direct and header.dtype == np.uint8
            return out
        if plan.ycc and not plan.direct:
            convert_colour(out, plan, halves, threads)
    if container.residuals and all(r == p.rank for r, p in zip(plan.ranks, container.planes)):
        # Version 2: the residual corrects the full reconstruction (spec §5.3), whose samples
        # must be finite first (the verdict of §5.2, as the reference decoder gives it).
        if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
            raise SvdiError(f"samples overflow {header.dtype} (sample scale {header.scale})")
        apply_residuals(container, out)
    elif container.residuals:  # a preview: the channels with no layer are whole
        apply_bare(container, out)
    return out


def render_chroma(container: Container, plan: OutputPlan, p: Plane, out: np.ndarray,
                  halves: dict[int, np.ndarray], scratch: dict[str, np.ndarray],
                  threads: int | None) -> None:
    """Subsampled chroma plane p as a whole float32 plane (a quarter size): kept in `halves`
    for the fused conversion, or upsampled into the output with Pillow's bilinear filter."""
    rows = PlaneReconstructor(container, p, plan.ranks[p.index],
                              bands_for([p], p.height, p.width), plan.budget, scratch,
                              plan.compiled)
    plane = np.empty((p.height, p.width), dtype=np.float32)
    rows.each_band(partial(rows.store_floats, plane), threads)
    del rows  # the factors go before the plane is doubled
    if plan.fused:
        halves[p.index] = plane
        return
    small = Bilinear(plane, out.shape[0], out.shape[1])

    def upsample(i: int) -> None:
        y0, y1 = plan.bands[i]
        resampled_chroma(small, out[y0:y1], p.index, container.header, y0, y1, plan.compiled)
    run_bands(upsample, len(plan.bands), threads)


def resampled_chroma(resampler: Resampler, out: np.ndarray, c: int, header: Header,
                     y0: int, y1: int, compiled: ModuleType | None) -> None:
    """Rows y0..y1 of a chroma plane upsampled by `resampler` into channel c of out's rows
    0..y1 - y0: `chroma_samples(resampler.rows(y0, y1), ...)`, by the compiled kernel for
    8-bit samples (the sizes the fused kernels do not take: an odd width or height, whose
    numpy passes took most of such a photo's decode), the same bytes."""
    if compiled is None or out.dtype != np.uint8 or resampler.kind != "bilinear":
        chroma_samples(resampler.rows(y0, y1), out, c, header, (0, y1 - y0))
        return
    lo, hi = resampler.source_rows(y0, y1)
    src = np.ascontiguousarray(resampler.source(lo, hi), dtype=np.float32)
    compiled.resample_chroma(out, c, y0, y1, src, lo, *resampler.tables)


def chroma_samples(chroma: np.ndarray, out: np.ndarray, c: int, header: Header,
                   band: tuple[int, int]) -> None:
    """Upsampled chroma rows (float32, centred on 0; consumed) rounded into rows [y0, y1) of
    channel c of the output."""
    y0, y1 = band
    if out.dtype == np.uint16:  # version 3
        out[y0:y1, :, c] = integer_samples(chroma, header.scale, out.dtype, CHROMA_OFFSET_16)
        return
    chroma += np.float32(CHROMA_OFFSET + 0.5)
    np.clip(chroma, 0, 255, out=chroma)
    out[y0:y1, :, c] = chroma.astype(np.uint8)


def render_full_plane(rows: PlaneReconstructor, plan: OutputPlan, header: Header,
                      out: np.ndarray, halves: dict[int, np.ndarray],
                      threads: int | None) -> None:
    """A full-size plane, band by band, into its channel of the output (or, on the direct
    path, Y' straight to RGB with the kept chroma)."""
    c = rows.plane.index
    if plan.direct and c == 0:
        assert plan.colour is not None  # direct implies fused, which implies colour
        store = partial(rows.store_rgb, out, halves[1], halves[2], plan.colour)
    elif header.dtype == np.uint8:
        store = partial(rows.store_bytes, out, c, CHROMA_OFFSET if plan.ycc and c in (1, 2) else 0.0)
    else:
        offset = CHROMA_OFFSET_16 if plan.ycc and c in (1, 2) else 0
        store = partial(store_scaled, rows, out, c, header.scale, offset)
    rows.each_band(lambda i: store(plan.bands[i], i), threads)


def store_scaled(rows: PlaneReconstructor, out: np.ndarray, c: int, scale: float, offset: int,
                 band: tuple[int, int], i: int) -> None:
    """Band i of a plane of 16-bit or float samples: scaled, rounded and clamped to the type
    (offset: 16-bit Y'CbCr's chroma, centred on 32768)."""
    y0, y1 = band
    f = rows.float_rows(i)
    x = rows.xs
    if out.dtype.kind == "f":
        out[y0:y1, x, c] = float_samples(f, scale, out.dtype)
    else:
        out[y0:y1, x, c] = integer_samples(f, scale, out.dtype, offset)


def float_samples(f: np.ndarray, scale: float, dtype: np.dtype = np.dtype(np.float32)
                  ) -> np.ndarray:
    """Plane values as float32 (or float64) samples, not finite where they overflow."""
    if dtype == np.float64:
        return f.astype(np.float64) * scale
    # Near float32's limits (tiny or huge scales) compute in float64 and saturate:
    # an honest file of values close to 3.4e38 may overshoot by a quantizer step.
    if needs_float64(scale) or scale > 2.0 ** 64:
        return np.clip(f.astype(np.float64) * scale, -_FMAX, _FMAX)
    return f * np.float32(scale)


def check_image(container: Container) -> None:
    """Raise SvdiError wherever `render_image` (and so `decode`) would, without keeping the
    image: every band of every plane reconstructed and checked as the render checks it (the
    same bands, paths and arithmetic), float32 samples scaled as they would be stored."""
    header = container.header
    plan = OutputPlan.of(container, None)
    floats = header.dtype.kind == "f"
    scratch: dict[str, np.ndarray] = {}
    for p in container.planes:
        bands = plan.bands if p in plan.full else bands_for([p], p.height, p.width)
        rows = PlaneReconstructor(container, p, p.rank, bands, plan.budget, scratch,
                                  plan.compiled)

        def check(i: int, rows: PlaneReconstructor = rows) -> None:
            if not floats:
                rows.matrix(i)  # raises where the reconstruction overflows
            elif not np.all(np.isfinite(float_samples(rows.float_rows(i), header.scale,
                                                      header.dtype))):
                raise SvdiError(f"samples overflow {header.dtype} (sample scale {header.scale})")
        rows.each_band(check, None)


def double_chroma(out: np.ndarray, plan: OutputPlan, halves: dict[int, np.ndarray],
                  threads: int | None) -> None:
    """The kept chroma planes doubled and rounded into channels 1 and 2 of the output, band by
    band (compiled: the fused path keeps them only with the kernels), as `render_chroma`
    upsamples them on the other paths."""
    compiled = plan.compiled
    assert compiled is not None

    def double(i: int) -> None:
        y0, y1 = plan.bands[i]
        compiled.double_chroma(out, y0, y1, halves[1], halves[2])
    run_bands(double, len(plan.bands), threads)


def convert_colour(out: np.ndarray, plan: OutputPlan, halves: dict[int, np.ndarray],
                   threads: int | None) -> None:
    """Y'CbCr bytes in the output -> RGB in place, band by band: compiled (doubling the kept
    chroma on the way when fused), or by `codec.colour.ycc_to_rgb`, the same bytes. 16-bit samples (version 3)
    by the compiled kernel or `codec.colour.wide_ycc_to_rgb`, the same integers."""
    def convert(i: int) -> None:
        convert_rows(out, *plan.bands[i], plan, halves)
    run_bands(convert, len(plan.bands), threads)


def convert_rows(out: np.ndarray, y0: int, y1: int, plan: OutputPlan,
                 halves: dict[int, np.ndarray], pad: int = -1) -> bool:
    """Rows [y0, y1) of the output from Y'CbCr to RGB in place (`convert_colour`'s band).
    pad (0..255, an RGB output of 4 channels: Pillow's RGBX): the compiled conversion writes
    it into channel 3 as it stores each pixel; True if it did (else channel 3 is untouched)."""
    compiled, colour = plan.compiled, plan.colour
    if out.dtype == np.uint16:
        if compiled is not None:
            compiled.convert_wide_ycc(out, y0, y1, np.array(YCC16_INVERSE, dtype=np.int64))
        else:
            wide_ycc_to_rgb(out[y0:y1])
        return False
    if compiled is not None and colour is not None:
        if halves:
            compiled.upsample_ycc(out, y0, y1, halves[1], halves[2], colour)
            return False
        compiled.convert_ycc(out, y0, y1, colour, pad)
        return 0 <= pad <= 255 and out.shape[2] == 4
    out[y0:y1, :, :3] = ycc_to_rgb(out[y0:y1, :, :3])
    return False
