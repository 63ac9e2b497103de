"""The replay loop with an in-memory publisher (the real Kafka path is in tests/integration)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Tracer

from common.events import RejectedRecord, TweetRecord
from common.kafka import OutgoingMessage
from common.topics import Topics
from ingestor.checkpoint import Cursor, Mark
from ingestor.replay import Replay
from ingestor.source import open_source

SAMPLE = Path(__file__).parents[3] / "data" / "sample_tweets.json"
FIXTURES = Path(__file__).parent / "fixtures"
TOPICS = Topics("t.")


class RecordingPublisher:
    def __init__(self) -> None:
        self.batches: list[list[OutgoingMessage]] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.batches.append(list(messages))

    def on(self, topic: str) -> list[OutgoingMessage]:
        return [m for batch in self.batches for m in batch if m.topic == topic]


async def test_sample_replay_reconciles_and_rejects_duplicates() -> None:
    publisher = RecordingPublisher()
    summary = await Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=8).run()
    assert (summary.read, summary.valid, summary.duplicates, summary.published, summary.rejected) == (45, 41, 1, 40, 5)
    assert summary.rejected_by_reason == {
        "missing_field:text": 1,
        "invalid_date:created_at": 1,
        "invalid_type:id": 1,
        "empty_field:text": 1,
        "duplicate_id": 1,
    }
    assert summary.reconciles and summary.errors == [] and summary.format == "nested"
    raw = publisher.on("t.tweets.raw")
    assert len({m.key for m in raw}) == len(raw) == 40
    for message in raw:
        assert TweetRecord.model_validate_json(message.value).id == message.key
    rejects = [RejectedRecord.model_validate_json(m.value) for m in publisher.on("t.tweets.rejected")]
    duplicate = next(r for r in rejects if r.reason == "duplicate_id")
    assert duplicate.position == "record 23" and json.loads(duplicate.raw)["id"] == 1921567810453299200
    assert max(len(batch) for batch in publisher.batches) == 8


async def test_limit_counts_records_read() -> None:
    publisher = RecordingPublisher()
    summary = await Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=4, limit=11).run()
    assert summary.read == 11 and summary.published == 10 and summary.rejected == 1
    assert summary.reconciles


async def test_truncated_file_is_reported_as_an_error() -> None:
    summary = await Replay(open_source(str(FIXTURES / "truncated.json")), RecordingPublisher(), TOPICS).run()
    assert (summary.read, summary.published, summary.rejected) == (7, 6, 1)
    assert len(summary.errors) == 1 and "record 7" in summary.errors[0]


async def test_rate_limit_flushes_partial_batches_instead_of_holding_them() -> None:
    publisher = RecordingPublisher()
    replay = Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=500, limit=6, rate=1000)
    summary = await replay.run()
    assert summary.read == 6
    # At 1,000/s the bucket holds 100: six records go out as one batch. At 50/s it holds 5, so
    # the sixth record waits, and the five before it are flushed instead of held back.
    assert len(publisher.batches) == 1
    slow = RecordingPublisher()
    await Replay(open_source(str(SAMPLE)), slow, TOPICS, batch_size=500, limit=7, rate=50).run()
    assert len(slow.batches) >= 2 and sum(len(b) for b in slow.batches) == 7


async def test_stopping_ends_the_run_with_a_summary() -> None:
    stopping = asyncio.Event()
    stopping.set()
    summary = await Replay(open_source(str(SAMPLE)), RecordingPublisher(), TOPICS, stopping=stopping).run()
    assert summary.read == 0 and summary.reconciles


async def test_publish_failures_propagate() -> None:
    replay = Replay(open_source(str(SAMPLE)), FailingPublisher(ok=0), TOPICS)
    try:
        await replay.run()
    except ConnectionError:
        pass
    else:
        raise AssertionError("a failed publish must not be swallowed")
    assert replay.summary.published == 0


async def test_prometheus_counters_follow_the_summary() -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"service": "ingestor", **labels}) or 0.0

    before = (
        sample("pipeline_records_produced_total", topic="m.tweets.raw"),
        sample("pipeline_records_rejected_total", reason="duplicate_id"),
    )
    await Replay(open_source(str(SAMPLE)), RecordingPublisher(), Topics("m."), batch_size=8).run()
    assert sample("pipeline_records_produced_total", topic="m.tweets.raw") - before[0] == 40
    assert sample("pipeline_records_rejected_total", reason="duplicate_id") - before[1] == 1
    assert sample("pipeline_records_produced_total", topic="m.tweets.rejected") >= 5


class FailingPublisher(RecordingPublisher):
    """Acknowledges ``ok`` batches, then fails like a broker that went away."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        if len(self.batches) == self.ok:
            raise ConnectionError("broker gone")
        await super().publish(messages)


