"""Wildcards in the tools' file arguments, for shells that pass them on unexpanded.

Windows' cmd.exe and PowerShell hand `svdi-encode *.png` over with the `*` in it; a POSIX
shell does too when the pattern matches nothing or is quoted. An argument that names an
existing file (or is "-") is taken as it is, whatever characters it holds; any other argument
with glob's wildcards (*, ? and [...]) is replaced by the files it matches, in sorted order,
as Python's glob module matches them (a leading * or ? does not match a name starting with a
dot), with ** as a whole path component matching any depth of directories, as in zsh or
bash's globstar (without it, **/*.png would silently leave out the top folder and every
deeper one). A pattern that matches nothing is a usage error that names it, as a shell's
failglob.
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Sequence

WILDCARDS = frozenset("*?[")


def is_pattern(argument: str) -> bool:
    """Whether the argument is taken as a pattern: wildcards in it and no file of its name."""
    return not WILDCARDS.isdisjoint(argument) and not os.path.lexists(argument)


def expand(parser: argparse.ArgumentParser, arguments: Sequence[str]) -> list[str]:
    """The arguments with each pattern replaced by the files it matches, in sorted order."""
    out: list[str] = []
    for argument in arguments:
        if not is_pattern(argument):
            out.append(argument)
            continue
        matches = sorted(glob.glob(argument, recursive=True))
        if not matches:
            parser.error(f"{argument}: no file matches this pattern")
        out.extend(matches)
    return out


def expand_one(parser: argparse.ArgumentParser, argument: str | None) -> str | None:
    """A tool's one file argument (None: not given), its pattern expanded to the one file
    it must match."""
    if argument is None:
        return None
    matches = expand(parser, [argument])
    if len(matches) != 1:
        parser.error(f"{argument}: the pattern matches {len(matches)} files "
                     f"({', '.join(matches[:3])}{', ...' if len(matches) > 3 else ''}); "
                     f"{parser.prog} takes one")
    return matches[0]
