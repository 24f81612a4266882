"""Decoding at reduced size (`decode(data, reduce=k)`): the size JPEG's draft mode gives, and
pixels that are the k x k cell means of the full decode up to rounding (edges aside)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import svdcodec
from svdcodec import SvdiError


def photo(height: int, width: int, channels: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels))
    for c in range(channels):
        out[..., c] = 128 + 80 * np.sin(x / (13 + 4 * c) + y / 29) + rng.normal(0, 4, (height, width))
    return np.clip(out, 0, 255).astype(np.uint8)


def cell_means(image: np.ndarray, k: int) -> np.ndarray:
    """Box means of k x k cells, the image padded by its edge (as the patch layout pads)."""
    f = image.astype(np.float64).reshape(image.shape[0], image.shape[1], -1)
    h, w = -(-f.shape[0] // k), -(-f.shape[1] // k)
    pad = np.pad(f, ((0, h * k - f.shape[0]), (0, w * k - f.shape[1]), (0, 0)), mode="edge")
    return pad.reshape(h, k, w, k, -1).mean(axis=(1, 3))


CASES = [  # (channels, dtype, options, mean tolerance, max tolerance)
    (1, np.uint8, {}, 0.6, 6),
    (1, np.uint8, {"layout": "plain"}, 0.6, 6),
    (1, np.uint8, {"layout": "patch4"}, 0.6, 6),
    (3, np.uint8, {"quality": 95}, 1.0, 8),  # Y'CbCr 4:4:4
    # 4:2:0: the stored chroma is used as it is, not upsampled and averaged again (as JPEG's
    # scaled decoding does): strong colour detail then differs by a few levels.
    (3, np.uint8, {"quality": 50}, 2.5, 25),
    (4, np.uint8, {"quality": 80}, 2.5, 25),
    (1, np.uint16, {}, 0.6 * 257, 6 * 257),
    (1, np.float32, {}, 1e-3, 1e-2),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{np.dtype(c[1])}-{c[2]}" for c in CASES])
@pytest.mark.parametrize("k", [2, 4, 8])
def test_reduced_is_the_cell_mean(case: tuple, k: int) -> None:
    channels, dtype, options, mean_tol, max_tol = case
    pixels = photo(203, 157, channels)
    if dtype == np.uint16:
        pixels = pixels.astype(np.uint16) * 257
    elif dtype == np.float32:
        pixels = pixels.astype(np.float32) / 255
    data = svdcodec.encode(pixels.squeeze(), **options)
    full = svdcodec.decode(data)
    small = svdcodec.decode(data, reduce=k)
    expected = cell_means(full, k)
    assert small.shape[:2] == (-(-203 // k), -(-157 // k)) and small.dtype == full.dtype
    error = np.abs(small.astype(np.float64).reshape(expected.shape) - expected)[:-1, :-1]
    assert error.mean() <= mean_tol and error.max() <= max_tol
    assert svdcodec.decode(data, reduce=k, components=2).shape == small.shape


def test_reduce_one_is_the_full_decode() -> None:
    data = svdcodec.encode(photo(40, 30, 3))
    np.testing.assert_array_equal(svdcodec.decode(data, reduce=1), svdcodec.decode(data))


@pytest.mark.parametrize("k", [0, 3, 16, -2])
def test_other_factors_refused(k: int) -> None:
    with pytest.raises(SvdiError, match="reduce"):
        svdcodec.decode(svdcodec.encode(photo(16, 16, 1)), reduce=k)


def test_pillow_draft_and_thumbnail_decode_reduced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image.draft picks the smallest of 1/2, 1/4, 1/8 still at least the size asked for, as
    JPEG's does, so thumbnail() never decodes the full image; the pixels are decode(reduce=k)'s."""
    import io

    from PIL import Image

    from svdcodec import pillow_plugin

    data = svdcodec.encode(photo(203, 157, 3))
    factors = []
    decode, decode_container = pillow_plugin.decode, pillow_plugin.decode_container
    monkeypatch.setattr(pillow_plugin, "decode",
                        lambda *a, **k: factors.append(k["reduce"]) or decode(*a, **k))
    # load() decodes from Image.open's parse of a small in-memory file
    monkeypatch.setattr(pillow_plugin, "decode_container",
                        lambda *a, **k: factors.append(k["reduce"]) or decode_container(*a, **k))
    with Image.open(io.BytesIO(data)) as im:  # draft((40, 40)) inside: 157 // 40 = 3 -> 1/2
        im.thumbnail((20, 20))
        assert factors == [2] and im.size == (15, 20)
    factors.clear()
    with Image.open(io.BytesIO(data)) as im:
        assert im.draft("RGB", (39, 39)) == ("RGB", (0, 0, 157 / 4, 203 / 4))
        assert im.size == (40, 51)
        np.testing.assert_array_equal(np.asarray(im), svdcodec.decode(data, reduce=4))
    with Image.open(io.BytesIO(data)) as im:
        assert im.draft("RGB", (150, 150)) is None and im.size == (157, 203)  # no 1/2 fits
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((20, 20))
        assert im.size == (15, 20)
    with Image.open(io.BytesIO(data)) as im:
        reduced = im.reduce(2)
        assert reduced.size == (79, 102) and im.size == (157, 203)
        np.testing.assert_array_equal(np.asarray(reduced), svdcodec.decode(data, reduce=2))
    with Image.open(io.BytesIO(data)) as im:  # not a power of two: Pillow's own reduce
        assert im.reduce(3).size == (53, 68)


