"""Everything stemhub says in Slack: status lines, results, errors and the modal.

Texts are written for the person who typed ``/split``, not for whoever runs the hub:
they say what went wrong and what to do next, in Slack's words (workspace, channel, DM).
Every message carries plain ``text`` too, for notifications and screen readers.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from stemhub import ErrorCode, Job, JobStatus, Stage, StemhubError, StemSet
from stemhub_slack.arguments import STEM_SET_LABELS, describe_stems

FRESH_LINKS_ACTION = "stemhub_fresh_links"
RESULT_PAGE_ACTION = "stemhub_result_page"
ANOTHER_SET_ACTION = "stemhub_another_stem_set"
MODAL_CALLBACK_ID = "stemhub_split_modal"
STEMS_BLOCK, STEMS_INPUT = "stems", "stem_set"
URL_BLOCK, URL_INPUT = "link", "url"
PICK_FILE_ACTION = "stemhub_pick_file"
MAX_FILE_CHOICES = 5

MISSING_FILES_READ = (
    "Slack sent me a sign-in page instead of the audio file: this app is missing the "
    "`files:read` permission. Ask a workspace admin to add the `files:read` scope to the "
    "app and reinstall it, then try again."
)

_HINTS: dict[ErrorCode, str] = {
    ErrorCode.FILE_TOO_LARGE: "Try a compressed version (MP3) or a shorter cut.",
    ErrorCode.UNSUPPORTED_FORMAT: "Send an MP3, WAV, FLAC, M4A or OGG file.",
    ErrorCode.CORRUPT_AUDIO: "The file looks damaged; export it again and resend it.",
    ErrorCode.AUDIO_TOO_LONG: "Trim it to the part you need and try again.",
    ErrorCode.SOURCE_UNREACHABLE: "Check that the link opens without signing in.",
    ErrorCode.SOURCE_FORBIDDEN: "Use a public link, or send me the file in a DM.",
    ErrorCode.BACKEND_UNAVAILABLE: "The separation service is busy; try again in a few minutes.",
    ErrorCode.BACKEND_ERROR: "Try again in a little while.",
    ErrorCode.BACKEND_AUTH: "The separation service refused our key; tell whoever runs stemhub.",
    ErrorCode.INSUFFICIENT_CREDITS: (
        "The separation account is out of credits; tell whoever runs stemhub."
    ),
    ErrorCode.INTERNAL: "Tell whoever runs stemhub if it keeps happening.",
}
_QUOTA_WHO = {
    "user": "You have",
    "channel": "This channel has",
    "guild": "This workspace has",
    "api_key": "This key has",
}


def _wait_text(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{round(minutes / 60)} hours"


def _period(window_s: float) -> str:
    names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
    return names.get(round(window_s), _wait_text(window_s))


def error_text(
    code: str | ErrorCode | None,
    message: str | None,
    *,
    retry_after: float | None = None,
    details: dict[str, Any] | None = None,
    slack_file: bool = False,
) -> str:
    """The ephemeral text for a refusal or a failed job."""
    try:
        known: ErrorCode | None = ErrorCode(code) if code else None
    except ValueError:
        known = None
    said = (message or "Something went wrong.").strip()
    if known is ErrorCode.UNSUPPORTED_FORMAT and slack_file and "html" in said.lower():
        return f":lock: {MISSING_FILES_READ}"
    if known is ErrorCode.QUOTA_EXCEEDED:
        details = details or {}
        who = _QUOTA_WHO.get(str(details.get("scope")))
        limit, window = details.get("limit"), details.get("windowSeconds")
        if who and limit and window:
            wait = f" Try again in {_wait_text(retry_after)}." if retry_after else ""
            said = f"{who} used all {limit} splits allowed per {_period(float(window))}.{wait}"
        return f":hourglass: {said}"
    if known is ErrorCode.JOB_CANCELLED:
        return f":no_entry_sign: {said}"
    if known is ErrorCode.FORBIDDEN:
        return f":no_entry: {said}"
    hint = _HINTS.get(known) if known else None
    return f":warning: {said}" + (f" {hint}" if hint and hint not in said else "")


def progress_bar(percent: float, width: int = 10) -> str:
    filled = max(0, min(width, round(percent / 100 * width)))
    return "▰" * filled + "▱" * (width - filled)


def stems_label(job: Job) -> str:
    return describe_stems(job.request.stems)


def status_text(job: Job) -> str:
    """The one status line, edited as the job moves (coalesced)."""
    name = job.request.source.display_name
    who = f"<@{job.origin.user_id}>" if job.origin.user_id else "someone"
    head = f"*{name}* → {stems_label(job)}, for {who}"
    if job.status is JobStatus.QUEUED:
        return f":hourglass_flowing_sand: {head}: queued"
    if job.stage is Stage.FETCH:
        return f":inbox_tray: {head}: downloading…"
    if job.stage is Stage.SEPARATE:
        return (
            f":control_knobs: {head}: separating {progress_bar(job.progress)} {job.progress:.0f}%"
        )
    return final_status_text(job)


def audio_facts(job: Job) -> str:
    audio = job.audio
    facts: list[str] = []
    if audio is not None and audio.duration_s:
        minutes, seconds = divmod(round(audio.duration_s), 60)
        facts.append(f"{minutes}:{seconds:02d}")
    if audio is not None and audio.bpm:
        facts.append(f"{audio.bpm:.0f} BPM")
    if audio is not None and audio.key:
        facts.append(f"key {audio.key}")
    return " · ".join(facts)


def final_status_text(job: Job) -> str:
    name = job.request.source.display_name
    if job.status is JobStatus.COMPLETED:
        facts = audio_facts(job)
        return (
            f":white_check_mark: *{name}* → {stems_label(job)}"
            + (f" ({facts})" if facts else "")
            + ": done, stems in the thread."
        )
    if job.status is JobStatus.CANCELLED:
        return f":no_entry_sign: *{name}*: cancelled."
    who = f"<@{job.origin.user_id}>" if job.origin.user_id else "the requester"
    return f":x: *{name}*: could not be split; I sent {who} the details."


def _link_line(stem: str, url: str, expires_at: datetime) -> str:
    return f"• <{url}|{stem}> (link valid until {expires_at:%H:%M} UTC)"


def result_message(
    job: Job,
    *,
    links: dict[str, tuple[str, datetime]],
    uploaded: list[str],
    missing_links: list[str],
    moved_to_dm: str | None = None,
    app_name: str = "stemhub",
    page_url: str | None = None,
    picture_url: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The summary posted in the thread: facts, links, and what to do next.

    ``moved_to_dm``: the channel refused the files (the app is not a member), so they
    went to this DM; the summary says so and how to get them here next time.
    ``page_url`` adds a button to the result page (players, solo and mute), and
    ``picture_url`` an image of the stems' waveforms.
    """
    name = job.request.source.display_name
    facts = audio_facts(job)
    text = f"Stems of *{name}* ({stems_label(job)})" + (f": {facts}" if facts else "")
    lines = [text]
    if uploaded:
        lines.append(f"Uploaded here: {', '.join(uploaded)}.")
    if moved_to_dm:
        who = f"<@{job.origin.user_id}>" if job.origin.user_id else "the requester"
        lines.append(
            f":mailbox_with_mail: I'm not a member of this channel, so I can't upload files "
            f"here: the stems went to {who}'s DM with me. Invite me with `/invite @{app_name}` "
            "to get them here next time."
        )
    lines += [_link_line(stem, url, expires) for stem, (url, expires) in links.items()]
    if missing_links:
        lines.append(
            f"No download links for {', '.join(missing_links)}: this hub has no public "
            "address (tell whoever runs stemhub to set STEMHUB_PUBLIC_URL)."
        )
    buttons: list[dict[str, Any]] = []
    if page_url is not None:
        buttons.append(
            {
                "type": "button",
                "action_id": RESULT_PAGE_ACTION,
                "text": {"type": "plain_text", "text": "Listen, solo and mix"},
                "url": page_url,
                "style": "primary",
            }
        )
    if links:
        buttons.append(
            {
                "type": "button",
                "action_id": FRESH_LINKS_ACTION,
                "text": {"type": "plain_text", "text": "Fresh links"},
                "value": job.id,
            }
        )
    buttons.append(
        {
            "type": "button",
            "action_id": ANOTHER_SET_ACTION,
            "text": {"type": "plain_text", "text": "Another stem set"},
            "value": job.id,
        }
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
    ]
    if picture_url is not None:
        blocks.append(
            {
                "type": "image",
                "image_url": picture_url,
                "alt_text": f"Waveforms of the stems of {name}"[:2000],
            }
        )
    blocks.append({"type": "actions", "block_id": "stemhub_result", "elements": buttons})
    return text, blocks


