"""Conformance vectors in spec/vectors/: every file against its manifest entry, and the
generator spec/make_vectors.py reproducing the committed bytes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec import SvdiError
from svdcodec.decoder.reference import decode_reference
from support import REGRESSIONS, ROOT, make_vectors

VECTORS = ROOT / "spec" / "vectors"
MANIFEST: dict[str, Any] = json.loads((VECTORS / "manifest.json").read_text())
ENTRIES = MANIFEST["vectors"]
VALID = [e for e in ENTRIES if e["valid"]]
INVALID = [e for e in ENTRIES if not e["valid"]]


def within(decoded: np.ndarray, expected: np.ndarray, tolerance: dict[str, float]) -> bool:
    diff = np.abs(decoded.astype(np.float64) - expected.astype(np.float64))
    return bool(np.all(diff <= tolerance["abs"]))


def test_manifest_lists_every_file() -> None:
    listed = {e["file"] for e in ENTRIES} | {e["expected"] for e in VALID} | {"manifest.json"}
    assert listed == {p.name for p in VECTORS.iterdir()}
    assert MANIFEST["format_version"] == svdcodec.FORMAT_VERSION
    assert len(VALID) >= 8 and len(INVALID) >= 10


@pytest.mark.parametrize("entry", VALID, ids=[e["file"] for e in VALID])
def test_valid_vector(entry: dict[str, Any]) -> None:
    data = (VECTORS / entry["file"]).read_bytes()
    expected = np.load(VECTORS / entry["expected"], allow_pickle=False)
    decoded = svdcodec.decode(data)
    assert decoded.shape == expected.shape == tuple(entry["shape"])
    assert decoded.dtype == expected.dtype == np.dtype(entry["dtype"])
    assert within(decoded, expected, entry["tolerance"])
    # The reference decoder (spec section 5 on whole arrays) gives the very same samples.
    np.testing.assert_array_equal(decode_reference(data), decoded)
    if entry["mode"] is not None:  # Pillow gives the same pixels in the declared mode
        with Image.open(VECTORS / entry["file"]) as im:
            assert (im.format, im.mode) == ("SVDI", entry["mode"])
            assert np.array_equal(np.asarray(im), decoded)


@pytest.mark.parametrize("entry", INVALID, ids=[e["file"] for e in INVALID])
def test_invalid_vector(entry: dict[str, Any]) -> None:
    data = (VECTORS / entry["file"]).read_bytes()
    with pytest.raises(SvdiError, match=re.escape(entry["error"])):
        svdcodec.decode(data)
    with pytest.raises(SvdiError):
        decode_reference(data)


def test_tolerance_is_tight() -> None:
    """The check can fail: an expected image off by two levels is out of tolerance."""
    entry = VALID[0]
    expected = np.load(VECTORS / entry["expected"])
    moved = expected.astype(np.int64)
    moved[0, 0] += 2 if moved[0, 0] < 200 else -2
    assert not within(moved, expected, entry["tolerance"])


def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    make_vectors().write(tmp_path / "vectors", tmp_path / "regressions")
    generated = {p.name: p.read_bytes() for p in (tmp_path / "vectors").iterdir()}
    committed = {p.name: p.read_bytes() for p in VECTORS.iterdir()}
    assert sorted(generated) == sorted(committed)
    changed = [name for name in generated if generated[name] != committed[name]]
    assert not changed, f"run spec/make_vectors.py: {changed} differ"
    for path in (tmp_path / "regressions").iterdir():
        assert path.read_bytes() == (REGRESSIONS / path.name).read_bytes()
