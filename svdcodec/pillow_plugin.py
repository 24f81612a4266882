"""Pillow plugin: ``Image.open("x.svdi")`` and ``im.save("x.svdi")``.

Modelled on Pillow's QoiImagePlugin. Opening reads only the signature, HEAD and PLAN chunks, so
``Image.open`` stays lazy and cheap and Pillow's DecompressionBombError check sees the size
before any factor data is touched. ``load()`` then decodes the whole file with the numpy decoder.
Importing :mod:`svdcodec` registers the format; :func:`register` may be called again safely.
"""

from __future__ import annotations

from typing import IO

import numpy as np
from PIL import Image, ImageFile

from .decoder import decode
from .encoder import encode, encode_options
from .errors import SvdiError
from .format import SIGNATURE, Header, read_headers
from .modes import PILLOW_MODES

FORMAT = "SVDI"
EXTENSION = ".svdi"
MIME = "image/x-svdi"
DECODER = "svdi"

#: Raw modes whose byte layout matches the array we hand to set_as_raw.
RAWMODES = {"I;16": "I;16", "F": "F;32F"}  # I;16 is little-endian; F;32F is native float32


def pillow_mode(header: Header) -> str:
    """The Pillow mode of an image with this header, or OSError naming the numpy-only case.

    OSError rather than SyntaxError: the file *is* SVDI, so Pillow must not go on to report
    "cannot identify image file", which would hide the real reason.
    """
    mode = PILLOW_MODES.get((header.dtype, header.channels))
    if mode is None:
        raise OSError(f"SVDI image with {header.channels} {header.dtype} channels has no Pillow "
                      "mode; read it with svdcodec.decode()")
    return mode


def _accept(prefix: bytes) -> bool:
    return prefix.startswith(SIGNATURE)


class SvdiImageFile(ImageFile.ImageFile):
    """An .svdi file opened by Pillow: headers now, pixels on load()."""

    format = FORMAT
    format_description = "SVD image (svdcodec)"

    def _open(self) -> None:
        assert self.fp is not None
        try:
            header, planes = read_headers(self.fp)
        except SvdiError as exc:  # SyntaxError lets Pillow say "cannot identify image file"
            raise SyntaxError(str(exc)) from exc
        self._mode = pillow_mode(header)
        self._size = (header.width, header.height)
        self.info["svdi_version"] = header.version
        self.info["svdi_ranks"] = tuple(p.rank for p in planes)
        # One tile covering the image; the decoder reads the whole file itself.
        self.tile = [ImageFile._Tile(DECODER, (0, 0, *self._size), 0, None)]


class SvdiDecoder(ImageFile.PyDecoder):
    """Decodes the whole file at once: SVD factors are global, there are no scanlines."""

    _pulls_fd = True

    def decode(self, buffer: Image.DecoderInput) -> tuple[int, int]:
        assert self.fd is not None
        self.fd.seek(0)
        try:
            pixels = decode(self.fd.read(), max_pixels=None)  # Image.open checked the size
        except SvdiError as exc:  # Pillow reports broken image data as OSError
            raise OSError(f"broken SVDI file: {exc}") from exc
        self.set_as_raw(_raw_bytes(pixels, self.mode), RAWMODES.get(self.mode, self.mode))
        return -1, 0


def _raw_bytes(pixels: np.ndarray, mode: str) -> bytes:
    """Pixels in the byte order of RAWMODES[mode], after checking they fit the opened mode."""
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if PILLOW_MODES.get((pixels.dtype, channels)) != mode:
        raise OSError(f"broken SVDI file: decoded {channels} {pixels.dtype} channels, "
                      f"header promised mode {mode}")
    if mode == "I;16":
        pixels = pixels.astype("<u2", copy=False)
    return np.ascontiguousarray(pixels).tobytes()


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    """Save with options from ``im.save(..., quality=, rank=, energy=, target_psnr=,
    max_bytes=, layout=)``; invalid options or modes raise SvdiError (a ValueError)."""
    fp.write(encode(im, **encode_options(**im.encoderinfo)))


def register() -> None:
    """Register the SVDI format with Pillow. Idempotent: Pillow's registries are dictionaries."""
    Image.register_open(FORMAT, SvdiImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)
    Image.register_decoder(DECODER, SvdiDecoder)


register()
