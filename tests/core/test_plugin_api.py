"""Plugins use the public plugin API only: ``from stemhub import NAME`` with NAME in __all__."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import stemhub

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_SOURCES = sorted(
    [*ROOT.glob("plugins/*/src/**/*.py"), *ROOT.glob("examples/**/*.py")],
)


# Private imports a plugin may still make, per file, while a public way is built: an
# allowance no longer used fails, so the list only gets shorter. Empty: the bridge uses
# PluginHub.outbox, PluginHub.hit_rate_window and open_plugin_state (docs/adr/0001).
ALLOWED: dict[str, set[str]] = {}


def _private_imports(path: Path) -> list[str]:
    """Each import of the core that is not a public name, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module == "stemhub":
                hidden = [a.name for a in node.names if a.name not in stemhub.__all__]
                if hidden:
                    found.append(f"{node.lineno}: from stemhub import {', '.join(hidden)}")
            elif module.startswith("stemhub."):
                found.append(f"{node.lineno}: from {module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("stemhub."):
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def test_there_are_plugins_to_check() -> None:
    assert len(PLUGIN_SOURCES) > 20


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path: Path) -> None:
    allowed = ALLOWED.get(str(path.relative_to(ROOT)), set())
    found = {line.split(": ", 1)[1] for line in _private_imports(path)}
    assert found - allowed == set()
    assert allowed - found == set(), "an allowance is no longer needed: remove it"


def test_the_checker_catches_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from stemhub import Job, Hub\nfrom stemhub._store import Store\nimport stemhub.hub\n"
    )
    assert _private_imports(bad) == [
        "1: from stemhub import Hub",
        "2: from stemhub._store import ...",
        "3: import stemhub.hub",
    ]


def test_every_public_name_exists() -> None:
    for name in stemhub.__all__:
        assert getattr(stemhub, name) is not None, name
