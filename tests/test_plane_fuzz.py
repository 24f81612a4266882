"""Smoke run of the one-band plane fuzzer (tests/fuzz/fuzz_plane.py): files the encoder made
of every plane kind that takes WholePlane (`_kernels.plane_factors`), their factor blocks'
arrays, codings, singular values and PLAN fields mutated, decoded with the compiled kernels,
on the numpy path, by the reference decoder and Pillow, which must agree on the verdict and the
pixels."""

from __future__ import annotations

import collections
import os
import sys

import numpy as np
import pytest
from support import ROOT, load_module

import svdcodec
from svdcodec import SvdiError
from svdcodec import format as fmt
from svdcodec.decoder import plane as plane_module

FUZZ = ROOT / "tests" / "fuzz"
sys.path.insert(0, str(FUZZ))
grammar = load_module(FUZZ / "grammar.py")
harness = load_module(FUZZ / "fuzz_plane.py")
SEEDS = int(os.environ.get("SVDI_PLANE_SEEDS", "300"))
#: WholePlane needs the compiled kernels (the harness sets SVDCODEC_KERNELS per path itself)
compiled = pytest.mark.skipif("1" not in harness.KERNELS, reason="the C kernels are not built")


@compiled
def test_every_seed_plane_takes_whole_plane() -> None:
    """Each seed decodes alike on every path, and every plane of it, the adapted one too
    (spec §5.5, its map made from the whole A), is rendered by WholePlane; written again
    unchanged (the harness's writer), it decodes to the same pixels."""
    for name, data in harness.seed_files():
        harness.PLANES.clear()
        assert set(harness.verdicts(data).values()) == {"ok"}, name
        planes = harness.PLANES["declared"]
        assert harness.PLANES["whole"] == planes, (name, harness.PLANES)
        box = fmt.unpack(data)
        again = harness.Draft(box, list(box.planes), list(box.blocks)).data()
        assert np.array_equal(svdcodec.decode(again), svdcodec.decode(data)), name


def test_seeds_cover_the_plane_kinds() -> None:
    """Luma and chroma (4:2:0), alpha, 8 and 16 bits, every patch side the encoder writes but
    4 and 8 by name, both block codings, the deblocking and restoration filters, an adapted
    plane beside the others."""
    boxes = [fmt.unpack(data) for _, data in harness.seed_files()]
    planes = [p for box in boxes for p in box.planes]
    assert {p.patch for p in planes} == {2, 4, 8, 16, 32}
    assert {box.header.sample_type for box in boxes} == {1, 2}
    assert {box.header.channels for box in boxes} == {1, 2, 3, 4}
    assert any(box.header.subsampling for box in boxes)
    assert {b.coding for box in boxes for b in box.blocks if b.factor in "UV"} == {
        fmt.DENSE, fmt.SPARSE}
    assert any(p.filtered for p in planes) and any(not p.filtered for p in planes)
    assert any(box.restoration for box in boxes)
    assert any(p.adapted for p in planes)


@compiled
def test_mutated_files_agree_on_every_path() -> None:
    """SEEDS generated files (SVDI_PLANE_SEEDS for more), none a mismatch; both verdicts
    reached, and at least 30 % of the planes the files declare rendered by WholePlane (the
    point of the harness: the structure fuzzer's 400 smoke files, for 1 of their 911 planes)."""
    harness.PLANES.clear()
    found: collections.Counter[str] = collections.Counter()
    for seed in range(SEEDS):
        case = harness.generate(grammar.RandomChoices(seed))
        try:
            verdict = harness.verdicts(case.data)
        except harness.Mismatch as exc:
            pytest.fail(f"seed {seed}: {exc}\n{case}")
        found[verdict["decode/1"]] += 1
    assert found["ok"] > SEEDS // 10 and found["SvdiError"] > SEEDS // 10, found
    assert harness.PLANES["whole"] >= 0.3 * harness.PLANES["declared"], harness.PLANES


def test_committed_corpus_replays() -> None:
    """The seed corpus, read as the fuzzer read it when atheris is installed (CI), else as
    seeds of the random generator."""
    for path in sorted((FUZZ / "corpus_plane").iterdir()):
        harness.replay(path.read_bytes())


@compiled
def test_a_differing_whole_plane_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A WholePlane that refuses what the numpy path decodes must reach the fuzzer as an
    exception (and this shows the seeds do take WholePlane)."""
    def refuse(*args: object, **kwargs: object) -> int:
        raise SvdiError("simulated disagreement")
    monkeypatch.setattr(plane_module.WholePlane, "_fill_whole", refuse)
    with pytest.raises(harness.Mismatch, match="verdicts differ"):
        harness.verdicts(harness.seed_files()[0][1])
