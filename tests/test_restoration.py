"""Format version 6: the restoration filter (spec §5.6, the RSTR chunk), its two
implementations, the encoder's fit and the decoders that apply it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec.colour import YCC_MULTIPLIERS
from svdcodec.codec.restoration import (
    REACH,
    restore_band,
    restore_channel,
    restore_rows,
)
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder.deblock import target_channel
from svdcodec.encoder.restoration import MAX_ACTIVITY, channel_bounds, target_bands
from svdcodec.errors import SvdiError
from svdcodec.evaluation.metrics import psnr
from tests.support import (
    compiled_kernels,
    decode_everywhere,
    format_version,
    kernels,
    make_vectors,
    photo,
)


def random_filter(rng: np.random.Generator, classes: int, plane: int = 0) -> fmt.Restoration:
    """Any valid filter: coefficients over the whole 7-bit range, bounds that may repeat."""
    lo, hi = fmt.RESTORATION_COEFFICIENT_RANGE
    bounds = tuple(int(b) for b in np.sort(rng.integers(0, 2000, classes - 1)))
    coefficients = tuple(tuple(int(c) for c in rng.integers(lo, hi + 1, 12))
                         for _ in range(classes))
    return fmt.Restoration(plane, bounds, coefficients)


def textured(h: int, w: int, seed: int) -> np.ndarray:
    """Flat areas, ramps, steps and noise, values at 0 and 255: every activity class and the
    clamp are reached."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.integers(-9, 10, (h, w)), axis=1) + rng.integers(0, 256)
    base[: h // 3] = 128
    base[:, : w // 4] += rng.integers(-60, 61, (h, w // 4))
    return np.clip(base, 0, 255).astype(np.uint8)


def by_the_words(s: np.ndarray, r: fmt.Restoration) -> np.ndarray:
    """§5.6 on one channel, sample by sample as the spec words it: the vector generator's
    filter, written apart from the codec's."""
    rows = [list(c) for c in r.coefficients]
    return make_vectors().restore_samples(s, list(r.bounds), rows).astype(np.uint8)


@pytest.mark.parametrize("shape,classes,seed", [
    ((9, 13), 4, 1), ((13, 9), 1, 2), ((1, 11), 2, 3), ((10, 1), 3, 4), ((5, 4), 4, 5),
    ((16, 16), 4, 6)])
def test_both_paths_restore_as_the_spec_words_it(shape: tuple[int, int], classes: int,
                                                 seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = textured(*shape, seed)
    r = random_filter(rng, classes)
    expected = by_the_words(s, r)
    assert not np.array_equal(expected, s)  # the filter changes something here
    np.testing.assert_array_equal(restore_rows(s, 0, shape[0], 0, shape[0], r), expected)
    out = np.empty_like(s)
    compiled_kernels().restore(s, out, 0, shape[0], 0, shape[0],
                               np.array(r.bounds, np.int64), r.table())
    np.testing.assert_array_equal(out, expected)


def test_classes_follow_the_bounds() -> None:
    """A sample whose activity equals a bound is in the class above it; each class has its own
    coefficients (one set zero: those samples pass unchanged)."""
    s = textured(12, 12, 7)
    whole = make_vectors()
    act = np.array([[whole.restore_activity(s, y, x) for x in range(12)] for y in range(12)])
    bound = int(np.median(act))
    strong = (40, -10, 5, -5, 20, 40, -10, 5, 10, -10, 5, 5)
    r = fmt.Restoration(0, (bound,), ((0,) * 12, strong))
    out = restore_rows(s, 0, 12, 0, 12, r)
    np.testing.assert_array_equal(out[act < bound], s[act < bound])
    assert np.any(out[act >= bound] != s[act >= bound])
    np.testing.assert_array_equal(out, by_the_words(s, r))


@pytest.mark.parametrize("compiled", [False, True])
def test_a_window_of_rows_gives_the_bits_of_the_whole(compiled: bool) -> None:
    """restore_band from a window of the channel (its rows and 3 either side, from row `top`)
    gives the rows of the whole channel's filter, at the edges too (rows clamped)."""
    h, w = 40, 23
    s = textured(h, w, 8)
    r = random_filter(np.random.default_rng(9), 4)
    whole = restore_rows(s, 0, h, 0, h, r)
    module = compiled_kernels() if compiled else None
    for y0, y1 in [(0, 5), (3, 17), (17, 40), (38, 40), (20, 21)]:
        lo, hi = max(y0 - REACH, 0), min(y1 + REACH, h)
        out = np.zeros((y1 - y0, w, 3), np.uint8)[:, :, 1]  # strided, as a channel of an image
        restore_band(np.ascontiguousarray(s[lo:hi]), out, y0, y1, lo, h, r, module)
        np.testing.assert_array_equal(out, whole[y0:y1])


def test_compiled_kernel_checks_its_arguments() -> None:
    k = compiled_kernels()
    s = textured(20, 10, 10)
    out = np.empty((10, 10), np.uint8)
    good = (np.array([5, 9], np.int64), np.zeros((3, 12), np.int64))
    k.restore(s, out, 5, 15, 0, 20, *good)
    for args, table in [
        ((s[3:], out, 5, 15, 3, 20), good),  # src lacks row 2
        ((s[:17], out, 5, 15, 0, 20), good),  # src lacks row 17
        ((s, out[:9], 5, 15, 0, 20), good),  # out of 9 rows for 10
        ((s, out, 5, 15, 0, 14), good),  # y1 beyond the height
        ((s, out, 15, 5, 0, 20), good),  # y1 < y0
        ((s, out, 5, 15, 0, 20), (np.array([9, 5], np.int64), good[1])),  # bounds decrease
        ((s, out, 5, 15, 0, 20), (good[0], np.full((3, 12), 64, np.int64))),  # beyond 63
        ((s, out, 5, 15, 0, 20), (good[0], np.full((3, 12), -65, np.int64))),  # below -64
        ((s, out, 5, 15, 0, 20), (np.zeros(4, np.int64), np.zeros((5, 12), np.int64))),
        ((s, out, 5, 15, 0, 20), (good[0], np.zeros((3, 11), np.int64))),  # 11 taps
        ((s, out, 5, 15, 0, 20), (np.zeros(1, np.int64), good[1])),  # 1 bound for 3 classes
    ]:
        with pytest.raises(ValueError):
            k.restore(*args, *table)


def test_every_kernel_level_restores_channels_where_they_lie() -> None:
    """The compiled kernel by every colour_rows level this CPU runs (from 1 the AVX2 rows:
    pair sums and per-sample coefficients in 16-bit lanes, the activity in 16-bit lanes) gives
    numpy's bits: widths around the 16 samples of a step, 1 to 4 classes, every coefficient
    at -64 or 63 (the largest sums), bounds beyond the activity, noise, a checkerboard of 0
    and 255 and ramps; src and out channels of interleaved rows (steps 1 to 5, reversed),
    whose other bytes stay as they were, out also rows of src itself."""
    k = compiled_kernels()
    rng = np.random.default_rng(31)
    best = k.colour_rows()
    try:
        for trial in range(300):
            h, w = int(rng.integers(1, 12)), int(rng.integers(1, 60))
            if trial % 3 == 0:
                s = rng.integers(0, 256, (h, w), dtype=np.uint8)
            elif trial % 3 == 1:
                s = ((np.indices((h, w)).sum(0) % 2) * 255).astype(np.uint8)
            else:
                s = textured(h, w, trial)
            classes = int(rng.integers(1, 5))
            coefficients = (np.full((classes, 12), (-64, 63)[trial % 2], np.int64)
                            if trial % 5 == 0 else rng.integers(-64, 64, (classes, 12)))
            bounds = np.sort(rng.integers(0, (12000, 65536)[trial % 2], classes - 1))
            r = fmt.Restoration(0, tuple(int(b) for b in bounds),
                                tuple(tuple(int(c) for c in row) for row in coefficients))
            expected = restore_rows(s, 0, h, 0, h, r)
            y0 = int(rng.integers(0, h))
            y1 = int(rng.integers(y0 + 1, h + 1))
            lo, hi = max(y0 - REACH, 0), min(y1 + REACH, h)
            step = (1, 3, 4, 2, 5)[trial % 5]
            reverse, in_place = trial % 7 == 0, trial % 7 == 3
            for level in range(best + 1):
                k.colour_rows(level)
                image = rng.integers(0, 256, (h, w + trial % 2, step), dtype=np.uint8)
                c = int(rng.integers(0, step))
                image[:, :w, c] = s[:, ::-1] if reverse else s
                src = image[lo:hi, w - 1::-1, c] if reverse else image[lo:hi, :w, c]
                target = rng.integers(0, 256, (y1 - y0, w + 1, 4), dtype=np.uint8)
                out = (image[y0:y1, :w, c] if in_place
                       else target[:, w - 1::-1, 3 - trial % 4] if reverse
                       else target[:, :w, 3 - trial % 4])
                before = (image if in_place else target).copy()
                k.restore(src, out, y0, y1, lo, h, np.array(r.bounds, np.int64), r.table())
                assert out.tobytes() == expected[y0:y1].tobytes(), (trial, level)
                out[:] = before[y0:y1, :w, c] if in_place else (
                    before[:, w - 1::-1, 3 - trial % 4] if reverse
                    else before[:, :w, 3 - trial % 4])
                assert (image if in_place else target).tobytes() == before.tobytes(), (
                    trial, level)  # no other byte written
    finally:
        k.colour_rows(best)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_channel_in_threaded_bands_as_whole(compiled: bool, threads: int) -> None:
    """restore_channel (bands in threads, in place on a strided channel) = the whole filter."""
    h, w = 700, 411  # several bands of BAND_SAMPLES
    image = np.dstack([textured(h, w, 11), textured(h, w, 12)])
    r = random_filter(np.random.default_rng(13), 4)
    expected = restore_rows(np.ascontiguousarray(image[:, :, 1]), 0, h, 0, h, r)
    restore_channel(image[:, :, 1], r, compiled_kernels() if compiled else None, threads)
    np.testing.assert_array_equal(image[:, :, 1], expected)
    np.testing.assert_array_equal(image[:, :, 0], textured(h, w, 11))


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_contiguous_channel_in_bands_as_whole(compiled: bool, threads: int) -> None:
    """restore_channel on a C-contiguous channel (a grey image's, the encoder's copy): the
    rows around each cut are read unfiltered, not the rows the band above has just written
    (the reference decoder's grey images of several bands differed in the 3 rows below every
    cut)."""
    h, w = 700, 411  # several bands of BAND_SAMPLES
    channel = textured(h, w, 14)
    assert channel.flags.c_contiguous
    r = random_filter(np.random.default_rng(15), 4)
    expected = restore_rows(channel, 0, h, 0, h, r)
    restore_channel(channel, r, compiled_kernels() if compiled else None, threads)
    np.testing.assert_array_equal(channel, expected)


@pytest.fixture(scope="module")
def restored_photo() -> tuple[np.ndarray, bytes, bytes]:
    """A photo-like RGB image at quality 30 with deblock=True, without and with restore."""
    img = photo(200, 264, 3, seed=3)
    return (img, svdcodec.encode(img, quality=30, deblock=True),
            svdcodec.encode(img, quality=30, deblock=True, restore=True))


def test_encoder_restores_where_it_helps_and_every_decoder_agrees(restored_photo) -> None:  # type: ignore[no-untyped-def]
    img, plain, restored = restored_photo
    assert format_version(plain) == fmt.WRITTEN_VERSION == 5
    assert format_version(restored) == fmt.RESTORATION_VERSION == 6
    container = fmt.unpack(restored)
    assert 0 in container.restoration and len(container.restoration[0].coefficients) == 4
    # the factors' bytes are those of the file without the filter: only RSTR, HEAD and the
    # PLANs (version 6's three bytes of adaptive quantization, none here) differ
    assert len(restored) - len(plain) == 12 + sum(len(r.pack())
                                                  for r in container.restoration.values()) \
        + 3 * len(container.planes)
    assert not any(p.adapted for p in container.planes)
    decoded = decode_everywhere(restored)
    assert psnr(img, decoded) > psnr(img, svdcodec.decode(plain)) + 0.02
    decode_everywhere(restored, components=2)  # a preview is restored alike
    with kernels(True):
        via_pillow = np.asarray(Image.open(io.BytesIO(restored)).convert("RGB"))
    np.testing.assert_array_equal(via_pillow, decoded)


SAMPLE_PATH = Path(svdcodec.__file__).parent / "data" / "sample.png"


def sample(mode: str) -> np.ndarray:
    """The package's sample photo (384 x 256) in a Pillow mode: a real picture, whose texture
    the filter sharpens (a synthetic one's noise it cannot)."""
    return np.asarray(Image.open(SAMPLE_PATH).convert(mode))


@pytest.mark.parametrize("options", [{"deblock": False}, {"layout": "plain"}, {"deblock": True}])
def test_grey_and_rgba_restore_alike_everywhere(options: dict) -> None:
    grey = sample("L")
    data = svdcodec.encode(grey, quality=25, restore=True, **options)
    assert format_version(data) == 6
    # with and without the deblocking filter (the encoder's default is the filter)
    assert any(p.filtered for p in fmt.unpack(data).planes) == options.get("deblock", False)
    decode_everywhere(data)
    rgb = sample("RGB")
    rgba = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1]).astype(np.uint8)[None, :]
                      .repeat(rgb.shape[0], 0)])
    data = svdcodec.encode(rgba, quality=25, restore=True, **options)
    assert sorted(fmt.unpack(data).restoration) == [0, 1, 2]  # alpha is exact by its residual
    decoded = decode_everywhere(data)
    np.testing.assert_array_equal(decoded[:, :, 3], rgba[:, :, 3])


