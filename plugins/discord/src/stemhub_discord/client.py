"""The discord.py client: slash commands, the message context menu, sharding, intents.

No privileged intent is needed: slash commands and context menus arrive as interactions,
and Discord includes the target message's content and attachments in a message command.
Only the ``guilds`` intent is asked for, so channels and roles resolve from the cache.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from stemhub import OutputFormat
from stemhub_discord.components import FreshLinksButton, SplitAgainSelect
from stemhub_discord.handlers import Invoker
from stemhub_discord.render import STEM_CHOICES
from stemhub_discord.responders import interaction_record
from stemhub_discord.settings import DiscordSettings
from stemhub_discord.sources import AttachmentInfo

if TYPE_CHECKING:
    from stemhub_discord.frontend import DiscordFrontend

log = logging.getLogger(__name__)

INTENTS = discord.Intents.none()
INTENTS.guilds = True


def invoker_from(interaction: discord.Interaction[Any]) -> Invoker:
    """The facts of an interaction the handlers need; the token stays in memory here."""
    user = interaction.user
    role_ids: tuple[int, ...] = ()
    if isinstance(user, discord.Member):
        # the role ids the interaction carries, whether or not the guild is cached
        role_ids = tuple(int(role) for role in user._roles)
    channel = interaction.channel
    parent_id = getattr(channel, "parent_id", None) if channel is not None else None
    return Invoker(
        interaction_id=interaction.id,
        user_id=user.id,
        channel_id=interaction.channel_id,
        guild_id=interaction.guild_id,
        token=interaction.token,
        expires_at=interaction.expires_at.timestamp(),
        record=interaction_record(interaction),
        parent_channel_id=parent_id if isinstance(parent_id, int) else None,
        role_ids=role_ids,
        manage_guild=interaction.permissions.manage_guild,
        attachment_limit=interaction.filesize_limit,
    )


def attachment_info(attachment: discord.Attachment) -> AttachmentInfo:
    return AttachmentInfo(
        url=attachment.url,
        filename=attachment.filename,
        size=attachment.size,
        content_type=attachment.content_type,
    )


class _FrontendClientMixin:
    frontend: DiscordFrontend
    tree: app_commands.CommandTree[Any]

    async def setup_hook(self) -> None:
        self.add_dynamic_items(FreshLinksButton, SplitAgainSelect)  # type: ignore[attr-defined]


class StemhubClient(_FrontendClientMixin, discord.Client):
    """One process, one gateway connection (or explicit shard ids from the config)."""


class StemhubShardedClient(_FrontendClientMixin, discord.AutoShardedClient):
    """Several shards in this process: Discord's recommended count, or the configured ids."""


def build_client(settings: DiscordSettings, frontend: DiscordFrontend) -> discord.Client:
    """The client class and shards the settings ask for, with every command registered."""
    kwargs: dict[str, Any] = {"intents": INTENTS}
    if settings.application_id is not None:
        kwargs["application_id"] = settings.application_id
    client: StemhubClient | StemhubShardedClient
    if settings.shard_ids is not None or settings.auto_shard:
        if settings.shard_ids is not None:
            kwargs["shard_ids"] = settings.shard_ids
            kwargs["shard_count"] = settings.shard_count or (max(settings.shard_ids) + 1)
        elif settings.shard_count is not None:
            kwargs["shard_count"] = settings.shard_count
        client = StemhubShardedClient(**kwargs)
    else:
        if settings.shard_count is not None:
            kwargs["shard_count"] = settings.shard_count
        client = StemhubClient(**kwargs)
    client.frontend = frontend
    client.tree = app_commands.CommandTree(client)
    register_commands(client.tree, frontend)
    return client


def register_commands(tree: app_commands.CommandTree[Any], frontend: DiscordFrontend) -> None:
    stems_choices = [app_commands.Choice(name=label, value=value) for label, value in STEM_CHOICES]
    format_choices = [app_commands.Choice(name=fmt.value, value=fmt.value) for fmt in OutputFormat]

    @app_commands.command(
        name="split", description="Split a song into stems: vocals, drums, bass..."
    )
    @app_commands.describe(
        file="The song: an audio file (MP3, WAV, FLAC, OGG, M4A)",
        url="Or a link to an audio file (or YouTube, where the bot supports it)",
        stems="Which stems you want (default: 4 stems)",
        format="File format of the stems (default: MP3)",
        dm="Send the stems to your DMs",
    )
    @app_commands.choices(stems=stems_choices, format=format_choices)
    async def split(
        interaction: discord.Interaction[Any],
        file: discord.Attachment | None = None,
        url: str | None = None,
        stems: app_commands.Choice[str] | None = None,
        format: app_commands.Choice[str] | None = None,
        dm: bool | None = None,
    ) -> None:
        async def run(responder: Any, invoker: Invoker) -> None:
            await frontend.handlers.split_attachment(
                responder,
                invoker,
                attachment=attachment_info(file) if file is not None else None,
                url=url,
                stems=stems.value if stems else None,
                output_format=format.value if format else None,
                dm=dm,
            )

        await frontend.guarded(interaction, run)

    async def split_message(
        interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        async def run(responder: Any, invoker: Invoker) -> None:
            await frontend.handlers.split_message(
                responder,
                invoker,
                attachments=[attachment_info(a) for a in message.attachments],
                content=message.content,
            )

        await frontend.guarded(interaction, run)

    admin = app_commands.Group(
        name="stemhub",
        description="stemhub administration",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )

    @admin.command(name="queue", description="Jobs waiting and running in this server, and usage")
    async def queue(interaction: discord.Interaction[Any]) -> None:
        async def run(responder: Any, invoker: Invoker) -> None:
            await frontend.handlers.queue(responder, invoker)

        await frontend.guarded(interaction, run)

    tree.add_command(split)
    tree.add_command(app_commands.ContextMenu(name="Split stems", callback=split_message))
    tree.add_command(admin)


def invite_permissions() -> discord.Permissions:
    """What the bot needs: post results (embeds, files) in channels and threads it sees."""
    return discord.Permissions(
        view_channel=True,
        send_messages=True,
        send_messages_in_threads=True,
        embed_links=True,
        attach_files=True,
    )


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id,
        permissions=invite_permissions(),
        scopes=("bot", "applications.commands"),
    )


__all__ = [
    "INTENTS",
    "StemhubClient",
    "StemhubShardedClient",
    "attachment_info",
    "build_client",
    "invite_permissions",
    "invite_url",
    "invoker_from",
    "register_commands",
]
