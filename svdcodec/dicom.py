"""DICOM images as .svdi files: the pixel data in its own type and range (int16 for CT, the
stored values before any rescale), and the attributes a reader needs to get the modality's
units back and to show the image, in iTXt text chunks (spec §1.1) under "DICOM <keyword>".

    >>> from svdcodec import dicom
    >>> data = dicom.encode_dicom("CT_small.dcm", max_error=0)     # lossless
    >>> image = dicom.decode_dicom(data)
    >>> image.pixels.dtype, image.slope, image.intercept             # int16, 1.0, -1024.0
    >>> hounsfield = image.modality_values()                         # slope * pixels + intercept

Needs pydicom (`pip install ".[dicom]"`) to read DICOM; decoding needs only svdcodec.
Single-frame images: grey, RGB, Y'CbCr (stored as the RGB pydicom makes of it) and palette
colour (stored as the RGB its palette gives); the pixel data's compression is whatever pydicom
can decode with the handlers installed. `svdi-encode file.dcm`
uses this module.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .decoder import decode, read_metadata
from .errors import SvdiError

#: The attributes kept, by DICOM keyword: what turns stored values into the modality's units
#: (Rescale*), what a viewer needs to show them (Photometric*, Window*, Bits*, pixel size) and
#: what the image is (Modality, SOP class).
KEPT = ("Modality", "SOPClassUID", "PhotometricInterpretation", "BitsAllocated", "BitsStored",
        "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept", "RescaleType",
        "WindowCenter", "WindowWidth", "PixelSpacing", "SliceThickness", "ImageOrientationPatient",
        "ImagePositionPatient")
#: Keyword prefix of the text chunks that hold them.
PREFIX = "DICOM "
#: DICOM Part 10 files have this at offset 128, after the preamble.
MAGIC_OFFSET, MAGIC = 128, b"DICM"


def is_dicom(data: bytes) -> bool:
    """Whether `data` starts like a DICOM Part 10 file (preamble, then "DICM")."""
    return bytes(data[MAGIC_OFFSET:MAGIC_OFFSET + 4]) == MAGIC


def _pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise SvdiError("reading DICOM needs pydicom: pip install pydicom (the dicom extra)"
                        ) from None
    return pydicom


def _as_text(value: Any) -> str:
    """A DICOM value as DICOM writes it in text: multiple values joined by backslashes."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def read_dicom(source: str | os.PathLike[str] | bytes | Any) -> tuple[np.ndarray, dict[str, str]]:
    """(pixels, text) of a single-frame DICOM image: the stored values in their own type
    (pydicom's pixel_array, native byte order), and the kept attributes as text chunks
    {"DICOM <keyword>": value}. `source`: a path, the file's bytes or a pydicom Dataset."""
    pydicom = _pydicom()
    if isinstance(source, (bytes, bytearray, memoryview)):
        dataset = pydicom.dcmread(io.BytesIO(bytes(source)))
    elif isinstance(source, (str, os.PathLike)):
        dataset = pydicom.dcmread(source)
    else:
        dataset = source
    if "PixelData" not in dataset:
        raise SvdiError("the DICOM file holds no pixel data")
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise SvdiError(f"a DICOM image of {frames} frames: encode its frames one at a time "
                        "(read_dicom(...)[0][i] with svdcodec.encode)")
    try:
        pixels = np.asarray(dataset.pixel_array)
    except Exception as exc:  # pydicom's handlers raise many types for undecodable data
        raise SvdiError(f"pydicom cannot decode this pixel data: {exc}") from None
    if not pixels.dtype.isnative:
        pixels = pixels.astype(pixels.dtype.newbyteorder("="))
    text = {PREFIX + key: _as_text(dataset.data_element(key).value)
            for key in KEPT if key in dataset and dataset.data_element(key).value is not None}
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    palette, ycc = photometric == "PALETTE COLOR", photometric.startswith("YBR")
    if (palette or ycc) and int(pydicom.__version__.split(".")[0]) < 3:  # (kept Y'CbCr as is)
        raise SvdiError(f"a DICOM image of {photometric} needs pydicom 3 or later "
                        f"(this is {pydicom.__version__}): pip install -U pydicom")
    if palette:  # the picture, not the indices of its palette
        from pydicom.pixels import apply_color_lut

        try:
            pixels = np.asarray(apply_color_lut(pixels, dataset))
        except Exception as exc:  # noqa: BLE001 (pydicom raises many types for a bad palette)
            raise SvdiError(f"the DICOM image's palette cannot be applied: {exc}") from None
    if palette or (ycc and pixels.ndim == 3):
        # stored as RGB (pydicom >= 3 turns Y'CbCr pixel data into RGB): the attributes say so
        bits = str(8 * pixels.dtype.itemsize)
        text.update({PREFIX + "PhotometricInterpretation": "RGB", PREFIX + "BitsAllocated": bits,
                     PREFIX + "BitsStored": bits, PREFIX + "HighBit": str(int(bits) - 1),
                     PREFIX + "PixelRepresentation": "0"})
    return pixels, text


def encode_dicom(source: str | os.PathLike[str] | bytes | Any, **options: Any) -> bytes:
    """A DICOM image as .svdi bytes: `read_dicom`, then `svdcodec.encode` with these options
    (max_error=0 is lossless); the attributes join any `text` given."""
    from .encoder import encode

    pixels, text = read_dicom(source)
    options["text"] = {**text, **(options.get("text") or {})}
    return encode(pixels, **options)


@dataclass(frozen=True)
class DicomImage:
    """A decoded image and the DICOM attributes stored with it (by keyword, as text)."""

    pixels: np.ndarray
    attributes: dict[str, str]

    def number(self, keyword: str, default: float) -> float:
        """A single-valued numeric attribute, or `default` if the file has none."""
        text = self.attributes.get(keyword)
        if text is None or text.strip() == "":
            return default
        try:
            return float(text.split("\\")[0])
        except ValueError:
            raise SvdiError(f"DICOM {keyword} {text!r} is not a number") from None

    @property
    def slope(self) -> float:
        return self.number("RescaleSlope", 1.0)

    @property
    def intercept(self) -> float:
        return self.number("RescaleIntercept", 0.0)

    def modality_values(self) -> np.ndarray:
        """slope * pixels + intercept in float64: Hounsfield units for CT (DICOM's modality
        LUT when it is linear; the stored values themselves without a rescale)."""
        return self.pixels.astype(np.float64) * self.slope + self.intercept


def decode_dicom(data: bytes, **options: Any) -> DicomImage:
    """.svdi bytes of `encode_dicom` back to the pixels (their stored type) and attributes;
    `options` are svdcodec.decode's."""
    text = read_metadata(data).get("text", {})
    attributes = {key[len(PREFIX):]: value for key, value in text.items()
                  if key.startswith(PREFIX)}
    return DicomImage(decode(data, **options), attributes)
