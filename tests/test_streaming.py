"""The banded (streaming) paths give the results of the whole-image paths they replace.

Decoding in bands must give the very pixels of whole-plane reconstruction (reconstruct,
from_matrix, merge); encoding in bands must give the same file whatever the band size, up to
floating-point summation order in the Gram matrix.
"""

from __future__ import annotations

import gc
import io
import math
import weakref

import numpy as np
import pytest
import zstandard
from PIL import Image
from support import photo

import svdcodec
from svdcodec import encoder
from svdcodec import format as container
from svdcodec.codec import coding, colour, layout, quantize, resample
from svdcodec.codec.resample import Bilinear, Resampler
from svdcodec.decoder import render as rendering
from svdcodec.decoder.plane import PlaneReconstructor, bands_for
from svdcodec.decoder.reference import decode_reference
from svdcodec.decoder.render import render_image
from svdcodec.encoder import plane as plane_coding
from svdcodec.encoder import schedule, tuning
from svdcodec.encoder.plane import RankRule
from svdcodec.encoder.source import PlaneSource, image_header
from svdcodec.format import COLOUR_YCBCR
from svdcodec.modes import as_pixels
from svdcodec.runtime import band_sizes, threads


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few thousand pixels, so that test images have many of them."""
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 4096)
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 4096)
    monkeypatch.setattr(coding, "SYMBOL_BAND", 1000)


CASES = [  # (height, width, channels, dtype, encode options)
    (256, 320, 3, np.uint8, {"quality": 75}),  # subsampled chroma, exact 2x
    (257, 331, 3, np.uint8, {"quality": 60}),  # odd sizes: Pillow's general coefficients
    (200, 288, 3, np.uint8, {"quality": 92}),  # full-size chroma
    (160, 240, 4, np.uint8, {"quality": 80}),  # alpha plane
    (450, 333, 1, np.uint8, {"quality": 70, "layout": "patch16"}),
    (120, 200, 2, np.uint16, {"quality": 85, "layout": "patch2"}),
    (330, 150, 1, np.float32, {"quality": 90}),
    (600, 130, 3, np.uint8, {"quality": 75, "layout": "plain"}),
]


def sample(height: int, width: int, channels: int, dtype: type) -> np.ndarray:
    pixels = photo(height, width, channels)
    if dtype == np.uint16:
        return pixels.astype(np.uint16) * 257
    if dtype == np.float32:
        return pixels.astype(np.float32) / 255
    return pixels


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}x{c[2]}-{np.dtype(c[3])}"
                                             for c in CASES])
def test_banded_decode_equals_decode_reference(case: tuple, threads: int,
                                                 small_bands: None) -> None:
    height, width, channels, dtype, options = case
    data = svdcodec.encode(sample(height, width, channels, dtype), **options)
    box = container.unpack(data)
    full = [p for p in box.planes if (p.height, p.width) == (height, width)]
    assert len(bands_for(full, height, width)) > 1
    for components in (None, 3):
        expected = decode_reference(data, components)
        got = render_image(container.unpack(data), components, threads=threads)
        got = got[:, :, 0] if got.shape[2] == 1 else got
        assert got.dtype == expected.dtype
        if got.dtype.kind == "f":
            # Version 1 float32 samples: spec §5's conformance allows another summation order
            # 1e-5 x max(scale x 255, max |sample|); banded and whole-matrix sgemm differ by
            # an ulp on some BLAS builds.
            tolerance = 1e-5 * max(box.header.scale * 255, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
        elif box.header.version == 1 and box.header.colour == COLOUR_YCBCR:
            # Version 1 colour: a plane value may lie on a rounding boundary (a Y' of exactly
            # 135.5 from the whole-matrix product, 135.49999 from a band's); spec §5 allows
            # Y', Cb, Cr each within +-1 of the reference's rounded planes, R, G, B within 3.
            assert int(np.abs(got.astype(np.int64) - expected).max()) <= 3
        elif box.header.version == 1:
            # Version 1 integer samples: the same boundary, +-1 (spec §5 step 2). Seen on a
            # 450x333 grey photo at quality 75 with another encoder tuning (1 sample of 149,850).
            assert int(np.abs(got.astype(np.int64) - expected).max()) <= 1
        else:
            np.testing.assert_array_equal(got, expected)


def test_tiny_bands_stay_within_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a single patch row take BLAS's small-matrix kernels, which may round the last
    bit differently: pixels may then differ by one level, never more."""
    monkeypatch.setattr(band_sizes, "BAND_PIXELS", 1)
    monkeypatch.setattr(band_sizes, "MIN_BAND_ROWS", 1)
    pixels = photo(96, 128, 3)
    data = svdcodec.encode(pixels, quality=80)
    diff = svdcodec.decode(data).astype(int) - decode_reference(data).astype(int)
    assert np.abs(diff).max() <= 1


