"""Newest label wins (gateway.indexer.logic.plan): which label events a batch writes, and how."""

from __future__ import annotations

from datetime import datetime, timedelta

from common.tweet_store import Versioned
from gateway.indexer.logic import LabelWrite, label_doc, newest_per_task, plan, stored_produced_at
from tests.unit.gateway.factories import NOW, emotion

EARLIER, LATER = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)


def write(tweet_id: str = "1", task: str = "emotion", produced_at: datetime = NOW, source: int = 0) -> LabelWrite:
    return LabelWrite(tweet_id, task, produced_at, {"label": f"{task}@{source}"}, source)


def stored(seq_no: int = 7, **produced: str) -> Versioned:
    return Versioned(seq_no, 2, {task: {"produced_at": at} for task, at in produced.items()})


def test_newest_per_tweet_and_task_by_produced_at_not_by_arrival() -> None:
    newer, older, other_task, other_tweet = (
        write(produced_at=LATER),
        write(source=1),
        write(task="stance", source=2),
        write("2", source=3),
    )
    kept, dropped = newest_per_task([newer, older, other_task, other_tweet])
    assert kept == [newer, other_task, other_tweet] and dropped == [older]


def test_of_equal_produced_at_the_later_in_the_batch_wins() -> None:
    first, second = write(source=0), write(source=1)
    assert newest_per_task([first, second]) == ([second], [first])


def test_a_missing_document_is_created_so_a_concurrent_creator_makes_it_conflict() -> None:
    docs, stale = plan("tweets", [write(), write(task="stance", source=1)], {})
    ((doc,),) = [docs]
    assert stale == [] and doc.operations[0] == {"create": {"_index": "tweets", "_id": "1"}}
    assert doc.operations[1] == {"emotion": {"label": "emotion@0"}, "stance": {"label": "stance@1"}}


def test_an_existing_document_is_updated_only_if_still_at_the_version_read() -> None:
    (doc,), _ = plan("tweets", [write(produced_at=LATER)], {"1": stored(emotion=NOW.isoformat())})
    header, body = doc.operations
    assert header == {"update": {"_index": "tweets", "_id": "1", "if_seq_no": 7, "if_primary_term": 2}}
    assert body == {"doc": {"emotion": {"label": "emotion@0"}}}


def test_a_label_older_than_the_stored_one_is_stale_and_the_other_task_still_written() -> None:
    current = {"1": stored(emotion=NOW.isoformat())}
    docs, stale = plan("tweets", [write(produced_at=EARLIER), write(task="stance", source=1)], current)
    assert [w.source for w in stale] == [0]
    assert [list(d.operations[1]["doc"]) for d in docs] == [["stance"]]


def test_of_equal_produced_at_the_later_to_arrive_is_written() -> None:
    docs, stale = plan("tweets", [write()], {"1": stored(emotion=NOW.isoformat())})
    assert stale == [] and [d.operations[1] for d in docs] == [{"doc": {"emotion": {"label": "emotion@0"}}}]


def test_stored_produced_at_reads_what_the_indexer_stores_and_tolerates_the_rest() -> None:
    source = {"emotion": label_doc(emotion(produced_at=NOW)), "stance": {"produced_at": "not a date"}}
    assert stored_produced_at(source, "emotion") == NOW
    assert stored_produced_at(source, "stance") is None
    assert stored_produced_at({"emotion": {"produced_at": "2024-05-01T12:00:00"}}, "emotion") is None  # naive
    assert stored_produced_at({}, "emotion") is None
