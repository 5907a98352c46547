"""The mask model: a small multilayer perceptron over the features of one bin.

It reads the :mod:`.features` of a time-frequency unit and answers how the unit's energy
splits between vocals, drums, bass and other (a softmax, so the four shares sum to one
and the stems sum to the mix). The weights were fitted by ``bench/train_engine.py`` on
songs that the project's own synthesizer (:mod:`stemhub.demo`) made; nothing is
downloaded. The file is a few tens of kilobytes of numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stemhub.backends.local.features import FEATURE_COUNT

Array = NDArray[np.float32]
WEIGHTS_FILE = Path(__file__).with_name("weights.npz")
SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")


@dataclass(frozen=True)
class MaskModel:
    mean: Array
    scale: Array
    weights: tuple[Array, ...]
    biases: tuple[Array, ...]

    @classmethod
    def load(cls, path: Path = WEIGHTS_FILE) -> MaskModel:
        with np.load(path) as data:
            layers = int(data["layers"])
            model = cls(
                mean=data["mean"].astype(np.float32),
                scale=data["scale"].astype(np.float32),
                weights=tuple(data[f"w{i}"].astype(np.float32) for i in range(layers)),
                biases=tuple(data[f"b{i}"].astype(np.float32) for i in range(layers)),
            )
        if model.mean.shape != (FEATURE_COUNT,) or model.weights[-1].shape[1] != len(SOURCES):
            raise ValueError(f"{path} does not match this engine's features")
        return model

    def save(self, path: Path) -> None:
        arrays: dict[str, NDArray[np.float32] | NDArray[np.int64]] = {
            "mean": self.mean,
            "scale": self.scale,
            "layers": np.asarray(len(self.weights)),
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"] = w
            arrays[f"b{i}"] = b
        np.savez(path, **arrays)  # type: ignore[arg-type]

    def logits(self, rows: Array) -> Array:
        """(n, features) -> (n, sources) unnormalised log-shares."""
        hidden = (rows - self.mean) * self.scale
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            hidden = hidden @ w
            hidden += b
            if i < last:
                np.maximum(hidden, 0.0, out=hidden)
        return hidden

    def shares(self, rows: Array) -> Array:
        """(n, features) -> (n, sources): each row sums to one."""
        logits = self.logits(rows)
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits


__all__ = ["SOURCES", "WEIGHTS_FILE", "MaskModel"]
