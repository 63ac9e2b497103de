"""The indexer's batch handler against an in-memory store (``fakes.FakeStore``): one bulk per
batch (plus one read when it holds labels), newest label wins, dead letters only for a document's
own errors, and a systemic refusal retried without dead-lettering; no server."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from common.errors import TransientError
from common.events import DeadLetter, LabelEvent
from common.topics import Topics
from common.tweet_store import StoreUnavailable
from gateway.indexer.blocking import BLOCKED, BlockedTime
from gateway.indexer.handlers import CONFLICT_ROUNDS, IndexBatchHandler
from gateway.indexer.logic import label_doc
from tests.unit.gateway.factories import NOW, emotion, stance, tweet
from tests.unit.gateway.indexer.fakes import FakeStore

TOPICS = Topics("t.")
EARLIER, LATER = NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)


# one event loop for the whole session, as the async fixtures (see pyproject)
pytestmark = pytest.mark.asyncio(loop_scope="session")


def record(topic: str, value: bytes | None, offset: int = 0, key: bytes | None = b"1") -> ConsumerRecord:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0, 0, [])


def raw(tweet_id: str, offset: int = 0, **fields: Any) -> ConsumerRecord:
    return record(TOPICS.raw, tweet(tweet_id, **fields).model_dump_json().encode(), offset, tweet_id.encode())


def labelled(event: LabelEvent, offset: int = 0) -> ConsumerRecord:
    return record(TOPICS.labels, event.model_dump_json().encode(), offset, event.tweet_id.encode())


class FakeLexicon:
    model = "fake-lexicon-1"

    def compounds(self, texts: Sequence[str]) -> list[float]:
        return [-0.5 if "bad" in text else 0.25 for text in texts]


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def handler(store: FakeStore, ticks: Ticks | None = None) -> IndexBatchHandler:
    blocked = BlockedTime(clock=ticks or Ticks())
    return IndexBatchHandler(store, "tweets", TOPICS, clock=lambda: NOW, lexicon=FakeLexicon(), blocked=blocked)


def actions(operations: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(action, meta["_id"]) for header in operations[::2] for action, meta in header.items()]


async def test_tweets_and_labels_become_one_read_and_one_bulk_and_nothing_is_dead_lettered() -> None:
    store = FakeStore()
    sut = handler(store)
    assert await sut([raw("1"), labelled(emotion("1"))]) == []
    assert store.reads == [["1"]] and len(store.calls) == 1
    # the label write goes first (the document was missing: create), the tweet upsert merges into it
    assert actions(store.calls[0]) == [("create", "1"), ("update", "1")]
    assert store.docs["1"][1]["emotion"]["label"] == "joy" and store.docs["1"][1]["text"]
    assert sut.stats.indexed == 2


async def test_a_tweet_only_batch_reads_nothing() -> None:
    store = FakeStore()
    await handler(store)([raw("1"), raw("2", 1)])
    assert store.reads == [] and len(store.calls) == 1


async def test_undecodable_message_is_dead_lettered_and_the_rest_is_written() -> None:
    store = FakeStore()
    dead = await handler(store)([record(TOPICS.raw, b"{broken", 7, key=b"k"), raw("2", 8)])
    assert len(store.calls[0]) == 2  # only the valid tweet
    (letter,) = dead
    assert letter.topic == TOPICS.dlq(TOPICS.raw)
    event = DeadLetter.model_validate_json(letter.value)
    assert (event.offset, event.reason, event.key, event.value) == (7, "invalid_tweet:message", "k", "{broken")
    assert ("error-class", b"PermanentError") in letter.headers


async def test_item_rejected_for_its_own_fields_is_dead_lettered_with_its_reason() -> None:
    rejected = {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "likes"}}}
    store = FakeStore([rejected, {"update": {"status": 201}}])
    (letter,) = await handler(store)([raw("1"), labelled(emotion("1"), 5)])
    event = DeadLetter.model_validate_json(letter.value)
    assert letter.topic == TOPICS.dlq(TOPICS.labels)
    assert event.offset == 5 and event.reason == "elasticsearch_rejected"
    assert "document_parsing_exception" in event.detail


SYSTEMIC_ITEMS = [  # (status, error) of a bulk item → the reason the batch is retried
    (403, {"type": "cluster_block_exception", "reason": "index [t] blocked by: [FORBIDDEN/8/index write (api)];"}),
    (
        429,
        {"type": "cluster_block_exception", "reason": "blocked by: [TOO_MANY_REQUESTS/12/... read-only-allow-delete"},
    ),
    (401, {"type": "security_exception", "reason": "missing authentication credentials"}),
    (403, {"type": "security_exception", "reason": "action [indices:data/write/bulk[s]] is unauthorized"}),
    (429, {"type": "es_rejected_execution_exception", "reason": "rejected execution"}),
    (503, {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}),
    (500, {"type": "exception", "reason": "boom"}),
]


@pytest.mark.parametrize(("status", "error"), SYSTEMIC_ITEMS)
async def test_a_systemic_error_on_any_item_retries_the_whole_batch_and_dead_letters_nothing(
    status: int, error: dict[str, str]
) -> None:
    store = FakeStore([{"update": {"status": 200}}, {"update": {"status": status, "error": error}}])
    sut = handler(store)
    with pytest.raises(StoreUnavailable) as raised:
        await sut([raw("1"), raw("2", 1)])
    assert raised.value.reason == sut.blocked.reason
    assert BLOCKED.labels(raised.value.reason)._value.get() == 1
    assert sut.stats.dead_lettered == 0


async def test_blocked_time_is_counted_from_the_first_refusal_until_a_batch_is_stored() -> None:
    ticks = Ticks()
    store = FakeStore()
    sut = handler(store, ticks)

    async def refused(*_: Any) -> list[dict[str, Any]]:
        raise StoreUnavailable("write_block", "403 cluster_block_exception")

    store.bulk = refused  # type: ignore[method-assign]  # every request refused, as under a write block
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await sut([raw("1")])
        ticks.now += 10
    assert sut.blocked.total_s == 20 and sut.blocked.reason == "write_block"
    del store.bulk  # the block is lifted
    assert await sut([raw("1")]) == []
    assert sut.blocked.total_s == 30 and sut.blocked.reason is None
    assert BLOCKED.labels("write_block")._value.get() == 0


async def test_a_tweet_upsert_still_conflicting_is_retried_but_is_no_block() -> None:
    store = FakeStore([{"update": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}])
    sut = handler(store)
    with pytest.raises(TransientError) as raised:
        await sut([raw("1")])
    assert not isinstance(raised.value, StoreUnavailable) and sut.blocked.reason is None


async def test_a_label_older_than_the_stored_one_is_dropped_not_written_nor_dead_lettered() -> None:
    store = FakeStore()
    store.put("1", {"emotion": label_doc(emotion("1", label="anger", produced_at=LATER))})
    sut = handler(store)
    # a re-drive of the original label, and a re-label that overtook it
    assert await sut([labelled(emotion("1", produced_at=EARLIER)), labelled(emotion("1", produced_at=NOW), 1)]) == []
    assert store.calls == []  # nothing left to write
    assert store.docs["1"][1]["emotion"]["label"] == "anger"
    assert sut.stats.stale == 2 and sut.stats.dead_lettered == 0


async def test_a_newer_label_is_written_conditionally_on_the_version_read() -> None:
    store = FakeStore()
    store.put("1", {"id": "1", "emotion": label_doc(emotion("1", produced_at=EARLIER))})
    seq_no = store.docs["1"][0]
    await handler(store)([labelled(emotion("1", label="anger", produced_at=LATER))])
    ((header, body),) = [store.calls[0]]
    assert header["update"]["if_seq_no"] == seq_no and header["update"]["if_primary_term"] == 1
    assert "retry_on_conflict" not in header["update"] and "doc_as_upsert" not in body
    assert store.docs["1"][1]["emotion"]["label"] == "anger" and store.docs["1"][1]["id"] == "1"


async def test_within_a_batch_the_newest_per_tweet_and_task_wins_and_tasks_share_one_write() -> None:
    store = FakeStore()
    sut = handler(store)
    batch = [
        labelled(emotion("1", label="anger", produced_at=LATER)),
        labelled(emotion("1", label="joy", produced_at=EARLIER), 1),  # committed later, produced earlier
        labelled(stance("1"), 2),
    ]
    await sut(batch)
    (operations,) = store.calls
    assert actions(operations) == [("create", "1")]
    assert set(operations[1]) == {"emotion", "stance"}
    assert store.docs["1"][1]["emotion"]["label"] == "anger"
    assert sut.stats.stale == 1 and sut.stats.indexed == 2


async def test_a_write_that_lost_a_race_to_a_newer_label_is_re_read_and_dropped() -> None:
    store = FakeStore()
    store.put("1", {"id": "1"})

    def newer_arrives(fake: FakeStore) -> None:  # another replica writes between our read and write
        if len(fake.calls) == 1:
            fake.put("1", {"emotion": label_doc(emotion("1", label="anger", produced_at=LATER))})

    store.before_bulk = newer_arrives
    sut = handler(store)
    assert await sut([labelled(emotion("1", produced_at=NOW))]) == []
    assert store.reads == [["1"], ["1"]] and len(store.calls) == 1  # the re-read found it stale
    assert store.docs["1"][1]["emotion"]["label"] == "anger" and sut.stats.stale == 1


async def test_a_create_that_lost_a_race_to_another_creator_keeps_both_writes() -> None:
    store = FakeStore()

    def tweet_arrives(fake: FakeStore) -> None:  # another replica indexes the tweet meanwhile
        if len(fake.calls) == 1:
            fake.put("1", {"id": "1", "text": "hello"})

    store.before_bulk = tweet_arrives
    await handler(store)([labelled(emotion("1"))])
    assert [actions(ops) for ops in store.calls] == [[("create", "1")], [("update", "1")]]
    assert store.docs["1"][1]["text"] == "hello" and store.docs["1"][1]["emotion"]["label"] == "joy"


async def test_conflicts_are_retried_a_bounded_number_of_times_then_the_batch_is_retried() -> None:
    store = FakeStore()
    store.put("1", {"id": "1"})
    store.before_bulk = lambda fake: fake.put("1", {"review": {"status": "seen"}})  # a writer that always wins
    with pytest.raises(TransientError, match="still conflict"):
        await handler(store)([labelled(emotion("1")), raw("2", 1)])
    assert len(store.calls) == 1 + CONFLICT_ROUNDS and len(store.reads) == 1 + CONFLICT_ROUNDS
    assert actions(store.calls[0]) == [("update", "1"), ("update", "2")]  # tweets are sent once
    assert all(actions(ops) == [("update", "1")] for ops in store.calls[1:])


async def test_batch_of_only_garbage_sends_nothing() -> None:
    store = FakeStore()
    dead = await handler(store)([record(TOPICS.labels, None), record("t.other", b"{}")])
    assert store.calls == [] and store.reads == []
    assert [d.topic for d in dead] == [TOPICS.dlq(TOPICS.labels), "t.other.dlq"]


async def test_ingest_trace_id_from_the_message_headers_is_stored() -> None:
    store = FakeStore()
    traced = ConsumerRecord(
        TOPICS.raw, 0, 0, 0, 0, b"1", tweet("1").model_dump_json().encode(), None, 0, 0,
        [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    )  # fmt: skip
    await handler(store)([traced])
    assert store.calls[0][1]["doc"]["trace"]["ingest"] == "0af7651916cd43dd8448eb211c80319c"


async def test_each_tweet_is_written_with_its_lexicon_score_and_labels_without() -> None:
    store = FakeStore()
    await handler(store)([raw("1", text="a bad day"), raw("2", 1, text="a fine day"), labelled(emotion("1"))])
    (operations,) = store.calls
    by_action = dict(zip(actions(operations), operations[1::2], strict=True))
    assert by_action[("update", "1")]["doc"]["lexicon"] == {"compound": -0.5, "model": "fake-lexicon-1"}
    assert by_action[("update", "2")]["doc"]["lexicon"] == {"compound": 0.25, "model": "fake-lexicon-1"}
    assert list(by_action[("create", "1")]) == ["emotion"]  # a label write never touches the lexicon


async def test_a_batch_costs_one_read_and_one_bulk_and_writes_no_quality_of_its_own() -> None:
    """No read-back, no second write. The flags are judged where they are read
    (gateway.quality), so no write can fail on them."""
    store = FakeStore()
    batch = [raw("2"), labelled(emotion("2")), labelled(stance("1"), 1), record(TOPICS.raw, b"{broken", 1, key=b"3")]
    sut = handler(store)
    dead = await sut(batch)
    assert len(dead) == 1 and len(store.calls) == 1 and store.reads == [["1", "2"]]
    (operations,) = store.calls
    assert actions(operations) == [("create", "2"), ("create", "1"), ("update", "2")]
    assert not any("quality" in body.get("doc", body) for body in operations[1::2])
    assert sut.stats.indexed == 3
