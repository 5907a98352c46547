"""The synthetic benchmark set: ten songs with ground-truth stems, made offline.

Every song is rendered by :mod:`stemhub.demo` from a spec below; they differ in style,
tempo, metre, key, panning, instrumentation, register and reverb, sections change, and
timing, velocity and pitch are humanised. Rendered songs are cached under
``bench/data/songs`` (gitignored) as float32 ``.npz`` so a second run starts at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np
import soundfile as sf

from stemhub.demo import (
    Audio,
    BassStyle,
    DrumStyle,
    Instrument,
    Section,
    SongSpec,
    mix,
    render_stems,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_RATE = 44100
CACHE_VERSION = 2


def song_form(
    verse: tuple[int, ...],
    chorus: tuple[int, ...],
    bridge: tuple[int, ...],
    *,
    verse_bars: int = 4,
    chorus_bars: int = 4,
    intro_energy: float = 0.45,
    bridge_energy: float = 0.4,
    sung_bridge: bool = True,
) -> tuple[Section, ...]:
    """Intro, verse, chorus, bridge, verse, chorus over the given chord loops."""
    return (
        Section("intro", 2, verse[:2], vocals=False, energy=intro_energy),
        Section("verse", verse_bars, verse, energy=0.6),
        Section("chorus", chorus_bars, chorus, energy=0.9),
        Section("bridge", 2, bridge, vocals=sung_bridge, energy=bridge_energy),
        Section("verse2", verse_bars, verse, energy=0.65),
        Section("chorus2", chorus_bars, chorus, energy=0.95),
    )


SONGS: dict[str, SongSpec] = {
    "pop_a_minor_100": SongSpec(
        bpm=100,
        root=9,
        minor=True,
        drums="rock",
        bass="pluck",
        other=("pad", "piano"),
        sections=song_form((0, 5, 2, 6), (5, 2, 6, 0), (3, 4)),
        vocal_centre=64,
        seed=11,
    ),
    "funk_e_minor_112": SongSpec(
        bpm=112,
        root=4,
        minor=True,
        drums="funk",
        bass="synth",
        other=("guitar", "organ"),
        sections=song_form((0, 3, 0, 4), (5, 6, 0, 0), (3, 3)),
        vocal_centre=62,
        swing=0.12,
        other_pans=(-0.7, 0.4),
        seed=12,
    ),
    "disco_f_major_124": SongSpec(
        bpm=124,
        root=5,
        minor=False,
        drums="four",
        bass="synth",
        other=("strings", "arp"),
        sections=song_form((0, 5, 3, 4), (3, 4, 0, 5), (1, 4), chorus_bars=8),
        vocal_centre=67,
        vocal_pan=0.15,
        harmony=True,
        other_pans=(-0.3, 0.6),
        seed=13,
        level_db={"vocals": -2.0, "drums": 1.0, "bass": 0.0, "other": 1.0},
    ),
    "ballad_d_major_72": SongSpec(
        bpm=72,
        root=2,
        minor=False,
        drums="sparse",
        bass="sub",
        other=("piano", "strings"),
        sections=song_form((0, 4, 5, 3), (3, 0, 4, 4), (5, 4), verse_bars=2, chorus_bars=2),
        vocal_centre=62,
        reverb=0.3,
        vibrato_cents=50.0,
        other_pans=(0.1, -0.4),
        seed=14,
        level_db={"vocals": 2.0, "drums": -3.0, "bass": 0.0, "other": 0.0},
    ),
    "rock_g_major_140": SongSpec(
        bpm=140,
        root=7,
        minor=False,
        drums="rock",
        bass="pluck",
        other=("guitar", "guitar", "organ"),
        sections=song_form((0, 3, 4, 3), (0, 4, 5, 3), (5, 4), verse_bars=8, chorus_bars=8),
        vocal_centre=60,
        other_pans=(-0.85, 0.85, 0.2),
        humanise_ms=12.0,
        seed=15,
        level_db={"vocals": -1.0, "drums": 1.0, "bass": 0.0, "other": 1.0},
    ),
    "waltz_bb_major_150": SongSpec(
        bpm=150,
        root=10,
        minor=False,
        beats_per_bar=3,
        drums="waltz",
        bass="pluck",
        other=("piano", "pad"),
        sections=song_form((0, 4, 0, 3), (3, 4, 5, 4), (1, 4), verse_bars=8, chorus_bars=8),
        vocal_centre=65,
        vocal_pan=-0.1,
        other_pans=(0.3, -0.5),
        seed=16,
    ),
    "halftime_c_sharp_minor_84": SongSpec(
        bpm=84,
        root=1,
        minor=True,
        drums="half",
        bass="sub",
        other=("pad", "arp"),
        sections=song_form((0, 5, 3, 4), (5, 3, 0, 4), (3, 5)),
        vocal_centre=69,
        harmony=True,
        other_pans=(0.0, -0.45),
        reverb=0.22,
        seed=17,
        level_db={"vocals": 0.0, "drums": 0.0, "bass": 2.0, "other": -1.0},
    ),
    "shuffle_a_major_116": SongSpec(
        bpm=116,
        root=9,
        minor=False,
        drums="shuffle",
        bass="pluck",
        other=("piano", "organ"),
        sections=song_form((0, 3, 0, 4), (3, 3, 0, 4), (5, 1)),
        vocal_centre=61,
        vocal_pan=-0.2,
        swing=0.33,
        other_pans=(0.45, -0.3),
        seed=18,
    ),
    "electro_f_minor_128": SongSpec(
        bpm=128,
        root=5,
        minor=True,
        drums="four",
        bass="synth",
        other=("arp", "pad"),
        sections=song_form((0, 0, 5, 4), (5, 6, 0, 0), (3, 4), chorus_bars=8),
        vocal_centre=55,
        reverb=0.35,
        other_pans=(0.5, -0.2),
        humanise_ms=3.0,
        seed=19,
        level_db={"vocals": -2.0, "drums": 2.0, "bass": 1.0, "other": 0.0},
    ),
    "indie_e_flat_major_168": SongSpec(
        bpm=168,
        root=3,
        minor=False,
        drums="rock",
        bass="pluck",
        other=("guitar", "strings"),
        sections=song_form((0, 5, 3, 4), (3, 4, 0, 0), (5, 2), verse_bars=8, chorus_bars=8),
        vocal_centre=63,
        vibrato_cents=20.0,
        other_pans=(0.6, -0.6),
        seed=20,
    ),
}

_STYLES: tuple[DrumStyle, ...] = ("rock", "funk", "four", "half", "shuffle", "sparse")
_BASSES: tuple[BassStyle, ...] = ("pluck", "synth", "sub")
_INSTRUMENTS: tuple[Instrument, ...] = ("pad", "piano", "guitar", "organ", "arp", "strings")
_PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 5, 3, 4),
    (0, 3, 4, 4),
    (0, 4, 5, 3),
    (5, 3, 0, 4),
    (0, 5, 1, 4),
    (0, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 6, 5, 4),
    (0, 2, 3, 4),
    (3, 4, 0, 0),
    (0, 0, 3, 4),
    (0, 4),
)
TRAIN_SEED_BASE = 100_000
"""Training songs use seeds from here on; the benchmark songs above never do."""


def random_spec(seed: int) -> SongSpec:
    """A random song for training the engine's mask model (never one of :data:`SONGS`)."""
    rng = np.random.default_rng(seed)

    def loop() -> tuple[int, ...]:
        if rng.random() < 0.75:
            return _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
        return (0, *(int(d) for d in rng.choice(7, size=3, replace=True)))

    beats = 3 if rng.random() < 0.15 else 4
    sections = (
        Section(
            "intro",
            int(rng.integers(1, 3)),
            loop(),
            vocals=False,
            energy=float(rng.uniform(0.3, 0.6)),
        ),
        Section("verse", int(rng.choice([2, 4])), loop(), energy=float(rng.uniform(0.4, 0.8))),
        Section("chorus", int(rng.choice([2, 4])), loop(), energy=float(rng.uniform(0.7, 1.0))),
        Section(
            "bridge",
            int(rng.integers(1, 3)),
            loop(),
            vocals=bool(rng.random() < 0.5),
            energy=float(rng.uniform(0.2, 0.7)),
        ),
    )
    count = int(rng.integers(1, 4))
    return SongSpec(
        bpm=float(rng.uniform(68, 172)),
        root=int(rng.integers(12)),
        minor=bool(rng.random() < 0.5),
        beats_per_bar=beats,
        sections=sections,
        drums=_STYLES[int(rng.integers(len(_STYLES)))],
        bass=_BASSES[int(rng.integers(len(_BASSES)))],
        other=tuple(_INSTRUMENTS[int(i)] for i in rng.choice(len(_INSTRUMENTS), count)),
        vocal_centre=int(rng.integers(52, 72)),
        vocal_pan=float(np.clip(rng.normal(0.0, 0.15), -0.5, 0.5)),
        vibrato_cents=float(rng.uniform(10.0, 65.0)),
        harmony=bool(rng.random() < 0.3),
        other_pans=tuple(float(p) for p in rng.uniform(-0.9, 0.9, 4)),
        reverb=float(rng.uniform(0.0, 0.4)),
        swing=float(rng.choice([0.0, 0.0, 0.1, 0.33])),
        humanise_ms=float(rng.uniform(2.0, 15.0)),
        level_db={
            name: float(rng.uniform(-5.0, 4.0)) for name in ("vocals", "drums", "bass", "other")
        },
        seed=seed,
    )


