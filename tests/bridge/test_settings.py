"""The hub settings a self-hosted n8n user types, as they type them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stemhub.config import Settings


@pytest.mark.parametrize(
    ("typed", "hosts"),
    [
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1, n8n.lan,10.0.0.0/8", ["127.0.0.1", "n8n.lan", "10.0.0.0/8"]),
        ('["127.0.0.1", "::1"]', ["127.0.0.1", "::1"]),
        ("", []),
    ],
)
def test_allowed_hosts_read_as_typed(
    typed: str, hosts: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STEMHUB_ALLOWED_HOSTS", typed)
    monkeypatch.setenv("STEMHUB_CONFIG", str(tmp_path / "none.toml"))
    assert Settings().allowed_hosts == hosts
