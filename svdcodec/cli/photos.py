"""What the command-line tools do with photos as they come: metadata carried from the input
into the .svdi file and from the .svdi file into the decoded image, one frame chosen out of
several, and Pillow's pixel limit with an option named in the message.

Metadata (EXIF, ICC profile, XMP, DPI, text) is kept by default, dropped by ``--strip``;
decoding writes it into the formats whose Pillow writers take it, and says what a format
cannot hold.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from ..errors import SvdiError
from ..format.metadata import EXIF_PREFIX, MAX_TEXT_TOTAL, MAX_TEXTS, metadata_chunks
from ..modes import inherited_profile, stored_channels

#: PNG's iTXt keyword for an XMP packet (Pillow's PNG reader also puts it in info["xmp"]).
PNG_XMP_KEY = "XML:com.adobe.xmp"

#: The metadata each output format's Pillow writer takes (svdi-decode): everything else is
#: reported as not written.
WRITABLE: dict[str, tuple[str, ...]] = {
    "PNG": ("exif", "icc_profile", "xmp", "dpi", "text"),
    "JPEG": ("exif", "icc_profile", "xmp", "dpi"),
    "WEBP": ("exif", "icc_profile", "xmp"),
    "TIFF": ("exif", "icc_profile", "xmp", "dpi"),
    "BMP": ("dpi",),
    "SVDI": ("exif", "icc_profile", "xmp", "dpi", "text"),
}


class PixelLimit(ValueError):
    """An input image over the pixel limit (reported as a data error, in one line)."""


def open_image(data: bytes, frame: int | None, max_pixels: int | None | bool
               ) -> tuple[Image.Image, str]:
    """The input image, loaded, and a note on which frame was kept ("" for a single frame).

    max_pixels: True follows Pillow (warn above PIL.Image.MAX_IMAGE_PIXELS, refuse above twice
    that); a number is a hard limit; None none. Several frames are refused unless `frame` picks
    one: an .svdi file holds one image (but for an MPO, a camera's JPEG with other pictures
    beside the photo: the photo).
    """
    try:
        return _open_image(data, frame, max_pixels)
    except PILLOW_DAMAGE_ERRORS as exc:  # Pillow's readers on damaged files, beyond OSError
        raise ValueError(f"damaged image file ({type(exc).__name__}: {exc})") from None


#: What Pillow's format readers raise on some damaged files besides OSError and ValueError
#: (PNG's "broken PNG file" is a SyntaxError; TIFF tags of the wrong type, TypeError).
PILLOW_DAMAGE_ERRORS = (SyntaxError, TypeError, IndexError, KeyError, ArithmeticError)


def _open_image(data: bytes, frame: int | None, max_pixels: int | None | bool
                ) -> tuple[Image.Image, str]:
    limit = Image.MAX_IMAGE_PIXELS
    try:
        if max_pixels is not True:
            Image.MAX_IMAGE_PIXELS = None  # our own limit below, on the header's size
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not an image file in a format Pillow can read") from None
    except Image.DecompressionBombError as exc:
        raise PixelLimit(f"{exc} To encode it, raise the limit with --max-pixels N "
                         "(0: none).") from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    pixels = image.size[0] * image.size[1]
    if max_pixels not in (True, None, False) and pixels > int(max_pixels):
        raise PixelLimit(f"image of {image.size[0]}x{image.size[1]} pixels exceeds "
                         f"--max-pixels {max_pixels}")
    frames = getattr(image, "n_frames", 1)
    note = ""
    if frame is None and frames > 1 and image.format == "MPO":
        # a camera's JPEG with pictures beside the photo (a preview, a depth map): the photo,
        # as Pillow's own save and JPEG readers take it
        note = f"the first of its {frames} MPO pictures ({frames - 1} not encoded)"
        frames = 1
    if frame is None and frames > 1:
        raise ValueError(f"has {frames} frames (animated or multi-page) and .svdi stores one "
                         f"image: choose one with --frame N (0..{frames - 1})")
    if frame is not None:
        if not 0 <= frame < frames:
            raise ValueError(f"has no frame {frame} (it has {frames}: 0..{frames - 1})")
        image.seek(frame)
        note = f"frame {frame} of {frames} ({frames - 1} not encoded)" if frames > 1 else ""
    image.load()
    return image, note


def release_file(image: np.ndarray | Image.Image) -> None:
    """Let a loaded image's input bytes go once its metadata has been read (a TIFF's EXIF is
    read from the file): `open_image` gives Pillow the bytes as a BytesIO, which Pillow keeps
    (as fp, or as _fp for formats with frames: PNG's are APNG's) and which holds the bytes,
    up to half the raw size for a PNG, through the encode. Closing it lets them go."""
    for held in (getattr(image, "fp", None), getattr(image, "_fp", None)):
        if isinstance(held, io.BytesIO):  # closing one twice does nothing
            held.close()


#: The TIFF tags of a TIFF input that are EXIF's image-level tags and say nothing about the
#: TIFF's own pixel layout: description, make, model, orientation, software, date, artist,
#: copyright.
TIFF_EXIF_TAGS = (270, 271, 272, 274, 305, 306, 315, 33432)


#: The EXIF sub-directories a TIFF points to from its own tags (Exif: exposure, the date taken,
#: the lens...; GPS), which go with TIFF_EXIF_TAGS, whole.
TIFF_EXIF_IFDS = (0x8769, 0x8825)
#: The Exif directory's pointer to its interoperability directory.
EXIF_INTEROP = 0xA005


#: EXIF's ImageDescription and Orientation tags.
IMAGE_DESCRIPTION = 270
EXIF_ORIENTATION = 0x0112


def _layout_description(text: Any) -> bool:
    """Whether an ImageDescription is tifffile's or ImageJ's record of the TIFF's own array
    layout ('{"shape": [120, 200, 3]}', "shape=(...)", "ImageJ=..."), not words about the
    picture: it does not follow the pixels (turned upright it contradicts them, and readers of
    the output TIFF warn of a shape that does not match)."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    if not isinstance(text, str):
        return False
    text = text.strip()
    if text.startswith(("shape=(", "ImageJ=")):
        return True
    if not text.startswith("{"):
        return False
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's stack
        return False
    return isinstance(record, dict) and "shape" in record


