"""Format version 4: the deblocking filter (spec §3, §5.4), its two implementations, the
encoder's choice and the decoders that apply it."""

from __future__ import annotations

import itertools
import struct
import zlib

import numpy as np
import pytest

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec.colour import CHROMA_OFFSET, YCC_MULTIPLIERS, plain_ycc
from svdcodec.codec.deblock import deblock_channels, filter_lines
from svdcodec.decoder.reference import decode_reference
from svdcodec.encoder.deblock import (
    GOAL_SCALE,
    EdgeSamples,
    band_rows,
    filter_gain,
    goal_rows,
    goal_units,
    judged_bands,
    strengths,
    target_channel,
)
from svdcodec.encoder.tuning import DEBLOCK_SAMPLE_EVERY, DEBLOCK_SAMPLE_ROWS
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


def filtered_by_the_words(s: np.ndarray, period: int, alpha: int, beta: int, tc: int
                          ) -> np.ndarray:
    """§5.4 on one channel, sample by sample as the spec words it (small arrays only): the
    vector generator's filter, written apart from the codec's."""
    return make_vectors().deblock_samples(s, period, alpha, beta, tc).astype(np.uint8)


def blocky(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """Smooth samples with steps at random places: edges the filter treats and edges it
    leaves, values near 0 and 255 so that the clamp matters."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.integers(-6, 7, (h, w, c)), axis=1) + rng.integers(0, 256, (1, 1, c))
    return np.clip(base, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("period", [2, 4, 6, 8, 16])
def test_both_paths_filter_as_the_spec_words_it(period: int) -> None:
    compiled = compiled_kernels()
    rng = np.random.default_rng(period)
    for trial in range(12):
        h, w, c = int(rng.integers(1, 30)), int(rng.integers(1, 30)), int(rng.integers(1, 5))
        image = blocky(h, w, c, trial) if trial % 3 else rng.integers(0, 256, (h, w, c),
                                                                       dtype=np.uint8)
        params = (int(rng.integers(1, 256)), int(rng.integers(1, 256)), int(rng.integers(1, 40)))
        channel = int(rng.integers(0, c))
        want = image.copy()
        want[..., channel] = filtered_by_the_words(image[..., channel], period, *params)
        for path in (None, compiled):
            got = image.copy()
            deblock_channels(got, [(channel, period, params)], path, threads=2)
            np.testing.assert_array_equal(got, want)


def test_period_two_reads_each_pass_before_it() -> None:
    """Edges two apart share samples: filtering them one after the other in place gives other
    bytes, so the numpy path's reading first is the rule, and the compiled one keeps to it."""
    line = np.array([[100, 120, 100, 140, 90, 130, 100, 120]], np.uint8)
    sequential = line.astype(np.int64)
    for e in range(2, 7, 2):
        p1, p0, q0, q1 = sequential[0, e - 2:e + 2]
        d = min(9, max(-9, (4 * (q0 - p0) + (p1 - q1) + 4) >> 3))
        sequential[0, e - 1], sequential[0, e] = p0 + d, q0 - d
    spec = filtered_by_the_words(line, 2, 255, 255, 60)
    assert not np.array_equal(spec, sequential)
    numpy_path = line.copy()
    filter_lines(numpy_path, 2, 255, 255, 60, axis=1)
    np.testing.assert_array_equal(numpy_path, spec)
    compiled = line[..., None].copy()
    compiled_kernels().deblock(compiled, np.array([[0, 2, 255, 255, 60]]), 1, 0, 1)
    np.testing.assert_array_equal(compiled[..., 0], spec)


def test_compiled_kernel_checks_its_arguments() -> None:
    compiled = compiled_kernels()
    image = np.zeros((8, 8, 3), np.uint8)
    good = [0, 4, 1, 1, 1]
    for filters, axis, lo, hi in [([good], 2, 0, 8), ([good], 1, -1, 8), ([good], 1, 0, 9),
                                  ([good], 0, 4, 3), ([[3, 4, 1, 1, 1]], 1, 0, 8),
                                  ([[0, 1, 1, 1, 1]], 1, 0, 8), ([[0, 4, 256, 1, 1]], 1, 0, 8),
                                  ([[0, 4, 1, -1, 1]], 1, 0, 8), ([[0, 4, 1, 1, 300]], 1, 0, 8),
                                  ([good, good], 1, 0, 8), ([good] * 4, 1, 0, 8)]:
        with pytest.raises(ValueError):
            compiled.deblock(image, np.array(filters, np.int64), axis, lo, hi)
    with pytest.raises(ValueError):  # 4 values per filter, not 5
        compiled.deblock(image, np.array([good[:4]], np.int64), 1, 0, 8)
    with pytest.raises(TypeError):
        compiled.deblock(image.astype(np.uint16), np.array([good]), 1, 0, 8)
    with pytest.raises(ValueError):  # not C-contiguous
        compiled.deblock(image[:, ::2], np.array([good]), 1, 0, 4)


def test_several_channels_at_once_as_one_by_one() -> None:
    image = blocky(45, 77, 4, 8)
    filters = [(0, 4, (40, 20, 3)), (2, 16, (30, 10, 2)), (3, 2, (255, 255, 9))]
    one_by_one = image.copy()
    for f in filters:
        deblock_channels(one_by_one, [f], None)
    for path in (None, compiled_kernels()):
        together = image.copy()
        deblock_channels(together, filters, path, threads=2)
        np.testing.assert_array_equal(together, one_by_one)


@pytest.mark.parametrize("channel", [0, 1, 2, 3])
def test_filter_gain_is_the_change_of_the_whole_channels_error(channel: int) -> None:
    image = blocky(37, 29, 4, channel)
    decoded = blocky(37, 29, 1, 10 + channel)[..., 0]
    target = plain_ycc(image)  # colour 1: Y', Cb, Cr of the image (alpha: its samples)
    want = (target[..., channel] + (CHROMA_OFFSET if channel in (1, 2) else 0)
            if channel < 3 else image[..., 3]).astype(np.float64)
    filtered = decoded[..., None].copy()
    params = (255, 255, 20)
    deblock_channels(filtered, [(0, 8, params)], None)
    whole = np.sum((decoded - want) ** 2) - np.sum((filtered[..., 0] - want) ** 2)
    gain = filter_gain(decoded, target_channel(image, fmt.COLOUR_YCBCR, channel), 8, params)
    assert gain == pytest.approx(whole, rel=1e-9, abs=1e-6) and gain != 0


@pytest.mark.parametrize("period", [4, 8, 16, 32])
def test_judged_bands_filter_as_in_the_whole_channel(period: int) -> None:
    """The gain on the sampled bands' counted rows is the whole channel's filter, restricted
    to those rows, exactly (an edge's samples never reach past the next edge)."""
    band = -(-DEBLOCK_SAMPLE_ROWS // period) * period
    h = 2 * DEBLOCK_SAMPLE_EVERY * band + 3
    assert judged_bands(h - 4, period, 0) is None and judged_bands(h, 2, 0) is None
    bands = judged_bands(h, period, 0)
    assert bands is not None
    rows, counted = band_rows(bands)
    assert rows.size == counted.size and 0 < np.count_nonzero(counted) < h // 2
    decoded = blocky(h, 45, 1, period)[..., 0]
    image = blocky(h, 45, 3, period + 1)
    target = target_channel(image, fmt.COLOUR_YCBCR, 0).reshape(h, 45).astype(np.float64)
    params = (255, 255, 20)
    whole = decoded[..., None].copy()
    deblock_channels(whole, [(0, period, params)], None)
    kept = rows[counted]
    want = (np.sum((decoded[kept] - target[kept]) ** 2)
            - np.sum((whole[kept, :, 0] - target[kept]) ** 2))
    gain = filter_gain(np.ascontiguousarray(decoded[rows]),
                       target_channel(image[rows], fmt.COLOUR_YCBCR, 0), period, params, counted)
    assert gain == pytest.approx(want, rel=1e-9, abs=1e-6) and gain != 0
    # and not on the rows left out: the band borders' edges are unseen in the sample
    full = filter_gain(np.ascontiguousarray(decoded[rows]),
                       target_channel(image[rows], fmt.COLOUR_YCBCR, 0), period, params)
    assert full != gain


def test_strength_trials_are_exact_integers_on_both_paths() -> None:
    """`deblock_gains` (every colour_rows level: AVX2 edges and the plain loops) and the
    numpy path give the same integers, which are 2^16 times the change of the squared error
    against the goal in units of 2^-16, counted rows only: channels of odd widths (edges past
    a multiple of 16), periods 2 to 32, thresholds and clamps at their ends, samples near 0
    and 255, goals at the ends of the 8-bit range."""
    compiled = compiled_kernels()
    best = compiled.colour_rows()
    rng = np.random.default_rng(41)
    try:
        for trial in range(60):
            period = int(rng.choice([2, 3, 4, 6, 8, 16, 32]))
            h, w = int(rng.integers(1, 70)), int(rng.integers(1, 300))
            decoded = np.ascontiguousarray(blocky(h, w, 1, trial)[..., 0])
            target = (decoded + rng.normal(0, 4, (h, w))).clip(-1, 257).astype(np.float32)
            counted = rng.random(h) < 0.7
            candidates = [(int(rng.choice([0, 1, 255, *rng.integers(2, 255, 2)])),
                           int(rng.choice([0, 1, 255, *rng.integers(2, 255, 2)])),
                           int(rng.choice([0, 1, 255, *rng.integers(2, 40, 2)])))
                          for _ in range(4)]
            judged = EdgeSamples(decoded, period, goal_units(target), counted)
            with kernels(False):
                want = judged.changes(candidates)
            goal = goal_units(target).astype(np.float64) / GOAL_SCALE
            for params, change in zip(candidates, want):
                filtered = decoded[..., None].copy()
                deblock_channels(filtered, [(0, period, params)], None)
                moved = filtered[counted, :, 0].astype(np.float64)
                was = decoded[counted].astype(np.float64)
                exact = np.sum((moved - goal[counted]) ** 2) - np.sum((was - goal[counted]) ** 2)
                assert change == pytest.approx(exact * GOAL_SCALE, abs=1e-3)
            for level in range(best + 1):
                compiled.colour_rows(level)
                with kernels(True):
                    assert judged.changes(candidates) == want, (trial, level)
    finally:
        compiled.colour_rows(best)


def test_strength_trials_check_their_arguments() -> None:
    compiled = compiled_kernels()
    samples = np.zeros((8, 9), np.uint8)
    goal = np.zeros((8, 9), np.int32)
    counted = np.ones(8, np.uint8)
    table = np.array([(4, 2, 1)], np.int64)
    out = np.zeros(1, np.int64)
    compiled.deblock_gains(samples, goal, counted, 4, table, out)
    assert out[0] == 0
    bad_goal = goal.copy()
    bad_goal[3, 4] = 1 << 26
    for args, match in [((samples, bad_goal, counted, 4, table, out), "goal"),
                        ((samples, goal, counted, 4, table * 100, out), "0..255"),
                        ((samples, goal, counted, 1, table, out), "period"),
                        ((samples, goal[:7], counted, 4, table, out), "goal"),
                        ((samples, goal, counted[:7], 4, table, out), "counted"),
                        ((samples, goal, counted, 4, table, np.zeros(2, np.int64)), "out")]:
        with pytest.raises(ValueError, match=match):
            compiled.deblock_gains(*args)


def test_goal_in_integers_is_the_float_target_on_both_paths() -> None:
    """`goal_rows` (the C kernel `deblock_goal` and the numpy integers) gives exactly
    `goal_units(target_channel(...))` for every RGB colour (the Y'CbCr weights are integers:
    no float32 step of the target rounds), for alpha and for plain channels, on strided
    pixels too."""
    v = np.arange(1 << 24, dtype=np.uint32)
    every = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], axis=1).astype(np.uint8)
    rgb = every.reshape(2048, 8192, 3)
    alpha = np.dstack([rgb[:64, :100], rgb[64:128, :100, :1]])
    five = np.dstack([alpha, rgb[128:192, :100, 1:2]])
    strided = rgb[1:200:3, ::7]
    cases = [(rgb, fmt.COLOUR_YCBCR, c) for c in range(3)] + [(rgb, 0, 1)]
    cases += [(alpha, fmt.COLOUR_YCBCR, c) for c in range(4)] + [(strided, fmt.COLOUR_YCBCR, 2)]
    cases += [(five, 0, c) for c in range(5)]
    for pixels, colour, channel in cases:
        want = goal_units(target_channel(pixels, colour, channel)).reshape(pixels.shape[:2])
        for compiled in (True, False):
            out = np.empty(pixels.shape[:2], dtype=np.int32)
            with kernels(compiled):
                goal_rows(pixels, colour, channel, out)
            assert np.array_equal(out, want), (colour, channel, compiled)