@pytest.mark.parametrize("seed", range(6))
def test_bounds_from_the_histogram_are_the_activity_quartiles_rounded_up(seed: int) -> None:
    # the readable definition: np.quantile's (linear) quartiles of the activities, ceiled
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 4, 5, 7, 10, 101, 4099):
        top = int(rng.choice([1, 2, 5, 300, MAX_ACTIVITY + 1]))
        act = rng.integers(0, top, n)
        q = np.quantile(act, [0.25, 0.5, 0.75])
        expected = tuple(int(min(np.ceil(v), 0xFFFF)) for v in q)
        assert channel_bounds(np.bincount(act, minlength=MAX_ACTIVITY + 1)) == expected


@pytest.mark.parametrize("colour", [fmt.COLOUR_YCBCR, 0])
def test_target_bands_are_the_whole_channels_target(colour: int) -> None:
    pixels = photo(37, 53, 3)
    h, w, _ = pixels.shape
    for channel in range(3):
        whole = target_channel(pixels, colour, channel).reshape(h, w)
        rows = target_bands(pixels, colour, channel)
        bands = np.concatenate([rows(y, min(y + 5, h)) for y in range(0, h, 5)])
        assert bands.dtype == np.float32
        assert np.array_equal(bands.view(np.uint32), whole.view(np.uint32))


