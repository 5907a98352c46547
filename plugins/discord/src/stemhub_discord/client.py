"""The discord.py client: slash commands, the message context menu, sharding, intents.

No privileged intent is needed: slash commands and context menus arrive as interactions,
and Discord includes the target message's content and attachments in a message command.
Only the ``guilds`` intent is asked for, so channels and roles resolve from the cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from stemhub import OutputFormat
from stemhub_discord.components import (
    CancelButton,
    FreshLinksButton,
    PickAttachmentSelect,
    SplitAgainSelect,
)
from stemhub_discord.handlers import Invoker
from stemhub_discord.responders import interaction_record
from stemhub_discord.settings import DiscordSettings
from stemhub_discord.sources import AttachmentInfo
from stemhub_discord.stems import STEM_CHOICES, stems_label

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
        self.add_dynamic_items(  # type: ignore[attr-defined]
            FreshLinksButton, SplitAgainSelect, CancelButton, PickAttachmentSelect
        )

    async def on_guild_remove(self, guild: discord.Guild) -> None:
        """The bot left the server or was removed (an outage is ``guild_unavailable``)."""
        await self.frontend.on_guild_removed(guild.id)


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
    if settings.shard_ids is not None or settings.auto_shard or settings.shard_count:
        # a shard count alone: this process runs every shard (each IDENTIFY names its
        # shard); without a count Discord's recommendation (/gateway/bot) is used
        if settings.shard_ids is not None:
            kwargs["shard_ids"] = settings.shard_ids
            kwargs["shard_count"] = settings.shard_count or (max(settings.shard_ids) + 1)
        elif settings.shard_count is not None:
            kwargs["shard_count"] = settings.shard_count
        client = StemhubShardedClient(**kwargs)
    else:
        client = StemhubClient(**kwargs)
    client.frontend = frontend
    client.tree = app_commands.CommandTree(client)
    register_commands(client.tree, frontend, settings)
    return client


def _contexts(settings: DiscordSettings) -> app_commands.AppCommandContext:
    return app_commands.AppCommandContext(guild=True, dm_channel=settings.dm_commands)


INSTALLS = app_commands.AppInstallationType(guild=True)


def split_command(
    frontend: DiscordFrontend,
    settings: DiscordSettings,
    stems: Sequence[tuple[str, str]] = STEM_CHOICES,
) -> app_commands.Command[Any, ..., None]:
    """/split, offering the (label, value) ``stems`` choices.

    The option is a plain string with choices, not a ``Choice`` (which discord.py checks
    against the choices it knows): a value from a command registered before the choices
    changed reaches the handler, which refuses it in words rather than failing.
    """
    stems_choices = [app_commands.Choice(name=label, value=value) for label, value in stems]
    format_choices = [app_commands.Choice(name=fmt.value, value=fmt.value) for fmt in OutputFormat]
    default = stems_label(settings.default_stems)

    @app_commands.command(
        name="split", description="Split a song into stems: vocals, drums, bass..."
    )
    @app_commands.describe(
        file="The song: an audio file (MP3, WAV, FLAC, OGG, M4A)",
        url="Or a link to an audio file (or YouTube, where the bot supports it)",
        stems=f"Which stems you want (default: {default})"[:100],
        format="File format of the stems (default: MP3)",
        dm="Send the stems to your DMs",
    )
    @app_commands.choices(stems=stems_choices, format=format_choices)
    async def split(
        interaction: discord.Interaction[Any],
        file: discord.Attachment | None = None,
        url: str | None = None,
        stems: str | None = None,
        format: app_commands.Choice[str] | None = None,
        dm: bool | None = None,
    ) -> None:
        async def run(responder: Any, invoker: Invoker) -> None:
            await frontend.handlers.split_attachment(
                responder,
                invoker,
                attachment=attachment_info(file) if file is not None else None,
                url=url,
                stems=stems,
                output_format=format.value if format else None,
                dm=dm,
            )

        await frontend.guarded(interaction, run)

    split.allowed_contexts, split.allowed_installs = _contexts(settings), INSTALLS
    return split


def offer_stems(
    tree: app_commands.CommandTree[Any],
    frontend: DiscordFrontend,
    settings: DiscordSettings,
    stems: Sequence[tuple[str, str]],
) -> None:
    """Replace /split with one that offers these stems (what the backend can do)."""
    tree.remove_command("split")
    tree.add_command(split_command(frontend, settings, stems))


def register_commands(
    tree: app_commands.CommandTree[Any], frontend: DiscordFrontend, settings: DiscordSettings
) -> None:
    """/split, "Split stems" and /stemhub queue; where they may be used follows the settings.

    Every command states its ``contexts`` and ``integration_types``: servers only, unless
    ``dm_commands`` also offers /split and "Split stems" in the bot's DMs (where no
    server's channel and role rules apply). /split offers every stem choice here; the
    frontend narrows them to what the backend can do before it syncs (:func:`offer_stems`).
    """

    async def split_message(
        interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        async def run(responder: Any, invoker: Invoker) -> None:
            # a forwarded message carries its content in snapshots
            attachments = [attachment_info(a) for a in message.attachments]
            content = [message.content]
            for snapshot in message.message_snapshots:
                attachments += [attachment_info(a) for a in snapshot.attachments]
                content.append(snapshot.content)
            await frontend.handlers.split_message(
                responder, invoker, attachments=attachments, content="\n".join(content)
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

    menu = app_commands.ContextMenu(name="Split stems", callback=split_message)
    menu.allowed_contexts, menu.allowed_installs = _contexts(settings), INSTALLS
    admin.allowed_contexts = app_commands.AppCommandContext(guild=True)
    admin.allowed_installs = INSTALLS
    tree.add_command(split_command(frontend, settings))
    tree.add_command(menu)
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
    "offer_stems",
    "register_commands",
    "split_command",
]
