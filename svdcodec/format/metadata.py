"""Metadata chunks (spec/svdi.md §1.1): EXIF, ICC profile, XMP, physical pixel size, text.

They are ancillary chunks (lower-case first letter), modelled on PNG's eXIf, iCCP, pHYs and
iTXt plus an XMP chunk: a reader that does not know them skips them and still decodes the
pixels, so they need no new format version. This reader checks every one it knows against
its limits before anything is allocated (the ICC profile's zstd frame declares its size, which
is checked before decompressing), and `MetadataReader` is the one place that parses them, for
the full reader (`reader.unpack`) and the header-only one (`reader.read_prefix`) alike, so the
two accept and reject the same files.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import zstandard

from ..errors import SvdiError
from .blocks import decompress

__all__ = [
    "EXIF_CHUNK",
    "EXIF_PREFIX",
    "ICC_CHUNK",
    "MAX_EXIF",
    "MAX_ICC",
    "MAX_TEXT",
    "MAX_TEXTS",
    "MAX_TEXT_TOTAL",
    "MAX_XMP",
    "METADATA_CHUNKS",
    "PHYS_CHUNK",
    "TEXT_CHUNK",
    "XMP_CHUNK",
    "Metadata",
    "MetadataReader",
    "metadata_chunks",
]

EXIF_CHUNK = b"eXIf"  # EXIF as a TIFF structure, as PNG's eXIf
ICC_CHUNK = b"iCCP"  # profile name, NUL, method 0, zstd frame of the ICC profile
XMP_CHUNK = b"xMPd"  # an XMP packet, UTF-8
PHYS_CHUNK = b"pHYs"  # pixels per unit x, y (u32 each), unit (u8), as PNG's pHYs
TEXT_CHUNK = b"iTXt"  # PNG's iTXt layout, uncompressed only
METADATA_CHUNKS = (EXIF_CHUNK, ICC_CHUNK, XMP_CHUNK, PHYS_CHUNK, TEXT_CHUNK)

#: Largest EXIF, ICC profile (decompressed) and XMP packet, in bytes.
MAX_EXIF = 1 << 24
MAX_ICC = 1 << 24
MAX_XMP = 1 << 24
#: Largest iTXt payload (Pillow's PNG reader stops at 1 MiB per text chunk as well), most
#: iTXt chunks in a file, and most bytes of their payloads together: what a reader holds of
#: a file's texts is bounded, as it is of its other metadata (spec §1.1).
MAX_TEXT = 1 << 20
MAX_TEXTS = 4096
MAX_TEXT_TOTAL = 1 << 24
#: Most metadata chunks a valid file holds: each kind but iTXt once, iTXt MAX_TEXTS times.
MAX_METADATA_CHUNKS = 4 + MAX_TEXTS
#: Largest payload each chunk type may declare, checked before it is read from a file.
MAX_PAYLOAD = {EXIF_CHUNK: MAX_EXIF, ICC_CHUNK: 80 + 1 + 18 + MAX_ICC + (MAX_ICC >> 7) + 64,
               XMP_CHUNK: MAX_XMP, PHYS_CHUNK: 9, TEXT_CHUNK: MAX_TEXT}

#: What Pillow's JPEG and PNG readers put before the TIFF structure in im.info["exif"].
EXIF_PREFIX = b"Exif\x00\x00"
EXIF_ORDERS = (b"II*\x00", b"MM\x00*")
PHYS_RECORD = struct.Struct(">IIB")
UNIT_NONE, UNIT_METRE, UNIT_INCH = 0, 1, 2
ICC_METHOD_ZSTD = 0
#: The profile name written for an ICC profile (Pillow's PNG writer uses the same).
ICC_NAME = "ICC Profile"
ICC_HEADER = 128  # an ICC profile starts with a 128-byte header, then its tag count


@dataclass
class Metadata:
    """The metadata of one file; None / empty where the file has no such chunk."""

    exif: bytes | None = None  # TIFF structure, without Pillow's "Exif\\0\\0" prefix
    icc_profile: bytes | None = None
    xmp: bytes | None = None
    dpi: tuple[float, float] | None = None  # from pHYs with unit inch (ints) or metre (floats)
    text: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # stored chunk bytes by chunk type

    def as_dict(self) -> dict[str, Any]:
        """Only what the file holds: keys exif, icc_profile, xmp, dpi, text."""
        out: dict[str, Any] = {}
        for key in ("exif", "icc_profile", "xmp", "dpi"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.text:
            out["text"] = dict(self.text)
        return out


# ----------------------------------------------------------------------------- checks


def _keyword(raw: bytes, what: str) -> str:
    """A PNG keyword: 1-79 printable Latin-1 characters (32-126, 161-255)."""
    if not 1 <= len(raw) <= 79 or any(c < 32 or 126 < c < 161 for c in raw):
        raise SvdiError(f"{what}: keyword must be 1-79 printable Latin-1 characters")
    return raw.decode("latin-1")


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SvdiError(f"{what}: text is not UTF-8") from None


def _check_exif(raw: bytes, what: str) -> bytes:
    if len(raw) < 8 or raw[:4] not in EXIF_ORDERS:
        raise SvdiError(f"{what}: EXIF must be a TIFF structure starting with II*\\0 or MM\\0*")
    if len(raw) > MAX_EXIF:
        raise SvdiError(f"{what}: {len(raw)} bytes of EXIF exceed the limit of {MAX_EXIF}")
    return raw


def _check_icc(profile: bytes, what: str) -> bytes:
    """The ICC header's own size field and signature: enough to catch a wrong blob."""
    if not ICC_HEADER + 4 <= len(profile) <= MAX_ICC:
        raise SvdiError(f"{what}: an ICC profile has {ICC_HEADER + 4}..{MAX_ICC} bytes, "
                        f"got {len(profile)}")
    (declared,) = struct.unpack_from(">I", profile)
    if declared != len(profile) or profile[36:40] != b"acsp":
        raise SvdiError(f"{what}: not an ICC profile (size field {declared} for "
                        f"{len(profile)} bytes, signature {profile[36:40]!r})")
    return profile


