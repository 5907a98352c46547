"""Settings from the environment, ``.env`` and ``stemhub.toml`` (in that order of weight).

Core settings use the ``STEMHUB_`` prefix (``STEMHUB_DATABASE_URL``); a plugin declares
its own :class:`PluginSettings` subclass with its own prefix and a table of
``stemhub.toml`` (``[discord]``). Tokens and keys are ``SecretStr`` so they never show in
a repr, a log line or an error.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import platformdirs
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from stemhub.errors import ConfigError

CONFIG_FILE_ENV = "STEMHUB_CONFIG"


def config_file() -> Path:
    return Path(os.environ.get(CONFIG_FILE_ENV, "stemhub.toml"))


class _SectionTomlSource(TomlConfigSettingsSource):
    """Reads one table of stemhub.toml (``None`` = the top level)."""

    def __init__(self, settings_cls: type[BaseSettings], section: str | None) -> None:
        super().__init__(settings_cls, toml_file=config_file())
        if section is not None:
            table = self.toml_data.get(section, {})
            self.toml_data = table if isinstance(table, dict) else {}
            self.init_kwargs = self.toml_data


class _LayeredSettings(BaseSettings):
    """Init args, then env, then ``.env``, then this class's table of stemhub.toml."""

    toml_section: ClassVar[str | None] = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            _SectionTomlSource(settings_cls, cls.toml_section),
            file_secret_settings,
        )


class QuotaSettings(BaseModel):
    """Limits as ``"COUNT/PERIOD"`` (``"10/hour"``, ``"3/minute"``); empty means none."""

    per_user: str | None = "20/hour"
    per_channel: str | None = None
    per_guild: str | None = "200/hour"
    per_api_key: str | None = "600/hour"
    user_cooldown_s: float = 0.0


class Settings(_LayeredSettings):
    model_config = SettingsConfigDict(
        env_prefix="STEMHUB_",
        env_file=".env",
        env_nested_delimiter="__",
        extra="ignore",
    )
    toml_section: ClassVar[str | None] = None

    data_dir: Path = Field(default_factory=lambda: platformdirs.user_data_path("stemhub"))
    database_url: str | None = None
    output_dir: Path | None = None
    public_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8750
    signing_key: SecretStr | None = None

    concurrency: int = Field(default=8, ge=1)
    separate_concurrency: int = Field(default=2, ge=1)
    default_backend: str = "auto"
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_duration_s: float = Field(default=3600.0, gt=0)
    fetch_timeout_s: float = Field(default=60.0, gt=0)
    allow_private_networks: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)
    retention_hours: float = Field(default=72.0, gt=0)
    cleanup_interval_s: float = Field(default=3600.0, gt=0)
    link_ttl_s: int = Field(default=3600, ge=60)
    progress_interval_s: float = Field(default=2.0, ge=0)
    delivery_attempts: int = Field(default=5, ge=1)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)

    stemsplit_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_STEMSPLIT_API_KEY", "STEMSPLIT_API_KEY"),
    )
    stemsplit_base_url: str = "https://stemsplit.io/api/v1"
    stemsplit_download_outputs: bool = False

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'stemhub.db'}"

    @property
    def resolved_output_dir(self) -> Path:
        return self.output_dir or self.data_dir / "outputs"

    @property
    def work_dir(self) -> Path:
        """Temp files of running jobs (downloads, uploads before a job exists)."""
        return self.data_dir / "work"

    def resolved_signing_key(self) -> bytes:
        """The key that signs download links; made once and kept in the data dir."""
        if self.signing_key is not None:
            return self.signing_key.get_secret_value().encode()
        key_file = self.data_dir / "signing.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return key_file.read_text().strip().encode()


class PluginSettings(_LayeredSettings):
    """Base for a plugin's settings: set ``env_prefix`` and ``toml_section``.

    ``require("token")`` raises :class:`ConfigError` naming the env var to set.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    toml_section: ClassVar[str | None] = None

    def require(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
            prefix = str(self.model_config.get("env_prefix", ""))
            raise ConfigError(f"{prefix}{name.upper()}", "missing")
        return value


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S] = Settings, **overrides: Any) -> S:  # type: ignore[assignment]
    return cls(**overrides)


__all__ = ["PluginSettings", "QuotaSettings", "Settings", "load_settings"]
