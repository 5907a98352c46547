"""The responder interface that command and delivery logic talk to, and what it sends.

Handlers never touch a ``discord.Interaction`` directly: they hand a :class:`Reply` to a
:class:`Responder`. The real responders (``responders.py``) speak to Discord through
discord.py; because the logic only sees this interface, every path (closed DMs, a dead
interaction token, a channel the bot may not post in) is reachable from a test.

Failures come back as the exceptions below, named for what the logic does next, never as
discord.py exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import discord

from stemhub import ErrorCode, StemhubError


@dataclass(frozen=True)
class OutgoingFile:
    """A stem file to upload under the name the user sees."""

    path: Path
    filename: str

    def to_discord(self) -> discord.File:
        return discord.File(self.path, filename=self.filename)


@dataclass
class Reply:
    """One message: text, an embed, files and components; ``ephemeral`` where it applies."""

    content: str | None = None
    embed: discord.Embed | None = None
    files: Sequence[OutgoingFile] = field(default_factory=tuple)
    view: discord.ui.View | None = None
    ephemeral: bool = False
    mention_user_id: int | None = None
    """Ping this user (and only this user) in a channel message."""


class Responder(Protocol):
    """Where a handler's messages go: one interaction, plus the bot's own REST access."""

    async def respond(self, reply: Reply) -> None:
        """Answer the interaction at once (no defer); used for quick refusals."""

    async def refuse(self, reply: Reply) -> None:
        """Say no privately, whether or not (and however) the interaction was deferred."""

    async def defer(self, *, ephemeral: bool = False) -> None:
        """Acknowledge within Discord's 3 seconds; the user sees "thinking..."."""

    async def edit_original(self, reply: Reply) -> None:
        """Replace the deferred response (progress, then the result)."""

    async def delete_original(self) -> None:
        """Remove the response (a public "thinking..." before a private refusal)."""

    async def followup(self, reply: Reply) -> int:
        """Another message in the interaction (ephemeral if asked); returns its id."""

    async def send_channel(self, channel_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        """Post with the bot token; ``nonce`` makes Discord drop a repeated post."""

    async def send_dm(self, user_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        """Open (or reuse) the DM channel with a user and post there with the bot token."""


class DiscordDeliveryError(StemhubError):
    """Discord refused or failed a call; subclasses say which way to fall back."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        operator_message: str | None = None,
    ) -> None:
        super().__init__(
            ErrorCode.DELIVERY_FAILED,
            message,
            retryable=retryable,
            retry_after=retry_after,
            operator_message=operator_message,
        )


class InteractionExpired(DiscordDeliveryError):
    """The interaction token is dead (15 minutes passed, 401, unknown webhook)."""


class DMClosed(DiscordDeliveryError):
    """The user cannot be DMed: closed DMs (50007) or no server in common (50278)."""


class PostForbidden(DiscordDeliveryError):
    """The bot may not post in that channel (50001, 50013, archived thread 50083, 10003)."""


class TooLargeForDiscord(DiscordDeliveryError):
    """Discord refused the upload as too large (413, code 40005)."""


class RefusedBody(DiscordDeliveryError):
    """Discord refused the message itself (400: 50035 invalid form body, 50006 empty)."""


__all__ = [
    "DMClosed",
    "DiscordDeliveryError",
    "InteractionExpired",
    "OutgoingFile",
    "PostForbidden",
    "RefusedBody",
    "Reply",
    "Responder",
    "TooLargeForDiscord",
]