def test_small_gains_do_not_pay_for_the_chunk() -> None:
    """A crop of the sample at quality 30 with the deblocking filter: the squared error the
    filter saves is below what its bytes cost at the encoder's lambda, so the file stays
    version 5, byte for byte the file without the option."""
    crop = sample("RGB")[:128, :192]
    plain = svdcodec.encode(crop, quality=30, deblock=True)
    assert svdcodec.encode(crop, quality=30, deblock=True, restore=True) == plain


@pytest.mark.parametrize("max_error", [0, 3])
def test_residuals_correct_the_restored_image(max_error: int) -> None:
    img = sample("RGB")
    data = svdcodec.encode(img, quality=25, max_error=max_error, deblock=True, restore=True)
    assert fmt.unpack(data).restoration
    decoded = decode_everywhere(data)
    assert int(np.abs(decoded.astype(int) - img).max()) <= max_error


def without_restoration(data: bytes) -> bytes:
    """The file without its RSTR chunk, as version 5 (the factors unchanged; the PLANs of a
    file without adapted planes back in version 5's 27 bytes)."""
    out, at = [fmt.SIGNATURE], len(fmt.SIGNATURE)
    while at < len(data):
        length = int.from_bytes(data[at:at + 4], "big")
        kind, payload = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        if kind == b"HEAD":
            payload = (5).to_bytes(2, "big") + payload[2:]
        if kind == b"PLAN":
            assert payload[-3:] == bytes(3), "an adapted plane cannot be version 5"
            payload = payload[:-3]
        if kind != b"RSTR":
            out.append(fmt.writer.chunk(kind, payload))
        at += 12 + length
    return b"".join(out)