@pytest.mark.parametrize("shape", [(1, 1, 1, 2), (1, 1, 2, 1), (2, 3, 3, 5), (5, 7, 9, 13),
                                   (64, 72, 128, 144), (99, 150, 197, 299), (7, 1, 13, 1)])
def test_bilinear_rows_equal_pillow(shape: tuple[int, int, int, int]) -> None:
    ch, cw, h, w = shape
    src = np.random.default_rng(1).normal(0, 50, (ch, cw)).astype(np.float32)
    expected = np.asarray(Image.fromarray(src, "F").resize((w, h), Image.Resampling.BILINEAR))
    up = Bilinear(src, h, w)
    for step in (1, 3, h):
        got = np.concatenate([up.rows(y, min(h, y + step)) for y in range(0, h, step)])
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(2, 2), (3, 5), (9, 13), (128, 144), (197, 299), (13, 1)])
def test_box_rows_equal_pillow(shape: tuple[int, int]) -> None:
    h, w = shape
    ch, cw = (h + 1) // 2, (w + 1) // 2
    src = np.random.default_rng(2).normal(0, 50, (h, w)).astype(np.float32)
    expected = np.asarray(Image.fromarray(src, "F").resize((cw, ch), Image.Resampling.BOX))
    down = Resampler(lambda lo, hi: src[lo:hi], src.shape, ch, cw, "box")
    for step in (1, 2, ch):
        got = np.concatenate([down.rows(y, min(ch, y + step)) for y in range(0, ch, step)])
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("subsample", [False, True])
@pytest.mark.parametrize("height", [67, 68])
def test_source_rows_equal_split(subsample: bool, height: int) -> None:
    pixels = photo(height, 90, 4)
    header = image_header(pixels, subsample)
    source = PlaneSource(pixels, header)
    planes = colour.to_planes(pixels, header.colour == container.COLOUR_YCBCR,
                              bool(header.subsampling), header.scale)
    for i, plane in enumerate(planes):
        rows = np.concatenate([source.rows(i, y, min(plane.shape[0], y + 8))
                               for y in range(0, plane.shape[0], 8)])
        # fixed-point colour weights: exact in any order of summation; subsampled chroma by
        # the same whole-plane least-squares solve
        np.testing.assert_array_equal(rows, plane)
        for side in (2, 4, 8, 16):
            by_band = np.concatenate([layout.patch_rows(plane[y:y + 2 * side], side)
                                      for y in range(0, plane.shape[0], 2 * side)])
            np.testing.assert_array_equal(by_band, layout.to_matrix(plane, side))


@pytest.mark.parametrize("subsample", [False, True])
def test_cached_patches_equal_computed(subsample: bool) -> None:
    """A small plane's patches, computed whole once, are sliced to the very bits the source
    computes for each band (whole patch rows, the last band ending at the plane's bottom)."""
    pixels = photo(83, 70, 3)
    header = image_header(pixels, subsample)
    cached, plain = plane_coding.CachingSource(pixels, header), PlaneSource(pixels, header)
    for i in range(3):
        h = plain.shapes[i][0]
        for side in (4, 8):
            for y0, y1 in [(0, h), (0, 32), (32, 64), (64, h), (8, 16)]:
                if y0 < y1 <= h:
                    np.testing.assert_array_equal(cached.patches(i, y0, y1, side),
                                                  plain.patches(i, y0, y1, side))
    cached.release([1, 2])
    np.testing.assert_array_equal(cached.patches(1, 0, 32, 4), plain.patches(1, 0, 32, 4))