def undelivered_text(job: Job, error: StemhubError, links: dict[str, tuple[str, datetime]]) -> str:
    """Plain text for a result Slack would not take: what happened and where the stems are."""
    name = job.request.source.display_name
    if job.status is JobStatus.COMPLETED:
        head = f"Your stems of {name} are ready, but I could not post them in Slack."
        if links:
            body = "\n".join(
                f"{stem}: {url} (valid until {expires:%H:%M} UTC)"
                for stem, (url, expires) in links.items()
            )
            return f"{head} Download them here:\n{body}"
        return f"{head} Split the song again, or ask whoever runs stemhub ({error.message})"
    said = job.error_message or "it could not be split"
    return f"I could not split {name}: {said}"


def undelivered_status_text(job: Job, *, told: bool) -> str:
    """The status line's last word when delivery gave up."""
    name = job.request.source.display_name
    who = f"<@{job.origin.user_id}>" if job.origin.user_id else "the requester"
    if job.status is JobStatus.COMPLETED:
        tail = f"I sent {who} download links instead." if told else "ask me again."
        return f":warning: *{name}*: split, but Slack would not take the stems; {tail}"
    return f":x: *{name}*: could not be split" + (f"; I sent {who} the details." if told else ".")


def file_choice(
    files: list[tuple[str, str]], *, thread_ts: str | None
) -> tuple[str, list[dict[str, Any]]]:
    """Buttons to pick which of a message's audio files to split (at most 5 shown)."""
    shown = files[:MAX_FILE_CHOICES]
    text = f"That message has {len(files)} audio files. Which one should I split?"
    buttons = [
        {
            "type": "button",
            "action_id": f"{PICK_FILE_ACTION}_{n}",
            "text": {"type": "plain_text", "text": name[:75]},
            "value": json.dumps({"file": file_id, "thread_ts": thread_ts}, separators=(",", ":")),
        }
        for n, (file_id, name) in enumerate(shown)
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "plain_text", "text": text}},
        {"type": "actions", "block_id": "stemhub_pick_file", "elements": buttons},
    ]
    return text, blocks


