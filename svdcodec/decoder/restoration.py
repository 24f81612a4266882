"""Version 6's restoration filter (spec §5.6) on a decoded image: the planes the RSTR chunk
names, each on its channel of the 8-bit samples, after the deblocking filter and before the
colour conversion."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..codec.restoration import restore_channel
from ..format import Container


def restore_image(image: np.ndarray, container: Container, compiled: ModuleType | None,
                  threads: int | None = None) -> None:
    """Every restored plane's channel of the (h, w, c) 8-bit samples, in place."""
    for index, restoration in sorted(container.restoration.items()):
        restore_channel(image[:, :, index], restoration, compiled, threads)
