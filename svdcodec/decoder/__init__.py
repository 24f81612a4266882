"""The decoder: bytes -> chunks -> blocks -> symbols -> integers -> factors -> matrices -> planes
-> image, band by band (`render` -> `plane` -> `factors`); `reference` is the same, whole-array.

`decode` and `read_factors` are the package's public functions.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from ..codec import aq
from ..errors import SvdiError
from ..format import (
    LAYOUT_PLAIN,
    Container,
    Header,
    Plane,
    read_prefix,
    unpack,
)
from ..format.inputs import FileInput, file_bytes, is_path
from ..runtime import band_sizes, kernels
from ..runtime.threads import QuietSerial, single_threaded
from .plane import (
    PlaneReconstructor,
    blas_takes_dense_bands,
    kernel_multiplies,
    pass_budget,
)
from .reference import factor_integers
from .render import check_image, render_image
from .residuals import (
    apply_bare,
    apply_group,
    apply_residuals,
    arrived_blocks,
    band_bounds,
    bare_channels,
    reduce_bare,
)


@dataclass
class PlaneFactors:
    """Dequantized factors of one plane's matrix: matrix ~= U @ diag(S) @ Vt.

    For layout "plain" the matrix is the plane itself; for "patch" its rows are the p x p patches
    in raster order. Values are in sample units (S includes the header's scale) for images without
    a colour transform and for 16-bit Y'CbCr (its units, chroma centred on 0), and in 8-bit
    Y'CbCr units (chroma centred on 0) for 8-bit RGB(A). S is descending-ish singular values:
    for "plain" the stored ones; for "patch" the rows of Vt are scaled to unit norm and S
    carries their scale (see `unit_rows`).
    """

    U: np.ndarray  # (m, r) float32
    S: np.ndarray  # (r,) float32
    Vt: np.ndarray  # (r, n) float32
    layout: str
    plane_shape: tuple[int, int]
    #: Centred files (encode(centre=True)): the matrix's column means (n,) float32, in the
    #: units of S; matrix ~= U @ diag(S) @ Vt + mean, so U, S, Vt are its PCA. None otherwise.
    mean: np.ndarray | None = None


def _pixel_limits(max_pixels: int | None | bool) -> tuple[int | None, int | None, str]:
    """(warn above, refuse above, what to say when refusing) for a max_pixels argument.

    True follows Pillow's Image.open: warn above PIL.Image.MAX_IMAGE_PIXELS, refuse above twice
    that; an int is a hard limit; None (or False) none.
    """
    if max_pixels is False or max_pixels is None:
        return None, None, ""
    if max_pixels is True:
        limit = Image.MAX_IMAGE_PIXELS
        if limit is None:
            return None, None, ""
        return int(limit), 2 * int(limit), (
            " (twice PIL.Image.MAX_IMAGE_PIXELS): could be a decompression bomb; to decode it, "
            "pass max_pixels=None or a larger max_pixels= (svdi-decode --max-pixels 0 or N)")
    if isinstance(max_pixels, (int, np.integer)) and max_pixels >= 0:
        return None, int(max_pixels), f" given by max_pixels={int(max_pixels)}"
    raise SvdiError(f"max_pixels must be True, None or a pixel count, got {max_pixels!r}")


#: decode's `truncated=` values: what to do with a file that ends early
TRUNCATED_CHOICES = ("raise", "fill")


def _load(data: bytes, max_pixels: int | None | bool, components: int | None,
          truncated: str = "raise") -> Container:
    if components is not None and components < 0:
        raise SvdiError("components must be non-negative")
    if truncated not in TRUNCATED_CHOICES:
        raise SvdiError(f"truncated must be one of {', '.join(map(repr, TRUNCATED_CHOICES))}, "
                        f"got {truncated!r}")
    warn, refuse, why = _pixel_limits(max_pixels)
    # The pixel limit is checked on the HEAD chunk, before any factor block is decompressed.
    container = unpack(data, max_pixels=refuse, limit_note=why,
                       truncated=truncated == "fill")
    h = container.header
    if warn is not None and h.counted_pixels > warn:
        warnings.warn(f"image of {h.width}x{h.height} = {h.width * h.height} pixels"
                      f"{h.counted_note()} exceeds "
                      f"PIL.Image.MAX_IMAGE_PIXELS = {warn}: could be a decompression bomb "
                      "(max_pixels=None silences this)", Image.DecompressionBombWarning,
                      stacklevel=3)
    return container


def read_metadata(data: FileInput) -> dict[str, Any]:
    """The metadata stored in .svdi bytes, without decoding any pixels (spec §1.1).

    Returns only what the file holds, of: "exif" (the TIFF structure, without Pillow's
    "Exif\\0\\0" prefix), "icc_profile", "xmp" (bytes), "dpi" ((x, y) dots per inch) and
    "text" ({keyword: str}). Reads the chunks up to the first factor block, checking each;
    raises SvdiError for a malformed file or metadata chunk. `data` as `decode` takes it; of a
    path only the chunks up to the first factor block are read.
    """
    if is_path(data):
        with open(data, "rb") as fp:
            _, _, metadata = read_prefix(fp)
    else:
        _, _, metadata = read_prefix(io.BytesIO(file_bytes(data, "read_metadata")))
    return metadata.as_dict()


def decode(data: FileInput, *, components: int | None = None, reduce: int = 1,
           max_pixels: int | None | bool = True, truncated: str = "raise") -> np.ndarray:
    """Decode an .svdi file to an array of shape (h, w) or (h, w, c) and the stored sample type.

    data: the file's bytes (bytes, bytearray, memoryview, mmap, a numpy uint8 array: any buffer
    of bytes), a path (str or os.PathLike) or a binary file object (read from its position to
    its end). The argument's type decides, never its content: bytes are always the file's
    contents and a str always a path. Anything else is a TypeError (an SvdiError too) naming
    what is accepted.

    components: decode only the first k components of every plane (a preview).
    reduce: 2, 4 or 8 decode at that fraction of the size, ceil(h / reduce) x ceil(w / reduce)
    (each pixel the mean of a reduce x reduce cell), at a fraction of the work: thumbnails.
    max_pixels: True (default) does what Pillow's Image.open does with PIL.Image.MAX_IMAGE_PIXELS
    (read at call time): above it a DecompressionBombWarning, above twice it SvdiError. A number
    refuses images of more pixels than that; None decodes any size.
    truncated: what to do with a file that ends early (a download cut short). "raise" (the
    default): SvdiError saying where it ends. "fill": what arrived, as Pillow gives a PNG or
    a progressive JPEG with ImageFile.LOAD_TRUNCATED_IMAGES: the first k components of
    every plane whose blocks all arrived (exactly `decode(whole, components=k)`, but for a
    channel with no layer, such as an exact alpha: spec §5.3, its rows whose residual blocks
    arrived); with all of them, the residual blocks (version 2) that arrived applied to their
    rows, the other rows left as the low-rank layer; before any component, zeros (black,
    transparent).
    A file that ends before its HEAD and PLAN chunks are whole still raises; every chunk that
    arrived whole is checked as in a whole file (CRCs, limits).
    """
    if reduce != 1:
        from .reduced import FACTORS  # thumbnails only

        if reduce not in FACTORS:
            raise SvdiError(f"reduce must be one of {', '.join(map(str, FACTORS))}, "
                            f"got {reduce!r}")
    container = _load(file_bytes(data, "decode"), max_pixels, components, truncated)
    return decode_container(container, components=components, reduce=reduce)


def decode_container(container: Container, *, components: int | None = None,
                     reduce: int = 1) -> np.ndarray:
    """`decode` of a file already unpacked (its structure checked); of a file that ends early
    (`unpack(..., truncated=True)`), what arrived (`decode`'s truncated="fill")."""
    if container.truncation is not None:
        return _decode_arrived(container, components, reduce)
    with rendering(container.header, blas=reduce != 1 or uses_blas(container)):
        if reduce == 1:
            pixels = render_image(container, components)
        else:
            from .reduced import render_reduced  # thumbnails only

            pixels = render_reduced(container, reduce, components)
            reduce_bare(container, pixels, reduce)
    if pixels.dtype.kind == "f" and not np.all(np.isfinite(pixels)):
        raise SvdiError(f"samples overflow {pixels.dtype} (sample scale {container.header.scale})")
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def _decode_arrived(container: Container, components: int | None, reduce: int) -> np.ndarray:
    """What a file that ends early holds: the components every plane has whole, as a
    preview of that many; with every factor block in, the image with the residual blocks
    that arrived applied to their rows, the other rows the uncorrected layer (spec §5.3).
    Nothing allocated beyond the output and what decoding the arrived blocks allocates."""
    truncation = container.truncation
    assert truncation is not None
    header = container.header
    whole = truncation.components_in(container.planes)
    if whole == 0:
        # No component of some plane: nothing of the image arrived. Zeros, as Pillow leaves
        # a PNG that ends before its first row.
        h, w = header.height, header.width
        if reduce != 1:
            h, w = -(-h // reduce), -(-w // reduce)
        shape = (h, w) if header.channels == 1 else (h, w, header.channels)
        return np.zeros(shape, dtype=header.dtype)
    if whole is not None:
        components = whole if components is None else min(components, whole)
    layer = replace(container, residuals=[], truncation=None)
    pixels = decode_container(layer, components=components, reduce=reduce)
    full = components is None or all(components >= p.rank for p in container.planes)
    if container.residuals and not (full and reduce == 1):
        # a preview or a thumbnail: the arrived rows of the channels with no layer, which do
        # not depend on the other planes' components (spec §5.3)
        out = pixels.reshape(*pixels.shape[:2], header.channels)
        for c in bare_channels(container):
            rows = truncation.residual_rows[c]
            if rows and reduce == 1:
                apply_bare(container, out, [c], rows)
            elif rows:
                reduce_bare(container, out, reduce, [c], rows)
    elif container.residuals:  # as render_image: every rank
        out = pixels.reshape(header.height, header.width, header.channels)
        for c, rows in enumerate(truncation.residual_rows):
            if not rows:
                continue
            # Channel c's rows whose residual blocks arrived (and so its references': spec
            # §4.1, a reference's block of the same rows comes first), corrected as in the
            # whole file; the residual phase run on those rows alone.
            arrived = replace(container, header=replace(header, height=rows), truncation=None,
                              residuals=arrived_blocks(container, c, rows))
            apply_group(arrived, out[:rows], band_bounds(arrived, [c]), [c])
    return pixels


def rendering(header: Header, blas: bool = True) -> AbstractContextManager[None]:
    """How the decoder runs: a hostile step, singular value or scale can overflow float32, so
    no warnings (the render checks); BLAS stays single-threaded throughout, as in the encoder
    (see runtime.threads), where the render calls it (`blas`, see `uses_blas`: elsewhere
    reading and setting OpenBLAS's thread count, three foreign calls, is all a small image's
    decode would do with it, twice through Pillow); small images decode in this thread
    alone. Without `blas`, one context manager object (`QuietSerial`), not a generator's."""
    quiet = QuietSerial(header.width * header.height * header.channels
                        <= band_sizes.SERIAL_SAMPLES)
    return _blas_single_threaded(quiet) if blas else quiet


@contextmanager
def _blas_single_threaded(inner: QuietSerial) -> Iterator[None]:
    with single_threaded(), inner:
        yield


def uses_blas(container: Container) -> bool:
    """Whether rendering the file whole (reduce=1) may call BLAS: not when the compiled
    kernels multiply every plane (`kernel_multiplies`: every plane of the encoder's version 5
    files but the plain layouts), and none of them sends its dense bands to BLAS
    (`blas_takes_dense_bands`: patch 16 and 32 at ranks of 64 and more)."""
    compiled = kernels.get()
    return not all(kernel_multiplies(p, compiled) and not blas_takes_dense_bands(p, p.rank)
                   for p in container.planes)


def factor_scale(header: Header) -> float:
    """What read_factors multiplies S by: HEAD's scale, in which samples are the plane values
    times it (16-bit Y'CbCr, version 3, and every colour-0 type but uint8), and 1 for uint8,
    whose samples are the plane values themselves (spec §2: its scale is not applied; 8-bit
    Y'CbCr is then in its own units)."""
    return 1.0 if header.dtype == np.uint8 else header.scale


def unit_rows(plane: Plane, sigma: np.ndarray, Vt: np.ndarray,
              scale: float | np.floating = 1.0) -> np.ndarray:
    """S = sigma x the sample `scale` (float32), for a patch layout with its rows of Vt
    (float32, in place) scaled to unit norm and S carrying their norms. A patch layout's
    stored sigma is only the decoder's weight (spec §6, "Stored σ"): the reference encoder
    stores the patch mean's sigma / 0.7 (its finer step) and refits the others, which scales
    the dequantized V by the inverse. Moving that scale into S gives back singular values of
    the stored product; U @ diag(S) @ Vt is the same matrix to float32 rounding. A row that is
    all zeros, or whose S would not be finite in float32 (a hostile file's), keeps the stored
    weight, so that read_factors refuses exactly the files it did."""
    plain = sigma * np.float32(scale)
    if plane.layout == LAYOUT_PLAIN or not sigma.size:
        return plain
    norms = np.sqrt(np.sum(np.square(Vt, dtype=np.float64), axis=1))
    with np.errstate(all="ignore"):
        moved = (sigma * norms).astype(np.float32) * np.float32(scale)
    rows = (norms > 0) & np.isfinite(moved)
    Vt[rows] = (Vt[rows] / norms[rows, None]).astype(np.float32)
    return np.where(rows, moved, plain)


def kept_sigma(container: Container, plane: Plane) -> np.ndarray:
    """The plane's S as read_factors gives it, float32, before the sample scale: for a patch
    layout that reads its V factor (p x p rows) alone, never U nor an adapted plane's map,
    whose memory grows with the image (svdi-info and stored_spectrum take files of any size)."""
    sigma = container.singular_values(plane.index)[:plane.rank].astype(np.float32)
    if plane.layout == LAYOUT_PLAIN or not sigma.size:
        return sigma
    with np.errstate(all="ignore"):
        integers = factor_integers(container, plane, "V", plane.rank)
        Vt = np.ascontiguousarray(
            (integers.astype(np.float32) * (plane.step / sigma).astype(np.float32)).T)
        return unit_rows(plane, sigma, Vt)


def unpack_checked(data: bytes, max_pixels: int | None = None, truncated: str = "raise"
                   ) -> Container:
    """The file unpacked and its structure checked, any size (the caller checked it), or at
    most `max_pixels` pixels (refused on its HEAD chunk, before any block is read).
    truncated: as `decode`'s ("fill": a file that ends early is taken as far as it arrived,
    for `decode_container`)."""
    return _load(data, max_pixels, None, truncated)


def read_factors(data: FileInput, *, max_pixels: int | None | bool = True) -> list[PlaneFactors]:
    """Each plane's dequantized U_r, S_r, V_r^T, for people who want the factors themselves.

    Refuses every file `decode` refuses (every band is reconstructed and checked as decode
    checks it, so it takes about a decode's time), and also a file whose factors are not
    finite in float32 (SvdiError), which decode may accept: its samples can be finite where
    a factor overflows (a huge sigma times zero integers). Memory: the factors (float32, the
    output; a centred plane's n column means whatever its rank) plus the decoder's bounded
    pieces, sized from the factors' bytes (spec §5, Resources). `data` as `decode` takes it.

    Version 2 files: the same dequantized factors (the binary32 formula of version 1; the exact
    integer weights and the residual blocks make the samples, not the factorization). Their
    residual blocks are read and checked as decode checks them; for float32 samples, whose
    residual can overflow, that takes decoding the image (memory: + the output's size)."""
    container = _load(file_bytes(data, "read_factors"), max_pixels, None)
    header = container.header
    scale = factor_scale(header)
    output = sum(4 * (sum(p.matrix_shape) + 1) * p.rank for p in container.planes)
    out = []
    with np.errstate(all="ignore"), single_threaded():
        if container.residuals and header.dtype.kind == "f":
            # A float32 residual can make a sample overflow (spec §5.3): decode's verdict
            # needs the samples, so the image is decoded (its memory: + the output).
            render_image(container)
        else:
            check_image(container)
            apply_residuals(container, None)  # the residual blocks' streams and |q| rule
        compiled = kernels.get()
        scratch: dict[str, np.ndarray] = {}
        for plane in container.planes:
            rows = PlaneReconstructor(container, plane, plane.rank, [(0, plane.height)],
                                      pass_budget(output), scratch, compiled)
            sigma = container.singular_values(plane.index)[:plane.rank].astype(np.float32)
            inv = (plane.step / sigma).astype(np.float32) if sigma.size else sigma
            U = rows.factor("U", inv)
            row_m = rows.multipliers()
            if row_m is not None:  # version 6 (§5.5): row p of components >= 1 times M_p
                U[:, 1:] *= (row_m.astype(np.float32) / np.float32(aq.UNIT))[:, None]
            Vt = np.ascontiguousarray(rows.factor("V", inv).T)
            S = unit_rows(plane, sigma, Vt, scale)
            if not all(np.all(np.isfinite(x)) for x in (U, S, Vt)):
                raise SvdiError(f"plane {plane.index}: factors overflow float32 (step "
                                f"{plane.step}, singular values or scale out of range)")
            layout = "plain" if plane.layout == LAYOUT_PLAIN else f"patch{plane.patch}"
            mean = container.column_means(plane.index)
            if mean is not None:
                mean = mean * np.float32(scale)
                if not np.all(np.isfinite(mean)):
                    raise SvdiError(f"plane {plane.index}: factors overflow float32 (column "
                                    f"means times the sample scale {scale})")
            out.append(PlaneFactors(U, S, Vt, layout, (plane.height, plane.width), mean))
    return out
