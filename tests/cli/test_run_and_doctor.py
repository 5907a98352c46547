"""``run``/``serve`` start what was asked for and say what is missing; ``doctor`` is honest."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stemhub.cli import app

from .conftest import STEMHUB


def test_an_unknown_plugin_is_named(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", "--plugins", "nosuchplugin"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "error INVALID_REQUEST: There is no plugin called 'nosuchplugin'"
    )
    assert "discord" in result.stderr  # installed, though not selected


def test_a_blocked_plugin_asked_for_is_configuration(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_BLOCK_PLUGINS", "slack")
    result = cli.invoke(app, ["run", "--plugins", "slack"])
    assert result.exit_code == 3
    assert "STEMHUB_BLOCK_PLUGINS" in result.stderr and "slack" in result.stderr


def test_serve_starts_only_http(home: Path) -> None:
    env = {**os.environ, "STEMHUB_HTTP_PORT": "0", "STEMHUB_DISCORD_TOKEN": "x.y.z"}
    process = subprocess.Popen(
        [STEMHUB, "serve"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()

    assert lines[0].startswith("HTTP on http://127.0.0.1:")
    assert lines[1].startswith("stemhub running: HTTP only; backends ")
    assert "discord" not in err and "skipping" not in err


def test_doctor_says_off_for_what_is_not_set_up_and_covers_frontends(cli: CliRunner) -> None:
    result = cli.invoke(app, ["doctor"])

    lines = {
        line.split()[1:3][0] + " " + line.split()[2]: line
        for line in result.output.splitlines()
        if line.split()[1] in ("backend", "frontend")
    }
    assert lines["backend stemsplit"].startswith("off ")
    assert "STEMSPLIT_API_KEY" in lines["backend stemsplit"]
    assert lines["backend local"].startswith("ok ")
    for frontend in ("discord", "slack", "n8n_bridge"):
        assert f"frontend {frontend}" in lines
    # no token is set: no frontend that needs one may claim to be ok
    assert not lines["frontend discord"].startswith("ok")
    assert lines["frontend slack"].startswith("off ") and "STEMHUB_SLACK" in lines["frontend slack"]
    assert result.exit_code == 0
    assert "sqlite, schema" in result.output and "PyAV" in result.output
