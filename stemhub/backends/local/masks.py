"""Soft masks for vocals, drums, bass and other from a stereo spectrogram.

Each source gets a magnitude estimate built from cues that hold for most popular music:

- drums are short and broadband: vertical in the spectrogram (median across frequency),
- pitched parts are long and narrowband: horizontal (median across time),
- bass is the pitched part below a few hundred hertz,
- the lead voice is centred, moves in pitch (vibrato, glides) and does not repeat the
  way a backing part does, so it is what a longer time-median and a similar-frame median
  fail to explain,
- the rest (other) is the pitched part that is panned, steady or repeating.

The estimates become Wiener-style masks ``E_j**p / sum_k E_k**p``, which sum to one in
every time-frequency bin, so the separated stems add back to the mix.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from stemhub.backends.local.stft import Spectrum

Array = NDArray[np.float32]
SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
EPS = np.float32(1e-9)


def _median(pool: ThreadPoolExecutor, data: Array, size: int, axis: int) -> Array:
    """A running median along ``axis``, split across threads on the other axis."""
    other = 1 - axis
    parts = np.array_split(data, 2, axis=other)
    shape = [1, 1]
    shape[axis] = size
    results = list(pool.map(lambda p: ndimage.median_filter(p, size=tuple(shape)), parts))
    merged: Array = np.concatenate(results, axis=other)
    return merged


def estimate_masks(
    spec: Spectrum,
    sample_rate: int,
    *,
    pool: ThreadPoolExecutor,
    checkpoint: Callable[[], None] = lambda: None,
) -> dict[str, Array]:
    """Masks (frames, bins) per source, summing to one; ``spec`` is (channels, frames, bins)."""
    n_fft = 2 * (spec.shape[-1] - 1)
    freqs = np.arange(spec.shape[-1], dtype=np.float32) * sample_rate / n_fft
    power = np.mean(np.abs(spec) ** 2, axis=0)
    mag = np.sqrt(power).astype(np.float32)
    frame_s = n_fft / 4 / sample_rate
    bin_hz = sample_rate / n_fft

    harm = _median(pool, mag, _odd(0.2 / frame_s), axis=0)
    checkpoint()
    perc = _median(pool, mag, _odd(150.0 / bin_hz), axis=1)
    checkpoint()
    h2, p2 = harm**2, perc**2
    harmonic = mag * h2 / (h2 + p2 + EPS)
    drums = mag * p2 / (h2 + p2 + EPS)

    steady = _median(pool, harmonic, _odd(1.0 / frame_s), axis=0)
    checkpoint()
    bass_w = 1.0 / (1.0 + (freqs / 180.0) ** 6)
    bass = harmonic * bass_w

    if spec.shape[0] == 2:
        left, right = np.abs(spec[0]), np.abs(spec[1])
        cross = np.abs(spec[0] * np.conj(spec[1]))
        centre = (2 * cross / (left**2 + right**2 + EPS)).astype(np.float32)
    else:
        centre = np.ones_like(mag)
    upper = harmonic * (1.0 - bass_w)
    moving = np.maximum(upper - steady, 0.0)
    voice_band = ((freqs > 120.0) & (freqs < 9000.0)).astype(np.float32)
    vocals = moving * centre**4 * voice_band
    other = np.maximum(upper - vocals, 0.0) + 0.1 * harmonic

    estimates = {"vocals": vocals, "drums": drums, "bass": bass, "other": other}
    return wiener(estimates, exponent=2.0)


def wiener(estimates: dict[str, Array], exponent: float) -> dict[str, Array]:
    powered = {name: np.power(np.maximum(e, 0.0), exponent) for name, e in estimates.items()}
    total = sum(powered.values()) + EPS
    return {name: (p / total).astype(np.float32) for name, p in powered.items()}


def _odd(value: float) -> int:
    n = max(1, round(value))
    return n if n % 2 else n + 1


__all__ = ["SOURCES", "estimate_masks", "wiener"]
