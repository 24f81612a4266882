"""Layout: a plane <-> its matrix (spec §5 step 4).

"plain" keeps the plane as the matrix (the lecture's picture-as-matrix); "patch" makes one row
per p x p patch, in raster order, edge-padded, so that V^T is a small basis of patch shapes
learned from the image itself. `patch` is the patch side, 0 for the plain layout.
"""

from __future__ import annotations

import numpy as np


def grid(height: int, width: int, patch: int) -> tuple[int, int]:
    """Patches down and across (the plain layout: (height, 1), one column of U per image row)."""
    if not patch:
        return height, 1
    return -(-height // patch), -(-width // patch)


def to_matrix(plane: np.ndarray, patch: int) -> np.ndarray:
    """Plane (h, w) -> matrix: itself, or one row per p x p patch (edge-padded, raster order)."""
    if not patch:
        return plane
    return patch_rows(plane, patch)


def from_matrix(matrix: np.ndarray, height: int, width: int, patch: int) -> np.ndarray:
    """Inverse of to_matrix, cropping the padding."""
    if not patch:
        return matrix
    gh, gw = grid(height, width, patch)
    full = matrix.reshape(gh, gw, patch, patch).transpose(0, 2, 1, 3).reshape(gh * patch,
                                                                              gw * patch)
    return np.ascontiguousarray(full[:height, :width])


def patch_rows(rows: np.ndarray, patch: int) -> np.ndarray:
    """Plane rows (a whole number of patch rows, or the plane's last rows) -> matrix rows, one
    per p x p patch in raster order, edge-padded: `to_matrix` of a band."""
    h, w = rows.shape
    gh, gw = -(-h // patch), -(-w // patch)
    if (gh * patch, gw * patch) != (h, w):
        rows = np.pad(rows, ((0, gh * patch - h), (0, gw * patch - w)), mode="edge")
    rows = np.ascontiguousarray(rows)
    word = patch_word(patch * rows.itemsize)
    k = patch * rows.itemsize // word.itemsize
    words = rows.view(word).reshape(gh, patch, gw, k).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(words).view(rows.dtype).reshape(gh * gw, patch * patch)


def quarter_patches(matrix: np.ndarray, patch: int, per_row: int) -> np.ndarray:
    """The patch matrix in patches of side `patch`, from the matrix (C-contiguous, per_row
    patches a row) of the same rows in patches twice as big that tile them exactly: each big
    patch is four small ones, whose values are moved, not computed (the same bits as
    `patch_rows` of the rows)."""
    big_rows = matrix.shape[0] // per_row
    word = patch_word(patch * matrix.itemsize)
    k = patch * matrix.itemsize // word.itemsize
    # (big row, big column, top/bottom half, row in it, left/right half, its words)
    words = matrix.view(word).reshape(big_rows, per_row, 2, patch, 2, k)
    small = np.ascontiguousarray(words.transpose(0, 2, 1, 4, 3, 5))
    return small.view(matrix.dtype).reshape(4 * big_rows * per_row, patch * patch)


def band_pixels(matrix: np.ndarray, patch: int, per_row: int, height: int, width: int
                ) -> np.ndarray:
    """Matrix rows of a band of whole patch rows (C-contiguous, any dtype) -> its pixel rows,
    `height` x `width` after cropping the padding: the inverse of `patch_rows`."""
    if not patch:
        return matrix
    gh = matrix.shape[0] // per_row
    word = patch_word(patch * matrix.itemsize)
    k = patch * matrix.itemsize // word.itemsize
    words = matrix.view(word).reshape(gh, per_row, patch, k).transpose(0, 2, 1, 3)
    full = np.ascontiguousarray(words).view(matrix.dtype).reshape(gh * patch, per_row * patch)
    return full[:height, :width]


def patch_word(size: int) -> np.dtype:
    """The widest type that divides a patch row of `size` bytes. A patch row is contiguous in
    both layouts, so moving it as a few wide words makes the patch transpose several times
    faster (complex128 only carries 16 bytes; nothing is computed on it)."""
    return np.dtype(next(t for b, t in ((16, np.complex128), (8, np.uint64), (4, np.uint32),
                                        (2, np.uint16), (1, np.uint8)) if size % b == 0))