def test_goal_kernel_checks_its_arguments() -> None:
    compiled = compiled_kernels()
    pixels = np.zeros((4, 5, 3), np.uint8)
    weights = np.array([1, 2, 3], np.int64)
    out = np.zeros((4, 5), np.int32)
    compiled.deblock_goal(pixels, weights, 7, out)
    assert (out == 7).all()
    for args, match in [((pixels, weights, 7, out[:3]), "out"),
                        ((pixels, weights[:2], 7, out), "weights"),
                        ((np.zeros((4, 5, 0), np.uint8), np.ones(0, np.int64), 0, out), "c"),
                        ((pixels, weights * (1 << 16), 0, out), "2\\^26"),
                        ((pixels, weights, 1 << 26, out), "2\\^26")]:
        with pytest.raises(ValueError, match=match):
            compiled.deblock_goal(*args)


def test_strengths_are_bytes_of_at_least_one() -> None:
    assert all(1 <= v <= 255 for s in strengths(0.01) + strengths(1e6) for v in s)
    assert strengths(13.0)[0] == (26, 13, 1)


@pytest.mark.parametrize("channels,options", [(3, {"quality": 30}), (3, {"quality": 25, "layout": "patch8"}),
                                              (1, {"quality": 40}), (2, {"quality": 50}),
                                              (4, {"quality": 50, "layout": "patch2"})])
