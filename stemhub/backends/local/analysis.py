"""Tempo (BPM) and musical key, the way the hosted API reports them in audioMetadata.

Both are streamed: :class:`Analyzer` takes audio block by block and keeps only small
summaries (an onset-strength envelope of ~86 values a second and a 12-bin chroma sum),
so a long song never has to be in memory at once.

- Tempo: spectral flux of the log-compressed spectrum gives an onset envelope; its
  autocorrelation is scored for every candidate beat period with the period's multiples
  and half (a tempogram folded onto one axis), over 70-180 BPM, where people expect a
  tempo to be reported, weighted by a log-normal preference for tempos near 120; the
  best candidate is refined by parabolic interpolation. Near the ends of the range a
  song may come out at half or double the tempo a musician would count.
- Key: a chroma vector correlated with the Krumhansl-Kessler major and minor profiles in
  all twelve transpositions. The chroma is the energy per pitch class of a pitch
  salience (harmonic summation over four octaves from C3) of the part of the spectrum
  that holds still for half a second.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.typing import NDArray
from scipy import ndimage

Audio = NDArray[np.float32]
PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MIN_BPM = 70.0
MAX_BPM = 180.0
TEMPO_PRIOR_OCTAVES = 0.7
STEADY_S = 0.5
SALIENCE_LOW_MIDI = 48
"""C3: the four octaves of pitches from here on make the chroma."""
HARMONICS = 8
HARMONIC_DECAY = 0.9
PITCH_EVERY = 4
"""The pitch grid uses every fourth frame of the onset grid."""

# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class Analyzer:
    """Accumulates what tempo and key need from audio fed in consecutive blocks.

    Onsets want short windows (~46 ms) and close frames; pitches want long windows
    (~186 ms, 5 Hz bins, to tell C3 from C#3). Both frame grids share one hop, so the
    pending samples are cut once: every frame of the onset grid, every fourth of the
    pitch grid.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.n_fft = 512
        while self.n_fft * 2 <= sample_rate * 0.05:
            self.n_fft *= 2
        self.hop = self.n_fft // 4
        self.n_pitch = 4 * self.n_fft
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        self.pitch_window = np.hanning(self.n_pitch + 1)[:-1].astype(np.float32)
        freqs = np.arange(self.n_fft // 2 + 1) * sample_rate / self.n_fft
        self._flux_bins = freqs < 8000.0
        pitch_freqs = np.arange(self.n_pitch // 2 + 1) * sample_rate / self.n_pitch
        self._salience = _harmonic_sum_matrix(pitch_freqs)
        self._steady_frames = max(1, round(STEADY_S * sample_rate / (PITCH_EVERY * self.hop)))
        self._pending = np.zeros(0, dtype=np.float32)
        self._previous: NDArray[np.float32] | None = None
        self._flux: list[NDArray[np.float32]] = []
        self._chroma = np.zeros(12)
        self._frames = 0

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop

    def feed(self, audio: Audio) -> None:
        """Add the next block of (channels, samples) audio."""
        mono = audio.mean(axis=0, dtype=np.float32) if audio.ndim == 2 else audio
        pending = np.concatenate([self._pending, mono.astype(np.float32, copy=False)])
        # a frame position is used once the longest window starting there has its samples
        count = 0 if pending.size < self.n_pitch else (pending.size - self.n_pitch) // self.hop + 1
        if count == 0:
            self._pending = pending
            return
        self._onsets(pending, count)
        self._pitches(pending, count)
        self._pending = pending[count * self.hop :]
        self._frames += count

    def _onsets(self, pending: Audio, count: int) -> None:
        view = np.lib.stride_tricks.sliding_window_view(pending, self.n_fft)
        frames = view[:: self.hop][:count] * self.window
        magnitude = np.abs(scipy.fft.rfft(frames, axis=-1)).astype(np.float32)
        compressed = np.log1p(100.0 * magnitude[:, self._flux_bins])
        previous = compressed[:1] if self._previous is None else self._previous[None]
        stacked = np.concatenate([previous, compressed])
        # compare with the loudest neighbour bin of the last frame (vibrato is no onset)
        reference = ndimage.maximum_filter1d(stacked[:-1], 3, axis=1)
        self._flux.append(np.maximum(stacked[1:] - reference, 0.0).mean(axis=1))
        self._previous = compressed[-1]

    def _pitches(self, pending: Audio, count: int) -> None:
        first = -self._frames % PITCH_EVERY
        if first >= count:
            return
        view = np.lib.stride_tricks.sliding_window_view(pending, self.n_pitch)
        frames = view[first * self.hop : count * self.hop : PITCH_EVERY * self.hop]
        magnitude = np.abs(scipy.fft.rfft(frames * self.pitch_window, axis=-1)).astype(np.float32)
        # keep what holds still for half a second (notes, chords), not drums: even a
        # snare's ring has a pitch, and it is rarely the key's
        size = min(magnitude.shape[0], self._steady_frames)
        steady = ndimage.minimum_filter1d(magnitude, size, axis=0)
        salience = steady @ self._salience
        energy = np.sum(salience.astype(np.float64) ** 2, axis=0)
        self._chroma += energy.reshape(-1, 12).sum(axis=0)

    def bpm(self) -> float | None:
        """The tempo in beats per minute (70-180), or None without a steady pulse."""
        if not self._flux:
            return None
        envelope = np.concatenate(self._flux).astype(np.float64)
        return estimate_bpm(envelope, self.frames_per_second)

    def key(self) -> str | None:
        """Like ``"A minor"`` or ``"C# major"``; None for silence or unpitched audio."""
        return estimate_key(self._chroma)


def _harmonic_sum_matrix(freqs: NDArray[np.float64]) -> NDArray[np.float32]:
    """(bins, pitches): each pitch's salience is the weighted sum of its harmonics.

    Summing harmonics credits a note to its fundamental; counting raw bins would also
    credit its fifth (3rd harmonic) and major third (5th harmonic) and pull minor keys
    towards major ones.
    """
    bin_hz = float(freqs[1])
    pitches = np.arange(SALIENCE_LOW_MIDI, SALIENCE_LOW_MIDI + 48)
    matrix = np.zeros((freqs.size, pitches.size), dtype=np.float32)
    for i, midi in enumerate(pitches):
        f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        for harmonic in range(1, HARMONICS + 1):
            position = harmonic * f0 / bin_hz
            below = int(position)
            if below + 1 >= freqs.size:
                break
            weight = HARMONIC_DECAY ** (harmonic - 1)
            matrix[below, i] += weight * (below + 1 - position)
            matrix[below + 1, i] += weight * (position - below)
    return matrix


def estimate_bpm(envelope: NDArray[np.float64], fps: float) -> float | None:
    """Tempo from an onset-strength envelope sampled at ``fps`` frames a second."""
    if envelope.size < fps * 3:
        return None
    smooth = ndimage.uniform_filter1d(envelope, max(1, round(fps)), mode="nearest")
    onset = np.maximum(envelope - smooth, 0.0)
    if not np.any(onset > 0):
        return None
    onset -= onset.mean()
    size = 1 << int(np.ceil(np.log2(2 * onset.size)))
    spectrum = np.fft.rfft(onset, size)
    autocorr = np.fft.irfft(np.abs(spectrum) ** 2, size)[: onset.size]
    if autocorr[0] <= 0:
        return None
    autocorr /= autocorr[0]
    max_lag = autocorr.size - 1

    def at(lags: NDArray[np.float64]) -> NDArray[np.float64]:
        inside = lags <= max_lag
        value = np.interp(np.minimum(lags, max_lag), np.arange(autocorr.size), autocorr)
        return np.where(inside, value, 0.0)

    candidates = np.arange(MIN_BPM, MAX_BPM, 0.1)
    lags = 60.0 * fps / candidates
    score = at(lags) + 0.5 * at(2 * lags) + 0.25 * at(4 * lags) + 0.25 * at(lags / 2)
    # listeners favour tempos near 120: between a tempo and its half or double, both in
    # range, the one closer to 120 wins unless the other is clearly stronger
    score *= np.exp(-0.5 * (np.log2(candidates / 120.0) / TEMPO_PRIOR_OCTAVES) ** 2)
    best = int(np.argmax(score))
    if score[best] <= 0.05:
        return None
    if 0 < best < candidates.size - 1:
        left, mid, right = score[best - 1 : best + 2]
        curvature = left - 2 * mid + right
        offset = 0.5 * (left - right) / curvature if curvature < 0 else 0.0
        return round(float(candidates[best] + 0.1 * offset), 1)
    return round(float(candidates[best]), 1)


def estimate_key(chroma: NDArray[np.float64]) -> str | None:
    """Krumhansl-Schmuckler key finding on a 12-bin chroma vector (C first)."""
    if not np.any(chroma > 0):
        return None
    profile = np.sqrt(chroma / chroma.max())
    profile = profile - profile.mean()
    if np.allclose(profile, 0.0):
        return None
    best_name, best_score = None, -np.inf
    for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            rotated = np.roll(template, tonic)
            score = float(np.corrcoef(profile, rotated)[0, 1])
            if score > best_score:
                best_name, best_score = f"{PITCH_CLASSES[tonic]} {mode}", score
    return best_name


def analyse(audio: Audio, sample_rate: int) -> tuple[float | None, str | None]:
    """(bpm, key) of a whole (channels, samples) array."""
    analyzer = Analyzer(sample_rate)
    block = sample_rate * 10
    for start in range(0, audio.shape[-1], block):
        analyzer.feed(audio[..., start : start + block])
    return analyzer.bpm(), analyzer.key()


__all__ = ["Analyzer", "analyse", "estimate_bpm", "estimate_key"]