def test_patch_cache_keeps_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    pixels = photo(150, 200, 3)
    cached = [svdcodec.encode(pixels, q) for q in (30, 90)]
    monkeypatch.setattr(plane_coding, "CACHED_PATCH_SAMPLES", 0)
    assert [svdcodec.encode(pixels, q) for q in (30, 90)] == cached


def test_symbols_by_band_equal_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    matrix = (rng.random((3000, 40)) < 0.2) * rng.integers(-300, 300, (3000, 40))
    whole = coding.to_symbols(matrix)
    monkeypatch.setattr(coding, "SYMBOL_BAND", 100)
    banded = coding.to_symbols(matrix)
    for a, b in zip(whole, banded):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(coding.from_symbols(*banded, matrix.shape), matrix)


def test_column_stats_by_band_equal_whole() -> None:
    rng = np.random.default_rng(4)
    values = (rng.normal(0, 1, (5000, 12)) * np.geomspace(400, 0.5, 12)).astype(np.float32)
    whole = quantize.ColumnStats(12, 3.0)
    A = whole.add(values)
    parts = []
    for r in range(0, 5000, 700):
        part = quantize.ColumnStats(12, 3.0)
        np.testing.assert_array_equal(part.add(values[r:r + 700]), A[r:r + 700])
        parts.append(part)
    combined = quantize.ColumnStats.combine(parts)
    np.testing.assert_array_equal(combined.top, whole.top)
    np.testing.assert_allclose(combined.error, whole.error, rtol=1e-5)
    np.testing.assert_array_equal(A, quantize.quantize(values, 3.0))


@pytest.mark.parametrize("rdoq", [False, True])
@pytest.mark.parametrize("options", [{"quality": 75}, {"quality": 95}, {"quality": 50, "rank": 9,
                                                                        "layout": "patch4"}])
