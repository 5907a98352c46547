"""One request from Slack, whichever way it came in (command, shortcut, modal, DM file)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stemhub import OutputFormat, Source, SourceKind, StemSet

AUDIO_EXTENSIONS = frozenset(
    {"mp3", "wav", "flac", "m4a", "aac", "ogg", "oga", "opus", "aif", "aiff", "wma", "mp4"}
)


@dataclass(frozen=True)
class SlackFile:
    """A file Slack handed us in a signed payload; only these get the bot token."""

    id: str
    url: str
    name: str
    mimetype: str | None = None
    size: int | None = None

    @classmethod
    def from_payload(cls, file: dict[str, Any]) -> SlackFile | None:
        url = file.get("url_private_download") or file.get("url_private")
        if not file.get("id") or not url:
            return None
        return cls(
            id=str(file["id"]),
            url=str(url),
            name=str(file.get("name") or file.get("title") or "audio"),
            mimetype=file.get("mimetype"),
            size=file.get("size") if isinstance(file.get("size"), int) else None,
        )

    @property
    def is_audio(self) -> bool:
        mime = (self.mimetype or "").lower()
        if mime.startswith("audio/") or mime in ("video/mp4", "video/quicktime"):
            return True
        return self.name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS

    def source(self) -> Source:
        return Source(
            kind=SourceKind.URL,
            url=self.url,
            filename=self.name,
            content_type=self.mimetype,
            size_bytes=self.size,
        )


@dataclass(frozen=True)
class Ask:
    """Who asked, where the answer goes, and what to split."""

    team_id: str | None
    user_id: str
    channel_id: str
    source: Source
    stems: StemSet | list[str]
    output_format: OutputFormat
    thread_ts: str | None = None
    """The message whose thread gets the results; ``None`` starts a new message."""
    response_url: str | None = None
    slack_file: SlackFile | None = None


def audio_files(files: list[dict[str, Any]] | None) -> list[SlackFile]:
    """The audio files among ``files`` (file objects as Slack sends them), in order."""
    found: list[SlackFile] = []
    for item in files or []:
        file = SlackFile.from_payload(item)
        if file is not None and file.is_audio:
            found.append(file)
    return found


__all__ = ["AUDIO_EXTENSIONS", "Ask", "SlackFile", "audio_files"]
