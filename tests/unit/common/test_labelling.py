"""The one label handler both labelling services run (common.labelling.LabelHandler)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pytest
from aiokafka import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from common.errors import PermanentError
from common.events import (
    EMOTION_LABELS,
    JOB_ID_HEADER,
    STANCE_LABELS,
    STANCE_TARGET_HEADER,
    Author,
    DeadLetter,
    LabelEvent,
    TweetRecord,
    decode_tweet,
    header_text,
)
from common.labelling import LabelHandler, LabelRequest, LabelResult, Task
from common.telemetry import trace_id_from_headers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class FakeLabeller:
    """Labels every tweet ``joy``, except texts named in ``reject`` (a per-tweet permanent error)."""

    def __init__(
        self,
        reject: Sequence[str] = (),
        fail: Exception | None = None,
        drop_one: bool = False,
        result: LabelResult | None = None,
        service: Task = "emotion",
    ) -> None:
        self.service = service
        self.reject = set(reject)
        self.fail = fail
        self.drop_one = drop_one
        self.result = result or LabelResult({label: 0.9 if label == "joy" else 0.0 for label in EMOTION_LABELS},
                                            "fake/model")
        self.seen: list[list[LabelRequest]] = []

    def span_attributes(self) -> Mapping[str, str]:
        return {"model": "fake/model"}

    async def infer(self, requests: Sequence[LabelRequest]) -> list[LabelResult | PermanentError]:
        self.seen.append(list(requests))
        if self.fail is not None:
            raise self.fail
        results: list[LabelResult | PermanentError] = [
            PermanentError("too_odd", r.tweet.text) if r.tweet.text in self.reject else self.result for r in requests
        ]
        return results[:-1] if self.drop_one else results


def _tweet_bytes(tweet_id: str, text: str = "fine day") -> bytes:
    return TweetRecord(
        id=tweet_id, author=Author(handle="a"), created_at=datetime(2024, 1, 1, tzinfo=UTC), text=text, source="s"
    ).model_dump_json().encode()


def _record(offset: int, value: bytes, headers: list[tuple[str, bytes]] | None = None) -> ConsumerRecord:
    return ConsumerRecord(
        topic="t.tweets.raw", partition=1, offset=offset, timestamp=0, timestamp_type=0, key=b"k", value=value,
        checksum=None, serialized_key_size=1, serialized_value_size=len(value), headers=headers or [],
    )


async def test_one_inference_call_per_batch_and_one_label_per_tweet_in_order() -> None:
    labeller = FakeLabeller()
    out = await LabelHandler(labeller, "t.tweets.labels")(
        [_record(0, _tweet_bytes("9223372036854775807")), _record(1, _tweet_bytes("12"))]
    )
    assert len(labeller.seen) == 1
    assert [m.topic for m in out] == ["t.tweets.labels"] * 2
    assert [m.key for m in out] == ["9223372036854775807", "12"]  # keyed by the exact 64-bit id
    events = [LabelEvent.model_validate_json(m.value or b"") for m in out]
    assert [e.tweet_id for e in events] == ["9223372036854775807", "12"]


async def test_undecodable_messages_are_dead_lettered_with_their_reason_and_the_rest_labelled() -> None:
    labeller = FakeLabeller()
    out = await LabelHandler(labeller, "t.tweets.labels")(
        [_record(0, b""), _record(1, _tweet_bytes("12")), _record(2, b"{not json")]
    )
    assert [m.topic for m in out] == ["t.tweets.raw.dlq", "t.tweets.raw.dlq", "t.tweets.labels"]
    letters = [DeadLetter.model_validate_json(m.value or b"") for m in out[:2]]
    assert [(d.service, d.offset, d.reason) for d in letters] == [
        ("emotion", 0, "empty_message"), ("emotion", 2, "invalid_tweet:message")
    ]
    assert [r.tweet.id for r in labeller.seen[0]] == ["12"]


async def test_a_batch_of_only_bad_messages_never_calls_the_model() -> None:
    labeller = FakeLabeller()
    out = await LabelHandler(labeller, "labels")([_record(0, b"x")])
    assert labeller.seen == []
    assert [m.topic for m in out] == ["t.tweets.raw.dlq"]


async def test_a_per_tweet_permanent_error_dead_letters_only_that_tweet() -> None:
    out = await LabelHandler(FakeLabeller(reject=["odd"]), "labels")(
        [_record(0, _tweet_bytes("1", "odd")), _record(1, _tweet_bytes("2"))]
    )
    assert [m.topic for m in out] == ["t.tweets.raw.dlq", "labels"]
    assert DeadLetter.model_validate_json(out[0].value or b"").reason == "too_odd"


async def test_a_model_failure_propagates_to_the_delivery_loop() -> None:
    with pytest.raises(RuntimeError, match="model down"):
        await LabelHandler(FakeLabeller(fail=RuntimeError("model down")), "labels")([_record(0, _tweet_bytes("1"))])


async def test_a_labeller_that_loses_a_result_fails_the_batch_instead_of_misaligning_labels() -> None:
    with pytest.raises(RuntimeError, match="1 results for 2 tweets"):
        await LabelHandler(FakeLabeller(drop_one=True), "labels")(
            [_record(0, _tweet_bytes("1")), _record(1, _tweet_bytes("2"))]
        )


async def test_job_id_and_target_headers_reach_the_labeller_and_garbled_bytes_do_not_cost_the_label() -> None:
    labeller = FakeLabeller()
    out = await LabelHandler(labeller, "labels")([
        _record(0, _tweet_bytes("1"), [(JOB_ID_HEADER, b"job-7"), (STANCE_TARGET_HEADER, "la réforme".encode())]),
        _record(1, _tweet_bytes("2"), [(JOB_ID_HEADER, b"job-\xff")]),
        _record(2, _tweet_bytes("3")),
    ])
    requests = labeller.seen[0]
    assert [(r.job_id, r.target) for r in requests] == [("job-7", "la réforme"), ("job-\ufffd", None), (None, None)]
    assert [LabelEvent.model_validate_json(m.value or b"").job_id for m in out] == ["job-7", "job-\ufffd", None]


async def test_each_label_continues_its_tweets_trace_and_the_batch_span_links_to_the_traced_tweets() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    labeller = FakeLabeller()
    out = await LabelHandler(labeller, "labels", provider.get_tracer("test"))(
        [_record(0, _tweet_bytes("1"), [("traceparent", TRACEPARENT.encode())]), _record(1, _tweet_bytes("2"))]
    )
    trace_ids = [LabelEvent.model_validate_json(m.value or b"").trace_id for m in out]
    assert trace_ids[0] == TRACE_ID
    assert trace_id_from_headers(out[0].headers) == TRACE_ID  # the label message carries the tweet's trace
    assert trace_ids[1] not in (None, TRACE_ID)  # a tweet without a trace starts its own
    spans = {span.name: span for span in exporter.get_finished_spans() if span.name != "emotion label"}
    labels = [span for span in exporter.get_finished_spans() if span.name == "emotion label"]
    batch = spans["emotion inference"]
    # one link per tweet that arrived with a trace (the second had none to link to)
    assert [format(link.context.trace_id, "032x") for link in batch.links] == [TRACE_ID]
    assert format(labels[0].context.trace_id, "032x") == TRACE_ID
    assert format(labels[1].context.trace_id, "032x") == trace_ids[1]
    assert all(span.links[0].context.span_id == batch.context.span_id for span in labels)
    assert [span.attributes["tweet.id"] for span in labels] == ["1", "2"]


async def test_the_event_names_the_top_score_of_the_tasks_labels_rounded_with_the_labellers_fields() -> None:
    labeller = FakeLabeller(result=LabelResult(
        {"NEUTRAL": 0.3, "SUPPORT": 0.35000004, "OPPOSE": 0.35000004}, "m.gguf", provider="llamacpp",
        prompt_version="v5", method="probe-h3", target="the new tax",
    ), service="stance")
    [message] = await LabelHandler(labeller, "labels")([_record(0, _tweet_bytes("7"), [(JOB_ID_HEADER, b"j")])])
    event = LabelEvent.model_validate_json(message.value or b"")
    assert list(event.scores) == list(STANCE_LABELS)  # the task's order, whatever the labeller's
    assert event.scores == {"SUPPORT": 0.35, "OPPOSE": 0.35, "NEUTRAL": 0.3}
    assert (event.task, event.label, event.score) == ("stance", "SUPPORT", 0.35)  # the first of equals
    assert (event.model, event.provider, event.prompt_version, event.method, event.target) == (
        "m.gguf", "llamacpp", "v5", "probe-h3", "the new tax"
    )
    assert (event.tweet_id, event.job_id, event.valence, event.model_revision) == ("7", "j", None, None)


async def test_a_score_a_hair_outside_zero_to_one_is_clamped() -> None:
    scores = {label: 0.0 for label in EMOTION_LABELS} | {"joy": 1.0000004, "fear": -1e-9}
    [message] = await LabelHandler(FakeLabeller(result=LabelResult(scores, "m", valence=0.5)), "labels")(
        [_record(0, _tweet_bytes("1"))]
    )
    event = LabelEvent.model_validate_json(message.value or b"")
    assert (event.label, event.score, event.scores["fear"], event.valence) == ("joy", 1.0, 0.0, 0.5)


def test_decode_tweet_keeps_64_bit_ids_exact_and_names_what_is_wrong() -> None:
    assert decode_tweet(_tweet_bytes("9223372036854775807")).id == "9223372036854775807"
    for value, reason in ((b"", "empty_message"), (None, "empty_message"), (b"\xff\xfe", "invalid_tweet:message")):
        with pytest.raises(PermanentError) as caught:
            decode_tweet(value)
        assert caught.value.reason == reason
    with pytest.raises(PermanentError) as missing:
        decode_tweet(b'{"id": "1", "author": {"handle": "a"}, "created_at": "2024-01-01T00:00:00Z", "source": "x"}')
    assert missing.value.reason == "invalid_tweet:text"


def test_header_text_reads_utf8_and_treats_absent_or_empty_as_none() -> None:
    headers = [("a", "é".encode()), ("b", b""), ("c", b"\xff")]
    assert [header_text(headers, name) for name in ("a", "b", "c", "d")] == ["é", None, "\ufffd", None]
    assert header_text(None, "a") is None