def links_text(job: Job, links: dict[str, tuple[str, datetime]]) -> str:
    if not links:
        return (
            ":warning: I have no download links for these stems: this hub has no public "
            "address, or the stems were already cleaned up. Split the song again to get them."
        )
    name = job.request.source.display_name
    body = "\n".join(_link_line(stem, url, expires) for stem, (url, expires) in links.items())
    return f"Fresh links for *{name}*:\n{body}"


def _option(stem_set: StemSet) -> dict[str, Any]:
    return {
        "text": {"type": "plain_text", "text": STEM_SET_LABELS[stem_set]},
        "value": stem_set.value,
    }


def split_modal(
    *,
    metadata: dict[str, Any],
    stems: StemSet,
    ask_url: bool,
    source_name: str | None = None,
) -> dict[str, Any]:
    """The ``/split`` modal: a stem-set select and, unless re-splitting, a link field."""
    blocks: list[dict[str, Any]] = []
    if ask_url:
        blocks.append(
            {
                "type": "input",
                "block_id": URL_BLOCK,
                "label": {"type": "plain_text", "text": "Link to the song"},
                "element": {
                    "type": "url_text_input",
                    "action_id": URL_INPUT,
                    "placeholder": {"type": "plain_text", "text": "https://…/song.mp3"},
                },
                "hint": {
                    "type": "plain_text",
                    "text": "For a file in Slack, use the Split stems shortcut on its message.",
                },
            }
        )
    else:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Split *{source_name or 'the song'}* again."},
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": STEMS_BLOCK,
            "label": {"type": "plain_text", "text": "Stems"},
            "element": {
                "type": "static_select",
                "action_id": STEMS_INPUT,
                "initial_option": _option(stems),
                "options": [_option(s) for s in StemSet],
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK_ID,
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "title": {"type": "plain_text", "text": "Split stems"},
        "submit": {"type": "plain_text", "text": "Split"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


__all__ = [
    "ANOTHER_SET_ACTION",
    "FRESH_LINKS_ACTION",
    "MAX_FILE_CHOICES",
    "MISSING_FILES_READ",
    "MODAL_CALLBACK_ID",
    "PICK_FILE_ACTION",
    "RESULT_PAGE_ACTION",
    "STEMS_BLOCK",
    "STEMS_INPUT",
    "URL_BLOCK",
    "URL_INPUT",
    "audio_facts",
    "error_text",
    "file_choice",
    "final_status_text",
    "links_text",
    "progress_bar",
    "result_message",
    "split_modal",
    "status_text",
    "undelivered_status_text",
    "undelivered_text",
]
