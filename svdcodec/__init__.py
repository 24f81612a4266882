"""svdcodec: the .svdi image format, built on the truncated singular value decomposition.

    >>> import svdcodec
    >>> data = svdcodec.encode(array, quality=75)
    >>> array2 = svdcodec.decode(data)
    >>> svdcodec.read_metadata(svdcodec.encode(array, exif=exif_bytes))  # {"exif": ...}

The pipeline, and the package that holds each step (spec/svdi.md describes the bytes):

    image --modes--> samples --codec.colour--> planes --codec.layout--> matrices
      --codec.factorize--> factors (U Sigma, sigma, V Sigma) --codec.quantize--> integers
      --codec.coding--> symbols --format.writer--> blocks (zstd) --> chunks --> bytes

`encoder` runs that chain forwards, band by band; `decoder` runs it backwards (`format.reader`
parses the bytes, `decoder.factors` reads the integers, `decoder.plane` reconstructs the
matrices band by band, `decoder.render` turns bands into pixels); `decoder.reference` is the
same backwards chain on whole arrays, step by step as spec §5 says. `runtime` runs the work
(threads, band sizes, compiled kernels), `cli` holds the svdi-* tools and `evaluation` the
measurements against other codecs.

Importing the package also registers the SVDI format with Pillow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decoder import PlaneFactors, decode, read_factors, read_metadata
from .errors import SvdiError
from .format import SIGNATURE
from .format import VERSION as FORMAT_VERSION
from .format.inputs import FileInput, file_prefix
from .runtime.threads import set_threads, threads

if TYPE_CHECKING:
    from .encoder import encode
    from .spectra import PlaneSpectrum, plot_spectrum, spectrum, stored_spectrum

#: Public names whose modules load on first use: a program that only decodes never pays for
#: the encoder's import.
_LAZY = {"encode": "encoder", "PlaneSpectrum": "spectra", "plot_spectrum": "spectra",
         "spectrum": "spectra", "stored_spectrum": "spectra"}

__version__ = "0.1.0"
__all__ = ["FORMAT_VERSION", "PlaneFactors", "PlaneSpectrum", "SvdiError", "__version__", "check",
           "decode", "encode", "plot_spectrum", "read_factors", "read_metadata", "set_threads",
           "spectrum", "stored_spectrum", "threads"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Names this module imports for its own annotations, not part of the package.
_TYPING_NAMES = {"Any", "FileInput", "TYPE_CHECKING", "annotations", "file_prefix"}


def __dir__() -> list[str]:
    return sorted((set(globals()) | set(_LAZY)) - _TYPING_NAMES)


def check(data: FileInput) -> bool:
    """True if the file starts with the .svdi signature (cheap; does not validate the file).

    `data` as `decode` takes it; of a path or a file object only the signature's bytes are
    read, and a file object that can seek is put back where it was."""
    return file_prefix(data, len(SIGNATURE), "check") == SIGNATURE


from . import pillow_plugin  # noqa: F401  (import side effect: registers SVDI with Pillow)
