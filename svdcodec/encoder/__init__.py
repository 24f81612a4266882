"""The encoder: image -> planes -> matrices -> factors -> integers -> symbols -> blocks -> bytes.

`encode` checks the options and runs the `schedule`; each plane is factorized and coded by
`plane` (through `source`, the planes computed band by band from the pixels, and `blocks`);
`tuning` holds every constant that changes the bytes. The factorization does not depend on the
quantizer step, so rate control (target PSNR, byte budget) factorizes once and only
re-quantizes while it searches for the step.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Collection, Sequence
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from ..codec.aq import COMPONENTS as AQ_COMPONENTS
from ..codec.residual import ResidualRangeError
from ..errors import SvdiError
from ..format import (
    LAYOUT_PATCH,
    LAYOUT_PLAIN,
    PATCH_SIZES,
    insert_after_head,
    metadata_chunks,
)
from ..format.recompress import recompress_blocks
from ..modes import ImageRows, Pixels, as_pixels, pixel_rows
from ..runtime import band_sizes
from ..runtime.threads import serial, single_threaded
from . import tuning
from .plane import RankRule
from .residual import (
    ResidualRequest,
    bare_residual_bytes,
    integer_spacing,
    layer_source,
    on_a_grid,
    residual_bytes_of,
    residual_request,
    with_residuals,
)
from .schedule import Encoder
from .source import image_header
from .tuning import (
    AQ_FINEST_SEARCHED_STEP,
    AQ_RDOQ_LAMBDA,
    AQ_RDOQ_ROUNDING,
    AQ_RDOQ_ROUNDS,
    AUTO_LAYOUTS,
    DEFAULT_EFFORT,
    DEFAULT_PATCH,
    DEFAULT_QUALITY,
    DRIFT_STEP_FACTOR,
    DRIFT_TRIES,
    EFFORT_LEVELS,
    EXACT_WEIGHT_ERROR,
    FINEST_QUALITY,
    FINEST_SEARCHED_STEP,
    LOSSLESS_WIDE_QUALITY,
    STEP_MIN,
    STEP_SCALE,
    SUBSAMPLE_FROM_STEP,
    ZSTD_LEVEL,
)

__all__ = ["CODING_OPTIONS", "METADATA_OPTIONS", "encode", "encode_options", "on_off",
           "parse_layout", "step_for_quality"]


def step_for_quality(quality: float) -> float:
    """Quantizer step in 8-bit units for quality 1..100; strictly decreasing in quality."""
    if isinstance(quality, bool) or not isinstance(quality, (int, float, np.number)) \
            or not 1 <= quality <= 100:
        raise SvdiError(f"quality must be a number within 1..100, got {quality!r}")
    factor = 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality
    return STEP_MIN + STEP_SCALE * factor


def parse_layout(layout: str) -> tuple[int, int]:
    """'plain', 'patch' or 'patchN' -> (layout code, patch side)."""
    if layout == "plain":
        return LAYOUT_PLAIN, 0
    if layout.startswith("patch"):
        side = int(layout[5:] or DEFAULT_PATCH) if layout[5:].isdigit() or not layout[5:] else 0
        if side in PATCH_SIZES:
            return LAYOUT_PATCH, side
    raise SvdiError(f"unknown layout {layout!r}; use auto, plain, patch or patch4/8/16")


def candidate_layouts(layout: str, fixed_rank: bool) -> list[tuple[int, int]]:
    """The (layout, patch) candidates of a layout option: "auto" tries AUTO_LAYOUTS, except
    with a fixed rank or energy, which keeps the textbook plain layout."""
    if layout != "auto":
        return [parse_layout(layout)]
    if fixed_rank:
        return [parse_layout("plain")]
    return [parse_layout(name) for name in AUTO_LAYOUTS]


def _bisect(predicate: Callable[[float], bool], lo: float, hi: float, iters: int = 14) -> float:
    """Largest log-step in [lo, hi] where predicate holds (predicate true at lo, monotone)."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if predicate(mid):
            lo = mid
        else:
            hi = mid
    return lo