def test_the_filter_is_all_that_changes(restored_photo) -> None:  # type: ignore[no-untyped-def]
    """Without its RSTR chunk the file is byte for byte the encoder's file without restore."""
    _, plain, restored = restored_photo
    assert without_restoration(restored) == plain


def test_reduced_decodes_do_not_restore(restored_photo) -> None:  # type: ignore[no-untyped-def]
    _, plain, restored = restored_photo
    for factor in (2, 4):
        np.testing.assert_array_equal(svdcodec.decode(restored, reduce=factor),
                                      svdcodec.decode(plain, reduce=factor))


def test_restoration_needs_its_version_and_8_bit_samples() -> None:
    r = fmt.Restoration(0, (), ((1,) * 12,))
    v5 = svdcodec.encode(photo(16, 16, 1)[:, :, 0], quality=50)
    as_v6 = fmt.insert_restoration(v5, [r])
    assert format_version(as_v6) == 6 and fmt.unpack(as_v6).restoration == {0: r}
    assert fmt.insert_restoration(v5, []) == v5
    moved = as_v6.replace(b"RSTR", b"RSTX")  # an unknown critical chunk (the CRC aside)
    with pytest.raises(SvdiError):
        fmt.unpack(moved)
    wide = svdcodec.encode((photo(16, 16, 1)[:, :, 0].astype(np.uint16) * 200), quality=50)
    with pytest.raises(SvdiError, match="8-bit samples only"):
        fmt.unpack(fmt.insert_restoration(wide, [r]))


