"""BPM and key of the local engine, on signals whose tempo and key are known."""

from __future__ import annotations

import numpy as np
import pytest

from stemhub.backends.local.analysis import PITCH_CLASSES, Analyzer, analyse
from stemhub.demo import demo_spec, demo_stems, mix

SR = 44100


def drum_loop(bpm: float, seconds: float = 12.0, *, swing_ms: float = 0.0) -> np.ndarray:
    """Kick on beats 1 and 3, snare on 2 and 4, hats on eighths; stereo."""
    rng = np.random.default_rng(1)
    n = int(seconds * SR)
    out = np.zeros(n)
    t = np.arange(int(0.3 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-t / 0.03)) * t) * np.exp(-t / 0.12)
    snare = rng.standard_normal(t.size) * np.exp(-t / 0.07) * 0.5
    hat = rng.standard_normal(t.size) * np.exp(-t / 0.01) * 0.2
    beat = 60.0 / bpm
    step = 0
    while step * beat / 2 < seconds:
        at = int((step * beat / 2 + (swing_ms / 1000 if step % 2 else 0.0)) * SR)
        sound = hat
        if step % 8 in (0, 4):
            sound = kick + hat
        elif step % 8 in (2, 6):
            sound = snare + hat
        end = min(n, at + sound.size)
        out[at:end] += sound[: end - at]
        step += 1
    return np.stack([out, out]).astype(np.float32) * 0.5


def chord_progression(key: str, seconds_per_chord: float = 1.5) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-V-i (minor) with a bass note, as organ-like tones."""
    tonic_name, mode = key.split()
    tonic = 48 + PITCH_CLASSES.index(tonic_name)
    if mode == "major":
        chords = [(0, 4, 7), (5, 9, 12), (7, 11, 14), (0, 4, 7)]
    else:
        chords = [(0, 3, 7), (5, 8, 12), (7, 11, 14), (0, 3, 7)]
    n = int(seconds_per_chord * SR)
    t = np.arange(n) / SR
    parts = []
    for chord in chords * 2:
        tone = np.zeros(n)
        for note in (chord[0] - 12, *chord):
            freq = 440.0 * 2 ** ((tonic + note - 69) / 12)
            for harmonic in range(1, 6):
                tone += np.sin(2 * np.pi * freq * harmonic * t) / harmonic**1.5
        parts.append(tone * np.minimum(1.0, t / 0.02) * np.minimum(1.0, (t[-1] - t) / 0.05))
    audio = np.concatenate(parts)
    audio = 0.5 * audio / np.max(np.abs(audio))
    return np.stack([audio, audio]).astype(np.float32)


@pytest.mark.parametrize("bpm", [84.0, 100.0, 128.0, 150.0])
def test_bpm_of_a_drum_loop(bpm: float) -> None:
    found, _ = analyse(drum_loop(bpm), SR)
    assert found is not None
    assert found == pytest.approx(bpm, abs=1.0)


def test_a_slow_pulse_is_reported_in_the_usual_range() -> None:
    # quarter notes at 60 BPM are heard (and reported by most tools) as 120
    rng = np.random.default_rng(3)
    audio = np.zeros(SR * 12, dtype=np.float32)
    click = (rng.standard_normal(2000) * np.exp(-np.arange(2000) / 200)).astype(np.float32)
    for beat in range(12):
        audio[beat * SR : beat * SR + click.size] += click
    found, _ = analyse(np.stack([audio, audio]), SR)
    assert found == pytest.approx(120.0, abs=1.0)


@pytest.mark.parametrize(
    "key", ["C major", "D major", "F# minor", "A minor", "A# major", "E minor"]
)
def test_key_of_a_chord_progression(key: str) -> None:
    _, found = analyse(chord_progression(key), SR)
    assert found == key


def test_demo_song_tempo_and_key() -> None:
    spec = demo_spec()
    bpm, key = analyse(mix(demo_stems(seconds=12.0)), SR)
    assert bpm == pytest.approx(spec.bpm, abs=1.0)
    assert key == spec.key_name == "A minor"


def test_feeding_in_blocks_gives_the_whole_file_answer() -> None:
    audio = drum_loop(112.0) + chord_progression("D major", seconds_per_chord=1.5)[:, : SR * 12]
    whole_bpm, whole_key = analyse(audio, SR)
    analyzer = Analyzer(SR)
    for start in range(0, audio.shape[1], 7919):  # odd block size: frames straddle blocks
        analyzer.feed(audio[:, start : start + 7919])
    assert analyzer.key() == whole_key == "D major"
    assert analyzer.bpm() == pytest.approx(whole_bpm, abs=0.2)


def test_silence_and_short_audio_have_no_tempo_or_key() -> None:
    assert analyse(np.zeros((2, SR * 5), dtype=np.float32), SR) == (None, None)
    bpm, _ = analyse(drum_loop(120.0, seconds=1.0), SR)
    assert bpm is None


def test_mono_input_and_other_sample_rates() -> None:
    rate = 22050
    loop = drum_loop(96.0)[:1, ::2]  # mono, 22.05 kHz
    bpm, _ = analyse(loop, rate)
    assert bpm == pytest.approx(96.0, abs=1.0)