def encode(image: np.ndarray | Image.Image, quality: float | None = None, *,
           rank: int | None = None,
           energy: float | None = None, target_psnr: float | None = None,
           max_bytes: int | None = None, layout: str | None = "auto", exif: Any = None,
           icc_profile: bytes | None = None, xmp: bytes | str | None = None,
           dpi: tuple[float, float] | None = None, text: dict[str, str] | None = None,
           max_error: float | None = None, exact_alpha: bool | None = True,
           exact_constant: bool | None = True, centre: bool | None = False,
           deblock: bool | None = True, restore: bool | None = False,
           effort: int | None = DEFAULT_EFFORT, aq: bool | None = False) -> bytes:
    """Encode an image or a 2-D/3-D array to .svdi bytes.

    A Pillow image is read in its mode's samples (`modes.image_to_array`): I;16, I;16L, I;16B
    and I;16N as uint16, each in its own byte order; I as uint16 where every sample is within
    0..65535, else int32; CMYK and the other colour modes as Pillow's convert("RGB").

    Every option also takes None, which means its default, as Pillow's save options do
    (``encode(a, aq=None)`` is ``encode(a)``; the Pillow plugin and svdi-encode leave an option
    they are not given to this default). The on/off options (exact_alpha, exact_constant,
    centre, deblock, restore, aq) take True or False (1 or 0, numpy's bools); the others refuse
    True and False, which are not numbers there.

    quality (1..100, default 75) sets the quantizer step; target_psnr (dB, > 0; of the channels
    but an exact alpha, which decodes exactly) or max_bytes (a number >= 1; the file takes at
    most its whole bytes, the residual blocks of an exact alpha or constant channel included)
    search the step instead. rank keeps at most that many components per
    plane: fewer where the matrix has lower rank, and a trailing component whose factors
    quantize to zero at this quality is dropped (it would add nothing to the picture; raise the
    quality to keep it). rank=0 keeps none: the file then holds only what max_error's residual,
    centre's column means or the exact alpha and constant channels put in it (alone, a plane
    decodes to zeros); svdi-encode's --rank 0 is the same. energy keeps the fewest components
    holding that fraction of sum(sigma^2), with the same proviso.

    max_error=E codes a residual after the low-rank layer (format version 2, spec §4.1) so that
    every decoded sample is within E of the original (absolute, in sample units; floored to an
    integer for integer samples). max_error=0 is lossless (float32 too where the samples'
    range allows; otherwise SvdiError asks for E > 0); a float E finer than the samples
    resolve is coded exactly where that is estimated smaller (or where step 2E would need
    residuals beyond 31 bits). quality then sets the low-rank layer: by default 75, or 90 for
    lossless uint16 and float32 samples (the smallest files measured, docs/lossless.md).
    16-bit samples whose file with a layer would be larger than the raw samples (noise), and
    8- and 16-bit samples whose file without a layer is estimated clearly smaller, are also
    coded with no layer (rank 0), the smaller file kept; neither where the call asks
    something of the layer (quality, rank, energy, a layout other than "auto", centre, aq or
    restore: the caller wants that layer's factors). Residuals of 16-bit
    samples that span 17 bits are stored modulo 2^16 (format version 7, spec §4.1) where
    that is smaller.
    exact_alpha (default True): the alpha channel of LA and RGBA images decodes exactly (also
    under max_error); exact_constant (default True): a channel whose samples are all equal
    decodes exactly. Each adds a residual only where the low-rank layer alone is not exact;
    with neither needed the file is version 1, byte for byte what it was without them. An
    exact alpha that varies is coded with no layer (its plane of rank 0, the residual its
    samples: a mask costs about what PNG takes for it; docs/lossless.md, "Alpha"), and shows
    in previews and thumbnails too (spec §5.3).

    centre=True subtracts each matrix column's mean before the SVD and stores the means
    (format version 2, MEAN chunks, spec §3.1): with the plain layout (the only one it takes;
    "auto" means plain) `read_factors` then returns a true PCA of each plane, the means in
    `PlaneFactors.mean`. For a time x sensors array, rows are observations and columns
    variables.

    deblock (default True): the decoder smooths the edges between patches of a plane of
    8-bit samples with the filter the encoder chose where it brings the decoded image closer
    to the original (format version 4, spec §5.4). The file is the same size either way (but
    for a residual, max_error's or exact alpha's, which corrects the filtered picture): the
    filter's strengths are fields every PLAN record has, and the factors' bytes do not change.
    What changes is the decoded picture, closer to the original, which on Kodak is worth about
    4 % of the bytes at equal PSNR and 8-10 % at equal luma SSIM (BD-rate), for about 1.22x
    the encode's instructions (the encoder decodes a sample of bands to judge the filter) and
    1.12-1.14x the decode's (docs/performance.md). False writes every plane's filter fields 0:
    the same bytes but for those, decoded a little faster and a little further from the
    original.

    restore (default False): True lets the decoder apply, after the deblocking filter, a
    restoration filter the encoder fits to each colour channel of an 8-bit image where it
    brings the decoded image closer to the original (format version 6, spec §5.6: an ALF-like
    Wiener filter with 4 activity classes, about 180 bytes a file; the factors' bytes are
    unchanged). Best with deblock=True. The encoder reads the whole image and decodes the file
    once more to fit it; decoding filters every sample (docs/performance.md). False writes the
    lowest version without it.

    aq (default False): True quantizes the luma plane (plane 0 of an 8-bit image) of a patch
    layout with a step per patch, finer in flat and smooth patches and coarser in texture,
    which the decoder derives from the integers it reads (format version 6, spec §5.5: 3
    bytes in PLAN; a file without it keeps the version before): higher luma SSIM at the same
    bytes, slightly lower RGB PSNR (docs/design-notes.md, "Adaptive quantization per patch").
    It also tunes the rest of the encode for luma SSIM (no other format change): chroma
    coarser than the default at high qualities and finer at low ones, more patches in the
    finer classes (more at effort 2, most at its high qualities), and effort 2's RDOQ at a
    lower lambda, from rounding to nearest, in two rounds (`tuning.AQ_CHROMA_STEP`,
    `AQ_G_SCALE`, `AQ_EFFORT2_G_SCALE`, `AQ_RDOQ_LAMBDA`, `AQ_RDOQ_ROUNDING`,
    `AQ_RDOQ_ROUNDS`; docs/design-notes.md, "Tuning aq=True for luma SSIM", "Luma SSIM on
    photos never tuned on: RDOQ from nearest and G x 1.6" and "...: G by the step").

    effort (the integer 1 or 2, default 1; 2.0 is refused, as rank=2.0 is): 2 chooses U's integers by rate and distortion and compresses
    the kept factor blocks again at a slower zstd level: 8-14 % smaller files at the same
    quality (about 0.3 dB lower PSNR), for an encode 1.3-3.5x as long (docs/performance.md).
    Decoding is not slower.

    Metadata, stored in ancillary chunks (spec §1.1) and read back by `read_metadata`:
    exif (bytes, with or without Pillow's "Exif\\0\\0" prefix, or a PIL.Image.Exif; the
    orientation is stored, not applied), icc_profile (bytes), xmp (bytes or str), dpi (x, y):
    whole dots per inch where both are within 0.0127 of whole numbers, else whole pixels per
    metre as PNG stores them (300.5 reads back as 300.5074), text ({keyword: str}). None or
    an empty value (b"", "", {}) writes none; any other type, False and 0 among them, raises
    a TypeError (`format.metadata.MetadataTypeError`, an SvdiError too). Nothing is taken
    from a Pillow image's own info here: pass it (the Pillow plugin and svdi-encode do).
    max_bytes counts the metadata too.
    """
    meta = metadata_chunks(exif, icc_profile, xmp, dpi, text)  # checked before the slow part
    # None is the option's default, as in Pillow's save options: im.save(f, "SVDI", aq=None)
    # and encode(image, aq=None) write the same file
    exact_alpha, exact_constant, centre, deblock, restore, aq = (
        on_off(name, _DEFAULTS[name] if value is None else value) for name, value in (
            ("exact_alpha", exact_alpha), ("exact_constant", exact_constant),
            ("centre", centre), ("deblock", deblock), ("restore", restore), ("aq", aq)))
    layout = _DEFAULTS["layout"] if layout is None else layout
    effort = _DEFAULTS["effort"] if effort is None else effort
    if not isinstance(layout, str):
        raise SvdiError(f"layout must be a str (auto, plain, patch or patch4/8/16), got "
                        f"{layout!r}")
    if target_psnr is not None and not (is_number(target_psnr) and math.isfinite(target_psnr)
                                         and target_psnr > 0):
        raise SvdiError(f"target_psnr must be a finite number of dB > 0, got {target_psnr!r}")
    if max_bytes is not None:
        if not (is_number(max_bytes) and math.isfinite(max_bytes) and max_bytes >= 1):
            raise SvdiError(f"max_bytes must be a number >= 1, got {max_bytes!r}")
        max_bytes = math.floor(max_bytes)  # a budget such as 0.8 * len(jpeg): whole bytes
    if max_bytes is not None and meta:
        max_bytes -= sum(12 + len(payload) for _, payload in meta)
        if max_bytes < 1:
            raise SvdiError("the metadata alone exceeds max_bytes")
    # The encoder reads a large 8-bit Pillow image band by band, unless an option reads the
    # whole array (a residual, rate control's PSNR, the restoration filter's fit); deblocking
    # reads the rows it judges
    rows = pixel_rows(image) if max_error is None and not restore and target_psnr is None \
        and max_bytes is None else None
    pixels: Pixels = rows if rows is not None else as_pixels(image)
    if rank is not None and not (is_integer(rank) and rank >= 0):
        raise SvdiError(f"rank must be a non-negative integer, got {rank!r}")
    if energy is not None and not (is_number(energy) and 0 < energy <= 1):
        raise SvdiError(f"energy must be a number within (0, 1], got {energy!r}")
    if sum(x is not None for x in (target_psnr, max_bytes)) > 1:
        raise SvdiError("give at most one of target_psnr and max_bytes")
    if max_error is not None:
        if isinstance(max_error, bool) or not isinstance(max_error, (int, float, np.number)) \
                or not (math.isfinite(max_error) and max_error >= 0):
            raise SvdiError(f"max_error must be a finite number >= 0, got {max_error!r}")
        if target_psnr is not None or max_bytes is not None:
            raise SvdiError("max_error bounds every sample: give it without target_psnr or "
                            "max_bytes")
    if centre:
        if layout not in ("auto", "plain"):
            raise SvdiError(f"centre=True centres the columns of the plain layout; got layout "
                            f"{layout!r}")
        layout = "plain"
    # An integer choice, as rank is an integer: 2.0 is refused as rank=2.0 is (and as
    # svdi-encode's --effort 2.0 is)
    if not is_integer(effort) or effort not in EFFORT_LEVELS:
        raise SvdiError(f"effort must be one of {', '.join(map(str, EFFORT_LEVELS))}, "
                        f"got {effort!r}")
    request = residual_request(pixels, max_error, exact_alpha, exact_constant)
    if request.any and isinstance(pixels, ImageRows):  # a constant channel's residual
        pixels = pixels.array()
    near_top = near_float64_top(pixels)
    # Under max_error these options are about the low-rank layer itself (its quality, rank,
    # layout, the column means of a PCA, its quantization and filters): a caller who gives one
    # wants that layer, so the encoder never drops it for a file without one
    # (layer_does_not_pay, and lossless floats off a layer's grid).
    layer_asked = (quality is not None or rank is not None or energy is not None
                   or layout != "auto" or centre or aq or restore)
    if quality is None:
        quality = (LOSSLESS_WIDE_QUALITY if max_error == 0 and pixels.dtype != np.uint8
                   else DEFAULT_QUALITY)
    # BLAS single-threaded: see runtime.threads; small images' bands in this thread alone
    # (their planes may go to other threads, a job each: schedule.Encoder.plane_jobs).
    with single_threaded(), serial(pixels.size <= band_sizes.ENCODE_SERIAL_SAMPLES):
        adapt = AQ_COMPONENTS if aq and pixels.dtype == np.uint8 else 0
        # Lossless floats (unless the call asked for the layer) whose samples lie on a grid
        # (integers, k / 255: codec.residual.grid_quantize) go without a layer, the q then the
        # integers: a layer's exact residual takes the spacing of its smallest reconstruction
        # as its step, 2^16 and more times finer (docs/lossless.md, "float32 at max_error=0").
        bare_floats = max_error == 0 and pixels.dtype.kind == "f" and not layer_asked

        def without_layer() -> bytes:
            """The file of the residual over no layer (rank 0): the samples alone."""
            return with_residuals(_encode(pixels, quality, 0, None, None, None, layout, centre,
                                          deblock), pixels, request, effort)

        # the samples of the layer: an exact alpha that varies is coded with no layer
        source = layer_source(pixels, request)
        apart = colours_apart(pixels, request)

        gridded = None
        if bare_floats and isinstance(pixels, np.ndarray) and on_a_grid(pixels):
            try:
                gridded = without_layer()
            except ResidualRangeError:  # a sample on_a_grid skipped is off the grid
                pass
        # max_bytes with residual blocks (an exact alpha or constant channel; max_error is
        # refused with max_bytes): the search measures the whole file, residual included
        finish = partial(with_residuals, pixels=pixels, request=request, effort=effort) \
            if max_bytes is not None and request.any else None
        data = gridded if gridded is not None else \
            _encode(source, quality, rank, energy, target_psnr, max_bytes, layout, centre,
                    deblock, effort >= 2, adapt, restore, sorted(request.no_layer), finish,
                    apart, request.if_needed)
        if request.any and gridded is None and finish is None:
            assert isinstance(pixels, np.ndarray), "a residual reads the whole array (above)"
            try:
                data = with_residuals(data, pixels, request, effort)
            except ResidualRangeError:
                # The layer is too coarse for the residual's 31-bit q (large 32-bit or float
                # samples at a low quality): the finest layer, then the same bound. Lossless
                # floats whose differences from any layer need finer steps than 31 bits reach
                # (reconstructions near zero): no layer, where the samples alone set the step
                # (codec.residual.grid_steps), unless the call asked for the layer.
                try:
                    if quality >= FINEST_QUALITY:
                        raise
                    data = with_residuals(_encode(source, FINEST_QUALITY, rank, energy, None,
                                                  None, layout, centre, deblock,
                                                  effort >= 2, adapt, restore,
                                                  apart=apart), pixels, request,
                                          effort)
                except ResidualRangeError as exc:
                    if rank == 0 and not bare_floats:
                        raise ResidualRangeError(
                            f"{exc}: with rank=0 the residual holds the samples themselves, "
                            "and these reach beyond 2^31 of its steps; without rank=0 a layer "
                            "takes the large values and the residual codes what is left")
                    if not bare_floats:
                        raise
                    data = without_layer()
            except SvdiError:
                if near_top:  # the layer under the residual overflowed
                    raise overflow_error(pixels) from None
                raise
            if rank != 0 and not layer_asked and layer_does_not_pay(data, pixels, request):
                # Noise, or samples close to it: the residual over no layer at all (rank 0),
                # which wrapped residual blocks store in about the samples' own bytes, or
                # which the estimate finds smaller than the file with its layer.
                bare = without_layer()
                data = min(data, bare, key=len)
        if EFFORT_LEVELS[effort] != ZSTD_LEVEL:
            data = recompress_blocks(data, EFFORT_LEVELS[effort])
    if max_error and not layer_asked and isinstance(pixels, np.ndarray) \
            and integer_spacing(pixels) > 1:
        # Integer samples on a grid coarser than 1 (8-bit values stored in 16 bits: v x 257):
        # the bound's residual steps blur what the lossless residual codes as repeated bytes,
        # so that a bound (of 1 to 4 on Kodak photos so stored; 64 still did not always pay)
        # could cost more than lossless, which meets any bound: the smaller of the two is kept
        # whatever the bound (docs/lossless.md, "Samples on a coarser grid").
        lossless = encode(pixels, max_error=0, exact_constant=exact_constant, deblock=deblock,
                          effort=effort)
        data = min(data, lossless, key=len)
    if near_top:
        assert isinstance(pixels, np.ndarray)  # float64 samples: an array
        from ..decoder import decode
        try:
            decode(data, max_pixels=None)
        except SvdiError:
            raise overflow_error(pixels) from None
    return insert_after_head(data, meta)


