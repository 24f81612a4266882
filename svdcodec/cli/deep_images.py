"""Colour images of more than 8 bits per sample: 16-bit PNG and TIFF (RGB, RGBA, grey+alpha),
PPM with a maximum value above 255, and JPEG 2000 of 9 to 16 bits.

Pillow has no 16-bit colour mode: it reads such files as 8-bit RGB(A), keeping each sample's
high byte (PNG, TIFF, JPEG 2000) or scaling it to 0…255 (PPM). This module tells such files
from their headers with Pillow alone (`deep_format`) and reads them as uint16 arrays
(`read_deep`): a PPM with numpy from the bytes Pillow located, the others with the ``16bit``
extra (``pip install ".[16bit]"``: imagecodecs, whose libpng and OpenJPEG read PNG and
JPEG 2000, and tifffile, which reads TIFF with imagecodecs' codecs). Samples of fewer than 16
bits (a PPM's maximum value, a JPEG 2000's precision) are scaled to 0…65535, the picture
Pillow's 8 bits show. It writes uint16 arrays back as 16-bit PNG (`png_bytes`) and TIFF
(`tiff_bytes`). 16-bit grey needs none of this: Pillow holds it as I;16.

The metadata stays with Pillow: it reads an input's EXIF, ICC profile, XMP, DPI and text as
for an 8-bit file, and on output its PNG writer makes the metadata chunks, which are moved into
the 16-bit PNG. A 16-bit TIFF gets the ICC profile, XMP, DPI and the EXIF tags that TIFF keeps
in its own directory (`TIFF_EXIF_TAGS`); tifffile writes no EXIF sub-directory, so the camera
and GPS tags are reported as not written.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import numpy as np
from PIL import Image

from ..format.metadata import EXIF_PREFIX
from ..pillow_plugin import to_8_bits
from .photos import TIFF_EXIF_TAGS

#: The command that installs what this module needs.
INSTALL = "pip install imagecodecs tifffile"

#: Pillow's decoders of binary (P6) and plain (P3) PPM.
PPM_CODECS = ("ppm", "ppm_plain")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour types with several samples per pixel: grey+alpha, RGB, RGBA (16-bit grey, type
#: 0, is Pillow's I;16).
PNG_COLOUR_TYPES = {4: "grey+alpha", 2: "RGB", 6: "RGBA"}
#: The chunks of the image itself; every other chunk of Pillow's PNG is metadata.
PNG_IMAGE_CHUNKS = (b"IHDR", b"PLTE", b"IDAT", b"IEND")
#: The end of the IHDR chunk, which comes first: signature, length, type, 13 bytes, CRC.
PNG_AFTER_IHDR = 8 + 4 + 4 + 13 + 4

TIFF_ORIENTATION = 274
TIFF_XMP = 700
#: EXIF's pointers to its sub-directories (camera settings, GPS, interoperability).
EXIF_SUB_IFDS = (0x8769, 0x8825, 0xA005)
#: TIFF orientation -> the numpy steps that turn the stored pixels upright, as
#: ImageOps.exif_transpose does (and Pillow >= 12 on loading a TIFF).
UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


#: What the readers raise for a bad file: tifffile's TiffFileError is a ValueError, a page it
#: does not have an IndexError, a compression without its codec a KeyError; imagecodecs'
#: PngError a RuntimeError, a codec it was built without an ImportError; tag values out of
#: range an ArithmeticError or TypeError.
READER_ERRORS = (ValueError, IndexError, KeyError, RuntimeError, ImportError, OSError,
                 struct.error, ArithmeticError, TypeError)


class DepthUnavailable(ValueError):
    """A 16-bit colour image met without the 16bit extra: the message names what to install."""


def missing() -> str | None:
    """Why the 16bit extra cannot be used (the import error), or None if it can."""
    try:
        import imagecodecs  # noqa: F401
        import tifffile  # noqa: F401
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


def _require(what: str) -> None:
    reason = missing()
    if reason is not None:
        raise DepthUnavailable(f"{what} needs the 16bit extra ({INSTALL}; here: {reason})")


def is_deep(pixels: np.ndarray) -> bool:
    """Whether decoded pixels are 16-bit colour: uint16 with 2 to 4 channels."""
    return pixels.dtype == np.uint16 and pixels.ndim == 3 and 2 <= pixels.shape[2] <= 4


def writes_deep(dtype: np.dtype, channels: int) -> bool:
    """Whether samples of this type and channel count go to a 16-bit PNG here (the extra is
    installed), rather than to .npy."""
    return np.dtype(dtype) == np.uint16 and 2 <= channels <= 4 and missing() is None


# ----------------------------------------------------------------------------- detection


def _tag_values(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _ppm_tile(raw: bytes, image: Image.Image) -> Any:
    """The tile Pillow makes of an RGB PPM's header (binary P6 or plain P3): codec, data
    offset and (mode, maximum value). None for other images and PPM kinds (Pillow keeps 16-bit
    grey whole, as I;16 or I). A loaded image has dropped its tiles: the header is read again."""
    if image.format != "PPM" or image.mode != "RGB":
        return None
    with Image.open(io.BytesIO(raw)) as fresh:
        tiles = list(fresh.tile)
    if len(tiles) != 1 or tiles[0].codec_name not in PPM_CODECS:
        return None
    args = tiles[0].args
    if not isinstance(args, tuple) or len(args) != 2 or not isinstance(args[1], int):
        return None
    return tiles[0]


#: A JPEG 2000 codestream starts with SOC, then SIZ (ISO 15444-1 A.5.1).
J2K_START = b"\xff\x4f\xff\x51"


def _codestream_at(raw: bytes) -> int | None:
    """Where the codestream starts: at 0 in a raw codestream (.j2k), else in the JP2 file's
    contiguous codestream box (jp2c), found by walking the top-level boxes (ISO 15444-1 I.4:
    length u32, type; length 1: a u64 length follows; length 0: to the end of the file) —
    not by searching for the marker bytes, which another box (XML, say) may hold."""
    if raw.startswith(J2K_START):
        return 0
    at = 0
    while at + 8 <= len(raw):
        length, kind = struct.unpack_from(">I4s", raw, at)
        header = 8
        if length == 1:
            if at + 16 > len(raw):
                return None
            (length,) = struct.unpack_from(">Q", raw, at + 8)
            header = 16
        elif length == 0:
            length = len(raw) - at
        if length < header:
            return None
        if kind == b"jp2c":
            return at + header if raw.startswith(J2K_START, at + header) else None
        at += length
    return None


def _jpeg2000_precision(raw: bytes) -> tuple[int, bool] | None:
    """(bits, signed) shared by every component of a JPEG 2000 codestream, from its SIZ
    segment, or None if they differ or the segment is not found whole."""
    at = _codestream_at(raw)
    if at is None or at + 42 > len(raw):
        return None
    components = struct.unpack_from(">H", raw, at + 40)[0]
    if components == 0 or at + 42 + 3 * components > len(raw):
        return None
    sizes = {raw[at + 42 + 3 * k] for k in range(components)}
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    return (size & 0x7F) + 1, bool(size & 0x80)


def deep_format(raw: bytes, image: Image.Image) -> str | None:
    """A description such as "16-bit RGB PNG" when the file `raw` holds more bits than
    Pillow's `image` of it: more than 8 bits per sample in 2 to 4 channels. None otherwise.
    Needs no extra: the PNG header's bytes, the TIFF tags Pillow read, the maximum value of a
    PPM's header, a JPEG 2000 codestream's SIZ segment."""
    if (image.format == "PNG" and len(raw) > 25 and raw[:8] == PNG_SIGNATURE
            and raw[12:16] == b"IHDR"):
        depth, colour = raw[24], raw[25]
        if depth == 16 and colour in PNG_COLOUR_TYPES:
            return f"16-bit {PNG_COLOUR_TYPES[colour]} PNG"
    if image.format == "TIFF":
        tags = getattr(image, "tag_v2", {})
        samples = _tag_values(tags.get(277, 1))[0]
        bits = _tag_values(tags.get(258, 1))
        formats = _tag_values(tags.get(339, 1))  # SampleFormat: 1 unsigned integers
        if 2 <= samples <= 4 and set(bits) == {16} and set(formats) == {1}:
            kind = "grey+alpha" if samples == 2 else ("RGB", "RGBA")[samples - 3]
            return f"16-bit {kind} TIFF"
    ppm = _ppm_tile(raw, image)
    if ppm is not None and ppm.args[1] > 255:
        return f"{ppm.args[1].bit_length()}-bit RGB PPM"
    if image.format == "JPEG2000" and image.mode in ("RGB", "RGBA"):
        precision = _jpeg2000_precision(raw)
        if precision is not None and precision[0] > 8 and not precision[1]:
            return f"{precision[0]}-bit {image.mode} JPEG 2000"
    return None


# ----------------------------------------------------------------------------- reading


def read_deep(raw: bytes, image: Image.Image) -> np.ndarray:
    """The 16-bit samples of `raw` (a file deep_format names), (h, w, c) uint16, as Pillow's
    `image` of it shows them at 8 bits: the same frame, turned upright where Pillow turns it,
    alpha not premultiplied."""
    kind = deep_format(raw, image)
    if kind is None:
        raise ValueError("not a colour image of more than 8 bits per sample")
    if image.format == "PPM":
        return _ppm_pixels(raw, image, kind)
    _require(f"reading a {kind} at 16 bits")
    if image.format == "PNG" and getattr(image, "n_frames", 1) > 1:
        raise ValueError(f"an animated {kind}: its frames are read at 8 bits only")
    try:
        if image.format == "PNG":
            import imagecodecs

            pixels = np.asarray(imagecodecs.png_decode(raw))
        elif image.format == "JPEG2000":
            import imagecodecs

            maximum = (1 << _jpeg2000_bits(raw)) - 1
            if maximum > 65535:  # refused before decoding: no 16-bit array holds them
                raise ValueError(f"samples of {maximum.bit_length()} bits: svdcodec holds at "
                                 "most 16 (--8bit takes Pillow's 8)")
            pixels = _to_16_bits(np.asarray(imagecodecs.jpeg2k_decode(raw)), maximum)
        else:
            pixels = _tiff_page(raw, image)
    except READER_ERRORS as exc:  # a data error of the file, in one line
        raise ValueError(f"{kind}: the 16-bit reader fails: {exc or type(exc).__name__}") \
            from None
    if pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[:2] != (image.height,
                                                                             image.width):
        raise ValueError(f"{kind}: the 16-bit reader gives {pixels.shape} {pixels.dtype}, "
                         f"Pillow {image.width}x{image.height}")
    return pixels


def _jpeg2000_bits(raw: bytes) -> int:
    precision = _jpeg2000_precision(raw)
    assert precision is not None  # deep_format found it
    return precision[0]


def _to_16_bits(pixels: np.ndarray, maximum: int) -> np.ndarray:
    """Samples of 0…maximum (at most 65535: 16 bits) scaled to 0…65535 (rounded); a sample
    above maximum is an error of the file. uint16 as they are when maximum is 65535."""
    if maximum > 65535:
        raise ValueError(f"samples of {maximum.bit_length()} bits: svdcodec holds at most 16")
    if pixels.dtype.kind not in "ui" or pixels.size and int(pixels.max()) > maximum \
            or pixels.size and int(pixels.min()) < 0:
        raise ValueError(f"samples outside 0…{maximum}")
    if maximum == 65535:
        return pixels.astype(np.uint16, copy=False)
    scaled = (pixels.astype(np.uint32) * 65535 + maximum // 2) // maximum
    return scaled.astype(np.uint16)


def _ppm_pixels(raw: bytes, image: Image.Image, kind: str) -> np.ndarray:
    """A PPM's samples read from where Pillow's header parser put its data, scaled to 16 bits:
    two big-endian bytes each in a binary PPM (its maximum value is above 255), decimal
    numbers between white space in a plain one."""
    tile = _ppm_tile(raw, image)
    assert tile is not None  # deep_format found it
    maximum = tile.args[1]
    count = image.width * image.height * 3
    if tile.codec_name == "ppm":
        missing = tile.offset + 2 * count - len(raw)
        if missing > 0:
            raise ValueError(f"{kind}: the file ends {missing} bytes before its last sample")
        samples = np.frombuffer(raw, ">u2", count, tile.offset)
    else:
        words = np.array(raw[tile.offset:].split(maxsplit=count)[:count])
        if words.size < count or words.dtype.itemsize > 5 or not np.char.isdigit(words).all():
            raise ValueError(f"{kind}: not {count} decimal samples of at most 5 digits")
        samples = words.astype(np.int64)
    pixels = samples.reshape(image.height, image.width, 3)
    try:
        return _to_16_bits(pixels, maximum)
    except ValueError as exc:
        raise ValueError(f"{kind}: {exc}") from None


def _tiff_page(raw: bytes, image: Image.Image) -> np.ndarray:
    """The page Pillow is on, as (h, w, c), upright as Pillow has it."""
    import tifffile

    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        page = tif.pages[image.tell()]
        if not isinstance(page, tifffile.TiffPage):  # a TiffFrame: the tags of an earlier page
            page = page.aspage()
        pixels = page.asarray()
        samples = int(page.samplesperpixel)
        associated = tuple(page.extrasamples) == (1,)  # premultiplied alpha
        tag = page.tags.get(TIFF_ORIENTATION)
        orientation = int(tag.value) if tag is not None else 1
    if pixels.ndim != 3 or pixels.shape[2] != samples:
        raise ValueError(f"TIFF page of shape {pixels.shape} is not one image of {samples} "
                         "samples per pixel")
    if associated:
        pixels = _unpremultiplied(pixels)
    # Pillow >= 12 turns a TIFF upright on load and drops the tag; older ones keep both as stored.
    if orientation in UPRIGHT and image.getexif().get(TIFF_ORIENTATION) in (None, 1):
        pixels = np.ascontiguousarray(UPRIGHT[orientation](pixels))
    return pixels


def _unpremultiplied(pixels: np.ndarray) -> np.ndarray:
    """Colours divided by their (last-channel) alpha, as Pillow turns RGBa into RGBA."""
    alpha = pixels[..., -1:].astype(np.float64)
    colour = pixels[..., :-1] * np.divide(65535.0, alpha, out=np.zeros_like(alpha),
                                          where=alpha > 0)
    out = pixels.copy()
    out[..., :-1] = np.clip(np.rint(colour), 0, 65535)
    return out


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 samples rounded to 8 bits (v -> round(v / 257), so 257 * k -> k); other types as
    they are."""
    if pixels.dtype != np.uint16:
        return pixels
    return to_8_bits(pixels)