MAX_SECONDS = 60.0
MIN_SECONDS = 30.0


class _Spec(Protocol):
    @property
    def bpm(self) -> float: ...

    @property
    def key_name(self) -> str: ...


SpecT = TypeVar("SpecT", bound=_Spec)


@dataclass(frozen=True)
class Song(Generic[SpecT]):
    """A benchmark song: its true stems and the spec it was made from (tempo, key)."""

    name: str
    spec: SpecT
    stems: dict[str, Audio]
    sample_rate: int

    @property
    def mix(self) -> Audio:
        return mix(self.stems)

    @property
    def seconds(self) -> float:
        return float(self.stems["vocals"].shape[1] / self.sample_rate)


def song_seconds(spec: SongSpec) -> float:
    """Play the form once, cut to at most a minute and looped to at least 30 s."""
    return float(np.clip(spec.seconds, MIN_SECONDS, MAX_SECONDS))


def load_song(name: str) -> Song[SongSpec]:
    spec = SONGS[name]
    stems = cached_stems(
        f"songs/{name}.v{CACHE_VERSION}.npz",
        lambda: render_stems(spec, sample_rate=SAMPLE_RATE, seconds=song_seconds(spec)),
    )
    return Song(name, spec, stems, SAMPLE_RATE)


def load_songs() -> list[Song[SongSpec]]:
    return [load_song(name) for name in SONGS]


def long_mix_file(minutes: float) -> Path:
    """A WAV of ``minutes`` of music for the speed and memory runs (cached).

    Made of two-minute renders of different songs so no stem is held whole in memory.
    """
    path = DATA_DIR / f"long_{minutes:g}min.v{CACHE_VERSION}.wav"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    total = round(minutes * 60 * SAMPLE_RATE)
    names = list(SONGS)
    written = 0
    part = path.with_suffix(".part")
    with sf.SoundFile(part, "w", SAMPLE_RATE, 2, subtype="FLOAT", format="WAV") as out:
        index = 0
        while written < total:
            seconds = min(120.0, (total - written) / SAMPLE_RATE)
            spec = SONGS[names[index % len(names)]]
            audio = mix(render_stems(spec, sample_rate=SAMPLE_RATE, seconds=seconds))
            out.write(audio.T)
            written += audio.shape[1]
            index += 1
    part.rename(path)
    return path


def cached_stems(name: str, make: Callable[[], dict[str, Audio]]) -> dict[str, Audio]:
    """The stems cached as ``DATA_DIR / name`` (``.npz``), made and stored on first use.

    The file appears whole or not at all (written aside, then renamed), so processes
    that render the same song at once each leave a complete file.
    """
    cache = DATA_DIR / name
    if cache.exists():
        with np.load(cache) as data:
            return {key: data[key] for key in data.files}
    stems = make()
    cache.parent.mkdir(parents=True, exist_ok=True)
    part = cache.with_suffix(f".{os.getpid()}.part.npz")
    np.savez(part, **stems)  # type: ignore[arg-type]
    part.replace(cache)
    return stems


def load_training_song(index: int, seconds: float = 24.0) -> dict[str, Audio]:
    """Training song ``index`` (cached), rendered from :func:`random_spec`."""
    spec = random_spec(TRAIN_SEED_BASE + index)
    return cached_stems(
        f"train/{index:04d}.v{CACHE_VERSION}.npz",
        lambda: render_stems(spec, sample_rate=SAMPLE_RATE, seconds=seconds),
    )


__all__ = [
    "SONGS",
    "Song",
    "cached_stems",
    "load_song",
    "load_songs",
    "load_training_song",
    "long_mix_file",
    "random_spec",
    "song_seconds",
]
