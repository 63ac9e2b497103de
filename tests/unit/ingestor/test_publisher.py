"""``publisher.partition_runs``: how a batch of messages is split into per-partition runs."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

from common.kafka import OutgoingMessage
from ingestor.publisher import partition_runs

RAW, REJECTED = "tweets.raw", "tweets.rejected"
PARTITIONS = {RAW: [0, 1, 2], REJECTED: [0, 1, 2]}
TRACEPARENT = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-00")]


def tweet(tweet_id: int) -> OutgoingMessage:
    return OutgoingMessage(RAW, str(tweet_id), b'{"id":"%d"}' % tweet_id, list(TRACEPARENT))


def java_partition(key: str, count: int) -> int:
    """Kafka's Java client: murmur2 of the key bytes, sign bit cleared, modulo the partitions
    (aiokafka's murmur2 agrees with Java's on the vectors below)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % count


# Utils.murmur2 of these keys in Kafka's own tests (clients/.../common/utils/UtilsTest.java).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "abc": 479470107,
}


def test_each_message_goes_to_the_partition_kafkas_java_client_gives_its_key() -> None:
    messages = [OutgoingMessage(RAW, key, b"{}", list(TRACEPARENT)) for key in JAVA_MURMUR2]
    for count in (1, 3, 7):
        runs = partition_runs(messages, {RAW: list(range(count))})
        placed = {m.key: run.partition for run in runs for m in run.messages}
        assert placed == {key: (h & 0x7FFFFFFF) % count for key, h in JAVA_MURMUR2.items()}


def test_runs_keep_publish_order_within_each_partition_and_lose_or_repeat_nothing() -> None:
    messages = [tweet(1_750_000_000_000_000_000 + n) for n in range(200)]
    runs = partition_runs(messages, PARTITIONS)
    assert sorted(m.key or "" for run in runs for m in run.messages) == sorted(m.key or "" for m in messages)
    for run in runs:
        expected = [m for m in messages if java_partition(m.key or "", 3) == run.partition]
        assert run.messages == expected
    assert [run.partition for run in runs] == sorted(
        {r.partition for r in runs}, key=[java_partition(m.key or "", 3) for m in messages].index
    )  # runs in order of first appearance


def test_topics_are_kept_apart_even_on_the_same_partition_number() -> None:
    reject = OutgoingMessage(REJECTED, "tweets.json", b"{broken", list(TRACEPARENT))
    messages = [tweet(7), reject, tweet(8)]
    runs = partition_runs(messages, {RAW: [0], REJECTED: [0]})
    assert [(run.topic, run.partition, run.messages) for run in runs] == [
        (RAW, 0, [messages[0], messages[2]]),
        (REJECTED, 0, [reject]),
    ]


def test_with_tracing_a_message_without_headers_is_sent_alone_so_its_producer_span_roots_its_trace() -> None:
    reject = OutgoingMessage(REJECTED, "tweets.json", b"{broken", [])
    messages = [tweet(1), reject, tweet(2)]
    traced = partition_runs(messages, {RAW: [0], REJECTED: [0]}, alone=True)
    assert [(run.topic, run.partition, len(run.messages)) for run in traced] == [(RAW, 0, 2), (REJECTED, None, 1)]
    untraced = partition_runs(messages, {RAW: [0], REJECTED: [0]})
    assert [(run.topic, run.partition, len(run.messages)) for run in untraced] == [(RAW, 0, 2), (REJECTED, 0, 1)]
