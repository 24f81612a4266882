"""File safety shared by the command-line tools.

The rules, because a codec tool is often run over someone's only copy of a photo:
never overwrite an existing file unless asked (``force``), never write over the input (also
when the output is a symlink or hard link to it), never leave half a file behind: data goes to
a temporary file in the target folder and is renamed into place only when complete.
Inputs are only ever opened for reading.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: The file name that means standard input or standard output.
STDIO = "-"

StrPath = str | os.PathLike[str]


class UnsafeOutput(OSError):
    """Writing the output would destroy data: it exists, it is the input, or a folder."""


def display(name: StrPath, stdio: str = "<stdin>") -> str:
    """How a file is named in messages ("-" becomes `stdio`)."""
    return stdio if os.fspath(name) == STDIO else os.fspath(name)


def same_file(a: StrPath, b: StrPath) -> bool:
    """True if both names reach the same file (same st_dev and st_ino, symlinks followed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist, so they cannot be the same file
        return False


def check_output(dest: StrPath, sources: Iterable[StrPath] = (), *, force: bool = False) -> None:
    """Raise UnsafeOutput if writing `dest` would clobber an input, a folder or, unless
    `force`, any existing file (a dangling symlink counts as existing)."""
    if os.path.isdir(dest):
        raise UnsafeOutput(f"output {display(dest)} is a directory")
    for src in sources:
        if os.fspath(src) != STDIO and same_file(src, dest):
            raise UnsafeOutput(f"output {display(dest)} is the input file")
    if not force and os.path.lexists(dest):
        raise UnsafeOutput(f"output {display(dest)} already exists (use --force to overwrite)")


@functools.cache
def _new_file_mode() -> int:
    """Permissions a plainly created file would get (temporary files are created 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _publish(tmp: str, dest: Path, force: bool) -> None:
    """Move the finished temporary file to `dest`; without `force`, never replace a file that
    appeared in the meantime (a hard link fails atomically if `dest` exists)."""
    if force:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise UnsafeOutput(f"output {display(dest)} already exists (use --force to overwrite)") \
            from None
    except OSError:  # file system without hard links: check, then rename
        if os.path.lexists(dest):
            raise UnsafeOutput(f"output {display(dest)} already exists "
                               "(use --force to overwrite)") from None
        os.replace(tmp, dest)
    else:
        os.unlink(tmp)


def atomic_write(dest: StrPath, data: bytes, sources: Iterable[StrPath] = (), *,
                 force: bool = False) -> None:
    """Write `data` to `dest` completely or not at all, after check_output."""
    dest = Path(dest)
    check_output(dest, sources, force=force)
    try:
        tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.",
                                          suffix=".tmp", delete=False)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, _new_file_mode())
        _publish(tmp.name, dest, force)
    except BaseException as exc:  # including KeyboardInterrupt: leave no temporary file
        try:
            os.unlink(tmp.name)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, UnsafeOutput):
            raise OSError(exc.errno, f"cannot write {dest}: {exc.strerror or exc}") from exc
        raise


def read_input(name: StrPath) -> bytes:
    """All bytes of a file, or of standard input for "-"."""
    if os.fspath(name) == STDIO:
        return sys.stdin.buffer.read()
    with open(name, "rb") as f:
        return f.read()


def write_output(dest: StrPath, data: bytes, sources: Iterable[StrPath] = (), *,
                 force: bool = False) -> None:
    """atomic_write, or standard output for "-"."""
    if os.fspath(dest) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        atomic_write(dest, data, sources, force=force)
