"""The indexer's batch handler with a recording writer: one bulk per batch, dead letters; no server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from common.errors import TransientError
from common.events import DeadLetter
from common.topics import Topics
from gateway.indexer.handlers import IndexBatchHandler
from tests.unit.gateway.factories import NOW, emotion, stance, tweet

TOPICS = Topics("t.")


# one event loop for the whole session, as the async fixtures (see pyproject)
pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeWriter:
    """Answers each bulk with the statuses queued in ``answers`` (default: all stored)."""

    def __init__(self, *answers: list[dict[str, Any]]) -> None:
        self.answers = list(answers)
        self.calls: list[list[dict[str, Any]]] = []

    async def bulk(self, operations: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        self.calls.append(list(operations))
        if self.answers:
            return self.answers.pop(0)
        return [{"update": {"status": 200}} for _ in operations[::2]]


def record(topic: str, value: bytes | None, offset: int = 0, key: bytes | None = b"1") -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0, 0, [])


class FakeLexicon:
    model = "fake-lexicon-1"

    def compounds(self, texts: Sequence[str]) -> list[float]:
        return [-0.5 if "bad" in text else 0.25 for text in texts]


def handler(writer: FakeWriter) -> IndexBatchHandler:
    return IndexBatchHandler(writer, "tweets", TOPICS, clock=lambda: NOW, lexicon=FakeLexicon())


async def test_tweets_and_labels_become_one_bulk_and_nothing_is_dead_lettered() -> None:
    writer = FakeWriter()
    batch = [
        record(TOPICS.raw, tweet("1").model_dump_json().encode(), 0),
        record(TOPICS.labels, emotion("1").model_dump_json().encode(), 0),
    ]
    sut = handler(writer)
    assert await sut(batch) == []
    (operations,) = writer.calls
    assert [op["update"]["_id"] for op in operations[::2]] == ["1", "1"]
    assert sut.stats.indexed == 2


async def test_undecodable_message_is_dead_lettered_and_the_rest_is_written() -> None:
    writer = FakeWriter()
    batch = [
        record(TOPICS.raw, b"{broken", 7, key=b"k"),
        record(TOPICS.raw, tweet("2").model_dump_json().encode(), 8),
    ]
    dead = await handler(writer)(batch)
    assert len(writer.calls[0]) == 2  # only the valid tweet
    (letter,) = dead
    assert letter.topic == TOPICS.dlq(TOPICS.raw)
    event = DeadLetter.model_validate_json(letter.value)
    assert (event.offset, event.reason, event.key, event.value) == (7, "invalid_tweet:message", "k", "{broken")
    assert ("error-class", b"PermanentError") in letter.headers


async def test_item_rejected_by_elasticsearch_is_dead_lettered_with_its_reason() -> None:
    rejected = {"update": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "likes"}}}
    writer = FakeWriter([{"update": {"status": 201}}, rejected])
    batch = [
        record(TOPICS.raw, tweet("1").model_dump_json().encode(), 0),
        record(TOPICS.labels, emotion("1").model_dump_json().encode(), 5),
    ]
    (letter,) = await handler(writer)(batch)
    event = DeadLetter.model_validate_json(letter.value)
    assert letter.topic == TOPICS.dlq(TOPICS.labels)
    assert (
        event.offset == 5 and event.reason == "elasticsearch_rejected" and "document_parsing_exception" in event.detail
    )


@pytest.mark.parametrize("status", [429, 503, 409])
async def test_overload_or_server_error_on_any_item_retries_the_whole_batch(status: int) -> None:
    writer = FakeWriter([{"update": {"status": 200}}, {"update": {"status": status, "error": {"type": "x"}}}])
    batch = [record(TOPICS.raw, tweet(str(i)).model_dump_json().encode(), i) for i in (1, 2)]
    with pytest.raises(TransientError):
        await handler(writer)(batch)


async def test_batch_of_only_garbage_sends_no_bulk() -> None:
    writer = FakeWriter()
    dead = await handler(writer)([record(TOPICS.labels, None), record("t.other", b"{}")])
    assert writer.calls == []
    assert [d.topic for d in dead] == [TOPICS.dlq(TOPICS.labels), "t.other.dlq"]


async def test_ingest_trace_id_from_the_message_headers_is_stored() -> None:
    writer = FakeWriter()
    traced = ConsumerRecord(
        TOPICS.raw, 0, 0, 0, 0, b"1", tweet("1").model_dump_json().encode(), None, 0, 0,
        [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    )  # fmt: skip
    await handler(writer)([traced])
    assert writer.calls[0][1]["doc"]["trace"]["ingest"] == "0af7651916cd43dd8448eb211c80319c"


async def test_each_tweet_is_written_with_its_lexicon_score_and_labels_without() -> None:
    writer = FakeWriter()
    batch = [
        record(TOPICS.raw, tweet("1", text="a bad day").model_dump_json().encode(), 0, key=b"1"),
        record(TOPICS.raw, tweet("2", text="a fine day").model_dump_json().encode(), 1, key=b"2"),
        record(TOPICS.labels, emotion("1").model_dump_json().encode(), 0, key=b"1"),
    ]
    await handler(writer)(batch)
    (operations,) = writer.calls
    bodies = operations[1::2]
    assert bodies[0]["doc"]["lexicon"] == {"compound": -0.5, "model": "fake-lexicon-1"}
    assert bodies[1]["doc"]["lexicon"] == {"compound": 0.25, "model": "fake-lexicon-1"}
    assert list(bodies[2]["doc"]) == ["emotion"]  # a label write never touches the lexicon


async def test_a_batch_costs_one_bulk_and_writes_no_quality_of_its_own() -> None:
    """The writer offers nothing but ``bulk``: no read-back, no second write. The flags are
    judged where they are read (gateway.quality), so no write can fail on them."""
    writer = FakeWriter()
    batch = [
        record(TOPICS.raw, tweet("2").model_dump_json().encode(), 0, key=b"2"),
        record(TOPICS.labels, emotion("2").model_dump_json().encode(), 0, key=b"2"),
        record(TOPICS.labels, stance("1").model_dump_json().encode(), 1, key=b"1"),
        record(TOPICS.raw, b"{broken", 1, key=b"3"),  # dead-lettered before the write
    ]
    sut = handler(writer)
    dead = await sut(batch)
    assert len(dead) == 1 and len(writer.calls) == 1
    (operations,) = writer.calls
    assert [op["update"]["_id"] for op in operations[::2]] == ["2", "2", "1"]
    assert not any("quality" in body["doc"] for body in operations[1::2])
    assert sut.stats.indexed == 3