def _tiff_exif(image: Image.Image) -> bytes:
    """The EXIF of a TIFF input: Pillow keeps it in the TIFF's own tags, beside the strip
    offsets and sample formats that must not follow the pixels, so only TIFF_EXIF_TAGS and
    the sub-directories of TIFF_EXIF_IFDS go."""
    tags = image.getexif()
    exif = Image.Exif()
    for tag in TIFF_EXIF_TAGS:
        if tag in tags and not (tag == IMAGE_DESCRIPTION and _layout_description(tags[tag])):
            exif[tag] = tags[tag]
    for tag in TIFF_EXIF_IFDS:
        directory = dict(tags.get_ifd(tag)) if tag in tags else {}
        if directory.pop(EXIF_INTEROP, None) is not None:  # an offset into the input, as read:
            interop = dict(tags.get_ifd(EXIF_INTEROP))  # its directory goes instead
            if interop:
                directory[EXIF_INTEROP] = interop
        if directory:
            exif[tag] = directory
    return exif.tobytes() if len(exif) else b""


def dropped_profile(image: Image.Image) -> str:
    """A note when the input's own ICC profile is left out because it describes another colour
    space than the samples stored (a CMYK JPEG's profile on its RGB samples), else ""."""
    profile = image.info.get("icc_profile")
    if profile and inherited_profile(image) is None:
        return (f"icc_profile not kept (a profile for {profile_space(profile)}; the samples are "
                f"stored as {'grey' if stored_channels(image) < 3 else 'RGB'})")
    return ""


