"""The Discord plugin's settings: ``STEMHUB_DISCORD_*`` env vars or ``[discord]`` in stemhub.toml.

The bot token is also read from ``DISCORD_TOKEN``, the name most Discord tutorials use.
Per-guild policy lives in ``[discord.guilds."<guild id>"]`` tables so an operator can
restrict a server to some channels or roles without touching code.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from stemhub import ConfigError, OutputFormat, PluginSettings, StemSet

PLATFORM = "discord"
"""The ``origin.platform`` of Discord jobs and the name the frontend is registered under."""

INTERACTION_TOKEN_TTL_S = 15 * 60
"""Discord interaction tokens die 15 minutes after the command."""


class GuildPolicy(BaseModel):
    """What one server allows; empty lists allow everything."""

    allowed_channels: list[int] = Field(default_factory=list)
    """Channel ids (or the parent channel of a thread) where /split works."""
    allowed_roles: list[int] = Field(default_factory=list)
    """Role ids of which a member needs at least one."""
    dm_results: bool | None = None
    """Send results by DM in this server (None: the bot-wide default)."""


class DiscordSettings(PluginSettings):
    model_config = SettingsConfigDict(
        env_prefix="STEMHUB_DISCORD_", env_file=".env", extra="ignore"
    )
    toml_section: ClassVar[str | None] = "discord"

    token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("token", "STEMHUB_DISCORD_TOKEN", "DISCORD_TOKEN"),
    )
    application_id: int | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "application_id", "STEMHUB_DISCORD_APPLICATION_ID", "DISCORD_APPLICATION_ID"
        ),
    )
    dev_guild_id: int | None = None
    """Sync commands to this guild only (instant) instead of globally (up to an hour)."""
    sync_commands: bool = True

    shard_count: int | None = Field(default=None, ge=1)
    """Shards in all; alone, this process runs every one of them."""
    shard_ids: Annotated[list[int] | None, NoDecode] = None
    """Shards this process runs (with ``shard_count``): a large bot runs as several processes.
    From the environment as people type it (``0,1`` or ``0 1``) or as a JSON list."""

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().strip("[]").replace(",", " ").split() or None
        return value

    auto_shard: bool = False
    """Let Discord pick the shard count and run every shard in this process."""

    default_stems: StemSet = StemSet.FOUR_STEMS
    default_format: OutputFormat = OutputFormat.MP3
    dm_results: bool = False
    progress_edit_interval_s: float = Field(default=3.0, ge=0)
    """At least this long between two progress edits of one job's message."""
    token_margin_s: float = Field(default=30.0, ge=0)
    """Treat the interaction token as dead this long before its 15 minutes end."""
    request_limit_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    """The most one message's files may weigh together (Discord refuses more: 413)."""
    warn_before_expiry_s: float = Field(default=120.0, ge=0)
    """Say where the result will come this long before the interaction token dies."""
    dm_commands: bool = False
    """Offer /split in the bot's DMs too (no server's channel and role rules apply there)."""
    api_base_url: str | None = None
    """Another Discord REST base (an HTTP proxy in front of Discord, or a test double)."""
    guilds: dict[int, GuildPolicy] = Field(default_factory=dict)

    def check_config(self) -> str:
        """What is set up, from these settings alone (``stemhub doctor``; the frontend
        refuses to be built without it): a missing token raises :class:`ConfigError`.
        Whether Discord accepts the token shows only when the bot logs in."""
        if self.token is None or not self.token.get_secret_value():
            raise ConfigError("DISCORD_TOKEN", "missing")
        if not self.sync_commands:
            commands = "commands not synced by the bot"
        elif self.dev_guild_id is not None:
            commands = f"commands synced to guild {self.dev_guild_id}"
        else:
            commands = "commands synced globally"
        shards = ""
        if self.auto_shard:
            shards = ", shards chosen by Discord"
        elif self.shard_count is not None:
            mine = self.shard_ids if self.shard_ids is not None else "all"
            shards = f", shards {mine} of {self.shard_count}"
        return f"bot token set (Discord checks it at login), {commands}{shards}"

    def policy_for(self, guild_id: int | str | None) -> GuildPolicy:
        if guild_id is None:
            return GuildPolicy()
        return self.guilds.get(int(guild_id), GuildPolicy())

    def dm_results_in(self, guild_id: int | str | None) -> bool:
        chosen = self.policy_for(guild_id).dm_results
        return self.dm_results if chosen is None else chosen


__all__ = ["INTERACTION_TOKEN_TTL_S", "PLATFORM", "DiscordSettings", "GuildPolicy"]
