"""Smoke run of the structure-aware fuzzer (tests/fuzz/fuzz_structure.py): files generated
from the spec's grammar (tests/fuzz/grammar.py), valid and with defects, for every mode and
layout, each decoded on every path — numpy, compiled kernels, the reference decoder,
read_factors, Pillow — which must agree on the verdict and the pixels."""

from __future__ import annotations

import collections
import os
import sys

import pytest
from support import REGRESSIONS, ROOT, load_module

FUZZ = ROOT / "tests" / "fuzz"
sys.path.insert(0, str(FUZZ))
grammar = load_module(FUZZ / "grammar.py")
harness = load_module(FUZZ / "fuzz_structure.py")
SEEDS = int(os.environ.get("SVDI_STRUCTURE_SEEDS", "400"))


def test_generated_files_agree_on_every_path() -> None:
    verdicts: collections.Counter[str] = collections.Counter()
    modes, layouts, versions = set(), set(), set()
    for seed in range(SEEDS):
        case = grammar.generate(grammar.RandomChoices(seed))
        try:
            found = harness.verdicts(case.data, case.pillow)
        except harness.Mismatch as exc:
            pytest.fail(f"seed {seed}: {exc}\n{case}")
        verdicts[next(iter(found.values()))] += 1
        modes.add(case.mode)
        layouts.update(case.layouts)
        versions.add(int.from_bytes(case.data[16:18], "big"))  # HEAD's version (spec §2)
    # The generator reaches both verdicts, every mode, layout and format version.
    assert verdicts["ok"] > SEEDS // 10 and verdicts["SvdiError"] > SEEDS // 10, verdicts
    assert modes == set(grammar.MODES) | set(grammar.V2_MODES) | set(grammar.V3_MODES)
    assert layouts == {"plain", "patch2", "patch4", "patch8", "patch16", "patch32"}
    assert {1, 2, 3, 4, 5} <= versions, versions


def test_valid_files_decode() -> None:
    """Without defects the generator writes only valid files (its grammar is the spec's)."""
    for seed in range(SEEDS // 4):
        case = grammar.generate(grammar.RandomChoices(seed), defects=False)
        found = harness.verdicts(case.data, case.pillow)
        assert set(found.values()) == {"ok"}, f"seed {seed}: {found}\n{case}"


def test_committed_corpus_replays() -> None:
    """The seed corpus and every input that once crashed the harness, read as the fuzzer read
    them when atheris is installed (CI), else as seeds of the random generator."""
    for path in sorted((FUZZ / "corpus_structure").iterdir()):
        harness.replay(path.read_bytes())


def test_regression_files_agree_on_every_path() -> None:
    """Every file in tests/regressions/ gets the same verdict (and pixels) on every path."""
    for path in sorted(REGRESSIONS.glob("*.svdi")):
        try:
            harness.verdicts(path.read_bytes())
        except harness.Mismatch as exc:
            pytest.fail(f"{path.name}: {exc}")


def test_a_differing_path_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A verdict that differs between paths must reach the fuzzer as an exception."""
    import svdcodec
    from svdcodec import SvdiError

    data = grammar.generate(grammar.RandomChoices(0), defects=False).data

    def refuse(*args: object, **kwargs: object) -> None:
        raise SvdiError("simulated disagreement")
    monkeypatch.setattr(svdcodec, "read_factors", refuse)
    with pytest.raises(harness.Mismatch, match="verdicts differ"):
        harness.verdicts(data)
