"""The real responders: a live (or rebuilt) ``discord.Interaction``, and the bot token's REST.

:class:`BotRest` posts with the bot token through discord.py's ``HTTPClient`` (channel
messages, DM channel creation); it works without the gateway and long after an
interaction token died. :class:`InteractionResponder` answers through the interaction's
webhook (callback, ``@original`` edits, follow-ups) and hands channel and DM posts to
:class:`BotRest`.

A job outlives the process that took the command, so the interaction is stored in
``origin.context`` (its public fields, plus the token sealed by the hub) and rebuilt with
:func:`rebuild_interaction` when progress or the result must be sent later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
from discord.utils import MISSING

from stemhub_discord.replies import (
    DiscordDeliveryError,
    DMClosed,
    InteractionExpired,
    PostForbidden,
    RefusedBody,
    Reply,
    TooLargeForDiscord,
)

log = logging.getLogger(__name__)

CANNOT_DM_USER = 50007
NO_MUTUAL_GUILDS = 50278
UNKNOWN_CHANNEL = 10003
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_INTERACTION = 10062
INVALID_WEBHOOK_TOKEN = 50027
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
ARCHIVED_THREAD = 50083
ENTITY_TOO_LARGE = 40005
DM_REFUSED = frozenset({CANNOT_DM_USER, NO_MUTUAL_GUILDS})


def _retry_after(error: discord.HTTPException) -> float | None:
    header = error.response.headers.get("Retry-After") if error.response is not None else None
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


def classify(error: discord.HTTPException, *, interaction_call: bool) -> DiscordDeliveryError:
    """What a Discord refusal means for the logic: which way to fall back."""
    detail = f"Discord {error.status} (code {error.code}): {error.text}"
    code, status = error.code, error.status
    if code in DM_REFUSED:
        return DMClosed("Discord would not let me DM you.", operator_message=detail)
    if status == 413 or code == ENTITY_TOO_LARGE:
        return TooLargeForDiscord("The files are too large.", operator_message=detail)
    if status == 429 or status >= 500:
        return DiscordDeliveryError(
            "Discord is busy; trying again shortly.",
            retryable=True,
            retry_after=_retry_after(error),
            operator_message=detail,
        )
    if interaction_call and (status in (401, 403, 404) or code == ARCHIVED_THREAD):
        return InteractionExpired("The interaction ended.", operator_message=detail)
    if status in (403, 404) or code == ARCHIVED_THREAD:
        return PostForbidden("The bot may not post there.", operator_message=detail)
    if status == 401:
        return DiscordDeliveryError("Discord refused the bot's token.", operator_message=detail)
    return RefusedBody("Discord refused the message.", operator_message=detail)


@contextlib.asynccontextmanager
async def discord_errors(*, interaction_call: bool = False) -> AsyncIterator[None]:
    """Turn discord.py's exceptions into the delivery errors the logic acts on."""
    try:
        yield
    except discord.HTTPException as error:
        raise classify(error, interaction_call=interaction_call) from None
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        raise DiscordDeliveryError(
            "Discord could not be reached; trying again shortly.",
            retryable=True,
            operator_message=f"{type(error).__name__}: {error}",
        ) from None
    except RuntimeError as error:
        if "Session is closed" not in str(error):
            raise
        # the hub is stopping: another hub (or this one, restarted) sends it
        raise DiscordDeliveryError(
            "The bot is restarting; trying again shortly.",
            retryable=True,
            operator_message="the HTTP session closed under a call",
        ) from None


def _mentions(reply: Reply) -> discord.AllowedMentions:
    if reply.mention_user_id is None:
        return discord.AllowedMentions.none()
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(reply.mention_user_id)]
    )


def _files(reply: Reply) -> list[discord.File]:
    return [item.to_discord() for item in reply.files]


