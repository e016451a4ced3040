"""The pytest plugin: integration marker for tests using ``infra``; no tests is a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "crm_devstack.pytest_plugin", "-q", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_tests_collected_fails_the_run(tmp_path: Path) -> None:
    result = _pytest(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no tests were collected" in result.stdout


def test_tests_using_infra_are_marked_integration(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture\n"
        "def infra():\n"  # stands in for the real fixture: only the name matters
        "    return object()\n\n"
        "@pytest.fixture\n"
        "def uses_infra(infra):\n"
        "    return infra\n\n"
        "def test_unit():\n"
        "    pass\n\n"
        "def test_direct(infra):\n"
        "    pass\n\n"
        "def test_indirect(uses_infra):\n"
        "    pass\n"
    )
    result = _pytest(tmp_path, "-m", "not integration", "--strict-markers")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 2 deselected" in result.stdout
