"""The StemSplit backend's own settings: the names people set, ``[stemsplit]``, secrecy.

The key is read from ``STEMSPLIT_API_KEY`` (the hosted API's own name) and from
``STEMHUB_STEMSPLIT_API_KEY``, from ``.env`` and from the ``[stemsplit]`` table of
stemhub.toml; whichever it came from, it never shows in a repr, a str or a dump.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stemhub.backends.stemsplit.settings import StemSplitSettings
from stemhub.hub import Hub
from stemhub.models import JobRequest, Source, SourceKind, StemSet
from stemhub.plugin.manager import get_plugin_manager
from stemhub.testing import make_settings

KEY = "sk_live_never-shown-7731"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder (no .env, no stemhub.toml) and no StemSplit variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STEMHUB_CONFIG", raising=False)
    for name in ("STEMHUB_STEMSPLIT_BASE_URL", "STEMHUB_STEMSPLIT_DOWNLOAD_OUTPUTS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def secret_of(settings: StemSplitSettings) -> str | None:
    return None if settings.api_key is None else settings.api_key.get_secret_value()


def assert_never_shown(settings: StemSplitSettings, secret: str) -> None:
    for shown in (
        repr(settings),
        str(settings),
        str(settings.model_dump()),
        settings.model_dump_json(),
    ):
        assert secret not in shown


@pytest.mark.parametrize("name", ["STEMSPLIT_API_KEY", "STEMHUB_STEMSPLIT_API_KEY"])
def test_the_key_is_read_from_either_variable_and_never_shown(
    project: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    assert not StemSplitSettings().has_key
    monkeypatch.setenv(name, KEY)
    settings = StemSplitSettings()
    assert secret_of(settings) == KEY and settings.has_key
    assert_never_shown(settings, KEY)


def test_the_prefixed_variable_wins_when_both_are_set(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEMSPLIT_API_KEY", "sk_live_the-shell-one")
    monkeypatch.setenv("STEMHUB_STEMSPLIT_API_KEY", KEY)
    assert secret_of(StemSplitSettings()) == KEY


def test_the_key_in_dot_env_is_read(project: Path) -> None:
    (project / ".env").write_text(f"STEMSPLIT_API_KEY={KEY}\n")
    assert secret_of(StemSplitSettings()) == KEY


def test_the_stemsplit_table_is_read_and_the_environment_wins(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "stemhub.toml").write_text(
        'public_url = "https://hub.example.test"\n'
        "[stemsplit]\n"
        f'api_key = "{KEY}"\n'
        'base_url = "http://127.0.0.1:9/api/v1"\n'
        "download_outputs = false\n"
    )
    settings = StemSplitSettings()
    assert secret_of(settings) == KEY
    assert settings.base_url == "http://127.0.0.1:9/api/v1"
    assert settings.keeps_stems("https://hub.example.test") is False
    assert_never_shown(settings, KEY)

    monkeypatch.setenv("STEMSPLIT_API_KEY", "sk_live_from-the-shell")
    monkeypatch.setenv("STEMHUB_STEMSPLIT_DOWNLOAD_OUTPUTS", "true")
    settings = StemSplitSettings()
    assert secret_of(settings) == "sk_live_from-the-shell"
    assert settings.keeps_stems(None) is True


async def test_a_hub_picks_the_hosted_api_only_with_a_key_from_the_environment(
    tmp_path: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = JobRequest(
        source=Source(kind=SourceKind.FILE, path=str(tmp_path / "song.wav")),
        stems=StemSet.FOUR_STEMS,
    )
    settings = make_settings(tmp_path / "data")
    monkeypatch.setenv("STEMSPLIT_API_KEY", "")
    async with Hub(settings, pm=get_plugin_manager(only=())) as hub:
        assert hub.choose_backend(request)[0] != "stemsplit"
    monkeypatch.setenv("STEMSPLIT_API_KEY", KEY)
    async with Hub(settings, pm=get_plugin_manager(only=())) as hub:
        assert hub.choose_backend(request) == ("stemsplit", "STEMSPLIT_API_KEY is set")
        assert KEY not in repr(hub.backend("stemsplit"))
