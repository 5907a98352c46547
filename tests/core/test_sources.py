"""One place tells a YouTube link from any other link."""

from __future__ import annotations

import pytest

from stemhub import Source, SourceKind


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://www.youtube.com/watch?v=abc", SourceKind.YOUTUBE),
        ("https://youtube.com/watch?v=abc", SourceKind.YOUTUBE),
        ("http://youtu.be/abc", SourceKind.YOUTUBE),
        ("https://music.youtube.com/watch?v=abc", SourceKind.YOUTUBE),
        ("https://M.YouTube.com./watch?v=abc", SourceKind.YOUTUBE),
        ("https://notyoutube.com/watch?v=abc", SourceKind.URL),
        ("https://youtube.com.evil.example/watch", SourceKind.URL),
        ("https://example.com/youtube.com/song.mp3", SourceKind.URL),
        ("ftp://youtube.com/song.mp3", SourceKind.URL),
        ("https://cdn.example.com/song.mp3", SourceKind.URL),
    ],
)
def test_source_from_url(url: str, kind: SourceKind) -> None:
    source = Source.from_url(url, filename="song.mp3")
    assert source.kind is kind and source.url == url and source.filename == "song.mp3"
