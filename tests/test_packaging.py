"""What the source distribution and the built extension hold: the sdist runs its own tests
(pytest from the extracted folder needs conftest.py, support.py, the regression files and the
spec's vectors), and a release build of the kernels carries no debug information."""

from __future__ import annotations

import re
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


@pytest.fixture(scope="module")
def sdist(source_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[set[str], str]:
    """(the paths in the sdist, below its top folder; its PKG-INFO, the metadata the
    package index shows)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(out)],
                   cwd=source_copy, check=True, capture_output=True)
    (archive,) = out.glob("*.tar.gz")
    with tarfile.open(archive) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        (info,) = [m for m in tar.getmembers() if m.name.count("/") == 1
                   and m.name.endswith("/PKG-INFO")]
        reader = tar.extractfile(info)
        assert reader is not None
        pkg_info = reader.read().decode("utf-8")
    return names, pkg_info


def test_sdist_holds_what_the_tests_need(sdist: tuple[set[str], str]) -> None:
    names, _ = sdist
    missing = [n for n in NEEDED if n not in names and not any(m.startswith(n + "/")
                                                                for m in names)]
    assert not missing
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)


def test_long_description_links_only_where_the_index_can_follow(
        sdist: tuple[set[str], str]) -> None:
    """The package index shows the long description away from the repository: a relative
    link or image (README.md's docs/usage.md, docs/img/viewer.png) leads nowhere there. Every
    link target must be absolute, and each document it names by path must be in the sdist."""
    names, pkg_info = sdist
    assert "Description-Content-Type: text/markdown" in pkg_info
    description = pkg_info.split("\n\n", 1)[1]
    assert "svdcodec.decode" in description  # the description itself, not only headers
    targets = re.findall(r"\]\(([^)\s]+)", description) + re.findall(
        r"(?:src|href)=[\"']([^\"']+)", description)
    relative = [t for t in targets if not re.match(r"(https?:|mailto:|#)", t)]
    assert not relative
    named = set(re.findall(r"`([\w./-]+\.md)`", description))
    assert named and not named - names
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
