"""Messages as Discord shows them: progress lines, the result embed, error embeds.

Pure functions of a job (plus links), so a test or the README can render exactly what a
user would see without talking to Discord.
"""

from __future__ import annotations

from datetime import datetime

import discord

from stemhub import ErrorCode, Job, JobStatus, Stage, StemSet
from stemhub_discord.components import FreshLinksButton, SplitAgainSelect
from stemhub_discord.replies import Reply
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

STEM_CHOICES: list[tuple[str, str]] = [
    ("Vocals + instrumental", StemSet.BOTH.value),
    ("4 stems: vocals, drums, bass, other", StemSet.FOUR_STEMS.value),
    ("6 stems: + guitar, piano", StemSet.SIX_STEMS.value),
    ("Vocals only", StemSet.VOCALS.value),
    ("Instrumental only", StemSet.INSTRUMENTAL.value),
    ("Drums only", "drums"),
    ("Bass only", "bass"),
    ("Guitar only", "guitar"),
    ("Piano only", "piano"),
    ("Other only", "other"),
]
"""(label, value) of the stems option; a value is a StemSet name or one stem."""


def parse_stems(value: str) -> StemSet | list[str]:
    if value.upper() in StemSet.__members__:
        return StemSet(value.upper())
    return [value.lower()]


def stems_label(stems: StemSet | list[str]) -> str:
    value = stems.value if isinstance(stems, StemSet) else ",".join(stems)
    for label, choice in STEM_CHOICES:
        if choice == value:
            return label
    return ", ".join(stems.stems if isinstance(stems, StemSet) else stems)


def _bar(percent: float) -> str:
    filled = max(0, min(BAR_CELLS, round(percent / 100 * BAR_CELLS)))
    return "\N{BLACK SQUARE}" * filled + "\N{WHITE SQUARE}" * (BAR_CELLS - filled)


def progress_text(job: Job) -> str:
    """One line that says where the job is; the same line means no edit is needed."""
    name = discord.utils.escape_markdown(job.request.source.display_name)
    if job.status is JobStatus.QUEUED:
        return (
            f"\N{HOURGLASS WITH FLOWING SAND} Queued: **{name}** ({stems_label(job.request.stems)})"
        )
    if job.status is JobStatus.RUNNING and job.stage is Stage.FETCH:
        return f"\N{INBOX TRAY} Downloading **{name}**..."
    if job.status is JobStatus.RUNNING:
        percent = int(job.progress)
        return f"\N{CONTROL KNOBS} Separating **{name}**: {percent}% {_bar(job.progress)}"
    return f"\N{OUTBOX TRAY} Delivering the stems of **{name}**..."


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
) -> discord.Embed:
    """The result: one field per stem with its link or "attached", size and duration."""
    name = job.request.source.display_name
    embed = discord.Embed(title=f"Stems of {name}"[:256], colour=GREEN, description=_facts(job))
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


def result_view(job: Job, *, has_links: bool) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    if has_links:
        view.add_item(FreshLinksButton(job.id))
    current = job.request.stems
    current_value = current.value if isinstance(current, StemSet) else ",".join(current)
    view.add_item(SplitAgainSelect(job.id, exclude=current_value))
    return view


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
    "STEM_CHOICES",
    "error_embed",
    "error_reply",
    "parse_stems",
    "progress_text",
    "result_embed",
    "result_view",
    "stems_label",
]
