"""Delivering a finished job to Discord, resumable step by step, never silent.

A result is a short list of messages: the result embed (with the first files that fit)
and, when the stems do not fit in one upload, more messages with the rest. Where each
message goes is decided each time it is sent:

- the user's DMs when they asked for it (or the server is configured so), unless Discord
  refused the DM (50007 closed DMs, 50278 no mutual server);
- else the interaction itself (the deferred response is edited, follow-ups for the rest)
  while its token lives (15 minutes);
- else, for a public request only, the channel with the bot token, mentioning the user;
  the user's DMs if the bot may not post there (50001, 50013, 50083, 10003). A private
  request (``dm``) never falls back to the channel: its last place is the DM.

What is sent degrades instead of failing: a message Discord refuses as too large
(413 / 40005) is sent again without files (the embed keeps the links); one whose embed
Discord refuses (400 / 50035) is sent as plain text with the links; plain text refused
in one place goes to the next place.

Each file is attached when it fits the per-file limit of the place it goes to (the
interaction's ``attachment_size_limit`` through the interaction, 10 MiB for bot posts
and DMs), and stems are packed into as many messages as they need (10 files and the
request cap per message).

Each message sent is recorded in ``job.delivery["sent"]`` before the next one, so a hub
restarted in the middle sends only what is missing. Channel and DM posts carry a nonce
derived from the job and the step (``enforce_nonce``), so Discord itself drops a repeat
of a post whose record was lost in a crash.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stemhub import Job, JobStatus, OutputFormat, PluginHub, StemhubError
from stemhub_discord.fitting import BITRATES_KBPS, mp3_bitrate_to_fit, transcode_to_mp3
from stemhub_discord.render import (
    embed_fits,
    error_embed,
    plain_error,
    plain_result,
    result_embed,
    result_view,
)
from stemhub_discord.replies import (
    DiscordDeliveryError,
    DMClosed,
    InteractionExpired,
    OutgoingFile,
    PostForbidden,
    RefusedBody,
    Reply,
    Responder,
    TooLargeForDiscord,
)
from stemhub_discord.stems import again_choices
from stemhub_discord.texts import human_size

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_ATTACHMENT_LIMIT = 10 * MIB
"""Per file, for bot-token posts and DMs (Discord's default for everyone)."""
REQUEST_OVERHEAD = 64 * 1024
"""Room left in a request for the JSON payload and the multipart framing."""
MAX_FILES_PER_MESSAGE = 10
LEVELS = ("full", "bare", "text")
"""What a message carries: files and embed, the embed alone, plain text."""


@dataclass(frozen=True)
class Recipient:
    """Who asked and how they want the answer (from the job's origin)."""

    user_id: int
    channel_id: int | None
    dm: bool
    private: bool
    interaction_limit: int
    request_limit: int = 25 * 1024 * 1024

    def file_limit(self, via: str) -> int:
        return self.interaction_limit if via == "interaction" else DEFAULT_ATTACHMENT_LIMIT


def plan_uploads(
    sizes: dict[str, int | None], *, limit: int, request_limit: int = 25 * MIB
) -> list[list[str]]:
    """Group the stems that fit ``limit`` (each) into messages that each fit one request.

    Stems keep their order; a stem larger than the limit on its own is never attached;
    every other stem is.
    """
    budget = max(limit, request_limit - REQUEST_OVERHEAD)
    batches: list[list[str]] = []
    current: list[str] = []
    used = 0
    for stem, size in sizes.items():
        if size is None or size > limit:
            continue
        if current and (used + size > budget or len(current) == MAX_FILES_PER_MESSAGE):
            batches.append(current)
            current, used = [], 0
        current.append(stem)
        used += size
    if current:
        batches.append(current)
    return batches


def nonce_for(job_id: str, step: str) -> str:
    """At most 25 characters, the same for the same step of the same job."""
    return hashlib.sha256(f"{job_id}:{step}".encode()).hexdigest()[:25]


class _Reroute(Exception):
    """The destination or the form changed: build the remaining messages again."""


class JobDelivery:
    """Sends one job's result; ``run`` may be called again after any failure or restart."""

    def __init__(
        self,
        hub: PluginHub,
        job: Job,
        responder: Responder,
        recipient: Recipient,
        *,
        token_alive: bool,
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

    @property
    def level(self) -> str:
        return str(self.state.get("level", "full"))

    async def save(self) -> None:
        await self.hub.record_delivery(self.job)

    async def run(self) -> None:
        for _ in range(12):
            try:
                await self._send_all()
                return
            except _Reroute:
                continue
        raise DiscordDeliveryError("The result could not be sent to Discord.", retryable=True)

    # where

    def route(self) -> str:
        """``dm``, ``interaction`` or ``channel``: where the next message goes."""
        recipient = self.recipient
        wants_dm = recipient.dm and not self.dm_closed
        # a failure is shown where the user is watching, while that is still possible
        if wants_dm and (self.job.status is JobStatus.COMPLETED or not self.token_alive):
            return "dm"
        if self.token_alive:
            return "interaction"
        if recipient.private:
            return "dm"
        if recipient.channel_id is not None and not self.state.get("channel_refused"):
            return "channel"
        return "dm"

    # what

    async def _attachable(self, limit: int) -> tuple[dict[str, Path], dict[str, int | None]]:
        """Local stem files and their sizes; a WAV/FLAC too large for ``limit`` as an MP3.

        The MP3 decision is kept in the delivery state, so a resumed delivery uploads the
        same files.
        """
        job = self.job
        chosen = self.state.get("mp3")
        decide = chosen is None
        as_mp3: set[str] = set(chosen or [])
        paths: dict[str, Path] = {}
        sizes: dict[str, int | None] = {}
        for stem in job.request.stem_names:
            output = job.outputs.get(stem)
            path = self.hub.output_path(job, output) if output is not None else None
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
        return paths, sizes

    def _waveform_picture(
        self,
        files: list[OutgoingFile],
        sizes: dict[str, int | None],
        batch: list[str],
        limit: int,
    ) -> OutgoingFile | None:
        """The stems' waveform PNG for the result embed, when it fits beside the files."""
        png = self.hub.waveform_png(self.job)
        if png is None or len(files) >= MAX_FILES_PER_MESSAGE:
            return None
        size = png.stat().st_size
        total = size + sum(sizes.get(stem) or 0 for stem in batch)
        if size > limit or total > self.recipient.request_limit - REQUEST_OVERHEAD:
            return None
        return OutgoingFile(png, "waveforms.png")

    def _batches(self, sizes: dict[str, int | None], limit: int) -> list[list[str]]:
        plan = self.state.get("plan")
        if plan is None or (plan["limit"] != limit and "result" not in self.sent):
            batches = plan_uploads(sizes, limit=limit, request_limit=self.recipient.request_limit)
            plan = {"limit": limit, "batches": batches}
            self.state["plan"] = plan
        return [list(batch) for batch in plan["batches"]]

    async def _messages(self) -> list[tuple[str, Reply]]:
        job = self.job
        level = self.level
        if job.status is not JobStatus.COMPLETED:
            if level == "text":
                return [("result", Reply(content=plain_error(job)))]
            embed = error_embed(job.error_code, job.error_message, reference=job.id[:8])
            return [("result", Reply(embed=embed))]
        links = self._links()
        if level != "full" and "result" in self.sent:
            return self._text_messages(links)
        limit = self.recipient.file_limit(self.route())
        paths, sizes = await self._attachable(limit)
        batches = self._batches(sizes, limit) if level == "full" else []
        attached = {stem for batch in batches for stem in batch}
        as_mp3 = set(self.state.get("mp3") or [])
        notes = self._notes(attached, as_mp3, links, limit)
        page_url = self.hub.result_page_url(job)
        if page_url is not None:
            notes.insert(
                0, f"\N{LEFT-POINTING MAGNIFYING GLASS} [Listen, solo and mix]({page_url})"
            )
        embed = result_embed(
            job, links=links, attached=attached, note="\n".join(notes) or None, page_url=page_url
        )
        if level == "text" or not embed_fits(embed):
            return self._text_messages(links)
        view = result_view(job, has_links=bool(links), again=again_choices(self.hub, job))
        messages: list[tuple[str, Reply]] = []
        for index, batch in enumerate(batches or [[]]):
            files = [self._file(paths[stem], job, stem) for stem in batch if stem in paths]
            if index == 0:
                picture = (
                    self._waveform_picture(files, sizes, batch, limit) if level == "full" else None
                )
                if picture is not None:
                    files.append(picture)
                    embed.set_image(url=f"attachment://{picture.filename}")
                messages.append(("result", Reply(embed=embed, view=view, files=files)))
            else:
                content = f"More stems ({index + 1}/{len(batches)}): {', '.join(batch)}"
                messages.append((f"files:{','.join(batch)}", Reply(content=content, files=files)))
        return messages

    def _text_messages(self, links: dict[str, Any]) -> list[tuple[str, Reply]]:
        texts = plain_result(self.job, links={stem: url for stem, (url, _at) in links.items()})
        first = "result"
        if "result" in self.sent:
            # the embed went out already; what follows it says what it could not carry
            missing = [s for s in self.job.request.stem_names if s not in self._sent_stems()]
            if not missing:
                return []
            first = "rest"
        return [
            (first if index == 0 else f"{first}:{index}", Reply(content=text))
            for index, text in enumerate(texts)
        ]

    def _sent_stems(self) -> set[str]:
        plan = self.state.get("plan") or {}
        sent: set[str] = set()
        for index, batch in enumerate(plan.get("batches") or []):
            key = "result" if index == 0 else f"files:{','.join(batch)}"
            if key in self.sent:
                sent.update(batch)
        return sent

    def _notes(
        self, attached: set[str], as_mp3: set[str], links: dict[str, Any], limit: int
    ) -> list[str]:
        job = self.job
        notes: list[str] = []
        converted = sorted(as_mp3 & attached)
        if converted:
            fmt = job.request.output_format.value
            also = f"; the links give the {fmt}" if links else ""
            notes.append(
                f"{', '.join(converted)}: attached as MP3 to fit Discord's upload limit{also}."
            )
        missing = [s for s in job.request.stem_names if s not in attached and s not in links]
        if missing and job.outputs:
            notes.append(
                f"{', '.join(missing)}: too large to attach here"
                f" (Discord takes files up to {human_size(limit)} here)."
            )
            log.info(
                "job %s: %s not attached and no download links (set STEMHUB_PUBLIC_URL)",
                job.id,
                ", ".join(missing),
            )
        if self.dm_closed and self.recipient.dm:
            notes.insert(0, "I could not DM you (Discord refused), so here are your stems.")
        return notes

    def _links(self) -> dict[str, Any]:
        try:
            return dict(self.hub.links(self.job))
        except StemhubError as error:
            log.info("job %s: no links (%s)", self.job.id, error.message)
            return {}

    @staticmethod
    def _file(path: Path, job: Job, stem: str) -> OutgoingFile:
        song = Path(job.request.source.display_name).stem or "song"
        return OutgoingFile(path, f"{song} - {stem}{path.suffix}")

    # sending

    async def _send_all(self) -> None:
        messages = await self._messages()
        for key, reply in messages:
            if key in self.sent:
                continue
            via, message_id = await self._send(key, reply)
            self.sent[key] = {"via": via, "message_id": message_id, "level": self.level}
            await self.save()
        await self._say_where()

    async def _say_where(self) -> None:
        """The deferred response says where the stems went, when that is elsewhere."""
        used_dm = any(item.get("via") == "dm" for item in self.sent.values())
        if not used_dm or not self.token_alive or "notice" in self.sent:
            return
        name = self.job.request.source.display_name
        mailbox = "\N{OPEN MAILBOX WITH RAISED FLAG}"
        notice = Reply(content=f"{mailbox} Sent the stems of **{name}** to your DMs.")
        try:
            await self.responder.edit_original(notice)
        except DiscordDeliveryError as error:
            log.info("job %s: no notice in place (%s)", self.job.id, error.operator_message)
            return
        self.sent["notice"] = {"via": "interaction", "message_id": None}
        await self.save()

    async def _degrade(self, error: DiscordDeliveryError, via: str) -> None:
        """Send less next time: no files, then plain text, then another place."""
        level = self.level
        if isinstance(error, TooLargeForDiscord) and level == "full":
            self.state["level"] = "bare"
        elif level != "text":
            self.state["level"] = "text"
        elif via == "interaction":
            self.state["token_dead"] = True
        elif via == "channel":
            self.state["channel_refused"] = True
        else:
            raise DiscordDeliveryError(
                "Discord refused even a plain message in your DMs.",
                retryable=True,
                operator_message=error.operator_message,
            ) from None
        log.info("job %s: %s refused (%s); now %s", self.job.id, via, error, self.state)
        await self.save()
        raise _Reroute from None

    async def _send(self, key: str, reply: Reply) -> tuple[str, int | None]:
        via = self.route()
        try:
            return via, await self._send_via(via, key, reply)
        except InteractionExpired as error:
            log.info("job %s: interaction gone (%s)", self.job.id, error.operator_message)
            self.state["token_dead"] = True
            await self.save()
            raise _Reroute from None
        except DMClosed as error:
            log.info("job %s: DM refused (%s)", self.job.id, error.operator_message)
            self.state["dm_closed"] = True
            await self.save()
            if self.token_alive or (not self.recipient.private and self.route() != "dm"):
                raise _Reroute from None
            raise DiscordDeliveryError(
                "Discord would not let me DM you the stems; open your DMs and I will try again.",
                retryable=True,
                operator_message=error.operator_message,
            ) from None
        except PostForbidden as error:
            log.info("job %s: cannot post there (%s)", self.job.id, error.operator_message)
            self.state["channel_refused"] = True
            await self.save()
            raise _Reroute from None
        except (TooLargeForDiscord, RefusedBody) as error:
            await self._degrade(error, via)
            raise  # unreachable: _degrade raises

    async def _send_via(self, via: str, key: str, reply: Reply) -> int | None:
        user = self.recipient.user_id
        if via == "dm":
            return await self.responder.send_dm(
                user, reply, nonce=nonce_for(self.job.id, f"dm:{key}")
            )
        if via == "interaction":
            if key == "result":
                await self.responder.edit_original(reply)
                return None
            reply.ephemeral = self.recipient.private
            return await self.responder.followup(reply)
        channel = self.recipient.channel_id
        assert channel is not None
        reply.mention_user_id = user
        mention = f"<@{user}>"
        reply.content = f"{mention} {reply.content}" if reply.content else mention
        return await self.responder.send_channel(
            channel, reply, nonce=nonce_for(self.job.id, f"channel:{key}")
        )


async def tell_undelivered(
    responder: Responder, recipient: Recipient, text: str, *, token_alive: bool, nonce: str
) -> str:
    """Plain text in the most private place that still reaches the person; returns where.

    Raises the last refusal when no place took it.
    """
    places: list[str] = []
    if token_alive:
        places.append("interaction")
    if recipient.private or recipient.dm:
        places.append("dm")
    else:
        if recipient.channel_id is not None:
            places.append("channel")
        places.append("dm")
    last: StemhubError | None = None
    for place in places:
        reply = Reply(content=text[:2000])
        try:
            if place == "interaction":
                reply.ephemeral = recipient.private
                await responder.followup(reply)
            elif place == "dm":
                await responder.send_dm(recipient.user_id, reply, nonce=nonce)
            else:
                assert recipient.channel_id is not None
                reply.mention_user_id = recipient.user_id
                reply.content = f"<@{recipient.user_id}> {text}"[:2000]
                await responder.send_channel(recipient.channel_id, reply, nonce=nonce)
            return place
        except StemhubError as error:
            last = error
    assert last is not None
    raise last


__all__ = [
    "DEFAULT_ATTACHMENT_LIMIT",
    "JobDelivery",
    "Recipient",
    "nonce_for",
    "plan_uploads",
    "tell_undelivered",
]
