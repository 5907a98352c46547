"""Fit the local engine's mask model on songs our own code makes.

    uv run --group bench python -m bench.train_engine [--synthetic 144] [--sampled 96] [--varied 64]

The training songs are 24 s long, rendered once and cached under ``bench/data``:

- ``--synthetic`` songs from :func:`bench.songs.random_spec` (:mod:`stemhub.demo`'s
  synthesizer, ``bench/data/train``, about 4 s each to render), with seeds the
  benchmark songs never use;
- ``--sampled`` songs from :func:`bench.sampled_songs.random_sampled_spec`: the same
  composer as the sampled benchmark set, played by the *training* sound sources only
  (the TimGM6mb and MuseScore_General sound fonts, the training drum kits; never
  FluidR3_GM nor the test kits), ``bench/data/train_sampled``, about 10 s each (needs
  fluidsynth);
- ``--varied`` songs from :func:`bench.sampled_songs.random_varied_spec`: the same, with
  the OPL-3 FM and csound banks added and half of the basses played by our own
  synthesizer patches (:mod:`bench.bass_synth`), in every bass style (slap and picked
  the most often), ``bench/data/train_varied``.

For each song the features of every time-frequency unit are computed exactly as the engine
computes them; the target is the ideal ratio mask (each stem's share of the unit's
power). Units are drawn with probability growing with their level, since loud units
decide how a stem sounds; a tenth of the songs are folded to mono and every song gets a
random gain, so neither stereo cues nor level can be relied on blindly.

Two perceptrons (two hidden layers of 64) are trained one after the other with Adam on
the soft cross-entropy, in plain numpy: the first on the features, the second on the
features plus the context of the first one's answers (:class:`ContextMaps`). The
result goes to ``stemhub/backends/local/weights.npz``; the first tenth of the songs of
each kind is held out and their separation SDR is printed at the end. Training takes
about 30 minutes on 2 cores (with other work running), after the songs are rendered.
"""

from __future__ import annotations

import argparse
import itertools
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from bench.sampled_songs import (
    check_sources,
    load_sampled_training_song,
    load_varied_training_song,
)
from bench.songs import load_training_song
from stemhub.backends.local.engine import Engine, fft_size
from stemhub.backends.local.features import (
    CONTEXT_COUNT,
    FEATURE_COUNT,
    ContextMaps,
    FeatureMaps,
    compute_maps,
)
from stemhub.backends.local.model import SOURCES, WEIGHTS_FILE, MaskModel, Mlp
from stemhub.backends.local.stft import Stft
from stemhub.demo import mix

SAMPLE_RATE = 44100