def profile_space(profile: bytes) -> str:
    """The colour space an ICC profile declares (header bytes 16..19: "RGB", "GRAY",
    "CMYK"...), as a name for a message."""
    return bytes(profile[16:20]).decode("ascii", "replace").strip() or "?"


#: Colour tags of an input (Pillow's info keys, a PNG's gAMA, sRGB and cHRM chunks) that an
#: .svdi file has no field for: said on the line instead of dropped silently (a gAMA of 1.0,
#: linear light, decodes to a file that viewers show with sRGB's gamma).
COLOUR_TAGS = {"gamma": "gamma", "srgb": "sRGB intent", "chromaticity": "chromaticities"}


def dropped_colour_tags(image: Image.Image) -> str:
    """A note naming the input's colour tags that are not kept (COLOUR_TAGS), else ""."""
    info = image.info
    names = [f"{name} {info[key]:g}" if key == "gamma" and isinstance(info[key], (int, float))
             else name for key, name in COLOUR_TAGS.items() if info.get(key) is not None]
    if not names:
        return ""
    return f"{', '.join(names)} not kept (SVDI keeps an ICC profile, not these tags)"


def dropped_comment(image: Image.Image) -> str:
    """A note when the input carries a comment (a JPEG's COM segment, a GIF's comment
    extension: Pillow's info["comment"]), which an .svdi file has no field for, else ""."""
    if image.info.get("comment"):
        return "comment not kept (SVDI keeps text as keyword: value, not a bare comment)"
    return ""


def dropped_iptc(image: Image.Image) -> str:
    """A note when the input carries IPTC data (a JPEG's Photoshop segment, a TIFF's IPTC tag:
    caption, credit, copyright, keywords), which an .svdi file has no field for, else ""."""
    from PIL import IptcImagePlugin

    try:
        iptc = IptcImagePlugin.getiptcinfo(image)  # type: ignore[arg-type]
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError):
        iptc = {"unreadable": True}  # dropped all the same: said so
    if iptc:
        return ("IPTC not kept (SVDI has no IPTC field; XMP, which is kept, holds the same "
                "fields where the input has them)")
    return ""


def image_metadata(image: Image.Image) -> dict[str, Any]:
    """encode() keyword arguments for the metadata Pillow read from an input image."""
    info = image.info
    out: dict[str, Any] = {}
    text = {k: v for k, v in (getattr(image, "text", None) or {}).items()
            if k != PNG_XMP_KEY and isinstance(v, str)}
    exif = (info.get("exif") or (_tiff_exif(image) if image.format == "TIFF" else b"")
            or _raw_profile_exif(text))
    if exif:
        out["exif"] = exif
    profile = inherited_profile(image)  # not a CMYK profile on the RGB samples stored
    if profile:
        out["icc_profile"] = profile
    xmp = info.get("xmp") or info.get(PNG_XMP_KEY)
    if xmp:
        out["xmp"] = xmp
    if info.get("dpi"):
        out["dpi"] = info["dpi"]
    if text:
        out["text"] = text
    return out


#: The text keyword under which ImageMagick (and exiftool) write a PNG's EXIF, as hex.
RAW_PROFILE_EXIF = "Raw profile type exif"


def _raw_profile_exif(text: dict[str, str]) -> bytes:
    """The EXIF of a PNG that holds it as ImageMagick writes it (RAW_PROFILE_EXIF: a line
    naming the profile, one of its length, then hex), taken out of `text`, as Pillow's
    `getexif` reads it (without JPEG's "Exif\\0\\0" before it, which some writers put twice);
    b"" if there is none, or it is not hex or holds nothing (then it stays text)."""
    raw = text.get(RAW_PROFILE_EXIF)
    if raw is None:
        return b""
    try:
        exif = bytes.fromhex("".join(raw.split("\n")[3:]))
    except ValueError:
        return b""
    for _ in range(2):
        exif = exif.removeprefix(EXIF_PREFIX)
    if exif:
        del text[RAW_PROFILE_EXIF]
    return exif


