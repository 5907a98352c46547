"""What each command does, written against the :class:`Responder` interface.

``/split``, "Split stems" on a message, "Get fresh links", "Split again as ..." and
``/stemhub queue`` all land here with an :class:`Invoker` (the facts of the interaction)
and a responder. Cheap checks (type, size, access) run before anything is sent, so a
refusal is one ephemeral message; anything else is deferred first and then submitted to
the hub, which downloads the attachment at once (Discord CDN links expire).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import discord

from stemhub import (
    ErrorCode,
    Job,
    JobRequest,
    JobStatus,
    Origin,
    OutputFormat,
    RequestRejected,
    Source,
    SourceKind,
    StemhubError,
    StemSet,
)
from stemhub.models import utcnow
from stemhub_discord.access import check_access
from stemhub_discord.delivery import DEFAULT_ATTACHMENT_LIMIT
from stemhub_discord.render import (
    error_reply,
    parse_stems,
    result_embed,
    result_view,
)
from stemhub_discord.replies import InteractionExpired, Reply, Responder
from stemhub_discord.settings import DiscordSettings
from stemhub_discord.sources import (
    AttachmentInfo,
    source_from_attachment,
    source_from_link,
    source_from_message,
)
from stemhub_discord.texts import human_duration

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "discord-interaction-token"  # noqa: S105 - a label, not a secret

OnSubmitted = Callable[[Job, Responder], Awaitable[None]]


@dataclass(frozen=True)
class Invoker:
    """The facts of one interaction that the logic needs (built from discord.Interaction)."""

    interaction_id: int
    user_id: int
    channel_id: int | None
    guild_id: int | None
    token: str
    expires_at: float
    record: dict[str, Any]
    parent_channel_id: int | None = None
    role_ids: tuple[int, ...] = ()
    manage_guild: bool = False
    attachment_limit: int = DEFAULT_ATTACHMENT_LIMIT


def new_reference() -> str:
    return uuid.uuid4().hex[:8]


class CommandHandlers:
    def __init__(self, hub: Hub, settings: DiscordSettings, on_submitted: OnSubmitted) -> None:
        self.hub = hub
        self.settings = settings
        self.on_submitted = on_submitted

    def upload_limit(self) -> int:
        """The largest file the backend in use and the hub accept, in bytes."""
        probe = JobRequest(source=Source(kind=SourceKind.URL, url="https://discord.invalid/"))
        name, _why = self.hub.choose_backend(probe)
        caps = self.hub.backend(name).capabilities
        return min(x for x in (caps.max_bytes, self.hub.settings.max_upload_bytes) if x)

    def origin_for(self, invoker: Invoker, *, dm: bool) -> Origin:
        context: dict[str, Any] = {
            "interaction": invoker.record,
            "token": self.hub.sealer.seal(invoker.token, purpose=TOKEN_PURPOSE),
            "token_expires_at": invoker.expires_at,
            "dm": dm,
            "ephemeral": dm,
            "attachment_limit": invoker.attachment_limit,
            "roles": [str(role) for role in invoker.role_ids],
            "manage_guild": invoker.manage_guild,
        }
        if invoker.parent_channel_id is not None:
            context["parent_channel_id"] = str(invoker.parent_channel_id)
        return Origin(
            platform="discord",
            user_id=str(invoker.user_id),
            channel_id=str(invoker.channel_id) if invoker.channel_id else None,
            guild_id=str(invoker.guild_id) if invoker.guild_id else None,
            thread_id=str(invoker.channel_id) if invoker.parent_channel_id else None,
            context=context,
        )

    async def refuse(self, responder: Responder, error: StemhubError) -> None:
        await responder.respond(
            error_reply(error.code, error.message, retry_after=error.retry_after, ephemeral=True)
        )

    # /split and "Split stems"

    async def split_attachment(
        self,
        responder: Responder,
        invoker: Invoker,
        *,
        attachment: AttachmentInfo | None,
        url: str | None,
        stems: str | None,
        output_format: str | None,
        dm: bool | None,
    ) -> Job | None:
        try:
            if attachment is not None and url:
                raise RequestRejected(
                    ErrorCode.INVALID_REQUEST, "Give either a file or a link, not both."
                )
            if attachment is not None:
                source = source_from_attachment(attachment, max_bytes=self.upload_limit())
            elif url:
                source = source_from_link(url)
            else:
                raise RequestRejected(
                    ErrorCode.INVALID_REQUEST, "Attach an audio file or give a link to one."
                )
        except StemhubError as error:
            await self.refuse(responder, error)
            return None
        return await self.split(
            responder,
            invoker,
            source=source,
            stems=parse_stems(stems) if stems else self.settings.default_stems,
            output_format=OutputFormat(output_format) if output_format else None,
            dm=dm,
        )

    async def split_message(
        self,
        responder: Responder,
        invoker: Invoker,
        *,
        attachments: Iterable[AttachmentInfo],
        content: str,
    ) -> Job | None:
        try:
            source = source_from_message(attachments, content, max_bytes=self.upload_limit())
        except StemhubError as error:
            await self.refuse(responder, error)
            return None
        return await self.split(
            responder, invoker, source=source, stems=self.settings.default_stems
        )

    async def split(
        self,
        responder: Responder,
        invoker: Invoker,
        *,
        source: Source,
        stems: StemSet | list[str],
        output_format: OutputFormat | None = None,
        dm: bool | None = None,
    ) -> Job | None:
        """Check, defer, submit; the job's progress and result follow from the hub."""
        wants_dm = self.settings.dm_results_in(invoker.guild_id) if dm is None else dm
        origin = self.origin_for(invoker, dm=wants_dm)
        try:
            check_access(self.settings, origin)
            request = JobRequest(
                source=source,
                stems=stems,
                output_format=output_format or self.settings.default_format,
                origin=origin,
                idempotency_key=f"discord:{invoker.interaction_id}",
                metadata={"discord_user": str(invoker.user_id)},
            )
        except StemhubError as error:
            await self.refuse(responder, error)
            return None
        try:
            await responder.defer(ephemeral=wants_dm)
        except InteractionExpired as error:
            log.warning("could not defer interaction in time: %s", error.operator_message)
            return None
        try:
            job = await self.hub.submit(request)
        except StemhubError as error:
            await responder.edit_original(
                error_reply(error.code, error.message, retry_after=error.retry_after)
            )
            return None
        await self.on_submitted(job, responder)
        return job

    async def split_again(
        self, responder: Responder, invoker: Invoker, job_id: str, stems: str
    ) -> Job | None:
        previous = await self.hub.get_job(job_id)
        if previous is None:
            await self.refuse(
                responder, StemhubError(ErrorCode.NOT_FOUND, "That song is no longer kept.")
            )
            return None
        return await self.split(
            responder,
            invoker,
            source=previous.request.source,
            stems=parse_stems(stems),
            output_format=previous.request.output_format,
            dm=bool(previous.origin.context.get("dm", False)),
        )

    # buttons

    async def fresh_links(self, responder: Responder, job_id: str) -> None:
        job = await self.hub.get_job(job_id)
        if job is None or job.status is not JobStatus.COMPLETED:
            await self.refuse(
                responder, StemhubError(ErrorCode.NOT_FOUND, "That result is no longer kept.")
            )
            return
        local = all(
            (path := self.hub.outputs.path_of(job, output)) is not None and path.is_file()
            for output in job.outputs.values()
        )
        try:
            if not local:
                job = await self.hub.refresh_links(job_id)
            links = dict(self.hub.outputs.output_links(job))
        except StemhubError as error:
            await self.refuse(responder, error)
            return
        if not links:
            await self.refuse(
                responder,
                StemhubError(ErrorCode.NOT_FOUND, "The stems of this song are no longer kept."),
            )
            return
        embed = result_embed(job, links=links, attached=set())
        await responder.respond(
            Reply(embed=embed, view=result_view(job, has_links=True), ephemeral=True)
        )

    # /stemhub queue

    async def queue(self, responder: Responder, invoker: Invoker) -> None:
        if invoker.guild_id is None or not invoker.manage_guild:
            await self.refuse(
                responder,
                StemhubError(
                    ErrorCode.FORBIDDEN, "Only members who can manage this server see the queue."
                ),
            )
            return
        await responder.respond(
            Reply(embed=await self.queue_embed(invoker.guild_id), ephemeral=True)
        )

    async def queue_embed(self, guild_id: int) -> discord.Embed:
        store = self.hub.store
        guild = str(guild_id)
        unfinished = await store.list_jobs(
            statuses=[JobStatus.QUEUED, JobStatus.RUNNING], platform="discord", limit=500
        )
        here = [job for job in unfinished if job.origin.guild_id == guild]
        since = utcnow() - timedelta(hours=24)
        recent = [
            job
            for job in await store.list_jobs(platform="discord", limit=1000)
            if job.origin.guild_id == guild and job.created_at >= since
        ]
        counts = await store.count_by_status()
        embed = discord.Embed(title="stemhub queue", colour=discord.Colour.blurple())
        lines = []
        for job in here[:10]:
            age = human_duration((utcnow() - job.created_at).total_seconds())
            what = job.stage.value if job.status is JobStatus.RUNNING else "queued"
            progress = f" {job.progress:.0f}%" if job.status is JobStatus.RUNNING else ""
            lines.append(
                f"`{job.id[:8]}` <@{job.origin.user_id}> {job.request.source.display_name[:40]}"
                f" \N{MIDDLE DOT} {what}{progress} \N{MIDDLE DOT} {age} ago"
            )
        embed.add_field(
            name=f"This server: {len(here)} waiting or running",
            value="\n".join(lines) or "Nothing in the queue.",
            inline=False,
        )
        by_status = Counter(job.status.value for job in recent)
        by_user = Counter(job.origin.user_id for job in recent).most_common(5)
        usage = [f"{len(recent)} splits in the last 24 hours"]
        usage += [f"{status.lower()}: {n}" for status, n in sorted(by_status.items())]
        usage += [f"<@{user}>: {n}" for user, n in by_user]
        embed.add_field(name="Usage", value="\n".join(usage), inline=False)
        whole = ", ".join(f"{status.lower()} {n}" for status, n in sorted(counts.items()))
        embed.set_footer(text=f"whole hub: {whole or 'no jobs'}"[:2048])
        embed.timestamp = utcnow()
        return embed


def token_alive(context: dict[str, Any], *, margin_s: float, now: float | None = None) -> bool:
    expires = context.get("token_expires_at")
    if not isinstance(expires, int | float) or not context.get("token"):
        return False
    return (now if now is not None else time.time()) < float(expires) - margin_s


__all__ = [
    "TOKEN_PURPOSE",
    "CommandHandlers",
    "Invoker",
    "new_reference",
    "token_alive",
]
