"""The mask model: two small multilayer perceptrons over the features of one unit.

The first stage reads the :mod:`.features` of a time-frequency unit and answers how its
energy splits between vocals, drums, bass and other (a softmax: four shares that sum to
one, so the stems sum to the mix). The second stage reads the same features plus the
first stage's shares around the unit (:class:`~.features.ContextMaps`) and answers
again; seeing its neighbours' answers fixes many isolated mistakes ("auto-context").

The weights were fitted by ``bench/train_engine.py`` on songs the project's own code
made (:mod:`stemhub.demo`'s synthesizer, and a composer played by General MIDI sound
fonts and Hydrogen drum kits); nothing is downloaded. The file holds a few
tens of kilobytes of numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stemhub.backends.local import WEIGHTS_FILE
from stemhub.backends.local.features import CONTEXT_COUNT, FEATURE_COUNT

Array = NDArray[np.float32]
SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class Mlp:
    """Standardise the inputs, then dense layers with ReLU between them."""

    mean: Array
    scale: Array
    weights: tuple[Array, ...]
    biases: tuple[Array, ...]

    @property
    def inputs(self) -> int:
        return int(self.mean.shape[0])

    def logits(self, rows: Array) -> Array:
        """(n, inputs) -> (n, sources) unnormalised log-shares."""
        hidden = (rows - self.mean) * self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ w
            hidden += b
            if i < last:
                np.maximum(hidden, 0.0, out=hidden)
        return hidden

    def shares(self, rows: Array) -> Array:
        """(n, inputs) -> (n, sources): each row sums to one."""
        logits = self.logits(rows)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def arrays(self, prefix: str) -> dict[str, NDArray[np.float32]]:
        out = {f"{prefix}mean": self.mean, f"{prefix}scale": self.scale}
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            out[f"{prefix}w{i}"] = w
            out[f"{prefix}b{i}"] = b
        return out

    @classmethod
    def from_arrays(cls, data: dict[str, NDArray[np.float32]], prefix: str) -> Mlp:
        layers = sum(1 for key in data if key.startswith(f"{prefix}w"))
        return cls(
            mean=data[f"{prefix}mean"].astype(np.float32),
            scale=data[f"{prefix}scale"].astype(np.float32),
            weights=tuple(data[f"{prefix}w{i}"].astype(np.float32) for i in range(layers)),
            biases=tuple(data[f"{prefix}b{i}"].astype(np.float32) for i in range(layers)),
        )


@dataclass(frozen=True)
class MaskModel:
    first: Mlp
    second: Mlp | None = None

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> MaskModel:
        with np.load(path) as stored:
            data = {key: stored[key] for key in stored.files}
        first = Mlp.from_arrays(data, "first_")
        second = Mlp.from_arrays(data, "second_") if "second_mean" in data else None
        model = cls(first, second)
        model.check(path)
        return model

    def check(self, path: Path) -> None:
        expected = [(self.first, FEATURE_COUNT)]
        if self.second is not None:
            expected.append((self.second, FEATURE_COUNT + CONTEXT_COUNT))
        for mlp, inputs in expected:
            if mlp.inputs != inputs or mlp.weights[-1].shape[1] != len(SOURCES):
                raise ValueError(f"{path} does not match this engine's features")

    def save(self, path: Path) -> None:
        arrays = self.first.arrays("first_")
        if self.second is not None:
            arrays.update(self.second.arrays("second_"))
        np.savez(path, **arrays)  # type: ignore[arg-type]


__all__ = ["SOURCES", "WEIGHTS_FILE", "MaskModel", "Mlp"]
