"""Shared pytest configuration: Hypothesis profiles.

HYPOTHESIS_PROFILE=thorough runs 1,000 examples per property; the default profile runs 50 so
that the normal suite stays fast. Tests that pin max_examples themselves keep their own count.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("fast", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))
