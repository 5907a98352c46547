"""Multichannel Wiener filtering: let each source's stereo image sharpen the masks.

A mask applies the same gain to left and right. But sources sit in different places of
the stereo field (the voice in the centre, a guitar on the left), and where two of them
share a time-frequency bin the two channels see them in different proportions. The
multichannel Wiener filter uses that: every source ``j`` gets a power ``v_j(t, f)``
(its share of the bin, from the model) and a 2x2 spatial covariance ``R_j(f)`` (its
stereo image, estimated over the chunk), and its estimate is

    s_j = v_j R_j (sum_k v_k R_k)^-1 x

(the approach of Nugraha, Liutkus and Vincent, and of open-unmix's ``norbert``). The
filters of all sources add up to the identity, so the estimates still sum to the mix;
the engine takes the last stem as the rest anyway, so that holds to float precision.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Executor

import numpy as np
from numpy.typing import NDArray

Spectrum = NDArray[np.complex64]
Array = NDArray[np.float32]
EPS = np.float32(1e-10)
REGULARISATION = np.float32(1e-3)
"""Diagonal loading, relative to the bin's power: keeps the 2x2 inverse well behaved."""
BANDS = 8


def spatial_estimates(
    spectrum: Spectrum, shares: Array, wanted: list[int], pool: Executor | None = None
) -> list[Spectrum]:
    """Stereo estimates of the sources ``wanted`` (indices into ``shares``).

    ``spectrum`` is (2, frames, bins); ``shares`` is (sources, frames, bins) and sums to
    one over sources. Returns one (2, frames, bins) spectrum per wanted source. Every
    frequency is filtered on its own, so the work goes band by band, in parallel on
    ``pool`` when given.
    """
    bins = spectrum.shape[-1]
    out = [np.empty_like(spectrum) for _ in wanted]

    def band(part: slice) -> None:
        for target, estimate in zip(
            out, _estimates(spectrum[..., part], shares[..., part], wanted), strict=True
        ):
            target[..., part] = estimate

    # bands of a few hundred bins keep the temporaries small (bounded memory)
    edges = np.linspace(0, bins, BANDS + 1).astype(int)
    parts = [slice(int(a), int(b)) for a, b in itertools.pairwise(edges)]
    if pool is None:
        for part in parts:
            band(part)
    else:
        list(pool.map(band, parts))
    return out


def _estimates(spectrum: Spectrum, shares: Array, wanted: list[int]) -> list[Spectrum]:
    left, right = spectrum[0], spectrum[1]
    p_left = left.real**2 + left.imag**2
    p_right = right.real**2 + right.imag**2
    cross = left * np.conj(right)
    power = 0.5 * (p_left + p_right)
    sources = shares.shape[0]

    # each source's stereo image: where its share is high, the bin shows its image
    squared = shares * shares
    image_a = np.einsum("jtf,tf->jf", squared, p_left)
    image_d = np.einsum("jtf,tf->jf", squared, p_right)
    image_b = np.einsum("jtf,tf->jf", squared, cross.real) + 1j * np.einsum(
        "jtf,tf->jf", squared, cross.imag
    )
    trace = 0.5 * (image_a + image_d) + EPS
    image_a, image_d, image_b = image_a / trace, image_d / trace, image_b / trace

    # the mix covariance the model implies, with diagonal loading
    cov_a = np.zeros_like(power)
    cov_d = np.zeros_like(power)
    cov_b = np.zeros(power.shape, dtype=np.complex64)
    for j in range(sources):
        v = shares[j] * power
        cov_a += v * image_a[j]
        cov_d += v * image_d[j]
        cov_b += v * image_b[j].astype(np.complex64)
    loading = REGULARISATION * power + EPS
    cov_a += loading
    cov_d += loading
    det = cov_a * cov_d - (cov_b.real**2 + cov_b.imag**2)
    det = np.maximum(det, EPS)
    # y = C^-1 x
    y_left = (cov_d * left - cov_b * right) / det
    y_right = (cov_a * right - np.conj(cov_b) * left) / det

    out: list[Spectrum] = []
    for j in wanted:
        v = shares[j] * power
        a, d = image_a[j], image_d[j]
        b = image_b[j].astype(np.complex64)
        est_left = v * (a * y_left + b * y_right)
        est_right = v * (np.conj(b) * y_left + d * y_right)
        out.append(np.stack([est_left, est_right]).astype(np.complex64))
    return out


__all__ = ["spatial_estimates"]