def _check_xmp(raw: bytes, what: str) -> bytes:
    if not 1 <= len(raw) <= MAX_XMP:
        raise SvdiError(f"{what}: an XMP packet has 1..{MAX_XMP} bytes, got {len(raw)}")
    _utf8(raw, what)
    return raw


# ----------------------------------------------------------------------------- reading


class MetadataReader:
    """Parses the metadata chunks of one file, in file order.

    Rules (spec §1.1): each of eXIf, iCCP, xMPd, pHYs at most once, iTXt keywords distinct,
    at most MAX_TEXTS iTXt chunks of at most MAX_TEXT_TOTAL bytes together, all of them before
    the first factor block. `blocks_seen` is set by the caller when the
    first factor block passes.
    """

    def __init__(self) -> None:
        self.metadata = Metadata()
        self.blocks_seen = False
        self.text_bytes = 0  # the iTXt payloads' bytes so far

    def add(self, kind: bytes, payload: memoryview | bytes) -> bool:
        """Parse one ancillary chunk; False if it is not a metadata chunk (skip it)."""
        if kind not in METADATA_CHUNKS:
            return False
        name = kind.decode()
        if self.blocks_seen:
            raise SvdiError(f"{name} chunk after the factor blocks")
        if len(payload) > MAX_PAYLOAD[kind]:
            raise SvdiError(f"{name} chunk of {len(payload)} bytes exceeds its limit "
                            f"of {MAX_PAYLOAD[kind]}")
        m = self.metadata
        if kind != TEXT_CHUNK and name in m.sizes:
            raise SvdiError(f"more than one {name} chunk")
        if kind == TEXT_CHUNK:  # (checked before the text is read)
            if len(m.text) == MAX_TEXTS:
                raise SvdiError(f"more than {MAX_TEXTS} iTXt chunks")
            if self.text_bytes + len(payload) > MAX_TEXT_TOTAL:
                raise SvdiError(f"iTXt chunks of more than {MAX_TEXT_TOTAL} bytes together")
            self.text_bytes += len(payload)
        raw = bytes(payload)
        if kind == EXIF_CHUNK:
            m.exif = _check_exif(raw, name)
        elif kind == ICC_CHUNK:
            m.icc_profile = _parse_icc(raw)
        elif kind == XMP_CHUNK:
            m.xmp = _check_xmp(raw, name)
        elif kind == PHYS_CHUNK:
            m.dpi = _parse_phys(raw)
        else:
            key, text = _parse_text(raw)
            if key in m.text:
                raise SvdiError(f"iTXt: keyword {key!r} appears twice")
            m.text[key] = text
        m.sizes[name] = m.sizes.get(name, 0) + len(payload) + 12
        return True


