"""A trained linear softmax head and its ``.npz`` file: what the emotion and the stance heads
share. Pure numpy; the only I/O is reading and writing that one file.

``emotion.head.EmotionHead`` adds a temperature and a valence map, ``stance.head.StanceHead``
the token ids its first features are read at; ``training/`` fits them (``training.linear``).
The file holds ``mean``, ``scale``, ``weights`` and ``bias`` (float32), ``labels`` (strings)
and ``meta`` (one JSON string, keys sorted), then the arrays a service's head adds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

Array = np.ndarray


def softmax_rows(logits: Array) -> Array:
    """Each row of ``logits`` as probabilities (in float64, shifted by the row's maximum)."""
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def read_arrays(path: Path, required: Sequence[str] = ()) -> dict[str, Array]:
    """Every array in the ``.npz`` at ``path``; ``ValueError`` naming the ``required`` ones it lacks."""
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in required if key not in data.files]
        if missing:
            raise ValueError(f"it lacks {', '.join(missing)}")
        return {key: np.asarray(data[key]) for key in data.files}


@dataclass(frozen=True)
class LinearHead:
    """``softmax(((x - mean) / scale) @ weights + bias)`` over ``labels``; ``meta`` says what x is.

    A service's head subclasses it: its own fields, the arrays that store them
    (``_extra_arrays``) and how they are read back (``_extra_fields``). ``labels`` is empty
    for a fit that names no labels (``training.linear.fit_softmax``).
    """

    mean: Array
    scale: Array
    weights: Array
    bias: Array
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    kind: ClassVar[str] = "head"  # how an error names it

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    def logits(self, features: Array) -> Array:
        """One row of logits per row of ``features``."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.n_features:
            raise ValueError(f"{self.kind} expects {self.n_features} features, got {x.shape[1]}")
        return np.asarray(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def probabilities(self, features: Array) -> Array:
        """Rows of label probabilities, one per row of ``features``."""
        return softmax_rows(self.logits(features))

    def save(self, path: Path) -> None:
        arrays: dict[str, Array] = {
            "mean": self.mean.astype(np.float32),
            "scale": self.scale.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "bias": self.bias.astype(np.float32),
            "labels": np.array(self.labels),
            "meta": np.array(json.dumps(self._saved_meta(), sort_keys=True)),
            **self._extra_arrays(),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:  # a handle: numpy would add ".npz" to another name
            np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls.from_arrays(read_arrays(path))

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array]) -> Self:
        """The head ``save`` wrote as ``arrays`` (computed in float64)."""
        return cls(
            mean=arrays["mean"].astype(np.float64),
            scale=arrays["scale"].astype(np.float64),
            weights=arrays["weights"].astype(np.float64),
            bias=arrays["bias"].astype(np.float64),
            labels=tuple(str(label) for label in arrays["labels"]),
            meta=json.loads(str(arrays["meta"])),
            **cls._extra_fields(arrays),
        )

    def _saved_meta(self) -> dict[str, Any]:
        return self.meta

    def _extra_arrays(self) -> dict[str, Array]:
        return {}

    @classmethod
    def _extra_fields(cls, arrays: Mapping[str, Array]) -> dict[str, Any]:
        return {}
