"""A small song synthesizer: the demo track, and songs with ground-truth stems.

``stemhub split --demo`` needs audio on a fresh machine with nothing downloaded, and the
separation benchmark and tests need songs whose true stems are known. Both come from
here: a song is composed from a :class:`SongSpec` (tempo, key, sections, instruments)
and rendered stem by stem (vocals, drums, bass, other), so the mix is the exact sum of
the stems. Timing, velocity and pitch are humanised and sections change, so a method
that only looks for exact repetition is not flattered.

Everything is numpy/scipy; the 12-second demo renders in about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal

from stemhub.models import OutputFormat

Audio = NDArray[np.float32]
"""Stereo audio shaped (2, samples)."""

STEM_NAMES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MAJOR_SCALE: tuple[int, ...] = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE: tuple[int, ...] = (0, 2, 3, 5, 7, 8, 10)

DrumStyle = Literal["rock", "funk", "four", "half", "waltz", "shuffle", "sparse"]
BassStyle = Literal["pluck", "synth", "sub"]
Instrument = Literal["pad", "piano", "guitar", "organ", "arp", "strings"]

# Vowel formants (Hz) and bandwidths, roughly after Peterson & Barney.
_VOWELS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "a": ((800.0, 1150.0, 2900.0), (80.0, 90.0, 120.0)),
    "e": ((400.0, 1700.0, 2600.0), (60.0, 80.0, 120.0)),
    "i": ((300.0, 2200.0, 3000.0), (50.0, 90.0, 120.0)),
    "o": ((450.0, 800.0, 2830.0), (70.0, 80.0, 100.0)),
    "u": ((325.0, 700.0, 2530.0), (50.0, 60.0, 170.0)),
}

_DRUM_PATTERNS: dict[str, dict[str, str]] = {
    # one character per step (16 steps a 4/4 bar, 12 a 3/4 bar): x hit, o soft, . rest
    "rock": {
        "kick": "x.......x.x.....",
        "snare": "....x.......x...",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "funk": {
        "kick": "x..x..x...x..x..",
        "snare": "....x..o.o..x..o",
        "hat": "xoxoxoxoxoxoxoxo",
    },
    "four": {
        "kick": "x...x...x...x...",
        "snare": "....x.......x...",
        "hat": "..x...x...x...x.",
    },
    "half": {
        "kick": "x.........x.....",
        "snare": "........x.......",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "shuffle": {
        "kick": "x.....x.x.......",
        "snare": "....x.......x...",
        "hat": "x..xx..xx..xx..x",
    },
    "sparse": {
        "kick": "x.......x.......",
        "snare": "............x...",
        "hat": "x...x...x...x...",
    },
    "waltz": {
        "kick": "x...........",
        "snare": "....x...x...",
        "hat": "x.x.x.x.x.x.",
    },
}


def key_name(root: int, minor: bool) -> str:
    """How a musician names a key: ``key_name(9, True) == "A minor"``."""
    return f"{PITCH_CLASSES[root % 12]} {'minor' if minor else 'major'}"


@dataclass(frozen=True)
class Section:
    """A stretch of bars with one chord loop and one arrangement."""

    name: str
    bars: int
    chords: tuple[int, ...]
    """Scale degrees (0-6), one per bar, looped over the section."""
    vocals: bool = True
    energy: float = 0.7
    """0..1: how busy drums and accompaniment are."""


@dataclass(frozen=True)
class SongSpec:
    """Everything that decides a song; the same spec and seed render the same audio."""

    bpm: float = 100.0
    root: int = 9
    minor: bool = True
    beats_per_bar: int = 4
    sections: tuple[Section, ...] = (
        Section("intro", 2, (0, 5), vocals=False, energy=0.5),
        Section("verse", 4, (0, 5, 2, 6)),
    )
    drums: DrumStyle = "rock"
    bass: BassStyle = "pluck"
    other: tuple[Instrument, ...] = ("pad", "piano")
    vocal_centre: int = 64
    """MIDI note the melody moves around."""
    vocal_pan: float = 0.0
    """-1 (left) .. 1 (right)."""
    vibrato_cents: float = 35.0
    harmony: bool = False
    """A second voice a third above in the choruses."""
    other_pans: tuple[float, ...] = (-0.5, 0.5, -0.2, 0.3)
    reverb: float = 0.15
    swing: float = 0.0
    """Delay of every second 16th, as a fraction of a 16th."""
    humanise_ms: float = 8.0
    level_db: dict[str, float] = field(
        default_factory=lambda: {"vocals": 0.0, "drums": 0.0, "bass": 0.0, "other": 0.0}
    )
    seed: int = 0

    @property
    def key_name(self) -> str:
        return key_name(self.root, self.minor)

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm

    @property
    def seconds(self) -> float:
        return sum(s.bars for s in self.sections) * self.bar_seconds


def _midi_hz(note: float | NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0))


def _pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power pan law."""
    angle = (float(np.clip(pan, -1.0, 1.0)) + 1.0) * np.pi / 4.0
    return float(np.cos(angle)), float(np.sin(angle))


