"""The command-line tools, run in-process through their main(argv), plus one real subprocess."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

import svdcodec
from svdcodec import cli
from svdcodec import format as container
from svdcodec.cli import batch, photos, safe_io
from svdcodec.cli import compare as compare_cli

H, W = 23, 37


def rgb() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    noise = np.random.default_rng(3).normal(0, 4, (H, W, 3))
    return np.clip(np.stack([40 + 5 * x, 30 + 8 * y, 120 + 2 * (x - y)], -1) + noise,
                   0, 255).astype(np.uint8)


@pytest.fixture
def png(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(rgb()).save(path)
    return path


@pytest.fixture
def svdi(png: Path) -> Path:
    assert cli.encode_main([str(png), "--quiet"]) == 0
    return png.with_suffix(".svdi")


def leftovers(folder: Path) -> list[str]:
    """Temporary files a failed write might have left behind."""
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ----------------------------------------------------------------------------- encode/decode


def test_encode_decode_round_trip_with_default_names(png: Path) -> None:
    assert cli.encode_main([str(png), "-q", "90"]) == 0
    # The decoder's default output is the input's whole name + .png: never the photo.png the
    # .svdi came from.
    assert cli.decode_main([str(png.with_suffix(".svdi"))]) == 0
    back = np.asarray(Image.open(png.with_suffix(".svdi.png")))
    assert back.shape == (H, W, 3)
    assert np.abs(back.astype(int) - rgb().astype(int)).mean() < 3


def test_encode_options_reach_the_encoder(png: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.svdi"
    assert cli.encode_main([str(png), "-o", str(out), "--rank", "2", "--layout", "plain"]) == 0
    _, planes = container.read_headers(io.BytesIO(out.read_bytes()))
    assert [p.rank for p in planes] == [2, 2, 2]
    small = tmp_path / "small.svdi"
    assert cli.encode_main([str(png), "-o", str(small), "--max-bytes", "1500"]) == 0
    assert small.stat().st_size <= 1500


def test_rank_zero_means_what_it_means_to_encode(png: Path, tmp_path: Path) -> None:
    """--rank 0 is rank=0 (it was refused: "0 is outside [1, inf]"): with --lossless the file
    is the residual alone, byte for byte encode's."""
    out = tmp_path / "residual.svdi"
    assert cli.encode_main([str(png), "-o", str(out), "--rank", "0", "--lossless"]) == 0
    assert out.read_bytes() == svdcodec.encode(rgb(), rank=0, max_error=0)
    assert cli.encode_main([str(png), "-o", str(out), "-f", "--rank", "-1"]) == 2


def test_decode_components_preview_and_format(svdi: Path, tmp_path: Path) -> None:
    full, preview = tmp_path / "full.npy", tmp_path / "one.tiff"
    assert cli.decode_main([str(svdi), "-o", str(full)]) == 0
    assert cli.decode_main([str(svdi), "-o", str(preview), "--components", "1"]) == 0
    assert np.array_equal(np.load(full), svdcodec.decode(svdi.read_bytes()))
    assert np.array_equal(np.asarray(Image.open(preview)),
                          svdcodec.decode(svdi.read_bytes(), components=1))



#: In a fresh interpreter: the output formats the tools find for common suffixes before
#: Pillow has imported all its plugins, then every suffix's format once it has.
OUTPUT_FORMATS = """
import json, sys
from PIL import Image
from svdcodec.cli import tools
early = {s: tools._output_format(s) for s in (".svdi", ".png", ".jpg", ".jpeg", ".gif")}
partial = "PIL.TiffImagePlugin" not in sys.modules
steps = [dict(Image.EXTENSION)]
Image.preinit()
steps.append(dict(Image.EXTENSION))
full = Image.registered_extensions()
print(json.dumps({"early": early, "partial": partial, "steps": steps, "full": full,
                  "writers": sorted(Image.SAVE), "late": tools._output_format(".tiff")}))
"""


def test_output_format_found_without_importing_every_plugin() -> None:
    """The tools' check of an output suffix finds .svdi, PNG and JPEG among the plugins
    already imported or Pillow's common ones, without the few dozen imports of all of them,
    and gives what the full registry gives: no later plugin maps a suffix an earlier one has."""
    out = subprocess.run([sys.executable, "-c", OUTPUT_FORMATS], capture_output=True,
                         text=True, check=True)
    found = json.loads(out.stdout)
    assert found["partial"]
    full, writers = found["full"], set(found["writers"])
    for step in found["steps"]:
        assert all(full[suffix] == fmt for suffix, fmt in step.items())
    for suffix, fmt in found["early"].items():
        assert fmt == (full[suffix] if full[suffix] in writers else None)
    assert found["early"][".svdi"] == "SVDI" and found["early"][".png"] == "PNG"
    assert found["late"] == "TIFF"


