"""Messages as Discord shows them: progress lines, the result embed, error embeds.

Pure functions of a job (plus links), so a test or the README can render exactly what a
user would see without talking to Discord.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import discord

from stemhub import ErrorCode, Job, JobStatus, Stage, StemSet
from stemhub_discord.components import (
    CancelButton,
    FreshLinksButton,
    PickAttachmentSelect,
    SplitAgainSelect,
)
from stemhub_discord.replies import Reply
from stemhub_discord.stems import stems_label
from stemhub_discord.texts import (
    STEM_EMOJI,
    error_text,
    human_duration,
    human_size,
    retry_hint,
)

GREEN = discord.Colour(0x2ECC71)
RED = discord.Colour(0xE74C3C)
BAR_CELLS = 10


def _bar(percent: float) -> str:
    filled = max(0, min(BAR_CELLS, round(percent / 100 * BAR_CELLS)))
    return "\N{BLACK SQUARE}" * filled + "\N{WHITE SQUARE}" * (BAR_CELLS - filled)


def progress_text(job: Job, *, position: int | None = None) -> str:
    """One line that says where the job is; the same line means no edit is needed.

    ``position``: the jobs the hub starts before this one while it waits (for a work
    slot while queued, for the engine's turn once downloaded), None when it does not wait.
    """
    name = discord.utils.escape_markdown(job.request.source.display_name)
    if job.status is JobStatus.QUEUED:
        line = f"({position} ahead of it)" if position else f"({stems_label(job.request.stems)})"
        return f"\N{HOURGLASS WITH FLOWING SAND} Queued: **{name}** {line}"
    if job.status is JobStatus.RUNNING and job.stage is Stage.FETCH:
        return f"\N{INBOX TRAY} Downloading **{name}**..."
    if job.status is JobStatus.RUNNING and job.stage is Stage.SEPARATE and position is not None:
        ahead = f"{position} ahead" if position else "next in line"
        return f"\N{HOURGLASS WITH FLOWING SAND} Waiting for the engine: **{name}** ({ahead})"
    if job.status is JobStatus.RUNNING:
        percent = int(job.progress)
        return f"\N{CONTROL KNOBS} Separating **{name}**: {percent}% {_bar(job.progress)}"
    return f"\N{OUTBOX TRAY} Delivering the stems of **{name}**..."


def expiry_warning(job: Job, recipient: Any) -> str:
    """Said before Discord stops letting the bot edit this message (15 minutes)."""
    name = discord.utils.escape_markdown(job.request.source.display_name)
    if recipient.private:
        where = "send the stems to your DMs"
    elif recipient.channel_id is not None:
        where = f"post the stems in <#{recipient.channel_id}> and mention you"
    else:
        where = "send the stems to your DMs"
    return (
        f"\N{HOURGLASS WITH FLOWING SAND} Still working on **{name}**. Discord lets me update"
        f" this message for 15 minutes only, so I will {where} when they are ready."
    )


def _facts(job: Job) -> str:
    request = job.request
    facts = [stems_label(request.stems), request.output_format.value]
    audio = job.audio
    if audio is not None:
        if audio.duration_s:
            facts.append(human_duration(audio.duration_s))
        if audio.bpm:
            facts.append(f"{audio.bpm:.0f} BPM")
        if audio.key:
            facts.append(f"key {audio.key}")
    return " \N{MIDDLE DOT} ".join(facts)


def result_embed(
    job: Job,
    *,
    links: dict[str, tuple[str, datetime]],
    attached: set[str],
    note: str | None = None,
    page_url: str | None = None,
) -> discord.Embed:
    """The result: one field per stem with its link or "attached", size and duration.

    With ``page_url`` the title opens the result page (players, solo/mute, downloads).
    """
    name = job.request.source.display_name
    embed = discord.Embed(
        title=f"Stems of {name}"[:256], colour=GREEN, description=_facts(job), url=page_url
    )
    expiry: datetime | None = None
    for stem in job.request.stem_names:
        output = job.outputs.get(stem)
        if output is None:
            continue
        parts: list[str] = []
        link = links.get(stem)
        if link is not None:
            parts.append(f"[Download]({link[0]})")
            expiry = link[1] if expiry is None else min(expiry, link[1])
        if stem in attached:
            parts.append("attached")
        if not parts:
            parts.append("too large to attach")
        parts.append(human_size(output.size_bytes))
        if output.duration_s:
            parts.append(human_duration(output.duration_s))
        emoji = STEM_EMOJI.get(stem, "\N{MUSICAL NOTE}")
        embed.add_field(name=f"{emoji} {stem}", value=" \N{MIDDLE DOT} ".join(parts), inline=True)
    lines: list[str] = []
    if expiry is not None:
        lines.append(f"Links expire <t:{int(expiry.timestamp())}:R>.")
    if note:
        lines.append(note)
    if lines:
        embed.add_field(name="\u200b", value="\n".join(lines), inline=False)
    embed.set_footer(text=f"job {job.id}")
    return embed


def result_view(
    job: Job, *, has_links: bool, again: Sequence[tuple[str, str]] = ()
) -> discord.ui.View:
    """The result's components; ``again`` holds the (label, value) choices the backend can
    split this song into (:func:`stemhub_discord.stems.offered`), the current one left out."""
    view = discord.ui.View(timeout=None)
    if has_links:
        view.add_item(FreshLinksButton(job.id))
    current = job.request.stems
    current_value = current.value if isinstance(current, StemSet) else ",".join(current)
    options = [(label, value) for label, value in again if value != current_value]
    if options:  # a select needs at least one option (else Discord answers 50035)
        view.add_item(SplitAgainSelect(job.id, options))
    return view


def embed_fits(embed: discord.Embed) -> bool:
    """Whether Discord takes this embed (its documented limits; else a 400 / 50035)."""
    data = embed.to_dict()
    if len(data.get("title") or "") > 256 or len(data.get("description") or "") > 4096:
        return False
    fields = data.get("fields") or []
    if len(fields) > 25:
        return False
    if any(len(f["name"]) > 256 or len(f["value"]) > 1024 for f in fields):
        return False
    return len(embed) <= 6000


def plain_result(job: Job, *, links: dict[str, str]) -> list[str]:
    """The result as plain text messages of at most 2000 characters each.

    What is left when Discord refuses the embed or the files: one line per stem link,
    spread over as many messages as the links need.
    """
    name = job.request.source.display_name
    messages: list[list[str]] = [[f"Your stems of {name} are ready."]]
    too_long: list[str] = []
    for stem in job.request.stem_names:
        url = links.get(stem)
        if url is None:
            continue
        line = f"{stem}: {url}"
        if len(line) > 2000:
            too_long.append(stem)
        elif len("\n".join([*messages[-1], line])) > 2000:
            messages.append([line])
        else:
            messages[-1].append(line)
    if not any(links.get(stem) for stem in job.request.stem_names):
        messages[0].append(
            "Discord would not take the files here and this bot has no download links;"
            " run /split again and pick MP3 for smaller files."
        )
    if too_long:
        messages.append([f"The links of {', '.join(too_long)} are too long for Discord."])
    return ["\n".join(lines) for lines in messages]


def plain_error(job: Job) -> str:
    title, hint = error_text(job.error_code)
    return f"{title}: {job.error_message or title}. {hint}"[:2000]


def progress_view(job: Job) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job.id))
    return view


def pick_reply(key: str, names: list[str]) -> Reply:
    view = discord.ui.View(timeout=None)
    view.add_item(PickAttachmentSelect(key, names))
    shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
    return Reply(
        content=f"That message has {len(names)} audio files ({shown}). Which one should I split?",
        view=view,
        ephemeral=True,
    )


def error_embed(
    code: str | ErrorCode | None,
    message: str | None,
    *,
    reference: str | None = None,
    retry_after: float | None = None,
) -> discord.Embed:
    title, hint = error_text(code)
    # a known wait replaces the generic hint: it says exactly when to come back
    lines = [message or title, retry_hint(retry_after) or hint]
    if reference and (code in (None, ErrorCode.INTERNAL, ErrorCode.INTERNAL.value)):
        lines.append(f"Reference: `{reference}`")
    embed = discord.Embed(title=title, description="\n".join(lines), colour=RED)
    if code:
        embed.set_footer(text=str(code))
    return embed


def error_reply(
    code: str | ErrorCode | None,
    message: str | None,
    *,
    reference: str | None = None,
    retry_after: float | None = None,
    ephemeral: bool = False,
) -> Reply:
    embed = error_embed(code, message, reference=reference, retry_after=retry_after)
    return Reply(embed=embed, ephemeral=ephemeral)


__all__ = [
    "embed_fits",
    "error_embed",
    "error_reply",
    "expiry_warning",
    "pick_reply",
    "plain_error",
    "plain_result",
    "progress_text",
    "progress_view",
    "result_embed",
    "result_view",
]
