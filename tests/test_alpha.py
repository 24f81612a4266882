"""An exact alpha that varies is coded with no layer (its plane of rank 0, the residual blocks
the samples themselves), and every decode shows it: the full image, previews of fewer
components, reduced sizes and files that end early (spec §5.3, docs/lossless.md "Alpha")."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image
from support import StreamCount, decode_everywhere, kernels, photo

import svdcodec
from svdcodec.decoder import residuals as residual_phase
from svdcodec.decoder.reference import decode_reference
from svdcodec.decoder.residuals import bare_channels
from svdcodec.encoder import tuning
from svdcodec.evaluation.metrics import psnr
from svdcodec.format import unpack


def disc(h: int, w: int, soft: bool = False) -> np.ndarray:
    """A cut-out's alpha: opaque inside an ellipse, transparent outside (soft: a ramp across
    its edge, as an anti-aliased mask)."""
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot((yy - h / 2) / (0.4 * h), (xx - w / 2) / (0.4 * w))
    if soft:
        return (255 * np.clip((1.1 - r) * 5, 0, 1)).astype(np.uint8)
    return np.where(r < 1, 255, 0).astype(np.uint8)


def cell_reduced(samples: np.ndarray, factor: int) -> np.ndarray:
    """What a reduced decode of these exact integer samples gives (spec §5.3), cell by cell in
    integers: the mean of each factor x factor cell (partial at the edges) rounded half up."""
    h, w = samples.shape
    out = np.empty((-(-h // factor), -(-w // factor)), samples.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            cell = samples[i * factor:(i + 1) * factor, j * factor:(j + 1) * factor]
            total, count = int(cell.astype(np.int64).sum()), cell.size
            out[i, j] = (2 * total + count) // (2 * count)  # floor(total / count + 1/2)
    return out


IMAGES = {
    "rgba": lambda: np.dstack([photo(75, 101, 3, 1), disc(75, 101)]),
    "la": lambda: np.dstack([photo(64, 90, 1, 2)[..., 0], disc(64, 90, soft=True)]),
    "rgba16": lambda: np.dstack([photo(48, 70, 3, 3).astype(np.uint16) * 257,
                                 disc(48, 70, soft=True).astype(np.uint16) * 257]),
}


@pytest.mark.parametrize("options", [{}, {"quality": 30}, {"effort": 2}, {"max_error": 3}])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_alpha_has_no_layer_and_comes_back_exact(name: str, options: dict) -> None:
    image = IMAGES[name]()
    data = svdcodec.encode(image, **options)
    container = unpack(data)
    alpha = image.shape[2] - 1
    assert container.planes[alpha].rank == 0
    assert alpha in bare_channels(container)
    decoded = decode_everywhere(data)
    np.testing.assert_array_equal(decoded[..., alpha], image[..., alpha])


def test_an_opaque_alpha_keeps_its_layer() -> None:
    """A constant alpha is exact in the layer (no residual block), as before."""
    image = np.dstack([photo(40, 56, 3, 4), np.full((40, 56), 255, np.uint8)])
    container = unpack(svdcodec.encode(image))
    assert not container.residuals and container.planes[3].rank > 0
    np.testing.assert_array_equal(svdcodec.decode(svdcodec.encode(image))[..., 3], 255)


def test_exact_alpha_off_keeps_the_lossy_layer() -> None:
    image = IMAGES["rgba"]()
    container = unpack(svdcodec.encode(image, exact_alpha=False))
    assert not container.residuals and container.planes[3].rank > 0


def test_a_mask_costs_about_what_png_takes_for_it() -> None:
    """The point of coding alpha with no layer: a cut-out's mask costs about what PNG takes for
    it alone (over a lossy layer it cost several times that: the layer's smooth approximation
    of an edge leaves a residual in every sample near it), less at effort 2."""
    rgb = photo(192, 256, 3, 5)
    mask = disc(192, 256)
    png = io.BytesIO()
    Image.fromarray(mask).save(png, "PNG")
    for effort, most in ((1, 1.5), (2, 1.0)):
        cost = len(svdcodec.encode(np.dstack([rgb, mask]), effort=effort)) - len(
            svdcodec.encode(rgb, effort=effort))
        assert cost < most * len(png.getvalue()), (effort, cost, len(png.getvalue()))


@pytest.mark.parametrize("factor", [2, 4, 8])
@pytest.mark.parametrize("name", sorted(IMAGES))
def test_reduced_alpha_is_the_cell_mean_of_the_exact_alpha(name: str, factor: int) -> None:
    image = IMAGES[name]()
    data = svdcodec.encode(image)
    alpha = image.shape[2] - 1
    expected = cell_reduced(image[..., alpha], factor)
    for on in (True, False):
        with kernels(on):
            reduced = svdcodec.decode(data, reduce=factor)
        np.testing.assert_array_equal(reduced[..., alpha], expected)


def test_reduced_decode_of_a_file_with_no_layer_is_the_cell_mean() -> None:
    """Every channel with no layer (16-bit noise, which the encoder codes bare): a thumbnail
    is the image's, not the empty layer's."""
    noise = np.random.default_rng(7).integers(0, 65536, (37, 51, 3)).astype(np.uint16)
    data = svdcodec.encode(noise, max_error=0)
    assert all(p.rank == 0 for p in unpack(data).planes)
    for factor in (2, 8):
        reduced = svdcodec.decode(data, reduce=factor)
        for c in range(3):
            np.testing.assert_array_equal(reduced[..., c], cell_reduced(noise[..., c], factor))


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_previews_show_the_exact_alpha(name: str) -> None:
    image = IMAGES[name]()
    data = svdcodec.encode(image, quality=90)
    alpha = image.shape[2] - 1
    preview = decode_everywhere(data, components=1)  # the reference agrees
    np.testing.assert_array_equal(preview[..., alpha], image[..., alpha])
    assert not np.array_equal(preview[..., :alpha], svdcodec.decode(data)[..., :alpha])


def test_a_preview_does_not_read_residuals_of_channels_with_a_layer() -> None:
    """A preview reads the residual blocks it applies (and their references'), no others: a
    lossless file's colour residuals wait for every component, as before."""
    image = np.dstack([photo(40, 56, 3, 6), disc(40, 56)])
    data = svdcodec.encode(image, max_error=0, quality=80)
    container = unpack(data)
    assert container.planes[0].rank > 0 and bare_channels(container) == [3]
    preview = svdcodec.decode(data, components=1)
    np.testing.assert_array_equal(preview, decode_reference(data, components=1))
    np.testing.assert_array_equal(preview[..., 3], image[..., 3])
    assert not np.array_equal(preview[..., :3], image[..., :3])


@pytest.mark.parametrize("reduce", [1, 2, 4])
def test_a_file_cut_short_shows_the_alpha_rows_that_arrived(reduce: int,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """Alpha in several residual blocks (rows of a band each): a file cut after some of them
    shows those rows' alpha exact (their whole cells at a reduced size), the others the
    layer's (transparent), on every path; in a preview too."""
    monkeypatch.setattr(tuning, "RESIDUAL_BLOCK_SAMPLES", 16 * 64)
    image = np.dstack([photo(80, 64, 3, 8), disc(80, 64, soft=True)])
    data = svdcodec.encode(image)
    container = unpack(data)
    blocks = [b for b in container.residuals if b.channel == 3]
    assert [b.rows for b in blocks] == [16] * 5
    expected_full = image[..., 3] if reduce == 1 else cell_reduced(image[..., 3], reduce)
    # cut inside the fourth block (its chunk's length field comes before the type): rows
    # 0..47 arrived
    starts = [i - 4 for i in range(len(data)) if data.startswith(b"RBLK", i)]
    assert len(starts) == len(container.residuals)
    cut = starts[3] + 20
    for on in (True, False):
        with kernels(on):
            got = svdcodec.decode(data[:cut], truncated="fill", reduce=reduce)
        whole = 48 // reduce
        np.testing.assert_array_equal(got[:whole, :, 3], expected_full[:whole])
        assert (got[-(16 // reduce):, :, 3] == 0).all()


def test_centred_alpha_has_no_mean_chunk() -> None:
    """centre=True: the alpha's zero plane has all-zero column means, so no MEAN chunk: it
    stays a channel with no layer and thumbnails show it."""
    image = IMAGES["rgba"]()
    data = svdcodec.encode(image, centre=True)
    container = unpack(data)
    assert 3 not in container.means and 3 in bare_channels(container)
    np.testing.assert_array_equal(svdcodec.decode(data, reduce=2)[..., 3],
                                  cell_reduced(image[..., 3], 2))


def test_target_psnr_is_of_the_colour_channels() -> None:
    """The exact alpha decodes exactly: target_psnr is met by the colour channels."""
    image = np.dstack([photo(96, 128, 3, 9), disc(96, 128)])
    decoded = svdcodec.decode(svdcodec.encode(image, target_psnr=34.0))
    np.testing.assert_array_equal(decoded[..., 3], image[..., 3])
    error = (decoded[..., :3].astype(np.float64) - image[..., :3]) ** 2
    assert 34.0 <= 10 * np.log10(255.0 ** 2 / error.mean()) < 36.0


def with_reference(data: bytes, channel: int, block: int, reference: int) -> bytes:
    """`data` with the reference field of `channel`'s block number `block` set (its CRC
    mended): a file the encoder does not write but the format allows (spec §4.1)."""
    out = bytearray(data)
    at, seen = data.index(b"HEAD") - 4, 0
    while at + 8 <= len(out):
        length, kind = int.from_bytes(out[at:at + 4], "big"), bytes(out[at + 4:at + 8])
        if kind == b"RBLK" and out[at + 8] == channel:
            if seen == block:
                out[at + 9] = reference
                crc = zlib.crc32(bytes(out[at + 8:at + 8 + length]), zlib.crc32(kind))
                out[at + 8 + length:at + 12 + length] = crc.to_bytes(4, "big")
            seen += 1
        at += 12 + length
    return bytes(out)


def test_blocks_of_one_channel_may_refer_to_different_channels(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """An alpha with no layer whose blocks refer to green, then to red (spec §4.1 allows a
    reference per block): every path reads each block's own reference, in previews,
    thumbnails and files cut short too, and agrees with the reference decoder."""
    from svdcodec.encoder import residual

    image = IMAGES["rgba"]()[:48, :40].copy()
    blocks = residual.residual_blocks
    monkeypatch.setattr(residual, "residual_blocks", lambda q, steps, references, *rest:
                        blocks(q, steps, {3: 1}, *rest))
    monkeypatch.setattr(tuning, "RESIDUAL_BLOCK_SAMPLES", 12 * 40)
    data = svdcodec.encode(image, max_error=0, quality=70, deblock=False)
    data = with_reference(with_reference(data, 3, 2, 0), 3, 3, 0)
    assert [b.reference for b in unpack(data).residuals if b.channel == 3] == [1, 1, 0, 0]
    # (the alpha is now the q of those blocks plus red's instead of green's: not the image's)
    alpha = decode_everywhere(data)[..., 3]
    assert not np.array_equal(alpha, image[..., 3])
    np.testing.assert_array_equal(decode_everywhere(data, components=1)[..., 3], alpha)
    cut = data[:len(data) - 200]
    for on in (True, False):
        with kernels(on):
            np.testing.assert_array_equal(svdcodec.decode(data, reduce=2)[..., 3],
                                          cell_reduced(alpha, 2))
            arrived = svdcodec.decode(cut, truncated="fill", components=1)
            np.testing.assert_array_equal(arrived[:36, :, 3], alpha[:36])


def test_previews_and_thumbnails_keep_to_four_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of 10 channels with no layer (spec §5 Resources): a thumbnail and a preview read
    their residual blocks in groups, at most 4 zstd streams open at once, as a full decode."""
    rng = np.random.default_rng(3)
    image = rng.integers(-300, 300, (40, 33, 10)).astype(np.int16)
    data = svdcodec.encode(image, max_error=0, rank=0)
    assert len(bare_channels(unpack(data))) == 10
    streams = StreamCount().watch(monkeypatch)
    # bands of 5 rows: a block spans several, so every stream of a group is open at once
    monkeypatch.setattr(residual_phase, "BAND_SAMPLES", 5 * 33)
    for options in ({}, {"reduce": 4}, {"components": 0}):
        streams.reset()
        decoded = svdcodec.decode(data, **options)
        assert 1 <= streams.most <= 4 and streams.open == 0, (options, streams.most)
        if "reduce" not in options:
            np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize("name", ["rgba", "la"])
def test_max_bytes_counts_the_exact_alpha(name: str) -> None:
    """max_bytes holds the whole file, the alpha's residual blocks included (before, only the
    layer was searched to fit)."""
    image = IMAGES[name]()
    alpha = len(svdcodec.encode(image, quality=1)) - len(svdcodec.encode(image[..., :-1].copy(),
                                                                          quality=1))
    for budget in (alpha + 900, alpha + 3000):
        data = svdcodec.encode(image, max_bytes=budget)
        assert len(data) <= budget
        np.testing.assert_array_equal(svdcodec.decode(data)[..., -1], image[..., -1])
    with pytest.raises(svdcodec.SvdiError, match="no file fits"):
        svdcodec.encode(image, max_bytes=alpha // 2)


def test_max_bytes_with_a_constant_channel_residual() -> None:
    """A constant channel the layer misses takes a residual that depends on the layer: the
    search measures the whole file, and finds about what a quality setting of that size
    gives."""
    image = photo(64, 80, 3, 12)
    image[..., 2] = 3  # constant blue, which a lossy layer does not decode exactly
    for budget, quality in ((2000, 20), (2500, 40)):  # at quality 20: 1627 bytes; 40: 2473
        data = svdcodec.encode(image, max_bytes=budget)
        decoded = svdcodec.decode(data)
        assert len(data) <= budget
        np.testing.assert_array_equal(decoded[..., 2], 3)
        reference = svdcodec.decode(svdcodec.encode(image, quality=quality))
        assert psnr(decoded, image) >= psnr(reference, image) - 1.0
