"""Audio fixtures made on the spot with PyAV and libsndfile: nothing downloaded or committed."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile
from numpy.typing import NDArray

LEFT_HZ = 440.0
RIGHT_HZ = 660.0


def tone(sample_rate: int, frames: int, channels: int) -> NDArray[np.float32]:
    """A 440 Hz left channel and a 660 Hz right one, so swapped channels show."""
    t = np.arange(frames) / sample_rate
    rows = [0.5 * np.sin(2 * np.pi * LEFT_HZ * t), 0.3 * np.sin(2 * np.pi * RIGHT_HZ * t)]
    return np.stack(rows[:channels]).astype(np.float32)


def peak_hz(signal: NDArray[np.float32], sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / sample_rate)[int(np.argmax(spectrum))])


def write_pyav(
    path: Path,
    audio: NDArray[np.float32],
    sample_rate: int,
    codec: str,
    container_format: str,
    options: dict[str, str] | None = None,
) -> Path:
    layout = "mono" if audio.shape[0] == 1 else "stereo"
    with av.open(str(path), "w", format=container_format) as container:
        stream: Any = container.add_stream(codec, rate=sample_rate, layout=layout)
        if options:
            stream.codec_context.options = options
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(audio), format="fltp", layout=layout
        )
        frame.sample_rate = sample_rate
        frame.time_base = Fraction(1, sample_rate)
        frame.pts = 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def write_sndfile(
    path: Path,
    audio: NDArray[np.float32],
    sample_rate: int,
    fmt: str,
    subtype: str,
) -> Path:
    soundfile.write(str(path), audio.T, sample_rate, format=fmt, subtype=subtype)
    return path


def write_video_only(path: Path) -> Path:
    """A tiny MPEG-4 video in an MP4 with no audio track."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = 64
        stream.height = 48
        stream.pix_fmt = "yuv420p"
        for index in range(5):
            pixels = np.full((48, 64, 3), index * 40, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@dataclass(frozen=True)
class Sample:
    """One fixture file and what it should probe as."""

    name: str
    path: Path
    container: str
    codec: str
    sample_rate: int
    channels: int
    frames: int
    lossless: bool
    exact_length: bool


def make_samples(folder: Path, seconds: float = 1.0) -> dict[str, Sample]:
    """Every input format people send, mono and stereo, at 22.05, 44.1 and 48 kHz.

    Files get a neutral ``.bin`` name so nothing can lean on an extension.
    """
    specs = [
        ("mp3-44k-stereo", "mp3", "mp3", 44100, 2, ("pyav", "libmp3lame", "mp3"), False, True),
        ("mp3-22k-mono", "mp3", "mp3", 22050, 1, ("pyav", "libmp3lame", "mp3"), False, True),
        ("mp3-48k-stereo", "mp3", "mp3", 48000, 2, ("pyav", "libmp3lame", "mp3"), False, True),
        ("wav-44k-stereo", "wav", "pcm_s16le", 44100, 2, ("snd", "WAV", "PCM_16"), True, True),
        ("wav-22k-mono", "wav", "pcm_s16le", 22050, 1, ("snd", "WAV", "PCM_16"), True, True),
        ("wav-48k-24bit", "wav", "pcm_s24le", 48000, 2, ("snd", "WAV", "PCM_24"), True, True),
        ("wav-48k-float", "wav", "pcm_f32le", 48000, 2, ("snd", "WAV", "FLOAT"), True, True),
        ("flac-44k-stereo", "flac", "flac", 44100, 2, ("snd", "FLAC", "PCM_16"), True, True),
        ("flac-48k-mono", "flac", "flac", 48000, 1, ("snd", "FLAC", "PCM_24"), True, True),
        ("aiff-44k-stereo", "aiff", "pcm_s16be", 44100, 2, ("snd", "AIFF", "PCM_16"), True, True),
        ("m4a-44k-stereo", "m4a", "aac", 44100, 2, ("pyav", "aac", "ipod"), False, False),
        ("m4a-48k-mono", "m4a", "aac", 48000, 1, ("pyav", "aac", "mp4"), False, False),
        ("m4a-alac", "m4a", "alac", 44100, 2, ("pyav", "alac", "ipod"), True, True),
        ("aac-adts-44k", "aac", "aac", 44100, 2, ("pyav", "aac", "adts"), False, False),
        ("ogg-vorbis-44k", "ogg", "vorbis", 44100, 2, ("snd", "OGG", "VORBIS"), False, False),
        ("ogg-vorbis-22k", "ogg", "vorbis", 22050, 1, ("snd", "OGG", "VORBIS"), False, False),
        ("opus-48k-stereo", "ogg", "opus", 48000, 2, ("pyav", "libopus", "ogg"), False, False),
        ("opus-48k-mono", "ogg", "opus", 48000, 1, ("pyav", "libopus", "opus"), False, False),
        ("webm-opus", "webm", "opus", 48000, 2, ("pyav", "libopus", "webm"), False, False),
    ]
    samples: dict[str, Sample] = {}
    for name, container, codec, rate, channels, (writer, a, b), lossless, exact in specs:
        frames = int(rate * seconds)
        audio = tone(rate, frames, channels)
        path = folder / f"{name}.bin"
        if writer == "pyav":
            write_pyav(path, audio, rate, a, b)
        else:
            write_sndfile(path, audio, rate, a, b)
        samples[name] = Sample(
            name, path, container, codec, rate, channels, frames, lossless, exact
        )
    return samples
