"""The indexer handler's quality duties: a lexicon score on each tweet, a quality refresh after the bulk."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from common.errors import TransientError
from gateway.handlers import IndexBatchHandler
from tests.unit.gateway.factories import NOW, emotion, tweet
from tests.unit.gateway.test_handlers import TOPICS, FakeWriter, record

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeLexicon:
    model = "fake-lexicon-1"

    def compounds(self, texts: Sequence[str]) -> list[float]:
        return [-0.5 if "bad" in text else 0.25 for text in texts]


class FakeRefresher:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def refresh(self, tweet_ids: Sequence[str]) -> int:
        self.calls.append(list(tweet_ids))
        return len(tweet_ids)


def handler(writer: FakeWriter, refresher: FakeRefresher | None = None) -> IndexBatchHandler:
    return IndexBatchHandler(writer, "tweets", TOPICS, clock=lambda: NOW, lexicon=FakeLexicon(), quality=refresher)


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


async def test_quality_is_refreshed_once_per_touched_tweet_after_the_bulk() -> None:
    writer = FakeWriter()
    refresher = FakeRefresher()
    batch = [
        record(TOPICS.raw, tweet("2").model_dump_json().encode(), 0, key=b"2"),
        record(TOPICS.labels, emotion("2").model_dump_json().encode(), 0, key=b"2"),
        record(TOPICS.labels, emotion("1").model_dump_json().encode(), 1, key=b"1"),
        record(TOPICS.raw, b"{broken", 1, key=b"3"),  # dead-lettered: nothing to refresh
    ]
    dead = await handler(writer, refresher)(batch)
    assert len(dead) == 1
    assert refresher.calls == [["1", "2"]]


async def test_no_refresh_when_the_bulk_must_be_retried() -> None:
    writer = FakeWriter([{"update": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}])
    refresher = FakeRefresher()
    with pytest.raises(TransientError):
        await handler(writer, refresher)([record(TOPICS.raw, tweet("1").model_dump_json().encode())])
    assert refresher.calls == []