def song_rows(
    stems: dict[str, np.ndarray],
    rng: np.random.Generator,
    per_song: int,
    pool: ThreadPoolExecutor,
    first: Mlp | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sampled feature rows and their target shares for one song.

    With ``first`` (a trained first stage) the rows are those of the second stage:
    the features followed by the context of the first stage's shares.
    """
    audio = mix(stems)
    if rng.random() < 0.1:  # some mono songs, so the model copes without stereo cues
        audio = np.repeat(audio.mean(axis=0, keepdims=True), 2, axis=0)
        stems = {k: np.repeat(v.mean(axis=0, keepdims=True), 2, axis=0) for k, v in stems.items()}
    gain = np.float32(10 ** rng.uniform(-1.0, 0.0))
    stft = Stft(fft_size(SAMPLE_RATE), workers=2)
    spectrum = stft.forward(audio * gain)
    maps = compute_maps(spectrum, SAMPLE_RATE, pool=pool)
    units = maps.units
    powers = []
    for name in SOURCES:
        s = stft.forward(stems[name])
        powers.append(units.pool(np.mean(s.real**2 + s.imag**2, axis=0)))
    power = np.stack(powers, axis=-1)
    total = power.sum(axis=-1)
    targets = power / (total[..., None] + 1e-12)
    weight = np.sqrt(total).ravel() ** 1.2
    weight[total.ravel() < total.max() * 1e-7] = 0.0
    chosen = rng.choice(
        weight.size,
        size=min(per_song, int(np.count_nonzero(weight))),
        replace=False,
        p=weight / weight.sum(),
    )
    context = None
    if first is not None:
        shares = np.concatenate(
            [
                first.shares(maps.rows(a, min(a + 64, maps.frames)))
                for a in range(0, maps.frames, 64)
            ]
        ).reshape(maps.frames, units.count, len(SOURCES))
        context = ContextMaps.from_shares(shares, maps)
    rows = _gather(maps, chosen, context)
    return rows, targets.reshape(-1, len(SOURCES))[chosen].astype(np.float32)


def _gather(maps: FeatureMaps, chosen: np.ndarray, context: ContextMaps | None) -> np.ndarray:
    """The rows of the flat unit indices ``chosen``, built a few frames at a time."""
    units = maps.units.count
    width = FEATURE_COUNT + (CONTEXT_COUNT if context is not None else 0)
    out = np.empty((chosen.size, width), dtype=np.float32)
    order = np.argsort(chosen)
    sorted_idx = chosen[order]
    step = 64
    for start in range(0, maps.frames, step):
        stop = min(maps.frames, start + step)
        lo, hi = np.searchsorted(sorted_idx, [start * units, stop * units])
        if hi > lo:
            rows = maps.rows(start, stop)
            if context is not None:
                rows = np.concatenate([rows, context.rows(start, stop)], axis=1)
            out[order[lo:hi]] = rows[sorted_idx[lo:hi] - start * units]
    return out


class Trainer:
    """A trainable :class:`Mlp`: the same layout, plus gradients and Adam."""

    def __init__(self, sizes: list[int], rng: np.random.Generator) -> None:
        self.w = [
            rng.normal(0, np.sqrt(2.0 / a), (a, b)).astype(np.float32)
            for a, b in itertools.pairwise(sizes)
        ]
        self.b = [np.zeros(b, dtype=np.float32) for b in sizes[1:]]
        self.m = [np.zeros_like(p) for p in self.w + self.b]
        self.v = [np.zeros_like(p) for p in self.w + self.b]
        self.t = 0

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        h = x
        for i, (w, b) in enumerate(zip(self.w, self.b, strict=True)):
            h = h @ w + b
            if i < len(self.w) - 1:
                h = np.maximum(h, 0.0)
            acts.append(h)
        return h, acts

    def step(self, x: np.ndarray, y: np.ndarray, lr: float) -> float:
        logits, acts = self.forward(x)
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.sum(y * np.log(p + 1e-9), axis=1)))
        grad = (p - y) / x.shape[0]
        grads_w, grads_b = [], []
        for i in range(len(self.w) - 1, -1, -1):
            grads_w.append(acts[i].T @ grad)
            grads_b.append(grad.sum(axis=0))
            if i > 0:
                grad = (grad @ self.w[i].T) * (acts[i] > 0)
        grads = grads_w[::-1] + grads_b[::-1]
        self.t += 1
        params = self.w + self.b
        for k, (param, g) in enumerate(zip(params, grads, strict=True)):
            self.m[k] = 0.9 * self.m[k] + 0.1 * g
            self.v[k] = 0.999 * self.v[k] + 0.001 * g * g
            m_hat = self.m[k] / (1 - 0.9**self.t)
            v_hat = self.v[k] / (1 - 0.999**self.t)
            param -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        return loss


def frame_sdr(reference: np.ndarray, estimate: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Median over 1 s frames of the plain SDR (no distortion filter): a quick check."""
    values = []
    for i in range(reference.shape[1] // sr):
        ref = reference[:, i * sr : (i + 1) * sr].astype(np.float64)
        energy = float(np.sum(ref**2))
        if energy < 1e-8:
            continue
        err = float(np.sum((ref - estimate[:, i * sr : (i + 1) * sr]) ** 2))
        values.append(10 * np.log10(energy / (err + 1e-12)))
    return float(np.median(values)) if values else float("nan")


KINDS = ("synthetic", "sampled", "varied")


def training_song(kind: str, index: int) -> dict[str, np.ndarray]:
    """Training song ``index`` of a kind: ``synthetic``, ``sampled`` or ``varied`` (cached)."""
    if kind == "sampled":
        return load_sampled_training_song(index)
    if kind == "varied":
        return load_varied_training_song(index)
    return load_training_song(index)


def collect(
    ids: list[tuple[str, int]],
    args: argparse.Namespace,
    pool: ThreadPoolExecutor,
    first: Mlp | None,
) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for kind, index in ids:
        stage = 0 if first is None else 1
        rng = np.random.default_rng([args.seed, index, stage, KINDS.index(kind)])
        x, y = song_rows(training_song(kind, index), rng, args.per_song, pool, first)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def fit(x: np.ndarray, y: np.ndarray, hidden: int, epochs: int, seed: int) -> Mlp:
    rng = np.random.default_rng(seed)
    mean = x.mean(axis=0)
    scale = 1.0 / (x.std(axis=0) + 1e-3)
    x = (x - mean) * scale
    net = Trainer([x.shape[1], hidden, hidden, len(SOURCES)], rng)
    batch = 1024
    steps = epochs * (x.shape[0] // batch)
    step = 0
    for epoch in range(epochs):
        order = rng.permutation(x.shape[0])
        losses = []
        for start in range(0, x.shape[0] - batch + 1, batch):
            idx = order[start : start + batch]
            lr = 3e-3 * 0.5 * (1 + np.cos(np.pi * step / steps))
            losses.append(net.step(x[idx], y[idx], lr))
            step += 1
        print(f"  epoch {epoch + 1}: loss {np.mean(losses):.4f}", flush=True)
    return Mlp(
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        weights=tuple(net.w),
        biases=tuple(net.b),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=144, help="synthesizer songs")
    parser.add_argument("--sampled", type=int, default=96, help="training-font songs")
    parser.add_argument("--varied", type=int, default=64, help="wider fonts and synthesizer basses")
    parser.add_argument("--per-song", type=int, default=30000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", type=int, choices=(1, 2), default=2)
    args = parser.parse_args()
    pool = ThreadPoolExecutor(2)
    counts = {"synthetic": args.synthetic, "sampled": args.sampled, "varied": args.varied}
    if args.sampled or args.varied:
        check_sources(training=True)
    held: list[tuple[str, int]] = []
    train_ids: list[tuple[str, int]] = []
    for kind, count in counts.items():
        if count:
            cut = max(1, count // 10)
            held.extend((kind, i) for i in range(cut))
            train_ids.extend((kind, i) for i in range(cut, count))
    t0 = time.perf_counter()
    x, y = collect(train_ids, args, pool, None)
    print(f"stage 1: {x.shape[0]} rows from {len(train_ids)} songs {counts}", flush=True)
    first = fit(x, y, args.hidden, args.epochs, args.seed)
    second = None
    if args.stages == 2:
        x, y = collect(train_ids, args, pool, first)
        print(f"stage 2: {x.shape[0]} rows", flush=True)
        second = fit(x, y, args.hidden, args.epochs, args.seed + 1)
    model = MaskModel(first, second)
    model.save(WEIGHTS_FILE)
    print(
        f"wrote {WEIGHTS_FILE} ({WEIGHTS_FILE.stat().st_size} bytes) "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    engine = Engine(model)
    for kind in KINDS:
        ids = [i for k, i in held if k == kind]
        if not ids:
            continue
        scores: dict[str, list[float]] = {name: [] for name in SOURCES}
        for index in ids:
            stems = training_song(kind, index)
            estimates = engine.separate(mix(stems), SAMPLE_RATE)
            for name in SOURCES:
                scores[name].append(frame_sdr(stems[name], estimates[name]))
        print(
            f"held-out {kind} SDR (median of 1 s frames, {len(ids)} songs):",
            {name: round(float(np.median(v)), 2) for name, v in scores.items()},
        )


if __name__ == "__main__":
    main()
