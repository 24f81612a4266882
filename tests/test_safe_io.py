"""Issue #14, findings 3, 5 and 10 (-o DIR/): the CLI only ever writes the file it was asked to.

Devices, FIFOs and descriptors are written into and never replaced; --force keeps the replaced
file's mode and owner and writes through a symlink instead of replacing it; -o DIR/ is a
folder or an error; a signal that ends the process removes its temporary file.

Device nodes that --force could damage are private copies made with mknod in tmp_path, never
the system's: if this code regressed, only those copies would be replaced.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec import cli
from svdcodec.cli import safe_io

ROOT = Path(svdcodec.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
#: The children's working folder: not a clone's, whose sources `python -m` would import before
#: the svdcodec these tests import (an installed one, its kernels built)
OUTSIDE = tempfile.gettempdir()


@pytest.fixture
def png(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    path = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(path)
    return path


def encoded(png: Path) -> bytes:
    """What svdi-encode writes for `png` with default options."""
    return svdcodec.encode(np.asarray(Image.open(png)))


def null_device(folder: Path) -> Path:
    """A private character device that behaves as /dev/null (root), else /dev/null itself,
    which a process without root cannot replace anyway."""
    node = folder / "null"
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        with open(node, "wb") as f:  # a file system mounted nodev refuses to open it
            f.write(b"x")
    except OSError:
        if node.exists():
            node.unlink()
        return Path(os.devnull)
    return node


def is_char_device(path: Path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- devices, FIFOs


def test_dev_null_needs_no_force_and_stays_a_device(png: Path) -> None:
    assert cli.encode_main([str(png), "-o", os.devnull, "--quiet"]) == 0
    assert is_char_device(Path(os.devnull))
    svdi = png.with_suffix(".svdi")
    svdi.write_bytes(encoded(png))
    assert cli.decode_main([str(svdi), "-o", os.devnull, "--quiet"]) == 0  # --format png
    assert is_char_device(Path(os.devnull))


@pytest.mark.parametrize("force", [False, True])
def test_a_character_device_is_written_into_never_replaced(png: Path, tmp_path: Path,
                                                           force: bool) -> None:
    node = null_device(tmp_path)
    link = tmp_path / "to-null"
    link.symlink_to(node)
    for dest in (node, link):
        assert cli.encode_main([str(png), "-o", str(dest), "--quiet",
                                *(["--force"] if force else [])]) == 0
    assert is_char_device(node) and link.is_symlink() and os.readlink(link) == str(node)
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("tool", ["encode", "decode"])
def test_a_fifo_reader_gets_the_whole_stream(png: Path, tmp_path: Path, tool: str) -> None:
    data = encoded(png)
    svdi = tmp_path / "in.svdi"
    svdi.write_bytes(data)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    src = png if tool == "encode" else svdi
    status = cli.main([tool, str(src), "-o", str(fifo), "--force", "--quiet"])
    reader.join(timeout=60)
    assert status == 0 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    if tool == "encode":
        assert received == [data]
    else:  # a PNG of the decoded pixels: the FIFO has no suffix, so --format's default
        decoded = np.asarray(Image.open(__import__("io").BytesIO(received[0])))
        assert np.array_equal(decoded, svdcodec.decode(data))


def test_dev_stdout_is_written_where_the_shell_pointed_it(png: Path, tmp_path: Path) -> None:
    """-o /dev/stdout, and a symlink to it, write into descriptor 1 at its offset: a file
    opened for appending keeps what it had, and the link stays a link."""
    log = tmp_path / "log.bin"
    log.write_bytes(b"before")
    link = tmp_path / "out.svdi"
    link.symlink_to("/dev/stdout")
    for dest in ("/dev/stdout", str(link)):
        with open(log, "ab") as out:
            run = subprocess.run([sys.executable, "-m", "svdcodec", "encode", str(png),
                                  "-o", dest, "--force", "--quiet"],
                                 stdout=out, stderr=subprocess.PIPE, env=ENV, timeout=300,
                                 check=False, cwd=OUTSIDE)
        assert run.returncode == 0, run.stderr
    data = encoded(png)
    assert log.read_bytes() == b"before" + data + data
    assert link.is_symlink() and os.readlink(link) == "/dev/stdout"


def test_terminal_block_device_and_socket_are_refused(png: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    primary, secondary = os.openpty()
    try:
        assert cli.encode_main([str(png), "-o", os.ttyname(secondary), "--force"]) == 1
        assert "is a terminal" in capsys.readouterr().err
    finally:
        os.close(primary)
        os.close(secondary)
    sock_path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert cli.encode_main([str(png), "-o", str(sock_path), "--force"]) == 1
        assert "is a socket" in capsys.readouterr().err
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    block = tmp_path / "block"
    try:  # a device number that no driver claims: nothing to damage even if it were opened
        os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(240, 77))
    except OSError:
        return
    assert cli.encode_main([str(png), "-o", str(block), "--force"]) == 1
    assert "is a block device" in capsys.readouterr().err
    assert stat.S_ISBLK(os.lstat(block).st_mode)


# ----------------------------------------------------------------------------- symlinks, --force


def test_force_writes_through_a_symlink_and_keeps_it(png: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "kept.svdi"
    target.write_bytes(b"old")
    link = tmp_path / "link.svdi"
    link.symlink_to(target)
    assert cli.encode_main([str(png), "-o", str(link)]) == 1  # exists: needs --force
    assert "already exists" in capsys.readouterr().err and target.read_bytes() == b"old"
    assert cli.encode_main([str(png), "-o", str(link), "--force", "--quiet"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == encoded(png)
    assert not leftovers(tmp_path) and not leftovers(tmp_path / "real")


@pytest.mark.parametrize("force", [False, True])
def test_a_dangling_symlink_is_refused(png: Path, tmp_path: Path, force: bool,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "dangling.svdi"
    link.symlink_to(tmp_path / "nowhere" / "x.svdi")
    assert cli.encode_main([str(png), "-o", str(link), *(["--force"] if force else [])]) == 1
    assert "symbolic link to a missing file" in capsys.readouterr().err
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_force_keeps_another_users_owner_and_mode(png: Path, tmp_path: Path) -> None:
    victim = tmp_path / "theirs.svdi"
    victim.write_bytes(b"old")
    os.chown(victim, 12345, 23456)
    os.chmod(victim, 0o600)
    assert cli.encode_main([str(png), "-o", str(victim), "--force", "--quiet"]) == 0
    st = os.stat(victim)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (12345, 23456, 0o600)
    assert victim.read_bytes() == encoded(png)


def test_force_says_when_it_cannot_keep_the_owner(png: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "theirs.svdi"
    victim.write_bytes(b"old")
    os.chmod(victim, 0o640)
    mine = os.stat(victim)
    real_stat = os.stat

    def foreign_owner(path: str, *args: object, **kwargs: object) -> os.stat_result:
        st = real_stat(path, *args, **kwargs)  # type: ignore[arg-type]
        if os.fspath(path) == str(victim):
            fields = list(st)
            fields[4] = mine.st_uid + 1  # st_uid: someone else's file
            return os.stat_result(fields)
        return st

    def refused(fd: int, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "stat", foreign_owner)
    monkeypatch.setattr(os, "fchown", refused)
    assert cli.encode_main([str(png), "-o", str(victim), "--force", "--quiet"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "could not keep owner" in err[0] and "not permitted" in err[0]
    assert stat.S_IMODE(real_stat(victim).st_mode) == 0o640  # the mode was kept
    assert victim.read_bytes() == encoded(png)


def test_new_files_get_the_umask_mode(png: Path, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        assert cli.encode_main([str(png), "-o", str(tmp_path / "new.svdi"), "--quiet"]) == 0
    finally:
        os.umask(old)
    safe_io.new_file_mode.cache_clear()  # cached per process: the test changed the umask
    assert stat.S_IMODE(os.stat(tmp_path / "new.svdi").st_mode) in (0o640, 0o644)


# ----------------------------------------------------------------------------- -o DIR


def test_output_folder_gets_the_default_name(png: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert cli.encode_main([str(png), "-o", str(out), "--quiet"]) == 0
    assert cli.encode_main([str(png), "-o", f"{out}/", "--quiet", "--force"]) == 0
    assert (out / "photo.svdi").read_bytes() == encoded(png)
    assert cli.decode_main([str(out / "photo.svdi"), "-o", f"{out}/", "--quiet"]) == 0
    assert Image.open(out / "photo.svdi.png").size == (56, 40)
    second = tmp_path / "second.png"
    second.write_bytes(png.read_bytes())
    assert cli.encode_main([str(png), str(second), "-o", str(out), "--force", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo.svdi", "photo.svdi.png", "second.svdi"]


def test_missing_output_folder_is_an_error_not_a_file(png: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    assert cli.encode_main([str(png), "-o", f"{tmp_path / 'newdir'}/"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "newdir/ does not exist" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ----------------------------------------------------------------------------- signals


def scaled(seconds: float) -> float:
    """A wait for a child process: `seconds` times the machine's load per CPU where that is
    above 1 (a machine shared with other jobs runs the child that much slower), times
    $SVDCODEC_TEST_TIMEOUT_SCALE where set (a slow emulator, a sanitizer build)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * max(1.0, load) * float(os.environ.get("SVDCODEC_TEST_TIMEOUT_SCALE", "1"))


