"""The factors of patch-layout planes within spec §5's memory bound, and dense blocks larger
than the pass budget filled in pieces by the kernels.

A patch layout's Bᵀ is never cut into column ranges (its bands are whole patches), so the
band renderer, which holds every plane's Bᵀ at once, takes a plane only where its Bᵀ (with
an exact plane's binary64 copy) fits the plane's share of the pass budget; the others are
rendered a plane at a time. A reviewer's 37 KB file of 255 patch-32 planes at rank 512 held
651 MiB against a bound of 490.5 (docs/reliability-bounds.md)."""

from __future__ import annotations

import dataclasses
import importlib.util
import tracemalloc

import numpy as np
import pytest

import svdcodec
from svdcodec import format as fmt
from svdcodec.codec.coding import END_OF_ROW, PLANAR, VERTICAL, to_symbols
from svdcodec.decoder import plane as plane_module
from svdcodec.decoder.reference import decode_reference
from svdcodec.decoder.stream import BandRenderer
from svdcodec.runtime import band_sizes

KERNELS = ["0", "1"] if importlib.util.find_spec("svdcodec.runtime._kernels") else ["0"]
UINT8 = 1  # HEAD's sample type code of uint8 samples
SHIFT = 10  # F of the exact rule (spec §5.1): small integers keep its bound by far


def many_patch_planes(channels: int, side: int, patch: int) -> bytes:
    """A version 5 file of `channels` grey planes of one patch layout at the highest rank
    (min(m, n)), U and V a twentieth non-zero integers in -2..2, every sigma 1."""
    rng = np.random.default_rng(7)
    planes, blocks = [], []
    for i in range(channels):
        m, n = fmt.Plane(i, fmt.LAYOUT_PATCH, patch, side, side, 0, 1.0, SHIFT).matrix_shape
        rank = min(m, n)
        planes.append(fmt.Plane(i, fmt.LAYOUT_PATCH, patch, side, side, rank, 1.0, SHIFT))
        blocks.append(fmt.Block("S", i, 0, rank, fmt.DENSE, (np.ones(rank, np.float32),)))
        for factor, rows in (("V", n), ("U", m)):
            ints = rng.integers(-2, 3, (rows, rank)) * (rng.random((rows, rank)) < 0.05)
            blocks.append(fmt.Block(factor, i, 0, rank, fmt.SPARSE, to_symbols(ints)))
    header = fmt.Header(side, side, UINT8, channels, 0, 0, 1.0, 5)
    return fmt.pack(fmt.Container(header, planes, blocks), 1)


@pytest.fixture(scope="module")
def many() -> bytes:
    return many_patch_planes(32, 256, 32)


@pytest.mark.parametrize("kernels", KERNELS)
def test_many_patch_planes_within_the_bound(many: bytes, kernels: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """32 planes of patch 32 at rank 64, the pass budget's floor cut to 1 MiB: every plane's
    Bᵀ held at once took 11.3 MiB (compiled) and 28.0 MiB (numpy path, with its binary64
    copies) against 8.5; a plane at a time, 3.1 and 3.6."""
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 20)
    expected = decode_reference(many)
    out = expected.nbytes
    budget = plane_module.pass_budget(out)
    assert budget == 1 << 20
    svdcodec.decode(many)  # warm-up: lazy imports and caches are not the input's fault
    tracemalloc.start()
    try:
        got = svdcodec.decode(many)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(got, expected)
    assert peak <= out + 3.5 * budget + 3 * 4 * band_sizes.BAND_PIXELS, peak


