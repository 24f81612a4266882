"""Issue #14, findings 4 and 6: a dead batch worker costs only its file, and no tool prints a
traceback for an I/O error: non-UTF-8 file names, a full standard output (/dev/full), a closed
one (exit 141, quietly, as `cat` would). Real processes, since these are about the process's
own standard streams and its pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import svdcodec
from svdcodec import cli
from svdcodec import format as container
from svdcodec.cli import batch, tools

ROOT = Path(svdcodec.__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"}
#: The children's working folder: not a clone's, whose sources `python -m` would import before
#: the svdcodec these tests import (an installed one, its kernels built)
OUTSIDE = tempfile.gettempdir()
NON_UTF8 = os.fsdecode(b"caf\xe9-\xff.svdi")  # a Latin-1 name: not valid UTF-8


def tool(*args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m svdcodec.cli ARGS` (standard streams captured unless given)."""
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                  "env": ENV, "timeout": 600, "cwd": OUTSIDE, **kwargs}
    return subprocess.run([sys.executable, "-m", "svdcodec", *args],  # type: ignore
                          check=False, **options)


def image(rng: np.random.Generator, shape: tuple[int, ...] = (24, 32, 3)) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def pngs(folder: Path, stem: str, count: int, rng: np.random.Generator) -> list[str]:
    """`count` random images saved as folder/{stem}0.png, {stem}1.png ..., their paths."""
    paths = [str(folder / f"{stem}{i}.png") for i in range(count)]
    for path in paths:
        Image.fromarray(image(rng)).save(path)
    return paths


@pytest.fixture
def svdi(tmp_path: Path) -> Path:
    path = tmp_path / "photo.svdi"
    path.write_bytes(svdcodec.encode(image(np.random.default_rng(2))))
    return path


# ----------------------------------------------------------------------------- finding 4


def test_a_killed_worker_costs_only_its_file(tmp_path: Path) -> None:
    inputs = pngs(tmp_path, "f", 6, np.random.default_rng(4))
    out = tmp_path / "out"
    run = tool("encode", *inputs, "-d", str(out), "-j", "2", "--quiet",
               env={**ENV, batch.KILL_HOOK: "f2.png"})
    err = run.stderr.decode()
    assert run.returncode == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == [f"f{i}.svdi" for i in (0, 1, 3, 4, 5)]
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"svdi-encode: {inputs[2]}: ")
    assert lines[1] == "svdi-encode: 1 of 6 files failed"
    assert "worker process died" in lines[0]
    for i in (0, 1, 3, 4, 5):  # the survivors are the files a serial run writes
        expected = svdcodec.encode(np.asarray(Image.open(inputs[i])))
        assert (out / f"f{i}.svdi").read_bytes() == expected


def test_lost_files_are_reported_after_the_others(tmp_path: Path) -> None:
    """In-process: the batch runner yields the lost file's line last, after a bad file's."""
    names = pngs(tmp_path, "g", 4, np.random.default_rng(5))
    (tmp_path / "g9.png").write_bytes(b"not an image")
    names.append(str(tmp_path / "g9.png"))
    jobs = [tools.EncodeJob(n, str(Path(n).with_suffix(".svdi"))) for n in names]
    os.environ[batch.KILL_HOOK] = "g1.png"
    try:
        results = list(batch.run(tools.encode_one, jobs, 2, names,
                                 batch.progress_for(len(jobs), quiet=True),
                                 tools.rerun_for(jobs)))
    finally:
        del os.environ[batch.KILL_HOOK]
    failures = [r.message for r in results if not r.ok]
    assert len(results) == 5 and len(failures) == 2
    assert failures[-1].startswith(f"{names[1]}: the worker process died")
    assert failures[0].startswith(f"{names[4]}: ")


def test_a_job_run_again_replaces_only_the_output_the_batch_made(tmp_path: Path) -> None:
    """A job whose pool broke may have written its file already: run again, it replaces an
    output that did not exist when the batch started, and no other."""
    made, kept = tmp_path / "made.svdi", tmp_path / "kept.svdi"
    kept.write_bytes(b"the user's file")
    jobs = [tools.EncodeJob("a.png", str(made)), tools.EncodeJob("b.png", str(kept))]
    again = tools.rerun_for(jobs)
    made.write_bytes(b"written by the first run")
    assert again(jobs[0]).force and not again(jobs[1]).force
    assert again(replace(jobs[1], force=True)).force


# ----------------------------------------------------------------------------- finding 6


