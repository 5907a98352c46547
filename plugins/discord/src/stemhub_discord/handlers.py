"""What each command does, written against the :class:`Responder` interface.

``/split``, "Split stems" on a message, "Get fresh links", "Split again as ..." and
``/stemhub queue`` all land here with an :class:`Invoker` (the facts of the interaction)
and a responder. Cheap checks (type, size, access) run before anything is sent, so a
refusal is one ephemeral message; anything else is deferred first and then submitted to
the hub, which downloads the attachment at once (Discord CDN links expire).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import discord

from stemhub import (
    ErrorCode,
    Job,
    JobRequest,
    JobStatus,
    Origin,
    OutputFormat,
    PluginHub,
    RequestRejected,
    Source,
    SourceKind,
    StemhubError,
    StemSet,
    utcnow,
)
from stemhub_discord.access import check_access
from stemhub_discord.delivery import DEFAULT_ATTACHMENT_LIMIT
from stemhub_discord.render import error_reply, pick_reply, result_embed, result_view
from stemhub_discord.replies import InteractionExpired, Reply, Responder
from stemhub_discord.settings import PLATFORM, DiscordSettings
from stemhub_discord.sources import (
    AttachmentInfo,
    looks_like_audio,
    source_from_attachment,
    source_from_link,
    source_from_message,
)
from stemhub_discord.stems import again_choices, check_stems, parse_stems
from stemhub_discord.texts import human_duration

log = logging.getLogger(__name__)

TOKEN_PURPOSE = "discord-interaction-token"  # noqa: S105 - a label, not a secret

PICK_TTL_S = 15 * 60
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
    def __init__(
        self,
        hub: PluginHub,
        settings: DiscordSettings,
        on_submitted: OnSubmitted,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.on_submitted = on_submitted
        self.clock = clock

    def upload_limit(self) -> int:
        """The largest file the backend in use and the hub accept, in bytes."""
        probe = JobRequest(source=Source(kind=SourceKind.URL, url="https://discord.invalid/"))
        name, _why = self.hub.choose_backend(probe)
        caps = self.hub.capabilities(name)
        return min(x for x in (caps.max_bytes, self.hub.settings.max_upload_bytes) if x)

    def origin_for(self, invoker: Invoker, *, dm: bool) -> Origin:
        context: dict[str, Any] = {
            "interaction": invoker.record,
            "token": self.hub.seal(invoker.token, purpose=TOKEN_PURPOSE),
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
        """A private no, before or after a defer."""
        await responder.refuse(
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
            wanted = parse_stems(stems) if stems else self.settings.default_stems
        except StemhubError as error:
            await self.refuse(responder, error)
            return None
        return await self.split(
            responder,
            invoker,
            source=source,
            stems=wanted,
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
        audio = [a for a in attachments if looks_like_audio(a.filename, a.content_type)]
        if len(audio) > 1:
            # several songs in one message: the person picks; the files wait in the store
            key = uuid.uuid4().hex[:16]
            await self.hub.kv(PLATFORM).put(
                f"pick:{key}", [dataclasses.asdict(a) for a in audio], ttl_s=PICK_TTL_S
            )
            await responder.respond(pick_reply(key, [a.filename for a in audio]))
            return None
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
            # before the defer: a choice the backend cannot do is a private no
            check_stems(self.hub, request)
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
            await self.refuse(responder, error)
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
        if link_expired(previous.request.source.url, now=self.clock()):
            # Discord's signed attachment links expire; the hub keeps no copy of the input
            await self.refuse(
                responder,
                StemhubError(
                    ErrorCode.JOB_EXPIRED,
                    "Discord's link to the original upload has expired, so I cannot fetch"
                    " the song again. Run /split with the file once more.",
                ),
            )
            return None
        try:
            wanted = parse_stems(stems)
        except StemhubError as error:
            await self.refuse(responder, error)
            return None
        return await self.split(
            responder,
            invoker,
            source=previous.request.source,
            stems=wanted,
            output_format=previous.request.output_format,
            dm=bool(previous.origin.context.get("dm", False)),
        )

    # buttons

    async def pick(
        self, responder: Responder, invoker: Invoker, key: str, index: int
    ) -> Job | None:
        """The file chosen in the select of a message with several audio files."""
        stored = await self.hub.kv(PLATFORM).get(f"pick:{key}")
        if not isinstance(stored, list) or not 0 <= index < len(stored):
            await self.refuse(
                responder,
                StemhubError(ErrorCode.NOT_FOUND, "That choice expired; use Split stems again."),
            )
            return None
        return await self.split_attachment(
            responder,
            invoker,
            attachment=AttachmentInfo(**stored[index]),
            url=None,
            stems=None,
            output_format=None,
            dm=None,
        )

    async def cancel(self, responder: Responder, invoker: Invoker, job_id: str) -> None:
        """Cancel from the progress message: the person who asked, or a server manager."""
        job = await self.hub.get_job(job_id)
        if job is None:
            await self.refuse(responder, StemhubError(ErrorCode.NOT_FOUND, "No such split."))
            return
        if job.origin.user_id != str(invoker.user_id) and not invoker.manage_guild:
            await self.refuse(
                responder,
                StemhubError(ErrorCode.FORBIDDEN, "Only the person who asked can cancel it."),
            )
            return
        try:
            await self.hub.cancel(job_id)
        except StemhubError as error:
            await self.refuse(responder, error)
            return
        name = job.request.source.display_name
        await responder.respond(Reply(content=f"Cancelled the split of {name}.", ephemeral=True))

    async def fresh_links(self, responder: Responder, job_id: str) -> None:
        """New download links, privately; deferred first (a hosted backend can be slow)."""
        await responder.defer(ephemeral=True)
        job = await self.hub.get_job(job_id)
        if job is None or job.status is JobStatus.EXPIRED:
            await self.refuse(responder, gone(self.hub))
            return
        if job.status is not JobStatus.COMPLETED:
            await self.refuse(
                responder, StemhubError(ErrorCode.NOT_FOUND, "That split has no stems.")
            )
            return
        local = all(
            (path := self.hub.output_path(job, output)) is not None and path.is_file()
            for output in job.outputs.values()
        )
        try:
            if not local:
                job = await self.hub.refresh_links(job_id)
            links = dict(self.hub.links(job))
        except StemhubError as error:
            log.info("fresh links of job %s: %s", job_id, error.operator_message)
            await self.refuse(responder, gone(self.hub))
            return
        if not links:
            await self.refuse(
                responder,
                StemhubError(
                    ErrorCode.NOT_FOUND,
                    "This bot hands out no download links; the stems are the files"
                    " attached to the result.",
                ),
            )
            return
        embed = result_embed(job, links=links, attached=set())
        await responder.edit_original(
            Reply(
                embed=embed,
                view=result_view(job, has_links=True, again=again_choices(self.hub, job)),
                ephemeral=True,
            )
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
        # answered first: reading the jobs may take longer than Discord's 3 seconds
        await responder.defer(ephemeral=True)
        await responder.edit_original(Reply(embed=await self.queue_embed(invoker.guild_id)))

    async def queue_embed(self, guild_id: int) -> discord.Embed:
        guild = str(guild_id)
        unfinished = await self.hub.list_jobs(
            statuses=[JobStatus.QUEUED, JobStatus.RUNNING], platform="discord", limit=500
        )
        here = [job for job in unfinished if job.origin.guild_id == guild]
        since = utcnow() - timedelta(hours=24)
        recent = [
            job
            for job in await self.hub.list_jobs(platform="discord", limit=1000)
            if job.origin.guild_id == guild and job.created_at >= since
        ]
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
        embed.timestamp = utcnow()
        return embed


def link_expired(url: str | None, *, now: float) -> bool:
    """Whether a signed Discord CDN link (``ex`` = expiry, hex seconds) has expired."""
    if not url:
        return False
    expires = parse_qs(urlsplit(url).query).get("ex")
    if not expires:
        return False
    try:
        return int(expires[0], 16) <= now
    except ValueError:
        return False


def gone(hub: PluginHub) -> StemhubError:
    """The stems were removed after the retention period."""
    hours = hub.settings.retention_hours
    kept = f"{hours / 24:.0f} days" if hours >= 48 else f"{hours:.0f} hours"
    return StemhubError(
        ErrorCode.JOB_EXPIRED,
        f"The stems of this song are no longer kept (they are kept for {kept}).",
    )


def token_alive(context: dict[str, Any], *, margin_s: float, now: float | None = None) -> bool:
    expires = context.get("token_expires_at")
    if not isinstance(expires, int | float) or not context.get("token"):
        return False
    return (now if now is not None else time.time()) < float(expires) - margin_s


__all__ = [
    "TOKEN_PURPOSE",
    "CommandHandlers",
    "Invoker",
    "gone",
    "link_expired",
    "new_reference",
    "token_alive",
]
