"""Classical separation baselines and the oracle, for comparison with our engine.

- ``repet_sim``: REPET-SIM as in librosa's documented "vocal separation" example
  (nearest-neighbour median filter of similar frames, soft masks with margins 2 and 10).
  Foreground = vocals, background = the accompaniment.
- ``hpss``: librosa's median-filtering harmonic/percussive separation; percussive = drums.
- ``lowpass``: a 4th-order Butterworth low-pass of the mix = bass.
- ``lowpass_harmonic``: HPSS's harmonic part, low-passed the same way = bass without
  the kick drum.
- ``classical_other``: REPET background, harmonic part, above the bass cut-off = other.
- ``oracle``: the ideal ratio mask (|S_j|^2 / sum |S_k|^2) from the true stems: the
  ceiling a mask-based method on the same STFT could reach.

Each takes a stereo float32 mix (2, samples) and returns {stem: estimate}. The masks
are computed on the mono downmix and applied to both channels, as the example does.
The STFT is 4096/1024 at 44.1 kHz, the same time/frequency resolution as the example's
2048/512 at librosa's default 22.05 kHz.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy import signal

N_FFT = 4096
HOP = 1024
BASS_CUTOFF_HZ = 150.0


def _stft(x: np.ndarray) -> np.ndarray:
    return librosa.stft(x, n_fft=N_FFT, hop_length=HOP)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    return librosa.istft(spec, hop_length=HOP, n_fft=N_FFT, length=length).astype(np.float32)


def repet_sim_masks(mix: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(background mask, foreground mask) on the mono downmix, per librosa's example."""
    full = np.abs(_stft(mix.mean(axis=0)))
    similar = librosa.decompose.nn_filter(
        full,
        aggregate=np.median,
        metric="cosine",
        width=int(librosa.time_to_frames(2, sr=sr, hop_length=HOP)),
    )
    similar = np.minimum(full, similar)
    margin_i, margin_v, power = 2, 10, 2
    mask_i = librosa.util.softmask(similar, margin_i * (full - similar), power=power)
    mask_v = librosa.util.softmask(full - similar, margin_v * similar, power=power)
    return mask_i, mask_v


def repet_sim(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    spec = _stft(mix)
    mask_i, mask_v = repet_sim_masks(mix, sr)
    n = mix.shape[-1]
    return {"vocals": _istft(spec * mask_v, n), "instrumental": _istft(spec * mask_i, n)}


def _hpss_masks(mix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic mask, percussive mask) of librosa's HPSS on the mono downmix."""
    harmonic, percussive = librosa.decompose.hpss(_stft(mix.mean(axis=0)), mask=True)
    return harmonic, percussive


def _below_cutoff(sr: int) -> np.ndarray:
    """Per STFT bin, the power response of a 4th-order Butterworth low-pass at
    ``BASS_CUTOFF_HZ``; one minus it is the matching high-pass's."""
    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT)
    below: np.ndarray = 1.0 / (1.0 + (freqs / BASS_CUTOFF_HZ) ** 8)
    return below[:, None]


def hpss(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    spec = _stft(mix)
    harmonic, percussive = _hpss_masks(mix)
    n = mix.shape[-1]
    return {"drums": _istft(spec * percussive, n), "harmonic": _istft(spec * harmonic, n)}


def lowpass(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    sos = signal.butter(4, BASS_CUTOFF_HZ, btype="low", fs=sr, output="sos")
    return {"bass": signal.sosfiltfilt(sos, mix, axis=-1).astype(np.float32)}


def lowpass_harmonic(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """The harmonic part (HPSS) below the cut-off: the low-pass without the kick drum.

    The mask is HPSS's harmonic mask times the power response of the same 4th-order
    Butterworth low-pass as :func:`lowpass`, applied to the mix's STFT.
    """
    harmonic, _ = _hpss_masks(mix)
    return {"bass": _istft(_stft(mix) * harmonic * _below_cutoff(sr), mix.shape[-1])}


def classical_other(mix: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    mask_i, _ = repet_sim_masks(mix, sr)
    harmonic, _ = _hpss_masks(mix)
    mask = mask_i * harmonic * (1.0 - _below_cutoff(sr))
    return {"other": _istft(_stft(mix) * mask, mix.shape[-1])}


def oracle(stems: dict[str, np.ndarray], mix: np.ndarray) -> dict[str, np.ndarray]:
    powers = {name: np.abs(_stft(audio)) ** 2 for name, audio in stems.items()}
    total = sum(powers.values()) + 1e-12
    spec = _stft(mix)
    return {name: _istft(spec * p / total, mix.shape[-1]) for name, p in powers.items()}


__all__ = ["classical_other", "hpss", "lowpass", "lowpass_harmonic", "oracle", "repet_sim"]
