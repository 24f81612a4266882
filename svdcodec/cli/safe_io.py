"""File safety shared by the command-line tools.

The rules, because a codec tool is often run over someone's only copy of a photo, and often as
root in a container:

* Never overwrite an existing file unless asked (``force``), never write over the input (also
  when the output is a symlink or hard link to it).
* Never leave half a file behind: a regular file is written to a temporary file in the target
  folder and renamed into place only when complete. A signal that ends the process removes
  that temporary file first (`terminate_on_signals` in the main process, `exit_on_signals` in
  pool workers).
* Never replace what is not a regular file. A character device (``/dev/null``), a FIFO, or an
  open descriptor (``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``, and symlinks to them) is
  written into as it is, as a shell redirection would, with or without ``force``; a terminal,
  a block device, a socket or a folder is refused.
* ``force`` on a symlink to a regular file replaces the file the link points to and keeps the
  link; a dangling symlink is refused (the new file would appear wherever it points).
* ``force`` gives the new file the replaced file's permission bits and owner where the process
  may set them, and says so (a note) where it cannot. Other metadata (ACLs, extended
  attributes, further hard links to the old file) is not carried over.

Inputs are only ever opened for reading.

Test hook: with ``SVDCODEC_TEST_WRITE_PAUSE=SECONDS`` in the environment, a regular-file write
sleeps that long after the data is in the temporary file and before it is renamed into place,
so that tests can send a signal while a temporary file exists.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: The file name that means standard input or standard output.
STDIO = "-"

StrPath = str | os.PathLike[str]

#: Environment variable of the test hook described in the module docstring.
PAUSE_HOOK = "SVDCODEC_TEST_WRITE_PAUSE"


class UnsafeOutput(OSError):
    """Writing the output would destroy data or write where it should not: it exists, it is the
    input, a folder, a terminal, a block device or a dangling symlink."""


class StdoutClosed(Exception):
    """The reader of standard output went away (EPIPE). Not an OSError on purpose: per-file
    error handlers let it through, and the tool ends quietly as `cat` would."""


class Terminated(BaseException):
    """A signal that ends the process (SIGTERM, SIGHUP, SIGQUIT) arrived in the main thread."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        """The conventional exit status of a process ended by this signal."""
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def display(name: StrPath, stdio: str = "<stdin>") -> str:
    """How a file is named in messages ("-" becomes `stdio`). Bytes of a name that are not
    UTF-8 (kept by Python as lone surrogates, which no stream can print) are shown as \\xNN."""
    text = os.fspath(name)
    if text == STDIO:
        return stdio
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def same_file(a: StrPath, b: StrPath) -> bool:
    """True if both names reach the same file (same st_dev and st_ino, symlinks followed)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist, so they cannot be the same file
        return False


# ----------------------------------------------------------------------------- where to write

#: Names of the descriptors a process always has.
_DESCRIPTOR_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
#: /dev/fd/N and /proc/{self,thread-self,PID,PID/task/TID}/fd/N.
_DESCRIPTOR_PATH = re.compile(
    r"/(?:dev/fd|proc/(?:self|thread-self|(\d+)(?:/task/\d+)?)/fd)/(\d+)")
_MAX_SYMLINKS = 40


def _descriptor(name: str) -> int | None:
    """The open descriptor of this process that `name` stands for (/dev/stdout, /dev/fd/N,
    /proc/self/fd/N, directly or through symlinks), else None.

    The links are followed one at a time because the last one, /proc/self/fd/N, is a "magic"
    link to whatever the descriptor holds (a pipe, a terminal, a file opened for appending):
    opening it would start a new open file, rewinding and truncating what the shell set up.
    """
    path = name
    for _ in range(_MAX_SYMLINKS):
        head, tail = os.path.split(os.path.abspath(path))
        path = os.path.join(os.path.realpath(head), tail)  # folders resolved, last part kept
        if path in _DESCRIPTOR_NAMES:
            return _DESCRIPTOR_NAMES[path]
        match = _DESCRIPTOR_PATH.fullmatch(path)
        if match and (match[1] is None or int(match[1]) == os.getpid()):
            return int(match[2])
        try:
            link = os.readlink(path)
        except OSError:  # not a symlink, or missing: a plain path
            return None
        path = os.path.join(os.path.dirname(path), link)
    return None


@dataclass(frozen=True)
class Target:
    """How an output is written, as decided by `check_output`."""

    name: str  # the name given, for messages
    path: str | None  # the file opened or replaced (a symlink's target); None for a descriptor
    descriptor: int | None = None  # an open descriptor written into (standard output, /dev/fd/N)
    stream: bool = False  # written into as it is (descriptor, device, FIFO): no temporary file
    replaces: os.stat_result | None = None  # the regular file that `force` replaces


def _kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISFIFO, "a FIFO")):
        if test(mode):
            return kind
    return "not a regular file"


