"""The StemSplit backend's settings: ``STEMHUB_STEMSPLIT_*`` or ``[stemsplit]`` in stemhub.toml.

The key is also read from ``STEMSPLIT_API_KEY``, the name the hosted API's own
documentation and SDK use, so a key people already exported works unchanged. Where both
are set, ``STEMHUB_STEMSPLIT_API_KEY`` wins.

This module imports no HTTP client and no wire models: the hub reads it to decide
whether the backend is ready (``stemhub doctor``) before anything is separated.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from stemhub.config import PluginSettings

KEY_SETTING = "STEMSPLIT_API_KEY"
"""The name error messages and ``stemhub doctor`` tell people to set."""
KEY_NAMES = ("STEMHUB_STEMSPLIT_API_KEY", KEY_SETTING)
"""Every environment variable the key is read from, the first one found wins."""


class StemSplitSettings(PluginSettings):
    """How the hub reaches the hosted StemSplit API and what it keeps of its stems."""

    model_config = SettingsConfigDict(
        env_prefix="STEMHUB_STEMSPLIT_",
        env_file=".env",
        extra="ignore",
        validate_by_name=True,
    )
    toml_section: ClassVar[str | None] = "stemsplit"

    api_key: SecretStr | None = Field(default=None, validation_alias=AliasChoices(*KEY_NAMES))
    """``api_key`` in the ``[stemsplit]`` table (by its name, so no bare ``API_KEY``
    variable is ever read)."""
    base_url: str | None = None
    """Unset: the hosted API (``stemsplit_wire.DEFAULT_BASE_URL``); a fake or proxy else."""
    download_outputs: bool | None = None
    """Copy the hosted API's stems into the hub's storage; unset: when the hub serves
    result pages (``STEMHUB_PUBLIC_URL`` set), so the page can play them and links
    outlive the API's one-hour ones."""

    @property
    def has_key(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())

    def keeps_stems(self, public_url: str | None) -> bool:
        """Whether finished stems are copied into the hub's storage (see ``download_outputs``)."""
        if self.download_outputs is not None:
            return self.download_outputs
        return public_url is not None


__all__ = ["KEY_NAMES", "KEY_SETTING", "StemSplitSettings"]
