"""The indexer's pure part: the documents and partial upserts it writes, and bulk item judging."""

from __future__ import annotations

import pytest

from gateway.documents import scores_from_stored
from gateway.indexer import logic
from gateway.indexer.logic import Outcome
from tests.unit.gateway.factories import NOW, emotion, stance, tweet


def test_tweet_operations_are_a_partial_upsert_keyed_by_tweet_id() -> None:
    doc = logic.tweet_doc(tweet(), indexed_at=NOW, ingest_trace_id="a" * 32, index_trace_id=None)
    header, body = logic.tweet_operations("tweets", doc)
    assert header["update"]["_id"] == "1790000000000000001"
    assert header["update"]["_index"] == "tweets"
    assert body["doc_as_upsert"] is True
    assert body["doc"]["trace"] == {"ingest": "a" * 32, "index": None}
    assert body["doc"]["created_at"] == "2024-03-01T08:30:00Z"
    assert "emotion" not in body["doc"] and "stance" not in body["doc"]  # labels are never clobbered


def test_label_operations_write_only_their_task_sub_object() -> None:
    doc = logic.label_doc(stance(job_id="job1"))
    header, body = logic.label_operations("tweets", "1790000000000000001", "stance", doc)
    assert header["update"]["_id"] == "1790000000000000001"
    assert list(body["doc"]) == ["stance"]
    assert body["doc_as_upsert"] is True
    assert body["doc"]["stance"]["job_id"] == "job1"
    assert "valence" not in body["doc"]["stance"]


def test_label_doc_sends_every_field_so_an_update_replaces_the_previous_verdict() -> None:
    doc = logic.label_doc(emotion(scores={"anger": 0.9}, label="anger", score=0.9, valence=None))
    assert set(doc) == set(logic.LABEL_FIELDS) - {"target"}  # emotion is toward no target
    assert doc["valence"] is None
    # a list is replaced wholesale by a partial update; a dict would keep the stale "joy" key
    assert doc["scores"] == [{"label": "anger", "score": 0.9}]
    assert scores_from_stored(doc["scores"]) == {"anger": 0.9}  # what the API reads back


def test_stance_label_doc_carries_its_target_and_sends_none_to_replace_an_old_one() -> None:
    doc = logic.label_doc(stance(target="the budget"))
    assert set(doc) == set(logic.LABEL_FIELDS) - {"valence"}
    assert doc["target"] == "the budget"
    # an event from an older producer has no target: null is sent, so a stale target is not kept
    assert logic.label_doc(stance())["target"] is None
    assert "target" not in logic.label_doc(emotion())
    _, body = logic.label_operations("tweets", "1790000000000000001", "stance", doc)
    assert body["doc"]["stance"]["target"] == "the budget"


def test_label_trace_id_falls_back_to_the_propagated_header() -> None:
    assert logic.label_doc(emotion(trace_id="b" * 32), header_trace_id="c" * 32)["trace_id"] == "b" * 32
    assert logic.label_doc(emotion(), header_trace_id="c" * 32)["trace_id"] == "c" * 32


def _item(status: int, kind: str | None = None, reason: str = "") -> dict[str, dict[str, object]]:
    answer: dict[str, object] = {"status": status}
    if kind is not None:
        answer["error"] = {"type": kind, "reason": reason}
    return {"update": answer}


# Only an error about the document itself is dead-lettered; one about the cluster is waited out.
JUDGEMENTS = [
    (_item(201), Outcome.STORED, ""),
    (_item(200), Outcome.STORED, ""),
    (_item(400, "document_parsing_exception"), Outcome.REJECTED, ""),
    (_item(400, "mapper_parsing_exception"), Outcome.REJECTED, ""),
    (_item(400, "strict_dynamic_mapping_exception"), Outcome.REJECTED, ""),
    (_item(400, "illegal_argument_exception"), Outcome.REJECTED, ""),
    (_item(409, "version_conflict_engine_exception"), Outcome.CONFLICT, ""),
    (_item(404, "document_missing_exception"), Outcome.CONFLICT, ""),
    (_item(404, "index_not_found_exception"), Outcome.RETRY, "index_missing"),
    (_item(403, "cluster_block_exception", "blocked by: [FORBIDDEN/8/index write (api)];"), Outcome.RETRY,
     "write_block"),
    (_item(429, "cluster_block_exception", "[TOO_MANY_REQUESTS/12/index read-only / allow delete (api)]"),
     Outcome.RETRY, "read_only"),
    (_item(403, "cluster_block_exception", "read-only-allow-delete block"), Outcome.RETRY, "read_only"),
    (_item(401, "security_exception"), Outcome.RETRY, "auth"),
    (_item(403, "security_exception"), Outcome.RETRY, "auth"),
    (_item(403), Outcome.RETRY, "auth"),
    (_item(429, "es_rejected_execution_exception"), Outcome.RETRY, "overloaded"),
    (_item(429, "circuit_breaking_exception"), Outcome.RETRY, "overloaded"),
    (_item(400, "index_closed_exception"), Outcome.RETRY, "index_closed"),
    (_item(503, "unavailable_shards_exception"), Outcome.RETRY, "unavailable"),
    (_item(500, "exception"), Outcome.RETRY, "unavailable"),
    (_item(408), Outcome.RETRY, "unavailable"),
]  # fmt: skip


@pytest.mark.parametrize(("item", "outcome", "blocked"), JUDGEMENTS)
def test_judge_bulk_item(item: dict[str, dict[str, object]], outcome: Outcome, blocked: str) -> None:
    result = logic.judge_bulk_item(item)
    assert (result.outcome, result.blocked) == (outcome, blocked)
    if outcome is not Outcome.STORED:
        assert result.reason
