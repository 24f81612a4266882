"""What the public read functions (`decode`, `read_factors`, `read_metadata`, `check`,
`stored_spectrum`) take as a file, and turning it into bytes.

The kind of argument decides, never its content: bytes-like objects are always the file's
bytes (b"photo.svdi" is ten bytes of data, not a name), a str or an os.PathLike is always a
path, and an object with a read() method is a binary file read from where it stands.
"""

from __future__ import annotations

import io
import os
from typing import IO, Any, Union

import numpy as np

from ..errors import SvdiError

#: What the read functions take, for annotations.
FileInput = Union[bytes, bytearray, memoryview, np.ndarray, str, "os.PathLike[str]", IO[bytes]]

#: Named in every refusal, so the message says what would have worked.
ACCEPTED = ("bytes, bytearray, memoryview, mmap or another buffer of bytes, a numpy uint8 "
            "array, a path (str or os.PathLike) or a binary file object")


class InputTypeError(SvdiError, TypeError):
    """A read function given something that is not a file: a TypeError, and an SvdiError as
    well, since these functions raised SvdiError for it before."""


def is_path(data: Any) -> bool:
    """Whether `data` names a file (a str or an os.PathLike) rather than holding one."""
    return isinstance(data, (str, os.PathLike))


def _buffer_bytes(data: Any, what: str, size: int | None = None) -> bytes | None:
    """The bytes of a buffer of bytes (item size 1), or its first `size` bytes (None: all),
    None for an object without the buffer protocol; a buffer of wider items is refused (its
    bytes are rarely a file). Only the bytes asked for are copied: `check` of a large mmap
    or array reads its signature, not the whole."""
    if isinstance(data, bytes):
        return data if size is None else data[:size]
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise InputTypeError(f"{what} takes a numpy array of dtype uint8 (the file's "
                                 f"bytes), got dtype {data.dtype}")
        return data.tobytes() if size is None else data.flat[:size].tobytes()
    try:
        view = memoryview(data)
    except TypeError:
        return None
    with view:
        if view.itemsize != 1:
            raise InputTypeError(f"{what} takes a buffer of bytes (item size 1), got "
                                 f"{type(data).__name__} of format {view.format!r}")
        if size is not None and view.ndim == 1:
            return view[:size].tobytes()
        # (a memoryview slices only its first dimension, and none of a scalar's)
        return view.tobytes() if size is None else view.tobytes()[:size]


def file_bytes(data: Any, what: str) -> bytes:
    """The whole file `data` stands for, as bytes; `what` names the caller in a refusal.

    A path is opened and read whole (OSError if it cannot be); a file object is read from its
    current position to its end."""
    content = _buffer_bytes(data, what)
    if content is not None:
        return content
    if is_path(data):
        with open(data, "rb") as fp:
            return fp.read()
    if callable(getattr(data, "read", None)):
        return _read_binary(data, -1, what)
    raise InputTypeError(f"{what} takes {ACCEPTED}; got {type(data).__name__}")


def file_prefix(data: Any, size: int, what: str) -> bytes:
    """The first `size` bytes of the file (fewer if it is shorter), reading no more of a path;
    a file object is read from its position and put back there when it can seek, as
    imghdr-style checks do."""
    prefix = _buffer_bytes(data, what, size)
    if prefix is not None:
        return prefix
    if is_path(data):
        with open(data, "rb") as fp:
            return fp.read(size)
    if callable(getattr(data, "read", None)):
        start = data.tell() if _seekable(data) else None
        prefix = _read_binary(data, size, what)
        if start is not None:
            data.seek(start)
        return prefix
    raise InputTypeError(f"{what} takes {ACCEPTED}; got {type(data).__name__}")


def _seekable(fp: Any) -> bool:
    try:
        return bool(fp.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _text_mode(what: str) -> InputTypeError:
    return InputTypeError(f"{what} takes a binary file object; this one is open in text mode "
                          "(open it with 'rb')")


def _read_binary(fp: Any, size: int, what: str) -> bytes:
    """`size` bytes of `fp` (fewer at its end; -1: all of it). A raw, unbuffered file object
    (a pipe's, a socket's) may return fewer bytes than asked before its end: it is read again
    until it has given `size` bytes or an empty read says it has ended."""
    if isinstance(fp, io.TextIOBase):  # refused before read() tries to decode the bytes
        raise _text_mode(what)
    out = _read_once(fp, size, what)
    if size < 0 or len(out) >= size or not out:
        return out
    parts = [out]
    got = len(out)
    while got < size:
        part = _read_once(fp, size - got, what)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _read_once(fp: Any, size: int, what: str) -> bytes:
    content = fp.read(size)
    if isinstance(content, str):
        raise _text_mode(what)
    out = _buffer_bytes(content, what)
    if out is None:
        raise InputTypeError(f"{what}: the file object's read() gave "
                             f"{type(content).__name__}, not bytes")
    return out