def colours_apart(pixels: Pixels, request: ResidualRequest) -> bool:
    """Whether an 8- or 16-bit RGB(A) image is coded channel by channel rather than as
    Y'CbCr: where a colour channel is constant and kept exact (`exact_constant`, no
    max_error) while another varies (a red/green overlay, a false-colour map). Through
    Y'CbCr the constant channel comes back with the other channels' error, which its exact
    residual then codes sample by sample (2.5-4.4 x the size of the same photo in full
    colour, docs/lossless.md); apart, its plane is one value, and the others' planes are not
    halved."""
    if pixels.dtype not in (np.uint8, np.uint16) or pixels.shape[2] not in (3, 4):
        return False
    constant = request.if_needed & {0, 1, 2}  # (empty under max_error)
    return 0 < len(constant) < 3


def layer_does_not_pay(data: bytes, pixels: np.ndarray, request: ResidualRequest) -> bool:
    """Whether the low-rank layer may cost more than it saves the residual, so that the
    encoder tries the file without one (and keeps the smaller): a 16-bit file whose every
    channel has a residual and which is larger than its samples, or an 8- or 16-bit one
    clearly larger than the estimate of its residual over no layer (`bare_residual_bytes`,
    below tuning.BARE_RETRY_BELOW of it: noise, the noisy low bits of a scan; the estimate
    overshoots photos, whose layer pays)."""
    if all(b is not None for b in request.bounds) and pixels.dtype in (np.uint16, np.int16) \
            and len(data) > pixels.nbytes:
        return True
    bare = bare_residual_bytes(pixels, request)
    # the channels with no layer cost the same in both files: left out of both sides
    layered = len(data) - residual_bytes_of(data, request.no_layer) if request.no_layer \
        else len(data)
    return bare is not None and bare < tuning.BARE_RETRY_BELOW * layered