class _Renderer:
    """Renders one song: holds the sample rate, the random state and the timeline."""

    def __init__(self, spec: SongSpec, sample_rate: int, seconds: float | None) -> None:
        self.spec = spec
        self.sr = sample_rate
        self.rng = np.random.default_rng(spec.seed)
        total = spec.seconds if seconds is None else seconds
        self.n = max(1, round(total * sample_rate))
        self.scale = MINOR_SCALE if spec.minor else MAJOR_SCALE
        self.beat_s = 60.0 / spec.bpm
        self.steps_per_bar = 4 * spec.beats_per_bar
        self.step_s = self.beat_s / 4.0
        self.bars = self._bars()

    def _bars(self) -> list[tuple[float, Section, int, int]]:
        """(start time, section, chord degree, index in section) for every bar that fits."""
        bars: list[tuple[float, Section, int, int]] = []
        t = 0.0
        end = self.n / self.sr
        while t < end:
            for section in self.spec.sections:
                for i in range(section.bars):
                    if t >= end:
                        return bars
                    bars.append((t, section, section.chords[i % len(section.chords)], i))
                    t += self.spec.bar_seconds
        return bars

    def jitter(self) -> float:
        return float(self.rng.normal(0.0, self.spec.humanise_ms / 1000.0))

    def step_time(self, bar_start: float, step: int) -> float:
        t = bar_start + step * self.step_s
        if step % 2 == 1:
            t += self.spec.swing * self.step_s
        return t + self.jitter()

    def chord(self, degree: int, octave_note: int = 60) -> list[int]:
        """The triad on ``degree`` (with a major V in minor keys) near ``octave_note``."""
        notes = []
        for k in (0, 2, 4):
            idx = degree + k
            pitch = self.scale[idx % 7] + 12 * (idx // 7)
            notes.append(pitch)
        if self.spec.minor and degree == 4:
            notes[1] += 1  # harmonic minor: the raised seventh makes V major
        base = self.spec.root % 12
        out = [base + p for p in notes]
        shift = 12 * round((octave_note - out[0]) / 12)
        return [p + shift for p in out]

    def scale_notes(self, low: int, high: int) -> list[int]:
        pcs = {(self.spec.root + s) % 12 for s in self.scale}
        return [m for m in range(low, high + 1) if m % 12 in pcs]

    def empty(self) -> NDArray[np.float64]:
        return np.zeros((2, self.n), dtype=np.float64)

    def place(
        self, out: NDArray[np.float64], sound: NDArray[np.float64], t: float, pan: float
    ) -> None:
        """Add a mono ``sound`` at time ``t`` (seconds), panned."""
        start = round(t * self.sr)
        if start >= self.n or start + sound.size <= 0:
            return
        lo = max(0, -start)
        hi = min(sound.size, self.n - start)
        left, right = _pan_gains(pan)
        out[0, start + lo : start + hi] += left * sound[lo:hi]
        out[1, start + lo : start + hi] += right * sound[lo:hi]

    def noise(self, n: int) -> NDArray[np.float64]:
        return self.rng.standard_normal(n)

    def band(
        self, x: NDArray[np.float64], lo: float | None, hi: float | None
    ) -> NDArray[np.float64]:
        nyq = self.sr / 2.0
        if lo and hi:
            sos = signal.butter(2, [lo / nyq, min(hi / nyq, 0.99)], btype="band", output="sos")
        elif lo:
            sos = signal.butter(2, lo / nyq, btype="high", output="sos")
        elif hi:
            sos = signal.butter(2, min(hi / nyq, 0.99), btype="low", output="sos")
        else:
            return x
        return np.asarray(signal.sosfilt(sos, x))

    def env(self, n: int, attack_s: float, decay_s: float) -> NDArray[np.float64]:
        t = np.arange(n) / self.sr
        attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
        return np.asarray(attack * np.exp(-t / max(decay_s, 1e-4)))

    def reverb(self, x: NDArray[np.float64], amount: float, length_s: float) -> NDArray[np.float64]:
        """A stereo room: exponentially decaying noise, different on each side."""
        if amount <= 0.0:
            return x
        n = round(length_s * self.sr)
        decay = np.exp(-6.9 * np.arange(n) / n)
        out = x.copy()
        for ch in range(2):
            ir = self.band(self.noise(n), 200.0, 7000.0) * decay
            ir *= amount / np.sqrt(np.sum(ir**2))
            out[ch] += signal.oaconvolve(x[ch], ir)[: x.shape[1]]
        return out

    def drums(self) -> NDArray[np.float64]:
        spec = self.spec
        out = self.empty()
        style = "waltz" if spec.beats_per_bar == 3 else spec.drums
        pattern = _DRUM_PATTERNS[style]
        kits = {
            name: [make(self) for _ in range(4)]
            for name, make in (
                ("kick", _kick),
                ("snare", _snare),
                ("hat", _hat),
                ("open", _open_hat),
                ("crash", _crash),
                ("tom", _tom),
            )
        }
        hat_pan = float(self.rng.uniform(-0.4, 0.4))
        previous: Section | None = None
        for bar_no, (start, section, _degree, index) in enumerate(self.bars):
            energy = section.energy
            if section is not previous:
                if bar_no > 0 or energy > 0.6:
                    self.place(out, self._pick(kits["crash"]) * 0.6, start + self.jitter(), -0.3)
                previous = section
            last_bar = index == section.bars - 1
            for step in range(self.steps_per_bar):
                t = self.step_time(start, step)
                fill = last_bar and step >= self.steps_per_bar // 2 and energy > 0.45
                if fill:
                    if self.rng.random() < 0.6:
                        kind = "tom" if self.rng.random() < 0.6 else "snare"
                        pan = float(self.rng.uniform(-0.6, 0.6)) if kind == "tom" else 0.0
                        vel = 0.5 + 0.4 * self.rng.random()
                        self.place(out, self._pick(kits[kind]) * vel, t, pan)
                    if step % 4 == 0:
                        self.place(out, self._pick(kits["kick"]) * 0.9, t, 0.0)
                    continue
                for part in ("kick", "snare", "hat"):
                    mark = pattern[part][step % len(pattern[part])]
                    if mark == "." or (part == "hat" and energy < 0.3):
                        continue
                    vel = (1.0 if mark == "x" else 0.35) * float(self.rng.uniform(0.8, 1.05))
                    if part == "hat":
                        vel *= 0.35 + 0.4 * energy
                        kind = "open" if energy > 0.75 and step % 8 == 6 else "hat"
                        self.place(out, self._pick(kits[kind]) * vel, t, hat_pan)
                    else:
                        self.place(out, self._pick(kits[part]) * vel, t, 0.0)
                if energy > 0.6 and pattern["kick"][step % 16] == "." and self.rng.random() < 0.04:
                    self.place(out, self._pick(kits["kick"]) * 0.6, t, 0.0)
        return self.reverb(out, spec.reverb * 0.6, 0.35)

    def _pick(self, variants: list[NDArray[np.float64]]) -> NDArray[np.float64]:
        return variants[int(self.rng.integers(len(variants)))]

    def bass(self) -> NDArray[np.float64]:
        spec = self.spec
        out = self.empty()
        rhythms = {
            "rock": [0, 4, 8, 10, 12],
            "funk": [0, 3, 6, 10, 11, 14],
            "four": [2, 6, 10, 14],
            "half": [0, 10],
            "shuffle": [0, 6, 8, 14],
            "sparse": [0, 8],
            "waltz": [0, 4, 8],
        }
        style = "waltz" if spec.beats_per_bar == 3 else spec.drums
        for start, section, degree, _index in self.bars:
            triad = self.chord(degree, 40)
            root = triad[0] - 12 if triad[0] > 45 else triad[0]
            fifth = triad[2] - triad[0]
            steps = rhythms[style] if section.energy > 0.3 else [0]
            for i, step in enumerate(steps):
                nxt = steps[i + 1] if i + 1 < len(steps) else self.steps_per_bar
                dur = (nxt - step) * self.step_s * float(self.rng.uniform(0.6, 0.95))
                note = root
                if i > 0 and self.rng.random() < 0.3:
                    note = root + int(self.rng.choice([fifth, 12, fifth - 12]))
                vel = float(self.rng.uniform(0.75, 1.0))
                sound = _bass_note(self, spec.bass, float(note), dur) * vel
                self.place(out, sound, self.step_time(start, step), 0.0)
        return out

    def other(self) -> NDArray[np.float64]:
        spec = self.spec
        out = self.empty()
        for k, instrument in enumerate(spec.other):
            pan = spec.other_pans[k % len(spec.other_pans)]
            part = self.empty()
            voicing = self.chord(0, 60)
            for start, section, degree, _index in self.bars:
                target = self.chord(degree, 60)
                voicing = _voice_lead(voicing, target)
                _PLAYERS[instrument](self, part, start, section, voicing, pan)
            out += part
        return self.reverb(out, spec.reverb, 1.2)

    def vocals(self) -> NDArray[np.float64]:
        spec = self.spec
        lead = self._melody_line(spec.vocal_centre, harmony=False)
        out = self.empty()
        left, right = _pan_gains(spec.vocal_pan)
        out[0] += left * lead
        out[1] += right * lead
        if spec.harmony:
            second = self._melody_line(spec.vocal_centre, harmony=True)
            left, right = _pan_gains(-0.35 if spec.vocal_pan >= 0 else 0.35)
            out[0] += 0.5 * left * second
            out[1] += 0.5 * right * second
        return self.reverb(out, spec.reverb * 1.3, 1.6)

    def _melody_line(self, centre: int, *, harmony: bool) -> NDArray[np.float64]:
        """One sung line: syllables on a melody over the chords, with phrasing and breaths."""
        rng = np.random.default_rng(self.spec.seed + (7919 if harmony else 0))
        pool_by_section: dict[str, list[int]] = {}
        f0 = np.zeros(self.n)
        amp = np.zeros(self.n)
        vowel_track: list[tuple[int, str]] = [(0, "a")]
        noises: list[tuple[float, float, float]] = []
        note = centre
        for start, section, degree, index in self.bars:
            if not section.vocals or (harmony and "chorus" not in section.name):
                continue
            lift = 3 if "chorus" in section.name else 0
            pool = pool_by_section.setdefault(
                section.name, self.scale_notes(centre - 7 + lift, centre + 8 + lift)
            )
            if index % 4 == 3 and rng.random() < 0.6:
                continue  # breathing room at the end of a phrase
            chord_pcs = {p % 12 for p in self.chord(degree)}
            t = start + (0.0 if rng.random() < 0.5 else self.beat_s / 2)
            end = start + self.spec.bar_seconds
            while t < end - self.step_s:
                length = self.beat_s * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                length = min(length, end - t)
                strong = abs(((t - start) / self.beat_s) - round((t - start) / self.beat_s)) < 0.1
                candidates = [p for p in pool if abs(p - note) <= 4] or pool
                if strong:
                    candidates = [p for p in candidates if p % 12 in chord_pcs] or candidates
                note = int(rng.choice(candidates))
                sung = note + (3 if harmony else 0)
                if harmony:
                    sung = min(
                        self.scale_notes(sung - 1, sung + 2), key=lambda p: abs(p - sung - 1)
                    )
                onset = t + float(rng.normal(0.0, 0.015))
                self._sing(f0, amp, onset, length * float(rng.uniform(0.75, 0.95)), sung, rng)
                vowel_track.append((round(onset * self.sr), str(rng.choice(list(_VOWELS)))))
                if rng.random() < 0.45:
                    noises.append((onset - 0.04, 0.05, float(rng.uniform(3500.0, 7000.0))))
                t += length
        return _voice(self, f0, amp, vowel_track, noises, rng)

    def _sing(
        self,
        f0: NDArray[np.float64],
        amp: NDArray[np.float64],
        onset: float,
        length: float,
        note: int,
        rng: np.random.Generator,
    ) -> None:
        a = max(0, round(onset * self.sr))
        b = min(self.n, round((onset + length) * self.sr))
        if b <= a:
            return
        t = np.arange(b - a) / self.sr
        prev = f0[a - 1] if a > 0 and f0[a - 1] > 0 else 0.0
        target = float(_midi_hz(note))
        glide_s = float(rng.uniform(0.03, 0.09))
        curve = np.full(b - a, target)
        if prev > 0:
            blend = np.clip(t / glide_s, 0.0, 1.0)
            curve = prev * (target / prev) ** blend
        rate = float(rng.uniform(4.8, 6.5))
        depth = self.spec.vibrato_cents * float(rng.uniform(0.6, 1.3))
        onset_ramp = np.clip((t - 0.15) / 0.3, 0.0, 1.0)
        cents = depth * onset_ramp * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28))
        cents += 8.0 * np.sin(2 * np.pi * float(rng.uniform(0.3, 1.1)) * t)
        f0[a:b] = curve * 2.0 ** (cents / 1200.0)
        envelope = np.clip(t / 0.04, 0.0, 1.0) * np.clip((length - t) / 0.06, 0.0, 1.0)
        envelope *= 1.0 + 0.15 * np.sin(2 * np.pi * float(rng.uniform(0.5, 2.0)) * t)
        amp[a:b] = np.maximum(amp[a:b], envelope * float(rng.uniform(0.75, 1.0)))