def test_non_utf8_names_are_printed_escaped(svdi: Path, tmp_path: Path) -> None:
    odd = tmp_path / NON_UTF8
    odd.write_bytes(svdi.read_bytes())
    shown = os.fsencode(str(odd)).decode("utf-8", "backslashreplace")
    text = tool("info", str(odd))
    assert text.returncode == 0 and b"Traceback" not in text.stderr
    assert text.stdout.decode().startswith(f"{shown}: .svdi format version")
    as_json = tool("info", "--json", str(odd))
    assert as_json.returncode == 0
    assert os.fsencode(json.loads(as_json.stdout)["file"]) == os.fsencode(str(odd))
    odd_png = tmp_path / (NON_UTF8 + ".source.png")
    Image.fromarray(svdcodec.decode(svdi.read_bytes())).save(odd_png)
    for args, status in ((["info", str(tmp_path / NON_UTF8) + ".missing"], 1),
                         (["encode", str(odd_png), "-o", str(odd) + ".out", "-v"], 0),
                         (["decode", str(odd), "-o", str(odd) + ".png", "-v"], 0),
                         (["compare", str(odd_png), "--no-bd", "-q", "50"], 0),
                         (["compare", str(tmp_path / NON_UTF8) + ".missing"], 1)):
        run = tool(*args)
        assert b"Traceback" not in run.stderr and run.returncode == status, (args, run.stderr)
    decoded = tool("decode", str(odd), "-o", str(tmp_path / "y.png"), "-v")
    assert decoded.stderr.decode().startswith(shown)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [["info", "{svdi}"], ["info", "--json", "{svdi}"],
                                  ["encode", "{png}", "-o", "-"], ["decode", "{svdi}", "-o", "-"],
                                  ["encode", "{png}", "-o", "/dev/stdout"],
                                  ["compare", "{png}", "--no-bd", "-q", "50"],
                                  ["info", "--version"]])
