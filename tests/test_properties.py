"""Property tests (Hypothesis): header write/parse identity, shape/dtype/mode round trip of the
codec for every sample type and channel count, and robustness to any mutation of a valid file.

Example counts come from the profile in conftest.py (HYPOTHESIS_PROFILE=thorough: 1,000).
"""

from __future__ import annotations

import io
import struct
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as container
from svdcodec.pillow_plugin import PILLOW_MODES, WIDE_RGB_MODES, ReducedDepthWarning
from support import ROOT, make_vectors

MV = make_vectors()

# ----------------------------------------------------------------------------- headers


@st.composite
def headers(draw: st.DrawFn) -> tuple[container.Header, list[container.Plane]]:
    """Any valid HEAD with PLANs of rank 0 (any size: rank 0 costs no work), of any version:
    version 1 with its sample types and 1-4 channels, versions 2 and 3 with all of them
    (version 3: Y'CbCr of uint16 too)."""
    version = draw(st.sampled_from(container.VERSIONS))
    stype = draw(st.sampled_from(sorted(container.SAMPLE_TYPES) if version >= 2
                                 else container.SAMPLE_TYPES_V1))
    channels = draw(st.integers(1, container.MAX_CHANNELS if version >= 2
                                else container.MAX_CHANNELS_V1))
    ycbcr = (stype == 1 or (stype == 2 and version >= 3)) and channels in (3, 4) \
        and draw(st.booleans())
    header = container.Header(
        width=draw(st.integers(1, container.MAX_DIMENSION)), height=draw(st.integers(1, container.MAX_DIMENSION)),
        sample_type=stype, channels=channels,
        colour=container.COLOUR_YCBCR if ycbcr else container.COLOUR_NONE,
        subsampling=int(ycbcr and draw(st.booleans())),
        scale=draw(st.floats(0, float(np.finfo(container.SAMPLE_TYPES[stype]).max) / 255
                             if stype in (3, 8) else None,
                             exclude_min=True, allow_infinity=False)),
        version=version)
    planes = []
    for i in range(channels):
        height, width = header.plane_shape(i)
        patch = draw(st.sampled_from((0, *container.PATCH_SIZES)))
        planes.append(container.Plane(i, container.LAYOUT_PATCH if patch else container.LAYOUT_PLAIN, patch, height,
                              width, 0, draw(st.floats(0, exclude_min=True,
                                                       allow_infinity=False)),
                              draw(st.integers(0, container.MAX_SHIFT)) if version >= 2
                              else None))
    return header, planes


@given(headers())
def test_header_pack_unpack_identity(case: tuple[container.Header, list[container.Plane]]) -> None:
    header, planes = case
    data = container.pack(container.Container(header, planes, []))
    box = container.unpack(data)
    assert (box.header, box.planes, box.blocks) == (header, planes, [])
    assert container.read_headers(io.BytesIO(data)) == (header, planes)
    assert container.pack(box) == data


# ----------------------------------------------------------------------------- codec round trip

#: (dtype, channels) of every combination the encoder takes; Pillow modes where they exist.
COMBOS = [(np.dtype(t), c) for t in (np.uint8, np.uint16, np.float32) for c in range(1, 5)] + [
    (np.dtype(t), c) for t in (np.int8, np.int16, np.int32, np.uint32, np.float64)
    for c in (1, 2, 5)] + [(np.dtype(np.uint8), 6)]


@st.composite
def images(draw: st.DrawFn) -> np.ndarray:
    dtype, channels = draw(st.sampled_from(COMBOS))
    shape: tuple[int, ...] = (draw(st.integers(1, 12)), draw(st.integers(1, 12)))
    if channels > 1 or draw(st.booleans()):
        shape += (channels,)
    if dtype.kind == "f":
        elements = st.floats(-1e6, 1e6, width=32)
    else:
        elements = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    return draw(hnp.arrays(dtype, shape, elements=elements))


@given(images(), st.integers(1, 100), st.sampled_from(["auto", "plain", "patch4", "patch16"]))
def test_encode_decode_keeps_shape_dtype_and_mode(pixels: np.ndarray, quality: int,
                                                  layout: str) -> None:
    data = svdcodec.encode(pixels, quality=quality, layout=layout)
    decoded = svdcodec.decode(data)
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    assert decoded.shape == pixels.shape[:2] + ((channels,) if channels > 1 else ())
    assert decoded.dtype == pixels.dtype
    if pixels.dtype.kind == "f":
        assert np.all(np.isfinite(decoded))
    mode = PILLOW_MODES.get((pixels.dtype, channels))
    if (pixels.dtype, channels) in WIDE_RGB_MODES:  # 16-bit RGB(A): opened at 8 bits, warned
        with pytest.warns(ReducedDepthWarning), Image.open(io.BytesIO(data)) as im:
            assert (im.mode, im.size) == (WIDE_RGB_MODES[(pixels.dtype, channels)],
                                          (pixels.shape[1], pixels.shape[0]))
    elif mode is None:  # numpy-only combination: the file is SVDI, but has no Pillow mode
        with pytest.raises(OSError, match="no Pillow mode"):
            Image.open(io.BytesIO(data))
    else:
        with Image.open(io.BytesIO(data)) as im:
            assert (im.mode, im.size) == (mode, (pixels.shape[1], pixels.shape[0]))


# ----------------------------------------------------------------------------- mutations


