"""The codebase passes its own static checks: ruff (lint and format) and mypy --strict.

mypy checks the tests and benchmarks as strictly as the server (the settings are in
pyproject.toml), so a test that calls into outlast with a wrong argument fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_lint() -> None:
    result = run("ruff", "check", "outlast", "bench", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run("ruff", "format", "--check", "outlast", "bench", "tests", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy", "outlast", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr
