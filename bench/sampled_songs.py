"""The sampled benchmark set: songs played by sound fonts and recorded drum kits.

The engine's mask model learned from :mod:`stemhub.demo`'s synthesizer, so the songs of
:mod:`bench.songs` (same synthesizer) flatter it. These songs are composed by
:mod:`bench.composer` and played by sounds the model never heard in training:

- vocals, bass and other: General MIDI instruments of ``FluidR3_GM`` rendered part by
  part with ``fluidsynth`` (the lead is a sung "Choir Aahs", "Voice Oohs" or "Synth
  Voice" line with scoops, vibrato and legato phrasing; some songs add a second voice),
- drums: recorded Hydrogen kits (:data:`bench.drumkits.TEST_KITS`), sample by sample.

Training songs from the same composer (:func:`load_sampled_training_song`) use only the
*other* sources: ``TimGM6mb`` and ``MuseScore_General`` and the training kits; the
"varied" ones (:func:`load_varied_training_song`) add the OPL-3 FM and csound banks and
basses from our own synthesizer patches.

Each stem is set to a level relative to the others, then all four get one gain so the
mix peaks at -1 dBFS; the mix is the exact sum of the stems. Songs are cached under
``bench/data/sampled`` as float32 ``.npz``.

    apt install fluidsynth fluid-soundfont-gm timgm6mb-soundfont \\
        musescore-general-soundfont musescore-general-soundfont-lossless \\
        opl3-soundfont csound-soundfont hydrogen-drumkits
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from bench.bass_synth import BASS_PATCHES, BassPatch, render_bass
from bench.composer import (
    Accompaniment,
    BassStyle,
    Comping,
    Composer,
    Groove,
    SampledSpec,
)
from bench.drumkits import TEST_KITS, TRAIN_KITS, load_kit, render_hits
from bench.fluid_render import (
    TEST_SOUND_FONT,
    TRAIN_SOUND_FONTS,
    WIDE_TRAIN_SOUND_FONTS,
    Room,
    render_part,
    require_fluidsynth,
)
from bench.songs import SAMPLE_RATE, Song, cached_stems, song_form
from stemhub.demo import Audio, Section

CACHE_VERSION = 1
TRAIN_SEED_BASE = 200_000
"""Sampled training songs use seeds from here on; the benchmark songs below never do."""

STEM_LEVELS_DB = {"vocals": 0.0, "drums": -1.0, "bass": -3.0, "other": -2.5}
"""Loudness of each stem's active part relative to the vocals, before a song's offsets."""

A = Accompaniment


def _form(
    verse: tuple[int, ...], chorus: tuple[int, ...], bridge: tuple[int, ...], *, bars: int = 4
) -> tuple[Section, ...]:
    # an instrumental bridge, a quieter intro and bridge than the synthetic songs'
    return song_form(
        verse,
        chorus,
        bridge,
        verse_bars=bars,
        chorus_bars=bars,
        intro_energy=0.4,
        bridge_energy=0.35,
        sung_bridge=False,
    )


SAMPLED_SONGS: dict[str, SampledSpec] = {
    "ballad_d_major_72": SampledSpec(
        bpm=72,
        root=2,
        minor=False,
        sections=_form((0, 4, 5, 3), (3, 4, 0, 5), (5, 3), bars=2),
        groove="ballad",
        bass_program=35,  # fretless
        bass_style="sustain",
        accompaniment=(A(0, "block", -0.2), A(49, "pad", 0.4, 67, 80)),
        vocal_program=52,  # choir aahs
        kit="The Black Pearl 1.0",
        sound_font=TEST_SOUND_FONT,
        seconds=53.0,
        seed=31,
        vocal_centre=62,
        vibrato_cents=45.0,
        reverb=0.8,
        level_db={"vocals": 1.0, "drums": -3.0},
    ),
    "funk_e_minor_104": SampledSpec(
        bpm=104,
        root=4,
        minor=True,
        sections=_form((0, 3, 0, 4), (5, 6, 0, 0), (3, 3)),
        groove="funk",
        bass_program=36,  # slap bass
        bass_style="syncopated",
        accompaniment=(A(4, "comp", 0.3, 64), A(27, "stabs", -0.6, 67, 90)),
        vocal_program=54,  # synth voice
        kit="ColomboAcousticDrumkit",
        sound_font=TEST_SOUND_FONT,
        seconds=55.0,
        seed=32,
        vocal_centre=64,
        swing=0.56,
        reverb=0.3,
        level_db={"drums": 1.0, "bass": 1.0},
    ),
    "rock_g_major_140": SampledSpec(
        bpm=140,
        root=7,
        minor=False,
        sections=_form((0, 3, 4, 3), (0, 4, 5, 3), (5, 4), bars=8),
        groove="rock",
        bass_program=34,  # picked bass
        bass_style="roots",
        accompaniment=(A(29, "strum", -0.8, 55), A(30, "strum", 0.8, 55, 90), A(18, "pad", 0.1)),
        vocal_program=53,  # voice oohs
        harmony_program=52,
        kit="Millo_MultiLayered3",
        sound_font=TEST_SOUND_FONT,
        seconds=58.0,
        seed=33,
        vocal_centre=62,
        humanise_ms=12.0,
        reverb=0.4,
        level_db={"drums": 1.5, "other": 1.0},
    ),
    "waltz_b_flat_major_150": SampledSpec(
        bpm=150,
        root=10,
        minor=False,
        beats_per_bar=3,
        sections=_form((0, 4, 0, 3), (3, 4, 5, 4), (1, 4), bars=8),
        groove="waltz",
        bass_program=32,  # acoustic bass
        bass_style="walking",
        accompaniment=(A(0, "block", 0.25), A(48, "pad", -0.45, 67, 85)),
        vocal_program=52,
        kit="rumpf_kit_z01_h2",
        sound_font=TEST_SOUND_FONT,
        seconds=50.0,
        seed=34,
        vocal_centre=65,
        vocal_pan=-0.1,
        reverb=0.6,
    ),
    "disco_f_minor_122": SampledSpec(
        bpm=122,
        root=5,
        minor=True,
        sections=_form((0, 5, 3, 4), (5, 3, 0, 4), (1, 4), bars=8),
        groove="disco",
        bass_program=38,  # synth bass 1
        bass_style="octaves",
        accompaniment=(A(48, "pad", -0.3, 67), A(61, "stabs", 0.5, 62, 95), A(5, "comp", -0.6)),
        vocal_program=53,
        harmony_program=54,
        kit="The Black Pearl 1.0",
        sound_font=TEST_SOUND_FONT,
        seconds=56.0,
        seed=35,
        vocal_centre=67,
        vocal_pan=0.15,
        reverb=0.45,
        level_db={"vocals": -1.0, "drums": 1.0},
    ),
    "halftime_c_sharp_minor_80": SampledSpec(
        bpm=80,
        root=1,
        minor=True,
        sections=_form((0, 5, 3, 4), (5, 3, 0, 4), (3, 5), bars=4),
        groove="half",
        bass_program=39,  # synth bass 2
        bass_style="groove",
        accompaniment=(A(89, "pad", 0.0, 64), A(4, "arpeggio", -0.45, 72, 85)),
        vocal_program=54,
        kit="ColomboAcousticDrumkit",
        sound_font=TEST_SOUND_FONT,
        seconds=48.0,
        seed=36,
        vocal_centre=68,
        reverb=0.7,
        level_db={"bass": 2.0, "other": -1.0},
    ),
    "shuffle_a_major_116": SampledSpec(
        bpm=116,
        root=9,
        minor=False,
        sections=_form((0, 3, 0, 4), (3, 3, 0, 4), (5, 1)),
        groove="shuffle",
        bass_program=33,  # finger bass
        bass_style="walking",
        accompaniment=(A(16, "pad", 0.45, 62), A(26, "comp", -0.35, 60)),
        vocal_program=52,
        kit="rumpf_kit_z01_h2",
        sound_font=TEST_SOUND_FONT,
        seconds=45.0,
        seed=37,
        vocal_centre=61,
        vocal_pan=-0.2,
        swing=0.66,
        reverb=0.35,
    ),
    "bossa_g_minor_132": SampledSpec(
        bpm=132,
        root=7,
        minor=True,
        sections=_form((0, 3, 6, 4), (5, 1, 4, 0), (3, 4), bars=8),
        groove="bossa",
        bass_program=32,
        bass_style="groove",
        accompaniment=(A(24, "comp", -0.5, 60), A(11, "arpeggio", 0.5, 70, 80)),
        vocal_program=53,
        kit="Millo_MultiLayered3",
        sound_font=TEST_SOUND_FONT,
        seconds=52.0,
        seed=38,
        vocal_centre=63,
        vibrato_cents=20.0,
        reverb=0.5,
        level_db={"drums": -2.0, "vocals": 1.0},
    ),
    "indie_e_flat_major_168": SampledSpec(
        bpm=168,
        root=3,
        minor=False,
        sections=_form((0, 5, 3, 4), (3, 4, 0, 0), (5, 2), bars=8),
        groove="pop",
        bass_program=34,
        bass_style="roots",
        accompaniment=(A(25, "strum", 0.6, 60), A(81, "arpeggio", -0.6, 72, 75)),
        vocal_program=54,
        harmony_program=53,
        kit="Millo_MultiLayered3",
        sound_font=TEST_SOUND_FONT,
        seconds=44.0,
        seed=39,
        vocal_centre=64,
        vibrato_cents=25.0,
        reverb=0.3,
    ),
}

_GROOVES: tuple[Groove, ...] = (
    "rock",
    "pop",
    "funk",
    "disco",
    "half",
    "shuffle",
    "ballad",
    "bossa",
)
_BASS_STYLES: tuple[BassStyle, ...] = (
    "roots",
    "groove",
    "walking",
    "sustain",
    "syncopated",
    "octaves",
)
_BASS_PROGRAMS = (32, 33, 34, 35, 36, 37, 38, 39)
_COMPING: dict[Comping, tuple[int, ...]] = {
    "pad": (16, 17, 19, 48, 49, 50, 88, 89, 92, 95),
    "block": (0, 1, 2, 4, 5, 7),
    "arpeggio": (4, 8, 11, 24, 46, 80, 81),
    "strum": (24, 25, 27, 29, 30),
    "stabs": (56, 61, 62, 17, 27),
    "comp": (4, 5, 26, 27, 24),
}
_PROGRESSIONS = (
    (0, 5, 3, 4),
    (0, 3, 4, 4),
    (0, 4, 5, 3),
    (5, 3, 0, 4),
    (0, 3, 0, 4),
    (1, 4, 0, 0),
    (0, 6, 5, 4),
    (3, 4, 2, 5),
)


def random_sampled_spec(seed: int, seconds: float = 24.0) -> SampledSpec:
    """A random training song on the training sound fonts and kits only."""
    rng = np.random.default_rng(seed)

    def loop() -> tuple[int, ...]:
        return _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]

    def energy(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    sections = (
        Section("intro", int(rng.integers(1, 3)), loop(), vocals=False, energy=energy(0.3, 0.6)),
        Section("verse", int(rng.choice([2, 4])), loop(), energy=energy(0.45, 0.8)),
        Section("chorus", int(rng.choice([2, 4])), loop(), energy=energy(0.75, 1.0)),
        Section("bridge", int(rng.integers(1, 3)), loop(), vocals=bool(rng.random() < 0.5)),
    )
    count = int(rng.integers(1, 4))
    stylings = list(_COMPING)
    accompaniment = []
    for k in range(count):
        comping = stylings[int(rng.integers(len(stylings)))]
        programs = _COMPING[comping]
        accompaniment.append(
            Accompaniment(
                program=int(programs[int(rng.integers(len(programs)))]),
                comping=comping,
                pan=float(rng.uniform(-0.9, 0.9)) if k else float(rng.uniform(-0.4, 0.4)),
                centre=int(rng.integers(55, 73)),
                volume=int(rng.integers(75, 115)),
            )
        )
    return SampledSpec(
        bpm=float(rng.uniform(68, 172)),
        root=int(rng.integers(12)),
        minor=bool(rng.random() < 0.5),
        beats_per_bar=3 if rng.random() < 0.15 else 4,
        sections=sections,
        groove=_GROOVES[int(rng.integers(len(_GROOVES)))],
        bass_program=int(rng.choice(_BASS_PROGRAMS)),
        bass_style=_BASS_STYLES[int(rng.integers(len(_BASS_STYLES)))],
        accompaniment=tuple(accompaniment),
        vocal_program=int(rng.choice([52, 53, 54])),
        harmony_program=int(rng.choice([52, 53, 54])) if rng.random() < 0.3 else None,
        kit=TRAIN_KITS[int(rng.integers(len(TRAIN_KITS)))],
        sound_font=TRAIN_SOUND_FONTS[int(rng.integers(len(TRAIN_SOUND_FONTS)))],
        seconds=seconds,
        seed=seed,
        vocal_centre=int(rng.integers(55, 72)),
        vocal_pan=float(np.clip(rng.normal(0.0, 0.15), -0.5, 0.5)),
        vibrato_cents=float(rng.uniform(10.0, 60.0)),
        swing=float(rng.choice([0.5, 0.5, 0.5, 0.56, 0.66])),
        humanise_ms=float(rng.uniform(3.0, 15.0)),
        reverb=float(rng.uniform(0.1, 0.9)),
        level_db={name: float(rng.uniform(-5.0, 4.0)) for name in STEM_LEVELS_DB},
    )


VARIED_SEED_BASE = 300_000
"""The "varied" training songs use seeds from here on."""
_ALL_BASS_STYLES: tuple[BassStyle, ...] = (*_BASS_STYLES, "slap", "picked", "slap", "picked")
"""Every style, the two the plain training songs lack drawn twice as often."""


def random_varied_spec(seed: int, seconds: float = 24.0) -> SampledSpec:
    """A training song with a wider choice of sounds than :func:`random_sampled_spec`.

    The same composer and drum kits, but the tonal parts may come from every training
    font (the FM chip's bank and csound's included), and the bass is played either by
    one of our synthesizer patches (:mod:`bench.bass_synth`: sub, filtered saw or
    square, FM, reese, pluck) or by a training font, in any of the composer's bass
    styles, slap and picked lines the most often. Never FluidR3 nor the test kits.
    """
    base = random_sampled_spec(seed, seconds)
    rng = np.random.default_rng([seed, 7])
    fonts = WIDE_TRAIN_SOUND_FONTS
    patch: BassPatch | None = None
    bass_font = None
    if rng.random() < 0.5:
        patch = BASS_PATCHES[int(rng.integers(len(BASS_PATCHES)))]
    else:
        bass_font = fonts[int(rng.integers(len(fonts)))]
    levels = dict(base.level_db)
    levels["bass"] = float(rng.uniform(-4.0, 5.0))
    return replace(
        base,
        sound_font=fonts[int(rng.integers(len(fonts)))],
        bass_sound_font=bass_font,
        bass_patch=patch,
        bass_style=_ALL_BASS_STYLES[int(rng.integers(len(_ALL_BASS_STYLES)))],
        level_db=levels,
    )


def _active_rms(audio: np.ndarray, sample_rate: int) -> float:
    """RMS of the louder half of the 100 ms frames: the level while the part plays."""
    hop = sample_rate // 10
    frames = audio[:, : audio.shape[1] // hop * hop].reshape(2, -1, hop)
    power = np.sort(np.mean(frames**2, axis=(0, 2)))
    loud = power[power.size // 2 :]
    return float(np.sqrt(np.mean(loud))) if loud.size else 0.0


def render_sampled_stems(spec: SampledSpec, sample_rate: int = SAMPLE_RATE) -> dict[str, Audio]:
    """Compose and render ``spec``: four float32 stereo stems; the mix is their sum."""
    require_fluidsynth(spec.sound_font)
    kit = load_kit(spec.kit, sample_rate)
    score = Composer(spec).compose()
    room = Room(size=0.3 + 0.6 * spec.reverb, damp=0.4, width=0.9, level=0.5 + 0.4 * spec.reverb)
    raw = {
        name: render_part(part, spec.seconds, sound_font=spec.sound_font, room=room)
        for name, part in (("vocals", score.vocals), ("other", score.other))
    }
    if spec.bass_patch is not None:
        bass_rng = np.random.default_rng([spec.seed, 2])
        raw["bass"] = render_bass(score.bass, spec.seconds, spec.bass_patch, bass_rng, sample_rate)
    else:
        font = spec.bass_sound_font or spec.sound_font
        raw["bass"] = render_part(score.bass, spec.seconds, sound_font=font, room=room)
    samples = round(spec.seconds * sample_rate)
    rng = np.random.default_rng([spec.seed, 1])
    raw["drums"] = render_hits(kit, score.drums, samples, score.pans, rng)
    stems = {}
    for name in STEM_LEVELS_DB:
        level = STEM_LEVELS_DB[name] + spec.level_db.get(name, 0.0)
        rms = _active_rms(raw[name], sample_rate)
        stems[name] = raw[name] * (10 ** (level / 20) * 0.1 / max(rms, 1e-9))
    peak = float(np.max(np.abs(sum(stems.values()))))
    gain = 10 ** (-1.0 / 20.0) / max(peak, 1e-9)
    return {name: (audio * gain).astype(np.float32) for name, audio in stems.items()}


def load_sampled_song(name: str) -> Song[SampledSpec]:
    spec = SAMPLED_SONGS[name]
    stems = cached_stems(f"sampled/{name}.v{CACHE_VERSION}.npz", lambda: render_sampled_stems(spec))
    return Song(name, spec, stems, SAMPLE_RATE)


def load_sampled_training_song(index: int, seconds: float = 24.0) -> dict[str, Audio]:
    """Sampled training song ``index`` (cached): training sound fonts and kits only."""
    spec = random_sampled_spec(TRAIN_SEED_BASE + index, seconds)
    return cached_stems(
        f"train_sampled/{index:04d}.v{CACHE_VERSION}.npz", lambda: render_sampled_stems(spec)
    )


def load_varied_training_song(index: int, seconds: float = 24.0) -> dict[str, Audio]:
    """ "Varied" training song ``index`` (cached): see :func:`random_varied_spec`."""
    spec = random_varied_spec(VARIED_SEED_BASE + index, seconds)
    return cached_stems(
        f"train_varied/{index:04d}.v{CACHE_VERSION}.npz", lambda: render_sampled_stems(spec)
    )


def check_sources(*, training: bool = False) -> None:
    """Fail early, naming the apt packages, when a sound source is missing: those of the
    benchmark songs, or with ``training`` those of the training songs."""
    if training:
        require_fluidsynth(*WIDE_TRAIN_SOUND_FONTS)
    else:
        require_fluidsynth(TEST_SOUND_FONT)
    for kit in TRAIN_KITS if training else TEST_KITS:
        load_kit(kit)


__all__ = [
    "SAMPLED_SONGS",
    "check_sources",
    "load_sampled_song",
    "load_sampled_training_song",
    "load_varied_training_song",
    "random_sampled_spec",
    "random_varied_spec",
    "render_sampled_stems",
]