def test_pillow_draft_larger_than_the_image_decodes_it_whole() -> None:
    """A draft size above the image's in either dimension (thumbnail() asks for twice its
    size: a 200 px image made 128 px) keeps the full decode."""
    import io

    from PIL import Image

    data = svdcodec.encode(photo(200, 200, 3))
    with Image.open(io.BytesIO(data)) as im:
        assert im.draft("RGB", (1000, 150)) is None and im.size == (200, 200)
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((128, 128))
        assert im.size == (128, 128)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_pillow_reduce_and_thumbnail_weight_colours_by_alpha(mode: str) -> None:
    """Pillow reduces images with alpha premultiplied: a transparent pixel's colour does not
    bleed into its neighbours. A lossless file gives Pillow's result for the same pixels."""
    import io

    from PIL import Image

    pixels = photo(64, 48, len(mode))
    pixels[:, ::2, -1] = 0  # every other column transparent
    pixels[:, 1::2, -1] = 255
    data = svdcodec.encode(pixels, max_error=0)
    reference = Image.fromarray(pixels, mode)
    with Image.open(io.BytesIO(data)) as im:
        np.testing.assert_array_equal(np.asarray(im.reduce(2)), np.asarray(reference.reduce(2)))
    with Image.open(io.BytesIO(data)) as im:
        im.thumbnail((12, 16))
        expected = reference.copy()
        expected.thumbnail((12, 16))
        np.testing.assert_array_equal(np.asarray(im), np.asarray(expected))


def test_svdi_decode_scale_and_components(tmp_path: Path) -> None:
    from PIL import Image

    from svdcodec import cli

    source = tmp_path / "photo.svdi"
    data = svdcodec.encode(photo(203, 157, 3))
    source.write_bytes(data)
    out = tmp_path / "small.png"
    assert cli.decode_main([str(source), "-o", str(out), "--scale", "1/4", "--quiet"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), svdcodec.decode(data, reduce=4))
    assert cli.decode_main([str(source), "-o", str(tmp_path / "x.png"), "--components", "0"]) == 2


PATHS = [  # (channels, options): every layout, the 4:2:0 and 4:4:4 chroma, a preview
    (3, {"quality": 50}),
    (3, {"quality": 95}),
    (4, {"quality": 80, "layout": "patch4"}),
    (1, {"quality": 90, "layout": "patch2"}),
    (1, {"quality": 80, "layout": "patch16"}),
    (1, {"quality": 80, "layout": "plain"}),
    (1, {"quality": 85, "centre": True}),
    (3, {"max_error": 1}),  # version 2: exact integer products
]


