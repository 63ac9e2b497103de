"""The ``probe`` method: a trained linear head over what the LLM (and the encoder) compute.

For each tweet the GGUF runs the prompt (the target's cached prefix, tweet, answer cue) once;
the head reads 1,024 of the logits that decode returns (a linear image of the final hidden
state) and the three label log-probabilities, next to the tweet's MiniLM sentence embedding
and (head h3) that embedding times the target's, and returns the three probabilities. An
older head without ``logit_ids`` pays a second one-token decode to read the hidden state
itself. The LLM stays in the loop: its features carry the prompt's question about the target,
the encoder's carry the sentence's meaning. ``python -m training.stance_head`` (``make
fit-stance-head``) fits a head for any GGUF; docs/stance.md has the figures.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from common.errors import ConfigurationError, PermanentError
from common.events import STANCE_LABELS
from stance.encoder import MiniLMEncoder
from stance.head import StanceHead
from stance.llama_scorer import LlamaCppScorer, LlmFeatures, LogitFeatures
from stance.logic import top_label
from stance.model_files import fitted_head_path
from stance.prompts import target_phrase
from stance.scorer import StanceScore, StanceScorer

log = logging.getLogger(__name__)
DEFAULT_HEAD_PATH = Path(__file__).resolve().parent / "stance_head.npz"
ENCODER_FEATURE = "minilm"
TARGET_FEATURE = "minilm_x_target"  # the tweet's embedding times the target's, element-wise


def probe_features(
    llm: Sequence[LlmFeatures | LogitFeatures], encoded: np.ndarray | None, target_vector: np.ndarray | None = None
) -> np.ndarray:
    """One row per tweet: hidden state (or the logits a folded head reads instead), label
    log-probabilities, then the encoder's embedding, then (for a head that reads the target)
    the embedding times the target's embedding, element by element: what lets one linear head
    tell stance toward different targets apart beyond what the LLM's prompt carries."""
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
    if encoded is None:
        return matrix
    blocks = [matrix, encoded.astype(np.float64)]
    if target_vector is not None:
        blocks.append(encoded.astype(np.float64) * target_vector.astype(np.float64)[None, :])
    return np.hstack(blocks)


def head_matches(
    head: StanceHead, model: str, hidden_size: int, prompt_version: str, gguf_sha256: str | None = None
) -> str | None:
    """Why this head cannot serve this GGUF and prompt, or None when it can. A head that records
    its GGUF's SHA-256 serves that exact file only; an older one is matched by file name."""
    if head.meta.get("prompt_version") != prompt_version:
        return f"head trained with prompt {head.meta.get('prompt_version')!r}, not {prompt_version!r}"
    recorded = head.meta.get("gguf_sha256")
    if recorded and gguf_sha256 and recorded != gguf_sha256:
        return f"head trained on a GGUF with SHA-256 {recorded[:12]}…, not {gguf_sha256[:12]}…"
    if not recorded and head.meta.get("model") != model:
        return f"head trained on {head.meta.get('model')!r}, not {model!r}"
    if head.meta.get("hidden_size") != hidden_size:
        return f"head expects hidden size {head.meta.get('hidden_size')}, the GGUF has {hidden_size}"
    return None


