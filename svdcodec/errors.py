"""The one exception the codec raises for bad input, imagecodecs-style."""

from __future__ import annotations


class SvdiError(ValueError):
    """Raised for any invalid, damaged, hostile or unsupported .svdi data or encoder input.

    A ValueError, so that callers who already catch ValueError for bad data keep working.
    """
