"""Cover art travels from the song to its MP3 and FLAC stems, byte for byte."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from stemhub import media
from stemhub.artwork import Cover, add_flac_picture, read_cover
from stemhub.models import OutputFormat
from tests.core._covers import RATE, attached, jpeg, png, song_with_cover


@pytest.mark.parametrize(
    ("fmt", "codec", "picture"), [("mp3", "mjpeg", jpeg()), ("flac", "png", png())]
)
def test_a_songs_cover_is_read_as_it_is(
    tmp_path: Path, fmt: str, codec: str, picture: bytes
) -> None:
    song = song_with_cover(tmp_path / f"song.{fmt}", fmt, codec, picture)
    cover = read_cover(song)
    assert cover is not None and cover.data == picture and cover.codec == codec


def test_a_song_without_a_cover_has_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain.wav"
    soundfile.write(plain, np.zeros((RATE, 2), np.float32), RATE)
    assert read_cover(plain) is None
    assert read_cover(tmp_path / "missing.mp3") is None


@pytest.mark.parametrize("fmt", [OutputFormat.MP3, OutputFormat.FLAC, OutputFormat.WAV])
@pytest.mark.parametrize("picture", [jpeg(), png()], ids=["jpeg", "png"])
def test_stems_carry_the_cover_where_their_format_can(
    tmp_path: Path, fmt: OutputFormat, picture: bytes
) -> None:
    codec = "png" if picture.startswith(b"\x89PNG") else "mjpeg"
    audio = (np.random.default_rng(1).standard_normal((2, RATE)) * 0.1).astype(np.float32)
    path = tmp_path / f"vocals.{fmt.extension}"
    media.encode(path, audio, RATE, fmt, tags={"title": "x"}, cover=Cover(picture, codec))

    found = attached(path)
    if fmt is OutputFormat.WAV:
        assert found is None
    else:
        assert found == (codec, picture)
    decoded, rate = media.decode(path)
    assert rate == RATE and decoded.shape == audio.shape  # the audio is untouched
    if fmt is not OutputFormat.MP3:
        assert np.abs(decoded - audio).max() < 1e-3
    if fmt is OutputFormat.FLAC:
        info = soundfile.info(str(path))  # libsndfile still reads the file
        assert info.frames == RATE and info.channels == 2


def test_a_flac_without_streaminfo_first_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.flac"
    bogus.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(ValueError, match="not a FLAC file"):
        add_flac_picture(bogus, Cover(png(), "png"))
