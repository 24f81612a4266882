"""What the read functions take as a file (docs/usage.md, "What the read functions take"):
any buffer of bytes, a numpy uint8 array, a path or a binary file object; anything else a
TypeError naming what is accepted (an SvdiError too, as before)."""

from __future__ import annotations

import array
import io
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import photo

import svdcodec

TEXT = {"Title": "inputs"}


@pytest.fixture(scope="module")
def data() -> bytes:
    return svdcodec.encode(photo(24, 40, 3), quality=60, text=TEXT)


def readers() -> dict[str, Callable[[Any], Any]]:
    return {"decode": svdcodec.decode, "read_factors": svdcodec.read_factors,
            "read_metadata": svdcodec.read_metadata, "check": svdcodec.check,
            "stored_spectrum": svdcodec.stored_spectrum}


def same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(
            all(np.array_equal(getattr(x, k), getattr(y, k)) for k in ("U", "S", "Vt"))
            if hasattr(x, "U") else np.array_equal(x.sigma, y.sigma) for x, y in zip(a, b))
    return bool(a == b)


def forms(data: bytes, path: Path) -> dict[str, Callable[[], Any]]:
    """Each accepted kind of argument, made afresh for each call (a file object is read)."""
    return {
        "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "memoryview slice": lambda: memoryview(b"xx" + data)[2:],
        "numpy uint8": lambda: np.frombuffer(data, np.uint8),
        "numpy uint8 strided": lambda: np.repeat(np.frombuffer(data, np.uint8), 2)[::2],
        "array.array": lambda: array.array("B", data),
        "str path": lambda: str(path),
        "pathlib.Path": lambda: path,
        "BytesIO": lambda: io.BytesIO(data),
        "open file": lambda: path.open("rb"),
    }


@pytest.mark.parametrize("name", list(readers()))
def test_every_accepted_kind_reads_the_same_file(name: str, data: bytes,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "image.svdi"
    path.write_bytes(data)
    read = readers()[name]
    expected = read(data)
    for kind, make in forms(data, path).items():
        given = make()
        try:
            assert same(read(given), expected), kind
        finally:
            if hasattr(given, "close") and not isinstance(given, memoryview):
                given.close()
    with path.open("rb") as fp, mmap.mmap(fp.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert same(read(mapped), expected)


def test_a_file_object_is_read_from_its_position(data: bytes) -> None:
    fp = io.BytesIO(b"header of another format" + data)
    fp.seek(24)
    assert np.array_equal(svdcodec.decode(fp), svdcodec.decode(data))
    fp.seek(24)
    assert svdcodec.check(fp) and fp.tell() == 24  # check puts a seekable file back
    assert not svdcodec.check(io.BytesIO(b"header of another format" + data))


class OneByteReads(io.RawIOBase):
    """An unbuffered, unseekable file object (a pipe's, a socket's) that gives at most one
    byte per read, as a raw read may give fewer bytes than asked before the end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.pos >= len(self.data) or len(buffer) == 0:
            return 0
        buffer[0] = self.data[self.pos]
        self.pos += 1
        return 1


def test_a_raw_file_giving_one_byte_per_read_is_read_to_the_size_asked(data: bytes) -> None:
    """check() reads the signature's 8 bytes until it has them or the file ends, and no
    further; decode reads the whole file."""
    raw = OneByteReads(data)
    assert svdcodec.check(raw) and raw.pos == len(svdcodec.SIGNATURE)
    assert not svdcodec.check(OneByteReads(data[:5]))
    assert not svdcodec.check(OneByteReads(b""))
    assert np.array_equal(svdcodec.decode(OneByteReads(data)), svdcodec.decode(data))


def test_check_of_a_buffer_copies_only_the_signatures_bytes(data: bytes) -> None:
    """`check` is cheap for buffers as for paths: it copies the signature's bytes, not the
    whole buffer (a view of 2**50 bytes, or 2**25 x 2**25, could not be copied), and reads
    them in the buffer's logical order whatever its strides or shape."""
    huge = np.broadcast_to(np.uint8(0), (1 << 50,))
    assert not svdcodec.check(huge) and not svdcodec.check(memoryview(huge))
    assert not svdcodec.check(np.broadcast_to(np.uint8(0), (1 << 25, 1 << 25)))
    strided = np.repeat(np.frombuffer(data, np.uint8), 2)[::2]
    assert svdcodec.check(strided) and svdcodec.check(memoryview(strided))
    assert svdcodec.check(np.frombuffer(data[:24], np.uint8).reshape(4, 6))
    assert not svdcodec.check(np.frombuffer(data[:24], np.uint8).reshape(4, 6).T)
    assert not svdcodec.check(np.uint8(137)) and not svdcodec.check(np.array(137, np.uint8))


def test_bytes_are_never_a_path_and_a_str_never_data(data: bytes, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The argument's type decides: b"image.svdi" is data even where such a file exists."""
    (tmp_path / "image.svdi").write_bytes(data)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(svdcodec.SvdiError, match="signature"):
        svdcodec.decode(b"image.svdi")
    assert not svdcodec.check(b"image.svdi")
    assert svdcodec.check("image.svdi")
    with pytest.raises(FileNotFoundError):
        svdcodec.decode("missing.svdi")


@pytest.mark.parametrize("name", list(readers()))
@pytest.mark.parametrize("value, says", [
    (None, "got NoneType"), (5, "got int"), ([1, 2], "got list"),
    (np.zeros(8), "dtype uint8"), (array.array("i", [1, 2]), "item size 1"),
])
def test_anything_else_is_a_type_error_naming_what_is_accepted(name: str, value: object,
                                                               says: str) -> None:
    with pytest.raises(TypeError, match=says) as refused:
        readers()[name](value)
    assert isinstance(refused.value, svdcodec.SvdiError)  # what these raised before
    if "got" in says:
        assert "bytes" in str(refused.value) and "path" in str(refused.value)
        assert "numpy uint8 array" in str(refused.value)


@pytest.mark.parametrize("name", list(readers()))
def test_a_text_mode_file_is_a_type_error(name: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "image.svdi"
    path.write_bytes(data)
    with path.open() as text, pytest.raises(TypeError, match="text mode"):
        readers()[name](text)