async def test_checkpoints_advance_only_past_acknowledged_batches() -> None:
    publisher = FailingPublisher(ok=2)
    saved: list[Mark] = []
    run = Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=10, on_checkpoint=saved.append,
                 count_items=True)
    with pytest.raises(ConnectionError):
        await run.run()
    acknowledged = sum(len(batch) for batch in publisher.batches)
    assert acknowledged == 20 and saved[-1].cursor == Cursor(0, 20)  # never past what Kafka acknowledged


async def test_resume_by_count_publishes_only_the_rest() -> None:
    source = open_source(str(SAMPLE))
    source.items = itertools.islice(source.items, 20, None)
    publisher = RecordingPublisher()
    summary = await Replay(source, publisher, TOPICS, batch_size=10, count_items=True, skipped=20).run()
    assert summary.read == 25 and summary.reconciles


async def test_skip_existing_counts_indexed_tweets_and_publishes_the_rest() -> None:
    indexed = {"1921567810453299200", "9007199254740993"}
    asked: list[int] = []

    async def lookup(ids: Sequence[str]) -> set[str]:
        asked.append(len(ids))
        return indexed & set(ids)

    publisher = RecordingPublisher()
    summary = await Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=100, indexed=lookup).run()
    assert (summary.published, summary.already_indexed, summary.rejected) == (38, 2, 5)
    # One lookup for the chunk's valid tweets; the repeated id is a duplicate_id reject already.
    assert summary.reconciles and asked == [40]
    assert not indexed & {m.key for m in publisher.on("t.tweets.raw")}


class HeldPublisher(RecordingPublisher):
    """Acknowledges a batch only when the test releases it, like a broker that is slow to ack."""

    def __init__(self) -> None:
        super().__init__()
        self.acks: list[asyncio.Event] = []
        self.most_waiting = 0

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        ack = asyncio.Event()
        self.acks.append(ack)
        self.most_waiting = max(self.most_waiting, sum(not a.is_set() for a in self.acks))
        await ack.wait()
        await super().publish(messages)