def _bases() -> list[bytes]:
    """Valid files to mutate: every valid vector (raw zstd blocks, so mutations reach the
    symbols) and two encoder outputs (compressed zstd blocks)."""
    vectors = ROOT / "spec" / "vectors"
    files = [p.read_bytes() for p in sorted(vectors.glob("*.svdi"))
             if (vectors / f"{p.stem}.npy").exists()]
    y, x = np.mgrid[0:10, 0:12]
    rgb = np.stack([x * 20, y * 25, (x * y) % 256], -1).astype(np.uint8)
    files += [svdcodec.encode(rgb, quality=90), svdcodec.encode(rgb[..., 0], layout="plain")]
    return files


BASES = _bases()
KINDS = [b"HEAD", b"PLAN", b"SBLK", b"UBLK", b"VBLK", b"IEND", b"teSt", b"XTRA"]
INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 255, 256, 4096, 4097, 65535, 1 << 20, 2**31 - 1,
               2**31, 2**32 - 1]


def mutate(draw: st.DataObject, data: bytes) -> bytes:
    """Apply one to three structural or byte mutations; CRCs are recomputed unless drawn not to."""
    chunks = MV.split_chunks(data)
    for _ in range(draw.draw(st.integers(1, 3))):
        i = draw.draw(st.integers(0, len(chunks) - 1))
        kind, payload = chunks[i]
        op = draw.draw(st.sampled_from(["flip", "byte", "int", "cut", "grow", "drop", "dup",
                                        "swap", "kind"]))
        pos = draw.draw(st.integers(0, max(len(payload) - 1, 0)))
        if op == "flip" and payload:
            payload = bytearray(payload)
            payload[pos] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "byte" and payload:
            payload = payload[:pos] + bytes([draw.draw(st.integers(0, 255))]) + payload[pos + 1:]
        elif op == "int":
            size = draw.draw(st.sampled_from([1, 2, 4, 8]))
            value = draw.draw(st.sampled_from(INTERESTING)) % (1 << 8 * size)
            payload = payload[:pos] + value.to_bytes(size, "big") + payload[pos + size:]
        elif op == "cut":
            payload = payload[:pos]
        elif op == "grow":
            payload = payload[:pos] + draw.draw(st.binary(min_size=1, max_size=16)) + payload[pos:]
        elif op == "drop" and len(chunks) > 1:
            del chunks[i]
            continue
        elif op == "dup":
            chunks.insert(i, chunks[i])
            continue
        elif op == "swap":
            j = draw.draw(st.integers(0, len(chunks) - 1))
            chunks[i], chunks[j] = chunks[j], chunks[i]
            continue
        elif op == "kind":
            kind = draw.draw(st.sampled_from(KINDS))
        chunks[i] = (kind, bytes(payload))
    out = MV.join_chunks(chunks)
    if draw.draw(st.integers(0, 9)) == 0:  # now and then, leave a CRC wrong
        pos = draw.draw(st.integers(len(container.SIGNATURE), len(out) - 1))
        out = out[:pos] + bytes([out[pos] ^ 0x40]) + out[pos + 1:]
    return out


@given(st.sampled_from(BASES), st.data())
def test_any_mutation_raises_svdi_error_or_decodes_to_declared_shape(base: bytes,
                                                                      draw: st.DataObject
                                                                      ) -> None:
    data = mutate(draw, base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow warnings count as failures too
        try:
            pixels = svdcodec.decode(data, max_pixels=1 << 16)
        except SvdiError:
            return
    header, _ = container.read_headers(io.BytesIO(data))
    shape = (header.height, header.width) + ((header.channels,) if header.channels > 1 else ())
    assert pixels.shape == shape and pixels.dtype == header.dtype


def test_mutation_reaches_the_decoder() -> None:
    """The mutations keep CRCs valid, so most damage is found by the checks behind the CRC."""
    base = BASES[0]
    flipped = MV.join_chunks([(k, p[:-1] + bytes([p[-1] ^ 1]) if k == b"UBLK" else p)
                              for k, p in MV.split_chunks(base)])
    with pytest.raises(SvdiError) as info:
        svdcodec.decode(flipped)
    assert "CRC" not in str(info.value)
    assert struct.unpack_from(">I", flipped, len(flipped) - 4) == struct.unpack_from(
        ">I", base, len(base) - 4)


def test_tiny_float_image_survives() -> None:
    pixels = np.array([[1e-38, 2e-38], [0.0, 3e-38]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        decoded = svdcodec.decode(svdcodec.encode(pixels, quality=100))
    assert np.allclose(decoded, pixels, rtol=0.05, atol=1e-40)


def test_denormal_float_image_survives() -> None:
    """Found by the fuzz smoke: a peak of 1.2e-43 made scale a float64 below float32's range."""
    pixels = np.zeros((18, 23, 2), np.float32)
    pixels[0, 0, 0] = 1.16e-43
    decoded = svdcodec.decode(svdcodec.encode(pixels, quality=1))
    assert decoded.shape == pixels.shape and np.all(np.isfinite(decoded))


def test_float_values_near_float32_max_round_trip() -> None:
    """Found by fuzzing: a reconstruction a step above 3.4e38 must saturate, not fail."""
    top = float(np.finfo(np.float32).max)
    pixels = np.array([[top, -top, 0.0], [top / 3, top, -top / 7]], np.float32)
    decoded = svdcodec.decode(svdcodec.encode(pixels, quality=5))
    assert decoded.shape == pixels.shape and np.all(np.isfinite(decoded))
    assert np.all(np.abs(decoded) <= top)
