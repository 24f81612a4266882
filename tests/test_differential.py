"""A fixed-seed slice of the differential test (tests/fuzz/differential.py): valid files of
random kinds, sizes, encode options and per-plane layouts, each decoded by the whole-array
path, the reference decoder, `decode` (with a preview and a reduced size) and Pillow's load()
(mapped and into band buffers) on the compiled kernels and numpy, under random band sizes and
thread counts, which must all give the same pixels. `SVDI_DIFFERENTIAL_CASES=N` runs more."""

from __future__ import annotations

import os
from pathlib import Path

from support import NEEDS_KERNELS, ROOT, load_module

differential = load_module(ROOT / "tests" / "fuzz" / "differential.py")

#: The slice: small images, a few seconds in all. Its 12 cases hold every image kind and take
#: the rare paths `test_the_slice_takes_the_rare_paths` names; on the commit before faf6c97
#: its case 6 (Cb and Cr of two patch sizes, deblocked, lean bands) failed as the lead's file did.
SEED = 111
CASES = int(os.environ.get("SVDI_DIFFERENTIAL_CASES", "12"))
MAX_PIXELS = 1 << 14
NO_PHOTOS: list[Path] = []


@NEEDS_KERNELS
def test_the_slice_takes_the_rare_paths() -> None:
    """Every case's file decodes alike on every path drawn; among them, the band renderer's
    several bands with the lean fused filter's chroma pieces, and one band split into a band
    per thread."""
    differential.COVERAGE.clear()
    with differential.spied():
        for index in range(CASES):
            case, rng = differential.draw_case(SEED, index, MAX_PIXELS, NO_PHOTOS)
            data = differential.make_file(case, rng, NO_PHOTOS)
            if data is None:
                continue  # options the encoder refuses
            try:
                assert differential.check(case, data, lambda line: None) > 0
            except Exception as exc:
                raise AssertionError(f"{exc}; reproduce: {case.command()} -v") from exc
    paths = differential.COVERAGE
    if CASES >= 12:
        assert paths["band renderer, several bands, EdgeSeams, chroma pieces"] > 0, paths
        assert paths["one band split into a band per thread (whole_jobs)"] > 0, paths
        assert paths["prepare, decode, declined"] > 0, paths  # (residuals, float samples)


def test_the_slice_draws_the_rare_combinations() -> None:
    """The slice's cases hold every image kind, a forced patch size per plane (chroma planes
    of two sizes), deblocked and restored files, residuals, one-row images, several threads on
    both kernel paths, decodes in several user threads at once and tiny bands."""
    cases = [differential.draw_case(SEED, i, MAX_PIXELS, NO_PHOTOS)[0] for i in range(12)]
    assert {c.kind for c in cases} == set(differential.KINDS)
    assert any(c.sides.get(1) != c.sides.get(2) for c in cases if len(c.sides) >= 3)
    assert any(c.options.get("deblock", True) and c.sides for c in cases)
    assert any(c.options.get("restore") for c in cases)
    assert any("max_error" in c.options for c in cases)
    assert any(min(c.height, c.width) == 1 for c in cases)
    decodes = [d for c in cases for d in c.decodes]
    assert {d["compiled"] for d in decodes} == {True, False}
    assert any(d["threads"] > 1 for d in decodes)
    assert any(d["concurrent"] for d in decodes)
    assert any(d["knobs"].get("EXACT_BAND_PIXELS", 1 << 18) < 64 for d in decodes)
