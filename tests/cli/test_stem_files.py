"""What a stem file keeps of its song when the format cannot hold all of it."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from stemhub.media import AudioWriter, mp3_rate_for
from stemhub.models import OutputFormat


def test_a_5_1_stem_as_mp3_is_mixed_down_to_stereo(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    surround = np.stack([0.2 * np.sin(2 * np.pi * (200 + 50 * c) * t) for c in range(6)])

    with AudioWriter(tmp_path / "vocals.mp3", 44100, 6, OutputFormat.MP3) as writer:
        writer.write(surround.astype(np.float32))

    with av.open(str(tmp_path / "vocals.mp3")) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.channels == 2
        frames = sum(frame.samples for frame in container.decode(stream))
    assert frames == 44100


def test_mp3_rates_for_rates_mp3_cannot_hold() -> None:
    assert [mp3_rate_for(r) for r in (96000, 88200, 192000, 44100, 37800)] == [
        48000,
        48000,
        48000,
        44100,
        44100,
    ]
