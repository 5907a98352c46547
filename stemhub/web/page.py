"""The result page's HTML, rendered on the server (no template engine, no build chain).

Every value that comes from a job (the song's name above all) is escaped. The page
carries its data in attributes and one ``application/json`` block (data, not script,
so the Content-Security-Policy needs no inline allowance); ``result.js`` brings it to
life and ``result.css`` styles it, both served by the hub.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from stemhub.fetch import format_bytes
from stemhub.models import Job, JobStatus
from stemhub.web.assets import asset_url

NONE = "\u2013"
"""Shown for an unknown value (an en dash)."""

BACKEND_NAMES = {
    "local": "stemhub's local engine",
    "stemsplit": "StemSplit (hosted HT-Demucs)",
    "demucs": "HT-Demucs on this hub",
}


@dataclass(frozen=True)
class StemView:
    """One row of the page: a stem the person can play (``src``) and download (``href``)."""

    name: str
    color: str
    format: str
    size_bytes: int | None
    src: str | None
    href: str | None


@dataclass(frozen=True)
class PageView:
    job: Job
    stems: list[StemView]
    peaks: dict[str, Any] | None
    zip_href: str | None
    expires_at: datetime
    prefix: str


def song_title(job: Job) -> str:
    """The song's name as people say it: the file name without its extension."""
    name = job.request.source.display_name
    base, dot, extension = name.rpartition(".")
    if dot and base.strip() and extension.isalnum() and len(extension) <= 5:
        return base.strip()
    return name


def clock(seconds: float | None) -> str:
    """``"3:58"``, ``"1:02:03"``: how a player shows a length."""
    if seconds is None:
        return NONE
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    return moment.strftime("%-d %b %Y, %H:%M UTC")


def _time_tag(moment: datetime | None) -> str:
    if moment is None:
        return NONE
    return f'<time datetime="{moment.isoformat()}">{escape(when(moment))}</time>'


def _head(title: str, prefix: str, *, script: bool, refresh_s: int | None = None) -> str:
    tags = [
        "<!doctype html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="robots" content="noindex">',
        f"<title>{escape(title)}</title>",
        f'<link rel="stylesheet" href="{escape(asset_url(prefix, "result.css"))}">',
        f'<link rel="icon" href="{escape(asset_url(prefix, "icon.svg"))}" type="image/svg+xml">',
    ]
    if refresh_s is not None:
        tags.append(f'<meta http-equiv="refresh" content="{refresh_s}">')
    if script:
        tags.append(f'<script src="{escape(asset_url(prefix, "result.js"))}" defer></script>')
    tags.append("</head>")
    return "\n".join(tags)


def document(
    title: str, prefix: str, body: str, *, script: bool = False, refresh_s: int | None = None
) -> str:
    """A whole HTML document around ``body`` (already escaped HTML)."""
    head = _head(title, prefix, script=script, refresh_s=refresh_s)
    return f"{head}\n<body>\n{body}\n</body>\n</html>\n"


_PLAY_ICON = (
    '<svg class="icon icon-play" viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
    '<path d="M8 5v14l11-7z"/></svg>'
    '<svg class="icon icon-pause" viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
    '<path d="M6 5h4v14H6zM14 5h4v14h-4z"/></svg>'
)
_DOWNLOAD_ICON = (
    '<svg class="icon" viewBox="0 0 24 24" aria-hidden="true" focusable="false">'
    '<path d="M11 4h2v9l3.5-3.5 1.4 1.4L12 16.8 6.1 10.9l1.4-1.4L11 13zM5 18h14v2H5z"/></svg>'
)


def _facts(job: Job) -> str:
    audio = job.audio
    items = [("Length", clock(audio.duration_s if audio else None))]
    if audio is not None and audio.bpm is not None:
        items.append(("BPM", f"{audio.bpm:.0f}"))
    if audio is not None and audio.key:
        items.append(("Key", audio.key))
    cells = "".join(
        f'<div class="fact"><dt>{escape(label)}</dt><dd>{escape(value)}</dd></div>'
        for label, value in items
    )
    return f'<dl class="facts">{cells}</dl>'


