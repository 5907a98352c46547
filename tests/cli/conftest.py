"""The stemhub command as a shell user meets it: in-process (CliRunner) and as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

STEMHUB = str(Path(sys.executable).with_name("stemhub"))

Shell = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder and data dir, no keys: what a newcomer has."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEMHUB_DATA_DIR", str(tmp_path / "data"))
    for name in ("STEMSPLIT_API_KEY", "STEMHUB_STEMSPLIT_API_KEY", "STEMHUB_PLUGINS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def cli(home: Path) -> CliRunner:
    return CliRunner()


@pytest.fixture
def shell(home: Path) -> Shell:
    """Run ``stemhub ARGS`` as a separate process, the way a terminal does."""

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STEMHUB, *args],
            cwd=home,
            env={**os.environ, "COLUMNS": "80", **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run
