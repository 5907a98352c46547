"""Delivering a finished job to Discord, resumable step by step.

A result is a short list of messages: the result embed (with the first files that fit)
and, when the stems do not fit in one upload, more messages with the rest. Where each
message goes is decided each time it is sent:

- the user's DMs when they asked for it (or the server is configured so), unless Discord
  said their DMs are closed (403 / 50007);
- else the interaction itself (the deferred response is edited, follow-ups for the rest)
  while its token lives (15 minutes);
- else the channel, with the bot token, mentioning the user; the user's DMs if the bot
  may not post there.

Each message sent is recorded in ``job.delivery["sent"]`` and saved before the next one,
so a hub restarted in the middle sends only what is missing. Channel and DM posts carry a
nonce derived from the job and the step, so Discord itself drops a repeat of a post whose
record was lost in a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stemhub import ErrorCode, Job, JobStatus, OutputFormat, StemhubError
from stemhub_discord.fitting import BITRATES_KBPS, mp3_bitrate_to_fit, transcode_to_mp3
from stemhub_discord.render import error_embed, result_embed, result_view
from stemhub_discord.replies import (
    DMClosed,
    InteractionExpired,
    OutgoingFile,
    PostForbidden,
    Reply,
    Responder,
)

if TYPE_CHECKING:
    from stemhub.hub import Hub

log = logging.getLogger(__name__)

DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024
MAX_FILES_PER_MESSAGE = 10
MAX_FILE_MESSAGES = 3


@dataclass(frozen=True)
class Recipient:
    """Who asked and how they want the answer (from the job's origin)."""

    user_id: int
    channel_id: int | None
    dm: bool
    ephemeral: bool
    attachment_limit: int


def plan_uploads(
    sizes: dict[str, int | None], *, limit: int, max_messages: int = MAX_FILE_MESSAGES
) -> list[list[str]]:
    """Group stems into messages whose files together fit ``limit``; the rest get links.

    Stems keep their order; a stem larger than the limit on its own is never attached.
    """
    batches: list[list[str]] = []
    current: list[str] = []
    used = 0
    for stem, size in sizes.items():
        if size is None or size > limit:
            continue
        if current and (used + size > limit or len(current) == MAX_FILES_PER_MESSAGE):
            batches.append(current)
            current, used = [], 0
        current.append(stem)
        used += size
    if current:
        batches.append(current)
    return batches[:max_messages]


def nonce_for(job_id: str, step: str) -> str:
    """At most 25 characters, the same for the same step of the same job."""
    return hashlib.sha256(f"{job_id}:{step}".encode()).hexdigest()[:25]


class _Reroute(Exception):
    """The destination changed (DMs closed): build the remaining messages again."""


class JobDelivery:
    """Sends one job's result; ``run`` may be called again after any failure or restart."""

    def __init__(
        self, hub: Hub, job: Job, responder: Responder, recipient: Recipient, *, token_alive: bool
    ) -> None:
        self.hub = hub
        self.job = job
        self.responder = responder
        self.recipient = recipient
        self.state: dict[str, Any] = job.delivery
        self.sent: dict[str, Any] = self.state.setdefault("sent", {})
        if not token_alive:
            self.state["token_dead"] = True

    @property
    def token_alive(self) -> bool:
        return not self.state.get("token_dead", False)

    @property
    def dm_closed(self) -> bool:
        return bool(self.state.get("dm_closed", False))

    async def run(self) -> None:
        for _ in range(4):
            try:
                await self._send_all()
                return
            except _Reroute:
                continue
            except InteractionExpired as error:
                log.info("job %s: interaction gone (%s)", self.job.id, error.operator_message)
                self.state["token_dead"] = True
                await self.hub.save(self.job)
        raise StemhubError(ErrorCode.DELIVERY_FAILED, "The result could not be sent to Discord.")

    async def _attachable(self) -> tuple[dict[str, Path], dict[str, int | None], set[str]]:
        """Local stem files, their sizes, and which were swapped for an MP3 that fits.

        A WAV or FLAC stem too large for the limit is uploaded as an MP3 copy when one
        fits (the decision is kept in the delivery state, so a resumed delivery uploads
        the same files).
        """
        job = self.job
        limit = self.recipient.attachment_limit
        chosen = self.state.get("mp3")
        decide = chosen is None
        as_mp3: set[str] = set(chosen or [])
        paths: dict[str, Path] = {}
        sizes: dict[str, int | None] = {}
        for stem in job.request.stem_names:
            output = job.outputs.get(stem)
            path = self.hub.outputs.path_of(job, output) if output is not None else None
            if output is None or path is None or not path.is_file():
                continue
            size = output.size_bytes if output.size_bytes is not None else path.stat().st_size
            duration = output.duration_s or (job.audio.duration_s if job.audio else None)
            wants_mp3 = stem in as_mp3 or (
                decide
                and size > limit
                and output.format is not OutputFormat.MP3
                and mp3_bitrate_to_fit(duration, limit) is not None
            )
            if wants_mp3:
                mp3 = path.parent / "discord" / f"{stem}.mp3"
                if not mp3.is_file():
                    kbps = mp3_bitrate_to_fit(duration, limit) or BITRATES_KBPS[-1]
                    await asyncio.to_thread(transcode_to_mp3, path, mp3, kbps)
                as_mp3.add(stem)
                path, size = mp3, mp3.stat().st_size
            paths[stem] = path
            sizes[stem] = size
        if decide:
            self.state["mp3"] = sorted(as_mp3)
        return paths, sizes, as_mp3

    async def _messages(self) -> list[tuple[str, Reply]]:
        job = self.job
        if job.status is not JobStatus.COMPLETED:
            embed = error_embed(job.error_code, job.error_message, reference=job.id[:8])
            return [("result", Reply(embed=embed))]
        links = self._links()
        paths, sizes, as_mp3 = await self._attachable()
        batches = self.state.get("batches")
        if batches is None:
            batches = plan_uploads(sizes, limit=self.recipient.attachment_limit)
            self.state["batches"] = batches
        attached = {stem for batch in batches for stem in batch}
        missing = [s for s in job.request.stem_names if s not in attached and s not in links]
        notes: list[str] = []
        converted = sorted(as_mp3 & attached)
        if converted:
            fmt = job.request.output_format.value
            also = f"; the links give the {fmt}" if links else ""
            notes.append(
                f"{', '.join(converted)}: attached as MP3 to fit Discord's upload limit{also}."
            )
        if missing:
            notes.append(
                f"{', '.join(missing)}: too large to attach here, and this bot hands out no"
                " download links (its owner can set STEMHUB_PUBLIC_URL)."
            )
        if self.dm_closed:
            notes.insert(0, "I could not DM you (your DMs are closed), so here are your stems.")
        embed = result_embed(job, links=links, attached=attached, note="\n".join(notes) or None)
        view = result_view(job, has_links=bool(links))
        messages: list[tuple[str, Reply]] = []
        for index, batch in enumerate(batches or [[]]):
            files = [self._file(paths[stem], job, stem) for stem in batch if stem in paths]
            if index == 0:
                messages.append(("result", Reply(embed=embed, view=view, files=files)))
            else:
                content = f"More stems ({index + 1}/{len(batches)})"
                messages.append((f"files:{index}", Reply(content=content, files=files)))
        return messages

    def _links(self) -> dict[str, Any]:
        try:
            return dict(self.hub.outputs.output_links(self.job))
        except StemhubError as error:
            log.info("job %s: no links (%s)", self.job.id, error.message)
            return {}

    @staticmethod
    def _file(path: Path, job: Job, stem: str) -> OutgoingFile:
        song = Path(job.request.source.display_name).stem or "song"
        return OutgoingFile(path, f"{song} - {stem}{path.suffix}")

    async def _send_all(self) -> None:
        messages = await self._messages()
        used_dm = False
        for key, reply in messages:
            if key in self.sent:
                used_dm = used_dm or self.sent[key].get("via") == "dm"
                continue
            via, message_id = await self._send(key, reply)
            used_dm = used_dm or via == "dm"
            self.sent[key] = {"via": via, "message_id": message_id}
            await self.hub.save(self.job)
        if used_dm and self.token_alive and "notice" not in self.sent:
            name = self.job.request.source.display_name
            mailbox = "\N{OPEN MAILBOX WITH RAISED FLAG}"
            notice = Reply(content=f"{mailbox} Sent the stems of **{name}** to your DMs.")
            try:
                await self.responder.edit_original(notice)
            except InteractionExpired:
                return
            self.sent["notice"] = {"via": "interaction", "message_id": None}
            await self.hub.save(self.job)

    def _wants_dm(self) -> bool:
        if self.dm_closed or not self.recipient.dm:
            return False
        # a failure is shown where the user is watching, while that is still possible
        return self.job.status is JobStatus.COMPLETED or not self.token_alive

    async def _send(self, key: str, reply: Reply) -> tuple[str, int | None]:
        user = self.recipient.user_id
        if self._wants_dm():
            try:
                return "dm", await self.responder.send_dm(
                    user, reply, nonce=nonce_for(self.job.id, f"dm:{key}")
                )
            except DMClosed:
                log.info("job %s: DMs of the user are closed; answering in place", self.job.id)
                self.state["dm_closed"] = True
                await self.hub.save(self.job)
                raise _Reroute from None
        if self.token_alive:
            if key == "result":
                await self.responder.edit_original(reply)
                return "interaction", None
            reply.ephemeral = self.recipient.ephemeral
            return "interaction", await self.responder.followup(reply)
        return await self._post_in_channel(key, reply)

    async def _post_in_channel(self, key: str, reply: Reply) -> tuple[str, int | None]:
        user = self.recipient.user_id
        channel = self.recipient.channel_id
        if channel is not None:
            reply.mention_user_id = user
            mention = f"<@{user}>"
            reply.content = f"{mention} {reply.content}" if reply.content else mention
            try:
                return "channel", await self.responder.send_channel(
                    channel, reply, nonce=nonce_for(self.job.id, f"channel:{key}")
                )
            except PostForbidden as error:
                log.info("job %s: cannot post in channel (%s)", self.job.id, error.operator_message)
        if self.dm_closed:
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "The result could not be posted: the bot may not post in the channel and "
                "the user's DMs are closed.",
            )
        reply.mention_user_id = None
        try:
            return "dm", await self.responder.send_dm(
                user, reply, nonce=nonce_for(self.job.id, f"dm:{key}")
            )
        except DMClosed:
            self.state["dm_closed"] = True
            await self.hub.save(self.job)
            raise StemhubError(
                ErrorCode.DELIVERY_FAILED,
                "The result could not be posted: the bot may not post in the channel and "
                "the user's DMs are closed.",
            ) from None


__all__ = ["DEFAULT_ATTACHMENT_LIMIT", "JobDelivery", "Recipient", "nonce_for", "plan_uploads"]
