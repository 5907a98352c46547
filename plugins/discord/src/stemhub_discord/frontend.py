"""The Discord frontend: the gateway client, progress edits and deliveries of one hub.

``run()`` logs in with the bot token, syncs the commands (to the dev guild when one is
configured, else globally) and holds the gateway connection. Deliveries need only the
REST API, so a hub that restarted delivers its finished Discord jobs even before (or
without) a gateway connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import discord
from discord import app_commands

from stemhub import ErrorCode, Frontend, Job, JobStatus, PluginHub, Stage, StemhubError
from stemhub_discord.client import build_client, invoker_from, offer_stems
from stemhub_discord.delivery import (
    DEFAULT_ATTACHMENT_LIMIT,
    JobDelivery,
    Recipient,
    nonce_for,
    tell_undelivered,
)
from stemhub_discord.guilds import RemovedGuilds
from stemhub_discord.handlers import (
    TOKEN_PURPOSE,
    CommandHandlers,
    Invoker,
    new_reference,
    token_alive,
)
from stemhub_discord.progress import ProgressEditor
from stemhub_discord.render import error_reply, expiry_warning, progress_text, progress_view
from stemhub_discord.replies import InteractionExpired, Reply, Responder
from stemhub_discord.responders import (
    BotRest,
    InteractionResponder,
    close_quietly,
    rebuild_interaction,
)
from stemhub_discord.settings import PLATFORM, DiscordSettings
from stemhub_discord.stems import STEM_CHOICES, offered

log = logging.getLogger(__name__)

Run = Callable[[Responder, Invoker], Awaitable[None]]
ELSEWHERE_PAUSES_S = (0.5, 1.0, 0.0)
"""Rounds of trying to answer a dead interaction elsewhere, and the pause after each."""


class DiscordFrontend(Frontend):
    name = PLATFORM

    def __init__(self, hub: PluginHub, settings: DiscordSettings | None = None) -> None:
        super().__init__(hub)
        self.settings = settings or DiscordSettings()
        self.client = build_client(self.settings, self)
        self.bot = BotRest(self.client)
        self.handlers = CommandHandlers(
            hub, self.settings, self._submitted, clock=lambda: self.clock()
        )
        self.progress = ProgressEditor(
            interval_s=self.settings.progress_edit_interval_s,
            render=self._progress_line,
            edit=self._edit_progress,
            recheck_s=max(self.settings.progress_edit_interval_s, 0.1),
        )
        self._responders: dict[str, Responder] = {}
        self.removed_guilds = RemovedGuilds(hub)
        self._login_lock = asyncio.Lock()
        self.clock: Callable[[], float] = time.time
        """Seconds since the epoch; interaction tokens are judged by it (tests move it)."""

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
            secret = self.settings.token.get_secret_value() if self.settings.token else ""
            if not secret:
                raise StemhubError(
                    ErrorCode.CONFIG_MISSING,
                    "Setting DISCORD_TOKEN is missing.",
                    operator_message="Set DISCORD_TOKEN (or STEMHUB_DISCORD_TOKEN) to the bot"
                    " token from the Discord developer portal, in the environment or .env.",
                    retryable=False,
                )
            try:
                await self.client.login(secret)
            except discord.LoginFailure:
                raise StemhubError(
                    ErrorCode.CONFIG_MISSING,
                    "Discord refused the bot token.",
                    operator_message="Check DISCORD_TOKEN: Discord answered 401 to it.",
                    retryable=False,
                ) from None
            except (aiohttp.ClientError, OSError, discord.HTTPException) as error:
                raise StemhubError(
                    ErrorCode.DELIVERY_FAILED,
                    "Discord could not be reached.",
                    retryable=True,
                    operator_message=f"login failed: {type(error).__name__}",
                ) from None

    def offer_backend_stems(self) -> None:
        """Narrow /split's stems choices to what the hub's backend can do (builds it)."""
        choices = offered(self.hub, STEM_CHOICES, output_format=self.settings.default_format)
        offer_stems(self.tree, self, self.settings, choices)

    def command_payload(self) -> list[dict[str, Any]]:
        """The commands exactly as they are sent to Discord (what the sync hash covers)."""
        return [command.to_dict(self.tree) for command in self.tree.get_commands()]

    async def sync_commands(self, *, force: bool = False) -> bool:
        """Register the commands when they changed since the last sync; True if synced.

        /split offers the stems the backend can do, so another backend (or one that gained
        a stem set) changes the commands and they are synced again.

        The hash of what would be sent is kept in the hub's store, shared by every process
        (shard) of the bot; of the processes that start together, one syncs.
        """
        scope = f"guild:{self.settings.dev_guild_id}" if self.settings.dev_guild_id else "global"
        self.offer_backend_stems()
        body = json.dumps(self.command_payload(), sort_keys=True, default=str)
        digest = hashlib.sha256(body.encode()).hexdigest()
        kv = self.hub.kv(PLATFORM)
        if not force and await kv.get(f"commands:{scope}") == digest:
            log.info("Discord commands unchanged (%s); not syncing", scope)
            return False
        if not await kv.add(f"commands-sync:{scope}:{digest}", True, ttl_s=120):
            log.info("another process syncs the Discord commands (%s)", scope)
            return False
        try:
            if self.settings.dev_guild_id is not None:
                guild = discord.Object(self.settings.dev_guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            else:
                await self.tree.sync()
        except discord.HTTPException as error:
            await kv.delete(f"commands-sync:{scope}:{digest}")
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                "Discord refused the bot's commands.",
                operator_message=(
                    f"Discord {error.status} (code {error.code}) on the command sync: invite"
                    " the bot with the applications.commands scope (stemhub discord"
                    " invite-url), or check STEMHUB_DISCORD_DEV_GUILD_ID."
                ),
                retryable=False,
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            await kv.delete(f"commands-sync:{scope}:{digest}")
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "Discord could not be reached.",
                retryable=True,
                operator_message=f"command sync failed: {type(error).__name__}",
            ) from None
        await kv.put(f"commands:{scope}", digest)
        await kv.delete(f"commands-sync:{scope}:{digest}")  # from now on the hash says it
        log.info("synced the Discord commands (%s)", scope)
        return True

    async def run(self) -> None:
        await self.login()
        # the backend is built now, not on the first command's 3-second clock
        self.handlers.upload_limit()
        if self.settings.sync_commands:
            await self.sync_commands()
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise StemhubError(
                ErrorCode.CONFIG_MISSING,
                "Discord refused the bot's intents.",
                operator_message="Enable the intents in the developer portal.",
                retryable=False,
            ) from None
        except (discord.GatewayNotFound, discord.ConnectionClosed, aiohttp.ClientError) as error:
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "The Discord gateway could not be reached.",
                retryable=True,
                operator_message=f"gateway: {type(error).__name__}",
            ) from None

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
            await self._say_by_dm(interaction, responder)
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

    async def _say_by_dm(
        self, interaction: discord.Interaction[Any], responder: InteractionResponder
    ) -> None:
        """The person saw "thinking..." and the interaction died: say it elsewhere.

        A follow-up first (the response may be gone while the token works), then a DM,
        then, for a click on a public message only, the channel with a mention; a few
        rounds, as Discord's refusals are often short-lived.
        """
        reply = responder.last_reply
        if reply is None or not responder.acknowledged:
            return  # never acknowledged: Discord itself says the command failed
        reply.files, reply.ephemeral = (), True
        message = interaction.message
        public = message is not None and not message.flags.ephemeral
        for pause in ELSEWHERE_PAUSES_S:
            try:
                await responder.followup(reply)
                return
            except StemhubError as error:
                log.info("no follow-up for %s: %s", interaction.id, error.operator_message)
            try:
                await self.bot.send_dm(
                    interaction.user.id, Reply(content=reply.content, embed=reply.embed)
                )
                return
            except StemhubError as error:
                log.info("no DM for %s: %s", interaction.id, error.operator_message)
            if public and interaction.channel_id is not None:
                try:
                    await self.bot.send_channel(
                        interaction.channel_id,
                        Reply(
                            content=f"<@{interaction.user.id}>",
                            embed=reply.embed,
                            mention_user_id=interaction.user.id,
                        ),
                    )
                    return
                except StemhubError as error:
                    log.info("no channel post for %s: %s", interaction.id, error.operator_message)
            await asyncio.sleep(pause)
        log.warning("could not answer interaction %s anywhere", interaction.id)

    async def _answer(
        self, interaction: discord.Interaction[Any], responder: InteractionResponder, reply: Reply
    ) -> None:
        try:
            await responder.refuse(reply)
        except StemhubError as error:
            log.warning("could not tell the user about an error: %s", error.operator_message)
            await self._say_by_dm(interaction, responder)

    async def on_guild_removed(self, guild_id: int) -> list[str]:
        """The bot was removed from a server: its jobs are cancelled, nothing posted there."""
        return await self.removed_guilds.removed(guild_id, stop_progress=self.progress.finish)

    async def on_fresh_links(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        async def run(responder: Responder, _invoker: Invoker) -> None:
            await self.handlers.fresh_links(responder, job_id)

        await self.guarded(interaction, run)

    async def on_cancel(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        async def run(responder: Responder, invoker: Invoker) -> None:
            await self.handlers.cancel(responder, invoker, job_id)

        await self.guarded(interaction, run)

    async def on_pick(self, interaction: discord.Interaction[Any], key: str, index: int) -> None:
        async def run(responder: Responder, invoker: Invoker) -> None:
            await self.handlers.pick(responder, invoker, key, index)

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
        if self.removed_guilds.known_removed(job):
            return
        if job.id in self._responders or self._token_alive(job):
            self.progress.update(job)

    def _near_expiry(self, job: Job) -> bool:
        expires = job.origin.context.get("token_expires_at")
        if not isinstance(expires, int | float):
            return False
        return self.clock() >= float(expires) - self.settings.warn_before_expiry_s

    def _progress_line(self, job: Job) -> str:
        """The progress line; near the token's end, where the result will come instead."""
        if self._near_expiry(job):
            return expiry_warning(job, self.recipient_of(job))
        # read at each render: the line follows the queue while the job waits in it
        return progress_text(job, position=self.hub.queue_position(job.id))

    async def _edit_progress(self, job: Job, text: str) -> None:
        if self.removed_guilds.known_removed(job):
            raise InteractionExpired("The bot was removed from the server.")
        responder, alive = self.responder_for(job)
        if not alive:
            raise InteractionExpired("The interaction token expired.")
        await responder.edit_original(Reply(content=text, view=progress_view(job)))
        if self._near_expiry(job):
            # the last word in this message until the result: no progress line over it
            job.delivery["warned"] = True
            raise InteractionExpired("Warned before the interaction token expires.")

    def _token_alive(self, job: Job) -> bool:
        return token_alive(
            job.origin.context, margin_s=self.settings.token_margin_s, now=self.clock()
        )

    def responder_for(self, job: Job) -> tuple[Responder, bool]:
        """The job's interaction (live, or rebuilt from the store) and whether it still works."""
        alive = self._token_alive(job)
        cached = self._responders.get(job.id)
        if cached is not None:
            return cached, alive
        if not alive:
            return self.bot, False
        context = job.origin.context
        token = self.hub.unseal(context["token"], purpose=TOKEN_PURPOSE)
        interaction = rebuild_interaction(self.client, context["interaction"], token)
        responder = InteractionResponder(interaction, self.bot)
        self._responders[job.id] = responder
        return responder, True

    # delivery

    def recipient_of(self, job: Job) -> Recipient:
        origin = job.origin
        if origin.user_id is None:
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "This job does not say which Discord user asked.",
                retryable=False,
            )
        context = origin.context
        dm = bool(context.get("dm", False))
        return Recipient(
            user_id=int(origin.user_id),
            channel_id=int(origin.channel_id) if origin.channel_id else None,
            dm=dm,
            private=dm or bool(context.get("ephemeral", False)),
            interaction_limit=int(context.get("attachment_limit", DEFAULT_ATTACHMENT_LIMIT)),
            request_limit=self.settings.request_limit_bytes,
        )

    async def _skipped(self, job: Job) -> bool:
        """A job of a server the bot was removed from: nothing is posted there any more."""
        if not await self.removed_guilds.asked_before_removal(job):
            return False
        await self.progress.finish(job)
        self._responders.pop(job.id, None)
        job.delivery["skipped"] = "the bot was removed from the server"
        log.info("job %s: not delivered, the bot was removed from its server", job.id)
        return True

    async def deliver(self, job: Job) -> None:
        if await self._skipped(job):
            return
        recipient = self.recipient_of(job)
        await self.login()
        edits = await self.progress.finish(job)
        job.delivery["progress_edits"] = int(job.delivery.get("progress_edits", 0)) + edits
        responder, alive = self.responder_for(job)
        await JobDelivery(self.hub, job, responder, recipient, token_alive=alive).run()
        self._responders.pop(job.id, None)

    async def notify_undelivered(self, job: Job, error: StemhubError) -> None:
        """Plain text where the person will read it; a private request stays private."""
        if await self._skipped(job):
            return
        recipient = self.recipient_of(job)
        await self.login()
        await self.progress.finish(job)
        responder, alive = self.responder_for(job)
        alive = alive and not job.delivery.get("token_dead", False)
        name = job.request.source.display_name
        if job.status is JobStatus.COMPLETED:
            text = f"I could not send you the stems of {name}: {error.message}"
            try:
                links = self.hub.links(job)
            except StemhubError:
                links = {}
            lines = [text, *(f"{stem}: {url}" for stem, (url, _at) in links.items())]
            text = "\n".join(lines)
            if len(text) > 2000:
                text = lines[0] + "\nUse Get fresh links on an earlier result, or /split again."
        else:
            text = f"The split of {name} did not finish: {job.error_message or error.message}"
        try:
            where = await tell_undelivered(
                responder,
                recipient,
                text,
                token_alive=alive,
                nonce=nonce_for(job.id, "undelivered"),
            )
        finally:
            self._responders.pop(job.id, None)
        log.info("job %s: told the user it was undelivered (%s)", job.id, where)


__all__ = ["DiscordFrontend"]
