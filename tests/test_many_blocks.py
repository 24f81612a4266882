"""Files of many small blocks (version 5 records of one component each, a few bytes apiece):
what each block costs the reader in memory, and the same pixels from the compiled fill of a
plain plane's blocks in one call as from the reference decoder. A hostile file of 326,400 such
blocks (`benchmarks/hostile.py`'s `v5_plain_C255_blocks1`) took 1.2 KB of Python objects a
block and twice its output's bound (docs/reliability-bounds.md)."""

from __future__ import annotations

import dataclasses
import tracemalloc

import numpy as np
import pytest
from support import NEEDS_KERNELS, kernels_built

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as fmt
from svdcodec.codec.coding import END_OF_ROW, to_symbols
from svdcodec.decoder import plane
from svdcodec.decoder.reference import decode_reference, factor_integers
from svdcodec.runtime import kernels


def _one_component_blocks(data: bytes) -> bytes:
    """The file with every block cut into blocks of one component each (U and V run/level
    coded), the same integers: a file of the most blocks for its factors."""
    box = fmt.unpack(data)
    blocks = []
    for p in box.planes:
        sigma = box.singular_values(p.index)
        blocks += [fmt.Block("S", p.index, k, 1, fmt.DENSE, (sigma[k:k + 1],))
                   for k in range(p.rank)]
        for factor in ("V", "U"):
            ints = factor_integers(box, p, factor, p.rank)
            blocks += [fmt.Block(factor, p.index, k, 1, fmt.SPARSE, to_symbols(ints[:, k:k + 1]))
                       for k in range(p.rank)]
    return fmt.pack(dataclasses.replace(box, blocks=blocks), 1)


@pytest.fixture(scope="module")
def many() -> tuple[bytes, bytes]:
    """A plain-layout array of 5 channels coded at rank 40 at most, and the same factors in
    one-component blocks."""
    rng = np.random.default_rng(11)
    base = rng.integers(0, 256, (48, 64, 5), dtype=np.uint8)
    smooth = np.cumsum(base.astype(np.int64), axis=1) // 64
    data = svdcodec.encode(smooth.astype(np.uint8), 90, layout="plain", rank=40)
    return data, _one_component_blocks(data)


def test_same_pixels_as_the_file_of_grouped_blocks(many: tuple[bytes, bytes]) -> None:
    data, split = many
    box = fmt.unpack(split)
    assert len(box.blocks) == sum(3 * p.rank for p in box.planes) > 100
    expected = decode_reference(data)
    assert np.array_equal(svdcodec.decode(split), expected)
    assert np.array_equal(decode_reference(split), expected)
    assert np.array_equal(svdcodec.decode(split, components=7),
                          svdcodec.decode(data, components=7))
    for f, g in zip(svdcodec.read_factors(split), svdcodec.read_factors(data)):
        assert np.array_equal(f.U, g.U) and np.array_equal(f.Vt, g.Vt)


