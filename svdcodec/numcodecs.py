"""The svdi codec for numcodecs (zarr v2, and anything else that takes a numcodecs Codec).

    >>> import numcodecs
    >>> codec = numcodecs.get_codec({"id": "svdi", "quality": 90})  # found by entry point
    >>> data = codec.encode(array)            # one .svdi file per chunk
    >>> back = codec.decode(data)             # the stacked image; with out=, the chunk's shape

Chunks: (..., h, w) is a stack of 2-D slices, (..., h, w, c) with channels_last=True; uint8,
uint16, float32, int8, int16, int32, uint32 or float64 (svdcodec.chunks has the convention).
Lossy: quality, layout, rank and energy are svdcodec.encode's options; max_error bounds every
sample's error (0: lossless). Installing svdcodec registers the codec under the id "svdi"
through the "numcodecs.codecs" entry point, so a process that never imported svdcodec (a Dask
worker) finds it. Threads: see svdcodec.runtime.threads (one per process inside a Dask worker).
"""

from __future__ import annotations

from typing import Any

from numcodecs.abc import Codec  # type: ignore[import-untyped]
from numcodecs.compat import (  # type: ignore[import-untyped]
    ensure_contiguous_ndarray,
    ndarray_copy,
)

from .chunks import ChunkOptions, column_major, decode_chunk, encode_chunk

__all__ = ["Svdi"]


class Svdi(Codec):  # type: ignore[misc]  # numcodecs is untyped
    """Lossy truncated-SVD compression of 2-D slices (see the module's docstring)."""

    codec_id = "svdi"

    def __init__(self, quality: float = 75, layout: str = "auto", rank: int | None = None,
                 energy: float | None = None, channels_last: bool = False,
                 max_error: float | None = None) -> None:
        self._options = ChunkOptions(quality, layout, rank, energy, bool(channels_last),
                                     max_error)

    # Read-only: the options are checked once, when the codec is made.
    quality = property(lambda self: self._options.quality)
    layout = property(lambda self: self._options.layout)
    rank = property(lambda self: self._options.rank)
    energy = property(lambda self: self._options.energy)
    channels_last = property(lambda self: self._options.channels_last)
    max_error = property(lambda self: self._options.max_error)

    def encode(self, buf: Any) -> bytes:
        # its memory layout kept: zarr format 2 reads the decoded chunk's bytes as they lie
        return encode_chunk(buf, self._options, keep_layout=True)

    def decode(self, buf: Any, out: Any = None) -> Any:
        """The decoded chunk: into `out` (any shape holding the same samples, in either memory
        order) if given; else the stacked image, (rows, w) or (rows, w, c), or a chunk in
        column-major order or of big-endian samples in its own shape, order and byte order
        (its bytes as they were given to encode, which zarr format 2 reads)."""
        data = bytes(ensure_contiguous_ndarray(buf))
        if out is None:
            return decode_chunk(data)
        shape = getattr(out, "shape", None)
        if shape is not None and len(shape) >= (3 if self.channels_last else 2):
            # ndarray_copy copies the bytes in out's memory order
            order = "F" if column_major(out) else "C"
            decoded = decode_chunk(data, tuple(shape), out.dtype, self.channels_last, order)
        else:  # a flat buffer: the file's own shape, checked by ndarray_copy's reshape
            decoded = decode_chunk(data)
        return ndarray_copy(decoded, out)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, **self._options.config()}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self._options.config().items())
        return f"{type(self).__name__}({options})"