def _voice(
    r: _Renderer,
    f0: NDArray[np.float64],
    amp: NDArray[np.float64],
    vowels: list[tuple[int, str]],
    noises: list[tuple[float, float, float]],
    rng: np.random.Generator,
) -> NDArray[np.float64]:
    """Source-filter singing: harmonics shaped by moving vowel formants, plus consonants."""
    sr = r.sr
    # hold the last pitch through rests so phase stays continuous
    held = f0.copy()
    idx = np.where(held > 0, np.arange(held.size), 0)
    np.maximum.accumulate(idx, out=idx)
    held = held[idx]
    held[held <= 0] = 220.0
    phase = 2 * np.pi * np.cumsum(held) / sr
    formants = np.zeros((3, r.n))
    widths = np.zeros((3, r.n))
    positions = [p for p, _ in vowels] + [r.n]
    for (pos, vowel), nxt in zip(vowels, positions[1:], strict=False):
        f, w = _VOWELS[vowel]
        for k in range(3):
            formants[k, pos:nxt] = f[k] * float(rng.uniform(0.93, 1.07))
            widths[k, pos:nxt] = w[k]
    span = round(0.03 * sr)
    for track in (formants, widths):
        for _ in range(2):  # two box filters: a smooth 60 ms glide between vowels
            track[:] = ndimage.uniform_filter1d(track, span, axis=1, mode="nearest")
    np.maximum(widths, 30.0, out=widths)
    out = np.zeros(r.n)
    block = 16384
    voiced = np.flatnonzero(amp > 1e-4)
    if voiced.size:
        for a in range(int(voiced[0]) // block * block, int(voiced[-1]) + 1, block):
            b = min(r.n, a + block)
            if not np.any(amp[a:b] > 1e-4):
                continue
            base = held[a:b]
            n_harm = int(min(60, (sr / 2.2) / base.min()))
            harmonic = np.arange(1, n_harm + 1)[:, None]
            freqs = harmonic * base[None, :]
            gain = np.full(freqs.shape, 0.02)
            for j, weight in enumerate((1.0, 0.7, 0.5)):
                gain += weight / (1.0 + ((freqs - formants[j, a:b]) / (widths[j, a:b] / 2.0)) ** 2)
            gain *= harmonic**-0.9 * (freqs < sr / 2.2)
            out[a:b] = amp[a:b] * np.sum(gain * np.sin(harmonic * phase[a:b]), axis=0)
    breath = r.band(r.noise(r.n), 1500.0, 6000.0) * amp * 0.02
    out += breath
    for t, dur, centre in noises:
        n = round(dur * sr)
        burst = r.band(r.noise(n), centre * 0.7, min(centre * 1.6, sr * 0.45)) * r.env(n, 0.01, dur)
        start = round(t * sr)
        lo, hi = max(0, -start), min(n, r.n - start)
        if hi > lo:
            out[start + lo : start + hi] += 0.25 * burst[lo:hi]
    return out


def _kick(r: _Renderer) -> NDArray[np.float64]:
    n = round(0.45 * r.sr)
    t = np.arange(n) / r.sr
    top = float(r.rng.uniform(110.0, 160.0))
    bottom = float(r.rng.uniform(42.0, 58.0))
    freq = bottom + (top - bottom) * np.exp(-t / 0.035)
    body = np.sin(2 * np.pi * np.cumsum(freq) / r.sr) * np.exp(-t / float(r.rng.uniform(0.15, 0.3)))
    click = r.band(r.noise(n), 1500.0, 8000.0) * np.exp(-t / 0.004) * 0.4
    return np.asarray(0.9 * (body + click))


def _snare(r: _Renderer) -> NDArray[np.float64]:
    n = round(0.3 * r.sr)
    t = np.arange(n) / r.sr
    tone = np.sin(2 * np.pi * float(r.rng.uniform(170.0, 220.0)) * t) * np.exp(-t / 0.05)
    rattle = r.band(r.noise(n), 1200.0, 9000.0) * np.exp(-t / float(r.rng.uniform(0.08, 0.16)))
    return np.asarray(0.5 * tone + 0.6 * rattle)


def _hat(r: _Renderer) -> NDArray[np.float64]:
    n = round(0.08 * r.sr)
    return r.band(r.noise(n), 7000.0, None) * r.env(n, 0.0005, float(r.rng.uniform(0.015, 0.035)))


def _open_hat(r: _Renderer) -> NDArray[np.float64]:
    n = round(0.4 * r.sr)
    return r.band(r.noise(n), 6000.0, None) * r.env(n, 0.001, 0.15) * 0.8


def _crash(r: _Renderer) -> NDArray[np.float64]:
    n = round(1.8 * r.sr)
    return r.band(r.noise(n), 4000.0, None) * r.env(n, 0.002, 0.6) * 0.5


def _tom(r: _Renderer) -> NDArray[np.float64]:
    n = round(0.4 * r.sr)
    t = np.arange(n) / r.sr
    base = float(r.rng.uniform(90.0, 220.0))
    freq = base * (1.0 + 0.5 * np.exp(-t / 0.03))
    body = np.sin(2 * np.pi * np.cumsum(freq) / r.sr) * np.exp(-t / 0.18)
    return np.asarray(0.8 * body + 0.15 * r.band(r.noise(n), 300.0, 3000.0) * np.exp(-t / 0.05))


def _pluck(r: _Renderer, freq: float, dur: float, brightness: float) -> NDArray[np.float64]:
    """Karplus-Strong string: a noise burst circulating in a damped delay line."""
    n = round((dur + 0.05) * r.sr)
    period = r.sr / freq
    delay = int(period)
    frac = period - delay
    excitation = np.zeros(n)
    burst = r.band(r.noise(delay), None, brightness)
    excitation[:delay] = burst / (np.max(np.abs(burst)) + 1e-9)
    loss = 0.996
    # y[n] = x[n] + loss * ((1 - frac) * y[n - delay] + frac * y[n - delay - 1]), averaged
    a = np.zeros(delay + 3)
    a[0] = 1.0
    a[delay] -= loss * 0.5 * (1.0 - frac)
    a[delay + 1] -= loss * 0.5
    a[delay + 2] -= loss * 0.5 * frac
    y = signal.lfilter([1.0], a, excitation)
    release = np.clip((n - np.arange(n)) / (0.04 * r.sr), 0.0, 1.0)
    return np.asarray(y * release)


def _additive(
    r: _Renderer,
    freq: float,
    dur: float,
    amps: NDArray[np.float64],
    decay_s: NDArray[np.float64] | float,
    attack_s: float,
    inharmonicity: float = 0.0,
    detune_cents: float = 0.0,
) -> NDArray[np.float64]:
    n = round(dur * r.sr)
    t = np.arange(n) / r.sr
    k = np.arange(1, amps.size + 1, dtype=np.float64)
    partials = freq * k * np.sqrt(1.0 + inharmonicity * k**2)
    keep = partials < r.sr / 2.3
    partials, amp, k = partials[keep], amps[keep], k[keep]
    decays = np.broadcast_to(np.asarray(decay_s, dtype=np.float64), (amps.size,))[keep]
    drift = 2.0 ** (detune_cents / 1200.0)
    offsets = r.rng.uniform(0, 2 * np.pi, partials.size)
    t32 = t.astype(np.float32)
    phases = (2 * np.pi * partials * drift)[:, None].astype(np.float32) * t32[None, :]
    phases += offsets[:, None].astype(np.float32)
    decay = np.exp(-t32[None, :] / decays[:, None].astype(np.float32))
    out = (amp.astype(np.float32) @ (np.sin(phases) * decay)).astype(np.float64)
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    release = np.clip((dur - t) / 0.05, 0.0, 1.0)
    return np.asarray(out * attack * release)


def _table_tone(
    r: _Renderer,
    freq: float,
    dur: float,
    amps: NDArray[np.float64],
    attack_s: float,
    decay_s: float = 30.0,
    detune_cents: float = 0.0,
) -> NDArray[np.float64]:
    """A steady harmonic tone from a one-period wavetable (cost independent of partials)."""
    n = round(dur * r.sr)
    t = np.arange(n) / r.sr
    k = np.arange(1, amps.size + 1)
    amps = np.where(k * freq < r.sr / 2.3, amps, 0.0)
    size = 2048
    grid = np.arange(size + 1) / size
    table = np.sum(amps[:, None] * np.sin(2 * np.pi * k[:, None] * grid[None, :]), axis=0)
    cycles = freq * 2.0 ** (detune_cents / 1200.0) * t + float(r.rng.uniform(0.0, 1.0))
    out = np.interp((cycles % 1.0) * size, np.arange(size + 1), table)
    shape = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0) * np.exp(-t / decay_s)
    return np.asarray(out * shape * np.clip((dur - t) / 0.05, 0.0, 1.0))


