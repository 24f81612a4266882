"""Adaptive quantization per patch (format version 6, spec §5.5): the map rule, the encoder's
map against the decoder's, every decoder path against the reference, the file's fields."""

from __future__ import annotations

import io
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import NEEDS_KERNELS, load_module, photo
from support import kernels as kernels_on

import svdcodec
from svdcodec.codec import aq
from svdcodec.codec import exact as exact_rule
from svdcodec.codec.layout import from_matrix
from svdcodec.decoder.plane import PlaneReconstructor, WholePlane
from svdcodec.decoder.reference import decode_plane, decode_reference, row_multipliers
from svdcodec.encoder import aq as aq_encoder
from svdcodec.errors import SvdiError
from svdcodec.evaluation.metrics import psnr
from svdcodec.format import AQ_VERSION, COMPACT_VERSION, NO_AQ, pack_header, unpack
from svdcodec.runtime import kernels


def sample(size: tuple[int, int] | None = None) -> np.ndarray:
    pixels = np.asarray(Image.open(svdcodec.__path__[0] + "/data/sample.png").convert("RGB"))
    return pixels if size is None else np.ascontiguousarray(pixels[:size[0], :size[1]])


def scalar_map(ints: np.ndarray, grid: tuple[int, int], patch: int, step: float,
               g_bits: int) -> list[int]:
    """The rule of spec §5.5 written out patch by patch in Python integers and floats."""
    gh, gw = grid
    g = aq.binary16(g_bits)
    limits = [((g * r - 58.5) * (768 * patch * patch)) / (step * step) for r in aq.RATIOS]
    weight = float(1568 * (patch * patch - 1)) / float(300 * patch * patch)

    def clamp(v: int) -> int:
        return min(abs(int(v)), 32767)

    def at(y: int, x: int) -> list[int]:  # a neighbour outside the grid: the nearest inside
        return ints[min(max(y, 0), gh - 1) * gw + min(max(x, 0), gw - 1)]
    out: list[int] = []
    energy: list[int] = []
    for y in range(gh):
        row_energy = []
        for x in range(gw):
            s = sum(clamp(at(y + dy, x + dx)[0] - at(y, x)[0]) ** 2
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
            e = s * weight
            if y:
                above = (energy[max(x - 1, 0)] + energy[x] + energy[min(x + 1, gw - 1)])
                e = max(e, float(above))
            m = aq.CLASSES[sum(e >= t for t in limits)]
            out.append(m)
            row_energy.append(sum((clamp(a) * m) ** 2 for a in at(y, x)[1:]))
        energy = row_energy
    return out


@pytest.mark.parametrize("seed", range(4))
def test_map_rule(seed: int) -> None:
    """codec.aq.causal_map and the compiled aq_map follow the rule patch by patch; the data
    reach most classes (a rule that moved a threshold or a term would show)."""
    rng = np.random.default_rng(seed)
    gh, gw = int(rng.integers(1, 12)), int(rng.integers(1, 15))
    components = int(rng.integers(1, 6))
    patch = int(rng.choice([2, 4, 8, 16]))
    # integers of every magnitude, clamps included, sparse as U is
    ints = rng.integers(-6, 7, size=(gh * gw, components)) * (rng.random((gh * gw, components))
                                                              < 0.6)
    ints[rng.random(ints.shape) < 0.03] = 40000
    ints[:, 0] = np.cumsum(rng.integers(-9, 10, size=gh * gw)) + 300
    ints[rng.random(gh * gw) < 0.05, 0] += 50000  # mean differences past the clamp
    step = float(rng.uniform(2.0, 30.0))
    g_bits = aq.g_bits(float(rng.uniform(20.0, 400.0)))
    expected = scalar_map(ints.tolist(), (gh, gw), patch, step, g_bits)
    found = aq.causal_map(ints, (gh, gw), patch, step, g_bits)
    assert found.tolist() == expected
    compiled = kernels.get()
    if compiled is not None:
        out = np.empty(gh * gw, dtype=np.int32)
        compiled.aq_map(ints.astype(np.float32), gw, aq.thresholds(g_bits, step, patch),
                        aq.mean_weight(patch), out)
        assert out.tolist() == expected
        # the decoder's columns of its whole left factor: a view with a wider row stride
        wide = np.zeros((gh * gw, components + 3), dtype=np.float32)
        wide[:, :components] = ints
        out[:] = 0
        compiled.aq_map(wide[:, :components], gw, aq.thresholds(g_bits, step, patch),
                        aq.mean_weight(patch), out)
        assert out.tolist() == expected


@pytest.mark.parametrize("seed", range(4))
def test_map_in_bands_is_the_whole_map(seed: int) -> None:
    """The map in bands of grid rows (the rule's state carried in `carry`, each band given the
    grid row below it), compiled (`aq_map`) and in numpy (`codec.aq.map_band`), gives the
    whole map's classes at every cut, bands of one row included; the kernel refuses bad band
    arguments."""
    rng = np.random.default_rng(10 + seed)
    gh, gw, components = int(rng.integers(2, 14)), int(rng.integers(1, 12)), 4
    # flat, textured and busy patches: their energies carried to the row below decide classes
    ints = (rng.integers(-9, 10, size=(gh * gw, components))
            * rng.choice([0, 1, 3, 8], size=(gh * gw, 1))).astype(np.float32)
    ints[:, 0] = np.cumsum(rng.integers(-30, 31, size=gh * gw)) + 300
    limits, weight = aq.thresholds(aq.g_bits(200.0), 10.0, 4), aq.mean_weight(4)
    compiled = kernels.get()
    whole = aq.causal_map(ints.astype(np.int64), (gh, gw), 4, 10.0, aq.g_bits(200.0))
    assert len(set(whole.tolist())) >= 3  # classes that a wrong carry would move
    makers = [aq.map_band] + ([compiled.aq_map] if compiled is not None else [])
    for make in makers:
        for cuts in ([], [1], list(range(1, gh)),
                     sorted(set(rng.integers(1, gh, size=3).tolist()))):
            out = np.full(gh * gw, -1, dtype=np.int32)
            carry = np.full((2, gw + 2), np.nan)  # the first band must not read it
            for y0, y1 in itertools.pairwise([0, *cuts, gh]):
                rows = ints[y0 * gw:min(y1 + 1, gh) * gw]
                make(rows, gw, limits, weight, out[y0 * gw:y1 * gw], carry, y0 == 0)
            assert out.tolist() == whole.tolist(), (make, cuts)
    if compiled is None:
        return
    out = np.empty(gw, dtype=np.int32)
    for bad in [{"carry": np.zeros((2, gw + 1))}, {"top": False},
                {"carry": np.zeros((2, gw + 2)), "ints": ints[:3 * gw]}]:
        args = {"ints": ints[:2 * gw], "grid_width": gw, "limits": limits,
                "mean_weight": weight, "out": out} | bad
        with pytest.raises(ValueError, match="aq_map"):
            compiled.aq_map(**args)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("quality", [30, 90])
def test_map_of_a_plane_larger_than_its_budget(quality: int, compiled: bool) -> None:
    """A plane whose map's integers exceed the pass budget makes the map in bands of grid
    rows (`PlaneReconstructor._row_multipliers`), compiled and in numpy: the reference's
    multipliers and rows, with sparse (quality 30) and dense (90) first columns."""
    if compiled and kernels.get() is None:
        pytest.skip("the C kernels are not built")
    c = unpack(svdcodec.encode(photo(192, 256, 3), aq=True, quality=quality))
    p = c.planes[0]
    assert p.adapted
    whole = decode_plane(c, p, p.rank)
    for budget in (3000, 20000, 1 << 24):
        rows = PlaneReconstructor(c, p, p.rank, [(0, 96), (96, 192)], budget,
                                  compiled=kernels.get() if compiled else None)
        assert np.array_equal(rows.multipliers(), row_multipliers(c, p))
        found: dict[int, np.ndarray] = {}

        def keep(i: int, rows: PlaneReconstructor = rows,
                 found: dict[int, np.ndarray] = found) -> None:
            found[i] = rows.float_rows(i).copy()
        rows.each_band(keep, None)
        assert np.array_equal(np.concatenate([found[0], found[1]]), whole)
    assert 3000 // (4 * min(p.aq[0], p.rank) + 8) < p.grid[0] * p.grid[1] // 4  # 4+ bands


@pytest.mark.parametrize("kernels_on_", ["1", "0"])
def test_preview_map_reads_u_alone(kernels_on_: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A preview of fewer components than the map reads (spec §5.5: U's first K′) reads U's
    blocks for the map, never V's blocks or the weights of components it does not multiply:
    a broken V block of component 1 leaves components=1 decodable, as the reference decodes
    it (a reviewer's case: a helper reconstructor of K′ components refused it)."""
    y, x = np.mgrid[0:48, 0:64]
    noise = np.random.default_rng(7).normal(0, 1, (48, 64)) * np.where(x > 32, 25, 2)
    image = np.clip(120 + 60 * np.sin(x / 17.0) * np.cos(y / 23.0) + noise, 0, 255)
    data = svdcodec.encode(image.astype(np.uint8), 75, aq=True)
    p = unpack(data).planes[0]
    assert min(p.aq[0], p.rank) >= 2
    v = next(b for b in unpack(data).factor_blocks(0, "V") if b.first >= 1)
    at = data.find(bytes(v.frame))
    broken = bytearray(data)
    broken[at + len(v.frame) // 2] ^= 0xFF
    crc_fix = load_module(Path(__file__).parent / "fuzz" / "crc_fix.py")
    broken = crc_fix.fix_crcs(bytes(broken))
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels_on_)
    with pytest.raises(SvdiError):
        svdcodec.decode(broken)
    assert np.array_equal(svdcodec.decode(broken, components=1),
                          decode_reference(broken, components=1))


def test_map_reaches_every_class() -> None:
    """With energies spread over the thresholds of a large G, every class of the table occurs
    (a finer class needs G above 58.5 / ratio: the floor C keeps flat patches at 16 else)."""
    rng = np.random.default_rng(1)
    gh, gw = 12, 9
    ints = np.zeros((gh * gw, 4), dtype=np.int64)
    ints[:, 0] = rng.integers(0, 50, gh * gw)
    ints[:, 1] = np.round(np.exp(rng.uniform(0, np.log(3000), gh * gw)))
    found = aq.causal_map(ints, (gh, gw), 8, 4.0, aq.g_bits(20000.0))
    assert set(found.tolist()) == set(aq.CLASSES)
    assert found.tolist() == scalar_map(ints.tolist(), (gh, gw), 8, 4.0, aq.g_bits(20000.0))


def test_thresholds_and_weight() -> None:
    """The binary64 sequence of §5.5, and the ratios are 2^((j + 1/2)/0.48) to the last bits."""
    assert np.allclose(aq.RATIOS, [2 ** ((j + 0.5) / 0.48) for j in range(-3, 3)], rtol=1e-15)
    g = aq.g_bits(100.0)
    assert aq.binary16(g) == 100.0
    t = aq.thresholds(g, 3.0, 8)
    assert t.tolist() == [((100.0 * r - 58.5) * 49152.0) / 9.0 for r in aq.RATIOS]
    assert aq.mean_weight(8) == 1568 * 63 / (300 * 64)


def test_default_encode_unchanged_and_version() -> None:
    """aq=False is the default and writes version 5; aq=True version 6 with plane 0 adapted
    only (K 4, G the source's), and a grey image's plane too; non-8-bit images never."""
    pixels = sample((96, 128))
    plain = svdcodec.encode(pixels, quality=50)
    assert plain == svdcodec.encode(pixels, quality=50, aq=False)
    assert unpack(plain).header.version == COMPACT_VERSION
    data = svdcodec.encode(pixels, quality=50, aq=True)
    c = unpack(data)
    assert c.header.version == AQ_VERSION
    assert c.planes[0].aq[0] == aq.COMPONENTS and 0 < c.planes[0].aq[1] < 0x7C00
    assert [p.aq for p in c.planes[1:]] == [NO_AQ, NO_AQ]
    grey = unpack(svdcodec.encode(pixels[:, :, 1], quality=50, aq=True))
    assert grey.planes[0].adapted
    wide = unpack(svdcodec.encode(pixels.astype(np.uint16) * 257, quality=50, aq=True))
    assert wide.header.version == COMPACT_VERSION and not wide.planes[0].adapted


CASES = [  # with and without the deblocking filter (the encoder's default is the filter)
    ({"quality": 30, "deblock": False}, None),
    ({"quality": 75, "deblock": True}, None),
    ({"quality": 50, "effort": 2}, None),
    ({"quality": 92, "deblock": False}, None),
    ({"quality": 40, "layout": "patch4"}, None),
    ({"quality": 60, "layout": "patch16"}, (256, 384)),
    ({"quality": 40, "max_error": 3}, None),
    ({"quality": 3}, (40, 56)),  # the rank falls below K: coded again at that rank
]


@pytest.mark.parametrize("options,size", CASES)
def test_encoder_map_is_decoders(options: dict, size: tuple[int, int] | None,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The map the encoder quantized with is the one the decoder derives from the file, and
    the band decoder (compiled or numpy, as the session runs) gives the reference's pixels,
    previews included."""
    made: list[np.ndarray] = []
    original = aq_encoder.encoder_map

    def recorded(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]
    monkeypatch.setattr(aq_encoder, "encoder_map", recorded)
    pixels = sample(size) if size else sample((128, 192))
    data = svdcodec.encode(pixels, aq=True, **options)
    c = unpack(data)
    plane = c.planes[0]
    assert plane.adapted
    if options.get("deblock") is False:
        assert not any(p.filtered for p in c.planes)
    decoders = row_multipliers(c, plane)
    # the last map of the file's layout (effort 2 codes plane 0 in both patch sides: the
    # other side's map may come after it)
    mine = [m for m in made if m.shape == decoders.shape]
    assert mine and np.array_equal(mine[-1], decoders)
    assert np.array_equal(svdcodec.decode(data), decode_reference(data))
    for k in (1, 2, plane.rank + 1):
        assert np.array_equal(svdcodec.decode(data, components=k),
                              decode_reference(data, components=k))
    if "max_error" in options:  # the residual still bounds every sample
        assert int(np.abs(svdcodec.decode(data).astype(int) - pixels).max()) <= 3
    if options["quality"] < 5:
        assert plane.rank < aq.COMPONENTS


def test_adaptation_changes_the_pixels() -> None:
    """The multipliers matter: decoding an adapted file as if every M were 16 gives other
    pixels, and a file whose G is changed (another map) too."""
    data = svdcodec.encode(sample((96, 128)), quality=40, aq=True)
    c = unpack(data)
    p = c.planes[0]
    assert len(set(row_multipliers(c, p).tolist())) > 1
    other = replace(p, aq=(p.aq[0], aq.g_bits(aq.binary16(p.aq[1]) * 8)))
    assert not np.array_equal(row_multipliers(c, p), row_multipliers(c, other))


@pytest.mark.parametrize("quality", [50, 75, 90])
def test_grey_image_is_adapted(quality: int) -> None:
    """A grey image's plane also weighs the basis fitted to its integers (`fit_choice`); the
    adapted coding's error must be measured at its rows' own steps (M / 16), or the fitted
    basis, which cannot adapt, wins on a doubled error: a version 5 file up to 1.8 x larger."""
    grey = np.ascontiguousarray(sample()[..., 1])
    plain = svdcodec.encode(grey, quality=quality)
    adapted = svdcodec.encode(grey, quality=quality, aq=True)
    assert int.from_bytes(adapted[16:18], "big") == AQ_VERSION
    assert unpack(adapted).planes[0].adapted
    assert len(adapted) < 1.05 * len(plain)


@pytest.mark.parametrize("cols, rank, rows", [(64, 9, 37), (16, 9, 37), (16, 20, 37),
                                               (16, 9, 38), (9, 3, 37), (16, 1, 37),
                                               (256, 5, 37)])
def test_compiled_product_with_multipliers(cols: int, rank: int, rows: int) -> None:
    """_kernels.exact_product with multipliers is the numpy product of A o M at F + 4, and
    its max|A| is that of A o M (what the bound is checked on): patch 4's 16 columns (rows
    three at a time and the last one or two alone), patch 8's 64 and patch 16's 256 (32
    columns at a time), and other counts; A dense, and A of rows with few non-zero
    components and many (a photo's, whose zero terms the AVX2 kernel leaves out), at every
    product kernel the CPU runs (`product_kernel`)."""
    compiled = kernels.get()
    if compiled is None:
        pytest.skip("compiled kernels not built")
    rng = np.random.default_rng(7 + cols + rank + rows)
    dense = rng.integers(-50, 51, size=(rows, rank)).astype(np.float32)
    sparse = np.where(rng.random((rows, rank)) < rng.random((rows, 1)) ** 2, dense,
                      0).astype(np.float32)
    right = rng.integers(-200, 201, size=(cols, rank)).astype(np.float32)
    weights = rng.integers(1, 1 << 20, size=rank).astype(np.float64)
    m = rng.choice(aq.CLASSES, size=rows).astype(np.int32)
    means = rng.integers(-300, 301, size=cols).astype(np.float64)
    out = np.empty((rows, cols), np.float32)
    best = compiled.product_kernel()
    try:
        for level, left in itertools.product(range(best + 1), (dense, sparse)):
            compiled.product_kernel(level)
            max_a = compiled.exact_product(left, weights, right, 20, None, float(1 << 23), out,
                                           m)
            scaled = aq.scaled_left(left, m)
            assert max_a == exact_rule.magnitude(scaled)
            assert np.array_equal(out, exact_rule.exact_product(scaled, weights, right.T, 24))
            compiled.exact_product(left, weights, right, 20, means, float(1 << 23), out, m)
            assert np.array_equal(out, exact_rule.exact_product(scaled, weights, right.T, 24,
                                                                means))
            refused = compiled.exact_product(left, weights, right, 20, None, max_a - 1, out, m)
            assert refused == max_a
    finally:
        compiled.product_kernel(best)


def test_read_factors_of_an_adapted_plane() -> None:
    """read_factors' U carries M_p / 16 in components >= 1: U diag(S) V^T is the plane."""
    data = svdcodec.encode(sample((96, 128)), quality=60, aq=True)
    factors = svdcodec.read_factors(data)[0]
    matrix = (factors.U.astype(np.float64) * factors.S) @ factors.Vt.astype(np.float64)
    c = unpack(data)
    p = c.planes[0]
    plane = decode_plane(c, p, p.rank)
    rebuilt = from_matrix(matrix.astype(np.float32), p.height, p.width, p.patch)
    assert np.abs(rebuilt - plane).max() < 1e-2


def test_writer_needs_version_6() -> None:
    data = svdcodec.encode(sample((64, 64)), quality=50, aq=True)
    c = unpack(data)
    with pytest.raises(SvdiError, match="needs format version 6"):
        pack_header(replace(c.header, version=5), c.planes)


def test_pillow_option() -> None:
    """aq=True as a Pillow save option (the encoder's coding options), read back as version 6."""
    buffer = io.BytesIO()
    Image.fromarray(sample((64, 96))).save(buffer, format="SVDI", aq=True, quality=50)
    assert unpack(buffer.getvalue()).header.version == AQ_VERSION


def test_bands_of_some_rows() -> None:
    """A plane reconstructed for some bands only (as the encoder's deblocking judgement reads
    it) gives those rows of the reference decoder's plane: its map still covers every row."""
    data = svdcodec.encode(sample((192, 256)), quality=30, aq=True)
    c = unpack(data)
    p = c.planes[0]
    whole = decode_plane(c, p, p.rank)
    rows = PlaneReconstructor(c, p, p.rank, [(64, 128)], 1 << 24, compiled=kernels.get())
    found: dict[int, np.ndarray] = {}
    rows.each_band(lambda i: found.__setitem__(i, rows.float_rows(i).copy()), None)
    assert np.array_equal(found[0], whole[64:128])


@pytest.mark.parametrize("kernels_on", ["1", "0"])
def test_a_step_whose_square_underflows(kernels_on: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid step (finite, > 0) below 2^-537 squares to 0 in binary64: the thresholds are then
    IEEE's infinities (as in C and JavaScript), not Python's ZeroDivisionError, and every
    decoder gives the same pixels."""
    assert aq.thresholds(aq.g_bits(100.0), 1e-300, 8).tolist() == [-np.inf] * 3 + [np.inf] * 3
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels_on)
    data = svdcodec.encode(sample((64, 96))[:, :, 1], quality=40, aq=True)
    c = unpack(data)
    head = pack_header(c.header, c.planes)
    assert data.startswith(head)
    tiny = pack_header(c.header, [replace(c.planes[0], step=1e-300)] + c.planes[1:])
    hostile = tiny + data[len(head):]
    decoded = svdcodec.decode(hostile)
    assert np.array_equal(decoded, decode_reference(hostile).reshape(decoded.shape))


@pytest.mark.parametrize("target", [45.0, 50.0])
def test_psnr_target_reachable_with_aq(target: float) -> None:
    """At the finest steps searched an adapted plane's factors outgrow what the exact products
    resolve and the file decodes worse than at coarser steps; the search starts where the
    quality still rises (regression: `target_psnr=45, aq=True` was "not reachable")."""
    pixels = sample((128, 128))
    data = svdcodec.encode(pixels, target_psnr=target, aq=True)
    assert unpack(data).header.version == AQ_VERSION
    assert psnr(pixels, svdcodec.decode(data)) >= target


def test_large_budget_with_aq_is_not_worse() -> None:
    """A budget above the finest step's file gives the finest faithful step, not a file that
    decodes worse than quality 100's (regression: 32.8 dB where 52.9 dB fitted)."""
    pixels = sample((128, 128))
    best = svdcodec.encode(pixels, quality=100, aq=True)
    data = svdcodec.encode(pixels, max_bytes=10 ** 7, aq=True)
    assert len(data) <= 10 ** 7
    assert psnr(pixels, svdcodec.decode(data)) >= psnr(pixels, svdcodec.decode(best)) - 0.5


@NEEDS_KERNELS
@pytest.mark.parametrize("size,threads", [((96, 128), 1), ((512, 768), 2), ((512, 768), 1)])
def test_adapted_plane_set_up_whole(size: tuple[int, int], threads: int,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapted plane within the budget is set up whole (`WholePlane`, its map from the
    whole A), and, above the one-thread size, its rows cut into a band per thread: the
    reference's pixels, through `decode` and Pillow, with one thread or two; a preview of
    fewer components than the map reads takes the general path, also the reference's."""
    made: list[bool] = []
    original = WholePlane.__init__

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        made.append(self.adapted)
    monkeypatch.setattr(WholePlane, "__init__", counted)
    data = svdcodec.encode(photo(*size, 3), aq=True)
    plane = unpack(data).planes[0]
    assert plane.adapted and plane.rank >= 2
    expected = decode_reference(data)
    with kernels_on(True), svdcodec.threads(threads):
        assert np.array_equal(svdcodec.decode(data), expected)
        assert True in made  # plane 0, adapted, set up whole
        with Image.open(io.BytesIO(data)) as im:
            assert np.array_equal(np.asarray(im), expected)
        made.clear()
        k = min(aq.COMPONENTS, plane.rank) - 1  # one short of the map's components
        assert np.array_equal(svdcodec.decode(data, components=k),
                              decode_reference(data, components=k))
        assert True not in made