async def _until(condition: Callable[[], bool]) -> None:
    """Poll until ``condition`` holds (the replay reads in a worker thread), failing after 5 s."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


async def test_the_next_batch_is_sent_while_one_is_acknowledged_and_counted_only_once_acked() -> None:
    publisher = HeldPublisher()
    saved: list[Mark] = []
    replay = Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=10, on_checkpoint=saved.append,
                    count_items=True)
    run = asyncio.create_task(replay.run())
    try:
        await _until(lambda: len(publisher.acks) == 2)  # batch 2 handed over before batch 1 is acked
        publisher.acks[1].set()  # acknowledged out of order: nothing counts before batch 1 is acked
        await _until(lambda: len(publisher.batches) == 1)
        assert saved == [] and replay.summary.published == 0 and len(publisher.acks) == 2
        publisher.acks[0].set()
        await _until(lambda: len(saved) == 2)
        assert [mark.cursor for mark in saved] == [Cursor(0, 10), Cursor(0, 20)]
        while not run.done():
            for ack in publisher.acks:
                ack.set()
            await asyncio.sleep(0.001)
        summary = await run
    finally:
        run.cancel()
    assert summary.published == 40 and summary.reconciles and saved[-1].cursor == Cursor(0, 45)
    assert publisher.most_waiting == 2  # never more than max_in_flight batches unacknowledged


async def test_a_failed_batch_abandons_the_one_in_flight_behind_it() -> None:
    publisher = FailingPublisher(ok=1)
    saved: list[Mark] = []
    replay = Replay(open_source(str(SAMPLE)), publisher, TOPICS, batch_size=10, on_checkpoint=saved.append,
                    count_items=True, max_in_flight=3)
    with pytest.raises(ConnectionError):
        await replay.run()
    assert replay.summary.published == 10 and [mark.cursor for mark in saved] == [Cursor(0, 10)]


def _tracer(ratio: float) -> tuple[Tracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("ingestor"), exporter


async def test_each_tweet_is_one_producer_span_whose_context_its_headers_carry() -> None:
    tracer, exporter = _tracer(1.0)
    publisher = RecordingPublisher()
    summary = await Replay(open_source(str(SAMPLE)), publisher, TOPICS, tracer=tracer).run()
    spans = {span.attributes["tweet.id"]: span for span in exporter.get_finished_spans()}  # type: ignore[index]
    assert len(spans) == summary.published == 40  # one trace per tweet, none for rejects
    for message in publisher.on("t.tweets.raw"):
        span = spans[message.key]
        context = span.get_span_context()
        assert span.name == "ingestor.publish" and span.kind is SpanKind.PRODUCER and span.parent is None
        assert message.headers == [("traceparent", f"00-{context.trace_id:032x}-{context.span_id:016x}-01".encode())]
    assert all(message.headers == [] for message in publisher.on("t.tweets.rejected"))


async def test_an_unsampled_tweet_records_no_span_but_carries_the_decision() -> None:
    tracer, exporter = _tracer(0.0)
    publisher = RecordingPublisher()
    await Replay(open_source(str(SAMPLE)), publisher, TOPICS, tracer=tracer).run()
    assert exporter.get_finished_spans() == ()
    headers = [dict(message.headers) for message in publisher.on("t.tweets.raw")]
    assert len(headers) == 40 and all(h["traceparent"].endswith(b"-00") for h in headers)
    assert len({h["traceparent"] for h in headers}) == 40  # still a trace id per tweet


async def test_without_a_tracer_no_headers_are_added() -> None:
    publisher = RecordingPublisher()
    await Replay(open_source(str(SAMPLE)), publisher, TOPICS, tracer=None).run()
    assert all(message.headers == [] for batch in publisher.batches for message in batch)


async def test_head_sampling_leaves_unsampled_tweets_a_traceparent_and_sampled_ones_their_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_ON))  # as configure_tracing(head_sampled=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    publisher = RecordingPublisher()
    tracer = provider.get_tracer("ingestor")
    await Replay(open_source(str(SAMPLE)), publisher, TOPICS, tracer=tracer, sample_ratio=0.5).run()
    spans = {span.attributes["tweet.id"]: span for span in exporter.get_finished_spans()}  # type: ignore[index]
    sampled = 0
    for message in publisher.on("t.tweets.raw"):
        [(name, value)] = message.headers
        if value.endswith(b"-01"):  # sampled here: its real span, whose context the header carries
            context = spans[message.key].get_span_context()
            assert value == f"00-{context.trace_id:032x}-{context.span_id:016x}-01".encode()
            sampled += 1
        else:
            assert name == "traceparent" and value.endswith(b"-00") and message.key not in spans
    assert sampled == len(spans) and 0 < sampled < 40  # 40 tweets at one half: all or none is 2**-39
    for message in publisher.on("t.tweets.rejected"):  # a sampled reject's span is the producer's
        assert message.headers == [] or message.headers[0][1].endswith(b"-00")

    nothing = InMemorySpanExporter()
    quiet = TracerProvider(sampler=ParentBased(ALWAYS_ON))
    quiet.add_span_processor(SimpleSpanProcessor(nothing))
    publisher = RecordingPublisher()
    await Replay(open_source(str(SAMPLE)), publisher, TOPICS, tracer=quiet.get_tracer("i"), sample_ratio=0.0).run()
    assert nothing.get_finished_spans() == ()
    headers = [dict(message.headers)["traceparent"] for batch in publisher.batches for message in batch]
    assert len(set(headers)) == 45 and all(h.endswith(b"-00") for h in headers)  # rejects too


def test_freeze_long_lived_freezes_what_is_loaded_once_a_process() -> None:
    import gc

    from ingestor.main import freeze_long_lived

    freeze_long_lived()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    allocated_since = [[n] for n in range(100)]  # tracked objects a second freeze would take
    freeze_long_lived()
    assert gc.get_freeze_count() == frozen
    gc.freeze()
    assert gc.get_freeze_count() >= frozen + len(allocated_since)  # so the check above could fail
