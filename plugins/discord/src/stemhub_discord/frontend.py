"""The Discord frontend: the gateway client, progress edits and deliveries of one hub.

``run()`` logs in with the bot token, syncs the commands (to the dev guild when one is
configured, else globally) and holds the gateway connection. Deliveries need only the
REST API, so a hub that restarted delivers its finished Discord jobs even before (or
without) a gateway connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from stemhub import ErrorCode, Job, Stage, StemhubError
from stemhub.frontend import Frontend
from stemhub_discord.client import build_client, invoker_from
from stemhub_discord.delivery import DEFAULT_ATTACHMENT_LIMIT, JobDelivery, Recipient
from stemhub_discord.handlers import (
    TOKEN_PURPOSE,
    CommandHandlers,
    Invoker,
    new_reference,
    token_alive,
)
from stemhub_discord.progress import ProgressEditor
from stemhub_discord.render import error_reply, progress_text
from stemhub_discord.replies import InteractionExpired, Reply, Responder
from stemhub_discord.responders import (
    BotRest,
    InteractionResponder,
    close_quietly,
    rebuild_interaction,
)
from stemhub_discord.settings import PLATFORM, DiscordSettings

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

Run = Callable[[Responder, Invoker], Awaitable[None]]


class DiscordFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: Hub, settings: DiscordSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or DiscordSettings()
        self.client = build_client(self.settings, self)
        self.bot = BotRest(self.client)
        self.handlers = CommandHandlers(hub, self.settings, self._submitted)
        self.progress = ProgressEditor(
            interval_s=self.settings.progress_edit_interval_s,
            render=progress_text,
            edit=self._edit_progress,
        )
        self._responders: dict[str, Responder] = {}
        self._login_lock = asyncio.Lock()

    @property
    def tree(self) -> app_commands.CommandTree[Any]:
        tree: app_commands.CommandTree[Any] = self.client.tree  # type: ignore[attr-defined]
        return tree

    # connection

    async def login(self) -> None:
        """Log in for REST calls (idempotent); the gateway is :meth:`run`'s business."""
        async with self._login_lock:
            if self.client.user is not None:
                return
            if self.settings.api_base_url:
                discord.http.Route.BASE = self.settings.api_base_url.rstrip("/")
            token: str = self.settings.require("token").get_secret_value()
            try:
                await self.client.login(token)
            except discord.LoginFailure:
                raise StemhubError(
                    ErrorCode.CONFIG_MISSING,
                    "The Discord bot is not set up correctly.",
                    operator_message="Discord refused the bot token (DISCORD_TOKEN).",
                ) from None
            except (aiohttp.ClientError, OSError, discord.HTTPException) as error:
                raise StemhubError(
                    ErrorCode.DELIVERY_FAILED,
                    "Discord could not be reached.",
                    retryable=True,
                    operator_message=f"login failed: {type(error).__name__}: {error}",
                ) from None

    async def sync_commands(self) -> list[app_commands.AppCommand]:
        """Register the commands: instantly in the dev guild, else globally."""
        if self.settings.dev_guild_id is not None:
            guild = discord.Object(self.settings.dev_guild_id)
            self.tree.copy_global_to(guild=guild)
            return await self.tree.sync(guild=guild)
        return await self.tree.sync()

    async def run(self) -> None:
        await self.login()
        # the backend is built now, not on the first command's 3-second clock
        self.handlers.upload_limit()
        if self.settings.sync_commands:
            synced = await self.sync_commands()
            log.info("synced %d Discord commands", len(synced))
        await self.client.connect(reconnect=True)

    async def close(self) -> None:
        await self.progress.close()
        await close_quietly(self.client)

    # commands

    async def guarded(self, interaction: discord.Interaction[Any], run: Run) -> None:
        """Run a handler; an unexpected error shows a reference id, never a traceback."""
        responder = InteractionResponder(interaction, self.bot)
        try:
            await run(responder, invoker_from(interaction))
        except InteractionExpired as error:
            log.warning("interaction %s ended early: %s", interaction.id, error.operator_message)
        except StemhubError as error:
            reply = error_reply(
                error.code, error.message, retry_after=error.retry_after, ephemeral=True
            )
            await self._answer(interaction, responder, reply)
        except Exception:
            reference = new_reference()
            log.exception("Discord command failed (reference %s)", reference)
            reply = error_reply(ErrorCode.INTERNAL, None, reference=reference, ephemeral=True)
            await self._answer(interaction, responder, reply)

    async def _answer(
        self, interaction: discord.Interaction[Any], responder: Responder, reply: Reply
    ) -> None:
        try:
            if interaction.response.is_done():
                await responder.edit_original(reply)
            else:
                await responder.respond(reply)
        except StemhubError as error:
            log.warning("could not tell the user about an error: %s", error.operator_message)

    async def on_fresh_links(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        async def run(responder: Responder, _invoker: Invoker) -> None:
            await self.handlers.fresh_links(responder, job_id)

        await self.guarded(interaction, run)

    async def on_split_again(
        self, interaction: discord.Interaction[Any], job_id: str, stems: str
    ) -> None:
        async def run(responder: Responder, invoker: Invoker) -> None:
            await self.handlers.split_again(responder, invoker, job_id, stems)

        await self.guarded(interaction, run)

    # progress

    async def _submitted(self, job: Job, responder: Responder) -> None:
        self._responders[job.id] = responder
        self.progress.update(job)

    def on_job_event(self, job: Job) -> None:
        """A hook saw the job move: queue a (coalesced) progress edit."""
        if job.origin.platform != self.name or job.stage is Stage.DONE:
            return
        if job.id in self._responders or self._token_alive(job):
            self.progress.update(job)

    async def _edit_progress(self, job: Job, text: str) -> None:
        responder, alive = self.responder_for(job)
        if not alive:
            raise InteractionExpired("The interaction token expired.")
        await responder.edit_original(Reply(content=text))

    def _token_alive(self, job: Job) -> bool:
        return token_alive(job.origin.context, margin_s=self.settings.token_margin_s)

    def responder_for(self, job: Job) -> tuple[Responder, bool]:
        """The job's interaction (live, or rebuilt from the store) and whether it still works."""
        alive = self._token_alive(job)
        cached = self._responders.get(job.id)
        if cached is not None:
            return cached, alive
        if not alive:
            return self.bot, False
        context = job.origin.context
        token = self.hub.sealer.open(context["token"], purpose=TOKEN_PURPOSE)
        interaction = rebuild_interaction(self.client, context["interaction"], token)
        responder = InteractionResponder(interaction, self.bot)
        self._responders[job.id] = responder
        return responder, True

    # delivery

    async def deliver(self, job: Job) -> None:
        origin = job.origin
        if origin.user_id is None:
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED, "This job does not say which Discord user asked."
            )
        await self.login()
        edits = await self.progress.finish(job.id)
        job.delivery["progress_edits"] = int(job.delivery.get("progress_edits", 0)) + edits
        context = origin.context
        recipient = Recipient(
            user_id=int(origin.user_id),
            channel_id=int(origin.channel_id) if origin.channel_id else None,
            dm=bool(context.get("dm", False)),
            ephemeral=bool(context.get("ephemeral", False)),
            attachment_limit=int(context.get("attachment_limit", DEFAULT_ATTACHMENT_LIMIT)),
        )
        responder, alive = self.responder_for(job)
        await JobDelivery(self.hub, job, responder, recipient, token_alive=alive).run()
        self._responders.pop(job.id, None)


__all__ = ["DiscordFrontend"]