@pytest.mark.parametrize("argv", [
    ["encode", "X", "-q", "200"], ["encode", "X", "--psnr", "30", "--max-bytes", "9"],
    ["encode", "X", "Y", "-o", "Z"], ["encode", "X", "--layout", "diagonal"],
    ["encode", "-", "X"], ["decode", "X", "-o", "out.unknownext"], ["encode"], ["bogus"], []])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    assert "usage" in capsys.readouterr().err


def test_missing_and_bad_input_exit_1_with_one_line(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.svdi"
    bad.write_bytes(container.SIGNATURE + b"garbage")
    assert cli.decode_main([str(tmp_path / "missing.svdi")]) == 1
    assert cli.decode_main([str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"svdi-decode: {tmp_path / 'missing.svdi'}: No such file or directory"
    assert err[1].startswith(f"svdi-decode: {bad}: ") and len(err) == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    for main in (cli.encode_main, cli.decode_main, cli.info_main):
        assert main(["--version"]) == 0
        out = capsys.readouterr().out
        assert svdcodec.__version__ in out and f"format version {svdcodec.FORMAT_VERSION}" in out
    from svdcodec.cli import view
    with pytest.raises(SystemExit) as exited:  # argparse's exit, as for its -h
        view.main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("svdi-view: svdcodec ") and svdcodec.__version__ in out


# ----------------------------------------------------------------------------- data safety


def test_existing_output_needs_force(png: Path, svdi: Path) -> None:
    svdi.write_bytes(b"precious")
    assert cli.encode_main([str(png), "--quiet"]) == 1
    assert svdi.read_bytes() == b"precious"
    assert cli.encode_main([str(png), "--quiet", "--force"]) == 0
    assert svdi.read_bytes().startswith(container.SIGNATURE)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_skip_existing_does_the_rest_of_a_batch(png: Path, tmp_path: Path, jobs: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A batch run again with --skip-existing leaves the inputs whose output exists (status 0,
    one line each) and writes the others; --force and --skip-existing exclude each other."""
    second = tmp_path / "second.png"
    Image.fromarray(rgb()[::-1]).save(second)
    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.svdi").write_bytes(b"earlier run")
    argv = [str(png), str(second), "-d", str(out), "-j", jobs, "--skip-existing"]
    assert cli.encode_main(argv) == 0
    err = capsys.readouterr().err
    assert f"{png}: output {out / 'photo.svdi'} exists, skipped" in err
    assert (out / "photo.svdi").read_bytes() == b"earlier run"
    assert (out / "second.svdi").read_bytes().startswith(container.SIGNATURE)
    assert cli.encode_main(argv + ["--quiet"]) == 0 and capsys.readouterr().err == ""
    assert cli.decode_main([str(out / "second.svdi"), "--skip-existing", "--quiet"]) == 0
    decoded = (out / "second.svdi.png").read_bytes()
    assert cli.decode_main([str(out / "second.svdi"), "--skip-existing"]) == 0
    assert "second.svdi.png exists, skipped" in capsys.readouterr().err
    assert (out / "second.svdi.png").read_bytes() == decoded
    assert cli.encode_main(argv + ["--force"]) == 2
    assert "not allowed with argument --skip-existing" in capsys.readouterr().err
    # run again without either option: the existing outputs fail, and the last line says how
    assert cli.encode_main(argv[:-1]) == 1
    assert capsys.readouterr().err.rstrip().endswith(
        "2 output(s) existed before this run: --skip-existing leaves their inputs (a batch run "
        "again does the rest), --force overwrites them")
    # an output that is the input is refused, not skipped as a finished output
    assert cli.encode_main([str(out / "second.svdi"), "-o", str(out / "second.svdi"),
                            "--skip-existing"]) == 1
    assert "exists, skipped" not in capsys.readouterr().err


def test_output_is_input_refused_even_with_force(svdi: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    original = svdi.read_bytes()
    (tmp_path / "soft.png").symlink_to(svdi)
    os.link(svdi, tmp_path / "hard.png")
    cases = [[str(svdi)],  # x.svdi -> x.svdi
             [str(tmp_path / "soft.png"), "-o", str(svdi)],  # through a symlink
             [str(svdi), "-o", str(tmp_path / "hard.png")]]  # through a hard link
    for argv in cases:
        assert cli.encode_main([*argv, "--force"]) == 1
        assert "is the input file" in capsys.readouterr().err
    assert cli.decode_main([str(svdi), "-o", str(tmp_path / "soft.png"), "--force"]) == 1
    assert svdi.read_bytes() == original


def test_no_partial_output_after_a_failure(tmp_path: Path) -> None:
    data = svdcodec.encode(np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W))
    (tmp_path / "f.svdi").write_bytes(data)
    assert cli.decode_main([str(tmp_path / "f.svdi"), "-o", str(tmp_path / "f.png"),
                            "--quiet"]) == 1  # PNG has no mode F
    assert not (tmp_path / "f.png").exists() and not leftovers(tmp_path)
    assert cli.decode_main([str(tmp_path / "f.svdi"), "--format", "tiff", "--quiet"]) == 0


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_a_float_image_refused_for_png_names_the_suffixes_that_hold_it(
        suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The refusal of mode F names both outputs that hold it whole (.tiff and .pfm) in plain
    words ("decode mode F to", not "a F image")."""
    data = svdcodec.encode(np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W))
    (tmp_path / "f.svdi").write_bytes(data)
    capsys.readouterr()
    assert cli.decode_main([str(tmp_path / "f.svdi"), "-o", str(tmp_path / f"f{suffix}")]) == 1
    assert "decode mode F to .tiff or .pfm instead" in capsys.readouterr().err
    assert cli.decode_main([str(tmp_path / "f.svdi"), "-o", str(tmp_path / "f.pfm")]) == 0


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_signed_grey_decodes_to_a_tiff_of_32_bit_integers(
        dtype: type, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CT slice's int16 (or int8) has no Pillow mode: .npy by default; asked for a TIFF,
    mode I holds every value exactly; PNG refused, naming both."""
    info = np.iinfo(dtype)
    x = np.random.default_rng(3).integers(info.min, info.max, (H, W), endpoint=True).astype(dtype)
    (tmp_path / "s.svdi").write_bytes(svdcodec.encode(x, max_error=0))
    assert cli.decode_main([str(tmp_path / "s.svdi"), "-o", str(tmp_path / "s.tiff"),
                            "--quiet"]) == 0
    with Image.open(tmp_path / "s.tiff") as tiff:
        assert tiff.mode == "I" and np.array_equal(np.asarray(tiff), x.astype(np.int32))
    assert cli.decode_main([str(tmp_path / "s.svdi"), "-o", str(tmp_path / "s.png")]) == 1
    assert "decode to .npy instead (or to .tiff" in capsys.readouterr().err
    assert cli.decode_main([str(tmp_path / "s.svdi"), "--quiet"]) == 0
    assert np.array_equal(np.load(tmp_path / "s.svdi.npy"), x)  # photo.svdi -> photo.svdi.png


def test_interrupt_during_write_leaves_nothing(png: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(safe_io, "publish", interrupted)
    assert cli.encode_main([str(png), "--quiet"]) == 130
    assert not png.with_suffix(".svdi").exists() and not leftovers(tmp_path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def failing_replace(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="cannot write .*No space left"):
        safe_io.atomic_write(target, b"new", force=True)
    assert target.read_bytes() == b"old" and not leftovers(tmp_path)


# ----------------------------------------------------------------------------- stdin, stdout, -d


def test_stdin_to_stdout(png: Path, monkeypatch: pytest.MonkeyPatch,
                         capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(png.read_bytes())))
    assert cli.encode_main(["-", "--quiet"]) == 0
    data = capsysbinary.readouterr().out
    assert data.startswith(container.SIGNATURE)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert cli.decode_main(["-", "-o", "-", "--quiet"]) == 0
    decoded = Image.open(io.BytesIO(capsysbinary.readouterr().out))
    assert decoded.format == "PNG" and decoded.size == (W, H)


def test_outdir_continues_past_a_bad_file(png: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.png").write_bytes(b"not a png")
    Image.fromarray(rgb()[:, :, 0]).save(tmp_path / "grey.png")
    out = tmp_path / "out"
    argv = [str(tmp_path / "bad.png"), str(png), str(tmp_path / "grey.png"), "-d", str(out)]
    assert cli.encode_main(argv) == 1
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["grey.svdi", "photo.svdi"]
    assert err.count("svdi-encode: ") == 2 and f"svdi-encode: {tmp_path / 'bad.png'}: " in err
    assert err.rstrip().endswith("svdi-encode: 1 of 3 files failed")


def test_outdir_name_clash_is_reported(png: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    Image.fromarray(rgb()).save(tmp_path / "sub" / "photo.png")
    argv = [str(png), str(tmp_path / "sub" / "photo.png"), "-d", str(tmp_path / "o"), "--force"]
    assert cli.encode_main(argv + ["--quiet"]) == 1
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["photo.svdi"]


# ----------------------------------------------------------------------------- info, compare


def test_info_text(svdi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.info_main([str(svdi)]) == 0
    out = capsys.readouterr().out
    assert "37x23" in out and "mode RGB" in out and "format version 5" in out
    assert "the file stores r·(m+n+1) numbers per plane" in out
    assert out.count("blocks: U ") == 3


def test_info_says_how_16_bit_colour_opens(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A 16-bit RGB file (format version 3) opens in Pillow as 8-bit RGB: svdi-info says so
    (mode RGB in the JSON), and where the 16 bits are."""
    path = tmp_path / "deep.svdi"
    path.write_bytes(svdcodec.encode(np.full((8, 12, 3), 40000, np.uint16)))
    assert cli.info_main([str(path)]) == 0
    assert "mode RGB (8 bits through Pillow; 16 through svdcodec.decode" in capsys.readouterr().out
    assert cli.info_main([str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "RGB"


def test_info_json_is_consistent(svdi: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.info_main([str(svdi), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["width"], report["height"], report["mode"]) == (W, H, "RGB")
    blocks = sum(b["bytes"] for p in report["planes"] for b in p["blocks"])
    assert blocks + report["header_bytes"] == report["file_bytes"] == svdi.stat().st_size
    for p in report["planes"]:
        m, n = p["matrix_shape"]
        assert p["stored_entries"] == p["rank"] * (m + n + 1) and p["raw_entries"] == m * n
        assert sum(p["bytes"].values()) == sum(b["bytes"] for b in p["blocks"])
    assert report["raw_bytes"] == W * H * 3


def test_info_quiet_only_validates(svdi: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.svdi"
    broken.write_bytes(svdi.read_bytes()[:-20])
    assert cli.info_main([str(svdi), "--quiet"]) == 0
    assert cli.info_main([str(broken), str(svdi), "--quiet"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith(f"svdi-info: {broken}: ")


def test_compare_side_by_side_and_bd_rate(png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", str(png), "-q", "40,80", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["side_by_side"]
    assert [(r["codec"], r["quality"]) for r in rows] == [
        ("svdi", 40), ("svdi-plain", 40), ("svdi", 80), ("svdi-plain", 80)]
    assert rows[0]["bytes"] < rows[2]["bytes"] and rows[0]["psnr"] < rows[2]["psnr"]
    assert report["png_bytes"] > 0 and "svdi" in report["bd_rate_vs_jpeg_28_38dB"]


def test_compare_defaults_to_the_bundled_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compare", "--no-bd", "-q", "50"]) == 0
    out = capsys.readouterr().out
    assert "sample.png: 384x256" in out and "JPEG same PSNR" in out and "png" in out


def test_compare_usage_and_data_errors(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "-q", "0"])
    assert exc.value.code == 2
    (tmp_path / "bad.png").write_bytes(b"junk")
    assert cli.main(["compare", str(tmp_path / "bad.png")]) == 1


def test_option_combinations_the_encoder_refuses_are_usage_errors(
        png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Status 2 before any work, as for options of one mutually exclusive group."""
    out = tmp_path / "out"
    for options, message in ((["--centre", "--layout", "patch8"], "--centre centres"),
                             (["--lossless", "--psnr", "40"], "--lossless bounds every sample"),
                             (["--max-error", "1", "--max-bytes", "900"], "--max-error bounds")):
        assert cli.encode_main([str(png), "-d", str(out), *options]) == 2
        assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_plot_of_a_type_matplotlib_cannot_write_is_refused_first(
        png: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    for tool in (cli.info_main, cli.compare_main):
        try:  # svdi-info returns argparse's status, svdi-compare exits with it
            status = tool(["--plot", str(tmp_path / "spectrum.txt"), str(png)])
        except SystemExit as exc:
            status = exc.code
        err = capsys.readouterr()
        assert status == 2 and "matplotlib writes no .txt files" in err.err
        assert not err.out  # nothing done before the refusal


def test_an_output_that_is_its_input_is_not_counted_as_existing(
        png: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--force cannot write an input over itself, so the closing hint does not offer it."""
    assert cli.encode_main([str(png), "-o", str(png)]) == 1
    err = capsys.readouterr().err
    assert "is the input file" in err and "existed before this run" not in err


def test_a_folder_without_a_name_part_is_one_failure_of_the_batch(
        png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """".", "/" and "" as inputs (no name to replace the suffix of) fail with their own line
    each, as any other folder or missing file does, with -d too and in svdi-decode; the other
    inputs are still encoded and decoded."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(png, "a.png")
    assert cli.encode_main(["a.png", ".", "/", "", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and Path("a.svdi").read_bytes().startswith(container.SIGNATURE)
    assert {"svdi-encode: .: Is a directory", "svdi-encode: /: Is a directory",
            "svdi-encode: : No such file or directory"} <= set(err.splitlines())
    # into a folder (no clash reported among them), and svdi-decode alike
    assert cli.encode_main(["a.png", ".", "/", "", "-d", "out", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "also written" not in err and "svdi-encode: /: Is a directory" in err
    assert Path("out", "a.svdi").exists()
    assert cli.decode_main(["a.svdi", "/", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "svdi-decode: /: Is a directory" in err and Path("a.svdi.png").exists()


def test_python_m_svdcodec_names_an_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bogus"]) == 2
    assert "no command 'bogus'" in capsys.readouterr().err


def test_compare_says_what_is_wrong_with_an_input(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """The other tools' wording for files that are not images or not there (no Python
    objects, no errno), an array sent to svdi-encode, and a note on an .svdi input."""
    (tmp_path / "bad.png").write_bytes(b"junk")
    np.save(tmp_path / "a.npy", np.zeros((4, 4)))
    (tmp_path / "folder").mkdir()
    expected = {"bad.png": "bad.png: not an image file in a format Pillow can read",
                "a.npy": "a.npy: a numpy array: svdi-compare compares images",
                "missing.png": "missing.png: No such file or directory",
                "folder": "folder: Is a directory"}
    for name, message in expected.items():
        assert cli.main(["compare", str(tmp_path / name), "--no-bd"]) == 1
        err = capsys.readouterr().err
        assert message in err and "<_io" not in err and "[Errno" not in err
    data = svdcodec.encode(np.zeros((16, 16, 3), np.uint8) + 100)
    (tmp_path / "x.svdi").write_bytes(data)
    _, notes = compare_cli.load_image(str(tmp_path / "x.svdi"))
    assert any(n.startswith("an .svdi file: compared as decoded") for n in notes)


# ----------------------------------------------------------------------------- real process


def test_python_m_cli_in_a_subprocess(png: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"junk")
    env = {**os.environ, "PYTHONPATH": str(Path(svdcodec.__file__).parent.parent)}
    run = subprocess.run([sys.executable, "-m", "svdcodec", "encode", str(png),
                          str(tmp_path / "bad.png"), "-d", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert run.returncode == 1
    assert (tmp_path / "out" / "photo.svdi").read_bytes().startswith(container.SIGNATURE)
    errors = [line for line in run.stderr.splitlines() if line.startswith("svdi-encode: ")]
    assert len(errors) == 2 and "bad.png" in errors[0] and "Traceback" not in run.stderr
    assert errors[1] == "svdi-encode: 1 of 2 files failed"


# ----------------------------------------------------------------------------- batch


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_only_on_a_terminal() -> None:
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = batch.Progress(3, stream, enabled=True)
        for name in ("a.png", "b.png", "c.png"):
            progress.step(name)
        progress.clear()
    assert "3/3 c.png" in tty.getvalue() and pipe.getvalue() == ""
    quiet = batch.Progress(3, tty, enabled=False)
    quiet.step("x")
    assert "1/3" not in tty.getvalue().split("3/3")[-1]


def test_pool_and_serial_give_the_same_files(png: Path, tmp_path: Path) -> None:
    inputs = []
    for i in range(3):
        path = tmp_path / f"in{i}.png"
        Image.fromarray(np.roll(rgb(), 5 * i, axis=1)).save(path)
        inputs.append(str(path))
    assert cli.encode_main([*inputs, "-d", str(tmp_path / "pool"), "-j", "2", "--quiet"]) == 0
    assert cli.encode_main([*inputs, "-d", str(tmp_path / "serial"), "-j", "1", "--quiet"]) == 0
    for i in range(3):
        pooled = (tmp_path / "pool" / f"in{i}.svdi").read_bytes()
        assert pooled == (tmp_path / "serial" / f"in{i}.svdi").read_bytes()


def test_the_viewer_finds_js_in_the_clone_it_runs_in(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """After a plain `pip install .` the package lives in site-packages; svdi-view run inside
    the clone (any folder of it) still finds the clone's js/ folder; elsewhere it does not."""
    from svdcodec.cli import view

    monkeypatch.delenv("SVDI_VIEWER_DIR", raising=False)
    monkeypatch.setattr(view, "__file__", str(tmp_path / "site-packages" / "svdcodec" / "cli"
                                              / "view.py"))
    clone = tmp_path / "clone"
    (clone / "js" / "viewer").mkdir(parents=True)
    (clone / "js" / "viewer" / "index.html").write_text("<html></html>")
    (clone / "docs").mkdir()
    monkeypatch.chdir(clone / "docs")
    assert view.find_js_dir() == (clone / "js").resolve()
    monkeypatch.chdir(tmp_path)
    assert view.find_js_dir() is None
    monkeypatch.setenv("SVDI_VIEWER_DIR", str(clone / "js"))
    assert view.find_js_dir() == clone / "js"


def test_the_viewer_that_cannot_run_here_exits_with_status_1(
        svdi: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Without the viewer's files (outside a clone, or before npm ci) or without the file it
    is to show, svdi-view says why and exits with 1, the status of what cannot be done here
    (docs/usage.md, "Exit status"); 2 stays for a wrong command line."""
    from svdcodec.cli import view

    monkeypatch.setattr(view, "find_js_dir", lambda: None)
    assert view.main([str(svdi), "--no-browser"]) == 1
    assert "SVDI_VIEWER_DIR" in capsys.readouterr().err
    bare = tmp_path / "js"
    (bare / "viewer").mkdir(parents=True)
    monkeypatch.setattr(view, "find_js_dir", lambda: bare)
    assert view.main([str(svdi), "--no-browser"]) == 1
    assert "npm ci --prefix" in capsys.readouterr().err
    assert view.main([str(tmp_path / "absent.svdi"), "--no-browser"]) == 1
    assert "absent.svdi: No such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        view.main(["--port", "many"])
    assert usage.value.code == 2


def test_encode_notes_a_likely_mix_up_with_decode(png: Path, svdi: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # -o photo.png gets .svdi bytes (written, as cwebp writes any name), with a note
    out = tmp_path / "out.png"
    assert cli.encode_main([str(png), "-o", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89SVD"
    assert "will hold .svdi data" in capsys.readouterr().err
    # an .svdi input is encoded again, with a note
    assert cli.encode_main([str(svdi), "-o", str(tmp_path / "again.svdi")]) == 0
    assert "already an .svdi file" in capsys.readouterr().err
    # the ordinary use prints no such note; --quiet silences them
    assert cli.encode_main([str(png), "-o", str(tmp_path / "plain.svdi")]) == 0
    assert cli.encode_main([str(png), "-o", str(tmp_path / "q.png"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "will hold" not in err and "already an .svdi" not in err


def _metadata_read_back(image: Image.Image) -> set[str]:
    info = image.info
    found = {k for k in ("exif", "icc_profile", "xmp") if info.get(k)}
    if len(image.getexif()):
        found.add("exif")
    if "dpi" in info and round(info["dpi"][0]) == 300:
        found.add("dpi")
    if getattr(image, "text", None) or isinstance(info.get("text"), dict):
        found.add("text")
    return found


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF", "BMP", "SVDI", "GIF"])
def test_writable_metadata_is_what_pillow_keeps(fmt: str, monkeypatch) -> None:
    """svdi-decode's "cannot hold" comes from photos.WRITABLE: each item it lists is read back
    from the file its options write, and each it leaves out is not (BMP keeps dpi, SVDI
    everything; both were reported as dropped)."""
    exif = Image.Exif()
    exif[271] = "Camera"
    metadata = {"exif": exif.tobytes().removeprefix(photos.EXIF_PREFIX), "icc_profile": ImageCms.ImageCmsProfile(
        ImageCms.createProfile("sRGB")).tobytes(), "xmp": b"<x:xmpmeta xmlns:x='adobe:ns:meta/'/>",
        "dpi": (300, 300), "text": {"Comment": "kept"}}
    writable = set(photos.WRITABLE.get(fmt, ()))
    monkeypatch.setitem(photos.WRITABLE, fmt, tuple(metadata))  # ask Pillow for everything
    kept = set()
    for key, value in metadata.items():
        options, _ = photos.save_options(fmt, {key: value})
        buf = io.BytesIO()
        try:
            Image.new("RGB", (16, 16), (90, 120, 150)).save(buf, format=fmt, **options)
        except (ValueError, TypeError, OSError):  # a writer that refuses the keyword
            continue
        buf.seek(0)
        with Image.open(buf) as image:
            if key in _metadata_read_back(image):
                kept.add(key)
    assert kept == writable


def test_a_batch_ends_with_the_count_of_failures(tmp_path, capsys) -> None:
    """usage.md: with several inputs the tools go on past a bad file and report it at the
    end: a closing line counts the failures; one input, or none failed, has no such line."""
    good = []
    for i in range(3):
        good.append(tmp_path / f"g{i}.png")
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(good[-1])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    out = tmp_path / "out"
    out.mkdir()
    argv = [*map(str, good), str(bad), str(tmp_path / "missing.png"), "-d", str(out), "-j", "1"]
    assert cli.encode_main(argv) == 1
    err = capsys.readouterr().err
    assert err.rstrip().splitlines()[-1] == "svdi-encode: 2 of 5 files failed"
    assert cli.encode_main([str(bad), "-d", str(out)]) == 1
    assert "files failed" not in capsys.readouterr().err
    svdi = sorted(map(str, out.glob("*.svdi")))
    assert cli.decode_main([*svdi, str(bad), "-d", str(tmp_path)]) == 1
    assert capsys.readouterr().err.rstrip().endswith("svdi-decode: 1 of 4 files failed")
    assert cli.decode_main([*svdi, "-d", str(tmp_path), "-f"]) == 0
    assert "failed" not in capsys.readouterr().err


def _png_with_chunks(path: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    """A small RGB PNG with these ancillary chunks after IHDR (Pillow writes no gAMA)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 60, 90)).save(buf, format="PNG")
    data = buf.getvalue()
    extra = b"".join(len(body).to_bytes(4, "big") + kind + body
                     + zlib.crc32(kind + body).to_bytes(4, "big") for kind, body in chunks)
    path.write_bytes(data[:33] + extra + data[33:])  # signature (8) + IHDR (25)


def test_png_colour_tags_are_said_not_kept(tmp_path, capsys) -> None:
    """A PNG's gAMA, sRGB and cHRM have no field in an .svdi file: svdi-encode's line says so,
    as it says a dropped ICC profile (a gAMA of 1.0, linear light, was dropped silently)."""
    linear = tmp_path / "linear.png"
    _png_with_chunks(linear, [(b"gAMA", (100000).to_bytes(4, "big"))])
    assert Image.open(linear).info["gamma"] == 1.0
    assert cli.encode_main([str(linear), "-o", str(tmp_path / "a.svdi")]) == 0
    assert "gamma 1 not kept" in capsys.readouterr().err
    tagged = tmp_path / "tagged.png"
    _png_with_chunks(tagged, [(b"sRGB", b"\x00"), (b"cHRM", bytes(32))])
    assert cli.encode_main([str(tagged), "-o", str(tmp_path / "b.svdi")]) == 0
    assert "sRGB intent, chromaticities not kept" in capsys.readouterr().err
    assert cli.encode_main([str(linear), "-o", str(tmp_path / "c.svdi"), "--strip"]) == 0
    assert "not kept" not in capsys.readouterr().err


def test_a_jpeg_comment_is_said_not_kept(tmp_path, capsys) -> None:
    """A JPEG's COM comment has no field in an .svdi file: svdi-encode's line says so (it was
    dropped silently), not with --strip, and not for a JPEG without one."""
    commented, plain = tmp_path / "commented.jpg", tmp_path / "plain.jpg"
    Image.new("RGB", (16, 16), (30, 60, 90)).save(commented, comment=b"a comment")
    Image.new("RGB", (16, 16), (30, 60, 90)).save(plain)
    assert Image.open(commented).info["comment"] == b"a comment"
    assert cli.encode_main([str(commented), "-o", str(tmp_path / "a.svdi")]) == 0
    assert "comment not kept" in capsys.readouterr().err
    for args in ([str(commented), "--strip"], [str(plain)]):
        assert cli.encode_main([*args, "-o", str(tmp_path / "b.svdi"), "-f"]) == 0
        assert "not kept" not in capsys.readouterr().err, args


def test_a_jpegs_iptc_is_said_not_kept(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A JPEG's IPTC record (Photoshop APP13: caption, by-line, copyright) has no field in an
    .svdi file: svdi-encode's line says so (it was dropped without a word), not with --strip."""
    import struct

    def dataset(tag: int, value: bytes) -> bytes:
        return bytes([0x1C, 2, tag]) + struct.pack(">H", len(value)) + value
    iptc = dataset(0, b"\x00\x04") + dataset(120, b"A caption") + dataset(116, b"(c) 2026")
    resource = (b"8BIM" + struct.pack(">HHI", 0x0404, 0, len(iptc)) + iptc
                + b"\x00" * (len(iptc) % 2))
    segment = b"Photoshop 3.0\x00" + resource
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 60, 90)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    path = tmp_path / "iptc.jpg"
    path.write_bytes(jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(segment) + 2) + segment
                     + jpeg[2:])
    assert cli.encode_main([str(path)]) == 0
    assert "IPTC not kept" in capsys.readouterr().err
    assert cli.encode_main([str(path), "--strip", "-f"]) == 0
    assert "not kept" not in capsys.readouterr().err


def test_outdir_errors_and_no_empty_outdir(tmp_path, capsys) -> None:
    """-d naming a file says "not a directory" (it said "File exists"); -d of a new folder
    where nothing is written leaves no empty folder behind; one written into stays."""
    png = tmp_path / "x.png"
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(png)
    notes = tmp_path / "notes.txt"
    notes.write_text("keep")
    assert cli.encode_main([str(png), "-d", str(notes)]) == 1
    assert "notes.txt: not a directory" in capsys.readouterr().err
    assert notes.read_text() == "keep"
    empty = tmp_path / "w1"
    assert cli.encode_main([str(tmp_path / "missing.png"), "-d", str(empty)]) == 1
    assert cli.decode_main([str(tmp_path / "missing.svdi"), "-d", str(empty)]) == 1
    assert not empty.exists()
    assert cli.encode_main([str(png), "-d", str(empty)]) == 0
    assert (empty / "x.svdi").is_file()


def test_help_texts_say_what_the_tools_do(capsys) -> None:
    """--version prints the folder svdcodec runs from, as its help says; --effort's help gives
    the docs' 4-14 %."""
    assert cli.encode_main(["--version"]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        f"from {Path(svdcodec.__file__).resolve().parent}")
    assert cli.encode_main(["--help"]) == 0
    assert "4-14 % smaller" in " ".join(capsys.readouterr().out.split())


# ----------------------------------------------------------------------------- wildcards


def test_wildcards_are_expanded_when_no_file_has_the_name(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    """Windows shells pass `*.png` on unexpanded (docs/usage.md, "Wildcards"): the tools
    expand it, in sorted order; a file whose name holds the wildcard is taken as it is."""
    monkeypatch.chdir(tmp_path)
    for name in ("b.png", "a.png", "[x].png"):
        Image.fromarray(rgb()).save(name)
    assert cli.encode_main(["*.png", "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.svdi")) == ["[x].svdi", "a.svdi", "b.svdi"]
    assert cli.info_main(["?.svdi"]) == 0
    out = capsys.readouterr().out
    assert out.index("a.svdi:") < out.index("b.svdi:") and "[x].svdi" not in out
    # "[x].png" exists: the file itself, not the pattern (which would match "x.png")
    assert cli.decode_main(["[x].svdi", "-o", "x.png"]) == 0 and Path("x.png").is_file()
    assert cli.decode_main(["[ab].svdi", "-d", "out"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.svdi.png", "b.svdi.png"]


def test_a_pattern_that_matches_nothing_is_a_usage_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Image.fromarray(rgb()).save("a.png")
    for main in (cli.encode_main, cli.decode_main, cli.info_main):
        assert main(["a.png", "*.tif"] if main is cli.encode_main else ["*.svdi"]) == 2
        err = capsys.readouterr().err
        assert "no file matches this pattern" in err and ("*.tif" in err or "*.svdi" in err)
    assert not list(tmp_path.glob("*.svdi"))  # refused before any file was written
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "*.jpg"])
    assert exc.value.code == 2 and "*.jpg: no file matches" in capsys.readouterr().err
    Image.fromarray(rgb()).save("b.png")
    with pytest.raises(SystemExit) as exc:
        cli.main(["compare", "*.png"])
    assert exc.value.code == 2 and "matches 2 files" in capsys.readouterr().err
    from svdcodec.cli import wildcards

    parser = argparse.ArgumentParser(prog="svdi-compare")
    assert wildcards.expand_one(parser, "a*.png") == "a.png"
    assert wildcards.expand_one(parser, None) is None


def test_a_double_star_matches_any_depth_of_folders(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`**/*.svdi` as zsh or bash's globstar match it: this folder's files and those of every
    folder below (non-recursive, ** is *, which left out both); a wildcard in a folder's name
    works as in a file's."""
    monkeypatch.chdir(tmp_path)
    data = svdcodec.encode(rgb())
    for name in ("top.svdi", "d1/a.svdi", "d1/deep/b.svdi", "d2/c.svdi"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(data)
    assert cli.info_main(["**/*.svdi"]) == 0
    out = capsys.readouterr().out
    assert [name for name in ("top.svdi", "d1/a.svdi", "d1/deep/b.svdi", "d2/c.svdi")
            if f"{name}:" in out] == ["top.svdi", "d1/a.svdi", "d1/deep/b.svdi", "d2/c.svdi"]
    assert cli.info_main(["d?/*.svdi"]) == 0
    out = capsys.readouterr().out
    assert "d1/a.svdi:" in out and "d2/c.svdi:" in out and "b.svdi" not in out
