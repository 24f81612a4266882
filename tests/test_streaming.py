"""The banded (streaming) paths give the results of the whole-image paths they replace.

Decoding in bands must give the very pixels of whole-plane reconstruction (reconstruct,
from_matrix, merge); encoding in bands must give the same file whatever the band size, up to
floating-point summation order in the Gram matrix.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import zstandard
from PIL import Image

import svdcodec
from svdcodec import bands, coding, decoder, encoder, parallel, planes, quantization
from svdcodec import container as C
from svdcodec.resample import Bilinear, Resampler


def photo(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus texture and noise: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels))
    for c in range(channels):
        out[..., c] = (128 + 90 * np.sin(x / (17 + 5 * c) + y / 23) * np.cos(y / (31 - 3 * c))
                       + 20 * np.sin(x * y / 900) + rng.normal(0, 6, (height, width)))
    return np.clip(out, 0, 255).astype(np.uint8)


def whole_plane_decode(data: bytes, components: int | None = None) -> np.ndarray:
    """The decoder before banding: every plane reconstructed whole, then merged."""
    box = C.unpack(data)
    out = []
    for plane in box.planes:
        rank = plane.rank if components is None else min(plane.rank, components)
        A = decoder._integers(box, plane, "U", rank)
        B = decoder._integers(box, plane, "V", rank)
        matrix = quantization.reconstruct(A, box.singular_values(plane.index)[:rank], B, plane.step)
        out.append(planes.from_matrix(matrix, plane))
    pixels = planes.merge(out, box.header)
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


@pytest.fixture
def small_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a few thousand pixels, so that test images have many of them."""
    monkeypatch.setattr(bands, "BAND_PIXELS", 4096)
    monkeypatch.setattr(encoder, "BAND_SAMPLES", 4096)
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
def test_banded_decode_equals_whole_plane_decode(case: tuple, threads: int,
                                                 small_bands: None) -> None:
    height, width, channels, dtype, options = case
    data = svdcodec.encode(sample(height, width, channels, dtype), **options)
    box = C.unpack(data)
    full = [p for p in box.planes if (p.height, p.width) == (height, width)]
    assert len(bands._bands_for(full, height, width)) > 1
    for components in (None, 3):
        expected = whole_plane_decode(data, components)
        got = bands.render(C.unpack(data), components, threads=threads)
        got = got[:, :, 0] if got.shape[2] == 1 else got
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_tiny_bands_stay_within_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bands of a single patch row take BLAS's small-matrix kernels, which may round the last
    bit differently: pixels may then differ by one level, never more."""
    monkeypatch.setattr(bands, "BAND_PIXELS", 1)
    monkeypatch.setattr(bands, "MIN_BAND_ROWS", 1)
    pixels = photo(96, 128, 3)
    data = svdcodec.encode(pixels, quality=80)
    diff = svdcodec.decode(data).astype(int) - whole_plane_decode(data).astype(int)
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
    header = encoder._header(pixels, subsample)
    source = planes.Source(pixels, header)
    for i, plane in enumerate(planes.split(pixels, header)):
        rows = np.concatenate([source.rows(i, y, min(plane.shape[0], y + 8))
                               for y in range(0, plane.shape[0], 8)])
        if height % 2 and subsample and i in (1, 2):  # Pillow's BOX sums in another order
            np.testing.assert_allclose(rows, plane, atol=1e-4)
        else:  # fixed-point colour weights: exact in any order of summation
            np.testing.assert_array_equal(rows, plane)
        for side in (2, 4, 8, 16):
            by_band = np.concatenate([planes.patch_rows(plane[y:y + 2 * side], side)
                                      for y in range(0, plane.shape[0], 2 * side)])
            np.testing.assert_array_equal(by_band, planes.to_matrix(plane, C.LAYOUT_PATCH, side))


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
    whole = quantization.ColumnStats(12, 3.0)
    A = whole.add(values)
    parts = []
    for r in range(0, 5000, 700):
        part = quantization.ColumnStats(12, 3.0)
        np.testing.assert_array_equal(part.add(values[r:r + 700]), A[r:r + 700])
        parts.append(part)
    combined = quantization.ColumnStats.combine(parts)
    np.testing.assert_array_equal(combined.top, whole.top)
    np.testing.assert_allclose(combined.error, whole.error, rtol=1e-5)
    np.testing.assert_array_equal(A, quantization.quantize(values, 3.0))


@pytest.mark.parametrize("options", [{"quality": 75}, {"quality": 95}, {"quality": 50, "rank": 9,
                                                                        "layout": "patch4"}])
def test_encode_does_not_depend_on_band_size(options: dict, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    pixels = photo(192, 256, 3)
    one_band = svdcodec.encode(pixels, **options)
    monkeypatch.setattr(encoder, "BAND_SAMPLES", 2048)
    monkeypatch.setattr(coding, "SYMBOL_BAND", 500)
    many = svdcodec.encode(pixels, **options)
    a, b = C.unpack(one_band), C.unpack(many)
    # Same layouts and ranks. The Gram sums differ in rounding, which can turn eigenvectors of
    # nearly equal eigenvalues within their subspace: some integers change, the cost does not.
    assert [(p.layout, p.patch, p.rank) for p in a.planes] == \
        [(p.layout, p.patch, p.rank) for p in b.planes]
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
    plane = C.Plane(0, C.LAYOUT_PATCH, patch, height, width, rank, 2.0)
    gh, gw = plane.grid
    residuals = rng.integers(-3, 4, (rank, gh, gw)).astype(np.int8)
    sigma = np.geomspace(4000, 40, rank).astype(np.float32)
    vt = rng.integers(-20, 21, (rank, patch, patch)).astype(np.int8)
    box = C.Container(C.Header(width, height, 1, 1, C.COLOUR_NONE, 0, 1.0), [plane], [
        C.Block("S", 0, 0, rank, C.DENSE, (sigma,)),
        C.Block("V", 0, 0, rank, C.DENSE, (vt,)),
        C.Block("U", 0, 0, rank, C.DENSE, (residuals,), predictor)])
    data = C.pack(box)
    assert len(bands._bands_for([plane], height, width)) > 1
    for components in (None, 5):
        expected = whole_plane_decode(data, components)
        got = bands.render(C.unpack(data), components, threads=2)[:, :, 0]
        np.testing.assert_array_equal(got, expected)


def _dense_box(layout: int, predictor: int, element: type = np.int8
               ) -> tuple[C.Header, C.Plane, list[C.Block]]:
    """A one-plane file with dense U and V blocks of random residuals under `predictor`."""
    rng = np.random.default_rng(7)
    height, width, rank = 640, 90, 12
    patch = 4 if layout == C.LAYOUT_PATCH else 0
    plane = C.Plane(0, layout, patch, height, width, rank, 2.0)
    sigma = np.geomspace(4000, 40, rank).astype(np.float32)
    u = rng.integers(-3, 4, (rank, *plane.grid)).astype(element)
    v = rng.integers(-20, 21, (rank, *plane.vgrid)).astype(element)
    header = C.Header(width, height, 1, 1, C.COLOUR_NONE, 0, 1.0)
    return header, plane, [C.Block("S", 0, 0, rank, C.DENSE, (sigma,)),
                           C.Block("V", 0, 0, 5, C.DENSE, (v[:5],), predictor),
                           C.Block("V", 0, 5, rank - 5, C.DENSE, (v[5:],), predictor),
                           C.Block("U", 0, 0, 5, C.DENSE, (u[:5],), predictor),
                           C.Block("U", 0, 5, rank - 5, C.DENSE, (u[5:],), predictor)]


@pytest.mark.parametrize("layout", [C.LAYOUT_PLAIN, C.LAYOUT_PATCH])
@pytest.mark.parametrize("predictor", [coding.NONE, coding.HORIZONTAL, coding.VERTICAL,
                                       coding.PLANAR])
def test_factor_pieces_do_not_change_pixels(layout: int, predictor: int, small_bands: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """U in passes of a few bands, V in ranges of columns, blocks streamed a few rows at a
    time: the pixels of the whole-plane decode, previews included."""
    header, plane, blocks = _dense_box(layout, predictor, np.int32)
    data = C.pack(C.Container(header, [plane], blocks))
    monkeypatch.setattr(bands, "pass_budget", lambda out_bytes: 4 * plane.rank * 40)
    monkeypatch.setattr(bands, "CHUNK_BYTES", 64)
    rows = bands.PlaneRows(C.unpack(data), plane, plane.rank,
                           bands._bands_for([plane], plane.height, plane.width), 4 * 12 * 40)
    assert len(rows.passes) > 1 and (len(rows.columns) > 1) == (layout == C.LAYOUT_PLAIN)
    for components in (None, 7, 3):
        expected = whole_plane_decode(data, components)
        got = bands.render(C.unpack(data), components, threads=2)[:, :, 0]
        np.testing.assert_array_equal(got, expected)


def _rechunk(chunk: bytes, payload: bytes) -> bytes:
    return C._chunk(chunk[4:8], payload)


@pytest.mark.parametrize("factor", ["U", "V"])
def test_damage_found_while_streaming_raises_svdi_error(factor: str) -> None:
    """Blocks are decompressed when decoded, after unpack: zstd damage under a valid CRC must
    still raise SvdiError (or decode to some pixels), never another exception."""
    header, plane, blocks = _dense_box(C.LAYOUT_PLAIN, coding.PLANAR, np.int32)
    i = next(k for k, b in enumerate(blocks) if b.factor == factor)
    chunks = [C.pack_block(b) for b in blocks]
    payload = chunks[i][8:-4]
    frame = zstd_frame(blocks[i])
    start = len(payload) - len(frame) + zstandard.frame_header_size(frame)  # past the sizes

    def decoded(new: bytes) -> str:
        damaged = chunks[:i] + [_rechunk(chunks[i], new)] + chunks[i + 1:]
        data = C.pack_header(header, [plane]) + b"".join(damaged) + C.END
        C.unpack(data)  # sizes still agree: accepted before decoding
        try:
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


def zstd_frame(block: C.Block) -> bytes:
    """The zstd frame of a dense block as pack_block writes it."""
    (data,) = block.data()
    code = C.ELEMENT_CODES[data.dtype.newbyteorder("=")]
    raw = np.ascontiguousarray(data, dtype=C.ELEMENT_TYPES[code]).tobytes()
    return zstandard.ZstdCompressor(level=3, write_content_size=True).compress(raw)


def test_layout_costed_on_a_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane of many bands is costed on one band in LAYOUT_SAMPLE: the U side scaled up by
    the sampled fraction, its bytes and distortion estimate those of coding the plane whole,
    and the file is the one that costing whole planes chooses."""
    monkeypatch.setattr(encoder, "BAND_SAMPLES", 4096)  # 32-row bands: 512 rows -> 16 bands
    pixels = encoder.as_pixels(photo(512, 128, 1))
    enc = encoder.Encoder(pixels, "auto", None, None)
    _, source = enc._prepare(False)
    sample = enc._sample(source, 0)
    assert sample is not None and len(sample) == 16 // encoder.LAYOUT_SAMPLE
    step = encoder.step_for_quality(75)
    for candidate in enc._candidates(False, 0):
        whole = enc._code(source, candidate, step, True)
        estimate = enc._code(source, candidate, step, True, sample)
        assert estimate.nbytes == pytest.approx(whole.nbytes, rel=0.15)
        assert estimate.distortion == pytest.approx(whole.distortion, rel=0.15)
    sampled = svdcodec.encode(pixels, quality=75)
    monkeypatch.setattr(encoder, "LAYOUT_SAMPLE", 1 << 20)
    assert svdcodec.encode(pixels, quality=75) == sampled


def test_blas_threads_scoped() -> None:
    """Encoding keeps OpenBLAS at one thread (its idle workers spin against the band threads),
    except inside `threaded_blas` (whole-plane factorizations); both restore what they found."""
    api = parallel._find()
    if api is None:
        pytest.skip("OpenBLAS's thread API not found")
    get, put = api
    before = get()
    put(2)
    try:
        with parallel.single_threaded():
            assert get() == 1
            with parallel.threaded_blas():
                assert get() == 2
            assert get() == 1
        assert get() == 2
        with parallel.threaded_blas():  # outside single_threaded: nothing to undo
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
