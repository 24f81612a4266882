"""Per-thread work buffers kept from one decode to the next.

A band's left factor, its product and the Pillow plugin's band of pixels are each a fresh
array of up to a few MiB on every decode otherwise, and the C library hands such arrays back to
the system when they are freed: every page of them is then faulted in and zeroed again by the
next decode (for a 768 x 512 photo that took about a quarter of a decode's time, more than its
matrix products). Each thread keeps one array per name instead, grown as needed, up to
band_sizes.KEEP_BYTES each and KEEP_THREAD_BYTES in all (a 768 x 512 photo keeps 3.9 MB, a
band of a large image about 2.4 MB); an array beyond that (a band of a huge rank, a hostile
file, many names) lasts only as long as the `ThreadBuffers` that asked for it. Kept arrays go
with their thread (the band pool's threads live as long as the process).
"""

from __future__ import annotations

import threading

import numpy as np

from . import band_sizes

_kept = threading.local()
#: (name, dtype as given) -> (the kept array's key, the dtype): made once per name and type, not
#: on each of a small decode's dozen calls
_keys: dict[tuple[str, object], tuple[str, np.dtype]] = {}


class ThreadBuffers:
    """Arrays by name for the calling thread: `get` returns the same memory to every caller in
    that thread, so a caller is done with an array before it asks for the same name again."""

    def __init__(self) -> None:
        self._spill = threading.local()  # this object's arrays above KEEP_BYTES, per thread

    def get(self, name: str, size: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A 1-D array of `size` elements of `dtype`, contents undefined."""
        found = _keys.get((name, dtype))
        if found is None:
            exact = np.dtype(dtype)
            found = _keys[(name, dtype)] = (f"{name}:{exact.str}", exact)
        key, dtype = found
        kept: dict[str, np.ndarray] = _kept.__dict__
        array = kept.get(key)
        if array is not None and array.size >= size:
            return array[:size]
        spill: dict[str, np.ndarray] = self._spill.__dict__
        array = spill.get(key)
        if array is not None and array.size >= size:
            return array[:size]
        array = np.empty(size, dtype)
        others = sum(a.nbytes for k, a in kept.items() if k != key)
        if (array.nbytes <= band_sizes.KEEP_BYTES
                and others + array.nbytes <= band_sizes.KEEP_THREAD_BYTES):
            kept[key] = array
        else:
            spill[key] = array
        return array
