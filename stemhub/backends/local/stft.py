"""Short-time Fourier transform pair with exact reconstruction.

A Hann window with a hop of a quarter window, frames centred on multiples of the hop,
and an inverse that divides by the summed squared window: ``inverse(forward(x))`` gives
``x`` back to float precision, which is what lets the stems sum to the mix. Spectra are
laid out (channels, frames, bins) so every frame is one contiguous FFT row; frames are
cut with strides and transformed in one ``scipy.fft`` call.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numpy.typing import NDArray

Signal = NDArray[np.float32]
Spectrum = NDArray[np.complex64]


class Stft:
    """One STFT configuration: window length ``n_fft``, hop ``n_fft // 4``."""

    def __init__(self, n_fft: int = 4096, *, workers: int = 1) -> None:
        if n_fft % 4:
            raise ValueError("n_fft must be a multiple of 4")
        self.n_fft = n_fft
        self.hop = n_fft // 4
        self.workers = workers
        self.window = np.hanning(n_fft + 1)[:-1].astype(np.float32)

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def frames(self, samples: int) -> int:
        return samples // self.hop + 1

    def frequencies(self, sample_rate: int) -> NDArray[np.float32]:
        return (np.arange(self.bins) * sample_rate / self.n_fft).astype(np.float32)

    def forward(self, audio: Signal) -> Spectrum:
        """(channels, samples) -> (channels, frames, bins), complex64."""
        pad = self.n_fft // 2
        frames = self.frames(audio.shape[-1])
        padded = np.zeros((audio.shape[0], (frames - 1) * self.hop + self.n_fft), np.float32)
        padded[:, pad : pad + audio.shape[-1]] = audio
        view = np.lib.stride_tricks.sliding_window_view(padded, self.n_fft, axis=-1)
        windowed = view[:, :: self.hop][:, :frames] * self.window
        spectrum: Spectrum = scipy.fft.rfft(windowed, axis=-1, workers=self.workers)
        return spectrum

    def inverse(self, spectrum: Spectrum, samples: int) -> Signal:
        """(channels, frames, bins) -> (channels, samples); the inverse of :meth:`forward`."""
        frames = spectrum.shape[1]
        chunks = scipy.fft.irfft(spectrum, n=self.n_fft, axis=-1, workers=self.workers)
        chunks = chunks.astype(np.float32, copy=False) * self.window
        out = self._overlap_add(chunks)
        norm = self._overlap_add(np.broadcast_to(self.window**2, (1, frames, self.n_fft)))[0]
        pad = self.n_fft // 2
        result: Signal = out[:, pad : pad + samples] / np.maximum(norm[pad : pad + samples], 1e-6)
        return result

    def _overlap_add(self, chunks: NDArray[np.float32]) -> NDArray[np.float32]:
        """Sum frames (channels, frames, n_fft) at their hop offsets."""
        channels, frames, _ = chunks.shape
        out = np.zeros((channels, (frames - 1) * self.hop + 2 * self.n_fft), dtype=np.float32)
        # with hop = n_fft / 4, frames k, k+4, k+8, ... tile the signal without overlapping,
        # so four contiguous adds do the whole overlap-add
        parts = self.n_fft // self.hop
        for part in range(min(parts, frames)):
            block = chunks[:, part::parts].reshape(channels, -1)
            start = part * self.hop
            out[:, start : start + block.shape[-1]] += block
        return out


__all__ = ["Signal", "Spectrum", "Stft"]
