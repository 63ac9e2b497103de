"""The contract every stance scorer implements (``llama_scorer``, ``probe_scorer``,
``openai_scorer``) and the handler calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from common.errors import PermanentError


@dataclass(frozen=True)
class StanceScore:
    label: str
    probabilities: dict[str, float]  # SUPPORT, OPPOSE, NEUTRAL; sums to 1


class StanceScorer(Protocol):
    """Batch of tweet texts in, one score (or a permanent per-tweet failure) per text out.

    Raises :class:`common.errors.TransientError` when the whole batch should be retried later.
    """

    provider: str
    model: str
    prompt_version: str
    method: str  # named in every label event: "label-scoring+calibration", "probe-h1", "answer-logprobs"...

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        """``target``: what the stance is toward (``None``: the scorer's default, normally the
        tweet's main subject)."""
        ...

    async def aclose(self) -> None: ...
