from __future__ import annotations

import pytest
from pydantic import SecretStr

from common.errors import TransientError
from stance.api_client import ApiLimits, ChatCompletionsClient
from stance.breaker import CircuitBreaker
from stance.openai_scorer import OpenAIScorer
from stance.scorer import ScorerIdentity, StanceScore
from tests.fakes.fake_llm_api import Fault, running_fake_api

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMITS = ApiLimits(requests_per_second=100, max_concurrent=4, max_attempts=2, connect_timeout_s=1,
                   total_timeout_s=1, backoff_base_s=0.01, backoff_max_s=0.02)


async def test_a_retried_batch_only_asks_again_for_what_failed() -> None:
    texts = ["I love a", "I hate b", "plain c MARK"]
    with running_fake_api(logprobs=True) as api:
        api.script_for("MARK", Fault.http(503), Fault.http(503))  # both attempts of one tweet fail
        scorer = OpenAIScorer(ChatCompletionsClient(api.base_url, SecretStr("k"), LIMITS, CircuitBreaker(10, 60)),
                              ScorerIdentity("fake", "v4"))
        with pytest.raises(TransientError):
            await scorer.score(texts)
        first_round = len(api.requests)
        results = await scorer.score(texts)
        await scorer.aclose()
        second_round = [r.prompt for r in api.requests[first_round:]]

    assert first_round == 4  # two answers, two failed attempts
    assert len(second_round) == 1 and second_round[0].endswith("plain c MARK")
    assert [r.label for r in results if isinstance(r, StanceScore)] == ["SUPPORT", "OPPOSE", "NEUTRAL"]
    assert 0.5 < results[0].probabilities["SUPPORT"] < 1.0  # type: ignore[union-attr]


async def test_logprobs_off_means_strict_text_answers_and_one_hot_scores() -> None:
    with running_fake_api(logprobs=True) as api:
        scorer = OpenAIScorer(ChatCompletionsClient(api.base_url, SecretStr("k"), LIMITS, CircuitBreaker(10, 60)),
                              ScorerIdentity("fake", "v1"), request_logprobs=False)
        [result] = await scorer.score(["I love it"])
        await scorer.aclose()
        body = api.requests[0].body
    assert "logprobs" not in body and body["temperature"] == 0
    assert result == StanceScore("SUPPORT", {"SUPPORT": 1.0, "OPPOSE": 0.0, "NEUTRAL": 0.0})
