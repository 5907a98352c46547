"""A seeded composer: a song's parts as note events and drum hits.

The sampled benchmark songs (:mod:`bench.sampled_songs`) are played by General MIDI
sound fonts and recorded drum kits, but composed here: a chord progression per section,
a bass line, accompaniment patterns (pads, piano chords, arpeggios, guitar strums, brass
stabs), a sung lead melody with legato phrasing, scoops and vibrato (pitch bends), an
optional second voice in the choruses, and a drum pattern with ghost notes, fills and
crashes. Timing and velocity are humanised, sections change their arrangement, and a
repeated section reuses its melody's rhythm with new notes, so nothing repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.bass_synth import BassPatch
from bench.drumkits import Hit
from bench.fluid_render import CC_EXPRESSION, Channel, Note, Part
from stemhub.demo import MAJOR_SCALE, MINOR_SCALE, Section, key_name

Groove = Literal["rock", "pop", "funk", "disco", "half", "shuffle", "ballad", "bossa", "waltz"]
BassStyle = Literal[
    "roots", "groove", "walking", "sustain", "syncopated", "octaves", "slap", "picked"
]
Comping = Literal["pad", "block", "arpeggio", "strum", "stabs", "comp"]

# one character per 16th (12 in 3/4): X accent, x hit, o ghost, . rest
GROOVES: dict[str, dict[str, str]] = {
    "rock": {"kick": "x.......x.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "pop": {"kick": "x.....x...x.....", "snare": "....X.......X...", "hat": "xoxoxoxoxoxoxoxo"},
    "funk": {"kick": "x..x..x...x..x..", "snare": "....X..o.o..X..o", "hat": "xoxoxoxoxoxoxoxo"},
    "disco": {
        "kick": "x...x...x...x...",
        "snare": "....X.......X...",
        "hat": "x...x...x...x...",
        "open": "..x...x...x...x.",
    },
    "half": {"kick": "x.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "shuffle": {
        "kick": "x.......x.....x.",
        "snare": "....X.......X...",
        "hat": "x.x.x.x.x.x.x.x.",
    },
    "ballad": {"kick": "x.......x.......", "stick": "....x.......x...", "ride": "x...x...x...x..."},
    "bossa": {"kick": "x..xx..xx..xx..x", "stick": "x..x..x...x..x..", "hat": "x.x.x.x.x.x.x.x."},
    "waltz": {"kick": "x...........", "snare": "....x...x...", "hat": "x.x.x.x.x.x."},
}
_MARKS = {"X": 1.0, "x": 0.8, "o": 0.32}

BASS_RHYTHMS: dict[str, list[float]] = {
    # onsets in 16ths; durations run to the next onset
    "roots": [0, 2, 4, 6, 8, 10, 12, 14],
    "octaves": [0, 2, 4, 6, 8, 10, 12, 14],
    "sustain": [0, 8],
    "syncopated": [0, 3, 6, 8, 10, 11, 14],
    "slap": [0, 3, 4, 6, 7, 10, 12, 13, 14],
    "picked": [0, 2, 4, 6, 7, 8, 10, 12, 14, 15],
}
BASS_STACCATO: dict[str, float] = {"syncopated": 0.5, "octaves": 0.5, "slap": 0.3, "picked": 0.7}
"""The shortest a bass note of a style may be, as a share of the time to the next one
(0.9 for the styles not named)."""


@dataclass(frozen=True)
class Accompaniment:
    program: int
    comping: Comping
    pan: float
    centre: int = 60
    """MIDI note the voicing stays near."""
    volume: int = 100


@dataclass(frozen=True)
class SampledSpec:
    """Everything that decides a sampled song; the same spec renders the same audio."""

    bpm: float
    root: int
    minor: bool
    sections: tuple[Section, ...]
    groove: Groove
    bass_program: int
    bass_style: BassStyle
    accompaniment: tuple[Accompaniment, ...]
    vocal_program: int
    kit: str
    sound_font: str
    seconds: float
    seed: int
    beats_per_bar: int = 4
    vocal_centre: int = 64
    vocal_pan: float = 0.0
    harmony_program: int | None = None
    vibrato_cents: float = 35.0
    swing: float = 0.5
    """Where the off-beat eighth falls within the beat: 0.5 straight, 0.67 shuffled."""
    humanise_ms: float = 8.0
    reverb: float = 0.5
    """0..1: how much room, for fluidsynth's reverb and the sends."""
    level_db: dict[str, float] = field(default_factory=dict)
    bass_sound_font: str | None = None
    """The bass's own sound font (``None``: the song's)."""
    bass_patch: BassPatch | None = None
    """A :mod:`bench.bass_synth` patch that plays the bass instead of a sound font."""

    @property
    def key_name(self) -> str:
        return key_name(self.root, self.minor)

    @property
    def bar_seconds(self) -> float:
        return self.beats_per_bar * 60.0 / self.bpm


