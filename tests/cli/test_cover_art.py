"""`stemhub split` carries the song's cover art to its stems."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from stemhub.cli import app
from tests.core._covers import attached, jpeg, song_with_cover


def test_split_carries_the_cover_to_every_stem(cli: CliRunner, home: Path) -> None:
    picture = jpeg()
    song = song_with_cover(home / "song.mp3", "mp3", "mjpeg", picture)

    mp3 = cli.invoke(app, ["split", str(song), "-o", "mp3", "-s", "BOTH", "-f", "MP3"])
    flac = cli.invoke(app, ["split", str(song), "-o", "flac", "-s", "VOCALS", "-f", "FLAC"])

    assert mp3.exit_code == 0 and flac.exit_code == 0, mp3.output + flac.output
    stems = [*sorted((home / "mp3" / "song").glob("*.mp3")), home / "flac" / "song" / "vocals.flac"]
    assert len(stems) == 3
    for stem in stems:
        assert attached(stem) == ("mjpeg", picture), stem.name
