"""Pillow plugin: ``Image.open("x.svdi")`` and ``im.save("x.svdi")``.

Modelled on Pillow's QoiImagePlugin. Opening reads only the signature, HEAD, PLAN and metadata
chunks (up to the first factor block), so ``Image.open`` stays lazy and cheap and Pillow's
DecompressionBombError check sees the size before any factor data is touched (a small
in-memory file is parsed whole, unless that check would warn or refuse:
`PARSED_AT_OPEN_BYTES`). ``load()`` then checks the file and renders it band by band into Pillow's image (or, for the few kinds of
file that need it, decodes the whole array first: see `SvdiImageFile.load_prepare`).
Importing :mod:`svdcodec` registers the format; :func:`register` may be called again safely.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFile

from .decoder import decode, decode_container, rendering, unpack_checked, uses_blas
from .errors import SvdiError
from .format import SIGNATURE, Container, Header, read_prefix
from .format.metadata import EXIF_PREFIX
from .modes import PILLOW_MODES, inherited_profile
from .runtime import band_sizes
from .runtime.pages import base_page_array
from .runtime.scratch import LEFT, ThreadBuffers

if TYPE_CHECKING:
    from .decoder.stream import BandRenderer, Sink

FORMAT = "SVDI"
EXTENSION = ".svdi"
MIME = "image/x-svdi"
DECODER = "svdi"

#: Keys of `info` the reader sets from the file (its format version, each plane's rank); not
#: save options, so that `im.save(f, **im.info)` of an image read from .svdi works.
READ_INFO = ("svdi_version", "svdi_ranks")

#: Raw modes whose byte layout matches the array we hand to set_as_raw.
RAWMODES = {"I;16": "I;16", "I": "I", "F": "F;32F"}  # I;16 little-endian; I, F;32F native

#: Modes Pillow reduces with each colour weighted by its alpha (premultiplied).
ALPHA_MODES = ("LA", "RGBA")

#: Modes of 8-bit files whose pixels the band renderer writes into Pillow's image itself: the
#: image maps a numpy array laid out as Pillow lays out the mode (Image.core.map_buffer, as
#: Pillow maps an uncompressed file; the image stays writable, which Image.fromarrow's
#: borrowed memory would not), bytes per pixel. RGB is RGBX in Pillow's memory. Images up to
#: band_sizes.MAPPED_BYTES (every size by default): no band buffer, no band copied. The
#: array is in base pages as Pillow's own memory is (`runtime.pages.base_page_array`).
MAPPED_MODES = {"L": 1, "RGB": 4, "RGBA": 4}

#: In-memory files (io.BytesIO) of at most this many bytes are parsed and checked whole by
#: Image.open (`unpack`: every chunk's CRC, every block record and frame), and load() renders
#: from that parse instead of parsing the file again (Image.open's own check of the block
#: records, then load()'s parse, were the largest Python step of a small image's load()).
#: Larger files keep Image.open to the chunks before the first factor block (a CRC pass over a
#: large file is no open's business).
PARSED_AT_OPEN_BYTES = 1 << 20


def pillow_mode(header: Header) -> str:
    """The Pillow mode of an image with this header, or OSError naming the numpy-only case.

    OSError rather than SyntaxError: the file *is* SVDI, so Pillow must not go on to report
    "cannot identify image file", which would hide the real reason.
    """
    mode = PILLOW_MODES.get((header.dtype, header.channels)) or WIDE_RGB_MODES.get(
        (header.dtype, header.channels))
    if mode is None:
        raise OSError(f"SVDI image with {header.channels} {header.dtype} channels has no Pillow "
                      "mode; read it with svdcodec.decode()")
    return mode


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(SIGNATURE)


#: im.info keys that Pillow's methods and writers read as something other than text (an
#: EXIF's bytes, a profile, a transparent colour, a DPI pair...): a text chunk of that keyword
#: put there as a str made getexif(), exif_transpose(), convert("RGBA") and PNG/JPEG saves
#: raise TypeError (Pillow's PNG reader has the same trap; spec §1.1 allows any keyword).
PILLOW_INFO_KEYS = frozenset({
    "exif", "icc_profile", "xmp", "dpi", "transparency", "gamma", "aspect", "srgb",
    "chromaticity", "background", "duration", "loop", "disposal", "blend", "default_image",
    "compression", "progressive", "progression", "jfif", "jfif_version", "jfif_unit",
    "jfif_density", "adobe", "adobe_transform", "quality", "subsampling", "qtables",
    "optimize", "photoshop", "mp", "comment", "extension", "version", "interlace",
    "resolution", "lossless", "exact", "bitmap_format", "palette", "bits",
    # PNG text keywords Pillow reads too: getexif() an ImageMagick raw EXIF profile,
    # getxmp() and exif_transpose() (an orientation) an XMP packet
    "Raw profile type exif", "XML:com.adobe.xmp"})


class SvdiImageFile(ImageFile.ImageFile):
    """An .svdi file opened by Pillow: headers and metadata now, pixels on load().

    Metadata goes where Pillow's PNG and JPEG readers put it: info["exif"] (with the
    "Exif\\0\\0" prefix, so getexif() and ImageOps.exif_transpose work), info["icc_profile"],
    info["xmp"], info["dpi"], and each text chunk under its keyword, also as the dict
    ``im.text``; a text whose keyword is an info key Pillow reads as something else
    (`PILLOW_INFO_KEYS`: "exif", "transparency", ...) is in ``im.text`` only.
    """

    format = FORMAT
    format_description = "SVD image (svdcodec)"

    def _open(self) -> None:
        assert self.fp is not None
        #: (the file's bytes, their parse) when `_parsed_whole` parsed them, for load()
        self._parsed = _parsed_whole(self.fp)
        if self._parsed is not None:
            container = self._parsed[1]
            header, planes = container.header, container.planes
            metadata = container.metadata
        else:  # a larger file, or one `unpack` refuses: open's own checks and errors
            try:
                header, planes, metadata = read_prefix(self.fp, descriptors=True)
            except SvdiError as exc:  # SyntaxError: Pillow says "cannot identify image file"
                raise SyntaxError(str(exc)) from exc
        self._mode = pillow_mode(header)
        if (header.dtype, header.channels) in WIDE_RGB_MODES:
            warn_reduced_depth(header.channels)
        self._size = (header.width, header.height)
        self.info.update(zip(READ_INFO, (header.version, tuple(p.rank for p in planes))))
        if metadata.exif is not None:
            self.info["exif"] = EXIF_PREFIX + metadata.exif
        for key in ("icc_profile", "xmp", "dpi"):
            if getattr(metadata, key) is not None:
                self.info[key] = getattr(metadata, key)
        self.text = dict(metadata.text)
        for key, value in metadata.text.items():
            if key not in PILLOW_INFO_KEYS:
                self.info.setdefault(key, value)
        # One tile covering the image; the decoder reads the whole file itself (its argument:
        # the scale factor a draft chose).
        self.tile = [ImageFile._Tile(DECODER, (0, 0, *self._size), 0, (1,))]

    def draft(self, mode: str | None, size: tuple[int, int] | None
              ) -> tuple[str, tuple[int, int, float, float]] | None:
        """Configure the decoder to the smallest of 1/2, 1/4, 1/8 of the size that is still at
        least `size` (as JPEG's draft mode does, so thumbnail() decodes a reduced image: the
        factors are averaged before they are multiplied). The mode cannot change. Images with
        alpha are decoded whole: Pillow reduces them weighting each colour by its alpha, which
        the averaged factors cannot."""
        if (size is None or len(self.tile) != 1 or self.tile[0].args != (1,) or self._im
                or self.mode in ALPHA_MODES):
            return None
        width, height = self.size
        scale = min(width // max(size[0], 1), height // max(size[1], 1))
        factor = next((f for f in (8, 4, 2) if scale >= f), 1)
        if factor == 1:
            return None
        self._size = (-(-width // factor), -(-height // factor))
        self.tile = [ImageFile._Tile(DECODER, (0, 0, *self._size), 0, (factor,))]
        return self.mode, (0, 0, width / factor, height / factor)

    def reduce(self, factor: int | tuple[int, int],
               box: tuple[int, int, int, int] | None = None) -> Image.Image:
        """Image.reduce, decoded at that size directly for the factors 2, 4 and 8 of a whole
        image not yet loaded (each pixel the mean of a factor x factor cell); the image itself
        stays as it is. Images with alpha go to Pillow's own reduce, which weights each
        colour by its alpha (transparent pixels' colours do not bleed into their neighbours)."""
        if (isinstance(factor, int) and factor in (2, 4, 8) and box is None and not self._im
                and self.mode not in ALPHA_MODES
                and self.fp is not None and len(self.tile) == 1 and self.tile[0].args == (1,)):
            self.fp.seek(0)
            data = self.fp.read()
            if getattr(self, "_exclusive_fp", False):
                # Pillow's own reduce loads the image and so closes a file it opened; this one
                # leaves the image unloaded, reading from the bytes already in memory
                self.fp.close()
                self.fp = io.BytesIO(data)
            try:
                pixels = decode(data, reduce=factor, max_pixels=None, truncated=_truncated())
            except SvdiError as exc:
                raise OSError(f"broken SVDI file: {exc}") from exc
            size = (-(-self.width // factor), -(-self.height // factor))
            out = Image.frombytes(self.mode, size, _raw_bytes(pixels, self.mode), "raw",
                                  RAWMODES.get(self.mode, self.mode))
            out.info = self.info.copy()
            return out
        return super().reduce(factor, box)

    def verify(self) -> None:
        """Check the file without decoding it, as Pillow's PNG reader checks its chunks: the
        signature, every chunk's length and CRC-32, and the chunks' records (HEAD, PLAN, the
        block records' fields and sizes); SyntaxError("broken SVDI file: ...") if it breaks a
        rule. Not the blocks' compressed contents, which load() checks as it decodes them
        (`svdi-info --quiet` reads those too). As for PNG, open the image again to load it."""
        if self.fp is None:
            raise RuntimeError("verify must be called directly after open")
        try:
            if _reusable(self.fp, self._parsed) is None:  # else open's parse checked it all
                unpack_checked(_file_bytes(self.fp))  # open checked the size
        except SvdiError as exc:
            raise SyntaxError(f"broken SVDI file: {exc}") from exc
        finally:
            self._parsed = None
            if getattr(self, "_exclusive_fp", False):
                self.fp.close()
            self.fp = None

    def load_seek(self, pos: int) -> None:
        """Seek the file, as load() does without this method. Its presence tells Pillow's
        incremental reader (`ImageFile.Parser`) that the file cannot be decoded as its bytes
        arrive (the factors are global, and SvdiDecoder reads the whole file itself): the
        parser then opens the image again from all of them on close(), as it does for WebP
        and AVIF, instead of preparing a decoder on a file it has already closed."""
        assert self.fp is not None
        self.fp.seek(pos)

    def close(self) -> None:
        """Pillow's close, and Image.open's parse let go (an image closed unloaded holds no
        copy of its file)."""
        self._parsed = None
        super().close()

    def load_prepare(self) -> None:
        """Check the file before Pillow allocates the image: a file whose blocks break a
        rule is refused before that allocation (spec §5: a rejected file costs only the
        checks). Full-size 8- and 16-bit files without residuals (almost every file, with the
        deblocking filter too) are then read and their factor blocks checked
        (`BandRenderer.prepare`), and SvdiDecoder renders them band by band straight into
        Pillow's image; the others (reduced sizes, float samples, version 2 residuals) are decoded
        whole first, and the decoded array and the image are held together only once the
        decode is done. What the decoder works from reaches SvdiDecoder through the tile's
        arguments."""
        if self._im is None and self.fp is not None and getattr(self.fp, "closed", False):
            # (ImageFile.Parser.close() loads the image it opened from a prefix of the bytes
            # in a file it has closed since, when the whole file fails to open)
            raise OSError("cannot load an SVDI image whose file is closed")
        tile = self.tile[0] if len(self.tile) == 1 else None
        args = tile.args if tile is not None else None
        if (self._im is None and self.fp is not None and tile is not None
                and tile.codec_name == DECODER and isinstance(args, tuple) and len(args) == 1):
            parsed, self._parsed = self._parsed, None  # held until load() only
            work = _prepared(self.fp, args[0], parsed)
            if (not isinstance(work, np.ndarray) and work.header.dtype == np.uint8
                    and self.mode in MAPPED_MODES and _mapped(self.width * self.height
                                                              * MAPPED_MODES[self.mode])):
                # The image's memory is an array the bands are rendered into: no band
                # buffers, no copy of every row by Pillow's raw decoder.
                pixels = base_page_array((self.height, self.width, MAPPED_MODES[self.mode]),
                                         np.uint8)
                self.im = Image.core.map_buffer(pixels, self.size, "raw", 0, (self.mode, 0, 1))
                work = (work, pixels)
            self.tile = [tile._replace(args=(args[0], work))]
        elif (tile is not None and tile.codec_name == DECODER and isinstance(args, tuple)
              and len(args) == 2):
            # Work of a load() that failed: a renderer's factors live in the kept arrays of
            # the thread that prepared them (`ThreadBuffers`), which a decode since then may
            # have filled with another file's. SvdiDecoder decodes the file again.
            self.tile = [tile._replace(args=args[:1])]
        super().load_prepare()


def _mapped(nbytes: int) -> bool:
    """Whether load() renders an image of this many bytes into an array the image maps."""
    return band_sizes.MAPPED_BYTES is None or nbytes <= band_sizes.MAPPED_BYTES


def _file_bytes(fp: IO[bytes]) -> bytes:
    """The whole file: an in-memory file's own bytes where it shares them (no copy)."""
    if isinstance(fp, io.BytesIO):
        return fp.getvalue()
    fp.seek(0)
    return fp.read()


def _parsed_whole(fp: IO[bytes]) -> tuple[bytes, Container] | None:
    """(bytes, `unpack` of them: `unpack_checked`) of an in-memory file of at most
    PARSED_AT_OPEN_BYTES that hands out its own bytes object (BytesIO.getvalue shares its
    buffer: the parse, which points into those bytes, holds no copy of the file), else None. None too where `unpack`
    refuses the file: then Image.open and load() check it as they do a larger file, so that a
    broken file gives the same errors at the same step whatever its size."""
    if not isinstance(fp, io.BytesIO):
        return None
    data = fp.getvalue()
    # a copy each call (a BytesIO with a buffer exported): holding one would hold the file twice
    if len(data) > PARSED_AT_OPEN_BYTES or data is not fp.getvalue():
        return None
    # Not an image Pillow warns of or refuses as a decompression bomb: its check runs after
    # _open, and such a file's blocks must not be parsed before it, as a larger file's are not
    limit = Image.MAX_IMAGE_PIXELS
    try:
        return data, unpack_checked(data, None if limit is None else int(limit))
    except (SvdiError, SyntaxError, IndexError, TypeError, struct.error):
        # SvdiError: the file's errors as load() reports them. The others Image.open would
        # take for "not this format", hiding a decoder bug from the fuzzers: load() meets it.
        return None


def _reusable(fp: IO[bytes], parsed: tuple[bytes, Container] | None) -> Container | None:
    """Image.open's parse of the file, if the file still holds the very bytes it parsed."""
    if parsed is not None and isinstance(fp, io.BytesIO) and fp.getvalue() is parsed[0]:
        return parsed[1]
    return None


def _truncated() -> str:
    """decode's `truncated=` for Pillow's ImageFile.LOAD_TRUNCATED_IMAGES (read at load time,
    as Pillow's own plugins read it): what arrived of a file that ends early, or the error."""
    return "fill" if ImageFile.LOAD_TRUNCATED_IMAGES else "raise"


def _prepared(fp: IO[bytes], factor: int, parsed: tuple[bytes, Container] | None = None
              ) -> np.ndarray | BandRenderer:
    """The renderer of a file SvdiDecoder renders band by band, else the decoded pixels.
    `parsed`: Image.open's parse (`_parsed_whole`), used if the file is unchanged."""
    try:  # Image.open checked the size
        container = _reusable(fp, parsed)
        if container is None:
            container = unpack_checked(_file_bytes(fp), truncated=_truncated())
        if factor != 1 or container.truncation is not None:
            # a file that ends early: decoded whole, what arrived (decode's truncated="fill")
            return decode_container(container, reduce=factor)
        from .decoder.stream import BandRenderer  # on load, not on import

        with rendering(container.header, uses_blas(container)):
            renderer = BandRenderer.prepare(container, lean=True)
        return renderer if renderer is not None else decode_container(container)
    except SvdiError as exc:  # Pillow reports broken image data as OSError
        raise OSError(f"broken SVDI file: {exc}") from exc


def _decoded(fp: IO[bytes], factor: int) -> np.ndarray:
    try:  # Image.open checked the size
        return decode(_file_bytes(fp), reduce=factor, max_pixels=None, truncated=_truncated())
    except SvdiError as exc:  # Pillow reports broken image data as OSError
        raise OSError(f"broken SVDI file: {exc}") from exc


class SvdiDecoder(ImageFile.PyDecoder):
    """Renders the bands of a file SvdiImageFile.load_prepare prepared into Pillow's image, or
    hands Pillow the pixels it decoded whole (SVD factors are global: no scanlines to feed), or
    decodes them itself if called alone."""

    _pulls_fd = True

    def decode(self, buffer: Image.DecoderInput) -> tuple[int, int]:
        work = self.args[1] if len(self.args) == 2 else None
        if isinstance(work, tuple):  # a BandRenderer and the array the image maps
            from .decoder.stream import ArraySink  # loaded with the renderer

            renderer, pixels = work
            self._render(renderer, ArraySink(pixels))
            return -1, 0
        if work is not None and not isinstance(work, np.ndarray):  # a BandRenderer
            self._render(work, PillowBands(self.im, self.mode, work.header))
            return -1, 0
        if work is None:
            assert self.fd is not None
            work = _decoded(self.fd, self.args[0] if self.args else 1)
        # A memoryview of the array: Pillow's raw decoder reads any buffer (its stub says bytes).
        self.set_as_raw(_raw_bytes(work, self.mode),  # type: ignore[arg-type]
                        RAWMODES.get(self.mode, self.mode))
        return -1, 0

    def _render(self, renderer: BandRenderer, sink: Sink) -> None:
        header = renderer.header
        x0, y0, x1, y1 = self.state.extents()
        if (x0, y0, x1 - x0, y1 - y0) != (0, 0, header.width, header.height):
            raise OSError(f"broken SVDI file: a {header.width}x{header.height} image decoded "
                          f"into a {x1 - x0}x{y1 - y0} tile")
        assert self.im is not None
        try:
            with rendering(header, renderer.blas):
                renderer.run(sink)
        except SvdiError as exc:  # as _decoded
            raise OSError(f"broken SVDI file: {exc}") from exc


class PillowBands:
    """A `Sink` into Pillow's image where it is not mapped (other modes than MAPPED_MODES,
    images above band_sizes.MAPPED_BYTES where that is set): each band rendered into a buffer
    of this thread, then copied into its rows of the image by Pillow's raw decoder (which
    releases the GIL, so the band threads copy in parallel). An 8-bit RGB band is rendered as
    RGBX, Pillow's own layout of RGB, so that the copy is a plain copy of each row (raw mode
    "RGBX") rather than a spread of 3 bytes a pixel into 4; the renderer writes the X byte as
    it stores."""

    def __init__(self, im: Any, mode: str, header: Header) -> None:
        self.im, self.mode, self.rawmode = im, mode, RAWMODES.get(mode, mode)
        self.width, self.channels, self.dtype = header.width, header.channels, header.dtype
        self.padded = mode == "RGB" and header.dtype == np.uint8
        if self.padded:
            self.rawmode = "RGBX"
        self.buffers = ThreadBuffers()

    def band(self, y0: int, y1: int, spent: ThreadBuffers | None = None) -> np.ndarray:
        channels = 4 if self.padded else self.channels
        size = (y1 - y0) * self.width * channels
        if spent is not None:  # in the memory of the band's spent left factor (`Sink`)
            nbytes = size * np.dtype(self.dtype).itemsize
            spent.expect(LEFT, -(-nbytes // 4))
            raw = spent.get(LEFT, -(-nbytes // 4)).view(np.uint8)[:nbytes]
            return raw.view(self.dtype).reshape(y1 - y0, self.width, channels)
        return self.buffers.get("band", size, self.dtype).reshape(y1 - y0, self.width,
                                                                  channels)

    def put(self, y0: int, y1: int, band: np.ndarray) -> None:
        if self.padded:  # the band's bytes as they are (RGBX rows)
            raw = memoryview(band).cast("B")  # type: ignore[arg-type]  # as _raw_bytes
        else:
            raw = _raw_bytes(band[:, :, 0] if self.channels == 1 else band, self.mode)
        decoder = Image._getdecoder(self.mode, "raw", self.rawmode)
        decoder.setimage(self.im, (0, y0, self.width, y1))
        consumed, error = decoder.decode(raw)  # type: ignore[arg-type]
        if consumed >= 0 or error != 0:  # as PyDecoder.set_as_raw
            raise ValueError(f"cannot copy rows {y0}..{y1} into the image")


def _raw_bytes(pixels: np.ndarray, mode: str) -> memoryview:
    """Pixels in the byte order of RAWMODES[mode], after checking they fit the opened mode: a
    view of the decoded array (Pillow's raw decoder copies from any buffer, so no bytes copy)."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if WIDE_RGB_MODES.get((pixels.dtype, channels)) == mode:
        pixels = to_8_bits(pixels)
    if PILLOW_MODES.get((pixels.dtype, channels)) != mode:
        raise OSError(f"broken SVDI file: decoded {channels} {pixels.dtype} channels, "
                      f"header promised mode {mode}")
    if mode == "I;16":
        pixels = pixels.astype("<u2", copy=False)
    return memoryview(np.ascontiguousarray(pixels)).cast("B")  # type: ignore[arg-type]  # as above


# ---- 16-bit RGB(A): Pillow has no mode for it, so it opens at 8 bits, with a warning.

#: (dtype, channels) of 16-bit RGB and RGBA (format version 3's Y'CbCr, or colour 0) -> the
#: Pillow mode they open in, their samples rounded to 8 bits.
WIDE_RGB_MODES: dict[tuple[np.dtype, int], str] = {
    (np.dtype(np.uint16), 3): "RGB", (np.dtype(np.uint16), 4): "RGBA"}


class ReducedDepthWarning(UserWarning):
    """A 16-bit RGB(A) .svdi file opened in Pillow, which shows it at 8 bits per sample."""


def warn_reduced_depth(channels: int) -> None:
    mode = "RGB" if channels == 3 else "RGBA"
    warnings.warn(f"16-bit {mode} SVDI image opened as 8-bit {mode} (Pillow has no 16-bit "
                  f"{mode} mode): samples rounded to 8 bits; svdcodec.decode returns the "
                  "16-bit samples", ReducedDepthWarning, stacklevel=6)  # Image.open's caller


#: Samples `to_8_bits` rounds at a time (its 32-bit sums: a piece of the image, not two
#: copies of the whole at 4 bytes a sample).
TO_8_BITS_SAMPLES = 1 << 18


def to_8_bits(pixels: np.ndarray) -> np.ndarray:
    """16-bit samples rounded to 8 bits: round(v * 255 / 65535) = floor((v + 128) / 257), never
    a tie (65535 = 255 x 257); rows at a time."""
    out = np.empty(pixels.shape, np.uint8)
    per = max(1, TO_8_BITS_SAMPLES // max(1, math.prod(pixels.shape[1:])))
    for y in range(0, pixels.shape[0], per):
        part = pixels[y:y + per].astype(np.uint32)
        part += 128
        part //= 257
        out[y:y + per] = part
    return out


#: Keywords Pillow's Image.save itself reads (save_all is taken out before a plugin sees it).
PILLOW_SAVE_KEYWORDS = ("append_images", "append")


def save_options(im: Image.Image) -> dict[str, Any]:
    """The encode() options of ``im.save(...)``: every keyword must be one svdcodec knows.

    None for any option means its default, the option left out (Pillow's convention; encode()
    takes None alike). ``lossless=True`` (as for WebP) is ``max_error=0``. Options another format has
    (subsampling=, optimize=...) raise SvdiError instead
    of being ignored: a file that silently differs from what was asked is worse than an error.
    Like Pillow's PNG and TIFF writers the image's own ICC profile is kept unless
    ``icc_profile=`` is given (b"" drops it, and so does None, as in Pillow's PNG writer: the
    one option where None is not the option left out), and unless its colour space is not the
    stored samples' (`modes.inherited_profile`: a CMYK image is stored as RGB, converted as
    Pillow's convert("RGB") does, and its CMYK profile is dropped); like its JPEG and WebP
    writers, EXIF, XMP, DPI and text are written only when passed (``exif=im.info["exif"]``
    or ``im.getexif()``).
    """
    from .encoder import (  # only to save
        CODING_OPTIONS,
        METADATA_OPTIONS,
        encode_options,
        on_off,
    )

    info = dict(im.encoderinfo)
    lossless = info.pop("lossless", None)
    if lossless is not None:  # Pillow's WebP keyword: max_error=0 (a residual, version 2)
        lossless = on_off("lossless", lossless)
        if lossless and info.get("max_error") not in (None, 0):
            raise SvdiError(f"lossless=True contradicts max_error={info['max_error']}")
        if lossless:
            info["max_error"] = 0.0
    if info.pop("append", False):
        raise SvdiError("SVDI cannot append to an existing file (append=True)")
    info.pop("append_images", None)
    for key in READ_INFO:  # what the reader told of the file it read: `im.save(f, **im.info)`
        info.pop(key, None)
    unknown = sorted(set(info) - set(CODING_OPTIONS) - set(METADATA_OPTIONS))
    if unknown:
        raise SvdiError(f"SVDI has no save option {', '.join(unknown)}; its options are "
                        f"{', '.join((*CODING_OPTIONS, 'lossless', *METADATA_OPTIONS))}")
    profile = inherited_profile(im)
    if "icc_profile" not in info and profile:
        info["icc_profile"] = profile
    return encode_options(**info)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Save with options from ``im.save(..., quality=, rank=, energy=, target_psnr=,
    max_bytes=, layout=, max_error=, lossless=, exact_alpha=, exact_constant=, deblock=
    (default True), restore=, effort=, aq=, exif=, icc_profile=, xmp=, dpi=, text=)``; invalid
    or unknown options and modes raise SvdiError (a ValueError)."""
    from .encoder import encode  # the encoder loads when an image is saved, not on open

    fp.write(encode(im, **save_options(im)))


def _save_all(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """``save_all=True``: an .svdi file holds one image, so a single frame is saved and more
    than one raises SvdiError (a ValueError) naming the count."""
    frames = getattr(im, "n_frames", 1) + sum(
        getattr(extra, "n_frames", 1) for extra in im.encoderinfo.get("append_images", ()))
    if frames > 1:
        raise SvdiError(f"SVDI stores a single image, not {frames} frames: save one frame "
                        "(im.seek(n), then im.save without save_all)")
    _save(im, fp, filename)


def register() -> None:
    """Register the SVDI format with Pillow. Idempotent: Pillow's registries are dictionaries."""
    Image.register_open(FORMAT, SvdiImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_save_all(FORMAT, _save_all)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(DECODER, SvdiDecoder)


register()