@dataclass(frozen=True)
class Bar:
    start: float
    section: Section
    degree: int
    index: int
    """Bar number inside its section."""
    last: bool
    """Last bar before a new section: room for a fill."""


@dataclass
class Score:
    """The composed song: one MIDI part per tonal stem and the drum hits."""

    vocals: Part
    bass: Part
    other: Part
    drums: list[Hit]
    pans: dict[str, float]


class Composer:
    """Composes one :class:`SampledSpec`; all randomness comes from its seed."""

    def __init__(self, spec: SampledSpec) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(spec.seed)
        self.scale = MINOR_SCALE if spec.minor else MAJOR_SCALE
        self.beat = 60.0 / spec.bpm
        self.steps = 4 * spec.beats_per_bar
        self.bars = self._bars()

    def _bars(self) -> list[Bar]:
        bars: list[Bar] = []
        t = 0.0
        while t < self.spec.seconds:
            for s, section in enumerate(self.spec.sections):
                for i in range(section.bars):
                    if t >= self.spec.seconds:
                        return bars
                    last = i == section.bars - 1 and s < len(self.spec.sections) - 1
                    degree = section.chords[i % len(section.chords)]
                    bars.append(Bar(t, section, degree, i, last))
                    t += self.spec.bar_seconds
        return bars

    def time(self, bar: Bar, step: float, jitter: float = 1.0) -> float:
        """Seconds of 16th ``step`` in ``bar``, swung and humanised."""
        beat, within = divmod(step, 4.0)
        swing = self.spec.swing
        if within < 2.0:
            offset = within / 2.0 * swing
        else:
            offset = swing + (within - 2.0) / 2.0 * (1.0 - swing)
        wobble = float(self.rng.normal(0.0, self.spec.humanise_ms / 1000.0)) * jitter
        return bar.start + (beat + offset) * self.beat + wobble

    def chord(self, degree: int, seventh: bool = False) -> list[int]:
        """Pitch classes (relative to C, may exceed 12) of the chord on ``degree``."""
        notes = []
        for k in (0, 2, 4, 6) if seventh else (0, 2, 4):
            idx = degree + k
            notes.append(self.scale[idx % 7] + 12 * (idx // 7))
        if self.spec.minor and degree == 4:
            notes[1] += 1  # harmonic minor: a major V
        return [self.spec.root % 12 + p for p in notes]

    def voicing(self, degree: int, centre: int, previous: list[int] | None) -> list[int]:
        """The chord near ``centre``, moving as little as possible from ``previous``."""
        seventh = self.spec.groove in ("funk", "bossa", "shuffle") or self.rng.random() < 0.15
        pcs = self.chord(degree, seventh)
        options = []
        for inversion in range(len(pcs)):
            chord = sorted(pcs[inversion:] + [p + 12 for p in pcs[:inversion]])
            shift = 12 * round((centre - chord[0] - 4) / 12)
            for octave in (-12, 0, 12):
                moved = [p + shift + octave for p in chord]
                if centre - 9 <= moved[0] <= centre + 5:
                    options.append(moved)
        if previous is None or not options:
            return options[0] if options else [p + 48 for p in pcs]
        return min(
            options, key=lambda c: sum(abs(a - b) for a, b in zip(c, previous, strict=False))
        )

    def velocity(self, base: float, energy: float) -> int:
        value = base * (0.55 + 0.45 * energy) * float(self.rng.uniform(0.85, 1.08))
        return int(np.clip(round(value * 127), 12, 127))

    def compose(self) -> Score:
        return Score(
            vocals=self.vocals(),
            bass=self.bass(),
            other=self.other(),
            drums=self.drums(),
            pans=self.drum_pans(),
        )

    def drum_pans(self) -> dict[str, float]:
        side = 1.0 if self.rng.random() < 0.5 else -1.0  # drummer's or audience's view
        hat = side * float(self.rng.uniform(0.2, 0.45))
        return {
            "kick": 0.0,
            "snare": side * 0.05,
            "stick": side * 0.05,
            "clap": 0.0,
            "hat_closed": hat,
            "hat_open": hat,
            "hat_pedal": hat,
            "ride": -hat * 1.2,
            "crash": -side * float(self.rng.uniform(0.2, 0.5)),
            "tom_high": side * 0.25,
            "tom_mid": -side * 0.05,
            "tom_low": -side * 0.4,
        }

    def drums(self) -> list[Hit]:
        groove = "waltz" if self.spec.beats_per_bar == 3 else self.spec.groove
        pattern = GROOVES[groove]
        hits: list[Hit] = []
        previous: Section | None = None
        for bar in self.bars:
            energy = bar.section.energy
            if bar.section is not previous:
                if previous is not None or energy > 0.6:
                    hits.append(Hit(self.time(bar, 0), "crash", self._vel(0.9, energy)))
                previous = bar.section
            fill_from = self.steps // 2 if bar.last and energy > 0.4 else self.steps
            for step in range(self.steps):
                if step >= fill_from:
                    hits.extend(self._fill_hit(bar, step, fill_from, energy))
                    continue
                hits.extend(self._groove_hits(bar, step, pattern, energy))
        return hits

    def _vel(self, base: float, energy: float) -> float:
        value = base * (0.6 + 0.4 * energy) * float(self.rng.uniform(0.85, 1.05))
        return float(np.clip(value, 0.05, 1.0))

    def _groove_hits(
        self, bar: Bar, step: int, pattern: dict[str, str], energy: float
    ) -> list[Hit]:
        hits = []
        t = self.time(bar, step)
        for part, marks in pattern.items():
            mark = marks[step % len(marks)]
            if mark == ".":
                if part == "snare" and energy > 0.5 and self.rng.random() < 0.06:
                    hits.append(Hit(t, "snare", self._vel(0.25, energy)))
                continue
            role = {"hat": "hat_closed", "open": "hat_open"}.get(part, part)
            if energy < 0.45 and role in ("hat_closed", "hat_open"):
                if step % 4:
                    continue
                role = "hat_pedal" if energy < 0.35 else "hat_closed"
            if energy > 0.85 and role == "hat_closed":
                role = "ride" if self.spec.groove in ("rock", "half", "shuffle") else role
                if step % 8 == 6 and self.rng.random() < 0.5:
                    role = "hat_open"
            if energy > 0.8 and role == "stick":
                role = "snare"
            if energy < 0.4 and role == "snare":
                role = "stick"
            base = _MARKS.get(mark, 0.8)
            if role.startswith("hat") or role == "ride":
                base *= 0.55 if step % 4 else 0.75
            hits.append(Hit(t, role, self._vel(base, energy)))
        return hits

    def _fill_hit(self, bar: Bar, step: int, start: int, energy: float) -> list[Hit]:
        t = self.time(bar, step, jitter=0.7)
        rise = 0.55 + 0.45 * (step - start) / max(1, self.steps - start)
        out = []
        if step % 4 == 0:
            out.append(Hit(t, "kick", self._vel(0.85, energy)))
        if self.rng.random() < 0.75 or step % 2 == 0:
            roles = ("snare", "tom_high", "tom_mid", "tom_low")
            role = roles[min(3, (step - start) * 4 // max(1, self.steps - start))]
            if self.rng.random() < 0.3:
                role = "snare"
            out.append(Hit(t, role, self._vel(rise, energy)))
        return out

    def bass(self) -> Part:
        spec = self.spec
        part = Part(channels=[Channel(0, spec.bass_program, 110, 0.0, int(12 * spec.reverb))])
        kick = GROOVES["waltz" if spec.beats_per_bar == 3 else spec.groove]["kick"]
        for bar in self.bars:
            energy = bar.section.energy
            chord = self.chord(bar.degree)
            root = 28 + (chord[0] - 28) % 12
            fifth = root + 7
            if energy < 0.35:
                onsets: list[float] = [0.0]
            elif spec.bass_style == "groove":
                onsets = [float(i) for i, m in enumerate(kick) if m != "."]
            elif spec.bass_style == "walking":
                onsets = [float(4 * b) for b in range(spec.beats_per_bar)]
            else:
                onsets = [o for o in BASS_RHYTHMS[spec.bass_style] if o < self.steps]
            if spec.beats_per_bar == 3 and spec.bass_style != "walking":
                onsets = [0.0, 4.0, 8.0] if energy > 0.5 else [0.0]
            for i, onset in enumerate(onsets):
                nxt = onsets[i + 1] if i + 1 < len(onsets) else float(self.steps)
                if spec.bass_style == "walking":
                    pool = [root, root + chord[1] - chord[0], fifth, root + 12, fifth - 12]
                    note = root if i == 0 else int(self.rng.choice(pool))
                elif spec.bass_style == "octaves":
                    note = root + (12 if i % 2 else 0)
                elif spec.bass_style == "slap":
                    # thumb on the beat, an octave "pop" off it
                    note = root + (12 if onset % 4 and self.rng.random() < 0.6 else 0)
                else:
                    note = root
                    if i > 0 and self.rng.random() < 0.25:
                        note = int(self.rng.choice([fifth, root + 12, fifth - 12]))
                start = self.time(bar, onset)
                length = (nxt - onset) * self.beat / 4.0
                shortest = BASS_STACCATO.get(spec.bass_style, 0.9)
                end = start + length * float(self.rng.uniform(shortest, 0.97))
                base = 0.95 if onset == 0 else 0.8
                if spec.bass_style == "slap" and onset % 2 and note == root:
                    base = 0.45  # a ghost note
                elif spec.bass_style == "picked":
                    base = 0.9 if onset % 4 == 0 else 0.82
                part.notes.append(Note(start, end, note, self.velocity(base, energy), 0))
        return part

    def other(self) -> Part:
        spec = self.spec
        part = Part()
        send = int(30 + 60 * spec.reverb)
        for channel, acc in enumerate(spec.accompaniment):
            chorus = 40 if acc.comping in ("pad", "strum") else 0
            part.channels.append(Channel(channel, acc.program, acc.volume, acc.pan, send, chorus))
            voicing: list[int] | None = None
            for bar in self.bars:
                voicing = self.voicing(bar.degree, acc.centre, voicing)
                if bar.section.energy < 0.45 and acc.comping in ("arpeggio", "stabs"):
                    continue
                self._play(part, channel, acc.comping, bar, voicing)
        return part

    def _play(self, part: Part, ch: int, comping: Comping, bar: Bar, chord: list[int]) -> None:
        energy = bar.section.energy
        bar_end = bar.start + self.spec.bar_seconds
        if comping == "pad":
            start = self.time(bar, 0, jitter=0.3)
            for note in chord:
                part.notes.append(Note(start, bar_end + 0.05, note, self.velocity(0.7, energy), ch))
            return
        if comping == "block":
            hits = [0, 6, 8, 12] if energy > 0.6 else [0, 8]
            if self.spec.beats_per_bar == 3:
                hits = [0, 4, 8] if energy > 0.6 else [0]
            for i, step in enumerate(hits):
                nxt = hits[i + 1] if i + 1 < len(hits) else self.steps
                start = self.time(bar, step)
                end = start + (nxt - step) * self.beat / 4 * 0.95
                for note in [chord[0] - 12, *chord]:
                    spread = float(self.rng.uniform(0.0, 0.012))
                    vel = self.velocity(0.75, energy)
                    part.notes.append(Note(start + spread, end, note, vel, ch))
            return
        if comping == "arpeggio":
            order = [*chord, chord[0] + 12, *chord[1:][::-1]]
            step_size = 2 if energy < 0.8 else 1
            for k, step in enumerate(range(0, self.steps, step_size)):
                start = self.time(bar, step)
                end = start + step_size * self.beat / 4 * 1.6
                note = order[k % len(order)]
                part.notes.append(Note(start, end, note, self.velocity(0.65, energy), ch))
            return
        if comping == "strum":
            strums = [0, 4, 6, 10, 12, 14] if energy > 0.6 else [0, 6, 8]
            if self.spec.beats_per_bar == 3:
                strums = [0, 4, 6, 8] if energy > 0.6 else [0, 4, 8]
            notes = [chord[0] - 12, chord[2] - 12, *chord, chord[0] + 12]
            for i, step in enumerate(strums):
                nxt = strums[i + 1] if i + 1 < len(strums) else self.steps
                start = self.time(bar, step)
                end = start + (nxt - step) * self.beat / 4
                down = step % 4 == 0 or self.rng.random() < 0.5
                vel_base = 0.8 if down else 0.6
                for j, note in enumerate(notes if down else notes[::-1]):
                    at = start + j * float(self.rng.uniform(0.006, 0.014))
                    part.notes.append(Note(at, end, note, self.velocity(vel_base, energy), ch))
            return
        if comping == "stabs":
            for step in range(2, self.steps, 4):
                if self.rng.random() < 0.3:
                    continue
                start = self.time(bar, step)
                for note in chord:
                    vel = self.velocity(0.85, energy)
                    part.notes.append(Note(start, start + self.beat * 0.35, note, vel, ch))
            return
        # comp: syncopated electric-piano chords
        for step in (0, 3, 6, 10, 14) if energy > 0.6 else (0, 6, 10):
            if step >= self.steps or (step and self.rng.random() < 0.25):
                continue
            start = self.time(bar, step)
            length = self.beat * float(self.rng.choice([0.4, 0.7, 1.0]))
            for note in chord:
                part.notes.append(Note(start, start + length, note, self.velocity(0.7, energy), ch))

    def vocals(self) -> Part:
        spec = self.spec
        send = int(40 + 60 * spec.reverb)
        part = Part(channels=[Channel(0, spec.vocal_program, 110, spec.vocal_pan, send, 10)])
        lead = self._melody()
        self._sing(part, 0, lead)
        if spec.harmony_program is not None:
            pan = float(np.clip(spec.vocal_pan - 0.4 * np.sign(spec.vocal_pan or 1.0), -1, 1))
            part.channels.append(Channel(1, spec.harmony_program, 85, pan, send, 20))
            second = [
                (s, e, self._third_above(p), v - 15, sec)
                for s, e, p, v, sec in lead
                if "chorus" in sec
            ]
            self._sing(part, 1, second)
        return part

    def _third_above(self, pitch: int) -> int:
        scale = [
            (self.spec.root + d) % 12 + 12 * octave for octave in range(11) for d in self.scale
        ]
        higher = sorted(p for p in scale if p > pitch)
        return higher[1] if len(higher) > 1 else pitch + 4

    def _melody(self) -> list[tuple[float, float, int, int, str]]:
        """(start, end, pitch, velocity, section name) of the lead line, legato."""
        spec = self.spec
        rhythms: dict[str, list[list[float]]] = {}
        notes: list[tuple[float, float, int, int, str]] = []
        pitch = spec.vocal_centre
        cells = ([2.0], [1.0, 1.0], [1.5, 0.5], [0.5, 0.5, 1.0], [1.0, 0.5, 0.5], [3.0], [4.0])
        for bar in self.bars:
            section = bar.section
            if not section.vocals:
                continue
            phrase = rhythms.setdefault(section.name.rstrip("0123456789"), [])
            if len(phrase) <= bar.index % 4:
                beats: list[float] = []
                while sum(beats) < spec.beats_per_bar:
                    beats.extend(cells[int(self.rng.integers(len(cells)))])
                phrase.append(beats)
            pattern = phrase[bar.index % 4]
            if bar.index % 4 == 3 or bar.last:
                pattern = pattern[: max(1, len(pattern) // 2)]  # breathe at the phrase end
            lift = 4 if "chorus" in section.name else (-2 if "bridge" in section.name else 0)
            low, high = spec.vocal_centre - 6 + lift, spec.vocal_centre + 8 + lift
            pool = [p for p in range(low, high + 1) if (p - spec.root) % 12 in self.scale]
            chord_pcs = {p % 12 for p in self.chord(bar.degree)}
            beat = 0.5 if self.rng.random() < 0.3 else 0.0
            for length in pattern:
                if beat >= spec.beats_per_bar:
                    break
                strong = beat == int(beat)
                near = [p for p in pool if 0 < abs(p - pitch) <= 4] or pool
                if strong:
                    near = [p for p in near if p % 12 in chord_pcs] or near
                pitch = int(self.rng.choice(near))
                start = self.time(bar, beat * 4, jitter=1.5)
                dur = min(length, spec.beats_per_bar - beat) * self.beat
                end = start + dur - float(self.rng.uniform(0.01, 0.06))
                notes.append((start, end, pitch, self.velocity(0.85, section.energy), section.name))
                beat += length
        return notes

    def _sing(self, part: Part, ch: int, line: list[tuple[float, float, int, int, str]]) -> None:
        """Notes with scoops into the pitch, delayed vibrato and an expression swell."""
        depth0 = self.spec.vibrato_cents
        previous_end = -1.0
        for start, end, pitch, velocity, _section in line:
            start = max(start, previous_end + 0.005)
            if end - start < 0.06:
                continue
            part.notes.append(Note(start, end, pitch, velocity, ch))
            previous_end = end
            scoop = float(self.rng.uniform(-70.0, -15.0)) if self.rng.random() < 0.6 else 0.0
            scoop_s = float(self.rng.uniform(0.04, 0.1))
            rate = float(self.rng.uniform(4.8, 6.3))
            depth = depth0 * float(self.rng.uniform(0.6, 1.3))
            phase = float(self.rng.uniform(0, 2 * np.pi))
            t = 0.0
            while start + t < end:
                cents = scoop * max(0.0, 1.0 - t / scoop_s)
                ramp = float(np.clip((t - 0.18) / 0.25, 0.0, 1.0))
                cents += depth * ramp * np.sin(2 * np.pi * rate * t + phase)
                part.bend_cents(start + t, ch, cents)
                swell = min(1.0, 0.7 + t / 0.3) * (1.0 - 0.25 * max(0.0, t - 0.6))
                part.controls.append(
                    (start + t, ch, CC_EXPRESSION, int(np.clip(127 * max(swell, 0.5), 0, 127)))
                )
                t += 0.02
            part.bend_cents(end, ch, 0.0)


__all__ = [
    "GROOVES",
    "Accompaniment",
    "Bar",
    "BassStyle",
    "Comping",
    "Composer",
    "Groove",
    "SampledSpec",
    "Score",
]
