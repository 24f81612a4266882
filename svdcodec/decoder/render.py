"""Output: decoded bands become pixels (spec §5 steps 5-6): rounding to the sample type, chroma
upsampling and the Y'CbCr -> RGB conversion, exactly as Pillow does them."""

from __future__ import annotations

from functools import partial

import numpy as np
from PIL import Image

from ..codec.colour import needs_float64
from ..codec.resample import Bilinear
from ..format import COLOUR_YCBCR, LAYOUT_PATCH, Container, Plane
from ..runtime import band_sizes, kernels
from ..runtime.threads import run_bands
from .factors import factor_bytes
from .plane import PlaneReconstructor, bands_for, pass_budget

_FMAX = float(np.finfo(np.float32).max)


def render_image(container: Container, components: int | None = None,
           threads: int | None = None) -> np.ndarray:
    """The decoded image (h, w, c), plane after plane and band by band (see the module
    docstring). Y'CbCr planes are rounded to uint8 into the output, then converted in place
    (compiled, with halved chroma and Y' in patches: chroma first, then each Y' band converted
    as it is stored), so large factors are in memory one plane at a time."""
    header = container.header
    h, w = header.height, header.width
    ranks = [p.rank if components is None else min(p.rank, components) for p in container.planes]
    full = [p for p in container.planes if (p.height, p.width) == (h, w)]
    bands = bands_for(full, h, w)
    out = np.empty((h, w, header.channels), dtype=header.dtype)
    budget = pass_budget(out.nbytes)
    scratch: dict[str, np.ndarray] = {}  # factor buffers shared by the planes
    ycc = header.colour == COLOUR_YCBCR
    dtype, tiny = header.dtype, needs_float64(header.scale)

    compiled = kernels.get(h * w * header.channels)
    colour = kernels.colour_constants() if compiled is not None and ycc else None
    chroma = [p for p in container.planes if p not in full]  # subsampled
    # Compiled: the chroma planes are kept whole and doubled during the colour conversion.
    fused = colour is not None and all((2 * p.height, 2 * p.width) == (h, w) for p in chroma)
    # ... and when Y' is in patches, each Y' band is converted as it is stored: out is written
    # once, never read back (that stage 0.038 -> 0.029 s on 19 MP, two threads).
    direct = fused and bool(chroma) and container.planes[0].layout == LAYOUT_PATCH
    halves: dict[int, np.ndarray] = {}

    def subsampled(p: Plane, scratch: dict[str, np.ndarray]) -> None:
        """Chroma plane p: a whole float32 plane (a quarter size), kept for the compiled
        conversion or doubled into out."""
        c = p.index
        src = PlaneReconstructor(container, p, ranks[c], bands_for([p], p.height, p.width), budget,
                        scratch, compiled)
        plane = np.empty((p.height, p.width), dtype=np.float32)

        def fill(i: int, src: PlaneReconstructor = src) -> None:
            y0, y1 = src.bands[i]
            if compiled is not None and src.patch:
                compiled.store_floats(src.matrix(i), plane, y0, y1, src.patch, src.per_row)
            else:
                plane[y0:y1, src.xs] = src.float_rows(i)
        src.each_band(fill, threads)
        del fill, src  # the factors go before the plane is doubled
        if fused:
            halves[c] = plane
            return
        small = Bilinear(plane, h, w)

        def upsample(i: int) -> None:
            y0, y1 = bands[i]
            chroma = small.rows(y0, y1)
            chroma += np.float32(128.5)
            np.clip(chroma, 0, 255, out=chroma)
            out[y0:y1, :, c] = chroma.astype(np.uint8)
        run_bands(upsample, len(bands), threads)

    prepared: dict[int, PlaneReconstructor] = {}
    if direct and sum(factor_bytes(container, p) for p in chroma) <= band_sizes.JOB_BYTES:
        # Independent work for the pool: Y' factors decompressed and indexed while the two
        # chroma planes decode (each task runs its own bands; each has its own scratch, so
        # only when the chroma factors are small: a hostile file of dense blocks would need
        # each plane's pass buffer at once).
        def prepare() -> None:
            prepared[0] = PlaneReconstructor(container, container.planes[0], ranks[0], bands, budget, {}, compiled)
        jobs = [prepare] + [partial(subsampled, p, {}) for p in chroma]
        run_bands(lambda i: jobs[i](), len(jobs), threads)

    for p in sorted(container.planes, key=lambda p: direct and p in full):  # direct: chroma first
        c = p.index
        if p not in full:
            if c not in halves:
                subsampled(p, scratch)
            continue
        rows = prepared.pop(c, None) or PlaneReconstructor(container, p, ranks[c], bands, budget, scratch,
                                                  compiled)

        def band(i: int, rows: PlaneReconstructor = rows, c: int = c) -> None:
            y0, y1 = bands[i]
            x = rows.xs
            if dtype == np.uint8:
                offset = 128.0 if ycc and c in (1, 2) else 0.0
                if compiled is None:
                    out[y0:y1, x, c] = rows.uint8(i, offset)
                elif direct and c == 0:
                    compiled.store_rgb(rows.matrix(i), out, y0, y1, halves[1], halves[2],
                                       colour, rows.patch, rows.per_row)
                else:
                    compiled.store_bytes(rows.matrix(i), out, y0, y1, x.start, c,
                                         np.float32(offset), rows.patch, rows.per_row)
                return
            f = rows.float_rows(i)
            if dtype.kind == "f":
                # Near float32's limits (tiny or huge scales) compute in float64 and saturate:
                # an honest file of values close to 3.4e38 may overshoot by a quantizer step.
                out[y0:y1, x, c] = (np.clip(f.astype(np.float64) * header.scale, -_FMAX, _FMAX)
                                    if tiny or header.scale > 2.0 ** 64
                                    else f * np.float32(header.scale))
            else:
                top = float(np.iinfo(dtype).max)
                out[y0:y1, x, c] = np.clip(f.astype(np.float64) * header.scale + 0.5, 0, top)
        rows.each_band(band, threads)
        del rows

    if ycc and not direct:
        def convert(i: int) -> None:
            y0, y1 = bands[i]
            if compiled is not None and colour is not None:
                if halves:
                    compiled.upsample_ycc(out, y0, y1, halves[1], halves[2], colour)
                else:
                    compiled.convert_ycc(out, y0, y1, colour)
                return
            planes = [Image.fromarray(np.ascontiguousarray(out[y0:y1, :, c])) for c in range(3)]
            rgb = Image.merge("YCbCr", planes).convert("RGB")
            out[y0:y1, :, :3] = np.frombuffer(rgb.tobytes(), np.uint8).reshape(y1 - y0, w, 3)
        run_bands(convert, len(bands), threads)
    return out
