"""Note events -> a Standard MIDI File -> audio, through the ``fluidsynth`` command.

The sampled benchmark songs play their tonal parts (vocals, bass, other) with General
MIDI sound fonts: each part is written as its own MIDI file (format 0, written here
byte by byte, no MIDI library needed) and rendered on its own by ``fluidsynth -F``, so
every stem is exactly what its part sounds like, reverb and chorus included.

Debian packages: ``fluidsynth`` (the command), ``fluid-soundfont-gm`` (FluidR3_GM, the
benchmark's sounds), ``timgm6mb-soundfont``, ``musescore-general-soundfont`` (and its
``-lossless`` build, much faster to load), ``opl3-soundfont`` and ``csound-soundfont``
(the training sounds).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

_MUSESCORE_GENERAL = (
    Path("/usr/share/sounds/sf2/MuseScore_General_Full.sf2"),
    Path("/usr/share/sounds/sf3/MuseScore_General.sf3"),
)
SOUND_FONTS = {
    "FluidR3_GM": Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
    "TimGM6mb": Path("/usr/share/sounds/sf2/TimGM6mb.sf2"),
    # the uncompressed build when installed: the same sounds, loaded in a second where
    # the Ogg-compressed .sf3 takes fluidsynth 10-20 s to unpack for every part
    "MuseScore_General": next(
        (path for path in _MUSESCORE_GENERAL if path.exists()), _MUSESCORE_GENERAL[-1]
    ),
    "OPL3_FM": Path("/usr/share/sounds/sf2/OPL-3_FM_128M.sf2"),
    "Csound_GM": Path("/usr/share/sounds/sf2/sf_GMbank.sf2"),
}
TEST_SOUND_FONT = "FluidR3_GM"
TRAIN_SOUND_FONTS: tuple[str, ...] = ("TimGM6mb", "MuseScore_General")
WIDE_TRAIN_SOUND_FONTS: tuple[str, ...] = (*TRAIN_SOUND_FONTS, "OPL3_FM", "Csound_GM")
"""The training fonts of the "varied" training songs: also an FM chip's bank (OPL-3)
and csound's public-domain EMU8000 bank; neither shares samples with FluidR3 (nor do
fluid-soundfont-gs and fluidr3mono, which are FluidR3, and so are used nowhere)."""
APT_PACKAGES = (
    "fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont"
    " musescore-general-soundfont-lossless opl3-soundfont csound-soundfont hydrogen-drumkits"
)
_TICKS_PER_QUARTER = 960
_MICROSECONDS_PER_QUARTER = 500_000
_TICKS_PER_SECOND = _TICKS_PER_QUARTER * 1_000_000 / _MICROSECONDS_PER_QUARTER

CC_VOLUME, CC_PAN, CC_EXPRESSION, CC_REVERB, CC_CHORUS = 7, 10, 11, 91, 93


class SoundSourceMissingError(RuntimeError):
    """fluidsynth or a sound font is not installed."""


def require_fluidsynth(*sound_fonts: str) -> None:
    """Fail with the apt line when the command or a sound font is missing."""
    missing = [] if shutil.which("fluidsynth") else ["the fluidsynth command"]
    missing += [str(SOUND_FONTS[name]) for name in sound_fonts if not SOUND_FONTS[name].exists()]
    if missing:
        raise SoundSourceMissingError(
            f"missing {', '.join(missing)}; install with: apt install {APT_PACKAGES}"
        )


@dataclass(frozen=True)
class Note:
    start: float
    """Seconds."""
    end: float
    pitch: int
    velocity: int
    channel: int


@dataclass(frozen=True)
class Channel:
    """What a channel plays and where it sits in the stereo field."""

    channel: int
    program: int
    volume: int = 100
    pan: float = 0.0
    """-1 (left) .. 1 (right)."""
    reverb: int = 40
    chorus: int = 0


@dataclass
class Part:
    """One stem's MIDI: channels, notes, and continuous controls (bends, expression)."""

    channels: list[Channel] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    bends: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds, channel, -8192..8191); the default bend range is 2 semitones."""
    controls: list[tuple[float, int, int, int]] = field(default_factory=list)
    """(seconds, channel, controller, value)."""

    def bend_cents(self, time: float, channel: int, cents: float) -> None:
        value = int(np.clip(round(cents / 200.0 * 8192), -8192, 8191))
        self.bends.append((time, channel, value))


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def midi_bytes(part: Part, end: float) -> bytes:
    """A format-0 Standard MIDI File of ``part``, ending at ``end`` seconds."""
    events: list[tuple[int, int, bytes]] = []

    def at(seconds: float) -> int:
        return max(0, round(seconds * _TICKS_PER_SECOND))

    for ch in part.channels:
        pan = int(np.clip(round(64 + ch.pan * 63), 0, 127))
        setup = [
            bytes([0xC0 | ch.channel, ch.program]),
            bytes([0xB0 | ch.channel, CC_VOLUME, ch.volume]),
            bytes([0xB0 | ch.channel, CC_PAN, pan]),
            bytes([0xB0 | ch.channel, CC_REVERB, ch.reverb]),
            bytes([0xB0 | ch.channel, CC_CHORUS, ch.chorus]),
        ]
        events.extend((0, 0, message) for message in setup)
    for time, channel, controller, value in part.controls:
        events.append((at(time), 1, bytes([0xB0 | channel, controller, value & 0x7F])))
    for time, channel, value in part.bends:
        raw = value + 8192
        events.append((at(time), 1, bytes([0xE0 | channel, raw & 0x7F, raw >> 7])))
    for note in part.notes:
        if note.end <= note.start or note.start >= end:
            continue
        velocity = int(np.clip(note.velocity, 1, 127))
        events.append((at(note.start), 3, bytes([0x90 | note.channel, note.pitch, velocity])))
        events.append((at(min(note.end, end)), 2, bytes([0x80 | note.channel, note.pitch, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray(b"\x00\xff\x51\x03" + _MICROSECONDS_PER_QUARTER.to_bytes(3, "big"))
    now = 0
    for tick, _order, message in events:
        track += _varlen(tick - now) + message
        now = tick
    track += _varlen(max(0, at(end) - now)) + b"\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, _TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


@dataclass(frozen=True)
class Room:
    """fluidsynth's reverb for a song (each channel sends to it by its CC 91)."""

    size: float = 0.5
    damp: float = 0.4
    width: float = 0.8
    level: float = 0.7