def _check_not_input(st: os.stat_result, name: str, sources: Iterable[StrPath]) -> None:
    """Refuse an output that is one of the inputs. Only regular files and FIFOs can be: a
    character device read and written (/dev/zero, /dev/null) holds no data to lose."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        return
    for src in sources:
        if os.fspath(src) == STDIO:
            continue
        try:
            other = os.stat(src)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            raise UnsafeOutput(f"output {display(name)} is the input file")


def check_output(dest: StrPath, sources: Iterable[StrPath] = (), *,
                 force: bool = False) -> Target:
    """Decide how `dest` is written (see the module docstring), or raise UnsafeOutput if it
    must not be: it is an input, a folder, a terminal, a block device, a socket, a dangling
    symlink, or (unless `force`) an existing regular file."""
    name = os.fspath(dest)
    sources = list(sources)
    if name == STDIO and not _real_stdout():
        return Target(name, None, descriptor=1, stream=True)
    descriptor = 1 if name == STDIO else _descriptor(name)
    if descriptor is not None:
        try:
            st = os.fstat(descriptor)
        except OSError:
            raise UnsafeOutput(f"output {display(name, '<stdout>')}: descriptor {descriptor} "
                               "is not open") from None
        _check_not_input(st, name, sources)
        if os.isatty(descriptor):
            raise UnsafeOutput(f"output {display(name, '<stdout>')} is a terminal; refusing "
                               "to write binary data to it")
        return Target(name, None, descriptor=descriptor, stream=True)
    try:
        st = os.stat(name)
    except FileNotFoundError:
        if os.path.islink(name):
            raise UnsafeOutput(f"output {display(name)} is a symbolic link to a missing file; "
                               "not writing through it") from None
        return Target(name, name)
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeOutput(f"output {display(name)} is a directory")
    _check_not_input(st, name, sources)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return Target(name, name, stream=True)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeOutput(f"output {display(name)} is {_kind(st.st_mode)}; "
                           "refusing to write to it")
    if not force:
        raise UnsafeOutput(f"output {display(name)} already exists (use --force to overwrite)")
    path = os.path.realpath(name) if os.path.islink(name) else name
    return Target(name, path, replaces=st)


def streams_into(dest: StrPath) -> bool:
    """True if `dest` is written into as it is (standard output, a descriptor, a character
    device, a FIFO) rather than created or replaced as a regular file."""
    name = os.fspath(dest)
    if name == STDIO or _descriptor(name) is not None:
        return True
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


# ----------------------------------------------------------------------------- writing

#: Temporary files being written by this process, removed by a signal that ends it.
_pending: set[str] = set()


def remove_pending() -> None:
    """Remove every temporary file this process is writing (on the way out)."""
    for name in list(_pending):
        try:
            os.unlink(name)
        except OSError:
            pass
        _pending.discard(name)


@functools.cache
def new_file_mode() -> int:
    """Permissions a plainly created file would get (temporary files are created 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cannot_write(name: str, exc: OSError) -> OSError:
    return OSError(exc.errno, f"cannot write {display(name, '<stdout>')}: "
                              f"{exc.strerror or exc}")


def _real_stdout() -> bool:
    """True if sys.stdout writes to descriptor 1 (not an in-memory stream of a test or an
    embedding program)."""
    try:
        return sys.stdout.buffer.fileno() == 1
    except (AttributeError, ValueError):  # io.UnsupportedOperation is a ValueError
        return False


def _write_descriptor(target: Target, data: bytes) -> None:
    """Into an open descriptor, unbuffered, so that nothing is left in a buffer to fail again
    at exit. An in-memory sys.stdout takes "-" through its own buffer."""
    fd = target.descriptor
    assert fd is not None
    try:
        if fd == 1 and os.fspath(target.name) == STDIO and not _real_stdout():
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        if fd == 1:
            sys.stdout.flush()  # text printed before goes first
        _write_all(fd, data)
    except BrokenPipeError:
        raise StdoutClosed from None


def _write_stream(target: Target, data: bytes) -> None:
    """Into a character device or FIFO, opened without creating or truncating anything."""
    assert target.path is not None
    fd = os.open(target.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):  # swapped since check_output
            raise UnsafeOutput(f"output {display(target.name)} changed into "
                               f"{_kind(mode)} while being opened; not written")
        if os.isatty(fd):
            raise UnsafeOutput(f"output {display(target.name)} is a terminal; refusing "
                               "to write binary data to it")
        _write_all(fd, data)
    finally:
        os.close(fd)


def _keep_metadata(fd: int, target: Target) -> list[str]:
    """Set the temporary file's owner and permissions: the replaced file's, or those of a new
    file. Returns a note for each one that could not be kept."""
    old = target.replaces
    if old is None:
        os.fchmod(fd, new_file_mode())
        return []
    notes = []
    new = os.fstat(fd)
    if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
        try:
            os.fchown(fd, old.st_uid, old.st_gid)  # before fchmod: chown clears set-id bits
        except OSError as exc:
            notes.append(f"{display(target.name)}: could not keep owner "
                         f"{old.st_uid}:{old.st_gid} ({exc.strerror or exc}); the new file "
                         f"belongs to {new.st_uid}:{new.st_gid}")
    try:
        os.fchmod(fd, stat.S_IMODE(old.st_mode))
    except OSError as exc:
        notes.append(f"{display(target.name)}: could not keep mode "
                     f"{stat.S_IMODE(old.st_mode):04o} ({exc.strerror or exc})")
    return notes


def publish(tmp: str, dest: Path, force: bool) -> None:
    """Move the finished temporary file to `dest`; without `force`, never replace a file that
    appeared in the meantime (a hard link fails atomically if `dest` exists)."""
    if force:
        try:
            mode = os.lstat(dest).st_mode
        except FileNotFoundError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):  # swapped since check_output: never replace a non-file
            raise UnsafeOutput(f"output {display(dest)} changed into {_kind(mode)} "
                               "while being written; not replaced")
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


