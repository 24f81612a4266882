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

#: The name of each thread's buffer of a band's left factor (`decoder.plane`), which the
#: band renderer's sink may take for the band once the factor is spent (`decoder.stream.Sink`).
LEFT = "left"


class ThreadBuffers:
    """Arrays by name for the calling thread: `get` returns the same memory to every caller in
    that thread, so a caller is done with an array before it asks for the same name again.
    `kept=False`: none is kept for later decodes, each lasts as long as this object (the
    encoder's band arrays: reused by the bands of one pass, without taking the room the
    decoder's kept arrays have in each thread)."""

    def __init__(self, kept: bool = True) -> None:
        self._spill = threading.local()  # this object's arrays not kept, per thread
        self._least: dict[str, int] = {}  # name -> elements its first array gets (`expect`)
        self._keeps = kept

    def expect(self, name: str, size: int) -> None:
        """`name` will be asked for up to `size` elements: an array made for it gets at least
        that many. Users of one name that ask for different sizes (the band renderer's planes,
        the joined rows of a band) then make one array per thread, not a small one and then a
        larger one, whose freed memory the C library keeps in the middle of its heap."""
        self._least[name] = max(self._least.get(name, 0), size)

    def get(self, name: str, size: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
        """A 1-D array of `size` elements of `dtype`, contents undefined."""
        found = _keys.get((name, dtype))
        if found is None:
            exact = np.dtype(dtype)
            found = _keys[(name, dtype)] = (f"{name}:{exact.str}", exact)
        key, dtype = found
        kept: dict[str, np.ndarray] = _kept.__dict__
        array = kept.get(key) if self._keeps else None
        if array is not None and array.size >= size:
            return array[:size]
        spill: dict[str, np.ndarray] = self._spill.__dict__
        array = spill.get(key)
        if array is not None and array.size >= size:
            return array[:size]
        array = np.empty(max(size, self._least.get(name, 0)), dtype)
        if (self._keeps and array.nbytes <= band_sizes.KEEP_BYTES
                and sum(a.nbytes for k, a in kept.items() if k != key) + array.nbytes
                <= band_sizes.KEEP_THREAD_BYTES):
            kept[key] = array
        else:
            spill[key] = array
        return array[:size]
