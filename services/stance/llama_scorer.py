"""Stance by label scoring with llama-cpp-python: one forward pass per tweet, no free text.

The prompt's fixed prefix (instruction, examples) is evaluated once per target
(:mod:`stance.prefix_cache`). For each tweet the context is cut back to the prefix
(``n_tokens`` = prefix length; ``Llama.eval`` then drops the KV entries past it) and only the
tweet and the short tail are evaluated. The next-token
logits are read for the first token of each label's spellings ("SUPPORT", " Support", ...);
the three log-masses are softmaxed into probabilities, so every answer is a valid label.
If the labels' first tokens collide, whole label sequences are scored instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common.errors import PermanentError
from common.events import STANCE_LABELS
from stance.decode_slot import DecodeSlot
from stance.logic import (
    calibrate,
    logsumexp,
    mean_probabilities,
    normalise_for_model,
    softmax,
    top_label,
)
from stance.prefix_cache import PrefixCache, tokenize
from stance.prompts import CONTENT_FREE_INPUTS
from stance.scorer import ScorerIdentity, StanceScore

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)

_LABEL_ROOM = 8  # tokens kept free after the prompt for multi-token label scoring
DEFAULT_MAX_TWEET_TOKENS = 128  # a 280-character tweet is ~70 tokens; longer texts are cut


def load_llama(path: Path, n_ctx: int, n_threads: int, n_batch: int, n_threads_batch: int | None = None) -> Llama:
    """``n_threads`` for one-token decodes, ``n_threads_batch`` (default: the same) for prompts."""
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads_batch or n_threads,
        n_batch=n_batch,
        logits_all=False,
        verbose=False,
    )


@dataclass(frozen=True)
class LlmFeatures:
    """What one forward pass over prompt + tweet yields for a trained head."""

    probabilities: dict[str, float]  # raw (uncalibrated) label distribution
    hidden: np.ndarray  # the final hidden state (after the output norm) at the answer cue


@dataclass(frozen=True)
class LogitFeatures:
    """What ONE decode of the tweet yields for a head folded onto logits (``training.stance_probe.fold_hidden``)."""

    probabilities: dict[str, float]  # raw (uncalibrated) label distribution
    logits: np.ndarray  # next-token logits at the head's ``logit_ids``: W_sub @ hidden (tied lm_head)


class LlamaCppScorer:
    provider = "llamacpp"

    def __init__(
        self, llm: Llama, identity: ScorerIdentity, calibrate: bool, max_tweet_tokens: int = DEFAULT_MAX_TWEET_TOKENS
    ) -> None:
        self._llm = llm
        self.identity = identity
        self.max_tweet_tokens = max_tweet_tokens
        self.decode = DecodeSlot(llm)  # one decode at a time, on the cores it may use now
        self._calibrate = calibrate
        self._prefixes = PrefixCache(llm, identity.prompt_version)
        self.parts = self._prefixes.get(identity.default_target).parts
        self.label_tokens, self.label_sequences = self._label_vocabulary()
        self.method = "label-scoring+calibration" if calibrate else "label-scoring"
        self.content_free: dict[str, float] | None = self._content_free(identity.default_target)

    def _content_free(self, target: str) -> dict[str, float] | None:
        """The label bias of this target's prompt alone (contextual calibration), measured once."""
        if not self._calibrate:
            return None
        entry = self._prefixes.get(target)
        if entry.content_free is None:
            entry.content_free = mean_probabilities([self.raw_distribution(t, target) for t in CONTENT_FREE_INPUTS])
            log.info("contextual calibration measured", extra={"content_free": entry.content_free, "target": target})
        return entry.content_free

    @property
    def prefix_tokens(self) -> list[int]:
        """The default target's prefix tokens (what the benchmarks measure)."""
        return self._prefixes.get(self.identity.default_target).tokens

    @property
    def tail_tokens(self) -> list[int]:
        return self._prefixes.get(self.identity.default_target).tail

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        return list(await asyncio.to_thread(self.score_texts, texts, target))

    async def aclose(self) -> None:
        await asyncio.to_thread(self._llm.close)

    def score_texts(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore]:
        resolved = self.identity.resolve_target(target)
        content_free = self._content_free(resolved)
        scores = []
        with self.decode.cores.demand():
            for text in texts:
                probs = self.raw_distribution(text, resolved)
                if content_free is not None:
                    probs = calibrate(probs, content_free)
                scores.append(StanceScore(top_label(probs), probs))
        return scores

    def raw_distribution(self, text: str, target: str | None = None) -> dict[str, float]:
        """Uncalibrated label probabilities, reusing the target's cached prefix."""
        with self.decode():
            tokens = self._start_tweet(text, target)
            self._llm.eval(tokens)
            return self._read_distribution()

    def _start_tweet(self, text: str, target: str | None) -> list[int]:
        """Put the target's prefix in the context and cut it back to the prefix; the tweet's
        tokens to decode next. Holds ``decode()``."""
        resolved = self.identity.resolve_target(target)
        self._prefixes.load(resolved)
        self._llm.n_tokens = len(self._prefixes.get(resolved).tokens)
        return self.tweet_tokens(text, resolved)

    def logit_features(self, text: str, ids: np.ndarray, target: str | None = None) -> LogitFeatures:
        """Label distribution plus the logits at ``ids``, from the one decode label scoring does.

        Gemma's lm_head is the tied token embedding and llama.cpp applies no soft-cap to its
        logits, so ``logits[ids] = W_sub @ hidden``: a head folded onto them needs no second
        decode (``features`` pays one to read the hidden state itself).
        """
        with self.decode():
            self._llm.eval(self._start_tweet(text, target))
            logits = self._last_logits()
            return LogitFeatures(self._read_distribution(logits), logits[ids].astype(np.float64))

    def calibration_rows(
        self, texts: Sequence[str], ids: np.ndarray, target: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(hidden states, logits at ``ids``) at every position of each tweet + cue after the
        prefix, decoded with embeddings on: the pairs ``training.stance_probe.fit_logit_map`` regresses."""
        import llama_cpp

        hidden, logits = [], []
        n_embd, n_vocab = self._llm.n_embd(), self._llm.n_vocab()
        with self.decode():
            for text in texts:
                tokens = self._start_tweet(text, target)
                llama_cpp.llama_set_embeddings(self._llm.ctx, True)
                try:
                    self._llm.eval(tokens)
                    for i in range(len(tokens)):
                        h = llama_cpp.llama_get_embeddings_ith(self._llm.ctx, i)
                        row = llama_cpp.llama_get_logits_ith(self._llm.ctx, i)
                        hidden.append(np.ctypeslib.as_array(h, shape=(n_embd,)).astype(np.float64))
                        logits.append(np.ctypeslib.as_array(row, shape=(n_vocab,))[ids].astype(np.float64))
                finally:
                    llama_cpp.llama_set_embeddings(self._llm.ctx, False)
                prefix = self._prefixes.get(self.identity.resolve_target(target))
                self._llm.n_tokens = len(prefix.tokens)  # back to the prefix
        return np.asarray(hidden), np.asarray(logits)

    def features(self, text: str, target: str | None = None) -> LlmFeatures:
        """Label distribution plus the last position's hidden state, from the same forward pass.

        The tweet is decoded with logits for its last token only; the final token alone is
        decoded with embeddings switched on (llama.cpp outputs every token of a batch while
        embeddings are on, which would cost a vocabulary-sized projection per token).
        """
        import llama_cpp

        with self.decode():
            tokens = self._start_tweet(text, target)
            self._llm.eval(tokens[:-1])
            llama_cpp.llama_set_embeddings(self._llm.ctx, True)
            try:
                self._llm.eval(tokens[-1:])
                pointer = llama_cpp.llama_get_embeddings_ith(self._llm.ctx, -1)
                hidden = np.ctypeslib.as_array(pointer, shape=(self._llm.n_embd(),)).copy()
            finally:
                llama_cpp.llama_set_embeddings(self._llm.ctx, False)
            return LlmFeatures(self._read_distribution(), hidden)

    @property
    def hidden_size(self) -> int:
        return int(self._llm.n_embd())

    def distribution_from_scratch(
        self, text: str, single_pass: bool = True, target: str | None = None
    ) -> dict[str, float]:
        """The same, with the whole context evaluated anew (to check the cache reuse)."""
        entry = self._prefixes.get(self.identity.resolve_target(target))
        with self.decode():
            self._llm.n_tokens = 0  # what Llama.reset() does; eval drops the KV past it
            if single_pass:
                self._llm.eval(entry.tokens + self.tweet_tokens(text, target))
            else:
                self._llm.eval(entry.tokens)
                self._llm.eval(self.tweet_tokens(text, target))
            probs = self._read_distribution()
            self._llm.n_tokens = 0  # the next cached call re-evaluates the prefix
            return probs

    def tweet_tokens(self, text: str, target: str | None = None) -> list[int]:
        """Normalised tweet (never parsed for special tokens, so it cannot inject any) plus the
        tail; at most ``max_tweet_tokens`` of the tweet, and what fits in ``n_ctx``."""
        entry = self._prefixes.get(self.identity.resolve_target(target))
        budget = self._llm.n_ctx() - len(entry.tokens) - len(entry.tail) - _LABEL_ROOM
        budget = min(budget, self.max_tweet_tokens)
        tweet = tokenize(self._llm, entry.tweet_lead + normalise_for_model(text), special=False)[: max(budget, 1)]
        return tweet + entry.tail

    def _read_distribution(self, logits: np.ndarray | None = None) -> dict[str, float]:
        logits = self._last_logits() if logits is None else logits
        log_mass = {label: logsumexp(float(logits[t]) for t in self.label_tokens[label]) for label in STANCE_LABELS}
        if self.label_sequences:
            log_mass = self._sequence_log_probs(logits)
        return softmax(log_mass)

    def _sequence_log_probs(self, logits: np.ndarray) -> dict[str, float]:
        """log P(label tokens | prompt), one extra decode per label token after the first."""
        prompt_len = self._llm.n_tokens
        result = {}
        for label, tokens in self.label_sequences.items():
            total, current = 0.0, logits
            for i, token in enumerate(tokens):
                total += float(current[token]) - float(np.logaddexp.reduce(current))
                if i + 1 < len(tokens):
                    self._llm.n_tokens = prompt_len + i
                    self._llm.eval([token])
                    current = self._last_logits()
            result[label] = total
        self._llm.n_tokens = prompt_len
        return result

    def _last_logits(self) -> np.ndarray:
        import llama_cpp

        pointer = llama_cpp.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self._llm.n_vocab(),)).copy()

    def _label_vocabulary(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """First tokens that spell only one label; label sequences if some label has none."""
        firsts: dict[str, set[int]] = {}
        for label in STANCE_LABELS:
            spellings = {label, label.title(), label.lower()}
            firsts[label] = {tokenize(self._llm, lead + s, special=False)[0] for s in spellings for lead in ("", " ")}
        tokens = {
            label: sorted(firsts[label] - set().union(*(firsts[o] for o in STANCE_LABELS if o != label)))
            for label in STANCE_LABELS
        }
        if all(tokens.values()):
            return tokens, {}
        lead = "" if self.parts.suffix[-1:].isspace() else " "
        sequences = {label: tokenize(self._llm, lead + label, special=False) for label in STANCE_LABELS}
        log.warning("label first tokens collide; scoring whole label sequences", extra={"sequences": sequences})
        return tokens, sequences