#: float64 magnitudes from which a reconstruction's overshoot may pass the largest float64.
FLOAT64_NEAR_TOP = 2.0 ** 1000


def near_float64_top(pixels: Pixels) -> bool:
    """float64 samples near the largest float64: the low-rank layer may overshoot them past it,
    which makes the file invalid (spec §5.2: float64 samples are not clamped), so the encoder
    decodes such a file once and refuses it rather than writing it undecodable."""
    return isinstance(pixels, np.ndarray) and pixels.dtype == np.float64 and pixels.size > 0 \
        and max(-float(pixels.min()), float(pixels.max())) >= FLOAT64_NEAR_TOP


def overflow_error(pixels: np.ndarray) -> SvdiError:
    return SvdiError("these float64 samples lie so close to the largest float64 (|x| up to "
                     f"{max(-float(pixels.min()), float(pixels.max())):.4g}) that their low-rank "
                     "reconstruction overflows it; scale them down (by 2**-64, say) before "
                     "encoding")


def _encode(pixels: Pixels, quality: float, rank: int | None, energy: float | None,
            target_psnr: float | None, max_bytes: int | None, layout: str,
            centre: bool = False, deblock: bool = False, optimise_levels: bool = False,
            adapt: int = 0, restore: bool = False, exact: Sequence[int] = (),
            finish: Callable[[bytes], bytes] | None = None, apart: bool = False,
            unscored: Collection[int] = ()) -> bytes:
    """The file of the low-rank layer. `exact`: channels that the residual will make exact
    with no layer (zeros here, their planes of the same index): target_psnr is the PSNR of
    the others, and centre leaves them out. `finish`: what each layer the rate search codes
    becomes (its residual blocks added), the file the search measures and returns. `apart`:
    RGB(A) coded channel by channel, not as Y'CbCr (`colours_apart`). `unscored`: channels
    that decode exactly whatever the layer (constant ones, an exact alpha), left out of
    target_psnr's PSNR too (unless every channel is)."""
    single_step = target_psnr is None and max_bytes is None
    rule = RankRule(None if rank is None else int(rank), energy, optimise_levels, adapt,
                    *((AQ_RDOQ_LAMBDA, AQ_RDOQ_ROUNDING, AQ_RDOQ_ROUNDS) if adapt else ()))
    def encoder(single: bool) -> Encoder:
        return Encoder(pixels, candidate_layouts(layout, rule.fixed), rule, single, centre,
                       deblock, restore, exact, apart)

    enc = encoder(single_step)
    made: dict[tuple[float, bool | None], tuple[bytes, float]] = {}
    scored = [c for c in range(pixels.shape[2]) if c not in exact and c not in unscored] \
        or list(range(pixels.shape[2]))

    def made_at(step: float, subsample: bool | None) -> tuple[bytes, float]:
        """The file at `step` and its largest plane drift (`Encoder.drift`), each made once."""
        nonlocal enc
        if (step, subsample) not in made:
            if made and enc.single_step:  # it let its planes go as it coded: one that keeps
                enc = encoder(False)  # them (and their factorizations) for the next steps
            made[step, subsample] = enc.encode(step, subsample), enc.drift
        return made[step, subsample]

    def drift_free(step: float, subsample: bool | None = None) -> bytes:
        """The file at `step`, unless the exact weights' rounding adds more than
        EXACT_WEIGHT_ERROR quantizer errors to a plane there (the finest steps of large
        planes: a weight of 36 for 35.53 brightened a whole image by 1.3 %): then the file of
        this step or of the coarser ones (DRIFT_STEP_FACTOR apart, up to the first where it
        does not) that decodes closest to the image. Never a worse file than this step's."""
        data, drift = made_at(step, subsample)
        if drift <= EXACT_WEIGHT_ERROR:
            return data
        tried = [data]
        for _ in range(DRIFT_TRIES):
            step *= DRIFT_STEP_FACTOR
            data, drift = made_at(step, subsample)
            tried.append(data)
            if drift <= EXACT_WEIGHT_ERROR:
                break
        return min(tried, key=lambda file: decoded_error(file, pixels, scored))

    if single_step:
        return drift_free(step_for_quality(quality))

    # Rate control measures the decoder's real output (the same pixels as the reference
    # decoder's, band by band and faster) against the whole array (encode() passes one).
    assert isinstance(pixels, np.ndarray)
    from ..decoder import decode
    from ..evaluation.metrics import psnr

    peak = 255.0 if pixels.dtype == np.uint8 else 255.0 * image_header(pixels, False).scale
    # (the search assumes the quality falls as the step grows: with aq only from its floor on)
    finest = AQ_FINEST_SEARCHED_STEP if adapt else FINEST_SEARCHED_STEP
    lo, hi = math.log2(finest), math.log2(4096.0)
    coded: dict[tuple[float, bool | None], bytes] = {}

    def encoded(log_step: float, subsample: bool | None = None) -> bytes:
        """The file at 2^log_step (`drift_free`: below a step where the weights' rounding
        dominates, that step's file, so that the searches' quality still falls and size still
        shrinks as the step grows)."""
        if (log_step, subsample) not in coded:
            layer = drift_free(2 ** log_step, subsample)
            coded[log_step, subsample] = layer if finish is None else finish(layer)
        return coded[log_step, subsample]

    def quality(log_step: float, subsample: bool | None = None) -> float:
        decoded = decode(encoded(log_step, subsample), max_pixels=None).reshape(pixels.shape)
        if len(scored) < pixels.shape[2]:
            return psnr(pixels[..., scored], decoded[..., scored], peak)
        return psnr(pixels, decoded, peak)

    if target_psnr is not None:
        def good(log_step: float) -> bool:
            return quality(log_step) >= target_psnr
        if not good(lo):
            lo = _finest_faithful_step(quality, lo)
            if not good(lo):
                raise SvdiError(f"target PSNR {target_psnr} dB is not reachable: the finest "
                                f"layer decodes to {quality(lo):.2f} dB; for more, bound "
                                "every sample: max_error=E, max_error=0 for lossless "
                                "(svdi-encode --max-error E, --lossless; Pillow's save also "
                                "takes lossless=True)")
        best = _bisect(good, lo, hi)
        halved_from = math.log2(SUBSAMPLE_FROM_STEP)
        if 0 < halved_from - best < 1 / 64 and enc.halves_chroma:
            # The PSNR jumps where the chroma stops being halved. A target inside the jump
            # (the search ends just under the step where halving starts) would get the
            # full-size chroma's file there, larger than a file of halved chroma at a finer
            # step that meets it too (docs/usage.md): that one, if smaller.
            def good_halved(log_step: float) -> bool:
                return quality(log_step, True) >= target_psnr
            if good_halved(lo):
                halved = encoded(_bisect(good_halved, lo, halved_from), True)
                return min(encoded(best), halved, key=len)
        return encoded(best)
    assert max_bytes is not None

    def fits(log_step: float) -> bool:
        return len(encoded(log_step)) <= max_bytes
    if fits(hi):
        best = _bisect(fits, hi, lo) if not fits(lo) else _finest_faithful_step(quality, lo)
        return encoded(best)
    raise SvdiError(f"no file fits in {max_bytes} bytes (the smallest is {len(encoded(hi))})")