# ----------------------------------------------------------------------------- writing


def _png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, whole chunk) of each chunk of a PNG file."""
    chunks, at = [], len(PNG_SIGNATURE)
    while at + 12 <= len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        end = at + 12 + length
        if end > len(png):
            raise ValueError("truncated PNG chunk")
        chunks.append((png[at + 4:at + 8], png[at:end]))
        at = end
    return chunks


def png_metadata_chunks(options: dict[str, Any]) -> bytes:
    """The metadata chunks (iCCP, eXIf, iTXt, pHYs...) that Pillow's PNG writer makes of its
    save() keywords `options`, from a one-pixel image."""
    carrier = io.BytesIO()
    Image.new("RGB", (1, 1)).save(carrier, format="PNG", **options)
    return b"".join(chunk for kind, chunk in _png_chunks(carrier.getvalue())
                    if kind not in PNG_IMAGE_CHUNKS)


def png_bytes(pixels: np.ndarray, options: dict[str, Any] | None = None) -> bytes:
    """A 16-bit PNG of (h, w, 2|3|4) uint16 pixels (grey+alpha, RGB, RGBA) with the metadata of
    Pillow's PNG save() keywords `options`, placed after the header, before the pixels."""
    if not is_deep(pixels):
        raise ValueError(f"not 16-bit colour pixels: {pixels.shape} {pixels.dtype}")
    _require("writing a 16-bit PNG")
    import imagecodecs

    png = bytes(imagecodecs.png_encode(np.ascontiguousarray(pixels)))
    if png[12:16] != b"IHDR" or png[24] != 16:
        raise ValueError("the PNG writer did not write 16-bit samples")
    metadata = png_metadata_chunks(options) if options else b""
    return png[:PNG_AFTER_IHDR] + metadata + png[PNG_AFTER_IHDR:]


