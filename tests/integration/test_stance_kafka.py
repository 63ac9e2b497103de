"""The stance service against the real Kafka broker: with the real GGUF from PyPI, and with the
OpenAI provider against the local fault-injecting API while that API goes down and comes back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from common.events import Author, DeadLetter, LabelEvent, TweetRecord
from common.kafka import ensure_topics
from common.settings import KafkaSettings
from stance.main import run
from stance.model_files import packaged_gemma_gguf
from stance.settings import StanceSettings
from tests.fakes.fake_llm_api import running_fake_api
from tests.support.kafka_probe import committed_and_ends, read_all
from tests.support.polling import wait_until

pytestmark = pytest.mark.kafka


def _tweets(n: int) -> list[TweetRecord]:
    moods = ["I love the new bike lanes", "I hate the new parking fees", "The council meets on Tuesday"]
    return [
        TweetRecord(
            id=str(2**62 + i),
            author=Author(handle=f"user{i}"),
            created_at=datetime(2024, 3, 1, tzinfo=UTC),
            text=f"{moods[i % 3]} (tweet {i})",
            source="integration",
        )
        for i in range(n)
    ]


async def _produce(settings: KafkaSettings, messages: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    await producer.start()
    try:
        for topic, key, value, headers in messages:
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _labels(settings: KafkaSettings) -> list[LabelEvent]:
    return [LabelEvent.model_validate_json(v) for _, v in await read_all(settings, settings.topics.labels)]


@pytest.mark.model
async def test_real_gguf_labels_every_tweet_and_request_and_dead_letters_garbage(
    kafka_settings: KafkaSettings,
) -> None:
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings, topics.all())
    tweets = _tweets(12)
    relabel = tweets[4]
    await _produce(
        kafka_settings,
        [
            *[(topics.raw, t.id.encode(), t.model_dump_json().encode(), []) for t in tweets],
            (topics.raw, b"poison", b"{broken", []),
            (
                topics.requests("stance"),
                relabel.id.encode(),
                relabel.model_dump_json().encode(),
                [("job-id", b"job-7")],
            ),
        ],
    )
    group = f"stance-{uuid.uuid4().hex[:8]}"
    settings = StanceSettings(
        gguf_path=packaged_gemma_gguf(), kafka=kafka_settings, group_id=group, batch_size=5, n_ctx=1024
    )
    stopping = asyncio.Event()
    service = asyncio.create_task(run(settings, stopping))
    try:
        events = await wait_until(
            lambda: _labels(kafka_settings), lambda e: len(e) >= len(tweets) + 1, what="13 stance label events"
        )
        sources = [topics.raw, topics.requests("stance")]
        committed, ends = await wait_until(
            lambda: committed_and_ends(kafka_settings, kafka_settings.group(group), sources),
            lambda c: c[0] == c[1],
            what="offsets committed up to the end of both source topics",
        )
    finally:
        stopping.set()
        await asyncio.wait_for(service, 60)

    assert Counter(e.tweet_id for e in events) == Counter([t.id for t in tweets] + [relabel.id])
    assert sum(ends.values()) == len(tweets) + 2
    for event in events:
        # the shipped head serves Gemma and reads MiniLM too, so the event names both models
        assert event.task == "stance" and event.provider == "llamacpp"
        assert event.model == "gemma-3-270m-q4_k_m.gguf+all-MiniLM-L6-v2"
        assert event.prompt_version == settings.prompt_version and event.method == "probe-h3"
        assert event.target == "main subject"
        assert set(event.scores) == {"SUPPORT", "OPPOSE", "NEUTRAL"}
        assert abs(sum(event.scores.values()) - 1.0) < 1e-4 and event.score == event.scores[event.label]
    assert sorted(e.job_id or "" for e in events if e.tweet_id == relabel.id) == ["", "job-7"]
    [(key, value)] = await read_all(kafka_settings, topics.dlq(topics.raw))
    letter = DeadLetter.model_validate_json(value)
    assert key == b"poison" and letter.reason == "invalid_tweet:message" and letter.service == "stance"


async def test_api_outage_pauses_consumption_without_commits_then_everything_is_labelled_once(
    kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    topics = kafka_settings.topics
    await ensure_topics(kafka_settings, topics.all())
    tweets = _tweets(10)
    await _produce(kafka_settings, [(topics.raw, t.id.encode(), t.model_dump_json().encode(), []) for t in tweets])
    group = f"stance-{uuid.uuid4().hex[:8]}"
    threshold, concurrency = 2, 3

    def logged(message: str) -> int:
        return sum(r.getMessage() == message for r in caplog.records)

    async def count(message: str) -> int:
        return logged(message)

    with running_fake_api(logprobs=True) as api:
        api.down = True
        settings = StanceSettings(
            provider="openai",
            api_key=SecretStr("test-key"),
            api_base_url=api.base_url,
            allow_insecure_api_url=True,  # the fake API listens on http://127.0.0.1
            api_model="fake",
            kafka=kafka_settings,
            group_id=group,
            batch_size=5,
            requests_per_second=50,
            max_concurrent_requests=concurrency,
            max_attempts=2,
            backoff_base_s=0.05,
            backoff_max_s=0.1,
            breaker_failure_threshold=threshold,
            breaker_reset_timeout_s=1.0,
            total_timeout_s=2.0,
        )
        stopping = asyncio.Event()
        service = asyncio.create_task(run(settings, stopping))
        try:
            await wait_until(
                lambda: count("circuit opened: the API keeps failing"), lambda n: n >= 1, what="the circuit to open"
            )
            # At least two failed half-open probes: the batch was retried while paused, the circuit held.
            await wait_until(
                lambda: count("circuit half-open: sending a probe"), lambda n: n >= 2, what="two half-open probes"
            )
            probes = logged("circuit half-open: sending a probe")
            assert logged("transient failure, retrying batch") >= 1  # BatchLoop paused and backed off
            assert await _labels(kafka_settings) == []
            committed, _ = await committed_and_ends(kafka_settings, kafka_settings.group(group), [topics.raw])
            assert sum(committed.values()) == 0
            # No retry storm: once open, only the probes reached the API.
            assert len(api.requests) <= threshold + concurrency + probes + 1

            api.down = False
            events = await wait_until(
                lambda: _labels(kafka_settings), lambda e: len(e) >= len(tweets), what="10 label events"
            )
            await wait_until(
                lambda: committed_and_ends(kafka_settings, kafka_settings.group(group), [topics.raw]),
                lambda c: c[0] == c[1],
                what="offsets committed after recovery",
            )
        finally:
            stopping.set()
            await asyncio.wait_for(service, 60)

    assert Counter(e.tweet_id for e in await _labels(kafka_settings)) == Counter(t.id for t in tweets)
    expected = {t.id: ("SUPPORT", "OPPOSE", "NEUTRAL")[i % 3] for i, t in enumerate(tweets)}
    assert {e.tweet_id: e.label for e in events} == expected
    assert all(e.provider == "openai" and e.model == "fake" and e.method == "answer-logprobs" for e in events)
    assert await read_all(kafka_settings, topics.dlq(topics.raw)) == []
