"""Per time-frequency features that tell vocals, drums, bass and other apart.

The engine classifies every bin of the spectrogram with a small model (:mod:`.model`);
this module computes what the model sees. The features are classical cues, each cheap
and each meaningful on its own:

- the bin's level and its neighbours in time and frequency (shape of the local patch),
- harmonic/percussive structure: a short and a long opening across time (pitched parts
  are horizontal, a moving voice escapes the long one) and one across frequency (drums
  are vertical),
- stereo: inter-channel coherence, level difference and side/mid ratio (the lead voice,
  bass and kick sit in the centre; accompaniment is often panned or wide),
- where the bin is (log-frequency bumps), how loud its frame is, spectral flux,
- the level an octave above and below and a twelfth above (harmonic relations),
- peakiness against the local spectral envelope (partials versus noise).

Above 5.5 kHz bins are pooled four to a unit: there the model needs less detail and the
engine saves half its work. Levels are relative to the chunk's loudness, so the features
do not depend on the input gain.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from stemhub.backends.local.stft import Spectrum

Array = NDArray[np.float32]
FULL_RESOLUTION_HZ = 5512.5
GROUP = 4
EPS = np.float32(1e-8)
RBF_CENTRES_HZ = (40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, 10240.0, 20480.0)
FEATURE_COUNT = 31
CONTEXT_COUNT = 28


@dataclass(frozen=True)
class Units:
    """How spectrogram bins are pooled into the units the model classifies."""

    starts: NDArray[np.intp]
    """First bin of each unit (for ``np.add.reduceat``)."""
    of_bin: NDArray[np.intp]
    """The unit each bin belongs to (to spread unit masks back over bins)."""
    hz: Array
    """Centre frequency of each unit."""

    @property
    def count(self) -> int:
        return int(self.starts.size)

    @classmethod
    def for_spectrum(cls, bins: int, sample_rate: int) -> Units:
        n_fft = 2 * (bins - 1)
        bin_hz = sample_rate / n_fft
        full = min(bins, int(FULL_RESOLUTION_HZ / bin_hz))
        starts = np.concatenate([np.arange(full), np.arange(full, bins, GROUP)]).astype(np.intp)
        of_bin = np.zeros(bins, dtype=np.intp)
        of_bin[starts[1:]] = 1
        of_bin = np.cumsum(of_bin)
        ends = np.append(starts[1:], bins)
        hz = ((starts + ends - 1) / 2.0 * bin_hz).astype(np.float32)
        return cls(starts=starts, of_bin=of_bin, hz=hz)

    def pool(self, per_bin: Array) -> Array:
        """Sum (..., bins) into (..., units)."""
        pooled: Array = np.add.reduceat(per_bin, self.starts, axis=-1)
        return pooled


@dataclass
class FeatureMaps:
    """Every per-chunk map (frames, units) the feature rows are assembled from."""

    units: Units
    level: Array
    maps: dict[str, Array]
    frame: dict[str, Array]
    related: dict[str, NDArray[np.intp]]
    rbf: Array

    @property
    def frames(self) -> int:
        return int(self.level.shape[0])

    def rows(self, start: int, stop: int) -> Array:
        """Feature rows for frames ``start:stop``: (frames * units, FEATURE_COUNT)."""
        level = self.level
        frames, units = level.shape
        sel = slice(start, stop)
        n = stop - start
        out = np.empty((n, units, FEATURE_COUNT), dtype=np.float32)
        col = 0
        for shift in (-2, -1, 0, 1, 2):
            idx = np.clip(np.arange(start, stop) + shift, 0, frames - 1)
            out[:, :, col] = level[idx]
            col += 1
        here = level[sel]
        for shift in (-2, -1, 1, 2):
            idx = np.clip(np.arange(units) + shift, 0, units - 1)
            out[:, :, col] = here[:, idx] - here
            col += 1
        for name in ("harm_short", "harm_long", "perc", "coherence", "ild", "side", "peak"):
            out[:, :, col] = self.maps[name][sel]
            col += 1
        for name in ("octave_up", "octave_down", "twelfth_up"):
            out[:, :, col] = here[:, self.related[name]] - here
            col += 1
        out[:, :, col : col + self.rbf.shape[1]] = self.rbf[None]
        col += self.rbf.shape[1]
        for name in ("loudness", "flux"):
            out[:, :, col] = self.frame[name][sel, None]
            col += 1
        assert col == FEATURE_COUNT
        return out.reshape(n * units, FEATURE_COUNT)


def _relations(hz: Array) -> dict[str, NDArray[np.intp]]:
    """For each unit, the unit an octave up, an octave down and a twelfth up."""
    return {
        "octave_up": _nearest(hz, hz * 2.0),
        "octave_down": _nearest(hz, hz / 2.0),
        "twelfth_up": _nearest(hz, hz * 3.0),
    }


def _rbf(hz: Array) -> Array:
    """(units, bumps): where each unit lies on a log-frequency axis."""
    octave = np.log2(np.maximum(hz, 20.0))
    centres = np.log2(np.asarray(RBF_CENTRES_HZ, dtype=np.float32))
    rbf: Array = np.exp(-0.5 * ((octave[:, None] - centres[None, :]) / 0.6) ** 2)
    return rbf.astype(np.float32)


def _nearest(grid: Array, targets: Array) -> NDArray[np.intp]:
    idx = np.searchsorted(grid, targets).clip(1, grid.size - 1)
    left_closer = np.abs(targets - grid[idx - 1]) < np.abs(grid[idx] - targets)
    chosen: NDArray[np.intp] = np.where(left_closer, idx - 1, idx).astype(np.intp)
    return chosen


def _opening(pool: ThreadPoolExecutor, data: Array, size: int, axis: int) -> Array:
    """Grey opening (running minimum, then maximum) along ``axis``, split across threads.

    What survives an opening of length ``size`` along time is what lasts at least that
    long: the pitched, horizontal part. Along frequency it keeps the broadband, vertical
    part. It does the job of the median filter of classic HPSS at a fraction of the cost
    (min/max filters take constant time per element).
    """
    other = 1 - axis

    def one(part: Array) -> Array:
        low = ndimage.minimum_filter1d(part, size, axis=axis)
        opened: Array = ndimage.maximum_filter1d(low, size, axis=axis)
        return opened

    parts = np.array_split(data, 2, axis=other)
    merged: Array = np.concatenate(list(pool.map(one, parts)), axis=other)
    return merged


def _odd(value: float) -> int:
    n = max(1, round(value))
    return n if n % 2 else n + 1


def compute_maps(
    spec: Spectrum,
    sample_rate: int,
    *,
    pool: ThreadPoolExecutor,
    checkpoint: Callable[[], None] = lambda: None,
) -> FeatureMaps:
    """Everything the feature rows need, for one chunk ``spec`` (channels, frames, bins)."""
    units = Units.for_spectrum(spec.shape[-1], sample_rate)
    n_fft = 2 * (spec.shape[-1] - 1)
    frame_s = n_fft / 4 / sample_rate
    powers = spec.real**2 + spec.imag**2
    if spec.shape[0] == 2:
        p_left, p_right = units.pool(powers[0]), units.pool(powers[1])
        cross = units.pool(spec[0] * np.conj(spec[1]))
    else:
        p_left = p_right = units.pool(powers[0])
        cross = p_left.astype(np.complex64)
    power = 0.5 * (p_left + p_right)
    mag = np.sqrt(power)
    reference = np.float32(0.5 * np.log(np.mean(power) + EPS))
    log_mag = np.log(mag + EPS)
    level = log_mag - reference
    checkpoint()

    harm_short = _opening(pool, mag, _odd(0.2 / frame_s), axis=0)
    checkpoint()
    # the one-second opening runs on frames averaged three at a time: a third of the work
    frames = mag.shape[0]
    padded = np.pad(mag, ((0, -frames % 3), (0, 0)), mode="edge")
    coarse = padded.reshape(-1, 3, padded.shape[1]).mean(axis=1)
    opened = _opening(pool, coarse, _odd(1.0 / frame_s / 3), axis=0)
    harm_long = np.repeat(opened, 3, axis=0)[:frames]
    checkpoint()
    perc = _opening(pool, mag, 15, axis=1)
    checkpoint()

    smooth = (5, 1)
    cross_s = ndimage.uniform_filter(cross.real, smooth) + 1j * ndimage.uniform_filter(
        cross.imag, smooth
    )
    left_s = ndimage.uniform_filter(p_left, smooth)
    right_s = ndimage.uniform_filter(p_right, smooth)
    coherence = np.abs(cross_s) / np.sqrt(left_s * right_s + EPS)
    ild = np.abs(p_left - p_right) / (p_left + p_right + EPS)
    side = np.maximum(p_left + p_right - 2 * cross.real, 0.0)
    middle = p_left + p_right + 2 * cross.real
    side_ratio = side / (side + middle + EPS)
    envelope = ndimage.uniform_filter1d(log_mag, 31, axis=1)

    frame_power = np.sum(power, axis=1)
    loudness = 0.5 * (np.log(frame_power + EPS) - np.log(np.mean(frame_power) + EPS))
    rise = np.maximum(np.diff(log_mag, axis=0, prepend=log_mag[:1]), 0.0)
    flux = np.mean(rise, axis=1)
    flux = flux / (np.mean(flux) + EPS)
    checkpoint()

    maps = {
        "harm_short": np.log(harm_short + EPS) - log_mag,
        "harm_long": np.log(harm_long + EPS) - log_mag,
        "perc": np.log(perc + EPS) - log_mag,
        "coherence": coherence,
        "ild": ild,
        "side": side_ratio,
        "peak": log_mag - envelope,
    }
    return FeatureMaps(
        units=units,
        level=level.astype(np.float32),
        maps={k: np.clip(v, -12.0, 12.0).astype(np.float32) for k, v in maps.items()},
        frame={"loudness": loudness.astype(np.float32), "flux": flux.astype(np.float32)},
        related=_relations(units.hz),
        rbf=_rbf(units.hz),
    )


@dataclass
class ContextMaps:
    """What the second stage adds: the first stage's answer around each unit.

    A unit alone is often ambiguous (is this partial the voice or a synth?); the shares
    the first stage gave its neighbours over the next half second, across the
    frame, and an octave up and down usually are not.
    """

    shares: Array
    """(frames, units, sources) from the first stage."""
    near: Array
    wide: Array
    across: Array
    frame: Array
    related: dict[str, NDArray[np.intp]]

    @classmethod
    def from_shares(cls, shares: Array, maps: FeatureMaps) -> ContextMaps:
        weight = np.exp(maps.level)[..., None]
        frame = (shares * weight).sum(axis=1) / (weight.sum(axis=1) + EPS)
        return cls(
            shares=shares,
            near=ndimage.uniform_filter1d(shares, 7, axis=0, mode="nearest"),
            wide=ndimage.uniform_filter1d(shares, 31, axis=0, mode="nearest"),
            across=ndimage.uniform_filter1d(shares, 9, axis=1, mode="nearest"),
            frame=frame.astype(np.float32),
            related=maps.related,
        )

    def rows(self, start: int, stop: int) -> Array:
        """Context rows for frames ``start:stop``: (frames * units, CONTEXT_COUNT)."""
        sel = slice(start, stop)
        here = self.shares[sel]
        n, units, sources = here.shape
        frame = np.broadcast_to(self.frame[sel, None, :], (n, units, sources))
        parts = [
            here,
            self.near[sel],
            self.wide[sel],
            self.across[sel],
            frame,
            here[:, self.related["octave_up"]],
            here[:, self.related["octave_down"]],
        ]
        out: Array = np.concatenate(parts, axis=2).reshape(n * units, CONTEXT_COUNT)
        return out


__all__ = ["CONTEXT_COUNT", "FEATURE_COUNT", "ContextMaps", "FeatureMaps", "Units", "compute_maps"]
