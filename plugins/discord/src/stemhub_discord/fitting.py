"""Making a stem fit Discord's upload limit: an MP3 copy of a WAV or FLAC stem.

A 4-minute WAV stem is about 40 MB, four times the default limit of 10 MiB. The same
stem as MP3 is 9.6 MB at 320 kbps, so the user still gets files in the chat, while the
download links keep the format they chose. The bitrate is the highest that fits.
"""

from __future__ import annotations

from pathlib import Path

from stemhub import OutputFormat, media

BITRATES_KBPS = (320, 256, 192, 160, 128)
BLOCK_FRAMES = 1 << 16
HEADROOM = 0.97
"""Keep 3% below the limit for frame padding and tags."""


def mp3_bitrate_to_fit(duration_s: float | None, limit: int) -> int | None:
    """The highest MP3 bitrate whose file for ``duration_s`` fits ``limit`` bytes."""
    if not duration_s or duration_s <= 0:
        return None
    for kbps in BITRATES_KBPS:
        if duration_s * kbps * 1000 / 8 <= limit * HEADROOM:
            return kbps
    return None


def transcode_to_mp3(source: Path, target: Path, kbps: int) -> int:
    """Write an MP3 of ``source`` (streamed block by block); returns its size in bytes."""
    info = media.probe(source)
    rate = info.sample_rate or 44100
    if rate not in media.MP3_SAMPLE_RATES:
        rate = 44100
    channels = min(2, info.channels or 2)
    target.parent.mkdir(parents=True, exist_ok=True)
    with media.AudioWriter(
        target, rate, channels, OutputFormat.MP3, mp3_bitrate_kbps=kbps
    ) as writer:
        for block in media.decode_blocks(
            source, BLOCK_FRAMES, sample_rate=rate, mono=channels == 1
        ):
            writer.write(block[:channels])
    return target.stat().st_size


__all__ = ["BITRATES_KBPS", "mp3_bitrate_to_fit", "transcode_to_mp3"]
