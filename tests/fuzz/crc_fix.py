"""CRC repair for the fuzz harnesses: random mutations almost never keep a CRC-32 right, so
without it the fuzzer would only ever exercise the CRC check."""

from __future__ import annotations

import struct
import zlib

SIGNATURE_SIZE = 8


def fix_crcs(data: bytes) -> bytes:
    """`data` with the CRC of every complete chunk recomputed (type and payload); the signature
    and an incomplete tail are left as they are."""
    out = bytearray(data)
    pos = SIGNATURE_SIZE
    while pos + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, pos)
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(out[pos + 4:end]))
        pos = end + 4
    return bytes(out)
