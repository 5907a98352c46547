"""Bass lines played by our own synthesizer patches, for the engine's training songs.

The sound fonts give the training songs sampled basses (acoustic, finger, picked,
fretless, slap, GM synth basses). Many records instead carry a bass made on a
synthesizer: a sub sine, a filtered saw or square with an envelope on the cut-off, an
FM "DX" bass, a detuned "reese" pair, a plucked string. :func:`render_bass` plays a
composed bass :class:`~bench.fluid_render.Part` with one of these patches, drawing the
patch's settings (cut-off, envelope, drive, width) from the song's random generator, so
the model hears bass timbres no sound font has.

Everything is additive or a linear filter in numpy/scipy: a 24 s line renders in
about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import signal

from bench.fluid_render import Part

BassPatch = Literal["sub", "saw", "square", "fm", "reese", "pluck"]
BASS_PATCHES: tuple[BassPatch, ...] = ("sub", "saw", "square", "fm", "reese", "pluck")
_TOP_HZ = 6000.0
_MAX_PARTIALS = 64
"""The additive patches play partials up to ``_TOP_HZ`` and at most this many (the
filter has taken the rest 40 dB down)."""


@dataclass(frozen=True)
class PatchSettings:
    """One song's settings of a patch (drawn once per song)."""

    cutoff_hz: float
    """Filter cut-off the envelope settles on."""
    sweep_hz: float
    """How far above that the envelope starts."""
    sweep_s: float
    """Time constant of the cut-off's fall."""
    decay_s: float
    """Time constant of the amplitude's fall (long: held notes)."""
    drive: float
    """Soft clipping: 0 clean, 1 warm."""
    width: float
    """0 mono .. 1 wide (the reese pair and the sub's harmonics)."""

    @classmethod
    def draw(cls, rng: np.random.Generator) -> PatchSettings:
        return cls(
            cutoff_hz=float(rng.uniform(250.0, 1600.0)),
            sweep_hz=float(rng.uniform(0.0, 3000.0)),
            sweep_s=float(rng.uniform(0.03, 0.4)),
            decay_s=float(rng.choice([0.25, 0.6, 1.5, 8.0])),
            drive=float(rng.uniform(0.0, 1.0)),
            width=float(rng.uniform(0.0, 0.5)),
        )


def _hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12.0)


def _additive(
    f0: float, t: NDArray[np.float64], settings: PatchSettings, odd_only: bool
) -> NDArray[np.float64]:
    """A saw (or square) through a 2-pole low-pass whose cut-off falls over the note."""
    step = 2 if odd_only else 1
    k = np.arange(1, min(_TOP_HZ / f0, _MAX_PARTIALS) + 1, step, dtype=np.float64)
    cutoff = settings.cutoff_hz + settings.sweep_hz * np.exp(-t / settings.sweep_s)
    # per-partial gain of the filter, per sample: |H| of a 2-pole low-pass
    ratio = (k[:, None] * f0) / cutoff[None, :]
    gain = 1.0 / np.sqrt(1.0 + ratio**4)
    partials = np.sin(2.0 * np.pi * f0 * k[:, None] * t[None, :]) / k[:, None]
    out: NDArray[np.float64] = np.sum(partials * gain, axis=0)
    return out


def _note_tone(
    patch: BassPatch,
    f0: float,
    n: int,
    sr: int,
    settings: PatchSettings,
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """(2, n): one note's tone before its amplitude envelope."""
    t = np.arange(n) / sr
    if patch == "sub":
        mono = np.sin(2 * np.pi * f0 * t) + 0.12 * np.sin(4 * np.pi * f0 * t)
        upper = 0.05 * np.sin(6 * np.pi * f0 * t)
        return np.stack([mono + upper * settings.width, mono - upper * settings.width])
    if patch in ("saw", "square"):
        mono = _additive(f0, t, settings, odd_only=patch == "square")
        return np.stack([mono, mono])
    if patch == "fm":
        ratio = float(rng.choice([1.0, 2.0, 3.0]))
        index = 0.5 + 4.0 * np.exp(-t / settings.sweep_s)
        mono = np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * ratio * f0 * t))
        return np.stack([mono, mono])
    if patch == "reese":
        cents = 6.0 + 10.0 * settings.width
        left = _additive(f0 * 2 ** (cents / 1200), t, settings, odd_only=False)
        right = _additive(f0 * 2 ** (-cents / 1200), t, settings, odd_only=False)
        mid = 0.5 * (left + right)
        return np.stack([mid + settings.width * (left - mid), mid + settings.width * (right - mid)])
    # pluck: a string by Karplus-Strong, its loop as one linear filter
    delay = max(2, round(sr / f0))
    burst = rng.uniform(-1.0, 1.0, delay)
    sos = signal.butter(2, min(settings.cutoff_hz * 1.5, 0.45 * sr), fs=sr, output="sos")
    excitation = np.zeros(n)
    excitation[: min(n, delay)] = signal.sosfilt(sos, burst)[: min(n, delay)]
    loss = 0.996 if settings.decay_s > 1.0 else 0.985
    a = np.zeros(delay + 2)
    a[0], a[delay], a[delay + 1] = 1.0, -loss / 2, -loss / 2
    mono = signal.lfilter([1.0], a, excitation)
    return np.stack([mono, mono])


def render_bass(
    part: Part,
    seconds: float,
    patch: BassPatch,
    rng: np.random.Generator,
    sample_rate: int = 44100,
) -> NDArray[np.float64]:
    """Play ``part``'s notes with ``patch``: (2, seconds * sample_rate) float audio."""
    settings = PatchSettings.draw(rng)
    total = round(seconds * sample_rate)
    out = np.zeros((2, total))
    attack = max(1, round((0.002 if patch in ("pluck", "fm") else 0.006) * sample_rate))
    release = round(0.04 * sample_rate)
    for note in part.notes:
        start = max(0, round(note.start * sample_rate))
        if start >= total:
            continue
        held = max(attack + 1, round((note.end - note.start) * sample_rate))
        n = min(held + release, total - start)
        tone = _note_tone(patch, _hz(note.pitch), n, sample_rate, settings, rng)
        t = np.arange(n) / sample_rate
        envelope = np.exp(-t / settings.decay_s)
        rise = min(attack, n)
        envelope[:rise] *= np.linspace(0.0, 1.0, attack)[:rise]
        if n > held:
            envelope[held:] *= np.linspace(1.0, 0.0, n - held)
        level = (note.velocity / 127.0) ** 1.5
        out[:, start : start + n] += tone * envelope * level
    peak = float(np.max(np.abs(out))) or 1.0
    out /= peak
    if settings.drive > 0.05:
        drive = 1.0 + 4.0 * settings.drive
        out = np.tanh(drive * out) / np.tanh(drive)
    return out


__all__ = ["BASS_PATCHES", "BassPatch", "PatchSettings", "render_bass"]