@pytest.mark.parametrize("kernels", KERNELS)
def test_band_renderer_takes_a_patch_plane_whose_factors_fit_its_share(
        many: bytes, kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each plane's Bᵀ takes 0.25 MiB, 0.75 MiB with the binary64 copy: the file is rendered
    band by band with a pass budget of 24 MiB (0.75 MiB a plane), not with 16 MiB (0.5)."""
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 24 << 20)
    assert BandRenderer.prepare(fmt.unpack(many)) is not None
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 16 << 20)
    assert BandRenderer.prepare(fmt.unpack(many)) is None


@pytest.mark.parametrize("kernels", KERNELS)
def test_declined_file_refused_from_its_blocks_before_the_output(
        many: bytes, kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The band renderer declines a plane for its Bᵀ once the plane's blocks are read and
    checked: a U block of plane 0 with three row ends too few is refused before the
    plane-by-plane path allocates the output (a first version declined first: 2.1 MiB traced,
    the output's 2 MiB among them)."""
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 20)
    box = fmt.unpack(many)
    blocks = []
    for block in box.blocks:
        if (block.plane, block.factor) == (0, "U"):
            symbols, runs, values = (a.copy() for a in block.data())
            symbols[np.flatnonzero(symbols == END_OF_ROW)[:3]] = END_OF_ROW + 1
            block = dataclasses.replace(block, arrays=(symbols, runs, values), frame=None)
        blocks.append(block)
    broken = fmt.pack(dataclasses.replace(box, blocks=blocks), 1)
    with pytest.raises(svdcodec.SvdiError, match="row ends"):
        svdcodec.decode(broken)
    tracemalloc.start()
    try:
        with pytest.raises(svdcodec.SvdiError, match="row ends"):
            svdcodec.decode(broken)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 256 * 256 // 2, peak


def dense_plane(side: int, rank: int, patch: int) -> bytes:
    """One grey plane (patch 0: the plain layout) whose U (planar predictor) and V (vertical)
    are dense blocks of every component, residuals a fifth non-zero in -1..1."""
    rng = np.random.default_rng(1)
    layout = fmt.LAYOUT_PATCH if patch else fmt.LAYOUT_PLAIN
    p = fmt.Plane(0, layout, patch, side, side, rank, 1.0, SHIFT)

    def dense(factor: str, grid: tuple[int, int], predictor: int) -> fmt.Block:
        residuals = (rng.integers(-1, 2, (rank, *grid))
                     * (rng.random((rank, *grid)) < 0.2)).astype(np.int16)
        return fmt.Block(factor, 0, 0, rank, fmt.DENSE, (residuals,), predictor)
    blocks = [fmt.Block("S", 0, 0, rank, fmt.DENSE, (np.ones(rank, np.float32),)),
              dense("V", p.vgrid, VERTICAL), dense("U", p.grid, PLANAR)]
    header = fmt.Header(side, side, UINT8, 1, 0, 0, 1.0, 5)
    return fmt.pack(fmt.Container(header, [p], blocks), 1)


@pytest.mark.parametrize("chunk", [band_sizes.CHUNK_BYTES, 1 << 10])
@pytest.mark.parametrize("kernels", KERNELS)
def test_dense_blocks_above_the_budget_give_the_reference_pixels(
        kernels: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Patch 32: dense U and V blocks of 1 MiB of integers each, a pass budget of 0.5 MiB: U
    in two passes of grid rows (the second from the column sums of the first's rows), V in
    one; on the compiled path each piece unpredicted by the kernels (`fill_dense_compiled`),
    128 components' whole grids a piece. With pieces of 1 KiB, 4 grid rows of a component's
    32 a piece (streamed), the sums carried from piece to piece."""
    data = dense_plane(1024, 256, 32)
    expected = decode_reference(data)
    assert 0 < expected.mean() < 255
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 16)
    monkeypatch.setattr(band_sizes, "CHUNK_BYTES", chunk)
    pieces: list[tuple[str, int, int]] = []
    real = plane_module.fill_dense_compiled

    def counted(compiled: object, out: np.ndarray, block: fmt.Block, width: int,
                grid: tuple[int, int], g0: int, g1: int, *args: object) -> None:
        pieces.append((block.factor, g0, g1))
        real(compiled, out, block, width, grid, g0, g1, *args)  # type: ignore[arg-type]
    monkeypatch.setattr(plane_module, "fill_dense_compiled", counted)
    assert np.array_equal(svdcodec.decode(data), expected)
    assert np.array_equal(svdcodec.decode(data, components=100),
                          decode_reference(data, components=100))
    if kernels == "1":
        assert ("U", 16, 32) in pieces and ("V", 0, 32) in pieces, pieces


@pytest.mark.parametrize("kernels", KERNELS)
def test_dense_blocks_of_a_plain_plane_in_passes(kernels: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain layout, whose components are single columns of 512 rows (up to 256 of them a
    piece): U in two passes, V in column ranges."""
    data = dense_plane(512, 128, 0)
    expected = decode_reference(data)
    assert 0 < expected.mean() < 255
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    monkeypatch.setattr(band_sizes, "MIN_PASS_BYTES", 1 << 16)
    assert np.array_equal(svdcodec.decode(data), expected)
