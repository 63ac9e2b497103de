"""Stance from an OpenAI-compatible chat-completions API (xAI's Grok API is one).

With logprobs (where the API offers them) the first answer token's top log-probs become the
three probabilities. Without them the answer must be exactly one label; anything else earns
one retry with a stricter instruction, then the tweet is a permanent failure (dead-lettered).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from common.errors import PermanentError
from stance.api_client import ChatCompletionsClient
from stance.logic import one_hot, probabilities_from_top_logprobs, top_label, validate_answer
from stance.prompts import STRICT_SUFFIX, user_message
from stance.scorer import ScorerIdentity, StanceScore

log = logging.getLogger(__name__)

_TOP_LOGPROBS = 5
_MAX_ANSWER_TOKENS = 5
_REMEMBERED_ANSWERS = 4096  # a label is at most a few tokens; more means the model is chatting


class OpenAIScorer:
    provider = "openai"

    def __init__(self, client: ChatCompletionsClient, identity: ScorerIdentity, request_logprobs: bool = True) -> None:
        self._client = client
        self.identity = identity
        self._request_logprobs = request_logprobs
        # With logprobs the three probabilities come from the first answer token's top
        # log-probs (the text answer is the fallback where the API sends none).
        self.method = "answer-logprobs" if request_logprobs else "answer-text"
        self._answered: OrderedDict[tuple[str, str], StanceScore] = OrderedDict()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        resolved = self.identity.resolve_target(target)
        # Every call runs to its end even when a sibling fails: cancelling would also cancel
        # the breaker's half-open probe, and the circuit could then never close again.
        outcomes = await asyncio.gather(*(self._remembered(text, resolved) for text in texts), return_exceptions=True)
        results: list[StanceScore | PermanentError] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, PermanentError):
                raise outcome  # TransientError: the batch is retried; answers so far are kept
            results.append(outcome)
        for text in texts:
            self._answered.pop((text, resolved), None)
        return results

    async def _remembered(self, text: str, target: str) -> StanceScore | PermanentError:
        """Answers of a batch that failed as a whole are kept, so its retry asks only for the rest."""
        if (text, target) in self._answered:
            return self._answered[(text, target)]
        result = await self._score_one(text, target)
        if isinstance(result, StanceScore):
            self._answered[(text, target)] = result
            while len(self._answered) > _REMEMBERED_ANSWERS:
                self._answered.popitem(last=False)
        return result

    async def _score_one(self, text: str, target: str) -> StanceScore | PermanentError:
        answers = []
        for strict in (False, True):
            try:
                choice = await self._client.complete(self._payload(text, target, strict))
            except PermanentError as exc:
                return exc
            probs = _logprob_distribution(choice)
            if probs is not None:
                return StanceScore(top_label(probs), probs)
            answer = choice["message"]["content"]
            label = validate_answer(answer)
            if label is not None:
                return StanceScore(label, one_hot(label))
            answers.append(answer)
            log.warning("answer is not one of the three labels", extra={"answer": answer[:100], "strict": strict})
        return PermanentError("invalid_answer", f"answers outside SUPPORT/OPPOSE/NEUTRAL: {answers!r}"[:500])

    def _payload(self, text: str, target: str, strict: bool) -> dict[str, Any]:
        content = user_message(self.identity.prompt_version, text, target) + (STRICT_SUFFIX if strict else "")
        payload: dict[str, Any] = {
            "model": self.identity.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": _MAX_ANSWER_TOKENS,
        }
        if self._request_logprobs:
            payload |= {"logprobs": True, "top_logprobs": _TOP_LOGPROBS}
        return payload


def _logprob_distribution(choice: dict[str, Any]) -> dict[str, float] | None:
    try:
        first = choice["logprobs"]["content"][0]
        top = [(str(entry["token"]), float(entry["logprob"])) for entry in first["top_logprobs"]]
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # the API did not send (usable) logprobs: fall back to the answer text
    return probabilities_from_top_logprobs(top)