class BotRest:
    """Posts with the bot token: channel messages and DMs, no interaction needed.

    As a :class:`~stemhub_discord.replies.Responder` it stands in for an interaction
    whose token is gone: every interaction call says so, and the logic falls back.
    """

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def respond(self, reply: Reply) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def refuse(self, reply: Reply) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def defer(self, *, ephemeral: bool = False) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def edit_original(self, reply: Reply) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def delete_original(self) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def followup(self, reply: Reply) -> int:
        raise InteractionExpired("There is no live interaction.")

    async def send_channel(self, channel_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        channel = self.client.get_partial_messageable(channel_id)
        return await self._send(channel, reply, nonce)

    async def send_dm(self, user_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        async with discord_errors():
            channel = await self.client.create_dm(discord.Object(user_id))
        return await self._send(channel, reply, nonce)

    async def _send(self, channel: discord.abc.Messageable, reply: Reply, nonce: str | None) -> int:
        files = _files(reply)
        options: dict[str, Any] = {"allowed_mentions": _mentions(reply)}
        if reply.content is not None:
            options["content"] = reply.content
        if reply.embed is not None:
            options["embed"] = reply.embed
        if files:
            options["files"] = files
        if reply.view is not None:
            options["view"] = reply.view
        if nonce is not None:
            options["nonce"] = nonce
        try:
            async with discord_errors():
                message = await channel.send(**options)
        finally:
            for item in files:
                item.close()
        return message.id


class InteractionResponder:
    """Answers one interaction; channel and DM posts go through the bot token."""

    def __init__(self, interaction: discord.Interaction[Any], bot: BotRest) -> None:
        self.interaction = interaction
        self.bot = bot
        self.deferred: bool | None = None
        """None: not answered yet; else whether the defer was ephemeral."""
        self.last_reply: Reply | None = None
        """What was being said when the interaction died (to say it by DM instead)."""

    @property
    def acknowledged(self) -> bool:
        return self.interaction.response.is_done()

    async def refuse(self, reply: Reply) -> None:
        """Private even after a public defer: the public "thinking..." is removed first.

        A deferred response keeps the ephemeral state of its defer (Discord cannot make
        a public message private), so a refusal after a public defer deletes that
        response and says no in an ephemeral follow-up.
        """
        reply.ephemeral = True
        if not self.interaction.response.is_done():
            await self.respond(reply)
        elif self.deferred is True:
            await self.edit_original(reply)
        else:
            await self.delete_original()
            await self.followup(reply)

    async def respond(self, reply: Reply) -> None:
        self.last_reply = reply
        files = _files(reply)
        try:
            async with discord_errors(interaction_call=True):
                await self.interaction.response.send_message(
                    content=reply.content,
                    embed=reply.embed or MISSING,
                    files=files or MISSING,
                    view=reply.view or MISSING,
                    ephemeral=reply.ephemeral,
                    allowed_mentions=_mentions(reply),
                )
        finally:
            for item in files:
                item.close()

    async def defer(self, *, ephemeral: bool = False) -> None:
        async with discord_errors(interaction_call=True):
            await self.interaction.response.defer(thinking=True, ephemeral=ephemeral)
        self.deferred = ephemeral

    async def edit_original(self, reply: Reply) -> None:
        self.last_reply = reply
        files = _files(reply)
        try:
            async with discord_errors(interaction_call=True):
                await self.interaction.edit_original_response(
                    content=reply.content,
                    embed=reply.embed,
                    attachments=files or MISSING,
                    view=reply.view,
                    allowed_mentions=_mentions(reply),
                )
        finally:
            for item in files:
                item.close()

    async def delete_original(self) -> None:
        async with discord_errors(interaction_call=True):
            await self.interaction.delete_original_response()

    async def followup(self, reply: Reply) -> int:
        self.last_reply = reply
        files = _files(reply)
        try:
            async with discord_errors(interaction_call=True):
                message = await self.interaction.followup.send(
                    content=reply.content if reply.content is not None else MISSING,
                    embed=reply.embed or MISSING,
                    files=files or MISSING,
                    view=reply.view or MISSING,
                    ephemeral=reply.ephemeral,
                    allowed_mentions=_mentions(reply),
                    wait=True,
                )
        finally:
            for item in files:
                item.close()
        return message.id

    async def send_channel(self, channel_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        return await self.bot.send_channel(channel_id, reply, nonce=nonce)

    async def send_dm(self, user_id: int, reply: Reply, *, nonce: str | None = None) -> int:
        return await self.bot.send_dm(user_id, reply, nonce=nonce)


INTERACTION_FIELDS = (
    "id",
    "application_id",
    "type",
    "version",
    "guild_id",
    "locale",
    "guild_locale",
    "attachment_size_limit",
    "app_permissions",
)


def interaction_record(interaction: discord.Interaction[Any]) -> dict[str, Any]:
    """The public fields needed to rebuild the interaction later (the token is kept apart)."""
    record: dict[str, Any] = {
        "id": str(interaction.id),
        "application_id": str(interaction.application_id),
        "type": interaction.type.value,
        "version": interaction.version,
        "attachment_size_limit": interaction.filesize_limit,
        "locale": interaction.locale.value,
        "app_permissions": str(interaction.app_permissions.value),
    }
    if interaction.guild_id is not None:
        record["guild_id"] = str(interaction.guild_id)
    if interaction.guild_locale is not None:
        record["guild_locale"] = interaction.guild_locale.value
    return record


def rebuild_interaction(
    client: discord.Client, record: dict[str, Any], token: str
) -> discord.Interaction[Any]:
    """An Interaction whose webhook calls (``@original`` edits, follow-ups) work again.

    Only the stored fields are set: enough for discord.py to address the interaction's
    webhook; nothing here answers the initial callback a second time.
    """
    payload = {key: record[key] for key in INTERACTION_FIELDS if key in record}
    payload["token"] = token
    return discord.Interaction(data=payload, state=client._connection)  # type: ignore[arg-type]


async def close_quietly(client: discord.Client) -> None:
    """Close the client's HTTP session and gateway, ignoring a half-started client."""
    with contextlib.suppress(RuntimeError, aiohttp.ClientError, asyncio.CancelledError):
        await client.close()


__all__ = [
    "BotRest",
    "InteractionResponder",
    "classify",
    "close_quietly",
    "discord_errors",
    "interaction_record",
    "rebuild_interaction",
]
