"""The repo stays clean under its own formatter and linter configuration."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install ruff)")
def test_ruff_lint_and_format():
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout
    fmt = _run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.skipif(shutil.which("clang-format") is None, reason="pip install clang-format")
def test_clang_format():
    sources = sorted(str(p) for p in (ROOT / "csrc").rglob("*") if p.suffix in {".cpp", ".h"})
    proc = _run("clang-format", "--dry-run", "--Werror", *sources)
    assert proc.returncode == 0, proc.stderr[:4000]
