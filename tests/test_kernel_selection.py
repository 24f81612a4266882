"""Which path the codec takes: SVDCODEC_KERNELS and the optional C extension (svdcodec.runtime.kernels).

Runs whether or not the extension is built: its absence is simulated."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import svdcodec
from svdcodec.runtime import kernels


@pytest.fixture
def not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state after a failed import of svdcodec.runtime._kernels."""
    monkeypatch.setattr(kernels, "_loaded", {"c": None})
    monkeypatch.setattr(kernels, "_import_error", ["No module named 'svdcodec.runtime._kernels'"])


def test_numpy_path_when_not_built(monkeypatch: pytest.MonkeyPatch, not_built: None) -> None:
    monkeypatch.delenv("SVDCODEC_KERNELS", raising=False)
    assert kernels.get() is None and kernels.backend() == "numpy"
    image = np.arange(48 * 40 * 3, dtype=np.uint8).reshape(48, 40, 3)
    assert svdcodec.decode(svdcodec.encode(image)).shape == image.shape  # the fallback codes


def test_required_but_not_built(monkeypatch: pytest.MonkeyPatch, not_built: None) -> None:
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    with pytest.raises(ImportError, match="not built"):
        kernels.get()
    with pytest.raises(kernels.KernelsUnavailable):
        svdcodec.encode(np.zeros((8, 8), np.uint8))


def test_forced_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    assert kernels.get() is None and kernels.backend() == "numpy"


def test_compiled_path_from_the_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the extension is built it runs from the first, smallest call: no threshold."""
    pytest.importorskip("svdcodec.runtime._kernels")
    monkeypatch.delenv("SVDCODEC_KERNELS", raising=False)
    assert kernels.get() is not None and kernels.backend() == "c"


@pytest.fixture
def failing_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension not imported yet, and its import failing as where it was not built."""
    monkeypatch.setattr(kernels, "_loaded", {})
    monkeypatch.setattr(kernels, "_import_error", [])
    monkeypatch.setitem(sys.modules, "svdcodec.runtime._kernels", None)  # ImportError
    monkeypatch.delattr(svdcodec.runtime, "_kernels", raising=False)  # else `from` finds it


def test_a_failed_import_is_said_once(monkeypatch: pytest.MonkeyPatch, failing_import: None
                                      ) -> None:
    """`pip install .` without a compiler installs the numpy path: the first encode says so
    (how to silence it included), later calls do not."""
    monkeypatch.delenv("SVDCODEC_KERNELS", raising=False)
    image = np.arange(24 * 20, dtype=np.uint8).reshape(24, 20)
    with pytest.warns(RuntimeWarning, match="numpy path.*SVDCODEC_KERNELS=0"):
        data = svdcodec.encode(image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert svdcodec.decode(data).shape == image.shape
        assert kernels.get() is None and kernels.backend() == "numpy"


def test_no_warning_when_the_numpy_path_is_chosen(monkeypatch: pytest.MonkeyPatch,
                                                  failing_import: None) -> None:
    monkeypatch.setenv("SVDCODEC_KERNELS", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        svdcodec.decode(svdcodec.encode(np.zeros((16, 16), np.uint8)))
    monkeypatch.setenv("SVDCODEC_KERNELS", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(kernels.KernelsUnavailable):
            kernels.get()


def test_the_advice_names_a_clone_imported_ahead_of_the_install(tmp_path: Path
                                                                 ) -> None:
    """Python run in a clone's top folder imports the clone's unbuilt svdcodec/, not the copy
    `pip install .` built: the warning then says so, since reinstalling would not help."""
    installed = tmp_path / "site-packages"
    (installed / "svdcodec").mkdir(parents=True)
    assert kernels.how_to_build(installed).startswith("Reinstall svdcodec with a C compiler")
    clone = tmp_path / "clone"
    (clone / "csrc").mkdir(parents=True)
    (clone / "setup.py").write_text("")
    (clone / "csrc" / "kernels.c").write_text("")
    advice = kernels.how_to_build(clone)
    assert str(clone / "svdcodec") in advice and "run it from another folder" in advice
    assert "pip install -e ." in advice
    message = kernels.NUMPY_PATH_WARNING.format(error="no module", advice=advice)
    assert message.endswith("or set SVDCODEC_KERNELS=0 to choose the numpy path and silence "
                            "this warning.")


def test_the_warning_carries_the_advice(monkeypatch: pytest.MonkeyPatch, failing_import: None
                                        ) -> None:
    monkeypatch.delenv("SVDCODEC_KERNELS", raising=False)
    monkeypatch.setattr(kernels, "how_to_build", lambda: "ADVICE")
    with pytest.warns(RuntimeWarning, match=r"4-10 times slower\. ADVICE; or set SVDCODEC"):
        kernels.get()


def test_import_leaves_the_encoder_and_pathlib_for_later(tmp_path: Path) -> None:
    """`import svdcodec` (issue #13: at most 50 ms above numpy and Pillow) imports what a decode
    needs: not the encoder (the first encode imports it), nor pathlib and the urllib.parse and
    ipaddress it brings, which the kernels' build advice once pulled in. (In a new interpreter
    of this svdcodec without `site`, whose .pth files may import pathlib themselves (an
    editable install's finder does); what numpy and Pillow import first does not count.)"""
    import PIL
    import zstandard

    code = ("import sys, numpy, PIL.Image; before = set(sys.modules); import svdcodec; "
            "print(' '.join(sorted(set(sys.modules) - before)))")
    folders = dict.fromkeys(os.path.dirname(os.path.dirname(module.__file__ or ""))
                            for module in (svdcodec, np, PIL, zstandard))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(folders)}
    added = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                           check=True, cwd=tmp_path, env=env).stdout.split()
    assert "svdcodec.runtime.kernels" in added and "svdcodec.pillow_plugin" in added
    assert not {"pathlib", "urllib.parse", "ipaddress"} & set(added), added
    assert not [name for name in added if name.startswith("svdcodec.encoder")], added
