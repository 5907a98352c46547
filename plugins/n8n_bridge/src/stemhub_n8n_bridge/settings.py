"""Settings of the bridge: ``STEMHUB_N8N_BRIDGE_*`` or the ``[n8n_bridge]`` table."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from stemhub import PluginSettings, parse_limit

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
    """The whole of one webhook post (connect, send, the answer read back), not per read."""
    webhook_per_target: int = Field(default=2, ge=1)
    """Posts in flight to one receiver origin at a time."""
    webhook_concurrency: int = Field(default=64, ge=1)
    """Posts in flight in all."""
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=0)
    """How much of a receiver's answer is read (the rest is dropped with the connection)."""
    outbox_poll_s: float = Field(default=1.0, gt=0)
    read_cache_s: float = Field(default=1.0, ge=0)
    """How long a job's ``GET`` answer is reused (this hub's changes end it at once); 0: never."""
    metrics_token: SecretStr | None = None
    """When set, ``/metrics`` answers only ``Authorization: Bearer <token>`` (Prometheus'
    ``authorization`` setting); unset, it is open, as it was."""
    key_cache_s: float = Field(default=2.0, ge=0)
    """How long a checked API key is trusted in memory (revocation takes this long elsewhere)."""

    def check_config(self, http_url: str) -> str:
        """What is set up, from these settings alone (``stemhub doctor``); the bridge
        needs no secret of its own, so this only reads its limits and where it serves.
        A rate limit that does not parse raises (the bridge would refuse to start)."""
        if self.rate_limit:
            try:
                parse_limit(self.rate_limit)
            except ValueError as exc:
                raise ValueError(f"STEMHUB_N8N_BRIDGE_RATE_LIMIT: {exc}") from None
        rate = f"{self.rate_limit} per key" if self.rate_limit else "no rate limit"
        metrics = "token" if self.metrics_token is not None else "open"
        return f"serves on {http_url} with `stemhub serve`; {rate}; /metrics {metrics}"


__all__ = ["PLATFORM", "BridgeSettings"]
