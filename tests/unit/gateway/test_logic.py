from __future__ import annotations

import json

import pytest

from common.errors import PermanentError
from gateway import logic
from gateway.logic import Outcome
from gateway.schemas import TweetPublic
from tests.unit.gateway.factories import NOW, emotion, stance, stored, tweet

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_decode_tweet_round_trips_and_keeps_64_bit_id() -> None:
    record = tweet("9223372036854775807")
    assert logic.decode_tweet(record.model_dump_json().encode()) == record


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "empty_message"),
        (b"not json", "invalid_tweet:message"),
        (b'{"id": 1.5}', "invalid_tweet:id"),
        (b"\xff\xfe", "invalid_tweet:message"),
    ],
)
def test_decode_tweet_rejects_garbage_with_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(PermanentError) as caught:
        logic.decode_tweet(value)
    assert caught.value.reason == reason


def test_decode_label_rejects_a_label_of_the_wrong_task() -> None:
    bad = emotion().model_dump(mode="json") | {"label": "SUPPORT"}
    with pytest.raises(PermanentError) as caught:
        logic.decode_label(json.dumps(bad).encode())
    assert caught.value.reason.startswith("invalid_label:")
    assert "SUPPORT" in caught.value.detail


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
    assert logic.scores_from_stored(doc["scores"]) == {"anger": 0.9}


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


def test_trace_id_from_headers_reads_w3c_traceparent() -> None:
    assert logic.trace_id_from_headers([("traceparent", TRACEPARENT.encode())]) == TRACEPARENT.split("-")[1]
    assert logic.trace_id_from_headers([("job-id", b"x")]) is None
    assert logic.trace_id_from_headers(None) is None


@pytest.mark.parametrize(
    ("item", "outcome"),
    [
        ({"update": {"status": 201}}, Outcome.STORED),
        ({"update": {"status": 200}}, Outcome.STORED),
        ({"update": {"status": 400, "error": {"type": "document_parsing_exception"}}}, Outcome.REJECTED),
        ({"update": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}}, Outcome.RETRY),
        ({"update": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}, Outcome.RETRY),
        ({"update": {"status": 503, "error": {"type": "unavailable_shards_exception"}}}, Outcome.RETRY),
    ],
)
def test_judge_bulk_item(item: dict[str, dict[str, object]], outcome: Outcome) -> None:
    result = logic.judge_bulk_item(item)
    assert result.outcome is outcome
    if outcome is not Outcome.STORED:
        assert result.reason


def test_tweet_record_is_rebuilt_exactly_from_the_stored_document() -> None:
    record = tweet("9223372036854775806")
    assert logic.tweet_record_from_source(stored(record, emotion("9223372036854775806"))) == record


def test_public_tweet_from_a_stored_document() -> None:
    source = stored(tweet(), emotion(), stance(), ingest_trace_id="d" * 32)
    public = TweetPublic.from_source(source, jaeger_ui_url="http://jaeger:16686/")
    assert public.id == "1790000000000000001"
    assert public.emotion is not None and public.emotion.scores == {"joy": 0.8, "anger": 0.2}
    assert public.emotion.valence == 0.6
    assert public.stance is not None and public.stance.label == "SUPPORT"
    assert public.stance.target is None
    targeted = TweetPublic.from_source(stored(tweet(), stance(target="main subject")), jaeger_ui_url="x")
    assert targeted.stance is not None and targeted.stance.target == "main subject"
    assert public.trace_url == "http://jaeger:16686/trace/" + "d" * 32
    assert TweetPublic.from_source(stored(tweet()), jaeger_ui_url="x").trace_url is None