def test_blocks_have_no_attribute_dictionary(many: tuple[bytes, bytes]) -> None:
    """Blocks are slotted, and the blocks of one size in a chunk share their parts, on both
    parsers."""
    for compiled in (True, False):
        if compiled and not kernels_built():
            continue
        with pytest.MonkeyPatch.context() as m:
            m.setenv("SVDCODEC_KERNELS", "1" if compiled else "0")
            box = fmt.unpack(many[1])
        assert not hasattr(box.blocks[0], "__dict__")
        for p in box.planes:  # each plane's U blocks: one chunk of records
            blocks = box.factor_blocks(p.index, "U")
            sizes = {tuple((d, s) for d, s in b.parts) for b in blocks}
            assert len({id(b.parts) for b in blocks}) == len(sizes) < len(blocks)


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_memory_per_block(many: tuple[bytes, bytes], kernels: str,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    """What the reader holds for each block of a file of one-component blocks: under 340
    bytes compiled and 300 in Python (here 288 and 246; they were 837 and 431 before the
    blocks were slotted, 397 and 349 before small frames were copied and parts' pieces
    shared, and 1.2 KB a block of the hostile file)."""
    if kernels == "1" and not kernels_built():
        pytest.skip("no compiled kernels")
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    # the same blocks five times, in 25 planes
    split = many[1]
    box = fmt.unpack(split)
    header = dataclasses.replace(box.header, channels=25)
    planes = [dataclasses.replace(box.planes[i % 5], index=i) for i in range(25)]
    blocks = [dataclasses.replace(b, plane=b.plane + 5 * j) for j in range(5) for b in box.blocks]
    data = fmt.pack(dataclasses.replace(box, header=header, planes=planes, blocks=blocks), 1)
    fmt.unpack(data)  # the parser's one-time set-up
    tracemalloc.start()
    try:
        kept = fmt.unpack(data)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count = len(kept.blocks)
    assert count == 5 * len(box.blocks)
    assert held / count < {"1": 340, "0": 300}[kernels], f"{held / count:.0f} bytes a block"


@NEEDS_KERNELS
def test_plain_planes_open_their_blocks_in_one_call(many: tuple[bytes, bytes],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiled decode of a plain plane fills each factor from its blocks in one call: no
    block's streams are indexed apart (and its pixels are the reference's, above)."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    opened = []
    real = plane.sparse_streams

    def counted(*args: object, **kwargs: object) -> object:
        opened.append(args[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(plane, "sparse_streams", counted)
    out = svdcodec.decode(many[1])
    assert opened == []
    assert np.array_equal(out, decode_reference(many[0]))


@NEEDS_KERNELS
def test_blocks_stay_unopened_only_where_the_factor_is_filled_whole(
        many: tuple[bytes, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    """A plane whose U takes several passes or whose V several column ranges (which the band
    renderer declines) opens its blocks at set-up, where a broken one is refused before any
    output is allocated; one whose factors are both filled whole leaves them to the one-call
    fill."""
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    box = fmt.unpack(many[1])
    p = box.planes[0]
    compiled = kernels.get()
    bands = [(y, min(y + 8, p.height)) for y in range(0, p.height, 8)]
    whole = plane.PlaneReconstructor(box, p, p.rank, bands, 1 << 24, {}, compiled)
    assert all(s is plane.UNOPENED for _, _, s in whole.u + whole.v)
    budget = p.matrix_shape[0] * 4 * p.rank // 3  # U in three passes, V in several ranges
    pieces = plane.PlaneReconstructor(box, p, p.rank, bands, budget, {}, compiled)
    assert len(pieces.passes) > 1 and len(pieces.columns) > 1
    assert not any(s is plane.UNOPENED for _, _, s in pieces.u + pieces.v)
    budget = p.matrix_shape[0] * 4 * p.rank  # U in one pass, V in several ranges
    pieces = plane.PlaneReconstructor(box, p, p.rank, bands, budget, {}, compiled)
    assert len(pieces.passes) == 1 and len(pieces.columns) > 1
    assert not any(s is plane.UNOPENED for _, _, s in pieces.u + pieces.v)


@pytest.mark.parametrize("kernels", ["1", "0"])
def test_a_broken_block_is_refused_as_the_reference_refuses_it(
        many: tuple[bytes, bytes], kernels: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block whose symbols end a row too early: the one-call fill declines it and the
    blocks are read the general way, which says what is wrong."""
    if kernels == "1" and not kernels_built():
        pytest.skip("no compiled kernels")
    monkeypatch.setenv("SVDCODEC_KERNELS", kernels)
    box = fmt.unpack(many[1])
    victim = next(i for i, b in enumerate(box.blocks) if b.factor == "U" and b.first == 3)
    symbols, runs, values = box.blocks[victim].data()
    cut = symbols.copy()
    ends = np.flatnonzero(cut == END_OF_ROW)
    cut[ends[ends > 0][0] - 1] = END_OF_ROW  # a row ended early: one row end too many
    blocks = list(box.blocks)
    blocks[victim] = fmt.Block("U", blocks[victim].plane, 3, 1, fmt.SPARSE,
                               (cut, runs, values))
    data = fmt.pack(dataclasses.replace(box, blocks=blocks), 1)
    with pytest.raises(SvdiError):
        decode_reference(data)
    with pytest.raises(SvdiError, match="sparse block"):
        svdcodec.decode(data)