def _stem_row(stem: StemView) -> str:
    label = stem.name.capitalize()
    size = f", {format_bytes(stem.size_bytes)}" if stem.size_bytes is not None else ""
    download = ""
    if stem.href is not None:
        download = (
            f'<a class="download" href="{escape(stem.href)}" download '
            f'aria-label="Download {escape(label)} ({stem.format}{size})">'
            f"{_DOWNLOAD_ICON}<span>{stem.format}</span></a>"
        )
    playable = stem.src is not None
    src = f' data-src="{escape(stem.src)}"' if stem.src is not None else ""
    disabled = "" if playable else " disabled"
    note = "" if playable else '<p class="note">Preview not available for this stem.</p>'
    return f"""<li class="stem" data-stem="{escape(stem.name)}" data-color="{stem.color}"\
 data-gain="1"{src}>
<div class="stem-head">
<h2 class="stem-name" id="name-{escape(stem.name)}">{escape(label)}</h2>
<div class="stem-controls">
<button type="button" class="mute" aria-pressed="false" aria-label="Mute {escape(label)}"\
 title="Mute"{disabled}>M</button>
<button type="button" class="solo" aria-pressed="false" aria-label="Solo {escape(label)}"\
 title="Solo"{disabled}>S</button>
<input type="range" class="volume" min="0" max="1" step="0.05" value="1"\
 aria-label="Volume of {escape(label)}"{disabled}>
{download}
</div>
</div>
<canvas class="wave" role="img" aria-label="Waveform of {escape(label)}"></canvas>
{note}
</li>"""


def _json_block(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"))
    # inside <script> only "</" could end the block early
    return text.replace("</", "<\\/")


def render_result(view: PageView) -> str:
    job = view.job
    name = song_title(job)
    duration = job.audio.duration_s if job.audio and job.audio.duration_s else 0.0
    backend = BACKEND_NAMES.get(job.backend or "", job.backend or "unknown")
    rows = "\n".join(_stem_row(stem) for stem in view.stems)
    zip_link = ""
    if view.zip_href is not None:
        total = sum(s.size_bytes or 0 for s in view.stems if s.src is not None)
        zip_size = f" ({format_bytes(total)})" if total else ""
        zip_link = (
            f'<a class="zip" href="{escape(view.zip_href)}" download>'
            f"{_DOWNLOAD_ICON}<span>All stems <small>ZIP{zip_size}</small></span></a>"
        )
    peaks = _json_block(view.peaks or {"stems": {}})
    body = f"""<main class="page" id="player" data-duration="{duration:.3f}" data-state="idle"\
 data-position="0">
<header class="song">
<p class="eyebrow">Stems</p>
<h1>{escape(name)}</h1>
{_facts(job)}
</header>
<section class="transport" aria-label="Player">
<button type="button" id="play" class="play" aria-label="Play" aria-pressed="false">{_PLAY_ICON}\
</button>
<div class="clock"><span id="now">0:00</span><span class="of"> / {clock(duration)}</span></div>
<input type="range" id="seek" min="0" max="{duration:.3f}" step="0.1" value="0"\
 aria-label="Position in the song" aria-valuetext="0:00 of {clock(duration)}">
{zip_link}
<p id="status" class="status" role="status" aria-live="polite"></p>
</section>
<ol class="stems" aria-label="Stems">
{rows}
</ol>
<footer class="meta">
<p>Split by {escape(backend)} on {_time_tag(job.finished_at)}.</p>
<p>These links work until {_time_tag(view.expires_at)}.</p>
</footer>
</main>
<script type="application/json" id="peaks">{peaks}</script>"""
    return document(f"{name} · stems", view.prefix, body, script=True)


def _notice(eyebrow: str, title: str, message: str) -> str:
    return (
        f'<main class="page notice">\n<p class="eyebrow">{escape(eyebrow)}</p>\n'
        f"<h1>{escape(title)}</h1>\n<p>{escape(message)}</p>\n</main>"
    )


def render_pending(job: Job, prefix: str) -> str:
    """A job still running or one that failed: what happened, in plain words."""
    name = song_title(job)
    refresh = None
    if job.status is JobStatus.FAILED:
        title, body = "This split failed", job.error_message or "Something went wrong."
    elif job.finished:
        title, body = f"This split was {job.status.value.lower()}", "There are no stems to play."
    else:
        title = "Still splitting…"
        body = f"{job.progress:.0f}% done. This page refreshes by itself."
        refresh = 5
    return document(f"{name} · stems", prefix, _notice(name, title, body), refresh_s=refresh)


def render_error(title: str, message: str, prefix: str) -> str:
    return document(title, prefix, _notice("stemhub", title, message))


__all__ = [
    "PageView",
    "StemView",
    "clock",
    "document",
    "render_error",
    "render_pending",
    "render_result",
    "song_title",
    "when",
]
