"""The ``probe`` method: a trained linear head over what the LLM (and the encoder) compute.

For each tweet the GGUF runs the usual prompt (cached prefix, tweet, answer cue) once; the
head reads the final hidden state at the answer cue and the three label log-probabilities,
next to the tweet's MiniLM sentence embedding, and returns the three probabilities. A head
folded onto logits (``head.fold_hidden``, ``logit_ids`` in its file) reads the hidden state
through 1,024 of the logits that one decode returns (they are a linear function of it); an
older head without them pays a second one-token decode to read the hidden state itself. The LLM
stays in the loop: its features carry the prompt's question, the encoder's carry the
sentence's meaning. ``bench/train_stance_head.py`` trains the head; docs/stance.md has the
figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import ConfigurationError, PermanentError
from common.events import STANCE_LABELS
from stance.encoder import MiniLMEncoder
from stance.head import LinearHead
from stance.llama_scorer import LlamaCppScorer, LlmFeatures, LogitFeatures
from stance.logic import top_label
from stance.model import StanceScore, StanceScorer

log = logging.getLogger(__name__)
DEFAULT_HEAD_PATH = Path(__file__).resolve().parent / "stance_head.npz"
ENCODER_FEATURE = "minilm"


def probe_features(llm: Sequence[LlmFeatures | LogitFeatures], encoded: np.ndarray | None) -> np.ndarray:
    """One row per tweet: hidden state (or the logits a folded head reads instead), label
    log-probabilities, then the encoder's embedding."""
    rows = [
        np.concatenate(
            [
                f.hidden if isinstance(f, LlmFeatures) else f.logits,
                np.log([max(f.probabilities[label], 1e-9) for label in STANCE_LABELS]),
            ]
        )
        for f in llm
    ]
    matrix = np.asarray(rows, dtype=np.float64)
    return matrix if encoded is None else np.hstack([matrix, encoded.astype(np.float64)])


def head_matches(head: LinearHead, model: str, hidden_size: int, prompt_version: str) -> str | None:
    """Why this head cannot serve this GGUF and prompt, or None when it can."""
    if head.meta.get("prompt_version") != prompt_version:
        return f"head trained with prompt {head.meta.get('prompt_version')!r}, not {prompt_version!r}"
    if head.meta.get("model") != model:
        return f"head trained on {head.meta.get('model')!r}, not {model!r}"
    if head.meta.get("hidden_size") != hidden_size:
        return f"head expects hidden size {head.meta.get('hidden_size')}, the GGUF has {hidden_size}"
    return None


class ProbeScorer:
    provider = "llamacpp"

    def __init__(self, llm: LlamaCppScorer, head: LinearHead, encoder: MiniLMEncoder | None) -> None:
        problem = head_matches(head, llm.model, llm.hidden_size, llm.prompt_version)
        if problem:
            raise ConfigurationError(f"stance head does not fit: {problem}")
        if (ENCODER_FEATURE in head.meta.get("features", [])) != (encoder is not None):
            raise ConfigurationError("the stance head and the encoder setting disagree")
        self._llm = llm
        self._head = head
        self._encoder = encoder
        self.model = llm.model if encoder is None else f"{llm.model}+{encoder.name}"
        self.prompt_version = llm.prompt_version
        self.method = f"probe-{head.meta.get('version', 'unversioned')}"

    @staticmethod
    def head_meta(llm: LlamaCppScorer, encoder: MiniLMEncoder | None, **extra: Any) -> dict[str, Any]:
        """What a head trained on this scorer's features must record (the training script uses it)."""
        features = ["hidden", "label_logprobs"] + ([ENCODER_FEATURE] if encoder is not None else [])
        return {
            "model": llm.model,
            "hidden_size": llm.hidden_size,
            "prompt_version": llm.prompt_version,
            "features": features,
            **extra,
        }

    def feature_rows(self, texts: Sequence[str]) -> np.ndarray:
        return feature_rows(self._llm, self._encoder, texts, self._head.logit_ids)

    def score_texts(self, texts: Sequence[str]) -> list[StanceScore]:
        if not texts:
            return []
        probabilities = self._head.probabilities(self.feature_rows(texts))
        scores = []
        for row in probabilities:
            probs = {label: float(row[self._head.labels.index(label)]) for label in STANCE_LABELS}
            scores.append(StanceScore(top_label(probs), probs))
        return scores

    async def score(self, texts: Sequence[str]) -> list[StanceScore | PermanentError]:
        return list(await asyncio.to_thread(self.score_texts, texts))

    async def aclose(self) -> None:
        await self._llm.aclose()


def feature_rows(
    llm: LlamaCppScorer, encoder: MiniLMEncoder | None, texts: Sequence[str], logit_ids: np.ndarray | None = None
) -> np.ndarray:
    """One decode per tweet for a folded head (``logit_ids``); two for a hidden-state head."""
    encoded = encoder.embed(texts) if encoder is not None else None
    if logit_ids is not None:
        return probe_features([llm.logit_features(text, logit_ids) for text in texts], encoded)
    return probe_features([llm.features(text) for text in texts], encoded)


def choose_local_scorer(llm: LlamaCppScorer, method: str, head_path: Path, threads: int) -> StanceScorer:
    """``label-scoring``: the GGUF alone. ``probe``: the trained head, or a configuration error
    saying why it cannot serve. ``auto``: the head when it fits this GGUF and prompt, else the
    GGUF alone (TinyLlama in production has no head yet), said in the log."""
    if method == "label-scoring":
        return llm
    problem = "no head file" if not head_path.is_file() else None
    head = None
    if problem is None:
        head = LinearHead.load(head_path)
        problem = head_matches(head, llm.model, llm.hidden_size, llm.prompt_version)
    if problem is not None or head is None:
        if method == "probe":
            raise ConfigurationError(f"STANCE_METHOD=probe but {head_path} cannot serve: {problem}")
        log.warning("stance probe head not used, label scoring instead", extra={"head": str(head_path), "why": problem})
        return llm
    encoder = MiniLMEncoder(threads) if ENCODER_FEATURE in head.meta.get("features", []) else None
    return ProbeScorer(llm, head, encoder)