def storable(metadata: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The metadata the format can store, and why each other item cannot be (an input's
    malformed EXIF or oversized text costs that item, not the whole encode)."""
    kept: dict[str, Any] = {}
    problems = []
    items = [(key, value) for key, value in metadata.items() if key != "text"]
    items += [("text", {k: v}) for k, v in metadata.get("text", {}).items()]
    texts, text_bytes, beyond = 0, 0, 0  # (spec §1.1 bounds a file's texts together)
    for key, value in items:
        try:
            chunk = metadata_chunks(**{key: value})
        except SvdiError as exc:
            problems.append(f"{key} not kept ({exc})")
            continue
        if key != "text":
            kept[key] = value
        elif texts < MAX_TEXTS and text_bytes + len(chunk[0][1]) <= MAX_TEXT_TOTAL:
            texts, text_bytes = texts + 1, text_bytes + len(chunk[0][1])
            kept.setdefault("text", {}).update(value)
        else:
            beyond += 1
    if beyond:
        problems.append(f"text not kept: {beyond} of the input's texts, past the format's "
                        f"{MAX_TEXTS} texts of {MAX_TEXT_TOTAL} bytes together")
    return kept, problems


def save_options(fmt: str, metadata: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Pillow save() keywords that write `metadata` (read_metadata's dict) into format `fmt`,
    and the names of the metadata that format's writer cannot take."""
    allowed = WRITABLE.get(fmt, ())
    dropped = sorted(k for k in metadata if k not in allowed)
    kept = {k: v for k, v in metadata.items() if k in allowed}
    options: dict[str, Any] = {}
    if "exif" in kept:
        options["exif"] = EXIF_PREFIX + kept["exif"]
    if "icc_profile" in kept:
        options["icc_profile"] = kept["icc_profile"]
    if "dpi" in kept:
        options["dpi"] = kept["dpi"]
    if fmt == "SVDI":  # the encoder's own keywords
        options.update({k: v for k, v in kept.items() if k != "exif"})
    elif fmt == "PNG" and ("text" in kept or "xmp" in kept):
        info = PngImagePlugin.PngInfo()
        for key, value in kept.get("text", {}).items():
            info.add_itxt(key, value)
        if "xmp" in kept:  # where Pillow's PNG reader looks for it
            info.add_itxt(PNG_XMP_KEY, kept["xmp"].decode("utf-8"))
        options["pnginfo"] = info
    elif fmt == "TIFF" and "xmp" in kept:  # TIFF tag 700, beside the EXIF tags
        exif = Image.Exif()
        if "exif" in kept:
            exif.load(options["exif"])
        exif[700] = kept["xmp"]
        options["exif"] = exif
    elif "xmp" in kept:
        options["xmp"] = kept["xmp"]
    return options, dropped


def default_suffix(pixels_dtype: np.dtype, channels: int) -> str:
    """The output suffix when none is asked for: PNG holds 8-bit and 16-bit grey, and 16-bit
    colour with the 16bit extra; TIFF a float (F) or int32 (I) image; .npy what no Pillow mode
    holds."""
    from ..modes import PILLOW_MODES
    from .deep_images import writes_deep

    mode = PILLOW_MODES.get((np.dtype(pixels_dtype), channels))
    if mode is None:
        return ".png" if writes_deep(pixels_dtype, channels) else ".npy"
    return ".tiff" if mode in ("F", "I") else ".png"  # PNG holds neither


def caught_warnings(record: list[warnings.WarningMessage]) -> str:
    """The DecompressionBombWarnings of a decode as one message suffix ("" if none)."""
    texts = [str(w.message) for w in record
             if issubclass(w.category, Image.DecompressionBombWarning)]
    return "".join(f" (warning: {t})" for t in texts)
