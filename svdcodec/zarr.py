"""The svdi codec for zarr v3: an array-to-bytes codec named "svdi".

    >>> import zarr
    >>> from svdcodec.zarr import Svdi
    >>> z = zarr.create_array("data.zarr", shape=(4, 1024, 1024), chunks=(1, 256, 256),
    ...                       dtype="uint16", serializer=Svdi(quality=90))

Each chunk is one .svdi file; a chunk (..., h, w) is a stack of 2-D slices, or (..., h, w, c)
with channels_last=True (svdcodec.chunks has the convention); uint8, uint16, float32, int8,
int16, int32, uint32 and float64. Array
metadata: {"name": "svdi", "configuration": {"quality": ..., "layout": ..., "rank": ...,
"energy": ..., "channels_last": ...}} (unset options left out). Installing svdcodec registers
the codec through the "zarr.codecs" entry point, so zarr opens such an array in a process that
never imported svdcodec (a Dask worker). Decoding checks each file's header against the chunk's
shape and sample type before it decompresses anything.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.common import parse_named_configuration

from .chunks import (
    ChunkOptions,
    decode_chunk,
    encode_chunk,
    image_shape,
    supported_dtype,
)

if TYPE_CHECKING:
    from typing import Self

    from zarr.core.array_spec import ArraySpec
    from zarr.core.buffer import Buffer, NDBuffer
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.common import JSON
    from zarr.core.dtype.wrapper import TBaseDType, TBaseScalar, ZDType

__all__ = ["Svdi"]

NAME = "svdi"


@dataclass(frozen=True)
class Svdi(ArrayBytesCodec):
    """Lossy truncated-SVD compression of 2-D slices (see the module's docstring)."""

    is_fixed_size = False

    quality: float = 75
    layout: str = "auto"
    rank: int | None = None
    energy: float | None = None
    channels_last: bool = False
    max_error: float | None = None

    def __post_init__(self) -> None:
        self.options  # noqa: B018  (validates the options now, not at the first chunk)

    @property
    def options(self) -> ChunkOptions:
        return ChunkOptions(self.quality, self.layout, self.rank, self.energy,
                            self.channels_last, self.max_error)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, configuration = parse_named_configuration(data, NAME, require_configuration=False)
        options: dict[str, Any] = dict(configuration or {})  # checked by ChunkOptions
        return cls(**options)

    def to_dict(self) -> dict[str, JSON]:
        return {"name": NAME, "configuration": self.options.config()}

    def validate(self, *, shape: tuple[int, ...], dtype: ZDType[TBaseDType, TBaseScalar],
                 chunk_grid: ChunkGrid) -> None:
        """Refuse, when the array is created, a sample type or chunk shape the codec cannot
        store (instead of at the first write)."""
        supported_dtype(dtype.to_native_dtype())
        chunk_shape = getattr(chunk_grid, "chunk_shape", None)
        if chunk_shape is not None:
            image_shape(tuple(chunk_shape), self.channels_last)

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer | None:
        chunk = chunk_array.as_numpy_array()
        if self.max_error is None:
            warn_of_a_far_fill(chunk, chunk_spec.fill_value)
        data = encode_chunk(chunk, self.options)
        return chunk_spec.prototype.buffer.from_bytes(data)

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        array = decode_chunk(chunk_bytes.to_bytes(), chunk_spec.shape,
                             chunk_spec.dtype.to_native_dtype(), self.channels_last)
        return chunk_spec.prototype.nd_buffer.from_numpy_array(array)

    # zarr runs codecs on its event loop: the work goes to a thread, where numpy, BLAS and
    # zstd release the GIL.
    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec
                             ) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: ArraySpec) -> int:
        raise NotImplementedError("the svdi codec's output size depends on the data")


#: A fill value this many times the chunk's other samples' largest |value| sets its peak.
FAR_FILL = 4.0


def warn_of_a_far_fill(chunk: np.ndarray, fill: Any) -> None:
    """A UserWarning where the chunk holds the array's fill value (zarr pads an edge chunk with
    it, and fills what was not written) and that value is far beyond its other samples
    (netCDF's 9.96921e36, -9999 beside values of 270-290): the quality follows the chunk's
    peak, so those samples lose their detail (docs/arrays.md). Python shows it once."""
    try:
        value = float(fill)
    except (TypeError, ValueError):
        return
    if not np.isfinite(value) or value == 0 or chunk.dtype.kind not in "iuf":
        return
    with np.errstate(all="ignore"):  # (the fill as the chunk's type holds it)
        filled = chunk == np.asarray(value).astype(chunk.dtype)
    if not filled.any() or filled.all():
        return
    largest = float(np.abs(chunk[~filled].astype(np.float64)).max())
    if abs(value) > FAR_FILL * largest:
        warnings.warn(f"svdi: a chunk holds the array's fill_value {value:g}, beyond its other "
                      f"samples (largest |value| {largest:g}): lossy coding follows the "
                      "chunk's peak, so those samples lose their detail; give the array a "
                      "fill_value within the data's range, or max_error= (docs/arrays.md)",
                      UserWarning, stacklevel=2)