def test_svdi_info_reports_the_filters(restored_photo) -> None:  # type: ignore[no-untyped-def]
    from svdcodec.cli.info import info_report

    _, _, restored = restored_photo
    report = json.loads(json.dumps(info_report("x.svdi", restored)))
    assert report["format_version"] == 6
    assert sorted(report["restoration"]) == [str(i) for i in sorted(fmt.unpack(restored).restoration)]
    assert len(report["restoration"]["0"]["coefficients"]) == 4


def test_pillow_save_takes_restore() -> None:
    img = Image.fromarray(sample("RGB"))
    buf = io.BytesIO()
    img.save(buf, "SVDI", quality=25, deblock=True, restore=True)
    assert format_version(buf.getvalue()) == 6
    assert buf.getvalue() == svdcodec.encode(img, quality=25, deblock=True, restore=True)


@pytest.mark.parametrize("height,channels,options", [
    (204, 3, {"quality": 30, "deblock": True}), (203, 3, {"quality": 30, "deblock": True}),
    (204, 1, {"quality": 40, "deblock": True}), (205, 3, {"quality": 30, "deblock": False}),
    (204, 4, {"quality": 25, "layout": "patch4", "deblock": True, "exact_alpha": False}),
    (204, 3, {"quality": 60, "layout": "patch16", "deblock": True})])
