"""Emotion classifiers behind one Protocol: the Hugging Face model, or an offline MiniLM backend
(``emotion.minilm``: the trained head, the fallback; the zero-shot baseline).

All load once at start. ``classify`` is synchronous and CPU-bound; the handler runs it in a
worker thread so the event loop keeps heartbeating and fetching.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from common.core_lease import Cores, host_cores
from common.errors import ModelUnavailableError
from common.events import EMOTION_LABELS
from emotion.head import default_valence_map_path, load_valence_map
from emotion.logic import FIXED_VALENCE_MAP, length_buckets
from emotion.onnx_runtime import Forward, onnx_forward, torch_forward
from emotion.settings import EmotionSettings

log = logging.getLogger(__name__)

FETCH_HINT = (
    "run `make models` (python deploy/fetch_models.py) on a machine with internet access, "
    "or point EMOTION_MODEL at a local model directory"
)

class EmotionClassifier(Protocol):
    model_id: str
    revision: str | None

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]: ...


def _torch() -> Any:
    import torch

    return torch


class _BucketedClassifier:
    """Shared by both classifiers: length-bucketed batches through ``forward`` (torch or ONNX).

    A subclass sets ``tokenizer``, ``labels``, ``forward`` and implements ``logits`` on one
    padded bucket; ``classify`` sorts by token length, pads per bucket and keeps input order.
    """

    tokenizer: Any
    labels: list[str]
    forward: Forward
    model_id: str
    revision: str | None

    def _setup(self, settings: EmotionSettings, model: Any, output: str) -> None:
        self.max_length = settings.max_length
        self.bucket_size = settings.bucket_size
        self.bucket_tokens = settings.bucket_tokens
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.runtime = settings.runtime
        threads = settings.torch_threads or _torch().get_num_threads()
        # ONNX Runtime fixes its threads when the session is made: it keeps them, unshared
        self.cores: Cores = host_cores(settings.core_lease_dir if settings.runtime == "torch" else None, threads)
        if settings.runtime == "torch":
            self.forward = torch_forward(model, output)
        else:
            self.forward = onnx_forward(model, output, settings.runtime == "onnx-int8", settings.torch_threads)
            self.revision = f"{self.revision or 'local'}+{settings.runtime}"  # int8 labels are not torch's

    def classify(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return [dict(zip(self.labels, softmax(row), strict=True)) for row in self.batch_logits(texts)]

    @property
    def n_outputs(self) -> int:
        """Logits per text: one per label (a subclass may append more, e.g. a sentiment block)."""
        return len(self.labels)

    def batch_logits(self, texts: Sequence[str]) -> np.ndarray:
        """One row of logits per text, in input order (the bucketing is invisible)."""
        ids: list[list[int]] = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        out = np.zeros((len(ids), self.n_outputs), dtype=np.float32)
        with self.cores.demand():
            for bucket in length_buckets([len(x) for x in ids], self.bucket_size, self.bucket_tokens):
                with self.cores.hold() as threads:
                    if self.runtime == "torch" and _torch().get_num_threads() != threads:
                        _torch().set_num_threads(threads)
                    out[bucket] = self.logits(*pad_rows([ids[i] for i in bucket], self.pad_id))
        return out

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class TransformersEmotionClassifier(_BucketedClassifier):
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
            model = AutoModelForSequenceClassification.from_pretrained(
                source, cache_dir=settings.model_cache_dir, local_files_only=True
            ).eval()
        except OSError as exc:
            raise ModelUnavailableError(
                f"emotion model {settings.model!r} is not available "
                f"(cache dir {settings.model_cache_dir}): {FETCH_HINT}"
            ) from exc
        self.labels = [model.config.id2label[i].lower() for i in range(model.config.num_labels)]
        if sorted(self.labels) != sorted(EMOTION_LABELS):
            raise ModelUnavailableError(
                f"emotion model {settings.model!r} has labels {self.labels}, expected {list(EMOTION_LABELS)}"
            )
        self.model_id = settings.model
        self.revision = getattr(model.config, "_commit_hash", None)
        self._setup(settings, model, "logits")
        # A map fitted for this model (`python -m training.emotion_head --backend transformers`),
        # else the fixed weights.
        path = settings.valence_map_path or default_valence_map_path(settings.backend)
        self.valence_map = load_valence_map(path, self.model_id) or FIXED_VALENCE_MAP

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.forward(input_ids, attention_mask)


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


def _resolve(model: str) -> str:
    """A local directory loads from disk; anything else is a hub id looked up in the cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path)
    if model.startswith((".", "/", "~")):
        raise ModelUnavailableError(f"emotion model directory {model!r} does not exist: {FETCH_HINT}")
    return model


def load_classifier(settings: EmotionSettings) -> EmotionClassifier:
    """The configured backend; each classifier also carries its ``valence_map``."""
    if settings.backend == "minilm-head":
        from emotion.minilm import MiniLMHeadEmotionClassifier

        return MiniLMHeadEmotionClassifier(settings)
    if settings.backend == "minilm-zero-shot":
        from emotion.minilm import MiniLMZeroShotEmotionClassifier

        return MiniLMZeroShotEmotionClassifier(settings)
    return TransformersEmotionClassifier(settings)