def test_encode_does_not_depend_on_band_size(options: dict, rdoq: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The cost does not depend on the band size. With the plain dead zone, neither do the
    layouts and ranks: the Gram sums differ in rounding, which can turn eigenvectors of nearly
    equal eigenvalues within their subspace, so some integers change. With rate-distortion
    optimised quantization (`quantize.optimise_levels`) the symbol costs are estimated per band,
    so which levels are lowered depends on the bands too, and a rank decision at its margin
    may keep one component more or less."""
    if rdoq:
        options = {**options, "effort": 2}
    pixels = photo(192, 256, 3)
    one_band = svdcodec.encode(pixels, **options)
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 2048)
    monkeypatch.setattr(coding, "SYMBOL_BAND", 500)
    many = svdcodec.encode(pixels, **options)
    a, b = container.unpack(one_band), container.unpack(many)
    assert [(p.layout, p.patch) for p in a.planes] == [(p.layout, p.patch) for p in b.planes]
    if not rdoq:
        assert [p.rank for p in a.planes] == [p.rank for p in b.planes]
    assert abs(len(one_band) - len(many)) <= 0.01 * len(one_band)
    assert abs(psnr(pixels, svdcodec.decode(one_band)) - psnr(pixels, svdcodec.decode(many))) < 0.05


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


@pytest.mark.parametrize("predictor", [coding.NONE, coding.HORIZONTAL, coding.VERTICAL,
                                       coding.PLANAR])
def test_dense_blocks_decode_by_band(predictor: int, small_bands: None) -> None:
    """Dense U blocks of many components: each band undoes the predictor from a carried sum."""
    rng = np.random.default_rng(5)
    height, width, patch, rank = 512, 64, 4, 8
    plane = container.Plane(0, container.LAYOUT_PATCH, patch, height, width, rank, 2.0)
    gh, gw = plane.grid
    residuals = rng.integers(-3, 4, (rank, gh, gw)).astype(np.int8)
    sigma = np.geomspace(4000, 40, rank).astype(np.float32)
    vt = rng.integers(-20, 21, (rank, patch, patch)).astype(np.int8)
    box = container.Container(container.Header(width, height, 1, 1, container.COLOUR_NONE, 0, 1.0), [plane], [
        container.Block("S", 0, 0, rank, container.DENSE, (sigma,)),
        container.Block("V", 0, 0, rank, container.DENSE, (vt,)),
        container.Block("U", 0, 0, rank, container.DENSE, (residuals,), predictor)])
    data = container.pack(box)
    assert len(bands_for([plane], height, width)) > 1
    for components in (None, 5):
        expected = decode_reference(data, components)
        got = render_image(container.unpack(data), components, threads=2)[:, :, 0]
        np.testing.assert_array_equal(got, expected)


def _dense_box(layout: int, predictor: int, element: type = np.int8
               ) -> tuple[container.Header, container.Plane, list[container.Block]]:
    """A one-plane file with dense U and V blocks of random residuals under `predictor`."""
    rng = np.random.default_rng(7)
    height, width, rank = 640, 90, 12
    patch = 4 if layout == container.LAYOUT_PATCH else 0
    plane = container.Plane(0, layout, patch, height, width, rank, 2.0)
    sigma = np.geomspace(4000, 40, rank).astype(np.float32)
    u = rng.integers(-3, 4, (rank, *plane.grid)).astype(element)
    v = rng.integers(-20, 21, (rank, *plane.vgrid)).astype(element)
    header = container.Header(width, height, 1, 1, container.COLOUR_NONE, 0, 1.0)
    return header, plane, [container.Block("S", 0, 0, rank, container.DENSE, (sigma,)),
                           container.Block("V", 0, 0, 5, container.DENSE, (v[:5],), predictor),
                           container.Block("V", 0, 5, rank - 5, container.DENSE, (v[5:],), predictor),
                           container.Block("U", 0, 0, 5, container.DENSE, (u[:5],), predictor),
                           container.Block("U", 0, 5, rank - 5, container.DENSE, (u[5:],), predictor)]


@pytest.mark.parametrize("layout", [container.LAYOUT_PLAIN, container.LAYOUT_PATCH])
@pytest.mark.parametrize("predictor", [coding.NONE, coding.HORIZONTAL, coding.VERTICAL,
                                       coding.PLANAR])
def test_factor_pieces_do_not_change_pixels(layout: int, predictor: int, small_bands: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """U in passes of a few bands, V in ranges of columns, blocks streamed a few rows at a
    time: the pixels of the whole-plane decode, previews included."""
    header, plane, blocks = _dense_box(layout, predictor, np.int32)
    data = container.pack(container.Container(header, [plane], blocks))
    monkeypatch.setattr(rendering, "pass_budget", lambda out_bytes: 4 * plane.rank * 40)
    monkeypatch.setattr(band_sizes, "CHUNK_BYTES", 64)
    rows = PlaneReconstructor(container.unpack(data), plane, plane.rank,
                              bands_for([plane], plane.height, plane.width), 4 * 12 * 40)
    assert len(rows.passes) > 1 and (len(rows.columns) > 1) == (layout == container.LAYOUT_PLAIN)
    for components in (None, 7, 3):
        expected = decode_reference(data, components)
        got = render_image(container.unpack(data), components, threads=2)[:, :, 0]
        np.testing.assert_array_equal(got, expected)


def _rechunk(chunk: bytes, payload: bytes) -> bytes:
    return container.writer.chunk(chunk[4:8], payload)


@pytest.mark.parametrize("factor", ["U", "V"])
def test_damage_found_while_streaming_raises_svdi_error(factor: str) -> None:
    """Blocks are decompressed when decoded, after unpack: zstd damage under a valid CRC must
    still raise SvdiError (or decode to some pixels), never another exception."""
    header, plane, blocks = _dense_box(container.LAYOUT_PLAIN, coding.PLANAR, np.int32)
    i = next(k for k, b in enumerate(blocks) if b.factor == factor)
    chunks = [container.pack_block(b) for b in blocks]
    payload = chunks[i][8:-4]
    frame = zstd_frame(blocks[i])
    start = len(payload) - len(frame) + zstandard.frame_header_size(frame)  # past the sizes

    def decoded(new: bytes) -> str:
        damaged = chunks[:i] + [_rechunk(chunks[i], new)] + chunks[i + 1:]
        data = container.pack_header(header, [plane]) + b"".join(damaged) + container.END
        try:  # unpack refuses what follows or cuts a frame (its block headers); flips decode
            container.unpack(data)
            if new in (payload + b"\x00", payload + b"garbage", payload + frame, payload[:-3]):
                return "decoded"  # unpack must have refused these
            svdcodec.decode(data)
            svdcodec.decode(data)
        except svdcodec.SvdiError:
            return "rejected"
        return "decoded"

    for suffix in (b"\x00", b"garbage", frame):
        assert decoded(payload + suffix) == "rejected"
    assert decoded(payload[:-3]) == "rejected"
    for at in range(start, len(payload), max(1, (len(payload) - start) // 40)):
        for value in (0x00, 0xFF, payload[at] ^ 0x55):
            decoded(payload[:at] + bytes([value]) + payload[at + 1:])  # no other exception


def zstd_frame(block: container.Block) -> bytes:
    """The zstd frame of a dense block as pack_block writes it."""
    (data,) = block.data()
    code = container.ELEMENT_CODES[data.dtype.newbyteorder("=")]
    raw = np.ascontiguousarray(data, dtype=container.ELEMENT_TYPES[code]).tobytes()
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(raw)


def assert_sample_estimates(source: PlaneSource, sample: list[tuple[int, int]],
                            rel: float) -> None:
    """Every candidate layout of plane 0 costed on the sample estimates its whole coding's
    bytes and distortion within `rel`."""
    step = encoder.step_for_quality(75)
    layouts = encoder.candidate_layouts("auto", False)
    for candidate in plane_coding.factorize_plane(source, 0, layouts, RankRule()):
        whole = plane_coding.code_plane(source, candidate, step, RankRule(), True)
        estimate = plane_coding.code_plane(source, candidate, step, RankRule(), True, sample)
        assert estimate.nbytes == pytest.approx(whole.nbytes, rel=rel)
        assert estimate.distortion == pytest.approx(whole.distortion, rel=rel)


def test_layout_costed_on_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane of many bands is costed on one band in LAYOUT_SAMPLE: the U side scaled up by
    the sampled fraction, its bytes and distortion estimate those of coding the plane whole,
    and the file is the one that costing whole planes chooses."""
    monkeypatch.setattr(band_sizes, "BAND_SAMPLES", 4096)  # 32-row bands: 512 rows -> 16 bands
    monkeypatch.setattr(tuning, "PREDICT_LAYOUT", False)
    pixels = as_pixels(photo(512, 128, 1))
    source = PlaneSource(pixels, image_header(pixels, False))
    sample = plane_coding.layout_sample(source, 0)
    assert sample is not None and len(sample) == 16 // tuning.LAYOUT_SAMPLE
    assert_sample_estimates(source, sample, 0.15)
    sampled = svdcodec.encode(pixels, quality=75)
    monkeypatch.setattr(tuning, "LAYOUT_SAMPLE", 1 << 20)
    assert svdcodec.encode(pixels, quality=75) == sampled


def test_small_planes_costed_on_strips() -> None:
    """A plane too small for a sample of bands (a Kodak photo) chooses its layout on strips of
    32 rows, one in LAYOUT_SAMPLE; a plane with fewer strips than that is costed whole."""
    pixels = as_pixels(photo(512, 768, 1))
    source = PlaneSource(pixels, image_header(pixels, False))
    sample = plane_coding.layout_sample(source, 0)
    assert sample is not None and all(y1 - y0 == band_sizes.BAND_UNIT for y0, y1 in sample)
    assert len(sample) == 512 // band_sizes.BAND_UNIT // tuning.LAYOUT_SAMPLE
    assert_sample_estimates(source, sample, 0.2)
    tiny = as_pixels(photo(200, 64, 1))
    assert plane_coding.layout_sample(PlaneSource(tiny, image_header(tiny, False)), 0) is None


def layout_candidates(pixels: np.ndarray, quality: float) -> list[list[int]]:
    """The patch sides each plane was factorized in, encoding `pixels` at `quality`."""
    enc = schedule.Encoder(pixels, encoder.candidate_layouts("auto", False), RankRule(), True)
    step = encoder.step_for_quality(quality)
    enc.encode(step)
    work = enc._prepared[step >= tuning.SUBSAMPLE_FROM_STEP]
    return [sorted(side for _, side in work.candidates[i]) for i in sorted(work.candidates)]


def test_layout_predicted_from_spectra(monkeypatch: pytest.MonkeyPatch) -> None:
    """An RGB photo's planes are factorized in the one layout their spectra predict (scores far
    from the boundary at quality 95); with prediction off, or every score too close to call,
    in both, and the file is the one the sampled choice writes."""
    pixels = photo(256, 256, 3)
    assert all(len(sides) == 1 for sides in layout_candidates(pixels, 95))
    predicted = svdcodec.encode(pixels, 95)
    monkeypatch.setattr(tuning, "LAYOUT_MODEL_MARGIN", np.inf)
    assert layout_candidates(pixels, 95) == [[4, 8]] * 3
    undecided = svdcodec.encode(pixels, 95)
    monkeypatch.setattr(tuning, "PREDICT_LAYOUT", False)
    assert layout_candidates(pixels, 95) == [[4, 8]] * 3
    assert svdcodec.encode(pixels, 95) == undecided
    chosen = [p.patch for p in container.read_headers(io.BytesIO(undecided))[1]]
    assert [p.patch for p in container.read_headers(io.BytesIO(predicted))[1]] == chosen


def test_predicted_side_follows_the_score(monkeypatch: pytest.MonkeyPatch) -> None:
    grams = {side: np.diag(np.linspace(1.0, 100.0, side * side)) for side in (4, 8)}
    rows = {4: 400, 8: 100}
    bias = [0.0] * 9 + [1.0, 0.0, 0.0]  # the constant's weight alone
    monkeypatch.setattr(tuning, "LAYOUT_MODEL", tuple(3 * w for w in bias))
    assert plane_coding.predicted_side(grams, rows, 2.0, False) == 4
    monkeypatch.setattr(tuning, "LAYOUT_MODEL", tuple(-3 * w for w in bias))
    assert plane_coding.predicted_side(grams, rows, 2.0, False) == 8
    monkeypatch.setattr(tuning, "LAYOUT_MODEL", tuple(1 * w for w in bias))
    monkeypatch.setattr(tuning, "LAYOUT_MODEL_MARGIN", 0.0)
    assert plane_coding.predicted_side(grams, rows, 2.0, False) == 4  # margin 0: every score
    monkeypatch.setattr(tuning, "LAYOUT_MODEL_MARGIN", 1.0)
    assert plane_coding.predicted_side(grams, rows, 2.0, False) is None  # within the margin


@pytest.mark.parametrize("seed", range(6))
def test_layout_features_are_each_levels_sums(seed: int) -> None:
    """`layout_features` computes every water level at once; each feature has the bits of its
    own level's sums (np.sum of one row of terms), which the layout model was fitted to."""
    rng = np.random.default_rng(seed)
    patches = rng.normal(0, 10.0 ** rng.uniform(-1, 2), (1024, 64)) * rng.uniform(0, 1, 64)
    grams = {8: patches.T @ patches}
    grams[4] = sum(grams[8][np.ix_(k, k)] for k in (
        (q + np.arange(4)[:, None] * 8 + np.arange(4)).ravel() for q in (0, 4, 32, 36)))
    rows, step = {4: 4096, 8: 1024}, float(rng.uniform(0.5, 60.0))
    expected = []
    for side in (4, 8):
        v = np.maximum(np.linalg.eigvalsh(grams[side]), 0.0) / rows[side]
        pixels = rows[side] * side * side
        for level in tuning.LAYOUT_MODEL_LEVELS:
            theta = level * step * step
            expected.append([
                float(np.sum(0.5 * np.log2(1.0 + v / theta))) * rows[side] / pixels,
                float(np.sum(theta * v / (v + theta))) * rows[side] / (pixels * step * step),
                100.0 * np.count_nonzero(v > theta) * side * side / pixels])
    half = len(expected) // 2
    four = [x for level in expected[:half] for x in level]
    eight = [x for level in expected[half:] for x in level]
    differences = [a - b for a, b in zip(four, eight, strict=True)]
    features = plane_coding.layout_features(grams, rows, step, True)
    assert features == differences + [1.0, 1.0, math.log(step)]


def test_decoded_images_costed_in_both_layouts() -> None:
    """An image svdi may have decoded is coded in both layouts (the one it was decoded from
    reproduces it: generation stability), so is a grey image (its integers cannot tell)."""
    decoded = svdcodec.decode(svdcodec.encode(photo(256, 256, 3), 95))
    assert layout_candidates(decoded, 95)[0] == [4, 8]
    assert layout_candidates(photo(256, 256, 1), 95) == [[4, 8]]


def test_blas_threads_scoped() -> None:
    """Encoding keeps OpenBLAS at one thread (its idle workers spin against the band threads),
    except inside `threaded_blas` (whole-plane factorizations); both restore what they found."""
    api = threads.openblas_thread_api()
    if api is None:
        pytest.skip("OpenBLAS's thread API not found")
    get, put = api
    before = get()
    put(2)
    try:
        with threads.single_threaded():
            assert get() == 1
            with threads.threaded_blas():
                assert get() == 2
            assert get() == 1
        assert get() == 2
        with threads.threaded_blas():  # outside single_threaded: nothing to undo
            assert get() == 2
    finally:
        put(before)


def test_encode_and_decode_leave_no_reference_cycles() -> None:
    """The encoder's state (the kept chroma planes: half the raw size) is freed when encode
    returns, not at the garbage collector's next full pass, which once held it through the
    next call and slowed that call's allocations."""
    pixels = photo(96, 128, 3)
    svdcodec.decode(svdcodec.encode(pixels))  # lazy imports happen once
    gc.collect()
    gc.disable()
    try:
        svdcodec.decode(svdcodec.encode(pixels))
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_resampling_coefficients_freed_with_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """The coefficients of chroma that is not an exact half (an odd height) along an axis
    longer than KEPT_COEFFICIENT_SAMPLES live as long as the image's decode: none survives it,
    in svdcodec.decode nor through Pillow (the kept sizes' stand in for them here: 67 rows
    beyond a limit of 32)."""
    made: list[weakref.ref[np.ndarray]] = []
    compute = resample.coefficients

    def recorded(*args: object) -> tuple[np.ndarray, np.ndarray]:
        first, weights = compute(*args)  # type: ignore[arg-type]
        made.extend((weakref.ref(first), weakref.ref(weights)))
        return first, weights

    monkeypatch.setattr(resample, "coefficients", recorded)
    monkeypatch.setattr(resample, "KEPT_COEFFICIENT_SAMPLES", 32)
    data = svdcodec.encode(photo(67, 90, 3))
    svdcodec.decode(data)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
    gc.collect()
    assert made and all(ref() is None for ref in made)


def test_kept_coefficients_are_few_and_read_only() -> None:
    """The filter taps kept between images (`resample.kept_coefficients`, axes of up to
    KEPT_COEFFICIENT_SAMPLES) are those of a few sizes only, whatever sizes are decoded, and
    nothing can write to them."""
    for height in range(33, 61, 2):  # 14 odd heights
        svdcodec.decode(svdcodec.encode(photo(height, 12, 3), quality=40))
    info = resample._kept_coefficients.cache_info()
    assert 0 < info.currsize <= info.maxsize <= 8
    first, weights = resample.kept_coefficients(33, 65)
    assert not first.flags.writeable and not weights.flags.writeable
