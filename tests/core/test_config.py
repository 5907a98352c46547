"""Settings: environment over .env over stemhub.toml; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from stemhub.config import PluginSettings, Settings
from stemhub.errors import ConfigError, ErrorCode


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("STEMHUB_CONCURRENCY", "STEMHUB_PUBLIC_URL", "STEMSPLIT_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "stemhub.toml").write_text(
        'concurrency = 3\npublic_url = "https://toml.example"\n'
        '[quota]\nper_user = "5/minute"\n'
        '[chat]\ntoken = "from-toml"\nchannel = "general"\n'
    )
    return tmp_path


def test_toml_is_read_and_env_wins(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.concurrency == 3
    assert settings.quota.per_user == "5/minute"
    (project / ".env").write_text("STEMHUB_CONCURRENCY=5\n")
    assert Settings().concurrency == 5
    monkeypatch.setenv("STEMHUB_CONCURRENCY", "7")
    assert Settings().concurrency == 7


class ChatSettings(PluginSettings):
    model_config = SettingsConfigDict(env_prefix="STEMHUB_CHAT_", env_file=".env", extra="ignore")
    toml_section = "chat"

    token: SecretStr | None = None
    channel: str | None = None
    webhook_secret: SecretStr | None = None


def test_plugin_settings_read_their_table_and_name_what_is_missing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = ChatSettings()
    assert settings.channel == "general"
    assert settings.require("token").get_secret_value() == "from-toml"
    monkeypatch.setenv("STEMHUB_CHAT_CHANNEL", "stems")
    assert ChatSettings().channel == "stems"
    with pytest.raises(ConfigError) as caught:
        settings.require("webhook_secret")
    assert caught.value.code is ErrorCode.CONFIG_MISSING
    assert "STEMHUB_CHAT_WEBHOOK_SECRET" in caught.value.message
