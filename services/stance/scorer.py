"""The contract every stance scorer implements (``llama_scorer``, ``probe_scorer``,
``openai_scorer``) and the handler calls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from common.errors import PermanentError
from common.events import MAIN_SUBJECT, clean_target
from stance.logic import resolve_target


@dataclass(frozen=True)
class ScorerIdentity:
    """Which model a scorer asks with which prompt version (both named in its label events),
    and the target it asks about when a call names none (cleaned as every recorded target is)."""

    model: str
    prompt_version: str
    default_target: str = MAIN_SUBJECT

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_target", clean_target(self.default_target))

    def resolve_target(self, target: str | None) -> str:
        """The target a call asks about: ``target``, or the default when it is None or blank."""
        return resolve_target(target, self.default_target)


@dataclass(frozen=True)
class StanceScore:
    label: str
    probabilities: dict[str, float]  # SUPPORT, OPPOSE, NEUTRAL; sums to 1


class StanceScorer(Protocol):
    """Batch of tweet texts in, one score (or a permanent per-tweet failure) per text out.

    Raises :class:`common.errors.TransientError` when the whole batch should be retried later.
    """

    provider: str
    identity: ScorerIdentity
    method: str  # named in every label event: "label-scoring+calibration", "probe-h1", "answer-logprobs"...

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        """``target``: what the stance is toward (``None``: the scorer's default, normally the
        tweet's main subject)."""
        ...

    async def aclose(self) -> None: ...