def _open_temporary(dest: Path) -> tuple[str, int]:
    """A new 0600 temporary file next to `dest`, registered in _pending before it exists and
    unregistered only if os.open fails. A signal's exception (Terminated, KeyboardInterrupt)
    can arrive after the file is created and before its name is returned: the name then stays
    pending, and the caller's remove_pending() removes the file."""
    for _ in range(100):
        name = str(dest.parent / f".{dest.name}.{os.urandom(4).hex()}.tmp")
        _pending.add(name)
        try:
            return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                                 0o600)
        except FileExistsError:
            _pending.discard(name)
        except OSError:
            _pending.discard(name)
            raise
    raise FileExistsError(errno.EEXIST, "no free temporary file name")


def _write_file(target: Target, data: bytes, force: bool) -> list[str]:
    """Write a regular file completely or not at all: temporary file, then rename."""
    assert target.path is not None
    dest = Path(target.path)
    try:
        tmp, fd = _open_temporary(dest)
    except OSError as exc:
        raise _cannot_write(target.name, exc) from exc
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            pause = os.environ.get(PAUSE_HOOK)
            if pause:
                time.sleep(float(pause))
            notes = _keep_metadata(f.fileno(), target)
            os.fsync(f.fileno())
        publish(tmp, dest, force)
        return notes
    except BaseException as exc:  # including KeyboardInterrupt and Terminated
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and not isinstance(exc, UnsafeOutput):
            raise _cannot_write(target.name, exc) from exc
        raise
    finally:
        _pending.discard(tmp)


def atomic_write(dest: StrPath, data: bytes, sources: Iterable[StrPath] = (), *,
                 force: bool = False) -> list[str]:
    """Write `data` to `dest` after check_output: a regular file completely or not at all, a
    device, FIFO or descriptor by writing into it. Returns notes about metadata that could not
    be kept (see `_keep_metadata`)."""
    target = check_output(dest, sources, force=force)
    if not target.stream:
        return _write_file(target, data, force)
    try:
        if target.descriptor is not None:
            _write_descriptor(target, data)
        else:
            _write_stream(target, data)
    except UnsafeOutput:
        raise
    except OSError as exc:
        raise _cannot_write(target.name, exc) from exc
    return []


def read_input(name: StrPath) -> bytes:
    """All bytes of a file, or of standard input for "-"."""
    if os.fspath(name) == STDIO:
        return sys.stdin.buffer.read()
    with open(name, "rb") as f:
        return f.read()


def write_output(dest: StrPath, data: bytes, sources: Iterable[StrPath] = (), *,
                 force: bool = False) -> list[str]:
    """atomic_write; "-" is standard output."""
    return atomic_write(dest, data, sources, force=force)


# ----------------------------------------------------------------------------- signals

#: Signals that end the process by default and are handled here; SIGINT is Python's
#: KeyboardInterrupt in the main process.
ENDING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT")
                       if hasattr(signal, name))


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM, SIGHUP and SIGQUIT raise Terminated in the main thread, so
    that the same cleanup as for ^C runs: the temporary file is removed (`_write_file`),
    pool workers are stopped. A signal ignored when the block starts (nohup) stays ignored.
    Outside the main thread, where Python cannot set handlers, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for signum in ENDING_SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            saved[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _exit_now(signum: int, frame: object) -> None:
    remove_pending()
    os._exit(128 + signum)


def exit_on_signals() -> None:
    """For a pool worker: a signal that ends the process removes the temporary files being
    written and exits with status 128 + signum at once. SIGINT is ignored: a ^C reaches the
    whole process group, and the parent stops its workers itself (with SIGTERM)."""
    for signum in ENDING_SIGNALS:
        if signal.getsignal(signum) != signal.SIG_IGN:
            signal.signal(signum, _exit_now)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