def test_encoder_filters_where_it_helps_and_every_decoder_agrees(channels: int,
                                                                 options: dict) -> None:
    image = photo(70, 93, channels, seed=channels)
    data = svdcodec.encode(image, deblock=True, **options)
    plain = svdcodec.encode(image, deblock=False, **options)
    container = fmt.unpack(data)
    assert format_version(data) == 5 and any(p.filtered for p in container.planes)
    assert not any(p.filtered for p in fmt.unpack(plain).planes)
    # The factor blocks are the same: HEAD's version, PLAN's shift and filter and the residual
    # blocks (against the filtered image) differ.
    assert factor_chunks(data) == factor_chunks(plain)
    if not container.residuals:  # then the file's size is the same: the filter's fields only
        assert len(data) == len(plain)
    decoded = decode_everywhere(data)
    colour = min(3, channels)
    assert psnr(image[..., :colour], decoded.reshape(image.shape)[..., :colour]) > \
        psnr(image[..., :colour], svdcodec.decode(plain).reshape(image.shape)[..., :colour])
    for k in (1, 3):  # a preview is filtered alike
        decode_everywhere(data, components=k)


def test_compiled_and_numpy_encoders_choose_the_same_filters() -> None:
    """Even sizes: the compiled decoder keeps the halved chroma whole and doubles it into the
    output (`double_chroma`) for the filter; the numpy path upsamples it band by band."""
    image = photo(64, 80, 3, seed=9)
    with kernels(True):
        a = svdcodec.encode(image, deblock=True, quality=35)
    with kernels(False):
        b = svdcodec.encode(image, deblock=True, quality=35)
    assert a == b and format_version(a) == 5 and fmt.unpack(a).header.subsampling
    decode_everywhere(a)
    with kernels(True):
        fast = svdcodec.decode(a, components=2)
    np.testing.assert_array_equal(fast, decode_reference(a, components=2))


@pytest.mark.parametrize("max_error", [0, 3])
def test_residuals_correct_the_filtered_image(max_error: int) -> None:
    image = photo(50, 61, 3, seed=4)
    data = svdcodec.encode(image, max_error=max_error, deblock=True, quality=40)
    assert format_version(data) == 5 and fmt.unpack(data).residuals
    assert any(p.filtered for p in fmt.unpack(data).planes)
    decoded = decode_everywhere(data)
    assert np.abs(decoded.astype(int) - image).max() <= max_error


