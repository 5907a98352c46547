"""Settings from the environment, ``.env`` and ``stemhub.toml`` (in that order of weight).

Core settings use the ``STEMHUB_`` prefix (``STEMHUB_DATABASE_URL``); a plugin declares
its own :class:`PluginSettings` subclass with its own prefix and a table of
``stemhub.toml`` (``[discord]``). Tokens and keys are ``SecretStr`` so they never show in
a repr, a log line or an error.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

import platformdirs
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
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


# read, never bound: a link cannot point at a wildcard address
_LOOPBACK_FOR = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104
"""Wildcard bind addresses and the loopback address a link on this machine uses."""


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
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Hosts/networks fetches and webhooks may reach although private: ``127.0.0.1,10.0.0.0/8``."""

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        """``a,b`` or ``a b`` as people type it; a JSON list still works."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.replace(",", " ").split() if part]
        return value

    retention_hours: float = Field(default=72.0, gt=0)
    cleanup_interval_s: float = Field(default=3600.0, gt=0)
    link_ttl_s: int = Field(default=3600, ge=60)
    progress_interval_s: float = Field(default=2.0, ge=0)
    delivery_attempts: int = Field(default=5, ge=1)
    # recovery: a crashed hub's jobs come back within about lease_s + recovery_interval_s
    lease_s: float = Field(default=10.0, gt=0)
    recovery_interval_s: float = Field(default=2.0, gt=0)
    fair_scheduling: bool = True
    quota: QuotaSettings = Field(default_factory=QuotaSettings)

    operator_token: SecretStr | None = None
    """Opens the operator page (``/operator``); unset, the page does not exist."""

    # scale-out (stemhub.cluster): unset broker = one process, as in the quick start
    broker_url: SecretStr | None = None
    broker_visibility_timeout_s: float = Field(default=3600.0, gt=0)
    """Redis brokers only: an unacknowledged task goes back to the queue this late
    (a killed worker's task waits this long; keep it above the longest separation)."""
    broker_lost_task_s: float | None = Field(default=None, gt=0)
    """A task that shows no sign of a worker this long (not taken, no run lease, no
    progress) is taken as lost by the broker and published again under the same task id
    (workers still run it once); after two such tries the job fails with a message for the
    person. Unset: ``broker_visibility_timeout_s``."""

    @property
    def lost_task_after_s(self) -> float:
        return self.broker_lost_task_s or self.broker_visibility_timeout_s

    @field_validator("broker_url", mode="before")
    @classmethod
    def _empty_broker_is_none(cls, value: Any) -> Any:
        """``STEMHUB_BROKER_URL=`` (an empty line in .env) means no broker, not Celery's
        default of a RabbitMQ on localhost."""
        return None if isinstance(value, str) and not value.strip() else value

    object_store_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'stemhub.db'}"

    @property
    def http_url(self) -> str:
        """The base URL clients of the hub's HTTP app use: ``public_url``, else the
        server's own address, where a wildcard host (``0.0.0.0``) reads as loopback."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = _LOOPBACK_FOR.get(self.http_host, self.http_host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.http_port}"

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