def _bass_note(r: _Renderer, style: BassStyle, note: float, dur: float) -> NDArray[np.float64]:
    freq = float(_midi_hz(note))
    if style == "pluck":
        return r.band(_pluck(r, freq, dur, 1200.0), None, 1400.0) * 0.9
    if style == "synth":
        k = np.arange(1, 25, dtype=np.float64)
        sound = _table_tone(r, freq, dur, 1.0 / k, 0.005, 0.4)
        return r.band(sound, None, 900.0) * 0.5
    k = np.arange(1, 4, dtype=np.float64)
    return _additive(r, freq, dur, np.array([1.0, 0.25, 0.08]), 1.0 / k, 0.01) * 0.9


def _voice_lead(previous: list[int], target: list[int]) -> list[int]:
    """The inversion of ``target`` closest to ``previous`` (smooth chord changes)."""
    options = []
    for shift in range(3):
        chord = sorted(target[shift:] + [p + 12 for p in target[:shift]])
        for octave in (-12, 0, 12):
            moved = [p + octave for p in chord]
            if 50 <= moved[0] <= 72:
                options.append(moved)
    return min(options, key=lambda c: sum(abs(a - b) for a, b in zip(c, previous, strict=True)))


def _play_pad(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    dur = r.spec.bar_seconds + 0.3
    k = np.arange(1, 16, dtype=np.float64)
    gain = 0.09 * (0.5 + 0.5 * section.energy)
    for note in chord:
        for detune, side in ((-7.0, -0.7), (7.0, 0.7)):
            tone = _table_tone(r, float(_midi_hz(note)), dur, 1.0 / k**1.3, 0.25, 4.0, detune)
            r.place(out, tone * gain, start, float(np.clip(pan + side, -1, 1)))


def _play_piano(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    k = np.arange(1, 14, dtype=np.float64)
    hits = [0, 6, 8, 12] if section.energy > 0.6 else [0, 8]
    hits = [h for h in hits if h < r.steps_per_bar]
    for i, step in enumerate(hits):
        nxt = hits[i + 1] if i + 1 < len(hits) else r.steps_per_bar
        dur = (nxt - step) * r.step_s + 0.1
        vel = float(r.rng.uniform(0.6, 1.0)) * 0.13
        for note in [*chord, chord[0] - 12]:
            tone = _additive(r, float(_midi_hz(note)), dur, 0.9**k, 1.2 / k**0.8, 0.002, 0.0004)
            r.place(out, tone * vel, r.step_time(start, step) + float(r.rng.uniform(0, 0.01)), pan)


def _play_guitar(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    strums = [0, 4, 6, 10, 12, 14] if section.energy > 0.6 else [0, 6, 8]
    strums = [s for s in strums if s < r.steps_per_bar]
    notes = [chord[0] - 12, chord[1] - 12, chord[2] - 12, *chord]
    for step in strums:
        t0 = r.step_time(start, step)
        down = r.rng.random() < 0.6 or step % 4 == 0
        order = notes if down else notes[::-1]
        vel = float(r.rng.uniform(0.5, 0.9)) * 0.22
        for j, note in enumerate(order):
            tone = _pluck(r, float(_midi_hz(note)), 4 * r.step_s, 5000.0)
            r.place(out, tone * vel, t0 + j * 0.012, pan)


def _play_organ(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    amps = np.array([1.0, 0.8, 0.5, 0.5, 0.0, 0.3, 0.0, 0.25])
    dur = r.spec.bar_seconds
    for note in chord:
        tone = _table_tone(r, float(_midi_hz(note)), dur, amps, 0.01)
        t = np.arange(tone.size) / r.sr
        tone *= 1.0 + 0.2 * np.sin(2 * np.pi * 6.2 * t)
        r.place(out, tone * 0.05 * (0.6 + 0.4 * section.energy), start, pan)


def _play_arp(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    if section.energy < 0.5:
        return
    k = np.arange(1, 16, 2, dtype=np.float64)
    amps = np.zeros(16)
    amps[k.astype(int) - 1] = 1.0 / k
    order = [*chord, chord[0] + 12, chord[1] + 12]
    for step in range(0, r.steps_per_bar, 2):
        note = order[(step // 2) % len(order)] + 12
        tone = _table_tone(r, float(_midi_hz(note)), 2 * r.step_s, amps, 0.003, 0.15)
        r.place(out, tone * 0.05 * float(r.rng.uniform(0.8, 1.0)), r.step_time(start, step), pan)


def _play_strings(
    r: _Renderer,
    out: NDArray[np.float64],
    start: float,
    section: Section,
    chord: list[int],
    pan: float,
) -> None:
    dur = r.spec.bar_seconds + 0.2
    k = np.arange(1, 20, dtype=np.float64)
    for note in (chord[0] + 12, chord[1] + 12, chord[2]):
        freq = float(_midi_hz(note))
        tone = _table_tone(r, freq, dur, 1.0 / k, 0.35, 3.0)
        t = np.arange(tone.size) / r.sr
        tone *= 1.0 + 0.1 * np.sin(2 * np.pi * 5.5 * t + r.rng.uniform(0, 6.28))
        r.place(out, tone * 0.06, start, float(np.clip(pan + r.rng.uniform(-0.3, 0.3), -1, 1)))


_PLAYERS = {
    "pad": _play_pad,
    "piano": _play_piano,
    "guitar": _play_guitar,
    "organ": _play_organ,
    "arp": _play_arp,
    "strings": _play_strings,
}


def render_stems(
    spec: SongSpec, *, sample_rate: int = 44100, seconds: float | None = None
) -> dict[str, Audio]:
    """Render each stem of ``spec`` as float32 stereo; the mix is their exact sum.

    ``seconds`` cuts or loops the arrangement to a length; by default the sections are
    played once. The stems are scaled together so the mix peaks at -1 dBFS.
    """
    renderer = _Renderer(spec, sample_rate, seconds)
    raw = {
        "vocals": renderer.vocals() * 0.5,
        "drums": renderer.drums() * 0.45,
        "bass": renderer.bass() * 0.5,
        "other": renderer.other() * 0.6,
    }
    for name, level in spec.level_db.items():
        raw[name] = raw[name] * 10.0 ** (level / 20.0)
    peak = float(np.max(np.abs(sum(raw.values()))))
    scale = 10.0 ** (-1.0 / 20.0) / max(peak, 1e-9)
    return {name: (audio * scale).astype(np.float32) for name, audio in raw.items()}


def mix(stems: dict[str, Audio]) -> Audio:
    """The sum of the stems, the way a mixing desk with every fader at 0 dB makes it."""
    total = np.zeros_like(next(iter(stems.values())))
    for audio in stems.values():
        total += audio
    return total


def demo_spec(seed: int = 0) -> SongSpec:
    """The demo song: A minor, 100 BPM, drums, a plucked bass, pad and piano, one voice."""
    return SongSpec(
        bpm=100.0,
        root=9,
        minor=True,
        sections=(
            Section("intro", 1, (0,), vocals=False, energy=0.5),
            Section("verse", 4, (0, 5, 2, 4), energy=0.6),
            Section("chorus", 4, (5, 2, 6, 0), energy=0.85),
        ),
        drums="rock",
        bass="pluck",
        other=("pad", "piano"),
        vocal_centre=64,
        seed=seed,
    )


def demo_stems(
    *, seconds: float = 12.0, sample_rate: int = 44100, seed: int = 0
) -> dict[str, Audio]:
    """The ground-truth stems of the demo song (vocals, drums, bass, other)."""
    return render_stems(demo_spec(seed), sample_rate=sample_rate, seconds=seconds)


def write_demo_song(
    path: Path, *, seconds: float = 12.0, sample_rate: int = 44100, seed: int = 0
) -> Path:
    """Write the demo mix to ``path``; the extension picks WAV, FLAC or MP3."""
    from stemhub import media

    fmt = OutputFormat(path.suffix.lstrip(".").upper() or "WAV")
    audio = mix(demo_stems(seconds=seconds, sample_rate=sample_rate, seed=seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    media.encode(path, audio, sample_rate, fmt)
    return path


__all__ = [
    "PITCH_CLASSES",
    "STEM_NAMES",
    "Audio",
    "Section",
    "SongSpec",
    "demo_spec",
    "demo_stems",
    "key_name",
    "mix",
    "render_stems",
    "write_demo_song",
]