def _parse_icc(raw: bytes) -> bytes:
    end = raw.find(b"\0", 0, 81)
    if end < 0:
        raise SvdiError("iCCP: profile name not terminated within 80 bytes")
    _keyword(raw[:end], "iCCP")
    if len(raw) < end + 2 or raw[end + 1] != ICC_METHOD_ZSTD:
        raise SvdiError("iCCP: compression method must be 0 (zstd)")
    frame = memoryview(raw)[end + 2:]
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError as exc:
        raise SvdiError(f"iCCP: bad zstd frame ({exc})") from None
    if not 0 <= declared <= MAX_ICC:  # -1: the size is not declared
        raise SvdiError(f"iCCP: zstd frame must declare a content size of at most {MAX_ICC}")
    # The profile's header first: a frame that claims megabytes of something that is not an
    # ICC profile is refused before they are allocated.
    try:
        with zstandard.ZstdDecompressor().stream_reader(frame) as reader:
            head = reader.read(40)
    except zstandard.ZstdError as exc:
        raise SvdiError(f"iCCP: corrupt zstd data ({exc})") from None
    if len(head) < 40 or struct.unpack_from(">I", head)[0] != declared or head[36:] != b"acsp":
        raise SvdiError(f"iCCP: not an ICC profile (its header does not give its size "
                        f"{declared} and the signature 'acsp')")
    return _check_icc(decompress(frame, declared, "iCCP"), "iCCP")


def _parse_phys(raw: bytes) -> tuple[float, float] | None:
    if len(raw) != PHYS_RECORD.size:
        raise SvdiError(f"pHYs chunk has {len(raw)} bytes, expected {PHYS_RECORD.size}")
    x, y, unit = PHYS_RECORD.unpack(raw)
    if not (x and y) or unit not in (UNIT_NONE, UNIT_METRE, UNIT_INCH):
        raise SvdiError(f"pHYs: invalid pixel size {x}/{y} per unit {unit}")
    if unit == UNIT_INCH:
        return (x, y)
    if unit == UNIT_METRE:  # as Pillow's PNG reader reports it
        return (x * 0.0254, y * 0.0254)
    return None  # an aspect ratio only


def _parse_text(raw: bytes) -> tuple[str, str]:
    """PNG's iTXt: keyword, NUL, compression flag, method, language, NUL, translated keyword,
    NUL, text. Only uncompressed text (flag 0, method 0)."""
    end = raw.find(b"\0", 0, 80)
    if end < 0:
        raise SvdiError("iTXt: keyword not terminated within 80 bytes")
    key = _keyword(raw[:end], "iTXt")
    if raw[end + 1:end + 3] != b"\0\0":
        raise SvdiError(f"iTXt {key!r}: only uncompressed text (flag 0, method 0) is allowed")
    lang_end = raw.find(b"\0", end + 3)
    tkey_end = raw.find(b"\0", lang_end + 1) if lang_end >= 0 else -1
    if tkey_end < 0:
        raise SvdiError(f"iTXt {key!r}: language tag or translated keyword not terminated")
    language = raw[end + 3:lang_end]
    if not all(c == 45 or 48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 for c in language):
        raise SvdiError(f"iTXt {key!r}: invalid language tag")
    _utf8(raw[lang_end + 1:tkey_end], f"iTXt {key!r}")
    text = raw[tkey_end + 1:]
    if b"\0" in text:
        raise SvdiError(f"iTXt {key!r}: NUL inside the text")
    return key, _utf8(text, f"iTXt {key!r}")


# ----------------------------------------------------------------------------- writing


class MetadataTypeError(SvdiError, TypeError):
    """A metadata option of a type it does not take (False, 0, a list...): a TypeError, and
    an SvdiError as every refusal of the encoder's input is."""


BYTES_TYPES = (bytes, bytearray, memoryview)


def _exif_bytes(exif: Any) -> bytes:
    """EXIF as bytes, from bytes (with or without "Exif\\0\\0") or a PIL.Image.Exif."""
    if hasattr(exif, "tobytes"):
        exif = exif.tobytes()
    if not isinstance(exif, BYTES_TYPES):
        raise MetadataTypeError(f"exif must be bytes or PIL.Image.Exif, got "
                                f"{type(exif).__name__} {exif!r:.40}")
    raw = bytes(exif)
    return raw.removeprefix(EXIF_PREFIX)


def _bytes(value: Any, what: str, text: bool = False) -> bytes:
    """A bytes option's bytes (text: a str too, as UTF-8)."""
    if text and isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, BYTES_TYPES):
        return bytes(value)
    raise MetadataTypeError(f"{what} must be bytes{' or str' if text else ''}, got "
                            f"{type(value).__name__} {value!r:.40}")


