"""Finding the audio in what a user gave us: an attachment, a link, or someone's message.

Discord tells an attachment's size and content type before anything is downloaded, so a
file that is too big or not audio is refused on the spot. Attachment URLs on Discord's
CDN are signed and expire, which is why the hub downloads them as soon as the job starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from stemhub import ErrorCode, RequestRejected, Source, SourceKind

AUDIO_EXTENSIONS = frozenset(
    {"mp3", "wav", "flac", "ogg", "oga", "opus", "m4a", "aac", "aif", "aiff", "wma", "webm", "mp4"}
)
VIDEO_WITH_AUDIO = frozenset({"video/mp4", "video/webm", "video/quicktime"})
YOUTUBE_HOSTS = ("youtube.com", "youtu.be", "music.youtube.com")
_URL = re.compile(r"https?://[^\s<>()\"']+")


@dataclass(frozen=True)
class AttachmentInfo:
    """The fields of a Discord attachment that matter here (from discord.Attachment)."""

    url: str
    filename: str
    size: int
    content_type: str | None


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def looks_like_audio(filename: str, content_type: str | None) -> bool:
    if content_type:
        base = content_type.split(";", 1)[0].strip().lower()
        if base.startswith("audio/") or base in VIDEO_WITH_AUDIO:
            return True
        if base != "application/octet-stream":
            return False
    return _extension(filename) in AUDIO_EXTENSIONS


def is_youtube(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == h or host.endswith("." + h) for h in YOUTUBE_HOSTS)


def source_from_attachment(attachment: AttachmentInfo, *, max_bytes: int) -> Source:
    """A URL source for an attachment, refused before download if too big or not audio."""
    if not looks_like_audio(attachment.filename, attachment.content_type):
        kind = attachment.content_type or "unknown type"
        raise RequestRejected(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{attachment.filename} ({kind}) is not an audio file.",
        )
    if attachment.size > max_bytes:
        raise RequestRejected(
            ErrorCode.FILE_TOO_LARGE,
            f"{attachment.filename} is {attachment.size / 1e6:.1f} MB; "
            f"the limit is {max_bytes / 1e6:.0f} MB.",
        )
    return Source(
        kind=SourceKind.URL,
        url=attachment.url,
        filename=attachment.filename,
        content_type=attachment.content_type,
        size_bytes=attachment.size,
    )


def source_from_link(url: str) -> Source:
    url = url.strip().strip("<>")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestRejected(
            ErrorCode.INVALID_REQUEST, "Give a full link that starts with https://."
        )
    if is_youtube(url):
        return Source(kind=SourceKind.YOUTUBE, url=url)
    return Source(kind=SourceKind.URL, url=url)


def audio_links(text: str) -> list[str]:
    """Links in a message that point at audio files or YouTube, in order."""
    found: list[str] = []
    for match in _URL.finditer(text or ""):
        url = match.group(0).rstrip(".,;:!?")
        path = urlsplit(url).path
        if is_youtube(url) or _extension(path) in AUDIO_EXTENSIONS:
            found.append(url)
    return found


def source_from_message(
    attachments: Iterable[AttachmentInfo], content: str, *, max_bytes: int
) -> Source:
    """The first audio attachment of a message, else its first audio link."""
    refused: RequestRejected | None = None
    for attachment in attachments:
        if not looks_like_audio(attachment.filename, attachment.content_type):
            continue
        try:
            return source_from_attachment(attachment, max_bytes=max_bytes)
        except RequestRejected as error:
            refused = refused or error
    if refused is not None:
        raise refused
    links = audio_links(content)
    if links:
        return source_from_link(links[0])
    raise RequestRejected(
        ErrorCode.UNSUPPORTED_FORMAT,
        "That message has no audio file or audio link to split.",
    )


__all__ = [
    "AUDIO_EXTENSIONS",
    "AttachmentInfo",
    "audio_links",
    "is_youtube",
    "looks_like_audio",
    "source_from_attachment",
    "source_from_link",
    "source_from_message",
]
