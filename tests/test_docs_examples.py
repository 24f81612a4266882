"""The docs' examples print what the docs say they print.

docs/how-it-works.md and README.md quote svdi-info on the bundled sample; docs/arrays.md's
time x sensors example states its file sizes and figures in comments. Each is run here, so a
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


def test_arrays_time_by_sensors_example_prints_its_comments() -> None:
    block = next(b for b in code_blocks(ROOT / "docs/arrays.md", "python")
                 if "seen by 64 sensors" in b)
    lines = block.splitlines()
    namespace: dict[str, object] = {}
    checked = 0
    for statement in ast.parse(block).body:
        code = "\n".join(lines[statement.lineno - 1:statement.end_lineno])
        exec(compile(ast.Module([statement], []), "docs/arrays.md", "exec"), namespace)  # noqa: S102 (the docs example is the code under test)
        comment = lines[statement.end_lineno - 1].partition("#")[2]
        if isinstance(statement, ast.Assign) and "bytes" in comment:
            # "data = svdcodec.encode(...)  # 38,006 bytes for 5,120,000 (134:1)"
            name = ast.unparse(statement.targets[0])
            size, raw = _figures(comment)[:2]
            assert _matches(len(namespace[name]), size), f"{code}: {len(namespace[name])} bytes"
            assert _matches(namespace["x"].nbytes, raw)  # type: ignore[attr-defined]
            checked += 1
        elif isinstance(statement, ast.Expr) and re.match(r"\s*\d", comment):
            # "s.kept, s.kept_energy  # 7, 0.9999912"
            values = eval(compile(ast.Expression(statement.value), "docs/arrays.md", "eval"),
                          namespace)
            values = values if isinstance(values, tuple) else (values,)
            figures = _figures(comment)[:len(values)]
            assert all(map(_matches, values, figures)), f"{code}: {values}, docs say {figures}"
            checked += 1
    assert checked >= 2