@pytest.mark.parametrize("case", PATHS, ids=[f"{c[0]}-{c[1]}" for c in PATHS])
def test_reduced_pixels_on_every_path(case: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled thumbnail (sparse blocks decoded straight into the reduced product) gives
    the numpy path's bits, and so do small bands with every sparse block streamed (the
    factor's rows filled a pass at a time): the bands and pieces change no pixel."""
    from support import kernels

    from svdcodec.decoder import plane as plane_module
    from svdcodec.runtime import band_sizes

    channels, options = case
    data = svdcodec.encode(photo(203, 157, channels).squeeze(), **options)
    expected = {}
    for k in (2, 4, 8):
        for components in (None, 3):
            with kernels(False):
                expected[k, components] = svdcodec.decode(data, reduce=k, components=components)
            with kernels(True):
                fast = svdcodec.decode(data, reduce=k, components=components)
            assert fast.tobytes() == expected[k, components].tobytes(), (k, components)
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 12)
    monkeypatch.setattr(band_sizes, "CHUNK_BYTES", 64)
    monkeypatch.setattr(plane_module, "held_bytes", lambda *a: 1 << 60)
    for on in (False, True):
        for k in (2, 8):
            with kernels(on):
                small = svdcodec.decode(data, reduce=k)
            assert small.tobytes() == expected[k, None].tobytes(), (on, k)


def test_an_exact_planes_thumbnail_sums_its_blocks_and_keeps_the_bound(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A version 5 file's planes are exact: its thumbnail adds U's blocks straight into the
    reduced sums (no exact product of U's rows at the image's width) and still refuses what a
    full decode refuses, the exact rule's bound (spec §5.1)."""
    from svdcodec.codec import exact
    from svdcodec.decoder import plane as plane_module

    data = svdcodec.encode(photo(203, 157, 3))
    full = svdcodec.decode(data)

    def no_exact_product(*args: object) -> None:
        raise AssertionError("a thumbnail's exact product")
    with monkeypatch.context() as patched:
        patched.setattr(plane_module.PlaneReconstructor, "exact_matrix", no_exact_product)
        for k in (2, 4, 8):
            small = svdcodec.decode(data, reduce=k)
            error = np.abs(small.astype(np.float64) - cell_means(full, k))[:-1, :-1]
            assert error.mean() <= 2.5 and error.max() <= 25  # as CASES' 4:2:0
    monkeypatch.setattr(exact, "EXACT_LIMIT", 1 << 20)  # a bound every plane breaks
    for k in (1, 4):
        with pytest.raises(SvdiError, match="exact (reconstruction bound|weight)"):
            svdcodec.decode(data, reduce=k)


def test_a_small_level_coded_as_an_escape_is_no_level_of_8() -> None:
    """An exact patch plane whose bound allows levels up to 3 (sum W = 2^51), its levels 1
    and 2, one 2 coded as a value escape (the grammar allows it): every reduced decode accepts
    it as the full decode does (a value escape's symbol, nibble 0, is not a level of 8)."""
    import zstandard

    from svdcodec import format as fmt

    def block(kind: bytes, coding: int, descriptor: bytes, content: bytes) -> bytes:
        frame = zstandard.ZstdCompressor(level=1, write_content_size=True).compress(content)
        return fmt.writer.chunk(kind, fmt.BLOCK_RECORD.pack(0, 0, 2, coding) + descriptor
                                + frame)

    header = fmt.Header(64, 64, 1, 1, 0, 0, 1.0, 2)  # L, version 2: exact planes
    plane = fmt.Plane(0, fmt.LAYOUT_PATCH, 8, 64, 64, 2, 1.0, shift=50)
    parts = [fmt.pack_header(header, [plane]),
             block(b"SBLK", fmt.DENSE, fmt.DENSE_RECORD.pack(4, 0, 2),
                   np.ones(2, np.float32).tobytes())]
    for kind, grid in ((b"VBLK", plane.vgrid), (b"UBLK", plane.grid)):
        rows = grid[0] * grid[1]
        symbols, escapes = b"\x09\x09\x08" * rows, b""  # levels 1, 1, end of row
        if kind == b"UBLK":  # the first row's 2 as a value escape
            symbols, escapes = b"\x00\x09\x08" + symbols[3:], np.int16(2).tobytes()
        parts.append(block(kind, fmt.SPARSE, fmt.SPARSE_RECORD.pack(2, len(symbols), 0,
                                                                    len(escapes) // 2),
                           symbols + escapes))
    data = b"".join(parts + [fmt.END])
    full = svdcodec.decode(data)
    for k in (2, 8):
        assert svdcodec.decode(data, reduce=k).shape == (64 // k, 64 // k)
    assert full.shape == (64, 64)
