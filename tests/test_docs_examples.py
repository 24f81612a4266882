"""The docs' examples print what the docs say they print.

docs/how-it-works.md and README.md quote svdi-info on the bundled sample; docs/arrays.md's
time x sensors example and how-it-works' classroom demo state their file sizes and figures in
comments. Each is run here, so a
change of the encoder that moves a figure fails a test instead of leaving the page stale.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

import svdcodec
from svdcodec import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = Path(svdcodec.__file__).parent / "data" / "sample.png"


def code_blocks(page: Path, lang: str) -> list[str]:
    """The fenced blocks of ``page`` opened with ```lang (lang "" for bare fences)."""
    blocks: list[str] = []
    opened: str | None = None  # the language of the block being read
    body: list[str] = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if not line.startswith("```"):
            body.append(line)
        elif opened is None:
            opened, body = line[3:].strip(), []
        else:
            if opened == lang:
                blocks.append("\n".join(body) + "\n")
            opened = None
    return blocks


@pytest.fixture(scope="module")
def sample_info(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("info") / "sample.svdi"
    assert cli.main(["encode", str(SAMPLE), "-o", str(out)]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["info", str(out)]) == 0
    return [line.rstrip() for line in buf.getvalue().splitlines()]


@pytest.mark.parametrize("page", ["docs/how-it-works.md", "README.md"])
def test_svdi_info_of_the_sample_as_quoted(page: str, sample_info: list[str]) -> None:
    blocks = [b for b in code_blocks(ROOT / page, "") if "matrix m x n =" in b]
    assert blocks, f"{page} no longer quotes svdi-info"
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("$ ") or not line.strip():
                continue
            assert line.rstrip() in sample_info, f"{page}: {line!r} is not what svdi-info prints"


def _figures(comment: str) -> list[str]:
    """'# 38,006 bytes for 5,120,000' -> ['38,006', '5,120,000']; '# 7, 0.9999912' -> both."""
    return re.findall(r"\d(?:[\d,]*\d)?(?:\.\d+)?", comment)


def _matches(value: object, figure: str) -> bool:
    if isinstance(value, int) or "." not in figure:
        return int(figure.replace(",", "")) == value
    decimals = len(figure.split(".")[1])
    return round(float(value), decimals) == float(figure.replace(",", ""))  # type: ignore[arg-type]


#: How far the size of a plain layout's file (`layout="plain"`, `centre=True`) may be from the
#: page's figure: its factors are LAPACK's SVD, whose last bits differ between builds of
#: numpy's BLAS (the sensors example's file is 38,006 bytes with one, 38,004 with another),
#: and a few integers move with them. Patch layouts' sizes are exact.
SIZE_TOLERANCE = 0.001


def _near(size: int, figure: str, code: str) -> bool:
    """Whether an encoded size is the page's figure: within SIZE_TOLERANCE of it for a plain
    layout's file (`code`: the statement that made it), exactly otherwise."""
    if 'layout="plain"' not in code and "centre=True" not in code:
        return _matches(size, figure)
    stated = int(figure.replace(",", ""))
    return abs(size - stated) <= SIZE_TOLERANCE * stated


def _flat(values: object) -> list[object]:
    """(256, 50), 384 -> [256, 50, 384]."""
    if isinstance(values, tuple):
        return [v for item in values for v in _flat(item)]
    return [values]


def run_commented_example(page: str, marker: str, samples: str) -> int:
    """Run the python block of `page` holding `marker` statement by statement and check the
    figures its comments state: after an assignment "# N bytes for M", the bytes of what it
    assigns and of the array named `samples`; after an expression "# 7, 0.9999912", its
    values. Returns how many comments were checked."""
    block = next(b for b in code_blocks(ROOT / page, "python") if marker in b)
    lines = block.splitlines()
    namespace: dict[str, object] = {}
    checked = 0
    for statement in ast.parse(block).body:
        code = "\n".join(lines[statement.lineno - 1:statement.end_lineno])
        exec(compile(ast.Module([statement], []), page, "exec"), namespace)  # noqa: S102 (the docs example is the code under test)
        comment = lines[statement.end_lineno - 1].partition("#")[2]
        if isinstance(statement, ast.Assign) and "bytes" in comment:
            # "data = svdcodec.encode(...)  # 38,006 bytes for 5,120,000 (134:1)"
            name = ast.unparse(statement.targets[0])
            size, raw = _figures(comment)[:2]
            assert _near(len(namespace[name]), size, code), f"{code}: {len(namespace[name])} bytes"
            assert _matches(namespace[samples].nbytes, raw)  # type: ignore[attr-defined]
            checked += 1
        elif isinstance(statement, ast.Expr) and re.match(r"\s*\d", comment):
            # "s.kept, s.kept_energy  # 7, 0.9999912"
            values = _flat(eval(compile(ast.Expression(statement.value), page, "eval"),
                                namespace))
            figures = _figures(comment)[:len(values)]
            assert len(figures) == len(values) and all(map(_matches, values, figures)), \
                f"{code}: {values}, {page} says {figures}"
            checked += 1
    return checked


def test_arrays_time_by_sensors_example_prints_its_comments() -> None:
    assert run_commented_example("docs/arrays.md", "seen by 64 sensors", "x") >= 2


def test_the_classroom_demo_prints_its_comments() -> None:
    """how-it-works' demo: the file's factors and rank-r pictures are the demo's."""
    assert run_commented_example("docs/how-it-works.md", "np.linalg.svd(X.astype", "X") >= 6
