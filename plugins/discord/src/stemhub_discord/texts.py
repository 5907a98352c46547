"""What a Discord user reads: a title and a hint for every error code, sizes, durations.

The core's error message already says what went wrong for the person who asked; the
title here is the one-line headline of the error embed and the hint says what to do next
in Discord terms (attach a smaller file, ask a server admin, try again later).
"""

from __future__ import annotations

import math
import time

from stemhub import ErrorCode

ERROR_TEXT: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.INVALID_REQUEST: (
        "That request did not make sense",
        "Check the options of `/split` and try again.",
    ),
    ErrorCode.FILE_TOO_LARGE: (
        "That file is too big",
        "Try an MP3 instead of a WAV, or a shorter excerpt.",
    ),
    ErrorCode.UNSUPPORTED_FORMAT: (
        "That is not an audio file I can read",
        "Attach an MP3, WAV, FLAC, OGG or M4A file.",
    ),
    ErrorCode.CORRUPT_AUDIO: (
        "That audio file looks broken",
        "Export it again from your audio app and attach the new file.",
    ),
    ErrorCode.AUDIO_TOO_LONG: ("That song is too long", "Split a shorter excerpt."),
    ErrorCode.AUDIO_TOO_SHORT: ("That audio is too short", "Attach at least a few seconds."),
    ErrorCode.UNSUPPORTED_STEM_SET: (
        "These stems are not available here",
        "Pick one of the stems this bot offers.",
    ),
    ErrorCode.UNSUPPORTED_SOURCE: (
        "I cannot split from that kind of link",
        "Attach the audio file instead.",
    ),
    ErrorCode.SOURCE_UNREACHABLE: (
        "I could not download the audio",
        "Check that the link works, or attach the file itself.",
    ),
    ErrorCode.SOURCE_FORBIDDEN: (
        "I am not allowed to download that audio",
        "Attach the file itself instead of a link.",
    ),
    ErrorCode.QUOTA_EXCEEDED: ("You have split a lot of songs", "Try again later."),
    ErrorCode.RATE_LIMITED: ("Too many requests right now", "Try again in a moment."),
    ErrorCode.FORBIDDEN: (
        "Splitting is not allowed here",
        "Ask a server admin where the bot may be used.",
    ),
    ErrorCode.UNAUTHORIZED: ("You are not allowed to do that", "Ask a server admin."),
    ErrorCode.NOT_FOUND: (
        "I cannot find that any more",
        "Old results are removed after a while; split the song again.",
    ),
    ErrorCode.CONFLICT: ("That already happened", "Nothing more to do."),
    ErrorCode.BACKEND_UNAVAILABLE: (
        "The separation service is busy or down",
        "Try again in a few minutes.",
    ),
    ErrorCode.BACKEND_ERROR: (
        "The separation service failed on this song",
        "Try again; if it keeps failing, try another file.",
    ),
    ErrorCode.BACKEND_AUTH: (
        "The bot is not set up correctly",
        "Tell the bot's owner: the separation service refused its key.",
    ),
    ErrorCode.INSUFFICIENT_CREDITS: (
        "The bot has run out of separation credits",
        "Tell the bot's owner; it will work again once credits are topped up.",
    ),
    ErrorCode.JOB_EXPIRED: (
        "This result has expired",
        "Split the song again to get fresh stems.",
    ),
    ErrorCode.JOB_CANCELLED: (
        "The split was cancelled",
        "Run `/split` again if you still want it.",
    ),
    ErrorCode.DELIVERY_FAILED: (
        "I could not send the result",
        "Check that the bot may post here, or open your DMs.",
    ),
    ErrorCode.CONFIG_MISSING: (
        "The bot is not set up completely",
        "Tell the bot's owner; the logs name the setting to add.",
    ),
    ErrorCode.INTERNAL: (
        "Something went wrong on our side",
        "Try again; quote the reference if you report it.",
    ),
}

STEM_EMOJI: dict[str, str] = {
    "vocals": "\N{MICROPHONE}",
    "instrumental": "\N{MUSICAL KEYBOARD}",
    "drums": "\N{DRUM WITH DRUMSTICKS}",
    "bass": "\N{GUITAR}",
    "guitar": "\N{GUITAR}",
    "piano": "\N{MUSICAL KEYBOARD}",
    "other": "\N{MUSICAL NOTE}",
}


def error_text(code: str | ErrorCode | None) -> tuple[str, str]:
    """The headline and hint for an error code; unknown codes read as internal errors."""
    try:
        return ERROR_TEXT[ErrorCode(code or ErrorCode.INTERNAL)]
    except ValueError:
        return ERROR_TEXT[ErrorCode.INTERNAL]


def retry_hint(retry_after: float | None, *, now: float | None = None) -> str:
    """A Discord timestamp that counts down in every user's own time zone."""
    if retry_after is None:
        return ""
    at = math.ceil((now if now is not None else time.time()) + retry_after)
    return f"You can try again <t:{at}:R>."


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


__all__ = [
    "ERROR_TEXT",
    "STEM_EMOJI",
    "error_text",
    "human_duration",
    "human_size",
    "retry_hint",
]
