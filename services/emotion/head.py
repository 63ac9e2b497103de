"""Trained artefacts the emotion service loads (and never fits): the MiniLM emotion head and the
per-backend valence maps.

``python -m training.emotion_head`` writes both: the head to ``services/emotion/emotion_head.npz``
(weights, bias, standardisation, temperature, labels, JSON meta, the minilm-head backend's
valence map and its sentiment block), a valence map for another backend to ``services/emotion/valence_<backend>.json``.
Pure numpy; the only I/O is reading and writing those files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from common.linear_head import LinearHead, read_arrays
from emotion.logic import SENTIMENT_LABELS, ValenceMap

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
DEFAULT_HEAD_PATH = HERE / "emotion_head.npz"
HEAD_FORMAT = 1
TRAIN_HINT = "rebuild it with `.venv/bin/python -m training.emotion_head`"
_REQUIRED = ("weights", "bias", "mean", "scale", "temperature", "labels", "meta")

Array = np.ndarray


def default_valence_map_path(backend: str) -> Path:
    return HERE / f"valence_{backend}.json"


def short_sha256(path: Path, length: int = 12) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:length]


@dataclass(frozen=True, kw_only=True)
class EmotionHead(LinearHead):
    """``softmax((((x - mean) / scale) @ weights + bias) / temperature)`` over ``labels``.

    ``x`` is the sentence feature vector that ``meta["features"]`` describes (which MiniLM
    layers, pooled and normalised how); ``temperature`` is the calibration fitted after training.
    ``sentiment`` (optional): a negative / neutral / positive head on the same features, which
    carry more sentiment than the seven scores a ``valence_map`` reads.
    """

    temperature: float
    valence_map: ValenceMap | None = None
    sentiment: LinearHead | None = None

    kind: ClassVar[str] = "emotion head"

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    @property
    def layers(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.meta["features"]["layers"])

    def raw_logits(self, features: Array) -> Array:
        """Uncalibrated logits (temperature 1), one row per feature row."""
        return super().logits(features)

    def logits(self, features: Array) -> Array:
        return self.raw_logits(features) / self.temperature

    @classmethod
    def load(cls, path: Path) -> Self:
        """The head in ``path``; a missing, unreadable or inconsistent file raises
        ``ModelUnavailableError`` saying what is wrong and how to rebuild it."""
        if not path.is_file():
            raise ModelUnavailableError(f"emotion head file {path} does not exist: {TRAIN_HINT}")
        try:
            head = cls.from_arrays(read_arrays(path, _REQUIRED))
            head.check()
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            raise ModelUnavailableError(f"{path} is not a valid emotion head file ({exc}): {TRAIN_HINT}") from exc
        return head

    def _saved_meta(self) -> dict[str, Any]:
        return {"format": HEAD_FORMAT, **self.meta}

    def _extra_arrays(self) -> dict[str, Array]:
        arrays = {"temperature": np.array(self.temperature, dtype=np.float64)}
        if self.valence_map is not None:
            arrays["valence_map"] = np.array(json.dumps(self.valence_map.to_dict(), sort_keys=True))
        if self.sentiment is not None:
            block = self.sentiment
            arrays |= {
                "sentiment_mean": block.mean.astype(np.float32),
                "sentiment_scale": block.scale.astype(np.float32),
                "sentiment_weights": block.weights.astype(np.float32),
                "sentiment_bias": block.bias.astype(np.float32),
                "sentiment_meta": np.array(json.dumps(block.meta, sort_keys=True)),
            }
        return arrays

    @classmethod
    def _extra_fields(cls, arrays: Mapping[str, Array]) -> dict[str, Any]:
        mapping = arrays.get("valence_map")
        sentiment = None
        if "sentiment_weights" in arrays:
            sentiment = LinearHead(
                mean=arrays["sentiment_mean"].astype(np.float64),
                scale=arrays["sentiment_scale"].astype(np.float64),
                weights=arrays["sentiment_weights"].astype(np.float64),
                bias=arrays["sentiment_bias"].astype(np.float64),
                labels=SENTIMENT_LABELS,
                meta=json.loads(str(arrays["sentiment_meta"])),
            )
        return {
            "temperature": float(arrays["temperature"]),
            "valence_map": None if mapping is None else ValenceMap.from_dict(json.loads(str(mapping))),
            "sentiment": sentiment,
        }

    def check(self) -> None:
        """Raise ``ValueError`` unless labels, shapes, temperature and meta agree."""
        if sorted(self.labels) != sorted(EMOTION_LABELS) or len(self.labels) != len(EMOTION_LABELS):
            raise ValueError(f"labels {list(self.labels)} are not the seven emotions {list(EMOTION_LABELS)}")
        if self.meta.get("format") != HEAD_FORMAT:
            raise ValueError(f"format {self.meta.get('format')!r}, this service reads format {HEAD_FORMAT}")
        features = self.meta.get("features")
        if not self.meta.get("version") or not isinstance(features, dict) or not features.get("layers"):
            raise ValueError("meta lacks version or features.layers")
        d = self.weights.shape[0] if self.weights.ndim == 2 else -1
        if self.weights.shape != (d, len(self.labels)) or self.bias.shape != (len(self.labels),):
            raise ValueError(f"weights {self.weights.shape} / bias {self.bias.shape} do not fit the labels")
        dimensions = features.get("dimensions")
        if self.mean.shape != (d,) or self.scale.shape != (d,) or d != int(dimensions or -1):
            raise ValueError(f"mean, scale and weights disagree on the feature count ({d}, meta {dimensions})")
        if not np.isfinite(self.temperature) or self.temperature <= 0:
            raise ValueError(f"temperature {self.temperature} is not positive")
        if not (np.isfinite(self.weights).all() and np.isfinite(self.bias).all() and (self.scale > 0).all()):
            raise ValueError("weights, bias or scale hold non-finite or non-positive values")
        block = self.sentiment
        if block is not None:
            k = len(SENTIMENT_LABELS)
            if block.weights.shape != (d, k) or block.bias.shape != (k,) or block.mean.shape != (d,) \
                    or block.scale.shape != (d,):
                raise ValueError(f"the sentiment block's shapes {block.weights.shape} do not fit {d} features x {k}")
            if not (np.isfinite(block.weights).all() and np.isfinite(block.bias).all() and (block.scale > 0).all()):
                raise ValueError("the sentiment block holds non-finite or non-positive values")


def load_valence_map(path: Path, model_id: str) -> ValenceMap | None:
    """A fitted map from ``path`` when it exists and was fitted for ``model_id``; else None (the
    caller keeps the fixed weights). A file that exists but cannot be read is an error."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mapping = ValenceMap.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailableError(f"{path} is not a valid valence map ({exc}): {TRAIN_HINT}") from exc
    fitted_for = mapping.meta.get("model")
    if fitted_for != model_id:
        log.warning("valence map %s was fitted for %s, not %s: using the fixed weights", path, fitted_for, model_id)
        return None
    return mapping


def save_valence_map(mapping: ValenceMap, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mapping.to_dict(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
