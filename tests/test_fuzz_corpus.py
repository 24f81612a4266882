"""Replay the fuzz seed corpus and tests/regressions/ through the harness targets in
tests/fuzz/ (the same functions atheris calls), so fuzz findings stay fixed without atheris."""

from __future__ import annotations

import sys

from pathlib import Path

import pytest

import svdcodec
from support import CORPUS, REGRESSIONS, ROOT, load_module

HARNESSES = ROOT / "tests" / "fuzz"
INPUTS = sorted(CORPUS.iterdir()) + sorted(REGRESSIONS.iterdir())
IDS = [f"{p.parent.name}/{p.name}" for p in INPUTS]


def test_corpus_is_small_valid_files() -> None:
    seeds = sorted(CORPUS.iterdir())
    assert len(seeds) >= 5
    for path in seeds:
        data = path.read_bytes()
        assert len(data) < 4096, path.name
        assert svdcodec.decode(data).size > 0, path.name


@pytest.mark.parametrize("harness", ["fuzz_decode", "fuzz_pillow"])
@pytest.mark.parametrize("path", INPUTS, ids=IDS)
def test_replay(harness: str, path: Path) -> None:
    load_module(HARNESSES / f"{harness}.py").target(path.read_bytes())


@pytest.mark.parametrize("path", INPUTS, ids=IDS)
def test_replay_roundtrip(path: Path) -> None:
    pytest.importorskip("atheris")  # the target reads its input with atheris' data provider
    load_module(HARNESSES / "fuzz_roundtrip.py").target(path.read_bytes())


@pytest.mark.parametrize("harness", ["fuzz_decode", "fuzz_pillow"])
def test_targets_report_unexpected_errors(harness: str, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """A target must let a non-SvdiError escape, or the fuzzer would never see a crash."""
    module = load_module(HARNESSES / f"{harness}.py")

    def broken(*args: object, **kwargs: object) -> None:
        raise IndexError("simulated decoder bug")

    monkeypatch.setattr(sys.modules["svdcodec.decoder"], "unpack", broken)
    with pytest.raises(IndexError):
        module.target((CORPUS / "vector_l_13x7_plain.svdi").read_bytes())


def test_crc_repair_restores_a_file() -> None:
    crc_fix = load_module(HARNESSES / "crc_fix.py")
    data = (CORPUS / "vector_l_13x7_plain.svdi").read_bytes()
    broken = data[:20] + bytes([data[20] ^ 1]) + data[21:]  # inside the HEAD payload
    repaired = crc_fix.fix_crcs(broken)
    assert repaired != broken and repaired[:20] == data[:20]
    assert crc_fix.fix_crcs(data) == data
    assert crc_fix.fix_crcs(data[:-3]) == data[:-3]  # an incomplete last chunk stays as it is
    with pytest.raises(svdcodec.SvdiError, match="CRC mismatch"):
        svdcodec.decode(broken)
    with pytest.raises(svdcodec.SvdiError) as info:
        svdcodec.decode(repaired)
    assert "CRC" not in str(info.value)
