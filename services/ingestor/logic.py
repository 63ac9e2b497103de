"""Pure steps of a replay: judging a chunk (duplicate detection, serialisation: ``judge``) and
the running summary whose counts reconcile (read = published + rejected). Validating one item
(source item → ``TweetRecord`` or ``RejectedRecord``) is part of the contract, shared with
``POST /ingest``: ``common.records.to_outcome``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field, computed_field

from common.events import RejectedRecord, TweetRecord, ValidationIssue
from common.records import Outcome, SourceItem, reject
from ingestor.checkpoint import Mark

DUPLICATE_ID = "duplicate_id"


class ReplaySummary(BaseModel):
    source: str
    format: str | None = None
    read: int = 0
    valid: int = 0  # passed validation, duplicates included
    duplicates: int = 0
    published: int = 0  # distinct valid tweets acknowledged on tweets.raw
    rejected: int = 0  # invalid + duplicates, sent to tweets.rejected
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    already_indexed: int = 0  # --skip-existing: valid tweets found in Elasticsearch, not published
    skipped_on_resume: int = 0  # published by an earlier run of the same input (checkpoint)
    follow_events: list[str] = Field(default_factory=list)  # --follow: resumed, rotated, truncated
    errors: list[str] = Field(default_factory=list)  # stream-level problems, e.g. a truncated array
    elapsed_s: float = 0.0
    rate_per_s: float = 0.0  # records read per second
    topics: dict[str, str] = Field(default_factory=dict)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reconciles(self) -> bool:
        published = self.published + self.already_indexed
        return self.read == published + self.rejected and self.valid - self.duplicates == published

    def count_reject(self, reason: str) -> None:
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1


class SeenIds:
    """Ids already published from this source, to reject repeats as ``duplicate_id``.

    Memory: ids are kept as Python ints in a set, about 60-70 bytes per distinct id (a 32-byte
    int object plus the set's hash slot at its load factor), so roughly 70 MB per million
    tweets: fine for Kaggle-sized files (Sentiment140's 1.6 M rows ≈ 110 MB). Strings would
    cost about twice that.
    """

    def __init__(self) -> None:
        self._ids: set[int] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, tweet_id: str) -> bool:
        """Record ``tweet_id``; ``False`` if it was seen before."""
        key = int(tweet_id)
        if key in self._ids:
            return False
        self._ids.add(key)
        return True


def duplicate(item: SourceItem, source: str, tweet_id: str) -> RejectedRecord:
    issue = ValidationIssue(loc="id", msg=f"id {tweet_id} already appeared earlier in {source}", type=DUPLICATE_ID)
    return reject(item, source, DUPLICATE_ID, [issue])


class Reject(NamedTuple):
    """What the replay needs to publish, count and log one reject."""

    reason: str
    position: str
    value: bytes  # the RejectedRecord's JSON, the message to tweets.rejected
    stream_error: str | None  # for the summary's errors: the rest of a JSON document is unreadable
    duplicate: bool  # valid, but its id appeared earlier in the file


# A tweet: its id, its TweetRecord JSON for tweets.raw, and its key's hash (``key_hashes``), so the
# publisher picks its partition without hashing it again on the producer's core.
Verdict = tuple[str, bytes, int] | Reject


@dataclass
class Verdicts:
    """One chunk's verdicts, in read order, with its marks and end state (as ``source.Chunk``)."""

    entries: list[Verdict] = field(default_factory=list)
    marks: dict[int, Mark] = field(default_factory=dict)
    idle: bool = False
    exhausted: bool = False
    bytes_read: int | None = None  # where the reader stands in the file, for progress
    cpu_s: float | None = None  # the reading process's CPU seconds, on its last chunk
    lines_start: tuple[int, int] | None = None  # a lane's chunk: its first line's offset and number


_HASH_PENDING = Reject("", "", b"", None, False)

# ``model_dump_json().encode()`` without its wrapper and the str round trip: the same bytes.
_payload = TweetRecord.__pydantic_serializer__.to_json


def judge(items: Iterable[tuple[SourceItem, Outcome]], seen: SeenIds, source: str) -> list[Verdict]:
    """Validated items → verdicts, in order: a valid tweet whose id ``seen`` did not hold yet is
    its id and payload JSON; anything else a :class:`Reject` (a repeat: ``duplicate_id``).
    Small and picklable: the reading may happen in another process (``reader``)."""
    verdicts: list[Verdict] = []
    tweets: list[tuple[int, str, bytes]] = []  # (where, id, payload): their key hashes come at once
    for item, outcome in items:
        # type(), not isinstance, on every tweet: pydantic's metaclass makes isinstance Python code.
        if type(outcome) is TweetRecord and seen.add(outcome.id):
            tweets.append((len(verdicts), outcome.id, _payload(outcome)))
            verdicts.append(_HASH_PENDING)  # replaced below, once the chunk's keys are hashed
            continue
        if isinstance(outcome, TweetRecord):
            verdicts.append(repeat_reject(item, source, outcome.id))
            continue
        # Only a broken JSON document yields an unparseable "record/response N": the rest is lost.
        broken = item.error is not None and item.position.startswith(("record", "response"))
        stream_error = f"{item.position}: {item.error}" if broken else None
        value = outcome.model_dump_json().encode()
        verdicts.append(Reject(outcome.reason, outcome.position, value, stream_error, False))
    if tweets:
        hashes = key_hashes([tweet_id.encode() for _, tweet_id, _ in tweets])
        for (where, tweet_id, payload), hashed in zip(tweets, hashes, strict=True):
            verdicts[where] = (tweet_id, payload, hashed)
    return verdicts


def repeated(verdicts: list[Verdict], seen: SeenIds) -> list[int]:
    """Where ``verdicts`` (a chunk judged without the ids before it) has a tweet whose id ``seen``
    held; the others' ids are added to it."""
    # type() is tuple: a Reject is a NamedTuple, so not a tuple by type.
    return [index for index, verdict in enumerate(verdicts) if type(verdict) is tuple and not seen.add(verdict[0])]


def repeat_reject(item: SourceItem, source: str, tweet_id: str) -> Reject:
    """The ``duplicate_id`` reject of ``item``, a valid tweet whose id appeared earlier."""
    rejected = duplicate(item, source, tweet_id)
    return Reject(rejected.reason, rejected.position, rejected.model_dump_json().encode(), None, True)


_M = np.uint32(0x5BD1E995)  # murmur2's mixing constant


def key_hashes(keys: Sequence[bytes]) -> list[int]:
    """The hash Kafka's default partitioner takes modulo the partition count, for each key: the
    Java client's murmur2 (seed 0x9747b28c), its sign bit cleared, as aiokafka's
    ``DefaultPartitioner``.

    Computed on the reading side (a spare core, for a large file), a chunk at a time: the keys
    of one length are hashed together in uint32 arrays (numpy's multiplication wraps modulo
    2**32, as murmur2's does), about 0.5 µs a key against 2.5 to 3 for a word-wise loop in
    Python, and against aiokafka's pure-Python ``murmur2``, which the producer's core would
    otherwise spend on every tweet."""
    hashes = [0] * len(keys)
    by_length: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        by_length.setdefault(len(key), []).append(index)
    for length, indexes in by_length.items():
        for index, value in zip(indexes, _murmur2_of_equal_length([keys[i] for i in indexes], length), strict=True):
            hashes[index] = value
    return hashes


def _murmur2_of_equal_length(keys: list[bytes], length: int) -> list[int]:
    rows = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), length)
    h = np.full(len(keys), 0x9747B28C ^ length, dtype=np.uint32)
    words = length >> 2
    blocks = np.ascontiguousarray(rows[:, : words * 4]).view("<u4")
    for word in range(words):
        k = blocks[:, word] * _M
        k ^= k >> np.uint32(24)
        k *= _M
        h *= _M
        h ^= k
    tail = rows[:, words * 4 :].astype(np.uint32)
    if length & 3:
        if length & 3 == 3:
            h ^= tail[:, 2] << np.uint32(16)
        if length & 3 >= 2:
            h ^= tail[:, 1] << np.uint32(8)
        h ^= tail[:, 0]
        h *= _M
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    hashed: list[int] = (h & np.uint32(0x7FFFFFFF)).tolist()
    return hashed
