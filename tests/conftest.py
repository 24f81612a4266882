"""Shared pytest configuration: Hypothesis profiles, and which kernels the suite runs.

HYPOTHESIS_PROFILE=thorough runs 1,000 examples per property; the default profile runs 50 so
that the normal suite stays fast. Tests that pin max_examples themselves keep their own count.

The suite runs the path a user's install runs: the C kernels where they are built, else numpy.
SVDCODEC_KERNELS=0 runs it on the numpy path; SVDCODEC_REQUIRE_KERNELS=1 makes a missing C
extension a failure (tests/test_kernels.py). CI runs both paths (.ci/run); test_kernels.py
compares the two itself in either run. The report says which path ran and which svdcodec was
imported: in its header, and (the header is hidden by the -q of pyproject.toml) in a line just
before the final summary.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import settings

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The C kernels' module, with SVDCODEC_KERNELS=1 for the test (for modules marked
    support.NEEDS_KERNELS)."""
    from svdcodec.runtime import kernels

    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    module = kernels.get()
    assert module is not None
    return module


def pytest_report_header() -> str:
    return _kernels_line()


def _kernels_line() -> str:
    import svdcodec
    from svdcodec.runtime import kernels

    return (f"svdcodec kernels: {kernels.backend()} "
            f"(SVDCODEC_KERNELS={os.environ.get('SVDCODEC_KERNELS', '')!r}; "
            f"{os.path.dirname(svdcodec.__file__)})")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(_kernels_line())
