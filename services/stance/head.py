"""A small trained head: multinomial logistic regression over features the LLM computes.

Pure numpy, no I/O but ``load``/``save`` of one ``.npz``. The service only loads heads:
``python -m training.stance_head`` fits them on human-labelled real tweets (the fitting and
folding algebra is in ``training/stance_probe.py``) and writes them to the head cache (or
``services/stance/stance_head.npz`` for the shipped one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.events import STANCE_LABELS

Array = np.ndarray


@dataclass(frozen=True)
class LinearHead:
    """``softmax(((x - mean) / scale) @ weights + bias)`` over ``labels``; ``meta`` says what x is."""

    mean: Array
    scale: Array
    weights: Array
    bias: Array
    labels: tuple[str, ...] = STANCE_LABELS
    meta: dict[str, Any] = field(default_factory=dict)
    logit_ids: Array | None = None  # set when folded: x starts with the logits at these token ids

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[0])

    def probabilities(self, features: Array) -> Array:
        """Rows of label probabilities, one per row of ``features``."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if x.shape[1] != self.n_features:
            raise ValueError(f"head expects {self.n_features} features, got {x.shape[1]}")
        return softmax_rows(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def save(self, path: Path) -> None:
        arrays: dict[str, Array] = {
            "mean": self.mean.astype(np.float32),
            "scale": self.scale.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "bias": self.bias.astype(np.float32),
            "labels": np.array(self.labels),
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        if self.logit_ids is not None:
            arrays["logit_ids"] = self.logit_ids.astype(np.int32)
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> LinearHead:
        with np.load(path, allow_pickle=False) as data:
            labels = tuple(str(label) for label in data["labels"])
            if set(labels) != set(STANCE_LABELS):
                raise ValueError(f"{path}: head labels {labels} are not {STANCE_LABELS}")
            return cls(
                mean=data["mean"].astype(np.float64),
                scale=data["scale"].astype(np.float64),
                weights=data["weights"].astype(np.float64),
                bias=data["bias"].astype(np.float64),
                labels=labels,
                meta=json.loads(str(data["meta"])),
                logit_ids=data["logit_ids"].astype(np.int64) if "logit_ids" in data.files else None,
            )


def softmax_rows(logits: Array) -> Array:
    shifted = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True))
