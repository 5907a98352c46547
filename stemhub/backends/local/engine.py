"""The embedded separation engine: chunked, streaming, and exact about the mix.

Audio goes through in overlapping chunks (20 s, 2 s of overlap by default) so memory
stays bounded whatever the length. Every unit of a chunk's spectrogram gets four shares
(vocals, drums, bass, other) from the model (:mod:`.features`, :mod:`.model`); the shares
become stereo Wiener filters (:mod:`.wiener`) or, for mono and the FAST quality, plain
masks; the filtered spectra go back to audio, and neighbouring chunks are crossfaded with
complementary ramps. One stem of every stem set is not estimated but taken as the rest
(``other`` = mix - vocals - drums - bass, ``instrumental`` = mix - vocals), so the stems
always add back to the input to float precision.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stemhub.backends.local.features import ContextMaps, compute_maps
from stemhub.backends.local.model import SOURCES, MaskModel
from stemhub.backends.local.stft import Stft
from stemhub.backends.local.wiener import spatial_estimates

Audio = NDArray[np.float32]
Checkpoint = Callable[[float], None]
"""Called often (well under a second apart) with how many input samples are done;
raise from it to stop the work."""

_FRAMES_PER_BLOCK = 48
"""Frames classified per model call: small enough to stay in cache."""


@dataclass(frozen=True)
class StemPlan:
    """Which stems to estimate with masks, and which one is the rest of the mix."""

    estimated: tuple[str, ...]
    rest: str | None

    @classmethod
    def for_stems(cls, stems: Iterable[str]) -> StemPlan:
        wanted = tuple(dict.fromkeys(stems))
        unknown = set(wanted) - {*SOURCES, "instrumental"}
        if unknown or not wanted:
            raise ValueError(f"the local engine cannot make {sorted(unknown) or 'no stems'}")
        if "instrumental" in wanted:
            if set(wanted) - {"vocals", "instrumental"}:
                raise ValueError("instrumental goes with vocals only")
            return cls(estimated=("vocals",), rest="instrumental")
        if "other" in wanted:
            return cls(estimated=("vocals", "drums", "bass"), rest="other")
        return cls(estimated=tuple(s for s in SOURCES if s in wanted), rest=None)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.estimated + ((self.rest,) if self.rest else ())


def fft_size(sample_rate: int) -> int:
    """About 93 ms windows at any rate: 4096 at 44.1/48 kHz, 2048 at 22.05 kHz."""
    size = 1024
    while size * 2 <= sample_rate * 0.1:
        size *= 2
    return size


class Engine:
    """Separates audio; one instance per worker process, reused across jobs.

    ``spatial`` turns the model's shares into stereo Wiener filters (:mod:`.wiener`)
    instead of plain masks: a little slower, about half a decibel better.
    """

    def __init__(
        self,
        model: MaskModel | None = None,
        *,
        threads: int = 2,
        chunk_s: float = 20.0,
        overlap_s: float = 2.0,
        spatial: bool = True,
    ) -> None:
        self.model = model or MaskModel.load()
        self.spatial = spatial
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="stemhub-engine")
        self.chunk_s = chunk_s
        self.overlap_s = overlap_s

    def close(self) -> None:
        self.pool.shutdown(wait=False)

    def separate(
        self,
        audio: Audio,
        sample_rate: int,
        stems: Iterable[str] = ("vocals", "drums", "bass", "other"),
        *,
        checkpoint: Checkpoint = lambda _done: None,
    ) -> dict[str, Audio]:
        """Separate a whole (channels, samples) array; convenient for short audio."""
        plan = StemPlan.for_stems(stems)
        block = max(1, round(self.chunk_s * sample_rate))
        blocks = (audio[:, i : i + block] for i in range(0, audio.shape[1], block))
        parts: dict[str, list[Audio]] = {name: [] for name in plan.outputs}
        for piece in self.stream(blocks, sample_rate, plan, checkpoint=checkpoint):
            for name, data in piece.items():
                parts[name].append(data)
        empty = np.zeros((audio.shape[0], 0), dtype=np.float32)
        return {
            name: np.concatenate(chunks, axis=1) if chunks else empty
            for name, chunks in parts.items()
        }

    def stream(
        self,
        blocks: Iterable[Audio],
        sample_rate: int,
        plan: StemPlan,
        *,
        checkpoint: Checkpoint = lambda _done: None,
    ) -> Iterator[dict[str, Audio]]:
        """Separate audio arriving in blocks; yield consecutive pieces of every stem.

        The pieces of each stem concatenate to exactly the input's length.
        """
        window = max(1, round(self.chunk_s * sample_rate))
        overlap = min(round(self.overlap_s * sample_rate), window // 2)
        fade_in = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float32)[1:-1]
        source = iter(blocks)
        buffer: Audio | None = None
        exhausted = False
        tail: dict[str, Audio] | None = None
        position = 0
        while True:
            while not exhausted and (buffer is None or buffer.shape[1] < window):
                block = next(source, None)
                if block is None:
                    exhausted = True
                    continue
                block = np.asarray(block, dtype=np.float32)
                buffer = block if buffer is None else np.concatenate([buffer, block], axis=1)
            if buffer is None or buffer.shape[1] == 0:
                return
            final = exhausted and buffer.shape[1] <= window
            chunk = buffer if final else buffer[:, :window]
            estimates = self.separate_chunk(
                chunk, sample_rate, plan.estimated, _progress_in(checkpoint, position, chunk)
            )
            if tail is not None:
                for name, data in estimates.items():
                    data[:, :overlap] *= fade_in
                    data[:, :overlap] += tail[name]
            keep = chunk.shape[1] if final else chunk.shape[1] - overlap
            if not final:
                fade_out = 1.0 - fade_in
                tail = {name: data[:, keep:] * fade_out for name, data in estimates.items()}
            piece = {name: data[:, :keep] for name, data in estimates.items()}
            if plan.rest is not None:
                rest = chunk[:, :keep].copy()
                for data in piece.values():
                    rest -= data
                piece[plan.rest] = rest
            yield piece
            if final:
                return
            buffer = buffer[:, keep:]
            position += keep

    def separate_chunk(
        self,
        audio: Audio,
        sample_rate: int,
        sources: tuple[str, ...],
        progress: Callable[[float], None] = lambda _fraction: None,
    ) -> dict[str, Audio]:
        """Estimates of ``sources`` for one chunk (channels, samples).

        ``progress`` gets the fraction of the chunk done, between steps. With more than
        two channels the first two are analysed and the masks applied to all.
        """
        stft = Stft(fft_size(sample_rate), workers=self.threads)
        spectrum = stft.forward(audio)
        progress(0.1)
        analysed = spectrum if spectrum.shape[0] <= 2 else spectrum[:2]
        shares = self.shares(analysed, sample_rate, progress)
        wanted = [SOURCES.index(name) for name in sources]
        if self.spatial and spectrum.shape[0] == 2:
            estimates = spatial_estimates(spectrum, shares, wanted, self.pool)
        else:
            estimates = [spectrum * shares[j] for j in wanted]
        progress(0.85)
        out: dict[str, Audio] = {}
        for i, (name, estimate) in enumerate(zip(sources, estimates, strict=True)):
            out[name] = stft.inverse(estimate, audio.shape[1])
            progress(0.85 + 0.15 * (i + 1) / len(sources))
        return out

    def shares(
        self,
        spectrum: NDArray[np.complex64],
        sample_rate: int,
        progress: Callable[[float], None] = lambda _fraction: None,
    ) -> NDArray[np.float32]:
        """(sources, frames, bins) masks for a (channels, frames, bins) spectrum."""
        maps = compute_maps(spectrum, sample_rate, pool=self.pool, checkpoint=lambda: progress(0.2))
        progress(0.25)
        frames, units = maps.frames, maps.units.count
        starts = range(0, frames, _FRAMES_PER_BLOCK)
        stages = 1 if self.model.second is None else 2
        shares = np.empty((frames, units, len(SOURCES)), dtype=np.float32)

        def first(start: int) -> None:
            stop = min(frames, start + _FRAMES_PER_BLOCK)
            rows = maps.rows(start, stop)
            shares[start:stop] = self.model.first.shares(rows).reshape(stop - start, units, -1)

        for done, _ in enumerate(self.pool.map(first, starts)):
            progress(0.25 + 0.55 / stages * (done + 1) / len(starts))
        if self.model.second is not None:
            second_stage = self.model.second
            context = ContextMaps.from_shares(shares, maps)
            refined = np.empty_like(shares)

            def second(start: int) -> None:
                stop = min(frames, start + _FRAMES_PER_BLOCK)
                rows = np.concatenate([maps.rows(start, stop), context.rows(start, stop)], axis=1)
                refined[start:stop] = second_stage.shares(rows).reshape(stop - start, units, -1)

            for done, _ in enumerate(self.pool.map(second, starts)):
                progress(0.525 + 0.275 * (done + 1) / len(starts))
            shares = refined
        per_bin = shares[:, maps.units.of_bin, :]
        return np.ascontiguousarray(np.moveaxis(per_bin, -1, 0))


def _progress_in(checkpoint: Checkpoint, start: int, chunk: Audio) -> Callable[[float], None]:
    """Turn "this much of the chunk is done" into input samples done."""
    length = chunk.shape[1]
    return lambda fraction: checkpoint(start + fraction * length)


__all__ = ["Engine", "StemPlan", "fft_size"]