def test_no_filter_keeps_the_file_of_before() -> None:
    """High quality (the filter's least clamp is too strong there) and non-8-bit samples."""
    image = photo(40, 40, 3, seed=2)
    assert svdcodec.encode(image, deblock=True, quality=98) == svdcodec.encode(
        image, quality=98, deblock=False)
    wide = photo(40, 40, 1, seed=2).astype(np.uint16) * 257
    assert svdcodec.encode(wide, deblock=True, quality=30) == svdcodec.encode(wide, quality=30, deblock=False)
    grey = photo(40, 40, 1, seed=2)
    assert format_version(svdcodec.encode(grey, quality=30, layout="plain", deblock=True)) == 5


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a file."""
    out, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def factor_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    return [c for c in chunks(data) if c[0] in (b"SBLK", b"UBLK", b"VBLK")]


def unfiltered(data: bytes) -> bytes:
    """The same file with every plane's filter set to none (PLAN's last 3 bytes), CRCs
    recomputed."""
    out, pos = bytearray(data[:8]), 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, payload = data[pos + 4:pos + 8], bytearray(data[pos + 8:pos + 8 + length])
        if kind == b"PLAN":
            payload[24:27] = b"\0\0\0"
        out += struct.pack(">I", length) + kind + payload
        out += struct.pack(">I", zlib.crc32(bytes(payload), zlib.crc32(kind)))
        pos += 12 + length
    return bytes(out)


def test_reduced_decodes_do_not_filter() -> None:
    """spec §5.4: a thumbnail (reduce=2, 4, 8) is the reduced image of the unfiltered planes."""
    data = svdcodec.encode(photo(64, 72, 3, seed=5), deblock=True, quality=30)
    assert format_version(data) == 5
    off = unfiltered(data)
    assert not np.array_equal(svdcodec.decode(data), svdcodec.decode(off))
    for factor in (2, 4, 8):
        np.testing.assert_array_equal(svdcodec.decode(data, reduce=factor),
                                      svdcodec.decode(off, reduce=factor))


def test_writer_refuses_a_filter_below_version_4() -> None:
    header = fmt.Header(8, 8, 1, 1, 0, 0, 1.0, 2)
    plane = fmt.Plane(0, fmt.LAYOUT_PATCH, 4, 8, 8, 0, 1.0, 0, (4, 2, 1))
    with pytest.raises(SvdiError, match="needs format version 4"):
        fmt.pack_header(header, [plane])
    v4 = fmt.pack_header(fmt.Header(8, 8, 1, 1, 0, 0, 1.0, 4), [plane])
    assert fmt.unpack(v4 + fmt.END).planes[0].deblock == (4, 2, 1)


def test_an_image_svdi_decoded_is_not_filtered_again() -> None:
    """Generation stability (issue #15): its patch edges were filtered once; filtering them at
    every generation would blur the image cycle after cycle."""
    image = photo(64, 80, 3, seed=12)
    first = svdcodec.encode(image, deblock=True, quality=35)
    assert format_version(first) == 5
    again = svdcodec.encode(svdcodec.decode(first), deblock=True, quality=35)
    assert not any(p.filtered for p in fmt.unpack(again).planes)


def test_svdi_info_reports_each_planes_filter() -> None:
    from svdcodec.cli.info import info_report, info_text

    data = svdcodec.encode(photo(64, 80, 3, seed=1), deblock=True, quality=30)
    report = info_report("x.svdi", data)
    planes = fmt.unpack(data).planes
    assert [p["deblock"] for p in report["planes"]] == [list(p.deblock) if p.filtered else None
                                                        for p in planes]
    alpha, beta, tc = planes[0].deblock
    assert f"deblocking filter across the patch edges: alpha {alpha}, beta {beta}, tc {tc}" \
        in info_text(report, False)


def passes_one_after_the_other(image: np.ndarray, filters: list, halves: tuple | None,
                               compiled) -> np.ndarray:  # type: ignore[no-untyped-def]
    """`double_chroma`, `deblock` (both passes) and `convert_ycc` on the whole image."""
    out = image.copy()
    h, colour = out.shape[0], YCC_MULTIPLIERS
    if halves is not None:
        compiled.double_chroma(out, 0, h, *halves)
    deblock_channels(out, filters, compiled, threads=1)
    compiled.convert_ycc(out, 0, h, colour)
    return out


def band_cuts(h: int, periods: list[int], rng: np.random.Generator) -> list[int]:
    """Random cuts that no horizontal edge crosses (y mod every period not in P - 1, 0, 1)."""
    allowed = [y for y in range(1, h)
               if all(y % p not in (0, 1, p - 1) for p in periods)]
    picked = sorted(rng.choice(allowed, min(len(allowed), int(rng.integers(0, 5))),
                               replace=False).tolist()) if allowed else []
    return [0, *picked, h]


def test_fused_filter_and_conversion_gives_the_bits_of_the_passes() -> None:
    """`deblock_ycc` (chroma doubling, both filter passes and the conversion in one pass per
    band, the conversion a few rows behind) against the kernels one after the other, on any
    cut of the rows into bands that keeps each horizontal edge whole."""
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    rng = np.random.default_rng(54)
    for trial in range(40):
        h, w = 2 * int(rng.integers(1, 40)), 2 * int(rng.integers(1, 30))
        c = int(rng.integers(3, 5))
        image = blocky(h, w, c, trial)
        chosen = sorted(rng.choice(c, int(rng.integers(0, c + 1)), replace=False))
        filters = [(ch, int(rng.choice([4, 8, 16])), (int(rng.integers(1, 256)),
                                                      int(rng.integers(1, 256)),
                                                      int(rng.integers(1, 30))))
                   for ch in chosen]
        table = np.array([(ch, p, *q) for ch, p, q in filters], np.int64).reshape(-1, 5)
        halves = None
        if trial % 2:
            halves = tuple(rng.normal(0, 40, (h // 2, w // 2)).astype(np.float32)
                           for _ in range(2))
        want = passes_one_after_the_other(image, filters, halves, compiled)
        cuts = band_cuts(h, [p for _, p, _ in filters], rng)
        got = image.copy()
        for y0, y1 in itertools.pairwise(cuts):
            compiled.deblock_ycc(got, y0, y1, table, colour, *(halves or ()))
        np.testing.assert_array_equal(got, want)


def test_fused_kernel_checks_its_arguments() -> None:
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    image = np.zeros((32, 16, 3), np.uint8)
    half = np.zeros((16, 8), np.float32)
    good = [0, 8, 1, 1, 1]
    for filters, y0, y1 in [([[0, 2, 1, 1, 1]], 0, 32), ([[0, 3, 1, 1, 1]], 0, 32),
                            ([good], 8, 32), ([good], 0, 9), ([good], 0, 7), ([good], -1, 32),
                            ([good], 0, 33), ([good], 10, 6), ([good, good], 0, 32),
                            ([[3, 8, 1, 1, 1]], 0, 32), ([good] * 4, 0, 32)]:
        with pytest.raises(ValueError):
            compiled.deblock_ycc(image, y0, y1, np.array(filters, np.int64), colour)
    compiled.deblock_ycc(image, 0, 10, np.array([good], np.int64), colour)  # 10 mod 8 = 2
    with pytest.raises(ValueError):  # 4 values per filter
        compiled.deblock_ycc(image, 0, 32, np.array([good[:4]], np.int64), colour)
    with pytest.raises(ValueError):  # chroma not half the size
        compiled.deblock_ycc(image, 0, 32, np.array([good], np.int64), colour, half[:8], half[:8])
    with pytest.raises(ValueError):  # not C-contiguous
        compiled.deblock_ycc(image[:, ::2], 0, 32, np.array([good], np.int64), colour)


def test_a_filtered_image_of_several_bands_decodes_alike_everywhere() -> None:
    """Wide enough that the compiled decoder filters and converts it in several bands."""
    from svdcodec.decoder.deblock import edge_filters, fused_bands

    image = photo(230, 1100, 3, seed=11)
    data = svdcodec.encode(image, deblock=True, quality=30)
    container = fmt.unpack(data)
    periods = [p for _, p, _ in edge_filters(container.header, container.planes)]
    assert len(periods) == 3 and len(fused_bands(230, 1100 * 3, periods)) > 1
    decode_everywhere(data)


def test_fused_kernel_on_a_window_gives_the_bits_of_the_whole() -> None:
    """`deblock_ycc` and `double_chroma` on a band held alone (out's row 0 the image's row
    `top`, the chroma rows from `first` on, in one array each or split in two, `cb2` and
    `cr2`, at any row), and `deblock_ycc` rounding Y' from a band's patches (`matrix`), as on
    the whole image."""
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    rng = np.random.default_rng(71)
    for trial in range(30):
        patch = int(rng.choice([4, 8]))
        h, w = patch * int(rng.integers(4, 12)), 2 * int(rng.integers(2, 30))
        per_row = -(-w // patch)
        image = blocky(h, w, 3, trial)
        luma = rng.normal(128, 60, (h // patch * per_row, patch * patch)).astype(np.float32)
        compiled.store_bytes(luma, image, 0, h, 0, 0, np.float32(0.0), patch, per_row)
        halves = tuple(rng.normal(0, 40, (h // 2, w // 2)).astype(np.float32) for _ in range(2))
        filters = np.array([(0, patch, 20, 8, 3), (1, 2 * patch, 30, 9, 2)], np.int64)
        cuts = band_cuts(h, [patch, 2 * patch], rng)
        want = image.copy()
        for y0, y1 in itertools.pairwise(cuts):
            compiled.deblock_ycc(want, y0, y1, filters, colour, *halves)
        doubled = image.copy()
        compiled.double_chroma(doubled, 0, h, *halves)
        for y0, y1 in itertools.pairwise(cuts):
            top = y0 - int(rng.integers(0, min(y0, 3) + 1))
            band = image[top:y1].copy()
            first = max(y0 - 1, 0) // 2
            last = min((y1 + 1) // 2 + 1, h // 2)
            window = tuple(np.ascontiguousarray(x[first:last]) for x in halves)
            compiled.double_chroma(band, y0, y1, *window, top=top, first=first, height=h)
            np.testing.assert_array_equal(band[y0 - top:], doubled[y0:y1])
            band = image[top:y1].copy()
            kwargs = {"top": top, "first": first, "height": h}
            if trial % 2 and top % patch == 0:  # Y' from the band's patches, not from out
                kwargs.update(matrix=np.ascontiguousarray(luma[top // patch * per_row:]),
                              patch=patch, per_row=per_row)
                band[..., 0] = 0
            compiled.deblock_ycc(band, y0, y1, filters, colour, *window, **kwargs)
            np.testing.assert_array_equal(band[y0 - top:], want[y0:y1])
            # the same rows in two pieces (ChromaRows.pieces: two bands of the chroma planes)
            split = int(rng.integers(0, last - first + 1))
            blue, red = window
            pieces = {"cb2": np.ascontiguousarray(blue[split:]),
                      "cr2": np.ascontiguousarray(red[split:])}
            firsts = (np.ascontiguousarray(blue[:split]), np.ascontiguousarray(red[:split]))
            band = image[top:y1].copy()
            compiled.double_chroma(band, y0, y1, *firsts, top=top, first=first, height=h,
                                   **pieces)
            np.testing.assert_array_equal(band[y0 - top:], doubled[y0:y1])
            band = image[top:y1].copy()
            if "matrix" in kwargs:
                band[..., 0] = 0
            compiled.deblock_ycc(band, y0, y1, filters, colour, *firsts, **kwargs, **pieces)
            np.testing.assert_array_equal(band[y0 - top:], want[y0:y1])


def test_fused_kernels_check_their_windows() -> None:
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    band = np.zeros((8, 16, 3), np.uint8)
    half = np.zeros((4, 8), np.float32)
    table = np.array([[0, 8, 1, 1, 1]], np.int64)
    for kwargs in [{"top": 3}, {"top": -1, "height": 32}, {"top": 2, "height": 9},
                   {"top": 2, "first": 6, "height": 32}]:
        with pytest.raises(ValueError):
            compiled.deblock_ycc(band, 2, 10, table, colour, half, half, **kwargs)
        with pytest.raises(ValueError):
            compiled.double_chroma(band, 2, 10, half, half, **kwargs)
    with pytest.raises(ValueError):  # rows past the band
        compiled.deblock_ycc(band, 2, 11, table, colour, top=2, height=32)
    # the chroma rows in two pieces: both pieces or neither, as wide, together enough rows
    kwargs = {"top": 2, "first": 0, "height": 32}
    for pieces in [{"cb2": half}, {"cr2": half}, {"cb2": half[:, :4], "cr2": half[:, :4]},
                   {"cb2": half, "cr2": half[:2]}, {"cb2": half[:0], "cr2": half[:0]}]:
        with pytest.raises(ValueError):
            compiled.deblock_ycc(band, 2, 10, table, colour, half[:3], half[:3], **kwargs,
                                 **pieces)
        with pytest.raises(ValueError):
            compiled.double_chroma(band, 2, 10, half[:3], half[:3], **kwargs, **pieces)
    six = np.zeros((6, 8), np.float32)  # chroma rows 0..5, which rows 2..10 blend
    for split in range(7):  # in two pieces split anywhere
        compiled.deblock_ycc(band, 2, 10, table, colour, six[:split], six[:split], **kwargs,
                             cb2=six[split:], cr2=six[split:])
        compiled.double_chroma(band, 2, 10, six[:split], six[:split], **kwargs,
                               cb2=six[split:], cr2=six[split:])
        short = min(split, 5)
        with pytest.raises(ValueError):  # one row short
            compiled.double_chroma(band, 2, 10, six[:short], six[:short], **kwargs,
                                   cb2=six[short:5], cr2=six[short:5])
    matrix = np.zeros((4, 16), np.float32)  # one patch row of 4 patches of 4
    with pytest.raises(ValueError):  # too few patches for 8 rows
        compiled.deblock_ycc(band, 2, 8, table, colour, top=0, height=32, matrix=matrix,
                             patch=4, per_row=4)
    with pytest.raises(ValueError):  # patches narrower than the image
        compiled.deblock_ycc(band, 2, 4, table, colour, top=0, height=32, matrix=matrix,
                             patch=4, per_row=3)
    compiled.deblock_ycc(band, 2, 4, table, colour, top=0, height=32, matrix=matrix, patch=4,
                         per_row=4)


#: Wrong "ycc band arguments" (the arguments deblock_ycc and restore_ycc share), each with
#: what is wrong.
WRONG_BAND_ARGUMENTS = [
    ({"top": 1}, "top without height"),
    ({"top": -1, "height": 32}, "top < 0"),
    ({"y0": 4, "top": 5, "height": 32}, "y0 above out's first row"),
    ({"y1": 33}, "rows past out"),
    ({"height": 30}, "y1 past the image's height"),
    ({"out": np.zeros((32, 16, 2), np.uint8)}, "two channels"),
    ({"out": np.zeros((32, 32, 3), np.uint8)[:, ::2]}, "not C-contiguous"),
    ({"k": np.full(4, np.nan, np.float32)}, "constants not finite"),
    ({"k": np.zeros(3, np.float32)}, "three constants"),
    ({"filters": np.array([[0, 8, 1, 1]], np.int64)}, "four values a filter"),
    ({"filters": np.array([[0, 8, 1, 1, 1]], np.int32)}, "not int64"),
    ({"filters": np.array([[0, 8, 1, 1, 1], [1, 8, 1, 1, 1], [2, 8, 1, 1, 1],
                           [0, 16, 1, 1, 1]], np.int64)}, "more filters than channels"),
    ({"filters": np.array([[0, 2, 1, 1, 1]], np.int64)}, "period below 4"),
    ({"filters": np.array([[0, 8, 1, 1, 1], [0, 16, 1, 1, 1]], np.int64)}, "channel twice"),
    ({"filters": np.array([[0, 8, 256, 1, 1]], np.int64)}, "alpha above 255"),
    ({"filters": np.array([[3, 8, 1, 1, 1]], np.int64)}, "channel past out's"),
    ({"matrix": np.zeros((4, 16), np.float32), "patch": 4, "per_row": 4}, "too few patches"),
    ({"matrix": np.zeros((32, 16), np.float32), "patch": 4, "per_row": 3},
     "patches narrower than the image"),
    ({"matrix": np.zeros((32, 16), np.float64), "patch": 4, "per_row": 4}, "not float32"),
    ({"matrix": np.zeros((32, 16), np.float32), "patch": 0, "per_row": 4}, "patch 0"),
    ({"cb": np.zeros((16, 8), np.float32), "cr": np.zeros((8, 8), np.float32)},
     "cb and cr of different sizes"),
    ({"cb": np.zeros((16, 4), np.float32), "cr": np.zeros((16, 4), np.float32)},
     "chroma not half the width"),
    ({"cb": np.zeros((16, 8), np.float32), "cr": np.zeros((16, 8), np.float32), "first": 1,
      "height": 32}, "chroma rows past the plane"),
    ({"cb": np.zeros((16, 8), np.float32)}, "cb without cr"),
]


@pytest.mark.parametrize("wrong", [w for w, _ in WRONG_BAND_ARGUMENTS],
                         ids=[why for _, why in WRONG_BAND_ARGUMENTS])
def test_both_fused_kernels_refuse_the_same_band_arguments(wrong: dict[str, object]) -> None:
    """deblock_ycc and restore_ycc check the arguments they share in one place: each wrong one
    is refused by both with the same error, and the same call with it right runs in both (with
    chroma planes and a band's patches too)."""
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS

    def call(kernel: str, **changed: object) -> None:
        args: dict[str, object] = {"out": np.zeros((32, 16, 3), np.uint8), "y0": 0, "y1": 32,
                                   "filters": np.array([[0, 8, 1, 1, 1]], np.int64),
                                   "k": colour, **changed}
        if kernel == "restore_ycc":  # every row restored, by no filter
            args.update(r0=args["y0"], r1=args["y1"], restorations=[])
        getattr(compiled, kernel)(**args)

    right = [{}, {"cb": np.zeros((16, 8), np.float32), "cr": np.zeros((16, 8), np.float32)},
             {"matrix": np.zeros((32, 16), np.float32), "patch": 4, "per_row": 4}]
    errors = []
    for kernel in ("deblock_ycc", "restore_ycc"):
        for changed in right:
            call(kernel, **changed)
        with pytest.raises((TypeError, ValueError)) as refused:
            call(kernel, **wrong)
        errors.append((type(refused.value), str(refused.value).removeprefix(f"{kernel}: ")))
    assert errors[0] == errors[1]


@pytest.mark.parametrize("height,channels,options", [
    (204, 3, {"quality": 30}), (203, 3, {"quality": 30}), (204, 1, {"quality": 40}),
    (204, 3, {"quality": 25, "layout": "patch4"}), (204, 3, {"quality": 60, "layout": "patch16"})])
def test_band_renderer_filters_band_by_band_as_the_whole_image(
        height: int, channels: int, options: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small bands, so that the renderer cuts the image into many, each filtered and
    converted with its seams (`stream.EdgeSeams`): the pixels of the reference, through
    svdcodec.decode and through Pillow (its bands of exact planes, copied into its image), on
    both paths and in threads. Even sizes: the compiled path doubles the halved chroma and
    rounds Y' in the filter kernel; an odd height: Cb and Cr upsampled into the band first."""
    import io

    from PIL import Image

    from svdcodec.decoder.stream import BandRenderer
    from svdcodec.runtime import band_sizes
    from svdcodec.runtime.threads import threads

    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 4)
    monkeypatch.setattr(band_sizes, "EXACT_BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "MAPPED_BYTES", 1 << 10)  # Pillow's bands, not mapped
    image = photo(height, 150, channels, seed=channels + 20)
    data = svdcodec.encode(image, deblock=True, **options)
    assert any(p.filtered for p in fmt.unpack(data).planes)
    want = decode_reference(data)
    for on in (True, False):
        with kernels(on):
            for lean in (False, True):
                renderer = BandRenderer.prepare(fmt.unpack(data), lean=lean)
                assert renderer is not None and renderer.seams is not None
                assert len(renderer.bands) > 3
            for n in (1, 3):
                with threads(n):
                    np.testing.assert_array_equal(svdcodec.decode(data), want)
                    with Image.open(io.BytesIO(data)) as im:
                        im.load()
                        np.testing.assert_array_equal(np.asarray(im).reshape(want.shape), want)


def test_encoder_renders_only_the_judged_bands() -> None:
    """The stacked samples of the judged bands are the rows of the whole unfiltered render,
    on both paths; large planes are judged on at most about DEBLOCK_SAMPLE_PIXELS samples,
    in bands spread over the plane."""
    from svdcodec.decoder.render import render_image
    from svdcodec.encoder.deblock import rendered_bands, sampled_samples
    from svdcodec.encoder.tuning import DEBLOCK_SAMPLE_PIXELS

    image = photo(520, 90, 3, seed=3)
    container = fmt.unpack(svdcodec.encode(image, quality=30, deblock=False))  # unfiltered
    bands = judged_bands(520, 16, 90)
    assert bands is not None
    rendered = rendered_bands([bands, judged_bands(520, 8, 90)], 520, 8)
    assert rendered == sorted(rendered) and sum(b - a for a, b in rendered) < 520 // 2
    for on in (True, False):
        with kernels(on):
            whole = render_image(container, colour=False)
            stacked = sampled_samples(container, rendered)
        np.testing.assert_array_equal(stacked,
                                      np.concatenate([whole[a:b] for a, b in rendered]))
    wide = judged_bands(8192, 8, 8192)
    assert wide is not None and wide[0][0] > 0 and wide[-1][1] > 8192 // 2
    assert sum(b - a for a, b in wide) * 8192 <= DEBLOCK_SAMPLE_PIXELS * 1.1
    assert judged_bands(8192, 8, 64) == judged_bands(8192, 8, 0)  # narrow: one band in four
    for width in (2**15, 61000, 2**16, 2**20):  # wider than the budget allows one band in
        bands = judged_bands(256, 8, width)    # eight: the middle band, never none
        assert bands == [(128, 160)], (width, bands)


@pytest.mark.parametrize("shape, quality, options", [
    ((200, 152, 3), 30, {}),             # chroma halved
    ((136, 104, 3), 92, {}),             # full-size chroma
    ((520, 90, 3), 75, {"effort": 2}),   # judged on a sample of bands; RDOQ's integers
    ((120, 96, 1), 75, {}),
    ((90, 130, 4), 50, {"aq": True}),    # the adapted luma plane's blocks are read
])
def test_judgement_renders_the_encoders_own_integers(monkeypatch: pytest.MonkeyPatch,
                                                     shape: tuple[int, int, int],
                                                     quality: int, options: dict) -> None:
    """The integers the encoder hands the deblocking judgement are those its blocks code,
    and the samples rendered from them are those rendered from the file, on both paths."""
    from svdcodec.decoder.plane import PlaneReconstructor
    from svdcodec.encoder import schedule
    from svdcodec.encoder.deblock import sampled_samples

    given: list[tuple[bytes, dict]] = []
    judge = schedule.with_deblocking

    def spy(layer: bytes, pixels: object, step: float, integers: dict | None = None,
            **options: object) -> bytes:
        given.append((layer, dict(integers or {})))
        return judge(layer, pixels, step, integers, **options)
    monkeypatch.setattr(schedule, "with_deblocking", spy)
    image = photo(shape[0], shape[1], shape[2], seed=sum(shape))[..., :shape[2]]
    for on in (True, False):
        with kernels(on):
            given.clear()
            svdcodec.encode(image.squeeze(), quality, **options)
            (layer, integers), = given
            container = fmt.unpack(layer)
            assert set(integers) == {p.index for p in container.planes if not p.adapted}
            for p in container.planes:
                if p.index not in integers:
                    continue
                a, b = integers[p.index]
                read = PlaneReconstructor(container, p, p.rank, [(0, p.height)], 1 << 30)
                ones = np.ones(p.rank, dtype=np.float32)
                np.testing.assert_array_equal(read.factor("U", ones), a)
                np.testing.assert_array_equal(read.factor("V", ones), b)
            rows = [(0, shape[0])] if not options.get("effort") else [(64, 128), (256, 320)]
            np.testing.assert_array_equal(sampled_samples(container, rows, integers),
                                          sampled_samples(container, rows))


@pytest.mark.parametrize("shape, quality, options", [
    ((200, 152, 3), 30, {}),             # chroma halved
    ((120, 96, 1), 75, {}),
    ((90, 130, 4), 50, {"aq": True}),    # version 6 (an adapted plane)
    ((64, 80, 3), 75, {"centre": True}),  # plain layout, MEAN chunks after the PLANs
])
def test_judgement_takes_the_layer_as_its_exact_file(monkeypatch: pytest.MonkeyPatch,
                                                    shape: tuple[int, int, int], quality: int,
                                                    options: dict) -> None:
    """The layer the judgement receives is its own exact file (`with_deblocking` reads it as
    such instead of writing its header and PLANs again): its planes are exact, and
    `pack_exact` of it gives the same bytes."""
    from svdcodec.encoder import schedule
    from svdcodec.encoder.residual import pack_exact

    given: list[bytes] = []
    judge = schedule.with_deblocking

    def spy(layer: bytes, pixels: object, step: float, integers: dict | None = None,
            **options: object) -> bytes:
        given.append(layer)
        return judge(layer, pixels, step, integers, **options)
    monkeypatch.setattr(schedule, "with_deblocking", spy)
    image = photo(shape[0], shape[1], shape[2], seed=sum(shape))[..., :shape[2]]
    svdcodec.encode(image.squeeze(), quality, **options)
    (layer,) = given
    container = fmt.unpack(layer)
    assert container.header.version >= 4 and all(p.exact for p in container.planes)
    assert pack_exact(layer, container, container) + fmt.END == layer


def test_a_plane_wider_than_the_judging_budget_encodes_with_the_filter() -> None:
    """65536 columns: one band of 32 rows is already over DEBLOCK_SAMPLE_PIXELS."""
    image = np.tile(photo(256, 256, 1, seed=5), (1, 256, 1))[..., 0]
    data = svdcodec.encode(image, quality=30, deblock=True)
    assert svdcodec.decode(data).shape == image.shape


def test_fused_kernel_writes_pillows_x_byte_only_when_asked() -> None:
    """pad: channel 3 of every converted row becomes pad (Pillow's RGBX), the RGB as without;
    without pad channel 3 is alpha, filtered in place if a filter is given it."""
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    image = blocky(32, 24, 4, 3)
    filters = np.array([(0, 8, 40, 20, 3)], np.int64)
    plain = image.copy()
    compiled.deblock_ycc(plain, 0, 32, filters, colour)
    padded = image.copy()
    compiled.deblock_ycc(padded, 2, 30, filters, colour, pad=255)
    np.testing.assert_array_equal(padded[2:30, :, :3], plain[2:30, :, :3])
    assert np.all(padded[2:30, :, 3] == 255)
    np.testing.assert_array_equal(padded[[0, 1, 30, 31]], image[[0, 1, 30, 31]])
    np.testing.assert_array_equal(plain[..., 3], image[..., 3])


def test_fused_kernel_gives_the_same_bits_at_every_colour_row_level() -> None:
    """`deblock_ycc`'s AVX2 rows (colour_rows 1 and up: Y' and chroma rounded into bytes, the
    vertical edges 16 and 4 at a time in place for period 4 and gathered for longer ones, the
    horizontal edges 16 samples at a time, the conversion 8 pixels at a time) against its
    plain loops (level 0) and against numpy's filter (`filter_lines`) between the plain
    kernels' rounding and conversion: widths that leave every kind of leftover (pixels past a
    multiple of 8 and 16, edges past a multiple of 16 and 4), periods 4 to 32, thresholds and
    clamps at their ends, samples near 0 and 255, Y' from patches of 4, 8 and 16 (read in
    place or copied) with rounding ties, NaN and values beyond the bytes, pad or alpha."""
    compiled = compiled_kernels()
    colour = YCC_MULTIPLIERS
    best = compiled.colour_rows()
    rng = np.random.default_rng(97)
    specials = np.array([np.nan, np.inf, -np.inf, -0.5, 0.5, 254.5, 255.5, 1e9], np.float32)
    try:
        for trial in range(160):
            patch = int(rng.choice([4, 8, 16]))
            w = int(rng.integers(1, 140) if trial % 3 else rng.integers(140, 700))
            w += w % 2 if trial % 4 == 0 else 0
            h = 2 * patch * int(rng.integers(1, 4))
            c = int(rng.choice([3, 4]))
            image = blocky(h, w, c, trial)
            chosen = sorted(rng.choice(c, int(rng.integers(1, c + 1)), replace=False))
            filters = [(int(ch), int(rng.choice([4, 8, 16, 32])),
                        (int(rng.choice([0, 1, 255, *rng.integers(2, 255, 3)])),
                         int(rng.choice([0, 1, 255, *rng.integers(2, 255, 3)])),
                         int(rng.choice([0, 1, 255, *rng.integers(2, 40, 3)]))))
                       for ch in chosen]
            table = np.array([(ch, p, *q) for ch, p, q in filters], np.int64)
            pad = 255 if c == 4 and 3 not in chosen and trial % 3 == 0 else -1
            per_row = -(-w // patch)
            luma = rng.normal(128, 90, (h // patch * per_row, patch * patch)).astype(np.float32)
            pick = rng.random(luma.shape)
            luma = np.where(pick < 0.1, rng.choice(specials, luma.shape), luma)
            luma = np.where(pick > 0.9, np.round(luma * 2) / 2, luma).astype(np.float32)
            from_patches = trial % 2 == 1
            halves = (tuple(rng.normal(0, 60, (h // 2, w // 2)).astype(np.float32)
                            for _ in range(2)) if w % 2 == 0 and trial % 3 else None)
            want = image.copy()  # the plain kernels' rounding, numpy's filter, the conversion
            if from_patches:
                compiled.store_bytes(luma, want, 0, h, 0, 0, np.float32(0.0), patch, per_row)
            if halves is not None:
                compiled.double_chroma(want, 0, h, *halves)
            deblock_channels(want, filters, None, threads=1)
            compiled.convert_ycc(want, 0, h, colour)
            if pad >= 0:
                want[..., 3] = pad
            cuts = band_cuts(h, [p for _, p, _ in filters], rng)
            kwargs = ({"matrix": luma, "patch": patch, "per_row": per_row}
                      if from_patches else {})
            for level in range(best + 1):
                compiled.colour_rows(level)
                got = image.copy()
                for y0, y1 in itertools.pairwise(cuts):
                    compiled.deblock_ycc(got, y0, y1, table, colour, *(halves or ()),
                                         height=h, pad=pad, **kwargs)
                np.testing.assert_array_equal(got, want, err_msg=f"trial {trial} level {level}")
    finally:
        compiled.colour_rows(best)
