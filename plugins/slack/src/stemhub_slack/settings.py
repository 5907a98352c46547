"""The Slack plugin's settings: ``STEMHUB_SLACK_*``, ``.env`` or ``[slack]`` in stemhub.toml.

Slack's own variable names (``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``,
``SLACK_SIGNING_SECRET``) work too, because every Slack tutorial tells people to set them.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from stemhub import ConfigError, OutputFormat, PluginSettings, StemSet

Mode = Literal["auto", "socket", "http"]

PLATFORM = "slack"
"""The ``origin.platform`` of Slack jobs and the name the frontend is registered under."""

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"


class SlackSettings(PluginSettings):
    model_config = SettingsConfigDict(
        env_prefix="STEMHUB_SLACK_", env_file=".env", extra="ignore", populate_by_name=True
    )
    toml_section = "slack"

    bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN"),
    )
    app_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_SLACK_APP_TOKEN", "SLACK_APP_TOKEN"),
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"),
    )
    client_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_SLACK_CLIENT_ID", "SLACK_CLIENT_ID"),
    )
    client_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("STEMHUB_SLACK_CLIENT_SECRET", "SLACK_CLIENT_SECRET"),
    )
    """With ``client_id``: HTTP mode installs in many workspaces through Slack's OAuth v2
    (``/slack/install``); each workspace's bot token is kept in the hub's database."""
    oauth_authorize_url: str = "https://slack.com/oauth/v2/authorize"
    token_rotation: bool = False
    """HTTP mode with the OAuth install: the manifest turns on Slack's token rotation (bot
    tokens expire after 12 hours; the hub refreshes them). Slack cannot turn it off again."""
    mode: Mode = "auto"
    """``socket`` (needs the app token), ``http`` (needs the signing secret and a public
    URL), or ``auto``: Socket Mode when an app token is set."""

    api_url: str = "https://slack.com/api/"
    """Where the Web API lives; tests point it at a local mock."""
    file_hosts: list[str] = Field(default_factory=lambda: ["files.slack.com"])
    """Hosts (``host`` or ``host:port``) that serve this workspace's private files; the
    bot token is sent to these only, and only for files Slack itself handed us."""

    command: str = "/split"
    app_name: str = "stemhub"
    default_stems: StemSet = StemSet.FOUR_STEMS
    default_format: OutputFormat = OutputFormat.MP3

    upload_stems: bool = True
    """Upload stems into the thread (``files_upload_v2``); off: post download links."""
    upload_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    """A stem larger than this is linked instead of uploaded."""

    allowed_channels: list[str] = Field(default_factory=list)
    """Channel ids where the app may be used (empty: everywhere it is invited)."""
    allowed_user_groups: list[str] = Field(default_factory=list)
    """User group ids (``S0123``) or handles (``producers``) whose members may use the
    app (empty: everyone). Needs the ``usergroups:read`` scope."""
    allow_dms: bool = True
    """Whether people may use the app in a DM with it (file uploads arrive there)."""

    channel_interval_s: float = Field(default=1.0, ge=0)
    """At most one message write (post or edit) per channel per interval, for every job
    together: Slack's one message per second per channel."""
    max_request_bytes: int = Field(default=1024 * 1024, ge=1024)
    """HTTP mode: a request body longer than this is refused (413) before it is read."""
    progress_interval_s: float = Field(default=3.0, ge=0)
    """At most one progress edit per job per interval (Slack rate-limits chat.update)."""
    group_cache_s: float = Field(default=300.0, ge=0)
    event_dedupe_s: float = Field(default=3600.0, gt=0)

    def resolved_mode(self) -> Literal["socket", "http"]:
        if self.mode != "auto":
            return self.mode
        has_app_token = self.app_token is not None and bool(self.app_token.get_secret_value())
        return "socket" if has_app_token else "http"

    def multi_workspace(self) -> bool:
        """HTTP mode with OAuth client credentials: installs in many workspaces."""
        secret = self.client_secret.get_secret_value() if self.client_secret else ""
        return self.resolved_mode() == "http" and bool(self.client_id) and bool(secret)

    def credentials(self) -> tuple[str, str]:
        """The bot token and (HTTP mode) signing secret; a missing one names its setting.

        Many-workspace installs have no bot token here (each workspace's comes with its
        install): the token is then empty.
        """
        if self.multi_workspace():
            return "", self.require("signing_secret").get_secret_value()
        mode = self.resolved_mode()
        if mode == "http" and self.mode == "auto" and self.signing_secret is None:
            raise ConfigError(
                "STEMHUB_SLACK_APP_TOKEN",
                "missing: set it (xapp-…) for Socket Mode, or set STEMHUB_SLACK_SIGNING_SECRET "
                "for HTTP mode",
            )
        token: str = self.require("bot_token").get_secret_value()
        if mode == "socket":
            self.require("app_token")
            return token, ""
        return token, self.require("signing_secret").get_secret_value()

    def check_config(self) -> str:
        """What is set up, from these settings alone (``stemhub doctor``): the credentials
        of the mode in use, or a :class:`ConfigError` naming the one that is missing.
        Whether Slack accepts them shows only when the app connects."""
        self.credentials()
        if self.multi_workspace():
            how = f"HTTP mode at {EVENTS_PATH}, installs in many workspaces ({INSTALL_PATH})"
        elif self.resolved_mode() == "socket":
            how = "bot and app tokens set, Socket Mode"
        else:
            how = f"bot token and signing secret set, HTTP mode at {EVENTS_PATH}"
        return f"{how} (Slack checks them when the app connects)"

    def is_file_host(self, url: str) -> bool:
        """Whether ``url`` is served by one of this workspace's private file hosts."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        names = {entry.lower() for entry in self.file_hosts}
        return host in names or (port is not None and f"{host}:{port}" in names)


__all__ = ["EVENTS_PATH", "INSTALL_PATH", "PLATFORM", "REDIRECT_PATH", "Mode", "SlackSettings"]
