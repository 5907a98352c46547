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
    Reply,
    TooLargeForDiscord,
)

log = logging.getLogger(__name__)

CANNOT_DM_USER = 50007
UNKNOWN_WEBHOOK = 10015
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_INTERACTION = 10062
MISSING_ACCESS = 50001
MISSING_PERMISSIONS = 50013
ENTITY_TOO_LARGE = 40005


def _retry_after(error: discord.HTTPException) -> float | None:
    header = error.response.headers.get("Retry-After") if error.response is not None else None
    try:
        return float(header) if header is not None else None
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def discord_errors(*, interaction_call: bool = False) -> AsyncIterator[None]:
    """Turn discord.py's exceptions into the delivery errors the logic acts on."""
    try:
        yield
    except discord.Forbidden as error:
        detail = f"Discord 403 (code {error.code}): {error.text}"
        if error.code == CANNOT_DM_USER:
            raise DMClosed("That user does not accept DMs.", operator_message=detail) from None
        if interaction_call:
            raise InteractionExpired("The interaction ended.", operator_message=detail) from None
        raise PostForbidden("The bot may not post there.", operator_message=detail) from None
    except discord.NotFound as error:
        detail = f"Discord 404 (code {error.code}): {error.text}"
        if interaction_call or error.code in (UNKNOWN_WEBHOOK, UNKNOWN_INTERACTION):
            raise InteractionExpired("The interaction ended.", operator_message=detail) from None
        raise PostForbidden("That channel or user is gone.", operator_message=detail) from None
    except discord.HTTPException as error:
        detail = f"Discord {error.status} (code {error.code}): {error.text}"
        if error.status == 401 or error.code == INVALID_WEBHOOK_TOKEN:
            if interaction_call:
                raise InteractionExpired(
                    "The interaction token expired.", operator_message=detail
                ) from None
            raise DiscordDeliveryError(
                "Discord refused the bot's token.", operator_message=detail
            ) from None
        if error.status == 413 or error.code == ENTITY_TOO_LARGE:
            raise TooLargeForDiscord("The files are too large.", operator_message=detail) from None
        if error.status == 429 or error.status >= 500:
            raise DiscordDeliveryError(
                "Discord is busy; trying again shortly.",
                retryable=True,
                retry_after=_retry_after(error),
                operator_message=detail,
            ) from None
        raise DiscordDeliveryError(
            "Discord refused the message.", operator_message=detail
        ) from None
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as error:
        raise DiscordDeliveryError(
            "Discord could not be reached; trying again shortly.",
            retryable=True,
            operator_message=f"{type(error).__name__}: {error}",
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

    async def defer(self, *, ephemeral: bool = False) -> None:
        raise InteractionExpired("There is no live interaction.")

    async def edit_original(self, reply: Reply) -> None:
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

    async def respond(self, reply: Reply) -> None:
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

    async def edit_original(self, reply: Reply) -> None:
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

    async def followup(self, reply: Reply) -> int:
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
    "close_quietly",
    "discord_errors",
    "interaction_record",
    "rebuild_interaction",
]