def test_band_renderer_restores_band_by_band_as_the_whole_image(
        height: int, channels: int, options: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small bands, so that the renderer cuts the image into many, each deblocked, restored
    and converted with its seams (`stream.RestoreSeams`): the pixels of the reference, through
    svdcodec.decode and through Pillow (its bands of exact planes), on both paths and in
    threads; with and without the deblocking filter, 4:2:0 of even and odd sizes, grey, RGBA.
    The filters are any valid ones (strong, every class), not the encoder's."""
    from svdcodec.decoder.stream import BandRenderer, RestoreSeams
    from svdcodec.runtime import band_sizes
    from svdcodec.runtime.threads import threads

    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 4)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "MAPPED_BYTES", 1 << 10)  # Pillow's bands, not mapped
    image = photo(height, 150, channels, seed=channels + 30)
    layer = svdcodec.encode(image, **options)
    # "without the deblocking filter" says so: the encoder's default is the filter
    assert any(p.filtered for p in fmt.unpack(layer).planes) == options["deblock"]
    rng = np.random.default_rng(height + channels)
    filters = [random_filter(rng, 4 - c, plane=c) for c in range(min(channels, 3))]
    data = fmt.insert_restoration(layer, filters)
    want = decode_reference(data)
    assert not np.array_equal(want, decode_reference(layer))
    for on in (True, False):
        with kernels(on):
            for lean in (False, True):
                renderer = BandRenderer.prepare(fmt.unpack(data), lean=lean)
                assert renderer is not None and isinstance(renderer.seams, RestoreSeams)
                assert len(renderer.bands) > 3
                assert all(y1 - y0 >= RestoreSeams.MIN_ROWS for y0, y1 in renderer.bands[:-1])
            for n in (1, 3):
                with threads(n):
                    np.testing.assert_array_equal(svdcodec.decode(data), want)
                    with Image.open(io.BytesIO(data)) as im:
                        im.load()
                        got = np.asarray(im)
                        if channels == 3:
                            got = got[:, :, :3] if got.ndim == 3 else got
                        np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_one_pass_kernel_gives_the_separate_kernels_bits() -> None:
    """restore_ycc (deblocking, restoration and conversion on a ring of rows, `RestoreSeams`'
    one pass) by every colour_rows level this CPU runs: the bits of double_chroma, deblock,
    restore and convert_ycc one after the other, on bands of an image (from a multiple of
    every period, and a seam's rows from any row without filters), widths around the 16
    samples of a step, 1 to 4 classes on some of Y', Cb and Cr, RGB and RGBX rows; the rows
    held above and below deblocked, out's other rows untouched."""
    from svdcodec.codec.deblock import filter_lines

    k = compiled_kernels()
    colour = YCC_MULTIPLIERS
    rng = np.random.default_rng(47)
    best = k.colour_rows()
    try:
        for trial in range(120):
            h = 2 * int(rng.integers(4, 40))
            w = 2 * int(rng.integers(1, 30))
            c = 3 + trial % 2
            image = np.dstack([textured(h, w, trial), textured(h, w, trial + 1),
                               textured(h, w, trial + 2),
                               rng.integers(0, 256, (h, w, 1), dtype=np.uint8)])[:, :, :c]
            image = np.ascontiguousarray(image)
            seam = trial % 4 == 3
            channels = [ch for ch in range(3) if rng.random() < 0.7] or [0]
            periods = (4, 8, 16)
            table = (np.zeros((0, 5), np.int64) if seam else np.array(
                [(ch, periods[int(rng.integers(0, 3))], 40, 12, 6) for ch in channels
                 if rng.random() < 0.8], np.int64).reshape(-1, 5))
            restorations = [(ch, np.sort(rng.integers(0, 3000, n - 1)).astype(np.int64),
                             rng.integers(-64, 64, (n, 12)).astype(np.int64))
                            for ch in channels for n in [int(rng.integers(1, 5))]]
            if seam:
                y0 = int(rng.integers(0, h - 1))
            else:
                y0 = 16 * int(rng.integers(0, h // 16 + 1))
                y0 = min(y0, h - 1)
                y0 -= y0 % 16
            y1 = int(rng.integers(y0 + 1, h + 1))
            lo = y0 if y0 == 0 else y0 + REACH
            hi = y1 if y1 == h else y1 - REACH
            r0 = int(rng.integers(lo, hi + 1)) if hi > lo else y0  # else none restored
            r1 = int(rng.integers(r0, hi + 1)) if hi > lo else y0
            halves = None
            if trial % 3 == 0 and not seam:
                halves = (rng.normal(0, 30, (h // 2, w // 2)).astype(np.float32),
                          rng.normal(0, 30, (h // 2, w // 2)).astype(np.float32))
            pad = 255 if c == 4 and trial % 4 < 2 else -1
            # the separate kernels
            want = image.copy()
            if halves is not None:
                k.double_chroma(want, y0, y1, *halves)
            band = want[y0:y1]
            for ch, period, alpha, beta, tc in table:
                filter_lines(band[:, :, ch], int(period), int(alpha), int(beta), int(tc), 1)
                if y0 % 16 == 0:
                    filter_lines(band[:, :, ch], int(period), int(alpha), int(beta), int(tc), 0)
            deblocked = want.copy()
            for ch, bounds, coefficients in restorations:
                if r1 > r0:
                    k.restore(np.ascontiguousarray(deblocked[y0:y1, :, ch]),
                              want[r0:r1, :, ch], r0, r1, y0, h, bounds, coefficients)
            if r1 > r0:
                k.convert_ycc(want, r0, r1, colour, pad)
            for level in range(best + 1):
                k.colour_rows(level)
                got = image.copy()
                n_above, n_below = int(rng.integers(0, y1 - y0 + 1)), int(
                    rng.integers(0, y1 - y0 + 1))
                above = np.zeros((n_above, w, c), np.uint8)
                below = np.zeros((n_below, w, c), np.uint8)
                top = int(rng.integers(0, y0 + 1))
                part = got[top:]
                k.restore_ycc(part, y0, y1, r0, r1, table, restorations, colour,
                              *(halves if halves is not None else (None, None)), top=top,
                              height=h, above=above, below=below, pad=pad)
                assert got.tobytes() == np.concatenate([image[:r0], want[r0:r1],
                                                        image[r1:]]).tobytes(), (trial, level)
                np.testing.assert_array_equal(above[:, :, :3], deblocked[y0:y0 + n_above, :, :3])
                np.testing.assert_array_equal(below[:, :, :3],
                                              deblocked[y1 - n_below:y1, :, :3])
        with pytest.raises(ValueError):  # rows the restoration reads outside [y0, y1)
            k.restore_ycc(image, 8, 20, 9, 19, np.zeros((0, 5), np.int64), restorations,
                          colour, height=h)
        with pytest.raises(ValueError):  # a filter on the alpha channel
            k.restore_ycc(image, 0, 16, 0, 16, np.array([(3, 4, 1, 1, 1)], np.int64), [],
                          colour, height=h)
        with pytest.raises(ValueError):  # a channel restored twice
            k.restore_ycc(image, 0, 16, 0, 16, np.zeros((0, 5), np.int64),
                          restorations[:1] * 2, colour, height=h)
    finally:
        k.colour_rows(best)