def _wait_for(predicate: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


#: A shell without job control (a script's `pytest ... &`) starts its background commands
#: with SIGINT and SIGQUIT ignored, and a child inherits that: Python then installs no
#: KeyboardInterrupt handler and the CLI leaves an ignored SIGQUIT ignored
#: (safe_io.terminate_on_signals), so the signal the test sends would do nothing.
INHERITED_IGNORED = (signal.SIGINT, signal.SIGQUIT)


def spawn_with_default_signals(args: list[str], **options: Any) -> subprocess.Popen[str]:
    """Popen with SIGINT and SIGQUIT at their defaults in the child, however this process
    was started: exec resets a signal this process handles (not one it ignores) to its
    default, so each is handled here while the child starts (SIGINT by Python's own
    handler), and put back after. preexec_fn would do it in the child, but is not safe with
    the threads numpy's BLAS runs."""
    saved = {signum: signal.getsignal(signum) for signum in INHERITED_IGNORED}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
    try:
        return subprocess.Popen(args, **options)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_child_gets_default_signals_when_this_process_ignores_them() -> None:
    """The helper's point: with SIGINT and SIGQUIT ignored here (as under `pytest &` in a
    script), the child still has them at their defaults."""
    probe = ("import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
             " signal.getsignal(signal.SIGQUIT) == signal.SIG_DFL)")
    saved = {signum: signal.signal(signum, signal.SIG_IGN) for signum in INHERITED_IGNORED}
    try:
        ignoring = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                  text=True, check=True)
        child = spawn_with_default_signals([sys.executable, "-c", probe],
                                           stdout=subprocess.PIPE, text=True)
        out, _ = child.communicate(timeout=scaled(60))
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert ignoring.stdout.split() == ["False", "False"]  # what a plain Popen gives then
    assert out.split() == ["True", "True"]
    assert {signum: signal.getsignal(signum) for signum in INHERITED_IGNORED} == saved


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT,
                                    signal.SIGQUIT])