class ProbeScorer:
    provider = "llamacpp"

    def __init__(
        self, llm: LlamaCppScorer, head: StanceHead, encoder: MiniLMEncoder | None, gguf_sha256: str | None = None
    ) -> None:
        identity = llm.identity
        problem = head_matches(head, identity.model, llm.hidden_size, identity.prompt_version, gguf_sha256)
        if problem:
            raise ConfigurationError(f"stance head does not fit: {problem}")
        features = head.meta.get("features", [])
        if (ENCODER_FEATURE in features) != (encoder is not None):
            raise ConfigurationError("the stance head and the encoder setting disagree")
        self._llm = llm
        self._head = head
        self._encoder = encoder
        self._reads_target = TARGET_FEATURE in features
        self._target_vectors: dict[str, np.ndarray] = {}
        self.identity = identity if encoder is None else replace(identity, model=f"{identity.model}+{encoder.name}")
        self.method = f"probe-{head.meta.get('version', 'unversioned')}"

    def target_vector(self, target: str) -> np.ndarray | None:
        """The encoder's embedding of the target as the prompt names it (cached per target)."""
        if not self._reads_target or self._encoder is None:
            return None
        if target not in self._target_vectors:
            self._target_vectors[target] = self._encoder.embed([target_phrase(target)])[0]
        return self._target_vectors[target]

    def feature_rows(self, texts: Sequence[str], target: str | None = None) -> np.ndarray:
        resolved = self._llm.identity.resolve_target(target)
        return feature_rows(
            self._llm, self._encoder, texts, self._head.logit_ids, resolved, self.target_vector(resolved)
        )

    def score_texts(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore]:
        if not texts:
            return []
        probabilities = self._head.probabilities(self.feature_rows(texts, target))
        scores = []
        for row in probabilities:
            probs = {label: float(row[self._head.labels.index(label)]) for label in STANCE_LABELS}
            scores.append(StanceScore(top_label(probs), probs))
        return scores

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        return list(await asyncio.to_thread(self.score_texts, texts, target))

    async def aclose(self) -> None:
        await self._llm.aclose()


def feature_rows(
    llm: LlamaCppScorer,
    encoder: MiniLMEncoder | None,
    texts: Sequence[str],
    logit_ids: np.ndarray | None = None,
    target: str | None = None,
    target_vector: np.ndarray | None = None,
) -> np.ndarray:
    """One decode per tweet for a head on logits (``logit_ids``); two for a hidden-state head."""
    cores = llm.decode.cores
    with cores.demand():
        encoded = None
        if encoder is not None:
            with cores.hold() as threads:
                encoded = encoder.embed(texts, threads)
        if logit_ids is not None:
            rows = [llm.logit_features(text, logit_ids, target) for text in texts]
            return probe_features(rows, encoded, target_vector)
        return probe_features([llm.features(text, target) for text in texts], encoded, target_vector)


def head_candidates(configured: Path | None, gguf_sha256: str | None, prompt_version: str) -> list[Path]:
    """Where a head is looked for: the configured file alone; else the head ``make
    fit-stance-head`` cached for this GGUF's SHA-256 and prompt, then the shipped one."""
    if configured is not None:
        return [configured]
    cached = [fitted_head_path(gguf_sha256, prompt_version)] if gguf_sha256 else []
    return [*cached, DEFAULT_HEAD_PATH]


def choose_local_scorer(
    llm: LlamaCppScorer, method: str, head_path: Path | None, threads: int, gguf_sha256: str | None = None
) -> StanceScorer:
    """``label-scoring``: the GGUF alone. ``probe``: the trained head, or a configuration error
    saying why it cannot serve. ``auto``: the first head that fits this GGUF and prompt (see
    ``head_candidates``), else the GGUF alone, said in the log."""
    if method == "label-scoring":
        return llm
    problems = []
    identity = llm.identity
    for path in head_candidates(head_path, gguf_sha256, identity.prompt_version):
        if not path.is_file():
            problems.append(f"{path}: no head file")
            continue
        head = StanceHead.load(path)
        problem = head_matches(head, identity.model, llm.hidden_size, identity.prompt_version, gguf_sha256)
        if problem is None:
            encoder = MiniLMEncoder(threads) if ENCODER_FEATURE in head.meta.get("features", []) else None
            log.info("stance probe head in use", extra={"head": str(path), "version": head.meta.get("version")})
            return ProbeScorer(llm, head, encoder, gguf_sha256)
        problems.append(f"{path}: {problem}")
    why = "; ".join(problems)
    if method == "probe":
        raise ConfigurationError(f"STANCE_METHOD=probe but no stance head can serve: {why}")
    log.warning(
        "stance probe head not used, label scoring instead (run `make fit-stance-head` to fit one for this GGUF)",
        extra={"why": why},
    )
    return llm
