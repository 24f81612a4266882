"""Shared pytest configuration: Hypothesis profiles, and the numpy path by default.

HYPOTHESIS_PROFILE=thorough runs 1,000 examples per property; the default profile runs 50 so
that the normal suite stays fast. Tests that pin max_examples themselves keep their own count.

The suite runs the numpy reference path unless SVDCODEC_KERNELS is set: CI runs it twice, once
as it is and once with SVDCODEC_KERNELS=1 SVDCODEC_REQUIRE_KERNELS=1 (the whole suite on the C
kernels, which must then be built); tests/test_kernels.py compares the two paths itself in
either run. The header of pytest's report says which path the run takes.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
os.environ.setdefault("SVDCODEC_KERNELS", "0")


def pytest_report_header() -> str:
    from svdcodec import kernels

    return (f"svdcodec kernels: {kernels.backend()} "
            f"(SVDCODEC_KERNELS={os.environ['SVDCODEC_KERNELS']})")
