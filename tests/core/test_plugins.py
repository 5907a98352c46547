"""Plugin discovery: entry points, selection, blocking, broken plugins, hook meta-tests."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from stemhub.plugin import spec as hookspecs
from stemhub.plugin.manager import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
HOOK_NAMES = sorted(
    name for name, obj in vars(hookspecs).items() if name.startswith("stemhub_") and callable(obj)
)


def test_builtins_load_through_entry_points() -> None:
    pm = get_plugin_manager(only=())
    assert {"local", "quota"} <= pm.report.builtin
    assert "stemhub_check_quota" in pm.hooks_of("quota")


@pytest.fixture
def installed_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two third-party plugins published as real entry points of a dist-info on sys.path."""
    (tmp_path / "good_plugin.py").write_text(
        textwrap.dedent(
            """
            from stemhub import hookimpl

            @hookimpl
            def stemhub_register_backends(register):
                register("good", lambda hub: None)
            """
        )
    )
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('needs libfoo 2')\n")
    dist = tmp_path / "thirdparty_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-plugins\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[stemhub]\ngood = good_plugin\nbroken = broken_plugin\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("good_plugin", "broken_plugin"):
        sys.modules.pop(name, None)


def test_third_party_plugin_loads_and_broken_one_is_reported(installed_plugins: Path) -> None:
    pm = get_plugin_manager(only=None, block=())
    assert pm.report.loaded["good"] == "thirdparty-plugins"
    assert "needs libfoo 2" in pm.report.failed["broken"]
    assert "local" in pm.report.loaded


def test_only_and_block_select_plugins(installed_plugins: Path) -> None:
    only = get_plugin_manager(only="broken", block=())
    assert "good" in only.report.skipped and "good" not in only.report.loaded
    assert "local" in only.report.loaded, "builtins load whatever --plugins says"
    blocked = get_plugin_manager(only=None, block="good,local")
    assert {"good", "local"} <= blocked.report.blocked
    assert "local" not in blocked.report.loaded


def test_unknown_plugin_name_is_reported() -> None:
    pm = get_plugin_manager(only="no_such_plugin")
    assert pm.report.failed["no_such_plugin"] == "no installed plugin has this name"


def test_misspelled_hook_is_caught() -> None:
    from pluggy import PluginValidationError

    from stemhub import hookimpl

    class Typo:
        @hookimpl
        def stemhub_job_complete(self) -> None: ...

    with pytest.raises(PluginValidationError):
        get_plugin_manager(only=(), extra=[("typo", Typo())])


def test_every_hook_is_documented_and_tested() -> None:
    readme = (ROOT / "README.md").read_text()
    test_text = "\n".join(
        p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_plugins.py"
    )
    for name in HOOK_NAMES:
        spec = getattr(hookspecs, name)
        assert inspect.getdoc(spec), f"{name} has no docstring"
        assert name in readme, f"{name} is not in the README's hook list"
        assert re.search(rf"\b{name}\b", test_text), f"no test implements {name}"


def test_entry_point_objects_are_importable() -> None:
    for ep in (
        EntryPoint("local", "stemhub.backends.local", "stemhub"),
        EntryPoint("quota", "stemhub.quota", "stemhub"),
    ):
        assert ep.load() is not None


FRONTEND_PLUGINS = {"discord", "slack", "n8n_bridge"}
PLATFORM_LIBRARIES = ["discord", "slack_bolt", "slack_sdk", "aiohttp"]
LOAD_EVERYTHING_IDLE = """
import asyncio, json, sys
from pathlib import Path

from stemhub.config import Settings
from stemhub.hub import Hub
from stemhub.plugin.manager import get_plugin_manager, plugin_commands

pm = get_plugin_manager()
plugin_commands(pm)


async def idle_hub() -> list[str]:
    async with Hub(Settings(data_dir=Path(sys.argv[1])), pm=pm, recover=False) as hub:
        return sorted(hub.frontend_factories)


frontends = asyncio.run(idle_hub())
print(json.dumps({
    "loaded": sorted(pm.report.loaded),
    "failed": pm.report.failed,
    "frontends": frontends,
    "imported": [name for name in sys.argv[2:] if name in sys.modules],
}))
"""


def test_installed_plugins_leave_platform_libraries_unimported(tmp_path: Path) -> None:
    """Every CLI command and every hub loads every plugin; only a started frontend may
    pay for discord.py, slack_bolt/slack_sdk or aiohttp (seconds of start-up, tens of MB)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("STEMHUB_PLUGINS", "STEMHUB_BLOCK_PLUGINS")
    }
    env["STEMHUB_CONFIG"] = str(tmp_path / "absent.toml")
    done = subprocess.run(
        [sys.executable, "-c", LOAD_EVERYTHING_IDLE, str(tmp_path / "data"), *PLATFORM_LIBRARIES],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    seen = json.loads(done.stdout.splitlines()[-1])
    assert set(seen["loaded"]) >= FRONTEND_PLUGINS, seen["failed"]
    assert set(seen["frontends"]) >= FRONTEND_PLUGINS
    assert seen["imported"] == []