def render_part(
    part: Part,
    seconds: float,
    *,
    sound_font: str,
    room: Room = Room(),
    sample_rate: int = 44100,
    gain: float = 0.3,
) -> NDArray[np.float64]:
    """Render ``part`` with ``fluidsynth`` to (2, seconds * sample_rate) float audio."""
    require_fluidsynth(sound_font)
    samples = round(seconds * sample_rate)
    with tempfile.TemporaryDirectory(prefix="stemhub-fluid-") as tmp:
        mid, wav = Path(tmp) / "part.mid", Path(tmp) / "part.wav"
        mid.write_bytes(midi_bytes(part, seconds + 1.0))
        command = [
            "fluidsynth",
            "-ni",
            "-q",
            "-g",
            f"{gain:g}",
            "-r",
            str(sample_rate),
            "-O",
            "float",
            "-T",
            "wav",
            "-o",
            f"synth.reverb.room-size={room.size:g}",
            "-o",
            f"synth.reverb.damp={room.damp:g}",
            "-o",
            f"synth.reverb.width={room.width:g}",
            "-o",
            f"synth.reverb.level={room.level:g}",
            "-o",
            "synth.polyphony=512",
            "-F",
            str(wav),
            str(SOUND_FONTS[sound_font]),
            str(mid),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not wav.exists():
            raise RuntimeError(f"fluidsynth failed: {result.stderr.strip()[-500:]}")
        data, rate = sf.read(wav, dtype="float64", always_2d=True)
    if rate != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {rate} Hz, asked for {sample_rate}")
    out = np.zeros((2, samples))
    n = min(samples, data.shape[0])
    out[:, :n] = data[:n, :2].T
    return out


__all__ = [
    "APT_PACKAGES",
    "SOUND_FONTS",
    "TEST_SOUND_FONT",
    "TRAIN_SOUND_FONTS",
    "WIDE_TRAIN_SOUND_FONTS",
    "Channel",
    "Note",
    "Part",
    "Room",
    "SoundSourceMissingError",
    "midi_bytes",
    "render_part",
    "require_fluidsynth",
]
