"""What the source distribution and the built extension hold: the sdist runs its own tests
(pytest from the extracted folder needs conftest.py, support.py, the regression files and the
spec's vectors), and a release build of the kernels carries no debug information."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Files from every part of the tree the tests read.
NEEDED = ["tests/conftest.py", "tests/support.py", "tests/regressions", "tests/fuzz/corpus",
          "spec/vectors/manifest.json", "spec/svdi.md", "docs/arrays.md", "README.md",
          "csrc/kernels.c", "LICENSE"]
SKIPPED = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", "*.so", "*.pyd",
                                 ".git", ".hypothesis")


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tree as a checkout or an extracted sdist holds it, without build products."""
    if not (ROOT / "setup.py").exists():
        pytest.skip("not a source tree")
    copy = tmp_path_factory.mktemp("tree") / "svdcodec"
    shutil.copytree(ROOT, copy, ignore=SKIPPED)
    return copy


def test_sdist_holds_what_the_tests_need(source_copy: Path, tmp_path: Path) -> None:
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path)],
                   cwd=source_copy, check=True, capture_output=True)
    (archive,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    missing = [n for n in NEEDED if n not in names and not any(m.startswith(n + "/")
                                                                for m in names)]
    assert not missing
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


@pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("gcc") is None
                    or sysconfig.get_config_var("CC") is None, reason="GCC on Linux")
def test_release_extension_has_no_debug_info(source_copy: Path) -> None:
    """Python's own CFLAGS hold -g (2.14 MB instead of 0.66 MB); `--debug` keeps it."""
    for debug in (False, True):
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "--force"]
                       + ["--debug"] * debug, cwd=source_copy, check=True, capture_output=True)
        (module,) = (source_copy / "svdcodec" / "runtime").glob("_kernels*.so")
        assert (b".debug_info" in module.read_bytes()) == debug
        module.unlink()