#: Half a pixel per metre, in dots per inch: how far PNG's pHYs (whole pixels per metre) may
#: put a whole number of dots per inch (300 dpi reads back from a PNG as 299.9994).
PNG_DPI_RESOLUTION = 0.5 * 0.0254


def _dpi_record(dpi: Any) -> bytes:
    """pHYs for (x, y) dots per inch: whole dots per inch (unit 2) where both values are within
    PNG_DPI_RESOLUTION of whole numbers, so that 300 from a JPEG or TIFF (or 299.9994 from a
    PNG) comes back as exactly 300; else whole pixels per metre (unit 1, as PNG), so that 300.5
    is kept to within that resolution (it reads back as 0.0254 x 11831 = 300.5074, as from a
    PNG) instead of being rounded to 300."""
    try:
        x, y = (float(v) for v in dpi)
    except (TypeError, ValueError):
        raise SvdiError(f"dpi must be a pair of numbers, got {dpi!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise SvdiError(f"dpi must be a pair of finite numbers, got {dpi!r}")
    if max(abs(x - round(x)), abs(y - round(y))) <= PNG_DPI_RESOLUTION:
        values, unit = (round(x), round(y)), UNIT_INCH
    else:
        values, unit = (round(x / 0.0254), round(y / 0.0254)), UNIT_METRE
    if not all(1 <= v < 1 << 32 for v in values):
        raise SvdiError(f"dpi must round to whole numbers of dots per inch or pixels per metre "
                        f"within 1..2^32-1, got {dpi!r}")
    return PHYS_RECORD.pack(*values, unit)


def _text_record(key: Any, value: Any) -> bytes:
    if not isinstance(key, str) or not isinstance(value, str):
        raise MetadataTypeError(f"text keys and values must be str, got {key!r}: "
                                f"{type(value).__name__}")
    try:
        raw_key = key.encode("latin-1")
    except UnicodeEncodeError:
        raise SvdiError(f"text keyword {key!r} is not Latin-1") from None
    _keyword(raw_key, f"text keyword {key!r}")
    if "\0" in value:
        raise SvdiError(f"text {key!r} contains NUL")
    payload = raw_key + b"\0\0\0\0\0" + value.encode("utf-8")
    if len(payload) > MAX_TEXT:
        raise SvdiError(f"text {key!r} of {len(payload)} bytes exceeds the limit of {MAX_TEXT}")
    return payload


def metadata_chunks(exif: Any = None, icc_profile: Any = None, xmp: Any = None,
                    dpi: Any = None, text: Mapping[str, str] | None = None
                    ) -> list[tuple[bytes, bytes]]:
    """(type, payload) of the chunks for the given metadata, each checked as a reader would.

    None and empty values (b"", "", {}) write nothing, as Pillow's writers do for exif=b"".
    Any other type (False and 0 among them, which are not empty metadata) raises
    MetadataTypeError, a TypeError and an SvdiError: exif is bytes or a PIL.Image.Exif,
    icc_profile bytes, xmp bytes or str, text a mapping of str to str.
    """
    chunks: list[tuple[bytes, bytes]] = []
    profile = b"" if icc_profile is None else _bytes(icc_profile, "icc_profile")
    if profile:
        profile = _check_icc(profile, "icc_profile")
        frame = zstandard.ZstdCompressor(level=19, write_content_size=True).compress(profile)
        chunks.append((ICC_CHUNK, ICC_NAME.encode("latin-1") + b"\0" + bytes([ICC_METHOD_ZSTD])
                       + frame))
    if dpi is not None:
        chunks.append((PHYS_CHUNK, _dpi_record(dpi)))
    if exif is not None:
        raw = _exif_bytes(exif)
        if raw:
            chunks.append((EXIF_CHUNK, _check_exif(raw, "exif")))
    packet = b"" if xmp is None else _bytes(xmp, "xmp", text=True)
    if packet:
        chunks.append((XMP_CHUNK, _check_xmp(packet, "xmp")))
    if text is not None:
        if not isinstance(text, Mapping):
            raise MetadataTypeError(f"text must be a mapping of keyword to str, got "
                                    f"{type(text).__name__} {text!r:.40}")
        if len(text) > MAX_TEXTS:
            raise SvdiError(f"{len(text)} texts exceed the limit of {MAX_TEXTS}")
        texts = [(TEXT_CHUNK, _text_record(k, v)) for k, v in text.items()]
        total = sum(len(payload) for _, payload in texts)
        if total > MAX_TEXT_TOTAL:
            raise SvdiError(f"texts of {total} bytes together exceed the limit of "
                            f"{MAX_TEXT_TOTAL}")
        chunks += texts
    return chunks
