"""Memory pages: the private mappings of the decoder's held sparse streams, whose pages it hands
back as it goes (`own_pages`, `drop_pages`), and arrays kept out of transparent huge pages
(`base_page_array`: a decoded image, `svdcodec.decode`'s or the one a Pillow image maps).

numpy asks the kernel for transparent huge pages for every array of 4 MiB or more (it madvises
MADV_HUGEPAGE). A huge page is zeroed whole when first touched, and on a virtual machine whose
balloon reports free memory to its host (Firecracker, crosvm, QEMU's free page reporting: the
kernel reports free blocks of huge-page size) that first touch is also the host's page fault:
there a large array's first touch took several times what the same bytes in base pages take
(docs/performance.md, "The image memory of a Pillow `load()`"). Pillow's own image memory, and
the C libraries' buffers, are base pages.
"""

from __future__ import annotations

import mmap

import numpy as np

from . import kernels

#: Whether this system can hand back pages of a mapping (madvise: not on Windows), which
#: `decoder.factors.SparsePieces` needs; elsewhere the held streams stay whole.
CAN_DROP_PAGES = (hasattr(mmap, "MADV_DONTNEED") and hasattr(mmap.mmap, "madvise")
                  and hasattr(mmap, "MAP_PRIVATE"))
#: Private anonymous memory: its dropped pages go back to the system (a shared mapping, mmap's
#: default, is shared memory, whose pages MADV_DONTNEED only unmaps from the process, the
#: system keeping them until the mapping is closed).
PRIVATE_PAGES = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
#: Arrays from this many bytes up get huge pages from numpy (its `madvise_hugepage` threshold).
NUMPY_HUGE_PAGE_BYTES = 1 << 22


def drop_pages(pages: mmap.mmap, spans: list[tuple[int, int]]) -> None:
    """The spans' pages handed back to the system (read again, they would be zeros)."""
    for start, length in spans:
        pages.madvise(mmap.MADV_DONTNEED, start, length)


def own_pages(*arrays: np.ndarray) -> tuple[mmap.mmap, list[int], list[np.ndarray]]:
    """Copies of the arrays in one private anonymous mapping of their own, each aligned for its
    items: the mapping, each copy's offset in it, the copies. (Copies by numpy would come from
    the C heap, whose pages a piece of an array cannot be handed back from.)"""
    offsets, total = [], 0
    for a in arrays:
        total = -(-total // 8) * 8
        offsets.append(total)
        total += a.nbytes
    pages = mmap.mmap(-1, max(total, 1), flags=PRIVATE_PAGES)
    copies = []
    for a, at in zip(arrays, offsets):
        copy = np.frombuffer(pages, a.dtype, a.size, at)
        copy[:] = a
        copies.append(copy)
    return pages, offsets, copies


def base_page_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array from numpy (so that a warm process reuses freed memory as it does
    for any array) whose whole pages the system backs with base pages, not huge ones, where
    numpy would have asked for those (4 MiB or more): the compiled `base_pages`, on Linux. On
    the numpy path, or another system, numpy's array as it is."""
    array = np.empty(shape, dtype)
    compiled = kernels.get() if array.nbytes >= NUMPY_HUGE_PAGE_BYTES else None
    if compiled is not None:
        compiled.base_pages(array)
    return array
