"""The handler with a fake scorer (and, at the end, with the OpenAI scorer on the fault server)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from pydantic import SecretStr

from common.errors import PermanentError, TransientError
from common.events import STANCE_LABELS, Author, DeadLetter, LabelEvent, TweetRecord
from stance.api_client import ApiLimits, ChatCompletionsClient
from stance.breaker import CircuitBreaker
from stance.handlers import stance_handler
from stance.openai_scorer import OpenAIScorer
from stance.scorer import ScorerIdentity, StanceScore
from tests.fakes.fake_llm_api import Fault, running_fake_api

pytestmark = pytest.mark.asyncio(loop_scope="session")

LABELS = "p.tweets.labels"


class FakeScorer:
    provider = "fake"
    method = "fake-method"

    def __init__(self, fail_text: str | None = None, down: bool = False) -> None:
        self.identity = ScorerIdentity("fake-model", "v5")
        self.fail_text = fail_text
        self.down = down
        self.calls: list[list[str]] = []
        self.targets: list[str | None] = []

    async def score(self, texts: Sequence[str], target: str | None = None) -> list[StanceScore | PermanentError]:
        self.calls.append(list(texts))
        self.targets.append(target)
        if self.down:
            raise TransientError("api down")
        return [
            PermanentError("invalid_answer", "MAYBE") if t == self.fail_text
            else StanceScore("OPPOSE", {"SUPPORT": 0.1, "OPPOSE": 0.7, "NEUTRAL": 0.2})
            for t in texts
        ]

    async def aclose(self) -> None:
        pass


def tweet(i: int, text: str = "") -> TweetRecord:
    return TweetRecord(
        id=str(9_000_000_000_000_000_000 + i), author=Author(handle="a"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC), text=text or f"tweet number {i}", source="test",
    )


def record(offset: int, value: bytes, topic: str = "p.tweets.raw",
           headers: list[tuple[str, bytes]] | None = None, key: bytes = b"k") -> ConsumerRecord:
    return ConsumerRecord(
        topic=topic, partition=1, offset=offset, timestamp=0, timestamp_type=0, key=key, value=value,
        checksum=None, serialized_key_size=1, serialized_value_size=len(value), headers=headers or [],
    )


async def test_batch_in_label_events_and_dead_letters_out() -> None:
    scorer = FakeScorer(fail_text="unanswerable")
    batch = [
        record(0, tweet(1).model_dump_json().encode()),
        record(1, b"{not json"),
        record(2, tweet(2, "unanswerable").model_dump_json().encode()),
        record(3, tweet(3).model_dump_json().encode(), topic="p.tweets.requests.stance",
               headers=[("job-id", b"job-42")]),
    ]
    out = await stance_handler(scorer, LABELS)(batch)

    assert scorer.calls == [["tweet number 1", "unanswerable", "tweet number 3"]]
    labels = [LabelEvent.model_validate_json(m.value) for m in out if m.topic == LABELS]
    assert [(m.key, e.tweet_id) for m, e in zip([m for m in out if m.topic == LABELS], labels, strict=True)] == [
        (tweet(1).id, tweet(1).id), (tweet(3).id, tweet(3).id)
    ]
    first, requested = labels
    assert (first.task, first.label, first.score, first.provider, first.model, first.prompt_version) == (
        "stance", "OPPOSE", 0.7, "fake", "fake-model", "v5"
    )
    assert first.method == "fake-method"
    assert set(first.scores) == set(STANCE_LABELS)
    assert first.job_id is None and requested.job_id == "job-42"

    letters = sorted((DeadLetter.model_validate_json(m.value) for m in out if m.topic.endswith(".dlq")),
                     key=lambda d: d.offset)
    assert [(d.source_topic, d.offset, d.reason, d.service) for d in letters] == [
        ("p.tweets.raw", 1, "invalid_tweet:message", "stance"),
        ("p.tweets.raw", 2, "invalid_answer", "stance"),
    ]


async def test_only_undecodable_messages_skip_the_scorer() -> None:
    scorer = FakeScorer()
    out = await stance_handler(scorer, LABELS)([record(0, b"")])
    assert scorer.calls == []
    assert [m.topic for m in out] == ["p.tweets.raw.dlq"]


async def test_an_unavailable_scorer_fails_the_whole_batch() -> None:
    with pytest.raises(TransientError):
        await stance_handler(FakeScorer(down=True), LABELS)([record(0, tweet(1).model_dump_json().encode())])


@pytest.mark.parametrize("logprobs", [True, False], ids=["logprobs", "text-answers"])
async def test_every_tweet_ends_labelled_or_dead_lettered_once(logprobs: bool) -> None:
    """OpenAI scorer on the fault server: mixed faults, each tweet gets exactly one outcome."""
    texts = [f"I love item {i}" if i % 3 == 0 else f"I hate item {i}" if i % 3 == 1 else f"item {i}"
             for i in range(30)]
    texts[7], texts[8], texts[9] = "odd one MARK-A", "odd two MARK-B", "odd three MARK-C"
    with running_fake_api(logprobs=logprobs) as api:
        api.script(Fault.http(429, Retry_After="0"), Fault.http(500), Fault.malformed(), Fault.slow(1.0))
        api.script_for("MARK-A", Fault.says("MAYBE"), Fault.says("I think NEUTRAL"))  # twice wrong → DLQ
        api.script_for("MARK-B", Fault.says("Perhaps"))  # wrong once, the strict retry answers well
        api.script_for("MARK-C", Fault.http(404))  # permanent client error → DLQ
        client = ChatCompletionsClient(
            api.base_url, SecretStr("k"),
            ApiLimits(requests_per_second=100, max_concurrent=4, max_attempts=4, connect_timeout_s=1,
                      total_timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.05),
            CircuitBreaker(50, 60),
        )
        scorer = OpenAIScorer(client, ScorerIdentity("fake-model", "v3"), request_logprobs=True)
        batch = [record(i, tweet(i, t).model_dump_json().encode(), key=tweet(i).id.encode())
                 for i, t in enumerate(texts)]
        out = await stance_handler(scorer, LABELS)(batch)
        await scorer.aclose()
        strict_prompts = [r.prompt for r in api.requests if "nothing else" in r.prompt]

    outcomes = Counter(m.key for m in out)
    assert set(outcomes) == {tweet(i).id for i in range(30)}
    assert set(outcomes.values()) == {1}  # none twice
    dead = {DeadLetter.model_validate_json(m.value).offset: DeadLetter.model_validate_json(m.value).reason
            for m in out if m.topic.endswith(".dlq")}
    assert dead == {7: "invalid_answer", 9: "api_http_404"}
    labels = {int(e.tweet_id) % 100: e for e in (LabelEvent.model_validate_json(m.value)
                                                 for m in out if m.topic == LABELS)}
    assert labels[8].label == "NEUTRAL"
    assert all(labels[i].label == ("SUPPORT", "OPPOSE", "NEUTRAL")[i % 3] for i in labels if i not in (7, 8, 9))
    assert len(strict_prompts) == 2  # MARK-A and MARK-B each earned exactly one stricter retry
    if logprobs:
        assert 0.5 < labels[0].score < 1.0  # real probabilities, not one-hot
    else:
        assert labels[0].scores == {"SUPPORT": 1.0, "OPPOSE": 0.0, "NEUTRAL": 0.0}


async def test_a_named_target_is_scored_in_its_own_call_and_recorded_on_every_event() -> None:
    scorer = FakeScorer()
    batch = [
        record(0, tweet(1).model_dump_json().encode()),
        record(1, tweet(2).model_dump_json().encode(), topic="p.tweets.requests.stance",
               headers=[("job-id", b"job-7"), ("stance-target", b"Hillary <Clinton>")]),
        record(2, tweet(3).model_dump_json().encode()),
        record(3, tweet(4).model_dump_json().encode(), headers=[("stance-target", b"   ")]),
    ]
    out = await stance_handler(scorer, LABELS, default_target="the new tax")(batch)

    # the default target's tweets in one call, the named target's in another; a blank header is no target
    assert scorer.calls == [["tweet number 1", "tweet number 3", "tweet number 4"], ["tweet number 2"]]
    assert scorer.targets == ["the new tax", "Hillary Clinton"]
    events = {e.tweet_id: e for e in (LabelEvent.model_validate_json(m.value) for m in out if m.topic == LABELS)}
    assert [events[tweet(i).id].target for i in (1, 2, 3, 4)] == ["the new tax", "Hillary Clinton", "the new tax",
                                                                   "the new tax"]
    assert events[tweet(2).id].job_id == "job-7"
    # output order follows the batch, whatever the grouping
    assert [m.key for m in out] == [tweet(i).id for i in (1, 2, 3, 4)]


async def test_without_a_configured_target_events_say_main_subject() -> None:
    out = await stance_handler(FakeScorer(), LABELS)([record(0, tweet(1).model_dump_json().encode())])
    assert LabelEvent.model_validate_json(out[0].value).target == "main subject"


async def test_a_prompt_that_never_names_a_target_records_the_main_subject_whatever_was_asked() -> None:
    scorer = FakeScorer()
    scorer.identity = ScorerIdentity("fake-model", "v4")
    batch = [record(0, tweet(1).model_dump_json().encode(), headers=[("stance-target", b"Hillary Clinton")])]
    out = await stance_handler(scorer, LABELS, default_target="the new tax")(batch)
    assert scorer.targets == ["main subject"]
    assert LabelEvent.model_validate_json(out[0].value).target == "main subject"
