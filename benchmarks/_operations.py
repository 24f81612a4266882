"""The operations speed.py times and measures, each as a user writes it.

`prepare(name)` imports what the operation needs (and nothing else, so that a fresh process
pays what a user's program pays) and returns a function of one input:

- encode operations take a uint8 array and return the file's bytes; save operations take a
  Pillow image of it, made before the operation (what `im.save` alone costs), and return the
  file's bytes;
- decode operations take a path or the file's bytes and return the decoded image (a Pillow
  image or a numpy array), which the caller keeps until it has measured memory.

No heavy import at module level: the fresh-process child times `prepare` as its import cost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: name -> what it does, as printed in the reports.
OPERATIONS = {
    "svdi encode": "svdcodec.encode(array)",
    "svdi encode Pillow": 'Image.fromarray(array).save(buffer, "SVDI")',
    "JPEG encode": 'Image.fromarray(array).save(buffer, "JPEG", quality=75)',
    "svdi save Pillow": 'image.save(buffer, "SVDI")',
    "JPEG save Pillow": 'image.save(buffer, "JPEG", quality=75)',
    "WebP encode": 'Image.fromarray(array).save(buffer, "WEBP") (Pillow default quality 80)',
    "svdi-deblock encode": "svdcodec.encode(array, deblock=True)",
    "svdi-deblock save Pillow": 'image.save(buffer, "SVDI", deblock=True)',
    "svdi-nodeblock encode": "svdcodec.encode(array, deblock=False)",
    "svdi decode Pillow": "Image.open(file).load()",
    "svdi decode numpy": "svdcodec.decode(file bytes)",
    "svdi-deblock decode Pillow": "Image.open(file).load() of a deblock=True file",
    "svdi-deblock decode numpy": "svdcodec.decode(file bytes) of a deblock=True file",
    "svdi-nodeblock decode Pillow": "Image.open(file).load() of a deblock=False file",
    "svdi-nodeblock decode numpy": "svdcodec.decode(file bytes) of a deblock=False file",
    "JPEG decode Pillow": "Image.open(file).load()",
    "JPEG decode numpy": "numpy.asarray(Image.open(file))",
    "WebP decode Pillow": "Image.open(file).load()",
}

#: The codec whose encoder makes the input file of each decode operation.
SOURCE_CODEC = {name: name.split()[0] for name in OPERATIONS}

#: Pillow's save arguments for the comparison codecs.
PILLOW_SAVE = {"JPEG": ("JPEG", {"quality": 75}), "WebP": ("WEBP", {}), "svdi": ("SVDI", {}),
               "svdi-deblock": ("SVDI", {"deblock": True}),
               "svdi-nodeblock": ("SVDI", {"deblock": False})}
#: The svdi codecs: the default (the deblocking filter since 2026-12-03), and either setting.
SVDI_CODECS = {"svdi": None, "svdi-deblock": True, "svdi-nodeblock": False}


def is_encode(name: str) -> bool:
    """Whether the operation's input is an array (a save's is an image made of one)."""
    return name.split()[1] in ("encode", "save")


def is_save(name: str) -> bool:
    return name.split()[1] == "save"


def prepare(name: str) -> Callable[[Any], Any]:
    """The operation `name` of OPERATIONS, its modules imported."""
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {name!r}; known: {', '.join(OPERATIONS)}")
    codec, kind, *path = name.split()
    via = path[0] if path else "numpy"
    if codec in SVDI_CODECS and via == "numpy":
        import svdcodec

        if kind == "encode":
            deblock = SVDI_CODECS[codec]
            if deblock is not None:  # either setting (benchmarks/deblock_cost.py)
                return lambda array: svdcodec.encode(array, deblock=deblock)
            return svdcodec.encode

        def decode_numpy(source: Any) -> Any:
            if not isinstance(source, bytes):
                with open(source, "rb") as f:
                    source = f.read()
            # No pixel cap: the benchmark's own large images (100 MP) exceed Pillow's default.
            return svdcodec.decode(source, max_pixels=None)
        return decode_numpy

    from io import BytesIO

    from PIL import Image

    if codec in SVDI_CODECS:
        import svdcodec
    Image.MAX_IMAGE_PIXELS = None  # as above: the 100 MP image is no decompression bomb here

    if kind == "save":
        pillow_format, options = PILLOW_SAVE[codec]

        def save_pillow(image: Any) -> bytes:
            buffer = BytesIO()
            image.save(buffer, pillow_format, **options)
            return buffer.getvalue()
        return save_pillow

    if kind == "encode":

        pillow_format, options = PILLOW_SAVE[codec]

        def encode_pillow(array: Any) -> bytes:
            buffer = BytesIO()
            Image.fromarray(array).save(buffer, pillow_format, **options)
            return buffer.getvalue()
        return encode_pillow

    def opened(source: Any) -> Any:
        return Image.open(BytesIO(source) if isinstance(source, bytes) else source)

    if via == "numpy":
        import numpy as np

        def decode_to_array(source: Any) -> Any:
            with opened(source) as im:
                return np.asarray(im)
        return decode_to_array

    def decode_pillow(source: Any) -> Any:
        im = opened(source)
        im.load()  # not closed: closing would free the pixels the caller measures
        return im
    return decode_pillow


def encoder_of(codec: str) -> Callable[[Any], bytes]:
    """The encoder that makes a decode operation's input file."""
    return prepare("svdi encode" if codec == "svdi" else f"{codec} encode")