def test_a_full_stdout_is_one_line_and_status_1(args: list[str], svdi: Path,
                                                tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    Image.fromarray(svdcodec.decode(svdi.read_bytes())).save(png)
    with open("/dev/full", "wb") as full:
        run = tool(*[a.format(svdi=svdi, png=png) for a in args], stdout=full)
    err = run.stderr.decode().splitlines()
    assert run.returncode == 1 and len(err) == 1, run.stderr
    assert "No space left on device" in err[0] and err[0].startswith("svdi-")


@pytest.mark.parametrize("args", [["info", "-v", "{many}"], ["encode", "{png}", "-o", "-"],
                                  ["decode", "{svdi}", "-o", "-"],
                                  ["compare", "{png}", "--no-bd", "-q", "50"]])
def test_a_closed_stdout_ends_quietly_with_141(args: list[str], svdi: Path,
                                               tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    Image.fromarray(svdcodec.decode(svdi.read_bytes())).save(png)
    copies = []
    for i in range(3):
        copies.append(str(tmp_path / f"c{i}.svdi"))
        Path(copies[-1]).write_bytes(svdi.read_bytes())
    argv = []
    for a in args:
        argv += copies if a == "{many}" else [a.format(svdi=svdi, png=png)]
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte: every write is EPIPE
    try:
        run = tool(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert run.returncode == tools.CLOSED_PIPE_STATUS
    assert run.stderr == b""


def test_in_process_info_survives_unprintable_names(svdi: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    odd = tmp_path / NON_UTF8
    odd.write_bytes(svdi.read_bytes())
    assert cli.info_main([str(odd)]) == 0
    assert "caf\\xe9-\\xff.svdi: .svdi format version" in capsys.readouterr().out
    assert cli.info_main([str(odd) + "x"]) == 1
    assert "caf\\xe9-\\xff.svdix: No such file" in capsys.readouterr().err


def test_encode_to_stdout_still_streams(tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    Image.fromarray(image(np.random.default_rng(9))).save(png)
    run = tool("encode", str(png), "-o", "-", "--quiet")
    assert run.returncode == 0 and run.stdout.startswith(container.SIGNATURE)
    assert run.stdout == svdcodec.encode(np.asarray(Image.open(png)))


@pytest.mark.parametrize("error", [SyntaxError("broken PNG file"), TypeError("Missing dimensions"),
                                   IndexError("tuple index out of range")])
def test_pillow_errors_on_damaged_inputs_are_one_line(error: Exception, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Pillow's readers raise more than OSError on some damaged files (a PNG chunk whose CRC
    fails is a SyntaxError, a TIFF without its size tags a TypeError): svdi-encode reports the
    file in one line with status 1 and goes on with the others, no traceback."""
    bad, good = tmp_path / "bad.png", tmp_path / "good.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(bad)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(good)
    real_open = Image.open

    def damaged_open(fp, *args, **kwargs):
        if hasattr(fp, "getvalue") and fp.getvalue() == bad.read_bytes():
            raise error
        return real_open(fp, *args, **kwargs)
    monkeypatch.setattr(Image, "open", damaged_open)
    status = cli.encode_main([str(bad), str(good), "-d", str(tmp_path / "out"), "-j", "1"])
    captured = capsys.readouterr()
    assert status == 1
    assert f"damaged image file ({type(error).__name__}" in captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "out" / "good.svdi").exists() and not (tmp_path / "out" / "bad.svdi").exists()


def test_verbose_encode_names_the_tools_not_used(tmp_path: Path) -> None:
    """--aq and --restore are 8-bit tools: a 16-bit image is written without them, and -v says
    so instead of leaving the user to find out from the file's version."""
    deep = tmp_path / "deep.npy"
    np.save(deep, np.random.default_rng(3).integers(0, 65535, (24, 40, 3)).astype(np.uint16))
    options = {"aq": True, "restore": True}
    result = tools.encode_one(tools.EncodeJob(str(deep), str(tmp_path / "deep.svdi"), options,
                                              verbose=True))
    assert result.ok and "not used: --aq" in result.message and "--restore" in result.message
    photo = tmp_path / "photo.png"
    Image.open(svdcodec.__path__[0] + "/data/sample.png").convert("RGB").save(photo)
    result = tools.encode_one(tools.EncodeJob(str(photo), str(tmp_path / "photo.svdi"),
                                              {"aq": True}, verbose=True))
    assert result.ok and "not used" not in result.message


#: EXIF structures of valid files (spec §1.1 checks their byte order and size) on which
#: Pillow's TIFF writer raises AttributeError or TypeError (a hostile-input review's finds).
ODD_EXIF = [
    ("4d4d002a000000080006013100050000000200000000012800ff000003d1000000af012800050000000000"
     "000010d6ac000c000000d000000000012800ff00000002000000088769000e800000000000001a0000000000"
     "9010852b5c81e5de9c33981bf459826a4015cc059801c3ae318352662559c1"),
    ("4d4d002a0000000800040100000a000000010000001a41d0000b0000000400000000927c00ff0000032b00"
     "000008010100050000016200000010800000003415a89c5b40d3a2910b7e0ea2f41968cc32e1cffc67e536"
     "625983860322"),
    # Orientation 6 and a rational Software (tag 0x0131, text): the orientation is kept
    "4d4d002a000000080002011200030000000100060000013100050000000100000026000000000000000100000002",
]


@pytest.mark.parametrize("exif", ODD_EXIF, ids=["rational-as-text", "float-as-integer",
                                                "turned-rational-as-text"])
def test_an_exif_the_writer_fails_on_is_left_out_with_one_line(
        exif: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """svdi-decode writes the picture without a piece of metadata its output's writer fails
    on (an EXIF's orientation alone where it has one, so the picture still shows upright),
    and says so in the file's line; the batch goes on (before: a traceback that stopped it,
    for any TIFF output, the default of a float image)."""
    rgb = (np.arange(8 * 8 * 3) % 251).astype(np.uint8).reshape(8, 8, 3)
    grey = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    for name, pixels in (("odd", rgb), ("odd-float", grey)):
        (tmp_path / f"{name}.svdi").write_bytes(svdcodec.encode(pixels, exif=bytes.fromhex(exif)))
    (tmp_path / "plain.svdi").write_bytes(svdcodec.encode(rgb))
    capsys.readouterr()
    assert cli.decode_main([str(tmp_path / n) for n in ("odd.svdi", "odd-float.svdi",
                                                          "plain.svdi")]
                           + ["--format", "tiff", "-d", str(tmp_path / "out"), "-j", "1"]) == 0
    captured = capsys.readouterr()  # (the file lines go to stderr when no file is stdout)
    lines = (captured.out + captured.err).splitlines()
    assert "Traceback" not in captured.err and len(lines) == 3, lines
    turned = ODD_EXIF.index(exif) == 2
    said = "only its orientation (6) written" if turned else "not written"
    assert all("the file's exif: the TIFF writer failed on it" in line and line.endswith(said)
               for line in lines[:2]), lines
    for name in ("odd", "odd-float", "plain"):
        with Image.open(tmp_path / "out" / f"{name}.svdi.tiff") as im:
            kept = dict(im.getexif())
            assert im.size == (8, 8) and 0x8769 not in kept and 0x0131 not in kept
            assert kept.get(0x0112) == (6 if turned and name != "plain" else None)
