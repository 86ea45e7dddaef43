"""The README's quick-start runs as written."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_readme_quick_start_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first Python block of the README runs and prints what its comments promise."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("S3_", "HELPPET_")):
            monkeypatch.delenv(name)
    block = _python_blocks(ROOT / "README.md")[0]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - running our own docs
    lines = output.getvalue().splitlines()
    assert lines[0].startswith("http://127.0.0.1:8000/local-storage/upload ")
    assert "'policy'" in lines[0]
    assert lines[1:] == ["409 UPLOAD_NOT_FOUND", "1"]


@pytest.mark.parametrize(
    "doc", ["README.md", "docs/operations.md", "docs/database.md", "docs/client.md"]
)
def test_documented_python_compiles(doc: str) -> None:
    """Every Python block in the docs is at least valid Python."""
    for block in _python_blocks(ROOT / doc):
        compile(block, doc, "exec")
