"""Commands that split nothing load only what they use: plugin commands lazily, doctor
without a platform library, a current database without Alembic (``bench/startup.py``
times them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from stemhub._store import SCHEMA_HEAD
from stemhub.cli import app
from stemhub.plugin.manager import get_plugin_manager, plugin_commands

PLUGIN_COMMAND_MODULES = [
    "stemhub_discord.cli",
    "stemhub_slack.cli",
    "stemhub_n8n_bridge.cli",
    "stemhub.backends.demucs.cli",
    "stemhub.cluster.command",
]
PLATFORM_LIBRARIES = ["discord", "slack_bolt", "slack_sdk", "aiohttp", "celery"]
ENGINE_AND_CLIENTS = ["numpy", "httpx", "alembic", "stemhub.backends.local.worker"]

RUN_AND_LIST_MODULES = """
import json, sys
from stemhub.cli import main
try:
    main(sys.argv[1:])
except SystemExit as done:
    code = done.code
print(json.dumps({"code": code, "imported": sorted(sys.modules)}), file=sys.stderr)
"""


def run_and_list_modules(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, set[str]]:
    """(exit code, stdout, modules imported) of ``stemhub ARGS`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        cwd=home,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stderr.splitlines()[-1])
    return report["code"], done.stdout, set(report["imported"])


def test_help_lists_plugin_commands_without_importing_them(home: Path) -> None:
    code, out, imported = run_and_list_modules(home, "--help")

    assert code == 0
    for name, help_line in (
        ("discord", "Set up the Discord bot."),
        ("slack", "Slack: the app manifest"),
        ("keys", "Create, list and revoke API keys"),
        ("models", "HT-Demucs weights"),
    ):
        line = next(line for line in out.splitlines() if f" {name} " in line)
        assert help_line in line
    loaded = imported & {*PLUGIN_COMMAND_MODULES, *PLATFORM_LIBRARIES, "sqlalchemy"}
    assert not loaded, f"--help imported {sorted(loaded)}"


def test_a_plugin_command_is_imported_when_it_runs(home: Path) -> None:
    code, out, imported = run_and_list_modules(home, "keys", "--help")

    assert code == 0 and "webhook-secret" in out
    assert "stemhub_n8n_bridge.cli" in imported
    assert not imported & {"stemhub_discord.cli", "stemhub_slack.cli"}


def test_each_plugin_command_lists_the_help_of_its_own_group() -> None:
    commands = plugin_commands(get_plugin_manager(), taken=["split"])
    assert {"discord", "slack", "keys", "models", "worker"} <= set(commands)
    for name, command in commands.items():
        own = typer.main.get_group(command.app()).help or ""
        assert own.strip().splitlines()[0] == command.help, name


def test_a_blocked_plugins_command_names_the_setting(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_BLOCK_PLUGINS", "n8n_bridge")
    result = cli.invoke(app, ["keys", "list"])
    assert result.exit_code == 3
    assert result.stderr.startswith("error CONFIG_MISSING: ")
    assert "STEMHUB_BLOCK_PLUGINS" in result.stderr and "n8n_bridge" in result.stderr


def test_a_command_left_out_by_stemhub_plugins_says_so(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_PLUGINS", "discord")
    result = cli.invoke(app, ["keys", "list"])
    assert result.exit_code == 3
    assert "STEMHUB_PLUGINS" in result.stderr and "n8n_bridge" in result.stderr


@pytest.fixture
def plugin_with_a_broken_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A third-party plugin, installed as an entry point, whose command module fails."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_commands.py").write_text(
        textwrap.dedent(
            """
            from stemhub import hookimpl

            @hookimpl
            def stemhub_register_commands(register):
                register("broken", "broken_commands_cli:app", help="Never loads.")
            """
        )
    )
    (site / "broken_commands_cli.py").write_text("raise ImportError('needs libfoo 2')\n")
    dist = site / "broken_commands-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-commands\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[stemhub]\nbroken = broken_commands\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    for name in ("broken_commands", "broken_commands_cli"):
        sys.modules.pop(name, None)


@pytest.mark.usefixtures("plugin_with_a_broken_command")
def test_a_plugin_command_that_does_not_load_is_one_error_line(cli: CliRunner) -> None:
    listed = cli.invoke(app, ["--help"])
    assert listed.exit_code == 0 and "Never loads." in listed.output

    result = cli.invoke(app, ["broken", "--help"])
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error CONFIG_MISSING: The broken plugin's `broken` command failed to load: "
        "ImportError: needs libfoo 2"
    ]


def test_doctor_checks_frontends_without_their_libraries_or_alembic(home: Path) -> None:
    tokens = {
        "DISCORD_TOKEN": "abc.def.ghi",
        "STEMHUB_SLACK_BOT_TOKEN": "xoxb-1",
        "STEMHUB_SLACK_APP_TOKEN": "xapp-1",
    }
    run_and_list_modules(home, "doctor")  # the first command creates the database
    code, out, imported = run_and_list_modules(home, "doctor", env=tokens)

    assert code == 0, out
    assert _line(out, "frontend discord").startswith("ok ")
    assert "bot token set" in _line(out, "frontend discord")
    assert _line(out, "frontend slack").startswith("ok ")
    assert "Socket Mode" in _line(out, "frontend slack")
    assert _line(out, "frontend n8n_bridge").startswith("ok ")
    assert f"sqlite, schema {SCHEMA_HEAD}" in _line(out, "store")
    loaded = imported & {*PLATFORM_LIBRARIES, *ENGINE_AND_CLIENTS}
    assert not loaded, f"doctor imported {sorted(loaded)}"


def test_doctor_says_which_slack_mode_is_complete(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("STEMHUB_SLACK_MODE", "http")
    incomplete = cli.invoke(app, ["doctor"])
    assert _line(incomplete.output, "frontend slack").startswith("off ")
    assert "STEMHUB_SLACK_SIGNING_SECRET" in _line(incomplete.output, "frontend slack")

    monkeypatch.setenv("STEMHUB_SLACK_SIGNING_SECRET", "s3cret")
    complete = cli.invoke(app, ["doctor"])
    assert _line(complete.output, "frontend slack").startswith("ok ")
    assert "HTTP mode at /slack/events" in _line(complete.output, "frontend slack")
    assert "s3cret" not in complete.output and "xoxb-1" not in complete.output


def test_doctor_fails_on_a_bridge_setting_that_cannot_work(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMHUB_N8N_BRIDGE_RATE_LIMIT", "lots")
    result = cli.invoke(app, ["doctor"])
    assert result.exit_code == 1
    line = _line(result.output, "frontend n8n_bridge")
    assert line.startswith("FAIL") and "STEMHUB_N8N_BRIDGE_RATE_LIMIT" in line


def _line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if f" {name} " in line)


def test_schema_head_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from stemhub.migrations import alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
