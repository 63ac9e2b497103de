"""``publisher.partition_for``: the partition a tweet goes to when the reading side hashed its key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from common.kafka import OutgoingMessage
from ingestor.logic import key_hash
from ingestor.publisher import partition_for


def producer(partitions: dict[str, set[int]]) -> Any:
    """Just the producer's metadata lookup the function reads (``client.cluster``)."""
    return SimpleNamespace(client=SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=partitions.get)))


@pytest.mark.parametrize("count", [1, 3, 7])
@pytest.mark.parametrize("key", ["1", "1921567810453299200", "9223372036854775807"])
def test_the_default_partitioners_pick_from_the_hash(key: str, count: int) -> None:
    message = OutgoingMessage("raw", key, b"{}", key_hash=key_hash(key.encode()))
    every = list(range(count))
    assert partition_for(producer({"raw": set(every)}), message) == DefaultPartitioner()(key.encode(), every, every)


def test_without_a_hash_or_metadata_the_producer_picks() -> None:
    hashed = OutgoingMessage("raw", "7", b"{}", key_hash=key_hash(b"7"))
    assert partition_for(producer({"raw": {0, 1, 2}}), OutgoingMessage("raw", "7", b"{}")) is None  # a reject
    assert partition_for(producer({}), hashed) is None  # the topic not in the metadata yet
    assert partition_for(producer({"raw": set()}), hashed) is None


def test_each_message_reads_the_metadata_of_its_own_topic_as_it_is_now() -> None:
    partitions = {"raw": {0, 1, 2, 3, 4, 5}, "other": {0}}
    meta = producer(partitions)
    key = b"1921567810453299200"
    assert partition_for(meta, OutgoingMessage("other", "k", b"", key_hash=key_hash(key))) == 0
    before = partition_for(meta, OutgoingMessage("raw", "k", b"", key_hash=key_hash(key)))
    partitions["raw"] = {0, 1}  # recreated smaller between two messages of one batch
    after = partition_for(meta, OutgoingMessage("raw", "k", b"", key_hash=key_hash(key)))
    assert before == key_hash(key) % 6 and after == key_hash(key) % 2