def test_a_signal_mid_write_removes_the_temporary_file(png: Path, tmp_path: Path,
                                                       signum: int) -> None:
    out = tmp_path / "out.svdi"
    pause = scaled(120)  # the child waits with its temporary file written for the signal
    proc = spawn_with_default_signals(
        [sys.executable, "-m", "svdcodec", "encode", str(png), "-o", str(out)],
        stderr=subprocess.PIPE, text=True, env={**ENV, safe_io.PAUSE_HOOK: str(pause)},
        cwd=OUTSIDE)
    try:
        _wait_for(lambda: leftovers(tmp_path) or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=scaled(120))
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum
    assert not leftovers(tmp_path) and not out.exists()
    assert "Traceback" not in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("interrupt", [safe_io.Terminated(signal.SIGTERM), KeyboardInterrupt()])
def test_a_signal_just_after_the_temporary_file_appears_removes_it(
        png: Path, tmp_path: Path, interrupt: BaseException,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal between the temporary file's creation and the write's own cleanup (seen once
    in CI on a loaded machine: the test above signalled as soon as the file appeared): the
    file is removed on the way out all the same, from the registry of pending files."""
    real_open_temporary = safe_io._open_temporary

    def open_then_signal(dest: Path) -> tuple[str, int]:
        _, fd = real_open_temporary(dest)
        os.close(fd)
        raise interrupt
    monkeypatch.setattr(safe_io, "_open_temporary", open_then_signal)
    status = cli.encode_main([str(png), "-o", str(tmp_path / "out.svdi")])
    expected = 130 if isinstance(interrupt, KeyboardInterrupt) else 128 + signal.SIGTERM
    assert status == expected
    assert not leftovers(tmp_path) and not (tmp_path / "out.svdi").exists()


@pytest.mark.parametrize("interrupt", [safe_io.Terminated(signal.SIGTERM), KeyboardInterrupt()])
def test_a_signal_as_the_temporary_file_is_created_removes_it(
        png: Path, tmp_path: Path, interrupt: BaseException,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A signal whose handler runs right after os.open created the file, before
    _open_temporary returns its name (seen in CI on a loaded machine)."""
    real_open = os.open

    def create_then_signal(name: str, *args: Any, **kwargs: Any) -> int:
        fd = real_open(name, *args, **kwargs)
        if name.endswith(".tmp"):
            os.close(fd)
            raise interrupt
        return fd
    monkeypatch.setattr(safe_io.os, "open", create_then_signal)
    status = cli.encode_main([str(png), "-o", str(tmp_path / "out.svdi")])
    monkeypatch.undo()
    expected = 130 if isinstance(interrupt, KeyboardInterrupt) else 128 + signal.SIGTERM
    assert status == expected
    assert not leftovers(tmp_path) and not (tmp_path / "out.svdi").exists()


def test_a_signal_to_a_batch_removes_every_workers_temporary_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    inputs = []
    for i in range(4):
        inputs.append(str(tmp_path / f"in{i}.png"))
        Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8)).save(inputs[-1])
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "svdcodec", "encode", *inputs, "-d",
                             str(out), "-j", "2"], stderr=subprocess.PIPE, text=True,
                            env={**ENV, safe_io.PAUSE_HOOK: str(scaled(120))}, cwd=OUTSIDE)
    try:
        _wait_for(lambda: (out.is_dir() and len(leftovers(out)) == 2)
                  or proc.poll() is not None)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=scaled(120))
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert not out.exists()  # no temporary file left, so the folder -d made is removed too
    assert "Traceback" not in err
