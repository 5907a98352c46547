"""Settings of the bridge: ``STEMHUB_N8N_BRIDGE_*`` or the ``[n8n_bridge]`` table."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stemhub.config import PluginSettings

PLATFORM = "n8n_bridge"
"""The ``origin.platform`` of bridge jobs and the name the frontend is registered under."""


class BridgeSettings(PluginSettings):
    model_config = SettingsConfigDict(
        env_prefix="STEMHUB_N8N_BRIDGE_", env_file=".env", extra="ignore"
    )
    toml_section: ClassVar[str | None] = "n8n_bridge"

    rate_limit: str | None = "60/minute"
    """Requests per API key, as ``COUNT/PERIOD`` (StemSplit allows 60 a minute); empty: none."""
    upload_ttl_s: int = Field(default=900, ge=10)
    """How long a presigned upload URL stays valid (15 minutes, as the hosted API)."""
    max_wait_s: float = Field(default=55.0, ge=0)
    """The most ``wait`` a ``POST /v1/split`` may ask for (n8n gives up after ~60 s)."""
    webhook_retry_hours: float = Field(default=26.0, gt=0)
    """How long an undelivered webhook is retried (at least a day)."""
    webhook_disable_after: int = Field(default=10, ge=1)
    """Failures in a row (spanning a day) after which a subscription is disabled."""
    webhook_disable_after_s: float = Field(default=24 * 3600.0, ge=0)
    webhook_first_retry_s: float = Field(default=5.0, gt=0)
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    outbox_poll_s: float = Field(default=1.0, gt=0)
    key_cache_s: float = Field(default=2.0, ge=0)
    """How long a checked API key is trusted in memory (revocation takes this long elsewhere)."""


__all__ = ["PLATFORM", "BridgeSettings"]
