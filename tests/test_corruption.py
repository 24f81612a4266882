"""Exhaustive damage to small valid files: every single-bit flip, every truncation and every
appended byte must raise SvdiError from svdcodec.decode (never another exception, never a
silent decode), and OSError or UnidentifiedImageError through Pillow."""

from __future__ import annotations

import io
from typing import Callable, Iterator

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import svdcodec
from svdcodec import SvdiError

#: Largest test file: the flip test decodes 8 * size files (about 0.1 ms each).
MAX_SIZE = 1500


def synthetic(height: int, width: int, channels: int) -> np.ndarray:
    """A deterministic uint8 image: gradients, a disc and a checker pattern."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    disc = ((y - height / 2) ** 2 + (x - width / 3) ** 2 < (height / 3) ** 2) * 60.0
    checker = ((y // 3 + x // 3) % 2) * 25.0
    planes = [20 + 9 * x + disc, 200 - 7 * y + checker, 90 + 5 * (x + y) - disc,
              255 - 6 * x + checker]
    image = np.clip(np.stack(planes[:channels], -1), 0, 255).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


def _files() -> dict[str, bytes]:
    return {"rgb": svdcodec.encode(synthetic(9, 11, 3), quality=70),
            "l": svdcodec.encode(synthetic(11, 13, 1), quality=90, layout="plain"),
            "rgba": svdcodec.encode(synthetic(7, 8, 4), quality=50)}


FILES = _files()


def rejected(data: bytes) -> str | None:
    """None if decode raises SvdiError, else what happened instead."""
    try:
        result = svdcodec.decode(data)
    except SvdiError:
        return None
    except Exception as exc:  # noqa: BLE001 - any other exception is the failure we look for
        return f"{type(exc).__name__}: {exc}"
    return f"decoded to {result.shape} {result.dtype}"


def bit_flips(data: bytes) -> Iterator[tuple[str, bytes]]:
    buf = bytearray(data)
    for i in range(len(buf)):
        for bit in range(8):
            buf[i] ^= 1 << bit
            yield f"bit {bit} of byte {i}", bytes(buf)
            buf[i] ^= 1 << bit


def truncations(data: bytes) -> Iterator[tuple[str, bytes]]:
    for n in range(len(data)):
        yield f"first {n} bytes", data[:n]


def appended(data: bytes) -> Iterator[tuple[str, bytes]]:
    for value in range(256):
        yield f"byte {value} appended", data + bytes([value])


DAMAGE: dict[str, Callable[[bytes], Iterator[tuple[str, bytes]]]] = {
    "flip": bit_flips, "truncate": truncations, "append": appended}


@pytest.mark.parametrize("name", sorted(FILES))
def test_files_are_valid_and_small(name: str) -> None:
    data = FILES[name]
    assert len(data) <= MAX_SIZE, "test file grew; shrink the synthetic image"
    assert rejected(data) == "decoded to " + {"rgb": "(9, 11, 3)", "l": "(11, 13)",
                                              "rgba": "(7, 8, 4)"}[name] + " uint8"


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", sorted(FILES))
def test_every_damage_raises_svdi_error(name: str, damage: str) -> None:
    failures = [f"{what}: {outcome}" for what, bad in DAMAGE[damage](FILES[name])
                if (outcome := rejected(bad)) is not None]
    assert not failures, f"{len(failures)} not rejected, e.g. {failures[:5]}"


def pillow_outcome(data: bytes) -> str | None:
    """None if Pillow rejects the data the documented way, else what happened instead."""
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"open: {type(exc).__name__}: {exc}"
    try:
        im.load()
    except OSError:
        return None
    except Exception as exc:  # noqa: BLE001
        return f"load: {type(exc).__name__}: {exc}"
    return f"loaded {im.mode} {im.size}"


@pytest.mark.parametrize("name", sorted(FILES))
def test_pillow_rejects_damage(name: str) -> None:
    """One flipped bit per byte (a different bit each time), every truncation, one append."""
    data = FILES[name]
    damaged = [(f"bit {i % 8} of byte {i}", data[:i] + bytes([data[i] ^ 1 << i % 8])
                + data[i + 1:]) for i in range(len(data))]
    damaged += list(truncations(data)) + [("zero appended", data + b"\0")]
    failures = [f"{what}: {outcome}" for what, bad in damaged
                if (outcome := pillow_outcome(bad)) is not None]
    assert not failures, f"{len(failures)} not rejected, e.g. {failures[:5]}"