def _exif_tags(exif_bytes: bytes) -> tuple[list[tuple[int, str, int, Any, bool]], bool]:
    """tifffile extratags for the EXIF tags a TIFF holds in its own directory, and whether the
    EXIF holds more (sub-directories: camera settings, GPS) that they leave out."""
    exif = Image.Exif()
    exif.load(EXIF_PREFIX + exif_bytes)
    tags: list[tuple[int, str, int, Any, bool]] = []
    for tag in TIFF_EXIF_TAGS:
        value = exif.get(tag)
        if isinstance(value, str):
            tags.append((tag, "s", 0, value, True))
        elif isinstance(value, int) and 0 <= value <= 0xFFFF:
            tags.append((tag, "H", 1, value, True))
    left_out = set(exif) - {tag for tag, *_ in tags} - set(EXIF_SUB_IFDS)
    left_out |= {ifd for ifd in EXIF_SUB_IFDS if exif.get_ifd(ifd)}
    return tags, bool(left_out)


def tiff_bytes(pixels: np.ndarray, metadata: dict[str, Any] | None = None
               ) -> tuple[bytes, list[str]]:
    """A 16-bit TIFF (Deflate with the horizontal predictor, lossless) of (h, w, 2|3|4) uint16
    pixels with `metadata` (read_metadata's dict), and what of it is not written."""
    if not is_deep(pixels):
        raise ValueError(f"not 16-bit colour pixels: {pixels.shape} {pixels.dtype}")
    _require("writing a 16-bit TIFF")
    import tifffile

    metadata = metadata or {}
    dropped = sorted(set(metadata) - {"exif", "icc_profile", "xmp", "dpi"})
    extratags: list[tuple[int, str, int, Any, bool]] = []
    if "exif" in metadata:
        extratags, left_out = _exif_tags(metadata["exif"])
        if left_out:
            dropped.append("EXIF tags beyond description, make, model, orientation, software, "
                           "date, artist and copyright")
    if "xmp" in metadata:
        extratags.append((TIFF_XMP, "B", len(metadata["xmp"]), metadata["xmp"], True))
    channels = pixels.shape[2]
    out = io.BytesIO()
    tifffile.imwrite(out, np.ascontiguousarray(pixels),
                     photometric="rgb" if channels >= 3 else "minisblack",
                     extrasamples=("unassalpha",) if channels in (2, 4) else None,
                     compression="adobe_deflate", predictor=True,
                     iccprofile=metadata.get("icc_profile"),
                     resolution=tuple(metadata["dpi"]) if "dpi" in metadata else None,
                     resolutionunit="INCH" if "dpi" in metadata else None,
                     metadata=None, software=False, extratags=extratags)
    return out.getvalue(), dropped
