"""svdcodec: the .svdi image format, built on the truncated singular value decomposition.

    >>> import svdcodec
    >>> data = svdcodec.encode(array, quality=75)
    >>> array2 = svdcodec.decode(data)

Importing the package also registers the SVDI format with Pillow.
"""

from __future__ import annotations

from .container import VERSION as FORMAT_VERSION
from .decoder import PlaneFactors, decode, read_factors
from .encoder import encode
from .errors import SvdiError

__version__ = "0.1.0"
__all__ = ["FORMAT_VERSION", "PlaneFactors", "SvdiError", "__version__", "check", "decode",
           "encode", "read_factors"]


def check(data: bytes) -> bool:
    """True if `data` starts with the .svdi signature (cheap; does not validate the file)."""
    from .container import SIGNATURE

    return bytes(data[:len(SIGNATURE)]) == SIGNATURE

from . import pillow_plugin  # noqa: E402,F401  (import side effect: registers SVDI with Pillow)