def _finest_faithful_step(quality: Callable[[float], float], lo: float) -> float:
    """The log-step from `lo` up, in whole halvings, below which the decoded quality stops
    rising: an image's factors at steps far below 1 can grow past what the exact products
    resolve even above tuning.FINEST_SEARCHED_STEP (AQ_FINEST_SEARCHED_STEP with adaptive
    quantization), so the finest step searched can decode worse than coarser ones; the rate
    searches assume quality falls as the step grows, true from this step on."""
    best, best_quality = lo, quality(lo)
    step = lo + 1.0
    while step <= 0.0:
        q = quality(step)
        if q <= best_quality:
            break
        best, best_quality = step, q
        step += 1.0
    return best


def decoded_error(data: bytes, pixels: Pixels, channels: list[int]) -> float:
    """The squared error of the decoded file against the pixels, summed over these channels,
    a band of rows at a time in binary64 (the pixels as they are: an ImageRows is read a band
    at a time, no copy of the image)."""
    from ..decoder import decode

    decoded = decode(data, max_pixels=None).reshape(pixels.shape)
    total = 0.0
    rows = max(1, (1 << 20) // max(1, pixels.shape[1] * pixels.shape[2]))
    for y in range(0, pixels.shape[0], rows):
        difference = (decoded[y:y + rows, :, channels].astype(np.float64)
                      - np.asarray(pixels[y:y + rows])[:, :, channels])
        total += float(np.square(difference).sum())
    return total


#: encode's keyword-only defaults, which an option given as None takes.
_DEFAULTS: dict[str, Any] = dict(encode.__kwdefaults__ or {})


def is_number(value: Any) -> bool:
    """A real number (Python's, numpy's, a Fraction, a 0-d numeric array); not True or False
    (a switch given to a number option is a mistake)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any) -> bool:
    """An integer (numpy's too); not True or False."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def on_off(name: str, value: Any) -> bool:
    """An on/off option: True, False (numpy's too) or 1/0; anything else is refused, so that a
    string such as "no" from a form or a config file is not taken as on."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer))
                                              and value in (0, 1)):
        return bool(value)
    raise SvdiError(f"{name} must be True or False, got {value!r}")


#: The keyword options of `encode` that set how the pixels are coded.
CODING_OPTIONS = ("quality", "rank", "energy", "target_psnr", "max_bytes", "layout",
                  "max_error", "exact_alpha", "exact_constant", "centre", "deblock",
                  "restore", "effort", "aq")
#: The keyword options of `encode` that add metadata.
METADATA_OPTIONS = ("exif", "icc_profile", "xmp", "dpi", "text")


def encode_options(**options: Any) -> dict[str, Any]:
    """Keep only the encoder's keyword options that are set (for the plugin and CLI)."""
    keys = CODING_OPTIONS + METADATA_OPTIONS
    return {k: v for k, v in options.items() if k in keys and v is not None}
