"""Version 4's deblocking filter (spec §5.4) on a decoded image: the planes whose PLAN sets it,
each on its channel of the 8-bit samples, before the colour conversion."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..codec.deblock import deblock_channels, edge_period
from ..format import Header, Plane


def plane_period(plane: Plane, header: Header) -> int:
    """A plane's edge period in its output channel (twice the patch for subsampled chroma)."""
    return edge_period(plane.patch, (plane.height, plane.width) != (header.height, header.width))


def deblock_image(image: np.ndarray, header: Header, planes: list[Plane],
                  compiled: ModuleType | None, threads: int | None = None) -> None:
    """Every filtered plane's channel of the (h, w, c) 8-bit samples, in place."""
    deblock_channels(image, [(p.index, plane_period(p, header), p.deblock) for p in planes
                             if p.filtered], compiled, threads)
