"""Reading what people type after ``/split`` and what they pick in the modal.

Slack may wrap links as ``<https://...>`` or ``<https://...|label>``; people write stem
sets many ways (``4``, ``four``, ``vocals,drums``, ``karaoke``). Anything unclear is
refused with an example, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from stemhub import ALL_STEMS, ErrorCode, OutputFormat, Source, SourceKind, StemhubError, StemSet

STEM_SET_WORDS: dict[str, StemSet] = {
    "vocals": StemSet.VOCALS,
    "vocal": StemSet.VOCALS,
    "acapella": StemSet.VOCALS,
    "instrumental": StemSet.INSTRUMENTAL,
    "karaoke": StemSet.INSTRUMENTAL,
    "both": StemSet.BOTH,
    "2": StemSet.BOTH,
    "two": StemSet.BOTH,
    "4": StemSet.FOUR_STEMS,
    "four": StemSet.FOUR_STEMS,
    "4stems": StemSet.FOUR_STEMS,
    "6": StemSet.SIX_STEMS,
    "six": StemSet.SIX_STEMS,
    "6stems": StemSet.SIX_STEMS,
}
STEM_SET_LABELS: dict[StemSet, str] = {
    StemSet.VOCALS: "Vocals only",
    StemSet.INSTRUMENTAL: "Instrumental only",
    StemSet.BOTH: "Vocals + instrumental",
    StemSet.FOUR_STEMS: "4 stems: vocals, drums, bass, other",
    StemSet.SIX_STEMS: "6 stems: + guitar, piano",
}
YOUTUBE_HOSTS = ("youtube.com", "youtu.be")
USAGE = (
    "Try `/split https://example.com/song.mp3 vocals mp3` (stems: vocals, instrumental,"
    " both, 4, 6 or vocals,drums; format: mp3, wav, flac)."
)

_SLACK_LINK = re.compile(r"^<([^|>]+)(?:\|[^>]*)?>$")


@dataclass(frozen=True)
class SplitArgs:
    """A parsed ``/split``: where the audio is and what to make of it."""

    url: str
    stems: StemSet | list[str]
    output_format: OutputFormat

    def source(self) -> Source:
        return Source(kind=source_kind(self.url), url=self.url)


def source_kind(url: str) -> SourceKind:
    host = (urlsplit(url).hostname or "").lower()
    is_youtube = any(host == name or host.endswith("." + name) for name in YOUTUBE_HOSTS)
    return SourceKind.YOUTUBE if is_youtube else SourceKind.URL


def unwrap_link(token: str) -> str:
    match = _SLACK_LINK.match(token.strip())
    return match.group(1) if match else token.strip()


def parse_stems(word: str) -> StemSet | list[str] | None:
    """A stem set from a word (``4``, ``karaoke``, ``FOUR_STEMS``, ``vocals,drums``)."""
    lowered = word.strip().lower().replace("-", "").replace(" ", "")
    if lowered in STEM_SET_WORDS:
        return STEM_SET_WORDS[lowered]
    if lowered.upper() in StemSet.__members__:
        return StemSet(lowered.upper())
    names = [part for part in lowered.split(",") if part]
    if names and all(name in ALL_STEMS for name in names):
        return list(dict.fromkeys(names))
    return None


def parse_format(word: str) -> OutputFormat | None:
    upper = word.strip().upper().lstrip(".")
    return OutputFormat(upper) if upper in OutputFormat.__members__ else None


def parse_split_text(
    text: str,
    *,
    default_stems: StemSet,
    default_format: OutputFormat,
    is_file_host: Callable[[str], bool] | None = None,
) -> SplitArgs | None:
    """``/split`` text -> :class:`SplitArgs`; ``None`` for no text (open the modal).

    ``is_file_host`` (a ``url -> bool``) recognises links to Slack's own file servers,
    which need the shortcut instead: a typed link carries no proof the person may read it.
    """
    words = text.split()
    if not words:
        return None
    url = unwrap_link(words[0])
    if not url.lower().startswith(("http://", "https://")):
        raise StemhubError(
            ErrorCode.INVALID_REQUEST,
            f"The first thing after /split should be a link to the song. {USAGE}",
        )
    if is_file_host is not None and is_file_host(url):
        raise StemhubError(
            ErrorCode.UNSUPPORTED_SOURCE,
            "That is a file in Slack: use the *Split stems* shortcut on its message "
            "(the ⋮ menu), or send the file to me in a DM.",
        )
    stems: StemSet | list[str] = default_stems
    output_format = default_format
    for word in words[1:]:
        fmt = parse_format(word)
        if fmt is not None:
            output_format = fmt
            continue
        parsed = parse_stems(word)
        if parsed is None:
            raise StemhubError(ErrorCode.INVALID_REQUEST, f"I don't know `{word}`. {USAGE}")
        stems = parsed
    return SplitArgs(url=url, stems=stems, output_format=output_format)


def describe_stems(stems: StemSet | list[str]) -> str:
    if isinstance(stems, StemSet):
        return STEM_SET_LABELS[stems].split(":")[0].lower()
    return ", ".join(stems)


__all__ = [
    "STEM_SET_LABELS",
    "USAGE",
    "SplitArgs",
    "describe_stems",
    "parse_format",
    "parse_split_text",
    "parse_stems",
    "source_kind",
    "unwrap_link",
]
